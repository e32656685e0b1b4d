namespace ComputeGrid.Tokens;

/// <summary>
/// The plain reference of <see cref="ShareRegistry"/>: each payment loops over every holder of the node,
/// n_h += shares_h × amount (Int128), and entitlement_h = settled_h + n_h / S; a share movement settles both sides
/// first (settled_h += n_h / S, n_h = n_h mod S), the same rule as the accumulator. It is the oracle of the property
/// tests and the baseline of <c>computegrid bench tokens</c>: O(holders) per payment.
/// </summary>
public sealed class NaiveShareBook : IShareBook
{
    private sealed class NodeBook(long supply)
    {
        public readonly long Supply = supply;
        public long Revenue;
        public readonly List<ulong> Principals = new();
        public long[] Shares = new long[16];
        public Int128[] Numerators = new Int128[16];
        public long[] Settled = new long[16];
        public long[] Claimed = new long[16];
        public readonly Dictionary<ulong, int> Index = new();

        public int Of(ulong holder)
        {
            if (Index.TryGetValue(holder, out int i)) return i;
            i = Principals.Count;
            if (i == Shares.Length)
            {
                Array.Resize(ref Shares, i * 2);
                Array.Resize(ref Numerators, i * 2);
                Array.Resize(ref Settled, i * 2);
                Array.Resize(ref Claimed, i * 2);
            }
            Principals.Add(holder);
            Index.Add(holder, i);
            return i;
        }

        public long EntitlementAt(int i) => checked(Settled[i] + (long)(Numerators[i] / Supply));
    }

    private readonly Dictionary<ulong, NodeBook> _nodes = new();

    /// <inheritdoc />
    public void Issue(ulong node, ulong issuer, long supply)
    {
        if (supply <= 0) throw new InvalidOperationException("A node issues a positive supply.");
        if (_nodes.ContainsKey(node)) throw new InvalidOperationException($"Node {node} issued its shares already.");
        var book = new NodeBook(supply);
        book.Shares[book.Of(issuer)] = supply;
        _nodes.Add(node, book);
    }

    /// <inheritdoc />
    public void Pay(ulong node, long amount)
    {
        if (amount <= 0) throw new InvalidOperationException("A payment must be positive.");
        NodeBook b = Get(node);
        b.Revenue = checked(b.Revenue + amount);
        long[] shares = b.Shares;
        Int128[] n = b.Numerators;
        int count = b.Principals.Count;
        for (int i = 0; i < count; i++) n[i] += (Int128)shares[i] * amount;
    }

    /// <inheritdoc />
    public void Move(ulong node, ulong from, ulong to, long shares)
    {
        if (shares <= 0) throw new InvalidOperationException("A share movement must be positive.");
        if (from == to) return;
        NodeBook b = Get(node);
        if (!b.Index.TryGetValue(from, out int f) || b.Shares[f] < shares) throw new InvalidOperationException($"Holder {from} does not hold {shares} shares.");
        int t = b.Of(to);
        foreach (int i in (ReadOnlySpan<int>)[f, t])
        {
            b.Settled[i] = checked(b.Settled[i] + (long)(b.Numerators[i] / b.Supply));
            b.Numerators[i] %= b.Supply;
        }
        b.Shares[f] -= shares;
        b.Shares[t] = checked(b.Shares[t] + shares);
    }

    /// <inheritdoc />
    public void Claim(ulong node, ulong holder, long amount)
    {
        NodeBook b = Get(node);
        if (amount <= 0 || !b.Index.TryGetValue(holder, out int i) || amount > b.EntitlementAt(i) - b.Claimed[i])
            throw new InvalidOperationException($"Holder {holder} may not claim {amount}.");
        b.Claimed[i] += amount;
    }

    /// <inheritdoc />
    public bool IsIssued(ulong node) => _nodes.ContainsKey(node);

    /// <inheritdoc />
    public long Supply(ulong node) => Get(node).Supply;

    /// <inheritdoc />
    public long Revenue(ulong node) => Get(node).Revenue;

    /// <inheritdoc />
    public long Shares(ulong node, ulong holder) => Get(node).Index.TryGetValue(holder, out int i) ? Get(node).Shares[i] : 0;

    /// <inheritdoc />
    public long Entitlement(ulong node, ulong holder) => Get(node).Index.TryGetValue(holder, out int i) ? Get(node).EntitlementAt(i) : 0;

    /// <inheritdoc />
    public long Claimed(ulong node, ulong holder) => Get(node).Index.TryGetValue(holder, out int i) ? Get(node).Claimed[i] : 0;

    /// <inheritdoc />
    public long Owed(ulong node, ulong holder) => Entitlement(node, holder) - Claimed(node, holder);

    /// <summary>Every holder the node ever had.</summary>
    public IReadOnlyList<ulong> Holders(ulong node) => Get(node).Principals;

    /// <summary>R − Σ entitlements, computed from the per-holder numerators.</summary>
    public long Carry(ulong node)
    {
        NodeBook b = Get(node);
        long sum = 0;
        for (int i = 0; i < b.Principals.Count; i++) sum = checked(sum + b.EntitlementAt(i));
        return b.Revenue - sum;
    }

    private NodeBook Get(ulong node) =>
        _nodes.TryGetValue(node, out NodeBook? b) ? b : throw new InvalidOperationException($"Node {node} has not issued shares.");
}
