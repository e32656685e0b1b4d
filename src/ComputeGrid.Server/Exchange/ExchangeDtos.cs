using ComputeGrid.Core;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using ComputeGrid.Exchange.Instruments;
using ComputeGrid.Exchange.MarketData;
using ComputeGrid.Exchange.Matching;
using ComputeGrid.Exchange.Trading;

namespace ComputeGrid.Server.Exchange;

// Requests. Required members are C# `required`, so a missing one is a JSON error (400) naming it, and the strict
// ApiJson options refuse unknown members. Nobody names an owner, a trader or a provider: the exchange takes them from
// the credential. Sides, order types and times in force travel as strings so the API can accept the short forms the
// CLI uses (buy, limit, gtc) and say exactly what it expected when one is wrong. Times are RFC 3339 strings.

/// <summary>A provider lists the GPUs of one of its admitted nodes: GPUs of one class in one region.</summary>
public sealed record NodeInput
{
    /// <summary>The admitted node's id (an operator admitted it for this provider).</summary>
    public required string NodeId { get; init; }
    /// <summary>GPU class code, e.g. <c>H100</c> or <c>RTX4090</c>.</summary>
    public required string Gpu { get; init; }
    /// <summary>Region code, e.g. <c>frankfurt</c>.</summary>
    public required string Region { get; init; }
    /// <summary>Number of GPUs.</summary>
    [System.ComponentModel.DataAnnotations.Range(1, 100_000)]
    public required int Gpus { get; init; }
}

/// <summary>A new order. Prices are micro-USD per GPU-hour, quantities GPU-hours.</summary>
public sealed record OrderInput
{
    /// <summary>The instrument: its symbol (e.g. <c>H100.frankfurt.H.2026-11-26T14</c>) or its numeric id.</summary>
    public required InstrumentRef Instrument { get; init; }
    /// <summary><c>buy</c> or <c>sell</c>.</summary>
    public required string Side { get; init; }
    /// <summary><c>limit</c> (default) or <c>market</c>.</summary>
    public string? Type { get; init; }
    /// <summary><c>gtc</c> (default), <c>gtt</c>, <c>ioc</c> or <c>fok</c> (or the full names).</summary>
    public string? TimeInForce { get; init; }
    /// <summary>Limit price, micro-USD per GPU-hour; required for limit orders, absent for market orders.</summary>
    public long? Price { get; init; }
    /// <summary>GPU-hours: a whole number of GPUs × the instrument's hours.</summary>
    public required long Quantity { get; init; }
    /// <summary>Refuse the order rather than take liquidity.</summary>
    public bool PostOnly { get; init; }
    /// <summary>For <c>gtt</c>: when the order expires.</summary>
    public ApiTime? ExpiresAt { get; init; }
}

/// <summary>New terms for an open order.</summary>
public sealed record ReplaceInput
{
    /// <summary>New limit price, micro-USD per GPU-hour.</summary>
    public required long Price { get; init; }
    /// <summary>New remaining quantity, GPU-hours.</summary>
    public required long Quantity { get; init; }
}

/// <summary>Offers time of a held lease for resale on an instrument inside its window.</summary>
public sealed record ResellInput
{
    /// <summary>The instrument to sell on (same GPU class and region, inside the lease's window).</summary>
    public required InstrumentRef Instrument { get; init; }
    /// <summary>Limit price, micro-USD per GPU-hour.</summary>
    public required long Price { get; init; }
    /// <summary>GPU-hours.</summary>
    public required long Quantity { get; init; }
    /// <summary><c>gtc</c> (default), <c>ioc</c> or <c>fok</c>.</summary>
    public string? TimeInForce { get; init; }
}

/// <summary>Delivery of a lease over [from, to) (whole hours of the lease window), as an operator reports it.</summary>
public sealed record DeliveryInput
{
    /// <summary>Start of the delivered interval.</summary>
    public required ApiTime From { get; init; }
    /// <summary>End of the delivered interval (exclusive).</summary>
    public required ApiTime To { get; init; }
}

