using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using ComputeGrid.Core;
using ComputeGrid.Ledger;
using ComputeGrid.Server.Trust;
using Microsoft.AspNetCore.Builder;

namespace ComputeGrid.Server.Tests;

/// <summary>
/// A real server on loopback for block orders, seeded through the API: a funded buyer, a buyer with $1, and a provider
/// with 8 H100s in Frankfurt and 8 B200s in Tokyo. Each test uses its own class and region so the books of different
/// tests never mix.
/// </summary>
public sealed class ExchangeBlockApiFixture : IAsyncLifetime
{
    public const long BuyerFunds = 1_000_000_000, PoorFunds = 1_000_000; // $1,000 and $1

    public string Dir { get; } = TestServer.TempDir("exchange-block-api");
    public WebApplication App { get; private set; } = null!;
    public HttpClient Operator { get; private set; } = null!;
    public HttpClient Anonymous { get; private set; } = null!;
    public ExchangeSeed Seed { get; private set; } = null!;
    private NodeHeartbeats? _heartbeats;

    public Party Buyer => Seed.Buyer;
    public Party Poor => Seed.Poor;
    public Party Provider => Seed.Provider;

    public async Task InitializeAsync()
    {
        // Every client of the tests calls from 127.0.0.1, and market data is public: it is rate-limited per address
        // (100 a second by default), which the snapshots of the refusal cases alone would pass.
        (App, Operator) = await TestServer.StartInProcessAsync(Dir, limits: new ServerLimits { Anonymous = new RateLimit(10_000, 20_000) });
        Anonymous = TestServer.Client(Operator.BaseAddress!.ToString(), null);
        Seed = await TestServer.SeedExchangeAsync(Operator, ("H100", "frankfurt"), ("B200", "tokyo"));
        // The nodes are alive: the exchange would fail a lease whose node missed its heartbeats for 30 s.
        _heartbeats = new NodeHeartbeats(Operator, Seed.Nodes.Values, TimeSpan.FromSeconds(5));
    }

    public async Task DisposeAsync()
    {
        if (_heartbeats is not null) await _heartbeats.DisposeAsync();
        foreach (var http in new[] { Operator, Anonymous, Buyer.Http, Poor.Http, Provider.Http }) http.Dispose();
        await App.StopAsync();
        await App.DisposeAsync();
        Directory.Delete(Dir, recursive: true);
    }
}

/// <summary><c>POST /api/exchange/blocks/quote</c> and <c>POST /api/exchange/blocks</c>.</summary>
public sealed class ExchangeBlockApiTests(ExchangeBlockApiFixture f) : IClassFixture<ExchangeBlockApiFixture>
{
    private const long NsPerHour = 3_600_000_000_000;
    private HttpClient Op => f.Operator;

    /// <summary>
    /// Three consecutive hourly instruments of a class and region, starting two hours ahead: all trading whatever the
    /// minute the test runs (the next hour's gate may close during the test).
    /// </summary>
    private async Task<(long Start, string[] Symbols)> HoursAsync(string gpu, string region)
    {
        var page = await f.Anonymous.GetJsonAsync($"/api/exchange/instruments?gpu={gpu}&region={region}&kind=H&limit=10");
        var hourly = page.GetProperty("instruments").EnumerateArray().OrderBy(i => Ns(i.GetProperty("delivery_start"))).Skip(2).Take(3).ToArray();
        Assert.Equal(3, hourly.Length);
        long start = Ns(hourly[0].GetProperty("delivery_start"));
        for (int k = 0; k < 3; k++) Assert.Equal(start + k * NsPerHour, Ns(hourly[k].GetProperty("delivery_start")));
        return (start, hourly.Select(i => i.GetProperty("symbol").GetString()!).ToArray());
    }

    /// <summary>Unix nanoseconds of an RFC 3339 time of the API.</summary>
    private static long Ns(JsonElement time)
    {
        Assert.True(ApiTime.TryParse(time.GetString(), null, out ApiTime t), time.GetRawText());
        return t.UnixNanoseconds;
    }

