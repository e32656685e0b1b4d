using ComputeGrid.Exchange.MarketData;
using ComputeGrid.Exchange.Matching;
using CsCheck;

namespace ComputeGrid.Exchange.Tests;

public class MarketDataTests
{
    private const long Minute = CandleIntervals.MinuteNs;
    private const long Hour = CandleIntervals.HourNs;
    private const long Day = CandleIntervals.DayNs;

    private static Trade T(int instrument, long price, long qty, long ts, long seq) => new(instrument, price, qty, ts, Side.Buy, seq);

    // ---------------------------------------------------------------- generators

    /// <summary>One step of a trade stream: instrument, gap since the previous trade, price, quantity.</summary>
    private static readonly Gen<(int Instrument, long Gap, long Price, long Qty)> Step =
        Gen.Select(
            Gen.Int[0, 5],
            // Mostly small gaps (many trades per minute, equal timestamps too), sometimes hours or days, so every
            // interval rolls over and the small rings wrap.
            Gen.Frequency((3, Gen.Long[0, 20_000_000_000L]), (2, Gen.Const(0L)), (2, Gen.Long[0, 2 * Hour]), (1, Gen.Long[0, 3 * Day])),
            Gen.Long[1, 1_000_000_000L], // up to $1,000 per GPU-hour
            Gen.Long[1, 1_000_000L]);   // so a day's notional stays far inside a long

    private static Trade[] Build(long start, (int Instrument, long Gap, long Price, long Qty)[] steps)
    {
        var trades = new Trade[steps.Length];
        long ts = start;
        for (int i = 0; i < steps.Length; i++)
        {
            ts += steps[i].Gap;
            trades[i] = new Trade(steps[i].Instrument, steps[i].Price, steps[i].Qty, ts, (Side)(i & 1), i + 1);
        }
        return trades;
    }

    // ---------------------------------------------------------------- candles

    /// <summary>The plain recomputation: group the trades by bucket, in arrival order, keep the last `capacity` buckets.</summary>
    private static List<Candle> NaiveCandles(IEnumerable<Trade> trades, int instrument, long length, int capacity) =>
        trades.Where(t => t.Instrument == instrument)
            .GroupBy(t => t.Timestamp / length) // GroupBy keeps first-seen order; timestamps never decrease
            .Select(g => new Candle(
                g.Key * length, g.First().Price, g.Max(t => t.Price), g.Min(t => t.Price), g.Last().Price,
                g.Sum(t => t.Quantity), g.Sum(t => t.Price * t.Quantity), g.Count()))
            .TakeLast(capacity)
            .ToList();

    [Fact]
    public void Candles_equal_a_plain_recomputation_from_the_trades() =>
        Gen.Select(Gen.Long[0, 4_000_000_000_000_000_000L], Step.Array[0, 400], Gen.Int[0, 400].Array[6])
        .Sample((start, steps, query) =>
        {
            Trade[] trades = Build(start, steps);
            int[] caps = [7, 5, 3]; // small, so the rings wrap
            var candles = new Candles(caps[0], caps[1], caps[2]);
            foreach (Trade t in trades) candles.Append(t);

            foreach (CandleInterval iv in CandleIntervals.All)
            {
                long len = iv.Nanoseconds();
                for (int instrument = 0; instrument <= 5; instrument++)
                {
                    List<Candle> expected = NaiveCandles(trades, instrument, len, candles.Capacity(iv));
                    Assert.Equal(expected, candles.Get(instrument, iv, long.MinValue, long.MaxValue, int.MaxValue));
                    Assert.Equal(expected.Count > 0, candles.TryGetLatest(instrument, iv, out Candle latest));
                    if (expected.Count > 0) Assert.Equal(expected[^1], latest);

                    // A random range [from, to) and limit: the newest `limit` candles whose open time is in range.
                    long from = start + query[0] * (len / 4) - query[1] * (len / 8);
                    long to = from + query[2] * (len / 3);
                    int limit = query[3] % 6;
                    Assert.Equal(
                        expected.Where(c => c.OpenTimeNs >= from && c.OpenTimeNs < to).TakeLast(limit),
                        candles.Get(instrument, iv, from, to, limit));
                    var buffer = new Candle[limit];
                    int n = candles.Get(instrument, iv, from, to, buffer);
                    Assert.Equal(candles.Get(instrument, iv, from, to, limit), buffer[..n]);
                }
            }
        });

