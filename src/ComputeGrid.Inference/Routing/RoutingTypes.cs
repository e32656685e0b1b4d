namespace ComputeGrid.Inference.Routing;

/// <summary>How a router orders the nodes that pass every filter (in the spirit of OpenRouter's <c>provider.sort</c>).</summary>
public enum RouteSort
{
    /// <summary>
    /// Lowest balanced score first: estimated latency in microseconds plus
    /// <see cref="RouterOptions.BalancedMicrosPerPriceUnit"/> × price (micro-USD per 1,000 tokens); ties by
    /// estimated latency, then by node id.
    /// </summary>
    Balanced = 0,

    /// <summary>Lowest estimated latency first; ties by price, then by node id.</summary>
    Latency = 1,

    /// <summary>Lowest price first; ties by estimated latency, then by node id.</summary>
    Price = 2,

    /// <summary>
    /// Lowest total cost first: the node's price plus its site's marginal power cost per 1,000 tokens
    /// (<see cref="NodePowerState.PowerCostNanoUsdPer1kTokens"/>; 0 for a node without a site), compared in nano-USD;
    /// ties by estimated latency, then by node id. With <see cref="RoutingPreferences.MaxLatencyMs"/> it is "the cheapest
    /// power within the latency bound".
    /// </summary>
    Power = 3,
}

/// <summary>
/// A client's routing preferences, in the spirit of OpenRouter's <c>provider</c> options. Immutable; build one
/// per request (or share <see cref="Default"/>).
/// </summary>
public sealed record RoutingPreferences
{
    /// <summary>No limits, <see cref="RouteSort.Balanced"/>, fallbacks allowed.</summary>
    public static RoutingPreferences Default { get; } = new();

    /// <summary>How eligible nodes are ordered.</summary>
    public RouteSort Sort { get; init; } = RouteSort.Balanced;

    /// <summary>The highest price accepted, micro-USD per 1,000 tokens (inclusive); null for no limit.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A negative value.</exception>
    public long? MaxPriceMicroUsdPer1kTokens
    {
        get;
        init
        {
            if (value < 0) throw new ArgumentOutOfRangeException(nameof(MaxPriceMicroUsdPer1kTokens), "The max price must not be negative.");
            field = value;
        }
    }

    /// <summary>The highest estimated latency accepted, milliseconds (inclusive); null for no limit.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A negative value.</exception>
    public int? MaxLatencyMs
    {
        get;
        init
        {
            if (value < 0) throw new ArgumentOutOfRangeException(nameof(MaxLatencyMs), "The max latency must not be negative.");
            field = value;
        }
    }

    /// <summary>When set, only nodes in these regions are used (an empty set allows none).</summary>
    public RegionSet? Only { get; init; }

    /// <summary>Nodes in these regions are never used.</summary>
    public RegionSet Ignore { get; init; }

    /// <summary>
    /// When false, only the single best node is returned and the request must not fail over to another
    /// (OpenRouter's <c>allow_fallbacks: false</c>). Default true.
    /// </summary>
    public bool AllowFallbacks { get; init; } = true;
}

/// <summary>One request to route.</summary>
/// <param name="Region">The index (in the registry's <see cref="LatencyMatrix"/>) of the region the request comes from.</param>
/// <param name="Model">The model id the request names (ordinal, case-sensitive).</param>
/// <param name="Preferences">The client's preferences; null means <see cref="RoutingPreferences.Default"/>.</param>
public readonly record struct RouteRequest(int Region, string Model, RoutingPreferences? Preferences = null);

/// <summary>What a routing decision found.</summary>
public enum RouteStatus
{
    /// <summary>At least one node is eligible; <see cref="RouteDecision.Best"/> is the best of them.</summary>
    Routed = 0,

    /// <summary>No registered node serves the model.</summary>
    NoNodeServesModel = 1,

    /// <summary>Nodes serve the model, but none is healthy (each missed its heartbeat or was marked failed).</summary>
    NoHealthyNode = 2,

    /// <summary>Healthy nodes serve the model, but the request's preferences (max price, max latency, only, ignore) exclude all of them.</summary>
    FilteredByPreferences = 3,

    /// <summary>Healthy nodes serve the model and match the preferences, but every one of them is at capacity.</summary>
    AllBusy = 4,
}

/// <summary>
/// The result of routing one request. When <see cref="Status"/> is <see cref="RouteStatus.Routed"/>, the first
/// <see cref="Count"/> entries of the caller's ranked span hold the best node and then its fallbacks, best first.
/// </summary>
/// <param name="Status">Whether a node was found, and if not, why.</param>
/// <param name="Count">How many ranked nodes were written (0 when not routed): fewer than asked for when fewer nodes are eligible.</param>
/// <param name="Best">The best node; <c>default</c> when not routed.</param>
/// <param name="BestLatencyMicros">The best node's estimated latency in microseconds (see <see cref="Router"/>); 0 when not routed.</param>
/// <param name="BestPriceMicroUsdPer1kTokens">The best node's price; 0 when not routed.</param>
public readonly record struct RouteDecision(
    RouteStatus Status,
    int Count,
    NodeHandle Best,
    long BestLatencyMicros,
    long BestPriceMicroUsdPer1kTokens)
{
    /// <summary>True when a node was found.</summary>
    public bool IsRouted => Status == RouteStatus.Routed;

    /// <summary>A decision that found no node, for the given reason.</summary>
    /// <param name="status">Why no node was found (not <see cref="RouteStatus.Routed"/>).</param>
    public static RouteDecision NoNode(RouteStatus status) => new(status, 0, default, 0, 0);

    /// <summary>
    /// A short, fixed English explanation of a status, for a problem body (for example the detail of a 503):
    /// it names why no node was chosen, without request data.
    /// </summary>
    /// <param name="status">The status.</param>
    public static string Explain(RouteStatus status) => status switch
    {
        RouteStatus.Routed => "A node was chosen.",
        RouteStatus.NoNodeServesModel => "No registered node serves the requested model.",
        RouteStatus.NoHealthyNode => "No healthy node serves the requested model: every node that serves it missed its heartbeat or failed.",
        RouteStatus.FilteredByPreferences => "Every healthy node that serves the requested model is excluded by the routing preferences (max price, max latency, only or ignore).",
        RouteStatus.AllBusy => "Every node that serves the requested model and matches the routing preferences is at capacity.",
        _ => "Unknown routing status.",
    };
}
