namespace ComputeGrid.Chain;

/// <summary>What a client needs to reach ComputeGrid's contracts on one EVM chain (written to <c>DATA/chain.json</c>).</summary>
public sealed record ChainInfo(string RpcUrl, long ChainId, string Stablecoin, string Vault, string Anchor, string PayTo);
