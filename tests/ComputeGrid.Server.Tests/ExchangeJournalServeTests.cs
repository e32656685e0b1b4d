using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using ComputeGrid.Exchange.StateMachine;
using Xunit.Abstractions;

namespace ComputeGrid.Server.Tests;

/// <summary>
/// The exchange's command journal under a real <c>computegrid serve</c>: a storage failure stops the exchange (503
/// problem+json for every command) and loses nothing it acknowledged; a byte flipped anywhere but the last record makes
/// serve refuse to start with one line and touch nothing; a torn last record is dropped and serve starts on what came
/// before it. Seeded: set CG_SEED to replay a failure.
/// </summary>
public sealed class ExchangeJournalServeTests(ITestOutputHelper output) : IDisposable
{
    private readonly List<string> _dirs = [];
    private readonly List<Process> _children = [];

    // Prices (micro-USD per GPU-hour, on H100's tick of 1,000 within its band up to $20): resting buys below every sell,
    // sells below the crossing buys' limit. Each resting order has a price of its own (the bases themselves are left for
    // the orders placed after a restart), so an open order, acknowledged or not, names the order the test sent.
    private const long Tick = 1_000, BuyBase = 1_000, SellBase = 2_000_000, CrossPrice = 19_000_000;
    private const long BuyerFunding = 1_000_000_000;

