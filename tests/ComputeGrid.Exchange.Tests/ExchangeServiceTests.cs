using ComputeGrid.Exchange.Instruments;
using ComputeGrid.Exchange.Matching;
using ComputeGrid.Exchange.Trading;
using ComputeGrid.Ledger;
using Microsoft.Extensions.Time.Testing;

namespace ComputeGrid.Exchange.Tests;

/// <summary>A small exchange over an in-memory ledger and a fake clock, with funded traders and a provider.</summary>
public sealed class ExchangeHarness : IAsyncDisposable
{
    public const long Buyer = 1, Buyer2 = 2, ProviderId = 100;
    public static readonly UInt128 Funding = 1_000, BuyerAccount = 1_001, Buyer2Account = 1_002, Revenue = 1_100, Collateral = 1_101;

    public FakeTimeProvider Time { get; } = new(new DateTimeOffset(2026, 11, 26, 12, 0, 0, TimeSpan.Zero));
    public LedgerEngine Ledger { get; }
    public InstrumentRegistry Instruments { get; }
    public ExchangeService Exchange { get; }
    public long NodeId { get; private set; }
    public long Node2Id { get; private set; }

    private ExchangeHarness(long collateral)
    {
        Ledger = LedgerEngine.Open(new LedgerEngineOptions(), Time);
        Instruments = new InstrumentRegistry(new InstrumentSchedule(RegionCatalog.Fallback, ListingPolicy.Default));
        Exchange = new ExchangeService(Ledger, Instruments, Time);
        _collateral = collateral;
    }

    private readonly long _collateral;

    public static async Task<ExchangeHarness> StartAsync(long buyerFunds = 1_000_000_000, long collateral = 50_000_000)
    {
        var h = new ExchangeHarness(collateral);
        var accounts = new[]
        {
            new Account { Id = Funding, Asset = 1, Code = 1 },
            new Account { Id = BuyerAccount, Asset = 1, Code = 2, Flags = AccountFlags.DebitsMustNotExceedCredits },
            new Account { Id = Buyer2Account, Asset = 1, Code = 2, Flags = AccountFlags.DebitsMustNotExceedCredits },
            new Account { Id = Revenue, Asset = 1, Code = 3, Flags = AccountFlags.DebitsMustNotExceedCredits },
            new Account { Id = Collateral, Asset = 1, Code = 4, Flags = AccountFlags.DebitsMustNotExceedCredits },
        };
        Assert.All(await h.Ledger.CreateAccountsAsync(accounts), r => Assert.Equal(CreateAccountResult.Ok, r));
        var fund = new List<Transfer>
        {
            new() { Id = 1, DebitAccountId = Funding, CreditAccountId = BuyerAccount, Amount = buyerFunds, Asset = 1, Code = 1 },
            new() { Id = 2, DebitAccountId = Funding, CreditAccountId = Buyer2Account, Amount = buyerFunds, Asset = 1, Code = 1 },
        };
        if (collateral > 0) fund.Add(new() { Id = 3, DebitAccountId = Funding, CreditAccountId = Collateral, Amount = collateral, Asset = 1, Code = 1 });
        Assert.All(await h.Ledger.CreateTransfersAsync(fund.ToArray()), r => Assert.Equal(CreateTransferResult.Ok, r));
        await h.Exchange.StartAsync();
        Assert.Equal(ExchangeError.None, await h.Exchange.RegisterTraderAsync(Buyer, BuyerAccount));
        Assert.Equal(ExchangeError.None, await h.Exchange.RegisterTraderAsync(Buyer2, Buyer2Account));
        Assert.Equal(ExchangeError.None, await h.Exchange.RegisterProviderAsync(ProviderId, Revenue, Collateral));
        var (e1, n1) = await h.Exchange.RegisterNodeAsync(ProviderId, "fra-h100-01", GpuClass.H100, "frankfurt", 8);
        var (e2, n2) = await h.Exchange.RegisterNodeAsync(ProviderId, "fra-h100-02", GpuClass.H100, "frankfurt", 4);
        Assert.Equal(ExchangeError.None, e1);
        Assert.Equal(ExchangeError.None, e2);
        h.NodeId = n1!.Id;
        h.Node2Id = n2!.Id;
        return h;
    }

    /// <summary>The hourly H100 Frankfurt instrument delivering <paramref name="hoursAhead"/> hours from now.</summary>
    public Instrument Hourly(int hoursAhead = 2)
    {
        var start = new DateTimeOffset(2026, 11, 26, 12, 0, 0, TimeSpan.Zero).AddHours(hoursAhead);
        return Instruments.GetBySymbol($"H100.frankfurt.H.{start:yyyy-MM-dd'T'HH}");
    }

    public Instrument Daily(int daysAhead = 1)
    {
        var d = new DateTimeOffset(2026, 11, 26, 0, 0, 0, TimeSpan.Zero).AddDays(daysAhead);
        return Instruments.GetBySymbol($"H100.frankfurt.D.{d:yyyy-MM-dd}");
    }

    /// <summary>Moves the clock forward to <paramref name="unixNs"/> (delivery is reported for hours that have passed).</summary>
    public void AdvanceTo(long unixNs)
    {
        var target = DateTimeOffset.UnixEpoch.AddTicks(unixNs / 100);
        if (target > Time.GetUtcNow()) Time.SetUtcNow(target);
    }

