using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Threading.Channels;
using ComputeGrid.Inference.Nodes;
using ComputeGrid.Inference.Routing;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace ComputeGrid.Server.Inference;

/// <summary>
/// A node agent connected over HTTP/2: work goes down its long-lived work stream, results come back as requests on the
/// same connection. When the stream breaks (the node died or lost its network), every request in flight on it fails at
/// once, so the gateway fails over to the next node.
/// </summary>
public sealed class RemoteNodeChannel(string nodeId, string region, byte[] publicKey, string token) : INodeChannel
{
    private readonly Channel<NodeWorkItem> _work = Channel.CreateUnbounded<NodeWorkItem>(new UnboundedChannelOptions { SingleReader = false });
    private readonly ConcurrentDictionary<string, TaskCompletionSource<NodeWorkResult>> _pending = new(StringComparer.Ordinal);
    private int _streams;
    private long _sequence;

    public string NodeId => nodeId;
    public string Region => region;
    public byte[] PublicKey => publicKey;
    public string Token => token;
    public bool Connected => Volatile.Read(ref _streams) > 0;

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

/// <summary>The node agents known to a server.</summary>
public sealed class RemoteNodes
{
    private readonly ConcurrentDictionary<string, RemoteNodeChannel> _nodes = new(StringComparer.Ordinal);

    public RemoteNodeChannel? Find(string id) => _nodes.TryGetValue(id, out var n) ? n : null;

    public IEnumerable<RemoteNodeChannel> All => _nodes.Values;