    public void Dispose()
    {
        foreach (Process p in _children)
        {
            try { if (!p.HasExited) { p.Kill(entireProcessTree: true); p.WaitForExit(10_000); } }
            catch (InvalidOperationException) { }
            p.Dispose();
        }
        foreach (string dir in _dirs)
        {
            try { Directory.Delete(dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }

    private string NewDir(string name)
    {
        string dir = TestServer.TempDir(name);
        _dirs.Add(dir);
        return dir;
    }

    private async Task<(Process Process, string Url)> StartAsync(string dir, IReadOnlyDictionary<string, string>? env = null)
    {
        var (p, url) = await TestServer.StartChildAsync(dir, 0, "", env);
        _children.Add(p);
        return (p, url);
    }

    private static async Task KillAsync(Process p)
    {
        p.Kill(entireProcessTree: true); // SIGKILL: no flush, no graceful stop
        await p.WaitForExitAsync();
    }

    private static int Seed(int fallback) => int.TryParse(Environment.GetEnvironmentVariable("CG_SEED"), out int s) ? s : fallback;

    // ================================================================== 1. storage failure: fail-stop, nothing acknowledged lost

    /// <summary>An order as sent; <see cref="Id"/> and <see cref="Fills"/> once a 200 acknowledged it.</summary>
    private sealed class Sent
    {
        public required Party Owner { get; init; }
        public required string Side { get; init; }
        public required long Price { get; init; }
        public required long Quantity { get; init; }
        public required string TimeInForce { get; init; }
        public bool Crossing => TimeInForce == "ioc";
        public long? Id { get; set; }
        public JsonElement[] Fills { get; set; } = [];
        public object Body(string symbol) => new { instrument = symbol, side = Side, price = Price, quantity = Quantity, time_in_force = TimeInForce };
        public override string ToString() => $"{Side} {Quantity} @ {Price} {TimeInForce} by {Owner.Id}{(Id is long id ? $" (order {id})" : " (not acknowledged)")}";
    }

    // CG_FAULT_AFTER: the appends that pass before the fault. The setup journals 14 appends (found by experiment, and
    // counted again from the journal after the kill, so a change shows): the start's first tick; per customer its
    // registration as a trader and its deposit, which costs two (the deposit, then its TransferSettled once the ledger
    // answered); the provider's registration, its collateral and its listing; one more tick if an instrument opens
    // during the setup. 50 leaves the orders at least 30 appends (each a batch of whatever orders were queued) before
    // the fault.
    private const int FaultAfter = 50, OrderAppendsMin = 30;

    [Theory]
    [InlineData("journal-fsync-error")]
    [InlineData("journal-write-error")]
    [InlineData("journal-torn-write")]
    public async Task A_journal_storage_failure_stops_the_exchange_with_503_and_loses_no_acknowledged_order(string fault)
    {
        int seed = Seed(20261227);
        output.WriteLine($"seed {seed} (set CG_SEED={seed} to replay), {fault} after {FaultAfter} appends");
        string dir = NewDir("journal-fault");
        var env = new Dictionary<string, string> { ["CG_FAULT"] = fault, ["CG_FAULT_AFTER"] = FaultAfter.ToString(CultureInfo.InvariantCulture) };
        var (server, url) = await StartAsync(dir, env);
        using HttpClient op = TestServer.Client(url, TestServer.OperatorKey(dir));

        var buyers = new List<Party>();
        for (int i = 0; i < 3; i++)
            buyers.Add(await TestServer.DepositAsync(await TestServer.NewCustomerAsync(op, $"jf-buyer-{i}", fundMicroUsd: BuyerFunding), BuyerFunding));
        Party seller = await TestServer.NewProviderAsync(op, "jf-seller", collateralMicroUsd: 100_000_000);
        await TestServer.AdmitNodeAsync(op, seller.Id, "jf-h100-01");
        await ApiTestHelpers.OkAsync(await seller.Http.PostSnakeAsync("/api/exchange/nodes", new { node_id = "jf-h100-01", gpu = "H100", region = "frankfurt", gpus = 100_000 }));
        string symbol = await ThirdHourlyAsync(op);
        // The journal is locked while serve runs: its length now tells where the setup's records end (each is durable
        // before its request is answered); they are counted once the process is gone.
        long setupBytes = new FileInfo(JournalPath(dir)).Length;

        // Several clients place orders (single and batched) until the exchange answers 503.
        var sent = new ConcurrentQueue<Sent>();
        long buyK = 0, sellK = 0;
        using var faulted = new CancellationTokenSource();
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(90));
        int first503 = 0, batchesAcked = 0;
        Party[] traders = [.. buyers, seller];
        var loops = traders.Select((trader, c) => Task.Run(async () =>
        {
            var rng = new Random(seed * 31 + c);
            while (!faulted.IsCancellationRequested)
            {
                Assert.False(deadline.IsCancellationRequested, $"no 503 within 90 s ({sent.Count} orders sent)");
                int n = rng.Next(3) == 0 ? 1 : rng.Next(2, 9);
                var orders = new Sent[n];
                for (int k = 0; k < n; k++)
                {
                    bool cross = trader != seller && rng.Next(5) == 0;
                    Assert.True(Interlocked.Read(ref buyK) < (SellBase - BuyBase) / Tick - 100, "the resting buys' prices reach the sells'");
                    orders[k] = trader == seller
                        ? new Sent { Owner = trader, Side = "sell", Price = SellBase + Tick * Interlocked.Increment(ref sellK), Quantity = rng.Next(1, 4), TimeInForce = "gtc" }
                        : cross ? new Sent { Owner = trader, Side = "buy", Price = CrossPrice, Quantity = 1, TimeInForce = "ioc" }
                        : new Sent { Owner = trader, Side = "buy", Price = BuyBase + Tick * Interlocked.Increment(ref buyK), Quantity = rng.Next(1, 4), TimeInForce = "gtc" };
                    sent.Enqueue(orders[k]);
                }
                bool single = n == 1;
                // Every command is answered, 200 or 503, and soon: one never answered is a bug (the pipeline lost it).
                using var answer = new CancellationTokenSource(AnswerTimeout);
                using HttpResponseMessage r = await AnsweredAsync(single
                    ? trader.Http.PostAsJsonAsync("/api/exchange/orders", orders[0].Body(symbol), TestServer.Json, answer.Token)
                    : trader.Http.PostAsJsonAsync("/api/exchange/orders/batch", new { orders = orders.Select(o => o.Body(symbol)).ToArray() }, TestServer.Json, answer.Token),
                    $"{(single ? "an order" : $"a batch of {n} orders")} of {trader.Id}");
                if (r.StatusCode == HttpStatusCode.ServiceUnavailable)
                {
                    await ApiTestHelpers.AssertProblemAsync(r, HttpStatusCode.ServiceUnavailable);
                    Interlocked.Increment(ref first503);
                    await faulted.CancelAsync();
                    return;
                }
                JsonElement ack = await ApiTestHelpers.OkAsync(r);
                if (single) Acknowledge(orders[0], ack);
                else
                {
                    JsonElement[] results = ack.GetProperty("results").EnumerateArray().ToArray();
                    Assert.Equal(n, results.Length);
                    for (int k = 0; k < n; k++)
                    {
                        Assert.True(results[k].GetProperty("order").ValueKind == JsonValueKind.Object, $"{orders[k]} refused in a batch: {results[k]}");
                        Acknowledge(orders[k], results[k].GetProperty("order"));
                    }
                    Interlocked.Increment(ref batchesAcked);
                }
            }
        })).ToArray();
        await Task.WhenAll(loops);
        Assert.True(first503 > 0, "no client saw a 503");
        Sent[] all = [.. sent];
        Sent[] acked = all.Where(o => o.Id is not null).ToArray();
        output.WriteLine($"{all.Length} orders sent, {acked.Length} acknowledged ({acked.Count(o => o.Crossing)} crossing buys, {batchesAcked} batches) before the fault");
        Assert.True(acked.Count(o => !o.Crossing && o.Side == "buy") > 0 && acked.Count(o => o.Side == "sell") > 0 && batchesAcked > 0,
            "too little was acknowledged before the fault: the test would check nothing");

        // After the first 503, every command answers 503 (single orders, batches, cancels, deposits), problem+json.
        Sent anOrder = acked.First(o => o.Side == "buy" && !o.Crossing);
        Party buyer = anOrder.Owner;
        object late = new { instrument = symbol, side = "buy", price = BuyBase, quantity = 1 };
        for (int i = 0; i < 2; i++)
        {
            await ApiTestHelpers.AssertProblemAsync(await buyer.Http.PostSnakeAsync("/api/exchange/orders", late), HttpStatusCode.ServiceUnavailable);
            await ApiTestHelpers.AssertProblemAsync(await buyer.Http.PostSnakeAsync("/api/exchange/orders/batch", new { orders = new[] { late, late } }), HttpStatusCode.ServiceUnavailable);
            await ApiTestHelpers.AssertProblemAsync(await seller.Http.PostSnakeAsync("/api/exchange/orders",
                new { instrument = symbol, side = "sell", price = CrossPrice + Tick, quantity = 1 }), HttpStatusCode.ServiceUnavailable);
            await ApiTestHelpers.AssertProblemAsync(await buyer.Http.DeleteAsync($"/api/exchange/orders/{anOrder.Id}"), HttpStatusCode.ServiceUnavailable);
            await ApiTestHelpers.AssertProblemAsync(await buyer.Http.PostSnakeAsync("/api/exchange/deposits", new { amount = 1 }), HttpStatusCode.ServiceUnavailable);
        }

        // Kill. The journal holds exactly the appends that passed (and, after an fsync error, the failed record whole: it was
        // written, only not made durable; after a torn write, half of it), then the restart recovers it.
        await KillAsync(server);
        var (records, trailing) = JournalRecords(File.ReadAllBytes(JournalPath(dir)), tornTailAllowed: true);
        int setupAppends = records.Count(r => r.Offset + r.Length <= setupBytes);
        output.WriteLine($"journal: {setupAppends} setup appends, {records.Count} records and {trailing} torn bytes after the fault");
        Assert.True(setupAppends + OrderAppendsMin <= FaultAfter, $"the setup took {setupAppends} appends: raise FaultAfter");
        Assert.Equal(FaultAfter + (fault == "journal-fsync-error" ? 1 : 0), records.Count);
        Assert.True(fault == "journal-torn-write" ? trailing > 0 : trailing == 0, $"{trailing} bytes after the last whole record");

        // Restart without the fault on the same folder: it starts, and every acknowledged order is there.
        var (_, url2) = await StartAsync(dir);
        using HttpClient op2 = TestServer.Client(url2, TestServer.OperatorKey(dir));
        var clients = traders.ToDictionary(t => t.Id, t => TestServer.Client(url2, t.Key));
        try
        {
            await CheckAfterRestartAsync(op2, clients, traders, buyers, all, symbol);

            // Trading goes on: a new order (single and batched) is accepted.
            JsonElement fresh = await ApiTestHelpers.OkAsync(await clients[buyer.Id].PostSnakeAsync("/api/exchange/orders", new { instrument = symbol, side = "buy", price = BuyBase, quantity = 1 }));
            Assert.Equal("resting", fresh.GetProperty("status").GetString());
            JsonElement batch = await ApiTestHelpers.OkAsync(await clients[seller.Id].PostSnakeAsync("/api/exchange/orders/batch",
                new { orders = new[] { new { instrument = symbol, side = "sell", price = SellBase, quantity = 1 } } }));
            Assert.Equal(1, batch.GetProperty("accepted").GetInt32());
        }
        finally
        {
            foreach (HttpClient h in clients.Values) h.Dispose();
            foreach (Party t in traders) t.Http.Dispose();
        }
    }

    private static readonly TimeSpan AnswerTimeout = TimeSpan.FromSeconds(30);

    private static async Task<HttpResponseMessage> AnsweredAsync(Task<HttpResponseMessage> request, string what)
    {
        try { return await request; }
        catch (TaskCanceledException) { throw new Xunit.Sdk.XunitException($"{what} was not answered in {AnswerTimeout.TotalSeconds} s"); }
    }

    private static void Acknowledge(Sent o, JsonElement ack)
    {
        string status = ack.GetProperty("status").GetString()!;
        o.Fills = ack.GetProperty("fills").EnumerateArray().ToArray();
        // A crossing buy (IOC, one GPU) takes the cheapest sell or none; a resting order crosses nothing.
        if (o.Crossing) Assert.True(status == "filled" && o.Fills.Length == 1 || status == "cancelled" && o.Fills.Length == 0, $"{o}: {ack}");
        else Assert.True(status == "resting" && ack.GetProperty("remaining").GetInt64() == o.Quantity && o.Fills.Length == 0, $"{o}: {ack}");
        o.Id = ack.GetProperty("order_id").GetInt64();
    }

    /// <summary>
    /// Every acknowledged order is present: a resting buy open as placed (each owner sees it with its own key); a crossing
    /// buy's fills as leases; a sell open or leased, exactly its quantity. Every open order and lease is one the clients
    /// sent. Each open buy holds limit × remaining; the exchange escrow's pending credits equal the open buys' holds, and
    /// each buyer's trading account holds its own and paid exactly its leases.
    /// </summary>
    private async Task CheckAfterRestartAsync(HttpClient op, Dictionary<ulong, HttpClient> clients, Party[] traders, List<Party> buyers, Sent[] all, string symbol)
    {
        var open = (await AllAsync(op, "/api/exchange/orders", "orders")).ToDictionary(o => o.GetProperty("order_id").GetInt64());
        var leases = (await AllAsync(op, "/api/exchange/leases", "leases")).ToDictionary(l => l.GetProperty("id").GetInt64());
        var ownView = new Dictionary<long, JsonElement>();
        foreach (Party t in traders)
            foreach (JsonElement o in await AllAsync(clients[t.Id], "/api/exchange/orders", "orders"))
            {
                Assert.Equal((long)t.Id, o.GetProperty("owner").GetInt64());
                ownView[o.GetProperty("order_id").GetInt64()] = o;
            }
        Assert.Equal(open.Keys.Order(), ownView.Keys.Order());

        var resting = all.Where(o => !o.Crossing).ToDictionary(o => (o.Side, o.Price));
        foreach (Sent o in all.Where(o => o.Id is not null))
        {
            long id = o.Id!.Value;
            if (o.Side == "buy" && !o.Crossing)
            {
                Assert.True(ownView.TryGetValue(id, out JsonElement v), $"acknowledged {o} is lost");
                Assert.Equal(o.Price, v.GetProperty("price").GetInt64());
                Assert.Equal(o.Quantity, v.GetProperty("remaining").GetInt64());
            }
            foreach (JsonElement fill in o.Fills)
            {
                long leaseId = fill.GetProperty("lease_id").GetInt64();
                Assert.True(leases.TryGetValue(leaseId, out JsonElement lease), $"lease {leaseId} of an acknowledged fill of {o} is lost");
                Assert.Equal((long)o.Owner.Id, lease.GetProperty("buyer").GetInt64());
                Assert.Equal(fill.GetProperty("price").GetInt64(), lease.GetProperty("price").GetInt64());
                Assert.Equal(fill.GetProperty("quantity").GetInt64(), lease.GetProperty("gpus").GetInt64());
            }
        }
        // Leases are priced at their sell's price, which names the sell.
        var leasedBySell = new Dictionary<long, long>();
        foreach (var (id, l) in leases)
        {
            long price = l.GetProperty("price").GetInt64();
            Assert.True(resting.TryGetValue(("sell", price), out Sent? sell), $"lease {id} @ {price} matches no sell the clients sent");
            Assert.Equal(symbol, l.GetProperty("symbol").GetString());
            Assert.Contains(buyers, b => (long)b.Id == l.GetProperty("buyer").GetInt64());
            leasedBySell[price] = leasedBySell.GetValueOrDefault(price) + l.GetProperty("gpus").GetInt64();
        }
        foreach (var (id, v) in open)
        {
            string side = v.GetProperty("side").GetString()!;
            long price = v.GetProperty("price").GetInt64(), remaining = v.GetProperty("remaining").GetInt64();
            Assert.True(resting.TryGetValue((side, price), out Sent? o), $"open order {id} ({side} @ {price}) is none the clients sent");
            Assert.True(o.Id is null || o.Id == id, $"{o} is open under id {id}");
            Assert.Equal((long)o.Owner.Id, v.GetProperty("owner").GetInt64());
            Assert.True(remaining > 0 && remaining <= o.Quantity, $"{o}: {remaining} left");
            Assert.True(v.GetProperty("hold_amount").GetInt64() == (side == "buy" ? checked(price * remaining) : 0), $"{o} holds {v}");
        }
        foreach (Sent sell in all.Where(o => o.Side == "sell"))
        {
            long leased = leasedBySell.GetValueOrDefault(sell.Price);
            long left = open.Values.Where(v => v.GetProperty("side").GetString() == "sell" && v.GetProperty("price").GetInt64() == sell.Price).Sum(v => v.GetProperty("remaining").GetInt64());
            // An acknowledged sell is all there (leased or resting); one never acknowledged is all there or absent.
            if (sell.Id is not null || leased + left > 0) Assert.True(leased + left == sell.Quantity, $"{sell}: {leased} leased + {left} resting != {sell.Quantity}");
        }

        UInt128[] ids = [ExchangeStateMachine.EscrowAccount, .. buyers.Select(b => b.Account)];
        JsonElement[] accounts = await LookupAsync(op, ids);
        long holds = open.Values.Where(v => v.GetProperty("side").GetString() == "buy").Sum(v => v.GetProperty("hold_amount").GetInt64());
        Assert.True(accounts[0].GetProperty("credits_pending").GetInt64() == holds,
            $"the exchange escrow holds {accounts[0].GetProperty("credits_pending")} pending, the open buys hold {holds}");
        for (int i = 0; i < buyers.Count; i++)
        {
            long own = open.Values.Where(v => v.GetProperty("owner").GetInt64() == (long)buyers[i].Id).Sum(v => v.GetProperty("hold_amount").GetInt64());
            long paid = leases.Values.Where(l => l.GetProperty("buyer").GetInt64() == (long)buyers[i].Id).Sum(l => l.GetProperty("notional").GetInt64());
            Assert.True(accounts[i + 1].GetProperty("debits_pending").GetInt64() == own, $"buyer {i} has {accounts[i + 1].GetProperty("debits_pending")} on hold, its open buys {own}");
            Assert.True(accounts[i + 1].GetProperty("debits_posted").GetInt64() == paid, $"buyer {i} paid {accounts[i + 1].GetProperty("debits_posted")}, its leases cost {paid}");
        }
        int ackedOpen = all.Count(o => o.Id is not null && !o.Crossing && o.Side == "buy");
        output.WriteLine($"after restart: {open.Count} open orders ({ackedOpen} acknowledged resting buys, all present), {leases.Count} leases, {holds} held; "
            + $"{open.Count(kv => all.Any(o => o.Id == kv.Key)) - ackedOpen} open sells acknowledged, {open.Count(kv => !all.Any(o => o.Id == kv.Key))} open orders never acknowledged");
    }

    // ================================================================== 2. a flipped byte: refuse to start, touch nothing

    [Fact]
    public async Task A_byte_flipped_before_the_last_record_makes_serve_refuse_to_start_with_one_line_and_change_nothing()
    {
        int seed = Seed(20261228);
        output.WriteLine($"seed {seed} (set CG_SEED={seed} to replay)");
        var rng = new Random(seed);
        string dir = NewDir("journal-flip");
        await BuildJournalAsync(dir);
        byte[] journal = File.ReadAllBytes(JournalPath(dir));
        List<(long Offset, int Length)> records = JournalRecords(journal);
        Assert.True(records.Count >= 6, $"only {records.Count} records");

        for (int i = 0; i < 5; i++)
        {
            // A record before the last; a byte of its header (magic, sizes, seq, time, hash) or of its body.
            var (offset, length) = records[rng.Next(records.Count - 1)];
            long at = offset + (i % 2 == 0 ? rng.Next(64) : 64 + rng.Next(length - 64));
            byte mask = (byte)rng.Next(1, 256);
            string copy = CopyOf(dir, "journal-flip-copy");
            string path = JournalPath(copy);
            byte[] flipped = (byte[])journal.Clone();
            flipped[at] ^= mask;
            File.WriteAllBytes(path, flipped);

            var (code, stdout, stderr) = await RunServeToExitAsync(copy);
            output.WriteLine($"byte {at} ^ 0x{mask:x2} (record at {offset}): exit {code}: {stderr.Trim()}");
            Assert.True(code == 1, $"byte {at}: exit {code}; stdout: {stdout}; stderr: {stderr}");
            string[] lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            Assert.True(lines.Length == 1, $"byte {at}: {lines.Length} lines on stderr: {stderr}");
            // The first bad record is the flipped one: the line names the file and that record's offset.
            Assert.StartsWith($"error: journal corrupt: {path} at byte {offset}: ", lines[0], StringComparison.Ordinal);
            Assert.True(File.ReadAllBytes(path).AsSpan().SequenceEqual(flipped), $"byte {at}: serve changed the journal");
            Directory.Delete(copy, recursive: true);
        }
    }

    // ================================================================== 3. a torn last record: dropped, serve starts

    [Fact]
    public async Task A_torn_last_record_is_dropped_and_serve_starts_with_the_state_before_it()
    {
        int seed = Seed(20261229);
        output.WriteLine($"seed {seed} (set CG_SEED={seed} to replay)");
        var rng = new Random(seed);
        string dir = NewDir("journal-torn");
        var (orders, symbol) = await BuildJournalAsync(dir);
        byte[] journal = File.ReadAllBytes(JournalPath(dir));
        List<(long Offset, int Length)> records = JournalRecords(journal);
        var (lastOffset, lastLength) = records[^1];

        // The reference: the same journal cut exactly before its last record (the commands but the last batch).
        string reference = CopyOf(dir, "journal-torn-ref");
        File.WriteAllBytes(JournalPath(reference), journal[..(int)lastOffset]);
        // The torn one: cut inside its last record.
        int cut = (int)lastOffset + rng.Next(1, lastLength);
        string torn = CopyOf(dir, "journal-torn-copy");
        File.WriteAllBytes(JournalPath(torn), journal[..cut]);
        output.WriteLine($"{records.Count} records; the last at {lastOffset} ({lastLength} bytes) cut at {cut}");

        string expected = await OpenOrdersAsync(reference);
        var (server, url) = await StartAsync(torn);
        using HttpClient op = TestServer.Client(url, TestServer.OperatorKey(torn));
        await ApiTestHelpers.OkAsync(await op.GetAsync("/healthz"));
        var open = (await AllAsync(op, "/api/exchange/orders", "orders")).ToDictionary(o => o.GetProperty("order_id").GetInt64());
        Assert.Equal(expected, Canonical(open.Values));
        // Every order acknowledged before the last one is there (the last one's record may be the torn one).
        foreach (var (id, price) in orders.SkipLast(1)) Assert.True(open.TryGetValue(id, out JsonElement o) && o.GetProperty("price").GetInt64() == price, $"order {id} is lost");
        long holds = open.Values.Where(v => v.GetProperty("side").GetString() == "buy").Sum(v => v.GetProperty("hold_amount").GetInt64());
        JsonElement escrow = (await LookupAsync(op, [ExchangeStateMachine.EscrowAccount]))[0];
        Assert.Equal(holds, escrow.GetProperty("credits_pending").GetInt64());
        // Trading goes on.
        Party buyer = await TestServer.DepositAsync(await TestServer.NewCustomerAsync(op, "torn-late", fundMicroUsd: 1_000_000), 1_000_000);
        using (buyer.Http)
        {
            JsonElement ack = await ApiTestHelpers.OkAsync(await buyer.Http.PostSnakeAsync("/api/exchange/orders", new { instrument = symbol, side = "buy", price = BuyBase, quantity = 1 }));
            Assert.Equal("resting", ack.GetProperty("status").GetString());
        }
        await KillAsync(server);
        // The torn bytes were dropped: the records before them are as they were, and the journal reads to its end.
        byte[] after = File.ReadAllBytes(JournalPath(torn));
        Assert.True(after.AsSpan(0, (int)lastOffset).SequenceEqual(journal.AsSpan(0, (int)lastOffset)), "the records before the torn one changed");
        Assert.True(JournalRecords(after).Count > records.Count - 1, "the recovered server journaled nothing");
    }

    private async Task<string> OpenOrdersAsync(string dir)
    {
        var (server, url) = await StartAsync(dir);
        using HttpClient op = TestServer.Client(url, TestServer.OperatorKey(dir));
        string open = Canonical(await AllAsync(op, "/api/exchange/orders", "orders"));
        await KillAsync(server);
        return open;
    }

    private static string Canonical(IEnumerable<JsonElement> orders) =>
        string.Join('\n', orders.OrderBy(o => o.GetProperty("order_id").GetInt64()).Select(o => o.GetRawText()));

    /// <summary>
    /// A data folder whose journal holds several batches: a funded buyer's deposit, a provider's listing, resting buys and
    /// sells each in a request of its own (a record each, but for a tick between), the last a sell (no ledger effect, so a
    /// journal without it still agrees with the ledger). Stopped with SIGTERM. Returns the orders (id, price) in order.
    /// </summary>
    private async Task<(List<(long Id, long Price)> Orders, string Symbol)> BuildJournalAsync(string dir)
    {
        var (server, url) = await StartAsync(dir);
        using HttpClient op = TestServer.Client(url, TestServer.OperatorKey(dir));
        Party buyer = await TestServer.DepositAsync(await TestServer.NewCustomerAsync(op, "jr-buyer", fundMicroUsd: BuyerFunding), BuyerFunding);
        Party seller = await TestServer.NewProviderAsync(op, "jr-seller", collateralMicroUsd: 100_000_000);
        using (buyer.Http)
        using (seller.Http)
        {
            await TestServer.AdmitNodeAsync(op, seller.Id, "jr-h100-01");
            await ApiTestHelpers.OkAsync(await seller.Http.PostSnakeAsync("/api/exchange/nodes", new { node_id = "jr-h100-01", gpu = "H100", region = "frankfurt", gpus = 1_000 }));
            string symbol = await ThirdHourlyAsync(op);
            var orders = new List<(long, long)>();
            for (int k = 1; k <= 8; k++)
            {
                bool buy = k % 2 == 1;
                long price = (buy ? BuyBase : SellBase) + Tick * k;
                JsonElement ack = await ApiTestHelpers.OkAsync(await (buy ? buyer : seller).Http.PostSnakeAsync("/api/exchange/orders",
                    new { instrument = symbol, side = buy ? "buy" : "sell", price, quantity = k }));
                Assert.Equal("resting", ack.GetProperty("status").GetString());
                orders.Add((ack.GetProperty("order_id").GetInt64(), price));
            }
            // SIGTERM, as a service manager stops it.
            using (var term = Process.Start("kill", ["-TERM", server.Id.ToString(CultureInfo.InvariantCulture)])) await term.WaitForExitAsync();
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await server.WaitForExitAsync(cts.Token);
            Assert.Equal(0, server.ExitCode);
            return (orders, symbol);
        }
    }

    /// <summary>Runs serve on <paramref name="dir"/> to its exit (60 s at most, then killed): exit code, stdout, stderr.</summary>
    private static async Task<(int Code, string Out, string Err)> RunServeToExitAsync(string dir)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string a in (string[])[Path.Combine(AppContext.BaseDirectory, "computegrid.dll"), "serve", "--urls", "http://127.0.0.1:0", "--node-urls", "", "--data-dir", dir, "--no-sites"])
            psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        try
        {
            Task<string> stdout = p.StandardOutput.ReadToEndAsync(), stderr = p.StandardError.ReadToEndAsync();
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            try { await p.WaitForExitAsync(cts.Token); }
            catch (OperationCanceledException) { Assert.Fail($"serve on {dir} did not exit in 60 s (it should refuse to start)"); }
            return (p.ExitCode, await stdout, await stderr);
        }
        finally
        {
            if (!p.HasExited) { p.Kill(entireProcessTree: true); await p.WaitForExitAsync(); }
        }
    }

