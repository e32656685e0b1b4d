using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using ComputeGrid.Core;
using ComputeGrid.Ledger.Audit;
using ComputeGrid.Ledger.Storage;
using Microsoft.Win32.SafeHandles;

namespace ComputeGrid.Ledger;

/// <summary>Settings of a <see cref="LedgerEngine"/>.</summary>
public sealed record LedgerEngineOptions
{
    /// <summary>Folder of the log and snapshots; null keeps everything in memory (no durability).</summary>
    public string? DataDirectory { get; init; }

    /// <summary>A group (many batches sharing one fdatasync) is handed to the disk when it reaches this size.</summary>
    public int GroupBytesMax { get; init; } = 8 << 20;

    /// <summary>Most commands waiting for the sequencer; submitters wait beyond it (back-pressure).</summary>
    public int QueueCommandsMax { get; init; } = 1024;

    /// <summary>Write a snapshot after this many log records (0: not by count).</summary>
    public int SnapshotEveryOps { get; init; }

    /// <summary>
    /// Write a snapshot once the log written since the last one exceeds this many bytes and the size of the
    /// state itself (0: not by size). So the replay after a crash stays bounded, while the cost of writing
    /// snapshots stays proportional to the work done. Snapshots are also written on shutdown and when asked.
    /// </summary>
    public long SnapshotLogBytesMin { get; init; } = 64L << 20;

    /// <summary>How often the sequencer looks for expired holds when idle.</summary>
    public TimeSpan PulseInterval { get; init; } = TimeSpan.FromMilliseconds(250);

    /// <summary>
    /// Called on the snapshot writer's thread when a snapshot fails (a full disk, an I/O error): the server logs it as an
    /// error. The ledger goes on serving (the log has everything) and the snapshot is retried later.
    /// </summary>
    public Action<Exception>? SnapshotFailed { get; init; }

