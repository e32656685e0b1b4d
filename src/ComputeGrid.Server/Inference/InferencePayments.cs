using System.Buffers.Binary;
using System.Security.Cryptography;
using ComputeGrid.Core;
using ComputeGrid.Ledger;

namespace ComputeGrid.Server.Inference;

/// <summary>What became of a payment hold.</summary>
public enum HoldOutcome
{
    /// <summary>The maximum cost is held.</summary>
    Held,
    /// <summary>The same hold exists already (a retried request): nothing new is held.</summary>
    AlreadyHeld,
    /// <summary>The account's available balance is below the maximum cost (HTTP 402).</summary>
    InsufficientBalance,
    /// <summary>The account does not exist.</summary>
    NoAccount,
}

/// <summary>
/// The money of paid inference, all through the ledger (USDC, micro-USD):
/// <list type="number">
/// <item><b>Hold</b>: before dispatch, a pending transfer customer → escrow of the request's maximum cost (its token count
/// at the node's price). A customer account cannot go below zero (<c>DebitsMustNotExceedCredits</c>), so concurrent
/// requests can never overdraw it: the ledger refuses the hold that would.</item>
/// <item><b>Settle</b>: after the run, one linked chain (all or nothing): post the hold partially with the metered cost
/// (the rest of the hold is released), escrow → node revenue (cost − fee), escrow → platform fee.</item>
/// <item><b>Void</b>: a failed request releases its hold.</item>
/// </list>
/// Transfer ids are derived from the request's key (the idempotency key when there is one), so a retried request can
/// never hold or settle twice: the ledger answers <c>Exists</c>.
/// </summary>
public sealed class InferencePayments(LedgerEngine ledger)
{
    private const ulong Space = 0x1F00_0000_0000_0000;
    /// <summary>Escrow between hold and settlement.</summary>
    public static readonly UInt128 EscrowAccount = new(Space, 1);
    /// <summary>The platform's fee revenue.</summary>
    public static readonly UInt128 PlatformFeeAccount = new(Space, 2);
    /// <summary>Where operator funding comes from (the stablecoin's issuance side).</summary>
    public static readonly UInt128 TreasuryAccount = new(Space, 3);
    private const ushort HoldCode = 501, SettleCode = 502, FeeCode = 503, FundCode = 504, RevenueCode = 505;

    /// <summary>Creates the system accounts if they do not exist.</summary>
    public async Task EnsureSystemAccountsAsync(CancellationToken ct = default)
    {
        var accounts = new[]
        {
            new Account { Id = EscrowAccount, Asset = Asset.Usd.Code, Code = 10 },
            new Account { Id = PlatformFeeAccount, Asset = Asset.Usd.Code, Code = 11 },
            new Account { Id = TreasuryAccount, Asset = Asset.Usd.Code, Code = 12 },
        };
        CreateAccountResult[] r = await ledger.CreateAccountsAsync(accounts, ct);
        if (r.Any(x => x is not (CreateAccountResult.Ok or CreateAccountResult.Exists)))
            throw new InvalidOperationException("Cannot create the inference system accounts: " + string.Join(", ", r));
    }

    /// <summary>The ledger account of a customer number (a fresh, overdraft-proof USDC account).</summary>
    public static UInt128 CustomerAccount(ulong customer) => new(Space | 0x0010_0000_0000_0000, customer);

    /// <summary>The revenue account of a node number.</summary>
    public static UInt128 NodeRevenueAccount(ulong node) => new(Space | 0x0011_0000_0000_0000, node);

    /// <summary>Creates a customer's account (its balance can never go below zero).</summary>
    public async Task CreateCustomerAccountAsync(ulong customer, CancellationToken ct = default)
    {
        var r = await ledger.CreateAccountsAsync(new[] { new Account { Id = CustomerAccount(customer), Asset = Asset.Usd.Code, Code = 20, Flags = AccountFlags.DebitsMustNotExceedCredits } }, ct);
        if (r[0] is not (CreateAccountResult.Ok or CreateAccountResult.Exists)) throw new InvalidOperationException($"Cannot create the customer account: {r[0]}");
    }

