using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using ComputeGrid.Energy.Backtesting;
using ComputeGrid.Energy.Dispatch;
using ComputeGrid.Energy.Reports;
using ComputeGrid.Energy.Sites;

namespace ComputeGrid.Cli.Energy;

/// <summary><c>computegrid backtest SITE.json…</c>: runs sites over real data and writes the summary, CSV and plots.</summary>
internal static class BacktestCommand
{
    public static Command Create()
    {
        var sites = new Argument<string[]>("sites") { Description = "Site files (JSON), e.g. examples/sites/ercot-west-reference.json.", Arity = ArgumentArity.OneOrMore };
        var from = new Option<string?>("--from") { Description = "Start of the period (UTC date or time, e.g. 2021-08-01); default: the site's period." };
        var to = new Option<string?>("--to") { Description = "End of the period (UTC, exclusive)." };
        var outDir = new Option<string>("--out") { Description = "Folder for the runs: each writes its CSV, plots and summary.json into OUT/SITE/FROM_TO/ (UTC).", DefaultValueFactory = _ => "backtest-out" };
        var overwrite = new Option<bool>("--overwrite") { Description = "Replace a run already in OUT/SITE/FROM_TO/ (without it, such a run stops the command before anything runs)." };
        var noPlots = new Option<bool>("--no-plots") { Description = "Skip the PNG plots." };
        var noOptimum = new Option<bool>("--no-optimum") { Description = "Skip the perfect-foresight LP." };
        var command = new Command("backtest", "Run hybrid sites over real power prices: controller, baselines and the perfect-foresight optimum.")
        {
            sites, from, to, outDir, noPlots, noOptimum, overwrite,
        };
        command.SetAction(pr => Run(pr.GetValue(sites)!, pr.GetValue(from), pr.GetValue(to), pr.GetValue(outDir)!, !pr.GetValue(noPlots), !pr.GetValue(noOptimum),
            pr.GetValue(overwrite)));
        return command;
    }

    private static int Run(string[] siteFiles, string? fromText, string? toText, string outDir, bool plots, bool optimum, bool overwrite)
    {
        DateTime? from = null, to = null;
        if (fromText is not null && !TryParseUtc(fromText, out from)) return CliDefaults.Fail($"--from '{fromText}' is not a UTC date or time (e.g. 2021-08-01 or 2021-08-01T06:00:00Z)");
        if (toText is not null && !TryParseUtc(toText, out to)) return CliDefaults.Fail($"--to '{toText}' is not a UTC date or time");
        if (from is not null && to is not null && to <= from) return CliDefaults.Fail("--to must be after --from (the period is empty)");

        var configs = new List<(string File, SiteConfig Config)>();
        foreach (string file in siteFiles)
        {
            if (!File.Exists(file)) return CliDefaults.Fail($"no such site file: {file}");
            try
            {
                SiteConfig c = SiteConfigLoader.Load(file);
                if (from is not null || to is not null)
                {
                    PeriodConfig period = c.Period ?? new PeriodConfig { FromUtc = DateTime.MinValue, ToUtc = DateTime.MaxValue };
                    c = c with { Period = new PeriodConfig { FromUtc = from ?? period.FromUtc, ToUtc = to ?? period.ToUtc } };
                }
                configs.Add((file, c));
            }
            catch (SiteConfigException e) { return CliDefaults.Fail($"{Path.GetFileName(file)}: {e.Message}"); }
        }

        // Every site is built (its data read and checked) before anything runs: a bad site stops the command with one
        // line, before any progress or output.
        // A site run over part of its data also gets its whole series (its history), so every policy meets the period in
        // the state a longer run would have there (SiteBacktest.Run).
        var built = new List<(BuiltSite Site, BuiltSite? History)>();
        foreach ((string file, SiteConfig config) in configs)
        {
            try
            {
                string dir = Path.GetDirectoryName(Path.GetFullPath(file))!;
                BuiltSite site = SiteProblemBuilder.Build(config, dir);
                built.Add((site, config.Period is null ? null : SiteProblemBuilder.Build(config with { Period = null }, dir)));
            }
            catch (SiteConfigException e) { return CliDefaults.Fail($"{Path.GetFileName(file)}: {e.Message}"); }
        }

        // Each run writes into its own folder; one that holds a run already stops the command here, before anything
        // runs or is written, unless --overwrite says to replace it.
        var folders = new List<string>();
        foreach ((BuiltSite site, _) in built)
        {
            string folder = RunFolder(outDir, site.Problem);
            if (folders.Contains(folder)) return CliDefaults.Fail($"two sites would write to {folder} (same name and period); give each site its own name");
            if (!overwrite && ExistingOutput(folder) is { } existing)
                return CliDefaults.Fail(existing == SummaryJson
                    ? $"{folder} already holds a backtest of this site and period; pass --overwrite to replace it, or another --out"
                    : $"{folder} holds part of a backtest ({existing}); pass --overwrite to replace it, or another --out");
            folders.Add(folder);
        }

        int stepsPerSite = 3 + (optimum ? 1 : 0) + 1 + (plots ? 1 : 0);
        var bar = new ProgressBar(stepsPerSite * configs.Count);
        var results = new List<SiteBacktestResult>();
        for (int i = 0; i < built.Count; i++)
        {
            (BuiltSite site, BuiltSite? history) = built[i];
            SiteConfig config = site.Config;
            SiteBacktestResult result = SiteBacktest.Run(site, new BacktestOptions { Optimum = optimum }, s => bar.Step($"{config.Name}: {s}"), history);
            results.Add(result);
            bar.Step($"{config.Name}: writing CSV");
            WriteRun(folders[i], result, plots ? () => bar.Step($"{config.Name}: plotting") : null);
        }
        bar.Done();

        for (int i = 0; i < results.Count; i++) PrintSite(Console.Out, results[i], folders[i]);
        if (results.Count > 1) PrintTotals(Console.Out, results);
        return 0;
    }

