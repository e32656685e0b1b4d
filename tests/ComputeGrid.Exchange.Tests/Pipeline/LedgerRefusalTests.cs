using System.Collections.Concurrent;
using ComputeGrid.Exchange.Instruments;
using ComputeGrid.Exchange.Matching;
using ComputeGrid.Exchange.Pipeline;
using ComputeGrid.Exchange.StateMachine;
using ComputeGrid.Exchange.Tests.StateMachine;
using ComputeGrid.Exchange.Trading;
using ComputeGrid.Ledger;
using Microsoft.Extensions.Time.Testing;
using Xunit.Abstractions;

namespace ComputeGrid.Exchange.Tests.Pipeline;

/// <summary>
/// The real ledger refuses a command's settlement (injected: <see cref="PipelineOptions.InjectLedgerRefusal"/> makes one
/// transfer of each of its chains name an account that does not exist). The exchange does not stop: the command is
/// compensated — journaled as excluded, the machine rebuilt without it, later commands planned again — its submitter is
/// answered <see cref="ExchangeError.SettlementRefused"/>, and the state is that of a machine that never saw it, in the
/// exchange and in the ledger alike. A refusal after which a chain the ledger applied would differ stops the exchange.
/// </summary>
public sealed class LedgerRefusalTests(ITestOutputHelper output) : IDisposable
{
    private const long Buyer1 = 1, Buyer2 = 2, Provider = 100;
    private const long NsPerHour = 3_600_000_000_000L;
    private static readonly UInt128 Funding = 1_000, Revenue = 1_100, Collateral = 1_101;
    private const long CollateralFunded = 500_000_000;
    private const long Ahead = 30_000_000; // the deposit ahead of the batches a test holds in flight
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "cg-ledger-refusal-" + Guid.NewGuid().ToString("N"));
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 11, 26, 12, 0, 0, TimeSpan.Zero));
    // The commands whose settlement the ledger is made to refuse (the hook runs on the ledger stage).
    private readonly ConcurrentDictionary<ulong, bool> _refuse = new();

    public void Dispose()
    {
        if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true);
    }

    private string Journal => Path.Combine(_dir, "exchange.journal");

    private static UInt128 Wallet(long owner) => (UInt128)(2_000 + owner);

    private static InstrumentRegistry Registry() => new(new InstrumentSchedule(RegionCatalog.Fallback, ListingPolicy.Default));

    private static readonly StateMachineOptions MachineOptions = new() { Epoch = 7, OrdersPerBookMax = 256 };

    private static ExchangeStateMachine NewMachine() => new(Registry(), MachineOptions);

    private Task<ExchangePipeline> StartAsync(LedgerEngine ledger, long snapshotEvery = 0, bool refusals = true, string? snapshots = null) =>
        ExchangePipeline.StartAsync(NewMachine(), ledger, Journal, _time, new PipelineOptions
        {
            SnapshotEveryCommands = snapshotEvery, SnapshotFolder = snapshots, Rebuild = NewMachine,
            InjectLedgerRefusal = refusals ? seq => _refuse.ContainsKey(seq) : null,
        });

    /// <summary>The world outside the exchange (the reference's too): a funding account, each owner's wallet, the provider's revenue and collateral.</summary>
    private static readonly (UInt128 Id, ushort Code, long Funds)[] World =
        [(Wallet(Buyer1), 2, 50_000_000_000), (Wallet(Buyer2), 2, 50_000_000_000), (Revenue, 3, 0), (Collateral, 4, CollateralFunded)];

    private static async Task<LedgerEngine> LedgerAsync(TimeProvider time)
    {
        LedgerEngine ledger = LedgerEngine.Open(new LedgerEngineOptions(), time);
        Account[] accounts = [new() { Id = Funding, Asset = 1, Code = 1 }, .. World.Select(w => new Account { Id = w.Id, Asset = 1, Code = w.Code, Flags = AccountFlags.DebitsMustNotExceedCredits })];
        Assert.All(await ledger.CreateAccountsAsync(accounts), r => Assert.Equal(CreateAccountResult.Ok, r));
        Transfer[] fund = [.. World.Where(w => w.Funds > 0).Select((w, i) => new Transfer { Id = (UInt128)(i + 1), DebitAccountId = Funding, CreditAccountId = w.Id, Amount = w.Funds, Asset = 1, Code = 1 })];
        Assert.All(await ledger.CreateTransfersAsync(fund), r => Assert.Equal(CreateTransferResult.Ok, r));
        return ledger;
    }

    /// <summary>The clock, two buyers with 2,000 USD each, the provider with its collateral and two nodes of 16 H100s in Frankfurt.</summary>
    private static async Task SetUpAsync(ExchangePipeline p)
    {
        async Task Ok(ExchangeCommand c)
        {
            CommandOutcome o = await p.SubmitAsync(c);
            Assert.True(o.Result.Ok, $"{c.Kind}: {o.Result.Error}");
            if (o.Settlement is { } s) Assert.Equal(CreateTransferResult.Ok, s);
        }
        await Ok(ExchangeCommand.Tick());
        await Ok(new ExchangeCommand { Kind = ExchangeCommandKind.RegisterTrader, Owner = Buyer1 });
        await Ok(new ExchangeCommand { Kind = ExchangeCommandKind.RegisterTrader, Owner = Buyer2 });
        await Ok(new ExchangeCommand { Kind = ExchangeCommandKind.RegisterProvider, Owner = Provider, Account = Revenue, Account2 = Collateral, Amount = CollateralFunded });
        foreach (string name in new[] { "fra-01", "fra-02" })
            await Ok(new ExchangeCommand { Kind = ExchangeCommandKind.AdmitNode, Owner = Provider, Gpus = 16, Gpu = GpuClass.H100, Region = "frankfurt", Name = name });
        foreach (long buyer in new[] { Buyer1, Buyer2 })
            await Ok(new ExchangeCommand { Kind = ExchangeCommandKind.Deposit, Owner = buyer, Account = Wallet(buyer), Amount = 2_000_000_000 });
    }

    private Task<int[]> TradingAsync(ExchangePipeline p)
    {
        long now = Core.Clock.UnixNanoseconds(_time);
        return p.ReadAsync(sm => sm.Instruments.Active
            .Where(i => i.Gpu == GpuClass.H100 && i.Region == "frankfurt" && i.Kind == DeliveryKind.HourlySpot && i.IsTradingAt(now)).Select(i => i.Id).Take(3).ToArray());
    }

    // ================================================================== a seeded mixed stream

    /// <summary>
    /// A seeded stream of places that match, cancels, replaces, deposits, withdrawals, deliveries, outages and ticks, one
    /// command at a time; the ledger refuses the settlement of every command the seed picks (about one in six with
    /// transfers). Each is answered SettlementRefused and the exchange goes on; at the end the invariants hold, the ledger
    /// agrees with the mirror, the state is that of a fresh machine fed the journal without the refused commands, the
    /// reference exchange fed the same agrees in every balance, and restarts (from snapshots or the whole journal, twice)
    /// replay to the same state.
    /// </summary>
    [Theory]
    [InlineData(1, 0)]
    [InlineData(2, 25)]
    [InlineData(3, 0)]
    [InlineData(4, 40)]
    public async Task Refusals_in_a_mixed_stream_are_compensated_and_leave_the_state_of_a_stream_without_them(int seed, long snapshotEvery)
    {
        await using LedgerEngine ledger = await LedgerAsync(_time);
        var rng = new Random(seed);
        var refused = new List<ulong>();
        var kinds = new Dictionary<string, int>();
        byte[] hash;
        await using (ExchangePipeline p = await StartAsync(ledger, snapshotEvery))
        {
            await SetUpAsync(p);
            ulong setup = await p.ReadAsync(sm => sm.LastSeq);
            for (int n = 0; n < 220; n++)
            {
                ExchangeCommand c = await NextAsync(p, rng);
                ulong next = await p.ReadAsync(sm => sm.LastSeq) + 1; // one command at a time: its seq is the next
                bool refuse = rng.Next(6) == 0;
                if (refuse) _refuse[next] = true;
                CommandOutcome o = await p.SubmitAsync(c);
                if (o.Result.Error == ExchangeError.SettlementRefused)
                {
                    Assert.True(refuse, $"command {next} ({c.Kind}) was refused without an injected refusal");
                    Assert.Equal((long)next, o.Result.Subject);
                    Assert.Equal(RefusalDetail.LedgerRefused, o.Result.Detail);
                    Assert.Contains((CreateTransferResult)o.Result.DetailValue, new[] { CreateTransferResult.DebitAccountNotFound, CreateTransferResult.PendingTransferNotFound });
                    Assert.Empty(o.Fills);
                    refused.Add(next);
                    kinds[c.Kind.ToString()] = kinds.GetValueOrDefault(c.Kind.ToString()) + 1;
                }
                Assert.True(next > setup);
            }
            Assert.True(refused.Count >= 3, $"only {refused.Count} refusals");
            Assert.Equal((refused.Count, 0L), (p.Compensations.Count, p.FailedCommands.Count));
            Assert.Contains($"of command {refused[^1]}", p.Compensations.Last);
            Assert.Null(p.Fault);
            await CheckAsync(p, ledger);
            foreach (ulong seq in refused) Assert.Null(await p.ReadAsync(sm => sm.Order((long)seq)));
            hash = await p.ReadAsync(sm => sm.StateHash());
        }
        output.WriteLine($"seed {seed}: {refused.Count} refusals compensated ({string.Join(", ", kinds.Select(k => $"{k.Key} {k.Value}"))})");

        await CompareWithFreshMachinesAsync(ledger, refused, hash);
        _refuse.Clear();
        // Restarts: the Excluded records keep the refused commands out; twice the same; from the snapshot and from the first record.
        for (int i = 0; i < 2; i++)
            await using (ExchangePipeline p = await StartAsync(ledger, snapshotEvery: 0))
            {
                Assert.Equal(snapshotEvery > 0, p.Restored.File is not null);
                Assert.Equal(hash, await p.ReadAsync(sm => sm.StateHash()));
                await CheckAsync(p, ledger);
            }
        await using (ExchangePipeline p = await StartAsync(ledger, snapshotEvery: 0, snapshots: Path.Combine(_dir, "none")))
        {
            Assert.Null(p.Restored.File);
            Assert.Equal(hash, await p.ReadAsync(sm => sm.StateHash()));
            // And it goes on trading.
            int[] trading = await TradingAsync(p);
            Assert.True((await p.SubmitAsync(ExchangeCommand.Place(Buyer1, trading[0], Side.Buy, OrderType.Limit, TimeInForce.GoodTillCancel, 1_800_000, 1))).Result.Ok);
            await CheckAsync(p, ledger);
        }
    }

    private async Task<ExchangeCommand> NextAsync(ExchangePipeline p, Random rng)
    {
        _time.Advance(TimeSpan.FromSeconds(rng.Next(1, 90)));
        if (rng.Next(40) == 0) _time.Advance(TimeSpan.FromMinutes(rng.Next(10, 50)));
        long now = Core.Clock.UnixNanoseconds(_time);
        int[] trading = await TradingAsync(p);
        OpenOrder[] open = [.. await p.ReadAsync(sm => sm.OpenOrders())];
        LeaseView[] started = [.. await p.ReadAsync(sm => sm.Leases().Where(l => l.Status == LeaseStatus.Active && l.Start + NsPerHour <= now))];
        Node[] nodes = [.. await p.ReadAsync(sm => sm.Nodes)];
        long buyer = rng.Next(2) == 0 ? Buyer1 : Buyer2;
        long price = 1_800_000 + 50_000 * rng.Next(12);
        int roll = rng.Next(100);
        if (trading.Length == 0 || roll >= 96) return ExchangeCommand.Tick();
        int instrument = trading[rng.Next(trading.Length)];
        if (roll < 32)
        {
            TimeInForce tif = rng.Next(8) switch { 0 => TimeInForce.ImmediateOrCancel, 1 => TimeInForce.GoodTillTime, _ => TimeInForce.GoodTillCancel };
            return ExchangeCommand.Place(buyer, instrument, Side.Buy, OrderType.Limit, tif, price, rng.Next(1, 5), expiresAt: tif == TimeInForce.GoodTillTime ? now + rng.Next(60, 900) * 1_000_000_000L : 0);
        }
        if (roll < 58) return ExchangeCommand.Place(Provider, instrument, Side.Sell, OrderType.Limit, TimeInForce.GoodTillCancel, price + 50_000 * rng.Next(-2, 3), rng.Next(1, 4));
        if (roll < 68 && open.Length > 0)
        {
            OpenOrder o = open[rng.Next(open.Length)];
            return ExchangeCommand.Cancel(o.Owner, o.OrderId);
        }
        if (roll < 73 && open.Length > 0)
        {
            OpenOrder o = open[rng.Next(open.Length)];
            return ExchangeCommand.Replace(o.Owner, o.OrderId, price, rng.Next(1, 4));
        }
        if (roll < 78) return new ExchangeCommand { Kind = ExchangeCommandKind.Deposit, Owner = buyer, Account = Wallet(buyer), Amount = 50_000_000 };
        if (roll < 81) return new ExchangeCommand { Kind = ExchangeCommandKind.Withdraw, Owner = buyer, Account = Wallet(buyer), Amount = 20_000_000 };
        if (roll < 90 && started.Length > 0)
        {
            // The next hours of a lease in delivery, up to what has passed.
            LeaseView l = started[rng.Next(started.Length)];
            long delivered = l.DeliveredGpuHours / l.Gpus, passed = Math.Min((now - l.Start) / NsPerHour, (l.End - l.Start) / NsPerHour);
            if (passed > delivered)
                return new ExchangeCommand { Kind = ExchangeCommandKind.Deliver, Owner = Provider, Target = l.Id, From = l.Start + delivered * NsPerHour, To = l.Start + passed * NsPerHour };
        }
        if (roll < 93 && nodes.Length > 0)
        {
            Node node = nodes[rng.Next(nodes.Length)];
            return node.DownSince is null
                ? new ExchangeCommand { Kind = ExchangeCommandKind.Outage, Owner = Provider, Target = node.Id, From = now }
                : new ExchangeCommand { Kind = ExchangeCommandKind.NodeUp, Owner = Provider, Target = node.Id };
        }
        return ExchangeCommand.Tick();
    }

    // ================================================================== later batches in flight

    /// <summary>
    /// The ledger is held while four batches go through the state machine, so their ledger calls are issued before the
    /// first one's answers are checked: a buy (its hold refused), a sell that took it (refused with it: its chain posts that
    /// hold), an independent buy and a deposit (both applied by the ledger). Compensated, the sell trades with the older buy
    /// it now meets (its new chain sent anew), the buy's and the deposit's applied effects stand unchanged, nobody but the
    /// refused buyer sees a refusal, and the state is that of the stream without the refused buy.
    /// </summary>
    [Fact]
    public async Task A_refusal_with_later_batches_in_flight_replans_them_and_sends_what_the_ledger_did_not_apply()
    {
        await using LedgerEngine ledger = await LedgerAsync(_time);
        ulong n;
        byte[] hash;
        await using (ExchangePipeline p = await StartAsync(ledger))
        {
            await SetUpAsync(p);
            int instrument = (await TradingAsync(p))[0];
            CommandOutcome older = await p.SubmitAsync(ExchangeCommand.Place(Buyer2, instrument, Side.Buy, OrderType.Limit, TimeInForce.GoodTillCancel, 1_950_000, 2));
            Assert.Equal(OrderStatus.Resting, older.Result.Status);
            n = await p.ReadAsync(sm => sm.LastSeq) + 2; // after the deposit ahead
            _refuse[n] = true;

            CommandOutcome[] outcomes = await WithLedgerHeldAsync(ledger, p,
            [
                ExchangeCommand.Place(Buyer1, instrument, Side.Buy, OrderType.Limit, TimeInForce.GoodTillCancel, 2_000_000, 2), // n: refused
                ExchangeCommand.Place(Provider, instrument, Side.Sell, OrderType.Limit, TimeInForce.GoodTillCancel, 1_900_000, 2), // took n's buy
                ExchangeCommand.Place(Buyer2, instrument, Side.Buy, OrderType.Limit, TimeInForce.GoodTillCancel, 1_800_000, 1), // independent
                new ExchangeCommand { Kind = ExchangeCommandKind.Deposit, Owner = Buyer1, Account = Wallet(Buyer1), Amount = 70_000_000 },
            ]);
            Assert.Equal(CreateTransferResult.Ok, outcomes[0].Settlement);
            Assert.Equal(ExchangeError.SettlementRefused, outcomes[1].Result.Error);
            Assert.Equal(CreateTransferResult.DebitAccountNotFound, (CreateTransferResult)outcomes[1].Result.DetailValue);
            Assert.Contains("ledger refused", Refusals.Describe(outcomes[1].Result));
            // The sell met the older buy instead, at its price.
            Assert.Equal(OrderStatus.Filled, outcomes[2].Result.Status);
            FillRecord fill = Assert.Single(outcomes[2].Fills);
            Assert.Equal((older.Result.Subject, 1_950_000L, 2L), (fill.CounterOrderId, fill.Price, fill.Quantity));
            Assert.Equal(OrderStatus.Resting, outcomes[3].Result.Status);
            Assert.Equal(CreateTransferResult.Ok, outcomes[4].Settlement);
            Assert.Equal((1L, 0L), (p.Compensations.Count, p.FailedCommands.Count));

            await CheckAsync(p, ledger);
            Assert.Null(await p.ReadAsync(sm => sm.Order((long)n)));
            Assert.Equal(2_000_000_000 + 70_000_000, await p.ReadAsync(sm => sm.Available(Buyer1)));
            Assert.Equal(2_000_000_000 + Ahead - 2 * 1_950_000 - 1_800_000, await p.ReadAsync(sm => sm.Available(Buyer2)));
            Account[] accounts = await ledger.LookupAccountsAsync([ExchangeStateMachine.TradingAccount(Buyer1), ExchangeStateMachine.EscrowAccount]);
            Assert.Equal((0L, 0L), (accounts[0].DebitsPending, accounts[0].DebitsPosted));
            Assert.Equal(1_800_000, accounts[1].CreditsPending);
            // The independent buy's hold and the deposit were applied by the ledger before the refusal was checked (their
            // calls issued with it), and not sent again: earlier than the sell's new chain, sent by the compensation.
            UInt128 Id(ulong seq, ulong index) => ChartOfAccounts.TransferId(TransferSpace.Exchange, MachineOptions.Epoch, ExchangeStateMachine.IdOf(seq, index));
            var stamps = (await ledger.LookupTransfersAsync([Id(n + 1, 1), Id(n + 2, 1), Id(n + 3, 1)])).Select(t => t.Transfer.Timestamp).ToArray();
            Assert.Equal(3, stamps.Length);
            Assert.True(stamps[1] < stamps[0] && stamps[2] < stamps[0], $"sell {stamps[0]}, buy {stamps[1]}, deposit {stamps[2]}");

            // The exchange goes on.
            Assert.True((await p.SubmitAsync(ExchangeCommand.Place(Buyer1, instrument, Side.Buy, OrderType.Limit, TimeInForce.GoodTillCancel, 2_000_000, 1))).Result.Ok);
            await CheckAsync(p, ledger);
            hash = await p.ReadAsync(sm => sm.StateHash());
        }
        await CompareWithFreshMachinesAsync(ledger, [n], hash);
        _refuse.Clear();
        await using (ExchangePipeline p = await StartAsync(ledger))
        {
            Assert.Equal(hash, await p.ReadAsync(sm => sm.StateHash()));
            await CheckAsync(p, ledger);
        }
    }

    /// <summary>
    /// A cancel whose void the ledger refuses, while a sell in flight behind it already traded (in the ledger too) with
    /// the buy the cancel let it reach: without the cancel, the sell would have met the cancelled buy instead — a chain the
    /// ledger applied would differ. That is not compensable: the exchange stops as before, nothing journaled for it, and a
    /// restart (the refusal gone) replays both commands and agrees with the ledger.
    /// </summary>
    [Fact]
    public async Task A_refusal_after_which_an_applied_chain_would_differ_stops_the_exchange_and_a_restart_replays_cleanly()
    {
        await using LedgerEngine ledger = await LedgerAsync(_time);
        long better, worse;
        await using (ExchangePipeline p = await StartAsync(ledger))
        {
            await SetUpAsync(p);
            int instrument = (await TradingAsync(p))[0];
            better = (await p.SubmitAsync(ExchangeCommand.Place(Buyer1, instrument, Side.Buy, OrderType.Limit, TimeInForce.GoodTillCancel, 2_200_000, 1))).Result.Subject;
            worse = (await p.SubmitAsync(ExchangeCommand.Place(Buyer2, instrument, Side.Buy, OrderType.Limit, TimeInForce.GoodTillCancel, 2_000_000, 1))).Result.Subject;
            _refuse[await p.ReadAsync(sm => sm.LastSeq) + 2] = true; // the cancel, after the deposit ahead

            Task<CommandOutcome[]> both = WithLedgerHeldAsync(ledger, p,
            [
                ExchangeCommand.Cancel(Buyer1, better),
                ExchangeCommand.Place(Provider, instrument, Side.Sell, OrderType.Limit, TimeInForce.GoodTillCancel, 1_900_000, 1),
            ]);
            await Assert.ThrowsAsync<ExchangeUnavailableException>(() => both);
            Assert.NotNull(p.Fault);
            Assert.Contains("applied transfer", p.Fault!.Message);
            Assert.Equal(0, p.Compensations.Count);
            await Assert.ThrowsAsync<ExchangeUnavailableException>(async () => await p.SubmitAsync(ExchangeCommand.Tick()));
        }
        _refuse.Clear();
        await using (ExchangePipeline p = await StartAsync(ledger))
        {
            // Both replayed: the cancel's void resubmitted (taken now), the sell's chain found applied.
            Assert.Null(await p.ReadAsync(sm => sm.Order(better)));
            Assert.Null(await p.ReadAsync(sm => sm.Order(worse)));
            Assert.Equal(0, p.Compensations.Count);
            await CheckAsync(p, ledger);
            Assert.Equal(2_000_000_000 + Ahead - 2_000_000, await p.ReadAsync(sm => sm.Available(Buyer2)));
        }
    }

    /// <summary>
    /// Through <see cref="ExchangeHost"/>: a buy that traded is refused after its trade went to market data; the
    /// compensation rebuilds the market data without it, so the tape holds only the trades that stand.
    /// </summary>
    [Fact]
    public async Task A_refused_trade_leaves_the_market_data_too()
    {
        await using LedgerEngine ledger = await LedgerAsync(_time);
        InstrumentRegistry registry = Registry();
        await using ExchangeHost host = await ExchangeHost.StartAsync(ledger, registry, _time, new ExchangeHostOptions
        {
            JournalPath = Journal, StateMachine = MachineOptions,
            Pipeline = new PipelineOptions { SnapshotEveryCommands = 0, InjectLedgerRefusal = seq => _refuse.ContainsKey(seq) },
        });
        await SetUpAsync(host.Pipeline);
        int instrument = (await TradingAsync(host.Pipeline))[0];
        Assert.Equal(OrderStatus.Resting, (await host.SubmitAsync(ExchangeCommand.Place(Provider, instrument, Side.Sell, OrderType.Limit, TimeInForce.GoodTillCancel, 2_000_000, 2))).Result.Status);
        _refuse[await host.ReadAsync(sm => sm.LastSeq) + 1] = true;
        CommandOutcome refused = await host.SubmitAsync(ExchangeCommand.Place(Buyer1, instrument, Side.Buy, OrderType.Limit, TimeInForce.ImmediateOrCancel, 2_000_000, 1));
        Assert.Equal(ExchangeError.SettlementRefused, refused.Result.Error);
        CommandOutcome taken = await host.SubmitAsync(ExchangeCommand.Place(Buyer2, instrument, Side.Buy, OrderType.Limit, TimeInForce.ImmediateOrCancel, 2_000_000, 1));
        Assert.Equal(OrderStatus.Filled, taken.Result.Status);
        // Both trades reached the market data thread (the refused one before the compensation); one stands.
        await WaitAsync(() => Task.FromResult(host.TradesSeen == 2));
        Assert.Equal(1, host.ReadMarket(m => m.Tape.Count(instrument)));
        Assert.Equal(taken.Fills[0].Sequence, host.ReadMarket(m => m.Tape.Recent(instrument, 1))[0].Sequence);
        Assert.Equal(1, host.Pipeline.Compensations.Count);
        await CheckAsync(host.Pipeline, ledger);
    }

    /// <summary>
    /// Submits the commands one batch each while the ledger is held (its sequencer blocked by a read), behind a deposit
    /// whose answer the ledger stage then waits for: the later batches wait in the stage's channel, and once the ledger
    /// goes on the stage issues their calls together, before it checks the first one's answers. Returns the outcomes,
    /// the deposit's first.
    /// </summary>
    private static async Task<CommandOutcome[]> WithLedgerHeldAsync(LedgerEngine ledger, ExchangePipeline p, ExchangeCommand[] commands)
    {
        using var gate = new ManualResetEventSlim();
        Task held = ledger.ReadAsync(_ => { gate.Wait(); return 0; });
        var pending = new List<Task<CommandOutcome>>();
        try
        {
            foreach (ExchangeCommand c in commands.Prepend(new ExchangeCommand { Kind = ExchangeCommandKind.Deposit, Owner = Buyer2, Account = Wallet(Buyer2), Amount = Ahead }))
            {
                ulong before = await p.ReadAsync(sm => sm.LastSeq);
                pending.Add(p.SubmitAsync(c).AsTask());
                await WaitAsync(async () => await p.ReadAsync(sm => sm.LastSeq) > before); // applied: the next is a batch of its own
            }
        }
        finally { gate.Set(); }
        await held;
        return await Task.WhenAll(pending);
    }

    // ================================================================== checks

    /// <summary>
    /// The machine's invariants; the ledger's (debits equal credits, pending equal open holds); the escrow's pending credits
    /// are the open buys' holds, each limit × remaining; every trader's ledger balance available is its mirror; the
    /// provider's free collateral is within its collateral account.
    /// </summary>
    private static async Task CheckAsync(ExchangePipeline p, LedgerEngine ledger)
    {
        await WaitAsync(() => p.ReadAsync(sm => sm.PendingDeposits.Count == 0));
        await ledger.ReadAsync(l => { l.AssertInvariants(); return 0; });
        (OpenOrder[] open, long?[] available, long? collateral) = await p.ReadAsync(sm =>
        {
            sm.CheckInvariants();
            return (sm.OpenOrders().ToArray(), new[] { sm.Available(Buyer1), sm.Available(Buyer2), sm.Available(Provider) }, sm.CollateralAvailable(Provider));
        });
        Assert.All(open.Where(o => o.Side == Side.Buy), o => Assert.Equal(o.Price * o.Remaining, o.HoldAmount));
        UInt128[] ids = [ExchangeStateMachine.EscrowAccount, ExchangeStateMachine.TradingAccount(Buyer1), ExchangeStateMachine.TradingAccount(Buyer2),
            ExchangeStateMachine.TradingAccount(Provider), Collateral];
        Account[] a = await ledger.LookupAccountsAsync(ids);
        Assert.Equal(open.Where(o => o.Side == Side.Buy).Sum(o => o.HoldAmount), a[0].CreditsPending);
        for (int i = 0; i < 3; i++) Assert.Equal(available[i], a[1 + i].AvailableCredit);
        Assert.InRange(collateral!.Value, 0, a[4].CreditsPosted - a[4].DebitsPosted);
    }

    /// <summary>
    /// The journal read back, fed to a fresh machine without the commands its Excluded records name: the same state as the
    /// pipeline's (with a refused command fed too, a different one: the check can fail). Fed to the reference exchange
    /// over the same world: every balance of every account it knows is the real ledger's.
    /// </summary>
    private async Task CompareWithFreshMachinesAsync(LedgerEngine ledger, IReadOnlyCollection<ulong> refused, byte[] hash)
    {
        var commands = new List<ExchangeCommand>();
        using (CommandJournal.Open(Journal, batch =>
               {
                   for (int i = 0; i < batch.Commands.Count; i++) commands.Add(CommandCodec.Read(batch.Commands[i].Span, batch.FirstSeq + (ulong)i, batch.TimestampNs));
               })) { }
        var excluded = commands.Where(c => c.Kind == ExchangeCommandKind.Excluded).Select(c => (ulong)c.Target).ToHashSet();
        Assert.Equal(refused.Order(), excluded.Order());
        Assert.All(commands.Where(c => c.Kind == ExchangeCommandKind.Excluded), c => Assert.Contains((CreateTransferResult)c.Amount,
            new[] { CreateTransferResult.DebitAccountNotFound, CreateTransferResult.PendingTransferNotFound }));

        byte[] Fed(Func<ExchangeCommand, bool> keep)
        {
            ExchangeStateMachine sm = NewMachine();
            var plan = new SettlementPlan();
            var fills = new List<FillRecord>();
            foreach (ExchangeCommand c in commands.Where(keep))
            {
                plan.Clear();
                sm.Apply(in c, plan, fills);
            }
            sm.CheckInvariants();
            return sm.StateHash();
        }
        Assert.Equal(hash, Fed(c => !excluded.Contains(c.Seq)));
        // A refused place fed too: another state.
        ulong one = commands.First(c => excluded.Contains(c.Seq) && c.Kind == ExchangeCommandKind.Place).Seq;
        Assert.NotEqual(hash, Fed(c => !excluded.Contains(c.Seq) || c.Seq == one));

        var reference = new ReferenceExchange(Registry(), MachineOptions.OrdersPerBookMax, new StateMachineOptions().PenaltyBasisPoints, MachineOptions.Epoch);
        reference.CreateAccount(Funding, AccountFlags.None);
        reference.CreateAccount(ExchangeStateMachine.EscrowAccount, AccountFlags.None);
        foreach ((UInt128 id, _, long funds) in World)
        {
            reference.CreateAccount(id, AccountFlags.DebitsMustNotExceedCredits);
            if (funds > 0) reference.Post(Funding, id, funds);
        }
        foreach (ExchangeCommand c in commands.Where(c => !excluded.Contains(c.Seq))) reference.Apply(in c);
        IReadOnlyDictionary<UInt128, Balances> expected = reference.Accounts();
        UInt128[] ids = [.. expected.Keys];
        Account[] actual = await ledger.LookupAccountsAsync(ids);
        Assert.Equal(ids.Length, actual.Length);
        foreach (Account a in actual)
            Assert.Equal(expected[a.Id], new Balances(a.Asset, a.DebitsPending, a.DebitsPosted, a.CreditsPending, a.CreditsPosted));
    }

    private static async Task WaitAsync(Func<Task<bool>> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException("The condition did not hold within 10 s.");
            await Task.Delay(2);
        }
    }
}
