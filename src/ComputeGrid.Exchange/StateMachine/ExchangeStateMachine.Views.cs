using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using ComputeGrid.Exchange.Instruments;
using ComputeGrid.Exchange.Matching;
using ComputeGrid.Exchange.Trading;
using ComputeGrid.Ledger;

namespace ComputeGrid.Exchange.StateMachine;

/// <summary>A lease as a view sees it: a copy.</summary>
public sealed record LeaseView(long Id, int Instrument, long Buyer, long Provider, long Payee, UInt128 PayeeAccount, long? Parent, long Start, long End, int Gpus, long Price, long Notional,
    UInt128 EscrowAccount, IReadOnlyList<(long Node, int Gpus)> Nodes, LeaseStatus Status, long DeliveredGpuHours, long Paid, long Refunded, long Penalty,
    long PenaltyShortfall, long PenaltyReserve);

public sealed partial class ExchangeStateMachine
{
    // ================================================================== read views: copies only

    /// <summary>An open order, or null.</summary>
    public OpenOrder? Order(long id) => _orders.TryGetValue(id, out OrderState? o) ? View(o) : null;

    /// <summary>Open orders (of one owner, or all), by id.</summary>
    public IReadOnlyList<OpenOrder> OpenOrders(long? owner = null)
    {
        IEnumerable<OrderState> orders = owner is long who
            ? (_traders.TryGetValue(who, out TraderState? t) ? t.OpenOrders.Select(id => _orders[id]) : [])
            : _orders.Values;
        return orders.OrderBy(o => o.Id).Select(View).ToList();
    }

    private static OpenOrder View(OrderState o) => new(o.Id, o.Owner, o.Instrument.Id, o.Side, o.Limit, o.Remaining, o.HoldAmount, o.ResoldLease == 0 ? null : o.ResoldLease);

    /// <summary>A lease, or null.</summary>
    public LeaseView? Lease(long id) => _leases.TryGet(id, out Lease? l) ? View(l) : null;

    /// <summary>Leases (of one participant, or all), by id.</summary>
    public IReadOnlyList<LeaseView> Leases(long? participant = null) =>
        (participant is long who ? _leases.Of(who) : _leases.Ids).Select(id => View(_leases.Get(id))).ToList();

    private static LeaseView View(Lease l) => new(l.Id, l.Instrument, l.Buyer, l.Provider, l.Payee, l.PayeeAccount, l.Parent, l.Start, l.End, l.Gpus, l.Price, l.Notional, l.EscrowAccount,
        l.Nodes.ToArray(), l.Status, l.DeliveredGpuHours, l.Paid, l.Refunded, l.Penalty, l.PenaltyShortfall, l.PenaltyReserve);

    /// <summary>Admitted nodes, by id.</summary>
    public IReadOnlyList<Node> Nodes => _capacity.Nodes.OrderBy(n => n.Id).Select(View).ToList();

    /// <summary>A node, or null.</summary>
    public Node? Node(long id) => _capacity.TryGetNode(id, out NodeState? n) ? View(n) : null;

    private static Node View(NodeState n) => new(n.Id, n.Provider, n.Name, n.Gpu, n.Region, n.Gpus) { DownSince = n.DownSince };

    /// <summary>A trader's available balance on its trading account as the exchange mirrors it (null when not a trader).</summary>
    public long? Available(long owner) => _traders.TryGetValue(owner, out TraderState? t) ? t.Available : null;

    /// <summary>A provider's collateral not reserved by its leases (null when not a provider).</summary>
    public long? CollateralAvailable(long provider) => _providers.TryGetValue(provider, out ProviderState? p) ? p.CollateralAvailable : null;

    /// <summary>Deposits and withdrawals waiting for the ledger's answer: their command sequence numbers.</summary>
    public IReadOnlyList<long> PendingDeposits => _pendingDeposits.Keys.Order().ToList();

