using System.Buffers.Binary;
using System.Globalization;

namespace ComputeGrid.Chain.X402;

/// <summary>
/// A 20-byte EVM account address held as three words, so that comparing two addresses (the payer against the
/// recovered signer, <c>to</c> against <c>payTo</c>) is three integer compares and never a string compare: the hex text
/// of an address is case-insensitive (EIP-55 only adds a checksum through the case of the letters).
/// </summary>
public readonly record struct EvmAddress(ulong Head, ulong Middle, uint Tail)
{
    /// <summary>Bytes in an address.</summary>
    public const int Length = 20;

    /// <summary>Parses <c>0x</c> followed by exactly 40 hex digits, in any case (the EIP-55 checksum is not enforced).</summary>
    public static bool TryParse(ReadOnlySpan<char> text, out EvmAddress address)
    {
        Span<byte> bytes = stackalloc byte[Length];
        address = default;
        if (!Hex.TryDecodeFixed(text, bytes)) return false;
        address = FromBytes(bytes);
        return true;
    }

    /// <summary>Parses an address the caller guarantees is well formed (configuration, not client input).</summary>
    public static EvmAddress Parse(string text) =>
        TryParse(text, out var a) ? a : throw new FormatException($"'{text}' is not a 0x-prefixed 20-byte hex address");

    /// <summary>The address of 20 big-endian bytes.</summary>
    public static EvmAddress FromBytes(ReadOnlySpan<byte> bytes) =>
        new(BinaryPrimitives.ReadUInt64BigEndian(bytes), BinaryPrimitives.ReadUInt64BigEndian(bytes[8..]), BinaryPrimitives.ReadUInt32BigEndian(bytes[16..]));

    /// <summary>Writes the 20 bytes, big-endian.</summary>
    public void WriteTo(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt64BigEndian(destination, Head);
        BinaryPrimitives.WriteUInt64BigEndian(destination[8..], Middle);
        BinaryPrimitives.WriteUInt32BigEndian(destination[16..], Tail);
    }

    /// <summary>The ABI encoding of an <c>address</c> word: 12 zero bytes, then the address.</summary>
    public void WriteWord(Span<byte> word32)
    {
        word32[..12].Clear();
        WriteTo(word32[12..]);
    }

    /// <summary>The EIP-55 mixed-case form (what viem's <c>getAddress</c> prints).</summary>
    public string ToChecksumString()
    {
        Span<byte> bytes = stackalloc byte[Length];
        WriteTo(bytes);
        string lower = Convert.ToHexStringLower(bytes);
        Span<byte> ascii = stackalloc byte[40];
        for (int i = 0; i < 40; i++) ascii[i] = (byte)lower[i];
        Span<byte> hash = stackalloc byte[32];
        Keccak256.Hash(ascii, hash);
        return string.Create(42, (lower, hash.ToArray()), static (dst, s) =>
        {
            dst[0] = '0';
            dst[1] = 'x';
            for (int i = 0; i < 40; i++)
            {
                int nibble = (i & 1) == 0 ? s.Item2[i >> 1] >> 4 : s.Item2[i >> 1] & 0xF;
                char c = s.lower[i];
                dst[i + 2] = c >= 'a' && nibble >= 8 ? char.ToUpperInvariant(c) : c;
            }
        });
    }

    /// <summary>The lower-case <c>0x</c> form.</summary>
    public override string ToString() =>
        "0x" + Head.ToString("x16", CultureInfo.InvariantCulture) + Middle.ToString("x16", CultureInfo.InvariantCulture) + Tail.ToString("x8", CultureInfo.InvariantCulture);
}

/// <summary>A 32-byte value (an EIP-3009 nonce, a hash) held as four words, for cheap equality and hashing.</summary>
public readonly record struct Bytes32(ulong W0, ulong W1, ulong W2, ulong W3)
{
    /// <summary>Parses <c>0x</c> followed by exactly 64 hex digits.</summary>
    public static bool TryParse(ReadOnlySpan<char> text, out Bytes32 value)
    {
        Span<byte> bytes = stackalloc byte[32];
        value = default;
        if (!Hex.TryDecodeFixed(text, bytes)) return false;
        value = FromBytes(bytes);
        return true;
    }

    /// <summary>The value of 32 big-endian bytes.</summary>
    public static Bytes32 FromBytes(ReadOnlySpan<byte> b) =>
        new(BinaryPrimitives.ReadUInt64BigEndian(b), BinaryPrimitives.ReadUInt64BigEndian(b[8..]),
            BinaryPrimitives.ReadUInt64BigEndian(b[16..]), BinaryPrimitives.ReadUInt64BigEndian(b[24..]));

    /// <summary>Writes the 32 bytes, big-endian.</summary>
    public void WriteTo(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt64BigEndian(destination, W0);
        BinaryPrimitives.WriteUInt64BigEndian(destination[8..], W1);
        BinaryPrimitives.WriteUInt64BigEndian(destination[16..], W2);
        BinaryPrimitives.WriteUInt64BigEndian(destination[24..], W3);
    }

    /// <summary>The lower-case <c>0x</c> form.</summary>
    public override string ToString()
    {
        Span<byte> b = stackalloc byte[32];
        WriteTo(b);
        return "0x" + Convert.ToHexStringLower(b);
    }
}

/// <summary>Strict <c>0x</c>-hex decoding into a buffer of a known size: no whitespace, no missing digits.</summary>
internal static class Hex
{
    /// <summary>True when <paramref name="text"/> is <c>0x</c> and exactly 2 × destination.Length hex digits.</summary>
    public static bool TryDecodeFixed(ReadOnlySpan<char> text, Span<byte> destination)
    {
        if (text.Length != 2 + 2 * destination.Length || text[0] != '0' || (text[1] != 'x' && text[1] != 'X')) return false;
        return Convert.FromHexString(text[2..], destination, out _, out int written) == System.Buffers.OperationStatus.Done
            && written == destination.Length;
    }
}
