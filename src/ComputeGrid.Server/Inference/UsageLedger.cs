using ComputeGrid.Core;
using ComputeGrid.Ledger;

namespace ComputeGrid.Server.Inference;

/// <summary>
/// One paid request as the ledger recorded it: the charge (the post of its hold, or the direct charge of a hold that
/// expired first; <see cref="InferencePayments"/>), the node's leg and the platform's fee. Nothing here is kept beside
/// the ledger: a restart reads the same requests back from the log.
/// </summary>
/// <param name="Timestamp">The charge's ledger timestamp (Unix ns).</param>
/// <param name="HoldId">The hold's transfer id: the receipt's <c>X-CG-Transfer-Id</c>.</param>
/// <param name="CostMicroUsd">What the request cost.</param>
/// <param name="FeeMicroUsd">The platform's part of it.</param>
/// <param name="PayerAccount">The account that paid (a customer's balance, or an x402 payer's account).</param>
/// <param name="Node">The node's principal id: the account its part went to, else the hold's capture intent; null when neither says.</param>
/// <param name="Tokens">The metered tokens the node's transfer carries; null when unknown (a capture recovery completed from the hold alone, or no node leg).</param>
public readonly record struct UsageCharge(long Timestamp, UInt128 HoldId, long CostMicroUsd, long FeeMicroUsd, UInt128 PayerAccount, ulong? Node, int? Tokens);

/// <summary>One page of an account's history read for usage: its charges and where the page ended.</summary>
/// <param name="Result">The history's answer (the account may not exist; a cursor may not be one of its transfers).</param>
/// <param name="Charges">The paid requests among the page's transfers, newest first.</param>
/// <param name="Visited">Transfers the page held (all kinds).</param>
/// <param name="Oldest">The oldest transfer's timestamp (the next page's cursor), or 0 for an empty page.</param>
public sealed record UsageLedgerPage(HistoryResult Result, IReadOnlyList<UsageCharge> Charges, int Visited, long Oldest);

/// <summary>
/// Reads paid requests back from the ledger, a page of an account's history at a time, on the ledger's thread
/// (<see cref="LedgerEngine.ReadAsync{T}"/>): O(page) per read, with two id lookups per request for its node and fee legs.
/// The account is a customer's balance (its own requests) or the inference escrow (every request, keyed and x402).
/// </summary>
public static class UsageLedger
{
    /// <summary>Reads the page of <paramref name="account"/>'s history below <paramref name="before"/> (a cursor the ledger accepts).</summary>
    public static UsageLedgerPage Page(LedgerStateMachine sm, UInt128 account, long before, int pageSize)
    {
        var into = new Transfer[pageSize];
        HistoryResult result = sm.GetAccountTransfers(account, before, into, out int count);
        if (result != HistoryResult.Ok) return new UsageLedgerPage(result, [], 0, 0);
        var charges = new List<UsageCharge>();
        for (int i = 0; i < count; i++)
            if (IsCharge(in into[i])) charges.Add(Charge(sm, in into[i]));
        return new UsageLedgerPage(result, charges, count, count == 0 ? 0 : into[count - 1].Timestamp);
    }

    /// <summary>
    /// Whether a stored transfer is a request's charge: it moved the cost from the payer into the escrow (the post of
    /// an <see cref="TransferCode.InferenceHold"/>, or its direct charge after expiry). Holds and voids moved nothing;
    /// the node and fee legs move the same money on from the escrow.
    /// </summary>
    public static bool IsCharge(in Transfer t) =>
        LedgerStateMachine.IsPosting(in t) && t.Code == (ushort)TransferCode.InferenceHold && t.Asset == Asset.Usd.Code
        && t.CreditAccountId == InferencePayments.EscrowAccount;

    private static UsageCharge Charge(LedgerStateMachine sm, in Transfer charge)
    {
        // The charge is hold + 1; its node leg hold + 2, its fee hold + 3 (InferencePayments.CaptureChain).
        UInt128 hold = charge.Id - 1;
        ulong? node = null;
        int? tokens = null;
        long fee = 0;
        if (sm.TryGetTransfer(hold + 2, out Transfer leg, out _) && leg.DebitAccountId == InferencePayments.EscrowAccount
            && leg.Code is (ushort)TransferCode.InferenceRevenue or (ushort)TransferCode.ShareRevenue
            && ChartOfAccounts.TryDecode(leg.CreditAccountId, out _, out _, out ulong number))
        {
            node = number; // a node's revenue account and its share pool are both numbered by the node's principal
            tokens = leg.UserData32 == 0 ? null : checked((int)leg.UserData32);
        }
        else if (sm.TryGetTransfer(hold, out Transfer h, out _) && CaptureIntent.Of(in h) is { } intent)
        {
            node = intent.NodePrincipal;
        }
        if (sm.TryGetTransfer(hold + 3, out Transfer f, out _) && f.Code == (ushort)TransferCode.InferenceFee && f.DebitAccountId == InferencePayments.EscrowAccount)
            fee = f.Amount;
        return new UsageCharge(charge.Timestamp, hold, charge.Amount, fee, charge.DebitAccountId, node, tokens);
    }
}
