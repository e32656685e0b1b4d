using System.Globalization;

namespace ComputeGrid.Energy.Series;

/// <summary>Loads ERCOT's hourly native load (system load) into a regular hourly UTC series in MW.</summary>
public static class SystemLoadLoader
{
    /// <summary>The key column: the local hour ending, <c>MM/DD/YYYY HH:MM</c>, with <c> DST</c> after the repeated autumn hour.</summary>
    public const string HourEndingColumn = "Hour Ending";

    /// <summary>The unit of the series.</summary>
    public const string Unit = "MW";

    private const string RepeatedSuffix = " DST";
    private static readonly TimeSpan OneHour = TimeSpan.FromHours(1);

    /// <summary>
    /// Loads one column of ERCOT's hourly native load archive (<c>ercot_native_load_hourly_2021.csv</c>).
    /// </summary>
    /// <remarks>
    /// <para>The key is <see cref="HourEndingColumn"/> in US Central prevailing time: <c>01:00</c> covers
    /// 00:00–01:00 local and <c>24:00</c> the last hour of the date. The hour repeated when daylight saving ends is
    /// written as a second <c>02:00</c> row with the suffix <c> DST</c> and maps to the later (CST) UTC hour; the
    /// spring-forward day has no <c>03:00</c> row. Times are converted with <see cref="CentralTime"/>.</para>
    /// <para>Values of 1,000 or more are quoted with thousands separators (<c>"43,719.85"</c>); they are parsed
    /// after checking the grouping and removing the commas.</para>
    /// <para>The report counts the repeated and skipped DST hours, the values with thousands separators, any gaps
    /// filled (last value carried forward) and any duplicate hours dropped.</para>
    /// </remarks>
    /// <param name="path">The CSV file.</param>
    /// <param name="column">The exact header of the load column: <c>ERCOT</c> (the system total, default) or a weather zone such as <c>COAST</c> or <c>FWEST</c>.</param>
    /// <returns>An hourly UTC series in MW from the file's first to its last hour.</returns>
    /// <exception cref="SeriesFormatException">A missing column, a malformed row, an hour that does not exist in Central time, or no rows.</exception>
    public static IntervalSeries LoadErcotNativeLoadHourly(string path, string column = "ERCOT")
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(column);
        var builder = new GridBuilder(path, OneHour, null, null, capacity: 8_784);
        int repeatedHours = 0, grouped = 0;
        DateTime first = DateTime.MaxValue, last = DateTime.MinValue;
        using (CsvFile csv = CsvFile.Open(path))
        {
            int timeColumn = csv.Column(HourEndingColumn);
            int valueColumn = csv.Column(column);
            while (csv.ReadRow())
            {
                ReadOnlySpan<char> text = csv.Span(timeColumn);
                if (!TryParseHourEnding(text, out DateOnly date, out int hourEnding, out bool repeated))
                    throw csv.Error($"'{HourEndingColumn}' is not MM/DD/YYYY HH:MM (hour ending 01:00–24:00, optionally followed by ' DST'): '{text}'");
                DateTime startUtc;
                try
                {
                    startUtc = HourEndingToUtcStart(date, hourEnding, repeated);
                }
                catch (ArgumentException e)
                {
                    throw csv.Error($"'{HourEndingColumn}' {text}: {e.Message}");
                }
                if (repeated) repeatedHours++;
                if (startUtc < first) first = startUtc;
                if (startUtc > last) last = startUtc;

                ReadOnlySpan<char> valueText = csv.Span(valueColumn);
                if (!TryParseGrouped(valueText, out double value, out bool hadSeparators))
                    throw csv.Error(valueText.IsEmpty ? $"'{column}' is empty" : $"'{column}' is not a number: '{valueText}'");
                if (hadSeparators) grouped++;
                builder.Add(startUtc, 1, value, csv.LineNumber);
            }
        }

        // Each spring change inside the covered span removes one local hour; UTC is unaffected, so nothing is missing.
        int skippedHours = 0;
        for (int year = Math.Max(first.Year, CentralTime.FirstYear); year <= last.Year && first <= last; year++)
        {
            DateTime change = CentralTime.DaylightStartUtc(year);
            if (change > first && change <= last) skippedHours++;
        }

