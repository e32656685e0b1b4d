using System.Text.Json;
using ComputeGrid.Cli.Demo;

namespace ComputeGrid.Server.Tests.Demo;

/// <summary>
/// The demo's actors are made through the operator API once per data folder (<see cref="DemoCast"/>): a second setup
/// (a restart) reuses every principal and key and moves no money; a lost key file gives the same principals new keys,
/// still funding nothing twice. A real in-process server; the provider and its nodes admitted as <c>serve --demo</c> does.
/// </summary>
public sealed class DemoCastTests
{
    [Fact]
    public async Task Setting_the_actors_up_again_reuses_their_principals_and_keys_and_funds_nothing_twice()
    {
        string dir = TestServer.TempDir("demo-cast");
        var (app, op) = await TestServer.StartInProcessAsync(dir);
        try
        {
            Party provider = await TestServer.NewProviderAsync(op, DemoWorld.Provider);
            foreach (DemoNode n in DemoWorld.Nodes) await TestServer.AdmitNodeAsync(op, provider.Id, n.Id);
            string operatorKey = TestServer.OperatorKey(dir);
            using var api = new DemoApi(new HttpClient { BaseAddress = op.BaseAddress });

            DemoCast first = await DemoCast.EnsureAsync(api, operatorKey, dir, CancellationToken.None);
            string file = DemoCast.PathIn(dir);
            if (!OperatingSystem.IsWindows()) Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(file)); // it holds keys
            Assert.Equal(provider.Id, first.Provider.Id);
            Assert.Equal(DemoWorld.Customers.Select(c => c.Name), first.Customers.Select(c => c.Name));
            Assert.Equal(DemoWorld.Nodes.Count, first.ExchangeNodes.Count);
            var money = await MoneyAsync(op, first);
            Assert.All(first.Customers, c => Assert.Equal(DemoWorld.CustomerFunding, money[c.Name].Balance));
            Assert.All(first.Buyers.Concat(first.Holders), t => Assert.Equal(DemoWorld.TraderFunding, money[t.Name].Trading));
            int fundings = await FundingsAsync(op);
            Assert.Equal(DemoWorld.Customers.Count + DemoWorld.Buyers.Count + DemoWorld.Holders.Count + 1, fundings); // and the provider's collateral

            // A restart: the same actors with the same keys, the same exchange nodes, no money moved, the shares issued once.
            DemoCast second = await DemoCast.EnsureAsync(api, operatorKey, dir, CancellationToken.None);
            Assert.Equal(first.Provider, second.Provider);
            Assert.Equal(first.Customers, second.Customers);
            Assert.Equal(first.Buyers.Concat(first.Holders), second.Buyers.Concat(second.Holders));
            Assert.Equal(first.ExchangeNodes, second.ExchangeNodes);
            Assert.Equal(money, await MoneyAsync(op, second));
            Assert.Equal(fundings, await FundingsAsync(op));
            using var anonymous = TestServer.Client(op.BaseAddress!.ToString(), null);
            foreach (DemoNode n in DemoWorld.Nodes.Where(n => n.SharesIssued))
                Assert.Equal(DemoWorld.ShareSupply, (await anonymous.GetJsonAsync($"/api/shares/{first.ExchangeNodes[n.Id]}")).GetProperty("supply").GetInt64());

            // The key file lost: the same principals get new keys (the old ones still name them), and nothing is funded again.
            File.Delete(file);
            DemoCast third = await DemoCast.EnsureAsync(api, operatorKey, dir, CancellationToken.None);
            Assert.Equal(first.Customers.Select(c => c.Id), third.Customers.Select(c => c.Id));
            Assert.All(first.Customers.Zip(third.Customers), p => Assert.NotEqual(p.First.Key, p.Second.Key));
            Assert.Equal(money, await MoneyAsync(op, third));
            Assert.Equal(fundings, await FundingsAsync(op));
        }
        finally
        {
            await app.StopAsync();
            await app.DisposeAsync();
            Directory.Delete(dir, recursive: true);
        }
    }

    // Each actor's balance and trading account, read with its own key.
    private static async Task<Dictionary<string, (long Balance, long Trading)>> MoneyAsync(HttpClient op, DemoCast cast)
    {
        var money = new Dictionary<string, (long, long)>();
        foreach (DemoActor a in cast.Customers.Concat(cast.Buyers).Concat(cast.Holders))
        {
            using var client = TestServer.Client(op.BaseAddress!.ToString(), a.Key);
            long balance = (await client.GetJsonAsync("/api/inference/account")).GetProperty("available").GetInt64();
            long trading = (await client.GetJsonAsync("/api/exchange/account")).GetProperty("available").GetInt64();
            money[a.Name] = (balance, trading);
        }
        return money;
    }

    // The fundings in the operators' log (customers' balances and the provider's collateral).
    private static async Task<int> FundingsAsync(HttpClient op)
    {
        JsonElement page = await op.GetJsonAsync("/api/operator-actions?limit=1000");
        return page.GetProperty("actions").EnumerateArray().Count(a => a.GetProperty("action").GetString() == "fund");
    }
}
