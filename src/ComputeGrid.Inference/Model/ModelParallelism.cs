namespace ComputeGrid.Inference.Model;

/// <summary>
/// How a CPU model host splits its cores: <see cref="Workers"/> batches side by side (the batcher's
/// <see cref="EmbeddingBatcherOptions.Workers"/>), each model call using <see cref="IntraOpThreads"/> threads.
/// </summary>
/// <param name="Workers">Batches that run at once, each on its own thread.</param>
/// <param name="IntraOpThreads">ONNX Runtime intra-op threads per model call.</param>
/// <remarks>
/// On a CPU, one call spread over every core loses to single-threaded calls side by side: the threads of one call
/// meet at a barrier after every operator, and on a server whose other threads (HTTP, ledger) take a core now and
/// then, the whole call waits for the slowest. Measured with all-MiniLM-L6-v2 on a 2-core VM, batches of 32: two
/// single-threaded workers embedded 410–500 sentences/s, one two-threaded call 350–390; for a lone sentence the
/// single-threaded call is slower (6.7 ms against 5.1 ms), which a loaded server does not see.
/// </remarks>
public readonly record struct ModelParallelism(int Workers, int IntraOpThreads)
{
    /// <summary>The most workers <see cref="ForProcessors"/> gives; beyond it, each call gets more threads.</summary>
    public const int MaxWorkers = 8;

    /// <summary>The split for this machine's <see cref="Environment.ProcessorCount"/>.</summary>
    public static ModelParallelism Default => ForProcessors(Environment.ProcessorCount);

    /// <summary>
    /// One single-threaded worker per core up to <see cref="MaxWorkers"/>; with more cores,
    /// <see cref="MaxWorkers"/> workers share them.
    /// </summary>
    /// <param name="processors">The cores to use; at least 1.</param>
    public static ModelParallelism ForProcessors(int processors)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(processors, 1);
        int workers = Math.Min(processors, MaxWorkers);
        return new ModelParallelism(workers, processors / workers);
    }

    /// <inheritdoc />
    public override string ToString() =>
        $"{Workers} worker{(Workers == 1 ? "" : "s")} × {IntraOpThreads} thread{(IntraOpThreads == 1 ? "" : "s")}";
}
