using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using ComputeGrid.Inference.Model;
using ComputeGrid.Inference.Nodes;
using ComputeGrid.Ledger;
using ComputeGrid.Server.Inference;
using ExchangeStateMachine = ComputeGrid.Exchange.StateMachine.ExchangeStateMachine;
using Xunit.Abstractions;

namespace ComputeGrid.Server.Tests;

/// <summary>
/// kill -9 at seeded moments under a mixed load of paid embeddings requests and exchange orders (single orders, and
/// batches through <c>POST /api/exchange/orders/batch</c>), against a real <c>computegrid serve</c> child (data folder
/// and ports kept across restarts; a node agent with the real model in this process). Only the external contract is relied on: an answered paid request (200) is charged exactly once, one whose
/// answer never came is charged at most once and exactly once when retried with its Idempotency-Key; an acknowledged
/// order (or cancel) is never lost, whether a single answer or a result inside a batch's 200 acknowledged it; each order
/// of a batch whose answer never came stands alone (present whole, or absent). After every kill: the ledger as the kill left it (a copy, recovered offline) keeps
/// its invariants; after every restart: every acknowledged order is there as acknowledged, every fill's lease too, every
/// open order and lease is one the clients sent, the buyers paid exactly their leases and hold exactly their open buys, the
/// exchange escrow holds exactly the open buys, each open buy holds limit × remaining, the books are uncrossed, the
/// inference escrow exactly the customers' open holds (none once the requests in flight are retried), and debits equal
/// credits. At the end a kill with nothing in flight and a restart replay the same exchange state. Seeded: set CG_SEED
/// to replay the kill moments.
/// </summary>
public sealed class MixedCrashTests(CrashModelFixture fixture, ITestOutputHelper output) : IClassFixture<CrashModelFixture>, IDisposable
{
    private const string NodeId = "mixed-1";
    private const long InferencePrice = 20;          // micro-USD per 1,000 tokens
    private const long CustomerFunding = 10_000_000; // $10 per inference customer
    private const long BuyerFunding = 1_000_000_000_000; // $1,000,000 per exchange buyer: holds never run short
    private const int Clients = 3, Kills = 4;
    // Every order of a client gets a price of its own (per instrument and side), so whatever the server holds after a
    // kill (an order or a lease, acknowledged or not) names the order the client sent: resting buys at $0.50 + k ticks,
    // resting sells at $5.00 + k ticks (they never cross), crossing pairs at $0.001 + k ticks on another instrument (H100's
    // band: $0.001 to $20 on a tick of $0.001). IOC buys that find nothing go at $4.999 on the resting instrument.
    private const long Tick = 1_000, RestBuyBase = 500_000, RestSellBase = 5_000_000, CrossBase = 1_000, LoneIocPrice = RestSellBase - Tick;
    // Resting orders a client sends per side, and crossing pairs: within one trader's quota of open orders (1,000, each
    // client's seller and buyer its own) with a batch and the crossing sells a kill may leave on top, and within the band.
    private const int RestPerSide = 300, CrossPrices = 15_000;
    // A batch client's batches: each order of a batch a crossing pair (its sell in the seller's batch, its IOC buy in the
    // buyer's), a resting buy or sell, or an IOC buy that finds nothing. Client 0 sends single orders only.
    private const int BatchMin = 10, BatchMax = 150;
    private const double BatchShare = 0.25;

    private readonly string _dir = TestServer.TempDir("mixed-crash");

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    [Fact]
    public async Task Kill_9_at_seeded_moments_under_paid_requests_and_exchange_orders_loses_no_money_fact()
    {
        int seed = int.TryParse(Environment.GetEnvironmentVariable("CG_SEED"), out int s) ? s : 20261213;
        output.WriteLine($"seed {seed} (set CG_SEED={seed} to replay)");
        var rng = new Random(seed);
        await using var rig = await Rig.StartAsync(_dir, fixture.Model);
        HttpClient op = rig.Operator;

        // Hourly instruments two hours ahead and later: trading for the whole test whatever the minute it starts.
        var page = await op.GetJsonAsync($"/api/exchange/instruments?gpu=H100&region=frankfurt&kind=H&limit={2 + 2 * Clients}");
        string[] symbols = page.GetProperty("instruments").EnumerateArray().Select(i => i.GetProperty("symbol").GetString()!).ToArray();
        Assert.Equal(2 + 2 * Clients, symbols.Length);
        var clients = new List<Client>();
        try
        {
            for (int c = 0; c < Clients; c++)
            {
                // The client's seller: a provider with one listed node of far more GPUs than the test can sell (a seller
                // per client: each trader's open orders stay within its quota).
                Party seller = await TestServer.NewProviderAsync(op, $"mixed-seller-{c}", collateralMicroUsd: 100_000_000);
                clients.Add(new Client
                {
                    Index = c,
                    Customer = await TestServer.NewCustomerAsync(op, $"mixed-customer-{c}", "frankfurt", CustomerFunding),
                    Buyer = await TestServer.DepositAsync(await TestServer.NewCustomerAsync(op, $"mixed-buyer-{c}", "frankfurt", BuyerFunding), BuyerFunding),
                    Seller = seller,
                    Rest = symbols[2 + c],
                    Cross = symbols[2 + Clients + c],
                    BatchShare = c == 0 ? 0 : BatchShare,
                });
                await TestServer.AdmitNodeAsync(op, seller.Id, $"mixed-h100-{c}");
                await ApiTestHelpers.OkAsync(await seller.Http.PostSnakeAsync("/api/exchange/nodes", new { node_id = $"mixed-h100-{c}", gpu = "H100", region = "frankfurt", gpus = 100_000 }));
            }

            for (int round = 0; round < Kills; round++)
            {
                using var stop = new CancellationTokenSource();
                int killAfterMs = rng.Next(300, 1_500);
                // Per client, one task of paid requests and one of orders: at every kill both kinds are likely in flight.
                var loops = clients.SelectMany(c => new[]
                {
                    Task.Run(() => PaidLoopAsync(c, new Random(seed * 31 + round * 7 + c.Index), round, stop.Token)),
                    Task.Run(() => OrderLoopAsync(c, new Random(seed * 37 + round * 11 + c.Index), stop.Token)),
                }).ToArray();
                await Task.Delay(killAfterMs);
                rig.Kill();
                stop.Cancel();
                await Task.WhenAll(loops);
                output.WriteLine($"round {round}: killed after {killAfterMs} ms; so far {Summary(clients)}");

                await CheckLedgerAsLeftAsync(Path.Combine(_dir, "ledger"), clients, $"after kill {round}");
                await rig.RestartAsync();
                await CheckExchangeAsync(op, clients, $"after restart {round}");
                await CheckPaidAsync(rig, clients, new Random(seed * 17 + round), $"after restart {round}");
                await CheckDebitsEqualCreditsAsync(op);
            }

            // Replay: a kill with nothing in flight and a restart give back the exchange state as it was, the same orders,
            // leases and money.
            string state = await ExchangeStateAsync(op, clients);
            rig.Kill();
            await rig.RestartAsync();
            Assert.Equal(state, await ExchangeStateAsync(op, clients));
            output.WriteLine("  a kill with nothing in flight and a restart replay the same exchange state");

            // A graceful stop: the log verifies to its end, the CLI agrees, and the state it leaves keeps every invariant.
            await rig.StopGracefullyAsync();
            string ledgerDir = Path.Combine(_dir, "ledger");
            Assert.Equal(0, LedgerEngine.VerifyDirectory(ledgerDir).TrailingBytes);
            var (code, stdout, stderr) = await ApiTestHelpers.RunCliAsync("verify", "--ledger-dir", ledgerDir);
            Assert.True(code == 0, $"computegrid verify --ledger-dir exited {code}: {stdout} {stderr}");
            await CheckLedgerAsLeftAsync(ledgerDir, clients, "after the graceful stop");
        }
        catch
        {
            output.WriteLine($"failed with seed {seed}: {Summary(clients)}");
            throw;
        }
        finally
        {
            foreach (Client c in clients) { c.Customer.Http.Dispose(); c.Buyer.Http.Dispose(); c.Seller.Http.Dispose(); }
        }

        int answered = clients.Sum(c => c.Paid.Count(p => p.AnsweredInLoad));
        int acked = clients.Sum(c => c.Orders.Count(o => o.Id is not null));
        int fills = clients.Sum(c => c.Orders.Sum(o => o.Fills.Length));
        int batched = clients.Sum(c => c.Batches), batchFills = clients.Sum(c => c.Orders.Where(o => o.Batched).Sum(o => o.Fills.Length));
        Assert.True(answered > 10 && acked > 10 && fills > 3 && batched > 3 && batchFills > 3, $"the load did too little: {Summary(clients)}");
    }

