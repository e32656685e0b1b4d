using ComputeGrid.Core;
using ComputeGrid.Exchange.Instruments;
using ComputeGrid.Exchange.Matching;
using ComputeGrid.Exchange.Trading;
using ComputeGrid.Ledger;

namespace ComputeGrid.Exchange.StateMachine;

/// <summary>Where a loan against pledged shares or a pledged lease stands. Stable values (snapshots).</summary>
public enum LoanStatus : byte
{
    /// <summary>Open, within its loan-to-value.</summary>
    Open = 0,
    /// <summary>Open, its loan-to-value at or above the margin call: the borrower should repay or lose the shares.</summary>
    MarginCall = 1,
    /// <summary>Repaid in full; its shares released.</summary>
    Repaid = 2,
    /// <summary>Its loan-to-value reached the liquidation threshold: its shares were sold on the book and the loan repaid from them.</summary>
    Liquidated = 3,
    /// <summary>Liquidated, and the proceeds did not cover the loan: the rest is the lending pool's loss.</summary>
    Defaulted = 4,
    /// <summary>
    /// A lease loan whose lease time was sold at liquidation: a resold lease pays as it is delivered, so the loan (its
    /// interest stopped at the sale) is repaid from those payments as they come, or from the lease's refund if it fails;
    /// then <see cref="Liquidated"/>, or <see cref="Defaulted"/> when the lease ends still owing.
    /// </summary>
    Liquidating = 5,
}

/// <summary>What a loan is secured by. Stable values.</summary>
public enum LoanCollateral : byte
{
    /// <summary>Pledged shares of a node (<see cref="LoanView.Node"/>, <see cref="LoanView.Shares"/>).</summary>
    Shares = 0,
    /// <summary>A pledged lease (<see cref="LoanView.Lease"/>): its undelivered GPU-hours (<see cref="LoanView.GpuHours"/>).</summary>
    Lease = 1,
}

/// <summary>
/// A loan against pledged shares or a pledged lease, as of <paramref name="AsOf"/>: what was lent, what is still owed
/// (principal and interest accrued to then), the collateral's value (shares × the share's recent VWAP, or the lease's
/// undelivered GPU-hours × its instrument's recent VWAP, less the haircut) and the loan-to-value in basis points. A lease
/// loan has <paramref name="Node"/> and <paramref name="Shares"/> 0, <paramref name="Lease"/> and <paramref name="GpuHours"/> set.
/// </summary>
public sealed record LoanView(long Id, long Borrower, long Node, long Shares, long Lent, long Principal, long Interest, long Repaid,
    long CollateralValue, long LoanToValueBp, LoanStatus Status, long OpenedAt, long AsOf, long Proceeds, long WrittenOff,
    LoanCollateral Collateral = LoanCollateral.Shares, long Lease = 0, long GpuHours = 0);

/// <summary>The terms of loans against pledged shares and leases (part of the state machine's settings; one set for both).</summary>
public sealed record PledgeTerms
{
    /// <summary>Haircut on the collateral's market value, in basis points.</summary>
    public int HaircutBp { get; init; } = 2_000;
    /// <summary>The most a loan may be of the collateral's value (after the haircut) when it is opened, in basis points.</summary>
    public int MaxLoanToValueBp { get; init; } = 5_000;
    /// <summary>Loan-to-value at which a loan is in margin call.</summary>
    public int MarginCallBp { get; init; } = 7_500;
    /// <summary>Loan-to-value at which a loan is liquidated through the book.</summary>
    public int LiquidationBp { get; init; } = 9_000;
    /// <summary>Simple interest on the principal, basis points a year (365 days), accrued on the command clock in whole micro-USD.</summary>
    public int InterestBpPerYear { get; init; } = 800;
    /// <summary>How many of a share's most recent trades its reference price (VWAP) is taken over.</summary>
    public int VwapTrades { get; init; } = 64;
}

public sealed partial class ExchangeStateMachine
{
    // ================================================================== pledges: loans against shares

    private const long NsPerYear = 365L * 24 * 3_600_000_000_000L;

    private sealed class LoanState
    {
        public long Id, Borrower, Node, Shares, Lent, Principal, Interest, Repaid, OpenedAt, AccruedTo, Proceeds, WrittenOff;
        public long Lease; // the pledged lease (0: a share loan, Node and Shares set)
        public Int128 InterestRemainder; // numerator over 10,000 × a year of ns, carried so no fraction of interest is lost
        public LoanStatus Status;
        public bool IsOpen => Status is LoanStatus.Open or LoanStatus.MarginCall or LoanStatus.Liquidating;
        public long Due => checked(Principal + Interest);
    }