    // ================================================================== helpers

    private static string JournalPath(string dir) => Path.Combine(dir, "exchange", "commands.journal");

    /// <summary>
    /// The records of a journal (JournalFormat: a 64-byte header, u32 "CGJR" magic at 0 and u32 body bytes at 4, then the
    /// body), which must end exactly at the end of the bytes.
    /// </summary>
    private static List<(long Offset, int Length)> JournalRecords(byte[] journal) => JournalRecords(journal, tornTailAllowed: false).Records;

    /// <summary>The records of a journal and the bytes after the last whole one (none unless <paramref name="tornTailAllowed"/>).</summary>
    private static (List<(long Offset, int Length)> Records, int Trailing) JournalRecords(byte[] journal, bool tornTailAllowed)
    {
        var records = new List<(long, int)>();
        int at = 0;
        while (at < journal.Length)
        {
            bool header = journal.Length - at >= 64 && BinaryPrimitives.ReadUInt32LittleEndian(journal.AsSpan(at)) == 0x524A4743;
            int length = header ? 64 + checked((int)BinaryPrimitives.ReadUInt32LittleEndian(journal.AsSpan(at + 4))) : 0;
            if (!header || at + length > journal.Length)
            {
                Assert.True(tornTailAllowed, $"no whole record at byte {at} of {journal.Length}");
                break;
            }
            records.Add((at, length));
            at += length;
        }
        return (records, journal.Length - at);
    }

