using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using ComputeGrid.Inference.Model;
using ComputeGrid.Inference.Nodes;
using ComputeGrid.Server.Inference;
using Xunit.Abstractions;

namespace ComputeGrid.Server.Tests;

/// <summary>The real model, loaded once for the crash tests' node agents (run in the test process).</summary>
public sealed class CrashModelFixture : IDisposable
{
    public MiniLmEmbeddingModel Model { get; } = new(1);

    public void Dispose() => Model.Dispose();
}

/// <summary>
/// Paid requests against a real <c>computegrid serve</c> child killed with SIGKILL: by the gateway's fault hook
/// (<c>CG_FAULT</c>) right before the answer (the hold with its capture intent durable) or right after it (the answer
/// flushed, the capture not yet written), and at seeded moments under a load of paid requests. A node agent (the real
/// model, in the test process) serves the child's node port and re-registers after each restart. Every answered request
/// is charged exactly once (recovery completes its capture at the start); one whose answer never came is charged at most
/// once, and exactly once when retried with its key. Seeded: set CG_SEED to replay.
/// </summary>
public sealed class InferenceCrashTests(CrashModelFixture fixture, ITestOutputHelper output) : IClassFixture<CrashModelFixture>, IDisposable
{
    private const string NodeId = "crash-1";
    private const long Price = 20;
    private const long Funding = 10_000_000;
    private readonly string _dir = TestServer.TempDir("inference-crash");

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    [Theory]
    [InlineData("kill-after-answer")]
    [InlineData("kill-before-answer")]
    public async Task A_kill_between_the_node_and_the_capture_charges_the_request_once_after_the_restart(string fault)
    {
        int seed = Seed();
        var rng = new Random(seed);
        await using var rig = await Rig.StartAsync(_dir, fixture.Model, new Dictionary<string, string> { [InferenceFaults.Variable] = fault });
        Party customer = await TestServer.NewCustomerAsync(rig.Operator, "crash-customer", "frankfurt", Funding);
        string text = $"killed around its capture, seed {seed}: {rng.Next()}";
        long cost = InferenceGateway.Cost(fixture.Model.Tokenize(text).TokenCount, Price);

        if (fault == "kill-after-answer")
        {
            // The answer reaches the client; the server dies (SIGKILL from its own fault hook) before capturing it.
            var answered = await EmbedServedAsync(rig, customer.Http, text, "crash");
            Assert.True(answered.StatusCode == HttpStatusCode.OK, await answered.Content.ReadAsStringAsync());
            Assert.Equal(cost, long.Parse(answered.Headers.GetValues("X-CG-Cost-Micro-Usd").Single()));
            Assert.Equal(384, JsonDocument.Parse(await answered.Content.ReadAsStringAsync()).RootElement.GetProperty("data")[0].GetProperty("embedding").GetArrayLength());
        }
        else
        {
            // Dies with the answer ready (a 503 from a node that missed a heartbeat charges nothing: send it again).
            await Assert.ThrowsAnyAsync<HttpRequestException>(async () =>
            {
                for (int attempt = 0; attempt < 5; attempt++)
                {
                    using var r = await Embed(customer.Http, text, "crash");
                    if (r.StatusCode != HttpStatusCode.ServiceUnavailable) return;
                    await rig.WaitNodeHealthyAsync();
                }
            });
        }
        await rig.WaitExitedAsync();
        await rig.RestartAsync(null);

        // Recovery completed the capture from the hold's intent before the server took requests: charged once, nothing held.
        Assert.Equal((Funding - cost, 0L), await AccountAsync(customer.Http));

        // The client retries with its key: served, not charged again (the hold of that generation is posted).
        var retry = await EmbedServedAsync(rig, customer.Http, text, "crash");
        Assert.True(retry.StatusCode == HttpStatusCode.OK, await retry.Content.ReadAsStringAsync());
        Assert.Equal(cost, long.Parse(retry.Headers.GetValues("X-CG-Cost-Micro-Usd").Single()));
        Assert.Equal("false", retry.Headers.GetValues("X-CG-Charged").Single());
        Assert.Equal((Funding - cost, 0L), await AccountAsync(customer.Http));
        output.WriteLine($"{fault}: seed {seed}, cost {cost}, balance after the retry {Funding - cost}");
    }

