using System.Diagnostics;
using ComputeGrid.Energy.Dispatch;
using ComputeGrid.Energy.Optimization;
using ComputeGrid.Energy.Sites;

namespace ComputeGrid.Energy.Backtesting;

/// <summary>What a site backtest runs besides the real-time controller.</summary>
public sealed record BacktestOptions
{
    /// <summary>Solve the perfect-foresight LP (the upper bound every policy is scored against).</summary>
    public bool Optimum { get; init; } = true;

    /// <summary>Run the day-ahead planner (one LP per day on a forecast).</summary>
    public bool DayAhead { get; init; } = true;

    /// <summary>Optimizer settings.</summary>
    public OptimizerOptions? Optimizer { get; init; }
}

/// <summary>A site's backtest: every policy's run and the perfect-foresight optimum.</summary>
public sealed class SiteBacktestResult
{
    public required BuiltSite Site { get; init; }

    /// <summary>The real-time controller's run.</summary>
    public required PolicyRun Controller { get; init; }

    /// <summary>Every policy run, the controller first (controller, day-ahead, myopic, always-on, threshold).</summary>
    public required IReadOnlyList<PolicyRun> Runs { get; init; }

    /// <summary>The perfect-foresight LP, when solved.</summary>
    public OptimizerResult? Optimum { get; init; }

    /// <summary>The optimum's schedule valued by the same accounting as the policies.</summary>
    public SiteValue? OptimumValue { get; init; }

    /// <summary>Build + solve time of the LP.</summary>
    public TimeSpan OptimumTime { get; init; }

    /// <summary>A policy's run by name.</summary>
    public PolicyRun Run(string policy) => Runs.First(r => r.Policy == policy);

    /// <summary>The baseline the controllable value is measured from (<see cref="AlwaysOnPolicy"/>'s name).</summary>
    public const string AlwaysOn = "always-on";

    /// <summary>
    /// What dispatch controls: the optimum's value over always-on (micro-USD), null without the optimum. AI revenue, which
    /// every policy earns alike, cancels out of it, so a share of it is the score of a decision, not of the site.
    /// </summary>
    public long? ControllableValueMicroUsd =>
        OptimumValue is { } o ? checked(o.ValueMicroUsd - Run(AlwaysOn).Value.ValueMicroUsd) : null;

    /// <summary>A policy's value over always-on (micro-USD): what its decisions earned beyond leaving every miner running.</summary>
    public long OverAlwaysOnMicroUsd(string policy = "controller") =>
        checked(Run(policy).Value.ValueMicroUsd - Run(AlwaysOn).Value.ValueMicroUsd);

    /// <summary>
    /// A policy's share of the controllable value, <c>(policy − always-on) / (optimum − always-on)</c>: 1 is the optimum,
    /// 0 is always-on, below 0 is worse than leaving the miners running (NaN without the optimum or when nothing is controllable).
    /// </summary>
    public double ControllableCaptured(string policy = "controller") =>
        ControllableValueMicroUsd is { } c && c != 0 ? (double)OverAlwaysOnMicroUsd(policy) / c : double.NaN;

    /// <summary>
    /// A policy's value (micro-USD) in each half of the year — local January–June and July–December — each interval
    /// valued by the accounting's own formulas and rounding, so the halves add up to the whole. The controller's
    /// parameters were chosen on January–June; July–December is the half it was not fitted to.
    /// </summary>
    public (long FirstHalf, long SecondHalf) HalfValues(string policy)
    {
        if (!_halves.TryGetValue(policy, out var h))
        {
            SiteProblem p = Site.Problem;
            if (policy == OptimumName)
            {
                double[][] r = Optimum?.Running ?? throw new InvalidOperationException("No optimum was solved.");
                h = ByHalf(p, p.InitialRunning, (g, t) => r[g][t]);
            }
            else
            {
                PolicyRun run = Run(policy);
                int[][] r = run.Running;
                h = ByHalf(p, run.InitialRunning ?? p.InitialRunning, (g, t) => r[g][t]);
            }
            _halves[policy] = h;
        }
        return h;
    }

    private readonly Dictionary<string, (long, long)> _halves = [];

    /// <summary>The name <see cref="HalfValues"/> knows the optimum by.</summary>
    public const string OptimumName = "optimum";

    /// <summary>
    /// A policy's share of the controllable value within one half of the year (<paramref name="secondHalf"/>: July–December),
    /// NaN without the optimum, when the period has no interval in that half, or nothing is controllable there.
    /// </summary>
    public double ControllableCapturedInHalf(string policy, bool secondHalf)
    {
        if (OptimumValue is null) return double.NaN;
        (long o1, long o2) = HalfValues(OptimumName);
        (long a1, long a2) = HalfValues(AlwaysOn);
        (long v1, long v2) = HalfValues(policy);
        long controllable = secondHalf ? o2 - a2 : o1 - a1;
        long over = secondHalf ? v2 - a2 : v1 - a1;
        return controllable == 0 ? double.NaN : (double)over / controllable;
    }

