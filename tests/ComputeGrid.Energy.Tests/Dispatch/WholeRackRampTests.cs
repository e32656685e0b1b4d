using ComputeGrid.Energy.Dispatch;
using ComputeGrid.Energy.Sites;

namespace ComputeGrid.Energy.Tests.Dispatch;

/// <summary>
/// A live site runs whole racks: each decision is floored to racks before it becomes the next interval's state. The
/// controller must still climb to the whole fleet when every miner pays. It used to stop counting units at the first
/// partial one, so with the efficient group one rack short of its unit's edge, the next group's running unit went
/// uncounted, the plan's first step was always the same, and the fleet held half a group off "for price" for days.
/// </summary>
public class WholeRackRampTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(58)]
    [InlineData(67)]
    [InlineData(100)]
    public void From_an_idle_fleet_whole_racks_reach_what_the_interconnect_allows_within_a_few_intervals(int rack)
    {
        // The reference site's first January days (power at $15-35/MWh, every miner far above breakeven), its GPUs
        // small enough that the whole fleet fits the interconnect.
        SiteConfig c = ReferenceSite.Config;
        c = c with
        {
            Period = new PeriodConfig { FromUtc = new DateTime(2021, 1, 1, 6, 0, 0, DateTimeKind.Utc), ToUtc = new DateTime(2021, 1, 3, 6, 0, 0, DateTimeKind.Utc) },
            Gpus = [c.Gpus[0] with { Count = 64 }],
        };
        SiteProblem p = SiteProblemBuilder.Build(c).Problem;
        p = p.Slice(0, p.Count, new int[p.Groups.Length]);
        var controller = new PredictiveController(c.Controller);
        controller.Reset(p);
        int groups = p.Groups.Length;
        int[] previous = new int[groups], next = new int[groups];
        double fleetKw = p.Groups.Sum(g => g.FleetKw);
        Assert.True(p.MinerHeadroomKw(0) > fleetKw, "the whole fleet fits beside the GPUs");
        int reachedAt = -1;
        for (int t = 0; t < p.Count; t++)
        {
            controller.Decide(new RealTimeView(p, t, previous), next);
            DispatchLimits.Enforce(p, t, previous, next);
            for (int g = 0; g < groups; g++) next[g] = next[g] / rack * rack; // whole racks, never more than decided
            double kw = 0;
            for (int g = 0; g < groups; g++) kw += next[g] * p.Groups[g].WattsEach / 1000.0;
            // Within one rack per group of the whole fleet.
            double slack = p.Groups.Sum(g => rack * g.WattsEach / 1000.0);
            if (reachedAt < 0 && kw >= fleetKw - slack - 1e-6) reachedAt = t;
            (previous, next) = (next, previous);
        }
        // 40 MW at 10 MW of ramp per interval: four steps, and a few more for the units' edges.
        Assert.InRange(reachedAt, 0, 8);
        for (int g = 0; g < groups; g++) Assert.True(previous[g] >= p.Groups[g].Count - rack, $"group {g}: {previous[g]} of {p.Groups[g].Count} run at the end");
    }
}
