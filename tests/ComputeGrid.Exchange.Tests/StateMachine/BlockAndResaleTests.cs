using ComputeGrid.Core;
using ComputeGrid.Exchange.Instruments;
using ComputeGrid.Exchange.Matching;
using ComputeGrid.Exchange.StateMachine;
using ComputeGrid.Exchange.Trading;
using ComputeGrid.Ledger;

namespace ComputeGrid.Exchange.Tests.StateMachine;

/// <summary>
/// Resale and block orders on <see cref="ExchangeStateMachine"/> (ported from the old service's
/// <c>BlockOrderTests</c> and the resale case of <c>ExchangeServiceTests</c>): results, leases, plans, and the plans
/// applied to a real <see cref="LedgerStateMachine"/> whose balances are checked. The clock starts at 2026-11-26 12:00 UTC;
/// hour n is 12:00 + n hours (hour 0 delivers now and no longer trades; hourly instruments list 48 hours ahead).
/// </summary>
public sealed class BlockAndResaleTests : IDisposable
{
    private const long NsPerHour = 3_600_000_000_000L, NsPerMinute = 60_000_000_000L, Price = 2_000_000;
    private const long Provider = 11, Provider2 = 12, Buyer = 1, Buyer2 = 2;
    private static readonly UInt128 Treasury = 1;

    private readonly InstrumentRegistry _registry = new(new InstrumentSchedule([GpuClass.A100, GpuClass.H100], ["frankfurt", "tokyo"], ListingPolicy.Default));
    private readonly ExchangeStateMachine _sm;
    private readonly LedgerStateMachine _ledger = new(accountsCapacity: 256, transfersCapacity: 4096);
    private readonly SettlementPlan _plan = new();
    private readonly List<FillRecord> _fills = [];
    private readonly long _start = new DateTimeOffset(2026, 11, 26, 12, 0, 0, TimeSpan.Zero).ToUnixTimeMilliseconds() * 1_000_000;
    private ulong _seq;
    private long _now;
    private readonly List<ExchangeCommand> _applied = []; // every command, as applied: a replay applies them again
    private long _node, _node2;

    private static UInt128 Source(long owner) => (UInt128)(10_000 + owner);
    private static UInt128 Revenue(long provider) => (UInt128)(30_000 + provider);
    private static UInt128 Collateral(long provider) => (UInt128)(40_000 + provider);

    public BlockAndResaleTests() : this(1_000_000_000) { }

    private BlockAndResaleTests(long buyerFunds)
    {
        _sm = new ExchangeStateMachine(_registry, new StateMachineOptions { Epoch = 77 });
        _now = _start;
        var accounts = new List<Account>
        {
            new() { Id = Treasury, Asset = Asset.Usd.Code, Code = 1 },
            ChartOfAccounts.NewAccount(AccountCode.ExchangeEscrow, ExchangeStateMachine.EscrowAccount, Asset.Usd),
        };
        foreach (long owner in new[] { Buyer, Buyer2, Provider, Provider2 })
            accounts.Add(new Account { Id = Source(owner), Asset = Asset.Usd.Code, Code = 2, Flags = AccountFlags.DebitsMustNotExceedCredits });
        foreach (long p in new[] { Provider, Provider2 })
        {
            accounts.Add(new Account { Id = Revenue(p), Asset = Asset.Usd.Code, Code = 3, Flags = AccountFlags.DebitsMustNotExceedCredits });
            accounts.Add(new Account { Id = Collateral(p), Asset = Asset.Usd.Code, Code = 4, Flags = AccountFlags.DebitsMustNotExceedCredits });
        }
        var ar = new CreateAccountResult[accounts.Count];
        _ledger.CreateAccounts(accounts.ToArray(), _ledger.LastTimestamp + 1, ar);
        Assert.All(ar, r => Assert.Equal(CreateAccountResult.Ok, r));
        var funding = new List<Transfer>();
        foreach (long owner in new[] { Buyer, Buyer2, Provider, Provider2 })
            funding.Add(new Transfer { Id = (UInt128)(funding.Count + 1), DebitAccountId = Treasury, CreditAccountId = Source(owner), Amount = 1_000_000_000_000, Asset = Asset.Usd.Code, Code = 1 });
        foreach (long p in new[] { Provider, Provider2 })
            funding.Add(new Transfer { Id = (UInt128)(funding.Count + 1), DebitAccountId = Treasury, CreditAccountId = Collateral(p), Amount = 500_000_000, Asset = Asset.Usd.Code, Code = 1 });
        var tr = new CreateTransferResult[funding.Count];
        _ledger.CreateTransfers(funding.ToArray(), _ledger.LastTimestamp + 1, tr);
        Assert.All(tr, r => Assert.Equal(CreateTransferResult.Ok, r));

        Ok(ExchangeCommand.Tick());
        foreach (long p in new[] { Provider, Provider2 })
            Ok(new ExchangeCommand { Kind = ExchangeCommandKind.RegisterProvider, Owner = p, Account = Revenue(p), Account2 = Collateral(p), Amount = 500_000_000 });
        _node = Ok(new ExchangeCommand { Kind = ExchangeCommandKind.AdmitNode, Owner = Provider, Gpu = GpuClass.H100, Region = "frankfurt", Gpus = 12, Name = "fra-1" }).Subject;
        _node2 = Ok(new ExchangeCommand { Kind = ExchangeCommandKind.AdmitNode, Owner = Provider2, Gpu = GpuClass.H100, Region = "frankfurt", Gpus = 8, Name = "fra-p2" }).Subject;
        foreach (long t in new[] { Buyer, Buyer2 }) Ok(new ExchangeCommand { Kind = ExchangeCommandKind.RegisterTrader, Owner = t });
        foreach ((long owner, long amount) in new[] { (Buyer, buyerFunds), (Buyer2, 1_000_000_000L), (Provider2, 1_000_000_000L) })
        {
            long deposit = Ok(new ExchangeCommand { Kind = ExchangeCommandKind.Deposit, Owner = owner, Account = Source(owner), Amount = amount }).Subject;
            Ok(new ExchangeCommand { Kind = ExchangeCommandKind.TransferSettled, Target = deposit, Ok = true });
        }
    }

    public void Dispose() => _ledger.Dispose();

    // ================================================================== harness

