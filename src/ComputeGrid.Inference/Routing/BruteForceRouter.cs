namespace ComputeGrid.Inference.Routing;

/// <summary>
/// The plain reference for <see cref="Router"/>: it takes a <see cref="NodeRegistry.Snapshot"/>, computes every node's
/// estimated latency and sort keys with LINQ, filters, and orders all eligible nodes by (keys, node id). Slow and
/// allocating, for tests and checks only; it must give the same decisions as <see cref="Router"/> (see there for the
/// rules).
/// </summary>
/// <remarks>
/// Health is judged here from wall-clock readings (<see cref="TimeProvider.GetUtcNow"/> against
/// <see cref="NodeSnapshot.LastHeartbeat"/>), independently of the registry's timestamp bookkeeping, so the two agree
/// exactly under a fake clock (where both advance together) and may differ at the boundary under a real one.
/// </remarks>
public sealed class BruteForceRouter
{
    private readonly NodeRegistry _registry;
    private readonly long _priceWeight;

    /// <summary>A reference router over <paramref name="registry"/>.</summary>
    /// <param name="registry">The nodes.</param>
    /// <param name="options">Settings; null for the defaults (use the same as the router compared with).</param>
    public BruteForceRouter(NodeRegistry registry, RouterOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(registry);
        _registry = registry;
        _priceWeight = (options ?? new RouterOptions()).BalancedMicrosPerPriceUnit;
    }

    /// <summary>Every eligible node for the request with its estimated latency, best first (not truncated).</summary>
    /// <param name="request">The request.</param>
    /// <returns>The eligible nodes in rank order, and the decision status (why none, when the list is empty).</returns>
    public (IReadOnlyList<(NodeSnapshot Node, long LatencyMicros)> Ranked, RouteStatus Status) RankAll(in RouteRequest request)
    {
        LatencyMatrix matrix = _registry.Matrix;
        if ((uint)request.Region >= (uint)matrix.Count) throw new ArgumentOutOfRangeException(nameof(request));
        if (request.Model is null) throw new ArgumentException("The request names no model.", nameof(request));
        RoutingPreferences p = request.Preferences ?? RoutingPreferences.Default;
        int from = request.Region;
        string model = request.Model;
        DateTimeOffset now = _registry.Time.GetUtcNow();

        var scored = _registry.Snapshot()
            .Where(n => n.Models.Contains(model))
            .Select(n => new
            {
                Node = n,
                Healthy = !n.Failed && now - n.LastHeartbeat < _registry.HeartbeatTimeout,
                Latency = matrix.RttMicros(from, n.RegionIndex) + n.EwmaModelMicros
                          + (n.QueueLength + (long)Math.Max(n.ReportedInflight, n.Inflight)) * n.EwmaModelMicros / n.Capacity,
            })
            .ToList();
        if (scored.Count == 0) return ([], RouteStatus.NoNodeServesModel);

        var healthy = scored.Where(x => x.Healthy).ToList();
        if (healthy.Count == 0) return ([], RouteStatus.NoHealthyNode);

        var matching = healthy
            .Where(x => p.Only is not { } only || only.Contains(x.Node.RegionIndex))
            .Where(x => !p.Ignore.Contains(x.Node.RegionIndex))
            .Where(x => p.MaxPriceMicroUsdPer1kTokens is not { } max || x.Node.PriceMicroUsdPer1kTokens <= max)
            .Where(x => p.MaxLatencyMs is not { } ms || x.Latency <= ms * 1000L)
            .ToList();
        if (matching.Count == 0) return ([], RouteStatus.FilteredByPreferences);

        var free = matching.Where(x => x.Node.Inflight < x.Node.Capacity).ToList();
        if (free.Count == 0) return ([], RouteStatus.AllBusy);

        // A node whose site is in a peak hour or an emergency comes after every other eligible node, whatever the sort.
        var byPower = free.OrderBy(x => x.Node.Power is { Avoid: true });
        var ordered = p.Sort switch
        {
            RouteSort.Latency => byPower.ThenBy(x => x.Latency).ThenBy(x => x.Node.PriceMicroUsdPer1kTokens),
            RouteSort.Price => byPower.ThenBy(x => x.Node.PriceMicroUsdPer1kTokens).ThenBy(x => x.Latency),
            RouteSort.Power => byPower.ThenBy(x => (Int128)x.Node.PriceMicroUsdPer1kTokens * 1000 + (x.Node.Power?.PowerCostNanoUsdPer1kTokens ?? 0))
                .ThenBy(x => x.Latency),
            _ => byPower.ThenBy(x => x.Latency + _priceWeight * x.Node.PriceMicroUsdPer1kTokens).ThenBy(x => x.Latency),
        };
        return ([.. ordered.ThenBy(x => x.Node.NodeId, StringComparer.Ordinal).Select(x => (x.Node, x.Latency))], RouteStatus.Routed);
    }

    /// <summary>The same contract as <see cref="Router.Choose"/>, computed the plain way.</summary>
    /// <param name="request">The request.</param>
    /// <param name="rankedOut">Receives the best nodes, best first.</param>
    /// <returns>The decision.</returns>
    public RouteDecision Choose(in RouteRequest request, Span<NodeHandle> rankedOut)
    {
        if (rankedOut.IsEmpty) throw new ArgumentException("The ranked output must hold at least one node.", nameof(rankedOut));
        RoutingPreferences p = request.Preferences ?? RoutingPreferences.Default;
        var (ranked, status) = RankAll(in request);
        if (status != RouteStatus.Routed) return RouteDecision.NoNode(status);
        int k = p.AllowFallbacks ? Math.Min(rankedOut.Length, Router.MaxRanked) : 1;
        var top = ranked.Take(k).ToList();
        for (int i = 0; i < top.Count; i++) rankedOut[i] = top[i].Node.Handle;
        return new RouteDecision(RouteStatus.Routed, top.Count, top[0].Node.Handle, top[0].LatencyMicros,
            top[0].Node.PriceMicroUsdPer1kTokens);
    }
}
