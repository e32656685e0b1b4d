using ComputeGrid.Exchange.Instruments;
using ComputeGrid.Exchange.Matching;
using ComputeGrid.Exchange.StateMachine;
using ComputeGrid.Exchange.Trading;
using ComputeGrid.Ledger;

namespace ComputeGrid.Exchange.Tests.StateMachine;

/// <summary>
/// The reference's loans against pledged shares, written plainly from the rules (no code shared with the state machine).
/// A share's reference price is the VWAP (rounded down) of its last <see cref="PledgeTerms.VwapTrades"/> trades, kept as a
/// plain list of every trade. A pledge moves free shares from the holding account into the holder's pledge account and
/// lends from the lending pool into the trading account, at most the collateral's value (shares × VWAP less the haircut)
/// × the maximum loan-to-value. Interest is simple, on the principal, accrued lazily with its fraction carried. A repay pays
/// interest first, then principal; a loan repaid in full gives its shares back. A tick walks the open loans in id order and
/// records each one's new status; one at the liquidation threshold has its shares sold by an immediate-or-cancel sell at the
/// band's floor, the proceeds repay it, unsold shares go back into the pledge while anything is owed, and a loan whose
/// shares are all sold and still owes is written off.
/// </summary>
public sealed partial class ReferenceExchange
{
    private const long NsPerYear = 365L * 24 * NsPerHour;

    private sealed class Loan
    {
        public required long Id, Borrower, Node, Lent, OpenedAt;
        public long Shares, Principal, Interest, Repaid, AccruedTo, Proceeds, WrittenOff;
        /// <summary>For the coverage report (lease loans): its lease's time was sold; a failure refund paid it.</summary>
        public bool WentLiquidating, RefundedToLoan;
        /// <summary>The interest numerator not yet a whole micro-USD (over 10,000 × a year of ns).</summary>
        public Int128 Carried;
        public LoanStatus Status;
        /// <summary>For the coverage report: it was in margin call once; a liquidation left shares unsold.</summary>
        public bool MarginCalled, SoldInPart;
        /// <summary>The pledged lease (0 for a share loan, whose Node and Shares say what is pledged).</summary>
        public long Lease;
        public bool IsOpen => Status is LoanStatus.Open or LoanStatus.MarginCall or LoanStatus.Liquidating;
    }

    private readonly SortedDictionary<long, Loan> _loans = [];
    // Every trade of each node's shares, oldest first.
    private readonly Dictionary<long, List<(long Price, long Quantity)>> _shareTrades = [];

    /// <summary>The pool loans are paid from (system, USD).</summary>
    public static readonly UInt128 LendingPool = ChartOfAccounts.SystemAccount(AccountCode.LendingPool, ComputeGrid.Core.Asset.Usd);

    /// <summary>A holder's pledge account of a node's shares.</summary>
    public static UInt128 PledgeAccount(long holder, long node) => ChartOfAccounts.SharePledge((ulong)holder, (ulong)node);

    // ================================================================== prices and values

    private void RecordShareTrade(long node, long price, long quantity)
    {
        if (!_shareTrades.TryGetValue(node, out List<(long, long)>? trades)) _shareTrades[node] = trades = [];
        trades.Add((price, quantity));
    }

    /// <summary>The VWAP of the node's last trades, rounded down; 0 before any.</summary>
    public long Vwap(long node)
    {
        if (!_shareTrades.TryGetValue(node, out List<(long Price, long Quantity)>? trades) || trades.Count == 0) return 0;
        Int128 notional = 0;
        long volume = 0;
        foreach ((long price, long quantity) in trades.TakeLast(_pledges.VwapTrades))
        {
            notional += (Int128)price * quantity;
            volume += quantity;
        }
        return (long)(notional / volume);
    }

    /// <summary>The shares traded in the trades the VWAP is taken over (for the generator: how much volume moves the price).</summary>
    public long RecentShareVolume(long node) =>
        _shareTrades.TryGetValue(node, out List<(long Price, long Quantity)>? trades) ? trades.TakeLast(_pledges.VwapTrades).Sum(t => t.Quantity) : 0;

