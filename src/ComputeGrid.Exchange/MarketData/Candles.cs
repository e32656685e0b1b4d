using ComputeGrid.Exchange.Matching;

namespace ComputeGrid.Exchange.MarketData;

/// <summary>The length of a candle.</summary>
public enum CandleInterval : byte
{
    /// <summary>60 seconds.</summary>
    OneMinute = 0,
    /// <summary>3,600 seconds.</summary>
    OneHour = 1,
    /// <summary>86,400 seconds: a UTC calendar day (buckets are counted from the Unix epoch, which is midnight UTC).</summary>
    OneDay = 2,
}

/// <summary>Conversions for <see cref="CandleInterval"/>.</summary>
public static class CandleIntervals
{
    /// <summary>Nanoseconds per minute.</summary>
    public const long MinuteNs = 60_000_000_000L;
    /// <summary>Nanoseconds per hour.</summary>
    public const long HourNs = 60 * MinuteNs;
    /// <summary>Nanoseconds per day.</summary>
    public const long DayNs = 24 * HourNs;

    /// <summary>Every interval, shortest first.</summary>
    public static ReadOnlySpan<CandleInterval> All => [CandleInterval.OneMinute, CandleInterval.OneHour, CandleInterval.OneDay];

    /// <summary>The interval's length in nanoseconds.</summary>
    public static long Nanoseconds(this CandleInterval interval) => interval switch
    {
        CandleInterval.OneMinute => MinuteNs,
        CandleInterval.OneHour => HourNs,
        CandleInterval.OneDay => DayNs,
        _ => throw new ArgumentOutOfRangeException(nameof(interval), interval, "Unknown candle interval."),
    };

    /// <summary>Open time of the candle holding <paramref name="timestampNs"/> (≥ 0): floor(ts / length) × length.</summary>
    public static long OpenTime(this CandleInterval interval, long timestampNs)
    {
        long len = interval.Nanoseconds();
        return timestampNs / len * len; // integer division is the floor for the non-negative timestamps market data accepts
    }
}

/// <summary>One OHLCV candle of one instrument.</summary>
/// <param name="OpenTimeNs">Start of the interval (Unix ns, a multiple of the interval's length); the interval is [open, open + length).</param>
/// <param name="Open">Price of the first trade in the interval (micro-USD per GPU-hour).</param>
/// <param name="High">Highest trade price.</param>
/// <param name="Low">Lowest trade price.</param>
/// <param name="Close">Price of the last trade (the latest so far while the interval is still open).</param>
/// <param name="Volume">Traded quantity, GPU-hours.</param>
/// <param name="Notional">Σ price × quantity, micro-USD.</param>
/// <param name="TradeCount">Number of trades.</param>
public readonly record struct Candle(long OpenTimeNs, long Open, long High, long Low, long Close, long Volume, long Notional, long TradeCount);

/// <summary>
/// OHLCV candles per instrument for 1 minute, 1 hour and 1 day, aggregated incrementally from trades in time
/// order: a trade lands in the candle floor(ts / length), updating it in place or opening the next one.
/// <para>
/// Only intervals with at least one trade have a candle: empty buckets are not synthesized, so consecutive candles
/// may be more than one interval apart (a chart draws the gap flat at the previous close if it wants one). This keeps
/// the history bounded by trading activity, not by wall time, and avoids inventing prices nobody traded at.
/// </para>
/// <para>
/// History is bounded per instrument and interval (by default the last 1,440 minutes, 720 hours, 400 days):
/// the oldest candle is dropped when a new one opens on a full ring. The rings of an instrument are allocated on its
/// first trade; after that, appending allocates nothing.
/// </para>
/// <para>
/// Trades come from a single sequencer in time order, so a trade older than an instrument's current candle (in any
/// interval) is a bug upstream and throws <see cref="ArgumentException"/>. A trade older than the previous trade but
/// still inside the current candle is accepted (it cannot reorder anything: open and close follow arrival order).
/// </para>
/// Not thread-safe: the exchange sequencer is the only writer (see <see cref="MarketDataHub"/>).
/// </summary>
public sealed class Candles
{
    /// <summary>Default 1-minute history: one day.</summary>
    public const int DefaultMinuteCapacity = 1_440;
    /// <summary>Default 1-hour history: 30 days.</summary>
    public const int DefaultHourCapacity = 720;
    /// <summary>Default 1-day history: about 13 months.</summary>
    public const int DefaultDayCapacity = 400;