    public async Task<long> BalanceAsync(UInt128 account) => (await Ledger.LookupAccountsAsync(new[] { account }))[0] is var a ? a.CreditsPosted - a.DebitsPosted : 0;

    public async Task<Account> AccountAsync(UInt128 account) => (await Ledger.LookupAccountsAsync(new[] { account }))[0];

    /// <summary>Ledger-wide: USD total debits == total credits (no money created or destroyed), and the exchange's own invariants.</summary>
    public async Task CheckAsync()
    {
        await Exchange.CheckInvariantsAsync();
        await Ledger.ReadAsync(sm => { sm.AssertInvariants(); return 0; });
    }

    public async ValueTask DisposeAsync() => await Ledger.DisposeAsync();
}

public class ExchangeServiceTests
{
    private const long Price = 2_000_000; // $2.00 per GPU-hour

    [Fact]
    public async Task A_fill_holds_then_posts_the_buyers_money_into_the_lease_and_full_delivery_pays_the_provider()
    {
        await using var h = await ExchangeHarness.StartAsync();
        var i = h.Hourly();
        var sell = await h.Exchange.PlaceAsync(new PlaceOrder(ExchangeHarness.ProviderId, i.Id, Side.Sell, OrderType.Limit, TimeInForce.GoodTillCancel, Price, 10));
        Assert.True(sell.Ok, sell.Detail);
        Assert.Equal(OrderStatus.Resting, sell.Status);
        long before = await h.BalanceAsync(ExchangeHarness.BuyerAccount);

        // A buy for 6 GPUs at a higher limit: holds 2.5 × 6, fills at the maker's 2.0.
        var buy = await h.Exchange.PlaceAsync(new PlaceOrder(ExchangeHarness.Buyer, i.Id, Side.Buy, OrderType.Limit, TimeInForce.GoodTillCancel, 2_500_000, 6));
        Assert.True(buy.Ok, buy.Detail);
        Assert.Equal(OrderStatus.Filled, buy.Status);
        var fill = Assert.Single(buy.Fills);
        Assert.Equal(Price, fill.Price);
        await h.CheckAsync();
        var buyer = await h.AccountAsync(ExchangeHarness.BuyerAccount);
        Assert.Equal(0, buyer.DebitsPending); // the unused part of the hold was released
        Assert.Equal(before - Price * 6, await h.BalanceAsync(ExchangeHarness.BuyerAccount));

        var lease = await h.Exchange.ReadAsync(v => v.Lease(fill.LeaseId)!);
        Assert.Equal(6, lease.Gpus);
        Assert.Equal(Price * 6, lease.Notional);
        Assert.Equal(new[] { (h.NodeId, 6) }, lease.Nodes);
        Assert.Equal(Price * 6, await h.BalanceAsync(lease.EscrowAccount)); // the lease's escrow holds the notional
        // The escrow is the lease's account of the chart, and never pays out more than it was funded with.
        var escrowAccount = await h.AccountAsync(lease.EscrowAccount);
        Assert.Equal((ushort)AccountCode.LeaseEscrow, escrowAccount.Code);
        Assert.Equal(AccountFlags.DebitsMustNotExceedCredits, escrowAccount.Flags);
        Assert.True(ChartOfAccounts.TryDecode(lease.EscrowAccount, out _, out _, out ulong leaseNumber));
        Assert.Equal((ulong)lease.Id, leaseNumber);

        var early = await h.Exchange.ReportDeliveryAsync(ExchangeHarness.ProviderId, lease.Id, lease.Start, lease.End);
        Assert.Equal(ExchangeError.InvalidDelivery, early.Error); // the hour has not happened yet
        h.AdvanceTo(lease.End);
        var (e, _) = await h.Exchange.ReportDeliveryAsync(ExchangeHarness.ProviderId, lease.Id, lease.Start, lease.End);
        Assert.Equal(ExchangeError.None, e);
        Assert.Equal(LeaseStatus.Completed, lease.Status);
        Assert.Equal(Price * 6, await h.BalanceAsync(ExchangeHarness.Revenue));
        Assert.Equal(0, await h.BalanceAsync(lease.EscrowAccount));
        await h.CheckAsync();
    }

