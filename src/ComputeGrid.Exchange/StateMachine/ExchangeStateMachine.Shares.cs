using ComputeGrid.Core;
using ComputeGrid.Exchange.Instruments;
using ComputeGrid.Exchange.Matching;
using ComputeGrid.Exchange.Trading;
using ComputeGrid.Ledger;

namespace ComputeGrid.Exchange.StateMachine;

/// <summary>A node's shares: who issued them, the fixed supply, the instrument they trade on.</summary>
public sealed record ShareNodeView(long Node, long Issuer, long Supply, int Instrument, string Symbol, long IssuedAt);

/// <summary>A holder's shares of one node: free (may be sold, moved or pledged), offered by open sells, pledged.</summary>
public sealed record ShareHoldingView(long Holder, long Node, long Free, long Offered, long Pledged)
{
    /// <summary>Every share the holder owns (each earns the node's revenue, whatever its state).</summary>
    public long Total => Free + Offered + Pledged;
}

public sealed partial class ExchangeStateMachine
{
    // ================================================================== node shares (the register of record: only the exchange moves shares)

    /// <summary>The most shares one node may issue.</summary>
    public const long ShareSupplyMax = 1_000_000_000_000;

    private sealed class ShareNodeState(long node, long issuer, long supply, int instrument, long issuedAt)
    {
        public long Node { get; } = node;
        public long Issuer { get; } = issuer;
        public long Supply { get; } = supply;
        public int Instrument { get; } = instrument;
        public long IssuedAt { get; } = issuedAt;
        public uint Asset { get; } = Core.Asset.NodeShares((ulong)node).Code;
        public UInt128 Escrow { get; } = ChartOfAccounts.SystemAccount(AccountCode.ShareEscrow, Core.Asset.NodeShares((ulong)node).Code);
        public UInt128 Issuance { get; } = ChartOfAccounts.SystemAccount(AccountCode.ShareIssuance, Core.Asset.NodeShares((ulong)node).Code);
    }

    private sealed class HoldingState
    {
        public long Free, Offered, Pledged;
    }

    private readonly Dictionary<long, ShareNodeState> _shareNodes = [];
    private readonly Dictionary<(long Holder, long Node), HoldingState> _holdings = [];
    private readonly HashSet<long> _approvedIssuers = [];

    // A holder's state for a node, made (with its ledger account) when it first receives shares.
    private HoldingState Holding(long holder, long node)
    {
        if (_holdings.TryGetValue((holder, node), out HoldingState? h)) return h;
        _holdings[(holder, node)] = h = new HoldingState();
        _plan.Account(ChartOfAccounts.NewAccount(AccountCode.ShareHolding, ChartOfAccounts.ShareHolding((ulong)holder, (ulong)node), Asset.NodeShares((ulong)node)));
        return h;
    }

    private CommandResult ApproveIssuer(in ExchangeCommand c)
    {
        if (!_providers.ContainsKey(c.Owner)) return Refused(ExchangeError.UnknownProvider);
        _approvedIssuers.Add(c.Owner); // idempotent
        return new CommandResult { Subject = c.Owner };
    }

