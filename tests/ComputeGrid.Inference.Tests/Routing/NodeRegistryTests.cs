using ComputeGrid.Inference.Routing;
using Microsoft.Extensions.Time.Testing;

namespace ComputeGrid.Inference.Tests.Routing;

public class NodeRegistryTests
{
    private const string Model = "all-MiniLM-L6-v2";
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 8, 16, 12, 0, 0, TimeSpan.Zero));

    private NodeRegistry NewRegistry(int maxNodes = 64) =>
        new(LatencyMatrixTests.Real, _time, new NodeRegistryOptions { MaxNodes = maxNodes });

    private static NodeRegistration Node(string id, int capacity = 4, string region = "frankfurt", long price = 10, params string[] models) =>
        new(id, region, models.Length == 0 ? [Model] : models, price, capacity, Enumerable.Range(0, 32).Select(i => (byte)i).ToArray());

    [Fact]
    public void Capacity_holds_under_a_concurrent_burst()
    {
        var registry = NewRegistry();
        NodeHandle h = registry.Register(Node("n", capacity: 5));
        const int threads = 16;
        int granted = 0;
        using var barrier = new Barrier(threads);
        var workers = Enumerable.Range(0, threads).Select(_ => new Thread(() =>
        {
            barrier.SignalAndWait();
            if (registry.TryAcquire(h)) Interlocked.Increment(ref granted);
        })).ToList();
        workers.ForEach(t => t.Start());
        workers.ForEach(t => t.Join());
        Assert.Equal(5, granted);
        Assert.True(registry.TryGetNode("n", out var snapshot));
        Assert.Equal(5, snapshot.Inflight);
    }

    [Fact]
    public void Capacity_holds_under_concurrent_acquire_and_release()
    {
        var registry = NewRegistry();
        const int capacity = 3;
        NodeHandle h = registry.Register(Node("n", capacity));
        int concurrent = 0, maxSeen = 0, successes = 0;
        const int threads = 8, iterations = 20_000;
        var workers = Enumerable.Range(0, threads).Select(_ => new Thread(() =>
        {
            for (int i = 0; i < iterations; i++)
            {
                if (!registry.TryAcquire(h)) continue;
                int now = Interlocked.Increment(ref concurrent);
                int seen;
                while (now > (seen = Volatile.Read(ref maxSeen)) && Interlocked.CompareExchange(ref maxSeen, now, seen) != seen) { }
                Interlocked.Increment(ref successes);
                if ((i & 7) == 0) Thread.Yield();
                Interlocked.Decrement(ref concurrent);
                Assert.True(registry.Release(h));
            }
        })).ToList();
        workers.ForEach(t => t.Start());
        workers.ForEach(t => t.Join());
        Assert.InRange(maxSeen, 1, capacity);
        Assert.True(successes > 0);
        Assert.True(registry.TryGetNode("n", out var snapshot));
        Assert.Equal(0, snapshot.Inflight);
        Assert.Throws<InvalidOperationException>(() => registry.Release(h));
    }

    [Fact]
    public void Removed_nodes_have_stale_handles_and_their_slot_is_reused()
    {
        var registry = NewRegistry();
        NodeHandle a = registry.Register(Node("a"));
        Assert.True(registry.TryAcquire(a));
        Assert.True(registry.Remove("a"));
        Assert.False(registry.Remove("a"));
        Assert.Equal(0, registry.Count);
        Assert.Null(registry.NodeIdOf(a));
        Assert.False(registry.TryAcquire(a));
        Assert.False(registry.Release(a)); // the lease died with the node
        Assert.False(registry.MarkFailed(a));
        NodeHandle b = registry.Register(Node("b"));
        Assert.Equal(a.Slot, b.Slot);
        Assert.NotEqual(a.Generation, b.Generation);
        Assert.Equal("b", registry.NodeIdOf(b));
        Assert.True(registry.TryGetNode("b", out var snapshot));
        Assert.Equal(0, snapshot.Inflight);
        Assert.False(registry.TryAcquire(default));
        Assert.Null(registry.NodeIdOf(default));
    }

    [Fact]
    public void Re_registration_updates_in_place_and_keeps_held_requests()
    {
        var registry = NewRegistry();
        NodeHandle h = registry.Register(Node("n", capacity: 4));
        Assert.True(registry.TryAcquire(h));
        Assert.True(registry.MarkFailed(h));
        NodeHandle again = registry.Register(Node("n", capacity: 8, region: "tokyo", price: 3, models: ["x", "y", "x"]));
        Assert.Equal(h, again);
        Assert.True(registry.TryGetNode("n", out var s));
        Assert.Equal("tokyo", s.Region);
        Assert.Equal(["x", "y"], s.Models);
        Assert.Equal(3, s.PriceMicroUsdPer1kTokens);
        Assert.Equal(8, s.Capacity);
        Assert.Equal(1, s.Inflight);
        Assert.False(s.Failed);
        Assert.True(s.Healthy);
        Assert.Equal(["x", "y"], registry.Models);
    }

    [Fact]
    public void Heartbeats_record_load_and_time()
    {
        var registry = NewRegistry();
        registry.Register(Node("n"));
        _time.Advance(TimeSpan.FromMilliseconds(1500));
        Assert.True(registry.Heartbeat("n", new NodeHeartbeat(3, 2, 12.3456)));
        Assert.False(registry.Heartbeat("unknown", new NodeHeartbeat(0, 0, 0)));
        Assert.True(registry.TryGetNode("n", out var s));
        Assert.Equal(3, s.QueueLength);
        Assert.Equal(2, s.ReportedInflight);
        Assert.Equal(12_346, s.EwmaModelMicros);
        Assert.Equal(_time.GetUtcNow(), s.LastHeartbeat);
        Assert.Throws<ArgumentOutOfRangeException>(() => registry.Heartbeat("n", new NodeHeartbeat(-1, 0, 0)));
        Assert.Throws<ArgumentOutOfRangeException>(() => registry.Heartbeat("n", new NodeHeartbeat(0, 0, double.NaN)));
        Assert.Throws<ArgumentOutOfRangeException>(() => registry.Heartbeat("n", new NodeHeartbeat(0, 0, -1)));
    }

    [Fact]
    public void Snapshot_lists_every_node_in_id_order_with_a_copy_of_its_key()
    {
        var registry = NewRegistry();
        foreach (string id in new[] { "c", "a", "B" }) registry.Register(Node(id, region: "Washington DC"));
        var all = registry.Snapshot();
        Assert.Equal(["B", "a", "c"], all.Select(n => n.NodeId));
        Assert.All(all, n => Assert.Equal("washington-dc", n.Region));
        all[0].PublicKey[0] = 99;
        Assert.Equal(0, registry.Snapshot()[0].PublicKey[0]);
        Assert.Equal(3, registry.Count);
    }

    [Fact]
    public void Registrations_are_validated()
    {
        var registry = NewRegistry(maxNodes: 2);
        Assert.Throws<ArgumentException>(() => registry.Register(Node("")));
        Assert.Throws<ArgumentException>(() => registry.Register(Node("x", region: "mars")));
        Assert.Throws<ArgumentException>(() => registry.Register(Node("x", capacity: 0)));
        Assert.Throws<ArgumentException>(() => registry.Register(Node("x", price: -1)));
        Assert.Throws<ArgumentException>(() => registry.Register(Node("x", price: NodeRegistry.MaxPriceMicroUsdPer1kTokens + 1)));
        Assert.Throws<ArgumentException>(() => registry.Register(new NodeRegistration("x", "tokyo", [], 1, 1, new byte[32])));
        Assert.Throws<ArgumentException>(() => registry.Register(new NodeRegistration("x", "tokyo", ["m"], 1, 1, ReadOnlyMemory<byte>.Empty)));
        registry.Register(Node("a"));
        registry.Register(Node("b"));
        Assert.Throws<InvalidOperationException>(() => registry.Register(Node("c")));
        registry.Register(Node("b", price: 2)); // an update still fits
        Assert.Throws<ArgumentOutOfRangeException>(() => new NodeRegistry(LatencyMatrixTests.Real, _time,
            new NodeRegistryOptions { HeartbeatTimeout = TimeSpan.Zero }));
    }

    [Fact]
    public void Register_all_checks_everything_first_and_rebuilds_once()
    {
        var registry = NewRegistry(maxNodes: 4);
        Assert.Throws<ArgumentException>(() => registry.RegisterAll([Node("a"), Node("b", region: "mars")]));
        Assert.Equal(0, registry.Count);
        Assert.Throws<InvalidOperationException>(() => registry.RegisterAll([Node("a"), Node("b"), Node("c"), Node("d"), Node("e")]));
        Assert.Equal(0, registry.Count);
        NodeHandle[] handles = registry.RegisterAll([Node("b"), Node("a", price: 1), Node("a", price: 2)]);
        Assert.Equal(3, handles.Length);
        Assert.Equal(handles[1], handles[2]); // the same node, updated
        Assert.Equal(["a", "b"], registry.Snapshot().Select(n => n.NodeId));
        Assert.Equal(2, registry.Snapshot()[0].PriceMicroUsdPer1kTokens);
        var router = new Router(registry);
        var ranked = new NodeHandle[2];
        RouteDecision d = router.Choose(new RouteRequest(0, Model, new RoutingPreferences { Sort = RouteSort.Price }), ranked);
        Assert.Equal(2, d.Count);
        Assert.Equal(handles[1], d.Best);
    }

    [Fact]
    public void Routing_stays_valid_while_the_fleet_changes_on_other_threads()
    {
        var registry = NewRegistry(maxNodes: 256);
        var router = new Router(registry);
        for (int i = 0; i < 64; i++) registry.Register(Node($"n{i:D3}", capacity: 2, region: LatencyMatrixTests.Real.Regions[i % 13]));
        using var stop = new CancellationTokenSource(TimeSpan.FromMilliseconds(400));
        Exception? failure = null;
        var writer = new Thread(() =>
        {
            try
            {
                var random = new Random(7);
                while (!stop.IsCancellationRequested)
                {
                    string id = $"n{random.Next(96):D3}";
                    switch (random.Next(4))
                    {
                        case 0: registry.Register(Node(id, capacity: random.Next(1, 4), region: LatencyMatrixTests.Real.Regions[random.Next(13)])); break;
                        case 1: registry.Heartbeat(id, new NodeHeartbeat(random.Next(3), random.Next(3), random.Next(20))); break;
                        case 2: registry.MarkFailed(id); break;
                        default: registry.Remove(id); break;
                    }
                }
            }
            catch (Exception e) { failure = e; }
        });
        writer.Start();
        var ranked = new NodeHandle[4];
        long routed = 0;
        while (!stop.IsCancellationRequested)
        {
            RouteDecision d = router.Choose(new RouteRequest(3, Model), ranked);
            if (!d.IsRouted) continue;
            routed++;
            Assert.InRange(d.Count, 1, 4);
            if (registry.TryAcquire(d.Best)) Assert.True(registry.Release(d.Best) || registry.NodeIdOf(d.Best) is null);
        }
        writer.Join();
        Assert.Null(failure);
        Assert.True(routed > 0);
    }
}
