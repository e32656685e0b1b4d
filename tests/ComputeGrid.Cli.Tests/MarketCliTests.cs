using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text.Json;
using ComputeGrid.Server;
using Microsoft.AspNetCore.Builder;

namespace ComputeGrid.Cli.Tests;

/// <summary>A server in this process on a loopback port, with a funded buyer, a provider and a node in Frankfurt.</summary>
public sealed class MarketServerFixture : IAsyncLifetime
{
    public const long Buyer = 1, Provider = 100;

    private readonly string _dir = Path.Combine(Path.GetTempPath(), "cg-market-cli-" + Guid.NewGuid().ToString("N"));
    private WebApplication _app = null!;

    public string Url { get; private set; } = "";
    public HttpClient Http { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        _app = ServerHost.Build(new ServerOptions { Urls = "http://127.0.0.1:0", DataDirectory = _dir });
        await _app.StartAsync();
        Url = ServerHost.Endpoints(_app).ApiUrl;
        Http = new HttpClient { BaseAddress = new Uri(Url) };
        await PostAsync("/api/ledger/accounts", new object[]
        {
            new { id = "1", asset = 1, code = 1 },
            new { id = "11", asset = 1, code = 2, flags = "DebitsMustNotExceedCredits" },
            new { id = "21", asset = 1, code = 3, flags = "DebitsMustNotExceedCredits" },
            new { id = "22", asset = 1, code = 4, flags = "DebitsMustNotExceedCredits" },
        });
        await PostAsync("/api/ledger/transfers", new[] { new { id = "1001", debitAccountId = "1", creditAccountId = "11", amount = 1_000_000_000, asset = 1, code = 1 } });
        await PostAsync("/api/exchange/traders", new { owner = Buyer, account = "11" });
        await PostAsync("/api/exchange/providers", new { id = Provider, revenueAccount = "21", collateralAccount = "22" });
        await PostAsync("/api/exchange/nodes", new { provider = Provider, name = "fra-01", gpu = "H100", region = "frankfurt", gpus = 8 });
    }

    private async Task PostAsync(string path, object body)
    {
        var r = await Http.PostAsJsonAsync(path, body);
        Assert.True(r.IsSuccessStatusCode, await r.Content.ReadAsStringAsync());
    }

    /// <summary>A port nobody listens on (for the connection-refused test).</summary>
    public static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    public async Task DisposeAsync()
    {
        Http.Dispose();
        await _app.StopAsync();
        await _app.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }
}

/// <summary><c>computegrid market …</c> as a user runs it, against a real server.</summary>
public sealed class MarketCliTests(MarketServerFixture f) : IClassFixture<MarketServerFixture>
{
    private static Task<(int Code, string Out, string Err)> RunAsync(params string[] args) => CliRunner.RunAsync(args);

    private Task<(int Code, string Out, string Err)> MarketAsync(params string[] args) => RunAsync(["market", .. args, "--server", f.Url]);

