using System.Text.Json;
using ComputeGrid.Core;
using ComputeGrid.Exchange.Matching;
using ComputeGrid.Exchange.Pipeline;
using ComputeGrid.Ledger;
using ComputeGrid.Server.Energy;
using ComputeGrid.Server.Trust;

namespace ComputeGrid.Server.WebConsole;

/// <summary>
/// Samples the figures of the console once per <see cref="Period"/>: the ledger's totals (<see cref="LedgerTally"/>),
/// the latest checkpoint and its anchor, the exchange's trades, the live sites' power. Every subscriber of
/// <c>/api/stream</c> and every <c>GET /api/console/overview</c> reads the same sample, so the page and the API agree at
/// each <see cref="ConsoleOverview.Seq"/>; the work per second is one sample whatever the number of subscribers, and
/// each view (per operator, per customer) is serialized once per sample.
/// </summary>
public sealed class LiveFigures : IDisposable
{
    /// <summary>How often a sample is taken.</summary>
    public static readonly TimeSpan Period = TimeSpan.FromSeconds(1);

    /// <summary>Samples kept to measure rates over (the window is the span from the oldest to the newest).</summary>
    public const int WindowSamples = 6;

    private readonly LedgerEngine _ledger;
    private readonly ExchangeHost _exchange;
    private readonly LiveSites _sites;
    private readonly TimeProvider _time;
    private readonly Func<(CheckpointFigures?, AnchorFigures?)> _anchor;
    private readonly LedgerTally _tally = new();
    private readonly Queue<Sample> _window = new();
    private long _trades, _tradeNotional, _lastPrice = -1, _lastInstrument = -1;
    private Sample? _latest;
    private TaskCompletionSource _next = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Follows the exchange's trades from now on; samples are taken by <see cref="SampleAsync"/>.</summary>
    public LiveFigures(LedgerEngine ledger, ExchangeHost exchange, LiveSites sites, TimeProvider time, Func<AnchorFigures?> anchor)
    {
        _ledger = ledger;
        _exchange = exchange;
        _sites = sites;
        _time = time;
        _anchor = () => (ledger.LatestCheckpoint is { } c ? new CheckpointFigures(c.Op, c.Root, c.ChainHead) : null, anchor());
        exchange.TradeExecuted += OnTrade;
    }

    /// <summary>The latest sample, or null before the first.</summary>
    public Sample? Latest => Volatile.Read(ref _latest);

    // Raised under the exchange's gate in the middle of a command: only counters, no waiting.
    private void OnTrade(Trade t)
    {
        Interlocked.Increment(ref _trades);
        Interlocked.Add(ref _tradeNotional, checked(t.Price * t.Quantity));
        Volatile.Write(ref _lastPrice, t.Price);
        Volatile.Write(ref _lastInstrument, t.Instrument);
    }

