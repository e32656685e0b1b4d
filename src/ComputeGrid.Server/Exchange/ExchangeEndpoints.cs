using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Text.Json;
using ComputeGrid.Core;
using ComputeGrid.Exchange.Instruments;
using ComputeGrid.Exchange.MarketData;
using ComputeGrid.Exchange.Matching;
using ComputeGrid.Exchange.Trading;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Hosting;

namespace ComputeGrid.Server.Exchange;

/// <summary>
/// The exchange's HTTP API under <c>/api/exchange</c>: instruments, participants, orders, block orders, leases, market data and a
/// live Server-Sent Events feed. Prices are integers in micro-USD per GPU-hour, quantities GPU-hours, times Unix ns.
/// Every error is problem+json (see <see cref="ExchangeProblems"/> for the status split); a request refused for its
/// shape (400) never reaches the exchange, and one the exchange refuses changes nothing.
/// <para>
/// Commands run with <see cref="CancellationToken.None"/>: once the exchange has placed a ledger hold, a cancellation
/// between the hold and the settlement would leave its books and the ledger disagreeing, so a client that hangs up
/// does not stop a command half way. Queries take the request's token.
/// </para>
/// </summary>
public static class ExchangeEndpoints
{
    /// <summary>Largest request body the exchange endpoints read (each is one small JSON object).</summary>
    public const long RequestBytesMax = 64 << 10;

    /// <summary>Most instruments, orders or leases per page.</summary>
    public const int PageMax = 1000;

    /// <summary>Most levels per side of an L2 book answer.</summary>
    public const int DepthMax = 500;

    /// <summary>Levels per side of the book snapshots in the live feed unless <c>?depth=</c> says otherwise.</summary>
    public const int FeedDepthDefault = 10;