    [Fact]
    public void Candles_skip_empty_buckets_and_bucket_by_floor()
    {
        var candles = new Candles();
        candles.Append(T(1, 100, 2, 5 * Minute + 1, 1));
        candles.Append(T(1, 300, 1, 5 * Minute + 59_999_999_999, 2)); // last ns of the same minute
        candles.Append(T(1, 200, 4, 9 * Minute, 3));                   // first ns of minute 9; 6..8 stay empty
        Candle[] got = candles.Get(1, CandleInterval.OneMinute, 0, long.MaxValue, 10);
        Assert.Equal(
            new[] { new Candle(5 * Minute, 100, 300, 100, 300, 3, 500, 2), new Candle(9 * Minute, 200, 200, 200, 200, 4, 800, 1) },
            got);
        Assert.Equal(new[] { new Candle(0, 100, 300, 100, 200, 7, 1300, 3) }, candles.Get(1, CandleInterval.OneDay, 0, long.MaxValue, 10));
        Assert.Empty(candles.Get(2, CandleInterval.OneHour, 0, long.MaxValue, 10));
    }

    [Fact]
    public void Candles_reject_a_trade_older_than_the_current_bucket_and_accept_one_inside_it()
    {
        var candles = new Candles();
        candles.Append(T(1, 100, 1, 10 * Minute + 30_000_000_000, 1));
        // Older, but inside the current minute: accepted, and the close follows arrival order.
        candles.Append(T(1, 110, 1, 10 * Minute + 10_000_000_000, 2));
        Assert.True(candles.TryGetLatest(1, CandleInterval.OneMinute, out Candle c));
        Assert.Equal(110, c.Close);
        // In the previous minute: out of order.
        Assert.Throws<ArgumentException>(() => candles.Append(T(1, 120, 1, 10 * Minute - 1, 3)));
        Assert.True(candles.TryGetLatest(1, CandleInterval.OneMinute, out Candle after));
        Assert.Equal(c, after);
        Assert.Equal(2, after.TradeCount);
        // Another instrument has its own current bucket.
        candles.Append(T(2, 120, 1, Minute, 4));
    }

    // ---------------------------------------------------------------- price index

    private static string? ClassOf(int instrument) => instrument switch
    {
        0 or 1 or 2 => "H100", // e.g. hourly spot in three regions
        3 or 4 => "A100",
        _ => null,             // not in the index (a monthly forward, a node share token)
    };

    private static long NaiveVwap(IEnumerable<Trade> trades)
    {
        // An independent exact computation: decimal division, rounded half away from zero.
        decimal notional = trades.Sum(t => (decimal)t.Price * t.Quantity);
        decimal volume = trades.Sum(t => (decimal)t.Quantity);
        return (long)Math.Round(notional / volume, MidpointRounding.AwayFromZero);
    }

