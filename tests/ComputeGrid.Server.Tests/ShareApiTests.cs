using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using ComputeGrid.Ledger;

namespace ComputeGrid.Server.Tests;

/// <summary>
/// Node shares through the API of a real server: an operator approves the issuer, the provider issues a node's shares,
/// moves some to a customer, and they trade on the exchange's book as <c>SHR-{node}</c>; every balance is read back from
/// the ledger. Attacks: issuing unapproved, issuing a node of another provider, a customer issuing, selling or moving
/// shares one does not have.
/// </summary>
public sealed class ShareApiTests
{
    private const long SharePrice = 1_500_000; // $1.50 a share

    [Fact]
    public async Task A_node_issues_shares_that_move_and_trade_on_the_book_settled_in_the_ledger()
    {
        string dir = TestServer.TempDir("shares-api");
        var (app, op) = await TestServer.StartInProcessAsync(dir);
        try
        {
            ExchangeSeed seed = await TestServer.SeedExchangeAsync(op, ("H100", "frankfurt"));
            Party provider = seed.Provider, buyer = seed.Buyer, poor = seed.Poor;
            long node = seed.Nodes[("H100", "frankfurt")];
            Party other = await TestServer.NewProviderAsync(op, "other-issuer");

            // Not approved yet: refused; a customer may not issue at all.
            await ApiTestHelpers.AssertProblemAsync(await provider.Http.PostSnakeAsync("/api/shares", new { node_id = node, supply = 1_000 }), HttpStatusCode.Forbidden);
            await ApiTestHelpers.AssertProblemAsync(await buyer.Http.PostSnakeAsync("/api/shares", new { node_id = node, supply = 1_000 }), HttpStatusCode.Forbidden);
            await ApiTestHelpers.AssertProblemAsync(await provider.Http.PostSnakeAsync($"/api/shares/issuers/{provider.Id}", new { }), HttpStatusCode.Forbidden);
            await ApiTestHelpers.OkAsync(await op.PostSnakeAsync($"/api/shares/issuers/{provider.Id}", new { }));
            await ApiTestHelpers.OkAsync(await op.PostSnakeAsync($"/api/shares/issuers/{other.Id}", new { }));
            // Another approved provider cannot issue this provider's node.
            await ApiTestHelpers.AssertProblemAsync(await other.Http.PostSnakeAsync("/api/shares", new { node_id = node, supply = 1_000 }), HttpStatusCode.Forbidden);

            var issued = await provider.Http.PostSnakeAsync("/api/shares", new { node_id = node, supply = 1_000 });
            Assert.Equal(HttpStatusCode.Created, issued.StatusCode);
            JsonElement shares = await issued.Content.ReadFromJsonAsync<JsonElement>();
            string symbol = shares.GetProperty("symbol").GetString()!;
            Assert.Equal($"SHR-{node}", symbol);
            Assert.Equal(1_000, shares.GetProperty("supply").GetInt64());
            await ApiTestHelpers.AssertProblemAsync(await provider.Http.PostSnakeAsync("/api/shares", new { node_id = node, supply = 5 }), HttpStatusCode.Conflict);
            // Listed as an instrument like any other, publicly.
            using var anonymous = TestServer.Client(op.BaseAddress!.ToString(), null);
            Assert.Equal(symbol, (await anonymous.GetJsonAsync($"/api/exchange/instruments/{symbol}")).GetProperty("symbol").GetString());
            Assert.Equal(1, (await anonymous.GetJsonAsync($"/api/shares/{node}")).GetProperty("holders").GetInt32());

            // The provider moves 100 to the poor customer; more than it has free is refused.
            await ApiTestHelpers.OkAsync(await provider.Http.PostSnakeAsync($"/api/shares/{node}/transfers", new { to = poor.Id, shares = 100 }));
            await ApiTestHelpers.AssertProblemAsync(await provider.Http.PostSnakeAsync($"/api/shares/{node}/transfers", new { to = poor.Id, shares = 901 }),
                HttpStatusCode.Conflict, "insufficient_shares");

            // The provider offers 300 on the book; the buyer takes 120 of them.
            await ApiTestHelpers.OkAsync(await provider.Http.PostSnakeAsync("/api/exchange/orders", new { instrument = symbol, side = "sell", price = SharePrice, quantity = 300 }));
            JsonElement fill = await ApiTestHelpers.OkAsync(await buyer.Http.PostSnakeAsync("/api/exchange/orders",
                new { instrument = symbol, side = "buy", price = SharePrice, quantity = 120, time_in_force = "ioc" }));
            Assert.Equal("filled", fill.GetProperty("status").GetString());
            // Offered shares are not free: moving them is refused, as is selling shares the poor customer does not have.
            await ApiTestHelpers.AssertProblemAsync(await provider.Http.PostSnakeAsync($"/api/shares/{node}/transfers", new { to = poor.Id, shares = 601 }),
                HttpStatusCode.Conflict, "insufficient_shares");
            await ApiTestHelpers.AssertProblemAsync(await poor.Http.PostSnakeAsync("/api/exchange/orders", new { instrument = symbol, side = "sell", price = SharePrice, quantity = 101 }),
                HttpStatusCode.Conflict, "insufficient_shares");

            JsonElement mine = await buyer.Http.GetJsonAsync("/api/shares/holdings");
            JsonElement holding = Assert.Single(mine.GetProperty("holdings").EnumerateArray().ToList());
            Assert.Equal(120, holding.GetProperty("shares").GetInt64());
            JsonElement theirs = (await provider.Http.GetJsonAsync("/api/shares/holdings")).GetProperty("holdings")[0];
            Assert.Equal(780, theirs.GetProperty("shares").GetInt64());
            Assert.Equal(180, theirs.GetProperty("offered").GetInt64());
            Assert.Equal(3, (await anonymous.GetJsonAsync($"/api/shares/{node}")).GetProperty("holders").GetInt32());

            // The ledger agrees: shares posted to each holder, the rest of the offer held in the share escrow, the seller paid.
            Assert.Equal(120, await PostedBalanceAsync(op, ChartOfAccounts.ShareHolding(buyer.Id, (ulong)node)));
            Assert.Equal(100, await PostedBalanceAsync(op, ChartOfAccounts.ShareHolding(poor.Id, (ulong)node)));
            JsonElement providerShares = await op.GetJsonAsync($"/api/ledger/accounts/{ChartOfAccounts.ShareHolding(provider.Id, (ulong)node)}");
            Assert.Equal(780, providerShares.GetProperty("credits_posted").GetInt64() - providerShares.GetProperty("debits_posted").GetInt64());
            Assert.Equal(180, providerShares.GetProperty("debits_pending").GetInt64());
            JsonElement account = await provider.Http.GetJsonAsync("/api/exchange/account");
            Assert.Equal(120 * SharePrice, account.GetProperty("available").GetInt64());

            // Pledges: 100 of the buyer's shares at the VWAP of $1.50, less 20 %, half of it lent at most: $60.
            Assert.Equal(SharePrice, (await anonymous.GetJsonAsync($"/api/shares/{node}")).GetProperty("vwap_micro_usd").GetInt64());
            await ApiTestHelpers.AssertProblemAsync(await buyer.Http.PostSnakeAsync($"/api/shares/{node}/pledges", new { shares = 100, loan = 60_000_001 }),
                HttpStatusCode.UnprocessableEntity, "loan_too_large");
            long before = (await buyer.Http.GetJsonAsync("/api/exchange/account")).GetProperty("available").GetInt64();
            var pledged = await buyer.Http.PostSnakeAsync($"/api/shares/{node}/pledges", new { shares = 100, loan = 50_000_000 });
            Assert.Equal(HttpStatusCode.Created, pledged.StatusCode);
            JsonElement loan = await pledged.Content.ReadFromJsonAsync<JsonElement>();
            long loanId = loan.GetProperty("id").GetInt64();
            Assert.Equal("open", loan.GetProperty("status").GetString());
            Assert.Equal(before + 50_000_000, (await buyer.Http.GetJsonAsync("/api/exchange/account")).GetProperty("available").GetInt64());
            Assert.Equal(100, (await buyer.Http.GetJsonAsync("/api/shares/holdings")).GetProperty("holdings")[0].GetProperty("pledged").GetInt64());
            // A pledged share cannot be sold or pledged twice; nobody else sees or repays the loan.
            await ApiTestHelpers.AssertProblemAsync(await buyer.Http.PostSnakeAsync("/api/exchange/orders", new { instrument = symbol, side = "sell", price = SharePrice, quantity = 21 }),
                HttpStatusCode.Conflict, "insufficient_shares");
            await ApiTestHelpers.AssertProblemAsync(await buyer.Http.PostSnakeAsync($"/api/shares/{node}/pledges", new { shares = 21, loan = 1 }), HttpStatusCode.Conflict, "insufficient_shares");
            await ApiTestHelpers.AssertProblemAsync(await poor.Http.PostSnakeAsync($"/api/shares/loans/{loanId}/repayments", new { amount = 1 }), HttpStatusCode.NotFound);
            Assert.Empty((await poor.Http.GetJsonAsync("/api/shares/loans")).GetProperty("loans").EnumerateArray());
            JsonElement repaid = await ApiTestHelpers.OkAsync(await buyer.Http.PostSnakeAsync($"/api/shares/loans/{loanId}/repayments", new { amount = 60_000_000 }));
            Assert.Equal("repaid", repaid.GetProperty("status").GetString());
            Assert.Equal(0, repaid.GetProperty("due").GetInt64());
            Assert.Equal(0, (await buyer.Http.GetJsonAsync("/api/shares/holdings")).GetProperty("holdings")[0].GetProperty("pledged").GetInt64());
        }
        finally
        {
            await app.StopAsync();
            await app.DisposeAsync();
            Directory.Delete(dir, recursive: true);
        }
    }

    private static async Task<long> PostedBalanceAsync(HttpClient op, UInt128 account)
    {
        JsonElement a = await op.GetJsonAsync($"/api/ledger/accounts/{account}");
        return a.GetProperty("credits_posted").GetInt64() - a.GetProperty("debits_posted").GetInt64();
    }
}
