namespace ComputeGrid.Energy.Optimization;

/// <summary>How <see cref="PerfectForesightOptimizer"/> (and <see cref="DayAheadPlanner"/>) solve the site model.</summary>
public sealed record OptimizerOptions
{
    /// <summary>
    /// The solver: <c>auto</c> (the fastest exact one measured on the site model: GLOP's dual simplex for the linear
    /// program — a year of 15-minute intervals × 2 groups in about 1 s on 2 cores, a day in about 0.5 ms — and
    /// HiGHS's branch and bound for integer schedules), or one of <c>glop</c>, <c>highs</c>, <c>clp</c> (exact
    /// simplex methods; all three reach the same optimum), <c>pdlp</c> (first-order, approximate: its schedule may
    /// miss the optimum and the limits by the solver's tolerances), <c>scip</c>, <c>cbc</c> (integer schedules).
    /// Case-insensitive.
    /// </summary>
    public string Solver { get; init; } = "auto";

    /// <summary>Wall-clock limit of each solver run (seconds). An LP that hits it is an error; an integer solve that hits it returns its best schedule with <see cref="OptimizerResult.Optimal"/> false.</summary>
    public double TimeLimitSeconds { get; init; } = 60;

    /// <summary>
    /// True (the default): the linear relaxation, miner counts continuous (fractional miners), starts
    /// <c>s ≥ r − r₋₁</c>, <c>s ≥ 0</c> — an upper bound on every integer schedule, solved in seconds for a year.
    /// False: running counts are integers (a mixed-integer program; starts are then whole miners too), for small
    /// horizons only — the exact integer optimum, against which the relaxation's gap can be measured.
    /// </summary>
    public bool RelaxStarts { get; init; } = true;

    /// <summary>
    /// Integer solves only: the relative gap between the schedule and the proved bound at which branch and bound
    /// may stop (null: the solver's default, 1e-4 for HiGHS). <see cref="IntegerBound"/> sets it near zero: its
    /// windows' bounds are summed, and the integer gain it measures is far below 1e-4 of a window's value.
    /// </summary>
    internal double? MipRelativeGap { get; init; }
}
