using System.Text.Json;
using ComputeGrid.Core;
using ComputeGrid.Exchange.Instruments;
using ComputeGrid.Exchange.Matching;
using ComputeGrid.Ledger;

namespace ComputeGrid.Exchange.Trading;

/// <summary>The outcome of placing a block order.</summary>
/// <param name="Error">None when the block filled; otherwise why not (<see cref="ExchangeError.BookRejected"/> or
/// <see cref="ExchangeError.InstrumentNotTrading"/> come with a <paramref name="Refusal"/>).</param>
/// <param name="Refusal">Why the books could not fill it, if that is why.</param>
/// <param name="BlockId">The block's id (an order id; the block hold's UserData64), 0 when refused before one was given.</param>
/// <param name="Quote">The quote the decision was made on (null when the request was malformed).</param>
/// <param name="Fills">Every fill of every leg, in hour then price-time order.</param>
/// <param name="Leases">The leases created, one per fill.</param>
/// <param name="TotalCost">What the buyer paid (micro-USD); 0 when refused.</param>
/// <param name="AveragePrice">TotalCost per GPU-hour, rounded up; 0 when refused.</param>
/// <param name="Detail">A human-readable detail of a refusal.</param>
public sealed record BlockResult(
    ExchangeError Error, BlockRefusal Refusal, long BlockId, BlockQuote? Quote, IReadOnlyList<Fill> Fills, IReadOnlyList<Lease> Leases,
    long TotalCost, long AveragePrice, string? Detail = null)
{
    /// <summary>True when the block filled.</summary>
    public bool Ok => Error == ExchangeError.None && Refusal == BlockRefusal.None;
}

/// <summary>
/// Block orders: N GPUs over a window of hours, all-or-none across the hourly spot books.
/// <para>
/// The block hold. A block holds its whole quoted cost in ONE pending transfer (buyer → order escrow) before any
/// book changes, so a balance that cannot cover it refuses the block with nothing changed. Each hour is then filled
/// by a fill-or-kill buy (the leg) at the leg's worst quoted price, through the book's ordinary matching. A leg is an
/// <c>OrderState</c> like any buy, because <c>CreateLease</c> and the trade bookkeeping take one, but its money does
/// not go through <c>ApplyAsync</c>/<c>SettleAsync</c>: those post and re-hold each buy's own hold per command, and a
/// pending transfer can be posted once only, so legs sharing one hold cannot settle one by one. Instead every leg's
/// <c>HoldId</c> names the block hold, the legs' trades are only collected, and after the last leg ONE linked chain
/// posts the block hold for everything traded and funds every new lease's escrow from the order escrow: all legs'
/// money moves or none does. The legs never rest (fill-or-kill) and never enter the open-order table, so the
/// invariant "escrow pending = holds of open buys" holds before and after a block (within it the gate keeps
/// everyone else out).
/// </para>
/// <para>
/// Why the legs must fill exactly as quoted: the quote is computed under the same gate, at the same timestamp, from
/// the same books, with the book's own rules (price-time order, expired good-till-time asks ignored, and self-trade
/// prevention: the book stops a taker at its owner's first resting order, so the quote stops there too rather than
/// counting the asks behind it, which the book would never reach). A leg that fills differently is a bug and throws.
/// </para>
/// </summary>
public sealed partial class ExchangeService
{
    /// <summary>Longest block window: 31 days of hours.</summary>
    public const int BlockHoursMax = 31 * 24;

