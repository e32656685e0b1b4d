using System.Diagnostics;
using ComputeGrid.Chain.X402;
using ComputeGrid.Ledger;
using ComputeGrid.Ledger.Audit;
using ComputeGrid.Server.Chain;
using Microsoft.Extensions.DependencyInjection;

namespace ComputeGrid.Cli.Bench;

/// <summary>
/// <c>computegrid bench chain</c>: settlement on a real EVM chain (its own Anvil), through a real server with one local
/// node running the model. In order:
/// <list type="number">
/// <item>Verifying an x402 payment (signature recovery and every check, no chain call), per payment.</item>
/// <item>The x402 overhead: the same body sent keyed and paid, alternating one by one (each pair in both orders), the
/// latency less the model and the simulated network compared pair by pair; the unpaid leg (the 402) beside it.</item>
/// <item>Paid requests/s with 16 concurrent clients (eight payers, Anvil's dev accounts, signing EIP-3009 in C#), in
/// windows that alternate with keyed ones of the same bodies and clients.</item>
/// <item>Slow mining: Anvil mines a block every 2 s; paid answers (beside keyed ones) must not wait for it, and the
/// time from the answer to the settlement's N confirmations is measured apart. Meanwhile vault deposits, each timed
/// until the server's bridge credits it in the ledger (after N confirmations).</item>
/// <item>The check: every paid answer settled exactly once on chain (<see cref="ChainBenchSettlement"/>); a failure
/// exits 1.</item>
/// <item>The gas of anchoring the ledger's checkpoint (root, op, log head, liabilities per asset) through the server's
/// anchor outbox, from the receipt.</item>
/// </list>
/// </summary>
internal static class ChainBench
{
    /// <summary>The block time of the slow-mining part, seconds (the issue's "a block every 2 s").</summary>
    public const int SlowBlockTimeSeconds = 2;

    /// <summary>Concurrent clients of the throughput windows (two per payer).</summary>
    public const int Clients = 16;

    private const int Seed = 16;

    private static readonly string[] Sentences =
    [
        "A man is playing a guitar.", "The stock market fell sharply today.", "ComputeGrid sells GPU capacity like a commodity.",
        "Bitcoin miners soak up cheap power at night.", "Embeddings turn sentences into vectors.", "The ledger settles every request in micro-dollars.",
        "A quick brown fox jumps over the lazy dog.", "Holders receive revenue pro rata.",
    ];

    /// <summary>Runs the bench in <paramref name="workDir"/> (default: a temporary folder, deleted afterwards); 1 when the settlement check fails.</summary>
    public static async Task<int> RunAsync(bool quick, string? workDir, TextWriter output, TextWriter error, CancellationToken ct)
    {
        string dir = workDir ?? Path.Combine(Path.GetTempPath(), "cg-bench-chain-" + Guid.NewGuid().ToString("N"));
        try { return await RunInAsync(quick, dir, output, error, ct); }
        finally
        {
            if (workDir is null)
                try { Directory.Delete(dir, recursive: true); } catch (IOException) { }
        }
    }

