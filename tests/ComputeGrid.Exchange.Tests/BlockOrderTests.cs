using ComputeGrid.Exchange.Instruments;
using ComputeGrid.Exchange.Matching;
using ComputeGrid.Exchange.Trading;
using ComputeGrid.Ledger;

namespace ComputeGrid.Exchange.Tests;

/// <summary>
/// Block orders: quotes across hourly books, all-or-none fills settled through one hold and one linked chain, and
/// refusals that change nothing. The harness's clock stands at 2026-11-26 12:00 UTC; hour n is 12:00 + n hours
/// (hour 0 is delivering, so it no longer trades; hours 1..47 trade).
/// </summary>
public class BlockOrderTests
{
    private const long NsPerHour = 3_600_000_000_000L;

    /// <summary>A second provider (also the owner of its own asks in the self-trade cases), with a node of 8 H100s in Frankfurt.</summary>
    private const long Provider2 = 200;
    private static readonly UInt128 Revenue2 = 2_000, Collateral2 = 2_001;

    private static async Task<ExchangeHarness> StartAsync(long buyerFunds = 1_000_000_000)
    {
        var h = await ExchangeHarness.StartAsync(buyerFunds);
        Assert.All(await h.Ledger.CreateAccountsAsync(new[]
        {
            new Account { Id = Revenue2, Asset = 1, Code = 3, Flags = AccountFlags.DebitsMustNotExceedCredits },
            new Account { Id = Collateral2, Asset = 1, Code = 4, Flags = AccountFlags.DebitsMustNotExceedCredits },
        }), r => Assert.Equal(CreateAccountResult.Ok, r));
        // Provider 2 buys blocks too (paying from its revenue account), so it needs a balance.
        Assert.All(await h.Ledger.CreateTransfersAsync(new[]
        {
            new Transfer { Id = 10, DebitAccountId = ExchangeHarness.Funding, CreditAccountId = Revenue2, Amount = buyerFunds, Asset = 1, Code = 1 },
        }), r => Assert.Equal(CreateTransferResult.Ok, r));
        Assert.Equal(ExchangeError.None, await h.Exchange.RegisterProviderAsync(Provider2, Revenue2, Collateral2));
        var (e, _) = await h.Exchange.RegisterNodeAsync(Provider2, "fra-h100-p2", GpuClass.H100, "frankfurt", 8);
        Assert.Equal(ExchangeError.None, e);
        return h;
    }

    /// <summary>Start of hour n (Unix ns).</summary>
    private static long Hour(ExchangeHarness h, int n) => h.Hourly(1).DeliveryStart + (n - 1) * NsPerHour;

    private static BlockOrder Block(ExchangeHarness h, long owner, int fromHour, int toHour, int gpus, long maxAverage) =>
        new(owner, GpuClass.H100, "frankfurt", Hour(h, fromHour), Hour(h, toHour), gpus, maxAverage);

    private static async Task<OrderResult> SellAsync(ExchangeHarness h, long owner, int hour, long price, long gpus, long expiresAt = 0)
    {
        var tif = expiresAt == 0 ? TimeInForce.GoodTillCancel : TimeInForce.GoodTillTime;
        var r = await h.Exchange.PlaceAsync(new PlaceOrder(owner, h.Hourly(hour).Id, Side.Sell, OrderType.Limit, tif, price, gpus, ExpiresAt: expiresAt));
        Assert.True(r.Ok, r.Detail);
        Assert.Equal(OrderStatus.Resting, r.Status);
        return r;
    }

    /// <summary>Everything a block could change: the ledger accounts involved, open orders, leases, and the books of the hours given.</summary>
    private static async Task<string> StateAsync(ExchangeHarness h, int fromHour, int toHour)
    {
        var ids = new[] { ExchangeHarness.BuyerAccount, ExchangeHarness.Buyer2Account, ExchangeHarness.Revenue, Revenue2, ExchangeService.EscrowAccount };
        var accounts = await h.Ledger.LookupAccountsAsync(ids);
        var money = string.Join(";", accounts.Select(a => $"{a.Id}:{a.DebitsPending}/{a.DebitsPosted}/{a.CreditsPending}/{a.CreditsPosted}"));
        var instruments = Enumerable.Range(fromHour, toHour - fromHour).Select(n => h.Hourly(n).Id).ToList();
        var exchange = await h.Exchange.ReadAsync(v =>
            string.Join(";", v.OpenOrders()) + "|" + string.Join(";", v.Leases().Select(l => $"{l.Id}:{l.Instrument}:{l.Gpus}:{l.Notional}"))
            + "|" + string.Join(";", instruments.Select(i => i + "=" + string.Join(",", v.Book(i)?.Orders() ?? new List<RestingOrder>()))));
        return money + "\n" + exchange;
    }

