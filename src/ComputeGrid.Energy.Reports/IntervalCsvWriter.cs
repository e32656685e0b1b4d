using System.Globalization;
using System.Text;
using ComputeGrid.Energy.Dispatch;
using ComputeGrid.Energy.Sites;

namespace ComputeGrid.Energy.Reports;

/// <summary>
/// Writes a backtest's schedule as CSV, one row per interval, with the interval's inputs, power split and money.
/// Columns: <c>interval_start_utc, local_time, price_usd_per_mwh, hashprice_usd_per_th_day, system_load_mw,
/// emergency, peak_charge_usd_per_kw, ai_it_kw, leased_gpus, miners_running_&lt;model&gt;</c> (one per group, the
/// model's name in lower case with <c>_</c> for other characters)<c>, miner_it_kw, facility_kw, headroom_kw,
/// mining_revenue_usd, energy_cost_usd, ai_revenue_usd, peak_charge_usd, restart_wear_usd, value_usd</c>.
/// </summary>
/// <remarks>
/// Invariant culture, comma-separated, <c>\n</c> line ends, UTF-8 without a byte-order mark. Times are ISO 8601:
/// UTC with <c>Z</c>, local time with its UTC offset. Input series are written with the shortest text that reads
/// back to the same double; <c>system_load_mw</c> is empty where the site has no system load. Power columns have
/// three decimals (kW). Money columns are the per-interval amounts of <see cref="IntervalLedger"/>, written exactly
/// with six decimals, so each sums to the run's <see cref="SiteValue"/> total.
/// </remarks>
public static class IntervalCsvWriter
{
    /// <summary>Writes <paramref name="run"/>'s schedule over <paramref name="site"/> to <paramref name="path"/> (overwritten).</summary>
    /// <exception cref="ArgumentException">The run's schedule does not match the site's groups and intervals.</exception>
    public static void Write(string path, BuiltSite site, PolicyRun run)
    {
        ArgumentNullException.ThrowIfNull(site);
        ArgumentNullException.ThrowIfNull(run);
        Write(path, site, IntervalLedger.Compute(site.Problem, run.Running));
    }

    /// <summary>Writes a schedule whose counts may be fractional (e.g. the optimizer's <c>Running</c>) to <paramref name="path"/>.</summary>
    /// <exception cref="ArgumentException">The schedule does not match the site's groups and intervals.</exception>
    public static void Write(string path, BuiltSite site, double[][] running)
    {
        ArgumentNullException.ThrowIfNull(site);
        Write(path, site, IntervalLedger.Compute(site.Problem, running));
    }

