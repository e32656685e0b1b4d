using ComputeGrid.Chain.Contracts;

namespace ComputeGrid.Chain.Tests;

[Collection(AnvilCollection.Name)]
public sealed class VaultTests(AnvilFixture f)
{
    private const int Depositor = 4, Payee = 5;

    [ChainFact]
    public async Task A_deposit_emits_one_event_keyed_by_transaction_hash_and_log_index()
    {
        var random = new Random(41);
        string account = ChainTestKit.Bytes32(random);
        StablecoinClient usdc = f.Stablecoin(Depositor);
        VaultClient vault = f.Vault(Depositor);
        long vaultBefore = await usdc.BalanceOfAsync(f.Chain.Vault);

        await usdc.ApproveAsync(f.Chain.Vault, 7_000_001);
        ChainReceipt receipt = await vault.DepositAsync(7_000_001, account);

        IReadOnlyList<ChainDeposit> deposits = await vault.GetDepositsAsync(receipt.BlockNumber, receipt.BlockNumber);
        ChainDeposit d = Assert.Single(deposits);
        Assert.Equal(receipt.TransactionHash, d.TransactionHash);
        Assert.Equal(receipt.BlockNumber, d.BlockNumber);
        // The token's Transfer log comes first in the same transaction, so the vault's event is log 1 of the block.
        Assert.Equal(1, d.LogIndex);
        Assert.Equal(AnvilFixture.Address(Depositor), d.Depositor, ignoreCase: true);
        Assert.Equal(account, d.Account);
        Assert.Equal(7_000_001, d.Amount);
        Assert.Equal(vaultBefore + 7_000_001, await usdc.BalanceOfAsync(f.Chain.Vault));

        // Read again over a wider range: the same key, nothing new (a re-read is how a replay looks to the bridge).
        var again = await vault.GetDepositsAsync(0, receipt.BlockNumber);
        Assert.Single(again, x => x.TransactionHash == d.TransactionHash && x.LogIndex == d.LogIndex);

        var zero = await Assert.ThrowsAsync<ChainRevertException>(() => vault.DepositAsync(0, account));
        Assert.Equal("zero deposit", zero.Reason);
        var unapproved = await Assert.ThrowsAsync<ChainRevertException>(() => vault.DepositAsync(1, account));
        Assert.Equal("allowance exceeded", unapproved.Reason);
    }

    [ChainFact]
    public async Task A_deposit_with_permit_needs_no_prior_approval()
    {
        StablecoinClient usdc = f.Stablecoin(Depositor);
        VaultClient vault = f.Vault(Depositor);
        string owner = AnvilFixture.Address(Depositor);
        long deadline = await f.LatestTimestampAsync() + 600;
        var permit = new PermitAuthorization(owner, f.Chain.Vault, 2_500_000, await usdc.NoncesAsync(owner), deadline);
        string signature = permit.Sign(await usdc.DomainAsync(), AnvilFixture.Key(Depositor));
        long before = await usdc.BalanceOfAsync(owner);

        ChainReceipt receipt = await vault.DepositWithPermitAsync(2_500_000, ChainTestKit.Bytes32(new Random(42)), deadline, signature);

        Assert.Equal(before - 2_500_000, await usdc.BalanceOfAsync(owner));
        Assert.Equal(2_500_000, Assert.Single(await vault.GetDepositsAsync(receipt.BlockNumber, receipt.BlockNumber)).Amount);
        Assert.Equal(0, await usdc.AllowanceAsync(owner, f.Chain.Vault));
    }

    [ChainFact]
    public async Task A_withdrawal_pays_once_per_id_and_only_from_the_operator()
    {
        var random = new Random(43);
        StablecoinClient usdc = f.Stablecoin(Depositor);
        await usdc.ApproveAsync(f.Chain.Vault, 3_000_000);
        await f.Vault(Depositor).DepositAsync(3_000_000, ChainTestKit.Bytes32(random));
        string payee = AnvilFixture.Address(Payee), id = ChainTestKit.Bytes32(random);
        long before = await usdc.BalanceOfAsync(payee);
        VaultClient operatorVault = f.Vault(0);

        Assert.False(await operatorVault.IsWithdrawnAsync(id));
        await operatorVault.WithdrawAsync(payee, 1_000_000, id);
        Assert.True(await operatorVault.IsWithdrawnAsync(id));
        Assert.Equal(before + 1_000_000, await usdc.BalanceOfAsync(payee));

        // The outbox retries with the same id after a crash: the chain refuses the second payment.
        var repeat = await Assert.ThrowsAsync<ChainRevertException>(() => operatorVault.WithdrawAsync(payee, 1_000_000, id));
        Assert.Equal("withdrawal already paid", repeat.Reason);
        var stranger = await Assert.ThrowsAsync<ChainRevertException>(() => f.Vault(Payee).WithdrawAsync(payee, 1, ChainTestKit.Bytes32(random)));
        Assert.Equal("only operator", stranger.Reason);
        Assert.Equal(before + 1_000_000, await usdc.BalanceOfAsync(payee));
    }
}