/// <summary>
/// A block order (or its quote): <c>gpus</c> GPUs of one class in one region for every hour of [start, end), bought
/// all-or-none across the hourly spot books, at an average price no higher than <c>max_average_price</c>.
/// </summary>
public sealed record BlockInput
{
    /// <summary>GPU class code, e.g. <c>H100</c>.</summary>
    public required string Gpu { get; init; }
    /// <summary>Region code, e.g. <c>frankfurt</c>.</summary>
    public required string Region { get; init; }
    /// <summary>Start of the window, a whole UTC hour.</summary>
    public required ApiTime Start { get; init; }
    /// <summary>End of the window (exclusive), a whole UTC hour.</summary>
    public required ApiTime End { get; init; }
    /// <summary>GPUs wanted in every hour of the window.</summary>
    public required int Gpus { get; init; }
    /// <summary>Limit on the average price over the whole block, micro-USD per GPU-hour.</summary>
    public required long MaxAveragePrice { get; init; }
}

/// <summary>An instrument named by symbol or by id: JSON <c>"H100.frankfurt.H.2026-11-26T14"</c> or <c>42</c>.</summary>
[JsonConverter(typeof(InstrumentRefConverter))]
public readonly record struct InstrumentRef(string Text)
{
    /// <summary>True when the reference is a numeric id (symbols always start with a GPU code, never a digit).</summary>
    public bool IsId(out int id) => int.TryParse(Text, NumberStyles.None, CultureInfo.InvariantCulture, out id);

    /// <inheritdoc />
    public override string ToString() => Text;
}

/// <summary>Reads an <see cref="InstrumentRef"/> from a string or an integer.</summary>
public sealed class InstrumentRefConverter : JsonConverter<InstrumentRef>
{
    /// <inheritdoc />
    public override InstrumentRef Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType == JsonTokenType.String && reader.GetString() is { Length: > 0 } s) return new InstrumentRef(s);
        if (reader.TokenType == JsonTokenType.Number && reader.TryGetInt32(out int id) && id > 0) return new InstrumentRef(id.ToString(CultureInfo.InvariantCulture));
        throw new JsonException("An instrument is a symbol string (like \"H100.frankfurt.H.2026-11-26T14\") or a positive integer id.");
    }

    /// <inheritdoc />
    public override void Write(Utf8JsonWriter writer, InstrumentRef value, JsonSerializerOptions options) => writer.WriteStringValue(value.Text);
}

/// <summary>Parsing of the API's time inputs.</summary>
public static class UnixTime
{
    /// <summary>Unix nanoseconds from an integer string or an ISO 8601 time with an explicit offset (or Z).</summary>
    public static bool TryParse(string? text, out long ns)
    {
        ns = 0;
        if (string.IsNullOrWhiteSpace(text)) return false;
        text = text.Trim();
        if (long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out ns)) return true;
        // An offset is required: a bare local time would mean different instants on different machines.
        if (!DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.None, out var t)) return false;
        if (!HasOffset(text)) return false;
        try
        {
            ns = checked((t.UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks) * 100L);
            return true;
        }
        catch (OverflowException)
        {
            return false;
        }
    }

    private static bool HasOffset(string text)
    {
        if (text.EndsWith('Z') || text.EndsWith('z')) return true;
        int t = text.IndexOfAny(['T', 't', ' ']);
        if (t < 0) return false;
        return text.AsSpan(t).IndexOfAny('+', '-') >= 0;
    }
}

// Responses. Money is integer micro-USD (USDC's minor units; each view names its asset), times RFC 3339 strings.

/// <summary>An instrument as the API shows it; prices micro-USD per GPU-hour.</summary>
public sealed record InstrumentView(
    int Id, string Symbol, string Gpu, string Region, DeliveryKind Kind, ApiTime DeliveryStart, ApiTime DeliveryEnd, ApiTime TradingStart, ApiTime TradingEnd,
    long Hours, long MinPrice, long MaxPrice, long Tick, bool Trading)
{
    /// <summary>The asset prices are in.</summary>
    public string Asset => ExchangeViews.Asset;

    /// <summary>The view of the exchange's object (take it under the exchange's gate).</summary>
    public static InstrumentView From(Instrument i, bool trading) => new(i.Id, i.Symbol, GpuClasses.Code(i.Gpu), i.Region, i.Kind, new(i.DeliveryStart),
        new(i.DeliveryEnd), new(i.TradingStart), new(i.TradingEnd), i.Hours, i.Band.MinPrice, i.Band.MaxPrice, i.Band.Tick, trading);
}

