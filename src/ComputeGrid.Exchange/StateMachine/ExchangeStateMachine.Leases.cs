using ComputeGrid.Core;
using ComputeGrid.Exchange.Instruments;
using ComputeGrid.Exchange.Matching;
using ComputeGrid.Exchange.Trading;
using ComputeGrid.Ledger;

namespace ComputeGrid.Exchange.StateMachine;

public sealed partial class ExchangeStateMachine
{
    private static bool TryMul(long a, long b, out long product)
    {
        try
        {
            product = checked(a * b);
            return true;
        }
        catch (OverflowException)
        {
            product = 0;
            return false;
        }
    }

    // ================================================================== delivery and failure

    private CommandResult Deliver(in ExchangeCommand c)
    {
        if (!_leases.TryGet(c.Target, out Lease? lease)) return Refused(ExchangeError.UnknownLease);
        if (lease.Provider != c.Owner) return Refused(ExchangeError.NotOwner);
        // Delivery is reported for hours that have passed, on the hour grid of the lease's window.
        if (lease.Status != LeaseStatus.Active || c.From >= c.To || c.From < lease.Start || c.To > lease.End || c.To > _now
            || (c.From - lease.Start) % DeliveryCalendar.NsPerHour != 0 || (c.To - lease.Start) % DeliveryCalendar.NsPerHour != 0)
            return Refused(ExchangeError.InvalidDelivery);
        long gpuHours = lease.Gpus * ((c.To - c.From) / DeliveryCalendar.NsPerHour);
        if (lease.DeliveredGpuHours + gpuHours > lease.GpuHours) return Refused(ExchangeError.InvalidDelivery);
        Pay(lease, gpuHours);
        // Leases resold from it got those hours too: their resellers are paid.
        DeliverResold(lease.Id, c.From, c.To);
        // A liquidated lease whose sold time is now all delivered and paid: what its loan still owes is written off.
        EndLiquidatingLeaseLoans();
        return new CommandResult { Subject = lease.Id };
    }

    private void Pay(Lease lease, long gpuHours)
    {
        long amount = checked(lease.Price * gpuHours);
        // The last payment takes whatever is left, so the escrow always ends at exactly zero.
        if (lease.DeliveredGpuHours + gpuHours == lease.GpuHours) amount = lease.Notional - lease.Paid - lease.Refunded;
        PayDelivery(lease, amount);
        lease.DeliveredGpuHours += gpuHours;
        lease.Paid += amount;
        // A resold lease pays its reseller's trading account, which the exchange mirrors.
        if (lease.Parent is long parent)
        {
            _traders[lease.Payee].Available = checked(_traders[lease.Payee].Available + amount);
            LeaseSaleProceeds(parent, lease.Payee, amount); // time sold by a liquidation repays its loan first
        }
        if (lease.DeliveredGpuHours == lease.GpuHours)
        {
            lease.Status = LeaseStatus.Completed;
            ReleaseReserve(lease, 0);
        }
    }

    private void ReleaseReserve(Lease lease, long used)
    {
        ProviderState p = _providers[lease.Provider];
        p.CollateralAvailable = checked(p.CollateralAvailable + lease.PenaltyReserve - used);
        lease.PenaltyReserve = 0;
    }

    private CommandResult Outage(in ExchangeCommand c)
    {
        if (!_capacity.TryGetNode(c.Target, out NodeState? node)) return Refused(ExchangeError.UnknownNode);
        if (node.Provider != c.Owner) return Refused(ExchangeError.NotOwner);
        return NodeDown(c.Target, _now);
    }

    /// <summary>
    /// A node is down from <paramref name="since"/>: its leases in delivery fail (refund and penalty in one chain each);
    /// leases that start later stay (they fail at their start if it is still down); the provider's resting sells that its
    /// remaining capacity no longer backs are cancelled, newest first.
    /// </summary>
    private CommandResult NodeDown(long nodeId, long since)
    {
        if (!_capacity.TryGetNode(nodeId, out NodeState? node)) return Refused(ExchangeError.UnknownNode);
        if (node.DownSince is null) node.DownSince = Math.Min(since, _now);
        foreach (long leaseId in _capacity.LeasesOn(nodeId))
        {
            Lease lease = _leases.Get(leaseId);
            if (lease.Status == LeaseStatus.Active && lease.Start <= _now) FailLease(lease);
        }
        CancelUnbackedSells(node);
        return new CommandResult { Subject = nodeId };
    }

    private CommandResult NodeUp(long nodeId)
    {
        if (!_capacity.TryGetNode(nodeId, out NodeState? node)) return Refused(ExchangeError.UnknownNode);
        node.DownSince = null;
        return new CommandResult { Subject = nodeId };
    }

