using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using ComputeGrid.Inference.Nodes;
using ComputeGrid.Ledger;
using ComputeGrid.Server.Inference;
using ComputeGrid.Server.Trust;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;

namespace ComputeGrid.Server.Tests;

/// <summary>One in-process server with a node port (HTTP/2) and a provider, shared by the node protocol tests.</summary>
public sealed class NodePortFixture : IAsyncLifetime
{
    public string Dir { get; } = TestServer.TempDir("node-port");
    public WebApplication App { get; private set; } = null!;
    /// <summary>A client of the public port carrying the first operator's key.</summary>
    public HttpClient Operator { get; private set; } = null!;
    /// <summary>A client of the public port without a key.</summary>
    public HttpClient Public { get; private set; } = null!;
    /// <summary>A client of the node port without a token (HTTP/2 with prior knowledge).</summary>
    public HttpClient Node { get; private set; } = null!;
    public string ApiUrl => ServerHost.Endpoints(App).ApiUrl;
    public string NodeUrl => ServerHost.Endpoints(App).NodeUrl;
    public Party Provider { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        (App, Operator) = await TestServer.StartInProcessAsync(Dir, nodeUrls: "http://127.0.0.1:0");
        Public = TestServer.Client(ApiUrl, null);
        Node = TestServer.NodeClient(NodeUrl);
        Provider = await TestServer.NewProviderAsync(Operator, "provider");
    }

    public async Task DisposeAsync()
    {
        await App.StopAsync();
        await App.DisposeAsync();
        Operator.Dispose();
        Public.Dispose();
        Node.Dispose();
        Provider.Http.Dispose();
        Directory.Delete(Dir, recursive: true);
    }
}

/// <summary>
/// Nodes on the node port: admission by an operator, challenge-and-response registration (the signature is the
/// credential: not the node id, not the published public key), one session per node, the price ceiling, revocation,
/// the separation of the public and node ports; and node agents as their own processes (<c>computegrid node</c>)
/// connected over HTTP/2 — signed telemetry, and a node killed in the middle of a request: the request fails over and
/// is charged exactly once.
/// </summary>
public sealed class InferenceNodeTests(NodePortFixture server) : IClassFixture<NodePortFixture>
{
    private const string Model = "all-MiniLM-L6-v2";
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(20);

    [Fact]
    public async Task A_node_that_is_not_admitted_gets_404_at_the_challenge_and_at_registration()
    {
        var challenge = await ChallengeAsync(server.Node, "ghost-1");
        await AssertProblemAsync(challenge, HttpStatusCode.NotFound, "No admitted node 'ghost-1'");

        // Nor can it skip the challenge: a registration for any nonce is refused for the same reason.
        var (_, privateKey) = Keys();
        var registration = await RegisterAsync(server.Node, "ghost-1", "made-up-nonce", privateKey);
        await AssertProblemAsync(registration, HttpStatusCode.NotFound, "No admitted node 'ghost-1'");
        Assert.DoesNotContain("ghost-1", await RoutedNodesAsync());
    }

    [Fact]
    public async Task A_registration_signed_with_another_key_gets_401_and_no_session()
    {
        byte[] admitted = await TestServer.AdmitNodeAsync(server.Operator, server.Provider.Id, "wrong-key-1");
        var (_, other) = Keys();
        string nonce = await NonceAsync("wrong-key-1");
        var r = await RegisterAsync(server.Node, "wrong-key-1", nonce, other);
        string body = await AssertProblemAsync(r, HttpStatusCode.Unauthorized, "The signature does not verify with the node's admitted key.");
        Assert.DoesNotContain("token", body);
        Assert.Null(server.App.Services.GetRequiredService<NodeSessions>().Current("wrong-key-1"));
        Assert.DoesNotContain("wrong-key-1", await RoutedNodesAsync());

        // The nonce was used up by the failed attempt: even the right key cannot use it again.
        var replay = await RegisterAsync(server.Node, "wrong-key-1", nonce, admitted);
        await AssertProblemAsync(replay, HttpStatusCode.Unauthorized, "The nonce was not issued to this node, was used, or expired");
        Assert.Null(server.App.Services.GetRequiredService<NodeSessions>().Current("wrong-key-1"));
    }

