using ComputeGrid.Exchange.Instruments;
using ComputeGrid.Exchange.Matching;
using ComputeGrid.Exchange.StateMachine;
using ComputeGrid.Exchange.Trading;

namespace ComputeGrid.Exchange.Tests.StateMachine;

/// <summary>The generator of <see cref="DifferentialStream"/>: the next command, valid or not, of every kind.</summary>
internal sealed partial class DifferentialStream
{
    private T Pick<T>(IReadOnlyList<T> items) => items[_rng.Next(items.Count)];

    private bool Chance(int percent) => _rng.Next(100) < percent;

    private long AnyOwner() => Chance(5) ? 99 : Chance(60) ? Pick(Traders) : Pick(ProviderIds);

    /// <summary>A registered trader (providers trade too), mostly; sometimes anyone.</summary>
    private long Trader() => _reference.Traders.Count > 0 && Chance(90) ? _reference.Traders.ElementAt(_rng.Next(_reference.Traders.Count)) : AnyOwner();

    /// <summary>A registered trader with money, mostly.</summary>
    private long Buyer()
    {
        long[] funded = _reference.Traders.Where(t => _reference.Available(t) > 0).ToArray();
        return funded.Length > 0 && Chance(85) ? Pick(funded) : Trader();
    }

    /// <summary>A registered provider, mostly; sometimes anyone.</summary>
    private long Seller() => _reference.Providers.Count > 0 && Chance(88) ? _reference.Providers.ElementAt(_rng.Next(_reference.Providers.Count)) : AnyOwner();

    private ExchangeCommand Next()
    {
        _seq++;
        _now += Chance(10) ? 0 : _rng.NextInt64(1, _stepMaxNs);
        ExchangeCommand c;
        if (_script is not null)
        {
            c = _script[_index](this);
            _now = Math.Max(_now, c.Time);
        }
        else if (_index == 0) c = ExchangeCommand.Tick();
        else if (_setup.Count > 0) c = _setup.Dequeue()();
        else
        {
            // Mostly trading, with money, nodes and the clock moving around it.
            // (19–23: node shares — approvals, issuance, transfers, orders on share books, their cancels and replaces;
            // 24–26: loans against them — pledges, repayments, and price falls on share books that call margins and liquidate.)
            // 27–28: loans against leases — pledges of leases, and price falls on a pledged lease's book.)
            int[] w = [1, 1, 3, 5, 2, 3, 10, 38, 6, 6, 7, 2, 1, 3, 10, 1, 5, 3, 8, 1, 2, 3, 12, 5, 5, 4, 3, 4, 3];
            int kind = 0, roll = _rng.Next(w.Sum());
            while (roll >= w[kind]) roll -= w[kind++];
            if (kind == 6 && _settlements.Count == 0) kind = 7;
            if (kind is 8 or 9 && _reference.OpenOrders().Count == 0 && Chance(80)) kind = 7;
            if (kind == 10 && !_reference.Leases.Any(l => l.Status == LeaseStatus.Active && l.Start < _now) && Chance(80)) kind = 7;
            if (kind == 16 && !_reference.Leases.Any(l => l.Status == LeaseStatus.Active && l.End > _now) && Chance(80)) kind = 18;
            // Before any node has shares, a share command is mostly a compute order; sometimes a step towards shares.
            if (kind is 21 or 22 or 23 or 24 or 25 or 26 && _reference.ShareNodes.Count == 0)
                kind = !Chance(30) ? 7 : ProviderIds.Any(_reference.IsApprovedIssuer) ? 20 : 19;
            if (kind == 28 && !_reference.Loans(_now).Any(IsOpenLeaseLoan) && Chance(70)) kind = 27;
            // Before any loan, a repayment or a price fall is mostly a pledge.
            if (kind is 25 or 26 && !_reference.Loans(_now).Any(IsOpen) && Chance(70)) kind = 24;
            c = kind switch
            {
                0 => new ExchangeCommand { Kind = ExchangeCommandKind.RegisterTrader, Owner = Chance(4) ? -1 : AnyOwner() },
                1 => RegisterProvider(),
                2 => AdmitNode(),
                3 => Deposit(collateral: false),
                4 => Deposit(collateral: true),
                5 => Withdraw(),
                6 => Settle(),
                7 => Place(),
                8 => Cancel(),
                9 => Replace(),
                10 => Deliver(),
                11 => NodeCommand(ExchangeCommandKind.Outage),
                12 => NodeCommand(ExchangeCommandKind.NodeTimeout),
                13 => NodeCommand(ExchangeCommandKind.NodeUp),
                14 => ExchangeCommand.Tick(),
                16 => Resell(),
                17 => Block(),
                18 => BlockLiquidity(),
                19 => ApproveIssuer(),
                20 => IssueShares(),
                21 => TransferShares(),
                22 => PlaceShares(),
                23 => ChangeShareOrder(),
                24 => Pledge(),
                25 => Repay(),
                26 => SharePriceFall(),
                27 => PledgeLease(),
                28 => LeasePriceFall(),
                _ => new ExchangeCommand { Kind = ExchangeCommandKind.TransferSettled, Target = Chance(50) && _settled.Count > 0 ? Pick(_settled.ToList()) : 777_777, Ok = Chance(50) },
            };
            // A tick often jumps: instruments list and close, orders expire, leases start.
            if (c.Kind == ExchangeCommandKind.Tick && Chance(30)) _now += _rng.NextInt64(0, 45 * NsPerMinute);
        }
        c.Seq = _seq;
        c.Time = _now;
        return c;
    }

