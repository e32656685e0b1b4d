using System.Diagnostics.CodeAnalysis;

namespace ComputeGrid.Inference.Routing;

/// <summary>
/// The inference nodes known to the server: what each serves, where, at what price and capacity, and how it is
/// doing (heartbeats, reported load, failures, the requests the router has placed on it). Thread-safe.
/// </summary>
/// <remarks>
/// <para>
/// <b>Layout.</b> Every node occupies a slot; the values that change between registrations (health deadline, held
/// requests, reported queue, inflight and EWMA) live in flat arrays indexed by slot (struct of arrays), allocated once
/// at <see cref="NodeRegistryOptions.MaxNodes"/> so they never move and heartbeats update them in place. The values
/// that change only on registration (region, price, capacity, id order) are copied into an immutable topology: for
/// each model, flat arrays of its nodes grouped by region and sorted by price, rebuilt on <see cref="Register"/> and
/// <see cref="Remove"/> (O(nodes) each) and published with one reference write. A router reads the topology once per
/// decision and then the arrays, without locks or allocation.
/// </para>
/// <para>
/// <b>Health.</b> A node is in rotation while it is not failed and less than
/// <see cref="NodeRegistryOptions.HeartbeatTimeout"/> has passed since its registration or last heartbeat, judged
/// against the <see cref="TimeProvider"/> at routing time (no background sweep). <see cref="MarkFailed(NodeHandle)"/>
/// takes a node out at once until its next heartbeat (or registration).
/// </para>
/// <para>
/// <b>Capacity.</b> <see cref="TryAcquire"/> takes one of a node's <see cref="NodeRegistration.Capacity"/> slots with
/// a compare-and-swap, so concurrent callers never hold more than the capacity; <see cref="Release"/> gives it back.
/// </para>
/// <para>
/// <b>Consistency.</b> Writers (register, heartbeat, mark failed, remove) serialise on a lock. Readers see each value
/// atomically; a router that reads a node while the node is being re-registered may see some old and some new
/// values of that one node, which is harmless for a routing estimate.
/// </para>
/// </remarks>
public sealed class NodeRegistry
{
    /// <summary>The longest node id accepted.</summary>
    public const int MaxNodeIdLength = 128;

    /// <summary>The longest model id accepted.</summary>
    public const int MaxModelIdLength = 256;

    /// <summary>The most models one node may serve.</summary>
    public const int MaxModelsPerNode = 256;

    /// <summary>The highest price accepted: 10^12 micro-USD (USD 1,000,000) per 1,000 tokens.</summary>
    public const long MaxPriceMicroUsdPer1kTokens = 1_000_000_000_000;

    /// <summary>The highest capacity accepted.</summary>
    public const int MaxCapacity = 1_000_000;

    /// <summary>The highest reported queue length or inflight count accepted.</summary>
    public const int MaxQueueLength = 1_000_000;

    /// <summary>The highest reported EWMA model time accepted, milliseconds (one hour).</summary>
    public const double MaxEwmaModelMs = 3_600_000;

    /// <summary>The longest public key accepted, bytes.</summary>
    public const int MaxPublicKeyBytes = 256;

    /// <summary>The largest power price a site may publish, either sign: 10^12 micro-USD (USD 1,000,000) per MWh.</summary>
    public const long MaxPowerPriceMicroUsdPerMwh = 1_000_000_000_000;

    /// <summary>The most energy per 1,000 tokens a site may publish for a node: 10^9 mJ (1 MJ).</summary>
    public const long MaxMilliJoulesPer1kTokens = 1_000_000_000;

    private const int MaxMaxNodes = 1 << 20;

    private readonly Lock _gate = new();
    private readonly TimeProvider _time;
    private readonly long _timeoutTimestamp;
    private readonly Dictionary<string, int> _slotById = new(StringComparer.Ordinal);
    private readonly Stack<int> _freeSlots = new();
    private readonly List<int> _slotsById = [];   // registered slots in node-id order (ordinal), kept sorted on insert
    private int _nextSlot;

