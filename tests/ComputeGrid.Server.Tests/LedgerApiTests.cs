using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using ComputeGrid.Core;
using ComputeGrid.Ledger;
using ComputeGrid.Ledger.Audit;
using ComputeGrid.Server.Trust;
using Microsoft.AspNetCore.Builder;

namespace ComputeGrid.Server.Tests;

/// <summary>
/// A real server on loopback with a few client-space accounts made by the operator through the raw ledger API, and
/// two customers (alice, bob) made and funded through the operators' API. Shared by the ledger API tests.
/// </summary>
public sealed class LedgerApiFixture : IAsyncLifetime
{
    public const long AliceFunds = 5_000_000, BobFunds = 3_000_000; // $5 and $3

    public string Dir { get; } = TestServer.TempDir("api");
    public WebApplication App { get; private set; } = null!;
    public HttpClient Operator { get; private set; } = null!;
    public Party Alice { get; private set; } = null!;
    public Party Bob { get; private set; } = null!;
    public HttpClient Anonymous { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        (App, Operator) = await TestServer.StartInProcessAsync(Dir);
        Anonymous = TestServer.Client(Operator.BaseAddress!.ToString(), null);
        var r = await Operator.PostJsonAsync("/api/ledger/accounts", new object[]
        {
            new { id = "1", asset = "USDC", code = 1 },
            new { id = "2", asset = "USDC", code = 1, flags = "debits_must_not_exceed_credits" },
            new { id = "3", asset = "BTC", code = 1 },
            new { id = "4", asset = "USDC", code = 1 },
        });
        Assert.Equal(4, r.GetProperty("ok").GetInt32());
        // Fund account 2 with 1,000 micro-USD from account 1.
        var f = await Operator.PostJsonAsync("/api/ledger/transfers", new[] { new { id = "100", debit_account_id = "1", credit_account_id = "2", amount = 1000, asset = "USDC", code = 1 } });
        Assert.Equal(1, f.GetProperty("ok").GetInt32());
        Alice = await TestServer.NewCustomerAsync(Operator, "alice", fundMicroUsd: AliceFunds);
        Bob = await TestServer.NewCustomerAsync(Operator, "bob", fundMicroUsd: BobFunds);
    }

    public async Task DisposeAsync()
    {
        Operator.Dispose();
        Anonymous.Dispose();
        Alice.Http.Dispose();
        Bob.Http.Dispose();
        await App.StopAsync();
        await App.DisposeAsync();
        Directory.Delete(Dir, recursive: true);
    }
}

public sealed class LedgerApiTests(LedgerApiFixture f) : IClassFixture<LedgerApiFixture>
{
    // 2^127: the first id of the reserved (system) space; 2^127 - 1: the last of the client space.
    private const string FirstReservedId = "170141183460469231731687303715884105728", LastClientId = "170141183460469231731687303715884105727";

    private HttpClient Op => f.Operator;

    /// <summary>Everything a client can observe of the ledger's balances and counts (the customers' accounts included).</summary>
    private async Task<string> SnapshotAsync()
    {
        var accounts = await Op.PostJsonAsync("/api/ledger/accounts/lookup", new[] { "1", "2", "3", "4", f.Alice.Account.ToString(), f.Bob.Account.ToString() });
        Assert.Equal(6, accounts.GetArrayLength());
        return accounts.GetRawText() + "\n" + await ApiTestHelpers.LedgerCountsAsync(Op);
    }

