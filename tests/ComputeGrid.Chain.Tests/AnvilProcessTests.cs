using System.Diagnostics;
using ComputeGrid.Chain.Contracts;

namespace ComputeGrid.Chain.Tests;

[Collection(AnvilCollection.Name)]
public sealed class AnvilProcessTests(AnvilFixture f)
{
    [ChainFact]
    public async Task A_reverted_snapshot_and_a_reorg_both_remove_a_mined_deposit()
    {
        var random = new Random(7);
        StablecoinClient usdc = f.Stablecoin(5);
        VaultClient vault = f.Vault(5);
        await usdc.ApproveAsync(f.Chain.Vault, 2_000_000);
        long start = await f.Anvil.BlockNumberAsync();

        string snapshot = await f.Anvil.SnapshotAsync();
        ChainReceipt first = await vault.DepositAsync(1_000_000, ChainTestKit.Bytes32(random));
        Assert.Single(await vault.GetDepositsAsync(first.BlockNumber, first.BlockNumber));
        Assert.True(await f.Anvil.RevertAsync(snapshot));
        Assert.Equal(start, await f.Anvil.BlockNumberAsync());
        Assert.Null(await f.As(0).Eth.Transactions.GetTransactionReceipt.SendRequestAsync(first.TransactionHash));
        await f.Anvil.MineAsync(); // the height comes back, empty
        Assert.Empty(await vault.GetDepositsAsync(first.BlockNumber, first.BlockNumber));

        // Nethereum's account counts its nonces in memory: after a revert the chain's count is lower, so a client
        // that lived through it must be rebuilt (or its nonce reset), else its next transaction waits forever.
        vault = f.Vault(5);

        // A reorg one block deep replaces the deposit's block with an empty one at the same height.
        ChainReceipt second = await vault.DepositAsync(1_000_000, ChainTestKit.Bytes32(random));
        ChainDeposit mined = Assert.Single(await vault.GetDepositsAsync(second.BlockNumber, second.BlockNumber));
        await f.Anvil.ReorgAsync(1);
        Assert.Equal(second.BlockNumber, await f.Anvil.BlockNumberAsync());
        Assert.Empty(await vault.GetDepositsAsync(second.BlockNumber, second.BlockNumber));
        var receipt = await f.As(0).Eth.Transactions.GetTransactionReceipt.SendRequestAsync(mined.TransactionHash);
        Assert.Null(receipt);

        await f.Anvil.MineAsync(3);
        Assert.Equal(second.BlockNumber + 3, await f.Anvil.BlockNumberAsync());
    }

    [ChainFact]
    public async Task Chain_json_round_trips_and_a_broken_one_is_refused()
    {
        string dir = Directory.CreateTempSubdirectory("cg-chain-").FullName;
        try
        {
            string path = Path.Combine(dir, "chain.json");
            ChainDeployment.Write(f.Chain, path);
            Assert.Equal(f.Chain, ChainDeployment.Read(path));
            string text = File.ReadAllText(path);
            Assert.Contains("\"rpcUrl\"", text);
            Assert.Contains("\"payTo\"", text);
            Assert.Equal("eip155:31337", f.Chain.Network);
            Assert.Equal(AnvilFixture.Address(0), f.Chain.PayTo, ignoreCase: true);

            File.WriteAllText(path, "{\"rpcUrl\":\"http://x\",\"chainId\":1}");
            Assert.Contains("lacks a field", Assert.Throws<InvalidDataException>(() => ChainDeployment.Read(path)).Message);
            File.WriteAllText(path, "{ not json");
            Assert.Contains("is not a chain.json", Assert.Throws<InvalidDataException>(() => ChainDeployment.Read(path)).Message);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}

/// <summary>Its own Anvil: interval mining would slow every other test of the shared collection.</summary>
public sealed class AnvilBlockTimeTests
{
    [ChainFact]
    public async Task With_a_block_time_Anvil_mines_on_its_own_and_dispose_kills_it()
    {
        int pid;
        await using (AnvilProcess anvil = await AnvilProcess.StartAsync(blockTimeSeconds: 1))
        {
            pid = anvil.ProcessId;
            Assert.Equal(AnvilProcess.DefaultChainId, anvil.ChainId);
            long first = await anvil.BlockNumberAsync();
            long deadline = Environment.TickCount64 + 10_000;
            while (await anvil.BlockNumberAsync() == first && Environment.TickCount64 < deadline) await Task.Delay(100);
            Assert.True(await anvil.BlockNumberAsync() > first, "no block was mined in 10 s with --block-time 1");
        }
        Assert.Throws<ArgumentException>(() => Process.GetProcessById(pid));
    }
}
