using ComputeGrid.Core;
using ComputeGrid.Exchange.Instruments;
using ComputeGrid.Exchange.Matching;
using ComputeGrid.Exchange.Trading;
using ComputeGrid.Ledger;

namespace ComputeGrid.Exchange.StateMachine;

/// <summary>
/// Block orders (the old service's <c>PlaceBlockAsync</c>): N GPUs of one class in one region for every hour of a
/// window, bought all-or-none across the hourly spot books at an average price within a limit.
/// <para>
/// The command quotes the block at its time from the books as they stand (price-time order, expired good-till-time asks
/// skipped, stopping at the buyer's own first ask as self-trade prevention would). A well-formed block that some hour
/// cannot fill, that is above its limit, that would trade with more makers than one ledger chain settles, or that the
/// buyer's available balance cannot hold is refused with nothing changed. Otherwise, in the command's one chain: ONE
/// hold of the whole quoted cost (UserData64: the block id, the command's sequence); the expired orders of the legs'
/// books expired as any command on a book does; each hour filled by a fill-or-kill buy (a leg, id = the block id) at
/// the leg's worst quoted price through the book's ordinary matching (one lease per maker); then the block hold posted
/// for everything traded and every new lease's escrow funded from the order escrow. The legs never rest and never
/// enter the open orders. A leg that does not fill exactly as quoted is a bug and throws.
/// </para>
/// </summary>
public sealed partial class ExchangeStateMachine
{
    /// <summary>Longest block window: 31 days of hours.</summary>
    public const int BlockHoursMax = 31 * 24;

    private readonly OrderState _blockLeg = new();
    private readonly List<Lease> _blockLeases = [];

    /// <summary>
    /// What filling <paramref name="b"/> would cost at <paramref name="now"/>, hour by hour, and which windows are short:
    /// what a <see cref="ExchangeCommandKind.Block"/> command at that time decides on. Read-only.
    /// </summary>
    /// <exception cref="ArgumentException">The block is malformed.</exception>
    public BlockQuote QuoteBlock(BlockOrder b, long now)
    {
        ArgumentNullException.ThrowIfNull(b);
        BlockRule rule = CheckBlock(b);
        if (rule != BlockRule.None)
            throw new ArgumentException($"Invalid block: {Refusals.Describe(new CommandResult { Detail = RefusalDetail.BlockInvalid, DetailValue = (long)rule })}.", nameof(b));
        return Quote(b, now);
    }

    /// <summary>
    /// A block's shape (no state needed): positive GPUs and limit, a defined GPU class, a listed region, whole hours with
    /// end after start, at most <see cref="BlockHoursMax"/> hours, and a worst-case notional that fits a long.
    /// </summary>
    private BlockRule CheckBlock(BlockOrder b)
    {
        if (b.Gpus <= 0) return BlockRule.GpusNotPositive;
        if (b.MaxAveragePrice <= 0) return BlockRule.LimitNotPositive;
        if (!GpuClasses.IsDefined(b.Gpu)) return BlockRule.UnknownGpuClass;
        if (b.Region is null || !_instruments.Schedule.Regions.Contains(b.Region)) return BlockRule.UnknownRegion;
        if (b.StartHour % DeliveryCalendar.NsPerHour != 0 || b.EndHour % DeliveryCalendar.NsPerHour != 0) return BlockRule.NotWholeHours;
        if (b.EndHour <= b.StartHour) return BlockRule.EndNotAfterStart;
        // Far-apart extremes overflow the subtraction; such a window is too long anyway.
        long hours = TrySub(b.EndHour, b.StartHour, out long span) ? span / DeliveryCalendar.NsPerHour : long.MaxValue;
        if (hours > BlockHoursMax) return BlockRule.TooLong;
        // Bounding the worst case up front means no quote or hold of a valid block can overflow later.
        if (!TryMul(GpuClasses.Spec(b.Gpu).Band.MaxPrice, b.Gpus, out long perHour) || !TryMul(perHour, hours, out _)) return BlockRule.NotionalOverflows;
        return BlockRule.None;
    }

    private static bool TrySub(long a, long b, out long difference)
    {
        difference = unchecked(a - b);
        return ((a ^ b) & (a ^ difference)) >= 0;
    }