    /// <summary>The output files a run writes into its folder; summary.json, written last, marks a complete run.</summary>
    internal const string IntervalsCsv = "intervals.csv", SummaryJson = "summary.json",
        WeekPng = "week-price-vs-power.png", ProfitPng = "profit.png", PoliciesPng = "policies.png";

    private static readonly string[] OutputFiles = [IntervalsCsv, WeekPng, ProfitPng, PoliciesPng, SummaryJson];

    /// <summary>
    /// The folder of a run: <c>OUT/SITE/FROM_TO</c>, the bounds of the period actually run in UTC, as
    /// <c>yyyy-MM-dd</c> at midnight and <c>yyyy-MM-ddTHHmm</c> otherwise (e.g. <c>2021-08-23T0500_2021-08-30T0500</c>).
    /// </summary>
    internal static string RunFolder(string outDir, SiteProblem p) =>
        Path.Combine(outDir, p.Name, $"{FolderTime(p.StartUtc)}_{FolderTime(p.IntervalStartUtc(p.Count))}");

    private static string FolderTime(DateTime utc) =>
        utc.ToString(utc.TimeOfDay == TimeSpan.Zero ? "yyyy-MM-dd" : "yyyy-MM-dd'T'HHmm", CultureInfo.InvariantCulture);

    // An output file of a run that the folder already holds (summary.json, the mark of a whole run, first), or null: a run
    // cut short left part of its files, which are not silently replaced either.
    private static string? ExistingOutput(string folder) =>
        OutputFiles.Reverse().FirstOrDefault(f => File.Exists(Path.Combine(folder, f)));

    // Writes a site's run into its folder, replacing the files of an earlier run (--overwrite was checked before
    // anything ran): CSV, plots (when plotting says so), and summary.json last, so that it marks a complete run.
    private static void WriteRun(string folder, SiteBacktestResult result, Action? plotting)
    {
        Directory.CreateDirectory(folder);
        foreach (string file in OutputFiles) File.Delete(Path.Combine(folder, file));
        BuiltSite site = result.Site;
        IntervalCsvWriter.Write(Path.Combine(folder, IntervalsCsv), site, result.Controller);
        if (plotting is not null)
        {
            plotting();
            PlotWriter.WeekPlot(Path.Combine(folder, WeekPng), result, InterestingWeek(site));
            PlotWriter.ProfitPlot(Path.Combine(folder, ProfitPng), site, result.Controller);
            PlotWriter.ComparisonPlot(Path.Combine(folder, PoliciesPng), result);
        }
        WriteSummaryJson(Path.Combine(folder, SummaryJson), result);
    }

