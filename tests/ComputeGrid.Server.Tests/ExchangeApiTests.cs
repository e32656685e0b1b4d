using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using ComputeGrid.Core;
using ComputeGrid.Ledger;
using ComputeGrid.Server.Inference;
using ComputeGrid.Server.Trust;
using CsCheck;
using Microsoft.AspNetCore.Builder;

namespace ComputeGrid.Server.Tests;

/// <summary>
/// A real server on loopback seeded through the API (<see cref="TestServer.SeedExchangeAsync"/>): customers buyer ($1,000)
/// and poor ($1), a provider with $100 of collateral and an admitted, listed node of 8 GPUs per (class, region), and a
/// second provider with one admitted node. Each test trades its own instruments (GPU class × region) so the books,
/// tapes and price indexes of different tests never mix. Every party trades with its own key; traders are principals.
/// </summary>
public sealed class ExchangeApiFixture : IAsyncLifetime
{
    public const long BuyerFunds = 1_000_000_000, PoorFunds = 1_000_000, ProviderCollateral = 100_000_000; // $1,000, $1 and $100
    public const string OtherNode = "other-node-01";

    public string Dir { get; } = TestServer.TempDir("exchange-api");
    public WebApplication App { get; private set; } = null!;
    public HttpClient Operator { get; private set; } = null!;
    public HttpClient Anonymous { get; private set; } = null!;
    public ExchangeSeed Seed { get; private set; } = null!;
    /// <summary>A second provider, with an admitted node of its own (not listed).</summary>
    public Party Other { get; private set; } = null!;
    private NodeHeartbeats? _heartbeats;

    public Party Buyer => Seed.Buyer;
    public Party Poor => Seed.Poor;
    public Party Provider => Seed.Provider;
    public UInt128 Revenue => ChartOfAccounts.PrincipalAccount(AccountCode.ProviderRevenue, Provider.Id);
    public UInt128 Collateral => ChartOfAccounts.PrincipalAccount(AccountCode.ProviderCollateral, Provider.Id);

    public async Task InitializeAsync()
    {
        // Every client of the tests calls from 127.0.0.1, and market data is public: it is rate-limited per address
        // (100 a second by default), which the snapshots of the refusal cases alone would pass.
        (App, Operator) = await TestServer.StartInProcessAsync(Dir, limits: new ServerLimits { Anonymous = new RateLimit(10_000, 20_000) });
        Anonymous = TestServer.Client(Operator.BaseAddress!.ToString(), null);
        Seed = await TestServer.SeedExchangeAsync(Operator, ("B200", "frankfurt"), ("H100", "tokyo"), ("A100", "dallas"), ("H200", "london"), ("H100", "madrid"),
            ("H100", "osaka"), ("H200", "mumbai"), ("A100", "sydney"), ("RTX4090", "frankfurt"));
        Other = await TestServer.NewProviderAsync(Operator, "other", collateralMicroUsd: 10_000_000);
        await TestServer.AdmitNodeAsync(Operator, Other.Id, OtherNode);
        // The nodes are alive: the exchange would fail a lease whose node missed its heartbeats for 30 s.
        _heartbeats = new NodeHeartbeats(Operator, Seed.Nodes.Values, TimeSpan.FromSeconds(5));
    }

    public async Task DisposeAsync()
    {
        if (_heartbeats is not null) await _heartbeats.DisposeAsync();
        foreach (var http in new[] { Operator, Anonymous, Buyer.Http, Poor.Http, Provider.Http, Other.Http }) http.Dispose();
        await App.StopAsync();
        await App.DisposeAsync();
        Directory.Delete(Dir, recursive: true);
    }
}

public sealed class ExchangeApiTests(ExchangeApiFixture f) : IClassFixture<ExchangeApiFixture>
{
    private const long Price = 2_000_000; // $2.00 per GPU-hour

    private HttpClient Op => f.Operator;

    /// <summary>
    /// The hourly instrument of a class and region that delivers two hours ahead: always trading, whatever the minute
    /// the test runs (the next hour's gate may close during the test).
    /// </summary>
    private async Task<string> HourlyAsync(string gpu, string region)
    {
        var page = await f.Anonymous.GetJsonAsync($"/api/exchange/instruments?gpu={gpu}&region={region}&kind=H&limit=3");
        var instruments = page.GetProperty("instruments").EnumerateArray().ToArray();
        Assert.Equal(3, instruments.Length);
        Assert.All(instruments, i => Assert.Equal(gpu, i.GetProperty("gpu").GetString()));
        return instruments[2].GetProperty("symbol").GetString()!;
    }

    private static async Task<JsonElement> OrderAsync(Party trader, string symbol, string side, long price, long quantity, string tif = "gtc") =>
        await ApiTestHelpers.OkAsync(await trader.Http.PostSnakeAsync("/api/exchange/orders", new { instrument = symbol, side, price, quantity, time_in_force = tif }));

    /// <summary>A party's own balance account, as the party reads it.</summary>
    private static Task<JsonElement> AccountAsync(Party p) => p.Http.GetJsonAsync($"/api/ledger/accounts/{p.Account}");

    private static long[] OrderIds(JsonElement page) => page.GetProperty("orders").EnumerateArray().Select(o => o.GetProperty("order_id").GetInt64()).ToArray();

    private static long[] LeaseIds(JsonElement page) => page.GetProperty("leases").EnumerateArray().Select(l => l.GetProperty("id").GetInt64()).ToArray();

    [Fact]
    public async Task A_batch_answers_each_order_in_order_refusing_bad_ones_alone_and_crossing_batches_trade()
    {
        string symbol = await HourlyAsync("RTX4090", "frankfurt");
        long tick = (await f.Anonymous.GetJsonAsync($"/api/exchange/instruments/{symbol}")).GetProperty("tick").GetInt64();
        var sells = new object[]
        {
            new { instrument = symbol, side = "sell", price = 500_000, quantity = 2 },
            new { instrument = "RTX4090.nowhere.H.2020-01-01T00", side = "sell", price = 500_000, quantity = 1 },
            new { instrument = symbol, side = "sell", price = 500_000 + tick / 2 + 1, quantity = 1 }, // off the tick
            new { instrument = symbol, side = "sideways", price = 500_000, quantity = 1 },
            new { instrument = symbol, side = "sell", price = 510_000, quantity = 3 },
        };
        var answer = await ApiTestHelpers.OkAsync(await f.Provider.Http.PostSnakeAsync("/api/exchange/orders/batch", new { orders = sells }));
        var results = answer.GetProperty("results").EnumerateArray().ToArray();
        Assert.Equal(5, results.Length);
        Assert.Equal(2, answer.GetProperty("accepted").GetInt32());
        Assert.Equal("resting", results[0].GetProperty("order").GetProperty("status").GetString());
        Assert.Equal((404, "unknown_instrument"), (results[1].GetProperty("status").GetInt32(), results[1].GetProperty("error").GetString()));
        Assert.Equal(JsonValueKind.Null, results[2].GetProperty("order").ValueKind);
        Assert.Equal(422, results[2].GetProperty("status").GetInt32());
        Assert.Equal(400, results[3].GetProperty("status").GetInt32());
        Assert.Equal("resting", results[4].GetProperty("order").GetProperty("status").GetString());
        Assert.True(results[0].GetProperty("order").GetProperty("order_id").GetInt64() < results[4].GetProperty("order").GetProperty("order_id").GetInt64());

        // A buyer's batch crosses them: each buy fills against the book as the single endpoint would, in order.
        var buys = new object[]
        {
            new { instrument = symbol, side = "buy", price = 500_000, quantity = 2 },
            new { instrument = symbol, side = "buy", price = 510_000, quantity = 1, time_in_force = "ioc" },
        };
        answer = await ApiTestHelpers.OkAsync(await f.Buyer.Http.PostSnakeAsync("/api/exchange/orders/batch", new { orders = buys }));
        results = answer.GetProperty("results").EnumerateArray().ToArray();
        Assert.Equal("filled", results[0].GetProperty("order").GetProperty("status").GetString());
        Assert.Equal(500_000, results[0].GetProperty("order").GetProperty("fills")[0].GetProperty("price").GetInt64());
        Assert.Equal("filled", results[1].GetProperty("order").GetProperty("status").GetString());
        Assert.Equal(510_000, results[1].GetProperty("order").GetProperty("fills")[0].GetProperty("price").GetInt64());

        // The batch's own shape: empty, too many, no credential.
        await ApiTestHelpers.AssertProblemAsync(await f.Buyer.Http.PostSnakeAsync("/api/exchange/orders/batch", new { orders = Array.Empty<object>() }), HttpStatusCode.BadRequest);
        var many = Enumerable.Range(0, 4097).Select(_ => (object)new { instrument = symbol, side = "buy", price = 100_000, quantity = 1 }).ToArray();
        await ApiTestHelpers.AssertProblemAsync(await f.Buyer.Http.PostSnakeAsync("/api/exchange/orders/batch", new { orders = many }), HttpStatusCode.BadRequest);
        Assert.Equal(HttpStatusCode.Unauthorized, (await f.Anonymous.PostSnakeAsync("/api/exchange/orders/batch", new { orders = buys })).StatusCode);
        // Nobody trades for another: a batch has no owner field, and one given is refused as an unknown member or ignored, never obeyed.
        var orders = await f.Buyer.Http.GetJsonAsync("/api/exchange/orders");
        Assert.DoesNotContain(orders.GetProperty("orders").EnumerateArray(), o => o.GetProperty("owner").GetInt64() != (long)f.Buyer.Id);
    }

