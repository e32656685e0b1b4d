using ComputeGrid.Core;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics.X86;

namespace ComputeGrid.Exchange.Matching;

/// <summary>
/// The fast order book of one instrument: price-time priority, single-threaded, every structure allocated
/// at construction (no allocation per order in steady state).
/// <list type="bullet">
/// <item>Prices live on the instrument's tick grid inside its band, so a price level is an array slot (a
/// direct-indexed ladder); two-level bitmaps find the next non-empty level in a few instructions.</item>
/// <item>Orders are nodes of a preallocated pool, chained FIFO per level (intrusive doubly-linked list), found
/// by id through an open-addressing table; good-till-time orders sit in an indexed min-heap by expiry.</item>
/// <item>Output is a buffer of <see cref="MatchEvent"/> owned by the book, valid until the next command.</item>
/// </list>
/// Semantics (shared with <see cref="ReferenceOrderBook"/>, the oracle of the differential tests): trades at
/// the maker's price; self-trade prevention cancels the newer (taking) order's rest; market orders never
/// rest and are rejected on an empty opposite side; post-only orders that would take are rejected; fill-or-kill
/// orders fill whole or not at all; before each command, good-till-time orders expired by its timestamp leave.
/// Invariants (<see cref="AssertInvariants"/>): never crossed at rest; level totals and counts equal their
/// orders; every resting order is in the id table and, if timed, in the heap.
/// </summary>
public sealed unsafe class OrderBook
{
    // One node per cache line: a cancel touches the order and its two neighbours, never a line it does not need.
    [System.Runtime.InteropServices.StructLayout(System.Runtime.InteropServices.LayoutKind.Sequential, Size = 64)]
    private struct Node
    {
        public long Id;
        public long Owner;
        public long Remaining;
        public long ExpiresAt; // 0 = good till cancel
        public int Next;
        public int Prev;
        public int Level;
        public int HeapPos;    // -1 when not in the expiry heap
        public Side Side;
        public bool PostOnly;
    }

    private readonly PriceBand _band;
    private readonly Node* _nodes; // 64-byte aligned unmanaged pool (in _nodeBlock)
    private int _free;                 // head of the free list (through Next)
    private int _count;
    private readonly Ladder _bids;
    private readonly Ladder _asks;
    private readonly LongIntMap _byId;
    private readonly int[] _heap;      // node indexes, min-heap by (ExpiresAt, Id)
    private int _heapCount;
    private readonly MatchEvent[] _events;
    private int _eventCount;

    /// <summary>Most resting orders.</summary>
    public int OrdersMax { get; }

    /// <summary>Resting orders now.</summary>
    public int Count => _count;

    public PriceBand Band => _band;

    public OrderBook(PriceBand band, int ordersMax)
    {
        if (band.Tick <= 0 || band.MinPrice <= 0 || band.MaxPrice < band.MinPrice) throw new ArgumentException("Invalid price band.", nameof(band));
        _band = band;
        _tickReciprocal = 1.0 / band.Tick;
        OrdersMax = ordersMax;
        // Huge pages (2 MiB, via NativeBlock): cancels reach orders at random, and with 4 KiB pages most of those
        // reaches would also miss the TLB.
        _nodeBlock = new NativeBlock((nuint)Math.Max(1, ordersMax) * (nuint)sizeof(Node));
        _nodeBlock.Prefault(_nodeBlock.Bytes);
        _nodes = (Node*)_nodeBlock.Pointer;
        for (int i = 0; i < ordersMax; i++) { _nodes[i].Next = i + 1 < ordersMax ? i + 1 : -1; _nodes[i].HeapPos = -1; }
        _free = ordersMax > 0 ? 0 : -1;
        _bids = new Ladder(band.Levels, highestFirst: true);
        _asks = new Ladder(band.Levels, highestFirst: false);
        _byId = new LongIntMap(ordersMax);
        _heap = new int[ordersMax];
        // A taker can trade with every resting order, plus its own rest/cancel and the expiries before it.
        _events = new MatchEvent[2 * ordersMax + 8];
    }

