using System.Collections.Concurrent;
using System.Net;
using System.Security.Cryptography;
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
/// A minimal node port on Kestrel (127.0.0.1, HTTP/2 only) speaking the node protocol as the server does: nodes are
/// admitted first (<see cref="Admit"/>: id, Ed25519 public key, price ceiling); <c>POST /node/v1/challenge</c> hands an
/// admitted node a fresh nonce (404 otherwise); <c>POST /node/v1/sessions</c> accepts a registration only for a nonce
/// issued to that node and not used, whose signature verifies (<see cref="NodeSigning.VerifyBytes"/>) over
/// <see cref="NodeSigning.SessionMessage"/> with the admitted key (401 otherwise), at a price within the ceiling (403
/// otherwise), and answers a new bearer token that ends the node's previous session (its work stream closes, its
/// token gets 401). With the token: heartbeats (signed telemetry, verified with the admitted key), the NDJSON work
/// stream fed from <see cref="Work"/>, and results. Knobs fail challenges or registrations with 503, drop the
/// stream and forget every session. Every request's protocol and connection id are recorded.
/// </summary>
internal sealed class FakeNodeServer : IAsyncDisposable
{
    /// <summary>The revenue account every grant names.</summary>
    public const string RevenueAccount = "42";

    private sealed record Admission(byte[] PublicKey, long PriceCeiling);

    private sealed class Session(string nodeId, string token)
    {
        public string NodeId => nodeId;
        public string Token => token;
        public CancellationTokenSource Ended { get; } = new();
    }

    private readonly WebApplication _app;
    private readonly Lock _gate = new();
    private readonly Dictionary<string, Admission> _admitted = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> _challenges = new(StringComparer.Ordinal); // nonce → node id
    private readonly Dictionary<string, Session> _sessions = new(StringComparer.Ordinal); // token → session
    private readonly Dictionary<string, long> _lastSequence = new(StringComparer.Ordinal);
    private readonly List<string> _issuedNonces = [];
    private readonly List<NodeRegisterRequest> _registrations = [];
    private readonly List<string> _grantedTokens = [];
    private readonly ConcurrentDictionary<string, TaskCompletionSource<NodeWorkResult>> _results = new(StringComparer.Ordinal);
    private CancellationTokenSource? _currentStream;
    private bool _abortStream;
    private int _streamsOpened;

    private FakeNodeServer(WebApplication app) => _app = app;

    public Uri Url { get; private set; } = null!;

    /// <summary>Work items to send down the stream (read by whichever stream is open).</summary>
    public Channel<NodeWorkItem> Work { get; } = Channel.CreateUnbounded<NodeWorkItem>();

    /// <summary>Heartbeats whose signature verified with the admitted key, in arrival order.</summary>
    public Channel<NodeTelemetry> Heartbeats { get; } = Channel.CreateUnbounded<NodeTelemetry>();

    /// <summary>The session token of each verified heartbeat, in arrival order.</summary>
    public ConcurrentQueue<string> HeartbeatTokens { get; } = new();

    /// <summary>Heartbeats that did not verify (or went backwards).</summary>
    public int BadHeartbeats;

    /// <summary>503 answers still to give to challenges before issuing one.</summary>
    public int ChallengeFailuresLeft;

    /// <summary>503 answers still to give to registrations (<c>/node/v1/sessions</c>) before checking one.</summary>
    public int RegistrationFailuresLeft;

    /// <summary>The protocol of every request (<c>HTTP/2</c> expected).</summary>
    public ConcurrentQueue<string> Protocols { get; } = new();

    /// <summary>The connection id of every request.</summary>
    public ConcurrentQueue<string> Connections { get; } = new();

    /// <summary>Requests to <c>/node/v1/challenge</c>.</summary>
    public int ChallengeAttempts;

    /// <summary>Requests to <c>/node/v1/sessions</c>.</summary>
    public int RegistrationAttempts;

    public int StreamsOpened => Volatile.Read(ref _streamsOpened);

    /// <summary>The nonces handed out, in order.</summary>
    public IReadOnlyList<string> IssuedNonces
    {
        get { lock (_gate) return [.. _issuedNonces]; }
    }

