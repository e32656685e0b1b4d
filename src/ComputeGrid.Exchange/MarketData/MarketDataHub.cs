using ComputeGrid.Exchange.Matching;

namespace ComputeGrid.Exchange.MarketData;

// Market data invariants (the whole folder):
// - Pure and deterministic: the only inputs are the trades handed in and the timestamps inside them (or passed
//   to queries). Nothing reads a clock, nothing is random, so a replay of the same trades gives the same data.
// - Single-threaded: the exchange sequencer is the only writer and calls OnTrade in sequence order. Nothing
//   here takes a lock; a reader on another thread must be marshalled onto the sequencer thread (or given a copy).
// - Money and prices are long micro-USD; sums that can outgrow a long (price × quantity over a window) are Int128.
//   Arithmetic is checked: an overflow throws instead of wrapping into a wrong price.
// - Steady state allocates nothing per trade: rings are sized up front (the tape), once per new instrument
//   (candles) or grow by doubling up to a cap (the price index window).

/// <summary>Sizes of the market data buffers. Every field has a default fit for one exchange node.</summary>
public sealed class MarketDataOptions
{
    /// <summary>Most distinct instruments the trade tape holds (its memory is preallocated for all of them).</summary>
    public int MaxInstruments { get; init; } = 1024;

    /// <summary>Most recent trades kept per instrument by the tape.</summary>
    public int TradesPerInstrument { get; init; } = 256;

    /// <summary>Most recent trades kept exchange-wide for <see cref="TradeTape.Since"/> (live-feed catch-up).</summary>
    public int FeedCapacity { get; init; } = 65_536;

    /// <summary>1-minute candles kept per instrument (default one day).</summary>
    public int MinuteCandles { get; init; } = 1_440;

    /// <summary>1-hour candles kept per instrument (default 30 days).</summary>
    public int HourCandles { get; init; } = 720;

    /// <summary>1-day candles kept per instrument (default about 13 months).</summary>
    public int DayCandles { get; init; } = 400;

    /// <summary>Trailing window of the compute price index, in nanoseconds (default 24 hours).</summary>
    public long IndexWindowNs { get; init; } = PriceIndex.DefaultWindowNs;

    /// <summary>Most distinct trade timestamps the price index keeps per GPU class (bounds its memory).</summary>
    public int IndexMaxEntriesPerClass { get; init; } = PriceIndex.DefaultMaxEntriesPerClass;
}

/// <summary>
/// Owns the trade tape, the OHLCV candles and the compute price index, and feeds all three from one trade.
/// Single-threaded by design: the exchange sequencer calls <see cref="OnTrade"/> for every trade, in sequence
/// order, on its own thread; queries on the components must run on that thread too (nothing here locks).
/// </summary>
public sealed class MarketDataHub
{
    /// <summary>Creates the hub and its three components.</summary>
    /// <param name="gpuClassOf">
    /// Instrument id → GPU class key for the price index, or null for instruments the index ignores. See
    /// <see cref="PriceIndex"/> for which instruments should map to a class.
    /// </param>
    /// <param name="options">Buffer sizes; null for the defaults.</param>
    public MarketDataHub(Func<int, string?> gpuClassOf, MarketDataOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(gpuClassOf);
        options ??= new MarketDataOptions();
        Tape = new TradeTape(options.MaxInstruments, options.TradesPerInstrument, options.FeedCapacity);
        Candles = new Candles(options.MinuteCandles, options.HourCandles, options.DayCandles);
        Index = new PriceIndex(gpuClassOf, options.IndexWindowNs, options.IndexMaxEntriesPerClass);
    }

    /// <summary>The most recent trades per instrument and exchange-wide.</summary>
    public TradeTape Tape { get; }

    /// <summary>OHLCV candles per instrument for 1 minute, 1 hour and 1 day.</summary>
    public Candles Candles { get; }

    /// <summary>The trailing volume-weighted compute price per GPU class.</summary>
    public PriceIndex Index { get; }

    /// <summary>
    /// Feeds one trade to the tape, the candles and the index. All-or-nothing: every component checks the trade
    /// before any of them changes, so a rejected trade (non-increasing sequence, timestamp older than the current
    /// candle or than the GPU class's last trade, non-positive price or quantity, too many instruments, overflow)
    /// throws and leaves all market data as it was.
    /// </summary>
    /// <exception cref="ArgumentException">The trade breaks the ordering or value invariants.</exception>
    /// <exception cref="InvalidOperationException">The tape already holds <see cref="MarketDataOptions.MaxInstruments"/> other instruments.</exception>
    /// <exception cref="OverflowException">A candle's or the index's sums would overflow.</exception>
    public void OnTrade(Trade trade)
    {
        // Validate everything first: a half-applied trade would make the tape, candles and index disagree forever.
        Tape.Validate(in trade);
        Candles.Validate(in trade);
        Index.Validate(in trade);
        Tape.Apply(in trade);
        Candles.Apply(in trade);
        Index.Apply(in trade);
    }

    /// <summary>Forgets an instrument's tape ring and candles (the price index keeps no per-instrument state).</summary>
    public void Forget(int instrument)
    {
        Tape.Forget(instrument);
        Candles.Forget(instrument);
    }

    /// <summary>
    /// Feeds trades in order, each as <see cref="OnTrade"/> does. A rejected trade throws; the trades before it
    /// stay applied (they were valid on their own), the ones after it are not applied.
    /// </summary>
    public void OnTrades(ReadOnlySpan<Trade> trades)
    {
        foreach (ref readonly Trade t in trades) OnTrade(t);
    }
}

/// <summary>The checks every market data component makes on a trade, in one place so their messages agree.</summary>
internal static class TradeGuard
{
    /// <summary>Throws for values no matcher produces: they signal a bug upstream, and would corrupt a VWAP.</summary>
    internal static void CheckValues(in Trade trade)
    {
        if (trade.Price <= 0) throw new ArgumentException($"Trade {trade.Sequence}: price must be positive, was {trade.Price}.", nameof(trade));
        if (trade.Quantity <= 0) throw new ArgumentException($"Trade {trade.Sequence}: quantity must be positive, was {trade.Quantity}.", nameof(trade));
        // Pre-1970 timestamps only come from a broken clock; refusing them also keeps bucket arithmetic simple
        // (integer division is the floor) and free of overflow.
        if (trade.Timestamp < 0) throw new ArgumentException($"Trade {trade.Sequence}: timestamp must be Unix ns ≥ 0, was {trade.Timestamp}.", nameof(trade));
    }

    /// <summary>price × quantity in micro-USD, checked (a notional beyond a long is a broken trade, not a big one).</summary>
    internal static long Notional(in Trade trade) => checked((long)((Int128)trade.Price * trade.Quantity));

    /// <summary><paramref name="value"/> − <paramref name="window"/>, saturating at <see cref="long.MinValue"/>.</summary>
    internal static long SaturatingSubtract(long value, long window) =>
        value < long.MinValue + window ? long.MinValue : value - window;
}
