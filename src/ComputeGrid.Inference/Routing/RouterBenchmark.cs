using System.Diagnostics;
using System.Runtime.CompilerServices;

namespace ComputeGrid.Inference.Routing;

/// <summary>The outcome of one <see cref="RouterBenchmark"/> run.</summary>
/// <param name="Nodes">The fleet size.</param>
/// <param name="Regions">The number of regions in the latency matrix.</param>
/// <param name="Decisions">Decisions made in the measured loop.</param>
/// <param name="Elapsed">The measured loop's duration.</param>
/// <param name="DecisionsPerSecond">Decisions per second on one thread.</param>
/// <param name="AllocatedBytes">Bytes allocated by the measuring thread during the measured loop (0 expected).</param>
/// <param name="Routed">Decisions that found a node (the rest found none, by the mix's preferences).</param>
/// <param name="Checksum">A sum over the decisions, so the work cannot be optimised away and runs can be compared.</param>
/// <param name="CpuTime">Processor time the process used during the measured loop (all threads; the loop allocates
/// nothing and the process is otherwise idle, so this is almost all the measuring thread's).</param>
public readonly record struct RouterBenchmarkResult(
    int Nodes,
    int Regions,
    long Decisions,
    TimeSpan Elapsed,
    double DecisionsPerSecond,
    long AllocatedBytes,
    long Routed,
    long Checksum,
    TimeSpan CpuTime)
{
    /// <summary>
    /// Decisions per second of processor time: on a shared machine, where the measuring thread does not get a whole
    /// core, this is closer to one core's rate than <see cref="DecisionsPerSecond"/> (wall clock).
    /// </summary>
    public double DecisionsPerCpuSecond => CpuTime > TimeSpan.Zero ? Decisions / CpuTime.TotalSeconds : double.NaN;
}

/// <summary>
/// Measures <see cref="Router.Choose"/> on one thread over a seeded fleet (for <c>computegrid bench inference</c>).
/// </summary>
/// <remarks>
/// The fleet: <c>nodes</c> nodes spread at random over the latency matrix's regions, every one serving the benchmarked
/// model (so every node is a candidate for every decision; some also serve other models), prices 5 … 60 micro-USD per
/// 1,000 tokens, capacities 4 … 64, reported queue, inflight and EWMA model time (3 … 30 ms) at random, about a quarter of
/// each node's capacity held through <see cref="NodeRegistry.TryAcquire"/>, 3 % marked failed and 2 % with a stale
/// heartbeat. The requests: 4,096 pre-built, from random regions, with a mix of sorts (balanced, latency, price),
/// 25 % with a max price, 15 % with a max latency, 10 % with an only-set, 10 % with an ignore-set, 10 % without
/// fallbacks; up to 3 nodes ranked. The registry's clock is a frozen <see cref="TimeProvider"/> so no node goes stale
/// mid-run. After a warm-up of at least 300 ms, the loop runs for <c>duration</c>, reading the clock every
/// 1,024 decisions; allocation is measured over the loop with <see cref="GC.GetAllocatedBytesForCurrentThread"/>.
/// </remarks>
public static class RouterBenchmark
{
    /// <summary>The model every benchmark node serves.</summary>
    public const string Model = "all-MiniLM-L6-v2";

    /// <summary>How many ranked nodes each decision asks for.</summary>
    public const int Ranked = 3;

    private const int RequestCount = 4096;

    /// <summary>Runs the benchmark with the repository's latency data (<see cref="LatencyMatrix.LoadDefault"/>).</summary>
    /// <param name="nodes">The fleet size, 1 … 1,048,576.</param>
    /// <param name="duration">How long the measured loop runs (positive).</param>
    /// <param name="seed">The seed of the fleet and the request mix.</param>
    /// <returns>The measurement.</returns>
    /// <exception cref="FileNotFoundException">The latency data file is missing.</exception>
    public static RouterBenchmarkResult Run(int nodes, TimeSpan duration, int seed) =>
        Run(LatencyMatrix.LoadDefault(), nodes, duration, seed);

