using System.Text.Json;
using System.Text.Json.Serialization;

namespace ComputeGrid.Energy.Sites;

/// <summary>
/// A hybrid site, as written in a site file (JSON; see <c>examples/sites/README.md</c> for every field). Loaded with
/// <see cref="SiteConfigLoader"/>, which rejects unknown fields and names the field of every error.
/// </summary>
public sealed record SiteConfig
{
    /// <summary>A short name (letters, digits, '-', '_').</summary>
    public required string Name { get; init; }
    public string? Description { get; init; }

    /// <summary>The real-time price series the site pays.</summary>
    public required PriceSource Prices { get; init; }

    /// <summary>The grid's system load (needed by a peak charge).</summary>
    public LoadSource? SystemLoad { get; init; }

    /// <summary>The market's local time zone: <c>US-Central</c>, <c>US-Pacific</c>, <c>Asia-Tokyo</c> or <c>UTC</c>.</summary>
    public required string TimeZone { get; init; }

    /// <summary>Bitcoin data for hashprice.</summary>
    public required BitcoinSource Bitcoin { get; init; }

    /// <summary>The period to run (default: the whole price series).</summary>
    public PeriodConfig? Period { get; init; }

    /// <summary>Interconnect limit (kW): the facility load may never exceed it.</summary>
    public required double InterconnectKw { get; init; }

    /// <summary>Power usage effectiveness (≥ 1): facility load = PUE × IT load.</summary>
    public required double Pue { get; init; }

    /// <summary>AI GPU nodes (firm load).</summary>
    public GpuFleetConfig[] Gpus { get; init; } = [];

    /// <summary>
    /// The GPU nodes that run at the site, by node id (the id the exchange and inference know them by). When a live site
    /// lists nodes, its firm GPU load each interval is their measured load instead of <see cref="Gpus"/>' schedule; a
    /// backtest, which has no nodes to measure, keeps the schedule.
    /// </summary>
    public SiteNodeConfig[] Nodes { get; init; } = [];

    /// <summary>The miner fleet (interruptible load).</summary>
    public MinerFleetConfig[] Miners { get; init; } = [];

    /// <summary>Ramp limits of the miner fleet.</summary>
    public RampConfig? Ramp { get; init; }

    /// <summary>What a miner restart costs.</summary>
    public RestartConfig? Restart { get; init; }

    /// <summary>A transmission peak charge, e.g. ERCOT 4CP.</summary>
    public PeakChargeConfig? PeakCharge { get; init; }

    /// <summary>A demand-response program: grid emergencies during which the miners must stop.</summary>
    public DemandResponseConfig? DemandResponse { get; init; }

    /// <summary>Settings of the real-time controller and the baselines.</summary>
    public ControllerConfig? Controller { get; init; }
}

public sealed record PriceSource
{
    /// <summary>A file name in the repository's <c>data/</c> folder, or a path.</summary>
    public required string File { get; init; }

    /// <summary><c>eia-15min</c> (ERCOT/CAISO hub files) or <c>jepx-30min</c>.</summary>
    public required string Format { get; init; }

    /// <summary>The column, e.g. <c>West LMP</c>, <c>SP-15 LMP</c>, <c>area_price_tokyo</c>.</summary>
    public required string Column { get; init; }

    /// <summary>For prices in yen: the yen per US dollar used to convert.</summary>
    public double? JpyPerUsd { get; init; }

    /// <summary>
    /// For a day-ahead market: the local hour (0–24, fractions allowed) from which the next local day's prices are known
    /// to the controller. JEPX's spot auction closes at 10:00 JST the day before delivery and publishes its result soon
    /// after; the Tokyo example assumes 12:00. Omit for real-time prices, known only once their interval has passed.
    /// </summary>
    public double? DayAheadPublishedLocalHour { get; init; }

