using ComputeGrid.Core;
using ComputeGrid.Exchange.Instruments;
using ComputeGrid.Exchange.Matching;
using ComputeGrid.Exchange.Trading;
using ComputeGrid.Ledger;

namespace ComputeGrid.Exchange.StateMachine;

public sealed partial class ExchangeStateMachine
{
    // ================================================================== orders

    private CommandResult Place(in ExchangeCommand c)
    {
        if (!_instruments.TryGet(c.Instrument, out Instrument? instrument) || !_instruments.IsActive(c.Instrument)) return Refused(ExchangeError.UnknownInstrument);
        if (!instrument.IsTradingAt(_now))
            return Refused(ExchangeError.InstrumentNotTrading, RefusalDetail.NotTrading, _now < instrument.TradingStart ? instrument.TradingStart : instrument.TradingEnd);
        if (!_traders.TryGetValue(c.Owner, out TraderState? trader)) return Refused(ExchangeError.UnknownTrader);
        long hours = instrument.Hours;
        if (c.Quantity <= 0 || c.Quantity % hours != 0) return Refused(ExchangeError.QuantityMustBeWholeGpus, RefusalDetail.NotWholeGpus, hours);
        if (!Enum.IsDefined(c.Side) || !Enum.IsDefined(c.Type) || !Enum.IsDefined(c.TimeInForce)) return Refused(ExchangeError.InvalidRequest);
        PriceBand band = instrument.Band;
        if (c.Type == OrderType.Limit && (c.Price <= 0 || !band.Contains(c.Price) || !band.OnTick(c.Price)))
            return Refused(ExchangeError.BookRejected, RefusalDetail.PriceOffBand, 0,
                c.Price <= 0 ? RejectReason.PriceMustBePositive : !band.Contains(c.Price) ? RejectReason.PriceOutsideBand : RejectReason.PriceNotOnTick);
        if (c.Type == OrderType.Market && c.Price != 0) return Refused(ExchangeError.InvalidRequest);
        _books.TryGetValue(instrument.Id, out OrderBook? current);
        if (c.Type == OrderType.Market && (current is null || (c.Side == Side.Buy ? current.BestAsk : current.BestBid) == 0))
            return Refused(ExchangeError.BookRejected, RefusalDetail.NoLiquidity, 0, RejectReason.NoLiquidity);
        // Orders the book would refuse without trading are refused here, before anything is held for them.
        long best = current is null ? 0 : c.Side == Side.Buy ? current.BestAsk : current.BestBid;
        if (c.PostOnly && (c.Type == OrderType.Market || (best != 0 && (c.Side == Side.Buy ? best <= c.Price : best >= c.Price))))
            return Refused(ExchangeError.BookRejected, RefusalDetail.PostOnlyWouldTake, 0, RejectReason.PostOnlyWouldTake);
        if (c.TimeInForce == TimeInForce.FillOrKill
            && (current is null || current.AvailableToTaker(c.Side, c.Owner, c.Type == OrderType.Market ? 0 : c.Price, c.Quantity) < c.Quantity))
            return Refused(ExchangeError.BookRejected, RefusalDetail.FillOrKillUnfillable, 0, RejectReason.FillOrKillUnfillable);
        if (c.TimeInForce == TimeInForce.GoodTillTime && c.ExpiresAt <= _now) return Refused(ExchangeError.InvalidRequest);
        // The book's last refusals, asked here too: nothing may reach the book that it would refuse after the hold.
        if (c.Type == OrderType.Market && c.TimeInForce == TimeInForce.GoodTillTime)
            return Refused(ExchangeError.BookRejected, book: RejectReason.MarketOrderMustBeImmediate);
        if (c.Type == OrderType.Limit && c.TimeInForce is TimeInForce.GoodTillCancel or TimeInForce.GoodTillTime && current is not null && current.Count >= current.OrdersMax)
            return Refused(ExchangeError.BookRejected, book: RejectReason.BookFull);

        long limit = c.Type == OrderType.Market ? (c.Side == Side.Buy ? band.MaxPrice : band.MinPrice) : c.Price;
        IInstrumentKind kind = KindOf(instrument);
        long hold = 0;
        if (c.Side == Side.Buy)
        {
            if (!TryMul(limit, c.Quantity, out hold)) return Refused(ExchangeError.NotionalOverflows);
            if (trader.Available < hold) return Refused(ExchangeError.InsufficientBalance, RefusalDetail.BalanceShort, trader.Available);
        }
        else if (kind.CheckSell(c.Owner, instrument, c.Quantity, null) is CommandResult refused) return refused;

        // Accepted: from here the command applies whole.
        OrderState order = NewOrder();
        order.Id = (long)_seq;
        order.Owner = c.Owner;
        order.Instrument = instrument;
        order.Side = c.Side;
        order.Limit = limit;
        order.Remaining = c.Quantity;
        order.ResoldLease = 0;
        order.HoldId = 0;
        order.HoldAmount = 0;
        if (c.Side == Side.Buy)
        {
            trader.Available -= hold;
            order.HoldId = NextTransferId();
            order.HoldAmount = hold;
            _plan.Transfer(new Transfer
            {
                Id = order.HoldId, DebitAccountId = trader.Account, CreditAccountId = EscrowAccount, Amount = hold, Asset = Asset.Usd.Code,
                Code = HoldCode, Flags = TransferFlags.Pending, UserData64 = (ulong)order.Id,
            });
        }
        else kind.Reserve(order, c.Quantity);
        AddOrder(order, trader);
        if (_options.InjectFault is { } fault && fault(c)) throw new InvalidOperationException($"Injected fault in command {c.Seq}.");

        OrderBook book = BookFor(instrument);
        var command = new OrderCommand
        {
            Kind = CommandKind.Place, Side = c.Side, Type = c.Type, TimeInForce = c.TimeInForce, PostOnly = c.PostOnly,
            OrderId = order.Id, Owner = c.Owner, Price = c.Type == OrderType.Market ? 0 : c.Price, Quantity = c.Quantity,
            ExpiresAt = c.TimeInForce == TimeInForce.GoodTillTime ? c.ExpiresAt : 0, Timestamp = _now,
        };
        return ApplyBook(book, command, order.Id);
    }

