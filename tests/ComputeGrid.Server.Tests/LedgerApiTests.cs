using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;

namespace ComputeGrid.Server.Tests;

/// <summary>A real server on loopback with a few accounts, shared by the API tests.</summary>
public sealed class LedgerApiFixture : IAsyncLifetime
{
    public string Dir { get; } = TestServer.TempDir("api");
    public WebApplication App { get; private set; } = null!;
    public HttpClient Http { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        (App, Http) = await TestServer.StartInProcessAsync(Dir);
        var r = await Http.PostJsonAsync("/api/ledger/accounts", new object[]
        {
            new { id = "1", asset = 1, code = 1 },
            new { id = "2", asset = 1, code = 1, flags = "DebitsMustNotExceedCredits" },
            new { id = "3", asset = 2, code = 1 },
            new { id = "4", asset = 1, code = 1 },
        });
        Assert.Equal(4, r.GetProperty("ok").GetInt32());
        // Fund account 2 with 1,000 micro-USD from account 1.
        var f = await Http.PostJsonAsync("/api/ledger/transfers", new[] { new { id = "100", debitAccountId = "1", creditAccountId = "2", amount = 1000, asset = 1, code = 1 } });
        Assert.Equal(1, f.GetProperty("ok").GetInt32());
    }

    public async Task DisposeAsync()
    {
        await App.StopAsync();
        await App.DisposeAsync();
        Directory.Delete(Dir, recursive: true);
    }
}

public sealed class LedgerApiTests(LedgerApiFixture f) : IClassFixture<LedgerApiFixture>
{
    private HttpClient Http => f.Http;

    /// <summary>Everything a client can observe of the ledger's balances and counts.</summary>
    private async Task<string> SnapshotAsync()
    {
        var accounts = await Http.PostJsonAsync("/api/ledger/accounts/lookup", new[] { "1", "2", "3", "4" });
        var chain = await Http.GetFromJsonAsync<JsonElement>("/api/ledger/chain");
        return accounts.GetRawText() + chain.GetProperty("transfers").GetInt32() + "/" + chain.GetProperty("accounts").GetInt32();
    }

    public static TheoryData<string, string> RejectedEvents => new()
    {
        { """[{"id":"200","debitAccountId":"1","creditAccountId":"4","amount":-5,"asset":1,"code":1}]""", "AmountMustNotBeNegative" },
        { """[{"id":"201","debitAccountId":"1","creditAccountId":"4","amount":0,"asset":1,"code":1}]""", "AmountMustNotBeZero" },
        { """[{"id":"202","debitAccountId":"77","creditAccountId":"4","amount":5,"asset":1,"code":1}]""", "DebitAccountNotFound" },
        { """[{"id":"203","debitAccountId":"1","creditAccountId":"78","amount":5,"asset":1,"code":1}]""", "CreditAccountNotFound" },
        { """[{"id":"204","debitAccountId":"1","creditAccountId":"3","amount":5,"asset":1,"code":1}]""", "AccountsMustHaveTheSameAsset" },
        { """[{"id":"205","debitAccountId":"1","creditAccountId":"4","amount":5,"asset":2,"code":1}]""", "TransferMustHaveTheSameAssetAsAccounts" },
        { """[{"id":"206","debitAccountId":"2","creditAccountId":"4","amount":1001,"asset":1,"code":1}]""", "ExceedsCredits" },
        { """[{"id":"100","debitAccountId":"1","creditAccountId":"2","amount":999,"asset":1,"code":1}]""", "ExistsWithDifferentAmount" },
        { """[{"id":"100","debitAccountId":"1","creditAccountId":"2","amount":1000,"asset":1,"code":1}]""", "Exists" },
        { """[{"id":"0","debitAccountId":"1","creditAccountId":"4","amount":5,"asset":1,"code":1}]""", "IdMustNotBeZero" },
        { """[{"id":"207","debitAccountId":"1","creditAccountId":"1","amount":5,"asset":1,"code":1}]""", "AccountsMustBeDifferent" },
        { """[{"id":"208","debitAccountId":"1","creditAccountId":"4","amount":5,"asset":1,"code":1,"flags":"Linked"}]""", "LinkedEventChainOpen" },
        { """[{"id":"209","pendingId":"100","flags":"PostPendingTransfer"}]""", "PendingTransferNotPending" },
        { """[{"id":"210","debitAccountId":"4","creditAccountId":"1","amount":9223372036854775807,"asset":1,"code":1,"flags":"Pending, Linked"},{"id":"211","debitAccountId":"4","creditAccountId":"1","amount":1,"asset":1,"code":1,"flags":"Pending"}]""", "OverflowsDebitsPending" },
    };

