using System.Text;
using System.Text.Json;
using System.Threading.Channels;
using ComputeGrid.Core;
using ComputeGrid.Exchange.Instruments;
using ComputeGrid.Exchange.Matching;
using ComputeGrid.Exchange.Pipeline;
using ComputeGrid.Exchange.StateMachine;
using Microsoft.AspNetCore.Http;

namespace ComputeGrid.Server.Exchange;

/// <summary>
/// The live trade feed: fans the exchange's <see cref="ExchangeHost.TradeExecuted"/> out to subscribers and writes
/// each subscriber's Server-Sent Events stream.
/// <para>
/// The exchange raises the event under its gate, in the middle of a command, so the handler does only non-blocking
/// work: it copies the trade into each matching subscriber's bounded channel, which drops the oldest trade when a
/// client reads too slowly (the client sees the gap in the event ids, which are trade sequence numbers, and a
/// comment saying how many were dropped). Everything that waits (socket writes, reading symbols and book depth under
/// the gate) happens on the subscriber's own request task.
/// </para>
/// </summary>
public sealed class ExchangeFeed : IDisposable
{
    /// <summary>Trades buffered per subscriber before the oldest is dropped.</summary>
    public const int SubscriberCapacity = 1024;

    /// <summary>Most trades replayed from the tape for a client reconnecting with <c>Last-Event-ID</c>.</summary>
    public const int CatchUpMax = 4096;

    private readonly ExchangeHost _exchange;
    private readonly InstrumentRegistry _instruments;
    private readonly TimeProvider _time;
    private readonly object _lock = new();
    // Copy-on-write: the trade handler reads the array without a lock while subscribers come and go.
    private Subscription[] _subscribers = [];

    /// <summary>Subscribes to the exchange's trades for as long as the feed lives.</summary>
    public ExchangeFeed(ExchangeHost exchange, InstrumentRegistry instruments, TimeProvider time)
    {
        _exchange = exchange;
        _instruments = instruments;
        _time = time;
        exchange.TradeExecuted += OnTrade;
    }

    /// <summary>The number of live subscribers.</summary>
    public int Subscribers => Volatile.Read(ref _subscribers).Length;

    /// <summary>Starts buffering trades (of one instrument, or all when null) for a new subscriber.</summary>
    public Subscription Subscribe(int? instrument)
    {
        var s = new Subscription(this, instrument);
        lock (_lock) _subscribers = [.. _subscribers, s];
        return s;
    }

    private void Remove(Subscription s)
    {
        lock (_lock) _subscribers = _subscribers.Where(x => x != s).ToArray();
    }

    private void OnTrade(Trade trade)
    {
        foreach (var s in Volatile.Read(ref _subscribers))
            if (s.Instrument is null || s.Instrument == trade.Instrument)
                s.Channel.Writer.TryWrite(trade); // never blocks: the channel drops its oldest trade when full
    }

    /// <summary>Stops listening to the exchange and ends every subscriber's stream.</summary>
    public void Dispose()
    {
        _exchange.TradeExecuted -= OnTrade;
        Subscription[] all;
        lock (_lock) { all = _subscribers; _subscribers = []; }
        foreach (var s in all) s.Channel.Writer.TryComplete();
    }

    /// <summary>One subscriber's buffer of trades.</summary>
    public sealed class Subscription : IDisposable
    {
        private readonly ExchangeFeed _feed;
        private long _dropped;

        internal Subscription(ExchangeFeed feed, int? instrument)
        {
            _feed = feed;
            Instrument = instrument;
            Channel = System.Threading.Channels.Channel.CreateBounded<Trade>(
                new BoundedChannelOptions(SubscriberCapacity) { FullMode = BoundedChannelFullMode.DropOldest, SingleReader = true },
                _ => Interlocked.Increment(ref _dropped));
        }

        /// <summary>The instrument followed, or null for all.</summary>
        public int? Instrument { get; }

        internal Channel<Trade> Channel { get; }

        /// <summary>How many trades were dropped since the last call (the client reads too slowly).</summary>
        public long TakeDropped() => Interlocked.Exchange(ref _dropped, 0);

        /// <summary>Unsubscribes.</summary>
        public void Dispose()
        {
            _feed.Remove(this);
            Channel.Writer.TryComplete();
        }
    }