    /// <summary>Maps the exchange's endpoints under <c>/api/exchange</c>.</summary>
    public static RouteGroupBuilder MapExchange(this IEndpointRouteBuilder app)
    {
        var g = app.MapGroup("/api/exchange").WithTags("exchange");

        // ------------------------------------------------------------ instruments

        g.MapGet("/instruments", async (string? gpu, string? region, string? kind, string? limit, string? after,
            ExchangeService ex, InstrumentRegistry reg, CancellationToken ct) =>
        {
            GpuClass? gpuFilter = null;
            if (gpu is not null)
            {
                if (!TryGpu(gpu, out var g1)) return UnknownGpu(gpu);
                gpuFilter = g1;
            }
            region = region?.Trim().ToLowerInvariant(); // region codes are lower-case: "Frankfurt" means frankfurt
            if (region is not null && !reg.Schedule.Regions.Contains(region)) return UnknownRegion(region, reg);
            DeliveryKind? kindFilter = null;
            if (kind is not null)
            {
                if (!TryKind(kind, out var k)) return Problems.BadRequest($"kind must be H (hourly spot), D (daily forward) or M (monthly forward); got '{kind}'.");
                kindFilter = k;
            }
            if (IntQuery(limit, "limit", 100, 1, PageMax, out int n) is { } bad) return bad;
            if (IntQuery(after, "after", 0, 0, int.MaxValue, out int cursor) is { } bad2) return bad2;
            var page = await ex.ReadAsync(_ => reg.Active
                .Where(i => i.Id > cursor && (gpuFilter is null || i.Gpu == gpuFilter) && (region is null || i.Region == region) && (kindFilter is null || i.Kind == kindFilter))
                .Take(n + 1).Select(i => InstrumentView.From(i, true)).ToList(), ct);
            return Results.Ok(new InstrumentPage(page.Take(n).ToList(), page.Count > n ? page[n - 1].Id : null));
        });

        g.MapGet("/instruments/{symbol}", async (string symbol, ExchangeService ex, InstrumentRegistry reg, TimeProvider time, CancellationToken ct) =>
        {
            var view = await ex.ReadAsync(_ => TryResolve(reg, symbol, out var i)
                ? InstrumentView.From(i, reg.IsActive(i.Id) && i.IsTradingAt(Clock.UnixNanoseconds(time))) : null, ct);
            return view is null ? NoInstrument(symbol) : Results.Ok(view);
        });

        // ------------------------------------------------------------ participants

        g.MapPost("/traders", async (HttpContext http, ExchangeService ex) =>
        {
            var (input, problem) = await ReadBodyAsync<TraderInput>(http);
            if (problem is not null) return problem;
            var e = await ex.RegisterTraderAsync(input!.Owner, input.Account, CancellationToken.None);
            if (e == ExchangeError.UnknownTrader)
                return Problems.NotFound($"Ledger account {Ids.Format(input.Account)} does not exist or is not a USD account.", Ext(e));
            if (e == ExchangeError.AlreadyRegistered)
                return Problems.Conflict($"Trader {input.Owner} is already registered with another account.", Ext(e));
            return e == ExchangeError.None ? Results.Ok(new TraderView(input.Owner, input.Account)) : ExchangeProblems.From(e, new ProblemContext(Owner: input.Owner));
        });

        g.MapPost("/providers", async (HttpContext http, ExchangeService ex) =>
        {
            var (input, problem) = await ReadBodyAsync<ProviderInput>(http);
            if (problem is not null) return problem;
            var e = await ex.RegisterProviderAsync(input!.Id, input.RevenueAccount, input.CollateralAccount, CancellationToken.None);
            if (e == ExchangeError.UnknownProvider)
                return Problems.NotFound($"Ledger accounts {Ids.Format(input.RevenueAccount)} and {Ids.Format(input.CollateralAccount)} must both exist and hold USD.", Ext(e));
            if (e == ExchangeError.AlreadyRegistered)
                return Problems.Conflict($"Provider {input.Id} is already registered.", Ext(e));
            return e == ExchangeError.None ? Results.Ok(new ProviderView(input.Id, input.RevenueAccount, input.CollateralAccount))
                : ExchangeProblems.From(e, new ProblemContext(Provider: input.Id));
        });

        g.MapPost("/nodes", async (HttpContext http, ExchangeService ex, InstrumentRegistry reg) =>
        {
            var (input, problem) = await ReadBodyAsync<NodeInput>(http);
            if (problem is not null) return problem;
            if (!TryGpu(input!.Gpu, out var gpu)) return UnknownGpu(input.Gpu);
            string region = input.Region.Trim().ToLowerInvariant();
            if (!reg.Schedule.Regions.Contains(region)) return UnknownRegion(input.Region, reg);
            if (input.Gpus <= 0) return Problems.BadRequest("gpus must be a positive number of GPUs.");
            if (string.IsNullOrWhiteSpace(input.Name)) return Problems.BadRequest("name must not be empty.");
            var (e, node) = await ex.RegisterNodeAsync(input.Provider, input.Name, gpu, region, input.Gpus, CancellationToken.None);
            if (e != ExchangeError.None) return ExchangeProblems.From(e, new ProblemContext(Provider: input.Provider));
            var view = await ex.ReadAsync(_ => NodeView.From(node!), CancellationToken.None);
            return Results.Created($"/api/exchange/nodes/{view.Id}", view);
        });

        g.MapGet("/nodes", async (string? provider, ExchangeService ex, CancellationToken ct) =>
        {
            if (LongQuery(provider, "provider", out long? p) is { } bad) return bad;
            var nodes = await ex.ReadAsync(v => v.Nodes.Where(x => p is null || x.Provider == p).Select(NodeView.From).ToList(), ct);
            return Results.Ok(new { nodes });
        });

        g.MapGet("/nodes/{id:long}", async (long id, ExchangeService ex, CancellationToken ct) =>
            await NodeAsync(ex, id, ct) is { } view ? Results.Ok(view) : Problems.NotFound($"No node {id}.", Ext(ExchangeError.UnknownNode)));

        g.MapPost("/nodes/{id:long}/heartbeat", async (long id, ExchangeService ex) =>
        {
            var e = await ex.HeartbeatAsync(id, CancellationToken.None);
            if (e != ExchangeError.None) return ExchangeProblems.From(e, new ProblemContext(Node: id));
            return Results.Ok(await NodeAsync(ex, id, CancellationToken.None));
        });

        g.MapPost("/nodes/{id:long}/outage", async (long id, HttpContext http, ExchangeService ex) =>
        {
            var (input, problem) = await ReadBodyAsync<OutageInput>(http);
            if (problem is not null) return problem;
            var e = await ex.ReportOutageAsync(input!.Provider, id, CancellationToken.None);
            if (e != ExchangeError.None) return ExchangeProblems.From(e, new ProblemContext(Node: id, Provider: input.Provider));
            return Results.Ok(await NodeAsync(ex, id, CancellationToken.None));
        });

        // ------------------------------------------------------------ orders

        g.MapPost("/orders", async (HttpContext http, ExchangeService ex, InstrumentRegistry reg) =>
        {
            var (input, problem) = await ReadBodyAsync<OrderInput>(http);
            if (problem is not null) return problem;
            if (!TrySide(input!.Side, out var side)) return Problems.BadRequest($"side must be buy or sell; got '{input.Side}'.");
            if (!TryOrderType(input.Type ?? "limit", out var type)) return Problems.BadRequest($"type must be limit or market; got '{input.Type}'.");
            if (!TryTimeInForce(input.TimeInForce ?? "gtc", out var tif)) return Problems.BadRequest($"timeInForce must be gtc, gtt, ioc or fok; got '{input.TimeInForce}'.");
            if (type == OrderType.Limit && input.Price is not > 0) return Problems.BadRequest("price must be a positive integer (micro-USD per GPU-hour) for a limit order.");
            if (type == OrderType.Market && input.Price is not (null or 0)) return Problems.BadRequest("A market order takes no price: it trades at the resting orders' prices.");
            if (input.Quantity <= 0) return Problems.BadRequest("quantity must be a positive integer (GPU-hours).");
            if (tif == TimeInForce.GoodTillTime && input.ExpiresAt is null) return Problems.BadRequest("A gtt order needs expiresAt (Unix ns or ISO 8601).");
            if (tif != TimeInForce.GoodTillTime && input.ExpiresAt is not null) return Problems.BadRequest("expiresAt applies only to gtt orders.");
            var instrument = await ex.ReadAsync(_ => TryResolve(reg, input.Instrument.Text, out var i) ? i : null, CancellationToken.None);
            if (instrument is null) return NoInstrument(input.Instrument.Text);
            var r = await ex.PlaceAsync(new PlaceOrder(input.Owner, instrument.Id, side, type, tif, input.Price ?? 0, input.Quantity, input.PostOnly, input.ExpiresAt ?? 0),
                CancellationToken.None);
            return r.Ok ? Results.Ok(View(r, instrument.Symbol)) : ExchangeProblems.From(r, new ProblemContext(Owner: input.Owner, Instrument: instrument.Symbol));
        });

        g.MapDelete("/orders/{id:long}", async (long id, string? owner, ExchangeService ex, InstrumentRegistry reg) =>
        {
            if (LongQuery(owner, "owner", out long? o) is { } bad) return bad;
            if (o is not long who) return Problems.BadRequest("owner is required: DELETE /api/exchange/orders/{id}?owner=N.");
            string? symbol = await SymbolOfOrderAsync(ex, reg, id);
            var r = await ex.CancelAsync(who, id, CancellationToken.None);
            return r.Ok ? Results.Ok(View(r, symbol)) : ExchangeProblems.From(r, new ProblemContext(Owner: who, Order: id));
        });

        g.MapPut("/orders/{id:long}", async (long id, HttpContext http, ExchangeService ex, InstrumentRegistry reg) =>
        {
            var (input, problem) = await ReadBodyAsync<ReplaceInput>(http);
            if (problem is not null) return problem;
            if (input!.Price <= 0) return Problems.BadRequest("price must be a positive integer (micro-USD per GPU-hour).");
            if (input.Quantity <= 0) return Problems.BadRequest("quantity must be a positive integer (GPU-hours).");
            string? symbol = await SymbolOfOrderAsync(ex, reg, id);
            var r = await ex.ReplaceAsync(input.Owner, id, input.Price, input.Quantity, CancellationToken.None);
            return r.Ok ? Results.Ok(View(r, symbol)) : ExchangeProblems.From(r, new ProblemContext(Owner: input.Owner, Order: id, Instrument: symbol));
        });

        g.MapGet("/orders", async (string? owner, string? limit, string? after, ExchangeService ex, InstrumentRegistry reg, CancellationToken ct) =>
        {
            if (LongQuery(owner, "owner", out long? o) is { } bad) return bad;
            if (IntQuery(limit, "limit", PageMax, 1, PageMax, out int n) is { } bad2) return bad2;
            if (LongQuery(after, "after", out long? cursor) is { } bad3) return bad3;
            var page = await ex.ReadAsync(v => v.OpenOrders(o).Where(x => x.OrderId > (cursor ?? 0)).Take(n + 1)
                .Select(x => OpenOrderView.From(x, SymbolOf(reg, x.Instrument))).ToList(), ct);
            return Results.Ok(new { orders = page.Take(n), next = page.Count > n ? page[n - 1].OrderId : (long?)null });
        });

        // ------------------------------------------------------------ block orders

        // A quote is a read (it changes nothing), so it takes the request's token like the other queries.
        g.MapPost("/blocks/quote", async (HttpContext http, ExchangeService ex, InstrumentRegistry reg) =>
        {
            var (input, problem) = await ReadBodyAsync<BlockInput>(http);
            if (problem is not null) return problem;
            if (!TryBlock(input!, reg, out var block, out var bad)) return bad;
            // QuoteBlockAsync throws on a malformed block; its rules (whole hours, length, notional) answer 422 here.
            var e = ex.ValidateBlock(block, out var detail);
            if (e != ExchangeError.None) return ExchangeProblems.From(e, RejectReason.None, detail, new ProblemContext(Owner: input!.Owner));
            var quote = await ex.QuoteBlockAsync(block, http.RequestAborted);
            return Results.Ok(BlockQuoteView.From(block, quote));
        });

        g.MapPost("/blocks", async (HttpContext http, ExchangeService ex, InstrumentRegistry reg) =>
        {
            var (input, problem) = await ReadBodyAsync<BlockInput>(http);
            if (problem is not null) return problem;
            if (!TryBlock(input!, reg, out var block, out var bad)) return bad;
            var r = await ex.PlaceBlockAsync(block, CancellationToken.None);
            if (!r.Ok) return ExchangeProblems.From(r, block, new ProblemContext(Owner: input!.Owner));
            // The leases are the exchange's live objects (delivery and resale change them): copy them under its gate.
            var leases = await ex.ReadAsync(_ => r.Leases.Select(l => LeaseView.From(l, SymbolOrNull(reg, l.Instrument))).ToArray(), CancellationToken.None);
            return Results.Ok(new BlockResultView(r.BlockId, r.Fills, leases, r.TotalCost, r.AveragePrice));
        });

        // ------------------------------------------------------------ leases

        g.MapGet("/leases", async (string? owner, string? limit, string? after, ExchangeService ex, InstrumentRegistry reg, CancellationToken ct) =>
        {
            if (LongQuery(owner, "owner", out long? o) is { } bad) return bad;
            if (IntQuery(limit, "limit", PageMax, 1, PageMax, out int n) is { } bad2) return bad2;
            if (LongQuery(after, "after", out long? cursor) is { } bad3) return bad3;
            var page = await ex.ReadAsync(v => v.Leases(o).Where(l => l.Id > (cursor ?? 0)).Take(n + 1)
                .Select(l => LeaseView.From(l, SymbolOrNull(reg, l.Instrument))).ToList(), ct);
            return Results.Ok(new { leases = page.Take(n), next = page.Count > n ? page[n - 1].Id : (long?)null });
        });

        g.MapGet("/leases/{id:long}", async (long id, ExchangeService ex, InstrumentRegistry reg, CancellationToken ct) =>
            await LeaseAsync(ex, reg, id, ct) is { } view ? Results.Ok(view) : Problems.NotFound($"No lease {id}.", Ext(ExchangeError.UnknownLease)));

        g.MapPost("/leases/{id:long}/resell", async (long id, HttpContext http, ExchangeService ex, InstrumentRegistry reg) =>
        {
            var (input, problem) = await ReadBodyAsync<ResellInput>(http);
            if (problem is not null) return problem;
            if (input!.Price <= 0) return Problems.BadRequest("price must be a positive integer (micro-USD per GPU-hour).");
            if (input.Quantity <= 0) return Problems.BadRequest("quantity must be a positive integer (GPU-hours).");
            if (!TryTimeInForce(input.TimeInForce ?? "gtc", out var tif) || tif == TimeInForce.GoodTillTime)
                return Problems.BadRequest($"timeInForce of a resale must be gtc, ioc or fok; got '{input.TimeInForce}'.");
            var instrument = await ex.ReadAsync(_ => TryResolve(reg, input.Instrument.Text, out var i) ? i : null, CancellationToken.None);
            if (instrument is null) return NoInstrument(input.Instrument.Text);
            var r = await ex.ResellAsync(input.Owner, id, instrument.Id, input.Price, input.Quantity, tif, CancellationToken.None);
            return r.Ok ? Results.Ok(View(r, instrument.Symbol)) : ExchangeProblems.From(r, new ProblemContext(Owner: input.Owner, Lease: id, Instrument: instrument.Symbol));
        });

        g.MapPost("/leases/{id:long}/delivery", async (long id, HttpContext http, ExchangeService ex, InstrumentRegistry reg) =>
        {
            var (input, problem) = await ReadBodyAsync<DeliveryInput>(http);
            if (problem is not null) return problem;
            if (input!.From >= input.To) return Problems.BadRequest("from must be before to.");
            var (e, _) = await ex.ReportDeliveryAsync(input.Provider, id, input.From, input.To, CancellationToken.None);
            if (e != ExchangeError.None) return ExchangeProblems.From(e, new ProblemContext(Lease: id, Provider: input.Provider));
            return Results.Ok(await LeaseAsync(ex, reg, id, CancellationToken.None));
        });

        // ------------------------------------------------------------ market data

        g.MapGet("/book/{symbol}", async (string symbol, string? depth, ExchangeService ex, InstrumentRegistry reg, TimeProvider time, CancellationToken ct) =>
        {
            if (IntQuery(depth, "depth", 10, 1, DepthMax, out int n) is { } bad) return bad;
            var book = await ex.ReadAsync(v => TryResolve(reg, symbol, out var i) ? ExchangeFeed.Book(v, i.Id, i.Symbol, n, Clock.UnixNanoseconds(time)) : null, ct);
            return book is null ? NoInstrument(symbol) : Results.Ok(book);
        });

        g.MapGet("/trades/{symbol}", async (string symbol, string? limit, ExchangeService ex, InstrumentRegistry reg, CancellationToken ct) =>
        {
            if (IntQuery(limit, "limit", 100, 1, PageMax, out int n) is { } bad) return bad;
            var trades = await ex.ReadAsync(_ => TryResolve(reg, symbol, out var i)
                ? new TradesView(i.Symbol, ex.MarketData.Tape.Recent(i.Id, n).Select(t => TradeView.From(t, i.Symbol)).ToArray()) : null, ct);
            return trades is null ? NoInstrument(symbol) : Results.Ok(trades);
        });

        g.MapGet("/candles/{symbol}", async (string symbol, string? interval, string? from, string? to, string? limit,
            ExchangeService ex, InstrumentRegistry reg, CancellationToken ct) =>
        {
            string name = interval ?? "1h";
            if (!TryInterval(name, out var iv)) return Problems.BadRequest($"interval must be 1m, 1h or 1d; got '{interval}'.");
            if (TimeQuery(from, "from", 0, out long fromNs) is { } bad) return bad;
            if (TimeQuery(to, "to", long.MaxValue, out long toNs) is { } bad2) return bad2;
            if (IntQuery(limit, "limit", 500, 1, 5000, out int n) is { } bad3) return bad3;
            var candles = await ex.ReadAsync(_ => TryResolve(reg, symbol, out var i)
                ? new CandlesView(i.Symbol, name.ToLowerInvariant(), ex.MarketData.Candles.Get(i.Id, iv, fromNs, toNs, n).Select(c => CandleView.From(c)).ToArray())
                : null, ct);
            return candles is null ? NoInstrument(symbol) : Results.Ok(candles);
        });

        g.MapGet("/index", async (ExchangeService ex, TimeProvider time, CancellationToken ct) =>
        {
            var view = await ex.ReadAsync(_ =>
            {
                long now = Clock.UnixNanoseconds(time);
                var index = ex.MarketData.Index;
                return new IndexesView(now, index.WindowNs, GpuClasses.All.Select(c => IndexView.Of(GpuClasses.Code(c), index.Get(GpuClasses.Code(c), now), now, index.WindowNs)).ToArray());
            }, ct);
            return Results.Ok(view);
        });

        g.MapGet("/index/{gpu}", async (string gpu, ExchangeService ex, TimeProvider time, CancellationToken ct) =>
        {
            if (!TryGpu(gpu, out var c)) return Problems.NotFound($"No GPU class '{gpu}'; the classes are {string.Join(", ", GpuClasses.All.Select(GpuClasses.Code))}.");
            var view = await ex.ReadAsync(_ =>
            {
                long now = Clock.UnixNanoseconds(time);
                var index = ex.MarketData.Index;
                return IndexView.Of(GpuClasses.Code(c), index.Get(GpuClasses.Code(c), now), now, index.WindowNs);
            }, ct);
            return Results.Ok(view);
        });

        // ------------------------------------------------------------ live feed

        g.MapGet("/stream", async (HttpContext http, string? symbol, string? depth, ExchangeService ex, InstrumentRegistry reg, ExchangeFeed feed,
            ServerOptions options, IHostApplicationLifetime life) =>
        {
            if (IntQuery(depth, "depth", FeedDepthDefault, 1, DepthMax, out int n) is { } bad) return bad;
            int? instrument = null;
            if (symbol is not null)
            {
                instrument = await ex.ReadAsync(_ => TryResolve(reg, symbol, out var i) ? i.Id : (int?)null, http.RequestAborted);
                if (instrument is null) return NoInstrument(symbol);
            }
            long? lastEventId = null;
            if (http.Request.Headers["Last-Event-ID"].ToString() is { Length: > 0 } last)
            {
                if (!long.TryParse(last, NumberStyles.None, CultureInfo.InvariantCulture, out long seq)) return Problems.BadRequest("Last-Event-ID must be a trade sequence number.");
                lastEventId = seq;
            }
            // Subscribe before the first byte goes out, so a client that saw the stream open misses no trade after it.
            using var sub = feed.Subscribe(instrument);
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(http.RequestAborted, life.ApplicationStopping);
            http.Response.ContentType = "text/event-stream";
            http.Response.Headers.CacheControl = "no-cache";
            http.Response.Headers["X-Accel-Buffering"] = "no"; // tell reverse proxies not to hold events back
            http.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
            try
            {
                await feed.StreamAsync(http.Response, sub, n, options.FeedHeartbeatInterval, lastEventId, stop.Token);
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested) { }
            catch (IOException) when (http.RequestAborted.IsCancellationRequested) { }
            return Results.Empty;
        });

        return g;
    }