    // ================================================================== the load

    private enum OrderKind { Rest, CrossSell, CrossBuy, LoneIoc }

    private enum CancelState { None, Sent, Done }

    /// <summary>A paid request: its key and text, the cost its receipt must carry, whether a 200 came back.</summary>
    private sealed class Paid(string key, string text, long cost)
    {
        public string Key => key;
        public string Text => text;
        public long Cost => cost;
        /// <summary>A 200 came back for it (during the load, or for its retry after a restart).</summary>
        public bool Answered { get; set; }
        /// <summary>The 200 came back during the load (before a kill), not for a retry.</summary>
        public bool AnsweredInLoad { get; set; }
    }

    /// <summary>
    /// An order as sent (alone or in a batch): <see cref="Id"/> once acknowledged (with its fills), and the fate of a
    /// cancel of it.
    /// </summary>
    private sealed class SentOrder
    {
        public required OrderKind Kind { get; init; }
        public required string Symbol { get; init; }
        public required string Side { get; init; }
        public required long Price { get; init; }
        public required long Quantity { get; init; }
        public required ulong Owner { get; init; }
        public string TimeInForce => Kind is OrderKind.CrossBuy or OrderKind.LoneIoc ? "ioc" : "gtc";
        /// <summary>Sent in a batch.</summary>
        public bool Batched { get; init; }
        public long? Id { get; set; }
        public JsonElement[] Fills { get; set; } = [];
        public CancelState Cancel { get; set; }

        public object Body => new { instrument = Symbol, side = Side, price = Price, quantity = Quantity, time_in_force = TimeInForce };

        public override string ToString() =>
            $"{Kind} {Side} {Quantity} {Symbol} @ {Price} {TimeInForce} by {Owner}{(Batched ? " in a batch" : "")}{(Id is { } id ? $" (order {id})" : " (not acknowledged)")}";
    }

    /// <summary>One client task's parties, instruments and history (touched by its task only, checked between rounds).</summary>
    private sealed class Client
    {
        public required int Index { get; init; }
        public required Party Customer { get; init; }
        public required Party Buyer { get; init; }
        public required Party Seller { get; init; }
        /// <summary>The instrument of this client's resting orders (never crossed).</summary>
        public required string Rest { get; init; }
        /// <summary>The instrument of this client's crossing pairs (a resting sell, then an IOC buy at its price).</summary>
        public required string Cross { get; init; }
        /// <summary>The share of its order loop's steps that send a pair of batches (the seller's, then the buyer's).</summary>
        public required double BatchShare { get; init; }
        public List<Paid> Paid { get; } = new();
        public List<SentOrder> Orders { get; } = new();
        public int NextRestBuy, NextRestSell, NextCross, Refused, Batches;
        public bool Exhausted => NextRestBuy >= RestPerSide && NextRestSell >= RestPerSide && NextCross >= CrossPrices;
    }

    private static string Summary(List<Client> clients) =>
        $"{clients.Sum(c => c.Paid.Count(p => p.AnsweredInLoad))} paid requests answered of {clients.Sum(c => c.Paid.Count)} sent "
        + $"({clients.Sum(c => c.Refused)} refused); {clients.Sum(c => c.Orders.Count(o => o.Id is not null))} orders acknowledged of "
        + $"{clients.Sum(c => c.Orders.Count)} sent ({clients.Sum(c => c.Orders.Count(o => o.Batched && o.Id is not null))} of "
        + $"{clients.Sum(c => c.Orders.Count(o => o.Batched))} in {clients.Sum(c => c.Batches)} batches acknowledged), "
        + $"{clients.Sum(c => c.Orders.Sum(o => o.Fills.Length))} fills, {clients.Sum(c => c.Orders.Count(o => o.Cancel == CancelState.Done))} cancels acknowledged";