    public static TheoryData<string, string, CreateTransferResult> RejectedEvents => new()
    {
        { """[{"id":"200","debit_account_id":"1","credit_account_id":"4","amount":-5,"asset":"USDC","code":1}]""", "amount_must_not_be_negative", CreateTransferResult.AmountMustNotBeNegative },
        { """[{"id":"201","debit_account_id":"1","credit_account_id":"4","amount":0,"asset":"USDC","code":1}]""", "amount_must_not_be_zero", CreateTransferResult.AmountMustNotBeZero },
        { """[{"id":"202","debit_account_id":"77","credit_account_id":"4","amount":5,"asset":"USDC","code":1}]""", "debit_account_not_found", CreateTransferResult.DebitAccountNotFound },
        { """[{"id":"203","debit_account_id":"1","credit_account_id":"78","amount":5,"asset":"USDC","code":1}]""", "credit_account_not_found", CreateTransferResult.CreditAccountNotFound },
        { """[{"id":"204","debit_account_id":"1","credit_account_id":"3","amount":5,"asset":"USDC","code":1}]""", "accounts_must_have_the_same_asset", CreateTransferResult.AccountsMustHaveTheSameAsset },
        { """[{"id":"205","debit_account_id":"1","credit_account_id":"4","amount":5,"asset":"BTC","code":1}]""", "transfer_must_have_the_same_asset_as_accounts", CreateTransferResult.TransferMustHaveTheSameAssetAsAccounts },
        { """[{"id":"206","debit_account_id":"2","credit_account_id":"4","amount":1001,"asset":"USDC","code":1}]""", "exceeds_credits", CreateTransferResult.ExceedsCredits },
        { """[{"id":"100","debit_account_id":"1","credit_account_id":"2","amount":999,"asset":"USDC","code":1}]""", "exists_with_different_amount", CreateTransferResult.ExistsWithDifferentAmount },
        { """[{"id":"100","debit_account_id":"1","credit_account_id":"2","amount":1000,"asset":"USDC","code":1}]""", "exists", CreateTransferResult.Exists },
        { """[{"id":"0","debit_account_id":"1","credit_account_id":"4","amount":5,"asset":"USDC","code":1}]""", "id_must_not_be_zero", CreateTransferResult.IdMustNotBeZero },
        { """[{"id":"207","debit_account_id":"1","credit_account_id":"1","amount":5,"asset":"USDC","code":1}]""", "accounts_must_be_different", CreateTransferResult.AccountsMustBeDifferent },
        { """[{"id":"208","debit_account_id":"1","credit_account_id":"4","amount":5,"asset":"USDC","code":1,"flags":"linked"}]""", "linked_event_chain_open", CreateTransferResult.LinkedEventChainOpen },
        { """[{"id":"209","pending_id":"100","flags":"post_pending_transfer"}]""", "pending_transfer_not_pending", CreateTransferResult.PendingTransferNotPending },
        { """[{"id":"210","debit_account_id":"4","credit_account_id":"1","amount":9223372036854775807,"asset":"USDC","code":1,"flags":"pending, linked"},{"id":"211","debit_account_id":"4","credit_account_id":"1","amount":1,"asset":"USDC","code":1,"flags":"pending"}]""", "overflows_debits_pending", CreateTransferResult.OverflowsDebitsPending },
    };

    [Theory]
    [MemberData(nameof(RejectedEvents))]
    public async Task A_rejected_event_gets_its_snake_case_result_and_code_and_changes_nothing(string body, string expected, CreateTransferResult code)
    {
        string before = await SnapshotAsync();
        var r = await Op.SendJsonAsync(HttpMethod.Post, "/api/ledger/transfers", body);
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        var json = await r.Content.ReadFromJsonAsync<JsonElement>();
        var results = json.GetProperty("results").EnumerateArray().ToArray();
        Assert.Equal(0, json.GetProperty("ok").GetInt32());
        Assert.Equal(results.Length, json.GetProperty("failed").GetInt32());
        Assert.Equal(expected, results[^1].GetProperty("result").GetString());
        Assert.Equal((uint)code, results[^1].GetProperty("code").GetUInt32());
        // A linked chain fails whole: the valid first hold is rolled back with it.
        for (int i = 0; i < results.Length - 1; i++)
        {
            Assert.Equal("linked_event_failed", results[i].GetProperty("result").GetString());
            Assert.Equal((uint)CreateTransferResult.LinkedEventFailed, results[i].GetProperty("code").GetUInt32());
        }
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
        { """[{"id":"1","debitAccountId":"1"}]""", "application/json", 400 }, // camelCase is an unknown member: members are snake_case
        { """[{"id":123456789012345678901234567890}]""", "application/json", 400 }, // id as a huge JSON number
        { """[{"id":"-4"}]""", "application/json", 400 },               // negative id
        { """[{"id":"300","debit_account_id":"1","credit_account_id":"4","amount":5,"asset":1,"code":1}]""", "application/json", 400 },      // asset as a number
        { """[{"id":"300","debit_account_id":"1","credit_account_id":"4","amount":5,"asset":"DOGE","code":1}]""", "application/json", 400 }, // unknown asset symbol
        { """[{"id":"300","debit_account_id":"1","credit_account_id":"4","amount":5,"asset":"USDC","code":1,"flags":"sideways"}]""", "application/json", 400 }, // unknown flag
        { """[{"id":"1"}]""", "text/plain", 415 },
    };