    /// <summary>The quote of a well-formed block at <paramref name="now"/>. Never changes state.</summary>
    private BlockQuote Quote(BlockOrder b, long now)
    {
        var legs = new List<BlockLeg>();
        var shorts = new List<ShortWindow>();
        long total = 0, gpuHours = 0;
        for (long hour = b.StartHour; hour < b.EndHour; hour += DeliveryCalendar.NsPerHour)
        {
            string symbol = InstrumentSymbol.Format(b.Gpu, b.Region, DeliveryKind.HourlySpot, hour);
            if (!_instruments.TryGetBySymbol(symbol, out Instrument? instrument) || !_instruments.IsActive(instrument.Id) || !instrument.IsTradingAt(now))
            {
                AddShort(shorts, hour, 0, ShortReason.NotTrading);
                continue;
            }
            // Quantities are GPU-hours; an hourly instrument has one hour, so they count GPUs here.
            long wanted = checked(b.Gpus * instrument.Hours), need = wanted, cost = 0, worst = 0;
            int makers = 0;
            if (_books.TryGetValue(instrument.Id, out OrderBook? book))
            {
                foreach (RestingOrder o in book.Orders())
                {
                    if (o.Side != Side.Sell) continue;
                    if (o.ExpiresAt != 0 && o.ExpiresAt <= now) continue; // the book drops it before matching at `now`
                    if (o.Owner == b.Owner) break;                        // self-trade prevention stops the taker here
                    long take = Math.Min(need, o.Remaining);
                    cost = checked(cost + checked(take * o.Price));
                    worst = o.Price;
                    makers++;
                    need -= take;
                    if (need == 0) break;
                }
            }
            int available = (int)((wanted - need) / instrument.Hours);
            legs.Add(new BlockLeg(hour, instrument.Id, instrument.Symbol, available, cost, worst, makers));
            if (need > 0) AddShort(shorts, hour, available, ShortReason.NotEnoughOffered);
            total = checked(total + cost);
            gpuHours = checked(gpuHours + (wanted - need));
        }
        return new BlockQuote(shorts.Count == 0, total, CeilDiv(total, gpuHours), legs, shorts);
    }

    /// <summary>Adds a short hour, extending the last window when it continues it with the same reason and availability.</summary>
    private static void AddShort(List<ShortWindow> shorts, long hour, int available, ShortReason reason)
    {
        long end = hour + DeliveryCalendar.NsPerHour;
        if (shorts.Count > 0 && shorts[^1] is var last && last.End == hour && last.Reason == reason && last.Available == available)
            shorts[^1] = last with { End = end };
        else shorts.Add(new ShortWindow(hour, end, available, reason));
    }

    /// <summary>Rounds up, so an average reported within a limit never hides a total above limit × quantity.</summary>
    private static long CeilDiv(long total, long quantity) => quantity == 0 ? 0 : total / quantity + (total % quantity != 0 ? 1 : 0);

