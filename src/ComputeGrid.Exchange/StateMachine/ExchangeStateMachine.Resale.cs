using ComputeGrid.Core;
using ComputeGrid.Exchange.Instruments;
using ComputeGrid.Exchange.Matching;
using ComputeGrid.Exchange.Trading;
using ComputeGrid.Ledger;

namespace ComputeGrid.Exchange.StateMachine;

/// <summary>
/// Resale (the old service's <c>ResellAsync</c>): a lease's buyer offers GPUs of its lease on an instrument whose window
/// the lease covers, as a limit sell backed by the lease instead of provider capacity. While the sell rests, those
/// GPU-hours are reserved on the lease (<see cref="Lease.ResoldGpus"/>, hour → GPUs offered or sold); a cancel, an
/// unfilled rest or a smaller replace gives them back; a fill keeps them (sold). The buyer of resold time gets a lease
/// on the original lease's nodes, delivered by the original provider, paid to the reseller's trading account. When the
/// provider reports delivery of the original lease, the leases resold from it are delivered for the same hours; when it
/// fails, they fail with it (their buyers refunded; the reseller owes no penalty) and its resting resale sells are cancelled.
/// </summary>
public sealed partial class ExchangeStateMachine
{
    // Leases resold from a lease, by id (in creation order, so by id).
    private readonly Dictionary<long, List<long>> _resoldFrom = [];
    private readonly List<OrderState> _resaleSells = [];

    private CommandResult Resell(in ExchangeCommand c)
    {
        if (!_instruments.TryGet(c.Instrument, out Instrument? instrument) || !_instruments.IsActive(c.Instrument)) return Refused(ExchangeError.UnknownInstrument);
        if (!instrument.IsTradingAt(_now))
            return Refused(ExchangeError.InstrumentNotTrading, RefusalDetail.NotTrading, _now < instrument.TradingStart ? instrument.TradingStart : instrument.TradingEnd);
        if (!_traders.TryGetValue(c.Owner, out TraderState? trader)) return Refused(ExchangeError.UnknownTrader);
        long hours = instrument.Hours;
        if (c.Quantity <= 0 || c.Quantity % hours != 0) return Refused(ExchangeError.QuantityMustBeWholeGpus, RefusalDetail.NotWholeGpus, hours);
        if (c.TimeInForce is not (TimeInForce.GoodTillCancel or TimeInForce.ImmediateOrCancel or TimeInForce.FillOrKill)) return Refused(ExchangeError.InvalidRequest);
        PriceBand band = instrument.Band;
        if (c.Price <= 0 || !band.Contains(c.Price) || !band.OnTick(c.Price))
            return Refused(ExchangeError.BookRejected, RefusalDetail.PriceOffBand, 0,
                c.Price <= 0 ? RejectReason.PriceMustBePositive : !band.Contains(c.Price) ? RejectReason.PriceOutsideBand : RejectReason.PriceNotOnTick);
        _books.TryGetValue(instrument.Id, out OrderBook? current);
        if (c.TimeInForce == TimeInForce.FillOrKill && (current is null || current.AvailableToTaker(Side.Sell, c.Owner, c.Price, c.Quantity) < c.Quantity))
            return Refused(ExchangeError.BookRejected, RefusalDetail.FillOrKillUnfillable, 0, RejectReason.FillOrKillUnfillable);
        if (c.TimeInForce == TimeInForce.GoodTillCancel && current is not null && current.Count >= current.OrdersMax)
            return Refused(ExchangeError.BookRejected, book: RejectReason.BookFull);
        long gpus = c.Quantity / hours;
        if (CheckLeaseTime(c.Owner, c.Target, instrument, gpus) is CommandResult refused) return refused;

        // Accepted: the lease's time is reserved for the sell.
        OrderState order = NewOrder();
        order.Id = (long)_seq;
        order.Owner = c.Owner;
        order.Instrument = instrument;
        order.Side = Side.Sell;
        order.Limit = c.Price;
        order.Remaining = c.Quantity;
        order.HoldId = 0;
        order.HoldAmount = 0;
        order.ResoldLease = c.Target;
        CommitSell(order, (int)gpus);
        AddOrder(order, trader);
        var command = new OrderCommand
        {
            Kind = CommandKind.Place, Side = Side.Sell, Type = OrderType.Limit, TimeInForce = c.TimeInForce, OrderId = order.Id, Owner = c.Owner,
            Price = c.Price, Quantity = c.Quantity, Timestamp = _now,
        };
        return ApplyBook(BookFor(instrument), command, order.Id);
    }

    /// <summary>
    /// Whether <paramref name="owner"/> may offer <paramref name="gpus"/> more GPUs of lease <paramref name="leaseId"/> on
    /// <paramref name="i"/> (the old <c>ReserveLeaseTime</c>'s checks): its buyer, active, of the same class and region,
    /// covering the window, which has not started, with that many GPUs not yet offered or sold in every hour. Null when it may.
    /// </summary>
    private CommandResult? CheckLeaseTime(long owner, long leaseId, Instrument i, long gpus)
    {
        if (!_leases.TryGet(leaseId, out Lease? lease)) return Refused(ExchangeError.UnknownLease);
        if (lease.Buyer != owner) return Refused(ExchangeError.NotOwner);
        if (_leaseLoans.ContainsKey(leaseId)) return Refused(ExchangeError.LeasePledged);
        if (lease.Status != LeaseStatus.Active) return Refused(ExchangeError.InsufficientCapacity, RefusalDetail.LeaseNotActive, (long)lease.Status);
        if (!_instruments.TryGet(lease.Instrument, out Instrument? leased) || leased.Gpu != i.Gpu || leased.Region != i.Region
            || i.DeliveryStart < lease.Start || i.DeliveryEnd > lease.End || i.DeliveryStart < _now)
            return Refused(ExchangeError.InsufficientCapacity, RefusalDetail.LeaseDoesNotCover, lease.Id);
        long free = lease.Gpus;
        for (long h = i.DeliveryStart; h < i.DeliveryEnd; h += DeliveryCalendar.NsPerHour) free = Math.Min(free, lease.Gpus - lease.ResoldGpus.GetValueOrDefault(h));
        if (free < gpus) return Refused(ExchangeError.InsufficientCapacity, RefusalDetail.LeaseTimeShort, free);
        return null;
    }

