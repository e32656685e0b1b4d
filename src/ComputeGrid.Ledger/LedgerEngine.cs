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

    /// <summary>Expected numbers of accounts and transfers, to size the in-memory indexes.</summary>
    public int AccountsCapacity { get; init; } = 1 << 14;
    public int TransfersCapacity { get; init; } = 1 << 20;
}

/// <summary>What recovery found when the engine opened its folder.</summary>
public sealed record RecoveryReport(bool SnapshotLoaded, ulong SnapshotOp, int RecordsReplayed, ulong LastOp, long TruncatedBytes, string? StopReason, TimeSpan Elapsed);

/// <summary>Counters for metrics and benchmarks.</summary>
/// <summary>When a write is answered: once durable (the default), or once applied in order (see <see cref="LedgerEngine.CreateTransfersAsync(ReadOnlyMemory{Transfer}, LedgerAck, CancellationToken)"/>).</summary>
public enum LedgerAck
{
    /// <summary>After the batch is on stable storage.</summary>
    Durable,
    /// <summary>After the sequencer has applied the batch, before it is on stable storage.</summary>
    Applied,
}

public readonly record struct LedgerStats(ulong CommittedOp, ulong DurableOp, long Groups, long Fsyncs, long LogBytes, int Accounts, int Transfers);

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
/// Recovery loads the newest valid snapshot, replays the log after it and truncates a torn tail.
/// </summary>
public sealed class LedgerEngine : IAsyncDisposable
{
    private const string LogFileName = "ledger.log";
    private const string SnapshotFileName = "ledger.snapshot";
    private const uint SnapshotFileMagic = 0x50534743; // "CGSP"

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
    private long _groups, _fsyncs;
    private ulong _opsSinceSnapshot;
    private Checkpoint? _latestCheckpoint;

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
            Recovery = Recover(options.DataDirectory, out _sm);
            _log = File.OpenHandle(Path.Combine(options.DataDirectory, LogFileName), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.Read);
            _flusher = new Thread(FlusherLoop) { Name = "ledger-flusher", IsBackground = true };
        }
        _sequencer = new Thread(SequencerLoop) { Name = "ledger-sequencer", IsBackground = true };
        _sequencer.Start();
        _flusher?.Start();
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
        return cp;
    }

    /// <summary>Writes a snapshot now (recovery then replays only the log after it).</summary>
    public Task SnapshotAsync(CancellationToken ct = default)
    {
        if (_options.DataDirectory is null) return Task.CompletedTask;
        var c = new Command<bool>(CommandKind.Snapshot);
        return EnqueueAsync(c, ct);
    }

    /// <summary>Counters (read without synchronisation; approximate while running).</summary>
    public LedgerStats Stats => new(Volatile.Read(ref _op), Volatile.Read(ref _durableOp), Interlocked.Read(ref _groups),
        Interlocked.Read(ref _fsyncs), Volatile.Read(ref _logEnd), _sm.AccountCount, _sm.TransferCount);

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
            try { await SnapshotAsync().ConfigureAwait(false); } catch (Exception) when (_fault is not null) { }
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
        _log?.Dispose();
        _lock?.Dispose();
        _sm.Dispose();
        _queueSlots.Dispose();
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
                    if (_snapshotDue)
                    {
                        // A periodic snapshot rides in the group like a command, so it is published only once
                        // the log covers it; the group ends with it, so the chain head then is its own.
                        var snap = new Command<bool>(CommandKind.Snapshot) { SnapshotTemp = WriteSnapshotTemp() };
                        _filling.Commands.Add(snap);
                        HandOff(wait: true);
                    }
                    else if (cmd.Kind is CommandKind.Snapshot or CommandKind.Checkpoint || _filling.Bytes >= _options.GroupBytesMax)
                        HandOff(wait: true);
                    else if (FlusherIdle) HandOff(wait: false);
                }
                if (_fault is not null) { FailQueued(); return; }
                if (!_filling.IsEmpty && FlusherIdle) { HandOff(wait: false); continue; }
                if (!worked && _stopping && _queue.IsEmpty)
                {
                    if (!_filling.IsEmpty) { HandOff(wait: true); continue; }
                    return;
                }
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
                cmd.SnapshotTemp = WriteSnapshotTemp();
                break;
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
            Complete(g, _op);
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
            _wakeFlusher.Wait();
            _wakeFlusher.Reset();
            var g = Volatile.Read(ref _handedOff);
            if (g is null)
            {
                if (_stopping && !_sequencer.IsAlive) return;
                continue;
            }
            try
            {
                // Fail-stop: after one failed write nothing more is written; memory is ahead of the disk.
                if (_fault is not null) throw new LedgerFaultedException(_fault);
                byte[] head = _chainHead;
                var buffer = g.Buffer.AsSpan(0, g.Bytes);
                foreach (var (offset, length) in g.Records)
                {
                    var record = buffer.Slice(offset, length);
                    LedgerLog.Seal(sha, head, record);
                    head = record.Slice(32, 32).ToArray();
                }
                if (g.Bytes > 0)
                {
                    RandomAccess.Write(_log!, g.Buffer.AsSpan(0, g.Bytes), _logEnd);
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
                Complete(g, _durableOp);
            }
            catch (Exception e)
            {
                SetFault(e);
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

    private void Complete(Group g, ulong durableOp)
    {
        foreach (var c in g.Commands)
        {
            if (c.Kind == CommandKind.Snapshot)
            {
                // A snapshot that cannot be written costs only recovery time: the log has everything.
                try { PublishSnapshot(c, durableOp); }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    c.Error = e;
                    try { if (c.SnapshotTemp is { } t) File.Delete(t.Path); } catch (IOException) { }
                }
            }
            else if (c.Kind == CommandKind.Checkpoint) c.HeadAtCompletion = (byte[])_chainHead.Clone();
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
    }

    // ================================================================== snapshots

    /// <summary>
    /// Writes the state to a temporary file on the sequencer thread (the state may not change meanwhile). It
    /// is completed and renamed into place by <see cref="PublishSnapshot"/> once the log is durable up to it.
    /// File layout: magic u32, version u32, op u64, log offset i64, chain head [32], state bytes i64,
    /// state SHA-256 [32], then the state (<see cref="LedgerStateMachine.WriteState"/>).
    /// </summary>
    private SnapshotTemp? WriteSnapshotTemp()
    {
        if (_options.DataDirectory is null) return null;
        _opsSinceSnapshot = 0;
        _bytesSinceSnapshot = 0;
        _snapshotDue = false;
        string temp = Path.Combine(_options.DataDirectory, SnapshotFileName + ".tmp");
        using var fs = new FileStream(temp, FileMode.Create, FileAccess.ReadWrite, FileShare.None, 1 << 20);
        fs.Write(new byte[SnapshotHeaderBytes]);
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        using (var hashing = new HashingWriteStream(fs, sha)) _sm.WriteState(hashing);
        long stateBytes = fs.Length - SnapshotHeaderBytes;
        return new SnapshotTemp(temp, _op, _appendedBytes, stateBytes, sha.GetHashAndReset());
    }

    private const int SnapshotHeaderBytes = 4 + 4 + 8 + 8 + 32 + 8 + 32;

    private sealed record SnapshotTemp(string Path, ulong Op, long LogOffset, long StateBytes, byte[] StateHash);

    private void PublishSnapshot(Command c, ulong durableOp)
    {
        var s = c.SnapshotTemp;
        if (s is null) return;
        if (s.Op > durableOp) throw new InvalidOperationException("Snapshot ahead of the durable log.");
        Span<byte> header = stackalloc byte[SnapshotHeaderBytes];
        BinaryPrimitives.WriteUInt32LittleEndian(header, SnapshotFileMagic);
        BinaryPrimitives.WriteUInt32LittleEndian(header[4..], 1);
        BinaryPrimitives.WriteUInt64LittleEndian(header[8..], s.Op);
        BinaryPrimitives.WriteInt64LittleEndian(header[16..], s.LogOffset);
        // The group ends with the snapshot, so the chain head after it is the head at the snapshot's op.
        if (s.Op != durableOp) throw new InvalidOperationException("A snapshot must end its group.");
        _chainHead.CopyTo(header[24..]);
        BinaryPrimitives.WriteInt64LittleEndian(header[56..], s.StateBytes);
        s.StateHash.CopyTo(header[64..]);
        using (var handle = File.OpenHandle(s.Path, FileMode.Open, FileAccess.ReadWrite))
        {
            RandomAccess.Write(handle, header, 0);
            RandomAccess.FlushToDisk(handle);
        }
        File.Move(s.Path, Path.Combine(_options.DataDirectory!, SnapshotFileName), overwrite: true);
        LedgerLog.FlushDirectory(_options.DataDirectory!);
    }

    private RecoveryReport Recover(string dir, out LedgerStateMachine sm)
    {
        var sw = Stopwatch.StartNew();
        string logPath = Path.Combine(dir, LogFileName);
        string snapPath = Path.Combine(dir, SnapshotFileName);
        sm = null!;
        ulong snapOp = 0;
        long offset = 0;
        byte[] head = LedgerLog.GenesisHash;
        bool loaded = false;
        if (File.Exists(snapPath))
        {
            try
            {
                using var fs = new FileStream(snapPath, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
                Span<byte> header = stackalloc byte[SnapshotHeaderBytes];
                fs.ReadExactly(header);
                if (BinaryPrimitives.ReadUInt32LittleEndian(header) != SnapshotFileMagic) throw new InvalidDataException("bad snapshot magic");
                ulong op = BinaryPrimitives.ReadUInt64LittleEndian(header[8..]);
                long logOffset = BinaryPrimitives.ReadInt64LittleEndian(header[16..]);
                byte[] chainHead = header.Slice(24, 32).ToArray();
                long stateBytes = BinaryPrimitives.ReadInt64LittleEndian(header[56..]);
                byte[] stateHash = header.Slice(64, 32).ToArray();
                if (fs.Length != SnapshotHeaderBytes + stateBytes) throw new InvalidDataException("snapshot length");
                using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
                var buf = new byte[1 << 20];
                int n;
                while ((n = fs.Read(buf)) > 0) sha.AppendData(buf, 0, n);
                if (!sha.GetHashAndReset().AsSpan().SequenceEqual(stateHash)) throw new InvalidDataException("snapshot checksum");
                fs.Position = SnapshotHeaderBytes;
                sm = LedgerStateMachine.ReadState(fs);
                snapOp = op; offset = logOffset; head = chainHead; loaded = true;
            }
            catch (Exception e) when (e is InvalidDataException or EndOfStreamException)
            {
                // A damaged snapshot is only an optimisation lost: the log has everything.
                sm = null!;
            }
        }
        if (!loaded)
        {
            sm = new LedgerStateMachine(_options.AccountsCapacity, _options.TransfersCapacity);
            snapOp = 0; offset = 0; head = LedgerLog.GenesisHash;
        }
        var machine = sm;
        var scan = LedgerLog.Scan(logPath, offset, snapOp, head, r => Replay(machine, r));
        long truncated = scan.FileBytes - scan.ValidBytes;
        if (truncated > 0)
        {
            using var h = File.OpenHandle(logPath, FileMode.Open, FileAccess.ReadWrite);
            RandomAccess.SetLength(h, scan.ValidBytes);
            RandomAccess.FlushToDisk(h);
        }
        if (scan.ValidBytes < offset) throw new InvalidDataException("The log is shorter than the snapshot says: refusing to start.");
        sm.AssertInvariants();
        _op = scan.LastOp;
        _durableOp = scan.LastOp;
        _chainHead = scan.LastHash;
        _logEnd = scan.ValidBytes;
        _appendedBytes = scan.ValidBytes;
        return new RecoveryReport(loaded, snapOp, scan.Records, scan.LastOp, truncated, truncated > 0 ? scan.StopReason : null, sw.Elapsed);
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
    /// Verifies a data folder offline: the whole log's hash chain from genesis, and that replaying it gives
    /// a state whose invariants hold. Returns the record count, last op and chain head.
    /// </summary>
    public static (int Records, ulong LastOp, string Head, long TrailingBytes, byte[] StateHash) VerifyDirectory(string dir)
    {
        string logPath = Path.Combine(dir, LogFileName);
        if (!File.Exists(logPath)) throw new FileNotFoundException($"No ledger log in {dir}.");
        var sm = new LedgerStateMachine();
        var scan = LedgerLog.Scan(logPath, 0, 0, LedgerLog.GenesisHash, r => Replay(sm, r));
        sm.AssertInvariants();
        return (scan.Records, scan.LastOp, Convert.ToHexStringLower(scan.LastHash), scan.FileBytes - scan.ValidBytes, sm.ComputeStateHash());
    }

    // ================================================================== plumbing

    private enum CommandKind : byte { CreateAccounts, CreateTransfers, Read, Checkpoint, Snapshot, Pulse }

    private abstract class Command(CommandKind kind)
    {
        public CommandKind Kind { get; } = kind;
        public Action<LedgerStateMachine>? Read;
        public Exception? Error;
        public SnapshotTemp? SnapshotTemp;
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

        public Span<byte> Reserve(int length)
        {
            if (Bytes + length > Buffer.Length)
                Array.Resize(ref Buffer, Math.Max(Buffer.Length * 2, Bytes + length));
            var span = Buffer.AsSpan(Bytes, length);
            Bytes += length;
            return span;
        }

        public bool IsEmpty => Commands.Count == 0 && Records.Count == 0;

        public void Reset()
        {
            Bytes = 0;
            LastOp = 0;
            Records.Clear();
            Commands.Clear();
        }
    }

    private sealed class HashingWriteStream(Stream inner, IncrementalHash sha) : Stream
    {
        public override void Write(ReadOnlySpan<byte> buffer) { sha.AppendData(buffer); inner.Write(buffer); }
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