    private static async Task<int> RunInAsync(bool quick, string dir, TextWriter output, TextWriter error, CancellationToken ct)
    {
        var total = Stopwatch.StartNew();
        output.WriteLine($"chain bench ({(quick ? "quick" : "full")}): {Environment.ProcessorCount} cores");

        // 1. Verification alone, before anything else runs in the process.
        X402VerifyLatency verify = X402Bench.VerifyLatency(quick ? 5_000 : 50_000, Seed);
        BenchStats.Line(output, $"  x402 verify ({verify.Iterations:N0} payments, no chain call): p50 {verify.P50Microseconds:F1} µs, p99 {verify.P99Microseconds:F1} µs, CPU {verify.CpuMicrosecondsMean:F1} µs per payment");

        var start = Stopwatch.StartNew();
        await using ChainBenchRig rig = await ChainBenchRig.StartAsync(dir, Seed, ct);
        BenchStats.Line(output, $"  Anvil (chain {rig.Anvil.ChainId}, automine) and the server with one local node: ready in {start.Elapsed.TotalSeconds:F1} s; settlements final after {ChainBenchRig.Confirmations} blocks");
        ChainBenchSettlement settlement = await ChainBenchSettlement.StartAsync(rig, ct);
        var quotes = new PaymentRequirements[Sentences.Length];
        for (int i = 0; i < Sentences.Length; i++) quotes[i] = (await rig.QuoteAsync(ChainBenchRig.Body(Sentences[i]), ct)).Accepted;
        BenchStats.Line(output, $"  a request costs {quotes.Min(q => long.Parse(q.Amount, System.Globalization.CultureInfo.InvariantCulture))}-{quotes.Max(q => long.Parse(q.Amount, System.Globalization.CultureInfo.InvariantCulture))} micro-USD (node price {ChainBenchRig.PriceMicroUsdPer1kTokens} per 1k tokens)");

        // 2. Overhead, one client at a time after a warm-up of the same loop.
        await PairsAsync(rig, settlement, quotes, quick ? 40 : 200, ct);
        var pairs = await PairsAsync(rig, settlement, quotes, quick ? 100 : 600, ct);
        BenchStats.Line(output, $"  overhead, 1 client, {pairs.Overheads.Count} keyed/paid pairs (latency less model and network): keyed p50 {pairs.KeyedP50:F3} ms, paid p50 {pairs.PaidP50:F3} ms; x402 adds p50 {pairs.OverheadP50:F3} ms, p99 {pairs.OverheadP99:F3} ms; the 402 leg p50 {pairs.QuoteP50:F3} ms");
        // Where the overhead goes, in parts measured apart: one chain read; the facilitator's verify (HTTP, the verifier
        // and the two chain reads the paid path makes before serving; no reservation, no ledger, no send); Nethereum
        // signing a settlement transaction as the settler does before the answer; and the disk's fsync.
        Parts parts = await PartsAsync(rig, quotes, quick ? 50 : 200, ct);
        BenchStats.Line(output, $"    its parts, p50: a chain read (eth_call) {parts.ChainRead:F3} ms; POST /x402/verify (verifier + 2 chain reads, over HTTP) {parts.FacilitatorVerify:F3} ms; signing a settlement transaction through Nethereum (gas estimate, nonce, fees; not sent) {parts.SettlementSign:F3} ms; one fsync {parts.Fsync:F3} ms (the paid path adds durable commits: the intent, the payer's credit, the sent transaction)");

        // 3. Throughput, windows alternating keyed and paid.
        TimeSpan window = TimeSpan.FromSeconds(quick ? 2 : 5);
        int rounds = quick ? 1 : 3;
        long paidOk = 0, keyedOk = 0;
        TimeSpan paidTime = TimeSpan.Zero, keyedTime = TimeSpan.Zero;
        for (int round = 0; round < rounds; round++)
        {
            var keyed = await LoadAsync(rig, settlement, quotes, paid: false, window, ct);
            var paid = await LoadAsync(rig, settlement, quotes, paid: true, window, ct);
            (keyedOk, keyedTime, paidOk, paidTime) = (keyedOk + keyed.Ok, keyedTime + keyed.Elapsed, paidOk + paid.Ok, paidTime + paid.Elapsed);
            BenchStats.Line(output, $"  round {round + 1}, {Clients} clients: keyed {keyed.Ok / keyed.Elapsed.TotalSeconds:N1} requests/s ({keyed.Failed} failed), paid {paid.Ok / paid.Elapsed.TotalSeconds:N1} requests/s ({paid.Failed} failed)");
        }
        double paidRate = paidOk / paidTime.TotalSeconds, keyedRate = keyedOk / keyedTime.TotalSeconds;

        // 4. Slow mining: answers beside blocks.
        await rig.Anvil.CallAsync("evm_setIntervalMining", SlowBlockTimeSeconds);
        Task<List<(double FromSend, double FromMined)>> deposits = DepositsAsync(rig, settlement, quick ? 2 : 8, ct);
        var slow = await SlowAsync(rig, settlement, quotes, quick ? 8 : 40, ct);
        var deposited = await deposits;
        var (depositP50, depositMinedP50) = (Median(deposited.Select(d => d.FromSend).ToList()), Median(deposited.Select(d => d.FromMined).ToList()));
        BenchStats.Line(output, $"  a block every {SlowBlockTimeSeconds} s: paid answer p50 {slow.PaidP50:F2} ms (p99 {slow.PaidP99:F2}), keyed {slow.KeyedP50:F2} ms; answer → {ChainBenchRig.Confirmations} confirmations p50 {slow.SettleP50:F0} ms (p99 {slow.SettleP99:F0})");

        BenchStats.Line(output, $"  vault deposit → ledger credit ({deposited.Count} deposits beside the paid requests, {ChainBenchRig.Confirmations} confirmations, blocks every {SlowBlockTimeSeconds} s, the bridge polling every {rig.BridgePollInterval.TotalSeconds:F0} s): p50 {depositP50:F0} ms from the send, {depositMinedP50:F0} ms from the receipt");

        // 5. Every paid answer settled exactly once.
        bool drained = await ChainBenchSettlement.WaitSettledAsync(rig, ct);
        string? problem = drained ? await settlement.ProblemAsync(rig, ct) : $"settlements still pending after {ChainBenchSettlement.SettleWaitMax.TotalSeconds} s";
        var counts = rig.X402.Store.Counts();
        BenchStats.Line(output, $"  settlement check: {settlement.Paid} paid answers ({settlement.PaidValue} micro-USD), {counts[X402State.Settled]} settled on chain, {counts[X402State.Failed]} failed, {settlement.Refused} refused: {problem ?? "each settled exactly once (payer balances fell by exactly the sum)"}");

        // 6. Anchoring the ledger's checkpoint as it stands now.
        var (anchorGas, anchorOp, anchorMs) = await AnchorAsync(rig, ct);
        BenchStats.Line(output, $"  anchor of checkpoint op {anchorOp}: {anchorGas:N0} gas, mined in {anchorMs:F0} ms");

        BenchStats.Line(output, $"  total {total.Elapsed.TotalSeconds:F1} s");
        output.WriteLine(BenchStats.Json(w =>
        {
            w.WriteString("bench", "chain");
            w.WriteBoolean("quick", quick);
            w.WriteStartObject("metrics");
            w.WriteNumber("anchor_gas", anchorGas);
            w.WriteNumber("x402_verify_us_p50", Math.Round(verify.P50Microseconds, 2));
            w.WriteNumber("x402_paid_requests_per_s", Math.Round(paidRate, 1));
            w.WriteNumber("x402_overhead_p50_ms", Math.Round(pairs.OverheadP50, 3));
            w.WriteNumber("deposit_to_credit_ms_p50", Math.Round(depositP50, 1));
            w.WriteNumber("deposit_mined_to_credit_ms_p50", Math.Round(depositMinedP50, 1));
            w.WriteNumber("deposit_count", deposited.Count);
            w.WriteNumber("bridge_poll_interval_ms", rig.BridgePollInterval.TotalMilliseconds);
            w.WriteNumber("x402_verify_us_p99", Math.Round(verify.P99Microseconds, 2));
            w.WriteNumber("x402_verify_cpu_us_mean", Math.Round(verify.CpuMicrosecondsMean, 2));
            w.WriteNumber("x402_verify_count", verify.Iterations);
            w.WriteNumber("x402_overhead_p99_ms", Math.Round(pairs.OverheadP99, 3));
            w.WriteNumber("keyed_path_p50_ms", Math.Round(pairs.KeyedP50, 3));
            w.WriteNumber("x402_paid_path_p50_ms", Math.Round(pairs.PaidP50, 3));
            w.WriteNumber("x402_402_p50_ms", Math.Round(pairs.QuoteP50, 3));
            w.WriteNumber("overhead_pairs", pairs.Overheads.Count);
            w.WriteNumber("chain_read_p50_ms", Math.Round(parts.ChainRead, 3));
            w.WriteNumber("x402_facilitator_verify_p50_ms", Math.Round(parts.FacilitatorVerify, 3));
            w.WriteNumber("x402_settlement_sign_p50_ms", Math.Round(parts.SettlementSign, 3));
            w.WriteNumber("fsync_p50_ms", Math.Round(parts.Fsync, 3));
            w.WriteNumber("keyed_requests_per_s", Math.Round(keyedRate, 1));
            w.WriteNumber("clients", Clients);
            w.WriteNumber("block_time_s", SlowBlockTimeSeconds);
            w.WriteNumber("x402_answer_p50_ms_block_time_2s", Math.Round(slow.PaidP50, 3));
            w.WriteNumber("x402_answer_p99_ms_block_time_2s", Math.Round(slow.PaidP99, 3));
            w.WriteNumber("keyed_answer_p50_ms_block_time_2s", Math.Round(slow.KeyedP50, 3));
            w.WriteNumber("x402_settle_p50_ms_block_time_2s", Math.Round(slow.SettleP50, 1));
            w.WriteNumber("x402_settle_p99_ms_block_time_2s", Math.Round(slow.SettleP99, 1));
            w.WriteNumber("confirmations", ChainBenchRig.Confirmations);
            w.WriteNumber("x402_paid_count", settlement.Paid);
            w.WriteNumber("x402_settled_count", counts[X402State.Settled]);
            w.WriteNumber("x402_refused_count", settlement.Refused);
            w.WriteNumber("x402_paid_micro_usd", settlement.PaidValue);
            w.WriteBoolean("x402_settled_exactly_once", problem is null);
            w.WriteNumber("anchor_op", anchorOp);
            w.WriteEndObject();
        }));
        if (problem is null) return 0;
        error.WriteLine($"bench chain: the settlement check failed: {problem}");
        return 1;
    }