    private async Task PaidLoopAsync(Client c, Random rng, int round, CancellationToken stop)
    {
        for (int i = 0; !stop.IsCancellationRequested; i++)
        {
            try { await PaidRequestAsync(c, $"r{round}-c{c.Index}-{i}", rng); }
            catch (Exception e) when (Died(e)) { return; } // the server died under this request: its fate is unknown, which the checks allow for
        }
    }

    private static async Task OrderLoopAsync(Client c, Random rng, CancellationToken stop)
    {
        // A client whose prices are all used stops (its cancels alone would not need the kill to find them in flight).
        while (!stop.IsCancellationRequested && !c.Exhausted)
        {
            try
            {
                if (rng.NextDouble() < c.BatchShare)
                {
                    await BatchesAsync(c, rng);
                    continue;
                }
                double roll = rng.NextDouble();
                if (roll < 0.5) await RestingOrderAsync(c, rng);
                else if (roll < 0.85) await CrossingPairAsync(c, rng);
                else await CancelAsync(c, rng);
            }
            catch (Exception e) when (Died(e)) { return; } // likewise
        }
    }

    private static bool Died(Exception e) => e is HttpRequestException or TaskCanceledException or OperationCanceledException or IOException;

    private async Task PaidRequestAsync(Client c, string key, Random rng)
    {
        string text = $"mixed load {key}: {rng.Next()}";
        var p = new Paid(key, text, CostOf(text));
        c.Paid.Add(p);
        using var r = await EmbedAsync(c.Customer.Http, text, key);
        string body = await r.Content.ReadAsStringAsync();
        if (r.StatusCode != HttpStatusCode.OK)
        {
            c.Refused++; // not answered: retried after the next restart like a request in flight
            return;
        }
        Assert.True(long.Parse(r.Headers.GetValues("X-CG-Cost-Micro-Usd").Single(), CultureInfo.InvariantCulture) == p.Cost, $"{key}: {body[..Math.Min(body.Length, 200)]}");
        Assert.Equal("true", r.Headers.GetValues("X-CG-Charged").Single()); // a new key: charged now
        p.Answered = p.AnsweredInLoad = true;
    }

    /// <summary>A resting order of the client's next price on its side, or null once the side's prices are used.</summary>
    private static SentOrder? NextResting(Client c, bool buy, long quantity, bool batched)
    {
        int k = buy ? c.NextRestBuy : c.NextRestSell;
        if (k >= RestPerSide) return null;
        if (buy) c.NextRestBuy++;
        else c.NextRestSell++;
        return new SentOrder
        {
            Kind = OrderKind.Rest, Symbol = c.Rest, Side = buy ? "buy" : "sell", Price = (buy ? RestBuyBase : RestSellBase) + Tick * k,
            Quantity = quantity, Owner = buy ? c.Buyer.Id : c.Seller.Id, Batched = batched,
        };
    }

    /// <summary>A crossing pair of the client's next price (a sell, then an IOC buy at its price), or null once they are used.</summary>
    private static (SentOrder Sell, SentOrder Buy)? NextPair(Client c, long quantity, bool batched)
    {
        int k = c.NextCross;
        if (k >= CrossPrices) return null;
        c.NextCross++;
        long price = CrossBase + Tick * k;
        return (new SentOrder { Kind = OrderKind.CrossSell, Symbol = c.Cross, Side = "sell", Price = price, Quantity = quantity, Owner = c.Seller.Id, Batched = batched },
            new SentOrder { Kind = OrderKind.CrossBuy, Symbol = c.Cross, Side = "buy", Price = price, Quantity = quantity, Owner = c.Buyer.Id, Batched = batched });
    }

    private static async Task RestingOrderAsync(Client c, Random rng)
    {
        bool buy = rng.Next(2) == 0;
        if (NextResting(c, buy, rng.Next(1, 4), batched: false) is not { } o) return;
        c.Orders.Add(o);
        Acknowledge(o, await PlaceAsync(buy ? c.Buyer : c.Seller, o));
    }

    private static async Task CrossingPairAsync(Client c, Random rng)
    {
        if (NextPair(c, rng.Next(1, 4), batched: false) is not { } pair) return;
        var (sell, buy) = pair;
        c.Orders.Add(sell);
        Acknowledge(sell, await PlaceAsync(c.Seller, sell));
        // The buy takes the cheapest sells first: a sell left by a kill before its buy (a lower price) fills before this one.
        c.Orders.Add(buy);
        Acknowledge(buy, await PlaceAsync(c.Buyer, buy));
    }

    /// <summary>
    /// Two batches: the seller's (the sells of crossing pairs and resting sells, mixed), and once it is acknowledged the
    /// buyer's (the pairs' IOC buys, resting buys and IOC buys that find nothing, mixed, in the order drawn). A buy takes
    /// the cheapest sells first: within a batch, each crossing buy fills whole (the sells up to its price add up to at
    /// least the buys up to it).
    /// </summary>
    private static async Task BatchesAsync(Client c, Random rng)
    {
        int n = rng.Next(BatchMin, BatchMax + 1);
        var sells = new List<SentOrder>();
        var buys = new List<SentOrder>();
        for (int i = 0; i < n; i++)
        {
            double roll = rng.NextDouble();
            long quantity = rng.Next(1, 4);
            // Resting orders are drawn less often than in the single-order steps: their prices last the kills through.
            if (roll < 0.55)
            {
                if (NextPair(c, quantity, batched: true) is not { } pair) continue;
                sells.Add(pair.Sell);
                buys.Add(pair.Buy);
            }
            else if (roll < 0.65) { if (NextResting(c, buy: true, quantity, batched: true) is { } o) buys.Add(o); }
            else if (roll < 0.75) { if (NextResting(c, buy: false, quantity, batched: true) is { } o) sells.Add(o); }
            else
            {
                buys.Add(new SentOrder
                {
                    Kind = OrderKind.LoneIoc, Symbol = c.Rest, Side = "buy", Price = LoneIocPrice, Quantity = quantity, Owner = c.Buyer.Id, Batched = true,
                });
            }
        }
        foreach (var (trader, orders) in new[] { (c.Seller, sells), (c.Buyer, buys) })
        {
            if (orders.Count == 0) continue;
            c.Orders.AddRange(orders);
            JsonElement answer = await PlaceBatchAsync(trader, orders);
            JsonElement[] results = answer.GetProperty("results").EnumerateArray().ToArray();
            Assert.True(results.Length == orders.Count && answer.GetProperty("accepted").GetInt32() == orders.Count,
                $"a batch of {orders.Count} orders of {trader.Id}: {results.Length} results, {answer.GetProperty("accepted")} accepted: {answer}");
            for (int k = 0; k < orders.Count; k++)
            {
                JsonElement order = results[k].GetProperty("order");
                Assert.True(order.ValueKind == JsonValueKind.Object, $"{orders[k]} refused in a batch: {results[k]}");
                Acknowledge(orders[k], order);
            }
            c.Batches++;
        }
    }