    [Theory]
    [MemberData(nameof(MalformedRequests))]
    public async Task A_malformed_request_gets_problem_json_and_changes_nothing(string body, string? contentType, int status)
    {
        string before = await SnapshotAsync();
        var content = new StringContent(body, Encoding.UTF8);
        content.Headers.ContentType = contentType is null ? null : new System.Net.Http.Headers.MediaTypeHeaderValue(contentType);
        var r = await Op.PostAsync("/api/ledger/transfers", content);
        await ApiTestHelpers.AssertProblemAsync(r, (HttpStatusCode)status);
        Assert.Equal(before, await SnapshotAsync());
    }

    [Fact]
    public async Task Oversized_bodies_and_batches_are_refused()
    {
        string before = await SnapshotAsync();
        var huge = new StringBuilder("[");
        for (int i = 0; i < 60_000; i++) huge.Append(i == 0 ? "" : ",").Append("""{"id":"9","debit_account_id":"1","credit_account_id":"4","amount":1,"asset":"USDC","code":1}""");
        huge.Append(']');
        Assert.True(huge.Length > 4 << 20, "the body must pass the 4 MiB batch limit");
        // A well-behaved client sends a large body with Expect: 100-continue, so it hears the 413 before sending it.
        using var request = new HttpRequestMessage(HttpMethod.Post, "/api/ledger/transfers") { Content = new StringContent(huge.ToString(), Encoding.UTF8, "application/json") };
        request.Headers.ExpectContinue = true;
        await ApiTestHelpers.AssertProblemAsync(await Op.SendAsync(request), HttpStatusCode.RequestEntityTooLarge);

        var tooMany = Enumerable.Range(1, 8191).Select(i => new { id = (1_000_000 + i).ToString(CultureInfo.InvariantCulture), debit_account_id = "1", credit_account_id = "4", amount = 1, asset = "USDC", code = 1 });
        var p = await ApiTestHelpers.AssertProblemAsync(await Op.PostSnakeAsync("/api/ledger/transfers", tooMany), HttpStatusCode.BadRequest);
        Assert.Contains("8190", p.GetProperty("detail").GetString());
        Assert.Equal(before, await SnapshotAsync());
    }

    [Fact]
    public async Task Lookups_of_bad_or_unknown_ids_are_4xx_problems()
    {
        await ApiTestHelpers.AssertProblemAsync(await Op.GetAsync("/api/ledger/accounts/xyz"), HttpStatusCode.BadRequest);
        await ApiTestHelpers.AssertProblemAsync(await Op.GetAsync("/api/ledger/transfers/987654321"), HttpStatusCode.NotFound);
        await ApiTestHelpers.AssertProblemAsync(await Op.GetAsync("/api/ledger/accounts/987654321"), HttpStatusCode.NotFound);
        await ApiTestHelpers.AssertProblemAsync(await Op.GetAsync("/api/ledger/accounts/1/transfers?limit=0"), HttpStatusCode.BadRequest);
        // Unix nanoseconds are not a time any more: `before` is RFC 3339.
        await ApiTestHelpers.AssertProblemAsync(await Op.GetAsync("/api/ledger/accounts/1/transfers?before=1"), HttpStatusCode.BadRequest);
    }

    [Fact]
    public async Task The_raw_ledger_api_is_the_operators_alone_and_refusals_change_nothing()
    {
        string before = await SnapshotAsync();
        object[] account = [new { id = "50", asset = "USDC", code = 1 }];
        object[] transfer = [new { id = "500", debit_account_id = "1", credit_account_id = "4", amount = 5, asset = "USDC", code = 1 }];
        foreach (var (client, status) in new[] { (f.Anonymous, HttpStatusCode.Unauthorized), (f.Alice.Http, HttpStatusCode.Forbidden) })
        {
            await ApiTestHelpers.AssertProblemAsync(await client.PostSnakeAsync("/api/ledger/accounts", account), status);
            await ApiTestHelpers.AssertProblemAsync(await client.PostSnakeAsync("/api/ledger/transfers", transfer), status);
            await ApiTestHelpers.AssertProblemAsync(await client.PostSnakeAsync("/api/ledger/accounts/lookup", new[] { "1" }), status);
            await ApiTestHelpers.AssertProblemAsync(await client.PostSnakeAsync("/api/ledger/transfers/lookup", new[] { "100" }), status);
            await ApiTestHelpers.AssertProblemAsync(await client.PostSnakeAsync("/api/ledger/checkpoints", new { }), status);
        }
        await ApiTestHelpers.AssertProblemAsync(await f.Anonymous.GetAsync($"/api/ledger/accounts/{f.Alice.Account}"), HttpStatusCode.Unauthorized);
        Assert.Equal(before, await SnapshotAsync());
    }