    /// <summary>Quotes are records holding lists, so they are compared field by field and list by list.</summary>
    private static void AssertSameQuote(BlockQuote expected, BlockQuote? actual)
    {
        Assert.NotNull(actual);
        Assert.Equal((expected.Fillable, expected.TotalCost, expected.AveragePrice), (actual.Fillable, actual.TotalCost, actual.AveragePrice));
        Assert.Equal(expected.Legs, actual.Legs);
        Assert.Equal(expected.Short, actual.Short);
    }

    [Fact]
    public async Task A_quote_lists_each_hours_leg_and_the_short_windows_and_changes_nothing()
    {
        await using var h = await StartAsync();
        // Hour 1: two makers cover the block (and a bid, which a block never counts).
        await SellAsync(h, ExchangeHarness.ProviderId, 1, 2_000_000, 2);
        await SellAsync(h, ExchangeHarness.ProviderId, 1, 2_100_000, 3);
        Assert.True((await h.Exchange.PlaceAsync(new PlaceOrder(ExchangeHarness.Buyer, h.Hourly(1).Id, Side.Buy, OrderType.Limit, TimeInForce.GoodTillCancel, 1_000_000, 5))).Ok);
        // Hour 2: no asks at all. Hour 3: only the block owner's own asks.
        await SellAsync(h, Provider2, 3, 1_900_000, 4);
        // Hour 4: one GPU from another maker, then the owner's own ask, then plenty more behind it: self-trade
        // prevention stops a taker at its own order, so only the first GPU is reachable.
        await SellAsync(h, ExchangeHarness.ProviderId, 4, 1_800_000, 1);
        await SellAsync(h, Provider2, 4, 1_900_000, 1);
        await SellAsync(h, ExchangeHarness.ProviderId, 4, 2_000_000, 4);
        await h.CheckAsync();
        string before = await StateAsync(h, 1, 5);

        // Hours 0..4 for 4 GPUs, as provider 2 (hour 0 is delivering now: its instrument no longer trades).
        var block = Block(h, Provider2, 0, 5, 4, 3_000_000);
        var q = await h.Exchange.QuoteBlockAsync(block);

        Assert.False(q.Fillable);
        Assert.Equal(new[]
        {
            new BlockLeg(Hour(h, 1), h.Hourly(1).Id, h.Hourly(1).Symbol, 4, 2 * 2_000_000 + 2 * 2_100_000, 2_100_000, 2),
            new BlockLeg(Hour(h, 2), h.Hourly(2).Id, h.Hourly(2).Symbol, 0, 0, 0, 0),
            new BlockLeg(Hour(h, 3), h.Hourly(3).Id, h.Hourly(3).Symbol, 0, 0, 0, 0),
            new BlockLeg(Hour(h, 4), h.Hourly(4).Id, h.Hourly(4).Symbol, 1, 1_800_000, 1_800_000, 1),
        }, q.Legs);
        Assert.Equal(new[]
        {
            new ShortWindow(Hour(h, 0), Hour(h, 1), 0, ShortReason.NotTrading),
            new ShortWindow(Hour(h, 2), Hour(h, 4), 0, ShortReason.NotEnoughOffered), // hours 2 and 3 merge: same reason, same availability
            new ShortWindow(Hour(h, 4), Hour(h, 5), 1, ShortReason.NotEnoughOffered),
        }, q.Short);
        Assert.Equal(10_000_000, q.TotalCost);
        Assert.Equal(2_000_000, q.AveragePrice); // over the 5 GPU-hours available
        Assert.Equal(before, await StateAsync(h, 1, 5));

        // Another owner's view of the same books: provider 2's asks count for it.
        var q2 = await h.Exchange.QuoteBlockAsync(Block(h, ExchangeHarness.Buyer, 3, 5, 4, 3_000_000));
        Assert.True(q2.Fillable);
        Assert.Equal(4 * 1_900_000 + (1_800_000 + 1_900_000 + 2 * 2_000_000), q2.TotalCost);
        Assert.Equal(new[] { 1, 3 }, q2.Legs.Select(l => l.Makers));

        // Placing the short block is refused with the quote, and changes nothing.
        var r = await h.Exchange.PlaceBlockAsync(block);
        Assert.False(r.Ok);
        Assert.Equal(ExchangeError.InstrumentNotTrading, r.Error);
        Assert.Equal(BlockRefusal.Short, r.Refusal);
        AssertSameQuote(q, r.Quote);
        Assert.Equal(before, await StateAsync(h, 1, 5));
        await h.CheckAsync();
    }