    private CommandResult Cancel(in ExchangeCommand c)
    {
        if (!_orders.TryGetValue(c.Target, out OrderState? o)) return Refused(ExchangeError.UnknownOrder);
        if (o.Owner != c.Owner) return Refused(ExchangeError.NotOwner);
        var command = new OrderCommand { Kind = CommandKind.Cancel, OrderId = o.Id, Owner = o.Owner, Side = o.Side, Timestamp = _now };
        return ApplyBook(BookFor(o.Instrument), command, o.Id);
    }

    private CommandResult Replace(in ExchangeCommand c)
    {
        if (!_orders.TryGetValue(c.Target, out OrderState? o)) return Refused(ExchangeError.UnknownOrder);
        if (o.Owner != c.Owner) return Refused(ExchangeError.NotOwner);
        long hours = o.Instrument.Hours;
        if (c.Quantity <= 0 || c.Quantity % hours != 0) return Refused(ExchangeError.QuantityMustBeWholeGpus, RefusalDetail.NotWholeGpus, hours);
        PriceBand band = o.Instrument.Band;
        if (c.Price <= 0 || !band.Contains(c.Price) || !band.OnTick(c.Price))
            return Refused(ExchangeError.BookRejected, RefusalDetail.PriceOffBand, 0, RejectReason.PriceOutsideBand);
        OrderBook book = BookFor(o.Instrument);
        if (book.TryGetOrder(o.Id, out RestingOrder resting) && resting.PostOnly && (c.Price != resting.Price || c.Quantity > resting.Remaining))
        {
            long best = o.Side == Side.Buy ? book.BestAsk : book.BestBid;
            if (best != 0 && (o.Side == Side.Buy ? best <= c.Price : best >= c.Price))
                return Refused(ExchangeError.BookRejected, RefusalDetail.PostOnlyWouldTake, 0, RejectReason.PostOnlyWouldTake);
        }
        TraderState trader = _traders[o.Owner];
        long extra = c.Quantity - o.Remaining; // in the instrument's quantity (GPU-hours, shares)
        long newHold = 0;
        if (o.Side == Side.Buy)
        {
            if (!TryMul(c.Price, c.Quantity, out newHold)) return Refused(ExchangeError.NotionalOverflows);
            if (newHold > o.HoldAmount && trader.Available < newHold - o.HoldAmount)
                return Refused(ExchangeError.InsufficientBalance, RefusalDetail.BalanceShort, trader.Available);
        }
        else if (extra > 0 && KindOf(o.Instrument).CheckSell(o.Owner, o.Instrument, extra, o) is CommandResult refused) return refused;

        // Accepted.
        if (o.Side == Side.Buy)
        {
            if (newHold != o.HoldAmount)
            {
                // The old hold voided and the new one held, in the command's chain.
                _plan.Transfer(new Transfer { Id = NextTransferId(), PendingId = o.HoldId, Flags = TransferFlags.VoidPendingTransfer });
                trader.Available = trader.Available + o.HoldAmount - newHold;
                o.HoldId = NextTransferId();
                o.HoldAmount = newHold;
                _plan.Transfer(new Transfer
                {
                    Id = o.HoldId, DebitAccountId = trader.Account, CreditAccountId = EscrowAccount, Amount = newHold, Asset = Asset.Usd.Code,
                    Code = HoldCode, Flags = TransferFlags.Pending, UserData64 = (ulong)o.Id,
                });
            }
        }
        else if (extra != 0) KindOf(o.Instrument).Reserve(o, extra);
        o.Limit = c.Price; // a sell's too: views show the price it rests at
        o.Remaining = c.Quantity;
        var command = new OrderCommand { Kind = CommandKind.Replace, OrderId = o.Id, Owner = o.Owner, Side = o.Side, Price = c.Price, Quantity = c.Quantity, Timestamp = _now };
        return ApplyBook(book, command, o.Id);
    }

