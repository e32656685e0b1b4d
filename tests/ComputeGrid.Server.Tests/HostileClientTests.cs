using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using ComputeGrid.Server.Trust;
using Xunit.Abstractions;

namespace ComputeGrid.Server.Tests;

/// <summary>A <c>computegrid serve</c> child process with both ports, for the tests that attack it from outside.</summary>
public sealed class ChildServer : IAsyncDisposable
{
    private ChildServer(Process process, string api, string node, string dir)
    {
        Process = process;
        ApiUrl = api;
        NodeUrl = node;
        DataDirectory = dir;
    }

    public Process Process { get; }
    public string ApiUrl { get; }
    public string NodeUrl { get; }
    public string DataDirectory { get; }

    /// <summary>Starts a server on free ports (API and node) over <paramref name="dir"/>, without live sites.</summary>
    public static async Task<ChildServer> StartAsync(string dir)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string a in new[] { Path.Combine(AppContext.BaseDirectory, "computegrid.dll"), "serve", "--urls", "http://127.0.0.1:0", "--node-urls", "http://127.0.0.1:0", "--no-sites", "--data-dir", dir })
            psi.ArgumentList.Add(a);
        var p = Process.Start(psi)!;
        var api = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        var node = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        p.OutputDataReceived += (_, e) =>
        {
            if (e.Data is not { } line) return;
            if (line.StartsWith("computegrid serving on ", StringComparison.Ordinal)) api.TrySetResult(line["computegrid serving on ".Length..].Split(' ')[0]);
            if (line.StartsWith("  node endpoint on ", StringComparison.Ordinal)) node.TrySetResult(line["  node endpoint on ".Length..].Trim());
        };
        p.ErrorDataReceived += (_, _) => { };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        var both = Task.WhenAll(api.Task, node.Task);
        if (await Task.WhenAny(both, Task.Delay(TimeSpan.FromSeconds(60)), p.WaitForExitAsync()) != both)
        {
            if (!p.HasExited) p.Kill(entireProcessTree: true);
            throw new InvalidOperationException("computegrid serve did not start.");
        }
        return new ChildServer(p, api.Task.Result, node.Task.Result, dir);
    }

    public async ValueTask DisposeAsync()
    {
        if (!Process.HasExited)
        {
            Process.Kill(entireProcessTree: true);
            await Process.WaitForExitAsync();
        }
        Process.Dispose();
    }
}

/// <summary>
/// Every route of the server, read from its own endpoint data source, attacked as a hostile client would against a
/// real <c>serve</c> child process: no credential, a garbage credential, another customer's key on that customer's
/// resources, a customer key on operator and provider routes, a node's session token on the public port, and the node
/// protocol from the wrong port. Each is refused with 401, 403 or 404 problem+json (OpenAI's error shape under
/// <c>/v1</c>), and the ledger, the exchange's orders and the trust store are exactly as before the whole suite.
/// </summary>
public sealed class HostileClientTests(ITestOutputHelper output) : IAsyncLifetime
{
    private readonly string _dir = TestServer.TempDir("hostile");
    private ChildServer _server = null!;

    public async Task InitializeAsync() => _server = await ChildServer.StartAsync(_dir);

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    /// <summary>The only routes anyone may call without a credential (the issue's list, and the node protocol's registration).</summary>
    private static readonly HashSet<string> PublicRoutes =
    [
        "GET /healthz", "GET /health/live", "GET /health/ready", "GET /openapi/{documentName}.json", "GET /v1/models",
        "GET /api/exchange/instruments", "GET /api/exchange/instruments/{symbol}", "GET /api/exchange/book/{symbol}", "GET /api/exchange/trades/{symbol}",
        "GET /api/exchange/candles/{symbol}", "GET /api/exchange/index", "GET /api/exchange/index/{gpu}", "GET /api/exchange/stream",
        "GET /api/ledger/checkpoints/latest", "GET /api/ledger/chain", "GET /api/inference/nodes", "GET /api/inference/nodes/{id}/telemetry",
        "GET /api/inference/latency", // the router's latency data: public data, like the routing table
        "GET /api/nodes/{id}/reports", "POST /node/v1/challenge", "POST /node/v1/sessions",
        "GET /api/shares", "GET /api/shares/{node}", "GET /api/shares/{node}/revenue", "GET /api/shares/pledge-terms",
        "GET /api/chain", "GET /x402/supported", "POST /x402/verify", "GET /api/chain/anchors/latest",
        // The web console's files: they hold no data (the page asks for a key before it calls anything else).
        "GET /", "GET /index.html", "GET /reference.html", "GET /favicon.svg", "GET /assets/{file}", "GET /vendor/scalar/{file}",
    ];