    // Hot, read by routers without locks (indexed by slot).
    internal readonly long[] AliveUntil;       // TimeProvider timestamp until which the node is healthy; long.MinValue when failed or free
    private readonly int[] RegionOf;
    private readonly long[] Price;
    private readonly int[] CapacityOf;
    internal readonly int[] QueueLengthOf;
    internal readonly int[] ReportedInflightOf;
    internal readonly long[] EwmaMicrosOf;
    internal readonly long[] Load;             // (generation << 32) | router-held inflight; generation ≥ 1
    internal readonly long[] PowerCostOf;      // the node's site's marginal power cost, nano-USD per 1,000 tokens; 0 without a site
    internal readonly int[] PowerFlagsOf;      // the node's site's PowerFlags; 0 without a site

    // Cold (snapshots and lookups), written under the lock.
    private readonly string?[] _ids;
    private readonly string[][] _models;
    private readonly byte[][] _keys;
    private readonly bool[] _failed;
    private readonly long[] _lastSeenUtcTicks;
    private readonly Dictionary<string, NodePowerState> _powerById = new(StringComparer.Ordinal); // kept across re-registrations

    private volatile RegistryTopology _topology = RegistryTopology.Empty;

    /// <summary>A registry of nodes placed in the regions of <paramref name="matrix"/>.</summary>
    /// <param name="matrix">The regions and their latencies.</param>
    /// <param name="time">The clock for heartbeats and health.</param>
    /// <param name="options">Settings; null for the defaults.</param>
    /// <exception cref="ArgumentOutOfRangeException">A non-positive heartbeat timeout, or MaxNodes outside 1 … 1,048,576.</exception>
    public NodeRegistry(LatencyMatrix matrix, TimeProvider time, NodeRegistryOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(matrix);
        ArgumentNullException.ThrowIfNull(time);
        options ??= new NodeRegistryOptions();
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(options.HeartbeatTimeout, TimeSpan.Zero, nameof(options));
        ArgumentOutOfRangeException.ThrowIfGreaterThan(options.HeartbeatTimeout, TimeSpan.FromDays(365), nameof(options));
        ArgumentOutOfRangeException.ThrowIfLessThan(options.MaxNodes, 1, nameof(options));
        ArgumentOutOfRangeException.ThrowIfGreaterThan(options.MaxNodes, MaxMaxNodes, nameof(options));
        Matrix = matrix;
        _time = time;
        HeartbeatTimeout = options.HeartbeatTimeout;
        MaxNodes = options.MaxNodes;
        // The timeout in the provider's timestamp units, rounded up (never shorter than asked).
        Int128 scaled = (Int128)options.HeartbeatTimeout.Ticks * time.TimestampFrequency;
        _timeoutTimestamp = (long)((scaled + TimeSpan.TicksPerSecond - 1) / TimeSpan.TicksPerSecond);

        int n = options.MaxNodes;
        AliveUntil = new long[n];
        Array.Fill(AliveUntil, long.MinValue);
        RegionOf = new int[n];
        Price = new long[n];
        CapacityOf = new int[n];
        QueueLengthOf = new int[n];
        ReportedInflightOf = new int[n];
        EwmaMicrosOf = new long[n];
        Load = new long[n];
        Array.Fill(Load, 1L << 32);
        PowerCostOf = new long[n];
        PowerFlagsOf = new int[n];
        _ids = new string?[n];
        _models = new string[n][];
        _keys = new byte[n][];
        _failed = new bool[n];
        _lastSeenUtcTicks = new long[n];
    }

    /// <summary>The regions nodes register in.</summary>
    public LatencyMatrix Matrix { get; }

    /// <summary>The clock heartbeats and health are judged by.</summary>
    public TimeProvider Time => _time;

    /// <summary>How long a node stays in rotation after its last heartbeat.</summary>
    public TimeSpan HeartbeatTimeout { get; }

    /// <summary>The most nodes registered at once.</summary>
    public int MaxNodes { get; }

    /// <summary>The number of registered nodes (healthy or not).</summary>
    public int Count => _topology.AllSlots.Length;

