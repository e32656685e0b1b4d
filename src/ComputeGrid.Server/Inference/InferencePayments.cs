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
    /// <summary>Escrow between hold and settlement.</summary>
    public static readonly UInt128 EscrowAccount = ChartOfAccounts.SystemAccount(AccountCode.InferenceEscrow, Asset.Usd);
    /// <summary>The platform's fee revenue.</summary>
    public static readonly UInt128 PlatformFeeAccount = ChartOfAccounts.SystemAccount(AccountCode.PlatformFees, Asset.Usd);
    private const ushort HoldCode = (ushort)TransferCode.InferenceHold, FeeCode = (ushort)TransferCode.InferenceFee, RevenueCode = (ushort)TransferCode.InferenceRevenue;

    /// <summary>The ledger account of a customer (its balance; never below zero).</summary>
    public static UInt128 CustomerAccount(ulong customer) => ChartOfAccounts.PrincipalAccount(AccountCode.CustomerBalance, customer);

    /// <summary>The revenue account of a node (by the node's principal id).</summary>
    public static UInt128 NodeRevenueAccount(ulong node) => ChartOfAccounts.PrincipalAccount(AccountCode.NodeRevenue, node);

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
        // The low 2 bits of the id are left for the settlement's transfers (hold + 1, + 2, + 3).
        return ChartOfAccounts.TransferId(TransferSpace.Inference, BinaryPrimitives.ReadUInt64LittleEndian(hash) & ChartOfAccounts.QualifierMax,
            BinaryPrimitives.ReadUInt64LittleEndian(hash[8..]) & ~3UL);
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
