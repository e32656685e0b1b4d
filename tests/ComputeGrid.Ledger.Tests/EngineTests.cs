using ComputeGrid.Ledger.Audit;
using CsCheck;
using Microsoft.Extensions.Time.Testing;

namespace ComputeGrid.Ledger.Tests;

/// <summary>The durable engine: replay, recovery from torn and corrupted tails, snapshots, checkpoints.</summary>
public sealed class EngineTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "cg-ledger-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true);
    }

    private static FakeTimeProvider Clock() => new(new DateTimeOffset(2026, 11, 26, 0, 0, 0, TimeSpan.Zero));

    /// <summary>
    /// Runs the batches through the engine. With <paramref name="replayDir"/>, after every batch the log on disk
    /// is replayed from genesis by the offline verifier and must give the engine's exact state, whose
    /// invariants must hold.
    /// </summary>
    private static async Task<(byte[] Hash, LedgerStats Stats)> RunAsync(LedgerEngine engine, FakeTimeProvider time, GeneratedBatch[] batches, string? replayDir = null)
    {
        var opening = Scenario.Opening();
        await engine.CreateAccountsAsync(opening);
        foreach (var b in batches)
        {
            time.Advance(TimeSpan.FromTicks(b.AdvanceNs / 100 + 1));
            if (b.IsAccounts) await engine.CreateAccountsAsync(b.Accounts);
            else await engine.CreateTransfersAsync(b.Transfers);
            if (replayDir is null) continue;
            var live = await engine.ReadAsync(sm => { sm.AssertInvariants(); return sm.ComputeStateHash(); });
            Assert.Equal(live, LedgerEngine.VerifyDirectory(replayDir).StateHash);
        }
        var hash = await engine.ReadAsync(sm => { sm.AssertInvariants(); return sm.ComputeStateHash(); });
        return (hash, engine.Stats);
    }

    [Fact]
    public async Task Replaying_the_log_gives_byte_identical_state_and_invariants_hold()
    {
        // Property: for random workloads, closing and reopening (log replay, no snapshot) gives the same
        // state hash, and the offline verifier replays the same hash from the log alone.
        int run = 0;
        await Scenario.Batches.SampleAsync(async batches =>
        {
            string dir = Path.Combine(_dir, (run++).ToString());
            var time = Clock();
            byte[] before;
            await using (var engine = LedgerEngine.Open(new LedgerEngineOptions { DataDirectory = dir, SnapshotEveryOps = 0 }, time))
                (before, _) = await RunAsync(engine, time, batches, replayDir: dir);
            File.Delete(Path.Combine(dir, "ledger.snapshot")); // force a full replay
            await using (var reopened = LedgerEngine.Open(new LedgerEngineOptions { DataDirectory = dir }, time))
            {
                Assert.False(reopened.Recovery.SnapshotLoaded);
                var after = await reopened.ReadAsync(sm => sm.ComputeStateHash());
                Assert.Equal(before, after);
            }
            Assert.Equal(before, LedgerEngine.VerifyDirectory(dir).StateHash);
        }, iter: 40, threads: 1);
    }

    [Fact]
    public async Task Snapshot_restore_equals_replay()
    {
        var time = Clock();
        var batches = FixedScenario.Of(30, 42);
        byte[] before;
        await using (var engine = LedgerEngine.Open(new LedgerEngineOptions { DataDirectory = _dir, SnapshotEveryOps = 7 }, time))
            (before, _) = await RunAsync(engine, time, batches);
        await using (var reopened = LedgerEngine.Open(new LedgerEngineOptions { DataDirectory = _dir }, time))
        {
            Assert.True(reopened.Recovery.SnapshotLoaded);
            Assert.Equal(before, await reopened.ReadAsync(sm => sm.ComputeStateHash()));
            // New work after a restore continues the op sequence and the hash chain.
            await reopened.CreateTransfersAsync(new[] { new Transfer { Id = 9999, DebitAccountId = 1, CreditAccountId = 4, Amount = 5, Asset = 1, Code = 1 } });
        }
        var verified = LedgerEngine.VerifyDirectory(_dir);
        Assert.Equal(0, verified.TrailingBytes);
    }

    [Fact]
    public async Task Same_batches_on_different_threads_and_clocks_replay_to_identical_state()
    {
        // The state machine is deterministic given the logged timestamps: run the same log on two threads.
        var time = Clock();
        var batches = FixedScenario.Of(40, 7);
        await using (var engine = LedgerEngine.Open(new LedgerEngineOptions { DataDirectory = _dir, SnapshotEveryOps = 0 }, time))
            await RunAsync(engine, time, batches);
        var hashes = await Task.WhenAll(Enumerable.Range(0, 2).Select(_ => Task.Run(() => LedgerEngine.VerifyDirectory(_dir).StateHash)));
        Assert.Equal(hashes[0], hashes[1]);
    }

    [Fact]
    public async Task Corrupting_the_last_bytes_keeps_everything_before_them()
    {
        var time = Clock();
        await using (var engine = LedgerEngine.Open(new LedgerEngineOptions { DataDirectory = _dir, SnapshotEveryOps = 0 }, time))
        {
            await engine.CreateAccountsAsync(Scenario.Opening());
            for (int i = 1; i <= 10; i++)
            {
                var r = await engine.CreateTransfersAsync(new[] { new Transfer { Id = (ulong)i, DebitAccountId = 1, CreditAccountId = 4, Amount = i, Asset = 1, Code = 1 } });
                Assert.Equal(CreateTransferResult.Ok, r[0]);
            }
        }
        File.Delete(Path.Combine(_dir, "ledger.snapshot"));
        string log = Path.Combine(_dir, "ledger.log");
        long length = new FileInfo(log).Length;
        // Flip the last 5 bytes (the 10th transfer's body) and append half a header of garbage.
        using (var fs = new FileStream(log, FileMode.Open, FileAccess.ReadWrite))
        {
            fs.Position = length - 5;
            var tail = new byte[5];
            fs.ReadExactly(tail);
            for (int i = 0; i < 5; i++) tail[i] ^= 0xFF;
            fs.Position = length - 5;
            fs.Write(tail);
            fs.Position = length;
            fs.Write(new byte[] { 0x43, 0x47, 0x4C, 0x52, 1, 2, 3 });
        }
        await using (var reopened = LedgerEngine.Open(new LedgerEngineOptions { DataDirectory = _dir }, time))
        {
            Assert.True(reopened.Recovery.TruncatedBytes > 0);
            Assert.Equal("hash mismatch", reopened.Recovery.StopReason);
            var found = await reopened.LookupTransfersAsync(Enumerable.Range(1, 10).Select(i => (UInt128)(ulong)i).ToArray());
            Assert.Equal(9, found.Length); // transfers 1..9 survive, the torn 10th is gone
            var acct = (await reopened.LookupAccountsAsync(new UInt128[] { 4 }))[0];
            Assert.Equal(45, acct.CreditsPosted);
            // The log accepts new records after the truncation point and the chain stays valid.
            var r = await reopened.CreateTransfersAsync(new[] { new Transfer { Id = 10, DebitAccountId = 1, CreditAccountId = 4, Amount = 10, Asset = 1, Code = 1 } });
            Assert.Equal(CreateTransferResult.Ok, r[0]);
        }
        var v = LedgerEngine.VerifyDirectory(_dir);
        Assert.Equal(0, v.TrailingBytes);
        Assert.Equal(11UL, v.LastOp); // the accounts, 9 surviving transfers and the new one
    }

    [Fact]
    public async Task Pending_transfers_expire_on_the_ledger_clock()
    {
        var time = Clock();
        await using var engine = LedgerEngine.Open(new LedgerEngineOptions { PulseInterval = TimeSpan.FromMilliseconds(5) }, time);
        await engine.CreateAccountsAsync(new[] { new Account { Id = 1, Asset = 1, Code = 1 }, new Account { Id = 2, Asset = 1, Code = 1 } });
        await engine.CreateTransfersAsync(new[] { new Transfer { Id = 1, DebitAccountId = 1, CreditAccountId = 2, Amount = 50, Asset = 1, Code = 1, Flags = TransferFlags.Pending, Timeout = 10 } });
        Assert.Equal(50, (await engine.LookupAccountsAsync(new UInt128[] { 1 }))[0].DebitsPending);
        time.Advance(TimeSpan.FromSeconds(11));
        // The sequencer's idle pulse expires the hold without any new batch.
        for (int i = 0; i < 200 && (await engine.LookupAccountsAsync(new UInt128[] { 1 }))[0].DebitsPending != 0; i++) await Task.Delay(10);
        Assert.Equal(0, (await engine.LookupAccountsAsync(new UInt128[] { 1 }))[0].DebitsPending);
        var post = await engine.CreateTransfersAsync(new[] { new Transfer { Id = 2, PendingId = 1, Flags = TransferFlags.PostPendingTransfer } });
        Assert.Equal(CreateTransferResult.PendingTransferExpired, post[0]);
    }

    [Fact]
    public async Task Checkpoint_proofs_verify_and_tampering_is_caught()
    {
        var time = Clock();
        await using var engine = LedgerEngine.Open(new LedgerEngineOptions { DataDirectory = _dir }, time);
        var accounts = Enumerable.Range(1, 37).Select(i => new Account { Id = (ulong)i, Asset = i % 5 == 0 ? 2u : 1u, Code = 1 }).ToArray();
        await engine.CreateAccountsAsync(accounts);
        var rng = new Random(11);
        var transfers = new List<Transfer>();
        for (int i = 1; i <= 500; i++)
        {
            int d = rng.Next(1, 38), c = rng.Next(1, 38);
            if (d == c || (d % 5 == 0) != (c % 5 == 0)) continue;
            transfers.Add(new Transfer { Id = (ulong)i, DebitAccountId = (ulong)d, CreditAccountId = (ulong)c, Amount = rng.Next(1, 10_000), Asset = d % 5 == 0 ? 2u : 1u, Code = 1 });
        }
        Assert.All(await engine.CreateTransfersAsync(transfers.ToArray()), r => Assert.Equal(CreateTransferResult.Ok, r));
        var cp = await engine.CheckpointAsync();
        Assert.Equal(engine.ChainHead.Head, cp.ChainHead);
        Assert.Equal(2, cp.Assets.Count);
        foreach (var a in accounts)
        {
            var proof = cp.ProofFor(a.Id)!;
            var (ok, message) = proof.Verify(cp.Root);
            Assert.True(ok, message);
        }
        var p = cp.ProofFor(3)!;
        Assert.False(p.Verify(new string('0', 64)).Ok);
        Assert.False((p with { CreditsPosted = p.CreditsPosted + 1 }).Verify(cp.Root).Ok);
        Assert.False((p with { Path = p.Path.Select((s, i) => i == 0 ? s with { Credits = "0" } : s).ToArray() }).Verify(cp.Root).Ok);
        Assert.Null(cp.ProofFor(999));
    }

    [Fact]
    public async Task A_write_answered_when_applied_is_seen_at_once_and_is_in_the_log_after_a_clean_stop()
    {
        var time = Clock();
        var accounts = new[]
        {
            new Account { Id = 1, Asset = 1, Code = 1 },
            new Account { Id = 2, Asset = 1, Code = 1, Flags = AccountFlags.DebitsMustNotExceedCredits },
        };
        await using (var engine = LedgerEngine.Open(new LedgerEngineOptions { DataDirectory = _dir }, time))
        {
            await engine.CreateAccountsAsync(accounts);
            var results = await engine.CreateTransfersAsync(new[]
            {
                new Transfer { Id = 10, DebitAccountId = 1, CreditAccountId = 2, Amount = 50, Asset = 1, Code = 1 },
                new Transfer { Id = 11, DebitAccountId = 2, CreditAccountId = 1, Amount = 80, Asset = 1, Code = 1 }, // overdraws: refused
            }, LedgerAck.Applied);
            Assert.Equal([CreateTransferResult.Ok, CreateTransferResult.ExceedsCredits], results);
            // The next operation sees it, in order, whether or not it is on disk yet.
            Account a = (await engine.LookupAccountsAsync([2]))[0];
            Assert.Equal(50, a.CreditsPosted);
            // A pending hold answered when applied still guards the balance for the writes after it.
            var hold = await engine.CreateTransfersAsync(new[] { new Transfer { Id = 12, DebitAccountId = 2, CreditAccountId = 1, Amount = 40, Asset = 1, Code = 1, Flags = TransferFlags.Pending } }, LedgerAck.Applied);
            Assert.Equal(CreateTransferResult.Ok, hold[0]);
            var second = await engine.CreateTransfersAsync(new[] { new Transfer { Id = 13, DebitAccountId = 2, CreditAccountId = 1, Amount = 20, Asset = 1, Code = 1, Flags = TransferFlags.Pending } });
            Assert.Equal(CreateTransferResult.ExceedsCredits, second[0]);
        }
        await using (var reopened = LedgerEngine.Open(new LedgerEngineOptions { DataDirectory = _dir }, time))
        {
            Account a = (await reopened.LookupAccountsAsync([2]))[0];
            Assert.Equal((50L, 40L), (a.CreditsPosted, a.DebitsPending));
        }
    }
}