    [Fact]
    public async Task An_outage_midway_refunds_the_undelivered_part_and_pays_a_penalty_from_collateral()
    {
        await using var h = await ExchangeHarness.StartAsync();
        var d = h.Daily(); // 24 hours
        Assert.True((await h.Exchange.PlaceAsync(new PlaceOrder(ExchangeHarness.ProviderId, d.Id, Side.Sell, OrderType.Limit, TimeInForce.GoodTillCancel, Price, 4 * 24))).Ok);
        var buy = await h.Exchange.PlaceAsync(new PlaceOrder(ExchangeHarness.Buyer, d.Id, Side.Buy, OrderType.Limit, TimeInForce.ImmediateOrCancel, Price, 4 * 24));
        var lease = await h.Exchange.ReadAsync(v => v.Lease(buy.Fills[0].LeaseId)!);
        long start = await h.BalanceAsync(ExchangeHarness.BuyerAccount);

        // 10 of 24 hours delivered, then the node fails.
        h.AdvanceTo(lease.Start + 10 * 3_600_000_000_000L);
        Assert.Equal(ExchangeError.None, (await h.Exchange.ReportDeliveryAsync(ExchangeHarness.ProviderId, lease.Id, lease.Start, lease.Start + 10 * 3_600_000_000_000L)).Error);
        Assert.Equal(ExchangeError.None, await h.Exchange.ReportOutageAsync(ExchangeHarness.ProviderId, lease.Nodes[0].Node));
        long undelivered = Price * 4 * 14;
        long penalty = undelivered * 2_000 / 10_000;
        Assert.Equal(LeaseStatus.Failed, lease.Status);
        Assert.Equal(undelivered, lease.Refunded);
        Assert.Equal(penalty, lease.Penalty);
        Assert.Equal(start + undelivered + penalty, await h.BalanceAsync(ExchangeHarness.BuyerAccount));
        Assert.Equal(Price * 4 * 10, await h.BalanceAsync(ExchangeHarness.Revenue));
        Assert.Equal(50_000_000 - penalty, await h.BalanceAsync(ExchangeHarness.Collateral));
        Assert.Equal(0, await h.BalanceAsync(lease.EscrowAccount));
        // A node that is down backs no new sells (the next day: this one's trading has closed by now).
        var again = await h.Exchange.PlaceAsync(new PlaceOrder(ExchangeHarness.ProviderId, h.Daily(2).Id, Side.Sell, OrderType.Limit, TimeInForce.GoodTillCancel, Price, 24 * 5));
        Assert.Equal(ExchangeError.InsufficientCapacity, again.Error);
        await h.CheckAsync();
    }

    [Fact]
    public async Task A_provider_with_too_little_collateral_pays_what_it_has_and_the_shortfall_is_recorded()
    {
        await using var h = await ExchangeHarness.StartAsync(collateral: 1_000_000);
        var i = h.Hourly();
        await h.Exchange.PlaceAsync(new PlaceOrder(ExchangeHarness.ProviderId, i.Id, Side.Sell, OrderType.Limit, TimeInForce.GoodTillCancel, Price, 8));
        var buy = await h.Exchange.PlaceAsync(new PlaceOrder(ExchangeHarness.Buyer, i.Id, Side.Buy, OrderType.Market, TimeInForce.ImmediateOrCancel, 0, 8));
        Assert.Equal(OrderStatus.Filled, buy.Status);
        var lease = await h.Exchange.ReadAsync(v => v.Lease(buy.Fills[0].LeaseId)!);
        Assert.Equal(ExchangeError.None, await h.Exchange.ReportOutageAsync(ExchangeHarness.ProviderId, h.NodeId));
        long penalty = Price * 8 * 2_000 / 10_000; // 3.2 USD owed, 1 USD available
        Assert.Equal(1_000_000, lease.Penalty);
        Assert.Equal(penalty - 1_000_000, lease.PenaltyShortfall);
        Assert.Equal(0, await h.BalanceAsync(ExchangeHarness.Collateral));
        await h.CheckAsync();
    }

    [Fact]
    public async Task Missed_heartbeats_fail_the_leases_on_a_node()
    {
        await using var h = await ExchangeHarness.StartAsync();
        var i = h.Hourly();
        await h.Exchange.PlaceAsync(new PlaceOrder(ExchangeHarness.ProviderId, i.Id, Side.Sell, OrderType.Limit, TimeInForce.GoodTillCancel, Price, 2));
        var buy = await h.Exchange.PlaceAsync(new PlaceOrder(ExchangeHarness.Buyer, i.Id, Side.Buy, OrderType.Limit, TimeInForce.GoodTillCancel, Price, 2));
        var lease = await h.Exchange.ReadAsync(v => v.Lease(buy.Fills[0].LeaseId)!);
        h.Time.Advance(TimeSpan.FromSeconds(20));
        await h.Exchange.HeartbeatAsync(h.NodeId);
        h.Time.Advance(TimeSpan.FromSeconds(20));
        await h.Exchange.TickAsync();
        Assert.Equal(LeaseStatus.Active, lease.Status); // 20 s since the last heartbeat: still fine
        h.Time.Advance(TimeSpan.FromSeconds(15));
        await h.Exchange.TickAsync();
        Assert.Equal(LeaseStatus.Failed, lease.Status);
        Assert.Equal(lease.Notional, lease.Refunded);
        await h.CheckAsync();
    }

