using ComputeGrid.Core;
using ComputeGrid.Exchange.Instruments;
using ComputeGrid.Exchange.Matching;
using ComputeGrid.Exchange.Trading;
using ComputeGrid.Ledger;

namespace ComputeGrid.Exchange.StateMachine;

/// <summary>
/// Leases as collateral: a lease holder pledges a whole active lease (none of its time offered or sold) for a loan from the
/// lending pool, on the same terms as shares. The collateral is the lease's undelivered GPU-hours at its instrument's
/// recent VWAP less the haircut, so it runs down as the lease is delivered (the borrower keeps using the compute) and a
/// loan can reach its margin call and liquidation that way as well as by a price fall. A pledged lease cannot be resold
/// or pledged again (leases have no transfer). Liquidation sells its time through the resale path (immediate-or-cancel
/// at the band's floor: the lease's own instrument while it still trades, else the hourly spot of each hour left that
/// trades); a resold lease pays its seller as it is delivered, so the loan (its interest stopped) is then
/// <see cref="LoanStatus.Liquidating"/> and repaid from each payment of the time sold, first, the rest the borrower's;
/// it is written off if the lease ends still owing. A pledged lease that fails pays its refund (and penalty) to the loan
/// first. The lease itself is no ledger asset (its money is in its escrow account): the lien is the exchange's record,
/// as the register of leases; every money movement is a ledger transfer (loan, repayment, refund, resale payment).
/// </summary>
public sealed partial class ExchangeStateMachine
{
    // Open lease loans by their pledged lease: a lease is pledged while it is here.
    private readonly Dictionary<long, LoanState> _leaseLoans = [];
    // Compute instruments' recent trades (the reference price of the leases bought on them), dropped with the instrument.
    private readonly Dictionary<int, VwapState> _instrumentVwap = [];
    private readonly List<LoanState> _endedLeaseLoans = [];
    private readonly List<int> _vwapPruned = [];

    // Called by the compute kind for each trade (on the order path: no allocation once an instrument's ring exists).
    private void RecordComputeTrade(int instrument, long price, long quantity)
    {
        if (!_instrumentVwap.TryGetValue(instrument, out VwapState? v)) _instrumentVwap[instrument] = v = new VwapState(Terms.VwapTrades);
        v.Add(price, quantity);
    }

    /// <summary>A compute instrument's reference price: the VWAP of its recent trades, per GPU-hour (0 before any).</summary>
    public long InstrumentVwap(int instrument) => _instrumentVwap.TryGetValue(instrument, out VwapState? v) ? v.Price : 0;

    /// <summary>Whether lease <paramref name="lease"/> is pledged for an open loan.</summary>
    public bool IsLeasePledged(long lease) => _leaseLoans.ContainsKey(lease);

    private long LeaseGpuHoursLeft(long leaseId) =>
        _leases.TryGet(leaseId, out Lease? l) && l.Status == LeaseStatus.Active ? l.GpuHours - l.DeliveredGpuHours : 0;

    private long LeaseCollateralValue(long leaseId)
    {
        long left = LeaseGpuHoursLeft(leaseId);
        return left == 0 ? 0 : Money.MulDiv(checked(left * InstrumentVwap(_leases.Get(leaseId).Instrument)), 10_000 - Terms.HaircutBp, 10_000);
    }

