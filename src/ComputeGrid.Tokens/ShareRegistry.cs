using System.Runtime.CompilerServices;

namespace ComputeGrid.Tokens;

/// <summary>
/// Every node's <see cref="ShareAccumulator"/>, by node id: the O(1) <see cref="IShareBook"/>. A payment costs one
/// lookup of the node (the last node paid is remembered, since revenue comes in runs) and one checked addition.
/// </summary>
public sealed class ShareRegistry : IShareBook
{
    private readonly Dictionary<ulong, ShareAccumulator> _nodes = new();
    private ShareAccumulator? _last;

    /// <summary>The nodes that issued shares.</summary>
    public IEnumerable<ShareAccumulator> Nodes => _nodes.Values;

    /// <summary>The accumulator of <paramref name="node"/>, if it issued shares.</summary>
    public bool TryGet(ulong node, out ShareAccumulator accumulator)
    {
        if (_nodes.TryGetValue(node, out ShareAccumulator? a)) { accumulator = a; return true; }
        accumulator = null!;
        return false;
    }

    /// <inheritdoc />
    public void Issue(ulong node, ulong issuer, long supply)
    {
        if (_nodes.ContainsKey(node)) throw new InvalidOperationException($"Node {node} issued its shares already: the supply is fixed.");
        _nodes.Add(node, new ShareAccumulator(node, issuer, supply));
    }

    /// <summary>As <see cref="Issue(ulong, ulong, long)"/>, sized for <paramref name="holdersCapacity"/> holders (a bench, a restore).</summary>
    public void Issue(ulong node, ulong issuer, long supply, int holdersCapacity)
    {
        if (_nodes.ContainsKey(node)) throw new InvalidOperationException($"Node {node} issued its shares already: the supply is fixed.");
        _nodes.Add(node, new ShareAccumulator(node, issuer, supply, holdersCapacity));
    }

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Pay(ulong node, long amount) => Get(node).Pay(amount);

    /// <inheritdoc />
    public void Move(ulong node, ulong from, ulong to, long shares) => Get(node).Move(from, to, shares);

    /// <inheritdoc />
    public void Claim(ulong node, ulong holder, long amount) => Get(node).Claim(holder, amount);

    /// <inheritdoc />
    public bool IsIssued(ulong node) => _nodes.ContainsKey(node);

    /// <inheritdoc />
    public long Supply(ulong node) => Get(node).Supply;

    /// <inheritdoc />
    public long Revenue(ulong node) => Get(node).Revenue;

    /// <inheritdoc />
    public long Shares(ulong node, ulong holder) => Get(node).SharesOf(holder);

    /// <inheritdoc />
    public long Entitlement(ulong node, ulong holder) => Get(node).Entitlement(holder);

    /// <inheritdoc />
    public long Claimed(ulong node, ulong holder) => Get(node).ClaimedBy(holder);

    /// <inheritdoc />
    public long Owed(ulong node, ulong holder) => Get(node).Owed(holder);

    /// <summary>Checks every node's invariants (<see cref="ShareAccumulator.AssertInvariants"/>).</summary>
    public void AssertInvariants()
    {
        foreach (var a in _nodes.Values) a.AssertInvariants();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ShareAccumulator Get(ulong node)
    {
        ShareAccumulator? last = _last;
        if (last is not null && last.Node == node) return last;
        return GetSlow(node);
    }

    private ShareAccumulator GetSlow(ulong node)
    {
        if (!_nodes.TryGetValue(node, out ShareAccumulator? a)) throw new InvalidOperationException($"Node {node} has not issued shares.");
        _last = a;
        return a;
    }
}
