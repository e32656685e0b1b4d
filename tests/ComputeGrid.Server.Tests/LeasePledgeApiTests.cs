using System.Net;
using System.Net.Http.Json;
using System.Text.Json;

namespace ComputeGrid.Server.Tests;

/// <summary>
/// A lease pledged for a loan through the API of a real server (<c>POST /api/shares/pledges</c> with a <c>lease_id</c>):
/// the loan paid into the trading account within the loan-to-value at the lease instrument's VWAP, the loan listed with its
/// collateral kind, the pledged lease refused for resale and a second pledge, and every bad input a problem+json —
/// shares and a lease at once, neither, a loan too large, another's lease or an unknown one (both read as no lease of yours).
/// </summary>
public sealed class LeasePledgeApiTests
{
    [Fact]
    public async Task A_lease_is_pledged_listed_with_its_collateral_kind_refused_for_resale_and_released_when_repaid()
    {
        string dir = TestServer.TempDir("lease-pledge-api");
        var (app, op) = await TestServer.StartInProcessAsync(dir);
        try
        {
            ExchangeSeed seed = await TestServer.SeedExchangeAsync(op, ("H100", "frankfurt"));
            Party provider = seed.Provider, buyer = seed.Buyer, poor = seed.Poor;
            string symbol = (await op.GetFromJsonAsync<JsonElement>("/api/exchange/instruments?gpu=H100&region=frankfurt&kind=H&limit=3"))
                .GetProperty("instruments")[2].GetProperty("symbol").GetString()!;
            // The buyer's lease: 2 GPU-hours at $2.00, the instrument's VWAP.
            await ApiTestHelpers.OkAsync(await provider.Http.PostSnakeAsync("/api/exchange/orders", new { instrument = symbol, side = "sell", price = 2_000_000, quantity = 2 }));
            JsonElement bought = await ApiTestHelpers.OkAsync(await buyer.Http.PostSnakeAsync("/api/exchange/orders",
                new { instrument = symbol, side = "buy", price = 2_000_000, quantity = 2, time_in_force = "ioc" }));
            long lease = bought.GetProperty("fills")[0].GetProperty("lease_id").GetInt64();

            // Bad input: every one a problem, nothing lent.
            await ApiTestHelpers.AssertProblemAsync(await buyer.Http.PostSnakeAsync("/api/shares/pledges", new { loan = 1 }), HttpStatusCode.BadRequest);
            await ApiTestHelpers.AssertProblemAsync(await buyer.Http.PostSnakeAsync("/api/shares/pledges", new { lease_id = lease, node = 5, shares = 1, loan = 1 }), HttpStatusCode.BadRequest);
            await ApiTestHelpers.AssertProblemAsync(await buyer.Http.PostSnakeAsync("/api/shares/pledges", new { lease_id = lease, shares = 1, loan = 1 }), HttpStatusCode.BadRequest);
            await ApiTestHelpers.AssertProblemAsync(await buyer.Http.PostSnakeAsync("/api/shares/pledges", new { lease_id = lease, loan = 0 }), HttpStatusCode.BadRequest);
            await ApiTestHelpers.AssertProblemAsync(await buyer.Http.PostSnakeAsync("/api/shares/pledges", new { lease_id = lease }), HttpStatusCode.BadRequest);
            // 2 × $2.00 less 20 % = $3.20, half of it at most.
            await ApiTestHelpers.AssertProblemAsync(await buyer.Http.PostSnakeAsync("/api/shares/pledges", new { lease_id = lease, loan = 1_600_001 }),
                HttpStatusCode.UnprocessableEntity, "loan_too_large");
            // Another's lease and an unknown one read alike: no lease of yours.
            await ApiTestHelpers.AssertProblemAsync(await poor.Http.PostSnakeAsync("/api/shares/pledges", new { lease_id = lease, loan = 1 }), HttpStatusCode.NotFound);
            await ApiTestHelpers.AssertProblemAsync(await buyer.Http.PostSnakeAsync("/api/shares/pledges", new { lease_id = 987_654_321, loan = 1 }), HttpStatusCode.NotFound);

            long before = (await buyer.Http.GetJsonAsync("/api/exchange/account")).GetProperty("available").GetInt64();
            var pledged = await buyer.Http.PostSnakeAsync("/api/shares/pledges", new { lease_id = lease, loan = 1_600_000 });
            Assert.Equal(HttpStatusCode.Created, pledged.StatusCode);
            JsonElement loan = await pledged.Content.ReadFromJsonAsync<JsonElement>();
            long loanId = loan.GetProperty("id").GetInt64();
            Assert.Equal(("lease", lease, 2L, symbol, "open", 3_200_000L, 5_000L), (loan.GetProperty("collateral").GetString(), loan.GetProperty("lease_id").GetInt64(),
                loan.GetProperty("gpu_hours").GetInt64(), loan.GetProperty("symbol").GetString(), loan.GetProperty("status").GetString(),
                loan.GetProperty("collateral_value").GetInt64(), loan.GetProperty("loan_to_value_bp").GetInt64()));
            Assert.Equal(before + 1_600_000, (await buyer.Http.GetJsonAsync("/api/exchange/account")).GetProperty("available").GetInt64());

            // Pledged: not pledged again, not resold; listed with its kind, to its borrower only.
            await ApiTestHelpers.AssertProblemAsync(await buyer.Http.PostSnakeAsync("/api/shares/pledges", new { lease_id = lease, loan = 1 }), HttpStatusCode.Conflict, "lease_pledged");
            await ApiTestHelpers.AssertProblemAsync(await buyer.Http.PostSnakeAsync($"/api/exchange/leases/{lease}/resell", new { instrument = symbol, price = 2_100_000, quantity = 1 }),
                HttpStatusCode.Conflict, "lease_pledged");
            JsonElement listed = Assert.Single((await buyer.Http.GetJsonAsync("/api/shares/loans")).GetProperty("loans").EnumerateArray().ToList());
            Assert.Equal((loanId, "lease"), (listed.GetProperty("id").GetInt64(), listed.GetProperty("collateral").GetString()));
            Assert.Empty((await poor.Http.GetJsonAsync("/api/shares/loans")).GetProperty("loans").EnumerateArray());
            await ApiTestHelpers.AssertProblemAsync(await poor.Http.PostSnakeAsync($"/api/shares/loans/{loanId}/repayments", new { amount = 1 }), HttpStatusCode.NotFound);

            // Repaid (a little interest may have accrued: more than due repays what is due): the lease can be resold again.
            JsonElement repaid = await ApiTestHelpers.OkAsync(await buyer.Http.PostSnakeAsync($"/api/shares/loans/{loanId}/repayments", new { amount = 2_000_000 }));
            Assert.Equal(("repaid", 0L, "lease"), (repaid.GetProperty("status").GetString(), repaid.GetProperty("due").GetInt64(), repaid.GetProperty("collateral").GetString()));
            await ApiTestHelpers.OkAsync(await buyer.Http.PostSnakeAsync($"/api/exchange/leases/{lease}/resell", new { instrument = symbol, price = 2_100_000, quantity = 1 }));
        }
        finally
        {
            await app.StopAsync();
            await app.DisposeAsync();
            Directory.Delete(dir, recursive: true);
        }
    }
}
