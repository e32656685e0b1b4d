using System.Runtime.CompilerServices;

namespace ComputeGrid.Tokens;

/// <summary>
/// One node's revenue accumulator: O(1) per payment whatever the number of holders, exact to the micro-unit.
/// <para>
/// The fixed-point design: revenue per share is kept as a fraction with the node's fixed supply S as denominator,
/// so the accumulator is simply the revenue received, R (Σ payments, checked <c>long</c>): revenue per share = R / S.
/// A payment only adds to R. Each holder h keeps its shares, a checkpoint c_h (R when h was last settled), a
/// remainder numerator r_h (0 ≤ r_h &lt; S), its settled entitlement e_h and what it claimed, k_h. Before any share
/// movement of h, h is settled: n = shares_h × (R − c_h) + r_h (Int128), e_h += n / S, r_h = n mod S, c_h = R.
/// At any moment entitlement_h = e_h + (shares_h × (R − c_h) + r_h) / S and owed_h = entitlement_h − k_h.
/// </para>
/// <para>
/// Invariants (<see cref="AssertInvariants"/>): Σ shares = S; for every holder 0 ≤ r_h &lt; S and k_h ≤
/// entitlement_h; the carry, R − Σ entitlement_h, is exactly (Σ current remainders) / S, so it is ≥ 0 and below the
/// number of holders: rounding never creates money and what it keeps stays in the pool, carried into later
/// entitlements of nobody in particular (it is the sum of the holders' fractions of a micro-unit).
/// </para>
/// <para>
/// Holders are never forgotten (an ex-holder may still be owed); the arrays grow by doubling, so a steady state of
/// payments and moves between known holders allocates nothing.
/// </para>
/// </summary>
public sealed class ShareAccumulator
{
    private struct Holder
    {
        public ulong Principal;
        public long Shares;
        public long Checkpoint;
        public long Remainder;
        public long Settled;
        public long Claimed;
    }

    private Holder[] _holders;
    private int _count;
    private readonly Dictionary<ulong, int> _index;

    /// <summary>The node (its principal id).</summary>
    public ulong Node { get; }

    /// <summary>The fixed supply S: the denominator of revenue per share.</summary>
    public long Supply { get; }

    /// <summary>R: the revenue the node's pool received in all (micro-USD); revenue per share is R / S.</summary>
    public long Revenue { get; private set; }

    /// <summary>Σ claims of every holder (micro-USD): the pool's balance is <see cref="Revenue"/> − this.</summary>
    public long ClaimedTotal { get; private set; }

    /// <summary>Number of holders ever seen (the escrow's pseudo-holder 0 included once it held shares).</summary>
    public int HolderCount => _count;

    /// <summary>Creates the accumulator of a node that issued <paramref name="supply"/> shares to <paramref name="issuer"/>.</summary>
    public ShareAccumulator(ulong node, ulong issuer, long supply, int holdersCapacity = 16)
    {
        if (supply <= 0) throw new ArgumentOutOfRangeException(nameof(supply), supply, "a node issues a positive supply");
        Node = node;
        Supply = supply;
        _holders = new Holder[Math.Max(4, holdersCapacity)];
        _index = new Dictionary<ulong, int>(Math.Max(4, holdersCapacity));
        ref Holder h = ref Slot(issuer);
        h.Shares = supply;
    }

    /// <summary>A payment into the pool: R grows, no holder is touched.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Pay(long amount)
    {
        if (amount <= 0) Throw("a payment must be positive");
        Revenue = checked(Revenue + amount);
    }

    /// <summary>Moves <paramref name="shares"/> from one holder to another, settling both first.</summary>
    public void Move(ulong from, ulong to, long shares)
    {
        if (shares <= 0) Throw("a share movement must be positive");
        if (from == to) return; // a pledge or its release: the owner keeps earning on the same shares
        if (!_index.TryGetValue(from, out int fi) || _holders[fi].Shares < shares) Throw($"holder {from} of node {Node} does not hold {shares} shares");
        int ti = SlotIndex(to);
        ref Holder f = ref _holders[fi];
        ref Holder t = ref _holders[ti];
        Settle(ref f);
        Settle(ref t);
        f.Shares -= shares;
        t.Shares = checked(t.Shares + shares);
    }

    /// <summary>Records a claim of <paramref name="amount"/>; it must not exceed what the holder is owed.</summary>
    public void Claim(ulong holder, long amount)
    {
        if (amount <= 0) Throw("a claim must be positive");
        if (!_index.TryGetValue(holder, out int i)) Throw($"holder {holder} of node {Node} is owed nothing");
        ref Holder h = ref _holders[i];
        if (amount > EntitlementOf(in h) - h.Claimed) Throw($"holder {holder} of node {Node} claims {amount}, more than it is owed");
        h.Claimed += amount;
        ClaimedTotal = checked(ClaimedTotal + amount);
    }