    private readonly NativeBlock _nodeBlock; // owns _nodes; freed by its own finalizer with the book

    /// <summary>Applies one command; returns the events it produced (valid until the next call).</summary>
    public ReadOnlySpan<MatchEvent> Apply(in OrderCommand c)
    {
        _eventCount = 0;
        ExpireUntil(c.Timestamp);
        switch (c.Kind)
        {
            case CommandKind.Place: Place(in c, c.OrderId, c.Quantity, c.Price, c.PostOnly); break;
            case CommandKind.Cancel: Cancel(in c); break;
            case CommandKind.Replace: Replace(in c); break;
            case CommandKind.Expire: break;
            default: Reject(in c, RejectReason.InvalidCommand); break;
        }
        return new ReadOnlySpan<MatchEvent>(_events, 0, _eventCount);
    }

    /// <summary>
    /// Applies a batch of commands in order, handing each command's events to <paramref name="sink"/>. The
    /// result is exactly that of calling <see cref="Apply"/> for each; the difference is speed: while command i
    /// runs, the memory that commands i+3 … i+16 will touch (id slots, their orders, the orders beside them, the
    /// tail of the level a new order joins) is already on its way into the cache, so the random accesses of
    /// cancels and inserts stop costing a full memory round trip each.
    /// </summary>
    public void ApplyBatch<TSink>(ReadOnlySpan<OrderCommand> commands, ref TSink sink) where TSink : struct, IMatchEventSink
    {
        for (int i = 0; i < commands.Length; i++)
        {
            if (i + PrefetchSlot < commands.Length) _byId.Prefetch(commands[i + PrefetchSlot].OrderId);
            if (i + PrefetchNode < commands.Length) PrefetchOrder(in commands[i + PrefetchNode]);
            if (i + PrefetchNeighbours < commands.Length) PrefetchNeighboursOf(in commands[i + PrefetchNeighbours]);
            sink.OnEvents(i, Apply(in commands[i]));
        }
    }

    private const int PrefetchSlot = 16, PrefetchNode = 8, PrefetchNeighbours = 3;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Prefetch(int node)
    {
        if (Sse.IsSupported && node >= 0) Sse.Prefetch0(_nodes + node);
    }

    private void PrefetchOrder(in OrderCommand c)
    {
        if (c.Kind is CommandKind.Cancel or CommandKind.Replace)
        {
            if (_byId.TryGet(c.OrderId, out int n)) Prefetch(n);
        }
        else if (c.Kind == CommandKind.Place && c.Type == OrderType.Limit && _band.Contains(c.Price) && TryLevel(c.Price, out int level))
        {
            Prefetch((c.Side == Side.Buy ? _bids : _asks).Tail[level]);
        }
    }

    private void PrefetchNeighboursOf(in OrderCommand c)
    {
        if (c.Kind is CommandKind.Cancel or CommandKind.Replace && _byId.TryGet(c.OrderId, out int n))
        {
            Prefetch(_nodes[n].Prev);
            Prefetch(_nodes[n].Next);
        }
    }

    // ------------------------------------------------------------------ commands

