using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using ComputeGrid.Core;
using ComputeGrid.Inference.Nodes;
using ComputeGrid.Ledger;
using Microsoft.AspNetCore.Builder;

namespace ComputeGrid.Server.Tests;

/// <summary>A server with both ports, two funded customers, a provider with an admitted, listed node, and a resting order of bob's.</summary>
public sealed class AttackFixture : IAsyncLifetime
{
    public string Dir { get; } = TestServer.TempDir("attacks");
    public WebApplication App { get; private set; } = null!;
    public HttpClient Operator { get; private set; } = null!;
    public Party Alice { get; private set; } = null!;
    public Party Bob { get; private set; } = null!;
    public Party Provider { get; private set; } = null!;
    public string Symbol { get; private set; } = "";
    public long BobOrder { get; private set; }
    public string NodeUrl => ServerHost.Endpoints(App).NodeUrl;
    public string ApiUrl => ServerHost.Endpoints(App).ApiUrl;
    public byte[] NodePrivateKey { get; private set; } = [];

    public async Task InitializeAsync()
    {
        (App, Operator) = await TestServer.StartInProcessAsync(Dir, nodeUrls: "http://127.0.0.1:0");
        Alice = await TestServer.NewCustomerAsync(Operator, "alice", fundMicroUsd: 5_000_000);
        Bob = await TestServer.NewCustomerAsync(Operator, "bob", fundMicroUsd: 7_000_000);
        await TestServer.DepositAsync(Bob, 2_000_000); // Bob's buy below is held from his trading account
        Provider = await TestServer.NewProviderAsync(Operator, "acme", collateralMicroUsd: 3_000_000);
        NodePrivateKey = await TestServer.AdmitNodeAsync(Operator, Provider.Id, "acme-1");
        var listed = await Provider.Http.PostAsJsonAsync("/api/exchange/nodes", new { node_id = "acme-1", gpu = "H200", region = "tokyo", gpus = 4 }, TestServer.Json);
        Assert.Equal(HttpStatusCode.Created, listed.StatusCode);
        Symbol = (await Operator.GetFromJsonAsync<JsonElement>("/api/exchange/instruments?gpu=H200&region=tokyo&kind=H&limit=3"))
            .GetProperty("instruments")[2].GetProperty("symbol").GetString()!;
        BobOrder = (await Bob.Http.PostJsonAsync("/api/exchange/orders", new { instrument = Symbol, side = "buy", price = 1_000_000, quantity = 1 })).GetProperty("order_id").GetInt64();
    }

    public async Task DisposeAsync()
    {
        await App.StopAsync();
        await App.DisposeAsync();
        Directory.Delete(Dir, recursive: true);
    }
}

/// <summary>
/// The attacks the trust boundary was drawn against, each tried for real and refused with the state unchanged:
/// minting from the treasury, draining another customer, binding a victim's account as trader or collateral,
/// cancelling another's order, taking over a node with its published key, a cross-site simple POST, a foreign Host.
/// </summary>
public sealed class AttackTests(AttackFixture f) : IClassFixture<AttackFixture>
{
    private static readonly UInt128 Treasury = ChartOfAccounts.SystemAccount(AccountCode.Treasury, Asset.Usd);

    private async Task<string> BalancesAsync()
    {
        var accounts = await f.Operator.PostJsonAsync("/api/ledger/accounts/lookup", new[] { Treasury.ToString(), f.Alice.Account.ToString(), f.Bob.Account.ToString() });
        var chain = await f.Operator.GetFromJsonAsync<JsonElement>("/api/ledger/chain");
        return accounts.GetRawText() + chain.GetRawText();
    }

    private static string Mint(UInt128 to) =>
        $$"""[{"id":"9001","debit_account_id":"{{Treasury}}","credit_account_id":"{{to}}","amount":1000000000000,"asset":"USDC","code":1}]""";