    /// <summary>Applies a command; its plan goes to the ledger at once (every transfer must be taken); invariants checked on both sides.</summary>
    private CommandResult Apply(ExchangeCommand c)
    {
        c.Seq = ++_seq;
        c.Time = _now;
        _applied.Add(c);
        _plan.Clear();
        _fills.Clear();
        CommandResult r = _sm.Apply(in c, _plan, _fills);
        PlanLedger.Apply(_ledger, _plan);
        _sm.CheckInvariants();
        foreach (long owner in c.Kind == ExchangeCommandKind.Deposit ? [] : new[] { Buyer, Buyer2, Provider, Provider2 })
        {
            // The mirror is exactly what the ledger lets the exchange spend (but for a deposit not yet confirmed).
            if (_sm.Available(owner) is not long available) continue; // not registered yet
            Assert.True(_ledger.TryGetAccount(ExchangeStateMachine.TradingAccount(owner), out Account a));
            Assert.Equal(a.AvailableCredit, available);
        }
        return r;
    }

    private CommandResult Ok(ExchangeCommand c)
    {
        CommandResult r = Apply(c);
        Assert.True(r.Ok, $"{c.Kind}: {r.Error} {Refusals.Describe(in r)}");
        return r;
    }

    /// <summary>A refusal: it planned nothing and filled nothing.</summary>
    private CommandResult Refused(ExchangeCommand c, ExchangeError error, RefusalDetail detail = RefusalDetail.None)
    {
        CommandResult r = Apply(c);
        Assert.Equal(error, r.Error);
        Assert.Equal(detail, r.Detail);
        Assert.Equal(0, r.Fills);
        Assert.Equal(0, _plan.Transfers.Length);
        Assert.Equal(0, _plan.Accounts.Length);
        return r;
    }

    private Account Account(UInt128 id)
    {
        Assert.True(_ledger.TryGetAccount(id, out Account a));
        return a;
    }

    private long Balance(UInt128 id) => Account(id).CreditBalance;

    private Instrument Hourly(int n) => _registry.Active.Single(i => i.Kind == DeliveryKind.HourlySpot && i.Gpu == GpuClass.H100 && i.Region == "frankfurt" && i.DeliveryStart == Hour(n));

    private Instrument Daily(long deliveryStart) => _registry.Active.Single(i => i.Kind == DeliveryKind.DailyForward && i.Gpu == GpuClass.H100 && i.Region == "frankfurt" && i.DeliveryStart == deliveryStart);

    private long Hour(int n) => _start + n * NsPerHour;

    private BlockOrder Block(long owner, int fromHour, int toHour, int gpus, long maxAverage) => new(owner, GpuClass.H100, "frankfurt", Hour(fromHour), Hour(toHour), gpus, maxAverage);

    private static ExchangeCommand Command(BlockOrder b) => ExchangeCommand.Block(b.Owner, b.Gpu, b.Region, b.StartHour, b.EndHour, b.Gpus, b.MaxAveragePrice);

    private long Sell(long owner, int hour, long price, long gpus, long expiresAt = 0)
    {
        CommandResult r = Ok(ExchangeCommand.Place(owner, Hourly(hour).Id, Side.Sell, OrderType.Limit, expiresAt == 0 ? TimeInForce.GoodTillCancel : TimeInForce.GoodTillTime,
            price, gpus, expiresAt: expiresAt));
        Assert.Equal(OrderStatus.Resting, r.Status);
        return r.Subject;
    }

    /// <summary>Everything a refused command must not change: money, open orders, leases, books and lease time offered.</summary>
    private string State()
    {
        var parts = new List<string>();
        for (int i = 0; i < _ledger.AccountCount; i++)
        {
            Account a = _ledger.AccountAt(i);
            parts.Add($"{a.Id}:{a.DebitsPending}/{a.DebitsPosted}/{a.CreditsPending}/{a.CreditsPosted}");
        }
        parts.AddRange(_sm.OpenOrders().Select(o => o.ToString()));
        parts.AddRange(_sm.Leases().Select(l => $"{l.Id}:{l.Status}:{l.Gpus}:{l.Notional}:{l.Paid}:{l.Refunded}"));
        foreach (Instrument i in _registry.Active) parts.AddRange(_sm.Resting(i.Id).Select(o => $"{i.Id}={o}"));
        foreach (long owner in new[] { Buyer, Buyer2, Provider, Provider2 }) parts.Add($"{owner}:{_sm.Available(owner)}:{_sm.CollateralAvailable(owner)}");
        return string.Join("\n", parts);
    }

    [Fact]
    public void Resell_and_block_commands_round_trip_through_the_journal_codec()
    {
        ExchangeCommand[] commands =
        [
            ExchangeCommand.Resell(Buyer, 123_456_789, 42, 2_500_000, 3, TimeInForce.FillOrKill),
            ExchangeCommand.Block(Buyer2, GpuClass.A100, "tokyo", Hour(2), Hour(9), 7, 1_900_000),
        ];
        foreach (ExchangeCommand c in commands)
        {
            byte[] bytes = new byte[ComputeGrid.Exchange.Pipeline.CommandCodec.Size(in c)];
            Assert.Equal(bytes.Length, ComputeGrid.Exchange.Pipeline.CommandCodec.Write(in c, bytes));
            ExchangeCommand read = ComputeGrid.Exchange.Pipeline.CommandCodec.Read(bytes, 9, 10);
            Assert.Equal(c with { Seq = 9, Time = 10 }, read);
        }
    }

    // ================================================================== pruning ended leases