    /// <summary>A share's recent trades (a ring), and their volume-weighted price.</summary>
    private sealed class VwapState(int capacity)
    {
        public readonly long[] Prices = new long[capacity], Quantities = new long[capacity];
        public int Next, Count;
        public Int128 Notional;
        public long Volume;

        public void Add(long price, long quantity)
        {
            if (Count == Prices.Length)
            {
                Notional -= (Int128)Prices[Next] * Quantities[Next];
                Volume -= Quantities[Next];
            }
            else Count++;
            Prices[Next] = price;
            Quantities[Next] = quantity;
            Notional += (Int128)price * quantity;
            Volume += quantity;
            Next = (Next + 1) % Prices.Length;
        }

        /// <summary>The VWAP, rounded down; 0 before the first trade.</summary>
        public long Price => Volume == 0 ? 0 : (long)(Notional / Volume);
    }

    private readonly SortedDictionary<long, LoanState> _loans = [];
    private readonly Dictionary<long, VwapState> _vwap = [];
    private static readonly UInt128 LendingPool = ChartOfAccounts.SystemAccount(AccountCode.LendingPool, Asset.Usd);

    private PledgeTerms Terms => _options.Pledges;

    // Called by the share kind for each trade (on the order path: no allocation once a share's ring exists).
    private void RecordShareTrade(long node, long price, long quantity)
    {
        if (!_vwap.TryGetValue(node, out VwapState? v)) _vwap[node] = v = new VwapState(Terms.VwapTrades);
        v.Add(price, quantity);
    }

    /// <summary>A share's reference price: the VWAP of its recent trades (0 before any).</summary>
    public long ShareVwap(long node) => _vwap.TryGetValue(node, out VwapState? v) ? v.Price : 0;

    // The collateral's value after the haircut, at the reference price.
    private long CollateralValue(long node, long shares) =>
        Money.MulDiv(checked(shares * ShareVwap(node)), 10_000 - Terms.HaircutBp, 10_000);

    private long CollateralValue(LoanState l) => l.Lease != 0 ? LeaseCollateralValue(l.Lease) : CollateralValue(l.Node, l.Shares);

    // Interest accrued from the loan's last accrual to t (not applied): whole micro-USD and the carried numerator.
    private (long Interest, Int128 Remainder) AccrueTo(LoanState l, long t)
    {
        // A liquidating lease loan owes what it owed at the sale: its collateral is gone, the loan waits for the sale's payments.
        if (l.Status == LoanStatus.Liquidating) return (0, l.InterestRemainder);
        Int128 denominator = (Int128)10_000 * NsPerYear;
        Int128 n = (Int128)l.Principal * Terms.InterestBpPerYear * Math.Max(0, t - l.AccruedTo) + l.InterestRemainder;
        return ((long)(n / denominator), n % denominator);
    }

    private void Accrue(LoanState l)
    {
        (long interest, Int128 remainder) = AccrueTo(l, _now);
        l.Interest = checked(l.Interest + interest);
        l.InterestRemainder = remainder;
        l.AccruedTo = _now;
    }

    private static long LtvBp(long due, long value) => value <= 0 ? (due > 0 ? long.MaxValue : 0) : (long)((Int128)due * 10_000 / value);

    // What the loan's status would be at t (read-only: for the host's TickDue and for views).
    private LoanStatus StatusAt(LoanState l, long t)
    {
        if (!l.IsOpen || l.Status == LoanStatus.Liquidating) return l.Status;
        long due = checked(l.Principal + l.Interest + AccrueTo(l, t).Interest);
        long ltv = LtvBp(due, CollateralValue(l));
        return ltv >= Terms.LiquidationBp ? LoanStatus.Liquidated : ltv >= Terms.MarginCallBp ? LoanStatus.MarginCall : LoanStatus.Open;
    }