    [Fact]
    public async Task Two_phase_hold_history_and_proof_round_trip_and_computegrid_verify_checks_the_proof()
    {
        var hold = await Op.PostJsonAsync("/api/ledger/transfers", new[] { new { id = "300", debit_account_id = "2", credit_account_id = "4", amount = 400, asset = "USDC", code = 1, flags = "pending", timeout = 60 } });
        Assert.Equal(1, hold.GetProperty("ok").GetInt32());
        Assert.Equal("ok", hold.GetProperty("results")[0].GetProperty("result").GetString());
        var a2 = await Op.GetJsonAsync("/api/ledger/accounts/2");
        Assert.Equal(400, a2.GetProperty("debits_pending").GetInt64());
        Assert.Equal("USDC", a2.GetProperty("asset").GetString());
        Assert.Equal("debits_must_not_exceed_credits", a2.GetProperty("flags").GetString());
        Assert.Equal(JsonValueKind.Null, a2.GetProperty("owner").ValueKind); // a client-space account: the operators'
        Assert.Equal(JsonValueKind.Null, a2.GetProperty("kind").ValueKind);
        var post = await Op.PostJsonAsync("/api/ledger/transfers", new[] { new { id = "301", pending_id = "300", amount = 150, flags = "post_pending_transfer" } });
        Assert.Equal(1, post.GetProperty("ok").GetInt32());
        var t = await Op.GetJsonAsync("/api/ledger/transfers/300");
        Assert.Equal("posted", t.GetProperty("status").GetString());
        Assert.Equal("pending", t.GetProperty("flags").GetString());
        Assert.True(ApiTime.TryParse(t.GetProperty("timestamp").GetString(), null, out _), t.GetProperty("timestamp").GetString());
        a2 = await Op.GetJsonAsync("/api/ledger/accounts/2");
        Assert.Equal(0, a2.GetProperty("debits_pending").GetInt64());
        Assert.Equal(150, a2.GetProperty("debits_posted").GetInt64());
        var history = await Op.GetJsonAsync("/api/ledger/accounts/2/transfers?limit=10");
        var ids = history.GetProperty("transfers").EnumerateArray().Select(x => x.GetProperty("id").GetString()).ToArray();
        Assert.Equal(new[] { "301", "300", "100" }, ids); // newest first
        Assert.Equal("2", history.GetProperty("account_id").GetString());

        var cp = await Op.PostJsonAsync("/api/ledger/checkpoints", new { });
        string root = cp.GetProperty("root").GetString()!;
        string proofJson = await Op.GetStringAsync("/api/ledger/accounts/2/proof");
        // The proof is snake_case, its time an RFC 3339 string: the checkpoint's, to the nanosecond.
        var raw = JsonDocument.Parse(proofJson).RootElement;
        Assert.Equal("2", raw.GetProperty("account_id").GetString());
        Assert.Equal(150, raw.GetProperty("debits_posted").GetInt64());
        Assert.Equal(1000, raw.GetProperty("credits_posted").GetInt64());
        Assert.Equal(cp.GetProperty("chain_head").GetString(), raw.GetProperty("chain_head").GetString());
        Assert.Equal(JsonValueKind.String, raw.GetProperty("timestamp").ValueKind);
        Assert.Equal(cp.GetProperty("timestamp").GetString(), raw.GetProperty("timestamp").GetString());
        Assert.False(raw.TryGetProperty("debitsPosted", out _));
        var proof = JsonSerializer.Deserialize<BalanceProof>(proofJson, BalanceProof.Json)!;
        var (ok, message) = proof.Verify(root);
        Assert.True(ok, message);
        Assert.Equal(150, proof.DebitsPosted);
        Assert.True(ApiTime.TryParse(cp.GetProperty("timestamp").GetString(), null, out ApiTime cpTime));
        Assert.Equal(cpTime.UnixNanoseconds, proof.Timestamp);

        // `computegrid verify` checks the file as the API served it, and refuses it tampered with.
        string file = Path.Combine(f.Dir, "proof-2.json");
        await File.WriteAllTextAsync(file, proofJson);
        var verified = await ApiTestHelpers.RunCliAsync("verify", "--proof", file, "--root", root);
        Assert.True(verified.Code == 0, verified.Err);
        Assert.Contains("account 2 (USDC) debits_posted=150 credits_posted=1000", verified.Out);
        await File.WriteAllTextAsync(file, proofJson.Replace("\"debits_posted\": 150", "\"debits_posted\": 15"));
        Assert.NotEqual(proofJson, await File.ReadAllTextAsync(file));
        var tampered = await ApiTestHelpers.RunCliAsync("verify", "--proof", file, "--root", root);
        Assert.Equal(1, tampered.Code);
        Assert.Contains("proof does not verify", tampered.Err);
    }

