using System.Diagnostics;
using System.Runtime.ExceptionServices;
using ComputeGrid.Energy.Dispatch;

namespace ComputeGrid.Energy.Optimization;

/// <summary>How <see cref="IntegerBound"/> cuts the horizon and solves its windows.</summary>
public sealed record IntegerBoundOptions
{
    /// <summary>Intervals per window; 0 (the default): one day (<c>24·60 / IntervalMinutes</c>). The last window may be shorter.</summary>
    public int WindowIntervals { get; init; }

    /// <summary>
    /// Intervals past its window that each solve of the feasible schedule looks ahead, with continuous counts (then
    /// dropped: only the window's own, whole-miner intervals are kept). -1 (the default): one window.
    /// </summary>
    public int LookaheadIntervals { get; init; } = -1;

    /// <summary>
    /// The integer solver: <c>auto</c> (SCIP: on day windows of the shipped sites it proves its bound in about
    /// 0.1 s, where HiGHS takes seconds on some days), or <c>scip</c>, <c>highs</c>, <c>cbc</c>. Case-insensitive.
    /// </summary>
    public string Solver { get; init; } = "auto";

    /// <summary>Wall-clock limit of each window's integer solve (seconds). A window that hits it still gives its proved bound (or, without one, its linear relaxation's).</summary>
    public double WindowTimeLimitSeconds { get; init; } = 10;

    /// <summary>The relative gap at which an upper-bound window's branch and bound may stop; its proved bound is used whatever the gap.</summary>
    public double RelativeGap { get; init; } = 1e-9;

    /// <summary>The relative gap at which a feasible-schedule window may stop (its schedule needs no proof).</summary>
    public double FeasibleRelativeGap { get; init; } = 1e-6;

    /// <summary>
    /// True (the default): the rows that tie a window to the one before are priced with the year LP's duals (a
    /// Lagrangian relaxation; the bound is then at most the LP's). False: they are dropped (each window after the
    /// first starts from a free state at no cost) — also a bound, but it may exceed the LP's.
    /// </summary>
    public bool PriceCouplings { get; init; } = true;

    /// <summary>Threads (the upper-bound windows are independent; the feasible schedule is one chain beside them). 0: the processor count.</summary>
    public int MaxParallelism { get; init; }

    /// <summary>
    /// Intervals (ascending, each in <c>[1, Count)</c>) at which the horizon is also cut into parts, each given a bound
    /// of its own (<see cref="IntegerBoundResult.PartUpperBoundsUsd"/>; e.g. the halves of a year). Each becomes a
    /// window boundary; null or empty (the default): one part, the whole horizon.
    /// </summary>
    public int[]? PartStarts { get; init; }
}

/// <summary>The integer bounds of a site over its horizon (see <see cref="IntegerBound"/>).</summary>
public sealed record IntegerBoundResult
{
    /// <summary>The linear relaxation's optimum (USD, AI revenue included): <see cref="OptimizerResult.UpperBoundUsd"/> of <see cref="PerfectForesightOptimizer"/> (fractional miners).</summary>
    public required double LpBoundUsd { get; init; }

    /// <summary>A proved upper bound (USD) on the value of every whole-miner schedule that respects the limits: the windows' proved bounds plus the coupling terms.</summary>
    public required double IntegerUpperBoundUsd { get; init; }

    /// <summary>The tighter of <see cref="LpBoundUsd"/> and <see cref="IntegerUpperBoundUsd"/> (both bound every whole-miner schedule).</summary>
    public double BestUpperBoundUsd => Math.Min(LpBoundUsd, IntegerUpperBoundUsd);

    /// <summary>Which bound <see cref="BestUpperBoundUsd"/> is: <see cref="IntegerBound.IntegerBoundName"/> or <see cref="IntegerBound.LpBoundName"/>.</summary>
    public string BestUpperBoundName => IntegerUpperBoundUsd <= LpBoundUsd ? IntegerBound.IntegerBoundName : IntegerBound.LpBoundName;

    /// <summary>The feasible whole-miner schedule, <c>Running[group][interval]</c>: the better of <see cref="SequentialValueMicroUsd"/> and <see cref="JoinedValueMicroUsd"/>.</summary>
    public required double[][] FeasibleRunning { get; init; }

    /// <summary>The feasible schedule's accounting (<see cref="SiteAccumulator"/>, the site's single definition of value and violations).</summary>
    public required SiteValue Feasible { get; init; }

