using ComputeGrid.Exchange.Instruments;
using ComputeGrid.Exchange.Trading;

namespace ComputeGrid.Exchange.StateMachine;

/// <summary>An admitted node inside the state machine (views get <see cref="Node"/> copies).</summary>
internal sealed class NodeState(long id, long provider, string name, GpuClass gpu, string region, int gpus)
{
    public long Id { get; } = id;
    public long Provider { get; } = provider;
    public string Name { get; } = name;
    public GpuClass Gpu { get; } = gpu;
    public string Region { get; } = region;
    public int Gpus { get; } = gpus;
    public long? DownSince;
}

/// <summary>
/// Providers' capacity, hour by hour: GPUs of nodes that are up, minus GPUs leased on each node, minus GPUs committed
/// to the provider's resting sells (per class, region and hour). A sell is backed when the provider's free GPUs cover
/// it in every hour of its window.
/// </summary>
internal sealed class CapacityBook
{
    private readonly Dictionary<long, NodeState> _nodes = [];
    private readonly Dictionary<(long Provider, GpuClass Gpu, string Region), List<NodeState>> _byPool = [];
    private readonly Dictionary<(long Node, long Hour), int> _leased = [];
    private readonly Dictionary<(long Provider, GpuClass Gpu, string Region, long Hour), int> _committed = [];
    private readonly Dictionary<long, List<long>> _leasesOn = [];

    public IEnumerable<NodeState> Nodes => _nodes.Values;

    public void AddNode(NodeState node)
    {
        _nodes.Add(node.Id, node);
        if (!_byPool.TryGetValue((node.Provider, node.Gpu, node.Region), out List<NodeState>? pool))
            _byPool[(node.Provider, node.Gpu, node.Region)] = pool = [];
        pool.Add(node); // ids grow, so the pool stays in id order
    }

    public bool TryGetNode(long id, [System.Diagnostics.CodeAnalysis.MaybeNullWhen(false)] out NodeState node) => _nodes.TryGetValue(id, out node);

    private static long Hours(Instrument i) => (i.DeliveryEnd - i.DeliveryStart) / DeliveryCalendar.NsPerHour;

    /// <summary>GPUs the provider can still commit in every hour of the window (negative when a node went down under committed sells).</summary>
    public long FreeGpus(long provider, Instrument i)
    {
        if (!_byPool.TryGetValue((provider, i.Gpu, i.Region), out List<NodeState>? pool)) return 0;
        long min = long.MaxValue;
        for (long h = i.DeliveryStart; h < i.DeliveryEnd; h += DeliveryCalendar.NsPerHour)
        {
            long free = -_committed.GetValueOrDefault((provider, i.Gpu, i.Region, h));
            foreach (NodeState n in pool)
                if (n.DownSince is null) free += n.Gpus - _leased.GetValueOrDefault((n.Id, h));
            min = Math.Min(min, free);
        }
        return min == long.MaxValue ? 0 : min;
    }

    /// <summary>A node of the pool that is down (the lowest id), or 0.</summary>
    public long DownNode(long provider, GpuClass gpu, string region)
    {
        if (!_byPool.TryGetValue((provider, gpu, region), out List<NodeState>? pool)) return 0;
        foreach (NodeState n in pool) if (n.DownSince is not null) return n.Id;
        return 0;
    }

    /// <summary>Commits (or, negative, releases) GPUs of the provider for every hour of the window.</summary>
    public void Commit(long provider, Instrument i, int gpus)
    {
        if (gpus == 0) return;
        for (long h = i.DeliveryStart; h < i.DeliveryEnd; h += DeliveryCalendar.NsPerHour)
        {
            var key = (provider, i.Gpu, i.Region, h);
            int v = _committed.GetValueOrDefault(key) + gpus;
            if (v < 0) throw new InvalidOperationException("Committed capacity went below zero: capacity accounting is broken.");
            if (v == 0) _committed.Remove(key);
            else _committed[key] = v;
        }
    }

