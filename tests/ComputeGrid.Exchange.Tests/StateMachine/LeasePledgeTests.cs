using ComputeGrid.Core;
using ComputeGrid.Exchange.Instruments;
using ComputeGrid.Exchange.Matching;
using ComputeGrid.Exchange.StateMachine;
using ComputeGrid.Exchange.Trading;
using ComputeGrid.Ledger;

namespace ComputeGrid.Exchange.Tests.StateMachine;

/// <summary>
/// Leases pledged as collateral on <see cref="ExchangeStateMachine"/>, every plan applied to a real
/// <see cref="LedgerStateMachine"/> (every transfer must be taken) with the invariants of both and the trading accounts'
/// mirrors checked after each command: a pledge within the loan-to-value at the lease instrument's VWAP, a pledged lease
/// that cannot be resold or pledged again, a price fall that liquidates it through the book (the resale path) and is repaid
/// from the sold time's payment, a lease that runs down in delivery into liquidation and a write-off, a failed lease whose
/// refund repays the loan first, and snapshot and replay agreeing on the state. The clock starts at 2026-11-26 12:00 UTC;
/// hour n is 12:00 + n hours.
/// </summary>
public sealed class LeasePledgeTests : IDisposable
{
    private const long NsPerHour = 3_600_000_000_000L, NsPerMinute = 60_000_000_000L, Price = 2_000_000;
    private const long Provider = 11, Borrower = 1, Bidder = 2;
    private static readonly UInt128 Treasury = 1;
    private static readonly UInt128 Pool = ChartOfAccounts.SystemAccount(AccountCode.LendingPool, Asset.Usd);

    private readonly ExchangeStateMachine _sm;
    private readonly InstrumentRegistry _registry = NewRegistry();
    private readonly LedgerStateMachine _ledger = new(accountsCapacity: 256, transfersCapacity: 4096);
    private readonly SettlementPlan _plan = new();
    private readonly List<FillRecord> _fills = [];
    private readonly List<ExchangeCommand> _applied = []; // every command, as applied: a replay applies them again
    private readonly long _start = new DateTimeOffset(2026, 11, 26, 12, 0, 0, TimeSpan.Zero).ToUnixTimeMilliseconds() * 1_000_000;
    private readonly long _node;
    private ulong _seq;
    private long _now;

    private static InstrumentRegistry NewRegistry() => new(new InstrumentSchedule([GpuClass.H100], ["frankfurt"], ListingPolicy.Default));
    private static StateMachineOptions Options => new() { Epoch = 9 };
    private static UInt128 Source(long owner) => (UInt128)(10_000 + owner);
    private static readonly UInt128 Revenue = 30_011, Collateral = 40_011;

    public LeasePledgeTests()
    {
        _sm = new ExchangeStateMachine(_registry, Options);
        _now = _start;
        var accounts = new List<Account>
        {
            new() { Id = Treasury, Asset = Asset.Usd.Code, Code = 1 },
            ChartOfAccounts.NewAccount(AccountCode.ExchangeEscrow, ExchangeStateMachine.EscrowAccount, Asset.Usd),
            new() { Id = Revenue, Asset = Asset.Usd.Code, Code = 3, Flags = AccountFlags.DebitsMustNotExceedCredits },
            new() { Id = Collateral, Asset = Asset.Usd.Code, Code = 4, Flags = AccountFlags.DebitsMustNotExceedCredits },
        };
        foreach (long owner in new[] { Borrower, Bidder })
            accounts.Add(new Account { Id = Source(owner), Asset = Asset.Usd.Code, Code = 2, Flags = AccountFlags.DebitsMustNotExceedCredits });
        var ar = new CreateAccountResult[accounts.Count];
        _ledger.CreateAccounts(accounts.ToArray(), _ledger.LastTimestamp + 1, ar);
        Assert.All(ar, r => Assert.Equal(CreateAccountResult.Ok, r));
        Transfer[] funding =
        [
            new() { Id = 1, DebitAccountId = Treasury, CreditAccountId = Source(Borrower), Amount = 1_000_000_000, Asset = Asset.Usd.Code, Code = 1 },
            new() { Id = 2, DebitAccountId = Treasury, CreditAccountId = Source(Bidder), Amount = 1_000_000_000, Asset = Asset.Usd.Code, Code = 1 },
            new() { Id = 3, DebitAccountId = Treasury, CreditAccountId = Collateral, Amount = 500_000_000, Asset = Asset.Usd.Code, Code = 1 },
        ];
        var tr = new CreateTransferResult[funding.Length];
        _ledger.CreateTransfers(funding, _ledger.LastTimestamp + 1, tr);
        Assert.All(tr, r => Assert.Equal(CreateTransferResult.Ok, r));

        Ok(ExchangeCommand.Tick());
        Ok(new ExchangeCommand { Kind = ExchangeCommandKind.RegisterProvider, Owner = Provider, Account = Revenue, Account2 = Collateral, Amount = 500_000_000 });
        _node = Ok(new ExchangeCommand { Kind = ExchangeCommandKind.AdmitNode, Owner = Provider, Gpu = GpuClass.H100, Region = "frankfurt", Gpus = 12, Name = "fra-1" }).Subject;
        foreach (long t in new[] { Borrower, Bidder })
        {
            Ok(new ExchangeCommand { Kind = ExchangeCommandKind.RegisterTrader, Owner = t });
            long deposit = Ok(new ExchangeCommand { Kind = ExchangeCommandKind.Deposit, Owner = t, Account = Source(t), Amount = 500_000_000 }).Subject;
            Ok(new ExchangeCommand { Kind = ExchangeCommandKind.TransferSettled, Target = deposit, Ok = true });
        }
    }

