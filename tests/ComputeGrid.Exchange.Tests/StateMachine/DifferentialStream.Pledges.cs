using ComputeGrid.Exchange.Instruments;
using ComputeGrid.Exchange.Matching;
using ComputeGrid.Exchange.StateMachine;
using ComputeGrid.Exchange.Trading;
using ComputeGrid.Ledger;

namespace ComputeGrid.Exchange.Tests.StateMachine;

/// <summary>
/// Loans against pledged shares in the streams: pledges (mostly within the loan-to-value, many at the most allowed, some of
/// more shares than are free, too big, of a node with no price or no shares, by holders that are not traders),
/// repayments (in part, in full, more than due, more than the balance, by others, of loans unknown or closed), and price
/// falls on share books (a low bid and a sale into it) that move the VWAP, so ticks call margins, liquidate through the
/// book and write off; the terms vary by stream (a short VWAP window, a rate high enough that interest alone calls the
/// margin). After every batch every loan, the lending pool, the pledge accounts and the VWAPs are checked.
/// </summary>
internal sealed partial class DifferentialStream
{
    /// <summary>Half the streams lend on the default terms; the others on terms drawn here (kept in order: max LTV &lt; margin call &lt; liquidation).</summary>
    private PledgeTerms DrawPledgeTerms() => Chance(50) ? new PledgeTerms() : new PledgeTerms
    {
        HaircutBp = new[] { 0, 2_000, 5_000 }[_rng.Next(3)],
        MaxLoanToValueBp = new[] { 5_000, 7_000 }[_rng.Next(2)],
        MarginCallBp = new[] { 7_500, 8_500 }[_rng.Next(2)],
        LiquidationBp = new[] { 9_000, 10_000 }[_rng.Next(2)],
        // 8 % a year; none; 50,000 % a year (about 5.7 % an hour: interest alone calls margins within a stream).
        InterestBpPerYear = new[] { 800, 0, 5_000_000 }[_rng.Next(3)],
        VwapTrades = new[] { 64, 8, 2, 1 }[_rng.Next(4)],
    };

    private static bool IsOpen(LoanView l) => l.Status is LoanStatus.Open or LoanStatus.MarginCall;

    private ExchangeCommand Pledge()
    {
        if (Chance(3)) return ExchangeCommand.Pledge(Trader(), 66_666, 10, 1_000_000); // a node that issued no shares
        List<ShareHoldingView> free = _reference.Holdings().Where(h => h.Free > 0).ToList();
        if (free.Count == 0) return ExchangeCommand.Pledge(Trader(), Pick(_reference.ShareNodes).Node, 10, 1_000_000);
        // Mostly a trader's free shares of a node that has a price; sometimes a node without one, or a holder that is no trader.
        List<ShareHoldingView> likely = free.Where(h => _reference.Traders.Contains(h.Holder) && _reference.Vwap(h.Node) > 0).ToList();
        ShareHoldingView h = likely.Count > 0 && Chance(88) ? Pick(likely) : Pick(free);
        long shares = _rng.Next(100) switch
        {
            < 6 => h.Free + _rng.Next(1, 10),              // more than are free
            < 9 => h.Free + h.Offered + h.Pledged,         // offered and pledged shares are not free
            < 11 => 0,
            < 12 => -_rng.Next(1, 5),
            < 35 => h.Free,
            _ => _rng.NextInt64(1, Math.Min(h.Free, 5_000) + 1),
        };
        long max = shares > 0 && shares <= h.Free ? _reference.LoanMax(h.Node, shares) : 1_000_000;
        long loan = _rng.Next(100) switch
        {
            < 8 => max + 1,                                // one micro-USD too much
            < 10 => max + _rng.Next(2, 1_000_000),
            < 12 => 0,
            < 13 => -1,
            < 50 => max,                                   // the most: the first fall calls the margin
            _ => Math.Max(1, max * _rng.Next(20, 100) / 100),
        };
        return ExchangeCommand.Pledge(Chance(95) ? h.Holder : AnyOwner(), h.Node, shares, loan);
    }

    private ExchangeCommand Repay()
    {
        IReadOnlyList<LoanView> loans = _reference.Loans(_now);
        if (loans.Count == 0 || Chance(5))
            return ExchangeCommand.Repay(Trader(), Chance(50) ? 555_555 : (long)_seq - _rng.Next(1, 30), _rng.Next(1, 5_000_000));
        List<LoanView> open = loans.Where(IsOpen).ToList();
        LoanView l = open.Count > 0 && Chance(90) ? Pick(open) : Pick(loans);
        long due = l.Principal + l.Interest; // as of the last command: the repay's own time may add a little interest
        long available = _reference.Available(l.Borrower) ?? 0;
        long amount = _rng.Next(100) switch
        {
            < 20 => due,
            < 40 => due + _rng.Next(1, 2_000_000),        // more than due: only what is due is taken
            < 70 => _rng.NextInt64(1, Math.Max(2, due / 2)),
            < 78 => available + 1,                          // more than the balance (refused when it is less than due)
            < 82 => 0,
            < 84 => -_rng.Next(1, 100),
            _ => Math.Max(1, due - _rng.Next(0, 1_000)),
        };
        return ExchangeCommand.Repay(Chance(90) ? l.Borrower : AnyOwner(), l.Id, amount);
    }

