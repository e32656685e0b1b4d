using System.Collections.Concurrent;
using System.Threading.Channels;
using ComputeGrid.Core;
using ComputeGrid.Exchange.Instruments;
using ComputeGrid.Exchange.MarketData;
using ComputeGrid.Exchange.Matching;
using ComputeGrid.Exchange.StateMachine;
using ComputeGrid.Exchange.Trading;
using ComputeGrid.Ledger;

namespace ComputeGrid.Exchange.Pipeline;

/// <summary>Settings of a running exchange.</summary>
public sealed record ExchangeHostOptions
{
    /// <summary>The command journal; null runs in memory (tests, benchmarks).</summary>
    public string? JournalPath { get; init; }

    /// <summary>A node with a lease in delivery that sends no heartbeat for this long is down: its leases in delivery fail.</summary>
    public TimeSpan HeartbeatTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>The state machine's settings.</summary>
    public StateMachineOptions StateMachine { get; init; } = new();

    /// <summary>The pipeline's settings (its <see cref="PipelineOptions.Traded"/> is the host's).</summary>
    public PipelineOptions Pipeline { get; init; } = new();

    /// <summary>The journal's settings (fault hooks in tests).</summary>
    public JournalOptions? Journal { get; init; }

    /// <summary>Sizes of the market data buffers.</summary>
    public MarketDataOptions? MarketData { get; init; }
}

/// <summary>
/// A running exchange: the <see cref="ExchangePipeline"/> over its <see cref="ExchangeStateMachine"/>, and what lives
/// beside it rather than in it.
/// <list type="bullet">
/// <item><b>Market data</b> (tape, candles, index) is a consumer of the pipeline's fills on a thread of its own, off
/// the hot path; <see cref="TradeExecuted"/> is raised there, in trade order.</item>
/// <item><b>Heartbeats</b> are not commands (a node sends one every few seconds): the host remembers the last one per
/// node and, on <see cref="TickAsync"/>, sends a <see cref="ExchangeCommandKind.NodeTimeout"/> for each node in
/// delivery that went quiet, and a <see cref="ExchangeCommandKind.NodeUp"/> when a down node is heard again.</item>
/// <item><b>The clock</b>: <see cref="TickAsync"/> sends a <see cref="ExchangeCommandKind.Tick"/> only when one is due,
/// so an idle exchange's journal does not grow.</item>
/// </list>
/// Reads go through <see cref="ReadAsync{T}"/> (between batches; the state machine's views are copies) and
/// <see cref="ReadMarket{T}"/>.
/// </summary>
public sealed class ExchangeHost : IAsyncDisposable
{
    private readonly LedgerEngine _ledger;
    private readonly InstrumentRegistry _instruments;
    private readonly TimeProvider _time;
    private readonly ExchangeHostOptions _options;
    private MarketDataHub _market; // replaced, under the lock, when what the pipeline fed is to be forgotten
    private readonly Lock _marketLock = new();
    // The sequencer's trades, in order; an item with Reset set (a replay begun again, a compensation that changed trades)
    // first replaces the market data with an empty one: the trades fed again reuse the sequences of those forgotten.
    private readonly Channel<MarketItem> _trades = Channel.CreateUnbounded<MarketItem>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
    private sealed record MarketItem(Trade[] Trades, bool Reset = false);
    private readonly ConcurrentDictionary<long, long> _heartbeats = new();
    // Instruments traded, with what the market data needs of them (taken on the sequencer, which owns the registry).
    private readonly ConcurrentDictionary<int, (string? IndexClass, long DeliveryEnd)> _traded = new();
    private readonly SemaphoreSlim _tickGate = new(1, 1);
    private ExchangePipeline? _pipeline;
    private Task _marketLoop = Task.CompletedTask;
    private long _startedAt;

    /// <summary>An exchange not started yet (<see cref="StartAsync(CancellationToken)"/>).</summary>
    public ExchangeHost(LedgerEngine ledger, InstrumentRegistry instruments, TimeProvider time, ExchangeHostOptions? options = null)
    {
        _ledger = ledger;
        _instruments = instruments;
        _time = time;
        _options = options ?? new ExchangeHostOptions();
        _market = NewMarket();
    }

