using System.Diagnostics;
using ComputeGrid.Inference.Model;
using ComputeGrid.Inference.Routing;

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

/// <summary>The outcome of a paid request.</summary>
public sealed record GatewayResult
{
    public required int Status { get; init; }
    public string? Problem { get; init; }
    public string? ProblemTitle { get; init; }
    public NodeRunResult? Run { get; init; }
    public string? Model { get; init; }
    public int Tokens { get; init; }
    public long CostMicroUsd { get; init; }
    public UInt128 TransferId { get; init; }
    public string? Node { get; init; }
    public string? NodeRegion { get; init; }
    public int Attempts { get; init; }
    public bool Charged { get; init; }

    /// <summary>How long the ledger took to make the hold durable (it runs while the node computes).</summary>
    public double HoldMs { get; init; }

    /// <summary>The nodes that failed before the one that answered, with why (the failover trail).</summary>
    public IReadOnlyList<string> FailedOver { get; init; } = [];
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
}

/// <summary>
/// The headline flow of one paid request: tokenize and meter, route, hold the maximum cost in the ledger, run on the
/// best node (failing over to the next on an error), charge the metered cost split between the node and the platform,
/// release the rest — or void the hold when no node could serve it. A request is charged at most once.
/// </summary>
public sealed class InferenceGateway(
    ModelRegistry models, NodeRegistry registry, Router router, InferencePayments payments, Settler settler, InferenceOptions options)
{
    /// <summary>Where charges are captured after the answers.</summary>
    public Settler Settler => settler;

    private readonly Dictionary<string, (INodeChannel Channel, ulong Number)> _channels = new(StringComparer.Ordinal);
    private readonly Lock _lock = new();

    public ModelRegistry Models => models;
    public NodeRegistry Registry => registry;
    public InferenceOptions Options => options;

    /// <summary>
    /// Registers an admitted node with its channel. Its revenue account is the chart's account of the node's principal
    /// (created when the node was admitted), so it is the same after any restart, whatever the order nodes come in.
    /// </summary>
    public void AddNode(NodeRegistration registration, ulong nodePrincipal, INodeChannel channel)
    {
        lock (_lock) _channels[registration.NodeId] = (channel, nodePrincipal);
        registry.Register(registration);
    }

    /// <summary>The principal id of a node (its revenue account's number), or null.</summary>
    public ulong? NodeNumber(string nodeId)
    {
        lock (_lock) return _channels.TryGetValue(nodeId, out var c) ? c.Number : null;
    }

    /// <summary>Runs a paid request for <paramref name="customer"/>; inputs are already validated for shape.</summary>
    public async Task<GatewayResult> EmbedAsync(ulong customer, IEmbeddingModel model, IReadOnlyList<string> inputs, int requestRegion,
        RoutingPreferences preferences, string requestKey, CancellationToken ct)
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
        long waitStart = System.Diagnostics.Stopwatch.GetTimestamp();
        while (decision.Status == RouteStatus.AllBusy && System.Diagnostics.Stopwatch.GetElapsedTime(waitStart) < options.QueueTimeout)
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

        // Hold the most this request can cost on any node it may fail over to. The hold (a durable ledger write) runs
        // while the node computes; the answer waits for both, and goes out only if the money is held.
        long maxCost = candidates.Max(c => Cost(tokens, c.PriceMicroUsdPer1kTokens));
        UInt128 holdId = InferencePayments.HoldId(customer, requestKey);
        long holdStart = System.Diagnostics.Stopwatch.GetTimestamp();
        Task<HoldOutcome> holdTask = maxCost == 0 ? Task.FromResult(HoldOutcome.Held) : payments.HoldAsync(customer, holdId, maxCost, options.HoldTimeoutSeconds, ct);
        Task<double> holdTime = holdTask.ContinueWith(_ => System.Diagnostics.Stopwatch.GetElapsedTime(holdStart).TotalMilliseconds, TaskScheduler.Default);
        using var abandon = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var failedOver = new List<string>();
        Task<(NodeSnapshot? Node, NodeRunResult? Run, int Attempts)> runTask = RunOnNodesAsync(candidates, model, inputs, tokenized, tokens, requestRegion, requestKey, failedOver, abandon.Token);
        HoldOutcome hold = await holdTask;
        if (hold is HoldOutcome.InsufficientBalance or HoldOutcome.NoAccount)
        {
            await abandon.CancelAsync();
            try { await runTask; } catch (OperationCanceledException) { }
            return hold == HoldOutcome.NoAccount
                ? new GatewayResult { Status = 402, ProblemTitle = "Payment required", Problem = "The API key's account has no ledger account; ask an operator to fund it." }
                : new GatewayResult { Status = 402, ProblemTitle = "Payment required", Problem = $"This request may cost up to {maxCost} micro-USD ({tokens} tokens); the account's available balance is lower.", Tokens = tokens, CostMicroUsd = maxCost };
        }

        (NodeSnapshot? node, NodeRunResult? run, int attempts) = await runTask;
        if (node is null || run is null)
        {
            if (maxCost > 0) await payments.VoidAsync(holdId, CancellationToken.None);
            return new GatewayResult
            {
                Status = 503, ProblemTitle = "No node could serve the request", Attempts = attempts,
                Problem = attempts == 0 ? RouteDecision.Explain(RouteStatus.AllBusy) : $"{attempts} node(s) failed; the hold was released and nothing was charged.",
            };
        }
        long cost = Cost(tokens, node.PriceMicroUsdPer1kTokens);
        long fee = checked(cost * options.PlatformFeeBasisPoints / 10_000);
        // The charge is captured right after the answer, batched with others (see Settler).
        if (cost > 0) settler.Enqueue(new Settlement(holdId, cost, fee, NodeNumber(node.NodeId)!.Value));
        return new GatewayResult
        {
            Status = 200, Run = run, Model = model.Id, Tokens = tokens, CostMicroUsd = cost, TransferId = holdId,
            Node = node.NodeId, NodeRegion = node.Region, Attempts = attempts, Charged = hold == HoldOutcome.Held, FailedOver = failedOver,
            HoldMs = await holdTime,
        };
    }

    // Tries the ranked nodes in order until one answers; a failing node leaves the rotation until its next heartbeat.
    private async Task<(NodeSnapshot?, NodeRunResult?, int)> RunOnNodesAsync(List<NodeSnapshot> candidates, IEmbeddingModel model, IReadOnlyList<string> inputs,
        TokenizedInput[] tokenized, int tokens, int requestRegion, string requestKey, List<string> failedOver, CancellationToken ct)
    {
        int attempts = 0;
        var tried = new HashSet<string>(StringComparer.Ordinal);
        long waitStart = System.Diagnostics.Stopwatch.GetTimestamp();
        for (int i = 0; i < candidates.Count; i++)
        {
            ct.ThrowIfCancellationRequested();
            NodeSnapshot node = candidates[i];
            if (tried.Contains(node.NodeId)) continue;
            if (!registry.TryAcquire(node.Handle))
            {
                // The last candidate is busy too and none was tried: wait for a slot and go round again.
                if (i == candidates.Count - 1 && attempts == 0 && System.Diagnostics.Stopwatch.GetElapsedTime(waitStart) < options.QueueTimeout)
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

    /// <summary>The cost of <paramref name="tokens"/> at a price per 1,000 tokens, rounded up to the micro-dollar.</summary>
    public static long Cost(int tokens, long pricePer1k) => checked((tokens * pricePer1k + 999) / 1000);

    private (INodeChannel, ulong) Channel(string nodeId)
    {
        lock (_lock) return _channels.TryGetValue(nodeId, out var c) ? c : throw new InvalidOperationException($"Node {nodeId} has no channel.");
    }
}