    private CommandResult PledgeLease(in ExchangeCommand c)
    {
        if (!_traders.TryGetValue(c.Owner, out TraderState? trader)) return Refused(ExchangeError.UnknownTrader);
        if (!_leases.TryGet(c.Target, out Lease? lease)) return Refused(ExchangeError.UnknownLease);
        if (lease.Buyer != c.Owner) return Refused(ExchangeError.NotOwner);
        if (c.Amount <= 0) return Refused(ExchangeError.InvalidRequest);
        if (_leaseLoans.ContainsKey(lease.Id)) return Refused(ExchangeError.LeasePledged);
        long left = LeaseGpuHoursLeft(lease.Id);
        if (left == 0) return Refused(ExchangeError.LeaseNotPledgeable, RefusalDetail.LeaseNotActive, (long)lease.Status);
        if (lease.ResoldGpus.Count > 0) return Refused(ExchangeError.LeaseNotPledgeable, RefusalDetail.LeaseResold, lease.Id);
        long vwap = InstrumentVwap(lease.Instrument);
        if (vwap == 0) return Refused(ExchangeError.NoPrice);
        if (!TryMul(left, vwap, out _)) return Refused(ExchangeError.NotionalOverflows);
        long max = Money.MulDiv(LeaseCollateralValue(lease.Id), Terms.MaxLoanToValueBp, 10_000);
        if (c.Amount > max) return Refused(ExchangeError.LoanTooLarge, RefusalDetail.LoanMax, max);

        // Accepted: the lease is held by the loan, the loan is paid into the trading account.
        var loan = new LoanState
        {
            Id = (long)_seq, Borrower = c.Owner, Lease = lease.Id, Lent = c.Amount, Principal = c.Amount, OpenedAt = _now, AccruedTo = _now,
            Status = LoanStatus.Open,
        };
        _loans.Add(loan.Id, loan);
        _leaseLoans.Add(lease.Id, loan);
        _plan.Account(ChartOfAccounts.NewAccount(AccountCode.LendingPool, LendingPool, Asset.Usd));
        _plan.Transfer(new Transfer
        {
            Id = NextTransferId(), DebitAccountId = LendingPool, CreditAccountId = trader.Account, Amount = c.Amount, Asset = Asset.Usd.Code,
            Code = (ushort)TransferCode.Loan, UserData64 = (ulong)loan.Id,
        });
        trader.Available = checked(trader.Available + c.Amount);
        return new CommandResult { Subject = loan.Id };
    }

    private void ReleaseLease(LoanState l) => _leaseLoans.Remove(l.Lease);

    // What is still owed is the lending pool's loss; the lease is released.
    private void WriteOff(LoanState l)
    {
        l.WrittenOff = checked(l.WrittenOff + l.Due);
        l.Principal = 0;
        l.Interest = 0;
        CloseLoan(l, LoanStatus.Defaulted);
    }

    /// <summary>
    /// A lease loan at its liquidation threshold: the lease's time is sold (immediate-or-cancel sells at the band's floor in
    /// the borrower's name, through the resale path); when the book took some, the loan waits for the sale's payments
    /// (<see cref="LoanStatus.Liquidating"/>); when it took none, the loan stays in margin call (tried again at the next
    /// tick); a lease with nothing left to sell (delivered) writes the loan off.
    /// </summary>
    private void LiquidateLease(LoanState l)
    {
        Lease lease = _leases.Get(l.Lease);
        if (LeaseGpuHoursLeft(lease.Id) == 0)
        {
            WriteOff(l);
            return;
        }
        Instrument leased = _instruments.Get(lease.Instrument);
        long sold = 0;
        if (lease.DeliveredGpuHours == 0 && Sellable(leased)) sold = SellLeaseTime(l, lease, leased);
        else
        {
            // In delivery (or past its own gate): each whole hour still ahead, on its hourly spot book if that trades now.
            long first = Math.Max(lease.Start, checked((_now + DeliveryCalendar.NsPerHour - 1) / DeliveryCalendar.NsPerHour * DeliveryCalendar.NsPerHour));
            for (long h = first; h < lease.End; h += DeliveryCalendar.NsPerHour)
                if (_instruments.TryGetBySymbol(InstrumentSymbol.Format(leased.Gpu, leased.Region, DeliveryKind.HourlySpot, h), out Instrument? hourly) && Sellable(hourly))
                    sold = checked(sold + SellLeaseTime(l, lease, hourly));
        }
        l.Status = sold > 0 ? LoanStatus.Liquidating : LoanStatus.MarginCall;
    }

    private bool Sellable(Instrument i) => _instruments.IsActive(i.Id) && i.IsTradingAt(_now) && i.DeliveryStart >= _now;

