using ComputeGrid.Energy.Dispatch;

namespace ComputeGrid.Energy.Reports;

/// <summary>
/// A schedule's power and money interval by interval: the amounts <see cref="SiteAccumulator"/> sums, kept per
/// interval. Computed with exactly the accumulator's formulas, in the same order of operations and rounded to the
/// micro-dollar per interval the same way, so each money column sums to the matching <see cref="SiteValue"/> total
/// exactly.
/// </summary>
public sealed class IntervalLedger
{
    private IntervalLedger(SiteProblem problem, double[][] running)
    {
        Problem = problem;
        Running = running;
        int n = problem.Count;
        MinerItKw = new double[n];
        FacilityKw = new double[n];
        Starts = new double[n];
        AiRevenueMicroUsd = new long[n];
        MiningRevenueMicroUsd = new long[n];
        EnergyCostMicroUsd = new long[n];
        PeakChargeMicroUsd = new long[n];
        RestartWearMicroUsd = new long[n];
    }

    /// <summary>The site problem the schedule runs over.</summary>
    public SiteProblem Problem { get; }

    /// <summary>Miners running per group and interval (<c>[group][t]</c>); fractional for a relaxed optimum.</summary>
    public double[][] Running { get; }

    /// <summary>Number of intervals.</summary>
    public int Count => Problem.Count;

    /// <summary>Miner IT load of each interval (kW): Σ running × W / 1000.</summary>
    public double[] MinerItKw { get; }

    /// <summary>Facility load of each interval (kW): PUE × (AI IT kW + miner IT kW).</summary>
    public double[] FacilityKw { get; }

    /// <summary>Miners started in each interval (Σ over groups of max(0, running − previous running)).</summary>
    public double[] Starts { get; }

    /// <summary>AI revenue of each interval (micro-USD).</summary>
    public long[] AiRevenueMicroUsd { get; }

    /// <summary>Mining revenue of each interval, after the pool fee (micro-USD).</summary>
    public long[] MiningRevenueMicroUsd { get; }

    /// <summary>Energy cost of each interval (micro-USD; negative when the price is).</summary>
    public long[] EnergyCostMicroUsd { get; }

    /// <summary>Peak charge incurred in each interval (micro-USD; zero outside the peak-charge intervals).</summary>
    public long[] PeakChargeMicroUsd { get; }

    /// <summary>Restart wear of each interval (micro-USD).</summary>
    public long[] RestartWearMicroUsd { get; }

    /// <summary>Interconnect limit less the facility load of interval <paramref name="t"/> (kW).</summary>
    public double HeadroomKw(int t) => Problem.InterconnectKw - FacilityKw[t];

    /// <summary>Value of interval <paramref name="t"/> (micro-USD): AI + mining − energy − peak charge − wear.</summary>
    public long ValueMicroUsd(int t) =>
        checked(AiRevenueMicroUsd[t] + MiningRevenueMicroUsd[t] - EnergyCostMicroUsd[t] - PeakChargeMicroUsd[t] - RestartWearMicroUsd[t]);

    /// <summary>Sum of <paramref name="amounts"/> over intervals <c>[from, to)</c> (micro-USD, checked).</summary>
    public static long Sum(long[] amounts, int from, int to)
    {
        ArgumentNullException.ThrowIfNull(amounts);
        long sum = 0;
        for (int t = from; t < to; t++) sum = checked(sum + amounts[t]);
        return sum;
    }

    /// <summary>Values an integer schedule (<c>running[group][t]</c>), e.g. <see cref="PolicyRun.Running"/>.</summary>
    /// <exception cref="ArgumentException">The schedule's shape does not match the problem's groups and intervals.</exception>
    public static IntervalLedger Compute(SiteProblem problem, int[][] running)
    {
        ArgumentNullException.ThrowIfNull(problem);
        ArgumentNullException.ThrowIfNull(running);
        var d = new double[running.Length][];
        for (int g = 0; g < running.Length; g++)
        {
            ArgumentNullException.ThrowIfNull(running[g], nameof(running));
            d[g] = new double[running[g].Length];
            for (int t = 0; t < d[g].Length; t++) d[g][t] = running[g][t];
        }
        return Compute(problem, d);
    }

    /// <summary>Values a schedule whose counts may be fractional (<c>running[group][t]</c>), e.g. the optimizer's relaxed optimum.</summary>
    /// <exception cref="ArgumentException">The schedule's shape does not match the problem's groups and intervals.</exception>
    public static IntervalLedger Compute(SiteProblem problem, double[][] running)
    {
        ArgumentNullException.ThrowIfNull(problem);
        ArgumentNullException.ThrowIfNull(running);
        int groups = problem.Groups.Length, n = problem.Count;
        if (running.Length != groups)
            throw new ArgumentException($"The schedule has {running.Length} groups; the site has {groups}.", nameof(running));
        for (int g = 0; g < groups; g++)
            if (running[g] is null || running[g].Length != n)
                throw new ArgumentException($"Group {g} of the schedule has {running[g]?.Length ?? 0} intervals; the site has {n}.", nameof(running));

        var ledger = new IntervalLedger(problem, running);
        SiteProblem p = problem;
        double hours = p.IntervalHours;
        double startFraction = IntervalEconomics.StartFraction(p.RestartMinutes, p.IntervalMinutes);
        var previous = new double[groups];
        var r = new double[groups];
        for (int g = 0; g < groups; g++) previous[g] = p.InitialRunning[g];
        for (int t = 0; t < n; t++)
        {
            // The accounting's own formula and rounding (IntervalEconomics): the amounts are then identical.
            for (int g = 0; g < groups; g++) r[g] = running[g][t];
            IntervalFlow flow = IntervalEconomics.Flow(p.Groups, p.Pue, p.AiItKw[t], startFraction, r, previous);
            IntervalAmounts amounts = IntervalEconomics.Amounts(flow, p.AiRevenueUsd[t], p.HashpriceUsdPerThDay[t], p.PoolFeeFraction,
                p.PriceUsdPerMwh[t], p.PeakChargeUsdPerKw[t], p.RestartWearUsd, hours);
            ledger.MinerItKw[t] = flow.MinerKw;
            ledger.FacilityKw[t] = flow.FacilityKw;
            ledger.Starts[t] = flow.Starts;
            ledger.AiRevenueMicroUsd[t] = IntervalEconomics.Micro(amounts.AiUsd);
            ledger.MiningRevenueMicroUsd[t] = IntervalEconomics.Micro(amounts.MiningUsd);
            ledger.EnergyCostMicroUsd[t] = IntervalEconomics.Micro(amounts.EnergyUsd);
            ledger.PeakChargeMicroUsd[t] = IntervalEconomics.Micro(amounts.PeakUsd);
            ledger.RestartWearMicroUsd[t] = IntervalEconomics.Micro(amounts.WearUsd);
        }
        return ledger;
    }
}