    private CommandResult Block(in ExchangeCommand c)
    {
        BlockOrder b = c.AsBlock();
        BlockRule rule = CheckBlock(b);
        if (rule != BlockRule.None)
            return Refused(rule == BlockRule.NotionalOverflows ? ExchangeError.NotionalOverflows : ExchangeError.InvalidRequest, RefusalDetail.BlockInvalid, (long)rule);
        if (!_traders.TryGetValue(c.Owner, out TraderState? trader)) return Refused(ExchangeError.UnknownTrader);
        BlockQuote quote = Quote(b, _now);
        foreach (ShortWindow s in quote.Short)
            if (s.Reason == ShortReason.NotTrading) return Refused(ExchangeError.InstrumentNotTrading, RefusalDetail.BlockNotTrading, s.Start);
        if (!quote.Fillable) return Refused(ExchangeError.BookRejected, RefusalDetail.BlockShort, quote.Short[0].Start);
        if (quote.AveragePrice > b.MaxAveragePrice) return Refused(ExchangeError.BookRejected, RefusalDetail.BlockAboveLimit, quote.AveragePrice);
        // The hold's post plus one funding per lease must fit one ledger batch, or the settlement would not be atomic.
        long makers = 0;
        foreach (BlockLeg leg in quote.Legs) makers += leg.Makers;
        if (makers + 1 > LedgerLimits.BatchEventsMax) return Refused(ExchangeError.BookRejected, RefusalDetail.BlockTooManyFills, makers);
        if (trader.Available < quote.TotalCost) return Refused(ExchangeError.InsufficientBalance, RefusalDetail.BalanceShort, trader.Available);

        // Accepted: one hold for the whole quoted cost, before any book changes.
        long blockId = (long)_seq;
        UInt128 holdId = NextTransferId();
        trader.Available -= quote.TotalCost;
        _plan.Transfer(new Transfer
        {
            Id = holdId, DebitAccountId = trader.Account, CreditAccountId = EscrowAccount, Amount = quote.TotalCost, Asset = Asset.Usd.Code,
            Code = HoldCode, Flags = TransferFlags.Pending, UserData64 = (ulong)blockId,
        });
        // Good-till-time orders that expired by now still sit in the legs' books (the quote skipped them): they leave
        // first, through the ordinary path, so the legs meet exactly the books quoted.
        foreach (BlockLeg leg in quote.Legs)
            if (_books.TryGetValue(leg.Instrument, out OrderBook? book) && book.NextExpiry <= _now)
                ApplyBook(book, new OrderCommand { Kind = CommandKind.Expire, Timestamp = _now }, 0);

        _blockLeases.Clear();
        long traded = 0;
        foreach (BlockLeg leg in quote.Legs)
        {
            long cost = FillBlockLeg(b, leg, blockId, holdId);
            if (cost != leg.Cost) throw new InvalidOperationException($"Block {blockId}: leg {leg.Symbol} traded {cost}, quoted {leg.Cost}.");
            traded = checked(traded + cost);
        }

        // One settlement for all legs: the lease escrows created, the block hold posted for what was traded, each lease funded.
        foreach (Lease lease in _blockLeases)
        {
            Account a = ChartOfAccounts.NewAccount(AccountCode.LeaseEscrow, lease.EscrowAccount, Asset.Usd);
            a.UserData64 = (ulong)lease.Id;
            _plan.Account(a);
        }
        _plan.Transfer(new Transfer { Id = NextTransferId(), PendingId = holdId, Amount = traded, Flags = TransferFlags.PostPendingTransfer });
        foreach (Lease lease in _blockLeases)
            _plan.Transfer(new Transfer
            {
                Id = NextTransferId(), DebitAccountId = EscrowAccount, CreditAccountId = lease.EscrowAccount, Amount = lease.Notional,
                Asset = Asset.Usd.Code, Code = LeaseFundingCode, UserData64 = (ulong)lease.Id,
            });
        trader.Available = checked(trader.Available + quote.TotalCost - traded);
        _blockLeases.Clear();
        return new CommandResult { Subject = blockId, Status = OrderStatus.Filled, Cost = traded };
    }

    /// <summary>
    /// Fills one hour of a block with a fill-or-kill buy at the leg's worst price: trades, leases and fills as any match
    /// records them, the money left to the block's one settlement. Returns the leg's cost.
    /// </summary>
    private long FillBlockLeg(BlockOrder b, BlockLeg leg, long blockId, UInt128 holdId)
    {
        Instrument instrument = _instruments.Get(leg.Instrument);
        long quantity = checked(b.Gpus * instrument.Hours);
        OrderState order = _blockLeg;
        order.Id = blockId;
        order.Owner = b.Owner;
        order.Instrument = instrument;
        order.Side = Side.Buy;
        order.Limit = leg.WorstPrice;
        order.Remaining = quantity;
        order.HoldId = holdId; // the block's hold: settled once for all legs
        order.HoldAmount = 0;
        order.ResoldLease = 0;
        if (!_books.TryGetValue(instrument.Id, out OrderBook? book)) throw new InvalidOperationException($"Block leg {leg.Symbol}: quoted liquidity but no book.");
        var command = new OrderCommand
        {
            Kind = CommandKind.Place, Side = Side.Buy, Type = OrderType.Limit, TimeInForce = TimeInForce.FillOrKill,
            OrderId = blockId, Owner = b.Owner, Price = leg.WorstPrice, Quantity = quantity, Timestamp = _now,
        };
        long cost = 0;
        foreach (ref readonly MatchEvent e in book.Apply(in command))
        {
            if (e.Kind != EventKind.Trade || e.OrderId != blockId) throw new InvalidOperationException($"Block leg {leg.Symbol} did not fill as quoted: {e.Kind} of order {e.OrderId}.");
            OrderState maker = _orders[e.MakerOrderId];
            Lease lease = CreateLease(order, maker, e.Price, e.Quantity);
            order.Remaining -= e.Quantity;
            maker.Remaining -= e.Quantity;
            cost = checked(cost + lease.Notional);
            _blockLeases.Add(lease);
            _fills.Add(new FillRecord(blockId, maker.Id, e.Price, e.Quantity, lease.Id, ++_tradeSequence, instrument.Id, Side.Buy, _now));
            // A sell has no hold to settle, so a filled maker leaves the open orders at once.
            if (maker.Remaining == 0) RemoveOrder(maker);
        }
        if (order.Remaining != 0) throw new InvalidOperationException($"Block leg {leg.Symbol} left {order.Remaining} GPU-hours unfilled.");
        order.Instrument = null!;
        return cost;
    }
}
