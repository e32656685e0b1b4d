using System.Security.Cryptography;
using ComputeGrid.Ledger.Storage;
using Microsoft.Extensions.Time.Testing;
using Xunit.Abstractions;

namespace ComputeGrid.Ledger.Tests;

/// <summary>
/// Recovery refuses corruption and truncates only a torn tail: seeded sweeps of flipped bytes over the log and the
/// snapshot, torn last groups, a log shorter than its snapshot, a chain break. Set CG_SEED to replay a failure.
/// </summary>
public sealed class RecoveryTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "cg-recovery-" + Guid.NewGuid().ToString("N"));

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

    private static LedgerEngineOptions Options(string dir) => new()
    {
        DataDirectory = dir, SnapshotEveryOps = 0, SnapshotLogBytesMin = 0, AccountsCapacity = 64, TransfersCapacity = 4096,
    };

    private static FakeTimeProvider Clock() => new(new DateTimeOffset(2026, 11, 26, 0, 0, 0, TimeSpan.Zero));

    /// <summary>What a built ledger holds: its acknowledged transfer ids, the state hash, where each record starts.</summary>
    private sealed record Built(UInt128[] Acknowledged, byte[] StateHash, long[] RecordOffsets, long LogBytes, int LastBatchAcknowledged);

    /// <summary>
    /// A durable ledger of <paramref name="batches"/> transfer batches, each awaited alone (so each is its own group and
    /// its own record): plain transfers, holds, posts and voids. With <paramref name="snapshotAfter"/>, the snapshot
    /// taken after that batch is kept (the final one Dispose writes is replaced by it, as a crash would leave it).
    /// <paramref name="amountSalt"/> changes amounts only, so two ledgers with different salts have the same shape.
    /// </summary>
    private static async Task<Built> BuildAsync(string dir, int batches, int? snapshotAfter = null, int amountSalt = 0)
    {
        var time = Clock();
        var acknowledged = new List<UInt128>();
        int lastBatch = 0;
        byte[] hash;
        byte[]? mid = null;
        string snapPath = Path.Combine(dir, "ledger.snapshot");
        await using (var engine = LedgerEngine.Open(Options(dir), time))
        {
            await engine.CreateAccountsAsync(Enumerable.Range(1, 6).Select(i => new Account { Id = (ulong)i, Asset = 1, Code = 1 }).ToArray());
            ulong id = 100;
            for (int b = 0; b < batches; b++)
            {
                time.Advance(TimeSpan.FromMilliseconds(3));
                var batch = new List<Transfer>();
                for (int i = 0; i <= b % 4; i++)
                {
                    ulong t = id++;
                    bool hold = t % 3 == 0;
                    batch.Add(new Transfer
                    {
                        Id = t, DebitAccountId = 1 + t % 6, CreditAccountId = 1 + (t + 1) % 6, Amount = (long)(t % 97) + 1 + amountSalt,
                        Asset = 1, Code = 1, Flags = hold ? TransferFlags.Pending : TransferFlags.None,
                    });
                    // Settle an earlier hold: post or void.
                    if (t % 5 == 0 && t > 103)
                    {
                        ulong pending = (t - 4) / 3 * 3;
                        batch.Add(new Transfer { Id = id++, PendingId = pending, Flags = t % 2 == 0 ? TransferFlags.PostPendingTransfer : TransferFlags.VoidPendingTransfer });
                    }
                }
                var results = await engine.CreateTransfersAsync(batch.ToArray());
                lastBatch = results.Count(r => r == CreateTransferResult.Ok);
                for (int i = 0; i < results.Length; i++)
                    if (results[i] == CreateTransferResult.Ok) acknowledged.Add(batch[i].Id);
                if (b + 1 == snapshotAfter)
                {
                    await engine.SnapshotAsync();
                    mid = File.ReadAllBytes(snapPath);
                }
            }
            hash = await engine.ReadAsync(sm => sm.ComputeStateHash());
        }
        if (mid is not null) File.WriteAllBytes(snapPath, mid);
        else File.Delete(snapPath);
        var offsets = new List<long>();
        var scan = LedgerLog.Scan(Path.Combine(dir, "ledger.log"), 0, 0, LedgerLog.GenesisHash, r => offsets.Add(r.Offset));
        Assert.Null(scan.StopReason);
        return new Built(acknowledged.ToArray(), hash, offsets.ToArray(), scan.ValidBytes, lastBatch);
    }

    private static string Digest(string path) => File.Exists(path) ? Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(path))) : "absent";

    /// <summary>Opening refuses with one line naming the file, and changes no byte of the log or the snapshot.</summary>
    private static LedgerCorruptException AssertRefused(string dir, string damagedFile)
    {
        string log = Path.Combine(dir, "ledger.log"), snap = Path.Combine(dir, "ledger.snapshot");
        string logBefore = Digest(log), snapBefore = Digest(snap);
        var e = Assert.Throws<LedgerCorruptException>(() => { LedgerEngine.Open(Options(dir), Clock()); });
        Assert.Equal(logBefore, Digest(log));
        Assert.Equal(snapBefore, Digest(snap));
        Assert.DoesNotContain('\n', e.Message);
        Assert.Equal(Path.Combine(dir, damagedFile), e.File);
        Assert.Contains($"{damagedFile} at byte {e.Offset}, op {e.Op}: ", e.Message);
        var v = Assert.Throws<LedgerCorruptException>(() => LedgerEngine.VerifyDirectory(dir));
        Assert.Equal(Path.Combine(dir, damagedFile), v.File);
        return e;
    }

    private static async Task AssertRecoversAsync(string dir, Built built, int lostTransfers = 0)
    {
        await using var engine = LedgerEngine.Open(Options(dir), Clock());
        var found = await engine.LookupTransfersAsync(built.Acknowledged);
        Assert.Equal(built.Acknowledged.Length - lostTransfers, found.Length);
        if (lostTransfers == 0) Assert.Equal(built.StateHash, await engine.ReadAsync(sm => sm.ComputeStateHash()));
    }

    private static void Flip(string path, long offset, byte mask)
    {
        using var fs = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
        fs.Position = offset;
        int b = fs.ReadByte();
        fs.Position = offset;
        fs.WriteByte((byte)(b ^ mask));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_byte_flipped_anywhere_in_the_log_but_the_last_group_is_refused_and_nothing_is_truncated(bool withSnapshot)
    {
        var rng = new Random(Seed() + (withSnapshot ? 1 : 0));
        var built = await BuildAsync(_dir, batches: 24, snapshotAfter: withSnapshot ? 12 : null);
        string log = Path.Combine(_dir, "ledger.log");
        long lastGroup = built.RecordOffsets[^1]; // each batch was its own group
        for (int k = 0; k < 40; k++)
        {
            long offset = rng.NextInt64(0, lastGroup);
            byte mask = (byte)rng.Next(1, 256);
            Flip(log, offset, mask);
            var e = AssertRefused(_dir, "ledger.log");
            Assert.True(e.Offset <= offset, $"flip at {offset} reported at {e.Offset}: {e.Message}");
            Flip(log, offset, mask);
        }
        await AssertRecoversAsync(_dir, built);
    }

    [Fact]
    public async Task A_byte_flipped_anywhere_in_the_snapshot_is_refused()
    {
        var rng = new Random(Seed());
        var built = await BuildAsync(_dir, batches: 16, snapshotAfter: 10);
        string snap = Path.Combine(_dir, "ledger.snapshot");
        long length = new FileInfo(snap).Length;
        // The header (op, log offset, chain head, sizes, checksums) and the state, both swept.
        var offsets = Enumerable.Range(0, 20).Select(_ => rng.NextInt64(0, SnapshotFile.HeaderBytes))
            .Concat(Enumerable.Range(0, 20).Select(_ => rng.NextInt64(SnapshotFile.HeaderBytes, length)));
        foreach (long offset in offsets)
        {
            byte mask = (byte)rng.Next(1, 256);
            Flip(snap, offset, mask);
            AssertRefused(_dir, "ledger.snapshot");
            Flip(snap, offset, mask);
        }
        await AssertRecoversAsync(_dir, built);
    }

    [Fact]
    public async Task A_torn_last_group_recovers_with_every_acknowledged_transfer()
    {
        var rng = new Random(Seed());
        var built = await BuildAsync(_dir, batches: 12);
        string log = Path.Combine(_dir, "ledger.log");
        byte[] pristine = File.ReadAllBytes(log);
        long lastStart = built.RecordOffsets[^1];
        byte[] lastRecord = pristine.AsSpan((int)lastStart).ToArray();
        // A next group whose write was torn: its record's header says op last+1, then part of a body, or all of it
        // with stale sectors; zeros (an extended file never written); garbage.
        byte[] next = (byte[])lastRecord.Clone();
        BitConverter.TryWriteBytes(next.AsSpan(8, 8), (ulong)built.RecordOffsets.Length + 1); // ops 1..records: the next one
        var tails = new List<(string Name, byte[] Tail)>
        {
            ("zeros", new byte[rng.Next(1, 9000)]),
            ("garbage", RandomBytes(rng, rng.Next(1, 9000))),
            ("a header alone", next[..LedgerLimits.RecordHeaderBytes]),
            ("half a record", next[..rng.Next(LedgerLimits.RecordHeaderBytes + 1, next.Length)]),
            ("a whole record with a stale sector", StaleSector(next, rng)),
            ("a few header bytes", next[..rng.Next(1, LedgerLimits.RecordHeaderBytes)]),
        };
        foreach (var (name, tail) in tails)
        {
            File.WriteAllBytes(log, [.. pristine, .. tail]);
            await using (var engine = LedgerEngine.Open(Options(_dir), Clock()))
            {
                Assert.True(engine.Recovery.TruncatedBytes == tail.Length, $"{name}: truncated {engine.Recovery.TruncatedBytes} of {tail.Length}");
                Assert.Equal(built.Acknowledged.Length, (await engine.LookupTransfersAsync(built.Acknowledged)).Length);
                Assert.Equal(built.StateHash, await engine.ReadAsync(sm => sm.ComputeStateHash()));
            }
            File.Delete(Path.Combine(_dir, "ledger.snapshot"));
            Assert.Equal(pristine, File.ReadAllBytes(log));
        }
        // The last acknowledged record itself cut short (its group torn): everything before it survives.
        File.WriteAllBytes(log, pristine[..(int)(lastStart + rng.Next(1, lastRecord.Length))]);
        var v = LedgerEngine.VerifyDirectory(_dir);
        Assert.True(v.TrailingBytes > 0);
        Assert.NotNull(v.TornTailReason);
        await AssertRecoversAsync(_dir, built, lostTransfers: built.LastBatchAcknowledged);
    }

    private static byte[] RandomBytes(Random rng, int n)
    {
        var b = new byte[n];
        rng.NextBytes(b);
        return b;
    }

    private static byte[] StaleSector(byte[] record, Random rng)
    {
        var r = (byte[])record.Clone();
        int at = rng.Next(LedgerLimits.RecordHeaderBytes, r.Length);
        r.AsSpan(at, Math.Min(512, r.Length - at)).Clear();
        r[^1] ^= 0x5A; // and the end differs, so the record never checks
        return r;
    }

    [Fact]
    public async Task A_log_shorter_than_its_snapshot_is_refused_before_anything_is_truncated()
    {
        var built = await BuildAsync(_dir, batches: 10, snapshotAfter: 10);
        string log = Path.Combine(_dir, "ledger.log");
        // Cut at a record boundary (a whole record lost) and mid-record: neither is a torn tail the snapshot allows.
        foreach (long cut in new[] { built.RecordOffsets[^2], built.RecordOffsets[^1] + 10 })
        {
            using (var fs = new FileStream(log, FileMode.Open, FileAccess.ReadWrite)) fs.SetLength(cut);
            var e = AssertRefused(_dir, "ledger.log");
            Assert.Equal(cut, e.Offset);
            Assert.Contains("before byte", e.Reason);
            Assert.Equal(cut, new FileInfo(log).Length);
        }
    }

    [Fact]
    public async Task A_snapshot_whose_chain_head_is_not_the_logs_is_refused_as_a_chain_break()
    {
        // Two ledgers of the same shape (same record sizes and ops) whose amounts differ: A's snapshot over B's log.
        string a = Path.Combine(_dir, "a"), b = Path.Combine(_dir, "b");
        var builtA = await BuildAsync(a, batches: 8, snapshotAfter: 5);
        var builtB = await BuildAsync(b, batches: 8, amountSalt: 1);
        Assert.Equal(builtA.RecordOffsets, builtB.RecordOffsets);
        File.Copy(Path.Combine(a, "ledger.snapshot"), Path.Combine(b, "ledger.snapshot"));
        var e = AssertRefused(b, "ledger.snapshot");
        Assert.Contains("chain break", e.Reason);
        // A middle record of B replaced by A's (same op, same size): its hash does not chain, valid records follow.
        File.Delete(Path.Combine(b, "ledger.snapshot"));
        byte[] logA = File.ReadAllBytes(Path.Combine(a, "ledger.log")), logB = File.ReadAllBytes(Path.Combine(b, "ledger.log"));
        int start = (int)builtB.RecordOffsets[4], end = (int)builtB.RecordOffsets[5];
        logA.AsSpan(start, end - start).CopyTo(logB.AsSpan(start));
        File.WriteAllBytes(Path.Combine(b, "ledger.log"), logB);
        var broken = AssertRefused(b, "ledger.log");
        Assert.Equal(start, broken.Offset);
        Assert.Equal(5UL, broken.Op);
        Assert.Contains("hash mismatch", broken.Reason);
    }

    [Fact]
    public async Task Verify_checks_the_snapshot_against_the_replay_and_changes_nothing()
    {
        var built = await BuildAsync(_dir, batches: 14, snapshotAfter: 9);
        string log = Path.Combine(_dir, "ledger.log");
        var v = LedgerEngine.VerifyDirectory(_dir);
        Assert.Equal(10UL, v.SnapshotOp); // the accounts' record, then 9 batches
        Assert.Equal(built.StateHash, v.StateHash);
        Assert.Equal(0, v.TrailingBytes);
        // A torn tail is reported, not repaired.
        File.AppendAllText(log, "torn");
        string before = Digest(log);
        var torn = LedgerEngine.VerifyDirectory(_dir);
        Assert.Equal(4, torn.TrailingBytes);
        Assert.Equal("incomplete header", torn.TornTailReason);
        Assert.Equal(before, Digest(log));
        Assert.Equal(built.LogBytes + 4, new FileInfo(log).Length);
    }
}
