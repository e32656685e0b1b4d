using ComputeGrid.Core;
using ComputeGrid.Ledger;

namespace ComputeGrid.Tokens.Tests;

/// <summary>The projection reads the ledger's postings as the chart of accounts means them, and nothing else.</summary>
public class ProjectionTests
{
    private const ulong Node = 31, Issuer = 1, Buyer = 2;

    [Fact]
    public void Issue_revenue_transfer_and_claim_through_the_ledger_reach_the_book_exactly()
    {
        using var w = new TokenWorld();
        w.IssueNode(Node, Issuer, 1_000);
        w.Holder(Buyer, Node);
        w.Ok(TokenTransfers.Revenue(w.NextKey(), TokenWorld.Payer(Node), Node, 2_000_000));
        w.Ok(TokenTransfers.ShareTransfer(w.NextKey(), Node, Issuer, Buyer, 250));
        w.Ok(TokenTransfers.Revenue(w.NextKey(), TokenWorld.Payer(Node), Node, 1_000_001));
        Assert.Equal(2_750_000, w.Registry.Entitlement(Node, Issuer));
        Assert.Equal(250_000, w.Registry.Entitlement(Node, Buyer));
        w.Ok(TokenTransfers.Claim(w.NextKey(), Node, Buyer, 250_000));
        Assert.Equal(0, w.Registry.Owed(Node, Buyer));
        Assert.Equal(250_000, w.Balance(ChartOfAccounts.PrincipalAccount(AccountCode.CustomerBalance, Buyer)));
        Assert.Equal(3_000_001 - 250_000, w.Balance(ChartOfAccounts.SharePool(Node)));
        Assert.True(w.Registry.TryGet(Node, out ShareAccumulator acc));
        Assert.Equal(1, acc.Carry());
    }

    [Fact]
    public void A_failed_linked_chain_leaves_the_book_untouched()
    {
        using var w = new TokenWorld();
        w.IssueNode(Node, Issuer, 1_000);
        w.Holder(Buyer, Node);
        Transfer pay = TokenTransfers.Revenue(w.NextKey(), TokenWorld.Payer(Node), Node, 5_000);
        pay.Flags = TransferFlags.Linked;
        Transfer move = TokenTransfers.ShareTransfer(w.NextKey(), Node, Issuer, Buyer, 10);
        move.Flags = TransferFlags.Linked;
        Transfer overclaim = TokenTransfers.Claim(w.NextKey(), Node, Issuer, 5_001); // the pool holds 5,000: the ledger refuses
        var results = w.Submit(pay, move, overclaim);
        Assert.Equal([CreateTransferResult.LinkedEventFailed, CreateTransferResult.LinkedEventFailed, CreateTransferResult.ExceedsCredits], results);
        Assert.Equal(0, w.Registry.Revenue(Node));
        Assert.Equal(1_000, w.Registry.Shares(Node, Issuer));
        Assert.Equal(0, w.Registry.Shares(Node, Buyer));
        // The same chain without its bad link commits, and the book sees both.
        pay.Id = TokenTransfers.Id(TokenOperation.Revenue, w.NextKey());
        move.Flags = TransferFlags.None;
        move.Id = TokenTransfers.Id(TokenOperation.Transfer, w.NextKey());
        w.Ok(pay, move);
        Assert.Equal(5_000, w.Registry.Revenue(Node));
        Assert.Equal(10, w.Registry.Shares(Node, Buyer));
    }

    [Fact]
    public void Pledged_shares_earn_for_their_owner_and_a_liquidation_moves_the_earning_to_the_buyer()
    {
        using var w = new TokenWorld();
        w.IssueNode(Node, Issuer, 100);
        w.Holder(Buyer, Node);
        w.Ok(TokenTransfers.Pledge(w.NextKey(), Node, Issuer, 60));
        w.Ok(TokenTransfers.Revenue(w.NextKey(), TokenWorld.Payer(Node), Node, 1_000));
        Assert.Equal(1_000, w.Registry.Entitlement(Node, Issuer));
        w.Ok(TokenTransfers.Liquidation(w.NextKey(), Node, Issuer, Buyer, 60));
        w.Ok(TokenTransfers.Revenue(w.NextKey(), TokenWorld.Payer(Node), Node, 1_000));
        Assert.Equal(1_400, w.Registry.Entitlement(Node, Issuer));
        Assert.Equal(600, w.Registry.Entitlement(Node, Buyer));
        Assert.Equal(0, w.Pledged(Issuer, Node));
        Assert.Equal(60, w.Holding(Buyer, Node));
    }