    /// <summary>Shares <paramref name="holder"/> holds (0 for a stranger).</summary>
    public long SharesOf(ulong holder) => _index.TryGetValue(holder, out int i) ? _holders[i].Shares : 0;

    /// <summary>Everything <paramref name="holder"/> earned so far (claimed or not).</summary>
    public long Entitlement(ulong holder) => _index.TryGetValue(holder, out int i) ? EntitlementOf(in _holders[i]) : 0;

    /// <summary>What <paramref name="holder"/> claimed.</summary>
    public long ClaimedBy(ulong holder) => _index.TryGetValue(holder, out int i) ? _holders[i].Claimed : 0;

    /// <summary>What <paramref name="holder"/> may claim now.</summary>
    public long Owed(ulong holder) => _index.TryGetValue(holder, out int i) ? EntitlementOf(in _holders[i]) - _holders[i].Claimed : 0;

    /// <summary>
    /// The state of <paramref name="holder"/> as the design names it: shares, checkpoint c_h, remainder r_h, settled
    /// e_h. For tests that check a payment leaves every holder untouched.
    /// </summary>
    public (long Shares, long Checkpoint, long Remainder, long Settled) HolderState(ulong holder)
    {
        if (!_index.TryGetValue(holder, out int i)) return default;
        ref readonly Holder h = ref _holders[i];
        return (h.Shares, h.Checkpoint, h.Remainder, h.Settled);
    }

    /// <summary>Every holder ever seen, in order of first appearance.</summary>
    public IEnumerable<ulong> Holders()
    {
        for (int i = 0; i < _count; i++) yield return _holders[i].Principal;
    }

    /// <summary>R − Σ entitlements: the fractions of a micro-unit rounding kept in the pool (O(holders)).</summary>
    public long Carry()
    {
        long sum = 0;
        for (int i = 0; i < _count; i++) sum = checked(sum + EntitlementOf(in _holders[i]));
        return Revenue - sum;
    }

    /// <summary>Checks every invariant of the type's summary in O(holders); throws <see cref="InvalidOperationException"/> on the first broken one.</summary>
    public void AssertInvariants()
    {
        long shares = 0, claimed = 0, entitled = 0;
        Int128 remainders = 0;
        for (int i = 0; i < _count; i++)
        {
            ref readonly Holder h = ref _holders[i];
            if (h.Shares < 0 || h.Remainder < 0 || h.Remainder >= Supply || h.Checkpoint > Revenue) Throw($"holder {h.Principal}: state out of range");
            Int128 n = Unsettled(in h);
            long e = checked(h.Settled + (long)(n / Supply));
            if (h.Claimed > e) Throw($"holder {h.Principal} claimed more than its entitlement");
            shares = checked(shares + h.Shares);
            claimed = checked(claimed + h.Claimed);
            entitled = checked(entitled + e);
            remainders += n % Supply;
        }
        long carry = Revenue - entitled;
        if (shares != Supply) Throw($"the holders hold {shares} shares, the supply is {Supply}");
        if (claimed != ClaimedTotal) Throw("the claims do not add up to the total claimed");
        if ((Int128)carry * Supply != remainders) Throw("the carry is not the holders' remainders over the supply");
        if (carry < 0 || carry >= Math.Max(1, _count)) Throw($"the carry {carry} is out of [0, holders)");
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private Int128 Unsettled(in Holder h) => (Int128)h.Shares * (Revenue - h.Checkpoint) + h.Remainder;

    // shares ≤ S, so the unsettled part is at most R − c_h + 1 and fits a long.
    private long EntitlementOf(in Holder h) => checked(h.Settled + (long)(Unsettled(in h) / Supply));

    private void Settle(ref Holder h)
    {
        Int128 n = Unsettled(in h);
        h.Settled = checked(h.Settled + (long)(n / Supply));
        h.Remainder = (long)(n % Supply);
        h.Checkpoint = Revenue;
    }

    private ref Holder Slot(ulong principal) => ref _holders[SlotIndex(principal)];

    private int SlotIndex(ulong principal)
    {
        if (_index.TryGetValue(principal, out int i)) return i;
        if (_count == _holders.Length) Array.Resize(ref _holders, _holders.Length * 2);
        i = _count++;
        // A new holder joins at the current R: it earns nothing of what was paid before.
        _holders[i] = new Holder { Principal = principal, Checkpoint = Revenue };
        _index.Add(principal, i);
        return i;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void Throw(string what) => throw new InvalidOperationException($"Share accumulator of node {Node}: {what}.");
}
