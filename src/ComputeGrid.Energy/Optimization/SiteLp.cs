using System.Diagnostics;
using ComputeGrid.Energy.Dispatch;

namespace ComputeGrid.Energy.Optimization;

/// <summary>
/// The inputs of one site LP: the whole horizon of a <see cref="SiteProblem"/> for the perfect-foresight optimizer,
/// or one day's forecast for the day-ahead planner (which reuses one window and its arrays from day to day).
/// Arrays may be longer than <see cref="Count"/>; only the first <see cref="Count"/> entries are read.
/// </summary>
internal sealed class LpWindow
{
    public MinerGroup[] Groups = [];
    public double Pue, InterconnectKw, RampUpKw, RampDownKw, RestartMinutes, RestartWearUsd, PoolFeeFraction;
    public int IntervalMinutes;
    public double[] Price = [], Hashprice = [], AiKw = [], PeakWeight = [];
    public double[]? AiRevenue;
    /// <summary>Declared grid emergencies (null: none): no miner runs then, and the drop into one is immediate, as <see cref="DispatchLimits"/> rules.</summary>
    public bool[]? Emergency;
    public double[] Initial = [];
    public int Count;

    /// <summary>
    /// True: the state before interval 0 is free — <see cref="Initial"/> is ignored, and no start, ramp or ramp-down
    /// exemption row ties interval 0 to it (no start is counted there). The window is then a relaxation of every
    /// schedule that reaches it from any state (<see cref="IntegerBound"/>). False (the default): interval 0 follows
    /// <see cref="Initial"/> by every rule.
    /// </summary>
    public bool FreeInitial;

    /// <summary>Added (per group) to the objective coefficient of the first interval's running count (null: nothing): a price on the state the window starts in.</summary>
    public double[]? FirstObjective;

    /// <summary>Added (per group) to the objective coefficient of the last interval's running count (null: nothing): a value of the state the window ends in.</summary>
    public double[]? LastObjective;

    /// <summary>
    /// Intervals (≥ 1, ascending) at which a linear program should report the duals of the rows that tie the
    /// interval to the one before (starts, ramp, ramp-down exemption) as <see cref="LpSolution.Couplings"/>; null: none.
    /// </summary>
    public int[]? CouplingsAt;

    /// <summary>Integer solves only: the running counts of intervals from this one on stay continuous (a relaxed lookahead); all intervals are whole by default.</summary>
    public int IntegerIntervals = int.MaxValue;

    /// <summary>
    /// Integer solves only: true makes "at the limit" (the ramp-down exemption) mean exactly at it, as the
    /// accounting rules, rather than within one miner of it, where <see cref="DispatchLimits"/> leaves a forced drop.
    /// The window's rows are then the linear program's own (<see cref="IntegerBound"/> needs that).
    /// </summary>
    public bool ExactLimit;

    /// <summary>True: the first solve's bound is all the caller needs; a relaxed schedule that misuses the ramp-down exemption is not repaired (no second pass).</summary>
    public bool BoundOnly;

    /// <summary>The static facts of a site (groups, limits, rates); series and the initial state are set by the caller.</summary>
    public static LpWindow ForSite(SiteProblem p) => new()
    {
        Groups = p.Groups,
        Pue = p.Pue,
        InterconnectKw = p.InterconnectKw,
        RampUpKw = p.RampUpKwPerInterval,
        RampDownKw = p.RampDownKwPerInterval,
        RestartMinutes = p.RestartMinutes,
        RestartWearUsd = p.RestartWearUsd,
        PoolFeeFraction = p.PoolFeeFraction,
        IntervalMinutes = p.IntervalMinutes,
    };
}

/// <summary>A solved window.</summary>
internal sealed class LpSolution
{
    public required double[][] Running;
    /// <summary>The schedule's value (USD) by the accounting formulas (AI revenue included when the window has it).</summary>
    public double ValueUsd;
    /// <summary>The first (relaxed) solve's optimum or proved bound, same terms as <see cref="ValueUsd"/>.</summary>
    public double UpperBoundUsd;
    public TimeSpan BuildTime, SolveTime;
    public string Solver = "";
    public int Variables, Constraints, Passes;
    public bool Optimal = true;
    /// <summary>The Lagrangian terms of the coupling rows at <see cref="LpWindow.CouplingsAt"/> (a linear program's first solve), in that order; null when none were asked for.</summary>
    public Coupling[]? Couplings;
}

