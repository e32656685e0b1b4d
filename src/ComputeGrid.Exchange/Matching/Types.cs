using System.Runtime.InteropServices;

namespace ComputeGrid.Exchange.Matching;

/// <summary>Which side of the book an order is on.</summary>
public enum Side : byte
{
    Buy = 0,
    Sell = 1,
}

/// <summary>How an order executes.</summary>
public enum OrderType : byte
{
    /// <summary>Executes at its limit price or better; the rest follows the time in force.</summary>
    Limit = 0,
    /// <summary>Executes against whatever rests, at any price; never rests (the rest is cancelled).</summary>
    Market = 1,
}

/// <summary>How long the unfilled part of a limit order lives.</summary>
public enum TimeInForce : byte
{
    /// <summary>Good till cancelled: the rest rests on the book.</summary>
    GoodTillCancel = 0,
    /// <summary>Good till a time: rests until <see cref="OrderCommand.ExpiresAt"/>.</summary>
    GoodTillTime = 1,
    /// <summary>Immediate or cancel: fills what it can now, cancels the rest.</summary>
    ImmediateOrCancel = 2,
    /// <summary>Fill or kill: fills the whole quantity now or nothing at all.</summary>
    FillOrKill = 3,
}

/// <summary>What a command asks of the book.</summary>
public enum CommandKind : byte
{
    Place = 0,
    Cancel = 1,
    /// <summary>Changes price and/or remaining quantity; priority is kept only for a smaller quantity at the same price.</summary>
    Replace = 2,
    /// <summary>Removes good-till-time orders that expired by <see cref="OrderCommand.Timestamp"/>; no order named.</summary>
    Expire = 3,
}

/// <summary>
/// One command to an order book (fixed-size struct; no references, so a ring of them allocates nothing).
/// Prices are micro-USD per GPU-hour, quantities GPU-hours.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
public struct OrderCommand
{
    public CommandKind Kind;
    public Side Side;
    public OrderType Type;
    public TimeInForce TimeInForce;
    /// <summary>A post-only order is rejected rather than take liquidity.</summary>
    public bool PostOnly;
    /// <summary>Exchange-wide unique order id (assigned by the exchange, not the client).</summary>
    public long OrderId;
    /// <summary>The trading account: orders of the same owner never match each other (self-trade prevention).</summary>
    public long Owner;
    /// <summary>Limit price (micro-USD per GPU-hour); ignored for market orders.</summary>
    public long Price;
    /// <summary>Quantity (GPU-hours); for Replace, the new remaining quantity.</summary>
    public long Quantity;
    /// <summary>For good-till-time: expiry (Unix ns).</summary>
    public long ExpiresAt;
    /// <summary>When the command is applied (Unix ns, non-decreasing): orders expired by then are removed first.</summary>
    public long Timestamp;
}

/// <summary>What happened, one record per fact, in order.</summary>
public enum EventKind : byte
{
    /// <summary>A trade: <see cref="MatchEvent.OrderId"/> is the taker, <see cref="MatchEvent.MakerOrderId"/> the resting order.</summary>
    Trade = 0,
    /// <summary>The order (or its rest) now rests on the book with <see cref="MatchEvent.Quantity"/> remaining.</summary>
    Rested = 1,
    /// <summary>The order's remaining <see cref="MatchEvent.Quantity"/> left the book or was not executed; see <see cref="MatchEvent.Reason"/>.</summary>
    Cancelled = 2,
    /// <summary>The command was refused and changed nothing; see <see cref="MatchEvent.Reject"/>.</summary>
    Rejected = 3,
    /// <summary>A replace reduced the resting quantity in place (priority kept); Quantity is the new remaining.</summary>
    Reduced = 4,
}

