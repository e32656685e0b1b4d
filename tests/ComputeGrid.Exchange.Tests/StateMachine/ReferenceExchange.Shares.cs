using ComputeGrid.Exchange.Instruments;
using ComputeGrid.Exchange.Matching;
using ComputeGrid.Exchange.StateMachine;
using ComputeGrid.Exchange.Trading;
using ComputeGrid.Ledger;

namespace ComputeGrid.Exchange.Tests.StateMachine;

/// <summary>
/// The reference's node shares, written plainly from the spec (no code shared with the state machine). An operator
/// approves a provider; an approved provider issues a fixed supply of one of its nodes' shares, all to itself, and the
/// node's share instrument is listed. The register stores only what each holder owns; what it offers is not stored but
/// summed from its open sells (each holds its remaining shares in the node's share escrow), and what is free is the
/// rest less what its open loans pledge (<c>ReferenceExchange.Pledges.cs</c>). A trade moves the shares sold from the seller's hold to the buyer and the notional
/// from the buyer's hold to the seller's trading account. A delivery of a first-hand lease pays each node of it that
/// issued shares its part (by its GPUs over the lease's nodes' GPUs, the remainder to the last node) into its share pool.
/// </summary>
public sealed partial class ReferenceExchange
{
    private sealed record ShareNode(long Node, long Issuer, long Supply, int Instrument, long IssuedAt);

    private readonly SortedSet<long> _approvedIssuers = [];
    private readonly SortedDictionary<long, ShareNode> _shareNodes = [];
    // Every share each holder has in its holding account (its posted balance: free and offered, not pledged); a key once given shares.
    private readonly SortedDictionary<(long Node, long Holder), long> _owned = [];

    private static uint ShareAsset(long node) => ComputeGrid.Core.Asset.NodeShares((ulong)node).Code;

    /// <summary>A holder's holding account of a node's shares.</summary>
    public static UInt128 HoldingAccount(long holder, long node) => ChartOfAccounts.ShareHolding((ulong)holder, (ulong)node);

    /// <summary>A node's share escrow (the shares open sells hold are its pending credits).</summary>
    public static UInt128 ShareEscrow(long node) => ChartOfAccounts.SystemAccount(AccountCode.ShareEscrow, ShareAsset(node));

    /// <summary>A node's share issuance account (its posted debits are the supply).</summary>
    public static UInt128 ShareIssuance(long node) => ChartOfAccounts.SystemAccount(AccountCode.ShareIssuance, ShareAsset(node));

    /// <summary>A node's share pool (micro-USD: the revenue of its deliveries).</summary>
    public static UInt128 SharePool(long node) => ChartOfAccounts.SharePool((ulong)node);

    // ================================================================== views

    /// <summary>Nodes that issued shares, by node.</summary>
    public IReadOnlyList<ShareNodeView> ShareNodes =>
        _shareNodes.Values.Select(n => new ShareNodeView(n.Node, n.Issuer, n.Supply, n.Instrument, Instrument.NodeSharesSymbol(n.Node), n.IssuedAt)).ToList();

    /// <summary>Whether <paramref name="provider"/> was approved to issue shares.</summary>
    public bool IsApprovedIssuer(long provider) => _approvedIssuers.Contains(provider);

    /// <summary>Every holding (of anyone ever given shares), by node then holder: free, offered by open sells, pledged to open loans.</summary>
    public IReadOnlyList<ShareHoldingView> Holdings() =>
        _owned.Select(kv => new ShareHoldingView(kv.Key.Holder, kv.Key.Node, kv.Value - Offered(kv.Key.Holder, kv.Key.Node), Offered(kv.Key.Holder, kv.Key.Node),
            Pledged(kv.Key.Holder, kv.Key.Node))).ToList();

    /// <summary>A node's share pool balance (credits − debits posted), 0 when it has none.</summary>
    public long PoolBalance(long node) => _accounts.TryGetValue(SharePool(node), out Money? m) ? m.CreditsPosted - m.DebitsPosted : 0;

    /// <summary>Whether an open order (by id) trades shares.</summary>
    public bool IsShareOrder(long order) => _orders.TryGetValue(order, out Order? o) && o.Shares;

    // ================================================================== the register

    /// <summary>Shares of <paramref name="node"/> that <paramref name="holder"/>'s open sells offer.</summary>
    private long Offered(long holder, long node) =>
        _orders.Values.Where(o => o.Shares && o.Side == Side.Sell && o.Owner == holder && o.Instrument.Node == node).Sum(o => o.Remaining);

    private long FreeShares(long holder, long node) => _owned.GetValueOrDefault((node, holder)) - Offered(holder, node);

    /// <summary>The refusal when <paramref name="holder"/> has fewer than <paramref name="shares"/> free shares of the node; null when it has them.</summary>
    private ReferenceResult? SharesShort(long holder, long node, long shares)
    {
        long free = FreeShares(holder, node);
        return free < shares ? Refuse(ExchangeError.InsufficientShares, RefusalDetail.SharesShort, free) : null;
    }

