using ComputeGrid.Exchange.Instruments;
using ComputeGrid.Exchange.StateMachine;
using ComputeGrid.Exchange.Trading;
using ComputeGrid.Ledger;
using Xunit.Abstractions;

namespace ComputeGrid.Exchange.Tests.StateMachine;

/// <summary>
/// Snapshot + tail == the whole history: on 300 seeded <see cref="DifferentialStream"/>s (every command kind, node shares
/// included: the register, share orders and their holds, share pools, loans against pledged shares open mid-interest with
/// their recent trades), the machine is
/// snapshotted at a random command, restored over an empty registry, and the rest of the stream applied to both the
/// original and the restored machine: the same result, fills and plan (accounts, transfers, spans, awaited transfers)
/// after every command, and at the end the same state hash, the same snapshot bytes, the same loans an hour on, and both
/// machines' invariants. A
/// truncated or damaged snapshot is refused whole, the registry untouched.
/// </summary>
public sealed class SnapshotTests(ITestOutputHelper output)
{
    private static (List<ExchangeCommand> Commands, StateMachineOptions Options) Record(int seed)
    {
        var commands = new List<ExchangeCommand>();
        using var stream = new DifferentialStream(seed) { Recorded = commands };
        stream.Run();
        return (commands, stream.Options);
    }

    private static ExchangeStateMachine Apply(StateMachineOptions options, List<ExchangeCommand> commands, int count)
    {
        var sm = new ExchangeStateMachine(DifferentialStream.Registry(), options);
        var plan = new SettlementPlan();
        var fills = new List<FillRecord>();
        for (int i = 0; i < count; i++)
        {
            plan.Clear();
            sm.Apply(commands[i], plan, fills);
        }
        return sm;
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(2)]
    public void A_restored_machine_goes_on_exactly_as_the_original_on_random_streams(int chunk)
    {
        const int Streams = 100;
        long tailCommands = 0, stateBytes = 0;
        int withOrders = 0, withLeases = 0, withPending = 0, withShares = 0, withShareOrders = 0, withLoans = 0;
        for (int seed = 10_000 + chunk * Streams; seed < 10_000 + (chunk + 1) * Streams; seed++)
        {
            (List<ExchangeCommand> commands, StateMachineOptions options) = Record(seed);
            var rng = new Random(seed);
            int at = rng.Next(0, commands.Count + 1);
            ExchangeStateMachine original = Apply(options, commands, at);
            byte[] snapshot = original.WriteSnapshot();
            stateBytes += snapshot.Length;
            if (original.OpenOrders().Count > 0) withOrders++;
            if (original.Leases().Count > 0) withLeases++;
            if (original.PendingDeposits.Count > 0) withPending++;
            if (original.ShareNodes.Count > 0) withShares++;
            if (original.OpenOrders().Any(o => original.Instruments.Get(o.Instrument).Class == InstrumentClass.NodeShares)) withShareOrders++;
            // Open loans mid-interest: opened before the snapshot and accruing (their fraction of a micro-USD carried in it).
            if (options.Pledges.InterestBpPerYear > 0 && original.Loans(null, original.LastTime).Any(l => l.Status is LoanStatus.Open or LoanStatus.MarginCall && l.OpenedAt < original.LastTime))
                withLoans++;
            ExchangeStateMachine restored = ExchangeStateMachine.ReadSnapshot(snapshot, DifferentialStream.Registry(), options);
            Assert.True(original.StateHash().AsSpan().SequenceEqual(restored.StateHash()), $"seed {seed}: the restored state hash differs at {at}");
            Assert.Equal(snapshot, restored.WriteSnapshot());
            var (planA, planB) = (new SettlementPlan(), new SettlementPlan());
            var (fillsA, fillsB) = (new List<FillRecord>(), new List<FillRecord>());
            for (int i = at; i < commands.Count; i++)
            {
                planA.Clear(); planB.Clear(); fillsA.Clear(); fillsB.Clear();
                ExchangeCommand c = commands[i];
                CommandResult a = original.Apply(in c, planA, fillsA);
                CommandResult b = restored.Apply(in c, planB, fillsB);
                string where = $"seed {seed}, snapshot after {at}, command {i} ({c.Kind})";
                Assert.True(a.Equals(b), $"{where}: results differ");
                Assert.True(fillsA.SequenceEqual(fillsB), $"{where}: fills differ");
                Assert.True(planA.Accounts.SequenceEqual(planB.Accounts), $"{where}: accounts differ");
                Assert.True(planA.Transfers.SequenceEqual(planB.Transfers), $"{where}: transfers differ");
                Assert.True(planA.Commands.SequenceEqual(planB.Commands), $"{where}: command spans differ");
                Assert.True(planA.Awaiting.SequenceEqual(planB.Awaiting), $"{where}: awaited transfers differ");
                tailCommands++;
            }
            Assert.True(original.StateHash().AsSpan().SequenceEqual(restored.StateHash()), $"seed {seed}: the state hashes differ at the end");
            Assert.Equal(original.WriteSnapshot(), restored.WriteSnapshot());
            long later = original.LastTime + 3_600_000_000_000L; // interest accrued alike an hour on
            Assert.Equal(original.Loans(null, later), restored.Loans(null, later));
            original.CheckInvariants();
            restored.CheckInvariants();
        }
        output.WriteLine($"{Streams} streams, {tailCommands} commands after the snapshots, {stateBytes / Streams} snapshot bytes on average; "
            + $"{withOrders} snapshots with open orders, {withLeases} with leases, {withPending} with pending deposits, {withShares} with issued shares, "
            + $"{withShareOrders} with open share orders, {withLoans} with open loans accruing interest");
        // The snapshots must have caught state worth restoring, or the comparison proves little.
        Assert.True(withOrders > Streams / 4 && withLeases > Streams / 4 && withPending > 0 && withShares > Streams / 4 && withShareOrders > Streams / 20
                && withLoans > Streams / 20,
            $"{withOrders} / {withLeases} / {withPending} / {withShares} / {withShareOrders} / {withLoans}");
    }