    [Fact]
    public void Every_route_declares_a_known_policy_or_is_one_of_the_public_routes()
    {
        var routes = RouteTable.Read();
        Assert.True(routes.Count > 50, $"only {routes.Count} routes were found");
        foreach (Route r in routes)
        {
            if (r.Public) Assert.True(PublicRoutes.Contains(r.ToString()), $"{r} is public but not one of the routes allowed to be");
            else Assert.True(r.Policy is not null && Policies.All.Contains(r.Policy), $"{r} declares no known policy ({r.Policy ?? "none"})");
            Assert.Equal(r.NodePort, r.Pattern.StartsWith("/node/", StringComparison.Ordinal));
            if (r.NodePort && !r.Public) Assert.Equal(Policies.Node, r.Policy);
            if (!r.NodePort) Assert.NotEqual(Policies.Node, r.Policy);
        }
        Assert.Equal(PublicRoutes.Order(), routes.Where(r => r.Public).Select(r => r.ToString()).Order());
    }

    [Fact]
    public async Task Every_route_refuses_hostile_callers_and_the_suite_changes_nothing()
    {
        using HttpClient op = TestServer.Client(_server.ApiUrl, TestServer.OperatorKey(_dir));
        Party alice = await TestServer.NewCustomerAsync(op, "alice", fundMicroUsd: 10_000_000);
        Party bob = await TestServer.NewCustomerAsync(op, "bob", fundMicroUsd: 10_000_000);
        Party provider = await TestServer.NewProviderAsync(op, "acme", collateralMicroUsd: 10_000_000);
        byte[] nodeKey = await TestServer.AdmitNodeAsync(op, provider.Id, "acme-node-1");
        var listed = await provider.Http.PostAsJsonAsync("/api/exchange/nodes", new { node_id = "acme-node-1", gpu = "H100", region = "frankfurt", gpus = 8 }, TestServer.Json);
        Assert.Equal(HttpStatusCode.Created, listed.StatusCode);
        string symbol = (await op.GetFromJsonAsync<JsonElement>("/api/exchange/instruments?gpu=H100&region=frankfurt&kind=H&limit=3"))
            .GetProperty("instruments")[2].GetProperty("symbol").GetString()!;
        await TestServer.DepositAsync(bob, 5_000_000); // bob's buy is held from his trading account
        JsonElement bobOrder = await bob.Http.PostJsonAsync("/api/exchange/orders", new { instrument = symbol, side = "buy", price = 2_000_000, quantity = 1 });
        long bobOrderId = bobOrder.GetProperty("order_id").GetInt64();
        string nodeToken = await TestServer.RegisterNodeAsync(_server.NodeUrl, "acme-node-1", nodeKey);
        string bobKeyId = (await bob.Http.GetFromJsonAsync<JsonElement>("/api/me")).GetProperty("key").GetProperty("key_id").GetString()!;
        JsonElement bobHistory = await bob.Http.GetFromJsonAsync<JsonElement>($"/api/ledger/accounts/{bob.Account}/transfers");
        string bobTransfer = bobHistory.GetProperty("transfers")[0].GetProperty("id").GetString()!;
        await op.PostAsync("/api/ledger/checkpoints", null);

        string before = await StateAsync(op, [alice, bob, provider]);

        // What a hostile caller puts in a route's parameters: the victim's (bob's) things wherever there are some.
        string Fill(Route r, string name) => (r.Pattern, name) switch
        {
            (_, "keyId") => bobKeyId,
            (_, "nodeId") => "acme-node-1",
            (_, "symbol") => symbol,
            (_, "gpu") => "H100",
            (_, "name") => "ercot-west-reference",
            (_, "work") => "1",
            (_, "epoch") => "0",
            (_, "documentName") => "v1",
            (_, "node") => "1", // a node that issued no shares: nothing of it is anyone's to touch
            (_, "provider") => provider.Id.ToString(),
            (var p, "id") when p.StartsWith("/api/ledger/accounts", StringComparison.Ordinal) => bob.Account.ToString(),
            (var p, "id") when p.StartsWith("/api/ledger/transfers", StringComparison.Ordinal) => bobTransfer,
            (var p, "id") when p.StartsWith("/api/exchange/orders", StringComparison.Ordinal) => bobOrderId.ToString(),
            (var p, "id") when p.StartsWith("/api/exchange/nodes", StringComparison.Ordinal) => "1",
            (var p, "id") when p.StartsWith("/api/exchange/leases", StringComparison.Ordinal) => "1",
            (var p, "id") when p.StartsWith("/api/inference/nodes", StringComparison.Ordinal) => "acme-node-1",
            (var p, "id") when p.StartsWith("/api/providers", StringComparison.Ordinal) => provider.Id.ToString(),
            (_, "id") => bob.Id.ToString(),
            _ => throw new InvalidOperationException($"no value for {{{name}}} of {r}"),
        };
        // Valid bodies where a caller may reach the handler, so that ownership (not the body's shape) is what refuses.
        string Body(Route r) => r.ToString() switch
        {
            "PUT /api/exchange/orders/{id}" => """{"price":2100000,"quantity":1}""",
            "POST /api/exchange/leases/{id}/resell" => $$"""{"instrument":"{{symbol}}","price":2100000,"quantity":1}""",
            var s when s.StartsWith("POST /api/ledger/", StringComparison.Ordinal) => "[]",
            "POST /api/shares/{node}/transfers" => $$"""{"to":{{bob.Id}},"shares":1}""",
            "POST /api/shares/{node}/pledges" => """{"shares":1,"loan":1}""",
            "POST /api/shares/pledges" => """{"lease_id":1,"loan":1}""",
            "PUT /api/shares/{node}/auto-claim" => """{"threshold":1}""",
            "POST /api/shares/loans/{id}/repayments" => """{"amount":1}""",
            "POST /api/chain/withdrawals" => """{"amount":1,"to":"0x70997970C51812dc3A010C7d01b50e0d25dc79C8"}""",
            "POST /api/chain/share-withdrawals" => """{"node":1,"shares":1,"to":"0x70997970C51812dc3A010C7d01b50e0d25dc79C8"}""",
            _ => "{}",
        };

        int checks = 0;
        var routes = RouteTable.Read();
        foreach (Route r in routes.Where(r => !r.Public))
        {
            string path = r.Parameters.Aggregate(r.Pattern, (p, name) => p.Replace("{" + name + "}", Uri.EscapeDataString(Fill(r, name)), StringComparison.Ordinal));
            string body = Body(r);
            if (r.NodePort)
            {
                // The node protocol, from the public port: not served there, whatever the credential.
                await ExpectAsync(r, _server.ApiUrl, path, body, "Bearer " + nodeToken, [HttpStatusCode.NotFound], "node route on the public port");
                // On the node port: nothing, garbage, or an API key (not a session) is refused.
                await ExpectAsync(r, _server.NodeUrl, path, body, null, [HttpStatusCode.Unauthorized], "no credential", node: true);
                await ExpectAsync(r, _server.NodeUrl, path, body, "Bearer cgn_" + new string('x', 43), [HttpStatusCode.Unauthorized], "garbage session", node: true);
                await ExpectAsync(r, _server.NodeUrl, path, body, "Bearer " + alice.Key, [HttpStatusCode.Unauthorized], "an API key as a session", node: true);
                checks += 4;
                continue;
            }
            await ExpectAsync(r, _server.ApiUrl, path, body, null, [HttpStatusCode.Unauthorized], "no credential");
            await ExpectAsync(r, _server.ApiUrl, path, body, "Bearer cg_0123456789abcdef_" + new string('A', 43), [HttpStatusCode.Unauthorized], "garbage key");
            await ExpectAsync(r, _server.ApiUrl, path, body, "Basic YWxpY2U6c2VjcmV0", [HttpStatusCode.Unauthorized], "not a bearer credential");
            await ExpectAsync(r, _server.ApiUrl, path, body, "Bearer " + nodeToken, [HttpStatusCode.Unauthorized], "a node session on the public port");
            checks += 4;
            bool customerMayCall = r.Policy is Policies.Self or Policies.Reader or Policies.Trader or Policies.Inference or Policies.InferenceOrX402 or Policies.Facilitator;
            if (!customerMayCall)
            {
                await ExpectAsync(r, _server.ApiUrl, path, body, "Bearer " + alice.Key, [HttpStatusCode.Forbidden], "a customer key");
                checks++;
            }
            else if (r.Parameters.Count > 0)
            {
                // Another customer's key on bob's things: refused as if they did not exist.
                await ExpectAsync(r, _server.ApiUrl, path, body, "Bearer " + alice.Key, [HttpStatusCode.NotFound, HttpStatusCode.Forbidden], "another customer's key");
                checks++;
            }
            if (r.Policy is Policies.Operator or Policies.OperatorRead)
            {
                await ExpectAsync(r, _server.ApiUrl, path, body, "Bearer " + provider.Key, [HttpStatusCode.Forbidden], "a provider key");
                checks++;
            }
        }
        output.WriteLine($"{routes.Count} routes, {checks} hostile requests refused ({_retried} sent again after a 429 of the address's rate limit)");

        Assert.Equal(before, await StateAsync(op, [alice, bob, provider]));
        // And bob's order still rests, his key still works.
        var orders = await bob.Http.GetFromJsonAsync<JsonElement>("/api/exchange/orders");
        Assert.Equal(bobOrderId, orders.GetProperty("orders")[0].GetProperty("order_id").GetInt64());
    }

