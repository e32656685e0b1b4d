using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using ComputeGrid.Exchange.Matching;

namespace ComputeGrid.Cli.Bench;

/// <summary>
/// <c>computegrid bench exchange</c>: the matching core alone on a seeded, replayable command mix (60 % limit,
/// 25 % cancel, 10 % market, 5 % IOC over 1,000 price levels), against the SortedDictionary reference book
/// on the same commands. Throughput and latency are measured in separate passes (timing every command
/// costs time of its own), allocation over the throughput pass.
/// </summary>
public static class ExchangeBench
{
    private const int Seed = 0x0B00C;
    public static readonly PriceBand Band = new(1_000_000, 1_000_000 + 999 * 1_000, 1_000); // $1.000 … $1.999 per GPU-hour

    public static async Task<int> RunAsync(bool quick, TextWriter output, CancellationToken ct) => await RunAsync(quick, null, output, ct);

    /// <summary>
    /// The bench; <paramref name="only"/> "restart" runs the restart part alone (to iterate on it: the other parts take
    /// minutes), its JSON the restart fields only. Null runs everything.
    /// </summary>
    public static async Task<int> RunAsync(bool quick, string? only, TextWriter output, CancellationToken ct)
    {
        if (only == "restart")
        {
            RestartRun alone = await RunRestartAsync(quick, output, ct);
            var fields = new SortedDictionary<string, object>(RestartMetrics(alone), StringComparer.Ordinal) { ["quick"] = quick ? 1 : 0 };
            output.WriteLine(JsonSerializer.Serialize(new { bench = "exchange", metrics = fields }));
            return 0;
        }
        if (only is not null) return CliDefaults.Fail($"unknown part '{only}' of the exchange bench (restart)");
        var total = Stopwatch.StartNew();
        int commands = quick ? 2_000_000 : 6_000_000;
        int referenceCommands = quick ? 300_000 : 1_000_000;
        const int ordersMax = 1 << 16; // one instrument's book; the mix keeps about 40,000 orders resting

        output.WriteLine($"exchange bench: generating {commands:N0} commands (seed {Seed}) ...");
        var gen = Stopwatch.StartNew();
        var stream = Generate(Seed, commands, ordersMax);
        output.WriteLine($"  generated in {gen.Elapsed.TotalSeconds:F1} s: {Describe(stream)}");

        // Warm-up: JIT the hot paths (both entry points) on separate books.
        var warm = new OrderBook(Band, ordersMax);
        var warmSink = new CountingSink();
        int warmCount = Math.Min(commands, 1_000_000);
        for (int i = 0; i < warmCount; i += BatchSize) warm.ApplyBatch(stream.AsSpan(i, Math.Min(BatchSize, warmCount - i)), ref warmSink);
        var warm2 = new OrderBook(Band, ordersMax);
        for (int i = 0; i < warmCount; i++) warm2.Apply(in stream[i]);

        // 1. Throughput and allocation: commands arrive in batches (as from the sequencer's ring), so the book
        //    prefetches what the next commands will touch.
        //    The whole stream is replayed on a fresh book several times: this VM's speed swings by a third from one
        //    moment to the next, so the median of the passes is reported (with the slowest and fastest beside it).
        const int passes = 5;
        var rates = new double[passes];
        long allocated = 0, events = 0;
        int resting = 0;
        for (int pass = 0; pass < passes; pass++)
        {
            var book = new OrderBook(Band, ordersMax);
            var sink = new CountingSink();
            long allocated0 = GC.GetAllocatedBytesForCurrentThread();
            long t0 = Stopwatch.GetTimestamp();
            for (int i = 0; i < stream.Length; i += BatchSize) book.ApplyBatch(stream.AsSpan(i, Math.Min(BatchSize, stream.Length - i)), ref sink);
            double passSeconds = Stopwatch.GetElapsedTime(t0).TotalSeconds;
            allocated = Math.Max(allocated, GC.GetAllocatedBytesForCurrentThread() - allocated0);
            rates[pass] = stream.Length / passSeconds;
            if (pass > 0 && sink.Events != events) { output.WriteLine("exchange bench FAILED: passes disagree"); return 1; }
            events = sink.Events;
            resting = book.Count;
        }
        Array.Sort(rates);
        double perSecond = rates[passes / 2];
        output.WriteLine($"  fast book: {stream.Length:N0} commands × {passes} passes: median {perSecond:N0}/s (slowest {rates[0]:N0}, fastest {rates[^1]:N0}), {events:N0} events, {allocated} bytes allocated, {resting:N0} resting at the end");

        // The same book one command at a time (no look-ahead), for comparison.
        var single = new OrderBook(Band, ordersMax);
        long s0 = Stopwatch.GetTimestamp();
        long singleEvents = 0;
        for (int i = 0; i < stream.Length; i++) singleEvents += single.Apply(in stream[i]).Length;
        double singlePerSecond = stream.Length / Stopwatch.GetElapsedTime(s0).TotalSeconds;
        if (singleEvents != events) { output.WriteLine("exchange bench FAILED: batch and single paths produced different events"); return 1; }
        output.WriteLine($"  fast book, one command at a time: {singlePerSecond:N0}/s");

        // 2. Latency of each command.
        var latencyBook = new OrderBook(Band, ordersMax);
        var ticks = new long[stream.Length];
        for (int i = 0; i < stream.Length; i++)
        {
            long s = Stopwatch.GetTimestamp();
            latencyBook.Apply(in stream[i]);
            ticks[i] = Stopwatch.GetTimestamp() - s;
        }
        Array.Sort(ticks);
        double usPerTick = 1e6 / Stopwatch.Frequency;
        double p50 = ticks[ticks.Length / 2] * usPerTick, p99 = ticks[(int)(ticks.Length * 0.99)] * usPerTick, p999 = ticks[(int)(ticks.Length * 0.999)] * usPerTick;
        output.WriteLine($"  latency per command: p50 {p50:F3} µs, p99 {p99:F3} µs, p99.9 {p999:F3} µs (includes the timer's own cost)");

        // 3. The reference book on a prefix of the same stream, checked to produce the same events.
        var reference = new ReferenceOrderBook(Band, ordersMax);
        var check = new OrderBook(Band, ordersMax);
        long refEvents = 0, fastPrefixEvents = 0;
        long r0 = Stopwatch.GetTimestamp();
        for (int i = 0; i < referenceCommands; i++) refEvents += reference.Apply(stream[i]).Count;
        double refSeconds = Stopwatch.GetElapsedTime(r0).TotalSeconds;
        for (int i = 0; i < referenceCommands; i++) fastPrefixEvents += check.Apply(in stream[i]).Length;
        if (refEvents != fastPrefixEvents)
        {
            output.WriteLine($"exchange bench FAILED: reference produced {refEvents} events, fast book {fastPrefixEvents}");
            return 1;
        }
        double refPerSecond = referenceCommands / refSeconds;
        output.WriteLine($"  reference book (SortedDictionary): {referenceCommands:N0} commands in {refSeconds:F3} s = {refPerSecond:N0}/s (same {refEvents:N0} events)");

        // 4. The whole path under load: many submitters, many orders in flight, in memory and durable.
        TimeSpan runFor = TimeSpan.FromSeconds(quick ? 3 : 10);
        PipelineRun pipeMem = await ExchangePipelineBench.RunAsync(null, runFor, 32, 64, Seed, ct);
        output.WriteLine($"  pipeline, in memory: {pipeMem.Orders:N0} orders ({pipeMem.Fills:N0} fills) at {pipeMem.OrdersPerSecond:N0} orders/s, ack p50 {pipeMem.AckP50Ms} ms p99 {pipeMem.AckP99Ms} ms, {pipeMem.AvgBatch:F0} commands per batch; stages (commands/s of their own time): state machine {pipeMem.StateMachineCommandsPerSecond:N0}, ledger {pipeMem.LedgerCommandsPerSecond:N0}");
        string pipeDir = Path.Combine(Path.GetTempPath(), "cg-exchange-pipeline-" + Guid.NewGuid().ToString("N"));
        PipelineRun pipeDurable;
        try
        {
            Directory.CreateDirectory(pipeDir);
            pipeDurable = await ExchangePipelineBench.RunAsync(pipeDir, runFor, 32, 64, Seed, ct);
            output.WriteLine($"  pipeline, durable (journal fsync per batch, durable ledger): {pipeDurable.Orders:N0} orders at {pipeDurable.OrdersPerSecond:N0} orders/s, ack p50 {pipeDurable.AckP50Ms} ms p99 {pipeDurable.AckP99Ms} ms, {pipeDurable.AvgBatch:F0} commands per batch; stages: journal {pipeDurable.JournalCommandsPerSecond:N0}, state machine {pipeDurable.StateMachineCommandsPerSecond:N0}, ledger {pipeDurable.LedgerCommandsPerSecond:N0}");
        }
        finally { if (Directory.Exists(pipeDir)) Directory.Delete(pipeDir, recursive: true); }

        // The acknowledgement latency at half the durable rate just measured (the target is asked there): the
        // same mix, paced, with fewer orders in flight per submitter so each waits for little more than its own batch.
        string halfDir = Path.Combine(Path.GetTempPath(), "cg-exchange-pipeline-half-" + Guid.NewGuid().ToString("N"));
        PipelineRun pipeHalf;
        try
        {
            Directory.CreateDirectory(halfDir);
            pipeHalf = await ExchangePipelineBench.RunAsync(halfDir, runFor, 32, 8, Seed, ct, targetRate: pipeDurable.OrdersPerSecond / 2);
            output.WriteLine($"  pipeline, durable, paced at half that rate ({pipeDurable.OrdersPerSecond / 2:N0}/s): {pipeHalf.OrdersPerSecond:N0} orders/s reached, ack p50 {pipeHalf.AckP50Ms} ms p99 {pipeHalf.AckP99Ms} ms, {pipeHalf.AvgBatch:F0} commands per batch");
        }
        finally { if (Directory.Exists(halfDir)) Directory.Delete(halfDir, recursive: true); }

        // 5. Through HTTP: the batch endpoint on loopback, durable, market makers' batches of 1,000 orders.
        ApiBatchRun api = await ExchangeApiBench.RunAsync(TimeSpan.FromSeconds(quick ? 3 : 10), 4, 1_000, ct);
        output.WriteLine($"  HTTP batch API (loopback, durable; {api.Clients} clients, batches of {api.BatchSize:N0}): {api.Orders:N0} orders ({api.Accepted:N0} accepted, {api.Fills:N0} fills) at {api.OrdersPerSecond:N0} orders/s, request p50 {api.RequestP50Ms} ms p99 {api.RequestP99Ms} ms; stages (commands/s of their own time): journal {api.JournalCommandsPerSecond:N0}, state machine {api.StateMachineCommandsPerSecond:N0}, ledger {api.LedgerCommandsPerSecond:N0}; CPU busy {api.CpuBusyShare:P0} of {Environment.ProcessorCount} cores (server and clients)");

        // 6. Restart: snapshot + journal tail against the full replay, over a journal of 10M orders (1M in quick mode).
        RestartRun restart = await RunRestartAsync(quick, output, ct);

        var metrics = new SortedDictionary<string, object>(RestartMetrics(restart), StringComparer.Ordinal)
        {
            ["api_batch_orders_per_s"] = Math.Round(api.OrdersPerSecond),
            ["api_batch_request_p99_ms"] = api.RequestP99Ms,
            ["api_batch_accepted_share"] = api.Orders == 0 ? 0 : Math.Round((double)api.Accepted / api.Orders, 4),
            ["api_batch_stage_journal_commands_per_s"] = api.JournalCommandsPerSecond,
            ["api_batch_stage_state_machine_commands_per_s"] = api.StateMachineCommandsPerSecond,
            ["api_batch_stage_ledger_commands_per_s"] = api.LedgerCommandsPerSecond,
            ["api_batch_cpu_busy_share"] = api.CpuBusyShare,
            ["full_path_orders_per_s_inmem"] = Math.Round(pipeMem.OrdersPerSecond),
            ["full_path_orders_per_s_durable"] = Math.Round(pipeDurable.OrdersPerSecond),
            ["full_path_ack_p50_ms"] = pipeDurable.AckP50Ms,
            ["full_path_ack_p99_ms"] = pipeDurable.AckP99Ms,
            ["full_path_ack_p99_ms_inmem"] = pipeMem.AckP99Ms,
            ["full_path_ack_p50_ms_half_rate"] = pipeHalf.AckP50Ms,
            ["full_path_ack_p99_ms_half_rate"] = pipeHalf.AckP99Ms,
            ["full_path_orders_per_s_half_rate"] = Math.Round(pipeHalf.OrdersPerSecond),
            ["full_path_commands_per_batch"] = Math.Round(pipeDurable.AvgBatch),
            ["stage_journal_commands_per_s"] = Math.Round(pipeDurable.JournalCommandsPerSecond),
            ["stage_state_machine_commands_per_s"] = Math.Round(pipeMem.StateMachineCommandsPerSecond),
            ["stage_ledger_commands_per_s_inmem"] = Math.Round(pipeMem.LedgerCommandsPerSecond),
            ["stage_ledger_commands_per_s_durable"] = Math.Round(pipeDurable.LedgerCommandsPerSecond),
            ["orders_per_s"] = Math.Round(perSecond),
            ["orders_per_s_slowest_pass"] = Math.Round(rates[0]),
            ["orders_per_s_fastest_pass"] = Math.Round(rates[^1]),
            ["orders_per_s_unbatched"] = Math.Round(singlePerSecond),
            ["p99_us"] = Math.Round(p99, 3),
            ["p50_us"] = Math.Round(p50, 3),
            ["p999_us"] = Math.Round(p999, 3),
            ["alloc_bytes_per_order"] = Math.Round((double)allocated / stream.Length, 4),
            ["reference_orders_per_s"] = Math.Round(refPerSecond),
            ["speedup_vs_reference"] = Math.Round(perSecond / refPerSecond, 1),
            ["commands"] = stream.Length,
            ["price_levels"] = Band.Levels,
            ["quick"] = quick ? 1 : 0,
            ["seed"] = Seed,
            ["total_seconds"] = Math.Round(total.Elapsed.TotalSeconds, 1),
        };
        output.WriteLine(JsonSerializer.Serialize(new { bench = "exchange", metrics }));
        return 0;
    }

