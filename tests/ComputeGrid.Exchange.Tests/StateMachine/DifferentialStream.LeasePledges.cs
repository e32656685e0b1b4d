using ComputeGrid.Exchange.Instruments;
using ComputeGrid.Exchange.Matching;
using ComputeGrid.Exchange.StateMachine;
using ComputeGrid.Exchange.Trading;

namespace ComputeGrid.Exchange.Tests.StateMachine;

/// <summary>
/// Loans against pledged leases in the streams: pledges (mostly of a whole active lease at or under its most, some too big,
/// of leases that are another's, ended, partly resold, unknown or pledged already), price falls on a pledged lease's book (a
/// low bid and a provider's sale into it, sometimes a better bid resting for the liquidation), and, for a lease in delivery,
/// a bid on an hourly book of an hour it has left before a tick (its value runs down as it is delivered: the deliveries
/// the streams make call margins and liquidate hour by hour). Repayments come from <see cref="Repay"/>, failures from the
/// outages and timeouts the streams make anyway. Checked after every batch with the share loans (<see cref="CheckLoans"/>)
/// and by <see cref="CheckLeasePledges"/>.
/// </summary>
internal sealed partial class DifferentialStream
{
    private static bool IsOpenLeaseLoan(LoanView l) => l.Collateral == LoanCollateral.Lease && l.Status is LoanStatus.Open or LoanStatus.MarginCall;

    private ExchangeCommand PledgeLease()
    {
        IReadOnlyList<LeaseView> leases = _reference.Leases;
        if (leases.Count == 0 || Chance(3)) return ExchangeCommand.PledgeLease(Trader(), Chance(50) ? 5_555 : (long)_seq, 1_000_000);
        List<LeaseView> likely = leases.Where(l => l.Status == LeaseStatus.Active && _reference.Traders.Contains(l.Buyer) && !_reference.IsPledged(l.Id)
            && _reference.LeaseLoanMax(l.Id) > 0).ToList();
        LeaseView lease = likely.Count > 0 && Chance(88) ? Pick(likely) : Pick(leases);
        long max = _reference.LeaseLoanMax(lease.Id);
        long loan = _rng.Next(100) switch
        {
            < 8 => max + 1,                                // one micro-USD too much
            < 10 => max + _rng.Next(2, 1_000_000),
            < 12 => 0,
            < 13 => -1,
            < 55 => Math.Max(1, max),                      // the most: the first fall calls the margin
            _ => Math.Max(1, max * _rng.Next(20, 100) / 100),
        };
        return ExchangeCommand.PledgeLease(Chance(95) ? lease.Buyer : AnyOwner(), lease.Id, loan);
    }

