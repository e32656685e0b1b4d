using System.ComponentModel.DataAnnotations;
using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Security.Claims;
using ComputeGrid.Core;
using ComputeGrid.Exchange.Instruments;
using ComputeGrid.Exchange.MarketData;
using ComputeGrid.Exchange.Matching;
using ComputeGrid.Exchange.Pipeline;
using ComputeGrid.Exchange.StateMachine;
using ComputeGrid.Exchange.Trading;
using ComputeGrid.Ledger;
using ComputeGrid.Server.Inference;
using ComputeGrid.Server.Trust;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace ComputeGrid.Server.Exchange;

/// <summary>
/// The exchange's HTTP API under <c>/api/exchange</c>. Market data (instruments, books, trades, candles, the index,
/// the live feed) is public. Trading takes the trader from the credential (customers and providers, trade scope):
/// nobody names an owner, so nobody can trade, cancel or look at another's orders and leases. Capacity belongs to
/// providers (their admitted nodes); delivery and heartbeats come from the node itself (signed, on the node port) or
/// an operator. Prices are micro-USD per GPU-hour, quantities GPU-hours, times RFC 3339.
/// <para>
/// Commands run with <see cref="CancellationToken.None"/>: once the exchange has placed a ledger hold, a cancellation
/// between the hold and the settlement would leave its books and the ledger disagreeing, so a client that hangs up
/// does not stop a command half way. Queries take the request's token. Listings are paged by id from indexes, never
/// sorted or scanned under the exchange's gate.
/// </para>
/// </summary>
public static class ExchangeEndpoints
{
    /// <summary>Most levels per side of an L2 book answer.</summary>
    public const int DepthMax = 500;

    /// <summary>Levels per side of the book snapshots in the live feed unless <c>?depth=</c> says otherwise.</summary>
    public const int FeedDepthDefault = 10;

    /// <summary>Maps the exchange's endpoints under <c>/api/exchange</c>.</summary>
    public static RouteGroupBuilder MapExchange(this IEndpointRouteBuilder app)
    {
        var g = app.MapGroup("/api/exchange").WithTags("exchange");
        var market = g.MapGroup("").AllowAnonymous();
        market.MapGet("/instruments", InstrumentsAsync).WithSummary("Instruments trading now, by id, a page at a time.");
        market.MapGet("/instruments/{symbol}", InstrumentAsync).WithSummary("One instrument (expired ones still known).");
        market.MapGet("/book/{symbol}", BookAsync).WithSummary("L2 depth of an instrument's book.");
        market.MapGet("/trades/{symbol}", TradesAsync).WithSummary("An instrument's recent trades, newest first.");
        market.MapGet("/candles/{symbol}", CandlesAsync).WithSummary("An instrument's OHLCV candles (1m, 1h, 1d).");
        market.MapGet("/index", IndexAsync).WithSummary("The compute price index: 24 h VWAP per GPU class.");
        market.MapGet("/index/{gpu}", IndexOfAsync).WithSummary("The compute price index of one GPU class.");
        market.MapGet("/stream", StreamAsync).Produces(StatusCodes.Status200OK, contentType: "text/event-stream")
            .WithSummary("Server-Sent Events: trades and books as they happen; Last-Event-ID replays missed trades.");

        var trade = g.MapGroup("").RequireAuthorization(Policies.Trader);
        trade.MapPost("/orders", PlaceAsync).WithSummary("Places an order for the caller.");
        long batchBytes = app.ServiceProvider.GetRequiredService<ServerLimits>().BatchBodyBytesMax;
        trade.MapPost("/orders/batch", PlaceBatchAsync).WithMetadata(new BodyLimitAttribute(batchBytes)).WithSummary("Places up to 4,096 orders for the caller at once (market makers): one result per order, in order.");
        trade.MapGet("/account", AccountAsync).WithSummary("The caller's trading account: available, held by open buys, deposits and withdrawals waiting for the ledger.");
        trade.MapPost("/deposits", DepositAsync).WithSummary("Moves money from the caller's balance (a provider's: its revenue) to its trading account.");
        trade.MapPost("/withdrawals", WithdrawAsync).WithSummary("Moves available money from the caller's trading account back to its balance.");
        trade.MapPut("/orders/{id}", ReplaceAsync).WithSummary("Replaces one of the caller's open orders.");
        trade.MapDelete("/orders/{id}", CancelAsync).WithSummary("Cancels one of the caller's open orders.");
        trade.MapPost("/blocks/quote", QuoteBlockAsync).WithSummary("Quotes a block order (changes nothing).");
        trade.MapPost("/blocks", PlaceBlockAsync).WithSummary("Buys a block all-or-none across the hourly books within an average limit.");
        trade.MapPost("/leases/{id}/resell", ResellAsync).WithSummary("Offers time of one of the caller's leases for resale.");

        var read = g.MapGroup("").RequireAuthorization(Policies.Reader);
        read.MapGet("/orders", OrdersAsync).WithSummary("The caller's open orders (operators: anyone's, or everyone's), by id.");
        read.MapGet("/leases", LeasesAsync).WithSummary("The caller's leases (operators: anyone's, or everyone's), by id.");
        read.MapGet("/leases/{id}", LeaseAsync).WithSummary("One of the caller's leases (as buyer, payee or provider).");

        g.MapPost("/nodes", ListCapacityAsync).RequireAuthorization(Policies.Provider).WithSummary("Lists the GPUs of one of the calling provider's admitted nodes.");
        g.MapGet("/nodes", NodesAsync).RequireAuthorization(Policies.OperatorOrProviderRead).WithSummary("Listed capacity: a provider's own (operators: all).");
        g.MapGet("/nodes/{id}", NodeAsync).RequireAuthorization(Policies.OperatorOrProviderRead).WithSummary("One node's listed capacity.");
        g.MapPost("/nodes/{id}/outage", OutageAsync).RequireAuthorization(Policies.Operator)
            .WithSummary("Reports a node down, as an operator (nodes report theirs signed, on the node port): its active leases fail, refund and pay a penalty.");
        g.MapPost("/nodes/{id}/heartbeat", HeartbeatAsync).RequireAuthorization(Policies.Operator)
            .WithSummary("A node's heartbeat, as an operator reports it (nodes send theirs signed, on the node port).");
        g.MapPost("/leases/{id}/delivery", DeliveryAsync).RequireAuthorization(Policies.Operator)
            .WithSummary("Metered delivery of a lease, as an operator reports it (nodes report theirs signed, on the node port).");
        return g;
    }