    private static async Task<RestartRun> RunRestartAsync(bool quick, TextWriter output, CancellationToken ct)
    {
        long restartOrders = quick ? 1_000_000 : 10_000_000;
        string restartDir = Path.Combine(Path.GetTempPath(), "cg-exchange-restart-" + Guid.NewGuid().ToString("N"));
        try
        {
            Directory.CreateDirectory(restartDir);
            RestartRun restart = await ExchangeRestartBench.RunAsync(restartDir, restartOrders, ct);
            output.WriteLine($"  restart after {restart.Orders:N0} orders (journal {restart.JournalBytes / 1e6:F0} MB, seq {restart.LastSeq:N0}, built in {restart.BuildSeconds:F1} s; {restart.OpenOrders:N0} open orders): "
                + $"from the snapshot at seq {restart.SnapshotSeq:N0} ({restart.SnapshotBytes / 1e6:F1} MB) + {restart.LastSeq - restart.SnapshotSeq:N0} commands of tail {restart.SnapshotStartSeconds:F2} s; full replay {restart.FullReplaySeconds:F2} s");
            output.WriteLine($"    from the snapshot: {Describe(restart.SnapshotStart, restart.PrefixCheckAfterStartSeconds)}");
            output.WriteLine($"    full replay:       {Describe(restart.FullStart)}");
            return restart;
        }
        finally { if (Directory.Exists(restartDir)) Directory.Delete(restartDir, recursive: true); }
    }

