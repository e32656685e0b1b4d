using ComputeGrid.Exchange.Instruments;
using ComputeGrid.Exchange.Matching;
using ComputeGrid.Exchange.StateMachine;
using ComputeGrid.Exchange.Trading;
using ComputeGrid.Ledger;

namespace ComputeGrid.Exchange.Tests.StateMachine;

/// <summary>
/// The reference's loans against pledged leases, written plainly from the rules (no code shared with the state machine).
/// A compute instrument's reference price is the VWAP of its last <see cref="PledgeTerms.VwapTrades"/> trades (every trade
/// kept in a list). A lease's collateral is its undelivered GPU-hours (0 once it is no longer active) × its instrument's
/// VWAP less the haircut. A pledge needs the whole lease: active, time left, none of it offered or resold; it lends from
/// the pool into the trading account. A pledged lease is not resold nor pledged again. At the liquidation threshold a tick
/// sells its time with immediate-or-cancel sells at the band's floor (its own instrument when nothing is delivered and it
/// still trades; else each hour left, on the hourly instrument that trades); a sale leaves the loan liquidating (no more
/// interest), repaid from each payment of the resold leases; nothing sold leaves it in margin call; nothing left to sell
/// writes it off. A delivery after which a liquidating loan's lease is no longer active writes off what it still owes. A
/// pledged lease that fails pays its refund and penalty to the loan first: repaid in full, or written off.
/// </summary>
public sealed partial class ReferenceExchange
{
    // Every trade on each compute instrument, oldest first.
    private readonly Dictionary<int, List<(long Price, long Quantity)>> _computeTrades = [];

    private void RecordComputeTrade(int instrument, long price, long quantity)
    {
        if (!_computeTrades.TryGetValue(instrument, out List<(long, long)>? trades)) _computeTrades[instrument] = trades = [];
        trades.Add((price, quantity));
    }

    /// <summary>The VWAP of the instrument's last trades, rounded down; 0 before any.</summary>
    public long InstrumentVwap(int instrument)
    {
        if (!_computeTrades.TryGetValue(instrument, out List<(long Price, long Quantity)>? trades) || trades.Count == 0) return 0;
        Int128 notional = 0;
        long volume = 0;
        foreach ((long price, long quantity) in trades.TakeLast(_pledges.VwapTrades))
        {
            notional += (Int128)price * quantity;
            volume += quantity;
        }
        return (long)(notional / volume);
    }

    /// <summary>The lease's undelivered GPU-hours while it is active, else 0.</summary>
    private long LeaseHoursLeft(long id) => _leases.Find(l => l.Id == id) is { Status: LeaseStatus.Active } l ? l.GpuHours - l.Delivered : 0;

    private long LeaseValue(long id)
    {
        long left = LeaseHoursLeft(id);
        return left == 0 ? 0 : (long)((Int128)left * InstrumentVwap(_leases.Find(l => l.Id == id)!.Instrument) * (10_000 - _pledges.HaircutBp) / 10_000);
    }

    private long ValueOf(Loan l) => l.Lease != 0 ? LeaseValue(l.Lease) : CollateralValue(l.Node, l.Shares);

    /// <summary>The most a pledge of the lease may borrow now (0 when it has no value).</summary>
    public long LeaseLoanMax(long lease) => (long)((Int128)LeaseValue(lease) * _pledges.MaxLoanToValueBp / 10_000);

    /// <summary>Whether an open loan holds the lease.</summary>
    public bool IsPledged(long lease) => _loans.Values.Any(l => l.IsOpen && l.Lease == lease);

    private bool TimeOffered(long lease) => _orders.Values.Any(o => o.ResoldLease == lease) || _leases.Any(l => l.Parent == lease);

    private ReferenceResult PledgeLease(in ExchangeCommand c)
    {
        if (!_traders.TryGetValue(c.Owner, out Trader? trader)) return Refuse(ExchangeError.UnknownTrader);
        long id = c.Target;
        LeaseRecord? lease = _leases.Find(l => l.Id == id);
        if (lease is null) return Refuse(ExchangeError.UnknownLease);
        if (lease.Buyer != c.Owner) return Refuse(ExchangeError.NotOwner);
        if (c.Amount <= 0) return Refuse(ExchangeError.InvalidRequest);
        if (IsPledged(id)) return Refuse(ExchangeError.LeasePledged);
        long left = LeaseHoursLeft(id);
        if (left == 0) return Refuse(ExchangeError.LeaseNotPledgeable, RefusalDetail.LeaseNotActive, (long)lease.Status);
        if (TimeOffered(id)) return Refuse(ExchangeError.LeaseNotPledgeable, RefusalDetail.LeaseResold, id);
        long vwap = InstrumentVwap(lease.Instrument);
        if (vwap == 0) return Refuse(ExchangeError.NoPrice);
        if ((Int128)left * vwap > long.MaxValue) return Refuse(ExchangeError.NotionalOverflows);
        long max = LeaseLoanMax(id);
        if (c.Amount > max) return Refuse(ExchangeError.LoanTooLarge, RefusalDetail.LoanMax, max);

        _loans.Add((long)_seq, new Loan
        {
            Id = (long)_seq, Borrower = c.Owner, Node = 0, Lease = id, Lent = c.Amount, OpenedAt = _now, Principal = c.Amount, AccruedTo = _now,
            Status = LoanStatus.Open,
        });
        CreateAccount(LendingPool, AccountFlags.None);
        Post(LendingPool, ExchangeStateMachine.TradingAccount(c.Owner), c.Amount);
        trader.Cash += c.Amount;
        return Done((long)_seq);
    }

