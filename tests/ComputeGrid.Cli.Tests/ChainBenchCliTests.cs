using System.Text.Json;

namespace ComputeGrid.Cli.Tests;

/// <summary>
/// `computegrid bench chain --quick` as a user runs it: its own Anvil and server, its settlement check passes (exit 0)
/// and its last line is the JSON object with every metric. No timing is judged here.
/// </summary>
public sealed class ChainBenchCliTests
{
    /// <summary>The metrics that are positive whatever the machine's speed.</summary>
    private static readonly string[] Positive =
    [
        "anchor_gas", "x402_verify_us_p50", "x402_paid_requests_per_s", "deposit_to_credit_ms_p50", "deposit_mined_to_credit_ms_p50", "deposit_count",
        "bridge_poll_interval_ms", "x402_settlement_sign_p50_ms", "fsync_p50_ms", "x402_verify_us_p99", "x402_verify_cpu_us_mean", "x402_verify_count",
        "keyed_path_p50_ms", "x402_paid_path_p50_ms", "x402_402_p50_ms", "overhead_pairs", "chain_read_p50_ms", "x402_facilitator_verify_p50_ms",
        "keyed_requests_per_s", "clients", "block_time_s", "x402_answer_p50_ms_block_time_2s", "x402_answer_p99_ms_block_time_2s",
        "keyed_answer_p50_ms_block_time_2s", "x402_settle_p50_ms_block_time_2s", "x402_settle_p99_ms_block_time_2s", "confirmations",
        "x402_paid_count", "x402_settled_count", "x402_paid_micro_usd", "anchor_op",
    ];

    /// <summary>Differences of two latencies: a number, of either sign.</summary>
    private static readonly string[] Signed = ["x402_overhead_p50_ms", "x402_overhead_p99_ms"];

    [Fact]
    public async Task Bench_chain_quick_settles_every_paid_request_once_and_ends_with_one_json_object()
    {
        var r = await CliRunner.RunAsync("bench", "chain", "--quick");
        Assert.True(r.Code == 0, r.Out + r.Err);
        string last = r.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries)[^1];
        using var doc = JsonDocument.Parse(last);
        Assert.Equal("chain", doc.RootElement.GetProperty("bench").GetString());
        JsonElement m = doc.RootElement.GetProperty("metrics");
        foreach (string key in Positive)
            Assert.True(m.TryGetProperty(key, out JsonElement v) && v.ValueKind == JsonValueKind.Number && v.GetDouble() > 0, key);
        foreach (string key in Signed)
            Assert.True(m.TryGetProperty(key, out JsonElement v) && v.ValueKind == JsonValueKind.Number, key);
        Assert.True(m.GetProperty("x402_settled_exactly_once").GetBoolean());
        Assert.Equal(m.GetProperty("x402_paid_count").GetInt64(), m.GetProperty("x402_settled_count").GetInt64());
        Assert.Equal(0, m.GetProperty("x402_refused_count").GetInt64());
        Assert.Equal(2, m.GetProperty("block_time_s").GetInt32());
    }
}