    // One immediate-or-cancel resale of all the lease's GPUs on instrument i at the band's floor; the GPU-hours sold.
    private long SellLeaseTime(LoanState l, Lease lease, Instrument i)
    {
        TraderState trader = _traders[l.Borrower];
        OrderState order = NewOrder();
        order.Id = checked((long)IdOf(_seq, (ulong)++_leaseIndex));
        order.Owner = l.Borrower;
        order.Instrument = i;
        order.Side = Side.Sell;
        order.Limit = i.Band.MinPrice;
        order.Remaining = checked(lease.Gpus * i.Hours);
        order.HoldId = 0;
        order.HoldAmount = 0;
        order.ResoldLease = lease.Id;
        CommitSell(order, lease.Gpus);
        AddOrder(order, trader);
        var command = new OrderCommand
        {
            Kind = CommandKind.Place, Side = Side.Sell, Type = OrderType.Limit, TimeInForce = TimeInForce.ImmediateOrCancel,
            OrderId = order.Id, Owner = l.Borrower, Price = i.Band.MinPrice, Quantity = order.Remaining, Timestamp = _now,
        };
        int fillsBefore = _fills.Count;
        ApplyBook(BookFor(i), command, order.Id);
        long sold = 0;
        for (int k = fillsBefore; k < _fills.Count; k++) if (_fills[k].OrderId == order.Id) sold += _fills[k].Quantity;
        return sold;
    }

    /// <summary>A lease resold from <paramref name="parent"/> paid <paramref name="amount"/> to its seller: a liquidating loan on the parent takes it first.</summary>
    private void LeaseSaleProceeds(long parent, long payee, long amount)
    {
        if (_leaseLoans.Count == 0 || !_leaseLoans.TryGetValue(parent, out LoanState? l) || l.Status != LoanStatus.Liquidating || l.Borrower != payee) return;
        l.Proceeds = checked(l.Proceeds + amount);
        PayLoan(l, _traders[payee], Math.Min(amount, l.Due));
        if (l.Due == 0) CloseLoan(l, LoanStatus.Liquidated);
    }

    /// <summary>
    /// A pledged lease failed and its buyer was paid <paramref name="paid"/> (refund and penalty): the loan takes it first
    /// (interest to now, then principal); a loan it does not cover is written off, the lease being gone.
    /// </summary>
    private void PledgedLeaseFailed(Lease lease, long paid)
    {
        if (_leaseLoans.Count == 0 || !_leaseLoans.TryGetValue(lease.Id, out LoanState? l)) return;
        Accrue(l);
        l.Proceeds = checked(l.Proceeds + paid);
        PayLoan(l, _traders[l.Borrower], Math.Min(paid, l.Due));
        if (l.Due == 0) CloseLoan(l, l.Status == LoanStatus.Liquidating ? LoanStatus.Liquidated : LoanStatus.Repaid);
        else WriteOff(l);
    }

    /// <summary>After a delivery: a liquidating loan whose lease has ended (its sold time delivered and paid) is written off for what is still owed.</summary>
    private void EndLiquidatingLeaseLoans()
    {
        if (_leaseLoans.Count == 0) return;
        _endedLeaseLoans.Clear();
        foreach (LoanState l in _leaseLoans.Values)
            if (l.Status == LoanStatus.Liquidating && _leases.Get(l.Lease).Status != LeaseStatus.Active) _endedLeaseLoans.Add(l);
        _endedLeaseLoans.Sort((a, b) => a.Id.CompareTo(b.Id));
        foreach (LoanState l in _endedLeaseLoans) WriteOff(l);
    }

    // Recent trades of instruments that are gone (pruned) are forgotten with them.
    private void PruneInstrumentVwap()
    {
        _vwapPruned.Clear();
        foreach (int id in _instrumentVwap.Keys)
            if (!_instruments.TryGet(id, out _)) _vwapPruned.Add(id);
        foreach (int id in _vwapPruned) _instrumentVwap.Remove(id);
    }

    private void CheckLeaseLoanInvariants()
    {
        int open = 0;
        foreach (LoanState l in _loans.Values)
        {
            if (l.Lease == 0 || !l.IsOpen) continue;
            open++;
            if (!_leaseLoans.TryGetValue(l.Lease, out LoanState? held) || held != l) throw new InvalidOperationException($"Lease loan {l.Id} does not hold lease {l.Lease}.");
            if (!_leases.TryGet(l.Lease, out Lease? lease) || lease.Buyer != l.Borrower) throw new InvalidOperationException($"Lease loan {l.Id}'s lease {l.Lease} is gone or not its borrower's.");
            if (l.Status != LoanStatus.Liquidating && lease.ResoldGpus.Count > 0) throw new InvalidOperationException($"Pledged lease {l.Lease} has time resold before its liquidation.");
        }
        if (open != _leaseLoans.Count) throw new InvalidOperationException($"{_leaseLoans.Count} leases pledged, {open} open lease loans.");
    }
}
