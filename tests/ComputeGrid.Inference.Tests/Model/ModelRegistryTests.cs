using ComputeGrid.Inference.Model;

namespace ComputeGrid.Inference.Tests.Model;

public sealed class ModelRegistryTests
{
    [Fact]
    public void Finds_models_by_id_and_alias()
    {
        var registry = new ModelRegistry();
        var fake = new FakeEmbeddingModel();
        registry.Register(fake, "fake-alias");

        Assert.True(registry.TryGet("fake-model", out var byId));
        Assert.Same(fake, byId);
        Assert.Same(fake, registry.Get("fake-alias"));
        Assert.Equal("fake-model", registry.Get("fake-alias").Id);
        Assert.False(registry.TryGet("FAKE-MODEL", out _)); // ids are exact
        Assert.False(registry.TryGet(null, out _));
        Assert.Throws<KeyNotFoundException>(() => registry.Get("text-embedding-3-small"));
        Assert.Equal([fake], registry.Models);
    }

    [Fact]
    public void Refuses_a_name_twice()
    {
        var registry = new ModelRegistry();
        registry.Register(new FakeEmbeddingModel());
        Assert.Throws<ArgumentException>(() => registry.Register(new FakeEmbeddingModel()));
        Assert.Single(registry.Models);
    }
}

[Collection(MiniLmCollection.Name)]
public sealed class ModelBenchmarkTests(MiniLmFixture fixture)
{
    [Fact]
    public void Measures_sentences_per_second_for_each_batch_size()
    {
        string[] sentences = ["A man is playing a guitar.", "The stock market fell sharply today.", "How do I reset my password?"];
        double single = ModelBenchmark.Run(fixture.Model, sentences, 1, TimeSpan.FromMilliseconds(100));
        Assert.True(single > 0);

        var sweep = ModelBenchmark.RunSweep(fixture.Model, sentences, [1, 4], TimeSpan.FromMilliseconds(100));
        Assert.Equal([1, 4], sweep.Results.Select(r => r.BatchSize));
        Assert.All(sweep.Results, r => Assert.True(r.SentencesPerSecond > 0 && r.Sentences >= r.BatchSize));
        Assert.Equal(sweep.Results.Max(r => r.SentencesPerSecond), sweep.Best.SentencesPerSecond);

        var side = ModelBenchmark.RunSweep(fixture.Model, sentences, [2], TimeSpan.FromMilliseconds(100), workers: 2);
        Assert.Equal(2, side.Best.Workers);
        Assert.True(side.Best.Sentences >= 4 && side.Best.Sentences % 2 == 0); // each worker ran at least one batch of 2
    }

    [Theory]
    [InlineData(1, 1, 1)]
    [InlineData(2, 2, 1)]
    [InlineData(8, 8, 1)]
    [InlineData(16, 8, 2)]
    [InlineData(12, 8, 1)]
    public void Model_parallelism_gives_one_single_threaded_worker_per_core_up_to_eight(int cores, int workers, int threads)
    {
        Assert.Equal(new ModelParallelism(workers, threads), ModelParallelism.ForProcessors(cores));
        Assert.Throws<ArgumentOutOfRangeException>(() => ModelParallelism.ForProcessors(0));
    }
}