    [Fact]
    public void Ended_leases_are_pruned_40_days_after_their_delivery_whole_resale_trees_only_and_a_replay_or_a_snapshot_agrees()
    {
        // A: an hourly lease, delivered whole (completed).
        Instrument hour = Hourly(2);
        Ok(ExchangeCommand.Place(Provider, hour.Id, Side.Sell, OrderType.Limit, TimeInForce.GoodTillCancel, Price, 2));
        Ok(ExchangeCommand.Place(Buyer2, hour.Id, Side.Buy, OrderType.Limit, TimeInForce.GoodTillCancel, Price, 2));
        LeaseView a = _sm.Lease(_fills.Single().LeaseId)!;
        // P: a daily lease, an hour of it resold as C; only the first two hours are delivered: C completes, P stays active.
        Instrument day = Daily(Hour(12));
        Ok(ExchangeCommand.Place(Provider, day.Id, Side.Sell, OrderType.Limit, TimeInForce.GoodTillCancel, Price, 24));
        Ok(ExchangeCommand.Place(Buyer, day.Id, Side.Buy, OrderType.Limit, TimeInForce.GoodTillCancel, Price, 24));
        LeaseView p = _sm.Lease(_fills.Single().LeaseId)!;
        Ok(ExchangeCommand.Resell(Buyer, p.Id, Hourly(12).Id, 3_000_000, 1));
        Ok(ExchangeCommand.Place(Buyer2, Hourly(12).Id, Side.Buy, OrderType.Limit, TimeInForce.GoodTillCancel, 3_000_000, 1));
        LeaseView c = _sm.Lease(_fills.Single().LeaseId)!;
        Assert.Equal(p.Id, c.Parent);
        _now = a.End;
        Ok(new ExchangeCommand { Kind = ExchangeCommandKind.Deliver, Owner = Provider, Target = a.Id, From = a.Start, To = a.End });
        _now = p.Start + 2 * NsPerHour;
        Ok(new ExchangeCommand { Kind = ExchangeCommandKind.Deliver, Owner = Provider, Target = p.Id, From = p.Start, To = p.Start + 2 * NsPerHour });
        Assert.Equal((LeaseStatus.Completed, LeaseStatus.Completed, LeaseStatus.Active), (_sm.Lease(a.Id)!.Status, _sm.Lease(c.Id)!.Status, _sm.Lease(p.Id)!.Status));

        // Just before A's window closed 40 days ago: kept.
        const long Keep = 40 * 24 * NsPerHour;
        _now = a.End + Keep - NsPerHour;
        Ok(ExchangeCommand.Tick());
        Assert.NotNull(_sm.Lease(a.Id));
        byte[] before = _sm.WriteSnapshot();
        int snapshotAt = _applied.Count;

        // Past it: A is gone from every view; C ended too, but P (its parent, active) keeps the whole tree.
        _now = a.End + Keep + NsPerHour;
        Ok(ExchangeCommand.Tick());
        Assert.Null(_sm.Lease(a.Id));
        Assert.DoesNotContain(_sm.Leases(Buyer2), l => l.Id == a.Id);
        Assert.DoesNotContain(_sm.Leases(null, 0, 1_000), l => l.Id == a.Id);
        Assert.Contains(_sm.Leases(Buyer2), l => l.Id == c.Id);
        Assert.NotNull(_sm.Lease(p.Id));
        Assert.Equal(0, Balance(a.EscrowAccount)); // its ledger account stays, empty
        byte[] hash = _sm.StateHash();

        // A full replay of the commands, and the snapshot taken before the pruning plus the commands after it, reach the
        // same state (pruning is a function of the commands); the state hash no longer covers A.
        var replayed = new ExchangeStateMachine(new InstrumentRegistry(new InstrumentSchedule([GpuClass.A100, GpuClass.H100], ["frankfurt", "tokyo"], ListingPolicy.Default)), new StateMachineOptions { Epoch = 77 });
        foreach (ExchangeCommand x in _applied) replayed.Apply(in x, new SettlementPlan(), []);
        Assert.Equal(hash, replayed.StateHash());
        ExchangeStateMachine restored = ExchangeStateMachine.ReadSnapshot(before,
            new InstrumentRegistry(new InstrumentSchedule([GpuClass.A100, GpuClass.H100], ["frankfurt", "tokyo"], ListingPolicy.Default)), new StateMachineOptions { Epoch = 77 });
        Assert.NotNull(restored.Lease(a.Id));
        foreach (ExchangeCommand x in _applied.Skip(snapshotAt)) restored.Apply(in x, new SettlementPlan(), []);
        Assert.Equal(hash, restored.StateHash());
        Assert.Null(restored.Lease(a.Id));
        ExchangeStateMachine again = ExchangeStateMachine.ReadSnapshot(_sm.WriteSnapshot(),
            new InstrumentRegistry(new InstrumentSchedule([GpuClass.A100, GpuClass.H100], ["frankfurt", "tokyo"], ListingPolicy.Default)), new StateMachineOptions { Epoch = 77 });
        Assert.Equal(hash, again.StateHash());
        Assert.True(_sm.WriteSnapshot().Length < before.Length);

        // P delivered to its end (late): the whole tree goes at the next pruning, its window having closed 40 days ago.
        _now += NsPerHour;
        Ok(new ExchangeCommand { Kind = ExchangeCommandKind.Deliver, Owner = Provider, Target = p.Id, From = p.Start + 2 * NsPerHour, To = p.End });
        Assert.Equal(LeaseStatus.Completed, _sm.Lease(p.Id)!.Status);
        _now = p.End + Keep - NsPerHour;
        Ok(ExchangeCommand.Tick());
        Assert.NotNull(_sm.Lease(c.Id)); // C's window closed 40 days ago, P's not yet: the tree stays whole
        _now = p.End + Keep + NsPerHour;
        Ok(ExchangeCommand.Tick());
        Assert.Null(_sm.Lease(p.Id));
        Assert.Null(_sm.Lease(c.Id));
        _sm.CheckInvariants();
    }

    // ================================================================== resale

