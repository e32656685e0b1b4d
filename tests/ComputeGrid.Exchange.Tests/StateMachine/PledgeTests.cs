using ComputeGrid.Core;
using ComputeGrid.Exchange.Instruments;
using ComputeGrid.Exchange.Matching;
using ComputeGrid.Exchange.StateMachine;
using ComputeGrid.Exchange.Trading;
using ComputeGrid.Ledger;

namespace ComputeGrid.Exchange.Tests.StateMachine;

/// <summary>
/// Node shares and loans against them on <see cref="ExchangeStateMachine"/>, every plan applied to a real
/// <see cref="LedgerStateMachine"/> (every transfer must be taken) with the invariants of both checked after each
/// command: issuance, trades that set the share's VWAP, a pledge within its loan-to-value, interest accrued in whole
/// micro-USD on the clock, a margin call, and a price fall that liquidates the pledge through the book — the loan repaid
/// first, the rest to the borrower, and the lending pool whole.
/// </summary>
public sealed class PledgeTests : IDisposable
{
    private const long NsPerDay = 86_400_000_000_000L;
    private const long Issuer = 11, Borrower = 1, Bidder = 2;
    private static readonly UInt128 Treasury = 1;
    private static readonly UInt128 Pool = ChartOfAccounts.SystemAccount(AccountCode.LendingPool, Asset.Usd);

    private readonly InstrumentRegistry _registry = new(new InstrumentSchedule([GpuClass.H100], ["frankfurt"], ListingPolicy.Default));
    private readonly ExchangeStateMachine _sm;
    private readonly LedgerStateMachine _ledger = new(accountsCapacity: 256, transfersCapacity: 4096);
    private readonly SettlementPlan _plan = new();
    private readonly List<FillRecord> _fills = [];
    private ulong _seq;
    private long _now = new DateTimeOffset(2026, 12, 1, 12, 0, 0, TimeSpan.Zero).ToUnixTimeMilliseconds() * 1_000_000;
    private readonly long _node;
    private readonly string _symbol;

    private static UInt128 Source(long owner) => (UInt128)(10_000 + owner);

    public PledgeTests()
    {
        _sm = new ExchangeStateMachine(_registry, new StateMachineOptions { Epoch = 5 });
        var accounts = new List<Account>
        {
            new() { Id = Treasury, Asset = Asset.Usd.Code, Code = 1 },
            ChartOfAccounts.NewAccount(AccountCode.ExchangeEscrow, ExchangeStateMachine.EscrowAccount, Asset.Usd),
            new() { Id = (UInt128)30_011, Asset = Asset.Usd.Code, Code = 3, Flags = AccountFlags.DebitsMustNotExceedCredits },
            new() { Id = (UInt128)40_011, Asset = Asset.Usd.Code, Code = 4, Flags = AccountFlags.DebitsMustNotExceedCredits },
        };
        foreach (long owner in new[] { Borrower, Bidder, Issuer })
            accounts.Add(new Account { Id = Source(owner), Asset = Asset.Usd.Code, Code = 2, Flags = AccountFlags.DebitsMustNotExceedCredits });
        var ar = new CreateAccountResult[accounts.Count];
        _ledger.CreateAccounts(accounts.ToArray(), _ledger.LastTimestamp + 1, ar);
        Assert.All(ar, r => Assert.Equal(CreateAccountResult.Ok, r));
        var funding = new[] { Borrower, Bidder, Issuer }.Select((o, i) => new Transfer
        {
            Id = (UInt128)(i + 1), DebitAccountId = Treasury, CreditAccountId = Source(o), Amount = 50_000_000_000, Asset = Asset.Usd.Code, Code = 1,
        }).ToArray();
        var tr = new CreateTransferResult[funding.Length];
        _ledger.CreateTransfers(funding, _ledger.LastTimestamp + 1, tr);
        Assert.All(tr, r => Assert.Equal(CreateTransferResult.Ok, r));

        Ok(ExchangeCommand.Tick());
        Ok(new ExchangeCommand { Kind = ExchangeCommandKind.RegisterProvider, Owner = Issuer, Account = (UInt128)30_011, Account2 = (UInt128)40_011 });
        _node = Ok(new ExchangeCommand { Kind = ExchangeCommandKind.AdmitNode, Owner = Issuer, Target = 501, Gpu = GpuClass.H100, Region = "frankfurt", Gpus = 8, Name = "fra-1" }).Subject;
        Assert.Equal(501, _node);
        foreach (long t in new[] { Borrower, Bidder })
        {
            Ok(new ExchangeCommand { Kind = ExchangeCommandKind.RegisterTrader, Owner = t });
            long deposit = Ok(new ExchangeCommand { Kind = ExchangeCommandKind.Deposit, Owner = t, Account = Source(t), Amount = 30_000_000_000 }).Subject;
            Ok(new ExchangeCommand { Kind = ExchangeCommandKind.TransferSettled, Target = deposit, Ok = true });
        }
        Refused(ExchangeCommand.IssueShares(Issuer, _node, 10_000), ExchangeError.NotApprovedIssuer);
        Ok(new ExchangeCommand { Kind = ExchangeCommandKind.ApproveIssuer, Owner = Issuer });
        int instrument = (int)Ok(ExchangeCommand.IssueShares(Issuer, _node, 10_000)).Subject;
        Refused(ExchangeCommand.IssueShares(Issuer, _node, 10_000), ExchangeError.SharesAlreadyIssued);
        _symbol = _registry.Get(instrument).Symbol;
        Ok(ExchangeCommand.TransferShares(Issuer, _node, Borrower, 200));
    }

