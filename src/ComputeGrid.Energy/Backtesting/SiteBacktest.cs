using System.Diagnostics;
using ComputeGrid.Energy.Dispatch;
using ComputeGrid.Energy.Optimization;
using ComputeGrid.Energy.Sites;

namespace ComputeGrid.Energy.Backtesting;

/// <summary>What a site backtest runs besides the real-time controller.</summary>
public sealed record BacktestOptions
{
    /// <summary>Solve the perfect-foresight LP (an upper bound on every policy, and its schedule).</summary>
    public bool Optimum { get; init; } = true;

    /// <summary>
    /// With <see cref="Optimum"/>: also prove the integer upper bound and find a whole-miner schedule below it
    /// (<see cref="Optimization.IntegerBound"/>; seconds for a week, 17–30 s for a year). Policies are then scored
    /// against the tighter of the two bounds (<see cref="SiteBacktestResult.ScoredBoundMicroUsd"/>). Ignored without
    /// <see cref="Optimum"/>.
    /// </summary>
    public bool IntegerBound { get; init; } = true;

    /// <summary>Integer bound settings (null: the defaults). <see cref="IntegerBoundOptions.PartStarts"/> is set by the backtest: the period's halves of the year.</summary>
    public IntegerBoundOptions? IntegerOptions { get; init; }

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

    /// <summary>The integer upper bound and the whole-miner schedule below it, when computed (<see cref="BacktestOptions.IntegerBound"/>).</summary>
    public IntegerBoundResult? IntegerBound { get; init; }

    /// <summary>Wall time of the integer bound (its own LP, windows and feasible schedule).</summary>
    public TimeSpan IntegerBoundTime { get; init; }

    /// <summary>A policy's run by name.</summary>
    public PolicyRun Run(string policy) => Runs.First(r => r.Policy == policy);

    /// <summary>
    /// The accounting of a policy's run, of the LP's schedule (<see cref="OptimumName"/>) or of the whole-miner
    /// schedule (<see cref="WholeMinersName"/>).
    /// </summary>
    public SiteValue Value(string name) => name switch
    {
        OptimumName => OptimumValue ?? throw new InvalidOperationException("No optimum was solved."),
        WholeMinersName => IntegerBound?.Feasible ?? throw new InvalidOperationException("No integer bound was computed."),
        _ => Run(name).Value,
    };

    /// <summary>The baseline the controllable value is measured from (<see cref="AlwaysOnPolicy"/>'s name).</summary>
    public const string AlwaysOn = "always-on";

    /// <summary>The LP's bound in reports: the relaxation's optimum, fractional miners.</summary>
    public const string LpBoundName = Optimization.IntegerBound.LpBoundName;

    /// <summary>The integer upper bound in reports (<see cref="Optimization.IntegerBound"/>: day windows solved by SCIP, priced with the LP's duals).</summary>
    public const string IntegerBoundName = Optimization.IntegerBound.IntegerBoundName;

    /// <summary>The whole-miner schedule <see cref="Optimization.IntegerBound"/> found below its bound: perfect foresight, whole miners, every limit kept.</summary>
    public const string WholeMinersName = "whole-miner foresight";

    /// <summary>
    /// A bound (USD) in micro-USD as a bound on what the accounting reports: rounded up, plus the most the accounting's
    /// rounding can add over <paramref name="intervals"/> intervals (five amounts an interval, each rounded to the
    /// nearest micro-dollar: 2.5 micro-USD an interval).
    /// </summary>
    public static long ProvenMicroUsd(double usd, int intervals) => checked((long)Math.Ceiling(usd * 1e6 + 2.5 * intervals));

    /// <summary>
    /// The LP's bound (micro-USD, <see cref="ProvenMicroUsd"/>): its relaxation's optimum
    /// (<see cref="OptimizerResult.UpperBoundUsd"/>), which bounds every schedule — not its schedule's value, which falls
    /// below it where the ramp-down exemption had to be repaired. Null without the optimum.
    /// </summary>
    public long? LpBoundMicroUsd => Optimum is { } o && OptimumValue is { } v
        ? Math.Max(ProvenMicroUsd(Math.Max(o.UpperBoundUsd, o.ObjectiveUsd), Site.Problem.Count), v.ValueMicroUsd)
        : null;

    /// <summary>The integer upper bound (micro-USD, <see cref="ProvenMicroUsd"/>): bounds every whole-miner schedule. Null when not computed.</summary>
    public long? IntegerUpperBoundMicroUsd => IntegerBound is { } b ? ProvenMicroUsd(b.IntegerUpperBoundUsd, Site.Problem.Count) : null;