    /// <summary>
    /// Checks a block's shape (no state needed): positive GPUs and limit, a defined GPU class, a listed region, whole
    /// hours with End &gt; Start, at most <see cref="BlockHoursMax"/> hours, and a worst-case notional that fits a
    /// <see cref="long"/>. Returns <see cref="ExchangeError.None"/> or the reason, with a detail.
    /// </summary>
    public ExchangeError ValidateBlock(BlockOrder b, out string? detail)
    {
        ArgumentNullException.ThrowIfNull(b);
        detail = null;
        if (b.Gpus <= 0) { detail = "a block needs a positive number of GPUs"; return ExchangeError.InvalidRequest; }
        if (b.MaxAveragePrice <= 0) { detail = "the average price limit must be positive"; return ExchangeError.InvalidRequest; }
        if (!GpuClasses.IsDefined(b.Gpu)) { detail = "unknown GPU class"; return ExchangeError.InvalidRequest; }
        if (b.Region is null || !_instruments.Schedule.Regions.Contains(b.Region)) { detail = $"unknown region '{b.Region}'"; return ExchangeError.InvalidRequest; }
        if (b.StartHour % DeliveryCalendar.NsPerHour != 0 || b.EndHour % DeliveryCalendar.NsPerHour != 0)
        { detail = "start and end must be whole UTC hours"; return ExchangeError.InvalidRequest; }
        if (b.EndHour <= b.StartHour) { detail = "the end must be after the start"; return ExchangeError.InvalidRequest; }
        long span;
        // Far-apart extremes overflow the subtraction; such a window is too long anyway.
        try { span = checked(b.EndHour - b.StartHour); }
        catch (OverflowException) { span = long.MaxValue; }
        long hours = span / DeliveryCalendar.NsPerHour;
        if (hours > BlockHoursMax) { detail = $"a block spans at most {BlockHoursMax} hours"; return ExchangeError.InvalidRequest; }
        // Bounding the worst case up front means no quote or hold of a valid block can overflow later.
        try { _ = checked(GpuClasses.Spec(b.Gpu).Band.MaxPrice * b.Gpus * hours); }
        catch (OverflowException) { detail = "the block's notional at the band's maximum price does not fit"; return ExchangeError.NotionalOverflows; }
        return ExchangeError.None;
    }

    /// <summary>
    /// What filling <paramref name="b"/> would cost now, hour by hour, and which windows are short. Read-only.
    /// </summary>
    /// <exception cref="ArgumentException">The block is malformed (see <see cref="ValidateBlock"/>).</exception>
    public async Task<BlockQuote> QuoteBlockAsync(BlockOrder b, CancellationToken ct = default)
    {
        var error = ValidateBlock(b, out var detail);
        if (error != ExchangeError.None) throw new ArgumentException($"Invalid block ({error}): {detail}.", nameof(b));
        await _gate.WaitAsync(ct);
        try { return QuoteBlockLocked(b, Now); }
        finally { _gate.Release(); }
    }

    /// <summary>
    /// Places a block order: validates it, quotes it, and if every hour can be filled within the average limit,
    /// holds the total in one pending transfer, fills every hour with a fill-or-kill leg and settles all legs in one
    /// linked ledger chain. A refused block changes nothing. See the summary of this part of the class.
    /// </summary>
    /// <exception cref="InvalidOperationException">A leg did not fill as quoted or settlement failed: a bug.</exception>
    public async Task<BlockResult> PlaceBlockAsync(BlockOrder b, CancellationToken ct = default)
    {
        var error = ValidateBlock(b, out var detail);
        if (error != ExchangeError.None) return RefuseBlock(error, BlockRefusal.None, null, detail);
        return await CommandAsync("block", JsonSerializer.SerializeToNode(b, JournalJson)!.AsObject(), () => PlaceBlockLockedAsync(b, ct), ct);
    }

    private static BlockResult RefuseBlock(ExchangeError e, BlockRefusal refusal, BlockQuote? quote, string? detail) =>
        new(e, refusal, 0, quote, Array.Empty<Fill>(), Array.Empty<Lease>(), 0, 0, detail);

