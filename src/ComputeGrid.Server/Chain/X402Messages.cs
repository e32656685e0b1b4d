using System.Numerics;
using Nethereum.ABI.FunctionEncoding.Attributes;
using Nethereum.Contracts;

namespace ComputeGrid.Server.Chain;

#pragma warning disable CS1591 // the attributes are the documentation: each class is its Solidity signature

/// <summary>
/// EIP-3009 <c>transferWithAuthorization(from, to, value, validAfter, validBefore, nonce, bytes signature)</c>, the overload
/// x402's <c>exact</c> facilitator sends. The server's own copy: its settler signs the transaction offline (to record the
/// hash before broadcasting it), which the chain project's typed client, waiting for a receipt, does not offer.
/// </summary>
[Function("transferWithAuthorization")]
public sealed class X402TransferWithAuthorization : FunctionMessage
{
    [Parameter("address", "from", 1)] public string From { get; set; } = "";
    [Parameter("address", "to", 2)] public string To { get; set; } = "";
    [Parameter("uint256", "value", 3)] public BigInteger Value { get; set; }
    [Parameter("uint256", "validAfter", 4)] public BigInteger ValidAfter { get; set; }
    [Parameter("uint256", "validBefore", 5)] public BigInteger ValidBefore { get; set; }
    [Parameter("bytes32", "nonce", 6)] public byte[] AuthorizationNonce { get; set; } = [];
    [Parameter("bytes", "signature", 7)] public byte[] Signature { get; set; } = [];
}