    /// <summary>The feasible schedule's value (micro-USD, by the accounting): a lower bound on the integer optimum.</summary>
    public long FeasibleValueMicroUsd => Feasible.ValueMicroUsd;

    /// <summary>The feasible schedule's value (USD).</summary>
    public double FeasibleValueUsd => Feasible.ValueUsd;

    /// <summary>The value (micro-USD) of the windows solved in sequence, each from the last one's final state.</summary>
    public required long SequentialValueMicroUsd { get; init; }

    /// <summary>The value (micro-USD) of the upper-bound windows' own schedules joined and put through <see cref="DispatchLimits.Enforce"/>.</summary>
    public required long JoinedValueMicroUsd { get; init; }

    /// <summary>Where the integer optimum may still lie above the feasible schedule (USD; ≥ 0 up to the solvers' tolerances).</summary>
    public double GapUsd => BestUpperBoundUsd - FeasibleValueUsd;

    /// <summary>How much the integer bound lowers the LP's (USD; negative when the LP's is the tighter).</summary>
    public double TighteningUsd => LpBoundUsd - IntegerUpperBoundUsd;

    /// <summary>Windows the horizon was cut into.</summary>
    public required int Windows { get; init; }

    /// <summary>Upper-bound windows whose integer solve closed its gap (to <see cref="IntegerBoundOptions.RelativeGap"/>).</summary>
    public required int OptimalWindows { get; init; }

    /// <summary>Upper-bound windows whose integer solve gave no bound in time: their linear relaxation's bound was used.</summary>
    public required int RelaxedWindows { get; init; }

    /// <summary>Feasible-schedule windows whose integer solve found no schedule in time: their LP schedule, rounded down, was used.</summary>
    public required int FeasibleRelaxedWindows { get; init; }

    /// <summary>Intervals of the feasible schedule that <see cref="DispatchLimits.Enforce"/> changed (a solver's tolerance past a limit, or a rounded LP schedule).</summary>
    public required int RepairedIntervals { get; init; }

    /// <summary>The first interval of each part (see <see cref="IntegerBoundOptions.PartStarts"/>), 0 first.</summary>
    public required int[] PartStarts { get; init; }

    /// <summary>
    /// A proved upper bound (USD) on each part's own value (the sum of its intervals' values, as the accounting values
    /// each interval) for every whole-miner schedule that respects the limits, in the order of <see cref="PartStarts"/>.
    /// The rows tying a part to the intervals before and after it are dropped rather than priced (a part's value alone
    /// has nothing to pay them back from), so the parts need not add up to <see cref="IntegerUpperBoundUsd"/> exactly
    /// (on the ERCOT year cut at 1 July they do, to a micro-dollar). One part: <see cref="IntegerUpperBoundUsd"/>.
    /// </summary>
    public required double[] PartUpperBoundsUsd { get; init; }

    /// <summary>Windows solved again for the parts' bounds (a part's first and last window, with the rows across the part's edge dropped).</summary>
    public required int PartEdgeWindows { get; init; }

    /// <summary>Wall time of the year's linear program (build and solve).</summary>
    public required TimeSpan LpTime { get; init; }

    /// <summary>Solver time of the upper-bound windows (the parts' edge windows included), summed over windows.</summary>
    public required TimeSpan BoundSolveTime { get; init; }

    /// <summary>Solver time of the feasible-schedule windows, summed.</summary>
    public required TimeSpan FeasibleSolveTime { get; init; }

    /// <summary>Wall time of the whole computation.</summary>
    public required TimeSpan Elapsed { get; init; }

    /// <summary>The integer solver that ran (lower case).</summary>
    public required string Solver { get; init; }
}