    [Fact]
    public void Index_vwap_is_exact_over_the_window() =>
        Gen.Select(
            Gen.Select(Gen.Int[0, 5], Gen.Frequency((3, Gen.Long[0, 400]), (1, Gen.Const(0L)), (1, Gen.Long[0, 3000])),
                Gen.Long[1, 1_000_000_000_000L], Gen.Long[1, 1_000_000L]).Array[0, 300],
            // Per step: query after it? for which class? at what offset from the last trade (also in the past)?
            Gen.Select(Gen.Int[0, 3], Gen.Bool, Gen.Long[-1500, 1500]).Array[300])
        .Sample((steps, queries) =>
        {
            const long window = 1000;
            var index = new PriceIndex(ClassOf, window);
            var all = new List<Trade>();
            // The model of what the index can still see, per class: the latest cutoff applied (a trade at or before
            // it is not kept), the trades it holds, and the newest timestamp gone (evicted or not kept).
            var horizon = new Dictionary<string, long> { ["H100"] = long.MinValue, ["A100"] = long.MinValue };
            var gone = new Dictionary<string, long> { ["H100"] = long.MinValue, ["A100"] = long.MinValue };
            var kept = new Dictionary<string, List<Trade>> { ["H100"] = [], ["A100"] = [] };
            var lastQuery = new Dictionary<string, long> { ["H100"] = long.MinValue, ["A100"] = long.MinValue };
            void Cut(string cls, long cutoff)
            {
                horizon[cls] = Math.Max(horizon[cls], cutoff);
                foreach (Trade t in kept[cls].Where(t => t.Timestamp <= cutoff)) gone[cls] = Math.Max(gone[cls], t.Timestamp);
                kept[cls].RemoveAll(t => t.Timestamp <= cutoff);
            }
            long ts = 1_000_000;
            for (int i = 0; i < steps.Length; i++)
            {
                var (instrument, gap, price, qty) = steps[i];
                ts += gap;
                var trade = new Trade(instrument, price, qty, ts, Side.Sell, i + 1);
                index.Add(trade);
                all.Add(trade);
                if (ClassOf(instrument) is string cls)
                {
                    Cut(cls, ts - window);
                    if (ts > horizon[cls]) kept[cls].Add(trade);
                    else gone[cls] = Math.Max(gone[cls], ts);
                }

                var (ask, h100, offset) = queries[i];
                if (ask != 0) continue;
                string gpu = h100 ? "H100" : "A100";
                long now = Math.Max(0, ts + offset);
                PriceIndexValue? got = index.Get(gpu, now);
                if (all.All(t => ClassOf(t.Instrument) != gpu)) { Assert.Null(got); continue; }
                Cut(gpu, now - window);
                long from = Math.Max(now - window, gone[gpu]);
                var inWindow = kept[gpu].Where(t => t.Timestamp > from && t.Timestamp <= now).ToList();
                if (inWindow.Count == 0) Assert.Null(got);
                else Assert.Equal(new PriceIndexValue(NaiveVwap(inWindow), inWindow.Sum(t => t.Quantity), inWindow.Count, from, now), got);

                // Model-free: a query at or after the last trade and every earlier query sees exactly (now − window, now].
                if (now >= ts && now >= lastQuery[gpu])
                {
                    var plain = all.Where(t => ClassOf(t.Instrument) == gpu && t.Timestamp > now - window && t.Timestamp <= now).ToList();
                    Assert.Equal(plain.Count == 0 ? null : new PriceIndexValue(NaiveVwap(plain), plain.Sum(t => t.Quantity), plain.Count, now - window, now), got);
                }
                lastQuery[gpu] = Math.Max(lastQuery[gpu], now);
            }
        });

    [Fact]
    public void Index_rounds_half_away_from_zero()
    {
        var index = new PriceIndex(_ => "H100", 1000);
        index.Add(T(1, 1, 1, 10, 1));
        index.Add(T(1, 2, 1, 11, 2));
        Assert.Equal(2, index.Get("H100", 11)!.Value.Vwap); // 3/2 = 1.5 → 2
        index.Add(T(1, 1, 1, 12, 3));
        Assert.Equal(1, index.Get("H100", 12)!.Value.Vwap); // 4/3 → 1
        index.Add(T(1, 4, 1, 13, 4));
        Assert.Equal(2, index.Get("H100", 13)!.Value.Vwap); // 8/4 = 2
        Assert.Equal(1, PriceIndex.RoundHalfAwayFromZero(5, 4));
        Assert.Equal(2, PriceIndex.RoundHalfAwayFromZero(6, 4));
        Assert.Equal(-2, PriceIndex.RoundHalfAwayFromZero(-6, 4));
        // Far beyond a long in the intermediate sum, exact in Int128.
        Int128 big = (Int128)long.MaxValue * 1_000_000 + 500_000;
        Assert.Equal(long.MaxValue, PriceIndex.RoundHalfAwayFromZero(big - 1, 1_000_000));
    }