    /// <summary>The API's form of a time: RFC 3339 in UTC.</summary>
    private static string Rfc3339(long ns) => new ApiTime(ns).ToString();

    /// <summary>The same instant at another offset (<c>2026-12-06T15:00:00+01:00</c>).</summary>
    private static string Rfc3339(long ns, TimeSpan offset) =>
        DateTimeOffset.UnixEpoch.AddTicks(ns / 100).ToOffset(offset).ToString("yyyy-MM-dd'T'HH:mm:sszzz", CultureInfo.InvariantCulture);

    private async Task SellAsync(string symbol, long price, long quantity) =>
        await ApiTestHelpers.OkAsync(await f.Provider.Http.PostSnakeAsync("/api/exchange/orders", new { instrument = symbol, side = "sell", price, quantity }));

    private static Task<JsonElement> AccountAsync(Party p) => p.Http.GetJsonAsync($"/api/ledger/accounts/{p.Account}");

    /// <summary>Everything a client can observe that a refused block could have changed.</summary>
    private async Task<string> SnapshotAsync(IEnumerable<string> symbols)
    {
        var accounts = await Op.PostJsonAsync("/api/ledger/accounts/lookup", new[]
        {
            f.Buyer.Account, f.Poor.Account, ChartOfAccounts.PrincipalAccount(AccountCode.ProviderRevenue, f.Provider.Id),
            ChartOfAccounts.PrincipalAccount(AccountCode.ProviderCollateral, f.Provider.Id),
        }.Select(a => a.ToString()).ToArray());
        var parts = new List<string>
        {
            accounts.GetRawText(), await ApiTestHelpers.LedgerCountsAsync(Op),
            await Op.GetStringAsync("/api/exchange/orders?limit=1000"), await Op.GetStringAsync("/api/exchange/leases?limit=1000"),
        };
        foreach (var s in symbols)
        {
            var book = await f.Anonymous.GetJsonAsync($"/api/exchange/book/{s}");
            parts.Add(book.GetProperty("bids").GetRawText() + book.GetProperty("asks").GetRawText() + await f.Anonymous.GetStringAsync($"/api/exchange/trades/{s}"));
        }
        return string.Join("\n", parts);
    }

