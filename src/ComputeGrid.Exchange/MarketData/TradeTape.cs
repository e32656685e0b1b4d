using ComputeGrid.Exchange.Matching;

namespace ComputeGrid.Exchange.MarketData;

/// <summary>The answer to <see cref="TradeTape.Since"/>: trades after a sequence number, oldest first.</summary>
/// <param name="Trades">Trades with a sequence greater than the one asked for, in sequence order.</param>
/// <param name="Gap">
/// True when some trades after the asked sequence were already evicted from the feed ring: the reader missed
/// them for good and must rebuild its view from a snapshot (e.g. <see cref="TradeTape.Recent(int, int)"/>).
/// </param>
/// <param name="HasMore">True when the limit cut the answer short: ask again from the last trade's sequence.</param>
public readonly record struct TapeCatchUp(Trade[] Trades, bool Gap, bool HasMore);

/// <summary>
/// The trade tape: a bounded ring of the most recent trades per instrument, plus one exchange-wide ring in
/// sequence order from which a live feed catches up (<see cref="Since"/>). All memory is allocated by the
/// constructor: appending never allocates, and the oldest trade is overwritten once a ring is full.
/// Instrument ids may be any int; at most <see cref="MaxInstruments"/> distinct ones are held.
/// Not thread-safe: the exchange sequencer is the only writer (see <see cref="MarketDataHub"/>).
/// </summary>
public sealed class TradeTape
{
    // All per-instrument rings live in one flat array (slot × capacity) so there is one allocation, not one per
    // instrument, and no object header or pointer chase per ring.
    private readonly Trade[] _trades;
    private readonly int[] _next;   // per slot: where the next trade is written
    private readonly int[] _count;  // per slot: how many trades the ring holds (≤ capacity)
    // Presized so that adding up to MaxInstruments ids never resizes it (no allocation on a new instrument).
    private readonly Dictionary<int, int> _slots;
    private readonly Stack<int> _freeSlots;
    private int _slotsUsed;

    // The exchange-wide ring, in strictly increasing sequence order (so Since can binary search it).
    private readonly Trade[] _feed;
    private int _feedNext;
    private int _feedCount;
    private long _lastEvicted = long.MinValue;

