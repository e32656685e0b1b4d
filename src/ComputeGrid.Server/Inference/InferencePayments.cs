using System.Buffers.Binary;
using System.Security.Cryptography;
using ComputeGrid.Core;
using ComputeGrid.Ledger;

namespace ComputeGrid.Server.Inference;

/// <summary>What became of a payment hold.</summary>
public enum HoldOutcome
{
    /// <summary>The maximum cost is held now.</summary>
    Held,
    /// <summary>
    /// This request's hold (same ids, same fingerprint, same amount) is pending already: an orphan of an attempt that
    /// died before its capture. It is used as it is and captured once.
    /// </summary>
    AlreadyHeld,
    /// <summary>This request was answered and charged before (its hold is posted): it is served again without a charge.</summary>
    AlreadyCharged,
    /// <summary>The account's available balance is below the maximum cost (HTTP 402).</summary>
    InsufficientBalance,
    /// <summary>The account does not exist.</summary>
    NoAccount,
    /// <summary>The idempotency key was used before for another request (another fingerprint): HTTP 422.</summary>
    KeyReused,
    /// <summary>Every generation of this key's hold is used up (each voided or expired): HTTP 409.</summary>
    GenerationsExhausted,
}

/// <summary>A hold taken (or found) for a request: its outcome, the hold's id and generation, and what was charged before.</summary>
public readonly record struct HoldResult(HoldOutcome Outcome, UInt128 HoldId, int Generation, long ChargedBeforeMicroUsd = 0)
{
    /// <summary>Whether money is held for this request now (a capture or a void must follow).</summary>
    public bool IsHeld => Outcome is HoldOutcome.Held or HoldOutcome.AlreadyHeld;
}

/// <summary>What became of a capture.</summary>
public enum CaptureOutcome
{
    /// <summary>Charged now (durable).</summary>
    Captured,
    /// <summary>The same capture was in the ledger already (this request was charged before).</summary>
    AlreadyCaptured,
    /// <summary>The ledger refused it (see the result codes): a dead letter.</summary>
    Refused,
}