    [Fact]
    public async Task A_crossing_pair_fills_and_shows_in_the_lease_tape_candles_index_and_book()
    {
        string symbol = await HourlyAsync("B200", "frankfurt");
        var instrument = await f.Anonymous.GetJsonAsync($"/api/exchange/instruments/{symbol}");
        Assert.True(instrument.GetProperty("trading").GetBoolean());
        Assert.Equal(1, instrument.GetProperty("hours").GetInt64());
        Assert.Equal("hourly_spot", instrument.GetProperty("kind").GetString());
        Assert.Equal("USDC", instrument.GetProperty("asset").GetString());
        long buyerBefore = (await AccountAsync(f.Buyer)).GetProperty("credit_balance").GetInt64();

        var sell = await OrderAsync(f.Provider, symbol, "sell", Price, 4);
        Assert.Equal("resting", sell.GetProperty("status").GetString());
        var book = await f.Anonymous.GetJsonAsync($"/api/exchange/book/{symbol}?depth=5");
        var ask = Assert.Single(book.GetProperty("asks").EnumerateArray());
        Assert.Equal(Price, ask.GetProperty("price").GetInt64());
        Assert.Equal(4, ask.GetProperty("quantity").GetInt64());

        // A buy at a higher limit fills at the maker's price.
        var buy = await OrderAsync(f.Buyer, symbol, "buy", 2_100_000, 3);
        Assert.Equal("filled", buy.GetProperty("status").GetString());
        var fill = Assert.Single(buy.GetProperty("fills").EnumerateArray());
        Assert.Equal(Price, fill.GetProperty("price").GetInt64());
        Assert.Equal(3, fill.GetProperty("quantity").GetInt64());
        Assert.Equal(sell.GetProperty("order_id").GetInt64(), fill.GetProperty("counter_order_id").GetInt64());
        long leaseId = fill.GetProperty("lease_id").GetInt64();

        // The lease's parties are principals: the buyer, and the provider (also its payee, paid into its revenue account).
        var lease = await f.Buyer.Http.GetJsonAsync($"/api/exchange/leases/{leaseId}");
        Assert.Equal((long)f.Buyer.Id, lease.GetProperty("buyer").GetInt64());
        Assert.Equal((long)f.Provider.Id, lease.GetProperty("provider").GetInt64());
        Assert.Equal((long)f.Provider.Id, lease.GetProperty("payee").GetInt64());
        Assert.Equal(f.Revenue.ToString(), lease.GetProperty("payee_account").GetString());
        Assert.Equal(symbol, lease.GetProperty("symbol").GetString());
        Assert.Equal(3, lease.GetProperty("gpus").GetInt32());
        Assert.Equal(Price * 3, lease.GetProperty("notional").GetInt64());
        Assert.Equal("active", lease.GetProperty("status").GetString());
        Assert.Equal(instrument.GetProperty("delivery_start").GetString(), lease.GetProperty("start").GetString());
        Assert.Equal(instrument.GetProperty("delivery_end").GetString(), lease.GetProperty("end").GetString());
        Assert.Equal(f.Seed.Nodes[("B200", "frankfurt")], Assert.Single(lease.GetProperty("nodes").EnumerateArray()).GetProperty("node").GetInt64());
        // The provider sees it too; another customer does not.
        Assert.Equal(lease.GetRawText(), (await f.Provider.Http.GetJsonAsync($"/api/exchange/leases/{leaseId}")).GetRawText());
        await ApiTestHelpers.AssertProblemAsync(await f.Poor.Http.GetAsync($"/api/exchange/leases/{leaseId}"), HttpStatusCode.NotFound, "unknown_lease");
        Assert.Contains(leaseId, LeaseIds(await f.Buyer.Http.GetJsonAsync("/api/exchange/leases")));

        // The buyer paid exactly price × quantity; nothing stays on hold.
        var buyer = await AccountAsync(f.Buyer);
        Assert.Equal(buyerBefore - Price * 3, buyer.GetProperty("credit_balance").GetInt64());
        Assert.Equal(0, buyer.GetProperty("debits_pending").GetInt64());
        // The lease's escrow is an account of the chart: the lease's own, the system's (operators read it), never below zero.
        UInt128 escrowId = UInt128.Parse(lease.GetProperty("escrow_account").GetString()!);
        Assert.True(ChartOfAccounts.TryDecode(escrowId, out ushort code, out _, out ulong number));
        Assert.Equal((ushort)AccountCode.LeaseEscrow, code);
        Assert.Equal((ulong)leaseId, number);
        var escrow = await Op.GetJsonAsync($"/api/ledger/accounts/{escrowId}");
        Assert.Equal(Price * 3, escrow.GetProperty("credits_posted").GetInt64());
        Assert.Equal("lease_escrow", escrow.GetProperty("kind").GetString());
        Assert.Equal("debits_must_not_exceed_credits", escrow.GetProperty("flags").GetString());
        Assert.Equal(JsonValueKind.Null, escrow.GetProperty("owner").ValueKind);
        await ApiTestHelpers.AssertProblemAsync(await f.Buyer.Http.GetAsync($"/api/ledger/accounts/{escrowId}"), HttpStatusCode.NotFound);

        var trades = await f.Anonymous.GetJsonAsync($"/api/exchange/trades/{symbol}");
        var trade = Assert.Single(trades.GetProperty("trades").EnumerateArray());
        Assert.Equal(Price, trade.GetProperty("price").GetInt64());
        Assert.Equal(3, trade.GetProperty("quantity").GetInt64());
        Assert.Equal("buy", trade.GetProperty("taker_side").GetString());
        Assert.Equal(fill.GetProperty("sequence").GetInt64(), trade.GetProperty("sequence").GetInt64());
        Assert.True(ApiTime.TryParse(trade.GetProperty("timestamp").GetString(), null, out _));

        foreach (var interval in new[] { "1m", "1h", "1d" })
        {
            var candles = await f.Anonymous.GetJsonAsync($"/api/exchange/candles/{symbol}?interval={interval}");
            var c = Assert.Single(candles.GetProperty("candles").EnumerateArray());
            Assert.Equal(Price, c.GetProperty("open").GetInt64());
            Assert.Equal(Price, c.GetProperty("close").GetInt64());
            Assert.Equal(3, c.GetProperty("volume").GetInt64());
            Assert.Equal(Price * 3, c.GetProperty("notional").GetInt64());
        }

        var b200 = await f.Anonymous.GetJsonAsync("/api/exchange/index/B200");
        Assert.Equal(Price, b200.GetProperty("vwap").GetInt64());
        Assert.Equal(3, b200.GetProperty("volume").GetInt64());
        var all = await f.Anonymous.GetJsonAsync("/api/exchange/index");
        var classes = all.GetProperty("classes").EnumerateArray().ToDictionary(c => c.GetProperty("gpu").GetString()!);
        Assert.Equal(new[] { "H100", "H200", "B200", "A100", "RTX4090" }, classes.Keys);
        Assert.Equal(Price, classes["B200"].GetProperty("vwap").GetInt64());
        // A class with no trades in the window has no price (null), never 0; which classes other tests traded first varies.
        Assert.All(classes.Values, c => Assert.True(c.GetProperty("vwap").ValueKind == JsonValueKind.Null || c.GetProperty("vwap").GetInt64() > 0));

        book = await f.Anonymous.GetJsonAsync($"/api/exchange/book/{symbol}");
        Assert.Empty(book.GetProperty("bids").EnumerateArray());
        ask = Assert.Single(book.GetProperty("asks").EnumerateArray());
        Assert.Equal(1, ask.GetProperty("quantity").GetInt64());
        var open = await f.Provider.Http.GetJsonAsync("/api/exchange/orders");
        Assert.Contains(open.GetProperty("orders").EnumerateArray(),
            o => o.GetProperty("order_id").GetInt64() == sell.GetProperty("order_id").GetInt64() && o.GetProperty("remaining").GetInt64() == 1
                 && o.GetProperty("owner").GetInt64() == (long)f.Provider.Id && o.GetProperty("side").GetString() == "sell");
    }