    private async Task<BlockResult> PlaceBlockLockedAsync(BlockOrder b, CancellationToken ct)
    {
        if (!_traders.TryGetValue(b.Owner, out var traderAccount)) return RefuseBlock(ExchangeError.UnknownTrader, BlockRefusal.None, null, null);
        // One timestamp for the quote, the expiry pass and every leg: the legs then see exactly the books quoted.
        long now = Now;
        var quote = QuoteBlockLocked(b, now);
        if (quote.Short.Any(s => s.Reason == ShortReason.NotTrading))
            return RefuseBlock(ExchangeError.InstrumentNotTrading, BlockRefusal.Short, quote, "some hours of the block have no hourly instrument trading now");
        if (!quote.Fillable)
            return RefuseBlock(ExchangeError.BookRejected, BlockRefusal.Short, quote, "some hours offer fewer GPUs than the block wants");
        if (quote.AveragePrice > b.MaxAveragePrice)
            return RefuseBlock(ExchangeError.BookRejected, BlockRefusal.AboveLimit, quote, $"the average price {quote.AveragePrice} is above the limit {b.MaxAveragePrice}");
        // The hold's post plus one funding per lease must fit one ledger batch, or the settlement would not be atomic.
        long fills = quote.Legs.Sum(l => (long)l.Makers);
        if (fills + 1 > LedgerLimits.BatchEventsMax)
            return RefuseBlock(ExchangeError.BookRejected, BlockRefusal.TooManyFills, quote, $"the block would trade with {fills} orders; at most {LedgerLimits.BatchEventsMax - 1} settle atomically");

        long blockId = ++_nextOrderId;
        var holdId = NextTransferId();
        var r = await _ledger.CreateTransfersAsync(new[] { new Transfer
        {
            Id = holdId, DebitAccountId = traderAccount, CreditAccountId = EscrowAccount, Amount = quote.TotalCost, Asset = Asset.Usd.Code,
            Code = HoldCode, Flags = TransferFlags.Pending, UserData64 = (ulong)blockId,
        } }, ct);
        if (r[0] == CreateTransferResult.ExceedsCredits)
            return RefuseBlock(ExchangeError.InsufficientBalance, BlockRefusal.None, quote, $"holding {quote.TotalCost} micro-USD for this block exceeds the available balance");
        if (r[0] != CreateTransferResult.Ok) return RefuseBlock(ExchangeError.LedgerRejected, BlockRefusal.None, quote, r[0].ToString());

        // Good-till-time asks that expired by now still sit in the books (the quote skipped them). Expire them through
        // the ordinary path first, which releases their capacity (and voids expired buys' holds), so the legs' own
        // commands produce trades only.
        foreach (var leg in quote.Legs)
            if (_books.TryGetValue(leg.Instrument, out var book) && book.Count > 0)
                await ApplyAsync(book, new OrderCommand { Kind = CommandKind.Expire, Timestamp = now }, 0, ct);

        var allFills = new List<Fill>();
        var leases = new List<Lease>();
        long traded = 0;
        foreach (var leg in quote.Legs)
        {
            long legCost = FillBlockLeg(b, leg, holdId, now, allFills, leases);
            if (legCost != leg.Cost) throw new InvalidOperationException($"Block {blockId}: leg {leg.Symbol} traded {legCost}, quoted {leg.Cost}.");
            traded = checked(traded + legCost);
        }
        await SettleBlockAsync(holdId, traded, leases, ct);
        long gpuHours = checked((long)b.Gpus * quote.Legs.Count);
        return new BlockResult(ExchangeError.None, BlockRefusal.None, blockId, quote, allFills, leases, traded, CeilDiv(traded, gpuHours));
    }