    /// <summary>The model ids at least one registered node serves, in ordinal order.</summary>
    public IReadOnlyList<string> Models => _topology.Models;

    internal RegistryTopology Topology => _topology;

    internal long NowTimestamp() => _time.GetTimestamp();

    /// <summary>
    /// Registers a node, or updates a registered one (same <see cref="NodeRegistration.NodeId"/>): its region, models,
    /// price, capacity and key are replaced. Registration counts as a heartbeat: the node is healthy and not failed
    /// afterwards, with reported queue length, inflight and EWMA model time reset to 0 until its next heartbeat. Requests
    /// the router placed on a re-registered node stay counted until released. The node keeps its handle.
    /// </summary>
    /// <param name="registration">The node's details.</param>
    /// <returns>The node's handle.</returns>
    /// <exception cref="ArgumentException">A field is out of range, or the region is unknown.</exception>
    /// <exception cref="InvalidOperationException">The registry already holds <see cref="MaxNodes"/> nodes.</exception>
    public NodeHandle Register(NodeRegistration registration)
    {
        Prepared node = Prepare(registration, nameof(registration));
        lock (_gate)
        {
            if (!_slotById.ContainsKey(node.Id) && _freeSlots.Count == 0 && _nextSlot >= MaxNodes)
                throw new InvalidOperationException($"The registry is full ({MaxNodes} nodes).");
            NodeHandle handle = ApplyLocked(node);
            RebuildTopologyLocked();
            return handle;
        }
    }

    /// <summary>
    /// Registers (or updates) many nodes at once, as <see cref="Register"/> does one by one, but rebuilding the
    /// routing index once (for a server start or a benchmark fleet: registering n nodes one by one costs O(n²)).
    /// All registrations are checked before any is applied; a later registration of the same id wins.
    /// </summary>
    /// <param name="registrations">The nodes' details.</param>
    /// <returns>The nodes' handles, in the order of <paramref name="registrations"/>.</returns>
    /// <exception cref="ArgumentException">A registration is invalid (nothing was applied).</exception>
    /// <exception cref="InvalidOperationException">The new nodes do not fit in <see cref="MaxNodes"/> (nothing was applied).</exception>
    public NodeHandle[] RegisterAll(IReadOnlyList<NodeRegistration> registrations)
    {
        ArgumentNullException.ThrowIfNull(registrations);
        var prepared = new Prepared[registrations.Count];
        for (int i = 0; i < prepared.Length; i++) prepared[i] = Prepare(registrations[i], nameof(registrations));
        lock (_gate)
        {
            var added = new HashSet<string>(StringComparer.Ordinal);
            foreach (Prepared node in prepared)
                if (!_slotById.ContainsKey(node.Id)) added.Add(node.Id);
            if (added.Count > _freeSlots.Count + (MaxNodes - _nextSlot))
                throw new InvalidOperationException($"{added.Count} new nodes do not fit in the registry ({Count} of {MaxNodes} registered).");
            var handles = new NodeHandle[prepared.Length];
            for (int i = 0; i < prepared.Length; i++) handles[i] = ApplyLocked(prepared[i]);
            RebuildTopologyLocked();
            return handles;
        }
    }

    private readonly record struct Prepared(string Id, int Region, string[] Models, long Price, int Capacity, byte[] Key);

