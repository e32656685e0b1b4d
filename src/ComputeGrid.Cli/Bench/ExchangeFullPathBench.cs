using System.Diagnostics;
using ComputeGrid.Exchange.Instruments;
using ComputeGrid.Exchange.Matching;
using ComputeGrid.Exchange.Trading;
using ComputeGrid.Ledger;

namespace ComputeGrid.Cli.Bench;

/// <summary>
/// Orders through the whole exchange path: pre-trade checks, a ledger hold per buy, matching, leases and the
/// settlement chain, on an in-memory ledger and on a durable one (every ledger batch waits for its fdatasync).
/// One client places one order at a time, so this measures the latency-bound path an order takes, not the book.
/// </summary>
public static class ExchangeFullPathBench
{
    public static async Task<(double OrdersPerSecond, int Orders, int Fills)> RunAsync(string? dataDir, int orders, int seed, CancellationToken ct)
    {
        var time = TimeProvider.System;
        await using var ledger = LedgerEngine.Open(new LedgerEngineOptions { DataDirectory = dataDir, SnapshotLogBytesMin = 0 }, time);
        var registry = new InstrumentRegistry(new InstrumentSchedule(RegionCatalog.Fallback, ListingPolicy.Default));
        var exchange = new ExchangeService(ledger, registry, time, new ExchangeOptions { OrdersPerBookMax = 1 << 16 });
        const long buyer = 1, provider = 2;
        UInt128 funding = 10, buyerAccount = 11, revenue = 12, collateral = 13;
        await ledger.CreateAccountsAsync(new[]
        {
            new Account { Id = funding, Asset = 1, Code = 1 },
            new Account { Id = buyerAccount, Asset = 1, Code = 2, Flags = AccountFlags.DebitsMustNotExceedCredits },
            new Account { Id = revenue, Asset = 1, Code = 3 },
            new Account { Id = collateral, Asset = 1, Code = 4 },
        }, ct);
        await ledger.CreateTransfersAsync(new[] { new Transfer { Id = 1, DebitAccountId = funding, CreditAccountId = buyerAccount, Amount = 1L << 50, Asset = 1, Code = 1 } }, ct);
        await exchange.StartAsync(ct);
        await exchange.RegisterTraderAsync(buyer, buyerAccount, ct);
        await exchange.RegisterProviderAsync(provider, revenue, collateral, ct);
        await exchange.RegisterNodeAsync(provider, "bench-node", GpuClass.H100, RegionCatalog.Fallback.Codes[0], 1_000_000, ct);
        var hour = registry.Active.First(i => i.Kind == DeliveryKind.HourlySpot && i.Gpu == GpuClass.H100 && i.Region == RegionCatalog.Fallback.Codes[0]
                                              && i.TradingEnd - Core.Clock.UnixNanoseconds(time) > 3_600_000_000_000L);
        var rng = new Random(seed);
        var open = new List<(long Owner, long Id)>();
        int fills = 0;
        var sw = Stopwatch.StartNew();
        for (int n = 0; n < orders; n++)
        {
            int roll = rng.Next(100);
            if (roll < 25 && open.Count > 0)
            {
                int k = rng.Next(open.Count);
                await exchange.CancelAsync(open[k].Owner, open[k].Id, ct);
                open[k] = open[^1];
                open.RemoveAt(open.Count - 1);
                continue;
            }
            bool sell = rng.Next(2) == 0;
            long price = 2_000_000 + (sell ? 1 : -1) * rng.Next(0, 30) * 1_000 - (rng.Next(10) == 0 ? (sell ? 40_000 : -40_000) : 0);
            var type = roll < 35 ? OrderType.Market : OrderType.Limit;
            var tif = roll < 40 && type == OrderType.Limit ? TimeInForce.ImmediateOrCancel : TimeInForce.GoodTillCancel;
            var r = await exchange.PlaceAsync(new PlaceOrder(sell ? provider : buyer, hour.Id, sell ? Side.Sell : Side.Buy, type, tif, type == OrderType.Market ? 0 : price, 1 + rng.Next(8)), ct);
            fills += r.Fills.Count;
            if (r.Status == OrderStatus.Resting) open.Add((sell ? provider : buyer, r.OrderId));
        }
        double perSecond = orders / sw.Elapsed.TotalSeconds;
        await exchange.CheckInvariantsAsync(ct);
        return (perSecond, orders, fills);
    }
}
