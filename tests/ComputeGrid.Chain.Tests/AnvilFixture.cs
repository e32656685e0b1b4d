using ComputeGrid.Chain.Contracts;
using Nethereum.Web3;

namespace ComputeGrid.Chain.Tests;

/// <summary>
/// A fact that needs the chain tools (node, npm, Anvil, solc): reported as skipped, with the reason, where they cannot
/// be installed. xunit 2 has no runtime skip, so the check runs when the attribute is built, at discovery (once per
/// process: <see cref="ChainTools.Ensure"/> caches).
/// </summary>
public sealed class ChainFactAttribute : FactAttribute
{
    public ChainFactAttribute()
    {
        if (!ChainTools.TryEnsure(out _, out string reason)) Skip = $"chain tools unavailable: {reason}";
    }
}

/// <summary>One Anvil for the whole collection, with the contracts deployed and the ten dev accounts funded.</summary>
public sealed class AnvilFixture : IAsyncLifetime
{
    private AnvilProcess? _anvil;
    private ChainInfo? _chain;

    public AnvilProcess Anvil => _anvil ?? throw new InvalidOperationException("the chain tools are unavailable");
    public ChainInfo Chain => _chain ?? throw new InvalidOperationException("the chain tools are unavailable");

    /// <summary>Dev key 0: the operator (deployer, mint owner, vault operator, anchor writer, payTo).</summary>
    public static string OperatorKey => ChainDeployment.AnvilDevKeys[0];

    public static string Key(int dev) => ChainDeployment.AnvilDevKeys[dev];

    public static string Address(int dev) => ChainDeployment.AddressOf(Key(dev));

    public Web3 As(int dev) => ChainDeployment.Connect(Chain.RpcUrl, Chain.ChainId, Key(dev));

    public StablecoinClient Stablecoin(int dev) => new(As(dev), Chain.Stablecoin);

    public VaultClient Vault(int dev) => new(As(dev), Chain.Vault);

    public AnchorClient Anchor(int dev) => new(As(dev), Chain.Anchor);

    public async Task InitializeAsync()
    {
        // Without the tools every test of the collection is skipped by ChainFact; the fixture must not fail them.
        if (!ChainTools.TryEnsure(out _, out _)) return;
        _anvil = await AnvilProcess.StartAsync();
        _chain = await ChainDeployment.DeployDevAsync(_anvil);
    }

    public Task DisposeAsync()
    {
        _anvil?.Dispose();
        return Task.CompletedTask;
    }
}

[CollectionDefinition(Name)]
public sealed class AnvilCollection : ICollectionFixture<AnvilFixture>
{
    public const string Name = "anvil";
}

/// <summary>Small helpers the chain tests share.</summary>
public static class ChainTestKit
{
    /// <summary>The timestamp of the latest block: EIP-3009 windows and permit deadlines are judged against block time.</summary>
    public static async Task<long> LatestTimestampAsync(this AnvilFixture f)
    {
        var block = await f.As(0).Eth.Blocks.GetBlockWithTransactionsHashesByNumber.SendRequestAsync(Nethereum.RPC.Eth.DTOs.BlockParameter.CreateLatest());
        return (long)block.Timestamp.Value;
    }

    /// <summary>32 bytes from a seeded generator, as hex: nonces and ids that replay with the test.</summary>
    public static string Bytes32(Random random)
    {
        var bytes = new byte[32];
        random.NextBytes(bytes);
        return "0x" + Convert.ToHexStringLower(bytes);
    }
}
