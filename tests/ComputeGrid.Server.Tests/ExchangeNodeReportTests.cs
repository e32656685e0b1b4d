using System.Net;
using ComputeGrid.Core;
using ComputeGrid.Ledger;
using Microsoft.Extensions.Time.Testing;

namespace ComputeGrid.Server.Tests;

/// <summary>
/// Heartbeats and delivery reports on the public port: an operator's only (nodes send theirs signed, on the node port).
/// The server runs on a fake clock, so a lease's hour can pass and be delivered within the test.
/// </summary>
public sealed class ExchangeNodeReportTests : IDisposable
{
    private static readonly DateTimeOffset Start = new(2026, 12, 7, 10, 30, 0, TimeSpan.Zero);
    private readonly string _dir = TestServer.TempDir("exchange-reports");

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task Heartbeats_and_delivery_are_refused_to_customers_and_providers_and_an_operators_pay_the_provider_exactly()
    {
        var clock = new FakeTimeProvider(Start);
        var (app, op) = await ApiTestHelpers.StartAsync(_dir, o => o with { Time = clock });
        try
        {
            var seed = await TestServer.SeedExchangeAsync(op, ("H100", "frankfurt"));
            long node = seed.Nodes[("H100", "frankfurt")];
            // The hour from 11:00 to 12:00: 2 GPUs at $2.00 an hour.
            var (symbol, leaseId) = await TestServer.LeaseHourAsync(op, seed, "frankfurt", "2026-12-07T11:00:00Z", gpus: 2, price: 2_000_000);
            Assert.True((await op.GetJsonAsync($"/api/exchange/instruments/{symbol}")).GetProperty("trading").GetBoolean());
            var delivery = new { from = "2026-12-07T11:00:00Z", to = "2026-12-07T12:00:00Z" };
            string leaseBefore = await op.GetStringAsync($"/api/exchange/leases/{leaseId}");
            string nodeBefore = await op.GetStringAsync($"/api/exchange/nodes/{node}");

            // Neither the buyer nor the provider reports for the node on the public port, even the node's own provider.
            foreach (Party party in new[] { seed.Buyer, seed.Provider, seed.Poor })
            {
                await ApiTestHelpers.AssertProblemAsync(await party.Http.PostAsync($"/api/exchange/nodes/{node}/heartbeat", null), HttpStatusCode.Forbidden);
                await ApiTestHelpers.AssertProblemAsync(await party.Http.PostSnakeAsync($"/api/exchange/leases/{leaseId}/delivery", delivery), HttpStatusCode.Forbidden);
            }
            Assert.Equal(leaseBefore, await op.GetStringAsync($"/api/exchange/leases/{leaseId}"));
            Assert.Equal(nodeBefore, await op.GetStringAsync($"/api/exchange/nodes/{node}"));
            // An operator's report of an hour that has not passed is the exchange's refusal, not the gate's.
            await ApiTestHelpers.AssertProblemAsync(await op.PostSnakeAsync($"/api/exchange/leases/{leaseId}/delivery", delivery), HttpStatusCode.UnprocessableEntity, "invalid_delivery");
            Assert.Equal(leaseBefore, await op.GetStringAsync($"/api/exchange/leases/{leaseId}"));

            // An operator's heartbeat is the node's: it moves last_heartbeat to the server's clock.
            clock.Advance(TimeSpan.FromSeconds(10));
            var beat = await ApiTestHelpers.OkAsync(await op.PostAsync($"/api/exchange/nodes/{node}/heartbeat", null));
            Assert.Equal("2026-12-07T10:30:10Z", beat.GetProperty("last_heartbeat").GetString());
            Assert.Equal(System.Text.Json.JsonValueKind.Null, beat.GetProperty("down_since").ValueKind);

            // To the end of the hour, the node stays alive through the operator's heartbeats (one every 20 s; 30 s fail it).
            while (clock.GetUtcNow() < new DateTimeOffset(2026, 12, 7, 12, 0, 0, TimeSpan.Zero))
            {
                clock.Advance(TimeSpan.FromSeconds(20));
                await ApiTestHelpers.OkAsync(await op.PostAsync($"/api/exchange/nodes/{node}/heartbeat", null));
            }
            Assert.Equal("active", (await op.GetJsonAsync($"/api/exchange/leases/{leaseId}")).GetProperty("status").GetString());

            var delivered = await ApiTestHelpers.OkAsync(await op.PostSnakeAsync($"/api/exchange/leases/{leaseId}/delivery", delivery));
            Assert.Equal("completed", delivered.GetProperty("status").GetString());
            Assert.Equal(2, delivered.GetProperty("delivered_gpu_hours").GetInt64());
            Assert.Equal(4_000_000, delivered.GetProperty("paid").GetInt64());
            Assert.Equal(0, delivered.GetProperty("refunded").GetInt64());
            // The provider was paid from the lease's escrow, which ends at exactly zero.
            UInt128 revenue = ChartOfAccounts.PrincipalAccount(AccountCode.ProviderRevenue, seed.Provider.Id);
            var account = await seed.Provider.Http.GetJsonAsync($"/api/ledger/accounts/{revenue}");
            Assert.Equal(4_000_000, account.GetProperty("credit_balance").GetInt64());
            var escrow = await op.GetJsonAsync($"/api/ledger/accounts/{delivered.GetProperty("escrow_account").GetString()}");
            Assert.Equal(4_000_000, escrow.GetProperty("credits_posted").GetInt64());
            Assert.Equal(4_000_000, escrow.GetProperty("debits_posted").GetInt64());
            Assert.Equal(0, escrow.GetProperty("credit_balance").GetInt64());
            Assert.Equal(ExchangeApiFixture.BuyerFunds - 4_000_000, (await seed.Buyer.Http.GetJsonAsync($"/api/ledger/accounts/{seed.Buyer.Account}")).GetProperty("credit_balance").GetInt64());
        }
        finally
        {
            op.Dispose();
            await app.StopAsync();
            await app.DisposeAsync();
        }
    }
}