    public void Dispose() => _ledger.Dispose();

    [Fact]
    public void A_lease_pledge_lends_within_its_loan_to_value_and_the_pledged_lease_cannot_be_resold_or_pledged_again_until_repaid()
    {
        LeaseView lease = BuyLease(Hourly(3), gpus: 2, Price); // 2 GPU-hours at $2.00: the instrument's VWAP
        Assert.Equal(Price, _sm.InstrumentVwap(Hourly(3).Id));
        // 2 × $2.00 less the 20 % haircut = $3.20; at most half of it lent.
        Refused(ExchangeCommand.PledgeLease(Borrower, 424_242, 1), ExchangeError.UnknownLease);
        Refused(ExchangeCommand.PledgeLease(Bidder, lease.Id, 1), ExchangeError.NotOwner);
        Refused(ExchangeCommand.PledgeLease(Borrower, lease.Id, 0), ExchangeError.InvalidRequest);
        Assert.Equal(1_600_000, Refused(ExchangeCommand.PledgeLease(Borrower, lease.Id, 1_600_001), ExchangeError.LoanTooLarge, RefusalDetail.LoanMax).DetailValue);
        long before = _sm.Available(Borrower)!.Value;
        long loan = Ok(ExchangeCommand.PledgeLease(Borrower, lease.Id, 1_600_000)).Subject;
        Assert.Equal(before + 1_600_000, _sm.Available(Borrower));
        Assert.Equal(-1_600_000, Posted(Pool));
        LoanView l = _sm.Loan(loan, _now)!;
        Assert.Equal((LoanCollateral.Lease, lease.Id, 2L, 3_200_000L, 5_000L, LoanStatus.Open, 0L, 0L), (l.Collateral, l.Lease, l.GpuHours, l.CollateralValue, l.LoanToValueBp, l.Status, l.Node, l.Shares));
        Assert.True(_sm.IsLeasePledged(lease.Id));

        // Pledged: not resold (any time in force), not pledged again.
        Refused(ExchangeCommand.Resell(Borrower, lease.Id, Hourly(3).Id, Price, 1), ExchangeError.LeasePledged);
        Refused(ExchangeCommand.Resell(Borrower, lease.Id, Hourly(3).Id, Price, 1, TimeInForce.ImmediateOrCancel), ExchangeError.LeasePledged);
        Refused(ExchangeCommand.PledgeLease(Borrower, lease.Id, 1), ExchangeError.LeasePledged);

        // An hour at 8 % a year on $1.60: 1,600,000 × 800 × 1 / (10,000 × 8,760) = 14.6… → 14 micro-USD; repaid, the lease is free again.
        _now += NsPerHour;
        Assert.Equal(14, _sm.Loan(loan, _now)!.Interest);
        Ok(ExchangeCommand.Repay(Borrower, loan, 2_000_000));
        l = _sm.Loan(loan, _now)!;
        Assert.Equal((LoanStatus.Repaid, 1_600_014L, 0L, 0L), (l.Status, l.Repaid, l.Principal + l.Interest, l.CollateralValue));
        Assert.Equal(14, Posted(Pool));
        Assert.False(_sm.IsLeasePledged(lease.Id));
        Ok(ExchangeCommand.Resell(Borrower, lease.Id, Hourly(3).Id, Price, 1));
        // Time of it on the book: the lease is no longer whole, and cannot be pledged.
        Refused(ExchangeCommand.PledgeLease(Borrower, lease.Id, 1), ExchangeError.LeaseNotPledgeable, RefusalDetail.LeaseResold);
    }

