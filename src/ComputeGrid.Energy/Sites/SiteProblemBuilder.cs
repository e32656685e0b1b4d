using ComputeGrid.Core;
using ComputeGrid.Energy.Dispatch;
using ComputeGrid.Energy.Series;

namespace ComputeGrid.Energy.Sites;

/// <summary>A site resolved against its data: the dispatch problem plus what was loaded and repaired to build it.</summary>
public sealed class BuiltSite
{
    public required SiteConfig Config { get; init; }
    public required SiteProblem Problem { get; init; }
    public required MarketTimeZone TimeZone { get; init; }

    /// <summary>The catalogue model of each miner group (same order as <see cref="SiteProblem.Groups"/>).</summary>
    public required MinerModel[] Models { get; init; }

    /// <summary>Each series used, with what its loader repaired.</summary>
    public required IReadOnlyList<IntervalSeries> Series { get; init; }

    /// <summary>The system-peak hours that set the peak charge (UTC start of each hour), one per charged month in the period.</summary>
    public required IReadOnlyList<DateTime> PeakHoursUtc { get; init; }

    /// <summary>Leased GPUs in each interval.</summary>
    public required int[] LeasedGpus { get; init; }

    /// <summary>The daily Bitcoin series the hashprice came from (its price converts mining revenue to satoshis in the ledger).</summary>
    public BitcoinSeries? Bitcoin { get; init; }
}