    [Fact]
    public void Index_window_evicts_exactly_at_the_boundary()
    {
        const long window = 1000;
        var index = new PriceIndex(_ => "H100", window);
        index.Add(T(1, 100, 1, 5000, 1));
        // (now − window, now]: a trade exactly `window` old is out, one ns younger is in.
        Assert.Equal(new PriceIndexValue(100, 1, 1, 4999, 5999), index.Get("H100", 5999));
        Assert.Null(index.Get("H100", 6000));

        var second = new PriceIndex(_ => "H100", window);
        second.Add(T(1, 100, 1, 5000, 1));
        second.Add(T(1, 200, 3, 5500, 2));
        Assert.Equal(new PriceIndexValue(175, 4, 2, 4999, 5999), second.Get("H100", 5999));
        Assert.Equal(new PriceIndexValue(200, 3, 1, 5000, 6000), second.Get("H100", 6000));
        Assert.Equal(new PriceIndexValue(200, 3, 1, 5499, 6499), second.Get("H100", 6499));
        Assert.Null(second.Get("H100", 6500));
        // A query in the past cannot bring back what was evicted: the window it reports starts later.
        Assert.Null(second.Get("H100", 5999));
        Assert.Null(second.Get("no such class", 5999));
    }

    [Fact]
    public void Index_query_before_the_last_trade_leaves_newer_trades_out_but_keeps_them()
    {
        var index = new PriceIndex(_ => "H100", 1000);
        index.Add(T(1, 100, 1, 5000, 1));
        index.Add(T(1, 300, 1, 5100, 2));
        Assert.Equal(new PriceIndexValue(100, 1, 1, 4050, 5050), index.Get("H100", 5050));
        Assert.Equal(new PriceIndexValue(200, 2, 2, 4100, 5100), index.Get("H100", 5100));
    }

    [Fact]
    public void Index_at_its_memory_cap_drops_the_oldest_timestamp_and_says_so()
    {
        var index = new PriceIndex(_ => "H100", 1_000_000, maxEntriesPerClass: 4);
        for (int i = 0; i < 6; i++) index.Add(T(1, 100 + i, 1, 1000 + i * 10, i + 1));
        index.Add(T(1, 105, 1, 1050, 7)); // same timestamp as the last: shares its entry, drops nothing
        // Entries at 1020, 1030, 1040, 1050 remain; 1000 and 1010 were dropped, so the window starts after 1010.
        Assert.Equal(new PriceIndexValue(104, 5, 5, 1010, 2000), index.Get("H100", 2000));
    }

    [Fact]
    public void Index_maps_instruments_to_classes_once_and_ignores_unmapped_ones()
    {
        int calls = 0;
        var index = new PriceIndex(i => { calls++; return ClassOf(i); }, 1000);
        index.Add(T(1, 100, 1, 10, 1));
        index.Add(T(2, 300, 1, 11, 2));
        index.Add(T(3, 50, 1, 12, 3));
        index.Add(T(9, 1, 1, 13, 4)); // not a GPU instrument
        index.Add(T(1, 100, 1, 14, 5));
        index.Add(T(9, 1, 1, 15, 6));
        Assert.Equal(4, calls);
        Assert.Equal(new PriceIndexValue(167, 3, 3, -985, 15), index.Get("H100", 15));
        Assert.Equal(50, index.Get("A100", 15)!.Value.Vwap);
        Assert.Equal(new[] { "A100", "H100" }, index.GpuClasses.Order());
    }

    [Fact]
    public void Index_rejects_a_trade_older_than_its_class_last_trade()
    {
        var index = new PriceIndex(ClassOf, 1000);
        index.Add(T(1, 100, 1, 500, 1));
        Assert.Throws<ArgumentException>(() => index.Add(T(2, 100, 1, 499, 2))); // same class, other region
        index.Add(T(3, 100, 1, 499, 3));                                        // another class: its own clock
        index.Add(T(9, 100, 1, 1, 4));                                          // not indexed: not checked
        Assert.Equal(1, index.Get("H100", 600)!.Value.Trades);
    }

    // ---------------------------------------------------------------- trade tape