    // ================================================================ market data (public)

    private static async Task<Results<Ok<InstrumentPage>, ProblemHttpResult>> InstrumentsAsync(string? gpu, string? region, string? kind,
        [Range(1, 1000)] int? limit, [Range(0, int.MaxValue)] int? after, ExchangeHost ex, InstrumentRegistry reg, CancellationToken ct)
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
        int n = limit ?? 100, cursor = after ?? 0;
        var page = await ex.ReadAsync(_ => reg.Active
            .Where(i => i.Id > cursor && (gpuFilter is null || i.Gpu == gpuFilter) && (region is null || i.Region == region) && (kindFilter is null || i.Kind == kindFilter))
            .Take(n + 1).Select(i => InstrumentView.From(i, true)).ToList(), ct);
        return TypedResults.Ok(new InstrumentPage(page.Take(n).ToList(), page.Count > n ? page[n - 1].Id : null));
    }

    private static async Task<Results<Ok<InstrumentView>, ProblemHttpResult>> InstrumentAsync(string symbol, ExchangeHost ex, InstrumentRegistry reg, TimeProvider time, CancellationToken ct)
    {
        var view = await ex.ReadAsync(_ => TryResolve(reg, symbol, out var i)
            ? InstrumentView.From(i, reg.IsActive(i.Id) && i.IsTradingAt(Clock.UnixNanoseconds(time))) : null, ct);
        return view is null ? NoInstrument(symbol) : TypedResults.Ok(view);
    }

    private static async Task<Results<Ok<BookView>, ProblemHttpResult>> BookAsync(string symbol, [Range(1, DepthMax)] int? depth, ExchangeHost ex,
        InstrumentRegistry reg, TimeProvider time, CancellationToken ct)
    {
        var book = await ex.ReadAsync(v => TryResolve(reg, symbol, out var i) ? ExchangeFeed.Book(v, i.Id, i.Symbol, depth ?? 10, Clock.UnixNanoseconds(time)) : null, ct);
        return book is null ? NoInstrument(symbol) : TypedResults.Ok(book);
    }

    private static async Task<Results<Ok<TradesView>, ProblemHttpResult>> TradesAsync(string symbol, [Range(1, 1000)] int? limit, ExchangeHost ex, InstrumentRegistry reg, CancellationToken ct)
    {
        var instrument = await ex.ReadAsync(_ => TryResolve(reg, symbol, out var i) ? (i.Id, i.Symbol) : default, ct);
        if (instrument.Symbol is null) return NoInstrument(symbol);
        return TypedResults.Ok(new TradesView(instrument.Symbol,
            ex.ReadMarket(m => m.Tape.Recent(instrument.Id, limit ?? 100).Select(t => TradeView.From(t, instrument.Symbol)).ToArray())));
    }

    private static async Task<Results<Ok<CandlesView>, ProblemHttpResult>> CandlesAsync(string symbol, string? interval, ApiTime? from, ApiTime? to,
        [Range(1, 5000)] int? limit, ExchangeHost ex, InstrumentRegistry reg, CancellationToken ct)
    {
        string name = interval ?? "1h";
        if (!TryInterval(name, out var iv)) return Problems.BadRequest($"interval must be 1m, 1h or 1d; got '{interval}'.");
        long fromNs = from?.UnixNanoseconds ?? 0, toNs = to?.UnixNanoseconds ?? long.MaxValue;
        var instrument = await ex.ReadAsync(_ => TryResolve(reg, symbol, out var i) ? (i.Id, i.Symbol) : default, ct);
        if (instrument.Symbol is null) return NoInstrument(symbol);
        return TypedResults.Ok(new CandlesView(instrument.Symbol, name.ToLowerInvariant(),
            ex.ReadMarket(m => m.Candles.Get(instrument.Id, iv, fromNs, toNs, limit ?? 500).Select(c => CandleView.From(c)).ToArray())));
    }

    private static async Task<Ok<IndexesView>> IndexAsync(ExchangeHost ex, TimeProvider time, CancellationToken ct) =>
        TypedResults.Ok(await Task.FromResult(ex.ReadMarket(m =>
        {
            long now = Clock.UnixNanoseconds(time);
            var index = m.Index;
            return new IndexesView(new ApiTime(now), index.WindowNs / 1_000_000_000L,
                GpuClasses.All.Select(c => IndexView.Of(GpuClasses.Code(c), index.Get(GpuClasses.Code(c), now), now, index.WindowNs)).ToArray());
        })));

    private static async Task<Results<Ok<IndexView>, ProblemHttpResult>> IndexOfAsync(string gpu, ExchangeHost ex, TimeProvider time, CancellationToken ct)
    {
        if (!TryGpu(gpu, out var c)) return Problems.NotFound($"No GPU class '{gpu}'; the classes are {string.Join(", ", GpuClasses.All.Select(GpuClasses.Code))}.");
        return TypedResults.Ok(await Task.FromResult(ex.ReadMarket(m =>
        {
            long now = Clock.UnixNanoseconds(time);
            var index = m.Index;
            return IndexView.Of(GpuClasses.Code(c), index.Get(GpuClasses.Code(c), now), now, index.WindowNs);
        })));
    }

    private static async Task<Results<EmptyHttpResult, ProblemHttpResult>> StreamAsync(HttpContext http, string? symbol, [Range(1, DepthMax)] int? depth,
        ExchangeHost ex, InstrumentRegistry reg, ExchangeFeed feed, FeedSubscribers subscribers, ServerOptions options, IHostApplicationLifetime life)
    {
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
        // The caller's slot (429 past its quota) is taken before the stream opens, and given back when it ends.
        using IDisposable slot = subscribers.Acquire(http);
        // Subscribe before the first byte goes out, so a client that saw the stream open misses no trade after it.
        using var sub = feed.Subscribe(instrument);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(http.RequestAborted, life.ApplicationStopping);
        http.Response.ContentType = "text/event-stream";
        http.Response.Headers.CacheControl = "no-cache";
        http.Response.Headers["X-Accel-Buffering"] = "no"; // tell reverse proxies not to hold events back
        http.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
        try
        {
            await feed.StreamAsync(http.Response, sub, depth ?? FeedDepthDefault, options.FeedHeartbeatInterval, lastEventId, stop.Token);
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested) { }
        catch (IOException) when (http.RequestAborted.IsCancellationRequested) { }
        return TypedResults.Empty;
    }

    // ================================================================ trading (the caller's own)

    private static async Task<Results<Ok<OrderResultView>, ProblemHttpResult>> PlaceAsync(OrderInput input, ClaimsPrincipal user, ExchangeHost ex,
        InstrumentRegistry reg, ServerLimits limits)
    {
        long owner = Owner(user);
        if (!TryOrder(input, owner, out ExchangeCommand command, out ProblemHttpResult? bad)) return bad;
        var (instrument, open) = await ex.ReadAsync(v => (TryResolve(reg, input.Instrument.Text, out var i) ? i : null, v.OpenOrderCount(owner)), CancellationToken.None);
        if (instrument is null) return NoInstrument(input.Instrument.Text);
        if (open >= limits.OpenOrdersPerTraderMax)
            throw new QuotaExceededException($"You have {open} open orders, the most one trader may have; cancel some or wait for fills.", TimeSpan.FromSeconds(60));
        command.Instrument = instrument.Id;
        OrderResult r = ExchangeCalls.Order(await ex.SubmitAsync(command, CancellationToken.None));
        return r.Ok ? TypedResults.Ok(View(r, instrument.Symbol)) : ExchangeProblems.From(r, new ProblemContext(Owner: owner, Instrument: instrument.Symbol));
    }

    /// <summary>The most orders one batch request may carry.</summary>
    public const int BatchOrdersMax = 4096;

    /// <summary>
    /// A market maker's batch: up to <see cref="BatchOrdersMax"/> orders, each checked as the single-order endpoint
    /// checks it, submitted together (they share the journal's fsyncs and the ledger's batches), one result per order
    /// in order: the order's outcome, or its problem. The batch is not atomic: each order stands alone.
    /// </summary>
    private static async Task<Results<Ok<BatchResultView>, ProblemHttpResult>> PlaceBatchAsync(BatchInput input, ClaimsPrincipal user, ExchangeHost ex,
        InstrumentRegistry reg, ServerLimits limits)
    {
        long owner = Owner(user);
        if (input.Orders is not { Count: > 0 } orders) return Problems.BadRequest("orders must be a non-empty array of orders.");
        if (orders.Count > BatchOrdersMax) return Problems.BadRequest($"A batch carries at most {BatchOrdersMax} orders; this one has {orders.Count}.");
        var results = new BatchItemView[orders.Count];
        var commands = new List<ExchangeCommand>(orders.Count);
        var at = new List<int>(orders.Count);
        var symbols = new string?[orders.Count];
        // Each order's shape is checked here; its instrument is resolved under the exchange's gate (the registry is its sequencer's).
        var shaped = new (ExchangeCommand Command, string Instrument)?[orders.Count];
        for (int k = 0; k < orders.Count; k++)
        {
            if (orders[k] is not { } o) results[k] = BatchItemView.Refused(400, "Each order must be an object.");
            else if (!TryOrder(o, owner, out ExchangeCommand c, out ProblemHttpResult? bad)) results[k] = BatchItemView.Refused(bad);
            else shaped[k] = (c, o.Instrument.Text);
        }
        int open = await ex.ReadAsync(v =>
        {
            for (int k = 0; k < shaped.Length; k++)
            {
                if (shaped[k] is not { } one) continue;
                (ExchangeCommand c, string text) = one;
                if (!TryResolve(reg, text, out var i)) { results[k] = BatchItemView.Refused(NoInstrument(text)); continue; }
                c.Instrument = i.Id;
                symbols[k] = i.Symbol;
                commands.Add(c);
                at.Add(k);
            }
            return v.OpenOrderCount(owner);
        }, CancellationToken.None);
        if (open + commands.Count > limits.OpenOrdersPerTraderMax)
            throw new QuotaExceededException($"You have {open} open orders and this batch would add up to {commands.Count}; one trader may have {limits.OpenOrdersPerTraderMax}.",
                TimeSpan.FromSeconds(60));
        CommandOutcome[] outcomes = await ex.SubmitManyAsync(commands, CancellationToken.None);
        for (int j = 0; j < outcomes.Length; j++)
        {
            int k = at[j];
            OrderResult r = ExchangeCalls.Order(outcomes[j]);
            results[k] = r.Ok ? BatchItemView.Of(View(r, symbols[k]))
                : BatchItemView.Refused(ExchangeProblems.From(r, new ProblemContext(Owner: owner, Instrument: symbols[k])));
        }
        return TypedResults.Ok(new BatchResultView(results, results.Count(x => x.Order is not null)));
    }

    private static async Task<Results<Ok<OrderResultView>, ProblemHttpResult>> CancelAsync(long id, ClaimsPrincipal user, ExchangeHost ex, InstrumentRegistry reg)
    {
        long owner = Owner(user);
        // Another trader's order answers as one that does not exist: its existence is none of the caller's business.
        var order = await ex.ReadAsync(v => v.Order(id), CancellationToken.None);
        if (order is null || order.Owner != owner) return Problems.NotFound($"No open order {id} of yours.", Ext(ExchangeError.UnknownOrder));
        OrderResult r = ExchangeCalls.Order(await ex.SubmitAsync(ExchangeCommand.Cancel(owner, id), CancellationToken.None));
        return r.Ok ? TypedResults.Ok(View(r, await SymbolAsync(ex, reg, order.Instrument))) : ExchangeProblems.From(r, new ProblemContext(Owner: owner, Order: id));
    }

    private static async Task<Results<Ok<OrderResultView>, ProblemHttpResult>> ReplaceAsync(long id, ReplaceInput input, ClaimsPrincipal user, ExchangeHost ex, InstrumentRegistry reg)
    {
        long owner = Owner(user);
        if (input.Price <= 0) return Problems.BadRequest("price must be a positive integer (micro-USD per GPU-hour).");
        if (input.Quantity <= 0) return Problems.BadRequest("quantity must be a positive integer (GPU-hours).");
        var order = await ex.ReadAsync(v => v.Order(id), CancellationToken.None);
        if (order is null || order.Owner != owner) return Problems.NotFound($"No open order {id} of yours.", Ext(ExchangeError.UnknownOrder));
        string? symbol = await SymbolAsync(ex, reg, order.Instrument);
        OrderResult r = ExchangeCalls.Order(await ex.SubmitAsync(ExchangeCommand.Replace(owner, id, input.Price, input.Quantity), CancellationToken.None));
        return r.Ok ? TypedResults.Ok(View(r, symbol)) : ExchangeProblems.From(r, new ProblemContext(Owner: owner, Order: id, Instrument: symbol));
    }

    private static async Task<Results<Ok<BlockQuoteView>, ProblemHttpResult>> QuoteBlockAsync(BlockInput input, ClaimsPrincipal user, HttpContext http, ExchangeHost ex,
        InstrumentRegistry reg, TimeProvider time)
    {
        long owner = Owner(user);
        if (!TryBlock(input, owner, reg, out var block, out var bad)) return bad;
        // The exchange's own rules (whole hours, length, notional) answer 422 here.
        var (quote, invalid) = await ex.ReadAsync(v =>
        {
            try { return ((BlockQuote?)v.QuoteBlock(block, Math.Max(Clock.UnixNanoseconds(time), v.LastTime)), (string?)null); }
            catch (ArgumentException e) { return ((BlockQuote?)null, (string?)e.Message); }
        }, http.RequestAborted);
        if (invalid is not null) return ExchangeProblems.From(ExchangeError.InvalidRequest, RejectReason.None, invalid, new ProblemContext(Owner: owner));
        return TypedResults.Ok(BlockQuoteView.From(block, quote!));
    }

    private static async Task<Results<Ok<BlockResultView>, ProblemHttpResult>> PlaceBlockAsync(BlockInput input, ClaimsPrincipal user, ExchangeHost ex, InstrumentRegistry reg,
        TimeProvider time)
    {
        long owner = Owner(user);
        if (!TryBlock(input, owner, reg, out var block, out var bad)) return bad;
        var command = new ExchangeCommand
        {
            Kind = ExchangeCommandKind.Block, Owner = owner, Gpu = block.Gpu, Region = block.Region, From = block.StartHour, To = block.EndHour, Gpus = block.Gpus,
            Price = block.MaxAveragePrice,
        };
        CommandOutcome o = await ex.SubmitAsync(command, CancellationToken.None);
        BlockOutcome r = await ExchangeCalls.BlockAsync(ex, block, o, time);
        if (!r.Ok) return ExchangeProblems.From(r, block, new ProblemContext(Owner: owner));
        string?[] symbols = await ex.ReadAsync(_ => r.Leases.Select(l => SymbolOrNull(reg, l.Instrument)).ToArray(), CancellationToken.None);
        var leases = r.Leases.Select((l, k) => LeaseView.From(l, symbols[k])).ToArray();
        return TypedResults.Ok(new BlockResultView(r.BlockId, r.Fills, leases, r.TotalCost, r.AveragePrice));
    }

    private static async Task<Results<Ok<OrderResultView>, ProblemHttpResult>> ResellAsync(long id, ResellInput input, ClaimsPrincipal user, ExchangeHost ex, InstrumentRegistry reg)
    {
        long owner = Owner(user);
        if (input.Price <= 0) return Problems.BadRequest("price must be a positive integer (micro-USD per GPU-hour).");
        if (input.Quantity <= 0) return Problems.BadRequest("quantity must be a positive integer (GPU-hours).");
        if (!TryTimeInForce(input.TimeInForce ?? "gtc", out var tif) || tif == TimeInForce.GoodTillTime)
            return Problems.BadRequest($"time_in_force of a resale must be gtc, ioc or fok; got '{input.TimeInForce}'.");
        var (instrument, lease) = await ex.ReadAsync(v => (TryResolve(reg, input.Instrument.Text, out var i) ? i : null, v.Lease(id)), CancellationToken.None);
        if (lease is null || lease.Buyer != owner) return Problems.NotFound($"No lease {id} of yours.", Ext(ExchangeError.UnknownLease));
        if (instrument is null) return NoInstrument(input.Instrument.Text);
        var command = new ExchangeCommand
        {
            Kind = ExchangeCommandKind.Resell, Owner = owner, Target = id, Instrument = instrument.Id, Side = Side.Sell, Type = OrderType.Limit, TimeInForce = tif,
            Price = input.Price, Quantity = input.Quantity,
        };
        OrderResult r = ExchangeCalls.Order(await ex.SubmitAsync(command, CancellationToken.None));
        return r.Ok ? TypedResults.Ok(View(r, instrument.Symbol)) : ExchangeProblems.From(r, new ProblemContext(Owner: owner, Lease: id, Instrument: instrument.Symbol));
    }

    // ================================================================ the trading account (deposits and withdrawals)

    private static async Task<Ok<TradingAccountView>> AccountAsync(ClaimsPrincipal user, ExchangeHost ex, CancellationToken ct)
    {
        long owner = Owner(user);
        return TypedResults.Ok(await ex.ReadAsync(v => TradingAccountView.Of(owner, v), ct));
    }

    private static Task<Results<Ok<TradingAccountView>, ProblemHttpResult>> DepositAsync(MoneyInput input, ClaimsPrincipal user, ExchangeHost ex) =>
        MoveAsync(input, user, ex, ExchangeCommandKind.Deposit);

    private static Task<Results<Ok<TradingAccountView>, ProblemHttpResult>> WithdrawAsync(MoneyInput input, ClaimsPrincipal user, ExchangeHost ex) =>
        MoveAsync(input, user, ex, ExchangeCommandKind.Withdraw);

    // Money moves between the caller's own balance (a customer's balance, a provider's revenue) and its trading account:
    // nobody names an account, so nobody moves another's money.
    private static async Task<Results<Ok<TradingAccountView>, ProblemHttpResult>> MoveAsync(MoneyInput input, ClaimsPrincipal user, ExchangeHost ex, ExchangeCommandKind kind)
    {
        long owner = Owner(user);
        if (input.Amount <= 0) return Problems.BadRequest("amount must be a positive integer (micro-USD).");
        CallerIdentity caller = user.RequireCaller();
        UInt128 own = ChartOfAccounts.PrincipalAccount(caller.Principal.Kind == PrincipalKind.Provider ? AccountCode.ProviderRevenue : AccountCode.CustomerBalance, caller.Principal.Id);
        CommandOutcome o = await ex.SubmitAsync(new ExchangeCommand { Kind = kind, Owner = owner, Amount = input.Amount, Account = own }, CancellationToken.None);
        if (!o.Result.Ok)
            return ExchangeProblems.From(o.Result.Error, RejectReason.None, Refusals.Describe(o.Result), new ProblemContext(Owner: owner));
        if (o.Settlement is not CreateTransferResult.Ok)
            return kind == ExchangeCommandKind.Deposit
                ? Problems.Conflict($"Your balance cannot cover a deposit of {input.Amount} micro-USD (the ledger said {o.Settlement}).", Ext(ExchangeError.InsufficientBalance))
                : Problems.Conflict($"The withdrawal was refused by the ledger ({o.Settlement}); the money stays on your trading account.", Ext(ExchangeError.LedgerRejected));
        return TypedResults.Ok(await ex.ReadAsync(v => TradingAccountView.Of(owner, v), CancellationToken.None));
    }

    private static async Task<Results<Ok<OrderPage>, ProblemHttpResult>> OrdersAsync(long? owner, [Range(1, 1000)] int? limit, [Range(0, long.MaxValue)] long? after,
        ClaimsPrincipal user, ExchangeHost ex, InstrumentRegistry reg, CancellationToken ct)
    {
        if (!TryListOwner(user, owner, out long? who, out var refused)) return refused;
        int n = limit ?? 100;
        var page = await ex.ReadAsync(v => v.OpenOrders(who, after ?? 0, n + 1).Select(x => OpenOrderView.From(x, SymbolOf(reg, x.Instrument))).ToList(), ct);
        return TypedResults.Ok(new OrderPage(page.Take(n).ToList(), page.Count > n ? page[n - 1].OrderId : null));
    }

    private static async Task<Results<Ok<LeasePage>, ProblemHttpResult>> LeasesAsync(long? owner, [Range(1, 1000)] int? limit, [Range(0, long.MaxValue)] long? after,
        ClaimsPrincipal user, ExchangeHost ex, InstrumentRegistry reg, CancellationToken ct)
    {
        if (!TryListOwner(user, owner, out long? who, out var refused)) return refused;
        int n = limit ?? 100;
        var page = await ex.ReadAsync(v => v.Leases(who, after ?? 0, n + 1).Select(l => LeaseView.From(l, SymbolOrNull(reg, l.Instrument))).ToList(), ct);
        return TypedResults.Ok(new LeasePage(page.Take(n).ToList(), page.Count > n ? page[n - 1].Id : null));
    }

    private static async Task<Results<Ok<LeaseView>, ProblemHttpResult>> LeaseAsync(long id, ClaimsPrincipal user, ExchangeHost ex, InstrumentRegistry reg,
        IAuthorizationService authz, CancellationToken ct)
    {
        var lease = await ex.ReadAsync(v => v.Lease(id) is { } l ? (l.Buyer, l.Payee, l.Provider, View: LeaseView.From(l, SymbolOrNull(reg, l.Instrument))) : default, ct);
        if (lease.View is null) return NoLease(id);
        foreach (long party in new[] { lease.Buyer, lease.Payee, lease.Provider })
            if (await authz.MayAsync(user, (ulong)party)) return TypedResults.Ok(lease.View);
        return NoLease(id);
    }

    // ================================================================ capacity (providers) and its reports

    private static async Task<Results<Created<NodeView>, ProblemHttpResult>> ListCapacityAsync(NodeInput input, ClaimsPrincipal user, TrustStore store, ExchangeHost ex, InstrumentRegistry reg)
    {
        long provider = Owner(user);
        if (store.FindNode(input.NodeId) is not { Revoked: null } admission || admission.Provider != (ulong)provider)
            return Problems.NotFound($"No admitted node '{input.NodeId}' of yours (an operator admits nodes: POST /api/providers/{{id}}/nodes).");
        if (!TryGpu(input.Gpu, out var gpu)) return UnknownGpu(input.Gpu);
        string region = input.Region.Trim().ToLowerInvariant();
        if (!reg.Schedule.Regions.Contains(region)) return UnknownRegion(input.Region, reg);
        if (input.Gpus <= 0) return Problems.BadRequest("gpus must be a positive number of GPUs.");
        CommandOutcome o = await ex.SubmitAsync(new ExchangeCommand
        {
            Kind = ExchangeCommandKind.AdmitNode, Owner = provider, Target = (long)admission.Principal, Name = admission.NodeId, Gpu = gpu, Region = region, Gpus = input.Gpus,
        }, CancellationToken.None);
        if (!o.Result.Ok) return ExchangeProblems.From(o.Result.Error, new ProblemContext(Provider: provider));
        var view = await NodeViewAsync(ex, o.Result.Subject, CancellationToken.None);
        return TypedResults.Created($"/api/exchange/nodes/{view!.Id}", view);
    }

    private static async Task<Ok<NodeList>> NodesAsync(ClaimsPrincipal user, ExchangeHost ex, CancellationToken ct)
    {
        CallerIdentity caller = user.RequireCaller();
        long? provider = caller.Principal.Kind == PrincipalKind.Operator ? null : (long)caller.Principal.Id;
        var nodes = await ex.ReadAsync(v => v.Nodes.Where(x => provider is null || x.Provider == provider).ToList(), ct);
        return TypedResults.Ok(new NodeList(nodes.Select(n => NodeView.From(n, ex.LastHeartbeat(n.Id))).ToList()));
    }

    private static async Task<Results<Ok<NodeView>, ProblemHttpResult>> NodeAsync(long id, ClaimsPrincipal user, ExchangeHost ex, IAuthorizationService authz, CancellationToken ct)
    {
        var node = await NodeViewAsync(ex, id, ct);
        return node is not null && await authz.MayAsync(user, (ulong)node.Provider) ? TypedResults.Ok(node) : NoNode(id);
    }

    /// <summary>A node as the API shows it (with the host's last heartbeat), or null.</summary>
    internal static async Task<NodeView?> NodeViewAsync(ExchangeHost ex, long id, CancellationToken ct) =>
        await ex.ReadAsync(v => v.Node(id), ct) is { } n ? NodeView.From(n, ex.LastHeartbeat(id)) : null;

    private static async Task<Results<Ok<NodeView>, ProblemHttpResult>> OutageAsync(long id, ExchangeHost ex)
    {
        var node = await ex.ReadAsync(v => v.Node(id), CancellationToken.None);
        if (node is null) return NoNode(id);
        var e = await ExchangeCalls.OutageAsync(ex, node.Provider, id);
        if (e != ExchangeError.None) return ExchangeProblems.From(e, new ProblemContext(Node: id, Provider: node.Provider));
        return TypedResults.Ok((await NodeViewAsync(ex, id, CancellationToken.None))!);
    }

    private static async Task<Results<Ok<NodeView>, ProblemHttpResult>> HeartbeatAsync(long id, ExchangeHost ex)
    {
        var e = await ex.HeartbeatAsync(id, CancellationToken.None);
        if (e != ExchangeError.None) return ExchangeProblems.From(e, new ProblemContext(Node: id));
        return TypedResults.Ok((await NodeViewAsync(ex, id, CancellationToken.None))!);
    }

    private static async Task<Results<Ok<LeaseView>, ProblemHttpResult>> DeliveryAsync(long id, DeliveryInput input, ExchangeHost ex, InstrumentRegistry reg)
    {
        if (input.From >= input.To) return Problems.BadRequest("from must be before to.");
        var provider = await ex.ReadAsync(v => v.Lease(id)?.Provider, CancellationToken.None);
        if (provider is null) return NoLease(id);
        var e = await ExchangeCalls.DeliverAsync(ex, provider.Value, id, input.From.UnixNanoseconds, input.To.UnixNanoseconds);
        if (e != ExchangeError.None) return ExchangeProblems.From(e, new ProblemContext(Lease: id, Provider: provider));
        return TypedResults.Ok((await ex.ReadAsync(v => v.Lease(id) is { } l ? LeaseView.From(l, SymbolOrNull(reg, l.Instrument)) : null, CancellationToken.None))!);
    }

    // ================================================================ helpers

    /// <summary>An order's shape checked (400s), as a command without its instrument; the instrument is resolved under the gate.</summary>
    private static bool TryOrder(OrderInput input, long owner, out ExchangeCommand command, [NotNullWhen(false)] out ProblemHttpResult? bad)
    {
        command = default;
        bad = null;
        if (!TrySide(input.Side, out var side)) bad = Problems.BadRequest($"side must be buy or sell; got '{input.Side}'.");
        else if (!TryOrderType(input.Type ?? "limit", out var type)) bad = Problems.BadRequest($"type must be limit or market; got '{input.Type}'.");
        else if (!TryTimeInForce(input.TimeInForce ?? "gtc", out var tif)) bad = Problems.BadRequest($"time_in_force must be gtc, gtt, ioc or fok; got '{input.TimeInForce}'.");
        else if (type == OrderType.Limit && input.Price is not > 0) bad = Problems.BadRequest("price must be a positive integer (micro-USD per GPU-hour) for a limit order.");
        else if (type == OrderType.Market && input.Price is not (null or 0)) bad = Problems.BadRequest("A market order takes no price: it trades at the resting orders' prices.");
        else if (input.Quantity <= 0) bad = Problems.BadRequest("quantity must be a positive integer (GPU-hours).");
        else if (tif == TimeInForce.GoodTillTime && input.ExpiresAt is null) bad = Problems.BadRequest("A gtt order needs expires_at (RFC 3339).");
        else if (tif != TimeInForce.GoodTillTime && input.ExpiresAt is not null) bad = Problems.BadRequest("expires_at applies only to gtt orders.");
        else command = ExchangeCommand.Place(owner, 0, side, type, tif, input.Price ?? 0, input.Quantity, input.PostOnly, input.ExpiresAt?.UnixNanoseconds ?? 0);
        return bad is null;
    }

    /// <summary>The trader of a request: the caller's principal (the policy admits only customers and providers here).</summary>
    private static long Owner(ClaimsPrincipal user) => (long)user.RequireCaller().Principal.Id;

    // Operators list anyone's (or everyone's); everyone else lists only their own.
    private static bool TryListOwner(ClaimsPrincipal user, long? asked, out long? owner, [NotNullWhen(false)] out ProblemHttpResult? refused)
    {
        CallerIdentity caller = user.RequireCaller();
        refused = null;
        if (caller.Principal.Kind == PrincipalKind.Operator)
        {
            owner = asked;
            return true;
        }
        owner = (long)caller.Principal.Id;
        if (asked is long a && a != owner)
        {
            refused = Problems.Forbidden("You can list only your own orders and leases (leave out owner).");
            return false;
        }
        return true;
    }

    private static OrderResultView View(OrderResult r, string? symbol) => new(r.OrderId, symbol, r.Status, r.Remaining, r.Fills);

    /// <summary>
    /// The block of a request, or a 400 for what is wrong with its shape (GPU class, region, counts, order of the
    /// times). The exchange's own rules (whole hours, length, notional) are left to <c>ValidateBlock</c> (422).
    /// </summary>
    private static bool TryBlock(BlockInput input, long owner, InstrumentRegistry reg, [NotNullWhen(true)] out BlockOrder? block, [NotNullWhen(false)] out ProblemHttpResult? problem)
    {
        block = null;
        problem = null;
        string region = input.Region.Trim().ToLowerInvariant(); // region codes are lower-case, as for nodes
        if (!TryGpu(input.Gpu, out var gpu)) problem = UnknownGpu(input.Gpu);
        else if (!reg.Schedule.Regions.Contains(region)) problem = UnknownRegion(input.Region, reg);
        else if (input.Gpus <= 0) problem = Problems.BadRequest("gpus must be a positive number of GPUs (wanted in every hour).");
        else if (input.MaxAveragePrice <= 0) problem = Problems.BadRequest("max_average_price must be a positive integer (micro-USD per GPU-hour).");
        else if (input.End <= input.Start) problem = Problems.BadRequest("end must be after start.");
        else block = new BlockOrder(owner, gpu, region, input.Start.UnixNanoseconds, input.End.UnixNanoseconds, input.Gpus, input.MaxAveragePrice);
        return block is not null;
    }

    private static Dictionary<string, object?> Ext(ExchangeError e) => new() { ["error"] = ExchangeProblems.Snake(e.ToString()) };

    /// <summary>An instrument by symbol or numeric id; call under the exchange's gate (the registry is its sequencer's).</summary>
    private static bool TryResolve(InstrumentRegistry reg, string text, [NotNullWhen(true)] out Instrument? instrument)
    {
        if (int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out int id)) return reg.TryGet(id, out instrument);
        return reg.TryGetBySymbol(text, out instrument);
    }

    private static string SymbolOf(InstrumentRegistry reg, int id) => SymbolOrNull(reg, id) ?? id.ToString(CultureInfo.InvariantCulture);

    private static string? SymbolOrNull(InstrumentRegistry reg, int id) => reg.TryGet(id, out var i) ? i.Symbol : null;

    private static Task<string?> SymbolAsync(ExchangeHost ex, InstrumentRegistry reg, int instrument) =>
        ex.ReadAsync(_ => SymbolOrNull(reg, instrument), CancellationToken.None);

    private static ProblemHttpResult NoInstrument(string text) =>
        Problems.NotFound($"No instrument '{text}' (symbols look like H100.frankfurt.H.2026-11-26T14; GET /api/exchange/instruments lists them).",
            Ext(ExchangeError.UnknownInstrument));

    private static ProblemHttpResult NoLease(long id) => Problems.NotFound($"No lease {id} of yours.", Ext(ExchangeError.UnknownLease));

    private static ProblemHttpResult NoNode(long id) => Problems.NotFound($"No node {id} of yours.", Ext(ExchangeError.UnknownNode));

    private static ProblemHttpResult UnknownGpu(string gpu) =>
        Problems.BadRequest($"Unknown GPU class '{gpu}'; the classes are {string.Join(", ", GpuClasses.All.Select(GpuClasses.Code))}.");

    private static ProblemHttpResult UnknownRegion(string region, InstrumentRegistry reg) =>
        Problems.BadRequest($"Unknown region '{region}'; the regions are {string.Join(", ", reg.Schedule.Regions)}.");

    /// <summary>A GPU class by its symbol code, case-insensitively (<c>h100</c> is <c>H100</c>).</summary>
    private static bool TryGpu(string text, out GpuClass gpu) => GpuClasses.TryParseCode(text.Trim().ToUpperInvariant(), out gpu);

    private static bool TryKind(string text, out DeliveryKind kind)
    {
        switch (text.Trim().ToLowerInvariant())
        {
            case "h" or "hourly" or "hourlyspot" or "hourly_spot" or "spot": kind = DeliveryKind.HourlySpot; return true;
            case "d" or "daily" or "dailyforward" or "daily_forward": kind = DeliveryKind.DailyForward; return true;
            case "m" or "monthly" or "monthlyforward" or "monthly_forward": kind = DeliveryKind.MonthlyForward; return true;
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
            case "gtc" or "goodtillcancel" or "good_till_cancel": tif = TimeInForce.GoodTillCancel; return true;
            case "gtt" or "goodtilltime" or "good_till_time": tif = TimeInForce.GoodTillTime; return true;
            case "ioc" or "immediateorcancel" or "immediate_or_cancel": tif = TimeInForce.ImmediateOrCancel; return true;
            case "fok" or "fillorkill" or "fill_or_kill": tif = TimeInForce.FillOrKill; return true;
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
}