    [Fact]
    public async Task Knowing_a_nodes_published_public_key_does_not_get_its_token()
    {
        // The node registers and heartbeats; its public key is then published on the public port.
        byte[] privateKey = await TestServer.AdmitNodeAsync(server.Operator, server.Provider.Id, "victim-1");
        string firstNonce = await NonceAsync("victim-1");
        string firstSignature = Sign("victim-1", firstNonce, privateKey); // Ed25519 is deterministic: the very signature sent
        var granted = await RegisterAsync(server.Node, "victim-1", firstNonce, signature: firstSignature);
        Assert.Equal(HttpStatusCode.OK, granted.StatusCode);
        string token = (await granted.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("token").GetString()!;
        using var victim = TestServer.NodeClient(server.NodeUrl, token);
        Assert.Equal(HttpStatusCode.NoContent, (await HeartbeatAsync(victim, "victim-1", 1, privateKey)).StatusCode);
        JsonElement published = JsonDocument.Parse(await server.Public.GetStringAsync("/api/inference/nodes/victim-1/telemetry")).RootElement;
        string publicKey = published.GetProperty("public_key").GetString()!;
        Assert.Equal(Convert.ToBase64String(NodeSigning.PublicKeyOf(privateKey)), publicKey);

        // The old attack: register again presenting the node's public key. The field does not exist any more.
        var old = await server.Node.PostAsJsonAsync("/node/v1/sessions", new
        {
            node_id = "victim-1", region = "frankfurt", models = new[] { Model }, price_micro_usd_per_1k_tokens = 20, capacity = 4, public_key = publicKey,
        }, TestServer.Json);
        Assert.Equal(HttpStatusCode.BadRequest, old.StatusCode);
        Assert.DoesNotContain("\"token\"", await old.Content.ReadAsStringAsync());

        // With a fresh challenge: the public key where the signature goes, a signature by the attacker's own key, and
        // the node's own earlier signature (seen on the wire) replayed — none verifies for this nonce.
        var (_, attackerKey) = Keys();
        string nonce = await NonceAsync("victim-1");
        await AssertProblemAsync(await RegisterAsync(server.Node, "victim-1", nonce, signature: publicKey), HttpStatusCode.Unauthorized, "does not verify");
        nonce = await NonceAsync("victim-1");
        await AssertProblemAsync(await RegisterAsync(server.Node, "victim-1", nonce, attackerKey), HttpStatusCode.Unauthorized, "does not verify");
        nonce = await NonceAsync("victim-1");
        await AssertProblemAsync(await RegisterAsync(server.Node, "victim-1", nonce, signature: firstSignature), HttpStatusCode.Unauthorized, "does not verify");

        // The node's session is untouched: its token still works, and it is still the one session.
        Assert.Equal(HttpStatusCode.NoContent, (await HeartbeatAsync(victim, "victim-1", 2, privateKey)).StatusCode);
        Assert.NotNull(server.App.Services.GetRequiredService<NodeSessions>().Current("victim-1"));
    }

    [Fact]
    public async Task A_second_registration_ends_the_first_session_and_its_token_gets_401()
    {
        byte[] key = await TestServer.AdmitNodeAsync(server.Operator, server.Provider.Id, "twice-1");
        string first = await TestServer.RegisterNodeAsync(server.NodeUrl, "twice-1", key);
        using var firstClient = TestServer.NodeClient(server.NodeUrl, first);
        // The first session's work stream is open while the node registers again.
        using var stream = await firstClient.GetAsync("/node/v1/work", HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, stream.StatusCode);
        await using Stream body = await stream.Content.ReadAsStreamAsync();

        string second = await TestServer.RegisterNodeAsync(server.NodeUrl, "twice-1", key);
        Assert.NotEqual(first, second);
        // The first session's stream ends, and its token is refused from now on.
        await AssertStreamEndsAsync(body).WaitAsync(Wait);
        var refused = await firstClient.GetAsync("/node/v1/work", HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await HeartbeatAsync(firstClient, "twice-1", 1, key)).StatusCode);

        // The second session's token works.
        using var secondClient = TestServer.NodeClient(server.NodeUrl, second);
        using var open = await secondClient.GetAsync("/node/v1/work", HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, open.StatusCode);
        Assert.Equal(HttpStatusCode.NoContent, (await HeartbeatAsync(secondClient, "twice-1", 2, key)).StatusCode);
    }

