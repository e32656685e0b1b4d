using ComputeGrid.Chain.Bridge;
using ComputeGrid.Chain.Contracts;

namespace ComputeGrid.Chain.Tests.Bridge;

/// <summary>
/// The reads the bridge decides by: a withdrawal's log is found by its id (and only its own), a block's canonical hash
/// changes when a reorg replaces the block, and a payment a reorg removed is no longer found. Its own Anvil: the
/// reorg must not disturb the shared collection's chain.
/// </summary>
public sealed class ChainReadsTests
{
    [ChainFact]
    public async Task A_withdrawal_is_found_by_its_id_and_is_gone_with_the_block_a_reorg_replaced()
    {
        await using AnvilProcess anvil = await AnvilProcess.StartAsync();
        ChainInfo chain = await ChainDeployment.DeployDevAsync(anvil);
        var web3 = ChainDeployment.Connect(chain.RpcUrl, chain.ChainId, AnvilFixture.OperatorKey);
        var vault = new VaultClient(web3, chain.Vault);
        await new StablecoinClient(web3, chain.Stablecoin).MintAsync(chain.Vault, 9_000_000);
        string first = "0x" + new string('1', 64), second = "0x" + new string('2', 64), never = "0x" + new string('3', 64);

        ChainReceipt paid = await vault.WithdrawAsync(AnvilFixture.Address(1), 1_000_000, first);
        await vault.WithdrawAsync(AnvilFixture.Address(2), 2_000_000, second);
        ChainWithdrawal? found = await ChainReads.FindWithdrawalAsync(web3, chain.Vault, first);
        Assert.NotNull(found);
        Assert.Equal((paid.TransactionHash, paid.BlockNumber, 1_000_000L), (found.TransactionHash, found.BlockNumber, found.Amount));
        Assert.Equal(AnvilFixture.Address(1), found.To, StringComparer.OrdinalIgnoreCase);
        Assert.Equal(await ChainReads.BlockHashAsync(web3, paid.BlockNumber), found.BlockHash);
        Assert.Equal(2_000_000, (await ChainReads.FindWithdrawalAsync(web3, chain.Vault, second))!.Amount);
        Assert.Null(await ChainReads.FindWithdrawalAsync(web3, chain.Vault, never));
        // Looking only after the block that paid it: not found.
        Assert.Null(await ChainReads.FindWithdrawalAsync(web3, chain.Vault, first, paid.BlockNumber + 1));

        long head = await ChainReads.HeadAsync(web3);
        Assert.Equal(await anvil.BlockNumberAsync(), head);
        Assert.Null(await ChainReads.BlockHashAsync(web3, head + 10));
        string? before = await ChainReads.BlockHashAsync(web3, head);
        await anvil.ReorgAsync(2); // both withdrawals' blocks replaced by empty ones
        Assert.NotEqual(before, await ChainReads.BlockHashAsync(web3, head));
        Assert.Null(await ChainReads.FindWithdrawalAsync(web3, chain.Vault, first));
        Assert.False(await vault.IsWithdrawnAsync(first));
    }
}
