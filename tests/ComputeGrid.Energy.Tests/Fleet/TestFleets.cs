using ComputeGrid.Energy.Dispatch;
using ComputeGrid.Energy.Tests.Optimization;
using ComputeGrid.Inference.Routing;
using ComputeGrid.Simulation.Fleet;

namespace ComputeGrid.Energy.Tests.Fleet;

/// <summary>Small seeded fleets for the fleet tests: three regions, a site in each, tight and loose customers everywhere.</summary>
internal static class TestFleets
{
    /// <summary>Regions a, b, c: a–b 40 ms, a–c 120 ms, b–c 90 ms.</summary>
    public static LatencyMatrix Matrix { get; } = LatencyMatrix.FromValues(["a", "b", "c"], new double[,] { { 0, 40, 120 }, { 40, 0, 90 }, { 120, 90, 0 } });

    /// <summary>
    /// Three random sites (<see cref="TestSites.Random"/>, firm AI load halved so flexible units fit), one per region, two
    /// nodes of five 10-kW units each; per region a tight class (50 ms: a and b reach each other, c only itself) and a
    /// loose one (200 ms: every site); 0–7 units per class and interval.
    /// </summary>
    public static FleetScenario Random(int n, int seed, bool emergencies = false)
    {
        var rng = new Random(seed);
        var sites = new FleetSite[3];
        for (int s = 0; s < 3; s++)
        {
            SiteProblem p = TestSites.Random(n, seed * 7 + s, rampDownKw: double.PositiveInfinity, emergencies: emergencies, peakCharge: s == 0);
            double[] firm = p.AiItKw.Select(kw => kw / 2).ToArray();
            double[] revenue = p.AiRevenueUsd.Select(usd => usd / 2).ToArray();
            sites[s] = new FleetSite(FleetAccounting.WithAiLoad(p, firm, revenue), s, [5, 5], null);
        }
        var classes = new List<DemandClass>();
        var demand = new List<int[]>();
        for (int r = 0; r < 3; r++)
            foreach (int bound in new[] { 50, 200 })
            {
                classes.Add(new DemandClass(r, bound));
                demand.Add(Enumerable.Range(0, n).Select(_ => rng.Next(8)).ToArray());
            }
        return new FleetScenario
        {
            Sites = sites, Classes = [.. classes], Demand = [.. demand], Matrix = Matrix, GpusPerUnit = 8,
            UnitItKw = 10, UnitRevenueUsd = 0.05 + 0.2 * rng.NextDouble(), Seed = seed,
        };
    }

    /// <summary>
    /// A fleet small enough to enumerate: two sites (regions a and c) of one group of <paramref name="miners"/> 40-kW
    /// miners each, beside 20 kW of firm load, an interconnect of 110 kW at PUE 1; one loose class (both sites) and one
    /// tight class of region c (site c only), 0–2 units of 30 kW each per interval, each site's nodes holding 2 units.
    /// </summary>
    public static FleetScenario Tiny(int n, int seed, int miners = 2)
    {
        var rng = new Random(seed);
        var sites = new FleetSite[2];
        for (int s = 0; s < 2; s++)
        {
            double[] price = Enumerable.Range(0, n).Select(_ => Math.Round(-20 + 200 * rng.NextDouble(), 2)).ToArray();
            double[] ai = Enumerable.Repeat(20.0, n).ToArray();
            double[]? peak = s == 0 ? Enumerable.Range(0, n).Select(t => t == n - 1 ? 1.5 : 0).ToArray() : null;
            SiteProblem p = TestSites.OneGroup(price, ai, miners, 40_000, 1_000 + 2_000 * rng.NextDouble(), 0.05 + 0.1 * rng.NextDouble(),
                interconnectKw: 110, rampUpKw: 40, rampDownKw: double.PositiveInfinity, initial: rng.Next(miners + 1),
                restartMinutes: 5, wearUsd: 0.3, peak: peak);
            double[] revenue = ai.Select(kw => kw * 0.01).ToArray();
            sites[s] = new FleetSite(FleetAccounting.WithAiLoad(p, ai, revenue), s == 0 ? 0 : 2, [1, 1], null);
        }
        DemandClass[] classes = [new(0, 200), new(2, 50)];
        int[][] demand = [.. classes.Select(_ => Enumerable.Range(0, n).Select(_ => rng.Next(3)).ToArray())];
        return new FleetScenario
        {
            Sites = sites, Classes = classes, Demand = demand, Matrix = Matrix, GpusPerUnit = 8, UnitItKw = 30,
            UnitRevenueUsd = 0.5 + rng.NextDouble(), Seed = seed,
        };
    }

    /// <summary>The accounting rounds five amounts per site-interval to the micro-dollar: the most two valuations of one
    /// schedule, or a bound and a value, can differ by (micro-USD).</summary>
    public static long Rounding(FleetScenario f) => 5L * f.Count * f.Sites.Length;
}
