using System.Diagnostics;
using System.Text;
using System.Text.Json;
using ComputeGrid.Core;
using ComputeGrid.Ledger;
using ComputeGrid.Tokens;

namespace ComputeGrid.Cli.Bench;

/// <summary>
/// The node shares benchmark: revenue payments per second, each one a <see cref="TransferCode.ShareRevenue"/> transfer
/// through an in-memory <see cref="LedgerStateMachine"/> (batches of 8,000, as the ledger bench) with the
/// <see cref="ShareLedgerProjection"/> over the O(1) <see cref="ShareRegistry"/> attached as its observer.
/// <list type="number">
/// <item>Setup: one ledger, a node with 10 holders and a node with 1,000,000 holders (each a real ShareHolding account
///   that received its shares by a real transfer); the projection watches from the empty ledger. The registry and
///   the naive book are then rebuilt from the ledger alone and the rebuilt registry is checked against the live one.</item>
/// <item>Naive: payments to the 1,000,000-holder node with the naive per-holder loop watching too (a tee: the
///   accumulator's O(1) step is counted in it, so the loop is all that differs); fewer payments. The naive book and the
///   accumulator must then agree on every holder's entitlement.</item>
/// <item>Main and parts, in rounds: a batch to the 10-holder node and one to the 1,000,000-holder node with the
///   projection watching (each batch's <c>CreateTransfers</c> timed: <c>payments_per_s_10_holders</c>,
///   <c>payments_per_s_1m_holders</c>, their ratio), and one to the large node with the observer detached (the ledger
///   alone, <c>ledger_only_payments_per_s</c>) that the projection then catches up on from the ledger
///   (<c>projection_payments_per_s</c>): which part bounds the whole. The order is shuffled each round.</item>
/// </list>
/// Then the checks (a failure exits 1 with no JSON): every pool's balance is the sum paid into it and the
/// accumulator's R; both nodes' invariants (carry exact, supply conserved); the ledger's (debits == credits per asset).
/// Rates are per contender's median batch (see the main loop); means are given beside.
/// Last, share trades through the exchange's pipeline (durable journal and ledger), the exchange bench's seeded mix on a
/// node's shares. The last line is <c>{"bench":"tokens","metrics":{…}}</c>; the measured rates come first (<see cref="Measured"/>).
/// </summary>
public static class TokensBench
{
    /// <summary>The workload seed (payment amounts, share counts).</summary>
    public const int Seed = 0x70CE45;

    private const long EpochNanoseconds = 1_750_000_000_000_000_000L;
    private const int BatchSize = 8_000;
    private const ulong SmallNode = 1, LargeNode = 2, Issuer = 1;
    private const long PayerFunding = long.MaxValue / 4;

    /// <summary>Sizes of one run: each round pays three batches (10 holders, 1,000,000 holders, the ledger alone).</summary>
    private sealed record Config(int LargeHolders, int Rounds, int WarmupBatches, int NaiveBatches, int NaiveBatchSize)
    {
        public static readonly Config Full = new(1_000_000, 150, 10, 5, 100);
        public static readonly Config Quick = new(1_000_000, 30, 4, 2, 100);
    }

    /// <summary>A check of the benchmark's own results failed: the numbers would mean nothing.</summary>
    private sealed class BenchFailure(string message) : Exception(message);

    /// <summary>One measured rate of the JSON line, in the order written.</summary>
    private readonly record struct Measured(string Name, double Value);