    [Fact]
    public async Task A_buyer_resells_part_of_a_daily_lease_hour_by_hour()
    {
        await using var h = await ExchangeHarness.StartAsync();
        var d = h.Daily(1);
        Assert.True((await h.Exchange.PlaceAsync(new PlaceOrder(ExchangeHarness.ProviderId, d.Id, Side.Sell, OrderType.Limit, TimeInForce.GoodTillCancel, Price, 2 * 24))).Ok);
        var buy = await h.Exchange.PlaceAsync(new PlaceOrder(ExchangeHarness.Buyer, d.Id, Side.Buy, OrderType.Limit, TimeInForce.GoodTillCancel, Price, 2 * 24));
        var parent = await h.Exchange.ReadAsync(v => v.Lease(buy.Fills[0].LeaseId)!);

        // Hourly instruments list 48 h ahead, so the day's first hour already trades: resell it.
        var hour = h.Instruments.GetBySymbol($"H100.frankfurt.H.{DateTimeOffset.FromUnixTimeMilliseconds(parent.Start / 1_000_000):yyyy-MM-dd'T'HH}");
        var resale = await h.Exchange.ResellAsync(ExchangeHarness.Buyer, parent.Id, hour.Id, 3_000_000, 2);
        Assert.True(resale.Ok, resale.Detail);
        var tooMuch = await h.Exchange.ResellAsync(ExchangeHarness.Buyer, parent.Id, hour.Id, 3_000_000, 1);
        Assert.Equal(ExchangeError.InsufficientCapacity, tooMuch.Error); // both GPUs of that hour are already offered
        var buy2 = await h.Exchange.PlaceAsync(new PlaceOrder(ExchangeHarness.Buyer2, hour.Id, Side.Buy, OrderType.Limit, TimeInForce.GoodTillCancel, 3_000_000, 2));
        Assert.Equal(OrderStatus.Filled, buy2.Status);
        var child = await h.Exchange.ReadAsync(v => v.Lease(buy2.Fills[0].LeaseId)!);
        Assert.Equal(parent.Id, child.Parent);
        Assert.Equal(ExchangeHarness.Buyer, child.Payee);

        long resellerBefore = await h.BalanceAsync(ExchangeHarness.BuyerAccount);
        // The provider delivers the first two hours of the day: it is paid from the parent lease, the reseller from the child.
        h.AdvanceTo(parent.Start + 2 * 3_600_000_000_000L);
        Assert.Equal(ExchangeError.None, (await h.Exchange.ReportDeliveryAsync(ExchangeHarness.ProviderId, parent.Id, parent.Start, parent.Start + 2 * 3_600_000_000_000L)).Error);
        Assert.Equal(LeaseStatus.Completed, child.Status);
        Assert.Equal(resellerBefore + 3_000_000 * 2, await h.BalanceAsync(ExchangeHarness.BuyerAccount));
        Assert.Equal(Price * 2 * 2, await h.BalanceAsync(ExchangeHarness.Revenue));
        await h.CheckAsync();
    }

    [Fact]
    public async Task Cancel_and_replace_move_holds_and_capacity_exactly()
    {
        await using var h = await ExchangeHarness.StartAsync();
        var i = h.Hourly(3);
        var b = await h.Exchange.PlaceAsync(new PlaceOrder(ExchangeHarness.Buyer, i.Id, Side.Buy, OrderType.Limit, TimeInForce.GoodTillCancel, 1_500_000, 5));
        Assert.Equal(1_500_000 * 5, (await h.AccountAsync(ExchangeHarness.BuyerAccount)).DebitsPending);
        var r = await h.Exchange.ReplaceAsync(ExchangeHarness.Buyer, b.OrderId, 1_600_000, 7);
        Assert.True(r.Ok, r.Detail);
        Assert.Equal(1_600_000 * 7, (await h.AccountAsync(ExchangeHarness.BuyerAccount)).DebitsPending);
        await h.CheckAsync();
        var s = await h.Exchange.PlaceAsync(new PlaceOrder(ExchangeHarness.ProviderId, i.Id, Side.Sell, OrderType.Limit, TimeInForce.GoodTillCancel, 1_700_000, 12));
        Assert.True(s.Ok);
        // All 12 GPUs are committed to that order: nothing more can be offered for the hour.
        var more = await h.Exchange.PlaceAsync(new PlaceOrder(ExchangeHarness.ProviderId, i.Id, Side.Sell, OrderType.Limit, TimeInForce.GoodTillCancel, 1_800_000, 1));
        Assert.Equal(ExchangeError.InsufficientCapacity, more.Error);
        Assert.True((await h.Exchange.ReplaceAsync(ExchangeHarness.ProviderId, s.OrderId, 1_700_000, 10)).Ok); // reduce: keeps priority, frees 2
        Assert.True((await h.Exchange.PlaceAsync(new PlaceOrder(ExchangeHarness.ProviderId, i.Id, Side.Sell, OrderType.Limit, TimeInForce.GoodTillCancel, 1_800_000, 2))).Ok);
        Assert.Equal(OrderStatus.Cancelled, (await h.Exchange.CancelAsync(ExchangeHarness.Buyer, b.OrderId)).Status);
        Assert.Equal(0, (await h.AccountAsync(ExchangeHarness.BuyerAccount)).DebitsPending);
        Assert.Equal(ExchangeError.NotOwner, (await h.Exchange.CancelAsync(ExchangeHarness.Buyer, s.OrderId)).Error);
        await h.CheckAsync();
    }