/// <summary>
/// Turns a <see cref="SiteConfig"/> and the real series it names into a <see cref="SiteProblem"/>: one price,
/// hashprice, AI load, system load, emergency flag and peak-charge weight per 15-minute interval.
/// </summary>
public static class SiteProblemBuilder
{
    /// <summary>Builds the site's problem over its period.</summary>
    /// <param name="config">A validated site configuration.</param>
    /// <param name="baseDirectory">Where relative data paths are resolved (the site file's folder); bare file names are looked up in the repository's <c>data/</c>.</param>
    /// <exception cref="SiteConfigException">A named file or model cannot be used, or the period holds no data.</exception>
    public static BuiltSite Build(SiteConfig config, string? baseDirectory = null)
    {
        SiteConfigLoader.Validate(config);
        MarketTimeZone zone = MarketTimeZone.Find(config.TimeZone)!;
        DateTime? from = config.Period?.FromUtc is { } f ? DateTime.SpecifyKind(f, DateTimeKind.Utc) : null;
        DateTime? to = config.Period?.ToUtc is { } t0 ? DateTime.SpecifyKind(t0, DateTimeKind.Utc) : null;

        IntervalSeries prices = Guard("prices", () => config.Prices.Format == "eia-15min"
            ? PriceSeriesLoader.LoadEia15Min(Resolve(config.Prices.File, baseDirectory, "prices.file"), config.Prices.Column, from, to)
            : PriceSeriesLoader.LoadJepx30Min(Resolve(config.Prices.File, baseDirectory, "prices.file"), config.Prices.Column, config.Prices.JpyPerUsd!.Value, from, to));
        if (prices.Step != TimeSpan.FromMinutes(15))
            throw new SiteConfigException("prices", $"the price series has {prices.Step.TotalMinutes}-minute intervals; 15 are required.");
        int n = prices.Count;
        if (n == 0) throw new SiteConfigException("period", "the period holds no price intervals.");
        var series = new List<IntervalSeries> { prices };

        BitcoinSeries btc = Guard("bitcoin", () => BitcoinSeries.Load(Resolve(config.Bitcoin.File, baseDirectory, "bitcoin.file")));
        var hashprice = new double[n];
        var knownHashprice = new double[n];
        DateOnly firstBtc = btc.Days[0].Date, lastBtc = btc.Days[^1].Date;
        for (int t = 0; t < n; t++)
        {
            DateTime start = prices.StartUtc + prices.Step * t;
            var day = DateOnly.FromDateTime(start);
            if (day < firstBtc || day > lastBtc)
                throw new SiteConfigException("bitcoin.file", $"has no day {day:yyyy-MM-dd} (it covers {firstBtc:yyyy-MM-dd} to {lastBtc:yyyy-MM-dd}).");
            hashprice[t] = btc.Hashprice(day);
            DateOnly yesterday = day.AddDays(-1);
            knownHashprice[t] = yesterday >= firstBtc ? btc.Hashprice(yesterday) : hashprice[t];
        }

        var systemLoad = new double[n];
        Array.Fill(systemLoad, double.NaN);
        IntervalSeries? loadSeries = null;
        if (config.SystemLoad is { } ls)
        {
            IntervalSeries load = loadSeries = Guard("systemLoad", () => SystemLoadLoader.LoadErcotNativeLoadHourly(Resolve(ls.File, baseDirectory, "systemLoad.file"), ls.Column));
            series.Add(load);
            for (int t = 0; t < n; t++)
            {
                int k = load.IndexOf(prices.StartUtc + prices.Step * t);
                if (k >= 0) systemLoad[t] = load.Values[k];
            }
        }

        var offsets = new sbyte[n];
        for (int t = 0; t < n; t++) offsets[t] = (sbyte)zone.OffsetHours(prices.StartUtc + prices.Step * t);

        // Peak charge: in each charged month, the hour with the highest system load; its intervals carry the charge.
        var peakWeight = new double[n];
        var peakHours = new List<DateTime>();
        int[] months = config.PeakCharge?.Months ?? [];
        double usdPerKwYear = (double)(config.PeakCharge?.UsdPerKwYear ?? 0m);
        if (months.Length > 0 && loadSeries is { } loadAll)
        {
            // The peak of a month is the month's, whatever the run's period: it is taken over the whole calendar month
            // (market local time) of the load series, and only its intervals inside the period carry the charge. So a
            // week run charges exactly what the same dates of a year run charge (and no week invents a peak of its own).
            int perHour = 60 / 15;
            DateTime periodStart = prices.StartUtc, periodEnd = prices.StartUtc + prices.Step * n;
            var best = new Dictionary<(int Year, int Month), (DateTime Hour, double Load)>();
            for (int k = 0; k < loadAll.Count; k++)
            {
                double v = loadAll.Values[k];
                if (double.IsNaN(v)) continue;
                DateTime at = loadAll.StartUtc + loadAll.Step * k;
                DateTime local = zone.ToLocal(at);
                if (!months.Contains(local.Month)) continue;
                if (!best.TryGetValue((local.Year, local.Month), out var b) || v > b.Load) best[(local.Year, local.Month)] = (at, v);
            }
            foreach (var (_, (at, _)) in best.OrderBy(kv => kv.Value.Hour))
            {
                DateTime hourStart = new(at.Year, at.Month, at.Day, at.Hour, 0, 0, DateTimeKind.Utc);
                if (hourStart.AddHours(1) <= periodStart || hourStart >= periodEnd) continue;
                peakHours.Add(hourStart);
                for (int q = 0; q < perHour; q++)
                {
                    int i = prices.IndexOf(hourStart.AddMinutes(15 * q));
                    if (i >= 0) peakWeight[i] = usdPerKwYear / months.Length / perHour;
                }
            }
        }

        var emergency = new bool[n];
        foreach (EmergencyWindow w in config.DemandResponse?.Emergencies ?? [])
            for (int t = 0; t < n; t++)
            {
                DateTime s = prices.StartUtc + prices.Step * t;
                if (s < w.ToUtc.ToUniversalTime() && s + prices.Step > w.FromUtc.ToUniversalTime()) emergency[t] = true;
            }

        // AI load: leased GPUs per interval (firm).
        var leased = new int[n];
        var aiKw = new double[n];
        var aiRevenue = new double[n];
        double hours = 0.25;
        foreach (GpuFleetConfig g in config.Gpus)
        {
            int[] count = LeaseSchedule(g, prices.StartUtc, n, perDay: 96);
            for (int t = 0; t < n; t++)
            {
                leased[t] += count[t];
                aiKw[t] += count[t] * g.WattsPerGpu / 1000.0;
                aiRevenue[t] += count[t] * (double)g.RevenuePerGpuHourUsd * hours;
            }
        }

        MinerCatalog catalog = Guard("miners", () => MinerCatalog.Load(
            Resolve("asic_miners_specs_mineforge.csv", null, "miners"), Resolve("asic_miners_specs_f2pool_2020-03.csv", null, "miners")));
        var models = new List<(MinerModel Model, int Count)>();
        for (int i = 0; i < config.Miners.Length; i++)
        {
            if (!catalog.TryFind(config.Miners[i].Model, out MinerModel? m))
                throw new SiteConfigException($"miners[{i}].model", $"'{config.Miners[i].Model}' is not in the miner tables (e.g. 'Antminer S21', 'Antminer S19 XP').");
            models.Add((m, config.Miners[i].Count));
        }
        models.Sort((a, b) => a.Model.JoulesPerTerahash.CompareTo(b.Model.JoulesPerTerahash));
        MinerGroup[] groups = models.Select(x => new MinerGroup(x.Model.Name, x.Count, x.Model.Watts, x.Model.TerahashPerSecond)).ToArray();

        var initial = new int[groups.Length];
        double headroom = Math.Max(0, config.InterconnectKw / config.Pue - aiKw[0]);
        for (int g = 0; g < groups.Length; g++)
        {
            initial[g] = Math.Min(groups[g].Count, (int)Math.Floor(headroom * 1000.0 / groups[g].WattsEach + 1e-9));
            headroom -= initial[g] * groups[g].WattsEach / 1000.0;
        }

        var problem = new SiteProblem
        {
            Name = config.Name,
            StartUtc = prices.StartUtc,
            IntervalMinutes = 15,
            PriceUsdPerMwh = prices.Values,
            HashpriceUsdPerThDay = hashprice,
            KnownHashpriceUsdPerThDay = knownHashprice,
            AiItKw = aiKw,
            AiRevenueUsd = aiRevenue,
            SystemLoadMw = systemLoad,
            Emergency = emergency,
            PeakChargeUsdPerKw = peakWeight,
            PeakChargeMonths = months,
            PeakChargeUsdPerKwYear = usdPerKwYear,
            LocalUtcOffsetHours = offsets,
            InterconnectKw = config.InterconnectKw,
            Pue = config.Pue,
            Groups = groups,
            RampUpKwPerInterval = config.Ramp?.UpKwPerInterval ?? double.PositiveInfinity,
            RampDownKwPerInterval = config.Ramp?.DownKwPerInterval ?? double.PositiveInfinity,
            RestartMinutes = config.Restart?.DowntimeMinutes ?? 0,
            RestartWearUsd = (double)(config.Restart?.WearCostUsd ?? 0m),
            PoolFeeFraction = config.Bitcoin.PoolFeePercent / 100.0,
            InitialRunning = initial,
            DayAheadPublishedLocalHour = config.Prices.DayAheadPublishedLocalHour,
            PricePublishedMinutesBeforeStart = config.Prices.PublishedMinutesBeforeStart,
        };
        return new BuiltSite
        {
            Config = config,
            Problem = problem,
            TimeZone = zone,
            Models = models.Select(x => x.Model).ToArray(),
            Series = series,
            PeakHoursUtc = peakHours,
            LeasedGpus = leased,
            Bitcoin = btc,
        };
    }

