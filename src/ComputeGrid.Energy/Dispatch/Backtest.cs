using System.Diagnostics;

namespace ComputeGrid.Energy.Dispatch;

/// <summary>One policy's run over a site's horizon.</summary>
public sealed class PolicyRun
{
    public required string Policy { get; init; }
    public required SiteValue Value { get; init; }

    /// <summary>Miners of each group running before the first interval of <see cref="Running"/> (null: the problem's initial state).</summary>
    public int[]? InitialRunning { get; init; }

    /// <summary>Miners running per group and interval (<c>[group][t]</c>), after the limits.</summary>
    public required int[][] Running { get; init; }

    /// <summary>
    /// Why miners were held off in each interval (<see cref="CurtailmentReason.None"/> where none were): the policy's own
    /// reason when it gives one (<see cref="IExplainsCurtailment"/>), <see cref="CurtailmentReason.Emergency"/> during a
    /// declared emergency, <see cref="CurtailmentReason.Limits"/> where the ramp limit cut a request.
    /// </summary>
    public required CurtailmentReason[] Reasons { get; init; }

    /// <summary>Wall time of the decisions alone (policy + limits), for the decision-rate figure.</summary>
    public required TimeSpan DecisionTime { get; init; }

    /// <summary>Decisions per second (intervals decided / decision time).</summary>
    public double DecisionsPerSecond => Running.Length == 0 || DecisionTime <= TimeSpan.Zero ? 0 : Running[0].Length / DecisionTime.TotalSeconds;
}

/// <summary>Runs a policy over a site problem interval by interval, applying the hard limits and the accounting.</summary>
public static class Backtest
{
    /// <summary>Runs <paramref name="policy"/> over the whole horizon of <paramref name="problem"/>.</summary>
    public static PolicyRun Run(SiteProblem problem, IDispatchPolicy policy)
    {
        int groups = problem.Groups.Length, n = problem.Count;
        var schedule = new int[groups][];
        for (int g = 0; g < groups; g++) schedule[g] = new int[n];
        int[] previous = (int[])problem.InitialRunning.Clone();
        int[] next = new int[groups];
        var reasons = new CurtailmentReason[n];
        var explains = policy as IExplainsCurtailment;
        policy.Reset(problem);
        long start = Stopwatch.GetTimestamp();
        for (int t = 0; t < n; t++)
        {
            policy.Decide(new RealTimeView(problem, t, previous), next);
            int asked = 0;
            for (int g = 0; g < groups; g++) asked += next[g];
            DispatchLimits.Enforce(problem, t, previous, next);
            int ran = 0;
            for (int g = 0; g < groups; g++) { schedule[g][t] = next[g]; ran += next[g]; }
            reasons[t] = problem.Emergency[t] ? CurtailmentReason.Emergency
                : explains?.LastReason is { } why && why != CurtailmentReason.None ? why
                : ran < asked && HeldOff(problem, t, next) ? CurtailmentReason.Limits
                : CurtailmentReason.None;
            (previous, next) = (next, previous);
        }
        TimeSpan decisionTime = Stopwatch.GetElapsedTime(start);

        var acc = new SiteAccumulator(problem);
        Span<int> r = stackalloc int[groups];
        for (int t = 0; t < n; t++)
        {
            for (int g = 0; g < groups; g++) r[g] = schedule[g][t];
            acc.Add(t, r);
        }
        return new PolicyRun { Policy = policy.Name, Value = acc.Result(), Running = schedule, Reasons = reasons, DecisionTime = decisionTime };
    }

    // Whether miners that fit beside the AI load are off (a cut by the interconnect alone is no curtailment).
    private static bool HeldOff(SiteProblem p, int t, ReadOnlySpan<int> running)
    {
        double fleetKw = 0, largest = 0;
        foreach (MinerGroup g in p.Groups) { fleetKw += g.FleetKw; largest = Math.Max(largest, g.WattsEach / 1000.0); }
        return Math.Min(fleetKw, p.MinerHeadroomKw(t)) - DispatchLimits.MinerKw(p.Groups, running) > largest + 1e-6;
    }
}
