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

    /// <summary>A full, compacting collection, so a measured phase does not pay for the one before it.</summary>
    public static void Collect()
    {
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: true);
        GC.WaitForPendingFinalizers();
    }

    /// <summary>Writes a progress line, numbers in the invariant culture.</summary>
    public static void Line(TextWriter output, FormattableString text) => output.WriteLine(FormattableString.Invariant(text));

    /// <summary>One JSON object on one line (a bench's last line).</summary>
    public static string Json(Action<System.Text.Json.Utf8JsonWriter> body)
    {
        using var stream = new MemoryStream();
        using (var w = new System.Text.Json.Utf8JsonWriter(stream))
        {
            w.WriteStartObject();
            body(w);
            w.WriteEndObject();
        }
        return System.Text.Encoding.UTF8.GetString(stream.ToArray());
    }
}