    /// <summary>What the alternating pairs found, ms: per-path p50s, the overhead's p50 and p99 (paid − keyed, pair by pair), and the 402 leg.</summary>
    private sealed record Pairs(List<double> Overheads, double KeyedP50, double PaidP50, double OverheadP50, double OverheadP99, double QuoteP50);

    /// <summary>
    /// <paramref name="count"/> pairs of the same body, keyed and paid, one client, the order flipped every pair so neither
    /// path always follows the other; before each pair the unpaid request (the 402 a client gets first). The payment is
    /// signed before the clock starts: signing is the client's work, not the server's.
    /// </summary>
    private static async Task<Pairs> PairsAsync(ChainBenchRig rig, ChainBenchSettlement settlement, PaymentRequirements[] quotes, int count, CancellationToken ct)
    {
        var keyed = new List<double>(count);
        var paid = new List<double>(count);
        var overheads = new List<double>(count);
        var quoteMs = new List<double>(count);
        for (int i = 0; i < count; i++)
        {
            int s = i % Sentences.Length;
            string body = ChainBenchRig.Body(Sentences[s]);
            quoteMs.Add((await rig.QuoteAsync(body, ct)).Ms);
            SignedPayment payment = rig.Sign(quotes[s], i % rig.PayerCount);
            Answer k, p;
            if (i % 2 == 0)
            {
                k = await rig.KeyedAsync(body, ct);
                p = await rig.PaidAsync(body, payment, ct);
            }
            else
            {
                p = await rig.PaidAsync(body, payment, ct);
                k = await rig.KeyedAsync(body, ct);
            }
            settlement.Record(payment, p);
            if (k.Status != 200 || p.Status != 200) continue;
            keyed.Add(k.PathMs);
            paid.Add(p.PathMs);
            overheads.Add(p.PathMs - k.PathMs);
        }
        if (overheads.Count == 0) throw new InvalidOperationException("no keyed/paid pair succeeded");
        return new Pairs(overheads, Median(keyed), Median(paid), Median(overheads), P99(overheads), Median(quoteMs));
    }

