using System.ComponentModel.DataAnnotations;
using ComputeGrid.Core;
using ComputeGrid.Ledger;
using ComputeGrid.Ledger.Audit;

namespace ComputeGrid.Server.Ledger;

/// <summary>The asset's symbol must be one the ledger knows (<c>USDC</c>, <c>BTC</c>).</summary>
public sealed class KnownAssetAttribute : ValidationAttribute
{
    /// <inheritdoc />
    public override bool IsValid(object? value) => value is string s && Asset.TryFromSymbol(s, out _);

    /// <inheritdoc />
    public override string FormatErrorMessage(string name) => $"The field {name} must be one of {string.Join(", ", Asset.All.Select(a => a.Symbol))}.";
}

/// <summary>An account as an operator sends it to the raw ledger API (client space: ids below 2^127, codes 1–999).</summary>
public sealed record AccountInput
{
    /// <summary>The account's id (a decimal string); the reserved (system) space is refused.</summary>
    public required UInt128 Id { get; init; }
    /// <summary>The asset's symbol: <c>USDC</c> (micro-USD) or <c>BTC</c> (satoshi).</summary>
    [KnownAsset]
    public required string Asset { get; init; }
    /// <summary>What the account is for, 1–999 (the chart of accounts reserves the rest).</summary>
    [Range(1, ChartOfAccounts.ClientCodeMax)]
    public required ushort Code { get; init; }
    /// <summary>Balance flags.</summary>
    public AccountFlags Flags { get; init; }
    /// <summary>The client's own data.</summary>
    public UInt128 UserData128 { get; init; }
    /// <summary>The client's own data.</summary>
    public ulong UserData64 { get; init; }
    /// <summary>The client's own data.</summary>
    public uint UserData32 { get; init; }

    /// <summary>The ledger's account.</summary>
    public Account ToAccount() => new()
    {
        Id = Id, Asset = AssetCode(Asset), Code = Code, Flags = Flags, UserData128 = UserData128, UserData64 = UserData64, UserData32 = UserData32,
    };

    internal static uint AssetCode(string symbol) => ComputeGrid.Core.Asset.TryFromSymbol(symbol, out Asset a) ? a.Code : 0;
}

/// <summary>A transfer as an operator sends it to the raw ledger API. For post/void, zero fields mean "as the pending transfer".</summary>
public sealed record TransferInput
{
    /// <summary>The transfer's id (idempotency: the same id and body answer <c>exists</c>); the reserved space is refused.</summary>
    public required UInt128 Id { get; init; }
    /// <summary>The account debited (client space only).</summary>
    public UInt128 DebitAccountId { get; init; }
    /// <summary>The account credited (client space only).</summary>
    public UInt128 CreditAccountId { get; init; }
    /// <summary>Minor units of the asset (micro-USD for USDC, satoshi for BTC).</summary>
    public long Amount { get; init; }
    /// <summary>The pending transfer a post or void names.</summary>
    public UInt128 PendingId { get; init; }
    /// <summary>Seconds a pending transfer may stay open before it expires (0 = never).</summary>
    public uint Timeout { get; init; }
    /// <summary>The asset's symbol (empty for post/void: as the pending transfer).</summary>
    public string Asset { get; init; } = "";
    /// <summary>What the transfer is for, 0–999 (0 only for post/void).</summary>
    [Range(0, ChartOfAccounts.ClientCodeMax)]
    public ushort Code { get; init; }
    /// <summary>Transfer flags (<c>pending</c>, <c>post_pending_transfer</c>, <c>void_pending_transfer</c>, <c>linked</c>).</summary>
    public TransferFlags Flags { get; init; }
    /// <summary>The client's own data.</summary>
    public UInt128 UserData128 { get; init; }
    /// <summary>The client's own data.</summary>
    public ulong UserData64 { get; init; }
    /// <summary>The client's own data.</summary>
    public uint UserData32 { get; init; }

    /// <summary>The ledger's transfer.</summary>
    public Transfer ToTransfer() => new()
    {
        Id = Id, DebitAccountId = DebitAccountId, CreditAccountId = CreditAccountId, Amount = Amount, PendingId = PendingId,
        Timeout = Timeout, Asset = Asset.Length == 0 ? 0 : AccountInput.AssetCode(Asset), Code = Code, Flags = Flags,
        UserData128 = UserData128, UserData64 = UserData64, UserData32 = UserData32,
    };
}