    private readonly List<OrderState> _sells = [];
    private readonly List<int> _sellBooks = [];

    private void CancelUnbackedSells(NodeState node)
    {
        // The books of the provider's sells there first drop what expired by now (as before any command on a book):
        // an expired sell backs nothing, and is not the node's to cancel. Collected before, so no order seen here
        // leaves while it is looked at.
        _sellBooks.Clear();
        foreach (long id in _traders[node.Provider].OpenOrders)
        {
            OrderState o = _orders[id];
            if (o.Side == Side.Sell && o.ResoldLease == 0 && o.Instrument.Gpu == node.Gpu && o.Instrument.Region == node.Region && !_sellBooks.Contains(o.Instrument.Id))
                _sellBooks.Add(o.Instrument.Id);
        }
        _sellBooks.Sort();
        foreach (int id in _sellBooks)
            if (_books[id].NextExpiry <= _now) ApplyBook(_books[id], new OrderCommand { Kind = CommandKind.Expire, Timestamp = _now }, 0);
        _sells.Clear();
        foreach (long id in _traders[node.Provider].OpenOrders)
        {
            OrderState o = _orders[id];
            if (o.Side == Side.Sell && o.ResoldLease == 0 && o.Instrument.Gpu == node.Gpu && o.Instrument.Region == node.Region) _sells.Add(o);
        }
        _sells.Sort((a, b) => b.Id.CompareTo(a.Id)); // newest first
        foreach (OrderState o in _sells)
        {
            if (_capacity.FreeGpus(o.Owner, o.Instrument) >= 0) continue; // this window is still backed
            var command = new OrderCommand { Kind = CommandKind.Cancel, OrderId = o.Id, Owner = o.Owner, Side = o.Side, Timestamp = _now };
            ApplyBook(BookFor(o.Instrument), command, o.Id);
            _ended[o.Id] = (OrderEndReason.NodeDown, node.Id);
        }
    }

    // Why orders ended other than by their owner (the last few thousand), for the refusals and views that mention them.
    private readonly Dictionary<long, (OrderEndReason Reason, long Value)> _ended = [];

    /// <summary>Why an order that is no longer open ended, when it was not its owner's doing and is still remembered.</summary>
    public (OrderEndReason Reason, long Value)? EndOf(long orderId) => _ended.TryGetValue(orderId, out var e) ? e : null;

    /// <summary>
    /// Refunds the undelivered part from the lease's escrow to the buyer and pays the buyer the penalty from the
    /// provider's collateral, as much as the lease's reserve covers (the rest is recorded as a shortfall) — in one
    /// linked chain. Leases resold from it fail with it, and its resting resale sells are cancelled (<see cref="EndResale"/>).
    /// </summary>
    private void FailLease(Lease lease)
    {
        long refund = lease.Notional - lease.Paid - lease.Refunded;
        long penalty = Money.MulDiv(refund, _options.PenaltyBasisPoints, 10_000);
        long paid = Math.Min(penalty, lease.PenaltyReserve);
        TraderState buyer = _traders[lease.Buyer];
        ProviderState provider = _providers[lease.Provider];
        if (refund > 0)
            _plan.Transfer(new Transfer
            {
                Id = NextTransferId(), DebitAccountId = lease.EscrowAccount, CreditAccountId = buyer.Account, Amount = refund,
                Asset = Asset.Usd.Code, Code = RefundCode, UserData64 = (ulong)lease.Id,
            });
        if (paid > 0)
            _plan.Transfer(new Transfer
            {
                Id = NextTransferId(), DebitAccountId = provider.Collateral, CreditAccountId = buyer.Account, Amount = paid,
                Asset = Asset.Usd.Code, Code = PenaltyCode, UserData64 = (ulong)lease.Id,
            });
        buyer.Available = checked(buyer.Available + refund + paid);
        ReleaseReserve(lease, paid);
        lease.Refunded += refund;
        lease.Penalty = paid;
        lease.PenaltyShortfall = penalty - paid;
        lease.Status = LeaseStatus.Failed;
        EndResale(lease);
        PledgedLeaseFailed(lease, refund + paid); // a pledged lease's refund repays its loan first
    }

    // ================================================================== pruning

    private readonly HashSet<long> _pruned = [];
    private readonly HashSet<long> _resoldByOrders = [];
    private readonly List<long> _tree = [];