    private static string Describe(Exchange.Pipeline.StartProfile p, double background = 0) =>
        $"snapshot read {p.SnapshotReadSeconds:F2} s, restore {p.SnapshotRestoreSeconds:F2} s, prefix check {p.PrefixCheckSeconds:F2} s (then {background:F2} s in the background), journal replay {p.TailReplaySeconds:F2} s, rest {p.OtherSeconds:F2} s";

    private static Dictionary<string, object> RestartMetrics(RestartRun restart) => new()
    {
        // Named by what was measured: 10M orders in the full run (the figure), 1M in quick mode.
        [$"restart_seconds_after_{restart.Orders / 1_000_000}m_orders"] = Math.Round(restart.SnapshotStartSeconds, 3),
        ["restart_seconds_full_replay"] = Math.Round(restart.FullReplaySeconds, 3),
        ["restart_orders"] = restart.Orders,
        ["restart_tail_commands"] = (long)(restart.LastSeq - restart.SnapshotSeq),
        ["restart_snapshot_every_commands"] = restart.SnapshotEvery,
        ["restart_snapshot_bytes"] = restart.SnapshotBytes,
        ["restart_journal_bytes"] = restart.JournalBytes,
        ["restart_build_seconds"] = Math.Round(restart.BuildSeconds, 1),
        ["restart_snapshot_read_seconds"] = Math.Round(restart.SnapshotStart.SnapshotReadSeconds, 3),
        ["restart_snapshot_restore_seconds"] = Math.Round(restart.SnapshotStart.SnapshotRestoreSeconds, 3),
        ["restart_prefix_check_seconds"] = Math.Round(restart.SnapshotStart.PrefixCheckSeconds, 3),
        ["restart_prefix_check_background_seconds"] = Math.Round(restart.PrefixCheckAfterStartSeconds, 3),
        ["restart_tail_replay_seconds"] = Math.Round(restart.SnapshotStart.TailReplaySeconds, 3),
        ["restart_other_seconds"] = Math.Round(restart.SnapshotStart.OtherSeconds, 3),
    };