    private MarketDataHub NewMarket() => new(id => _traded.TryGetValue(id, out var t) ? t.IndexClass : null, _options.MarketData);

    /// <summary>Starts a new exchange (<see cref="StartAsync(CancellationToken)"/>).</summary>
    public static async Task<ExchangeHost> StartAsync(LedgerEngine ledger, InstrumentRegistry instruments, TimeProvider time, ExchangeHostOptions? options = null,
        CancellationToken ct = default)
    {
        var host = new ExchangeHost(ledger, instruments, time, options);
        await host.StartAsync(ct);
        return host;
    }

    /// <summary>
    /// Starts the exchange: replays its journal (refusing to start on a damaged one), settles what the ledger had not
    /// answered, and advances it to the clock (the instruments trading now are listed).
    /// </summary>
    /// <exception cref="JournalCorruptException">The journal is damaged anywhere but a torn tail.</exception>
    public async Task StartAsync(CancellationToken ct = default)
    {
        if (_pipeline is not null) throw new InvalidOperationException("The exchange has started.");
        var sm = new ExchangeStateMachine(_instruments, _options.StateMachine);
        PipelineOptions pipelineOptions = _options.Pipeline with
        {
            Traded = OnTraded,
            // A rebuild starts from an empty registry too: the machine lists its instruments again as it replays.
            Rebuild = () =>
            {
                _instruments.Reset();
                return new ExchangeStateMachine(_instruments, _options.StateMachine);
            },
            ReplayRestarting = () =>
            {
                _traded.Clear();
                _trades.Writer.TryWrite(new MarketItem([], Reset: true));
            },
        };
        _startedAt = Clock.UnixNanoseconds(_time);
        _marketLoop = Task.Factory.StartNew(MarketLoopAsync, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default).Unwrap();
        _pipeline = await ExchangePipeline.StartAsync(sm, _ledger, _options.JournalPath, _time, pipelineOptions, _options.Journal, ct);
        foreach (ShareNodeView n in await ReadAsync(m => m.ShareNodes, ct)) _shareNodes.TryAdd(n.Node, n);
        await TickAsync(ct);
    }

    private readonly ConcurrentDictionary<long, ShareNodeView> _shareNodes = new();

    /// <summary>
    /// Whether node <paramref name="node"/> issued shares (its revenue then goes to its share pool): answered without the
    /// exchange's gate, for the paid inference path. Known from the start's state and every issuance answered since.
    /// </summary>
    public bool NodeHasShares(long node) => _shareNodes.ContainsKey(node);

    /// <summary>Node <paramref name="node"/>'s shares (supply, issuance time), or null: answered without the exchange's gate.</summary>
    public ShareNodeView? SharesOf(long node) => _shareNodes.TryGetValue(node, out ShareNodeView? v) ? v : null;

    // On the sequencer, under its gate: the batch's trades are handed on, and the sequencer goes on.
    private void OnTraded(List<FillRecord> fills, ExchangeStateMachine sm)
    {
        var batch = new Trade[fills.Count];
        for (int i = 0; i < fills.Count; i++)
        {
            FillRecord f = fills[i];
            batch[i] = new Trade(f.Instrument, f.Price, f.Quantity, f.Time, f.TakerSide, f.Sequence);
            if (!_traded.ContainsKey(f.Instrument) && sm.Instruments.TryGet(f.Instrument, out Instrument? instrument))
                _traded[f.Instrument] = (instrument.Class == InstrumentClass.Compute && instrument.Kind != DeliveryKind.MonthlyForward ? GpuClasses.Code(instrument.Gpu) : null, instrument.DeliveryEnd);
        }
        _trades.Writer.TryWrite(new MarketItem(batch));
    }

    private ExchangePipeline Running => _pipeline ?? throw new InvalidOperationException("The exchange has not started.");