    /// <summary>An order's acknowledgement (a single answer, or its result in a batch's answer) as its kind expects.</summary>
    private static void Acknowledge(SentOrder o, JsonElement ack)
    {
        string status = ack.GetProperty("status").GetString()!;
        JsonElement[] fills = ack.GetProperty("fills").EnumerateArray().ToArray();
        bool expected = o.Kind switch
        {
            // Resting orders and crossing sells cross nothing: no buy rests on the crossing instruments.
            OrderKind.Rest or OrderKind.CrossSell => status == "resting" && ack.GetProperty("remaining").GetInt64() == o.Quantity && fills.Length == 0,
            OrderKind.CrossBuy => status == "filled" && fills.Sum(f => f.GetProperty("quantity").GetInt64()) == o.Quantity,
            _ => status == "cancelled" && fills.Length == 0, // a lone IOC: nothing to take, nothing left
        };
        Assert.True(expected, $"{o}: {ack}");
        Assert.Equal(o.Symbol, ack.GetProperty("symbol").GetString());
        o.Id = ack.GetProperty("order_id").GetInt64();
        o.Fills = fills;
    }

    private static async Task CancelAsync(Client c, Random rng)
    {
        var open = c.Orders.Where(o => o.Kind == OrderKind.Rest && o.Id is not null && o.Cancel == CancelState.None).ToList();
        if (open.Count == 0) return;
        SentOrder o = open[rng.Next(open.Count)];
        o.Cancel = CancelState.Sent;
        using var r = await (o.Side == "buy" ? c.Buyer : c.Seller).Http.DeleteAsync($"/api/exchange/orders/{o.Id}");
        JsonElement ack = await ApiTestHelpers.OkAsync(r);
        Assert.True(ack.GetProperty("status").GetString() == "cancelled", $"cancel of {o}: {ack}");
        o.Cancel = CancelState.Done;
    }

    private static async Task<JsonElement> PlaceAsync(Party trader, SentOrder o)
    {
        using var r = await trader.Http.PostSnakeAsync("/api/exchange/orders", o.Body);
        string body = await r.Content.ReadAsStringAsync();
        Assert.True(r.IsSuccessStatusCode, $"{o}: {(int)r.StatusCode} {body}");
        return JsonDocument.Parse(body).RootElement.Clone();
    }

    private static async Task<JsonElement> PlaceBatchAsync(Party trader, List<SentOrder> orders)
    {
        using var r = await trader.Http.PostSnakeAsync("/api/exchange/orders/batch", new { orders = orders.Select(o => o.Body).ToArray() });
        string body = await r.Content.ReadAsStringAsync();
        Assert.True(r.IsSuccessStatusCode, $"a batch of {orders.Count} orders of {trader.Id} (the first {orders[0]}): {(int)r.StatusCode} {body[..Math.Min(body.Length, 2_000)]}");
        return JsonDocument.Parse(body).RootElement.Clone();
    }

    private long CostOf(string text) => InferenceGateway.Cost(fixture.Model.Tokenize(text).TokenCount, InferencePrice);

    private static async Task<HttpResponseMessage> EmbedAsync(HttpClient http, string text, string key)
    {
        using var req = new HttpRequestMessage(HttpMethod.Post, "/v1/embeddings")
        {
            Content = new StringContent(JsonSerializer.Serialize(new { model = MoneyServer.Model, input = text }), Encoding.UTF8, "application/json"),
        };
        req.Headers.Add("Idempotency-Key", key);
        return await http.SendAsync(req);
    }

    // ================================================================== the checks

    /// <summary>
    /// The ledger folder as the kill (or the stop) left it, recovered offline from a copy (the server's own recovery must
    /// still see the original): every invariant holds (per asset debits == credits, pending == the open holds, no flagged
    /// account overdrawn), pending debits equal pending credits per asset, and the inference escrow's pending credits
    /// equal the open holds of the customers (nobody else pays into it).
    /// </summary>
    private async Task CheckLedgerAsLeftAsync(string ledgerDir, List<Client> clients, string when)
    {
        string copy = TestServer.TempDir("mixed-ledger-copy");
        try
        {
            foreach (string file in Directory.GetFiles(ledgerDir)) File.Copy(file, Path.Combine(copy, Path.GetFileName(file)));
            await using LedgerEngine ledger = LedgerEngine.Open(new LedgerEngineOptions { DataDirectory = copy });
            var customers = clients.Select(c => c.Customer.Account).ToHashSet();
            var (pending, escrowPending, customersHeld) = await ledger.ReadAsync(sm =>
            {
                sm.AssertInvariants();
                var byAsset = new Dictionary<uint, (Int128 Debits, Int128 Credits)>();
                long escrow = 0, held = 0;
                for (int i = 0; i < sm.AccountCount; i++)
                {
                    ref readonly Account a = ref sm.AccountAt(i);
                    var (d, c) = byAsset.GetValueOrDefault(a.Asset);
                    byAsset[a.Asset] = (d + a.DebitsPending, c + a.CreditsPending);
                    if (a.Id == InferencePayments.EscrowAccount) escrow = a.CreditsPending;
                    if (customers.Contains(a.Id)) held = checked(held + a.DebitsPending);
                }
                return (byAsset, escrow, held);
            });
            foreach (var (asset, (debits, credits)) in pending) Assert.True(debits == credits, $"{when}: asset {asset} pending debits {debits} != pending credits {credits}");
            Assert.True(escrowPending == customersHeld, $"{when}: the inference escrow holds {escrowPending} pending, the customers' open holds are {customersHeld}");
            output.WriteLine($"  {when}: ledger recovered offline ({ledger.Recovery.RecordsReplayed} records replayed, {ledger.Recovery.TruncatedBytes} torn bytes), invariants hold");
        }
        finally
        {
            try { Directory.Delete(copy, recursive: true); } catch (IOException) { }
        }
    }