    [Fact]
    public void A_buyer_resells_part_of_a_daily_lease_hour_by_hour_and_is_paid_when_the_provider_delivers()
    {
        Instrument day = Daily(Hour(12)); // 2026-11-27
        Ok(ExchangeCommand.Place(Provider, day.Id, Side.Sell, OrderType.Limit, TimeInForce.GoodTillCancel, Price, 2 * 24));
        CommandResult buy = Ok(ExchangeCommand.Place(Buyer, day.Id, Side.Buy, OrderType.Limit, TimeInForce.GoodTillCancel, Price, 2 * 24));
        LeaseView parent = _sm.Lease(_fills.Single().LeaseId)!;
        Assert.Equal(OrderStatus.Filled, buy.Status);

        // Hourly instruments list 48 h ahead, so the day's first hour already trades: resell it.
        Instrument hour = Hourly(12);
        CommandResult resale = Ok(ExchangeCommand.Resell(Buyer, parent.Id, hour.Id, 3_000_000, 2));
        Assert.Equal((OrderStatus.Resting, 2L, resale.Subject), (resale.Status, resale.Remaining, (long)_seq));
        Assert.Empty(_plan.Transfers.ToArray()); // a sell holds no money
        Assert.Equal(parent.Id, _sm.Order(resale.Subject)!.LeaseId);
        // Both GPUs of that hour are offered: nothing more of it can be.
        CommandResult tooMuch = Refused(ExchangeCommand.Resell(Buyer, parent.Id, hour.Id, 3_000_000, 1), ExchangeError.InsufficientCapacity, RefusalDetail.LeaseTimeShort);
        Assert.Equal(0, tooMuch.DetailValue);
        Assert.Contains("0 GPUs", Refusals.Describe(in tooMuch));
        // The next hour is still free.
        Ok(ExchangeCommand.Resell(Buyer, parent.Id, Hourly(13).Id, 3_000_000, 1));

        CommandResult buy2 = Ok(ExchangeCommand.Place(Buyer2, hour.Id, Side.Buy, OrderType.Limit, TimeInForce.GoodTillCancel, 3_000_000, 2));
        Assert.Equal(OrderStatus.Filled, buy2.Status);
        FillRecord fill = _fills.Single();
        Assert.Equal((buy2.Subject, resale.Subject, 3_000_000L, 2L), (fill.OrderId, fill.CounterOrderId, fill.Price, fill.Quantity));
        LeaseView child = _sm.Lease(fill.LeaseId)!;
        Assert.Equal((parent.Id, Buyer2, Buyer, Provider, 2, 6_000_000L, 0L), (child.Parent, child.Buyer, child.Payee, child.Provider, child.Gpus, child.Notional, child.PenaltyReserve));
        Assert.Equal(parent.Nodes, child.Nodes);
        Assert.Equal((hour.DeliveryStart, hour.DeliveryEnd), (child.Start, child.End));
        Assert.Equal(6_000_000, Balance(child.EscrowAccount));
        Assert.Null(_sm.Order(resale.Subject)); // filled
        Assert.Contains(_sm.Leases(Buyer), l => l.Id == child.Id); // the reseller sees the lease it is paid for

        long resellerBefore = Balance(ExchangeStateMachine.TradingAccount(Buyer));
        // The provider delivers the first two hours of the day: it is paid from the parent lease, the reseller from the child.
        _now = parent.Start + 2 * NsPerHour;
        Ok(new ExchangeCommand { Kind = ExchangeCommandKind.Deliver, Owner = Provider, Target = parent.Id, From = parent.Start, To = parent.Start + 2 * NsPerHour });
        child = _sm.Lease(child.Id)!;
        Assert.Equal((LeaseStatus.Completed, 6_000_000L, 2L), (child.Status, child.Paid, child.DeliveredGpuHours));
        Assert.Equal(resellerBefore + 6_000_000, Balance(ExchangeStateMachine.TradingAccount(Buyer)));
        Assert.Equal(Price * 2 * 2, Balance(Revenue(Provider)));
        Assert.Equal(0, Balance(child.EscrowAccount));
        Assert.Equal(LeaseStatus.Active, _sm.Lease(parent.Id)!.Status);
    }

    [Fact]
    public void Resale_is_refused_for_what_the_lease_does_not_cover_and_the_refusal_changes_nothing()
    {
        Ok(ExchangeCommand.Place(Provider, Hourly(3).Id, Side.Sell, OrderType.Limit, TimeInForce.GoodTillCancel, Price, 2));
        Ok(ExchangeCommand.Place(Buyer, Hourly(3).Id, Side.Buy, OrderType.Limit, TimeInForce.GoodTillCancel, Price, 2));
        long lease = _fills.Single().LeaseId;
        string before = State();
        Refused(ExchangeCommand.Resell(Buyer, 424_242, Hourly(3).Id, Price, 1), ExchangeError.UnknownLease);
        Refused(ExchangeCommand.Resell(Buyer2, lease, Hourly(3).Id, Price, 1), ExchangeError.NotOwner);
        Assert.Equal(lease, Refused(ExchangeCommand.Resell(Buyer, lease, Hourly(4).Id, Price, 1), ExchangeError.InsufficientCapacity, RefusalDetail.LeaseDoesNotCover).DetailValue);
        Instrument tokyo = _registry.Active.First(i => i.Kind == DeliveryKind.HourlySpot && i.Gpu == GpuClass.H100 && i.Region == "tokyo" && i.DeliveryStart == Hour(3));
        Refused(ExchangeCommand.Resell(Buyer, lease, tokyo.Id, Price, 1), ExchangeError.InsufficientCapacity, RefusalDetail.LeaseDoesNotCover);
        Refused(ExchangeCommand.Resell(Buyer, lease, Hourly(3).Id, Price, 3), ExchangeError.InsufficientCapacity, RefusalDetail.LeaseTimeShort);
        Refused(ExchangeCommand.Resell(Buyer, lease, Hourly(3).Id, Price, 1, TimeInForce.GoodTillTime), ExchangeError.InvalidRequest);
        Refused(ExchangeCommand.Resell(Buyer, lease, Hourly(3).Id, Price + 1, 1), ExchangeError.BookRejected, RefusalDetail.PriceOffBand);
        Refused(ExchangeCommand.Resell(Buyer, lease, Hourly(3).Id, Price, 0), ExchangeError.QuantityMustBeWholeGpus, RefusalDetail.NotWholeGpus);
        Refused(ExchangeCommand.Resell(Buyer, lease, Hourly(3).Id, Price, 1, TimeInForce.FillOrKill), ExchangeError.BookRejected, RefusalDetail.FillOrKillUnfillable);
        Assert.Equal(before, State());

        // An immediate-or-cancel resale with nothing to meet gives the time straight back; then all of it can rest.
        CommandResult ioc = Ok(ExchangeCommand.Resell(Buyer, lease, Hourly(3).Id, Price, 2, TimeInForce.ImmediateOrCancel));
        Assert.Equal(OrderStatus.Cancelled, ioc.Status);
        long resting = Ok(ExchangeCommand.Resell(Buyer, lease, Hourly(3).Id, Price, 1)).Subject;
        // Replace: more than the lease has is refused; less gives time back; a cancel gives the rest back.
        Refused(ExchangeCommand.Replace(Buyer, resting, Price, 3), ExchangeError.InsufficientCapacity, RefusalDetail.LeaseTimeShort);
        Ok(ExchangeCommand.Replace(Buyer, resting, Price, 2));
        Refused(ExchangeCommand.Resell(Buyer, lease, Hourly(3).Id, Price, 1), ExchangeError.InsufficientCapacity, RefusalDetail.LeaseTimeShort);
        Ok(ExchangeCommand.Replace(Buyer, resting, Price, 1));
        Ok(ExchangeCommand.Resell(Buyer, lease, Hourly(3).Id, Price, 1));
        Assert.Equal(OrderStatus.Cancelled, Ok(ExchangeCommand.Cancel(Buyer, resting)).Status);
        Ok(ExchangeCommand.Resell(Buyer, lease, Hourly(3).Id, Price, 1));
        // A provider's own capacity is not touched by resale: it still has 10 of its 12 GPUs free in that hour.
        Refused(ExchangeCommand.Place(Provider, Hourly(3).Id, Side.Sell, OrderType.Limit, TimeInForce.GoodTillCancel, Price, 11), ExchangeError.InsufficientCapacity, RefusalDetail.CapacityShort);
        Ok(ExchangeCommand.Place(Provider, Hourly(3).Id, Side.Sell, OrderType.Limit, TimeInForce.GoodTillCancel, Price, 10));
    }