    public void Dispose() => _ledger.Dispose();

    [Fact]
    public void A_pledge_lends_within_its_loan_to_value_locks_its_shares_and_accrues_interest_in_whole_micro_usd()
    {
        Refused(ExchangeCommand.Pledge(Borrower, _node, 200, 1_000_000), ExchangeError.NoPrice); // never traded: no price to lend against
        Trade(price: 2_000_000, shares: 100); // VWAP $2.00
        Assert.Equal(2_000_000, _sm.ShareVwap(_node));
        // 200 shares × $2.00 less the 20 % haircut = $320; at most half of it lent.
        Refused(ExchangeCommand.Pledge(Borrower, _node, 200, 160_000_001), ExchangeError.LoanTooLarge, RefusalDetail.LoanMax);
        long before = _sm.Available(Borrower)!.Value;
        long loan = Ok(ExchangeCommand.Pledge(Borrower, _node, 200, 150_000_000)).Subject;
        Assert.Equal(before + 150_000_000, _sm.Available(Borrower));
        Assert.Equal(new ShareHoldingView(Borrower, _node, 0, 0, 200), _sm.HoldingOf(Borrower, _node));
        Assert.Equal(200, Posted(ChartOfAccounts.SharePledge(Borrower, (ulong)_node)));
        Assert.Equal(-150_000_000, Posted(Pool));

        // Pledged shares are not free: they cannot be sold, moved or pledged again.
        Refused(Sell(Borrower, 1_000_000, 1), ExchangeError.InsufficientShares, RefusalDetail.SharesShort);
        Refused(ExchangeCommand.TransferShares(Borrower, _node, Bidder, 1), ExchangeError.InsufficientShares, RefusalDetail.SharesShort);
        Refused(ExchangeCommand.Pledge(Borrower, _node, 1, 1), ExchangeError.InsufficientShares, RefusalDetail.SharesShort);

        // 30 days at 8 % a year on $150: 150,000,000 × 800 × 30 / 365 / 10,000 = 986,301.37… → 986,301 micro-USD, the fraction carried.
        _now += 30 * NsPerDay;
        Assert.Equal(986_301, _sm.Loan(loan, _now)!.Interest);
        _now += 335 * NsPerDay;
        Assert.Equal(12_000_000, _sm.Loan(loan, _now)!.Interest); // a whole year: exactly 8 %, nothing lost to rounding

        // Repaid in two parts: interest first, then principal; the shares come back free once nothing is owed.
        Ok(ExchangeCommand.Repay(Borrower, loan, 100_000_000));
        Assert.Equal(62_000_000, _sm.Loan(loan, _now)!.Principal);
        Refused(ExchangeCommand.Repay(Bidder, loan, 1), ExchangeError.NotOwner);
        Ok(ExchangeCommand.Repay(Borrower, loan, 500_000_000)); // more than due: only what is due is taken
        LoanView repaid = _sm.Loan(loan, _now)!;
        Assert.Equal((LoanStatus.Repaid, 162_000_000L, 0L), (repaid.Status, repaid.Repaid, repaid.Principal + repaid.Interest));
        Assert.Equal(new ShareHoldingView(Borrower, _node, 200, 0, 0), _sm.HoldingOf(Borrower, _node));
        Assert.Equal(12_000_000, Posted(Pool)); // the pool earned the interest
    }

