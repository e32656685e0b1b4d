using ComputeGrid.Simulation.Fleet;

namespace ComputeGrid.Energy.Tests.Fleet;

/// <summary>
/// The fleet LP is the upper bound the fleet benchmark scores against: it must be at least every real-time policy's
/// value on the same fleet, its integer form must equal the best dispatch found by enumeration (so its model is the
/// accounting's), and no policy may break a latency bound, a node's capacity or the interconnect.
/// </summary>
public sealed class FleetLpTests
{
    private static readonly FleetPolicy[] Policies =
    [
        FleetPolicy.LatencyOnly,
        FleetPolicy.PowerAware,
        FleetPolicy.LatencyOnly with { Name = "latency+controller", Controller = true },
        FleetPolicy.PowerAware with { Name = "power(price only)", CountDisplacedMining = false },
        FleetPolicy.PowerAware with { Name = "power, no reserve", Reserve = false },
    ];

    [Theory]
    [InlineData(1, false)]
    [InlineData(2, true)]
    [InlineData(3, false)]
    [InlineData(4, true)]
    public void The_LP_is_at_least_every_real_time_policy_on_random_small_fleets(int seed, bool emergencies)
    {
        FleetScenario fleet = TestFleets.Random(192, seed, emergencies);
        FleetLpResult lp = FleetLp.Solve(fleet);
        FleetValue optimum = FleetAccounting.Evaluate(fleet, lp.Dispatch);
        long bound = (long)Math.Ceiling(lp.ObjectiveUsd * 1e6) + TestFleets.Rounding(fleet);
        // The LP's schedule, valued by the one accounting, is its objective (to the rounding), within every limit it models.
        Assert.InRange(optimum.ValueMicroUsd, bound - 2 * TestFleets.Rounding(fleet), bound);
        Assert.Equal(0, optimum.LatencyBoundViolations);
        Assert.Equal(0, optimum.CapacityViolations);
        Assert.Equal(0, optimum.InterconnectViolations);
        foreach (FleetPolicy policy in Policies)
        {
            FleetRun run = FleetSimulator.Run(fleet, policy);
            FleetValue value = FleetAccounting.Evaluate(fleet, run.Dispatch);
            Assert.True(value.ValueMicroUsd <= bound, $"seed {seed}: {policy.Name} {value.ValueMicroUsd} above the LP's bound {bound}");
            Assert.True(value.WithinLimits, $"seed {seed}: {policy.Name} broke a limit: {value}");
            Assert.Equal(run.Decisions, fleet.Demand.Sum(row => (long)row.Sum()));
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    [InlineData(5)]
    [InlineData(6)]
    [InlineData(7)]
    [InlineData(8)]
    public void The_integer_model_equals_the_enumerated_optimum_and_the_LP_bounds_it(int seed)
    {
        FleetScenario fleet = TestFleets.Tiny(2, seed);
        (long best, int feasible) = Enumerate(fleet);
        Assert.True(feasible > 0);
        FleetLpResult integer = FleetLp.Solve(fleet, integer: true);
        FleetValue exact = FleetAccounting.Evaluate(fleet, integer.Dispatch);
        Assert.True(exact.WithinLimits, exact.ToString());
        Assert.InRange(exact.ValueMicroUsd, best - TestFleets.Rounding(fleet), best + TestFleets.Rounding(fleet));
        Assert.InRange(integer.ObjectiveUsd * 1e6, best - TestFleets.Rounding(fleet), best + TestFleets.Rounding(fleet));
        FleetLpResult lp = FleetLp.Solve(fleet);
        Assert.True(lp.ObjectiveUsd * 1e6 >= best - TestFleets.Rounding(fleet), $"LP {lp.ObjectiveUsd} below the integer optimum {best / 1e6}");
    }

    // Every whole dispatch of the tiny fleet (miners per site, each class's units split over its sites), valued by the
    // accounting; the best one within every limit.
    private static (long Best, int Feasible) Enumerate(FleetScenario fleet)
    {
        var dispatch = new FleetDispatch(fleet, "enumerated");
        long best = long.MinValue;
        int feasible = 0;
        int n = fleet.Count, sites = fleet.Sites.Length, classes = fleet.Classes.Length;
        // One slot per decision: (site, t) miner counts, then (class, site, t) units.
        var slots = new List<(int Site, int Class, int T)>();
        for (int t = 0; t < n; t++)
        {
            for (int s = 0; s < sites; s++) slots.Add((s, -1, t));
            for (int c = 0; c < classes; c++)
                for (int s = 0; s < sites; s++)
                    if (fleet.Eligible(c, s)) slots.Add((s, c, t));
        }
        void Recurse(int i)
        {
            if (i == slots.Count)
            {
                FleetValue v = FleetAccounting.Evaluate(fleet, dispatch);
                if (!v.WithinLimits) return;
                feasible++;
                best = Math.Max(best, v.ValueMicroUsd);
                return;
            }
            var (s, c, t) = slots[i];
            int max = c < 0 ? fleet.Sites[s].Problem.Groups[0].Count : fleet.Demand[c][t];
            for (int k = 0; k <= max; k++)
            {
                if (c < 0) dispatch.Running[s][0][t] = k;
                else dispatch.Served[s][c][t] = k;
                Recurse(i + 1);
            }
            if (c < 0) dispatch.Running[s][0][t] = 0;
            else dispatch.Served[s][c][t] = 0;
        }
        Recurse(0);
        return (best, feasible);
    }
}