    /// <summary>The wait before retrying a failed snapshot; it doubles with each failure in a row, up to <see cref="SnapshotRetryDelayMax"/>.</summary>
    public TimeSpan SnapshotRetryDelayMin { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>The longest wait before retrying a failed snapshot.</summary>
    public TimeSpan SnapshotRetryDelayMax { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>
    /// A fault hook for tests: wraps the stream a snapshot's state is written to (throw from it to fail the snapshot as a
    /// full disk would, block in it to hold the writer mid-file). Null in production.
    /// </summary>
    public Func<Stream, Stream>? SnapshotStreamWrapper { get; init; }

    /// <summary>Where the engine's instruments come from (<see cref="LedgerMetrics"/>); null: none are made.</summary>
    public System.Diagnostics.Metrics.IMeterFactory? Meters { get; init; }
    /// <summary>
    /// A fault hook for tests (the whole-system simulation): asked at each <see cref="LedgerLogFaultPoint"/> of every
    /// group the flusher writes to the log; true makes that step fail with an <see cref="IOException"/> as the disk would,
    /// and the ledger stops (fail-stop) like after a real error. Null in production.
    /// </summary>
    public Func<LedgerLogFaultPoint, bool>? InjectLogFault { get; init; }

    /// <summary>Expected numbers of accounts and transfers, to size the in-memory indexes.</summary>
    public int AccountsCapacity { get; init; } = 1 << 14;
    public int TransfersCapacity { get; init; } = 1 << 20;
}

/// <summary>Where a write of the ledger log can be made to fail (test-only; see <see cref="LedgerEngineOptions.InjectLogFault"/>).</summary>
public enum LedgerLogFaultPoint
{
    /// <summary>Before the group is written: nothing reaches the file.</summary>
    Write,
    /// <summary>The first half of the group is written, then the write fails (a torn tail is left in the file).</summary>
    TornWrite,
    /// <summary>The whole group is written; the fdatasync that would make it durable fails.</summary>
    Flush,
}

/// <summary>What recovery found when the engine opened its folder.</summary>
/// <param name="SnapshotLoaded">Whether a snapshot was loaded (its log prefix checked against its chain head).</param>
/// <param name="SnapshotOp">The snapshot's op (0 without one).</param>
/// <param name="RecordsReplayed">Log records replayed after the snapshot.</param>
/// <param name="LastOp">The last op in the log after recovery.</param>
/// <param name="TruncatedBytes">Bytes of a torn tail that were truncated.</param>
/// <param name="StopReason">Why the torn tail that was truncated did not check (null when nothing was truncated).</param>
/// <param name="Elapsed">How long recovery took.</param>
public sealed record RecoveryReport(bool SnapshotLoaded, ulong SnapshotOp, int RecordsReplayed, ulong LastOp, long TruncatedBytes, string? StopReason, TimeSpan Elapsed);

/// <summary>What <see cref="LedgerEngine.VerifyDirectory"/> found in a sound folder.</summary>
/// <param name="Records">Valid log records.</param>
/// <param name="LastOp">The op of the last valid record.</param>
/// <param name="Head">The hash chain head (hex) after the last valid record.</param>
/// <param name="TrailingBytes">Bytes of a torn tail past the last valid record (truncated at the next start), or 0.</param>
/// <param name="TornTailReason">Why the torn tail's first record does not check, or null.</param>
/// <param name="StateHash">The state hash after replaying the whole log.</param>
/// <param name="SnapshotOp">The op of the snapshot that was checked against the replay, or null without one.</param>
public sealed record LedgerVerifyReport(int Records, ulong LastOp, string Head, long TrailingBytes, string? TornTailReason, byte[] StateHash, ulong? SnapshotOp);

/// <summary>When a write is answered: once durable (the default), or once applied in order (see <see cref="LedgerEngine.CreateTransfersAsync(ReadOnlyMemory{Transfer}, LedgerAck, CancellationToken)"/>).</summary>
public enum LedgerAck
{
    /// <summary>After the batch is on stable storage.</summary>
    Durable,
    /// <summary>After the sequencer has applied the batch, before it is on stable storage.</summary>
    Applied,
}

/// <summary>Counters for metrics and benchmarks.</summary>
/// <param name="CommittedOp">Last log op given by the sequencer.</param>
/// <param name="DurableOp">Last log op on stable storage.</param>
/// <param name="Groups">Group commits.</param>
/// <param name="Fsyncs">fdatasync calls of the log.</param>
/// <param name="LogBytes">Bytes in the log.</param>
/// <param name="Accounts">Accounts in the ledger.</param>
/// <param name="Transfers">Transfers in the ledger.</param>
/// <param name="Snapshots">Snapshots published since the engine opened.</param>
/// <param name="SnapshotFailures">Snapshots that failed since the engine opened (each reported through <see cref="LedgerEngineOptions.SnapshotFailed"/>).</param>
public readonly record struct LedgerStats(ulong CommittedOp, ulong DurableOp, long Groups, long Fsyncs, long LogBytes, int Accounts, int Transfers,
    long Snapshots, long SnapshotFailures);

/// <summary>
/// The durable ledger: one sequencer thread owns the <see cref="LedgerStateMachine"/>; one flusher thread
/// owns the log file. The pipeline, in steps:
/// <list type="number">
/// <item>Clients enqueue commands (batches, lookups, checkpoints); a bounded count gives back-pressure.</item>
/// <item>The sequencer takes commands in order, gives each batch its timestamp from the <see cref="TimeProvider"/>
///   (strictly increasing), applies it to the state machine and appends the batch's input as a log record to
///   the current group. Lookups are answered from the state at that point in the order.</item>
/// <item>When the flusher is free (or the group is full) the group is handed over; the sequencer goes on with
///   the next group while the flusher seals each record into the hash chain, writes the group and calls
///   fdatasync once for all of it (group commit).</item>
/// <item>Only then are the group's commands answered. So a result a client sees (a transfer's result or a
///   balance) is never lost by a crash: it is in the log, and recovery replays the log.</item>
/// </list>
/// Snapshots are written off the sequencer: it captures an image of the state (O(accounts)) and a background thread
/// writes it, then publishes it once the log is durable up to the image's op. Recovery loads the snapshot, checks the
/// log up to it against the snapshot's chain head, replays the log after it and truncates a provably torn tail; any
/// other damage is refused (<see cref="LedgerCorruptException"/>).
/// </summary>
public sealed class LedgerEngine : IAsyncDisposable
{
    private const string LogFileName = "ledger.log";
    private const string SnapshotFileName = "ledger.snapshot";

    private readonly LedgerEngineOptions _options;
    private readonly TimeProvider _time;
    private LedgerStateMachine _sm;
    private readonly ConcurrentQueue<Command> _queue = new();
    private readonly SemaphoreSlim _queueSlots;
    private readonly ManualResetEventSlim _wakeSequencer = new(false);
    private readonly ManualResetEventSlim _wakeFlusher = new(false);
    private readonly Thread _sequencer;
    private readonly Thread? _flusher;
    private readonly SafeFileHandle? _log;
    private readonly FileStream? _lock;
    private long _logEnd;
    private ulong _op;                      // last op given by the sequencer
    private ulong _durableOp;               // last op on disk (written by the flusher)
    private byte[] _chainHead;              // hash of the last durable record (flusher-owned)
    private Group _filling;
    private Group? _handedOff;              // the group the flusher works on, null when it is idle
    private readonly object _flusherGate = new();
    private volatile bool _stopping;
    private volatile Exception? _fault;
    private long _groups, _fsyncs, _snapshots, _snapshotFailures;
    private ulong _opsSinceSnapshot;
    private Checkpoint? _latestCheckpoint;
    private readonly LedgerMetrics? _metrics;

    /// <summary>What recovery did when the engine opened.</summary>
    public RecoveryReport Recovery { get; }

    /// <summary>The newest checkpoint built, or null.</summary>
    public Checkpoint? LatestCheckpoint => Volatile.Read(ref _latestCheckpoint);

    /// <summary>Set when the engine hit an I/O failure and stopped taking commands (fail-stop).</summary>
    public Exception? Fault => _fault;

    private LedgerEngine(LedgerEngineOptions options, TimeProvider time)
    {
        _options = options;
        _time = time;
        _queueSlots = new SemaphoreSlim(options.QueueCommandsMax, options.QueueCommandsMax);
        _filling = new Group();
        _chainHead = LedgerLog.GenesisHash;
        var sw = Stopwatch.StartNew();
        if (options.DataDirectory is null)
        {
            _sm = new LedgerStateMachine(options.AccountsCapacity, options.TransfersCapacity);
            Recovery = new RecoveryReport(false, 0, 0, 0, 0, null, sw.Elapsed);
        }
        else
        {
            Directory.CreateDirectory(options.DataDirectory);
            // One process per data folder: a second one would interleave writes into the same log.
            try { _lock = new FileStream(Path.Combine(options.DataDirectory, "LOCK"), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None); }
            catch (IOException e) { throw new IOException($"The ledger in {options.DataDirectory} is in use by another process.", e); }
            try { Recovery = Recover(options.DataDirectory, out _sm); }
            catch
            {
                _lock.Dispose();
                throw;
            }
            _log = File.OpenHandle(Path.Combine(options.DataDirectory, LogFileName), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.Read);
            _flusher = new Thread(FlusherLoop) { Name = "ledger-flusher", IsBackground = true };
            _snapshotWriter = new Thread(SnapshotWriterLoop) { Name = "ledger-snapshot", IsBackground = true };
        }
        _sequencer = new Thread(SequencerLoop) { Name = "ledger-sequencer", IsBackground = true };
        if (options.Meters is not null) _metrics = new LedgerMetrics(options.Meters, this);
        _sequencer.Start();
        _flusher?.Start();
        _snapshotWriter?.Start();
    }

    /// <summary>Opens (and recovers) a ledger. With no data directory it runs in memory.</summary>
    public static LedgerEngine Open(LedgerEngineOptions options, TimeProvider? time = null) => new(options, time ?? TimeProvider.System);

    // ================================================================== public API

    /// <summary>Creates a batch of accounts; answers once the batch is durable. One result per event.</summary>
    public Task<CreateAccountResult[]> CreateAccountsAsync(ReadOnlyMemory<Account> events, CancellationToken ct = default)
    {
        CheckBatch(events.Length);
        var c = new Command<CreateAccountResult[]>(CommandKind.CreateAccounts) { Accounts = events };
        return EnqueueAsync(c, ct);
    }

    /// <summary>Creates a batch of transfers; answers once the batch is durable. One result per event.</summary>
    public Task<CreateTransferResult[]> CreateTransfersAsync(ReadOnlyMemory<Transfer> events, CancellationToken ct = default) =>
        CreateTransfersAsync(events, LedgerAck.Durable, ct);

    /// <summary>
    /// Creates a batch of transfers and answers when <paramref name="ack"/> says: <see cref="LedgerAck.Durable"/> once
    /// the batch is on stable storage (the default everywhere), or <see cref="LedgerAck.Applied"/> as soon as the
    /// sequencer has applied it — every later operation sees it, but a crash before the next group commit loses it (and
    /// everything after it, in order). Use <c>Applied</c> only where losing an acknowledged transfer costs the other
    /// party nothing (an inference hold whose capture follows: lost, the request is simply not charged).
    /// </summary>
    public Task<CreateTransferResult[]> CreateTransfersAsync(ReadOnlyMemory<Transfer> events, LedgerAck ack, CancellationToken ct = default)
    {
        CheckBatch(events.Length);
        var c = new Command<CreateTransferResult[]>(CommandKind.CreateTransfers) { Transfers = events, AnswerWhenApplied = ack == LedgerAck.Applied };
        return EnqueueAsync(c, ct);
    }

    /// <summary>Looks up accounts; missing ids are left out. Ordered with the writes before it.</summary>
    public Task<Account[]> LookupAccountsAsync(IReadOnlyList<UInt128> ids, CancellationToken ct = default)
    {
        var c = new Command<Account[]>(CommandKind.Read);
        c.Read = sm =>
        {
            var found = new List<Account>(ids.Count);
            foreach (var id in ids) if (sm.TryGetAccount(id, out var a)) found.Add(a);
            c.Answer = found.ToArray();
        };
        return EnqueueAsync(c, ct);
    }

    /// <summary>Looks up transfers with their pending status; missing ids are left out.</summary>
    public Task<(Transfer Transfer, PendingStatus Status)[]> LookupTransfersAsync(IReadOnlyList<UInt128> ids, CancellationToken ct = default)
    {
        var c = new Command<(Transfer, PendingStatus)[]>(CommandKind.Read);
        c.Read = sm =>
        {
            var found = new List<(Transfer, PendingStatus)>(ids.Count);
            foreach (var id in ids) if (sm.TryGetTransfer(id, out var t, out var s)) found.Add((t, s));
            c.Answer = found.ToArray();
        };
        return EnqueueAsync(c, ct);
    }

    /// <summary>
    /// One page of an account's transfers, newest first, with timestamp strictly below <paramref name="beforeTimestamp"/>;
    /// null if the account does not exist. The first page takes <see cref="long.MaxValue"/>; each next page takes the
    /// timestamp of the last transfer of the page before it. It costs the sequencer O(log N + limit), however long the
    /// history (see <see cref="LedgerStateMachine.GetAccountTransfers(UInt128, long, Span{Transfer}, out int)"/>).
    /// </summary>
    /// <exception cref="HistoryCursorException">
    /// (The task faults with it.) <paramref name="beforeTimestamp"/> is at or below the account's newest transfer and is
    /// not the timestamp of one of its transfers: only the cursors pages hand out are served.
    /// </exception>
    public Task<Transfer[]?> GetAccountTransfersAsync(UInt128 accountId, long beforeTimestamp, int limit, CancellationToken ct = default)
    {
        if (limit <= 0 || limit > LedgerLimits.HistoryLimitMax) throw new ArgumentOutOfRangeException(nameof(limit), $"limit must be 1..{LedgerLimits.HistoryLimitMax}");
        var c = new Command<Transfer[]?>(CommandKind.Read);
        c.Read = sm =>
        {
            var into = new Transfer[limit];
            switch (sm.GetAccountTransfers(accountId, beforeTimestamp, into, out int n))
            {
                case HistoryResult.AccountNotFound:
                    c.Answer = null;
                    return;
                case HistoryResult.CursorNotAnAccountTransfer:
                    // A read that throws answers its own command with the exception; the sequencer goes on.
                    throw new HistoryCursorException(accountId, beforeTimestamp);
            }
            c.Answer = n == limit ? into : into.AsSpan(0, n).ToArray();
        };
        return EnqueueAsync(c, ct);
    }

    /// <summary>Runs <paramref name="read"/> on the sequencer thread against a consistent state (tests, audits).</summary>
    public Task<T> ReadAsync<T>(Func<LedgerStateMachine, T> read, CancellationToken ct = default)
    {
        var c = new Command<T>(CommandKind.Read);
        c.Read = sm => c.Answer = read(sm);
        return EnqueueAsync(c, ct);
    }

    /// <summary>
    /// Builds a checkpoint: a Merkle sum tree over every account's posted balances at this point of the log,
    /// bound to the hash chain head. It becomes <see cref="LatestCheckpoint"/>.
    /// </summary>
    public async Task<Checkpoint> CheckpointAsync(CancellationToken ct = default)
    {
        var c = new Command<(ulong Op, long Timestamp, BalanceLeaf[] Leaves)>(CommandKind.Checkpoint);
        c.Read = sm =>
        {
            var leaves = new BalanceLeaf[sm.AccountCount];
            for (int i = 0; i < leaves.Length; i++)
            {
                ref readonly Account a = ref sm.AccountAt(i);
                leaves[i] = new BalanceLeaf(a.Id, a.Asset, a.DebitsPosted, a.CreditsPosted);
            }
            c.Answer = (_op, sm.LastTimestamp, leaves);
        };
        var r = await EnqueueAsync(c, ct).ConfigureAwait(false);
        byte[] head = c.HeadAtCompletion ?? LedgerLog.GenesisHash;
        var cp = await Task.Run(() => new Checkpoint(r.Op, r.Timestamp, head, r.Leaves), ct).ConfigureAwait(false);
        Volatile.Write(ref _latestCheckpoint, cp);
        CheckpointTaken?.Invoke(cp);
        return cp;
    }

    /// <summary>Called with each checkpoint once it is built (the chain anchor records every one), on the caller's thread.</summary>
    public Action<Checkpoint>? CheckpointTaken { get; set; }

    /// <summary>
    /// Writes a snapshot now (recovery then replays only the log after it), off the sequencer: the task completes once
    /// it is published, or faults with the writer's error (the ledger goes on serving either way, and retries later).
    /// </summary>
    public Task SnapshotAsync(CancellationToken ct = default)
    {
        if (_options.DataDirectory is null) return Task.CompletedTask;
        var c = new Command<bool>(CommandKind.Snapshot);
        return EnqueueAsync(c, ct);
    }

    /// <summary>Counters (read without synchronisation; approximate while running).</summary>
    public LedgerStats Stats => new(Volatile.Read(ref _op), Volatile.Read(ref _durableOp), Interlocked.Read(ref _groups),
        Interlocked.Read(ref _fsyncs), Volatile.Read(ref _logEnd), _sm.AccountCount, _sm.TransferCount,
        Interlocked.Read(ref _snapshots), Interlocked.Read(ref _snapshotFailures));

    /// <summary>The hash chain head and op of the last durable record.</summary>
    public (ulong Op, string Head) ChainHead
    {
        get { lock (_flusherGate) return (_durableOp, Convert.ToHexStringLower(_chainHead)); }
    }

    /// <summary>Stops taking commands, finishes those queued, writes a snapshot and closes the log.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_stopping) return;
        if (_fault is null && _options.DataDirectory is not null)
        {
            // A final snapshot only shortens the next start: if it fails (reported through SnapshotFailed), the log has everything.
            try { await SnapshotAsync().ConfigureAwait(false); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or LedgerFaultedException or ObjectDisposedException || _fault is not null) { }
        }
        _stopping = true;
        _wakeSequencer.Set();
        await Task.Run(() => _sequencer.Join()).ConfigureAwait(false);
        while (_queue.TryDequeue(out var late)) late.Fail(new ObjectDisposedException(nameof(LedgerEngine)));
        if (_flusher is not null)
        {
            _wakeFlusher.Set();
            await Task.Run(() => _flusher.Join()).ConfigureAwait(false);
        }
        // The snapshot writer reads the state machine's memory: it must be done before that is freed.
        if (_snapshotWriter is { } writer)
        {
            _snapshotWriterStop = true;
            _snapshotWake.Release();
            await Task.Run(writer.Join).ConfigureAwait(false);
        }
        _log?.Dispose();
        _lock?.Dispose();
        _sm.Dispose();
        _queueSlots.Dispose();
        _snapshotWake.Dispose();
    }

    private static void CheckBatch(int count)
    {
        if (count > LedgerLimits.BatchEventsMax)
            throw new ArgumentException($"A batch holds at most {LedgerLimits.BatchEventsMax} events; this one has {count}.");
    }

    private async Task<T> EnqueueAsync<T>(Command<T> c, CancellationToken ct)
    {
        if (_fault is not null) throw new LedgerFaultedException(_fault);
        if (_stopping) throw new ObjectDisposedException(nameof(LedgerEngine));
        await _queueSlots.WaitAsync(ct).ConfigureAwait(false);
        _queue.Enqueue(c);
        _wakeSequencer.Set();
        return await c.Completion.Task.ConfigureAwait(false);
    }

    // ================================================================== sequencer

    // The thread loops are compiled optimised from the start. Under tiering they would start at tier 0 and be
    // replaced on the stack (OSR) once hot: a synchronous compile of the whole loop on this thread, which stalled
    // every command behind it for 10-20 ms in the inference bench.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void SequencerLoop()
    {
        try
        {
            while (true)
            {
                _wakeSequencer.Reset();
                bool worked = false;
                while (_queue.TryDequeue(out var cmd))
                {
                    _queueSlots.Release();
                    worked = true;
                    if (_fault is not null) { cmd.Fail(new LedgerFaultedException(_fault)); continue; }
                    Execute(cmd);
                    MaybeStartSnapshot();
                    if (cmd.Kind == CommandKind.Checkpoint || _filling.Bytes >= _options.GroupBytesMax) HandOff(wait: true);
                    else if (FlusherIdle) HandOff(wait: false);
                }
                if (_fault is not null) { FailQueued(); return; }
                if (!_filling.IsEmpty && FlusherIdle) { HandOff(wait: false); continue; }
                if (!worked && _stopping && _queue.IsEmpty)
                {
                    if (!_filling.IsEmpty) { HandOff(wait: true); continue; }
                    foreach (var c in _snapshotWaiters) c.Fail(new ObjectDisposedException(nameof(LedgerEngine)));
                    _snapshotWaiters.Clear();
                    return;
                }
                MaybeStartSnapshot();
                MaybePulse();
                if (_queue.IsEmpty) _wakeSequencer.Wait(_options.PulseInterval);
            }
        }
        catch (Exception e)
        {
            SetFault(e);
            FailQueued();
        }
    }

    private bool FlusherIdle => _log is null || Volatile.Read(ref _handedOff) is null;

    private void Execute(Command cmd)
    {
        switch (cmd.Kind)
        {
            case CommandKind.CreateAccounts:
            {
                var c = (Command<CreateAccountResult[]>)cmd;
                var events = c.Accounts.Span;
                long ts = _sm.NextBatchTimestamp(Clock.UnixNanoseconds(_time));
                var results = new CreateAccountResult[events.Length];
                _sm.CreateAccounts(events, ts, results);
                _metrics?.Batch(events.Length);
                c.Answer = results;
                AppendRecord(LedgerOperation.CreateAccounts, ts, events.Length, MemoryMarshal.AsBytes(events));
                break;
            }
            case CommandKind.CreateTransfers:
            {
                var c = (Command<CreateTransferResult[]>)cmd;
                var events = c.Transfers.Span;
                long ts = _sm.NextBatchTimestamp(Clock.UnixNanoseconds(_time));
                var results = new CreateTransferResult[events.Length];
                _sm.CreateTransfers(events, ts, results);
                _metrics?.Batch(events.Length);
                c.Answer = results;
                AppendRecord(LedgerOperation.CreateTransfers, ts, events.Length, MemoryMarshal.AsBytes(events));
                if (c.AnswerWhenApplied) c.Succeed(); // continuations run elsewhere (RunContinuationsAsynchronously)
                break;
            }
            case CommandKind.Read:
            case CommandKind.Checkpoint:
                try { cmd.Read!(_sm); }
                catch (Exception e) when (cmd.Kind == CommandKind.Read) { cmd.Error = e; }
                break;
            case CommandKind.Snapshot:
                // Answered by the snapshot writer once published, not by the group (see MaybeStartSnapshot).
                _snapshotWaiters.Add(cmd);
                return;
            case CommandKind.Pulse:
                break;
        }
        _filling.Commands.Add(cmd);
    }

    private void MaybePulse()
    {
        long now = Clock.UnixNanoseconds(_time);
        if (_sm.NextExpiry is long due && due <= now)
        {
            long ts = _sm.NextBatchTimestamp(now);
            _sm.Pulse(ts);
            AppendRecord(LedgerOperation.Pulse, ts, 0, ReadOnlySpan<byte>.Empty);
            if (FlusherIdle) HandOff(wait: false);
        }
    }

    private void AppendRecord(LedgerOperation operation, long timestamp, int count, ReadOnlySpan<byte> body)
    {
        _op++;
        _opsSinceSnapshot++;
        if (_log is null) return;
        int start = _filling.Bytes;
        var span = _filling.Reserve(LedgerLimits.RecordHeaderBytes + body.Length);
        LedgerLog.WriteHeader(span, _op, timestamp, operation, count, body.Length);
        body.CopyTo(span[LedgerLimits.RecordHeaderBytes..]);
        _filling.Records.Add((start, span.Length));
        _filling.LastOp = _op;
        _appendedBytes += span.Length;
        _bytesSinceSnapshot += span.Length;
        if (_options.SnapshotEveryOps > 0 && _opsSinceSnapshot >= (ulong)_options.SnapshotEveryOps) _snapshotDue = true;
        if (_options.SnapshotLogBytesMin > 0 && _bytesSinceSnapshot >= _options.SnapshotLogBytesMin
            && _bytesSinceSnapshot >= (long)_sm.TransferCount * (Transfer.Size + 9) + (long)_sm.AccountCount * (Account.Size + 4))
            _snapshotDue = true;
    }

    private bool _snapshotDue;
    private long _appendedBytes;
    private long _bytesSinceSnapshot; // log bytes given to groups so far (sequencer-owned): where the next record starts

    private void HandOff(bool wait)
    {
        if (_filling.IsEmpty) return;
        if (_log is null)
        {
            // In memory: nothing to write; answer at once.
            var g = _filling;
            _filling = new Group();
            Complete(g);
            return;
        }
        lock (_flusherGate)
        {
            while (_handedOff is not null)
            {
                if (!wait) return;
                Monitor.Wait(_flusherGate);
            }
            _handedOff = _filling;
            _filling = _spare ?? new Group();
            _spare = null;
        }
        _wakeFlusher.Set();
    }

    private Group? _spare;

    // ================================================================== flusher

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // see SequencerLoop
    private void FlusherLoop()
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        while (true)
        {
            // Reset, then look, then sleep: a hand-off or a stop that sets the event after the reset is seen by the wait.
            // (Waiting first and resetting after it lost a stop's wake-up that came between the two, and the flusher then
            // slept for good with the stop waiting on it.)
            _wakeFlusher.Reset();
            var g = Volatile.Read(ref _handedOff);
            if (g is null)
            {
                if (_stopping && !_sequencer.IsAlive) return;
                _wakeFlusher.Wait();
                continue;
            }
            try
            {
                // Fail-stop: after one failed write nothing more is written; memory is ahead of the disk.
                if (_fault is not null) throw new LedgerFaultedException(_fault);
                byte[] head = _chainHead;
                var snapshot = g.Snapshot;
                byte[] headAtSnapshot = head; // the records up to the snapshot's op may all be in earlier groups
                var buffer = g.Buffer.AsSpan(0, g.Bytes);
                foreach (var (offset, length) in g.Records)
                {
                    var record = buffer.Slice(offset, length);
                    LedgerLog.Seal(sha, head, record);
                    head = record.Slice(32, 32).ToArray();
                    if (snapshot is not null && BinaryPrimitives.ReadUInt64LittleEndian(record[8..]) <= snapshot.Op) headAtSnapshot = head;
                }
                long commitStart = _time.GetTimestamp();
                if (g.Bytes > 0)
                {
                    // The test seam fails here as the disk would: before the write, half-way through it, or at the fdatasync.
                    Func<LedgerLogFaultPoint, bool>? inject = _options.InjectLogFault;
                    if (inject is not null && inject(LedgerLogFaultPoint.Write)) throw new IOException("Injected fault: the ledger log write failed.");
                    if (inject is not null && inject(LedgerLogFaultPoint.TornWrite))
                    {
                        RandomAccess.Write(_log!, g.Buffer.AsSpan(0, g.Bytes / 2), _logEnd);
                        throw new IOException("Injected fault: the ledger log write was torn.");
                    }
                    RandomAccess.Write(_log!, g.Buffer.AsSpan(0, g.Bytes), _logEnd);
                    if (inject is not null && inject(LedgerLogFaultPoint.Flush)) throw new IOException("Injected fault: the ledger log fdatasync failed.");
                    LedgerLog.FlushData(_log!);
                    Interlocked.Increment(ref _fsyncs);
                }
                lock (_flusherGate)
                {
                    _logEnd += g.Bytes;
                    _chainHead = head;
                    if (g.Records.Count > 0) _durableOp = g.LastOp;
                }
                Interlocked.Increment(ref _groups);
                _metrics?.Commit(g.Records.Count, _time.GetElapsedTime(commitStart).TotalSeconds);
                if (snapshot is not null) snapshot.SetDurable(headAtSnapshot);
                Complete(g);
            }
            catch (Exception e)
            {
                SetFault(e);
                g.Snapshot?.SetNotDurable(e);
                foreach (var c in g.Commands) c.Fail(new LedgerFaultedException(e));
            }
            lock (_flusherGate)
            {
                g.Reset();
                _spare = g;
                _handedOff = null;
                Monitor.PulseAll(_flusherGate);
            }
            _wakeSequencer.Set();
        }
    }