    [Fact]
    public async Task History_pages_follow_next_as_before_to_the_end_and_a_before_that_names_no_transfer_of_the_account_is_a_400()
    {
        // Accounts of their own, so the other tests' transfers do not show in this history.
        var accounts = await Op.PostJsonAsync("/api/ledger/accounts", new object[] { new { id = "10", asset = "USDC", code = 1 }, new { id = "11", asset = "USDC", code = 1 } });
        Assert.Equal(2, accounts.GetProperty("ok").GetInt32());
        var transfers = Enumerable.Range(410, 5).Select(i => new { id = i.ToString(CultureInfo.InvariantCulture), debit_account_id = "10", credit_account_id = "11", amount = 1, asset = "USDC", code = 1 }).ToArray();
        Assert.Equal(5, (await Op.PostJsonAsync("/api/ledger/transfers", transfers)).GetProperty("ok").GetInt32());

        var pages = new List<string[]>();
        string url = "/api/ledger/accounts/10/transfers?limit=2";
        string? next = null, firstNext = null;
        while (true)
        {
            var page = await Op.GetJsonAsync(url);
            var items = page.GetProperty("transfers").EnumerateArray().ToArray();
            pages.Add(items.Select(x => x.GetProperty("id").GetString()!).ToArray());
            var n = page.GetProperty("next");
            if (n.ValueKind == JsonValueKind.Null) break;
            // `next` is an RFC 3339 time: the timestamp of the page's last (oldest) transfer.
            next = n.GetString()!;
            firstNext ??= next;
            Assert.True(ApiTime.TryParse(next, null, out _), next);
            Assert.Equal(items[^1].GetProperty("timestamp").GetString(), next);
            url = $"/api/ledger/accounts/10/transfers?limit=2&before={Uri.EscapeDataString(next)}";
        }
        Assert.Equal(new[] { new[] { "414", "413" }, ["412", "411"], ["410"] }, pages);
        Assert.NotNull(next);

        // The same instant written with another offset names the same transfer: the same second page.
        Assert.True(ApiTime.TryParse(firstNext, null, out ApiTime cursor));
        string plusTwo = WithOffset(cursor, TimeSpan.FromHours(2));
        Assert.EndsWith("+02:00", plusTwo);
        var same = await Op.GetJsonAsync($"/api/ledger/accounts/10/transfers?limit=2&before={Uri.EscapeDataString(plusTwo)}");
        Assert.Equal(new[] { "412", "411" }, same.GetProperty("transfers").EnumerateArray().Select(x => x.GetProperty("id").GetString()).ToArray());

        // A before that names another account's transfer, or no transfer at all, is refused, not searched for.
        string foreign = (await Op.GetJsonAsync("/api/ledger/transfers/100")).GetProperty("timestamp").GetString()!;
        foreach (string before in new[] { foreign, "1970-01-01T00:00:00.000000001Z" })
        {
            var bad = await Op.GetAsync($"/api/ledger/accounts/10/transfers?limit=2&before={Uri.EscapeDataString(before)}");
            await ApiTestHelpers.AssertProblemAsync(bad, HttpStatusCode.BadRequest);
        }
    }

