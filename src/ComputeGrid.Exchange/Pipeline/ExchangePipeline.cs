using System.Threading.Channels;
using ComputeGrid.Core;
using ComputeGrid.Exchange.StateMachine;
using ComputeGrid.Exchange.Trading;
using ComputeGrid.Ledger;

namespace ComputeGrid.Exchange.Pipeline;

/// <summary>Settings of the pipeline.</summary>
public sealed record PipelineOptions
{
    /// <summary>Most commands in one batch (one journal record, one fsync, one or a few ledger batches).</summary>
    public int BatchMax { get; init; } = 4096;

    /// <summary>Commands waiting to be sequenced before submitters wait (back-pressure).</summary>
    public int QueueMax { get; init; } = 1 << 16;

    /// <summary>Batches at the journal's end whose ledger effects are submitted again at start (the ledger's ids make it idempotent).</summary>
    public int ResubmitBatches { get; init; } = 8;

    /// <summary>
    /// Called by the sequencer after each batch that traded, with the batch's fills in sequence order and the state
    /// machine (both only for the call: copy what you keep). Its commands are in the journal by then, so a replay makes
    /// the same fills. Market data hangs here, off the hot path: the callback should only hand the fills on.
    /// </summary>
    public Action<List<FillRecord>, ExchangeStateMachine>? Traded { get; init; }

    /// <summary>
    /// A new, empty state machine (over an empty registry) for a rebuild: a command that throws part-way is excluded and
    /// the machine rebuilt from the journal without it, so it leaves no trace. Without it (or without a journal) such a
    /// command stops the pipeline.
    /// </summary>
    public Func<ExchangeStateMachine>? Rebuild { get; init; }

    /// <summary>
    /// Called when a replay begins again (at start, a command was excluded; or a compensation changed trades already fed):
    /// everything <see cref="Traded"/> fed is to be forgotten; the replay feeds it again (trade sequences included).
    /// </summary>
    public Action? ReplayRestarting { get; init; }

    /// <summary>
    /// Commands between snapshots of the state machine (0: none). A start restores the newest snapshot and replays only
    /// the journal after it, so a restart takes time in the size of the state, not the length of the history. (Market data
    /// fed through <see cref="Traded"/> is then rebuilt from the replayed tail only.)
    /// </summary>
    public long SnapshotEveryCommands { get; init; } = 1_000_000;

    /// <summary>
    /// A start from a snapshot checks the journal before the snapshot's position (the hash chain from the first record
    /// must end exactly there) in the background, once the exchange runs, instead of before it (that prefix is the whole
    /// history: hashing it made the restart grow with the history again). A mismatch stops the exchange (fail-stop) and
    /// leaves a marker (<see cref="ExchangePipeline.PrefixMarkerOf"/>) that refuses every later start with the same one-line error until
    /// someone repairs the journal and removes it. What a start reads (the snapshot, the journal after it, chained from
    /// the snapshot's hash) is always checked before it returns. False: the check runs before the start returns, when
    /// <see cref="JournalOptions.VerifyPrefix"/> asks for it.
    /// </summary>
    public bool CheckPrefixInBackground { get; init; } = true;

    /// <summary>Where the snapshots are kept (the newest two); null: beside the journal, in the folder <c>{journal file}.snapshots</c>.</summary>
    public string? SnapshotFolder { get; init; }

    /// <summary>
    /// Test-only: asked with a command's sequence each time the ledger stage issues that command's transfers (maybe more
    /// than once); true makes the real ledger refuse every chain of it: the last transfer of each chain is rewritten to name
    /// an account (for a post or void, a pending transfer) that does not exist. Its awaited transfers (a deposit's, a
    /// withdrawal's) are left alone. The refusal is then compensated (<see cref="ExchangePipeline.Compensations"/>). Never
    /// set it in production.
    /// </summary>
    public Func<ulong, bool>? InjectLedgerRefusal { get; init; }
}

/// <summary>
/// What a submitted command did: its result and its fills; for a command whose transfer waits for the ledger (a
/// deposit, a withdrawal), the ledger's answer to it (<see cref="CreateTransferResult.Ok"/> when it moved the money).
/// </summary>
public readonly record struct CommandOutcome(CommandResult Result, FillRecord[] Fills, CreateTransferResult? Settlement = null);

/// <summary>The pipeline stopped taking commands (a journal or ledger failure); a restart replays cleanly.</summary>
public sealed class ExchangeUnavailableException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// The exchange's staged pipeline (exchange-core's, over the ledger's engine):
/// <code>
/// submitters ──► queue ──► [sequencer] batch ─► journal (one fsync) ─► state machine ─► ledger batch(es) ─► answers
/// </code>
/// One loop owns the journal, the state machine and the plan; commands are taken in batches of up to
/// <see cref="PipelineOptions.BatchMax"/>, so many share each fsync and each ledger batch. A command is answered only
/// when its journal record and its ledger effects are durable. The ledger's answers to deposits come back as
/// <see cref="ExchangeCommandKind.TransferSettled"/> commands in the next batch. A settlement the ledger refuses is
/// compensated (the command excluded, the later ones planned again; see ExchangePipeline.Compensation.cs). The first
/// journal or ledger failure, or a refusal that cannot be compensated, stops the pipeline (fail-stop): every command not
/// answered fails with <see cref="ExchangeUnavailableException"/>, nothing half-done was acknowledged, and a restart
/// replays the journal.
/// </summary>
public sealed partial class ExchangePipeline : IAsyncDisposable
{
    private ExchangeStateMachine _sm;
    // Commands that failed part-way and are never applied (from the journal's Excluded records, and this run's failures).
    private readonly HashSet<ulong> _excluded = [];
    private long _failedCommands;
    private readonly LedgerEngine _ledger;
    private readonly CommandJournal? _journal;
    private readonly TimeProvider _time;
    private readonly PipelineOptions _options;
    private readonly Channel<Pending> _queue;
    // Commands the pipeline makes itself (the ledger's answers to deposits), sequenced before the next submitted ones.
    // A deposit's or withdrawal's submitter is answered with its TransferSettled: by then the money is counted (or given back).
    private readonly Channel<Pending> _internal = Channel.CreateUnbounded<Pending>(new UnboundedChannelOptions { SingleReader = false });
    // Batches the state machine applied, on their way to the ledger (bounded: the sequencer runs at most a few ahead).
    private readonly Channel<Batch> _applied = Channel.CreateBounded<Batch>(new BoundedChannelOptions(3) { SingleReader = true, SingleWriter = true });
    private readonly System.Collections.Concurrent.ConcurrentQueue<Batch> _free = new();
    private Task _ledgerLoop = Task.CompletedTask;
    private readonly CancellationTokenSource _stop = new();
    private Task _loop = Task.CompletedTask;
    private ulong _nextSeq;
    private long _lastTime;
    private volatile Exception? _fault;
    private long _batches, _commands, _ledgerBatches;
    private long _ordersPlaced, _ordersRefused, _trades, _tradedQuantity; // the matching rate (ExchangeMetrics)
    private long _journalTicks, _applyTicks, _ledgerTicks; // Stopwatch ticks spent in each stage's work
    // Excluded records applied (so a start knows which exclusions the journal holds, and records the others).
    private readonly HashSet<ulong> _recorded = [];

