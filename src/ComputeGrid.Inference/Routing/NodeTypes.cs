namespace ComputeGrid.Inference.Routing;

/// <summary>
/// Names one registered node for the life of its registration: the registry slot it occupies and that slot's
/// generation. A handle goes stale when its node is removed (the slot's generation moves on), so a handle from an
/// old decision can never acquire, release or fail the node that later takes over the slot.
/// <c>default</c> is never a valid handle.
/// </summary>
/// <param name="Slot">The node's slot in the registry, 0 … <see cref="NodeRegistryOptions.MaxNodes"/> − 1.</param>
/// <param name="Generation">The slot's generation when the handle was made (1 or more).</param>
public readonly record struct NodeHandle(int Slot, int Generation)
{
    /// <summary>False for <c>default</c>; a true value does not mean the node is still registered.</summary>
    public bool IsDefault => Generation == 0;
}

/// <summary>What a node tells the registry when it joins (or joins again, for example after a restart).</summary>
/// <param name="NodeId">The node's id: 1 … <see cref="NodeRegistry.MaxNodeIdLength"/> characters, compared ordinally.
/// Ties between equally good nodes go to the ordinally smaller id.</param>
/// <param name="Region">The region the node runs in: an id or name the registry's <see cref="LatencyMatrix"/> knows.</param>
/// <param name="Models">The model ids the node serves (ordinal, case-sensitive; at least one, duplicates ignored).</param>
/// <param name="PriceMicroUsdPer1kTokens">The node's price, micro-USD per 1,000 tokens, 0 … <see cref="NodeRegistry.MaxPriceMicroUsdPer1kTokens"/>.</param>
/// <param name="Capacity">The most requests the node runs at once, 1 … <see cref="NodeRegistry.MaxCapacity"/>.</param>
/// <param name="PublicKey">The node's Ed25519 public key bytes; opaque to the registry, which keeps a copy
/// (1 … <see cref="NodeRegistry.MaxPublicKeyBytes"/> bytes).</param>
public sealed record NodeRegistration(
    string NodeId,
    string Region,
    IReadOnlyList<string> Models,
    long PriceMicroUsdPer1kTokens,
    int Capacity,
    ReadOnlyMemory<byte> PublicKey);

/// <summary>What a node reports with each heartbeat.</summary>
/// <param name="QueueLength">Requests waiting on the node, not yet running, 0 … <see cref="NodeRegistry.MaxQueueLength"/>.</param>
/// <param name="Inflight">Requests the node is running now, 0 … <see cref="NodeRegistry.MaxQueueLength"/>.</param>
/// <param name="EwmaModelMs">The node's exponentially weighted moving average of the time one request spends in the
/// model, milliseconds, 0 … <see cref="NodeRegistry.MaxEwmaModelMs"/> (rounded to the microsecond).</param>
public readonly record struct NodeHeartbeat(int QueueLength, int Inflight, double EwmaModelMs);

/// <summary>Settings of a <see cref="NodeRegistry"/>.</summary>
public sealed record NodeRegistryOptions
{
    /// <summary>
    /// How long a node stays in rotation after its last heartbeat (or registration). A node is healthy while
    /// less than this much time has passed; at exactly the timeout it is out. Default 3 s.
    /// </summary>
    public TimeSpan HeartbeatTimeout { get; init; } = TimeSpan.FromSeconds(3);

    /// <summary>
    /// The most nodes registered at once, 1 … 1,048,576 (default 4,096). The registry's per-node arrays are
    /// allocated once at this size, so they never move under concurrent readers.
    /// </summary>
    public int MaxNodes { get; init; } = 4096;
}

/// <summary>One node's state at one moment, for the API and for reference computations.</summary>
/// <param name="Handle">The node's current handle.</param>
/// <param name="NodeId">The node's id.</param>
/// <param name="Region">The region id (e.g. <c>frankfurt</c>).</param>
/// <param name="RegionIndex">The region's index in the registry's <see cref="LatencyMatrix"/>.</param>
/// <param name="Models">The models served, ordinal order.</param>
/// <param name="PriceMicroUsdPer1kTokens">The price, micro-USD per 1,000 tokens.</param>
/// <param name="Capacity">The most requests at once.</param>
/// <param name="Inflight">Requests the router has placed on the node and not yet released (<see cref="NodeRegistry.TryAcquire"/>).</param>
/// <param name="ReportedInflight">The running requests the node reported with its last heartbeat.</param>
/// <param name="QueueLength">The waiting requests the node reported with its last heartbeat.</param>
/// <param name="EwmaModelMicros">The node's reported EWMA model time, microseconds.</param>
/// <param name="LastHeartbeat">When the registry last heard from the node (registration or heartbeat), UTC.</param>
/// <param name="Failed">True when the node was marked failed and has not heartbeated since.</param>
/// <param name="Healthy">True when the node was in rotation at the snapshot's moment: not failed, heartbeat fresh.</param>
/// <param name="PublicKey">A copy of the node's public key bytes.</param>
public sealed record NodeSnapshot(
    NodeHandle Handle,
    string NodeId,
    string Region,
    int RegionIndex,
    IReadOnlyList<string> Models,
    long PriceMicroUsdPer1kTokens,
    int Capacity,
    int Inflight,
    int ReportedInflight,
    int QueueLength,
    long EwmaModelMicros,
    DateTimeOffset LastHeartbeat,
    bool Failed,
    bool Healthy,
    byte[] PublicKey)
{
    /// <summary>The node's reported EWMA model time in milliseconds.</summary>
    public double EwmaModelMs => EwmaModelMicros / 1000.0;

    /// <summary>The power state its site last published (<see cref="NodeRegistry.PublishPower"/>); null for a node without a site.</summary>
    public NodePowerState? Power { get; init; }
}