    /// <summary>The first commands: providers and traders register (some not, some wrongly), nodes are admitted, money comes in.</summary>
    private Queue<Func<ExchangeCommand>> SetupScript()
    {
        var script = new List<Func<ExchangeCommand>>();
        foreach (long p in ProviderIds.OrderBy(_ => _rng.Next())) script.Add(() => RegisterProvider(p));
        foreach (long t in Traders) if (t < 4 || Chance(70)) script.Add(() => new ExchangeCommand { Kind = ExchangeCommandKind.RegisterTrader, Owner = t });
        for (int i = _rng.Next(4, 9); i > 0; i--) script.Add(AdmitNode);
        foreach (long owner in Traders.Concat(ProviderIds)) if (Chance(85)) script.Add(() => Deposit(owner, collateral: false));
        script.Add(() => Deposit(collateral: true));
        script.Add(Settle);
        // Half the streams trade a node's shares from the start (others approve and issue later, or never).
        if (Chance(50))
        {
            script.Add(() => new ExchangeCommand { Kind = ExchangeCommandKind.ApproveIssuer, Owner = Pick(ProviderIds) });
            script.Add(IssueShares);
        }
        return new Queue<Func<ExchangeCommand>>(script);
    }

    private ExchangeCommand RegisterProvider()
    {
        long[] unregistered = ProviderIds.Where(p => !_reference.Providers.Contains(p)).ToArray();
        return RegisterProvider(unregistered.Length > 0 && Chance(90) ? Pick(unregistered) : Pick(ProviderIds));
    }

    private ExchangeCommand RegisterProvider(long p)
    {
        long funded = _collateralFunded[p];
        // The collateral observed never exceeds what the account holds.
        var c = new ExchangeCommand
        {
            Kind = ExchangeCommandKind.RegisterProvider, Owner = p, Account = Revenue(p), Account2 = Collateral(p),
            Amount = new[] { funded, funded / 2, 0 }[_rng.Next(3)],
        };
        switch (_rng.Next(30))
        {
            case 0: c.Account = 0; break;
            case 1: c.Account2 = 0; break;
            case 2: c.Amount = -1; break;
            case 3: c.Owner = 0; break;
        }
        return c;
    }

    private ExchangeCommand AdmitNode()
    {
        long owner = Chance(90) ? Pick(ProviderIds) : Pick(Traders);
        (GpuClass gpu, string? region) = Chance(75) ? _hot : Chance(70) ? _second : (Pick(Classes), Pick(Regions));
        if (Chance(5)) gpu = Chance(80) ? GpuClass.B200 : (GpuClass)99; // a class the schedule does not list; one that does not exist
        if (Chance(4)) region = Chance(60) ? "london" : null;
        return new ExchangeCommand
        {
            Kind = ExchangeCommandKind.AdmitNode, Owner = owner, Gpu = gpu, Region = region, Gpus = Chance(4) ? _rng.Next(-1, 1) : Chance(35) ? _rng.Next(1, 3) : _rng.Next(1, 13),
            Name = Chance(97) ? $"node-{_seq}" : " ",
        };
    }