    private static string WithOffset(ApiTime t, TimeSpan offset)
    {
        long seconds = Math.DivRem(t.UnixNanoseconds, 1_000_000_000L, out long nanos);
        var local = DateTimeOffset.FromUnixTimeSeconds(seconds).ToOffset(offset);
        return local.ToString("yyyy-MM-dd'T'HH:mm:ss", CultureInfo.InvariantCulture) + "." + nanos.ToString("D9", CultureInfo.InvariantCulture)
            + local.ToString("zzz", CultureInfo.InvariantCulture);
    }

    [Fact]
    public async Task A_customer_reads_its_own_account_history_funding_transfer_and_proof()
    {
        Party alice = f.Alice;
        var me = await Op.GetJsonAsync("/api/me");
        ulong operatorId = me.GetProperty("principal").GetProperty("id").GetUInt64();
        Assert.Equal(ChartOfAccounts.PrincipalAccount(AccountCode.CustomerBalance, alice.Id), alice.Account);

        var account = await alice.Http.GetJsonAsync($"/api/ledger/accounts/{alice.Account}");
        Assert.Equal(alice.Account.ToString(), account.GetProperty("id").GetString());
        Assert.Equal("USDC", account.GetProperty("asset").GetString());
        Assert.Equal((int)AccountCode.CustomerBalance, account.GetProperty("code").GetInt32());
        Assert.Equal("customer_balance", account.GetProperty("kind").GetString());
        Assert.Equal(alice.Id, account.GetProperty("owner").GetUInt64());
        Assert.Equal("debits_must_not_exceed_credits", account.GetProperty("flags").GetString());
        Assert.Equal(LedgerApiFixture.AliceFunds, account.GetProperty("credits_posted").GetInt64());
        Assert.Equal(LedgerApiFixture.AliceFunds, account.GetProperty("credit_balance").GetInt64());
        Assert.Equal(0, account.GetProperty("debits_posted").GetInt64());

        // The history holds the one funding: from the treasury, code Funding, naming the operator who funded.
        UInt128 fundingId = PrincipalLedger.FundingId(alice.Id, AccountCode.CustomerBalance, "seed-alice");
        var history = await alice.Http.GetJsonAsync($"/api/ledger/accounts/{alice.Account}/transfers");
        var funding = Assert.Single(history.GetProperty("transfers").EnumerateArray());
        Assert.Equal(fundingId.ToString(), funding.GetProperty("id").GetString());
        Assert.Equal(ChartOfAccounts.SystemAccount(AccountCode.Treasury, Asset.Usd).ToString(), funding.GetProperty("debit_account_id").GetString());
        Assert.Equal(alice.Account.ToString(), funding.GetProperty("credit_account_id").GetString());
        Assert.Equal(LedgerApiFixture.AliceFunds, funding.GetProperty("amount").GetInt64());
        Assert.Equal((int)TransferCode.Funding, funding.GetProperty("code").GetInt32());
        Assert.Equal(operatorId, funding.GetProperty("user_data_64").GetUInt64());
        Assert.Equal(JsonValueKind.Null, history.GetProperty("next").ValueKind);
        var transfer = await alice.Http.GetJsonAsync($"/api/ledger/transfers/{fundingId}");
        Assert.Equal(funding.GetRawText(), transfer.GetRawText());

        // The proof comes from the latest checkpoint; the customer checks it against the public root.
        await Op.PostJsonAsync("/api/ledger/checkpoints", new { });
        var latest = await f.Anonymous.GetJsonAsync("/api/ledger/checkpoints/latest");
        string proofJson = await alice.Http.GetStringAsync($"/api/ledger/accounts/{alice.Account}/proof");
        var proof = JsonSerializer.Deserialize<BalanceProof>(proofJson, BalanceProof.Json)!;
        var (ok, message) = proof.Verify(latest.GetProperty("root").GetString()!);
        Assert.True(ok, message);
        Assert.Equal(alice.Account.ToString(), proof.AccountId);
        Assert.Equal(LedgerApiFixture.AliceFunds, proof.CreditsPosted);
        Assert.Equal(0, proof.DebitsPosted);
    }