    /// <summary>Commits (or, negative, releases) what backs a sell: provider capacity, or the resold lease's time.</summary>
    private void CommitSell(OrderState o, int gpus)
    {
        if (o.ResoldLease == 0)
        {
            _capacity.Commit(o.Owner, o.Instrument, gpus);
            return;
        }
        if (gpus == 0) return;
        Lease lease = _leases.Get(o.ResoldLease);
        for (long h = o.Instrument.DeliveryStart; h < o.Instrument.DeliveryEnd; h += DeliveryCalendar.NsPerHour)
        {
            int v = lease.ResoldGpus.GetValueOrDefault(h) + gpus;
            if (v < 0 || v > lease.Gpus) throw new InvalidOperationException($"Lease {lease.Id} would have {v} GPUs resold at {h}: resale accounting is broken.");
            if (v == 0) lease.ResoldGpus.Remove(h);
            else lease.ResoldGpus[h] = v;
        }
    }

    /// <summary>A trade's lease from a resale sell: the original lease's nodes and provider, paid to the reseller's trading account, no penalty reserve.</summary>
    private Lease CreateResoldLease(OrderState buy, OrderState sell, long price, long quantity)
    {
        Instrument instrument = buy.Instrument;
        Lease parent = _leases.Get(sell.ResoldLease);
        long id = NextLeaseId();
        var lease = new Lease
        {
            Id = id, Instrument = instrument.Id, Buyer = buy.Owner, Provider = parent.Provider, Payee = sell.Owner, PayeeAccount = _traders[sell.Owner].Account,
            Parent = parent.Id, Start = instrument.DeliveryStart, End = instrument.DeliveryEnd, Gpus = (int)(quantity / instrument.Hours), Price = price,
            Notional = checked(price * quantity), EscrowAccount = LeaseEscrowId(id), Nodes = parent.Nodes, PenaltyReserve = 0,
        };
        _leases.Add(lease);
        if (!_resoldFrom.TryGetValue(parent.Id, out List<long>? children)) _resoldFrom[parent.Id] = children = [];
        children.Add(id);
        return lease;
    }

    /// <summary>
    /// Delivery of [<paramref name="from"/>, <paramref name="to"/>) on lease <paramref name="leaseId"/> delivers the leases
    /// resold from it there too: each active one overlapping the interval is paid for the overlap (at most what it has
    /// left), and so on down the resale chain.
    /// </summary>
    private void DeliverResold(long leaseId, long from, long to)
    {
        if (!_resoldFrom.TryGetValue(leaseId, out List<long>? children)) return;
        foreach (long id in children)
        {
            Lease child = _leases.Get(id);
            if (child.Start >= to || child.End <= from) continue;
            if (child.Status == LeaseStatus.Active)
            {
                long hours = (Math.Min(to, child.End) - Math.Max(from, child.Start)) / DeliveryCalendar.NsPerHour;
                long gpuHours = Math.Min(child.Gpus * hours, child.GpuHours - child.DeliveredGpuHours);
                if (gpuHours > 0) Pay(child, gpuHours);
            }
            DeliverResold(id, from, to);
        }
    }

    /// <summary>
    /// A lease failed: its resting resale sells are cancelled (by id), and the leases resold from it fail with
    /// it — their buyers refunded what is undelivered, no penalty — and so on down the resale chain.
    /// </summary>
    private void EndResale(Lease lease)
    {
        if (lease.ResoldGpus.Count > 0 && _traders.TryGetValue(lease.Buyer, out TraderState? reseller))
        {
            _resaleSells.Clear();
            foreach (long id in reseller.OpenOrders)
                if (_orders[id].ResoldLease == lease.Id) _resaleSells.Add(_orders[id]);
            _resaleSells.Sort((a, b) => a.Id.CompareTo(b.Id));
            foreach (OrderState o in _resaleSells)
            {
                ApplyBook(BookFor(o.Instrument), new OrderCommand { Kind = CommandKind.Cancel, OrderId = o.Id, Owner = o.Owner, Side = o.Side, Timestamp = _now }, o.Id);
                _ended[o.Id] = (OrderEndReason.LeaseEnded, lease.Id);
            }
        }
        if (!_resoldFrom.TryGetValue(lease.Id, out List<long>? children)) return;
        foreach (long id in children)
        {
            Lease child = _leases.Get(id);
            if (child.Status != LeaseStatus.Active) continue;
            long refund = child.Notional - child.Paid - child.Refunded;
            TraderState buyer = _traders[child.Buyer];
            if (refund > 0)
            {
                _plan.Transfer(new Transfer
                {
                    Id = NextTransferId(), DebitAccountId = child.EscrowAccount, CreditAccountId = buyer.Account, Amount = refund,
                    Asset = Asset.Usd.Code, Code = RefundCode, UserData64 = (ulong)child.Id,
                });
                buyer.Available = checked(buyer.Available + refund);
            }
            child.Refunded += refund;
            child.Status = LeaseStatus.Failed;
            EndResale(child);
            PledgedLeaseFailed(child, refund);
        }
    }
}
