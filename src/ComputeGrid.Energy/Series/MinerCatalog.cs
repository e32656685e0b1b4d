using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Text;

namespace ComputeGrid.Energy.Series;

/// <summary>A SHA-256 ASIC miner model as a published table gives it.</summary>
/// <param name="Id">A short unique key: the table's id (MineForge), or one made from the name (F2Pool), e.g. <c>s21</c>.</param>
/// <param name="Name">The model name, e.g. <c>Antminer S21</c>.</param>
/// <param name="Manufacturer">The maker, as the table writes it.</param>
/// <param name="TerahashPerSecond">Hash rate, TH/s.</param>
/// <param name="Watts">Power at the wall, W.</param>
/// <param name="JoulesPerTerahash">Efficiency as the table publishes it, J/TH (= W per TH/s; may be rounded).</param>
/// <param name="ReleaseYear">The year the model was released.</param>
/// <param name="Source">Which table the row came from (<see cref="MinerCatalog.MineforgeSource"/> or <see cref="MinerCatalog.F2PoolSource"/>).</param>
public sealed record MinerModel(
    string Id, string Name, string Manufacturer, double TerahashPerSecond, double Watts, double JoulesPerTerahash, int ReleaseYear, string Source);

/// <summary>
/// The ASIC miner models of the two data tables: the MineForge catalogue (<c>asic_miners_specs_mineforge.csv</c>,
/// S19/S21/M50/M60 generation) and, for older models it lacks, the F2Pool list of March 2020
/// (<c>asic_miners_specs_f2pool_2020-03.csv</c>).
/// </summary>
public sealed class MinerCatalog
{
    /// <summary>The <see cref="MinerModel.Source"/> of rows from the MineForge catalogue.</summary>
    public const string MineforgeSource = "MineForge catalogue";

    /// <summary>The <see cref="MinerModel.Source"/> of rows from the F2Pool miner list.</summary>
    public const string F2PoolSource = "F2Pool miner list, 2020-03";

    private const int CloseNamesListed = 5;

    private readonly List<MinerModel> _models;
    private readonly Dictionary<string, MinerModel> _byId;
    private readonly Dictionary<string, MinerModel> _byName;

    private MinerCatalog(List<MinerModel> models, Dictionary<string, MinerModel> byId, Dictionary<string, MinerModel> byName)
    {
        _models = models;
        _byId = byId;
        _byName = byName;
    }

    /// <summary>Every model: the MineForge rows in file order, then the F2Pool rows not already present by name.</summary>
    public IReadOnlyList<MinerModel> Models => _models;

    /// <summary>
    /// Reads both tables: every MineForge row first, then each F2Pool device whose name (ignoring case) is not
    /// already in the catalogue; a name repeated within the F2Pool list keeps its first (newest) row. F2Pool rows
    /// get an id made from the name (lower case, other characters replaced by <c>-</c>).
    /// </summary>
    /// <param name="mineforgePath">The MineForge table: <c>id</c>, <c>name</c>, <c>manufacturer</c>, <c>hash_rate_ths</c>, <c>power_watts</c>, <c>efficiency_jth</c>, <c>release_year</c>.</param>
    /// <param name="f2poolPath">The F2Pool table: <c>company</c>, <c>device</c>, <c>hashrate_th_s</c>, <c>power_w</c>, <c>unit_power_w_per_th</c>, <c>year_released</c>.</param>
    /// <exception cref="SeriesFormatException">A missing column, a malformed value, a non-positive hash rate, power or efficiency, or an id or name repeated in the MineForge table.</exception>
    public static MinerCatalog Load(string mineforgePath, string f2poolPath)
    {
        var models = new List<MinerModel>(140);
        var byId = new Dictionary<string, MinerModel>(StringComparer.OrdinalIgnoreCase);
        var byName = new Dictionary<string, MinerModel>(StringComparer.OrdinalIgnoreCase);

        using (CsvFile csv = CsvFile.Open(mineforgePath))
        {
            int id = csv.Column("id"), name = csv.Column("name"), maker = csv.Column("manufacturer"), ths = csv.Column("hash_rate_ths"),
                watts = csv.Column("power_watts"), jth = csv.Column("efficiency_jth"), year = csv.Column("release_year");
            while (csv.ReadRow())
            {
                MinerModel m = ReadModel(csv, csv.Text(id).Trim(), name, maker, ths, watts, jth, year, MineforgeSource);
                if (m.Id.Length == 0) throw csv.Error("'id' is empty");
                if (!byId.TryAdd(m.Id, m)) throw csv.Error($"the id '{m.Id}' appears twice");
                if (!byName.TryAdd(m.Name, m)) throw csv.Error($"the name '{m.Name}' appears twice");
                models.Add(m);
            }
        }

        using (CsvFile csv = CsvFile.Open(f2poolPath))
        {
            int company = csv.Column("company"), device = csv.Column("device"), ths = csv.Column("hashrate_th_s"),
                watts = csv.Column("power_w"), jth = csv.Column("unit_power_w_per_th"), year = csv.Column("year_released");
            while (csv.ReadRow())
            {
                string name = csv.Text(device).Trim();
                if (byName.ContainsKey(name)) continue;
                MinerModel m = ReadModel(csv, UniqueId(Slug(name), byId), device, company, ths, watts, jth, year, F2PoolSource);
                byId.Add(m.Id, m);
                byName.Add(m.Name, m);
                models.Add(m);
            }
        }
        return new MinerCatalog(models, byId, byName);
    }