    /// <summary>
    /// Every acknowledged order (alone or in a batch) is open as acknowledged (resting ones are never crossed) unless its
    /// cancel was acknowledged, and no acknowledged IOC is open; every acknowledged fill's lease exists; every open order
    /// and lease is one the clients sent; each crossing sell's leases and remaining add up to its quantity (an order whose
    /// answer never came, its batch's included, is whole or absent); each open buy holds limit × remaining; the books are
    /// uncrossed; each buyer paid exactly its leases and holds exactly its open buys; the exchange escrow holds exactly the
    /// open buys.
    /// </summary>
    private async Task CheckExchangeAsync(HttpClient op, List<Client> clients, string when)
    {
        var open = (await AllAsync(op, "/api/exchange/orders", "orders")).ToDictionary(o => o.GetProperty("order_id").GetInt64());
        var leases = (await AllAsync(op, "/api/exchange/leases", "leases")).ToDictionary(l => l.GetProperty("id").GetInt64());
        var bySymbol = clients.SelectMany(c => new[] { (c.Rest, c), (c.Cross, c) }).ToDictionary(x => x.Item1, x => x.c);
        // Sent orders that may rest, by (symbol, side, price): unique by construction (crossing buys share their sell's
        // price, not its side; IOC buys never rest).
        var sent = clients.SelectMany(c => c.Orders).Where(o => o.Kind is OrderKind.Rest or OrderKind.CrossSell).ToDictionary(o => (o.Symbol, o.Side, o.Price));

        foreach (SentOrder o in clients.SelectMany(c => c.Orders))
        {
            if (o.Id is not long id) continue;
            if (o.Kind == OrderKind.Rest)
            {
                if (o.Cancel == CancelState.Done) Assert.False(open.ContainsKey(id), $"{when}: {o} was cancelled (acknowledged) but is open again");
                else if (o.Cancel == CancelState.None) Assert.True(open.ContainsKey(id), $"{when}: acknowledged {o} is missing");
            }
            else if (o.Kind is OrderKind.CrossBuy or OrderKind.LoneIoc) Assert.False(open.ContainsKey(id), $"{when}: acknowledged {o} is open");
            foreach (JsonElement fill in o.Fills)
            {
                long leaseId = fill.GetProperty("lease_id").GetInt64();
                Assert.True(leases.TryGetValue(leaseId, out JsonElement lease), $"{when}: lease {leaseId} of an acknowledged fill of {o} is missing");
                Assert.Equal((long)o.Owner, lease.GetProperty("buyer").GetInt64());
                Assert.Equal(o.Symbol, lease.GetProperty("symbol").GetString());
                Assert.Equal(fill.GetProperty("price").GetInt64(), lease.GetProperty("price").GetInt64());
                Assert.Equal(fill.GetProperty("quantity").GetInt64(), lease.GetProperty("gpus").GetInt64());
            }
        }

        var found = new HashSet<SentOrder>(); // orders (acknowledged or not) the server holds
        foreach (var (id, v) in open)
        {
            string symbol = v.GetProperty("symbol").GetString()!, side = v.GetProperty("side").GetString()!;
            long price = v.GetProperty("price").GetInt64(), remaining = v.GetProperty("remaining").GetInt64();
            if (!sent.TryGetValue((symbol, side, price), out SentOrder? o))
            {
                Assert.Fail($"{when}: open order {id} ({side} {symbol} @ {price}) is none the clients sent");
                continue;
            }
            Assert.True(o.Id is null || o.Id == id, $"{when}: {o} is open under id {id}");
            found.Add(o);
            Assert.Equal((long)o.Owner, v.GetProperty("owner").GetInt64());
            if (o.Kind == OrderKind.Rest) Assert.True(remaining == o.Quantity, $"{when}: {o} never crossed, yet has {remaining} left");
            else Assert.True(remaining > 0 && remaining <= o.Quantity, $"{when}: {o} has {remaining} left");
            Assert.True(v.GetProperty("hold_amount").GetInt64() == (side == "buy" ? checked(price * remaining) : 0), $"{when}: {o} holds {v}");
        }
        // Uncrossed: on every book the best bid is below the best ask.
        foreach (var book in open.Values.GroupBy(v => v.GetProperty("symbol").GetString()!))
        {
            long bid = book.Where(v => v.GetProperty("side").GetString() == "buy").Select(v => v.GetProperty("price").GetInt64()).DefaultIfEmpty(0).Max();
            long ask = book.Where(v => v.GetProperty("side").GetString() == "sell").Select(v => v.GetProperty("price").GetInt64()).DefaultIfEmpty(long.MaxValue).Min();
            Assert.True(bid < ask, $"{when}: the book of {book.Key} is crossed: bid {bid}, ask {ask}");
        }

        var leasedBySell = new Dictionary<SentOrder, long>();
        foreach (var (id, l) in leases)
        {
            string symbol = l.GetProperty("symbol").GetString()!;
            long price = l.GetProperty("price").GetInt64(), gpus = l.GetProperty("gpus").GetInt64();
            // A lease is priced at its maker's (the sell's) price, which names the sell.
            if (!bySymbol.TryGetValue(symbol, out Client? c) || symbol != c.Cross || !sent.TryGetValue((symbol, "sell", price), out SentOrder? sell))
            {
                Assert.Fail($"{when}: lease {id} ({gpus} × {symbol} @ {price}) matches no crossing sell the clients sent");
                continue;
            }
            Assert.Equal((long)c.Buyer.Id, l.GetProperty("buyer").GetInt64());
            Assert.Equal((long)c.Seller.Id, l.GetProperty("provider").GetInt64());
            Assert.Equal(checked(price * gpus), l.GetProperty("notional").GetInt64()); // hourly: one hour per GPU
            leasedBySell[sell] = leasedBySell.GetValueOrDefault(sell) + gpus;
            found.Add(sell);
        }
        foreach (SentOrder sell in sent.Values.Where(o => o.Kind == OrderKind.CrossSell))
        {
            long leased = leasedBySell.GetValueOrDefault(sell);
            long remaining = sell.Id is long id && open.TryGetValue(id, out JsonElement v) ? v.GetProperty("remaining").GetInt64()
                : open.Values.Where(x => x.GetProperty("symbol").GetString() == sell.Symbol && x.GetProperty("side").GetString() == "sell"
                    && x.GetProperty("price").GetInt64() == sell.Price).Sum(x => x.GetProperty("remaining").GetInt64());
            // An acknowledged sell is all there (leased or resting); one whose answer never came is all there or absent.
            if (sell.Id is not null || leased + remaining > 0)
                Assert.True(leased + remaining == sell.Quantity, $"{when}: {sell}: {leased} leased + {remaining} resting != {sell.Quantity}");
        }

        // Money: read in one ledger lookup (one consistent state).
        UInt128[] ids = [ExchangeStateMachine.EscrowAccount, .. clients.Select(c => c.Buyer.Account)];
        JsonElement[] accounts = await LookupAsync(op, ids);
        long openHolds = 0;
        for (int i = 0; i < clients.Count; i++)
        {
            Client c = clients[i];
            long paid = leases.Values.Where(l => l.GetProperty("buyer").GetInt64() == (long)c.Buyer.Id).Sum(l => l.GetProperty("notional").GetInt64());
            long held = open.Values.Where(o => o.GetProperty("owner").GetInt64() == (long)c.Buyer.Id).Sum(o => o.GetProperty("hold_amount").GetInt64());
            openHolds += held;
            JsonElement a = accounts[i + 1];
            Assert.True(a.GetProperty("debits_posted").GetInt64() == paid, $"{when}: buyer {c.Index} paid {a.GetProperty("debits_posted")}, its leases cost {paid}");
            Assert.True(a.GetProperty("debits_pending").GetInt64() == held, $"{when}: buyer {c.Index} has {a.GetProperty("debits_pending")} on hold, its open buys hold {held}");
            Assert.Equal(BuyerFunding, a.GetProperty("credits_posted").GetInt64());
        }
        Assert.True(accounts[0].GetProperty("credits_pending").GetInt64() == openHolds,
            $"{when}: the exchange escrow holds {accounts[0].GetProperty("credits_pending")} pending, the open buys hold {openHolds}");
        var ackedLeases = clients.SelectMany(c => c.Orders).SelectMany(o => o.Fills).Select(f => f.GetProperty("lease_id").GetInt64()).ToHashSet();
        // A crossing buy whose answer never came (alone or in its batch) filled whole or not at all: the GPUs its buyer
        // leased beyond the acknowledged fills add up to the quantities of some of those buys.
        foreach (Client c in clients)
        {
            long extra = leases.Where(kv => kv.Value.GetProperty("buyer").GetInt64() == (long)c.Buyer.Id && !ackedLeases.Contains(kv.Key)).Sum(kv => kv.Value.GetProperty("gpus").GetInt64());
            var sums = new HashSet<long> { 0 };
            foreach (SentOrder buy in c.Orders.Where(o => o.Kind == OrderKind.CrossBuy && o.Id is null))
                foreach (long sum in sums.ToArray()) sums.Add(sum + buy.Quantity);
            Assert.True(sums.Contains(extra), $"{when}: buyer {c.Index} leased {extra} GPUs beyond its acknowledged fills: no set of its unanswered crossing buys adds up to it");
        }
        // What became of the orders whose answer never came (allowed either way; reported to show the kills hit them).
        var unacked = clients.SelectMany(c => c.Orders).Where(o => o.Id is null && o.Kind is OrderKind.Rest or OrderKind.CrossSell).ToList();
        output.WriteLine($"  {when}: exchange: {open.Count} open orders, {leases.Count} leases, {openHolds} held for open buys; every acknowledged order and fill "
            + $"present; of {unacked.Count} orders never answered {unacked.Count(found.Contains)} were placed; {leases.Keys.Count(l => !ackedLeases.Contains(l))} "
            + $"leases from buys never answered; {clients.Sum(c => c.Orders.Count(o => o.Cancel == CancelState.Sent))} cancels never answered");
    }