    [Fact]
    public void A_price_fall_liquidates_the_pledged_lease_through_the_book_and_loan_collateral_and_proceeds_add_up_and_snapshot_and_replay_agree()
    {
        Instrument three = Hourly(3);
        LeaseView lease = BuyLease(three, gpus: 2, Price);
        long loan = Ok(ExchangeCommand.PledgeLease(Borrower, lease.Id, 1_600_000)).Subject;
        _now += NsPerHour;

        // The hour trades lower: 6 GPUs at $0.90: VWAP (4.00 + 5.40) / 8 = $1.175, value 2 × 1.175 × 0.8 = $1.88, LTV 85 %: margin call.
        Trade(three, 6, 900_000);
        Assert.Equal(1_175_000, _sm.InstrumentVwap(three.Id));
        Assert.True(_sm.TickDue(_now));
        Ok(ExchangeCommand.Tick());
        Assert.Equal(LoanStatus.MarginCall, _sm.Loan(loan, _now)!.Status);
        // 4 more at $0.50: VWAP 11.40 / 12 = $0.95, value $1.52 < the $1,600,014 owed: liquidation at the next tick.
        Trade(three, 4, 500_000);
        Assert.Equal(950_000, _sm.InstrumentVwap(three.Id));
        Ok(ExchangeCommand.Place(Bidder, three.Id, Side.Buy, OrderType.Limit, TimeInForce.GoodTillCancel, 900_000, 2));
        Assert.True(_sm.TickDue(_now));
        long borrowerBefore = _sm.Available(Borrower)!.Value;
        Ok(ExchangeCommand.Tick());

        // Sold through the book as a resale: the borrower's immediate-or-cancel sell at the band's floor takes the $0.90 bid;
        // the bidder holds a lease resold from the pledged one, its $1.80 in the new lease's escrow until delivered.
        FillRecord sale = Assert.Single(_fills);
        Assert.Equal((2L, 900_000L, Side.Sell), (sale.Quantity, sale.Price, sale.TakerSide));
        LeaseView child = _sm.Lease(sale.LeaseId)!;
        Assert.Equal((lease.Id, Bidder, Borrower, 1_800_000L), (child.Parent, child.Buyer, child.Payee, child.Notional));
        LoanView l = _sm.Loan(loan, _now)!;
        Assert.Equal((LoanStatus.Liquidating, 1_600_014L, 0L), (l.Status, l.Principal + l.Interest, l.Proceeds));
        Assert.Equal(borrowerBefore, _sm.Available(Borrower)); // nothing paid before delivery
        Refused(ExchangeCommand.Resell(Borrower, lease.Id, three.Id, Price, 1), ExchangeError.LeasePledged);
        Assert.False(_sm.TickDue(_now)); // a liquidating loan waits for the sale's payment, its interest stopped
        byte[] snapshot = _sm.WriteSnapshot();
        int snapshotAt = _applied.Count;

        // The hour is delivered: the provider is paid the pledged lease, the resold lease pays the borrower $1.80 and the
        // loan takes $1,600,014 of it first; $0.199986 is the borrower's. The pool is whole and earned the interest.
        _now = Hour(4);
        Ok(new ExchangeCommand { Kind = ExchangeCommandKind.Deliver, Owner = Provider, Target = lease.Id, From = Hour(3), To = Hour(4) });
        l = _sm.Loan(loan, _now)!;
        Assert.Equal((LoanStatus.Liquidated, 1_800_000L, 1_600_014L, 0L, 0L), (l.Status, l.Proceeds, l.Repaid, l.Principal + l.Interest, l.WrittenOff));
        Assert.Equal(borrowerBefore + 1_800_000 - 1_600_014, _sm.Available(Borrower));
        Assert.Equal(l.Repaid - l.Lent, Posted(Pool));
        Assert.Equal(14, Posted(Pool));
        Assert.Equal(0, Balance(child.EscrowAccount));
        Assert.False(_sm.IsLeasePledged(lease.Id));

        // The same state from a full replay of the commands, and from the snapshot taken while liquidating plus the commands after it.
        byte[] hash = _sm.StateHash();
        var replayed = new ExchangeStateMachine(NewRegistry(), Options);
        foreach (ExchangeCommand x in _applied) replayed.Apply(in x, new SettlementPlan(), []);
        Assert.Equal(hash, replayed.StateHash());
        ExchangeStateMachine restored = ExchangeStateMachine.ReadSnapshot(snapshot, NewRegistry(), Options);
        Assert.True(restored.IsLeasePledged(lease.Id));
        Assert.Equal(LoanStatus.Liquidating, restored.Loan(loan, _now)!.Status);
        foreach (ExchangeCommand x in _applied.Skip(snapshotAt)) restored.Apply(in x, new SettlementPlan(), []);
        Assert.Equal(hash, restored.StateHash());
        Assert.Equal(hash, ExchangeStateMachine.ReadSnapshot(_sm.WriteSnapshot(), NewRegistry(), Options).StateHash());
    }