    [Fact]
    public async Task A_price_above_the_admitted_ceiling_gets_403_and_the_ceiling_itself_is_accepted()
    {
        byte[] key = await TestServer.AdmitNodeAsync(server.Operator, server.Provider.Id, "pricey-1", priceCeiling: 20);
        var above = await RegisterAsync(server.Node, "pricey-1", await NonceAsync("pricey-1"), key, price: 21);
        string body = await AssertProblemAsync(above, HttpStatusCode.Forbidden, "The price is above the node's admitted ceiling.");
        Assert.DoesNotContain("token", body);
        Assert.Null(server.App.Services.GetRequiredService<NodeSessions>().Current("pricey-1"));

        var at = await RegisterAsync(server.Node, "pricey-1", await NonceAsync("pricey-1"), key, price: 20);
        Assert.Equal(HttpStatusCode.OK, at.StatusCode);
        JsonElement grant = await at.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal("pricey-1", grant.GetProperty("node_id").GetString());
        Assert.Equal(1000, grant.GetProperty("heartbeat_interval_ms").GetInt32());
        ulong principal = server.App.Services.GetRequiredService<TrustStore>().FindNode("pricey-1")!.Principal;
        Assert.Equal(InferencePayments.NodeRevenueAccount(principal).ToString(), grant.GetProperty("revenue_account").GetString());
        Assert.Equal(20, JsonDocument.Parse(await server.Public.GetStringAsync("/api/inference/nodes")).RootElement.GetProperty("nodes").EnumerateArray()
            .Single(n => n.GetProperty("id").GetString() == "pricey-1").GetProperty("price_micro_usd_per_1k_tokens").GetInt64());
    }