    private void Complete(Group g)
    {
        foreach (var c in g.Commands)
        {
            if (c.Kind == CommandKind.Checkpoint) c.HeadAtCompletion = (byte[])_chainHead.Clone();
            c.Succeed();
        }
    }

    private void SetFault(Exception e)
    {
        _fault ??= e;
        _wakeSequencer.Set();
    }

    private void FailQueued()
    {
        while (_queue.TryDequeue(out var c)) { _queueSlots.Release(); c.Fail(new LedgerFaultedException(_fault!)); }
        foreach (var c in _filling.Commands) c.Fail(new LedgerFaultedException(_fault!));
        _filling.Commands.Clear();
        _filling.Snapshot?.SetNotDurable(_fault!);
        _filling.Snapshot = null;
        foreach (var c in _snapshotWaiters) c.Fail(new LedgerFaultedException(_fault!));
        _snapshotWaiters.Clear();
    }

    // ================================================================== snapshots

    private SnapshotJob? _snapshotJob;                 // the snapshot being written (sequencer-owned reference)
    private List<Command> _snapshotWaiters = new();    // SnapshotAsync calls waiting for the next snapshot to publish
    private int _snapshotFailuresInARow;
    private long _snapshotRetryAt;                     // TimeProvider timestamp before which a due snapshot is not retried