    // Snapshots. The sequencer runs up to a few batches ahead of the ledger stage, so a state it just made may have ledger
    // effects not yet durable, and a start from it would never submit them (it resubmits only the journal after it). So
    // the sequencer serializes the state at a batch boundary, under its gate (nothing else touches the machine then), and
    // hands the bytes on with the batch; the ledger stage writes the file only once that batch is settled, and the ledger
    // settles batches in order: every effect of every command in the snapshot is durable before the snapshot exists. A
    // start replays and resubmits only what follows it; deposits it still waits for carry their transfer in the state.
    private readonly string? _snapshotFolder;
    private long _sinceSnapshot;
    private SnapshotTaken? _lastSnapshot; // the sequencer's newest (maybe not yet written): a rebuild starts from it
    private volatile bool _snapshotBusy;  // one snapshot between the sequencer and its file at a time
    private Task _snapshotWrite = Task.CompletedTask;
    private long _snapshotsWritten;
    private volatile Exception? _snapshotFailure;

    /// <summary>A snapshot taken at a batch boundary: the machine's bytes, the journal after that batch, the exclusions it includes, and the file's payload.</summary>
    private sealed record SnapshotTaken(byte[] Machine, JournalPosition Position, HashSet<ulong> Excluded, HashSet<ulong> Recorded, byte[] Payload);

    private sealed class Pending(ExchangeCommand command, TaskCompletionSource<CommandOutcome>? completion, CommandOutcome? deferred = null)
    {
        public ExchangeCommand Command = command;
        public readonly TaskCompletionSource<CommandOutcome>? Completion = completion;
        /// <summary>For a TransferSettled carrying a deposit's submitter: the deposit's outcome, answered once this is applied.</summary>
        public readonly CommandOutcome? Deferred = deferred;
    }

    /// <summary>One batch through the stages: its commands, and what the state machine made of them.</summary>
    private sealed class Batch
    {
        public readonly List<Pending> Items = [];
        public readonly SettlementPlan Plan = new();
        public readonly List<FillRecord> Fills = [];
        public CommandResult[] Results = new CommandResult[256];
        /// <summary>A snapshot taken after this batch, written once the batch is settled.</summary>
        public SnapshotTaken? Snapshot;
    }

    private ExchangePipeline(ExchangeStateMachine sm, LedgerEngine ledger, CommandJournal? journal, TimeProvider time, PipelineOptions options, string? snapshotFolder)
    {
        _sm = sm;
        _snapshotFolder = journal is null || options.SnapshotEveryCommands <= 0 ? null : snapshotFolder;
        _ledger = ledger;
        _journal = journal;
        _time = time;
        _options = options;
        _queue = Channel.CreateBounded<Pending>(new BoundedChannelOptions(options.QueueMax) { SingleReader = true, FullMode = BoundedChannelFullMode.Wait });
        _nextSeq = sm.LastSeq + 1;
    }

    /// <summary>The state machine (read it only through <see cref="ReadAsync{T}"/> while the pipeline runs).</summary>
    internal ExchangeStateMachine StateMachine => _sm;

    /// <summary>Batches and commands sequenced, and ledger batches submitted, since start.</summary>
    public (long Batches, long Commands, long LedgerBatches) Counters => (Interlocked.Read(ref _batches), Interlocked.Read(ref _commands), Interlocked.Read(ref _ledgerBatches));

    /// <summary>
    /// Since start: orders placed (accepted by the book, whether they rest or trade), orders the state machine refused,
    /// trades (fills) and the quantity they traded (GPU-hours or shares). Counted per batch as the commands are applied.
    /// </summary>
    public (long OrdersPlaced, long OrdersRefused, long Trades, long TradedQuantity) Matching =>
        (Interlocked.Read(ref _ordersPlaced), Interlocked.Read(ref _ordersRefused), Interlocked.Read(ref _trades), Interlocked.Read(ref _tradedQuantity));

    /// <summary>Seconds each stage spent working since start: the journal (staging, write, fsync), the state machine, the ledger.</summary>
    public (double Journal, double StateMachine, double Ledger) StageSeconds =>
        (Interlocked.Read(ref _journalTicks) / (double)System.Diagnostics.Stopwatch.Frequency, Interlocked.Read(ref _applyTicks) / (double)System.Diagnostics.Stopwatch.Frequency,
         Interlocked.Read(ref _ledgerTicks) / (double)System.Diagnostics.Stopwatch.Frequency);

    /// <summary>Commands that failed part-way since start (each excluded, the state machine rebuilt without it), and the last failure.</summary>
    public (long Count, Exception? Last) FailedCommands => (Interlocked.Read(ref _failedCommands), _lastFailure);
    private volatile Exception? _lastFailure;

    /// <summary>The failure that stopped the pipeline, if it stopped.</summary>
    public Exception? Fault => _fault;