    [Fact]
    public void Tape_ring_wraps_and_returns_newest_first()
    {
        var tape = new TradeTape(maxInstruments: 4, tradesPerInstrument: 3, feedCapacity: 5);
        for (int s = 1; s <= 8; s++) tape.Append(T(7, 100 + s, 1, s, s));
        tape.Append(T(-9, 500, 1, 9, 9));
        tape.Append(T(-9, 501, 1, 10, 10));

        Assert.Equal(new long[] { 8, 7, 6 }, tape.Recent(7, 10).Select(t => t.Sequence));
        Assert.Equal(new long[] { 8, 7 }, tape.Recent(7, 2).Select(t => t.Sequence));
        Assert.Equal(new long[] { 10, 9 }, tape.Recent(-9, 5).Select(t => t.Sequence));
        Assert.Empty(tape.Recent(1, 5));
        Assert.Equal(3, tape.Count(7));
        Span<Trade> buffer = stackalloc Trade[2];
        Assert.Equal(2, tape.Recent(7, buffer));
        Assert.Equal(108, buffer[0].Price);

        // The feed ring holds 6..10.
        Assert.Equal(6, tape.OldestFeedSequence);
        TapeCatchUp all = tape.Since(0);
        Assert.True(all.Gap);
        Assert.Equal(new long[] { 6, 7, 8, 9, 10 }, all.Trades.Select(t => t.Sequence));
        TapeCatchUp exact = tape.Since(5);
        Assert.False(exact.Gap);
        Assert.Equal(5, exact.Trades.Length);
        TapeCatchUp page = tape.Since(7, limit: 2);
        Assert.Equal(new long[] { 8, 9 }, page.Trades.Select(t => t.Sequence));
        Assert.True(page.HasMore);
        Assert.False(page.Gap);
        TapeCatchUp none = tape.Since(10);
        Assert.Empty(none.Trades);
        Assert.False(none.HasMore || none.Gap);
    }

    [Fact]
    public void Tape_equals_a_plain_model() =>
        Gen.Select(Gen.Int[0, 3].Array[0, 200], Gen.Int[1, 6], Gen.Int[1, 20], Gen.Long[-1, 210])
        .Sample((instruments, perInstrument, feed, since) =>
        {
            var tape = new TradeTape(4, perInstrument, feed);
            var trades = instruments.Select((inst, i) => T(inst, 1 + i, 1, i, i + 1)).ToArray();
            foreach (Trade t in trades) tape.Append(t);
            for (int inst = 0; inst <= 3; inst++)
                Assert.Equal(trades.Where(t => t.Instrument == inst).Reverse().Take(perInstrument), tape.Recent(inst, int.MaxValue));
            Trade[] inFeed = trades.TakeLast(feed).ToArray();
            TapeCatchUp got = tape.Since(since);
            Assert.Equal(inFeed.Where(t => t.Sequence > since), got.Trades);
            Assert.Equal(trades.Any(t => t.Sequence > since && !inFeed.Contains(t)), got.Gap);
            Assert.False(got.HasMore);
        });

    [Fact]
    public void Tape_rejects_a_repeated_sequence_and_too_many_instruments()
    {
        var tape = new TradeTape(2, 4, 4);
        tape.Append(T(1, 100, 1, 0, 5));
        Assert.Throws<ArgumentException>(() => tape.Append(T(1, 100, 1, 0, 5)));
        Assert.Throws<ArgumentException>(() => tape.Append(T(1, 100, 1, 0, 4)));
        Assert.Throws<ArgumentException>(() => tape.Append(T(1, 0, 1, 0, 6)));
        tape.Append(T(2, 100, 1, 0, 6));
        Assert.Throws<InvalidOperationException>(() => tape.Append(T(3, 100, 1, 0, 7)));
        tape.Append(T(1, 100, 1, 0, 7));
        Assert.Equal(7, tape.LastSequence);
    }

    // ---------------------------------------------------------------- hub

