using Microsoft.Extensions.Time.Testing;
using Xunit.Abstractions;

namespace ComputeGrid.Ledger.Tests;

/// <summary>
/// Snapshots are written off the sequencer: writes flow while one is written, its bytes are the state at its op
/// (whatever changed since), and a failed one costs nothing but itself. Set CG_SEED to replay a failure.
/// </summary>
public sealed class SnapshotTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "cg-snapshot-" + Guid.NewGuid().ToString("N"));
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);

    public void Dispose()
    {
        if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true);
    }

    private int Seed()
    {
        int seed = int.TryParse(Environment.GetEnvironmentVariable("CG_SEED"), out var s) ? s : 20261126;
        output.WriteLine($"seed {seed} (set CG_SEED={seed} to replay)");
        return seed;
    }

    private static FakeTimeProvider Clock() => new(new DateTimeOffset(2026, 11, 26, 0, 0, 0, TimeSpan.Zero));

    /// <summary>A stream that, once <c>holdAfterBytes</c> have been written, holds the writer until released, or fails it.</summary>
    private sealed class FaultStream(Stream inner, long holdAfterBytes, TaskCompletionSource? held, ManualResetEventSlim? release, Exception? fail) : Stream
    {
        private long _written;

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            if (_written + buffer.Length > holdAfterBytes)
            {
                if (fail is not null) throw fail;
                if (held is not null && held.TrySetResult()) release!.Wait();
            }
            _written += buffer.Length;
            inner.Write(buffer);
        }

        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));
        public override void Flush() => inner.Flush();
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
    }

    private static Account[] Accounts(int n) => Enumerable.Range(1, n).Select(i => new Account { Id = (ulong)i, Asset = 1, Code = 1 }).ToArray();

    private static Transfer Plain(ulong id, Random rng, int accounts, bool pending = false)
    {
        ulong d = (ulong)rng.Next(1, accounts + 1), c = (ulong)rng.Next(1, accounts);
        if (c >= d) c++;
        return new Transfer { Id = id, DebitAccountId = d, CreditAccountId = c, Amount = rng.Next(1, 1000), Asset = 1, Code = 1, Flags = pending ? TransferFlags.Pending : TransferFlags.None };
    }

    [Fact]
    public async Task Writes_complete_while_a_snapshot_is_held_mid_file_and_the_snapshot_is_the_state_at_its_op()
    {
        var rng = new Random(Seed());
        var time = Clock();
        var held = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var release = new ManualResetEventSlim(false);
        bool holdOnce = true;
        const int accounts = 50;
        var options = new LedgerEngineOptions
        {
            DataDirectory = _dir, SnapshotEveryOps = 0, SnapshotLogBytesMin = 0, AccountsCapacity = 64, TransfersCapacity = 1 << 17,
            // Hold the first snapshot after 1 MiB: past the accounts, inside the first chunk's transfers, so every status
            // below is read after the changes made while it is held.
            SnapshotStreamWrapper = s => holdOnce ? new FaultStream(s, 1 << 20, held, release, null) : s,
        };
        ulong id = 1;
        var holds = new List<ulong>();
        byte[] finalHash, midSnapshot;
        await using (var engine = LedgerEngine.Open(options, time))
        {
            await engine.CreateAccountsAsync(Accounts(accounts));
            // More than one chunk (65,536) of transfers, a third of them holds.
            for (int b = 0; b < 9; b++)
            {
                var batch = new Transfer[8000];
                for (int i = 0; i < batch.Length; i++)
                {
                    bool pending = i % 3 == 0;
                    if (pending) holds.Add(id);
                    batch[i] = Plain(id++, rng, accounts, pending);
                }
                Assert.All(await engine.CreateTransfersAsync(batch), r => Assert.Equal(CreateTransferResult.Ok, r));
            }
            ulong snapshotOp = engine.Stats.CommittedOp;
            var snapshot = engine.SnapshotAsync();
            await held.Task.WaitAsync(Patience);

            // The writer is held: batches still complete, settling holds below the snapshot's op (post, void) in both
            // chunks, adding transfers and accounts.
            var settle = holds.OrderBy(_ => rng.Next()).Take(6000).ToArray();
            for (int k = 0; k < settle.Length; k += 1000)
            {
                var batch = settle.Skip(k).Take(1000).Select((p, i) => new Transfer
                {
                    Id = id++, PendingId = p, Flags = i % 2 == 0 ? TransferFlags.PostPendingTransfer : TransferFlags.VoidPendingTransfer,
                }).ToArray();
                Assert.All(await engine.CreateTransfersAsync(batch), r => Assert.Equal(CreateTransferResult.Ok, r));
            }
            await engine.CreateAccountsAsync(Enumerable.Range(accounts + 1, 5).Select(i => new Account { Id = (ulong)i, Asset = 1, Code = 1 }).ToArray());
            Assert.All(await engine.CreateTransfersAsync(Enumerable.Range(0, 500).Select(_ => Plain(id++, rng, accounts)).ToArray()), r => Assert.Equal(CreateTransferResult.Ok, r));
            Assert.False(snapshot.IsCompleted); // it is held by this test, not by time

            holdOnce = false;
            release.Set();
            await snapshot.WaitAsync(Patience);
            Assert.Equal(1, engine.Stats.Snapshots);
            midSnapshot = File.ReadAllBytes(Path.Combine(_dir, "ledger.snapshot"));
            // The published snapshot is the state at its op, byte for byte: its hash equals the log replayed to that op.
            var verified = LedgerEngine.VerifyDirectory(_dir);
            Assert.Equal(snapshotOp, verified.SnapshotOp);
            finalHash = await engine.ReadAsync(sm => sm.ComputeStateHash());
        }
        // Restart from that snapshot (as if the final one had not been written): the rest is replayed onto it.
        File.WriteAllBytes(Path.Combine(_dir, "ledger.snapshot"), midSnapshot);
        await using (var reopened = LedgerEngine.Open(options with { SnapshotStreamWrapper = null }, time))
        {
            Assert.True(reopened.Recovery.SnapshotLoaded);
            Assert.True(reopened.Recovery.RecordsReplayed > 0);
            Assert.Equal(finalHash, await reopened.ReadAsync(sm => sm.ComputeStateHash()));
        }
        Assert.Equal(finalHash, LedgerEngine.VerifyDirectory(_dir).StateHash);
    }

    [Fact]
    public async Task A_snapshot_failing_on_a_full_disk_leaves_the_ledger_serving_and_a_later_one_succeeds()
    {
        var rng = new Random(Seed());
        var time = Clock();
        var reported = new List<Exception>();
        bool diskFull = true;
        var options = new LedgerEngineOptions
        {
            DataDirectory = _dir, SnapshotEveryOps = 3, SnapshotLogBytesMin = 0, AccountsCapacity = 64, TransfersCapacity = 4096,
            SnapshotRetryDelayMin = TimeSpan.FromSeconds(10),
            SnapshotStreamWrapper = s => diskFull ? new FaultStream(s, 100, null, null, new IOException("No space left on device")) : s,
            SnapshotFailed = e => { lock (reported) reported.Add(e); },
        };
        ulong id = 1;
        await using (var engine = LedgerEngine.Open(options, time))
        {
            await engine.CreateAccountsAsync(Accounts(8));
            var e = await Assert.ThrowsAsync<IOException>(() => engine.SnapshotAsync());
            Assert.Contains("No space left", e.Message);
            Assert.False(File.Exists(Path.Combine(_dir, "ledger.snapshot.tmp")));
            Assert.False(File.Exists(Path.Combine(_dir, "ledger.snapshot")));

            // Writes and reads go on; periodic snapshots come due every 3 ops and fail, but the clock has not reached
            // the retry time after the first failure, so none is retried before the clock moves.
            for (int b = 0; b < 10; b++)
                Assert.All(await engine.CreateTransfersAsync(Enumerable.Range(0, 20).Select(_ => Plain(id++, rng, 8)).ToArray()), r => Assert.Equal(CreateTransferResult.Ok, r));
            Assert.Equal(10 * 20, (await engine.ReadAsync(sm => sm.TransferCount)));
            Assert.Null(engine.Fault);
            long failures = engine.Stats.SnapshotFailures;
            Assert.True(failures is >= 1 and <= 2, $"{failures} failures"); // the asked one, and at most one periodic before the backoff

            // Past the backoff, a due snapshot is retried (and fails again while the disk is full).
            time.Advance(TimeSpan.FromSeconds(11));
            for (int b = 0; b < 100 && engine.Stats.SnapshotFailures == failures; b++)
            {
                await engine.CreateTransfersAsync(new[] { Plain(id++, rng, 8) });
                if (engine.Stats.SnapshotFailures == failures) await Task.Delay(20);
            }
            Assert.True(engine.Stats.SnapshotFailures > failures);

            // The disk has room again: a snapshot asked for now is written.
            diskFull = false;
            await engine.SnapshotAsync();
            Assert.True(engine.Stats.Snapshots >= 1);
            lock (reported)
            {
                Assert.Equal(engine.Stats.SnapshotFailures, reported.Count);
                Assert.All(reported, r => Assert.IsType<IOException>(r));
            }
        }
        var v = LedgerEngine.VerifyDirectory(_dir);
        Assert.NotNull(v.SnapshotOp);
        await using var reopened = LedgerEngine.Open(options with { SnapshotStreamWrapper = null }, time);
        Assert.True(reopened.Recovery.SnapshotLoaded);
        Assert.Equal((int)(id - 1), await reopened.ReadAsync(sm => sm.TransferCount));
    }

    [Fact]
    public async Task Dispose_with_a_failing_final_snapshot_still_closes_and_the_log_recovers_everything()
    {
        var rng = new Random(Seed());
        var time = Clock();
        var options = new LedgerEngineOptions
        {
            DataDirectory = _dir, SnapshotEveryOps = 0, SnapshotLogBytesMin = 0, AccountsCapacity = 64, TransfersCapacity = 4096,
            SnapshotStreamWrapper = s => new FaultStream(s, 0, null, null, new IOException("No space left on device")),
        };
        byte[] hash;
        await using (var engine = LedgerEngine.Open(options, time))
        {
            await engine.CreateAccountsAsync(Accounts(8));
            await engine.CreateTransfersAsync(Enumerable.Range(1, 50).Select(i => Plain((ulong)i, rng, 8)).ToArray());
            hash = await engine.ReadAsync(sm => sm.ComputeStateHash());
        }
        Assert.False(File.Exists(Path.Combine(_dir, "ledger.snapshot")));
        await using var reopened = LedgerEngine.Open(options with { SnapshotStreamWrapper = null }, time);
        Assert.False(reopened.Recovery.SnapshotLoaded);
        Assert.Equal(hash, await reopened.ReadAsync(sm => sm.ComputeStateHash()));
    }
}
