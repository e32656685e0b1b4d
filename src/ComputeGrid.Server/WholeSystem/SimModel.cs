using ComputeGrid.Inference.Model;

namespace ComputeGrid.Server.WholeSystem;

/// <summary>
/// The simulation's embedding model: a text of n words is n + 2 tokens (ids from each word's characters), its vector
/// a deterministic function of them. The real ONNX model costs milliseconds per request and decides nothing the
/// simulation checks (metering counts tokens; charging, routing and failover do not look at the vectors), so the
/// gateway, router, ledger and settler run for real around a model that costs nothing.
/// </summary>
public sealed class SimModel : IEmbeddingModel
{
    /// <summary>The model's id.</summary>
    public const string ModelId = "sim-embed";

    /// <inheritdoc />
    public string Id => ModelId;

    /// <inheritdoc />
    public int Dimensions => 8;

    /// <inheritdoc />
    public int MaxTokens => 64;

    /// <inheritdoc />
    public TokenizedInput Tokenize(string text)
    {
        string[] words = text.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        var ids = new long[words.Length + 2];
        ids[0] = 101;
        for (int i = 0; i < words.Length; i++)
        {
            long h = 1000;
            foreach (char c in words[i]) h = (h * 31 + c) % 30_000;
            ids[i + 1] = h;
        }
        ids[^1] = 102;
        return new TokenizedInput(Id, ids);
    }

    /// <inheritdoc />
    public void Embed(ReadOnlySpan<TokenizedInput> batch, Span<float> output)
    {
        for (int i = 0; i < batch.Length; i++) Vector(batch[i], output.Slice(i * Dimensions, Dimensions));
    }

    /// <summary>One input's vector, unit length.</summary>
    public static void Vector(TokenizedInput input, Span<float> row)
    {
        row.Clear();
        ReadOnlySpan<long> ids = input.InputIds;
        for (int j = 0; j < ids.Length; j++) row[(int)(ids[j] % row.Length)] += 1 + j % 3;
        float norm = 0;
        foreach (float v in row) norm += v * v;
        norm = MathF.Sqrt(norm);
        for (int j = 0; j < row.Length; j++) row[j] /= norm;
    }
}
