using ComputeGrid.Exchange.Instruments;
using ComputeGrid.Exchange.Matching;
using ComputeGrid.Exchange.Pipeline;
using ComputeGrid.Exchange.StateMachine;
using ComputeGrid.Exchange.Trading;
using ComputeGrid.Ledger;
using Microsoft.Extensions.Time.Testing;

namespace ComputeGrid.Exchange.Tests.Pipeline;

/// <summary>
/// A command that throws part-way (a bug, injected here after the buy's hold is reserved and the order recorded) leaves
/// no trace: it is answered <see cref="ExchangeError.CommandFailed"/>, the machine is rebuilt from the journal without it,
/// the commands of its batch before and after it stand, the ledger never sees it, and every restart (with or without the
/// bug) replays to the same state.
/// </summary>
public sealed class CommandFailureTests : IDisposable
{
    private const long Buyer = 1;
    private const long Faulty = 13; // the quantity the injected bug throws on
    private static readonly UInt128 Funding = 1_000, BuyerWallet = 1_001;
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "cg-command-failure-" + Guid.NewGuid().ToString("N"));
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 11, 26, 12, 0, 0, TimeSpan.Zero));

    public void Dispose()
    {
        if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true);
    }

    private long _snapshotEvery;

    private ExchangeHostOptions Options(bool bug) => new()
    {
        JournalPath = Path.Combine(_dir, "commands.journal"),
        Pipeline = new PipelineOptions { SnapshotEveryCommands = _snapshotEvery },
        StateMachine = new StateMachineOptions { Epoch = 7, InjectFault = bug ? c => c.Kind == ExchangeCommandKind.Place && c.Quantity == Faulty : null },
    };

    private static InstrumentRegistry Registry() => new(new InstrumentSchedule(RegionCatalog.Fallback, ListingPolicy.Default));

    /// <summary>Also with snapshots after every batch (or every few): the rebuild starts from the newest, and so does each restart.</summary>
    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(3)]
    public async Task A_command_that_throws_part_way_leaves_no_trace_its_batch_stands_and_restarts_replay_to_the_same_state(long snapshotEvery)
    {
        _snapshotEvery = snapshotEvery;
        LedgerEngine ledger = LedgerEngine.Open(new LedgerEngineOptions(), _time);
        await using var _ = ledger;
        Assert.All(await ledger.CreateAccountsAsync(new Account[] { new() { Id = Funding, Asset = 1, Code = 1 },
            new() { Id = BuyerWallet, Asset = 1, Code = 2, Flags = AccountFlags.DebitsMustNotExceedCredits } }), r => Assert.Equal(CreateAccountResult.Ok, r));
        Assert.Equal(CreateTransferResult.Ok, (await ledger.CreateTransfersAsync(new Transfer[] { new() { Id = 1, DebitAccountId = Funding, CreditAccountId = BuyerWallet, Amount = 1_000_000_000, Asset = 1, Code = 1 } }))[0]);
        UInt128 trading = ExchangeStateMachine.TradingAccount(Buyer);

        byte[] hash;
        long a, b, failedSeq;
        await using (ExchangeHost host = await ExchangeHost.StartAsync(ledger, Registry(), _time, Options(bug: true)))
        {
            Assert.True((await host.SubmitAsync(new ExchangeCommand { Kind = ExchangeCommandKind.RegisterTrader, Owner = Buyer })).Result.Ok);
            CommandOutcome deposit = await host.SubmitAsync(new ExchangeCommand { Kind = ExchangeCommandKind.Deposit, Owner = Buyer, Account = BuyerWallet, Amount = 500_000_000 });
            Assert.Equal(CreateTransferResult.Ok, deposit.Settlement);
            long now = Core.Clock.UnixNanoseconds(_time);
            int instrument = await host.ReadAsync(sm => sm.Instruments.Active.First(i => i.Kind == DeliveryKind.HourlySpot && i.Gpu == GpuClass.H100 && i.IsTradingAt(now)).Id);

            // Three buys submitted together (one batch): the middle one meets the bug after its hold was reserved.
            CommandOutcome[] outcomes = await host.SubmitManyAsync(
            [
                ExchangeCommand.Place(Buyer, instrument, Side.Buy, OrderType.Limit, TimeInForce.GoodTillCancel, 2_000_000, 2),
                ExchangeCommand.Place(Buyer, instrument, Side.Buy, OrderType.Limit, TimeInForce.GoodTillCancel, 2_000_000, Faulty),
                ExchangeCommand.Place(Buyer, instrument, Side.Buy, OrderType.Limit, TimeInForce.GoodTillCancel, 1_000_000, 3),
            ]);
            Assert.True(outcomes[0].Result.Ok);
            Assert.Equal(ExchangeError.CommandFailed, outcomes[1].Result.Error);
            Assert.True(outcomes[2].Result.Ok);
            (a, failedSeq, b) = (outcomes[0].Result.Subject, outcomes[1].Result.Subject, outcomes[2].Result.Subject);
            Assert.Equal(1, host.Pipeline.FailedCommands.Count);

            // No trace: its hold is not reserved, its order is not open, the ledger holds only the other two.
            await host.ReadAsync(sm =>
            {
                sm.CheckInvariants();
                Assert.Equal(500_000_000 - 4_000_000 - 3_000_000, sm.Available(Buyer));
                Assert.Null(sm.Order(failedSeq));
                Assert.Equal([a, b], sm.OpenOrders(Buyer).Select(o => o.OrderId));
                return 0;
            });
            Account[] accounts = await ledger.LookupAccountsAsync([trading, ExchangeStateMachine.EscrowAccount]);
            Assert.Equal(7_000_000, accounts[0].DebitsPending);
            Assert.Equal(7_000_000, accounts[1].CreditsPending);

            // Trading goes on against the rebuilt machine.
            Assert.True((await host.SubmitAsync(ExchangeCommand.Cancel(Buyer, a))).Result.Ok);
            CommandOutcome after = await host.SubmitAsync(ExchangeCommand.Place(Buyer, instrument, Side.Buy, OrderType.Limit, TimeInForce.GoodTillCancel, 1_500_000, 4));
            Assert.True(after.Result.Ok);
            hash = await host.ReadAsync(sm => sm.StateHash());
            accounts = await ledger.LookupAccountsAsync([trading]);
            Assert.Equal(3_000_000 + 6_000_000, accounts[0].DebitsPending);
        }

        // Restarted without the bug, the command would now apply: the journal's Excluded record keeps it out.
        await using (ExchangeHost host = await ExchangeHost.StartAsync(ledger, Registry(), _time, Options(bug: false)))
        {
            Assert.Equal(snapshotEvery > 0, host.Pipeline.Restored.File is not null);
            Assert.Equal(hash, await host.ReadAsync(sm => sm.StateHash()));
            await host.ReadAsync(sm => { sm.CheckInvariants(); Assert.Null(sm.Order(failedSeq)); return 0; });
        }
        // And with the bug still there, replay meets it again and excludes it again.
        await using (ExchangeHost host = await ExchangeHost.StartAsync(ledger, Registry(), _time, Options(bug: true)))
        {
            Assert.Equal(snapshotEvery > 0, host.Pipeline.Restored.File is not null);
            Assert.Equal(hash, await host.ReadAsync(sm => sm.StateHash()));
            // The journal already says it is excluded: the start records nothing more (a refused cancel is the barrier:
            // anything the start queued is sequenced before it).
            Assert.Equal(ExchangeError.UnknownOrder, (await host.SubmitAsync(ExchangeCommand.Cancel(Buyer, 999))).Result.Error);
            Assert.Equal(11UL, await host.ReadAsync(sm => sm.LastSeq));
        }
        Assert.Equal(9_000_000, (await ledger.LookupAccountsAsync([trading]))[0].DebitsPending);
    }
}