    /// <summary>Snapshots written since start, and the last write that failed (the journal still holds everything: a start then replays more).</summary>
    public (long Written, Exception? LastFailure) Snapshots => (Interlocked.Read(ref _snapshotsWritten), _snapshotFailure);

    /// <summary>The snapshot this start restored (null: it replayed the whole journal), and the newer ones it refused, each with why.</summary>
    public (string? File, ulong LastSeq, IReadOnlyList<string> Refused) Restored { get; private set; } = (null, 0, []);

    /// <summary>Where this start's seconds went (what the restart bench reports).</summary>
    public StartProfile StartTimes { get; private set; } = new(0, 0, 0, 0, 0);

    /// <summary>
    /// The check of the journal before the start's snapshot (<see cref="PipelineOptions.CheckPrefixInBackground"/>):
    /// completed at once when it ran before the start returned or there was nothing to check; faulted with the
    /// <see cref="JournalCorruptException"/> (or <see cref="IOException"/>) that stopped the exchange.
    /// </summary>
    public Task PrefixCheck { get; private set; } = Task.CompletedTask;

    /// <summary>
    /// The file a failed background prefix check leaves beside the journal: its first line the offset, its second the
    /// reason. While it exists every start refuses with that <see cref="JournalCorruptException"/>.
    /// </summary>
    public static string PrefixMarkerOf(string journalPath) => Path.GetFullPath(journalPath) + ".corrupt";

    /// <summary>The snapshot folder of a journal under these options.</summary>
    public static string SnapshotFolderOf(string journalPath, PipelineOptions options) =>
        options.SnapshotFolder ?? Path.Combine(Path.GetDirectoryName(Path.GetFullPath(journalPath))!, Path.GetFileName(journalPath) + ".snapshots");

    private const uint PayloadMagic = 0x53504743; // "CGPS"

    // A snapshot file's payload: the exclusions it includes (and which of them the journal recorded before it), then the machine.
    private static byte[] EncodePayload(HashSet<ulong> excluded, HashSet<ulong> recorded, byte[] machine)
    {
        var ms = new MemoryStream(machine.Length + 16 + 8 * (excluded.Count + recorded.Count));
        using (var w = new BinaryWriter(ms, System.Text.Encoding.UTF8, leaveOpen: true))
        {
            w.Write(PayloadMagic);
            w.Write(1u);
            w.Write(excluded.Count);
            foreach (ulong seq in excluded.Order()) w.Write(seq);
            w.Write(recorded.Count);
            foreach (ulong seq in recorded.Order()) w.Write(seq);
            w.Write(machine);
        }
        return ms.ToArray();
    }

    private static SnapshotTaken DecodePayload(byte[] payload, JournalPosition position)
    {
        try
        {
            using var r = new BinaryReader(new MemoryStream(payload, writable: false));
            if (r.ReadUInt32() != PayloadMagic || r.ReadUInt32() != 1) throw new InvalidDataException("not a pipeline snapshot of version 1");
            HashSet<ulong> Set()
            {
                int n = r.ReadInt32();
                if (n < 0 || n > (payload.Length - r.BaseStream.Position) / 8) throw new InvalidDataException($"a count of {n}");
                var set = new HashSet<ulong>();
                for (int i = 0; i < n; i++) set.Add(r.ReadUInt64());
                return set;
            }
            HashSet<ulong> excluded = Set(), recorded = Set();
            if (excluded.Any(s => s > position.LastSeq) || !recorded.IsSubsetOf(excluded)) throw new InvalidDataException("exclusions beyond the snapshot");
            return new SnapshotTaken(payload[(int)r.BaseStream.Position..], position, excluded, recorded, payload);
        }
        catch (Exception e) when (e is InvalidDataException or EndOfStreamException)
        {
            throw new SnapshotInvalidException(e.Message, e);
        }
    }

