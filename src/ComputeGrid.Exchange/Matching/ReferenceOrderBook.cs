namespace ComputeGrid.Exchange.Matching;

/// <summary>
/// A plain, obviously-correct order book: sorted dictionaries of price levels holding lists of orders.
/// It is the oracle for <see cref="OrderBook"/> in the differential tests and the baseline of the exchange
/// benchmark. It shares the semantics, not the code.
/// </summary>
public sealed class ReferenceOrderBook
{
    private sealed class Order
    {
        public long Id, Owner, Price, Remaining, ExpiresAt;
        public Side Side;
        public bool PostOnly;
        public LinkedListNode<Order>? Node;
    }

    private readonly PriceBand _band;
    private readonly int _ordersMax;
    private readonly SortedDictionary<long, LinkedList<Order>> _bids = new(Comparer<long>.Create((a, b) => b.CompareTo(a)));
    private readonly SortedDictionary<long, LinkedList<Order>> _asks = new();
    private readonly Dictionary<long, Order> _byId = new();
    private readonly SortedSet<(long ExpiresAt, long Id)> _expiry = new();
    private List<MatchEvent> _events = new();

    public ReferenceOrderBook(PriceBand band, int ordersMax)
    {
        _band = band;
        _ordersMax = ordersMax;
    }

    public int Count => _byId.Count;

    /// <summary>Applies one command and returns its events.</summary>
    public List<MatchEvent> Apply(OrderCommand c)
    {
        _events = new List<MatchEvent>();
        while (_expiry.Count > 0 && _expiry.Min.ExpiresAt <= c.Timestamp)
        {
            var o = _byId[_expiry.Min.Id];
            Add(EventKind.Cancelled, o.Side, o.Id, o.Owner, o.Price, o.Remaining, c.Timestamp, CancelReason.Expired);
            RemoveOrder(o);
        }
        switch (c.Kind)
        {
            case CommandKind.Place: Place(c); break;
            case CommandKind.Cancel: Cancel(c); break;
            case CommandKind.Replace: Replace(c); break;
            case CommandKind.Expire: break;
            default: Reject(c, RejectReason.InvalidCommand); break;
        }
        return _events;
    }

    private SortedDictionary<long, LinkedList<Order>> Own(Side s) => s == Side.Buy ? _bids : _asks;
    private SortedDictionary<long, LinkedList<Order>> Opposite(Side s) => s == Side.Buy ? _asks : _bids;

    private static bool Crosses(Side side, long takerLimit, long makerPrice) => side == Side.Buy ? makerPrice <= takerLimit : makerPrice >= takerLimit;

    private void Place(OrderCommand c)
    {
        bool market = c.Type == OrderType.Market;
        if (c.OrderId <= 0) { Reject(c, RejectReason.InvalidCommand); return; }
        if (c.Quantity <= 0) { Reject(c, RejectReason.QuantityMustBePositive); return; }
        if (!market && c.Price <= 0) { Reject(c, RejectReason.PriceMustBePositive); return; }
        if (!market && (c.Price < _band.MinPrice || c.Price > _band.MaxPrice)) { Reject(c, RejectReason.PriceOutsideBand); return; }
        if (!market && (c.Price - _band.MinPrice) % _band.Tick != 0) { Reject(c, RejectReason.PriceNotOnTick); return; }
        if (market && c.TimeInForce == TimeInForce.GoodTillTime) { Reject(c, RejectReason.MarketOrderMustBeImmediate); return; }
        if (c.TimeInForce == TimeInForce.GoodTillTime && c.ExpiresAt <= c.Timestamp) { Reject(c, RejectReason.ExpiryMustBeInTheFuture); return; }
        if (_byId.ContainsKey(c.OrderId)) { Reject(c, RejectReason.DuplicateOrderId); return; }
        long limit = market ? (c.Side == Side.Buy ? long.MaxValue : long.MinValue) : c.Price;
        var opposite = Opposite(c.Side);
        bool crosses = opposite.Count > 0 && Crosses(c.Side, limit, opposite.First().Key);
        if (c.PostOnly && (market || crosses)) { Reject(c, RejectReason.PostOnlyWouldTake); return; }
        if (c.TimeInForce == TimeInForce.FillOrKill)
        {
            // Walk the makers this order would meet, stopping at its own first order (self-trade prevention).
            long available = 0;
            foreach (var level in opposite.Where(l => Crosses(c.Side, limit, l.Key)))
            foreach (var o in level.Value)
            {
                if (o.Owner == c.Owner) goto done;
                available += o.Remaining;
            }
            done:
            if (available < c.Quantity) { Reject(c, RejectReason.FillOrKillUnfillable); return; }
        }
        if (market && opposite.Count == 0) { Reject(c, RejectReason.NoLiquidity); return; }
        bool rests = !market && c.TimeInForce is TimeInForce.GoodTillCancel or TimeInForce.GoodTillTime;
        if (rests && _byId.Count >= _ordersMax) { Reject(c, RejectReason.BookFull); return; }

        long remaining = c.Quantity;
        bool selfTrade = false;
        while (remaining > 0 && opposite.Count > 0 && Crosses(c.Side, limit, opposite.First().Key) && !selfTrade)
        {
            var level = opposite.First();
            var maker = level.Value.First!.Value;
            if (maker.Owner == c.Owner) { selfTrade = true; break; }
            long q = Math.Min(remaining, maker.Remaining);
            _events.Add(new MatchEvent
            {
                Kind = EventKind.Trade, Side = c.Side, OrderId = c.OrderId, MakerOrderId = maker.Id, Owner = c.Owner, MakerOwner = maker.Owner,
                Price = maker.Price, Quantity = q, Timestamp = c.Timestamp,
            });
            remaining -= q;
            maker.Remaining -= q;
            if (maker.Remaining == 0) RemoveOrder(maker);
        }
        if (remaining == 0) return;
        if (selfTrade) { Add(EventKind.Cancelled, c.Side, c.OrderId, c.Owner, market ? 0 : c.Price, remaining, c.Timestamp, CancelReason.SelfTrade); return; }
        if (!rests) { Add(EventKind.Cancelled, c.Side, c.OrderId, c.Owner, market ? 0 : c.Price, remaining, c.Timestamp, CancelReason.Unfilled); return; }
        var order = new Order
        {
            Id = c.OrderId, Owner = c.Owner, Price = c.Price, Remaining = remaining, Side = c.Side, PostOnly = c.PostOnly,
            ExpiresAt = c.TimeInForce == TimeInForce.GoodTillTime ? c.ExpiresAt : 0,
        };
        var own = Own(c.Side);
        if (!own.TryGetValue(c.Price, out var list)) own[c.Price] = list = new LinkedList<Order>();
        order.Node = list.AddLast(order);
        _byId[order.Id] = order;
        if (order.ExpiresAt != 0) _expiry.Add((order.ExpiresAt, order.Id));
        Add(EventKind.Rested, c.Side, c.OrderId, c.Owner, c.Price, remaining, c.Timestamp, CancelReason.None);
    }