    /// <summary>Hours 2..4 for 5 GPUs: five makers over three hours, total 31.0 USD, average 2.0666… USD per GPU-hour.</summary>
    private static async Task SeedThreeHoursAsync(ExchangeHarness h)
    {
        await SellAsync(h, ExchangeHarness.ProviderId, 2, 2_000_000, 3);
        await SellAsync(h, Provider2, 2, 2_100_000, 4);
        await SellAsync(h, ExchangeHarness.ProviderId, 3, 2_200_000, 5);
        await SellAsync(h, Provider2, 4, 1_900_000, 2);
        await SellAsync(h, ExchangeHarness.ProviderId, 4, 2_000_000, 3);
        await SellAsync(h, ExchangeHarness.ProviderId, 4, 2_500_000, 2);
        await h.CheckAsync();
    }

    private const long SeededTotal = 3 * 2_000_000 + 2 * 2_100_000 + 5 * 2_200_000 + 2 * 1_900_000 + 3 * 2_000_000;
    private const long SeededAverage = (SeededTotal + 14) / 15; // rounded up: 2_066_667

    [Fact]
    public async Task A_fillable_block_fills_every_hour_at_once_one_lease_per_maker_and_pays_exactly_the_quote()
    {
        await using var h = await StartAsync();
        await SeedThreeHoursAsync(h);
        var trades = new List<Trade>();
        h.Exchange.TradeExecuted += trades.Add;
        long balance = await h.BalanceAsync(ExchangeHarness.BuyerAccount);

        var block = Block(h, ExchangeHarness.Buyer, 2, 5, 5, SeededAverage); // the limit is exactly the average: allowed
        var q = await h.Exchange.QuoteBlockAsync(block);
        Assert.True(q.Fillable);
        Assert.Empty(q.Short);
        Assert.Equal(SeededTotal, q.TotalCost);
        Assert.Equal(SeededAverage, q.AveragePrice);

        var r = await h.Exchange.PlaceBlockAsync(block);
        Assert.True(r.Ok, r.Detail);
        AssertSameQuote(q, r.Quote);
        Assert.Equal(SeededTotal, r.TotalCost);
        Assert.Equal(SeededAverage, r.AveragePrice);
        await h.CheckAsync();

        // One lease per maker per hour: 2 + 1 + 2.
        Assert.Equal(5, r.Fills.Count);
        Assert.Equal(5, r.Leases.Count);
        Assert.Equal(5, trades.Count);
        Assert.Equal(r.Fills.Select(f => f.LeaseId), r.Leases.Select(l => l.Id));
        Assert.Equal(new[] { (2, 3, 2_000_000L), (2, 2, 2_100_000L), (3, 5, 2_200_000L), (4, 2, 1_900_000L), (4, 3, 2_000_000L) },
            r.Leases.Select(l => ((int)((l.Start - Hour(h, 0)) / NsPerHour), l.Gpus, l.Price)));
        Assert.Equal(new[] { ExchangeHarness.ProviderId, Provider2, ExchangeHarness.ProviderId, Provider2, ExchangeHarness.ProviderId }, r.Leases.Select(l => l.Provider));
        Assert.All(r.Leases, l => Assert.Equal(ExchangeHarness.Buyer, l.Buyer));
        Assert.All(r.Leases, l => Assert.Equal(NsPerHour, l.End - l.Start));
        Assert.Equal(SeededTotal, r.Leases.Sum(l => l.Notional));
        foreach (var l in r.Leases) Assert.Equal(l.Notional, await h.BalanceAsync(l.EscrowAccount));

        // The buyer paid exactly the quote and holds nothing; the order escrow passed everything on.
        Assert.Equal(balance - SeededTotal, await h.BalanceAsync(ExchangeHarness.BuyerAccount));
        Assert.Equal(0, (await h.AccountAsync(ExchangeHarness.BuyerAccount)).DebitsPending);
        var escrow = await h.AccountAsync(ExchangeService.EscrowAccount);
        Assert.Equal(0, escrow.CreditsPending);
        Assert.Equal(escrow.CreditsPosted, escrow.DebitsPosted);

        // What the block did not need still rests; filled makers are gone; capacity went to the leases.
        var open = await h.Exchange.ReadAsync(v => v.OpenOrders());
        Assert.Equal(new[] { (h.Hourly(2).Id, Provider2, 2L, 2_100_000L), (h.Hourly(4).Id, ExchangeHarness.ProviderId, 2L, 2_500_000L) },
            open.Select(o => (o.Instrument, o.Owner, o.Remaining, o.Price)));
        Assert.Equal(new[] { (h.NodeId, 3) }, r.Leases[0].Nodes);
        Assert.Equal(new[] { (h.NodeId, 5) }, r.Leases[2].Nodes);

        // The same block again is short now, and the hours' leases deliver like any other.
        var again = await h.Exchange.PlaceBlockAsync(block with { Owner = ExchangeHarness.Buyer2 });
        Assert.Equal(BlockRefusal.Short, again.Refusal);
        h.AdvanceTo(r.Leases.Max(l => l.End));
        foreach (var l in r.Leases)
            Assert.Equal(ExchangeError.None, (await h.Exchange.ReportDeliveryAsync(l.Provider, l.Id, l.Start, l.End)).Error);
        Assert.Equal(3 * 2_000_000 + 5 * 2_200_000 + 3 * 2_000_000, await h.BalanceAsync(ExchangeHarness.Revenue));
        await h.CheckAsync();
    }