    private static string OneErrorLine((int Code, string Out, string Err) r)
    {
        Assert.Equal(2, r.Code);
        var line = Assert.Single(r.Err.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("error: ", line);
        return line;
    }

    /// <summary>The H100 Frankfurt hourly instrument delivering two hours ahead (trading whatever the minute).</summary>
    private async Task<string> SymbolAsync()
    {
        var r = await MarketAsync("instruments", "--gpu", "H100", "--region", "frankfurt", "--kind", "H", "--limit", "3", "--json");
        Assert.True(r.Code == 0, r.Err);
        return JsonDocument.Parse(r.Out).RootElement.GetProperty("instruments")[2].GetProperty("symbol").GetString()!;
    }

    [Fact]
    public async Task Instruments_json_parses_and_holds_only_the_class_asked_for()
    {
        var r = await MarketAsync("instruments", "--gpu", "H100", "--json");
        Assert.True(r.Code == 0, r.Err);
        var page = JsonDocument.Parse(r.Out).RootElement;
        var instruments = page.GetProperty("instruments").EnumerateArray().ToArray();
        Assert.NotEmpty(instruments);
        Assert.All(instruments, i => Assert.Equal("H100", i.GetProperty("gpu").GetString()));
        Assert.All(instruments, i => Assert.StartsWith("H100.", i.GetProperty("symbol").GetString()));

        var table = await MarketAsync("instruments", "--gpu", "H100", "--region", "frankfurt", "--kind", "D");
        Assert.True(table.Code == 0, table.Err);
        Assert.StartsWith("ID", table.Out.TrimStart());
        Assert.Contains("H100.frankfurt.D.", table.Out);
        Assert.DoesNotContain(".H.", table.Out);
    }

    [Fact]
    public async Task An_order_round_trip_fills_and_shows_in_orders_leases_book_trades_candles_and_index()
    {
        string symbol = await SymbolAsync();
        var sell = await MarketAsync("order", "--owner", "100", "--symbol", symbol, "--side", "sell", "--type", "limit", "--tif", "gtc",
            "--price", "2.15", "--quantity", "4", "--json");
        Assert.True(sell.Code == 0, sell.Err);
        var sold = JsonDocument.Parse(sell.Out).RootElement;
        Assert.Equal("Resting", sold.GetProperty("status").GetString());
        long sellId = sold.GetProperty("orderId").GetInt64();

        // The price typed in dollars arrives as exact micro-USD.
        var orders = await MarketAsync("orders", "--owner", "100", "--json");
        var open = JsonDocument.Parse(orders.Out).RootElement.GetProperty("orders").EnumerateArray().Single(o => o.GetProperty("orderId").GetInt64() == sellId);
        Assert.Equal(2_150_000, open.GetProperty("price").GetInt64());

        var buy = await MarketAsync("order", "--owner", "1", "--symbol", symbol, "--side", "buy", "--price", "2.2", "--quantity", "3", "--tif", "ioc");
        Assert.True(buy.Code == 0, buy.Err);
        Assert.Contains("Filled", buy.Out);
        Assert.Contains("2.15", buy.Out);

        var leases = await MarketAsync("leases", "--owner", "1");
        Assert.True(leases.Code == 0, leases.Err);
        Assert.Contains(symbol, leases.Out);
        Assert.Contains("Active", leases.Out);

        var book = await MarketAsync("book", symbol, "--depth", "5");
        Assert.True(book.Code == 0, book.Err);
        Assert.Contains("ask", book.Out);
        Assert.Contains("2.15", book.Out);

        var trades = await MarketAsync("trades", symbol, "--json");
        var trade = Assert.Single(JsonDocument.Parse(trades.Out).RootElement.GetProperty("trades").EnumerateArray());
        Assert.Equal(2_150_000, trade.GetProperty("price").GetInt64());
        Assert.Equal(3, trade.GetProperty("quantity").GetInt64());

        var candles = await MarketAsync("candles", symbol, "--interval", "1h");
        Assert.True(candles.Code == 0, candles.Err);
        Assert.Contains("2.15", candles.Out);
        var index = await MarketAsync("index", "H100", "--json");
        Assert.Equal(2_150_000, JsonDocument.Parse(index.Out).RootElement.GetProperty("vwap").GetInt64());

        var replaced = await MarketAsync("replace", sellId.ToString(), "--owner", "100", "--price", "2.5", "--quantity", "1", "--json");
        Assert.True(replaced.Code == 0, replaced.Err);
        Assert.Equal(1, JsonDocument.Parse(replaced.Out).RootElement.GetProperty("remaining").GetInt64());
        var cancelled = await MarketAsync("cancel", sellId.ToString(), "--owner", "100");
        Assert.True(cancelled.Code == 0, cancelled.Err);
        Assert.Contains("Cancelled", cancelled.Out);

        // A problem from the server is one line: its detail.
        Assert.Contains($"No open order {sellId}", OneErrorLine(await MarketAsync("cancel", sellId.ToString(), "--owner", "100")));
    }

    [Theory]
    [InlineData("order", "--owner", "1", "--symbol", "H100.frankfurt.H.2026-01-01T00", "--side", "buy", "--price", "2.1234567", "--quantity", "1")]
    [InlineData("order", "--owner", "1", "--symbol", "H100.frankfurt.H.2026-01-01T00", "--side", "buy", "--price", "-2", "--quantity", "1")]
    [InlineData("order", "--owner", "1", "--symbol", "H100.frankfurt.H.2026-01-01T00", "--side", "buy", "--quantity", "1")]
    [InlineData("order", "--owner", "1", "--symbol", "H100.frankfurt.H.2026-01-01T00", "--side", "hold", "--price", "2", "--quantity", "1")]
    [InlineData("order", "--owner", "1", "--symbol", "H100.frankfurt.H.2026-01-01T00", "--side", "buy", "--price", "2", "--quantity", "1")]
    [InlineData("candles", "H100.frankfurt.H.2026-01-01T00", "--interval", "5m")]
    [InlineData("book", "nope")]
    [InlineData("market")]
    public async Task Bad_input_exits_2_with_one_line(params string[] args) =>
        OneErrorLine(args is ["market"] ? await RunAsync("market") : await MarketAsync(args));

    [Fact]
    public async Task An_unreachable_server_exits_2_with_one_line()
    {
        string line = OneErrorLine(await RunAsync("market", "instruments", "--server", $"http://127.0.0.1:{MarketServerFixture.FreePort()}"));
        Assert.Contains("cannot reach the server", line);
        OneErrorLine(await RunAsync("market", "index", "--server", "not a url"));
    }
}
