using System.Diagnostics.Metrics;
using ComputeGrid.Server.Chain;
using ComputeGrid.Server.Energy;
using ComputeGrid.Server.Inference;
using Microsoft.Extensions.DependencyInjection;

namespace ComputeGrid.Server.Observability;

/// <summary>
/// The server's own instruments, all observed when a reader collects (nothing on a request's path):
/// meter <c>ComputeGrid.Server</c> — paid inference's settlement (captures queued and done, retries) and every dead
/// letter, suspense and write-off the server keeps (refused captures, x402 settlements written off, bridge deposits in
/// suspense, failed withdrawals, site bookings that conflicted), x402 intents by state and the settler's lag; meter
/// <c>ComputeGrid.Energy</c> — each live site's power split, price and curtailment (label <c>site</c>).
/// </summary>
public static class ServerMetrics
{
    /// <summary>The server's meter.</summary>
    public const string MeterName = "ComputeGrid.Server";

    /// <summary>The live sites' meter.</summary>
    public const string EnergyMeterName = "ComputeGrid.Energy";

    /// <summary>Makes the instruments; the chain's stores are looked up in <paramref name="services"/> (absent without a chain).</summary>
    public static void Register(ServerMeters meters, IServiceProvider services, CaptureSettler settler)
    {
        DeadLetters deadLetters = services.GetRequiredService<DeadLetters>();
        TimeProvider time = services.GetRequiredService<TimeProvider>();
        Meter m = meters.Create(new MeterOptions(MeterName));
        m.CreateObservableCounter("computegrid.inference.dead_letters", () => deadLetters.Count, "{charge}",
            "Charges the ledger refused (each listed at /api/operator/dead-letters), all time.");
        m.CreateObservableGauge("computegrid.inference.captures_queued", () => settler.Queued, "{capture}",
            "Answered requests whose capture waits in the settler's queue (the inference settler's lag).");
        m.CreateObservableCounter("computegrid.inference.captures", () => (long)settler.Totals.Captured, "{capture}",
            "Captures posted by the settler and recovery since start.");
        m.CreateObservableCounter("computegrid.inference.charged_after_expiry", () => (long)settler.Totals.ChargedAfterExpiry, "{charge}",
            "Answered requests whose hold expired first, charged by direct transfers since start.");
        m.CreateObservableCounter("computegrid.inference.settle_retries", () => settler.Retries, "{retry}",
            "Failed settlement writes retried since start.");

        if (services.GetService<X402Payments>() is { } x402)
        {
            m.CreateObservableGauge("computegrid.x402.settlements", () => X402ByState(x402), "{intent}",
                "Settlement intents by state (failed: served, never settled, written off to X402Losses; listed at /api/chain/settlements?state=failed).");
            m.CreateObservableCounter("computegrid.x402.settlement_failures", () => x402.Settler.FailedTotal, "{intent}",
                "Settlements that finally failed after service (written off) since start.");
            m.CreateObservableCounter("computegrid.x402.transactions_sent", () => x402.Settler.SentTotal, "{transaction}",
                "transferWithAuthorization transactions broadcast since start.");
            m.CreateObservableCounter("computegrid.x402.settled", () => x402.Settler.SettledTotal, "{intent}",
                "Settlements confirmed on chain since start.");
            m.CreateObservableGauge("computegrid.x402.settlement_lag", () => SettlerLagSeconds(x402, time), "s",
                "Age of the oldest settlement intent not final yet (reserved or sent), by the server's clock; 0 when none is open.");
        }
        if (services.GetService<BridgeStore>() is { } bridge)
            m.CreateObservableGauge("computegrid.bridge.undelivered", () => Undelivered(bridge), "{item}",
                "What the bridge could not deliver, all time, by kind: deposit_suspense (credited to ChainSuspense), share_deposit_suspense (left with the custody holder), withdrawal_failed, share_withdrawal_failed.");

        LiveSites sites = services.GetRequiredService<LiveSites>();
        if (sites.All.Count == 0) return;
        Meter e = meters.Create(new MeterOptions(EnergyMeterName));
        e.CreateObservableGauge("computegrid.site.power_mw", () => SitePower(sites), null,
            "Each live site's facility power at its last decided interval, by load: gpu (AI load with cooling), miners (running), curtailed (miners held off).");
        e.CreateObservableGauge("computegrid.site.interconnect_mw", () => Sites(sites, s => s.State.InterconnectKw / 1000), null, "Each live site's interconnect limit.");
        e.CreateObservableGauge("computegrid.site.price_usd_per_mwh", () => Sites(sites, s => s.State.LastPriceUsdPerMwh ?? 0), null,
            "The last known real-time power price at each live site (0 before its first interval).");
        e.CreateObservableGauge("computegrid.site.curtailment_guard", () => Sites(sites, s => s.State.PeakGuardActive || s.State.Emergency ? 1 : 0), null,
            "1 while a site holds its miners off for a likely 4CP peak hour or a grid emergency, else 0.");
        e.CreateObservableCounter("computegrid.site.curtailed_energy_mwh", () => Sites(sites, s => s.State.Economics.CurtailedMwh), null,
            "Miner energy each live site curtailed since its replay started.");
        e.CreateObservableCounter("computegrid.site.booking_conflicts", () => Sites(sites, s => (double)s.BookingConflicts), "{interval}",
            "Intervals whose replayed economics differed from what the ledger had booked (the first booking stands) since start.");
    }

    private static IEnumerable<Measurement<long>> X402ByState(X402Payments x402)
    {
        foreach (var (state, count) in x402.Store.Counts())
            yield return new Measurement<long>(count, new KeyValuePair<string, object?>("state", state.ToString().ToLowerInvariant()));
    }

    private static double SettlerLagSeconds(X402Payments x402, TimeProvider time) =>
        x402.Store.OldestOpenCreatedUnixMs() is long created ? Math.Max(0, time.GetUtcNow().ToUnixTimeMilliseconds() - created) / 1000.0 : 0;

    private static Measurement<long>[] Undelivered(BridgeStore bridge)
    {
        var (deposits, shareDeposits, withdrawals, shareWithdrawals) = bridge.Undelivered();
        return
        [
            new(deposits, new KeyValuePair<string, object?>("kind", "deposit_suspense")),
            new(shareDeposits, new KeyValuePair<string, object?>("kind", "share_deposit_suspense")),
            new(withdrawals, new KeyValuePair<string, object?>("kind", "withdrawal_failed")),
            new(shareWithdrawals, new KeyValuePair<string, object?>("kind", "share_withdrawal_failed")),
        ];
    }

    private static IEnumerable<Measurement<double>> Sites(LiveSites sites, Func<LiveSite, double> read)
    {
        foreach (LiveSite s in sites.All) yield return new Measurement<double>(read(s), new KeyValuePair<string, object?>("site", s.Name));
    }

    private static IEnumerable<Measurement<double>> SitePower(LiveSites sites)
    {
        foreach (LiveSite s in sites.All)
        {
            LiveSiteState state = s.State;
            var p = s.Site.Problem;
            double minersFullKw = p.Pue * p.Groups.Sum(g => g.Count * g.WattsEach) / 1000;
            var site = new KeyValuePair<string, object?>("site", s.Name);
            yield return new(state.AiFacilityKw / 1000, site, new("load", "gpu"));
            yield return new(state.MinerFacilityKw / 1000, site, new("load", "miners"));
            yield return new(Math.Max(0, minersFullKw - state.MinerFacilityKw) / 1000, site, new("load", "curtailed"));
        }
    }
}