    /// <summary>floor(shares × VWAP × (10,000 − haircut) / 10,000).</summary>
    private long CollateralValue(long node, long shares) => (long)((Int128)shares * Vwap(node) * (10_000 - _pledges.HaircutBp) / 10_000);

    /// <summary>The most a pledge of <paramref name="shares"/> of the node may borrow now: the collateral's value × the maximum loan-to-value, rounded down.</summary>
    public long LoanMax(long node, long shares) => (long)((Int128)CollateralValue(node, shares) * _pledges.MaxLoanToValueBp / 10_000);

    /// <summary>The whole micro-USD of interest from the loan's last accrual to <paramref name="t"/>, and the numerator left over.</summary>
    private (long Whole, Int128 Carried) InterestTo(Loan l, long t)
    {
        if (t < l.AccruedTo) throw new InvalidOperationException($"Reference: loan {l.Id} asked for interest to {t}, before its accrual at {l.AccruedTo}.");
        if (l.Status == LoanStatus.Liquidating) return (0, l.Carried); // its interest stopped at the sale
        Int128 per = (Int128)10_000 * NsPerYear;
        Int128 n = (Int128)l.Principal * _pledges.InterestBpPerYear * (t - l.AccruedTo) + l.Carried;
        return ((long)(n / per), n % per);
    }

    private void Accrue(Loan l)
    {
        (long whole, Int128 carried) = InterestTo(l, _now);
        l.Interest = checked(l.Interest + whole);
        l.Carried = carried;
        l.AccruedTo = _now;
    }

    private static long LoanToValue(long due, long value) => value == 0 ? (due > 0 ? long.MaxValue : 0) : (long)((Int128)due * 10_000 / value);

    /// <summary>What an open loan's status is at <paramref name="t"/> (Liquidated meaning: at the liquidation threshold).</summary>
    private LoanStatus StatusAt(Loan l, long t)
    {
        if (l.Status == LoanStatus.Liquidating) return l.Status; // waits for its sale's payments
        long due = l.Principal + l.Interest + InterestTo(l, t).Whole;
        long ltv = LoanToValue(due, ValueOf(l));
        if (ltv >= _pledges.LiquidationBp) return LoanStatus.Liquidated;
        return ltv >= _pledges.MarginCallBp ? LoanStatus.MarginCall : LoanStatus.Open;
    }

    // ================================================================== views

    /// <summary>Every loan as of <paramref name="now"/>, by id, in the state machine's view terms.</summary>
    public IReadOnlyList<LoanView> Loans(long now) => _loans.Values.Select(l =>
    {
        long interest = l.IsOpen ? l.Interest + InterestTo(l, now).Whole : l.Interest;
        long value = l.IsOpen ? ValueOf(l) : 0;
        LoanStatus status = !l.IsOpen || l.Status == LoanStatus.Liquidating ? l.Status
            : StatusAt(l, now) == LoanStatus.Open ? LoanStatus.Open : LoanStatus.MarginCall;
        return new LoanView(l.Id, l.Borrower, l.Node, l.Shares, l.Lent, l.Principal, interest, l.Repaid, value,
            l.IsOpen && l.Status != LoanStatus.Liquidating ? LoanToValue(l.Principal + interest, value) : 0, status, l.OpenedAt, now, l.Proceeds, l.WrittenOff,
            l.Lease != 0 ? LoanCollateral.Lease : LoanCollateral.Shares, l.Lease, l.IsOpen && l.Lease != 0 ? LeaseHoursLeft(l.Lease) : 0);
    }).ToList();

    /// <summary>Would a tick at <paramref name="now"/> change some open loan's status?</summary>
    public bool LoansDue(long now) => _loans.Values.Any(l => l.IsOpen && StatusAt(l, now) != l.Status);