    /// <summary>Gives <paramref name="holder"/> shares: its holding account opens with its first.</summary>
    private void Receive(long holder, long node, long shares)
    {
        if (!_owned.ContainsKey((node, holder))) CreateAccount(HoldingAccount(holder, node), AccountFlags.DebitsMustNotExceedCredits, ShareAsset(node));
        _owned[(node, holder)] = _owned.GetValueOrDefault((node, holder)) + shares;
    }

    // ================================================================== commands

    private ReferenceResult ApproveIssuer(long provider)
    {
        if (!_providers.ContainsKey(provider)) return Refuse(ExchangeError.UnknownProvider);
        _approvedIssuers.Add(provider);
        return Done(provider);
    }

    private ReferenceResult IssueShares(in ExchangeCommand c)
    {
        long target = c.Target;
        if (!_providers.ContainsKey(c.Owner)) return Refuse(ExchangeError.UnknownProvider);
        if (!_approvedIssuers.Contains(c.Owner)) return Refuse(ExchangeError.NotApprovedIssuer);
        NodeRecord? node = _nodes.Find(n => n.Id == target);
        if (node is null) return Refuse(ExchangeError.UnknownNode);
        if (node.Provider != c.Owner) return Refuse(ExchangeError.NotOwner);
        if (_shareNodes.ContainsKey(node.Id)) return Refuse(ExchangeError.SharesAlreadyIssued);
        if (c.Quantity <= 0 || c.Quantity > ExchangeStateMachine.ShareSupplyMax || (ulong)node.Id > ComputeGrid.Core.Asset.NodeSharesNodeMax || _registry.Now is null)
            return Refuse(ExchangeError.InvalidRequest);

        Instrument listed = _registry.ListNodeShares(node.Id);
        _shareNodes[node.Id] = new ShareNode(node.Id, c.Owner, c.Quantity, listed.Id, _now);
        CreateAccount(ShareIssuance(node.Id), AccountFlags.None, ShareAsset(node.Id));
        CreateAccount(ShareEscrow(node.Id), AccountFlags.None, ShareAsset(node.Id));
        CreateAccount(SharePool(node.Id), AccountFlags.DebitsMustNotExceedCredits);
        Receive(c.Owner, node.Id, c.Quantity);
        Post(ShareIssuance(node.Id), HoldingAccount(c.Owner, node.Id), c.Quantity);
        return Done(listed.Id);
    }

    private ReferenceResult TransferShares(in ExchangeCommand c)
    {
        if (!_shareNodes.ContainsKey(c.Target)) return Refuse(ExchangeError.NoShares);
        if (c.Quantity <= 0 || c.To <= 0 || c.To == c.Owner || c.To > (long)ChartOfAccounts.QualifierMax) return Refuse(ExchangeError.InvalidRequest);
        if (SharesShort(c.Owner, c.Target, c.Quantity) is ReferenceResult refused) return refused;
        _owned[(c.Target, c.Owner)] -= c.Quantity;
        Receive(c.To, c.Target, c.Quantity);
        Post(HoldingAccount(c.Owner, c.Target), HoldingAccount(c.To, c.Target), c.Quantity);
        return Done(c.Target);
    }

    /// <summary>
    /// A trade on a share book: the seller's shares go (posted out of its hold, through the escrow) to the buyer, whose
    /// hold pays the notional through the order escrow into the seller's trading account. No lease (0).
    /// </summary>
    private long TradeShares(Order buy, Order sell, long price, long quantity)
    {
        long node = sell.Instrument.Node;
        long notional = checked(price * quantity);
        _owned[(node, sell.Owner)] -= quantity;
        Receive(buy.Owner, node, quantity);
        Post(HoldingAccount(sell.Owner, node), ShareEscrow(node), quantity);
        Post(ShareEscrow(node), HoldingAccount(buy.Owner, node), quantity);
        Post(ExchangeStateMachine.TradingAccount(buy.Owner), Escrow, notional);
        Post(Escrow, ExchangeStateMachine.TradingAccount(sell.Owner), notional);
        _traders[buy.Owner].Cash -= notional;
        _traders[sell.Owner].Cash += notional;
        RecordShareTrade(node, price, quantity);
        return 0;
    }

    /// <summary>
    /// Pays the share pools their part of <paramref name="amount"/>, a payment of a first-hand lease: each node of the lease
    /// gets amount × its GPUs / the GPUs of all the lease's nodes (rounded down), the last node the remainder; the part of
    /// a node that issued shares goes from the lease's escrow to its pool. Returns what the pools got.
    /// </summary>
    private long PayPools(LeaseRecord lease, long amount)
    {
        long total = lease.Nodes.Sum(n => (long)n.Gpus), given = 0, pools = 0;
        for (int k = 0; k < lease.Nodes.Count; k++)
        {
            (long node, int gpus) = lease.Nodes[k];
            long part = k == lease.Nodes.Count - 1 ? amount - given : (long)((Int128)amount * gpus / total);
            given += part;
            if (part <= 0 || !_shareNodes.ContainsKey(node)) continue;
            Post(lease.Escrow, SharePool(node), part);
            pools += part;
        }
        return pools;
    }
}
