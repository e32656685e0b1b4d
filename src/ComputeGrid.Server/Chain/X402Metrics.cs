namespace ComputeGrid.Server.Chain;

/// <summary>The x402 settlement metrics of <c>/metrics</c> (Prometheus text); nothing without a chain.</summary>
public static class X402Metrics
{
    /// <summary>The metrics of <paramref name="x402"/>, or an empty string when the server has no chain.</summary>
    public static string Of(X402Payments? x402)
    {
        if (x402 is null) return "";
        var counts = x402.Store.Counts();
        return $"""
            # HELP computegrid_x402_settlements Settlement intents by state (failed: served, never settled, written off to X402Losses; listed at /api/chain/settlements?state=failed).
            # TYPE computegrid_x402_settlements gauge
            computegrid_x402_settlements{"{"}state="reserved"{"}"} {counts[X402State.Reserved]}
            computegrid_x402_settlements{"{"}state="sent"{"}"} {counts[X402State.Sent]}
            computegrid_x402_settlements{"{"}state="settled"{"}"} {counts[X402State.Settled]}
            computegrid_x402_settlements{"{"}state="failed"{"}"} {counts[X402State.Failed]}
            computegrid_x402_settlements{"{"}state="released"{"}"} {counts[X402State.Released]}
            # HELP computegrid_x402_settlement_failures_total Settlements that finally failed after service since start.
            # TYPE computegrid_x402_settlement_failures_total counter
            computegrid_x402_settlement_failures_total {x402.Settler.FailedTotal}
            # HELP computegrid_x402_transactions_sent_total transferWithAuthorization transactions broadcast since start.
            # TYPE computegrid_x402_transactions_sent_total counter
            computegrid_x402_transactions_sent_total {x402.Settler.SentTotal}

            """;
    }
}
