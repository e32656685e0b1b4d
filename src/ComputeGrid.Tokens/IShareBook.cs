namespace ComputeGrid.Tokens;

/// <summary>
/// The revenue book of node shares: what <see cref="ShareLedgerProjection"/> drives from the ledger's postings. Two
/// implementations give identical answers to the micro-unit: <see cref="ShareRegistry"/> (O(1) per payment, the one
/// the system runs) and <see cref="NaiveShareBook"/> (a loop over every holder per payment, the oracle of the tests).
/// <para>
/// Nodes and holders are principal ids; holder 0 is the exchange's share escrow (a pseudo-holder: shares pass through
/// it within a fill). Every method that changes state asserts its preconditions and throws
/// <see cref="InvalidOperationException"/> on a broken one: the ledger already committed the posting, so a refusal
/// here is a bug upstream, never an expected outcome.
/// </para>
/// </summary>
public interface IShareBook
{
    /// <summary>Node <paramref name="node"/> issues its whole, fixed <paramref name="supply"/> of shares to <paramref name="issuer"/>.</summary>
    void Issue(ulong node, ulong issuer, long supply);

    /// <summary>Revenue of <paramref name="amount"/> micro-USD paid into the node's share pool, owed to its holders pro rata.</summary>
    void Pay(ulong node, long amount);

    /// <summary><paramref name="shares"/> move from one holder to another; both sides' entitlements are settled first.</summary>
    void Move(ulong node, ulong from, ulong to, long shares);

    /// <summary><paramref name="holder"/> claims <paramref name="amount"/> micro-USD of what it is owed (at most that).</summary>
    void Claim(ulong node, ulong holder, long amount);

    /// <summary>Whether <paramref name="node"/> has issued its shares.</summary>
    bool IsIssued(ulong node);

    /// <summary>The node's fixed supply of shares.</summary>
    long Supply(ulong node);

    /// <summary>Revenue the node's pool received in all (micro-USD).</summary>
    long Revenue(ulong node);

    /// <summary>Shares <paramref name="holder"/> holds (pledged ones included: they earn for their owner).</summary>
    long Shares(ulong node, ulong holder);

    /// <summary>Everything <paramref name="holder"/> has earned so far (micro-USD), claimed or not.</summary>
    long Entitlement(ulong node, ulong holder);

    /// <summary>What <paramref name="holder"/> has claimed (micro-USD).</summary>
    long Claimed(ulong node, ulong holder);

    /// <summary>Entitlement less claims: what <paramref name="holder"/> may claim now.</summary>
    long Owed(ulong node, ulong holder);
}