    /// <summary>
    /// Writes the subscriber's stream until <paramref name="ct"/> fires (client gone or server stopping): a
    /// <c>trade</c> event per trade (id = trade sequence), then a <c>book</c> event with the top
    /// <paramref name="depth"/> levels of each instrument that traded, and a comment every
    /// <paramref name="heartbeat"/> so proxies and clients know the stream is alive. With
    /// <paramref name="lastEventId"/> (a reconnecting client), trades after it are first replayed from the tape.
    /// </summary>
    public async Task StreamAsync(HttpResponse response, Subscription sub, int depth, TimeSpan heartbeat, long? lastEventId, CancellationToken ct)
    {
        var symbols = new Dictionary<int, string>();
        long lastSent = long.MinValue;
        var text = new StringBuilder();

        text.Append(": subscribed").Append(sub.Instrument is null ? "" : " to one instrument").Append("\n\n");
        if (lastEventId is long since)
        {
            // Trades already in the channel are skipped below by sequence, so replay and live never duplicate.
            var missed = _exchange.ReadMarket(m =>
            {
                var c = m.Tape.Since(since, CatchUpMax);
                return (Trades: c.Trades.Where(t => sub.Instrument is null || t.Instrument == sub.Instrument).ToArray(), Incomplete: c.Gap || c.HasMore);
            });
            if (missed.Incomplete) text.Append(": some trades after ").Append(since).Append(" are no longer on the tape\n\n");
            if (missed.Trades.Length > 0) lastSent = await AppendBatchAsync(text, missed.Trades, symbols, depth, ct);
        }
        await FlushAsync(response, text, ct);

        using var timer = new PeriodicTimer(heartbeat, _time);
        var reader = sub.Channel.Reader;
        Task<bool> tick = timer.WaitForNextTickAsync(ct).AsTask();
        Task<bool> data = reader.WaitToReadAsync(ct).AsTask();
        var batch = new List<Trade>();
        while (true)
        {
            var done = await Task.WhenAny(tick, data);
            if (done == tick)
            {
                if (!await tick) return;
                text.Append(": heartbeat ").Append(new ApiTime(Clock.UnixNanoseconds(_time)).ToString()).Append("\n\n");
                await FlushAsync(response, text, ct);
                tick = timer.WaitForNextTickAsync(ct).AsTask();
                continue;
            }
            if (!await data) return; // the feed was disposed: the server is stopping
            batch.Clear();
            while (batch.Count < 256 && reader.TryRead(out var t))
                if (t.Sequence > lastSent) batch.Add(t);
            long dropped = sub.TakeDropped();
            if (dropped > 0) text.Append(": ").Append(dropped).Append(" trades dropped: this client reads too slowly\n\n");
            if (batch.Count > 0) lastSent = await AppendBatchAsync(text, batch, symbols, depth, ct);
            await FlushAsync(response, text, ct);
            data = reader.WaitToReadAsync(ct).AsTask();
        }
    }

    /// <summary>Appends the trade events of a batch and one book snapshot per instrument; returns the last sequence.</summary>
    private async Task<long> AppendBatchAsync(StringBuilder text, IReadOnlyList<Trade> trades, Dictionary<int, string> symbols, int depth, CancellationToken ct)
    {
        var instruments = trades.Select(t => t.Instrument).Distinct().ToArray();
        // One trip under the gate for every symbol and book of the batch: the registry and the books belong to the
        // exchange's sequencer. The books are read after the trades, so each snapshot includes its trades' effect.
        var books = await _exchange.ReadAsync(v =>
        {
            foreach (int id in instruments)
                if (!symbols.ContainsKey(id)) symbols[id] = _instruments.TryGet(id, out var i) ? i.Symbol : id.ToString(System.Globalization.CultureInfo.InvariantCulture);
            long now = Clock.UnixNanoseconds(_time);
            return instruments.Select(id => Book(v, id, symbols[id], depth, now)).ToArray();
        }, ct);
        foreach (var t in trades)
        {
            text.Append("event: trade\nid: ").Append(t.Sequence).Append("\ndata: ")
                .Append(JsonSerializer.Serialize(TradeView.From(t, symbols[t.Instrument]), ApiJson.Options)).Append("\n\n");
        }
        foreach (var b in books)
            text.Append("event: book\ndata: ").Append(JsonSerializer.Serialize(b, ApiJson.Options)).Append("\n\n");
        return trades[^1].Sequence;
    }

    /// <summary>The top <paramref name="depth"/> levels of both sides; call inside <see cref="ExchangeHost.ReadAsync{T}"/>.</summary>
    internal static BookView Book(ExchangeStateMachine v, int instrument, string symbol, int depth, long now)
    {
        var bids = new DepthLevel[depth];
        var asks = new DepthLevel[depth];
        int nb = v.Depth(instrument, Side.Buy, bids);
        int na = v.Depth(instrument, Side.Sell, asks);
        return new BookView(instrument, symbol, new ComputeGrid.Core.ApiTime(now), bids[..nb], asks[..na]);
    }

    private static async Task FlushAsync(HttpResponse response, StringBuilder text, CancellationToken ct)
    {
        if (text.Length == 0) return;
        await response.WriteAsync(text.ToString(), ct);
        await response.Body.FlushAsync(ct);
        text.Clear();
    }
}