    /// <summary>The awaited transfer of a pending deposit survives the snapshot (a restart submits it again from there).</summary>
    [Fact]
    public void A_pending_deposit_keeps_its_transfer_across_a_snapshot()
    {
        for (int seed = 20_000; seed < 20_100; seed++)
        {
            (List<ExchangeCommand> commands, StateMachineOptions options) = Record(seed);
            var sm = new ExchangeStateMachine(DifferentialStream.Registry(), options);
            var plan = new SettlementPlan();
            var fills = new List<FillRecord>();
            var awaited = new Dictionary<long, Transfer>();
            foreach (ExchangeCommand c in commands)
            {
                plan.Clear();
                sm.Apply(in c, plan, fills);
                foreach ((int index, ulong seq) in plan.Awaiting) awaited[(long)seq] = plan.Transfers[index];
                if (sm.PendingDeposits.Count == 0) continue;
                ExchangeStateMachine restored = ExchangeStateMachine.ReadSnapshot(sm.WriteSnapshot(), DifferentialStream.Registry(), options);
                foreach (long seq in sm.PendingDeposits)
                {
                    Assert.True(restored.TryGetAwaitedTransfer(seq, out Transfer t));
                    Assert.Equal(awaited[seq], t);
                }
                return;
            }
        }
        Assert.Fail("No stream left a deposit pending.");
    }

    [Fact]
    public void A_truncated_or_damaged_snapshot_is_refused_and_restores_nothing()
    {
        (List<ExchangeCommand> commands, StateMachineOptions options) = Record(10_007);
        ExchangeStateMachine original = Apply(options, commands, commands.Count * 2 / 3);
        Assert.NotEmpty(original.Instruments.Active);
        byte[] snapshot = original.WriteSnapshot();
        var rng = new Random(7);
        List<byte[]> cases =
        [
            [],
            snapshot[..8],
            snapshot[..^1],
            snapshot[..(snapshot.Length / 2)],
            [.. snapshot, 0],
        ];
        for (int k = 0; k < 64; k++)
        {
            byte[] flipped = (byte[])snapshot.Clone();
            flipped[rng.Next(flipped.Length)] ^= (byte)(1 << rng.Next(8));
            cases.Add(flipped);
        }
        foreach (byte[] bad in cases)
        {
            InstrumentRegistry registry = DifferentialStream.Registry();
            Assert.Throws<SnapshotInvalidException>(() => ExchangeStateMachine.ReadSnapshot(bad, registry, options));
            Assert.Equal(0, registry.Count);
            Assert.Null(registry.Now);
        }
        // Other settings: refused too (a snapshot stands for a journal, which replays only under its own).
        Assert.Throws<SnapshotInvalidException>(() => ExchangeStateMachine.ReadSnapshot(snapshot, DifferentialStream.Registry(), options with { Epoch = options.Epoch + 1 }));
        // A registry already in use is not overwritten.
        InstrumentRegistry used = DifferentialStream.Registry();
        used.Advance(original.LastTime);
        Assert.Throws<InvalidOperationException>(() => ExchangeStateMachine.ReadSnapshot(snapshot, used, options));
        // And the good one restores.
        Assert.Equal(original.StateHash(), ExchangeStateMachine.ReadSnapshot(snapshot, DifferentialStream.Registry(), options).StateHash());
    }

    /// <summary>
    /// A body that passes the checksum but does not fit together (as a bug in the writer would make) is refused by the
    /// checks of its parts and the invariants: a snapshot re-sealed after an order's remaining quantity is changed.
    /// </summary>
    [Fact]
    public void A_sealed_but_inconsistent_snapshot_is_refused()
    {
        for (int seed = 10_000; seed < 10_050; seed++)
        {
            (List<ExchangeCommand> commands, StateMachineOptions options) = Record(seed);
            ExchangeStateMachine original = Apply(options, commands, commands.Count / 2);
            if (original.OpenOrders().Count == 0) continue;
            byte[] snapshot = original.WriteSnapshot();
            OpenOrder o = original.OpenOrders()[0];
            // The order's record: id, owner, instrument (int), side (byte), limit, remaining — find it by id and owner.
            byte[] key = [.. BitConverter.GetBytes(o.OrderId), .. BitConverter.GetBytes(o.Owner), .. BitConverter.GetBytes(o.Instrument)];
            int at = snapshot.AsSpan().IndexOf(key);
            Assert.True(at > 0);
            int remainingAt = at + key.Length + 1 + 8;
            Assert.Equal(o.Remaining, BitConverter.ToInt64(snapshot, remainingAt));
            BitConverter.GetBytes(o.Remaining + o.Remaining).CopyTo(snapshot, remainingAt);
            System.Security.Cryptography.SHA256.HashData(snapshot.AsSpan(0, snapshot.Length - 32)).CopyTo(snapshot, snapshot.Length - 32);
            InstrumentRegistry registry = DifferentialStream.Registry();
            Assert.Throws<SnapshotInvalidException>(() => ExchangeStateMachine.ReadSnapshot(snapshot, registry, options));
            Assert.Equal(0, registry.Count);
            return;
        }
        Assert.Fail("No stream had open orders half-way.");
    }
}