    private OrderBook BookFor(Instrument instrument)
    {
        if (!_books.TryGetValue(instrument.Id, out OrderBook? book)) _books[instrument.Id] = book = new OrderBook(instrument.Band, _options.OrdersPerBookMax);
        return book;
    }

    private OrderState NewOrder() => _orderPool.Count > 0 ? _orderPool.Pop() : new OrderState();

    private void AddOrder(OrderState o, TraderState trader)
    {
        _orders.Add(o.Id, o);
        trader.OpenOrders.Add(o.Id);
    }

    private void RemoveOrder(OrderState o)
    {
        _orders.Remove(o.Id);
        _traders[o.Owner].OpenOrders.Remove(o.Id);
        o.Instrument = null!;
        o.ResoldLease = 0;
        _orderPool.Push(o);
    }

    // Touched buy orders of the running command: order → notional bought; reused (no allocation once grown).
    private readonly Dictionary<long, long> _touchedBuys = [];
    private readonly List<OrderState> _closed = [];
    private readonly List<(Lease Lease, long BuyOrder)> _newLeases = [];

    /// <summary>
    /// Applies an order command to its book and settles what its events imply, in the command's chain: for each buy it
    /// touched, the hold posted for what it bought (or voided when nothing was), the lease escrows funded, what still
    /// rests held again; sells' capacity released when they leave.
    /// </summary>
    private CommandResult ApplyBook(OrderBook book, OrderCommand command, long subject)
    {
        _touchedBuys.Clear();
        _closed.Clear();
        _newLeases.Clear();
        ReadOnlySpan<MatchEvent> events = book.Apply(in command);
        RejectReason bookReject = RejectReason.None;
        bool subjectCancelled = false;
        int fillsBefore = _fills.Count;
        foreach (ref readonly MatchEvent e in events)
        {
            switch (e.Kind)
            {
                case EventKind.Trade:
                {
                    OrderState taker = _orders[e.OrderId], maker = _orders[e.MakerOrderId];
                    (OrderState buy, OrderState sell) = taker.Side == Side.Buy ? (taker, maker) : (maker, taker);
                    long leaseId = KindOf(taker.Instrument).Trade(buy, sell, e.Price, e.Quantity, out long notional);
                    taker.Remaining -= e.Quantity;
                    maker.Remaining -= e.Quantity;
                    _touchedBuys[buy.Id] = checked(_touchedBuys.GetValueOrDefault(buy.Id) + notional);
                    _fills.Add(new FillRecord(taker.Id, maker.Id, e.Price, e.Quantity, leaseId, ++_tradeSequence, taker.Instrument.Id, taker.Side, _now));
                    if (maker.Remaining == 0) _closed.Add(maker);
                    if (taker.Remaining == 0) _closed.Add(taker);
                    break;
                }
                case EventKind.Reduced:
                    _orders[e.OrderId].Remaining = e.Quantity;
                    break;
                case EventKind.Cancelled:
                {
                    if (e.Reason == CancelReason.Replaced) break; // the same order re-enters at once
                    OrderState o = _orders[e.OrderId];
                    if (o.Side == Side.Sell) KindOf(o.Instrument).Reserve(o, -e.Quantity);
                    o.Remaining = 0;
                    _closed.Add(o);
                    if (o.Id == subject) subjectCancelled = true;
                    break;
                }
                case EventKind.Rejected:
                {
                    bookReject = e.Reject;
                    if (e.OrderId == subject && command.Kind == CommandKind.Place && _orders.TryGetValue(e.OrderId, out OrderState? o))
                    {
                        if (o.Side == Side.Sell) KindOf(o.Instrument).Reserve(o, -o.Remaining);
                        o.Remaining = 0;
                        _closed.Add(o);
                    }
                    break;
                }
            }
        }
        foreach (OrderState o in _closed) if (o.Side == Side.Buy) _touchedBuys.TryAdd(o.Id, 0);
        Settle();
        bool filledAny = _fills.Count > fillsBefore;
        foreach (OrderState o in _closed) if (o.Remaining == 0 && _orders.ContainsKey(o.Id)) RemoveOrder(o);

        long remaining = _orders.TryGetValue(subject, out OrderState? subjectOrder) ? subjectOrder.Remaining : 0;
        bool rejected = bookReject != RejectReason.None && command.Kind == CommandKind.Place;
        OrderStatus status = rejected ? OrderStatus.Rejected
            : command.Kind == CommandKind.Cancel ? OrderStatus.Cancelled
            : remaining > 0 ? OrderStatus.Resting
            : subjectCancelled ? (filledAny ? OrderStatus.PartiallyFilledCancelled : OrderStatus.Cancelled)
            : OrderStatus.Filled;
        if (bookReject != RejectReason.None)
            return new CommandResult { Error = ExchangeError.BookRejected, BookReject = bookReject, Subject = subject, Status = status, Remaining = remaining };
        return new CommandResult { Subject = subject, Status = status, Remaining = remaining };
    }