    [Fact]
    public void When_the_resold_lease_fails_the_leases_resold_from_it_are_refunded_and_its_resting_resale_sells_cancelled()
    {
        Instrument day = Daily(Hour(12));
        Ok(ExchangeCommand.Place(Provider, day.Id, Side.Sell, OrderType.Limit, TimeInForce.GoodTillCancel, Price, 2 * 24));
        Ok(ExchangeCommand.Place(Buyer, day.Id, Side.Buy, OrderType.Limit, TimeInForce.GoodTillCancel, Price, 2 * 24));
        LeaseView parent = _sm.Lease(_fills.Single().LeaseId)!;
        // The day has begun (00:30): hour 02 still trades. One GPU of it is resold, the other rests for resale.
        _now = parent.Start + 30 * NsPerMinute;
        Ok(ExchangeCommand.Tick());
        Instrument two = Hourly(14);
        long sell = Ok(ExchangeCommand.Resell(Buyer, parent.Id, two.Id, 2_500_000, 2)).Subject;
        Ok(ExchangeCommand.Place(Buyer2, two.Id, Side.Buy, OrderType.Limit, TimeInForce.ImmediateOrCancel, 2_500_000, 1));
        LeaseView child = _sm.Lease(_fills.Single().LeaseId)!;
        long buyer2Before = Balance(ExchangeStateMachine.TradingAccount(Buyer2));
        long collateralBefore = Balance(Collateral(Provider));

        CommandResult outage = Ok(new ExchangeCommand { Kind = ExchangeCommandKind.Outage, Owner = Provider, Target = _node });
        Assert.Equal(_node, outage.Subject);
        parent = _sm.Lease(parent.Id)!;
        child = _sm.Lease(child.Id)!;
        Assert.Equal(LeaseStatus.Failed, parent.Status);
        Assert.True(parent.Penalty > 0);
        Assert.Equal((LeaseStatus.Failed, child.Notional, 0L, 0L), (child.Status, child.Refunded, child.Penalty, child.PenaltyShortfall));
        Assert.Equal(buyer2Before + child.Notional, Balance(ExchangeStateMachine.TradingAccount(Buyer2))); // refunded, no penalty from the reseller
        Assert.Equal(collateralBefore - parent.Penalty, Balance(Collateral(Provider)));                // only the parent's penalty
        Assert.Equal(0, Balance(child.EscrowAccount));
        Assert.Null(_sm.Order(sell));
        Assert.Equal((OrderEndReason.LeaseEnded, parent.Id), _sm.EndOf(sell));
        Assert.Empty(_sm.Resting(two.Id));
        Refused(ExchangeCommand.Resell(Buyer, parent.Id, Hourly(15).Id, 2_500_000, 1), ExchangeError.InsufficientCapacity, RefusalDetail.LeaseNotActive);
    }

    // ================================================================== blocks

    private void AssertSameQuote(BlockQuote expected, BlockQuote actual)
    {
        Assert.Equal((expected.Fillable, expected.TotalCost, expected.AveragePrice), (actual.Fillable, actual.TotalCost, actual.AveragePrice));
        Assert.Equal(expected.Legs, actual.Legs);
        Assert.Equal(expected.Short, actual.Short);
    }

    [Fact]
    public void A_quote_lists_each_hours_leg_and_the_short_windows_and_changes_nothing()
    {
        // Hour 1: two makers cover the block (and a bid, which a block never counts).
        Sell(Provider, 1, 2_000_000, 2);
        Sell(Provider, 1, 2_100_000, 3);
        Ok(ExchangeCommand.Place(Buyer, Hourly(1).Id, Side.Buy, OrderType.Limit, TimeInForce.GoodTillCancel, 1_000_000, 5));
        // Hour 2: no asks at all. Hour 3: only the block owner's own asks.
        Sell(Provider2, 3, 1_900_000, 4);
        // Hour 4: one GPU from another maker, then the owner's own ask, then plenty more behind it: self-trade
        // prevention stops a taker at its own order, so only the first GPU is reachable.
        Sell(Provider, 4, 1_800_000, 1);
        Sell(Provider2, 4, 1_900_000, 1);
        Sell(Provider, 4, 2_000_000, 4);
        string before = State();

        // Hours 0..4 for 4 GPUs, as provider 2 (hour 0 is delivering now: its instrument no longer trades).
        BlockOrder block = Block(Provider2, 0, 5, 4, 3_000_000);
        BlockQuote q = _sm.QuoteBlock(block, _now);
        Assert.False(q.Fillable);
        Assert.Equal(new[]
        {
            new BlockLeg(Hour(1), Hourly(1).Id, Hourly(1).Symbol, 4, 2 * 2_000_000 + 2 * 2_100_000, 2_100_000, 2),
            new BlockLeg(Hour(2), Hourly(2).Id, Hourly(2).Symbol, 0, 0, 0, 0),
            new BlockLeg(Hour(3), Hourly(3).Id, Hourly(3).Symbol, 0, 0, 0, 0),
            new BlockLeg(Hour(4), Hourly(4).Id, Hourly(4).Symbol, 1, 1_800_000, 1_800_000, 1),
        }, q.Legs);
        Assert.Equal(new[]
        {
            new ShortWindow(Hour(0), Hour(1), 0, ShortReason.NotTrading),
            new ShortWindow(Hour(2), Hour(4), 0, ShortReason.NotEnoughOffered), // hours 2 and 3 merge: same reason, same availability
            new ShortWindow(Hour(4), Hour(5), 1, ShortReason.NotEnoughOffered),
        }, q.Short);
        Assert.Equal((10_000_000L, 2_000_000L), (q.TotalCost, q.AveragePrice)); // the average over the 5 GPU-hours available
        Assert.Equal(before, State());

        // Another owner's view of the same books: provider 2's asks count for it.
        BlockQuote q2 = _sm.QuoteBlock(Block(Buyer, 3, 5, 4, 3_000_000), _now);
        Assert.True(q2.Fillable);
        Assert.Equal(4 * 1_900_000 + (1_800_000 + 1_900_000 + 2 * 2_000_000), q2.TotalCost);
        Assert.Equal(new[] { 1, 3 }, q2.Legs.Select(l => l.Makers));

        // Placing the short block is refused, naming the first hour not trading, and changes nothing.
        CommandResult r = Refused(Command(block), ExchangeError.InstrumentNotTrading, RefusalDetail.BlockNotTrading);
        Assert.Equal(Hour(0), r.DetailValue);
        Assert.Equal(0, r.Cost);
        Assert.Equal(before, State());
        // Without hour 0 it is short in hour 2.
        Assert.Equal(Hour(2), Refused(Command(Block(Provider2, 1, 5, 4, 3_000_000)), ExchangeError.BookRejected, RefusalDetail.BlockShort).DetailValue);
        Assert.Equal(before, State());
    }