    /// <summary>
    /// Paid requests: the inference escrow's pending credits equal the customers' open holds; each customer's charges
    /// lie between its answered requests and all it sent; each request whose answer never came, retried once with its
    /// key, is answered with its receipt; a few answered ones, retried, are not charged again; then each customer has paid
    /// exactly the sum of its requests' costs, nothing is held, and the escrow holds nothing.
    /// </summary>
    private async Task CheckPaidAsync(Rig rig, List<Client> clients, Random rng, string when)
    {
        HttpClient op = rig.Operator;
        UInt128[] ids = [InferencePayments.EscrowAccount, .. clients.Select(c => c.Customer.Account)];
        JsonElement[] before = await LookupAsync(op, ids);
        long held = 0;
        for (int i = 0; i < clients.Count; i++)
        {
            Client c = clients[i];
            JsonElement a = before[i + 1];
            long debits = a.GetProperty("debits_posted").GetInt64();
            long answered = c.Paid.Where(p => p.Answered).Sum(p => p.Cost), unanswered = c.Paid.Where(p => !p.Answered).Sum(p => p.Cost);
            Assert.True(debits >= answered && debits <= answered + unanswered,
                $"{when}: customer {c.Index} paid {debits}: answered requests cost {answered}, those in flight {unanswered}");
            held += a.GetProperty("debits_pending").GetInt64();
        }
        Assert.True(before[0].GetProperty("credits_pending").GetInt64() == held, $"{when}: the inference escrow holds {before[0].GetProperty("credits_pending")}, the customers {held}");

        int retried = 0, chargedBefore = 0, unavailable = 0;
        // A retry is sent when the node is healthy. The one node may still drop out of the routing table for a moment
        // after a restart (a heartbeat late on a busy machine): that answer is a 503 that charges nothing (the contract's
        // refusal), and the retry is sent again, a few times at most.
        async Task<HttpResponseMessage> RetryAsync(Client c, Paid p)
        {
            for (int attempt = 1; ; attempt++)
            {
                await rig.WaitNodeHealthyAsync();
                HttpResponseMessage r = await EmbedAsync(c.Customer.Http, p.Text, p.Key);
                if (r.StatusCode != HttpStatusCode.ServiceUnavailable || attempt == 5) return r;
                string body = await r.Content.ReadAsStringAsync();
                Assert.Contains("no_node_available", body);
                unavailable++;
                r.Dispose();
            }
        }
        foreach (Client c in clients)
        {
            foreach (Paid p in c.Paid.Where(p => !p.Answered))
            {
                using var r = await RetryAsync(c, p);
                Assert.True(r.StatusCode == HttpStatusCode.OK, $"{when}: retry of {p.Key}: {(int)r.StatusCode} {await r.Content.ReadAsStringAsync()}");
                Assert.Equal(p.Cost, long.Parse(r.Headers.GetValues("X-CG-Cost-Micro-Usd").Single(), CultureInfo.InvariantCulture));
                p.Answered = true;
                retried++;
                if (r.Headers.GetValues("X-CG-Charged").Single() == "false") chargedBefore++; // captured before the kill, never answered
            }
            var answered = c.Paid.Where(p => p.AnsweredInLoad).ToList();
            for (int n = 0; n < 3 && answered.Count > 0; n++)
            {
                Paid p = answered[rng.Next(answered.Count)];
                using var r = await RetryAsync(c, p);
                Assert.True(r.StatusCode == HttpStatusCode.OK, $"{when}: retry of answered {p.Key}: {(int)r.StatusCode} {await r.Content.ReadAsStringAsync()}");
                Assert.Equal("false", r.Headers.GetValues("X-CG-Charged").Single());
                Assert.Equal(p.Cost, long.Parse(r.Headers.GetValues("X-CG-Cost-Micro-Usd").Single(), CultureInfo.InvariantCulture));
            }
        }

        JsonElement[] after = await LookupAsync(op, ids);
        for (int i = 0; i < clients.Count; i++)
        {
            Client c = clients[i];
            JsonElement a = after[i + 1];
            long cost = c.Paid.Sum(p => p.Cost);
            Assert.True(a.GetProperty("debits_posted").GetInt64() == cost && a.GetProperty("debits_pending").GetInt64() == 0,
                $"{when}: customer {c.Index} paid {a.GetProperty("debits_posted")} and holds {a.GetProperty("debits_pending")}; its {c.Paid.Count} requests cost {cost}");
            Assert.Equal(CustomerFunding, a.GetProperty("credits_posted").GetInt64());
        }
        Assert.Equal(0, after[0].GetProperty("credits_pending").GetInt64());
        output.WriteLine($"  {when}: paid: {retried} requests never answered retried ({chargedBefore} of them charged before the kill), each charged once; "
            + $"every customer paid exactly its requests{(unavailable > 0 ? $" ({unavailable} retries answered 503 no_node_available first)" : "")}");
    }