/// <summary>
/// A provable upper bound on the value of every whole-miner schedule of a site, at most the linear relaxation's
/// (<see cref="PerfectForesightOptimizer"/>), and a feasible whole-miner schedule below it: the integer optimum
/// lies between the two. The horizon is cut into windows (a day each by default), each solved as a mixed-integer
/// program (whole running miners, as with <see cref="OptimizerOptions.RelaxStarts"/> false).
/// </summary>
/// <remarks>
/// <para><b>Why the windows' sum is a bound.</b> The site model's objective is a sum over intervals of terms in
/// <c>r_t</c> alone (mining revenue, energy, the 4CP peak charge — a per-interval weight — and AI revenue) and of
/// start terms <c>c_t·s_t</c> with <c>c_t ≤ 0</c>, <c>s_t ≥ r_t − r_{t−1}</c>; every constraint is either per
/// interval (fleet, interconnect, emergencies) or ties <c>t</c> to <c>t − 1</c> (starts, ramps, the ramp-down
/// exemption). Move the rows that tie a window's first interval <c>a</c> to <c>a − 1</c> into the objective with
/// multipliers <c>λ ≥ 0</c> (for a row <c>g(r) ≥ 0</c>, add <c>λ·g(r)</c>). Every legal whole-year schedule
/// satisfies those rows, so the added terms are ≥ 0 at it; and what is left separates: each window is a model of
/// its own whose first interval is free (no start, ramp or exemption row ties it to anything), with the λ terms on
/// its first and last intervals' counts, and a start variable at <c>a</c>, left with no row, at its best value
/// <c>Count·max(0, c_a + λ)</c>. The legal schedule restricted to a window is feasible there (the window's other
/// rows are the year's own), so its value is at most the sum of the windows' optima, which their proved bounds
/// (the solver's dual bound, not its schedule) can only exceed. With <c>λ = 0</c> the rows are just dropped: each
/// window starts from a free state at no cost (a dropped start costs <c>c_a·s_a ≤ 0</c>: dropping it can only raise
/// the value). With <c>λ</c> the year LP's optimal duals of those rows (the default), the windows' linear
/// relaxations sum exactly to the LP's optimum (LP duality), so the integer windows — each at most its relaxation —
/// sum to at most the LP's bound.</para>
/// <para>The ramp-down exemption (a drop beyond the ramp-down limit is legal at the interconnect limit) is not
/// convex: in a window, as in the year LP, it is its convex hull (<c>SiteLp</c>), and a window's bound is the hull
/// model's, never that of a model with a regime fixed (windows are solved once, not repaired). "At the limit" is the
/// accounting's rule, exactly at it (<c>LpWindow.ExactLimit</c>), as in the LP, so the windows' rows are the LP's
/// own: the bound covers the schedules <see cref="SiteAccumulator"/> passes, not a forced drop left one miner short
/// of the limit (which <see cref="DispatchLimits"/> may leave and the accounting flags as a ramp violation).
/// Emergencies are per interval (no miner runs) and the drop into one is immediate (no ramp row), in the windows as
/// in the year. For the shipped sites the ramp-down is unlimited: no hull, and the distinction does not arise.</para>
/// <para>The argument is exact; the numbers come from floating-point solvers (feasibility tolerances of about
/// 1e-6, relative in SCIP; the duals from GLOP): the bound is as sound as the year LP's.</para>
/// <para><b>A part's own bound.</b> For a part of the horizon (whole windows <c>[K1, K2)</c>) the same argument runs with
/// only the rows inside the part priced: a legal schedule's value over the part is at most the sum of its windows'
/// bounds plus the constants of the rows between them — where the part's first window (unless it is the horizon's) is
/// solved with its entry rows dropped (no <c>λ</c> terms on its first interval; its start there, costing
/// <c>c_a·s_a ≤ 0</c>, dropped too) and its last window (unless the horizon's) with no terms on its last interval. Those
/// windows are solved once more for the part (<see cref="IntegerBoundResult.PartEdgeWindows"/>).</para>
/// <para><b>The feasible schedule.</b> The windows are solved again in sequence, each from the previous window's
/// final whole-miner state (fixed, every rule applied at its first interval) and looking one window further ahead
/// with continuous counts (a window cut at midnight would otherwise end in whatever state is cheapest that night,
/// however dear the restart next morning); each window's schedule goes through <see cref="DispatchLimits.Enforce"/>
/// (a solver's schedule may pass a limit by its tolerance). The upper-bound windows' own schedules, joined and
/// enforced the same way, are a second candidate; the better of the two, valued by <see cref="SiteAccumulator"/>,
/// is the feasible schedule, a lower bound on the integer optimum.</para>
/// </remarks>
public static class IntegerBound
{
    /// <summary>The name of the integer bound in reports.</summary>
    public const string IntegerBoundName = "integer bound (day windows)";

    /// <summary>The name of the linear relaxation's bound in reports.</summary>
    public const string LpBoundName = "optimum (LP)";

    /// <summary>The solver "auto" picks for the windows (measured: see <see cref="IntegerBoundOptions.Solver"/>).</summary>
    internal const string AutoSolver = "scip";