    public void Set(RemoteNodeChannel node) => _nodes[node.NodeId] = node;
}

/// <summary><c>/api/inference/nodes/…</c>: where node agents register, heartbeat, take work and answer.</summary>
public static class NodeEndpoints
{
    public static IEndpointRouteBuilder MapInferenceNodes(this IEndpointRouteBuilder app)
    {
        app.MapPost("/api/inference/nodes/register", async (HttpContext http, InferenceHost host, RemoteNodes nodes) =>
        {
            NodeRegisterRequest? r;
            try { r = await JsonSerializer.DeserializeAsync<NodeRegisterRequest>(http.Request.Body, cancellationToken: http.RequestAborted); }
            catch (JsonException e) { return Problems.BadRequest("The registration is not valid JSON: " + e.Message.Split(". ")[0] + "."); }
            if (r is null || string.IsNullOrWhiteSpace(r.NodeId) || r.NodeId.Length > 64 || !r.NodeId.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_'))
                return Problems.BadRequest("'node_id' must be 1–64 letters, digits, '-' or '_'.");
            if (!host.Latency.TryGetRegion(r.Region, out _)) return Problems.BadRequest($"'region' must be one of: {string.Join(", ", host.Latency.Regions)}.");
            if (r.Models is not { Length: > 0 } || r.Models.Any(m => !host.Gateway.Models.TryGet(m, out _)))
                return Problems.BadRequest($"'models' must name served models: {string.Join(", ", host.Gateway.Models.Models.Select(m => m.Id))}.");
            if (r.PriceMicroUsdPer1kTokens < 0 || r.PriceMicroUsdPer1kTokens > NodeRegistry.MaxPriceMicroUsdPer1kTokens) return Problems.BadRequest("'price_micro_usd_per_1k_tokens' is out of range.");
            if (r.Capacity is < 1 or > 10_000) return Problems.BadRequest("'capacity' must be 1 to 10000.");
            byte[] key;
            try { key = Convert.FromBase64String(r.PublicKeyBase64 ?? ""); }
            catch (FormatException) { return Problems.BadRequest("'public_key' must be a base64 Ed25519 public key."); }
            if (key.Length != 32) return Problems.BadRequest("'public_key' must be 32 bytes (Ed25519).");
            if (nodes.Find(r.NodeId) is { } existing && !existing.PublicKey.AsSpan().SequenceEqual(key))
                return Problems.Conflict($"Node '{r.NodeId}' is registered with another key.");

            string token = nodes.Find(r.NodeId)?.Token ?? Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(24));
            var channel = nodes.Find(r.NodeId) ?? new RemoteNodeChannel(r.NodeId, r.Region, key, token);
            nodes.Set(channel);
            ulong number = await host.Gateway.AddNodeAsync(new NodeRegistration(r.NodeId, r.Region, r.Models, r.PriceMicroUsdPer1kTokens, r.Capacity, key), channel, http.RequestAborted);
            // Out of the rotation until its work stream is open and its first signed heartbeat arrives.
            string nodeId = r.NodeId;
            channel.Disconnected = () => host.Gateway.Registry.MarkFailed(nodeId);
            if (!channel.Connected) host.Gateway.Registry.MarkFailed(nodeId);
            // The gateway meters with the model's tokenizer: load it now, not on the first paid request.
            foreach (string m in r.Models)
                if (host.Gateway.Models.TryGet(m, out var served)) _ = Task.Run(() => served.Tokenize("warm up"));
            return Results.Json(new { node_id = r.NodeId, token, heartbeat_interval_ms = 1000, revenue_account = InferencePayments.NodeRevenueAccount(number).ToString() });
        });
        app.MapPost("/api/inference/nodes/{id}/heartbeat", async (string id, HttpContext http, InferenceHost host, RemoteNodes nodes) =>
        {
            if (Authorize(http, nodes, id) is not { } node) return Problems.Unauthorized("Send the node's token: 'Authorization: Bearer <token>'.");
            SignedTelemetry? signed;
            try { signed = await JsonSerializer.DeserializeAsync<SignedTelemetry>(http.Request.Body, cancellationToken: http.RequestAborted); }
            catch (JsonException) { return Problems.BadRequest("The heartbeat is not valid JSON."); }
            if (signed is null || NodeSigning.Verify(signed, node.PublicKey) is not { } telemetry || telemetry.NodeId != id)
                return Problems.Unauthorized("The telemetry's Ed25519 signature does not verify with the node's registered key.");
            if (node.LastTelemetry is { } last && telemetry.Sequence <= last.Telemetry.Sequence)
                return Problems.Conflict($"Telemetry sequence {telemetry.Sequence} is not after {last.Telemetry.Sequence} (a replay?).");
            node.LastTelemetry = (telemetry, signed);
            if (node.Connected)
                host.Gateway.Registry.Heartbeat(id, new NodeHeartbeat(Math.Clamp(telemetry.Queue, 0, NodeRegistry.MaxQueueLength),
                    Math.Clamp(telemetry.Inflight, 0, NodeRegistry.MaxQueueLength), Math.Clamp(telemetry.EwmaModelMs, 0, NodeRegistry.MaxEwmaModelMs)));
            return Results.NoContent();
        });
        app.MapGet("/api/inference/nodes/{id}/work", async (string id, HttpContext http, RemoteNodes nodes, Microsoft.Extensions.Hosting.IHostApplicationLifetime lifetime) =>
        {
            if (Authorize(http, nodes, id) is not { } node) return Problems.Unauthorized("Send the node's token: 'Authorization: Bearer <token>'.");
            // The stream ends when the node goes away or the server stops (so a shutdown does not wait for the nodes).
            using var both = CancellationTokenSource.CreateLinkedTokenSource(http.RequestAborted, lifetime.ApplicationStopping);
            await node.StreamAsync(http.Response, both.Token);
            return Results.Empty;
        });
        app.MapPost("/api/inference/nodes/{id}/results/{work}", async (string id, string work, HttpContext http, RemoteNodes nodes) =>
        {
            if (Authorize(http, nodes, id) is not { } node) return Problems.Unauthorized("Send the node's token: 'Authorization: Bearer <token>'.");
            NodeWorkResult? result;
            try { result = await JsonSerializer.DeserializeAsync<NodeWorkResult>(http.Request.Body, cancellationToken: http.RequestAborted); }
            catch (JsonException) { return Problems.BadRequest("The result is not valid JSON."); }
            if (result is null) return Problems.BadRequest("The result is empty.");
            return node.Complete(work, result) ? Results.NoContent() : Problems.NotFound($"No work '{work}' is waiting for node {id} (it timed out or was cancelled).");
        });
        app.MapGet("/api/inference/nodes/{id}/telemetry", (string id, RemoteNodes nodes) =>
            nodes.Find(id) is { LastTelemetry: { } t } node
                ? Results.Json(new { node_id = id, public_key = Convert.ToBase64String(node.PublicKey), telemetry = t.Telemetry, signed = t.Signed })
                : Problems.NotFound($"No telemetry from node '{id}'."));
        return app;
    }

    private static RemoteNodeChannel? Authorize(HttpContext http, RemoteNodes nodes, string id)
    {
        string? header = http.Request.Headers.Authorization.FirstOrDefault();
        if (nodes.Find(id) is not { } node || header is null || !header.StartsWith("Bearer ", StringComparison.Ordinal)) return null;
        byte[] given = Encoding.UTF8.GetBytes(header["Bearer ".Length..].Trim()), expected = Encoding.UTF8.GetBytes(node.Token);
        return CryptographicOperations.FixedTimeEquals(given, expected) ? node : null;
    }
}
