using ComputeGrid.Energy.Backtesting;
using ComputeGrid.Energy.Dispatch;
using ComputeGrid.Energy.Sites;

namespace ComputeGrid.Energy.Tests.Reports;

/// <summary>The real reference site (<c>examples/sites/ercot-west-reference.json</c>) over short periods, built and run once per period.</summary>
internal static class ReportSites
{
    private static readonly Dictionary<(DateTime, DateTime), (BuiltSite Site, PolicyRun Run)> Cache = [];

    /// <summary>Winter Storm Uri: a declared grid emergency (miners off) and extreme prices.</summary>
    public static (BuiltSite Site, PolicyRun Run) UriWeek => Get(Utc(2021, 2, 13), Utc(2021, 2, 20));

    /// <summary>End of June into July: two local months (neither month's 4CP peak hour falls in it).</summary>
    public static (BuiltSite Site, PolicyRun Run) SummerWeek => Get(Utc(2021, 6, 27), Utc(2021, 7, 4));

    /// <summary>The week that holds August 2021's 4CP peak hour (24 August): a month's peak is the whole month's, so only a week holding it is charged.</summary>
    public static (BuiltSite Site, PolicyRun Run) PeakWeek => Get(Utc(2021, 8, 23), Utc(2021, 8, 30));

    private static readonly Dictionary<(DateTime, DateTime, bool), SiteBacktestResult> Backtests = [];

    /// <summary>The whole backtest (every policy, the optimum when asked) of the reference site over [fromUtc, toUtc), run once.</summary>
    public static SiteBacktestResult Backtest(DateTime fromUtc, DateTime toUtc, bool optimum = true)
    {
        BuiltSite site = Get(fromUtc, toUtc).Site;
        lock (Backtests)
        {
            if (Backtests.TryGetValue((fromUtc, toUtc, optimum), out var cached)) return cached;
            return Backtests[(fromUtc, toUtc, optimum)] = SiteBacktest.Run(site, new BacktestOptions { Optimum = optimum });
        }
    }

    public static DateTime Utc(int year, int month, int day) => new(year, month, day, 0, 0, 0, DateTimeKind.Utc);

    public static string RepoRoot() => Dispatch.ReferenceSite.RepoRoot();

    public static (BuiltSite Site, PolicyRun Run) Get(DateTime fromUtc, DateTime toUtc)
    {
        lock (Cache)
        {
            if (Cache.TryGetValue((fromUtc, toUtc), out var cached)) return cached;
            string file = Path.Combine(RepoRoot(), "examples", "sites", "ercot-west-reference.json");
            SiteConfig config = SiteConfigLoader.Load(file) with { Period = new PeriodConfig { FromUtc = fromUtc, ToUtc = toUtc } };
            BuiltSite site = SiteProblemBuilder.Build(config, Path.GetDirectoryName(file));
            PolicyRun run = ComputeGrid.Energy.Dispatch.Backtest.Run(site.Problem, new RealTimeController());
            return Cache[(fromUtc, toUtc)] = (site, run);
        }
    }
}

/// <summary>A temporary folder for a test's files, deleted at dispose.</summary>
internal sealed class TempFolder : IDisposable
{
    public TempFolder() => System.IO.Directory.CreateDirectory(Path);

    public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "cg-reports-" + Guid.NewGuid().ToString("N"));

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        try { System.IO.Directory.Delete(Path, recursive: true); }
        catch (IOException) { }
    }
}