    /// <summary>The registrations accepted (nonce, signature and price checked), in order.</summary>
    public IReadOnlyList<NodeRegisterRequest> Registrations
    {
        get { lock (_gate) return [.. _registrations]; }
    }

    /// <summary>The tokens granted, in order (one per accepted registration).</summary>
    public IReadOnlyList<string> GrantedTokens
    {
        get { lock (_gate) return [.. _grantedTokens]; }
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

    /// <summary>Admits a node, as an operator does: its id, its Ed25519 public key (raw) and its price ceiling.</summary>
    public void Admit(string nodeId, ReadOnlySpan<byte> publicKey, long priceCeiling = long.MaxValue)
    {
        byte[] key = publicKey.ToArray();
        lock (_gate) _admitted[nodeId] = new Admission(key, priceCeiling);
    }

    /// <summary>Whether a token opens a live session now.</summary>
    public bool IsLive(string token)
    {
        lock (_gate) return _sessions.ContainsKey(token);
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

    /// <summary>Forgets every session (as a restarted server would): their streams end and their tokens get 401 until the node registers again.</summary>
    public void ForgetNode()
    {
        Session[] all;
        lock (_gate)
        {
            all = [.. _sessions.Values];
            _sessions.Clear();
        }
        foreach (Session s in all) s.Ended.Cancel();
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
        ForgetNode();
        await _app.StopAsync();
        await _app.DisposeAsync();
    }

    private static string NewSecret() => Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    private void Record(HttpContext http)
    {
        Protocols.Enqueue(http.Request.Protocol);
        Connections.Enqueue(http.Connection.Id);
    }

    /// <summary>The live session of the request's bearer token, or null.</summary>
    private Session? Authorized(HttpContext http)
    {
        string? header = http.Request.Headers.Authorization.FirstOrDefault();
        if (header is null || !header.StartsWith("Bearer ", StringComparison.Ordinal)) return null;
        lock (_gate) return _sessions.GetValueOrDefault(header["Bearer ".Length..]);
    }

    private static Task Problem(HttpContext http, int status, string detail)
    {
        http.Response.StatusCode = status;
        http.Response.ContentType = "application/problem+json";
        return http.Response.WriteAsync(JsonSerializer.Serialize(new { title = "Problem", status, detail }));
    }

    private static Task Json<T>(HttpContext http, T value)
    {
        http.Response.ContentType = "application/json";
        return http.Response.WriteAsync(JsonSerializer.Serialize(value));
    }

    private void Map(WebApplication app)
    {
        app.MapPost("/node/v1/challenge", async (HttpContext http) =>
        {
            Record(http);
            Interlocked.Increment(ref ChallengeAttempts);
            var r = await JsonSerializer.DeserializeAsync<NodeChallengeRequest>(http.Request.Body);
            if (r is null || string.IsNullOrEmpty(r.NodeId))
            {
                await Problem(http, 400, "bad challenge request");
                return;
            }
            if (Interlocked.Decrement(ref ChallengeFailuresLeft) >= 0)
            {
                await Problem(http, 503, "starting up");
                return;
            }
            string nonce = NewSecret();
            lock (_gate)
            {
                if (!_admitted.ContainsKey(r.NodeId)) nonce = "";
                else
                {
                    _challenges[nonce] = r.NodeId;
                    _issuedNonces.Add(nonce);
                }
            }
            if (nonce.Length == 0)
            {
                await Problem(http, 404, $"No admitted node '{r.NodeId}'.");
                return;
            }
            await Json(http, new NodeChallenge(r.NodeId, nonce, DateTimeOffset.UtcNow.AddMinutes(1)));
        });

        app.MapPost("/node/v1/sessions", async (HttpContext http) =>
        {
            Record(http);
            Interlocked.Increment(ref RegistrationAttempts);
            var r = await JsonSerializer.DeserializeAsync<NodeRegisterRequest>(http.Request.Body);
            if (r is null || r.Models is null)
            {
                await Problem(http, 400, "bad registration");
                return;
            }
            if (Interlocked.Decrement(ref RegistrationFailuresLeft) >= 0)
            {
                await Problem(http, 503, "starting up");
                return;
            }
            byte[] signature;
            try { signature = Convert.FromBase64String(r.SignatureBase64); }
            catch (FormatException)
            {
                await Problem(http, 400, "'signature' must be base64.");
                return;
            }
            Session? previous = null;
            (int Status, string Detail)? refusal = null;
            string token = NewSecret();
            lock (_gate)
            {
                // The server's checks, in its order; the nonce is used up whatever follows.
                if (!_admitted.TryGetValue(r.NodeId, out Admission? admission)) refusal = (404, $"No admitted node '{r.NodeId}'.");
                else if (!_challenges.Remove(r.Nonce, out string? issuedTo) || issuedTo != r.NodeId)
                    refusal = (401, "The nonce was not issued to this node, was used, or expired: ask for a new challenge.");
                else if (!NodeSigning.VerifyBytes(NodeSigning.SessionMessage(r.NodeId, r.Nonce, r.Region, r.Models, r.PriceMicroUsdPer1kTokens, r.Capacity),
                             signature, admission.PublicKey))
                    refusal = (401, "The signature does not verify with the node's admitted key.");
                else if (r.PriceMicroUsdPer1kTokens > admission.PriceCeiling) refusal = (403, "The price is above the node's admitted ceiling.");
                else
                {
                    previous = _sessions.Values.FirstOrDefault(s => s.NodeId == r.NodeId);
                    if (previous is not null) _sessions.Remove(previous.Token);
                    _sessions[token] = new Session(r.NodeId, token);
                    _registrations.Add(r);
                    _grantedTokens.Add(token);
                }
            }
            if (refusal is { } no)
            {
                await Problem(http, no.Status, no.Detail);
                return;
            }
            previous?.Ended.Cancel(); // a new registration ends the previous session: its stream closes
            await Json(http, new NodeSessionGrant(r.NodeId, token, 1000, RevenueAccount));
        });

        app.MapPost("/node/v1/heartbeat", async (HttpContext http) =>
        {
            Record(http);
            if (Authorized(http) is not { } session)
            {
                await Problem(http, 401, "Send the session's token.");
                return;
            }
            var signed = await JsonSerializer.DeserializeAsync<SignedTelemetry>(http.Request.Body);
            byte[] key;
            lock (_gate) key = _admitted[session.NodeId].PublicKey;
            NodeTelemetry? telemetry = signed is null ? null : NodeSigning.Verify(signed, key);
            bool ok;
            lock (_gate)
            {
                long last = _lastSequence.GetValueOrDefault(session.NodeId, long.MinValue);
                ok = telemetry is not null && telemetry.NodeId == session.NodeId && telemetry.Sequence > last;
                if (ok) _lastSequence[session.NodeId] = telemetry!.Sequence;
            }
            if (!ok)
            {
                Interlocked.Increment(ref BadHeartbeats);
                await Problem(http, 401, "The telemetry's signature does not verify with the node's admitted key.");
                return;
            }
            HeartbeatTokens.Enqueue(session.Token);
            Heartbeats.Writer.TryWrite(telemetry!);
            http.Response.StatusCode = 204;
        });

        app.MapGet("/node/v1/work", async (HttpContext http) =>
        {
            Record(http);
            if (Authorized(http) is not { } session)
            {
                await Problem(http, 401, "Send the session's token.");
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
            // The stream ends when the node goes away, the test drops it, or the session ends.
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(http.RequestAborted, drop.Token, session.Ended.Token);
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

        app.MapPost("/node/v1/results/{work}", async (HttpContext http) =>
        {
            Record(http);
            if (Authorized(http) is null)
            {
                await Problem(http, 401, "Send the session's token.");
                return;
            }
            var result = await JsonSerializer.DeserializeAsync<NodeWorkResult>(http.Request.Body);
            string work = (string)http.Request.RouteValues["work"]!;
            _results.GetOrAdd(work, _ => new TaskCompletionSource<NodeWorkResult>(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult(result!);
            http.Response.StatusCode = 204;
        });
    }
}
