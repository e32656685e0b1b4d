using ComputeGrid.Core;
using ComputeGrid.Ledger;

namespace ComputeGrid.Tokens.Tests;

/// <summary>The accumulator's arithmetic and its O(1) payment, checked on exact micro-units and on its structure.</summary>
public class AccumulatorTests
{
    [Fact]
    public void Revenue_is_shared_pro_rata_and_the_rounding_remainder_stays_in_the_pool()
    {
        // Supply 3, holders 1 and 2 shares: 10 micro-USD gives 3 and 6, one micro-USD carried.
        var acc = new ShareAccumulator(node: 9, issuer: 1, supply: 3);
        acc.Move(1, 2, 2);
        acc.Pay(10);
        Assert.Equal(3, acc.Entitlement(1));
        Assert.Equal(6, acc.Entitlement(2));
        Assert.Equal(1, acc.Carry());
        // The carried fractions (1/3 and 2/3) complete with the next payment of 2: 10 + 2 = 12 → 4 and 8, nothing carried.
        acc.Pay(2);
        Assert.Equal(4, acc.Entitlement(1));
        Assert.Equal(8, acc.Entitlement(2));
        Assert.Equal(0, acc.Carry());
        acc.AssertInvariants();
    }

    [Fact]
    public void A_movement_settles_both_sides_first_so_the_buyer_earns_nothing_paid_before()
    {
        var acc = new ShareAccumulator(node: 9, issuer: 1, supply: 100);
        acc.Pay(1_000_000);
        acc.Move(1, 2, 40);
        Assert.Equal(1_000_000, acc.Entitlement(1));
        Assert.Equal(0, acc.Entitlement(2));
        acc.Pay(500_000);
        Assert.Equal(1_300_000, acc.Entitlement(1));
        Assert.Equal(200_000, acc.Entitlement(2));
        acc.Claim(2, 150_000);
        Assert.Equal(50_000, acc.Owed(2));
        Assert.Throws<InvalidOperationException>(() => acc.Claim(2, 50_001));
        acc.AssertInvariants();
    }

    [Fact]
    public void A_payment_with_a_million_holders_changes_only_revenue_and_allocates_nothing()
    {
        const int holders = 1_000_000;
        const ulong node = 42;
        var registry = new ShareRegistry();
        var projection = new ShareLedgerProjection(registry);
        projection.OnPosted(Stored(TokenTransfers.Issue(node, 1, 3 * (long)holders + 7)));
        Assert.True(registry.TryGet(node, out ShareAccumulator acc));
        for (ulong h = 2; h <= holders; h++) acc.Move(1, h, 3);
        projection.OnPosted(Stored(TokenTransfers.Revenue(1, TokenWorld.Payer(node), node, 123_456_789)));

        var before = new (long, long, long, long)[holders + 1];
        for (ulong h = 1; h <= holders; h++) before[h] = acc.HolderState(h);
        long revenue = acc.Revenue;

        Transfer payment = Stored(TokenTransfers.Revenue(2, TokenWorld.Payer(node), node, 987_654_321));
        projection.OnPosted(in payment); // warm
        long allocated = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 1000; i++) projection.OnPosted(in payment);
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - allocated);

        Assert.Equal(revenue + 1001L * 987_654_321, acc.Revenue);
        for (ulong h = 1; h <= holders; h++) Assert.Equal(before[h], acc.HolderState(h));
        // The entitlements moved all the same: holder 2 has 3 of the 3,000,007 shares.
        Assert.Equal((long)((Int128)3 * acc.Revenue / acc.Supply), acc.Entitlement(2));
        acc.AssertInvariants();
    }

    [Fact]
    public void The_naive_book_and_the_accumulator_agree_on_a_hand_made_history()
    {
        var acc = new ShareRegistry();
        var naive = new NaiveShareBook();
        foreach (IShareBook book in (IShareBook[])[acc, naive])
        {
            book.Issue(5, 1, 7);
            book.Pay(5, 100);
            book.Move(5, 1, 2, 3);
            book.Pay(5, 13);
            book.Move(5, 2, 3, 1);
            book.Pay(5, 1);
            book.Claim(5, 2, 5);
        }
        foreach (ulong h in (ulong[])[1, 2, 3])
        {
            Assert.Equal(naive.Entitlement(5, h), acc.Entitlement(5, h));
            Assert.Equal(naive.Owed(5, h), acc.Owed(5, h));
        }
        // Holder 1: 100, then 4/7 of the 14 paid since = 8. Holder 2: 3/7 of 13 = 5 (remainder 4/7), then 2/7 of 1:
        // 5 (remainder 6/7). Holder 3: 1/7 of 1 = 0 (remainder 1/7). Carry: (0 + 6 + 1) / 7 = 1.
        Assert.Equal(108, acc.Entitlement(5, 1));
        Assert.Equal(5, acc.Entitlement(5, 2));
        Assert.Equal(0, acc.Entitlement(5, 3));
        Assert.Equal(1, naive.Carry(5));
    }

    [Fact]
    public void A_second_issue_of_a_node_is_refused_by_the_book()
    {
        var registry = new ShareRegistry();
        registry.Issue(5, 1, 10);
        Assert.Throws<InvalidOperationException>(() => registry.Issue(5, 1, 10));
        Assert.Throws<InvalidOperationException>(() => registry.Pay(6, 10));
        Assert.Throws<InvalidOperationException>(() => registry.Move(5, 2, 1, 1));
    }

    private static Transfer Stored(Transfer t)
    {
        t.Timestamp = 1;
        return t;
    }
}
