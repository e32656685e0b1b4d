using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;

namespace ComputeGrid.Server.Tests;

/// <summary>
/// A real server on loopback for block orders: a funded buyer, a buyer with $1, and a provider with 8 H100s in
/// Frankfurt and 8 B200s in Tokyo. Each test uses its own class and region so the books of different tests never mix.
/// </summary>
public sealed class ExchangeBlockApiFixture : IAsyncLifetime
{
    public const long Buyer = 1, PoorBuyer = 2, Provider = 100;
    public const string BuyerAccount = "11", PoorAccount = "12", Revenue = "21", Collateral = "22";
    public const long BuyerFunds = 1_000_000_000, PoorFunds = 1_000_000; // $1,000 and $1

    public string Dir { get; } = TestServer.TempDir("exchange-block-api");
    public WebApplication App { get; private set; } = null!;
    public HttpClient Http { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        (App, Http) = await TestServer.StartInProcessAsync(Dir);
        await TestServer.SeedExchangeAsync(Http, ("H100", "frankfurt"), ("B200", "tokyo"));
    }

    public async Task DisposeAsync()
    {
        Http.Dispose();
        await App.StopAsync();
        await App.DisposeAsync();
        Directory.Delete(Dir, recursive: true);
    }
}

/// <summary><c>POST /api/exchange/blocks/quote</c> and <c>POST /api/exchange/blocks</c>.</summary>
public sealed class ExchangeBlockApiTests(ExchangeBlockApiFixture f) : IClassFixture<ExchangeBlockApiFixture>
{
    private const long NsPerHour = 3_600_000_000_000;
    private HttpClient Http => f.Http;

    /// <summary>
    /// Three consecutive hourly instruments of a class and region, starting two hours ahead: all trading whatever the
    /// minute the test runs (the next hour's gate may close during the test).
    /// </summary>
    private async Task<(long Start, string[] Symbols)> HoursAsync(string gpu, string region)
    {
        var page = await Http.GetFromJsonAsync<JsonElement>($"/api/exchange/instruments?gpu={gpu}&region={region}&kind=H&limit=10");
        var hourly = page.GetProperty("instruments").EnumerateArray().OrderBy(i => i.GetProperty("deliveryStart").GetInt64()).Skip(2).Take(3).ToArray();
        Assert.Equal(3, hourly.Length);
        long start = hourly[0].GetProperty("deliveryStart").GetInt64();
        for (int k = 0; k < 3; k++) Assert.Equal(start + k * NsPerHour, hourly[k].GetProperty("deliveryStart").GetInt64());
        return (start, hourly.Select(i => i.GetProperty("symbol").GetString()!).ToArray());
    }

    private static string Iso(long ns) => DateTimeOffset.UnixEpoch.AddTicks(ns / 100).ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", System.Globalization.CultureInfo.InvariantCulture);

    private Task<HttpResponseMessage> PostAsync(string path, string json) =>
        Http.PostAsync(path, new StringContent(json, Encoding.UTF8, "application/json"));

    private static async Task<JsonElement> OkAsync(HttpResponseMessage r)
    {
        string body = await r.Content.ReadAsStringAsync();
        Assert.True(r.IsSuccessStatusCode, $"{(int)r.StatusCode}: {body}");
        return JsonDocument.Parse(body).RootElement;
    }

    private async Task SellAsync(string symbol, long price, long quantity) =>
        await OkAsync(await Http.PostAsJsonAsync("/api/exchange/orders",
            new { owner = ExchangeBlockApiFixture.Provider, instrument = symbol, side = "sell", price, quantity }));

    private async Task<JsonElement> AccountAsync(string id) => await Http.GetFromJsonAsync<JsonElement>($"/api/ledger/accounts/{id}");