    /// <summary>The p50s (ms) of the parts of the paid path measured apart.</summary>
    private sealed record Parts(double ChainRead, double FacilitatorVerify, double SettlementSign, double Fsync);

    /// <summary>
    /// <paramref name="count"/> rounds of: a chain read, a facilitator verify of a fresh payment (never presented for
    /// service, so never settled), the signing of that payment's settlement transaction (not sent), and an fsync.
    /// </summary>
    private static async Task<Parts> PartsAsync(ChainBenchRig rig, PaymentRequirements[] quotes, int count, CancellationToken ct)
    {
        var reads = new List<double>(count);
        var verifies = new List<double>(count);
        var signs = new List<double>(count);
        var fsyncs = new List<double>(count);
        for (int i = 0; i < count; i++)
        {
            reads.Add(await rig.ChainReadAsync(ct));
            SignedPayment payment = rig.Sign(quotes[i % quotes.Length], i % rig.PayerCount);
            var (valid, ms) = await rig.FacilitatorVerifyAsync(payment, ct);
            if (!valid) throw new InvalidOperationException("the facilitator refused the bench's own payment");
            verifies.Add(ms);
            signs.Add(await rig.SignSettlementAsync(payment));
            fsyncs.Add(rig.Fsync());
        }
        return new Parts(Median(reads), Median(verifies), Median(signs), Median(fsyncs));
    }

    /// <summary><see cref="Clients"/> clients (client c pays as payer c mod 8) sending back to back for <paramref name="duration"/>.</summary>
    private static async Task<(long Ok, long Failed, TimeSpan Elapsed)> LoadAsync(ChainBenchRig rig, ChainBenchSettlement settlement, PaymentRequirements[] quotes,
        bool paid, TimeSpan duration, CancellationToken ct)
    {
        long ok = 0, failed = 0;
        var sw = Stopwatch.StartNew();
        await Parallel.ForEachAsync(Enumerable.Range(0, Clients), new ParallelOptions { MaxDegreeOfParallelism = Clients, CancellationToken = ct }, async (client, c) =>
        {
            for (int i = client; sw.Elapsed < duration; i += Clients)
            {
                int s = i % Sentences.Length;
                string body = ChainBenchRig.Body(Sentences[s]);
                Answer a;
                if (paid)
                {
                    SignedPayment payment = rig.Sign(quotes[s], client % rig.PayerCount);
                    a = await rig.PaidAsync(body, payment, c);
                    settlement.Record(payment, a);
                }
                else a = await rig.KeyedAsync(body, c);
                Interlocked.Increment(ref a.Status == 200 ? ref ok : ref failed);
            }
        });
        return (ok, failed, sw.Elapsed);
    }

