using ComputeGrid.Energy.Sites;

namespace ComputeGrid.Energy.Tests.Dispatch;

/// <summary>The reference site (embedded example) over a chosen period, built once per period.</summary>
internal static class ReferenceSite
{
    private static readonly Dictionary<(DateTime, DateTime, int), BuiltSite> Cache = [];

    public static SiteConfig Config => SiteExamples.Load(SiteExamples.Reference);

    public static BuiltSite Week(DateTime fromUtc, int days = 7, int leaseSeed = 7)
    {
        lock (Cache)
        {
            var key = (fromUtc, fromUtc.AddDays(days), leaseSeed);
            if (Cache.TryGetValue(key, out BuiltSite? site)) return site;
            SiteConfig c = Config;
            c = c with
            {
                Period = new PeriodConfig { FromUtc = key.Item1, ToUtc = key.Item2 },
                Gpus = [c.Gpus[0] with { Demand = c.Gpus[0].Demand with { Seed = leaseSeed } }],
            };
            site = SiteProblemBuilder.Build(c);
            Cache[key] = site;
            return site;
        }
    }

    private static BuiltSite? s_whole;

    /// <summary>The reference site over its whole data series (the history a period's policies run over).</summary>
    public static BuiltSite Whole()
    {
        lock (Cache) return s_whole ??= SiteProblemBuilder.Build(Config);
    }

    /// <summary>The repository's root (the folder holding ComputeGrid.slnx) above the test's folder.</summary>
    public static string RepoRoot()
    {
        for (DirectoryInfo? d = new(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "ComputeGrid.slnx"))) return d.FullName;
        throw new DirectoryNotFoundException("ComputeGrid.slnx not found above " + AppContext.BaseDirectory);
    }
}
