using System.Diagnostics;
using System.Text;
using System.Text.Json;
using ComputeGrid.Ledger;

namespace ComputeGrid.Cli.Bench;

/// <summary>
/// The ledger benchmark. Three contenders apply the same seeded batches of plain transfers:
/// <list type="number">
/// <item><b>inmem</b>: <see cref="LedgerStateMachine"/> called directly on one thread (the sequencer's ceiling).</item>
/// <item><b>durable</b>: <see cref="LedgerEngine"/> on a data folder (sequencer + hash-chained log + group commit
///   with fdatasync), fed by several concurrent submitters; throughput and per-batch latency.</item>
/// <item><b>sqlite</b>: <see cref="SqliteLedgerBaseline"/>, the same transfers in SQLite (WAL, synchronous=FULL,
///   one transaction per batch), run for a capped time.</item>
/// </list>
/// Then a separate section (<c>snapshot_*</c> keys) fills a durable ledger with millions of transfers and measures the
/// batch latency of concurrent clients while a snapshot of it is written, against the same clients without one.
/// Progress goes to the writer line by line; the last line is one JSON object:
/// <c>{"bench":"ledger","metrics":{…}}</c>.
/// </summary>
public static partial class LedgerBench
{
    /// <summary>The workload seed (fixed, so every run applies the same transfers).</summary>
    public const int Seed = 0x1ED6E5;

    /// <summary>First batch timestamp (Unix ns) given to the in-memory state machine and SQLite.</summary>
    private const long EpochNanoseconds = 1_750_000_000_000_000_000L;

    /// <summary>Sizes of one run.</summary>
    private sealed record Config(
        int Accounts,
        int BatchSize,
        int WarmupBatches,
        int InMemoryBatches,
        int DurableBatches,
        int Submitters,
        int InFlightPerSubmitter,
        TimeSpan SqliteTimeCap,
        int SqliteMinBatches)
    {
        public static readonly Config Full = new(10_000, 8_000, 40, 1_000, 1_000, 8, 1, TimeSpan.FromSeconds(10), 3);
        public static readonly Config Quick = new(10_000, 8_000, 40, 150, 150, 8, 1, TimeSpan.FromSeconds(3), 3);
    }

    /// <summary>A check of the benchmark's own results failed: the numbers would mean nothing.</summary>
    private sealed class BenchFailure(string message) : Exception(message);

    private readonly record struct InMemoryResult(long Transfers, double Seconds);

    private readonly record struct DurableResult(
        long Transfers, double Seconds, double P50Ms, double P99Ms, double MaxMs,
        long Fsyncs, long Groups, long LogBytes, double DisposeSeconds);

    private readonly record struct SqliteResult(long Transfers, int Batches, double Seconds);