    [Fact]
    public async Task Bad_orders_get_a_clear_error_and_change_nothing()
    {
        await using var h = await ExchangeHarness.StartAsync(buyerFunds: 5_000_000);
        var i = h.Hourly();
        var before = await h.AccountAsync(ExchangeHarness.BuyerAccount);
        async Task Refused(PlaceOrder p, ExchangeError expected, RejectReason book = RejectReason.None)
        {
            var r = await h.Exchange.PlaceAsync(p);
            Assert.Equal(expected, r.Error);
            Assert.Equal(book, r.BookReject);
            Assert.Equal(before, await h.AccountAsync(ExchangeHarness.BuyerAccount));
            await h.CheckAsync();
        }
        await Refused(new PlaceOrder(ExchangeHarness.Buyer, i.Id, Side.Buy, OrderType.Limit, TimeInForce.GoodTillCancel, 0, 1), ExchangeError.BookRejected, RejectReason.PriceMustBePositive);
        await Refused(new PlaceOrder(ExchangeHarness.Buyer, i.Id, Side.Buy, OrderType.Limit, TimeInForce.GoodTillCancel, -5, 1), ExchangeError.BookRejected, RejectReason.PriceMustBePositive);
        await Refused(new PlaceOrder(ExchangeHarness.Buyer, i.Id, Side.Buy, OrderType.Limit, TimeInForce.GoodTillCancel, Price, 0), ExchangeError.QuantityMustBeWholeGpus);
        await Refused(new PlaceOrder(ExchangeHarness.Buyer, i.Id, Side.Buy, OrderType.Limit, TimeInForce.GoodTillCancel, Price, -2), ExchangeError.QuantityMustBeWholeGpus);
        await Refused(new PlaceOrder(ExchangeHarness.Buyer, i.Id, Side.Buy, OrderType.Limit, TimeInForce.GoodTillCancel, long.MaxValue, 1), ExchangeError.BookRejected, RejectReason.PriceOutsideBand);
        await Refused(new PlaceOrder(ExchangeHarness.Buyer, i.Id, Side.Buy, OrderType.Limit, TimeInForce.GoodTillCancel, Price, long.MaxValue), ExchangeError.NotionalOverflows);
        await Refused(new PlaceOrder(ExchangeHarness.Buyer, 987_654, Side.Buy, OrderType.Limit, TimeInForce.GoodTillCancel, Price, 1), ExchangeError.UnknownInstrument);
        await Refused(new PlaceOrder(ExchangeHarness.Buyer, h.Daily(1).Id, Side.Buy, OrderType.Limit, TimeInForce.GoodTillCancel, Price, 5), ExchangeError.QuantityMustBeWholeGpus);
        await Refused(new PlaceOrder(ExchangeHarness.Buyer, i.Id, Side.Buy, OrderType.Market, TimeInForce.ImmediateOrCancel, 0, 1), ExchangeError.BookRejected, RejectReason.NoLiquidity);
        await Refused(new PlaceOrder(ExchangeHarness.Buyer, i.Id, Side.Buy, OrderType.Limit, TimeInForce.GoodTillCancel, Price, 3), ExchangeError.InsufficientBalance);
        await Refused(new PlaceOrder(77, i.Id, Side.Buy, OrderType.Limit, TimeInForce.GoodTillCancel, Price, 1), ExchangeError.UnknownTrader);
        await Refused(new PlaceOrder(ExchangeHarness.Buyer, i.Id, Side.Sell, OrderType.Limit, TimeInForce.GoodTillCancel, Price, 1), ExchangeError.InsufficientCapacity);
        // An expired window: two hours later, the instrument's trading has closed (and after a tick it is delisted).
        h.Time.Advance(TimeSpan.FromHours(2));
        await Refused(new PlaceOrder(ExchangeHarness.Buyer, i.Id, Side.Buy, OrderType.Limit, TimeInForce.GoodTillCancel, Price, 1), ExchangeError.InstrumentNotTrading);
        await h.Exchange.TickAsync();
        await Refused(new PlaceOrder(ExchangeHarness.Buyer, i.Id, Side.Buy, OrderType.Limit, TimeInForce.GoodTillCancel, Price, 1), ExchangeError.UnknownInstrument);
    }

    [Fact]
    public async Task Random_order_streams_keep_holds_equal_to_open_buy_notional_and_money_conserved()
    {
        await using var h = await ExchangeHarness.StartAsync();
        var rng = new Random(17);
        var instruments = new[] { h.Hourly(2), h.Hourly(3), h.Hourly(4) };
        var open = new List<(long Owner, long Id)>();
        for (int step = 0; step < 400; step++)
        {
            var i = instruments[rng.Next(instruments.Length)];
            int roll = rng.Next(100);
            long price = 1_500_000 + rng.Next(-10, 11) * 10_000;
            if (roll < 20 && open.Count > 0)
            {
                var (owner, id) = open[rng.Next(open.Count)];
                await h.Exchange.CancelAsync(owner, id);
            }
            else if (roll < 30 && open.Count > 0)
            {
                var (owner, id) = open[rng.Next(open.Count)];
                await h.Exchange.ReplaceAsync(owner, id, price, 1 + rng.Next(4));
            }
            else
            {
                bool sell = rng.Next(2) == 0;
                long owner = sell ? ExchangeHarness.ProviderId : rng.Next(2) == 0 ? ExchangeHarness.Buyer : ExchangeHarness.Buyer2;
                var type = rng.Next(10) == 0 ? OrderType.Market : OrderType.Limit;
                var tif = rng.Next(5) == 0 ? TimeInForce.ImmediateOrCancel : rng.Next(10) == 0 ? TimeInForce.FillOrKill : TimeInForce.GoodTillCancel;
                var r = await h.Exchange.PlaceAsync(new PlaceOrder(owner, i.Id, sell ? Side.Sell : Side.Buy, type, tif, type == OrderType.Market ? 0 : price, 1 + rng.Next(4), PostOnly: rng.Next(15) == 0));
                if (r.Status == OrderStatus.Resting) open.Add((owner, r.OrderId));
            }
            await h.CheckAsync();
        }
        // Deliver every lease: all lease escrows end at zero and the provider holds exactly what buyers paid.
        var leases = await h.Exchange.ReadAsync(v => v.Leases());
        Assert.NotEmpty(leases);
        h.AdvanceTo(leases.Max(l => l.End));
        foreach (var l in leases.Where(l => l.Status == LeaseStatus.Active))
            Assert.Equal(ExchangeError.None, (await h.Exchange.ReportDeliveryAsync(ExchangeHarness.ProviderId, l.Id, l.Start, l.End)).Error);
        Assert.Equal(leases.Sum(l => l.Notional), await h.BalanceAsync(ExchangeHarness.Revenue));
        await h.CheckAsync();
    }
}

