using System.Text.Json;
using ComputeGrid.Energy.Sites;
using ComputeGrid.Exchange.Pipeline;
using ComputeGrid.Inference.Routing;
using ComputeGrid.Server.Energy;
using ComputeGrid.Server.Inference;
using ComputeGrid.Server.Trust;
using ComputeGrid.Simulation;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;

namespace ComputeGrid.Server.Tests;

/// <summary>
/// A site that lists its nodes: its firm GPU load is their measured load — a lease the exchange delivers on a node counts
/// while it is delivered, and only then — and its controller curtails miners against that load.
/// </summary>
public sealed class SiteNodeLoadTests
{
    [Fact]
    public async Task A_lease_in_delivery_on_a_listed_node_is_the_sites_firm_load_and_the_miners_give_way_to_it()
    {
        string dir = TestServer.TempDir("site-node-load");
        var (app, op) = await TestServer.StartInProcessAsync(dir);
        try
        {
            // A provider's node of 8 H100s in Dallas, listed on the exchange; a buyer takes 3 GPUs of an hour two hours ahead.
            ExchangeSeed seed = await TestServer.SeedExchangeAsync(op, ("H100", "dallas"));
            const string nodeId = "dallas-H100-01";
            var page = await seed.Buyer.Http.GetJsonAsync("/api/exchange/instruments?gpu=H100&region=dallas&kind=H&limit=3");
            JsonElement instrument = page.GetProperty("instruments")[2];
            string symbol = instrument.GetProperty("symbol").GetString()!;
            await ApiTestHelpers.OkAsync(await seed.Provider.Http.PostSnakeAsync("/api/exchange/orders", new { instrument = symbol, side = "sell", price = 2_000_000, quantity = 3, time_in_force = "gtc" }));
            JsonElement buy = await ApiTestHelpers.OkAsync(await seed.Buyer.Http.PostSnakeAsync("/api/exchange/orders", new { instrument = symbol, side = "buy", price = 2_000_000, quantity = 3, time_in_force = "gtc" }));
            Assert.Equal("filled", buy.GetProperty("status").GetString());
            DateTimeOffset start = DateTimeOffset.Parse(instrument.GetProperty("delivery_start").GetString()!);
            DateTimeOffset end = DateTimeOffset.Parse(instrument.GetProperty("delivery_end").GetString()!);

            // The server's measurement of the node, on clocks set inside and outside the lease's delivery.
            ServerSiteNodes At(DateTimeOffset now) => new(app.Services.GetRequiredService<ExchangeHost>(), app.Services.GetRequiredService<TrustStore>(),
                app.Services.GetRequiredService<InferenceHost>().Gateway.Registry, new FakeTimeProvider(now));
            SiteNodeConfig node = new() { Id = nodeId, Gpus = 8, WattsPerGpu = 700, JoulesPer1kTokens = 50 };
            SiteNodeConfig stranger = new() { Id = "not-admitted", Gpus = 4, WattsPerGpu = 400, JoulesPer1kTokens = 50 };
            // A minute before its hour the lease is sold for the next hour, not delivered; within it, delivered.
            Assert.Equal([new NodeLoadSample(0, 0, true, 3, start), new NodeLoadSample(0, 0, true, 0, start)], await At(start.AddMinutes(-1)).MeasureAsync([node, stranger], CancellationToken.None));
            Assert.Equal([new NodeLoadSample(3, 0, true, 0, end), new NodeLoadSample(0, 0, true, 0, end)], await At(start.AddMinutes(30)).MeasureAsync([node, stranger], CancellationToken.None));
            Assert.Equal(new NodeLoadSample(0, 0, true, 0, end.AddHours(1)), (await At(end).MeasureAsync([node], CancellationToken.None))[0]);
            Assert.Equal(new NodeLoadSample(0, 0, true, 3, start), (await At(start.AddHours(-1)).MeasureAsync([node], CancellationToken.None))[0]);

            // A live site whose miners fill its interconnect beside that node: 998.25 kW at PUE 1.1 is 907.5 kW of IT power,
            // 260 S21s of 3.5 kW. Idle, the node leaves room for 259 miners (906.5 kW); with 3 GPUs leased (2.1 kW) for 258.
            SiteConfig reference = SiteExamples.Load(SiteExamples.Reference);
            SiteConfig config = reference with
            {
                Name = "dallas-yard", InterconnectKw = 998.25, Gpus = [], Nodes = [node, stranger],
                Miners = [new MinerFleetConfig { Model = "Antminer S21", Count = 260 }],
            };
            async Task<LiveSiteState> DecideOnceAsync(bool leased)
            {
                var replay = new FakeTimeProvider(new DateTimeOffset(2025, 1, 1, 0, 0, 0, TimeSpan.Zero));
                await using LiveSite site = LiveSite.Start(new LiveSiteOptions
                {
                    Config = config, Speed = 1, StartUtc = new DateTime(2021, 8, 24, 5, 0, 0, DateTimeKind.Utc), RacksPerGroup = 260,
                    Simulator = new MinerFleetSimulatorOptions { Seed = 3 },
                }, replay);
                site.Attach(At(leased ? start.AddMinutes(30) : start.AddMinutes(-1)));
                using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
                // The first step polls the fleet (until then no rack is known asleep, and the interconnect leaves no room for
                // racks that may be running); the second decides the next interval against what it found.
                await site.StepAsync(cts.Token);
                replay.Advance(TimeSpan.FromMinutes(15));
                await site.StepAsync(cts.Token);
                return site.State;
            }

            LiveSiteState idle = await DecideOnceAsync(leased: false);
            Assert.Equal(0, idle.LeasedGpus);
            Assert.Equal(0, idle.AiFacilityKw);
            Assert.Equal(259, idle.Groups[0].TargetMiners);
            // The lease is sold for the coming hour: the state shows it coming, and its GPUs are not load yet.
            Assert.Equal((3, (DateTime?)start.UtcDateTime, 8), (idle.Nodes[0].LeasedNextHourGpus, idle.Nodes[0].NextHourUtc, idle.Nodes[0].InferenceGpus));

            LiveSiteState busy = await DecideOnceAsync(leased: true);
            Assert.Equal(3, busy.LeasedGpus);
            Assert.Equal(2.3, busy.AiFacilityKw); // 1.1 × 3 × 0.7 kW, rounded to 0.1 kW
            Assert.Equal(258, busy.Groups[0].TargetMiners);
            Assert.True(busy.FacilityKw <= busy.InterconnectKw);
            LiveNodeLoad measured = busy.Nodes[0];
            Assert.Equal((nodeId, 8, 3, 0.0, true, 2.1), (measured.NodeId, measured.Gpus, measured.LeasedGpus, measured.Utilization, measured.Measured, measured.ItKw));
            Assert.Equal(("not-admitted", 0, 0.0), (busy.Nodes[1].NodeId, busy.Nodes[1].LeasedGpus, busy.Nodes[1].ItKw));
            // The power state the site publishes for the node: the site's interval price, 50 J × 1.1 per 1,000 tokens.
            Assert.Equal(55_000, measured.MilliJoulesPer1kTokens);
            Assert.NotNull(busy.Power);
            Assert.False(busy.Power.PeakHour);
            Assert.Equal(new NodePowerState("dallas-yard", busy.Power.PriceMicroUsdPerMwh, 55_000, 0, 0, PowerFlags.None).PowerCostNanoUsdPer1kTokens,
                measured.PowerCostNanoUsdPer1kTokens);
        }
        finally
        {
            await app.StopAsync();
            await app.DisposeAsync();
            op.Dispose();
            Directory.Delete(dir, recursive: true);
        }
    }