    private CommandResult Pledge(in ExchangeCommand c)
    {
        if (!_shareNodes.ContainsKey(c.Target)) return Refused(ExchangeError.NoShares);
        if (!_traders.TryGetValue(c.Owner, out TraderState? trader)) return Refused(ExchangeError.UnknownTrader);
        if (c.Quantity <= 0 || c.Amount <= 0) return Refused(ExchangeError.InvalidRequest);
        long free = _holdings.TryGetValue((c.Owner, c.Target), out HoldingState? h) ? h.Free : 0;
        if (h is null || free < c.Quantity) return Refused(ExchangeError.InsufficientShares, RefusalDetail.SharesShort, free);
        if (ShareVwap(c.Target) == 0) return Refused(ExchangeError.NoPrice);
        if (!TryMul(c.Quantity, ShareVwap(c.Target), out _)) return Refused(ExchangeError.NotionalOverflows);
        long max = Money.MulDiv(CollateralValue(c.Target, c.Quantity), Terms.MaxLoanToValueBp, 10_000);
        if (c.Amount > max) return Refused(ExchangeError.LoanTooLarge, RefusalDetail.LoanMax, max);

        // Accepted: the shares move into the pledge, the loan is paid into the trading account.
        h.Free -= c.Quantity;
        h.Pledged = checked(h.Pledged + c.Quantity);
        var loan = new LoanState
        {
            Id = (long)_seq, Borrower = c.Owner, Node = c.Target, Shares = c.Quantity, Lent = c.Amount, Principal = c.Amount,
            OpenedAt = _now, AccruedTo = _now, Status = LoanStatus.Open,
        };
        _loans.Add(loan.Id, loan);
        SharePledgeAccount(c.Owner, c.Target);
        _plan.Account(ChartOfAccounts.NewAccount(AccountCode.LendingPool, LendingPool, Asset.Usd));
        MoveShares(ChartOfAccounts.ShareHolding((ulong)c.Owner, (ulong)c.Target), ChartOfAccounts.SharePledge((ulong)c.Owner, (ulong)c.Target), c.Target, c.Quantity, loan.Id);
        _plan.Transfer(new Transfer
        {
            Id = NextTransferId(), DebitAccountId = LendingPool, CreditAccountId = trader.Account, Amount = c.Amount, Asset = Asset.Usd.Code,
            Code = (ushort)TransferCode.Loan, UserData64 = (ulong)loan.Id,
        });
        trader.Available = checked(trader.Available + c.Amount);
        return new CommandResult { Subject = loan.Id };
    }

    private CommandResult Repay(in ExchangeCommand c)
    {
        if (!_loans.TryGetValue(c.Target, out LoanState? l) || !l.IsOpen) return Refused(ExchangeError.UnknownLoan);
        if (l.Borrower != c.Owner) return Refused(ExchangeError.NotOwner);
        if (c.Amount <= 0) return Refused(ExchangeError.InvalidRequest);
        TraderState trader = _traders[c.Owner];
        (long interest, _) = AccrueTo(l, _now);
        long due = checked(l.Principal + l.Interest + interest);
        long pay = Math.Min(c.Amount, due);
        if (trader.Available < pay) return Refused(ExchangeError.InsufficientBalance, RefusalDetail.BalanceShort, trader.Available);

        Accrue(l);
        PayLoan(l, trader, pay);
        if (l.Principal + l.Interest == 0) CloseLoan(l, l.Status == LoanStatus.Liquidating ? LoanStatus.Liquidated : LoanStatus.Repaid);
        else if (l.Status != LoanStatus.Liquidating) l.Status = StatusAt(l, _now) == LoanStatus.Open ? LoanStatus.Open : LoanStatus.MarginCall;
        return new CommandResult { Subject = l.Id, Remaining = l.Principal + l.Interest };
    }

    // Interest first, then principal; from the borrower's trading account to the lending pool.
    private void PayLoan(LoanState l, TraderState trader, long pay)
    {
        if (pay <= 0) return;
        long toInterest = Math.Min(pay, l.Interest);
        l.Interest -= toInterest;
        l.Principal -= pay - toInterest;
        l.Repaid = checked(l.Repaid + pay);
        trader.Available -= pay;
        _plan.Transfer(new Transfer
        {
            Id = NextTransferId(), DebitAccountId = trader.Account, CreditAccountId = LendingPool, Amount = pay, Asset = Asset.Usd.Code,
            Code = (ushort)TransferCode.Loan, UserData64 = (ulong)l.Id,
        });
    }

