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
        return _leases.AnyStartingBy(now);
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
}
