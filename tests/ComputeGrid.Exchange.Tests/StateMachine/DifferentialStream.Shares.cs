using ComputeGrid.Exchange.Instruments;
using ComputeGrid.Exchange.Matching;
using ComputeGrid.Exchange.StateMachine;
using ComputeGrid.Exchange.Trading;
using ComputeGrid.Ledger;

namespace ComputeGrid.Exchange.Tests.StateMachine;

/// <summary>
/// Node shares in the streams: approvals (some of non-providers), issuance (some invalid, mostly of nodes in the hot pool,
/// whose leases then pay their share pools), transfers (some of more shares than are free), orders on the share books from
/// holders and non-holders, their cancels and replaces; and the checks of the share register after every batch.
/// </summary>
internal sealed partial class DifferentialStream
{
    /// <summary>Where share prices sit (2.5 USD): books cross often.</summary>
    private const long ShareMid = 2_500_000;

    private List<Instrument> ShareInstruments() => _reference.ActiveInstruments.Where(i => i.Class == InstrumentClass.NodeShares).ToList();

    private static long HoursOf(Instrument i) => i.Class == InstrumentClass.NodeShares ? 1 : (i.DeliveryEnd - i.DeliveryStart) / NsPerHour;

    private ExchangeCommand ApproveIssuer() => new() { Kind = ExchangeCommandKind.ApproveIssuer, Owner = Chance(85) ? Pick(ProviderIds) : AnyOwner() };

    private ExchangeCommand IssueShares()
    {
        IReadOnlyList<Node> nodes = _reference.Nodes;
        if (nodes.Count == 0 || Chance(4)) return ExchangeCommand.IssueShares(Pick(ProviderIds), 88_888, 1_000);
        // Mostly a node of an approved provider that has none yet, of the hot pool (whose leases are delivered) first.
        HashSet<long> issued = _reference.ShareNodes.Select(s => s.Node).ToHashSet();
        List<Node> open = nodes.Where(n => _reference.IsApprovedIssuer(n.Provider) && !issued.Contains(n.Id)).ToList();
        List<Node> hot = open.Where(n => n.Gpu == _hot.Gpu && n.Region == _hot.Region).ToList();
        Node node = hot.Count > 0 && Chance(75) ? Pick(hot) : open.Count > 0 && Chance(85) ? Pick(open) : Pick(nodes);
        long supply = _rng.Next(100) switch
        {
            < 3 => 0,
            < 5 => -_rng.Next(1, 100),
            < 7 => ExchangeStateMachine.ShareSupplyMax + 1,
            < 9 => ExchangeStateMachine.ShareSupplyMax,
            _ => new long[] { 100, 1_000, 10_000, 250_000 }[_rng.Next(4)] * _rng.Next(1, 5),
        };
        return ExchangeCommand.IssueShares(Chance(92) ? node.Provider : AnyOwner(), node.Id, supply);
    }

    private ExchangeCommand TransferShares()
    {
        List<ShareHoldingView> holdings = _reference.Holdings().Where(h => h.Free > 0).ToList();
        if (holdings.Count == 0 || Chance(5))
        {
            IReadOnlyList<ShareNodeView> issued = _reference.ShareNodes;
            return ExchangeCommand.TransferShares(AnyOwner(), issued.Count > 0 && Chance(50) ? Pick(issued).Node : 77_777, Pick(Traders), 1);
        }
        ShareHoldingView h = Pick(holdings);
        long to = _rng.Next(100) switch
        {
            < 45 => Pick(Traders),
            < 80 => Pick(ProviderIds),
            < 88 => 99,                                    // not a trader: it may hold, not trade
            < 91 => h.Holder,
            < 93 => 0,
            < 94 => -3,
            < 95 => (long)ChartOfAccounts.QualifierMax + 1,
            _ => Pick(Traders),
        };
        long shares = _rng.Next(100) switch
        {
            < 10 => h.Free,
            < 16 => h.Free + _rng.Next(1, 10),             // too many
            < 22 => h.Free + h.Offered,                    // offered shares are not free
            < 25 => 0,
            < 26 => -1,
            _ => _rng.NextInt64(1, Math.Min(h.Free, 500) + 1),
        };
        return ExchangeCommand.TransferShares(Chance(95) ? h.Holder : AnyOwner(), h.Node, to, shares);
    }