    /// <summary>Runs the benchmark; returns 0, or 1 when a check failed (the reason is written, no JSON line).</summary>
    public static int Run(bool quick, TextWriter output)
    {
        ArgumentNullException.ThrowIfNull(output);
        var cfg = quick ? Config.Quick : Config.Full;
        var total = Stopwatch.StartNew();
        try
        {
            Line(output, $"tokens bench ({(quick ? "quick" : "full")}): nodes with 10 and {cfg.LargeHolders:N0} holders, batches of {BatchSize} payments, seed {Seed}, {Environment.ProcessorCount} cpus");
            using var bench = new Workload(cfg);
            var setup = Stopwatch.StartNew();
            bench.Setup();
            Line(output, $"setup: {bench.Ledger.AccountCount:N0} accounts, {bench.Ledger.TransferCount:N0} transfers in {setup.Elapsed.TotalSeconds:F2} s");

            var rebuild = Stopwatch.StartNew();
            var rebuilt = new ShareRegistry();
            bench.Ledger.ReplayPosted(new ShareLedgerProjection(rebuilt));
            double rebuildSeconds = rebuild.Elapsed.TotalSeconds;
            bench.CheckSameBook(rebuilt);
            rebuilt = null!;
            Line(output, $"rebuild: the registry rebuilt from the ledger ({bench.Ledger.TransferCount:N0} transfers) in {rebuildSeconds:F2} s equals the live one");

            // ---- naive: the per-holder loop watches too (rebuilt from the ledger before any payment, so it replays
            // only the setup's moves)
            var naive = new NaiveShareBook();
            bench.Ledger.ReplayPosted(new ShareLedgerProjection(naive));
            bench.Ledger.Observer = new Tee(bench.Projection, new ShareLedgerProjection(naive));
            bench.PayBatch(LargeNode, cfg.NaiveBatchSize); // warm the loop
            var naiveTicks = new long[cfg.NaiveBatches];
            for (int b = 0; b < cfg.NaiveBatches; b++) naiveTicks[b] = bench.PayBatch(LargeNode, cfg.NaiveBatchSize);
            bench.Ledger.Observer = bench.Projection;
            long naivePayments = (long)cfg.NaiveBatches * cfg.NaiveBatchSize;
            double naiveRate = cfg.NaiveBatchSize / Seconds(Median(naiveTicks));
            bench.CheckAgainst(naive, LargeNode);
            naive = null!;
            Line(output, $"naive: {naivePayments:N0} payments to the {cfg.LargeHolders:N0}-holder node in {Seconds(naiveTicks.Sum()):F3} s, median batch {naiveRate:N0}/s; every holder's entitlement equals the accumulator's");

            for (int b = 0; b < cfg.WarmupBatches; b++) { bench.PayBatch(SmallNode, BatchSize); bench.PayBatch(LargeNode, BatchSize); }
            Thread.Sleep(250); // let tier-1 compilations land
            Collect();

            // ---- main and parts, interleaved so all see the same ledger size and the same machine: each round pays a
            // batch to the 10-holder node and one to the 1,000,000-holder node with the projection watching, and one
            // to the large node with the ledger alone, which the projection then catches up on from the ledger (in a
            // seeded random order, so no contender always runs first or after the same one). Each rate comes from the contender's median
            // batch: on a shared machine a batch preempted by another process takes 10-50 times as long, and a few
            // of them would decide a mean at random; the means are printed beside.
            var small = new long[cfg.Rounds];
            var large = new long[cfg.Rounds];
            var ledgerOnly = new long[cfg.Rounds];
            var catchUp = new long[cfg.Rounds];
            var order = new Random(Seed);
            int[] contenders = [0, 1, 2];
            for (int round = 0; round < cfg.Rounds; round++)
            {
                order.Shuffle(contenders);
                for (int k = 0; k < 3; k++)
                {
                    switch (contenders[k])
                    {
                        case 0: small[round] = bench.PayBatch(SmallNode, BatchSize); break;
                        case 1: large[round] = bench.PayBatch(LargeNode, BatchSize); break;
                        default:
                            bench.Ledger.Observer = null;
                            int from = bench.Ledger.TransferCount;
                            ledgerOnly[round] = bench.PayBatch(LargeNode, BatchSize);
                            long start = Stopwatch.GetTimestamp();
                            bench.Ledger.ReplayPosted(bench.Projection, from);
                            catchUp[round] = Stopwatch.GetTimestamp() - start;
                            bench.Ledger.Observer = bench.Projection;
                            break;
                    }
                }
            }
            long mainPayments = (long)cfg.Rounds * BatchSize;
            double smallRate = BatchSize / Seconds(Median(small));
            double largeRate = BatchSize / Seconds(Median(large));
            double ledgerRate = BatchSize / Seconds(Median(ledgerOnly));
            double projectionRate = BatchSize / Seconds(Median(catchUp));
            Line(output, $"main: {mainPayments:N0} payments per contender, median batch: 10 holders {smallRate:N0}/s, {cfg.LargeHolders:N0} holders {largeRate:N0}/s, ratio {largeRate / smallRate:F3} (means {mainPayments / Seconds(small.Sum()):N0}/s and {mainPayments / Seconds(large.Sum()):N0}/s)");
            Line(output, $"parts ({cfg.LargeHolders:N0}-holder node), median batch: ledger alone {ledgerRate:N0} payments/s, projection alone (catching up from the ledger) {projectionRate:N0} payments/s (means {mainPayments / Seconds(ledgerOnly.Sum()):N0}/s and {mainPayments / Seconds(catchUp.Sum()):N0}/s)");

            var check = Stopwatch.StartNew();
            bench.CheckConservation();
            Line(output, $"checks: pools == sums paid == R, carries exact, supplies conserved, ledger debits == credits ({check.Elapsed.TotalSeconds:F2} s)");

            // Share trades through the exchange's pipeline, durable (journal and ledger on disk), the seeded mix of the
            // exchange bench on a node's shares: many submitters, many orders in flight.
            string dir = Path.Combine(Path.GetTempPath(), $"cg-bench-shares-{Environment.ProcessId}");
            PipelineRun shares;
            try
            {
                shares = ExchangePipelineBench.RunAsync(dir, TimeSpan.FromSeconds(quick ? 4 : 15), submitters: 8, inFlight: 64, Seed, CancellationToken.None, shares: true)
                    .GetAwaiter().GetResult();
            }
            finally
            {
                try { Directory.Delete(dir, recursive: true); } catch (IOException) { }
            }
            double shareSeconds = shares.Orders / Math.Max(1e-9, shares.OrdersPerSecond);
            double shareTrades = shares.Fills / Math.Max(1e-9, shareSeconds);
            Line(output, $"share trades (pipeline, durable): {shares.Orders:N0} orders, {shares.Fills:N0} trades in {shareSeconds:F1} s: {shares.OrdersPerSecond:N0} orders/s, {shareTrades:N0} trades/s, ack p99 {shares.AckP99Ms} ms");

            Measured[] measured =
            [
                new("payments_per_s_10_holders", Math.Round(smallRate)),
                new("payments_per_s_1m_holders", Math.Round(largeRate)),
                new("holder_scaling_ratio", Math.Round(largeRate / smallRate, 3)),
                new("naive_payments_per_s_1m_holders", Math.Round(naiveRate)),
                new("share_trades_per_s", Math.Round(shareTrades)),
            ];
            output.WriteLine(Json(w =>
            {
                w.WriteString("bench", "tokens");
                w.WriteStartObject("metrics");
                foreach (var m in measured) w.WriteNumber(m.Name, m.Value);
                w.WriteNumber("share_orders_per_s", Math.Round(shares.OrdersPerSecond));
                w.WriteNumber("share_trade_ack_p99_ms", shares.AckP99Ms);
                w.WriteNumber("ledger_only_payments_per_s", Math.Round(ledgerRate));
                w.WriteNumber("projection_payments_per_s", Math.Round(projectionRate));
                w.WriteNumber("payments_per_s_10_holders_mean", Math.Round(mainPayments / Seconds(small.Sum())));
                w.WriteNumber("payments_per_s_1m_holders_mean", Math.Round(mainPayments / Seconds(large.Sum())));
                w.WriteNumber("accumulator_vs_naive_1m_holders", Math.Round(largeRate / naiveRate, 1));
                w.WriteNumber("rebuild_seconds", Math.Round(rebuildSeconds, 3));
                w.WriteNumber("large_holders", cfg.LargeHolders);
                w.WriteNumber("payments_per_node", mainPayments);
                w.WriteNumber("naive_payments", naivePayments);
                w.WriteNumber("batch_size", BatchSize);
                w.WriteNumber("quick", quick ? 1 : 0);
                w.WriteNumber("seed", Seed);
                w.WriteNumber("total_seconds", Math.Round(total.Elapsed.TotalSeconds, 1));
                w.WriteEndObject();
            }));
            return 0;
        }
        catch (BenchFailure e)
        {
            output.WriteLine($"tokens bench FAILED: {e.Message}");
            return 1;
        }
    }