    [Fact]
    public async Task A_customer_reading_another_customers_account_history_transfer_or_proof_gets_404()
    {
        Party alice = f.Alice, bob = f.Bob;
        await Op.PostJsonAsync("/api/ledger/checkpoints", new { }); // both customers are in the latest checkpoint
        UInt128 aliceFunding = PrincipalLedger.FundingId(alice.Id, AccountCode.CustomerBalance, "seed-alice");
        string[] foreign =
        [
            $"/api/ledger/accounts/{alice.Account}", $"/api/ledger/accounts/{alice.Account}/transfers", $"/api/ledger/accounts/{alice.Account}/proof",
            $"/api/ledger/transfers/{aliceFunding}",
            // Nor the operators' client-space accounts, nor the system's.
            "/api/ledger/accounts/1", "/api/ledger/accounts/1/transfers", "/api/ledger/accounts/1/proof", "/api/ledger/transfers/100",
            $"/api/ledger/accounts/{ChartOfAccounts.SystemAccount(AccountCode.Treasury, Asset.Usd)}",
        ];
        foreach (string path in foreign)
        {
            var p = await ApiTestHelpers.AssertProblemAsync(await bob.Http.GetAsync(path), HttpStatusCode.NotFound);
            // The same answer as for what does not exist: nothing of alice's shows through.
            Assert.DoesNotContain(LedgerApiFixture.AliceFunds.ToString(CultureInfo.InvariantCulture), p.GetRawText());
        }
        // What bob is refused, its owner (and an operator) may read; bob reads his own.
        foreach (string path in foreign.Take(4))
        {
            await alice.Http.GetJsonAsync(path);
            await Op.GetJsonAsync(path);
        }
        var own = await bob.Http.GetJsonAsync($"/api/ledger/accounts/{bob.Account}");
        Assert.Equal(LedgerApiFixture.BobFunds, own.GetProperty("credit_balance").GetInt64());
    }

    public static TheoryData<string, string, string, string> ReservedEvents => new()
    {
        // {ALICE}: alice's balance account (a principal account of the chart); {R}: 2^127, the first reserved id.
        { "/api/ledger/accounts", """[{"id":"60","asset":"USDC","code":1},{"id":"{R}","asset":"USDC","code":1}]""", "accounts[1]", "reserved_id" },
        { "/api/ledger/accounts", """[{"id":"{ALICE}","asset":"USDC","code":2001,"flags":"debits_must_not_exceed_credits"}]""", "accounts[0]", "reserved_id" },
        { "/api/ledger/accounts", """[{"id":"61","asset":"USDC","code":1001}]""", "accounts[0]: code 1001", "reserved_code" },
        { "/api/ledger/transfers", """[{"id":"600","debit_account_id":"1","credit_account_id":"4","amount":5,"asset":"USDC","code":1,"flags":"linked"},{"id":"{R}","debit_account_id":"1","credit_account_id":"4","amount":5,"asset":"USDC","code":1}]""", "transfers[1]: id", "reserved_id" },
        { "/api/ledger/transfers", """[{"id":"600","debit_account_id":"1","credit_account_id":"4","amount":5,"asset":"USDC","code":1},{"id":"601","debit_account_id":"{ALICE}","credit_account_id":"4","amount":5,"asset":"USDC","code":1}]""", "transfers[1]: debit_account_id", "reserved_id" },
        { "/api/ledger/transfers", """[{"id":"602","debit_account_id":"1","credit_account_id":"{ALICE}","amount":5,"asset":"USDC","code":1}]""", "transfers[0]: credit_account_id", "reserved_id" },
        { "/api/ledger/transfers", """[{"id":"603","pending_id":"{R}","flags":"void_pending_transfer"}]""", "transfers[0]: pending_id", "reserved_id" },
        { "/api/ledger/transfers", """[{"id":"604","debit_account_id":"1","credit_account_id":"4","amount":5,"asset":"USDC","code":1201}]""", "transfers[0]: code 1201", "reserved_code" },
    };

    [Theory]
    [MemberData(nameof(ReservedEvents))]
    public async Task A_reserved_space_id_or_code_is_refused_with_422_and_changes_nothing(string path, string body, string named, string code)
    {
        string before = await SnapshotAsync();
        string json = body.Replace("{ALICE}", f.Alice.Account.ToString()).Replace("{R}", FirstReservedId);
        var p = await ApiTestHelpers.AssertProblemAsync(await Op.SendJsonAsync(HttpMethod.Post, path, json), HttpStatusCode.UnprocessableEntity);
        Assert.Contains(named, p.GetProperty("detail").GetString());
        Assert.Equal(code, p.GetProperty("code").GetString());
        // The whole batch is refused: not even its valid first event exists.
        Assert.Equal(before, await SnapshotAsync());
        foreach (string transfer in new[] { "600", "601", "602", "603", "604" })
            await ApiTestHelpers.AssertProblemAsync(await Op.GetAsync($"/api/ledger/transfers/{transfer}"), HttpStatusCode.NotFound);
        foreach (string account in new[] { "60", "61" })
            await ApiTestHelpers.AssertProblemAsync(await Op.GetAsync($"/api/ledger/accounts/{account}"), HttpStatusCode.NotFound);
    }