    /// <summary>
    /// Computes both bounds of <paramref name="p"/>. Throws <see cref="ArgumentException"/> for inputs the model
    /// cannot represent (as <see cref="PerfectForesightOptimizer.Solve"/>) or a solver that cannot solve integer
    /// programs, and <see cref="OptimizerException"/> when the year LP fails.
    /// </summary>
    public static IntegerBoundResult Compute(SiteProblem p, IntegerBoundOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(p);
        options ??= new IntegerBoundOptions();
        string solverName = string.Equals(options.Solver, "auto", StringComparison.OrdinalIgnoreCase) ? AutoSolver : options.Solver;
        var boundOptions = new OptimizerOptions
        {
            Solver = solverName,
            RelaxStarts = false,
            TimeLimitSeconds = options.WindowTimeLimitSeconds,
            MipRelativeGap = options.RelativeGap,
        };
        PerfectForesightOptimizer.Validate(p, boundOptions);
        if (!(options.RelativeGap >= 0) || !(options.FeasibleRelativeGap >= 0)) throw new ArgumentOutOfRangeException(nameof(options), "Relative gaps must be non-negative.");
        ArgumentOutOfRangeException.ThrowIfNegative(options.WindowIntervals);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.LookaheadIntervals, -1);
        int[] partStarts = options.PartStarts ?? [];
        for (int i = 0; i < partStarts.Length; i++)
            if (partStarts[i] < 1 || partStarts[i] >= p.Count || (i > 0 && partStarts[i] <= partStarts[i - 1]))
                throw new ArgumentOutOfRangeException(nameof(options), $"Part starts must ascend within [1, {p.Count}); got {string.Join(", ", partStarts)}.");
        using (LpBackend.Create(solverName, integer: true)) { } // an unknown or LP-only solver fails here, not in a window
        var feasibleOptions = boundOptions with { MipRelativeGap = options.FeasibleRelativeGap };
        var lpOptions = new OptimizerOptions { TimeLimitSeconds = Math.Max(new OptimizerOptions().TimeLimitSeconds, options.WindowTimeLimitSeconds) };
        long started = Stopwatch.GetTimestamp();

        int n = p.Count, G = p.Groups.Length;
        int size = options.WindowIntervals > 0 ? options.WindowIntervals : Math.Max(1, 24 * 60 / p.IntervalMinutes);
        // Windows of `size` intervals from the start, each part start a boundary too (a window across one is cut there).
        var cuts = new SortedSet<int>(partStarts);
        for (int a = 0; a < n; a += size) cuts.Add(a);
        int[] starts = [.. cuts];
        int windows = starts.Length;
        int End(int k) => k + 1 < windows ? starts[k + 1] : n;
        int lookahead = options.LookaheadIntervals >= 0 ? options.LookaheadIntervals : size;
        double[] initial = Array.ConvertAll(p.InitialRunning, i => (double)i);

        // The year LP: its bound, and the duals of the rows at each window's first interval.
        LpWindow year = Window(p, 0, n, initial);
        if (options.PriceCouplings && windows > 1) year.CouplingsAt = starts[1..];
        LpSolution lp = SiteLp.Solve(year, lpOptions);
        TimeSpan lpTime = Stopwatch.GetElapsedTime(started);
        Coupling[] couplings = lp.Couplings ?? NoCouplings(windows - 1, G);

        var bound = new double[windows];
        var boundOptimal = new bool[windows];
        var boundRelaxed = new bool[windows];
        var boundTicks = new long[windows];
        var joined = NewSchedule(G, n);
        string solver = solverName.ToLowerInvariant();

        // The feasible chain: sequential by nature, it runs beside the (independent) upper-bound windows.
        var sequential = NewSchedule(G, n);
        int sequentialRelaxed = 0, sequentialRepaired = 0;
        long sequentialTicks = 0;
        void RunChain()
        {
            double[] state = (double[])initial.Clone();
            for (int k = 0; k < windows; k++)
            {
                int a = starts[k], len = End(k) - a;
                LpWindow w = Window(p, a, Math.Min(len + lookahead, n - a), state);
                w.IntegerIntervals = len;
                double[][] solution;
                try
                {
                    LpSolution s = SiteLp.Solve(w, feasibleOptions);
                    sequentialTicks += s.SolveTime.Ticks;
                    solution = s.Running;
                }
                catch (OptimizerException)
                {
                    // No whole-miner schedule in time: the window's LP schedule, rounded down by Enforce.
                    LpSolution s = SiteLp.Solve(w, lpOptions);
                    sequentialTicks += s.SolveTime.Ticks;
                    solution = s.Running;
                    sequentialRelaxed++;
                }
                sequentialRepaired += Enforce(p, a, len, state, solution, sequential);
                for (int g = 0; g < G; g++) state[g] = sequential[g][a + len - 1];
            }
        }

