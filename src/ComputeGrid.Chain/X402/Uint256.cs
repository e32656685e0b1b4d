namespace ComputeGrid.Chain.X402;

/// <summary>
/// Decimal text ↔ 256-bit unsigned integers held in a <see cref="Bytes32"/> (big-endian words, so that the ABI word and
/// the number are the same bytes). x402 sends <c>value</c>, <c>validAfter</c> and <c>validBefore</c> as decimal strings of
/// Solidity <c>uint256</c>s; a client may sign <c>validBefore = 2^256 − 1</c> ("never expires"), so parsing stops short of
/// nothing below 2^256.
/// </summary>
public static class Uint256
{
    /// <summary>Most decimal digits of a uint256 (2^256 − 1 has 78).</summary>
    public const int DigitsMax = 78;

    /// <summary>Parses 1 to 78 ASCII digits (no sign, no spaces, no exponent); false when the number is 2^256 or more.</summary>
    public static bool TryParse(ReadOnlySpan<char> text, out Bytes32 value)
    {
        value = default;
        if (text.IsEmpty || text.Length > DigitsMax) return false;
        ulong w0 = 0, w1 = 0, w2 = 0, w3 = 0;
        foreach (char c in text)
        {
            uint digit = (uint)(c - '0');
            if (digit > 9) return false;
            // (w0..w3) = (w0..w3) × 10 + digit, word by word from the least significant, carrying the high halves.
            ulong hi3 = Math.BigMul(w3, 10UL, out ulong lo3);
            ulong hi2 = Math.BigMul(w2, 10UL, out ulong lo2);
            ulong hi1 = Math.BigMul(w1, 10UL, out ulong lo1);
            ulong hi0 = Math.BigMul(w0, 10UL, out ulong lo0);
            if (hi0 != 0) return false;
            ulong carry;
            (w3, carry) = Add(lo3, digit, 0);
            (w2, carry) = Add(lo2, hi3, carry);
            (w1, carry) = Add(lo1, hi2, carry);
            (w0, carry) = Add(lo0, hi1, carry);
            if (carry != 0) return false;
        }
        value = new Bytes32(w0, w1, w2, w3);
        return true;
    }

    /// <summary>The number's value when it fits a <c>long</c> (unix seconds, micro-units); otherwise false.</summary>
    public static bool TryToInt64(Bytes32 value, out long result)
    {
        result = (long)value.W3;
        return value.W0 == 0 && value.W1 == 0 && value.W2 == 0 && value.W3 <= long.MaxValue;
    }

    /// <summary>A non-negative long as a uint256.</summary>
    public static Bytes32 FromInt64(long value)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(value);
        return new Bytes32(0, 0, 0, (ulong)value);
    }

    /// <summary>Unsigned comparison: negative, zero or positive as <paramref name="a"/> is below, equal to or above <paramref name="b"/>.</summary>
    public static int Compare(Bytes32 a, Bytes32 b) =>
        a.W0 != b.W0 ? a.W0.CompareTo(b.W0) : a.W1 != b.W1 ? a.W1.CompareTo(b.W1) : a.W2 != b.W2 ? a.W2.CompareTo(b.W2) : a.W3.CompareTo(b.W3);

    private static (ulong Sum, ulong Carry) Add(ulong a, ulong b, ulong carryIn)
    {
        ulong s = a + b;
        ulong c = s < a ? 1UL : 0UL;
        ulong t = s + carryIn;
        return (t, c + (t < s ? 1UL : 0UL));
    }
}
