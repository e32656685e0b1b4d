using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using ComputeGrid.Core;
using ComputeGrid.Server.Exchange;

namespace ComputeGrid.Cli.Market;

/// <summary>
/// <c>computegrid market …</c>: the exchange from the command line, through a running server's HTTP API. Tables by
/// default, the server's JSON with <c>--json</c>. Prices are typed in dollars (<c>--price 2.15</c>) and sent as exact
/// micro-USD; shown prices are dollars per GPU-hour, quantities GPU-hours, times UTC.
/// </summary>
internal static class MarketCommand
{
    /// <summary>Where <c>computegrid serve</c> listens by default.</summary>
    public const string DefaultServer = "http://127.0.0.1:5080";

    /// <summary>The environment variable that holds the caller's API key.</summary>
    public const string KeyVariable = "COMPUTEGRID_API_KEY";

    public static Command Create()
    {
        var server = new Option<string>("--server") { Description = "The ComputeGrid server's URL.", DefaultValueFactory = _ => DefaultServer, Recursive = true };
        server.Aliases.Add("--url"); // the name the operator commands (status, sites, nodes) use
        var json = new Option<bool>("--json") { Description = "Print the server's JSON instead of a table.", Recursive = true };
        var key = new Option<string?>("--key")
        {
            Description = $"Your API key (default: ${KeyVariable}); trading needs one, market data does not.", Recursive = true,
            DefaultValueFactory = _ => new[] { Ops.ServerTarget.KeyVariable, KeyVariable }.Select(Environment.GetEnvironmentVariable).FirstOrDefault(k => k is { Length: > 0 }),
        };
        var market = new Command("market", "Trade GPU capacity and read market data on a running server.") { server, json, key };

        // ------------------------------------------------------------ market data
        var gpu = new Option<string?>("--gpu") { Description = "GPU class: H100, H200, B200, A100, RTX4090." };
        var region = new Option<string?>("--region") { Description = "Region code, e.g. frankfurt." };
        var kind = new Option<string?>("--kind") { Description = "Delivery window: H (hourly spot), D (daily forward), M (monthly forward)." };
        var limit = new Option<int?>("--limit") { Description = "Most rows to show." };
        var after = new Option<int?>("--after") { Description = "Show instruments after this id (the next page)." };
        var instruments = new Command("instruments", "List the instruments trading now.") { gpu, region, kind, limit, after };
        instruments.SetAction((pr, ct) => RunAsync(pr, server, json, key, async c =>
        {
            var q = Query(("gpu", pr.GetValue(gpu)), ("region", pr.GetValue(region)), ("kind", pr.GetValue(kind)),
                ("limit", Int(pr.GetValue(limit))), ("after", Int(pr.GetValue(after))));
            return (await c.GetAsync("/api/exchange/instruments" + q, ct), MarketFormat.Instruments);
        }));

        var symbolArg = new Argument<string>("symbol") { Description = "An instrument symbol (e.g. H100.frankfurt.H.2026-11-26T14) or id." };
        var depth = new Option<int?>("--depth") { Description = "Price levels per side (default 10)." };
        var lastTrades = new Option<int>("--trades") { Description = "Last trades shown under the book (0: none).", DefaultValueFactory = _ => 10 };
        var book = new Command("book", "Show an instrument's order book (L2 depth, both sides) and its last trades.") { symbolArg, depth, lastTrades };
        book.SetAction((pr, ct) => RunAsync(pr, server, json, key, async c =>
        {
            // Two answers: the book, then the tape. --json prints both as the API gave them: {"book": …, "trades": …} (null with --trades 0).
            string symbol = Path(pr.GetValue(symbolArg)!);
            string depthJson = await c.GetAsync($"/api/exchange/book/{symbol}" + Query(("depth", Int(pr.GetValue(depth)))), ct);
            int tradeCount = pr.GetValue(lastTrades);
            if (tradeCount < 0) throw new MarketException("--trades must not be negative");
            string tradesJson = tradeCount == 0 ? "null" : await c.GetAsync($"/api/exchange/trades/{symbol}" + Query(("limit", Int(tradeCount))), ct);
            return ($$"""{"book":{{depthJson}},"trades":{{tradesJson}}}""", MarketFormat.BookAndTrades);
        }));

        var trades = new Command("trades", "Show an instrument's recent trades, newest first.") { symbolArg, limit };
        trades.SetAction((pr, ct) => RunAsync(pr, server, json, key, async c =>
            (await c.GetAsync($"/api/exchange/trades/{Path(pr.GetValue(symbolArg)!)}" + Query(("limit", Int(pr.GetValue(limit)))), ct), MarketFormat.Trades)));

        var interval = new Option<string>("--interval") { Description = "Candle length: 1m, 1h or 1d.", DefaultValueFactory = _ => "1h" };
        interval.AcceptOnlyFromAmong("1m", "1h", "1d");
        var from = new Option<string?>("--from") { Description = "First candle's open time (ISO 8601 with offset, or Unix ns)." };
        var to = new Option<string?>("--to") { Description = "Candles opening before this time (ISO 8601 with offset, or Unix ns)." };
        var candles = new Command("candles", "Show an instrument's OHLCV candles.") { symbolArg, interval, from, to, limit };
        candles.SetAction((pr, ct) => RunAsync(pr, server, json, key, async c =>
        {
            var q = Query(("interval", pr.GetValue(interval)), ("from", TimeArg(pr.GetValue(from), "--from")), ("to", TimeArg(pr.GetValue(to), "--to")),
                ("limit", Int(pr.GetValue(limit))));
            return (await c.GetAsync($"/api/exchange/candles/{Path(pr.GetValue(symbolArg)!)}" + q, ct), MarketFormat.Candles);
        }));

        var gpuArg = new Argument<string?>("gpu") { Description = "One GPU class (default: all).", Arity = ArgumentArity.ZeroOrOne };
        var index = new Command("index", "Show the compute price index (24 h VWAP per GPU-hour) per GPU class.") { gpuArg };
        index.SetAction((pr, ct) => RunAsync(pr, server, json, key, async c =>
        {
            if (pr.GetValue(gpuArg) is { } g)
                return (await c.GetAsync($"/api/exchange/index/{Path(g)}", ct), (o, e) => MarketFormat.Index(o, [e]));
            return (await c.GetAsync("/api/exchange/index", ct), (o, e) => MarketFormat.Index(o, e.GetProperty("classes").EnumerateArray()));
        }));

        // ------------------------------------------------------------ orders and leases
        var symbol = new Option<string>("--symbol") { Description = "The instrument's symbol or id.", Required = true };
        var side = new Option<string>("--side") { Description = "buy or sell.", Required = true };
        side.AcceptOnlyFromAmong("buy", "sell");
        var type = new Option<string>("--type") { Description = "limit or market.", DefaultValueFactory = _ => "limit" };
        type.AcceptOnlyFromAmong("limit", "market");
        var tif = new Option<string>("--tif") { Description = "Time in force: gtc, gtt, ioc or fok.", DefaultValueFactory = _ => "gtc" };
        tif.AcceptOnlyFromAmong("gtc", "gtt", "ioc", "fok");
        var price = new Option<string?>("--price") { Description = "Limit price in USD per GPU-hour, e.g. 2.15 (exact to the micro-dollar)." };
        var quantity = new Option<long>("--quantity") { Description = "GPU-hours (GPUs × the instrument's hours).", Required = true };
        var postOnly = new Option<bool>("--post-only") { Description = "Refuse the order rather than take liquidity." };
        var expiresAt = new Option<string?>("--expires-at") { Description = "For gtt: expiry (ISO 8601 with offset, or Unix ns)." };
        var order = new Command("order", "Place an order.") { symbol, side, type, tif, price, quantity, postOnly, expiresAt };
        order.SetAction((pr, ct) => RunAsync(pr, server, json, key, async c =>
        {
            bool isMarket = pr.GetValue(type) == "market";
            long? micro = PriceArg(pr.GetValue(price), required: !isMarket);
            if (isMarket && micro is not null) throw new MarketException("a market order takes no --price");
            string? expires = TimeArg(pr.GetValue(expiresAt), "--expires-at");
            var body = new Dictionary<string, object?>
            {
                ["instrument"] = pr.GetValue(symbol), ["side"] = pr.GetValue(side), ["type"] = pr.GetValue(type),
                ["time_in_force"] = pr.GetValue(tif), ["quantity"] = pr.GetValue(quantity), ["post_only"] = pr.GetValue(postOnly),
            };
            if (micro is not null) body["price"] = micro;
            if (expires is not null) body["expires_at"] = expires;
            return (await c.SendJsonAsync(HttpMethod.Post, "/api/exchange/orders", body, ct), MarketFormat.OrderResult);
        }));

        var idArg = new Argument<long>("id") { Description = "The order's id." };
        var cancel = new Command("cancel", "Cancel an open order.") { idArg };
        cancel.SetAction((pr, ct) => RunAsync(pr, server, json, key, async c =>
            (await c.DeleteAsync($"/api/exchange/orders/{pr.GetValue(idArg)}", ct), MarketFormat.OrderResult)));

        var newPrice = new Option<string?>("--price") { Description = "New limit price in USD per GPU-hour.", Required = true };
        var replace = new Command("replace", "Change an open order's price and quantity.") { idArg, newPrice, quantity };
        replace.SetAction((pr, ct) => RunAsync(pr, server, json, key, async c =>
        {
            var body = new Dictionary<string, object?> { ["price"] = PriceArg(pr.GetValue(newPrice), required: true), ["quantity"] = pr.GetValue(quantity) };
            return (await c.SendJsonAsync(HttpMethod.Put, $"/api/exchange/orders/{pr.GetValue(idArg)}", body, ct), MarketFormat.OrderResult);
        }));

        var orders = new Command("orders", "List your open orders.");
        orders.SetAction((pr, ct) => RunAsync(pr, server, json, key, async c =>
            (await c.GetAsync("/api/exchange/orders", ct), MarketFormat.Orders)));

        var leases = new Command("leases", "List the leases you hold, sold or deliver.");
        leases.SetAction((pr, ct) => RunAsync(pr, server, json, key, async c =>
            (await c.GetAsync("/api/exchange/leases", ct), MarketFormat.Leases)));

        // ------------------------------------------------------------ the trading account
        var account = new Command("account", "Show your trading account: available, held by open buys.");
        account.SetAction((pr, ct) => RunAsync(pr, server, json, key, async c => (await c.GetAsync("/api/exchange/account", ct), MarketFormat.Account)));
        var amountArg = new Argument<string>("amount") { Description = "USD, e.g. 250 or 12.50 (exact to the micro-dollar)." };
        var deposit = new Command("deposit", "Move money from your balance to your trading account (buys are held from it).") { amountArg };
        deposit.SetAction((pr, ct) => RunAsync(pr, server, json, key, async c =>
            (await c.SendJsonAsync(HttpMethod.Post, "/api/exchange/deposits", new Dictionary<string, object?> { ["amount"] = PriceArg(pr.GetValue(amountArg), true, "amount") }, ct),
                MarketFormat.Account)));
        var withdraw = new Command("withdraw", "Move available money from your trading account back to your balance.") { amountArg };
        withdraw.SetAction((pr, ct) => RunAsync(pr, server, json, key, async c =>
            (await c.SendJsonAsync(HttpMethod.Post, "/api/exchange/withdrawals", new Dictionary<string, object?> { ["amount"] = PriceArg(pr.GetValue(amountArg), true, "amount") }, ct),
                MarketFormat.Account)));

        // ------------------------------------------------------------ block orders
        // Separate, required options: the market-data --gpu/--region are optional filters, a block needs both.
        var blockGpu = new Option<string>("--gpu") { Description = "GPU class: H100, H200, B200, A100, RTX4090.", Required = true };
        var blockRegion = new Option<string>("--region") { Description = "Region code, e.g. frankfurt.", Required = true };
        var start = new Option<string>("--start") { Description = "First hour (a whole UTC hour: ISO 8601 with offset, or Unix ns).", Required = true };
        var end = new Option<string>("--end") { Description = "End of the window, exclusive (a whole UTC hour).", Required = true };
        var gpus = new Option<int>("--gpus") { Description = "GPUs wanted in every hour.", Required = true };
        var maxAverage = new Option<string>("--max-average-price")
        {
            Description = "Limit on the average price over the block, USD per GPU-hour, e.g. 2.40 (exact to the micro-dollar).", Required = true,
        };
        Dictionary<string, object?> BlockBody(ParseResult pr) => new()
        {
            ["gpu"] = pr.GetValue(blockGpu), ["region"] = pr.GetValue(blockRegion),
            ["start"] = TimeArg(pr.GetValue(start), "--start"), ["end"] = TimeArg(pr.GetValue(end), "--end"),
            ["gpus"] = pr.GetValue(gpus), ["max_average_price"] = PriceArg(pr.GetValue(maxAverage), required: true, "--max-average-price"),
        };
        var blockQuote = new Command("block-quote", "Quote a block: GPUs for every hour of a window, all-or-none across the hourly books.")
            { blockGpu, blockRegion, start, end, gpus, maxAverage };
        blockQuote.SetAction((pr, ct) => RunAsync(pr, server, json, key, async c =>
            (await c.SendJsonAsync(HttpMethod.Post, "/api/exchange/blocks/quote", BlockBody(pr), ct), MarketFormat.BlockQuote)));
        var block = new Command("block", "Buy a block: GPUs for every hour of a window, all-or-none, within an average price.")
            { blockGpu, blockRegion, start, end, gpus, maxAverage };
        block.SetAction((pr, ct) => RunAsync(pr, server, json, key, async c =>
            (await c.SendJsonAsync(HttpMethod.Post, "/api/exchange/blocks", BlockBody(pr), ct), MarketFormat.BlockResult)));

        foreach (var sub in new[] { instruments, book, trades, candles, index, account, deposit, withdraw, order, cancel, replace, orders, leases, blockQuote, block }) market.Subcommands.Add(sub);
        return market;
    }

