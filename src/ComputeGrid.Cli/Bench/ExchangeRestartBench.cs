using System.Diagnostics;
using ComputeGrid.Exchange.Instruments;
using ComputeGrid.Exchange.Matching;
using ComputeGrid.Exchange.Pipeline;
using ComputeGrid.Exchange.StateMachine;
using ComputeGrid.Ledger;

namespace ComputeGrid.Cli.Bench;

/// <summary>What the restart bench measured.</summary>
public sealed record RestartRun(long Orders, long JournalBytes, ulong LastSeq, ulong SnapshotSeq, long SnapshotBytes, long SnapshotEvery,
    double BuildSeconds, double SnapshotStartSeconds, double FullReplaySeconds, int OpenOrders, StartProfile SnapshotStart, StartProfile FullStart,
    double PrefixCheckAfterStartSeconds);

/// <summary>
/// Restart time: a journal of N orders is built through the pipeline (durable journal with its fsync per batch, snapshots
/// on; the ledger in memory, which only makes the build faster: a restart replays the exchange's own journal and resubmits
/// at most its last few batches to whatever ledger it is given, so the ledger's storage is not what the restart measures),
/// then <see cref="ExchangePipeline.StartAsync"/> is timed twice over the same journal: from the newest snapshot plus the
/// journal after it, and as a full replay (an empty snapshot folder). Both must reach the same state hash.
/// </summary>
public static class ExchangeRestartBench
{
    public static async Task<RestartRun> RunAsync(string dir, long orders, CancellationToken ct)
    {
        var time = TimeProvider.System;
        await using var ledger = LedgerEngine.Open(new LedgerEngineOptions(), time);
        const int Traders = 16;
        var (revenue, collateral) = await ExchangePipelineBench.SeedLedgerAsync(ledger, Traders, ct);

        string journal = Path.Combine(dir, "exchange.journal");
        var smOptions = new StateMachineOptions { OrdersPerBookMax = 1 << 16, Epoch = 99 };
        ExchangeStateMachine NewMachine() => new(new InstrumentRegistry(new InstrumentSchedule(RegionCatalog.Fallback, ListingPolicy.Default)), smOptions);
        long every = Math.Min(1_000_000, Math.Max(1, orders / 4));
        var options = new PipelineOptions { SnapshotEveryCommands = every, Rebuild = NewMachine };

        var build = Stopwatch.StartNew();
        byte[] hash;
        int openOrders;
        await using (ExchangePipeline pipeline = await ExchangePipeline.StartAsync(NewMachine(), ledger, journal, time, options, ct: ct))
        {
            const long provider = 1_000_000;
            await pipeline.SubmitAsync(ExchangeCommand.Tick(), ct);
            await pipeline.SubmitAsync(new ExchangeCommand { Kind = ExchangeCommandKind.RegisterProvider, Owner = provider, Account = revenue, Account2 = collateral }, ct);
            await pipeline.SubmitAsync(new ExchangeCommand
            { Kind = ExchangeCommandKind.AdmitNode, Owner = provider, Gpus = 1_000_000_000, Gpu = GpuClass.H100, Region = RegionCatalog.Fallback.Codes[0], Name = "bench-node" }, ct);
            for (int i = 0; i < Traders; i++)
            {
                await pipeline.SubmitAsync(new ExchangeCommand { Kind = ExchangeCommandKind.RegisterTrader, Owner = 1 + i }, ct);
                await pipeline.SubmitAsync(new ExchangeCommand { Kind = ExchangeCommandKind.Deposit, Owner = 1 + i, Account = (UInt128)(1_000 + i), Amount = 1L << 49 }, ct);
            }
            while ((await pipeline.ReadAsync(m => m.PendingDeposits.Count, ct)) > 0) await Task.Delay(1, ct);
            long now = Core.Clock.UnixNanoseconds(time);
            Instrument[] hours = await pipeline.ReadAsync(m => m.Instruments.Active.Where(i => i.Kind == DeliveryKind.HourlySpot && i.Gpu == GpuClass.H100
                && i.Region == RegionCatalog.Fallback.Codes[0] && i.TradingEnd - now > 3_600_000_000_000L).Take(4).ToArray(), ct);

            // The mix: limit buys and sells around a mid (some crossing), IOC and market orders, a quarter cancels of
            // resting orders; a window of 8,192 in flight (full batches).
            var rng = new Random(7);
            var open = new List<(long Owner, long Id)>();
            const int Window = 8_192;
            var pending = new Task<CommandOutcome>[Window];
            var sent = new ExchangeCommand[Window];
            for (long done = 0; done < orders;)
            {
                int n = (int)Math.Min(Window, orders - done);
                for (int k = 0; k < n; k++)
                {
                    int roll = rng.Next(100);
                    ExchangeCommand c;
                    if (roll < 25 && open.Count > 0)
                    {
                        int at = rng.Next(open.Count);
                        c = ExchangeCommand.Cancel(open[at].Owner, open[at].Id);
                        open[at] = open[^1];
                        open.RemoveAt(open.Count - 1);
                    }
                    else
                    {
                        bool sell = rng.Next(2) == 0;
                        long owner = sell ? provider : 1 + rng.Next(Traders);
                        long price = 2_000_000 + (sell ? 1 : -1) * rng.Next(0, 30) * 1_000 - (rng.Next(10) == 0 ? (sell ? 40_000 : -40_000) : 0);
                        OrderType type = roll < 30 ? OrderType.Market : OrderType.Limit;
                        TimeInForce tif = roll < 35 && type == OrderType.Limit ? TimeInForce.ImmediateOrCancel : TimeInForce.GoodTillCancel;
                        c = ExchangeCommand.Place(owner, hours[rng.Next(hours.Length)].Id, sell ? Side.Sell : Side.Buy, type, tif, type == OrderType.Market ? 0 : price, 1 + rng.Next(8));
                    }
                    sent[k] = c;
                    pending[k] = pipeline.SubmitAsync(c, ct).AsTask();
                }
                for (int k = 0; k < n; k++)
                {
                    CommandOutcome o = await pending[k];
                    if (sent[k].Kind == ExchangeCommandKind.Place && o.Result.Status == Exchange.Trading.OrderStatus.Resting) open.Add((sent[k].Owner, o.Result.Subject));
                }
                done += n;
            }
            hash = await pipeline.ReadAsync(m => m.StateHash(), ct);
            openOrders = await pipeline.ReadAsync(m => m.OpenOrders().Count, ct);
        }
        build.Stop();
        long journalBytes = new FileInfo(journal).Length;
        string folder = ExchangePipeline.SnapshotFolderOf(journal, options);
        long snapshotBytes = SnapshotStore.Files(folder).Select(f => new FileInfo(f).Length).FirstOrDefault();

        // From the newest snapshot and the journal after it.
        var clock = Stopwatch.StartNew();
        ulong lastSeq, snapshotSeq;
        StartProfile snapshotStart, fullStart;
        double prefixAfter;
        await using (ExchangePipeline pipeline = await ExchangePipeline.StartAsync(NewMachine(), ledger, journal, time, options with { SnapshotEveryCommands = 0 }, ct: ct))
        {
            clock.Stop();
            snapshotSeq = pipeline.Restored.LastSeq;
            snapshotStart = pipeline.StartTimes;
            // The journal before the snapshot is checked once the exchange runs: how long after the start that took.
            var check = Stopwatch.StartNew();
            await pipeline.PrefixCheck;
            prefixAfter = check.Elapsed.TotalSeconds;
            if (pipeline.Restored.File is null) throw new InvalidOperationException("The restart found no snapshot.");
            byte[] restored = await pipeline.ReadAsync(m => m.StateHash(), ct);
            if (!hash.AsSpan().SequenceEqual(restored)) throw new InvalidOperationException("The restart from the snapshot reached another state.");
            lastSeq = await pipeline.ReadAsync(m => m.LastSeq, ct);
        }
        double fromSnapshot = clock.Elapsed.TotalSeconds;

        // The whole journal (no snapshot to start from).
        clock.Restart();
        await using (ExchangePipeline pipeline = await ExchangePipeline.StartAsync(NewMachine(), ledger, journal, time,
            options with { SnapshotEveryCommands = 0, SnapshotFolder = Path.Combine(dir, "no-snapshots") }, ct: ct))
        {
            clock.Stop();
            if (pipeline.Restored.File is not null) throw new InvalidOperationException("The full replay started from a snapshot.");
            fullStart = pipeline.StartTimes;
            byte[] replayed = await pipeline.ReadAsync(m => m.StateHash(), ct);
            if (!hash.AsSpan().SequenceEqual(replayed)) throw new InvalidOperationException("The full replay reached another state.");
        }
        return new RestartRun(orders, journalBytes, lastSeq, snapshotSeq, snapshotBytes, every, build.Elapsed.TotalSeconds, fromSnapshot, clock.Elapsed.TotalSeconds, openOrders, snapshotStart, fullStart, prefixAfter);
    }
}