    [Fact]
    public async Task A_block_is_quoted_then_filled_at_exactly_the_quoted_total()
    {
        var (start, symbols) = await HoursAsync("H100", "frankfurt");
        // Hour 0: one ask of 4 at $2.00; hour 1: one of 4 at $2.10; hour 2: two asks, 2 at $2.00 and 3 at $2.20 (one left over).
        await SellAsync(symbols[0], 2_000_000, 4);
        await SellAsync(symbols[1], 2_100_000, 4);
        await SellAsync(symbols[2], 2_000_000, 2);
        await SellAsync(symbols[2], 2_200_000, 3);
        const long total = 4 * 2_000_000 + 4 * 2_100_000 + 2 * 2_000_000 + 2 * 2_200_000; // 24,800,000
        const long average = (total + 11) / 12;                                            // 12 GPU-hours, rounded up
        var body = new { gpu = "H100", region = "frankfurt", start = Rfc3339(start), end = Rfc3339(start + 3 * NsPerHour), gpus = 4, max_average_price = 2_100_000 };

        var quote = await ApiTestHelpers.OkAsync(await f.Buyer.Http.PostSnakeAsync("/api/exchange/blocks/quote", body));
        Assert.True(quote.GetProperty("fillable").GetBoolean());
        Assert.True(quote.GetProperty("within_limit").GetBoolean());
        Assert.Equal(total, quote.GetProperty("total_cost").GetInt64());
        Assert.Equal(average, quote.GetProperty("average_price").GetInt64());
        Assert.Equal(body.start, quote.GetProperty("start").GetString());
        Assert.Equal(body.end, quote.GetProperty("end").GetString());
        Assert.Empty(quote.GetProperty("short").EnumerateArray());
        var legs = quote.GetProperty("legs").EnumerateArray().ToArray();
        Assert.Equal(3, legs.Length);
        (long Cost, long Worst, int Makers)[] expected = [(8_000_000, 2_000_000, 1), (8_400_000, 2_100_000, 1), (8_400_000, 2_200_000, 2)];
        for (int k = 0; k < 3; k++)
        {
            Assert.Equal(symbols[k], legs[k].GetProperty("symbol").GetString());
            Assert.Equal(Rfc3339(start + k * NsPerHour), legs[k].GetProperty("hour").GetString());
            Assert.Equal(4, legs[k].GetProperty("gpus").GetInt32());
            Assert.Equal(expected[k].Cost, legs[k].GetProperty("cost").GetInt64());
            Assert.Equal(expected[k].Worst, legs[k].GetProperty("worst_price").GetInt64());
            Assert.Equal(expected[k].Makers, legs[k].GetProperty("makers").GetInt32());
        }

        long buyerBefore = (await AccountAsync(f.Buyer)).GetProperty("credit_balance").GetInt64();
        // The same block with the same instants written at another offset: RFC 3339 takes either.
        var placed = await ApiTestHelpers.OkAsync(await f.Buyer.Http.PostSnakeAsync("/api/exchange/blocks",
            new { body.gpu, body.region, start = Rfc3339(start, TimeSpan.FromHours(1)), end = Rfc3339(start + 3 * NsPerHour, TimeSpan.FromHours(-5)), body.gpus, body.max_average_price }));
        Assert.True(placed.GetProperty("block_id").GetInt64() > 0);
        Assert.Equal(total, placed.GetProperty("total_cost").GetInt64());
        Assert.Equal(average, placed.GetProperty("average_price").GetInt64());
        Assert.Equal(4, placed.GetProperty("fills").GetArrayLength());
        var leases = placed.GetProperty("leases").EnumerateArray().ToArray();
        Assert.Equal(4, leases.Length);
        Assert.All(leases, l => Assert.Equal((long)f.Buyer.Id, l.GetProperty("buyer").GetInt64()));
        Assert.All(leases, l => Assert.Equal((long)f.Provider.Id, l.GetProperty("provider").GetInt64()));
        Assert.All(leases, l => Assert.Equal("active", l.GetProperty("status").GetString()));
        Assert.Equal(total, leases.Sum(l => l.GetProperty("notional").GetInt64()));
        Assert.Equal(symbols.ToHashSet(), leases.Select(l => l.GetProperty("symbol").GetString()!).ToHashSet());
        var fillLeases = placed.GetProperty("fills").EnumerateArray().Select(x => x.GetProperty("lease_id").GetInt64()).Order();
        Assert.Equal(leases.Select(l => l.GetProperty("id").GetInt64()).Order(), fillLeases);

        // The buyer paid exactly the quoted total, nothing stays on hold, and every lease's escrow holds its notional.
        var buyer = await AccountAsync(f.Buyer);
        Assert.Equal(buyerBefore - total, buyer.GetProperty("credit_balance").GetInt64());
        Assert.Equal(0, buyer.GetProperty("debits_pending").GetInt64());
        foreach (var l in leases)
        {
            var escrow = await Op.GetJsonAsync($"/api/ledger/accounts/{l.GetProperty("escrow_account").GetString()}");
            Assert.Equal(l.GetProperty("notional").GetInt64(), escrow.GetProperty("credits_posted").GetInt64());
            Assert.Equal("lease_escrow", escrow.GetProperty("kind").GetString());
            Assert.Equal("debits_must_not_exceed_credits", escrow.GetProperty("flags").GetString());
        }
        var mine = await f.Buyer.Http.GetJsonAsync("/api/exchange/leases");
        Assert.Equal(4, mine.GetProperty("leases").GetArrayLength());
        var open = await f.Buyer.Http.GetJsonAsync("/api/exchange/orders");
        Assert.Empty(open.GetProperty("orders").EnumerateArray());
        // Only the $2.20 ask's leftover GPU rests.
        for (int k = 0; k < 2; k++)
            Assert.Empty((await f.Anonymous.GetJsonAsync($"/api/exchange/book/{symbols[k]}")).GetProperty("asks").EnumerateArray());
        var last = Assert.Single((await f.Anonymous.GetJsonAsync($"/api/exchange/book/{symbols[2]}")).GetProperty("asks").EnumerateArray());
        Assert.Equal(1, last.GetProperty("quantity").GetInt64());
    }