    /// <summary>
    /// On the sequencer: collects the outcome of a finished snapshot and starts the next one when asked for
    /// (<see cref="SnapshotAsync"/>) or due (log growth), one at a time. A failed one is retried after a backoff.
    /// </summary>
    private void MaybeStartSnapshot()
    {
        if (_log is null) return;
        if (_snapshotJob is { } running)
        {
            if (!running.Done) return;
            _snapshotJob = null;
            if (running.Error is null) _snapshotFailuresInARow = 0;
            else
            {
                // The log has everything, so a failed snapshot costs only recovery time: try again later, not in a tight loop.
                _snapshotFailuresInARow++;
                _snapshotDue = true;
                double delay = Math.Min(_options.SnapshotRetryDelayMax.TotalSeconds,
                    _options.SnapshotRetryDelayMin.TotalSeconds * Math.Pow(2, Math.Min(30, _snapshotFailuresInARow - 1)));
                _snapshotRetryAt = _time.GetTimestamp() + (long)(delay * _time.TimestampFrequency);
            }
        }
        if (_fault is not null) return;
        if (_snapshotWaiters.Count == 0 && !(_snapshotDue && _time.GetTimestamp() >= _snapshotRetryAt)) return;

        // The sequencer's whole part: an image of the state at op N (a copy of the accounts, the chunk pointers). The
        // writer thread writes it while batches go on; the flusher gives it the chain head at N once N is durable.
        var job = new SnapshotJob(_sm.CaptureImage(), _op, _appendedBytes, _snapshotWaiters);
        _snapshotWaiters = new List<Command>();
        _opsSinceSnapshot = 0;
        _bytesSinceSnapshot = 0;
        _snapshotDue = false;
        if (_filling.Snapshot is not null) throw new InvalidOperationException("Two snapshots in one group.");
        _filling.Snapshot = job;
        _snapshotJob = job;
        // Handed to the writer thread that waits for it (starting a thread here would cost the sequencer milliseconds).
        Volatile.Write(ref _snapshotToWrite, job);
        _snapshotWake.Release();
    }

