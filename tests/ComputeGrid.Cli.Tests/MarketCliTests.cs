using System.Text.Json;
using System.Text.RegularExpressions;
using ComputeGrid.Server;
using Microsoft.AspNetCore.Builder;

namespace ComputeGrid.Cli.Tests;

/// <summary>
/// A server in this process on a loopback port, seeded through the API as an operator would: a buyer and a rival
/// customer ($1,000 each), and a provider ($100 of collateral) with an admitted node of 8 H100 GPUs in Frankfurt listed.
/// </summary>
public sealed class MarketServerFixture : IAsyncLifetime
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "cg-market-cli-" + Guid.NewGuid().ToString("N"));
    private WebApplication _app = null!;
    private readonly List<HttpClient> _clients = [];

    public string Url { get; private set; } = "";

    /// <summary>A client with no credential (market data is public).</summary>
    public HttpClient Http { get; private set; } = null!;

    /// <summary>A client with the first operator's key.</summary>
    public HttpClient Operator { get; private set; } = null!;

    /// <summary>A customer who buys.</summary>
    internal Party Buyer { get; private set; } = null!;

    /// <summary>Another customer, whose orders the buyer must not see or touch.</summary>
    internal Party Rival { get; private set; } = null!;

    /// <summary>The provider who sells the node's GPU-hours.</summary>
    internal Party Provider { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        _app = ServerHost.Build(new ServerOptions { Urls = "http://127.0.0.1:0", DataDirectory = _dir });
        await _app.StartAsync();
        Url = ServerHost.Endpoints(_app).ApiUrl;
        Http = Keep(Api.Client(Url, null));
        HttpClient op = Operator = Keep(Api.Client(Url, Api.OperatorKey(_dir)));
        Buyer = await Api.NewCustomerAsync(op, "buyer", fundMicroUsd: 1_000_000_000);
        Rival = await Api.NewCustomerAsync(op, "rival", fundMicroUsd: 1_000_000_000);
        // Buys are held from the trading account: $900 of the buyer's $1,000 go there (a test deposits more with the CLI).
        await Rival.Http.PostJsonAsync("/api/exchange/deposits", new { amount = 1_000_000_000 });
        await Buyer.Http.PostJsonAsync("/api/exchange/deposits", new { amount = 900_000_000 });
        Provider = await Api.NewProviderAsync(op, "provider", collateralMicroUsd: 100_000_000);
        foreach (var p in new[] { Buyer, Rival, Provider }) Keep(p.Http);
        await Api.AdmitNodeAsync(op, Provider.Id, "fra-01");
        await Provider.Http.PostJsonAsync("/api/exchange/nodes", new { node_id = "fra-01", gpu = "H100", region = "frankfurt", gpus = 8 });
    }

    private HttpClient Keep(HttpClient http)
    {
        _clients.Add(http);
        return http;
    }

    public async Task DisposeAsync()
    {
        foreach (var c in _clients) c.Dispose();
        await _app.StopAsync();
        await _app.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }
}

/// <summary><c>computegrid market …</c> as a user runs it, against a real server.</summary>
public sealed class MarketCliTests(MarketServerFixture f) : IClassFixture<MarketServerFixture>
{
    // No key from the test machine's environment: each run gives its own (or none).
    private static readonly Dictionary<string, string?> NoKeyVariable = new() { ["COMPUTEGRID_API_KEY"] = null };

    private static Task<(int Code, string Out, string Err)> RunAsync(params string[] args) => CliRunner.RunAsync(NoKeyVariable, args);

    /// <summary>Market data, with no key.</summary>
    private Task<(int Code, string Out, string Err)> MarketAsync(params string[] args) => RunAsync(["market", .. args, "--server", f.Url]);

    /// <summary>A command of <paramref name="trader"/>, with its key.</summary>
    private Task<(int Code, string Out, string Err)> AsAsync(Party trader, params string[] args) => RunAsync(["market", .. args, "--server", f.Url, "--key", trader.Key]);

