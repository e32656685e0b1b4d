using ComputeGrid.Cli.Demo;
using ComputeGrid.Energy.Sites;

namespace ComputeGrid.Server.Tests.Demo;

/// <summary>
/// The demo's cast is sized so that a site's leased GPUs are a visible share of its power: the site nodes fit their
/// interconnect (the site-file validation), draw a good part of it at full lease, and the compute orders are hundreds to
/// thousands of GPUs that the buyers' funding can pay for.
/// </summary>
public sealed class DemoWorldTests
{
    private static IEnumerable<DemoNode> SiteNodes => DemoWorld.Nodes.Where(n => n.Site is not null);

    [Fact]
    public void Every_demo_site_passes_the_site_file_validation_with_its_nodes_and_they_can_draw_a_tenth_of_its_interconnect()
    {
        IReadOnlyList<SiteConfig> sites = DemoWorld.Sites();
        Assert.Equal(3, sites.Count);
        foreach (SiteConfig site in sites)
        {
            SiteConfigLoader.Validate(site); // throws when the nodes at full power exceed the interconnect
            SiteNodeConfig node = Assert.Single(site.Nodes);
            Assert.InRange(node.Gpus, 8_192, 16_384);
            double fullKw = site.Pue * node.Gpus * node.WattsPerGpu / 1000.0;
            Assert.True(fullKw >= site.InterconnectKw / 10, $"{site.Name}: {node.Id} at full lease draws {fullKw:0} kW of {site.InterconnectKw:0} kW");
        }
    }

    [Fact]
    public void A_site_node_is_asked_and_lifted_in_hundreds_to_thousands_of_GPUs()
    {
        DemoNode dal = DemoWorld.Nodes.Single(n => n.Id == "dal-1");
        Assert.Equal(512, DemoWorld.OrderGpus(dal, DemoStepKind.ComputeAsk, 1, daily: false));
        Assert.Equal(4_096, DemoWorld.OrderGpus(dal, DemoStepKind.ComputeAsk, 8, daily: false));
        Assert.Equal(256, DemoWorld.OrderGpus(dal, DemoStepKind.ComputeLift, 1, daily: false));
        Assert.Equal(2_048, DemoWorld.OrderGpus(dal, DemoStepKind.ComputeLift, 8, daily: false));
        Assert.Equal(256, DemoWorld.OrderGpus(dal, DemoStepKind.ComputeLift, 8, daily: true)); // an eighth on a daily forward
        Assert.Equal(512, DemoWorld.OrderGpus(dal, DemoStepKind.ComputeBid, 1, daily: false));
        foreach (DemoNode node in SiteNodes)
            for (int size = 1; size <= 8; size++)
                Assert.InRange(DemoWorld.OrderGpus(node, DemoStepKind.ComputeLift, size, daily: false), 128, 2_048);
    }

    [Fact]
    public void Every_compute_order_names_at_least_one_GPU_and_never_more_than_its_node_has()
    {
        foreach (DemoNode node in DemoWorld.Nodes)
            foreach (DemoStepKind kind in new[] { DemoStepKind.ComputeAsk, DemoStepKind.ComputeBid, DemoStepKind.ComputeLift })
                for (int size = 1; size <= 8; size++)
                    foreach (bool daily in new[] { false, true })
                        Assert.InRange(DemoWorld.OrderGpus(node, kind, size, daily), 1, node.Gpus);
        Assert.Throws<ArgumentOutOfRangeException>(() => DemoWorld.OrderGpus(DemoWorld.Nodes[0], DemoStepKind.Claim, 1, daily: false));
        Assert.Throws<ArgumentOutOfRangeException>(() => DemoWorld.OrderGpus(DemoWorld.Nodes[0], DemoStepKind.ComputeAsk, 9, daily: false));
    }

    [Fact]
    public void Half_the_hourly_compute_steps_take_the_nearest_hour_and_none_goes_past_what_trades()
    {
        int[] counts = new int[3];
        for (int pick = 0; pick < 1 << 12; pick++) counts[DemoWorld.HourlyIndex(pick, 3)]++;
        Assert.Equal([2_048, 1_024, 1_024], counts);
        for (int pick = 0; pick < 256; pick++) Assert.Equal(0, DemoWorld.HourlyIndex(pick, 1));
    }

    [Fact]
    public void A_buyer_at_its_top_up_level_can_still_hold_the_largest_lift_many_times_over()
    {
        // The largest lift: the biggest site node's eight units on a daily forward (24 hours) or an hourly instrument,
        // at the driver's lift limit (2.3 USD per GPU-hour, the most any demo order pays).
        const long LiftPrice = 2_300_000;
        long largest = DemoWorld.Nodes.Max(n => Math.Max(DemoWorld.OrderGpus(n, DemoStepKind.ComputeLift, 8, daily: false),
            24L * DemoWorld.OrderGpus(n, DemoStepKind.ComputeLift, 8, daily: true)));
        Assert.True(DemoWorld.TraderFunding / 5 >= 10 * checked(largest * LiftPrice), $"a lift of {largest} GPU-hours");
    }

    [Fact]
    public void The_provider_offers_a_seeded_share_of_a_regions_GPUs_that_moves_from_hour_to_hour()
    {
        Assert.Equal(16_384 + 12_288, DemoWorld.RegionGpus("dallas"));
        Assert.Equal(0, DemoWorld.RegionGpus("mars"));
        var midnight = new DateTimeOffset(2026, 12, 7, 0, 0, 0, TimeSpan.Zero);
        double[] day = [.. Enumerable.Range(0, 48).Select(h => DemoWorld.OfferedShare(1, "dallas", midnight.AddHours(h)))];
        Assert.All(day, x => Assert.InRange(x, 0.35, 0.95));
        Assert.True(day.Max() - day.Min() > 0.3, $"shares {day.Min():F2} … {day.Max():F2}");
        Assert.True(day.Distinct().Count() == day.Length); // every hour its own
        // The same seed, region and hour give the same share (a restart offers the same hours); another seed or region does not.
        Assert.Equal(day[5], DemoWorld.OfferedShare(1, "dallas", midnight.AddHours(5)));
        Assert.NotEqual(day[5], DemoWorld.OfferedShare(2, "dallas", midnight.AddHours(5)));
        Assert.NotEqual(day[5], DemoWorld.OfferedShare(1, "tokyo", midnight.AddHours(5)));
        // Within the hour, the share is the hour's.
        Assert.Equal(day[5], DemoWorld.OfferedShare(1, "dallas", midnight.AddHours(5).AddMinutes(59)));
    }
}