    /// <summary>The ledger, its two nodes and the projection watching it.</summary>
    private sealed class Workload(Config cfg) : IDisposable
    {
        public readonly LedgerStateMachine Ledger = new(cfg.LargeHolders + 64, TransfersCapacity(cfg));
        public readonly ShareRegistry Registry = new();
        public ShareLedgerProjection Projection = null!;
        private readonly Random _rng = new(Seed);
        private readonly Transfer[] _batch = new Transfer[BatchSize];
        private readonly CreateTransferResult[] _results = new CreateTransferResult[LedgerLimits.BatchEventsMax];
        private readonly Dictionary<ulong, long> _paid = new() { [SmallNode] = 0, [LargeNode] = 0 };
        private ulong _key = 1;

        private static int TransfersCapacity(Config cfg) =>
            cfg.LargeHolders + 64 + (3 * cfg.Rounds + 2 * cfg.WarmupBatches) * BatchSize + (cfg.NaiveBatches + 1) * cfg.NaiveBatchSize;

        public void Setup()
        {
            Projection = new ShareLedgerProjection(Registry);
            Ledger.Observer = Projection;
            UInt128 treasury = ChartOfAccounts.SystemAccount(AccountCode.Treasury, Asset.Usd);
            var accounts = new List<Account> { ChartOfAccounts.NewAccount(AccountCode.Treasury, treasury, Asset.Usd) };
            var transfers = new List<Transfer>();
            foreach (var (node, holders, supply) in (ReadOnlySpan<(ulong, int, long)>)[(SmallNode, 10, 1_000_003L), (LargeNode, cfg.LargeHolders, 1_000_000_007L)])
            {
                accounts.AddRange(TokenTransfers.IssuanceAccounts(node, Issuer));
                accounts.Add(ChartOfAccounts.NewAccount(AccountCode.NodeRevenue, Payer(node), Asset.Usd));
                transfers.Add(TokenTransfers.Issue(node, Issuer, supply));
                transfers.Add(new Transfer
                {
                    Id = ChartOfAccounts.TransferId(TransferSpace.Funding, 0, node), DebitAccountId = treasury, CreditAccountId = Payer(node),
                    Amount = PayerFunding, Asset = Asset.Usd.Code, Code = (ushort)TransferCode.Funding,
                });
                Asset shares = Asset.NodeShares(node);
                // Holders 2..n each receive a seeded number of shares from the issuer, who keeps the rest.
                long perHolderMax = supply / holders;
                for (ulong h = 2; h <= (ulong)holders; h++)
                {
                    accounts.Add(ChartOfAccounts.NewAccount(AccountCode.ShareHolding, ChartOfAccounts.ShareHolding(h, node), shares));
                    transfers.Add(TokenTransfers.ShareTransfer(_key++, node, Issuer, h, _rng.NextInt64(1, perHolderMax)));
                }
            }
            Apply(accounts);
            Apply(transfers);
            if (!Registry.TryGet(LargeNode, out var large) || large.HolderCount != cfg.LargeHolders)
                throw new BenchFailure($"setup: the large node has {(large is null ? 0 : large.HolderCount)} holders, expected {cfg.LargeHolders}.");
        }

