using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using ComputeGrid.Server.Inference;
using ComputeGrid.Server.Trust;
using Microsoft.AspNetCore.Builder;

namespace ComputeGrid.Server.Tests;

/// <summary>
/// Limits per principal: rate limits and quotas refuse with 429 problem+json and <c>Retry-After</c>, change nothing,
/// and leave every other principal served. Each test runs its own server with small limits.
/// </summary>
public sealed class LimitsTests : IAsyncLifetime
{
    private readonly string _dir = TestServer.TempDir("limits");
    private WebApplication? _app;

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        if (_app is not null)
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }
        Directory.Delete(_dir, recursive: true);
    }

    private async Task<HttpClient> StartAsync(ServerLimits limits, InferenceServerOptions? inference = null)
    {
        (_app, HttpClient op) = await TestServer.StartInProcessAsync(_dir, limits: limits, inference: inference);
        return op;
    }

    private static async Task AssertTooManyAsync(HttpResponseMessage r)
    {
        Assert.Equal(HttpStatusCode.TooManyRequests, r.StatusCode);
        Assert.True(r.Headers.RetryAfter?.Delta is { TotalSeconds: >= 1 }, $"Retry-After: {r.Headers.RetryAfter}");
        var body = await r.Content.ReadFromJsonAsync<JsonElement>();
        if (r.Content.Headers.ContentType?.MediaType == "application/problem+json") Assert.Equal(429, body.GetProperty("status").GetInt32());
        else Assert.Equal("rate_limit_error", body.GetProperty("error").GetProperty("type").GetString());
    }

    [Fact]
    public async Task A_customer_past_its_rate_limit_gets_429_with_retry_after_while_another_customer_is_served()
    {
        HttpClient op = await StartAsync(new ServerLimits { Customer = new RateLimit(1, 3) });
        Party alice = await TestServer.NewCustomerAsync(op, "alice");
        Party bob = await TestServer.NewCustomerAsync(op, "bob");
        for (int i = 0; i < 3; i++) Assert.Equal(HttpStatusCode.OK, (await alice.Http.GetAsync("/api/me")).StatusCode);
        await AssertTooManyAsync(await alice.Http.GetAsync("/api/me"));
        // The paid API answers in OpenAI's shape, rate limit included.
        await AssertTooManyAsync(await alice.Http.PostAsJsonAsync("/v1/embeddings", new { model = "all-MiniLM-L6-v2", input = "hi" }));
        Assert.Equal(HttpStatusCode.OK, (await bob.Http.GetAsync("/api/me")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await op.GetAsync("/api/principals")).StatusCode);
    }

    [Fact]
    public async Task Anonymous_callers_are_limited_per_address_and_a_key_on_a_public_route_is_held_to_its_own_limit()
    {
        HttpClient op = await StartAsync(new ServerLimits { Anonymous = new RateLimit(1, 2) });
        Party alice = await TestServer.NewCustomerAsync(op, "alice");
        using var anonymous = TestServer.Client(op.BaseAddress!.ToString(), null);
        for (int i = 0; i < 2; i++) Assert.Equal(HttpStatusCode.OK, (await anonymous.GetAsync("/api/exchange/index")).StatusCode);
        await AssertTooManyAsync(await anonymous.GetAsync("/api/exchange/index"));
        // The same address, with a key: the customer's own bucket.
        for (int i = 0; i < 5; i++) Assert.Equal(HttpStatusCode.OK, (await alice.Http.GetAsync("/api/exchange/index")).StatusCode);
    }

    [Fact]
    public async Task A_trader_at_its_open_order_quota_gets_429_and_its_order_is_not_placed()
    {
        HttpClient op = await StartAsync(new ServerLimits { OpenOrdersPerTraderMax = 2 });
        var seed = await TestServer.SeedExchangeAsync(op);
        string symbol = (await op.GetFromJsonAsync<JsonElement>("/api/exchange/instruments?gpu=H100&region=frankfurt&kind=H&limit=3"))
            .GetProperty("instruments")[2].GetProperty("symbol").GetString()!;
        for (int i = 0; i < 2; i++) await seed.Buyer.Http.PostJsonAsync("/api/exchange/orders", new { instrument = symbol, side = "buy", price = 1_000_000 + i * 10_000, quantity = 1 });
        long before = (await seed.Buyer.Http.GetFromJsonAsync<JsonElement>("/api/inference/account")).GetProperty("available").GetInt64();
        await AssertTooManyAsync(await seed.Buyer.Http.PostAsJsonAsync("/api/exchange/orders", new { instrument = symbol, side = "buy", price = 1_200_000, quantity = 1 }, TestServer.Json));
        Assert.Equal(2, (await seed.Buyer.Http.GetFromJsonAsync<JsonElement>("/api/exchange/orders")).GetProperty("orders").GetArrayLength());
        Assert.Equal(before, (await seed.Buyer.Http.GetFromJsonAsync<JsonElement>("/api/inference/account")).GetProperty("available").GetInt64());
        // Another trader is not held to the first one's count.
        await seed.Poor.Http.PostJsonAsync("/api/exchange/orders", new { instrument = symbol, side = "buy", price = 1_000_000, quantity = 1 });
    }

    [Fact]
    public async Task A_principal_at_its_key_quota_gets_429_and_can_rotate_a_key_but_not_add_one()
    {
        HttpClient op = await StartAsync(new ServerLimits { KeysPerPrincipalMax = 2 });
        Party alice = await TestServer.NewCustomerAsync(op, "alice");
        JsonElement second = await alice.Http.PostJsonAsync("/api/keys", new { name = "laptop" });
        await AssertTooManyAsync(await alice.Http.PostAsJsonAsync("/api/keys", new { name = "ci" }, TestServer.Json));
        Assert.Equal(2, (await alice.Http.GetFromJsonAsync<JsonElement>("/api/keys")).GetProperty("keys").GetArrayLength());
        // Rotation replaces a key within the quota; the rotated key stops working at once.
        string laptopId = second.GetProperty("key").GetProperty("key_id").GetString()!;
        JsonElement rotated = await alice.Http.PostJsonAsync($"/api/keys/{laptopId}/rotate", new { });
        using var old = TestServer.Client(alice.Http.BaseAddress!.ToString(), second.GetProperty("api_key").GetString());
        Assert.Equal(HttpStatusCode.Unauthorized, (await old.GetAsync("/api/me")).StatusCode);
        using var fresh = TestServer.Client(alice.Http.BaseAddress!.ToString(), rotated.GetProperty("api_key").GetString());
        Assert.Equal(HttpStatusCode.OK, (await fresh.GetAsync("/api/me")).StatusCode);
    }

    [Fact]
    public async Task Live_feed_subscribers_past_the_per_caller_quota_get_429_before_the_stream_opens()
    {
        HttpClient op = await StartAsync(new ServerLimits { FeedSubscribersPerPrincipalMax = 1 });
        using var anonymous = TestServer.Client(op.BaseAddress!.ToString(), null);
        using var first = await anonymous.GetAsync("/api/exchange/stream", HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        await AssertTooManyAsync(await anonymous.GetAsync("/api/exchange/stream", HttpCompletionOption.ResponseHeadersRead));
        // A customer is its own principal: it still gets a stream.
        Party alice = await TestServer.NewCustomerAsync(op, "alice");
        using var hers = await alice.Http.GetAsync("/api/exchange/stream", HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, hers.StatusCode);
    }

    [Fact]
    public async Task Idempotency_entries_past_a_customers_quota_get_429_and_nothing_is_charged()
    {
        HttpClient op = await StartAsync(new ServerLimits { IdempotencyEntriesPerCustomerMax = 1 },
            new InferenceServerOptions { LocalNodes = [new LocalNodeSpec("limits-1", "frankfurt", 20, 4)] });
        Party alice = await TestServer.NewCustomerAsync(op, "alice", fundMicroUsd: 1_000_000);
        Party bob = await TestServer.NewCustomerAsync(op, "bob", fundMicroUsd: 1_000_000);
        for (int i = 0; i < 200 && (await op.GetFromJsonAsync<JsonElement>("/api/inference/nodes")).GetProperty("nodes").GetArrayLength() == 0; i++) await Task.Delay(25);
        async Task<HttpResponseMessage> EmbedAsync(Party who, string key)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/embeddings") { Content = JsonContent.Create(new { model = "all-MiniLM-L6-v2", input = "a quota test" }) };
            request.Headers.Add("Idempotency-Key", key);
            return await who.Http.SendAsync(request);
        }
        Assert.Equal(HttpStatusCode.OK, (await EmbedAsync(alice, "k1")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await EmbedAsync(alice, "k1")).StatusCode); // a replay of a remembered key is no new entry
        long charged = 1_000_000 - (await alice.Http.GetFromJsonAsync<JsonElement>("/api/inference/account")).GetProperty("available").GetInt64();
        await AssertTooManyAsync(await EmbedAsync(alice, "k2"));
        Assert.Equal(1_000_000 - charged, (await alice.Http.GetFromJsonAsync<JsonElement>("/api/inference/account")).GetProperty("available").GetInt64());
        Assert.Equal(HttpStatusCode.OK, (await EmbedAsync(bob, "k2")).StatusCode);
    }
}
