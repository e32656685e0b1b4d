using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json;
using ComputeGrid.Energy.Sites;
using ComputeGrid.Inference.Routing;
using ComputeGrid.Server.Energy;
using ComputeGrid.Server.Inference;
using ComputeGrid.Simulation;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;

namespace ComputeGrid.Server.Tests;

/// <summary>
/// Power-aware routing through the server: two nodes at two live sites (real site files' data, real miner fleets over
/// TCP, the real model), one site replaying ERCOT's August 2021 4CP hour. Flexible requests move off the peak site's
/// node whenever another node is within their latency bound, and are still served there when none is.
/// </summary>
public sealed class PowerRoutingServeTests
{
    // ERCOT's August 2021 system peak: 24 August, the hour from 16:00 CDT (21:00 UTC); its intervals carry the 4CP charge.
    private static readonly DateTime AugustPeakUtc = new(2021, 8, 24, 21, 0, 0, DateTimeKind.Utc);
    // The same day at midnight in Texas: no peak risk (the 4CP guard acts only 15:00–17:59 local), no emergency.
    private static readonly DateTime AugustMidnightUtc = new(2021, 8, 24, 5, 0, 0, DateTimeKind.Utc);

    private static SiteNodeConfig Node(string id) => new() { Id = id, Gpus = 8, WattsPerGpu = 700, JoulesPer1kTokens = 50 };

    /// <summary>The reference ERCOT site at 1× from <paramref name="startUtc"/>, renamed, its GPU schedule replaced by one node.</summary>
    private static LiveSiteOptions Site(string name, string nodeId, DateTime startUtc)
    {
        SiteConfig reference = SiteExamples.Load(SiteExamples.Reference);
        return new LiveSiteOptions
        {
            Config = reference with { Name = name, Gpus = [], Nodes = [Node(nodeId)] },
            Speed = 1, // real time: the replayed interval lasts 15 minutes, longer than the test
            StartUtc = startUtc,
            RacksPerGroup = 4,
            Simulator = new MinerFleetSimulatorOptions { Seed = 17 },
        };
    }

    [Fact]
    public async Task A_node_whose_site_enters_a_4CP_hour_loses_flexible_traffic_within_the_bound_and_is_still_served_when_alone_in_it()
    {
        string dir = TestServer.TempDir("power-routing");
        var inference = new InferenceServerOptions { LocalNodes = [new("dal-1", "dallas", 20, 8), new("wdc-1", "washington-dc", 20, 8)] };
        var (app, op) = await TestServer.StartInProcessAsync(dir,
            [Site("west-peak", "dal-1", AugustPeakUtc), Site("east-calm", "wdc-1", AugustMidnightUtc)], inference);
        try
        {
            NodeRegistry registry = app.Services.GetRequiredService<InferenceHost>().Gateway.Registry;
            JsonElement sites = await PublishedAsync(op, registry);
            JsonElement west = sites.EnumerateArray().Single(s => s.GetProperty("name").GetString() == "west-peak");
            JsonElement east = sites.EnumerateArray().Single(s => s.GetProperty("name").GetString() == "east-calm");
            Assert.True(west.GetProperty("power").GetProperty("peak_hour").GetBoolean(), west.ToString());
            Assert.False(east.GetProperty("power").GetProperty("peak_hour").GetBoolean(), east.ToString());
            // The peak interval's marginal price carries the 4CP charge: 60 USD/kW-year over 4 months and 4 quarter-hours is
            // 3.75 USD per kW for a quarter-hour, 15,000 USD/MWh, on top of the hub price.
            Assert.True(west.GetProperty("power").GetProperty("price_micro_usd_per_mwh").GetInt64() > 15_000_000_000L, west.ToString());
            JsonElement westNode = Assert.Single(west.GetProperty("nodes").EnumerateArray());
            Assert.Equal("dal-1", westNode.GetProperty("node_id").GetString());
            Assert.True(westNode.GetProperty("measured").GetBoolean());
            Assert.Equal(55_000, westNode.GetProperty("milli_joules_per_1k_tokens").GetInt64()); // 50 J × PUE 1.1
            // The router sees the same states.
            Assert.True(registry.TryGetNode("dal-1", out NodeSnapshot? dal) && dal.Power is { Avoid: true, Site: "west-peak" });
            Assert.True(registry.TryGetNode("wdc-1", out NodeSnapshot? wdc) && wdc.Power is { Avoid: false, Site: "east-calm" });

            Party customer = await TestServer.NewCustomerAsync(op, "power-customer", "dallas", 10_000_000);
            using var http = TestServer.Client(op.BaseAddress!.ToString(), customer.Key);
            async Task<string> ServedBy(string provider, string input)
            {
                using var content = new StringContent($$"""{"model":"all-MiniLM-L6-v2","input":"{{input}}","provider":{{provider}}}""", Encoding.UTF8, "application/json");
                HttpResponseMessage r = await http.PostAsync("/v1/embeddings", content);
                Assert.True(r.StatusCode == HttpStatusCode.OK, await r.Content.ReadAsStringAsync());
                return r.Headers.GetValues("X-CG-Node").Single();
            }

            for (int i = 0; i < 3; i++)
            {
                // A bound both nodes meet (Washington is 32 ms from Dallas): the traffic leaves the peak site, under the
                // latency sort too, which would otherwise pick the customer's own region.
                Assert.Equal("wdc-1", await ServedBy("""{"sort":"latency","max_latency_ms":1000}""", $"latency {i}"));
                Assert.Equal("wdc-1", await ServedBy("""{"sort":"power","max_latency_ms":1000}""", $"power {i}"));
                Assert.Equal("wdc-1", await ServedBy("""{"sort":"price"}""", $"price {i}"));
                // A bound only the Dallas node meets: served there, not dropped for its power.
                Assert.Equal("dal-1", await ServedBy("""{"sort":"latency","max_latency_ms":31}""", $"near {i}"));
                Assert.Equal("dal-1", await ServedBy("""{"sort":"power","max_latency_ms":31}""", $"near power {i}"));
            }

            // An unknown sort is still a 400 problem naming the values.
            using var bad = new StringContent("""{"model":"all-MiniLM-L6-v2","input":"x","provider":{"sort":"solar"}}""", Encoding.UTF8, "application/json");
            HttpResponseMessage refused = await http.PostAsync("/v1/embeddings", bad);
            Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
            Assert.Contains("power", await refused.Content.ReadAsStringAsync());
        }
        finally
        {
            await app.StopAsync();
            await app.DisposeAsync();
            op.Dispose();
            Directory.Delete(dir, recursive: true);
        }
    }

    // Waits until both nodes are healthy and both sites have published their first interval's power state.
    private static async Task<JsonElement> PublishedAsync(HttpClient op, NodeRegistry registry)
    {
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            JsonElement sites = JsonDocument.Parse(await op.GetStringAsync("/api/energy/sites")).RootElement;
            bool published = sites.EnumerateArray().All(s => s.GetProperty("power").ValueKind == JsonValueKind.Object);
            if (published && registry.Snapshot().Count(n => n.Healthy) == 2) return sites;
            Assert.True(deadline.Elapsed < TimeSpan.FromSeconds(60), "the sites never published their power state: " + sites);
            await Task.Delay(100);
        }
    }
}
