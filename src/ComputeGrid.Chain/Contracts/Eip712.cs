using System.Numerics;
using System.Text;
using Nethereum.ABI.EIP712;
using Nethereum.ABI.FunctionEncoding.Attributes;
using Nethereum.Hex.HexConvertors.Extensions;
using Nethereum.Signer;
using Nethereum.Signer.EIP712;
using Nethereum.Util;

namespace ComputeGrid.Chain.Contracts;

/// <summary>
/// A token's EIP-712 domain: (name, version, chain id, verifying contract). Every EIP-2612 and EIP-3009 signature is
/// over it, so a client that builds it differently from the contract produces signatures that silently fail;
/// <see cref="Separator"/> is compared with the deployed contract's <c>DOMAIN_SEPARATOR()</c> by a test.
/// </summary>
/// <param name="Name">The token's <c>name()</c>.</param>
/// <param name="Version">The token's <c>version()</c>.</param>
/// <param name="ChainId">The chain id (EIP-155).</param>
/// <param name="VerifyingContract">The token's address.</param>
public sealed record Eip712Domain(string Name, string Version, long ChainId, string VerifyingContract)
{
    private static readonly byte[] DomainTypeHash =
        Keccak("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"u8.ToArray());

    /// <summary>keccak256(abi.encode(typehash, keccak(name), keccak(version), chainId, verifyingContract)).</summary>
    public byte[] Separator()
    {
        var encoded = new byte[5 * 32];
        DomainTypeHash.CopyTo(encoded, 0);
        Keccak(Encoding.UTF8.GetBytes(Name)).CopyTo(encoded, 32);
        Keccak(Encoding.UTF8.GetBytes(Version)).CopyTo(encoded, 64);
        WriteWord(new BigInteger(ChainId), encoded.AsSpan(96, 32));
        byte[] address = VerifyingContract.HexToByteArray();
        if (address.Length != 20) throw new ArgumentException($"not an address: {VerifyingContract}");
        address.CopyTo(encoded, 128 + 12);
        return Keccak(encoded);
    }

    internal TypedData<Domain> TypedData<TMessage>(string primaryType) => new()
    {
        Domain = new Domain { Name = Name, Version = Version, ChainId = ChainId, VerifyingContract = VerifyingContract },
        Types = MemberDescriptionFactory.GetTypesMemberDescription(typeof(Domain), typeof(TMessage)),
        PrimaryType = primaryType,
    };

    private static byte[] Keccak(byte[] data) => Sha3Keccack.Current.CalculateHash(data);

    private static void WriteWord(BigInteger value, Span<byte> word)
    {
        if (value.Sign < 0 || !value.TryWriteBytes(word[(32 - value.GetByteCount(isUnsigned: true))..], out _, isUnsigned: true, isBigEndian: true))
            throw new ArgumentOutOfRangeException(nameof(value), value, "not a uint256");
    }
}

/// <summary>
/// An EIP-3009 <c>TransferWithAuthorization</c>: <paramref name="From"/> lets anyone move <paramref name="Value"/>
/// micro-units to <paramref name="To"/> once (<paramref name="Nonce"/>), strictly between the two Unix times.
/// </summary>
/// <param name="From">The payer (the signer).</param>
/// <param name="To">The payee.</param>
/// <param name="Value">Micro-units of the token.</param>
/// <param name="ValidAfter">Valid strictly after this Unix time (seconds).</param>
/// <param name="ValidBefore">Valid strictly before this Unix time (seconds).</param>
/// <param name="Nonce">32 random bytes chosen by the payer, as 0x-prefixed hex.</param>
public sealed record TransferAuthorization(string From, string To, long Value, long ValidAfter, long ValidBefore, string Nonce)
{
    /// <summary>Signs the authorization with <paramref name="privateKey"/> (Nethereum's EIP-712 v4 signer); returns the 65-byte signature as hex.</summary>
    public string Sign(Eip712Domain domain, string privateKey)
    {
        var message = new TransferWithAuthorizationStruct
        {
            From = From, To = To, Value = Value, ValidAfter = ValidAfter, ValidBefore = ValidBefore,
            Nonce = Nonce.HexToByteArray(),
        };
        return new Eip712TypedDataSigner().SignTypedDataV4(
            message, domain.TypedData<TransferWithAuthorizationStruct>("TransferWithAuthorization"), new EthECKey(privateKey));
    }
}

/// <summary>An EIP-2612 <c>Permit</c>: <paramref name="Owner"/> approves <paramref name="Spender"/> for <paramref name="Value"/> by signature.</summary>
/// <param name="Owner">The token holder (the signer).</param>
/// <param name="Spender">Who may spend.</param>
/// <param name="Value">Micro-units approved.</param>
/// <param name="Nonce">The owner's current <c>nonces(owner)</c>.</param>
/// <param name="Deadline">Unix time after which the permit is refused.</param>
public sealed record PermitAuthorization(string Owner, string Spender, long Value, long Nonce, long Deadline)
{
    /// <summary>Signs the permit with <paramref name="privateKey"/>; returns the 65-byte signature as hex.</summary>
    public string Sign(Eip712Domain domain, string privateKey)
    {
        var message = new PermitStruct { Owner = Owner, Spender = Spender, Value = Value, Nonce = Nonce, Deadline = Deadline };
        return new Eip712TypedDataSigner().SignTypedDataV4(message, domain.TypedData<PermitStruct>("Permit"), new EthECKey(privateKey));
    }
}

#pragma warning disable CS1591 // EIP-712 structs: the attributes are the type string the contract hashes

[Struct("TransferWithAuthorization")]
internal sealed class TransferWithAuthorizationStruct
{
    [Parameter("address", "from", 1)] public string From { get; set; } = "";
    [Parameter("address", "to", 2)] public string To { get; set; } = "";
    [Parameter("uint256", "value", 3)] public BigInteger Value { get; set; }
    [Parameter("uint256", "validAfter", 4)] public BigInteger ValidAfter { get; set; }
    [Parameter("uint256", "validBefore", 5)] public BigInteger ValidBefore { get; set; }
    [Parameter("bytes32", "nonce", 6)] public byte[] Nonce { get; set; } = [];
}

[Struct("Permit")]
internal sealed class PermitStruct
{
    [Parameter("address", "owner", 1)] public string Owner { get; set; } = "";
    [Parameter("address", "spender", 2)] public string Spender { get; set; } = "";
    [Parameter("uint256", "value", 3)] public BigInteger Value { get; set; }
    [Parameter("uint256", "nonce", 4)] public BigInteger Nonce { get; set; }
    [Parameter("uint256", "deadline", 5)] public BigInteger Deadline { get; set; }
}