    /// <summary>Creates a node's revenue account.</summary>
    public async Task CreateNodeAccountAsync(ulong node, CancellationToken ct = default)
    {
        var r = await ledger.CreateAccountsAsync(new[] { new Account { Id = NodeRevenueAccount(node), Asset = Asset.Usd.Code, Code = 21 } }, ct);
        if (r[0] is not (CreateAccountResult.Ok or CreateAccountResult.Exists)) throw new InvalidOperationException($"Cannot create the node account: {r[0]}");
    }

    /// <summary>Funds a customer from the treasury (an operator's action); <paramref name="fundingId"/> makes it idempotent.</summary>
    public async Task<CreateTransferResult> FundAsync(ulong customer, long amountMicroUsd, UInt128 fundingId, CancellationToken ct = default)
    {
        var r = await ledger.CreateTransfersAsync(new[]
        {
            new Transfer { Id = fundingId, DebitAccountId = TreasuryAccount, CreditAccountId = CustomerAccount(customer), Amount = amountMicroUsd, Asset = Asset.Usd.Code, Code = FundCode },
        }, ct);
        return r[0];
    }

    /// <summary>The account's balance: posted credits − posted debits − pending debits (micro-USD), or null when absent.</summary>
    public async Task<(long Available, long Held)?> BalanceAsync(ulong customer, CancellationToken ct = default)
    {
        Account[] a = await ledger.LookupAccountsAsync([CustomerAccount(customer)], ct);
        if (a.Length == 0) return null;
        return (checked(a[0].CreditsPosted - a[0].DebitsPosted - a[0].DebitsPending), a[0].DebitsPending);
    }

    /// <summary>The hold's transfer id for a request key: the same key always names the same hold.</summary>
    public static UInt128 HoldId(ulong customer, string requestKey)
    {
        Span<byte> hash = stackalloc byte[32];
        byte[] key = System.Text.Encoding.UTF8.GetBytes($"{customer}\n{requestKey}");
        SHA256.HashData(key, hash);
        // 0x1F2… prefix; the low 2 bits of the id are left for the settlement's transfers (hold + 1, + 2, + 3).
        ulong hi = (Space | 0x0020_0000_0000_0000) | (BinaryPrimitives.ReadUInt64LittleEndian(hash) & 0x000F_FFFF_FFFF_FFFF);
        ulong lo = BinaryPrimitives.ReadUInt64LittleEndian(hash[8..]) & ~3UL;
        return new UInt128(hi, lo);
    }

    /// <summary>Holds <paramref name="maxCostMicroUsd"/> from the customer for the request named by <paramref name="holdId"/>.</summary>
    public async Task<HoldOutcome> HoldAsync(ulong customer, UInt128 holdId, long maxCostMicroUsd, uint timeoutSeconds, CancellationToken ct = default)
    {
        // Answered once applied, before its group commit: the hold reserves the money for every later write at once,
        // and the answer does not wait for fdatasync. A crash before the commit loses the hold and the request is not
        // charged — the platform's loss, never the customer's; the capture that follows is durable and comes after it
        // in the log.
        var r = await ledger.CreateTransfersAsync(new[]
        {
            new Transfer
            {
                Id = holdId, DebitAccountId = CustomerAccount(customer), CreditAccountId = EscrowAccount, Amount = maxCostMicroUsd,
                Asset = Asset.Usd.Code, Code = HoldCode, Flags = TransferFlags.Pending, Timeout = timeoutSeconds,
            },
        }, LedgerAck.Applied, ct);
        return r[0] switch
        {
            CreateTransferResult.Ok => HoldOutcome.Held,
            CreateTransferResult.Exists => HoldOutcome.AlreadyHeld,
            CreateTransferResult.ExceedsCredits => HoldOutcome.InsufficientBalance,
            CreateTransferResult.DebitAccountNotFound => HoldOutcome.NoAccount,
            var other => throw new InvalidOperationException($"The ledger refused the hold: {other}"),
        };
    }