    /// <summary>Creates a tape with all its memory.</summary>
    /// <param name="maxInstruments">Most distinct instruments held.</param>
    /// <param name="tradesPerInstrument">Ring size per instrument.</param>
    /// <param name="feedCapacity">Ring size of the exchange-wide feed used by <see cref="Since"/>.</param>
    public TradeTape(int maxInstruments, int tradesPerInstrument, int feedCapacity)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxInstruments);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(tradesPerInstrument);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(feedCapacity);
        MaxInstruments = maxInstruments;
        TradesPerInstrument = tradesPerInstrument;
        FeedCapacity = feedCapacity;
        _trades = new Trade[checked(maxInstruments * tradesPerInstrument)];
        _next = new int[maxInstruments];
        _count = new int[maxInstruments];
        _slots = new Dictionary<int, int>(maxInstruments);
        _freeSlots = new Stack<int>(maxInstruments);
        _feed = new Trade[feedCapacity];
    }

    /// <summary>Most distinct instruments held.</summary>
    public int MaxInstruments { get; }

    /// <summary>Ring size per instrument.</summary>
    public int TradesPerInstrument { get; }

    /// <summary>Ring size of the exchange-wide feed.</summary>
    public int FeedCapacity { get; }

    /// <summary>Sequence of the last trade appended, or <see cref="long.MinValue"/> before the first.</summary>
    public long LastSequence { get; private set; } = long.MinValue;

    /// <summary>Sequence of the oldest trade still in the feed ring, or null when it is empty.</summary>
    public long? OldestFeedSequence => _feedCount == 0 ? null : _feed[FeedIndex(0)].Sequence;

    /// <summary>Appends a trade, overwriting the oldest one of its instrument (and of the feed) when full.</summary>
    /// <exception cref="ArgumentException">The sequence is not greater than the last one, or price/quantity/timestamp are invalid.</exception>
    /// <exception cref="InvalidOperationException">A new instrument beyond <see cref="MaxInstruments"/>.</exception>
    public void Append(in Trade trade)
    {
        Validate(in trade);
        Apply(in trade);
    }

    /// <summary>Throws what <see cref="Append"/> would throw, changing nothing.</summary>
    internal void Validate(in Trade trade)
    {
        TradeGuard.CheckValues(in trade);
        // Since() relies on the feed being sorted by sequence; a repeat or a step back is a sequencer bug.
        if (trade.Sequence <= LastSequence)
            throw new ArgumentException($"Trade sequence {trade.Sequence} is not after the last one ({LastSequence}).", nameof(trade));
        if (_slots.Count >= MaxInstruments && !_slots.ContainsKey(trade.Instrument))
            throw new InvalidOperationException($"The trade tape holds its maximum of {MaxInstruments} instruments; instrument {trade.Instrument} does not fit.");
    }

    /// <summary>Appends a trade that <see cref="Validate"/> accepted.</summary>
    internal void Apply(in Trade trade)
    {
        if (!_slots.TryGetValue(trade.Instrument, out int slot))
        {
            // A slot given up by a forgotten instrument is reused before a fresh one.
            slot = _freeSlots.Count > 0 ? _freeSlots.Pop() : _slotsUsed++;
            _slots.Add(trade.Instrument, slot);
        }
        int cap = TradesPerInstrument;
        _trades[slot * cap + _next[slot]] = trade;
        _next[slot] = _next[slot] + 1 == cap ? 0 : _next[slot] + 1;
        if (_count[slot] < cap) _count[slot]++;

        if (_feedCount == _feed.Length) _lastEvicted = _feed[_feedNext].Sequence; // the slot about to be overwritten is the oldest
        else _feedCount++;
        _feed[_feedNext] = trade;
        _feedNext = _feedNext + 1 == _feed.Length ? 0 : _feedNext + 1;
        LastSequence = trade.Sequence;
    }

    /// <summary>
    /// Drops an instrument's ring (its delivery is long over) so its slot serves a new instrument; the exchange-wide
    /// feed keeps its trades until they age out. Returns false when the tape holds nothing for it.
    /// </summary>
    public bool Forget(int instrument)
    {
        if (!_slots.Remove(instrument, out int slot)) return false;
        _next[slot] = 0;
        _count[slot] = 0;
        _freeSlots.Push(slot);
        return true;
    }

    /// <summary>How many trades the tape holds for an instrument (0 for one never seen).</summary>
    public int Count(int instrument) => _slots.TryGetValue(instrument, out int slot) ? _count[slot] : 0;

    /// <summary>Copies the instrument's most recent trades, newest first, into <paramref name="destination"/>; allocates nothing.</summary>
    /// <returns>How many were copied: the smaller of the destination's length and <see cref="Count"/>.</returns>
    public int Recent(int instrument, Span<Trade> destination)
    {
        if (!_slots.TryGetValue(instrument, out int slot)) return 0;
        int cap = TradesPerInstrument;
        int n = Math.Min(_count[slot], destination.Length);
        int i = _next[slot];
        ReadOnlySpan<Trade> ring = _trades.AsSpan(slot * cap, cap);
        for (int k = 0; k < n; k++)
        {
            i = i == 0 ? cap - 1 : i - 1;
            destination[k] = ring[i];
        }
        return n;
    }

    /// <summary>The instrument's most recent trades, newest first, at most <paramref name="limit"/>.</summary>
    public Trade[] Recent(int instrument, int limit)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(limit);
        var result = new Trade[Math.Min(limit, Count(instrument))];
        Recent(instrument, result);
        return result;
    }

    /// <summary>
    /// Trades with a sequence greater than <paramref name="sequence"/>, oldest first, at most <paramref name="limit"/>:
    /// what a live-feed subscriber missed since the last trade it saw. Read <see cref="TapeCatchUp.Gap"/>: the feed
    /// ring only reaches back <see cref="FeedCapacity"/> trades.
    /// </summary>
    public TapeCatchUp Since(long sequence, int limit = int.MaxValue)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(limit);
        // The feed is sorted by sequence: binary search the first trade after `sequence` (O(log n + k)).
        int lo = 0, hi = _feedCount;
        while (lo < hi)
        {
            int mid = lo + (hi - lo) / 2;
            if (_feed[FeedIndex(mid)].Sequence <= sequence) lo = mid + 1;
            else hi = mid;
        }
        int available = _feedCount - lo;
        int n = Math.Min(available, limit);
        var trades = new Trade[n];
        for (int k = 0; k < n; k++) trades[k] = _feed[FeedIndex(lo + k)];
        return new TapeCatchUp(trades, Gap: _lastEvicted > sequence, HasMore: available > n);
    }

    /// <summary>Physical index of the i-th oldest trade in the feed ring.</summary>
    private int FeedIndex(int i)
    {
        int j = _feedNext - _feedCount + i;
        return j < 0 ? j + _feed.Length : j;
    }
}