    private Prepared Prepare(NodeRegistration registration, string paramName)
    {
        ArgumentNullException.ThrowIfNull(registration, paramName);
        string id = registration.NodeId ?? throw new ArgumentException("NodeId is required.", paramName);
        if (id.Length is 0 or > MaxNodeIdLength)
            throw new ArgumentException($"NodeId must be 1 to {MaxNodeIdLength} characters.", paramName);
        if (!Matrix.TryGetRegion(registration.Region, out int region))
            throw new ArgumentException($"Unknown region '{registration.Region}'; known: {string.Join(", ", Matrix.Regions)}.", paramName);
        if (registration.Models is null || registration.Models.Count == 0)
            throw new ArgumentException("A node must serve at least one model.", paramName);
        var models = new SortedSet<string>(StringComparer.Ordinal);
        foreach (string? m in registration.Models)
        {
            if (string.IsNullOrEmpty(m) || m.Length > MaxModelIdLength)
                throw new ArgumentException($"Model ids must be 1 to {MaxModelIdLength} characters.", paramName);
            models.Add(m);
        }
        if (models.Count > MaxModelsPerNode)
            throw new ArgumentException($"A node may serve at most {MaxModelsPerNode} models.", paramName);
        if (registration.PriceMicroUsdPer1kTokens is < 0 or > MaxPriceMicroUsdPer1kTokens)
            throw new ArgumentException($"The price must be 0 to {MaxPriceMicroUsdPer1kTokens} micro-USD per 1,000 tokens.", paramName);
        if (registration.Capacity is < 1 or > MaxCapacity)
            throw new ArgumentException($"The capacity must be 1 to {MaxCapacity}.", paramName);
        if (registration.PublicKey.Length is 0 or > MaxPublicKeyBytes)
            throw new ArgumentException($"The public key must be 1 to {MaxPublicKeyBytes} bytes.", paramName);
        return new Prepared(id, region, [.. models], registration.PriceMicroUsdPer1kTokens, registration.Capacity,
            registration.PublicKey.ToArray());
    }

    // Writes one node's values (the caller has checked there is room and rebuilds the topology afterwards).
    private NodeHandle ApplyLocked(in Prepared node)
    {
        bool existing = _slotById.TryGetValue(node.Id, out int slot);
        if (!existing) slot = _freeSlots.Count > 0 ? _freeSlots.Pop() : _nextSlot++;
        _ids[slot] = node.Id;
        _models[slot] = node.Models;
        _keys[slot] = node.Key;
        RegionOf[slot] = node.Region;
        Price[slot] = node.Price;
        CapacityOf[slot] = node.Capacity;
        QueueLengthOf[slot] = 0;
        ReportedInflightOf[slot] = 0;
        EwmaMicrosOf[slot] = 0;
        WritePowerLocked(slot, _powerById.TryGetValue(node.Id, out NodePowerState power) ? power : null);
        TouchLocked(slot);
        if (!existing)
        {
            _slotById.Add(node.Id, slot);
            _slotsById.Insert(~PositionLocked(node.Id), slot);
        }
        return new NodeHandle(slot, Generation(Volatile.Read(ref Load[slot])));
    }

    /// <summary>
    /// Records a heartbeat: the node's last-seen time becomes now, its failed mark is cleared and its reported
    /// queue length, inflight count and EWMA model time are stored.
    /// </summary>
    /// <param name="nodeId">The node.</param>
    /// <param name="heartbeat">What the node reports.</param>
    /// <returns>False if no node with this id is registered (it should register again).</returns>
    /// <exception cref="ArgumentOutOfRangeException">A reported value is negative, not finite or too large.</exception>
    public bool Heartbeat(string nodeId, in NodeHeartbeat heartbeat)
    {
        ArgumentNullException.ThrowIfNull(nodeId);
        if (heartbeat.QueueLength is < 0 or > MaxQueueLength)
            throw new ArgumentOutOfRangeException(nameof(heartbeat), $"QueueLength must be 0 to {MaxQueueLength}.");
        if (heartbeat.Inflight is < 0 or > MaxQueueLength)
            throw new ArgumentOutOfRangeException(nameof(heartbeat), $"Inflight must be 0 to {MaxQueueLength}.");
        if (!double.IsFinite(heartbeat.EwmaModelMs) || heartbeat.EwmaModelMs < 0 || heartbeat.EwmaModelMs > MaxEwmaModelMs)
            throw new ArgumentOutOfRangeException(nameof(heartbeat), $"EwmaModelMs must be 0 to {MaxEwmaModelMs}.");
        long ewmaMicros = (long)Math.Round(heartbeat.EwmaModelMs * 1000.0, MidpointRounding.AwayFromZero);
        lock (_gate)
        {
            if (!_slotById.TryGetValue(nodeId, out int slot)) return false;
            QueueLengthOf[slot] = heartbeat.QueueLength;
            ReportedInflightOf[slot] = heartbeat.Inflight;
            EwmaMicrosOf[slot] = ewmaMicros;
            TouchLocked(slot);
            return true;
        }
    }

