using ComputeGrid.Inference.Routing;
using Microsoft.Extensions.Time.Testing;
using Xunit.Abstractions;
using Xunit.Sdk;

namespace ComputeGrid.Inference.Tests.Routing;

/// <summary>Router against BruteForceRouter on seeded random small fleets and preferences.</summary>
public class RouterDifferentialTests(ITestOutputHelper output)
{
    private const int Cases = 3_000;
    private const int RequestsPerCase = 6;
    private const int BaseSeed = 0x5EED_0001;

    private static readonly string[] IdPool =
        ["a", "b", "A", "B", "n1", "n10", "n2", "node-x", "Node-x", "z", "ä", "a0", "0", "n1 "];
    private static readonly string[] ModelPool = ["m1", "m2", "m3"];
    private static readonly long[] Prices = [0, 10, 10, 20, 30, 1_000, NodeRegistry.MaxPriceMicroUsdPer1kTokens];
    private static readonly double[] Ewmas = [0, 1, 2.5, 10, 33.3337, 250];
    // Site power prices (micro-USD per MWh): negative, ordinary, a spike, the bounds; energies per 1,000 tokens (mJ).
    private static readonly long[] PowerPrices =
        [-NodeRegistry.MaxPowerPriceMicroUsdPerMwh, -30_000_000, 0, 25_000_000, 25_000_000, 9_000_000_000, NodeRegistry.MaxPowerPriceMicroUsdPerMwh];
    private static readonly long[] Energies = [0, 1, 3_600, 500_000, 3_600_000_000 / 1000, NodeRegistry.MaxMilliJoulesPer1kTokens];
    // Mostly short steps; sometimes one right at the 3 s heartbeat timeout (just before, at, just after).
    private static readonly TimeSpan[] Steps =
    [
        TimeSpan.Zero, TimeSpan.Zero, TimeSpan.FromTicks(1), TimeSpan.FromMilliseconds(200), TimeSpan.FromMilliseconds(500),
        TimeSpan.FromMilliseconds(700), TimeSpan.FromMilliseconds(2999), TimeSpan.FromSeconds(3), TimeSpan.FromMilliseconds(3001),
    ];

    // How often the power rules decided something, so the comparison is shown to cover them.
    private sealed class PowerSeen
    {
        public int PowerSorted, AvoidedBest, AvoidedDemoted;
    }

    [Fact]
    public void Router_agrees_with_the_brute_force_reference()
    {
        var statuses = new Dictionary<RouteStatus, int>();
        int multiRanked = 0;
        var power = new PowerSeen();
        for (int c = 0; c < Cases; c++)
        {
            int seed = BaseSeed + c;
            try
            {
                RunCase(seed, statuses, ref multiRanked, power);
            }
            catch (Exception e) when (e is not XunitException || !e.Message.StartsWith("seed ", StringComparison.Ordinal))
            {
                throw new XunitException($"seed {seed} (case {c}): {e}");
            }
        }
        output.WriteLine($"{Cases} fleets × {RequestsPerCase} requests: "
            + string.Join(", ", statuses.OrderBy(kv => kv.Key).Select(kv => $"{kv.Key} {kv.Value}")) + $"; ranked > 1: {multiRanked}"
            + $"; power sort {power.PowerSorted}, avoided node best {power.AvoidedBest}, avoided node ranked after another {power.AvoidedDemoted}");
        // The power rules must decide often enough to be compared.
        Assert.True(power.PowerSorted >= 2000, $"only {power.PowerSorted} routed decisions under the power sort");
        Assert.True(power.AvoidedBest >= 100, $"only {power.AvoidedBest} decisions served by an avoided node (none else eligible)");
        Assert.True(power.AvoidedDemoted >= 100, $"only {power.AvoidedDemoted} decisions that ranked an avoided node after another");
        // The generator must reach every outcome, or the comparison proves little.
        foreach (RouteStatus status in Enum.GetValues<RouteStatus>())
            Assert.True(statuses.GetValueOrDefault(status) >= 20, $"only {statuses.GetValueOrDefault(status)} decisions with status {status}");
        Assert.True(multiRanked >= 2000, $"only {multiRanked} decisions ranked more than one node");
    }