/// <summary>
/// The rows that tie interval <c>t</c> to <c>t − 1</c> (a start row per group, the ramp row, the ramp-down
/// exemption's hull row), moved into the objective with non-negative multipliers (the LP's duals): the term
/// <c>Σ λ·(row slack)</c> is linear, <c>Σ_g Next[g]·r[g,t] + Σ_g Previous[g]·r[g,t−1] + Constant</c> once each
/// start variable <c>s[g,t]</c>, left with no row, is set to its best value (its bound times a positive coefficient).
/// Adding it to a model without those rows gives, for any schedule that satisfies them, at least its value.
/// </summary>
internal sealed class Coupling
{
    public required double[] Next, Previous;
    public double Constant;
}

/// <summary>
/// Builds and solves the site LP. Per interval <c>t</c> and group <c>g</c>: <c>r[g,t] ∈ [0, Count_g]</c> miners
/// running, <c>s[g,t] ∈ [0, Count_g]</c> starts with <c>s[g,t] ≥ r[g,t] − r[g,t−1]</c>
/// (<c>r[g,−1]</c> = the initial state); miner kW <c>x_t = Σ_g W_g/1000 · r[g,t]</c>; interconnect
/// <c>PUE·(AI_t + x_t) ≤ limit</c>; ramps <c>−RD ≤ x_t − x_{t−1} ≤ RU</c>. Objective (maximized): the
/// <see cref="SiteAccumulator"/> formulas, which are linear in <c>r</c> and <c>s</c>: mining revenue
/// <c>hashprice·TH·(r − s·startFraction)·h/24·(1 − fee)</c>, minus energy <c>price·PUE·(AI + x)/1000·h</c>, minus the
/// peak charge <c>weight·PUE·(AI + x)</c>, minus wear <c>s·wear</c>.
/// </summary>
/// <remarks>
/// <para><b>Exactness and boundedness.</b> A start's objective coefficient is <c>−hashprice·TH·startFraction·h/24·(1−fee) − wear ≤ 0</c>
/// (inputs are validated: hashprice ≥ 0, wear ≥ 0, fee ≤ 1), so at the optimum <c>s = max(0, r − r₋₁)</c>, the
/// accumulator's definition, and a start is never worth creating. Every variable is bounded (<c>s ≤ Count</c> too),
/// so negative prices — which make running miners pay — cannot make the model unbounded.
/// A start coefficient of zero leaves <c>s</c> out of the model altogether.</para>
/// <para><b>The ramp-down exemption.</b> The accounting lets miners drop faster than the ramp-down limit when the
/// facility sits at the interconnect limit (AI load rose; the interconnect outranks the ramp). The set
/// <c>x_t ≥ min(x_{t−1} − RD, H_t)</c> (<c>H_t</c> the miner headroom) is not convex. Where it can matter
/// (<c>P_t − RD &gt; H_t</c>, <c>P_t</c> the most the miners can draw at <c>t−1</c>) the first solve uses its convex hull,
/// <c>x_t ≥ H_t·(x_{t−1} − RD)/(P_t − RD)</c>: a relaxation, so its optimum bounds every legal schedule. If the
/// relaxed schedule broke the rule somewhere, each such interval is fixed to one legal regime — at the limit
/// (<c>x_t ≥ H_t</c>) or within the ramp (<c>x_t ≥ x_{t−1} − RD</c>) — chosen from the relaxed schedule, and the
/// model solved again (a third time, with regimes from the greedy fastest-ramp schedule, which is always feasible,
/// should that fail). At <c>t = 0</c> the previous state is a constant and the hull is exact.</para>
/// <para>For integer schedules "at the limit" means within one miner of it (no whole number of miners fits the limit
/// exactly; <see cref="DispatchLimits"/> stops there too).</para>
/// </remarks>
internal static class SiteLp
{
    /// <summary>The LP solver "auto" picks: the fastest exact one on the site LP, for a year and for a day (measured; see <see cref="OptimizerOptions.Solver"/>).</summary>
    internal const string AutoLpSolver = "glop";

    /// <summary>The solver "auto" picks for integer schedules.</summary>
    internal const string AutoMipSolver = "highs";

    // Tolerance (kW) of the checks of the relaxed schedule against the ramp-down rule: tighter than the accounting's 1e-6 kW.
    private const double RampTolKw = 1e-7;

