using System.Threading.Channels;

namespace ComputeGrid.Inference.Model;

/// <summary>
/// Dynamic micro-batching in front of one <see cref="IEmbeddingModel"/>: concurrent requests are queued, and a
/// single background loop takes up to <see cref="EmbeddingBatcherOptions.MaxBatchSize"/> inputs (from one or many
/// requests; a large request is split over several batches), waiting at most
/// <see cref="EmbeddingBatcherOptions.MaxWait"/> after the first for the batch to fill, runs one model call and
/// hands each request its own vectors once all of its inputs are done.
/// </summary>
/// <remarks>
/// The queue is bounded by <see cref="EmbeddingBatcherOptions.MaxQueuedInputs"/>. Waiting and metering use the
/// given <see cref="TimeProvider"/>. Disposing stops intake, lets the loop finish what is queued, and waits for it.
/// </remarks>
public sealed class EmbeddingBatcher : IAsyncDisposable, IDisposable
{
    private readonly IEmbeddingModel _model;
    private readonly EmbeddingBatcherOptions _options;
    private readonly TimeProvider _time;
    private readonly Channel<Request> _channel;
    private readonly Task _loop;

    // Loop-only state.
    private readonly Request[] _slotRequests;
    private readonly int[] _slotIndexes;
    private readonly TokenizedInput[] _slotInputs;
    private readonly float[] _batchOutput;
    private Request? _current;
    private Task<bool>? _pendingWait;

    // Counters (Interlocked).
    private int _queuedInputs;
    private long _batchesRun;
    private long _sentences;
    private long _tokens;
    private long _completed;
    private long _rejected;
    private long _canceled;
    private long _failed;
    private long _modelTicks;
    private int _disposed;