/// <summary>Why an order's remaining quantity was cancelled.</summary>
public enum CancelReason : byte
{
    None = 0,
    /// <summary>The owner cancelled it.</summary>
    UserCancel = 1,
    /// <summary>The unfilled rest of an immediate-or-cancel or market order.</summary>
    Unfilled = 2,
    /// <summary>It would have traded with an order of the same owner (self-trade prevention cancels the newer order).</summary>
    SelfTrade = 3,
    /// <summary>A good-till-time order reached its expiry.</summary>
    Expired = 4,
    /// <summary>A replace that loses priority removes the old order before the new one enters.</summary>
    Replaced = 5,
}

/// <summary>Why a command was rejected. Stable values (written to clients and journals).</summary>
public enum RejectReason : byte
{
    None = 0,
    QuantityMustBePositive = 1,
    PriceMustBePositive = 2,
    PriceOutsideBand = 3,
    PriceNotOnTick = 4,
    DuplicateOrderId = 5,
    UnknownOrder = 6,
    NotOwner = 7,
    /// <summary>A post-only order would have taken liquidity.</summary>
    PostOnlyWouldTake = 8,
    /// <summary>A fill-or-kill order could not be filled whole.</summary>
    FillOrKillUnfillable = 9,
    /// <summary>A market order found nothing to trade against.</summary>
    NoLiquidity = 10,
    ExpiryMustBeInTheFuture = 11,
    /// <summary>The book holds its maximum number of orders.</summary>
    BookFull = 12,
    InvalidCommand = 13,
    MarketOrderMustBeImmediate = 14,
}

/// <summary>One output record of the matcher (fixed-size struct, written into a caller-owned buffer).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct MatchEvent
{
    public EventKind Kind;
    public Side Side;
    public CancelReason Reason;
    public RejectReason Reject;
    /// <summary>The order the event is about (the taker, for trades).</summary>
    public long OrderId;
    /// <summary>For trades: the resting order.</summary>
    public long MakerOrderId;
    /// <summary>For trades: the owners of taker and maker.</summary>
    public long Owner;
    public long MakerOwner;
    /// <summary>Trade price (the maker's), or the resting price.</summary>
    public long Price;
    /// <summary>Traded, resting, cancelled or reduced quantity.</summary>
    public long Quantity;
    /// <summary>The command's timestamp.</summary>
    public long Timestamp;

    public override readonly string ToString() => Kind switch
    {
        EventKind.Trade => $"Trade taker={OrderId} maker={MakerOrderId} {Quantity}@{Price}",
        EventKind.Rested => $"Rested {OrderId} {Side} {Quantity}@{Price}",
        EventKind.Cancelled => $"Cancelled {OrderId} {Quantity} ({Reason})",
        EventKind.Rejected => $"Rejected {OrderId} ({Reject})",
        EventKind.Reduced => $"Reduced {OrderId} to {Quantity}",
        _ => Kind.ToString(),
    };
}

/// <summary>A trade as market data sees it.</summary>
/// <param name="Instrument">The instrument's id.</param>
/// <param name="Price">Micro-USD per GPU-hour.</param>
/// <param name="Quantity">GPU-hours.</param>
/// <param name="Timestamp">Unix ns.</param>
/// <param name="TakerSide">The aggressor's side.</param>
/// <param name="Sequence">Exchange-wide trade number, strictly increasing.</param>
public readonly record struct Trade(int Instrument, long Price, long Quantity, long Timestamp, Side TakerSide, long Sequence);

/// <summary>One price level of L2 depth.</summary>
public readonly record struct DepthLevel(long Price, long Quantity, int Orders);

/// <summary>The tick grid and price band of a book: prices are multiples of the tick within [min, max].</summary>
public readonly record struct PriceBand(long MinPrice, long MaxPrice, long Tick)
{
    public int Levels => checked((int)((MaxPrice - MinPrice) / Tick) + 1);
    public bool Contains(long price) => price >= MinPrice && price <= MaxPrice;
    public bool OnTick(long price) => (price - MinPrice) % Tick == 0;
}