    /// <summary>The exchange's state as the API shows it: every open order and lease, and the exchange's money (its escrow, the buyers' trading accounts).</summary>
    private static async Task<string> ExchangeStateAsync(HttpClient op, List<Client> clients)
    {
        static string Canonical(IEnumerable<JsonElement> items, string id) =>
            string.Join('\n', items.OrderBy(x => x.GetProperty(id).GetInt64()).Select(x => x.GetRawText()));
        UInt128[] ids = [ExchangeStateMachine.EscrowAccount, .. clients.Select(c => c.Buyer.Account)];
        string money = string.Join('\n', (await LookupAsync(op, ids)).Select(a => string.Join(' ',
            new[] { "id", "debits_pending", "debits_posted", "credits_pending", "credits_posted" }.Select(f => a.GetProperty(f).ToString()))));
        return $"{Canonical(await AllAsync(op, "/api/exchange/orders", "orders"), "order_id")}\n--\n{Canonical(await AllAsync(op, "/api/exchange/leases", "leases"), "id")}\n--\n{money}";
    }

    /// <summary>Per asset, posted debits equal posted credits over all accounts (a checkpoint's Merkle sum roots).</summary>
    private static async Task CheckDebitsEqualCreditsAsync(HttpClient op)
    {
        JsonElement cp = await op.PostJsonAsync("/api/ledger/checkpoints", new { });
        foreach (JsonElement asset in cp.GetProperty("assets").EnumerateArray())
            Assert.True(asset.GetProperty("debits").GetString() == asset.GetProperty("credits").GetString(), $"checkpoint asset {asset}: debits != credits");
    }

    private static async Task<JsonElement[]> LookupAsync(HttpClient op, UInt128[] ids)
    {
        JsonElement found = await op.PostJsonAsync("/api/ledger/accounts/lookup", ids.Select(id => id.ToString(CultureInfo.InvariantCulture)).ToArray());
        var byId = found.EnumerateArray().ToDictionary(a => UInt128.Parse(a.GetProperty("id").GetString()!, CultureInfo.InvariantCulture));
        return ids.Select(id => byId.TryGetValue(id, out JsonElement a) ? a : throw new InvalidOperationException($"account {id} not found")).ToArray();
    }

    /// <summary>Every item of a paged listing (operators see everyone's).</summary>
    private static async Task<List<JsonElement>> AllAsync(HttpClient op, string path, string field)
    {
        var all = new List<JsonElement>();
        long? after = null;
        do
        {
            JsonElement page = await op.GetJsonAsync($"{path}?limit=1000{(after is long a ? $"&after={a}" : "")}");
            all.AddRange(page.GetProperty(field).EnumerateArray());
            after = page.GetProperty("next").ValueKind == JsonValueKind.Number ? page.GetProperty("next").GetInt64() : null;
        } while (after is not null);
        return all;
    }

    // ================================================================== the server

    /// <summary>A <c>serve</c> child on fixed ports with an admitted inference node whose agent (the real model) runs here.</summary>
    private sealed class Rig : IAsyncDisposable
    {
        private readonly string _dir;
        private readonly int _port;
        private readonly string _nodeUrl;
        private readonly NodeAgent _agent;
        private readonly CancellationTokenSource _stop = new();
        private Task? _agentRun;
        private Process _server;