    /// <summary>
    /// First fit: the provider's nodes that are up (by id) with room in every hour of the window take the GPUs. What no
    /// node has room for in the whole window is placed hour by hour, first fit again: a node that was down while others
    /// were leased leaves the pool's free hours on different nodes, and a sell is backed by GPUs free hour by hour
    /// (<see cref="FreeGpus"/>), so every hour has the room. Such a node is named with the most GPUs it gives in one hour.
    /// </summary>
    public List<(long Node, int Gpus)> Allocate(long provider, Instrument i, int gpus, long leaseId)
    {
        var result = new List<(long, int)>();
        int left = gpus;
        if (_byPool.TryGetValue((provider, i.Gpu, i.Region), out List<NodeState>? pool))
        {
            foreach (NodeState n in pool)
            {
                if (left == 0) break;
                if (n.DownSince is not null) continue;
                int room = n.Gpus;
                for (long h = i.DeliveryStart; h < i.DeliveryEnd; h += DeliveryCalendar.NsPerHour) room = Math.Min(room, n.Gpus - _leased.GetValueOrDefault((n.Id, h)));
                int take = Math.Min(room, left);
                if (take <= 0) continue;
                for (long h = i.DeliveryStart; h < i.DeliveryEnd; h += DeliveryCalendar.NsPerHour) _leased[(n.Id, h)] = _leased.GetValueOrDefault((n.Id, h)) + take;
                result.Add((n.Id, take));
                LeaseOn(n.Id, leaseId);
                left -= take;
            }
            if (left > 0)
            {
                var byHour = new Dictionary<long, int>(); // node → the most GPUs it gives in one hour
                for (long h = i.DeliveryStart; h < i.DeliveryEnd; h += DeliveryCalendar.NsPerHour)
                {
                    int need = left;
                    foreach (NodeState n in pool)
                    {
                        if (need == 0) break;
                        if (n.DownSince is not null) continue;
                        int take = Math.Min(need, n.Gpus - _leased.GetValueOrDefault((n.Id, h)));
                        if (take <= 0) continue;
                        _leased[(n.Id, h)] = _leased.GetValueOrDefault((n.Id, h)) + take;
                        byHour[n.Id] = Math.Max(byHour.GetValueOrDefault(n.Id), take);
                        need -= take;
                    }
                    if (need != 0) throw new InvalidOperationException("Committed capacity was not available at allocation: capacity accounting is broken.");
                }
                foreach (NodeState n in pool)
                {
                    if (!byHour.TryGetValue(n.Id, out int most)) continue;
                    int at = result.FindIndex(x => x.Item1 == n.Id);
                    if (at >= 0) result[at] = (n.Id, result[at].Item2 + most);
                    else
                    {
                        result.Add((n.Id, most));
                        LeaseOn(n.Id, leaseId);
                    }
                }
                left = 0;
            }
        }
        if (left != 0) throw new InvalidOperationException("Committed capacity was not available at allocation: capacity accounting is broken.");
        return result;
    }

    private void LeaseOn(long node, long leaseId)
    {
        if (!_leasesOn.TryGetValue(node, out List<long>? on)) _leasesOn[node] = on = [];
        on.Add(leaseId);
    }

    /// <summary>Forgets pruned leases (<see cref="ExchangeStateMachine"/>'s Tick) on the nodes they were on; a node left with none drops its list.</summary>
    public void Forget(IReadOnlyList<(long Node, int Gpus)> nodes, HashSet<long> pruned)
    {
        foreach ((long node, _) in nodes)
            if (_leasesOn.TryGetValue(node, out List<long>? on) && on.RemoveAll(pruned.Contains) > 0 && on.Count == 0) _leasesOn.Remove(node);
    }

    /// <summary>Leases with GPUs on the node, oldest first.</summary>
    public IReadOnlyList<long> LeasesOn(long node) => _leasesOn.TryGetValue(node, out List<long>? on) ? on : [];

    public bool AnyDown(IReadOnlyList<(long Node, int Gpus)> nodes)
    {
        foreach ((long id, _) in nodes) if (_nodes[id].DownSince is not null) return true;
        return false;
    }

    /// <summary>Nodes with leases on them, each with its leases oldest first: for snapshots.</summary>
    public IReadOnlyDictionary<long, List<long>> LeasesOnAll => _leasesOn;

    /// <summary>Restores capacity as a snapshot recorded it (nodes are added first, with <see cref="AddNode"/>, in id order).</summary>
    public void Restore(IEnumerable<KeyValuePair<(long Provider, GpuClass Gpu, string Region, long Hour), int>> committed,
        IEnumerable<KeyValuePair<(long Node, long Hour), int>> leased, IEnumerable<KeyValuePair<long, List<long>>> leasesOn)
    {
        foreach (var kv in committed)
            if (kv.Value <= 0 || !_committed.TryAdd(kv.Key, kv.Value)) throw new InvalidDataException($"Committed capacity {kv.Key} is restored twice or not positive.");
        foreach (var kv in leased)
            if (kv.Value <= 0 || !_nodes.ContainsKey(kv.Key.Node) || !_leased.TryAdd(kv.Key, kv.Value)) throw new InvalidDataException($"Leased capacity {kv.Key} is restored twice, not positive, or on no node.");
        foreach (var kv in leasesOn)
            if (!_nodes.ContainsKey(kv.Key) || !_leasesOn.TryAdd(kv.Key, kv.Value)) throw new InvalidDataException($"Leases on node {kv.Key} are restored twice or on no node.");
    }