/// <summary>
/// The money of paid inference, all through the ledger (USDC, micro-USD):
/// <list type="number">
/// <item><b>Hold</b>: before dispatch, a pending transfer customer → escrow of the request's maximum cost (its token count
/// at the node's price), durable, carrying the capture intent for the node the request goes to first
/// (<see cref="CaptureIntent"/>: node, fee, cost). A customer account cannot go below zero
/// (<c>DebitsMustNotExceedCredits</c>), so concurrent requests can never overdraw it: the ledger refuses the hold that would.</item>
/// <item><b>Capture</b>: one linked chain (all or nothing): post the hold partially with the metered cost (the rest of
/// the hold is released), escrow → node revenue (cost − fee), escrow → platform fee. Normally after the answer, by the
/// <see cref="CaptureSettler"/> (or by recovery at the next start); on failover before the answer. A hold that expired
/// first is charged by direct transfers with the same ids (<see cref="ChargeAfterExpiryChain"/>). A refused charge
/// becomes a dead letter (<see cref="DeadLetters"/>).</item>
/// <item><b>Void</b>: a failed request releases its hold.</item>
/// </list>
/// Transfer ids are derived from the request: the customer, the request's key (the idempotency key when there is one)
/// and a generation (0, 1, 2 …), so every retry maps to the same ids and a request can never hold or be charged twice.
/// A hold of a generation that was voided or expired (or is pending for another amount) is passed over for the next
/// one. The hold carries the request's fingerprint (<c>user_data_128</c>): the same key with another request is refused.
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

    /// <summary>
    /// Whether a node issued shares: its part of each charge then goes to its share pool (code
    /// <see cref="TransferCode.ShareRevenue"/>), raising what its holders are owed; else to its revenue account.
    /// </summary>
    public Func<ulong, bool> HasShares { get; set; } = static _ => false;

    /// <summary>The revenue account of a node (by the node's principal id).</summary>
    public static UInt128 NodeRevenueAccount(ulong node) => ChartOfAccounts.PrincipalAccount(AccountCode.NodeRevenue, node);

    /// <summary>The account's balance: posted credits − posted debits − pending debits (micro-USD), or null when absent.</summary>
    public async Task<(long Available, long Held)?> BalanceAsync(ulong customer, CancellationToken ct = default)
    {
        Account[] a = await ledger.LookupAccountsAsync([CustomerAccount(customer)], ct);
        if (a.Length == 0) return null;
        return (checked(a[0].CreditsPosted - a[0].DebitsPosted - a[0].DebitsPending), a[0].DebitsPending);
    }

    /// <summary>The most generations of one request key's hold (each a voided or expired attempt); past it, 409.</summary>
    public const int MaxGenerations = 16;

    /// <summary>
    /// The hold's transfer id for a request key and generation: the same (customer, key, generation) always names the
    /// same hold. Generation 0 is the first attempt; a later one follows a voided or expired attempt of the same key.
    /// </summary>
    public static UInt128 HoldId(ulong customer, string requestKey, int generation = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(generation);
        Span<byte> hash = stackalloc byte[32];
        byte[] key = System.Text.Encoding.UTF8.GetBytes(generation == 0 ? $"{customer}\n{requestKey}" : $"{customer}\n{requestKey}\n{generation}");
        SHA256.HashData(key, hash);
        // The low 2 bits of the id are left for the settlement's transfers (hold + 1, + 2, + 3).
        return ChartOfAccounts.TransferId(TransferSpace.Inference, BinaryPrimitives.ReadUInt64LittleEndian(hash) & ChartOfAccounts.QualifierMax,
            BinaryPrimitives.ReadUInt64LittleEndian(hash[8..]) & ~3UL);
    }

    /// <summary>
    /// Holds <paramref name="maxCostMicroUsd"/> from the customer for the request named by (<paramref name="customer"/>,
    /// <paramref name="requestKey"/>), with its <paramref name="fingerprint"/> and its capture <paramref name="intent"/>,
    /// durably. Tries generation 0, 1, … of the hold's id: a hold of this request that is posted (or, expired, was charged
    /// by direct transfers) means it was charged before; one pending with the same amount and intent is an orphan to
    /// reuse; one voided, expired or pending for another amount or intent (a retry routed to another node or price) is
    /// passed over (voided first if pending). A hold of the key with another fingerprint is <see cref="HoldOutcome.KeyReused"/>.
    /// </summary>
    /// <remarks>
    /// The hold is answered once durable: it carries the capture intent, so a durable hold is a durable charge (recovery
    /// completes it). Its fdatasync runs while the node computes, so the answer does not wait for it.
    /// </remarks>
    public async Task<HoldResult> HoldAsync(ulong customer, string requestKey, long maxCostMicroUsd, uint timeoutSeconds, UInt128 fingerprint,
        CaptureIntent? intent = null, CancellationToken ct = default, UInt128 account = default)
    {
        // An x402 payer pays from its own account (no principal): the ids still derive from (customer 0, request key).
        UInt128 debit = account != default ? account : CustomerAccount(customer);
        for (int g = 0; g < MaxGenerations; g++)
        {
            UInt128 holdId = HoldId(customer, requestKey, g);
            var r = await ledger.CreateTransfersAsync(new[]
            {
                new Transfer
                {
                    Id = holdId, DebitAccountId = debit, CreditAccountId = EscrowAccount, Amount = maxCostMicroUsd,
                    Asset = Asset.Usd.Code, Code = HoldCode, Flags = TransferFlags.Pending, Timeout = timeoutSeconds, UserData128 = fingerprint,
                    UserData64 = intent?.UserData64 ?? 0, UserData32 = intent?.UserData32 ?? 0,
                },
            }, LedgerAck.Durable, ct);
            switch (r[0])
            {
                case CreateTransferResult.Ok: return new HoldResult(HoldOutcome.Held, holdId, g);
                case CreateTransferResult.ExceedsCredits: return new HoldResult(HoldOutcome.InsufficientBalance, holdId, g);
                case CreateTransferResult.DebitAccountNotFound: return new HoldResult(HoldOutcome.NoAccount, holdId, g);
            }
            // A hold of this id exists (or the ledger refused it for another reason): what is it?
            var found = await ledger.LookupTransfersAsync([holdId, holdId + 1], ct);
            if (found.Length == 0 || found[0].Transfer.Id != holdId) throw new InvalidOperationException($"The ledger refused the hold: {r[0]}");
            var (hold, status) = found[0];
            if (hold.UserData128 != fingerprint) return new HoldResult(HoldOutcome.KeyReused, holdId, g);
            switch (status)
            {
                case PendingStatus.Posted:
                    long charged = found.Length > 1 ? found[1].Transfer.Amount : hold.Amount;
                    return new HoldResult(HoldOutcome.AlreadyCharged, holdId, g, charged);
                case PendingStatus.Expired when found.Length > 1 && IsChargeAfterExpiry(found[1].Transfer, holdId):
                    // Its answer was sent (or recovery completed its intent) after the hold expired: charged by direct transfers.
                    return new HoldResult(HoldOutcome.AlreadyCharged, holdId, g, found[1].Transfer.Amount);
                case PendingStatus.Pending when r[0] == CreateTransferResult.Exists:
                    return new HoldResult(HoldOutcome.AlreadyHeld, holdId, g);
                case PendingStatus.Pending:
                    // Pending for another amount or intent: an attempt routed elsewhere. Release it, take the next.
                    await VoidAsync(holdId, ct);
                    break;
            }
            // Voided or expired (or just voided): the next generation.
        }
        return new HoldResult(HoldOutcome.GenerationsExhausted, HoldId(customer, requestKey, MaxGenerations - 1), MaxGenerations - 1);
    }

    /// <summary>
    /// Charges the metered cost, durably: posts the hold with <paramref name="costMicroUsd"/> (≤ the hold; the rest is
    /// released) and splits it between the node (cost − fee) and the platform (fee), in one linked chain. Concurrent
    /// captures share the ledger's group commit.
    /// </summary>
    /// <returns>The outcome and the ledger's result codes (one per transfer of the chain).</returns>
    public async Task<(CaptureOutcome Outcome, CreateTransferResult[] Results)> CaptureAsync(UInt128 holdId, long costMicroUsd, long feeMicroUsd, ulong node, int tokens,
        CancellationToken ct = default)
    {
        Transfer[] chain = Chain(holdId, costMicroUsd, feeMicroUsd, node, tokens, HasShares(node));
        CreateTransferResult[] r = await ledger.CreateTransfersAsync(chain, LedgerAck.Durable, ct);
        bool ok = true;
        foreach (CreateTransferResult x in r) ok &= x == CreateTransferResult.Ok;
        if (ok) return (CaptureOutcome.Captured, r);
        // The very same chain again (all Exists), or the hold posted by this request's same capture before.
        if (Array.TrueForAll(r, x => x == CreateTransferResult.Exists)) return (CaptureOutcome.AlreadyCaptured, r);
        return (CaptureOutcome.Refused, r);
    }

    /// <summary>Releases a failed request's hold (durably); a hold already voided or expired is fine.</summary>
    public async Task VoidAsync(UInt128 holdId, CancellationToken ct = default)
    {
        var r = await ledger.CreateTransfersAsync(new[] { new Transfer { Id = holdId + 1, PendingId = holdId, Flags = TransferFlags.VoidPendingTransfer } }, ct);
        if (r[0] is not (CreateTransferResult.Ok or CreateTransferResult.Exists or CreateTransferResult.PendingTransferAlreadyVoided or CreateTransferResult.PendingTransferExpired))
            throw new InvalidOperationException($"The ledger refused to void the hold: {r[0]}");
    }

    /// <summary>Releases a hold if it is still pending; answers what the ledger said (never throws on a refusal).</summary>
    public async Task<CreateTransferResult> TryVoidAsync(UInt128 holdId, CancellationToken ct = default)
    {
        var r = await ledger.CreateTransfersAsync(new[] { new Transfer { Id = holdId + 1, PendingId = holdId, Flags = TransferFlags.VoidPendingTransfer } }, ct);
        return r[0];
    }

    /// <summary>Writes a batch of settlement transfers (any number of linked chains), durably.</summary>
    public Task<CreateTransferResult[]> SubmitAsync(Transfer[] batch, CancellationToken ct = default) => ledger.CreateTransfersAsync(batch, LedgerAck.Durable, ct);

    /// <summary>One page of an account's transfers, newest first, below <paramref name="beforeTimestamp"/> (null: no such account).</summary>
    public Task<Transfer[]?> HistoryAsync(UInt128 account, long beforeTimestamp, int limit, CancellationToken ct = default) =>
        ledger.GetAccountTransfersAsync(account, beforeTimestamp, limit, ct);

    /// <summary>Looks up transfers with their pending status (missing ids are left out).</summary>
    public Task<(Transfer Transfer, PendingStatus Status)[]> LookupAsync(IReadOnlyList<UInt128> ids, CancellationToken ct = default) => ledger.LookupTransfersAsync(ids, ct);

    /// <summary>
    /// The capture of a hold, one linked chain: post the hold with the cost (the rest is released), pay the node
    /// (cost − fee) and the platform (fee). Ids: hold + 1, + 2, + 3. The node's transfer carries the request's metered
    /// tokens in <c>user_data_32</c> (0: unknown, a capture recovery completed from the hold alone), so a node's epoch
    /// reports can be checked against the ledger (<c>Reports/NodeLedgerStatement</c>).
    /// </summary>
    public static Transfer[] CaptureChain(UInt128 holdId, long costMicroUsd, long feeMicroUsd, ulong node, int tokens, bool sharePool = false) =>
        Chain(holdId, costMicroUsd, feeMicroUsd, node, tokens, sharePool);

    /// <summary>
    /// The charge of a request whose hold expired before its capture (its answer was sent, so the charge is due), one
    /// linked chain with the capture's ids: hold + 1 customer → escrow (the cost, code <see cref="TransferCode.InferenceHold"/>
    /// without the pending flag), hold + 2 escrow → node, hold + 3 escrow → platform. The customer's account may not go
    /// below zero, so the ledger refuses it when the released money was spent meanwhile.
    /// </summary>
    public static Transfer[] ChargeAfterExpiryChain(UInt128 holdId, ulong customer, long costMicroUsd, long feeMicroUsd, ulong node, int tokens, bool sharePool = false,
        UInt128 account = default)
    {
        Transfer[] chain = Chain(holdId, costMicroUsd, feeMicroUsd, node, tokens, sharePool);
        chain[0] = new Transfer
        {
            Id = holdId + 1, DebitAccountId = account != default ? account : CustomerAccount(customer), CreditAccountId = EscrowAccount, Amount = costMicroUsd,
            Asset = Asset.Usd.Code, Code = HoldCode, Flags = chain.Length > 1 ? TransferFlags.Linked : TransferFlags.None,
        };
        return chain;
    }

    /// <summary>Whether <paramref name="t"/> is the first transfer of <see cref="ChargeAfterExpiryChain"/> for <paramref name="holdId"/>.</summary>
    public static bool IsChargeAfterExpiry(in Transfer t, UInt128 holdId) =>
        t.Id == holdId + 1 && t.PendingId == 0 && t.CreditAccountId == EscrowAccount && t.Code == HoldCode && (t.Flags & TransferFlags.Pending) == 0;

    // Post the hold with the cost (the rest is released), pay the node and the platform: one linked chain.
    private static Transfer[] Chain(UInt128 holdId, long costMicroUsd, long feeMicroUsd, ulong node, int tokens, bool sharePool)
    {
        if (feeMicroUsd < 0 || feeMicroUsd > costMicroUsd) throw new ArgumentOutOfRangeException(nameof(feeMicroUsd));
        ArgumentOutOfRangeException.ThrowIfNegative(tokens);
        var chain = new List<Transfer>(3)
        {
            new() { Id = holdId + 1, PendingId = holdId, Amount = costMicroUsd, Flags = TransferFlags.PostPendingTransfer | TransferFlags.Linked },
        };
        long toNode = costMicroUsd - feeMicroUsd;
        if (toNode > 0)
            chain.Add(new Transfer
            {
                Id = holdId + 2, DebitAccountId = EscrowAccount, CreditAccountId = sharePool ? ChartOfAccounts.SharePool(node) : NodeRevenueAccount(node), Amount = toNode,
                Asset = Asset.Usd.Code, Code = sharePool ? (ushort)TransferCode.ShareRevenue : RevenueCode, Flags = TransferFlags.Linked, UserData32 = (uint)tokens,
            });
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
