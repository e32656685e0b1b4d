using System.Text.Json;

namespace ComputeGrid.Cli.Tests;

/// <summary>`computegrid bench fleet --quick` as a user runs it: its last line is the JSON object, with the LP above both policies and no bound broken.</summary>
public sealed class FleetBenchCliTests
{
    [Fact]
    public async Task Bench_fleet_quick_ends_with_one_json_object_whose_LP_bounds_both_policies()
    {
        var r = await CliRunner.RunAsync("bench", "fleet", "--quick");
        Assert.True(r.Code == 0, r.Out + r.Err);
        string last = r.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries)[^1];
        using var doc = JsonDocument.Parse(last);
        Assert.Equal("fleet", doc.RootElement.GetProperty("bench").GetString());
        var m = doc.RootElement.GetProperty("metrics");
        double lp = m.GetProperty("value_lp_usd").GetDouble();
        double ours = m.GetProperty("value_power_aware_usd").GetDouble();
        double baseline = m.GetProperty("value_latency_only_usd").GetDouble();
        Assert.True(lp >= ours && lp >= baseline, last);
        Assert.Equal(0, m.GetProperty("latency_bound_violations").GetDouble());
        Assert.Equal(0, m.GetProperty("capacity_violations").GetInt32());
        Assert.Equal(0, m.GetProperty("interconnect_violations").GetInt32());
        // The share is what the formula says of the three values (rounded to the cent in the JSON).
        double captured = m.GetProperty("controllable_captured").GetDouble();
        Assert.Equal((ours - baseline) / (lp - baseline), captured, 4);
        Assert.Equal(Math.Round(ours - baseline, 2), m.GetProperty("gain_vs_latency_only_usd").GetDouble(), 2);
        Assert.Equal(1, m.GetProperty("seed").GetInt32());
        Assert.Equal(3, m.GetProperty("sites").GetInt32());
        Assert.Equal(13, m.GetProperty("regions").GetInt32());
    }

    [Fact]
    public async Task Bench_fleet_refuses_a_negative_seed_with_exit_2_and_one_line()
    {
        var r = await CliRunner.RunAsync("bench", "fleet", "--quick", "--seed", "-1");
        Assert.Equal(2, r.Code);
        Assert.Single(r.Err.Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }
}
