using System.Diagnostics;
using ComputeGrid.Exchange.Instruments;
using ComputeGrid.Exchange.Matching;
using ComputeGrid.Exchange.Pipeline;
using ComputeGrid.Exchange.StateMachine;
using ComputeGrid.Ledger;

namespace ComputeGrid.Cli.Bench;

/// <summary>What one pipeline run measured.</summary>
public sealed record PipelineRun(double OrdersPerSecond, long Orders, long Fills, double AckP50Ms, double AckP99Ms, double AvgBatch,
    double JournalCommandsPerSecond, double StateMachineCommandsPerSecond, double LedgerCommandsPerSecond);

/// <summary>
/// Orders through the new pipeline (sequencer → journal → state machine → ledger → answers) under load: many submitters,
/// each keeping many orders in flight, a seeded mix (limit and market buys and
/// sells, IOC, cancels) on one hourly book. In memory (no journal, in-memory ledger) or durable (journal fsync per batch,
/// durable ledger). Reports the rate, the acknowledgement latency, and each stage's own rate (commands per second of the
/// time that stage spent working), so the stage that bounds the rate is named.
/// </summary>
public static class ExchangePipelineBench
{
    /// <summary>
    /// One run. With a <c>targetRate</c> (orders per second of all submitters together), each submitter sends its round of
    /// <c>inFlight</c> orders on a schedule and waits when ahead of it; 0 sends as fast as the pipeline answers. With
    /// <c>shares</c>, the same mix trades a node's shares (instrument <c>SHR-{node}</c>, the provider selling from its
    /// issue) instead of an hour of H100s.
    /// </summary>
    public static async Task<PipelineRun> RunAsync(string? dataDir, TimeSpan duration, int submitters, int inFlight, int seed, CancellationToken ct, double targetRate = 0,
        bool shares = false)
    {
        var time = TimeProvider.System;
        await using var ledger = LedgerEngine.Open(new LedgerEngineOptions { DataDirectory = dataDir is null ? null : Path.Combine(dataDir, "ledger"), SnapshotLogBytesMin = 0 }, time);
        var registry = new InstrumentRegistry(new InstrumentSchedule(RegionCatalog.Fallback, ListingPolicy.Default));
        var sm = new ExchangeStateMachine(registry, new StateMachineOptions { OrdersPerBookMax = 1 << 18, Epoch = (ulong)(DateTime.UtcNow.Ticks & 0xFFFF_FFFF) + 1 });
        var (revenue, collateral) = await SeedLedgerAsync(ledger, submitters, ct);

        await using ExchangePipeline pipeline = await ExchangePipeline.StartAsync(sm, ledger, dataDir is null ? null : Path.Combine(dataDir, "exchange.journal"), time, ct: ct);
        const long provider = 1_000_000;
        await pipeline.SubmitAsync(ExchangeCommand.Tick(), ct);
        await pipeline.SubmitAsync(new ExchangeCommand { Kind = ExchangeCommandKind.RegisterProvider, Owner = provider, Account = revenue, Account2 = collateral }, ct);
        long node = (await pipeline.SubmitAsync(new ExchangeCommand
        { Kind = ExchangeCommandKind.AdmitNode, Owner = provider, Gpus = 1_000_000_000, Gpu = GpuClass.H100, Region = RegionCatalog.Fallback.Codes[0], Name = "bench-node" }, ct)).Result.Subject;
        for (int i = 0; i < submitters; i++)
        {
            await pipeline.SubmitAsync(new ExchangeCommand { Kind = ExchangeCommandKind.RegisterTrader, Owner = 1 + i }, ct);
            await pipeline.SubmitAsync(new ExchangeCommand { Kind = ExchangeCommandKind.Deposit, Owner = 1 + i, Account = (UInt128)(1_000 + i), Amount = 1L << 49 }, ct);
        }
        while ((await pipeline.ReadAsync(m => m.PendingDeposits.Count, ct)) > 0) await Task.Delay(1, ct);
        Instrument hour = registry.Active.First(i => i.Kind == DeliveryKind.HourlySpot && i.Gpu == GpuClass.H100 && i.Region == RegionCatalog.Fallback.Codes[0]
                                                   && i.TradingEnd - Core.Clock.UnixNanoseconds(time) > 3_600_000_000_000L);
        long tick = 1_000;
        if (shares)
        {
            await pipeline.SubmitAsync(new ExchangeCommand { Kind = ExchangeCommandKind.ApproveIssuer, Owner = provider }, ct);
            CommandOutcome issued = await pipeline.SubmitAsync(ExchangeCommand.IssueShares(provider, node, ExchangeStateMachine.ShareSupplyMax), ct);
            if (!issued.Result.Ok) throw new InvalidOperationException($"The bench's issuance was refused: {issued.Result.Error}.");
            hour = await pipeline.ReadAsync(m => m.Instruments.Get((int)issued.Result.Subject), ct);
            tick = hour.Band.Tick;
        }
        var (_, commandsBefore, _) = pipeline.Counters;
        var stagesBefore = pipeline.StageSeconds;
        long orders = 0, fills = 0;
        var latencies = new List<double>[submitters];
        var clock = Stopwatch.StartNew();
        async Task Submit(int who)
        {
            var rng = new Random(seed + who);
            var open = new List<long>();
            var lat = latencies[who] = new List<double>(1 << 16);
            var batch = new Task<CommandOutcome>[inFlight];
            var kinds = new ExchangeCommand[inFlight];
            var started = new long[inFlight];
            long owner = who + 1;
            // Paced: round r of this submitter is due at r × (its share of the rate), offset so submitters interleave.
            double roundSeconds = targetRate > 0 ? inFlight * submitters / targetRate : 0;
            long round = 0;
            while (clock.Elapsed < duration)
            {
                if (roundSeconds > 0)
                {
                    double due = (round++ + (double)who / submitters) * roundSeconds;
                    double wait = due - clock.Elapsed.TotalSeconds;
                    if (wait > 0) await Task.Delay(TimeSpan.FromSeconds(wait), ct);
                    if (clock.Elapsed >= duration) break;
                }
                for (int k = 0; k < inFlight; k++)
                {
                    int roll = rng.Next(100);
                    ExchangeCommand c;
                    if (roll < 25 && open.Count > 0)
                    {
                        int at = rng.Next(open.Count);
                        c = ExchangeCommand.Cancel(open[at] < 0 ? provider : owner, Math.Abs(open[at]));
                        open[at] = open[^1];
                        open.RemoveAt(open.Count - 1);
                    }
                    else
                    {
                        bool sell = rng.Next(2) == 0;
                        long price = 2_000_000 + (sell ? 1 : -1) * rng.Next(0, 30) * tick - (rng.Next(10) == 0 ? (sell ? 40 * tick : -40 * tick) : 0);
                        OrderType type = roll < 35 ? OrderType.Market : OrderType.Limit;
                        TimeInForce tif = roll < 40 && type == OrderType.Limit ? TimeInForce.ImmediateOrCancel : TimeInForce.GoodTillCancel;
                        c = ExchangeCommand.Place(sell ? provider : owner, hour.Id, sell ? Side.Sell : Side.Buy, type, tif, type == OrderType.Market ? 0 : price, 1 + rng.Next(8));
                    }
                    kinds[k] = c;
                    started[k] = Stopwatch.GetTimestamp();
                    batch[k] = pipeline.SubmitAsync(c, ct).AsTask();
                }
                for (int k = 0; k < inFlight; k++)
                {
                    CommandOutcome o = await batch[k];
                    lat.Add((Stopwatch.GetTimestamp() - started[k]) * 1000.0 / Stopwatch.Frequency);
                    Interlocked.Increment(ref orders);
                    Interlocked.Add(ref fills, o.Fills.Length);
                    if (kinds[k].Kind == ExchangeCommandKind.Place && o.Result.Status == Exchange.Trading.OrderStatus.Resting)
                        open.Add(kinds[k].Owner == provider ? -o.Result.Subject : o.Result.Subject);
                }
            }
        }
        await Task.WhenAll(Enumerable.Range(0, submitters).Select(w => Task.Run(() => Submit(w), ct)));
        double seconds = clock.Elapsed.TotalSeconds;
        var (batches, commands, _) = pipeline.Counters;
        var stages = pipeline.StageSeconds;
        long measured = commands - commandsBefore;
        double[] all = latencies.SelectMany(l => l).Order().ToArray();
        await pipeline.ReadAsync(m => { m.CheckInvariants(); return 0; }, ct);
        return new PipelineRun(orders / seconds, orders, fills, Percentile(all, 0.50), Percentile(all, 0.99), (double)commands / Math.Max(1, batches),
            measured / Math.Max(1e-9, stages.Journal - stagesBefore.Journal), measured / Math.Max(1e-9, stages.StateMachine - stagesBefore.StateMachine),
            measured / Math.Max(1e-9, stages.Ledger - stagesBefore.Ledger));
    }