    /// <summary>The model with this id or exact name (ignoring case), e.g. <c>s21</c> or <c>Antminer S21</c>.</summary>
    /// <exception cref="KeyNotFoundException">No such model; the message lists a few close names.</exception>
    public MinerModel Find(string idOrName)
    {
        if (TryFind(idOrName, out MinerModel? model)) return model;
        throw new KeyNotFoundException(
            $"No miner '{idOrName}' in the catalogue (ids and exact names are matched, ignoring case). Close names: {string.Join(", ", CloseNames(idOrName))}.");
    }

    /// <summary>Looks a model up by id or exact name (ignoring case).</summary>
    public bool TryFind(string idOrName, [NotNullWhen(true)] out MinerModel? model)
    {
        ArgumentNullException.ThrowIfNull(idOrName);
        string key = idOrName.Trim();
        return _byId.TryGetValue(key, out model) || _byName.TryGetValue(key, out model);
    }

    /// <summary>
    /// The electricity price (USD/MWh) at which a miner's revenue equals its power cost:
    /// <code>
    /// breakeven = hashprice × (1 − poolFee) / (J/TH × 24 / 10⁶ × pue)
    /// </code>
    /// where <c>hashprice × (1 − poolFee)</c> is what one TH/s earns per day after the pool's fee (USD per TH/s per
    /// day), and <c>J/TH × 24 / 10⁶</c> is the energy one TH/s uses per day in MWh (J/TH = W per TH/s; × 24 h gives
    /// Wh, / 10⁶ gives MWh), grossed up by the PUE for cooling and other site overhead. Below this price mining
    /// earns more than the power costs.
    /// </summary>
    /// <param name="m">The miner model (its published <see cref="MinerModel.JoulesPerTerahash"/> is used).</param>
    /// <param name="hashpriceUsdPerThDay">Hashprice, USD per TH/s per day (e.g. <see cref="BitcoinDaily.HashpriceUsdPerThDay"/>).</param>
    /// <param name="pue">Power usage effectiveness, ≥ 1 (total site power ÷ miner power).</param>
    /// <param name="poolFee">The pool's fee as a fraction of revenue, in [0, 1).</param>
    /// <exception cref="ArgumentOutOfRangeException">A non-finite or negative hashprice, a PUE below 1, a fee outside [0, 1), or a model whose efficiency is not positive.</exception>
    public static double BreakevenUsdPerMwh(MinerModel m, double hashpriceUsdPerThDay, double pue = 1.0, double poolFee = 0)
    {
        ArgumentNullException.ThrowIfNull(m);
        if (!double.IsFinite(hashpriceUsdPerThDay) || hashpriceUsdPerThDay < 0)
            throw new ArgumentOutOfRangeException(nameof(hashpriceUsdPerThDay), hashpriceUsdPerThDay, "The hashprice must be a finite, non-negative number.");
        if (!double.IsFinite(pue) || pue < 1)
            throw new ArgumentOutOfRangeException(nameof(pue), pue, "The PUE must be at least 1.");
        if (!(poolFee >= 0 && poolFee < 1))
            throw new ArgumentOutOfRangeException(nameof(poolFee), poolFee, "The pool fee must be a fraction in [0, 1).");
        if (!double.IsFinite(m.JoulesPerTerahash) || m.JoulesPerTerahash <= 0)
            throw new ArgumentOutOfRangeException(nameof(m), m.JoulesPerTerahash, $"'{m.Name}' has no positive efficiency (J/TH).");

        double mwhPerThDay = m.JoulesPerTerahash * 24 / 1e6;
        return hashpriceUsdPerThDay * (1 - poolFee) / (mwhPerThDay * pue);
    }