    private void Place(in OrderCommand c, long id, long quantity, long price, bool postOnly)
    {
        if (id <= 0) { Reject(in c, RejectReason.InvalidCommand); return; }
        if (quantity <= 0) { Reject(in c, RejectReason.QuantityMustBePositive); return; }
        bool market = c.Type == OrderType.Market;
        int priceLevel = 0;
        if (!market)
        {
            if (price <= 0) { Reject(in c, RejectReason.PriceMustBePositive); return; }
            if (!_band.Contains(price)) { Reject(in c, RejectReason.PriceOutsideBand); return; }
            if (!TryLevel(price, out priceLevel)) { Reject(in c, RejectReason.PriceNotOnTick); return; }
        }
        else if (c.TimeInForce == TimeInForce.GoodTillTime) { Reject(in c, RejectReason.MarketOrderMustBeImmediate); return; }
        if (c.TimeInForce == TimeInForce.GoodTillTime && c.ExpiresAt <= c.Timestamp) { Reject(in c, RejectReason.ExpiryMustBeInTheFuture); return; }
        if (_byId.TryGet(id, out _)) { Reject(in c, RejectReason.DuplicateOrderId); return; }
        Ladder opposite = c.Side == Side.Buy ? _asks : _bids;
        int limitLevel = market ? (c.Side == Side.Buy ? int.MaxValue : int.MinValue) : priceLevel;
        bool crosses = opposite.Best >= 0 && (c.Side == Side.Buy ? opposite.Best <= limitLevel : opposite.Best >= limitLevel);
        if (postOnly && (market || crosses)) { Reject(in c, RejectReason.PostOnlyWouldTake); return; }
        if (c.TimeInForce == TimeInForce.FillOrKill && FillableQuantity(c.Side, c.Owner, limitLevel, quantity) < quantity)
        {
            Reject(in c, RejectReason.FillOrKillUnfillable);
            return;
        }
        if (market && opposite.Best < 0) { Reject(in c, RejectReason.NoLiquidity); return; }
        bool rests = !market && c.TimeInForce is TimeInForce.GoodTillCancel or TimeInForce.GoodTillTime;
        if (rests && _free < 0) { Reject(in c, RejectReason.BookFull); return; }

        long remaining = quantity;
        bool selfTrade = false;
        if (crosses) remaining = Match(in c, id, remaining, limitLevel, opposite, ref selfTrade);
        if (remaining == 0) return;
        if (selfTrade) { Emit(EventKind.Cancelled, c.Side, id, c.Owner, market ? 0 : price, remaining, c.Timestamp, CancelReason.SelfTrade); return; }
        if (!rests) { Emit(EventKind.Cancelled, c.Side, id, c.Owner, market ? 0 : price, remaining, c.Timestamp, CancelReason.Unfilled); return; }
        Rest(in c, id, price, priceLevel, remaining, postOnly);
    }

    private long Match(in OrderCommand c, long takerId, long remaining, int limitLevel, Ladder opposite, ref bool selfTrade)
    {
        bool buy = c.Side == Side.Buy;
        while (remaining > 0)
        {
            int level = opposite.Best;
            if (level < 0 || (buy ? level > limitLevel : level < limitLevel)) break;
            long levelPrice = PriceOf(level);
            int n = opposite.Head[level];
            while (n >= 0 && remaining > 0)
            {
                ref Node maker = ref _nodes[n];
                Prefetch(maker.Next); // the next maker in time priority, while this one trades
                if (maker.Owner == c.Owner) { selfTrade = true; return remaining; }
                long q = Math.Min(remaining, maker.Remaining);
                ref MatchEvent e = ref NextEvent();
                e.Kind = EventKind.Trade; e.Side = c.Side; e.Reason = CancelReason.None; e.Reject = RejectReason.None;
                e.OrderId = takerId; e.MakerOrderId = maker.Id; e.Owner = c.Owner; e.MakerOwner = maker.Owner;
                e.Price = levelPrice; e.Quantity = q; e.Timestamp = c.Timestamp;
                remaining -= q;
                maker.Remaining -= q;
                opposite.Total[level] -= q;
                int next = maker.Next;
                if (maker.Remaining == 0) Remove(n, opposite);
                n = next;
            }
        }
        return remaining;
    }

    /// <summary>
    /// How much of <paramref name="wanted"/> a taker of <paramref name="owner"/> could fill right now at
    /// <paramref name="limitPrice"/> or better (0: any price), stopping at its own first resting order as
    /// self-trade prevention would. Read-only: lets a caller refuse a fill-or-kill before it holds money for it.
    /// </summary>
    public long AvailableToTaker(Side side, long owner, long limitPrice, long wanted)
    {
        int limitLevel;
        if (limitPrice == 0) limitLevel = side == Side.Buy ? int.MaxValue : int.MinValue;
        else if (!_band.Contains(limitPrice) || !TryLevel(limitPrice, out limitLevel)) return 0;
        return FillableQuantity(side, owner, limitLevel, wanted);
    }

