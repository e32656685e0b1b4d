using System.Collections.Concurrent;
using System.Net;
using System.Text;
using System.Text.Json;
using System.Threading.Channels;
using ComputeGrid.Inference.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace ComputeGrid.Inference.Tests.Nodes;

/// <summary>
/// A minimal node endpoint on Kestrel (127.0.0.1, HTTP/2 only): register, heartbeat (verified with the registered
/// key), the NDJSON work stream fed from <see cref="Work"/>, and results, with knobs to fail registrations, drop the
/// stream and forget the node. Every request's protocol and connection id are recorded.
/// </summary>
internal sealed class FakeNodeServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly Lock _gate = new();
    private readonly List<NodeRegisterRequest> _registrations = [];
    private readonly ConcurrentDictionary<string, TaskCompletionSource<NodeWorkResult>> _results = new(StringComparer.Ordinal);
    private CancellationTokenSource? _currentStream;
    private bool _abortStream;
    private string _token = NewToken();
    private byte[]? _publicKey;
    private long _lastSequence = long.MinValue;
    private int _streamsOpened;

    private FakeNodeServer(WebApplication app) => _app = app;

    public Uri Url { get; private set; } = null!;

    /// <summary>Work items to send down the stream (read by whichever stream is open).</summary>
    public Channel<NodeWorkItem> Work { get; } = Channel.CreateUnbounded<NodeWorkItem>();

    /// <summary>Heartbeats whose signature verified with the registered key, in arrival order.</summary>
    public Channel<NodeTelemetry> Heartbeats { get; } = Channel.CreateUnbounded<NodeTelemetry>();

    /// <summary>Heartbeats that did not verify (or went backwards).</summary>
    public int BadHeartbeats;

    /// <summary>503 answers still to give to registrations before accepting one.</summary>
    public int RegistrationFailuresLeft;

    /// <summary>A 4xx status to refuse every registration with (null: accept).</summary>
    public int? RefuseRegistrationWith;

    /// <summary>The protocol of every request (<c>HTTP/2</c> expected).</summary>
    public ConcurrentQueue<string> Protocols { get; } = new();

    /// <summary>The connection id of every request.</summary>
    public ConcurrentQueue<string> Connections { get; } = new();

    public int RegistrationAttempts;

    public int StreamsOpened => Volatile.Read(ref _streamsOpened);

    public IReadOnlyList<NodeRegisterRequest> Registrations
    {
        get { lock (_gate) return [.. _registrations]; }
    }

    public static async Task<FakeNodeServer> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0, l => l.Protocols = HttpProtocols.Http2));
        var app = builder.Build();
        var server = new FakeNodeServer(app);
        server.Map(app);
        await app.StartAsync();
        string address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        server.Url = new Uri(address);
        return server;
    }

    /// <summary>Ends the open work stream: gracefully (the response completes) or by aborting the request (RST_STREAM).</summary>
    public void DropStream(bool abort = false)
    {
        lock (_gate)
        {
            _abortStream = abort;
            _currentStream?.Cancel();
        }
    }

    /// <summary>Forgets the node's token (as a restarted server would): its requests get 401 until it registers again.</summary>
    public void ForgetNode()
    {
        lock (_gate) _token = NewToken();
    }

    /// <summary>Sends a work item and waits for the node's answer to it.</summary>
    public async Task<NodeWorkResult> RunAsync(NodeWorkItem item, TimeSpan? timeout = null)
    {
        var pending = Expect(item.Id);
        await Work.Writer.WriteAsync(item);
        return await pending.WaitAsync(timeout ?? TimeSpan.FromSeconds(20));
    }

    /// <summary>The answer to work <paramref name="workId"/>, once it comes.</summary>
    public Task<NodeWorkResult> Expect(string workId) =>
        _results.GetOrAdd(workId, _ => new TaskCompletionSource<NodeWorkResult>(TaskCreationOptions.RunContinuationsAsynchronously)).Task;

    /// <summary>Waits for a verified heartbeat that satisfies <paramref name="predicate"/>.</summary>
    public async Task<NodeTelemetry> WaitForHeartbeatAsync(Func<NodeTelemetry, bool> predicate, TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(20));
        while (true)
        {
            NodeTelemetry t = await Heartbeats.Reader.ReadAsync(cts.Token);
            if (predicate(t)) return t;
        }
    }

    public async Task WaitForAsync(Func<bool> condition, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(20));
        while (!condition())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException("The condition did not hold in time.");
            await Task.Delay(10);
        }
    }

    public async ValueTask DisposeAsync()
    {
        DropStream();
        await _app.StopAsync();
        await _app.DisposeAsync();
    }

    private static string NewToken() => Guid.NewGuid().ToString("N");

    private void Record(HttpContext http)
    {
        Protocols.Enqueue(http.Request.Protocol);
        Connections.Enqueue(http.Connection.Id);
    }

    private bool Authorized(HttpContext http)
    {
        string? header = http.Request.Headers.Authorization.FirstOrDefault();
        lock (_gate) return _publicKey is not null && header == "Bearer " + _token;
    }

    private static Task Problem(HttpContext http, int status, string detail)
    {
        http.Response.StatusCode = status;
        http.Response.ContentType = "application/problem+json";
        return http.Response.WriteAsync(JsonSerializer.Serialize(new { title = "Problem", status, detail }));
    }

    private void Map(WebApplication app)
    {
        app.MapPost("/api/inference/nodes/register", async (HttpContext http) =>
        {
            Record(http);
            Interlocked.Increment(ref RegistrationAttempts);
            var r = await JsonSerializer.DeserializeAsync<NodeRegisterRequest>(http.Request.Body);
            if (r is null || Convert.FromBase64String(r.PublicKeyBase64).Length != 32)
            {
                await Problem(http, 400, "bad registration");
                return;
            }
            if (RefuseRegistrationWith is { } refuse)
            {
                await Problem(http, refuse, $"Node '{r.NodeId}' is registered with another key.");
                return;
            }
            if (Interlocked.Decrement(ref RegistrationFailuresLeft) >= 0)
            {
                await Problem(http, 503, "starting up");
                return;
            }
            string token;
            lock (_gate)
            {
                _registrations.Add(r);
                _publicKey = Convert.FromBase64String(r.PublicKeyBase64);
                token = _token;
            }
            http.Response.ContentType = "application/json";
            await http.Response.WriteAsync(JsonSerializer.Serialize(new { node_id = r.NodeId, token, heartbeat_interval_ms = 1000, revenue_account = "42" }));
        });

        app.MapPost("/api/inference/nodes/{id}/heartbeat", async (HttpContext http) =>
        {
            Record(http);
            if (!Authorized(http))
            {
                await Problem(http, 401, "Send the node's token.");
                return;
            }
            var signed = await JsonSerializer.DeserializeAsync<SignedTelemetry>(http.Request.Body);
            byte[] key;
            lock (_gate) key = _publicKey!;
            NodeTelemetry? telemetry = signed is null ? null : NodeSigning.Verify(signed, key);
            bool ok;
            lock (_gate)
            {
                ok = telemetry is not null && telemetry.NodeId == (string?)http.Request.RouteValues["id"] && telemetry.Sequence > _lastSequence;
                if (ok) _lastSequence = telemetry!.Sequence;
            }
            if (!ok)
            {
                Interlocked.Increment(ref BadHeartbeats);
                await Problem(http, 401, "The signature does not verify.");
                return;
            }
            Heartbeats.Writer.TryWrite(telemetry!);
            http.Response.StatusCode = 204;
        });

        app.MapGet("/api/inference/nodes/{id}/work", async (HttpContext http) =>
        {
            Record(http);
            if (!Authorized(http))
            {
                await Problem(http, 401, "Send the node's token.");
                return;
            }
            using var drop = new CancellationTokenSource();
            lock (_gate)
            {
                _currentStream = drop;
                _abortStream = false;
            }
            http.Response.ContentType = "application/x-ndjson";
            await http.Response.Body.FlushAsync();
            Interlocked.Increment(ref _streamsOpened);
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(http.RequestAborted, drop.Token);
            try
            {
                while (true)
                {
                    NodeWorkItem item = await Work.Reader.ReadAsync(linked.Token);
                    await http.Response.Body.WriteAsync(Encoding.UTF8.GetBytes(JsonSerializer.Serialize(item) + "\n"), linked.Token);
                    await http.Response.Body.FlushAsync(linked.Token);
                }
            }
            catch (OperationCanceledException)
            {
            }
            bool abort;
            lock (_gate)
            {
                abort = _abortStream;
                if (_currentStream == drop) _currentStream = null;
            }
            if (abort) http.Abort();
        });

        app.MapPost("/api/inference/nodes/{id}/results/{work}", async (HttpContext http) =>
        {
            Record(http);
            if (!Authorized(http))
            {
                await Problem(http, 401, "Send the node's token.");
                return;
            }
            var result = await JsonSerializer.DeserializeAsync<NodeWorkResult>(http.Request.Body);
            string work = (string)http.Request.RouteValues["work"]!;
            _results.GetOrAdd(work, _ => new TaskCompletionSource<NodeWorkResult>(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult(result!);
            http.Response.StatusCode = 204;
        });
    }
}