        // A window's bound: a model of its own, its first interval free (after the first window), the rows that tie it to
        // the windows beside it priced where asked (their terms on its first and last intervals) and dropped otherwise.
        LpSolution SolveBoundWindow(int k, bool priceEntry, bool priceExit, out bool optimal, out bool relaxed)
        {
            int a = starts[k];
            LpWindow w = Window(p, a, End(k) - a, initial);
            w.BoundOnly = true;
            w.ExactLimit = true;
            w.FreeInitial = k > 0;
            if (k > 0 && priceEntry) w.FirstObjective = couplings[k - 1].Next;
            if (k + 1 < windows && priceExit) w.LastObjective = couplings[k].Previous;
            optimal = relaxed = false;
            try
            {
                LpSolution s = SiteLp.Solve(w, boundOptions);
                optimal = s.Optimal;
                return s;
            }
            catch (OptimizerException)
            {
                // No proved bound in time: the window's linear relaxation bounds it too.
                relaxed = true;
                return SiteLp.Solve(w, lpOptions);
            }
        }

        // The parts: windows [partFirst[j], partFirst[j + 1]). A part's first window (but the horizon's) is solved again
        // with its entry unpriced, its last (but the horizon's) with its exit unpriced: a part alone must not count the
        // priced terms of rows across its edges, whose other side it does not hold.
        int[] partFirst = [0, .. partStarts.Select(x => Array.BinarySearch(starts, x)), windows];
        var edgeList = new List<(int Window, bool Entry, bool Exit)>();
        var partEdge = new Dictionary<int, int>();
        for (int j = 0; j + 1 < partFirst.Length; j++)
        {
            for (int k = partFirst[j]; k < partFirst[j + 1]; k++)
            {
                bool entry = k > partFirst[j], exit = k + 1 < partFirst[j + 1];
                if ((entry || k == 0) && (exit || k + 1 == windows)) continue; // the window's own bound serves
                partEdge[k] = edgeList.Count;
                edgeList.Add((k, entry, exit));
            }
        }
        var edges = edgeList.ToArray();
        var edgeBound = new double[edges.Length];
        var edgeTicks = new long[edges.Length];