    private ExchangeCommand Deposit(bool collateral) => Deposit(collateral ? Seller() : Trader(), collateral);

    private ExchangeCommand Deposit(long owner, bool collateral)
    {
        UInt128 account = _rng.Next(100) switch
        {
            < 68 => Source(owner),
            < 82 => Poor(owner),
            < 88 => ProviderIds.Contains(owner) ? Revenue(owner) : Source(owner),
            < 93 => Nowhere,
            < 94 => ExchangeStateMachine.TradingAccount(owner),
            < 95 => ProviderIds.Contains(owner) ? Collateral(owner) : ExchangeStateMachine.EscrowAccount,
            < 96 => _reference.Leases.Count > 0 ? Pick(_reference.Leases).EscrowAccount : Nowhere,
            _ => 0,
        };
        long amount = Chance(3) ? -_rng.Next(0, 2) : (long)(new long[] { 5_000_000, 50_000_000, 500_000_000, 3_000_000_000, 10_000_000_000 }[_rng.Next(5)] * (0.5 + _rng.NextDouble()));
        return new ExchangeCommand { Kind = collateral ? ExchangeCommandKind.FundCollateral : ExchangeCommandKind.Deposit, Owner = owner, Account = account, Amount = amount };
    }

    private ExchangeCommand Withdraw()
    {
        long owner = Trader();
        long available = _reference.Available(owner) ?? 1_000_000;
        long amount = Chance(4) ? 0 : Chance(25) ? (long)(available * _rng.NextDouble() * 1.2) + 1 : Chance(50) ? available / 10 + 1 : _rng.NextInt64(1, 50_000_000);
        // Now and then to an account the ledger does not have: it refuses, and the money must come back.
        UInt128 to = Chance(95) ? Source(owner) : Chance(60) ? (UInt128)987_654_321 : 0;
        return new ExchangeCommand { Kind = ExchangeCommandKind.Withdraw, Owner = owner, Account = to, Amount = amount };
    }

    private ExchangeCommand Settle()
    {
        if (_settlements.Count == 0) return ExchangeCommand.Tick();
        // Answers come back in any order, some after several more commands.
        int i = _rng.Next(_settlements.Count);
        (long seq, bool ok) = _settlements[i];
        _settlements.RemoveAt(i);
        _settled.Add(seq);
        return new ExchangeCommand { Kind = ExchangeCommandKind.TransferSettled, Target = seq, Ok = ok };
    }

    private Instrument? PickInstrument()
    {
        IReadOnlyList<Instrument> active = _reference.ActiveInstruments;
        if (active.Count == 0) return null;
        DeliveryKind kind = _rng.Next(100) switch { < 68 => DeliveryKind.HourlySpot, < 95 => DeliveryKind.DailyForward, _ => DeliveryKind.MonthlyForward };
        (GpuClass gpu, string region) = Chance(90) ? _hot : _second;
        // Mostly one that trades now (the registry lists and closes at ticks; time moves in between).
        bool now = Chance(90);
        List<Instrument> matching = active.Where(i => i.Kind == kind && i.Gpu == gpu && i.Region == region && (!now || i.IsTradingAt(_now)))
            .OrderBy(i => i.DeliveryStart).ToList();
        if (matching.Count == 0)
        {
            List<Instrument> compute = active.Where(i => i.Class == InstrumentClass.Compute).ToList();
            return compute.Count > 0 ? Pick(compute) : null;
        }
        return matching[Chance(75) ? 0 : _rng.Next(Math.Min(matching.Count, 2))];
    }

    private long PriceNear(PriceBand band, long mid, Side side)
    {
        // Buyers lean high, sellers low: books cross often.
        long p = mid + (side == Side.Buy ? _rng.Next(-4, 7) : _rng.Next(-6, 5)) * band.Tick;
        return _rng.Next(100) switch
        {
            < 3 => p + band.Tick / 2,         // off tick
            < 5 => band.MaxPrice + band.Tick,  // above the band
            < 6 => 0,
            < 7 => -band.Tick,
            _ => p,
        };
    }

