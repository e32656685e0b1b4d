using ComputeGrid.Exchange.Matching;

namespace ComputeGrid.Exchange.MarketData;

/// <summary>The compute price index of one GPU class over a trailing window.</summary>
/// <param name="Vwap">
/// Volume-weighted average price, micro-USD per GPU-hour: Σ(price × quantity) / Σ quantity over the window's trades,
/// computed exactly in 128 bits and rounded half away from zero (prices are positive, so: half up).
/// </param>
/// <param name="Volume">Σ quantity, GPU-hours.</param>
/// <param name="Trades">Number of trades.</param>
/// <param name="FromNs">
/// Exclusive start of the window covered (Unix ns). Normally <paramref name="ToNs"/> − the index's window; later than
/// that when trades the window would include are already gone (dropped at the per-class capacity, or evicted by an
/// earlier query with a later now): then it is the timestamp of the newest trade gone, and the answer is exact for
/// (FromNs, ToNs].
/// </param>
/// <param name="ToNs">Inclusive end of the window: the query's now (Unix ns).</param>
public readonly record struct PriceIndexValue(long Vwap, long Volume, long Trades, long FromNs, long ToNs);

/// <summary>
/// A compute price index per GPU class: the volume-weighted average price of the trades of the last
/// <see cref="WindowNs"/> (default 24 h) across all regions, kept exactly with Int128 sums over a sliding window.
/// <para>
/// Which instruments count is decided by the mapping given to the constructor (instrument id → GPU class key, null
/// for none). The intended choice is hourly spot and daily forwards: both deliver within about a day, so they price
/// the same thing as a 24-hour window. Monthly forwards (a term premium, and large lots that would swamp a day's spot
/// volume) and non-GPU instruments (e.g. node share tokens) should map to null. Normalisation per GPU-hour needs no
/// arithmetic here: every exchange instrument is priced in micro-USD per GPU-hour and sized in GPU-hours, so a daily
/// forward of 8 GPUs × 24 h is one trade of 192 GPU-hours at its per-GPU-hour price, weighted by those 192 GPU-hours.
/// The mapping is asked once per instrument and cached: it must not change its answer.
/// </para>
/// <para>
/// Window and eviction: the window of a query at <c>now</c> is (now − window, now]. Trades with the same timestamp in
/// the same class share one entry of a per-class ring, so the window's sums change by one addition per trade and one
/// subtraction per evicted entry: O(1) amortized, never a rescan. Adding a trade evicts what is older than its own
/// window; a query evicts what is older than its now's window and subtracts, without evicting, entries newer than its
/// now (none when now is at or after the last trade). Evicting is for good, so the index keeps a horizon (the latest cutoff
/// applied) and answers exactly for (max(now − window, newest timestamp gone), now], saying so in
/// <see cref="PriceIndexValue.FromNs"/>. A trade arriving with a timestamp at or before the horizon (possible only
/// after a query with a later now) is outside every window the index can still answer for, and is not kept.
/// </para>
/// <para>
/// Memory: each class's ring grows by doubling up to the per-class maximum of distinct timestamps; beyond it the
/// oldest timestamp is dropped early (and the horizon moves up to it). Once the ring has grown to the steady window,
/// adding a trade allocates nothing. Timestamps must not decrease within a GPU class (a single sequencer stamps all
/// trades): an older one throws <see cref="ArgumentException"/>.
/// </para>
/// Not thread-safe: the exchange sequencer is the only writer, and queries evict, so they run on its thread too
/// (see <see cref="MarketDataHub"/>).
/// </summary>
public sealed class PriceIndex
{
    /// <summary>24 hours in nanoseconds.</summary>
    public const long DefaultWindowNs = 24 * 3_600_000_000_000L;

    /// <summary>Default cap on the distinct trade timestamps kept per class (about one every 82 ms over 24 h).</summary>
    public const int DefaultMaxEntriesPerClass = 1 << 20;

    private const int InitialEntries = 64;

    private readonly Func<int, string?> _gpuClassOf;
    private readonly int _maxEntries;
    // Instrument id → class slot, or -1 for an instrument the index ignores; filled on first sight so the mapping
    // delegate (which may allocate, e.g. to format a key) runs once per instrument, never on the steady-state path.
    private readonly Dictionary<int, int> _slotOfInstrument = new();
    private readonly Dictionary<string, int> _slotOfClass = new(StringComparer.Ordinal);
    private readonly List<ClassWindow> _windows = new();

