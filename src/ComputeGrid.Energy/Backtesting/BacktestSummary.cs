using System.Globalization;
using System.Text.Json.Nodes;
using ComputeGrid.Energy.Dispatch;

namespace ComputeGrid.Energy.Backtesting;

/// <summary>A backtest's figures as JSON: what <c>computegrid backtest</c> writes to <c>summary.json</c>, and what the golden test checks in.</summary>
public static class BacktestSummary
{
    /// <summary>The summary of <paramref name="r"/>: the site, its period and peak hours, and each policy's (and the optimum's) money in micro-USD.</summary>
    public static JsonObject ToJson(SiteBacktestResult r)
    {
        var policies = new JsonObject();
        long alwaysOn = r.Run(SiteBacktestResult.AlwaysOn).Value.ValueMicroUsd;
        if (r.OptimumValue is { } o) policies["optimum"] = Policy(o, 1.0, checked(o.ValueMicroUsd - alwaysOn), 1.0, r, SiteBacktestResult.OptimumName);
        foreach (PolicyRun run in r.Runs) policies[run.Policy] = Policy(run.Value, r.CapturedVsOptimum(run.Policy), r.OverAlwaysOnMicroUsd(run.Policy), r.ControllableCaptured(run.Policy), r, run.Policy);
        return new JsonObject
        {
            ["site"] = r.Site.Config.Name,
            ["from_utc"] = r.Site.Problem.StartUtc.ToString("O", CultureInfo.InvariantCulture),
            ["intervals"] = r.Site.Problem.Count,
            ["peak_hours_utc"] = new JsonArray(r.Site.PeakHoursUtc.Select(h => (JsonNode)h.ToString("O", CultureInfo.InvariantCulture)).ToArray()),
            ["lp_seconds"] = r.Optimum is null ? null : Math.Round(r.OptimumTime.TotalSeconds, 3),
            ["lp_solver"] = r.Optimum?.Solver,
            // What dispatch controls (optimum − always-on): the denominator of every policy's controllable_captured.
            ["controllable_value_micro_usd"] = r.ControllableValueMicroUsd,
            ["policies"] = policies,
        };
    }

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