    [Fact]
    public async Task Kill_9_at_seeded_moments_under_paid_load_charges_every_answered_request_once()
    {
        int seed = Seed();
        var rng = new Random(seed);
        const int clients = 3, kills = 3;
        await using var rig = await Rig.StartAsync(_dir, fixture.Model, null);
        var customers = new List<Party>();
        for (int c = 0; c < clients; c++) customers.Add(await TestServer.NewCustomerAsync(rig.Operator, $"load-{c}", "frankfurt", Funding));
        // Per customer: every key sent (with its text), and the keys answered 200 before a kill.
        var sent = customers.Select(_ => new ConcurrentDictionary<string, string>()).ToArray();
        var answered = customers.Select(_ => new ConcurrentDictionary<string, bool>()).ToArray();
        for (int round = 0; round < kills; round++)
        {
            using var stop = new CancellationTokenSource();
            int killAfterMs = rng.Next(300, 1_500);
            var loops = Enumerable.Range(0, clients).Select(c =>
            {
                var crng = new Random(seed * 31 + round * 7 + c);
                return Task.Run(async () =>
                {
                    for (int i = 0; !stop.IsCancellationRequested; i++)
                    {
                        string key = $"r{round}-c{c}-{i}";
                        string text = $"paid request {key}: {crng.Next()}";
                        sent[c][key] = text;
                        try
                        {
                            var r = await Embed(customers[c].Http, text, key);
                            if (r.StatusCode == HttpStatusCode.OK) answered[c][key] = true;
                        }
                        catch (Exception e) when (e is HttpRequestException or TaskCanceledException or IOException) { return; }
                    }
                });
            }).ToArray();
            // The seeded moment counts from the round's first answer, so that each round kills a server under paid load
            // even on a machine slow enough that no request is answered within the first second or two.
            int answeredBefore = answered.Sum(a => a.Count);
            for (int w = 0; w < 600 && answered.Sum(a => a.Count) == answeredBefore; w++) await Task.Delay(50);
            await Task.Delay(killAfterMs);
            rig.Kill();
            stop.Cancel();
            await Task.WhenAll(loops);
            output.WriteLine($"round {round}: killed after {killAfterMs} ms; {answered.Sum(a => a.Count)} answered of {sent.Sum(s => s.Count)} sent so far");
            await rig.RestartAsync(null);

            // Every answered request is charged: the posted debits cover at least the answered ones, at most all sent.
            for (int c = 0; c < clients; c++)
            {
                var (available, held) = await AccountAsync(customers[c].Http);
                long debits = Funding - available - held;
                long answeredCost = answered[c].Keys.Sum(k => CostOf(sent[c][k]));
                long sentCost = sent[c].Values.Sum(CostOf);
                Assert.True(debits >= answeredCost && debits <= sentCost, $"customer {c}: debits {debits}, answered {answeredCost}, sent {sentCost}");
            }
        }
        // Retrying every request ever sent (its key, its body) charges each exactly once in all.
        for (int c = 0; c < clients; c++)
        {
            foreach (var (key, text) in sent[c])
            {
                var r = await EmbedServedAsync(rig, customers[c].Http, text, key);
                Assert.True(r.StatusCode == HttpStatusCode.OK, $"{key}: {(int)r.StatusCode} {await r.Content.ReadAsStringAsync()}");
                if (answered[c].ContainsKey(key)) Assert.Equal("false", r.Headers.GetValues("X-CG-Charged").Single());
            }
            long all = sent[c].Values.Sum(CostOf);
            Assert.Equal((Funding - all, 0L), await AccountAsync(customers[c].Http));
        }
        Assert.True(answered.Sum(a => a.Count) > 10, $"only {answered.Sum(a => a.Count)} requests were answered: the test did too little");
    }

    private long CostOf(string text) => InferenceGateway.Cost(fixture.Model.Tokenize(text).TokenCount, Price);

    private int Seed()
    {
        int seed = int.TryParse(Environment.GetEnvironmentVariable("CG_SEED"), out int s) ? s : 20261212;
        output.WriteLine($"seed {seed} (set CG_SEED={seed} to replay)");
        return seed;
    }

    /// <summary>
    /// Sends a request that must be served. A 503 charges nothing and is the client's cue to retry: on a busy machine the
    /// node may miss a heartbeat (above all while the server recovers from a restart), so wait until it is healthy and
    /// send the same request (same key) again, a few times at most.
    /// </summary>
    private async Task<HttpResponseMessage> EmbedServedAsync(Rig rig, HttpClient http, string text, string key)
    {
        var r = await Embed(http, text, key);
        for (int attempt = 0; r.StatusCode == HttpStatusCode.ServiceUnavailable && attempt < 5; attempt++)
        {
            output.WriteLine($"{key}: 503 {await r.Content.ReadAsStringAsync()}; waiting for a healthy node");
            await rig.WaitNodeHealthyAsync();
            r = await Embed(http, text, key);
        }
        return r;
    }

