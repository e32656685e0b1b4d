using Org.BouncyCastle.Crypto.Digests;

namespace ComputeGrid.Chain.X402;

/// <summary>
/// Keccak-256 (the pre-standard SHA-3 padding Ethereum uses) over spans, without allocating: the same BouncyCastle
/// digest that Nethereum's <c>Sha3Keccack</c> wraps, kept one per thread, because <c>Sha3Keccack</c> only takes and
/// returns arrays and the verifier hashes four times per payment. A test pins it against <c>Sha3Keccack</c>.
/// </summary>
public static class Keccak256
{
    /// <summary>Bytes in a digest.</summary>
    public const int Length = 32;

    [ThreadStatic] private static KeccakDigest? _digest;

    /// <summary>Writes keccak256(<paramref name="data"/>) into the first 32 bytes of <paramref name="destination"/>.</summary>
    public static void Hash(ReadOnlySpan<byte> data, Span<byte> destination)
    {
        var digest = _digest ??= new KeccakDigest(256);
        digest.BlockUpdate(data);
        digest.DoFinal(destination);
    }
}