    // ================================================================ helpers

    private static OrderResultView View(OrderResult r, string? symbol) => new(r.OrderId, symbol, r.Status, r.Remaining, r.Fills);

    /// <summary>
    /// The block of a request, or a 400 for what is wrong with its shape (GPU class, region, counts, order of the
    /// times). The exchange's own rules (whole hours, length, notional) are left to <c>ValidateBlock</c> (422).
    /// </summary>
    private static bool TryBlock(BlockInput input, InstrumentRegistry reg, [NotNullWhen(true)] out BlockOrder? block, [NotNullWhen(false)] out IResult? problem)
    {
        block = null;
        problem = null;
        string region = input.Region.Trim().ToLowerInvariant(); // region codes are lower-case, as for nodes
        if (!TryGpu(input.Gpu, out var gpu)) problem = UnknownGpu(input.Gpu);
        else if (!reg.Schedule.Regions.Contains(region)) problem = UnknownRegion(input.Region, reg);
        else if (input.Gpus <= 0) problem = Problems.BadRequest("gpus must be a positive number of GPUs (wanted in every hour).");
        else if (input.MaxAveragePrice <= 0) problem = Problems.BadRequest("maxAveragePrice must be a positive integer (micro-USD per GPU-hour).");
        else if (input.End <= input.Start) problem = Problems.BadRequest("end must be after start.");
        else block = new BlockOrder(input.Owner, gpu, region, input.Start, input.End, input.Gpus, input.MaxAveragePrice);
        return block is not null;
    }