    /// <summary>
    /// Starts the exchange: creates the escrow account, replays the journal (when there is one) through the state
    /// machine, submits the ledger effects of its last batches again (idempotent), settles deposits left waiting, and
    /// starts the loop.
    /// </summary>
    /// <exception cref="JournalCorruptException">The journal is damaged anywhere but a torn tail.</exception>
    public static async Task<ExchangePipeline> StartAsync(ExchangeStateMachine sm, LedgerEngine ledger, string? journalPath, TimeProvider time,
        PipelineOptions? options = null, JournalOptions? journalOptions = null, CancellationToken ct = default)
    {
        options ??= new PipelineOptions();
        CreateAccountResult[] escrow = await ledger.CreateAccountsAsync(new[] { ChartOfAccounts.NewAccount(AccountCode.ExchangeEscrow, ExchangeStateMachine.EscrowAccount, Asset.Usd) }, ct);
        if (escrow[0] is not (CreateAccountResult.Ok or CreateAccountResult.Exists)) throw new InvalidOperationException($"Cannot create the exchange escrow account: {escrow[0]}.");

        long t0 = System.Diagnostics.Stopwatch.GetTimestamp(), tRead = 0, tRestore = 0, tJournal = 0, tPrefix = 0;
        static double Seconds(long ticks) => ticks / (double)System.Diagnostics.Stopwatch.Frequency;
        CommandJournal? journal = null;
        var tail = new Queue<(Account[] Accounts, Transfer[] Transfers)>();
        var excluded = new HashSet<ulong>();             // commands never applied (they failed part-way)
        var recorded = new HashSet<ulong>();             // ... named by the journal's Excluded records
        bool restart = false;                            // the state so far includes a command now excluded: replay again
        string? snapshotFolder = journalPath is null ? null : SnapshotFolderOf(journalPath, options);
        SnapshotTaken? snapshot = null;                  // the snapshot the replay starts from
        string? snapshotFile = null;
        var refused = new List<string>();
        if (journalPath is not null && File.Exists(PrefixMarkerOf(journalPath)))
        {
            // A background check found the journal damaged before a snapshot's position: refused as that check said.
            string[] marker = File.ReadAllLines(PrefixMarkerOf(journalPath));
            throw new JournalCorruptException(Path.GetFullPath(journalPath), marker.Length > 0 && long.TryParse(marker[0], System.Globalization.CultureInfo.InvariantCulture, out long at) ? at : 0,
                (marker.Length > 1 ? marker[1] : "damaged before a snapshot's position") + $" (found after a start; remove {PrefixMarkerOf(journalPath)} once repaired)");
        }
        bool prefixLater = options.CheckPrefixInBackground && (journalOptions?.VerifyPrefix ?? true);
        if (journalPath is not null)
        {
            // The newest snapshot that reads back whole; a damaged or invalid one is refused (and said so), the one before it
            // tried, then the whole journal (it holds every record: snapshots only shorten the replay).
            if (sm.LastSeq == 0 && sm.Instruments.Count == 0 && sm.Instruments.Now is null)
                foreach (string file in SnapshotStore.Files(snapshotFolder!))
                {
                    try
                    {
                        long r0 = System.Diagnostics.Stopwatch.GetTimestamp();
                        JournalSnapshot js = SnapshotStore.ReadFile(file);
                        SnapshotTaken taken = DecodePayload(js.State, js.Position);
                        long r1 = System.Diagnostics.Stopwatch.GetTimestamp();
                        sm = ExchangeStateMachine.ReadSnapshot(taken.Machine, sm.Instruments, sm.Options);
                        tRead += r1 - r0;
                        tRestore += System.Diagnostics.Stopwatch.GetTimestamp() - r1;
                        snapshot = taken;
                        snapshotFile = file;
                        foreach (ulong seq in taken.Excluded) excluded.Add(seq);
                        foreach (ulong seq in taken.Recorded) recorded.Add(seq);
                        break;
                    }
                    catch (Exception e) when (e is JournalCorruptException or SnapshotInvalidException or IOException)
                    {
                        refused.Add($"{file}: {e.Message}");
                    }
                }
            var plan = new SettlementPlan();
            var fills = new List<FillRecord>();
            void Replayed(JournalBatch batch)
            {
                plan.Clear();
                fills.Clear();
                for (int i = 0; i < batch.Commands.Count; i++)
                {
                    ExchangeCommand c = CommandCodec.Read(batch.Commands[i].Span, batch.FirstSeq + (ulong)i, batch.TimestampNs);
                    // An Excluded record names a command applied above (this pass did not know): the pass is void.
                    if (c.Kind == ExchangeCommandKind.Excluded && recorded.Add((ulong)c.Target) && excluded.Add((ulong)c.Target)) restart = true;
                    if (restart || excluded.Contains(c.Seq)) continue; // once void, only Excluded records are read
                    try { sm.Apply(in c, plan, fills); }
                    catch (Exception) when (options.Rebuild is not null && c.Kind != ExchangeCommandKind.Excluded)
                    {
                        excluded.Add(c.Seq);
                        restart = true;
                    }
                }
                if (restart) return;
                if (fills.Count > 0) options.Traded?.Invoke(fills, sm); // market data rebuilt from the replay as from live trades
                tail.Enqueue((plan.Accounts.ToArray(), WithoutAwaited(plan)));
                while (tail.Count > options.ResubmitBatches) tail.Dequeue();
            }
            // From the snapshot's position (the journal's prefix up to it checked against its chain hash), or the start.
            long j0 = System.Diagnostics.Stopwatch.GetTimestamp();
            // The prefix before the snapshot's position is checked after the start (below) when the options say so; the
            // records read here are checked now, chained from the snapshot's hash.
            JournalOptions opening = prefixLater ? (journalOptions ?? new JournalOptions()) with { VerifyPrefix = false } : journalOptions ?? new JournalOptions();
            journal = CommandJournal.Open(journalPath, Replayed, opening, snapshot?.Position);
            tJournal = System.Diagnostics.Stopwatch.GetTimestamp() - j0;
            tPrefix = journal.PrefixCheckTicks;
            try
            {
                // A command failed part-way (now, or in an earlier run): the machine is rebuilt without it, until a pass
                // applies everything else whole: from the snapshot again when the snapshot has none of the commands now
                // excluded, else from the first record.
                while (restart)
                {
                    restart = false;
                    SnapshotTaken? from = snapshot;
                    if (from is not null && !excluded.All(seq => seq > from.Position.LastSeq || from.Excluded.Contains(seq)))
                    {
                        snapshot = null;
                        snapshotFile = null;
                    }
                    sm = options.Rebuild!();
                    if (snapshot is not null) sm = ExchangeStateMachine.ReadSnapshot(snapshot.Machine, sm.Instruments, sm.Options);
                    options.ReplayRestarting?.Invoke();
                    tail.Clear();
                    journal.Replay(Replayed, snapshot?.Position ?? JournalPosition.Start);
                }
            }
            catch
            {
                journal.Dispose();
                throw;
            }
        }
        var pipeline = new ExchangePipeline(sm, ledger, journal, time, options, snapshotFolder);
        pipeline.Restored = (snapshotFile, snapshot?.Position.LastSeq ?? 0, refused);
        pipeline._lastSnapshot = pipeline._settledSnapshot = snapshot;
        foreach (ulong seq in excluded) pipeline._excluded.Add(seq);
        foreach (ulong seq in recorded) pipeline._recorded.Add(seq);
        // Failures found in the replay (or excluded in a run whose Excluded record a snapshot has but the journal lost) are
        // recorded, so a later start excludes them even if they would not fail again.
        foreach (ulong seq in excluded.Where(s => !recorded.Contains(s)).Order())
            pipeline._internal.Writer.TryWrite(new Pending(new ExchangeCommand { Kind = ExchangeCommandKind.Excluded, Target = (long)seq }, null));
        try
        {
            // The last batches' effects again: what the ledger has answers Exists, what it never got is applied now.
            foreach ((Account[] accounts, Transfer[] transfers) in tail) await CheckResubmittedAsync(pipeline.IssueToLedger(accounts, transfers));
            // Deposits the state machine still waits for: their one transfer was submitted (found) or not (submitted now).
            // The machine keeps it (a snapshot's deposits were planned before the replayed tail).
            foreach (long seq in sm.PendingDeposits)
            {
                if (!sm.TryGetAwaitedTransfer(seq, out Transfer t)) throw new InvalidOperationException($"Deposit {seq} waits for the ledger but its transfer is unknown.");
                CreateTransferResult[] r = await ledger.CreateTransfersAsync(new[] { t }, ct);
                bool ok = r[0] is CreateTransferResult.Ok or CreateTransferResult.Exists;
                pipeline._internal.Writer.TryWrite(new Pending(new ExchangeCommand { Kind = ExchangeCommandKind.TransferSettled, Target = seq, Ok = ok }, null));
            }
        }
        catch
        {
            journal?.Dispose();
            throw;
        }
        long tEnd = System.Diagnostics.Stopwatch.GetTimestamp();
        pipeline.StartTimes = new StartProfile(Seconds(tRead), Seconds(tRestore), Seconds(tPrefix), Seconds(tJournal - tPrefix),
            Seconds(tEnd - t0 - tRead - tRestore - tJournal));
        pipeline._lastTime = sm.LastTime;
        pipeline._loop = Task.Factory.StartNew(pipeline.RunAsync, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default).Unwrap();
        pipeline._ledgerLoop = Task.Factory.StartNew(pipeline.LedgerLoopAsync, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default).Unwrap();
        // A replay that fell back to the first record (snapshot null) checked the whole chain already.
        if (prefixLater && journal is not null && snapshot is not null)
        {
            JournalPosition position = snapshot.Position;
            pipeline.PrefixCheck = Task.Run(() => pipeline.CheckPrefixLater(journal, position));
        }
        return pipeline;
    }