    [Fact]
    public async Task Replace_moves_the_hold_and_cancel_releases_it()
    {
        string symbol = await HourlyAsync("H200", "london");
        var buy = await OrderAsync(f.Buyer, symbol, "buy", 1_500_000, 2);
        Assert.Equal("resting", buy.GetProperty("status").GetString());
        long id = buy.GetProperty("order_id").GetInt64();
        Assert.Equal(1_500_000 * 2, (await AccountAsync(f.Buyer)).GetProperty("debits_pending").GetInt64());

        var replaced = await ApiTestHelpers.OkAsync(await f.Buyer.Http.PutSnakeAsync($"/api/exchange/orders/{id}", new { price = 1_600_000, quantity = 3 }));
        Assert.Equal("resting", replaced.GetProperty("status").GetString());
        Assert.Equal(3, replaced.GetProperty("remaining").GetInt64());
        Assert.Equal(1_600_000 * 3, (await AccountAsync(f.Buyer)).GetProperty("debits_pending").GetInt64());

        // Somebody else's cancel answers as for an order that does not exist, and changes nothing.
        await ApiTestHelpers.AssertProblemAsync(await f.Poor.Http.DeleteAsync($"/api/exchange/orders/{id}"), HttpStatusCode.NotFound, "unknown_order");
        Assert.Equal(1_600_000 * 3, (await AccountAsync(f.Buyer)).GetProperty("debits_pending").GetInt64());
        var cancelled = await ApiTestHelpers.OkAsync(await f.Buyer.Http.DeleteAsync($"/api/exchange/orders/{id}"));
        Assert.Equal("cancelled", cancelled.GetProperty("status").GetString());
        Assert.Equal(0, (await AccountAsync(f.Buyer)).GetProperty("debits_pending").GetInt64());
        await ApiTestHelpers.AssertProblemAsync(await f.Buyer.Http.DeleteAsync($"/api/exchange/orders/{id}"), HttpStatusCode.NotFound, "unknown_order");
    }

    [Fact]
    public async Task A_customer_cannot_cancel_or_replace_another_traders_order_which_still_rests()
    {
        string symbol = await HourlyAsync("H100", "osaka");
        var buy = await OrderAsync(f.Buyer, symbol, "buy", 1_700_000, 2);
        long id = buy.GetProperty("order_id").GetInt64();
        async Task<string> StateAsync() => string.Join("\n", (await f.Buyer.Http.GetStringAsync("/api/exchange/orders")),
            (await f.Anonymous.GetJsonAsync($"/api/exchange/book/{symbol}")).GetProperty("bids").GetRawText(), (await AccountAsync(f.Buyer)).GetRawText(),
            await ApiTestHelpers.LedgerCountsAsync(Op));
        string before = await StateAsync();

        foreach (Party other in new[] { f.Poor, f.Provider, f.Other })
        {
            await ApiTestHelpers.AssertProblemAsync(await other.Http.DeleteAsync($"/api/exchange/orders/{id}"), HttpStatusCode.NotFound, "unknown_order");
            await ApiTestHelpers.AssertProblemAsync(await other.Http.PutSnakeAsync($"/api/exchange/orders/{id}", new { price = 1_000_000, quantity = 1 }),
                HttpStatusCode.NotFound, "unknown_order");
        }
        // Operators do not trade: they cannot cancel a trader's order either.
        await ApiTestHelpers.AssertProblemAsync(await Op.DeleteAsync($"/api/exchange/orders/{id}"), HttpStatusCode.Forbidden);
        Assert.Equal(before, await StateAsync());

        // It still rests, whole, with its hold.
        var mine = await f.Buyer.Http.GetJsonAsync("/api/exchange/orders");
        var order = Assert.Single(mine.GetProperty("orders").EnumerateArray(), o => o.GetProperty("order_id").GetInt64() == id);
        Assert.Equal(2, order.GetProperty("remaining").GetInt64());
        Assert.Equal(1_700_000 * 2, order.GetProperty("hold_amount").GetInt64());
        var bid = Assert.Single((await f.Anonymous.GetJsonAsync($"/api/exchange/book/{symbol}")).GetProperty("bids").EnumerateArray());
        Assert.Equal(2, bid.GetProperty("quantity").GetInt64());
        Assert.Equal("cancelled", (await ApiTestHelpers.OkAsync(await f.Buyer.Http.DeleteAsync($"/api/exchange/orders/{id}"))).GetProperty("status").GetString());
    }

    [Fact]
    public async Task Traders_list_only_their_own_orders_and_leases_and_naming_another_owner_is_403()
    {
        string symbol = await HourlyAsync("H200", "mumbai");
        long sell = (await OrderAsync(f.Provider, symbol, "sell", Price, 4)).GetProperty("order_id").GetInt64();
        long lease = (await OrderAsync(f.Buyer, symbol, "buy", Price, 1)).GetProperty("fills")[0].GetProperty("lease_id").GetInt64();
        long buyerOrder = (await OrderAsync(f.Buyer, symbol, "buy", 1_900_000, 1)).GetProperty("order_id").GetInt64();
        long poorOrder = (await OrderAsync(f.Poor, symbol, "buy", 500_000, 1)).GetProperty("order_id").GetInt64();
        try
        {
            foreach (var (party, own, others) in new[] { (f.Buyer, buyerOrder, new[] { poorOrder, sell }), (f.Poor, poorOrder, new[] { buyerOrder, sell }), (f.Provider, sell, new[] { buyerOrder, poorOrder }) })
            {
                var orders = await party.Http.GetJsonAsync("/api/exchange/orders");
                Assert.Contains(own, OrderIds(orders));
                Assert.All(others, o => Assert.DoesNotContain(o, OrderIds(orders)));
                Assert.All(orders.GetProperty("orders").EnumerateArray(), o => Assert.Equal((long)party.Id, o.GetProperty("owner").GetInt64()));
                // Naming oneself is the same list; naming anyone else is refused.
                Assert.Equal(orders.GetRawText(), (await party.Http.GetJsonAsync($"/api/exchange/orders?owner={party.Id}")).GetRawText());
                foreach (Party other in new[] { f.Buyer, f.Poor, f.Provider }.Where(p => p.Id != party.Id))
                {
                    await ApiTestHelpers.AssertProblemAsync(await party.Http.GetAsync($"/api/exchange/orders?owner={other.Id}"), HttpStatusCode.Forbidden);
                    await ApiTestHelpers.AssertProblemAsync(await party.Http.GetAsync($"/api/exchange/leases?owner={other.Id}"), HttpStatusCode.Forbidden);
                }
                var leases = await party.Http.GetJsonAsync("/api/exchange/leases");
                Assert.Equal(party.Id != f.Poor.Id, LeaseIds(leases).Contains(lease));
                Assert.All(leases.GetProperty("leases").EnumerateArray(), l => Assert.Contains((long)party.Id,
                    new[] { l.GetProperty("buyer").GetInt64(), l.GetProperty("payee").GetInt64(), l.GetProperty("provider").GetInt64() }));
            }
        }
        finally
        {
            foreach (var (party, id) in new[] { (f.Buyer, buyerOrder), (f.Poor, poorOrder), (f.Provider, sell) }) await ApiTestHelpers.OkAsync(await party.Http.DeleteAsync($"/api/exchange/orders/{id}"));
        }
    }

