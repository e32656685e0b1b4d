using ComputeGrid.Exchange.Matching;
using CsCheck;

namespace ComputeGrid.Exchange.Tests;

/// <summary>
/// The fast book against the reference book on random command streams: every order type, time in force,
/// post-only, self-trade, cancel, replace and expiry, valid and invalid. After every command: identical
/// events, identical resting orders and depth, and the fast book's invariants hold.
/// </summary>
public class MatchingDifferentialTests
{
    public static readonly PriceBand Band = new(100, 1100, 5); // 201 levels

    /// <summary>Decodes one command from small ints (so CsCheck shrinks failures to small streams).</summary>
    public static OrderCommand Decode(int[] v, ref long nextId, ref long now, List<long> ids)
    {
        now += v[0] % 4;
        var c = new OrderCommand { Timestamp = now, Owner = 1 + v[1] % 4, Side = (Side)(v[2] % 2) };
        int kind = v[3] % 20;
        if (kind < 12)
        {
            c.Kind = CommandKind.Place;
            c.OrderId = v[4] % 29 == 0 && ids.Count > 0 ? ids[v[5] % ids.Count] : v[4] % 31 == 0 ? 0 : ++nextId;
            c.Type = v[6] % 8 == 0 ? OrderType.Market : OrderType.Limit;
            c.TimeInForce = (TimeInForce)(v[7] % 4);
            c.PostOnly = v[8] % 9 == 0;
            // Prices cluster around the middle so books cross often; a few are off-band or off-tick.
            c.Price = v[9] % 37 == 0 ? 99 : v[9] % 41 == 0 ? 1105 : v[9] % 43 == 0 ? 602 : 600 + (v[9] % 21 - 10) * 5;
            c.Quantity = v[10] % 47 == 0 ? 0 : v[10] % 53 == 0 ? -3 : 1 + v[10] % 12;
            c.ExpiresAt = c.TimeInForce == TimeInForce.GoodTillTime ? now + (v[11] % 13) - 1 : 0;
            if (c.OrderId > 0) ids.Add(c.OrderId);
        }
        else if (kind < 16)
        {
            c.Kind = CommandKind.Cancel;
            c.OrderId = ids.Count > 0 && v[4] % 11 != 0 ? ids[v[5] % ids.Count] : 999_999;
        }
        else if (kind < 19)
        {
            c.Kind = CommandKind.Replace;
            c.OrderId = ids.Count > 0 ? ids[v[5] % ids.Count] : 1;
            c.Price = v[9] % 37 == 0 ? 97 : 600 + (v[9] % 21 - 10) * 5;
            c.Quantity = v[10] % 47 == 0 ? 0 : 1 + v[10] % 12;
        }
        else
        {
            c.Kind = CommandKind.Expire;
        }
        return c;
    }

    private static readonly Gen<int[][]> Stream = Gen.Int[0, 10_000].Array[12].Array[1, 300];

    [Fact]
    public void Fast_book_matches_the_reference_on_random_streams()
    {
        Stream.Sample(stream =>
        {
            // A small book, so a full book (BookFull) is part of what is compared.
            var fast = new OrderBook(Band, 24);
            var reference = new ReferenceOrderBook(Band, 24);
            long nextId = 0, now = 1_000;
            var ids = new List<long>();
            var depth = new DepthLevel[300];
            foreach (var v in stream)
            {
                var c = Decode(v, ref nextId, ref now, ids);
                var expected = reference.Apply(c);
                var actual = fast.Apply(in c).ToArray();
                Assert.Equal(expected, actual);
                fast.AssertInvariants();
                Assert.Equal(reference.Orders(), fast.Orders());
                foreach (var side in new[] { Side.Buy, Side.Sell })
                {
                    int n = fast.Depth(side, depth);
                    Assert.Equal(reference.Depth(side), depth.AsSpan(0, n).ToArray());
                }
                AssertFilledAtMostOrdered(actual, c);
            }
        }, iter: 1500, threads: 1);
    }

    /// <summary>A command never trades more than it asked for.</summary>
    private static void AssertFilledAtMostOrdered(MatchEvent[] events, OrderCommand c)
    {
        if (c.Kind != CommandKind.Place) return;
        long traded = events.Where(e => e.Kind == EventKind.Trade && e.OrderId == c.OrderId).Sum(e => e.Quantity);
        Assert.True(traded <= Math.Max(0, c.Quantity));
    }

