using System.Diagnostics.CodeAnalysis;
using System.Text;
using ComputeGrid.Core;

namespace ComputeGrid.Exchange.Instruments;

/// <summary>A region where GPU capacity is delivered.</summary>
/// <param name="Code">The symbol code: lower-case ASCII letters and digits in hyphen-separated words (e.g. <c>washington-dc</c>).</param>
/// <param name="Name">The name as the source data writes it (e.g. <c>Washington DC</c>).</param>
public sealed record Region(string Code, string Name);

/// <summary>
/// The regions the exchange lists: the 13 regions of IBM Cloud's measured inter-region latency matrix
/// (<c>data/ibm_cloud_vpc_inter_region_rtt_ms.csv</c>), so every region the exchange trades has real latency
/// data for routing. Regions keep the order in which they first appear in the file; codes are derived from names
/// by <see cref="CodeFor"/>.
/// </summary>
public sealed class RegionCatalog
{
    /// <summary>The data file the regions come from (found with <see cref="DataFiles.Find(string)"/>).</summary>
    public const string FileName = "ibm_cloud_vpc_inter_region_rtt_ms.csv";

    /// <summary>The longest region code accepted (symbols stay short and bounded).</summary>
    public const int MaxCodeLength = 32;

    private const string RowColumn = "row_region";
    private const string ColumnColumn = "column_region";

    // The same names, in file order, for callers that cannot read the data folder (a published binary without
    // data/). A test keeps this list equal to the file, so the two cannot drift.
    private static readonly string[] FallbackNameArray =
    [
        "Dallas", "Toronto", "Washington DC", "Frankfurt", "London", "Madrid", "Montreal",
        "Chennai", "Mumbai", "Osaka", "Sydney", "Tokyo", "Sao Paulo",
    ];

    private readonly Region[] _regions;
    private readonly string[] _codes;
    private readonly Dictionary<string, Region> _byCode;
    private readonly Dictionary<string, Region> _byName;

    private RegionCatalog(Region[] regions)
    {
        _regions = regions;
        _codes = Array.ConvertAll(regions, r => r.Code);
        _byCode = regions.ToDictionary(r => r.Code, StringComparer.Ordinal);
        _byName = regions.ToDictionary(r => r.Name, StringComparer.Ordinal);
    }

    /// <summary>The 13 region names of the data file, in file order, built in.</summary>
    public static IReadOnlyList<string> FallbackNames => FallbackNameArray;

    /// <summary>The catalogue built from <see cref="FallbackNames"/> (no file access).</summary>
    public static RegionCatalog Fallback { get; } = FromNames(FallbackNameArray);

    /// <summary>The regions, in the order they first appear in the source.</summary>
    public IReadOnlyList<Region> Regions => _regions;

    /// <summary>The region codes, in the same order as <see cref="Regions"/>.</summary>
    public IReadOnlyList<string> Codes => _codes;

    /// <summary>The number of regions.</summary>
    public int Count => _regions.Length;

    /// <summary>Looks a region up by code (exact, case-sensitive).</summary>
    public bool TryGetByCode(string code, [MaybeNullWhen(false)] out Region region) => _byCode.TryGetValue(code, out region);

    /// <summary>Looks a region up by its source name (exact, case-sensitive).</summary>
    public bool TryGetByName(string name, [MaybeNullWhen(false)] out Region region) => _byName.TryGetValue(name, out region);

    /// <summary>True if the catalogue holds a region with this code.</summary>
    public bool Contains(string code) => _byCode.ContainsKey(code);

    /// <summary>Reads the regions from the repository's data file, found by <see cref="DataFiles.Find(string)"/>.</summary>
    /// <exception cref="FileNotFoundException">The data folder or file is missing.</exception>
    /// <exception cref="InvalidDataException">The file is not a region latency matrix.</exception>
    public static RegionCatalog LoadDefault() => Load(DataFiles.Find(FileName));

    /// <summary>
    /// Reads the region names from an inter-region latency CSV (columns <c>row_region</c> and <c>column_region</c>;
    /// other columns are ignored). Every region must appear both as a row and as a column: a name on one side only
    /// means a truncated or foreign file.
    /// </summary>
    /// <exception cref="FileNotFoundException">No file at <paramref name="csvPath"/>.</exception>
    /// <exception cref="InvalidDataException">A missing column, a malformed or short line, an empty name, no rows,
    /// a name on one side of the matrix only, or two names with the same code.</exception>
    public static RegionCatalog Load(string csvPath)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(csvPath);
        var order = new List<string>();
        var rows = new HashSet<string>(StringComparer.Ordinal);
        var columns = new HashSet<string>(StringComparer.Ordinal);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        int rowIndex = -1, columnIndex = -1, width = 0, lineNumber = 0;
        bool header = true;

