using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;
using ComputeGrid.Core;

namespace ComputeGrid.Inference.Routing;

/// <summary>
/// Round-trip times between the regions where inference nodes run, from IBM Cloud's measured inter-region
/// latency matrix (<c>data/ibm_cloud_vpc_inter_region_rtt_ms.csv</c>, see <c>data/README.md</c>).
/// </summary>
/// <remarks>
/// <para>
/// Of the file's snapshots only the latest (by its <c>snapshot</c> date) is used. The source tables give no
/// direction, and the two directions of a pair differ by a millisecond or so; the matrix is made symmetric by
/// taking the mean of both directions where both exist (the one value where only one does). Means are exact
/// to the microsecond, so RTTs are held as whole microseconds (<see cref="RttMicros"/>); <see cref="Rtt"/> gives
/// the same value in milliseconds.
/// </para>
/// <para>
/// The file has no same-region values (its diagonal cells are empty). The RTT inside one region is
/// <see cref="IntraRegionRttMs"/> (1 ms): two machines in one region sit in the same or a neighbouring
/// availability zone, which IBM's inter-AZ tables put at around a millisecond.
/// </para>
/// <para>
/// Region ids are the exchange's region codes: the file's names with ASCII letters and digits lower-cased and
/// every other run of characters replaced by one hyphen (<c>Washington DC</c> → <c>washington-dc</c>,
/// <c>Sao Paulo</c> → <c>sao-paulo</c>). Regions keep the order in which they first appear in the snapshot,
/// and that order gives each region its index. Instances are immutable and safe to share between threads.
/// </para>
/// </remarks>
public sealed class LatencyMatrix
{
    /// <summary>The data file the matrix comes from (found with <see cref="DataFiles.Find(string)"/>).</summary>
    public const string FileName = "ibm_cloud_vpc_inter_region_rtt_ms.csv";

    /// <summary>The RTT between two machines in the same region, in milliseconds (the file has no diagonal).</summary>
    public const double IntraRegionRttMs = 1.0;

    /// <summary><see cref="IntraRegionRttMs"/> in microseconds.</summary>
    public const int IntraRegionRttMicros = 1_000;

    /// <summary>The most regions a matrix may hold (a <see cref="RegionSet"/> is a 64-bit mask).</summary>
    public const int MaxRegions = RegionSet.Capacity;

    private readonly string[] _codes;
    private readonly string[] _names;
    private readonly Dictionary<string, int> _byCode;
    private readonly int[] _micros; // dense, row-major: [from * Count + to]
    private readonly int[] _byDistance; // row-major: for each region, every region by (RTT, index) ascending

    private LatencyMatrix(string[] codes, string[] names, int[] micros, DateOnly? snapshot)
    {
        _codes = codes;
        _names = names;
        _micros = micros;
        Snapshot = snapshot;
        _byCode = new Dictionary<string, int>(codes.Length, StringComparer.Ordinal);
        for (int i = 0; i < codes.Length; i++) _byCode.Add(codes[i], i);
        int n = codes.Length;
        _byDistance = new int[n * n];
        for (int from = 0; from < n; from++)
        {
            int[] row = [.. Enumerable.Range(0, n).OrderBy(to => micros[from * n + to]).ThenBy(to => to)];
            row.CopyTo(_byDistance, from * n);
        }
    }

    /// <summary>The region ids (e.g. <c>frankfurt</c>, <c>washington-dc</c>); a region's index is its position here.</summary>
    public IReadOnlyList<string> Regions => _codes;

    /// <summary>The region names as the source writes them (e.g. <c>Washington DC</c>), in the order of <see cref="Regions"/>.</summary>
    public IReadOnlyList<string> RegionNames => _names;

    /// <summary>The number of regions.</summary>
    public int Count => _codes.Length;

    /// <summary>The date of the snapshot the values come from; null for a matrix built with <see cref="FromValues"/>.</summary>
    public DateOnly? Snapshot { get; }

    /// <summary>The symmetric RTT between two regions in milliseconds (<see cref="IntraRegionRttMs"/> when they are the same).</summary>
    /// <param name="from">The index of one region.</param>
    /// <param name="to">The index of the other region.</param>
    /// <exception cref="IndexOutOfRangeException">An index outside 0 … <see cref="Count"/> − 1.</exception>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public double Rtt(int from, int to) => RttMicros(from, to) / 1000.0;

