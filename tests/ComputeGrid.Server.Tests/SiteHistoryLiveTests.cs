using System.Diagnostics;
using System.Net;
using System.Text.Json;
using ComputeGrid.Energy.Sites;
using ComputeGrid.Server.Energy;
using ComputeGrid.Simulation;
using Microsoft.Extensions.Time.Testing;

namespace ComputeGrid.Server.Tests;

/// <summary>
/// A live site's recent past: the decided intervals (<c>/history</c>) and the curtailment events with their reason
/// (<c>/events</c>), kept in bounded rings and named where the site decides.
/// </summary>
public class SiteHistoryLiveTests
{
    // 24 August 2021 05:00 UTC (midnight in Texas): cheap power, the controller runs the miners it has.
    private static readonly DateTime Midnight = new(2021, 8, 24, 5, 0, 0, DateTimeKind.Utc);
    private static readonly TimeSpan Quarter = TimeSpan.FromMinutes(15);

    private static LiveSite OnFakeClock(FakeTimeProvider clock, Func<SiteConfig, SiteConfig> change) =>
        LiveSite.Start(new LiveSiteOptions
        {
            Config = change(SiteExamples.Load(SiteExamples.Reference)), Speed = 1, StartUtc = Midnight, RacksPerGroup = 2,
            Simulator = new MinerFleetSimulatorOptions { Seed = 5, HashrateNoise = 0 },
        }, clock);

    // Decides `intervals` more intervals, a quarter of an hour of the fake clock each.
    private static async Task StepIntervalsAsync(LiveSite site, FakeTimeProvider clock, int intervals, CancellationToken ct)
    {
        for (int i = 0; i < intervals; i++)
        {
            clock.Advance(Quarter);
            await site.StepAsync(ct);
        }
    }

