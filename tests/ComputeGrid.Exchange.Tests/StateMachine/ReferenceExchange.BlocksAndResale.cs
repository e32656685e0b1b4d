using ComputeGrid.Exchange.Instruments;
using ComputeGrid.Exchange.Matching;
using ComputeGrid.Exchange.StateMachine;
using ComputeGrid.Exchange.Trading;
using ComputeGrid.Ledger;

namespace ComputeGrid.Exchange.Tests.StateMachine;

/// <summary>
/// The reference's resale and block orders, written plainly from the old service's semantics (no code shared with the
/// state machine). Resale: a lease's buyer sells GPUs of its lease on an instrument it covers; the lease's time offered
/// or sold in an hour is not stored but summed from its open resale sells and the leases resold from it. Blocks: a
/// quote walks each hour's asks; a fillable block within its limit and the buyer's balance buys every hour with a
/// fill-or-kill buy at the hour's worst quoted price.
/// </summary>
public sealed partial class ReferenceExchange
{
    // ---- resale

    private ReferenceResult Resell(in ExchangeCommand c, List<FillRecord> fills)
    {
        if (Untradable(in c, out Instrument instrument, out long hours) is { } untradable) return untradable;
        if (c.TimeInForce != TimeInForce.GoodTillCancel && c.TimeInForce != TimeInForce.ImmediateOrCancel && c.TimeInForce != TimeInForce.FillOrKill)
            return Refuse(ExchangeError.InvalidRequest);
        PriceBand band = instrument.Band;
        RejectReason off = c.Price <= 0 ? RejectReason.PriceMustBePositive
            : c.Price < band.MinPrice || c.Price > band.MaxPrice ? RejectReason.PriceOutsideBand
            : (c.Price - band.MinPrice) % band.Tick != 0 ? RejectReason.PriceNotOnTick : RejectReason.None;
        if (off != RejectReason.None) return Refuse(ExchangeError.BookRejected, RefusalDetail.PriceOffBand, 0, off);
        ReferenceOrderBook? book = _books.GetValueOrDefault(instrument.Id);
        if (c.TimeInForce == TimeInForce.FillOrKill)
        {
            long fillable = 0;
            foreach (RestingOrder o in book is null ? [] : book.Orders().Where(o => o.Side == Side.Buy))
            {
                if (o.Price < c.Price || o.Owner == c.Owner) break;
                fillable += o.Remaining;
            }
            if (fillable < c.Quantity) return Refuse(ExchangeError.BookRejected, RefusalDetail.FillOrKillUnfillable, 0, RejectReason.FillOrKillUnfillable);
        }
        if (c.TimeInForce == TimeInForce.GoodTillCancel && book is not null && book.Count >= _ordersPerBookMax) return Refuse(ExchangeError.BookRejected, book: RejectReason.BookFull);
        if (LeaseTimeRefusal(c.Owner, c.Target, instrument, c.Quantity / hours) is ReferenceResult refused) return refused;

        var order = new Order { Id = (long)_seq, Owner = c.Owner, Instrument = instrument, Side = Side.Sell, Limit = c.Price, Remaining = c.Quantity, ResoldLease = c.Target };
        _orders.Add(order.Id, order);
        if (book is null) _books[instrument.Id] = new ReferenceOrderBook(band, _ordersPerBookMax);
        return RunBook(instrument.Id, new OrderCommand
        {
            Kind = CommandKind.Place, Side = Side.Sell, Type = OrderType.Limit, TimeInForce = c.TimeInForce, OrderId = order.Id, Owner = c.Owner,
            Price = c.Price, Quantity = c.Quantity, Timestamp = _now,
        }, order.Id, fills);
    }

    /// <summary>GPUs of a lease offered or sold in an hour: its open resale sells' and the leases resold from it.</summary>
    private long ResoldIn(long lease, long hour) =>
        _orders.Values.Where(o => o.ResoldLease == lease && o.Instrument.DeliveryStart <= hour && hour < o.Instrument.DeliveryEnd).Sum(o => o.Remaining / HoursOf(o.Instrument))
        + _leases.Where(l => l.Parent == lease && l.Start <= hour && hour < l.End).Sum(l => (long)l.Gpus);