    /// <summary>
    /// Takes a node out of rotation after a request to it failed, until its next heartbeat (or registration).
    /// </summary>
    /// <param name="node">The node's handle.</param>
    /// <returns>False if the handle is stale (the node was removed).</returns>
    public bool MarkFailed(NodeHandle node)
    {
        lock (_gate)
        {
            if (!IsCurrentLocked(node)) return false;
            _failed[node.Slot] = true;
            Volatile.Write(ref AliveUntil[node.Slot], long.MinValue);
            return true;
        }
    }

    /// <summary>Takes a node out of rotation until its next heartbeat, by id.</summary>
    /// <param name="nodeId">The node.</param>
    /// <returns>False if no node with this id is registered.</returns>
    public bool MarkFailed(string nodeId)
    {
        ArgumentNullException.ThrowIfNull(nodeId);
        lock (_gate)
        {
            if (!_slotById.TryGetValue(nodeId, out int slot)) return false;
            _failed[slot] = true;
            Volatile.Write(ref AliveUntil[slot], long.MinValue);
            return true;
        }
    }

    /// <summary>
    /// Removes a node. Its handles go stale: <see cref="TryAcquire"/>, <see cref="Release"/> and
    /// <see cref="MarkFailed(NodeHandle)"/> on them return false, and its slot may be reused by a later registration.
    /// </summary>
    /// <param name="nodeId">The node.</param>
    /// <returns>False if no node with this id is registered.</returns>
    public bool Remove(string nodeId)
    {
        ArgumentNullException.ThrowIfNull(nodeId);
        lock (_gate)
        {
            if (!_slotById.Remove(nodeId, out int slot)) return false;
            _slotsById.RemoveAt(PositionLocked(nodeId));
            Volatile.Write(ref AliveUntil[slot], long.MinValue);
            ref long cell = ref Load[slot];
            while (true)
            {
                long current = Volatile.Read(ref cell);
                int next = Generation(current) + 1;
                if (next <= 0) next = 1; // wrap, never 0: default(NodeHandle) must stay invalid
                if (Interlocked.CompareExchange(ref cell, (long)next << 32, current) == current) break;
            }
            _ids[slot] = null;
            _models[slot] = [];
            _keys[slot] = [];
            _failed[slot] = false;
            WritePowerLocked(slot, null);
            _freeSlots.Push(slot);
            RebuildTopologyLocked();
            return true;
        }
    }

    /// <summary>
    /// Records the power state of a node's site (its site publishes it every interval). The router counts the state's
    /// power cost in <see cref="RouteSort.Power"/> and avoids a node whose state says <see cref="NodePowerState.Avoid"/>
    /// whenever another eligible node exists. A node not registered yet (or removed) gets the state when it registers.
    /// </summary>
    /// <param name="nodeId">The node.</param>
    /// <param name="state">Its site's state.</param>
    /// <exception cref="ArgumentOutOfRangeException">The price or energy is outside its bounds, or flags are unknown.</exception>
    public void PublishPower(string nodeId, in NodePowerState state)
    {
        ArgumentNullException.ThrowIfNull(nodeId);
        ArgumentNullException.ThrowIfNull(state.Site, nameof(state));
        if (state.PriceMicroUsdPerMwh is < -MaxPowerPriceMicroUsdPerMwh or > MaxPowerPriceMicroUsdPerMwh)
            throw new ArgumentOutOfRangeException(nameof(state), $"The power price must be within ±{MaxPowerPriceMicroUsdPerMwh} micro-USD per MWh.");
        if (state.MilliJoulesPer1kTokens is < 0 or > MaxMilliJoulesPer1kTokens)
            throw new ArgumentOutOfRangeException(nameof(state), $"The energy per 1,000 tokens must be 0 to {MaxMilliJoulesPer1kTokens} mJ.");
        if ((state.Flags & ~(PowerFlags.PeakHour | PowerFlags.Emergency)) != 0)
            throw new ArgumentOutOfRangeException(nameof(state), $"Unknown power flags {state.Flags}.");
        lock (_gate)
        {
            _powerById[nodeId] = state;
            if (_slotById.TryGetValue(nodeId, out int slot)) WritePowerLocked(slot, state);
        }
    }