    private CommandResult IssueShares(in ExchangeCommand c)
    {
        if (!_providers.ContainsKey(c.Owner)) return Refused(ExchangeError.UnknownProvider);
        if (!_approvedIssuers.Contains(c.Owner)) return Refused(ExchangeError.NotApprovedIssuer);
        if (!_capacity.TryGetNode(c.Target, out NodeState? node)) return Refused(ExchangeError.UnknownNode);
        if (node.Provider != c.Owner) return Refused(ExchangeError.NotOwner);
        if (_shareNodes.ContainsKey(node.Id)) return Refused(ExchangeError.SharesAlreadyIssued);
        if (c.Quantity <= 0 || c.Quantity > ShareSupplyMax || (ulong)node.Id > Asset.NodeSharesNodeMax || _instruments.Now is null) return Refused(ExchangeError.InvalidRequest);

        Instrument instrument = _instruments.ListNodeShares(node.Id);
        var shares = new ShareNodeState(node.Id, c.Owner, c.Quantity, instrument.Id, _now);
        _shareNodes.Add(node.Id, shares);
        Asset asset = Asset.NodeShares((ulong)node.Id);
        _plan.Account(ChartOfAccounts.NewAccount(AccountCode.ShareIssuance, shares.Issuance, asset));
        _plan.Account(ChartOfAccounts.NewAccount(AccountCode.ShareEscrow, shares.Escrow, asset));
        Account pool = ChartOfAccounts.NewAccount(AccountCode.SharePool, ChartOfAccounts.SharePool((ulong)node.Id), Asset.Usd);
        pool.UserData64 = (ulong)node.Id;
        _plan.Account(pool);
        Holding(c.Owner, node.Id).Free = c.Quantity;
        _plan.Transfer(new Transfer
        {
            Id = NextTransferId(), DebitAccountId = shares.Issuance, CreditAccountId = ChartOfAccounts.ShareHolding((ulong)c.Owner, (ulong)node.Id),
            Amount = c.Quantity, Asset = shares.Asset, Code = (ushort)TransferCode.ShareIssue, UserData64 = (ulong)node.Id,
        });
        return new CommandResult { Subject = instrument.Id };
    }

    private CommandResult TransferShares(in ExchangeCommand c)
    {
        if (!_shareNodes.TryGetValue(c.Target, out ShareNodeState? shares)) return Refused(ExchangeError.NoShares);
        if (c.Quantity <= 0 || c.To <= 0 || c.To == c.Owner || (ulong)c.To > ChartOfAccounts.QualifierMax) return Refused(ExchangeError.InvalidRequest);
        long free = _holdings.TryGetValue((c.Owner, c.Target), out HoldingState? from) ? from.Free : 0;
        if (from is null || free < c.Quantity) return Refused(ExchangeError.InsufficientShares, RefusalDetail.SharesShort, free);
        from.Free -= c.Quantity;
        HoldingState to = Holding(c.To, c.Target);
        to.Free = checked(to.Free + c.Quantity);
        _plan.Transfer(new Transfer
        {
            Id = NextTransferId(), DebitAccountId = ChartOfAccounts.ShareHolding((ulong)c.Owner, (ulong)c.Target),
            CreditAccountId = ChartOfAccounts.ShareHolding((ulong)c.To, (ulong)c.Target), Amount = c.Quantity, Asset = shares.Asset,
            Code = (ushort)TransferCode.ShareTransfer, UserData64 = (ulong)c.Owner,
        });
        return new CommandResult { Subject = c.Target };
    }

    /// <summary>True when node <paramref name="node"/> issued shares: its revenue goes to its share pool.</summary>
    private bool HasShares(long node) => _shareNodes.ContainsKey(node);

    /// <summary>
    /// Pays <paramref name="amount"/> of a delivery from the lease's escrow: a first-hand lease's payment is the revenue of
    /// the nodes that deliver it, so each node's part (by its GPUs over all the lease's nodes' GPUs, the remainder to the
    /// last) goes to the node's share pool when it issued shares, the rest to the payee; a resold lease pays its reseller.
    /// The nodes' GPUs, not the lease's: a lease placed hour by hour names each node with the most it gives in any hour,
    /// so they may add up to more than the lease's GPUs.
    /// </summary>
    private void PayDelivery(Lease lease, long amount)
    {
        long toPayee = amount;
        if (lease.Parent is null && amount > 0)
        {
            long left = amount;
            int gpusLeft = 0;
            foreach ((_, int gpus) in lease.Nodes) gpusLeft += gpus;
            int total = gpusLeft;
            foreach ((long node, int gpus) in lease.Nodes)
            {
                long part = gpus == gpusLeft ? left : Money.MulDiv(amount, gpus, total);
                left -= part;
                gpusLeft -= gpus;
                if (part == 0 || !HasShares(node)) continue;
                toPayee -= part;
                _plan.Transfer(new Transfer
                {
                    Id = NextTransferId(), DebitAccountId = lease.EscrowAccount, CreditAccountId = ChartOfAccounts.SharePool((ulong)node), Amount = part,
                    Asset = Asset.Usd.Code, Code = (ushort)TransferCode.ShareRevenue, UserData64 = (ulong)lease.Id,
                });
            }
        }
        if (toPayee == 0 && amount > 0) return;
        _plan.Transfer(new Transfer
        {
            Id = NextTransferId(), DebitAccountId = lease.EscrowAccount, CreditAccountId = lease.PayeeAccount, Amount = toPayee, Asset = Asset.Usd.Code,
            Code = DeliveryPaymentCode, UserData64 = (ulong)lease.Id,
        });
    }

