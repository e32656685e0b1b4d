namespace ComputeGrid.Energy.Dispatch;

/// <summary>
/// The money and energy of one site over a horizon. Amounts are <c>long</c> micro-USD: each interval's amounts are
/// computed from the rates, rounded to the micro-dollar once, and summed with checked arithmetic.
/// </summary>
public sealed record SiteValue
{
    public long AiRevenueMicroUsd { get; init; }
    public long MiningRevenueMicroUsd { get; init; }
    public long EnergyCostMicroUsd { get; init; }
    public long PeakChargeMicroUsd { get; init; }
    public long RestartWearMicroUsd { get; init; }

    /// <summary>AI revenue + mining revenue − energy cost − peak charge − restart wear.</summary>
    public long ValueMicroUsd => checked(AiRevenueMicroUsd + MiningRevenueMicroUsd - EnergyCostMicroUsd - PeakChargeMicroUsd - RestartWearMicroUsd);

    /// <summary>Facility energy drawn (MWh).</summary>
    public double EnergyMwh { get; init; }

    /// <summary>Miner energy not drawn (facility MWh) relative to what the fleet could have drawn beside the firm AI load.</summary>
    public double CurtailedMwh { get; init; }

    /// <summary>Hours in which miners that fit beside the AI load were held off (price, peak guard, emergency, ramp).</summary>
    public double CurtailedHours { get; init; }

    /// <summary>Miner restarts (miners turned on).</summary>
    public double Restarts { get; init; }

    /// <summary>Largest facility load of any interval (kW).</summary>
    public double MaxFacilityKw { get; init; }

    /// <summary>Intervals whose facility load exceeded the interconnect limit (must be zero).</summary>
    public int InterconnectViolations { get; init; }

    /// <summary>Intervals whose miner ramp exceeded a ramp limit, beyond what the interconnect forced (must be zero).</summary>
    public int RampViolations { get; init; }

    /// <summary>Average facility load over the peak-charge intervals (kW), NaN when the site has none.</summary>
    public double PeakIntervalsAverageKw { get; init; }

    /// <summary>Value in USD (for display and ratios only).</summary>
    public double ValueUsd => ValueMicroUsd / 1e6;
}

/// <summary>
/// Accumulates a schedule interval by interval into a <see cref="SiteValue"/>. The single definition of the site's
/// economics, shared by the controllers' backtests and the optimizer's check of its own schedule:
/// <list type="bullet">
/// <item>miner IT kW = Σ running × W; facility kW = PUE × (AI IT kW + miner IT kW);</item>
/// <item>starts = max(0, running − previous running) per group; a started miner hashes only
/// (interval − restart minutes) of its first interval but draws power for all of it;</item>
/// <item>mining revenue = hashprice × hashing TH/s × hours / 24 × (1 − pool fee);</item>
/// <item>energy cost = price × facility MW × hours; peak charge = weight × facility kW; wear = starts × wear cost.</item>
/// </list>
/// Running counts are doubles so the optimizer's fractional (relaxed) schedules are valued by the same code.
/// </summary>
public sealed class SiteAccumulator
{
    private readonly SiteProblem _p;
    private readonly double[] _previous;
    private long _ai, _mining, _energy, _peak, _wear;
    private double _energyMwh, _curtailedMwh, _curtailedHours, _restarts, _maxKw, _peakKwSum;
    private int _peakIntervals, _violations, _rampViolations, _next;
    private readonly double _fleetKw;
    private readonly double _largestMinerKw;

    public SiteAccumulator(SiteProblem problem)
    {
        _p = problem;
        _previous = new double[problem.Groups.Length];
        for (int g = 0; g < _previous.Length; g++) _previous[g] = problem.InitialRunning[g];
        foreach (MinerGroup g in problem.Groups)
        {
            _fleetKw += g.FleetKw;
            _largestMinerKw = Math.Max(_largestMinerKw, g.WattsEach / 1000.0);
        }
    }