    /// <summary>With slow blocks: paid and keyed answers alternating, and per paid answer the time until its settlement was final.</summary>
    private static async Task<(double PaidP50, double PaidP99, double KeyedP50, double SettleP50, double SettleP99)> SlowAsync(ChainBenchRig rig,
        ChainBenchSettlement settlement, PaymentRequirements[] quotes, int count, CancellationToken ct)
    {
        var paid = new List<double>(count);
        var keyed = new List<double>(count);
        var finals = new List<Task<double>>(count);
        for (int i = 0; i < count; i++)
        {
            int s = i % Sentences.Length;
            string body = ChainBenchRig.Body(Sentences[s]);
            SignedPayment payment = rig.Sign(quotes[s], i % rig.PayerCount);
            Answer p = await rig.PaidAsync(body, payment, ct);
            settlement.Record(payment, p);
            if (p.Status == 200)
            {
                paid.Add(p.Ms);
                finals.Add(TimeToFinalAsync(rig, payment.Key, ct));
            }
            Answer k = await rig.KeyedAsync(body, ct);
            if (k.Status == 200) keyed.Add(k.Ms);
        }
        if (paid.Count == 0 || keyed.Count == 0) throw new InvalidOperationException("no request succeeded under slow mining");
        var settle = (await Task.WhenAll(finals)).ToList();
        return (Median(paid), P99(paid), Median(keyed), Median(settle), P99(settle));
    }

    /// <summary>
    /// <paramref name="count"/> vault deposits of 1 USDC, one after another, each timed until the bridge credited it
    /// (the bridge's own loop, as a server runs it: not driven by the bench).
    /// </summary>
    private static async Task<List<(double FromSend, double FromMined)>> DepositsAsync(ChainBenchRig rig, ChainBenchSettlement settlement, int count, CancellationToken ct)
    {
        const long Amount = 1_000_000;
        var times = new List<(double, double)>(count);
        for (int i = 0; i < count; i++)
        {
            times.Add(await rig.DepositToCreditAsync(Amount, ct));
            settlement.RecordDeposit(Amount);
        }
        return times;
    }

    // From just after the answer until the settler counts the transaction final (Settled); a Failed one has no time.
    private static async Task<double> TimeToFinalAsync(ChainBenchRig rig, NonceKey key, CancellationToken ct)
    {
        long start = Stopwatch.GetTimestamp();
        X402State state = await rig.X402.Settler.WaitFinalAsync(key, ChainBenchSettlement.SettleWaitMax, ct);
        if (state != X402State.Settled) throw new InvalidOperationException($"a paid answer's settlement ended {state}");
        return Stopwatch.GetElapsedTime(start).TotalMilliseconds;
    }

    /// <summary>
    /// Anchors a checkpoint of the server's ledger as it stands (root, op, log head, liabilities per asset) the way the
    /// server does, through its anchor outbox (which its bridge loop also drives; one pass at a time), and reads the
    /// gas from the anchoring transaction's receipt: the gas, the op anchored, and the ms to the receipt.
    /// </summary>
    private static async Task<(long Gas, ulong Op, double Ms)> AnchorAsync(ChainBenchRig rig, CancellationToken ct)
    {
        Checkpoint checkpoint = await rig.App.Services.GetRequiredService<LedgerEngine>().CheckpointAsync(ct);
        long start = Stopwatch.GetTimestamp();
        await rig.App.Services.GetRequiredService<AnchorOutbox>().AnchorAsync(ct);
        double ms = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        AnchorRow anchored = rig.App.Services.GetRequiredService<BridgeStore>().LatestAnchored()
            ?? throw new InvalidOperationException("the anchor outbox anchored nothing");
        if (anchored.Op < checkpoint.Op) throw new InvalidOperationException($"the anchor outbox anchored op {anchored.Op}, not the checkpoint at op {checkpoint.Op}");
        var receipt = await rig.Chain.Web3.Eth.Transactions.GetTransactionReceipt.SendRequestAsync(anchored.TransactionHash)
            ?? throw new InvalidOperationException($"no receipt for the anchoring transaction {anchored.TransactionHash}");
        return ((long)receipt.GasUsed.Value, anchored.Op, ms);
    }

    private static double Median(List<double> values) => BenchStats.Percentile(values.Order().ToList(), 0.5);

    private static double P99(List<double> values) => BenchStats.Percentile(values.Order().ToList(), 0.99);
}