    [Fact]
    public async Task A_block_above_its_average_limit_is_refused_and_changes_nothing()
    {
        await using var h = await StartAsync();
        await SeedThreeHoursAsync(h);
        string before = await StateAsync(h, 2, 5);
        var r = await h.Exchange.PlaceBlockAsync(Block(h, ExchangeHarness.Buyer, 2, 5, 5, SeededAverage - 1));
        Assert.Equal(ExchangeError.BookRejected, r.Error);
        Assert.Equal(BlockRefusal.AboveLimit, r.Refusal);
        Assert.True(r.Quote!.Fillable);
        Assert.Equal(SeededTotal, r.Quote.TotalCost);
        Assert.Empty(r.Fills);
        Assert.Equal(before, await StateAsync(h, 2, 5));
        await h.CheckAsync();
    }

    [Fact]
    public async Task A_block_short_in_one_hour_is_refused_and_changes_nothing_not_even_capacity()
    {
        await using var h = await StartAsync();
        await SeedThreeHoursAsync(h);
        string before = await StateAsync(h, 2, 5);
        // Six GPUs: hours 2 and 4 have 7 (to the buyer), hour 3 only 5.
        var r = await h.Exchange.PlaceBlockAsync(Block(h, ExchangeHarness.Buyer, 2, 5, 6, 10_000_000));
        Assert.Equal(ExchangeError.BookRejected, r.Error);
        Assert.Equal(BlockRefusal.Short, r.Refusal);
        Assert.Equal(new[] { new ShortWindow(Hour(h, 3), Hour(h, 4), 5, ShortReason.NotEnoughOffered) }, r.Quote!.Short);
        Assert.Equal(before, await StateAsync(h, 2, 5));
        await h.CheckAsync();

        // Capacity is untouched: in hour 3 the provider has 12 GPUs with 5 offered, so exactly 7 more can be offered.
        Assert.Equal(ExchangeError.InsufficientCapacity,
            (await h.Exchange.PlaceAsync(new PlaceOrder(ExchangeHarness.ProviderId, h.Hourly(3).Id, Side.Sell, OrderType.Limit, TimeInForce.GoodTillCancel, 3_000_000, 8))).Error);
        await SellAsync(h, ExchangeHarness.ProviderId, 3, 3_000_000, 7);
        await h.CheckAsync();
    }