    /// <summary>Adds interval <paramref name="t"/> (intervals must be added in order, from 0).</summary>
    public void Add(int t, ReadOnlySpan<double> running)
    {
        if (t != _next) throw new InvalidOperationException($"Interval {t} added out of order (expected {_next}).");
        _next++;
        SiteProblem p = _p;
        double hours = p.IntervalHours;
        IntervalFlow flow = IntervalEconomics.Flow(p.Groups, p.Pue, p.AiItKw[t], IntervalEconomics.StartFraction(p.RestartMinutes, p.IntervalMinutes), running, _previous);
        IntervalAmounts amounts = IntervalEconomics.Amounts(flow, p.AiRevenueUsd[t], p.HashpriceUsdPerThDay[t], p.PoolFeeFraction,
            p.PriceUsdPerMwh[t], p.PeakChargeUsdPerKw[t], p.RestartWearUsd, hours);
        double minerKw = flow.MinerKw, facilityKw = flow.FacilityKw;

        if (facilityKw > p.InterconnectKw * (1 + 1e-9) + 1e-6) _violations++;
        double ramp = minerKw - flow.PreviousMinerKw;
        if (ramp > p.RampUpKwPerInterval + 1e-6) _rampViolations++;
        // A drop beyond the ramp-down limit is excused by an emergency, or when the interconnect forced it (the site then
        // sits at the limit). The test is exact, as the optimizer's model is: a whole-miner schedule that stops one
        // miner short of the limit is flagged (this matters only for sites with a finite ramp-down limit).
        bool forced = p.Emergency[t] || facilityKw >= p.InterconnectKw * (1 - 1e-9) - 1e-6;
        if (-ramp > p.RampDownKwPerInterval + 1e-6 && !forced) _rampViolations++;
        _maxKw = Math.Max(_maxKw, facilityKw);

        _ai = checked(_ai + IntervalEconomics.Micro(amounts.AiUsd));
        _mining = checked(_mining + IntervalEconomics.Micro(amounts.MiningUsd));
        _energy = checked(_energy + IntervalEconomics.Micro(amounts.EnergyUsd));
        if (p.PeakChargeUsdPerKw[t] != 0)
        {
            _peak = checked(_peak + IntervalEconomics.Micro(amounts.PeakUsd));
            _peakKwSum += facilityKw;
            _peakIntervals++;
        }
        _wear = checked(_wear + IntervalEconomics.Micro(amounts.WearUsd));
        _energyMwh += facilityKw / 1000.0 * hours;
        // Curtailed by choice: what the fleet could have drawn beside the firm AI load, minus what it drew.
        double curtailedKw = Math.Min(_fleetKw, p.MinerHeadroomKw(t)) - minerKw;
        // Integer miners leave up to one miner's power unused beside the AI load: that is not a curtailment.
        if (curtailedKw > _largestMinerKw + 1e-6)
        {
            _curtailedMwh += p.Pue * curtailedKw / 1000.0 * hours;
            _curtailedHours += hours;
        }
        _restarts += flow.Starts;
    }

    /// <summary>Adds an integer schedule's interval.</summary>
    public void Add(int t, ReadOnlySpan<int> running)
    {
        Span<double> d = stackalloc double[running.Length];
        for (int g = 0; g < running.Length; g++) d[g] = running[g];
        Add(t, d);
    }

    /// <summary>The totals so far.</summary>
    public SiteValue Result() => new()
    {
        AiRevenueMicroUsd = _ai,
        MiningRevenueMicroUsd = _mining,
        EnergyCostMicroUsd = _energy,
        PeakChargeMicroUsd = _peak,
        RestartWearMicroUsd = _wear,
        EnergyMwh = _energyMwh,
        CurtailedMwh = _curtailedMwh,
        CurtailedHours = _curtailedHours,
        Restarts = _restarts,
        MaxFacilityKw = _maxKw,
        InterconnectViolations = _violations,
        RampViolations = _rampViolations,
        PeakIntervalsAverageKw = _peakIntervals == 0 ? double.NaN : _peakKwSum / _peakIntervals,
    };

    /// <summary>Values a whole schedule (<c>running[g][t]</c>).</summary>
    public static SiteValue Evaluate(SiteProblem problem, double[][] running)
    {
        var acc = new SiteAccumulator(problem);
        Span<double> r = stackalloc double[problem.Groups.Length];
        for (int t = 0; t < problem.Count; t++)
        {
            for (int g = 0; g < r.Length; g++) r[g] = running[g][t];
            acc.Add(t, r);
        }
        return acc.Result();
    }
}