/// <summary>One page of instruments; <c>next</c> is the <c>after</c> cursor of the next page, null on the last.</summary>
public sealed record InstrumentPage(IReadOnlyList<InstrumentView> Instruments, int? Next);

/// <summary>The outcome of a place, cancel, replace or resale; <c>fills</c> lists the trades it made, each with its lease.</summary>
public sealed record OrderResultView(long OrderId, string? Symbol, OrderStatus Status, long Remaining, IReadOnlyList<Fill> Fills)
{
    /// <summary>The asset fill prices are in.</summary>
    public string Asset => ExchangeViews.Asset;
}

/// <summary>An open order; <c>price</c> is its limit, <c>hold_amount</c> what its buyer has on hold (micro-USD); <c>owner</c> its principal.</summary>
public sealed record OpenOrderView(long OrderId, long Owner, int Instrument, string Symbol, Side Side, long Price, long Remaining, long HoldAmount, long? LeaseId)
{
    /// <summary>The asset prices are in.</summary>
    public string Asset => ExchangeViews.Asset;

    /// <summary>The view of the exchange's object (take it under the exchange's gate).</summary>
    public static OpenOrderView From(OpenOrder o, string symbol) =>
        new(o.OrderId, o.Owner, o.Instrument, symbol, o.Side, o.Price, o.Remaining, o.HoldAmount, o.LeaseId);
}

/// <summary>A page of open orders by id; <c>next</c> is the <c>after</c> of the next page, null on the last.</summary>
public sealed record OrderPage(IReadOnlyList<OpenOrderView> Orders, long? Next);

/// <summary>The GPUs of one node reserved by a lease.</summary>
public sealed record LeaseNodeView(long Node, int Gpus);

/// <summary>A lease as the API shows it: a copy taken under the exchange's gate (the exchange's object keeps changing). Parties are principal ids.</summary>
public sealed record LeaseView(
    long Id, int Instrument, string? Symbol, long Buyer, long Provider, long Payee, UInt128 PayeeAccount, long? Parent, ApiTime Start, ApiTime End, int Gpus,
    long Price, long Notional, UInt128 EscrowAccount, IReadOnlyList<LeaseNodeView> Nodes, LeaseStatus Status, long GpuHours, long DeliveredGpuHours,
    long Paid, long Refunded, long Penalty, long PenaltyShortfall)
{
    /// <summary>The asset amounts are in.</summary>
    public string Asset => ExchangeViews.Asset;

    /// <summary>The view of the exchange's copy.</summary>
    public static LeaseView From(ComputeGrid.Exchange.StateMachine.LeaseView l, string? symbol) => new(l.Id, l.Instrument, symbol, l.Buyer, l.Provider, l.Payee,
        l.PayeeAccount, l.Parent, new(l.Start), new(l.End), l.Gpus, l.Price, l.Notional, l.EscrowAccount, l.Nodes.Select(n => new LeaseNodeView(n.Node, n.Gpus)).ToArray(),
        l.Status, (long)l.Gpus * ((l.End - l.Start) / 3_600_000_000_000L), l.DeliveredGpuHours, l.Paid, l.Refunded, l.Penalty, l.PenaltyShortfall);
}

/// <summary>A page of leases by id; <c>next</c> is the <c>after</c> of the next page, null on the last.</summary>
public sealed record LeasePage(IReadOnlyList<LeaseView> Leases, long? Next);

/// <summary>A node's listed capacity; <c>name</c> is the admitted node's id; <c>down_since</c> is set once it was reported down or missed its heartbeats.</summary>
public sealed record NodeView(long Id, long Provider, string Name, string Gpu, string Region, int Gpus, ApiTime LastHeartbeat, ApiTime? DownSince)
{
    /// <summary>The view of the exchange's copy, with when the exchange last heard the node.</summary>
    public static NodeView From(Node n, long lastHeartbeat) => new(n.Id, n.Provider, n.Name, GpuClasses.Code(n.Gpu), n.Region, n.Gpus, new(lastHeartbeat), ApiTime.Of(n.DownSince));
}

/// <summary>Money to move, micro-USD.</summary>
public sealed record MoneyInput
{
    /// <summary>Micro-USD, positive.</summary>
    public long Amount { get; init; }
}

