namespace ComputeGrid.Inference.Model;

/// <summary>Settings of an <see cref="EmbeddingBatcher"/>.</summary>
public sealed record EmbeddingBatcherOptions
{
    /// <summary>The most inputs (sentences) one model call embeds. Default 32.</summary>
    public int MaxBatchSize { get; init; } = 32;

    /// <summary>
    /// How long a batch waits, after its first input is taken, for more inputs before it runs part-full (only while
    /// no other worker is running). Default zero: a free worker runs what is queued at once, and the requests that
    /// arrive while it runs make the next batch; on a CPU, batches of 8 run about as fast per sentence as batches of
    /// 32. A model whose throughput grows steeply with the batch (a GPU) may want a few milliseconds.
    /// </summary>
    public TimeSpan MaxWait { get; init; }

    /// <summary>
    /// Wait for a batch to fill only while requests arrive concurrently (the previous batch held more than one input):
    /// a lone request then runs at once, and a busy node still fills its batches. Default false.
    /// </summary>
    public bool WaitOnlyUnderLoad { get; init; }

    /// <summary>
    /// The most inputs that may wait in the queue; a request that would go above it is rejected with
    /// <see cref="EmbeddingQueueFullException"/>. Default 4096.
    /// </summary>
    public int MaxQueuedInputs { get; init; } = 4096;

    /// <summary>
    /// How many batches may run at once, each on its own dedicated thread. Default 1. Pair it with the model's own
    /// threads per call: see <see cref="ModelParallelism"/>.
    /// </summary>
    public int Workers { get; init; } = 1;

    /// <summary>
    /// The nice value of the worker threads on Linux (0 normal, up to 19 lowest; see
    /// <see cref="ComputeGrid.Core.ThreadNice"/>). A server that runs its model on the cores that also serve its
    /// requests sets it above 0, so the request path is never queued behind a model call. Default 0.
    /// </summary>
    public int WorkerNice { get; init; }

    /// <summary>
    /// The time slice the worker threads ask Linux's scheduler for (see <see cref="ComputeGrid.Core.ThreadSlice"/>), or
    /// null for the kernel's default. A long slice (the server's choice) keeps the workers' share of the CPU but lets any
    /// other thread woken onto a worker's core preempt the model call at once. Default null.
    /// </summary>
    public TimeSpan? WorkerSlice { get; init; }

    internal void Validate()
    {
        if (WorkerSlice is { } slice)
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(slice, ComputeGrid.Core.ThreadSlice.Min, nameof(WorkerSlice));
            ArgumentOutOfRangeException.ThrowIfGreaterThan(slice, ComputeGrid.Core.ThreadSlice.Max, nameof(WorkerSlice));
        }
        ArgumentOutOfRangeException.ThrowIfLessThan(WorkerNice, 0, nameof(WorkerNice));
        ArgumentOutOfRangeException.ThrowIfGreaterThan(WorkerNice, 19, nameof(WorkerNice));
        ArgumentOutOfRangeException.ThrowIfLessThan(Workers, 1, nameof(Workers));
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxBatchSize, 1, nameof(MaxBatchSize));
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxWait, TimeSpan.Zero, nameof(MaxWait));
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxQueuedInputs, 1, nameof(MaxQueuedInputs));
    }
}

/// <summary>
/// The vectors of one <see cref="EmbeddingBatcher.EmbedAsync"/> request, in input order, with what it is metered on.
/// </summary>
public sealed class EmbeddingResult
{
    private readonly float[] _data;

    internal EmbeddingResult(float[] data, int count, int dimensions, int tokenCount, TimeSpan modelTime)
    {
        _data = data;
        Count = count;
        Dimensions = dimensions;
        TokenCount = tokenCount;
        ModelTime = modelTime;
    }

    /// <summary>The number of vectors (one per input).</summary>
    public int Count { get; }

    /// <summary>The length of each vector.</summary>
    public int Dimensions { get; }

    /// <summary>The request's tokens: the sum of its inputs' real tokens (special tokens included, padding not).</summary>
    public int TokenCount { get; }

    /// <summary>
    /// The model time charged to the request: each batch's model-call time shared among the requests in it in
    /// proportion to their real tokens in that batch.
    /// </summary>
    public TimeSpan ModelTime { get; }

    /// <summary>All vectors, row after row (<see cref="Count"/> × <see cref="Dimensions"/> floats).</summary>
    public ReadOnlyMemory<float> Vectors => _data;

    /// <summary>The unit-length vector of input <paramref name="index"/>.</summary>
    /// <param name="index">The input's position in the request.</param>
    public ReadOnlyMemory<float> GetVector(int index)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, Count);
        return _data.AsMemory(index * Dimensions, Dimensions);
    }
}

/// <summary>A snapshot of an <see cref="EmbeddingBatcher"/>'s counters since it started.</summary>
/// <param name="BatchesRun">Model calls made.</param>
/// <param name="SentencesEmbedded">Inputs embedded (over all batches).</param>
/// <param name="TokensEmbedded">Real tokens embedded (padding excluded).</param>
/// <param name="RequestsCompleted">Requests answered with vectors.</param>
/// <param name="RequestsRejected">Requests refused because the queue was full.</param>
/// <param name="RequestsCanceled">Requests canceled by their callers before they completed.</param>
/// <param name="RequestsFailed">Requests failed by a model error.</param>
/// <param name="ModelTime">Total time spent in model calls.</param>
/// <param name="QueuedInputs">Inputs waiting in the queue now.</param>
public readonly record struct EmbeddingBatcherStats(
    long BatchesRun,
    long SentencesEmbedded,
    long TokensEmbedded,
    long RequestsCompleted,
    long RequestsRejected,
    long RequestsCanceled,
    long RequestsFailed,
    TimeSpan ModelTime,
    int QueuedInputs)
{
    /// <summary>The mean number of inputs per model call (0 before the first).</summary>
    public double AverageBatchSize => BatchesRun == 0 ? 0 : (double)SentencesEmbedded / BatchesRun;
}

/// <summary>
/// Thrown (in the returned task) by <see cref="EmbeddingBatcher.EmbedAsync"/> when the request's inputs do not fit
/// in the bounded queue: the host is overloaded and the client should retry later (HTTP 429/503).
/// </summary>
public sealed class EmbeddingQueueFullException : InvalidOperationException
{
    /// <summary>Creates the exception with a default message.</summary>
    public EmbeddingQueueFullException()
        : base("The embedding queue is full; retry later.")
    {
    }

    /// <summary>Creates the exception with a message.</summary>
    /// <param name="message">What was refused and why.</param>
    public EmbeddingQueueFullException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and an inner exception.</summary>
    /// <param name="message">What was refused and why.</param>
    /// <param name="innerException">The cause.</param>
    public EmbeddingQueueFullException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