    /// <summary>Creates an empty index.</summary>
    /// <param name="gpuClassOf">Instrument id → GPU class key (compared ordinally), or null/empty for instruments not in the index.</param>
    /// <param name="windowNs">Trailing window in nanoseconds.</param>
    /// <param name="maxEntriesPerClass">Most distinct trade timestamps kept per class.</param>
    public PriceIndex(Func<int, string?> gpuClassOf, long windowNs = DefaultWindowNs, int maxEntriesPerClass = DefaultMaxEntriesPerClass)
    {
        ArgumentNullException.ThrowIfNull(gpuClassOf);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(windowNs);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxEntriesPerClass);
        _gpuClassOf = gpuClassOf;
        WindowNs = windowNs;
        _maxEntries = maxEntriesPerClass;
    }

    /// <summary>The trailing window, nanoseconds.</summary>
    public long WindowNs { get; }

    /// <summary>The GPU classes that have had at least one trade.</summary>
    public IEnumerable<string> GpuClasses => _slotOfClass.Keys;

    /// <summary>Adds a trade to its GPU class's window (or ignores it when its instrument maps to no class).</summary>
    /// <exception cref="ArgumentException">The timestamp is older than the class's last trade, or price/quantity/timestamp are invalid.</exception>
    /// <exception cref="OverflowException">The window's sums would overflow (checked before evicting, so conservatively).</exception>
    public void Add(in Trade trade)
    {
        Validate(in trade);
        Apply(in trade);
    }

    /// <summary>Throws what <see cref="Add"/> would throw, changing nothing the queries can see.</summary>
    internal void Validate(in Trade trade)
    {
        TradeGuard.CheckValues(in trade);
        int slot = SlotOf(trade.Instrument); // caching the mapping is invisible to queries
        if (slot < 0) return;
        ClassWindow w = _windows[slot];
        if (trade.Timestamp < w.LastTs)
            throw new ArgumentException(
                $"Trade {trade.Sequence} at {trade.Timestamp} ns is older than the last trade of GPU class '{w.GpuClass}' ({w.LastTs} ns); trades must arrive in time order.",
                nameof(trade));
        _ = checked(w.Volume + trade.Quantity);
        _ = checked(w.Notional + (Int128)trade.Price * trade.Quantity);
    }

    /// <summary>Adds a trade that <see cref="Validate"/> accepted.</summary>
    internal void Apply(in Trade trade)
    {
        int slot = SlotOf(trade.Instrument);
        if (slot < 0) return;
        ClassWindow w = _windows[slot];
        long ts = trade.Timestamp;
        // Evicting on add keeps the ring at the window's size even for a class nobody queries.
        w.EvictThrough(TradeGuard.SaturatingSubtract(ts, WindowNs));
        w.LastTs = ts;
        if (ts <= w.Horizon)
        {
            w.Gone(ts); // see the class summary: no window the index can still answer for contains it
            return;
        }
        w.Add(ts, (Int128)trade.Price * trade.Quantity, trade.Quantity, _maxEntries);
    }

    /// <summary>
    /// The index of <paramref name="gpuClass"/> over (<paramref name="nowNs"/> − <see cref="WindowNs"/>, <paramref name="nowNs"/>],
    /// or null when the class had no trade in that window. Evicts the class's entries older than the window.
    /// </summary>
    public PriceIndexValue? Get(string gpuClass, long nowNs) => TryGet(gpuClass, nowNs, out PriceIndexValue v) ? v : null;

    /// <summary>As <see cref="Get"/>, without a nullable: false when the class had no trade in the window.</summary>
    public bool TryGet(string gpuClass, long nowNs, out PriceIndexValue value)
    {
        ArgumentNullException.ThrowIfNull(gpuClass);
        value = default;
        if (!_slotOfClass.TryGetValue(gpuClass, out int slot)) return false;
        ClassWindow w = _windows[slot];
        w.EvictThrough(TradeGuard.SaturatingSubtract(nowNs, WindowNs));

        Int128 notional = w.Notional;
        long volume = w.Volume, trades = w.Trades;
        // Entries after `now` stay (a later query needs them); they are only left out of this answer.
        for (int i = w.Count - 1; i >= 0; i--)
        {
            ref readonly Entry e = ref w.At(i);
            if (e.Ts <= nowNs) break;
            notional -= e.Notional;
            volume -= e.Volume;
            trades -= e.Trades;
        }
        if (trades == 0) return false;
        long from = Math.Max(TradeGuard.SaturatingSubtract(nowNs, WindowNs), w.GoneThrough);
        value = new PriceIndexValue(RoundHalfAwayFromZero(notional, volume), volume, trades, from, nowNs);
        return true;
    }

    /// <summary>
    /// <paramref name="numerator"/> / <paramref name="denominator"/> rounded half away from zero, exactly in 128 bits: the
    /// rounding of every VWAP here. <paramref name="denominator"/> must be positive.
    /// </summary>
    /// <exception cref="OverflowException">The rounded quotient does not fit a long.</exception>
    public static long RoundHalfAwayFromZero(Int128 numerator, long denominator)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(denominator);
        (Int128 q, Int128 r) = Int128.DivRem(numerator, denominator);
        // |r| ≥ d/2 ⇔ 2|r| ≥ d, done in 128 bits so it cannot overflow.
        if (2 * Int128.Abs(r) >= denominator) q += Int128.Sign(numerator);
        return checked((long)q);
    }

    private int SlotOf(int instrument)
    {
        if (_slotOfInstrument.TryGetValue(instrument, out int slot)) return slot;
        string? gpuClass = _gpuClassOf(instrument);
        if (string.IsNullOrEmpty(gpuClass)) slot = -1;
        else if (!_slotOfClass.TryGetValue(gpuClass, out slot))
        {
            slot = _windows.Count;
            _windows.Add(new ClassWindow(gpuClass, Math.Min(InitialEntries, _maxEntries)));
            _slotOfClass.Add(gpuClass, slot);
        }
        _slotOfInstrument.Add(instrument, slot);
        return slot;
    }

    /// <summary>All trades of one class at one timestamp.</summary>
    private struct Entry
    {
        public long Ts;
        public Int128 Notional;
        public long Volume;
        public long Trades;
    }

    /// <summary>
    /// One class's window: a ring of entries in strictly increasing timestamp and the running sums over them.
    /// Invariants: every entry's timestamp is above <see cref="Horizon"/> and <see cref="GoneThrough"/>; every trade
    /// added with a timestamp above <see cref="GoneThrough"/> is in the ring.
    /// </summary>
    private sealed class ClassWindow(string gpuClass, int initialEntries)
    {
        private Entry[] _ring = new Entry[initialEntries];
        private int _head; // index of the oldest entry

        public string GpuClass { get; } = gpuClass;
        public int Count { get; private set; }
        public Int128 Notional { get; private set; }
        public long Volume { get; private set; }
        public long Trades { get; private set; }
        /// <summary>Timestamp of the last trade added (for the ordering check).</summary>
        public long LastTs { get; set; } = long.MinValue;
        /// <summary>Everything at or before it has been evicted for good.</summary>
        public long Horizon { get; private set; } = long.MinValue;
        /// <summary>The newest timestamp of a trade evicted or not kept: windows reaching back past it are incomplete.</summary>
        public long GoneThrough { get; private set; } = long.MinValue;

        /// <summary>Records a trade that is not kept.</summary>
        public void Gone(long ts) => GoneThrough = Math.Max(GoneThrough, ts);

        /// <summary>The i-th oldest entry.</summary>
        public ref Entry At(int i)
        {
            int j = _head + i;
            return ref _ring[j >= _ring.Length ? j - _ring.Length : j];
        }

        /// <summary>Evicts entries with a timestamp ≤ <paramref name="cutoff"/> and raises the horizon to it.</summary>
        public void EvictThrough(long cutoff)
        {
            if (cutoff <= Horizon) return;
            while (Count > 0 && _ring[_head].Ts <= cutoff) RemoveOldest();
            Horizon = cutoff;
        }

        public void Add(long ts, Int128 notional, long volume, int maxEntries)
        {
            if (Count > 0 && At(Count - 1).Ts == ts)
            {
                ref Entry last = ref At(Count - 1);
                last.Notional += notional;
                last.Volume += volume;
                last.Trades++;
            }
            else
            {
                if (Count == _ring.Length)
                {
                    if (_ring.Length < maxEntries) Grow(maxEntries);
                    else
                    {
                        // At the memory cap: give up the oldest timestamp early; the horizon tells queries so.
                        Horizon = _ring[_head].Ts;
                        RemoveOldest();
                    }
                }
                int tail = _head + Count;
                _ring[tail >= _ring.Length ? tail - _ring.Length : tail] = new Entry { Ts = ts, Notional = notional, Volume = volume, Trades = 1 };
                Count++;
            }
            Notional = checked(Notional + notional);
            Volume = checked(Volume + volume);
            Trades++;
        }

        private void RemoveOldest()
        {
            ref Entry e = ref _ring[_head];
            Gone(e.Ts);
            Notional -= e.Notional;
            Volume -= e.Volume;
            Trades -= e.Trades;
            e = default;
            _head = _head + 1 == _ring.Length ? 0 : _head + 1;
            Count--;
        }

        private void Grow(int maxEntries)
        {
            var bigger = new Entry[(int)Math.Min((long)_ring.Length * 2, maxEntries)];
            for (int i = 0; i < Count; i++) bigger[i] = At(i);
            _ring = bigger;
            _head = 0;
        }
    }
}