    public static LpSolution Solve(LpWindow w, OptimizerOptions o)
    {
        int T = w.Count, G = w.Groups.Length;
        bool integer = !o.RelaxStarts;
        string solverName = string.Equals(o.Solver, "auto", StringComparison.OrdinalIgnoreCase)
            ? (integer ? AutoMipSolver : AutoLpSolver)
            : o.Solver;
        var running = new double[G][];
        for (int g = 0; g < G; g++) running[g] = new double[T];

        long started = Stopwatch.GetTimestamp();
        using LpBackend lp = LpBackend.Create(solverName, integer);

        double hours = w.IntervalMinutes / 60.0;
        double startFraction = Math.Min(w.RestartMinutes, w.IntervalMinutes) / w.IntervalMinutes;
        double mineK = hours / 24.0 * (1 - w.PoolFeeFraction);
        var kwEach = new double[G];
        double fleetKw = 0, initKw = 0, maxMinerKw = 0;
        for (int g = 0; g < G; g++)
        {
            kwEach[g] = w.Groups[g].WattsEach / 1000.0;
            fleetKw += w.Groups[g].Count * kwEach[g];
            if (!w.FreeInitial) initKw += w.Initial[g] * kwEach[g];
            maxMinerKw = Math.Max(maxMinerKw, kwEach[g]);
        }
        double cap = w.InterconnectKw / w.Pue;
        double slack = integer && !w.ExactLimit ? maxMinerKw : 0;
        double ru = w.RampUpKw, rd = w.RampDownKw;
        bool rampUp = !double.IsPositiveInfinity(ru), rampDown = !double.IsPositiveInfinity(rd);

        // Headroom H_t, upper envelope U_t = min(fleet, H_t) (0 in an emergency), previous envelope P_t.
        var head = new double[T];
        var prevMax = new double[T];
        for (int t = 0; t < T; t++)
        {
            head[t] = Math.Max(0, cap - w.AiKw[t]);
            prevMax[t] = t == 0 ? initKw : Emergency(w, t - 1) ? 0 : Math.Min(fleetKw, head[t - 1]);
        }

        // Rows of the coupling intervals whose duals are asked for (a linear program only).
        int[]? couplingsAt = integer ? null : w.CouplingsAt;
        var couplingIndex = new Dictionary<int, int>();
        for (int i = 0; couplingsAt is not null && i < couplingsAt.Length; i++)
        {
            if (couplingsAt[i] < 1 || couplingsAt[i] >= T) throw new ArgumentOutOfRangeException(nameof(w), $"Coupling interval {couplingsAt[i]} is outside [1, {T}).");
            couplingIndex[couplingsAt[i]] = i;
        }
        var rows = new CouplingRows[couplingIndex.Count];
        for (int i = 0; i < rows.Length; i++) rows[i] = new CouplingRows(G);

        // Running variables r[g,t] at index g·T + t.
        for (int g = 0; g < G; g++)
        {
            MinerGroup grp = w.Groups[g];
            double energyPerMiner = w.Pue * kwEach[g] / 1000.0 * hours; // facility MWh per running miner
            double peakPerMiner = w.Pue * kwEach[g];                    // facility kW per running miner
            for (int t = 0; t < T; t++)
            {
                double obj = w.Hashprice[t] * grp.TerahashEach * mineK - w.Price[t] * energyPerMiner - w.PeakWeight[t] * peakPerMiner;
                if (t == 0 && w.FirstObjective is not null) obj += w.FirstObjective[g];
                if (t == T - 1 && w.LastObjective is not null) obj += w.LastObjective[g];
                double ub = Emergency(w, t) ? 0 : Math.Min(grp.Count, head[t] / kwEach[g]);
                lp.AddVar(0, ub, obj, integer && t < w.IntegerIntervals);
            }
        }

        // Starts s[g,t] (only where a start costs something) and their rows s − r_t + r_{t−1} ≥ 0.
        for (int g = 0; g < G; g++)
        {
            MinerGroup grp = w.Groups[g];
            for (int t = 0; t < T; t++)
            {
                double cs = -w.Hashprice[t] * grp.TerahashEach * startFraction * mineK - w.RestartWearUsd;
                if (!(cs < 0) || (t == 0 && w.FreeInitial)) continue;
                int s = lp.AddVar(0, grp.Count, cs, false);
                int row = lp.AddRow(t == 0 ? -w.Initial[g] : 0, double.PositiveInfinity);
                if (couplingIndex.TryGetValue(t, out int ci))
                {
                    rows[ci].StartRow[g] = row;
                    rows[ci].StartCost[g] = cs;
                }
                lp.AddTerm(row, s, 1);
                lp.AddTerm(row, g * T + t, -1);
                if (t > 0) lp.AddTerm(row, g * T + t - 1, 1);
            }
        }

        // Interconnect: x_t ≤ H_t (with one group it is the variable's bound).
        if (G > 1)
        {
            for (int t = 0; t < T; t++)
            {
                if (fleetKw <= head[t] || Emergency(w, t)) continue;
                int row = lp.AddRow(double.NegativeInfinity, head[t]);
                for (int g = 0; g < G; g++) lp.AddTerm(row, g * T + t, kwEach[g]);
            }
        }

        // Ramps, and the hull of the ramp-down exemption where it can matter.
        var hullT = new List<int>();
        var hullRow = new List<int>();
        if (rampUp || rampDown)
        {
            for (int t = 0; t < T; t++)
            {
                if (Emergency(w, t)) continue; // every miner stops at once: no ramp applies
                if (t == 0 && w.FreeInitial) continue; // nothing ties interval 0 to a free state
                double u = Math.Min(fleetKw, head[t]);
                double hs = Math.Max(0, head[t] - slack);
                bool up = rampUp && ru < (t == 0 ? u - initKw : u);
                bool exempt = rampDown && prevMax[t] - rd > hs + 1e-9 * (1 + prevMax[t]);
                bool down = rampDown && !exempt && rd < prevMax[t];
                if (t == 0)
                {
                    if (!(up || down || exempt)) continue;
                    double lo = exempt ? hs : down ? initKw - rd : double.NegativeInfinity;
                    int row = lp.AddRow(lo, up ? initKw + ru : double.PositiveInfinity);
                    AddX(lp, row, 0, T, kwEach, 1);
                    continue;
                }
                if (up || down)
                {
                    int row = lp.AddRow(down ? -rd : double.NegativeInfinity, up ? ru : double.PositiveInfinity);
                    AddX(lp, row, t, T, kwEach, 1);
                    AddX(lp, row, t - 1, T, kwEach, -1);
                    if (couplingIndex.TryGetValue(t, out int ci))
                    {
                        rows[ci].RampRow = row;
                        rows[ci].RampLower = down ? -rd : double.NegativeInfinity;
                        rows[ci].RampUpper = up ? ru : double.PositiveInfinity;
                    }
                }
                if (exempt)
                {
                    double c = hs / (prevMax[t] - rd);
                    int row = lp.AddRow(-c * rd, double.PositiveInfinity);
                    AddX(lp, row, t, T, kwEach, 1);
                    AddX(lp, row, t - 1, T, kwEach, -c);
                    hullT.Add(t);
                    hullRow.Add(row);
                    if (couplingIndex.TryGetValue(t, out int ci))
                    {
                        rows[ci].HullRow = row;
                        rows[ci].HullSlope = c;
                        rows[ci].HullLower = -c * rd;
                    }
                }
            }
        }

        var solution = new LpSolution { Running = running, Solver = lp.Name, Variables = lp.VariableCount, Constraints = lp.RowCount };
        solution.BuildTime = Stopwatch.GetElapsedTime(started);
        if (solution.Variables == 0)
        {
            // Nothing to decide (no miners): the value is the constant part; no solver runs.
            solution.ValueUsd = solution.UpperBoundUsd = ScheduleValue(w, running);
            return solution;
        }

        double constant = 0;
        for (int t = 0; t < T; t++)
        {
            double aiFacilityKw = w.Pue * w.AiKw[t];
            constant += (w.AiRevenue is null ? 0 : w.AiRevenue[t]) - w.Price[t] * aiFacilityKw / 1000.0 * hours - w.PeakWeight[t] * aiFacilityKw;
        }

        long solveStarted = Stopwatch.GetTimestamp();
        int passes = 1;
        LpStatus status = RunSolver(lp, o, T, integer);
        solution.Optimal = status == LpStatus.Optimal;
        solution.UpperBoundUsd = (integer ? lp.BestBound : lp.Objective) + constant;
        Extract(lp, w, T, integer, running);
        if (couplingsAt is not null) solution.Couplings = Couplings(lp, w, couplingsAt, rows, running, kwEach);

        if (hullT.Count > 0 && !w.BoundOnly)
        {
            var x = new double[T];
            MinerKw(running, kwEach, x);
            bool violated = false;
            for (int i = 0; i < hullT.Count && !violated; i++)
            {
                int t = hullT[i];
                violated = !Legal(x[t - 1], x[t], rd, Math.Max(0, head[t] - slack));
            }
            if (violated)
            {
                // Pass 2: regimes from the relaxed schedule.
                for (int i = 0; i < hullT.Count; i++)
                {
                    int t = hullT[i];
                    double hs = Math.Max(0, head[t] - slack);
                    bool atLimit = !(x[t - 1] - x[t] <= rd + RampTolKw) && (x[t] >= hs - RampTolKw || x[t - 1] - rd >= hs);
                    SetRegime(lp, hullRow[i], t, T, kwEach, atLimit, hs, rd);
                }
                passes++;
                status = RunSolver(lp, o, T, integer, throwOnInfeasible: false);
                if (status is LpStatus.Infeasible)
                {
                    // Pass 3: regimes from the greedy fastest-ramp schedule, a feasible point of the restricted model.
                    double prev = initKw;
                    for (int t = 0, i = 0; t < T; t++)
                    {
                        double cur = Emergency(w, t) ? 0 : Math.Min(Math.Min(fleetKw, head[t]), prev + (rampUp ? ru : double.PositiveInfinity));
                        if (i < hullT.Count && hullT[i] == t)
                        {
                            double hs = Math.Max(0, head[t] - slack);
                            SetRegime(lp, hullRow[i], t, T, kwEach, atLimit: prev - cur > rd, hs, rd);
                            i++;
                        }
                        prev = cur;
                    }
                    passes++;
                    status = RunSolver(lp, o, T, integer, throwOnInfeasible: true);
                }
                solution.Optimal &= status == LpStatus.Optimal;
                Extract(lp, w, T, integer, running);
            }
        }
        solution.SolveTime = Stopwatch.GetElapsedTime(solveStarted);
        solution.Passes = passes;
        solution.ValueUsd = ScheduleValue(w, running);
        return solution;
    }

