using ComputeGrid.Ledger;

namespace ComputeGrid.Cli.Bench;

/// <summary>
/// The seeded workload of the ledger benchmark: a set of accounts of one asset and batches of plain
/// (single-phase) transfers between random distinct pairs of them. Everything is generated up front, so
/// generation is never part of a timed section, and the same batches feed every contender.
/// </summary>
public sealed class LedgerBenchWorkload
{
    /// <summary>Asset code of every account and transfer.</summary>
    public const uint Asset = 1;

    /// <summary>Account and transfer code.</summary>
    public const ushort Code = 1;

    /// <summary>High half of every account id (so account ids never collide with transfer ids).</summary>
    private const ulong AccountIdHigh = 0xACC0_0000_0000_0001UL;

    /// <summary>The accounts, in creation order.</summary>
    public Account[] Accounts { get; }

    /// <summary>The transfer batches, in submission order.</summary>
    public Transfer[][] Batches { get; }

    /// <summary>The seed the workload was generated from.</summary>
    public int Seed { get; }

    /// <summary>Transfers in each batch.</summary>
    public int BatchSize { get; }

    private LedgerBenchWorkload(int seed, int batchSize, Account[] accounts, Transfer[][] batches)
    {
        Seed = seed;
        BatchSize = batchSize;
        Accounts = accounts;
        Batches = batches;
    }

    /// <summary>
    /// Generates <paramref name="accounts"/> accounts and <paramref name="batches"/> batches of
    /// <paramref name="batchSize"/> transfers from <paramref name="seed"/>. Transfer ids are unique: the high
    /// half is derived from the seed and the low half is a bijective mix (SplitMix64 finaliser) of a counter.
    /// </summary>
    public static LedgerBenchWorkload Generate(int seed, int accounts, int batches, int batchSize)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(accounts, 2);
        ArgumentOutOfRangeException.ThrowIfNegative(batches);
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(batchSize, LedgerLimits.BatchEventsMax);

        var rng = new Random(seed);
        var accountArray = new Account[accounts];
        for (int i = 0; i < accounts; i++)
        {
            accountArray[i] = new Account
            {
                Id = AccountId(i),
                Asset = Asset,
                Code = Code,
                Flags = AccountFlags.None,
            };
        }

        // The transfer ids' high half: never 0 and never all ones, so no id is 0 or UInt128.MaxValue.
        ulong idHigh = (Mix64((ulong)(uint)seed ^ 0x7EA5_F00D_0000_0000UL) & 0x7FFF_FFFF_FFFF_FFFFUL) | 1UL;
        ulong counter = 0;
        var batchArray = new Transfer[batches][];
        for (int b = 0; b < batches; b++)
        {
            var batch = new Transfer[batchSize];
            for (int i = 0; i < batchSize; i++)
            {
                int debit = rng.Next(accounts);
                int credit = rng.Next(accounts - 1);
                if (credit >= debit) credit++;
                batch[i] = new Transfer
                {
                    Id = new UInt128(idHigh, Mix64(++counter)),
                    DebitAccountId = accountArray[debit].Id,
                    CreditAccountId = accountArray[credit].Id,
                    Amount = rng.Next(1, 1001),
                    Asset = Asset,
                    Code = Code,
                };
            }
            batchArray[b] = batch;
        }
        return new LedgerBenchWorkload(seed, batchSize, accountArray, batchArray);
    }

    /// <summary>The id of account number <paramref name="index"/>.</summary>
    public static UInt128 AccountId(int index) => new(AccountIdHigh, (ulong)index + 1);

    /// <summary>SplitMix64's finaliser: a bijection on 64-bit values, so distinct counters give distinct ids.</summary>
    private static ulong Mix64(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