    /// <summary>
    /// Fills one hour of a block with a fill-or-kill buy at the leg's worst price; records trades, leases and market
    /// data like <c>ApplyAsync</c> does, but leaves the money to <see cref="SettleBlockAsync"/>. Returns the leg's cost.
    /// </summary>
    private long FillBlockLeg(BlockOrder b, BlockLeg leg, UInt128 holdId, long now, List<Fill> fills, List<Lease> leases)
    {
        var instrument = _instruments.Get(leg.Instrument);
        long quantity = checked((long)b.Gpus * instrument.Hours);
        var order = new OrderState
        {
            Id = ++_nextOrderId, Owner = b.Owner, Instrument = instrument, Side = Side.Buy, Limit = leg.WorstPrice, Remaining = quantity,
            // The block's hold: settled once for all legs, never posted per leg (see the class summary above).
            HoldId = holdId,
        };
        if (!_books.TryGetValue(instrument.Id, out var book)) throw new InvalidOperationException($"Block leg {leg.Symbol}: quoted liquidity but no book.");
        var command = new OrderCommand
        {
            Kind = CommandKind.Place, Side = Side.Buy, Type = OrderType.Limit, TimeInForce = TimeInForce.FillOrKill,
            OrderId = order.Id, Owner = b.Owner, Price = leg.WorstPrice, Quantity = quantity, Timestamp = now,
        };
        var events = book.Apply(in command).ToArray(); // copied: CreateLease and the feed handlers run between reads
        long cost = 0;
        foreach (var e in events)
        {
            if (e.Kind != EventKind.Trade || e.OrderId != order.Id)
                throw new InvalidOperationException($"Block leg {leg.Symbol} did not fill as quoted: {e}.");
            var maker = _orders[e.MakerOrderId];
            var (lease, fill) = RecordTrade(order, maker, in e, now);
            leases.Add(lease);
            cost = checked(cost + lease.Notional);
            // A sell has no hold to settle, so a filled maker can leave the open-order table at once.
            if (maker.Remaining == 0) RemoveOrder(maker.Id);
            fills.Add(fill);
        }
        if (order.Remaining != 0) throw new InvalidOperationException($"Block leg {leg.Symbol} left {order.Remaining} GPU-hours unfilled.");
        return cost;
    }

    /// <summary>
    /// Creates the new leases' escrow accounts, then in ONE linked chain posts the block hold for what was traded and
    /// funds each lease from the order escrow. The hold covers it by construction, so a failure is a bug.
    /// </summary>
    private async Task SettleBlockAsync(UInt128 holdId, long traded, List<Lease> leases, CancellationToken ct)
    {
        var accounts = leases.Select(l => LeaseEscrowAccount(l)).ToArray();
        var ar = await _ledger.CreateAccountsAsync(accounts, ct);
        if (ar.Any(x => x != CreateAccountResult.Ok)) throw new InvalidOperationException("Cannot create lease escrow accounts: " + string.Join(",", ar));
        var transfers = new Transfer[leases.Count + 1];
        transfers[0] = new Transfer { Id = NextTransferId(), PendingId = holdId, Amount = traded, Flags = TransferFlags.PostPendingTransfer | TransferFlags.Linked };
        for (int k = 0; k < leases.Count; k++)
        {
            var l = leases[k];
            transfers[k + 1] = new Transfer
            {
                Id = NextTransferId(), DebitAccountId = EscrowAccount, CreditAccountId = l.EscrowAccount, Amount = l.Notional,
                Asset = Asset.Usd.Code, Code = LeaseFundingCode, Flags = TransferFlags.Linked, UserData64 = (ulong)l.Id,
            };
        }
        transfers[^1].Flags &= ~TransferFlags.Linked;
        var r = await _ledger.CreateTransfersAsync(transfers, ct);
        if (r.Any(x => x != CreateTransferResult.Ok)) throw new InvalidOperationException("Block settlement chain failed: " + string.Join(",", r));
    }

    /// <summary>The quote of a valid block at <paramref name="now"/>; call under the gate. Never changes state.</summary>
    private BlockQuote QuoteBlockLocked(BlockOrder b, long now)
    {
        var legs = new List<BlockLeg>();
        var shorts = new List<ShortWindow>();
        long total = 0, gpuHours = 0;
        for (long hour = b.StartHour; hour < b.EndHour; hour += DeliveryCalendar.NsPerHour)
        {
            string symbol = InstrumentSymbol.Format(b.Gpu, b.Region, DeliveryKind.HourlySpot, hour);
            if (!_instruments.TryGetBySymbol(symbol, out var instrument) || !_instruments.IsActive(instrument.Id) || !instrument.IsTradingAt(now))
            {
                AddShort(shorts, hour, 0, ShortReason.NotTrading);
                continue;
            }
            // Quantities are GPU-hours; an hourly instrument has one hour, so they count GPUs here.
            long wanted = checked((long)b.Gpus * instrument.Hours), need = wanted, cost = 0, worst = 0;
            int makers = 0;
            if (_books.TryGetValue(instrument.Id, out var book))
            {
                foreach (var o in book.Orders())
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
}