    private void WriteOff(Loan l)
    {
        l.WrittenOff += l.Principal + l.Interest;
        l.Principal = 0;
        l.Interest = 0;
        l.Status = LoanStatus.Defaulted;
    }

    private void LiquidateLease(Loan l, List<FillRecord> fills)
    {
        if (LeaseHoursLeft(l.Lease) == 0)
        {
            WriteOff(l);
            return;
        }
        LeaseRecord lease = _leases.Single(x => x.Id == l.Lease);
        Instrument leased = InstrumentOf(lease.Instrument)!;
        bool Sellable(Instrument i) => _registry.IsActive(i.Id) && _now >= i.TradingStart && _now < i.TradingEnd && i.DeliveryStart >= _now;
        long sold = 0;
        if (lease.Delivered == 0 && Sellable(leased)) sold = SellLeaseTime(l, lease, leased, fills);
        else
        {
            for (long h = Math.Max(lease.Start, (_now + NsPerHour - 1) / NsPerHour * NsPerHour); h < lease.End; h += NsPerHour)
            {
                long hour = h;
                Instrument? i = _registry.Active.FirstOrDefault(x => x.Kind == DeliveryKind.HourlySpot && x.Gpu == leased.Gpu && x.Region == leased.Region && x.DeliveryStart == hour);
                if (i is not null && Sellable(i)) sold += SellLeaseTime(l, lease, i, fills);
            }
        }
        if (sold > 0)
        {
            l.Status = LoanStatus.Liquidating;
            l.WentLiquidating = true;
        }
        else SetStatus(l, LoanStatus.MarginCall);
    }

    private long SellLeaseTime(Loan l, LeaseRecord lease, Instrument i, List<FillRecord> fills)
    {
        var sell = new Order
        {
            Id = (long)((_seq << 20) | (uint)++_leasesOfCommand), Owner = l.Borrower, Instrument = i, Side = Side.Sell, Limit = i.Band.MinPrice,
            Remaining = lease.Gpus * HoursOf(i), ResoldLease = lease.Id,
        };
        _orders.Add(sell.Id, sell);
        if (!_books.ContainsKey(i.Id)) _books[i.Id] = new ReferenceOrderBook(i.Band, _ordersPerBookMax);
        int before = fills.Count;
        RunBook(i.Id, new OrderCommand
        {
            Kind = CommandKind.Place, Side = Side.Sell, Type = OrderType.Limit, TimeInForce = TimeInForce.ImmediateOrCancel, OrderId = sell.Id,
            Owner = l.Borrower, Price = i.Band.MinPrice, Quantity = sell.Remaining, Timestamp = _now,
        }, sell.Id, fills);
        return fills.Skip(before).Where(f => f.OrderId == sell.Id).Sum(f => f.Quantity);
    }

    /// <summary>A lease resold from <paramref name="parent"/> paid its seller: a liquidating loan on the parent takes it first.</summary>
    private void LeaseSaleProceeds(long parent, long payee, long amount)
    {
        Loan? l = _loans.Values.FirstOrDefault(x => x.Status == LoanStatus.Liquidating && x.Lease == parent);
        if (l is null || l.Borrower != payee) return;
        l.Proceeds += amount;
        PayLoan(l, Math.Min(amount, l.Principal + l.Interest));
        if (l.Principal + l.Interest == 0) l.Status = LoanStatus.Liquidated;
    }

    /// <summary>A lease failed and its buyer was paid <paramref name="paid"/>: the open loan holding it is repaid from it first, else written off.</summary>
    private void LeaseFailed(LeaseRecord lease, long paid)
    {
        Loan? l = _loans.Values.FirstOrDefault(x => x.IsOpen && x.Lease == lease.Id);
        if (l is null) return;
        Accrue(l);
        l.Proceeds += paid;
        l.RefundedToLoan = true;
        PayLoan(l, Math.Min(paid, l.Principal + l.Interest));
        if (l.Principal + l.Interest == 0) l.Status = l.Status == LoanStatus.Liquidating ? LoanStatus.Liquidated : LoanStatus.Repaid;
        else WriteOff(l);
    }

    /// <summary>After a delivery: each liquidating loan whose lease is no longer active writes off what it owes, by id.</summary>
    private void EndLiquidatingLeaseLoans()
    {
        foreach (Loan l in _loans.Values.Where(l => l.Status == LoanStatus.Liquidating && _leases.Single(x => x.Id == l.Lease).Status != LeaseStatus.Active).ToList())
            WriteOff(l);
    }
}
