using ComputeGrid.Energy.Dispatch;

namespace ComputeGrid.Energy.Backtesting;

/// <summary>
/// One local month of a <see cref="GapDecomposition"/>: what a policy lost against a perfect-foresight schedule there,
/// split by cause (micro-USD; positive = the policy earned less). <see cref="GapMicroUsd"/> is the sum of the parts.
/// </summary>
/// <param name="Year">Local year.</param>
/// <param name="Month">Local month (1–12).</param>
/// <param name="PeakChargeMicroUsd">The policy's peak charge minus the schedule's: 4CP hours it ran through.</param>
/// <param name="RestartWearMicroUsd">The policy's restart wear minus the schedule's.</param>
/// <param name="MarginRunningMicroUsd">
/// Mining margin (mining revenue − energy) lost in intervals where the policy held nothing off: mostly price spikes it ran
/// through (a real-time price is known only after its interval) and the minutes without hashing of its extra restarts.
/// </param>
/// <param name="MarginPriceMicroUsd">Margin lost in intervals where the policy held miners off for the price (after a spike, on a forecast that did not come true).</param>
/// <param name="MarginPeakRiskMicroUsd">Margin lost in intervals where the policy held miners off for the 4CP risk (false alarms, and the cost of the true ones).</param>
/// <param name="MarginOtherMicroUsd">Margin lost where a declared emergency or the ramp limit held miners off.</param>
public readonly record struct MonthGap(int Year, int Month, long PeakChargeMicroUsd, long RestartWearMicroUsd,
    long MarginRunningMicroUsd, long MarginPriceMicroUsd, long MarginPeakRiskMicroUsd, long MarginOtherMicroUsd)
{
    /// <summary>The whole month's gap: the schedule's value minus the policy's (micro-USD).</summary>
    public long GapMicroUsd => checked(PeakChargeMicroUsd + RestartWearMicroUsd + MarginRunningMicroUsd + MarginPriceMicroUsd
        + MarginPeakRiskMicroUsd + MarginOtherMicroUsd);
}

/// <summary>
/// Where a policy loses value against a perfect-foresight schedule (the whole-miner schedule under the integer bound, or
/// the LP's): by local month, and within it by cause — the peak charge, restart wear, and the mining margin split by why
/// the policy held miners off in each interval (<see cref="CurtailmentReason"/>). Each interval's amounts are the
/// accounting's (<see cref="IntervalEconomics"/>) rounded as <see cref="SiteAccumulator"/> rounds them, so the months add
/// up, to the micro-dollar, to the schedule's value minus the policy's. AI revenue is the same in both and cancels.
/// </summary>
public static class GapDecomposition
{
    /// <summary>
    /// The gap of <paramref name="policy"/> against <paramref name="reference"/> (<c>[group][t]</c>, whole or fractional
    /// miners) over <paramref name="p"/>, one entry per local month with an interval in it, in order. The policy starts
    /// from its run's initial state, the schedule from the problem's.
    /// </summary>
    public static IReadOnlyList<MonthGap> ByMonth(SiteProblem p, PolicyRun policy, double[][] reference)
    {
        int groups = p.Groups.Length;
        if (policy.Running.Length != groups || reference.Length != groups) throw new ArgumentException("One schedule per miner group is needed.");
        var months = new List<MonthGap>();
        var refPrevious = new double[groups];
        var polPrevious = new double[groups];
        for (int g = 0; g < groups; g++)
        {
            refPrevious[g] = p.InitialRunning[g];
            polPrevious[g] = (policy.InitialRunning ?? p.InitialRunning)[g];
        }
        var refNow = new double[groups];
        var polNow = new double[groups];
        double startFraction = IntervalEconomics.StartFraction(p.RestartMinutes, p.IntervalMinutes);
        MonthGap month = default;
        int key = -1;
        for (int t = 0; t < p.Count; t++)
        {
            DateTime local = p.IntervalStartUtc(t).AddHours(p.LocalUtcOffsetHours[t]);
            int k = local.Year * 12 + local.Month;
            if (k != key)
            {
                if (key >= 0) months.Add(month);
                key = k;
                month = new MonthGap(local.Year, local.Month, 0, 0, 0, 0, 0, 0);
            }
            for (int g = 0; g < groups; g++)
            {
                refNow[g] = reference[g][t];
                polNow[g] = policy.Running[g][t];
            }
            (long refMargin, long refPeak, long refWear) = Amounts(p, t, startFraction, refNow, refPrevious);
            (long polMargin, long polPeak, long polWear) = Amounts(p, t, startFraction, polNow, polPrevious);
            long margin = checked(refMargin - polMargin);
            month = policy.Reasons[t] switch
            {
                CurtailmentReason.None => month with { MarginRunningMicroUsd = checked(month.MarginRunningMicroUsd + margin) },
                CurtailmentReason.Price => month with { MarginPriceMicroUsd = checked(month.MarginPriceMicroUsd + margin) },
                CurtailmentReason.PeakRisk => month with { MarginPeakRiskMicroUsd = checked(month.MarginPeakRiskMicroUsd + margin) },
                _ => month with { MarginOtherMicroUsd = checked(month.MarginOtherMicroUsd + margin) },
            };
            month = month with
            {
                PeakChargeMicroUsd = checked(month.PeakChargeMicroUsd + polPeak - refPeak),
                RestartWearMicroUsd = checked(month.RestartWearMicroUsd + polWear - refWear),
            };
        }
        if (key >= 0) months.Add(month);
        return months;
    }

    // One interval's margin (mining − energy), peak charge and wear in micro-USD, each rounded as the accounting rounds it.
    private static (long Margin, long Peak, long Wear) Amounts(SiteProblem p, int t, double startFraction, double[] running, double[] previous)
    {
        IntervalFlow flow = IntervalEconomics.Flow(p.Groups, p.Pue, p.AiItKw[t], startFraction, running, previous);
        IntervalAmounts a = IntervalEconomics.Amounts(flow, p.AiRevenueUsd[t], p.HashpriceUsdPerThDay[t], p.PoolFeeFraction,
            p.PriceUsdPerMwh[t], p.PeakChargeUsdPerKw[t], p.RestartWearUsd, p.IntervalHours);
        long peak = p.PeakChargeUsdPerKw[t] != 0 ? IntervalEconomics.Micro(a.PeakUsd) : 0;
        return (checked(IntervalEconomics.Micro(a.MiningUsd) - IntervalEconomics.Micro(a.EnergyUsd)), peak, IntervalEconomics.Micro(a.WearUsd));
    }
}
