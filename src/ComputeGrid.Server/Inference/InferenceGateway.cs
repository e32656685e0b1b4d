using System.Diagnostics;
using ComputeGrid.Inference.Model;
using ComputeGrid.Inference.Routing;
using ComputeGrid.Ledger;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace ComputeGrid.Server.Inference;

/// <summary>The work a node runs for one request.</summary>
public sealed record NodeWork(string RequestId, string Model, IReadOnlyList<string> Inputs, int RequestRegion, string RequestRegionName)
{
    /// <summary>The inputs as the gateway tokenized them to meter the request (an in-process node reuses them).</summary>
    public IReadOnlyList<TokenizedInput>? Tokenized { get; init; }
}

/// <summary>What a node answers: the vectors (row-major), its own token count, and where its time went.</summary>
public sealed record NodeRunResult(float[] Vectors, int Dimensions, int Tokens, double QueueMs, double ModelMs, double NetworkMs);

/// <summary>A node the server can send work to (in this process, or a node agent over its connection).</summary>
public interface INodeChannel
{
    /// <summary>Runs <paramref name="work"/>; throws when the node fails or the call is cancelled.</summary>
    Task<NodeRunResult> RunAsync(NodeWork work, CancellationToken cancellationToken);
}

/// <summary>A node running in the server's process (the demo's nodes), the request region's distance applied as a delay from the latency data.</summary>
public sealed class LocalNodeChannel(EmbeddingBatcher batcher, int region, LatencyMatrix latency, TimeProvider time) : INodeChannel
{
    /// <summary>Set to make the node fail every request (tests of failover).</summary>
    public bool Broken { get; set; }

    /// <summary>The node's batcher (its counters show how full the batches ran).</summary>
    public EmbeddingBatcher Batcher => batcher;

    public async Task<NodeRunResult> RunAsync(NodeWork work, CancellationToken cancellationToken)
    {
        if (Broken) throw new IOException("The node is down.");
        // The one simulated part: the network distance between the request's region and this node's, from the data.
        double networkMs = latency.Rtt(work.RequestRegion, region);
        if (networkMs > 0)
        {
            // Report the delay as it really passed (a timer rounds up), so it is not counted as the path's overhead.
            long waitStart = Stopwatch.GetTimestamp();
            await Task.Delay(TimeSpan.FromMilliseconds(networkMs), time, cancellationToken);
            networkMs = Stopwatch.GetElapsedTime(waitStart).TotalMilliseconds;
        }
        long start = Stopwatch.GetTimestamp();
        IEmbeddingModel model = batcher.Model;
        IReadOnlyList<TokenizedInput> inputs = work.Tokenized ?? work.Inputs.Select(model.Tokenize).ToArray();
        EmbeddingResult result = await batcher.EmbedAsync(inputs, cancellationToken);
        double totalMs = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        double modelMs = result.ModelTime.TotalMilliseconds;
        return new NodeRunResult(result.Vectors.ToArray(), result.Dimensions, result.TokenCount, Math.Max(0, totalMs - modelMs), modelMs, networkMs);
    }
}

/// <summary>
/// A capture in flight on the slow path (the request ran on another node or price than its hold's intent, or the
/// settler's queue was full): the ledger write (durable) and what a dead letter would need. The answer goes out only
/// after <see cref="InferenceGateway.ConfirmAsync"/> saw it captured.
/// </summary>
public sealed record PendingCapture(Task<(CaptureOutcome Outcome, CreateTransferResult[] Results)> Task, ulong Customer, string RequestKey, UInt128 HoldId,
    int Generation, string Node, long CostMicroUsd, long FeeMicroUsd, long Started);

/// <summary>The price of a request before it runs (<see cref="InferenceGateway.Quote"/>).</summary>
/// <param name="Status">200, 400 (an input too long) or 503 (no node).</param>
/// <param name="Tokens">The request's tokens.</param>
/// <param name="Node">The node the router ranks first.</param>
/// <param name="PriceMicroUsdPer1kTokens">Its price.</param>
/// <param name="CostMicroUsd">The metered cost there.</param>
/// <param name="Problem">Why there is no price, when Status is not 200.</param>
public sealed record GatewayQuote(int Status, int Tokens, string? Node, long PriceMicroUsdPer1kTokens, long CostMicroUsd, string? Problem);

