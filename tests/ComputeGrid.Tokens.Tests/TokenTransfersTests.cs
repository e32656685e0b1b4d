using ComputeGrid.Core;
using ComputeGrid.Ledger;

namespace ComputeGrid.Tokens.Tests;

/// <summary>The builders: accounts and ids from the chart, arguments checked, one id per operation and command key.</summary>
public class TokenTransfersTests
{
    [Fact]
    public void Ids_derive_from_the_operation_and_the_command_key_and_never_collide_across_operations()
    {
        var ids = new HashSet<UInt128>
        {
            TokenTransfers.Revenue(5, TokenWorld.Payer(3), 3, 1).Id,
            TokenTransfers.Claim(5, 3, 9, 1).Id,
            TokenTransfers.ShareTransfer(5, 3, 9, 10, 1).Id,
            TokenTransfers.Pledge(5, 3, 9, 1).Id,
            TokenTransfers.Unpledge(5, 3, 9, 1).Id,
            TokenTransfers.Liquidation(5, 3, 9, 10, 1).Id,
            TokenTransfers.Issue(5, 9, 1).Id,
        };
        Assert.Equal(7, ids.Count);
        Assert.Equal(TokenTransfers.Revenue(5, TokenWorld.Payer(3), 3, 1).Id, TokenTransfers.Revenue(5, TokenWorld.Payer(4), 4, 2).Id);
        Assert.All(ids, id => Assert.True(ChartOfAccounts.TryDecode(id, out ushort space, out _, out _) && space == (ushort)TransferSpace.Tokens));
    }

    [Fact]
    public void The_issue_accounts_and_transfer_follow_the_chart()
    {
        Account[] accounts = TokenTransfers.IssuanceAccounts(3, 9);
        Assert.Equal([(ushort)AccountCode.ShareIssuance, (ushort)AccountCode.ShareHolding, (ushort)AccountCode.SharePool], accounts.Select(a => a.Code));
        Assert.Equal([Asset.NodeShares(3).Code, Asset.NodeShares(3).Code, Asset.Usd.Code], accounts.Select(a => a.Asset));
        Transfer issue = TokenTransfers.Issue(3, 9, 1_000);
        Assert.Equal(accounts[0].Id, issue.DebitAccountId);
        Assert.Equal(accounts[1].Id, issue.CreditAccountId);
        Assert.Equal((ushort)TransferCode.ShareIssue, issue.Code);
        Assert.Equal(9ul, accounts[1].UserData64);
    }

    [Fact]
    public void Bad_arguments_are_refused_before_the_ledger_sees_them()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => TokenTransfers.Issue(3, 9, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => TokenTransfers.Revenue(1, TokenWorld.Payer(3), 3, -1));
        Assert.Throws<ArgumentOutOfRangeException>(() => TokenTransfers.Claim(1, 3, 9, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => TokenTransfers.Claim(1, 3, 9, 5, ChartOfAccounts.PrincipalAccount(AccountCode.CustomerBalance, 10)));
        Assert.Throws<ArgumentOutOfRangeException>(() => TokenTransfers.ShareTransfer(1, 3, 9, 9, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => TokenTransfers.Liquidation(1, 3, 9, 9, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => TokenTransfers.Pledge(1, 3, 9, 0));
    }
}