    private static bool Emergency(LpWindow w, int t) => w.Emergency is { } e && e[t];

    // The coupling rows of one interval (−1: the row is not in the model).
    private sealed class CouplingRows(int groups)
    {
        public readonly int[] StartRow = Enumerable.Repeat(-1, groups).ToArray();
        public readonly double[] StartCost = new double[groups];
        public int RampRow = -1, HullRow = -1;
        public double RampLower, RampUpper, HullSlope, HullLower;
    }

    // The Lagrangian terms of each coupling interval's rows, from the first solve's duals. The multiplier of a row is
    // the dual's magnitude, given to the side of the row that is active (of a two-sided ramp row, the side nearer the
    // schedule's ramp): the signs of the solvers' conventions do not matter, and any non-negative multiplier keeps the
    // Lagrangian an upper bound — the duals only make it tight (with them the windows sum to the LP's optimum).
    private static Coupling[] Couplings(LpBackend lp, LpWindow w, int[] at, CouplingRows[] rows, double[][] running, double[] kwEach)
    {
        int G = kwEach.Length;
        var result = new Coupling[at.Length];
        for (int i = 0; i < at.Length; i++)
        {
            int t = at[i];
            CouplingRows c = rows[i];
            var next = new double[G];
            var previous = new double[G];
            double constant = 0;
            for (int g = 0; g < G; g++)
            {
                if (c.StartRow[g] < 0) continue;
                // μ·(s − r_t + r_{t−1}) with s ∈ [0, Count] and no row left: s = Count where cs + μ > 0.
                double mu = Math.Abs(lp.Dual(c.StartRow[g]));
                next[g] -= mu;
                previous[g] += mu;
                constant += w.Groups[g].Count * Math.Max(0, c.StartCost[g] + mu);
            }
            if (c.RampRow >= 0)
            {
                double y = Math.Abs(lp.Dual(c.RampRow));
                double ramp = 0;
                for (int g = 0; g < G; g++) ramp += kwEach[g] * (running[g][t] - running[g][t - 1]);
                bool lower = double.IsFinite(c.RampLower) && (double.IsPositiveInfinity(c.RampUpper) || ramp - c.RampLower <= c.RampUpper - ramp);
                // Lower side: λ·(x_t − x_{t−1} − lo); upper side: λ·(hi − x_t + x_{t−1}).
                double sign = lower ? 1 : -1;
                for (int g = 0; g < G; g++)
                {
                    next[g] += sign * y * kwEach[g];
                    previous[g] -= sign * y * kwEach[g];
                }
                if (y != 0) constant += lower ? -y * c.RampLower : y * c.RampUpper;
            }
            if (c.HullRow >= 0)
            {
                // λ·(x_t − c·x_{t−1} − lo).
                double y = Math.Abs(lp.Dual(c.HullRow));
                for (int g = 0; g < G; g++)
                {
                    next[g] += y * kwEach[g];
                    previous[g] -= y * c.HullSlope * kwEach[g];
                }
                constant -= y * c.HullLower;
            }
            result[i] = new Coupling { Next = next, Previous = previous, Constant = constant };
        }
        return result;
    }