    /// <summary>The moment the seeded lease schedule starts from: every run, whatever its period, walks the same schedule from here.</summary>
    public static readonly DateTime LeaseEpochUtc = new(2000, 1, 1, 0, 0, 0, DateTimeKind.Utc);

    /// <summary>
    /// Leased GPUs per interval from <paramref name="startUtc"/>. <c>constant</c>: a fixed share. <c>seeded-leases</c>: the
    /// leased share steps to a new uniformly drawn level at the start of each lease period (whole hours, min–max days long),
    /// from the seed. The periods are laid from <see cref="LeaseEpochUtc"/>, not from the run's start, so the schedule is a
    /// function of absolute time: a week run sees exactly the leases of the same week inside a year run.
    /// </summary>
    public static int[] LeaseSchedule(GpuFleetConfig g, DateTime startUtc, int intervals, int perDay)
    {
        var count = new int[intervals];
        if (g.Demand.Kind == "constant")
        {
            Array.Fill(count, (int)Math.Round(g.Count * g.Demand.LeasedPercent!.Value / 100.0));
            return count;
        }
        DateTime start = startUtc.ToUniversalTime();
        if (start < LeaseEpochUtc) throw new SiteConfigException("gpus.demand", $"a seeded lease schedule starts at {LeaseEpochUtc:yyyy-MM-dd}; the period starts before it ({start:yyyy-MM-dd}).");
        long intervalTicks = TimeSpan.TicksPerDay / perDay;
        long first = (start - LeaseEpochUtc).Ticks / intervalTicks; // the run's first interval, counted from the epoch
        long end = first + intervals;
        var random = new Random(g.Demand.Seed);
        int perHour = perDay / 24;
        long periodStart = 0;
        while (periodStart < end)
        {
            double share = (g.Demand.MinLeasedPercent + random.NextDouble() * (g.Demand.MaxLeasedPercent - g.Demand.MinLeasedPercent)) / 100.0;
            double days = g.Demand.MinLeaseDays + random.NextDouble() * (g.Demand.MaxLeaseDays - g.Demand.MinLeaseDays);
            int length = Math.Max(perHour, (int)Math.Round(days * 24) * perHour);
            int leasedGpus = (int)Math.Round(g.Count * share);
            long periodEnd = periodStart + length;
            for (long i = Math.Max(periodStart, first); i < Math.Min(periodEnd, end); i++) count[i - first] = leasedGpus;
            periodStart = periodEnd;
        }
        return count;
    }