        var report = new RepairReport();
        report.Add(RepairKind.DstRepeatedHour, repeatedHours,
            "the hour repeated when daylight saving ends (written 'HH:MM DST') mapped to its own, later UTC hour (CST)");
        report.Add(RepairKind.DstSkippedHour, skippedHours,
            "the local hour skipped when daylight saving starts has no row, as expected; no UTC hour is missing");
        report.Add(RepairKind.ThousandsSeparator, grouped, "values written with thousands separators (\"43,719.85\") parsed after removing the commas");
        return builder.Build($"{Path.GetFileNameWithoutExtension(path)}: {column}", Unit, report, countNegatives: false);
    }

    /// <summary>
    /// The UTC start of an ERCOT hour-ending label such as <c>08/24/2021 17:00</c> (16:00–17:00 CDT = 21:00 UTC) or
    /// <c>11/07/2021 02:00 DST</c> (the repeated hour, 01:00–02:00 CST = 07:00 UTC).
    /// </summary>
    /// <exception cref="FormatException">The text is not <c>MM/DD/YYYY HH:MM</c> with an optional <c> DST</c>, or the hour does not exist in Central time.</exception>
    public static DateTime HourEndingToUtcStart(string hourEnding)
    {
        ArgumentNullException.ThrowIfNull(hourEnding);
        if (!TryParseHourEnding(hourEnding, out DateOnly date, out int hour, out bool repeated))
            throw new FormatException($"'{hourEnding}' is not MM/DD/YYYY HH:MM (hour ending 01:00–24:00, optionally followed by ' DST').");
        try
        {
            return HourEndingToUtcStart(date, hour, repeated);
        }
        catch (ArgumentException e)
        {
            throw new FormatException($"'{hourEnding}': {e.Message}", e);
        }
    }

    private static DateTime HourEndingToUtcStart(DateOnly date, int hourEnding, bool repeated) =>
        CentralTime.ToUtc(date.ToDateTime(TimeOnly.MinValue).AddHours(hourEnding - 1), repeated);

    private static bool TryParseHourEnding(ReadOnlySpan<char> text, out DateOnly date, out int hourEnding, out bool repeated)
    {
        date = default;
        hourEnding = 0;
        repeated = text.EndsWith(RepeatedSuffix, StringComparison.Ordinal);
        ReadOnlySpan<char> s = repeated ? text[..^RepeatedSuffix.Length] : text;
        // MM/DD/YYYY HH:MM
        if (s.Length != 16 || s[2] != '/' || s[5] != '/' || s[10] != ' ' || s[13] != ':' || s[14..] is not "00") return false;
        if (!TryDigits(s[0..2], out int month) || !TryDigits(s[3..5], out int day) || !TryDigits(s[6..10], out int year)
            || !TryDigits(s[11..13], out hourEnding))
            return false;
        if (hourEnding is < 1 or > 24 || month is < 1 or > 12 || year < 1 || day < 1 || day > DateTime.DaysInMonth(year, month)) return false;
        date = new DateOnly(year, month, day);
        return true;
    }

    private static bool TryDigits(ReadOnlySpan<char> s, out int value) =>
        int.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out value);

    /// <summary>Parses a number that may use thousands separators (<c>43,719.85</c>), checking that they group by three.</summary>
    internal static bool TryParseGrouped(ReadOnlySpan<char> text, out double value, out bool hadSeparators)
    {
        value = 0;
        hadSeparators = text.Contains(',');
        if (!hadSeparators)
            return double.TryParse(text, Plain, CultureInfo.InvariantCulture, out value) && double.IsFinite(value);
        if (text.Length > 64 || !GroupedCorrectly(text)) return false;

        Span<char> digits = stackalloc char[text.Length];
        int n = 0;
        foreach (char c in text)
            if (c != ',') digits[n++] = c;
        return double.TryParse(digits[..n], Plain, CultureInfo.InvariantCulture, out value) && double.IsFinite(value);
    }

    private const NumberStyles Plain = NumberStyles.AllowLeadingSign | NumberStyles.AllowDecimalPoint | NumberStyles.AllowExponent;

    // "1,234", "-12,345,678.9": 1–3 digits, then groups of exactly 3 digits, then an optional fraction without commas.
    private static bool GroupedCorrectly(ReadOnlySpan<char> text)
    {
        if (text.StartsWith('-')) text = text[1..];
        int point = text.IndexOf('.');
        if (point >= 0)
        {
            if (text[point..].Contains(',')) return false;
            text = text[..point];
        }
        int first = text.IndexOf(',');
        if (first is < 1 or > 3 || text[..first].ContainsAnyExceptInRange('0', '9')) return false;
        for (text = text[(first + 1)..]; ; text = text[4..])
        {
            if (text.Length < 3 || text[..3].ContainsAnyExceptInRange('0', '9')) return false;
            if (text.Length == 3) return true;
            if (text[3] != ',') return false;
        }
    }
}
