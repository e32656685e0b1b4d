using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Runtime.ExceptionServices;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using ComputeGrid.Inference.Model;
using ComputeGrid.Inference.Routing;
using NSec.Cryptography;

namespace ComputeGrid.Inference.Nodes;

/// <summary>
/// An inference node as its own process: it loads the embedding model, registers with a ComputeGrid server, keeps
/// one work stream open, embeds each work item it is sent and posts the result, and sends signed telemetry every
/// <see cref="NodeAgentOptions.HeartbeatInterval"/>.
/// </summary>
/// <remarks>
/// <para>
/// Everything goes over one <see cref="HttpClient"/> that speaks HTTP/2 only (cleartext with prior knowledge for
/// <c>http://</c>) and keeps one connection, so registration, heartbeats, the long-lived work stream and the results
/// share one persistent HTTP/2 connection, each as its own stream.
/// </para>
/// <para>
/// Registration is retried with bounded exponential backoff until the server answers; a 4xx answer is final
/// (<see cref="NodeRegistrationException"/>). A work stream that ends, breaks or stays silent longer than
/// <see cref="NodeAgentOptions.StreamIdleTimeout"/> is reopened with the same backoff. When the server no longer
/// knows the node's token (a 401 or 404, e.g. after a server restart) the node registers again with the same key.
/// </para>
/// <para>
/// Each work item runs on its own task, at most <see cref="NodeAgentOptions.Capacity"/> at once (the rest wait: the
/// telemetry's <c>queue</c>); the inputs of all running items go through one <see cref="EmbeddingBatcher"/>.
/// </para>
/// <para>
/// Telemetry: <c>seq</c> starts at the agent's start time in Unix milliseconds and grows by one per heartbeat, so it
/// keeps increasing across restarts of a node that keeps its key (the server refuses a sequence that does not);
/// <c>utilization</c> is the model's busy time in the interval over the interval, clamped to 0 … 1 (the batcher runs
/// one model call at a time, each on all of the model's intra-op threads, so one busy second per second is full
/// use); <c>requests</c> and <c>tokens</c> count the items answered with vectors; <c>inflight</c> the items received
/// and not yet answered that are not waiting for a slot (<c>queue</c>); <c>ewma_model_ms</c> the exponentially
/// weighted mean (α = <see cref="EwmaAlpha"/>) of the items' model time; power as <see cref="NodePowerMeter"/> gives it.
/// </para>
/// <para>State changes (registered, stream connected or lost, heartbeats failing or back) are logged one line each.</para>
/// </remarks>
public sealed partial class NodeAgent : IAsyncDisposable, IDisposable
{
    /// <summary>The weight of the newest item in the telemetry's <c>ewma_model_ms</c>.</summary>
    public const double EwmaAlpha = 0.2;

    private const int ResultAttempts = 3;
    private static readonly TimeSpan RequestTimeout = TimeSpan.FromSeconds(10);
    private static readonly MediaTypeHeaderValue JsonType = new("application/json");

    private readonly NodeAgentOptions _options;
    private readonly TextWriter _log;
    private readonly Lock _logGate = new();
    private readonly IEmbeddingModel _model;
    private readonly IDisposable? _ownedModel;
    private readonly EmbeddingBatcher _batcher;
    private readonly LatencyMatrix _latency;
    private readonly int _regionIndex;
    private readonly byte[] _privateKey;
    private readonly byte[] _publicKey;
    private readonly HttpClient _http;
    private readonly SemaphoreSlim _slots;
    private readonly SemaphoreSlim _registerGate = new(1, 1);
    private readonly string? _nvidiaSmi;
    private readonly CancellationTokenSource _disposing = new();
    private readonly TaskCompletionSource _registered = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly ConcurrentDictionary<long, Task> _work = new();
    private readonly long _startTimestamp = Stopwatch.GetTimestamp();
    private readonly long _sequenceBase = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
    private readonly Lock _statsGate = new();

    private volatile Session? _session;
    private long _sequence;
    private long _requests;
    private long _tokens;
    private long _failed;
    private int _outstanding;
    private int _queued;
    private double _ewmaModelMs;
    private bool _haveEwma;
    private long _workCounter;
    private string? _powerState;
    private Task? _run;
    private int _started;
    private int _disposed;