/// <summary>The outcome of a paid request.</summary>
public sealed record GatewayResult
{
    public required int Status { get; init; }
    public string? Problem { get; init; }
    public string? ProblemTitle { get; init; }
    /// <summary>A machine-readable error code (OpenAI's <c>code</c>), or null for the status's default.</summary>
    public string? ProblemCode { get; init; }
    public NodeRunResult? Run { get; init; }
    public string? Model { get; init; }
    public int Tokens { get; init; }
    public long CostMicroUsd { get; init; }
    public UInt128 TransferId { get; init; }
    public string? Node { get; init; }
    public string? NodeRegion { get; init; }
    public int Attempts { get; init; }

    /// <summary>Whether this request was charged now (false: free, or charged by an earlier attempt with the same key).</summary>
    public bool Charged { get; init; }

    /// <summary>How long the ledger took to apply the hold (it runs while the node computes).</summary>
    public double HoldMs { get; init; }

    /// <summary>How long the answer waited for its capture to be durable, after its body was written.</summary>
    public double CaptureWaitMs { get; init; }

    /// <summary>The capture in flight; null once confirmed or when nothing is to be captured.</summary>
    public PendingCapture? Capture { get; init; }

    /// <summary>The nodes that failed before the one that answered, with why (the failover trail).</summary>
    public IReadOnlyList<string> FailedOver { get; init; } = [];
}

/// <summary>
/// A test-only fault: the process kills itself (SIGKILL) at a point of the paid path, so crash tests can drive a real
/// <c>serve</c> child. Set with the environment variable <c>CG_FAULT</c> (read once at start). Both act on a request
/// whose hold carries its capture intent and that ran on the intent's node (the normal case).
/// </summary>
public enum InferenceFault
{
    None,
    /// <summary><c>kill-before-answer</c>: the hold (with its intent) is durable and the node answered; nothing is sent.</summary>
    KillBeforeAnswer,
    /// <summary><c>kill-after-answer</c>: the answer's bytes are written and flushed to the client; the capture is not queued.</summary>
    KillAfterAnswer,
}

/// <summary>Reads <see cref="InferenceFault"/> from <c>CG_FAULT</c>.</summary>
public static class InferenceFaults
{
    /// <summary>The environment variable.</summary>
    public const string Variable = "CG_FAULT";

    /// <summary>
    /// The fault <c>CG_FAULT</c> asks for; an unknown value throws <see cref="ArgumentException"/>. Values starting with
    /// <c>journal-</c> are the exchange journal's (<c>JournalFaults</c>): no inference fault.
    /// </summary>
    public static InferenceFault FromEnvironment() => Environment.GetEnvironmentVariable(Variable) switch
    {
        null or "" => InferenceFault.None,
        var journal when journal.StartsWith("journal-", StringComparison.Ordinal) => InferenceFault.None,
        var x402 when x402.StartsWith("x402-", StringComparison.Ordinal) => InferenceFault.None, // ComputeGrid.Server.Chain.X402Faults
        "kill-before-answer" => InferenceFault.KillBeforeAnswer,
        "kill-after-answer" => InferenceFault.KillAfterAnswer,
        var other => throw new ArgumentException($"{Variable}='{other}' is not a fault (kill-before-answer, kill-after-answer, journal-write-error, journal-torn-write, journal-fsync-error)."),
    };
}

/// <summary>Settings of paid inference.</summary>
public sealed record InferenceOptions
{
    /// <summary>The most inputs in one request.</summary>
    public int MaxInputs { get; init; } = 256;

    /// <summary>The platform's fee, in basis points of each request's cost.</summary>
    public int PlatformFeeBasisPoints { get; init; } = 1_000;

    /// <summary>How long one node may take before the request fails over.</summary>
    public TimeSpan NodeTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>How long a request waits for a node slot when every eligible node is at capacity, before 503.</summary>
    public TimeSpan QueueTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>How long a hold lives in the ledger if the server dies before settling (it then expires and releases).</summary>
    public uint HoldTimeoutSeconds { get; init; } = 300;