    [Fact]
    public async Task The_last_client_space_id_is_accepted_and_moves_money()
    {
        var created = await Op.PostJsonAsync("/api/ledger/accounts", new[] { new { id = LastClientId, asset = "USDC", code = 999 } });
        Assert.Equal("ok", created.GetProperty("results")[0].GetProperty("result").GetString());
        var moved = await Op.PostJsonAsync("/api/ledger/transfers", new[] { new { id = LastClientId, debit_account_id = "1", credit_account_id = LastClientId, amount = 7, asset = "USDC", code = 999 } });
        Assert.Equal("ok", moved.GetProperty("results")[0].GetProperty("result").GetString());
        var account = await Op.GetJsonAsync($"/api/ledger/accounts/{LastClientId}");
        Assert.Equal(7, account.GetProperty("credits_posted").GetInt64());
        Assert.Equal(999, account.GetProperty("code").GetInt32());
    }
}

/// <summary>Proofs come from the latest checkpoint only: a GET never builds one (it walks every account).</summary>
public sealed class LedgerProofCheckpointTests : IDisposable
{
    private readonly string _dir = TestServer.TempDir("api-proof");

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task A_proof_of_an_account_newer_than_the_latest_checkpoint_is_404_until_a_checkpoint_is_taken()
    {
        // No periodic checkpoint during the test: only the one the server takes as it starts.
        var (app, op) = await ApiTestHelpers.StartAsync(_dir, o => o with { CheckpointInterval = TimeSpan.FromHours(1) });
        using var anonymous = TestServer.Client(op.BaseAddress!.ToString(), null);
        try
        {
            JsonElement first;
            var started = System.Diagnostics.Stopwatch.StartNew();
            while (true)
            {
                var r = await anonymous.GetAsync("/api/ledger/checkpoints/latest");
                if (r.StatusCode == HttpStatusCode.OK)
                {
                    first = await r.Content.ReadFromJsonAsync<JsonElement>();
                    break;
                }
                Assert.Equal(HttpStatusCode.NotFound, r.StatusCode);
                Assert.True(started.Elapsed < TimeSpan.FromSeconds(30), "the server took no checkpoint as it started");
                await Task.Delay(50);
            }

            Party carol = await TestServer.NewCustomerAsync(op, "carol", fundMicroUsd: 2_500_000);
            string path = $"/api/ledger/accounts/{carol.Account}/proof";
            for (int i = 0; i < 2; i++)
            {
                var p = await ApiTestHelpers.AssertProblemAsync(await carol.Http.GetAsync(path), HttpStatusCode.NotFound);
                Assert.Contains($"op {first.GetProperty("op").GetUInt64()}", p.GetProperty("detail").GetString());
                await ApiTestHelpers.AssertProblemAsync(await op.GetAsync(path), HttpStatusCode.NotFound);
                // Asking built no checkpoint: the latest is still the first.
                Assert.Equal(first.GetRawText(), (await anonymous.GetJsonAsync("/api/ledger/checkpoints/latest")).GetRawText());
            }

            var taken = await op.PostJsonAsync("/api/ledger/checkpoints", new { });
            Assert.True(taken.GetProperty("op").GetUInt64() > first.GetProperty("op").GetUInt64());
            Assert.Equal(taken.GetRawText(), (await anonymous.GetJsonAsync("/api/ledger/checkpoints/latest")).GetRawText());
            string proofJson = await carol.Http.GetStringAsync(path);
            var proof = JsonSerializer.Deserialize<BalanceProof>(proofJson, BalanceProof.Json)!;
            var (ok, message) = proof.Verify(taken.GetProperty("root").GetString()!);
            Assert.True(ok, message);
            Assert.Equal(2_500_000, proof.CreditsPosted);
            Assert.Equal(taken.GetProperty("op").GetUInt64(), proof.Op);
        }
        finally
        {
            op.Dispose();
            await app.StopAsync();
            await app.DisposeAsync();
        }
    }
}
