using CsCheck;

namespace ComputeGrid.Ledger.Tests;

/// <summary>
/// The fast state machine against the plain reference ledger on random workloads (CsCheck shrinks a
/// failure and prints its seed; pass it to <c>Sample(seed: …)</c> to replay). After every batch: identical
/// results and state, and the invariants hold.
/// </summary>
public class DifferentialTests
{
    private const long Start = 1_700_000_000_000_000_000;

    [Fact]
    public void Fast_state_machine_matches_the_reference_on_random_batches()
    {
        Scenario.Batches.Sample(batches =>
        {
            var fast = new LedgerStateMachine(4, 4);
            var reference = new ReferenceLedger();
            long ts = Start;
            Apply(fast, reference, new GeneratedBatch(true, Scenario.Opening(), [], 1), ref ts);
            foreach (var b in batches) Apply(fast, reference, b, ref ts);
        }, iter: 3000, threads: 1);
    }

    [Fact]
    public void Every_result_code_is_reached_by_the_generator()
    {
        // A differential test is only as strong as the cases it reaches: check the generator exercises
        // the outcomes that matter (not every code is reachable with the small pools, so list the ones that must be).
        var seenT = new HashSet<CreateTransferResult>();
        var seenA = new HashSet<CreateAccountResult>();
        for (uint seed = 1; seed <= 2000; seed++)
        {
            var batches = FixedScenario.Of(20, seed);
            var fast = new LedgerStateMachine();
            long ts = Start;
            var opening = Scenario.Opening();
            fast.CreateAccounts(opening, ts, new CreateAccountResult[opening.Length]);
            foreach (var b in batches)
            {
                ts += b.AdvanceNs + 100;
                if (b.IsAccounts)
                {
                    var r = new CreateAccountResult[b.Accounts.Length];
                    fast.CreateAccounts(b.Accounts, ts, r);
                    seenA.UnionWith(r);
                }
                else
                {
                    var r = new CreateTransferResult[b.Transfers.Length];
                    fast.CreateTransfers(b.Transfers, ts, r);
                    seenT.UnionWith(r);
                }
            }
        }
        CreateTransferResult[] mustSee =
        [
            CreateTransferResult.Ok, CreateTransferResult.LinkedEventFailed, CreateTransferResult.LinkedEventChainOpen,
            CreateTransferResult.Exists, CreateTransferResult.ExistsWithDifferentAmount, CreateTransferResult.DebitAccountNotFound,
            CreateTransferResult.AccountsMustBeDifferent, CreateTransferResult.AmountMustNotBeZero, CreateTransferResult.AmountMustNotBeNegative,
            CreateTransferResult.PendingTransferNotFound, CreateTransferResult.PendingTransferAlreadyPosted, CreateTransferResult.PendingTransferAlreadyVoided,
            CreateTransferResult.PendingTransferExpired, CreateTransferResult.ExceedsPendingTransferAmount, CreateTransferResult.ExceedsCredits,
            CreateTransferResult.ExceedsDebits, CreateTransferResult.OverflowsDebitsPosted, CreateTransferResult.OverflowsCredits,
            CreateTransferResult.TransferMustHaveTheSameAssetAsAccounts, CreateTransferResult.AccountsMustHaveTheSameAsset,
            CreateTransferResult.ReservedFlag, CreateTransferResult.FlagsAreMutuallyExclusive, CreateTransferResult.PendingTransferNotPending,
        ];
        Assert.Empty(mustSee.Except(seenT));
        Assert.Contains(CreateAccountResult.Exists, seenA);
        Assert.Contains(CreateAccountResult.ExistsWithDifferentFlags, seenA);
        Assert.Contains(CreateAccountResult.LinkedEventFailed, seenA);
    }

    internal static void Apply(LedgerStateMachine fast, ReferenceLedger reference, GeneratedBatch b, ref long ts)
    {
        ts += b.AdvanceNs + 100;
        if (b.IsAccounts)
        {
            var r = new CreateAccountResult[b.Accounts.Length];
            fast.CreateAccounts(b.Accounts, ts, r);
            var expected = reference.CreateAccounts(b.Accounts, ts);
            Assert.Equal(expected, r);
        }
        else
        {
            var r = new CreateTransferResult[b.Transfers.Length];
            fast.CreateTransfers(b.Transfers, ts, r);
            var expected = reference.CreateTransfers(b.Transfers, ts);
            Assert.Equal(expected, r);
        }
        AssertSameState(fast, reference);
        fast.AssertInvariants();
    }

    internal static void AssertSameState(LedgerStateMachine fast, ReferenceLedger reference)
    {
        Assert.Equal(reference.LastTimestamp, fast.LastTimestamp);
        var accounts = reference.Accounts.ToArray();
        Assert.Equal(accounts.Length, fast.AccountCount);
        for (int i = 0; i < accounts.Length; i++) Assert.Equal(accounts[i], fast.AccountAt(i));
        var transfers = reference.Transfers.ToArray();
        Assert.Equal(transfers.Length, fast.TransferCount);
        for (int i = 0; i < transfers.Length; i++)
        {
            Assert.Equal(transfers[i].Transfer, fast.TransferAt(i));
            Assert.Equal(transfers[i].Status, fast.StatusAt(i));
        }
    }
}

public class HotPathTests
{
    [Fact]
    public void Applying_batches_in_steady_state_allocates_nothing()
    {
        using var sm = new LedgerStateMachine(64, 200_000);
        var accounts = Enumerable.Range(1, 50).Select(i => new Account { Id = (ulong)i, Asset = 1, Code = 1 }).ToArray();
        sm.CreateAccounts(accounts, 1_000, new CreateAccountResult[accounts.Length]);
        var rng = new Random(5);
        var batches = Enumerable.Range(0, 20).Select(b => Enumerable.Range(0, 8000).Select(i =>
        {
            int d = rng.Next(1, 51), c = rng.Next(1, 50);
            if (c >= d) c++;
            return new Transfer { Id = (ulong)(b * 8000 + i + 1), DebitAccountId = (ulong)d, CreditAccountId = (ulong)c, Amount = rng.Next(1, 100), Asset = 1, Code = 1 };
        }).ToArray()).ToArray();
        var results = new CreateTransferResult[8000];
        long ts = 2_000;
        sm.CreateTransfers(batches[0], ts, results); // warm-up (JIT)
        // Tiered compilation may still settle (and allocate once on this thread) after the warm-up: some batch must
        // allocate nothing at all; an allocation per transfer would show in every batch.
        var perBatch = new List<long>();
        for (int b = 1; b < batches.Length; b++)
        {
            ts += 10_000;
            long before = GC.GetAllocatedBytesForCurrentThread();
            sm.CreateTransfers(batches[b], ts, results);
            perBatch.Add(GC.GetAllocatedBytesForCurrentThread() - before);
            Assert.All(results, r => Assert.Equal(CreateTransferResult.Ok, r));
        }
        Assert.Contains(0L, perBatch);
        Assert.True(perBatch.Count(x => x == 0) >= perBatch.Count / 2, "most batches must allocate nothing: " + string.Join(",", perBatch));
        Assert.Equal(160_000, sm.TransferCount);
    }
}