    [Fact]
    public async Task The_node_protocol_is_served_only_on_the_node_port_and_the_public_api_only_on_the_public_port()
    {
        byte[] key = await TestServer.AdmitNodeAsync(server.Operator, server.Provider.Id, "ports-1");
        string token = await TestServer.RegisterNodeAsync(server.NodeUrl, "ports-1", key);

        // The node protocol on the public port: 404, whoever asks.
        var challenge = await server.Public.PostAsJsonAsync("/node/v1/challenge", new { node_id = "ports-1" }, TestServer.Json);
        Assert.Equal("wrong_port", await ProblemCodeAsync(challenge, HttpStatusCode.NotFound));
        using var publicWithToken = TestServer.Client(server.ApiUrl, token);
        Assert.Equal("wrong_port", await ProblemCodeAsync(await publicWithToken.GetAsync("/node/v1/work"), HttpStatusCode.NotFound));
        Assert.Equal("wrong_port", await ProblemCodeAsync(await server.Operator.PostAsJsonAsync("/node/v1/challenge", new { node_id = "ports-1" }, TestServer.Json), HttpStatusCode.NotFound));

        // The public API on the node port: 404, whoever asks (an operator's key included).
        using var nodeWithToken = TestServer.NodeClient(server.NodeUrl, token);
        Assert.Equal("wrong_port", await ProblemCodeAsync(await server.Node.GetAsync("/healthz"), HttpStatusCode.NotFound));
        Assert.Equal("wrong_port", await ProblemCodeAsync(await server.Node.GetAsync("/api/inference/nodes"), HttpStatusCode.NotFound));
        Assert.Equal("wrong_port", await ProblemCodeAsync(await nodeWithToken.GetAsync("/api/inference/nodes/ports-1/telemetry"), HttpStatusCode.NotFound));
        using var nodeAsOperator = TestServer.NodeClient(server.NodeUrl, TestServer.OperatorKey(server.Dir));
        Assert.Equal("wrong_port", await ProblemCodeAsync(await nodeAsOperator.PostAsJsonAsync("/api/customers", new { name = "via-node-port", region = "frankfurt" }, TestServer.Json), HttpStatusCode.NotFound));
        Assert.DoesNotContain(await CustomerNamesAsync(), n => n == "via-node-port");
        var models = await server.Node.GetAsync("/v1/models");
        Assert.Equal(HttpStatusCode.NotFound, models.StatusCode);
        Assert.Equal("wrong_port", JsonDocument.Parse(await models.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetProperty("code").GetString());

        // Each where it belongs.
        Assert.Equal(HttpStatusCode.OK, (await server.Public.GetAsync("/healthz")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await server.Node.PostAsJsonAsync("/node/v1/challenge", new { node_id = "ports-1" }, TestServer.Json)).StatusCode);
    }

    [Fact]
    public async Task A_revoked_admission_makes_the_sessions_token_401_at_once()
    {
        byte[] key = await TestServer.AdmitNodeAsync(server.Operator, server.Provider.Id, "revoked-1");
        string token = await TestServer.RegisterNodeAsync(server.NodeUrl, "revoked-1", key);
        using var node = TestServer.NodeClient(server.NodeUrl, token);
        Assert.Equal(HttpStatusCode.NoContent, (await HeartbeatAsync(node, "revoked-1", 1, key)).StatusCode);
        using var stream = await node.GetAsync("/node/v1/work", HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, stream.StatusCode);
        await using Stream body = await stream.Content.ReadAsStreamAsync();

        var revoked = await server.Operator.DeleteAsync("/api/nodes/revoked-1");
        Assert.Equal(HttpStatusCode.OK, revoked.StatusCode);
        JsonElement admission = await revoked.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal("revoked-1", admission.GetProperty("node_id").GetString());
        Assert.Equal(JsonValueKind.String, admission.GetProperty("revoked").ValueKind);

        // At once: the next request with the token is refused, and the open work stream has ended.
        Assert.Equal(HttpStatusCode.Unauthorized, (await HeartbeatAsync(node, "revoked-1", 2, key)).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await node.GetAsync("/node/v1/work", HttpCompletionOption.ResponseHeadersRead)).StatusCode);
        await AssertStreamEndsAsync(body).WaitAsync(Wait);
        // And the node cannot register again.
        await AssertProblemAsync(await ChallengeAsync(server.Node, "revoked-1"), HttpStatusCode.NotFound, "No admitted node 'revoked-1'");
    }

