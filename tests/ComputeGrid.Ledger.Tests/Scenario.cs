using CsCheck;

namespace ComputeGrid.Ledger.Tests;

/// <summary>One generated batch: accounts or transfers, and how far the clock moves before it.</summary>
public sealed record GeneratedBatch(bool IsAccounts, Account[] Accounts, Transfer[] Transfers, long AdvanceNs)
{
    public override string ToString() => IsAccounts ? $"accounts[{Accounts.Length}] +{AdvanceNs}ns" : $"transfers[{Transfers.Length}] +{AdvanceNs}ns";
}

/// <summary>
/// Generators of random ledger workloads, valid and invalid, drawn from small id pools so that
/// collisions (idempotent retries, posts of voided holds, chains that fail midway) are frequent.
/// Each event is decoded from an array of small ints so CsCheck can shrink a failure to a small case.
/// </summary>
public static class Scenario
{
    public const int AccountPool = 7;     // ids 1..7; 6 and 7 are BTC
    public const int TransferPool = 28;

    private static readonly long[] SpecialAmounts = [0, -1, long.MaxValue, long.MaxValue - 1, 1L << 62, -long.MaxValue];

    public static Account DecodeAccount(int[] v)
    {
        var a = new Account
        {
            Id = (ulong)(1 + v[0] % AccountPool),
            Asset = (uint)(1 + v[0] % AccountPool) >= 6 ? 2u : 1u,
            Code = (ushort)(1 + v[2] % 2),
            Flags = (v[1] % 3) switch { 1 => AccountFlags.DebitsMustNotExceedCredits, 2 => AccountFlags.CreditsMustNotExceedDebits, _ => AccountFlags.None },
            UserData64 = (ulong)(v[3] % 2),
        };
        if (v[4] % 4 == 0) a.Flags |= AccountFlags.Linked;
        switch (v[5] % 60)
        {
            case 1: a.Id = 0; break;
            case 2: a.Id = UInt128.MaxValue; break;
            case 3: a.Asset = 0; break;
            case 4: a.Code = 0; break;
            case 5: a.Timestamp = 5; break;
            case 6: a.CreditsPosted = 10; break;
            case 7: a.Flags |= AccountFlags.DebitsMustNotExceedCredits | AccountFlags.CreditsMustNotExceedDebits; break;
            case 8: a.Flags |= (AccountFlags)0x80; break;
            case 9: a.Reserved = 1; break;
        }
        return a;
    }

    public static Transfer DecodeTransfer(int[] v)
    {
        var t = new Transfer
        {
            Id = (ulong)(1 + v[0] % TransferPool),
            DebitAccountId = (ulong)(v[1] % (AccountPool + 2)), // 0 = missing, 8 = unknown
            CreditAccountId = (ulong)(v[2] % (AccountPool + 2)),
            Amount = v[3] < 60 ? SpecialAmounts[v[3] % SpecialAmounts.Length] : 1 + v[3] % 300,
            Asset = v[8] % 12 == 0 ? 2u : v[8] % 53 == 1 ? 0u : 1u,
            Code = (ushort)(v[9] % 41 == 0 ? 0 : 1),
        };
        switch (v[4] % 10)
        {
            case 5: case 6:
                t.Flags = TransferFlags.Pending;
                t.Timeout = (uint)(v[7] % 3);
                break;
            case 7: case 8:
                t.Flags = TransferFlags.PostPendingTransfer;
                t.PendingId = (ulong)(1 + v[6] % TransferPool);
                if (v[3] % 2 == 0) t.Amount = 0; // "the whole pending amount"
                if (v[1] % 2 == 0) { t.DebitAccountId = 0; t.CreditAccountId = 0; t.Asset = 0; t.Code = 0; }
                break;
            case 9:
                t.Flags = TransferFlags.VoidPendingTransfer;
                t.PendingId = (ulong)(1 + v[6] % TransferPool);
                if (v[3] % 2 == 0) t.Amount = 0;
                if (v[1] % 2 == 0) { t.DebitAccountId = 0; t.CreditAccountId = 0; t.Asset = 0; t.Code = 0; }
                break;
        }
        if (v[5] % 4 == 0) t.Flags |= TransferFlags.Linked;
        switch (v[9] % 97)
        {
            case 1: t.Flags |= (TransferFlags)0x100; break;
            case 2: t.Flags |= TransferFlags.Pending | TransferFlags.VoidPendingTransfer; break;
            case 3: t.Id = 0; break;
            case 4: t.Id = UInt128.MaxValue; break;
            case 5: t.Timestamp = 1; break;
            case 6: t.Timeout = 7; break;
            case 7: t.PendingId = t.Id; break;
            case 8: t.Reserved = 3; break;
        }
        return t;
    }

    private static readonly Gen<int[]> Event = Gen.Int[0, 1000].Array[10];

    /// <summary>A batch of 0..24 events; a third of batches create accounts. Some events repeat the one before (a retry).</summary>
    public static readonly Gen<GeneratedBatch> Batch =
        Gen.Select(Gen.Int[0, 2], Event.Array[0, 24], Gen.Long[1, 3_000_000_000L], (kind, events, advance) =>
            kind == 0
                ? new GeneratedBatch(true, WithRetries(events, DecodeAccount), [], advance)
                : new GeneratedBatch(false, [], WithRetries(events, DecodeTransfer), advance));

    private static T[] WithRetries<T>(int[][] events, Func<int[], T> decode)
    {
        var decoded = new T[events.Length];
        for (int i = 0; i < events.Length; i++)
            decoded[i] = i > 0 && events[i][7] % 7 == 0 ? decoded[i - 1] : decode(events[i]);
        return decoded;
    }

    /// <summary>The accounts every scenario starts with, so transfers have somewhere to go.</summary>
    public static Account[] Opening() =>
    [
        new() { Id = 1, Asset = 1, Code = 1 },
        new() { Id = 2, Asset = 1, Code = 1, Flags = AccountFlags.DebitsMustNotExceedCredits },
        new() { Id = 3, Asset = 1, Code = 1, Flags = AccountFlags.CreditsMustNotExceedDebits },
        new() { Id = 4, Asset = 1, Code = 2 },
        new() { Id = 6, Asset = 2, Code = 1 },
        new() { Id = 7, Asset = 2, Code = 1, Flags = AccountFlags.DebitsMustNotExceedCredits },
    ];

    /// <summary>
    /// A whole scenario: 1..40 batches after the opening accounts; about one in eight is a client resending
    /// an earlier batch whole (the retry after a lost answer), which must answer Exists and change nothing.
    /// </summary>
    public static readonly Gen<GeneratedBatch[]> Batches =
        Gen.Select(Batch.Array[1, 40], Gen.Int[0, 1000].Array[40], (batches, replay) =>
        {
            for (int i = 1; i < batches.Length; i++)
                if (replay[i] % 8 == 0) batches[i] = batches[replay[i] % i] with { AdvanceNs = batches[i].AdvanceNs };
            return batches;
        });
}

/// <summary>Fixed scenarios drawn from the generator with a given seed (for non-property tests).</summary>
public static class FixedScenario
{
    public static GeneratedBatch[] Of(int batches, uint seed) =>
        Scenario.Batches.Where(b => b.Length >= batches).Generate(new PCG(seed, seed * 7919UL + 1), null, out _);
}