    private readonly Thread? _snapshotWriter;
    private readonly SemaphoreSlim _snapshotWake = new(0);
    private SnapshotJob? _snapshotToWrite;
    private volatile bool _snapshotWriterStop;

    private void SnapshotWriterLoop()
    {
        while (true)
        {
            _snapshotWake.Wait();
            if (Interlocked.Exchange(ref _snapshotToWrite, null) is { } job) WriteSnapshot(job);
            else if (_snapshotWriterStop) return;
        }
    }

    /// <summary>
    /// On the snapshot writer's thread: writes the image to a temporary file, waits until the log is durable up to the
    /// image's op (then its chain head is known, and the snapshot can never be ahead of the log), writes the header,
    /// fsyncs and renames it into place. Any failure deletes the temporary file, is counted and reported, and never
    /// reaches the sequencer or the flusher.
    /// </summary>
    private void WriteSnapshot(SnapshotJob job)
    {
        string dir = _options.DataDirectory!;
        string temp = Path.Combine(dir, SnapshotFileName + ".tmp");
        try
        {
            using (var fs = new FileStream(temp, FileMode.Create, FileAccess.ReadWrite, FileShare.None, 1 << 20))
            {
                fs.Write(new byte[SnapshotFile.HeaderBytes]);
                using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
                Stream target = _options.SnapshotStreamWrapper?.Invoke(fs) ?? fs;
                // Synced every few MiB as it goes: one fsync of the whole file at the end would put hundreds of MiB of
                // dirty pages in front of the log's next fdatasync on the same disk (a commit pause for every client).
                // Before each sync it lets a log group being committed finish first (for a bounded time), so the log's
                // fdatasync, which clients wait for, does not queue behind the snapshot's writes.
                var hashing = new HashingWriteStream(target, sha, fs, SnapshotSyncBytes, YieldToLog);
                try { job.Image.WriteTo(hashing); }
                finally { job.Image.Finish(); }
                hashing.Flush();
                long stateBytes = fs.Length - SnapshotFile.HeaderBytes;
                byte[] stateHash = sha.GetHashAndReset();
                byte[] head = job.WaitDurable(() => _fault is not null && _flusher is { IsAlive: false });
                Span<byte> header = stackalloc byte[SnapshotFile.HeaderBytes];
                SnapshotFile.WriteHeader(header, job.Op, job.LogOffset, head, stateBytes, stateHash);
                fs.Position = 0;
                fs.Write(header);
                fs.Flush(flushToDisk: true);
            }
            File.Move(temp, Path.Combine(dir, SnapshotFileName), overwrite: true);
            LedgerLog.FlushDirectory(dir);
            Interlocked.Increment(ref _snapshots);
        }
        catch (Exception e)
        {
            // Whatever went wrong (a full disk, an I/O error, a bug), the ledger goes on: the log has everything.
            job.Image.Finish();
            job.Error = e;
            Interlocked.Increment(ref _snapshotFailures);
            try { File.Delete(temp); } catch (Exception d) when (d is IOException or UnauthorizedAccessException) { }
            try { _options.SnapshotFailed?.Invoke(e); }
            catch (Exception) { } // a failing report must not turn a lost snapshot into a lost process
        }
        job.Done = true;
        foreach (var c in job.Waiters)
        {
            c.Error = job.Error;
            c.Succeed();
        }
        _wakeSequencer.Set();
    }

