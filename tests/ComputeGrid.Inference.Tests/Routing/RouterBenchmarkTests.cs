using ComputeGrid.Inference.Routing;
using Xunit.Abstractions;

namespace ComputeGrid.Inference.Tests.Routing;

public class RouterBenchmarkTests(ITestOutputHelper output)
{
    [Fact]
    public void Benchmark_runs_over_a_thousand_nodes_without_allocating()
    {
        RouterBenchmarkResult r = RouterBenchmark.Run(LatencyMatrixTests.Real, 1_000, TimeSpan.FromMilliseconds(500), seed: 42);
        output.WriteLine($"{r.Nodes} nodes, {r.Regions} regions: {r.Decisions:N0} decisions in {r.Elapsed.TotalMilliseconds:F0} ms "
            + $"= {r.DecisionsPerSecond:N0}/s ({r.DecisionsPerCpuSecond:N0} per CPU second), routed {r.Routed:N0}, allocated {r.AllocatedBytes} B");
        Assert.Equal(1_000, r.Nodes);
        Assert.True(r.Decisions >= 1024);
        Assert.True(r.Routed > r.Decisions / 2, "most benchmark requests should find a node");
        Assert.True(r.Routed < r.Decisions, "the mix should include requests its preferences leave without a node");
        Assert.Equal(0, r.AllocatedBytes);
    }
}