/// <summary>
/// The caller's trading account on the exchange: <c>available</c> backs new buys (and withdrawals), <c>held</c> is on
/// hold for its open buys. Money arrives by deposit from the caller's balance and leaves by withdrawal back to it.
/// </summary>
public sealed record TradingAccountView(long Owner, UInt128 Account, long Available, long Held, int OpenOrders)
{
    /// <summary>The asset amounts are in.</summary>
    public string Asset => ExchangeViews.Asset;

    /// <summary>The account as the exchange mirrors it now (call inside the exchange's read).</summary>
    public static TradingAccountView Of(long owner, ComputeGrid.Exchange.StateMachine.ExchangeStateMachine sm)
    {
        var open = sm.OpenOrders(owner);
        return new(owner, ComputeGrid.Exchange.StateMachine.ExchangeStateMachine.TradingAccount(owner), sm.Available(owner) ?? 0,
            open.Where(o => o.Side == Side.Buy).Sum(o => o.HoldAmount), open.Count);
    }
}

/// <summary>A batch of orders (market makers): each as the single-order endpoint takes it.</summary>
public sealed record BatchInput
{
    /// <summary>The orders, at most 4,096.</summary>
    public IReadOnlyList<OrderInput>? Orders { get; init; }
}

/// <summary>One order's result in a batch: the order's outcome, or the problem that refused it (its status and detail).</summary>
public sealed record BatchItemView(OrderResultView? Order, int? Status, string? Error, string? Detail)
{
    /// <summary>An accepted order.</summary>
    public static BatchItemView Of(OrderResultView order) => new(order, null, null, null);

    /// <summary>A refused order: the status, error code and detail the single-order endpoint would have answered.</summary>
    public static BatchItemView Refused(Microsoft.AspNetCore.Http.HttpResults.ProblemHttpResult p) =>
        new(null, p.StatusCode, p.ProblemDetails.Extensions.TryGetValue("error", out object? e) ? e?.ToString() : null, p.ProblemDetails.Detail);

    /// <summary>A refused order with a status and a detail.</summary>
    public static BatchItemView Refused(int status, string detail) => new(null, status, null, detail);
}

/// <summary>A batch's results, one per order in order; <c>accepted</c> counts the orders the exchange took.</summary>
public sealed record BatchResultView(IReadOnlyList<BatchItemView> Results, int Accepted);

/// <summary>Listed capacity.</summary>
public sealed record NodeList(IReadOnlyList<NodeView> Nodes);

/// <summary>L2 depth of a book: levels best first, with the total quantity and number of orders at each price.</summary>
public sealed record BookView(int Instrument, string Symbol, ApiTime Timestamp, IReadOnlyList<DepthLevel> Bids, IReadOnlyList<DepthLevel> Asks)
{
    /// <summary>The asset prices are in.</summary>
    public string Asset => ExchangeViews.Asset;
}

/// <summary>A trade on the tape.</summary>
public sealed record TradeView(long Sequence, int Instrument, string Symbol, long Price, long Quantity, ApiTime Timestamp, Side TakerSide)
{
    /// <summary>The asset the price is in.</summary>
    public string Asset => ExchangeViews.Asset;

    /// <summary>The view of the exchange's object (take it under the exchange's gate).</summary>
    public static TradeView From(in Trade t, string symbol) => new(t.Sequence, t.Instrument, symbol, t.Price, t.Quantity, new(t.Timestamp), t.TakerSide);
}

/// <summary>Recent trades of an instrument, newest first.</summary>
public sealed record TradesView(string Symbol, IReadOnlyList<TradeView> Trades);

/// <summary>One OHLCV candle; volume in GPU-hours, notional in micro-USD.</summary>
public sealed record CandleView(ApiTime OpenTime, long Open, long High, long Low, long Close, long Volume, long Notional, long Trades)
{
    /// <summary>The view of the exchange's object (take it under the exchange's gate).</summary>
    public static CandleView From(in Candle c) => new(new(c.OpenTimeNs), c.Open, c.High, c.Low, c.Close, c.Volume, c.Notional, c.TradeCount);
}

/// <summary>Candles of an instrument, oldest first.</summary>
public sealed record CandlesView(string Symbol, string Interval, IReadOnlyList<CandleView> Candles)
{
    /// <summary>The asset prices are in.</summary>
    public string Asset => ExchangeViews.Asset;
}