    /// <summary>
    /// For a real-time market that publishes each interval's binding price before the interval starts: how many minutes
    /// before (0–1,440). CAISO's fifteen-minute market (FMM, OASIS market run <c>RTPD</c>, the prices in
    /// <c>caiso_rt_lmp_zones_15min_2021.csv</c>) runs 37.5 minutes before its binding interval and publishes about 22.5
    /// minutes before it, so at an interval's start its own price and the next one's are known. Omit when the price is
    /// settled after the interval (ERCOT's 15-minute settlement point prices average the interval's 5-minute runs).
    /// </summary>
    public double? PublishedMinutesBeforeStart { get; init; }
}

public sealed record LoadSource
{
    public required string File { get; init; }
    public string Column { get; init; } = "ERCOT";
}

public sealed record BitcoinSource
{
    public required string File { get; init; }

    /// <summary>Mining pool fee, percent of mining revenue.</summary>
    public double PoolFeePercent { get; init; }
}

public sealed record PeriodConfig
{
    public required DateTime FromUtc { get; init; }
    public required DateTime ToUtc { get; init; }
}

public sealed record GpuFleetConfig
{
    /// <summary>GPU class, e.g. <c>H100</c>.</summary>
    public required string Class { get; init; }
    public required int Count { get; init; }
    public required double WattsPerGpu { get; init; }

    /// <summary>AI revenue per leased GPU-hour (USD, at most 6 decimals).</summary>
    public required decimal RevenuePerGpuHourUsd { get; init; }

    /// <summary>How many of the GPUs are leased over time.</summary>
    public required GpuDemandConfig Demand { get; init; }
}

/// <summary>One GPU node of a site.</summary>
public sealed record SiteNodeConfig
{
    /// <summary>The node's id, as admitted (1–128 characters).</summary>
    public required string Id { get; init; }

    /// <summary>
    /// The most GPUs one listed node may have: a GPU cluster of a hyperscale hall (65,536 H100s at 700 W are 46 MW); the
    /// site's interconnect is the real bound, checked against all its nodes at full power.
    /// </summary>
    public const int GpusMax = 65_536;

    /// <summary>GPUs in the node (1 … <see cref="GpusMax"/>).</summary>
    public required int Gpus { get; init; }

    /// <summary>
    /// The GPUs that serve the node's inference (1 … <see cref="Gpus"/>; null: all of them): a request running takes its
    /// share of these (requests running ÷ the node's request capacity × these), never of GPUs leased out. A hall of
    /// thousands of GPUs leased by the hour with a small inference pool beside them names the pool here, so one request
    /// is not counted as a quarter of the hall.
    /// </summary>
    public int? InferenceGpus { get; init; }

    /// <summary>Power of one busy GPU at the wall (W, before cooling).</summary>
    public required double WattsPerGpu { get; init; }

    /// <summary>
    /// Energy the node's GPUs draw for 1,000 tokens of inference (J, before cooling): the model of energy per request
    /// the router prices power with (energy per request = tokens ÷ 1,000 × this × PUE).
    /// </summary>
    public required double JoulesPer1kTokens { get; init; }
}

public sealed record GpuDemandConfig
{
    /// <summary><c>constant</c> (a fixed leased percent) or <c>seeded-leases</c> (leases that step up and down).</summary>
    public required string Kind { get; init; }

    /// <summary>For <c>constant</c>: percent of GPUs leased.</summary>
    public double? LeasedPercent { get; init; }

    /// <summary>For <c>seeded-leases</c>: the seed of the lease schedule.</summary>
    public int Seed { get; init; } = 1;
    public double MinLeasedPercent { get; init; } = 40;
    public double MaxLeasedPercent { get; init; } = 100;
    public double MinLeaseDays { get; init; } = 3;
    public double MaxLeaseDays { get; init; } = 21;
}

public sealed record MinerFleetConfig
{
    /// <summary>The model's id or name in the miner tables (e.g. <c>Antminer S21</c>).</summary>
    public required string Model { get; init; }
    public required int Count { get; init; }
}

public sealed record RampConfig
{
    /// <summary>Largest increase of the miner fleet's IT power per interval (kW); absent = unlimited.</summary>
    public double? UpKwPerInterval { get; init; }

    /// <summary>Largest decrease per interval (kW); absent = unlimited (curtailment is immediate).</summary>
    public double? DownKwPerInterval { get; init; }
}