    /// <summary>Forgets a node's power state: it routes as a node without a site again.</summary>
    /// <param name="nodeId">The node.</param>
    /// <returns>False if the node had none.</returns>
    public bool ClearPower(string nodeId)
    {
        ArgumentNullException.ThrowIfNull(nodeId);
        lock (_gate)
        {
            if (!_powerById.Remove(nodeId)) return false;
            if (_slotById.TryGetValue(nodeId, out int slot)) WritePowerLocked(slot, null);
            return true;
        }
    }

    // The two values a router reads; each is written atomically (a router may see one new and one old, harmless for one decision).
    private void WritePowerLocked(int slot, NodePowerState? state)
    {
        Volatile.Write(ref PowerCostOf[slot], state?.PowerCostNanoUsdPer1kTokens ?? 0);
        Volatile.Write(ref PowerFlagsOf[slot], (int)(state?.Flags ?? PowerFlags.None));
    }

    /// <summary>
    /// Takes one of the node's capacity slots for a request, if one is free. Concurrent callers never hold more than
    /// the node's capacity. Health is not checked here (the router checks it when choosing).
    /// </summary>
    /// <param name="node">The node's handle (from a <see cref="RouteDecision"/> or <see cref="Register"/>).</param>
    /// <returns>True if a slot was taken (give it back with <see cref="Release"/>); false if the node is at capacity or the handle is stale.</returns>
    public bool TryAcquire(NodeHandle node)
    {
        if ((uint)node.Slot >= (uint)MaxNodes) return false;
        ref long cell = ref Load[node.Slot];
        while (true)
        {
            long current = Volatile.Read(ref cell);
            if (Generation(current) != node.Generation) return false;
            if (Held(current) >= Volatile.Read(ref CapacityOf[node.Slot])) return false;
            if (Interlocked.CompareExchange(ref cell, current + 1, current) == current) return true;
        }
    }

    /// <summary>Gives back a capacity slot taken with <see cref="TryAcquire"/>.</summary>
    /// <param name="node">The node's handle.</param>
    /// <returns>False if the handle is stale (the node was removed after the slot was taken; nothing to give back).</returns>
    /// <exception cref="InvalidOperationException">The node holds no slot: more releases than acquisitions.</exception>
    public bool Release(NodeHandle node)
    {
        if ((uint)node.Slot >= (uint)MaxNodes) return false;
        ref long cell = ref Load[node.Slot];
        while (true)
        {
            long current = Volatile.Read(ref cell);
            if (Generation(current) != node.Generation) return false;
            if (Held(current) == 0) throw new InvalidOperationException("Release without a matching TryAcquire.");
            if (Interlocked.CompareExchange(ref cell, current - 1, current) == current) return true;
        }
    }

    /// <summary>The id of the node a handle names, without allocating; null if the handle is stale.</summary>
    /// <param name="node">The node's handle.</param>
    public string? NodeIdOf(NodeHandle node)
    {
        if ((uint)node.Slot >= (uint)MaxNodes) return null;
        string? id = Volatile.Read(ref _ids[node.Slot]);
        return Generation(Volatile.Read(ref Load[node.Slot])) == node.Generation ? id : null;
    }

    /// <summary>The current handle of a node, by id.</summary>
    /// <param name="nodeId">The node.</param>
    /// <param name="node">The handle when found.</param>
    /// <returns>False if no node with this id is registered.</returns>
    public bool TryGetHandle(string nodeId, out NodeHandle node)
    {
        ArgumentNullException.ThrowIfNull(nodeId);
        lock (_gate)
        {
            if (_slotById.TryGetValue(nodeId, out int slot))
            {
                node = new NodeHandle(slot, Generation(Volatile.Read(ref Load[slot])));
                return true;
            }
            node = default;
            return false;
        }
    }

