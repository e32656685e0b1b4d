using ComputeGrid.Ledger;
using ComputeGrid.Server.Chain;

namespace ComputeGrid.Server.Tests.Chain;

/// <summary>The bridge's ids: derived from what caused them, distinct where the causes differ, and the deposit account encoding.</summary>
public sealed class BridgeIdsTests
{
    [Fact]
    public void A_deposit_account_round_trips_through_its_bytes32_and_a_word_with_high_bytes_names_no_account()
    {
        UInt128 account = ChartOfAccounts.PrincipalAccount(AccountCode.CustomerBalance, 42);
        string word = BridgeIds.AccountToBytes32(account);
        Assert.Equal(66, word.Length);
        Assert.StartsWith("0x" + new string('0', 32), word);
        Assert.True(BridgeIds.TryAccountFromBytes32(word, out UInt128 back));
        Assert.Equal(account, back);
        Assert.True(BridgeIds.TryAccountFromBytes32(word.ToUpperInvariant().Replace("0X", "0x"), out back));
        Assert.Equal(account, back);
        Assert.False(BridgeIds.TryAccountFromBytes32("0x01" + word[4..], out _));
        Assert.False(BridgeIds.TryAccountFromBytes32("0x" + new string('0', 64), out _));
        Assert.False(BridgeIds.TryAccountFromBytes32("0x1234", out _));
        Assert.False(BridgeIds.TryAccountFromBytes32("0x" + new string('g', 64), out _));
    }

    [Fact]
    public void Transfer_ids_derive_from_their_cause_lie_in_the_chain_space_and_differ_when_the_cause_does()
    {
        const string vault = "0x5FbDB2315678afecb367f032d93F642f64180aa3", tx = "0xAB" + "00000000000000000000000000000000000000000000000000000000000001";
        UInt128 d = BridgeIds.DepositTransfer(vault, tx, 3);
        Assert.Equal(d, BridgeIds.DepositTransfer(vault.ToLowerInvariant(), tx.ToLowerInvariant(), 3)); // case does not make another deposit
        Assert.NotEqual(d, BridgeIds.DepositTransfer(vault, tx, 4));
        Assert.True(ChartOfAccounts.TryDecode(d, out ushort space, out _, out _));
        Assert.Equal((ushort)TransferSpace.Chain, space);

        string w = BridgeIds.Withdrawal(7, "key-1");
        Assert.Equal(w, BridgeIds.Withdrawal(7, "key-1"));
        Assert.NotEqual(w, BridgeIds.Withdrawal(8, "key-1"));
        Assert.NotEqual(w, BridgeIds.Withdrawal(7, "key-2"));
        UInt128[] steps = Enum.GetValues<WithdrawalStep>().Select(s => BridgeIds.WithdrawalTransfer(w, s)).ToArray();
        Assert.Equal(steps.Length, steps.Distinct().Count());
        Assert.DoesNotContain(d, steps);
    }
}