    private struct CollectingSink : IMatchEventSink
    {
        public List<MatchEvent> Events;
        public void OnEvents(int index, ReadOnlySpan<MatchEvent> events) => Events.AddRange(events.ToArray());
    }

    [Fact]
    public void Batched_application_with_prefetch_equals_one_command_at_a_time()
    {
        Stream.Sample(stream =>
        {
            long nextId = 0, now = 1_000;
            var ids = new List<long>();
            var commands = stream.Select(v => Decode(v, ref nextId, ref now, ids)).ToArray();
            var one = new OrderBook(Band, 24);
            var expected = commands.SelectMany(c => one.Apply(in c).ToArray()).ToList();
            var batched = new OrderBook(Band, 24);
            var sink = new CollectingSink { Events = new List<MatchEvent>() };
            for (int i = 0; i < commands.Length; i += 7) batched.ApplyBatch(commands.AsSpan(i, Math.Min(7, commands.Length - i)), ref sink);
            Assert.Equal(expected, sink.Events);
            Assert.Equal(one.Orders(), batched.Orders());
        }, iter: 300, threads: 1);
    }

    [Fact]
    public void Matching_in_steady_state_allocates_nothing()
    {
        var stream = Enumerable.Range(0, 40_000).Select(i => new OrderCommand
        {
            Kind = i % 4 == 3 ? CommandKind.Cancel : CommandKind.Place, OrderId = i % 4 == 3 ? i - 2 : i + 1, Owner = 1 + i % 7,
            Side = (Side)(i % 2), Type = i % 10 == 0 ? OrderType.Market : OrderType.Limit, Price = 500 + (i * 37 % 40) * 5, Quantity = 1 + i % 9, Timestamp = 1000 + i,
        }).ToArray();
        var book = new OrderBook(Band, 4096);
        foreach (var c in stream.AsSpan(0, 4_000)) book.Apply(in c); // warm-up
        // Steady state is reached once tiered compilation has settled (its transitions may allocate on this thread
        // once): some window of 2,000 commands must allocate nothing at all. A per-order allocation would show in every window.
        var windows = new List<long>();
        for (int start = 4_000; start + 2_000 <= stream.Length; start += 2_000)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int i = start; i < start + 2_000; i++) book.Apply(in stream[i]);
            windows.Add(GC.GetAllocatedBytesForCurrentThread() - before);
            if (windows[^1] == 0) break;
            Thread.Sleep(50); // let the background compiler finish
        }
        Assert.Contains(0L, windows);
    }

    [Fact]
    public void Every_outcome_is_reached_by_the_generator()
    {
        var rejects = new HashSet<RejectReason>();
        var cancels = new HashSet<CancelReason>();
        var kinds = new HashSet<EventKind>();
        var rng = new Random(3);
        for (int s = 0; s < 400; s++)
        {
            var book = new OrderBook(Band, s % 2 == 0 ? 64 : 8);
            long nextId = 0, now = 1_000;
            var ids = new List<long>();
            for (int i = 0; i < 200; i++)
            {
                var v = Enumerable.Range(0, 12).Select(_ => rng.Next(0, 10_001)).ToArray();
                foreach (var e in book.Apply(Decode(v, ref nextId, ref now, ids)))
                {
                    kinds.Add(e.Kind);
                    rejects.Add(e.Reject);
                    cancels.Add(e.Reason);
                }
            }
        }
        Assert.Equal(Enum.GetValues<EventKind>().Length, kinds.Count);
        var missing = new[] { RejectReason.PostOnlyWouldTake, RejectReason.FillOrKillUnfillable, RejectReason.NoLiquidity, RejectReason.DuplicateOrderId,
                     RejectReason.UnknownOrder, RejectReason.NotOwner, RejectReason.PriceOutsideBand, RejectReason.PriceNotOnTick, RejectReason.QuantityMustBePositive,
                     RejectReason.ExpiryMustBeInTheFuture, RejectReason.MarketOrderMustBeImmediate, RejectReason.BookFull, RejectReason.InvalidCommand }.Except(rejects);
        Assert.Empty(missing);
        foreach (var r in new[] { CancelReason.UserCancel, CancelReason.Unfilled, CancelReason.SelfTrade, CancelReason.Expired, CancelReason.Replaced })
            Assert.Contains(r, cancels);
    }
}
