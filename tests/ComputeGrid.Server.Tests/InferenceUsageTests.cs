using System.Globalization;
using System.Net;
using System.Text.Json;
using ComputeGrid.Server.Inference;

namespace ComputeGrid.Server.Tests;

/// <summary>
/// <c>GET /api/inference/usage</c> against a real server with local nodes running the real model: each request's
/// receipt (transfer id, node, tokens, cost) read back from the ledger, per day and in total, paged; a customer's own
/// only (another's refused as if it had none), an operator's anyone's; bad parameters 400 problem+json; the same after a
/// restart (the ledger is the record, nothing is kept in memory).
/// </summary>
public sealed class InferenceUsageTests
{
    private static readonly InferenceServerOptions Options = new()
    {
        LocalNodes = [new("fra-1", "frankfurt", 18, 8), new("dal-1", "dallas", 20, 8)],
    };

    private static object Body(string input) => new { model = MoneyServer.Model, input };

    private sealed record Receipt(string TransferId, string Node, int Tokens, long Cost);

    private static async Task<Receipt> EmbedAsync(MoneyServer server, Party c, string text)
    {
        HttpResponseMessage r = await server.EmbedAsync(c.Key, Body(text));
        await MoneyServer.AssertStatusAsync(HttpStatusCode.OK, r);
        string H(string name) => r.Headers.GetValues(name).Single();
        return new Receipt(H("X-CG-Transfer-Id"), H("X-CG-Node"), int.Parse(H("X-CG-Tokens"), CultureInfo.InvariantCulture),
            long.Parse(H("X-CG-Cost-Micro-Usd"), CultureInfo.InvariantCulture));
    }

    private static async Task<JsonElement> UsageAsync(HttpClient http, string query)
    {
        HttpResponseMessage r = await http.GetAsync("/api/inference/usage" + query);
        Assert.True(r.StatusCode == HttpStatusCode.OK, $"{(int)r.StatusCode}: {await r.Content.ReadAsStringAsync()}");
        return JsonDocument.Parse(await r.Content.ReadAsStringAsync()).RootElement.Clone();
    }

    private static HttpClient As(MoneyServer server, Party p) => TestServer.Client(server.Http.BaseAddress!.ToString(), p.Key);