    /// <summary>
    /// Runs the benchmark. <paramref name="quick"/> picks the small sizes (well under 30 s). Files go to a fresh
    /// folder under <paramref name="workDir"/> (or the temp folder), deleted at the end. Returns 0, or 1 when a
    /// result check failed (the reason is written; no JSON line is written then).
    /// </summary>
    public static async Task<int> RunAsync(bool quick, string? workDir, TextWriter output, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(output);
        var cfg = quick ? Config.Quick : Config.Full;
        string root = string.IsNullOrEmpty(workDir) ? Path.GetTempPath() : Path.GetFullPath(workDir);
        string dir = Path.Combine(root, $"cg-ledger-bench-{Environment.ProcessId}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        var total = Stopwatch.StartNew();
        try
        {
            Line(output, $"ledger bench ({(quick ? "quick" : "full")}): {cfg.Accounts} accounts, batches of {cfg.BatchSize} transfers, seed {Seed}, {Environment.ProcessorCount} cpus, files in {dir}");
            int generated = Math.Max(cfg.InMemoryBatches, cfg.DurableBatches) + cfg.WarmupBatches;
            var genClock = Stopwatch.StartNew();
            var workload = LedgerBenchWorkload.Generate(Seed, cfg.Accounts, generated, cfg.BatchSize);
            Line(output, $"generated {generated} batches ({(long)generated * cfg.BatchSize} transfers) in {genClock.Elapsed.TotalSeconds:F2} s");
            // The last WarmupBatches batches are the warm-up ones; measured runs start at batch 0.
            int warmupStart = generated - cfg.WarmupBatches;

            var inmem = RunInMemory(workload, cfg, warmupStart, output, ct);
            Collect();

            var durable = await RunDurableAsync(workload, cfg, warmupStart, Path.Combine(dir, "durable"), output, ct).ConfigureAwait(false);
            Collect();

            var sqlite = RunSqlite(workload, cfg, warmupStart, Path.Combine(dir, "sqlite-baseline.db"), output, ct);
            workload = null!;
            Collect();

            var snap = await RunSnapshotAsync(cfg, quick, Path.Combine(dir, "snapshot"), output, ct).ConfigureAwait(false);

            double inmemRate = inmem.Transfers / inmem.Seconds;
            double durableRate = durable.Transfers / durable.Seconds;
            double sqliteRate = sqlite.Transfers / sqlite.Seconds;
            double ratio = durableRate / sqliteRate;
            Line(output, $"summary: inmem {inmemRate:N0}/s, durable {durableRate:N0}/s (p99 batch {durable.P99Ms:F2} ms), sqlite {sqliteRate:N0}/s, durable/sqlite {ratio:F1}x; total {total.Elapsed.TotalSeconds:F1} s");

            output.WriteLine(Json(w =>
            {
                w.WriteString("bench", "ledger");
                w.WriteStartObject("metrics");
                w.WriteNumber("inmem_transfers_per_s", (long)Math.Round(inmemRate));
                w.WriteNumber("durable_transfers_per_s", (long)Math.Round(durableRate));
                w.WriteNumber("durable_batch_p99_ms", Math.Round(durable.P99Ms, 3));
                w.WriteNumber("sqlite_transfers_per_s", (long)Math.Round(sqliteRate));
                w.WriteNumber("durable_vs_sqlite", Math.Round(ratio, 2));
                w.WriteNumber("quick", quick ? 1 : 0);
                w.WriteNumber("seed", Seed);
                w.WriteNumber("accounts", cfg.Accounts);
                w.WriteNumber("batch_size", cfg.BatchSize);
                w.WriteNumber("inmem_transfers", inmem.Transfers);
                w.WriteNumber("inmem_seconds", Math.Round(inmem.Seconds, 3));
                w.WriteNumber("durable_transfers", durable.Transfers);
                w.WriteNumber("durable_seconds", Math.Round(durable.Seconds, 3));
                w.WriteNumber("durable_submitters", cfg.Submitters);
                w.WriteNumber("durable_in_flight_per_submitter", cfg.InFlightPerSubmitter);
                w.WriteNumber("durable_batch_p50_ms", Math.Round(durable.P50Ms, 3));
                w.WriteNumber("durable_batch_max_ms", Math.Round(durable.MaxMs, 3));
                w.WriteNumber("durable_fsyncs", durable.Fsyncs);
                w.WriteNumber("durable_groups", durable.Groups);
                w.WriteNumber("durable_batches_per_fsync", durable.Fsyncs > 0 ? Math.Round((double)cfg.DurableBatches / durable.Fsyncs, 2) : 0);
                w.WriteNumber("durable_log_mib_per_s", Math.Round(durable.LogBytes / durable.Seconds / (1 << 20), 1));
                w.WriteNumber("durable_dispose_seconds", Math.Round(durable.DisposeSeconds, 3));
                w.WriteNumber("sqlite_transfers", sqlite.Transfers);
                w.WriteNumber("sqlite_batches", sqlite.Batches);
                w.WriteNumber("sqlite_seconds", Math.Round(sqlite.Seconds, 3));
                w.WriteNumber("snapshot_ledger_transfers", snap.LedgerTransfers);
                w.WriteNumber("snapshot_fill_seconds", Math.Round(snap.FillSeconds, 2));
                w.WriteNumber("snapshot_seconds", Math.Round(snap.SnapshotSeconds, 3));
                w.WriteNumber("snapshot_mib", Math.Round(snap.SnapshotBytes / (double)(1 << 20), 1));
                w.WriteNumber("snapshot_probe_batch_size", SnapshotProbeBatchSize);
                w.WriteNumber("snapshot_probe_clients", SnapshotProbeLanes);
                w.WriteNumber("snapshot_batches_during", snap.DuringBatches);
                w.WriteNumber("snapshot_batch_p99_ms", Math.Round(snap.DuringP99Ms, 3));
                w.WriteNumber("snapshot_batch_max_ms", Math.Round(snap.DuringMaxMs, 3));
                w.WriteNumber("snapshot_baseline_batches", snap.BaselineBatches);
                w.WriteNumber("snapshot_baseline_batch_p99_ms", Math.Round(snap.BaselineP99Ms, 3));
                w.WriteNumber("snapshot_baseline_batch_max_ms", Math.Round(snap.BaselineMaxMs, 3));
                w.WriteNumber("total_seconds", Math.Round(total.Elapsed.TotalSeconds, 1));
                w.WriteEndObject();
            }));
            return 0;
        }
        catch (BenchFailure e)
        {
            output.WriteLine($"ledger bench FAILED: {e.Message}");
            return 1;
        }
        finally
        {
            try { Directory.Delete(dir, recursive: true); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                output.WriteLine($"warning: could not delete {dir}: {e.Message}");
            }
        }
    }

    // ================================================================== inmem

    private static InMemoryResult RunInMemory(LedgerBenchWorkload workload, Config cfg, int warmupStart, TextWriter output, CancellationToken ct)
    {
        var results = new CreateTransferResult[cfg.BatchSize];

        // Warm-up on a separate instance, so tiered JIT has promoted the hot path before the timed run.
        WarmUpInMemory(workload, cfg, warmupStart, results);
        Thread.Sleep(250); // let the background tier-1 compilations land
        Collect();

        var sm = new LedgerStateMachine(cfg.Accounts, TransfersCapacity(cfg));
        CreateAccounts(sm, workload.Accounts);
        var sw = Stopwatch.StartNew();
        for (int b = 0; b < cfg.InMemoryBatches; b++)
        {
            ct.ThrowIfCancellationRequested();
            sm.CreateTransfers(workload.Batches[b], sm.NextBatchTimestamp(EpochNanoseconds), results);
            CheckOk(results, "inmem", b);
        }
        sw.Stop();

        long transfers = (long)cfg.InMemoryBatches * cfg.BatchSize;
        if (sm.TransferCount != transfers) throw new BenchFailure($"inmem: {sm.TransferCount} transfers stored, expected {transfers}.");
        var check = Stopwatch.StartNew();
        try { sm.AssertInvariants(); }
        catch (InvalidOperationException e) { throw new BenchFailure("inmem: " + e.Message); }
        Line(output, $"inmem: {transfers} transfers in {sw.Elapsed.TotalSeconds:F3} s = {transfers / sw.Elapsed.TotalSeconds:N0} transfers/s (one thread; invariants checked in {check.Elapsed.TotalSeconds:F2} s)");
        return new InMemoryResult(transfers, sw.Elapsed.TotalSeconds);
    }

    /// <summary>
    /// The transfer capacity both contenders are sized for (it sets the id index's table size, and so its load
    /// factor): the same for inmem and durable, so they are compared on equal footing, and large enough that
    /// neither index grows during a timed run.
    /// </summary>
    private static int TransfersCapacity(Config cfg) =>
        (Math.Max(cfg.InMemoryBatches, cfg.DurableBatches) + cfg.WarmupBatches) * cfg.BatchSize;

    private static void WarmUpInMemory(LedgerBenchWorkload workload, Config cfg, int warmupStart, CreateTransferResult[] results)
    {
        var warm = new LedgerStateMachine(cfg.Accounts, cfg.WarmupBatches * cfg.BatchSize);
        CreateAccounts(warm, workload.Accounts);
        for (int b = warmupStart; b < warmupStart + cfg.WarmupBatches; b++)
        {
            warm.CreateTransfers(workload.Batches[b], warm.NextBatchTimestamp(EpochNanoseconds), results);
            CheckOk(results, "inmem warm-up", b);
        }
    }

    private static void CreateAccounts(LedgerStateMachine sm, Account[] accounts)
    {
        var results = new CreateAccountResult[LedgerLimits.BatchEventsMax];
        for (int start = 0; start < accounts.Length; start += LedgerLimits.BatchEventsMax)
        {
            int n = Math.Min(LedgerLimits.BatchEventsMax, accounts.Length - start);
            sm.CreateAccounts(accounts.AsSpan(start, n), sm.NextBatchTimestamp(EpochNanoseconds), results);
            for (int i = 0; i < n; i++)
                if (results[i] != CreateAccountResult.Ok) throw new BenchFailure($"account {start + i}: {results[i]}");
        }
    }

    // ================================================================== durable

    private static async Task<DurableResult> RunDurableAsync(LedgerBenchWorkload workload, Config cfg, int warmupStart, string dataDir, TextWriter output, CancellationToken ct)
    {
        var options = new LedgerEngineOptions
        {
            DataDirectory = dataDir,
            SnapshotEveryOps = 0,
            SnapshotLogBytesMin = 0, // measure the log: a full snapshot on the sequencer thread is a separate cost
            AccountsCapacity = cfg.Accounts,
            TransfersCapacity = TransfersCapacity(cfg),
        };
        var engine = LedgerEngine.Open(options);
        bool disposed = false;
        try
        {
            for (int start = 0; start < workload.Accounts.Length; start += LedgerLimits.BatchEventsMax)
            {
                int n = Math.Min(LedgerLimits.BatchEventsMax, workload.Accounts.Length - start);
                var r = await engine.CreateAccountsAsync(workload.Accounts.AsMemory(start, n), ct).ConfigureAwait(false);
                for (int i = 0; i < r.Length; i++)
                    if (r[i] != CreateAccountResult.Ok) throw new BenchFailure($"durable: account {start + i}: {r[i]}");
            }

            // Warm-up with the same concurrency (engine code paths, thread pool), not timed.
            await SubmitAllAsync(engine, workload, warmupStart, cfg.WarmupBatches, cfg, new long[cfg.WarmupBatches], "durable warm-up", ct).ConfigureAwait(false);

            var before = engine.Stats;
            var latencies = new long[cfg.DurableBatches];
            long t0 = Stopwatch.GetTimestamp();
            await SubmitAllAsync(engine, workload, 0, cfg.DurableBatches, cfg, latencies, "durable", ct).ConfigureAwait(false);
            double seconds = Stopwatch.GetElapsedTime(t0).TotalSeconds;
            var after = engine.Stats;

            long transfers = (long)cfg.DurableBatches * cfg.BatchSize;
            long expectedStored = transfers + (long)cfg.WarmupBatches * cfg.BatchSize;
            var (stored, invariantError) = await engine.ReadAsync(sm =>
            {
                try { sm.AssertInvariants(); return (sm.TransferCount, (string?)null); }
                catch (InvalidOperationException e) { return (sm.TransferCount, e.Message); }
            }, ct).ConfigureAwait(false);
            if (invariantError is not null) throw new BenchFailure("durable: " + invariantError);
            if (stored != expectedStored) throw new BenchFailure($"durable: {stored} transfers stored, expected {expectedStored}.");
            if (after.DurableOp != after.CommittedOp) throw new BenchFailure($"durable: op {after.CommittedOp} committed but only {after.DurableOp} durable after every batch was answered.");

            Array.Sort(latencies);
            double tickMs = 1000.0 / Stopwatch.Frequency;
            double p50 = BenchStats.Percentile(latencies, 0.50) * tickMs;
            double p99 = BenchStats.Percentile(latencies, 0.99) * tickMs;
            double max = latencies[^1] * tickMs;
            long fsyncs = after.Fsyncs - before.Fsyncs;
            long groups = after.Groups - before.Groups;
            long logBytes = after.LogBytes - before.LogBytes;
            Line(output, $"durable: {transfers} transfers in {seconds:F3} s = {transfers / seconds:N0} transfers/s ({cfg.Submitters} submitters x {cfg.InFlightPerSubmitter} in flight); batch latency p50 {p50:F2} ms, p99 {p99:F2} ms, max {max:F2} ms");
            Line(output, $"durable: {fsyncs} fdatasyncs, {groups} groups ({(double)cfg.DurableBatches / Math.Max(1, fsyncs):F2} batches per fsync), log {logBytes / (double)(1 << 20):F0} MiB at {logBytes / seconds / (1 << 20):F0} MiB/s");

            var disposeClock = Stopwatch.StartNew();
            disposed = true;
            await engine.DisposeAsync().ConfigureAwait(false);
            double disposeSeconds = disposeClock.Elapsed.TotalSeconds;
            Line(output, $"durable: disposed (final snapshot) in {disposeSeconds:F2} s, not timed");
            return new DurableResult(transfers, seconds, p50, p99, max, fsyncs, groups, logBytes, disposeSeconds);
        }
        finally
        {
            if (!disposed) await engine.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Submits batches [<paramref name="first"/>, first + count) with Submitters × InFlightPerSubmitter lanes, each
    /// lane keeping one batch in flight; records each batch's submit→result time (Stopwatch ticks) and checks its results.
    /// </summary>
    private static async Task SubmitAllAsync(LedgerEngine engine, LedgerBenchWorkload workload, int first, int count, Config cfg,
        long[] latencies, string phase, CancellationToken ct)
    {
        int next = -1;
        async Task Lane()
        {
            await Task.Yield();
            while (true)
            {
                int i = Interlocked.Increment(ref next);
                if (i >= count) return;
                long start = Stopwatch.GetTimestamp();
                var results = await engine.CreateTransfersAsync(workload.Batches[first + i], ct).ConfigureAwait(false);
                latencies[i] = Stopwatch.GetTimestamp() - start;
                CheckOk(results, phase, first + i);
            }
        }

        async Task Submitter()
        {
            var lanes = new Task[cfg.InFlightPerSubmitter];
            for (int l = 0; l < lanes.Length; l++) lanes[l] = Lane();
            await Task.WhenAll(lanes).ConfigureAwait(false);
        }

        var submitters = new Task[cfg.Submitters];
        for (int s = 0; s < submitters.Length; s++) submitters[s] = Submitter();
        await Task.WhenAll(submitters).ConfigureAwait(false);
    }

    // ================================================================== sqlite

    private static SqliteResult RunSqlite(LedgerBenchWorkload workload, Config cfg, int warmupStart, string path, TextWriter output, CancellationToken ct)
    {
        try
        {
            using var db = new SqliteLedgerBaseline(path);
            db.CreateAccounts(workload.Accounts);
            long ts = EpochNanoseconds;

            // One warm-up batch (JIT of the ADO.NET path, SQLite page cache), not timed.
            db.ApplyBatch(workload.Batches[warmupStart], ts);
            ts += cfg.BatchSize;
            long expectedAmount = SumAmounts(workload.Batches[warmupStart]);

            int available = Math.Min(warmupStart, cfg.DurableBatches);
            int batches = 0;
            var sw = Stopwatch.StartNew();
            while (batches < available && (batches < cfg.SqliteMinBatches || sw.Elapsed < cfg.SqliteTimeCap))
            {
                ct.ThrowIfCancellationRequested();
                db.ApplyBatch(workload.Batches[batches], ts);
                ts += cfg.BatchSize;
                batches++;
            }
            sw.Stop();
            for (int b = 0; b < batches; b++) expectedAmount += SumAmounts(workload.Batches[b]);

            long transfers = (long)batches * cfg.BatchSize;
            var totals = db.Totals();
            long expectedRows = transfers + cfg.BatchSize;
            if (totals.Debits != totals.Credits)
                throw new BenchFailure($"sqlite: sum(debits_posted) {totals.Debits} != sum(credits_posted) {totals.Credits}.");
            if (totals.Debits != expectedAmount || totals.Amounts != expectedAmount)
                throw new BenchFailure($"sqlite: posted {totals.Debits}, transfer amounts {totals.Amounts}, expected {expectedAmount}.");
            if (totals.Transfers != expectedRows)
                throw new BenchFailure($"sqlite: {totals.Transfers} transfer rows, expected {expectedRows}.");
            Line(output, $"sqlite: {transfers} transfers ({batches} batches) in {sw.Elapsed.TotalSeconds:F3} s = {transfers / sw.Elapsed.TotalSeconds:N0} transfers/s (WAL, synchronous=FULL, one transaction per batch); sum(debits) == sum(credits) == {totals.Debits}");
            return new SqliteResult(transfers, batches, sw.Elapsed.TotalSeconds);
        }
        finally
        {
            SqliteLedgerBaseline.DeleteFiles(path);
        }
    }

    private static long SumAmounts(Transfer[] batch)
    {
        long sum = 0;
        foreach (ref readonly Transfer t in batch.AsSpan()) sum += t.Amount;
        return sum;
    }

    // ================================================================== helpers

    private static void CheckOk(CreateTransferResult[] results, string phase, int batch)
    {
        for (int i = 0; i < results.Length; i++)
            if (results[i] != CreateTransferResult.Ok)
                throw new BenchFailure($"{phase}: batch {batch}, transfer {i}: {results[i]}");
    }

    private static void Collect() => BenchStats.Collect();

    private static void Line(TextWriter output, FormattableString text) => BenchStats.Line(output, text);

    private static string Json(Action<Utf8JsonWriter> body) => BenchStats.Json(body);
}