public class ExchangeRestartTests
{
    [Fact]
    public async Task A_restart_releases_the_holds_of_orders_that_did_not_survive_it()
    {
        await using var h = await ExchangeHarness.StartAsync();
        var i = h.Hourly(3);
        var b = await h.Exchange.PlaceAsync(new PlaceOrder(ExchangeHarness.Buyer, i.Id, Side.Buy, OrderType.Limit, TimeInForce.GoodTillCancel, 1_500_000, 4));
        Assert.Equal(OrderStatus.Resting, b.Status);
        Assert.Equal(6_000_000, (await h.AccountAsync(ExchangeHarness.BuyerAccount)).DebitsPending);
        // A new exchange over the same ledger (as after a restart of the server): its books start empty.
        h.Time.Advance(TimeSpan.FromMilliseconds(5));
        var again = new ExchangeService(h.Ledger, new InstrumentRegistry(new InstrumentSchedule(RegionCatalog.Fallback, ListingPolicy.Default)), h.Time);
        await again.StartAsync();
        Assert.Equal(1, again.ReleasedOrphanHolds);
        Assert.Equal(0, (await h.AccountAsync(ExchangeHarness.BuyerAccount)).DebitsPending);
        await again.CheckInvariantsAsync();
        // And it trades on: new ids do not collide with the previous run's.
        Assert.Equal(ExchangeError.None, await again.RegisterTraderAsync(ExchangeHarness.Buyer, ExchangeHarness.BuyerAccount));
        var b2 = await again.PlaceAsync(new PlaceOrder(ExchangeHarness.Buyer, i.Id, Side.Buy, OrderType.Limit, TimeInForce.GoodTillCancel, 1_500_000, 4));
        Assert.True(b2.Ok, b2.Detail);
        await again.CheckInvariantsAsync();
    }
}