    private int _retried;

    private async Task ExpectAsync(Route r, string baseUrl, string path, string body, string? authorization, HttpStatusCode[] expected, string who, bool node = false)
    {
        using HttpClient http = node ? TestServer.NodeClient(baseUrl) : new HttpClient { BaseAddress = new Uri(baseUrl) };
        HttpRequestMessage Request()
        {
            var request = new HttpRequestMessage(new HttpMethod(r.Method), path);
            if (node)
            {
                request.Version = HttpVersion.Version20;
                request.VersionPolicy = HttpVersionPolicy.RequestVersionExact;
            }
            if (r.Method is "POST" or "PUT") request.Content = new StringContent(body, Encoding.UTF8, "application/json");
            if (authorization is not null) request.Headers.TryAddWithoutValidation("Authorization", authorization);
            return request;
        }
        // Callers without a valid credential share their address's rate limit, and a fast machine runs this suite past it:
        // a 429 is a refusal too (checked as one below), and the request is sent again after its Retry-After, as a client
        // would, until the status the route owes that caller comes back.
        HttpResponseMessage response;
        string text;
        for (int attempt = 1; ; attempt++)
        {
            using (HttpRequestMessage request = Request()) response = await http.SendAsync(request);
            text = await response.Content.ReadAsStringAsync();
            if (response.StatusCode != HttpStatusCode.TooManyRequests || expected.Contains(response.StatusCode) || attempt == 10) break;
            Assert.Contains(response.Content.Headers.ContentType?.MediaType, new[] { "application/problem+json", "application/json" }); // /v1/ answers in OpenAI's shape
            _retried++;
            TimeSpan wait = response.Headers.RetryAfter?.Delta ?? TimeSpan.FromSeconds(1);
            response.Dispose();
            await Task.Delay(wait > TimeSpan.FromSeconds(10) ? TimeSpan.FromSeconds(10) : wait);
        }
        using var answered = response;
        Assert.True(expected.Contains(response.StatusCode), $"{r} with {who}: {(int)response.StatusCode} {text}");
        string? media = response.Content.Headers.ContentType?.MediaType;
        if (r.Pattern.StartsWith("/v1/", StringComparison.Ordinal))
        {
            Assert.Equal("application/json", media);
            Assert.Equal(JsonValueKind.String, JsonDocument.Parse(text).RootElement.GetProperty("error").GetProperty("message").ValueKind);
        }
        else
        {
            Assert.True(media == "application/problem+json", $"{r} with {who}: content type {media}");
            Assert.Equal((int)response.StatusCode, JsonDocument.Parse(text).RootElement.GetProperty("status").GetInt32());
        }
        if (response.StatusCode == HttpStatusCode.Unauthorized) Assert.StartsWith("Bearer", response.Headers.WwwAuthenticate.ToString());
    }