public sealed record RestartConfig
{
    /// <summary>Minutes a restarted miner draws power without hashing.</summary>
    public double DowntimeMinutes { get; init; } = 10;

    /// <summary>Wear cost per restart (USD).</summary>
    public decimal WearCostUsd { get; init; }
}

public sealed record PeakChargeConfig
{
    /// <summary><c>ercot-4cp</c>: the site's load in the hour of the system's monthly peak, in each listed month.</summary>
    public required string Kind { get; init; }
    public required int[] Months { get; init; }

    /// <summary>Charge per kW of average peak-hour load, per year (USD).</summary>
    public required decimal UsdPerKwYear { get; init; }
}

public sealed record DemandResponseConfig
{
    /// <summary>Declared grid emergencies (UTC): miners stop for their whole duration.</summary>
    public EmergencyWindow[] Emergencies { get; init; } = [];
}

public sealed record EmergencyWindow
{
    public required DateTime FromUtc { get; init; }
    public required DateTime ToUtc { get; init; }
    public string? Reason { get; init; }
}

/// <summary>Tuning of the real-time controller and the fixed-threshold baseline (defaults documented in the README).</summary>
public sealed record ControllerConfig
{
    /// <summary>Fixed-threshold baseline: miners run while the last price is below this (USD/MWh).</summary>
    public double FixedThresholdUsdPerMwh { get; init; } = 100;

    /// <summary>Peak-charge guard: curtail when the forecast hour's system load reaches this fraction of the reference peak.</summary>
    public double PeakGuardFraction { get; init; } = 0.99;

    /// <summary>The reference peak is the larger of the month-to-date maximum and this fraction of the last 30 days' maximum.</summary>
    public double PeakGuardPriorFraction { get; init; } = 0.98;

    /// <summary>First local hour (interval start, 0–23) in which the peak guard may act.</summary>
    public int PeakGuardFirstHour { get; init; } = 15;

    /// <summary>Last local hour (interval start, 0–23) in which the peak guard may act.</summary>
    public int PeakGuardLastHour { get; init; } = 17;

    /// <summary>A stopped miner restarts only if its expected margin over this many hours pays for the restart.</summary>
    public double RestartPaybackHours { get; init; } = 12;

    /// <summary>Predictive controller: hours planned ahead at each interval (1–48; a day-ahead market plans to the end of its published prices).</summary>
    public int HorizonHours { get; init; } = 24;

    /// <summary>Predictive controller: days in the price forecast's seasonal median (1–60).</summary>
    public int SeasonalDays { get; init; } = 7;

    /// <summary>Predictive controller: the share of the last 30 days' maximum system load a peak-charge month's peak is assumed to reach.</summary>
    public double PeakPriorFraction { get; init; } = 0.97;

    /// <summary>Predictive controller: the floor of the hour-ahead system-load forecast's relative error.</summary>
    public double PeakMinRelativeError { get; init; } = 0.01;

    /// <summary>Predictive controller: the weight of the month's remaining days in the chance that a later day beats an hour (0 ignores them, 1 counts each).</summary>
    public double PeakRemainingDaysWeight { get; init; } = 8;

    /// <summary>
    /// Predictive controller: how strongly an hour's chance of being its day's peak follows how often that local hour
    /// peaked over the last 30 days (0 ignores it; 1 scales by its frequency relative to the most frequent hour).
    /// </summary>
    public double PeakHourPriorExponent { get; init; } = 6;
}

/// <summary>A site file that cannot be used: <see cref="Field"/> names the offending field (JSON path).</summary>
public sealed class SiteConfigException(string field, string message)
    : Exception($"{field}: {message}")
{
    public string Field { get; } = field;
}

/// <summary>Reads and validates site files.</summary>
public static class SiteConfigLoader
{
    private static readonly JsonSerializerOptions Options = new(JsonSerializerDefaults.Web)
    {
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        RespectNullableAnnotations = true,
        RespectRequiredConstructorParameters = true,
        ReadCommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
        NumberHandling = JsonNumberHandling.Strict,
    };

