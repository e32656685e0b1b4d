namespace ComputeGrid.Tokens.Tests;

/// <summary>Claims and auto-claim: never more than owed, nothing below the threshold, all of it at it.</summary>
public class ClaimPolicyTests
{
    [Theory]
    [InlineData(1_000, 0, ClaimDecision.Claim, 1_000)]
    [InlineData(1_000, 400, ClaimDecision.Claim, 400)]
    [InlineData(1_000, 1_000, ClaimDecision.Claim, 1_000)]
    [InlineData(1_000, 1_001, ClaimDecision.ExceedsOwed, 0)]
    [InlineData(1_000, -1, ClaimDecision.AmountMustNotBeNegative, 0)]
    [InlineData(0, 0, ClaimDecision.NothingToClaim, 0)]
    public void A_request_claims_at_most_what_is_owed(long owed, long requested, ClaimDecision decision, long amount) =>
        Assert.Equal((decision, amount), ClaimPolicy.Request(owed, requested));

    [Theory]
    [InlineData(999_999, 1_000_000, 0)]
    [InlineData(1_000_000, 1_000_000, 1_000_000)]
    [InlineData(5_000_001, 1_000_000, 5_000_001)]
    [InlineData(5_000_001, 0, 0)]
    [InlineData(0, 1, 0)]
    public void Auto_claim_takes_everything_owed_once_the_threshold_is_reached(long owed, long threshold, long amount) =>
        Assert.Equal(amount, ClaimPolicy.AutoClaim(owed, threshold));

    [Fact]
    public void Negative_owed_or_threshold_are_programming_errors()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => ClaimPolicy.AutoClaim(-1, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => ClaimPolicy.AutoClaim(1, -1));
        Assert.Throws<ArgumentOutOfRangeException>(() => ClaimPolicy.Request(-1, 0));
    }
}