    /// <summary>
    /// Creates the agent: checks the settings, loads or creates the key, and loads the model (unless one is given).
    /// Nothing is sent before <see cref="RunAsync"/>.
    /// </summary>
    /// <param name="options">The node's settings.</param>
    /// <param name="log">Where state changes are written, one line each (e.g. <see cref="Console.Error"/>); none when null.</param>
    /// <param name="model">
    /// The model to serve, shared and not disposed by the agent; null: a <see cref="MiniLmEmbeddingModel"/> with
    /// <see cref="NodeAgentOptions.IntraOpThreads"/> threads per call, owned by the agent.
    /// </param>
    /// <param name="latency">The region data (regions and RTTs); null: <see cref="LatencyMatrix.LoadDefault"/>.</param>
    /// <exception cref="ArgumentException">A setting is out of range, or the region is unknown.</exception>
    /// <exception cref="InvalidDataException">The key file does not hold a 32-byte key.</exception>
    /// <exception cref="IOException">The key file cannot be read or created.</exception>
    public NodeAgent(NodeAgentOptions options, TextWriter? log = null, IEmbeddingModel? model = null, LatencyMatrix? latency = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _options = options;
        _log = log ?? TextWriter.Null;
        _latency = latency ?? LatencyMatrix.LoadDefault();
        if (!_latency.TryGetRegion(options.Region, out _regionIndex))
        {
            throw new ArgumentException(
                $"Unknown region '{options.Region}'; the regions are: {string.Join(", ", _latency.Regions)}.", nameof(options));
        }
        Region = _latency.Regions[_regionIndex];

        (_privateKey, _publicKey, bool created, string? warning) = LoadOrCreateKey(options.KeyFile);
        NodeId = string.IsNullOrEmpty(options.NodeId) ? DefaultNodeId(Region, _publicKey) : options.NodeId;
        if (created) Log($"created key file {options.KeyFile} (Ed25519, owner-only)");
        if (warning is not null) Log(warning);

        var parallelism = new ModelParallelism(
            options.Workers ?? (options.IntraOpThreads is null ? ModelParallelism.Default.Workers : 1),
            options.IntraOpThreads ?? ModelParallelism.Default.IntraOpThreads);
        if (model is null)
        {
            int threads = parallelism.IntraOpThreads;
            Log($"loading {MiniLmEmbeddingModel.ModelId} ({parallelism})");
            var owned = new MiniLmEmbeddingModel(threads);
            _model = owned;
            _ownedModel = owned;
        }
        else
        {
            _model = model;
        }
        try
        {
            // The longest scheduler slice for the model threads, as in the server: the node's own connection threads,
            // woken onto a core the model computes on, run at once instead of waiting out the model's slice.
            _batcher = new EmbeddingBatcher(_model, new EmbeddingBatcherOptions { Workers = parallelism.Workers, WorkerSlice = ComputeGrid.Core.ThreadSlice.Max });
            _slots = new SemaphoreSlim(options.Capacity, options.Capacity);
            _nvidiaSmi = NodePowerMeter.FindNvidiaSmi();
            _http = CreateHttpClient(options.Server);
        }
        catch
        {
            _ownedModel?.Dispose();
            throw;
        }
    }

    /// <summary>The node's id (given, or derived from the region and the public key).</summary>
    public string NodeId { get; }

    /// <summary>The node's region id (<see cref="LatencyMatrix.Regions"/>' spelling, e.g. <c>washington-dc</c>).</summary>
    public string Region { get; }

    /// <summary>The node's Ed25519 public key (raw, 32 bytes), as registered.</summary>
    public ReadOnlyMemory<byte> PublicKey => _publicKey;

    /// <summary>The model the node serves.</summary>
    public IEmbeddingModel Model => _model;

    /// <summary>The settings in force.</summary>
    public NodeAgentOptions Options => _options;

    /// <summary>
    /// Completes when the server first accepts the registration; faults with the error that stopped
    /// <see cref="RunAsync"/> before that, and is cancelled when the run was cancelled first.
    /// </summary>
    public Task Registered => _registered.Task;

    /// <summary>The ledger account the server credits the node's earnings to, when its registration answer names one.</summary>
    public string? RevenueAccount { get; private set; }

    /// <summary>Work items answered with vectors so far.</summary>
    public long RequestsCompleted => Interlocked.Read(ref _requests);

    /// <summary>Work items answered with an error so far.</summary>
    public long RequestsFailed => Interlocked.Read(ref _failed);

    /// <summary>
    /// Registers, then runs the work stream and the heartbeats until <paramref name="cancellationToken"/> is cancelled
    /// (or the agent is disposed); then lets the work in progress finish and send its results (at most
    /// <see cref="NodeAgentOptions.DrainTimeout"/>) and completes normally. Runs once per agent.
    /// </summary>
    /// <param name="cancellationToken">Stops the node.</param>
    /// <exception cref="NodeRegistrationException">The server refused the registration (a 4xx answer).</exception>
    /// <exception cref="InvalidOperationException">The agent already ran.</exception>
    /// <exception cref="ObjectDisposedException">The agent is disposed.</exception>
    public Task RunAsync(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        if (Interlocked.Exchange(ref _started, 1) != 0) throw new InvalidOperationException("A node agent runs once.");
        var run = RunCoreAsync(cancellationToken);
        _run = run;
        return run;
    }