    private long? BestOpposite(int instrument, Side side)
    {
        foreach (RestingOrder r in _reference.Resting(instrument)) if (r.Side != side) return r.Price;
        return null;
    }

    private static long Mid(GpuClass gpu) => gpu == GpuClass.A100 ? 1_500_000 : 2_000_000;

    private long Quantity(long hours) => _rng.Next(100) switch
    {
        < 3 => hours > 1 ? hours * _rng.Next(1, 3) + 1 : 0,
        < 5 => -hours,
        < 6 => hours * 1_000_000_000_000,
        _ => hours * (Chance(65) ? 1 : _rng.Next(2, 4)),
    };

    private ExchangeCommand Place()
    {
        Instrument? instrument = PickInstrument();
        if (instrument is not null) _seenInstruments.Add(instrument.Id);
        int id = instrument?.Id ?? 1;
        if (Chance(3)) id = _seenInstruments.Count > 0 ? Pick(_seenInstruments) : 0;
        if (Chance(1)) id = 99_999;
        Side side = Chance(50) ? Side.Buy : Side.Sell;
        long owner = side == Side.Sell ? Seller() : Buyer();
        OrderType type = Chance(12) ? OrderType.Market : OrderType.Limit;
        TimeInForce tif = _rng.Next(100) switch { < 45 => TimeInForce.GoodTillCancel, < 65 => TimeInForce.GoodTillTime, < 85 => TimeInForce.ImmediateOrCancel, _ => TimeInForce.FillOrKill };
        PriceBand band = instrument?.Band ?? GpuClasses.Spec(GpuClass.H100).Band;
        long price = type == OrderType.Market ? (Chance(3) ? band.MinPrice : 0) : PriceNear(band, Mid(instrument?.Gpu ?? GpuClass.H100), side);
        // Often at the other side's best, or a tick through it: a taker.
        if (type == OrderType.Limit && instrument is not null && Chance(35) && BestOpposite(instrument.Id, side) is long best)
            price = best + (Chance(50) ? 0 : side == Side.Buy ? band.Tick : -band.Tick);
        long hours = instrument is null ? 1 : (instrument.DeliveryEnd - instrument.DeliveryStart) / NsPerHour;
        long expires = tif == TimeInForce.GoodTillTime ? _now + _rng.NextInt64(-2 * NsPerMinute, 90 * NsPerMinute) : Chance(5) ? _now + NsPerMinute : 0;
        ExchangeCommand c = ExchangeCommand.Place(owner, id, side, type, tif, price, Quantity(hours), postOnly: Chance(10), expiresAt: expires);
        if (Chance(1)) c.Side = (Side)7;
        return c;
    }

    private ExchangeCommand Cancel()
    {
        IReadOnlyList<OpenOrder> open = _reference.OpenOrders();
        if (open.Count == 0 || Chance(12)) return ExchangeCommand.Cancel(AnyOwner(), Chance(50) ? (long)_seq - _rng.Next(1, 50) : 123_456);
        OpenOrder o = Pick(open);
        return ExchangeCommand.Cancel(Chance(92) ? o.Owner : AnyOwner(), o.OrderId);
    }

    private ExchangeCommand Replace()
    {
        IReadOnlyList<OpenOrder> open = _reference.OpenOrders();
        if (open.Count == 0 || Chance(8)) return ExchangeCommand.Replace(AnyOwner(), 123_456, 2_000_000, 1);
        OpenOrder o = Pick(open);
        if (_reference.IsShareOrder(o.OrderId)) return ReplaceShares(o);
        // An open order's instrument is active: its book closes at the tick that expires it.
        Instrument i = _reference.ActiveInstruments.First(x => x.Id == o.Instrument);
        long hours = (i.DeliveryEnd - i.DeliveryStart) / NsPerHour;
        long price = Chance(10) ? PriceNear(i.Band, Mid(i.Gpu), o.Side)
            : Chance(25) && BestOpposite(i.Id, o.Side) is long best ? best
            : o.Price + (o.Side == Side.Buy ? 1 : -1) * _rng.Next(-2, 5) * i.Band.Tick;
        long quantity = _rng.Next(100) switch
        {
            < 30 => o.Remaining,
            < 55 => Math.Max(hours, o.Remaining - hours),
            < 95 => o.Remaining + hours * _rng.Next(1, 3),
            _ => Quantity(hours),
        };
        return ExchangeCommand.Replace(Chance(94) ? o.Owner : AnyOwner(), o.OrderId, price, quantity);
    }

