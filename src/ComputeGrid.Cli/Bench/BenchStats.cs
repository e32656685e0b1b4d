namespace ComputeGrid.Cli.Bench;

/// <summary>Statistics shared by the benchmarks.</summary>
internal static class BenchStats
{
    /// <summary>Nearest-rank percentile of sorted values (the default value when there are none).</summary>
    /// <param name="sorted">Values in ascending order.</param>
    /// <param name="p">The fraction, e.g. 0.99.</param>
    public static T Percentile<T>(IReadOnlyList<T> sorted, double p)
    {
        if (sorted.Count == 0) return default!;
        int rank = (int)Math.Ceiling(p * sorted.Count);
        return sorted[Math.Clamp(rank - 1, 0, sorted.Count - 1)];
    }
}
