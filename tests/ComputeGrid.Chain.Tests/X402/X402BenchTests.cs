using ComputeGrid.Chain.X402;

namespace ComputeGrid.Chain.Tests.X402;

/// <summary>The verify benchmark runs its own payments through the real verifier (no time thresholds here: speed is the bench's job).</summary>
public class X402BenchTests
{
    [Fact]
    public void The_verify_benchmark_verifies_every_payment_and_reports_ordered_percentiles()
    {
        var latency = X402Bench.VerifyLatency(iterations: 40, seed: 7);
        Assert.Equal(40, latency.Iterations);
        Assert.True(latency.P50Microseconds > 0);
        Assert.True(latency.P99Microseconds >= latency.P50Microseconds);
        Assert.True(latency.CpuMicrosecondsMean > 0);
    }
}
