using System.Runtime.CompilerServices;

namespace ComputeGrid.Inference.Model;

/// <summary>
/// Dynamic micro-batching in front of one <see cref="IEmbeddingModel"/>: concurrent requests are queued, and a
/// single background loop forms batches of up to <see cref="EmbeddingBatcherOptions.MaxBatchSize"/> inputs (from one
/// or many requests; a large request is split over several batches), waiting at most
/// <see cref="EmbeddingBatcherOptions.MaxWait"/> after the first for the batch to fill. Each batch is one model call
/// on one of <see cref="EmbeddingBatcherOptions.Workers"/> dedicated threads, which take their batches from the queue
/// themselves; a request gets its own vectors once all of its inputs are done.
/// </summary>
/// <remarks>
/// <para>
/// With several workers, a batch forms while others run, so the model is not idle while answers go out and new
/// requests come in; while every worker is busy the queue simply grows, and the next free worker takes a full batch.
/// A request wakes an idle worker directly (one thread hand-off, not two), and a batch that holds a single request
/// completes it on the worker's thread: a lone request, the common case at light load, then crosses no other
/// thread on its way back. Batches of several requests complete them on the thread pool, so the worker moves on.
/// On a CPU, several single-threaded model calls side by side also beat one call spread over every core (no
/// barrier between the threads of one call, which stalls whenever another thread of the server takes a core).
/// </para>
/// <para>
/// The queue is bounded by <see cref="EmbeddingBatcherOptions.MaxQueuedInputs"/>. Waiting and metering use the
/// given <see cref="TimeProvider"/>. Disposing stops intake, lets the workers finish what is queued, and waits for it.
/// </para>
/// </remarks>
public sealed class EmbeddingBatcher : IAsyncDisposable, IDisposable
{
    private readonly IEmbeddingModel _model;
    private readonly EmbeddingBatcherOptions _options;
    private readonly TimeProvider _time;
    private readonly Worker[] _workers;
    private readonly TaskCompletionSource _drained = new(TaskCreationOptions.RunContinuationsAsynchronously);

    // Under _gate: the queue, the request being split, the idle workers, the one filling a batch, intake closed.
    private readonly Lock _gate = new();
    private readonly Queue<Request> _queue = new();
    private readonly Stack<Worker> _idle = new();
    private Request? _current;
    private Worker? _filler;
    private bool _closed;
    private int _busyWorkers;
    private int _exitedWorkers;
    private int _lastBatchSize;

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