    /// <summary>A snapshot in progress: the image at op N, where the log stands at N, and who waits for it.</summary>
    private sealed class SnapshotJob(LedgerStateMachine.StateImage image, ulong op, long logOffset, List<Command> waiters)
    {
        public readonly LedgerStateMachine.StateImage Image = image;
        public readonly ulong Op = op;
        public readonly long LogOffset = logOffset;
        public readonly List<Command> Waiters = waiters;
        public Exception? Error;
        public volatile bool Done;
        private readonly ManualResetEventSlim _durable = new(false);
        private byte[]? _head;
        private Exception? _notDurable;

        /// <summary>The flusher made the log durable up to <see cref="Op"/>; <paramref name="head"/> is the chain head there.</summary>
        public void SetDurable(byte[] head)
        {
            _head = head;
            _durable.Set();
        }

        /// <summary>The group holding the snapshot's op never became durable.</summary>
        public void SetNotDurable(Exception e)
        {
            _notDurable = e;
            _durable.Set();
        }

        /// <summary>Waits until the log is durable up to <see cref="Op"/> and returns the chain head there.</summary>
        public byte[] WaitDurable(Func<bool> gaveUp)
        {
            while (!_durable.Wait(TimeSpan.FromSeconds(1)))
                if (gaveUp()) throw new IOException("The ledger stopped before the log was durable up to the snapshot.");
            if (_notDurable is { } e) throw new IOException("The log did not become durable up to the snapshot: " + e.Message, e);
            return _head!;
        }
    }