    /// <summary>
    /// The bench's ledger accounts: a funding account, a provider's revenue and collateral, and one wallet per trader
    /// (<c>1000 + i</c>, funded with 2^50 micro-USD); returns the provider's two accounts.
    /// </summary>
    internal static async Task<(UInt128 Revenue, UInt128 Collateral)> SeedLedgerAsync(LedgerEngine ledger, int traders, CancellationToken ct)
    {
        UInt128 funding = 10, revenue = 12, collateral = 13;
        var accounts = new List<Account>
        {
            new() { Id = funding, Asset = 1, Code = 1 },
            new() { Id = revenue, Asset = 1, Code = 3 },
            new() { Id = collateral, Asset = 1, Code = 4 },
        };
        for (int i = 0; i < traders; i++) accounts.Add(new Account { Id = (UInt128)(1_000 + i), Asset = 1, Code = 2, Flags = AccountFlags.DebitsMustNotExceedCredits });
        await ledger.CreateAccountsAsync(accounts.ToArray(), ct);
        await ledger.CreateTransfersAsync(Enumerable.Range(0, traders).Select(i => new Transfer
        { Id = (UInt128)(1 + i), DebitAccountId = funding, CreditAccountId = (UInt128)(1_000 + i), Amount = 1L << 50, Asset = 1, Code = 1 }).ToArray(), ct);
        return (revenue, collateral);
    }

    private static double Percentile(double[] sorted, double q) => sorted.Length == 0 ? 0 : Math.Round(sorted[Math.Min(sorted.Length - 1, (int)(q * sorted.Length))], 3);
}