    [Fact]
    public async Task A_customer_reads_its_own_requests_with_their_receipts_per_day_and_paged_and_the_same_after_a_restart()
    {
        await using MoneyServer server = await MoneyServer.StartAsync("usage-own", Options);
        Party alice = await server.CustomerAsync("frankfurt", 10_000_000);
        Party bob = await server.CustomerAsync("dallas", 10_000_000);
        var receipts = new List<Receipt>();
        for (int i = 0; i < 5; i++) receipts.Add(await EmbedAsync(server, alice, $"alice asks question number {i} about the usage page"));
        Receipt bobs = await EmbedAsync(server, bob, "bob's one request");
        await server.Host.Gateway.Settler.IdleAsync(); // charged in the background right after each answer

        using HttpClient a = As(server, alice);
        JsonElement all = await UsageAsync(a, "");
        Assert.Equal((long)alice.Id, all.GetProperty("customer").GetInt64());
        Assert.True(all.GetProperty("complete").GetBoolean());
        JsonElement[] requests = all.GetProperty("requests").EnumerateArray().ToArray();
        // Newest first, each one the receipt the client got.
        Assert.Equal(receipts.AsEnumerable().Reverse().Select(r => r.TransferId), requests.Select(r => r.GetProperty("transfer_id").GetString()));
        for (int i = 0; i < 5; i++)
        {
            Receipt expected = receipts[4 - i];
            Assert.Equal(expected.Node, requests[i].GetProperty("node_id").GetString());
            Assert.Equal(expected.Tokens, requests[i].GetProperty("tokens").GetInt32());
            Assert.Equal(expected.Cost, requests[i].GetProperty("cost_micro_usd").GetInt64());
            Assert.Equal(server.FeeOf(expected.Cost), requests[i].GetProperty("fee_micro_usd").GetInt64());
            Assert.Equal("key", requests[i].GetProperty("paid_by").GetString());
            Assert.Equal(MoneyServer.Model, requests[i].GetProperty("model").GetString());
            Assert.Equal((long)alice.Id, requests[i].GetProperty("customer").GetInt64());
        }
        Assert.DoesNotContain(bobs.TransferId, requests.Select(r => r.GetProperty("transfer_id").GetString()));
        // One day (the test runs on today's clock), its figures the receipts' sums; the totals the same.
        JsonElement day = Assert.Single(all.GetProperty("days").EnumerateArray());
        Assert.Equal(5, day.GetProperty("requests").GetInt64());
        Assert.Equal(receipts.Sum(r => (long)r.Tokens), day.GetProperty("tokens").GetInt64());
        Assert.Equal(receipts.Sum(r => r.Cost), day.GetProperty("spend_micro_usd").GetInt64());
        Assert.Equal(receipts.Sum(r => r.Cost), all.GetProperty("totals").GetProperty("spend_micro_usd").GetInt64());
        Assert.Equal(10_000_000 - receipts.Sum(r => r.Cost), (await server.AccountAsync(alice.Id)).Available);

        // Pages of two: 2 + 2 + 1, the same requests in the same order, and no days past the first page.
        var paged = new List<string>();
        string query = $"?limit=2&from={Uri.EscapeDataString(all.GetProperty("from").GetString()!)}&to={Uri.EscapeDataString(all.GetProperty("to").GetString()!)}";
        JsonElement page = await UsageAsync(a, query);
        Assert.Equal(JsonValueKind.Array, page.GetProperty("days").ValueKind);
        int pages = 1;
        while (true)
        {
            paged.AddRange(page.GetProperty("requests").EnumerateArray().Select(r => r.GetProperty("transfer_id").GetString()!));
            if (page.GetProperty("next").ValueKind == JsonValueKind.Null) break;
            page = await UsageAsync(a, query + "&after=" + Uri.EscapeDataString(page.GetProperty("next").GetString()!));
            Assert.Equal(JsonValueKind.Null, page.GetProperty("days").ValueKind);
            pages++;
        }
        Assert.Equal(3, pages);
        Assert.Equal(requests.Select(r => r.GetProperty("transfer_id").GetString()), paged);

        // The ledger is the record: after a restart the same answer.
        await server.RestartAsync(Options);
        using HttpClient again = TestServer.Client(server.Http.BaseAddress!.ToString(), alice.Key);
        JsonElement afterRestart = await UsageAsync(again, query.Replace("limit=2", "limit=10", StringComparison.Ordinal));
        Assert.Equal(requests.Select(r => r.GetRawText()), afterRestart.GetProperty("requests").EnumerateArray().Select(r => r.GetRawText()));
        Assert.Equal(all.GetProperty("days").GetRawText(), afterRestart.GetProperty("days").GetRawText());
    }