    private static Task<HttpResponseMessage> Embed(HttpClient http, string text, string key)
    {
        var req = new HttpRequestMessage(HttpMethod.Post, "/v1/embeddings")
        {
            Content = new StringContent(JsonSerializer.Serialize(new { model = MoneyServer.Model, input = text }), Encoding.UTF8, "application/json"),
        };
        req.Headers.Add("Idempotency-Key", key);
        return http.SendAsync(req);
    }

    private static async Task<(long Available, long Held)> AccountAsync(HttpClient customer)
    {
        JsonElement a = await customer.GetFromJsonAsync<JsonElement>("/api/inference/account");
        return (a.GetProperty("available").GetInt64(), a.GetProperty("held").GetInt64());
    }

    /// <summary>A <c>serve</c> child on fixed ports, an admitted node and its agent in this process.</summary>
    private sealed class Rig : IAsyncDisposable
    {
        private readonly string _dir;
        private readonly int _port;
        private readonly string _nodeUrl;
        private readonly NodeAgent _agent;
        private readonly CancellationTokenSource _stop = new();
        private Task? _agentRun;
        private Process _server;

        private Rig(string dir, int port, string nodeUrl, Process server, HttpClient op, NodeAgent agent)
        {
            _dir = dir;
            _port = port;
            _nodeUrl = nodeUrl;
            _server = server;
            Operator = op;
            _agent = agent;
        }

        public HttpClient Operator { get; }

        public static async Task<Rig> StartAsync(string dir, IEmbeddingModel model, IReadOnlyDictionary<string, string>? environment)
        {
            int port = TestServer.FreePort();
            string nodeUrl = $"http://127.0.0.1:{TestServer.FreePort()}";
            var (server, url) = await TestServer.StartChildAsync(dir, port, nodeUrl, environment, "--no-sites");
            var op = TestServer.Client(url, TestServer.OperatorKey(dir));
            Party provider = await TestServer.NewProviderAsync(op, "crash-provider");
            provider.Http.Dispose();
            string keyFile = Path.Combine(dir, NodeId + ".key");
            var (_, publicKey, _, _) = NodeAgent.LoadOrCreateKey(keyFile);
            await op.PostJsonAsync($"/api/providers/{provider.Id}/nodes", new { node_id = NodeId, public_key = Convert.ToBase64String(publicKey), price_ceiling_micro_usd_per_1k_tokens = 100 });
            var agent = new NodeAgent(new NodeAgentOptions
            {
                Server = new Uri(nodeUrl), NodeId = NodeId, Region = "frankfurt", PriceMicroUsdPer1kTokens = Price, Capacity = 4, KeyFile = keyFile,
                ReconnectMinDelay = TimeSpan.FromMilliseconds(50), ReconnectMaxDelay = TimeSpan.FromMilliseconds(300), DrainTimeout = TimeSpan.FromSeconds(1),
            }, log: null, model: model);
            var rig = new Rig(dir, port, nodeUrl, server, op, agent);
            rig._agentRun = agent.RunAsync(rig._stop.Token);
            await rig.WaitNodeHealthyAsync();
            return rig;
        }

        public void Kill()
        {
            _server.Kill(entireProcessTree: true); // SIGKILL: no flush, no snapshot
            _server.WaitForExit();
        }

        public async Task WaitExitedAsync()
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await _server.WaitForExitAsync(timeout.Token);
        }

        public async Task RestartAsync(IReadOnlyDictionary<string, string>? environment)
        {
            _server.Dispose();
            (_server, _) = await TestServer.StartChildAsync(_dir, _port, _nodeUrl, environment, "--no-sites");
            await WaitNodeHealthyAsync();
        }

        public async Task WaitNodeHealthyAsync()
        {
            var deadline = DateTime.UtcNow.AddSeconds(60);
            while (DateTime.UtcNow < deadline)
            {
                JsonElement nodes = JsonDocument.Parse(await Operator.GetStringAsync("/api/inference/nodes")).RootElement.GetProperty("nodes");
                if (nodes.EnumerateArray().Any(n => n.GetProperty("id").GetString() == NodeId && n.GetProperty("healthy").GetBoolean())) return;
                await Task.Delay(50);
            }
            throw new TimeoutException($"node {NodeId} did not become healthy in 60 s");
        }

        public async ValueTask DisposeAsync()
        {
            _stop.Cancel();
            await _agent.DisposeAsync();
            if (_agentRun is not null) { try { await _agentRun; } catch (Exception) { } }
            if (!_server.HasExited) Kill();
            _server.Dispose();
            Operator.Dispose();
            _stop.Dispose();
        }
    }
}
