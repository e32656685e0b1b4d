using ComputeGrid.Chain.Contracts;
using ComputeGrid.Core;
using ComputeGrid.Exchange.Pipeline;
using ComputeGrid.Exchange.StateMachine;
using ComputeGrid.Exchange.Trading;
using ComputeGrid.Ledger;
using ComputeGrid.Server.Tokens;
using Microsoft.Extensions.Logging;

namespace ComputeGrid.Server.Chain;

/// <summary>
/// The share bridge's custody moves (exactly once) and the custody holder's ledger revenue (paid out exactly once).
/// <para>In-transit revenue: a withdrawal's shares earn for the custody holder in the ledger from their move to custody
/// (R_in, the custody holder's checkpoint right after it) until the mint (R_mint, the token's R then), while on chain
/// nobody holds them; a deposit's from the burn (the token's R at that log) until the move out of custody (R_out). That
/// revenue, n × ΔR / S, is the withdrawer's (resp. the depositor's): each transit is closed once with its units n × ΔR
/// and paid from the custody holder's claims through the ledger with an id from its source, so a restart pays it once.
/// Amounts are floored per principal over all its transits of a node, like the accumulator floors a holder's n.</para>
/// </summary>
public sealed partial class ShareBridge
{
    /// <summary>
    /// Moves <paramref name="shares"/> of <paramref name="node"/> from <paramref name="from"/> to <paramref name="to"/> once
    /// per <paramref name="source"/>; returns the move as recorded (with the ledger's R it was applied at), or null when the
    /// exchange refused it (too few free shares). The move is marked pending before it is sent, so a crash between the
    /// exchange applying it and its record is resolved by the next move of the node: custody's holding at the count plus
    /// the pending delta means applied (record it), at the count means not (forget it). Anything else throws.
    /// </summary>
    private async Task<CustodyMove?> MoveOnceAsync(long node, string source, long from, long to, long shares, long custodyDelta, CancellationToken ct)
    {
        if (store.CustodyMoveOf(source) is { } done) return done;
        long held = await CustodyHeldAsync(node, ct).ConfigureAwait(false);
        long counted = store.CustodyShares(node);
        if (store.PendingCustodyMove(node) is (string pending, long delta))
        {
            if (held == checked(counted + delta))
            {
                // Applied before a crash: nothing moved custody since, so its checkpoint is still that move's R.
                store.RecordCustodyMove(new CustodyMove(pending, node, delta, await revenue.CheckpointAsync((ulong)node, CustodyHolder, ct).ConfigureAwait(false)));
                if (pending == source) return store.CustodyMoveOf(source);
                counted = store.CustodyShares(node);
            }
            else store.ClearPendingCustodyMove(node);
        }
        if (held != counted)
            throw new InvalidOperationException($"The custody holder holds {held} shares of node {node}, the bridge counts {counted}: something else moved them.");
        store.SetPendingCustodyMove(node, source, custodyDelta);
        CommandOutcome o = await exchange.SubmitAsync(ExchangeCommand.TransferShares(from, node, to, shares), CancellationToken.None).ConfigureAwait(false);
        if (!o.Result.Ok)
        {
            store.ClearPendingCustodyMove(node);
            if (o.Result.Error == ExchangeError.InsufficientShares) return null;
            throw new InvalidOperationException($"The exchange refused to move {shares} shares of node {node} from {from} to {to}: {o.Result.Error}");
        }
        // The move settled custody at the ledger's R of that instant; the gate keeps every other custody move out.
        var move = new CustodyMove(source, node, custodyDelta, await revenue.CheckpointAsync((ulong)node, CustodyHolder, CancellationToken.None).ConfigureAwait(false));
        store.RecordCustodyMove(move);
        return move;
    }

    private Task<long> CustodyHeldAsync(long node, CancellationToken ct) => exchange.ReadAsync(v => v.HoldingOf((long)CustodyHolder, node).Total, ct);

