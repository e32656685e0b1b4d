using System.Numerics;
using Nethereum.ABI.FunctionEncoding.Attributes;
using Nethereum.Contracts;

// Nethereum's typed messages for the calls the server makes, one class per function overload or event, named after
// the Solidity signature they encode. Internal: callers use the wrappers (StablecoinClient, VaultClient, ...).
namespace ComputeGrid.Chain.Contracts;

#pragma warning disable CS1591 // each class is its Solidity signature; the attributes are the documentation

internal sealed class DeployTestUsdc() : ContractDeploymentMessage(ContractArtifacts.TestUsdc.Bytecode);

internal sealed class DeployVault() : ContractDeploymentMessage(ContractArtifacts.Vault.Bytecode)
{
    [Parameter("address", "token_", 1)] public string Token { get; set; } = "";
    [Parameter("address", "operator_", 2)] public string Operator { get; set; } = "";
}

internal sealed class DeployAnchor() : ContractDeploymentMessage(ContractArtifacts.StateRootAnchor.Bytecode)
{
    [Parameter("address", "operator_", 1)] public string Operator { get; set; } = "";
}

internal sealed class DeployShareToken() : ContractDeploymentMessage(ContractArtifacts.NodeShareToken.Bytecode)
{
    [Parameter("string", "name_", 1)] public string Name { get; set; } = "";
    [Parameter("string", "symbol_", 2)] public string Symbol { get; set; } = "";
    [Parameter("bytes32", "node_", 3)] public byte[] Node { get; set; } = [];
    [Parameter("uint256", "nodeSupply_", 4)] public BigInteger NodeSupply { get; set; }
    [Parameter("address", "stablecoin_", 5)] public string Stablecoin { get; set; } = "";
    [Parameter("address", "operator_", 6)] public string Operator { get; set; } = "";
}

// ---- ERC-20 (stablecoin and share token) ----

[Function("balanceOf", "uint256")]
internal sealed class BalanceOfFunction : FunctionMessage
{
    [Parameter("address", "account", 1)] public string Account { get; set; } = "";
}

[Function("totalSupply", "uint256")]
internal sealed class TotalSupplyFunction : FunctionMessage;

[Function("transfer", "bool")]
internal sealed class TransferFunction : FunctionMessage
{
    [Parameter("address", "to", 1)] public string To { get; set; } = "";
    [Parameter("uint256", "value", 2)] public BigInteger Value { get; set; }
}

[Function("approve", "bool")]
internal sealed class ApproveFunction : FunctionMessage
{
    [Parameter("address", "spender", 1)] public string Spender { get; set; } = "";
    [Parameter("uint256", "value", 2)] public BigInteger Value { get; set; }
}

[Function("allowance", "uint256")]
internal sealed class AllowanceFunction : FunctionMessage
{
    [Parameter("address", "owner", 1)] public string Owner { get; set; } = "";
    [Parameter("address", "spender", 2)] public string Spender { get; set; } = "";
}

[Function("mint")]
internal sealed class MintStablecoinFunction : FunctionMessage
{
    [Parameter("address", "to", 1)] public string To { get; set; } = "";
    [Parameter("uint256", "value", 2)] public BigInteger Value { get; set; }
}

// ---- EIP-712 / 2612 / 3009 ----

[Function("DOMAIN_SEPARATOR", "bytes32")]
internal sealed class DomainSeparatorFunction : FunctionMessage;

[Function("name", "string")]
internal sealed class NameFunction : FunctionMessage;

[Function("version", "string")]
internal sealed class VersionFunction : FunctionMessage;

[Function("nonces", "uint256")]
internal sealed class NoncesFunction : FunctionMessage
{
    [Parameter("address", "owner", 1)] public string Owner { get; set; } = "";
}

[Function("permit")]
internal sealed class PermitFunction : FunctionMessage
{
    [Parameter("address", "owner_", 1)] public string Owner { get; set; } = "";
    [Parameter("address", "spender", 2)] public string Spender { get; set; } = "";
    [Parameter("uint256", "value", 3)] public BigInteger Value { get; set; }
    [Parameter("uint256", "deadline", 4)] public BigInteger Deadline { get; set; }
    [Parameter("uint8", "v", 5)] public byte V { get; set; }
    [Parameter("bytes32", "r", 6)] public byte[] R { get; set; } = [];
    [Parameter("bytes32", "s", 7)] public byte[] S { get; set; } = [];
}

