using ComputeGrid.Energy.Dispatch;

namespace ComputeGrid.Energy.Optimization;

/// <summary>
/// The perfect-foresight optimum of a site: the linear program that knows every price, hashprice and AI load of the
/// horizon in advance and maximizes the <see cref="SiteAccumulator"/> economics under the hard limits (fleet sizes,
/// interconnect beside the firm AI load, ramp limits). Miner counts are continuous by default, so its value is an
/// upper bound on what any controller can earn (<see cref="OptimizerResult.UpperBoundUsd"/>). The model is described
/// in the remarks of this folder's <c>SiteLp</c>; a year of 15-minute intervals × 2 groups solves in seconds.
/// </summary>
/// <remarks>
/// Declared grid emergencies are modelled as <see cref="DispatchLimits"/> rules them: no miner runs, and the drop
/// into an emergency is immediate (it outranks the ramp-down limit). AI load above the interconnect limit leaves
/// the miners no headroom; the accounting counts that violation whatever the schedule.
/// </remarks>
public static class PerfectForesightOptimizer
{
    /// <summary>
    /// Solves <paramref name="p"/> over its whole horizon. Throws <see cref="ArgumentException"/> for inputs the model
    /// cannot represent exactly (negative hashprice or wear, pool fee above 1, non-finite series, an initial state
    /// outside the fleet), and <see cref="OptimizerException"/> when the solver reports the model infeasible or
    /// unbounded, fails, or runs out of time.
    /// </summary>
    public static OptimizerResult Solve(SiteProblem p, OptimizerOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(p);
        options ??= new OptimizerOptions();
        Validate(p, options);

        LpWindow w = LpWindow.ForSite(p);
        w.Price = p.PriceUsdPerMwh;
        w.Hashprice = p.HashpriceUsdPerThDay;
        w.AiKw = p.AiItKw;
        w.PeakWeight = p.PeakChargeUsdPerKw;
        w.AiRevenue = p.AiRevenueUsd;
        w.Emergency = p.Emergency;
        w.Initial = Array.ConvertAll(p.InitialRunning, i => (double)i);
        w.Count = p.Count;

        LpSolution s = SiteLp.Solve(w, options);
        return new OptimizerResult
        {
            ObjectiveUsd = s.ValueUsd,
            UpperBoundUsd = Math.Max(s.UpperBoundUsd, s.ValueUsd),
            Running = s.Running,
            SolveTime = s.SolveTime,
            BuildTime = s.BuildTime,
            Solver = s.Solver,
            Variables = s.Variables,
            Constraints = s.Constraints,
            Passes = s.Passes,
            Optimal = s.Optimal,
        };
    }

    internal static void Validate(SiteProblem p, OptimizerOptions options)
    {
        if (!(options.TimeLimitSeconds > 0)) throw new ArgumentOutOfRangeException(nameof(options), "The time limit must be positive.");
        int n = p.Count;
        if (n == 0) throw new ArgumentException("The problem has no intervals.", nameof(p));
        CheckSeries(p.HashpriceUsdPerThDay, n, nameof(p.HashpriceUsdPerThDay), nonNegative: true);
        CheckSeries(p.AiItKw, n, nameof(p.AiItKw), nonNegative: true);
        CheckSeries(p.AiRevenueUsd, n, nameof(p.AiRevenueUsd), nonNegative: false);
        CheckSeries(p.PeakChargeUsdPerKw, n, nameof(p.PeakChargeUsdPerKw), nonNegative: false);
        CheckSeries(p.PriceUsdPerMwh, n, nameof(p.PriceUsdPerMwh), nonNegative: false);
        if (p.Emergency.Length != n) throw new ArgumentException($"Emergency has {p.Emergency.Length} values for {n} intervals.", nameof(p));
        if (!(p.Pue > 0) || double.IsInfinity(p.Pue)) throw new ArgumentException($"PUE must be positive and finite (got {p.Pue}).", nameof(p));
        if (!(p.InterconnectKw >= 0) || double.IsInfinity(p.InterconnectKw)) throw new ArgumentException($"The interconnect limit must be finite and non-negative (got {p.InterconnectKw}).", nameof(p));
        if (!(p.RampUpKwPerInterval >= 0) || !(p.RampDownKwPerInterval >= 0)) throw new ArgumentException("Ramp limits must be non-negative (+∞ when unlimited).", nameof(p));
        if (p.IntervalMinutes <= 0) throw new ArgumentException("The interval length must be positive.", nameof(p));
        if (!(p.RestartMinutes >= 0)) throw new ArgumentException("Restart minutes must be non-negative.", nameof(p));
        // A start's coefficient must be ≤ 0 for s = max(0, r − r₋₁) to hold at the optimum (else the LP would invent starts).
        if (!(p.RestartWearUsd >= 0) || double.IsInfinity(p.RestartWearUsd)) throw new ArgumentException($"Restart wear must be finite and non-negative (got {p.RestartWearUsd}).", nameof(p));
        if (!(p.PoolFeeFraction >= 0 && p.PoolFeeFraction <= 1)) throw new ArgumentException($"The pool fee must be within [0, 1] (got {p.PoolFeeFraction}).", nameof(p));
        if (p.InitialRunning.Length != p.Groups.Length) throw new ArgumentException("InitialRunning needs one count per group.", nameof(p));
        for (int g = 0; g < p.Groups.Length; g++)
        {
            MinerGroup grp = p.Groups[g];
            if (grp.Count < 0 || !(grp.WattsEach > 0) || double.IsInfinity(grp.WattsEach) || !(grp.TerahashEach >= 0) || double.IsInfinity(grp.TerahashEach))
                throw new ArgumentException($"Group {g} ({grp.Model}) needs a non-negative count, positive finite watts and finite non-negative TH/s.", nameof(p));
            if (p.InitialRunning[g] < 0 || p.InitialRunning[g] > grp.Count)
                throw new ArgumentException($"Group {g} ({grp.Model}) starts with {p.InitialRunning[g]} running, outside [0, {grp.Count}].", nameof(p));
        }
    }

    private static void CheckSeries(double[] values, int n, string name, bool nonNegative)
    {
        if (values.Length != n) throw new ArgumentException($"{name} has {values.Length} values for {n} intervals.", name);
        for (int t = 0; t < values.Length; t++)
        {
            double v = values[t];
            if (!double.IsFinite(v) || (nonNegative && v < 0))
                throw new ArgumentException($"{name}[{t}] = {v} is not a {(nonNegative ? "finite non-negative" : "finite")} number.", name);
        }
    }
}
