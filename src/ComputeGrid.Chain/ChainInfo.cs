namespace ComputeGrid.Chain;

/// <summary>What a client needs to reach ComputeGrid's contracts on one EVM chain (written to <c>DATA/chain.json</c>).</summary>
/// <param name="RpcUrl">The JSON-RPC endpoint.</param>
/// <param name="ChainId">The EIP-155 chain id (x402's network is <c>eip155:ChainId</c>).</param>
/// <param name="Stablecoin">The stablecoin (TestUSDC) address.</param>
/// <param name="Vault">The deposit/withdrawal vault address.</param>
/// <param name="Anchor">The StateRootAnchor address.</param>
/// <param name="PayTo">Where x402 payments go: the server's (operator's) account.</param>
/// <param name="TokenName">The stablecoin's EIP-712 domain name (x402's <c>extra.name</c>).</param>
/// <param name="TokenVersion">The stablecoin's EIP-712 domain version (x402's <c>extra.version</c>).</param>
/// <param name="DeployedAtBlock">The block of the first contract's deployment: no log of these contracts is older, so a
/// new data folder reads deposits from here, not from block 0 (0 where a chain.json predates the field).</param>
public sealed record ChainInfo(
    string RpcUrl, long ChainId, string Stablecoin, string Vault, string Anchor, string PayTo,
    string TokenName = ChainInfo.TestUsdcName, string TokenVersion = ChainInfo.TestUsdcVersion, long DeployedAtBlock = 0)
{
    /// <summary>TestUSDC's <c>name()</c>, the name of its EIP-712 domain.</summary>
    public const string TestUsdcName = "ComputeGrid USD";

    /// <summary>TestUSDC's <c>version()</c>.</summary>
    public const string TestUsdcVersion = "1";

    /// <summary>The CAIP-2 network id x402 uses.</summary>
    public string Network => $"eip155:{ChainId}";
}