    private static Transfer[] WithoutAwaited(SettlementPlan plan)
    {
        if (plan.Awaiting.Length == 0) return plan.Transfers.ToArray();
        var skip = new HashSet<int>();
        foreach ((int i, _) in plan.Awaiting) skip.Add(i);
        var list = new List<Transfer>(plan.Transfers.Length);
        for (int i = 0; i < plan.Transfers.Length; i++) if (!skip.Contains(i)) list.Add(plan.Transfers[i]);
        return [.. list];
    }

    /// <summary>Submits a command; answers when its journal record and ledger effects are durable.</summary>
    /// <exception cref="ExchangeUnavailableException">The pipeline stopped.</exception>
    public async ValueTask<CommandOutcome> SubmitAsync(ExchangeCommand command, CancellationToken ct = default)
    {
        if (_fault is { } f) throw new ExchangeUnavailableException("The exchange stopped taking commands: " + f.Message, f);
        var pending = new Pending(command, new TaskCompletionSource<CommandOutcome>(TaskCreationOptions.RunContinuationsAsynchronously));
        try { await _queue.Writer.WriteAsync(pending, ct); }
        catch (ChannelClosedException) { throw new ExchangeUnavailableException("The exchange stopped taking commands."); }
        return await pending.Completion!.Task.WaitAsync(ct);
    }

    private readonly SemaphoreSlim _readGate = new(1, 1);

    /// <summary>Reads the state machine between batches (views return copies).</summary>
    public async Task<T> ReadAsync<T>(Func<ExchangeStateMachine, T> read, CancellationToken ct = default)
    {
        await _readGate.WaitAsync(ct);
        try { return read(_sm); }
        finally { _readGate.Release(); }
    }

    // Stage 1, the sequencer: gathers a batch, makes it durable in the journal (one fsync), applies it to the state
    // machine and hands it to the ledger stage, which may still be settling the batch before.
    private async Task RunAsync()
    {
        ChannelReader<Pending> reader = _queue.Reader;
        ChannelReader<Pending> internals = _internal.Reader;
        Batch? batch = null;
        try
        {
            while (!_stop.IsCancellationRequested && _fault is null)
            {
                Pause pause = _pause;
                if (pause.Requested.Task.IsCompleted)
                {
                    // The ledger stage compensates a refused settlement: the journal and the machine are its own until it
                    // resumes this loop, at a batch boundary.
                    pause.Parked.TrySetResult();
                    await pause.Resumed.Task.WaitAsync(_stop.Token);
                    continue;
                }
                batch = _free.TryDequeue(out Batch? b) ? b : new Batch();
                batch.Items.Clear();
                while (internals.TryRead(out Pending? ic)) batch.Items.Add(ic);
                if (batch.Items.Count == 0 && !reader.TryPeek(out _))
                {
                    Task<bool> external = reader.WaitToReadAsync(_stop.Token).AsTask(), own = internals.WaitToReadAsync(_stop.Token).AsTask();
                    await Task.WhenAny(external, own, pause.Requested.Task);
                    if (pause.Requested.Task.IsCompleted)
                    {
                        _free.Enqueue(batch);
                        batch = null;
                        continue;
                    }
                    if (external.IsCompleted && !external.Result && !own.IsCompleted) break; // closed
                    while (internals.TryRead(out Pending? ic)) batch.Items.Add(ic);
                }
                while (batch.Items.Count < _options.BatchMax && reader.TryRead(out Pending? p)) batch.Items.Add(p);
                if (batch.Items.Count == 0)
                {
                    _free.Enqueue(batch);
                    batch = null;
                    continue;
                }
                await SequenceAsync(batch);
                await _applied.Writer.WriteAsync(batch, _stop.Token);
                batch = null;
            }
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested) { }
        catch (Exception e) { Stop(e, batch); }
        finally
        {
            // Exited: it touches nothing more (a compensation waiting for it to park must not wait forever).
            _sequencerExited = true;
            _pause.Parked.TrySetResult();
            _applied.Writer.TryComplete();
        }
    }