    /// <summary>Shares of <paramref name="node"/> that <paramref name="holder"/>'s open loans hold.</summary>
    public long Pledged(long holder, long node) => _loans.Values.Where(l => l.IsOpen && l.Borrower == holder && l.Node == node).Sum(l => l.Shares);

    /// <summary>Loan outcomes for the coverage report: opened, margin called, liquidated in part, and each final status.</summary>
    public IEnumerable<string> LoanOutcomes() => _loans.Values.SelectMany(l => new[]
    {
        "loan opened", l.MarginCalled ? "loan margin called" : null, l.SoldInPart ? "loan liquidated in part" : null,
        l.IsOpen ? null : $"loan {l.Status}",
    }.Select(o => o is null || l.Lease == 0 ? o : "lease " + o).Concat(l.Lease != 0 && l.WentLiquidating ? ["lease loan liquidating"] : [])
        .Concat(l.Lease != 0 && l.RefundedToLoan ? ["lease loan repaid from a refund"] : [])).OfType<string>();

    // ================================================================== commands

    private ReferenceResult Pledge(in ExchangeCommand c)
    {
        if (!_shareNodes.ContainsKey(c.Target)) return Refuse(ExchangeError.NoShares);
        if (!_traders.TryGetValue(c.Owner, out Trader? trader)) return Refuse(ExchangeError.UnknownTrader);
        if (c.Quantity <= 0 || c.Amount <= 0) return Refuse(ExchangeError.InvalidRequest);
        if (SharesShort(c.Owner, c.Target, c.Quantity) is ReferenceResult refused) return refused;
        long vwap = Vwap(c.Target);
        if (vwap == 0) return Refuse(ExchangeError.NoPrice);
        if ((Int128)c.Quantity * vwap > long.MaxValue) return Refuse(ExchangeError.NotionalOverflows);
        long max = LoanMax(c.Target, c.Quantity);
        if (c.Amount > max) return Refuse(ExchangeError.LoanTooLarge, RefusalDetail.LoanMax, max);

        var loan = new Loan
        {
            Id = (long)_seq, Borrower = c.Owner, Node = c.Target, Lent = c.Amount, OpenedAt = _now,
            Shares = c.Quantity, Principal = c.Amount, AccruedTo = _now, Status = LoanStatus.Open,
        };
        _loans.Add(loan.Id, loan);
        CreateAccount(PledgeAccount(c.Owner, c.Target), AccountFlags.DebitsMustNotExceedCredits, ShareAsset(c.Target));
        CreateAccount(LendingPool, AccountFlags.None);
        _owned[(c.Target, c.Owner)] -= c.Quantity;
        Post(HoldingAccount(c.Owner, c.Target), PledgeAccount(c.Owner, c.Target), c.Quantity);
        Post(LendingPool, ExchangeStateMachine.TradingAccount(c.Owner), c.Amount);
        trader.Cash += c.Amount;
        return Done(loan.Id);
    }

    private ReferenceResult Repay(in ExchangeCommand c)
    {
        if (!_loans.TryGetValue(c.Target, out Loan? l) || !l.IsOpen) return Refuse(ExchangeError.UnknownLoan);
        if (l.Borrower != c.Owner) return Refuse(ExchangeError.NotOwner);
        if (c.Amount <= 0) return Refuse(ExchangeError.InvalidRequest);
        long due = l.Principal + l.Interest + InterestTo(l, _now).Whole;
        long pay = Math.Min(c.Amount, due);
        long available = Available(c.Owner)!.Value;
        if (available < pay) return Refuse(ExchangeError.InsufficientBalance, RefusalDetail.BalanceShort, available);

        Accrue(l);
        PayLoan(l, pay);
        if (l.Principal + l.Interest == 0)
        {
            Unpledge(l, l.Shares);
            l.Status = l.Status == LoanStatus.Liquidating ? LoanStatus.Liquidated : LoanStatus.Repaid;
        }
        else if (l.Status != LoanStatus.Liquidating) SetStatus(l, StatusAt(l, _now) == LoanStatus.Open ? LoanStatus.Open : LoanStatus.MarginCall);
        return Done(l.Id) with { Remaining = l.Principal + l.Interest };
    }