    // Measures fixed samples, one per node, in order.
    private sealed class FixedNodes(params NodeLoadSample[] samples) : ISiteNodes
    {
        public ValueTask<NodeLoadSample[]> MeasureAsync(IReadOnlyList<SiteNodeConfig> nodes, CancellationToken cancellationToken) => ValueTask.FromResult(samples);

        public void PublishPower(string nodeId, in NodePowerState state) { }
    }

    [Fact]
    public async Task A_request_running_takes_its_share_of_the_nodes_inference_pool_not_of_the_GPUs_it_leases_out()
    {
        // Three halls of 16,384 H100s at 700 W: one with an inference pool of 1,024 GPUs and nothing leased, one with the
        // same pool and 16,000 GPUs leased (384 left to serve), one with no pool named (all its GPUs serve).
        SiteNodeConfig Hall(string id, int? pool) => new() { Id = id, Gpus = 16_384, InferenceGpus = pool, WattsPerGpu = 700, JoulesPer1kTokens = 50 };
        SiteConfig config = SiteExamples.Load(SiteExamples.Reference) with { Name = "halls", Gpus = [], Nodes = [Hall("pool", 1_024), Hall("leased", 1_024), Hall("all", null)], InterconnectKw = 80_000 };
        var replay = new FakeTimeProvider(new DateTimeOffset(2025, 1, 1, 0, 0, 0, TimeSpan.Zero));
        await using LiveSite site = LiveSite.Start(new LiveSiteOptions
        {
            Config = config, Speed = 1, StartUtc = new DateTime(2021, 8, 24, 5, 0, 0, DateTimeKind.Utc),
            Simulator = new MinerFleetSimulatorOptions { Seed = 3 },
        }, replay);
        // One request of a node's four running (a quarter), and a full node.
        site.Attach(new FixedNodes(new NodeLoadSample(0, 0.25), new NodeLoadSample(16_000, 1.0), new NodeLoadSample(0, 0.25)));
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await site.StepAsync(cts.Token);
        LiveNodeLoad[] nodes = [.. site.State.Nodes];
        Assert.Equal(256 * 0.7, nodes[0].ItKw, 6);           // a quarter of the pool
        Assert.Equal(16_384 * 0.7, nodes[1].ItKw, 6);        // 16,000 leased + the 384 left, all serving
        Assert.Equal(4_096 * 0.7, nodes[2].ItKw, 6);         // no pool named: a quarter of the hall
        Assert.Equal([1_024, 1_024, 16_384], nodes.Select(n => n.InferenceGpus));
    }
}