    /// <summary>One node's state now, by id.</summary>
    /// <param name="nodeId">The node.</param>
    /// <param name="snapshot">The node's state when found.</param>
    /// <returns>False if no node with this id is registered.</returns>
    public bool TryGetNode(string nodeId, [NotNullWhen(true)] out NodeSnapshot? snapshot)
    {
        ArgumentNullException.ThrowIfNull(nodeId);
        lock (_gate)
        {
            if (_slotById.TryGetValue(nodeId, out int slot))
            {
                snapshot = SnapshotLocked(slot, _time.GetTimestamp());
                return true;
            }
            snapshot = null;
            return false;
        }
    }

    /// <summary>Every registered node's state at one moment, in node-id order (ordinal).</summary>
    public IReadOnlyList<NodeSnapshot> Snapshot()
    {
        lock (_gate)
        {
            long now = _time.GetTimestamp();
            int[] slots = _topology.AllSlots;
            var result = new NodeSnapshot[slots.Length];
            for (int i = 0; i < slots.Length; i++) result[i] = SnapshotLocked(slots[i], now);
            return result;
        }
    }

    internal static int Generation(long load) => (int)(load >>> 32);

    internal static int Held(long load) => (int)(uint)load;

    private bool IsCurrentLocked(NodeHandle node) =>
        (uint)node.Slot < (uint)MaxNodes && _ids[node.Slot] is not null
        && Generation(Volatile.Read(ref Load[node.Slot])) == node.Generation;

    private void TouchLocked(int slot)
    {
        _lastSeenUtcTicks[slot] = _time.GetUtcNow().UtcTicks;
        _failed[slot] = false;
        long now = _time.GetTimestamp();
        long until = now > long.MaxValue - _timeoutTimestamp ? long.MaxValue : now + _timeoutTimestamp;
        Volatile.Write(ref AliveUntil[slot], until); // last: the node's other values are visible before it is healthy
    }

    private NodeSnapshot SnapshotLocked(int slot, long now)
    {
        long load = Volatile.Read(ref Load[slot]);
        return new NodeSnapshot(
            new NodeHandle(slot, Generation(load)),
            _ids[slot]!,
            Matrix.Regions[RegionOf[slot]],
            RegionOf[slot],
            _models[slot],
            Price[slot],
            CapacityOf[slot],
            Held(load),
            ReportedInflightOf[slot],
            QueueLengthOf[slot],
            EwmaMicrosOf[slot],
            new DateTimeOffset(_lastSeenUtcTicks[slot], TimeSpan.Zero),
            _failed[slot],
            now < Volatile.Read(ref AliveUntil[slot]),
            (byte[])_keys[slot].Clone())
        {
            Power = _powerById.TryGetValue(_ids[slot]!, out NodePowerState power) ? power : null,
        };
    }

    // The position of a node id in _slotsById, or the bitwise complement of where it would be inserted.
    private int PositionLocked(string id)
    {
        int lo = 0, hi = _slotsById.Count - 1;
        while (lo <= hi)
        {
            int mid = lo + ((hi - lo) >> 1);
            int c = string.CompareOrdinal(_ids[_slotsById[mid]], id);
            if (c == 0) return mid;
            if (c < 0) lo = mid + 1;
            else hi = mid - 1;
        }
        return ~lo;
    }