    /// <summary>
    /// The week plotted, from a local midnight: a run of a week or less whole; else the week that starts three local days
    /// before the third peak-charge hour (the first when fewer), else the week with the widest price range.
    /// </summary>
    internal static DateTime InterestingWeek(BuiltSite site)
    {
        SiteProblem p = site.Problem;
        if ((double)p.Count * p.IntervalMinutes <= 7 * 1440) return p.StartUtc;
        DateTime start;
        if (site.PeakHoursUtc.Count > 0)
            start = LocalMidnightUtc(site, site.PeakHoursUtc[site.PeakHoursUtc.Count > 2 ? 2 : 0].AddDays(-3));
        else
        {
            int week = 7 * 96, best = 0;
            double bestRange = double.MinValue;
            for (int s = 0; s + week <= p.Count; s += 96)
            {
                double lo = double.MaxValue, hi = double.MinValue;
                for (int t = s; t < s + week; t++) { lo = Math.Min(lo, p.PriceUsdPerMwh[t]); hi = Math.Max(hi, p.PriceUsdPerMwh[t]); }
                if (hi - lo > bestRange) { bestRange = hi - lo; best = s; }
            }
            start = LocalMidnightUtc(site, p.IntervalStartUtc(best));
        }
        return start < p.StartUtc ? p.StartUtc : start;
    }

    // The UTC instant of the local midnight that starts the local day of utc.
    private static DateTime LocalMidnightUtc(BuiltSite site, DateTime utc)
    {
        DateTime localMidnight = site.TimeZone.ToLocal(utc).Date;
        DateTime guess = DateTime.SpecifyKind(localMidnight.AddHours(-site.TimeZone.OffsetHours(utc)), DateTimeKind.Utc);
        // The offset at midnight itself (daylight saving may change between midnight and utc).
        return DateTime.SpecifyKind(localMidnight.AddHours(-site.TimeZone.OffsetHours(guess)), DateTimeKind.Utc);
    }

    private static void PrintSite(TextWriter o, SiteBacktestResult r, string dir)
    {
        SiteProblem p = r.Site.Problem;
        o.WriteLine();
        o.WriteLine($"Site {r.Site.Config.Name}: {p.IntervalStartUtc(0):yyyy-MM-dd HH:mm} to {p.IntervalStartUtc(p.Count - 1).AddMinutes(p.IntervalMinutes):yyyy-MM-dd HH:mm} UTC, {p.Count:N0} intervals of {p.IntervalMinutes} min");
        foreach (var s in r.Site.Series) o.WriteLine($"  {s.Name}: {s.Repairs}");
        if (r.Site.PeakHoursUtc.Count > 0) o.WriteLine($"  peak-charge hours (UTC): {string.Join(", ", r.Site.PeakHoursUtc.Select(h => h.ToString("yyyy-MM-dd HH:mm", CultureInfo.InvariantCulture)))}");
        o.WriteLine();
        o.WriteLine($"  {"policy",-14} {"value USD",15} {"AI rev",14} {"mining rev",14} {"energy",13} {"peak chg",11} {"wear",10} {"curt MWh",10} {"curt h",8} {"restarts",10} {"over always-on",15} {"ctrl share",10} {"Jan-Jun",9} {"Jul-Dec",9} {"vs opt",8}");
        long alwaysOn = r.Run(SiteBacktestResult.AlwaysOn).Value.ValueMicroUsd;
        if (r.OptimumValue is { } opt) Row(o, "optimum (LP)", opt, checked(opt.ValueMicroUsd - alwaysOn), 1.0, 1.0, r, SiteBacktestResult.OptimumName);
        foreach (PolicyRun run in r.Runs) Row(o, run.Policy, run.Value, r.OverAlwaysOnMicroUsd(run.Policy), r.ControllableCaptured(run.Policy), r.CapturedVsOptimum(run.Policy), r, run.Policy);
        o.WriteLine("  (ctrl share: (policy − always-on) / (optimum − always-on); Jan-Jun: the half the controller's parameters were chosen on, Jul-Dec: the half it was not fitted to)");
        o.WriteLine();
        PolicyRun c = r.Controller;
        // The headline is the share of what dispatch controls: AI revenue, earned alike by every policy, makes the share of the
        // whole optimum near 1 for any policy at all.
        if (r.ControllableValueMicroUsd is { } controllable)
            o.Write($"  controller captures {Pct(r.ControllableCaptured())} of the controllable value (optimum − always-on = {controllable / 1e6:#,0} USD); {Pct(r.CapturedVsOptimum())} of the whole perfect-foresight value");
        else
            o.Write("  no optimum solved: no controllable share");
        foreach (PolicyRun b in r.Runs.Skip(1))
            o.Write($"; {(c.Value.ValueMicroUsd - b.Value.ValueMicroUsd) / 1e6:+#,0;-#,0} USD vs {b.Policy}");
        o.WriteLine(".");
        if (r.Optimum is { } lp) o.WriteLine($"  LP: {lp.Solver}, {lp.Variables:N0} variables, {lp.Constraints:N0} constraints, {r.OptimumTime.TotalSeconds:0.00} s");
        o.WriteLine($"  files in {dir}{Path.DirectorySeparatorChar}: {IntervalsCsv}, {SummaryJson}{(File.Exists(Path.Combine(dir, PoliciesPng)) ? $", {WeekPng}, {ProfitPng}, {PoliciesPng}" : "")}");
    }