    [Fact]
    public async Task An_operator_lists_everyones_orders_and_leases_a_page_at_a_time_by_after_and_next()
    {
        string symbol = await HourlyAsync("H200", "mumbai");
        long sell = (await OrderAsync(f.Provider, symbol, "sell", 2_200_000, 3)).GetProperty("order_id").GetInt64();
        long lease = (await OrderAsync(f.Buyer, symbol, "buy", 2_200_000, 1)).GetProperty("fills")[0].GetProperty("lease_id").GetInt64();
        long buyerOrder = (await OrderAsync(f.Buyer, symbol, "buy", 1_800_000, 1)).GetProperty("order_id").GetInt64();
        long poorOrder = (await OrderAsync(f.Poor, symbol, "buy", 400_000, 1)).GetProperty("order_id").GetInt64();
        try
        {
            foreach (var (path, ids) in new (string, Func<JsonElement, long[]>)[] { ("/api/exchange/orders", OrderIds), ("/api/exchange/leases", LeaseIds) })
            {
                long[] everything = ids(await Op.GetJsonAsync($"{path}?limit=1000"));
                var paged = new List<long>();
                string url = $"{path}?limit=2";
                while (true)
                {
                    var page = await Op.GetJsonAsync(url);
                    long[] got = ids(page);
                    Assert.InRange(got.Length, 1, 2);
                    paged.AddRange(got);
                    if (page.GetProperty("next").ValueKind == JsonValueKind.Null) break;
                    long next = page.GetProperty("next").GetInt64();
                    Assert.Equal(got[^1], next); // the cursor is the last id of the page
                    url = $"{path}?limit=2&after={next}";
                }
                Assert.Equal(everything, paged);
                Assert.Equal(everything.Order(), everything); // by id
                Assert.True(everything.Length >= 2, $"{path}: {everything.Length}");
                // Everyone's lists are parts of the operator's, and ?owner= gives any one of them.
                foreach (Party party in new[] { f.Buyer, f.Poor, f.Provider })
                {
                    string own = await party.Http.GetStringAsync($"{path}?limit=1000");
                    Assert.Equal(own, await Op.GetStringAsync($"{path}?limit=1000&owner={party.Id}"));
                    Assert.All(ids(JsonDocument.Parse(own).RootElement), id => Assert.Contains(id, everything));
                }
            }
            long[] allOrders = OrderIds(await Op.GetJsonAsync("/api/exchange/orders?limit=1000"));
            Assert.Contains(sell, allOrders);
            Assert.Contains(buyerOrder, allOrders);
            Assert.Contains(poorOrder, allOrders);
            Assert.Contains(lease, LeaseIds(await Op.GetJsonAsync("/api/exchange/leases?limit=1000")));
        }
        finally
        {
            foreach (var (party, id) in new[] { (f.Buyer, buyerOrder), (f.Poor, poorOrder), (f.Provider, sell) }) await ApiTestHelpers.OkAsync(await party.Http.DeleteAsync($"/api/exchange/orders/{id}"));
        }
    }

    [Fact]
    public async Task A_provider_lists_capacity_only_for_a_node_admitted_for_it()
    {
        async Task<string> NodesAsync() => string.Join(",", (await Op.GetJsonAsync("/api/exchange/nodes")).GetProperty("nodes").EnumerateArray()
            .Select(n => $"{n.GetProperty("id")}:{n.GetProperty("provider")}:{n.GetProperty("name")}:{n.GetProperty("gpu")}:{n.GetProperty("region")}:{n.GetProperty("gpus")}"));
        string before = await NodesAsync();
        var node = new { node_id = ExchangeApiFixture.OtherNode, gpu = "RTX4090", region = "toronto", gpus = 4 };
        // Another provider's admitted node, and a node nobody admitted: both as if they did not exist.
        await ApiTestHelpers.AssertProblemAsync(await f.Provider.Http.PostSnakeAsync("/api/exchange/nodes", node), HttpStatusCode.NotFound);
        await ApiTestHelpers.AssertProblemAsync(await f.Provider.Http.PostSnakeAsync("/api/exchange/nodes", node with { node_id = "never-admitted" }), HttpStatusCode.NotFound);
        // Customers list no capacity at all.
        await ApiTestHelpers.AssertProblemAsync(await f.Buyer.Http.PostSnakeAsync("/api/exchange/nodes", node), HttpStatusCode.Forbidden);
        Assert.Equal(before, await NodesAsync());

        // Its own provider lists it; each provider sees only its own capacity, the operator all of it.
        var listed = await ApiTestHelpers.OkAsync(await f.Other.Http.PostSnakeAsync("/api/exchange/nodes", node));
        Assert.Equal((long)f.Other.Id, listed.GetProperty("provider").GetInt64());
        Assert.Equal(ExchangeApiFixture.OtherNode, listed.GetProperty("name").GetString());
        Assert.Equal(4, listed.GetProperty("gpus").GetInt32());
        long id = listed.GetProperty("id").GetInt64();
        var others = (await f.Other.Http.GetJsonAsync("/api/exchange/nodes")).GetProperty("nodes").EnumerateArray().ToArray();
        Assert.Equal(id, Assert.Single(others).GetProperty("id").GetInt64());
        var mine = (await f.Provider.Http.GetJsonAsync("/api/exchange/nodes")).GetProperty("nodes").EnumerateArray().ToArray();
        Assert.Equal(f.Seed.Nodes.Values.Order(), mine.Select(n => n.GetProperty("id").GetInt64()).Order());
        await ApiTestHelpers.AssertProblemAsync(await f.Provider.Http.GetAsync($"/api/exchange/nodes/{id}"), HttpStatusCode.NotFound, "unknown_node");
        Assert.Contains(id, (await Op.GetJsonAsync("/api/exchange/nodes")).GetProperty("nodes").EnumerateArray().Select(n => n.GetProperty("id").GetInt64()));
    }