    /// <summary>An order on a share book: sells mostly by holders with free shares (sometimes more than they have, or by non-holders), buys by traders with money.</summary>
    private ExchangeCommand PlaceShares()
    {
        List<Instrument> books = ShareInstruments();
        if (books.Count == 0) return Place();
        Instrument i = Pick(books);
        Side side = Chance(50) ? Side.Buy : Side.Sell;
        long owner, free = 0;
        if (side == Side.Sell)
        {
            List<ShareHoldingView> holders = _reference.Holdings().Where(h => h.Node == i.Node && h.Free > 0 && _reference.Traders.Contains(h.Holder)).ToList();
            ShareHoldingView? holder = holders.Count > 0 && Chance(85) ? Pick(holders) : null;
            owner = holder?.Holder ?? Trader();
            free = holder?.Free ?? 0;
        }
        else owner = Buyer();
        OrderType type = Chance(12) ? OrderType.Market : OrderType.Limit;
        TimeInForce tif = _rng.Next(100) switch { < 45 => TimeInForce.GoodTillCancel, < 65 => TimeInForce.GoodTillTime, < 85 => TimeInForce.ImmediateOrCancel, _ => TimeInForce.FillOrKill };
        long price = type == OrderType.Market ? (Chance(3) ? i.Band.MinPrice : 0) : PriceNear(i.Band, ShareMid, side);
        if (type == OrderType.Limit && Chance(50) && BestOpposite(i.Id, side) is long best)
            price = best + (Chance(50) ? 0 : side == Side.Buy ? i.Band.Tick : -i.Band.Tick);
        long quantity = _rng.Next(100) switch
        {
            < 3 => 0,
            < 5 => -_rng.Next(1, 5),
            < 7 => side == Side.Sell ? free + 1 : 4 * ExchangeStateMachine.ShareSupplyMax, // more than held; a notional past a long
            < 15 when free > 0 => free,
            < 70 => _rng.Next(1, 20),
            _ => _rng.Next(20, type == OrderType.Market && side == Side.Buy ? 60 : 300), // a market buy holds the band's top price
        };
        long expires = tif == TimeInForce.GoodTillTime ? _now + _rng.NextInt64(-2 * NsPerMinute, 90 * NsPerMinute) : 0;
        return ExchangeCommand.Place(owner, i.Id, side, type, tif, price, quantity, postOnly: Chance(10), expiresAt: expires);
    }

    /// <summary>A cancel or replace of an open share order, mostly by its owner.</summary>
    private ExchangeCommand ChangeShareOrder()
    {
        List<OpenOrder> open = _reference.OpenOrders().Where(o => _reference.IsShareOrder(o.OrderId)).ToList();
        if (open.Count == 0) return Chance(50) ? PlaceShares() : Cancel();
        OpenOrder o = Pick(open);
        return Chance(40) ? ExchangeCommand.Cancel(Chance(94) ? o.Owner : AnyOwner(), o.OrderId) : ReplaceShares(o);
    }

    private ExchangeCommand ReplaceShares(OpenOrder o)
    {
        Instrument i = _reference.ActiveInstruments.First(x => x.Id == o.Instrument);
        long price = Chance(10) ? PriceNear(i.Band, ShareMid, o.Side)
            : Chance(40) && BestOpposite(i.Id, o.Side) is long best ? best
            : o.Price + (o.Side == Side.Buy ? 1 : -1) * _rng.Next(-2, 5) * i.Band.Tick;
        long free = o.Side == Side.Sell ? _reference.Holdings().FirstOrDefault(h => h.Holder == o.Owner && h.Node == i.Node)?.Free ?? 0 : 0;
        long quantity = _rng.Next(100) switch
        {
            < 30 => o.Remaining,
            < 55 => Math.Max(1, o.Remaining - _rng.Next(1, 10)),
            < 85 => o.Remaining + _rng.Next(1, 30),
            < 93 => o.Remaining + free + (Chance(50) ? 0 : 1),  // all it has, or one more
            < 96 => 0,
            _ => -1,
        };
        return ExchangeCommand.Replace(Chance(94) ? o.Owner : AnyOwner(), o.OrderId, price, quantity);
    }

    /// <summary>Whether a command acts on a share book (for the coverage report), asked before it applies.</summary>
    private bool OnShares(in ExchangeCommand c) => c.Kind switch
    {
        ExchangeCommandKind.Place or ExchangeCommandKind.Resell => _reference.InstrumentOf(c.Instrument)?.Class == InstrumentClass.NodeShares,
        ExchangeCommandKind.Cancel or ExchangeCommandKind.Replace => _reference.IsShareOrder(c.Target),
        _ => false,
    };

    // ================================================================== checks

