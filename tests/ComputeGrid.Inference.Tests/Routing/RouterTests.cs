using ComputeGrid.Inference.Routing;
using Microsoft.Extensions.Time.Testing;

namespace ComputeGrid.Inference.Tests.Routing;

public class RouterTests
{
    private const string Model = "all-MiniLM-L6-v2";

    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 8, 16, 12, 0, 0, TimeSpan.Zero));
    private readonly NodeRegistry _registry;
    private readonly Router _router;
    private readonly int _london = LatencyMatrixTests.Index("london");
    private readonly int _tokyo = LatencyMatrixTests.Index("tokyo");
    private readonly int _frankfurt = LatencyMatrixTests.Index("frankfurt");

    public RouterTests()
    {
        _registry = new NodeRegistry(LatencyMatrixTests.Real, _time);
        _router = new Router(_registry);
    }

    private NodeHandle Add(string id, string region, long price, int capacity = 4, double ewmaMs = 0, params string[] models)
    {
        NodeHandle h = _registry.Register(new NodeRegistration(id, region, models.Length == 0 ? [Model] : models, price, capacity, new byte[32]));
        _registry.Heartbeat(id, new NodeHeartbeat(0, 0, ewmaMs));
        return h;
    }

    private (RouteDecision Decision, string[] Ids) Route(int region, RoutingPreferences? preferences = null, int k = 3, string model = Model)
    {
        var ranked = new NodeHandle[k];
        RouteDecision d = _router.Choose(new RouteRequest(region, model, preferences), ranked);
        // The reference must agree on every hand-made case too.
        var reference = new NodeHandle[k];
        RouteDecision r = new BruteForceRouter(_registry).Choose(new RouteRequest(region, model, preferences), reference);
        Assert.Equal(r, d);
        Assert.Equal(reference, ranked);
        return (d, [.. ranked.Take(d.Count).Select(h => _registry.NodeIdOf(h)!)]);
    }

    private void AddThree()
    {
        Add("lon", "london", price: 30);
        Add("fra", "frankfurt", price: 10);
        Add("tyo", "tokyo", price: 5);
    }

    [Fact]
    public void Latency_sort_prefers_the_nearest_and_price_sort_the_cheapest()
    {
        AddThree();
        var (d, ids) = Route(_london, new RoutingPreferences { Sort = RouteSort.Latency });
        Assert.Equal(RouteStatus.Routed, d.Status);
        Assert.Equal(["lon", "fra", "tyo"], ids);
        Assert.Equal(1_000, d.BestLatencyMicros); // intra-region 1 ms, idle node, EWMA 0
        Assert.Equal(30, d.BestPriceMicroUsdPer1kTokens);

        (_, ids) = Route(_london, new RoutingPreferences { Sort = RouteSort.Price });
        Assert.Equal(["tyo", "fra", "lon"], ids);
    }

    [Fact]
    public void Balanced_weighs_one_micro_usd_per_1k_tokens_as_one_millisecond()
    {
        AddThree();
        // From London: lon 1 ms + 30 = 31; fra 13 ms + 10 = 23; tyo ≈ 220 ms + 5.
        var (_, ids) = Route(_london);
        Assert.Equal(["fra", "lon", "tyo"], ids);
        // With price weighing nothing, Balanced is latency order.
        var router = new Router(_registry, new RouterOptions { BalancedMicrosPerPriceUnit = 0 });
        var ranked = new NodeHandle[3];
        router.Choose(new RouteRequest(_london, Model), ranked);
        Assert.Equal(["lon", "fra", "tyo"], ranked.Select(h => _registry.NodeIdOf(h)));
    }

    [Fact]
    public void Queue_estimate_adds_model_time_and_work_ahead_over_capacity()
    {
        NodeHandle h = Add("lon", "london", price: 1, capacity: 4);
        _registry.Heartbeat("lon", new NodeHeartbeat(QueueLength: 2, Inflight: 1, EwmaModelMs: 8));
        Assert.True(_registry.TryAcquire(h));
        Assert.True(_registry.TryAcquire(h)); // router inflight 2 > reported 1
        var (d, _) = Route(_london, new RoutingPreferences { Sort = RouteSort.Latency });
        // 1 ms RTT + 8 ms model + (2 queued + max(1, 2)) × 8 ms / 4 = 17 ms.
        Assert.Equal(17_000, d.BestLatencyMicros);
    }

    [Fact]
    public void Max_price_excludes_pricier_nodes_inclusively()
    {
        AddThree();
        var (_, ids) = Route(_london, new RoutingPreferences { Sort = RouteSort.Latency, MaxPriceMicroUsdPer1kTokens = 10 });
        Assert.Equal(["fra", "tyo"], ids);
        var (d, _) = Route(_london, new RoutingPreferences { MaxPriceMicroUsdPer1kTokens = 4 });
        Assert.Equal(RouteStatus.FilteredByPreferences, d.Status);
        Assert.Equal(0, d.Count);
    }

    [Fact]
    public void Max_latency_excludes_far_nodes()
    {
        AddThree();
        var (_, ids) = Route(_london, new RoutingPreferences { Sort = RouteSort.Price, MaxLatencyMs = 13 });
        Assert.Equal(["fra", "lon"], ids); // Frankfurt is 13 ms from London: inclusive
        (_, ids) = Route(_london, new RoutingPreferences { MaxLatencyMs = 12 });
        Assert.Equal(["lon"], ids);
        var (d, _) = Route(_london, new RoutingPreferences { MaxLatencyMs = 0 });
        Assert.Equal(RouteStatus.FilteredByPreferences, d.Status);
        Assert.Throws<ArgumentOutOfRangeException>(() => new RoutingPreferences { MaxLatencyMs = -1 });
        Assert.Throws<ArgumentOutOfRangeException>(() => new RoutingPreferences { MaxPriceMicroUsdPer1kTokens = -1 });
    }

    [Fact]
    public void Only_and_ignore_restrict_regions()
    {
        AddThree();
        var (_, ids) = Route(_london, new RoutingPreferences { Only = RegionSet.Of(_tokyo) });
        Assert.Equal(["tyo"], ids);
        (_, ids) = Route(_london, new RoutingPreferences { Sort = RouteSort.Latency, Ignore = RegionSet.Of(_london) });
        Assert.Equal(["fra", "tyo"], ids);
        (_, ids) = Route(_london, new RoutingPreferences { Only = RegionSet.Of(_tokyo, _frankfurt), Ignore = RegionSet.Of(_tokyo) });
        Assert.Equal(["fra"], ids);
        var (d, _) = Route(_london, new RoutingPreferences { Only = RegionSet.Empty });
        Assert.Equal(RouteStatus.FilteredByPreferences, d.Status);
    }

    [Fact]
    public void Without_fallbacks_only_one_node_is_returned()
    {
        AddThree();
        var (d, ids) = Route(_london, new RoutingPreferences { Sort = RouteSort.Latency, AllowFallbacks = false }, k: 3);
        Assert.Equal(1, d.Count);
        Assert.Equal(["lon"], ids);
    }

    [Fact]
    public void Ranking_is_cut_to_the_span_and_ties_go_to_the_smaller_id()
    {
        foreach (string id in new[] { "n3", "n1", "N9", "n2", "n10" }) Add(id, "frankfurt", price: 7);
        var (d, ids) = Route(_frankfurt, k: 3);
        Assert.Equal(["N9", "n1", "n10"], ids); // ordinal: upper case first, "n10" < "n2"
        (_, ids) = Route(_frankfurt, k: 8);
        Assert.Equal(["N9", "n1", "n10", "n2", "n3"], ids);
    }

    [Fact]
    public void A_node_that_misses_its_heartbeat_leaves_rotation_at_once_and_returns_with_the_next()
    {
        Add("lon", "london", price: 30);
        Add("fra", "frankfurt", price: 10);
        _time.Advance(TimeSpan.FromSeconds(2));
        _registry.Heartbeat("fra", new NodeHeartbeat(0, 0, 0));
        _time.Advance(TimeSpan.FromMilliseconds(999));
        var (_, ids) = Route(_london, new RoutingPreferences { Sort = RouteSort.Latency });
        Assert.Equal(["lon", "fra"], ids); // lon is 2.999 s old: still in
        _time.Advance(TimeSpan.FromMilliseconds(1));
        (_, ids) = Route(_london, new RoutingPreferences { Sort = RouteSort.Latency });
        Assert.Equal(["fra"], ids); // exactly 3 s: out
        Assert.False(_registry.TryGetNode("lon", out var lon) && lon.Healthy);
        _time.Advance(TimeSpan.FromSeconds(2)); // fra's heartbeat is now 3 s old too
        var (d, _) = Route(_london);
        Assert.Equal(RouteStatus.NoHealthyNode, d.Status);
        _registry.Heartbeat("lon", new NodeHeartbeat(0, 0, 0));
        (_, ids) = Route(_london, new RoutingPreferences { Sort = RouteSort.Latency });
        Assert.Equal(["lon"], ids);
    }

    [Fact]
    public void A_failed_node_is_never_chosen_until_its_next_heartbeat()
    {
        NodeHandle lon = Add("lon", "london", price: 30);
        Add("fra", "frankfurt", price: 10);
        Assert.True(_registry.MarkFailed(lon));
        for (int i = 0; i < 10; i++)
        {
            var (_, ids) = Route(_london, new RoutingPreferences { Sort = RouteSort.Latency });
            Assert.Equal(["fra"], ids);
        }
        Assert.True(_registry.TryGetNode("lon", out var snapshot));
        Assert.True(snapshot.Failed);
        Assert.False(snapshot.Healthy);
        Assert.True(_registry.MarkFailed("fra"));
        Assert.Equal(RouteStatus.NoHealthyNode, Route(_london).Decision.Status);
        _registry.Heartbeat("lon", new NodeHeartbeat(0, 0, 0));
        Assert.Equal(["lon"], Route(_london).Ids);
    }

    [Fact]
    public void A_node_at_capacity_is_skipped_and_all_busy_is_reported()
    {
        NodeHandle lon = Add("lon", "london", price: 30, capacity: 1);
        NodeHandle fra = Add("fra", "frankfurt", price: 10, capacity: 2);
        Assert.True(_registry.TryAcquire(lon));
        Assert.Equal(["fra"], Route(_london, new RoutingPreferences { Sort = RouteSort.Latency }).Ids);
        Assert.True(_registry.TryAcquire(fra));
        Assert.True(_registry.TryAcquire(fra));
        Assert.False(_registry.TryAcquire(fra));
        var (d, _) = Route(_london);
        Assert.Equal(RouteStatus.AllBusy, d.Status);
        Assert.Contains("capacity", RouteDecision.Explain(d.Status));
        // Busy nodes that the preferences exclude anyway: filtered, not busy.
        Assert.Equal(RouteStatus.FilteredByPreferences, Route(_london, new RoutingPreferences { Only = RegionSet.Of(_tokyo) }).Decision.Status);
        Assert.True(_registry.Release(lon));
        Assert.Equal(["lon"], Route(_london).Ids);
    }

    [Fact]
    public void No_node_results_name_why()
    {
        Assert.Equal(RouteStatus.NoNodeServesModel, Route(_london).Decision.Status);
        Add("lon", "london", price: 30, models: "other-model");
        Assert.Equal(RouteStatus.NoNodeServesModel, Route(_london).Decision.Status);
        Assert.Equal(RouteStatus.Routed, Route(_london, model: "other-model").Decision.Status);
        foreach (RouteStatus s in Enum.GetValues<RouteStatus>()) Assert.False(string.IsNullOrWhiteSpace(RouteDecision.Explain(s)));
        var none = Route(_london).Decision;
        Assert.False(none.IsRouted);
        Assert.Equal(0, none.Count);
        Assert.True(none.Best.IsDefault);
    }

    [Fact]
    public void Bad_requests_are_rejected()
    {
        Add("lon", "london", price: 30);
        var ranked = new NodeHandle[1];
        Assert.Throws<ArgumentOutOfRangeException>(() => _router.Choose(new RouteRequest(13, Model), ranked));
        Assert.Throws<ArgumentOutOfRangeException>(() => _router.Choose(new RouteRequest(-1, Model), ranked));
        Assert.Throws<ArgumentException>(() => _router.Choose(new RouteRequest(0, Model), Span<NodeHandle>.Empty));
        Assert.Throws<ArgumentException>(() => _router.Choose(default, ranked));
    }

    [Fact]
    public void Choose_does_not_allocate()
    {
        for (int i = 0; i < 40; i++) Add($"n{i:D2}", LatencyMatrixTests.Real.Regions[i % 13], price: 5 + i);
        var request = new RouteRequest(_london, Model, new RoutingPreferences { Sort = RouteSort.Latency, MaxPriceMicroUsdPer1kTokens = 30 });
        var missing = new RouteRequest(_london, "missing");
        var filtered = new RouteRequest(_london, Model, new RoutingPreferences { MaxPriceMicroUsdPer1kTokens = 1 });
        // The power sort, with sites publishing states (one in a peak hour) for half the fleet.
        for (int i = 0; i < 40; i += 2)
            _registry.PublishPower($"n{i:D2}", new NodePowerState("s", 25_000_000 * i, 3_600, 0, 0, i % 4 == 0 ? PowerFlags.PeakHour : PowerFlags.None));
        var byPower = new RouteRequest(_london, Model, new RoutingPreferences { Sort = RouteSort.Power, MaxLatencyMs = 100 });
        var ranked = new NodeHandle[3];
        long allocated = long.MaxValue;
        // Windows after warm-up: tiered JIT may allocate once; a per-call allocation shows in every window.
        for (int window = 0; window < 5 && allocated != 0; window++)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < 20_000; i++)
            {
                _router.Choose(in request, ranked);
                _router.Choose(in missing, ranked);
                _router.Choose(in filtered, ranked);
                _router.Choose(in byPower, ranked);
            }
            allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        }
        Assert.Equal(0, allocated);
    }

    [Fact]
    public void Power_sort_adds_the_sites_marginal_power_cost_to_the_price()
    {
        // Both 10 micro-USD per 1,000 tokens; Frankfurt's site pays 9,000 USD/MWh, London's 20 USD/MWh, Tokyo has no site.
        Add("lon", "london", price: 10);
        Add("fra", "frankfurt", price: 10);
        Add("tyo", "tokyo", price: 11);
        // 3,600 J per 1,000 tokens = 1 Wh: 9,000 USD/MWh → 9,000 micro-USD = 9·10^6 nano-USD; 20 USD/MWh → 2·10^4 nano-USD.
        _registry.PublishPower("fra", new NodePowerState("fra-site", 9_000_000_000, 3_600_000, 0, 0, PowerFlags.None));
        _registry.PublishPower("lon", new NodePowerState("lon-site", 20_000_000, 3_600_000, 0, 0, PowerFlags.None));
        Assert.True(_registry.TryGetNode("fra", out NodeSnapshot? fra));
        Assert.Equal(9_000_000, fra.Power!.Value.PowerCostNanoUsdPer1kTokens);

        // Price alone ties London and Frankfurt (London is nearer); power: Tokyo (11,000 nano-USD + none) beats London
        // (10,000 + 20,000) and Frankfurt (10,000 + 9·10^6).
        var (_, ids) = Route(_london, new RoutingPreferences { Sort = RouteSort.Price });
        Assert.Equal(["lon", "fra", "tyo"], ids);
        (_, ids) = Route(_london, new RoutingPreferences { Sort = RouteSort.Power });
        Assert.Equal(["tyo", "lon", "fra"], ids);
        // Within 100 ms of London Tokyo is out: the cheapest power there is London's.
        (_, ids) = Route(_london, new RoutingPreferences { Sort = RouteSort.Power, MaxLatencyMs = 100 });
        Assert.Equal(["lon", "fra"], ids);

        // A negative price (surplus power) makes a node cheaper than its price alone: 10,000 − 30,000 nano-USD.
        _registry.PublishPower("fra", new NodePowerState("fra-site", -30_000_000, 3_600_000, 0, 0, PowerFlags.None));
        (_, ids) = Route(_london, new RoutingPreferences { Sort = RouteSort.Power, MaxLatencyMs = 100 });
        Assert.Equal(["fra", "lon"], ids);
        Assert.True(_registry.ClearPower("fra"));
        Assert.False(_registry.ClearPower("fra"));
        (_, ids) = Route(_london, new RoutingPreferences { Sort = RouteSort.Power, MaxLatencyMs = 100 });
        Assert.Equal(["fra", "lon"], ids); // no site: no power cost (10,000 nano-USD against London's 30,000)
    }

    [Fact]
    public void A_node_whose_site_is_in_a_peak_hour_or_emergency_loses_flexible_traffic_but_is_never_dropped_for_it()
    {
        Add("lon", "london", price: 10);
        Add("fra", "frankfurt", price: 20);
        _registry.PublishPower("lon", new NodePowerState("west", 25_000_000, 1_000, 0, 0, PowerFlags.PeakHour));
        foreach (RouteSort sort in Enum.GetValues<RouteSort>())
        {
            // Within the bound both are eligible: the peak-hour node ranks last (still a fallback).
            var (d, ids) = Route(_london, new RoutingPreferences { Sort = sort, MaxLatencyMs = 50 });
            Assert.Equal(RouteStatus.Routed, d.Status);
            Assert.Equal(["fra", "lon"], ids);
            // Within a bound only London meets, it is served there.
            (d, ids) = Route(_london, new RoutingPreferences { Sort = sort, MaxLatencyMs = 2 });
            Assert.Equal(RouteStatus.Routed, d.Status);
            Assert.Equal(["lon"], ids);
        }
        // An emergency counts the same; when it ends, London is first again for the latency sort.
        _registry.PublishPower("lon", new NodePowerState("west", 25_000_000, 1_000, 0, 0, PowerFlags.Emergency));
        Assert.Equal(["fra", "lon"], Route(_london, new RoutingPreferences { Sort = RouteSort.Latency }).Ids);
        _registry.PublishPower("lon", new NodePowerState("west", 25_000_000, 1_000, 0, 0, PowerFlags.None));
        Assert.Equal(["lon", "fra"], Route(_london, new RoutingPreferences { Sort = RouteSort.Latency }).Ids);
        // A state published before a node registers applies when it does, and survives a re-registration.
        _registry.PublishPower("tyo", new NodePowerState("east", 0, 0, 0, 0, PowerFlags.PeakHour));
        Add("tyo", "tokyo", price: 1);
        Assert.Equal(["lon", "fra", "tyo"], Route(_london, new RoutingPreferences { Sort = RouteSort.Price }).Ids);
        Add("tyo", "tokyo", price: 1);
        Assert.Equal(["lon", "fra", "tyo"], Route(_london, new RoutingPreferences { Sort = RouteSort.Price }).Ids);
        Assert.Throws<ArgumentOutOfRangeException>(() => _registry.PublishPower("x", new NodePowerState("s", NodeRegistry.MaxPowerPriceMicroUsdPerMwh + 1, 0, 0, 0, 0)));
        Assert.Throws<ArgumentOutOfRangeException>(() => _registry.PublishPower("x", new NodePowerState("s", 0, -1, 0, 0, 0)));
        Assert.Throws<ArgumentOutOfRangeException>(() => _registry.PublishPower("x", new NodePowerState("s", 0, 0, 0, 0, (PowerFlags)4)));
    }
}
