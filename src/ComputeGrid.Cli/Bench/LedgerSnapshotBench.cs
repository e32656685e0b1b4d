using System.Diagnostics;
using ComputeGrid.Ledger;

namespace ComputeGrid.Cli.Bench;

public static partial class LedgerBench
{
    /// <summary>What the snapshot section measured.</summary>
    private readonly record struct SnapshotResult(
        long LedgerTransfers, double FillSeconds, double SnapshotSeconds, long SnapshotBytes,
        int BaselineBatches, double BaselineP99Ms, double BaselineMaxMs,
        int DuringBatches, double DuringP99Ms, double DuringMaxMs);

    /// <summary>Transfers in the ledger the snapshot section fills (the target is measured at ≥ 5 M).</summary>
    private static long SnapshotLedgerTransfers(bool quick) => quick ? 400_000 : 5_000_000;

    private const int SnapshotProbeBatchSize = 128;
    private const int SnapshotProbeLanes = 4;

    /// <summary>Most probe transfers a run may write (they are made as the clients go, so none runs out).</summary>
    private const int SnapshotProbeTransfersMax = 4_000_000;

    /// <summary>
    /// Fills a durable ledger with millions of transfers, then measures the latency of small batches written by
    /// <see cref="SnapshotProbeLanes"/> concurrent clients: first with no snapshot (baseline), then while a snapshot of
    /// the whole ledger is written. The snapshot is written off the sequencer, so the largest batch latency during it
    /// should stay near the baseline's (the target: p100 under 50 ms at ≥ 5 M transfers).
    /// </summary>
    private static async Task<SnapshotResult> RunSnapshotAsync(Config cfg, bool quick, string dataDir, TextWriter output, CancellationToken ct)
    {
        long fill = SnapshotLedgerTransfers(quick);
        int fillBatches = (int)((fill + cfg.BatchSize - 1) / cfg.BatchSize);
        var accounts = LedgerBenchWorkload.Generate(Seed, cfg.Accounts, 0, cfg.BatchSize).Accounts;
        var options = new LedgerEngineOptions
        {
            DataDirectory = dataDir,
            SnapshotEveryOps = 0,
            SnapshotLogBytesMin = 0, // only the snapshot this section asks for
            AccountsCapacity = cfg.Accounts,
            TransfersCapacity = checked((int)(fillBatches * (long)cfg.BatchSize + SnapshotProbeTransfersMax)),
        };
        var engine = LedgerEngine.Open(options);
        try
        {
            for (int start = 0; start < accounts.Length; start += LedgerLimits.BatchEventsMax)
            {
                int n = Math.Min(LedgerLimits.BatchEventsMax, accounts.Length - start);
                var r = await engine.CreateAccountsAsync(accounts.AsMemory(start, n), ct).ConfigureAwait(false);
                for (int i = 0; i < r.Length; i++)
                    if (r[i] != CreateAccountResult.Ok) throw new BenchFailure($"snapshot: account {start + i}: {r[i]}");
            }
            // The fill, generated a few batches at a time (each chunk its own seed, so its ids are its own).
            var fillClock = Stopwatch.StartNew();
            for (int done = 0, chunk = 0; done < fillBatches; chunk++)
            {
                int n = Math.Min(25, fillBatches - done);
                var w = LedgerBenchWorkload.Generate(Seed + 1 + chunk, cfg.Accounts, n, cfg.BatchSize);
                await SubmitAllAsync(engine, w, 0, n, cfg, new long[n], "snapshot fill", ct).ConfigureAwait(false);
                done += n;
            }
            double fillSeconds = fillClock.Elapsed.TotalSeconds;
            long transfers = engine.Stats.Transfers;
            Line(output, $"snapshot: filled a ledger of {transfers:N0} transfers in {fillSeconds:F1} s");
            Collect();

            // Probe transfers are made as the clients go (ids from one counter in their own high half), seeded per client.
            long probeCounter = 0;
            var rng = new Random(Seed + 0x5AB);
            async Task<long[]> ProbeAsync(Func<bool> stop)
            {
                var latencies = new List<long>[SnapshotProbeLanes];
                async Task Lane(int lane, List<long> into)
                {
                    await Task.Yield();
                    var laneRng = new Random(rng.Next() ^ lane);
                    var batch = new Transfer[SnapshotProbeBatchSize];
                    while (!stop())
                    {
                        long first = Interlocked.Add(ref probeCounter, batch.Length) - batch.Length;
                        if (first + batch.Length > SnapshotProbeTransfersMax) throw new BenchFailure("snapshot: the probe clients wrote more transfers than the ledger was sized for.");
                        for (int i = 0; i < batch.Length; i++)
                        {
                            int debit = laneRng.Next(accounts.Length), credit = laneRng.Next(accounts.Length - 1);
                            if (credit >= debit) credit++;
                            batch[i] = new Transfer
                            {
                                Id = new UInt128(0x5AB0_0000_0000_0001UL, (ulong)(first + i) + 1), DebitAccountId = accounts[debit].Id, CreditAccountId = accounts[credit].Id,
                                Amount = laneRng.Next(1, 1001), Asset = LedgerBenchWorkload.Asset, Code = LedgerBenchWorkload.Code,
                            };
                        }
                        long t0 = Stopwatch.GetTimestamp();
                        var results = await engine.CreateTransfersAsync(batch, ct).ConfigureAwait(false);
                        into.Add(Stopwatch.GetTimestamp() - t0);
                        CheckOk(results, "snapshot probe", (int)(first / batch.Length));
                    }
                }
                for (int l = 0; l < latencies.Length; l++) latencies[l] = new List<long>();
                await Task.WhenAll(latencies.Select((into, lane) => Lane(lane, into))).ConfigureAwait(false);
                var all = latencies.SelectMany(l => l).ToArray();
                Array.Sort(all);
                return all;
            }

            var baselineClock = Stopwatch.StartNew();
            var baselineDuration = TimeSpan.FromSeconds(quick ? 1 : 3);
            var baseline = await ProbeAsync(() => baselineClock.Elapsed >= baselineDuration).ConfigureAwait(false);

            var snapshotClock = Stopwatch.StartNew();
            Task snapshot = engine.SnapshotAsync(ct);
            var during = await ProbeAsync(() => snapshot.IsCompleted).ConfigureAwait(false);
            await snapshot.ConfigureAwait(false);
            double snapshotSeconds = snapshotClock.Elapsed.TotalSeconds;
            var stats = engine.Stats;
            if (stats.Snapshots != 1 || stats.SnapshotFailures != 0) throw new BenchFailure($"snapshot: {stats.Snapshots} published, {stats.SnapshotFailures} failed.");
            if (baseline.Length == 0 || during.Length == 0) throw new BenchFailure("snapshot: no probe batch was measured.");
            long snapshotBytes = new FileInfo(Path.Combine(dataDir, "ledger.snapshot")).Length;

            double tickMs = 1000.0 / Stopwatch.Frequency;
            var result = new SnapshotResult(transfers, fillSeconds, snapshotSeconds, snapshotBytes,
                baseline.Length, BenchStats.Percentile(baseline, 0.99) * tickMs, baseline[^1] * tickMs,
                during.Length, BenchStats.Percentile(during, 0.99) * tickMs, during[^1] * tickMs);
            Line(output, $"snapshot: {snapshotBytes / (double)(1 << 20):F0} MiB written off the sequencer in {snapshotSeconds:F2} s; batches of {SnapshotProbeBatchSize} from {SnapshotProbeLanes} clients: during it {during.Length} batches, p99 {result.DuringP99Ms:F2} ms, max {result.DuringMaxMs:F2} ms; without it {baseline.Length} batches, p99 {result.BaselineP99Ms:F2} ms, max {result.BaselineMaxMs:F2} ms");
            return result;
        }
        finally
        {
            await engine.DisposeAsync().ConfigureAwait(false);
        }
    }
}