    [Fact]
    public async Task A_block_the_balance_cannot_hold_is_refused_and_changes_nothing()
    {
        await using var h = await StartAsync(buyerFunds: SeededTotal - 1);
        await SeedThreeHoursAsync(h);
        string before = await StateAsync(h, 2, 5);
        var r = await h.Exchange.PlaceBlockAsync(Block(h, ExchangeHarness.Buyer, 2, 5, 5, 3_000_000));
        Assert.Equal(ExchangeError.InsufficientBalance, r.Error);
        Assert.Equal(BlockRefusal.None, r.Refusal);
        Assert.True(r.Quote!.Fillable);
        Assert.Equal(before, await StateAsync(h, 2, 5));
        await h.CheckAsync();

        // With exactly enough it fills, and the account ends at zero with nothing pending.
        await h.Ledger.CreateTransfersAsync(new[] { new Transfer { Id = 11, DebitAccountId = ExchangeHarness.Funding, CreditAccountId = ExchangeHarness.BuyerAccount, Amount = 1, Asset = 1, Code = 1 } });
        var ok = await h.Exchange.PlaceBlockAsync(Block(h, ExchangeHarness.Buyer, 2, 5, 5, 3_000_000));
        Assert.True(ok.Ok, ok.Detail);
        var buyer = await h.AccountAsync(ExchangeHarness.BuyerAccount);
        Assert.Equal(0, buyer.CreditBalance);
        Assert.Equal(0, buyer.DebitsPending);
        await h.CheckAsync();
    }

    [Fact]
    public async Task Expired_good_till_time_asks_are_neither_quoted_nor_traded_and_their_capacity_is_released()
    {
        await using var h = await StartAsync();
        long now = h.Hourly(1).DeliveryStart - NsPerHour; // 12:00
        var gtt = await SellAsync(h, ExchangeHarness.ProviderId, 2, 1_500_000, 4, expiresAt: now + 10 * 60_000_000_000L);
        await SellAsync(h, ExchangeHarness.ProviderId, 2, 2_000_000, 4);
        await SellAsync(h, Provider2, 2, 2_000_000, 4);
        h.Time.Advance(TimeSpan.FromMinutes(15)); // the cheap ask has expired, but no command touched its book yet

        var q = await h.Exchange.QuoteBlockAsync(Block(h, ExchangeHarness.Buyer, 2, 3, 6, 2_000_000));
        Assert.True(q.Fillable);
        Assert.Equal(6 * 2_000_000, q.TotalCost);
        var r = await h.Exchange.PlaceBlockAsync(Block(h, ExchangeHarness.Buyer, 2, 3, 6, 2_000_000));
        Assert.True(r.Ok, r.Detail);
        Assert.Equal(6 * 2_000_000, r.TotalCost);
        Assert.Equal(new[] { 4, 2 }, r.Leases.Select(l => l.Gpus));
        Assert.DoesNotContain(await h.Exchange.ReadAsync(v => v.OpenOrders()), o => o.OrderId == gtt.OrderId);
        await h.CheckAsync();
        // 12 GPUs: 4 leased, none committed by the expired order, so 8 can be offered again.
        await SellAsync(h, ExchangeHarness.ProviderId, 2, 2_500_000, 8);
        await h.CheckAsync();
    }

