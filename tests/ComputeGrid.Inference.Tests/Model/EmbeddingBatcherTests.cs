using ComputeGrid.Inference.Model;
using Microsoft.Extensions.Time.Testing;

namespace ComputeGrid.Inference.Tests.Model;

public sealed class EmbeddingBatcherTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(20);

    [Fact]
    public async Task Concurrent_requests_share_batches_and_get_their_own_vectors()
    {
        var model = new FakeEmbeddingModel();
        model.Hold();
        await using var batcher = new EmbeddingBatcher(model, new EmbeddingBatcherOptions { MaxBatchSize = 8, MaxWait = TimeSpan.FromMilliseconds(2) });

        // One request occupies the model while 63 more pile up behind it.
        var tasks = new List<Task<EmbeddingResult>> { batcher.EmbedAsync([model.Tokenize("1000")]) };
        Assert.True(await model.Entered.WaitAsync(Patience));
        for (int i = 1; i < 64; i++)
        {
            tasks.Add(batcher.EmbedAsync([model.Tokenize($"{1000 + i} 7 7")]));
        }
        model.Release();
        var results = await Task.WhenAll(tasks).WaitAsync(Patience);

        for (int i = 0; i < 64; i++)
        {
            Assert.Equal(1, results[i].Count);
            Assert.Equal(1000 + i, results[i].GetVector(0).Span[0]);
            Assert.Equal(i == 0 ? 3 : 5, results[i].TokenCount);
        }
        var stats = batcher.Stats;
        Assert.Equal(64, stats.SentencesEmbedded);
        Assert.Equal(64, stats.RequestsCompleted);
        Assert.Equal(3 + (63 * 5), stats.TokensEmbedded);
        Assert.Equal(1 + 8, stats.BatchesRun); // the lone first, then the 63 waiting in batches of 8
        Assert.Equal(64.0 / 9, stats.AverageBatchSize, 6);
        Assert.Equal([1, 8, 8, 8, 8, 8, 8, 8, 7], model.Batches.ToArray());
        Assert.Equal(0, stats.QueuedInputs);
    }

    [Fact]
    public async Task The_fill_wait_ends_when_its_timer_fires_whatever_the_clock_reads()
    {
        // Timers run on a coarse tick and may fire before a high-resolution timestamp says MaxWait has passed; the fill
        // wait once re-checked the timestamp after the timer's only signal and slept for ever (CI hung on it). Here the
        // timestamp never moves at all, so only the timer can end the wait.
        var model = new FakeEmbeddingModel();
        model.Hold();
        var batcher = new EmbeddingBatcher(model, new EmbeddingBatcherOptions { MaxBatchSize = 8, MaxWait = TimeSpan.FromMilliseconds(2) }, new StoppedClock());
        try
        {
            var first = batcher.EmbedAsync([model.Tokenize("1")]);
            Assert.True(await model.Entered.WaitAsync(Patience));
            var rest = Enumerable.Range(2, 3).Select(i => batcher.EmbedAsync([model.Tokenize($"{i}")])).ToList();
            model.Release(); // the three queued requests form one batch that waits for company (under load), then runs
            await Task.WhenAll(rest.Append(first)).WaitAsync(Patience);
            Assert.Equal([1, 3], model.Batches.ToArray());
        }
        finally
        {
            model.Release();
            await batcher.DisposeAsync().AsTask().WaitAsync(Patience); // a hung worker fails the test instead of hanging it
        }
    }

    /// <summary>The system's timers with a timestamp that never moves.</summary>
    private sealed class StoppedClock : TimeProvider
    {
        public override long GetTimestamp() => 0;
    }

    [Fact]
    public async Task A_large_request_is_split_over_batches_in_order()
    {
        var model = new FakeEmbeddingModel();
        await using var batcher = new EmbeddingBatcher(model, new EmbeddingBatcherOptions { MaxBatchSize = 32, MaxWait = TimeSpan.Zero });

        var inputs = Enumerable.Range(0, 70).Select(i => model.Tokenize($"{i}")).ToArray();
        var result = await batcher.EmbedAsync(inputs).WaitAsync(Patience);

        Assert.Equal(70, result.Count);
        Assert.Equal(4, result.Dimensions);
        Assert.Equal(70 * 4, result.Vectors.Length);
        for (int i = 0; i < 70; i++)
        {
            Assert.Equal(i, result.GetVector(i).Span[0]);
        }
        Assert.Equal(70 * 3, result.TokenCount);
        Assert.Equal([32, 32, 6], model.Batches.ToArray());
    }

    [Fact]
    public async Task A_batch_waits_MaxWait_for_company_unless_it_fills()
    {
        var time = new FakeTimeProvider();
        var model = new FakeEmbeddingModel();
        await using var batcher = new EmbeddingBatcher(
            model, new EmbeddingBatcherOptions { MaxBatchSize = 4, MaxWait = TimeSpan.FromSeconds(1) }, time);

        var lone = batcher.EmbedAsync([model.Tokenize("1")]);
        await Task.Delay(200);
        Assert.False(lone.IsCompleted); // waiting for the batch to fill

        var company = batcher.EmbedAsync([model.Tokenize("2"), model.Tokenize("3"), model.Tokenize("4")]);
        await Task.WhenAll(lone, company).WaitAsync(Patience); // full: runs without the clock moving
        Assert.Equal([4], model.Batches.ToArray());

        var late = batcher.EmbedAsync([model.Tokenize("5")]);
        await Task.Delay(100);
        Assert.False(late.IsCompleted);
        time.Advance(TimeSpan.FromSeconds(1));
        var result = await late.WaitAsync(Patience);
        Assert.Equal(5, result.GetVector(0).Span[0]);
        Assert.Equal([4, 1], model.Batches.ToArray());
    }

    [Fact]
    public async Task A_canceled_request_is_dropped_and_others_complete()
    {
        var model = new FakeEmbeddingModel();
        model.Hold();
        await using var batcher = new EmbeddingBatcher(model, new EmbeddingBatcherOptions { MaxBatchSize = 4, MaxWait = TimeSpan.Zero });

        var first = batcher.EmbedAsync([model.Tokenize("1")]);
        Assert.True(await model.Entered.WaitAsync(Patience));
        using var cts = new CancellationTokenSource();
        var canceled = batcher.EmbedAsync([model.Tokenize("2"), model.Tokenize("3")], cts.Token);
        var kept = batcher.EmbedAsync([model.Tokenize("4")]);

        cts.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => canceled.WaitAsync(Patience));
        Assert.True(canceled.IsCanceled);

        model.Release();
        Assert.Equal(1, (await first.WaitAsync(Patience)).GetVector(0).Span[0]);
        Assert.Equal(4, (await kept.WaitAsync(Patience)).GetVector(0).Span[0]);
        Assert.DoesNotContain(2L, model.Embedded);
        Assert.DoesNotContain(3L, model.Embedded);
        Assert.Equal(1, batcher.Stats.RequestsCanceled);
        Assert.Equal(2, batcher.Stats.RequestsCompleted);
        Assert.Equal(0, batcher.Stats.QueuedInputs);

        using var already = new CancellationTokenSource();
        already.Cancel();
        Assert.True(batcher.EmbedAsync([model.Tokenize("5")], already.Token).IsCanceled);
    }

    [Fact]
    public async Task A_full_queue_rejects_with_a_clear_exception()
    {
        var model = new FakeEmbeddingModel();
        model.Hold();
        await using var batcher = new EmbeddingBatcher(
            model, new EmbeddingBatcherOptions { MaxBatchSize = 2, MaxWait = TimeSpan.Zero, MaxQueuedInputs = 4 });

        var running = batcher.EmbedAsync([model.Tokenize("1")]);
        Assert.True(await model.Entered.WaitAsync(Patience)); // taken off the queue, in the model
        var queued = batcher.EmbedAsync([model.Tokenize("2"), model.Tokenize("3"), model.Tokenize("4")]);
        var fits = batcher.EmbedAsync([model.Tokenize("5")]);
        Assert.Equal(4, batcher.Stats.QueuedInputs);

        var refused = batcher.EmbedAsync([model.Tokenize("6")]);
        var error = await Assert.ThrowsAsync<EmbeddingQueueFullException>(() => refused);
        Assert.Contains("full", error.Message, StringComparison.Ordinal);
        Assert.Equal(1, batcher.Stats.RequestsRejected);
        Assert.Throws<ArgumentException>(() => { _ = batcher.EmbedAsync(Enumerable.Range(0, 5).Select(i => model.Tokenize($"{i}")).ToArray()); });

        model.Release();
        await Task.WhenAll(running, queued, fits).WaitAsync(Patience);
        Assert.Equal(5, batcher.Stats.SentencesEmbedded);
        Assert.Equal(7, (await batcher.EmbedAsync([model.Tokenize("7")]).WaitAsync(Patience)).GetVector(0).Span[0]); // room again
    }

    [Fact]
    public async Task A_model_failure_fails_its_batch_and_the_loop_goes_on()
    {
        var model = new FakeEmbeddingModel { FailNext = new InvalidOperationException("boom") };
        await using var batcher = new EmbeddingBatcher(model, new EmbeddingBatcherOptions { MaxWait = TimeSpan.Zero });

        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => batcher.EmbedAsync([model.Tokenize("1")]).WaitAsync(Patience));
        Assert.Equal("boom", error.Message);
        Assert.Equal(2, (await batcher.EmbedAsync([model.Tokenize("2")]).WaitAsync(Patience)).GetVector(0).Span[0]);
        Assert.Equal(1, batcher.Stats.RequestsFailed);
    }

    [Fact]
    public async Task Refuses_bad_requests()
    {
        var model = new FakeEmbeddingModel();
        await using var batcher = new EmbeddingBatcher(model);
        Assert.Throws<ArgumentException>(() => { _ = batcher.EmbedAsync([]); });
        Assert.Throws<ArgumentException>(() => { _ = batcher.EmbedAsync([model.Tokenize(string.Join(' ', Enumerable.Repeat("1", 15)))]); }); // 17 > 16
        Assert.Throws<ArgumentException>(() => { _ = batcher.EmbedAsync([new TokenizedInput("another", [101L, 102L])]); });
        Assert.Throws<ArgumentOutOfRangeException>(() => new EmbeddingBatcher(model, new EmbeddingBatcherOptions { MaxBatchSize = 0 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new EmbeddingBatcher(model, new EmbeddingBatcherOptions { Workers = 0 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new EmbeddingBatcher(model, new EmbeddingBatcherOptions { WorkerNice = 20 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new EmbeddingBatcher(model, new EmbeddingBatcherOptions { WorkerSlice = TimeSpan.FromMilliseconds(0.01) }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new EmbeddingBatcher(model, new EmbeddingBatcherOptions { WorkerSlice = TimeSpan.FromSeconds(1) }));
    }

    [Fact]
    public async Task The_workers_run_at_the_nice_value_and_slice_asked_for()
    {
        if (!OperatingSystem.IsLinux()) return; // both are Linux scheduler settings
        var model = new FakeEmbeddingModel();
        await using (var batcher = new EmbeddingBatcher(model, new EmbeddingBatcherOptions { Workers = 2, WorkerNice = 3, WorkerSlice = TimeSpan.FromMilliseconds(80) }))
        {
            await Task.WhenAll(Enumerable.Range(1, 8).Select(i => batcher.EmbedAsync([model.Tokenize($"{i}")]))).WaitAsync(Patience);
        }
        Assert.NotEmpty(model.Threads);
        Assert.All(model.Threads, t => Assert.Equal((3, TimeSpan.FromMilliseconds(80)), (t.Nice, t.Slice)));
        Assert.NotEqual(TimeSpan.FromMilliseconds(80), ComputeGrid.Core.ThreadSlice.CurrentThread()); // the caller's thread is untouched
    }

    [Fact]
    public async Task Two_workers_run_two_batches_at_once_and_a_split_request_keeps_its_order()
    {
        var model = new FakeEmbeddingModel();
        model.Hold();
        await using var batcher = new EmbeddingBatcher(model, new EmbeddingBatcherOptions { MaxBatchSize = 4, MaxWait = TimeSpan.Zero, Workers = 2 });

        var first = batcher.EmbedAsync([model.Tokenize("1")]);
        Assert.True(await model.Entered.WaitAsync(Patience));
        var second = batcher.EmbedAsync([model.Tokenize("2")]);
        Assert.True(await model.Entered.WaitAsync(Patience)); // the second worker took it while the first is held

        // Ten inputs behind them: split into batches of at most 4 over both workers.
        var inputs = Enumerable.Range(100, 10).Select(i => model.Tokenize($"{i} 5")).ToArray();
        var large = batcher.EmbedAsync(inputs);
        model.Release();
        var result = await large.WaitAsync(Patience);
        await Task.WhenAll(first, second).WaitAsync(Patience);

        Assert.Equal(10, result.Count);
        for (int i = 0; i < 10; i++)
        {
            Assert.Equal(100 + i, result.GetVector(i).Span[0]);
        }
        Assert.Equal(10 * 4, result.TokenCount);
        Assert.All(model.Batches, size => Assert.InRange(size, 1, 4));
        Assert.Equal(12, model.Batches.Sum());
        Assert.Equal(3, batcher.Stats.RequestsCompleted);
        Assert.Equal(0, batcher.Stats.QueuedInputs);
    }

    [Fact]
    public async Task A_lone_request_completes_on_the_worker_and_a_shared_batch_on_the_thread_pool()
    {
        var model = new FakeEmbeddingModel();
        model.Hold();
        await using var batcher = new EmbeddingBatcher(model, new EmbeddingBatcherOptions { MaxBatchSize = 8, MaxWait = TimeSpan.Zero });

        var lone = batcher.EmbedAsync([model.Tokenize("1"), model.Tokenize("2")]);
        Assert.True(await model.Entered.WaitAsync(Patience));
        var a = batcher.EmbedAsync([model.Tokenize("3")]);
        var b = batcher.EmbedAsync([model.Tokenize("4")]);
        Task<string?> WhereCompleted(Task task) => task.ContinueWith(_ => Thread.CurrentThread.Name, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        var loneThread = WhereCompleted(lone);
        var sharedThread = WhereCompleted(a);
        model.Release();
        await Task.WhenAll(lone, a, b).WaitAsync(Patience);

        Assert.Equal([2, 2], model.Batches.ToArray());
        Assert.StartsWith("embed-fake-model-", await loneThread.WaitAsync(Patience), StringComparison.Ordinal);
        Assert.False((await sharedThread.WaitAsync(Patience) ?? "").StartsWith("embed-", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Dispose_finishes_queued_work_then_refuses()
    {
        var model = new FakeEmbeddingModel();
        model.Hold();
        var batcher = new EmbeddingBatcher(model, new EmbeddingBatcherOptions { MaxBatchSize = 1, MaxWait = TimeSpan.Zero });
        var a = batcher.EmbedAsync([model.Tokenize("1")]);
        var b = batcher.EmbedAsync([model.Tokenize("2")]);
        var disposing = batcher.DisposeAsync().AsTask();
        Assert.Throws<ObjectDisposedException>(() => { _ = batcher.EmbedAsync([model.Tokenize("3")]); });
        model.Release();
        await disposing.WaitAsync(Patience);
        Assert.True(a.IsCompletedSuccessfully);
        Assert.True(b.IsCompletedSuccessfully);
    }
}

[Collection(MiniLmCollection.Name)]
public sealed class EmbeddingBatcherWithMiniLmTests(MiniLmFixture fixture)
{
    [Fact]
    public async Task Sixty_four_concurrent_requests_are_batched_and_each_gets_its_vector()
    {
        var model = fixture.Model;
        string[] texts = Enumerable.Range(0, 64)
            .Select(i => $"Request number {i} asks about {(i % 2 == 0 ? "GPU rental prices" : "the weather in region " + (i % 7))}.")
            .ToArray();
        await using var batcher = new EmbeddingBatcher(model, new EmbeddingBatcherOptions { MaxBatchSize = 32, MaxWait = TimeSpan.FromMilliseconds(5) });

        var results = await Task.WhenAll(texts.Select(text => Task.Run(() => batcher.EmbedAsync([model.Tokenize(text)]))))
            .WaitAsync(TimeSpan.FromSeconds(60));

        var stats = batcher.Stats;
        Assert.Equal(64, stats.SentencesEmbedded);
        Assert.True(stats.BatchesRun < 64, $"{stats.BatchesRun} batches for 64 requests");
        Assert.True(stats.AverageBatchSize > 1);
        Assert.True(stats.ModelTime > TimeSpan.Zero);
        for (int i = 0; i < texts.Length; i++)
        {
            float[] alone = fixture.EmbedOne(texts[i]);
            float diff = Vectors.MaxAbsDiff(results[i].GetVector(0).Span, alone);
            Assert.True(diff <= 1e-5f, $"request {i}: max difference {diff:E2}");
            Assert.Equal(model.Tokenize(texts[i]).TokenCount, results[i].TokenCount);
            Assert.True(results[i].ModelTime > TimeSpan.Zero);
        }
        Assert.Equal(stats.TokensEmbedded, results.Sum(r => (long)r.TokenCount));
    }
}