    /// <summary>
    /// Forgets leases that ended (completed or failed, nothing left in their escrow to move) and whose delivery window
    /// closed at or before <paramref name="cutoff"/>, so that the state (and a snapshot, and a restart) grows with what is
    /// live, not with the history. A resale tree goes whole or not at all (a lease and every lease resold from it, all
    /// ended, none offered by an open resale sell), so what is left stays consistent (time resold from a lease equals its
    /// children). In id order, from the state alone: a replay prunes the same leases at the same Tick. Their ledger
    /// accounts stay in the ledger (empty); views of the lease answer as for an unknown one.
    /// </summary>
    private void PruneLeases(long cutoff)
    {
        _pruned.Clear();
        _resoldByOrders.Clear();
        foreach (OrderState o in _orders.Values)
            if (o.ResoldLease != 0) _resoldByOrders.Add(o.ResoldLease);
        foreach (long id in _leases.Ids)
        {
            Lease root = _leases.Get(id);
            if (root.Parent is not null || !Prunable(root, cutoff)) continue;
            _tree.Clear();
            if (CollectTree(root, cutoff)) foreach (long t in _tree) _pruned.Add(t);
        }
        if (_pruned.Count == 0) return;
        foreach (long id in _pruned)
        {
            _capacity.Forget(_leases.Get(id).Nodes, _pruned);
            _resoldFrom.Remove(id);
        }
        _leases.Remove(_pruned);
    }

    private bool Prunable(Lease lease, long cutoff) =>
        lease.Status is LeaseStatus.Completed or LeaseStatus.Failed && lease.End <= cutoff && lease.Paid + lease.Refunded == lease.Notional
        && !_resoldByOrders.Contains(lease.Id) && !_leaseLoans.ContainsKey(lease.Id);

    // Adds the lease and everything resold from it to _tree when all of them are prunable.
    private bool CollectTree(Lease lease, long cutoff)
    {
        if (!Prunable(lease, cutoff)) return false;
        _tree.Add(lease.Id);
        if (_resoldFrom.TryGetValue(lease.Id, out List<long>? children))
            foreach (long child in children)
                if (!CollectTree(_leases.Get(child), cutoff)) return false;
        return true;
    }

    // ================================================================== clock

    private const long PruneEveryNs = 3_600_000_000_000L, KeepDeliveredNs = 40L * 24 * 3_600_000_000_000L;
    private long _lastPrune;
    private readonly List<int> _closedBooks = [];
    private readonly List<RestingOrder> _restingScratch = [];

    /// <summary>
    /// Advances to the command's time: instruments listed and expired (orders of one that stopped trading cancelled),
    /// good-till-time orders expired, leases entering delivery on a node that is down failed.
    /// </summary>
    private CommandResult Tick()
    {
        InstrumentChanges changes = _instruments.Advance(_now);
        bool prune = _now - _lastPrune >= PruneEveryNs;
        if (prune)
        {
            _instruments.Prune(_now - KeepDeliveredNs);
            PruneInstrumentVwap();
            _lastPrune = _now;
            if (_ended.Count > 65_536) _ended.Clear();
        }
        _closedBooks.Clear();
        foreach ((int id, OrderBook book) in _books)
            if (!_instruments.IsActive(id) || !_instruments.Get(id).IsTradingAt(_now)) _closedBooks.Add(id);
        _closedBooks.Sort();
        foreach (int id in _closedBooks)
        {
            OrderBook book = _books[id];
            _restingScratch.Clear();
            _restingScratch.AddRange(book.Orders());
            foreach (RestingOrder o in _restingScratch)
            {
                ApplyBook(book, new OrderCommand { Kind = CommandKind.Cancel, OrderId = o.Id, Owner = o.Owner, Side = o.Side, Timestamp = _now }, o.Id);
                _ended[o.Id] = (OrderEndReason.InstrumentClosed, id);
            }
            _books.Remove(id);
        }
        // In instrument order, not the dictionary's (which depends on the history of its inserts and removals): a machine
        // restored from a snapshot expires in the same order as the one that wrote it.
        _closedBooks.Clear();
        foreach ((int id, OrderBook book) in _books)
            if (book.NextExpiry <= _now) _closedBooks.Add(id);
        _closedBooks.Sort();
        foreach (int id in _closedBooks) ApplyBook(_books[id], new OrderCommand { Kind = CommandKind.Expire, Timestamp = _now }, 0);
        foreach (Lease lease in _leases.StartingBy(_now))
            if (lease.Status == LeaseStatus.Active && lease.Parent is null && _capacity.AnyDown(lease.Nodes)) FailLease(lease); // resold ones fail with theirs
        // After the starts above: every lease that could be pruned has been handed out by StartingBy.
        if (prune) PruneLeases(_now - KeepDeliveredNs);
        TickLoans();
        return new CommandResult { Subject = changes.Listed.Count };
    }
}