    private void RebuildTopologyLocked()
    {
        int[] slots = [.. _slotsById];
        var byModel = new Dictionary<string, List<IndexEntry>>(StringComparer.Ordinal);
        for (int rank = 0; rank < slots.Length; rank++)
        {
            int slot = slots[rank];
            var entry = new IndexEntry(slot, RegionOf[slot], CapacityOf[slot], rank, Price[slot], Generation(Volatile.Read(ref Load[slot])));
            foreach (string model in _models[slot])
            {
                if (!byModel.TryGetValue(model, out var list)) byModel.Add(model, list = []);
                list.Add(entry);
            }
        }
        var indexes = new Dictionary<string, ModelIndex>(byModel.Count, StringComparer.Ordinal);
        foreach (var (model, list) in byModel) indexes.Add(model, new ModelIndex(list, Matrix.Count));
        string[] models = [.. indexes.Keys];
        Array.Sort(models, StringComparer.Ordinal);
        _topology = new RegistryTopology(slots, indexes, models);
    }
}

/// <summary>The immutable part of a registry's state a router reads once per decision.</summary>
internal sealed class RegistryTopology(int[] allSlots, Dictionary<string, ModelIndex> byModel, string[] models)
{
    public static readonly RegistryTopology Empty = new([], new Dictionary<string, ModelIndex>(StringComparer.Ordinal), []);

    /// <summary>Every registered node's slot, in node-id order.</summary>
    public readonly int[] AllSlots = allSlots;

    /// <summary>For each served model, the nodes that serve it.</summary>
    public readonly Dictionary<string, ModelIndex> ByModel = byModel;

    /// <summary>The served models, ordinal order.</summary>
    public readonly string[] Models = models;
}

/// <summary>
/// A node's values that change only on registration, copied into an index so a router reads them in sequence and
/// consistently with the index's order.
/// </summary>
/// <param name="Slot">The node's slot (for its changing values: health, load, reported EWMA).</param>
/// <param name="Region">The node's region index.</param>
/// <param name="Capacity">The node's capacity.</param>
/// <param name="Rank">The node's position in node-id order (ordinal): the final tie-break.</param>
/// <param name="Price">The node's price, micro-USD per 1,000 tokens.</param>
/// <param name="Generation">The slot's generation when indexed: a router reading an index that a removal has since
/// replaced skips the slot if another node took it over meanwhile.</param>
internal readonly record struct IndexEntry(int Slot, int Region, int Capacity, int Rank, long Price, int Generation);

/// <summary>
/// The nodes serving one model, in two orders: grouped by region and by (price, id) within a region (for the
/// latency-led sorts: a whole region is skipped when its RTT alone, plus its cheapest price for the balanced sort,
/// cannot beat the ranking so far, and the balanced scan of a region stops at the first price that cannot), and by
/// (price, id) over all regions (for the price sort: the scan stops at the first price above the ranking's worst).
/// </summary>
internal sealed class ModelIndex
{
    /// <summary>Entries grouped by region index ascending, (price, node id) order within a region.</summary>
    public readonly IndexEntry[] ByRegion;

    /// <summary>Where each region's entries start in <see cref="ByRegion"/> (length: regions + 1).</summary>
    public readonly int[] RegionStart;

    /// <summary>Each region's lowest price (long.MaxValue for a region with no node).</summary>
    public readonly long[] RegionMinPrice;

    /// <summary>Entries by (price, node id).</summary>
    public readonly IndexEntry[] ByPrice;

    public ModelIndex(List<IndexEntry> entriesInIdOrder, int regions)
    {
        RegionStart = new int[regions + 1];
        RegionMinPrice = new long[regions];
        Array.Fill(RegionMinPrice, long.MaxValue);
        foreach (IndexEntry e in entriesInIdOrder)
        {
            RegionStart[e.Region + 1]++;
            RegionMinPrice[e.Region] = Math.Min(RegionMinPrice[e.Region], e.Price);
        }
        for (int r = 0; r < regions; r++) RegionStart[r + 1] += RegionStart[r];
        ByPrice = [.. entriesInIdOrder];
        Array.Sort(ByPrice, static (a, b) => a.Price != b.Price ? a.Price.CompareTo(b.Price) : a.Rank.CompareTo(b.Rank));
        ByRegion = new IndexEntry[entriesInIdOrder.Count];
        int[] next = (int[])RegionStart.Clone();
        foreach (IndexEntry e in ByPrice) ByRegion[next[e.Region]++] = e; // stable: (price, id) order within a region
    }
}