    /// <summary>
    /// The share register after a batch: the nodes and approvals as the reference has them; every holding's mirror (free,
    /// offered, pledged) the reference's, its holding account's posted balance what is free and offered, its pending debits
    /// what it offers, its pledge account's balance what is pledged; each node's holdings adding up to its supply (in the mirror and in the ledger); each share escrow's
    /// pending credits the remaining of the node's open sells; each share pool's balance the reference's.
    /// </summary>
    private void CheckShares(IReadOnlyList<OpenOrder> open)
    {
        IReadOnlyList<ShareNodeView> nodes = _machine.ShareNodes;
        Require(nodes.SequenceEqual(_reference.ShareNodes), () => $"share nodes\n    {string.Join("\n    ", nodes)}\nreference\n    {string.Join("\n    ", _reference.ShareNodes)}");
        foreach (long p in ProviderIds.Concat(Traders).Append(99))
            Require(_machine.IsApprovedIssuer(p) == _reference.IsApprovedIssuer(p), () => $"approval of {p}: {_machine.IsApprovedIssuer(p)}, reference {_reference.IsApprovedIssuer(p)}");
        IReadOnlyList<ShareHoldingView> holdings = _reference.Holdings();
        foreach (ShareHoldingView h in holdings)
        {
            ShareHoldingView mirror = _machine.HoldingOf(h.Holder, h.Node);
            Require(mirror == h, () => $"holding {mirror}, reference {h}");
            Require(_ledger.TryGetAccount(ReferenceExchange.HoldingAccount(h.Holder, h.Node), out Account a)
                    && a.CreditBalance == h.Free + h.Offered && a.DebitsPending == h.Offered,
                () => $"holding {h}: the ledger's account posts {a.CreditsPosted} − {a.DebitsPosted}, holds {a.DebitsPending}");
            _ledger.TryGetAccount(ReferenceExchange.PledgeAccount(h.Holder, h.Node), out Account pledge);
            Require(pledge.CreditBalance == h.Pledged && pledge.DebitsPending == 0,
                () => $"holding {h}: the ledger's pledge account posts {pledge.CreditsPosted} − {pledge.DebitsPosted}, holds {pledge.DebitsPending}");
        }
        foreach (ShareNodeView n in nodes)
        {
            IReadOnlyList<ShareHoldingView> holders = _machine.HoldersOf(n.Node);
            Require(holders.Sum(h => h.Total) == n.Supply, () => $"node {n.Node}'s holders hold {holders.Sum(h => h.Total)}, its supply is {n.Supply}");
            Require(holders.All(h => holdings.Contains(h)), () => $"node {n.Node} has holders the reference does not");
            long posted = holdings.Where(h => h.Node == n.Node).Sum(h =>
                (_ledger.TryGetAccount(ReferenceExchange.HoldingAccount(h.Holder, h.Node), out Account a) ? a.CreditBalance : 0)
                + (_ledger.TryGetAccount(ReferenceExchange.PledgeAccount(h.Holder, h.Node), out Account p) ? p.CreditBalance : 0));
            Require(posted == n.Supply, () => $"node {n.Node}'s holding and pledge accounts post {posted}, its supply is {n.Supply}");
            Require(_ledger.TryGetAccount(ReferenceExchange.ShareIssuance(n.Node), out Account issuance) && issuance.DebitsPosted == n.Supply,
                () => $"node {n.Node}'s issuance posted {issuance.DebitsPosted}, its supply is {n.Supply}");
            long offered = open.Where(o => o.Instrument == n.Instrument && o.Side == Side.Sell).Sum(o => o.Remaining);
            Require(_ledger.TryGetAccount(ReferenceExchange.ShareEscrow(n.Node), out Account escrow) && escrow.CreditsPending == offered
                    && escrow.CreditsPosted == escrow.DebitsPosted,
                () => $"node {n.Node}'s share escrow holds {escrow.CreditsPending} (posted {escrow.CreditsPosted} − {escrow.DebitsPosted}), its open sells {offered}");
            Require(_ledger.TryGetAccount(ReferenceExchange.SharePool(n.Node), out Account pool) && pool.CreditBalance == _reference.PoolBalance(n.Node),
                () => $"node {n.Node}'s share pool: ledger {pool.CreditsPosted - pool.DebitsPosted}, reference {_reference.PoolBalance(n.Node)}");
        }
    }

    /// <summary>Each open share sell has exactly one share hold pending in the ledger, of its remaining shares; no other order has one.</summary>
    private void CheckShareHolds(IReadOnlyList<OpenOrder> open, int scanFrom)
    {
        for (int i = scanFrom; i < _ledger.TransferCount; i++)
        {
            Transfer t = _ledger.TransferAt(i);
            if (t.Code != (ushort)TransferCode.ShareTrade || (t.Flags & TransferFlags.Pending) == 0) continue;
            if (!_pendingShareHolds.TryGetValue((long)t.UserData64, out List<int>? list)) _pendingShareHolds[(long)t.UserData64] = list = [];
            list.Add(i);
        }
        foreach (List<int> list in _pendingShareHolds.Values) list.RemoveAll(i => _ledger.StatusAt(i) != PendingStatus.Pending);
        var sells = open.Where(o => o.Side == Side.Sell && _reference.IsShareOrder(o.OrderId)).ToDictionary(o => o.OrderId);
        foreach ((long order, List<int> list) in _pendingShareHolds)
        {
            if (sells.TryGetValue(order, out OpenOrder? o))
                Require(list.Count == 1 && _ledger.TransferAt(list[0]).Amount == o.Remaining && o.HoldAmount == o.Remaining,
                    () => $"share sell {order}: {list.Count} holds pending ({string.Join(",", list.Select(i => _ledger.TransferAt(i).Amount))}), expected one of {o.Remaining}");
            else Require(list.Count == 0, () => $"order {order} is not an open share sell but has {list.Count} share holds pending");
        }
        foreach (OpenOrder o in sells.Values) Require(_pendingShareHolds.ContainsKey(o.OrderId), () => $"share sell {o.OrderId} has no hold in the ledger");
        _pendingShareHolds.Where(kv => kv.Value.Count == 0).Select(kv => kv.Key).ToList().ForEach(k => _pendingShareHolds.Remove(k));
    }

    private readonly Dictionary<long, List<int>> _pendingShareHolds = [];
}