    // The accounting's rule: a drop beyond the ramp-down limit is legal only at the interconnect limit.
    private static bool Legal(double prevKw, double kw, double rd, double limitKw) =>
        prevKw - kw <= rd + RampTolKw || kw >= limitKw - RampTolKw;

    private static void SetRegime(LpBackend lp, int row, int t, int T, double[] kwEach, bool atLimit, double hs, double rd)
    {
        // At the limit: x_t ≥ H_t (the interconnect row caps it there). Within the ramp: x_t − x_{t−1} ≥ −RD.
        lp.SetRowBounds(row, atLimit ? hs : -rd, double.PositiveInfinity);
        for (int g = 0; g < kwEach.Length; g++) lp.SetTerm(row, g * T + t - 1, atLimit ? 0 : -kwEach[g]);
    }

    private static void AddX(LpBackend lp, int row, int t, int T, double[] kwEach, double factor)
    {
        for (int g = 0; g < kwEach.Length; g++) lp.AddTerm(row, g * T + t, factor * kwEach[g]);
    }

    private static LpStatus RunSolver(LpBackend lp, OptimizerOptions o, int T, bool integer, bool throwOnInfeasible = true)
    {
        LpStatus status = lp.Solve(o.TimeLimitSeconds, integer ? o.MipRelativeGap : null);
        if (status == LpStatus.Optimal || (status == LpStatus.Feasible && integer)) return status;
        if (status == LpStatus.Infeasible && !throwOnInfeasible) return status;
        string what = status switch
        {
            LpStatus.Infeasible => "infeasible",
            LpStatus.Unbounded => "unbounded",
            LpStatus.Feasible => $"not solved to optimality within {o.TimeLimitSeconds} s",
            _ => "not solved",
        };
        throw new OptimizerException($"The site {(integer ? "integer program" : "LP")} over {T} intervals is {what} (solver {lp.Name}: {lp.StatusText}).");
    }

