namespace ComputeGrid.Energy.Optimization;

/// <summary>The perfect-foresight optimum of a site over its horizon.</summary>
public sealed class OptimizerResult
{
    /// <summary>
    /// The value (USD) of <see cref="Running"/> under the site's economics — exactly the
    /// <see cref="Dispatch.SiteAccumulator"/> formulas, in unrounded doubles (the accumulator rounds each interval to
    /// the micro-dollar). AI revenue included.
    /// </summary>
    public required double ObjectiveUsd { get; init; }

    /// <summary>
    /// An upper bound (USD) on the value of every schedule that respects the limits (the relaxation's optimum, or an
    /// integer solve's proved bound). Equal to <see cref="ObjectiveUsd"/> (to the solver's tolerance) except when a
    /// finite ramp-down limit meets a rise of AI load that the interconnect forces miners to follow faster than the
    /// ramp allows: that exemption is not convex, so the first solve relaxes it (its convex hull) and, when the
    /// relaxed schedule used it illegally, a second solve fixes each such interval to one of its two legal regimes.
    /// A controller's value is never above this bound. For an integer solve (<see cref="OptimizerOptions.RelaxStarts"/>
    /// false) it bounds integer schedules only, and is proved only when <see cref="Optimal"/> is true.
    /// </summary>
    public required double UpperBoundUsd { get; init; }

    /// <summary>Miners running, <c>Running[group][interval]</c>: fractional counts for the relaxation, whole numbers otherwise.</summary>
    public required double[][] Running { get; init; }

    /// <summary>Wall time spent in the solver (all passes).</summary>
    public required TimeSpan SolveTime { get; init; }

    /// <summary>Wall time spent building the model (before the first solve).</summary>
    public required TimeSpan BuildTime { get; init; }

    /// <summary>The solver that ran (lower case, e.g. <c>highs</c>).</summary>
    public required string Solver { get; init; }

    /// <summary>Variables in the model.</summary>
    public required int Variables { get; init; }

    /// <summary>Constraints (rows) in the model; bounds on single variables are not counted.</summary>
    public required int Constraints { get; init; }

    /// <summary>Solver runs: 1, or 2 (3 at most) when the ramp-down exemption had to be resolved (see <see cref="UpperBoundUsd"/>); 0 for a site without miners.</summary>
    public required int Passes { get; init; }

    /// <summary>False only when an integer solve stopped at its time limit with a feasible, possibly suboptimal, schedule.</summary>
    public required bool Optimal { get; init; }
}

/// <summary>The solver could not produce a schedule: the model is infeasible or unbounded, the solver failed or ran out of time.</summary>
public sealed class OptimizerException : Exception
{
    /// <summary>Creates the exception with its message.</summary>
    public OptimizerException(string message) : base(message) { }
}