    private async Task<long> SupplyAsync(long node, CancellationToken ct) =>
        (await revenue.PoolAsync((ulong)node, ct).ConfigureAwait(false))?.Supply ?? throw new InvalidOperationException($"Node {node} has issued no shares.");

    // Closes a withdrawal's transit from its move to custody to revenueTo (its mint, or its move back).
    private async Task CloseTransitAsync(string id, long node, long revenueTo, CancellationToken ct)
    {
        if (store.CustodyMoveOf(id) is not { } moved)
        {
            log?.LogWarning("Share withdrawal {Id} has no recorded custody move (older than the transit record): its in-transit revenue stays with custody", id);
            return;
        }
        store.CloseTransit(id, moved.Revenue, revenueTo, await SupplyAsync(node, ct).ConfigureAwait(false));
    }

    /// <summary>
    /// The custody holder's ledger revenue leaves it exactly once: it claims what its token pulled in all plus every
    /// closed transit (each step reads what is done before acting, so a crash between them finishes later), pays each
    /// transit to its principal (an id per transit), and the rest (the token's part) leaves for
    /// <see cref="AccountCode.ChainCustody"/>. What stays owed is rounding only.
    /// </summary>
    private async Task SettleCustodyAsync(long node, ShareTokenClient client, CancellationToken ct)
    {
        long pulled = await client.PulledAsync().ConfigureAwait(false);
        long due = checked(pulled + store.TransitTotal(node));
        Entitlement custody = (await revenue.EntitlementAsync((ulong)node, CustodyHolder, ct).ConfigureAwait(false))!;
        if (due > custody.Claimed)
        {
            ClaimOutcome claim = await revenue.ClaimAsync((ulong)node, CustodyHolder, due - custody.Claimed, CustodyBalance, ct).ConfigureAwait(false);
            if (claim.Decision != ComputeGrid.Tokens.ClaimDecision.Claim)
                throw new InvalidOperationException($"Node {node}'s custody holder is due {due} micro-USD (pulled {pulled} + transit), but may claim only {claim.OwedBefore} more than its {custody.Claimed}: {claim.Decision}.");
        }
        long unpaid = 0;
        foreach (TransitRow t in store.UnpaidTransits(node))
        {
            if (ShareEndpoints.BalanceOf(trust, t.Principal) is not UInt128 into)
            {
                unpaid = checked(unpaid + t.Amount!.Value); // a principal disabled since: kept for it, paid when it is back
                continue;
            }
            await PayAsync(ShareBridgeIds.TransitPaid(t.Source), into, t.Amount!.Value, node, ct).ConfigureAwait(false);
            store.SetTransitPaid(t.Source);
        }
        Account balance = (await ledger.LookupAccountsAsync(new[] { CustodyBalance }, ct).ConfigureAwait(false))[0];
        long left = checked(balance.CreditsPosted - balance.DebitsPosted - unpaid);
        if (left > 0) await PayAsync(ShareBridgeIds.DividendsPaid(balance.DebitsPosted), ServerStablecoin, left, node, ct).ConfigureAwait(false);
    }

    private async Task PayAsync(UInt128 id, UInt128 into, long amount, long node, CancellationToken ct)
    {
        var paid = new Transfer
        {
            Id = id, DebitAccountId = CustodyBalance, CreditAccountId = into, Amount = amount, Asset = Asset.Usd.Code,
            Code = (ushort)TransferCode.ChainShareDividends, UserData64 = (ulong)node,
        };
        CreateTransferResult r = (await ledger.CreateTransfersAsync(new[] { paid }, LedgerAck.Durable, ct).ConfigureAwait(false))[0];
        if (r is not (CreateTransferResult.Ok or CreateTransferResult.Exists))
            throw new InvalidOperationException($"The ledger refused to pay {amount} micro-USD of node {node}'s custody revenue to {into}: {r}");
    }
}
