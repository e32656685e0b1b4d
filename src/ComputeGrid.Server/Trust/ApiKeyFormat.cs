using System.Buffers.Text;
using System.Security.Cryptography;
using System.Text;

namespace ComputeGrid.Server.Trust;

/// <summary>
/// The shape of an API key: <c>cg_</c>, a 16-hex-digit key id (public: it names the key in lists and logs), <c>_</c>,
/// and a 43-character base64url secret (256 random bits). Only the SHA-256 of the secret is stored; a presented key is
/// found by its id and its secret compared in constant time. A node session token is <c>cgn_</c> and the same kind
/// of secret.
/// </summary>
public static class ApiKeyFormat
{
    /// <summary>Every API key starts with this.</summary>
    public const string Prefix = "cg_";

    /// <summary>Every node session token starts with this.</summary>
    public const string SessionPrefix = "cgn_";

    /// <summary>Hex digits of a key id.</summary>
    public const int KeyIdChars = 16;

    /// <summary>Random bytes of a secret (256 bits).</summary>
    public const int SecretBytes = 32;

    /// <summary>Base64url characters of a secret.</summary>
    public const int SecretChars = 43;

    /// <summary>The length of a whole key.</summary>
    public const int KeyChars = 3 + KeyIdChars + 1 + SecretChars;

    /// <summary>A new key id and key.</summary>
    public static (string KeyId, string Key, byte[] SecretHash) NewKey()
    {
        string keyId = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(KeyIdChars / 2));
        string secret = NewSecret();
        return (keyId, $"{Prefix}{keyId}_{secret}", HashSecret(secret));
    }

    /// <summary>A new random secret (256 bits, base64url).</summary>
    public static string NewSecret() => Base64Url.EncodeToString(RandomNumberGenerator.GetBytes(SecretBytes));

    /// <summary>Splits a presented key into its id and secret; false when it does not have the key's shape.</summary>
    public static bool TryParse(ReadOnlySpan<char> key, out ReadOnlySpan<char> keyId, out ReadOnlySpan<char> secret)
    {
        keyId = secret = default;
        if (key.Length != KeyChars || !key.StartsWith(Prefix, StringComparison.Ordinal) || key[3 + KeyIdChars] != '_') return false;
        keyId = key.Slice(3, KeyIdChars);
        secret = key[(3 + KeyIdChars + 1)..];
        foreach (char c in keyId)
            if (!char.IsAsciiHexDigitLower(c) && !char.IsAsciiDigit(c)) return false;
        foreach (char c in secret)
            if (!char.IsAsciiLetterOrDigit(c) && c is not ('-' or '_')) return false;
        return true;
    }

    /// <summary>True when <paramref name="keyId"/> is a well-formed key id.</summary>
    public static bool IsKeyId(string? keyId) =>
        keyId is { Length: KeyIdChars } && keyId.All(c => char.IsAsciiDigit(c) || c is >= 'a' and <= 'f');

    /// <summary>SHA-256 of a secret's ASCII characters.</summary>
    public static byte[] HashSecret(ReadOnlySpan<char> secret)
    {
        var hash = new byte[32];
        HashSecret(secret, hash);
        return hash;
    }

    /// <summary>SHA-256 of a secret's ASCII characters into <paramref name="hash"/> (32 bytes), allocating nothing.</summary>
    public static void HashSecret(ReadOnlySpan<char> secret, Span<byte> hash)
    {
        Span<byte> ascii = stackalloc byte[SecretChars * 3];
        int n = Encoding.UTF8.GetBytes(secret[..Math.Min(secret.Length, SecretChars)], ascii);
        SHA256.HashData(ascii[..n], hash);
    }

    /// <summary>Whether a presented secret matches a stored hash, compared in constant time.</summary>
    public static bool Matches(ReadOnlySpan<char> secret, ReadOnlySpan<byte> storedHash)
    {
        Span<byte> hash = stackalloc byte[32];
        HashSecret(secret, hash);
        return CryptographicOperations.FixedTimeEquals(hash, storedHash);
    }
}