public sealed class ExchangeJournalTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "cg-xj-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true);
    }

    /// <summary>A journaled exchange over the harness's ledger and clock, started (so its journal is replayed).</summary>
    private static async Task<(ExchangeService Exchange, InstrumentRegistry Registry)> OpenAsync(ExchangeHarness h, string journal)
    {
        var registry = new InstrumentRegistry(new InstrumentSchedule(RegionCatalog.Fallback, ListingPolicy.Default));
        var x = new ExchangeService(h.Ledger, registry, h.Time, new ExchangeOptions { JournalPath = journal });
        await x.StartAsync();
        return (x, registry);
    }

    private static async Task<object> StateAsync(ExchangeService x, Instrument[] instruments) => await x.ReadAsync(v =>
    {
        var depth = new DepthLevel[16];
        var books = instruments.Select(i => string.Join(";", new[] { Side.Buy, Side.Sell }.Select(s => string.Join(",", depth.AsSpan(0, v.Depth(i.Id, s, depth)).ToArray())))).ToArray();
        var leases = v.Leases().Select(l => $"{l.Id}:{l.Buyer}:{l.Payee}:{l.Gpus}:{l.Price}:{l.Status}:{l.Paid}:{l.Refunded}:{l.EscrowAccount}:{string.Join('/', l.Nodes)}").ToArray();
        return (object)string.Join("|", v.OpenOrders().Select(o => o.ToString())) + "#" + string.Join("|", books) + "#" + string.Join("|", leases);
    });

    [Fact]
    public async Task A_restart_replays_the_journal_into_the_same_books_orders_and_leases()
    {
        await using var h = await ExchangeHarness.StartAsync();
        string journal = Path.Combine(_dir, "exchange.journal");
        var (x, registry) = await OpenAsync(h, journal);
        Assert.Equal(ExchangeError.None, await x.RegisterTraderAsync(ExchangeHarness.Buyer, ExchangeHarness.BuyerAccount));
        Assert.Equal(ExchangeError.None, await x.RegisterProviderAsync(ExchangeHarness.ProviderId, ExchangeHarness.Revenue, ExchangeHarness.Collateral));
        var (_, node) = await x.RegisterNodeAsync(ExchangeHarness.ProviderId, "n1", GpuClass.H100, "frankfurt", 16);
        var i = registry.GetBySymbol(h.Hourly(2).Symbol);
        var j = registry.GetBySymbol(h.Hourly(3).Symbol);
        var rng = new Random(9);
        for (int k = 0; k < 60; k++)
        {
            var inst = k % 2 == 0 ? i : j;
            bool sell = rng.Next(2) == 0;
            await x.PlaceAsync(new PlaceOrder(sell ? ExchangeHarness.ProviderId : ExchangeHarness.Buyer, inst.Id, sell ? Side.Sell : Side.Buy, OrderType.Limit,
                TimeInForce.GoodTillCancel, 1_900_000 + rng.Next(-5, 6) * 10_000, 1 + rng.Next(3)));
            h.Time.Advance(TimeSpan.FromMilliseconds(10));
        }
        var open = await x.ReadAsync(v => v.OpenOrders());
        await x.CancelAsync(open[0].Owner, open[0].OrderId);
        var leases = await x.ReadAsync(v => v.Leases());
        Assert.NotEmpty(leases);
        // (Delivery needs the hours to pass, which would close these instruments; an outage fails the leases of node 2 now.)
        var (_, node2) = await x.RegisterNodeAsync(ExchangeHarness.ProviderId, "n2", GpuClass.H100, "frankfurt", 2);
        Assert.Equal(ExchangeError.None, await x.ReportOutageAsync(ExchangeHarness.ProviderId, node2!.Id));
        await x.HeartbeatAsync(node!.Id);
        var before = await StateAsync(x, new[] { i, j });
        await x.CheckInvariantsAsync();
        x.Dispose();

        // Restart: a new service over the same ledger and journal.
        var (y, _) = await OpenAsync(h, journal);
        Assert.True(y.Replayed > 60);
        Assert.Equal(0, y.ReleasedOrphanHolds); // every hold belongs to a restored order
        Assert.Equal(before, await StateAsync(y, new[] { i, j }));
        await y.CheckInvariantsAsync();
        // It trades on from there.
        var more = await y.PlaceAsync(new PlaceOrder(ExchangeHarness.Buyer, i.Id, Side.Buy, OrderType.Limit, TimeInForce.GoodTillCancel, 2_500_000, 1));
        Assert.True(more.Ok, more.Detail);
        await y.CheckInvariantsAsync();
        y.Dispose();
    }

    [Fact]
    public async Task A_command_that_started_but_never_finished_is_run_again_at_start()
    {
        await using var h = await ExchangeHarness.StartAsync();
        string journal = Path.Combine(_dir, "exchange.journal");
        var (x, registry) = await OpenAsync(h, journal);
        await x.RegisterTraderAsync(ExchangeHarness.Buyer, ExchangeHarness.BuyerAccount);
        var i = registry.GetBySymbol(h.Hourly(2).Symbol);
        x.Dispose();
        // As if the process died right after writing a command's start record: append one by hand.
        long seq = new ExchangeJournal(journal) is var jr ? jr.Recovered.Max(r => r.Seq) + 1 : 0;
        var args = System.Text.Json.JsonSerializer.SerializeToNode(new PlaceOrder(ExchangeHarness.Buyer, i.Id, Side.Buy, OrderType.Limit, TimeInForce.GoodTillCancel, 1_000_000, 3))!;
        jr.Append(new JournalRecord(seq, false, "place", Core.Clock.UnixNanoseconds(h.Time), args, null));
        jr.Dispose();

        var (y, _) = await OpenAsync(h, journal);
        var open = await y.ReadAsync(v => v.OpenOrders());
        var o = Assert.Single(open);
        Assert.Equal(3_000_000, o.HoldAmount);
        Assert.Equal(3_000_000, (await h.AccountAsync(ExchangeHarness.BuyerAccount)).DebitsPending);
        await y.CheckInvariantsAsync();
        y.Dispose();
        // The journal now records it as done: a second restart replays it without asking the ledger again.
        var (z, _) = await OpenAsync(h, journal);
        Assert.Single(await z.ReadAsync(v => v.OpenOrders()));
        await z.CheckInvariantsAsync();
        z.Dispose();
    }

    [Fact]
    public async Task A_command_whose_settlement_reached_the_ledger_but_whose_done_record_did_not_is_finished_at_start()
    {
        await using var h = await ExchangeHarness.StartAsync();
        string journal = Path.Combine(_dir, "exchange.journal");
        var (x, registry) = await OpenAsync(h, journal);
        await x.RegisterTraderAsync(ExchangeHarness.Buyer, ExchangeHarness.BuyerAccount);
        await x.RegisterProviderAsync(ExchangeHarness.ProviderId, ExchangeHarness.Revenue, ExchangeHarness.Collateral);
        await x.RegisterNodeAsync(ExchangeHarness.ProviderId, "n1", GpuClass.H100, "frankfurt", 8);
        var i = registry.GetBySymbol(h.Hourly(2).Symbol);
        await x.PlaceAsync(new PlaceOrder(ExchangeHarness.ProviderId, i.Id, Side.Sell, OrderType.Limit, TimeInForce.GoodTillCancel, 2_000_000, 3));
        var buy = await x.PlaceAsync(new PlaceOrder(ExchangeHarness.Buyer, i.Id, Side.Buy, OrderType.Limit, TimeInForce.ImmediateOrCancel, 2_000_000, 2));
        Assert.Equal(OrderStatus.Filled, buy.Status);
        var before = await StateAsync(x, new[] { i });
        x.Dispose();
        // As if the process died after the ledger committed the buy's settlement (one linked chain) and before the journal
        // recorded the command done (kill -9 under load hits this window): drop the "done" record.
        string[] lines = File.ReadAllLines(journal);
        Assert.Contains("\"done\":true", lines[^1]);
        Assert.Contains("\"kind\":\"place\"", lines[^1]);
        File.WriteAllLines(journal, lines[..^1]);

        // Run again, the chain answers "exists" for its first transfer and "linked event failed" for the rest: the whole
        // chain was committed before, and the command finishes as it did.
        var (y, _) = await OpenAsync(h, journal);
        Assert.Equal(before, await StateAsync(y, new[] { i }));
        await y.CheckInvariantsAsync();
        y.Dispose();
    }

    [Fact]
    public async Task A_node_timeout_is_journaled_and_heartbeats_are_not()
    {
        await using var h = await ExchangeHarness.StartAsync();
        string journal = Path.Combine(_dir, "exchange.journal");
        var (x, registry) = await OpenAsync(h, journal);
        await x.RegisterTraderAsync(ExchangeHarness.Buyer, ExchangeHarness.BuyerAccount);
        await x.RegisterProviderAsync(ExchangeHarness.ProviderId, ExchangeHarness.Revenue, ExchangeHarness.Collateral);
        var (_, node) = await x.RegisterNodeAsync(ExchangeHarness.ProviderId, "n1", GpuClass.H100, "frankfurt", 4);
        var i = registry.GetBySymbol(h.Hourly(2).Symbol);
        await x.PlaceAsync(new PlaceOrder(ExchangeHarness.ProviderId, i.Id, Side.Sell, OrderType.Limit, TimeInForce.GoodTillCancel, 2_000_000, 2));
        var buy = await x.PlaceAsync(new PlaceOrder(ExchangeHarness.Buyer, i.Id, Side.Buy, OrderType.Limit, TimeInForce.GoodTillCancel, 2_000_000, 2));
        long lines = File.ReadAllLines(journal).Length;
        for (int k = 0; k < 5; k++) { h.Time.Advance(TimeSpan.FromSeconds(5)); await x.HeartbeatAsync(node!.Id); }
        Assert.Equal(lines, File.ReadAllLines(journal).Length); // heartbeats leave no trace in the journal
        h.Time.Advance(TimeSpan.FromSeconds(31));
        await x.TickAsync();
        var failed = await x.ReadAsync(v => v.Lease(buy.Fills[0].LeaseId)!);
        Assert.Equal(LeaseStatus.Failed, failed.Status);
        x.Dispose();

        var (y, _) = await OpenAsync(h, journal);
        var replayed = await y.ReadAsync(v => v.Lease(buy.Fills[0].LeaseId)!);
        Assert.Equal(LeaseStatus.Failed, replayed.Status);
        Assert.Equal(failed.Refunded, replayed.Refunded);
        Assert.Equal(failed.Penalty, replayed.Penalty);
        await y.CheckInvariantsAsync();
        y.Dispose();
    }

    [Fact]
    public async Task A_torn_journal_tail_is_dropped()
    {
        string journal = Path.Combine(_dir, "exchange.journal");
        using (var j = new ExchangeJournal(journal))
        {
            j.Append(new JournalRecord(1, false, "tick", 5, new System.Text.Json.Nodes.JsonObject(), null));
            j.Append(new JournalRecord(1, true, "tick", 5, null, new System.Text.Json.Nodes.JsonArray()));
        }
        File.AppendAllText(journal, "{\"seq\":2,\"done\":false,\"ki");
        using var again = new ExchangeJournal(journal);
        Assert.Equal(2, again.Recovered.Count);
        Assert.True(again.TruncatedBytes > 0);
    }
}