    // The loan ends: what is still pledged goes back to the borrower's free shares, or the lease is released.
    private void CloseLoan(LoanState l, LoanStatus status)
    {
        if (l.Lease != 0) ReleaseLease(l);
        if (l.Shares > 0)
        {
            HoldingState h = _holdings[(l.Borrower, l.Node)];
            h.Pledged -= l.Shares;
            h.Free = checked(h.Free + l.Shares);
            MoveShares(ChartOfAccounts.SharePledge((ulong)l.Borrower, (ulong)l.Node), ChartOfAccounts.ShareHolding((ulong)l.Borrower, (ulong)l.Node), l.Node, l.Shares, l.Id);
            l.Shares = 0;
        }
        l.Status = status;
    }

    private void MoveShares(UInt128 from, UInt128 to, long node, long shares, long loan) =>
        _plan.Transfer(new Transfer
        {
            Id = NextTransferId(), DebitAccountId = from, CreditAccountId = to, Amount = shares, Asset = _shareNodes[node].Asset,
            Code = (ushort)TransferCode.SharePledge, UserData64 = (ulong)loan,
        });

    private readonly HashSet<(long, long)> _pledgeAccounts = [];

    private void SharePledgeAccount(long holder, long node)
    {
        if (_pledgeAccounts.Add((holder, node)))
            _plan.Account(ChartOfAccounts.NewAccount(AccountCode.SharePledge, ChartOfAccounts.SharePledge((ulong)holder, (ulong)node), Asset.NodeShares((ulong)node)));
    }

    /// <summary>Would a tick at <paramref name="now"/> change a loan's status (margin call, liquidation)?</summary>
    private bool LoansDue(long now)
    {
        foreach (LoanState l in _loans.Values)
            if (l.IsOpen && StatusAt(l, now) != l.Status) return true;
        return false;
    }

    /// <summary>
    /// The clock's part for loans, in loan order: each open loan's status at now; a loan at the liquidation threshold has
    /// its pledged shares sold on the book (an immediate-or-cancel sell at the band's floor, in the borrower's name), the
    /// proceeds repay it first (interest, then principal) and the rest stays the borrower's; shares the book did not take
    /// stay pledged while anything is owed. A loan whose shares are all sold and still owes is written off (defaulted).
    /// </summary>
    private void TickLoans()
    {
        // Each loan is judged at its turn, at the price the liquidations before it left: a sale that drops a share's VWAP
        // brings the later loans on that node to their status in the same tick. (Choosing the loans before selling any
        // left a loan the first sale had pushed past the threshold unliquidated, and a tick due right after the tick.)
        foreach (LoanState l in _loans.Values)
        {
            if (!l.IsOpen) continue;
            LoanStatus status = StatusAt(l, _now);
            if (status == l.Status) continue;
            Accrue(l);
            if (status != LoanStatus.Liquidated) { l.Status = status; continue; }
            if (l.Lease != 0) LiquidateLease(l);
            else Liquidate(l);
        }
    }