    private async Task SequenceAsync(Batch batch)
    {
        List<Pending> items = batch.Items;
        int n = items.Count;
        long time = Math.Max(_lastTime, Clock.UnixNanoseconds(_time));
        ulong first;
        long t0 = System.Diagnostics.Stopwatch.GetTimestamp();
        if (_journal is not null)
        {
            foreach (Pending p in items)
            {
                Span<byte> into = _journal.Stage(CommandCodec.Size(in p.Command));
                CommandCodec.Write(in p.Command, into);
            }
            first = _journal.Commit(time); // durable before anything acts on it
        }
        else first = _nextSeq;
        _nextSeq = first + (ulong)n;
        _lastTime = time;
        if (batch.Results.Length < n) batch.Results = new CommandResult[Math.Max(n, batch.Results.Length * 2)];
        long t1 = System.Diagnostics.Stopwatch.GetTimestamp();
        Interlocked.Add(ref _journalTicks, t1 - t0);
        await _readGate.WaitAsync();
        try
        {
            batch.Plan.Clear();
            batch.Fills.Clear();
            long placed = 0, refused = 0;
            for (int i = 0; i < n; i++)
            {
                ref ExchangeCommand c = ref items[i].Command;
                c.Seq = first + (ulong)i;
                c.Time = time;
                int fillsBefore = batch.Fills.Count;
                try
                {
                    batch.Results[i] = _sm.Apply(in c, batch.Plan, batch.Fills);
                    if (c.Kind == ExchangeCommandKind.Excluded) _recorded.Add((ulong)c.Target);
                    else if (c.Kind == ExchangeCommandKind.Place)
                    {
                        if (batch.Results[i].Error == ExchangeError.None) placed++;
                        else refused++;
                    }
                }
                catch (Exception e) when (_journal is not null && _options.Rebuild is not null && e is not OutOfMemoryException)
                {
                    // It threw part-way: what it planned and traded is dropped, and the machine is rebuilt from the journal
                    // and this batch's commands before it, without it. It leaves no trace; an Excluded record says so.
                    batch.Plan.AbandonAll(c.Seq);
                    batch.Fills.RemoveRange(fillsBefore, batch.Fills.Count - fillsBefore);
                    _excluded.Add(c.Seq);
                    _sm = RebuildBefore(first, items, i);
                    batch.Results[i] = new CommandResult { Error = ExchangeError.CommandFailed, Status = OrderStatus.Rejected, Subject = (long)c.Seq };
                    _lastFailure = e;
                    Interlocked.Increment(ref _failedCommands);
                    _internal.Writer.TryWrite(new Pending(new ExchangeCommand { Kind = ExchangeCommandKind.Excluded, Target = (long)c.Seq }, null));
                }
            }
            if (batch.Fills.Count > 0) _options.Traded?.Invoke(batch.Fills, _sm);
            CountMatching(placed, refused, batch.Fills);
            batch.Snapshot = null;
            _sinceSnapshot += n;
            if (_snapshotFolder is not null && _sinceSnapshot >= _options.SnapshotEveryCommands && !_snapshotBusy)
            {
                // At the batch boundary: the journal's end is this batch's last record. Written once the batch is settled.
                _sinceSnapshot = 0;
                _snapshotBusy = true;
                byte[] machine = _sm.WriteSnapshot();
                var excluded = new HashSet<ulong>(_excluded);
                var recorded = new HashSet<ulong>(_recorded);
                batch.Snapshot = _lastSnapshot = new SnapshotTaken(machine, _journal!.Position, excluded, recorded, EncodePayload(excluded, recorded, machine));
            }
        }
        finally { _readGate.Release(); }
        Interlocked.Add(ref _applyTicks, System.Diagnostics.Stopwatch.GetTimestamp() - t1);
        Interlocked.Increment(ref _batches);
        Interlocked.Add(ref _commands, n);
    }

    // One batch's share of the matching counters: a few atomic adds per batch, not per command.
    private void CountMatching(long placed, long refused, List<FillRecord> fills)
    {
        if (placed > 0) Interlocked.Add(ref _ordersPlaced, placed);
        if (refused > 0) Interlocked.Add(ref _ordersRefused, refused);
        if (fills.Count == 0) return;
        long quantity = 0;
        foreach (FillRecord f in fills) quantity = checked(quantity + f.Quantity);
        Interlocked.Add(ref _trades, fills.Count);
        Interlocked.Add(ref _tradedQuantity, quantity);
    }

    // A new machine with every journaled command before seq first (none excluded), then this batch's commands before index i:
    // from the newest snapshot when it has none of the commands excluded since, else from the first record. With traded,
    // each replayed record's fills are fed to it (market data rebuilt as at a start).
    private ExchangeStateMachine RebuildBefore(ulong first, List<Pending> items, int i, Action<List<FillRecord>, ExchangeStateMachine>? traded = null)
    {
        SnapshotTaken? from = _lastSnapshot;
        if (from is not null && (from.Position.LastSeq >= first || !_excluded.All(seq => seq > from.Position.LastSeq || from.Excluded.Contains(seq)))) from = null;
        ExchangeStateMachine sm = _options.Rebuild!();
        if (from is not null) sm = ExchangeStateMachine.ReadSnapshot(from.Machine, sm.Instruments, sm.Options);
        var plan = new SettlementPlan();
        var fills = new List<FillRecord>();
        _journal!.Replay(batch =>
        {
            plan.Clear();
            fills.Clear();
            for (int k = 0; k < batch.Commands.Count; k++)
            {
                ulong seq = batch.FirstSeq + (ulong)k;
                if (seq >= first) break;
                if (!_excluded.Contains(seq)) sm.Apply(CommandCodec.Read(batch.Commands[k].Span, seq, batch.TimestampNs), plan, fills);
            }
            if (traded is not null && fills.Count > 0) traded(fills, sm);
        }, from?.Position ?? JournalPosition.Start);
        plan.Clear();
        for (int k = 0; k < i; k++)
            if (!_excluded.Contains(items[k].Command.Seq)) sm.Apply(in items[k].Command, plan, fills);
        return sm;
    }