    /// <summary>The transfer a pending deposit or withdrawal (by its command's seq) waits on: submitted again at a restart (the ledger's id makes it idempotent).</summary>
    public bool TryGetAwaitedTransfer(long seq, out Transfer transfer)
    {
        bool found = _pendingDeposits.TryGetValue(seq, out PendingDeposit d);
        transfer = d.Transfer;
        return found;
    }

    /// <summary>The top levels of one side of an instrument's book.</summary>
    public int Depth(int instrument, Side side, Span<DepthLevel> into) => _books.TryGetValue(instrument, out OrderBook? b) ? b.Depth(side, into) : 0;

    /// <summary>Best bid and ask of an instrument (0 when none).</summary>
    public (long Bid, long Ask) Top(int instrument) => _books.TryGetValue(instrument, out OrderBook? b) ? (b.BestBid, b.BestAsk) : (0, 0);

    /// <summary>Resting orders of an instrument's book in priority order (bids best first, then asks best first).</summary>
    public IReadOnlyList<RestingOrder> Resting(int instrument) => _books.TryGetValue(instrument, out OrderBook? b) ? b.Orders() : [];

    // ================================================================== invariants and identity

    /// <summary>
    /// Checks the state's invariants; throws <see cref="InvalidOperationException"/> naming the first broken one:
    /// every open order rests in its book with the same remaining quantity and every resting order is open; each open
    /// buy holds its limit × remaining; committed capacity equals the open sells' GPUs, hour by hour (resale sells aside);
    /// each lease's time offered or sold equals its open resale sells' GPUs plus the leases resold from it; no node is
    /// leased beyond its GPUs; each lease's payments and refunds stay within its notional; no mirror is negative.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)] // once per restore, over the whole state
    public void CheckInvariants()
    {
        int resting = 0;
        foreach ((int id, OrderBook book) in _books)
        {
            book.AssertInvariants();
            foreach (RestingOrder r in book.Orders())
            {
                resting++;
                if (!_orders.TryGetValue(r.Id, out OrderState? o)) throw new InvalidOperationException($"Order {r.Id} rests in book {id} but is not open.");
                if (o.Remaining != r.Remaining) throw new InvalidOperationException($"Order {r.Id}: {o.Remaining} open, {r.Remaining} resting.");
                if (o.Instrument.Id != id) throw new InvalidOperationException($"Order {r.Id} rests in the wrong book.");
            }
        }
        if (resting != _orders.Count) throw new InvalidOperationException($"{_orders.Count} open orders, {resting} resting.");
        var committed = new Dictionary<(long, GpuClass, string, long), int>();
        var resold = new Dictionary<(long Lease, long Hour), int>();
        foreach (OrderState o in _orders.Values)
        {
            if (o.ResoldLease != 0)
            {
                if (o.Side != Side.Sell) throw new InvalidOperationException($"Order {o.Id} resells a lease but buys.");
                for (long h = o.Instrument.DeliveryStart; h < o.Instrument.DeliveryEnd; h += DeliveryCalendar.NsPerHour)
                    resold[(o.ResoldLease, h)] = resold.GetValueOrDefault((o.ResoldLease, h)) + (int)(o.Remaining / o.Instrument.Hours);
                continue;
            }
            if (o.Instrument.Class == InstrumentClass.NodeShares && o.Side == Side.Sell) continue; // the share register's own check
            if (o.Side == Side.Buy)
            {
                if (o.HoldAmount != checked(o.Limit * o.Remaining)) throw new InvalidOperationException($"Buy {o.Id} holds {o.HoldAmount}, not {o.Limit} × {o.Remaining}.");
            }
            else
            {
                int gpus = (int)(o.Remaining / o.Instrument.Hours);
                for (long h = o.Instrument.DeliveryStart; h < o.Instrument.DeliveryEnd; h += DeliveryCalendar.NsPerHour)
                    committed[(o.Owner, o.Instrument.Gpu, o.Instrument.Region, h)] = committed.GetValueOrDefault((o.Owner, o.Instrument.Gpu, o.Instrument.Region, h)) + gpus;
            }
        }
        if (committed.Count != _capacity.Committed.Count || committed.Any(kv => _capacity.Committed.GetValueOrDefault(kv.Key) != kv.Value))
            throw new InvalidOperationException("Committed capacity differs from the open sells.");
        foreach (((long node, long hour), int gpus) in _capacity.Leased)
            if (!_capacity.TryGetNode(node, out NodeState? n) || gpus > n.Gpus) throw new InvalidOperationException($"Node {node} is leased {gpus} GPUs at {hour}.");
        // Each lease's time offered or sold, hour by hour: its open resale sells' GPUs plus the leases resold from it.
        foreach (Lease l in _leases.All)
            if (l.Parent is long parent)
                for (long h = l.Start; h < l.End; h += DeliveryCalendar.NsPerHour) resold[(parent, h)] = resold.GetValueOrDefault((parent, h)) + l.Gpus;
        foreach (Lease l in _leases.All)
        {
            foreach ((long h, int gpus) in l.ResoldGpus)
                if (gpus <= 0 || gpus > l.Gpus || resold.GetValueOrDefault((l.Id, h)) != gpus)
                    throw new InvalidOperationException($"Lease {l.Id} has {gpus} GPUs resold at {h}, its resale sells and leases {resold.GetValueOrDefault((l.Id, h))}.");
        }
        if (resold.Count(kv => kv.Value != 0) != _leases.All.Sum(l => l.ResoldGpus.Count))
            throw new InvalidOperationException("Resold lease time differs from the open resale sells and resold leases.");
        foreach (Lease l in _leases.All)
            if (l.Paid < 0 || l.Refunded < 0 || l.Paid + l.Refunded > l.Notional) throw new InvalidOperationException($"Lease {l.Id} paid {l.Paid} and refunded {l.Refunded} of {l.Notional}.");
        foreach (TraderState t in _traders.Values)
            if (t.Available < 0) throw new InvalidOperationException($"Trader {t.Owner}'s available balance is {t.Available}.");
        foreach (ProviderState p in _providers.Values)
            if (p.CollateralAvailable < 0) throw new InvalidOperationException($"Provider {p.Id}'s free collateral is {p.CollateralAvailable}.");
        CheckShareInvariants();
        CheckLoanInvariants();
    }