    private static string OneErrorLine((int Code, string Out, string Err) r)
    {
        Assert.True(r.Code == 2, $"exit {r.Code}: {r.Out}{r.Err}");
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
    public async Task Deposit_moves_money_to_the_trading_account_and_bad_amounts_are_one_line()
    {
        var before = await AsAsync(f.Buyer, "account", "--json");
        Assert.True(before.Code == 0, before.Err);
        long available = JsonDocument.Parse(before.Out).RootElement.GetProperty("available").GetInt64();
        var r = await AsAsync(f.Buyer, "deposit", "12.5", "--json");
        Assert.True(r.Code == 0, r.Err);
        Assert.Equal(available + 12_500_000, JsonDocument.Parse(r.Out).RootElement.GetProperty("available").GetInt64());
        var table = await AsAsync(f.Buyer, "account");
        Assert.True(table.Code == 0, table.Err);
        Assert.Contains("available", table.Out);

        Assert.Contains("amount must be a positive amount", OneErrorLine(await AsAsync(f.Buyer, "deposit", "-3")));
        Assert.Contains("available", OneErrorLine(await AsAsync(f.Buyer, "withdraw", "1000000000")));
        Assert.Contains("cannot cover", OneErrorLine(await AsAsync(f.Buyer, "deposit", "5000")));
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
        var sell = await AsAsync(f.Provider, "order", "--symbol", symbol, "--side", "sell", "--type", "limit", "--tif", "gtc", "--price", "2.15", "--quantity", "4", "--json");
        Assert.True(sell.Code == 0, sell.Err);
        var sold = JsonDocument.Parse(sell.Out).RootElement;
        Assert.Equal("resting", sold.GetProperty("status").GetString());
        long sellId = sold.GetProperty("order_id").GetInt64();

        // The price typed in dollars arrives as exact micro-USD.
        var orders = await AsAsync(f.Provider, "orders", "--json");
        Assert.True(orders.Code == 0, orders.Err);
        var open = JsonDocument.Parse(orders.Out).RootElement.GetProperty("orders").EnumerateArray().Single(o => o.GetProperty("order_id").GetInt64() == sellId);
        Assert.Equal(2_150_000, open.GetProperty("price").GetInt64());
        Assert.Equal((long)f.Provider.Id, open.GetProperty("owner").GetInt64());

        var buy = await AsAsync(f.Buyer, "order", "--symbol", symbol, "--side", "buy", "--price", "2.2", "--quantity", "3", "--tif", "ioc");
        Assert.True(buy.Code == 0, buy.Err);
        Assert.Matches($@"^order \d+ on {Regex.Escape(symbol)}: filled, remaining 0\n", buy.Out);
        Assert.Contains("2.15", buy.Out);

        var leases = await AsAsync(f.Buyer, "leases");
        Assert.True(leases.Code == 0, leases.Err);
        Assert.Contains(symbol, leases.Out);
        Assert.Contains("active", leases.Out);

        var book = await MarketAsync("book", symbol, "--depth", "5");
        Assert.True(book.Code == 0, book.Err);
        Assert.Contains("ask", book.Out);
        Assert.Contains("2.15", book.Out);

        var trades = await MarketAsync("trades", symbol, "--json");
        var trade = Assert.Single(JsonDocument.Parse(trades.Out).RootElement.GetProperty("trades").EnumerateArray());
        Assert.Equal(2_150_000, trade.GetProperty("price").GetInt64());
        Assert.Equal(3, trade.GetProperty("quantity").GetInt64());
        Assert.Equal("buy", trade.GetProperty("taker_side").GetString());

        var candles = await MarketAsync("candles", symbol, "--interval", "1h");
        Assert.True(candles.Code == 0, candles.Err);
        Assert.Contains("2.15", candles.Out);
        var index = await MarketAsync("index", "H100", "--json");
        Assert.Equal(2_150_000, JsonDocument.Parse(index.Out).RootElement.GetProperty("vwap").GetInt64());

        var replaced = await AsAsync(f.Provider, "replace", sellId.ToString(), "--price", "2.5", "--quantity", "1", "--json");
        Assert.True(replaced.Code == 0, replaced.Err);
        Assert.Equal(1, JsonDocument.Parse(replaced.Out).RootElement.GetProperty("remaining").GetInt64());
        var cancelled = await AsAsync(f.Provider, "cancel", sellId.ToString());
        Assert.True(cancelled.Code == 0, cancelled.Err);
        Assert.Equal($"order {sellId} on {symbol}: cancelled, remaining 0", cancelled.Out.Trim());

        // A problem from the server is one line: its detail.
        Assert.Equal($"error: No open order {sellId} of yours.", OneErrorLine(await AsAsync(f.Provider, "cancel", sellId.ToString())));
    }

    [Theory]
    [InlineData("order", "--symbol", "H100.frankfurt.H.2026-01-01T00", "--side", "buy", "--price", "2.1234567", "--quantity", "1")]
    [InlineData("order", "--symbol", "H100.frankfurt.H.2026-01-01T00", "--side", "buy", "--price", "-2", "--quantity", "1")]
    [InlineData("order", "--symbol", "H100.frankfurt.H.2026-01-01T00", "--side", "buy", "--quantity", "1")]
    [InlineData("order", "--symbol", "H100.frankfurt.H.2026-01-01T00", "--side", "hold", "--price", "2", "--quantity", "1")]
    [InlineData("order", "--symbol", "H100.frankfurt.H.2026-01-01T00", "--side", "buy", "--price", "2", "--quantity", "1")]
    [InlineData("candles", "H100.frankfurt.H.2026-01-01T00", "--interval", "5m")]
    [InlineData("book", "nope")]
    [InlineData("market")]
    public async Task Bad_input_exits_2_with_one_line(params string[] args) =>
        OneErrorLine(args is ["market"] ? await RunAsync("market") : await AsAsync(f.Buyer, args));

    [Fact]
    public async Task The_owner_option_is_gone_and_naming_one_exits_2_with_one_line()
    {
        string symbol = await SymbolAsync();
        string line = OneErrorLine(await AsAsync(f.Buyer, "order", "--owner", "1", "--symbol", symbol, "--side", "buy", "--price", "1", "--quantity", "1"));
        Assert.Contains("'--owner'", line);
        Assert.Contains("'--owner'", OneErrorLine(await AsAsync(f.Buyer, "orders", "--owner", "1")));
    }

    [Fact]
    public async Task An_unreachable_server_exits_2_with_one_line()
    {
        string line = OneErrorLine(await RunAsync("market", "instruments", "--server", $"http://127.0.0.1:{Api.FreePort()}"));
        Assert.Contains("cannot reach the server", line);
        OneErrorLine(await RunAsync("market", "index", "--server", "not a url"));
    }
}