    /// <summary>A test-only fault (see <see cref="InferenceFault"/>); the server sets it from <c>CG_FAULT</c>.</summary>
    public InferenceFault Fault { get; init; }
}

/// <summary>
/// The headline flow of one paid request: tokenize and meter, route, hold the maximum cost in the ledger — durably, with
/// the capture intent for the first-ranked node (<see cref="CaptureIntent"/>), while the node computes — run on the best
/// node (failing over to the next on an error), then:
/// <list type="bullet">
/// <item>ran on the intent's node at the intent's cost (the normal case): answer at once and let the
/// <see cref="CaptureSettler"/> capture in the background (the charge is already durable in the hold; recovery completes
/// it if the process dies first);</item>
/// <item>failed over to another node or price: capture durably before answering (rare, and slower); a refusal there is a
/// dead letter and a 503;</item>
/// <item>no node answered, or the client went away before the answer: void the hold.</item>
/// </list>
/// A request is charged at most once, and an answer that was sent is charged (or, if the ledger refuses the charge, a
/// dead letter records the loss). The price of answering before the capture: a request that was running when the
/// process died is charged at its intent, though its answer may not have reached the client; a retry with the same
/// Idempotency-Key is then served without a second charge.
/// </summary>
public sealed class InferenceGateway(
    ModelRegistry models, NodeRegistry registry, Router router, InferencePayments payments, DeadLetters deadLetters, CaptureSettler settler, InferenceOptions options)
{
    private readonly Dictionary<string, (INodeChannel Channel, ulong Number)> _channels = new(StringComparer.Ordinal);
    private readonly Lock _lock = new();

    public ModelRegistry Models => models;
    public NodeRegistry Registry => registry;
    public InferenceOptions Options => options;

    /// <summary>Refused captures.</summary>
    public DeadLetters DeadLetters => deadLetters;

    /// <summary>Captures of answered requests, in the background.</summary>
    public CaptureSettler Settler => settler;

    /// <summary>Where refused captures are logged (as errors).</summary>
    public ILogger Log { get; set; } = NullLogger.Instance;

    /// <summary>
    /// Registers an admitted node with its channel. Its revenue account is the chart's account of the node's principal
    /// (created when the node was admitted), so it is the same after any restart, whatever the order nodes come in.
    /// </summary>
    public void AddNode(NodeRegistration registration, ulong nodePrincipal, INodeChannel channel)
    {
        lock (_lock) _channels[registration.NodeId] = (channel, nodePrincipal);
        registry.Register(registration);
    }

    /// <summary>Replaces a registered node's channel (tests put a faulty node in front of a real one); returns the old one.</summary>
    public INodeChannel SwapChannel(string nodeId, INodeChannel channel)
    {
        lock (_lock)
        {
            if (!_channels.TryGetValue(nodeId, out var c)) throw new InvalidOperationException($"Node {nodeId} has no channel.");
            _channels[nodeId] = (channel, c.Number);
            return c.Channel;
        }
    }

    /// <summary>The principal id of a node (its revenue account's number), or null.</summary>
    public ulong? NodeNumber(string nodeId)
    {
        lock (_lock) return _channels.TryGetValue(nodeId, out var c) ? c.Number : null;
    }

    /// <summary>
    /// Runs a paid request for <paramref name="customer"/>; inputs are already validated for shape. A 200 result carries
    /// its capture in flight (<see cref="GatewayResult.Capture"/>): write the answer's body, then
    /// <see cref="ConfirmAsync"/> before sending it. When <paramref name="ct"/> is cancelled (the client went away) the
    /// hold is voided at once and <see cref="OperationCanceledException"/> thrown.
    /// </summary>
    public async Task<GatewayResult> EmbedAsync(ulong customer, IEmbeddingModel model, IReadOnlyList<string> inputs, int requestRegion,
        RoutingPreferences preferences, string requestKey, UInt128 fingerprint, CancellationToken ct, UInt128 account = default)
    {
        // Meter: the model's own tokenizer; an over-long input is refused before any money moves.
        int tokens = 0;
        var tokenized = new TokenizedInput[inputs.Count];
        for (int i = 0; i < inputs.Count; i++)
        {
            tokenized[i] = model.Tokenize(inputs[i]);
            int count = tokenized[i].TokenCount;
            if (count > model.MaxTokens)
                return new GatewayResult { Status = 400, ProblemTitle = "Input too long", Problem = $"input[{i}] is {count} tokens; the limit of {model.Id} is {model.MaxTokens} tokens per input." };
            tokens = checked(tokens + count);
        }

        var ranked = new NodeHandle[8];
        RouteDecision decision = router.Choose(new RouteRequest(requestRegion, model.Id, preferences), ranked);
        // Every eligible node busy: wait for a slot (a short queue in front of the fleet) rather than refuse at once.
        long waitStart = Stopwatch.GetTimestamp();
        while (decision.Status == RouteStatus.AllBusy && Stopwatch.GetElapsedTime(waitStart) < options.QueueTimeout)
        {
            await Task.Delay(1, ct);
            decision = router.Choose(new RouteRequest(requestRegion, model.Id, preferences), ranked);
        }
        if (!decision.IsRouted)
            return new GatewayResult { Status = 503, ProblemTitle = "No node available", Problem = RouteDecision.Explain(decision.Status) };
        var candidates = new List<NodeSnapshot>(decision.Count);
        for (int i = 0; i < decision.Count; i++)
            if (registry.NodeIdOf(ranked[i]) is { } id && registry.TryGetNode(id, out NodeSnapshot? s)) candidates.Add(s);
        if (candidates.Count == 0) return new GatewayResult { Status = 503, ProblemTitle = "No node available", Problem = RouteDecision.Explain(RouteStatus.NoHealthyNode) };

        // Hold the most this request can cost on any node it may fail over to, with the capture intent for the node it
        // goes to first. The hold is durable before the answer, but its fdatasync runs while the node computes. It is
        // not cancelled half-way: if the client goes away, its outcome says what to release.
        long maxCost = candidates.Max(c => Cost(tokens, c.PriceMicroUsdPer1kTokens));
        CaptureIntent? intent = NodeNumber(candidates[0].NodeId) is { } first
            ? CaptureIntent.TryCreate(first, options.PlatformFeeBasisPoints, Cost(tokens, candidates[0].PriceMicroUsdPer1kTokens))
            : null;
        long holdStart = Stopwatch.GetTimestamp();
        Task<HoldResult> holdTask = maxCost == 0
            ? Task.FromResult(new HoldResult(HoldOutcome.Held, InferencePayments.HoldId(customer, requestKey), 0))
            : payments.HoldAsync(customer, requestKey, maxCost, options.HoldTimeoutSeconds, fingerprint, intent, CancellationToken.None, account);
        Task<double> holdTime = holdTask.ContinueWith(_ => Stopwatch.GetElapsedTime(holdStart).TotalMilliseconds, TaskScheduler.Default);
        using var abandon = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var failedOver = new List<string>();
        Task<(NodeSnapshot? Node, NodeRunResult? Run, int Attempts)> runTask = RunOnNodesAsync(candidates, model, inputs, tokenized, tokens, requestRegion, requestKey, failedOver, abandon.Token);
        HoldResult hold;
        try { hold = await holdTask; }
        catch
        {
            await AbandonAsync(abandon, runTask);
            throw;
        }
        if (hold.Outcome is not (HoldOutcome.Held or HoldOutcome.AlreadyHeld or HoldOutcome.AlreadyCharged))
        {
            await AbandonAsync(abandon, runTask);
            return hold.Outcome switch
            {
                HoldOutcome.NoAccount => new GatewayResult { Status = 402, ProblemTitle = "Payment required", Problem = "The API key's account has no ledger account; ask an operator to fund it." },
                HoldOutcome.InsufficientBalance => new GatewayResult
                {
                    Status = 402, ProblemTitle = "Payment required", Tokens = tokens, CostMicroUsd = maxCost,
                    Problem = $"This request may cost up to {maxCost} micro-USD ({tokens} tokens); the account's available balance is lower.",
                },
                HoldOutcome.KeyReused => new GatewayResult
                {
                    Status = 422, ProblemTitle = "Idempotency-Key reused", ProblemCode = "idempotency_key_reused",
                    Problem = "This Idempotency-Key was used before for a different request (another model, input, format, region or routing preferences); use a new key.",
                },
                _ => new GatewayResult
                {
                    Status = 409, ProblemTitle = "Idempotency-Key used up", ProblemCode = "idempotency_key_exhausted",
                    Problem = $"This Idempotency-Key failed {InferencePayments.MaxGenerations} times (each attempt released); use a new key.",
                },
            };
        }
        bool holdsMoney = maxCost > 0 && hold.IsHeld;

        (NodeSnapshot? node, NodeRunResult? run, int attempts) result;
        try { result = await runTask; }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // The client went away: release its money now rather than when the hold expires.
            if (holdsMoney) await payments.VoidAsync(hold.HoldId, CancellationToken.None);
            throw;
        }
        (NodeSnapshot? node, NodeRunResult? run, int attempts) = result;
        if (node is null || run is null)
        {
            if (holdsMoney) await payments.VoidAsync(hold.HoldId, CancellationToken.None);
            return new GatewayResult
            {
                Status = 503, ProblemTitle = "No node could serve the request", Attempts = attempts,
                Problem = attempts == 0 ? RouteDecision.Explain(RouteStatus.AllBusy) : $"{attempts} node(s) failed; the hold was released and nothing was charged.",
            };
        }
        double holdMs = await holdTime;
        if (hold.Outcome == HoldOutcome.AlreadyCharged)
        {
            // Answered and charged before (the answer was lost with a crash or a dropped connection): serve it again free.
            return new GatewayResult
            {
                Status = 200, Run = run, Model = model.Id, Tokens = tokens, CostMicroUsd = hold.ChargedBeforeMicroUsd, TransferId = hold.HoldId,
                Node = node.NodeId, NodeRegion = node.Region, Attempts = attempts, Charged = false, FailedOver = failedOver, HoldMs = holdMs,
            };
        }
        if (ct.IsCancellationRequested)
        {
            // Gone before the capture: nothing can be answered, so nothing is charged.
            if (holdsMoney) await payments.VoidAsync(hold.HoldId, CancellationToken.None);
            ct.ThrowIfCancellationRequested();
        }
        long cost = Cost(tokens, node.PriceMicroUsdPer1kTokens);
        long fee = CaptureIntent.Fee(cost, options.PlatformFeeBasisPoints);
        ulong nodeNumber = NodeNumber(node.NodeId) ?? throw new InvalidOperationException($"Node {node.NodeId} has no principal.");
        if (holdsMoney && intent is { } planned && planned.NodePrincipal == nodeNumber && planned.CostMicroUsd == cost)
        {
            // The normal case: the durable hold carries this very charge. Answer now; capture in the background.
            if (options.Fault == InferenceFault.KillBeforeAnswer) KillSelf();
            var due = new DueCapture(hold.HoldId, customer, requestKey, hold.Generation, node.NodeId, planned, tokens, account);
            // kill-after-answer (test-only): the endpoint kills the process once the answer is flushed; nothing is queued.
            if (options.Fault == InferenceFault.KillAfterAnswer || settler.TryEnqueue(due))
            {
                return new GatewayResult
                {
                    Status = 200, Run = run, Model = model.Id, Tokens = tokens, CostMicroUsd = cost, TransferId = hold.HoldId,
                    Node = node.NodeId, NodeRegion = node.Region, Attempts = attempts, Charged = true, FailedOver = failedOver, HoldMs = holdMs,
                };
            }
            // The settler's queue is full (the ledger is slow or down): capture before answering, below.
        }
        PendingCapture? capture = null;
        if (cost > 0)
        {
            capture = new PendingCapture(payments.CaptureAsync(hold.HoldId, cost, fee, nodeNumber, tokens, CancellationToken.None),
                customer, requestKey, hold.HoldId, hold.Generation, node.NodeId, cost, fee, Stopwatch.GetTimestamp());
        }
        else if (holdsMoney) await payments.VoidAsync(hold.HoldId, CancellationToken.None); // free on this node: release the hold
        return new GatewayResult
        {
            Status = 200, Run = run, Model = model.Id, Tokens = tokens, CostMicroUsd = cost, TransferId = hold.HoldId,
            Node = node.NodeId, NodeRegion = node.Region, Attempts = attempts, Charged = capture is not null, FailedOver = failedOver,
            HoldMs = holdMs, Capture = capture,
        };
    }

    /// <summary>
    /// What a request would cost if it ran now, before any work or money moves: its tokens (the model's tokenizer) at the
    /// price of the node the router ranks first. x402 asks for exactly this amount. Status 200, 400 (an input too long)
    /// or 503 (no node).
    /// </summary>
    public GatewayQuote Quote(IEmbeddingModel model, IReadOnlyList<string> inputs, int requestRegion, RoutingPreferences preferences)
    {
        int tokens = 0;
        for (int i = 0; i < inputs.Count; i++)
        {
            int count = model.Tokenize(inputs[i]).TokenCount;
            if (count > model.MaxTokens)
                return new GatewayQuote(400, tokens, null, 0, 0, $"input[{i}] is {count} tokens; the limit of {model.Id} is {model.MaxTokens} tokens per input.");
            tokens = checked(tokens + count);
        }
        Span<NodeHandle> ranked = stackalloc NodeHandle[8];
        RouteDecision decision = router.Choose(new RouteRequest(requestRegion, model.Id, preferences), ranked);
        // A busy fleet still has a price: quote the first-ranked node even when every slot is taken (the paid retry queues).
        if (decision.Status != RouteStatus.AllBusy && !decision.IsRouted) return new GatewayQuote(503, tokens, null, 0, 0, RouteDecision.Explain(decision.Status));
        if (decision.Count == 0 || registry.NodeIdOf(ranked[0]) is not { } id || !registry.TryGetNode(id, out NodeSnapshot? node))
            return new GatewayQuote(503, tokens, null, 0, 0, RouteDecision.Explain(RouteStatus.NoHealthyNode));
        return new GatewayQuote(200, tokens, node.NodeId, node.PriceMicroUsdPer1kTokens, Cost(tokens, node.PriceMicroUsdPer1kTokens), null);
    }

    /// <summary>
    /// Waits for a 200 result's capture to be durable. Captured: the answer may go out. Refused by the ledger: the hold
    /// is released, a dead letter is written (durably) and logged, and the result becomes a 503 — never a free answer.
    /// </summary>
    public async Task<GatewayResult> ConfirmAsync(GatewayResult r)
    {
        if (r.Capture is not { } c) return r;
        long waitStart = Stopwatch.GetTimestamp();
        var (outcome, results) = await c.Task;
        double waitMs = Stopwatch.GetElapsedTime(waitStart).TotalMilliseconds;
        switch (outcome)
        {
            case CaptureOutcome.Captured:
                return r with { Capture = null, CaptureWaitMs = waitMs };
            case CaptureOutcome.AlreadyCaptured:
                return r with { Capture = null, CaptureWaitMs = waitMs, Charged = false };
        }
        CreateTransferResult voided = await payments.TryVoidAsync(c.HoldId, CancellationToken.None);
        string reason = $"capture refused: {DeadLetters.Describe(results)}; releasing the hold: {voided}";
        DeadLetter letter = deadLetters.Record(c.Customer, c.RequestKey, c.HoldId, c.Generation, c.Node, c.CostMicroUsd, c.FeeMicroUsd, reason);
        Log.LogError("Dead letter {Id}: the ledger refused the capture of hold {Hold} (customer {Customer}, node {Node}, {Cost} micro-USD): {Reason}",
            letter.Id, c.HoldId, c.Customer, c.Node, c.CostMicroUsd, reason);
        return new GatewayResult
        {
            Status = 503, ProblemTitle = "The charge could not be captured", ProblemCode = "capture_refused", Attempts = r.Attempts,
            Problem = $"The request ran on {c.Node}, but the ledger refused its charge ({reason}); nothing was charged and the answer is withheld (dead letter {letter.Id}). Retry the request.",
        };
    }

    private static async Task AbandonAsync(CancellationTokenSource abandon, Task run)
    {
        await abandon.CancelAsync();
        try { await run; } catch (OperationCanceledException) { }
    }

    /// <summary>The test-only fault: SIGKILL, as a crash would (no flush, no snapshot, no answer).</summary>
    internal static void KillSelf()
    {
        Console.Error.WriteLine($"{InferenceFaults.Variable}: killing the process");
        Process.GetCurrentProcess().Kill();
        Thread.Sleep(Timeout.Infinite);
    }

    // Tries the ranked nodes in order until one answers; a failing node leaves the rotation until its next heartbeat.
    private async Task<(NodeSnapshot?, NodeRunResult?, int)> RunOnNodesAsync(List<NodeSnapshot> candidates, IEmbeddingModel model, IReadOnlyList<string> inputs,
        TokenizedInput[] tokenized, int tokens, int requestRegion, string requestKey, List<string> failedOver, CancellationToken ct)
    {
        int attempts = 0;
        var tried = new HashSet<string>(StringComparer.Ordinal);
        long waitStart = Stopwatch.GetTimestamp();
        for (int i = 0; i < candidates.Count; i++)
        {
            ct.ThrowIfCancellationRequested();
            NodeSnapshot node = candidates[i];
            if (tried.Contains(node.NodeId)) continue;
            if (!registry.TryAcquire(node.Handle))
            {
                // The last candidate is busy too and none was tried: wait for a slot and go round again.
                if (i == candidates.Count - 1 && attempts == 0 && Stopwatch.GetElapsedTime(waitStart) < options.QueueTimeout)
                {
                    await Task.Delay(1, ct);
                    i = -1;
                }
                continue;
            }
            tried.Add(node.NodeId);
            attempts++;
            try
            {
                (INodeChannel channel, ulong _) = Channel(node.NodeId);
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
                timeout.CancelAfter(options.NodeTimeout);
                NodeRunResult run = await channel.RunAsync(new NodeWork(requestKey, model.Id, inputs, requestRegion, registry.Matrix.Regions[requestRegion]) { Tokenized = tokenized }, timeout.Token);
                if (run.Tokens != tokens || run.Vectors.Length != inputs.Count * model.Dimensions)
                    throw new InvalidDataException($"Node {node.NodeId} answered {run.Tokens} tokens and {run.Vectors.Length} values for {tokens} tokens and {inputs.Count} inputs.");
                // A vector with NaN or ±Infinity is no answer (JSON cannot carry it, and it is wrong): a node failure.
                int bad = IndexOfNonFinite(run.Vectors);
                if (bad >= 0) throw new InvalidDataException($"Node {node.NodeId} answered a non-finite value ({run.Vectors[bad]}) at input {bad / model.Dimensions}.");
                return (node, run, attempts);
            }
            catch (Exception e) when (!ct.IsCancellationRequested)
            {
                registry.MarkFailed(node.Handle);
                lock (failedOver) failedOver.Add($"{node.NodeId}: {e.Message}");
            }
            finally { registry.Release(node.Handle); }
        }
        return (null, null, attempts);
    }

    /// <summary>The index of the first NaN or ±Infinity in <paramref name="values"/>, or −1.</summary>
    public static int IndexOfNonFinite(ReadOnlySpan<float> values)
    {
        for (int i = 0; i < values.Length; i++)
            if (!float.IsFinite(values[i])) return i;
        return -1;
    }

    /// <summary>The cost of <paramref name="tokens"/> at a price per 1,000 tokens, rounded up to the micro-dollar.</summary>
    public static long Cost(int tokens, long pricePer1k) => checked((tokens * pricePer1k + 999) / 1000);

    private (INodeChannel, ulong) Channel(string nodeId)
    {
        lock (_lock) return _channels.TryGetValue(nodeId, out var c) ? c : throw new InvalidOperationException($"Node {nodeId} has no channel.");
    }
}