    /// <summary>The running command's settlement: buyers' holds posted and re-held, or voided; then what the instrument kind settles.</summary>
    private void Settle()
    {
        foreach ((long orderId, long bought) in _touchedBuys)
        {
            OrderState o = _orders[orderId];
            TraderState trader = _traders[o.Owner];
            if (bought > 0) _plan.Transfer(new Transfer { Id = NextTransferId(), PendingId = o.HoldId, Amount = bought, Flags = TransferFlags.PostPendingTransfer });
            else _plan.Transfer(new Transfer { Id = NextTransferId(), PendingId = o.HoldId, Flags = TransferFlags.VoidPendingTransfer });
            // The hold is released whole; what was bought is spent; what rests is held again.
            trader.Available = checked(trader.Available + o.HoldAmount - bought);
            if (o.Remaining > 0)
            {
                long amount = checked(o.Limit * o.Remaining);
                trader.Available -= amount;
                o.HoldId = NextTransferId();
                o.HoldAmount = amount;
                _plan.Transfer(new Transfer
                {
                    Id = o.HoldId, DebitAccountId = trader.Account, CreditAccountId = EscrowAccount, Amount = amount, Asset = Asset.Usd.Code,
                    Code = HoldCode, Flags = TransferFlags.Pending, UserData64 = (ulong)o.Id,
                });
            }
            else
            {
                o.HoldId = 0;
                o.HoldAmount = 0;
            }
        }
        // Each kind settles only what its trades recorded (one book per call: one kind has work).
        _computeKind.Settle();
        _shareKind.Settle();
    }

    /// <summary>A trade's lease: the seller's GPUs on named nodes for the window, paid from its own escrow, its penalty reserved from the provider's collateral.</summary>
    private Lease CreateLease(OrderState buy, OrderState sell, long price, long quantity)
    {
        RecordComputeTrade(buy.Instrument.Id, price, quantity); // every compute trade (order, resale, block) sets its instrument's VWAP
        if (sell.ResoldLease != 0) return CreateResoldLease(buy, sell, price, quantity);
        Instrument instrument = buy.Instrument;
        int gpus = (int)(quantity / instrument.Hours);
        long id = NextLeaseId();
        ProviderState provider = _providers[sell.Owner];
        IReadOnlyList<(long Node, int Gpus)> nodes = _capacity.Allocate(sell.Owner, instrument, gpus, id);
        _capacity.Commit(sell.Owner, instrument, -gpus);
        long notional = checked(price * quantity);
        long reserve = Math.Min(Money.MulDiv(notional, _options.PenaltyBasisPoints, 10_000), provider.CollateralAvailable);
        provider.CollateralAvailable -= reserve;
        var lease = new Lease
        {
            Id = id, Instrument = instrument.Id, Buyer = buy.Owner, Provider = sell.Owner, Payee = sell.Owner, PayeeAccount = provider.Revenue,
            Start = instrument.DeliveryStart, End = instrument.DeliveryEnd, Gpus = gpus, Price = price, Notional = notional,
            EscrowAccount = LeaseEscrowId(id), Nodes = nodes, PenaltyReserve = reserve,
        };
        _leases.Add(lease);
        return lease;
    }
}
