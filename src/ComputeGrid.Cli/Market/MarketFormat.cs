using System.Globalization;
using System.Text.Json;

namespace ComputeGrid.Cli.Market;

/// <summary>Plain-text tables of the exchange API's answers (the <c>--json</c> flag prints the answers as they are).</summary>
internal static class MarketFormat
{
    /// <summary>Micro-USD as dollars with 2 to 6 decimals (<c>2150000</c> → <c>2.15</c>, <c>2150001</c> → <c>2.150001</c>): exact, never rounded.</summary>
    public static string Usd(long micro)
    {
        string sign = micro < 0 ? "-" : "";
        ulong abs = micro < 0 ? (ulong)(-(micro + 1)) + 1 : (ulong)micro; // long.MinValue has no positive twin
        string frac = (abs % 1_000_000).ToString("000000", CultureInfo.InvariantCulture).TrimEnd('0');
        if (frac.Length < 2) frac = frac.PadRight(2, '0');
        return $"{sign}{abs / 1_000_000}.{frac}";
    }

    /// <summary>An RFC 3339 time member as UTC to the minute, or to the second when it has seconds; empty when absent.</summary>
    public static string Time(JsonElement e, string name)
    {
        if (!ComputeGrid.Core.ApiTime.TryParse(Str(e, name), null, out var time)) return "";
        var t = DateTimeOffset.UnixEpoch.AddTicks(time.UnixNanoseconds / 100);
        return t.ToString(t.Second == 0 && t.Millisecond == 0 ? "yyyy-MM-dd HH:mm'Z'" : "yyyy-MM-dd HH:mm:ss'Z'", CultureInfo.InvariantCulture);
    }

    public static string Str(JsonElement e, string name) => e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString()! : "";

    public static long Long(JsonElement e, string name) => e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetInt64() : 0;

    public static long? LongOrNull(JsonElement e, string name) => e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetInt64() : null;

    public static string Num(long n) => n.ToString(CultureInfo.InvariantCulture);

    /// <summary>Writes a table: a header row and aligned columns; columns named in <paramref name="right"/> are right-aligned.</summary>
    public static void Table(TextWriter output, string[] headers, IEnumerable<string[]> rows, params string[] right)
    {
        var all = rows.ToList();
        if (all.Count == 0)
        {
            output.WriteLine("(none)");
            return;
        }
        var widths = headers.Select((h, i) => Math.Max(h.Length, all.Max(r => r[i].Length))).ToArray();
        var alignRight = headers.Select(h => right.Contains(h)).ToArray();
        void Line(string[] cells) => output.WriteLine(string.Join("  ",
            cells.Select((c, i) => alignRight[i] ? c.PadLeft(widths[i]) : c.PadRight(widths[i]))).TrimEnd());
        Line(headers);
        foreach (var r in all) Line(r);
    }

    public static void Instruments(TextWriter o, JsonElement page)
    {
        var rows = page.GetProperty("instruments").EnumerateArray().Select(i => new[]
        {
            Num(Long(i, "id")), Str(i, "symbol"), Str(i, "gpu"), Str(i, "region"), Str(i, "kind"),
            Time(i, "delivery_start"), Num(Long(i, "hours")), Time(i, "trading_end"), Usd(Long(i, "tick")),
        });
        Table(o, ["ID", "SYMBOL", "GPU", "REGION", "KIND", "DELIVERY", "HOURS", "TRADES UNTIL", "TICK"], rows, "ID", "HOURS", "TICK");
        if (LongOrNull(page, "next") is long next) o.WriteLine($"more: --after {next}");
    }

    public static void Book(TextWriter o, JsonElement book)
    {
        o.WriteLine(Str(book, "symbol"));
        // A ladder: asks from the worst down to the best, then bids from the best down, so the spread sits in the middle.
        var asks = book.GetProperty("asks").EnumerateArray().Reverse().Select(l => Level("ask", l));
        var bids = book.GetProperty("bids").EnumerateArray().Select(l => Level("bid", l));
        Table(o, ["SIDE", "PRICE", "QUANTITY", "ORDERS"], asks.Concat(bids), "PRICE", "QUANTITY", "ORDERS");

        static string[] Level(string side, JsonElement l) => [side, Usd(Long(l, "price")), Num(Long(l, "quantity")), Num(Long(l, "orders"))];
    }

    /// <summary><c>market book</c>: the ladder, then the last trades (the answer is <c>{"book": …, "trades": …}</c>).</summary>
    public static void BookAndTrades(TextWriter o, JsonElement both)
    {
        Book(o, both.GetProperty("book"));
        if (both.GetProperty("trades") is not { ValueKind: JsonValueKind.Object } trades || trades.GetProperty("trades").GetArrayLength() == 0) return;
        o.WriteLine();
        o.WriteLine("last trades");
        Trades(o, trades);
    }

    public static void Trades(TextWriter o, JsonElement trades)
    {
        var rows = trades.GetProperty("trades").EnumerateArray().Select(t => new[]
        {
            Time(t, "timestamp"), Str(t, "taker_side").ToLowerInvariant(), Usd(Long(t, "price")), Num(Long(t, "quantity")), Num(Long(t, "sequence")),
        });
        Table(o, ["TIME", "TAKER", "PRICE", "QUANTITY", "SEQ"], rows, "PRICE", "QUANTITY", "SEQ");
    }

    public static void Candles(TextWriter o, JsonElement candles)
    {
        var rows = candles.GetProperty("candles").EnumerateArray().Select(c => new[]
        {
            Time(c, "open_time"), Usd(Long(c, "open")), Usd(Long(c, "high")), Usd(Long(c, "low")), Usd(Long(c, "close")),
            Num(Long(c, "volume")), Num(Long(c, "trades")),
        });
        Table(o, ["OPEN TIME", "OPEN", "HIGH", "LOW", "CLOSE", "VOLUME", "TRADES"], rows, "OPEN", "HIGH", "LOW", "CLOSE", "VOLUME", "TRADES");
    }

