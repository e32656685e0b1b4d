using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace ComputeGrid.Core;

/// <summary>
/// An instant on the wire: an RFC 3339 string in UTC with as many fractional digits as it needs, up to nanoseconds
/// (<c>2026-12-06T14:00:00Z</c>, <c>2026-12-06T14:00:00.123456789Z</c>), so a ledger timestamp keeps every digit and
/// a JavaScript client never meets a 64-bit number. On input an offset is required (<c>Z</c> or <c>±hh:mm</c>).
/// In queries too (it binds with <see cref="TryParse(string?, IFormatProvider?, out ApiTime)"/>).
/// </summary>
[JsonConverter(typeof(ApiTimeConverter))]
public readonly record struct ApiTime(long UnixNanoseconds) : IComparable<ApiTime>
{
    /// <summary>The time of a Unix-nanosecond count, or null.</summary>
    public static ApiTime? Of(long? unixNanoseconds) => unixNanoseconds is long ns ? new ApiTime(ns) : null;

    /// <summary>The time of a <see cref="DateTimeOffset"/>.</summary>
    public static ApiTime Of(DateTimeOffset t) => new(checked((t.UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks) * 100L));

    /// <inheritdoc />
    public int CompareTo(ApiTime other) => UnixNanoseconds.CompareTo(other.UnixNanoseconds);

    /// <summary>Earlier than.</summary>
    public static bool operator <(ApiTime a, ApiTime b) => a.UnixNanoseconds < b.UnixNanoseconds;

    /// <summary>Later than.</summary>
    public static bool operator >(ApiTime a, ApiTime b) => a.UnixNanoseconds > b.UnixNanoseconds;

    /// <summary>Not later than.</summary>
    public static bool operator <=(ApiTime a, ApiTime b) => a.UnixNanoseconds <= b.UnixNanoseconds;

    /// <summary>Not earlier than.</summary>
    public static bool operator >=(ApiTime a, ApiTime b) => a.UnixNanoseconds >= b.UnixNanoseconds;

    /// <summary>RFC 3339, UTC, fractional digits only as far as they are not zero.</summary>
    public override string ToString()
    {
        long seconds = Math.DivRem(UnixNanoseconds, 1_000_000_000L, out long nanos);
        if (nanos < 0) { seconds--; nanos += 1_000_000_000L; }
        string whole = DateTimeOffset.FromUnixTimeSeconds(seconds).UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss", CultureInfo.InvariantCulture);
        return nanos == 0 ? whole + "Z" : whole + "." + nanos.ToString("D9", CultureInfo.InvariantCulture).TrimEnd('0') + "Z";
    }

    /// <summary>Parses RFC 3339 with an offset and up to nine fractional digits, exactly.</summary>
    public static bool TryParse(string? text, IFormatProvider? provider, out ApiTime time)
    {
        time = default;
        if (string.IsNullOrWhiteSpace(text)) return false;
        ReadOnlySpan<char> s = text.AsSpan().Trim();
        // The date and time up to the seconds, then an optional fraction, then the offset.
        if (s.Length < 20 || (s[10] != 'T' && s[10] != 't')) return false;
        int at = 19;
        long fraction = 0;
        if (at < s.Length && s[at] == '.')
        {
            int digits = 0;
            at++;
            while (at < s.Length && char.IsAsciiDigit(s[at]))
            {
                if (++digits > 9) return false;
                fraction = fraction * 10 + (s[at] - '0');
                at++;
            }
            if (digits == 0) return false;
            for (int i = digits; i < 9; i++) fraction *= 10;
        }
        ReadOnlySpan<char> offset = s[at..];
        if (offset is not ("Z" or "z") && !(offset.Length == 6 && (offset[0] == '+' || offset[0] == '-') && offset[3] == ':')) return false;
        string normalized = string.Concat(s[..19], offset is "z" ? "Z" : offset);
        if (!DateTimeOffset.TryParseExact(normalized, ["yyyy-MM-dd'T'HH:mm:ssZ", "yyyy-MM-dd'T'HH:mm:sszzz", "yyyy-MM-dd't'HH:mm:ssZ"],
                CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out DateTimeOffset t))
            return false;
        try
        {
            time = new ApiTime(checked(t.ToUnixTimeSeconds() * 1_000_000_000L + fraction));
            return true;
        }
        catch (OverflowException) { return false; }
    }
}

/// <summary>Reads and writes <see cref="ApiTime"/> as RFC 3339 strings.</summary>
public sealed class ApiTimeConverter : JsonConverter<ApiTime>
{
    /// <inheritdoc />
    public override ApiTime Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType == JsonTokenType.String && ApiTime.TryParse(reader.GetString(), null, out ApiTime t)) return t;
        throw new JsonException("A time is an RFC 3339 string with an offset, like \"2026-12-06T14:00:00Z\".");
    }

    /// <inheritdoc />
    public override void Write(Utf8JsonWriter writer, ApiTime value, JsonSerializerOptions options) => writer.WriteStringValue(value.ToString());
}

/// <summary>Writes a Unix-nanosecond <see cref="long"/> as an RFC 3339 string (<see cref="ApiTime"/>) and reads it back exactly.</summary>
public sealed class UnixNanosecondsAsRfc3339Converter : JsonConverter<long>
{
    /// <inheritdoc />
    public override long Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType == JsonTokenType.String && ApiTime.TryParse(reader.GetString(), null, out ApiTime t)) return t.UnixNanoseconds;
        throw new JsonException("A time is an RFC 3339 string with an offset, like \"2026-12-06T14:00:00Z\".");
    }

    /// <inheritdoc />
    public override void Write(Utf8JsonWriter writer, long value, JsonSerializerOptions options) => writer.WriteStringValue(new ApiTime(value).ToString());
}