    [Fact]
    public async Task A_short_or_too_dear_block_is_refused_with_its_quote_and_changes_nothing()
    {
        var (start, symbols) = await HoursAsync("B200", "tokyo");
        // Hour 0 offers 4, hour 1 only 2, hour 2 nothing: the block of 4 is short from hour 1 on.
        await SellAsync(symbols[0], 5_000_000, 4);
        await SellAsync(symbols[1], 5_000_000, 2);
        string before = await SnapshotAsync(symbols);

        var body = new { gpu = "B200", region = "tokyo", start = Rfc3339(start), end = Rfc3339(start + 3 * NsPerHour), gpus = 4, max_average_price = 6_000_000 };
        var quote = await ApiTestHelpers.OkAsync(await f.Buyer.Http.PostSnakeAsync("/api/exchange/blocks/quote", body));
        Assert.False(quote.GetProperty("fillable").GetBoolean());
        Assert.False(quote.GetProperty("within_limit").GetBoolean());
        var windows = quote.GetProperty("short").EnumerateArray().ToArray();
        Assert.Equal(2, windows.Length);
        Assert.Equal((Rfc3339(start + NsPerHour), Rfc3339(start + 2 * NsPerHour), 2),
            (windows[0].GetProperty("start").GetString(), windows[0].GetProperty("end").GetString(), windows[0].GetProperty("available").GetInt32()));
        Assert.Equal((Rfc3339(start + 2 * NsPerHour), Rfc3339(start + 3 * NsPerHour), 0),
            (windows[1].GetProperty("start").GetString(), windows[1].GetProperty("end").GetString(), windows[1].GetProperty("available").GetInt32()));
        Assert.All(windows, w => Assert.Equal("not_enough_offered", w.GetProperty("reason").GetString()));

        var p = await ApiTestHelpers.AssertProblemAsync(await f.Buyer.Http.PostSnakeAsync("/api/exchange/blocks", body), HttpStatusCode.Conflict, "book_rejected");
        Assert.Equal("short", p.GetProperty("refusal").GetString());
        Assert.Equal(quote.GetProperty("short").GetRawText(), p.GetProperty("quote").GetProperty("short").GetRawText());
        Assert.Contains("2 of 4 GPUs", p.GetProperty("detail").GetString());
        Assert.Equal(before, await SnapshotAsync(symbols));

        // An hour that is there, but dearer on average than the limit.
        var dear = body with { end = Rfc3339(start + NsPerHour), max_average_price = 4_999_000 };
        p = await ApiTestHelpers.AssertProblemAsync(await f.Buyer.Http.PostSnakeAsync("/api/exchange/blocks", dear), HttpStatusCode.Conflict, "book_rejected");
        Assert.Equal("above_limit", p.GetProperty("refusal").GetString());
        Assert.True(p.GetProperty("quote").GetProperty("fillable").GetBoolean());
        Assert.Equal(5_000_000, p.GetProperty("quote").GetProperty("average_price").GetInt64());
        Assert.Equal(before, await SnapshotAsync(symbols));

        // Hours long past have no instrument trading.
        long past = start - 72 * NsPerHour;
        var gone = body with { start = Rfc3339(past), end = Rfc3339(past + NsPerHour) };
        p = await ApiTestHelpers.AssertProblemAsync(await f.Buyer.Http.PostSnakeAsync("/api/exchange/blocks", gone), HttpStatusCode.Conflict, "instrument_not_trading");
        Assert.Equal("not_trading", p.GetProperty("quote").GetProperty("short")[0].GetProperty("reason").GetString());
        Assert.Equal(before, await SnapshotAsync(symbols));

        // A buyer who cannot hold the block's cost.
        var poor = body with { end = Rfc3339(start + NsPerHour) };
        await ApiTestHelpers.AssertProblemAsync(await f.Poor.Http.PostSnakeAsync("/api/exchange/blocks", poor), HttpStatusCode.PaymentRequired, "insufficient_balance");
        // A refused hold leaves no pending money; the books are as they were.
        var poorAccount = await AccountAsync(f.Poor);
        Assert.Equal(0, poorAccount.GetProperty("debits_pending").GetInt64());
        Assert.Equal(ExchangeBlockApiFixture.PoorFunds, poorAccount.GetProperty("credit_balance").GetInt64());
        Assert.Equal(before, await SnapshotAsync(symbols));
        Assert.DoesNotContain((await Op.GetJsonAsync("/api/exchange/leases?limit=1000")).GetProperty("leases").EnumerateArray(),
            l => symbols.Contains(l.GetProperty("symbol").GetString()));
    }

