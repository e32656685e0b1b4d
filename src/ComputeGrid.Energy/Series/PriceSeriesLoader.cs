using System.Globalization;

namespace ComputeGrid.Energy.Series;

/// <summary>
/// Loads real-time and spot electricity prices from the data files into regular 15-minute series in USD/MWh.
/// </summary>
/// <remarks>
/// Every loader returns a series with no gaps over the first to the last interval of the file, or over the
/// requested period <c>[fromUtc, toUtc)</c>; the series' <see cref="IntervalSeries.Repairs"/> says what was
/// changed to get there (gaps filled by carrying the last value forward, repeated rows dropped, rows outside the
/// period skipped, negative prices kept and counted, and any conversion). A row that cannot be read stops the
/// load with a <see cref="SeriesFormatException"/> naming the line.
/// </remarks>
public static class PriceSeriesLoader
{
    /// <summary>The key column of the EIA files: the UTC end of each 15-minute interval, <c>YYYY-MM-DD HH:MM:SS</c>.</summary>
    public const string EiaTimestampColumn = "UTC Timestamp (Interval Ending)";

    /// <summary>The unit of every price series the loaders return.</summary>
    public const string Unit = "USD/MWh";

    /// <summary>The step of every price series the loaders return.</summary>
    public static readonly TimeSpan Step = TimeSpan.FromMinutes(15);

    private static readonly TimeSpan HalfHour = TimeSpan.FromMinutes(30);
    private static readonly TimeSpan JstOffset = TimeSpan.FromHours(9);

    /// <summary>
    /// Loads one price column of an EIA-format 15-minute file (<c>ercot_rt_lmp_hubs_15min_2021.csv</c>,
    /// <c>caiso_rt_lmp_zones_15min_2021.csv</c>). Rows are keyed by <see cref="EiaTimestampColumn"/>; each row's
    /// interval starts 15 minutes before that timestamp.
    /// </summary>
    /// <param name="path">The CSV file.</param>
    /// <param name="column">The exact header of the price column, e.g. <c>West LMP</c> or <c>SP-15 LMP</c> (USD/MWh).</param>
    /// <param name="fromUtc">The start of the period (UTC, on a 15-minute boundary), or null for the file's first interval.</param>
    /// <param name="toUtc">The end of the period, exclusive (UTC, on a 15-minute boundary), or null for the end of the file's last interval.</param>
    /// <returns>A 15-minute series in USD/MWh, repaired as the report says.</returns>
    /// <exception cref="SeriesFormatException">A missing column, a malformed row, or no row in the period.</exception>
    /// <exception cref="ArgumentException">A bound that is not UTC or not on a 15-minute boundary, or an empty period.</exception>
    public static IntervalSeries LoadEia15Min(string path, string column, DateTime? fromUtc = null, DateTime? toUtc = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(column);
        var builder = new GridBuilder(path, Step, fromUtc, toUtc, capacity: 35_136);
        using (CsvFile csv = CsvFile.Open(path))
        {
            int timeColumn = csv.Column(EiaTimestampColumn);
            int valueColumn = csv.Column(column);
            while (csv.ReadRow())
            {
                ReadOnlySpan<char> text = csv.Span(timeColumn);
                if (!TryParseUtcTimestamp(text, out DateTime endUtc))
                    throw csv.Error($"'{EiaTimestampColumn}' is not a time YYYY-MM-DD HH:MM:SS: '{text}'");
                builder.Add(endUtc - Step, 1, csv.Number(valueColumn), csv.LineNumber);
            }
        }
        return builder.Build($"{Path.GetFileNameWithoutExtension(path)}: {column}", Unit, new RepairReport(), countNegatives: true);
    }

