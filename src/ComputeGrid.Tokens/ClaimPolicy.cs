namespace ComputeGrid.Tokens;

/// <summary>What a claim request comes to, checked against what the holder is owed. Values are stable.</summary>
public enum ClaimDecision : byte
{
    /// <summary>Claim the amount given.</summary>
    Claim = 0,
    /// <summary>Nothing to claim: the holder is owed nothing, or auto-claim's threshold is not reached (or off).</summary>
    NothingToClaim = 1,
    /// <summary>The requested amount is negative.</summary>
    AmountMustNotBeNegative = 2,
    /// <summary>The requested amount exceeds what the holder is owed.</summary>
    ExceedsOwed = 3,
}

/// <summary>
/// The pure rules of claims: how much a holder's request, or its auto-claim threshold, takes out of a node's pool.
/// A claim never exceeds what is owed, so the projection's assertion holds for every claim these rules allow.
/// </summary>
public static class ClaimPolicy
{
    /// <summary>
    /// A holder asks for <paramref name="requested"/> micro-USD (0: everything owed). Returns the decision and the
    /// amount to claim (0 unless <see cref="ClaimDecision.Claim"/>).
    /// </summary>
    public static (ClaimDecision Decision, long Amount) Request(long owed, long requested)
    {
        if (owed < 0) throw new ArgumentOutOfRangeException(nameof(owed), owed, "what is owed is never negative");
        if (requested < 0) return (ClaimDecision.AmountMustNotBeNegative, 0);
        if (requested > owed) return (ClaimDecision.ExceedsOwed, 0);
        long amount = requested == 0 ? owed : requested;
        return amount == 0 ? (ClaimDecision.NothingToClaim, 0) : (ClaimDecision.Claim, amount);
    }

    /// <summary>
    /// Auto-claim: once what is owed reaches <paramref name="threshold"/> micro-USD, all of it is claimed; a threshold
    /// of 0 turns auto-claim off. Returns the amount to claim (0: nothing now).
    /// </summary>
    public static long AutoClaim(long owed, long threshold)
    {
        if (owed < 0) throw new ArgumentOutOfRangeException(nameof(owed), owed, "what is owed is never negative");
        if (threshold < 0) throw new ArgumentOutOfRangeException(nameof(threshold), threshold, "a threshold is never negative");
        return threshold > 0 && owed >= threshold ? owed : 0;
    }
}