/// <summary>An account as the API shows it: balances in minor units of <c>asset</c>; <c>owner</c> is its principal (null: the system's or the operators').</summary>
public sealed record AccountView(
    UInt128 Id, string Asset, ushort Code, string? Kind, ulong? Owner, AccountFlags Flags, long DebitsPending, long DebitsPosted, long CreditsPending, long CreditsPosted,
    long CreditBalance, UInt128 UserData128, ulong UserData64, uint UserData32, ApiTime Timestamp)
{
    /// <summary>The view of a ledger account.</summary>
    public static AccountView From(in Account a)
    {
        var (ownership, principal) = ChartOfAccounts.OwnerOf(a.Id);
        string? kind = ChartOfAccounts.IsReservedCode(a.Code) && Enum.IsDefined((AccountCode)a.Code) ? ApiJson.Naming.ConvertName(((AccountCode)a.Code).ToString()) : null;
        return new(a.Id, Trust.OwnedAccountView.AssetSymbol(a.Asset), a.Code, kind, ownership == AccountOwnership.Principal ? principal : null, a.Flags,
            a.DebitsPending, a.DebitsPosted, a.CreditsPending, a.CreditsPosted, a.CreditBalance, a.UserData128, a.UserData64, a.UserData32, new ApiTime(a.Timestamp));
    }
}

/// <summary>A transfer as the API shows it, with its pending status when it is a hold.</summary>
public sealed record TransferView(
    UInt128 Id, UInt128 DebitAccountId, UInt128 CreditAccountId, long Amount, UInt128 PendingId, uint Timeout, string Asset, ushort Code,
    TransferFlags Flags, PendingStatus Status, UInt128 UserData128, ulong UserData64, uint UserData32, ApiTime Timestamp)
{
    /// <summary>The view of a ledger transfer.</summary>
    public static TransferView From(in Transfer t, PendingStatus status) => new(t.Id, t.DebitAccountId, t.CreditAccountId, t.Amount, t.PendingId,
        t.Timeout, Trust.OwnedAccountView.AssetSymbol(t.Asset), t.Code, t.Flags, status, t.UserData128, t.UserData64, t.UserData32, new ApiTime(t.Timestamp));
}

/// <summary>One event's outcome: its index in the batch, the id sent, the result name and its stable numeric code.</summary>
public sealed record EventResult(int Index, UInt128 Id, string Result, uint Code);

/// <summary>The outcome of a batch: one result per event, in order, plus how many succeeded.</summary>
public sealed record BatchResponse(int Ok, int Failed, IReadOnlyList<EventResult> Results);

/// <summary>A page of an account's history, newest first; <c>next</c> is the <c>before</c> of the next page, null on the last.</summary>
public sealed record HistoryPage(UInt128 AccountId, IReadOnlyList<TransferView> Transfers, ApiTime? Next);

/// <summary>One asset's Merkle sum root in a checkpoint: its hash, the total debits and credits (decimal strings: they may pass 2^63) and its accounts.</summary>
public sealed record AssetRootView(string Asset, string Hash, string Debits, string Credits, int Accounts);

/// <summary>A checkpoint: the ledger's balances at one op, committed by one root, bound to the audit chain's head.</summary>
public sealed record CheckpointView(ulong Op, ApiTime Timestamp, string ChainHead, string Root, IReadOnlyList<AssetRootView> Assets)
{
    /// <summary>The view of a checkpoint.</summary>
    public static CheckpointView From(Checkpoint cp) => new(cp.Op, new ApiTime(cp.Timestamp), cp.ChainHead, cp.Root,
        cp.Assets.Select(a => new AssetRootView(Trust.OwnedAccountView.AssetSymbol(a.Asset), a.Hash, a.Debits, a.Credits, a.Accounts)).ToArray());
}

/// <summary>The head of the ledger's audit hash chain: the last op and the hash that commits every batch up to it.</summary>
public sealed record ChainHeadView(ulong Op, string Head);
