using ComputeGrid.Energy.Dispatch;
using ComputeGrid.Energy.Sites;
using ComputeGrid.Inference.Routing;

namespace ComputeGrid.Simulation.Fleet;

/// <summary>The settings of the benchmark fleet (<see cref="FleetScenarioBuilder"/>).</summary>
public sealed record FleetOptions
{
    /// <summary>The seed of the demand and of the request order.</summary>
    public int Seed { get; init; } = 1;

    /// <summary>Days in the horizon (1 … 366).</summary>
    public int Days { get; init; } = 7;

    /// <summary>The horizon's first day (UTC midnight) as month and day of the year, the same in every site's year.</summary>
    public int StartMonth { get; init; } = 8;

    /// <summary>The horizon's first day of <see cref="StartMonth"/>.</summary>
    public int StartDay { get; init; } = 20;

    /// <summary>Inference nodes per site.</summary>
    public int NodesPerSite { get; init; } = 8;

    /// <summary>GPUs of each site that serve flexible inference (beside its leased GPUs).</summary>
    public int InferenceGpusPerSite { get; init; } = 8_192;

    /// <summary>GPUs busy for one unit (one 8-GPU server for one interval).</summary>
    public int GpusPerUnit { get; init; } = 8;

    /// <summary>The latency bound of a tight request, ms.</summary>
    public int TightBoundMs { get; init; } = 150;

    /// <summary>The latency bound of a loose request, ms.</summary>
    public int LooseBoundMs { get; init; } = 300;

    /// <summary>A region's demand at its daily peak, as a share of the fleet's capacity divided by the number of regions (before its seeded weight).</summary>
    public double PeakDemandShare { get; init; } = 0.8;
}

/// <summary>
/// Builds the benchmark fleet from the repository's three example sites (ERCOT West 2021, CAISO SP-15 2021, JEPX Tokyo
/// 2023: <c>examples/sites/</c>, real prices, hashprice, 4CP, leases, miners) and seeded customers in every region of
/// the latency data.
/// </summary>
/// <remarks>
/// <para><b>Alignment.</b> The sites' years differ; each site's horizon starts at the same UTC month, day and hour of its own
/// year, so interval <c>t</c> is the same hour of the year at every site (and each keeps its own year's hashprice).</para>
/// <para><b>History.</b> Each site keeps its year's data from its first interval to the horizon's end
/// (<see cref="FleetSite.History"/>): its controller runs through it before the fleet starts.</para>
/// <para><b>Regions.</b> ERCOT West and CAISO SP-15 sit in <c>dallas</c>, JEPX Tokyo in <c>tokyo</c>: the latency data
/// (IBM Cloud) has no region west of Dallas in North America, so Dallas is the nearest for Los Angeles too.</para>
/// <para><b>Demand.</b> Every region of the matrix has customers. Region <c>r</c> gets a seeded weight <c>w ∈ [0.5, 1.5]</c>
/// and tight share <c>τ ∈ [0.3, 0.7]</c>; in each interval it asks for
/// <c>peak × w × (0.25 + 0.75·exp(−((h − 14)/4.5)²)) × weekday × (1 + 0.1·u)</c> units (rounded), where <c>h</c> is the
/// local hour of day (the region's standard UTC offset, no daylight saving), <c>weekday</c> is 0.8 on local Saturdays and
/// Sundays, 1 otherwise, and <c>u</c> is uniform in [−1, 1]; a share <c>τ</c> of them (rounded) has the tight bound, the
/// rest the loose one.</para>
/// </remarks>
public static class FleetScenarioBuilder
{
    /// <summary>The three markets, in fleet order, and the region each site sits in.</summary>
    public static IReadOnlyList<(string Site, string Region)> Sites { get; } =
        [(SiteExamples.Reference, "dallas"), ("caiso-sp15", "dallas"), ("jepx-tokyo", "tokyo")];

    // Standard UTC offsets (minutes) of the latency data's regions.
    private static readonly Dictionary<string, int> UtcOffsetMinutes = new(StringComparer.Ordinal)
    {
        ["dallas"] = -360, ["toronto"] = -300, ["washington-dc"] = -300, ["frankfurt"] = 60, ["london"] = 0, ["madrid"] = 60,
        ["montreal"] = -300, ["chennai"] = 330, ["mumbai"] = 330, ["osaka"] = 540, ["sydney"] = 600, ["tokyo"] = 540, ["sao-paulo"] = -180,
    };

