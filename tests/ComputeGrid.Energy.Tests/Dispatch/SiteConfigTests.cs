using ComputeGrid.Energy.Sites;

namespace ComputeGrid.Energy.Tests.Dispatch;

public class SiteConfigTests
{
    private static string ReferenceJson => SiteExamples.Json(SiteExamples.Reference);

    [Fact]
    public void Every_example_site_is_valid_and_builds()
    {
        Assert.Contains(SiteExamples.Reference, SiteExamples.Names);
        foreach (string name in SiteExamples.ThreeMarkets)
        {
            SiteConfig c = SiteExamples.Load(name);
            BuiltSite site = SiteProblemBuilder.Build(c with { Period = null });
            Assert.True(site.Problem.Count >= 35_000, $"{name}: {site.Problem.Count} intervals");
            Assert.Equal(2, site.Problem.Groups.Length);
            Assert.True(site.Problem.Groups[0].JoulesPerTerahash < site.Problem.Groups[1].JoulesPerTerahash, "most efficient group first");
        }
    }

    [Fact]
    public void Reference_site_matches_the_issue()
    {
        BuiltSite site = SiteProblemBuilder.Build(ReferenceSite.Config);
        var p = site.Problem;
        Assert.Equal(35_040, p.Count);
        Assert.Equal(50_000, p.InterconnectKw);
        Assert.Equal(1.10, p.Pue);
        Assert.Equal(10_000, p.RampUpKwPerInterval);
        Assert.Equal("Antminer S21", p.Groups[0].Model);
        Assert.Equal(17.5, p.Groups[0].JoulesPerTerahash, 3);
        Assert.Equal("Antminer S19 XP", p.Groups[1].Model);
        Assert.Equal(21.5, p.Groups[1].JoulesPerTerahash, 1);
        Assert.InRange(p.Groups[0].FleetKw, 19_900, 20_100);
        Assert.InRange(p.Groups[1].FleetKw, 19_900, 20_100);
        Assert.InRange(22_857 * 0.7, 15_999, 16_001);
        // The 4CP hours are the hourly file's monthly maxima (June–September, HE17 CDT = 21:00 UTC).
        Assert.Equal(
            [new DateTime(2021, 6, 23, 21, 0, 0, DateTimeKind.Utc), new DateTime(2021, 7, 26, 21, 0, 0, DateTimeKind.Utc),
             new DateTime(2021, 8, 24, 21, 0, 0, DateTimeKind.Utc), new DateTime(2021, 9, 1, 21, 0, 0, DateTimeKind.Utc)],
            site.PeakHoursUtc);
        Assert.Equal(16, p.PeakChargeUsdPerKw.Count(w => w > 0));
        Assert.Equal(60.0, p.PeakChargeUsdPerKw.Sum(), 9); // 4 months × 4 intervals × 60/4/4
        // The leased AI load steps up and down over the year, and alone never exceeds the interconnect.
        Assert.True(site.LeasedGpus.Distinct().Count() > 10);
        Assert.All(p.AiItKw, kw => Assert.True(p.Pue * kw <= p.InterconnectKw));
        Assert.Contains(p.Emergency, e => e);
    }