    [Fact]
    public async Task A_declared_emergency_is_one_event_with_its_reason_and_the_history_shows_each_interval_as_the_state_did()
    {
        var clock = new FakeTimeProvider(new DateTimeOffset(2025, 1, 1, 0, 0, 0, TimeSpan.Zero));
        var site = OnFakeClock(clock, c => c with
        {
            Miners = [new MinerFleetConfig { Model = "Antminer S21", Count = 40 }],
            DemandResponse = new DemandResponseConfig { Emergencies = [new EmergencyWindow { FromUtc = Midnight.AddHours(1), ToUtc = Midnight.AddHours(3), Reason = "test" }] },
        });
        try
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            await site.StepAsync(cts.Token); // decides 00:00
            for (int i = 0; i < 16; i++)
            {
                await StepIntervalsAsync(site, clock, 1, cts.Token);
                // Each decided interval's point carries the figures the state shows for it, rounded alike.
                SiteHistoryPoint last = site.History.Points(1).Single();
                LiveSiteState s = site.State;
                Assert.Equal(s.Interval, last.Interval);
                Assert.Equal(site.Site.Problem.IntervalStartUtc(s.Interval), last.SeriesTimeUtc);
                Assert.Equal(s.LastPriceUsdPerMwh, last.PriceUsdPerMwh);
                Assert.Equal(s.AiFacilityKw, last.AiKw);
                Assert.Equal(s.MinerFacilityKw, last.MinerKw);
                Assert.Equal(s.CurtailedMinerKw, last.CurtailedKw);
                Assert.Equal(s.Emergency, last.Emergency);
                Assert.Equal(s.Groups.Sum(g => g.TargetMiners), last.MinersOn);
            }

            SiteHistoryPoint[] points = site.History.Points(int.MaxValue);
            Assert.Equal(17, points.Length);
            for (int i = 0; i < points.Length; i++) Assert.Equal(Midnight + i * Quarter, points[i].SeriesTimeUtc);
            // 01:00 to 02:45: eight intervals of emergency, nothing runs, and that is their reason.
            foreach (SiteHistoryPoint p in points.Where(p => p.SeriesTimeUtc >= Midnight.AddHours(1) && p.SeriesTimeUtc < Midnight.AddHours(3)))
            {
                Assert.True(p.Emergency);
                Assert.Equal(0, p.MinersOn);
                Assert.Equal(0, p.MinerKw);
                Assert.Equal(SiteCurtailmentReason.Emergency, p.Reason);
                Assert.True(p.CurtailedKw > 0);
            }
            Assert.DoesNotContain(points, p => p.Reason == SiteCurtailmentReason.Emergency && !p.Emergency);

            CurtailmentEvent emergency = Assert.Single(site.History.Events(int.MaxValue), e => e.Reason == SiteCurtailmentReason.Emergency);
            Assert.Equal(Midnight.AddHours(1), emergency.StartUtc);
            Assert.Equal(Midnight.AddHours(2.75), emergency.LastIntervalUtc);
            Assert.Equal(8, emergency.Intervals);
            Assert.False(emergency.Ongoing); // 03:00 and later are decided: it ended
            // The whole fleet of 40 S21s (3.5 kW each) is held off, with the site's cooling.
            Assert.Equal(Math.Round(site.Site.Problem.Pue * 40 * 3.5, 1), emergency.MaxCurtailedKw, 6);
            // The baselines ran beside it on the same intervals, each scored on its own.
            Assert.Equal(["always-on", "threshold"], site.State.Baselines.Select(b => b.Name));
            Assert.All(site.State.Baselines, b => Assert.True(b.EnergyCostMicroUsd > 0, $"{b.Name} paid no energy"));
            Assert.True(site.State.Baselines[0].MiningRevenueMicroUsd > 0);
            // Newest first, and only the latest when asked for one.
            CurtailmentEvent[] events = site.History.Events(int.MaxValue);
            for (int i = 1; i < events.Length; i++) Assert.True(events[i - 1].StartUtc > events[i].StartUtc);
            Assert.Equal(events[0], site.History.Events(1).Single());
        }
        finally { await site.DisposeAsync(); }
    }

    // A site of one node of 100 GPUs × 700 W that nobody measures, so it counts at full power (70 kW IT), beside `miners`,
    // the interconnect leaving them `minerItKw` of IT power: decided for five intervals from midnight's cheap power.
    private static async Task<(LiveSite Site, double Pue)> GpusBesideMinersAsync(double minerItKw, params MinerFleetConfig[] miners)
    {
        var clock = new FakeTimeProvider(new DateTimeOffset(2025, 1, 1, 0, 0, 0, TimeSpan.Zero));
        double pue = SiteExamples.Load(SiteExamples.Reference).Pue;
        var site = OnFakeClock(clock, c => c with
        {
            Gpus = [],
            Nodes = [new SiteNodeConfig { Id = "gpu-1", Gpus = 100, WattsPerGpu = 700, JoulesPer1kTokens = 1 }],
            Miners = miners,
            InterconnectKw = pue * (70 + minerItKw),
        });
        try
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            await site.StepAsync(cts.Token);
            await StepIntervalsAsync(site, clock, 4, cts.Token);
            return (site, pue);
        }
        catch
        {
            await site.DisposeAsync();
            throw;
        }
    }

    [Fact]
    public async Task Miners_held_off_because_the_gpus_fill_the_interconnect_are_curtailed_for_ai_load()
    {
        // 10 kW of IT left beside the GPUs: no rack of five S21s (17.5 kW) fits.
        var (site, pue) = await GpusBesideMinersAsync(10, new MinerFleetConfig { Model = "Antminer S21", Count = 10 });
        try
        {
            SiteHistoryPoint[] points = site.History.Points(10);
            Assert.Equal(5, points.Length);
            Assert.All(points, p => Assert.Equal(SiteCurtailmentReason.AiLoad, p.Reason));
            Assert.All(points, p => Assert.True(p.MinersOn * 3.5 <= 10, $"{p.MinersOn} miners on"));
            CurtailmentEvent e = Assert.Single(site.History.Events(10));
            Assert.Equal(SiteCurtailmentReason.AiLoad, e.Reason);
            Assert.Equal(5, e.Intervals);
            Assert.True(e.Ongoing);
            Assert.Equal(Math.Round(pue * 70, 1), points[^1].AiKw, 6);
        }
        finally { await site.DisposeAsync(); }
    }

    [Fact]
    public async Task A_small_rack_already_running_does_not_hide_that_the_gpus_left_no_room_for_a_big_one()
    {
        // Two S21s in racks of one (3.5 kW) and twenty S19 XPs in racks of ten (about 30 kW); 32 kW of IT left beside the
        // GPUs: the S21s run, no S19 XP rack fits. An S21 rack would fit the 25 kW left, but both are on already: the
        // S19 XPs are held off for the AI load, not by the limits.
        var (site, _) = await GpusBesideMinersAsync(32, new MinerFleetConfig { Model = "Antminer S21", Count = 2 }, new MinerFleetConfig { Model = "Antminer S19 XP", Count = 20 });
        try
        {
            SiteHistoryPoint[] points = site.History.Points(10);
            Assert.Equal(2, points[^1].MinersOn); // the S21s
            Assert.All(points.Where(p => p.MinersOn == 2), p => Assert.Equal(SiteCurtailmentReason.AiLoad, p.Reason));
            Assert.Equal(SiteCurtailmentReason.AiLoad, site.History.Events(1).Single().Reason);
        }
        finally { await site.DisposeAsync(); }
    }

    [Fact]
    public void The_rings_keep_only_their_capacity_and_an_event_spans_consecutive_intervals_of_one_reason()
    {
        var history = new SiteHistory();
        DateTime t0 = Midnight;
        SiteHistoryPoint Point(int i, SiteCurtailmentReason? why, double kw = 10) => new(t0 + i * Quarter, i, 30, 100, 50, why is null ? 0 : kw, false, false, 5, why);
        int i = 0;
        history.Add(Point(i++, null), Quarter);
        history.Add(Point(i++, SiteCurtailmentReason.Price, 10), Quarter);
        history.Add(Point(i++, SiteCurtailmentReason.Price, 30), Quarter);
        history.Add(Point(i++, SiteCurtailmentReason.PeakRisk, 20), Quarter); // another reason: a new event
        history.Add(Point(i++, null), Quarter); // nothing held off: the event ends
        i++; // a gap (an interval not decided): the next one does not continue the last event
        history.Add(Point(i++, SiteCurtailmentReason.PeakRisk), Quarter);

        CurtailmentEvent[] events = history.Events(10);
        Assert.Equal(3, events.Length);
        Assert.Equal(new CurtailmentEvent(t0 + 6 * Quarter, t0 + 6 * Quarter, 1, SiteCurtailmentReason.PeakRisk, 10, 10, true), events[0]);
        Assert.Equal(new CurtailmentEvent(t0 + 3 * Quarter, t0 + 3 * Quarter, 1, SiteCurtailmentReason.PeakRisk, 20, 20, false), events[1]);
        Assert.Equal(new CurtailmentEvent(t0 + 1 * Quarter, t0 + 2 * Quarter, 2, SiteCurtailmentReason.Price, 10, 30, false), events[2]);

        // Past capacity the oldest go: the latest PointsMax points and EventsMax events remain, in order.
        for (int k = 0; k < SiteHistory.PointsMax + SiteHistory.EventsMax * 2; k++)
            history.Add(Point(i++, k % 2 == 0 ? SiteCurtailmentReason.Price : null), Quarter);
        SiteHistoryPoint[] kept = history.Points(int.MaxValue);
        Assert.Equal(SiteHistory.PointsMax, kept.Length);
        Assert.Equal(i - 1, kept[^1].Interval);
        Assert.Equal(i - SiteHistory.PointsMax, kept[0].Interval);
        Assert.Equal(SiteHistory.EventsMax, history.Events(int.MaxValue).Length);
        Assert.Equal(3, history.Points(3).Length);
        Assert.Equal(kept[^3..], history.Points(3));
    }

    [Fact]
    public async Task The_api_serves_history_and_events_under_the_sites_policy_and_refuses_bad_limits_and_unknown_sites()
    {
        string dir = TestServer.TempDir("site-history");
        var options = new LiveSiteOptions
        {
            Config = SiteExamples.Load(SiteExamples.Reference), Speed = 1_800, StartUtc = Midnight, RacksPerGroup = 4,
            Simulator = new MinerFleetSimulatorOptions { Seed = 5 },
        };
        var (app, client) = await TestServer.StartInProcessAsync(dir, [options]);
        try
        {
            const string site = "/api/energy/sites/ercot-west-reference";
            // The latest point equals the state the site shows when both are at the same interval.
            var deadline = Stopwatch.StartNew();
            bool met = false;
            JsonElement history = default;
            while (!met && deadline.Elapsed < TimeSpan.FromSeconds(60))
            {
                JsonElement before = JsonDocument.Parse(await client.GetStringAsync(site)).RootElement;
                history = JsonDocument.Parse(await client.GetStringAsync(site + "/history?limit=5")).RootElement;
                JsonElement after = JsonDocument.Parse(await client.GetStringAsync(site)).RootElement;
                JsonElement[] points = [.. history.GetProperty("points").EnumerateArray()];
                if (points.Length < 2 || before.GetProperty("interval").GetInt32() != after.GetProperty("interval").GetInt32()
                    || points[^1].GetProperty("interval").GetInt32() != before.GetProperty("interval").GetInt32())
                {
                    await Task.Delay(100);
                    continue;
                }
                met = true;
                JsonElement last = points[^1];
                Assert.Equal(before.GetProperty("ai_facility_kw").GetDouble(), last.GetProperty("ai_kw").GetDouble());
                Assert.Equal(before.GetProperty("miner_facility_kw").GetDouble(), last.GetProperty("miner_kw").GetDouble());
                Assert.Equal(before.GetProperty("curtailed_miner_kw").GetDouble(), last.GetProperty("curtailed_kw").GetDouble());
                Assert.Equal(before.GetProperty("last_price_usd_per_mwh").GetRawText(), last.GetProperty("price_usd_per_mwh").GetRawText());
                Assert.True(points.Length <= 5);
            }
            Assert.True(met, "the state and the history never met at one interval");
            Assert.Equal(15, history.GetProperty("interval_minutes").GetInt32());
            Assert.Equal(SiteHistory.PointsMax, history.GetProperty("capacity").GetInt32());

            JsonElement events = JsonDocument.Parse(await client.GetStringAsync(site + "/events")).RootElement;
            Assert.Equal("ercot-west-reference", events.GetProperty("site").GetString());
            foreach (JsonElement e in events.GetProperty("events").EnumerateArray())
                Assert.Contains(e.GetProperty("reason").GetString(), new[] { "price", "peak_risk", "emergency", "ai_load", "limits" });

            foreach (string bad in new[] { "/history?limit=0", $"/history?limit={SiteHistory.PointsMax + 1}", "/history?limit=ten", "/events?limit=-1", $"/events?limit={SiteHistory.EventsMax + 1}" })
            {
                var r = await client.GetAsync(site + bad);
                Assert.True(r.StatusCode == HttpStatusCode.BadRequest, $"{bad}: {r.StatusCode}");
                Assert.Equal("application/problem+json", r.Content.Headers.ContentType?.MediaType);
            }
            foreach (string path in new[] { "/api/energy/sites/atlantis/history", "/api/energy/sites/atlantis/events" })
            {
                var r = await client.GetAsync(path);
                Assert.Equal(HttpStatusCode.NotFound, r.StatusCode);
                Assert.Equal("application/problem+json", r.Content.Headers.ContentType?.MediaType);
            }

            // The site's policy: operators and providers with the read scope; a customer is refused, anonymous is 401.
            Party provider = await TestServer.NewProviderAsync(client, "history-provider");
            Party customer = await TestServer.NewCustomerAsync(client, "history-customer");
            using var anonymous = TestServer.Client(client.BaseAddress!.ToString(), null);
            foreach (string path in new[] { site + "/history", site + "/events" })
            {
                Assert.Equal(HttpStatusCode.OK, (await provider.Http.GetAsync(path)).StatusCode);
                Assert.Equal(HttpStatusCode.Forbidden, (await customer.Http.GetAsync(path)).StatusCode);
                Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync(path)).StatusCode);
            }
            provider.Http.Dispose();
            customer.Http.Dispose();

            // The router's latency data, public: every region, symmetric, the intra-region RTT on the diagonal.
            JsonElement latency = JsonDocument.Parse(await anonymous.GetStringAsync("/api/inference/latency")).RootElement;
            JsonElement[] regions = [.. latency.GetProperty("regions").EnumerateArray()];
            JsonElement[] rows = [.. latency.GetProperty("rtt_us").EnumerateArray()];
            var matrix = ComputeGrid.Inference.Routing.LatencyMatrix.LoadDefault();
            Assert.Equal(matrix.Count, regions.Length);
            Assert.Equal(matrix.Count, rows.Length);
            Assert.Contains(regions, r => r.GetProperty("id").GetString() == "frankfurt");
            for (int a = 0; a < rows.Length; a++)
                for (int b = 0; b < rows.Length; b++)
                {
                    Assert.Equal(matrix.RttMicros(a, b), rows[a][b].GetInt32());
                    Assert.Equal(rows[b][a].GetInt32(), rows[a][b].GetInt32());
                }
            Assert.Equal(ComputeGrid.Inference.Routing.LatencyMatrix.IntraRegionRttMicros, rows[0][0].GetInt32());
        }
        finally
        {
            await app.StopAsync();
            await app.DisposeAsync();
            client.Dispose();
            Directory.Delete(dir, recursive: true);
        }
    }
}