    private static MinerModel ReadModel(CsvFile csv, string id, int name, int maker, int ths, int watts, int jth, int year, string source)
    {
        string modelName = csv.Text(name).Trim();
        if (modelName.Length == 0) throw csv.Error($"'{csv.HeaderOf(name)}' is empty");
        double hashRate = Positive(csv, ths), power = Positive(csv, watts), efficiency = Positive(csv, jth);
        string yearText = csv.Text(year);
        if (!int.TryParse(yearText, NumberStyles.None, CultureInfo.InvariantCulture, out int releaseYear) || releaseYear is < 2009 or > 2100)
            throw csv.Error($"'{csv.HeaderOf(year)}' is not a year: '{yearText}'");
        return new MinerModel(id, modelName, csv.Text(maker).Trim(), hashRate, power, efficiency, releaseYear, source);
    }

    private static double Positive(CsvFile csv, int column)
    {
        double value = csv.Number(column);
        if (value <= 0) throw csv.Error($"'{csv.HeaderOf(column)}' must be positive: '{csv.Text(column)}'");
        return value;
    }

    private static string Slug(string name)
    {
        var sb = new StringBuilder(name.Length);
        foreach (char c in name)
        {
            if (char.IsAsciiLetterOrDigit(c)) sb.Append(char.ToLowerInvariant(c));
            else if (sb.Length > 0 && sb[^1] != '-') sb.Append('-');
        }
        return sb.ToString().TrimEnd('-');
    }

    private static string UniqueId(string id, Dictionary<string, MinerModel> byId)
    {
        string candidate = id;
        for (int n = 2; byId.ContainsKey(candidate); n++) candidate = $"{id}-{n}";
        return candidate;
    }

    private IEnumerable<string> CloseNames(string query)
    {
        string q = query.Trim().ToLowerInvariant();
        return _models
            .Select(m => (m.Name, Score: Closeness(q, m.Name.ToLowerInvariant())))
            .OrderBy(x => x.Score)
            .ThenBy(x => x.Name, StringComparer.Ordinal)
            .Take(CloseNamesListed)
            .Select(x => $"'{x.Name}'");
    }

    // Lower is closer: a name containing the query (or contained in it) comes first, then edit distance.
    private static int Closeness(string query, string name) =>
        (query.Length > 0 && (name.Contains(query, StringComparison.Ordinal) || query.Contains(name, StringComparison.Ordinal)) ? 0 : 1000)
        + Levenshtein(query, name);

    private static int Levenshtein(string a, string b)
    {
        var previous = new int[b.Length + 1];
        var current = new int[b.Length + 1];
        for (int j = 0; j <= b.Length; j++) previous[j] = j;
        for (int i = 1; i <= a.Length; i++)
        {
            current[0] = i;
            for (int j = 1; j <= b.Length; j++)
                current[j] = Math.Min(Math.Min(current[j - 1], previous[j]) + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
            (previous, current) = (current, previous);
        }
        return previous[b.Length];
    }
}