    [Theory]
    [InlineData("\"pue\": 1.10", "\"pue\": 0.9", "pue")]
    [InlineData("\"interconnectKw\": 50000", "\"interconnectKw\": -5", "interconnectKw")]
    [InlineData("\"interconnectKw\": 50000", "\"interconnectKw\": 10000", "gpus")] // the AI load alone exceeds the limit
    [InlineData("\"count\": 5714", "\"count\": 0", "miners[0].count")]
    [InlineData("\"timeZone\": \"US-Central\"", "\"timeZone\": \"Mars\"", "timeZone")]
    [InlineData("\"format\": \"eia-15min\"", "\"format\": \"xlsx\"", "prices.format")]
    [InlineData("\"months\": [6, 7, 8, 9]", "\"months\": [6, 13]", "peakCharge.months")]
    [InlineData("\"pue\": 1.10", "\"pue\": 1.10, \"colour\": \"red\"", "colour")]
    [InlineData("\"pue\": 1.10", "\"pue\": \"high\"", "pue")]
    [InlineData("\"revenuePerGpuHourUsd\": 2.00", "\"revenuePerGpuHourUsd\": 2.0000001", "gpus[0].revenuePerGpuHourUsd")]
    [InlineData("\"kind\": \"seeded-leases\"", "\"kind\": \"sometimes\"", "gpus[0].demand.kind")]
    [InlineData("\"upKwPerInterval\": 10000", "\"upKwPerInterval\": 0", "ramp.upKwPerInterval")]
    [InlineData("\"format\": \"eia-15min\"", "\"format\": \"eia-15min\", \"publishedMinutesBeforeStart\": -1", "prices.publishedMinutesBeforeStart")]
    [InlineData("\"pue\": 1.10", "\"pue\": 1.10, \"controller\": { \"peakHourPriorExponent\": 11 }", "controller.peakHourPriorExponent")]
    [InlineData("\"pue\": 1.10", "\"pue\": 1.10, \"controller\": { \"horizonHours\": 0 }", "controller.horizonHours")]
    [InlineData("\"pue\": 1.10", "\"pue\": 1.10, \"controller\": { \"peakMinRelativeError\": 0 }", "controller.peakMinRelativeError")]
    [InlineData("\"pue\": 1.10", "\"pue\": 1.10, \"nodes\": [{ \"id\": \"\", \"gpus\": 8, \"wattsPerGpu\": 700, \"joulesPer1kTokens\": 50 }]", "nodes[0].id")]
    [InlineData("\"pue\": 1.10", "\"pue\": 1.10, \"nodes\": [{ \"id\": \"a\", \"gpus\": 8, \"wattsPerGpu\": 700, \"joulesPer1kTokens\": 50 }, { \"id\": \"a\", \"gpus\": 8, \"wattsPerGpu\": 700, \"joulesPer1kTokens\": 50 }]", "nodes[1].id")]
    [InlineData("\"pue\": 1.10", "\"pue\": 1.10, \"nodes\": [{ \"id\": \"a\", \"gpus\": 0, \"wattsPerGpu\": 700, \"joulesPer1kTokens\": 50 }]", "nodes[0].gpus")]
    [InlineData("\"pue\": 1.10", "\"pue\": 1.10, \"nodes\": [{ \"id\": \"a\", \"gpus\": 65537, \"wattsPerGpu\": 1, \"joulesPer1kTokens\": 50 }]", "nodes[0].gpus")] // past GpusMax, however little it draws
    [InlineData("\"interconnectKw\": 50000", "\"interconnectKw\": 20000, \"nodes\": [{ \"id\": \"hall\", \"gpus\": 32768, \"wattsPerGpu\": 700, \"joulesPer1kTokens\": 50 }]", "gpus")] // the GPU schedule fits (17.6 MW), one hall of 32,768 H100s (25.2 MW) does not
    [InlineData("\"pue\": 1.10", "\"pue\": 1.10, \"nodes\": [{ \"id\": \"a\", \"gpus\": 8, \"wattsPerGpu\": 0, \"joulesPer1kTokens\": 50 }]", "nodes[0].wattsPerGpu")]
    [InlineData("\"pue\": 1.10", "\"pue\": 1.10, \"nodes\": [{ \"id\": \"a\", \"gpus\": 8, \"inferenceGpus\": 0, \"wattsPerGpu\": 700, \"joulesPer1kTokens\": 50 }]", "nodes[0].inferenceGpus")]
    [InlineData("\"pue\": 1.10", "\"pue\": 1.10, \"nodes\": [{ \"id\": \"a\", \"gpus\": 8, \"inferenceGpus\": 9, \"wattsPerGpu\": 700, \"joulesPer1kTokens\": 50 }]", "nodes[0].inferenceGpus")] // more than the node has
    [InlineData("\"pue\": 1.10", "\"pue\": 1.10, \"nodes\": [{ \"id\": \"a\", \"gpus\": 8, \"wattsPerGpu\": 700, \"joulesPer1kTokens\": -1 }]", "nodes[0].joulesPer1kTokens")]
    [InlineData("\"pue\": 1.10", "\"pue\": 1.10, \"nodes\": [{ \"id\": \"a\", \"gpus\": 8, \"wattsPerGpu\": 700 }]", "nodes[0]")] // joulesPer1kTokens is required
    [InlineData("\"interconnectKw\": 50000", "\"interconnectKw\": 20000, \"nodes\": [{ \"id\": \"big-0\", \"gpus\": 1024, \"wattsPerGpu\": 5000, \"joulesPer1kTokens\": 50 }, { \"id\": \"big-1\", \"gpus\": 1024, \"wattsPerGpu\": 5000, \"joulesPer1kTokens\": 50 }, { \"id\": \"big-2\", \"gpus\": 1024, \"wattsPerGpu\": 5000, \"joulesPer1kTokens\": 50 }, { \"id\": \"big-3\", \"gpus\": 1024, \"wattsPerGpu\": 5000, \"joulesPer1kTokens\": 50 }]", "gpus")] // the GPU schedule fits (17.6 MW), the nodes (22.5 MW) do not
    public void Invalid_configuration_names_the_field(string find, string replace, string field)
    {
        string json = ReferenceJson;
        Assert.Contains(find, json);
        var e = Assert.Throws<SiteConfigException>(() => SiteConfigLoader.Parse(json.Replace(find, replace)));
        Assert.StartsWith(field, e.Field);
        Assert.Contains(field, e.Message);
    }