    private static Dictionary<string, object?> Ext(ExchangeError e) => new() { ["error"] = e.ToString() };

    /// <summary>An instrument by symbol or numeric id; call under the exchange's gate (the registry is its sequencer's).</summary>
    private static bool TryResolve(InstrumentRegistry reg, string text, [NotNullWhen(true)] out Instrument? instrument)
    {
        if (int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out int id)) return reg.TryGet(id, out instrument);
        return reg.TryGetBySymbol(text, out instrument);
    }

    private static string SymbolOf(InstrumentRegistry reg, int id) => SymbolOrNull(reg, id) ?? id.ToString(CultureInfo.InvariantCulture);

    private static string? SymbolOrNull(InstrumentRegistry reg, int id) => reg.TryGet(id, out var i) ? i.Symbol : null;

    private static Task<string?> SymbolOfOrderAsync(ExchangeService ex, InstrumentRegistry reg, long orderId) =>
        ex.ReadAsync(v => v.OpenOrders().FirstOrDefault(o => o.OrderId == orderId) is { } o ? SymbolOrNull(reg, o.Instrument) : null, CancellationToken.None);

    private static Task<NodeView?> NodeAsync(ExchangeService ex, long id, CancellationToken ct) =>
        ex.ReadAsync(v => v.Nodes.FirstOrDefault(n => n.Id == id) is { } node ? NodeView.From(node) : null, ct);

    private static Task<LeaseView?> LeaseAsync(ExchangeService ex, InstrumentRegistry reg, long id, CancellationToken ct) =>
        ex.ReadAsync(v => v.Lease(id) is { } l ? LeaseView.From(l, SymbolOrNull(reg, l.Instrument)) : null, ct);

    private static IResult NoInstrument(string text) =>
        Problems.NotFound($"No instrument '{text}' (symbols look like H100.frankfurt.H.2026-11-26T14; GET /api/exchange/instruments lists them).",
            Ext(ExchangeError.UnknownInstrument));

    private static IResult UnknownGpu(string gpu) =>
        Problems.BadRequest($"Unknown GPU class '{gpu}'; the classes are {string.Join(", ", GpuClasses.All.Select(GpuClasses.Code))}.");

    private static IResult UnknownRegion(string region, InstrumentRegistry reg) =>
        Problems.BadRequest($"Unknown region '{region}'; the regions are {string.Join(", ", reg.Schedule.Regions)}.");

    /// <summary>A GPU class by its symbol code, case-insensitively (<c>h100</c> is <c>H100</c>).</summary>
    private static bool TryGpu(string text, out GpuClass gpu) => GpuClasses.TryParseCode(text.Trim().ToUpperInvariant(), out gpu);

    private static bool TryKind(string text, out DeliveryKind kind)
    {
        switch (text.Trim().ToLowerInvariant())
        {
            case "h" or "hourly" or "hourlyspot" or "spot": kind = DeliveryKind.HourlySpot; return true;
            case "d" or "daily" or "dailyforward": kind = DeliveryKind.DailyForward; return true;
            case "m" or "monthly" or "monthlyforward": kind = DeliveryKind.MonthlyForward; return true;
            default: kind = default; return false;
        }
    }

    private static bool TrySide(string text, out Side side)
    {
        switch (text.Trim().ToLowerInvariant())
        {
            case "buy" or "b" or "bid": side = Side.Buy; return true;
            case "sell" or "s" or "ask": side = Side.Sell; return true;
            default: side = default; return false;
        }
    }

    private static bool TryOrderType(string text, out OrderType type)
    {
        switch (text.Trim().ToLowerInvariant())
        {
            case "limit": type = OrderType.Limit; return true;
            case "market": type = OrderType.Market; return true;
            default: type = default; return false;
        }
    }

    private static bool TryTimeInForce(string text, out TimeInForce tif)
    {
        switch (text.Trim().ToLowerInvariant())
        {
            case "gtc" or "goodtillcancel": tif = TimeInForce.GoodTillCancel; return true;
            case "gtt" or "goodtilltime": tif = TimeInForce.GoodTillTime; return true;
            case "ioc" or "immediateorcancel": tif = TimeInForce.ImmediateOrCancel; return true;
            case "fok" or "fillorkill": tif = TimeInForce.FillOrKill; return true;
            default: tif = default; return false;
        }
    }

    private static bool TryInterval(string text, out CandleInterval interval)
    {
        switch (text.Trim().ToLowerInvariant())
        {
            case "1m": interval = CandleInterval.OneMinute; return true;
            case "1h": interval = CandleInterval.OneHour; return true;
            case "1d": interval = CandleInterval.OneDay; return true;
            default: interval = default; return false;
        }
    }

    // Query values are bound as strings and parsed here, so a bad one gets a problem naming the parameter and the
    // range rather than the framework's bare 400.

    private static IResult? IntQuery(string? text, string name, int @default, int min, int max, out int value)
    {
        value = @default;
        if (text is null) return null;
        if (!int.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out value) || value < min || value > max)
            return Problems.BadRequest($"{name} must be an integer from {min} to {max}; got '{text}'.");
        return null;
    }

    private static IResult? LongQuery(string? text, string name, out long? value)
    {
        value = null;
        if (text is null) return null;
        if (!long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long v))
            return Problems.BadRequest($"{name} must be an integer; got '{text}'.");
        value = v;
        return null;
    }

    private static IResult? TimeQuery(string? text, string name, long @default, out long value)
    {
        value = @default;
        if (text is null) return null;
        if (!UnixTime.TryParse(text, out value))
            return Problems.BadRequest($"{name} must be Unix ns or an ISO 8601 time with an offset (e.g. 2026-11-26T14:00:00Z); got '{text}'.");
        return null;
    }

    /// <summary>
    /// Reads one JSON object with the body-size limit and strict parsing; returns a problem (400, 413, 415) instead
    /// when the request is malformed.
    /// </summary>
    private static async Task<(T? Body, IResult? Problem)> ReadBodyAsync<T>(HttpContext http) where T : class
    {
        if (http.Request.ContentType is { } ct && !ct.StartsWith("application/json", StringComparison.OrdinalIgnoreCase))
            return (null, Problems.UnsupportedMediaType("Send the body as application/json."));
        if (http.Request.ContentLength > RequestBytesMax)
            return (null, Problems.TooLarge($"The body is {http.Request.ContentLength} bytes; the limit is {RequestBytesMax}."));
        var sizeFeature = http.Features.Get<IHttpMaxRequestBodySizeFeature>();
        if (sizeFeature is { IsReadOnly: false }) sizeFeature.MaxRequestBodySize = RequestBytesMax;
        T? body;
        try
        {
            body = await JsonSerializer.DeserializeAsync<T>(http.Request.Body, ApiJson.Options, http.RequestAborted);
        }
        catch (JsonException e)
        {
            string where = e.Path is null or "$" ? "" : $" at {e.Path}";
            return (null, Problems.BadRequest($"Malformed JSON{where}: {FirstSentence(e.Message)}", "Malformed JSON"));
        }
        catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            return (null, Problems.TooLarge($"The body exceeds the limit of {RequestBytesMax} bytes."));
        }
        return body is null ? (null, Problems.BadRequest("The body must be a JSON object, not null.")) : (body, null);
    }

    private static string FirstSentence(string message)
    {
        // The serializer names the CLR type of a missing member's object; the client only needs the members.
        const string missing = "was missing required properties including: ";
        int m = message.IndexOf(missing, StringComparison.Ordinal);
        if (m >= 0) return "missing required members: " + message[(m + missing.Length)..].TrimEnd('.') + ".";
        int i = message.IndexOf(". ", StringComparison.Ordinal);
        return i < 0 ? message : message[..(i + 1)];
    }
}