    /// <summary>Runs the benchmark over the given regions.</summary>
    /// <param name="matrix">The regions and latencies.</param>
    /// <param name="nodes">The fleet size, 1 … 1,048,576.</param>
    /// <param name="duration">How long the measured loop runs (positive).</param>
    /// <param name="seed">The seed of the fleet and the request mix.</param>
    /// <returns>The measurement.</returns>
    public static RouterBenchmarkResult Run(LatencyMatrix matrix, int nodes, TimeSpan duration, int seed)
    {
        ArgumentNullException.ThrowIfNull(matrix);
        ArgumentOutOfRangeException.ThrowIfLessThan(nodes, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(nodes, 1 << 20);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(duration, TimeSpan.Zero);

        var (router, requests) = BuildFleet(matrix, nodes, seed);
        var ranked = new NodeHandle[Ranked];

        // Warm-up: the hot methods are compiled optimised up front (AggressiveOptimization); this settles the caches,
        // the branch predictors and any remaining tiering of the code around them.
        long warmChecksum = 0, warmRouted = 0;
        var warm = Stopwatch.StartNew();
        for (int round = 0; round < 50 || warm.ElapsedMilliseconds < 300; round++)
            RunBatch(router, requests, ranked, round, ref warmChecksum, ref warmRouted);

        long checksum = 0, routed = 0, decisions = 0;
        using var process = Process.GetCurrentProcess();
        TimeSpan cpu0 = process.TotalProcessorTime;
        long allocated0 = GC.GetAllocatedBytesForCurrentThread();
        long start = Stopwatch.GetTimestamp();
        long end = start + (long)(duration.TotalSeconds * Stopwatch.Frequency);
        long now = start;
        int batch = 0;
        while (now < end)
        {
            RunBatch(router, requests, ranked, batch++, ref checksum, ref routed);
            decisions += BatchSize;
            now = Stopwatch.GetTimestamp();
        }
        long allocated = GC.GetAllocatedBytesForCurrentThread() - allocated0;
        TimeSpan elapsed = Stopwatch.GetElapsedTime(start, now);
        process.Refresh();
        TimeSpan cpu = process.TotalProcessorTime - cpu0;
        return new RouterBenchmarkResult(nodes, matrix.Count, decisions, elapsed, decisions / elapsed.TotalSeconds,
            allocated, routed, checksum, cpu);
    }

    private const int BatchSize = 1024;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void RunBatch(Router router, RouteRequest[] requests, NodeHandle[] ranked, int batch,
        ref long checksum, ref long routed)
    {
        int offset = (batch * BatchSize) & (RequestCount - 1);
        for (int i = 0; i < BatchSize; i++)
        {
            RouteDecision decision = router.Choose(in requests[offset + i], ranked);
            if (decision.IsRouted)
            {
                routed++;
                checksum += decision.Best.Slot + decision.Count + decision.BestLatencyMicros;
            }
            else
            {
                checksum += (int)decision.Status;
            }
        }
    }

    // The fleet and request mix described in the class remarks.
    internal static (Router Router, RouteRequest[] Requests) BuildFleet(LatencyMatrix matrix, int nodes, int seed)
    {
        var random = new Random(seed);
        var time = new FrozenTimeProvider(new DateTimeOffset(2026, 8, 16, 0, 0, 0, TimeSpan.Zero));
        var registry = new NodeRegistry(matrix, time, new NodeRegistryOptions
        {
            MaxNodes = nodes,
            HeartbeatTimeout = TimeSpan.FromSeconds(3),
        });
        string[] otherModels = ["bge-small-en-v1.5", "e5-small-v2", "gte-small"];
        byte[] key = new byte[32];
        var registrations = new NodeRegistration[nodes];
        for (int i = 0; i < nodes; i++)
        {
            var models = new List<string> { Model };
            foreach (string m in otherModels)
                if (random.Next(3) == 0) models.Add(m);
            random.NextBytes(key);
            registrations[i] = new NodeRegistration($"node-{i:D7}", matrix.Regions[random.Next(matrix.Count)], models,
                random.Next(5, 61), random.Next(4, 65), key.ToArray());
        }
        NodeHandle[] handles = registry.RegisterAll(registrations);
        for (int i = 0; i < nodes; i++)
        {
            string id = registrations[i].NodeId;
            int capacity = registrations[i].Capacity;
            registry.Heartbeat(id, new NodeHeartbeat(random.Next(0, capacity / 2 + 1), random.Next(0, capacity),
                3 + random.NextDouble() * 27));
            int hold = random.Next(0, capacity / 2 + 1);
            for (int h = 0; h < hold; h++) registry.TryAcquire(handles[i]);
            int health = random.Next(100);
            if (health < 3)
            {
                registry.MarkFailed(handles[i]);
            }
            else if (health < 5)
            {
                // A heartbeat taken 4 s ago: out of rotation by the 3 s timeout.
                time.Offset = TimeSpan.FromSeconds(-4);
                registry.Heartbeat(id, new NodeHeartbeat(0, 0, 10));
                time.Offset = TimeSpan.Zero;
            }
        }

        var requests = new RouteRequest[RequestCount];
        for (int i = 0; i < RequestCount; i++)
        {
            RegionSet? only = random.Next(10) == 0
                ? RegionSet.Of(random.Next(matrix.Count), random.Next(matrix.Count), random.Next(matrix.Count))
                : null;
            var preferences = new RoutingPreferences
            {
                Sort = (RouteSort)random.Next(3),
                MaxPriceMicroUsdPer1kTokens = random.Next(4) == 0 ? random.Next(10, 50) : null,
                MaxLatencyMs = random.Next(100) < 15 ? random.Next(20, 200) : null,
                Only = only,
                Ignore = random.Next(10) == 0 ? RegionSet.Of(random.Next(matrix.Count)) : RegionSet.Empty,
                AllowFallbacks = random.Next(10) != 0,
            };
            requests[i] = new RouteRequest(random.Next(matrix.Count), Model, preferences);
        }
        return (new Router(registry), requests);
    }

    // A clock that stands still (shifted by Offset while the fleet is built), so nodes do not go stale mid-run.
    private sealed class FrozenTimeProvider(DateTimeOffset now) : TimeProvider
    {
        public TimeSpan Offset { get; set; }

        public override DateTimeOffset GetUtcNow() => now + Offset;

        public override long GetTimestamp() => (now + Offset).UtcTicks;

        public override long TimestampFrequency => TimeSpan.TicksPerSecond;
    }
}