    private static async Task<JsonElement> ProblemAsync(HttpResponseMessage r, HttpStatusCode status, string? error = null)
    {
        string body = await r.Content.ReadAsStringAsync();
        Assert.True(status == r.StatusCode, $"expected {(int)status}, got {(int)r.StatusCode}: {body}");
        Assert.Equal("application/problem+json", r.Content.Headers.ContentType?.MediaType);
        var p = JsonDocument.Parse(body).RootElement;
        Assert.Equal((int)status, p.GetProperty("status").GetInt32());
        Assert.False(string.IsNullOrWhiteSpace(p.GetProperty("detail").GetString()), body);
        if (error is not null) Assert.Equal(error, p.GetProperty("error").GetString());
        return p;
    }

    /// <summary>Everything a client can observe that a refused block could have changed.</summary>
    private async Task<string> SnapshotAsync(IEnumerable<string> symbols)
    {
        var accounts = await Http.PostJsonAsync("/api/ledger/accounts/lookup", new[]
        {
            ExchangeBlockApiFixture.BuyerAccount, ExchangeBlockApiFixture.PoorAccount, ExchangeBlockApiFixture.Revenue, ExchangeBlockApiFixture.Collateral,
        });
        var chain = await Http.GetFromJsonAsync<JsonElement>("/api/ledger/chain");
        var parts = new List<string>
        {
            accounts.GetRawText(), chain.GetProperty("transfers").GetInt64().ToString(), chain.GetProperty("accounts").GetInt64().ToString(),
            await Http.GetStringAsync("/api/exchange/orders"), await Http.GetStringAsync("/api/exchange/leases"),
        };
        foreach (var s in symbols)
        {
            var book = await Http.GetFromJsonAsync<JsonElement>($"/api/exchange/book/{s}");
            parts.Add(book.GetProperty("bids").GetRawText() + book.GetProperty("asks").GetRawText() + await Http.GetStringAsync($"/api/exchange/trades/{s}"));
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
        var body = new { owner = ExchangeBlockApiFixture.Buyer, gpu = "H100", region = "frankfurt", start, end = start + 3 * NsPerHour, gpus = 4, maxAveragePrice = 2_100_000 };

        var quote = await OkAsync(await Http.PostAsJsonAsync("/api/exchange/blocks/quote", body));
        Assert.True(quote.GetProperty("fillable").GetBoolean());
        Assert.True(quote.GetProperty("withinLimit").GetBoolean());
        Assert.Equal(total, quote.GetProperty("totalCost").GetInt64());
        Assert.Equal(average, quote.GetProperty("averagePrice").GetInt64());
        Assert.Empty(quote.GetProperty("short").EnumerateArray());
        var legs = quote.GetProperty("legs").EnumerateArray().ToArray();
        Assert.Equal(3, legs.Length);
        (long Cost, long Worst, int Makers)[] expected = [(8_000_000, 2_000_000, 1), (8_400_000, 2_100_000, 1), (8_400_000, 2_200_000, 2)];
        for (int k = 0; k < 3; k++)
        {
            Assert.Equal(symbols[k], legs[k].GetProperty("symbol").GetString());
            Assert.Equal(start + k * NsPerHour, legs[k].GetProperty("hour").GetInt64());
            Assert.Equal(4, legs[k].GetProperty("gpus").GetInt32());
            Assert.Equal(expected[k].Cost, legs[k].GetProperty("cost").GetInt64());
            Assert.Equal(expected[k].Worst, legs[k].GetProperty("worstPrice").GetInt64());
            Assert.Equal(expected[k].Makers, legs[k].GetProperty("makers").GetInt32());
        }

        long buyerBefore = (await AccountAsync(ExchangeBlockApiFixture.BuyerAccount)).GetProperty("creditBalance").GetInt64();
        // The same block with ISO 8601 times: the API takes either.
        var placed = await OkAsync(await Http.PostAsJsonAsync("/api/exchange/blocks",
            new { body.owner, body.gpu, body.region, start = Iso(start), end = Iso(start + 3 * NsPerHour), body.gpus, body.maxAveragePrice }));
        Assert.True(placed.GetProperty("blockId").GetInt64() > 0);
        Assert.Equal(total, placed.GetProperty("totalCost").GetInt64());
        Assert.Equal(average, placed.GetProperty("averagePrice").GetInt64());
        Assert.Equal(4, placed.GetProperty("fills").GetArrayLength());
        var leases = placed.GetProperty("leases").EnumerateArray().ToArray();
        Assert.Equal(4, leases.Length);
        Assert.All(leases, l => Assert.Equal(ExchangeBlockApiFixture.Buyer, l.GetProperty("buyer").GetInt64()));
        Assert.All(leases, l => Assert.Equal("Active", l.GetProperty("status").GetString()));
        Assert.Equal(total, leases.Sum(l => l.GetProperty("notional").GetInt64()));
        Assert.Equal(symbols.ToHashSet(), leases.Select(l => l.GetProperty("symbol").GetString()!).ToHashSet());
        var fillLeases = placed.GetProperty("fills").EnumerateArray().Select(x => x.GetProperty("leaseId").GetInt64()).Order();
        Assert.Equal(leases.Select(l => l.GetProperty("id").GetInt64()).Order(), fillLeases);

        // The buyer paid exactly the quoted total, nothing stays on hold, and every lease's escrow holds its notional.
        var buyer = await AccountAsync(ExchangeBlockApiFixture.BuyerAccount);
        Assert.Equal(buyerBefore - total, buyer.GetProperty("creditBalance").GetInt64());
        Assert.Equal(0, buyer.GetProperty("debitsPending").GetInt64());
        foreach (var l in leases)
        {
            var escrow = await AccountAsync(l.GetProperty("escrowAccount").GetString()!);
            Assert.Equal(l.GetProperty("notional").GetInt64(), escrow.GetProperty("creditsPosted").GetInt64());
        }
        var mine = await Http.GetFromJsonAsync<JsonElement>($"/api/exchange/leases?owner={ExchangeBlockApiFixture.Buyer}");
        Assert.Equal(4, mine.GetProperty("leases").GetArrayLength());
        var open = await Http.GetFromJsonAsync<JsonElement>($"/api/exchange/orders?owner={ExchangeBlockApiFixture.Buyer}");
        Assert.Empty(open.GetProperty("orders").EnumerateArray());
        // Only the $2.20 ask's leftover GPU rests.
        for (int k = 0; k < 2; k++)
            Assert.Empty((await Http.GetFromJsonAsync<JsonElement>($"/api/exchange/book/{symbols[k]}")).GetProperty("asks").EnumerateArray());
        var last = Assert.Single((await Http.GetFromJsonAsync<JsonElement>($"/api/exchange/book/{symbols[2]}")).GetProperty("asks").EnumerateArray());
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

        var body = new { owner = ExchangeBlockApiFixture.Buyer, gpu = "B200", region = "tokyo", start, end = start + 3 * NsPerHour, gpus = 4, maxAveragePrice = 6_000_000 };
        var quote = await OkAsync(await Http.PostAsJsonAsync("/api/exchange/blocks/quote", body));
        Assert.False(quote.GetProperty("fillable").GetBoolean());
        Assert.False(quote.GetProperty("withinLimit").GetBoolean());
        var windows = quote.GetProperty("short").EnumerateArray().ToArray();
        Assert.Equal(2, windows.Length);
        Assert.Equal((start + NsPerHour, start + 2 * NsPerHour, 2), (windows[0].GetProperty("start").GetInt64(), windows[0].GetProperty("end").GetInt64(), windows[0].GetProperty("available").GetInt32()));
        Assert.Equal((start + 2 * NsPerHour, start + 3 * NsPerHour, 0), (windows[1].GetProperty("start").GetInt64(), windows[1].GetProperty("end").GetInt64(), windows[1].GetProperty("available").GetInt32()));
        Assert.All(windows, w => Assert.Equal("NotEnoughOffered", w.GetProperty("reason").GetString()));

        var p = await ProblemAsync(await Http.PostAsJsonAsync("/api/exchange/blocks", body), HttpStatusCode.Conflict, "BookRejected");
        Assert.Equal("Short", p.GetProperty("refusal").GetString());
        Assert.Equal(quote.GetProperty("short").GetRawText(), p.GetProperty("quote").GetProperty("short").GetRawText());
        Assert.Contains("2 of 4 GPUs", p.GetProperty("detail").GetString());
        Assert.Equal(before, await SnapshotAsync(symbols));

        // An hour that is there, but dearer on average than the limit.
        var dear = new { body.owner, body.gpu, body.region, body.start, end = start + NsPerHour, body.gpus, maxAveragePrice = 4_999_000 };
        p = await ProblemAsync(await Http.PostAsJsonAsync("/api/exchange/blocks", dear), HttpStatusCode.Conflict, "BookRejected");
        Assert.Equal("AboveLimit", p.GetProperty("refusal").GetString());
        Assert.True(p.GetProperty("quote").GetProperty("fillable").GetBoolean());
        Assert.Equal(5_000_000, p.GetProperty("quote").GetProperty("averagePrice").GetInt64());
        Assert.Equal(before, await SnapshotAsync(symbols));

        // Hours long past have no instrument trading.
        long past = start - 72 * NsPerHour;
        var gone = new { body.owner, body.gpu, body.region, start = past, end = past + NsPerHour, body.gpus, body.maxAveragePrice };
        p = await ProblemAsync(await Http.PostAsJsonAsync("/api/exchange/blocks", gone), HttpStatusCode.Conflict, "InstrumentNotTrading");
        Assert.Equal("NotTrading", p.GetProperty("quote").GetProperty("short")[0].GetProperty("reason").GetString());
        Assert.Equal(before, await SnapshotAsync(symbols));

        // A buyer who cannot hold the block's cost, and an unknown trader.
        var poor = new { owner = ExchangeBlockApiFixture.PoorBuyer, body.gpu, body.region, body.start, end = start + NsPerHour, body.gpus, body.maxAveragePrice };
        await ProblemAsync(await Http.PostAsJsonAsync("/api/exchange/blocks", poor), HttpStatusCode.PaymentRequired, "InsufficientBalance");
        var stranger = new { owner = 77L, body.gpu, body.region, body.start, end = start + NsPerHour, body.gpus, body.maxAveragePrice };
        await ProblemAsync(await Http.PostAsJsonAsync("/api/exchange/blocks", stranger), HttpStatusCode.NotFound, "UnknownTrader");
        // A refused hold leaves no pending money; the books are as they were.
        Assert.Equal(0, (await AccountAsync(ExchangeBlockApiFixture.PoorAccount)).GetProperty("debitsPending").GetInt64());
        Assert.Equal(ExchangeBlockApiFixture.PoorFunds, (await AccountAsync(ExchangeBlockApiFixture.PoorAccount)).GetProperty("creditBalance").GetInt64());
        Assert.DoesNotContain((await Http.GetFromJsonAsync<JsonElement>("/api/exchange/leases")).GetProperty("leases").EnumerateArray(),
            l => symbols.Contains(l.GetProperty("symbol").GetString()));
    }

    // {T}: a whole hour two hours ahead (Unix ns); {T1}: an hour after it; {T+1}, {T1+1}: a nanosecond after them
    // (not whole hours); {T744}: the longest block's end; {T1000}: 1000 hours after {T} (longer than a block may be).
    public static TheoryData<string, string, HttpStatusCode, string?> BadBlocks => new()
    {
        { "/api/exchange/blocks", """{"owner":1,"gpu":"H100","region":"frankfurt","start":{T},"end":{T1},"gpus":1""", HttpStatusCode.BadRequest, null },
        { "/api/exchange/blocks", """{"owner":1,"gpu":"H100","region":"frankfurt","start":{T},"end":{T1},"gpus":1}""", HttpStatusCode.BadRequest, null },
        { "/api/exchange/blocks/quote", """{"owner":1,"gpu":"H100","region":"frankfurt","start":{T},"end":{T1},"gpus":1,"maxAveragePrice":1,"color":"red"}""", HttpStatusCode.BadRequest, null },
        { "/api/exchange/blocks/quote", """{"owner":1,"gpu":"H100","region":"frankfurt","start":{T},"end":{T1},"gpus":1,"maxAveragePrice":"2.00"}""", HttpStatusCode.BadRequest, null },
        { "/api/exchange/blocks/quote", """{"owner":1,"gpu":"H100","region":"frankfurt","start":"tomorrow","end":{T1},"gpus":1,"maxAveragePrice":2000000}""", HttpStatusCode.BadRequest, null },
        { "/api/exchange/blocks/quote", """{"owner":1,"gpu":"V100","region":"frankfurt","start":{T},"end":{T1},"gpus":1,"maxAveragePrice":2000000}""", HttpStatusCode.BadRequest, null },
        { "/api/exchange/blocks", """{"owner":1,"gpu":"H100","region":"atlantis","start":{T},"end":{T1},"gpus":1,"maxAveragePrice":2000000}""", HttpStatusCode.BadRequest, null },
        { "/api/exchange/blocks", """{"owner":1,"gpu":"H100","region":"frankfurt","start":{T},"end":{T1},"gpus":0,"maxAveragePrice":2000000}""", HttpStatusCode.BadRequest, null },
        { "/api/exchange/blocks", """{"owner":1,"gpu":"H100","region":"frankfurt","start":{T},"end":{T1},"gpus":1,"maxAveragePrice":-1}""", HttpStatusCode.BadRequest, null },
        { "/api/exchange/blocks", """{"owner":1,"gpu":"H100","region":"frankfurt","start":{T1},"end":{T},"gpus":1,"maxAveragePrice":2000000}""", HttpStatusCode.BadRequest, null },
        { "/api/exchange/blocks/quote", """{"owner":1,"gpu":"H100","region":"frankfurt","start":{T+1},"end":{T1},"gpus":1,"maxAveragePrice":2000000}""", HttpStatusCode.UnprocessableEntity, "InvalidRequest" },
        { "/api/exchange/blocks", """{"owner":1,"gpu":"H100","region":"frankfurt","start":{T},"end":{T1+1},"gpus":1,"maxAveragePrice":2000000}""", HttpStatusCode.UnprocessableEntity, "InvalidRequest" },
        { "/api/exchange/blocks/quote", """{"owner":1,"gpu":"H100","region":"frankfurt","start":{T},"end":{T1000},"gpus":1,"maxAveragePrice":2000000}""", HttpStatusCode.UnprocessableEntity, "InvalidRequest" },
        { "/api/exchange/blocks", """{"owner":1,"gpu":"H100","region":"frankfurt","start":{T},"end":{T744},"gpus":2147483647,"maxAveragePrice":2000000}""", HttpStatusCode.UnprocessableEntity, "NotionalOverflows" },
    };

    [Theory]
    [MemberData(nameof(BadBlocks))]
    public async Task A_malformed_block_gets_a_problem_and_changes_nothing(string path, string body, HttpStatusCode status, string? error)
    {
        var (start, symbols) = await HoursAsync("H100", "frankfurt");
        string before = await SnapshotAsync(symbols);
        string json = body.Replace("{T+1}", (start + 1).ToString()).Replace("{T1+1}", (start + NsPerHour + 1).ToString()).Replace("{T1000}", (start + 1000 * NsPerHour).ToString()).Replace("{T744}", (start + 744 * NsPerHour).ToString()).Replace("{T1}", (start + NsPerHour).ToString()).Replace("{T}", start.ToString());
        var p = await ProblemAsync(await PostAsync(path, json), status, error);
        Assert.False(p.TryGetProperty("quote", out _));
        Assert.Equal(before, await SnapshotAsync(symbols));
    }
}