    /// <summary>Hours 2..4 for 5 GPUs: five makers over three hours, total 31.0 USD, average 2.0666… USD per GPU-hour.</summary>
    private void SeedThreeHours()
    {
        Sell(Provider, 2, 2_000_000, 3);
        Sell(Provider2, 2, 2_100_000, 4);
        Sell(Provider, 3, 2_200_000, 5);
        Sell(Provider2, 4, 1_900_000, 2);
        Sell(Provider, 4, 2_000_000, 3);
        Sell(Provider, 4, 2_500_000, 2);
    }

    private const long SeededTotal = 3 * 2_000_000 + 2 * 2_100_000 + 5 * 2_200_000 + 2 * 1_900_000 + 3 * 2_000_000;
    private const long SeededAverage = (SeededTotal + 14) / 15; // rounded up: 2_066_667

    [Fact]
    public void A_fillable_block_fills_every_hour_at_once_one_lease_per_maker_and_pays_exactly_the_quote()
    {
        SeedThreeHours();
        long balance = Balance(ExchangeStateMachine.TradingAccount(Buyer));
        BlockOrder block = Block(Buyer, 2, 5, 5, SeededAverage); // the limit is exactly the average: allowed
        BlockQuote q = _sm.QuoteBlock(block, _now);
        Assert.True(q.Fillable);
        Assert.Empty(q.Short);
        Assert.Equal((SeededTotal, SeededAverage), (q.TotalCost, q.AveragePrice));

        CommandResult r = Ok(Command(block));
        long blockId = (long)_seq;
        Assert.Equal((blockId, OrderStatus.Filled, SeededTotal, 0L), (r.Subject, r.Status, r.Cost, r.Remaining));
        Assert.Equal(SeededAverage, (r.Cost + 14) / 15);

        // One fill and one lease per maker per hour: 2 + 1 + 2, in hour then price-time order.
        Assert.Equal(5, r.Fills);
        Assert.All(_fills, f => Assert.Equal((blockId, Side.Buy), (f.OrderId, f.TakerSide)));
        LeaseView[] leases = _fills.Select(f => _sm.Lease(f.LeaseId)!).ToArray();
        Assert.Equal(new[] { (2, 3, 2_000_000L), (2, 2, 2_100_000L), (3, 5, 2_200_000L), (4, 2, 1_900_000L), (4, 3, 2_000_000L) },
            leases.Select(l => ((int)((l.Start - Hour(0)) / NsPerHour), l.Gpus, l.Price)));
        Assert.Equal(new[] { Provider, Provider2, Provider, Provider2, Provider }, leases.Select(l => l.Provider));
        Assert.All(leases, l => Assert.Equal((Buyer, NsPerHour), (l.Buyer, l.End - l.Start)));
        Assert.Equal(SeededTotal, leases.Sum(l => l.Notional));
        foreach (LeaseView l in leases) Assert.Equal(l.Notional, Balance(l.EscrowAccount));

        // The plan: one hold of the whole quote, then its post for what was traded, then one funding per lease, one chain.
        Transfer[] t = _plan.Transfers.ToArray();
        Assert.Equal(7, t.Length);
        Assert.Equal((TransferFlags.Pending | TransferFlags.Linked, SeededTotal, (ulong)blockId), (t[0].Flags, t[0].Amount, t[0].UserData64));
        Assert.Equal((t[0].Id, SeededTotal, TransferFlags.PostPendingTransfer | TransferFlags.Linked), (t[1].PendingId, t[1].Amount, t[1].Flags));
        Assert.Equal(leases.Select(l => (l.EscrowAccount, l.Notional)), t.Skip(2).Select(x => (x.CreditAccountId, x.Amount)));
        Assert.Equal(TransferFlags.None, t[^1].Flags);
        Assert.Equal(5, _plan.Accounts.Length);

        // The buyer paid exactly the quote and holds nothing; the order escrow passed everything on.
        Assert.Equal(balance - SeededTotal, Balance(ExchangeStateMachine.TradingAccount(Buyer)));
        Assert.Equal(0, Account(ExchangeStateMachine.TradingAccount(Buyer)).DebitsPending);
        Account escrow = Account(ExchangeStateMachine.EscrowAccount);
        Assert.Equal((0L, escrow.CreditsPosted), (escrow.CreditsPending, escrow.DebitsPosted));

        // What the block did not need still rests; filled makers are gone; capacity went to the leases.
        Assert.Equal(new[] { (Hourly(2).Id, Provider2, 2L, 2_100_000L), (Hourly(4).Id, Provider, 2L, 2_500_000L) },
            _sm.OpenOrders().Select(o => (o.Instrument, o.Owner, o.Remaining, o.Price)));
        Assert.Equal(new[] { (_node, 3) }, leases[0].Nodes);
        Assert.Equal(new[] { (_node, 5) }, leases[2].Nodes);
        Assert.Equal(new[] { (_node2, 2) }, leases[1].Nodes);

        // The same block again is short now, and the hours' leases deliver like any other.
        Refused(Command(block with { Owner = Buyer2 }), ExchangeError.BookRejected, RefusalDetail.BlockShort);
        _now = leases.Max(l => l.End);
        foreach (LeaseView l in leases) Ok(new ExchangeCommand { Kind = ExchangeCommandKind.Deliver, Owner = l.Provider, Target = l.Id, From = l.Start, To = l.End });
        Assert.Equal(3 * 2_000_000 + 5 * 2_200_000 + 3 * 2_000_000, Balance(Revenue(Provider)));
        Assert.Equal(2 * 2_100_000 + 2 * 1_900_000, Balance(Revenue(Provider2)));
    }

