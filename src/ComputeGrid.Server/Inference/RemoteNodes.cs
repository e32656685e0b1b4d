using System.Collections.Concurrent;
using System.Security.Claims;
using System.Text.Json;
using System.Threading.Channels;
using ComputeGrid.Core;
using ComputeGrid.Exchange.Instruments;
using ComputeGrid.Exchange.Trading;
using ComputeGrid.Inference.Nodes;
using ComputeGrid.Inference.Routing;
using ComputeGrid.Server.Trust;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace ComputeGrid.Server.Inference;

/// <summary>
/// A node agent connected over HTTP/2: work goes down its long-lived work stream, results come back as requests on the
/// same connection. When the stream breaks (the node died or lost its network), every request in flight on it fails at
/// once, so the gateway fails over to the next node.
/// </summary>
public sealed class RemoteNodeChannel(string nodeId, string region, byte[] publicKey) : INodeChannel
{
    private readonly Channel<NodeWorkItem> _work = Channel.CreateUnbounded<NodeWorkItem>(new UnboundedChannelOptions { SingleReader = false });
    private readonly ConcurrentDictionary<string, TaskCompletionSource<NodeWorkResult>> _pending = new(StringComparer.Ordinal);
    private int _streams;
    private long _sequence;

    public string NodeId => nodeId;
    public string Region => region;
    public byte[] PublicKey => publicKey;
    public bool Connected => Volatile.Read(ref _streams) > 0;

    /// <summary>The last signed report's sequence number (a replayed report is refused).</summary>
    public long LastReportSequence { get; set; } = long.MinValue;

    /// <summary>Called when the node's last work stream closes (the gateway takes it out of the rotation at once).</summary>
    public Action? Disconnected { get; set; }

    /// <summary>The latest verified telemetry and its signed form (anyone holding the public key can check it).</summary>
    public (NodeTelemetry Telemetry, SignedTelemetry Signed)? LastTelemetry { get; set; }

    public async Task<NodeRunResult> RunAsync(NodeWork work, CancellationToken cancellationToken)
    {
        if (!Connected) throw new IOException($"Node {nodeId} has no open work stream.");
        string id = $"{Interlocked.Increment(ref _sequence)}";
        var tcs = new TaskCompletionSource<NodeWorkResult>(TaskCreationOptions.RunContinuationsAsynchronously);
        _pending[id] = tcs;
        try
        {
            await using var registration = cancellationToken.Register(() => tcs.TrySetCanceled(cancellationToken));
            _work.Writer.TryWrite(new NodeWorkItem(id, work.Model, [.. work.Inputs], work.RequestRegionName));
            NodeWorkResult r = await tcs.Task;
            if (r.Error is not null) throw new IOException($"Node {nodeId}: {r.Error}");
            byte[] bytes = Convert.FromBase64String(r.VectorsBase64 ?? "");
            var vectors = new float[bytes.Length / sizeof(float)];
            Buffer.BlockCopy(bytes, 0, vectors, 0, vectors.Length * sizeof(float));
            return new NodeRunResult(vectors, r.Dimensions, r.Tokens, r.QueueMs, r.ModelMs, r.NetworkMs);
        }
        finally { _pending.TryRemove(id, out _); }
    }

    /// <summary>Writes work to one open stream until it closes; when the last stream closes, in-flight work fails.</summary>
    public async Task StreamAsync(HttpResponse response, CancellationToken ct)
    {
        Interlocked.Increment(ref _streams);
        try
        {
            response.ContentType = "application/x-ndjson";
            await response.Body.FlushAsync(ct);
            using var keepAlive = new PeriodicTimer(TimeSpan.FromSeconds(5));
            Task<bool> tick = keepAlive.WaitForNextTickAsync(ct).AsTask();
            while (!ct.IsCancellationRequested)
            {
                Task<bool> next = _work.Reader.WaitToReadAsync(ct).AsTask();
                Task done = await Task.WhenAny(next, tick);
                if (done == tick)
                {
                    await response.Body.WriteAsync("\n"u8.ToArray(), ct);
                    await response.Body.FlushAsync(ct);
                    tick = keepAlive.WaitForNextTickAsync(ct).AsTask();
                    continue;
                }
                if (!await next) break;
                while (_work.Reader.TryRead(out NodeWorkItem? item))
                {
                    try
                    {
                        await response.Body.WriteAsync(JsonSerializer.SerializeToUtf8Bytes(item), ct);
                        await response.Body.WriteAsync("\n"u8.ToArray(), ct);
                    }
                    catch
                    {
                        Fail(item.Id, "the work stream broke while sending the work");
                        throw;
                    }
                }
                await response.Body.FlushAsync(ct);
            }
        }
        catch (OperationCanceledException) { }
        catch (IOException) { }
        finally
        {
            if (Interlocked.Decrement(ref _streams) == 0)
            {
                Disconnected?.Invoke();
                foreach (string id in _pending.Keys) Fail(id, "the node's connection closed");
            }
        }
    }