    // Who sends it: buyer, operator or anonymous. {T}: a whole hour two hours ahead (RFC 3339); {T1}: an hour after it;
    // {T+1}, {T1+1}: a nanosecond after them (not whole hours); {T744}: the longest block's end; {T1000}: 1000 hours
    // after {T} (longer than a block may be); {TNS}: {T} as Unix nanoseconds; {TLOCAL}: {T} without an offset.
    public static TheoryData<string, string, string, HttpStatusCode, string?> BadBlocks => new()
    {
        { "buyer", "/api/exchange/blocks", """{"gpu":"H100","region":"frankfurt","start":"{T}","end":"{T1}","gpus":1""", HttpStatusCode.BadRequest, null },
        { "buyer", "/api/exchange/blocks", """{"gpu":"H100","region":"frankfurt","start":"{T}","end":"{T1}","gpus":1}""", HttpStatusCode.BadRequest, null },
        { "buyer", "/api/exchange/blocks/quote", """{"gpu":"H100","region":"frankfurt","start":"{T}","end":"{T1}","gpus":1,"max_average_price":1,"color":"red"}""", HttpStatusCode.BadRequest, null },
        { "buyer", "/api/exchange/blocks", """{"owner":{BUYER},"gpu":"H100","region":"frankfurt","start":"{T}","end":"{T1}","gpus":1,"max_average_price":2000000}""", HttpStatusCode.BadRequest, null },
        { "buyer", "/api/exchange/blocks/quote", """{"gpu":"H100","region":"frankfurt","start":"{T}","end":"{T1}","gpus":1,"max_average_price":"2.00"}""", HttpStatusCode.BadRequest, null },
        { "buyer", "/api/exchange/blocks/quote", """{"gpu":"H100","region":"frankfurt","start":"tomorrow","end":"{T1}","gpus":1,"max_average_price":2000000}""", HttpStatusCode.BadRequest, null },
        { "buyer", "/api/exchange/blocks/quote", """{"gpu":"H100","region":"frankfurt","start":{TNS},"end":"{T1}","gpus":1,"max_average_price":2000000}""", HttpStatusCode.BadRequest, null },
        { "buyer", "/api/exchange/blocks", """{"gpu":"H100","region":"frankfurt","start":"{TLOCAL}","end":"{T1}","gpus":1,"max_average_price":2000000}""", HttpStatusCode.BadRequest, null },
        { "buyer", "/api/exchange/blocks/quote", """{"gpu":"V100","region":"frankfurt","start":"{T}","end":"{T1}","gpus":1,"max_average_price":2000000}""", HttpStatusCode.BadRequest, null },
        { "buyer", "/api/exchange/blocks", """{"gpu":"H100","region":"atlantis","start":"{T}","end":"{T1}","gpus":1,"max_average_price":2000000}""", HttpStatusCode.BadRequest, null },
        { "buyer", "/api/exchange/blocks", """{"gpu":"H100","region":"frankfurt","start":"{T}","end":"{T1}","gpus":0,"max_average_price":2000000}""", HttpStatusCode.BadRequest, null },
        { "buyer", "/api/exchange/blocks", """{"gpu":"H100","region":"frankfurt","start":"{T}","end":"{T1}","gpus":1,"max_average_price":-1}""", HttpStatusCode.BadRequest, null },
        { "buyer", "/api/exchange/blocks", """{"gpu":"H100","region":"frankfurt","start":"{T1}","end":"{T}","gpus":1,"max_average_price":2000000}""", HttpStatusCode.BadRequest, null },
        { "buyer", "/api/exchange/blocks/quote", """{"gpu":"H100","region":"frankfurt","start":"{T+1}","end":"{T1}","gpus":1,"max_average_price":2000000}""", HttpStatusCode.UnprocessableEntity, "invalid_request" },
        { "buyer", "/api/exchange/blocks", """{"gpu":"H100","region":"frankfurt","start":"{T}","end":"{T1+1}","gpus":1,"max_average_price":2000000}""", HttpStatusCode.UnprocessableEntity, "invalid_request" },
        { "buyer", "/api/exchange/blocks/quote", """{"gpu":"H100","region":"frankfurt","start":"{T}","end":"{T1000}","gpus":1,"max_average_price":2000000}""", HttpStatusCode.UnprocessableEntity, "invalid_request" },
        { "buyer", "/api/exchange/blocks", """{"gpu":"H100","region":"frankfurt","start":"{T}","end":"{T744}","gpus":2147483647,"max_average_price":2000000}""", HttpStatusCode.UnprocessableEntity, "notional_overflows" },
        { "anonymous", "/api/exchange/blocks/quote", """{"gpu":"H100","region":"frankfurt","start":"{T}","end":"{T1}","gpus":1,"max_average_price":2000000}""", HttpStatusCode.Unauthorized, null },
        { "operator", "/api/exchange/blocks", """{"gpu":"H100","region":"frankfurt","start":"{T}","end":"{T1}","gpus":1,"max_average_price":2000000}""", HttpStatusCode.Forbidden, null },
    };