    // Stage 2, the ledger: settles each applied batch in order (its plan as one or a few ledger batches), feeds the
    // ledger's answers to deposits back as commands, and answers the batch's submitters.
    private async Task LedgerLoopAsync()
    {
        // Batches whose ledger calls are issued, oldest first: up to a few in flight, answered in order.
        var inFlight = new Queue<(Batch Batch, LedgerCalls Calls, long Issued)>();
        Batch? batch = null;
        try
        {
            ChannelReader<Batch> reader = _applied.Reader;
            while (true)
            {
                while (inFlight.Count < 4 && reader.TryRead(out Batch? b))
                {
                    if (_fault is not null)
                    {
                        batch = b; // failed below with the rest: a batch taken off the channel must not go unanswered
                        throw _fault;
                    }
                    inFlight.Enqueue((b, IssueToLedger(b.Plan.Accounts.ToArray(), ToIssue(b.Plan)), System.Diagnostics.Stopwatch.GetTimestamp()));
                }
                if (inFlight.Count == 0)
                {
                    if (!await reader.WaitToReadAsync()) break;
                    continue;
                }
                (Batch done, LedgerCalls calls, long issued) = inFlight.Peek();
                batch = done;
                LedgerAnswers answers = await AnswersAsync(calls);
                if (FirstRefused(done.Plan, calls, answers) is { } refused)
                {
                    // Compensated: this batch and every later one issued or applied are planned again without the command.
                    var unsettled = inFlight.Select(f => (f.Batch, f.Calls)).ToList();
                    inFlight.Clear();
                    batch = null;
                    await CompensateAsync(unsettled, refused);
                    continue;
                }
                inFlight.Dequeue();
                // Settled, and every batch before it: the snapshot taken after it holds only durable ledger effects.
                if (done.Snapshot is { } snapshot)
                {
                    done.Snapshot = null;
                    _settledSnapshot = snapshot;
                    WriteSnapshot(snapshot);
                }
                Interlocked.Add(ref _ledgerTicks, System.Diagnostics.Stopwatch.GetTimestamp() - Math.Max(issued, _ledgerClock));
                _ledgerClock = System.Diagnostics.Stopwatch.GetTimestamp();
                var awaited = new Dictionary<int, CreateTransferResult>();
                foreach ((int index, _) in done.Plan.Awaiting) awaited[index] = answers.Transfers[index];
                Answer(done, awaited);
                batch = null;
            }
        }
        catch (Exception e)
        {
            Stop(e, batch);
            foreach ((Batch b, _, _) in inFlight) Fail(b.Items, e);
            while (_applied.Reader.TryRead(out Batch? left)) Fail(left.Items, e);
        }
        finally
        {
            // Once stopped, nothing reads the internal queue again: a deposit whose answer rides a TransferSettled queued
            // after the sequencer stopped (this stage settled its last batches) is answered unavailable, not left waiting.
            if (_fault is { } f)
                while (_internal.Reader.TryRead(out Pending? p)) p.Completion?.TrySetException(Unavailable(f));
        }
    }

    private long _ledgerClock; // when the ledger stage last finished answering a batch (its busy time is counted once)

    // Answers a settled batch's submitters (the ledger's answers to its awaited transfers by index) and frees it.
    private void Answer(Batch done, Dictionary<int, CreateTransferResult> awaited)
    {
        Dictionary<ulong, (int Index, CreateTransferResult Answer)>? settled = null;
        foreach ((int index, ulong seq) in done.Plan.Awaiting) (settled ??= [])[seq] = (index, awaited[index]);
        for (int i = 0; i < done.Items.Count; i++)
        {
            Pending item = done.Items[i];
            CommandResult r = done.Results[i];
            FillRecord[] fills = r.Fills == 0 ? [] : done.Fills.GetRange(r.FirstFill, r.Fills).ToArray();
            if (settled is not null && settled.TryGetValue(item.Command.Seq, out var a))
            {
                // The ledger's answer goes back as a command; the submitter is answered when that is applied.
                var settle = new ExchangeCommand { Kind = ExchangeCommandKind.TransferSettled, Target = (long)item.Command.Seq, Ok = a.Answer == CreateTransferResult.Ok };
                _internal.Writer.TryWrite(new Pending(settle, item.Completion, item.Completion is null ? null : new CommandOutcome(r, fills, a.Answer)));
                continue;
            }
            if (item.Completion is null) continue;
            item.Completion.TrySetResult(item.Deferred ?? new CommandOutcome(r, fills));
        }
        done.Items.Clear();
        _free.Enqueue(done);
    }

    // Off the ledger stage (a file write and two fsyncs): a failure costs only a longer replay at the next start.
    private void WriteSnapshot(SnapshotTaken snapshot)
    {
        _snapshotWrite = Task.Run(() =>
        {
            try
            {
                SnapshotStore.Write(_snapshotFolder!, snapshot.Position.LastSeq, snapshot.Position, snapshot.Payload);
                Interlocked.Increment(ref _snapshotsWritten);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                _snapshotFailure = e;
            }
            finally { _snapshotBusy = false; }
        });
    }

    private void CheckPrefixLater(CommandJournal journal, JournalPosition position)
    {
        try { journal.CheckPrefix(position); }
        catch (JournalCorruptException e)
        {
            // Durable before the stop is visible: a start after a crash here must refuse too.
            try { ComputeGrid.Core.DurableFile.ReplacePrivate(PrefixMarkerOf(journal.Path), $"{e.Offset.ToString(System.Globalization.CultureInfo.InvariantCulture)}\n{e.Reason}\n"); }
            finally { Stop(e, null); }
            throw;
        }
        catch (IOException e)
        {
            Stop(e, null);
            throw;
        }
    }

    private void Stop(Exception e, Batch? batch)
    {
        _fault ??= e;
        _pause.Resumed.TrySetResult(); // a sequencer parked for a compensation sees the fault and exits
        _queue.Writer.TryComplete();
        if (batch is not null) Fail(batch.Items, e);
        while (_queue.Reader.TryRead(out Pending? p)) p.Completion?.TrySetException(Unavailable(e));
        while (_internal.Reader.TryRead(out Pending? p)) p.Completion?.TrySetException(Unavailable(e));
    }

    private static void Fail(List<Pending> items, Exception e)
    {
        foreach (Pending p in items) p.Completion?.TrySetException(Unavailable(e));
    }

    private static ExchangeUnavailableException Unavailable(Exception e) => new("The exchange stopped taking commands: " + e.Message, e);