    /// <summary>Runs one request; prints its JSON or its table; any failure is one line on stderr and exit code 2.</summary>
    internal static async Task<int> RunAsync(ParseResult pr, Option<string> server, Option<bool> json, Option<string?> key,
        Func<MarketClient, Task<(string Body, Action<TextWriter, JsonElement> Table)>> request)
    {
        try
        {
            using var client = new MarketClient(pr.GetValue(server)!, pr.GetValue(key));
            var (body, table) = await request(client);
            if (pr.GetValue(json))
            {
                Console.Out.WriteLine(body);
                return 0;
            }
            using var doc = JsonDocument.Parse(body);
            table(Console.Out, doc.RootElement);
            return 0;
        }
        catch (MarketException e)
        {
            return CliDefaults.Fail(e.Message);
        }
        catch (JsonException e)
        {
            return CliDefaults.Fail($"the server's answer is not the JSON expected: {e.Message}");
        }
        catch (Exception e) when (e is KeyNotFoundException or InvalidOperationException)
        {
            return CliDefaults.Fail($"the server's answer is not the JSON expected: {e.Message}");
        }
    }

    /// <summary>Dollars (e.g. <c>2.15</c>) to exact micro-USD; more than 6 decimals, zero or negative is an error.</summary>
    internal static long? PriceArg(string? text, bool required, string name = "--price")
    {
        if (text is null)
        {
            if (required) throw new MarketException("--price is required for a limit order (USD per GPU-hour, e.g. 2.15)");
            return null;
        }
        if (!Money.TryParseMajor(text, Asset.Usd, out var m) || m.Units <= 0)
            throw new MarketException($"{name} must be a positive amount in USD with at most 6 decimals, e.g. 2.15; got '{text}'");
        return m.Units;
    }

    /// <summary>A time option as RFC 3339 text (the API's form), from ISO 8601 with an offset or Unix ns.</summary>
    private static string? TimeArg(string? text, string name)
    {
        if (text is null) return null;
        if (!UnixTime.TryParse(text, out long ns))
            throw new MarketException($"{name} must be an ISO 8601 time with an offset (e.g. 2026-11-26T14:00:00Z) or Unix ns; got '{text}'");
        return new ApiTime(ns).ToString();
    }

    private static string? Int(int? value) => value?.ToString(CultureInfo.InvariantCulture);

    private static string Path(string segment) => Uri.EscapeDataString(segment);

    private static string Query(params (string Name, string? Value)[] parameters)
    {
        var set = parameters.Where(p => p.Value is not null).Select(p => $"{p.Name}={Uri.EscapeDataString(p.Value!)}").ToList();
        return set.Count == 0 ? "" : "?" + string.Join("&", set);
    }
}