    /// <summary>A copy of a data folder (all its files), in a new temporary folder deleted with the test.</summary>
    private string CopyOf(string dir, string name)
    {
        string copy = NewDir(name);
        foreach (string file in Directory.GetFiles(dir, "*", SearchOption.AllDirectories))
        {
            string to = Path.Combine(copy, Path.GetRelativePath(dir, file));
            Directory.CreateDirectory(Path.GetDirectoryName(to)!);
            File.Copy(file, to, overwrite: true);
        }
        return copy;
    }

    /// <summary>The third hourly H100 frankfurt instrument: hours ahead, it trades for the whole test.</summary>
    private static async Task<string> ThirdHourlyAsync(HttpClient op)
    {
        JsonElement page = await op.GetJsonAsync("/api/exchange/instruments?gpu=H100&region=frankfurt&kind=H&limit=3");
        JsonElement[] instruments = page.GetProperty("instruments").EnumerateArray().ToArray();
        Assert.Equal(3, instruments.Length);
        return instruments[2].GetProperty("symbol").GetString()!;
    }

    private static async Task<JsonElement[]> LookupAsync(HttpClient op, UInt128[] ids)
    {
        JsonElement found = await op.PostJsonAsync("/api/ledger/accounts/lookup", ids.Select(id => id.ToString(CultureInfo.InvariantCulture)).ToArray());
        var byId = found.EnumerateArray().ToDictionary(a => UInt128.Parse(a.GetProperty("id").GetString()!, CultureInfo.InvariantCulture));
        return ids.Select(id => byId.TryGetValue(id, out JsonElement a) ? a : throw new InvalidOperationException($"account {id} not found")).ToArray();
    }

    /// <summary>Every item of a paged listing (operators see everyone's, others their own).</summary>
    private static async Task<List<JsonElement>> AllAsync(HttpClient http, string path, string field)
    {
        var all = new List<JsonElement>();
        long? after = null;
        do
        {
            JsonElement page = await http.GetJsonAsync($"{path}?limit=1000{(after is long a ? $"&after={a}" : "")}");
            all.AddRange(page.GetProperty(field).EnumerateArray());
            after = page.GetProperty("next").ValueKind == JsonValueKind.Number ? page.GetProperty("next").GetInt64() : null;
        } while (after is not null);
        return all;
    }
}