    private static void PrintTotals(TextWriter o, List<SiteBacktestResult> results)
    {
        o.WriteLine();
        o.WriteLine($"All {results.Count} sites:");
        o.WriteLine($"  {"policy",-14} {"value USD",15} {"over always-on",15} {"ctrl share",10} {"vs opt",8}");
        long opt = results.All(r => r.OptimumValue is not null) ? results.Sum(r => r.OptimumValue!.ValueMicroUsd) : 0;
        long alwaysOn = results.Sum(r => r.Run(SiteBacktestResult.AlwaysOn).Value.ValueMicroUsd);
        long controllable = opt != 0 ? checked(opt - alwaysOn) : 0;
        if (opt != 0) o.WriteLine($"  {"optimum (LP)",-14} {opt / 1e6,15:N0} {controllable / 1e6,15:N0} {Pct(1),10} {Pct(1),8}");
        foreach (string policy in results[0].Runs.Select(x => x.Policy))
        {
            long v = results.Sum(r => r.Run(policy).Value.ValueMicroUsd);
            long over = checked(v - alwaysOn);
            o.WriteLine($"  {policy,-14} {v / 1e6,15:N0} {over / 1e6,15:N0} {(controllable != 0 ? Pct((double)over / controllable) : "-"),10} {(opt != 0 ? Pct((double)v / opt) : "-"),8}");
        }
        if (controllable != 0)
            o.WriteLine($"  (ctrl share: (policy − always-on) / (optimum − always-on) over all sites; each site's own share is in its table)");
    }

    private static void Row(TextWriter o, string name, SiteValue v, long overAlwaysOn, double controllable, double vsOpt, SiteBacktestResult r, string key) =>
        o.WriteLine($"  {name,-14} {v.ValueMicroUsd / 1e6,15:N0} {v.AiRevenueMicroUsd / 1e6,14:N0} {v.MiningRevenueMicroUsd / 1e6,14:N0} {v.EnergyCostMicroUsd / 1e6,13:N0} {v.PeakChargeMicroUsd / 1e6,11:N0} {v.RestartWearMicroUsd / 1e6,10:N0} {v.CurtailedMwh,10:N0} {v.CurtailedHours,8:N0} {v.Restarts,10:N0} {overAlwaysOn / 1e6,15:N0} {Share(controllable),10} {Share(r.ControllableCapturedInHalf(key, false)),9} {Share(r.ControllableCapturedInHalf(key, true)),9} {(double.IsNaN(vsOpt) ? "-" : Pct(vsOpt)),8}");

    private static string Share(double f) => double.IsNaN(f) ? "-" : Pct(f);

    private static string Pct(double f) => (f * 100).ToString("0.00", CultureInfo.InvariantCulture) + " %";

    private static void WriteSummaryJson(string path, SiteBacktestResult r) =>
        File.WriteAllText(path, BacktestSummary.ToJson(r).ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");

    internal static bool TryParseUtc(string text, out DateTime? value)
    {
        value = null;
        if (!DateTime.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal, out DateTime parsed)) return false;
        value = DateTime.SpecifyKind(parsed, DateTimeKind.Utc);
        return true;
    }
}