    /// <summary>
    /// Opens the folder's state. The rule: a torn tail (a bad record with nothing that looks like a record after it)
    /// is truncated; anything else is corruption and nothing is touched. Checked before anything is written: the
    /// snapshot (checksums, state), the log's length against the snapshot, the log's hash chain from genesis up to the
    /// snapshot (read beside the snapshot's load) against its chain head, then the replay of the rest.
    /// </summary>
    /// <exception cref="LedgerCorruptException">The folder is damaged in a way a crash cannot explain.</exception>
    private RecoveryReport Recover(string dir, out LedgerStateMachine sm)
    {
        var sw = Stopwatch.StartNew();
        string logPath = Path.Combine(dir, LogFileName);
        string snapPath = Path.Combine(dir, SnapshotFileName);
        // A snapshot a crash interrupted was never published: it is not state.
        File.Delete(snapPath + ".tmp");
        long logLength = File.Exists(logPath) ? new FileInfo(logPath).Length : 0;
        ulong snapOp = 0;
        long offset = 0;
        byte[] head = LedgerLog.GenesisHash;
        SnapshotHeader? snap = File.Exists(snapPath) ? SnapshotFile.Read(snapPath) : null;
        LedgerStateMachine? machine = null;
        try
        {
            if (snap is not null)
            {
                if (logLength < snap.LogOffset)
                    throw new LedgerCorruptException(logPath, logLength, snap.Op,
                        $"the log ends at byte {logLength}, before byte {snap.LogOffset} where the snapshot says op {snap.Op} ends");
                // The log up to the snapshot is not replayed, but it is the audit record and what the snapshot's chain
                // head must extend: its hash chain is checked beside the snapshot's load (hashing only, no replay).
                var prefix = Task.Run(() => LedgerLog.Scan(logPath, 0, 0, LedgerLog.GenesisHash, null, snap.LogOffset));
                try { machine = SnapshotFile.LoadState(snapPath, snap); }
                finally { prefix.Wait(); }
                var p = prefix.Result;
                if (p.StopReason is not null)
                    throw new LedgerCorruptException(logPath, p.ValidBytes, p.LastOp + 1,
                        $"{p.StopReason}, before byte {snap.LogOffset} where the snapshot says op {snap.Op} ends");
                if (p.LastOp != snap.Op || !p.LastHash.AsSpan().SequenceEqual(snap.ChainHead))
                    throw new LedgerCorruptException(snapPath, 24, snap.Op,
                        $"a chain break: the snapshot's chain head at op {snap.Op} is not the log's (op {p.LastOp} ending at byte {p.ValidBytes})");
                snapOp = snap.Op;
                offset = snap.LogOffset;
                head = snap.ChainHead;
            }
            else machine = new LedgerStateMachine(_options.AccountsCapacity, _options.TransfersCapacity);

            var replaying = machine;
            var scan = LedgerLog.Scan(logPath, offset, snapOp, head, r => ReplayChecked(replaying, r, logPath));
            long truncated = 0;
            if (scan.StopReason is not null)
            {
                if (LedgerLog.FindRecordAfter(logPath, scan.ValidBytes, scan.LastOp) is { } after)
                    throw new LedgerCorruptException(logPath, scan.ValidBytes, scan.LastOp + 1,
                        $"{scan.StopReason}, and a record (op {after.Op}) follows at byte {after.Offset}: not a torn tail");
                // Provably torn: nothing after the bad record looks like a record. The crash interrupted the last group
                // write, which was never acknowledged.
                truncated = scan.FileBytes - scan.ValidBytes;
                using var h = File.OpenHandle(logPath, FileMode.Open, FileAccess.ReadWrite);
                RandomAccess.SetLength(h, scan.ValidBytes);
                RandomAccess.FlushToDisk(h);
            }
            try { machine.AssertInvariants(); }
            catch (InvalidOperationException e)
            {
                throw new LedgerCorruptException(logPath, scan.ValidBytes, scan.LastOp, "the replayed state breaks an invariant: " + e.Message, e);
            }
            sm = machine;
            _op = scan.LastOp;
            _durableOp = scan.LastOp;
            _chainHead = scan.LastHash;
            _logEnd = scan.ValidBytes;
            _appendedBytes = scan.ValidBytes;
            return new RecoveryReport(snap is not null, snapOp, scan.Records, scan.LastOp, truncated, truncated > 0 ? scan.StopReason : null, sw.Elapsed);
        }
        catch
        {
            machine?.Dispose();
            throw;
        }
    }

    /// <summary>Replays a record whose hash checked; a record the state machine cannot apply is corruption.</summary>
    private static void ReplayChecked(LedgerStateMachine sm, LogRecord r, string logPath)
    {
        try { Replay(sm, r); }
        catch (Exception e) when (e is ArgumentException or InvalidDataException or InvalidOperationException or OverflowException)
        {
            throw new LedgerCorruptException(logPath, r.Offset, r.Op, "the record does not replay: " + e.Message, e);
        }
    }

    /// <summary>Applies one log record to a state machine (recovery and offline verification).</summary>
    public static void Replay(LedgerStateMachine sm, LogRecord r)
    {
        switch (r.Operation)
        {
            case LedgerOperation.CreateAccounts:
            {
                var events = MemoryMarshal.Cast<byte, Account>(r.Body.Span);
                Span<CreateAccountResult> results = new CreateAccountResult[events.Length];
                sm.CreateAccounts(events, r.Timestamp, results);
                break;
            }
            case LedgerOperation.CreateTransfers:
            {
                var events = MemoryMarshal.Cast<byte, Transfer>(r.Body.Span);
                Span<CreateTransferResult> results = new CreateTransferResult[events.Length];
                sm.CreateTransfers(events, r.Timestamp, results);
                break;
            }
            case LedgerOperation.Pulse:
                sm.Pulse(r.Timestamp);
                break;
            default:
                throw new InvalidDataException($"Unknown log operation {r.Operation}.");
        }
    }

    /// <summary>
    /// Verifies a data folder offline and changes nothing: the whole log's hash chain from genesis and a full replay
    /// whose invariants must hold; and the snapshot, if any: its checksums, and that at its op the log's chain head, the
    /// log offset and the replayed state's hash are the snapshot's. A torn tail is reported (it is truncated at the next
    /// start); a bad record followed by valid ones is not a torn tail.
    /// </summary>
    /// <exception cref="FileNotFoundException">No ledger log in <paramref name="dir"/>.</exception>
    /// <exception cref="LedgerCorruptException">The folder is damaged (the one-line message names file, offset and op).</exception>
    public static LedgerVerifyReport VerifyDirectory(string dir)
    {
        string logPath = Path.Combine(dir, LogFileName);
        string snapPath = Path.Combine(dir, SnapshotFileName);
        if (!File.Exists(logPath)) throw new FileNotFoundException($"No ledger log in {dir}.");
        long logLength = new FileInfo(logPath).Length;
        SnapshotHeader? snap = File.Exists(snapPath) ? SnapshotFile.Read(snapPath) : null;
        if (snap is not null && logLength < snap.LogOffset)
            throw new LedgerCorruptException(logPath, logLength, snap.Op,
                $"the log ends at byte {logLength}, before byte {snap.LogOffset} where the snapshot says op {snap.Op} ends");
        using var sm = new LedgerStateMachine();
        bool snapshotChecked = false;
        void CheckSnapshotAt(ulong op, long end, ReadOnlySpan<byte> chainHead)
        {
            if (snap is null || op != snap.Op) return;
            if (end != snap.LogOffset)
                throw new LedgerCorruptException(snapPath, 16, snap.Op, $"the snapshot says op {snap.Op} ends at byte {snap.LogOffset}; in the log it ends at byte {end}");
            if (!chainHead.SequenceEqual(snap.ChainHead))
                throw new LedgerCorruptException(snapPath, 24, snap.Op, $"a chain break: the snapshot's chain head at op {snap.Op} is not the log's");
            if (!sm.ComputeStateHash().AsSpan().SequenceEqual(snap.StateHash))
                throw new LedgerCorruptException(snapPath, snap.StateOffset, snap.Op, $"the snapshot's state is not the log's replayed to op {snap.Op}");
            snapshotChecked = true;
        }
        CheckSnapshotAt(0, 0, LedgerLog.GenesisHash);
        var scan = LedgerLog.Scan(logPath, 0, 0, LedgerLog.GenesisHash, r =>
        {
            ReplayChecked(sm, r, logPath);
            CheckSnapshotAt(r.Op, r.End, r.Hash);
        });
        if (scan.StopReason is not null && LedgerLog.FindRecordAfter(logPath, scan.ValidBytes, scan.LastOp) is { } after)
            throw new LedgerCorruptException(logPath, scan.ValidBytes, scan.LastOp + 1,
                $"{scan.StopReason}, and a record (op {after.Op}) follows at byte {after.Offset}: not a torn tail");
        if (snap is not null && !snapshotChecked)
            throw new LedgerCorruptException(logPath, scan.ValidBytes, scan.LastOp + 1,
                $"the valid log ends at op {scan.LastOp}, before op {snap.Op} of the snapshot");
        try { sm.AssertInvariants(); }
        catch (InvalidOperationException e)
        {
            throw new LedgerCorruptException(logPath, scan.ValidBytes, scan.LastOp, "the replayed state breaks an invariant: " + e.Message, e);
        }
        return new LedgerVerifyReport(scan.Records, scan.LastOp, Convert.ToHexStringLower(scan.LastHash), scan.FileBytes - scan.ValidBytes,
            scan.StopReason, sm.ComputeStateHash(), snap?.Op);
    }