    private void Liquidate(LoanState l)
    {
        TraderState trader = _traders[l.Borrower];
        HoldingState h = _holdings[(l.Borrower, l.Node)];
        ShareNodeState shares = _shareNodes[l.Node];
        Instrument instrument = _instruments.Get(shares.Instrument);
        // The pledged shares back in the holding, offered by an order of the borrower's.
        h.Pledged -= l.Shares;
        h.Free = checked(h.Free + l.Shares);
        MoveShares(ChartOfAccounts.SharePledge((ulong)l.Borrower, (ulong)l.Node), ChartOfAccounts.ShareHolding((ulong)l.Borrower, (ulong)l.Node), l.Node, l.Shares, l.Id);
        long offered = l.Shares;
        l.Shares = 0;
        long before = trader.Available;
        OrderState order = NewOrder();
        order.Id = checked((long)IdOf(_seq, (ulong)++_leaseIndex));
        order.Owner = l.Borrower;
        order.Instrument = instrument;
        order.Side = Side.Sell;
        order.Limit = instrument.Band.MinPrice;
        order.Remaining = offered;
        order.ResoldLease = 0;
        order.HoldId = 0;
        order.HoldAmount = 0;
        _shareKind.Reserve(order, offered);
        AddOrder(order, trader);
        var command = new OrderCommand
        {
            Kind = CommandKind.Place, Side = Side.Sell, Type = OrderType.Limit, TimeInForce = TimeInForce.ImmediateOrCancel,
            OrderId = order.Id, Owner = l.Borrower, Price = instrument.Band.MinPrice, Quantity = offered, Timestamp = _now,
        };
        int fillsBefore = _fills.Count;
        ApplyBook(BookFor(instrument), command, order.Id);
        long proceeds = trader.Available - before, sold = 0;
        for (int i = fillsBefore; i < _fills.Count; i++) if (_fills[i].OrderId == order.Id) sold += _fills[i].Quantity;
        l.Proceeds = checked(l.Proceeds + proceeds);
        PayLoan(l, trader, Math.Min(proceeds, l.Principal + l.Interest));
        long unsold = offered - sold;
        if (l.Principal + l.Interest == 0)
        {
            l.Status = LoanStatus.Liquidated; // what the book did not take stays free
            return;
        }
        if (unsold > 0)
        {
            // Still owed: the unsold shares stay pledged, and the loan stays open (liquidated again when the book has bids).
            h.Free -= unsold;
            h.Pledged = checked(h.Pledged + unsold);
            MoveShares(ChartOfAccounts.ShareHolding((ulong)l.Borrower, (ulong)l.Node), ChartOfAccounts.SharePledge((ulong)l.Borrower, (ulong)l.Node), l.Node, unsold, l.Id);
            l.Shares = unsold;
            l.Status = LoanStatus.MarginCall;
            return;
        }
        l.WrittenOff = l.Principal + l.Interest;
        l.Principal = 0;
        l.Interest = 0;
        l.Status = LoanStatus.Defaulted;
    }

    // ================================================================== views

    /// <summary>A loan as of <paramref name="now"/> (interest accrued to then, not applied), or null.</summary>
    public LoanView? Loan(long id, long now) => _loans.TryGetValue(id, out LoanState? l) ? View(l, now) : null;

    /// <summary>A borrower's loans (or everyone's), by id.</summary>
    public IReadOnlyList<LoanView> Loans(long? borrower, long now) =>
        _loans.Values.Where(l => borrower is null || l.Borrower == borrower).Select(l => View(l, now)).ToList();

    private LoanView View(LoanState l, long now)
    {
        long interest = l.IsOpen ? checked(l.Interest + AccrueTo(l, Math.Max(now, l.AccruedTo)).Interest) : l.Interest;
        long value = l.IsOpen ? CollateralValue(l) : 0;
        long ltv = l.IsOpen && l.Status != LoanStatus.Liquidating ? LtvBp(l.Principal + interest, value) : 0;
        return new LoanView(l.Id, l.Borrower, l.Node, l.Shares, l.Lent, l.Principal, interest, l.Repaid, value, ltv,
            l.IsOpen ? StatusAt(l, Math.Max(now, l.AccruedTo)) switch { LoanStatus.Liquidated => LoanStatus.MarginCall, var s => s } : l.Status,
            l.OpenedAt, now, l.Proceeds, l.WrittenOff, l.Lease != 0 ? LoanCollateral.Lease : LoanCollateral.Shares, l.Lease,
            l.IsOpen && l.Lease != 0 ? LeaseGpuHoursLeft(l.Lease) : 0);
    }

    private void CheckLoanInvariants()
    {
        var pledged = new Dictionary<(long, long), long>();
        foreach (LoanState l in _loans.Values)
        {
            if (l.Principal < 0 || l.Interest < 0 || l.Shares < 0) throw new InvalidOperationException($"Loan {l.Id} owes {l.Principal} + {l.Interest} on {l.Shares} shares.");
            if (!l.IsOpen && (l.Principal != 0 || l.Interest != 0 || l.Shares != 0)) throw new InvalidOperationException($"Closed loan {l.Id} still owes or holds shares.");
            if (l.Lease == 0) pledged[(l.Borrower, l.Node)] = pledged.GetValueOrDefault((l.Borrower, l.Node)) + l.Shares;
            else if (l.Shares != 0 || l.Node != 0) throw new InvalidOperationException($"Lease loan {l.Id} holds shares.");
        }
        CheckLeaseLoanInvariants();
        foreach (((long holder, long node), HoldingState h) in _holdings)
            if (h.Pledged != pledged.GetValueOrDefault((holder, node)))
                throw new InvalidOperationException($"Holder {holder} of node {node} has {h.Pledged} pledged, its loans {pledged.GetValueOrDefault((holder, node))}.");
    }
}