    /// <summary>The state machine's settings (pledge terms, penalty, epoch).</summary>
    public StateMachineOptions StateMachineOptions => _options.StateMachine;

    /// <summary>The instruments (read them inside <see cref="ReadAsync{T}"/>: ticks change them).</summary>
    public InstrumentRegistry Instruments => _instruments;

    /// <summary>The failure that stopped the exchange (503 until restarted), or null while it runs.</summary>
    public Exception? Fault => _pipeline?.Fault;

    /// <summary>The pipeline's counters and per-stage seconds.</summary>
    public ExchangePipeline Pipeline => Running;

    /// <summary>True once <see cref="StartAsync(CancellationToken)"/> has brought the pipeline up (its journal replayed).</summary>
    public bool Started => Volatile.Read(ref _pipeline) is not null;

    /// <summary>Raised on the market data thread for every trade, in trade order; a failing handler is ignored.</summary>
    public event Action<Trade>? TradeExecuted;

    /// <summary>Submits one command; answers when its journal record and ledger effects are durable.</summary>
    /// <exception cref="ExchangeUnavailableException">The exchange stopped taking commands.</exception>
    public ValueTask<CommandOutcome> SubmitAsync(ExchangeCommand command, CancellationToken ct = default) =>
        command.Kind == ExchangeCommandKind.IssueShares ? IssueAsync(command, ct) : Running.SubmitAsync(command, ct);

    private async ValueTask<CommandOutcome> IssueAsync(ExchangeCommand command, CancellationToken ct)
    {
        CommandOutcome o = await Running.SubmitAsync(command, ct);
        if (o.Result.Ok && await ReadAsync(m => m.ShareNode(command.Target), CancellationToken.None) is { } view) _shareNodes.TryAdd(command.Target, view);
        return o;
    }

    /// <summary>
    /// Submits many commands at once (a market maker's batch): they are queued in order, share journal fsyncs and ledger
    /// batches, and each gets its own outcome, in order.
    /// </summary>
    public async Task<CommandOutcome[]> SubmitManyAsync(IReadOnlyList<ExchangeCommand> commands, CancellationToken ct = default)
    {
        var pending = new ValueTask<CommandOutcome>[commands.Count];
        for (int i = 0; i < commands.Count; i++) pending[i] = Running.SubmitAsync(commands[i], ct);
        var outcomes = new CommandOutcome[commands.Count];
        for (int i = 0; i < commands.Count; i++) outcomes[i] = await pending[i];
        return outcomes;
    }

    /// <summary>Reads the state machine between batches (its views are copies, safe to keep).</summary>
    public Task<T> ReadAsync<T>(Func<ExchangeStateMachine, T> read, CancellationToken ct = default) => Running.ReadAsync(read, ct);

    /// <summary>Reads the market data (tape, candles, index) under its lock.</summary>
    public T ReadMarket<T>(Func<MarketDataHub, T> read)
    {
        lock (_marketLock) return read(_market);
    }

    /// <summary>Trades the market data thread has taken in (all of them once the pipeline is idle and it caught up).</summary>
    public long TradesSeen => Interlocked.Read(ref _tradesSeen);
    private long _tradesSeen;

    /// <summary>When node <paramref name="node"/> was last heard (Unix ns); the host's start for a node not heard since.</summary>
    public long LastHeartbeat(long node) => _heartbeats.TryGetValue(node, out long t) ? t : _startedAt;

    /// <summary>
    /// A node's heartbeat: remembered (not journaled); a node that was down is up again (a command, so its GPUs back
    /// sells again). Unknown nodes are refused.
    /// </summary>
    public async Task<ExchangeError> HeartbeatAsync(long node, CancellationToken ct = default)
    {
        long now = Clock.UnixNanoseconds(_time);
        (bool known, bool down) = await ReadAsync(sm => sm.Node(node) is { } n ? (true, n.DownSince is not null) : (false, false), ct);
        if (!known) return ExchangeError.UnknownNode;
        _heartbeats.AddOrUpdate(node, now, (_, old) => Math.Max(old, now));
        if (down)
        {
            CommandOutcome o = await SubmitAsync(new ExchangeCommand { Kind = ExchangeCommandKind.NodeUp, Target = node }, CancellationToken.None);
            return o.Result.Error;
        }
        return ExchangeError.None;
    }