    /// <summary>GPUs committed to sells, per (provider, class, region, hour): for the invariants.</summary>
    public IReadOnlyDictionary<(long Provider, GpuClass Gpu, string Region, long Hour), int> Committed => _committed;

    /// <summary>GPUs leased per (node, hour): for the invariants.</summary>
    public IReadOnlyDictionary<(long Node, long Hour), int> Leased => _leased;
}

/// <summary>Leases by id, by participant, and in order of their delivery start (checked once as they start).</summary>
internal sealed class LeaseBook
{
    private readonly Dictionary<long, Lease> _leases = [];
    private readonly List<long> _ids = [];
    private readonly Dictionary<long, List<long>> _byParticipant = [];
    private readonly PriorityQueue<long, (long Start, long Id)> _starting = new();

    public int Count => _leases.Count;

    public IEnumerable<Lease> All => _ids.Select(id => _leases[id]);

    public IReadOnlyList<long> Ids => _ids;

    public void Add(Lease lease)
    {
        _leases.Add(lease.Id, lease);
        _ids.Add(lease.Id);
        foreach (long who in lease.Buyer == lease.Payee ? [lease.Buyer] : new[] { lease.Buyer, lease.Payee })
        {
            if (!_byParticipant.TryGetValue(who, out List<long>? list)) _byParticipant[who] = list = [];
            list.Add(lease.Id);
        }
        _starting.Enqueue(lease.Id, (lease.Start, lease.Id));
    }

    /// <summary>Leases not yet handed out by <see cref="StartingBy"/>: for snapshots.</summary>
    public IEnumerable<long> NotStarted => _starting.UnorderedItems.Select(x => x.Element);

    /// <summary>Restores a lease as a snapshot recorded it (in id order, as they were added); <paramref name="notStarted"/>: still waiting for its start.</summary>
    public void Restore(Lease lease, bool notStarted)
    {
        if (_leases.ContainsKey(lease.Id) || (_ids.Count > 0 && _ids[^1] >= lease.Id)) throw new InvalidDataException($"Lease {lease.Id} is restored twice or out of order.");
        _leases.Add(lease.Id, lease);
        _ids.Add(lease.Id);
        foreach (long who in lease.Buyer == lease.Payee ? [lease.Buyer] : new[] { lease.Buyer, lease.Payee })
        {
            if (!_byParticipant.TryGetValue(who, out List<long>? list)) _byParticipant[who] = list = [];
            list.Add(lease.Id);
        }
        if (notStarted) _starting.Enqueue(lease.Id, (lease.Start, lease.Id));
    }

    public Lease Get(long id) => _leases[id];

    /// <summary>
    /// Removes leases (all handed out by <see cref="StartingBy"/> already) from the book and its indexes, keeping the
    /// order of the rest.
    /// </summary>
    public void Remove(HashSet<long> pruned)
    {
        if (pruned.Count == 0) return;
        var participants = new SortedSet<long>();
        foreach (long id in pruned)
        {
            Lease lease = _leases[id];
            participants.Add(lease.Buyer);
            participants.Add(lease.Payee);
            _leases.Remove(id);
        }
        _ids.RemoveAll(pruned.Contains);
        foreach (long who in participants)
            if (_byParticipant.TryGetValue(who, out List<long>? list) && list.RemoveAll(pruned.Contains) > 0 && list.Count == 0) _byParticipant.Remove(who);
    }

    public bool TryGet(long id, [System.Diagnostics.CodeAnalysis.MaybeNullWhen(false)] out Lease lease) => _leases.TryGetValue(id, out lease);

    public IReadOnlyList<long> Of(long participant) => _byParticipant.TryGetValue(participant, out List<long>? l) ? l : [];

    /// <summary>Whether a lease not yet handed out by <see cref="StartingBy"/> starts at or before <paramref name="now"/>.</summary>
    public bool AnyStartingBy(long now) => _starting.TryPeek(out _, out (long Start, long Id) key) && key.Start <= now;

    /// <summary>Leases whose delivery starts at or before <paramref name="now"/>, each once, in start order.</summary>
    public List<Lease> StartingBy(long now)
    {
        var due = new List<Lease>();
        while (_starting.TryPeek(out long id, out (long Start, long Id) key) && key.Start <= now)
        {
            _starting.Dequeue();
            due.Add(_leases[id]);
        }
        return due;
    }
}