    /// <summary>Starts a batcher (and its worker threads) for <paramref name="model"/>.</summary>
    /// <param name="model">The model every batch runs on.</param>
    /// <param name="options">Batch size, wait, queue bound and workers; defaults when null.</param>
    /// <param name="timeProvider">The clock for the batch wait and the model-time metering; the system clock when null.</param>
    public EmbeddingBatcher(IEmbeddingModel model, EmbeddingBatcherOptions? options = null, TimeProvider? timeProvider = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        _options = options ?? new EmbeddingBatcherOptions();
        _options.Validate();
        _model = model;
        _time = timeProvider ?? TimeProvider.System;
        _workers = new Worker[_options.Workers];
        for (int i = 0; i < _workers.Length; i++)
        {
            _workers[i] = new Worker(this, i);
        }
        foreach (var worker in _workers)
        {
            worker.Start();
        }
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
            // Registered before the request is queued, so a worker that completes it always finds the registration.
            request.Registration = cancellationToken.Register(static state => ((Request)state!).Cancel(), request);
        }
        Worker? wake;
        lock (_gate)
        {
            if (_closed)
            {
                Interlocked.Add(ref _queuedInputs, -count);
                request.Registration.Dispose();
                throw new ObjectDisposedException(nameof(EmbeddingBatcher));
            }
            _queue.Enqueue(request);
            // A worker filling its batch takes it first; otherwise the most recently idle worker (warmest cache).
            wake = _filler ?? PopIdle();
        }
        wake?.Signal();
        return request.Task;
    }

    /// <summary>Stops intake, lets the workers embed what is already queued, and waits for them to finish.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            Worker[] idle;
            lock (_gate)
            {
                _closed = true;
                idle = [.. _idle];
                _idle.Clear();
                foreach (var worker in idle)
                {
                    worker.IsIdle = false;
                }
            }
            foreach (var worker in idle)
            {
                worker.Signal();
            }
        }
        await _drained.Task.ConfigureAwait(false);
    }

    /// <summary>Stops intake, lets the workers embed what is already queued, and blocks until they have finished.</summary>
    public void Dispose() => DisposeAsync().AsTask().GetAwaiter().GetResult();

    private Worker? PopIdle()
    {
        while (_idle.TryPop(out Worker? worker))
        {
            if (worker.IsIdle)
            {
                worker.IsIdle = false;
                return worker;
            }
        }
        return null;
    }

    /// <summary>
    /// A worker's next batch: waits while the queue is empty, then takes up to MaxBatchSize inputs, waiting up to
    /// MaxWait for company when so configured. Returns 0 once intake is closed and the queue is drained.
    /// </summary>
    private int NextBatch(Worker worker)
    {
        int max = _options.MaxBatchSize;
        int n;
        while (true)
        {
            lock (_gate)
            {
                n = Fill(worker, 0);
                if (n == 0 && _closed)
                {
                    return 0;
                }
                if (n == 0)
                {
                    if (!worker.IsIdle)
                    {
                        worker.IsIdle = true;
                        _idle.Push(worker);
                    }
                }
                else
                {
                    worker.IsIdle = false;
                    break;
                }
            }
            worker.Wait();
        }

        // The first input is in: wait up to MaxWait for the batch to fill (under load only, when so configured) —
        // and only while no other worker is running: then the inputs that arrive meanwhile make the next batch, and
        // a free worker waiting for company would only leave its core idle.
        bool wait;
        lock (_gate)
        {
            wait = _options.MaxWait > TimeSpan.Zero && n < max && _filler is null && _busyWorkers == 0
                && (!_options.WaitOnlyUnderLoad || _lastBatchSize > 1 || n > 1);
            if (wait)
            {
                _filler = worker;
            }
        }
        if (wait)
        {
            // The timer ends the wait, not a clock reading: timers run on a coarse tick and may fire before a
            // high-resolution timestamp says MaxWait has passed, and a wait that re-checked the timestamp after the
            // timer's one signal would then sleep for ever (it did, in CI).
            worker.FillDeadlinePassed = false;
            using ITimer timer = _time.CreateTimer(static state => ((Worker)state!).EndFillWait(), worker, _options.MaxWait, Timeout.InfiniteTimeSpan);
            while (true)
            {
                worker.Wait();
                lock (_gate)
                {
                    n = Fill(worker, n);
                    if (n >= max || _closed || worker.FillDeadlinePassed)
                    {
                        _filler = null;
                        break;
                    }
                }
            }
            worker.DrainSignals();
        }
        lock (_gate)
        {
            _busyWorkers++;
            _lastBatchSize = n;
        }
        return n;
    }

    /// <summary>Moves queued inputs into <paramref name="worker"/>'s batch slots from <paramref name="n"/> on (under the gate).</summary>
    private int Fill(Worker worker, int n)
    {
        int max = _options.MaxBatchSize;
        int taken = 0;
        while (n < max)
        {
            var current = _current;
            if (current is null || current.Next == current.Inputs.Length)
            {
                _current = null;
                if (!_queue.TryDequeue(out current))
                {
                    break;
                }
                _current = current;
            }
            if (current.IsSettled)
            {
                // Canceled (or failed) while queued: drop what it still has waiting.
                taken += current.Inputs.Length - current.Next;
                current.Next = current.Inputs.Length;
                continue;
            }
            worker.Requests[n] = current;
            worker.Indexes[n] = current.Next;
            worker.Inputs[n] = current.Inputs[current.Next];
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

    /// <summary>Runs one formed batch on the calling worker thread and delivers its vectors.</summary>
    private void RunBatch(Worker worker, int n)
    {
        var inputs = worker.Inputs.AsSpan(0, n);
        int batchTokens = 0;
        bool lone = true;
        for (int i = 0; i < n; i++)
        {
            batchTokens += inputs[i].TokenCount;
            lone &= ReferenceEquals(worker.Requests[i], worker.Requests[0]);
        }

        long start = _time.GetTimestamp();
        try
        {
            _model.Embed(inputs, worker.Output);
        }
        catch (Exception ex)
        {
            for (int i = 0; i < n; i++)
            {
                worker.Requests[i].Fail(ex);
            }
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
            var request = worker.Requests[i];
            int tokens = worker.Inputs[i].TokenCount;
            double share = batchTokens == 0 ? 0 : (double)elapsed.Ticks * tokens / batchTokens;
            request.Deliver(worker.Indexes[i], worker.Output.AsSpan(i * dims, dims), tokens, share, inline: lone);
        }
    }

    /// <summary>
    /// One model worker: a dedicated thread (model calls block for milliseconds; they must not hold thread-pool
    /// threads the server needs) with its own batch slots and output buffer, and its own wake-up signal.
    /// </summary>
    private sealed class Worker
    {
        private readonly EmbeddingBatcher _owner;
        private readonly SemaphoreSlim _signal = new(0);
        private readonly Thread _thread;

        public Worker(EmbeddingBatcher owner, int index)
        {
            _owner = owner;
            int max = owner._options.MaxBatchSize;
            Requests = new Request[max];
            Indexes = new int[max];
            Inputs = new TokenizedInput[max];
            Output = new float[max * owner._model.Dimensions];
            _thread = new Thread(Run) { IsBackground = true, Name = $"embed-{owner._model.Id}-{index}" };
        }

        public Request[] Requests { get; }
        public int[] Indexes { get; }
        public TokenizedInput[] Inputs { get; }
        public float[] Output { get; }

        /// <summary>On the idle stack, waiting for work (under the gate).</summary>
        public bool IsIdle { get; set; }

        public void Start() => _thread.Start();

        public void Signal() => _signal.Release();

        /// <summary>Set by the fill-wait timer when <see cref="EmbeddingBatcherOptions.MaxWait"/> has passed.</summary>
        public bool FillDeadlinePassed
        {
            get => Volatile.Read(ref _fillDeadlinePassed);
            set => Volatile.Write(ref _fillDeadlinePassed, value);
        }

        private bool _fillDeadlinePassed;

        public void EndFillWait()
        {
            FillDeadlinePassed = true;
            Signal();
        }

        public void Wait() => _signal.Wait();

        /// <summary>Forgets wake-ups left over from a fill wait (the timer and arrivals may both have signalled).</summary>
        public void DrainSignals()
        {
            while (_signal.Wait(0))
            {
            }
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)] // a thread's loop: no tier-0 start, no on-stack replacement later
        private void Run()
        {
            if (_owner._options.WorkerNice != 0)
            {
                ComputeGrid.Core.ThreadNice.TrySetCurrentThread(_owner._options.WorkerNice);
            }
            if (_owner._options.WorkerSlice is { } slice)
            {
                ComputeGrid.Core.ThreadSlice.TrySetCurrentThread(slice);
            }
            while (true)
            {
                int n = _owner.NextBatch(this);
                if (n == 0)
                {
                    break;
                }
                try
                {
                    _owner.RunBatch(this, n);
                }
                finally
                {
                    Array.Clear(Requests, 0, n);
                    Array.Clear(Inputs, 0, n);
                    lock (_owner._gate)
                    {
                        _owner._busyWorkers--;
                    }
                }
            }
            bool last;
            lock (_owner._gate)
            {
                last = ++_owner._exitedWorkers == _owner._workers.Length;
            }
            if (last)
            {
                _owner._drained.TrySetResult();
            }
        }
    }

    /// <summary>
    /// One caller's request: its inputs, its result buffer and how far the workers have got. Whoever settles it first
    /// (the last vector, a failure, a cancellation) wins <see cref="_state"/>; the task is completed after that, on
    /// the worker's thread for a lone request's vectors, else on the thread pool.
    /// </summary>
    private sealed class Request : TaskCompletionSource<EmbeddingResult>
    {
        private const int Pending = 0, Settled = 1;
        private readonly EmbeddingBatcher _owner;
        private readonly float[] _data;
        private readonly int _dimensions;
        private readonly CancellationToken _cancellationToken;
        private int _state;
        private int _done;
        private int _tokens;
        private double _modelTicks;

        public Request(EmbeddingBatcher owner, TokenizedInput[] inputs, int dimensions, CancellationToken cancellationToken)
            : base(TaskCreationOptions.None)
        {
            _owner = owner;
            _cancellationToken = cancellationToken;
            Inputs = inputs;
            _dimensions = dimensions;
            _data = new float[inputs.Length * dimensions];
        }

        public TokenizedInput[] Inputs { get; }

        /// <summary>The next input a worker takes (under the gate).</summary>
        public int Next { get; set; }

        public CancellationTokenRegistration Registration { get; set; }

        /// <summary>Canceled, failed or complete: its remaining inputs are skipped.</summary>
        public bool IsSettled => Volatile.Read(ref _state) != Pending;

        /// <summary>
        /// Stores one vector; completes the request with its last (counted before the caller can see it). Workers may
        /// deliver parts of one request at the same time, hence the lock.
        /// </summary>
        public void Deliver(int index, ReadOnlySpan<float> vector, int tokens, double modelTicks, bool inline)
        {
            lock (_data)
            {
                if (IsSettled)
                {
                    return;
                }
                vector.CopyTo(_data.AsSpan(index * _dimensions, _dimensions));
                _tokens += tokens;
                _modelTicks += modelTicks;
                if (++_done < Inputs.Length || Interlocked.CompareExchange(ref _state, Settled, Pending) != Pending)
                {
                    return;
                }
            }
            Registration.Dispose();
            Interlocked.Increment(ref _owner._completed);
            var result = new EmbeddingResult(_data, Inputs.Length, _dimensions, _tokens, TimeSpan.FromTicks((long)Math.Round(_modelTicks)));
            if (inline)
            {
                TrySetResult(result); // the caller's continuation runs here, on the worker, with no hand-off
            }
            else
            {
                ThreadPool.UnsafeQueueUserWorkItem(static s => s.Request.TrySetResult(s.Result), (Request: this, Result: result), preferLocal: false);
            }
        }

        public void Fail(Exception ex)
        {
            if (Interlocked.CompareExchange(ref _state, Settled, Pending) != Pending)
            {
                return;
            }
            Registration.Dispose();
            Interlocked.Increment(ref _owner._failed);
            ThreadPool.UnsafeQueueUserWorkItem(static s => s.Request.TrySetException(s.Error), (Request: this, Error: ex), preferLocal: false);
        }

        public void Cancel()
        {
            if (Interlocked.CompareExchange(ref _state, Settled, Pending) != Pending)
            {
                return;
            }
            Interlocked.Increment(ref _owner._canceled);
            ThreadPool.UnsafeQueueUserWorkItem(static r => r.TrySetCanceled(r._cancellationToken), this, preferLocal: false);
        }
    }
}