    [Fact]
    public async Task Malformed_blocks_get_a_clear_error_and_quotes_of_them_throw()
    {
        await using var h = await StartAsync();
        await SeedThreeHoursAsync(h);
        string before = await StateAsync(h, 2, 5);
        var good = Block(h, ExchangeHarness.Buyer, 2, 5, 5, 3_000_000);
        var cases = new (BlockOrder Block, ExchangeError Error)[]
        {
            (good with { Owner = 77 }, ExchangeError.UnknownTrader),
            (good with { Gpus = 0 }, ExchangeError.InvalidRequest),
            (good with { MaxAveragePrice = 0 }, ExchangeError.InvalidRequest),
            (good with { Region = "atlantis" }, ExchangeError.InvalidRequest),
            (good with { Gpu = (GpuClass)200 }, ExchangeError.InvalidRequest),
            (good with { StartHour = good.StartHour + 1 }, ExchangeError.InvalidRequest),
            (good with { EndHour = good.EndHour - 60_000_000_000L }, ExchangeError.InvalidRequest),
            (good with { EndHour = good.StartHour }, ExchangeError.InvalidRequest),
            (good with { EndHour = good.StartHour + (ExchangeService.BlockHoursMax + 1) * NsPerHour }, ExchangeError.InvalidRequest),
            (good with { StartHour = long.MinValue + 8 * NsPerHour - long.MinValue % NsPerHour }, ExchangeError.InvalidRequest),
            (good with { Gpus = int.MaxValue, EndHour = good.StartHour + ExchangeService.BlockHoursMax * NsPerHour }, ExchangeError.NotionalOverflows),
        };
        foreach (var (block, error) in cases)
        {
            var r = await h.Exchange.PlaceBlockAsync(block);
            Assert.Equal(error, r.Error);
            Assert.False(r.Ok);
            if (error != ExchangeError.UnknownTrader) await Assert.ThrowsAsync<ArgumentException>(() => h.Exchange.QuoteBlockAsync(block));
        }
        // A full 31-day window is well-formed: most of it is not listed yet, so it is short and not trading.
        var month = await h.Exchange.PlaceBlockAsync(good with { EndHour = good.StartHour + ExchangeService.BlockHoursMax * NsPerHour });
        Assert.Equal(ExchangeError.InstrumentNotTrading, month.Error);
        // The default policy lists hourly instruments 48 hours ahead: through the hour starting at 12:00 + 48 h.
        var notTrading = month.Quote!.Short.Single(s => s.Reason == ShortReason.NotTrading);
        Assert.Equal((Hour(h, 49), good.StartHour + ExchangeService.BlockHoursMax * NsPerHour), (notTrading.Start, notTrading.End));
        Assert.Equal(before, await StateAsync(h, 2, 5));
        await h.CheckAsync();
    }

    [Fact]
    public async Task Random_books_and_blocks_either_fill_exactly_as_quoted_or_change_nothing()
    {
        await using var h = await StartAsync();
        var rng = new Random(2026);
        long[] owners = { ExchangeHarness.Buyer, ExchangeHarness.Buyer2, Provider2 };
        long[] sellers = { ExchangeHarness.ProviderId, Provider2 };
        int filled = 0, refused = 0;
        for (int step = 0; step < 150; step++)
        {
            // Add some liquidity: small asks by either provider in hours 1..6 (as capacity allows).
            for (int k = rng.Next(4); k > 0; k--)
            {
                int hour = 1 + rng.Next(6);
                long seller = sellers[rng.Next(sellers.Length)];
                long price = 1_500_000 + rng.Next(0, 11) * 100_000;
                await h.Exchange.PlaceAsync(new PlaceOrder(seller, h.Hourly(hour).Id, Side.Sell, OrderType.Limit, TimeInForce.GoodTillCancel, price, 1 + rng.Next(3)));
            }
            int from = 1 + rng.Next(6), to = from + 1 + rng.Next(7 - from);
            var block = Block(h, owners[rng.Next(owners.Length)], from, to, 1 + rng.Next(4), 1_500_000 + rng.Next(0, 11) * 100_000);
            var account = block.Owner == Provider2 ? Revenue2 : block.Owner == ExchangeHarness.Buyer ? ExchangeHarness.BuyerAccount : ExchangeHarness.Buyer2Account;
            long balance = await h.BalanceAsync(account);
            string before = await StateAsync(h, 1, 7);
            var q = await h.Exchange.QuoteBlockAsync(block);
            var r = await h.Exchange.PlaceBlockAsync(block);
            AssertSameQuote(q, r.Quote);
            if (r.Ok)
            {
                filled++;
                Assert.True(q.Fillable && q.AveragePrice <= block.MaxAveragePrice);
                Assert.Equal(q.TotalCost, r.TotalCost);
                Assert.Equal(q.Legs.Sum(l => l.Makers), r.Leases.Count);
                Assert.Equal(balance - q.TotalCost, await h.BalanceAsync(account));
                Assert.Equal(0, (await h.AccountAsync(account)).DebitsPending);
                Assert.All(r.Leases, l => Assert.NotEqual(block.Owner, l.Provider)); // never traded with itself
            }
            else
            {
                refused++;
                Assert.True(!q.Fillable || q.AveragePrice > block.MaxAveragePrice);
                Assert.Equal(before, await StateAsync(h, 1, 7));
            }
            await h.CheckAsync();
        }
        Assert.True(filled > 10, $"only {filled} blocks filled");
        Assert.True(refused > 10, $"only {refused} blocks refused");
    }
}