    /// <summary>Completes a work item with the node's answer.</summary>
    public bool Complete(string workId, NodeWorkResult result) => _pending.TryGetValue(workId, out var tcs) && tcs.TrySetResult(result);

    private void Fail(string workId, string why)
    {
        if (_pending.TryGetValue(workId, out var tcs)) tcs.TrySetException(new IOException($"Node {nodeId}: {why}."));
    }
}

/// <summary>What a signed report did: the lease a delivery paid, or the listed capacities an outage took down.</summary>
public sealed record NodeReportAnswer(string Kind, long Sequence, ComputeGrid.Server.Exchange.LeaseView? Lease, IReadOnlyList<long> NodesDown);

/// <summary>The node agents known to a server (one channel per admitted node that registered).</summary>
public sealed class RemoteNodes
{
    private readonly ConcurrentDictionary<string, RemoteNodeChannel> _nodes = new(StringComparer.Ordinal);

    public RemoteNodeChannel? Find(string id) => _nodes.TryGetValue(id, out var n) ? n : null;

    public IEnumerable<RemoteNodeChannel> All => _nodes.Values;

    /// <summary>The node's channel, made on its first registration.</summary>
    public RemoteNodeChannel GetOrAdd(string id, Func<RemoteNodeChannel> make) => _nodes.GetOrAdd(id, _ => make());

    /// <summary>Fails a node's work in flight and takes it out of the rotation (its admission was revoked).</summary>
    public void Disconnect(string id)
    {
        if (_nodes.TryRemove(id, out RemoteNodeChannel? n)) n.Disconnected?.Invoke();
    }
}

/// <summary>
/// The node protocol under <c>/node/v1</c>, served only on the node port: registration by challenge and response
/// (anonymous: the signature is the credential), then, on the session's token, the work stream, results, signed
/// telemetry (which is also the node's heartbeat on the exchange) and signed capacity reports.
/// </summary>
public static class NodeProtocolEndpoints
{
    public static IEndpointRouteBuilder MapNodeProtocol(this IEndpointRouteBuilder app)
    {
        long batchBytes = app.ServiceProvider.GetRequiredService<ServerLimits>().BatchBodyBytesMax;
        var g = app.MapGroup("/node/v1").WithTags("node protocol").WithMetadata(new NodePortOnlyAttribute());
        g.MapPost("/challenge", Challenge).AllowAnonymous().WithSummary("A nonce for an admitted node to sign.");
        g.MapPost("/sessions", RegisterAsync).AllowAnonymous().WithSummary("Registers a node with its signed challenge; answers a session token.");
        var session = g.MapGroup("").RequireAuthorization(Policies.Node);
        session.MapPost("/heartbeat", HeartbeatAsync).WithSummary("Signed telemetry; also the node's heartbeat for the capacity it sells.");
        session.MapGet("/work", WorkAsync).Produces(StatusCodes.Status200OK, contentType: "application/x-ndjson").WithSummary("The node's work stream (NDJSON).");
        session.MapPost("/results/{work}", Result).WithMetadata(new BodyLimitAttribute(batchBytes)).WithSummary("A work item's answer.");
        session.MapPost("/reports", ReportAsync).WithSummary("A signed capacity report (delivery of a lease the node serves).");
        return app;
    }

    private static Results<Ok<NodeChallenge>, ProblemHttpResult> Challenge(NodeChallengeRequest input, NodeSessions sessions)
    {
        var challenge = sessions.Challenge(input.NodeId);
        return challenge is { } c ? TypedResults.Ok(new NodeChallenge(input.NodeId, c.Nonce, c.Expires))
            : Problems.NotFound($"No admitted node '{input.NodeId}': an operator admits nodes (POST /api/providers/{{id}}/nodes).");
    }

