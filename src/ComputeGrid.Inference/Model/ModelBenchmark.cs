using System.Diagnostics;

namespace ComputeGrid.Inference.Model;

/// <summary>The throughput of one batch size in a <see cref="ModelBenchmark.RunSweep"/>.</summary>
/// <param name="BatchSize">Inputs per model call.</param>
/// <param name="SentencesPerSecond">Sentences embedded per second of wall time, all workers together.</param>
/// <param name="Sentences">Sentences embedded in the measured time.</param>
/// <param name="Elapsed">The measured wall time.</param>
/// <param name="Workers">Threads calling the model at once, each with its own batches.</param>
public readonly record struct BatchThroughput(int BatchSize, double SentencesPerSecond, long Sentences, TimeSpan Elapsed, int Workers = 1);

/// <summary>The results of a <see cref="ModelBenchmark.RunSweep"/>, one per batch size, and the best of them.</summary>
/// <param name="Results">One entry per batch size, in the order asked.</param>
public sealed record ModelBenchmarkResult(IReadOnlyList<BatchThroughput> Results)
{
    /// <summary>The batch size with the highest throughput.</summary>
    public BatchThroughput Best => Results.MaxBy(r => r.SentencesPerSecond);
}

/// <summary>
/// Measures how many sentences per second a model embeds (for <c>computegrid bench inference</c>). The sentences
/// are tokenized once beforehand; the timed loop is the model calls alone (padding, ONNX Runtime, pooling),
/// cycling through the sentences in batches of the given size, on one thread or on several at once (each with its own
/// batches), as <see cref="EmbeddingBatcherOptions.Workers"/> runs them.
/// </summary>
public static class ModelBenchmark
{
    /// <summary>The batch sizes <see cref="RunSweep"/> tries when none are given.</summary>
    public static IReadOnlyList<int> DefaultBatchSizes { get; } = [1, 8, 32];

    /// <summary>Embeds <paramref name="sentences"/> in batches of <paramref name="batchSize"/> for about <paramref name="duration"/>.</summary>
    /// <param name="model">The model to measure.</param>
    /// <param name="sentences">The sentences to cycle through; each must fit the model's token limit.</param>
    /// <param name="batchSize">Inputs per model call.</param>
    /// <param name="duration">How long to measure (after one warm-up call); at least one batch is always timed.</param>
    /// <param name="workers">Threads calling the model at once.</param>
    /// <returns>Sentences per second of wall time.</returns>
    public static double Run(IEmbeddingModel model, string[] sentences, int batchSize, TimeSpan duration, int workers = 1) =>
        Measure(model, Tokenize(model, sentences), batchSize, duration, workers).SentencesPerSecond;

    /// <summary>Runs <see cref="Run"/> for each batch size and reports each and the best.</summary>
    /// <param name="model">The model to measure.</param>
    /// <param name="sentences">The sentences to cycle through.</param>
    /// <param name="batchSizes">The batch sizes to try; <see cref="DefaultBatchSizes"/> when null.</param>
    /// <param name="durationEach">How long to measure each batch size.</param>
    /// <param name="workers">Threads calling the model at once.</param>
    public static ModelBenchmarkResult RunSweep(
        IEmbeddingModel model, string[] sentences, IReadOnlyList<int>? batchSizes, TimeSpan durationEach, int workers = 1)
    {
        var inputs = Tokenize(model, sentences);
        batchSizes ??= DefaultBatchSizes;
        if (batchSizes.Count == 0)
        {
            throw new ArgumentException("Give at least one batch size.", nameof(batchSizes));
        }
        var results = new BatchThroughput[batchSizes.Count];
        for (int i = 0; i < results.Length; i++)
        {
            results[i] = Measure(model, inputs, batchSizes[i], durationEach, workers);
        }
        return new ModelBenchmarkResult(results);
    }

    private static TokenizedInput[] Tokenize(IEmbeddingModel model, string[] sentences)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(sentences);
        if (sentences.Length == 0)
        {
            throw new ArgumentException("Give at least one sentence.", nameof(sentences));
        }
        var inputs = new TokenizedInput[sentences.Length];
        for (int i = 0; i < inputs.Length; i++)
        {
            inputs[i] = model.Tokenize(sentences[i]);
            if (inputs[i].TokenCount > model.MaxTokens)
            {
                throw new ArgumentException(
                    $"Sentence {i} has {inputs[i].TokenCount} tokens; {model.Id} takes at most {model.MaxTokens}.", nameof(sentences));
            }
        }
        return inputs;
    }

    private static BatchThroughput Measure(IEmbeddingModel model, TokenizedInput[] inputs, int batchSize, TimeSpan duration, int workers)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(workers, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(duration.Ticks, nameof(duration));

        // Batches cycle through the sentences; build them once so the timed loop only calls the model.
        int batchCount = Math.Max(1, (inputs.Length + batchSize - 1) / batchSize);
        var batches = new TokenizedInput[batchCount][];
        int next = 0;
        for (int b = 0; b < batchCount; b++)
        {
            batches[b] = new TokenizedInput[batchSize];
            for (int i = 0; i < batchSize; i++)
            {
                batches[b][i] = inputs[next];
                next = (next + 1) % inputs.Length;
            }
        }

        // Each worker warms up with one call; the clock starts once all are ready, and each runs until it has passed.
        long sentences = 0;
        Exception? failure = null;
        using var ready = new CountdownEvent(workers);
        using var go = new ManualResetEventSlim();
        var watch = new Stopwatch();
        var threads = new Thread[workers];
        for (int w = 0; w < workers; w++)
        {
            int first = w % batchCount;
            threads[w] = new Thread(() =>
            {
                var output = new float[batchSize * model.Dimensions];
                int k = first;
                long mine = 0;
                bool signaled = false;
                try
                {
                    model.Embed(batches[k], output); // warm-up
                    signaled = true;
                    ready.Signal();
                    go.Wait();
                    do
                    {
                        model.Embed(batches[k], output);
                        mine += batchSize;
                        k = (k + 1) % batchCount;
                    }
                    while (watch.Elapsed < duration);
                    Interlocked.Add(ref sentences, mine);
                }
                catch (Exception e)
                {
                    Interlocked.CompareExchange(ref failure, e, null);
                    if (!signaled)
                    {
                        ready.Signal();
                    }
                }
            }) { IsBackground = true, Name = $"model-bench-{w}" };
            threads[w].Start();
        }
        ready.Wait();
        watch.Start();
        go.Set();
        foreach (var thread in threads)
        {
            thread.Join();
        }
        watch.Stop();
        if (failure is not null)
        {
            throw new InvalidOperationException($"The model failed during the benchmark: {failure.Message}", failure);
        }
        return new BatchThroughput(batchSize, sentences / watch.Elapsed.TotalSeconds, sentences, watch.Elapsed, workers);
    }
}