    /// <summary>
    /// Loads one price column of the JEPX spot file (<c>jepx_spot_30min_2023.csv</c>). Rows are keyed by
    /// <c>delivery_date</c> (<c>YYYY/M/D</c>) and <c>time_code</c> 1–48, the half-hour slot of that day in Japan
    /// Standard Time (UTC+9, no daylight saving): slot 1 is 00:00–00:30 JST. Prices in JPY/kWh become USD/MWh as
    /// <c>v × 1000 / jpyPerUsd</c>, and each 30-minute slot becomes two 15-minute intervals with the same price.
    /// </summary>
    /// <param name="path">The CSV file.</param>
    /// <param name="column">The exact header of the price column, e.g. <c>area_price_tokyo</c> or <c>system_price_jpy_per_kwh</c> (JPY/kWh).</param>
    /// <param name="jpyPerUsd">The exchange rate: yen per US dollar (positive).</param>
    /// <param name="fromUtc">The start of the period (UTC, on a 15-minute boundary), or null for the file's first slot.</param>
    /// <param name="toUtc">The end of the period, exclusive (UTC, on a 15-minute boundary), or null for the end of the file's last slot.</param>
    /// <returns>A 15-minute series in USD/MWh; the report records the conversion and the split.</returns>
    /// <exception cref="SeriesFormatException">A missing column, a malformed row, or no row in the period.</exception>
    /// <exception cref="ArgumentException">A bound that is not UTC or not on a 15-minute boundary, or an empty period.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="jpyPerUsd"/> is not a positive number.</exception>
    public static IntervalSeries LoadJepx30Min(string path, string column, double jpyPerUsd, DateTime? fromUtc = null, DateTime? toUtc = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(column);
        if (!double.IsFinite(jpyPerUsd) || jpyPerUsd <= 0)
            throw new ArgumentOutOfRangeException(nameof(jpyPerUsd), jpyPerUsd, "The exchange rate must be a positive number of yen per dollar.");
        double usdPerMwhPerJpyPerKwh = 1000.0 / jpyPerUsd;

        var builder = new GridBuilder(path, Step, fromUtc, toUtc, capacity: 17_568);
        using (CsvFile csv = CsvFile.Open(path))
        {
            int dateColumn = csv.Column("delivery_date");
            int codeColumn = csv.Column("time_code");
            int valueColumn = csv.Column(column);
            while (csv.ReadRow())
            {
                ReadOnlySpan<char> dateText = csv.Span(dateColumn);
                if (!DateTime.TryParseExact(dateText, "yyyy/M/d", CultureInfo.InvariantCulture, DateTimeStyles.None, out DateTime date))
                    throw csv.Error($"'delivery_date' is not a date YYYY/M/D: '{dateText}'");
                ReadOnlySpan<char> codeText = csv.Span(codeColumn);
                if (!int.TryParse(codeText, NumberStyles.None, CultureInfo.InvariantCulture, out int code) || code is < 1 or > 48)
                    throw csv.Error($"'time_code' is not a half-hour slot 1–48: '{codeText}'");
                DateTime startUtc = DateTime.SpecifyKind(date + HalfHour * (code - 1) - JstOffset, DateTimeKind.Utc);
                builder.Add(startUtc, 2, csv.Number(valueColumn) * usdPerMwhPerJpyPerKwh, csv.LineNumber);
            }
        }

        var report = new RepairReport();
        string rate = jpyPerUsd.ToString("0.####", CultureInfo.InvariantCulture);
        report.Add(RepairKind.Converted, builder.RowsInPeriod,
            $"JPY/kWh converted to USD/MWh at {rate} JPY per USD (× 1000 / {rate})");
        report.Add(RepairKind.Upsampled, builder.RowsInPeriod,
            "30-minute JEPX slots each split into two 15-minute intervals with the same price");
        return builder.Build($"{Path.GetFileNameWithoutExtension(path)}: {column}", Unit, report, countNegatives: true);
    }

    // "YYYY-MM-DD HH:MM:SS" read by position: the format is fixed, and this is the hot path of a 35,000-row load.
    private static bool TryParseUtcTimestamp(ReadOnlySpan<char> s, out DateTime utc)
    {
        utc = default;
        if (s.Length != 19 || s[4] != '-' || s[7] != '-' || s[10] != ' ' || s[13] != ':' || s[16] != ':') return false;
        if (!TryDigits(s[0..4], out int year) || !TryDigits(s[5..7], out int month) || !TryDigits(s[8..10], out int day)
            || !TryDigits(s[11..13], out int hour) || !TryDigits(s[14..16], out int minute) || !TryDigits(s[17..19], out int second))
            return false;
        if (year < 1 || month is < 1 or > 12 || day < 1 || day > DateTime.DaysInMonth(year, month) || hour > 23 || minute > 59 || second > 59)
            return false;
        utc = new DateTime(year, month, day, hour, minute, second, DateTimeKind.Utc);
        return true;
    }

    private static bool TryDigits(ReadOnlySpan<char> s, out int value)
    {
        value = 0;
        foreach (char c in s)
        {
            if (!char.IsAsciiDigit(c)) return false;
            value = value * 10 + (c - '0');
        }
        return true;
    }
}