    /// <summary>Builds the fleet for <paramref name="options"/>.</summary>
    /// <exception cref="ArgumentException">An option is out of range, or the horizon leaves a site's year.</exception>
    public static FleetScenario Build(FleetOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.Days is < 1 or > 366) throw new ArgumentException("Days must be 1 … 366.", nameof(options));
        if (options.NodesPerSite < 1 || options.GpusPerUnit < 1 || options.InferenceGpusPerSite < options.NodesPerSite * options.GpusPerUnit)
            throw new ArgumentException("Each node needs at least one unit of GPUs.", nameof(options));
        LatencyMatrix matrix = LatencyMatrix.LoadDefault();
        var sites = new FleetSite[Sites.Count];
        double unitItKw = 0, unitRevenueUsd = 0;
        for (int i = 0; i < sites.Length; i++)
        {
            BuiltSite built = SiteProblemBuilder.Build(SiteExamples.Load(Sites[i].Site));
            SiteProblem year = built.Problem;
            // The site's year: the one its first local day belongs to (a UTC start on 31 December belongs to the next).
            int y = year.StartUtc.AddHours(12).Year;
            var from = new DateTime(y, options.StartMonth, options.StartDay, 0, 0, 0, DateTimeKind.Utc);
            int first = (int)((from - year.StartUtc).TotalMinutes / year.IntervalMinutes);
            int count = options.Days * 24 * 60 / year.IntervalMinutes;
            if (first < 0 || first + count > year.Count)
                throw new ArgumentException($"The horizon {from:yyyy-MM-dd} + {options.Days} days leaves {built.Config.Name}'s data.", nameof(options));
            var gpu = built.Config.Gpus[0];
            unitItKw = options.GpusPerUnit * gpu.WattsPerGpu / 1000.0;
            unitRevenueUsd = options.GpusPerUnit * (double)gpu.RevenuePerGpuHourUsd * year.IntervalHours;
            int perNode = options.InferenceGpusPerSite / options.GpusPerUnit / options.NodesPerSite;
            if (!matrix.TryGetRegion(Sites[i].Region, out int region)) throw new InvalidOperationException($"No region {Sites[i].Region} in the latency data.");
            sites[i] = new FleetSite(year.Slice(first, count), region, Enumerable.Repeat(perNode, options.NodesPerSite).ToArray(), built.Config.Controller)
            {
                History = year.Slice(0, first + count),
            };
        }

        int n = sites[0].Problem.Count;
        var rng = new Random(options.Seed);
        int capacity = sites.Sum(s => s.CapacityUnits);
        double peak = options.PeakDemandShare * capacity / matrix.Count;
        var classes = new List<DemandClass>();
        var demand = new List<int[]>();
        for (int r = 0; r < matrix.Count; r++)
        {
            double weight = 0.5 + rng.NextDouble(), tightShare = 0.3 + 0.4 * rng.NextDouble();
            int offset = UtcOffsetMinutes.TryGetValue(matrix.Regions[r], out int m) ? m : 0;
            var tight = new int[n];
            var loose = new int[n];
            for (int t = 0; t < n; t++)
            {
                DateTime local = sites[0].Problem.IntervalStartUtc(t).AddMinutes(offset);
                double hour = local.TimeOfDay.TotalHours;
                double weekday = local.DayOfWeek is DayOfWeek.Saturday or DayOfWeek.Sunday ? 0.8 : 1.0;
                double profile = 0.25 + 0.75 * Math.Exp(-Math.Pow((hour - 14) / 4.5, 2));
                int units = (int)Math.Round(peak * weight * profile * weekday * (1 + 0.1 * (2 * rng.NextDouble() - 1)));
                tight[t] = (int)Math.Round(units * tightShare);
                loose[t] = units - tight[t];
            }
            classes.Add(new DemandClass(r, options.TightBoundMs));
            demand.Add(tight);
            classes.Add(new DemandClass(r, options.LooseBoundMs));
            demand.Add(loose);
        }
        var scenario = new FleetScenario
        {
            Sites = sites, Classes = [.. classes], Demand = [.. demand], Matrix = matrix, GpusPerUnit = options.GpusPerUnit,
            UnitItKw = unitItKw, UnitRevenueUsd = unitRevenueUsd, Seed = options.Seed,
        };
        scenario.Validate();
        return scenario;
    }
}