    /// <summary>How much a taker could fill now up to its limit, stopping at its own first resting order.</summary>
    private long FillableQuantity(Side side, long owner, int limitLevel, long wanted)
    {
        Ladder opposite = side == Side.Buy ? _asks : _bids;
        long sum = 0;
        int level = opposite.Best;
        while (level >= 0 && (side == Side.Buy ? level <= limitLevel : level >= limitLevel))
        {
            for (int n = opposite.Head[level]; n >= 0; n = _nodes[n].Next)
            {
                if (_nodes[n].Owner == owner) return sum;
                sum += _nodes[n].Remaining;
                if (sum >= wanted) return sum;
            }
            level = opposite.NextAfter(level);
        }
        return sum;
    }

    private void Rest(in OrderCommand c, long id, long price, int level, long remaining, bool postOnly)
    {
        int n = _free;
        _free = _nodes[n].Next;
        ref Node node = ref _nodes[n];
        node.Id = id;
        node.Owner = c.Owner;
        node.Remaining = remaining;
        node.ExpiresAt = c.TimeInForce == TimeInForce.GoodTillTime ? c.ExpiresAt : 0;
        node.Side = c.Side;
        node.PostOnly = postOnly;
        node.Level = level;
        Ladder ladder = c.Side == Side.Buy ? _bids : _asks;
        ladder.Append(level, n, _nodes);
        ladder.Total[level] += remaining;
        _byId.Add(id, n);
        if (node.ExpiresAt != 0) HeapPush(n);
        _count++;
        Emit(EventKind.Rested, c.Side, id, c.Owner, price, remaining, c.Timestamp, CancelReason.None);
    }

    private void Cancel(in OrderCommand c)
    {
        if (!_byId.TryGet(c.OrderId, out int n)) { Reject(in c, RejectReason.UnknownOrder); return; }
        ref Node node = ref _nodes[n];
        if (node.Owner != c.Owner) { Reject(in c, RejectReason.NotOwner); return; }
        Emit(EventKind.Cancelled, node.Side, node.Id, node.Owner, PriceOf(node.Level), node.Remaining, c.Timestamp, CancelReason.UserCancel);
        Ladder ladder = node.Side == Side.Buy ? _bids : _asks;
        ladder.Total[node.Level] -= node.Remaining;
        Remove(n, ladder);
    }

    private void Replace(in OrderCommand c)
    {
        if (!_byId.TryGet(c.OrderId, out int n)) { Reject(in c, RejectReason.UnknownOrder); return; }
        ref Node node = ref _nodes[n];
        if (node.Owner != c.Owner) { Reject(in c, RejectReason.NotOwner); return; }
        if (c.Quantity <= 0) { Reject(in c, RejectReason.QuantityMustBePositive); return; }
        if (c.Price <= 0) { Reject(in c, RejectReason.PriceMustBePositive); return; }
        if (!_band.Contains(c.Price)) { Reject(in c, RejectReason.PriceOutsideBand); return; }
        if (!TryLevel(c.Price, out int level)) { Reject(in c, RejectReason.PriceNotOnTick); return; }
        Ladder ladder = node.Side == Side.Buy ? _bids : _asks;
        if (level == node.Level && c.Quantity <= node.Remaining)
        {
            // Same price, not more: reduce in place and keep time priority.
            ladder.Total[level] -= node.Remaining - c.Quantity;
            node.Remaining = c.Quantity;
            Emit(EventKind.Reduced, node.Side, node.Id, node.Owner, c.Price, c.Quantity, c.Timestamp, CancelReason.None);
            return;
        }
        Ladder opposite = node.Side == Side.Buy ? _asks : _bids;
        bool crosses = opposite.Best >= 0 && (node.Side == Side.Buy ? opposite.Best <= level : opposite.Best >= level);
        if (node.PostOnly && crosses) { Reject(in c, RejectReason.PostOnlyWouldTake); return; }
        // Loses priority: the old order leaves, the new one enters as a fresh limit order with the same id.
        var fresh = new OrderCommand
        {
            Kind = CommandKind.Place, Side = node.Side, Type = OrderType.Limit,
            TimeInForce = node.ExpiresAt != 0 ? TimeInForce.GoodTillTime : TimeInForce.GoodTillCancel,
            PostOnly = node.PostOnly, OrderId = node.Id, Owner = node.Owner, Price = c.Price, Quantity = c.Quantity,
            ExpiresAt = node.ExpiresAt, Timestamp = c.Timestamp,
        };
        Emit(EventKind.Cancelled, node.Side, node.Id, node.Owner, PriceOf(node.Level), node.Remaining, c.Timestamp, CancelReason.Replaced);
        ladder.Total[node.Level] -= node.Remaining;
        Remove(n, ladder);
        Place(in fresh, fresh.OrderId, fresh.Quantity, fresh.Price, fresh.PostOnly);
    }

