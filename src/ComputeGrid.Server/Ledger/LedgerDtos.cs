using ComputeGrid.Ledger;

namespace ComputeGrid.Server.Ledger;

/// <summary>An account as clients send it. Balances and timestamp are the ledger's: sending them is an error code.</summary>
public sealed record AccountInput
{
    public UInt128 Id { get; init; }
    public uint Asset { get; init; }
    public ushort Code { get; init; }
    public AccountFlags Flags { get; init; }
    public UInt128 UserData128 { get; init; }
    public ulong UserData64 { get; init; }
    public uint UserData32 { get; init; }

    public Account ToAccount() => new()
    {
        Id = Id, Asset = Asset, Code = Code, Flags = Flags, UserData128 = UserData128, UserData64 = UserData64, UserData32 = UserData32,
    };
}

/// <summary>A transfer as clients send it. For post/void, zero fields mean "as the pending transfer".</summary>
public sealed record TransferInput
{
    public UInt128 Id { get; init; }
    public UInt128 DebitAccountId { get; init; }
    public UInt128 CreditAccountId { get; init; }
    /// <summary>Minor units of the asset (micro-USD for USDC, satoshi for BTC).</summary>
    public long Amount { get; init; }
    public UInt128 PendingId { get; init; }
    /// <summary>Seconds a pending transfer may stay open before it expires (0 = never).</summary>
    public uint Timeout { get; init; }
    public uint Asset { get; init; }
    public ushort Code { get; init; }
    public TransferFlags Flags { get; init; }
    public UInt128 UserData128 { get; init; }
    public ulong UserData64 { get; init; }
    public uint UserData32 { get; init; }

    public Transfer ToTransfer() => new()
    {
        Id = Id, DebitAccountId = DebitAccountId, CreditAccountId = CreditAccountId, Amount = Amount, PendingId = PendingId,
        Timeout = Timeout, Asset = Asset, Code = Code, Flags = Flags, UserData128 = UserData128, UserData64 = UserData64, UserData32 = UserData32,
    };
}

/// <summary>An account as the API shows it.</summary>
public sealed record AccountView(
    UInt128 Id, uint Asset, ushort Code, AccountFlags Flags, long DebitsPending, long DebitsPosted, long CreditsPending, long CreditsPosted,
    long CreditBalance, UInt128 UserData128, ulong UserData64, uint UserData32, long Timestamp)
{
    public static AccountView From(in Account a) => new(a.Id, a.Asset, a.Code, a.Flags, a.DebitsPending, a.DebitsPosted, a.CreditsPending,
        a.CreditsPosted, a.CreditBalance, a.UserData128, a.UserData64, a.UserData32, a.Timestamp);
}

/// <summary>A transfer as the API shows it, with its pending status when it is a hold.</summary>
public sealed record TransferView(
    UInt128 Id, UInt128 DebitAccountId, UInt128 CreditAccountId, long Amount, UInt128 PendingId, uint Timeout, uint Asset, ushort Code,
    TransferFlags Flags, PendingStatus Status, UInt128 UserData128, ulong UserData64, uint UserData32, long Timestamp)
{
    public static TransferView From(in Transfer t, PendingStatus status) => new(t.Id, t.DebitAccountId, t.CreditAccountId, t.Amount, t.PendingId,
        t.Timeout, t.Asset, t.Code, t.Flags, status, t.UserData128, t.UserData64, t.UserData32, t.Timestamp);
}

/// <summary>One event's outcome: its index in the batch, the id sent, the result name and its stable numeric code.</summary>
public sealed record EventResult(int Index, UInt128 Id, string Result, uint Code);

/// <summary>The outcome of a batch: one result per event, in order, plus how many succeeded.</summary>
public sealed record BatchResponse(int Ok, int Failed, IReadOnlyList<EventResult> Results);