    /// <summary>Writes an already computed <paramref name="ledger"/> of <paramref name="site"/> to <paramref name="path"/>.</summary>
    /// <exception cref="ArgumentException">The ledger is not of the site's problem.</exception>
    public static void Write(string path, BuiltSite site, IntervalLedger ledger)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(site);
        ArgumentNullException.ThrowIfNull(ledger);
        if (!ReferenceEquals(ledger.Problem, site.Problem))
            throw new ArgumentException("The ledger was computed for another site problem.", nameof(ledger));
        string? directory = Path.GetDirectoryName(Path.GetFullPath(path));
        if (!string.IsNullOrEmpty(directory)) System.IO.Directory.CreateDirectory(directory);
        using var stream = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16);
        using var writer = new StreamWriter(stream, new UTF8Encoding(false), 1 << 16);
        Write(writer, site, ledger);
    }

    /// <summary>Writes the CSV of <paramref name="ledger"/> to <paramref name="writer"/> (header first).</summary>
    public static void Write(TextWriter writer, BuiltSite site, IntervalLedger ledger)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentNullException.ThrowIfNull(site);
        ArgumentNullException.ThrowIfNull(ledger);
        SiteProblem p = ledger.Problem;
        writer.Write(string.Join(',', Header(p)));
        writer.Write('\n');

        var row = new RowBuffer(1024 + 32 * p.Groups.Length);
        int[] leased = site.LeasedGpus;
        int groups = p.Groups.Length;
        for (int t = 0; t < p.Count; t++)
        {
            row.Clear();
            DateTime utc = p.IntervalStartUtc(t);
            row.Date(utc);
            row.Append("Z,");
            int offset = p.LocalUtcOffsetHours[t];
            row.Date(utc.AddHours(offset));
            row.Append(offset < 0 ? '-' : '+');
            int abs = Math.Abs(offset);
            row.Append((char)('0' + abs / 10));
            row.Append((char)('0' + abs % 10));
            row.Append(":00,");
            row.Double(p.PriceUsdPerMwh[t], null);
            row.Append(',');
            row.Double(p.HashpriceUsdPerThDay[t], null);
            row.Append(',');
            if (!double.IsNaN(p.SystemLoadMw[t])) row.Double(p.SystemLoadMw[t], null);
            row.Append(p.Emergency[t] ? ",1," : ",0,");
            row.Double(p.PeakChargeUsdPerKw[t], null);
            row.Append(',');
            row.Double(p.AiItKw[t], null);
            row.Append(',');
            row.Long(t < leased.Length ? leased[t] : 0);
            for (int g = 0; g < groups; g++)
            {
                row.Append(',');
                row.Double(ledger.Running[g][t], null);
            }
            row.Append(',');
            row.Double(ledger.MinerItKw[t], "F3");
            row.Append(',');
            row.Double(ledger.FacilityKw[t], "F3");
            row.Append(',');
            row.Double(ledger.HeadroomKw(t), "F3");
            row.Append(',');
            row.Micro(ledger.MiningRevenueMicroUsd[t]);
            row.Append(',');
            row.Micro(ledger.EnergyCostMicroUsd[t]);
            row.Append(',');
            row.Micro(ledger.AiRevenueMicroUsd[t]);
            row.Append(',');
            row.Micro(ledger.PeakChargeMicroUsd[t]);
            row.Append(',');
            row.Micro(ledger.RestartWearMicroUsd[t]);
            row.Append(',');
            row.Micro(ledger.ValueMicroUsd(t));
            row.Append('\n');
            writer.Write(row.Written);
        }
    }

    /// <summary>The header's column names for <paramref name="problem"/> (the miner columns depend on its groups).</summary>
    public static IReadOnlyList<string> Header(SiteProblem problem)
    {
        ArgumentNullException.ThrowIfNull(problem);
        var columns = new List<string>
        {
            "interval_start_utc", "local_time", "price_usd_per_mwh", "hashprice_usd_per_th_day", "system_load_mw",
            "emergency", "peak_charge_usd_per_kw", "ai_it_kw", "leased_gpus",
        };
        var used = new HashSet<string>(StringComparer.Ordinal);
        foreach (MinerGroup group in problem.Groups)
        {
            string name = "miners_running_" + ColumnName(group.Model);
            string unique = name;
            for (int k = 2; !used.Add(unique); k++) unique = $"{name}_{k}";
            columns.Add(unique);
        }
        columns.AddRange(
        [
            "miner_it_kw", "facility_kw", "headroom_kw", "mining_revenue_usd", "energy_cost_usd", "ai_revenue_usd",
            "peak_charge_usd", "restart_wear_usd", "value_usd",
        ]);
        return columns;
    }

    // "Antminer S19 XP" -> "antminer_s19_xp": lower-case ASCII letters and digits, one '_' for any run of others.
    private static string ColumnName(string model)
    {
        var sb = new StringBuilder(model.Length);
        foreach (char c in model)
        {
            if (char.IsAsciiLetterOrDigit(c)) sb.Append(char.ToLowerInvariant(c));
            else if (sb.Length > 0 && sb[^1] != '_') sb.Append('_');
        }
        while (sb.Length > 0 && sb[^1] == '_') sb.Length--;
        return sb.Length == 0 ? "group" : sb.ToString();
    }

    // One row's text, built in a reusable array and handed to the writer at once.
    private sealed class RowBuffer(int capacity)
    {
        private readonly char[] _chars = new char[capacity];
        private int _length;

        public ReadOnlySpan<char> Written => _chars.AsSpan(0, _length);

        public void Clear() => _length = 0;

        public void Append(char c) => _chars[_length++] = c;

        public void Append(string s)
        {
            s.CopyTo(_chars.AsSpan(_length));
            _length += s.Length;
        }

        // yyyy-MM-ddTHH:mm:ss
        public void Date(DateTime d)
        {
            Digits(d.Year, 4);
            Append('-');
            Digits(d.Month, 2);
            Append('-');
            Digits(d.Day, 2);
            Append('T');
            Digits(d.Hour, 2);
            Append(':');
            Digits(d.Minute, 2);
            Append(':');
            Digits(d.Second, 2);
        }

        public void Double(double value, string? format)
        {
            if (format is not null && Math.Abs(value) < 5e-4) value = 0; // no "-0.000"
            if (value == 0) value = 0.0; // no "-0"
            if (!value.TryFormat(_chars.AsSpan(_length), out int written, format, CultureInfo.InvariantCulture))
                throw new InvalidOperationException("Row buffer too small.");
            _length += written;
        }

        public void Long(long value)
        {
            if (!value.TryFormat(_chars.AsSpan(_length), out int written, default, CultureInfo.InvariantCulture))
                throw new InvalidOperationException("Row buffer too small.");
            _length += written;
        }

        // Exact fixed-point text of a micro-USD amount: "-12.345678".
        public void Micro(long micro)
        {
            if (micro < 0) Append('-');
            ulong abs = micro < 0 ? (ulong)(-(micro + 1)) + 1 : (ulong)micro;
            if (!(abs / 1_000_000).TryFormat(_chars.AsSpan(_length), out int written, default, CultureInfo.InvariantCulture))
                throw new InvalidOperationException("Row buffer too small.");
            _length += written;
            Append('.');
            Digits((int)(abs % 1_000_000), 6);
        }

        private void Digits(int value, int count)
        {
            for (int i = count - 1; i >= 0; i--)
            {
                _chars[_length + i] = (char)('0' + value % 10);
                value /= 10;
            }
            _length += count;
        }
    }
}
