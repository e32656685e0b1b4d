using System.Globalization;
using System.Text.Json;

namespace ComputeGrid.Cli.Ops;

/// <summary>
/// Tables for an 80-column terminal: aligned columns, and when a row would still be wider, the widest of the columns
/// allowed to shrink (names, markets) are cut with an ellipsis, so no line wraps. Numbers are never cut.
/// </summary>
internal static class OpsTable
{
    /// <summary>The width every line fits in.</summary>
    public const int WidthMax = 80;

    private const int ShrunkWidthMin = 6;

    /// <summary>Writes <paramref name="headers"/> and <paramref name="rows"/>; <paramref name="right"/> are right-aligned, <paramref name="shrink"/> may be cut.</summary>
    public static void Write(TextWriter o, string[] headers, IEnumerable<string[]> rows, string[] right, string[] shrink)
    {
        var all = rows.ToList();
        if (all.Count == 0)
        {
            o.WriteLine("(none)");
            return;
        }
        int[] widths = headers.Select((h, i) => Math.Max(h.Length, all.Max(r => r[i].Length))).ToArray();
        bool[] canShrink = headers.Select(shrink.Contains).ToArray();
        while (widths.Sum() + 2 * (widths.Length - 1) > WidthMax)
        {
            int widest = -1;
            for (int i = 0; i < widths.Length; i++)
                if (canShrink[i] && widths[i] > ShrunkWidthMin && (widest < 0 || widths[i] > widths[widest])) widest = i;
            if (widest < 0) break; // nothing left to cut: the numbers stay whole
            widths[widest]--;
        }
        void Line(string[] cells) => o.WriteLine(string.Join("  ", cells.Select((c, i) =>
        {
            string cell = c.Length > widths[i] ? c[..(widths[i] - 1)] + "…" : c;
            return right.Contains(headers[i]) ? cell.PadLeft(widths[i]) : cell.PadRight(widths[i]);
        })).TrimEnd());
        Line(headers);
        foreach (var r in all) Line(r);
    }

    /// <summary>A string member, or "" when absent or null.</summary>
    public static string Str(JsonElement e, string name) => e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString()! : "";

    /// <summary>A number member, or null when absent or null.</summary>
    public static double? Num(JsonElement e, string name) => e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : null;

    /// <summary>An integer member, or null when absent or null.</summary>
    public static long? Long(JsonElement e, string name) => e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number && v.TryGetInt64(out long n) ? n : null;

    /// <summary>A boolean member, false when absent.</summary>
    public static bool Bool(JsonElement e, string name) => e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.True;

    /// <summary>kW as MW with one decimal (display only).</summary>
    public static string Mw(double? kw) => kw is { } v ? (v / 1000).ToString("0.0", CultureInfo.InvariantCulture) : "-";

    /// <summary>A count with thousands separators.</summary>
    public static string Count(long n) => n.ToString("N0", CultureInfo.InvariantCulture);

    /// <summary>Micro-USD as whole dollars, rounded half away from zero, with separators (<c>-$1,234</c>): integer arithmetic only.</summary>
    public static string Dollars(long micro)
    {
        long whole = micro >= 0 ? checked(micro + 500_000) / 1_000_000 : -(checked(-micro + 500_000) / 1_000_000);
        return (whole < 0 ? "-$" : "$") + Math.Abs(whole).ToString("N0", CultureInfo.InvariantCulture);
    }

    /// <summary>An RFC 3339 time as <c>yyyy-MM-dd HH:mmZ</c> (UTC), or "-".</summary>
    public static string Time(JsonElement e, string name) =>
        DateTimeOffset.TryParse(Str(e, name), CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var t)
            ? t.UtcDateTime.ToString("yyyy-MM-dd HH:mm'Z'", CultureInfo.InvariantCulture) : "-";
}