    /// <summary>Why <paramref name="owner"/> may not offer <paramref name="gpus"/> more GPUs of the lease on <paramref name="i"/>; null when it may.</summary>
    private ReferenceResult? LeaseTimeRefusal(long owner, long leaseId, Instrument i, long gpus)
    {
        LeaseRecord? lease = _leases.Find(l => l.Id == leaseId);
        if (lease is null) return Refuse(ExchangeError.UnknownLease);
        if (lease.Buyer != owner) return Refuse(ExchangeError.NotOwner);
        if (IsPledged(leaseId)) return Refuse(ExchangeError.LeasePledged);
        if (lease.Status != LeaseStatus.Active) return Refuse(ExchangeError.InsufficientCapacity, RefusalDetail.LeaseNotActive, (long)lease.Status);
        Instrument? leased = InstrumentOf(lease.Instrument);
        bool covers = leased is not null && leased.Gpu == i.Gpu && leased.Region == i.Region && lease.Start <= i.DeliveryStart && i.DeliveryEnd <= lease.End
                      && i.DeliveryStart >= _now;
        if (!covers) return Refuse(ExchangeError.InsufficientCapacity, RefusalDetail.LeaseDoesNotCover, lease.Id);
        long free = HourStarts(i).Min(h => lease.Gpus - ResoldIn(lease.Id, h));
        if (free < gpus) return Refuse(ExchangeError.InsufficientCapacity, RefusalDetail.LeaseTimeShort, free);
        return null;
    }

    private LeaseRecord NewResoldLease(Order buy, Order sell, LeaseRecord parent, long id, int gpus, long price, long quantity)
    {
        Instrument i = buy.Instrument;
        long notional = checked(price * quantity);
        var lease = new LeaseRecord
        {
            Id = id, Instrument = i.Id, Buyer = buy.Owner, Provider = parent.Provider, Payee = sell.Owner, Parent = parent.Id, Start = i.DeliveryStart,
            End = i.DeliveryEnd, Gpus = gpus, Price = price, Notional = notional, Escrow = ChartOfAccounts.ObjectAccount(AccountCode.LeaseEscrow, _epoch, (ulong)id),
            PayeeAccount = ExchangeStateMachine.TradingAccount(sell.Owner), Nodes = parent.Nodes.ToList(), Reserve = 0,
        };
        _leases.Add(lease);
        CreateAccount(lease.Escrow, AccountFlags.DebitsMustNotExceedCredits);
        Post(ExchangeStateMachine.TradingAccount(buy.Owner), Escrow, notional);
        Post(Escrow, lease.Escrow, notional);
        _traders[buy.Owner].Cash -= notional;
        return lease;
    }

    /// <summary>Leases resold from a delivered lease are delivered for the overlap (at most what they have left), down the chain.</summary>
    private void DeliverResold(LeaseRecord lease, long from, long to)
    {
        foreach (LeaseRecord child in _leases.Where(l => l.Parent == lease.Id && l.Start < to && l.End > from).ToList())
        {
            long gpuHours = Math.Min(child.Gpus * ((Math.Min(to, child.End) - Math.Max(from, child.Start)) / NsPerHour), child.GpuHours - child.Delivered);
            if (child.Status == LeaseStatus.Active && gpuHours > 0) PayFor(child, gpuHours);
            DeliverResold(child, from, to);
        }
    }

    /// <summary>A failed lease's resting resale sells are cancelled; leases resold from it are refunded (no penalty), down the chain.</summary>
    private void FailResale(LeaseRecord lease)
    {
        foreach (Order o in _orders.Values.Where(o => o.ResoldLease == lease.Id).OrderBy(o => o.Id).ToList())
        {
            RunBook(o.Instrument.Id, new OrderCommand { Kind = CommandKind.Cancel, OrderId = o.Id, Owner = o.Owner, Side = o.Side, Timestamp = _now }, o.Id, []);
            _ended[o.Id] = (OrderEndReason.LeaseEnded, lease.Id);
        }
        foreach (LeaseRecord child in _leases.Where(l => l.Parent == lease.Id && l.Status == LeaseStatus.Active).ToList())
        {
            long refund = child.Notional - child.Paid - child.Refunded;
            if (refund > 0) Post(child.Escrow, ExchangeStateMachine.TradingAccount(child.Buyer), refund);
            _traders[child.Buyer].Cash += refund;
            child.Refunded += refund;
            child.Status = LeaseStatus.Failed;
            FailResale(child);
            LeaseFailed(child, refund);
        }
    }

    // ---- blocks