    private void SetStatus(Loan l, LoanStatus status)
    {
        l.Status = status;
        if (status == LoanStatus.MarginCall) l.MarginCalled = true;
    }

    /// <summary>Interest first, then principal, from the borrower's trading account to the pool.</summary>
    private void PayLoan(Loan l, long pay)
    {
        if (pay == 0) return;
        long toInterest = Math.Min(pay, l.Interest);
        l.Interest -= toInterest;
        l.Principal -= pay - toInterest;
        l.Repaid += pay;
        _traders[l.Borrower].Cash -= pay;
        Post(ExchangeStateMachine.TradingAccount(l.Borrower), LendingPool, pay);
    }

    /// <summary>Pledged shares back to the borrower's holding (free).</summary>
    private void Unpledge(Loan l, long shares)
    {
        if (shares == 0) return;
        l.Shares -= shares;
        _owned[(l.Node, l.Borrower)] += shares;
        Post(PledgeAccount(l.Borrower, l.Node), HoldingAccount(l.Borrower, l.Node), shares);
    }

    /// <summary>The clock's part: each open loan, in id order, whose status at now differs from the one recorded.</summary>
    private void TickLoans(List<FillRecord> fills)
    {
        foreach (Loan l in _loans.Values.Where(l => l.IsOpen).ToList())
        {
            LoanStatus status = StatusAt(l, _now);
            if (status == l.Status) continue;
            Accrue(l);
            if (status != LoanStatus.Liquidated) SetStatus(l, status);
            else if (l.Lease != 0) LiquidateLease(l, fills);
            else Liquidate(l, fills);
        }
    }

    private void Liquidate(Loan l, List<FillRecord> fills)
    {
        // All its shares back in the holding, and offered at the band's floor, immediate-or-cancel, in the borrower's name.
        long offered = l.Shares;
        Unpledge(l, offered);
        Instrument instrument = _registry.Get(_shareNodes[l.Node].Instrument);
        var sell = new Order
        {
            Id = (long)((_seq << 20) | (uint)++_leasesOfCommand), Owner = l.Borrower, Instrument = instrument, Side = Side.Sell,
            Limit = instrument.Band.MinPrice, Remaining = offered,
        };
        _orders.Add(sell.Id, sell);
        if (!_books.ContainsKey(instrument.Id)) _books[instrument.Id] = new ReferenceOrderBook(instrument.Band, _ordersPerBookMax);
        int before = fills.Count;
        RunBook(instrument.Id, new OrderCommand
        {
            Kind = CommandKind.Place, Side = Side.Sell, Type = OrderType.Limit, TimeInForce = TimeInForce.ImmediateOrCancel, OrderId = sell.Id,
            Owner = l.Borrower, Price = instrument.Band.MinPrice, Quantity = offered, Timestamp = _now,
        }, sell.Id, fills);
        long sold = 0, proceeds = 0;
        foreach (FillRecord f in fills.Skip(before).Where(f => f.OrderId == sell.Id))
        {
            sold += f.Quantity;
            proceeds += f.Price * f.Quantity;
        }
        l.Proceeds += proceeds;
        PayLoan(l, Math.Min(proceeds, l.Principal + l.Interest));
        long owed = l.Principal + l.Interest, unsold = offered - sold;
        if (owed == 0) l.Status = LoanStatus.Liquidated;
        else if (unsold > 0)
        {
            // Still owed: what the book did not take is pledged again.
            _owned[(l.Node, l.Borrower)] -= unsold;
            Post(HoldingAccount(l.Borrower, l.Node), PledgeAccount(l.Borrower, l.Node), unsold);
            l.Shares = unsold;
            l.SoldInPart = true;
            SetStatus(l, LoanStatus.MarginCall);
        }
        else
        {
            l.WrittenOff = owed;
            l.Principal = 0;
            l.Interest = 0;
            l.Status = LoanStatus.Defaulted;
        }
    }
}
