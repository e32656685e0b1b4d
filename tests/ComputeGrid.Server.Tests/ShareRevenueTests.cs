using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using ComputeGrid.Inference.Model;
using ComputeGrid.Ledger;
using ComputeGrid.Server.Inference;

namespace ComputeGrid.Server.Tests;

/// <summary>
/// Every inference's revenue to every holder, end to end through a real server with a real model: the server's own
/// "local" provider lists its node on the exchange (one node id for capacity, inference and shares), issues 1,000 shares
/// and moves 250 and 150 of them to two customers; paid requests routed to that node pay its share pool, and each
/// holder's entitlement rises by its shares' part of the pool's revenue (the rounding remainder stays in the pool).
/// Claims move the owed money into the holder's balance once; the book survives a restart (rebuilt from the ledger).
/// </summary>
public sealed class ShareRevenueTests
{
    private const long Price = 50_000; // micro-USD per 1,000 tokens: each request's revenue is hundreds of micro-USD
    private static readonly InferenceServerOptions Options = new() { LocalNodes = [new("fra-shares", "frankfurt", Price, 8)] };

    [Fact]
    public async Task A_paid_request_on_a_node_with_several_holders_raises_each_holders_entitlement_by_its_share()
    {
        await using MoneyServer s = await MoneyServer.StartAsync("share-revenue", Options);
        HttpClient op = s.Operator;
        // The local provider: a key for it, collateral (which registers it on the exchange), its node listed.
        JsonElement principals = await op.GetJsonAsync("/api/principals?kind=provider");
        ulong provider = principals.GetProperty("principals").EnumerateArray().Single(p => p.GetProperty("name").GetString() == "local").GetProperty("id").GetUInt64();
        JsonElement issued = await op.PostJsonAsync($"/api/principals/{provider}/keys", new { name = "shares", scopes = new[] { "trade", "read" } });
        using HttpClient providerHttp = TestServer.Client(op.BaseAddress!.ToString(), issued.GetProperty("api_key").GetString());
        await op.PostJsonAsync($"/api/providers/{provider}/collateral", new { amount = 10_000_000, funding_id = "local-collateral" });
        var listed = await providerHttp.PostSnakeAsync("/api/exchange/nodes", new { node_id = "fra-shares", gpu = "H100", region = "frankfurt", gpus = 8 });
        Assert.Equal(HttpStatusCode.Created, listed.StatusCode);
        long node = (await listed.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetInt64();
        Assert.Equal((long)s.Host.Gateway.NodeNumber("fra-shares")!.Value, node); // one identity

        Party alice = await TestServer.NewCustomerAsync(op, "alice"), bob = await TestServer.NewCustomerAsync(op, "bob");
        Party payer = await s.CustomerAsync("frankfurt", 50_000_000);
        await ApiTestHelpers.OkAsync(await op.PostSnakeAsync($"/api/shares/issuers/{provider}", new { }));
        Assert.Equal(HttpStatusCode.Created, (await providerHttp.PostSnakeAsync("/api/shares", new { node_id = node, supply = 1_000 })).StatusCode);
        await ApiTestHelpers.OkAsync(await providerHttp.PostSnakeAsync($"/api/shares/{node}/transfers", new { to = alice.Id, shares = 250 }));
        await ApiTestHelpers.OkAsync(await providerHttp.PostSnakeAsync($"/api/shares/{node}/transfers", new { to = bob.Id, shares = 150 }));

        // Paid requests, each routed to the only node: the node's part of each charge goes to its share pool.
        string[] texts = ["a share of every inference", "reaches every holder at once", "pro rata, through the ledger", "with the remainder kept in the pool"];
        long expected = 0;
        foreach (string text in texts)
        {
            HttpResponseMessage r = await s.EmbedAsync(payer.Key, new { model = MoneyServer.Model, input = text });
            await MoneyServer.AssertStatusAsync(HttpStatusCode.OK, r);
            long cost = s.CostOf(text, Price);
            expected += cost - s.FeeOf(cost);
        }
        await s.Host.Gateway.Settler.IdleAsync();
        Assert.True(expected > 1_000, $"revenue {expected}");
        Account pool = (await s.Ledger.LookupAccountsAsync([ChartOfAccounts.SharePool((ulong)node)]))[0];
        Assert.Equal(expected, pool.CreditsPosted);
        Assert.Equal(0, (await s.Ledger.LookupAccountsAsync([InferencePayments.NodeRevenueAccount((ulong)node)])).Sum(a => a.CreditsPosted));

        // Each holder's entitlement: its shares' part of the pool's revenue, rounded down; the rest is the pool's carry.
        JsonElement a = await alice.Http.GetJsonAsync($"/api/shares/{node}/entitlement");
        JsonElement b = await bob.Http.GetJsonAsync($"/api/shares/{node}/entitlement");
        JsonElement p = await providerHttp.GetJsonAsync($"/api/shares/{node}/entitlement");
        Assert.Equal(expected, a.GetProperty("pool_revenue_micro_usd").GetInt64());
        Assert.Equal(expected * 250 / 1_000, a.GetProperty("entitled_micro_usd").GetInt64());
        Assert.Equal(expected * 150 / 1_000, b.GetProperty("entitled_micro_usd").GetInt64());
        Assert.Equal(expected * 600 / 1_000, p.GetProperty("entitled_micro_usd").GetInt64());
        long carry = expected - a.GetProperty("entitled_micro_usd").GetInt64() - b.GetProperty("entitled_micro_usd").GetInt64() - p.GetProperty("entitled_micro_usd").GetInt64();
        Assert.InRange(carry, 0, 2);

        // Alice claims everything into her balance; a second claim finds nothing; she never gets more than she is owed.
        long owed = a.GetProperty("owed_micro_usd").GetInt64();
        Assert.True(owed > 0);
        await ApiTestHelpers.AssertProblemAsync(await alice.Http.PostSnakeAsync($"/api/shares/{node}/claims", new { amount = owed + 1 }), HttpStatusCode.Conflict);
        JsonElement claim = await ApiTestHelpers.OkAsync(await alice.Http.PostSnakeAsync($"/api/shares/{node}/claims", new { }));
        Assert.Equal(owed, claim.GetProperty("amount_micro_usd").GetInt64());
        await ApiTestHelpers.AssertProblemAsync(await alice.Http.PostSnakeAsync($"/api/shares/{node}/claims", new { }), HttpStatusCode.Conflict);
        Account balance = (await s.Ledger.LookupAccountsAsync([InferencePayments.CustomerAccount(alice.Id)]))[0];
        Assert.Equal(owed, balance.CreditsPosted);
        Assert.Equal(expected - owed, (await s.Ledger.LookupAccountsAsync([ChartOfAccounts.SharePool((ulong)node)]))[0].CreditBalance);

        // Revenue per share over time, public.
        using var anonymous = TestServer.Client(op.BaseAddress!.ToString(), null);
        JsonElement history = await anonymous.GetJsonAsync($"/api/shares/{node}/revenue");
        Assert.Equal(expected, history.GetProperty("points").EnumerateArray().Last().GetProperty("cumulative_micro_usd").GetInt64());

        // Bob sets auto-claim below what he is owed: the loop pays him without a request.
        long bobOwed = b.GetProperty("owed_micro_usd").GetInt64();
        Assert.True(bobOwed > 0);
        await ApiTestHelpers.OkAsync(await bob.Http.PutSnakeAsync($"/api/shares/{node}/auto-claim", new { threshold = 1 }));
        Assert.True(await MoneyServer.EventuallyAsync(async () =>
            (await bob.Http.GetJsonAsync($"/api/shares/{node}/entitlement")).GetProperty("owed_micro_usd").GetInt64() == 0, TimeSpan.FromSeconds(30)));
        Assert.Equal(bobOwed, (await s.Ledger.LookupAccountsAsync([InferencePayments.CustomerAccount(bob.Id)]))[0].CreditsPosted);

        // A restart rebuilds the book from the ledger: the same entitlements and claims.
        await s.RestartAsync(Options);
        using HttpClient aliceAgain = TestServer.Client(s.Operator.BaseAddress!.ToString(), alice.Key);
        JsonElement after = await aliceAgain.GetJsonAsync($"/api/shares/{node}/entitlement");
        Assert.Equal((a.GetProperty("entitled_micro_usd").GetInt64(), owed, 0L),
            (after.GetProperty("entitled_micro_usd").GetInt64(), after.GetProperty("claimed_micro_usd").GetInt64(), after.GetProperty("owed_micro_usd").GetInt64()));
        foreach (Party party in new[] { alice, bob }) party.Http.Dispose();
    }
}