/// <summary>Physical quantities of one interval of a schedule.</summary>
/// <param name="MinerKw">Miners' IT power (kW).</param>
/// <param name="PreviousMinerKw">Miners' IT power in the interval before (kW).</param>
/// <param name="FacilityKw">PUE × (AI IT + miner IT) (kW).</param>
/// <param name="HashingTh">TH/s hashing on average over the interval (started miners hash only after their restart).</param>
/// <param name="Starts">Miners started (turned on) in the interval.</param>
public readonly record struct IntervalFlow(double MinerKw, double PreviousMinerKw, double FacilityKw, double HashingTh, double Starts);

/// <summary>The money of one interval, in USD before rounding to micro-USD.</summary>
public readonly record struct IntervalAmounts(double AiUsd, double MiningUsd, double EnergyUsd, double PeakUsd, double WearUsd)
{
    /// <summary>AI + mining − energy − peak − wear (USD, unrounded).</summary>
    public double ValueUsd => AiUsd + MiningUsd - EnergyUsd - PeakUsd - WearUsd;
}

/// <summary>
/// The site's economics for one interval — the single formula behind <see cref="SiteAccumulator"/>, the backtest CSV
/// and the optimizer's check of its own schedule (each then rounds, sums or compares as it needs).
/// </summary>
public static class IntervalEconomics
{
    /// <summary>The share of its first interval a started miner spends restarting (not hashing).</summary>
    public static double StartFraction(double restartMinutes, int intervalMinutes) => Math.Min(restartMinutes, intervalMinutes) / intervalMinutes;

    /// <summary>
    /// The interval's power and hashing for <paramref name="running"/> miners per group; <paramref name="previous"/>
    /// holds the previous interval's counts on entry and this interval's on return.
    /// </summary>
    public static IntervalFlow Flow(MinerGroup[] groups, double pue, double aiItKw, double startFraction, ReadOnlySpan<double> running, Span<double> previous)
    {
        double minerKw = 0, prevMinerKw = 0, hashingTh = 0, starts = 0;
        for (int g = 0; g < groups.Length; g++)
        {
            MinerGroup grp = groups[g];
            double r = running[g];
            double s = Math.Max(0, r - previous[g]);
            minerKw += r * grp.WattsEach / 1000.0;
            prevMinerKw += previous[g] * grp.WattsEach / 1000.0;
            hashingTh += grp.TerahashEach * (r - s * startFraction);
            starts += s;
            previous[g] = r;
        }
        return new IntervalFlow(minerKw, prevMinerKw, pue * (aiItKw + minerKw), hashingTh, starts);
    }

    /// <summary>
    /// The interval's money: mining revenue = hashprice × hashing TH/s × hours / 24 × (1 − pool fee); energy cost =
    /// price × facility MW × hours; peak charge = weight × facility kW; wear = starts × wear cost.
    /// </summary>
    public static IntervalAmounts Amounts(in IntervalFlow flow, double aiRevenueUsd, double hashprice, double poolFeeFraction,
        double priceUsdPerMwh, double peakWeightUsdPerKw, double wearUsdPerStart, double hours) => new(
        aiRevenueUsd,
        hashprice * flow.HashingTh * hours / 24.0 * (1 - poolFeeFraction),
        priceUsdPerMwh * flow.FacilityKw / 1000.0 * hours,
        peakWeightUsdPerKw != 0 ? peakWeightUsdPerKw * flow.FacilityKw : 0,
        flow.Starts * wearUsdPerStart);

    /// <summary>An amount rounded to the micro-dollar (half to even), the one rounding of the accounting.</summary>
    /// <exception cref="OverflowException">The amount is not finite or does not fit.</exception>
    public static long Micro(double usd)
    {
        double m = Math.Round(usd * 1e6, MidpointRounding.ToEven);
        if (double.IsNaN(m) || m > long.MaxValue / 4 || m < long.MinValue / 4)
            throw new OverflowException($"Amount {usd} USD is not a finite micro-USD amount.");
        return (long)m;
    }
}