    private const int BatchSize = 4096;

    private struct CountingSink : IMatchEventSink
    {
        public long Events;
        public void OnEvents(int index, ReadOnlySpan<MatchEvent> events) => Events += events.Length;
    }

    /// <summary>
    /// The seeded command mix. A book is run alongside the generator so cancels name orders that are still
    /// resting (as real cancels do); a mid price random-walks so the book keeps trading across its levels.
    /// </summary>
    public static OrderCommand[] Generate(int seed, int count, int ordersMax)
    {
        var rng = new Random(seed);
        var book = new OrderBook(Band, ordersMax);
        var live = new List<long>();
        var liveIndex = new Dictionary<long, int>();
        var owners = new Dictionary<long, long>();
        var stream = new OrderCommand[count];
        long mid = 500, nextId = 0, now = 1_795_000_000_000_000_000;
        for (int i = 0; i < count; i++)
        {
            now += 1_000;
            if (rng.Next(100) == 0) mid = Math.Clamp(mid + rng.Next(-3, 4), 100, 900);
            int roll = rng.Next(100);
            var c = new OrderCommand { Timestamp = now, Side = rng.Next(2) == 0 ? Side.Buy : Side.Sell };
            if (roll < 25 && live.Count > 0 || book.Count >= ordersMax - 1)
            {
                long id = live[rng.Next(live.Count)];
                c.Kind = CommandKind.Cancel;
                c.OrderId = id;
                c.Owner = owners[id];
            }
            else
            {
                c.Kind = CommandKind.Place;
                c.OrderId = ++nextId;
                c.Owner = 1 + rng.Next(1_000);
                c.Quantity = 1 + rng.Next(20);
                if (roll < 35) { c.Type = OrderType.Market; c.TimeInForce = TimeInForce.ImmediateOrCancel; }
                else
                {
                    c.Type = OrderType.Limit;
                    c.TimeInForce = roll < 40 ? TimeInForce.ImmediateOrCancel : TimeInForce.GoodTillCancel;
                    // Mostly passive around the mid, sometimes through it.
                    int offset = (int)Math.Min(400, -Math.Log(1 - rng.NextDouble()) * 25) - (rng.Next(10) == 0 ? 8 : 0);
                    long level = Math.Clamp(c.Side == Side.Buy ? mid - 1 - offset : mid + 1 + offset, 0, Band.Levels - 1);
                    c.Price = Band.MinPrice + level * Band.Tick;
                }
                owners[c.OrderId] = c.Owner;
            }
            stream[i] = c;
            foreach (var e in book.Apply(in c))
            {
                if (e.Kind == EventKind.Rested) { liveIndex[e.OrderId] = live.Count; live.Add(e.OrderId); }
                else if (e.Kind == EventKind.Cancelled && e.Reason is CancelReason.UserCancel or CancelReason.Expired) Drop(e.OrderId);
                else if (e.Kind == EventKind.Trade && !book.TryGetOrder(e.MakerOrderId, out _)) Drop(e.MakerOrderId);
            }
        }
        return stream;

        void Drop(long id)
        {
            if (!liveIndex.Remove(id, out int at)) return;
            long last = live[^1];
            live[at] = last;
            live.RemoveAt(live.Count - 1);
            if (last != id) liveIndex[last] = at;
            owners.Remove(id);
        }
    }

    private static string Describe(OrderCommand[] s)
    {
        int limit = 0, cancel = 0, market = 0, ioc = 0;
        foreach (var c in s)
        {
            if (c.Kind == CommandKind.Cancel) cancel++;
            else if (c.Type == OrderType.Market) market++;
            else if (c.TimeInForce == TimeInForce.ImmediateOrCancel) ioc++;
            else limit++;
        }
        string Pct(int n) => (100.0 * n / s.Length).ToString("F1", CultureInfo.InvariantCulture) + " %";
        return $"limit {Pct(limit)}, cancel {Pct(cancel)}, market {Pct(market)}, IOC {Pct(ioc)}";
    }
}
