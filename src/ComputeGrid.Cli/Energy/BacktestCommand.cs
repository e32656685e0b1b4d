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
        var sites = new Argument<string[]>("sites")
        {
            Description = "Sites: an example's name (as serve --site: ercot-west-reference, caiso-sp15, jepx-tokyo) or a site file (JSON). None: list the examples.",
            Arity = ArgumentArity.ZeroOrMore,
        };
        var from = new Option<string?>("--from") { Description = "Start of the period (UTC date or time, e.g. 2021-08-01); default: the site's period." };
        var to = new Option<string?>("--to") { Description = "End of the period (UTC, exclusive)." };
        var outDir = new Option<string>("--out") { Description = "Folder for the runs: each writes its CSV, plots and summary.json into OUT/SITE/FROM_TO/ (UTC).", DefaultValueFactory = _ => "backtest-out" };
        var overwrite = new Option<bool>("--overwrite") { Description = "Replace a run already in OUT/SITE/FROM_TO/ (without it, such a run stops the command before anything runs)." };
        var noPlots = new Option<bool>("--no-plots") { Description = "Skip the PNG plots." };
        var noOptimum = new Option<bool>("--no-optimum") { Description = "Skip the perfect-foresight LP (and the integer bound): no bound, no controllable share." };
        var noIntegerBound = new Option<bool>("--no-integer-bound") { Description = "Skip the integer upper bound (day windows solved by SCIP; 17-30 s for a year) and its whole-miner schedule: policies are scored against the LP's bound." };
        var command = new Command("backtest", "Run hybrid sites over real power prices (controller, baselines, the optimum); alone, list the sites.")
        {
            sites, from, to, outDir, noPlots, noOptimum, noIntegerBound, overwrite,
        };
        command.SetAction(pr => Run(pr.GetValue(sites)!, pr.GetValue(from), pr.GetValue(to), pr.GetValue(outDir)!, !pr.GetValue(noPlots), !pr.GetValue(noOptimum),
            !pr.GetValue(noIntegerBound), pr.GetValue(overwrite)));
        return command;
    }

    private static int Run(string[] siteFiles, string? fromText, string? toText, string outDir, bool plots, bool optimum, bool integerBound, bool overwrite)
    {
        if (siteFiles.Length == 0) return SiteList.Print(Console.Out);
        DateTime? from = null, to = null;
        if (fromText is not null && !TryParseUtc(fromText, out from)) return CliDefaults.Fail($"--from '{fromText}' is not a UTC date or time (e.g. 2021-08-01 or 2021-08-01T06:00:00Z)");
        if (toText is not null && !TryParseUtc(toText, out to)) return CliDefaults.Fail($"--to '{toText}' is not a UTC date or time");
        if (from is not null && to is not null && to <= from) return CliDefaults.Fail("--to must be after --from (the period is empty)");

        // Each site is a file, else an example's name (as serve --site takes it); an example's data files are bare names,
        // found in the data root, so it has no folder of its own (null).
        var configs = new List<(string File, string? Dir, SiteConfig Config)>();
        foreach (string file in siteFiles)
        {
            bool isFile = File.Exists(file);
            if (!isFile && !SiteExamples.Names.Contains(file))
                return CliDefaults.Fail($"no such site file or example: {file} (the examples: {string.Join(", ", SiteExamples.Names)}; 'computegrid backtest' lists them)");
            try
            {
                SiteConfig c = isFile ? SiteConfigLoader.Load(file) : SiteExamples.Load(file);
                if (from is not null || to is not null)
                {
                    PeriodConfig period = c.Period ?? new PeriodConfig { FromUtc = DateTime.MinValue, ToUtc = DateTime.MaxValue };
                    c = c with { Period = new PeriodConfig { FromUtc = from ?? period.FromUtc, ToUtc = to ?? period.ToUtc } };
                }
                configs.Add((file, isFile ? Path.GetDirectoryName(Path.GetFullPath(file))! : null, c));
            }
            catch (SiteConfigException e) { return CliDefaults.Fail($"{file}: {e.Message}"); }
        }

        // Every site is built (its data read and checked) before anything runs: a bad site stops the command with one
        // line, before any progress or output.
        // A site run over part of its data also gets its whole series (its history), so every policy meets the period in
        // the state a longer run would have there (SiteBacktest.Run).
        var built = new List<(BuiltSite Site, BuiltSite? History)>();
        foreach ((string file, string? dir, SiteConfig config) in configs)
        {
            try
            {
                // The whole series first: --from and --to must fall within it (a period that reaches past the data is an
                // error naming the data's range, not a run silently cut to what there is).
                BuiltSite? history = config.Period is null ? null : SiteProblemBuilder.Build(config with { Period = null }, dir);
                if (history is not null && OutsideData(history.Problem, from, to) is { } outside) return CliDefaults.Fail($"{file}: {outside}");
                BuiltSite site = SiteProblemBuilder.Build(config, dir);
                built.Add((site, history));
            }
            catch (SiteConfigException e) { return CliDefaults.Fail($"{file}: {e.Message}"); }
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

        int stepsPerSite = 3 + (optimum ? 1 : 0) + (optimum && integerBound ? 1 : 0) + 1 + (plots ? 1 : 0);
        var bar = new ProgressBar(stepsPerSite * configs.Count);
        var results = new List<SiteBacktestResult>();
        for (int i = 0; i < built.Count; i++)
        {
            (BuiltSite site, BuiltSite? history) = built[i];
            SiteConfig config = site.Config;
            SiteBacktestResult result = SiteBacktest.Run(site, new BacktestOptions { Optimum = optimum, IntegerBound = integerBound }, s => bar.Step($"{config.Name}: {s}"), history);
            results.Add(result);
            bar.Step($"{config.Name}: writing CSV");
            WriteRun(folders[i], result, plots ? () => bar.Step($"{config.Name}: plotting") : null);
        }
        bar.Done();

        for (int i = 0; i < results.Count; i++) PrintSite(Console.Out, results[i], folders[i]);
        if (results.Count > 1) PrintTotals(Console.Out, results);
        return 0;
    }

    // Why --from or --to falls outside the site's price series (the whole of it, in UTC), or null when both are within.
    private static string? OutsideData(SiteProblem whole, DateTime? from, DateTime? to)
    {
        DateTime first = whole.StartUtc, end = whole.IntervalStartUtc(whole.Count);
        string range = $"its prices run from {first:yyyy-MM-dd'T'HH:mm'Z'} to {end:yyyy-MM-dd'T'HH:mm'Z'} (UTC)";
        if (from is { } f && (f < first || f >= end)) return $"--from {f:yyyy-MM-dd'T'HH:mm'Z'} is outside the data: {range}";
        if (to is { } t && (t <= first || t > end)) return $"--to {t:yyyy-MM-dd'T'HH:mm'Z'} is outside the data: {range}";
        return null;
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

    // The width of the name column: a policy's name or a bound's.
    private const int NameWidth = 27;

    private static void PrintSite(TextWriter o, SiteBacktestResult r, string dir)
    {
        SiteProblem p = r.Site.Problem;
        o.WriteLine();
        o.WriteLine($"Site {r.Site.Config.Name}: {p.IntervalStartUtc(0):yyyy-MM-dd HH:mm} to {p.IntervalStartUtc(p.Count - 1).AddMinutes(p.IntervalMinutes):yyyy-MM-dd HH:mm} UTC, {p.Count:N0} intervals of {p.IntervalMinutes} min");
        foreach (var s in r.Site.Series) o.WriteLine($"  {s.Name}: {s.Repairs}");
        if (r.Site.PeakHoursUtc.Count > 0) o.WriteLine($"  peak-charge hours (UTC): {string.Join(", ", r.Site.PeakHoursUtc.Select(h => h.ToString("yyyy-MM-dd HH:mm", CultureInfo.InvariantCulture)))}");
        o.WriteLine();
        o.WriteLine($"  {"policy",-NameWidth} {"value USD",15} {"AI rev",14} {"mining rev",14} {"energy",13} {"peak chg",11} {"wear",10} {"curt MWh",10} {"curt h",8} {"restarts",10} {"over always-on",15} {"ctrl share",10} {"Jan-Jun",9} {"Jul-Dec",9} {"vs opt",8}");
        // The bounds and the perfect-foresight schedules first: the LP's (fractional miners), the integer bound (a bound,
        // no schedule), the whole-miner schedule found below it.
        if (r.OptimumValue is not null) Row(o, SiteBacktestResult.LpBoundName, r, SiteBacktestResult.OptimumName);
        if (r.IntegerBound is not null) BoundRow(o, SiteBacktestResult.IntegerBoundName, r);
        if (r.IntegerBound is not null) Row(o, SiteBacktestResult.WholeMinersName, r, SiteBacktestResult.WholeMinersName);
        foreach (PolicyRun run in r.Runs) Row(o, run.Policy, r, run.Policy);
        if (r.ScoredBoundName is { } bound)
        {
            o.WriteLine($"  (ctrl share: (policy − always-on) / (bound − always-on), the bound: {bound}, the tightest proved; Jan-Jun, Jul-Dec: each half against {r.HalfBoundName}.");
            o.WriteLine("   Jan-Jun is the half the controller's parameters were chosen on, Jul-Dec the half it was not fitted to; vs opt: value / the LP optimum's value)");
        }
        o.WriteLine();
        PolicyRun c = r.Controller;
        // The headline is the share of what dispatch controls: AI revenue, earned alike by every policy, makes the share of the
        // whole optimum near 1 for any policy at all.
        if (r.ControllableValueMicroUsd is { } controllable && double.IsNaN(r.ControllableCaptured()))
            o.Write($"  nothing is provably controllable: {r.ScoredBoundName} − always-on = {controllable / 1e6:#,0.00} USD, within a millionth of the bound (the solvers' tolerance); no controllable share");
        else if (r.ControllableValueMicroUsd is { } controllable2)
            o.Write($"  controller captures {Pct(r.ControllableCaptured())} of the controllable value ({r.ScoredBoundName} − always-on = {controllable2 / 1e6:#,0} USD); {Pct(r.CapturedVsOptimum())} of the whole perfect-foresight value");
        else
            o.Write("  no optimum solved: no controllable share");
        foreach (PolicyRun b in r.Runs.Skip(1))
            o.Write($"; {(c.Value.ValueMicroUsd - b.Value.ValueMicroUsd) / 1e6:+#,0;-#,0} USD vs {b.Policy}");
        o.WriteLine(".");
        if (r.Optimum is { } lp)
            o.WriteLine($"  {SiteBacktestResult.LpBoundName}: bound {r.LpBoundMicroUsd!.Value / 1e6:N2} USD; {lp.Solver}, {lp.Variables:N0} variables, {lp.Constraints:N0} constraints, {r.OptimumTime.TotalSeconds:0.00} s");
        if (r.IntegerBound is { } ib)
            o.WriteLine($"  {SiteBacktestResult.IntegerBoundName}: {r.IntegerUpperBoundMicroUsd!.Value / 1e6:N2} USD, {ib.TighteningUsd:N2} below the LP's; {ib.Windows} windows ({ib.OptimalWindows} proved optimal, {ib.RelaxedWindows} by their LP), {ib.Solver}; "
                + $"{SiteBacktestResult.WholeMinersName} {ib.FeasibleValueUsd:N2} USD, {ib.GapUsd:N2} below the bound; {r.IntegerBoundTime.TotalSeconds:0.00} s");
        PrintGap(o, r);
        o.WriteLine($"  files in {dir}{Path.DirectorySeparatorChar}: {IntervalsCsv}, {SummaryJson}{(File.Exists(Path.Combine(dir, PoliciesPng)) ? $", {WeekPng}, {ProfitPng}, {PoliciesPng}" : "")}");
    }

    // Where the controller loses against the perfect-foresight schedule, month by month and by cause (GapDecomposition).
    private static void PrintGap(TextWriter o, SiteBacktestResult r)
    {
        if (r.GapReferenceName is not { } gapReference) return;
        string reference = gapReference == SiteBacktestResult.OptimumName ? SiteBacktestResult.LpBoundName : gapReference;
        o.WriteLine($"  controller's gap against {reference} (USD), by local month and cause (margin = mining revenue − energy, by why miners were off):");
        o.WriteLine($"    {"month",-7} {"gap",11} {"4CP charge",11} {"wear",9} {"margin: ran",12} {"price",9} {"4CP risk",9} {"other",9}");
        static string U(long micro) => (micro / 1e6).ToString("#,0;-#,0;0", CultureInfo.InvariantCulture);
        foreach (MonthGap m in r.GapByMonth())
            o.WriteLine($"    {m.Year:D4}-{m.Month:D2} {U(m.GapMicroUsd),11} {U(m.PeakChargeMicroUsd),11} {U(m.RestartWearMicroUsd),9} {U(m.MarginRunningMicroUsd),12} {U(m.MarginPriceMicroUsd),9} {U(m.MarginPeakRiskMicroUsd),9} {U(m.MarginOtherMicroUsd),9}");
    }

    private static void PrintTotals(TextWriter o, List<SiteBacktestResult> results)
    {
        o.WriteLine();
        o.WriteLine($"All {results.Count} sites:");
        o.WriteLine($"  {"policy",-NameWidth} {"value USD",15} {"over always-on",15} {"ctrl share",10} {"vs opt",8}");
        // Each site's scored bound bounds that site; their sum bounds the sum.
        bool bounded = results.All(r => r.ScoredBoundMicroUsd is not null);
        long bound = bounded ? results.Sum(r => r.ScoredBoundMicroUsd!.Value) : 0;
        long opt = results.All(r => r.OptimumValue is not null) ? results.Sum(r => r.OptimumValue!.ValueMicroUsd) : 0;
        long alwaysOn = results.Sum(r => r.Run(SiteBacktestResult.AlwaysOn).Value.ValueMicroUsd);
        long controllable = bounded ? checked(bound - alwaysOn) : 0;
        bool shares = bounded && SiteBacktestResult.IsControllable(controllable, bound);
        string Over(long v) => shares ? Pct((double)checked(v - alwaysOn) / controllable) : "-";
        string VsOpt(long v) => opt != 0 ? Pct((double)v / opt) : "-";
        if (opt != 0) o.WriteLine($"  {SiteBacktestResult.LpBoundName,-NameWidth} {opt / 1e6,15:N0} {(opt - alwaysOn) / 1e6,15:N0} {Over(opt),10} {VsOpt(opt),8}");
        if (bounded) o.WriteLine($"  {"scored bounds (each site's)",-NameWidth} {bound / 1e6,15:N0} {controllable / 1e6,15:N0} {Over(bound),10} {VsOpt(bound),8}");
        foreach (string policy in results[0].Runs.Select(x => x.Policy))
        {
            long v = results.Sum(r => r.Run(policy).Value.ValueMicroUsd);
            o.WriteLine($"  {policy,-NameWidth} {v / 1e6,15:N0} {checked(v - alwaysOn) / 1e6,15:N0} {Over(v),10} {VsOpt(v),8}");
        }
        if (shares)
            o.WriteLine($"  (ctrl share: (policy − always-on) / (bound − always-on) over all sites, the bound the sum of each site's scored bound ({string.Join(", ", results.Select(r => $"{r.Site.Config.Name}: {r.ScoredBoundName}"))}); each site's own share is in its table)");
    }

    // A row of the table: a policy's run, or a perfect-foresight schedule (`key` as SiteBacktestResult.Value knows it).
    private static void Row(TextWriter o, string name, SiteBacktestResult r, string key)
    {
        SiteValue v = r.Value(key);
        o.WriteLine($"  {name,-NameWidth} {v.ValueMicroUsd / 1e6,15:N0} {v.AiRevenueMicroUsd / 1e6,14:N0} {v.MiningRevenueMicroUsd / 1e6,14:N0} {v.EnergyCostMicroUsd / 1e6,13:N0} {v.PeakChargeMicroUsd / 1e6,11:N0} {v.RestartWearMicroUsd / 1e6,10:N0} {v.CurtailedMwh,10:N0} {v.CurtailedHours,8:N0} {v.Restarts,10:N0} {r.OverAlwaysOnMicroUsd(key) / 1e6,15:N0} {Share(r.ControllableCaptured(key)),10} {Share(r.ControllableCapturedInHalf(key, false)),9} {Share(r.ControllableCapturedInHalf(key, true)),9} {Share(r.CapturedVsOptimum(key)),8}");
    }

    // The integer bound's row: a bound, not a schedule (no amounts, no restarts), with its share of the controllable value.
    private static void BoundRow(TextWriter o, string name, SiteBacktestResult r)
    {
        long value = r.IntegerUpperBoundMicroUsd!.Value, alwaysOn = r.Run(SiteBacktestResult.AlwaysOn).Value.ValueMicroUsd;
        long controllable = r.ControllableValueMicroUsd!.Value;
        double share = SiteBacktestResult.IsControllable(controllable, r.ScoredBoundMicroUsd!.Value) ? (double)(value - alwaysOn) / controllable : double.NaN;
        double vsOpt = r.OptimumValue is { ValueMicroUsd: not 0 } opt ? (double)value / opt.ValueMicroUsd : double.NaN;
        o.WriteLine($"  {name,-NameWidth} {value / 1e6,15:N0} {"-",14} {"-",14} {"-",13} {"-",11} {"-",10} {"-",10} {"-",8} {"-",10} {(value - alwaysOn) / 1e6,15:N0} {Share(share),10} {Share(r.ControllableCapturedInHalf(SiteBacktestResult.IntegerBoundName, false)),9} {Share(r.ControllableCapturedInHalf(SiteBacktestResult.IntegerBoundName, true)),9} {Share(vsOpt),8}");
    }

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