    /// <summary>A batch's ledger calls, issued in order (the ledger applies them in that order) and checked later.</summary>
    private sealed record LedgerCalls(Account[] Accounts, Transfer[] Transfers, List<(int At, int Count, Task<CreateAccountResult[]> Task)> AccountTasks,
        List<(int Start, int Count, Task<CreateTransferResult[]> Task)> TransferTasks);

    /// <summary>
    /// Issues a plan's ledger calls without waiting: accounts, then transfers in ledger batches that never cut a linked
    /// chain. The ledger's single sequencer applies calls in the order they are made, so a later batch's calls may be
    /// issued before this one's are answered.
    /// </summary>
    private LedgerCalls IssueToLedger(Account[] accounts, Transfer[] transfers)
    {
        var accountTasks = new List<(int, int, Task<CreateAccountResult[]>)>();
        for (int at = 0; at < accounts.Length; at += LedgerLimits.BatchEventsMax)
        {
            int count = Math.Min(LedgerLimits.BatchEventsMax, accounts.Length - at);
            accountTasks.Add((at, count, _ledger.CreateAccountsAsync(accounts.AsMemory(at, count))));
            Interlocked.Increment(ref _ledgerBatches);
        }
        var transferTasks = new List<(int, int, Task<CreateTransferResult[]>)>();
        int start = 0;
        while (start < transfers.Length)
        {
            // Whole chains up to the batch limit.
            int end = start, chainStart = start;
            while (end < transfers.Length)
            {
                bool closes = (transfers[end].Flags & TransferFlags.Linked) == 0;
                end++;
                if (closes)
                {
                    if (end - start > LedgerLimits.BatchEventsMax) { end = chainStart; break; }
                    chainStart = end;
                    if (end - start == LedgerLimits.BatchEventsMax) break;
                }
            }
            if (end == start) throw new InvalidOperationException("A linked chain is longer than a ledger batch.");
            transferTasks.Add((start, end - start, _ledger.CreateTransfersAsync(transfers.AsMemory(start, end - start))));
            Interlocked.Increment(ref _ledgerBatches);
            start = end;
        }
        return new LedgerCalls(accounts, transfers, accountTasks, transferTasks);
    }

    /// <summary>
    /// Waits for the ledger calls of a batch resubmitted at start and checks every answer: Ok, or Exists (including a chain
    /// the ledger already applied). Anything else is a broken invariant: the start fails.
    /// </summary>
    private static async Task CheckResubmittedAsync(LedgerCalls calls)
    {
        foreach ((int at, _, Task<CreateAccountResult[]> task) in calls.AccountTasks)
        {
            CreateAccountResult[] r = await task;
            for (int i = 0; i < r.Length; i++)
                if (r[i] is not (CreateAccountResult.Ok or CreateAccountResult.Exists))
                    throw new InvalidOperationException($"The ledger refused account {calls.Accounts[at + i].Id}: {r[i]}.");
        }
        Transfer[] transfers = calls.Transfers;
        foreach ((int start, _, Task<CreateTransferResult[]> task) in calls.TransferTasks)
        {
            CreateTransferResult[] r = await task;
            for (int i = 0; i < r.Length; i++)
            {
                int index = start + i;
                if (r[i] is CreateTransferResult.Ok or CreateTransferResult.Exists) continue;
                // A chain the ledger already applied fails at its first event with Exists (the others answer
                // LinkedEventFailed): chains are atomic, so it is whole in the ledger.
                if (r[i] == CreateTransferResult.LinkedEventFailed && ChainFailedWithExists(transfers, r, start, i)) continue;
                int failed = Array.FindIndex(r, x => x is not (CreateTransferResult.Ok or CreateTransferResult.Exists or CreateTransferResult.LinkedEventFailed));
                string cause = failed < 0 ? "" : $"; the chain failed at transfer {transfers[start + failed].Id} (flags {transfers[start + failed].Flags}, code {transfers[start + failed].Code}): {r[failed]}";
                throw new InvalidOperationException($"The ledger refused transfer {transfers[index].Id} (code {transfers[index].Code}): {r[i]}{cause}.");
            }
        }
    }

    // The failing event of the linked chain holding event i (of a batch starting at start) answered Exists.
    private static bool ChainFailedWithExists(Transfer[] transfers, CreateTransferResult[] r, int start, int i)
    {
        int first = i;
        while (first > 0 && (transfers[start + first - 1].Flags & TransferFlags.Linked) != 0) first--;
        for (int k = first; k < r.Length; k++)
        {
            if (r[k] != CreateTransferResult.LinkedEventFailed) return r[k] == CreateTransferResult.Exists;
            if ((transfers[start + k].Flags & TransferFlags.Linked) == 0) break;
        }
        return false;
    }

    /// <summary>Stops the loop after the batch in flight and closes the journal.</summary>
    public async ValueTask DisposeAsync()
    {
        _queue.Writer.TryComplete();
        await _stop.CancelAsync();
        try { await _loop; }
        catch (Exception e) when (e is OperationCanceledException or ExchangeUnavailableException) { }
        try { await _ledgerLoop; }
        catch (Exception e) when (e is OperationCanceledException or ExchangeUnavailableException) { }
        await _snapshotWrite;
        try { await PrefixCheck; } // it reads the journal: done before the journal closes
        catch (Exception e) when (e is JournalCorruptException or IOException) { }
        var stopped = new ExchangeUnavailableException("The exchange stopped.");
        while (_queue.Reader.TryRead(out Pending? p)) p.Completion?.TrySetException(stopped);
        while (_internal.Reader.TryRead(out Pending? p)) p.Completion?.TrySetException(stopped);
        _journal?.Dispose();
        _stop.Dispose();
        _readGate.Dispose();
    }
}

/// <summary>
/// Where a start's seconds went: reading and checking the snapshot file (and its payload), building the state machine
/// from it, checking the journal before the snapshot's position, reading and applying the journal after it, and the rest
/// (the escrow account, the ledger effects of the last batches submitted again, deposits left waiting).
/// </summary>
public sealed record StartProfile(double SnapshotReadSeconds, double SnapshotRestoreSeconds, double PrefixCheckSeconds, double TailReplaySeconds, double OtherSeconds);
