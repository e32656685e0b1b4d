using System.Text.Json;

namespace ComputeGrid.Cli.Tests;

/// <summary>`computegrid bench tokens` as a user runs it: its checks pass and its last line is the JSON object.</summary>
public sealed class TokensBenchCliTests
{
    [Fact]
    public async Task Bench_tokens_quick_ends_with_one_json_object()
    {
        var r = await CliRunner.RunAsync("bench", "tokens", "--quick");
        Assert.True(r.Code == 0, r.Out + r.Err);
        string last = r.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries)[^1];
        using var doc = JsonDocument.Parse(last);
        Assert.Equal("tokens", doc.RootElement.GetProperty("bench").GetString());
        var m = doc.RootElement.GetProperty("metrics");
        foreach (var key in new[] { "payments_per_s_10_holders", "payments_per_s_1m_holders", "holder_scaling_ratio", "naive_payments_per_s_1m_holders",
            "ledger_only_payments_per_s", "projection_payments_per_s" })
            Assert.True(m.GetProperty(key).GetDouble() > 0, key);
        Assert.Equal(1_000_000, m.GetProperty("large_holders").GetInt32());
    }
}
