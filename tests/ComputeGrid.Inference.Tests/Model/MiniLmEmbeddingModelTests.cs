using ComputeGrid.Inference.Model;

namespace ComputeGrid.Inference.Tests.Model;

[Collection(MiniLmCollection.Name)]
public sealed class MiniLmEmbeddingModelTests(MiniLmFixture fixture)
{
    private static readonly string[] Sentences =
    [
        "A man is playing a guitar.",
        "Someone plays the guitar.",
        "The stock market fell sharply today.",
        "The quick brown fox jumps over the lazy dog.",
        "How do I reset my password?",
        "GPUs are rented by the hour on the ComputeGrid exchange.",
        "Electricity prices spiked to $900/MWh during the heatwave, so the miners were curtailed.",
        "I love pizza",
        "Photosynthesis converts light energy into chemical energy stored in glucose, which plants use to grow.",
        "What's the weather like in Berlin tomorrow?",
        "UNSTOPPABLE!!! tokenization of hyphenated-words, numbers like 3.14159 and e-mail@example.com",
    ];

    private MiniLmEmbeddingModel Model => fixture.Model;

    [Fact]
    public void Describes_the_model()
    {
        Assert.Equal("all-MiniLM-L6-v2", Model.Id);
        Assert.Equal(384, Model.Dimensions);
        Assert.Equal(256, Model.MaxTokens);
    }

    [Fact]
    public void Vectors_match_the_packages_own_encoder()
    {
        var ours = new float[Sentences.Length * Model.Dimensions];
        Model.Embed(Sentences.Select(Model.Tokenize).ToArray(), ours);
        float[][] reference = fixture.Reference.Encode(Sentences);

        Assert.Equal(Sentences.Length, reference.Length);
        for (int i = 0; i < Sentences.Length; i++)
        {
            double cosine = Vectors.Cosine(ours.AsSpan(i * Model.Dimensions, Model.Dimensions), reference[i]);
            Assert.True(cosine >= 0.999, $"'{Sentences[i]}': cosine {cosine:F6} with the reference encoder");
        }
    }

    [Fact]
    public void Vectors_have_unit_length()
    {
        foreach (string sentence in Sentences.Append(""))
        {
            Assert.Equal(1.0, Vectors.Norm(fixture.EmbedOne(sentence)), 5);
        }
    }

    [Fact]
    public void A_paraphrase_is_closer_than_an_unrelated_sentence()
    {
        float[] guitar = fixture.EmbedOne("A man is playing a guitar.");
        float[] paraphrase = fixture.EmbedOne("Someone plays the guitar.");
        float[] unrelated = fixture.EmbedOne("The stock market fell sharply today.");
        float[] market = fixture.EmbedOne("Share prices dropped steeply this afternoon.");

        double close = Vectors.Cosine(guitar, paraphrase);
        double far = Vectors.Cosine(guitar, unrelated);
        Assert.True(close > 0.6, $"paraphrase cosine {close:F3}");
        Assert.True(far < 0.2, $"unrelated cosine {far:F3}");
        Assert.True(Vectors.Cosine(unrelated, market) > Vectors.Cosine(unrelated, paraphrase));
    }

    [Fact]
    public void A_batch_gives_the_same_vectors_as_one_at_a_time()
    {
        var batch = Sentences.Select(Model.Tokenize).ToArray();
        var batched = new float[batch.Length * Model.Dimensions];
        Model.Embed(batch, batched);

        for (int i = 0; i < Sentences.Length; i++)
        {
            float diff = Vectors.MaxAbsDiff(batched.AsSpan(i * Model.Dimensions, Model.Dimensions), fixture.EmbedOne(Sentences[i]));
            Assert.True(diff <= 1e-5f, $"'{Sentences[i]}': max difference {diff:E2}");
        }
    }

    [Fact]
    public void Tokenizes_with_lower_cased_word_pieces_between_CLS_and_SEP()
    {
        // bert-base-uncased vocabulary: [CLS]=101, a=1037, man=2158, is=2003, playing=2652, guitar=2858, .=1012, [SEP]=102
        var input = Model.Tokenize("A man is playing a guitar.");
        Assert.Equal(9, input.TokenCount);
        Assert.Equal([101L, 1037, 2158, 2003, 2652, 1037, 2858, 1012, 102], input.InputIds.ToArray());
        Assert.Equal("all-MiniLM-L6-v2", input.ModelId);

        Assert.Equal(Model.Tokenize("a man is playing a guitar.").InputIds.ToArray(), input.InputIds.ToArray());
        Assert.Equal(Model.Tokenize("cafe").InputIds.ToArray(), Model.Tokenize("Café").InputIds.ToArray()); // accents stripped
        Assert.Equal(2, Model.Tokenize("").TokenCount);
        Assert.Equal(5, Model.Tokenize("unaffable").TokenCount); // [CLS] un ##aff ##able [SEP]
        Assert.DoesNotContain(100L, Model.Tokenize("tokenization of hyphenated-words").InputIds.ToArray()); // no [UNK]
    }

    [Fact]
    public void Over_long_input_reports_its_full_count_and_is_refused()
    {
        string text = string.Join(' ', Enumerable.Repeat("word", 300));
        var input = Model.Tokenize(text);
        Assert.Equal(302, input.TokenCount); // not truncated
        Assert.True(input.ExceedsLimitOf(Model));

        var exactly = Model.Tokenize(string.Join(' ', Enumerable.Repeat("word", 254)));
        Assert.Equal(256, exactly.TokenCount);
        Assert.False(exactly.ExceedsLimitOf(Model));
        Model.Embed([exactly], new float[Model.Dimensions]);

        Assert.Throws<ArgumentException>(() => Model.Embed([input], new float[Model.Dimensions]));
    }

    [Fact]
    public void Refuses_bad_batches()
    {
        var foreign = new TokenizedInput("other-model", [101L, 1037, 102]);
        Assert.Throws<ArgumentException>(() => Model.Embed([foreign], new float[Model.Dimensions]));
        Assert.Throws<ArgumentException>(() => Model.Embed([Model.Tokenize("a"), Model.Tokenize("b")], new float[Model.Dimensions]));
        Model.Embed([], Span<float>.Empty); // nothing to do
    }

    [Fact]
    public async Task Concurrent_calls_give_the_same_vectors()
    {
        float[][] expected = Sentences.Select(fixture.EmbedOne).ToArray();
        var tasks = Enumerable.Range(0, 8).Select(t => Task.Run(() =>
        {
            for (int round = 0; round < 3; round++)
            {
                int i = (t + round) % Sentences.Length;
                float[] vector = fixture.EmbedOne(Sentences[i]);
                Assert.True(Vectors.MaxAbsDiff(vector, expected[i]) <= 1e-5f);
            }
        }));
        await Task.WhenAll(tasks);
    }
}