    [Fact]
    public void A_lease_that_runs_down_in_delivery_is_margin_called_liquidated_hour_by_hour_and_written_off_for_what_its_sale_did_not_cover()
    {
        Instrument day = Daily(Hour(12));
        LeaseView lease = BuyLease(day, gpus: 1, Price); // 24 GPU-hours at $2.00: value 24 × 2 × 0.8 = $38.40
        long loan = Ok(ExchangeCommand.PledgeLease(Borrower, lease.Id, 17_280_000)).Subject; // LTV 45 %
        // 11 hours delivered: 13 left, value $20.80, LTV 83 %: margin call.
        _now = lease.Start + 11 * NsPerHour;
        Ok(new ExchangeCommand { Kind = ExchangeCommandKind.Deliver, Owner = Provider, Target = lease.Id, From = lease.Start, To = _now });
        LoanView l = _sm.Loan(loan, _now)!;
        Assert.Equal((13L, 20_800_000L), (l.GpuHours, l.CollateralValue));
        Ok(ExchangeCommand.Tick());
        Assert.Equal(LoanStatus.MarginCall, _sm.Loan(loan, _now)!.Status);
        // A bid of $1.00 for hour 13 of the day only; 12 hours delivered: value $19.20, LTV 90 %: liquidation.
        Instrument hour13 = Hourly(12 + 13);
        Ok(ExchangeCommand.Place(Bidder, hour13.Id, Side.Buy, OrderType.Limit, TimeInForce.GoodTillCancel, 1_000_000, 1));
        _now = lease.Start + 12 * NsPerHour;
        Ok(new ExchangeCommand { Kind = ExchangeCommandKind.Deliver, Owner = Provider, Target = lease.Id, From = _now - NsPerHour, To = _now });
        Assert.True(_sm.TickDue(_now));
        Ok(ExchangeCommand.Tick());
        // Its own (daily) book closed, the lease is offered hour by hour on the hourly books still trading: only hour 13 has a bid.
        FillRecord sale = Assert.Single(_fills);
        Assert.Equal((hour13.Id, 1L, 1_000_000L), (sale.Instrument, sale.Quantity, sale.Price));
        l = _sm.Loan(loan, _now)!;
        long interest = 17_280_000L * 800 * 24 / (10_000 * 8_760); // a day of interest, to the sale: 3,787 micro-USD
        Assert.Equal((LoanStatus.Liquidating, 17_280_000 + interest), (l.Status, l.Principal + l.Interest));

        // The rest delivered: the resold hour pays $1.00 to the loan; the lease has ended, the rest is written off.
        _now = lease.End;
        Ok(new ExchangeCommand { Kind = ExchangeCommandKind.Deliver, Owner = Provider, Target = lease.Id, From = lease.Start + 12 * NsPerHour, To = lease.End });
        l = _sm.Loan(loan, _now)!;
        Assert.Equal((LoanStatus.Defaulted, 1_000_000L, 1_000_000L, 17_280_000 + interest - 1_000_000), (l.Status, l.Proceeds, l.Repaid, l.WrittenOff));
        Assert.Equal(-l.WrittenOff + interest, Posted(Pool)); // the pool's loss is what was written off, less the interest it earned
        Assert.Equal(0, Balance(lease.EscrowAccount));
        Assert.False(_sm.IsLeasePledged(lease.Id));
    }