    [Fact]
    public async Task A_node_killed_mid_request_fails_over_and_the_request_is_charged_once()
    {
        string dir = TestServer.TempDir("inference-nodes");
        var (app, op) = await TestServer.StartInProcessAsync(dir, nodeUrls: "http://127.0.0.1:0");
        string nodeUrl = ServerHost.Endpoints(app).NodeUrl;
        using var http = TestServer.Client(ServerHost.Endpoints(app).ApiUrl, null);
        var nodes = new List<Process>();
        Party? customer = null;
        try
        {
            // Two nodes of one provider, admitted with the keys in their key files: Dallas (near the customer, chosen
            // first) and Frankfurt (the fallback).
            Party provider = await TestServer.NewProviderAsync(op, "provider");
            provider.Http.Dispose();
            var admitted = new Dictionary<string, (string PublicKey, UInt128 Revenue)>();
            foreach (var (id, region) in new[] { ("dal-1", "dallas"), ("fra-1", "frankfurt") })
            {
                string keyFile = Path.Combine(dir, id + ".key");
                var (_, publicKey, created, _) = NodeAgent.LoadOrCreateKey(keyFile);
                Assert.True(created);
                JsonElement admission = await op.PostJsonAsync($"/api/providers/{provider.Id}/nodes",
                    new { node_id = id, public_key = Convert.ToBase64String(publicKey), price_ceiling_micro_usd_per_1k_tokens = 20 });
                Assert.Equal(20, admission.GetProperty("price_ceiling_micro_usd_per_1k_tokens").GetInt64());
                admitted[id] = (Convert.ToBase64String(publicKey), UInt128.Parse(admission.GetProperty("revenue_account").GetString()!));
                nodes.Add(StartNode(nodeUrl, id, region, keyFile));
            }
            var sw = Stopwatch.StartNew();
            while (sw.Elapsed < TimeSpan.FromSeconds(60))
            {
                var list = JsonDocument.Parse(await http.GetStringAsync("/api/inference/nodes")).RootElement.GetProperty("nodes");
                if (list.GetArrayLength() == 2 && list.EnumerateArray().All(n => n.GetProperty("healthy").GetBoolean())) break;
                await Task.Delay(200);
            }
            var host = app.Services.GetRequiredService<InferenceHost>();
            Assert.Equal(2, host.Gateway.Registry.Snapshot().Count(n => n.Healthy));
            // Each node earns into its own principal's revenue account, as its admission said.
            foreach (JsonElement n in JsonDocument.Parse(await http.GetStringAsync("/api/inference/nodes")).RootElement.GetProperty("nodes").EnumerateArray())
                Assert.Equal(admitted[n.GetProperty("id").GetString()!].Revenue, UInt128.Parse(n.GetProperty("revenue_account").GetString()!));

            // Signed telemetry: the server verified it with the admitted key, and anyone can check it again with it.
            var telemetry = JsonDocument.Parse(await http.GetStringAsync("/api/inference/nodes/dal-1/telemetry")).RootElement;
            Assert.Equal(admitted["dal-1"].PublicKey, telemetry.GetProperty("public_key").GetString());
            var signed = telemetry.GetProperty("signed").Deserialize<SignedTelemetry>()!;
            NodeTelemetry? verified = NodeSigning.Verify(signed, Convert.FromBase64String(admitted["dal-1"].PublicKey));
            Assert.NotNull(verified);
            Assert.Equal("dal-1", verified.NodeId);
            Assert.Equal("modeled", telemetry.GetProperty("telemetry").GetProperty("power_source").GetString());

            customer = await TestServer.NewCustomerAsync(op, "t", "dallas", fundMicroUsd: 10_000_000);

            // A request long enough to be cut: the most inputs a request may carry, each a long sentence, on a one-thread
            // node (a fast, idle machine finished 160 short ones before the kill landed); Dallas is killed while it runs.
            string[] inputs = Enumerable.Range(0, 256)
                .Select(i => $"sentence number {i} about grids, miners and ledgers, power prices and curtailment, leases of GPUs, and the nodes that serve them across regions").ToArray();
            using var req = new HttpRequestMessage(HttpMethod.Post, "/v1/embeddings")
            {
                Content = new StringContent(JsonSerializer.Serialize(new { model = Model, input = inputs, encoding_format = "base64", provider = new { sort = "latency" } }), Encoding.UTF8, "application/json"),
            };
            // One small request first: the server's tokenizer and both nodes' models are warm before the timed one.
            foreach (string region in new[] { "dallas", "frankfurt" })
            {
                var warm = await customer.Http.PostAsync("/v1/embeddings", new StringContent(JsonSerializer.Serialize(new { model = Model, input = "warm", provider = new { only = new[] { region } } }), Encoding.UTF8, "application/json"));
                Assert.True(warm.StatusCode == HttpStatusCode.OK, await warm.Content.ReadAsStringAsync());
            }
            await host.Gateway.Settler.IdleAsync();
            var ledger = app.Services.GetRequiredService<LedgerEngine>();
            long warmCost = (await ledger.LookupAccountsAsync([InferencePayments.CustomerAccount(customer.Id)]))[0].DebitsPosted;
            Task<HttpResponseMessage> pending = customer.Http.SendAsync(req);
            await Task.Delay(400);
            Assert.False(pending.IsCompleted, "the request finished before the node could be killed");
            nodes[0].Kill();
            HttpResponseMessage answer = await pending;
            Assert.True(answer.StatusCode == HttpStatusCode.OK, await answer.Content.ReadAsStringAsync());
            Assert.True(answer.Headers.GetValues("X-CG-Node").Single() == "fra-1" && answer.Headers.GetValues("X-CG-Attempts").Single() == "2",
                $"node {answer.Headers.GetValues("X-CG-Node").Single()}, attempts {answer.Headers.GetValues("X-CG-Attempts").Single()}, failed over: {(answer.Headers.TryGetValues("X-CG-Failed-Over", out var f) ? string.Join(",", f) : "-")}");
            long cost = long.Parse(answer.Headers.GetValues("X-CG-Cost-Micro-Usd").Single());

            await host.Gateway.Settler.IdleAsync();
            Account account = (await ledger.LookupAccountsAsync([InferencePayments.CustomerAccount(customer.Id)]))[0];
            Assert.Equal(warmCost + cost, account.DebitsPosted);
            Assert.Equal(0, account.DebitsPending);
            // The killed node left the rotation at once.
            Assert.False(host.Gateway.Registry.Snapshot().Single(n => n.NodeId == "dal-1").Healthy);
        }
        finally
        {
            foreach (Process p in nodes) { if (!p.HasExited) p.Kill(); p.Dispose(); }
            customer?.Http.Dispose();
            op.Dispose();
            await app.StopAsync();
            await app.DisposeAsync();
            Directory.Delete(dir, recursive: true);
        }
    }