    private void Cancel(OrderCommand c)
    {
        if (!_byId.TryGetValue(c.OrderId, out var o)) { Reject(c, RejectReason.UnknownOrder); return; }
        if (o.Owner != c.Owner) { Reject(c, RejectReason.NotOwner); return; }
        Add(EventKind.Cancelled, o.Side, o.Id, o.Owner, o.Price, o.Remaining, c.Timestamp, CancelReason.UserCancel);
        RemoveOrder(o);
    }

    private void Replace(OrderCommand c)
    {
        if (!_byId.TryGetValue(c.OrderId, out var o)) { Reject(c, RejectReason.UnknownOrder); return; }
        if (o.Owner != c.Owner) { Reject(c, RejectReason.NotOwner); return; }
        if (c.Quantity <= 0) { Reject(c, RejectReason.QuantityMustBePositive); return; }
        if (c.Price <= 0) { Reject(c, RejectReason.PriceMustBePositive); return; }
        if (c.Price < _band.MinPrice || c.Price > _band.MaxPrice) { Reject(c, RejectReason.PriceOutsideBand); return; }
        if ((c.Price - _band.MinPrice) % _band.Tick != 0) { Reject(c, RejectReason.PriceNotOnTick); return; }
        if (c.Price == o.Price && c.Quantity <= o.Remaining)
        {
            o.Remaining = c.Quantity;
            Add(EventKind.Reduced, o.Side, o.Id, o.Owner, o.Price, o.Remaining, c.Timestamp, CancelReason.None);
            return;
        }
        var opposite = Opposite(o.Side);
        if (o.PostOnly && opposite.Count > 0 && Crosses(o.Side, c.Price, opposite.First().Key)) { Reject(c, RejectReason.PostOnlyWouldTake); return; }
        Add(EventKind.Cancelled, o.Side, o.Id, o.Owner, o.Price, o.Remaining, c.Timestamp, CancelReason.Replaced);
        RemoveOrder(o);
        Place(new OrderCommand
        {
            Kind = CommandKind.Place, Side = o.Side, Type = OrderType.Limit,
            TimeInForce = o.ExpiresAt != 0 ? TimeInForce.GoodTillTime : TimeInForce.GoodTillCancel,
            PostOnly = o.PostOnly, OrderId = o.Id, Owner = o.Owner, Price = c.Price, Quantity = c.Quantity, ExpiresAt = o.ExpiresAt, Timestamp = c.Timestamp,
        });
    }

    private void RemoveOrder(Order o)
    {
        var side = Own(o.Side);
        var list = side[o.Price];
        list.Remove(o.Node!);
        if (list.Count == 0) side.Remove(o.Price);
        _byId.Remove(o.Id);
        if (o.ExpiresAt != 0) _expiry.Remove((o.ExpiresAt, o.Id));
    }

    private void Reject(OrderCommand c, RejectReason reason) =>
        _events.Add(new MatchEvent { Kind = EventKind.Rejected, Side = c.Side, Reject = reason, OrderId = c.OrderId, Owner = c.Owner, Timestamp = c.Timestamp });

    private void Add(EventKind kind, Side side, long id, long owner, long price, long quantity, long timestamp, CancelReason reason) =>
        _events.Add(new MatchEvent { Kind = kind, Side = side, Reason = reason, OrderId = id, Owner = owner, Price = price, Quantity = quantity, Timestamp = timestamp });

    /// <summary>Every resting order in the same order as <see cref="OrderBook.Orders"/>.</summary>
    public List<RestingOrder> Orders() =>
        _bids.SelectMany(l => l.Value).Concat(_asks.SelectMany(l => l.Value))
            .Select(o => new RestingOrder(o.Id, o.Owner, o.Side, o.Price, o.Remaining, o.ExpiresAt, o.PostOnly)).ToList();

    /// <summary>L2 depth of one side, best first.</summary>
    public List<DepthLevel> Depth(Side side) =>
        Own(side).Select(l => new DepthLevel(l.Key, l.Value.Sum(o => o.Remaining), l.Value.Count)).ToList();
}
