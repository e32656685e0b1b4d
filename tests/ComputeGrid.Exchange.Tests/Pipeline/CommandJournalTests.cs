using System.Diagnostics;
using ComputeGrid.Exchange.Pipeline;
using Xunit.Abstractions;

namespace ComputeGrid.Exchange.Tests.Pipeline;

public sealed class CommandJournalTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("cg-journal-").FullName;
    private string JournalPath => Path.Combine(_dir, "exchange.journal");

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>A batch as read back (copied out of the scan's buffer).</summary>
    private sealed record Got(ulong FirstSeq, long TimestampNs, byte[][] Commands);

    private static byte[][] RandomBatch(Random rng, int count, int maxBytes)
    {
        var batch = new byte[count][];
        for (int i = 0; i < count; i++)
        {
            batch[i] = new byte[rng.Next(maxBytes + 1)];
            rng.NextBytes(batch[i]);
        }
        return batch;
    }

    private static ulong Append(CommandJournal journal, long ts, byte[][] commands) =>
        journal.Append(ts, commands.Select(c => (ReadOnlyMemory<byte>)c).ToArray());

    private static (CommandJournal Journal, List<Got> Batches) OpenAll(string path, JournalOptions? options = null, JournalPosition? from = null)
    {
        var got = new List<Got>();
        var journal = CommandJournal.Open(path, b => got.Add(new Got(b.FirstSeq, b.TimestampNs, b.Commands.Select(c => c.ToArray()).ToArray())), options, from);
        return (journal, got);
    }

    private static void AssertSame(Got expected, Got actual)
    {
        Assert.Equal(expected.FirstSeq, actual.FirstSeq);
        Assert.Equal(expected.TimestampNs, actual.TimestampNs);
        Assert.Equal(expected.Commands.Length, actual.Commands.Length);
        for (int i = 0; i < expected.Commands.Length; i++) Assert.True(expected.Commands[i].AsSpan().SequenceEqual(actual.Commands[i]), $"command {i} of seq {expected.FirstSeq}");
    }

    private static void AssertSame(IReadOnlyList<Got> expected, IReadOnlyList<Got> actual)
    {
        Assert.Equal(expected.Count, actual.Count);
        for (int i = 0; i < expected.Count; i++) AssertSame(expected[i], actual[i]);
    }

    /// <summary>Writes <paramref name="batches"/> random batches; returns them and the position after each.</summary>
    private (List<Got> Batches, List<JournalPosition> After) Build(int seed, int batches, int commandsMax = 12, int bytesMax = 40)
    {
        var rng = new Random(seed);
        var written = new List<Got>();
        var after = new List<JournalPosition>();
        using var journal = CommandJournal.Open(JournalPath, _ => { });
        for (int i = 0; i < batches; i++)
        {
            var cmds = RandomBatch(rng, rng.Next(1, commandsMax + 1), bytesMax);
            long ts = 1_000 + i;
            ulong first = Append(journal, ts, cmds);
            written.Add(new Got(first, ts, cmds));
            after.Add(journal.Position);
        }
        return (written, after);
    }

    [Fact]
    public void Batches_of_every_size_come_back_identical_with_their_seqs_and_NextSeq_continues_after_reopen()
    {
        var rng = new Random(14);
        byte[][][] batches =
        [
            [[]],
            [[], [7], RandomBatch(rng, 1, 5)[0]],
            RandomBatch(rng, 100, 200),
            [new byte[1 << 20]],
            Enumerable.Range(0, 4096).Select(_ => RandomBatch(rng, 1, 64)[0]).ToArray(),
            RandomBatch(rng, 7, 3),
        ];
        rng.NextBytes(batches[3][0]);
        var written = new List<Got>();
        JournalPosition end;
        using (var journal = CommandJournal.Open(JournalPath, _ => Assert.Fail("a new journal has no batches")))
        {
            ulong expectedSeq = 1;
            for (int i = 0; i < batches.Length; i++)
            {
                Assert.Equal(expectedSeq, journal.NextSeq);
                ulong first = Append(journal, 10 * i, batches[i]);
                Assert.Equal(expectedSeq, first);
                expectedSeq += (ulong)batches[i].Length;
                written.Add(new Got(first, 10 * i, batches[i]));
            }
            Assert.Equal(expectedSeq, journal.NextSeq);
            end = journal.Position;
        }

        var (reopened, got) = OpenAll(JournalPath);
        using (reopened)
        {
            AssertSame(written, got);
            Assert.Equal(0, reopened.TruncatedBytes);
            Assert.Equal(batches.Length, reopened.RecoveredBatches);
            Assert.Equal(end, reopened.Position);
            Assert.Equal(end.NextSeq, reopened.NextSeq);
            var more = RandomBatch(rng, 3, 9);
            Assert.Equal(end.NextSeq, Append(reopened, 99, more));
            written.Add(new Got(end.NextSeq, 99, more));
        }
        var (third, again) = OpenAll(JournalPath);
        using (third) AssertSame(written, again);
    }

    [Fact]
    public void Staged_commands_are_written_in_place_and_a_record_over_the_limit_is_refused_before_anything_is_written()
    {
        var options = new JournalOptions { RecordBytesMax = 256 };
        using (var journal = CommandJournal.Open(JournalPath, _ => { }, options))
        {
            "abc"u8.CopyTo(journal.Stage(3));
            journal.Stage("de"u8);
            Assert.Equal(2, journal.StagedCount);
            Assert.Equal(64 + 4 + 3 + 4 + 2, journal.StagedBytes);
            Assert.Throws<ArgumentOutOfRangeException>(() => journal.Stage(200));
            Assert.Equal(2, journal.StagedCount); // the refused command left the staged ones alone
            Assert.Throws<InvalidOperationException>(() => journal.Append(1, new ReadOnlyMemory<byte>[] { new byte[1] }));
            Assert.Equal(1ul, journal.Commit(5));
            Assert.Equal(3ul, journal.NextSeq);
            Assert.Throws<InvalidOperationException>(() => journal.Commit(6));
            long length = new FileInfo(JournalPath).Length;
            Assert.Throws<ArgumentException>(() => journal.Append(7, new ReadOnlyMemory<byte>[] { new byte[100], new byte[100] }));
            Assert.Throws<ArgumentException>(() => journal.Append(7, ReadOnlySpan<ReadOnlyMemory<byte>>.Empty));
            Assert.Equal(length, new FileInfo(JournalPath).Length);
            Assert.Equal(0, journal.StagedCount);
            Assert.False(journal.Faulted);
        }
        var (reopened, got) = OpenAll(JournalPath);
        using (reopened) AssertSame([new Got(1, 5, ["abc"u8.ToArray(), "de"u8.ToArray()])], got);
    }

    [Fact]
    public void A_cut_at_every_byte_inside_the_last_record_drops_exactly_that_batch_and_the_chain_continues()
    {
        var (written, after) = Build(seed: 1, batches: 5);
        byte[] whole = File.ReadAllBytes(JournalPath);
        long lastStart = after[^2].Offset;
        Assert.Equal(whole.Length, after[^1].Offset);
        var rng = new Random(2);
        for (long cut = lastStart; cut < whole.Length; cut++)
        {
            File.WriteAllBytes(JournalPath, whole.AsSpan(0, (int)cut).ToArray());
            var (journal, got) = OpenAll(JournalPath);
            using (journal)
            {
                AssertSame(written.Take(written.Count - 1).ToList(), got);
                Assert.Equal(cut - lastStart, journal.TruncatedBytes);
                Assert.Equal(cut > lastStart, journal.TornTailReason is not null);
                Assert.Equal(after[^2], journal.Position);
                Assert.Equal(written[^1].FirstSeq, journal.NextSeq);
                Assert.Equal(lastStart, new FileInfo(JournalPath).Length);
                if (rng.Next(8) != 0) continue;
                // The next append continues the chain where the torn record was: a reopen checks every hash.
                var cmds = RandomBatch(rng, 3, 10);
                Assert.Equal(written[^1].FirstSeq, Append(journal, 77, cmds));
            }
            var (again, all) = OpenAll(JournalPath);
            using (again)
            {
                Assert.Equal(0, again.TruncatedBytes);
                Assert.Equal(written.Count, all.Count);
                AssertSame(written.Take(written.Count - 1).ToList(), all.Take(written.Count - 1).ToList());
                Assert.Equal(77, all[^1].TimestampNs);
            }
        }
    }

    [Fact]
    public void A_byte_flipped_in_any_record_but_the_last_refuses_to_open_naming_the_records_offset_and_touches_nothing()
    {
        var (_, after) = Build(seed: 3, batches: 8);
        byte[] whole = File.ReadAllBytes(JournalPath);
        long[] starts = [0, .. after.Select(p => p.Offset)];
        long lastStart = starts[^2];
        var rng = new Random(4);
        for (int trial = 0; trial < 300; trial++)
        {
            int at = trial < 64 ? trial : rng.Next((int)lastStart); // every header byte of the first record, then anywhere
            byte[] damaged = (byte[])whole.Clone();
            damaged[at] ^= (byte)rng.Next(1, 256);
            File.WriteAllBytes(JournalPath, damaged);
            long recordStart = starts.Last(s => s <= at);
            var e = Assert.Throws<JournalCorruptException>(() => CommandJournal.Open(JournalPath, _ => { }).Dispose());
            Assert.Equal(recordStart, e.Offset);
            Assert.Equal(JournalPath, e.File);
            Assert.DoesNotContain('\n', e.Message);
            Assert.Contains($"{JournalPath} at byte {recordStart}: ", e.Message);
            Assert.Contains("not a torn tail", e.Message);
            Assert.True(File.ReadAllBytes(JournalPath).AsSpan().SequenceEqual(damaged), $"the file changed (byte {at} flipped)");
        }
    }

    [Fact]
    public void Garbage_after_the_last_record_that_is_no_plausible_record_is_a_torn_tail()
    {
        var (written, after) = Build(seed: 5, batches: 4);
        byte[] whole = File.ReadAllBytes(JournalPath);
        var rng = new Random(6);
        byte[] noise = new byte[1000];
        rng.NextBytes(noise);
        byte[] magicThenJunk = [0x43, 0x47, 0x4A, 0x52, .. noise.AsSpan(0, 100)]; // "CGJR" with a header that does not check
        byte[] implausibleSeq = File.ReadAllBytes(JournalPath).AsSpan((int)after[0].Offset, (int)(after[1].Offset - after[0].Offset)).ToArray(); // an old record: its seq is behind
        foreach (byte[] tail in new[] { noise, new byte[4096], magicThenJunk, implausibleSeq, new byte[] { 0x43 } })
        {
            File.WriteAllBytes(JournalPath, [.. whole, .. tail]);
            var (journal, got) = OpenAll(JournalPath);
            using (journal)
            {
                AssertSame(written, got);
                Assert.Equal(tail.Length, journal.TruncatedBytes);
                Assert.Equal(whole.Length, new FileInfo(JournalPath).Length);
            }
        }
    }

    [Fact]
    public void A_complete_plausible_record_after_a_bad_one_is_corruption_not_a_torn_tail()
    {
        // A fourth record appended, then garbage put between the third and it: a bad record with a good one after.
        var (_, after) = Build(seed: 7, batches: 3);
        byte[] three = File.ReadAllBytes(JournalPath);
        using (var j = CommandJournal.Open(JournalPath, _ => { })) Append(j, 5_000, RandomBatch(new Random(7), 4, 16));
        byte[] fourth = File.ReadAllBytes(JournalPath)[three.Length..];
        byte[] garbage = new byte[100];
        new Random(8).NextBytes(garbage);
        byte[] damaged = [.. three, .. garbage, .. fourth];
        File.WriteAllBytes(JournalPath, damaged);

        var e = Assert.Throws<JournalCorruptException>(() => CommandJournal.Open(JournalPath, _ => { }).Dispose());
        Assert.Equal(after[^1].Offset, e.Offset);
        Assert.Contains($"follows at byte {three.Length + garbage.Length}", e.Reason);
        Assert.True(File.ReadAllBytes(JournalPath).AsSpan().SequenceEqual(damaged));
    }

    [Theory]
    [InlineData(JournalFaultPoint.Write)]
    [InlineData(JournalFaultPoint.TornWrite)]
    [InlineData(JournalFaultPoint.Flush)]
    public void After_a_write_or_fsync_error_every_append_throws_without_writing_and_a_reopen_recovers_every_acknowledged_batch(JournalFaultPoint point)
    {
        var rng = new Random(9);
        var acknowledged = new List<Got>();
        byte[][] failed = RandomBatch(rng, 6, 30);
        long before, recordBytes = 64 + failed.Sum(c => 4 + c.Length);
        using (var journal = CommandJournal.Open(JournalPath, _ => { }, new JournalOptions { InjectFault = JournalFaults.AfterAppends(point, 2) }))
        {
            for (int i = 0; i < 2; i++)
            {
                var cmds = RandomBatch(rng, 5, 30);
                acknowledged.Add(new Got(Append(journal, i, cmds), i, cmds));
            }
            before = new FileInfo(JournalPath).Length;
            var e = Assert.Throws<JournalFaultedException>(() => Append(journal, 2, failed));
            Assert.IsType<IOException>(e.InnerException);
            Assert.True(journal.Faulted);
            long afterFault = new FileInfo(JournalPath).Length;
            Assert.Equal(point switch { JournalFaultPoint.Write => before, JournalFaultPoint.TornWrite => before + recordBytes / 2, _ => before + recordBytes }, afterFault);
            Assert.Equal(acknowledged[^1].FirstSeq + 5, journal.NextSeq); // the failed batch took no seqs

            // Fail-stop: nothing more reaches the file, whatever the hook would say now.
            Assert.Throws<JournalFaultedException>(() => Append(journal, 3, RandomBatch(rng, 2, 5)));
            Assert.Throws<JournalFaultedException>(() => journal.Stage(1));
            Assert.Throws<JournalFaultedException>(() => journal.Commit(4));
            Assert.Equal(afterFault, new FileInfo(JournalPath).Length);
            Assert.Equal(2, journal.Flushes);
        }

        var (reopened, got) = OpenAll(JournalPath);
        using (reopened)
        {
            AssertSame(acknowledged, got.Take(2).ToList());
            switch (point)
            {
                case JournalFaultPoint.Write:
                    Assert.Equal(2, got.Count);
                    Assert.Equal(0, reopened.TruncatedBytes);
                    break;
                case JournalFaultPoint.TornWrite:
                    Assert.Equal(2, got.Count);
                    Assert.Equal(recordBytes / 2, reopened.TruncatedBytes);
                    break;
                default:
                    // The write reached the page cache before the fsync failed: the unacknowledged batch may be there, whole.
                    Assert.InRange(got.Count, 2, 3);
                    if (got.Count == 3) AssertSame(new Got(acknowledged[^1].FirstSeq + 5, 2, failed), got[2]);
                    break;
            }
            Assert.Equal(got[^1].FirstSeq + (ulong)got[^1].Commands.Length, Append(reopened, 9, [[1, 2, 3]]));
        }
    }

    [Fact]
    public void Every_append_is_one_fsync_whatever_its_command_count()
    {
        int flushAsks = 0;
        var options = new JournalOptions { InjectFault = p => { if (p == JournalFaultPoint.Flush) flushAsks++; return false; } };
        using var journal = CommandJournal.Open(JournalPath, _ => { }, options);
        var rng = new Random(10);
        int appends = 0;
        foreach (int count in new[] { 1, 100, 4096, 2, 1000 })
        {
            Append(journal, appends, RandomBatch(rng, count, 64));
            appends++;
            Assert.Equal(appends, journal.Flushes);
            Assert.Equal(appends, flushAsks);
        }
        Assert.Equal(1ul + 1 + 100 + 4096 + 2 + 1000, journal.NextSeq);
    }

    [Fact]
    public void Steady_state_appends_allocate_nothing()
    {
        using var journal = CommandJournal.Open(JournalPath, _ => { });
        var commands = Enumerable.Range(0, 64).Select(i => (ReadOnlyMemory<byte>)new byte[64]).ToArray();
        for (int i = 0; i < 10; i++) journal.Append(i, commands);
        long allocated = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 50; i++) journal.Append(i, commands);
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - allocated);
    }

    [Fact]
    public void A_second_open_of_the_same_journal_is_refused_while_the_first_holds_it()
    {
        using var journal = CommandJournal.Open(JournalPath, _ => { });
        Assert.ThrowsAny<IOException>(() => CommandJournal.Open(JournalPath, _ => { }).Dispose());
    }

    [Fact]
    public void Snapshots_keep_the_newest_two_and_the_latest_is_the_highest_seq()
    {
        string folder = Path.Combine(_dir, "snapshots");
        Assert.Null(SnapshotStore.Latest(folder));
        var (_, after) = Build(seed: 11, batches: 4);
        for (int i = 0; i < 4; i++) SnapshotStore.Write(folder, after[i].LastSeq, after[i], [(byte)i, 1, 2, 3]);
        var latest = SnapshotStore.Latest(folder)!;
        Assert.Equal(after[3].LastSeq, latest.LastSeq);
        Assert.Equal(after[3], latest.Position);
        Assert.Equal(new byte[] { 3, 1, 2, 3 }, latest.State);
        Assert.Equal(
            new[] { SnapshotStore.FileName(after[2].LastSeq), SnapshotStore.FileName(after[3].LastSeq) },
            Directory.GetFiles(folder).Select(f => Path.GetFileName(f)!).Order().ToArray());
        Assert.Throws<ArgumentException>(() => SnapshotStore.Write(folder, after[3].LastSeq + 1, after[3], []));
    }

    [Fact]
    public void Resuming_from_a_snapshots_position_reads_exactly_the_tail_of_a_full_scan()
    {
        string folder = Path.Combine(_dir, "snapshots");
        var (written, after) = Build(seed: 12, batches: 9);
        SnapshotStore.Write(folder, after[4].LastSeq, after[4], "state at 5"u8);
        var snap = SnapshotStore.Latest(folder)!;

        var (full, all) = OpenAll(JournalPath);
        JournalPosition fullEnd = full.Position;
        full.Dispose();
        var (resumed, tail) = OpenAll(JournalPath, from: snap.Position);
        using (resumed)
        {
            AssertSame(written, all);
            AssertSame(all.Skip(5).ToList(), tail);
            Assert.Equal(fullEnd, resumed.Position);
            Assert.Equal(fullEnd.NextSeq, resumed.NextSeq);
            Assert.Equal(4, resumed.RecoveredBatches);
        }
    }

    [Fact]
    public void A_damaged_latest_snapshot_is_refused_in_one_line_not_replaced_by_an_older_one()
    {
        string folder = Path.Combine(_dir, "snapshots");
        var (_, after) = Build(seed: 13, batches: 3);
        SnapshotStore.Write(folder, after[0].LastSeq, after[0], new byte[100]);
        string newest = SnapshotStore.Write(folder, after[1].LastSeq, after[1], new byte[100]);
        byte[] good = File.ReadAllBytes(newest);
        foreach (int at in new[] { 0, 9, 20, 40, 60, 100, 127, 128, 200 })
        {
            byte[] bad = (byte[])good.Clone();
            bad[at] ^= 0x10;
            File.WriteAllBytes(newest, bad);
            var e = Assert.Throws<JournalCorruptException>(() => SnapshotStore.Latest(folder));
            Assert.Equal(newest, e.File);
            Assert.DoesNotContain('\n', e.Message);
            Assert.StartsWith($"journal corrupt: {newest} at byte ", e.Message);
        }
        File.WriteAllBytes(newest, good[..150]);
        Assert.Throws<JournalCorruptException>(() => SnapshotStore.Latest(folder));
        File.WriteAllBytes(newest, good);
        Assert.Equal(after[1].LastSeq, SnapshotStore.Latest(folder)!.LastSeq);
    }

    [Fact]
    public void A_snapshot_position_the_journal_does_not_reach_or_does_not_chain_to_refuses_to_open()
    {
        var (_, after) = Build(seed: 15, batches: 4);
        byte[] whole = File.ReadAllBytes(JournalPath);

        // The journal ends before the position (a snapshot of a journal that lost records).
        File.WriteAllBytes(JournalPath, whole[..(int)after[1].Offset]);
        var e = Assert.Throws<JournalCorruptException>(() => CommandJournal.Open(JournalPath, _ => { }, from: after[2]).Dispose());
        Assert.Equal(after[1].Offset, e.Offset);

        // Another journal's chain hash at the same place.
        File.WriteAllBytes(JournalPath, whole);
        var foreign = after[2] with { Hash = new byte[32] };
        e = Assert.Throws<JournalCorruptException>(() => CommandJournal.Open(JournalPath, _ => { }, from: foreign).Dispose());
        Assert.Contains("chain break", e.Reason);

        // A damaged record before the position is found although the scan resumes after it.
        byte[] damaged = (byte[])whole.Clone();
        damaged[after[0].Offset + 70] ^= 1;
        File.WriteAllBytes(JournalPath, damaged);
        e = Assert.Throws<JournalCorruptException>(() => CommandJournal.Open(JournalPath, _ => { }, from: after[2]).Dispose());
        Assert.Equal(after[0].Offset, e.Offset);
        Assert.True(File.ReadAllBytes(JournalPath).AsSpan().SequenceEqual(damaged));

        // No journal at all, and a snapshot that says there was one: refused, and no empty journal is created.
        File.Delete(JournalPath);
        e = Assert.Throws<JournalCorruptException>(() => CommandJournal.Open(JournalPath, _ => { }, from: after[2]).Dispose());
        Assert.False(File.Exists(JournalPath));
    }

    [Fact]
    public void The_environment_fault_names_map_to_fault_points_after_N_appends()
    {
        Assert.Null(JournalFaults.Parse(null, null));
        Assert.Null(JournalFaults.Parse("", "3"));
        Assert.Null(JournalFaults.Parse("kill-after-answer", null)); // another component's fault
        Assert.Throws<ArgumentException>(() => JournalFaults.Parse("journal-typo", null));
        Assert.Throws<ArgumentException>(() => JournalFaults.Parse("journal-write-error", "-1"));
        var hook = JournalFaults.Parse("journal-fsync-error", "2")!;
        Assert.Equal(new[] { false, false, false, true, true }, new[] { hook(JournalFaultPoint.Write), hook(JournalFaultPoint.Flush), hook(JournalFaultPoint.Flush), hook(JournalFaultPoint.Flush), hook(JournalFaultPoint.Flush) });
        var write = JournalFaults.Parse("journal-write-error", null)!;
        Assert.True(write(JournalFaultPoint.Write));
        Assert.False(JournalFaults.Parse("journal-torn-write", null)!(JournalFaultPoint.Write));
    }

    [Fact]
    public void The_limits_agree_with_each_other()
    {
        Assert.Equal(64, JournalLimits.RecordHeaderBytes);
        Assert.InRange(JournalLimits.RecordBytesMaxDefault, JournalLimits.RecordHeaderBytes + JournalLimits.CommandPrefixBytes, JournalLimits.RecordBytesFormatMax);
        Assert.Equal(JournalLimits.RecordBytesMaxDefault, new JournalOptions().RecordBytesMax);
        // A default-size record of the smallest commands still fits the u32 count and body fields with room to spare.
        Assert.True((long)JournalLimits.RecordBytesFormatMax / JournalLimits.CommandPrefixBytes < uint.MaxValue);
        Assert.Equal(SnapshotStore.HeaderBytes, 96 + JournalLimits.HashBytes);
        Assert.Throws<ArgumentOutOfRangeException>(() => CommandJournal.Open(JournalPath, _ => { }, new JournalOptions { RecordBytesMax = 10 }));
    }

    [Fact]
    public void Append_throughput_with_fsync_is_printed_for_batches_of_1_100_and_4096_commands_of_64_bytes()
    {
        foreach (int size in new[] { 1, 100, 4096 })
        {
            string path = Path.Combine(_dir, $"bench-{size}.journal");
            using var journal = CommandJournal.Open(path, _ => { });
            var commands = Enumerable.Range(0, size).Select(_ => (ReadOnlyMemory<byte>)new byte[64]).ToArray();
            journal.Append(0, commands); // warm-up
            var sw = Stopwatch.StartNew();
            long appends = 0;
            while (sw.ElapsedMilliseconds < 400) journal.Append(++appends, commands);
            double seconds = sw.Elapsed.TotalSeconds;
            output.WriteLine($"batch {size,5} × 64 B: {appends / seconds,8:N0} appends/s (fsyncs/s), {appends * size / seconds,12:N0} commands/s, {appends * (64.0 + size * 68) / seconds / 1e6,7:N1} MB/s");
            Assert.Equal(appends + 1, journal.Flushes);
        }
    }
}