        foreach (string line in File.ReadLines(csvPath, Encoding.UTF8))
        {
            lineNumber++;
            if (line.Length == 0) continue; // a trailing newline, or a blank separator line
            List<string> fields = SplitCsvLine(line, csvPath, lineNumber);
            if (header)
            {
                header = false;
                width = fields.Count;
                rowIndex = fields.IndexOf(RowColumn);
                columnIndex = fields.IndexOf(ColumnColumn);
                if (rowIndex < 0 || columnIndex < 0)
                    throw new InvalidDataException(
                        $"{csvPath}: the header must name the columns '{RowColumn}' and '{ColumnColumn}' (found: {string.Join(", ", fields)}).");
                continue;
            }
            if (fields.Count != width)
                throw new InvalidDataException($"{csvPath}:{lineNumber}: {fields.Count} fields, the header has {width}.");
            string row = fields[rowIndex].Trim(), column = fields[columnIndex].Trim();
            if (row.Length == 0 || column.Length == 0)
                throw new InvalidDataException($"{csvPath}:{lineNumber}: empty region name.");
            rows.Add(row);
            columns.Add(column);
            if (seen.Add(row)) order.Add(row);
            if (seen.Add(column)) order.Add(column);
        }

        if (header) throw new InvalidDataException($"{csvPath}: the file is empty.");
        if (order.Count == 0) throw new InvalidDataException($"{csvPath}: the file has a header but no rows.");
        if (!rows.SetEquals(columns))
        {
            var oneSided = order.Where(n => !rows.Contains(n) || !columns.Contains(n));
            throw new InvalidDataException(
                $"{csvPath}: regions that appear only as a row or only as a column: {string.Join(", ", oneSided)}.");
        }
        return FromNamesCore(order, csvPath);
    }

    /// <summary>A catalogue from region names, in the given order; codes derived by <see cref="CodeFor"/>.</summary>
    /// <exception cref="ArgumentException">An empty or duplicate name, a name with no code, or two names with the same code.</exception>
    public static RegionCatalog FromNames(IEnumerable<string> names)
    {
        ArgumentNullException.ThrowIfNull(names);
        try
        {
            return FromNamesCore(names.ToList(), "region names");
        }
        catch (InvalidDataException e)
        {
            throw new ArgumentException(e.Message, nameof(names), e);
        }
    }

    /// <summary>
    /// The symbol code of a region name: ASCII letters and digits lower-cased, every other run of characters
    /// replaced by one hyphen, hyphens trimmed at the ends ("Washington DC" → <c>washington-dc</c>,
    /// "Sao Paulo" → <c>sao-paulo</c>). Empty if the name has no ASCII letter or digit.
    /// </summary>
    public static string CodeFor(string name) => ComputeGrid.Core.RegionCodes.CodeFor(name);

    /// <summary>
    /// True if <paramref name="code"/> is a well-formed region code: 1 to <see cref="MaxCodeLength"/> characters of
    /// lower-case ASCII letters and digits, in words separated by single hyphens. Such a code never contains the
    /// symbol separator '.'.
    /// </summary>
    public static bool IsValidCode(ReadOnlySpan<char> code)
    {
        if (code.Length is 0 or > MaxCodeLength) return false;
        if (code[0] == '-' || code[^1] == '-') return false;
        char previous = '\0';
        foreach (char c in code)
        {
            bool ok = char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || (c == '-' && previous != '-');
            if (!ok) return false;
            previous = c;
        }
        return true;
    }

    private static RegionCatalog FromNamesCore(IReadOnlyList<string> names, string source)
    {
        var regions = new Region[names.Count];
        var codes = new Dictionary<string, string>(StringComparer.Ordinal);
        var seenNames = new HashSet<string>(StringComparer.Ordinal);
        for (int i = 0; i < names.Count; i++)
        {
            string name = names[i];
            if (string.IsNullOrWhiteSpace(name)) throw new InvalidDataException($"{source}: empty region name.");
            if (!seenNames.Add(name)) throw new InvalidDataException($"{source}: region '{name}' appears twice.");
            string code = CodeFor(name);
            if (!IsValidCode(code))
                throw new InvalidDataException($"{source}: region '{name}' gives no valid code ('{code}').");
            if (!codes.TryAdd(code, name))
                throw new InvalidDataException($"{source}: regions '{codes[code]}' and '{name}' both have the code '{code}'.");
            regions[i] = new Region(code, name);
        }
        return new RegionCatalog(regions);
    }

    // RFC 4180 fields on one line: commas separate, a field may be quoted and then holds commas and doubled
    // quotes. Line breaks inside quotes are not supported (the latency file has none); an unclosed quote is an
    // error rather than a silent merge with the next line.
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
                    if (i >= line.Length)
                        throw new InvalidDataException($"{path}:{lineNumber}: unclosed quote.");
                    if (line[i] == '"')
                    {
                        if (i + 1 < line.Length && line[i + 1] == '"')
                        {
                            field.Append('"');
                            i += 2;
                            continue;
                        }
                        i++;
                        break;
                    }
                    field.Append(line[i++]);
                }
                if (i < line.Length && line[i] != ',')
                    throw new InvalidDataException($"{path}:{lineNumber}: text after a closing quote.");
            }
            else
            {
                while (i < line.Length && line[i] != ',') field.Append(line[i++]);
            }
            fields.Add(field.ToString());
            if (i >= line.Length) return fields;
            i++; // the comma
        }
    }
}
