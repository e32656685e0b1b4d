using ComputeGrid.Exchange.Trading;

namespace ComputeGrid.Exchange.StateMachine;

public sealed partial class ExchangeStateMachine
{
    // ================================================================== what the host asks before it sends clock commands

    /// <summary>
    /// Would a <see cref="ExchangeCommandKind.Tick"/> at <paramref name="now"/> change anything: list or expire an
    /// instrument, expire a good-till-time order, fail a lease entering delivery on a node that is down, or prune? The
    /// host ticks every second and journals only the ticks that are due, so a quiet exchange's journal does not grow.
    /// </summary>
    public bool TickDue(long now)
    {
        if (_instruments.Now is not long last) return true;
        if (now - _lastPrune >= PruneEveryNs) return true;
        foreach (var i in _instruments.Active)
            if (!i.IsTradingAt(now)) return true;
        if (_instruments.Schedule.OpeningIn(last, now).Count > 0) return true;
        foreach (var book in _books.Values)
            if (book.NextExpiry <= now) return true;
        return _leases.AnyStartingBy(now) || LoansDue(now);
    }

    /// <summary>Nodes that are up and carry a lease in delivery at <paramref name="now"/> (active, started, not ended), by id.</summary>
    public IReadOnlyList<long> NodesInDelivery(long now)
    {
        var nodes = new SortedSet<long>();
        foreach (Lease lease in _leases.All)
        {
            if (lease.Status != LeaseStatus.Active || lease.Start > now || lease.End <= now) continue;
            foreach ((long node, _) in lease.Nodes)
                if (_capacity.TryGetNode(node, out NodeState? n) && n.DownSince is null) nodes.Add(node);
        }
        return [.. nodes];
    }

    // ================================================================== paged views (copies), for the API

    /// <summary>How many orders a trader has open.</summary>
    public int OpenOrderCount(long owner) => _traders.TryGetValue(owner, out TraderState? t) ? t.OpenOrders.Count : 0;

    /// <summary>Open orders (of one owner, or all) with ids after <paramref name="after"/>, by id, at most <paramref name="limit"/>.</summary>
    public IReadOnlyList<OpenOrder> OpenOrders(long? owner, long after, int limit)
    {
        IEnumerable<long> ids = owner is long who ? (_traders.TryGetValue(who, out TraderState? t) ? t.OpenOrders : []) : _orders.Keys;
        return ids.Where(id => id > after).Order().Take(limit).Select(id => View(_orders[id])).ToList();
    }

    /// <summary>Leases (of one participant, or all) with ids after <paramref name="after"/>, by id, at most <paramref name="limit"/>.</summary>
    public IReadOnlyList<LeaseView> Leases(long? participant, long after, int limit) =>
        (participant is long who ? _leases.Of(who) : _leases.Ids).Where(id => id > after).Order().Take(limit).Select(id => View(_leases.Get(id))).ToList();
}