    /// <summary>Everything an attack could change: the ledger's chain head and balances, principals and keys, open orders.</summary>
    private static async Task<string> StateAsync(HttpClient op, IReadOnlyList<Party> parties)
    {
        var text = new StringBuilder();
        text.AppendLine((await op.GetFromJsonAsync<JsonElement>("/api/ledger/chain")).GetRawText());
        var principals = (await op.GetFromJsonAsync<JsonElement>("/api/principals?limit=1000")).GetProperty("principals");
        foreach (JsonElement p in principals.EnumerateArray())
        {
            JsonElement detail = await op.GetFromJsonAsync<JsonElement>($"/api/principals/{p.GetProperty("id").GetUInt64()}");
            // Last use changes with every accepted request; what an attack could change is the rest.
            foreach (JsonElement k in detail.GetProperty("keys").EnumerateArray())
                text.Append(k.GetProperty("key_id").GetString()).Append(k.GetProperty("revoked").ValueKind).Append(' ');
            text.AppendLine(detail.GetProperty("principal").GetRawText()).AppendLine(detail.GetProperty("accounts").GetRawText());
        }
        text.AppendLine((await op.GetFromJsonAsync<JsonElement>("/api/exchange/orders?limit=1000")).GetRawText());
        text.AppendLine((await op.GetFromJsonAsync<JsonElement>("/api/operator-actions?limit=1000")).GetRawText());
        return text.ToString();
    }
}