    /// <summary>
    /// SHA-256 of the state's logical content in a canonical order (orders, books in priority order, traders, providers,
    /// nodes, leases, capacity, pending deposits, counters): two machines that applied the same commands hash alike.
    /// </summary>
    public byte[] StateHash()
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        byte[] b = new byte[16];
        void L(long v) { BinaryPrimitives.WriteInt64LittleEndian(b, v); sha.AppendData(b, 0, 8); }
        void U(UInt128 v) { BinaryPrimitives.WriteUInt128LittleEndian(b, v); sha.AppendData(b); }
        void S(string s) { L(s.Length); sha.AppendData(Encoding.UTF8.GetBytes(s)); }
        L((long)_lastSeq); L(_lastTime); L(_tradeSequence); L(_lastPrune);
        foreach (OrderState o in _orders.Values.OrderBy(o => o.Id)) { L(o.Id); L(o.Owner); L(o.Instrument.Id); L((long)o.Side); L(o.Limit); L(o.Remaining); U(o.HoldId); L(o.HoldAmount); L(o.ResoldLease); }
        foreach (int id in _books.Keys.Order())
            foreach (RestingOrder r in _books[id].Orders()) { L(id); L(r.Id); L(r.Price); L(r.Remaining); L(r.ExpiresAt); L(r.PostOnly ? 1 : 0); }
        foreach (TraderState t in _traders.Values.OrderBy(t => t.Owner)) { L(t.Owner); U(t.Account); L(t.Available); }
        foreach (ProviderState p in _providers.Values.OrderBy(p => p.Id)) { L(p.Id); U(p.Revenue); U(p.Collateral); L(p.CollateralAvailable); }
        foreach (NodeState n in _capacity.Nodes.OrderBy(n => n.Id)) { L(n.Id); L(n.Provider); S(n.Name); L((long)n.Gpu); S(n.Region); L(n.Gpus); L(n.DownSince ?? -1); }
        foreach (Lease l in _leases.All)
        {
            L(l.Id); L(l.Instrument); L(l.Buyer); L(l.Provider); L(l.Payee); U(l.PayeeAccount); L(l.Start); L(l.End); L(l.Gpus); L(l.Price); L(l.Notional); U(l.EscrowAccount);
            foreach ((long node, int gpus) in l.Nodes) { L(node); L(gpus); }
            L((long)l.Status); L(l.DeliveredGpuHours); L(l.Paid); L(l.Refunded); L(l.Penalty); L(l.PenaltyShortfall); L(l.PenaltyReserve); L(l.Parent ?? 0);
            L(l.ResoldGpus.Count);
            foreach ((long hour, int gpus) in l.ResoldGpus.OrderBy(kv => kv.Key)) { L(hour); L(gpus); }
        }
        foreach (var kv in _capacity.Committed.OrderBy(k => k.Key.Provider).ThenBy(k => k.Key.Gpu).ThenBy(k => k.Key.Region, StringComparer.Ordinal).ThenBy(k => k.Key.Hour))
        { L(kv.Key.Provider); L((long)kv.Key.Gpu); S(kv.Key.Region); L(kv.Key.Hour); L(kv.Value); }
        foreach (var kv in _capacity.Leased.OrderBy(k => k.Key.Node).ThenBy(k => k.Key.Hour)) { L(kv.Key.Node); L(kv.Key.Hour); L(kv.Value); }
        foreach (var kv in _pendingDeposits.OrderBy(k => k.Key)) { L(kv.Key); L(kv.Value.Owner); L(kv.Value.Amount); L(kv.Value.Collateral ? 1 : 0); L(kv.Value.Withdrawal ? 1 : 0); }
        foreach (Instrument i in _instruments.Active) { L(i.Id); S(i.Symbol); }
        foreach (long p in _approvedIssuers.Order()) L(p);
        foreach (ShareNodeState n in _shareNodes.Values.OrderBy(n => n.Node)) { L(n.Node); L(n.Issuer); L(n.Supply); L(n.Instrument); L(n.IssuedAt); }
        foreach (var kv in _holdings.OrderBy(k => k.Key.Node).ThenBy(k => k.Key.Holder)) { L(kv.Key.Node); L(kv.Key.Holder); L(kv.Value.Free); L(kv.Value.Offered); L(kv.Value.Pledged); }
        foreach (LoanState l in _loans.Values)
        {
            L(l.Id); L(l.Borrower); L(l.Node); L(l.Shares); L(l.Lent); L(l.Principal); L(l.Interest); L(l.Repaid); L(l.OpenedAt); L(l.AccruedTo); L(l.Proceeds); L(l.WrittenOff);
            L((long)(l.InterestRemainder >> 64)); L((long)l.InterestRemainder); L((long)l.Status); L(l.Lease);
        }
        foreach (var kv in _vwap.OrderBy(k => k.Key))
        {
            L(kv.Key); L(kv.Value.Next); L(kv.Value.Count);
            for (int i = 0; i < kv.Value.Count; i++) { L(kv.Value.Prices[i]); L(kv.Value.Quantities[i]); }
        }
        foreach ((long holder, long node) in _pledgeAccounts.OrderBy(k => k.Item1).ThenBy(k => k.Item2)) { L(holder); L(node); }
        foreach (var kv in _instrumentVwap.OrderBy(k => k.Key))
        {
            L(kv.Key); L(kv.Value.Next); L(kv.Value.Count);
            for (int i = 0; i < kv.Value.Count; i++) { L(kv.Value.Prices[i]); L(kv.Value.Quantities[i]); }
        }
        return sha.GetHashAndReset();
    }
}
