using System.Buffers.Binary;
using System.Text;

namespace ComputeGrid.Chain.X402;

/// <summary>
/// The EIP-712 domain of an EIP-3009 token: <c>EIP712Domain(string name,string version,uint256 chainId,address
/// verifyingContract)</c>. Name and version are the token's own (for USDC, "USD Coin" and "2"); x402 carries them in
/// <c>accepts[].extra</c> and the chain id in the CAIP-2 network <c>eip155:&lt;chainId&gt;</c>. A domain that differs from
/// the contract's <c>DOMAIN_SEPARATOR()</c> in any field makes every signature recover a stranger, so the server pins it
/// against the deployed contract. See https://eips.ethereum.org/EIPS/eip-712#definition-of-domainseparator.
/// </summary>
public sealed class Eip712Domain
{
    private static readonly byte[] DomainTypeHash =
        Keccak256Of("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");

    /// <summary>The token's EIP-712 name.</summary>
    public string Name { get; }

    /// <summary>The token's EIP-712 version.</summary>
    public string Version { get; }

    /// <summary>The EIP-155 chain id.</summary>
    public long ChainId { get; }

    /// <summary>The token contract.</summary>
    public EvmAddress VerifyingContract { get; }

    /// <summary>hashStruct(domain), computed once: every payment for this token reuses it.</summary>
    public Bytes32 Separator { get; }

    /// <summary>A domain; the separator is computed here, once.</summary>
    public Eip712Domain(string name, string version, long chainId, EvmAddress verifyingContract)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentException.ThrowIfNullOrEmpty(version);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(chainId);
        (Name, Version, ChainId, VerifyingContract) = (name, version, chainId, verifyingContract);
        Span<byte> encoded = stackalloc byte[5 * 32];
        DomainTypeHash.CopyTo(encoded);
        Keccak256.Hash(Encoding.UTF8.GetBytes(name), encoded[32..]);
        Keccak256.Hash(Encoding.UTF8.GetBytes(version), encoded[64..]);
        encoded[96..128].Clear();
        BinaryPrimitives.WriteInt64BigEndian(encoded[120..], chainId);
        verifyingContract.WriteWord(encoded[128..]);
        Span<byte> hash = stackalloc byte[32];
        Keccak256.Hash(encoded, hash);
        Separator = Bytes32.FromBytes(hash);
    }

    /// <summary>
    /// Writes the EIP-712 digest of a message under this domain, <c>keccak256(0x19 0x01 ‖ separator ‖
    /// keccak256(encodedStruct))</c>, into 32 bytes; <paramref name="encodedStruct"/> is the type hash and the message's
    /// words (each field one 32-byte word).
    /// </summary>
    public void Digest(ReadOnlySpan<byte> encodedStruct, Span<byte> digest32)
    {
        Span<byte> envelope = stackalloc byte[2 + 32 + 32];
        envelope[0] = 0x19;
        envelope[1] = 0x01;
        Separator.WriteTo(envelope[2..]);
        Keccak256.Hash(encodedStruct, envelope[34..]);
        Keccak256.Hash(envelope, digest32);
    }

    /// <summary>Keccak-256 of a string's UTF-8 bytes (type hashes).</summary>
    internal static byte[] Keccak256Of(string text)
    {
        var hash = new byte[32];
        Keccak256.Hash(Encoding.UTF8.GetBytes(text), hash);
        return hash;
    }
}