    private ExchangeCommand LeasePriceFall()
    {
        // Often first the delivery that pays a liquidated lease's sold time (to its loan): the hours of it that have passed.
        List<LeaseView> selling = _reference.Loans(_now).Where(l => l is { Collateral: LoanCollateral.Lease, Status: LoanStatus.Liquidating })
            .Select(l => _reference.Leases.Single(x => x.Id == l.Lease)).Where(l => l.Status == LeaseStatus.Active && l.Gpus > 0
                && l.Start + (l.DeliveredGpuHours / l.Gpus + 1) * NsPerHour <= _now).ToList();
        if (selling.Count > 0 && Chance(60))
        {
            LeaseView s = Pick(selling);
            long passed = Math.Min((_now - s.Start) / NsPerHour, (s.End - s.Start) / NsPerHour);
            return new ExchangeCommand { Kind = ExchangeCommandKind.Deliver, Owner = s.Provider, Target = s.Id, From = s.Start + s.DeliveredGpuHours / s.Gpus * NsPerHour, To = s.Start + passed * NsPerHour };
        }
        List<LoanView> open = _reference.Loans(_now).Where(IsOpenLeaseLoan).ToList();
        if (open.Count == 0) return PledgeLease();
        long pledged = Pick(open).Lease;
        LeaseView lease = _reference.Leases.Single(l => l.Id == pledged);
        Instrument? own = _reference.InstrumentOf(lease.Instrument);
        if (own is null) return ExchangeCommand.Tick();
        if (!own.IsTradingAt(_now))
        {
            // Its book closed: bids on hours it has left (one, or up to eight), for a liquidation to sell into, and a tick.
            List<Instrument> hours = _reference.ActiveInstruments.Where(i => i.Kind == DeliveryKind.HourlySpot && i.Gpu == own.Gpu && i.Region == own.Region
                && i.DeliveryStart >= lease.Start && i.DeliveryEnd <= lease.End && i.IsTradingAt(_now)).OrderBy(i => i.Id).ToList();
            long[] bidders = _reference.Traders.Where(t => t != lease.Buyer && _reference.Available(t) >= 3_000_000L * lease.Gpus).ToArray();
            if (hours.Count == 0 || bidders.Length == 0) return ExchangeCommand.Tick();
            Instrument h = Pick(hours);
            foreach (Instrument more in Chance(50) ? hours.Where(x => x != h).Take(7) : [])
            {
                long bidder = Pick(bidders), bid = PriceNear(more.Band, Mid(more.Gpu) * _rng.Next(60, 100) / 100, Side.Buy);
                _setup.Enqueue(() => ExchangeCommand.Place(bidder, more.Id, Side.Buy, OrderType.Limit, TimeInForce.GoodTillCancel, bid, lease.Gpus));
            }
            _setup.Enqueue(ExchangeCommand.Tick);
            return ExchangeCommand.Place(Pick(bidders), h.Id, Side.Buy, OrderType.Limit, TimeInForce.GoodTillCancel,
                PriceNear(h.Band, Mid(h.Gpu) * _rng.Next(20, 90) / 100, Side.Buy), lease.Gpus * (long)_rng.Next(1, 3));
        }
        // A trade well below the VWAP on its own book: a funded trader bids low, the lease's provider sells into it.
        long vwap = _reference.InstrumentVwap(own.Id) is long v and > 0 ? v : Mid(own.Gpu);
        long raw = vwap * new[] { 80, 60, 45, 30, 15, 5 }[_rng.Next(6)] / 100;
        long price = Math.Clamp(own.Band.MinPrice + (raw - own.Band.MinPrice) / own.Band.Tick * own.Band.Tick, own.Band.MinPrice, own.Band.MaxPrice);
        long hoursOf = HoursOf(own), quantity = hoursOf * _rng.Next(1, 5);
        long[] buyers = _reference.Traders.Where(t => t != lease.Provider && _reference.Available(t) >= price * quantity).ToArray();
        if (buyers.Length == 0) return ExchangeCommand.Tick();
        long buyer = Pick(buyers);
        _setup.Enqueue(() => ExchangeCommand.Place(lease.Provider, own.Id, Side.Sell, OrderType.Limit, TimeInForce.ImmediateOrCancel, price, quantity));
        if (Chance(60))
        {
            // A better bid for the whole lease rests for the liquidation to take.
            long better = Math.Clamp(own.Band.MinPrice + (vwap * _rng.Next(50, 100) / 100 - own.Band.MinPrice) / own.Band.Tick * own.Band.Tick, own.Band.MinPrice, own.Band.MaxPrice);
            long whole = lease.Gpus * hoursOf;
            long[] others = _reference.Traders.Where(t => t != buyer && t != lease.Buyer && _reference.Available(t) >= better * whole).ToArray();
            if (others.Length > 0)
            {
                long other = Pick(others);
                _setup.Enqueue(() => ExchangeCommand.Place(other, own.Id, Side.Buy, OrderType.Limit, TimeInForce.GoodTillCancel, better, whole));
            }
            _setup.Enqueue(ExchangeCommand.Tick);
        }
        else if (Chance(60)) _setup.Enqueue(ExchangeCommand.Tick);
        return ExchangeCommand.Place(buyer, own.Id, Side.Buy, OrderType.Limit, TimeInForce.GoodTillCancel, price, quantity);
    }

    /// <summary>After a batch: every lease pledged in the machine exactly when an open loan of the reference holds it, and each pledged lease's instrument VWAP the reference's.</summary>
    private void CheckLeasePledges()
    {
        foreach (LeaseView l in _reference.Leases)
        {
            Require(_machine.IsLeasePledged(l.Id) == _reference.IsPledged(l.Id), () => $"lease {l.Id} pledged {_machine.IsLeasePledged(l.Id)}, reference {_reference.IsPledged(l.Id)}");
            if (_reference.IsPledged(l.Id))
                Require(_machine.InstrumentVwap(l.Instrument) == _reference.InstrumentVwap(l.Instrument),
                    () => $"instrument {l.Instrument}'s VWAP {_machine.InstrumentVwap(l.Instrument)}, reference {_reference.InstrumentVwap(l.Instrument)}");
        }
    }
}