    [Fact]
    public void Hub_feeds_all_three_and_an_out_of_order_trade_changes_nothing()
    {
        var hub = new MarketDataHub(ClassOf, new MarketDataOptions { MaxInstruments = 8, TradesPerInstrument = 8, FeedCapacity = 16 });
        hub.OnTrade(T(1, 2_000_000, 8, 10 * Minute, 1));
        hub.OnTrade(T(2, 2_500_000, 2, 10 * Minute + 5, 2));
        Assert.Equal(2, hub.Tape.LastSequence);
        Assert.True(hub.Candles.TryGetLatest(2, CandleInterval.OneHour, out Candle c));
        Assert.Equal(5_000_000, c.Notional);
        Assert.Equal(new PriceIndexValue(2_100_000, 10, 2, 10 * Minute + 5 - Day, 10 * Minute + 5), hub.Index.Get("H100", 10 * Minute + 5));

        // Older than the current minute of instrument 1: candles refuse it, so nobody takes it.
        Assert.Throws<ArgumentException>(() => hub.OnTrade(T(1, 1, 1, 10 * Minute - 1, 3)));
        // Same minute, but older than the H100 class's last trade: the index refuses it, so nobody takes it.
        Assert.Throws<ArgumentException>(() => hub.OnTrade(T(1, 1, 1, 10 * Minute + 1, 3)));
        Assert.Equal(2, hub.Tape.LastSequence);
        Assert.Equal(1, hub.Tape.Count(1));
        Assert.True(hub.Candles.TryGetLatest(1, CandleInterval.OneMinute, out Candle c1));
        Assert.Equal(1, c1.TradeCount);
        Assert.Equal(2, hub.Index.Get("H100", 10 * Minute + 5)!.Value.Trades);

        hub.OnTrades([T(5, 7, 1, 11 * Minute, 3), T(9, 7, 1, 11 * Minute, 4)]);
        Assert.Equal(4, hub.Tape.LastSequence);
    }

    [Fact]
    public void Steady_state_trades_allocate_nothing()
    {
        var options = new MarketDataOptions
        {
            MaxInstruments = 8, TradesPerInstrument = 16, FeedCapacity = 64,
            MinuteCandles = 10, HourCandles = 5, DayCandles = 3, IndexWindowNs = 10 * Minute,
        };
        var rng = new Random(11);
        const int n = 40_000;
        // 7 s apart: minute candles roll every few trades, hours and days over the run; the index window holds ~86.
        Trade[] trades = Enumerable.Range(0, 2 * n)
            .Select(i => new Trade(rng.Next(0, 6), rng.Next(1, 5_000_000), rng.Next(1, 1000), i * 7_000_000_000L, (Side)(i & 1), i + 1))
            .ToArray();

        var hub = new MarketDataHub(ClassOf, options);
        var tape = new TradeTape(options.MaxInstruments, options.TradesPerInstrument, options.FeedCapacity);
        var candles = new Candles(options.MinuteCandles, options.HourCandles, options.DayCandles);
        var index = new PriceIndex(ClassOf, options.IndexWindowNs);
        Span<Trade> recent = stackalloc Trade[8];
        Span<Candle> bars = stackalloc Candle[8];
        long sink = 0;

        void Run(int from, int to, ref long sink, Span<Trade> recent, Span<Candle> bars)
        {
            for (int i = from; i < to; i++)
            {
                hub.OnTrade(trades[i]);
                tape.Append(trades[i]);
                candles.Append(trades[i]);
                index.Add(trades[i]);
                // The hot queries too: a span copy and a nullable struct, no heap.
                sink += tape.Recent(trades[i].Instrument, recent) + candles.Get(trades[i].Instrument, CandleInterval.OneMinute, 0, long.MaxValue, bars);
                sink += index.Get("H100", trades[i].Timestamp)?.Vwap ?? 0;
            }
        }

        Run(0, n, ref sink, recent, bars); // warm-up: JIT, one-time rings per instrument, the index rings grow to the window
        // Tiered compilation may still settle (and allocate once on this thread) after the warm-up: some window of
        // 4,000 trades must allocate nothing; an allocation per trade would show in every window.
        var windows = new List<long>();
        int at = n;
        for (; at + 4_000 <= 2 * n; at += 4_000)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            Run(at, at + 4_000, ref sink, recent, bars);
            windows.Add(GC.GetAllocatedBytesForCurrentThread() - before);
            if (windows[^1] == 0) { at += 4_000; break; }
            Thread.Sleep(50);
        }
        Assert.Contains(0L, windows);
        Assert.True(sink > 0);
        Assert.Equal(at, hub.Tape.LastSequence);
    }
}
