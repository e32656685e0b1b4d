using System.Globalization;

namespace ComputeGrid.Core;

/// <summary>
/// 128-bit identifiers chosen by clients (TigerBeetle style). Zero and <see cref="UInt128.MaxValue"/> are
/// reserved. On the wire an id is a decimal string (JSON numbers cannot carry 128 bits safely); a
/// <c>0x</c>-prefixed hex string is accepted too.
/// </summary>
public static class Ids
{
    /// <summary>Parses a decimal or 0x-hex id; false for empty, malformed or out-of-range text.</summary>
    public static bool TryParse(string? text, out UInt128 id)
    {
        id = default;
        if (string.IsNullOrWhiteSpace(text)) return false;
        text = text.Trim();
        if (text.StartsWith("0x", StringComparison.OrdinalIgnoreCase))
            return UInt128.TryParse(text.AsSpan(2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out id);
        foreach (char c in text) if (c is < '0' or > '9') return false;
        return UInt128.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out id);
    }

    /// <summary>Formats an id as its decimal string.</summary>
    public static string Format(UInt128 id) => id.ToString(CultureInfo.InvariantCulture);

    /// <summary>
    /// A time-ordered random id (like a ULID): the high 48 bits are milliseconds since the Unix epoch, the
    /// rest comes from <paramref name="random"/>. Time-ordered ids keep index inserts near the end.
    /// </summary>
    public static UInt128 NewTimeOrdered(TimeProvider time, Random random)
    {
        ulong ms = (ulong)time.GetUtcNow().ToUnixTimeMilliseconds();
        ulong hi = (ms << 16) | (uint)random.Next(0, 1 << 16);
        ulong lo = ((ulong)(uint)random.Next() << 32) ^ (uint)random.Next() ^ ((ulong)(uint)random.Next(0, 4) << 62);
        if (hi == 0 && lo == 0) lo = 1;
        return new UInt128(hi, lo);
    }
}