    [Fact]
    public void A_site_may_list_its_nodes_and_still_builds_its_gpu_schedule_for_backtests()
    {
        string json = ReferenceJson.Replace("\"pue\": 1.10", "\"pue\": 1.10, \"nodes\": [{ \"id\": \"dal-1\", \"gpus\": 8, \"wattsPerGpu\": 700, \"joulesPer1kTokens\": 50 }]");
        SiteConfig c = SiteConfigLoader.Parse(json);
        SiteNodeConfig node = Assert.Single(c.Nodes);
        Assert.Equal(("dal-1", 8, 700.0, 50.0), (node.Id, node.Gpus, node.WattsPerGpu, node.JoulesPer1kTokens));
        Assert.Empty(SiteConfigLoader.Parse(ReferenceJson).Nodes);
    }

    [Fact]
    public void A_node_of_a_GPU_hall_within_the_interconnect_is_valid()
    {
        // 16,384 H100s at 700 W with PUE 1.1: 12.6 MW of the reference site's 50 MW.
        string json = ReferenceJson.Replace("\"pue\": 1.10", "\"pue\": 1.10, \"nodes\": [{ \"id\": \"dal-1\", \"gpus\": 16384, \"wattsPerGpu\": 700, \"joulesPer1kTokens\": 50 }]");
        Assert.Equal(16_384, Assert.Single(SiteConfigLoader.Parse(json).Nodes).Gpus);
    }

    [Fact]
    public void A_node_may_name_its_inference_pool_and_without_one_all_its_GPUs_serve()
    {
        string json = ReferenceJson.Replace("\"pue\": 1.10", "\"pue\": 1.10, \"nodes\": [{ \"id\": \"dal-1\", \"gpus\": 16384, \"inferenceGpus\": 1024, \"wattsPerGpu\": 700, \"joulesPer1kTokens\": 50 }, { \"id\": \"dal-2\", \"gpus\": 8, \"wattsPerGpu\": 700, \"joulesPer1kTokens\": 50 }]");
        var nodes = SiteConfigLoader.Parse(json).Nodes;
        Assert.Equal(1_024, nodes[0].InferenceGpus);
        Assert.Null(nodes[1].InferenceGpus);
    }

    [Fact]
    public void Unknown_miner_model_and_missing_file_name_the_field()
    {
        SiteConfig c = ReferenceSite.Config;
        var e = Assert.Throws<SiteConfigException>(() => SiteProblemBuilder.Build(c with { Miners = [new MinerFleetConfig { Model = "Antminer Z99", Count = 3 }] }));
        Assert.Equal("miners[0].model", e.Field);
        e = Assert.Throws<SiteConfigException>(() => SiteProblemBuilder.Build(c with { Prices = c.Prices with { File = "no_such_prices.csv" } }));
        Assert.Equal("prices.file", e.Field);
        e = Assert.Throws<SiteConfigException>(() => SiteProblemBuilder.Build(c with { Prices = c.Prices with { Column = "Moon LMP" } }));
        Assert.Equal("prices", e.Field);
    }

    [Fact]
    public void An_empty_period_is_rejected()
    {
        SiteConfig c = ReferenceSite.Config;
        var from = new DateTime(2021, 3, 1, 0, 0, 0, DateTimeKind.Utc);
        var e = Assert.Throws<SiteConfigException>(() => SiteConfigLoader.Validate(c with { Period = new PeriodConfig { FromUtc = from, ToUtc = from } }));
        Assert.Equal("period.toUtc", e.Field);
        // A period outside the data: no price intervals.
        e = Assert.Throws<SiteConfigException>(() => SiteProblemBuilder.Build(c with { Period = new PeriodConfig { FromUtc = from.AddYears(3), ToUtc = from.AddYears(3).AddDays(7) } }));
        Assert.Contains("prices", e.Field + e.Message);
    }

    [Fact]
    public void A_malformed_price_row_is_reported_with_its_line()
    {
        string dir = Directory.CreateTempSubdirectory("cg-site-").FullName;
        try
        {
            string[] lines = File.ReadAllLines(Core.DataFiles.Find("ercot_rt_lmp_hubs_15min_2021.csv")).Take(200).ToArray();
            string[] cells = lines[150].Split(',');
            cells[^1] = "twelve";
            lines[150] = string.Join(',', cells);
            File.WriteAllLines(Path.Combine(dir, "prices.csv"), lines);
            SiteConfig c = ReferenceSite.Config;
            c = c with { Prices = c.Prices with { File = Path.Combine(dir, "prices.csv") }, Period = null };
            var e = Assert.Throws<SiteConfigException>(() => SiteProblemBuilder.Build(c, dir));
            Assert.Equal("prices", e.Field);
            Assert.Contains("line", e.Message);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }
}
