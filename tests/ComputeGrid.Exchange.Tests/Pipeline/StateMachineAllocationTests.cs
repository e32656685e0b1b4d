using ComputeGrid.Exchange.Instruments;
using ComputeGrid.Exchange.Matching;
using ComputeGrid.Exchange.StateMachine;

namespace ComputeGrid.Exchange.Tests.Pipeline;

/// <summary>The state machine's steady path allocates nothing per order (as the book's), on compute and on share books.</summary>
public class StateMachineAllocationTests
{
    [Fact]
    public void Placing_and_cancelling_orders_on_compute_and_share_books_allocates_nothing_once_warm()
    {
        var registry = new InstrumentRegistry(new InstrumentSchedule(RegionCatalog.Fallback, ListingPolicy.Default));
        var sm = new ExchangeStateMachine(registry, new StateMachineOptions { OrdersPerBookMax = 1 << 14 });
        var plan = new SettlementPlan();
        var fills = new List<FillRecord>(16);
        long t = 1_795_780_800_000_000_000L; // 2026-11-26 12:00 UTC
        ulong seq = 0;
        CommandResult Apply(ExchangeCommand c)
        {
            c.Seq = ++seq;
            c.Time = t;
            plan.Clear();
            fills.Clear();
            return sm.Apply(in c, plan, fills);
        }
        Assert.True(Apply(ExchangeCommand.Tick()).Ok);
        Assert.True(Apply(new ExchangeCommand { Kind = ExchangeCommandKind.RegisterTrader, Owner = 1 }).Ok);
        ulong deposit = seq + 1;
        Assert.True(Apply(new ExchangeCommand { Kind = ExchangeCommandKind.Deposit, Owner = 1, Account = 5, Amount = 1_000_000_000_000 }).Ok);
        Assert.True(Apply(new ExchangeCommand { Kind = ExchangeCommandKind.TransferSettled, Target = (long)deposit, Ok = true }).Ok);
        Instrument[] hourly = registry.Active.Where(i => i.Kind == DeliveryKind.HourlySpot).Take(4).ToArray();
        // A provider (a trader too) issues its node's shares: it sells them (each sell holds its shares in the ledger), the trader bids for them.
        Assert.True(Apply(new ExchangeCommand { Kind = ExchangeCommandKind.RegisterProvider, Owner = 2, Account = 6, Account2 = 7 }).Ok);
        long node = (long)seq + 1;
        Assert.True(Apply(new ExchangeCommand { Kind = ExchangeCommandKind.AdmitNode, Owner = 2, Gpu = hourly[0].Gpu, Region = hourly[0].Region, Gpus = 8, Name = "n" }).Ok);
        Assert.True(Apply(new ExchangeCommand { Kind = ExchangeCommandKind.ApproveIssuer, Owner = 2 }).Ok);
        CommandResult issued = Apply(ExchangeCommand.IssueShares(2, node, 1_000_000));
        Assert.True(issued.Ok, issued.Error.ToString());
        Instrument shares = registry.Get((int)issued.Subject);

        void Cycle(int n)
        {
            for (int k = 0; k < n; k++)
            {
                // A third each: a compute bid, a share bid, a share offer (never crossing the bids), placed and cancelled.
                (long owner, Instrument i, Side side, long price) = (k % 3) switch
                {
                    0 => (1L, hourly[k & 3], Side.Buy, hourly[k & 3].Band.MinPrice + hourly[k & 3].Band.Tick * (1 + (k % 64))),
                    1 => (1L, shares, Side.Buy, shares.Band.MinPrice + shares.Band.Tick * (1 + (k % 64))),
                    _ => (2L, shares, Side.Sell, shares.Band.MaxPrice - shares.Band.Tick * (k % 64)),
                };
                CommandResult placed = Apply(ExchangeCommand.Place(owner, i.Id, side, OrderType.Limit, TimeInForce.GoodTillCancel, price, i.Hours * (1 + (k % 5))));
                if (!placed.Ok) throw new InvalidOperationException(placed.Error.ToString());
                if (!Apply(ExchangeCommand.Cancel(owner, placed.Subject)).Ok) throw new InvalidOperationException("cancel");
            }
        }
        Cycle(20_000); // warm: pools, dictionaries, plan buffers grown
        // Nothing per order: an allocation on the path would cost at least 24 bytes a command (960 KB a run). The runtime
        // itself may still allocate a few hundred bytes on this thread while it re-compiles hot methods (tiering), more
        // while other tests load the machine; so the bar is under a quarter of a byte per command in the best of three runs.
        var runs = new List<long>();
        for (int r = 0; r < 3 && (runs.Count == 0 || runs[^1] != 0); r++)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            Cycle(20_000);
            runs.Add(GC.GetAllocatedBytesForCurrentThread() - before);
        }
        Assert.True(runs.Min() < 40_000 / 4, $"bytes per run of 40,000 commands: {string.Join(", ", runs)}");
        sm.CheckInvariants();
        Assert.Equal(new ShareHoldingView(2, node, 1_000_000, 0, 0), sm.HoldingOf(2, node));
    }
}