    [Theory]
    [MemberData(nameof(RejectedEvents))]
    public async Task A_rejected_event_gets_its_result_code_and_changes_nothing(string body, string expected)
    {
        string before = await SnapshotAsync();
        var r = await Http.PostAsync("/api/ledger/transfers", new StringContent(body, Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        var json = await r.Content.ReadFromJsonAsync<JsonElement>();
        var results = json.GetProperty("results").EnumerateArray().ToArray();
        Assert.Equal(expected, results[^1].GetProperty("result").GetString());
        // A linked chain fails whole: the valid first hold is rolled back with it.
        for (int i = 0; i < results.Length - 1; i++) Assert.Equal("LinkedEventFailed", results[i].GetProperty("result").GetString());
        Assert.Equal(before, await SnapshotAsync());
    }

    public static TheoryData<string, string?, int> MalformedRequests => new()
    {
        { "{\"x\":1", "application/json", 400 },                       // truncated JSON
        { "not json at all", "application/json", 400 },
        { "null", "application/json", 400 },
        { "[]", "application/json", 400 },                             // empty batch
        { """[{"id":"1","amount":99999999999999999999}]""", "application/json", 400 }, // amount overflows long
        { """[{"id":"1","amount":"5"}]""", "application/json", 400 },    // amount as a string
        { """[{"id":"1","bogus":true}]""", "application/json", 400 },    // unknown member
        { """[{"id":123456789012345678901234567890}]""", "application/json", 400 }, // id as a huge JSON number
        { """[{"id":"-4"}]""", "application/json", 400 },               // negative id
        { """[{"id":"1"}]""", "text/plain", 415 },
    };

    [Theory]
    [MemberData(nameof(MalformedRequests))]
    public async Task A_malformed_request_gets_problem_json_and_changes_nothing(string body, string? contentType, int status)
    {
        string before = await SnapshotAsync();
        var content = new StringContent(body, Encoding.UTF8);
        content.Headers.ContentType = contentType is null ? null : new System.Net.Http.Headers.MediaTypeHeaderValue(contentType);
        var r = await Http.PostAsync("/api/ledger/transfers", content);
        Assert.Equal(status, (int)r.StatusCode);
        Assert.Equal("application/problem+json", r.Content.Headers.ContentType?.MediaType);
        var problem = await r.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(status, problem.GetProperty("status").GetInt32());
        Assert.False(string.IsNullOrWhiteSpace(problem.GetProperty("detail").GetString()));
        Assert.Equal(before, await SnapshotAsync());
    }

    [Fact]
    public async Task Oversized_bodies_and_batches_are_refused()
    {
        string before = await SnapshotAsync();
        var huge = new StringBuilder("[");
        for (int i = 0; i < 60_000; i++) huge.Append(i == 0 ? "" : ",").Append("""{"id":"9","debitAccountId":"1","creditAccountId":"4","amount":1,"asset":1,"code":1}""");
        huge.Append(']');
        // A well-behaved client sends a large body with Expect: 100-continue, so it hears the 413 before sending it.
        using var request = new HttpRequestMessage(HttpMethod.Post, "/api/ledger/transfers") { Content = new StringContent(huge.ToString(), Encoding.UTF8, "application/json") };
        request.Headers.ExpectContinue = true;
        var r = await Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, r.StatusCode);
        Assert.Equal("application/problem+json", r.Content.Headers.ContentType?.MediaType);

        var tooMany = Enumerable.Range(1, 8191).Select(i => new { id = (1_000_000 + i).ToString(), debitAccountId = "1", creditAccountId = "4", amount = 1, asset = 1, code = 1 });
        var r2 = await Http.PostAsJsonAsync("/api/ledger/transfers", tooMany);
        Assert.Equal(HttpStatusCode.BadRequest, r2.StatusCode);
        Assert.Contains("8190", (await r2.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("detail").GetString());
        Assert.Equal(before, await SnapshotAsync());
    }

    [Fact]
    public async Task Lookups_of_bad_or_unknown_ids_are_4xx_problems()
    {
        var bad = await Http.GetAsync("/api/ledger/accounts/xyz");
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        Assert.Equal("application/problem+json", bad.Content.Headers.ContentType?.MediaType);
        var missing = await Http.GetAsync("/api/ledger/transfers/987654321");
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        Assert.Equal("application/problem+json", missing.Content.Headers.ContentType?.MediaType);
        var limit = await Http.GetAsync("/api/ledger/accounts/1/transfers?limit=0");
        Assert.Equal(HttpStatusCode.BadRequest, limit.StatusCode);
    }

    [Fact]
    public async Task Two_phase_hold_history_and_proof_round_trip()
    {
        var hold = await Http.PostJsonAsync("/api/ledger/transfers", new[] { new { id = "300", debitAccountId = "2", creditAccountId = "4", amount = 400, asset = 1, code = 1, flags = "Pending", timeout = 60 } });
        Assert.Equal(1, hold.GetProperty("ok").GetInt32());
        var a2 = await Http.GetFromJsonAsync<JsonElement>("/api/ledger/accounts/2");
        Assert.Equal(400, a2.GetProperty("debitsPending").GetInt64());
        var post = await Http.PostJsonAsync("/api/ledger/transfers", new[] { new { id = "301", pendingId = "300", amount = 150, flags = "PostPendingTransfer" } });
        Assert.Equal(1, post.GetProperty("ok").GetInt32());
        var t = await Http.GetFromJsonAsync<JsonElement>("/api/ledger/transfers/300");
        Assert.Equal("Posted", t.GetProperty("status").GetString());
        a2 = await Http.GetFromJsonAsync<JsonElement>("/api/ledger/accounts/2");
        Assert.Equal(0, a2.GetProperty("debitsPending").GetInt64());
        Assert.Equal(150, a2.GetProperty("debitsPosted").GetInt64());
        var history = await Http.GetFromJsonAsync<JsonElement>("/api/ledger/accounts/2/transfers?limit=10");
        var ids = history.GetProperty("transfers").EnumerateArray().Select(x => x.GetProperty("id").GetString()).ToArray();
        Assert.Equal(new[] { "301", "300", "100" }, ids); // newest first

        var cp = await Http.PostJsonAsync("/api/ledger/checkpoints", new { });
        var proofJson = await Http.GetStringAsync("/api/ledger/accounts/2/proof");
        var proof = JsonSerializer.Deserialize<ComputeGrid.Ledger.Audit.BalanceProof>(proofJson, ComputeGrid.Ledger.Audit.BalanceProof.Json)!;
        var (ok, message) = proof.Verify(cp.GetProperty("root").GetString()!);
        Assert.True(ok, message);
        Assert.Equal(150, proof.DebitsPosted);
    }

    [Fact]
    public async Task History_pages_follow_next_to_the_end_and_a_before_that_names_no_transfer_of_the_account_is_a_400()
    {
        // Accounts of their own, so the other tests' transfers do not show in this history.
        var accounts = await Http.PostJsonAsync("/api/ledger/accounts", new object[] { new { id = "10", asset = 1, code = 1 }, new { id = "11", asset = 1, code = 1 } });
        Assert.Equal(2, accounts.GetProperty("ok").GetInt32());
        var transfers = Enumerable.Range(410, 5).Select(i => new { id = i.ToString(System.Globalization.CultureInfo.InvariantCulture), debitAccountId = "10", creditAccountId = "11", amount = 1, asset = 1, code = 1 }).ToArray();
        Assert.Equal(5, (await Http.PostJsonAsync("/api/ledger/transfers", transfers)).GetProperty("ok").GetInt32());

        var pages = new List<string[]>();
        string url = "/api/ledger/accounts/10/transfers?limit=2";
        long? next = null;
        while (true)
        {
            var page = await Http.GetFromJsonAsync<JsonElement>(url);
            pages.Add(page.GetProperty("transfers").EnumerateArray().Select(x => x.GetProperty("id").GetString()!).ToArray());
            var n = page.GetProperty("next");
            if (n.ValueKind == JsonValueKind.Null) break;
            next = n.GetInt64();
            url = $"/api/ledger/accounts/10/transfers?limit=2&before={next}";
        }
        Assert.Equal(new[] { new[] { "414", "413" }, ["412", "411"], ["410"] }, pages);

        Assert.NotNull(next);

        // A before that names another account's transfer, or no transfer at all, is refused, not searched for.
        long foreign = (await Http.GetFromJsonAsync<JsonElement>("/api/ledger/transfers/100")).GetProperty("timestamp").GetInt64();
        foreach (long before in new[] { foreign, 1 })
        {
            var bad = await Http.GetAsync($"/api/ledger/accounts/10/transfers?limit=2&before={before}");
            Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
            Assert.Equal("application/problem+json", bad.Content.Headers.ContentType?.MediaType);
        }
    }
}
