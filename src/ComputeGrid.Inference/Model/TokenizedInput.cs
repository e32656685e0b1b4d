namespace ComputeGrid.Inference.Model;

/// <summary>
/// One text after tokenization for a specific model: the word-piece ids the model will see, special tokens
/// included (for BERT-style models <c>[CLS] … [SEP]</c>), never truncated. Immutable, so one instance can be
/// shared between threads and batched with others.
/// </summary>
/// <remarks>
/// <see cref="TokenCount"/> is the full length of the text in model tokens. When it is above the model's
/// <see cref="IEmbeddingModel.MaxTokens"/> the input cannot be embedded; callers check
/// <see cref="ExceedsLimitOf"/> (or compare the count themselves) and reject the request.
/// </remarks>
public sealed class TokenizedInput
{
    private readonly long[] _ids;

    /// <summary>Creates an input from token ids (copied), special tokens included.</summary>
    /// <param name="modelId">The id of the model whose vocabulary produced the ids.</param>
    /// <param name="inputIds">The token ids, special tokens included; at least one.</param>
    /// <exception cref="ArgumentException">The model id is empty or there are no ids.</exception>
    public TokenizedInput(string modelId, ReadOnlySpan<long> inputIds)
        : this(modelId, inputIds.ToArray())
    {
    }

    /// <summary>Wraps an array the caller hands over (no copy).</summary>
    internal TokenizedInput(string modelId, long[] inputIds)
    {
        ArgumentException.ThrowIfNullOrEmpty(modelId);
        ArgumentNullException.ThrowIfNull(inputIds);
        if (inputIds.Length == 0)
        {
            throw new ArgumentException("A tokenized input holds at least one token.", nameof(inputIds));
        }
        ModelId = modelId;
        _ids = inputIds;
    }

    /// <summary>The id of the model whose vocabulary produced these ids; only that model can embed them.</summary>
    public string ModelId { get; }

    /// <summary>The token ids the model sees, special tokens included.</summary>
    public ReadOnlySpan<long> InputIds => _ids;

    /// <summary>
    /// The number of tokens, special tokens included and padding excluded: what is metered and what is
    /// compared with <see cref="IEmbeddingModel.MaxTokens"/>.
    /// </summary>
    public int TokenCount => _ids.Length;

    /// <summary>Whether this input is too long for <paramref name="model"/> (its count is above the model's maximum).</summary>
    /// <param name="model">The model that would embed the input.</param>
    public bool ExceedsLimitOf(IEmbeddingModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        return TokenCount > model.MaxTokens;
    }

    /// <summary>The ids without a copy, for models in this assembly.</summary>
    internal long[] Ids => _ids;
}