    private static void Extract(LpBackend lp, LpWindow w, int T, bool integer, double[][] running)
    {
        for (int g = 0; g < running.Length; g++)
        {
            double max = w.Groups[g].Count;
            double[] r = running[g];
            for (int t = 0; t < T; t++)
            {
                double v = lp.Value(g * T + t);
                if (integer && t < w.IntegerIntervals) v = Math.Round(v);
                r[t] = Math.Clamp(v, 0, max);
            }
        }
    }

    private static void MinerKw(double[][] running, double[] kwEach, double[] x)
    {
        Array.Clear(x);
        for (int g = 0; g < running.Length; g++)
        {
            double[] r = running[g];
            for (int t = 0; t < x.Length; t++) x[t] += r[t] * kwEach[g];
        }
    }

    /// <summary>
    /// The value (USD) of a schedule by the <see cref="SiteAccumulator"/> formulas in unrounded doubles: the LP's
    /// objective at that schedule (with starts at their optimum, <c>max(0, r − r₋₁)</c>), plus the constant terms.
    /// </summary>
    internal static double ScheduleValue(LpWindow w, double[][] running)
    {
        int G = w.Groups.Length;
        double hours = w.IntervalMinutes / 60.0;
        double startFraction = IntervalEconomics.StartFraction(w.RestartMinutes, w.IntervalMinutes);
        Span<double> previous = stackalloc double[G];
        Span<double> r = stackalloc double[G];
        for (int g = 0; g < G; g++) previous[g] = w.FreeInitial ? (w.Count > 0 ? running[g][0] : 0) : w.Initial[g];
        double total = 0;
        for (int t = 0; t < w.Count; t++)
        {
            for (int g = 0; g < G; g++) r[g] = running[g][t];
            IntervalFlow flow = IntervalEconomics.Flow(w.Groups, w.Pue, w.AiKw[t], startFraction, r, previous);
            total += IntervalEconomics.Amounts(flow, w.AiRevenue is null ? 0 : w.AiRevenue[t], w.Hashprice[t], w.PoolFeeFraction,
                w.Price[t], w.PeakWeight[t], w.RestartWearUsd, hours).ValueUsd;
        }
        return total;
    }
}