    private readonly int[] _capacity;
    private readonly Dictionary<int, Ring[]> _byInstrument = new();

    /// <summary>Creates an empty candle store with the given history per instrument and interval.</summary>
    public Candles(int minuteCapacity = DefaultMinuteCapacity, int hourCapacity = DefaultHourCapacity, int dayCapacity = DefaultDayCapacity)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(minuteCapacity);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(hourCapacity);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(dayCapacity);
        _capacity = [minuteCapacity, hourCapacity, dayCapacity];
    }

    /// <summary>How many candles of <paramref name="interval"/> are kept per instrument.</summary>
    public int Capacity(CandleInterval interval) => _capacity[Index(interval)];

    /// <summary>Drops an instrument's candle history (its delivery is long over). Returns false when there is none.</summary>
    public bool Forget(int instrument) => _byInstrument.Remove(instrument);

    /// <summary>Adds a trade to the instrument's current candle of every interval, opening new ones as needed.</summary>
    /// <exception cref="ArgumentException">The trade is older than a current candle, or its price/quantity/timestamp are invalid.</exception>
    /// <exception cref="OverflowException">A candle's volume or notional would overflow a long.</exception>
    public void Append(in Trade trade)
    {
        Validate(in trade);
        Apply(in trade);
    }

    /// <summary>Throws what <see cref="Append"/> would throw, changing nothing.</summary>
    internal void Validate(in Trade trade)
    {
        TradeGuard.CheckValues(in trade);
        long notional = TradeGuard.Notional(in trade);
        if (!_byInstrument.TryGetValue(trade.Instrument, out Ring[]? rings)) return;
        for (int i = 0; i < rings.Length; i++)
        {
            Ring ring = rings[i];
            if (ring.Count == 0) continue;
            ref readonly Candle last = ref ring.Newest;
            long open = ((CandleInterval)i).OpenTime(trade.Timestamp);
            if (open < last.OpenTimeNs)
                throw new ArgumentException(
                    $"Trade {trade.Sequence} at {trade.Timestamp} ns is older than instrument {trade.Instrument}'s current {(CandleInterval)i} candle (opened {last.OpenTimeNs} ns); trades must arrive in time order.",
                    nameof(trade));
            if (open == last.OpenTimeNs)
            {
                _ = checked(last.Volume + trade.Quantity);
                _ = checked(last.Notional + notional);
            }
        }
    }

    /// <summary>Adds a trade that <see cref="Validate"/> accepted.</summary>
    internal void Apply(in Trade trade)
    {
        if (!_byInstrument.TryGetValue(trade.Instrument, out Ring[]? rings))
        {
            // One-time allocation per instrument; its rings are then reused for good.
            rings = [new Ring(_capacity[0]), new Ring(_capacity[1]), new Ring(_capacity[2])];
            _byInstrument.Add(trade.Instrument, rings);
        }
        long notional = TradeGuard.Notional(in trade);
        for (int i = 0; i < rings.Length; i++)
        {
            Ring ring = rings[i];
            long open = ((CandleInterval)i).OpenTime(trade.Timestamp);
            if (ring.Count > 0 && ring.Newest.OpenTimeNs == open)
            {
                ref Candle c = ref ring.Newest;
                c = new Candle(open, c.Open, Math.Max(c.High, trade.Price), Math.Min(c.Low, trade.Price), trade.Price,
                    checked(c.Volume + trade.Quantity), checked(c.Notional + notional), c.TradeCount + 1);
            }
            else
            {
                ring.Push(new Candle(open, trade.Price, trade.Price, trade.Price, trade.Price, trade.Quantity, notional, 1));
            }
        }
    }

    /// <summary>
    /// Copies the instrument's candles whose open time is in [<paramref name="fromNs"/>, <paramref name="toNs"/>) into
    /// <paramref name="destination"/>, oldest first; when more match than fit, the newest ones are copied (page
    /// backwards by passing the first returned open time as the next <paramref name="toNs"/>). The still-open current
    /// candle is included. Allocates nothing.
    /// </summary>
    /// <returns>How many candles were copied.</returns>
    public int Get(int instrument, CandleInterval interval, long fromNs, long toNs, Span<Candle> destination)
    {
        int idx = Index(interval);
        if (!_byInstrument.TryGetValue(instrument, out Ring[]? rings)) return 0;
        Ring ring = rings[idx];
        int lo = ring.FirstAtOrAfter(fromNs);
        int hi = ring.FirstAtOrAfter(toNs);
        if (hi <= lo) return 0;
        int n = Math.Min(hi - lo, destination.Length);
        int start = hi - n;
        for (int k = 0; k < n; k++) destination[k] = ring[start + k];
        return n;
    }

    /// <summary>
    /// The instrument's candles whose open time is in [<paramref name="fromNs"/>, <paramref name="toNs"/>), oldest
    /// first, at most <paramref name="limit"/> (the newest ones when more match). Empty buckets have no candle.
    /// </summary>
    public Candle[] Get(int instrument, CandleInterval interval, long fromNs, long toNs, int limit)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(limit);
        int idx = Index(interval);
        if (!_byInstrument.TryGetValue(instrument, out Ring[]? rings)) return [];
        Ring ring = rings[idx];
        int matching = Math.Max(0, ring.FirstAtOrAfter(toNs) - ring.FirstAtOrAfter(fromNs));
        var result = new Candle[Math.Min(matching, limit)];
        Get(instrument, interval, fromNs, toNs, result);
        return result;
    }

    /// <summary>The instrument's newest candle of the interval (the one still forming, if its interval has not ended).</summary>
    public bool TryGetLatest(int instrument, CandleInterval interval, out Candle candle)
    {
        int idx = Index(interval);
        if (_byInstrument.TryGetValue(instrument, out Ring[]? rings) && rings[idx].Count > 0)
        {
            candle = rings[idx].Newest;
            return true;
        }
        candle = default;
        return false;
    }

    private static int Index(CandleInterval interval) => interval switch
    {
        CandleInterval.OneMinute => 0,
        CandleInterval.OneHour => 1,
        CandleInterval.OneDay => 2,
        _ => throw new ArgumentOutOfRangeException(nameof(interval), interval, "Unknown candle interval."),
    };

    /// <summary>A fixed-size ring of candles in strictly increasing open time; the oldest is overwritten when full.</summary>
    private sealed class Ring(int capacity)
    {
        private readonly Candle[] _items = new Candle[capacity];
        private int _next;

        public int Count { get; private set; }

        /// <summary>The i-th oldest candle.</summary>
        public ref Candle this[int i]
        {
            get
            {
                int j = _next - Count + i;
                return ref _items[j < 0 ? j + _items.Length : j];
            }
        }

        public ref Candle Newest => ref this[Count - 1];

        public void Push(in Candle candle)
        {
            _items[_next] = candle;
            _next = _next + 1 == _items.Length ? 0 : _next + 1;
            if (Count < _items.Length) Count++;
        }

        /// <summary>Index of the first candle with open time ≥ <paramref name="ns"/> (Count when none): binary search, the ring is sorted.</summary>
        public int FirstAtOrAfter(long ns)
        {
            int lo = 0, hi = Count;
            while (lo < hi)
            {
                int mid = lo + (hi - lo) / 2;
                if (this[mid].OpenTimeNs < ns) lo = mid + 1;
                else hi = mid;
            }
            return lo;
        }
    }
}