    [Fact]
    public async Task An_outage_on_the_public_port_is_the_operators_providers_and_customers_are_refused_and_nothing_changes()
    {
        string symbol = await HourlyAsync("A100", "sydney");
        long node = f.Seed.Nodes[("A100", "sydney")];
        await OrderAsync(f.Provider, symbol, "sell", Price, 2);
        long leaseId = (await OrderAsync(f.Buyer, symbol, "buy", Price, 2)).GetProperty("fills")[0].GetProperty("lease_id").GetInt64();
        async Task<string> StateAsync() => string.Join("\n", await Op.GetStringAsync($"/api/exchange/leases/{leaseId}"),
            (await Op.GetJsonAsync($"/api/exchange/nodes/{node}")).GetProperty("down_since").GetRawText(),
            (await Op.PostJsonAsync("/api/ledger/accounts/lookup", new[] { f.Buyer.Account.ToString(), f.Collateral.ToString() })).GetRawText(),
            await ApiTestHelpers.LedgerCountsAsync(Op));
        string before = await StateAsync();
        long buyerBefore = (await AccountAsync(f.Buyer)).GetProperty("credit_balance").GetInt64();
        long collateralBefore = (await Op.GetJsonAsync($"/api/ledger/accounts/{f.Collateral}")).GetProperty("credit_balance").GetInt64();

        // Outages come from the node itself (signed, on the node port) or an operator: not from a provider's key (its
        // own or a rival's) nor a customer's.
        await ApiTestHelpers.AssertProblemAsync(await f.Other.Http.PostAsync($"/api/exchange/nodes/{node}/outage", null), HttpStatusCode.Forbidden);
        await ApiTestHelpers.AssertProblemAsync(await f.Provider.Http.PostAsync($"/api/exchange/nodes/{node}/outage", null), HttpStatusCode.Forbidden);
        await ApiTestHelpers.AssertProblemAsync(await f.Buyer.Http.PostAsync($"/api/exchange/nodes/{node}/outage", null), HttpStatusCode.Forbidden);
        Assert.Equal(before, await StateAsync());

        // An operator's report takes the node down. The lease delivers two hours from now: it is not in delivery, so it
        // stays (it fails at its start if the node is still down then; a node back up by then delivers it), and no money
        // moves. The node backs no new sells meanwhile, and the refusal says which node is down.
        var down = await ApiTestHelpers.OkAsync(await Op.PostAsync($"/api/exchange/nodes/{node}/outage", null));
        Assert.True(ApiTime.TryParse(down.GetProperty("down_since").GetString(), null, out _));
        var lease = await f.Buyer.Http.GetJsonAsync($"/api/exchange/leases/{leaseId}");
        Assert.Equal("active", lease.GetProperty("status").GetString());
        Assert.Equal(buyerBefore, (await AccountAsync(f.Buyer)).GetProperty("credit_balance").GetInt64());
        Assert.Equal(collateralBefore, (await Op.GetJsonAsync($"/api/ledger/accounts/{f.Collateral}")).GetProperty("credit_balance").GetInt64());
        var refused = await ApiTestHelpers.AssertProblemAsync(await f.Provider.Http.PostSnakeAsync("/api/exchange/orders",
            new { instrument = symbol, side = "sell", price = Price, quantity = 7 }), HttpStatusCode.Conflict, "insufficient_capacity");
        Assert.Contains($"node {node}", refused.GetProperty("detail").GetString());
        Assert.Contains("down", refused.GetProperty("detail").GetString());
        // Heard again, the node is up and its free GPUs back sells again.
        await ApiTestHelpers.OkAsync(await Op.PostAsync($"/api/exchange/nodes/{node}/heartbeat", null));
        Assert.Equal(JsonValueKind.Null, (await Op.GetJsonAsync($"/api/exchange/nodes/{node}")).GetProperty("down_since").ValueKind);
        await OrderAsync(f.Provider, symbol, "sell", Price, 6);
    }

    /// <summary>The transfer space each component's transfer codes belong to.</summary>
    private static TransferSpace SpaceOfCode(int code) => (TransferCode)code switch
    {
        TransferCode.Funding => TransferSpace.Funding,
        TransferCode.InferenceHold or TransferCode.InferenceRevenue or TransferCode.InferenceFee => TransferSpace.Inference,
        TransferCode.ExchangeHold or TransferCode.LeaseFunding or TransferCode.DeliveryPayment or TransferCode.Refund or TransferCode.Penalty
            or TransferCode.ExchangeDeposit or TransferCode.ExchangeWithdrawal => TransferSpace.Exchange,
        _ => throw new Xunit.Sdk.XunitException($"transfer code {code} belongs to no component"),
    };

    private static TransferSpace SpaceOf(UInt128 id)
    {
        Assert.True(ChartOfAccounts.TryDecode(id, out ushort space, out _, out _), $"{id} is not an id of the chart");
        return (TransferSpace)space;
    }

    [Fact]
    public async Task Funding_exchange_and_inference_transfer_ids_each_live_in_their_own_space_so_they_never_collide()
    {
        // A trade of the buyer's: its history then holds the operator's funding and the exchange's hold and settlement.
        string symbol = await HourlyAsync("H100", "osaka");
        await OrderAsync(f.Provider, symbol, "sell", 2_300_000, 1);
        long leaseId = (await OrderAsync(f.Buyer, symbol, "buy", 2_300_000, 1)).GetProperty("fills")[0].GetProperty("lease_id").GetInt64();
        var transfers = new List<JsonElement>();
        // The buyer's balance (the funding, the deposit) and its trading account (the deposit, the hold, the settlement).
        foreach (UInt128 account in new[] { ChartOfAccounts.PrincipalAccount(AccountCode.CustomerBalance, f.Buyer.Id), f.Buyer.Account })
        {
            string url = $"/api/ledger/accounts/{account}/transfers?limit=100";
            while (true)
            {
                var page = await f.Buyer.Http.GetJsonAsync(url);
                transfers.AddRange(page.GetProperty("transfers").EnumerateArray());
                if (page.GetProperty("next").ValueKind == JsonValueKind.Null) break;
                url = $"/api/ledger/accounts/{account}/transfers?limit=100&before={Uri.EscapeDataString(page.GetProperty("next").GetString()!)}";
            }
        }
        var lease = await f.Buyer.Http.GetJsonAsync($"/api/exchange/leases/{leaseId}");
        transfers.AddRange((await Op.GetJsonAsync($"/api/ledger/accounts/{lease.GetProperty("escrow_account").GetString()}/transfers")).GetProperty("transfers").EnumerateArray());

        var seen = new Dictionary<TransferSpace, int>();
        foreach (var t in transfers)
        {
            UInt128 id = UInt128.Parse(t.GetProperty("id").GetString()!);
            UInt128 pending = UInt128.Parse(t.GetProperty("pending_id").GetString()!);
            // A post or void is made by the component that made its hold.
            TransferSpace expected = pending != 0 ? SpaceOf(pending) : SpaceOfCode(t.GetProperty("code").GetInt32());
            Assert.True(expected == SpaceOf(id), $"transfer {id} (code {t.GetProperty("code").GetInt32()}) is in space {SpaceOf(id)}, not {expected}");
            seen[expected] = seen.GetValueOrDefault(expected) + 1;
        }
        Assert.Equal(1, seen[TransferSpace.Funding]); // the seed's one funding
        Assert.True(seen[TransferSpace.Exchange] >= 3, $"{seen[TransferSpace.Exchange]} exchange transfers"); // hold, its post, the lease's funding
        Assert.Contains(transfers, t => t.GetProperty("id").GetString() == PrincipalLedger.FundingId(f.Buyer.Id, AccountCode.CustomerBalance, "seed-buyer").ToString());

        // Whatever keys they are derived from, funding ids and inference holds (with the settlement's hold + 1..3) stay
        // in their own spaces, where no exchange id (run epoch, sequence) can be.
        Gen.Select(Gen.ULong[1, ulong.MaxValue], Gen.String, Gen.Int[0, 3]).Sample((principal, key, i) =>
        {
            UInt128 hold = InferencePayments.HoldId(principal, key);
            Assert.Equal(TransferSpace.Inference, SpaceOf(hold + (uint)i));
            Assert.True(ChartOfAccounts.TryDecode(hold, out _, out ulong q1, out _) && ChartOfAccounts.TryDecode(hold + (uint)i, out _, out ulong q2, out _) && q1 == q2);
            Assert.Equal(TransferSpace.Funding, SpaceOf(PrincipalLedger.FundingId(principal, AccountCode.CustomerBalance, key)));
            Assert.Equal(TransferSpace.Funding, SpaceOf(PrincipalLedger.FundingId(principal, AccountCode.ProviderCollateral, key)));
        });
    }

    [Fact]
    public async Task A_good_till_time_order_expires_on_the_servers_clock()
    {
        string symbol = await HourlyAsync("H100", "madrid");
        string expires = ApiTime.Of(DateTimeOffset.UtcNow.AddSeconds(1.5)).ToString();
        var r = await ApiTestHelpers.OkAsync(await f.Buyer.Http.PostSnakeAsync("/api/exchange/orders",
            new { instrument = symbol, side = "buy", price = 1_000_000, quantity = 1, time_in_force = "gtt", expires_at = expires }));
        long id = r.GetProperty("order_id").GetInt64();
        Assert.Equal("resting", r.GetProperty("status").GetString());
        // The exchange ticks every second: the order leaves the book, and its hold is released, without any request.
        var deadline = DateTime.UtcNow.AddSeconds(15);
        while (true)
        {
            var open = await f.Buyer.Http.GetJsonAsync("/api/exchange/orders");
            if (!OrderIds(open).Contains(id)) break;
            Assert.True(DateTime.UtcNow < deadline, "the gtt order did not expire");
            await Task.Delay(200);
        }
        var book = await f.Anonymous.GetJsonAsync($"/api/exchange/book/{symbol}");
        Assert.Empty(book.GetProperty("bids").EnumerateArray());
    }