    [Fact]
    public async Task Nobody_reads_another_customers_usage_and_an_operator_reads_anyones_or_everyones()
    {
        await using MoneyServer server = await MoneyServer.StartAsync("usage-owner", Options);
        Party alice = await server.CustomerAsync("frankfurt", 10_000_000);
        Party bob = await server.CustomerAsync("dallas", 10_000_000);
        Receipt alices = await EmbedAsync(server, alice, "alice's request");
        Receipt bobs = await EmbedAsync(server, bob, "bob's request");
        await server.Host.Gateway.Settler.IdleAsync();

        using HttpClient a = As(server, alice);
        HttpResponseMessage refused = await a.GetAsync($"/api/inference/usage?customer={bob.Id}");
        Assert.Equal(HttpStatusCode.NotFound, refused.StatusCode);
        Assert.Equal("application/problem+json", refused.Content.Headers.ContentType?.MediaType);
        Assert.DoesNotContain(bobs.TransferId, await refused.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        // Naming itself is fine.
        JsonElement own = await UsageAsync(a, $"?customer={alice.Id}");
        Assert.Equal(alices.TransferId, Assert.Single(own.GetProperty("requests").EnumerateArray()).GetProperty("transfer_id").GetString());

        JsonElement bobsByOperator = await UsageAsync(server.Operator, $"?customer={bob.Id}");
        Assert.Equal(bobs.TransferId, Assert.Single(bobsByOperator.GetProperty("requests").EnumerateArray()).GetProperty("transfer_id").GetString());
        JsonElement everyone = await UsageAsync(server.Operator, "");
        Assert.Equal(JsonValueKind.Null, everyone.GetProperty("customer").ValueKind);
        Assert.Equal(new[] { bobs.TransferId, alices.TransferId }, everyone.GetProperty("requests").EnumerateArray().Select(r => r.GetProperty("transfer_id").GetString()!).ToArray());
        Assert.Equal(alices.Cost + bobs.Cost, everyone.GetProperty("totals").GetProperty("spend_micro_usd").GetInt64());

        // A customer that never paid for anything has no usage (its account may not even exist).
        Party carol = await server.CustomerAsync("tokyo", 0);
        using HttpClient c = As(server, carol);
        JsonElement none = await UsageAsync(c, "");
        Assert.Empty(none.GetProperty("requests").EnumerateArray());
        Assert.Equal(0, none.GetProperty("totals").GetProperty("requests").GetInt64());

        using HttpClient anonymous = TestServer.Client(server.Http.BaseAddress!.ToString(), null);
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync("/api/inference/usage")).StatusCode);
    }

    [Fact]
    public async Task Bad_parameters_are_each_a_400_problem()
    {
        await using MoneyServer server = await MoneyServer.StartAsync("usage-bad", Options);
        Party alice = await server.CustomerAsync("frankfurt", 10_000_000);
        await EmbedAsync(server, alice, "one request, so the account has a history a bad cursor can miss");
        await server.Host.Gateway.Settler.IdleAsync();
        using HttpClient a = As(server, alice);
        static string T(DateTimeOffset t) => Uri.EscapeDataString(t.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture));
        DateTimeOffset now = DateTimeOffset.UtcNow;
        string range = $"from={T(now.AddDays(-1))}&to={T(now.AddHours(1))}";
        string[] bad =
        [
            "?limit=0", "?limit=501", "?limit=ten", "?from=yesterday", "?customer=0",
            $"?from={T(now)}&to={T(now.AddDays(-1))}", // reversed
            $"?from={T(now.AddDays(-100))}&to={T(now)}", // longer than 93 days
            $"?{range}&after={T(now.AddMinutes(-30))}", // inside the range, but no transfer of the account's
            $"?{range}&after={T(now.AddDays(2))}", // outside the range
        ];
        foreach (string query in bad)
        {
            HttpResponseMessage r = await a.GetAsync("/api/inference/usage" + query);
            Assert.True(r.StatusCode == HttpStatusCode.BadRequest, $"{query}: {(int)r.StatusCode} {await r.Content.ReadAsStringAsync()}");
            Assert.Equal("application/problem+json", r.Content.Headers.ContentType?.MediaType);
        }
    }

    [Fact]
    public void The_usage_limits_agree_with_each_other_and_the_ledger()
    {
        Assert.InRange(UsageLimits.PageDefault, 1, UsageLimits.PageMax);
        Assert.InRange(UsageLimits.LedgerPage, 1, ComputeGrid.Ledger.LedgerLimits.HistoryLimitMax);
        Assert.True(UsageLimits.ScanTransfersMax >= UsageLimits.LedgerPage);
        Assert.True(UsageLimits.RangeDefault <= UsageLimits.RangeMax);
    }
}