    /// <summary>Reads a site file (JSON) and validates it.</summary>
    /// <exception cref="SiteConfigException">The file is not valid JSON, has an unknown field, or a field's value is invalid.</exception>
    public static SiteConfig Load(string path)
    {
        string text;
        try { text = File.ReadAllText(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new SiteConfigException("(file)", $"cannot read '{path}': {e.Message}");
        }
        return Parse(text);
    }

    /// <summary>Parses and validates site JSON.</summary>
    public static SiteConfig Parse(string json)
    {
        SiteConfig? config;
        try
        {
            config = JsonSerializer.Deserialize<SiteConfig>(json, Options);
        }
        catch (JsonException e)
        {
            string field = string.IsNullOrEmpty(e.Path) || e.Path == "$" ? "(site)" : e.Path.TrimStart('$', '.');
            string message = e.Message;
            int cut = message.IndexOf(" Path:", StringComparison.Ordinal);
            if (cut > 0) message = message[..cut];
            // Where the reader stopped, 1-based as editors count (the reader's positions are 0-based), so a stray comma
            // in a long file is found without bisecting it.
            if (e.LineNumber is { } line) message = $"{message.TrimEnd('.')} (line {line + 1}, column {(e.BytePositionInLine ?? 0) + 1}).";
            throw new SiteConfigException(field, message);
        }
        if (config is null) throw new SiteConfigException("(site)", "the file holds null, not a site.");
        Validate(config);
        return config;
    }

    /// <summary>Checks every field's value; throws for the first bad one.</summary>
    public static void Validate(SiteConfig c)
    {
        if (string.IsNullOrWhiteSpace(c.Name) || !c.Name.All(ch => char.IsAsciiLetterOrDigit(ch) || ch is '-' or '_'))
            Fail("name", "must be non-empty and use only letters, digits, '-' and '_'.");
        if (c.Prices.Format is not ("eia-15min" or "jepx-30min")) Fail("prices.format", $"'{c.Prices.Format}' is not a known format (eia-15min, jepx-30min).");
        if (string.IsNullOrWhiteSpace(c.Prices.File)) Fail("prices.file", "is required.");
        if (string.IsNullOrWhiteSpace(c.Prices.Column)) Fail("prices.column", "is required.");
        if (c.Prices.DayAheadPublishedLocalHour is { } published && !(published >= 0 && published <= 24))
            Fail("prices.dayAheadPublishedLocalHour", "must be a local hour within [0, 24].");
        if (c.Prices.PublishedMinutesBeforeStart is { } ahead && !(ahead >= 0 && ahead <= 24 * 60))
            Fail("prices.publishedMinutesBeforeStart", "must be minutes within [0, 1440].");
        if (c.Prices.Format == "jepx-30min" && c.Prices.JpyPerUsd is not (> 0 and < 10_000))
            Fail("prices.jpyPerUsd", "is required for yen prices and must be positive.");
        if (Series.MarketTimeZone.Find(c.TimeZone) is null)
            Fail("timeZone", $"'{c.TimeZone}' is not one of {string.Join(", ", Series.MarketTimeZone.All.Select(z => z.Id))}.");
        if (c.Bitcoin.PoolFeePercent is < 0 or >= 100 || double.IsNaN(c.Bitcoin.PoolFeePercent)) Fail("bitcoin.poolFeePercent", "must be in [0, 100).");
        if (c.Period is { } period)
        {
            if (period.FromUtc.Kind == DateTimeKind.Local || period.ToUtc.Kind == DateTimeKind.Local)
                Fail("period", "times must be UTC (end them with 'Z').");
            if (period.ToUtc <= period.FromUtc) Fail("period.toUtc", "must be after period.fromUtc (the period is empty).");
        }
        if (!(c.InterconnectKw > 0) || double.IsInfinity(c.InterconnectKw)) Fail("interconnectKw", "must be a positive number of kW.");
        if (!(c.Pue >= 1.0 && c.Pue <= 3.0)) Fail("pue", "must be between 1.0 and 3.0.");
        if (c.Gpus.Length == 0 && c.Miners.Length == 0 && c.Nodes.Length == 0) Fail("miners", "a site needs GPUs, nodes or miners.");
        for (int i = 0; i < c.Gpus.Length; i++)
        {
            GpuFleetConfig g = c.Gpus[i];
            string f = $"gpus[{i}]";
            if (string.IsNullOrWhiteSpace(g.Class)) Fail($"{f}.class", "is required.");
            if (g.Count <= 0) Fail($"{f}.count", "must be positive.");
            if (!(g.WattsPerGpu > 0 && g.WattsPerGpu <= 5_000)) Fail($"{f}.wattsPerGpu", "must be in (0, 5000] W.");
            if (g.RevenuePerGpuHourUsd < 0 || g.RevenuePerGpuHourUsd > 1_000 || decimal.Round(g.RevenuePerGpuHourUsd, 6) != g.RevenuePerGpuHourUsd)
                Fail($"{f}.revenuePerGpuHourUsd", "must be between 0 and 1000 USD with at most 6 decimals.");
            switch (g.Demand.Kind)
            {
                case "constant":
                    if (g.Demand.LeasedPercent is not (>= 0 and <= 100)) Fail($"{f}.demand.leasedPercent", "must be in [0, 100] for a constant demand.");
                    break;
                case "seeded-leases":
                    if (!(g.Demand.MinLeasedPercent >= 0 && g.Demand.MinLeasedPercent <= g.Demand.MaxLeasedPercent && g.Demand.MaxLeasedPercent <= 100))
                        Fail($"{f}.demand.minLeasedPercent", "must satisfy 0 ≤ minLeasedPercent ≤ maxLeasedPercent ≤ 100.");
                    if (!(g.Demand.MinLeaseDays > 0 && g.Demand.MinLeaseDays <= g.Demand.MaxLeaseDays && g.Demand.MaxLeaseDays <= 366))
                        Fail($"{f}.demand.minLeaseDays", "must satisfy 0 < minLeaseDays ≤ maxLeaseDays ≤ 366.");
                    break;
                default:
                    Fail($"{f}.demand.kind", $"'{g.Demand.Kind}' is not a known demand (constant, seeded-leases).");
                    break;
            }
        }
        for (int i = 0; i < c.Miners.Length; i++)
        {
            if (string.IsNullOrWhiteSpace(c.Miners[i].Model)) Fail($"miners[{i}].model", "is required.");
            if (c.Miners[i].Count <= 0) Fail($"miners[{i}].count", "must be positive.");
        }
        var nodeIds = new HashSet<string>(StringComparer.Ordinal);
        for (int i = 0; i < c.Nodes.Length; i++)
        {
            SiteNodeConfig n = c.Nodes[i];
            string f = $"nodes[{i}]";
            if (string.IsNullOrEmpty(n.Id) || n.Id.Length > 128) Fail($"{f}.id", "must be 1 to 128 characters.");
            if (!nodeIds.Add(n.Id)) Fail($"{f}.id", $"'{n.Id}' is listed twice.");
            if (n.Gpus < 1 || n.Gpus > SiteNodeConfig.GpusMax) Fail($"{f}.gpus", $"must be 1 to {SiteNodeConfig.GpusMax}.");
            if (n.InferenceGpus is { } inference && (inference < 1 || inference > n.Gpus)) Fail($"{f}.inferenceGpus", $"must be 1 to the node's {n.Gpus} GPUs.");
            if (!(n.WattsPerGpu > 0 && n.WattsPerGpu <= 5_000)) Fail($"{f}.wattsPerGpu", "must be in (0, 5000] W.");
            if (!(n.JoulesPer1kTokens >= 0 && n.JoulesPer1kTokens <= 1_000_000)) Fail($"{f}.joulesPer1kTokens", "must be in [0, 1000000] J.");
        }
        // Listed nodes replace the GPU schedule as the firm load: whichever can draw more must fit the interconnect.
        double aiFullKw = c.Pue * Math.Max(c.Gpus.Sum(g => g.Count * g.WattsPerGpu / 1000.0), c.Nodes.Sum(n => n.Gpus * n.WattsPerGpu / 1000.0));
        if (aiFullKw > c.InterconnectKw)
            Fail("gpus", $"the firm AI load alone ({aiFullKw:0.#} kW with PUE {c.Pue}) exceeds interconnectKw ({c.InterconnectKw:0.#} kW); it could not be served.");
        if (c.Ramp is { } ramp)
        {
            if (ramp.UpKwPerInterval is { } up && !(up > 0)) Fail("ramp.upKwPerInterval", "must be positive (or absent for unlimited).");
            if (ramp.DownKwPerInterval is { } down && !(down > 0)) Fail("ramp.downKwPerInterval", "must be positive (or absent for unlimited).");
        }
        if (c.Restart is { } restart)
        {
            if (!(restart.DowntimeMinutes >= 0 && restart.DowntimeMinutes <= 120)) Fail("restart.downtimeMinutes", "must be in [0, 120].");
            if (restart.WearCostUsd < 0 || restart.WearCostUsd > 10_000) Fail("restart.wearCostUsd", "must be in [0, 10000] USD.");
        }
        if (c.PeakCharge is { } pc)
        {
            if (pc.Kind != "ercot-4cp") Fail("peakCharge.kind", $"'{pc.Kind}' is not a known peak charge (ercot-4cp).");
            if (pc.Months.Length == 0 || pc.Months.Any(m => m is < 1 or > 12) || pc.Months.Distinct().Count() != pc.Months.Length)
                Fail("peakCharge.months", "must list distinct months 1–12.");
            if (pc.UsdPerKwYear < 0 || pc.UsdPerKwYear > 10_000) Fail("peakCharge.usdPerKwYear", "must be in [0, 10000].");
            if (c.SystemLoad is null) Fail("systemLoad", "is required by a peak charge (the peaks come from the system load).");
        }
        if (c.DemandResponse is { } dr)
        {
            for (int i = 0; i < dr.Emergencies.Length; i++)
                if (dr.Emergencies[i].ToUtc <= dr.Emergencies[i].FromUtc) Fail($"demandResponse.emergencies[{i}].toUtc", "must be after fromUtc.");
        }
        if (c.Controller is { } k)
        {
            if (!(k.PeakGuardFraction > 0 && k.PeakGuardFraction <= 1.5)) Fail("controller.peakGuardFraction", "must be in (0, 1.5].");
            if (!(k.PeakGuardPriorFraction >= 0 && k.PeakGuardPriorFraction <= 1.5)) Fail("controller.peakGuardPriorFraction", "must be in [0, 1.5].");
            if (k.PeakGuardFirstHour is < 0 or > 23 || k.PeakGuardLastHour is < 0 or > 23 || k.PeakGuardLastHour < k.PeakGuardFirstHour)
                Fail("controller.peakGuardFirstHour", "hours must be 0–23 with first ≤ last.");
            if (!(k.RestartPaybackHours >= 0 && k.RestartPaybackHours <= 48)) Fail("controller.restartPaybackHours", "must be in [0, 48].");
            if (k.HorizonHours is < 1 or > 48) Fail("controller.horizonHours", "must be 1–48.");
            if (k.SeasonalDays is < 1 or > 60) Fail("controller.seasonalDays", "must be 1–60.");
            if (!(k.PeakPriorFraction >= 0 && k.PeakPriorFraction <= 1.5)) Fail("controller.peakPriorFraction", "must be in [0, 1.5].");
            if (!(k.PeakMinRelativeError > 0 && k.PeakMinRelativeError <= 1)) Fail("controller.peakMinRelativeError", "must be in (0, 1].");
            if (!(k.PeakRemainingDaysWeight >= 0 && k.PeakRemainingDaysWeight <= 10)) Fail("controller.peakRemainingDaysWeight", "must be in [0, 10].");
            if (!(k.PeakHourPriorExponent >= 0 && k.PeakHourPriorExponent <= 10)) Fail("controller.peakHourPriorExponent", "must be in [0, 10].");
        }
    }

    private static void Fail(string field, string message) => throw new SiteConfigException(field, message);
}