public class ExchangePreTradeRefusalTests
{
    [Fact]
    public async Task Post_only_and_fill_or_kill_orders_the_book_would_refuse_leave_no_trace_in_the_ledger()
    {
        await using var h = await ExchangeHarness.StartAsync();
        var i = h.Hourly();
        Assert.True((await h.Exchange.PlaceAsync(new PlaceOrder(ExchangeHarness.ProviderId, i.Id, Side.Sell, OrderType.Limit, TimeInForce.GoodTillCancel, 2_000_000, 2))).Ok);
        var history = await h.Ledger.GetAccountTransfersAsync(ExchangeHarness.BuyerAccount, long.MaxValue, 100);
        var post = await h.Exchange.PlaceAsync(new PlaceOrder(ExchangeHarness.Buyer, i.Id, Side.Buy, OrderType.Limit, TimeInForce.GoodTillCancel, 2_100_000, 1, PostOnly: true));
        Assert.Equal(RejectReason.PostOnlyWouldTake, post.BookReject);
        var fok = await h.Exchange.PlaceAsync(new PlaceOrder(ExchangeHarness.Buyer, i.Id, Side.Buy, OrderType.Limit, TimeInForce.FillOrKill, 2_000_000, 3));
        Assert.Equal(RejectReason.FillOrKillUnfillable, fok.BookReject);
        Assert.Equal(history!.Length, (await h.Ledger.GetAccountTransfersAsync(ExchangeHarness.BuyerAccount, long.MaxValue, 100))!.Length);
        // The same FOK for what the book holds fills whole.
        var ok = await h.Exchange.PlaceAsync(new PlaceOrder(ExchangeHarness.Buyer, i.Id, Side.Buy, OrderType.Limit, TimeInForce.FillOrKill, 2_000_000, 2));
        Assert.Equal(OrderStatus.Filled, ok.Status);
        await h.CheckAsync();
    }
}