    private ReferenceResult Block(in ExchangeCommand c, List<FillRecord> fills)
    {
        BlockRule rule = c.Gpus <= 0 ? BlockRule.GpusNotPositive
            : c.Price <= 0 ? BlockRule.LimitNotPositive
            : !GpuClasses.IsDefined(c.Gpu) ? BlockRule.UnknownGpuClass
            : c.Region is null || !_registry.Schedule.Regions.Contains(c.Region) ? BlockRule.UnknownRegion
            : c.From % NsPerHour != 0 || c.To % NsPerHour != 0 ? BlockRule.NotWholeHours
            : c.To <= c.From ? BlockRule.EndNotAfterStart
            : ((Int128)c.To - c.From) / NsPerHour > ExchangeStateMachine.BlockHoursMax ? BlockRule.TooLong
            : (Int128)GpuClasses.Spec(c.Gpu).Band.MaxPrice * c.Gpus * ((c.To - c.From) / NsPerHour) > long.MaxValue ? BlockRule.NotionalOverflows
            : BlockRule.None;
        if (rule != BlockRule.None)
            return Refuse(rule == BlockRule.NotionalOverflows ? ExchangeError.NotionalOverflows : ExchangeError.InvalidRequest, RefusalDetail.BlockInvalid, (long)rule);
        if (!_traders.ContainsKey(c.Owner)) return Refuse(ExchangeError.UnknownTrader);

        // The quote: each hour's asks in priority order, expired ones skipped, stopping at the buyer's own.
        var legs = new List<(Instrument Instrument, long Cost, long Worst, int Makers)>();
        long? notTrading = null, shortHour = null;
        long total = 0, makers = 0;
        for (long hour = c.From; hour < c.To; hour += NsPerHour)
        {
            long h = hour;
            GpuClass gpu = c.Gpu;
            string region = c.Region!;
            Instrument? i = _registry.Active.FirstOrDefault(x => x.Kind == DeliveryKind.HourlySpot && x.Gpu == gpu && x.Region == region && x.DeliveryStart == h);
            if (i is null || _now < i.TradingStart || _now >= i.TradingEnd)
            {
                notTrading ??= hour;
                continue;
            }
            long need = c.Gpus, cost = 0, worst = 0;
            int count = 0;
            foreach (RestingOrder o in _books.TryGetValue(i.Id, out ReferenceOrderBook? book) ? book.Orders().Where(o => o.Side == Side.Sell) : [])
            {
                if (o.ExpiresAt != 0 && o.ExpiresAt <= _now) continue;
                if (o.Owner == c.Owner || need == 0) break;
                long take = Math.Min(need, o.Remaining);
                cost += take * o.Price;
                worst = o.Price;
                count++;
                need -= take;
            }
            if (need > 0) shortHour ??= hour;
            legs.Add((i, cost, worst, count));
            total += cost;
            makers += count;
        }
        if (notTrading is long first) return Refuse(ExchangeError.InstrumentNotTrading, RefusalDetail.BlockNotTrading, first);
        if (shortHour is long firstShort) return Refuse(ExchangeError.BookRejected, RefusalDetail.BlockShort, firstShort);
        long gpuHours = (long)c.Gpus * legs.Count;
        long average = (total + gpuHours - 1) / gpuHours;
        if (average > c.Price) return Refuse(ExchangeError.BookRejected, RefusalDetail.BlockAboveLimit, average);
        if (makers + 1 > LedgerLimits.BatchEventsMax) return Refuse(ExchangeError.BookRejected, RefusalDetail.BlockTooManyFills, makers);
        long available = Available(c.Owner)!.Value;
        if (available < total) return Refuse(ExchangeError.InsufficientBalance, RefusalDetail.BalanceShort, available);

        // Filled: the books drop what expired, then each hour is bought whole at its worst quoted price.
        foreach (var leg in legs) if (_books.ContainsKey(leg.Instrument.Id)) ExpireBook(leg.Instrument.Id);
        long paid = 0;
        foreach (var leg in legs)
        {
            _orders.Add((long)_seq, new Order { Id = (long)_seq, Owner = c.Owner, Instrument = leg.Instrument, Side = Side.Buy, Limit = leg.Worst, Remaining = c.Gpus });
            int before = fills.Count;
            RunBook(leg.Instrument.Id, new OrderCommand
            {
                Kind = CommandKind.Place, Side = Side.Buy, Type = OrderType.Limit, TimeInForce = TimeInForce.FillOrKill, OrderId = (long)_seq, Owner = c.Owner,
                Price = leg.Worst, Quantity = c.Gpus, Timestamp = _now,
            }, (long)_seq, fills);
            long cost = fills.Skip(before).Sum(f => f.Price * f.Quantity);
            if (_orders.ContainsKey((long)_seq) || cost != leg.Cost)
                throw new InvalidOperationException($"Reference: block {_seq}'s leg {leg.Instrument.Symbol} traded {cost}, quoted {leg.Cost}.");
            paid += cost;
        }
        return new ReferenceResult(ExchangeError.None, RejectReason.None, OrderStatus.Filled, RefusalDetail.None, 0, (long)_seq, 0, fills, paid);
    }
}