        public static UInt128 Payer(ulong node) => ChartOfAccounts.PrincipalAccount(AccountCode.NodeRevenue, node);

        /// <summary>Builds <paramref name="count"/> payments to <paramref name="node"/> (not timed) and applies them in one batch; returns its Stopwatch ticks.</summary>
        public long PayBatch(ulong node, int count)
        {
            UInt128 payer = Payer(node);
            long sum = 0;
            for (int i = 0; i < count; i++)
            {
                long amount = _rng.Next(1, 2_000_000);
                sum += amount;
                _batch[i] = TokenTransfers.Revenue(_key++, payer, node, amount);
            }
            long start = Stopwatch.GetTimestamp();
            Ledger.CreateTransfers(_batch.AsSpan(0, count), Ledger.NextBatchTimestamp(EpochNanoseconds), _results);
            long ticks = Stopwatch.GetTimestamp() - start;
            for (int i = 0; i < count; i++)
                if (_results[i] != CreateTransferResult.Ok) throw new BenchFailure($"payment {i} to node {node}: {_results[i]}");
            _paid[node] = checked(_paid[node] + sum);
            return ticks;
        }

        public void CheckSameBook(ShareRegistry rebuilt)
        {
            foreach (ulong node in (ReadOnlySpan<ulong>)[SmallNode, LargeNode])
            {
                Registry.TryGet(node, out var live);
                if (!rebuilt.TryGet(node, out var again) || again.Revenue != live.Revenue || again.HolderCount != live.HolderCount)
                    throw new BenchFailure($"rebuild: node {node} differs from the live registry.");
                foreach (ulong h in live.Holders())
                    if (again.HolderState(h) != live.HolderState(h)) throw new BenchFailure($"rebuild: holder {h} of node {node} differs.");
            }
        }