    /// <summary>
    /// Everything a client can observe that a refused request could have changed. With <paramref name="history"/>
    /// false the ledger's transfer count is left out: the book refuses a post-only or fill-or-kill order only after
    /// the exchange held the buyer's money, so it leaves a hold and its void in the history, with every balance as it was.
    /// Nodes are compared without their heartbeats (they arrive all the time).
    /// </summary>
    private async Task<string> SnapshotAsync(string symbol, bool history = true)
    {
        var accounts = await Op.PostJsonAsync("/api/ledger/accounts/lookup",
            new[] { f.Buyer.Account, f.Poor.Account, f.Revenue, f.Collateral }.Select(a => a.ToString()).ToArray());
        string counts = await ApiTestHelpers.LedgerCountsAsync(Op);
        if (!history) counts = counts.Split(" / ").Single(c => c.StartsWith("computegrid_ledger_accounts{} ", StringComparison.Ordinal));
        var orders = await Op.GetStringAsync("/api/exchange/orders?limit=1000");
        var leases = await Op.GetStringAsync("/api/exchange/leases?limit=1000");
        var nodes = (await Op.GetJsonAsync("/api/exchange/nodes")).GetProperty("nodes").EnumerateArray()
            .Select(n => $"{n.GetProperty("id")}:{n.GetProperty("provider")}:{n.GetProperty("name")}:{n.GetProperty("gpus")}:{n.GetProperty("down_since")}");
        var book = await f.Anonymous.GetJsonAsync($"/api/exchange/book/{symbol}");
        var trades = await f.Anonymous.GetStringAsync($"/api/exchange/trades/{symbol}");
        return string.Join("\n", accounts.GetRawText(), counts, orders, leases, string.Join(",", nodes),
            book.GetProperty("bids").GetRawText(), book.GetProperty("asks").GetRawText(), trades);
    }

    // Who sends it: buyer, poor, provider, other (the second provider), operator or anonymous.
    // {S}: a trading symbol with a resting sell (of the provider); {E}: a trading symbol with an empty book;
    // {D}: a daily forward (24 hours, so a quantity must be a multiple of 24); {O}: the resting sell's order id;
    // {N}: the provider's tokyo node; {BUYER}, {PROVIDER}: principal ids.
    public static TheoryData<string, string, string, string, HttpStatusCode, string?> BadRequests => new()
    {
        { "buyer", "POST", "/api/exchange/orders", """{"instrument":"H100.nowhere.H.2026-01-01T00","side":"buy","price":2000000,"quantity":1}""", HttpStatusCode.NotFound, "unknown_instrument" },
        { "buyer", "POST", "/api/exchange/orders", """{"instrument":999999,"side":"buy","price":2000000,"quantity":1}""", HttpStatusCode.NotFound, "unknown_instrument" },
        { "anonymous", "GET", "/api/exchange/book/H100.tokyo.H.1999-01-01T00", "", HttpStatusCode.NotFound, "unknown_instrument" },
        { "anonymous", "GET", "/api/exchange/candles/{S}?interval=5m", "", HttpStatusCode.BadRequest, null },
        { "buyer", "POST", "/api/exchange/orders", """{"instrument":"{S}","side":"buy","price":2000000,"quantity":1""", HttpStatusCode.BadRequest, null },
        { "buyer", "POST", "/api/exchange/orders", """{"instrument":"{S}","side":"buy","price":2000000,"quantity":1,"color":"red"}""", HttpStatusCode.BadRequest, null },
        // Nobody names an owner: the trader is the caller.
        { "buyer", "POST", "/api/exchange/orders", """{"owner":{PROVIDER},"instrument":"{S}","side":"buy","price":2000000,"quantity":1}""", HttpStatusCode.BadRequest, null },
        { "buyer", "POST", "/api/exchange/orders", """{"instrument":"{S}","side":"buy","price":2000000}""", HttpStatusCode.BadRequest, null },
        { "buyer", "POST", "/api/exchange/orders", """{"instrument":"{S}","side":"buy","price":"2.00","quantity":1}""", HttpStatusCode.BadRequest, null },
        { "buyer", "POST", "/api/exchange/orders", """{"instrument":"{S}","side":"hold","price":2000000,"quantity":1}""", HttpStatusCode.BadRequest, null },
        { "buyer", "POST", "/api/exchange/orders", """{"instrument":"{S}","side":"buy","price":-2000000,"quantity":1}""", HttpStatusCode.BadRequest, null },
        { "buyer", "POST", "/api/exchange/orders", """{"instrument":"{S}","side":"buy","price":2000000,"quantity":-1}""", HttpStatusCode.BadRequest, null },
        { "buyer", "POST", "/api/exchange/orders", """{"instrument":"{S}","side":"buy","price":2000000,"quantity":0}""", HttpStatusCode.BadRequest, null },
        { "buyer", "POST", "/api/exchange/orders", """{"instrument":"{S}","side":"buy","price":2000000,"quantity":1,"time_in_force":"gtt"}""", HttpStatusCode.BadRequest, null },
        // Times are RFC 3339 strings with an offset: not Unix nanoseconds, not a local time.
        { "buyer", "POST", "/api/exchange/orders", """{"instrument":"{S}","side":"buy","price":2000000,"quantity":1,"time_in_force":"gtt","expires_at":4102444800000000000}""", HttpStatusCode.BadRequest, null },
        { "buyer", "POST", "/api/exchange/orders", """{"instrument":"{S}","side":"buy","price":2000000,"quantity":1,"time_in_force":"gtt","expires_at":"2099-12-31T00:00:00"}""", HttpStatusCode.BadRequest, null },
        { "buyer", "POST", "/api/exchange/orders", """{"instrument":"{S}","side":"buy","price":2000500,"quantity":1}""", HttpStatusCode.UnprocessableEntity, "book_rejected" },
        { "buyer", "POST", "/api/exchange/orders", """{"instrument":"{S}","side":"buy","price":999000000,"quantity":1}""", HttpStatusCode.UnprocessableEntity, "book_rejected" },
        { "buyer", "POST", "/api/exchange/orders", """{"instrument":"{D}","side":"buy","price":2000000,"quantity":5}""", HttpStatusCode.UnprocessableEntity, "quantity_must_be_whole_gpus" },
        { "poor", "POST", "/api/exchange/orders", """{"instrument":"{S}","side":"buy","price":2000000,"quantity":2}""", HttpStatusCode.PaymentRequired, "insufficient_balance" },
        { "buyer", "POST", "/api/exchange/orders", """{"instrument":"{E}","side":"buy","type":"market","quantity":1}""", HttpStatusCode.Conflict, "book_rejected" },
        { "buyer", "POST", "/api/exchange/orders", """{"instrument":"{S}","side":"buy","price":2500000,"quantity":1,"time_in_force":"fok","post_only":true}""", HttpStatusCode.Conflict, "book_rejected" },
        { "buyer", "POST", "/api/exchange/orders", """{"instrument":"{S}","side":"buy","price":2500000,"quantity":9,"time_in_force":"fok"}""", HttpStatusCode.Conflict, "book_rejected" },
        { "buyer", "POST", "/api/exchange/orders", """{"instrument":"{S}","side":"sell","price":2500000,"quantity":1}""", HttpStatusCode.Conflict, "insufficient_capacity" },
        { "anonymous", "POST", "/api/exchange/orders", """{"instrument":"{S}","side":"buy","price":2000000,"quantity":1}""", HttpStatusCode.Unauthorized, null },
        { "operator", "POST", "/api/exchange/orders", """{"instrument":"{S}","side":"buy","price":2000000,"quantity":1}""", HttpStatusCode.Forbidden, null },
        // Another trader's order is as one that does not exist.
        { "buyer", "DELETE", "/api/exchange/orders/{O}", "", HttpStatusCode.NotFound, "unknown_order" },
        { "buyer", "PUT", "/api/exchange/orders/{O}", """{"price":2000000,"quantity":1}""", HttpStatusCode.NotFound, "unknown_order" },
        { "buyer", "DELETE", "/api/exchange/orders/xyz", "", HttpStatusCode.BadRequest, null },
        { "provider", "PUT", "/api/exchange/orders/{O}", """{"price":-1,"quantity":1}""", HttpStatusCode.BadRequest, null },
        { "provider", "PUT", "/api/exchange/orders/987654", """{"price":2000000,"quantity":1}""", HttpStatusCode.NotFound, "unknown_order" },
        { "provider", "POST", "/api/exchange/nodes", """{"node_id":"tokyo-H100-01","gpu":"V100","region":"tokyo","gpus":8}""", HttpStatusCode.BadRequest, null },
        { "provider", "POST", "/api/exchange/nodes", """{"node_id":"tokyo-H100-01","gpu":"H100","region":"atlantis","gpus":8}""", HttpStatusCode.BadRequest, null },
        { "provider", "POST", "/api/exchange/nodes", """{"provider":{PROVIDER},"node_id":"tokyo-H100-01","gpu":"H100","region":"tokyo","gpus":8}""", HttpStatusCode.BadRequest, null },
        { "provider", "POST", "/api/exchange/nodes", """{"node_id":"nowhere-01","gpu":"H100","region":"tokyo","gpus":8}""", HttpStatusCode.NotFound, null },
        { "operator", "POST", "/api/exchange/nodes/999/outage", "", HttpStatusCode.NotFound, "unknown_node" },
        { "provider", "POST", "/api/exchange/nodes/{N}/outage", "", HttpStatusCode.Forbidden, null },
        { "other", "POST", "/api/exchange/nodes/{N}/outage", "", HttpStatusCode.Forbidden, null },
        { "buyer", "POST", "/api/exchange/nodes/{N}/outage", "", HttpStatusCode.Forbidden, null },
        // Heartbeats and delivery come from the node (signed, on the node port) or an operator; nobody else on the public port.
        { "buyer", "POST", "/api/exchange/nodes/{N}/heartbeat", "", HttpStatusCode.Forbidden, null },
        { "provider", "POST", "/api/exchange/nodes/{N}/heartbeat", "", HttpStatusCode.Forbidden, null },
        { "anonymous", "POST", "/api/exchange/nodes/{N}/heartbeat", "", HttpStatusCode.Unauthorized, null },
        { "operator", "POST", "/api/exchange/nodes/999/heartbeat", "", HttpStatusCode.NotFound, "unknown_node" },
        { "buyer", "POST", "/api/exchange/leases/999/delivery", """{"from":"2026-01-01T00:00:00Z","to":"2026-01-01T01:00:00Z"}""", HttpStatusCode.Forbidden, null },
        { "provider", "POST", "/api/exchange/leases/999/delivery", """{"from":"2026-01-01T00:00:00Z","to":"2026-01-01T01:00:00Z"}""", HttpStatusCode.Forbidden, null },
        { "operator", "POST", "/api/exchange/leases/999/delivery", """{"from":"2026-01-01T00:00:00Z","to":"2026-01-01T01:00:00Z"}""", HttpStatusCode.NotFound, "unknown_lease" },
        { "operator", "POST", "/api/exchange/leases/999/delivery", """{"from":0,"to":3600000000000}""", HttpStatusCode.BadRequest, null },
        { "buyer", "POST", "/api/exchange/leases/999/resell", """{"instrument":"{S}","price":2000000,"quantity":1}""", HttpStatusCode.NotFound, "unknown_lease" },
        { "anonymous", "GET", "/api/exchange/instruments?gpu=V100", "", HttpStatusCode.BadRequest, null },
        { "anonymous", "GET", "/api/exchange/instruments?limit=0", "", HttpStatusCode.BadRequest, null },
        { "anonymous", "GET", "/api/exchange/index/V100", "", HttpStatusCode.NotFound, null },
        { "buyer", "GET", "/api/exchange/leases/424242", "", HttpStatusCode.NotFound, "unknown_lease" },
        { "buyer", "GET", "/api/exchange/orders?owner={PROVIDER}", "", HttpStatusCode.Forbidden, null },
        { "provider", "GET", "/api/exchange/leases?owner={BUYER}", "", HttpStatusCode.Forbidden, null },
        { "anonymous", "GET", "/api/exchange/orders", "", HttpStatusCode.Unauthorized, null },
    };