    /// <summary>
    /// Advances the exchange to the clock: a <see cref="ExchangeCommandKind.Tick"/> when one is due (instruments listed
    /// and expired, good-till-time orders expired, leases entering delivery on a down node failed), then a
    /// <see cref="ExchangeCommandKind.NodeTimeout"/> for each node in delivery not heard for the heartbeat timeout.
    /// Returns how many commands it sent.
    /// </summary>
    public async Task<int> TickAsync(CancellationToken ct = default)
    {
        await _tickGate.WaitAsync(ct);
        try
        {
            long now = Clock.UnixNanoseconds(_time);
            long timeout = checked((long)_options.HeartbeatTimeout.TotalMilliseconds * 1_000_000L);
            (bool due, IReadOnlyList<long> inDelivery) = await ReadAsync(sm => (sm.TickDue(Math.Max(now, sm.LastTime)), sm.NodesInDelivery(now)), ct);
            int sent = 0;
            if (due)
            {
                await SubmitAsync(ExchangeCommand.Tick(), CancellationToken.None);
                sent++;
            }
            foreach (long node in inDelivery)
            {
                long last = LastHeartbeat(node);
                if (now - last <= timeout) continue;
                await SubmitAsync(new ExchangeCommand { Kind = ExchangeCommandKind.NodeTimeout, Target = node, From = last }, CancellationToken.None);
                sent++;
            }
            ForgetOldMarketData(now);
            return sent;
        }
        finally { _tickGate.Release(); }
    }

    private const long KeepMarketDataNs = 24 * 3_600_000_000_000L;
    private long _lastForget;

    // Market data of an instrument is kept for a day after its delivery ends; then its slots serve new ones.
    private void ForgetOldMarketData(long now)
    {
        if (now - _lastForget < 3_600_000_000_000L) return;
        _lastForget = now;
        lock (_marketLock)
        {
            foreach (int id in _traded.Where(kv => kv.Value.DeliveryEnd <= now - KeepMarketDataNs).Select(kv => kv.Key).ToList())
            {
                _market.Forget(id);
                _traded.TryRemove(id, out _);
            }
        }
    }

    private async Task MarketLoopAsync()
    {
        ChannelReader<MarketItem> reader = _trades.Reader;
        while (await reader.WaitToReadAsync())
        {
            while (reader.TryRead(out MarketItem? item))
            {
                Trade[] batch = item.Trades;
                lock (_marketLock)
                {
                    if (item.Reset) _market = NewMarket();
                    foreach (Trade t in batch)
                    {
                        try { _market.OnTrade(t); }
                        catch (Exception e) when (e is OverflowException or ArgumentException or InvalidOperationException) { MarketDataErrors++; }
                    }
                }
                foreach (Trade t in batch)
                {
                    Action<Trade>? handlers = TradeExecuted;
                    if (handlers is null) continue;
                    foreach (Action<Trade> h in handlers.GetInvocationList().Cast<Action<Trade>>())
                    {
                        try { h(t); }
                        catch (Exception) { HandlerErrors++; } // a subscriber's bug must not stop the market data
                    }
                }
                Interlocked.Add(ref _tradesSeen, batch.Length);
            }
        }
    }

    /// <summary>Trades the market data could not take (an overflow): counted, never stopping the exchange.</summary>
    public long MarketDataErrors { get; private set; }

    /// <summary>Trade handlers that threw.</summary>
    public long HandlerErrors { get; private set; }

    /// <summary>Stops the pipeline (after the batch in flight), closes the journal, and drains the market data.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_pipeline is not null) await _pipeline.DisposeAsync();
        _trades.Writer.TryComplete();
        await _marketLoop;
        _tickGate.Dispose();
    }
}