    /// <summary>The symmetric RTT between two regions in whole microseconds.</summary>
    /// <param name="from">The index of one region.</param>
    /// <param name="to">The index of the other region.</param>
    /// <exception cref="IndexOutOfRangeException">An index outside 0 … <see cref="Count"/> − 1.</exception>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int RttMicros(int from, int to)
    {
        if ((uint)from >= (uint)_codes.Length || (uint)to >= (uint)_codes.Length) ThrowIndex();
        return _micros[from * _codes.Length + to];
    }

    /// <summary>The RTTs in microseconds from region <paramref name="from"/> to every region, indexed by region.</summary>
    /// <param name="from">The index of the region.</param>
    /// <exception cref="ArgumentOutOfRangeException">An index outside 0 … <see cref="Count"/> − 1.</exception>
    public ReadOnlySpan<int> RowMicros(int from)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(from);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(from, _codes.Length);
        return new ReadOnlySpan<int>(_micros, from * _codes.Length, _codes.Length);
    }

    /// <summary>Every region's index ordered by RTT from region <paramref name="from"/> (nearest first, ties by index).</summary>
    /// <param name="from">The index of the region.</param>
    /// <exception cref="ArgumentOutOfRangeException">An index outside 0 … <see cref="Count"/> − 1.</exception>
    public ReadOnlySpan<int> RegionsByDistance(int from)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(from);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(from, _codes.Length);
        return new ReadOnlySpan<int>(_byDistance, from * _codes.Length, _codes.Length);
    }

    /// <summary>
    /// Finds a region's index by id (<c>washington-dc</c>). A name in another spelling (<c>Washington DC</c>,
    /// <c>WASHINGTON_DC</c>) is accepted too: it is first turned into an id by <see cref="CodeFor"/>.
    /// </summary>
    /// <param name="name">A region id or name.</param>
    /// <param name="index">The region's index when found; −1 otherwise.</param>
    /// <returns>True if the matrix holds the region.</returns>
    public bool TryGetRegion(string? name, out int index)
    {
        if (name is null) { index = -1; return false; }
        if (_byCode.TryGetValue(name, out index)) return true;
        if (_byCode.TryGetValue(CodeFor(name), out index)) return true;
        index = -1;
        return false;
    }

    /// <summary>
    /// A region set from region ids or names (see <see cref="TryGetRegion"/>).
    /// </summary>
    /// <param name="names">The regions.</param>
    /// <param name="set">The set when every name is known.</param>
    /// <param name="unknown">The first unknown name, or null.</param>
    /// <returns>True if every name is a region of this matrix.</returns>
    public bool TryCreateRegionSet(IEnumerable<string> names, out RegionSet set, out string? unknown)
    {
        ArgumentNullException.ThrowIfNull(names);
        set = RegionSet.Empty;
        foreach (string name in names)
        {
            if (!TryGetRegion(name, out int index))
            {
                unknown = name;
                set = RegionSet.Empty;
                return false;
            }
            set = set.With(index);
        }
        unknown = null;
        return true;
    }

    /// <summary>Loads the repository's data file, found by <see cref="DataFiles.Find(string)"/>.</summary>
    /// <exception cref="FileNotFoundException">The data folder or file is missing.</exception>
    /// <exception cref="InvalidDataException">The file is not a usable latency matrix (see <see cref="Load"/>).</exception>
    public static LatencyMatrix LoadDefault() => Load(DataFiles.Find(FileName));

    /// <summary>
    /// Loads an inter-region RTT CSV with the columns <c>snapshot</c> (a date such as <c>16 Aug 2026</c>),
    /// <c>row_region</c>, <c>column_region</c> and <c>avg_rtt_ms</c> (other columns are ignored), keeping the
    /// latest snapshot.
    /// </summary>
    /// <param name="csvPath">The file.</param>
    /// <exception cref="FileNotFoundException">No file at <paramref name="csvPath"/>.</exception>
    /// <exception cref="InvalidDataException">A missing column, a malformed line, date or value, a negative RTT,
    /// a same-region row, two names with one id, more than <see cref="MaxRegions"/> regions, no rows, or a pair of
    /// regions with no value in either direction in the latest snapshot.</exception>
    public static LatencyMatrix Load(string csvPath)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(csvPath);
        var rows = new List<(DateOnly Snapshot, string Row, string Column, decimal Ms, int Line)>();
        int snapshotIndex = -1, rowIndex = -1, columnIndex = -1, valueIndex = -1, width = 0, lineNumber = 0;
        bool header = true;
        foreach (string line in File.ReadLines(csvPath, Encoding.UTF8))
        {
            lineNumber++;
            if (line.Length == 0) continue;
            List<string> fields = SplitCsvLine(line, csvPath, lineNumber);
            if (header)
            {
                header = false;
                width = fields.Count;
                snapshotIndex = fields.IndexOf("snapshot");
                rowIndex = fields.IndexOf("row_region");
                columnIndex = fields.IndexOf("column_region");
                valueIndex = fields.IndexOf("avg_rtt_ms");
                if (snapshotIndex < 0 || rowIndex < 0 || columnIndex < 0 || valueIndex < 0)
                    throw new InvalidDataException(
                        $"{csvPath}: the header must name the columns snapshot, row_region, column_region and avg_rtt_ms (found: {string.Join(", ", fields)}).");
                continue;
            }
            if (fields.Count != width)
                throw new InvalidDataException($"{csvPath}:{lineNumber}: {fields.Count} fields, the header has {width}.");
            if (!DateOnly.TryParseExact(fields[snapshotIndex].Trim(), ["d MMM yyyy", "dd MMM yyyy", "yyyy-MM-dd"],
                    CultureInfo.InvariantCulture, DateTimeStyles.None, out DateOnly date))
                throw new InvalidDataException($"{csvPath}:{lineNumber}: snapshot '{fields[snapshotIndex]}' is not a date.");
            string row = fields[rowIndex].Trim(), column = fields[columnIndex].Trim();
            if (row.Length == 0 || column.Length == 0)
                throw new InvalidDataException($"{csvPath}:{lineNumber}: empty region name.");
            if (!decimal.TryParse(fields[valueIndex].Trim(), NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out decimal ms))
                throw new InvalidDataException($"{csvPath}:{lineNumber}: avg_rtt_ms '{fields[valueIndex]}' is not a non-negative number.");
            if (ms > 1_000_000m)
                throw new InvalidDataException($"{csvPath}:{lineNumber}: avg_rtt_ms {ms} is out of range.");
            rows.Add((date, row, column, ms, lineNumber));
        }
        if (header) throw new InvalidDataException($"{csvPath}: the file is empty.");
        if (rows.Count == 0) throw new InvalidDataException($"{csvPath}: the file has a header but no rows.");

        DateOnly latest = rows.Max(r => r.Snapshot);
        var names = new List<string>();
        var index = new Dictionary<string, int>(StringComparer.Ordinal);
        var codes = new Dictionary<string, string>(StringComparer.Ordinal);
        int Intern(string name)
        {
            if (index.TryGetValue(name, out int i)) return i;
            string code = CodeFor(name);
            if (code.Length == 0) throw new InvalidDataException($"{csvPath}: region '{name}' gives no id.");
            if (!codes.TryAdd(code, name))
                throw new InvalidDataException($"{csvPath}: regions '{codes[code]}' and '{name}' both have the id '{code}'.");
            i = names.Count;
            names.Add(name);
            index.Add(name, i);
            return i;
        }
        var directed = new Dictionary<(int From, int To), decimal>();
        foreach (var r in rows)
        {
            if (r.Snapshot != latest) continue;
            int from = Intern(r.Row), to = Intern(r.Column);
            if (from == to) throw new InvalidDataException($"{csvPath}:{r.Line}: a same-region value ('{r.Row}').");
            if (!directed.TryAdd((from, to), r.Ms))
                throw new InvalidDataException($"{csvPath}:{r.Line}: a second value for {r.Row} → {r.Column} in snapshot {latest:yyyy-MM-dd}.");
        }
        int n = names.Count;
        if (n > MaxRegions) throw new InvalidDataException($"{csvPath}: {n} regions, at most {MaxRegions} are supported.");

        var micros = new int[n * n];
        for (int a = 0; a < n; a++)
        {
            for (int b = 0; b < n; b++)
            {
                if (a == b) { micros[a * n + b] = IntraRegionRttMicros; continue; }
                bool hasAb = directed.TryGetValue((a, b), out decimal ab);
                bool hasBa = directed.TryGetValue((b, a), out decimal ba);
                decimal ms = (hasAb, hasBa) switch
                {
                    (true, true) => (ab + ba) / 2m,
                    (true, false) => ab,
                    (false, true) => ba,
                    _ => throw new InvalidDataException(
                        $"{csvPath}: no RTT between {names[a]} and {names[b]} in snapshot {latest:yyyy-MM-dd}."),
                };
                micros[a * n + b] = (int)decimal.Round(ms * 1000m, MidpointRounding.AwayFromZero);
            }
        }
        return new LatencyMatrix([.. names.Select(CodeFor)], [.. names], micros, latest);
    }

    /// <summary>
    /// A matrix from explicit values (for simulations and tests): region names (ids derived by <see cref="CodeFor"/>)
    /// and a square matrix of RTTs in milliseconds. The matrix is made symmetric the same way as the data file
    /// (mean of both directions, rounded to the microsecond); the diagonal is ignored and set to
    /// <see cref="IntraRegionRttMs"/>.
    /// </summary>
    /// <param name="names">The region names, 1 to <see cref="MaxRegions"/>.</param>
    /// <param name="rttMs">RTTs in milliseconds, <c>[from, to]</c>, finite and in 0 … 1,000,000.</param>
    /// <exception cref="ArgumentException">An empty or duplicate name or id, a wrongly sized matrix, or a bad value.</exception>
    public static LatencyMatrix FromValues(IReadOnlyList<string> names, double[,] rttMs)
    {
        ArgumentNullException.ThrowIfNull(names);
        ArgumentNullException.ThrowIfNull(rttMs);
        int n = names.Count;
        if (n is 0 or > MaxRegions) throw new ArgumentException($"1 to {MaxRegions} regions are required, not {n}.", nameof(names));
        if (rttMs.GetLength(0) != n || rttMs.GetLength(1) != n)
            throw new ArgumentException($"The matrix must be {n} × {n}.", nameof(rttMs));
        var codes = new string[n];
        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (int i = 0; i < n; i++)
        {
            codes[i] = CodeFor(names[i] ?? throw new ArgumentException("A region name is null.", nameof(names)));
            if (codes[i].Length == 0 || !seen.Add(codes[i]))
                throw new ArgumentException($"Region '{names[i]}' gives an empty or repeated id.", nameof(names));
        }
        var micros = new int[n * n];
        for (int a = 0; a < n; a++)
        {
            for (int b = 0; b < n; b++)
            {
                if (a == b) { micros[a * n + b] = IntraRegionRttMicros; continue; }
                double ab = rttMs[a, b], ba = rttMs[b, a];
                if (!double.IsFinite(ab) || ab < 0 || ab > 1_000_000 || !double.IsFinite(ba) || ba < 0 || ba > 1_000_000)
                    throw new ArgumentException($"RTT {names[a]} ↔ {names[b]} is out of range.", nameof(rttMs));
                micros[a * n + b] = (int)decimal.Round(((decimal)ab + (decimal)ba) / 2m * 1000m, MidpointRounding.AwayFromZero);
            }
        }
        return new LatencyMatrix(codes, [.. names], micros, null);
    }

    /// <summary>
    /// The region id of a name, spelled as the exchange spells region codes: ASCII letters and digits lower-cased,
    /// every other run of characters replaced by one hyphen, hyphens trimmed at the ends
    /// ("Washington DC" → <c>washington-dc</c>). Empty if the name has no ASCII letter or digit.
    /// </summary>
    /// <param name="name">A region name.</param>
    public static string CodeFor(string name) => ComputeGrid.Core.RegionCodes.CodeFor(name);

    private static void ThrowIndex() => throw new IndexOutOfRangeException("Region index out of range.");

    // RFC 4180 fields on one line (quoted fields may hold commas and doubled quotes; no line breaks in fields).
    private static List<string> SplitCsvLine(string line, string path, int lineNumber)
    {
        var fields = new List<string>();
        var field = new StringBuilder();
        int i = 0;
        while (true)
        {
            field.Clear();
            if (i < line.Length && line[i] == '"')
            {
                i++;
                while (true)
                {
                    if (i >= line.Length) throw new InvalidDataException($"{path}:{lineNumber}: unclosed quote.");
                    if (line[i] == '"')
                    {
                        if (i + 1 < line.Length && line[i + 1] == '"') { field.Append('"'); i += 2; continue; }
                        i++;
                        break;
                    }
                    field.Append(line[i++]);
                }
                if (i < line.Length && line[i] != ',') throw new InvalidDataException($"{path}:{lineNumber}: text after a closing quote.");
            }
            else
            {
                while (i < line.Length && line[i] != ',') field.Append(line[i++]);
            }
            fields.Add(field.ToString());
            if (i >= line.Length) return fields;
            i++;
        }
    }
}