    [Fact]
    public void A_price_fall_below_the_threshold_liquidates_the_pledge_through_the_book_and_loan_collateral_and_proceeds_add_up()
    {
        Trade(price: 2_000_000, shares: 100);
        long loan = Ok(ExchangeCommand.Pledge(Borrower, _node, 200, 150_000_000)).Subject;
        long borrowerBefore = _sm.Available(Borrower)!.Value;

        // The share trades lower: a bid of $1.00 for 10,000 shares rests, and the issuer sells into it.
        Ok(ExchangeCommand.Place(Bidder, InstrumentId, Side.Buy, OrderType.Limit, TimeInForce.GoodTillCancel, 1_000_000, 10_000));
        Ok(Sell(Issuer, 1_000_000, 100)); // VWAP 300 / 200 = $1.50: 200 × 1.50 × 0.8 = $240, LTV 62.5 %
        Assert.False(_sm.TickDue(_now));
        Ok(Sell(Issuer, 1_000_000, 200)); // VWAP 500 / 400 = $1.25: $200, LTV 75 % → margin call at the next tick
        Assert.Equal(7_500, _sm.Loan(loan, _now)!.LoanToValueBp);
        Assert.True(_sm.TickDue(_now));
        Ok(ExchangeCommand.Tick());
        Assert.Equal(LoanStatus.MarginCall, _sm.Loan(loan, _now)!.Status);
        foreach (long shares in new long[] { 300, 600, 1_000 })
        {
            Ok(Sell(Issuer, 1_000_000, shares)); // VWAP $1.143, $1.077, $1.043: LTV 82 %, 87 %, 89.8 %: still a margin call
            Assert.False(_sm.TickDue(_now));
        }
        Ok(Sell(Issuer, 1_000_000, 1_000)); // VWAP 3,400 / 3,300 = $1.0303…: $164.85, LTV 91 % → liquidation
        Assert.True(_sm.TickDue(_now));
        int fillsBefore = _fills.Count;
        Ok(ExchangeCommand.Tick());

        LoanView l = _sm.Loan(loan, _now)!;
        Assert.Equal(LoanStatus.Liquidated, l.Status);
        // Sold through the book: the 200 pledged shares into the resting bid at $1.00, as fills of the borrower's order.
        FillRecord sale = Assert.Single(_fills.Skip(fillsBefore));
        Assert.Equal((200L, 1_000_000L, Side.Sell), (sale.Quantity, sale.Price, sale.TakerSide));
        // Loan, collateral and proceeds add up: $200 of proceeds, the $150 loan repaid first, $50 the borrower's; the pool whole.
        Assert.Equal((200_000_000L, 150_000_000L, 0L), (l.Proceeds, l.Repaid, l.Principal + l.Interest));
        Assert.Equal(borrowerBefore + 50_000_000, _sm.Available(Borrower));
        Assert.Equal(0, Posted(Pool));
        Assert.Equal(new ShareHoldingView(Borrower, _node, 0, 0, 0), _sm.HoldingOf(Borrower, _node));
        Assert.Equal(0, Posted(ChartOfAccounts.SharePledge(Borrower, (ulong)_node)));
        Assert.False(_sm.TickDue(_now));
    }

