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

    /// <summary>A policy's value as a fraction of the optimum (NaN without the optimum).</summary>
    public double CapturedVsOptimum(string policy = "controller") =>
        OptimumValue is { } o && o.ValueMicroUsd != 0 ? (double)Run(policy).Value.ValueMicroUsd / o.ValueMicroUsd : double.NaN;
}

/// <summary>Runs a site's controller, baselines and optimum over its period.</summary>
public static class SiteBacktest
{
    /// <summary>Runs everything <paramref name="options"/> asks for over <paramref name="site"/>; reports each stage's start.</summary>
    public static SiteBacktestResult Run(BuiltSite site, BacktestOptions? options = null, Action<string>? stage = null)
    {
        options ??= new BacktestOptions();
        SiteProblem p = site.Problem;
        ControllerConfig controller = site.Config.Controller ?? new ControllerConfig();
        var runs = new List<PolicyRun>();
        stage?.Invoke("controller");
        runs.Add(Backtest.Run(p, new RealTimeController(controller)));
        if (options.DayAhead)
        {
            stage?.Invoke("day-ahead planner");
            runs.Add(Backtest.Run(p, new DayAheadPlanner()));
        }
        stage?.Invoke("baselines");
        runs.Add(Backtest.Run(p, new MyopicPolicy()));
        runs.Add(Backtest.Run(p, new AlwaysOnPolicy()));
        runs.Add(Backtest.Run(p, new FixedThresholdPolicy(controller.FixedThresholdUsdPerMwh)));

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
}
