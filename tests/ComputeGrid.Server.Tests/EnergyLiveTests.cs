using System.Diagnostics;
using System.Net;
using System.Text.Json;
using ComputeGrid.Energy.Dispatch;
using ComputeGrid.Energy.Sites;
using ComputeGrid.Server.Energy;
using ComputeGrid.Simulation;
using Microsoft.Extensions.Time.Testing;

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

            // The site books each decided interval in the server's ledger; its P&L reads back from there.
            var pnl = JsonDocument.Parse(await client.GetStringAsync("/api/energy/sites/ercot-west-reference/pnl")).RootElement;
            Assert.True(pnl.GetProperty("intervals").GetInt32() > 0, pnl.ToString());
            Assert.True(pnl.GetProperty("energy_cost_micro_usd").GetInt64() > 0, pnl.ToString());
            var badRange = await client.GetAsync("/api/energy/sites/ercot-west-reference/pnl?from=2021-08-25T00:00:00Z&to=2021-08-24T00:00:00Z");
            Assert.Equal(HttpStatusCode.BadRequest, badRange.StatusCode);
            Assert.Equal("application/problem+json", badRange.Content.Headers.ContentType?.MediaType);
            Assert.Equal(HttpStatusCode.BadRequest, (await client.GetAsync("/api/energy/sites/ercot-west-reference/pnl?from=yesterday")).StatusCode);

            var missing = await client.GetAsync("/api/energy/sites/atlantis");
            Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
            Assert.Equal("application/problem+json", missing.Content.Headers.ContentType?.MediaType);

            // The sites are for operators (the client above) and providers, with the read scope; nobody else.
            Party provider = await TestServer.NewProviderAsync(client, "site-provider");
            Party customer = await TestServer.NewCustomerAsync(client, "site-customer");
            var tradeOnly = await client.PostJsonAsync($"/api/principals/{provider.Id}/keys", new { name = "trade-only", scopes = new[] { "trade" } });
            using var providerWithoutRead = TestServer.Client(client.BaseAddress!.ToString(), tradeOnly.GetProperty("api_key").GetString());
            using var anonymous = TestServer.Client(client.BaseAddress!.ToString(), null);
            foreach (string path in new[] { "/api/energy/sites", "/api/energy/sites/ercot-west-reference", "/api/energy/sites/ercot-west-reference/miners", "/api/energy/sites/ercot-west-reference/pnl" })
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

    private const double AmbientC = 25; // the simulator's default intake temperature
    private const double BoardMaxC = 100; // no ASIC board runs hotter

    // 24 August 2021 05:00 UTC (midnight in Texas): cheap power, the controller runs the miners it has.
    private static readonly DateTime Midnight = new(2021, 8, 24, 5, 0, 0, DateTimeKind.Utc);

    /// <summary>The reference site on a fake clock at 1× (simulated minutes are the fake clock's), with the given miners.</summary>
    private static LiveSite StartOnFakeClock(FakeTimeProvider clock, int racks, MinerFleetConfig[]? miners = null, EmergencyWindow[]? emergencies = null)
    {
        SiteConfig config = SiteExamples.Load(SiteExamples.Reference);
        config = config with
        {
            Miners = miners ?? config.Miners,
            DemandResponse = new DemandResponseConfig { Emergencies = emergencies ?? [] },
        };
        return LiveSite.Start(new LiveSiteOptions
        {
            Config = config, Speed = 1, StartUtc = Midnight, RacksPerGroup = racks,
            Simulator = new MinerFleetSimulatorOptions { Seed = 5, HashrateNoise = 0 },
        }, clock);
    }

    [Fact]
    public async Task A_whole_group_decided_runs_its_short_last_rack_too()
    {
        // 10 S21s and 10 S19 XPs in racks of 4 (4, 4 and a short rack of 2). At midnight the power is cheap and the
        // controller runs the whole fleet; flooring the decision to whole racks left the short rack asleep for good.
        var clock = new FakeTimeProvider(new DateTimeOffset(2025, 1, 1, 0, 0, 0, TimeSpan.Zero));
        var site = StartOnFakeClock(clock, racks: 3,
            [new MinerFleetConfig { Model = "Antminer S21", Count = 10 }, new MinerFleetConfig { Model = "Antminer S19 XP", Count = 10 }]);
        try
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            for (int i = 0; i < 4; i++)
            {
                await site.StepAsync(cts.Token);
                clock.Advance(TimeSpan.FromMinutes(15));
            }
            await site.StepAsync(cts.Token);
            foreach (LiveGroupState g in site.State.Groups)
            {
                Assert.Equal(3, g.Racks);
                Assert.True(g.TargetRacks == 3, $"{g.Model}: {g.TargetRacks} of 3 racks targeted, {g.TargetMiners} of {g.Miners} miners");
                Assert.Equal(10, g.TargetMiners);
            }
        }
        finally { await site.DisposeAsync(); }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(120)]
    public async Task A_racks_temperature_is_a_machines_plausible_temperature_asleep_waking_and_running(int machinesPerRack)
    {
        // One rack per group: `machinesPerRack` S21s (3.5 kW each) and as many S19 XPs (3.01 kW). A grid emergency from
        // 00:30 local puts them to sleep after half an hour of running. Reading a rack's power as one machine's put a
        // 120-machine rack at thousands of degrees.
        var clock = new FakeTimeProvider(new DateTimeOffset(2025, 1, 1, 0, 0, 0, TimeSpan.Zero));
        var site = StartOnFakeClock(clock, racks: 1,
            [new MinerFleetConfig { Model = "Antminer S21", Count = machinesPerRack }, new MinerFleetConfig { Model = "Antminer S19 XP", Count = machinesPerRack }],
            [new EmergencyWindow { FromUtc = Midnight.AddMinutes(30), ToUtc = Midnight.AddHours(3), Reason = "test" }]);
        try
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            await site.StepAsync(cts.Token); // decides 00:00: both racks woken
            Check("woken", "WakingUp", 0, 1);
            foreach (int minute in new[] { 3, 6, 9 }) // booting for 10 minutes at a quarter of their power
            {
                clock.Advance(TimeSpan.FromMinutes(3));
                await site.StepAsync(cts.Token);
                Check($"booting, minute {minute}", "WakingUp", 0, 12);
            }
            clock.Advance(TimeSpan.FromMinutes(20)); // minute 29: hashing for 18 minutes, six thermal time constants
            await site.StepAsync(cts.Token);
            Check("running", "Hashing", 55 - AmbientC, 85 - AmbientC);

            clock.Advance(TimeSpan.FromMinutes(1)); // 00:30: the emergency; the sleep takes effect 1.5 s later
            await site.StepAsync(cts.Token);
            Assert.Equal(0, site.State.Groups.Sum(g => g.TargetRacks));
            foreach (int minutes in new[] { 1, 3, 10, 60 })
            {
                clock.Advance(TimeSpan.FromMinutes(minutes));
                await site.StepAsync(cts.Token);
                Check($"asleep after {minutes} more min", "Sleeping", 0, 60 - AmbientC);
            }
            Check("asleep for long", "Sleeping", 0, 1);
        }
        finally { await site.DisposeAsync(); }

        // Every rack in the expected state, and its reported temperature (a machine's hottest board) within
        // [ambient + riseMin, ambient + riseMax] and never outside [ambient, 100 °C]; the driver read the same.
        void Check(string when, string state, double riseMin, double riseMax)
        {
            IReadOnlyList<MinerView> racks = site.Racks;
            Assert.Equal(2, racks.Count);
            foreach (MinerView r in racks)
            {
                Assert.True(r.State == state, $"{when}: rack {r.Index} ({r.Machines} × {r.Model}) is {r.State}, expected {state}");
                Assert.Equal(machinesPerRack, r.Machines);
                Assert.True(r.TemperatureC is not null, $"{when}: rack {r.Index} reported no temperature");
                double t = r.TemperatureC!.Value;
                Assert.True(t >= AmbientC && t <= BoardMaxC, $"{when}: rack {r.Index} ({r.Machines} × {r.Model}) at {t:N1} °C");
                Assert.True(t >= AmbientC + riseMin && t <= AmbientC + riseMax,
                    $"{when}: rack {r.Index} ({r.Machines} × {r.Model}) at {t:N1} °C, expected {AmbientC + riseMin}–{AmbientC + riseMax} °C");
                Assert.Equal(site.Driver.GetStatus(r.Index).TemperatureC!.Value, t, 1);
            }
        }
    }

    [Fact]
    public async Task Racks_report_their_machines_power_and_hash_rate_and_the_groups_sum_their_racks()
    {
        // Eight racks per group, the last one smaller (5,714 S21s: 7 × 715 + 709; 6,644 S19 XPs: 7 × 831 + 827). The
        // ramp limit (10 MW per interval) wakes the 40 MW fleet a few racks at a time: racks hashing, booting and asleep.
        // Steps of 3 minutes from the quarter hour see booting racks at their boot power and hashing racks at full power
        // (the minute of ramp after a 10-minute boot falls between steps).
        var clock = new FakeTimeProvider(new DateTimeOffset(2025, 1, 1, 0, 0, 0, TimeSpan.Zero));
        var site = StartOnFakeClock(clock, racks: 8);
        try
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(120));
            bool sawHashingBesideSleeping = false, sawWaking = false;
            for (int step = 0; step <= 8 * 20 && !(sawHashingBesideSleeping && sawWaking); step++)
            {
                if (step > 0) clock.Advance(TimeSpan.FromMinutes(3));
                await site.StepAsync(cts.Token);
                CheckAggregates($"minute {3 * step}");
                sawHashingBesideSleeping |= site.Racks.Any(r => r.State == "Hashing") && site.Racks.Any(r => r.State == "Sleeping");
                sawWaking |= site.Racks.Any(r => r.State == "WakingUp");
            }
            Assert.True(sawHashingBesideSleeping, "racks hashing beside racks asleep");
            Assert.True(sawWaking, "racks booting");
        }
        finally { await site.DisposeAsync(); }

        void CheckAggregates(string when)
        {
            LiveSiteState state = site.State;
            IReadOnlyList<MinerView> racks = site.Racks;
            var p = site.Site.Problem;
            foreach (MinerView r in racks)
            {
                MinerGroup g = p.Groups[r.Group];
                Assert.Equal(g.Model, r.Model);
                double kwEach = g.WattsEach / 1000.0;
                Assert.True(r.PowerKw is not null, $"{when}: rack {r.Index} reported no power");
                // Hashing racks: every machine runs, at its nameplate. Booting: none hashes, each draws a quarter of its
                // power. Asleep: none hashes, each draws its control board's 15 W.
                (int running, double kwPerMachine) = r.State switch
                {
                    "Hashing" => (r.Machines, kwEach),
                    "WakingUp" => (0, kwEach * 0.25),
                    "Sleeping" => (0, 0.015),
                    _ => throw new Xunit.Sdk.XunitException($"{when}: rack {r.Index} is {r.State}"),
                };
                Assert.Equal(running, r.MachinesRunning);
                Assert.True(Math.Abs(r.PowerKw!.Value - r.Machines * kwPerMachine) < 0.01,
                    $"{when}: rack {r.Index} ({r.State}, {r.Machines} machines) draws {r.PowerKw} kW, expected {r.Machines * kwPerMachine} kW");
                Assert.True(Math.Abs(r.HashrateThs - running * g.TerahashEach) < 0.1,
                    $"{when}: rack {r.Index} ({r.State}, {r.MachinesRunning} running) hashes {r.HashrateThs} TH/s, expected {running * g.TerahashEach}");
            }
            double siteKw = 0, siteThs = 0;
            for (int g = 0; g < state.Groups.Count; g++)
            {
                LiveGroupState group = state.Groups[g];
                MinerView[] mine = racks.Where(r => r.Group == g).ToArray();
                Assert.Equal(group.Racks, mine.Length);
                Assert.Equal(group.Miners, mine.Sum(r => r.Machines));
                Assert.Equal(group.MachinesRunning, mine.Sum(r => r.MachinesRunning));
                Assert.Equal(group.RacksHashing, mine.Count(r => r.State == "Hashing"));
                Assert.Equal(group.PowerKw, mine.Sum(r => r.PowerKw!.Value), 3);
                Assert.Equal(group.HashrateThs, mine.Sum(r => r.HashrateThs), 1);
                siteKw += group.PowerKw;
                siteThs += group.HashrateThs;
            }
            Assert.Equal(Math.Round(siteKw, 1), state.MeasuredMinerPowerKw, 6);
            Assert.Equal(Math.Round(siteThs, 1), state.MeasuredHashrateThs, 6);
        }
    }

    [Fact]
    public async Task The_api_reports_racks_and_groups_with_their_units_in_the_field_names()
    {
        string dir = TestServer.TempDir("energy-units");
        var (app, client) = await TestServer.StartInProcessAsync(dir, [Reference(1_800, racks: 4)]);
        try
        {
            const string site = "/api/energy/sites/ercot-west-reference";
            var deadline = Stopwatch.StartNew();
            JsonElement racks = default;
            while (deadline.Elapsed < TimeSpan.FromSeconds(60))
            {
                racks = JsonDocument.Parse(await client.GetStringAsync(site + "/miners")).RootElement;
                if (racks.EnumerateArray().Any(r => r.GetProperty("state").GetString() == "Hashing")) break;
                await Task.Delay(200);
            }
            Assert.Equal(8, racks.GetArrayLength());
            foreach (JsonElement r in racks.EnumerateArray())
            {
                var names = r.EnumerateObject().Select(x => x.Name).ToHashSet();
                Assert.Superset(new HashSet<string> { "machines", "machines_running", "hashrate_ths", "power_kw", "temperature_c", "model" }, names);
                Assert.DoesNotContain("power_w", names);
                int machines = r.GetProperty("machines").GetInt32();
                Assert.InRange(machines, 1_400, 1_700); // 5,714 or 6,644 machines in four racks
                if (r.GetProperty("state").GetString() != "Hashing") continue;
                Assert.Equal(machines, r.GetProperty("machines_running").GetInt32());
                // A rack of S21s (3.5 kW, 200 TH/s) or S19 XPs (3.01 kW, 140 TH/s), ramping up or at full power.
                Assert.InRange(r.GetProperty("power_kw").GetDouble(), machines * 3.0 * 0.25, machines * 3.5 * 1.001);
                Assert.InRange(r.GetProperty("hashrate_ths").GetDouble(), 0, machines * 200 * 1.1);
                Assert.InRange(r.GetProperty("temperature_c").GetDouble(), AmbientC, BoardMaxC);
            }
            Assert.Contains(racks.EnumerateArray(), r => r.GetProperty("state").GetString() == "Hashing");

            JsonElement state = JsonDocument.Parse(await client.GetStringAsync(site)).RootElement;
            foreach (JsonElement g in state.GetProperty("groups").EnumerateArray())
            {
                var names = g.EnumerateObject().Select(x => x.Name).ToHashSet();
                Assert.Superset(new HashSet<string> { "machines_running", "hashrate_ths", "power_kw" }, names);
            }
            Assert.True(state.TryGetProperty("measured_miner_power_kw", out _));
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