[Function("authorizationState", "bool")]
internal sealed class AuthorizationStateFunction : FunctionMessage
{
    [Parameter("address", "authorizer", 1)] public string Authorizer { get; set; } = "";
    [Parameter("bytes32", "nonce", 2)] public byte[] AuthorizationNonce { get; set; } = [];
}

/// <summary>The six fields every EIP-3009 authorization call starts with; the overloads add the signature as bytes or as v,r,s.</summary>
public abstract class AuthorizationMessage : FunctionMessage
{
    [Parameter("address", "from", 1)] public string From { get; set; } = "";
    [Parameter("address", "to", 2)] public string To { get; set; } = "";
    [Parameter("uint256", "value", 3)] public BigInteger Value { get; set; }
    [Parameter("uint256", "validAfter", 4)] public BigInteger ValidAfter { get; set; }
    [Parameter("uint256", "validBefore", 5)] public BigInteger ValidBefore { get; set; }
    [Parameter("bytes32", "nonce", 6)] public byte[] AuthorizationNonce { get; set; } = [];
}

/// <summary>
/// EIP-3009 <c>transferWithAuthorization(from, to, value, validAfter, validBefore, nonce, bytes signature)</c>, the overload
/// x402's <c>exact</c> facilitator sends for an EOA's 65-byte signature. Public: the server's x402 settler signs it offline.
/// </summary>
[Function("transferWithAuthorization")]
public sealed class TransferWithAuthorizationFunction : AuthorizationMessage
{
    [Parameter("bytes", "signature", 7)] public byte[] Signature { get; set; } = [];
}

/// The v,r,s overload of transferWithAuthorization.
[Function("transferWithAuthorization")]
internal sealed class TransferWithAuthorizationVrsFunction : AuthorizationMessage
{
    [Parameter("uint8", "v", 7)] public byte V { get; set; }
    [Parameter("bytes32", "r", 8)] public byte[] R { get; set; } = [];
    [Parameter("bytes32", "s", 9)] public byte[] S { get; set; } = [];
}

/// The `bytes signature` overload of receiveWithAuthorization.
[Function("receiveWithAuthorization")]
internal sealed class ReceiveWithAuthorizationFunction : AuthorizationMessage
{
    [Parameter("bytes", "signature", 7)] public byte[] Signature { get; set; } = [];
}

/// The v,r,s overload of cancelAuthorization.
[Function("cancelAuthorization")]
internal sealed class CancelAuthorizationFunction : FunctionMessage
{
    [Parameter("address", "authorizer", 1)] public string Authorizer { get; set; } = "";
    [Parameter("bytes32", "nonce", 2)] public byte[] AuthorizationNonce { get; set; } = [];
    [Parameter("uint8", "v", 3)] public byte V { get; set; }
    [Parameter("bytes32", "r", 4)] public byte[] R { get; set; } = [];
    [Parameter("bytes32", "s", 5)] public byte[] S { get; set; } = [];
}

// ---- Vault ----

/// deposit(uint256, bytes32 account): the vault's (stablecoin) and a share token's (shares) alike.
[Function("deposit")]
internal sealed class DepositFunction : FunctionMessage
{
    [Parameter("uint256", "amount", 1)] public BigInteger Amount { get; set; }
    [Parameter("bytes32", "account", 2)] public byte[] Account { get; set; } = [];
}

[Function("depositWithPermit")]
internal sealed class VaultDepositWithPermitFunction : FunctionMessage
{
    [Parameter("uint256", "amount", 1)] public BigInteger Amount { get; set; }
    [Parameter("bytes32", "account", 2)] public byte[] Account { get; set; } = [];
    [Parameter("uint256", "deadline", 3)] public BigInteger Deadline { get; set; }
    [Parameter("uint8", "v", 4)] public byte V { get; set; }
    [Parameter("bytes32", "r", 5)] public byte[] R { get; set; } = [];
    [Parameter("bytes32", "s", 6)] public byte[] S { get; set; } = [];
}

[Function("withdraw")]
internal sealed class VaultWithdrawFunction : FunctionMessage
{
    [Parameter("address", "to", 1)] public string To { get; set; } = "";
    [Parameter("uint256", "amount", 2)] public BigInteger Amount { get; set; }
    [Parameter("bytes32", "withdrawalId", 3)] public byte[] WithdrawalId { get; set; } = [];
}

[Function("withdrawn", "bool")]
internal sealed class VaultWithdrawnFunction : FunctionMessage
{
    [Parameter("bytes32", "", 1)] public byte[] WithdrawalId { get; set; } = [];
}