    private static async Task<Results<Ok<NodeSessionGrant>, ProblemHttpResult>> RegisterAsync(NodeRegisterRequest r, InferenceHost host, NodeSessions sessions,
        RemoteNodes nodes, ComputeGrid.Exchange.Pipeline.ExchangeHost exchange, TimeProvider time)
    {
        if (!host.Latency.TryGetRegion(r.Region, out int regionIndex)) return Problems.BadRequest($"'region' must be one of: {string.Join(", ", host.Latency.Regions)}.");
        if (r.Models is not { Length: > 0 } || r.Models.Any(m => !host.Gateway.Models.TryGet(m, out _)))
            return Problems.BadRequest($"'models' must name served models: {string.Join(", ", host.Gateway.Models.Models.Select(m => m.Id))}.");
        if (r.PriceMicroUsdPer1kTokens < 0 || r.PriceMicroUsdPer1kTokens > NodeRegistry.MaxPriceMicroUsdPer1kTokens) return Problems.BadRequest("'price_micro_usd_per_1k_tokens' is out of range.");
        if (r.Capacity is < 1 or > 10_000) return Problems.BadRequest("'capacity' must be 1 to 10000.");
        byte[] signature;
        try { signature = Convert.FromBase64String(r.SignatureBase64); }
        catch (FormatException) { return Problems.BadRequest("'signature' must be base64."); }
        byte[] message = NodeSigning.SessionMessage(r.NodeId, r.Nonce, r.Region, r.Models, r.PriceMicroUsdPer1kTokens, r.Capacity);
        switch (sessions.Register(r.NodeId, r.Nonce, message, signature, r.PriceMicroUsdPer1kTokens, out NodeSession? session, out string? token))
        {
            case NodeRegisterOutcome.NotAdmitted: return Problems.NotFound($"No admitted node '{r.NodeId}'.");
            case NodeRegisterOutcome.BadNonce: return Problems.Unauthorized("The nonce was not issued to this node, was used, or expired: ask for a new challenge.");
            case NodeRegisterOutcome.BadSignature: return Problems.Unauthorized("The signature does not verify with the node's admitted key.");
            case NodeRegisterOutcome.AboveCeiling: return Problems.Forbidden($"The price is above the node's admitted ceiling.");
        }
        NodeAdmission admission = session!.Admission;
        string region = host.Latency.Regions[regionIndex];
        RemoteNodeChannel channel = nodes.GetOrAdd(r.NodeId, () => new RemoteNodeChannel(r.NodeId, region, admission.PublicKey));
        host.Gateway.AddNode(new NodeRegistration(r.NodeId, region, r.Models, r.PriceMicroUsdPer1kTokens, r.Capacity, admission.PublicKey), admission.Principal, channel);
        // Out of the rotation until its work stream is open and its first signed heartbeat arrives.
        string nodeId = r.NodeId;
        channel.Disconnected = () => host.Gateway.Registry.MarkFailed(nodeId);
        if (!channel.Connected) host.Gateway.Registry.MarkFailed(nodeId);
        // The gateway meters with the model's tokenizer: load it now, not on the first paid request.
        foreach (string m in r.Models)
            if (host.Gateway.Models.TryGet(m, out var served)) _ = Task.Run(() => served.Tokenize("warm up"));
        return TypedResults.Ok(new NodeSessionGrant(r.NodeId, token!, 1000, InferencePayments.NodeRevenueAccount(admission.Principal).ToString()));
    }

    private static async Task<Results<NoContent, ProblemHttpResult>> HeartbeatAsync(SignedTelemetry signed, ClaimsPrincipal user, InferenceHost host, RemoteNodes nodes,
        NodeSessions sessions, ComputeGrid.Exchange.Pipeline.ExchangeHost exchange)
    {
        string id = user.RequireCaller().Principal.Name;
        if (nodes.Find(id) is not { } node) return Problems.NotFound($"Node {id} has not registered.");
        if (NodeSigning.Verify(signed, node.PublicKey) is not { } telemetry || telemetry.NodeId != id)
            return Problems.Unauthorized("The telemetry's Ed25519 signature does not verify with the node's admitted key.");
        if (node.LastTelemetry is { } last && telemetry.Sequence <= last.Telemetry.Sequence)
            return Problems.Conflict($"Telemetry sequence {telemetry.Sequence} is not after {last.Telemetry.Sequence} (a replay?).");
        node.LastTelemetry = (telemetry, signed);
        if (node.Connected)
            host.Gateway.Registry.Heartbeat(id, new NodeHeartbeat(Math.Clamp(telemetry.Queue, 0, NodeRegistry.MaxQueueLength),
                Math.Clamp(telemetry.Inflight, 0, NodeRegistry.MaxQueueLength), Math.Clamp(telemetry.EwmaModelMs, 0, NodeRegistry.MaxEwmaModelMs)));
        // One node identity: the signed heartbeat also keeps the capacity this node sells on the exchange alive.
        ulong provider = sessions.Current(id)?.Admission.Provider ?? 0;
        var listed = await exchange.ReadAsync(v => v.Nodes.Where(n => n.Name == id && n.Provider == (long)provider).Select(n => n.Id).ToArray(), CancellationToken.None);
        foreach (long n in listed) await exchange.HeartbeatAsync(n, CancellationToken.None);
        return TypedResults.NoContent();
    }