    public static void Index(TextWriter o, IEnumerable<JsonElement> classes)
    {
        var rows = classes.Select(c => new[]
        {
            Str(c, "gpu"), LongOrNull(c, "vwap") is long v ? Usd(v) : "-", Num(Long(c, "volume")), Num(Long(c, "trades")),
        });
        Table(o, ["GPU", "VWAP/GPU-H", "VOLUME", "TRADES"], rows, "VWAP/GPU-H", "VOLUME", "TRADES");
    }

    public static void OrderResult(TextWriter o, JsonElement r)
    {
        string symbol = Str(r, "symbol");
        o.WriteLine($"order {Long(r, "order_id")}{(symbol.Length > 0 ? " on " + symbol : "")}: {Str(r, "status")}, remaining {Long(r, "remaining")}");
        var fills = r.GetProperty("fills").EnumerateArray().Select(f => new[]
        {
            Num(Long(f, "counter_order_id")), Usd(Long(f, "price")), Num(Long(f, "quantity")), Num(Long(f, "lease_id")), Num(Long(f, "sequence")),
        }).ToList();
        if (fills.Count > 0) Table(o, ["AGAINST", "PRICE", "QUANTITY", "LEASE", "SEQ"], fills, "AGAINST", "PRICE", "QUANTITY", "LEASE", "SEQ");
    }

    public static void Account(TextWriter o, JsonElement a) =>
        Table(o, ["account", "available", "held", "open orders"],
            [[a.GetProperty("account").GetString()!, Usd(Long(a, "available")), Usd(Long(a, "held")), Num(Long(a, "open_orders"))]], "available", "held", "open orders");

    public static void Orders(TextWriter o, JsonElement page)
    {
        var rows = page.GetProperty("orders").EnumerateArray().Select(x => new[]
        {
            Num(Long(x, "order_id")), Str(x, "symbol"), Str(x, "side").ToLowerInvariant(), Usd(Long(x, "price")), Num(Long(x, "remaining")), Usd(Long(x, "hold_amount")),
        });
        Table(o, ["ORDER", "SYMBOL", "SIDE", "PRICE", "REMAINING", "HOLD"], rows, "ORDER", "PRICE", "REMAINING", "HOLD");
    }

    public static void Leases(TextWriter o, JsonElement page)
    {
        var rows = page.GetProperty("leases").EnumerateArray().Select(l => new[]
        {
            Num(Long(l, "id")), Str(l, "symbol"), Num(Long(l, "gpus")), Usd(Long(l, "price")), Usd(Long(l, "notional")), Str(l, "status"),
            $"{Long(l, "delivered_gpu_hours")}/{Long(l, "gpu_hours")}", Usd(Long(l, "paid")), Usd(Long(l, "refunded")),
        });
        Table(o, ["LEASE", "SYMBOL", "GPUS", "PRICE", "NOTIONAL", "STATUS", "DELIVERED", "PAID", "REFUNDED"], rows,
            "LEASE", "GPUS", "PRICE", "NOTIONAL", "DELIVERED", "PAID", "REFUNDED");
    }

    public static void BlockQuote(TextWriter o, JsonElement q)
    {
        bool fillable = q.GetProperty("fillable").GetBoolean(), within = q.GetProperty("within_limit").GetBoolean();
        string verdict = within ? "fillable within the limit" : fillable ? "fillable, but above the limit" : "short";
        o.WriteLine($"block {Long(q, "gpus")} x {Str(q, "gpu")} {Str(q, "region")} {Time(q, "start")} to {Time(q, "end")}: {verdict}");
        // When short, the total and average cover only the hours' available GPUs (the API says so too).
        o.WriteLine($"total {Usd(Long(q, "total_cost"))}, average {Usd(Long(q, "average_price"))}/GPU-h, limit {Usd(Long(q, "max_average_price"))}/GPU-h");
        var legs = q.GetProperty("legs").EnumerateArray().Select(l => new[]
        {
            Time(l, "hour"), Str(l, "symbol"), Num(Long(l, "gpus")), Usd(Long(l, "cost")), Usd(Long(l, "worst_price")), Num(Long(l, "makers")),
        });
        Table(o, ["HOUR", "SYMBOL", "GPUS", "COST", "WORST", "MAKERS"], legs, "GPUS", "COST", "WORST", "MAKERS");
        var shorts = q.GetProperty("short").EnumerateArray().Select(w => new[]
        {
            Time(w, "start"), Time(w, "end"), Num(Long(w, "available")), Str(w, "reason"),
        }).ToList();
        if (shorts.Count == 0) return;
        o.WriteLine("short:");
        Table(o, ["FROM", "TO", "AVAILABLE", "REASON"], shorts, "AVAILABLE");
    }

    public static void BlockResult(TextWriter o, JsonElement r)
    {
        o.WriteLine($"block {Long(r, "block_id")}: filled, total {Usd(Long(r, "total_cost"))}, average {Usd(Long(r, "average_price"))}/GPU-h");
        var fills = r.GetProperty("fills").EnumerateArray().Select(f => new[]
        {
            Num(Long(f, "order_id")), Num(Long(f, "counter_order_id")), Usd(Long(f, "price")), Num(Long(f, "quantity")), Num(Long(f, "lease_id")), Num(Long(f, "sequence")),
        });
        Table(o, ["LEG", "AGAINST", "PRICE", "QUANTITY", "LEASE", "SEQ"], fills, "LEG", "AGAINST", "PRICE", "QUANTITY", "LEASE", "SEQ");
        Leases(o, r);
    }
}
