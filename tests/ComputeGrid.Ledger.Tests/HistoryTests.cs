using CsCheck;

namespace ComputeGrid.Ledger.Tests;

/// <summary>
/// Account history paged by cursor: a page costs O(log N + page) however deep it is, pages concatenate to the whole
/// history with no gap or repeat, and the fast ledger agrees with the reference on every page and every cursor.
/// </summary>
public class HistoryTests
{
    private const long Start = 1_700_000_000_000_000_000;

    [Fact]
    public void A_page_reads_at_most_its_size_plus_log2_n_at_any_depth_of_a_100_000_transfer_history()
    {
        // One account in every third transfer, the others among nine more accounts: its history is 101,010 transfers
        // spread over 303,030.
        const int Accounts = 10, PerBatch = LedgerLimits.BatchEventsMax, Batches = 37;
        using var sm = new LedgerStateMachine(16, PerBatch * Batches);
        var opening = Enumerable.Range(1, Accounts).Select(i => new Account { Id = (ulong)i, Asset = 1, Code = 1 }).ToArray();
        sm.CreateAccounts(opening, Start, new CreateAccountResult[Accounts]);
        var rng = new Random(17);
        var batch = new Transfer[PerBatch];
        var results = new CreateTransferResult[PerBatch];
        ulong id = 0;
        long ts = Start + 1_000;
        for (int b = 0; b < Batches; b++)
        {
            for (int i = 0; i < PerBatch; i++)
            {
                id++;
                ulong other = (ulong)rng.Next(2, Accounts + 1), third = (ulong)rng.Next(2, Accounts);
                if (third >= other) third++;
                (ulong debit, ulong credit) = id % 3 != 0 ? (other, third) : rng.Next(2) == 0 ? (1UL, other) : (other, 1UL);
                batch[i] = new Transfer { Id = id, DebitAccountId = debit, CreditAccountId = credit, Amount = rng.Next(1, 100), Asset = 1, Code = 1 };
            }
            sm.CreateTransfers(batch, ts, results);
            Assert.All(results, r => Assert.Equal(CreateTransferResult.Ok, r));
            ts += PerBatch + rng.Next(2, 1_000); // gaps between batches: timestamps no transfer has
        }

        var mine = Enumerable.Range(0, sm.TransferCount).Select(i => sm.TransferAt(i))
            .Where(t => t.DebitAccountId == 1 || t.CreditAccountId == 1).Reverse().ToArray();
        Assert.True(mine.Length >= 100_000);
        int log2N = (int)Math.Ceiling(Math.Log2(sm.TransferCount));

        // A page that starts after the first `skip` transfers of the history (newest first): the cursor is the skipped
        // transfer's timestamp, as the API hands it out.
        void AssertPage(int skip, int size)
        {
            long before = skip == 0 ? long.MaxValue : mine[skip - 1].Timestamp;
            var into = new Transfer[size];
            Assert.Equal(HistoryResult.Ok, sm.GetAccountTransfers(1, before, into, out int n, out int visited));
            Assert.Equal(mine.Skip(skip).Take(size).ToArray(), into[..n]);
            Assert.True(visited <= n + log2N + 2, $"page of {n} after {skip}: visited {visited}, bound {n + log2N + 2}");
        }
        foreach (int size in new[] { 1, 100, LedgerLimits.HistoryLimitMax })
        {
            AssertPage(0, size);                 // newest
            AssertPage(1, size);                 // the cursor is the account's newest transfer
            AssertPage(mine.Length / 2, size);   // middle
            AssertPage(mine.Length - 3, size);   // oldest end: a short page
            AssertPage(mine.Length, size);       // past the oldest: empty
        }

        // A cursor that names no transfer of the account is refused in O(log N), not searched for by walking.
        long[] refused = [mine[mine.Length / 2].Timestamp - 1, mine[mine.Length / 2].Timestamp + 1, mine[^1].Timestamp - 1, 0, long.MinValue];
        foreach (long before in refused)
        {
            var into = new Transfer[100];
            Assert.Equal(HistoryResult.CursorNotAnAccountTransfer, sm.GetAccountTransfers(1, before, into, out int n, out int visited));
            Assert.Equal(0, n);
            Assert.True(visited <= log2N + 2, $"refusing {before}: visited {visited}");
        }

        // The whole history by full pages: every transfer once, newest first, and the work is the pages' sum.
        var all = new List<Transfer>();
        var page = new Transfer[LedgerLimits.HistoryLimitMax];
        long cursor = long.MaxValue;
        long totalVisited = 0, bound = 0;
        while (true)
        {
            Assert.Equal(HistoryResult.Ok, sm.GetAccountTransfers(1, cursor, page, out int n, out int visited));
            all.AddRange(page[..n]);
            totalVisited += visited;
            bound += n + log2N + 2;
            if (n < page.Length) break;
            cursor = page[n - 1].Timestamp;
        }
        Assert.Equal(mine, all);
        Assert.True(totalVisited <= bound, $"visited {totalVisited}, bound {bound}");

        // A query is on the sequencer's path: it allocates nothing.
        sm.GetAccountTransfers(1, mine[mine.Length / 2].Timestamp, page, out _);
        long allocated = GC.GetAllocatedBytesForCurrentThread();
        sm.GetAccountTransfers(1, mine[mine.Length / 3].Timestamp, page, out _);
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - allocated);
    }

    // Batches of transfer events among six accounts (account 2 may not go below zero), with linked chains that fail
    // and roll back, holds that expire, posts and voids of earlier holds, and retries of earlier ids.
    private static readonly Gen<int[][][]> Histories = Gen.Int[0, 1_000_000].Array[5].Array[0, 80].Array[1, 12];

    private static Transfer DecodeTransfer(int[] v, ulong next)
    {
        var t = new Transfer
        {
            Id = v[3] % 13 == 0 && next > 1 ? 1 + (ulong)v[0] % (next - 1) : next,
            DebitAccountId = 1 + (ulong)(v[0] % 6),
            CreditAccountId = 1 + (ulong)(v[1] % 6),
            Amount = 1 + v[2] % 100,
            Asset = 1,
            Code = 1,
        };
        switch (v[4] % 8)
        {
            case 0:
                t.Flags = TransferFlags.Pending;
                t.Timeout = (uint)(v[4] % 3);
                break;
            case 1: case 2:
                t = new Transfer { Id = t.Id, PendingId = 1 + (ulong)v[2] % next, Flags = v[4] % 8 == 1 ? TransferFlags.PostPendingTransfer : TransferFlags.VoidPendingTransfer };
                break;
        }
        if (v[3] % 6 == 0) t.Flags |= TransferFlags.Linked;
        return t;
    }

    [Fact]
    public void Pages_of_random_sizes_match_the_reference_and_concatenate_to_the_whole_history()
    {
        Gen.Select(Histories, Gen.Int[1, 25].Array[1, 6], Gen.Int[0, int.MaxValue].Array[0, 16]).Sample((batches, sizes, picks) =>
        {
            using var fast = new LedgerStateMachine(4, 4);
            var reference = new ReferenceLedger();
            Account[] opening =
            [
                new() { Id = 1, Asset = 1, Code = 1 },
                new() { Id = 2, Asset = 1, Code = 1, Flags = AccountFlags.DebitsMustNotExceedCredits },
                new() { Id = 3, Asset = 1, Code = 1 },
                new() { Id = 4, Asset = 1, Code = 1 },
                new() { Id = 5, Asset = 1, Code = 1 },
                new() { Id = 6, Asset = 1, Code = 1 },
            ];
            long ts = Start;
            fast.CreateAccounts(opening, ts, new CreateAccountResult[opening.Length]);
            reference.CreateAccounts(opening, ts);
            ulong next = 1;
            foreach (var events in batches)
            {
                var transfers = events.Select(v => DecodeTransfer(v, next++)).ToArray();
                ts += 1_000_000_000L + transfers.Length; // a second on: holds with a timeout expire
                var r = new CreateTransferResult[transfers.Length];
                fast.CreateTransfers(transfers, ts, r);
                Assert.Equal(reference.CreateTransfers(transfers, ts), r);
            }
            DifferentialTests.AssertSameState(fast, reference);

            int log2N = (int)Math.Ceiling(Math.Log2(Math.Max(2, fast.TransferCount)));
            for (ulong account = 0; account <= 7; account++) // 0 and 7 are no account
            {
                var (_, everything) = reference.GetAccountTransfers(account, long.MaxValue, int.MaxValue);
                var paged = new List<Transfer>();
                long before = long.MaxValue;
                for (int p = 0; ; p++)
                {
                    int size = sizes[p % sizes.Length];
                    var into = new Transfer[size];
                    var result = fast.GetAccountTransfers(account, before, into, out int n, out int visited);
                    var (expectedResult, expected) = reference.GetAccountTransfers(account, before, size);
                    Assert.Equal(expectedResult, result);
                    Assert.Equal(expected, into[..n]);
                    Assert.True(visited <= n + log2N + 2, $"account {account}, page {p}: visited {visited}");
                    paged.AddRange(into[..n]);
                    if (result != HistoryResult.Ok || n < size) break;
                    before = into[n - 1].Timestamp;
                }
                Assert.Equal(everything, paged); // empty for no account
                // Newest first with no repeat: timestamps strictly decrease.
                for (int i = 1; i < paged.Count; i++) Assert.True(paged[i].Timestamp < paged[i - 1].Timestamp);
            }

            // Any cursor at all: both ledgers serve or refuse it alike. Candidates: every transfer's timestamp and its
            // neighbours (often another account's transfer, or a timestamp a failed event used), and the extremes.
            var candidates = Enumerable.Range(0, fast.TransferCount).Select(i => fast.TransferAt(i).Timestamp)
                .SelectMany(t => new[] { t - 1, t, t + 1 })
                .Concat([long.MinValue, 0, Start, fast.LastTimestamp, fast.LastTimestamp + 1, long.MaxValue]).ToArray();
            foreach (int pick in picks)
            {
                long before = candidates[pick % candidates.Length];
                ulong account = (ulong)(pick % 8);
                int size = sizes[pick % sizes.Length];
                var into = new Transfer[size];
                var result = fast.GetAccountTransfers(account, before, into, out int n);
                var (expectedResult, expected) = reference.GetAccountTransfers(account, before, size);
                Assert.Equal(expectedResult, result);
                Assert.Equal(expected, into[..n]);
            }
        }, iter: 1500, threads: 1);
    }

    [Fact]
    public async Task The_engine_pages_by_the_cursors_it_hands_out_and_a_foreign_cursor_fails_only_its_own_query()
    {
        await using var engine = LedgerEngine.Open(new LedgerEngineOptions { AccountsCapacity = 16, TransfersCapacity = 1024 });
        Account[] accounts = [new() { Id = 1, Asset = 1, Code = 1 }, new() { Id = 2, Asset = 1, Code = 1 }, new() { Id = 3, Asset = 1, Code = 1 }];
        Assert.All(await engine.CreateAccountsAsync(accounts), r => Assert.Equal(CreateAccountResult.Ok, r));
        // Account 2 is in transfers 1, 3, 5, 7, 9, 11, 13; account 3 in the even ones.
        var transfers = Enumerable.Range(1, 14).Select(i =>
            new Transfer { Id = (ulong)i, DebitAccountId = 1, CreditAccountId = i % 2 == 1 ? 2UL : 3UL, Amount = i, Asset = 1, Code = 1 }).ToArray();
        Assert.All(await engine.CreateTransfersAsync(transfers), r => Assert.Equal(CreateTransferResult.Ok, r));

        var pages = new List<ulong[]>();
        long before = long.MaxValue;
        while (true)
        {
            var page = await engine.GetAccountTransfersAsync(2, before, 3);
            Assert.NotNull(page);
            pages.Add(page.Select(t => (ulong)t.Id).ToArray());
            if (page.Length < 3) break;
            before = page[^1].Timestamp;
        }
        Assert.Equal(new[] { new ulong[] { 13, 11, 9 }, [7, 5, 3], [1] }, pages);

        long ofThree = await engine.ReadAsync(sm => sm.TryGetTransfer(8, out var t, out _) ? t.Timestamp : 0);
        var refused = await Assert.ThrowsAsync<HistoryCursorException>(() => engine.GetAccountTransfersAsync(2, ofThree, 3));
        Assert.Equal(2UL, refused.AccountId);
        Assert.Equal(ofThree, refused.BeforeTimestamp);

        // The sequencer goes on: the next commands are answered as usual.
        Assert.Null(await engine.GetAccountTransfersAsync(99, long.MaxValue, 3));
        var more = new Transfer { Id = 15, DebitAccountId = 1, CreditAccountId = 2, Amount = 1, Asset = 1, Code = 1 };
        Assert.Equal(new[] { CreateTransferResult.Ok }, await engine.CreateTransfersAsync(new[] { more }));
        Assert.Equal(new ulong[] { 15, 13 }, (await engine.GetAccountTransfersAsync(2, long.MaxValue, 2))!.Select(t => (ulong)t.Id).ToArray());
    }
}