    /// <summary>Starts a batcher (and its background loop) for <paramref name="model"/>.</summary>
    /// <param name="model">The model every batch runs on.</param>
    /// <param name="options">Batch size, wait and queue bound; defaults when null.</param>
    /// <param name="timeProvider">The clock for the batch wait and the model-time metering; the system clock when null.</param>
    public EmbeddingBatcher(IEmbeddingModel model, EmbeddingBatcherOptions? options = null, TimeProvider? timeProvider = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        _options = options ?? new EmbeddingBatcherOptions();
        _options.Validate();
        _model = model;
        _time = timeProvider ?? TimeProvider.System;
        _channel = Channel.CreateUnbounded<Request>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = false });
        _slotRequests = new Request[_options.MaxBatchSize];
        _slotIndexes = new int[_options.MaxBatchSize];
        _slotInputs = new TokenizedInput[_options.MaxBatchSize];
        _batchOutput = new float[_options.MaxBatchSize * model.Dimensions];
        _loop = Task.Run(RunLoopAsync);
    }

    /// <summary>The model the batches run on.</summary>
    public IEmbeddingModel Model => _model;

    /// <summary>The settings in force.</summary>
    public EmbeddingBatcherOptions Options => _options;

    /// <summary>The counters so far.</summary>
    public EmbeddingBatcherStats Stats => new(
        Interlocked.Read(ref _batchesRun),
        Interlocked.Read(ref _sentences),
        Interlocked.Read(ref _tokens),
        Interlocked.Read(ref _completed),
        Interlocked.Read(ref _rejected),
        Interlocked.Read(ref _canceled),
        Interlocked.Read(ref _failed),
        TimeSpan.FromTicks(Interlocked.Read(ref _modelTicks)),
        Volatile.Read(ref _queuedInputs));

    /// <summary>
    /// Queues <paramref name="inputs"/> for embedding alongside other requests and completes with their vectors
    /// (in input order), the token count and the model time charged.
    /// </summary>
    /// <param name="inputs">Inputs tokenized by <see cref="Model"/>, each within its <see cref="IEmbeddingModel.MaxTokens"/>.</param>
    /// <param name="cancellationToken">Cancels the request while it waits; its remaining inputs are then skipped.</param>
    /// <returns>
    /// The result; a task faulted with <see cref="EmbeddingQueueFullException"/> when the queue has no room, or
    /// with the model's exception when its batch failed; canceled when <paramref name="cancellationToken"/> fires first.
    /// </returns>
    /// <exception cref="ArgumentException">
    /// No inputs, a null input, an input of another model or over the token limit, or more inputs than the queue holds.
    /// </exception>
    /// <exception cref="ObjectDisposedException">The batcher is disposed.</exception>
    public Task<EmbeddingResult> EmbedAsync(IReadOnlyList<TokenizedInput> inputs, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        int count = inputs.Count;
        if (count == 0)
        {
            throw new ArgumentException("A request embeds at least one input.", nameof(inputs));
        }
        if (count > _options.MaxQueuedInputs)
        {
            throw new ArgumentException(
                $"A request of {count} inputs can never fit the queue of {_options.MaxQueuedInputs}; split it.", nameof(inputs));
        }
        var snapshot = new TokenizedInput[count]; // the caller's list may change after this call
        for (int i = 0; i < count; i++)
        {
            var input = inputs[i] ?? throw new ArgumentException($"Input {i} is null.", nameof(inputs));
            snapshot[i] = input;
            if (!string.Equals(input.ModelId, _model.Id, StringComparison.Ordinal))
            {
                throw new ArgumentException(
                    $"Input {i} was tokenized for model '{input.ModelId}', not '{_model.Id}'.", nameof(inputs));
            }
            if (input.TokenCount > _model.MaxTokens)
            {
                throw new ArgumentException(
                    $"Input {i} has {input.TokenCount} tokens; {_model.Id} takes at most {_model.MaxTokens}.", nameof(inputs));
            }
        }
        if (cancellationToken.IsCancellationRequested)
        {
            return Task.FromCanceled<EmbeddingResult>(cancellationToken);
        }

        // Reserve room in the bounded queue.
        while (true)
        {
            int queued = Volatile.Read(ref _queuedInputs);
            if (queued + count > _options.MaxQueuedInputs)
            {
                Interlocked.Increment(ref _rejected);
                return Task.FromException<EmbeddingResult>(new EmbeddingQueueFullException(
                    $"The embedding queue for {_model.Id} is full ({queued} of {_options.MaxQueuedInputs} inputs waiting); " +
                    $"a request of {count} does not fit. Retry later."));
            }
            if (Interlocked.CompareExchange(ref _queuedInputs, queued + count, queued) == queued)
            {
                break;
            }
        }

        var request = new Request(this, snapshot, _model.Dimensions, cancellationToken);
        if (cancellationToken.CanBeCanceled)
        {
            request.Registration = cancellationToken.Register(
                static state => ((Request)state!).Cancel(), request);
        }
        if (!_channel.Writer.TryWrite(request))
        {
            Interlocked.Add(ref _queuedInputs, -count);
            request.Registration.Dispose();
            throw new ObjectDisposedException(nameof(EmbeddingBatcher));
        }
        return request.Task;
    }

    /// <summary>Stops intake, lets the loop embed what is already queued, and waits for it to finish.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            _channel.Writer.TryComplete();
        }
        await _loop.ConfigureAwait(false);
    }

    /// <summary>Stops intake, lets the loop embed what is already queued, and blocks until it has finished.</summary>
    public void Dispose() => DisposeAsync().AsTask().GetAwaiter().GetResult();

    private async Task RunLoopAsync()
    {
        int max = _options.MaxBatchSize;
        while (true)
        {
            int n = Fill(0);
            if (n == 0)
            {
                if (!await WaitForInputAsync(Timeout.InfiniteTimeSpan).ConfigureAwait(false))
                {
                    return; // completed and drained
                }
                continue;
            }

            // The first input is in: wait up to MaxWait for the batch to fill (under load only, when so configured).
            long first = _time.GetTimestamp();
            bool wait = !_options.WaitOnlyUnderLoad || _lastBatchSize > 1 || n > 1;
            while (wait && n < max)
            {
                TimeSpan remaining = _options.MaxWait - _time.GetElapsedTime(first);
                if (remaining <= TimeSpan.Zero || !await WaitForInputAsync(remaining).ConfigureAwait(false))
                {
                    break;
                }
                n = Fill(n);
            }
            RunBatch(n);
        }
    }

    /// <summary>Moves queued inputs into the batch slots from <paramref name="n"/> on, without waiting.</summary>
    private int Fill(int n)
    {
        int max = _options.MaxBatchSize;
        int taken = 0;
        while (n < max)
        {
            var current = _current;
            if (current is null || current.Next == current.Inputs.Length)
            {
                _current = null;
                if (!_channel.Reader.TryRead(out current))
                {
                    break;
                }
                _current = current;
            }
            if (current.Task.IsCompleted)
            {
                // Canceled (or failed) while queued: drop what it still has waiting.
                taken += current.Inputs.Length - current.Next;
                current.Next = current.Inputs.Length;
                continue;
            }
            _slotRequests[n] = current;
            _slotIndexes[n] = current.Next;
            _slotInputs[n] = current.Inputs[current.Next];
            current.Next++;
            taken++;
            n++;
        }
        if (_current is not null && _current.Next == _current.Inputs.Length)
        {
            _current = null;
        }
        if (taken > 0)
        {
            Interlocked.Add(ref _queuedInputs, -taken);
        }
        return n;
    }

    /// <summary>
    /// Waits until the channel has something to read (true), or it is completed and empty, or
    /// <paramref name="timeout"/> passes (false). One wait on the channel is kept across calls.
    /// </summary>
    private async ValueTask<bool> WaitForInputAsync(TimeSpan timeout)
    {
        var wait = _pendingWait ??= _channel.Reader.WaitToReadAsync().AsTask();
        if (!wait.IsCompleted && timeout != Timeout.InfiniteTimeSpan)
        {
            using var cts = new CancellationTokenSource();
            var delay = Task.Delay(timeout, _time, cts.Token);
            if (await Task.WhenAny(wait, delay).ConfigureAwait(false) != wait)
            {
                return false;
            }
            cts.Cancel();
        }
        bool result = await wait.ConfigureAwait(false);
        _pendingWait = null;
        return result;
    }

    private int _lastBatchSize;

    private void RunBatch(int n)
    {
        _lastBatchSize = n;
        var inputs = _slotInputs.AsSpan(0, n);
        int batchTokens = 0;
        foreach (var input in inputs)
        {
            batchTokens += input.TokenCount;
        }

        long start = _time.GetTimestamp();
        try
        {
            _model.Embed(inputs, _batchOutput);
        }
        catch (Exception ex)
        {
            for (int i = 0; i < n; i++)
            {
                if (_slotRequests[i].Fail(ex))
                {
                    Interlocked.Increment(ref _failed);
                }
            }
            ClearSlots(n);
            return;
        }
        TimeSpan elapsed = _time.GetElapsedTime(start);

        Interlocked.Increment(ref _batchesRun);
        Interlocked.Add(ref _sentences, n);
        Interlocked.Add(ref _tokens, batchTokens);
        Interlocked.Add(ref _modelTicks, elapsed.Ticks);

        int dims = _model.Dimensions;
        for (int i = 0; i < n; i++)
        {
            var request = _slotRequests[i];
            int tokens = _slotInputs[i].TokenCount;
            double share = batchTokens == 0 ? 0 : (double)elapsed.Ticks * tokens / batchTokens;
            if (request.Deliver(_slotIndexes[i], _batchOutput.AsSpan(i * dims, dims), tokens, share))
            {
                Interlocked.Increment(ref _completed);
            }
        }
        ClearSlots(n);
    }

    private void ClearSlots(int n)
    {
        Array.Clear(_slotRequests, 0, n);
        Array.Clear(_slotInputs, 0, n);
    }

    /// <summary>One caller's request: its inputs, its result buffer and how far the loop has got.</summary>
    private sealed class Request : TaskCompletionSource<EmbeddingResult>
    {
        private readonly EmbeddingBatcher _owner;
        private readonly float[] _data;
        private readonly int _dimensions;
        private int _done;
        private int _tokens;
        private double _modelTicks;

        private readonly CancellationToken _cancellationToken;

        public Request(EmbeddingBatcher owner, TokenizedInput[] inputs, int dimensions, CancellationToken cancellationToken)
            : base(TaskCreationOptions.RunContinuationsAsynchronously)
        {
            _owner = owner;
            _cancellationToken = cancellationToken;
            Inputs = inputs;
            _dimensions = dimensions;
            _data = new float[inputs.Length * dimensions];
        }

        public TokenizedInput[] Inputs { get; }

        /// <summary>The next input the loop takes (loop only).</summary>
        public int Next { get; set; }

        public CancellationTokenRegistration Registration { get; set; }

        /// <summary>Stores one vector; completes the request with its last. True when this completed it.</summary>
        public bool Deliver(int index, ReadOnlySpan<float> vector, int tokens, double modelTicks)
        {
            if (Task.IsCompleted)
            {
                return false;
            }
            vector.CopyTo(_data.AsSpan(index * _dimensions, _dimensions));
            _tokens += tokens;
            _modelTicks += modelTicks;
            if (++_done < Inputs.Length)
            {
                return false;
            }
            Registration.Dispose();
            return TrySetResult(new EmbeddingResult(
                _data, Inputs.Length, _dimensions, _tokens, TimeSpan.FromTicks((long)Math.Round(_modelTicks))));
        }

        public bool Fail(Exception ex)
        {
            if (!TrySetException(ex))
            {
                return false;
            }
            Registration.Dispose();
            return true;
        }

        public void Cancel()
        {
            if (TrySetCanceled(_cancellationToken))
            {
                Interlocked.Increment(ref _owner._canceled);
            }
        }
    }
}
