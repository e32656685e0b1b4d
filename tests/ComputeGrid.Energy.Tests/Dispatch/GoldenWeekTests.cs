using System.Text.Json;
using System.Text.Json.Nodes;
using ComputeGrid.Energy.Backtesting;
using ComputeGrid.Energy.Dispatch;
using ComputeGrid.Energy.Sites;

namespace ComputeGrid.Energy.Tests.Dispatch;

/// <summary>
/// The golden scenario: the reference site over a fixed real week (23–30 August 2021, ERCOT West, with the August 4CP
/// peak of 24 August) and its summary figures checked in under <c>Golden/</c>. Policies are deterministic, so their
/// figures must match to the micro-dollar; the LP's value and the bounds must match within a solver tolerance. To re-bless after an
/// intended change, run with <c>CG_UPDATE_GOLDEN=1</c> and review the diff.
/// </summary>
public class GoldenWeekTests
{
    private static readonly DateTime From = new(2021, 8, 23, 5, 0, 0, DateTimeKind.Utc);
    private const string FileName = "ercot-west-reference-2021-08-23.json";

    [Fact]
    public void The_reference_week_matches_its_checked_in_summary()
    {
        BuiltSite site = ReferenceSite.Week(From);
        // Scored as part of the series: the policies meet the week in the state the year brings them to.
        SiteBacktestResult result = SiteBacktest.Run(site, history: ReferenceSite.Whole());
        JsonObject actual = BacktestSummary.ToJson(result);

        string source = Path.Combine(ReferenceSite.RepoRoot(), "tests", "ComputeGrid.Energy.Tests", "Golden", FileName);
        if (Environment.GetEnvironmentVariable("CG_UPDATE_GOLDEN") == "1")
            File.WriteAllText(source, actual.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
        JsonObject expected = JsonNode.Parse(File.ReadAllText(source))!.AsObject();

        Assert.Equal(expected["intervals"]!.GetValue<int>(), actual["intervals"]!.GetValue<int>());
        Assert.Equal(expected["peak_hours_utc"]!.ToJsonString(), actual["peak_hours_utc"]!.ToJsonString());
        foreach (string policy in new[] { "controller", "day-ahead", "myopic", "always-on", "threshold" })
        {
            JsonObject e = expected["policies"]![policy]!.AsObject(), a = actual["policies"]![policy]!.AsObject();
            foreach (string field in new[] { "value_micro_usd", "ai_revenue_micro_usd", "mining_revenue_micro_usd", "energy_cost_micro_usd", "peak_charge_micro_usd", "restart_wear_micro_usd" })
                Assert.True(e[field]!.GetValue<long>() == a[field]!.GetValue<long>(), $"{policy}.{field}: expected {e[field]}, got {a[field]}");
        }
        // The LP's value and the bounds may differ by the solvers' tolerance, not more.
        foreach ((string name, JsonNode? e, JsonNode? a) in new[]
        {
            ("optimum", expected["policies"]!["optimum"]!["value_micro_usd"], actual["policies"]!["optimum"]!["value_micro_usd"]),
            ("lp_bound_micro_usd", expected["lp_bound_micro_usd"], actual["lp_bound_micro_usd"]),
            ("integer_upper_bound_micro_usd", expected["integer_upper_bound_micro_usd"], actual["integer_upper_bound_micro_usd"]),
            ("whole_miner_value_micro_usd", expected["whole_miner_value_micro_usd"], actual["whole_miner_value_micro_usd"]),
        })
        {
            long ev = e!.GetValue<long>(), av = a!.GetValue<long>();
            Assert.True(Math.Abs(ev - av) <= 1e-6 * Math.Abs(ev) + 1_000_000, $"{name}: expected {ev}, got {av}");
        }

        // The figures that make the scenario worth having: the week holds the August system peak; the controller
        // catches it (pays only the AI share of the 4CP).
        Assert.Single(site.PeakHoursUtc);

        // The honest score: each policy's share of what dispatch controls (the tightest proved bound − always-on), in the
        // summary too. Whole miners cannot fill the interconnect as the LP's fractional ones do: the integer bound is the
        // tighter, and the LP's own schedule scores above 1 against it.
        long lpBound = actual["lp_bound_micro_usd"]!.GetValue<long>(), integerBound = actual["integer_upper_bound_micro_usd"]!.GetValue<long>();
        Assert.True(integerBound < lpBound);
        Assert.Equal(SiteBacktestResult.IntegerBoundName, actual["scored_against"]!.GetValue<string>());
        Assert.Equal(integerBound, actual["scored_bound_micro_usd"]!.GetValue<long>());
        long alwaysOn = result.Run("always-on").Value.ValueMicroUsd;
        long controllable = integerBound - alwaysOn;
        Assert.Equal(controllable, actual["controllable_value_micro_usd"]!.GetValue<long>());
        Assert.Equal(0.0, actual["policies"]!["always-on"]!["controllable_captured"]!.GetValue<double>());
        Assert.True(actual["policies"]!["optimum"]!["controllable_captured"]!.GetValue<double>() > 1);
        double wholeMiners = actual["policies"]![SiteBacktestResult.WholeMinersName]!["controllable_captured"]!.GetValue<double>();
        Assert.InRange(wholeMiners, 0.999, 1.0);
        foreach (string policy in new[] { "controller", "rule-based", "day-ahead", "myopic", "threshold" })
        {
            long over = result.Run(policy).Value.ValueMicroUsd - alwaysOn;
            Assert.Equal(over, actual["policies"]![policy]!["value_over_always_on_micro_usd"]!.GetValue<long>());
            Assert.Equal(Math.Round((double)over / controllable, 6), actual["policies"]![policy]!["controllable_captured"]!.GetValue<double>(), 6);
            Assert.True(actual["policies"]![policy]!["controllable_captured"]!.GetValue<double>() <= 1.0);
        }
        // Scored on what dispatch controls (the share of the whole optimum is near 1 for any policy): the controller beats
        // myopic and always-on on the week that holds August's peak.
        Assert.True(result.ControllableCaptured() > Math.Max(0, result.ControllableCaptured("myopic")), $"controller {result.ControllableCaptured():P1}, myopic {result.ControllableCaptured("myopic"):P1}");
        Assert.True(result.Controller.Value.PeakChargeMicroUsd < result.Run("myopic").Value.PeakChargeMicroUsd);
    }
}