    [Fact]
    public async Task Minting_from_the_treasury_is_refused_without_a_credential_with_a_customer_key_and_even_through_the_operators_raw_api()
    {
        string before = await BalancesAsync();
        using var anonymous = TestServer.Client(f.ApiUrl, null);
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.SendJsonAsync(HttpMethod.Post, "/api/ledger/transfers", Mint(f.Alice.Account))).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await f.Alice.Http.SendJsonAsync(HttpMethod.Post, "/api/ledger/transfers", Mint(f.Alice.Account))).StatusCode);
        // The raw API works in the client space only: the treasury and customer balances are out of its reach.
        var r = await f.Operator.SendJsonAsync(HttpMethod.Post, "/api/ledger/transfers", Mint(f.Alice.Account));
        Assert.Equal(HttpStatusCode.UnprocessableEntity, r.StatusCode);
        Assert.Contains("reserved", (await r.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("detail").GetString());
        Assert.Equal(before, await BalancesAsync());
        Assert.Equal(5_000_000, (await f.Alice.Http.GetFromJsonAsync<JsonElement>("/api/inference/account")).GetProperty("available").GetInt64());
    }

    [Fact]
    public async Task A_customer_cannot_drain_another_customer_nor_name_an_account_in_a_paid_request()
    {
        string before = await BalancesAsync();
        string drain = $$"""[{"id":"9002","debit_account_id":"{{f.Bob.Account}}","credit_account_id":"{{f.Alice.Account}}","amount":7000000,"asset":"USDC","code":1}]""";
        Assert.Equal(HttpStatusCode.Forbidden, (await f.Alice.Http.SendJsonAsync(HttpMethod.Post, "/api/ledger/transfers", drain)).StatusCode);
        // The paid API takes the payer from the key: an account member is an unknown member, refused before anything runs.
        var paid = await f.Alice.Http.SendJsonAsync(HttpMethod.Post, "/v1/embeddings", $$"""{"model":"all-MiniLM-L6-v2","input":"hi","account":"{{f.Bob.Account}}"}""");
        Assert.Equal(HttpStatusCode.BadRequest, paid.StatusCode);
        Assert.Contains("account", (await paid.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error").GetProperty("message").GetString());
        // Reading bob's account, history or proof with alice's key: as if they did not exist.
        foreach (string path in new[] { $"/api/ledger/accounts/{f.Bob.Account}", $"/api/ledger/accounts/{f.Bob.Account}/transfers", $"/api/ledger/accounts/{f.Bob.Account}/proof" })
            Assert.Equal(HttpStatusCode.NotFound, (await f.Alice.Http.GetAsync(path)).StatusCode);
        Assert.Equal(before, await BalancesAsync());
    }

    [Fact]
    public async Task Nobody_binds_a_victims_account_as_trader_or_collateral_the_trader_is_the_credential()
    {
        Party other = await TestServer.NewProviderAsync(f.Operator, "rival");
        string before = await BalancesAsync();
        // The old registration endpoints are gone, and an order that names an owner or an account is malformed.
        Assert.Equal(HttpStatusCode.NotFound, (await f.Alice.Http.SendJsonAsync(HttpMethod.Post, "/api/exchange/traders", $$"""{"owner":1,"account":"{{f.Bob.Account}}"}""")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await f.Alice.Http.SendJsonAsync(HttpMethod.Post, "/api/exchange/providers", "{}")).StatusCode);
        var order = await f.Alice.Http.SendJsonAsync(HttpMethod.Post, "/api/exchange/orders",
            $$"""{"owner":{{f.Bob.Id}},"instrument":"{{f.Symbol}}","side":"buy","price":1000000,"quantity":1}""");
        Assert.Equal(HttpStatusCode.BadRequest, order.StatusCode);
        // A customer cannot list capacity (providers do), and a provider only for a node admitted for it.
        var capacity = await other.Http.PostAsJsonAsync("/api/exchange/nodes", new { node_id = "acme-1", gpu = "H200", region = "tokyo", gpus = 4 }, TestServer.Json);
        Assert.Equal(HttpStatusCode.NotFound, capacity.StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await f.Alice.Http.PostAsJsonAsync("/api/exchange/nodes", new { node_id = "acme-1", gpu = "H200", region = "tokyo", gpus = 4 }, TestServer.Json)).StatusCode);
        // The rival provider cannot report the victim's node down (which would make the victim pay penalties): outages
        // come from the node itself, signed, or from an operator.
        long node = (await f.Provider.Http.GetFromJsonAsync<JsonElement>("/api/exchange/nodes")).GetProperty("nodes")[0].GetProperty("id").GetInt64();
        Assert.Equal(HttpStatusCode.Forbidden, (await other.Http.PostAsync($"/api/exchange/nodes/{node}/outage", null)).StatusCode);
        Assert.Equal(JsonValueKind.Null, (await f.Provider.Http.GetFromJsonAsync<JsonElement>($"/api/exchange/nodes/{node}")).GetProperty("down_since").ValueKind);
        Assert.Equal(before, await BalancesAsync());
    }

    [Fact]
    public async Task A_customer_cannot_cancel_replace_or_see_another_customers_order()
    {
        Assert.Equal(HttpStatusCode.NotFound, (await f.Alice.Http.DeleteAsync($"/api/exchange/orders/{f.BobOrder}")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await f.Alice.Http.SendJsonAsync(HttpMethod.Put, $"/api/exchange/orders/{f.BobOrder}", """{"price":1100000,"quantity":1}""")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await f.Alice.Http.GetAsync($"/api/exchange/orders?owner={f.Bob.Id}")).StatusCode);
        var mine = await f.Alice.Http.GetFromJsonAsync<JsonElement>("/api/exchange/orders");
        Assert.DoesNotContain(mine.GetProperty("orders").EnumerateArray(), o => o.GetProperty("order_id").GetInt64() == f.BobOrder);
        var bobs = await f.Bob.Http.GetFromJsonAsync<JsonElement>("/api/exchange/orders");
        Assert.Contains(bobs.GetProperty("orders").EnumerateArray(), o => o.GetProperty("order_id").GetInt64() == f.BobOrder && o.GetProperty("price").GetInt64() == 1_000_000);
    }

    [Fact]
    public async Task A_node_cannot_be_taken_over_with_its_published_public_key()
    {
        // The node registers for real first (its key is then public: it is in the node list and its telemetry).
        string token = await TestServer.RegisterNodeAsync(f.NodeUrl, "acme-1", f.NodePrivateKey, region: "tokyo");
        byte[] published = NodeSigning.PublicKeyOf(f.NodePrivateKey);
        using var node = TestServer.NodeClient(f.NodeUrl);
        JsonElement challenge = await node.PostJsonAsync("/node/v1/challenge", new { node_id = "acme-1" });
        string nonce = challenge.GetProperty("nonce").GetString()!;
        // The attacker knows the public key but not the private one: whatever it signs with, the server refuses.
        byte[] forged = NodeSigning.SignBytes(NodeSigning.SessionMessage("acme-1", nonce, "tokyo", ["all-MiniLM-L6-v2"], 1, 4), NodeSigning.NewKeyPair().PrivateKey);
        var r = await node.PostAsJsonAsync("/node/v1/sessions", new
        {
            node_id = "acme-1", nonce, region = "tokyo", models = new[] { "all-MiniLM-L6-v2" }, price_micro_usd_per_1k_tokens = 1, capacity = 4,
            signature = Convert.ToBase64String(forged), public_key = Convert.ToBase64String(published),
        }, TestServer.Json);
        Assert.True(r.StatusCode is HttpStatusCode.Unauthorized or HttpStatusCode.BadRequest, $"{(int)r.StatusCode}");
        // Without the extra member, the forged signature itself is refused, and the nonce is used up.
        r = await node.PostAsJsonAsync("/node/v1/sessions", new
        {
            node_id = "acme-1", nonce, region = "tokyo", models = new[] { "all-MiniLM-L6-v2" }, price_micro_usd_per_1k_tokens = 1, capacity = 4,
            signature = Convert.ToBase64String(forged),
        }, TestServer.Json);
        Assert.Equal(HttpStatusCode.Unauthorized, r.StatusCode);
        // The real node's session still stands, and nothing about the node changed (its price is still its own).
        using var session = TestServer.NodeClient(f.NodeUrl, token);
        var beat = await session.PostAsJsonAsync("/node/v1/heartbeat", NodeSigning.Sign(Telemetry(1), f.NodePrivateKey));
        Assert.Equal(HttpStatusCode.NoContent, beat.StatusCode);
        var nodes = await TestServer.Client(f.ApiUrl, null).GetFromJsonAsync<JsonElement>("/api/inference/nodes");
        Assert.Equal(20, nodes.GetProperty("nodes").EnumerateArray().Single(n => n.GetProperty("id").GetString() == "acme-1").GetProperty("price_micro_usd_per_1k_tokens").GetInt64());
    }

    private static NodeTelemetry Telemetry(long seq) => new()
    {
        NodeId = "acme-1", Sequence = seq, At = DateTimeOffset.UtcNow, UptimeSeconds = 1, Utilization = 0, Requests = 0, Tokens = 0, Inflight = 0, Queue = 0,
        EwmaModelMs = 5, PowerWatts = 10, PowerSource = "modeled",
    };

    [Fact]
    public async Task A_post_without_a_json_content_type_is_refused_before_anything_reads_it()
    {
        string before = await BalancesAsync();
        string body = """[{"id":"1","asset":"USDC","code":1}]""";
        // A page's form or fetch without a preflight can send text/plain or no type at all: both are refused.
        foreach (string? type in new[] { "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", null })
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/api/ledger/accounts") { Content = new ByteArrayContent(Encoding.UTF8.GetBytes(body)) };
            if (type is not null) request.Content.Headers.TryAddWithoutValidation("Content-Type", type);
            var r = await f.Operator.SendAsync(request);
            Assert.Equal(HttpStatusCode.UnsupportedMediaType, r.StatusCode);
            Assert.Equal("application/problem+json", r.Content.Headers.ContentType?.MediaType);
        }
        Assert.Equal(before, await BalancesAsync());
    }

    [Fact]
    public async Task A_foreign_host_is_refused_so_dns_rebinding_reaches_nothing()
    {
        foreach (string host in new[] { "evil.example", "127.0.0.1.nip.io", "localhost.attacker.com" })
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, "/api/me");
            request.Headers.Host = host;
            request.Headers.Authorization = new("Bearer", f.Alice.Key);
            var r = await f.Alice.Http.SendAsync(request);
            Assert.Equal(HttpStatusCode.BadRequest, r.StatusCode);
            Assert.Contains("host", (await r.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("detail").GetString(), StringComparison.OrdinalIgnoreCase);
        }
        foreach (string host in new[] { "127.0.0.1", "localhost" })
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, "/healthz");
            request.Headers.Host = host;
            Assert.Equal(HttpStatusCode.OK, (await f.Alice.Http.SendAsync(request)).StatusCode);
        }
    }

    [Fact]
    public async Task No_cors_headers_are_sent_unless_origins_are_configured()
    {
        using var preflight = new HttpRequestMessage(HttpMethod.Options, "/api/ledger/transfers");
        preflight.Headers.Add("Origin", "https://evil.example");
        preflight.Headers.Add("Access-Control-Request-Method", "POST");
        preflight.Headers.Add("Access-Control-Request-Headers", "authorization, content-type");
        var r = await f.Alice.Http.SendAsync(preflight);
        Assert.False(r.Headers.Contains("Access-Control-Allow-Origin"));
        Assert.NotEqual(HttpStatusCode.NoContent, r.StatusCode);
    }
}