    [Theory]
    [MemberData(nameof(BadRequests))]
    public async Task A_bad_request_gets_a_problem_and_changes_nothing(string actor, string method, string path, string body, HttpStatusCode status, string? error)
    {
        string symbol = await HourlyAsync("H100", "tokyo");
        string empty = await HourlyAsync("A100", "dallas");
        var daily = await f.Anonymous.GetJsonAsync("/api/exchange/instruments?gpu=H100&region=tokyo&kind=D&limit=2");
        string dailySymbol = daily.GetProperty("instruments")[1].GetProperty("symbol").GetString()!;
        // One resting sell of all the provider's tokyo GPUs (placed once for every case; the provider can sell no more).
        var open = await f.Provider.Http.GetJsonAsync("/api/exchange/orders");
        var resting = open.GetProperty("orders").EnumerateArray().FirstOrDefault(o => o.GetProperty("symbol").GetString() == symbol);
        long orderId = resting.ValueKind == JsonValueKind.Object
            ? resting.GetProperty("order_id").GetInt64()
            : (await OrderAsync(f.Provider, symbol, "sell", 2_500_000, 8)).GetProperty("order_id").GetInt64();

        string Fill(string s) => s.Replace("{S}", symbol).Replace("{E}", empty).Replace("{D}", dailySymbol).Replace("{O}", orderId.ToString())
            .Replace("{N}", f.Seed.Nodes[("H100", "tokyo")].ToString()).Replace("{BUYER}", f.Buyer.Id.ToString()).Replace("{PROVIDER}", f.Provider.Id.ToString());
        HttpClient client = actor switch
        {
            "buyer" => f.Buyer.Http, "poor" => f.Poor.Http, "provider" => f.Provider.Http, "other" => f.Other.Http, "operator" => Op, "anonymous" => f.Anonymous,
            _ => throw new ArgumentOutOfRangeException(nameof(actor), actor, null),
        };
        bool history = error != "book_rejected";
        string before = await SnapshotAsync(symbol, history) + await SnapshotAsync(empty, history);
        using var request = new HttpRequestMessage(new HttpMethod(method), Fill(path));
        if (body.Length > 0) request.Content = new StringContent(Fill(body), Encoding.UTF8, "application/json");
        await ApiTestHelpers.AssertProblemAsync(await client.SendAsync(request), status, error);
        Assert.Equal(before, await SnapshotAsync(symbol, history) + await SnapshotAsync(empty, history));
    }

    [Fact]
    public async Task Wrong_content_type_and_oversized_bodies_are_refused()
    {
        await ApiTestHelpers.AssertProblemAsync(await f.Buyer.Http.PostAsync("/api/exchange/orders", new StringContent("side=buy", Encoding.UTF8, "application/x-www-form-urlencoded")),
            HttpStatusCode.UnsupportedMediaType);
        string big = "{\"side\":\"" + new string('x', 100_000) + "\"}";
        await ApiTestHelpers.AssertProblemAsync(await f.Buyer.Http.SendJsonAsync(HttpMethod.Post, "/api/exchange/orders", big), HttpStatusCode.RequestEntityTooLarge);
    }