    private ExchangeCommand Deliver()
    {
        IReadOnlyList<LeaseView> leases = _reference.Leases;
        if (leases.Count == 0 || Chance(4)) return new ExchangeCommand { Kind = ExchangeCommandKind.Deliver, Owner = Pick(ProviderIds), Target = 5_555, From = _now - NsPerHour, To = _now };
        List<LeaseView> started = leases.Where(l => l.Status == LeaseStatus.Active && l.Start + NsPerHour <= _now).ToList();
        LeaseView lease = started.Count > 0 && Chance(85) ? Pick(started) : Pick(leases);
        long owner = Chance(92) ? lease.Provider : AnyOwner();
        long hours = (lease.End - lease.Start) / NsPerHour;
        long passed = Math.Clamp((_now - lease.Start) / NsPerHour, 0, hours);
        long delivered = lease.Gpus == 0 ? 0 : lease.DeliveredGpuHours / lease.Gpus;
        long from, to;
        if (passed > delivered && Chance(75))
        {
            // The next hours in order, up to what has passed.
            from = lease.Start + delivered * NsPerHour;
            to = lease.Start + (Chance(50) ? passed : _rng.NextInt64(delivered + 1, passed + 1)) * NsPerHour;
        }
        else if (passed >= 1)
        {
            long a = _rng.NextInt64(0, passed);
            from = lease.Start + a * NsPerHour;
            to = lease.Start + _rng.NextInt64(a + 1, passed + 1) * NsPerHour;
        }
        else
        {
            from = lease.Start;
            to = lease.Start + NsPerHour; // not yet happened
        }
        switch (_rng.Next(14))
        {
            case 0: from += 1; break;
            case 1: to = lease.End + NsPerHour; break;
            case 2: (from, to) = (to, from); break;
        }
        return new ExchangeCommand { Kind = ExchangeCommandKind.Deliver, Owner = owner, Target = lease.Id, From = from, To = to };
    }

    private ExchangeCommand NodeCommand(ExchangeCommandKind kind)
    {
        IReadOnlyList<Node> nodes = _reference.Nodes;
        var c = new ExchangeCommand { Kind = kind, Target = 88_888, Owner = Pick(ProviderIds), From = _now - _rng.NextInt64(0, 60 * NsPerMinute) };
        if (nodes.Count == 0 || Chance(5)) return c;
        List<Node> down = nodes.Where(n => n.DownSince is not null).ToList();
        Node node = kind == ExchangeCommandKind.NodeUp && down.Count > 0 && Chance(75) ? Pick(down) : Pick(nodes);
        c.Target = node.Id;
        c.Owner = Chance(88) ? node.Provider : AnyOwner();
        if (kind == ExchangeCommandKind.NodeTimeout && Chance(10)) c.From = _now + NsPerMinute;
        return c;
    }