        int threads = options.MaxParallelism > 0 ? options.MaxParallelism : Environment.ProcessorCount;
        Task chain = threads > 1 ? Task.Run(RunChain) : Task.CompletedTask;
        try
        {
            var parallel = new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, threads - 1) };
            Parallel.For(0, windows, parallel, k =>
            {
                LpSolution s = SolveBoundWindow(k, priceEntry: true, priceExit: true, out boundOptimal[k], out boundRelaxed[k]);
                bound[k] = s.UpperBoundUsd;
                boundTicks[k] = s.SolveTime.Ticks;
                for (int g = 0; g < G; g++) Array.Copy(s.Running[g], 0, joined[g], starts[k], End(k) - starts[k]);
            });
            // The parts' edge windows again, without the priced rows that cross the part's edge.
            Parallel.For(0, edges.Length, parallel, e =>
            {
                (int k, bool entry, bool exit) = edges[e];
                LpSolution s = SolveBoundWindow(k, entry, exit, out _, out _);
                edgeBound[e] = s.UpperBoundUsd;
                edgeTicks[e] = s.SolveTime.Ticks;
            });
        }
        catch (AggregateException e)
        {
            // Let the chain finish (it shares nothing the windows wrote), then report the window's own exception.
            ((IAsyncResult)chain).AsyncWaitHandle.WaitOne();
            ExceptionDispatchInfo.Throw(e.InnerExceptions.Count == 1 ? e.InnerExceptions[0] : e);
        }
        chain.GetAwaiter().GetResult();
        if (threads == 1) RunChain();

        double integerBound = 0;
        for (int k = 0; k < windows; k++) integerBound += bound[k];
        for (int k = 0; k + 1 < windows; k++) integerBound += couplings[k].Constant;
        var partBound = new double[partFirst.Length - 1];
        for (int j = 0; j < partBound.Length; j++)
        {
            // The part's windows (its edges as solved for it) and the constant terms of the rows within it.
            for (int k = partFirst[j]; k < partFirst[j + 1]; k++)
            {
                partBound[j] += partEdge.TryGetValue(k, out int e) ? edgeBound[e] : bound[k];
                if (k + 1 < partFirst[j + 1]) partBound[j] += couplings[k].Constant;
            }
        }

        // The joined upper-bound schedules, made legal interval by interval from the initial state.
        var joinedLegal = NewSchedule(G, n);
        int joinedRepaired = Enforce(p, 0, n, initial, joined, joinedLegal);
        SiteValue sequentialValue = SiteAccumulator.Evaluate(p, sequential);
        SiteValue joinedValue = SiteAccumulator.Evaluate(p, joinedLegal);
        bool useSequential = sequentialValue.ValueMicroUsd >= joinedValue.ValueMicroUsd;

        return new IntegerBoundResult
        {
            LpBoundUsd = Math.Max(lp.UpperBoundUsd, lp.ValueUsd),
            IntegerUpperBoundUsd = integerBound,
            FeasibleRunning = useSequential ? sequential : joinedLegal,
            Feasible = useSequential ? sequentialValue : joinedValue,
            SequentialValueMicroUsd = sequentialValue.ValueMicroUsd,
            JoinedValueMicroUsd = joinedValue.ValueMicroUsd,
            Windows = windows,
            OptimalWindows = boundOptimal.Count(x => x),
            RelaxedWindows = boundRelaxed.Count(x => x),
            FeasibleRelaxedWindows = useSequential ? sequentialRelaxed : 0,
            RepairedIntervals = useSequential ? sequentialRepaired : joinedRepaired,
            LpTime = lpTime,
            PartStarts = [0, .. partStarts],
            PartUpperBoundsUsd = partBound.Length == 1 ? [integerBound] : partBound,
            PartEdgeWindows = edges.Length,
            BoundSolveTime = TimeSpan.FromTicks(boundTicks.Sum() + edgeTicks.Sum()),
            FeasibleSolveTime = TimeSpan.FromTicks(sequentialTicks),
            Elapsed = Stopwatch.GetElapsedTime(started),
            Solver = solver,
        };
    }

    // The intervals [a, a + len) of the site as a model window (series copied), starting from `initial`.
    private static LpWindow Window(SiteProblem p, int a, int len, double[] initial)
    {
        LpWindow w = LpWindow.ForSite(p);
        w.Price = p.PriceUsdPerMwh.AsSpan(a, len).ToArray();
        w.Hashprice = p.HashpriceUsdPerThDay.AsSpan(a, len).ToArray();
        w.AiKw = p.AiItKw.AsSpan(a, len).ToArray();
        w.PeakWeight = p.PeakChargeUsdPerKw.AsSpan(a, len).ToArray();
        w.AiRevenue = p.AiRevenueUsd.AsSpan(a, len).ToArray();
        w.Emergency = p.Emergency.AsSpan(a, len).ToArray();
        w.Initial = (double[])initial.Clone();
        w.Count = len;
        return w;
    }

    private static double[][] NewSchedule(int groups, int n)
    {
        var s = new double[groups][];
        for (int g = 0; g < groups; g++) s[g] = new double[n];
        return s;
    }

    private static Coupling[] NoCouplings(int count, int groups)
    {
        var result = new Coupling[Math.Max(0, count)];
        for (int i = 0; i < result.Length; i++) result[i] = new Coupling { Next = new double[groups], Previous = new double[groups] };
        return result;
    }

    // Writes the first `len` intervals of a window's schedule into `into` at `a`, made whole and legal: counts
    // rounded down (whole counts stay), then DispatchLimits.Enforce from the state before. Returns the intervals
    // the limits changed.
    private static int Enforce(SiteProblem p, int a, int len, double[] state, double[][] schedule, double[][] into)
    {
        int G = p.Groups.Length, changed = 0;
        int[] previous = Array.ConvertAll(state, x => (int)Math.Round(x));
        var asked = new int[G];
        var running = new int[G];
        for (int i = 0; i < len; i++)
        {
            for (int g = 0; g < G; g++) running[g] = asked[g] = (int)Math.Floor(schedule[g][i] + 1e-9);
            DispatchLimits.Enforce(p, a + i, previous, running);
            if (!running.AsSpan().SequenceEqual(asked)) changed++;
            for (int g = 0; g < G; g++) into[g][a + i] = running[g];
            Array.Copy(running, previous, G);
        }
        return changed;
    }
}