    // ------------------------------------------------------------------ helpers (private to these tests)

    private static (byte[] PublicKey, byte[] PrivateKey) Keys()
    {
        var (privateKey, publicKey) = NodeSigning.NewKeyPair();
        return (publicKey, privateKey);
    }

    private static Task<HttpResponseMessage> ChallengeAsync(HttpClient node, string nodeId) =>
        node.PostAsJsonAsync("/node/v1/challenge", new { node_id = nodeId }, TestServer.Json);

    /// <summary>A fresh nonce for an admitted node.</summary>
    private async Task<string> NonceAsync(string nodeId)
    {
        var r = await ChallengeAsync(server.Node, nodeId);
        Assert.True(r.StatusCode == HttpStatusCode.OK, await r.Content.ReadAsStringAsync());
        JsonElement c = await r.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(nodeId, c.GetProperty("node_id").GetString());
        return c.GetProperty("nonce").GetString()!;
    }

    /// <summary>The signature (base64) of the standard offer of these tests: Frankfurt, the one model, <paramref name="price"/>, capacity 4.</summary>
    private static string Sign(string nodeId, string nonce, byte[] privateKey, long price = 20) =>
        Convert.ToBase64String(NodeSigning.SignBytes(NodeSigning.SessionMessage(nodeId, nonce, "frankfurt", [Model], price, 4), privateKey));

    /// <summary>Posts a registration of the standard offer, signed with <paramref name="privateKey"/> or carrying <paramref name="signature"/> as given.</summary>
    private static Task<HttpResponseMessage> RegisterAsync(HttpClient node, string nodeId, string nonce, byte[]? privateKey = null, long price = 20, string? signature = null) =>
        node.PostAsJsonAsync("/node/v1/sessions", new
        {
            node_id = nodeId, nonce, region = "frankfurt", models = new[] { Model }, price_micro_usd_per_1k_tokens = price, capacity = 4,
            signature = signature ?? Sign(nodeId, nonce, privateKey!, price),
        }, TestServer.Json);

