namespace ComputeGrid.Inference.Model;

/// <summary>
/// A sentence-embedding model the inference host serves: it tokenizes text (so callers can meter and reject
/// over-long input before any model work) and embeds batches of tokenized inputs into unit-length vectors.
/// </summary>
/// <remarks>Implementations are safe to call from several threads at once.</remarks>
public interface IEmbeddingModel
{
    /// <summary>The model's id as clients name it, e.g. <c>all-MiniLM-L6-v2</c>.</summary>
    string Id { get; }

    /// <summary>The length of each embedding vector.</summary>
    int Dimensions { get; }

    /// <summary>The most tokens (special tokens included) one input may have; longer inputs are refused, never truncated.</summary>
    int MaxTokens { get; }

    /// <summary>
    /// Tokenizes <paramref name="text"/> in full, special tokens included. The result's
    /// <see cref="TokenizedInput.TokenCount"/> may exceed <see cref="MaxTokens"/>: nothing is truncated.
    /// </summary>
    /// <param name="text">The text to embed.</param>
    TokenizedInput Tokenize(string text);

    /// <summary>
    /// Embeds a batch in one model call, writing each input's vector (L2-normalised, <see cref="Dimensions"/>
    /// floats) to <paramref name="output"/> row by row: input <c>i</c> goes to
    /// <c>output[(i * Dimensions)..((i + 1) * Dimensions)]</c>.
    /// </summary>
    /// <param name="batch">The inputs, each tokenized by this model and no longer than <see cref="MaxTokens"/>.</param>
    /// <param name="output">At least <c>batch.Length * Dimensions</c> floats.</param>
    /// <exception cref="ArgumentException">
    /// An input is too long or belongs to another model, or <paramref name="output"/> is too short.
    /// </exception>
    void Embed(ReadOnlySpan<TokenizedInput> batch, Span<float> output);
}