    /// <summary>
    /// A price fall on a share book, mostly of a node with open loans: a funded trader bids well below the VWAP for about
    /// the volume it is taken over (up to three times), a holder sells into the bid at once, and a tick follows now and
    /// then. Something often rests for a liquidation to sell into: the low bid larger than the sale by the shares pledged
    /// on the node (a sale that may not cover the loans: default), or another trader's bid for them nearer the old price
    /// placed before the tick (a sale that mostly does: liquidated).
    /// </summary>
    private ExchangeCommand SharePriceFall()
    {
        List<long> loaned = _reference.Loans(_now).Where(l => IsOpen(l) && l.Collateral == LoanCollateral.Shares).Select(l => l.Node).Distinct().ToList();
        long node = loaned.Count > 0 && Chance(85) ? Pick(loaned) : Pick(_reference.ShareNodes).Node;
        Instrument i = _reference.InstrumentOf(_reference.ShareNodes.First(n => n.Node == node).Instrument)!;
        long vwap = _reference.Vwap(node) is long v and > 0 ? v : ShareMid;
        long raw = vwap * new[] { 90, 70, 55, 40, 25, 10, 2 }[_rng.Next(7)] / 100;
        long price = Math.Clamp(i.Band.MinPrice + (raw - i.Band.MinPrice) / i.Band.Tick * i.Band.Tick, i.Band.MinPrice, i.Band.MaxPrice);
        List<ShareHoldingView> sellers = _reference.Holdings().Where(h => h.Node == node && h.Free > 0 && _reference.Traders.Contains(h.Holder))
            .OrderByDescending(h => h.Free).ToList();
        if (sellers.Count == 0) return PlaceShares();
        ShareHoldingView seller = Chance(70) ? sellers[0] : Pick(sellers);
        long quantity = Math.Min(seller.Free, Math.Max(10, _reference.RecentShareVolume(node)) * _rng.Next(1, 4));
        long pledged = _reference.Loans(_now).Where(l => IsOpen(l) && l.Node == node).Sum(l => l.Shares);
        int rest = _rng.Next(10); // 0–3: nothing more; 4–6: a larger low bid; 7–9: a second bid nearer the old price
        long bid = quantity + (rest is >= 4 and <= 6 ? pledged : 0);
        long[] buyers = _reference.Traders.Where(t => t != seller.Holder && _reference.Available(t) >= price * bid).ToArray();
        if (buyers.Length == 0) return PlaceShares();
        long buyer = Pick(buyers);
        _setup.Enqueue(() => ExchangeCommand.Place(seller.Holder, i.Id, Side.Sell, OrderType.Limit, TimeInForce.ImmediateOrCancel, price, quantity));
        if (rest >= 7 && pledged > 0)
        {
            long better = Math.Clamp(i.Band.MinPrice + (vwap * _rng.Next(60, 100) / 100 - i.Band.MinPrice) / i.Band.Tick * i.Band.Tick, i.Band.MinPrice, i.Band.MaxPrice);
            long[] others = _reference.Traders.Where(t => t != buyer && t != seller.Holder && _reference.Available(t) >= better * pledged).ToArray();
            if (others.Length > 0)
            {
                long other = Pick(others);
                _setup.Enqueue(() => ExchangeCommand.Place(other, i.Id, Side.Buy, OrderType.Limit, TimeInForce.GoodTillCancel, better, pledged));
                _setup.Enqueue(ExchangeCommand.Tick);
            }
        }
        else if (Chance(60)) _setup.Enqueue(ExchangeCommand.Tick);
        return ExchangeCommand.Place(buyer, i.Id, Side.Buy, OrderType.Limit, TimeInForce.GoodTillCancel, price, bid);
    }

    // ================================================================== checks

    /// <summary>
    /// The loans after a batch: each one (principal, interest accrued to now, status, shares, lent, repaid, proceeds, written
    /// off, collateral value, loan-to-value) the reference's; the lending pool's balance in the ledger what was repaid less
    /// what was lent; the pledged shares, in the register and in the pledge accounts, the open loans' shares; each share's
    /// VWAP the reference's; and a tick due whenever some open loan's status has changed.
    /// </summary>
    private void CheckLoans()
    {
        IReadOnlyList<LoanView> loans = _machine.Loans(null, _now), expected = _reference.Loans(_now);
        Require(loans.SequenceEqual(expected), () => $"loans\n    {string.Join("\n    ", loans)}\nreference\n    {string.Join("\n    ", expected)}");
        long pool = _ledger.TryGetAccount(ReferenceExchange.LendingPool, out Account a) ? a.CreditBalance : 0;
        Require(pool == expected.Sum(l => l.Repaid - l.Lent), () => $"the lending pool's balance is {pool}, the loans' repaid − lent {expected.Sum(l => l.Repaid - l.Lent)}");
        long onLoan = expected.Where(IsOpen).Sum(l => l.Shares);
        long pledged = 0, inPledgeAccounts = 0;
        foreach (ShareHoldingView h in _reference.Holdings())
        {
            pledged += _machine.HoldingOf(h.Holder, h.Node).Pledged;
            if (_ledger.TryGetAccount(ReferenceExchange.PledgeAccount(h.Holder, h.Node), out Account p)) inPledgeAccounts += p.CreditBalance;
        }
        Require(pledged == onLoan && inPledgeAccounts == onLoan, () => $"pledged {pledged}, in pledge accounts {inPledgeAccounts}, the open loans hold {onLoan}");
        foreach (ShareNodeView n in _reference.ShareNodes)
            Require(_machine.ShareVwap(n.Node) == _reference.Vwap(n.Node), () => $"node {n.Node}'s VWAP {_machine.ShareVwap(n.Node)}, reference {_reference.Vwap(n.Node)}");
        Require(!_reference.LoansDue(_now) || _machine.TickDue(_now), () => "a loan's status changed but no tick is due");
    }
}