    /// <summary>
    /// The bound every policy is scored against (micro-USD): the tighter of <see cref="LpBoundMicroUsd"/> and
    /// <see cref="IntegerUpperBoundMicroUsd"/>, both proved bounds on the value of every whole-miner schedule — every
    /// policy's (policies dispatch whole miners). Null without the optimum.
    /// </summary>
    public long? ScoredBoundMicroUsd => (LpBoundMicroUsd, IntegerUpperBoundMicroUsd) switch
    {
        ({ } lp, { } integer) => Math.Min(lp, integer),
        (var lp, var integer) => lp ?? integer,
    };

    /// <summary>The name of <see cref="ScoredBoundMicroUsd"/> (<see cref="IntegerBoundName"/> or <see cref="LpBoundName"/>), null without the optimum.</summary>
    public string? ScoredBoundName => (LpBoundMicroUsd, IntegerUpperBoundMicroUsd) switch
    {
        ({ } lp, { } integer) => integer <= lp ? IntegerBoundName : LpBoundName,
        (null, not null) => IntegerBoundName,
        (not null, null) => LpBoundName,
        _ => null,
    };

    /// <summary>
    /// What dispatch controls: the scored bound over always-on (micro-USD), null without the optimum. AI revenue, which
    /// every policy earns alike, cancels out of it, so a share of it is the score of a decision, not of the site.
    /// </summary>
    public long? ControllableValueMicroUsd =>
        ScoredBoundMicroUsd is { } b ? checked(b - Run(AlwaysOn).Value.ValueMicroUsd) : null;

    /// <summary>A policy's (or schedule's, see <see cref="Value"/>) value over always-on (micro-USD): what its decisions earned beyond leaving every miner running.</summary>
    public long OverAlwaysOnMicroUsd(string policy = "controller") =>
        checked(Value(policy).ValueMicroUsd - Run(AlwaysOn).Value.ValueMicroUsd);

    /// <summary>
    /// A policy's (or schedule's, see <see cref="Value"/>) share of the controllable value,
    /// <c>(policy − always-on) / (bound − always-on)</c> with the scored bound (<see cref="ScoredBoundName"/>): 1 would
    /// reach the bound, 0 is always-on, below 0 is worse than leaving the miners running. NaN without the optimum or when
    /// nothing is provably controllable (<see cref="IsControllable"/>). The LP's own fractional schedule may score above 1
    /// against the integer bound.
    /// </summary>
    public double ControllableCaptured(string policy = "controller") =>
        ControllableValueMicroUsd is { } c && IsControllable(c, ScoredBoundMicroUsd!.Value) ? (double)OverAlwaysOnMicroUsd(policy) / c : double.NaN;

