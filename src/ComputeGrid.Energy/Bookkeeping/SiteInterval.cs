using ComputeGrid.Energy.Dispatch;
using ComputeGrid.Energy.Series;

namespace ComputeGrid.Energy.Bookkeeping;

/// <summary>
/// One decided interval of a hybrid site, as the ledger books it: the accounting's amounts (micro-USD, each rounded
/// once by <see cref="IntervalEconomics.Micro"/>, exactly as <see cref="SiteAccumulator"/> rounds them) and the day's
/// bitcoin price that turns the mining revenue into satoshis.
/// </summary>
/// <param name="StartUtc">The interval's start (UTC); with the site, it names the interval's transfers.</param>
/// <param name="AiRevenueMicroUsd">AI revenue (leases and inference of the site's nodes).</param>
/// <param name="MiningRevenueMicroUsd">Mining revenue valued at the day's price (never negative).</param>
/// <param name="EnergyCostMicroUsd">The energy bill (negative when the price was).</param>
/// <param name="PeakChargeMicroUsd">The 4CP peak charge (zero outside the peak-charge intervals).</param>
/// <param name="RestartWearMicroUsd">Miner restart wear (never negative).</param>
/// <param name="BtcPriceMicroUsd">The day's bitcoin price, micro-USD per BTC (positive).</param>
public readonly record struct SiteInterval(DateTime StartUtc, long AiRevenueMicroUsd, long MiningRevenueMicroUsd, long EnergyCostMicroUsd,
    long PeakChargeMicroUsd, long RestartWearMicroUsd, long BtcPriceMicroUsd)
{
    /// <summary>AI + mining − energy − peak − wear, as <see cref="SiteValue.ValueMicroUsd"/> adds it.</summary>
    public long ValueMicroUsd => checked(AiRevenueMicroUsd + MiningRevenueMicroUsd - EnergyCostMicroUsd - PeakChargeMicroUsd - RestartWearMicroUsd);

    /// <summary>
    /// Every interval of a backtest run, by the accounting's own formula (<see cref="IntervalEconomics"/>) from the state
    /// the run started in (<see cref="PolicyRun.InitialRunning"/>), priced at each interval's UTC day in <paramref name="btc"/>.
    /// Summed, the amounts are the run's <see cref="PolicyRun.Value"/> to the micro-dollar.
    /// </summary>
    public static SiteInterval[] FromRun(SiteProblem problem, PolicyRun run, BitcoinSeries btc)
    {
        SiteProblem p = problem;
        int groups = p.Groups.Length;
        var previous = new double[groups];
        int[] initial = run.InitialRunning ?? p.InitialRunning;
        for (int g = 0; g < groups; g++) previous[g] = initial[g];
        var now = new double[groups];
        double startFraction = IntervalEconomics.StartFraction(p.RestartMinutes, p.IntervalMinutes);
        var intervals = new SiteInterval[p.Count];
        for (int t = 0; t < p.Count; t++)
        {
            for (int g = 0; g < groups; g++) now[g] = run.Running[g][t];
            IntervalFlow flow = IntervalEconomics.Flow(p.Groups, p.Pue, p.AiItKw[t], startFraction, now, previous);
            IntervalAmounts a = IntervalEconomics.Amounts(flow, p.AiRevenueUsd[t], p.HashpriceUsdPerThDay[t], p.PoolFeeFraction,
                p.PriceUsdPerMwh[t], p.PeakChargeUsdPerKw[t], p.RestartWearUsd, p.IntervalHours);
            DateTime start = p.IntervalStartUtc(t);
            intervals[t] = new SiteInterval(start, IntervalEconomics.Micro(a.AiUsd), IntervalEconomics.Micro(a.MiningUsd),
                IntervalEconomics.Micro(a.EnergyUsd), p.PeakChargeUsdPerKw[t] != 0 ? IntervalEconomics.Micro(a.PeakUsd) : 0,
                IntervalEconomics.Micro(a.WearUsd), BitcoinConversion.PriceMicroUsd(btc.Day(DateOnly.FromDateTime(start)).PriceUsd));
        }
        return intervals;
    }
}
