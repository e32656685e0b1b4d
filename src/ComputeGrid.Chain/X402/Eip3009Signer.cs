using System.Security.Cryptography;
using Secp256k1Net;

namespace ComputeGrid.Chain.X402;

/// <summary>
/// Signs EIP-3009 authorizations with a raw secp256k1 key (RFC 6979 deterministic nonces, low-s as EIP-2 requires):
/// what a payer's wallet does. The server never holds payers' keys; this exists for tests, benchmarks and simulated
/// payers, so that they exercise exactly the digest the verifier checks.
/// </summary>
public sealed class Eip3009Signer : IDisposable
{
    private readonly byte[] _key;

    /// <summary>The signer's address.</summary>
    public EvmAddress Address { get; }

    /// <summary>A signer for a 32-byte private key.</summary>
    public Eip3009Signer(ReadOnlySpan<byte> privateKey32)
    {
        if (!Secp256k1.IsValidSecretKey(privateKey32)) throw new ArgumentException("not a valid secp256k1 private key", nameof(privateKey32));
        _key = privateKey32.ToArray();
        Address = Eip3009.AddressOf(Secp256k1.CreatePublicKey(_key, compressed: false));
    }

    /// <summary>A signer for a <c>0x</c>-prefixed 64-digit hex private key (Anvil's development keys are written so).</summary>
    public static Eip3009Signer FromHex(string privateKeyHex)
    {
        Span<byte> key = stackalloc byte[32];
        if (!Hex.TryDecodeFixed(privateKeyHex, key)) throw new FormatException("a private key is 0x and 64 hex digits");
        return new Eip3009Signer(key);
    }

    /// <summary>The 65-byte signature r ‖ s ‖ v (v = 27 or 28) of <paramref name="auth"/>, as <c>0x</c> hex.</summary>
    public string Sign(Eip712Domain domain, in Eip3009Authorization auth, Eip3009Kind kind = Eip3009Kind.TransferWithAuthorization)
    {
        Span<byte> digest = stackalloc byte[32];
        Eip3009.Digest(domain, auth, digest, kind);
        return SignDigest(digest);
    }

    /// <summary>Signs a 32-byte digest; the signature as <c>0x</c> + 130 hex digits.</summary>
    public string SignDigest(ReadOnlySpan<byte> digest32)
    {
        // libsecp256k1 signs with RFC 6979 nonces and always returns the low-s form.
        var (signature, recoveryId) = Secp256k1.SignRecoverable(digest32, _key);
        Span<byte> sig = stackalloc byte[65];
        signature.CopyTo(sig);
        sig[64] = (byte)(27 + recoveryId);
        return "0x" + Convert.ToHexStringLower(sig);
    }

    /// <summary>Clears the key from memory.</summary>
    public void Dispose() => CryptographicOperations.ZeroMemory(_key);
}