/// Deposited(address indexed, bytes32 indexed account, uint256): the vault's and a share token's alike.
[Event("Deposited")]
internal sealed class DepositedEvent : IEventDTO
{
    [Parameter("address", "depositor", 1, true)] public string Depositor { get; set; } = "";
    [Parameter("bytes32", "account", 2, true)] public byte[] Account { get; set; } = [];
    [Parameter("uint256", "amount", 3, false)] public BigInteger Amount { get; set; }
}

[Event("Withdrawn")]
internal sealed class WithdrawnEvent : IEventDTO
{
    [Parameter("bytes32", "withdrawalId", 1, true)] public byte[] WithdrawalId { get; set; } = [];
    [Parameter("address", "to", 2, true)] public string To { get; set; } = "";
    [Parameter("uint256", "amount", 3, false)] public BigInteger Amount { get; set; }
}

// ---- NodeShareToken ----

[Function("mint")]
internal sealed class ShareMintFunction : FunctionMessage
{
    [Parameter("address", "to", 1)] public string To { get; set; } = "";
    [Parameter("uint256", "shares", 2)] public BigInteger Shares { get; set; }
    [Parameter("bytes32", "mintId", 3)] public byte[] MintId { get; set; } = [];
}

[Function("distribute")]
internal sealed class DistributeFunction : FunctionMessage
{
    [Parameter("uint256", "revenueTotal", 1)] public BigInteger RevenueTotal { get; set; }
}

[Function("claim", "uint256")]
internal sealed class ClaimFunction : FunctionMessage;

[Function("withdrawableDividendOf", "uint256")]
internal sealed class WithdrawableDividendOfFunction : FunctionMessage
{
    [Parameter("address", "holder", 1)] public string Holder { get; set; } = "";
}

[Function("accumulativeDividendOf", "uint256")]
internal sealed class AccumulativeDividendOfFunction : FunctionMessage
{
    [Parameter("address", "holder", 1)] public string Holder { get; set; } = "";
}

[Function("pulled", "uint256")]
internal sealed class PulledFunction : FunctionMessage;

[Function("revenue", "uint256")]
internal sealed class RevenueFunction : FunctionMessage;

[Function("minted", "bool")]
internal sealed class MintedFunction : FunctionMessage
{
    [Parameter("bytes32", "", 1)] public byte[] MintId { get; set; } = [];
}

[Event("Distributed")]
internal sealed class ShareDistributedEvent : IEventDTO
{
    [Parameter("uint256", "revenue", 1, false)] public BigInteger Revenue { get; set; }
    [Parameter("uint256", "pulled", 2, false)] public BigInteger Pulled { get; set; }
    [Parameter("uint256", "revenueTotal", 3, false)] public BigInteger RevenueTotal { get; set; }
}

// ---- StateRootAnchor ----

[Function("anchor")]
internal sealed class AnchorFunction : FunctionMessage
{
    [Parameter("uint64", "opNumber", 1)] public ulong OpNumber { get; set; }
    [Parameter("bytes32", "root", 2)] public byte[] Root { get; set; } = [];
    [Parameter("bytes32", "logHead", 3)] public byte[] LogHead { get; set; } = [];
    [Parameter("uint256[]", "liabilities", 4)] public List<BigInteger> Liabilities { get; set; } = [];
}

[Function("latest", typeof(LatestOutput))]
internal sealed class LatestFunction : FunctionMessage;

[FunctionOutput]
internal sealed class LatestOutput : IFunctionOutputDTO
{
    [Parameter("uint64", "opNumber", 1)] public ulong OpNumber { get; set; }
    [Parameter("bytes32", "root", 2)] public byte[] Root { get; set; } = [];
}

[Function("rootAt", "bytes32")]
internal sealed class RootAtFunction : FunctionMessage
{
    [Parameter("uint64", "opNumber", 1)] public ulong OpNumber { get; set; }
}

[Event("Anchored")]
internal sealed class AnchoredEvent : IEventDTO
{
    [Parameter("uint64", "opNumber", 1, true)] public ulong OpNumber { get; set; }
    [Parameter("bytes32", "root", 2, false)] public byte[] Root { get; set; } = [];
    [Parameter("bytes32", "logHead", 3, false)] public byte[] LogHead { get; set; } = [];
    [Parameter("uint256[]", "liabilities", 4, false)] public List<BigInteger> Liabilities { get; set; } = [];
}
