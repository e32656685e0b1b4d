using System.Collections.Concurrent;
using ComputeGrid.Inference.Model;

namespace ComputeGrid.Inference.Tests.Model;

/// <summary>
/// A stand-in model for the batcher's mechanics: a text of n words becomes n + 2 tokens whose ids encode the
/// text's hash; its "vector" is (first word id, token count, 1, 0). Records every batch and can hold calls at a gate.
/// </summary>
internal sealed class FakeEmbeddingModel : IEmbeddingModel
{
    private readonly ManualResetEventSlim _gate = new(initialState: true);

    public string Id => "fake-model";

    public int Dimensions => 4;

    public int MaxTokens => 16;

    /// <summary>The size of every batch embedded, in order.</summary>
    public ConcurrentQueue<int> Batches { get; } = new();

    /// <summary>Every input embedded, by its first word id.</summary>
    public ConcurrentBag<long> Embedded { get; } = new();

    /// <summary>Set while a call waits at the gate.</summary>
    public SemaphoreSlim Entered { get; } = new(0);

    public Exception? FailNext { get; set; }

    /// <summary>The scheduling of the thread of every call: its nice value and its scheduler slice (Linux).</summary>
    public ConcurrentQueue<(int? Nice, TimeSpan? Slice)> Threads { get; } = new();

    public void Hold() => _gate.Reset();

    public void Release() => _gate.Set();

    public TokenizedInput Tokenize(string text)
    {
        string[] words = text.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        var ids = new long[words.Length + 2];
        ids[0] = 101;
        for (int i = 0; i < words.Length; i++)
        {
            ids[i + 1] = long.Parse(words[i], System.Globalization.CultureInfo.InvariantCulture);
        }
        ids[^1] = 102;
        return new TokenizedInput(Id, ids);
    }

    public void Embed(ReadOnlySpan<TokenizedInput> batch, Span<float> output)
    {
        Threads.Enqueue((ComputeGrid.Core.ThreadNice.CurrentThread(), ComputeGrid.Core.ThreadSlice.CurrentThread()));
        Entered.Release();
        _gate.Wait(TimeSpan.FromSeconds(30));
        if (FailNext is { } failure)
        {
            FailNext = null;
            throw failure;
        }
        Batches.Enqueue(batch.Length);
        for (int i = 0; i < batch.Length; i++)
        {
            var ids = batch[i].InputIds;
            long first = ids.Length > 2 ? ids[1] : -1;
            Embedded.Add(first);
            Span<float> row = output.Slice(i * Dimensions, Dimensions);
            row[0] = first;
            row[1] = batch[i].TokenCount;
            row[2] = 1;
            row[3] = 0;
        }
    }
}