/// <summary>
/// The compute price index of a GPU class: the VWAP (micro-USD per GPU-hour) of its hourly and daily trades over
/// (<c>from</c>, <c>to</c>]; <c>vwap</c> is null when the class did not trade in the window.
/// </summary>
public sealed record IndexView(string Gpu, long? Vwap, long Volume, long Trades, ApiTime From, ApiTime To)
{
    /// <summary>The asset the VWAP is in.</summary>
    public string Asset => ExchangeViews.Asset;

    /// <summary>The view of an index answer; no answer (no trade in the window) gives a null VWAP over the whole window.</summary>
    public static IndexView Of(string gpu, PriceIndexValue? v, long now, long windowNs) => v is { } x
        ? new IndexView(gpu, x.Vwap, x.Volume, x.Trades, new(x.FromNs), new(x.ToNs))
        : new IndexView(gpu, null, 0, 0, new(now - windowNs), new(now));
}

/// <summary>The index of every GPU class at one time, over a window of <c>window_seconds</c>.</summary>
public sealed record IndexesView(ApiTime AsOf, long WindowSeconds, IReadOnlyList<IndexView> Classes);

/// <summary>One hour of a block quote: what that hour's book offers the block now (cost in micro-USD, prices per GPU-hour).</summary>
public sealed record BlockLegView(ApiTime Hour, int Instrument, string Symbol, int Gpus, long Cost, long WorstPrice, int Makers)
{
    /// <summary>The view of the exchange's leg (an immutable record, so no gate is needed).</summary>
    public static BlockLegView From(BlockLeg l) => new(new(l.Hour), l.Instrument, l.Symbol, l.Gpus, l.Cost, l.WorstPrice, l.Makers);
}

/// <summary>A run of hours [start, end) where a block is short: <c>available</c> GPUs in each hour, and why.</summary>
public sealed record ShortWindowView(ApiTime Start, ApiTime End, int Available, ShortReason Reason)
{
    /// <summary>The view of the exchange's window.</summary>
    public static ShortWindowView From(ShortWindow w) => new(new(w.Start), new(w.End), w.Available, w.Reason);
}

/// <summary>
/// What filling a block would cost now. <c>fillable</c>: every hour offers all the GPUs; <c>within_limit</c>: it is
/// fillable and the average is within <c>max_average_price</c>, i.e. placing it now would fill. When not fillable,
/// <c>total_cost</c> and <c>average_price</c> describe only what is available. The block's terms are echoed so a
/// quote read on its own (or inside a refusal's problem) says what it quoted.
/// </summary>
public sealed record BlockQuoteView(
    string Gpu, string Region, ApiTime Start, ApiTime End, int Gpus, long MaxAveragePrice,
    bool Fillable, bool WithinLimit, long TotalCost, long AveragePrice, IReadOnlyList<BlockLegView> Legs, IReadOnlyList<ShortWindowView> Short)
{
    /// <summary>The asset costs are in.</summary>
    public string Asset => ExchangeViews.Asset;

    /// <summary>The view of a quote of <paramref name="b"/> (quotes are immutable records, so no gate is needed).</summary>
    public static BlockQuoteView From(BlockOrder b, BlockQuote q) => new(
        GpuClasses.Code(b.Gpu), b.Region, new(b.StartHour), new(b.EndHour), b.Gpus, b.MaxAveragePrice,
        q.Fillable, q.Fillable && q.AveragePrice <= b.MaxAveragePrice, q.TotalCost, q.AveragePrice,
        q.Legs.Select(BlockLegView.From).ToArray(), q.Short.Select(ShortWindowView.From).ToArray());
}

/// <summary>
/// A filled block: <c>block_id</c> (the id of its ledger hold's order), every fill of every hour with its lease, the
/// leases, what the buyer paid (<c>total_cost</c>, micro-USD) and the average per GPU-hour (rounded up).
/// </summary>
public sealed record BlockResultView(long BlockId, IReadOnlyList<Fill> Fills, IReadOnlyList<LeaseView> Leases, long TotalCost, long AveragePrice)
{
    /// <summary>The asset costs are in.</summary>
    public string Asset => ExchangeViews.Asset;
}

/// <summary>What the exchange's views share.</summary>
public static class ExchangeViews
{
    /// <summary>The exchange trades in USDC; every price and amount is micro-USD.</summary>
    public const string Asset = "USDC";
}