    [Theory]
    [MemberData(nameof(BadBlocks))]
    public async Task A_malformed_block_gets_a_problem_and_changes_nothing(string actor, string path, string body, HttpStatusCode status, string? error)
    {
        var (start, symbols) = await HoursAsync("H100", "frankfurt");
        string before = await SnapshotAsync(symbols);
        string json = body.Replace("{T+1}", Rfc3339(start + 1)).Replace("{T1+1}", Rfc3339(start + NsPerHour + 1)).Replace("{T1000}", Rfc3339(start + 1000 * NsPerHour))
            .Replace("{T744}", Rfc3339(start + 744 * NsPerHour)).Replace("{T1}", Rfc3339(start + NsPerHour)).Replace("{TNS}", start.ToString(CultureInfo.InvariantCulture))
            .Replace("{TLOCAL}", Rfc3339(start).TrimEnd('Z')).Replace("{T}", Rfc3339(start)).Replace("{BUYER}", f.Buyer.Id.ToString(CultureInfo.InvariantCulture));
        HttpClient client = actor switch
        {
            "buyer" => f.Buyer.Http, "operator" => Op, "anonymous" => f.Anonymous,
            _ => throw new ArgumentOutOfRangeException(nameof(actor), actor, null),
        };
        var p = await ApiTestHelpers.AssertProblemAsync(await client.SendJsonAsync(HttpMethod.Post, path, json), status, error);
        Assert.False(p.TryGetProperty("quote", out _));
        Assert.Equal(before, await SnapshotAsync(symbols));
    }
}
