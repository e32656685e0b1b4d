using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using ComputeGrid.Exchange.Instruments;
using ComputeGrid.Exchange.MarketData;
using ComputeGrid.Exchange.Matching;
using ComputeGrid.Exchange.Trading;

namespace ComputeGrid.Server.Exchange;

// Requests. Required members are C# `required`, so a missing one is a JSON error (400) naming it, and the strict
// ApiJson options refuse unknown members. Sides, order types and times in force travel as strings so the API can
// accept the short forms the CLI uses (buy, limit, gtc) and say exactly what it expected when one is wrong.

/// <summary>Registers a trader: an exchange owner id paying from an existing USD ledger account.</summary>
public sealed record TraderInput
{
    /// <summary>The trader's exchange id (orders and leases are owned by it).</summary>
    public required long Owner { get; init; }
    /// <summary>The USD ledger account that pays for what the trader buys.</summary>
    public required UInt128 Account { get; init; }
}

/// <summary>Registers a provider: paid into its revenue account, penalties come from its collateral account.</summary>
public sealed record ProviderInput
{
    /// <summary>The provider's exchange id (also its trader id).</summary>
    public required long Id { get; init; }
    /// <summary>USD ledger account credited for delivered compute.</summary>
    public required UInt128 RevenueAccount { get; init; }
    /// <summary>USD ledger account penalties for failed delivery are taken from.</summary>
    public required UInt128 CollateralAccount { get; init; }
}

/// <summary>Registers a node of a provider: GPUs of one class in one region.</summary>
public sealed record NodeInput
{
    /// <summary>The owning provider's id.</summary>
    public required long Provider { get; init; }
    /// <summary>A human-readable name.</summary>
    public required string Name { get; init; }
    /// <summary>GPU class code, e.g. <c>H100</c> or <c>RTX4090</c>.</summary>
    public required string Gpu { get; init; }
    /// <summary>Region code, e.g. <c>frankfurt</c>.</summary>
    public required string Region { get; init; }
    /// <summary>Number of GPUs.</summary>
    public required int Gpus { get; init; }
}

/// <summary>A provider reports one of its nodes down.</summary>
public sealed record OutageInput
{
    /// <summary>The provider owning the node.</summary>
    public required long Provider { get; init; }
}

/// <summary>A new order. Prices are micro-USD per GPU-hour, quantities GPU-hours.</summary>
public sealed record OrderInput
{
    /// <summary>The trader placing the order.</summary>
    public required long Owner { get; init; }
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
    /// <summary>For <c>gtt</c>: when the order expires, Unix ns or an ISO 8601 time with offset.</summary>
    [JsonConverter(typeof(NullableUnixTimeConverter))]
    public long? ExpiresAt { get; init; }
}

/// <summary>New terms for an open order.</summary>
public sealed record ReplaceInput
{
    /// <summary>The order's owner.</summary>
    public required long Owner { get; init; }
    /// <summary>New limit price, micro-USD per GPU-hour.</summary>
    public required long Price { get; init; }
    /// <summary>New remaining quantity, GPU-hours.</summary>
    public required long Quantity { get; init; }
}

/// <summary>Offers time of a held lease for resale on an instrument inside its window.</summary>
public sealed record ResellInput
{
    /// <summary>The lease holder.</summary>
    public required long Owner { get; init; }
    /// <summary>The instrument to sell on (same GPU class and region, inside the lease's window).</summary>
    public required InstrumentRef Instrument { get; init; }
    /// <summary>Limit price, micro-USD per GPU-hour.</summary>
    public required long Price { get; init; }
    /// <summary>GPU-hours.</summary>
    public required long Quantity { get; init; }
    /// <summary><c>gtc</c> (default), <c>ioc</c> or <c>fok</c>.</summary>
    public string? TimeInForce { get; init; }
}

/// <summary>A provider reports delivery of a lease over [from, to) (whole hours of the lease window).</summary>
public sealed record DeliveryInput
{
    /// <summary>The delivering provider.</summary>
    public required long Provider { get; init; }
    /// <summary>Start of the delivered interval, Unix ns or ISO 8601.</summary>
    [JsonConverter(typeof(UnixTimeConverter))]
    public required long From { get; init; }
    /// <summary>End of the delivered interval (exclusive), Unix ns or ISO 8601.</summary>
    [JsonConverter(typeof(UnixTimeConverter))]
    public required long To { get; init; }
}