    [Fact]
    public void A_pledged_lease_that_fails_repays_its_loan_from_the_refund_first_and_the_rest_is_the_borrowers()
    {
        LeaseView lease = BuyLease(Hourly(3), gpus: 2, Price);
        long loan = Ok(ExchangeCommand.PledgeLease(Borrower, lease.Id, 1_600_000)).Subject;
        _now = Hour(3) + 10 * NsPerMinute;
        long before = _sm.Available(Borrower)!.Value;
        Ok(new ExchangeCommand { Kind = ExchangeCommandKind.Outage, Owner = Provider, Target = _node });
        LeaseView failed = _sm.Lease(lease.Id)!;
        // Refund $4.00 and the 20 % penalty $0.80 to the borrower; 3 h 10 min of interest: 1,600,000 × 800 × 190 / (10,000 × 525,600) = 46.
        Assert.Equal((LeaseStatus.Failed, 4_000_000L, 800_000L), (failed.Status, failed.Refunded, failed.Penalty));
        LoanView l = _sm.Loan(loan, _now)!;
        Assert.Equal((LoanStatus.Repaid, 4_800_000L, 1_600_046L, 0L, 0L), (l.Status, l.Proceeds, l.Repaid, l.Principal + l.Interest, l.WrittenOff));
        Assert.Equal(before + 4_800_000 - 1_600_046, _sm.Available(Borrower));
        Assert.Equal(46, Posted(Pool));
        Assert.False(_sm.IsLeasePledged(lease.Id));
        // An ended lease cannot be pledged.
        Refused(ExchangeCommand.PledgeLease(Borrower, lease.Id, 1), ExchangeError.LeaseNotPledgeable, RefusalDetail.LeaseNotActive);
    }

    [Fact]
    public void The_lease_pledge_command_round_trips_through_the_journal_codec()
    {
        ExchangeCommand c = ExchangeCommand.PledgeLease(Borrower, 123_456_789, 1_600_000);
        byte[] bytes = new byte[ComputeGrid.Exchange.Pipeline.CommandCodec.Size(in c)];
        Assert.Equal(bytes.Length, ComputeGrid.Exchange.Pipeline.CommandCodec.Write(in c, bytes));
        Assert.Equal(c with { Seq = 9, Time = 10 }, ComputeGrid.Exchange.Pipeline.CommandCodec.Read(bytes, 9, 10));
    }

    // ================================================================== harness

    private Instrument Hourly(int n) => _registry.Active.Single(i => i.Kind == DeliveryKind.HourlySpot && i.DeliveryStart == Hour(n));

    private Instrument Daily(long deliveryStart) => _registry.Active.Single(i => i.Kind == DeliveryKind.DailyForward && i.DeliveryStart == deliveryStart);

    private long Hour(int n) => _start + n * NsPerHour;

    // The provider sells, the borrower buys: the borrower's lease.
    private LeaseView BuyLease(Instrument i, int gpus, long price)
    {
        Ok(ExchangeCommand.Place(Provider, i.Id, Side.Sell, OrderType.Limit, TimeInForce.GoodTillCancel, price, gpus * i.Hours));
        Ok(ExchangeCommand.Place(Borrower, i.Id, Side.Buy, OrderType.Limit, TimeInForce.ImmediateOrCancel, price, gpus * i.Hours));
        return _sm.Lease(Assert.Single(_fills).LeaseId)!;
    }

    // The provider sells to the bidder: a trade that moves the instrument's VWAP.
    private void Trade(Instrument i, int gpus, long price)
    {
        Ok(ExchangeCommand.Place(Provider, i.Id, Side.Sell, OrderType.Limit, TimeInForce.GoodTillCancel, price, gpus * i.Hours));
        Ok(ExchangeCommand.Place(Bidder, i.Id, Side.Buy, OrderType.Limit, TimeInForce.ImmediateOrCancel, price, gpus * i.Hours));
    }

    private long Posted(UInt128 id) => _ledger.TryGetAccount(id, out Account a) ? a.CreditsPosted - a.DebitsPosted : 0;

    private long Balance(UInt128 id) => _ledger.TryGetAccount(id, out Account a) ? a.CreditBalance : 0;

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
        // The mirror is exactly what the ledger lets the exchange spend (but for a deposit not yet confirmed).
        foreach (long owner in c.Kind == ExchangeCommandKind.Deposit ? [] : new[] { Borrower, Bidder, Provider })
        {
            if (_sm.Available(owner) is not long available) continue;
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

    private CommandResult Refused(ExchangeCommand c, ExchangeError error, RefusalDetail detail = RefusalDetail.None)
    {
        CommandResult r = Apply(c);
        Assert.Equal(error, r.Error);
        Assert.Equal(detail, r.Detail);
        Assert.Equal(0, _plan.Transfers.Length);
        Assert.Equal(0, r.Fills);
        return r;
    }
}
