using System.Diagnostics;
using System.Net;
using System.Text.Json;
using ComputeGrid.Energy.Sites;
using ComputeGrid.Server.Energy;
using ComputeGrid.Simulation;

namespace ComputeGrid.Server.Tests;

/// <summary>
/// Live hybrid sites in the server: the controller runs on the replayed clock and drives the simulated miners over
/// TCP; the API shows the split, prices, miner states and running economics.
/// </summary>
public class EnergyLiveTests
{
    private static LiveSiteOptions Reference(double speed, int racks) => new()
    {
        Config = SiteExamples.Load(SiteExamples.Reference),
        Speed = speed,
        // 24 August 2021: the day of the August 4CP peak.
        StartUtc = new DateTime(2021, 8, 24, 5, 0, 0, DateTimeKind.Utc),
        RacksPerGroup = racks,
        Simulator = new MinerFleetSimulatorOptions { Seed = 5 },
    };

    [Fact]
    public async Task A_live_site_drives_its_fleet_and_reports_through_the_api()
    {
        string dir = TestServer.TempDir("energy-live");
        // 1,800× replay: an interval every half second; the miners' 10-minute boot takes a third of a second.
        var (app, client) = await TestServer.StartInProcessAsync(dir, [Reference(1_800, racks: 8)]);
        try
        {
            // Before the first interval has passed nothing is known yet: the state still reads (nulls, not NaN).
            Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/api/energy/sites")).StatusCode);
            var deadline = Stopwatch.StartNew();
            JsonElement state = default;
            while (deadline.Elapsed < TimeSpan.FromSeconds(60))
            {
                var response = await client.GetAsync("/api/energy/sites/ercot-west-reference");
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
                state = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
                int hashing = state.GetProperty("groups").EnumerateArray().Sum(g => g.GetProperty("racks_hashing").GetInt32());
                if (state.GetProperty("interval").GetInt32() > 0 && hashing > 0 && state.GetProperty("measured_hashrate_ths").GetDouble() > 0) break;
                await Task.Delay(200);
            }
            Assert.True(state.GetProperty("groups").EnumerateArray().Sum(g => g.GetProperty("racks_hashing").GetInt32()) > 0, state.ToString());
            Assert.True(state.GetProperty("facility_kw").GetDouble() <= state.GetProperty("interconnect_kw").GetDouble());
            Assert.True(state.GetProperty("leased_gpus").GetInt32() > 0);
            Assert.True(state.GetProperty("economics").GetProperty("ai_revenue_micro_usd").GetInt64() > 0);
            Assert.True(state.GetProperty("commands_sent").GetInt64() > 0);
            Assert.Equal(2, state.GetProperty("groups").GetArrayLength());

            var list = JsonDocument.Parse(await client.GetStringAsync("/api/energy/sites")).RootElement;
            Assert.Equal(1, list.GetArrayLength());
            var miners = JsonDocument.Parse(await client.GetStringAsync("/api/energy/sites/ercot-west-reference/miners")).RootElement;
            Assert.Equal(16, miners.GetArrayLength());
            Assert.Contains(miners.EnumerateArray(), m => m.GetProperty("state").GetString() == "Hashing");

            var missing = await client.GetAsync("/api/energy/sites/atlantis");
            Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
            Assert.Equal("application/problem+json", missing.Content.Headers.ContentType?.MediaType);

            // The sites are for operators (the client above) and providers, with the read scope; nobody else.
            Party provider = await TestServer.NewProviderAsync(client, "site-provider");
            Party customer = await TestServer.NewCustomerAsync(client, "site-customer");
            var tradeOnly = await client.PostJsonAsync($"/api/principals/{provider.Id}/keys", new { name = "trade-only", scopes = new[] { "trade" } });
            using var providerWithoutRead = TestServer.Client(client.BaseAddress!.ToString(), tradeOnly.GetProperty("api_key").GetString());
            using var anonymous = TestServer.Client(client.BaseAddress!.ToString(), null);
            foreach (string path in new[] { "/api/energy/sites", "/api/energy/sites/ercot-west-reference", "/api/energy/sites/ercot-west-reference/miners" })
            {
                var byProvider = await provider.Http.GetAsync(path);
                Assert.Equal(HttpStatusCode.OK, byProvider.StatusCode);
                foreach (var (caller, status) in new[] { (customer.Http, HttpStatusCode.Forbidden), (providerWithoutRead, HttpStatusCode.Forbidden), (anonymous, HttpStatusCode.Unauthorized) })
                {
                    var refused = await caller.GetAsync(path);
                    Assert.Equal(status, refused.StatusCode);
                    Assert.Equal("application/problem+json", refused.Content.Headers.ContentType?.MediaType);
                }
            }
            provider.Http.Dispose();
            customer.Http.Dispose();
        }
        finally
        {
            await app.StopAsync();
            await app.DisposeAsync();
            client.Dispose();
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public async Task Miners_that_do_not_answer_count_against_the_interconnect()
    {
        // Two racks of the efficient group go silent while hashing: the controller cannot stop them, so it must keep
        // the rest of the fleet low enough that the site stays within its limit even if they still draw power.
        var site = LiveSite.Start(Reference(1_800, racks: 6), TimeProvider.System);
        try
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(90));
            var sw = Stopwatch.StartNew();
            while (site.State.Groups.Sum(g => g.RacksHashing) < 6 && sw.Elapsed < TimeSpan.FromSeconds(40))
            {
                await site.StepAsync(cts.Token);
                await Task.Delay(100);
            }
            Assert.True(site.State.Groups.Sum(g => g.RacksHashing) >= 6, "the fleet came up");
            site.Simulator.SetFault(0, MinerFault.Silent);
            site.Simulator.SetFault(1, MinerFault.Silent);
            for (int i = 0; i < 30; i++)
            {
                await site.StepAsync(cts.Token);
                LiveSiteState s = site.State;
                var p = site.Site.Problem;
                double possiblyKw = 0;
                for (int g = 0; g < s.Groups.Count; g++)
                    possiblyKw += Math.Max(s.Groups[g].RacksPossiblyRunning, s.Groups[g].TargetRacks) * s.Groups[g].MinersPerRack * p.Groups[g].WattsEach / 1000.0;
                Assert.True(p.Pue * (p.AiItKw[s.Interval] + possiblyKw) <= p.InterconnectKw + 1e-6,
                    $"step {i}: AI {p.AiItKw[s.Interval]:N0} kW + possibly running miners {possiblyKw:N0} kW exceed the limit");
                await Task.Delay(100);
            }
            Assert.True(site.State.Groups[0].RacksDown >= 2 || site.Driver.DownPerGroup[0] >= 2, "the silent racks are marked down");
        }
        finally { await site.DisposeAsync(); }
    }
}