    // ================================================================== plumbing

    private enum CommandKind : byte { CreateAccounts, CreateTransfers, Read, Checkpoint, Snapshot, Pulse }

    private abstract class Command(CommandKind kind)
    {
        public CommandKind Kind { get; } = kind;
        public Action<LedgerStateMachine>? Read;
        public Exception? Error;
        public byte[]? HeadAtCompletion;
        public bool AnswerWhenApplied;
        public abstract void Succeed();
        public abstract void Fail(Exception e);
    }

    private sealed class Command<T>(CommandKind kind) : Command(kind)
    {
        public ReadOnlyMemory<Account> Accounts;
        public ReadOnlyMemory<Transfer> Transfers;
        public T Answer = default!;
        public readonly TaskCompletionSource<T> Completion = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public override void Succeed()
        {
            if (Error is not null) Completion.TrySetException(Error);
            else Completion.TrySetResult(Answer);
        }

        public override void Fail(Exception e) => Completion.TrySetException(e);
    }

    private sealed class Group
    {
        public byte[] Buffer = new byte[1 << 20];
        public int Bytes;
        public ulong LastOp;
        public readonly List<(int Offset, int Length)> Records = new();
        public readonly List<Command> Commands = new();
        public SnapshotJob? Snapshot; // a snapshot whose op falls in (or before) this group: the flusher gives it its chain head

        public Span<byte> Reserve(int length)
        {
            if (Bytes + length > Buffer.Length)
                Array.Resize(ref Buffer, Math.Max(Buffer.Length * 2, Bytes + length));
            var span = Buffer.AsSpan(Bytes, length);
            Bytes += length;
            return span;
        }

        public bool IsEmpty => Commands.Count == 0 && Records.Count == 0 && Snapshot is null;

        public void Reset()
        {
            Bytes = 0;
            LastOp = 0;
            Records.Clear();
            Commands.Clear();
            Snapshot = null;
        }
    }

    /// <summary>How much of a snapshot is written between two fsyncs of its file.</summary>
    private const int SnapshotSyncBytes = 2 << 20;

    /// <summary>The snapshot writer waits at most this long for a log group in flight before its next sync.</summary>
    private static readonly TimeSpan SnapshotYieldMax = TimeSpan.FromMilliseconds(5);

    private void YieldToLog()
    {
        long until = Stopwatch.GetTimestamp() + (long)(SnapshotYieldMax.TotalSeconds * Stopwatch.Frequency);
        lock (_flusherGate)
        {
            while (_handedOff is not null)
            {
                long left = until - Stopwatch.GetTimestamp();
                if (left <= 0) return;
                Monitor.Wait(_flusherGate, TimeSpan.FromSeconds((double)left / Stopwatch.Frequency));
            }
        }
    }

    private sealed class HashingWriteStream(Stream inner, IncrementalHash sha, FileStream file, long syncEveryBytes, Action? beforeSync = null) : Stream
    {
        private long _unsynced;

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            sha.AppendData(buffer);
            inner.Write(buffer);
            _unsynced += buffer.Length;
            if (_unsynced >= syncEveryBytes)
            {
                beforeSync?.Invoke();
                inner.Flush();
                file.Flush(flushToDisk: true);
                _unsynced = 0;
            }
        }

        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() => inner.Flush();
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
    }
}

/// <summary>The ledger stopped after an I/O failure; no later command is accepted (fail-stop).</summary>
public sealed class LedgerFaultedException(Exception inner) : Exception("The ledger stopped after a storage failure: " + inner.Message, inner);

/// <summary>
/// A history cursor that names no transfer of the account (see <see cref="LedgerEngine.GetAccountTransfersAsync"/>):
/// the caller sent a value no page handed out. It is the caller's error (an HTTP 400), not the ledger's.
/// </summary>
public sealed class HistoryCursorException(UInt128 accountId, long beforeTimestamp) : ArgumentException(
    $"The cursor {beforeTimestamp} is not the timestamp of a transfer of account {accountId}: leave it out for the newest page, " +
    "or pass the timestamp of the last transfer of the page before.")
{
    /// <summary>The account whose history was asked for.</summary>
    public UInt128 AccountId { get; } = accountId;

    /// <summary>The refused cursor.</summary>
    public long BeforeTimestamp { get; } = beforeTimestamp;
}

/// <summary>
/// A ledger file is damaged in a way a crash cannot explain (a bad record followed by valid ones, a log shorter than
/// its snapshot, a chain break, a snapshot that fails its checksum): the ledger refuses to start rather than guess.
/// Its message is one line naming the file, the byte offset and the op.
/// </summary>
public sealed class LedgerCorruptException(string file, long offset, ulong op, string reason, Exception? inner = null)
    : Exception($"ledger corrupt: {file} at byte {offset}, op {op}: {reason.ReplaceLineEndings(" ")}", inner)
{
    /// <summary>The damaged file.</summary>
    public string File { get; } = file;

    /// <summary>Byte offset in <see cref="File"/> where the damage was found.</summary>
    public long Offset { get; } = offset;

    /// <summary>The op at that place (the record expected there, or the snapshot's op).</summary>
    public ulong Op { get; } = op;

    /// <summary>What is wrong, in words.</summary>
    public string Reason { get; } = reason;
}