    [Fact]
    public void A_block_above_its_average_limit_is_refused_and_changes_nothing()
    {
        SeedThreeHours();
        string before = State();
        CommandResult r = Refused(Command(Block(Buyer, 2, 5, 5, SeededAverage - 1)), ExchangeError.BookRejected, RefusalDetail.BlockAboveLimit);
        Assert.Equal(SeededAverage, r.DetailValue);
        Assert.Contains($"{SeededAverage}", Refusals.Describe(in r));
        Assert.Equal(before, State());
    }

    [Fact]
    public void A_block_short_in_one_hour_is_refused_and_changes_nothing_not_even_capacity()
    {
        SeedThreeHours();
        string before = State();
        // Six GPUs: hours 2 and 4 have 7 (to the buyer), hour 3 only 5.
        BlockOrder block = Block(Buyer, 2, 5, 6, 10_000_000);
        Assert.Equal(new[] { new ShortWindow(Hour(3), Hour(4), 5, ShortReason.NotEnoughOffered) }, _sm.QuoteBlock(block, _now).Short);
        Assert.Equal(Hour(3), Refused(Command(block), ExchangeError.BookRejected, RefusalDetail.BlockShort).DetailValue);
        Assert.Equal(before, State());
        // Capacity is untouched: in hour 3 the provider has 12 GPUs with 5 offered, so exactly 7 more can be offered.
        Refused(ExchangeCommand.Place(Provider, Hourly(3).Id, Side.Sell, OrderType.Limit, TimeInForce.GoodTillCancel, 3_000_000, 8), ExchangeError.InsufficientCapacity, RefusalDetail.CapacityShort);
        Sell(Provider, 3, 3_000_000, 7);
    }

    [Fact]
    public void A_block_the_balance_cannot_hold_is_refused_and_changes_nothing()
    {
        using var t = new BlockAndResaleTests(buyerFunds: SeededTotal - 1);
        t.SeedThreeHours();
        string before = t.State();
        CommandResult r = t.Refused(Command(t.Block(Buyer, 2, 5, 5, 3_000_000)), ExchangeError.InsufficientBalance, RefusalDetail.BalanceShort);
        Assert.Equal(SeededTotal - 1, r.DetailValue);
        Assert.Equal(before, t.State());

        // With exactly enough it fills, and the account ends at zero with nothing pending.
        long deposit = t.Ok(new ExchangeCommand { Kind = ExchangeCommandKind.Deposit, Owner = Buyer, Account = Source(Buyer), Amount = 1 }).Subject;
        t.Ok(new ExchangeCommand { Kind = ExchangeCommandKind.TransferSettled, Target = deposit, Ok = true });
        Assert.Equal(SeededTotal, t.Ok(Command(t.Block(Buyer, 2, 5, 5, 3_000_000))).Cost);
        Account buyer = t.Account(ExchangeStateMachine.TradingAccount(Buyer));
        Assert.Equal((0L, 0L), (buyer.CreditBalance, buyer.DebitsPending));
        Assert.Equal(0, t._sm.Available(Buyer));
    }

    [Fact]
    public void Expired_good_till_time_asks_are_neither_quoted_nor_traded_and_their_capacity_is_released()
    {
        long gtt = Sell(Provider, 2, 1_500_000, 4, expiresAt: _now + 10 * NsPerMinute);
        Sell(Provider, 2, 2_000_000, 4);
        Sell(Provider2, 2, 2_000_000, 4);
        _now += 15 * NsPerMinute; // the cheap ask has expired, but no command touched its book yet

        BlockOrder block = Block(Buyer, 2, 3, 6, 2_000_000);
        BlockQuote q = _sm.QuoteBlock(block, _now);
        Assert.True(q.Fillable);
        Assert.Equal(6 * 2_000_000, q.TotalCost);
        CommandResult r = Ok(Command(block));
        Assert.Equal(6 * 2_000_000, r.Cost);
        Assert.Equal(new[] { 4, 2 }, _fills.Select(f => (int)f.Quantity));
        Assert.Null(_sm.Order(gtt));
        // 12 GPUs: 4 leased, none committed by the expired order, so 8 can be offered again.
        Refused(ExchangeCommand.Place(Provider, Hourly(2).Id, Side.Sell, OrderType.Limit, TimeInForce.GoodTillCancel, 2_500_000, 9), ExchangeError.InsufficientCapacity, RefusalDetail.CapacityShort);
        Sell(Provider, 2, 2_500_000, 8);
    }