    [Fact]
    public void A_liquidation_the_book_cannot_absorb_keeps_the_unsold_shares_pledged_and_writes_off_only_when_nothing_is_left()
    {
        Trade(price: 2_000_000, shares: 100);
        long loan = Ok(ExchangeCommand.Pledge(Borrower, _node, 200, 160_000_000)).Subject; // the most: LTV 50 %
        // Thin bids: 50 shares at $0.60 take the VWAP to (200 + 30) / 150 = $1.533: value $245.33, LTV 65 %; then 100 at $0.20.
        Ok(ExchangeCommand.Place(Bidder, InstrumentId, Side.Buy, OrderType.Limit, TimeInForce.GoodTillCancel, 600_000, 50));
        Ok(Sell(Issuer, 600_000, 50));
        Ok(ExchangeCommand.Place(Bidder, InstrumentId, Side.Buy, OrderType.Limit, TimeInForce.GoodTillCancel, 200_000, 150));
        Ok(Sell(Issuer, 200_000, 100)); // VWAP 250 / 250 = $1.00: value $160, LTV 100 % → liquidation; 50 shares bid at $0.20 remain
        Ok(ExchangeCommand.Tick());
        LoanView partly = _sm.Loan(loan, _now)!;
        // 50 sold for $10, repaid; 150 unsold stay pledged; the loan is still open.
        Assert.Equal((LoanStatus.MarginCall, 150L, 10_000_000L, 150_000_000L), (partly.Status, partly.Shares, partly.Proceeds, partly.Principal));
        Assert.Equal(new ShareHoldingView(Borrower, _node, 0, 0, 150), _sm.HoldingOf(Borrower, _node));
        // A bid for everything at the floor: the rest is sold, $150 × 0.001 = $0.15 does not cover the loan: written off.
        Ok(ExchangeCommand.Place(Bidder, InstrumentId, Side.Buy, OrderType.Limit, TimeInForce.GoodTillCancel, Instrument.ShareBand.MinPrice, 1_000));
        Assert.True(_sm.TickDue(_now));
        Ok(ExchangeCommand.Tick());
        LoanView gone = _sm.Loan(loan, _now)!;
        Assert.Equal(LoanStatus.Defaulted, gone.Status);
        Assert.Equal(10_000_000 + 150 * Instrument.ShareBand.MinPrice, gone.Proceeds);
        Assert.Equal(160_000_000 - gone.Proceeds, gone.WrittenOff);
        Assert.Equal(-gone.WrittenOff, Posted(Pool)); // the pool's loss is exactly what was written off
        Assert.Equal(new ShareHoldingView(Borrower, _node, 0, 0, 0), _sm.HoldingOf(Borrower, _node));
    }

    private int InstrumentId => _registry.GetBySymbol(_symbol).Id;

    private ExchangeCommand Sell(long owner, long price, long shares) =>
        ExchangeCommand.Place(owner, InstrumentId, Side.Sell, OrderType.Limit, TimeInForce.GoodTillCancel, price, shares);

    // The issuer sells to the bidder at a price: a trade that sets the VWAP.
    private void Trade(long price, long shares)
    {
        Ok(Sell(Issuer, price, shares));
        Ok(ExchangeCommand.Place(Bidder, InstrumentId, Side.Buy, OrderType.Limit, TimeInForce.ImmediateOrCancel, price, shares));
    }

    private long Posted(UInt128 id) => _ledger.TryGetAccount(id, out Account a) ? a.CreditsPosted - a.DebitsPosted : 0;

    private CommandResult Apply(ExchangeCommand c)
    {
        c.Seq = ++_seq;
        c.Time = _now;
        _plan.Clear();
        CommandResult r = _sm.Apply(in c, _plan, _fills);
        PlanLedger.Apply(_ledger, _plan);
        _sm.CheckInvariants();
        // The register and the ledger agree on every holding: free + offered in the holding account, pledged in the pledge account.
        foreach (long holder in new[] { Borrower, Bidder, Issuer })
        {
            ShareHoldingView h = _sm.HoldingOf(holder, _node);
            Assert.Equal(h.Free + h.Offered, Posted(ChartOfAccounts.ShareHolding((ulong)holder, (ulong)_node)));
            Assert.Equal(h.Pledged, Posted(ChartOfAccounts.SharePledge((ulong)holder, (ulong)_node)));
            if (c.Kind != ExchangeCommandKind.Deposit && _sm.Available(holder) is long available) // a deposit counts once confirmed
            {
                Assert.True(_ledger.TryGetAccount(ExchangeStateMachine.TradingAccount(holder), out Account a));
                Assert.Equal(a.AvailableCredit, available);
            }
        }
        return r;
    }

    private CommandResult Ok(ExchangeCommand c)
    {
        CommandResult r = Apply(c);
        Assert.True(r.Ok, $"{c.Kind}: {r.Error} {Refusals.Describe(in r)}");
        return r;
    }

    private void Refused(ExchangeCommand c, ExchangeError error, RefusalDetail detail = RefusalDetail.None)
    {
        CommandResult r = Apply(c);
        Assert.Equal(error, r.Error);
        Assert.Equal(detail, r.Detail);
        Assert.Equal(0, _plan.Transfers.Length);
    }
}
