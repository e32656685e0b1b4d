using System.Globalization;

namespace ComputeGrid.Energy.Series;

/// <summary>One UTC day of Bitcoin network data (Coin Metrics community data).</summary>
/// <param name="Date">The UTC day.</param>
/// <param name="PriceUsd">Closing price (USD per BTC) at 00:00 UTC the following day (<c>PriceUSD</c>).</param>
/// <param name="HashRateThs">Mean network hash rate that day, TH/s (<c>HashRate</c>).</param>
/// <param name="IssuanceUsd">USD value of the BTC newly issued that day, the block subsidy (<c>IssTotUSD</c>).</param>
/// <param name="FeesBtc">Transaction fees paid to miners that day, BTC (<c>FeeTotNtv</c>).</param>
public sealed record BitcoinDaily(DateOnly Date, double PriceUsd, double HashRateThs, double IssuanceUsd, double FeesBtc)
{
    /// <summary>
    /// Hashprice: what one TH/s of hash rate earned that day, in USD per TH/s per day:
    /// <c>(IssuanceUsd + FeesBtc × PriceUsd) / HashRateThs</c>.
    /// </summary>
    public double HashpriceUsdPerThDay => (IssuanceUsd + FeesBtc * PriceUsd) / HashRateThs;
}

/// <summary>
/// The daily Bitcoin series (<c>btc_daily_coinmetrics_2020-2026.csv</c>, Coin Metrics community data,
/// CC BY-NC 4.0: non-commercial use only) and the hashprice computed from it.
/// </summary>
public sealed class BitcoinSeries
{
    /// <summary>The unit of <see cref="HashpriceSeries"/>.</summary>
    public const string HashpriceUnit = "USD per TH/s per day";

    private static readonly TimeSpan OneDay = TimeSpan.FromDays(1);

    private readonly string _path;
    private readonly BitcoinDaily[] _days;

    private BitcoinSeries(string path, BitcoinDaily[] days)
    {
        _path = path;
        _days = days;
    }

    /// <summary>The days, in increasing date order (each date once).</summary>
    public IReadOnlyList<BitcoinDaily> Days => _days;

    /// <summary>
    /// Reads the Coin Metrics daily file: columns <c>time</c> (YYYY-MM-DD), <c>PriceUSD</c>, <c>HashRate</c> (TH/s),
    /// <c>IssTotUSD</c> and <c>FeeTotNtv</c> (BTC); other columns are ignored.
    /// </summary>
    /// <exception cref="SeriesFormatException">A missing column, a malformed or empty value, a hash rate that is not
    /// positive, a negative price, issuance or fee, dates not strictly increasing, or no rows.</exception>
    public static BitcoinSeries Load(string path)
    {
        var days = new List<BitcoinDaily>(2_400);
        using (CsvFile csv = CsvFile.Open(path))
        {
            int time = csv.Column("time"), price = csv.Column("PriceUSD"), hashRate = csv.Column("HashRate"),
                issuance = csv.Column("IssTotUSD"), fees = csv.Column("FeeTotNtv");
            while (csv.ReadRow())
            {
                ReadOnlySpan<char> text = csv.Span(time);
                if (!DateOnly.TryParseExact(text, "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out DateOnly date))
                    throw csv.Error($"'time' is not a date YYYY-MM-DD: '{text}'");
                if (days.Count > 0 && date <= days[^1].Date)
                    throw csv.Error($"{date:yyyy-MM-dd} does not follow {days[^1].Date:yyyy-MM-dd}; the days must be in increasing order, each once");
                var day = new BitcoinDaily(date, csv.Number(price), csv.Number(hashRate), csv.Number(issuance), csv.Number(fees));
                if (day.HashRateThs <= 0) throw csv.Error($"'HashRate' must be positive: '{csv.Text(hashRate)}'");
                if (day.PriceUsd < 0 || day.IssuanceUsd < 0 || day.FeesBtc < 0)
                    throw csv.Error("'PriceUSD', 'IssTotUSD' and 'FeeTotNtv' must not be negative");
                days.Add(day);
            }
        }
        if (days.Count == 0) throw new SeriesFormatException(path, null, "the file has no data rows");
        return new BitcoinSeries(path, [.. days]);
    }

    /// <summary>The data of one UTC day.</summary>
    /// <exception cref="KeyNotFoundException">The day is not in the file.</exception>
    public BitcoinDaily Day(DateOnly date)
    {
        int lo = 0, hi = _days.Length - 1;
        while (lo <= hi)
        {
            int mid = lo + (hi - lo) / 2;
            int order = _days[mid].Date.CompareTo(date);
            if (order == 0) return _days[mid];
            if (order < 0) lo = mid + 1;
            else hi = mid - 1;
        }
        throw new KeyNotFoundException(
            $"{date:yyyy-MM-dd} is not in {Path.GetFileName(_path)} (it covers {_days[0].Date:yyyy-MM-dd} to {_days[^1].Date:yyyy-MM-dd}).");
    }

    /// <summary>
    /// Hashprice of one UTC day in USD per TH/s per day: <c>(IssTotUSD + FeeTotNtv × PriceUSD) / HashRate</c>
    /// (see <see cref="BitcoinDaily.HashpriceUsdPerThDay"/>).
    /// </summary>
    /// <exception cref="KeyNotFoundException">The day is not in the file.</exception>
    public double Hashprice(DateOnly date) => Day(date).HashpriceUsdPerThDay;

    /// <summary>
    /// Daily hashprice over <c>[fromUtc, toUtc)</c> as an <see cref="IntervalSeries"/> with a one-day step (unit
    /// <see cref="HashpriceUnit"/>). Days missing from the file inside the period are filled with the last value
    /// before them, and reported.
    /// </summary>
    /// <param name="fromUtc">The first day (UTC midnight).</param>
    /// <param name="toUtc">The end of the period, exclusive (UTC midnight).</param>
    /// <exception cref="ArgumentException">A bound that is not a UTC midnight, or an empty period.</exception>
    /// <exception cref="SeriesFormatException">No day of the file falls in the period.</exception>
    public IntervalSeries HashpriceSeries(DateTime fromUtc, DateTime toUtc)
    {
        var builder = new GridBuilder(_path, OneDay, fromUtc, toUtc, _days.Length);
        foreach (BitcoinDaily day in _days)
            builder.Add(DateTime.SpecifyKind(day.Date.ToDateTime(TimeOnly.MinValue), DateTimeKind.Utc), 1, day.HashpriceUsdPerThDay, 0);
        return builder.Build("Bitcoin hashprice", HashpriceUnit, new RepairReport(), countNegatives: false);
    }
}