    /// <summary>
    /// Resolves a data file: a bare name is looked up with <see cref="DataFiles.Find(string)"/> (the data root when one
    /// is set, else the repository's or the published binary's <c>data/</c>); a path is taken relative to the site file.
    /// </summary>
    public static string Resolve(string file, string? baseDirectory, string field)
    {
        if (Path.GetFileName(file) == file && (baseDirectory is null || !File.Exists(Path.Combine(baseDirectory, file))))
        {
            // The message names where it looked: with --data-root that is the one folder searched, not the repository.
            try { return DataFiles.Find(file); }
            catch (FileNotFoundException) when (DataFiles.Root is { } root) { throw new SiteConfigException(field, $"'{file}' is not in the data root '{root}'."); }
            catch (FileNotFoundException) { throw new SiteConfigException(field, $"'{file}' is not in the data/ folder (the repository's, or the one beside a published binary)."); }
            catch (DirectoryNotFoundException e) { throw new SiteConfigException(field, e.Message); }
        }
        string path = Path.IsPathRooted(file) ? file : Path.GetFullPath(Path.Combine(baseDirectory ?? Directory.GetCurrentDirectory(), file));
        if (!File.Exists(path)) throw new SiteConfigException(field, $"'{path}' does not exist.");
        return path;
    }

    private static T Guard<T>(string field, Func<T> load)
    {
        try { return load(); }
        catch (SeriesFormatException e) { throw new SiteConfigException(field, e.Message); }
        catch (KeyNotFoundException e) { throw new SiteConfigException(field, e.Message); }
        catch (ArgumentException e) { throw new SiteConfigException(field, e.Message); }
    }
}