    // Each interval's value by the accumulator's formulas, rounded component by component as SiteAccumulator rounds,
    // summed into the half its local month falls in.
    private static (long, long) ByHalf(SiteProblem p, int[] initial, Func<int, int, double> running)
    {
        long first = 0, second = 0;
        int groups = p.Groups.Length;
        var previous = new double[groups];
        for (int g = 0; g < groups; g++) previous[g] = initial[g];
        var now = new double[groups];
        double startFraction = IntervalEconomics.StartFraction(p.RestartMinutes, p.IntervalMinutes);
        for (int t = 0; t < p.Count; t++)
        {
            for (int g = 0; g < groups; g++) now[g] = running(g, t);
            IntervalFlow flow = IntervalEconomics.Flow(p.Groups, p.Pue, p.AiItKw[t], startFraction, now, previous);
            IntervalAmounts a = IntervalEconomics.Amounts(flow, p.AiRevenueUsd[t], p.HashpriceUsdPerThDay[t], p.PoolFeeFraction,
                p.PriceUsdPerMwh[t], p.PeakChargeUsdPerKw[t], p.RestartWearUsd, p.IntervalHours);
            long v = checked(IntervalEconomics.Micro(a.AiUsd) + IntervalEconomics.Micro(a.MiningUsd) - IntervalEconomics.Micro(a.EnergyUsd)
                - (p.PeakChargeUsdPerKw[t] != 0 ? IntervalEconomics.Micro(a.PeakUsd) : 0) - IntervalEconomics.Micro(a.WearUsd));
            if (p.LocalMonth(t) <= 6) first = checked(first + v); else second = checked(second + v);
        }
        return (first, second);
    }

    /// <summary>A policy's value as a fraction of the optimum (NaN without the optimum).</summary>
    public double CapturedVsOptimum(string policy = "controller") =>
        OptimumValue is { } o && o.ValueMicroUsd != 0 ? (double)Run(policy).Value.ValueMicroUsd / o.ValueMicroUsd : double.NaN;
}

/// <summary>Runs a site's controller, baselines and optimum over its period.</summary>
public static class SiteBacktest
{
    /// <summary>
    /// Runs everything <paramref name="options"/> asks for over <paramref name="site"/>; reports each stage's start.
    /// </summary>
    /// <param name="site">The site over the period scored.</param>
    /// <param name="options">What to run besides the controller.</param>
    /// <param name="stage">Told the name of each stage as it starts.</param>
    /// <param name="history">
    /// The same site over its whole data series (null: the period is the whole series). Every policy then runs over the
    /// whole series and is scored on the period alone, so it meets the period's first interval in the state — miners
    /// running, forecasters' memory — it would have in any longer run: a sub-period equals the same dates of a longer
    /// run to the micro-dollar. Policies never look ahead, so the intervals after the period change nothing.
    /// </param>
    public static SiteBacktestResult Run(BuiltSite site, BacktestOptions? options = null, Action<string>? stage = null, BuiltSite? history = null)
    {
        options ??= new BacktestOptions();
        SiteProblem p = site.Problem;
        ControllerConfig controller = site.Config.Controller ?? new ControllerConfig();
        var runs = new List<PolicyRun>();
        int first = 0;
        SiteProblem whole = p;
        if (history is not null && !ReferenceEquals(history.Problem, p))
        {
            whole = history.Problem;
            double offset = (p.StartUtc - whole.StartUtc).TotalMinutes / p.IntervalMinutes;
            first = (int)offset;
            if (first != offset || first < 0 || first + p.Count > whole.Count || whole.IntervalMinutes != p.IntervalMinutes)
                throw new ArgumentException($"The period {p.StartUtc:u} + {p.Count} intervals is not within the history {whole.StartUtc:u} + {whole.Count}.", nameof(history));
        }
        PolicyRun Score(IDispatchPolicy policy) => Cut(Backtest.Run(whole, policy), whole, p, first);
        stage?.Invoke("controller");
        runs.Add(Score(new PredictiveController(controller)));
        runs.Add(Score(new RealTimeController(controller, "rule-based")));
        if (options.DayAhead)
        {
            stage?.Invoke("day-ahead planner");
            runs.Add(Score(new DayAheadPlanner()));
        }
        stage?.Invoke("baselines");
        runs.Add(Score(new MyopicPolicy()));
        runs.Add(Score(new AlwaysOnPolicy()));
        runs.Add(Score(new FixedThresholdPolicy(controller.FixedThresholdUsdPerMwh)));

        OptimizerResult? optimum = null;
        SiteValue? optimumValue = null;
        TimeSpan optimumTime = TimeSpan.Zero;
        if (options.Optimum)
        {
            stage?.Invoke("perfect-foresight LP");
            long start = Stopwatch.GetTimestamp();
            optimum = PerfectForesightOptimizer.Solve(p, options.Optimizer);
            optimumTime = Stopwatch.GetElapsedTime(start);
            optimumValue = SiteAccumulator.Evaluate(p, optimum.Running);
        }
        return new SiteBacktestResult
        {
            Site = site,
            Controller = runs[0],
            Runs = runs,
            Optimum = optimum,
            OptimumValue = optimumValue,
            OptimumTime = optimumTime,
        };
    }

    // The part of a run over the history that falls in the period, valued from the state the run had reached there.
    private static PolicyRun Cut(PolicyRun run, SiteProblem whole, SiteProblem period, int first)
    {
        int n = period.Count;
        if (first == 0 && run.Running[0].Length == n) return run;
        var running = new int[run.Running.Length][];
        var before = new int[run.Running.Length];
        for (int g = 0; g < running.Length; g++)
        {
            running[g] = run.Running[g].AsSpan(first, n).ToArray();
            before[g] = first == 0 ? whole.InitialRunning[g] : run.Running[g][first - 1];
        }
        SiteProblem from = period.With(initialRunning: before);
        var acc = new SiteAccumulator(from);
        Span<int> r = stackalloc int[running.Length];
        for (int t = 0; t < n; t++)
        {
            for (int g = 0; g < r.Length; g++) r[g] = running[g][t];
            acc.Add(t, r);
        }
        return new PolicyRun
        {
            Policy = run.Policy,
            Value = acc.Result(),
            Running = running,
            Reasons = run.Reasons.AsSpan(first, n).ToArray(),
            InitialRunning = before,
            DecisionTime = run.DecisionTime * ((double)n / run.Running[0].Length),
        };
    }
}
