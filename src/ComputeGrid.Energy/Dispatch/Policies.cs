namespace ComputeGrid.Energy.Dispatch;

/// <summary>Baseline: every miner runs whenever the limits allow.</summary>
public sealed class AlwaysOnPolicy : IDispatchPolicy
{
    public string Name => "always-on";

    public void Reset(SiteProblem problem) { }

    public void Decide(in RealTimeView view, Span<int> running)
    {
        MinerGroup[] groups = view.Site.Groups;
        for (int g = 0; g < groups.Length; g++) running[g] = groups[g].Count;
    }
}

/// <summary>Baseline: every miner runs while the last known price is below a fixed threshold, none above it.</summary>
public sealed class FixedThresholdPolicy(double thresholdUsdPerMwh) : IDispatchPolicy
{
    public string Name => "threshold";

    public double ThresholdUsdPerMwh { get; } = thresholdUsdPerMwh;

    public void Reset(SiteProblem problem) { }

    public void Decide(in RealTimeView view, Span<int> running)
    {
        double last = view.LastPrice;
        MinerGroup[] groups = view.Site.Groups;
        for (int g = 0; g < groups.Length; g++)
            running[g] = double.IsNaN(last) ? view.PreviousRunning[g] : last < ThresholdUsdPerMwh ? groups[g].Count : 0;
    }
}

/// <summary>
/// Baseline: acts on the last price alone — each group runs while its mining margin at the last price is positive —
/// within the ramp limit (applied by the caller), ignoring the peak charge and the cost of restarts.
/// </summary>
public sealed class MyopicPolicy : IDispatchPolicy
{
    public string Name => "myopic";

    public void Reset(SiteProblem problem) { }

    public void Decide(in RealTimeView view, Span<int> running)
    {
        SiteProblem p = view.Site;
        double last = view.LastPrice;
        for (int g = 0; g < p.Groups.Length; g++)
        {
            if (double.IsNaN(last)) { running[g] = view.PreviousRunning[g]; continue; }
            running[g] = Economics.MarginPerMinerHour(p, p.Groups[g], view.KnownHashprice, last) > 0 ? p.Groups[g].Count : 0;
        }
    }
}

/// <summary>Per-miner economics shared by the policies.</summary>
public static class Economics
{
    /// <summary>Mining revenue of one running miner per hour (USD) at a hashprice (USD per TH/s per day).</summary>
    public static double RevenuePerMinerHour(SiteProblem p, MinerGroup g, double hashprice) =>
        hashprice * g.TerahashEach / 24.0 * (1 - p.PoolFeeFraction);

    /// <summary>Energy cost of one running miner per hour (USD) at a power price (USD/MWh), cooling included.</summary>
    public static double CostPerMinerHour(SiteProblem p, MinerGroup g, double priceUsdPerMwh) =>
        priceUsdPerMwh * p.Pue * g.WattsEach / 1e6;

    /// <summary>Revenue minus energy cost of one running miner per hour (USD).</summary>
    public static double MarginPerMinerHour(SiteProblem p, MinerGroup g, double hashprice, double priceUsdPerMwh) =>
        RevenuePerMinerHour(p, g, hashprice) - CostPerMinerHour(p, g, priceUsdPerMwh);

    /// <summary>
    /// The power price (USD/MWh) at which a group's mining margin is zero: hashprice × TH/s / 24 × (1 − fee) /
    /// (PUE × W / 10⁶).
    /// </summary>
    public static double BreakevenUsdPerMwh(SiteProblem p, MinerGroup g, double hashprice) =>
        RevenuePerMinerHour(p, g, hashprice) / (p.Pue * g.WattsEach / 1e6);

    /// <summary>What one restart costs (USD): the wear plus the revenue of the minutes it hashes nothing.</summary>
    public static double RestartCost(SiteProblem p, MinerGroup g, double hashprice) =>
        p.RestartWearUsd + RevenuePerMinerHour(p, g, hashprice) * Math.Min(p.RestartMinutes, p.IntervalMinutes) / 60.0;
}
