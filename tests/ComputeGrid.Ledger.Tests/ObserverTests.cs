using ComputeGrid.Core;

namespace ComputeGrid.Ledger.Tests;

/// <summary>The commit observer sees each posting once, after its batch committed, and nothing that posts nothing.</summary>
public class ObserverTests
{
    private const long Start = 1_700_000_000_000_000_000;

    private sealed class Recorder : ILedgerObserver
    {
        public readonly List<Transfer> Seen = new();
        public void OnPosted(in Transfer transfer) => Seen.Add(transfer);
    }

    private static Account Acc(ulong id) => new() { Id = id, Asset = Asset.Usd.Code, Code = 1 };

    private static Transfer T(ulong id, ulong debit, ulong credit, long amount, TransferFlags flags = TransferFlags.None, ulong pending = 0) =>
        new() { Id = id, DebitAccountId = debit, CreditAccountId = credit, Amount = amount, Asset = Asset.Usd.Code, Code = 1, Flags = flags, PendingId = pending };

    [Fact]
    public void Plain_transfers_and_posts_are_seen_with_resolved_accounts_holds_voids_and_failed_chains_are_not()
    {
        using var sm = new LedgerStateMachine();
        var rec = new Recorder();
        sm.Observer = rec;
        sm.CreateAccounts([Acc(1), Acc(2), Acc(3)], Start, new CreateAccountResult[3]);
        var r = new CreateTransferResult[6];
        sm.CreateTransfers([
            T(10, 1, 2, 5),
            T(11, 1, 2, 7, TransferFlags.Pending),
            T(12, 1, 3, 9, TransferFlags.Pending),
            T(13, 0, 0, 4, TransferFlags.PostPendingTransfer, pending: 11),
            T(14, 0, 0, 0, TransferFlags.VoidPendingTransfer, pending: 12),
            T(15, 2, 3, 1, TransferFlags.Linked),
        ], Start + 10, r);
        Assert.Equal(CreateTransferResult.LinkedEventChainOpen, r[5]);
        Assert.Equal([10, 13], rec.Seen.Select(t => (int)t.Id));
        Assert.Equal((UInt128)1, rec.Seen[1].DebitAccountId);
        Assert.Equal((UInt128)2, rec.Seen[1].CreditAccountId);
        Assert.Equal(4, rec.Seen[1].Amount);
        Assert.True(rec.Seen[1].Timestamp > rec.Seen[0].Timestamp);

        rec.Seen.Clear();
        sm.CreateTransfers([T(20, 2, 3, 1, TransferFlags.Linked), T(21, 3, 3, 1), T(22, 2, 1, 2)], Start + 100, new CreateTransferResult[3]);
        Assert.Equal([22], rec.Seen.Select(t => (int)t.Id));
    }

    [Fact]
    public void Replaying_the_ledger_gives_the_same_calls_as_watching_it_live_and_catches_up_from_a_position()
    {
        using var sm = new LedgerStateMachine();
        var live = new Recorder();
        sm.Observer = live;
        sm.CreateAccounts([Acc(1), Acc(2)], Start, new CreateAccountResult[2]);
        for (int b = 0; b < 5; b++)
            sm.CreateTransfers([T((ulong)(100 + 3 * b), 1, 2, b + 1), T((ulong)(101 + 3 * b), 2, 1, 1, TransferFlags.Pending), T((ulong)(102 + 3 * b), 0, 0, 0, TransferFlags.PostPendingTransfer, pending: (ulong)(101 + 3 * b))],
                Start + 10 + 10 * b, new CreateTransferResult[3]);
        var replay = new Recorder();
        sm.ReplayPosted(replay);
        Assert.Equal(live.Seen, replay.Seen);
        var tail = new Recorder();
        sm.ReplayPosted(tail, sm.TransferCount - 3);
        Assert.Equal(live.Seen.TakeLast(2), tail.Seen);
        Assert.Throws<ArgumentOutOfRangeException>(() => sm.ReplayPosted(tail, sm.TransferCount + 1));
    }
}