/// <summary>
/// A block order (or its quote): <c>gpus</c> GPUs of one class in one region for every hour of [start, end), bought
/// all-or-none across the hourly spot books, at an average price no higher than <c>maxAveragePrice</c>.
/// </summary>
public sealed record BlockInput
{
    /// <summary>The buying trader (its own asks are never traded with, so they do not count in the quote).</summary>
    public required long Owner { get; init; }
    /// <summary>GPU class code, e.g. <c>H100</c>.</summary>
    public required string Gpu { get; init; }
    /// <summary>Region code, e.g. <c>frankfurt</c>.</summary>
    public required string Region { get; init; }
    /// <summary>Start of the window, a whole UTC hour: Unix ns or ISO 8601 with offset.</summary>
    [JsonConverter(typeof(UnixTimeConverter))]
    public required long Start { get; init; }
    /// <summary>End of the window (exclusive), a whole UTC hour: Unix ns or ISO 8601 with offset.</summary>
    [JsonConverter(typeof(UnixTimeConverter))]
    public required long End { get; init; }
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

/// <summary>
/// Times are Unix nanoseconds everywhere in the API; on input an ISO 8601 string with an offset
/// (<c>2026-11-26T14:00:00Z</c>) is accepted too, because that is what a person types.
/// </summary>
public sealed class UnixTimeConverter : JsonConverter<long>
{
    /// <inheritdoc />
    public override long Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType == JsonTokenType.Number && reader.TryGetInt64(out long ns)) return ns;
        if (reader.TokenType == JsonTokenType.String && UnixTime.TryParse(reader.GetString(), out ns)) return ns;
        throw new JsonException("A time is Unix nanoseconds (an integer) or an ISO 8601 string with an offset (like \"2026-11-26T14:00:00Z\").");
    }

    /// <inheritdoc />
    public override void Write(Utf8JsonWriter writer, long value, JsonSerializerOptions options) => writer.WriteNumberValue(value);
}

/// <summary>As <see cref="UnixTimeConverter"/>, for optional times.</summary>
public sealed class NullableUnixTimeConverter : JsonConverter<long?>
{
    private static readonly UnixTimeConverter Inner = new();

    /// <inheritdoc />
    public override long? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        reader.TokenType == JsonTokenType.Null ? null : Inner.Read(ref reader, typeof(long), options);

