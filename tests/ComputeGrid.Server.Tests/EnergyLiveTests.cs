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
                int hashing = state.GetProperty("groups").EnumerateArray().Sum(g => g.GetProperty("racksHashing").GetInt32());
                if (state.GetProperty("interval").GetInt32() > 0 && hashing > 0 && state.GetProperty("measuredHashrateThs").GetDouble() > 0) break;
                await Task.Delay(200);
            }
            Assert.True(state.GetProperty("groups").EnumerateArray().Sum(g => g.GetProperty("racksHashing").GetInt32()) > 0, state.ToString());
            Assert.True(state.GetProperty("facilityKw").GetDouble() <= state.GetProperty("interconnectKw").GetDouble());
            Assert.True(state.GetProperty("leasedGpus").GetInt32() > 0);
            Assert.True(state.GetProperty("economics").GetProperty("aiRevenueMicroUsd").GetInt64() > 0);
            Assert.True(state.GetProperty("commandsSent").GetInt64() > 0);
            Assert.Equal(2, state.GetProperty("groups").GetArrayLength());

            var list = JsonDocument.Parse(await client.GetStringAsync("/api/energy/sites")).RootElement;
            Assert.Equal(1, list.GetArrayLength());
            var miners = JsonDocument.Parse(await client.GetStringAsync("/api/energy/sites/ercot-west-reference/miners")).RootElement;
            Assert.Equal(16, miners.GetArrayLength());
            Assert.Contains(miners.EnumerateArray(), m => m.GetProperty("state").GetString() == "Hashing");

            var missing = await client.GetAsync("/api/energy/sites/atlantis");
            Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
            Assert.Equal("application/problem+json", missing.Content.Headers.ContentType?.MediaType);
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
