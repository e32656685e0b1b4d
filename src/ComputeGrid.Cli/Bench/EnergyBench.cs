using System.Diagnostics;
using System.Text.Json;
using ComputeGrid.Energy.Backtesting;
using ComputeGrid.Energy.Dispatch;
using ComputeGrid.Energy.Optimization;
using ComputeGrid.Energy.Sites;

namespace ComputeGrid.Cli.Bench;

/// <summary>
/// <c>computegrid bench energy</c>: the reference site (<c>examples/sites/ercot-west-reference.json</c>) over its full
/// year of real data: the perfect-foresight LP, the integer bound (a whole-miner bound, at most the LP's, and a
/// whole-miner schedule below it), the real-time controller and the baselines, all valued by the same accounting; each
/// policy is scored against the tighter bound (<c>controllable_bound</c> names it). <c>--quick</c> still scores the full
/// year against the same bound (the integer bound takes 17–30 s of it: <c>integer_bound_seconds</c>), but skips the
/// day-ahead planner and times the controller over fewer repetitions.
/// </summary>
internal static class EnergyBench
{
    public static int Run(bool quick, string? pricesFile, string? priceColumn, string? loadFile, TextWriter output)
    {
        var total = Stopwatch.StartNew();
        SiteConfig config = SiteExamples.Load(SiteExamples.Reference);
        if (pricesFile is not null || loadFile is not null)
        {
            if (pricesFile is not null && !File.Exists(pricesFile)) return CliDefaults.Fail($"no such prices file: {pricesFile}");
            if (loadFile is not null && !File.Exists(loadFile)) return CliDefaults.Fail($"no such load file: {loadFile}");
            config = config with
            {
                Prices = pricesFile is null ? config.Prices : config.Prices with { File = Path.GetFullPath(pricesFile), Column = priceColumn ?? config.Prices.Column },
                SystemLoad = loadFile is null ? config.SystemLoad : config.SystemLoad! with { File = Path.GetFullPath(loadFile) },
            };
        }
        else if (priceColumn is not null) config = config with { Prices = config.Prices with { Column = priceColumn } };

        BuiltSite site;
        try { site = SiteProblemBuilder.Build(config); }
        catch (SiteConfigException e) { return CliDefaults.Fail(e.Message); }
        SiteProblem p = site.Problem;
        output.WriteLine($"energy bench: site {config.Name}, {p.Count:N0} intervals from {p.StartUtc:yyyy-MM-dd HH:mm} UTC ({config.Prices.File} '{config.Prices.Column}')");
        foreach (var s in site.Series) output.WriteLine($"  {s.Name}: {s.Repairs}");

        SiteBacktestResult result = SiteBacktest.Run(site, new BacktestOptions { DayAhead = !quick }, stage => output.WriteLine($"  running {stage} ..."));
        SiteValue optimum = result.OptimumValue!;
        IntegerBoundResult integer = result.IntegerBound!;
        string boundName = result.ScoredBoundName!;
        long scoredBound = result.ScoredBoundMicroUsd!.Value;
        output.WriteLine($"  LP ({result.Optimum!.Solver}, {result.Optimum.Variables:N0} variables, {result.Optimum.Constraints:N0} constraints): build {result.Optimum.BuildTime.TotalSeconds:F2} s, solve {result.Optimum.SolveTime.TotalSeconds:F2} s, value {optimum.ValueUsd:N0} USD, bound {result.LpBoundMicroUsd!.Value / 1e6:N2} USD");
        output.WriteLine($"  {SiteBacktestResult.IntegerBoundName} ({integer.Solver}, {integer.Windows} windows, {integer.OptimalWindows} proved optimal): {result.IntegerUpperBoundMicroUsd!.Value / 1e6:N2} USD, {integer.TighteningUsd:N2} below the LP's; "
            + $"{SiteBacktestResult.WholeMinersName} {integer.FeasibleValueUsd:N2} USD ({integer.GapUsd:N2} below the bound); {result.IntegerBoundTime.TotalSeconds:F2} s");
        output.WriteLine($"  scored against: {boundName}, {scoredBound / 1e6:N2} USD");
        foreach (PolicyRun run in result.Runs)
            output.WriteLine($"  {run.Policy,-10} value {run.Value.ValueUsd,15:N0} USD, {result.OverAlwaysOnMicroUsd(run.Policy) / 1e6,13:+#,0;-#,0;0} over always-on = {result.ControllableCaptured(run.Policy),8:P2} of the controllable value ({result.CapturedVsOptimum(run.Policy):P3} of the whole optimum); peak charge {run.Value.PeakChargeMicroUsd / 1e6:N0}, restarts {run.Value.Restarts:N0}, violations {run.Value.InterconnectViolations}");

        // Decision rates over the whole year, repeated; the best repetition (least disturbed by the machine). The predictive
        // controller re-plans (solves its horizon) at every interval: its rate is the rolling solver's time per decision.
        // The rule-based controller, which does not solve, is the decision path without a solve.
        int repetitions = quick ? 5 : 20;
        double best = 0, bestRules = 0;
        var controller = new PredictiveController(config.Controller);
        var rules = new RealTimeController(config.Controller, "rule-based");
        for (int i = 0; i < repetitions; i++)
        {
            best = Math.Max(best, Backtest.Run(p, controller).DecisionsPerSecond);
            bestRules = Math.Max(bestRules, Backtest.Run(p, rules).DecisionsPerSecond);
        }
        output.WriteLine($"  controller: {best:N0} decisions/s = {1e6 / best:F2} µs per decision, each a re-plan of {controller.HorizonIntervals} intervals (best of {repetitions} full-year runs); rule-based (no solve): {bestRules:N0} decisions/s");

        double captured = result.CapturedVsOptimum();
        // The score of the decisions: the share of what dispatch controls (the tightest proved bound − always-on). The issue's target is 0.85.
        double controllable = result.ControllableCaptured();
        long controllableValue = result.ControllableValueMicroUsd!.Value;
        bool controllableMet = controllable >= 0.85;
        output.WriteLine($"  controllable value ({boundName} − always-on): {controllableValue / 1e6:N0} USD; the controller captures {controllable:P2} of it (myopic {result.ControllableCaptured("myopic"):P2}, threshold {result.ControllableCaptured("threshold"):P2})");
        long controllerValue = result.Controller.Value.ValueMicroUsd;
        bool beatsBaselines = result.Runs.Where(r => r.Policy is "myopic" or "always-on" or "threshold").All(r => controllerValue > r.Value.ValueMicroUsd);
        bool noViolations = result.Runs.All(r => r.Value.InterconnectViolations == 0 && r.Value.RampViolations == 0) && optimum.InterconnectViolations == 0;
        bool bounded = result.Runs.All(r => r.Value.ValueMicroUsd <= scoredBound) && integer.FeasibleValueMicroUsd <= scoredBound;
        output.WriteLine($"  checks: controllable share ≥ 0.85: {controllableMet}; captured ≥ 0.97: {captured >= 0.97}; beats myopic, always-on, threshold: {beatsBaselines}; no limit violated: {noViolations}; no policy above the bound: {bounded}");

        var metrics = new SortedDictionary<string, object?>(StringComparer.Ordinal)
        {
            ["value_optimum_usd"] = Math.Round(optimum.ValueUsd, 2),
            ["value_controller_usd"] = Math.Round(result.Controller.Value.ValueUsd, 2),
            ["value_myopic_usd"] = Math.Round(result.Run("myopic").Value.ValueUsd, 2),
            ["value_always_on_usd"] = Math.Round(result.Run("always-on").Value.ValueUsd, 2),
            ["value_threshold_usd"] = Math.Round(result.Run("threshold").Value.ValueUsd, 2),
            ["value_day_ahead_usd"] = quick ? null : Math.Round(result.Run("day-ahead").Value.ValueUsd, 2),
            ["captured_vs_optimum"] = Math.Round(captured, 6),
            ["controllable_captured"] = Math.Round(controllable, 6),
            ["controllable_captured_myopic"] = Math.Round(result.ControllableCaptured("myopic"), 6),
            ["controllable_captured_rule_based"] = Math.Round(result.ControllableCaptured("rule-based"), 6),
            ["controllable_captured_jan_jun"] = Math.Round(result.ControllableCapturedInHalf("controller", secondHalf: false), 6),
            ["controllable_captured_jul_dec"] = Math.Round(result.ControllableCapturedInHalf("controller", secondHalf: true), 6),
            ["controllable_captured_threshold"] = Math.Round(result.ControllableCaptured("threshold"), 6),
            ["controllable_value_usd"] = Math.Round(controllableValue / 1e6, 2),
            ["controllable_bound"] = boundName,
            ["scored_bound_usd"] = Math.Round(scoredBound / 1e6, 2),
            ["lp_bound_usd"] = Math.Round(result.LpBoundMicroUsd!.Value / 1e6, 2),
            ["integer_upper_bound_usd"] = Math.Round(result.IntegerUpperBoundMicroUsd!.Value / 1e6, 2),
            ["value_whole_miner_usd"] = Math.Round(integer.FeasibleValueUsd, 2),
            ["integer_bound_seconds"] = Math.Round(result.IntegerBoundTime.TotalSeconds, 3),
            ["integer_bound_windows_optimal"] = integer.OptimalWindows,
            ["integer_bound_windows"] = integer.Windows,
            ["lp_seconds_year"] = Math.Round(result.OptimumTime.TotalSeconds, 3),
            ["lp_solver"] = result.Optimum.Solver,
            ["controller_decisions_per_s"] = Math.Round(best),
            ["controller_us_per_decision"] = Math.Round(1e6 / best, 3),
            ["rule_based_decisions_per_s"] = Math.Round(bestRules),
            ["intervals"] = p.Count,
            ["checks_passed"] = controllableMet && captured >= 0.97 && beatsBaselines && noViolations && bounded ? 1 : 0,
            ["quick"] = quick ? 1 : 0,
            ["total_seconds"] = Math.Round(total.Elapsed.TotalSeconds, 1),
        };
        output.WriteLine(JsonSerializer.Serialize(new { bench = "energy", metrics }));
        return 0;
    }
}
