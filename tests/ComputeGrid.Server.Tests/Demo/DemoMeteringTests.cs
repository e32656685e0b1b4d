using ComputeGrid.Cli.Demo;
using ComputeGrid.Ledger;
using Microsoft.Extensions.Time.Testing;

namespace ComputeGrid.Server.Tests.Demo;

/// <summary>
/// The demo's metering (<see cref="DemoMetering"/>) on a real server under a fake clock: it reports each lease's hours
/// once they have passed, once, so the provider is paid from the escrow as the hours are delivered and the lease completes.
/// </summary>
public sealed class DemoMeteringTests : IDisposable
{
    private static readonly DateTimeOffset Start = new(2026, 12, 7, 10, 30, 0, TimeSpan.Zero);
    private readonly string _dir = TestServer.TempDir("demo-metering");

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task The_metering_reports_each_passed_hour_of_a_lease_once_and_the_provider_is_paid_as_it_is_delivered()
    {
        var clock = new FakeTimeProvider(Start);
        var (app, op) = await ApiTestHelpers.StartAsync(_dir, o => o with { Time = clock });
        try
        {
            var seed = await TestServer.SeedExchangeAsync(op, ("H100", "frankfurt"));
            long node = seed.Nodes[("H100", "frankfurt")];
            // Two leases of 2 GPUs at $2.00 an hour: 11:00-12:00 and 12:00-13:00.
            long[] leases = new long[2];
            for (int h = 0; h < 2; h++) leases[h] = (await TestServer.LeaseHourAsync(op, seed, "frankfurt", $"2026-12-07T{11 + h}:00:00Z", gpus: 2, price: 2_000_000)).Lease;
            using var api = new DemoApi(new HttpClient { BaseAddress = op.BaseAddress });
            var metering = new DemoMetering(api, TestServer.OperatorKey(_dir), new DemoActor("provider", seed.Provider.Id, seed.Provider.Key, null), clock);

            Assert.Null(await metering.SweepAsync(CancellationToken.None));
            Assert.Equal(0, metering.Reported); // no hour has passed

            await HeartbeatsUntilAsync(op, clock, node, new DateTimeOffset(2026, 12, 7, 12, 0, 0, TimeSpan.Zero));
            Assert.Null(await metering.SweepAsync(CancellationToken.None));
            Assert.Equal(1, metering.Reported);
            var first = await op.GetJsonAsync($"/api/exchange/leases/{leases[0]}");
            Assert.Equal(("completed", 4_000_000L), (first.GetProperty("status").GetString(), first.GetProperty("paid").GetInt64()));
            Assert.Equal(0, (await op.GetJsonAsync($"/api/exchange/leases/{leases[1]}")).GetProperty("delivered_gpu_hours").GetInt64());
            Assert.Null(await metering.SweepAsync(CancellationToken.None));
            Assert.Equal(1, metering.Reported); // nothing reported twice

            await HeartbeatsUntilAsync(op, clock, node, new DateTimeOffset(2026, 12, 7, 13, 0, 0, TimeSpan.Zero));
            Assert.Null(await metering.SweepAsync(CancellationToken.None));
            Assert.Equal(2, metering.Reported);
            Assert.Equal("completed", (await op.GetJsonAsync($"/api/exchange/leases/{leases[1]}")).GetProperty("status").GetString());
            UInt128 revenue = ChartOfAccounts.PrincipalAccount(AccountCode.ProviderRevenue, seed.Provider.Id);
            Assert.Equal(8_000_000, (await seed.Provider.Http.GetJsonAsync($"/api/ledger/accounts/{revenue}")).GetProperty("credit_balance").GetInt64());
        }
        finally
        {
            await app.StopAsync();
            await app.DisposeAsync();
        }
    }

    // The node stays alive through an operator's heartbeats (one every 20 s of the fake clock; 30 s without fail its leases).
    private static async Task HeartbeatsUntilAsync(HttpClient op, FakeTimeProvider clock, long node, DateTimeOffset until)
    {
        while (clock.GetUtcNow() < until)
        {
            clock.Advance(TimeSpan.FromSeconds(20));
            await ApiTestHelpers.OkAsync(await op.PostAsync($"/api/exchange/nodes/{node}/heartbeat", null));
        }
    }
}