    /// <summary>
    /// Charges the metered cost: posts the hold with <paramref name="costMicroUsd"/> (≤ the hold; the rest is released)
    /// and splits it between the node (cost − fee) and the platform (fee), in one linked chain.
    /// </summary>
    /// <returns>True when charged now; false when this request was charged before (a retry).</returns>
    public async Task<bool> SettleAsync(UInt128 holdId, long costMicroUsd, long feeMicroUsd, ulong node, CancellationToken ct = default)
    {
        Transfer[] chain = Chain(holdId, costMicroUsd, feeMicroUsd, node);
        CreateTransferResult[] r = await ledger.CreateTransfersAsync(chain, ct);
        if (r.All(x => x == CreateTransferResult.Ok)) return true;
        if (r[0] is CreateTransferResult.Exists or CreateTransferResult.PendingTransferAlreadyPosted) return false;
        throw new InvalidOperationException($"The ledger refused the settlement: {string.Join(", ", r)}");
    }

    /// <summary>
    /// Settles many requests in one ledger batch (one linked chain each). A chain whose hold was settled before answers
    /// <c>Exists</c> and is skipped; any other refusal throws.
    /// </summary>
    public async Task SettleManyAsync(IReadOnlyList<Settlement> settlements, CancellationToken ct = default)
    {
        var transfers = new List<Transfer>(settlements.Count * 3);
        var firstOfChain = new List<int>(settlements.Count);
        foreach (Settlement s in settlements) { firstOfChain.Add(transfers.Count); transfers.AddRange(Chain(s.HoldId, s.CostMicroUsd, s.FeeMicroUsd, s.Node)); }
        CreateTransferResult[] r = await ledger.CreateTransfersAsync(transfers.ToArray(), ct);
        for (int i = 0; i < firstOfChain.Count; i++)
        {
            int at = firstOfChain[i], end = i + 1 < firstOfChain.Count ? firstOfChain[i + 1] : transfers.Count;
            bool ok = true;
            for (int k = at; k < end; k++) ok &= r[k] == CreateTransferResult.Ok;
            if (ok || r[at] is CreateTransferResult.Exists or CreateTransferResult.PendingTransferAlreadyPosted) continue;
            throw new InvalidOperationException($"The ledger refused the settlement of hold {settlements[i].HoldId}: {string.Join(", ", r[at..end])}");
        }
    }

    /// <summary>Releases a failed request's hold.</summary>
    public async Task VoidAsync(UInt128 holdId, CancellationToken ct = default)
    {
        var r = await ledger.CreateTransfersAsync(new[] { new Transfer { Id = holdId + 1, PendingId = holdId, Flags = TransferFlags.VoidPendingTransfer } }, ct);
        if (r[0] is not (CreateTransferResult.Ok or CreateTransferResult.Exists or CreateTransferResult.PendingTransferAlreadyVoided or CreateTransferResult.PendingTransferExpired))
            throw new InvalidOperationException($"The ledger refused to void the hold: {r[0]}");
    }

    // Post the hold with the cost (the rest is released), pay the node and the platform: one linked chain.
    private static Transfer[] Chain(UInt128 holdId, long costMicroUsd, long feeMicroUsd, ulong node)
    {
        if (feeMicroUsd < 0 || feeMicroUsd > costMicroUsd) throw new ArgumentOutOfRangeException(nameof(feeMicroUsd));
        var chain = new List<Transfer>(3)
        {
            new() { Id = holdId + 1, PendingId = holdId, Amount = costMicroUsd, Flags = TransferFlags.PostPendingTransfer | TransferFlags.Linked },
        };
        long toNode = costMicroUsd - feeMicroUsd;
        if (toNode > 0)
            chain.Add(new Transfer { Id = holdId + 2, DebitAccountId = EscrowAccount, CreditAccountId = NodeRevenueAccount(node), Amount = toNode, Asset = Asset.Usd.Code, Code = RevenueCode, Flags = TransferFlags.Linked });
        if (feeMicroUsd > 0)
            chain.Add(new Transfer { Id = holdId + 3, DebitAccountId = EscrowAccount, CreditAccountId = PlatformFeeAccount, Amount = feeMicroUsd, Asset = Asset.Usd.Code, Code = FeeCode, Flags = TransferFlags.Linked });
        chain[^1] = WithoutLink(chain[^1]);
        return chain.ToArray();
    }

    private static Transfer WithoutLink(Transfer t)
    {
        t.Flags &= ~TransferFlags.Linked;
        return t;
    }
}