    [Fact]
    public void Router_agrees_with_the_brute_force_reference_on_larger_fleets()
    {
        // 30 to 400 nodes over a few regions: the router's pruning (regions skipped, price-ordered scans stopped early,
        // nodes skipped on RTT + EWMA) is exercised far more than on tiny fleets.
        var statuses = new Dictionary<RouteStatus, int>();
        int multiRanked = 0;
        for (int c = 0; c < 150; c++)
        {
            int seed = BaseSeed + 1_000_000 + c;
            try
            {
                RunCase(seed, statuses, ref multiRanked, new PowerSeen(), large: true);
            }
            catch (Exception e) when (e is not XunitException || !e.Message.StartsWith("seed ", StringComparison.Ordinal))
            {
                throw new XunitException($"seed {seed} (large case {c}): {e}");
            }
        }
        output.WriteLine("large fleets: " + string.Join(", ", statuses.OrderBy(kv => kv.Key).Select(kv => $"{kv.Key} {kv.Value}")) + $"; ranked > 1: {multiRanked}");
        Assert.True(statuses.GetValueOrDefault(RouteStatus.Routed) >= 500);
    }

    private static void RunCase(int seed, Dictionary<RouteStatus, int> statuses, ref int multiRanked, PowerSeen power, bool large = false)
    {
        var random = new Random(seed);
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 8, 16, 12, 0, 0, TimeSpan.Zero));
        var matrix = LatencyMatrixTests.Real;
        var registry = new NodeRegistry(matrix, time, new NodeRegistryOptions { MaxNodes = large ? 512 : 16 });
        var weight = random.Next(3) switch { 0 => 0L, 1 => 1_000L, _ => (long)random.Next(1, 1_000_000) };
        var options = new RouterOptions { BalancedMicrosPerPriceUnit = weight };
        var router = new Router(registry, options);
        var reference = new BruteForceRouter(registry, options);

        // A few regions per fleet, so nodes share regions and scores tie.
        int[] regions = [.. Enumerable.Range(0, random.Next(1, large ? 8 : 4)).Select(_ => random.Next(matrix.Count))];
        int nodeCount = large ? random.Next(30, 401) : random.Next(1, 13);
        string[] ids = large
            ? [.. Enumerable.Range(0, nodeCount).Select(i => $"{(char)('a' + random.Next(3))}{i}")]
            : [.. IdPool.OrderBy(_ => random.Next()).Take(nodeCount)];
        var handles = new List<NodeHandle>();
        foreach (string id in ids)
        {
            NodeRegistration registration = RandomRegistration(random, id, matrix.Regions[regions[random.Next(regions.Length)]]);
            handles.Add(registry.Register(registration));
            if (random.Next(4) != 0)
                registry.Heartbeat(id, new NodeHeartbeat(random.Next(0, 4), random.Next(0, 4), Ewmas[random.Next(Ewmas.Length)]));
            int hold = random.Next(0, registration.Capacity + 1);
            for (int h = 0; h < hold; h++) Assert.True(registry.TryAcquire(handles[^1]));
            if (!large || random.Next(40) == 0) time.Advance(Steps[random.Next(random.Next(6) == 0 ? Steps.Length : 6)]);
        }
        foreach (NodeHandle handle in handles)
        {
            int roll = random.Next(20);
            if (roll < 2) registry.MarkFailed(handle);
            else if (roll == 2) registry.Remove(registry.NodeIdOf(handle)!);
            else if (roll == 3)
            {
                // Re-registration in place (possibly another region, models, capacity below what is held).
                string id = registry.NodeIdOf(handle)!;
                registry.Register(RandomRegistration(random, id, matrix.Regions[regions[random.Next(regions.Length)]]));
            }
        }
        // Sites publish power states for some nodes (some before the node registers, some cleared again).
        foreach (string id in ids.Append("late"))
        {
            int roll = random.Next(8);
            if (roll < 4) registry.PublishPower(id, RandomPower(random));
            else if (roll == 4)
            {
                registry.PublishPower(id, RandomPower(random));
                registry.ClearPower(id);
            }
        }
        if (random.Next(3) == 0)
        {
            // A node that once left and came back into a reused slot.
            registry.Register(RandomRegistration(random, "late", matrix.Regions[regions[0]]));
        }
        time.Advance(Steps[random.Next(random.Next(6) == 0 ? Steps.Length : 6)]);

        Span<NodeHandle> fast = stackalloc NodeHandle[8];
        Span<NodeHandle> slow = stackalloc NodeHandle[8];
        for (int r = 0; r < (large ? 30 : RequestsPerCase); r++)
        {
            var request = new RouteRequest(
                random.Next(3) == 0 ? regions[random.Next(regions.Length)] : random.Next(matrix.Count),
                random.Next(8) == 0 ? "m4" : ModelPool[random.Next(ModelPool.Length)],
                RandomPreferences(random, matrix, regions));
            int length = random.Next(1, 6);
            fast.Clear();
            slow.Clear();
            RouteDecision got = router.Choose(in request, fast[..length]);
            RouteDecision want = reference.Choose(in request, slow[..length]);
            if (got != want || !fast.SequenceEqual(slow))
            {
                throw new XunitException($"seed {seed}, request {r} ({request.Region}, {request.Model}, {request.Preferences}, k={length}):\n"
                    + $"  router: {got} [{string.Join(", ", fast[..got.Count].ToArray().Select(registry.NodeIdOf))}]\n"
                    + $"  brute:  {want} [{string.Join(", ", slow[..want.Count].ToArray().Select(registry.NodeIdOf))}]\n"
                    + "  nodes:\n    " + string.Join("\n    ", registry.Snapshot()));
            }
            statuses[got.Status] = statuses.GetValueOrDefault(got.Status) + 1;
            if (got.Count > 1) multiRanked++;
            if (got.IsRouted)
            {
                bool Avoided(NodeHandle h) => registry.TryGetNode(registry.NodeIdOf(h)!, out NodeSnapshot? n) && n.Power is { Avoid: true };
                if (request.Preferences!.Sort == RouteSort.Power) power.PowerSorted++;
                if (Avoided(got.Best)) power.AvoidedBest++;
                for (int i = 1; i < got.Count; i++)
                    if (Avoided(fast[i]) && !Avoided(fast[0])) { power.AvoidedDemoted++; break; }
            }
            if (got.IsRouted)
            {
                // The chosen node is really eligible: healthy, serves the model, has room.
                Assert.True(registry.TryGetNode(registry.NodeIdOf(got.Best)!, out NodeSnapshot? best));
                Assert.True(best.Healthy && !best.Failed && best.Models.Contains(request.Model) && best.Inflight < best.Capacity);
                Assert.True(request.Preferences!.AllowFallbacks || got.Count == 1);
            }
        }
    }

    private static NodePowerState RandomPower(Random random) => new(
        "site-" + random.Next(3),
        PowerPrices[random.Next(PowerPrices.Length)],
        Energies[random.Next(Energies.Length)],
        random.Next(0, 5_000),
        random.Next(0, 5_000),
        (PowerFlags)(random.Next(3) == 0 ? random.Next(1, 4) : 0));

    private static NodeRegistration RandomRegistration(Random random, string id, string region)
    {
        string[] models = [.. ModelPool.Where(_ => random.Next(2) == 0)];
        if (models.Length == 0) models = [ModelPool[random.Next(ModelPool.Length)]];
        return new NodeRegistration(id, region, models, Prices[random.Next(Prices.Length)], random.Next(1, 5), new byte[32]);
    }

    private static RoutingPreferences RandomPreferences(Random random, LatencyMatrix matrix, int[] regions)
    {
        RegionSet RandomSet()
        {
            var set = RegionSet.Empty;
            int n = random.Next(0, 3);
            for (int i = 0; i < n; i++)
                set = set.With(random.Next(2) == 0 ? regions[random.Next(regions.Length)] : random.Next(matrix.Count));
            return set;
        }
        return new RoutingPreferences
        {
            Sort = (RouteSort)random.Next(4),
            MaxPriceMicroUsdPer1kTokens = random.Next(4) == 0 ? Prices[random.Next(Prices.Length)] : null,
            MaxLatencyMs = random.Next(5) == 0 ? random.Next(0, 400) : null,
            Only = random.Next(5) == 0 ? RandomSet() : null,
            Ignore = random.Next(5) == 0 ? RandomSet() : RegionSet.Empty,
            AllowFallbacks = random.Next(5) != 0,
        };
    }
}