    private static async Task<EmptyHttpResult> WorkAsync(HttpContext http, ClaimsPrincipal user, RemoteNodes nodes, NodeSessions sessions, IHostApplicationLifetime lifetime)
    {
        string id = user.RequireCaller().Principal.Name;
        if (nodes.Find(id) is not { } node || sessions.Current(id) is not { } session)
        {
            await ApiErrors.WriteAsync(http, StatusCodes.Status404NotFound, "Not found", $"Node {id} has not registered.");
            return TypedResults.Empty;
        }
        // The stream ends when the node goes away, the server stops, or the session ends (a newer registration, a revocation).
        using var all = CancellationTokenSource.CreateLinkedTokenSource(http.RequestAborted, lifetime.ApplicationStopping, session.Ended);
        await node.StreamAsync(http.Response, all.Token);
        return TypedResults.Empty;
    }

    private static Results<NoContent, ProblemHttpResult> Result(string work, NodeWorkResult result, ClaimsPrincipal user, RemoteNodes nodes)
    {
        string id = user.RequireCaller().Principal.Name;
        if (nodes.Find(id) is not { } node) return Problems.NotFound($"Node {id} has not registered.");
        return node.Complete(work, result) ? TypedResults.NoContent() : Problems.NotFound($"No work '{work}' is waiting for node {id} (it timed out or was cancelled).");
    }

    private static async Task<Results<Ok<NodeReportAnswer>, ProblemHttpResult>> ReportAsync(SignedReport signed, ClaimsPrincipal user, RemoteNodes nodes,
        NodeSessions sessions, ComputeGrid.Exchange.Pipeline.ExchangeHost exchange, InstrumentRegistry reg)
    {
        string id = user.RequireCaller().Principal.Name;
        if (sessions.Current(id) is not { } session) return Problems.NotFound($"Node {id} has not registered.");
        if (NodeSigning.Verify(signed, session.Admission.PublicKey) is not { } report || report.NodeId != id)
            return Problems.Unauthorized("The report's Ed25519 signature does not verify with the node's admitted key.");
        RemoteNodeChannel? channel = nodes.Find(id);
        if (channel is not null)
        {
            lock (channel)
            {
                if (report.Sequence <= channel.LastReportSequence) return Problems.Conflict($"Report sequence {report.Sequence} is not after {channel.LastReportSequence} (a replay?).");
                channel.LastReportSequence = report.Sequence;
            }
        }
        long provider = (long)session.Admission.Provider;
        switch (report.Kind)
        {
            case "delivery":
            {
                if (report.From >= report.To) return Problems.BadRequest("A delivery's from must be before its to.");
                // The node reports only leases it serves: one of the lease's nodes is this admitted node's listed capacity.
                var served = await exchange.ReadAsync(v => v.Lease(report.Lease) is { } l && l.Nodes.Any(n => v.Node(n.Node) is { } x && x.Name == id && x.Provider == provider), CancellationToken.None);
                if (!served) return Problems.NotFound($"Node {id} serves no lease {report.Lease}.");
                var e = await ComputeGrid.Server.Exchange.ExchangeCalls.DeliverAsync(exchange, provider, report.Lease, ApiTime.Of(report.From).UnixNanoseconds, ApiTime.Of(report.To).UnixNanoseconds);
                if (e != ExchangeError.None) return ComputeGrid.Server.Exchange.ExchangeProblems.From(e, new ComputeGrid.Server.Exchange.ProblemContext(Lease: report.Lease, Provider: provider));
                return TypedResults.Ok(new NodeReportAnswer(report.Kind, report.Sequence,
                    await exchange.ReadAsync(v => v.Lease(report.Lease) is { } l ? ComputeGrid.Server.Exchange.LeaseView.From(l, reg.TryGet(l.Instrument, out var i) ? i.Symbol : null) : null, CancellationToken.None), []));
            }
            case "outage":
            {
                // The node says it cannot deliver: each of its listed capacities is down, its active leases fail (refund and penalty).
                long[] listed = await exchange.ReadAsync(v => v.Nodes.Where(n => n.Name == id && n.Provider == provider).Select(n => n.Id).ToArray(), CancellationToken.None);
                foreach (long n in listed)
                {
                    var e = await ComputeGrid.Server.Exchange.ExchangeCalls.OutageAsync(exchange, provider, n);
                    if (e != ExchangeError.None) return ComputeGrid.Server.Exchange.ExchangeProblems.From(e, new ComputeGrid.Server.Exchange.ProblemContext(Node: n, Provider: provider));
                }
                return TypedResults.Ok(new NodeReportAnswer(report.Kind, report.Sequence, null, listed));
            }
            default:
                return Problems.BadRequest("A report's kind must be \"delivery\" or \"outage\".");
        }
    }
}