    private void ExpireUntil(long now)
    {
        while (_heapCount > 0 && _nodes[_heap[0]].ExpiresAt <= now)
        {
            int n = _heap[0];
            ref Node node = ref _nodes[n];
            Emit(EventKind.Cancelled, node.Side, node.Id, node.Owner, PriceOf(node.Level), node.Remaining, now, CancelReason.Expired);
            Ladder ladder = node.Side == Side.Buy ? _bids : _asks;
            ladder.Total[node.Level] -= node.Remaining;
            Remove(n, ladder);
        }
    }

    /// <summary>Unlinks a node from its level, the id table and the heap, and frees it. Totals are the caller's.</summary>
    private void Remove(int n, Ladder ladder)
    {
        ref Node node = ref _nodes[n];
        ladder.Unlink(node.Level, n, _nodes);
        _byId.Remove(node.Id);
        if (node.HeapPos >= 0) HeapRemove(n);
        node.Next = _free;
        _free = n;
        _count--;
    }

    private void Reject(in OrderCommand c, RejectReason reason)
    {
        ref MatchEvent e = ref NextEvent();
        e = default;
        e.Kind = EventKind.Rejected;
        e.Side = c.Side;
        e.Reject = reason;
        e.OrderId = c.OrderId;
        e.Owner = c.Owner;
        e.Timestamp = c.Timestamp;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Emit(EventKind kind, Side side, long id, long owner, long price, long quantity, long timestamp, CancelReason reason)
    {
        ref MatchEvent e = ref NextEvent();
        e.Kind = kind; e.Side = side; e.Reason = reason; e.Reject = RejectReason.None;
        e.OrderId = id; e.MakerOrderId = 0; e.Owner = owner; e.MakerOwner = 0;
        e.Price = price; e.Quantity = quantity; e.Timestamp = timestamp;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ref MatchEvent NextEvent() => ref _events[_eventCount++];

    /// <summary>The ladder slot of a price inside the band; false when the price is off the tick grid (one division).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool TryLevel(long price, out int level)
    {
        // A 64-bit division costs ~40 cycles and runs twice per new order (prefetch and place): multiply by the
        // reciprocal instead, then correct the estimate by one step either way (offsets stay far below 2^52, so
        // the double estimate is never off by more than one).
        long offset = price - _band.MinPrice;
        long tick = _band.Tick;
        long l = (long)(offset * _tickReciprocal);
        if (l * tick > offset) l--;
        else if ((l + 1) * tick <= offset) l++;
        level = (int)l;
        return l * tick == offset;
    }

    private readonly double _tickReciprocal;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private long PriceOf(int level) => _band.MinPrice + level * _band.Tick;

    // ------------------------------------------------------------------ expiry heap (indexed)

    private bool Before(int a, int b) => _nodes[a].ExpiresAt < _nodes[b].ExpiresAt || (_nodes[a].ExpiresAt == _nodes[b].ExpiresAt && _nodes[a].Id < _nodes[b].Id);

    private void HeapPush(int n)
    {
        int i = _heapCount++;
        _heap[i] = n;
        _nodes[n].HeapPos = i;
        SiftUp(i);
    }

    private void HeapRemove(int n)
    {
        int i = _nodes[n].HeapPos;
        int last = _heap[--_heapCount];
        _nodes[n].HeapPos = -1;
        if (i == _heapCount) return;
        _heap[i] = last;
        _nodes[last].HeapPos = i;
        SiftUp(i);
        SiftDown(_nodes[last].HeapPos);
    }

    private void SiftUp(int i)
    {
        int n = _heap[i];
        while (i > 0)
        {
            int p = (i - 1) >> 1;
            if (!Before(n, _heap[p])) break;
            _heap[i] = _heap[p];
            _nodes[_heap[i]].HeapPos = i;
            i = p;
        }
        _heap[i] = n;
        _nodes[n].HeapPos = i;
    }

    private void SiftDown(int i)
    {
        int n = _heap[i];
        while (true)
        {
            int c = 2 * i + 1;
            if (c >= _heapCount) break;
            if (c + 1 < _heapCount && Before(_heap[c + 1], _heap[c])) c++;
            if (!Before(_heap[c], n)) break;
            _heap[i] = _heap[c];
            _nodes[_heap[i]].HeapPos = i;
            i = c;
        }
        _heap[i] = n;
        _nodes[n].HeapPos = i;
    }

    // ------------------------------------------------------------------ queries

    /// <summary>The earliest expiry (Unix ns) of a good-till-time order resting here, or <see cref="long.MaxValue"/>.</summary>
    public long NextExpiry => _heapCount > 0 ? _nodes[_heap[0]].ExpiresAt : long.MaxValue;

    /// <summary>Best bid price, or 0 when there is none.</summary>
    public long BestBid => _bids.Best >= 0 ? PriceOf(_bids.Best) : 0;

    /// <summary>Best ask price, or 0 when there is none.</summary>
    public long BestAsk => _asks.Best >= 0 ? PriceOf(_asks.Best) : 0;

    /// <summary>Writes up to <paramref name="into"/>.Length levels of one side, best first; returns how many.</summary>
    public int Depth(Side side, Span<DepthLevel> into)
    {
        Ladder ladder = side == Side.Buy ? _bids : _asks;
        int k = 0;
        for (int level = ladder.Best; level >= 0 && k < into.Length; level = ladder.NextAfter(level))
            into[k++] = new DepthLevel(PriceOf(level), ladder.Total[level], ladder.Count[level]);
        return k;
    }

    /// <summary>A resting order by id.</summary>
    public bool TryGetOrder(long id, out RestingOrder order)
    {
        if (!_byId.TryGet(id, out int n)) { order = default; return false; }
        ref Node node = ref _nodes[n];
        order = new RestingOrder(node.Id, node.Owner, node.Side, PriceOf(node.Level), node.Remaining, node.ExpiresAt, node.PostOnly);
        return true;
    }

    /// <summary>Every resting order, bids best first then asks best first, each level in time priority (allocates; for tests and snapshots).</summary>
    public List<RestingOrder> Orders()
    {
        var list = new List<RestingOrder>(_count);
        foreach (var (ladder, side) in new[] { (_bids, Side.Buy), (_asks, Side.Sell) })
            for (int level = ladder.Best; level >= 0; level = ladder.NextAfter(level))
                for (int n = ladder.Head[level]; n >= 0; n = _nodes[n].Next)
                    list.Add(new RestingOrder(_nodes[n].Id, _nodes[n].Owner, side, PriceOf(level), _nodes[n].Remaining, _nodes[n].ExpiresAt, _nodes[n].PostOnly));
        return list;
    }

    /// <summary>
    /// Puts back a resting order as a snapshot recorded it (<see cref="Orders"/>): at the tail of its level, so orders
    /// restored in priority order keep it; no matching, no events. The expiry heap orders by (expiry, id), so restored
    /// orders leave in the same order as the originals would.
    /// </summary>
    /// <exception cref="InvalidDataException">The order cannot rest here (off the band or tick, a duplicate id, the book full, or crossing).</exception>
    public void Restore(in RestingOrder o)
    {
        if (o.Id <= 0 || o.Remaining <= 0 || o.ExpiresAt < 0 || o.Side is not (Side.Buy or Side.Sell) || !_band.Contains(o.Price) || !TryLevel(o.Price, out int level))
            throw new InvalidDataException($"Resting order {o.Id} cannot be restored: price {o.Price}, remaining {o.Remaining}, expiry {o.ExpiresAt}.");
        if (_byId.TryGet(o.Id, out _)) throw new InvalidDataException($"Resting order {o.Id} is restored twice.");
        if (_free < 0) throw new InvalidDataException($"Resting order {o.Id} does not fit: the book holds {OrdersMax}.");
        Ladder opposite = o.Side == Side.Buy ? _asks : _bids;
        if (opposite.Best >= 0 && (o.Side == Side.Buy ? opposite.Best <= level : opposite.Best >= level))
            throw new InvalidDataException($"Resting order {o.Id} would cross the book.");
        var c = new OrderCommand
        {
            Kind = CommandKind.Place, Side = o.Side, Owner = o.Owner, OrderId = o.Id,
            TimeInForce = o.ExpiresAt != 0 ? TimeInForce.GoodTillTime : TimeInForce.GoodTillCancel, ExpiresAt = o.ExpiresAt,
        };
        _eventCount = 0;
        Rest(in c, o.Id, o.Price, level, o.Remaining, o.PostOnly);
        _eventCount = 0;
    }

    /// <summary>Checks every structural invariant in full; throws <see cref="InvalidOperationException"/> naming the first broken one.</summary>
    public void AssertInvariants()
    {
        if (_bids.Best >= 0 && _asks.Best >= 0 && _bids.Best >= _asks.Best) throw new InvalidOperationException("Book crossed at rest.");
        int seen = 0, timed = 0;
        foreach (var ladder in new[] { _bids, _asks })
        {
            for (int level = 0; level < ladder.Head.Length; level++)
            {
                long total = 0;
                int count = 0;
                for (int n = ladder.Head[level]; n >= 0; n = _nodes[n].Next)
                {
                    if (_nodes[n].Remaining <= 0) throw new InvalidOperationException("Resting order without quantity.");
                    if (_nodes[n].Level != level) throw new InvalidOperationException("Order on the wrong level.");
                    if (!_byId.TryGet(_nodes[n].Id, out int m) || m != n) throw new InvalidOperationException("Resting order missing from the id table.");
                    if (_nodes[n].ExpiresAt != 0) { timed++; if (_nodes[n].HeapPos < 0 || _heap[_nodes[n].HeapPos] != n) throw new InvalidOperationException("Timed order missing from the heap."); }
                    total += _nodes[n].Remaining;
                    count++;
                }
                if (total != ladder.Total[level] || count != ladder.Count[level]) throw new InvalidOperationException("Level totals differ from their orders.");
                if ((count > 0) != ladder.IsSet(level)) throw new InvalidOperationException("Level bitmap differs from its orders.");
                seen += count;
            }
        }
        if (seen != _count || _byId.Count != _count) throw new InvalidOperationException("Order count mismatch.");
        if (timed != _heapCount) throw new InvalidOperationException("Heap size mismatch.");
    }

    // ------------------------------------------------------------------ ladder

    /// <summary>One side's levels: FIFO heads/tails, totals, counts, and a two-level bitmap of non-empty levels.</summary>
    private sealed unsafe class Ladder
    {
        public readonly int[] Head;
        public readonly int[] Tail;
        public readonly long[] Total;
        public readonly int[] Count;
        private readonly ulong[] _words;
        private readonly ulong[] _summary;
        private readonly bool _highestFirst;

        /// <summary>The best non-empty level, or -1.</summary>
        public int Best = -1;

        public Ladder(int levels, bool highestFirst)
        {
            Head = new int[levels];
            Tail = new int[levels];
            Array.Fill(Head, -1);
            Array.Fill(Tail, -1);
            Total = new long[levels];
            Count = new int[levels];
            _words = new ulong[(levels + 63) >> 6];
            _summary = new ulong[(_words.Length + 63) >> 6];
            _highestFirst = highestFirst;
        }

        public bool IsSet(int level) => (_words[level >> 6] & (1UL << level)) != 0;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Append(int level, int n, Node* nodes)
        {
            int tail = Tail[level];
            nodes[n].Prev = tail;
            nodes[n].Next = -1;
            if (tail >= 0) nodes[tail].Next = n; else { Head[level] = n; Set(level); }
            Tail[level] = n;
            Count[level]++;
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Unlink(int level, int n, Node* nodes)
        {
            int prev = nodes[n].Prev, next = nodes[n].Next;
            if (prev >= 0) nodes[prev].Next = next; else Head[level] = next;
            if (next >= 0) nodes[next].Prev = prev; else Tail[level] = prev;
            if (--Count[level] == 0) Clear(level);
        }

        private void Set(int level)
        {
            int w = level >> 6;
            _words[w] |= 1UL << level;
            _summary[w >> 6] |= 1UL << w;
            if (Best < 0 || (_highestFirst ? level > Best : level < Best)) Best = level;
        }

        private void Clear(int level)
        {
            int w = level >> 6;
            _words[w] &= ~(1UL << level);
            if (_words[w] == 0) _summary[w >> 6] &= ~(1UL << w);
            if (level == Best) Best = NextAfter(level);
        }

        /// <summary>The next non-empty level after <paramref name="level"/> in priority order, or -1.</summary>
        public int NextAfter(int level) => _highestFirst ? Below(level) : Above(level);

        private int Above(int level)
        {
            int w = level >> 6;
            int bit = (level & 63) + 1;
            ulong rest = bit == 64 ? 0 : _words[w] & (ulong.MaxValue << bit);
            if (rest != 0) return (w << 6) + BitOperations.TrailingZeroCount(rest);
            // Find the next non-empty word through the summary.
            int s = (w + 1) >> 6;
            int sb = (w + 1) & 63;
            if (s >= _summary.Length) return -1;
            ulong srest = _summary[s] & (ulong.MaxValue << sb);
            while (srest == 0)
            {
                if (++s >= _summary.Length) return -1;
                srest = _summary[s];
            }
            int word = (s << 6) + BitOperations.TrailingZeroCount(srest);
            return (word << 6) + BitOperations.TrailingZeroCount(_words[word]);
        }

        private int Below(int level)
        {
            int w = level >> 6;
            int bit = level & 63;
            ulong rest = bit == 0 ? 0 : _words[w] & (ulong.MaxValue >> (64 - bit));
            if (rest != 0) return (w << 6) + 63 - BitOperations.LeadingZeroCount(rest);
            if (w == 0) return -1;
            int s = (w - 1) >> 6;
            int sb = (w - 1) & 63;
            ulong srest = _summary[s] & (sb == 63 ? ulong.MaxValue : (1UL << (sb + 1)) - 1);
            while (srest == 0)
            {
                if (--s < 0) return -1;
                srest = _summary[s];
            }
            int word = (s << 6) + 63 - BitOperations.LeadingZeroCount(srest);
            return (word << 6) + 63 - BitOperations.LeadingZeroCount(_words[word]);
        }
    }
}

/// <summary>Receives the events of each command of <see cref="OrderBook.ApplyBatch{TSink}"/> (a struct, so calls inline and nothing allocates).</summary>
public interface IMatchEventSink
{
    /// <summary>The events of command <paramref name="index"/> of the batch (valid only during the call).</summary>
    void OnEvents(int index, ReadOnlySpan<MatchEvent> events);
}

/// <summary>A resting order as queries show it.</summary>
public readonly record struct RestingOrder(long Id, long Owner, Side Side, long Price, long Remaining, long ExpiresAt, bool PostOnly);