    /// <summary>A lease's buyer offers some of it again: mostly on an instrument the lease covers, sometimes not (or not its own).</summary>
    private ExchangeCommand Resell()
    {
        List<LeaseView> leases = _reference.Leases.Where(l => l.Status == LeaseStatus.Active && l.End > _now).ToList();
        if (leases.Count == 0 || Chance(4))
            return ExchangeCommand.Resell(Trader(), Chance(50) ? 5_555 : (long)_seq, PickInstrument()?.Id ?? 1, 2_000_000, 1);
        LeaseView lease = Pick(leases);
        Instrument? leased = _reference.InstrumentOf(lease.Instrument);
        List<Instrument> covered = _reference.ActiveInstruments.Where(i => leased is not null && i.Gpu == leased.Gpu && i.Region == leased.Region
            && i.DeliveryStart >= lease.Start && i.DeliveryEnd <= lease.End && i.IsTradingAt(_now)).OrderBy(i => i.Id).ToList();
        Instrument? target = covered.Count > 0 && Chance(92) ? (Chance(60) && covered.Any(i => i.Id == lease.Instrument) ? covered.First(i => i.Id == lease.Instrument) : Pick(covered))
            : Chance(15) && ShareInstruments() is { Count: > 0 } shares ? Pick(shares) // a lease's GPUs offered on a share book
            : PickInstrument();
        int id = target?.Id ?? 1;
        long hours = target is null ? 1 : HoursOf(target);
        long gpus = Chance(85) ? _rng.Next(1, lease.Gpus + 1) : lease.Gpus + 1;
        long quantity = Chance(94) ? hours * gpus : Quantity(hours);
        TimeInForce tif = _rng.Next(100) switch { < 50 => TimeInForce.GoodTillCancel, < 72 => TimeInForce.ImmediateOrCancel, < 95 => TimeInForce.FillOrKill, _ => TimeInForce.GoodTillTime };
        PriceBand band = target?.Band ?? GpuClasses.Spec(GpuClass.H100).Band;
        long price = PriceNear(band, Mid(target?.Gpu ?? GpuClass.H100), Side.Sell);
        if (target is not null && Chance(40) && BestOpposite(target.Id, Side.Sell) is long best) price = best;
        return ExchangeCommand.Resell(Chance(92) ? lease.Buyer : AnyOwner(), lease.Id, id, price, quantity, tif);
    }

    /// <summary>A block over consecutive hours of a class and region that trade now, mostly; sometimes malformed, too long or too dear.</summary>
    private ExchangeCommand Block()
    {
        (GpuClass gpu, string region) = Chance(85) ? _hot : _second;
        List<Instrument> hourly = _reference.ActiveInstruments.Where(i => i.Kind == DeliveryKind.HourlySpot && i.Gpu == gpu && i.Region == region && i.IsTradingAt(_now))
            .OrderBy(i => i.DeliveryStart).ToList();
        long from = hourly.Count > 0 ? hourly[Chance(60) ? 0 : _rng.Next(hourly.Count)].DeliveryStart : _now - _now % NsPerHour + NsPerHour;
        long to = from + (Chance(90) ? _rng.Next(1, 3) : _rng.Next(3, 9)) * NsPerHour;
        int gpus = Chance(65) ? 1 : _rng.Next(2, 5);
        PriceBand band = GpuClasses.Spec(gpu).Band;
        long price = Chance(75) ? Mid(gpu) + _rng.Next(-3, 8) * band.Tick : Chance(50) ? band.MaxPrice : band.MinPrice;
        ExchangeCommand c = ExchangeCommand.Block(Buyer(), gpu, region, from, to, gpus, price);
        switch (_rng.Next(40))
        {
            case 0: c.Gpus = 0; break;
            case 1: c.From += 1; break;
            case 2: c.To = c.From; break;
            case 3: c.Region = Chance(50) ? null : "london"; break;
            case 4: c.Price = 0; break;
            case 5: c.To = c.From + (ExchangeStateMachine.BlockHoursMax + 1) * NsPerHour; break;
            case 6: c.Gpus = int.MaxValue; c.To = c.From + ExchangeStateMachine.BlockHoursMax * NsPerHour; break;
            case 7: c.Gpu = (GpuClass)99; break;
        }
        return c;
    }

    /// <summary>An ask in any hourly book of the hot class and region that trades now: liquidity across consecutive hours, for blocks.</summary>
    private ExchangeCommand BlockLiquidity()
    {
        List<Instrument> hourly = _reference.ActiveInstruments.Where(i => i.Kind == DeliveryKind.HourlySpot && i.Gpu == _hot.Gpu && i.Region == _hot.Region && i.IsTradingAt(_now))
            .ToList();
        if (hourly.Count == 0) return Place();
        Instrument i = Pick(hourly);
        TimeInForce tif = Chance(80) ? TimeInForce.GoodTillCancel : TimeInForce.GoodTillTime;
        long expires = tif == TimeInForce.GoodTillTime ? _now + _rng.NextInt64(NsPerMinute, 30 * NsPerMinute) : 0;
        return ExchangeCommand.Place(Seller(), i.Id, Side.Sell, OrderType.Limit, tif, PriceNear(i.Band, Mid(i.Gpu), Side.Sell), _rng.Next(1, 4), expiresAt: expires);
    }
}