    /// <summary>A signed heartbeat of sequence <paramref name="sequence"/>.</summary>
    private static Task<HttpResponseMessage> HeartbeatAsync(HttpClient node, string nodeId, long sequence, byte[] privateKey) =>
        node.PostAsJsonAsync("/node/v1/heartbeat", NodeSigning.Sign(new NodeTelemetry
        {
            NodeId = nodeId, Sequence = sequence, At = DateTimeOffset.UtcNow, UptimeSeconds = 1, Utilization = 0, Requests = 0, Tokens = 0,
            Inflight = 0, Queue = 0, EwmaModelMs = 0, PowerWatts = 35, PowerSource = "modeled",
        }, privateKey), TestServer.Json);

    /// <summary>Reads a work stream until it ends (its response completes); nothing but keep-alive newlines may come down it.</summary>
    private static async Task AssertStreamEndsAsync(Stream body)
    {
        var buffer = new byte[256];
        int n;
        while ((n = await body.ReadAsync(buffer)) > 0)
            Assert.All(buffer[..n], b => Assert.Equal((byte)'\n', b));
    }

    /// <summary>A problem+json answer of <paramref name="status"/> whose detail contains <paramref name="detail"/>; returns the body.</summary>
    private static async Task<string> AssertProblemAsync(HttpResponseMessage r, HttpStatusCode status, string detail)
    {
        string body = await r.Content.ReadAsStringAsync();
        Assert.True(r.StatusCode == status, $"{(int)r.StatusCode}: {body}");
        Assert.Equal("application/problem+json", r.Content.Headers.ContentType?.MediaType);
        Assert.Contains(detail, JsonDocument.Parse(body).RootElement.GetProperty("detail").GetString());
        return body;
    }

    /// <summary>The <c>code</c> of a problem+json answer of <paramref name="status"/>.</summary>
    private static async Task<string?> ProblemCodeAsync(HttpResponseMessage r, HttpStatusCode status)
    {
        string body = await r.Content.ReadAsStringAsync();
        Assert.True(r.StatusCode == status, $"{(int)r.StatusCode}: {body}");
        Assert.Equal("application/problem+json", r.Content.Headers.ContentType?.MediaType);
        return JsonDocument.Parse(body).RootElement.TryGetProperty("code", out JsonElement code) ? code.GetString() : null;
    }

    /// <summary>The ids in the routing table (public).</summary>
    private async Task<string[]> RoutedNodesAsync() =>
        JsonDocument.Parse(await server.Public.GetStringAsync("/api/inference/nodes")).RootElement.GetProperty("nodes").EnumerateArray()
            .Select(n => n.GetProperty("id").GetString()!).ToArray();

    private async Task<string[]> CustomerNamesAsync()
    {
        var r = await server.Operator.GetAsync("/api/principals?kind=customer&limit=1000");
        string body = await r.Content.ReadAsStringAsync();
        Assert.True(r.StatusCode == HttpStatusCode.OK, body);
        return JsonDocument.Parse(body).RootElement.GetProperty("principals").EnumerateArray().Select(p => p.GetProperty("name").GetString()!).ToArray();
    }

    private static Process StartNode(string nodeUrl, string id, string region, string keyFile)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string a in new[] { Path.Combine(AppContext.BaseDirectory, "computegrid.dll"), "node", "--server", nodeUrl, "--id", id, "--region", region,
                     "--price", "20", "--capacity", "4", "--threads", "1", "--key-file", keyFile })
            psi.ArgumentList.Add(a);
        var p = Process.Start(psi)!;
        p.OutputDataReceived += (_, _) => { };
        p.ErrorDataReceived += (_, _) => { };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        return p;
    }
}
