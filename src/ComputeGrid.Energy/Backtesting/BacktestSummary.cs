using System.Globalization;
using System.Text.Json.Nodes;
using ComputeGrid.Energy.Dispatch;
using ComputeGrid.Energy.Optimization;

namespace ComputeGrid.Energy.Backtesting;

/// <summary>A backtest's figures as JSON: what <c>computegrid backtest</c> writes to <c>summary.json</c>, and what the golden test checks in.</summary>
public static class BacktestSummary
{
    /// <summary>The summary of <paramref name="r"/>: the site, its period and peak hours, the bounds and which one the policies are scored against, and each policy's (and the perfect-foresight schedules') money in micro-USD.</summary>
    public static JsonObject ToJson(SiteBacktestResult r)
    {
        var policies = new JsonObject();
        // The LP's (fractional) schedule and the whole-miner schedule under the bound: perfect foresight, scored as the policies.
        if (r.OptimumValue is not null) policies[SiteBacktestResult.OptimumName] = Policy(r, SiteBacktestResult.OptimumName);
        if (r.IntegerBound is not null) policies[SiteBacktestResult.WholeMinersName] = Policy(r, SiteBacktestResult.WholeMinersName);
        foreach (PolicyRun run in r.Runs) policies[run.Policy] = Policy(r, run.Policy);
        (long, long)? halves = r.HalfBoundsMicroUsd;
        return new JsonObject
        {
            ["site"] = r.Site.Config.Name,
            ["from_utc"] = r.Site.Problem.StartUtc.ToString("O", CultureInfo.InvariantCulture),
            ["intervals"] = r.Site.Problem.Count,
            ["peak_hours_utc"] = new JsonArray(r.Site.PeakHoursUtc.Select(h => (JsonNode)h.ToString("O", CultureInfo.InvariantCulture)).ToArray()),
            ["lp_seconds"] = r.Optimum is null ? null : Math.Round(r.OptimumTime.TotalSeconds, 3),
            ["lp_solver"] = r.Optimum?.Solver,
            // The bounds (micro-USD, rounded up and allowing for the accounting's rounding): every policy's value is at
            // most each of them; the tighter one is what the policies are scored against.
            ["lp_bound_micro_usd"] = r.LpBoundMicroUsd,
            ["integer_upper_bound_micro_usd"] = r.IntegerUpperBoundMicroUsd,
            ["whole_miner_value_micro_usd"] = r.IntegerBound?.FeasibleValueMicroUsd,
            ["integer_bound_seconds"] = r.IntegerBound is null ? null : Math.Round(r.IntegerBoundTime.TotalSeconds, 3),
            ["scored_against"] = r.ScoredBoundName,
            ["scored_bound_micro_usd"] = r.ScoredBoundMicroUsd,
            // What dispatch controls (scored bound − always-on): the denominator of every policy's controllable_captured.
            ["controllable_value_micro_usd"] = r.ControllableValueMicroUsd,
            // The halves' own bounds, the denominators of controllable_captured_jan_jun and _jul_dec.
            ["halves_scored_against"] = r.HalfBoundName,
            ["bound_jan_jun_micro_usd"] = halves?.Item1,
            ["bound_jul_dec_micro_usd"] = halves?.Item2,
            ["integer_bound"] = r.IntegerBound is { } b ? IntegerBound(b) : null,
            ["policies"] = policies,
            // Where the controller loses against the perfect-foresight schedule, by local month and cause (GapDecomposition).
            ["controller_gap_against"] = r.GapReferenceName,
            ["controller_gap_by_month"] = new JsonArray(r.GapByMonth().Select(m => (JsonNode)MonthGap(m)).ToArray()),
        };
    }

    private static JsonObject MonthGap(MonthGap m) => new()
    {
        ["month"] = $"{m.Year:D4}-{m.Month:D2}",
        ["gap_micro_usd"] = m.GapMicroUsd,
        ["peak_charge_micro_usd"] = m.PeakChargeMicroUsd,
        ["restart_wear_micro_usd"] = m.RestartWearMicroUsd,
        ["margin_running_micro_usd"] = m.MarginRunningMicroUsd,
        ["margin_price_micro_usd"] = m.MarginPriceMicroUsd,
        ["margin_peak_risk_micro_usd"] = m.MarginPeakRiskMicroUsd,
        ["margin_other_micro_usd"] = m.MarginOtherMicroUsd,
    };