    /// <inheritdoc />
    public override void Write(Utf8JsonWriter writer, long? value, JsonSerializerOptions options)
    {
        if (value is long v) writer.WriteNumberValue(v);
        else writer.WriteNullValue();
    }
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

// Responses.

/// <summary>An instrument as the API shows it. Times are Unix ns; prices micro-USD per GPU-hour.</summary>
public sealed record InstrumentView(
    int Id, string Symbol, string Gpu, string Region, DeliveryKind Kind, long DeliveryStart, long DeliveryEnd, long TradingStart, long TradingEnd,
    long Hours, long MinPrice, long MaxPrice, long Tick, bool Trading)
{
    /// <summary>The view of the exchange's object (take it under the exchange's gate).</summary>
    public static InstrumentView From(Instrument i, bool trading) => new(i.Id, i.Symbol, GpuClasses.Code(i.Gpu), i.Region, i.Kind, i.DeliveryStart,
        i.DeliveryEnd, i.TradingStart, i.TradingEnd, i.Hours, i.Band.MinPrice, i.Band.MaxPrice, i.Band.Tick, trading);
}

/// <summary>One page of instruments; <c>next</c> is the <c>after</c> cursor of the next page, null on the last.</summary>
public sealed record InstrumentPage(IReadOnlyList<InstrumentView> Instruments, int? Next);

/// <summary>The outcome of a place, cancel, replace or resale; <c>fills</c> lists the trades it made, each with its lease.</summary>
public sealed record OrderResultView(long OrderId, string? Symbol, OrderStatus Status, long Remaining, IReadOnlyList<Fill> Fills);

/// <summary>An open order; <c>price</c> is its limit, <c>holdAmount</c> what its buyer has on hold (micro-USD).</summary>
public sealed record OpenOrderView(long OrderId, long Owner, int Instrument, string Symbol, Side Side, long Price, long Remaining, long HoldAmount, long? LeaseId)
{
    /// <summary>The view of the exchange's object (take it under the exchange's gate).</summary>
    public static OpenOrderView From(OpenOrder o, string symbol) =>
        new(o.OrderId, o.Owner, o.Instrument, symbol, o.Side, o.Price, o.Remaining, o.HoldAmount, o.LeaseId);
}

/// <summary>The GPUs of one node reserved by a lease.</summary>
public sealed record LeaseNodeView(long Node, int Gpus);

/// <summary>A lease as the API shows it: a copy taken under the exchange's gate (the exchange's object keeps changing).</summary>
public sealed record LeaseView(
    long Id, int Instrument, string? Symbol, long Buyer, long Provider, long Payee, UInt128 PayeeAccount, long? Parent, long Start, long End, int Gpus,
    long Price, long Notional, UInt128 EscrowAccount, IReadOnlyList<LeaseNodeView> Nodes, LeaseStatus Status, long GpuHours, long DeliveredGpuHours,
    long Paid, long Refunded, long Penalty, long PenaltyShortfall)
{
    /// <summary>The view of the exchange's object (take it under the exchange's gate).</summary>
    public static LeaseView From(Lease l, string? symbol) => new(l.Id, l.Instrument, symbol, l.Buyer, l.Provider, l.Payee, l.PayeeAccount, l.Parent,
        l.Start, l.End, l.Gpus, l.Price, l.Notional, l.EscrowAccount, l.Nodes.Select(n => new LeaseNodeView(n.Node, n.Gpus)).ToArray(), l.Status,
        l.GpuHours, l.DeliveredGpuHours, l.Paid, l.Refunded, l.Penalty, l.PenaltyShortfall);
}

/// <summary>A node as the API shows it; <c>downSince</c> is set once it was reported down or missed its heartbeats.</summary>
public sealed record NodeView(long Id, long Provider, string Name, string Gpu, string Region, int Gpus, long LastHeartbeat, long? DownSince)
{
    /// <summary>The view of the exchange's object (take it under the exchange's gate).</summary>
    public static NodeView From(Node n) => new(n.Id, n.Provider, n.Name, GpuClasses.Code(n.Gpu), n.Region, n.Gpus, n.LastHeartbeat, n.DownSince);
}

/// <summary>L2 depth of a book: levels best first, with the total quantity and number of orders at each price.</summary>
public sealed record BookView(int Instrument, string Symbol, long Timestamp, IReadOnlyList<DepthLevel> Bids, IReadOnlyList<DepthLevel> Asks);

/// <summary>A trade on the tape.</summary>
public sealed record TradeView(long Sequence, int Instrument, string Symbol, long Price, long Quantity, long Timestamp, Side TakerSide)
{
    /// <summary>The view of the exchange's object (take it under the exchange's gate).</summary>
    public static TradeView From(in Trade t, string symbol) => new(t.Sequence, t.Instrument, symbol, t.Price, t.Quantity, t.Timestamp, t.TakerSide);
}

/// <summary>Recent trades of an instrument, newest first.</summary>
public sealed record TradesView(string Symbol, IReadOnlyList<TradeView> Trades);

/// <summary>One OHLCV candle; <c>openTime</c> in Unix ns, volume in GPU-hours, notional in micro-USD.</summary>
public sealed record CandleView(long OpenTime, long Open, long High, long Low, long Close, long Volume, long Notional, long Trades)
{
    /// <summary>The view of the exchange's object (take it under the exchange's gate).</summary>
    public static CandleView From(in Candle c) => new(c.OpenTimeNs, c.Open, c.High, c.Low, c.Close, c.Volume, c.Notional, c.TradeCount);
}

/// <summary>Candles of an instrument, oldest first.</summary>
public sealed record CandlesView(string Symbol, string Interval, IReadOnlyList<CandleView> Candles);

/// <summary>
/// The compute price index of a GPU class: the VWAP (micro-USD per GPU-hour) of its hourly and daily trades over
/// (<c>from</c>, <c>to</c>]; <c>vwap</c> is null when the class did not trade in the window.
/// </summary>
public sealed record IndexView(string Gpu, long? Vwap, long Volume, long Trades, long From, long To)
{
    /// <summary>The view of an index answer; no answer (no trade in the window) gives a null VWAP over the whole window.</summary>
    public static IndexView Of(string gpu, PriceIndexValue? v, long now, long windowNs) => v is { } x
        ? new IndexView(gpu, x.Vwap, x.Volume, x.Trades, x.FromNs, x.ToNs)
        : new IndexView(gpu, null, 0, 0, now - windowNs, now);
}

/// <summary>The index of every GPU class at one time.</summary>
public sealed record IndexesView(long AsOf, long WindowNs, IReadOnlyList<IndexView> Classes);

/// <summary>A registered trader.</summary>
public sealed record TraderView(long Owner, UInt128 Account);

/// <summary>A registered provider.</summary>
public sealed record ProviderView(long Id, UInt128 RevenueAccount, UInt128 CollateralAccount);

/// <summary>One hour of a block quote: what that hour's book offers the block now (cost in micro-USD, prices per GPU-hour).</summary>
public sealed record BlockLegView(long Hour, int Instrument, string Symbol, int Gpus, long Cost, long WorstPrice, int Makers)
{
    /// <summary>The view of the exchange's leg (an immutable record, so no gate is needed).</summary>
    public static BlockLegView From(BlockLeg l) => new(l.Hour, l.Instrument, l.Symbol, l.Gpus, l.Cost, l.WorstPrice, l.Makers);
}

/// <summary>A run of hours [start, end) where a block is short: <c>available</c> GPUs in each hour, and why.</summary>
public sealed record ShortWindowView(long Start, long End, int Available, ShortReason Reason)
{
    /// <summary>The view of the exchange's window.</summary>
    public static ShortWindowView From(ShortWindow w) => new(w.Start, w.End, w.Available, w.Reason);
}

/// <summary>
/// What filling a block would cost now. <c>fillable</c>: every hour offers all the GPUs; <c>withinLimit</c>: it is
/// fillable and the average is within <c>maxAveragePrice</c>, i.e. placing it now would fill. When not fillable,
/// <c>totalCost</c> and <c>averagePrice</c> describe only what is available. The block's terms are echoed so a
/// quote read on its own (or inside a refusal's problem) says what it quoted.
/// </summary>
public sealed record BlockQuoteView(
    long Owner, string Gpu, string Region, long Start, long End, int Gpus, long MaxAveragePrice,
    bool Fillable, bool WithinLimit, long TotalCost, long AveragePrice, IReadOnlyList<BlockLegView> Legs, IReadOnlyList<ShortWindowView> Short)
{
    /// <summary>The view of a quote of <paramref name="b"/> (quotes are immutable records, so no gate is needed).</summary>
    public static BlockQuoteView From(BlockOrder b, BlockQuote q) => new(
        b.Owner, GpuClasses.Code(b.Gpu), b.Region, b.StartHour, b.EndHour, b.Gpus, b.MaxAveragePrice,
        q.Fillable, q.Fillable && q.AveragePrice <= b.MaxAveragePrice, q.TotalCost, q.AveragePrice,
        q.Legs.Select(BlockLegView.From).ToArray(), q.Short.Select(ShortWindowView.From).ToArray());
}

/// <summary>
/// A filled block: <c>blockId</c> (the id of its ledger hold's order), every fill of every hour with its lease, the
/// leases, what the buyer paid (<c>totalCost</c>, micro-USD) and the average per GPU-hour (rounded up).
/// </summary>
public sealed record BlockResultView(long BlockId, IReadOnlyList<Fill> Fills, IReadOnlyList<LeaseView> Leases, long TotalCost, long AveragePrice);