    // ================================================================== views (copies)

    /// <summary>Node <paramref name="node"/>'s shares, or null when it issued none.</summary>
    public ShareNodeView? ShareNode(long node) => _shareNodes.TryGetValue(node, out ShareNodeState? s) ? View(s) : null;

    /// <summary>Every node that issued shares, by node id.</summary>
    public IReadOnlyList<ShareNodeView> ShareNodes => _shareNodes.Values.OrderBy(s => s.Node).Select(View).ToList();

    /// <summary>Whether an operator approved <paramref name="provider"/> to issue shares.</summary>
    public bool IsApprovedIssuer(long provider) => _approvedIssuers.Contains(provider);

    /// <summary>A holder's shares of every node it holds, by node.</summary>
    public IReadOnlyList<ShareHoldingView> HoldingsOf(long holder) =>
        _holdings.Where(kv => kv.Key.Holder == holder).OrderBy(kv => kv.Key.Node).Select(kv => View(kv.Key, kv.Value)).ToList();

    /// <summary>The holders of node <paramref name="node"/>'s shares (with any share), by holder.</summary>
    public IReadOnlyList<ShareHoldingView> HoldersOf(long node) =>
        _holdings.Where(kv => kv.Key.Node == node && kv.Value.Free + kv.Value.Offered + kv.Value.Pledged > 0).OrderBy(kv => kv.Key.Holder).Select(kv => View(kv.Key, kv.Value)).ToList();

    /// <summary>One holder's shares of one node (zeros when it holds none).</summary>
    public ShareHoldingView HoldingOf(long holder, long node) =>
        _holdings.TryGetValue((holder, node), out HoldingState? h) ? View((holder, node), h) : new ShareHoldingView(holder, node, 0, 0, 0);

    private static ShareNodeView View(ShareNodeState s) => new(s.Node, s.Issuer, s.Supply, s.Instrument, Instrument.NodeSharesSymbol(s.Node), s.IssuedAt);

    private static ShareHoldingView View((long Holder, long Node) key, HoldingState h) => new(key.Holder, key.Node, h.Free, h.Offered, h.Pledged);

    /// <summary>The share register's invariants: each node's holdings add up to its supply; what is offered is what open sells hold.</summary>
    private void CheckShareInvariants()
    {
        var offered = new Dictionary<(long, long), long>();
        foreach (OrderState o in _orders.Values)
        {
            if (o.Instrument.Class != InstrumentClass.NodeShares || o.Side != Side.Sell) continue;
            if (o.HoldId == 0 || o.HoldAmount != o.Remaining) throw new InvalidOperationException($"Share sell {o.Id} holds {o.HoldAmount} shares, not its remaining {o.Remaining}.");
            offered[(o.Owner, o.Instrument.Node)] = offered.GetValueOrDefault((o.Owner, o.Instrument.Node)) + o.Remaining;
        }
        var totals = new Dictionary<long, long>();
        foreach (((long holder, long node), HoldingState h) in _holdings)
        {
            if (h.Free < 0 || h.Offered < 0 || h.Pledged < 0) throw new InvalidOperationException($"Holder {holder} of node {node} has a negative holding.");
            if (h.Offered != offered.GetValueOrDefault((holder, node))) throw new InvalidOperationException($"Holder {holder} of node {node} offers {h.Offered}, its sells rest {offered.GetValueOrDefault((holder, node))}.");
            totals[node] = checked(totals.GetValueOrDefault(node) + h.Free + h.Offered + h.Pledged);
        }
        foreach (ShareNodeState s in _shareNodes.Values)
            if (totals.GetValueOrDefault(s.Node) != s.Supply) throw new InvalidOperationException($"Node {s.Node}'s holdings add up to {totals.GetValueOrDefault(s.Node)}, not its supply {s.Supply}.");
    }
}