    // The integer bound's own figures (USD as the solvers give them; see IntegerBoundResult).
    private static JsonObject IntegerBound(IntegerBoundResult b) => new()
    {
        ["solver"] = b.Solver,
        ["lp_bound_usd"] = Math.Round(b.LpBoundUsd, 6),
        ["integer_upper_bound_usd"] = Math.Round(b.IntegerUpperBoundUsd, 6),
        ["whole_miner_value_usd"] = Math.Round(b.FeasibleValueUsd, 6),
        ["gap_usd"] = Math.Round(b.GapUsd, 6),
        ["tightening_usd"] = Math.Round(b.TighteningUsd, 6),
        ["part_starts"] = new JsonArray(b.PartStarts.Select(x => (JsonNode)x).ToArray()),
        ["part_upper_bounds_usd"] = new JsonArray(b.PartUpperBoundsUsd.Select(x => (JsonNode)Math.Round(x, 6)).ToArray()),
        ["windows"] = b.Windows,
        ["optimal_windows"] = b.OptimalWindows,
        ["relaxed_windows"] = b.RelaxedWindows,
        ["part_edge_windows"] = b.PartEdgeWindows,
        ["repaired_intervals"] = b.RepairedIntervals,
        ["lp_seconds"] = Math.Round(b.LpTime.TotalSeconds, 3),
        ["bound_solve_seconds"] = Math.Round(b.BoundSolveTime.TotalSeconds, 3),
        ["feasible_solve_seconds"] = Math.Round(b.FeasibleSolveTime.TotalSeconds, 3),
        ["elapsed_seconds"] = Math.Round(b.Elapsed.TotalSeconds, 3),
    };

    private static JsonObject Policy(SiteBacktestResult r, string name) => Policy(r.Value(name), r.CapturedVsOptimum(name), r.OverAlwaysOnMicroUsd(name), r.ControllableCaptured(name), r, name);

    private static JsonObject Policy(SiteValue v, double vsOptimum, long overAlwaysOn, double controllable, SiteBacktestResult r, string name) => new()
    {
        ["controllable_captured"] = double.IsNaN(controllable) ? null : Math.Round(controllable, 6),
        // The halves: the controller's parameters were chosen on January–June; July–December was not looked at.
        ["controllable_captured_jan_jun"] = Round(r.ControllableCapturedInHalf(name, secondHalf: false)),
        ["controllable_captured_jul_dec"] = Round(r.ControllableCapturedInHalf(name, secondHalf: true)),
        ["value_jan_jun_micro_usd"] = r.HalfValues(name).FirstHalf,
        ["value_jul_dec_micro_usd"] = r.HalfValues(name).SecondHalf,
        ["value_over_always_on_micro_usd"] = overAlwaysOn,
        ["value_micro_usd"] = v.ValueMicroUsd,
        ["ai_revenue_micro_usd"] = v.AiRevenueMicroUsd,
        ["mining_revenue_micro_usd"] = v.MiningRevenueMicroUsd,
        ["energy_cost_micro_usd"] = v.EnergyCostMicroUsd,
        ["peak_charge_micro_usd"] = v.PeakChargeMicroUsd,
        ["restart_wear_micro_usd"] = v.RestartWearMicroUsd,
        ["curtailed_mwh"] = Math.Round(v.CurtailedMwh, 3),
        ["curtailed_hours"] = v.CurtailedHours,
        ["restarts"] = Math.Round(v.Restarts, 3),
        ["interconnect_violations"] = v.InterconnectViolations,
        ["ramp_violations"] = v.RampViolations,
        ["captured_vs_optimum"] = double.IsNaN(vsOptimum) ? null : Math.Round(vsOptimum, 6),
    };

    private static double? Round(double share) => double.IsNaN(share) ? null : Math.Round(share, 6);
}