    [Fact]
    public void Malformed_blocks_get_a_clear_error_and_quotes_of_them_throw()
    {
        SeedThreeHours();
        string before = State();
        BlockOrder good = Block(Buyer, 2, 5, 5, 3_000_000);
        var cases = new (BlockOrder Block, ExchangeError Error, BlockRule Rule)[]
        {
            (good with { Owner = 77 }, ExchangeError.UnknownTrader, BlockRule.None),
            (good with { Gpus = 0 }, ExchangeError.InvalidRequest, BlockRule.GpusNotPositive),
            (good with { MaxAveragePrice = 0 }, ExchangeError.InvalidRequest, BlockRule.LimitNotPositive),
            (good with { Region = "atlantis" }, ExchangeError.InvalidRequest, BlockRule.UnknownRegion),
            (good with { Gpu = (GpuClass)200 }, ExchangeError.InvalidRequest, BlockRule.UnknownGpuClass),
            (good with { StartHour = good.StartHour + 1 }, ExchangeError.InvalidRequest, BlockRule.NotWholeHours),
            (good with { EndHour = good.EndHour - NsPerMinute }, ExchangeError.InvalidRequest, BlockRule.NotWholeHours),
            (good with { EndHour = good.StartHour }, ExchangeError.InvalidRequest, BlockRule.EndNotAfterStart),
            (good with { EndHour = good.StartHour + (ExchangeStateMachine.BlockHoursMax + 1) * NsPerHour }, ExchangeError.InvalidRequest, BlockRule.TooLong),
            (good with { StartHour = long.MinValue + 8 * NsPerHour - long.MinValue % NsPerHour }, ExchangeError.InvalidRequest, BlockRule.TooLong),
            (good with { Gpus = int.MaxValue, EndHour = good.StartHour + ExchangeStateMachine.BlockHoursMax * NsPerHour }, ExchangeError.NotionalOverflows, BlockRule.NotionalOverflows),
        };
        foreach ((BlockOrder block, ExchangeError error, BlockRule rule) in cases)
        {
            CommandResult r = Refused(Command(block), error, rule == BlockRule.None ? RefusalDetail.None : RefusalDetail.BlockInvalid);
            Assert.Equal((long)rule, r.DetailValue);
            if (rule != BlockRule.None)
            {
                Assert.False(string.IsNullOrEmpty(Refusals.Describe(in r)));
                Assert.Throws<ArgumentException>(() => _sm.QuoteBlock(block, _now));
            }
        }
        // A full 31-day window is well-formed: most of it is not listed yet, so it is short and not trading.
        BlockOrder month = good with { EndHour = good.StartHour + ExchangeStateMachine.BlockHoursMax * NsPerHour };
        Refused(Command(month), ExchangeError.InstrumentNotTrading, RefusalDetail.BlockNotTrading);
        // Hourly instruments list 48 hours ahead: through the hour starting at 12:00 + 48 h.
        ShortWindow notTrading = _sm.QuoteBlock(month, _now).Short.Single(s => s.Reason == ShortReason.NotTrading);
        Assert.Equal((Hour(49), month.EndHour), (notTrading.Start, notTrading.End));
        Assert.Equal(before, State());
    }

    [Fact]
    public void A_block_buys_resold_lease_time_like_any_ask_and_the_reseller_is_paid()
    {
        Instrument day = Daily(Hour(12));
        Ok(ExchangeCommand.Place(Provider, day.Id, Side.Sell, OrderType.Limit, TimeInForce.GoodTillCancel, Price, 24));
        Ok(ExchangeCommand.Place(Buyer2, day.Id, Side.Buy, OrderType.Limit, TimeInForce.GoodTillCancel, Price, 24));
        LeaseView parent = _sm.Lease(_fills.Single().LeaseId)!;
        long resale = Ok(ExchangeCommand.Resell(Buyer2, parent.Id, Hourly(12).Id, 1_800_000, 1)).Subject;
        Sell(Provider2, 13, 1_900_000, 1);
        CommandResult r = Ok(Command(Block(Buyer, 12, 14, 1, 1_850_000)));
        Assert.Equal(3_700_000, r.Cost);
        LeaseView child = _sm.Lease(_fills[0].LeaseId)!;
        Assert.Equal((resale, parent.Id, Buyer2, Buyer), (_fills[0].CounterOrderId, child.Parent, child.Payee, child.Buyer));
        _now = child.End;
        Ok(new ExchangeCommand { Kind = ExchangeCommandKind.Deliver, Owner = Provider, Target = parent.Id, From = parent.Start, To = child.End });
        Assert.Equal(LeaseStatus.Completed, _sm.Lease(child.Id)!.Status);
        Assert.Equal(1_800_000, Balance(ExchangeStateMachine.TradingAccount(Buyer2)) - (1_000_000_000 - Price * 24));
    }

    [Fact]
    public void Random_books_and_blocks_either_fill_exactly_as_quoted_or_change_nothing()
    {
        var rng = new Random(2026);
        long[] owners = [Buyer, Buyer2, Provider2];
        long[] sellers = [Provider, Provider2];
        int filled = 0, refused = 0;
        for (int step = 0; step < 150; step++)
        {
            // Some liquidity: small asks by either provider in hours 1..6 (as capacity allows).
            for (int k = rng.Next(4); k > 0; k--)
            {
                long seller = sellers[rng.Next(sellers.Length)];
                Apply(ExchangeCommand.Place(seller, Hourly(1 + rng.Next(6)).Id, Side.Sell, OrderType.Limit, TimeInForce.GoodTillCancel, 1_500_000 + rng.Next(0, 11) * 100_000, 1 + rng.Next(3)));
            }
            int from = 1 + rng.Next(6), to = from + 1 + rng.Next(7 - from);
            BlockOrder block = Block(owners[rng.Next(owners.Length)], from, to, 1 + rng.Next(4), 1_500_000 + rng.Next(0, 11) * 100_000);
            UInt128 account = ExchangeStateMachine.TradingAccount(block.Owner);
            long balance = Balance(account);
            string before = State();
            BlockQuote q = _sm.QuoteBlock(block, _now);
            CommandResult r = Apply(Command(block));
            if (r.Ok)
            {
                filled++;
                Assert.True(q.Fillable && q.AveragePrice <= block.MaxAveragePrice);
                Assert.Equal(q.TotalCost, r.Cost);
                Assert.Equal(q.Legs.Sum(l => l.Makers), r.Fills);
                Assert.Equal(balance - q.TotalCost, Balance(account));
                Assert.Equal(0, Account(account).DebitsPending);
                Assert.All(_fills, f => Assert.NotEqual(block.Owner, _sm.Lease(f.LeaseId)!.Provider)); // never traded with itself
            }
            else
            {
                refused++;
                Assert.True(!q.Fillable || q.AveragePrice > block.MaxAveragePrice || _sm.Available(block.Owner) < q.TotalCost);
                Assert.Equal(before, State());
            }
        }
        Assert.True(filled > 10, $"only {filled} blocks filled");
        Assert.True(refused > 10, $"only {refused} blocks refused");
    }
}