    /// <summary>
    /// Whether a controllable value (bound − always-on) is one a share can be taken of: more than a millionth of the
    /// bound, the solvers' relative tolerance. Below it the bound cannot tell the best schedule from always-on (in a
    /// period where always-on is the whole-miner optimum, the bound exceeds it only by the accounting's rounding
    /// allowance), and a share of it would be noise.
    /// </summary>
    public static bool IsControllable(long controllableMicroUsd, long boundMicroUsd) =>
        controllableMicroUsd > Math.Max(0, 1e-6 * Math.Abs((double)boundMicroUsd));

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
            else if (policy == IntegerBoundName)
            {
                // Not a schedule: the bound's own halves (its parts').
                IntegerBoundResult b = IntegerBound ?? throw new InvalidOperationException("No integer bound was computed.");
                h = (0, 0);
                for (int j = 0; j < b.PartStarts.Length; j++)
                {
                    int a = b.PartStarts[j], end = j + 1 < b.PartStarts.Length ? b.PartStarts[j + 1] : p.Count;
                    long bound = ProvenMicroUsd(b.PartUpperBoundsUsd[j], end - a);
                    h = p.LocalMonth(a) <= 6 ? (checked(h.Item1 + bound), h.Item2) : (h.Item1, checked(h.Item2 + bound));
                }
            }
            else if (policy == WholeMinersName)
            {
                double[][] r = IntegerBound?.FeasibleRunning ?? throw new InvalidOperationException("No integer bound was computed.");
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
    /// The bound each half of the year is scored against (micro-USD), null without the optimum. A period within one half:
    /// <see cref="ScoredBoundMicroUsd"/> for it (0 for the other). Across both, with the integer bound: its parts'
    /// bounds (<see cref="IntegerBoundResult.PartUpperBoundsUsd"/>, the period cut at each change of half), each a proof
    /// on that half's own value as <see cref="HalfValues"/> sums it. Across both without it: the LP's schedule split by
    /// half — no proof for a half alone (a policy may earn more than it in one half by earning less in the other).
    /// </summary>
    public (long FirstHalf, long SecondHalf)? HalfBoundsMicroUsd
    {
        get
        {
            if (ScoredBoundMicroUsd is not { } scored) return null;
            SiteProblem p = Site.Problem;
            if (p.Count == 0) return (0, 0);
            if (!SpansBothHalves) return p.LocalMonth(0) <= 6 ? (scored, 0) : (0, scored);
            return HalfValues(IntegerBound is not null ? IntegerBoundName : OptimumName);
        }
    }

    private bool SpansBothHalves => (_halfStarts ??= HalfStarts(Site.Problem)).Length > 0;

    private int[]? _halfStarts;

    /// <summary>The name of <see cref="HalfBoundsMicroUsd"/>: the scored bound (a period within one half), the integer bound's halves, or the LP's schedule split by half.</summary>
    public string? HalfBoundName =>
        ScoredBoundName is not { } scored ? null
        : !SpansBothHalves ? scored
        : IntegerBound is not null ? IntegerBoundName + ", each half bounded alone"
        : LpBoundName + ", its schedule split by half (no bound of a half alone)";

    /// <summary>
    /// A policy's (or schedule's) share of the controllable value within one half of the year (<paramref name="secondHalf"/>:
    /// July–December), against <see cref="HalfBoundsMicroUsd"/>; NaN without the optimum, when the period has no
    /// interval in that half, or nothing is provably controllable there (<see cref="IsControllable"/>).
    /// </summary>
    public double ControllableCapturedInHalf(string policy, bool secondHalf)
    {
        if (HalfBoundsMicroUsd is not { } bounds) return double.NaN;
        (long a1, long a2) = HalfValues(AlwaysOn);
        (long v1, long v2) = HalfValues(policy);
        long bound = secondHalf ? bounds.SecondHalf : bounds.FirstHalf;
        long controllable = checked(bound - (secondHalf ? a2 : a1));
        long over = secondHalf ? v2 - a2 : v1 - a1;
        return IsControllable(controllable, bound) ? (double)over / controllable : double.NaN;
    }

    /// <summary>The first interval of each change of half in <paramref name="p"/> (January–June to July–December or back), in local time.</summary>
    public static int[] HalfStarts(SiteProblem p)
    {
        var starts = new List<int>();
        for (int t = 1; t < p.Count; t++)
            if (p.LocalMonth(t) <= 6 != p.LocalMonth(t - 1) <= 6) starts.Add(t);
        return [.. starts];
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

    /// <summary>
    /// The perfect-foresight schedule a policy's gap is decomposed against (<see cref="GapByMonth"/>): the whole-miner
    /// schedule under the integer bound (<see cref="WholeMinersName"/>) when it was computed, else the LP's
    /// (<see cref="OptimumName"/>); null without the optimum.
    /// </summary>
    public string? GapReferenceName => IntegerBound is not null ? WholeMinersName : Optimum is not null ? OptimumName : null;

    /// <summary>
    /// Where <paramref name="policy"/> loses against <see cref="GapReferenceName"/>, by local month and cause
    /// (<see cref="GapDecomposition"/>); empty without the optimum.
    /// </summary>
    public IReadOnlyList<MonthGap> GapByMonth(string policy = "controller")
    {
        double[][]? reference = IntegerBound?.FeasibleRunning ?? Optimum?.Running;
        return reference is null ? [] : GapDecomposition.ByMonth(Site.Problem, Run(policy), reference);
    }

    /// <summary>A policy's (or schedule's) value as a fraction of the LP optimum's whole value, AI revenue included (NaN without the optimum): near 1 for any policy, not the score.</summary>
    public double CapturedVsOptimum(string policy = "controller") =>
        OptimumValue is { } o && o.ValueMicroUsd != 0 ? (double)Value(policy).ValueMicroUsd / o.ValueMicroUsd : double.NaN;
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
        IntegerBoundResult? integerBound = null;
        TimeSpan integerBoundTime = TimeSpan.Zero;
        if (options.Optimum && options.IntegerBound)
        {
            // Over the period's problem, as the LP; cut at each change of half so that each half gets a bound of its own.
            stage?.Invoke("integer bound");
            long start = Stopwatch.GetTimestamp();
            integerBound = IntegerBound.Compute(p, (options.IntegerOptions ?? new IntegerBoundOptions()) with { PartStarts = SiteBacktestResult.HalfStarts(p) });
            integerBoundTime = Stopwatch.GetElapsedTime(start);
        }
        return new SiteBacktestResult
        {
            Site = site,
            Controller = runs[0],
            Runs = runs,
            Optimum = optimum,
            OptimumValue = optimumValue,
            OptimumTime = optimumTime,
            IntegerBound = integerBound,
            IntegerBoundTime = integerBoundTime,
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