    [Fact]
    public async Task The_stream_pushes_a_trade_and_the_book_after_it()
    {
        string symbol = await HourlyAsync("A100", "dallas");
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        using var request = new HttpRequestMessage(HttpMethod.Get, $"/api/exchange/stream?symbol={symbol}&depth=3");
        using var response = await f.Anonymous.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cts.Token);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(cts.Token));
        Assert.StartsWith(": subscribed", await reader.ReadLineAsync(cts.Token));

        // The dallas A100 book is also used (empty) by the bad-request cases: a crossing pair at a unique price.
        var sell = await OrderAsync(f.Provider, symbol, "sell", 1_234_000, 2);
        var buy = await OrderAsync(f.Buyer, symbol, "buy", 1_234_000, 2);
        Assert.Equal("filled", buy.GetProperty("status").GetString());
        long sequence = buy.GetProperty("fills")[0].GetProperty("sequence").GetInt64();

        var events = new List<(string Event, string? Id, JsonElement Data)>();
        string? name = null, id = null;
        while (!events.Any(e => e.Event == "book"))
        {
            string? line = await reader.ReadLineAsync(cts.Token);
            Assert.NotNull(line);
            if (line.StartsWith("event: ")) name = line[7..];
            else if (line.StartsWith("id: ")) id = line[4..];
            else if (line.StartsWith("data: ")) events.Add((name!, id, JsonDocument.Parse(line[6..]).RootElement));
            else if (line.Length == 0) { name = null; id = null; }
        }
        var trade = Assert.Single(events, e => e.Event == "trade");
        Assert.Equal(sequence.ToString(), trade.Id);
        Assert.Equal(symbol, trade.Data.GetProperty("symbol").GetString());
        Assert.Equal(1_234_000, trade.Data.GetProperty("price").GetInt64());
        Assert.Equal(2, trade.Data.GetProperty("quantity").GetInt64());
        Assert.Equal("buy", trade.Data.GetProperty("taker_side").GetString());
        var book = events.Single(e => e.Event == "book").Data;
        Assert.Equal(symbol, book.GetProperty("symbol").GetString());
        Assert.Empty(book.GetProperty("bids").EnumerateArray());
        Assert.Empty(book.GetProperty("asks").EnumerateArray());
        Assert.Equal(sell.GetProperty("order_id").GetInt64(), buy.GetProperty("fills")[0].GetProperty("counter_order_id").GetInt64());
    }

    [Fact]
    public async Task The_stream_replays_missed_trades_after_Last_Event_ID()
    {
        string symbol = await HourlyAsync("H200", "london");
        await OrderAsync(f.Provider, symbol, "sell", 3_000_000, 1);
        var buy = await OrderAsync(f.Buyer, symbol, "buy", 3_000_000, 1, "ioc");
        long sequence = buy.GetProperty("fills")[0].GetProperty("sequence").GetInt64();

        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        using var request = new HttpRequestMessage(HttpMethod.Get, $"/api/exchange/stream?symbol={symbol}");
        request.Headers.Add("Last-Event-ID", (sequence - 1).ToString());
        using var response = await f.Anonymous.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cts.Token);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(cts.Token));
        string? line;
        while ((line = await reader.ReadLineAsync(cts.Token)) is not null && !line.StartsWith("id: ")) { }
        Assert.Equal($"id: {sequence}", line);
    }

    [Fact]
    public async Task The_stream_of_an_unknown_symbol_is_a_problem()
    {
        await ApiTestHelpers.AssertProblemAsync(await f.Anonymous.GetAsync("/api/exchange/stream?symbol=H100.nowhere.H.2026-01-01T00"), HttpStatusCode.NotFound, "unknown_instrument");
    }
}

public sealed class ExchangeStreamShutdownTests : IDisposable
{
    private readonly string _dir = TestServer.TempDir("exchange-stream");

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task Stopping_the_server_ends_open_streams_promptly()
    {
        var (app, http) = await TestServer.StartInProcessAsync(_dir);
        using var _ = http;
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        using var response = await http.GetAsync("/api/exchange/stream", HttpCompletionOption.ResponseHeadersRead, cts.Token);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(cts.Token));
        Assert.StartsWith(": subscribed", await reader.ReadLineAsync(cts.Token));

        // The stream watches ApplicationStopping: shutdown does not wait out Kestrel's grace period for it.
        var stopwatch = System.Diagnostics.Stopwatch.StartNew();
        await app.StopAsync(cts.Token);
        Assert.True(stopwatch.Elapsed < TimeSpan.FromSeconds(10), $"stop took {stopwatch.Elapsed}");
        try
        {
            while (await reader.ReadLineAsync(cts.Token) is not null) { }
        }
        catch (IOException) { } // the connection may be reset rather than ended: either way the stream is over
        await app.DisposeAsync();
    }
}

public sealed class ExchangeRestartTests : IDisposable
{
    private readonly string _dir = TestServer.TempDir("exchange-restart");

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task Orders_leases_and_participants_survive_a_restart_and_trading_goes_on()
    {
        string symbol;
        long restingId, leaseId;
        Party buyer, provider;
        var (app, op) = await TestServer.StartInProcessAsync(_dir);
        using (op)
        {
            buyer = await TestServer.DepositAsync(await TestServer.NewCustomerAsync(op, "buyer", fundMicroUsd: 100_000_000), 100_000_000);
            provider = await TestServer.NewProviderAsync(op, "provider", collateralMicroUsd: 10_000_000);
            await TestServer.AdmitNodeAsync(op, provider.Id, "osaka-01");
            await ApiTestHelpers.OkAsync(await provider.Http.PostSnakeAsync("/api/exchange/nodes", new { node_id = "osaka-01", gpu = "H100", region = "osaka", gpus = 8 }));
            var page = await op.GetJsonAsync("/api/exchange/instruments?gpu=H100&region=osaka&kind=H&limit=3");
            symbol = page.GetProperty("instruments")[2].GetProperty("symbol").GetString()!;
            await ApiTestHelpers.OkAsync(await provider.Http.PostSnakeAsync("/api/exchange/orders", new { instrument = symbol, side = "sell", price = 2_000_000, quantity = 4 }));
            var buy = await ApiTestHelpers.OkAsync(await buyer.Http.PostSnakeAsync("/api/exchange/orders", new { instrument = symbol, side = "buy", price = 2_000_000, quantity = 1 }));
            leaseId = buy.GetProperty("fills")[0].GetProperty("lease_id").GetInt64();
            var resting = await ApiTestHelpers.OkAsync(await buyer.Http.PostSnakeAsync("/api/exchange/orders", new { instrument = symbol, side = "buy", price = 1_500_000, quantity = 2 }));
            restingId = resting.GetProperty("order_id").GetInt64();
            buyer.Http.Dispose();
            provider.Http.Dispose();
            await app.StopAsync();
            await app.DisposeAsync();
        }

        // The keys survive with the trust store; the new server has a new port, so the parties get new clients.
        (app, op) = await TestServer.StartInProcessAsync(_dir);
        using (op)
        using (var buyerHttp = TestServer.Client(op.BaseAddress!.ToString(), buyer.Key))
        using (var providerHttp = TestServer.Client(op.BaseAddress!.ToString(), provider.Key))
        {
            var orders = await buyerHttp.GetJsonAsync("/api/exchange/orders");
            var order = Assert.Single(orders.GetProperty("orders").EnumerateArray());
            Assert.Equal(restingId, order.GetProperty("order_id").GetInt64());
            Assert.Equal((long)buyer.Id, order.GetProperty("owner").GetInt64());
            Assert.Equal(1_500_000 * 2, order.GetProperty("hold_amount").GetInt64());
            var lease = await buyerHttp.GetJsonAsync($"/api/exchange/leases/{leaseId}");
            Assert.Equal("active", lease.GetProperty("status").GetString());
            // The hold of the resting order is still the only money pending.
            var account = await buyerHttp.GetJsonAsync($"/api/ledger/accounts/{buyer.Account}");
            Assert.Equal(1_500_000 * 2, account.GetProperty("debits_pending").GetInt64());

            // Trading goes on against the restored book, with the restored trader and provider.
            var sell = await ApiTestHelpers.OkAsync(await providerHttp.PostSnakeAsync("/api/exchange/orders", new { instrument = symbol, side = "sell", price = 1_500_000, quantity = 2 }));
            Assert.Equal("filled", sell.GetProperty("status").GetString());
            Assert.Equal(restingId, sell.GetProperty("fills")[0].GetProperty("counter_order_id").GetInt64());
            account = await buyerHttp.GetJsonAsync($"/api/ledger/accounts/{buyer.Account}");
            Assert.Equal(0, account.GetProperty("debits_pending").GetInt64());
            Assert.Equal(100_000_000 - 2_000_000 - 1_500_000 * 2, account.GetProperty("credit_balance").GetInt64());
            await app.StopAsync();
            await app.DisposeAsync();
        }
    }
}