        public void CheckAgainst(NaiveShareBook naive, ulong node)
        {
            Registry.TryGet(node, out var acc);
            if (naive.Revenue(node) != acc.Revenue) throw new BenchFailure($"naive: R {naive.Revenue(node)} != {acc.Revenue}.");
            foreach (ulong h in acc.Holders())
                if (naive.Entitlement(node, h) != acc.Entitlement(h))
                    throw new BenchFailure($"naive: holder {h} entitled to {naive.Entitlement(node, h)}, accumulator {acc.Entitlement(h)}.");
            if (naive.Carry(node) != acc.Carry()) throw new BenchFailure("naive: the carries differ.");
        }

        public void CheckConservation()
        {
            foreach (var (node, paid) in _paid)
            {
                Registry.TryGet(node, out var acc);
                Ledger.TryGetAccount(ChartOfAccounts.SharePool(node), out Account pool);
                if (pool.CreditBalance != paid || acc.Revenue != paid || acc.ClaimedTotal != 0)
                    throw new BenchFailure($"node {node}: pool {pool.CreditBalance}, R {acc.Revenue}, paid {paid}.");
                try { acc.AssertInvariants(); }
                catch (InvalidOperationException e) { throw new BenchFailure(e.Message); }
            }
            try { Ledger.AssertInvariants(); }
            catch (InvalidOperationException e) { throw new BenchFailure("ledger: " + e.Message); }
        }

        private void Apply(List<Account> accounts)
        {
            var results = new CreateAccountResult[LedgerLimits.BatchEventsMax];
            var span = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(accounts);
            for (int start = 0; start < span.Length; start += LedgerLimits.BatchEventsMax)
            {
                int n = Math.Min(LedgerLimits.BatchEventsMax, span.Length - start);
                Ledger.CreateAccounts(span.Slice(start, n), Ledger.NextBatchTimestamp(EpochNanoseconds), results);
                for (int i = 0; i < n; i++)
                    if (results[i] != CreateAccountResult.Ok) throw new BenchFailure($"setup: account {start + i}: {results[i]}");
            }
        }

        private void Apply(List<Transfer> transfers)
        {
            var span = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(transfers);
            for (int start = 0; start < span.Length; start += LedgerLimits.BatchEventsMax)
            {
                int n = Math.Min(LedgerLimits.BatchEventsMax, span.Length - start);
                Ledger.CreateTransfers(span.Slice(start, n), Ledger.NextBatchTimestamp(EpochNanoseconds), _results);
                for (int i = 0; i < n; i++)
                    if (_results[i] != CreateTransferResult.Ok) throw new BenchFailure($"setup: transfer {start + i}: {_results[i]}");
            }
        }

        public void Dispose() => Ledger.Dispose();
    }

    /// <summary>Two observers, in order: the naive phase's accumulator and naive loop.</summary>
    private sealed class Tee(ILedgerObserver first, ILedgerObserver second) : ILedgerObserver
    {
        public void OnPosted(in Transfer transfer)
        {
            first.OnPosted(in transfer);
            second.OnPosted(in transfer);
        }
    }

    private static double Seconds(long ticks) => (double)ticks / Stopwatch.Frequency;

    private static long Median(long[] ticks)
    {
        var sorted = (long[])ticks.Clone();
        Array.Sort(sorted);
        return BenchStats.Percentile(sorted, 0.5);
    }

    private static void Collect() => BenchStats.Collect();

    private static void Line(TextWriter output, FormattableString text) => BenchStats.Line(output, text);

    private static string Json(Action<Utf8JsonWriter> body) => BenchStats.Json(body);
}