    [Fact]
    public void A_pending_hold_and_its_void_are_not_seen_and_its_post_is_seen_with_its_resolved_accounts()
    {
        using var w = new TokenWorld();
        w.IssueNode(Node, Issuer, 10);
        w.Holder(Buyer, Node);
        var shares = Asset.NodeShares(Node).Code;
        UInt128 hold = TokenTransfers.Id(TokenOperation.Transfer, w.NextKey(), 1);
        w.Ok(new Transfer { Id = hold, DebitAccountId = ChartOfAccounts.ShareHolding(Issuer, Node), CreditAccountId = TokenWorld.Escrow(Node), Amount = 4, Asset = shares, Code = (ushort)TransferCode.ShareTrade, Flags = TransferFlags.Pending });
        w.Ok(TokenTransfers.Revenue(w.NextKey(), TokenWorld.Payer(Node), Node, 1_000));
        Assert.Equal(10, w.Registry.Shares(Node, Issuer));
        Assert.Equal(1_000, w.Registry.Entitlement(Node, Issuer)); // the seller earns while its order is open
        w.Ok(
            new Transfer { Id = TokenTransfers.Id(TokenOperation.Transfer, w.NextKey(), 2), PendingId = hold, Amount = 3, Flags = TransferFlags.PostPendingTransfer | TransferFlags.Linked },
            new Transfer { Id = TokenTransfers.Id(TokenOperation.Transfer, w.NextKey(), 3), DebitAccountId = TokenWorld.Escrow(Node), CreditAccountId = ChartOfAccounts.ShareHolding(Buyer, Node), Amount = 3, Asset = shares, Code = (ushort)TransferCode.ShareTrade });
        Assert.Equal(7, w.Registry.Shares(Node, Issuer));
        Assert.Equal(3, w.Registry.Shares(Node, Buyer));
        Assert.Equal(0, w.Registry.Shares(Node, 0));
        UInt128 hold2 = TokenTransfers.Id(TokenOperation.Transfer, w.NextKey(), 1);
        w.Ok(new Transfer { Id = hold2, DebitAccountId = ChartOfAccounts.ShareHolding(Issuer, Node), CreditAccountId = TokenWorld.Escrow(Node), Amount = 7, Asset = shares, Code = (ushort)TransferCode.ShareTrade, Flags = TransferFlags.Pending });
        w.Ok(new Transfer { Id = TokenTransfers.Id(TokenOperation.Transfer, w.NextKey(), 2), PendingId = hold2, Flags = TransferFlags.VoidPendingTransfer });
        Assert.Equal(7, w.Registry.Shares(Node, Issuer));
        w.Registry.AssertInvariants();
    }

    [Fact]
    public void A_claim_above_what_is_owed_is_a_broken_invariant_the_projection_reports()
    {
        // The ledger only knows the pool's balance; the holder's share of it is the projection's to assert.
        using var w = new TokenWorld();
        w.IssueNode(Node, Issuer, 10);
        w.Holder(Buyer, Node);
        w.Ok(TokenTransfers.ShareTransfer(w.NextKey(), Node, Issuer, Buyer, 1));
        w.Ok(TokenTransfers.Revenue(w.NextKey(), TokenWorld.Payer(Node), Node, 1_000));
        var e = Assert.Throws<InvalidOperationException>(() => w.Submit(TokenTransfers.Claim(w.NextKey(), Node, Buyer, 101)));
        Assert.Contains("more than it is owed", e.Message);
    }

    [Fact]
    public void A_second_issue_of_a_node_is_an_idempotent_retry_or_refused_by_the_ledger()
    {
        using var w = new TokenWorld();
        w.IssueNode(Node, Issuer, 10);
        Assert.Equal([CreateTransferResult.Exists], w.Submit(TokenTransfers.Issue(Node, Issuer, 10)));
        Assert.Equal([CreateTransferResult.ExistsWithDifferentAmount], w.Submit(TokenTransfers.Issue(Node, Issuer, 11)));
        Assert.Equal(10, w.Registry.Supply(Node));
    }

    [Fact]
    public void Postings_that_touch_no_share_account_or_pool_are_ignored_and_a_stray_share_move_is_refused()
    {
        var registry = new ShareRegistry();
        var projection = new ShareLedgerProjection(registry);
        var funding = new Transfer { Id = 1, DebitAccountId = TokenWorld.Treasury, CreditAccountId = TokenWorld.Payer(Node), Amount = 5, Asset = Asset.Usd.Code, Code = (ushort)TransferCode.Funding };
        projection.OnPosted(in funding);
        Assert.Empty(registry.Nodes);
        projection.OnPosted(TokenTransfers.Issue(Node, Issuer, 10));
        var stray = new Transfer { Id = 2, DebitAccountId = ChartOfAccounts.ShareHolding(Issuer, Node), CreditAccountId = ChartOfAccounts.ShareHolding(Buyer, Node + 1), Amount = 1, Asset = Asset.NodeShares(Node).Code, Code = (ushort)TransferCode.ShareTransfer };
        Assert.Throws<InvalidOperationException>(() => projection.OnPosted(in stray));
        var drain = new Transfer { Id = 3, DebitAccountId = ChartOfAccounts.SharePool(Node), CreditAccountId = TokenWorld.Treasury, Amount = 1, Asset = Asset.Usd.Code, Code = (ushort)TransferCode.ShareClaim };
        Assert.Throws<InvalidOperationException>(() => projection.OnPosted(in drain));
    }
}
