using ComputeGrid.Core;
using ComputeGrid.Exchange.Instruments;
using ComputeGrid.Exchange.Matching;
using ComputeGrid.Exchange.Pipeline;
using ComputeGrid.Exchange.StateMachine;
using ComputeGrid.Exchange.Trading;
using ComputeGrid.Ledger;
using Microsoft.Extensions.Time.Testing;

namespace ComputeGrid.Exchange.Tests.Pipeline;

/// <summary>The pipeline end to end over an in-memory ledger and a real journal: trade, restart, replay.</summary>
public sealed class ExchangePipelineTests : IDisposable
{
    private const long Buyer = 1, Provider = 100;
    private static readonly UInt128 Funding = 1_000, BuyerWallet = 1_001, PoorWallet = 1_002, Revenue = 1_100, Collateral = 1_101;
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "cg-pipeline-" + Guid.NewGuid().ToString("N"));
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 11, 26, 12, 0, 0, TimeSpan.Zero));

    public void Dispose()
    {
        if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true);
    }

    private string Journal => Path.Combine(_dir, "exchange.journal");

    private static ExchangeStateMachine NewMachine() =>
        new(new InstrumentRegistry(new InstrumentSchedule(RegionCatalog.Fallback, ListingPolicy.Default)), new StateMachineOptions { Epoch = 7 });

    private async Task<LedgerEngine> LedgerAsync()
    {
        LedgerEngine ledger = LedgerEngine.Open(new LedgerEngineOptions(), _time);
        Account[] accounts =
        [
            new() { Id = Funding, Asset = 1, Code = 1 },
            new() { Id = BuyerWallet, Asset = 1, Code = 2, Flags = AccountFlags.DebitsMustNotExceedCredits },
            new() { Id = PoorWallet, Asset = 1, Code = 2, Flags = AccountFlags.DebitsMustNotExceedCredits },
            new() { Id = Revenue, Asset = 1, Code = 3, Flags = AccountFlags.DebitsMustNotExceedCredits },
            new() { Id = Collateral, Asset = 1, Code = 4, Flags = AccountFlags.DebitsMustNotExceedCredits },
        ];
        Assert.All(await ledger.CreateAccountsAsync(accounts), r => Assert.Equal(CreateAccountResult.Ok, r));
        Transfer[] fund =
        [
            new() { Id = 1, DebitAccountId = Funding, CreditAccountId = BuyerWallet, Amount = 1_000_000_000, Asset = 1, Code = 1 },
            new() { Id = 2, DebitAccountId = Funding, CreditAccountId = PoorWallet, Amount = 10, Asset = 1, Code = 1 },
            new() { Id = 3, DebitAccountId = Funding, CreditAccountId = Collateral, Amount = 50_000_000, Asset = 1, Code = 1 },
        ];
        Assert.All(await ledger.CreateTransfersAsync(fund), r => Assert.Equal(CreateTransferResult.Ok, r));
        return ledger;
    }

    /// <summary>The clock, the buyer as a trader, the provider with $50 of collateral.</summary>
    private static async Task RegisterPartiesAsync(ExchangePipeline pipeline)
    {
        Assert.True((await pipeline.SubmitAsync(ExchangeCommand.Tick())).Result.Ok);
        Assert.True((await pipeline.SubmitAsync(new ExchangeCommand { Kind = ExchangeCommandKind.RegisterTrader, Owner = Buyer })).Result.Ok);
        Assert.True((await pipeline.SubmitAsync(new ExchangeCommand
        {
            Kind = ExchangeCommandKind.RegisterProvider, Owner = Provider, Account = Revenue, Account2 = Collateral, Amount = 50_000_000,
        })).Result.Ok);
    }

    [Fact]
    public async Task Blocks_and_resales_go_through_the_journal_and_a_restart_replays_them_to_the_same_state()
    {
        await using LedgerEngine ledger = await LedgerAsync();
        byte[] hash;
        long resale;
        await using (ExchangePipeline pipeline = await ExchangePipeline.StartAsync(NewMachine(), ledger, Journal, _time))
        {
            await RegisterPartiesAsync(pipeline);
            Assert.True((await pipeline.SubmitAsync(new ExchangeCommand
            {
                Kind = ExchangeCommandKind.AdmitNode, Owner = Provider, Gpus = 8, Gpu = GpuClass.H100, Region = "frankfurt", Name = "fra-01",
            })).Result.Ok);
            Assert.True((await pipeline.SubmitAsync(new ExchangeCommand { Kind = ExchangeCommandKind.Deposit, Owner = Buyer, Account = BuyerWallet, Amount = 500_000_000 })).Result.Ok);
            await WaitAsync(() => pipeline.ReadAsync(sm => sm.PendingDeposits.Count == 0));
            int h14 = await pipeline.ReadAsync(sm => sm.Instruments.GetBySymbol("H100.frankfurt.H.2026-11-26T14").Id);
            int h15 = await pipeline.ReadAsync(sm => sm.Instruments.GetBySymbol("H100.frankfurt.H.2026-11-26T15").Id);
            Assert.True((await pipeline.SubmitAsync(ExchangeCommand.Place(Provider, h14, Side.Sell, OrderType.Limit, TimeInForce.GoodTillCancel, 2_000_000, 4))).Result.Ok);
            Assert.True((await pipeline.SubmitAsync(ExchangeCommand.Place(Provider, h15, Side.Sell, OrderType.Limit, TimeInForce.GoodTillCancel, 2_100_000, 4))).Result.Ok);

            long start = new DateTimeOffset(2026, 11, 26, 14, 0, 0, TimeSpan.Zero).ToUnixTimeMilliseconds() * 1_000_000;
            CommandOutcome block = await pipeline.SubmitAsync(ExchangeCommand.Block(Buyer, GpuClass.H100, "frankfurt", start, start + 2 * 3_600_000_000_000L, 2, 2_050_000));
            Assert.True(block.Result.Ok, block.Result.Error.ToString());
            Assert.Equal(2 * 2_000_000 + 2 * 2_100_000, block.Result.Cost);
            Assert.Equal(2, block.Fills.Length);
            CommandOutcome resell = await pipeline.SubmitAsync(ExchangeCommand.Resell(Buyer, block.Fills[0].LeaseId, h14, 2_500_000, 1));
            Assert.Equal(OrderStatus.Resting, resell.Result.Status);
            resale = resell.Result.Subject;
            Account trading = (await ledger.LookupAccountsAsync([ExchangeStateMachine.TradingAccount(Buyer)]))[0];
            Assert.Equal((8_200_000L, 0L), (trading.DebitsPosted, trading.DebitsPending));
            await pipeline.ReadAsync(sm => { sm.CheckInvariants(); return 0; });
            hash = await pipeline.ReadAsync(sm => sm.StateHash());
        }

        await using (ExchangePipeline again = await ExchangePipeline.StartAsync(NewMachine(), ledger, Journal, _time))
        {
            Assert.Equal(hash, await again.ReadAsync(sm => sm.StateHash()));
            OpenOrder open = Assert.Single(await again.ReadAsync(sm => sm.OpenOrders(Buyer)));
            Assert.Equal(resale, open.OrderId);
            Assert.NotNull(open.LeaseId);
            // The lease time the resale reserved is given back by the cancel: it can be offered again.
            Assert.Equal(OrderStatus.Cancelled, (await again.SubmitAsync(ExchangeCommand.Cancel(Buyer, resale))).Result.Status);
            Assert.Equal(OrderStatus.Resting, (await again.SubmitAsync(ExchangeCommand.Resell(Buyer, open.LeaseId!.Value, open.Instrument, 2_500_000, 2))).Result.Status);
        }
    }

    [Fact]
    public async Task Orders_trade_and_settle_through_the_pipeline_and_a_restart_replays_to_the_same_state()
    {
        await using LedgerEngine ledger = await LedgerAsync();
        byte[] hash;
        long leaseId;
        int instrument;
        await using (ExchangePipeline pipeline = await ExchangePipeline.StartAsync(NewMachine(), ledger, Journal, _time))
        {
            await RegisterPartiesAsync(pipeline);
            CommandOutcome node = await pipeline.SubmitAsync(new ExchangeCommand
            {
                Kind = ExchangeCommandKind.AdmitNode, Owner = Provider, Gpus = 8, Gpu = GpuClass.H100, Region = "frankfurt", Name = "fra-01",
            });
            Assert.True(node.Result.Ok);
            // A deposit the wallet covers is counted once the ledger confirms it (the next batch); one it does not, never.
            Assert.True((await pipeline.SubmitAsync(new ExchangeCommand { Kind = ExchangeCommandKind.Deposit, Owner = Buyer, Account = BuyerWallet, Amount = 500_000_000 })).Result.Ok);
            Assert.True((await pipeline.SubmitAsync(new ExchangeCommand { Kind = ExchangeCommandKind.Deposit, Owner = Buyer, Account = PoorWallet, Amount = 1_000 })).Result.Ok);
            await WaitAsync(() => pipeline.ReadAsync(sm => sm.PendingDeposits.Count == 0));
            Assert.Equal(500_000_000, await pipeline.ReadAsync(sm => sm.Available(Buyer)));

            instrument = await pipeline.ReadAsync(sm => sm.Instruments.GetBySymbol("H100.frankfurt.H.2026-11-26T14").Id);
            CommandOutcome sell = await pipeline.SubmitAsync(ExchangeCommand.Place(Provider, instrument, Side.Sell, OrderType.Limit, TimeInForce.GoodTillCancel, 2_000_000, 4));
            Assert.Equal(OrderStatus.Resting, sell.Result.Status);
            CommandOutcome buy = await pipeline.SubmitAsync(ExchangeCommand.Place(Buyer, instrument, Side.Buy, OrderType.Limit, TimeInForce.GoodTillCancel, 2_500_000, 6));
            Assert.Equal(OrderStatus.Resting, buy.Result.Status);
            FillRecord fill = Assert.Single(buy.Fills);
            Assert.Equal(2_000_000, fill.Price);
            Assert.Equal(4, fill.Quantity);
            leaseId = fill.LeaseId;
            // Too big a buy is refused by the mirror without a ledger round trip, and says why.
            CommandOutcome tooBig = await pipeline.SubmitAsync(ExchangeCommand.Place(Buyer, instrument, Side.Buy, OrderType.Limit, TimeInForce.GoodTillCancel, 2_500_000, 400));
            Assert.Equal(ExchangeError.InsufficientBalance, tooBig.Result.Error);
            Assert.Contains("available balance", Refusals.Describe(tooBig.Result));

            // Money: the wallet paid 500 USD in; 8 USD are in the lease's escrow; 2 GPU-hours × 2.5 USD rest on hold.
            Account trading = (await ledger.LookupAccountsAsync([ExchangeStateMachine.TradingAccount(Buyer)]))[0];
            Assert.Equal(500_000_000, trading.CreditsPosted);
            Assert.Equal(8_000_000, trading.DebitsPosted);
            Assert.Equal(5_000_000, trading.DebitsPending);
            Account escrow = (await ledger.LookupAccountsAsync([ExchangeStateMachine.EscrowAccount]))[0];
            Assert.Equal(5_000_000, escrow.CreditsPending);
            LeaseView lease = (await pipeline.ReadAsync(sm => sm.Lease(leaseId)))!;
            Account leaseEscrow = (await ledger.LookupAccountsAsync([lease.EscrowAccount]))[0];
            Assert.Equal(8_000_000, leaseEscrow.CreditsPosted);
            Assert.Equal(500_000_000 - 8_000_000 - 5_000_000, await pipeline.ReadAsync(sm => sm.Available(Buyer)));
            await pipeline.ReadAsync(sm => { sm.CheckInvariants(); return 0; });
            hash = await pipeline.ReadAsync(sm => sm.StateHash());
        }

        // The restart replays the journal into a fresh state machine: the same state, and resubmitting the last batches
        // changes no balance (the ledger answers Exists).
        Account before = (await ledger.LookupAccountsAsync([ExchangeStateMachine.TradingAccount(Buyer)]))[0];
        await using (ExchangePipeline again = await ExchangePipeline.StartAsync(NewMachine(), ledger, Journal, _time))
        {
            Assert.Equal(hash, await again.ReadAsync(sm => sm.StateHash()));
            Account after = (await ledger.LookupAccountsAsync([ExchangeStateMachine.TradingAccount(Buyer)]))[0];
            Assert.Equal(before.DebitsPosted, after.DebitsPosted);
            Assert.Equal(before.DebitsPending, after.DebitsPending);
            Assert.Equal(before.CreditsPosted, after.CreditsPosted);
            // It goes on where it stopped: the open buy cancels and its hold is released.
            OpenOrder open = Assert.Single(await again.ReadAsync(sm => sm.OpenOrders(Buyer)));
            Assert.Equal(OrderStatus.Cancelled, (await again.SubmitAsync(ExchangeCommand.Cancel(Buyer, open.OrderId))).Result.Status);
            Account escrow = (await ledger.LookupAccountsAsync([ExchangeStateMachine.EscrowAccount]))[0];
            Assert.Equal(0, escrow.CreditsPending);
        }
    }

    [Fact]
    public async Task A_journal_write_error_stops_the_pipeline_and_nothing_unacknowledged_is_applied()
    {
        await using LedgerEngine ledger = await LedgerAsync();
        int appends = 0;
        var faults = new JournalOptions { InjectFault = point => point == JournalFaultPoint.Flush && Interlocked.Increment(ref appends) > 3 };
        ExchangePipeline pipeline = await ExchangePipeline.StartAsync(NewMachine(), ledger, Journal, _time, journalOptions: faults);
        try
        {
            for (int i = 0; i < 3; i++) Assert.True((await pipeline.SubmitAsync(ExchangeCommand.Tick())).Result.Ok);
            await Assert.ThrowsAsync<ExchangeUnavailableException>(async () => await pipeline.SubmitAsync(new ExchangeCommand { Kind = ExchangeCommandKind.RegisterTrader, Owner = Buyer }));
            Assert.NotNull(pipeline.Fault);
            await Assert.ThrowsAsync<ExchangeUnavailableException>(async () => await pipeline.SubmitAsync(ExchangeCommand.Tick()));
            // The trader was never registered in the ledger (its command's effects never ran).
            Assert.Empty(await ledger.LookupAccountsAsync([ExchangeStateMachine.TradingAccount(Buyer)]));
        }
        finally { await pipeline.DisposeAsync(); }
        // A restart replays what was acknowledged (the failed record may come back whole: then its command applies now).
        await using ExchangePipeline again = await ExchangePipeline.StartAsync(NewMachine(), ledger, Journal, _time);
        Assert.InRange(await again.ReadAsync(sm => (long)sm.LastSeq), 3, 4);
    }

    private static async Task WaitAsync(Func<Task<bool>> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException("The condition did not hold within 10 s.");
            await Task.Delay(5);
        }
    }
}