    /// <summary>Stops a run in progress (as cancelling it does), waits for it, and releases the batcher, the model (when owned) and the connection.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _disposing.Cancel();
        if (_run is { } run)
        {
            try { await run.ConfigureAwait(false); }
            catch (Exception) { } // RunAsync's caller observes it
        }
        await _batcher.DisposeAsync().ConfigureAwait(false);
        _ownedModel?.Dispose();
        _http.Dispose();
        _slots.Dispose();
        _registerGate.Dispose();
        _disposing.Dispose();
    }

    /// <summary>Stops a run in progress, waits for it, and releases what the agent holds (blocking).</summary>
    public void Dispose() => DisposeAsync().AsTask().GetAwaiter().GetResult();

    /// <summary>The id of a node that was given none: <c>{region}-{first 8 hex digits of SHA-256(public key)}</c>.</summary>
    /// <param name="region">The region id.</param>
    /// <param name="publicKey">The raw public key.</param>
    public static string DefaultNodeId(string region, ReadOnlySpan<byte> publicKey) =>
        $"{region}-{Convert.ToHexStringLower(SHA256.HashData(publicKey))[..8]}";

    // ------------------------------------------------------------------ run

    private async Task RunCoreAsync(CancellationToken cancellationToken)
    {
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _disposing.Token);
        CancellationToken ct = linked.Token;
        try
        {
            await RegisterAsync(ct).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            _registered.TrySetCanceled(ct);
            Log("stopped before registering");
            return;
        }
        catch (Exception e)
        {
            _registered.TrySetException(e);
            Log($"stopped: {e.Message}");
            throw;
        }
        _registered.TrySetResult();

        using var loops = CancellationTokenSource.CreateLinkedTokenSource(ct);
        using var items = new CancellationTokenSource();
        Task stream = Task.Run(() => ReadWorkAsync(items.Token, loops.Token), CancellationToken.None);
        Task beats = Task.Run(() => HeartbeatAsync(loops.Token), CancellationToken.None);
        Task epochs = Task.Run(() => EpochReportsLoopAsync(loops.Token), CancellationToken.None);
        await Task.WhenAny(stream, beats).ConfigureAwait(false);
        // Both loops end only when stopped, or on a fatal error (a refused re-registration): stop the other one too.
        loops.Cancel();
        try { await Task.WhenAll(stream, beats, epochs).ConfigureAwait(false); }
        catch (Exception) { } // inspected below
        Exception? fatal = stream.Exception?.InnerException ?? beats.Exception?.InnerException;

        int left = _work.Count;
        if (left > 0)
        {
            Log($"stopping: letting {left} work item{(left == 1 ? "" : "s")} finish");
            Task all = Task.WhenAll(_work.Values);
            if (await Task.WhenAny(all, Task.Delay(_options.DrainTimeout, CancellationToken.None)).ConfigureAwait(false) != all)
            {
                items.Cancel();
                Log($"abandoned {_work.Count} unfinished work item(s)");
                await all.ConfigureAwait(false); // the items catch everything
            }
        }
        if (fatal is not null)
        {
            Log($"stopped: {fatal.Message}");
            ExceptionDispatchInfo.Throw(fatal);
        }
        Log("stopped");
    }

    // ------------------------------------------------------------------ registration

    private sealed record Session(string Token, int Generation);

    private async Task RegisterAsync(CancellationToken ct)
    {
        int failures = 0;
        string? lastProblem = null;
        while (true)
        {
            string? problem;
            try
            {
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
                timeout.CancelAfter(RequestTimeout);
                problem = await TryRegisterAsync(timeout.Token).ConfigureAwait(false);
                if (problem is null) return;
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                problem = $"no answer in {RequestTimeout.TotalSeconds:0} s";
            }
            catch (HttpRequestException e)
            {
                problem = Describe(e);
            }
            catch (IOException e)
            {
                problem = e.Message;
            }
            catch (JsonException e)
            {
                problem = "the server's answer is not JSON: " + e.Message;
            }
            failures++;
            if (problem != lastProblem)
            {
                Log($"registration at {_options.Server} failed ({problem}); retrying with backoff up to {_options.ReconnectMaxDelay.TotalSeconds:0.#} s");
                lastProblem = problem;
            }
            await Task.Delay(Backoff(failures), ct).ConfigureAwait(false);
        }
    }

    // One registration: challenge and response. The server hands out a fresh nonce, the node signs it (bound to what it
    // offers) with the key an operator admitted it with, and gets a session token no one else can obtain. Null when
    // registered; else why not (worth retrying). A final refusal throws NodeRegistrationException.
    private async Task<string?> TryRegisterAsync(CancellationToken ct)
    {
        using var ask = NewRequest(HttpMethod.Post, "node/v1/challenge", null, JsonBody(new NodeChallengeRequest(NodeId)));
        using var challenged = await _http.SendAsync(ask, ct).ConfigureAwait(false);
        if (!challenged.IsSuccessStatusCode) return await RefusedAsync(challenged, "challenge", ct).ConfigureAwait(false);
        NodeChallenge? challenge = JsonSerializer.Deserialize<NodeChallenge>(await challenged.Content.ReadAsStringAsync(ct).ConfigureAwait(false));
        if (challenge is null || string.IsNullOrEmpty(challenge.Nonce)) return "the server's challenge holds no nonce";
        string[] models = [_model.Id];
        byte[] signature = NodeSigning.SignBytes(NodeSigning.SessionMessage(NodeId, challenge.Nonce, Region, models, _options.PriceMicroUsdPer1kTokens, _options.Capacity), _privateKey);
        var body = new NodeRegisterRequest(NodeId, challenge.Nonce, Region, models, _options.PriceMicroUsdPer1kTokens, _options.Capacity, Convert.ToBase64String(signature));
        using var request = NewRequest(HttpMethod.Post, "node/v1/sessions", null, JsonBody(body));
        using var response = await _http.SendAsync(request, ct).ConfigureAwait(false);
        if (!response.IsSuccessStatusCode) return await RefusedAsync(response, "registration", ct).ConfigureAwait(false);
        NodeSessionGrant? grant = JsonSerializer.Deserialize<NodeSessionGrant>(await response.Content.ReadAsStringAsync(ct).ConfigureAwait(false));
        if (grant is not { Token.Length: > 0 }) return "the server's answer holds no token";
        int generation = (_session?.Generation ?? 0) + 1;
        _session = new Session(grant.Token, generation);
        RevenueAccount = grant.RevenueAccount;
        Log($"registered at {_options.Server} in {Region} ({_model.Id}, price {_options.PriceMicroUsdPer1kTokens} micro-USD per 1k tokens, capacity {_options.Capacity}, {Protocol(response.Version)})");
        return null;
    }

    // A 4xx (other than a timeout or a rate limit) is final: the node is not admitted, its key is not the admitted one,
    // or it offers what it may not (a price above its ceiling). Anything else is worth retrying.
    private async Task<string> RefusedAsync(HttpResponseMessage response, string step, CancellationToken ct)
    {
        int code = (int)response.StatusCode;
        string detail = await DetailAsync(response, ct).ConfigureAwait(false);
        if (code is >= 400 and < 500 and not 408 and not 429)
        {
            throw new NodeRegistrationException(
                $"the server at {_options.Server} refused node {NodeId}'s {step} ({code} {StatusName(response.StatusCode)}): {detail}")
            { StatusCode = code };
        }
        return $"{code} {StatusName(response.StatusCode)}: {detail}";
    }

    /// <summary>Registers again (same id and key) unless another loop already did since <paramref name="seen"/>.</summary>
    private async Task ReregisterAsync(Session seen, string why, CancellationToken ct)
    {
        await _registerGate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (!ReferenceEquals(_session, seen)) return;
            Log($"{why}; registering again");
            await RegisterAsync(ct).ConfigureAwait(false);
        }
        finally
        {
            _registerGate.Release();
        }
    }

    // ------------------------------------------------------------------ capacity reports

    // Report sequence numbers start at the clock's ticks, so they keep increasing across the node's restarts.
    private long _reportSequence = DateTimeOffset.UtcNow.UtcTicks;

    /// <summary>
    /// Signs and sends a report about the capacity this node sells on the exchange: <c>delivery</c> of a lease over
    /// [from, to), or <c>outage</c>. Returns the server's answer (JSON) or throws <see cref="HttpRequestException"/> with
    /// the problem's detail. The node must be registered.
    /// </summary>
    public async Task<string> ReportAsync(string kind, long lease, DateTimeOffset from, DateTimeOffset to, CancellationToken ct = default)
    {
        Session session = _session ?? throw new InvalidOperationException("The node is not registered.");
        var report = new NodeReport { NodeId = NodeId, Sequence = Interlocked.Increment(ref _reportSequence), At = DateTimeOffset.UtcNow, Kind = kind, Lease = lease, From = from, To = to };
        using var request = NewRequest(HttpMethod.Post, "node/v1/reports", session.Token, JsonBody(NodeSigning.Sign(report, _privateKey)));
        using var response = await _http.SendAsync(request, ct).ConfigureAwait(false);
        string body = await response.Content.ReadAsStringAsync(ct).ConfigureAwait(false);
        if (!response.IsSuccessStatusCode) throw new HttpRequestException($"{(int)response.StatusCode}: {body}", null, response.StatusCode);
        return body;
    }

    // ------------------------------------------------------------------ work stream

    private async Task ReadWorkAsync(CancellationToken itemsToken, CancellationToken ct)
    {
        int failures = 0;
        string? state = null;
        while (!ct.IsCancellationRequested)
        {
            Session session = _session!;
            string problem;
            bool healthy = false;
            long opened = 0;
            try
            {
                using var watch = CancellationTokenSource.CreateLinkedTokenSource(ct);
                watch.CancelAfter(RequestTimeout);
                using var request = NewRequest(HttpMethod.Get, "node/v1/work", session.Token, null);
                request.Headers.Accept.ParseAdd("application/x-ndjson");
                using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, watch.Token).ConfigureAwait(false);
                int code = (int)response.StatusCode;
                if (code is 401 or 404)
                {
                    string detail = await DetailAsync(response, watch.Token).ConfigureAwait(false);
                    state = null;
                    await ReregisterAsync(session, $"the server refused the work stream ({code} {StatusName(response.StatusCode)}: {detail})", ct).ConfigureAwait(false);
                    problem = ""; // logged by the registration
                    healthy = true; // registered anew: reconnect after the shortest wait
                }
                else if (!response.IsSuccessStatusCode)
                {
                    problem = $"{code} {StatusName(response.StatusCode)}: {await DetailAsync(response, watch.Token).ConfigureAwait(false)}";
                }
                else
                {
                    opened = Stopwatch.GetTimestamp();
                    if (state != "connected")
                    {
                        Log($"work stream connected ({Protocol(response.Version)})");
                        state = "connected";
                    }
                    watch.CancelAfter(_options.StreamIdleTimeout);
                    await using var body = await response.Content.ReadAsStreamAsync(watch.Token).ConfigureAwait(false);
                    using var reader = new StreamReader(body, Encoding.UTF8);
                    while (true)
                    {
                        string? line;
                        try
                        {
                            line = await reader.ReadLineAsync(watch.Token).ConfigureAwait(false);
                        }
                        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
                        {
                            problem = $"nothing on the work stream for {_options.StreamIdleTimeout.TotalSeconds:0.#} s";
                            break;
                        }
                        if (line is null)
                        {
                            problem = "the server closed the work stream";
                            break;
                        }
                        watch.CancelAfter(_options.StreamIdleTimeout);
                        if (string.IsNullOrWhiteSpace(line)) continue; // keep-alive
                        NodeWorkItem? item;
                        try { item = JsonSerializer.Deserialize<NodeWorkItem>(line); }
                        catch (JsonException e)
                        {
                            Log($"ignored a malformed work line ({e.Message.Split(". ")[0]})");
                            continue;
                        }
                        if (item is null || string.IsNullOrEmpty(item.Id))
                        {
                            Log("ignored a work line without an id");
                            continue;
                        }
                        healthy = true;
                        Dispatch(item, itemsToken);
                    }
                }
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                break;
            }
            catch (OperationCanceledException)
            {
                problem = $"no answer in {RequestTimeout.TotalSeconds:0} s";
            }
            catch (HttpRequestException e)
            {
                problem = Describe(e);
            }
            catch (IOException e)
            {
                problem = e.Message;
            }

            // A stream that carried work or stayed up a while was healthy (or the node just registered again): start
            // the backoff again from the bottom.
            if (healthy || (opened != 0 && Stopwatch.GetElapsedTime(opened) >= _options.ReconnectMaxDelay)) failures = 0;
            failures++;
            if (problem.Length > 0 && state != "failing: " + problem) // the same failure again was logged already
            {
                Log(state == "connected"
                    ? $"work stream lost ({problem}); reconnecting"
                    : $"work stream unavailable ({problem}); retrying with backoff up to {_options.ReconnectMaxDelay.TotalSeconds:0.#} s");
                state = "failing: " + problem;
            }
            try { await Task.Delay(Backoff(failures), ct).ConfigureAwait(false); }
            catch (OperationCanceledException) { break; }
        }
    }

    private void Dispatch(NodeWorkItem item, CancellationToken itemsToken)
    {
        long key = Interlocked.Increment(ref _workCounter);
        long received = Stopwatch.GetTimestamp();
        Interlocked.Increment(ref _outstanding);
        Task task = Task.Run(() => ProcessAsync(item, received, itemsToken), CancellationToken.None);
        _work[key] = task;
        // Registered after the add, so the removal always comes after it.
        _ = task.ContinueWith(_ => _work.TryRemove(key, out Task? _), CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    private async Task ProcessAsync(NodeWorkItem item, long received, CancellationToken ct)
    {
        try
        {
            NodeWorkResult result;
            double networkMs = 0;
            bool slot = false;
            try
            {
                if (_options.SimulateDistance && _latency.TryGetRegion(item.RequestRegion, out int from))
                {
                    networkMs = _latency.Rtt(from, _regionIndex);
                    await Task.Delay(TimeSpan.FromMilliseconds(networkMs), ct).ConfigureAwait(false);
                }
                Interlocked.Increment(ref _queued);
                try
                {
                    await _slots.WaitAsync(ct).ConfigureAwait(false);
                    slot = true;
                }
                finally
                {
                    Interlocked.Decrement(ref _queued);
                }
                TokenizedInput[] inputs = Tokenize(item);
                EmbeddingResult embedded = await _batcher.EmbedAsync(inputs, ct).ConfigureAwait(false);
                _slots.Release();
                slot = false;
                double modelMs = embedded.ModelTime.TotalMilliseconds;
                double totalMs = Stopwatch.GetElapsedTime(received).TotalMilliseconds;
                result = new NodeWorkResult
                {
                    VectorsBase64 = ToBase64(embedded.Vectors.Span),
                    Dimensions = embedded.Dimensions,
                    Tokens = embedded.TokenCount,
                    QueueMs = Math.Round(Math.Max(0, totalMs - networkMs - modelMs), 3),
                    ModelMs = Math.Round(modelMs, 3),
                    NetworkMs = networkMs,
                };
                Record(embedded.TokenCount, modelMs);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return; // abandoned while stopping: the server fails it over when the stream closes
            }
            catch (Exception e)
            {
                Interlocked.Increment(ref _failed);
                result = new NodeWorkResult { Error = e.Message, NetworkMs = networkMs };
            }
            finally
            {
                if (slot) _slots.Release();
            }
            await PostResultAsync(item.Id, result, ct).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            Log($"work {item.Id}: {e.Message}"); // never reached in normal operation: everything above is caught
        }
        finally
        {
            Interlocked.Decrement(ref _outstanding);
        }
    }

    private TokenizedInput[] Tokenize(NodeWorkItem item)
    {
        if (!string.Equals(item.Model, _model.Id, StringComparison.Ordinal))
            throw new InvalidOperationException($"node {NodeId} serves {_model.Id}, not '{item.Model}'");
        if (item.Inputs is not { Length: > 0 } texts)
            throw new InvalidOperationException("the work item has no inputs");
        var inputs = new TokenizedInput[texts.Length];
        for (int i = 0; i < texts.Length; i++)
        {
            TokenizedInput input = _model.Tokenize(texts[i] ?? throw new InvalidOperationException($"input {i} is null"));
            if (input.TokenCount > _model.MaxTokens)
                throw new InvalidOperationException($"input {i} has {input.TokenCount} tokens; {_model.Id} takes at most {_model.MaxTokens}");
            inputs[i] = input;
        }
        return inputs;
    }

    private void Record(int tokens, double modelMs)
    {
        Interlocked.Increment(ref _requests);
        Interlocked.Add(ref _tokens, tokens);
        lock (_statsGate)
        {
            _ewmaModelMs = _haveEwma ? (EwmaAlpha * modelMs) + ((1 - EwmaAlpha) * _ewmaModelMs) : modelMs;
            _haveEwma = true;
        }
    }

    private static string ToBase64(ReadOnlySpan<float> vectors)
    {
        if (BitConverter.IsLittleEndian) return Convert.ToBase64String(MemoryMarshal.AsBytes(vectors));
        var bytes = new byte[vectors.Length * sizeof(float)];
        for (int i = 0; i < vectors.Length; i++) BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(i * sizeof(float)), vectors[i]);
        return Convert.ToBase64String(bytes);
    }

    private async Task PostResultAsync(string workId, NodeWorkResult result, CancellationToken ct)
    {
        for (int attempt = 1; ; attempt++)
        {
            Session session = _session!;
            string problem;
            bool retry;
            try
            {
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
                timeout.CancelAfter(RequestTimeout);
                using var request = NewRequest(HttpMethod.Post, $"node/v1/results/{Uri.EscapeDataString(workId)}",
                    session.Token, JsonBody(result));
                using var response = await _http.SendAsync(request, timeout.Token).ConfigureAwait(false);
                if (response.IsSuccessStatusCode) return;
                int code = (int)response.StatusCode;
                string detail = await DetailAsync(response, timeout.Token).ConfigureAwait(false);
                if (code == 404)
                {
                    Log($"the server no longer waits for work {workId} (404: {detail})");
                    return;
                }
                retry = code >= 500 || code is 408 or 429;
                problem = $"{code} {StatusName(response.StatusCode)}: {detail}";
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
            catch (OperationCanceledException)
            {
                (problem, retry) = ($"no answer in {RequestTimeout.TotalSeconds:0} s", true);
            }
            catch (HttpRequestException e)
            {
                (problem, retry) = (Describe(e), true);
            }
            catch (IOException e)
            {
                (problem, retry) = (e.Message, true);
            }
            if (!retry || attempt >= ResultAttempts)
            {
                Log($"could not send the result of work {workId} ({problem})");
                return;
            }
            try { await Task.Delay(_options.ReconnectMinDelay * attempt, ct).ConfigureAwait(false); }
            catch (OperationCanceledException) { return; }
        }
    }

    // ------------------------------------------------------------------ heartbeats

    private async Task HeartbeatAsync(CancellationToken ct)
    {
        using var timer = new PeriodicTimer(_options.HeartbeatInterval);
        long last = Stopwatch.GetTimestamp();
        TimeSpan lastModel = _batcher.Stats.ModelTime;
        string? state = null;
        try
        {
            while (true)
            {
                long now = Stopwatch.GetTimestamp();
                TimeSpan model = _batcher.Stats.ModelTime;
                double seconds = Stopwatch.GetElapsedTime(last, now).TotalSeconds;
                double utilization = seconds > 0 ? Math.Clamp((model - lastModel).TotalSeconds / seconds, 0, 1) : 0;
                last = now;
                lastModel = model;
                (double watts, string source) = await PowerAsync(utilization, ct).ConfigureAwait(false);
                MeterEpoch(seconds, watts, utilization, source == NodePowerMeter.NvidiaSmiSource);
                SignedTelemetry signed = NodeSigning.Sign(Telemetry(utilization, watts, source), _privateKey);

                Session session = _session!;
                string? next;
                try
                {
                    using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
                    timeout.CancelAfter(RequestTimeout);
                    using var request = NewRequest(HttpMethod.Post, "node/v1/heartbeat", session.Token, JsonBody(signed));
                    using var response = await _http.SendAsync(request, timeout.Token).ConfigureAwait(false);
                    int code = (int)response.StatusCode;
                    if (response.IsSuccessStatusCode)
                    {
                        next = "ok";
                    }
                    else
                    {
                        string detail = await DetailAsync(response, timeout.Token).ConfigureAwait(false);
                        if (code is 401 or 404)
                        {
                            await ReregisterAsync(session, $"the server refused a heartbeat ({code} {StatusName(response.StatusCode)}: {detail})", ct).ConfigureAwait(false);
                            state = null; // the next heartbeat, with the new token, logs how it went
                            next = null;
                        }
                        else
                        {
                            next = $"{code} {StatusName(response.StatusCode)}: {detail}";
                        }
                    }
                }
                catch (OperationCanceledException) when (!ct.IsCancellationRequested)
                {
                    next = $"no answer in {RequestTimeout.TotalSeconds:0} s";
                }
                catch (HttpRequestException e)
                {
                    next = Describe(e);
                }
                catch (IOException e)
                {
                    next = e.Message;
                }
                if (next is not null && next != state)
                {
                    Log(next == "ok"
                        ? $"heartbeats ok (every {_options.HeartbeatInterval.TotalSeconds:0.###} s, power {source})"
                        : $"heartbeats failing ({next})");
                    state = next;
                }
                if (!await timer.WaitForNextTickAsync(ct).ConfigureAwait(false)) return;
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
    }

    private NodeTelemetry Telemetry(double utilization, double watts, string source)
    {
        int outstanding = Volatile.Read(ref _outstanding), queued = Volatile.Read(ref _queued);
        double ewma;
        lock (_statsGate) ewma = _ewmaModelMs;
        return new NodeTelemetry
        {
            NodeId = NodeId,
            Sequence = _sequenceBase + Interlocked.Increment(ref _sequence),
            At = DateTimeOffset.UtcNow,
            UptimeSeconds = Math.Round(Stopwatch.GetElapsedTime(_startTimestamp).TotalSeconds, 3),
            Utilization = Math.Round(utilization, 4),
            Requests = Interlocked.Read(ref _requests),
            Tokens = Interlocked.Read(ref _tokens),
            Inflight = Math.Max(0, outstanding - queued),
            Queue = Math.Max(0, queued),
            EwmaModelMs = Math.Round(ewma, 3),
            PowerWatts = Math.Round(watts, 2),
            PowerSource = source,
        };
    }

    private async Task<(double Watts, string Source)> PowerAsync(double utilization, CancellationToken ct)
    {
        if (_nvidiaSmi is not null)
        {
            if (await NodePowerMeter.QueryNvidiaSmiAsync(_nvidiaSmi, ct).ConfigureAwait(false) is { } watts)
            {
                if (_powerState != NodePowerMeter.NvidiaSmiSource)
                {
                    if (_powerState is not null) Log($"power: measured by {_nvidiaSmi} again");
                    _powerState = NodePowerMeter.NvidiaSmiSource;
                }
                return (watts, NodePowerMeter.NvidiaSmiSource);
            }
            if (_powerState != NodePowerMeter.ModeledSource)
            {
                Log($"power: {_nvidiaSmi} gave no reading; modeling power from utilization");
                _powerState = NodePowerMeter.ModeledSource;
            }
        }
        return (NodePowerMeter.Modeled(utilization), NodePowerMeter.ModeledSource);
    }

    // ------------------------------------------------------------------ plumbing

    private static HttpClient CreateHttpClient(Uri server)
    {
        var handler = new SocketsHttpHandler
        {
            // One connection for everything: HTTP/2 multiplexes the work stream, heartbeats and results over it.
            EnableMultipleHttp2Connections = false,
            ConnectTimeout = TimeSpan.FromSeconds(10),
            // Pings find a dead connection (a server that vanished without closing) even while the stream is idle.
            KeepAlivePingDelay = TimeSpan.FromSeconds(15),
            KeepAlivePingTimeout = TimeSpan.FromSeconds(10),
            KeepAlivePingPolicy = HttpKeepAlivePingPolicy.Always,
            PooledConnectionIdleTimeout = TimeSpan.FromMinutes(10),
            AllowAutoRedirect = false,
            UseCookies = false,
        };
        string text = server.AbsoluteUri;
        return new HttpClient(handler, disposeHandler: true)
        {
            BaseAddress = new Uri(text.EndsWith('/') ? text : text + "/"),
            DefaultRequestVersion = HttpVersion.Version20,
            DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact,
            Timeout = Timeout.InfiniteTimeSpan, // the work stream lives for hours; each call has its own timeout
        };
    }

    private HttpRequestMessage NewRequest(HttpMethod method, string path, string? token, HttpContent? content)
    {
        // A request built by hand does not take HttpClient's defaults: HTTP/2 only, on the one connection.
        var request = new HttpRequestMessage(method, path)
        {
            Version = HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
            Content = content,
        };
        if (token is not null) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return request;
    }

    private static ByteArrayContent JsonBody<T>(T value)
    {
        var content = new ByteArrayContent(JsonSerializer.SerializeToUtf8Bytes(value));
        content.Headers.ContentType = JsonType;
        return content;
    }

    /// <summary>The <c>detail</c> (or <c>title</c>) of a problem answer, else its text, shortened to one line.</summary>
    private static async Task<string> DetailAsync(HttpResponseMessage response, CancellationToken ct)
    {
        string text;
        try { text = await response.Content.ReadAsStringAsync(ct).ConfigureAwait(false); }
        catch (Exception e) when (e is HttpRequestException or IOException or OperationCanceledException) { text = ""; }
        try
        {
            using var doc = JsonDocument.Parse(text);
            if (doc.RootElement.ValueKind == JsonValueKind.Object)
            {
                foreach (string name in (ReadOnlySpan<string>)["detail", "title", "error"])
                {
                    if (doc.RootElement.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String && v.GetString() is { Length: > 0 } s)
                        return s.ReplaceLineEndings(" ");
                }
            }
        }
        catch (JsonException) { }
        text = text.Trim().ReplaceLineEndings(" ");
        if (text.Length > 200) text = text[..200] + "…";
        return text.Length == 0 ? "no detail" : text;
    }

    private static string Protocol(Version version) => version.Minor == 0 ? $"HTTP/{version.Major}" : $"HTTP/{version.Major}.{version.Minor}";

    private static string StatusName(HttpStatusCode code) =>
        Enum.IsDefined(code) ? SplitWords(code.ToString()) : "";

    private static string SplitWords(string name)
    {
        var sb = new StringBuilder(name.Length + 4);
        for (int i = 0; i < name.Length; i++)
        {
            if (i > 0 && char.IsUpper(name[i]) && !char.IsUpper(name[i - 1])) sb.Append(' ');
            sb.Append(name[i]);
        }
        return sb.ToString();
    }

    private static string Describe(HttpRequestException e) =>
        e.InnerException is { } inner && !e.Message.Contains(inner.Message, StringComparison.Ordinal)
            ? $"{e.Message} {inner.Message}"
            : e.Message;

    private TimeSpan Backoff(int failures)
    {
        double min = _options.ReconnectMinDelay.TotalMilliseconds, max = _options.ReconnectMaxDelay.TotalMilliseconds;
        double delay = Math.Min(max, min * Math.Pow(2, Math.Min(failures - 1, 30)));
        delay *= 0.8 + (0.4 * Random.Shared.NextDouble()); // jitter, so a fleet does not reconnect in step
        return TimeSpan.FromMilliseconds(Math.Clamp(delay, min, max));
    }

    private void Log(string message)
    {
        string line = string.Create(CultureInfo.InvariantCulture, $"{DateTime.UtcNow:HH:mm:ss.fff} node {NodeId}: {message}");
        lock (_logGate)
        {
            try
            {
                _log.WriteLine(line);
                _log.Flush();
            }
            catch (Exception e) when (e is IOException or ObjectDisposedException) { }
        }
    }

    /// <summary>
    /// A node's key pair from <paramref name="keyFile"/> (raw 32-byte Ed25519 seed), created there (0600, fsync-ed) when the
    /// file does not exist; a new key for this run when the path is null or empty. <c>Warning</c> names a key file others can read.
    /// </summary>
    public static (byte[] Private, byte[] Public, bool Created, string? Warning) LoadOrCreateKey(string? keyFile)
    {
        byte[] privateKey;
        bool created = false;
        string? warning = null;
        if (string.IsNullOrEmpty(keyFile))
        {
            privateKey = NodeSigning.NewKeyPair().PrivateKey;
        }
        else if (File.Exists(keyFile))
        {
            privateKey = ReadKey(keyFile);
            if (!OperatingSystem.IsWindows())
            {
                UnixFileMode mode = File.GetUnixFileMode(keyFile);
                const UnixFileMode others = UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.GroupExecute
                    | UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute;
                if ((mode & others) != 0)
                    warning = $"warning: key file {keyFile} is accessible to other users (mode {Convert.ToString((int)mode, 8)}); chmod 600 it";
            }
        }
        else
        {
            privateKey = NodeSigning.NewKeyPair().PrivateKey;
            string? dir = Path.GetDirectoryName(Path.GetFullPath(keyFile));
            if (!string.IsNullOrEmpty(dir)) Directory.CreateDirectory(dir);
            var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.None };
            if (!OperatingSystem.IsWindows()) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
            try
            {
                using var stream = new FileStream(keyFile, options);
                stream.Write(privateKey);
                stream.Flush(flushToDisk: true);
                created = true;
            }
            catch (IOException) when (File.Exists(keyFile))
            {
                privateKey = ReadKey(keyFile); // created by someone else meanwhile: use theirs
            }
        }
        using var key = Key.Import(SignatureAlgorithm.Ed25519, privateKey, KeyBlobFormat.RawPrivateKey);
        return (privateKey, key.PublicKey.Export(KeyBlobFormat.RawPublicKey), created, warning);
    }

    private static byte[] ReadKey(string keyFile)
    {
        byte[] bytes = File.ReadAllBytes(keyFile);
        if (bytes.Length != 32)
            throw new InvalidDataException($"The key file {keyFile} holds {bytes.Length} bytes; it must hold a raw 32-byte Ed25519 private key.");
        return bytes;
    }
}