        private Rig(string dir, int port, string nodeUrl, Process server, HttpClient op, NodeAgent agent)
        {
            _dir = dir;
            _port = port;
            _nodeUrl = nodeUrl;
            _server = server;
            Operator = op;
            _agent = agent;
        }

        public HttpClient Operator { get; }

        public static async Task<Rig> StartAsync(string dir, IEmbeddingModel model)
        {
            // Fixed ports: the clients' addresses and the agent's server stay valid across restarts.
            int port = TestServer.FreePort();
            string nodeUrl = $"http://127.0.0.1:{TestServer.FreePort()}";
            Process server = await StartChildAsync(dir, port, nodeUrl);
            var op = TestServer.Client($"http://127.0.0.1:{port}", TestServer.OperatorKey(dir));
            Party provider = await TestServer.NewProviderAsync(op, "mixed-inference-provider");
            provider.Http.Dispose();
            string keyFile = Path.Combine(dir, NodeId + ".key");
            var (_, publicKey, _, _) = NodeAgent.LoadOrCreateKey(keyFile);
            await op.PostJsonAsync($"/api/providers/{provider.Id}/nodes", new { node_id = NodeId, public_key = Convert.ToBase64String(publicKey), price_ceiling_micro_usd_per_1k_tokens = 100 });
            var agent = new NodeAgent(new NodeAgentOptions
            {
                Server = new Uri(nodeUrl), NodeId = NodeId, Region = "frankfurt", PriceMicroUsdPer1kTokens = InferencePrice, Capacity = 4, KeyFile = keyFile,
                ReconnectMinDelay = TimeSpan.FromMilliseconds(50), ReconnectMaxDelay = TimeSpan.FromMilliseconds(300), DrainTimeout = TimeSpan.FromSeconds(1),
            }, log: null, model: model);
            var rig = new Rig(dir, port, nodeUrl, server, op, agent);
            rig._agentRun = agent.RunAsync(rig._stop.Token);
            await rig.WaitNodeHealthyAsync();
            return rig;
        }

        public void Kill()
        {
            _server.Kill(entireProcessTree: true); // SIGKILL: no flush, no snapshot
            _server.WaitForExit();
        }

        public async Task RestartAsync()
        {
            _server.Dispose();
            _server = await StartChildAsync(_dir, _port, _nodeUrl);
            await WaitNodeHealthyAsync();
        }

        /// <summary>
        /// <c>computegrid serve</c> as <see cref="TestServer.StartChildAsync(string, int, string, IReadOnlyDictionary{string, string}?, string[])"/>
        /// starts it, but keeping what the child wrote: a start that fails (a store refusing to recover) says why.
        /// </summary>
        private static async Task<Process> StartChildAsync(string dir, int port, string nodeUrl)
        {
            var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            foreach (string a in new[] { Path.Combine(AppContext.BaseDirectory, "computegrid.dll"), "serve", "--urls", $"http://127.0.0.1:{port}", "--node-urls", nodeUrl,
                         "--data-dir", dir, "--no-sites" })
                psi.ArgumentList.Add(a);
            var p = Process.Start(psi)!;
            var said = new System.Collections.Concurrent.ConcurrentQueue<string>();
            p.OutputDataReceived += (_, e) => { if (e.Data is { } line) said.Enqueue(line); };
            p.ErrorDataReceived += (_, e) => { if (e.Data is { } line) said.Enqueue(line); };
            p.BeginOutputReadLine();
            p.BeginErrorReadLine();
            using var probe = new HttpClient { Timeout = TimeSpan.FromSeconds(1) };
            var deadline = DateTime.UtcNow.AddSeconds(60);
            while (DateTime.UtcNow < deadline)
            {
                if (p.HasExited)
                {
                    p.WaitForExit(); // the last lines
                    throw new InvalidOperationException($"computegrid serve exited with {p.ExitCode} during start: {Why(said)}");
                }
                try
                {
                    if ((await probe.GetAsync($"http://127.0.0.1:{port}/healthz")).IsSuccessStatusCode) return p;
                }
                catch (HttpRequestException) { }
                catch (TaskCanceledException) { }
                await Task.Delay(50);
            }
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"computegrid serve did not start in 60 s: {Why(said)}");
        }

        // The child's first error line and what follows it (an unhandled exception's message comes before its stack).
        private static string Why(IEnumerable<string> said)
        {
            var lines = said.ToList();
            int first = lines.FindIndex(l => l.Contains("xception", StringComparison.Ordinal) || l.Contains("fail", StringComparison.OrdinalIgnoreCase));
            return string.Join(" | ", first < 0 ? lines.TakeLast(12) : lines.Skip(first).Take(6));
        }

        /// <summary>SIGTERM, as a service manager sends it: the server must exit 0.</summary>
        public async Task StopGracefullyAsync()
        {
            using (Process kill = Process.Start("kill", ["-TERM", _server.Id.ToString(CultureInfo.InvariantCulture)])) await kill.WaitForExitAsync();
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await _server.WaitForExitAsync(timeout.Token);
            Assert.Equal(0, _server.ExitCode);
        }

        public async Task WaitNodeHealthyAsync()
        {
            var deadline = DateTime.UtcNow.AddSeconds(60);
            while (DateTime.UtcNow < deadline)
            {
                JsonElement nodes = JsonDocument.Parse(await Operator.GetStringAsync("/api/inference/nodes")).RootElement.GetProperty("nodes");
                if (nodes.EnumerateArray().Any(n => n.GetProperty("id").GetString() == NodeId && n.GetProperty("healthy").GetBoolean())) return;
                await Task.Delay(50);
            }
            throw new TimeoutException($"node {NodeId} did not become healthy in 60 s");
        }

        public async ValueTask DisposeAsync()
        {
            _stop.Cancel();
            await _agent.DisposeAsync();
            if (_agentRun is not null) { try { await _agentRun; } catch (Exception) { } }
            try
            {
                if (!_server.HasExited) Kill();
            }
            catch (InvalidOperationException) { } // a restart that failed left no process
            _server.Dispose();
            Operator.Dispose();
            _stop.Dispose();
        }
    }
}