    /// <summary>Takes a sample and publishes it to every waiting subscriber.</summary>
    public async Task<Sample> SampleAsync(CancellationToken ct)
    {
        long now = Clock.UnixNanoseconds(_time);
        // The ledger's totals are read on its own thread, where the state machine is still.
        LedgerTotals totals = await _ledger.ReadAsync(sm => _tally.Scan(sm, _ledger.Stats.CommittedOp), ct);
        var (checkpoint, anchor) = _anchor();
        var trades = (Count: Interlocked.Read(ref _trades), Notional: Interlocked.Read(ref _tradeNotional), Price: Volatile.Read(ref _lastPrice), Instrument: Volatile.Read(ref _lastInstrument));
        PowerFigures? power = _sites.All.Count == 0 ? null : Power(_sites);
        Sample? previous = Latest;
        var sample = new Sample(previous is null ? 1 : previous.Seq + 1, now, totals, checkpoint, anchor, trades.Count, trades.Notional,
            trades.Price < 0 ? null : trades.Price, trades.Instrument < 0 ? null : (int)trades.Instrument, power);
        _window.Enqueue(sample);
        while (_window.Count > WindowSamples) _window.Dequeue();
        sample.Oldest = _window.Peek();
        Volatile.Write(ref _latest, sample);
        TaskCompletionSource waiting = Interlocked.Exchange(ref _next, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
        waiting.TrySetResult();
        return sample;
    }

    /// <summary>Waits for a sample newer than <paramref name="seq"/> (returns at once when there is one).</summary>
    public async Task<Sample> NextAsync(long seq, CancellationToken ct)
    {
        while (true)
        {
            Task next = Volatile.Read(ref _next).Task;
            if (Latest is { } s && s.Seq > seq) return s;
            await next.WaitAsync(ct);
        }
    }

    private static PowerFigures Power(LiveSites sites)
    {
        var each = sites.All.Select(s => s.State).Select(s => new SitePowerFigures(s.Name, ApiTime.Of(new DateTimeOffset(s.SeriesTimeUtc, TimeSpan.Zero)),
            s.LastPriceUsdPerMwh, s.AiFacilityKw, s.MinerFacilityKw, s.FacilityKw, s.InterconnectKw, s.Emergency, s.PeakGuardActive, s.MinersDown)).ToArray();
        return new PowerFigures(each.Sum(s => s.AiKw), each.Sum(s => s.MinersKw), each.Sum(s => s.FacilityKw), each.Sum(s => s.InterconnectKw), each);
    }

    /// <summary>Stops following the exchange.</summary>
    public void Dispose() => _exchange.TradeExecuted -= OnTrade;

    /// <summary>One sample of everything; <see cref="ViewFor"/> cuts it to what a caller may see.</summary>
    public sealed class Sample(long seq, long at, LedgerTotals ledger, CheckpointFigures? checkpoint, AnchorFigures? anchor, long trades, long tradeNotional,
        long? lastPrice, int? lastInstrument, PowerFigures? power)
    {
        private readonly Dictionary<string, byte[]> _json = [];

        /// <summary>The sample's number.</summary>
        public long Seq { get; } = seq;

        /// <summary>When it was taken, Unix ns.</summary>
        public long At { get; } = at;

        /// <summary>The ledger's totals.</summary>
        public LedgerTotals Ledger { get; } = ledger;

        internal Sample Oldest { get; set; } = null!;

        /// <summary>
        /// The overview as <paramref name="caller"/> may see it: operators everything; customers and providers their own
        /// figures and the public ones (the checkpoint and its anchor, the trades and prices), not the ledger's size or invariants' detail.
        /// </summary>
        public ConsoleOverview ViewFor(CallerIdentity caller)
        {
            Sample old = Oldest;
            long windowNs = At - old.At;
            PrincipalKind kind = caller.Principal.Kind;
            // A customer or provider sees the public figures (checkpoint, anchor, market data) and its own, never the
            // system's size or another account's state (an invariant's detail names an account).
            var ledgerFigures = kind == PrincipalKind.Operator
                ? new LedgerFigures(Ledger.Op, Ledger.Transfers, Ledger.Accounts, Ledger.Invariants, checkpoint, anchor)
                : new LedgerFigures(null, null, null, null, checkpoint, anchor);
            var tradeFigures = new TradeFigures(trades, tradeNotional, Rate(trades - old.TradesCount, windowNs, 60), lastPrice, lastInstrument);
            RequestFigures? requests = kind switch
            {
                PrincipalKind.Operator => Requests(Ledger.Requests, Ledger.InferenceMicroUsd, old.Ledger.Requests, old.Ledger.InferenceMicroUsd, windowNs),
                PrincipalKind.Customer => Requests(Ledger.Payers.GetValueOrDefault(caller.Principal.Id), old.Ledger.Payers.GetValueOrDefault(caller.Principal.Id), windowNs),
                _ => null,
            };
            RevenueFigures? revenue = kind != PrincipalKind.Operator ? null : new RevenueFigures(Ledger.InferenceMicroUsd, Ledger.LeaseMicroUsd, Ledger.MiningMicroUsd,
                MoneyRate(Ledger.InferenceMicroUsd - old.Ledger.InferenceMicroUsd, windowNs), MoneyRate(Ledger.LeaseMicroUsd - old.Ledger.LeaseMicroUsd, windowNs),
                MoneyRate(Ledger.MiningMicroUsd - old.Ledger.MiningMicroUsd, windowNs));
            return new ConsoleOverview(Seq, new ApiTime(At), kind.ToString().ToLowerInvariant(), windowNs / 1_000_000, ledgerFigures, tradeFigures, requests, revenue,
                kind is PrincipalKind.Operator or PrincipalKind.Provider ? power : null,
                kind == PrincipalKind.Operator ? null : Ledger.Balances.GetValueOrDefault(caller.Principal.Id));
        }

        /// <summary>The caller's view as JSON, serialized once per sample and view (operators share one).</summary>
        public byte[] JsonFor(CallerIdentity caller)
        {
            string key = caller.Principal.Kind == PrincipalKind.Operator ? "operator" : caller.Principal.Id.ToString(System.Globalization.CultureInfo.InvariantCulture);
            lock (_json)
            {
                if (_json.TryGetValue(key, out byte[]? cached)) return cached;
                byte[] json = JsonSerializer.SerializeToUtf8Bytes(ViewFor(caller), ApiJson.Options);
                _json[key] = json;
                return json;
            }
        }

        private long TradesCount => trades;

        private static RequestFigures Requests(PayerTotals now, PayerTotals old, long windowNs) =>
            Requests(now.Requests, now.SpentMicroUsd, old.Requests, old.SpentMicroUsd, windowNs);

        private static RequestFigures Requests(long count, long spent, long oldCount, long oldSpent, long windowNs) =>
            new(count, Rate(count - oldCount, windowNs, 1), spent, MoneyRate(spent - oldSpent, windowNs));

        // Events per second (or per minute) with two decimals; 0 over an empty window.
        private static double Rate(long delta, long windowNs, int perSeconds) =>
            windowNs <= 0 ? 0 : Math.Round(delta * 1e9 * perSeconds / windowNs, 2);

        /// <summary>Micro-USD per second, in integers and rounded down: delta × 10^9 / ns, exact in 128 bits (0 over an empty window).</summary>
        public static long MoneyRate(long deltaMicroUsd, long windowNs) =>
            windowNs <= 0 ? 0 : checked((long)((Int128)deltaMicroUsd * 1_000_000_000 / windowNs));
    }
}
