using ComputeGrid.Cli.Demo;

namespace ComputeGrid.Server.Tests.Demo;

/// <summary>
/// The demo's seeded schedule (<see cref="DemoPlan"/>): the same seed gives the same plan step for step, another seed
/// another plan, each kind keeps its own stream, and the pace follows the rates.
/// </summary>
public sealed class DemoPlanTests
{
    private static DemoStep[] First(int seed, int n, DemoRates? rates = null) => [.. DemoPlan.ForWorld(seed, rates ?? DemoRates.Default).Steps().Take(n)];

    [Fact]
    public void The_same_seed_gives_the_same_plan_step_for_step()
    {
        Assert.Equal(First(1, 2_000), First(1, 2_000));
        Assert.Equal(First(42, 500), First(42, 500));
    }

    [Fact]
    public void Another_seed_gives_another_plan()
    {
        DemoStep[] one = First(1, 200), two = First(2, 200);
        Assert.NotEqual(one, two);
        // Not merely shifted: most steps differ in their time.
        Assert.True(one.Zip(two).Count(p => p.First.At != p.Second.At) > 190);
    }

    [Fact]
    public void Steps_come_in_time_order_with_actors_and_choices_in_range()
    {
        DemoStep[] steps = First(7, 5_000);
        for (int i = 1; i < steps.Length; i++) Assert.True(steps[i].At >= steps[i - 1].At, $"step {i} is earlier than step {i - 1}");
        foreach (DemoStep s in steps)
        {
            int actors = s.Kind switch
            {
                DemoStepKind.KeyedRequest => DemoWorld.Customers.Count,
                DemoStepKind.ComputeBid or DemoStepKind.ComputeLift => DemoWorld.Buyers.Count,
                DemoStepKind.ShareBuy or DemoStepKind.Claim => DemoWorld.Holders.Count,
                _ => 1,
            };
            Assert.InRange(s.Actor, 0, actors - 1);
            Assert.InRange(s.Size, 1, 8);
            Assert.InRange(s.Offset, 0, 19);
            Assert.True(s.Pick >= 0);
        }
        Assert.Equal(Enum.GetValues<DemoStepKind>().Order(), steps.Select(s => s.Kind).Distinct().Order());
    }

    [Fact]
    public void Turning_one_kind_off_leaves_the_other_kinds_steps_unchanged()
    {
        DemoStep[] all = [.. First(3, 3_000).Where(s => s.Kind != DemoStepKind.X402Request)];
        DemoStep[] without = First(3, all.Length, DemoRates.Default with { X402Requests = 0 });
        Assert.Equal(all, without);
    }

    [Fact]
    public void Over_an_hour_each_kind_arrives_at_its_rate()
    {
        // Deterministic for the seed; the bound is 5 standard deviations of a Poisson count, so no seed is near it.
        TimeSpan hour = TimeSpan.FromHours(1);
        DemoStep[] steps = [.. DemoPlan.ForWorld(11, DemoRates.Default).Steps().TakeWhile(s => s.At < hour)];
        foreach (DemoStepKind kind in Enum.GetValues<DemoStepKind>())
        {
            double expected = DemoRates.Default.Of(kind) * hour.TotalSeconds;
            int n = steps.Count(s => s.Kind == kind);
            Assert.InRange(n, expected - 5 * Math.Sqrt(expected), expected + 5 * Math.Sqrt(expected));
        }
    }

    [Fact]
    public void A_rate_out_of_bounds_is_refused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => DemoPlan.ForWorld(1, DemoRates.Default with { Claims = -1 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => DemoPlan.ForWorld(1, DemoRates.Default with { KeyedRequests = double.NaN }));
        Assert.Throws<ArgumentOutOfRangeException>(() => DemoPlan.ForWorld(1, DemoRates.Default with { ShareBuys = DemoPlan.RateMax * 2 }));
    }

    [Fact]
    public void The_world_has_three_sites_in_three_markets_each_listing_its_nodes_and_nodes_in_six_regions()
    {
        var sites = DemoWorld.Sites();
        Assert.Equal(3, sites.Count);
        Assert.Equal(3, sites.Select(s => s.Prices.File).Distinct().Count());
        foreach (var site in sites)
        {
            Assert.NotEmpty(site.Nodes);
            Assert.NotEmpty(site.Miners);
            Assert.All(site.Nodes, n => Assert.Contains(DemoWorld.Nodes, d => d.Id == n.Id && d.Site == site.Name));
        }
        Assert.True(DemoWorld.Nodes.Select(n => n.Region).Distinct().Count() >= 6);
        Assert.Equal(DemoWorld.Nodes.Count, DemoWorld.Nodes.Select(n => n.Id).Distinct().Count());
    }
}
