using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using ComputeGrid.Inference.Model;
using ComputeGrid.Inference.Routing;
using ComputeGrid.Server;
using ComputeGrid.Server.Inference;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;

namespace ComputeGrid.Cli.Bench;

/// <summary>
/// <c>computegrid bench inference</c>: the model alone (best batching), the whole paid path on loopback (HTTP, API
/// key, routing, durable ledger hold and settlement, a node running the real model) with 32 concurrent clients, the
/// overhead of that path at moderate load (end-to-end latency minus the node's model time and the simulated
/// network), and the router over 1,000 nodes. The overhead is measured in blocks that alternate with the machine's
/// floor (<see cref="OverheadFloor"/>: the same client against a bare Kestrel whose one thread computes as long as the
/// model), so what the paid path adds can be read apart from what the machine costs any such request.
/// </summary>
internal static class InferenceBench
{
    private static readonly string[] Sentences =
    [
        "A man is playing a guitar.", "Someone plays the guitar on a small stage.", "The stock market fell sharply today.",
        "ComputeGrid sells GPU capacity like a commodity.", "Bitcoin miners soak up cheap power at night.",
        "Embeddings turn sentences into vectors.", "The ledger settles every request in micro-dollars.",
        "A quick brown fox jumps over the lazy dog.", "Frankfurt and Tokyo are far apart on the network.",
        "Prices spike when the grid is stressed in August.", "The node in Dallas answered first.", "Holders receive revenue pro rata.",
    ];

    public static async Task<int> RunAsync(bool quick, string? workDir, TextWriter output, CancellationToken ct)
    {
        var total = Stopwatch.StartNew();
        TimeSpan each = TimeSpan.FromSeconds(quick ? 2 : 5);
        int rounds = quick ? 2 : 4;
        output.WriteLine($"inference bench ({(quick ? "quick" : "full")}): {Environment.ProcessorCount} cores");

        // 1. The model alone, in process, at several batch sizes, both as one call over every core and as the server
        // runs it (ModelParallelism: single-threaded calls side by side). Each configuration keeps its best batch; the
        // rounds below measure both again and take the faster as the reference, whichever the server runs.
        ModelParallelism served = ModelParallelism.Default;
        var configurations = new List<ModelParallelism> { new(1, Environment.ProcessorCount) };
        if (!configurations.Contains(served)) configurations.Add(served);
        var references = new List<(ModelParallelism Configuration, MiniLmEmbeddingModel Model, int Batch)>();
        BatchThroughput best = default;
        ModelParallelism bestConfiguration = default;
        foreach (ModelParallelism configuration in configurations)
        {
            var model = new MiniLmEmbeddingModel(configuration.IntraOpThreads);
            ModelBenchmarkResult sweep = ModelBenchmark.RunSweep(model, Sentences, [1, 8, 32], each, configuration.Workers);
            foreach (BatchThroughput b in sweep.Results)
                output.WriteLine($"  model alone, {configuration}, batch {b.BatchSize,2}: {b.SentencesPerSecond:N1} sentences/s");
            references.Add((configuration, model, sweep.Best.BatchSize));
            if (sweep.Best.SentencesPerSecond > best.SentencesPerSecond) (best, bestConfiguration) = (sweep.Best, configuration);
        }
        output.WriteLine($"  best in the sweep: {bestConfiguration}, batch {best.BatchSize}; the server runs the model as {served}");

        // 2. The whole path on loopback: a server with a durable ledger and one node running the same model.
        string dir = workDir ?? Path.Combine(Path.GetTempPath(), "cg-bench-inference-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        var app = ServerHost.Build(new ServerOptions
        {
            Urls = "http://127.0.0.1:0",
            DataDirectory = dir,
            MinimumLogLevel = Microsoft.Extensions.Logging.LogLevel.Warning,
            Inference = new InferenceServerOptions { LocalNodes = [new LocalNodeSpec("bench-1", "dallas", 20, 64)], ModelParallelism = served },
            // The bench drives one customer at the fleet's full throughput; its rate limit is raised out of the way (the
            // limiter still runs on every request), so what is measured is the paid path, not the default per-customer limit.
            Limits = new ComputeGrid.Server.Trust.ServerLimits { Customer = new ComputeGrid.Server.Trust.RateLimit(1_000_000, 1_000_000) },
        });
        await app.StartAsync(ct);
        try
        {
            InferenceHost host = app.Services.GetRequiredService<InferenceHost>();
            for (int i = 0; i < 200 && host.Gateway.Registry.Count < 1; i++) await Task.Delay(25, ct);
            using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 64 }) { BaseAddress = new Uri(ServerHost.Endpoints(app).ApiUrl) };
            string key = await CustomerAsync(http, dir, ct);
            EmbeddingBatcher batcher = app.Services.GetRequiredService<LocalNodes>().All[0].Channel.Batcher;

            // Warm up under the load to be measured until the JIT has settled: on few cores its tiering (tier 0 →
            // instrumented → tier 1, also of the framework's precompiled code) competes with the model for many
            // seconds, and a fixed short warm-up leaves it compiling through the window.
            TimeSpan loaded = await WarmUpAsync(() => LoadAsync(http, key, TimeSpan.FromSeconds(1), ct), quick ? 30 : 90);
            output.WriteLine($"  warm-up, 32 clients: {loaded.TotalSeconds:F1} s until the JIT compiled for under 1 % of a second");

            // Throughput: 32 clients, one sentence per request, in rounds that alternate with the model alone (each
            // configuration at its best batch; the faster of them that round), so a change in the machine's speed
            // during the run hits both alike.
            long sentences = 0, failures = 0, referenceSentences = 0;
            TimeSpan e2eTime = TimeSpan.Zero, referenceTime = TimeSpan.Zero;
            TimeSpan jitAtStart = System.Runtime.JitInfo.GetCompilationTime();
            EmbeddingBatcherStats batchesBefore = batcher.Stats;
            var ratios = new List<double>();
            for (int round = 0; round < rounds; round++)
            {
                BatchThroughput alone = default;
                foreach (var (configuration, model, batch) in references)
                {
                    BatchThroughput measured = ModelBenchmark.RunSweep(model, Sentences, [batch], each, configuration.Workers).Best;
                    if (measured.SentencesPerSecond > alone.SentencesPerSecond) alone = measured;
                }
                var (ok, failed, elapsed) = await LoadAsync(http, key, each, ct);
                sentences += ok;
                failures += failed;
                e2eTime += elapsed;
                referenceSentences += alone.Sentences;
                referenceTime += alone.Elapsed;
                ratios.Add(ok / elapsed.TotalSeconds / alone.SentencesPerSecond);
                output.WriteLine($"  round {round + 1}: model alone {alone.SentencesPerSecond:N1} sentences/s ({alone.Workers} worker{(alone.Workers == 1 ? "" : "s")}, batch {alone.BatchSize}), end to end {ok / elapsed.TotalSeconds:N1} = {ratios[^1]:P1}");
            }
            double modelRate = referenceSentences / referenceTime.TotalSeconds;
            double e2eRate = sentences / e2eTime.TotalSeconds;
            TimeSpan jitInWindow = System.Runtime.JitInfo.GetCompilationTime() - jitAtStart;
            EmbeddingBatcherStats batchesAfter = batcher.Stats;
            long batchesRun = batchesAfter.BatchesRun - batchesBefore.BatchesRun;
            double modelBusy = (batchesAfter.ModelTime - batchesBefore.ModelTime) / (e2eTime * served.Workers);
            output.WriteLine($"  end to end, 32 clients: {e2eRate:N1} sentences/s ({sentences:N0} requests, {failures} failed) = {e2eRate / modelRate:P1} of the model alone ({modelRate:N1}); the JIT compiled for {jitInWindow.TotalMilliseconds:F0} ms in the rounds");
            output.WriteLine($"    {batchesRun:N0} batches of {(batchesAfter.SentencesEmbedded - batchesBefore.SentencesEmbedded) / (double)Math.Max(1, batchesRun):F1} sentences on average; the model workers were busy {modelBusy:P0} of the end-to-end time");

            // The floor under the overhead: a bare GET /healthz on the same loopback connection and client.
            var floor = new List<double>();
            for (int i = 0; i < 300; i++)
            {
                long start = Stopwatch.GetTimestamp();
                using HttpResponseMessage r = await http.GetAsync("/healthz", ct);
                await r.Content.ReadAsByteArrayAsync(ct);
                if (i >= 100) floor.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
            }
            var (healthP50, healthP99) = Quantiles(floor);
            output.WriteLine($"  loopback floor (GET /healthz, 1 client): p50 {healthP50:F3} ms, p99 {healthP99:F3} ms");

            // Overhead at moderate load: one client at a time, after its own settled warm-up (stricter: a tier-1
            // compile of a few milliseconds on the core the model leaves free is exactly the size of the tail being
            // measured). The server's periodic work is warmed too: the ledger's checkpoint (every 30 s) compiled its
            // Merkle-tree code inside this window when it was not.
            var ledger = app.Services.GetRequiredService<ComputeGrid.Ledger.LedgerEngine>();
            for (int i = 0; i < 40; i++) await ledger.CheckpointAsync(ct);
            TimeSpan single = await WarmUpAsync(() => ProbeAsync(http, key, 200, ct), quick ? 15 : 40, jitShare: 0.002);
            output.WriteLine($"  warm-up, 1 client: {single.TotalSeconds:F1} s, until the JIT compiled for under 0.2 % of the last 200 requests");

            int n = quick ? 200 : 1_000; // the full run's p99 rests on its 10 slowest requests, not 5

            // The machine's floor, measured in the same window (blocks of 20 requests, alternating): the same client and
            // request against a bare Kestrel whose one thread computes as long as the model call does (see OverheadFloor).
            TimeSpan compute = TimeSpan.FromMilliseconds(Quantiles(await ProbeAsync(http, key, 50, ct), s => s.Model).P50);
            int responseBytes = (await EmbedAsync(http, key, ProbeSentence(0), ct))?.Bytes ?? throw new InvalidOperationException("the paid path refused the probe request");
            await using OverheadFloor floorService = await OverheadFloor.StartAsync(compute, responseBytes, ct);
            using var floorHttp = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 64 });
            TimeSpan floorWarm = await WarmUpAsync(() => ProbeAlternatingAsync(http, key, floorHttp, floorService.Url, 200, ct), quick ? 15 : 30, jitShare: 0.002);
            output.WriteLine($"  warm-up of the floor service (computing {compute.TotalMilliseconds:F2} ms per request, the model's median), alternating with the paid path: {floorWarm.TotalSeconds:F1} s");
            HiccupMeter.Summary idleMachine;
            using (var idle = new HiccupMeter())
            {
                await Task.Delay(TimeSpan.FromSeconds(2), ct);
                idleMachine = idle.Stop();
            }
            int gc0 = GC.CollectionCount(0), gc1 = GC.CollectionCount(1), gc2 = GC.CollectionCount(2);
            TimeSpan paused = GC.GetTotalPauseDuration();
            using var hiccups = new HiccupMeter();
            TimeSpan jitBeforeProbe = System.Runtime.JitInfo.GetCompilationTime();
            var (samples, floorOverheads) = await ProbeAlternatingAsync(http, key, floorHttp, floorService.Url, n, ct);
            TimeSpan jitInProbe = System.Runtime.JitInfo.GetCompilationTime() - jitBeforeProbe;
            HiccupMeter.Summary machine = hiccups.Stop();
            output.WriteLine($"    the machine itself (a thread sleeping 1 ms, over and over): {machine.Samples:N0} sleeps, {machine.Over1Ms} overslept by over 1 ms, the worst by {machine.WorstMs:F1} ms; with the process idle: {idleMachine.Samples:N0} sleeps, {idleMachine.Over1Ms} over 1 ms, the worst by {idleMachine.WorstMs:F1} ms");
            if (machine.StealMs is { } stolen)
                output.WriteLine($"    the hypervisor took {stolen:F0} ms of CPU from this virtual machine during the window (steal, all CPUs; {idleMachine.StealMs:F0} ms in the idle 2 s)");
            output.WriteLine($"    the JIT compiled for {jitInProbe.TotalMilliseconds:F1} ms during the overhead window");
            output.WriteLine($"    GCs in the overhead window: gen0 {GC.CollectionCount(0) - gc0}, gen1 {GC.CollectionCount(1) - gc1}, gen2 {GC.CollectionCount(2) - gc2}, paused {(GC.GetTotalPauseDuration() - paused).TotalMilliseconds:F1} ms");
            // The slowest requests, taken apart: where a tail comes from (the server, the node's queue, or outside both).
            DescribeTail(output, samples);
            var (p50, p99) = Quantiles(samples, s => s.Overhead);
            var (serverP50, serverP99) = Quantiles(samples, s => s.Server);
            var (handlerP50, handlerP99) = Quantiles(samples, s => s.Handler);
            var (holdP50, holdP99) = Quantiles(samples, s => s.Hold);
            output.WriteLine($"  overhead (latency − node model time − simulated network), 1 client: p50 {p50:F3} ms, p99 {p99:F3} ms over {samples.Count} requests");
            var (floorP50, floorP99) = Quantiles(floorOverheads);
            output.WriteLine($"    the machine's floor in the same window (bare Kestrel, same client, one thread computing as long as the model; no key, JSON, router, ledger or model): p50 {floorP50:F3} ms, p99 {floorP99:F3} ms, {floorOverheads.Count(o => o > 1)} of {floorOverheads.Count} over 1 ms; the paid path adds p50 {p50 - floorP50:F3} ms, p99 {p99 - floorP99:F3} ms");
            output.WriteLine($"    inside the server (its time − model − network): p50 {serverP50:F3} ms, p99 {serverP99:F3} ms; the rest is HTTP on loopback and the client");
            output.WriteLine($"      of which in the endpoint's handler (from its entry): p50 {handlerP50:F3} ms, p99 {handlerP99:F3} ms; before it (the trust boundary, routing, binding): p50 {serverP50 - handlerP50:F3} ms");
            output.WriteLine($"    the ledger hold (answered once applied, overlapped with the model): p50 {holdP50:F3} ms, p99 {holdP99:F3} ms; model p50 {Quantiles(samples, s => s.Model).P50:F3} ms");

            // The same probe from a separate process, as a customer's program is: its own GC, JIT and threads.
            HiccupMeter.Summary childMachine;
            ChildProbe child;
            using (var childHiccups = new HiccupMeter())
            {
                child = await ProbeInChildAsync(ServerHost.Endpoints(app).ApiUrl, key, n, quick ? 15 : 40, ct);
                childMachine = childHiccups.Stop();
            }
            DescribeTail(output, child.Samples);
            var (childP50, childP99) = Quantiles(child.Samples, s => s.Overhead);
            var (childServerP50, childServerP99) = Quantiles(child.Samples, s => s.Server);
            output.WriteLine($"  overhead, 1 client in its own process (warmed {child.WarmSeconds:F1} s; it compiled {child.JitMs:F1} ms and collected gen0 {child.Gc0}× in the window): p50 {childP50:F3} ms, p99 {childP99:F3} ms over {child.Samples.Count} requests; in the server p50 {childServerP50:F3}, p99 {childServerP99:F3} ms");
            output.WriteLine($"    the machine meanwhile (with the probe process's start and warm-up): {childMachine.Samples:N0} sleeps, {childMachine.Over1Ms} overslept by over 1 ms, the worst by {childMachine.WorstMs:F1} ms; steal {childMachine.StealMs:F0} ms");

            // The router over 1,000 nodes.
            RouterBenchmarkResult router = RouterBenchmark.Run(1_000, TimeSpan.FromSeconds(quick ? 1 : 3), 7);
            output.WriteLine($"  router: {router.DecisionsPerSecond:N0} decisions/s over {router.Nodes:N0} nodes in {router.Regions} regions, {router.AllocatedBytes} bytes allocated");

            var metrics = new SortedDictionary<string, object>(StringComparer.Ordinal)
            {
                ["model_sentences_per_s"] = Math.Round(modelRate, 1),
                ["model_best_batch"] = best.BatchSize,
                ["model_best_workers"] = bestConfiguration.Workers,
                ["model_best_threads_per_call"] = bestConfiguration.IntraOpThreads,
                ["e2e_sentences_per_s"] = Math.Round(e2eRate, 1),
                ["e2e_vs_model"] = Math.Round(e2eRate / modelRate, 3),
                ["overhead_p50_ms"] = Math.Round(p50, 3),
                ["overhead_p99_ms"] = Math.Round(p99, 3),
                ["overhead_floor_p50_ms"] = Math.Round(floorP50, 3),
                ["overhead_floor_p99_ms"] = Math.Round(floorP99, 3),
                ["overhead_in_server_p50_ms"] = Math.Round(serverP50, 3),
                ["overhead_in_server_p99_ms"] = Math.Round(serverP99, 3),
                ["overhead_in_handler_p50_ms"] = Math.Round(handlerP50, 3),
                ["overhead_separate_client_p50_ms"] = Math.Round(childP50, 3),
                ["overhead_separate_client_p99_ms"] = Math.Round(childP99, 3),
                ["overhead_window_jit_ms"] = Math.Round(jitInProbe.TotalMilliseconds, 1),
                ["overhead_window_machine_stalls_over_1ms"] = machine.Over1Ms,
                ["overhead_window_steal_ms"] = machine.StealMs is { } steal ? Math.Round(steal) : -1,
                ["router_decisions_per_s"] = Math.Round(router.DecisionsPerSecond),
                ["e2e_failures"] = failures,
                ["quick"] = quick ? 1 : 0,
                ["total_seconds"] = Math.Round(total.Elapsed.TotalSeconds, 1),
            };
            output.WriteLine(JsonSerializer.Serialize(new { bench = "inference", metrics }));
            return 0;
        }
        finally
        {
            await app.StopAsync(CancellationToken.None);
            await app.DisposeAsync();
            if (workDir is null) Directory.Delete(dir, recursive: true);
            foreach (var reference in references) reference.Model.Dispose();
        }
    }

    /// <summary>
    /// The tail taken apart (before the lists are sorted): the three slowest requests, and of all requests over 1 ms of
    /// overhead, how many owe most of it to the server, to the node's queue, or to outside both (HTTP and the client).
    /// </summary>
    private static void DescribeTail(TextWriter output, List<Sample> samples)
    {
        foreach (var (s, i) in samples.Select((s, i) => (s, i)).OrderByDescending(x => x.s.Overhead).Take(3))
            output.WriteLine($"    slow #{i}: overhead {s.Overhead:F3} ms = server {s.Server:F3} (node queue {s.Queue:F3}) + outside {s.Overhead - s.Server:F3}; model {s.Model:F3}, hold {s.Hold:F3}");
        var slow = samples.Where(s => s.Overhead > 1).ToList();
        int queue = slow.Count(s => s.Queue > s.Overhead / 2);
        int server = slow.Count(s => s.Queue <= s.Overhead / 2 && s.Server > s.Overhead / 2);
        output.WriteLine($"    {slow.Count} of {samples.Count} requests over 1 ms: most of it in the node's queue in {queue}, elsewhere in the server in {server}, outside the server in {slow.Count - queue - server}");
    }

    /// <summary>The median and the nearest-rank 99th percentile of one measure of the samples.</summary>
    private static (double P50, double P99) Quantiles(List<Sample> samples, Func<Sample, double> measure) => Quantiles(samples.Select(measure));

    /// <summary>The median and the nearest-rank 99th percentile of <paramref name="values"/>.</summary>
    private static (double P50, double P99) Quantiles(IEnumerable<double> values)
    {
        var sorted = values.Order().ToList();
        return (sorted[sorted.Count / 2], BenchStats.Percentile(sorted, 0.99));
    }

    /// <summary>
    /// Runs <paramref name="slice"/> until one spends under <paramref name="jitShare"/> of its wall time in the JIT,
    /// or <paramref name="maxSeconds"/> pass.
    /// </summary>
    private static async Task<TimeSpan> WarmUpAsync(Func<Task> slice, int maxSeconds, double jitShare = 0.01)
    {
        var warm = Stopwatch.StartNew();
        while (true)
        {
            TimeSpan jitBefore = System.Runtime.JitInfo.GetCompilationTime();
            var sliceTime = Stopwatch.StartNew();
            await slice();
            if ((System.Runtime.JitInfo.GetCompilationTime() - jitBefore) < sliceTime.Elapsed * jitShare || warm.Elapsed.TotalSeconds > maxSeconds) return warm.Elapsed;
        }
    }

    /// <summary>
    /// One client, <paramref name="count"/> requests back to back: per request the overhead (latency − model −
    /// simulated network), the server's share of it, the node's queue, the model and the hold. The warm-up runs this
    /// same method, so the JIT has tiered the measured code before the window.
    /// </summary>
    private static async Task<List<Sample>> ProbeAsync(HttpClient http, string key, int count, CancellationToken ct)
    {
        var samples = new List<Sample>(count);
        for (int i = 0; i < count; i++)
        {
            long start = Stopwatch.GetTimestamp();
            Receipt? r = await EmbedAsync(http, key, ProbeSentence(i), ct);
            double ms = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            if (r is null) continue;
            samples.Add(new Sample(ms - r.ModelMs - r.NetworkMs, r.ServerMs - r.ModelMs - r.NetworkMs, r.QueueMs, r.ModelMs, r.HoldMs, r.HandlerMs - r.ModelMs - r.NetworkMs));
        }
        return samples;
    }

    /// <summary>
    /// <paramref name="count"/> probe requests to the paid path and as many to the floor service, in alternating blocks of
    /// 20, so both see the same phases of the machine. Its own method, warmed up as called: a loop in the bench's long
    /// method was compiled on the stack (on-stack replacement) inside the measured window.
    /// </summary>
    private static async Task<(List<Sample> Paid, List<double> Floor)> ProbeAlternatingAsync(
        HttpClient http, string key, HttpClient floorHttp, Uri floorUrl, int count, CancellationToken ct)
    {
        var paid = new List<Sample>(count);
        var floor = new List<double>(count);
        for (int block = 0; block < count; block += 20)
        {
            paid.AddRange(await ProbeAsync(http, key, Math.Min(20, count - block), ct));
            floor.AddRange(await OverheadFloor.ProbeAsync(floorHttp, floorUrl, key, Math.Min(20, count - block), ct));
        }
        return (paid, floor);
    }

    /// <summary>One probe request, in ms: its overhead (latency − model − simulated network), the server's share of it, the node's queue, the model and the ledger hold.</summary>
    // Server: from the first middleware (the whole pipeline: the trust boundary, routing, binding); Handler: from the
    // endpoint's handler (what the server's own time meant before the trust boundary was drawn), both less model and network.
    private readonly record struct Sample(double Overhead, double Server, double Queue, double Model, double Hold, double Handler);

    /// <summary>The probe run in its own process: its samples, its warm-up, and its JIT and gen0 collections in the window.</summary>
    private sealed record ChildProbe(List<Sample> Samples, double WarmSeconds, double JitMs, int Gc0);

    /// <summary>
    /// The one-client probe as its own process (<c>computegrid bench-probe URL COUNT WARM_SECONDS</c>, hidden; the API key
    /// in <c>CG_PROBE_KEY</c>): a customer's program is not the server's, so its GC, JIT, thread pool and socket threads
    /// should not be either. It warms up as the in-process probe does, then prints one line per request:
    /// <c>r overhead server queue model hold</c> (ms), and last <c>end warm_s jit_ms gc0</c>.
    /// </summary>
    public static async Task<int> ProbeChildAsync(Uri server, int count, int warmSeconds, TextWriter output, CancellationToken ct)
    {
        string key = Environment.GetEnvironmentVariable("CG_PROBE_KEY") ?? "";
        using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 1 }) { BaseAddress = server };
        TimeSpan warm = await WarmUpAsync(() => ProbeAsync(http, key, 200, ct), warmSeconds, jitShare: 0.002);
        TimeSpan jitBefore = System.Runtime.JitInfo.GetCompilationTime();
        int gc0 = GC.CollectionCount(0);
        List<Sample> samples = await ProbeAsync(http, key, count, ct);
        if (samples.Count == 0) return CliDefaults.Fail($"no request to {server} succeeded; CG_PROBE_KEY must hold a funded API key");
        double jitMs = (System.Runtime.JitInfo.GetCompilationTime() - jitBefore).TotalMilliseconds;
        gc0 = GC.CollectionCount(0) - gc0;
        var text = new StringBuilder();
        foreach (Sample x in samples)
            text.Append(CultureInfo.InvariantCulture, $"r {x.Overhead:R} {x.Server:R} {x.Queue:R} {x.Model:R} {x.Hold:R} {x.Handler:R}\n");
        text.Append(CultureInfo.InvariantCulture, $"end {warm.TotalSeconds:R} {jitMs:R} {gc0}\n");
        await output.WriteAsync(text.ToString());
        return 0;
    }

    /// <summary>Runs <see cref="ProbeChildAsync"/> in a child process and reads its lines back.</summary>
    private static async Task<ChildProbe> ProbeInChildAsync(
        string url, string key, int count, int warmSeconds, CancellationToken ct)
    {
        var psi = ComputeGrid.Cli.Inference.DemoFleet.SelfStartInfo();
        foreach (string a in new[] { "bench-probe", url, count.ToString(CultureInfo.InvariantCulture), warmSeconds.ToString(CultureInfo.InvariantCulture) }) psi.ArgumentList.Add(a);
        psi.Environment["CG_PROBE_KEY"] = key;
        psi.RedirectStandardOutput = true;
        psi.RedirectStandardError = true;
        using var p = Process.Start(psi)!;
        var stderr = p.StandardError.ReadToEndAsync(ct);
        string stdout = await p.StandardOutput.ReadToEndAsync(ct);
        await p.WaitForExitAsync(ct);
        if (p.ExitCode != 0) throw new InvalidOperationException($"the probe process failed ({p.ExitCode}): {(await stderr).Trim()}");
        var samples = new List<Sample>(count);
        ChildProbe? result = null;
        foreach (string line in stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            string[] f = line.Split(' ');
            double F(int i) => double.Parse(f[i], CultureInfo.InvariantCulture);
            if (f[0] == "r") samples.Add(new Sample(F(1), F(2), F(3), F(4), F(5), F(6)));
            else if (f[0] == "end") result = new ChildProbe(samples, F(1), F(2), int.Parse(f[3], CultureInfo.InvariantCulture));
        }
        if (result is null || samples.Count == 0) throw new InvalidOperationException("the probe process returned no requests");
        return result;
    }

    /// <summary>32 clients, each sending one sentence per request back to back for <paramref name="duration"/>.</summary>
    private static async Task<(long Ok, long Failed, TimeSpan Elapsed)> LoadAsync(HttpClient http, string key, TimeSpan duration, CancellationToken ct)
    {
        long ok = 0, failed = 0;
        var sw = Stopwatch.StartNew();
        await Parallel.ForEachAsync(Enumerable.Range(0, 32), new ParallelOptions { MaxDegreeOfParallelism = 32, CancellationToken = ct }, async (client, c) =>
        {
            int i = client;
            while (sw.Elapsed < duration)
            {
                if (await EmbedAsync(http, key, ProbeSentence(i++), c) is not null) Interlocked.Increment(ref ok);
                else Interlocked.Increment(ref failed);
            }
        });
        return (ok, failed, sw.Elapsed);
    }

    private static async Task<string> CustomerAsync(HttpClient http, string dir, CancellationToken ct)
    {
        // As an operator would: the first operator's key from the data folder creates and funds the bench's customer.
        string token = (await File.ReadAllTextAsync(Path.Combine(dir, ComputeGrid.Server.Trust.OperatorKeyFile.FileName), ct)).Trim();
        using var create = new HttpRequestMessage(HttpMethod.Post, "/api/customers") { Content = JsonContent.Create(new { name = "bench-" + Guid.NewGuid().ToString("N")[..8], region = "dallas" }) };
        create.Headers.Authorization = new("Bearer", token);
        using var createdResponse = await http.SendAsync(create, ct);
        createdResponse.EnsureSuccessStatusCode();
        var created = JsonDocument.Parse(await createdResponse.Content.ReadAsStringAsync(ct)).RootElement;
        ulong id = created.GetProperty("principal").GetProperty("id").GetUInt64();
        using var fund = new HttpRequestMessage(HttpMethod.Post, $"/api/customers/{id}/fund") { Content = JsonContent.Create(new { amount = 1_000_000_000_000L, funding_id = "bench" }) };
        fund.Headers.Authorization = new("Bearer", token);
        (await http.SendAsync(fund, ct)).EnsureSuccessStatusCode();
        return created.GetProperty("api_key").GetString()!;
    }

    /// <summary>The probe's <paramref name="i"/>-th sentence.</summary>
    internal static string ProbeSentence(int i) => Sentences[i % Sentences.Length];

    /// <summary>The probe's request (the floor service gets the very same bytes): one sentence, base64 vectors.</summary>
    internal static HttpRequestMessage EmbeddingRequest(Uri target, string key, string sentence)
    {
        var req = new HttpRequestMessage(HttpMethod.Post, target)
        {
            Content = new StringContent($$"""{"model":"all-MiniLM-L6-v2","input":{{JsonSerializer.Serialize(sentence)}},"encoding_format":"base64"}""", Encoding.UTF8, "application/json"),
        };
        req.Headers.Authorization = new("Bearer", key);
        return req;
    }

    /// <summary>One embeddings request; its receipt headers, or null when it did not succeed.</summary>
    private static async Task<Receipt?> EmbedAsync(HttpClient http, string key, string sentence, CancellationToken ct)
    {
        using HttpRequestMessage req = EmbeddingRequest(new Uri("/v1/embeddings", UriKind.Relative), key, sentence);
        using HttpResponseMessage r = await http.SendAsync(req, ct);
        byte[] body = await r.Content.ReadAsByteArrayAsync(ct);
        if (r.StatusCode != HttpStatusCode.OK) return null;
        double Ms(string header) => double.Parse(r.Headers.GetValues(header).Single(), CultureInfo.InvariantCulture);
        return new Receipt(Ms("X-CG-Model-Ms"), Ms("X-CG-Simulated-Network-Ms"), Ms("X-CG-Hold-Ms"), Ms("X-CG-Server-Ms"), Ms("X-CG-Queue-Ms"), body.Length, Ms("X-CG-Handler-Ms"));
    }

    /// <summary>The timings a response's receipt headers carry, in ms.</summary>
    private sealed record Receipt(double ModelMs, double NetworkMs, double HoldMs, double ServerMs, double QueueMs, int Bytes, double HandlerMs);

    /// <summary>
    /// A jHiccup-style meter: a thread that sleeps 1 ms over and over and records how late it wakes. Stalls it sees
    /// come from the machine (a busy or descheduled virtual CPU, a GC pause), not from the request path. Beside it, the
    /// time the hypervisor took from this virtual machine's CPUs meanwhile (Linux's "steal" in /proc/stat): time in
    /// which a thread the guest believes is running is not.
    /// </summary>
    private sealed class HiccupMeter : IDisposable
    {
        private readonly Thread _thread;
        private readonly List<double> _late = new();
        private readonly long? _stealAtStart = StealTicks();
        private volatile bool _stop;

        public HiccupMeter()
        {
            _thread = new Thread(() =>
            {
                while (!_stop)
                {
                    long start = Stopwatch.GetTimestamp();
                    Thread.Sleep(1);
                    double late = Stopwatch.GetElapsedTime(start).TotalMilliseconds - 1;
                    lock (_late) _late.Add(late);
                }
            }) { IsBackground = true, Name = "hiccup-meter" };
            _thread.Start();
        }

        /// <summary>Sleeps, how many overslept by over 1 ms, the worst, and the CPU time stolen by the hypervisor (ms, all CPUs; null where unknown).</summary>
        public readonly record struct Summary(int Samples, int Over1Ms, double WorstMs, double? StealMs);

        public Summary Stop()
        {
            _stop = true;
            _thread.Join();
            double? steal = _stealAtStart is { } start && StealTicks() is { } end ? (end - start) * 10.0 : null; // USER_HZ is 100 on Linux
            lock (_late) return new Summary(_late.Count, _late.Count(l => l > 1), _late.Count == 0 ? 0 : _late.Max(), steal);
        }

        // The 8th value of /proc/stat's "cpu" line: ticks (1/USER_HZ s) stolen from all CPUs since boot.
        private static long? StealTicks()
        {
            try
            {
                using var reader = new StreamReader("/proc/stat");
                string[] f = (reader.ReadLine() ?? "").Split(' ', StringSplitOptions.RemoveEmptyEntries);
                return f.Length > 8 && f[0] == "cpu" && long.TryParse(f[8], CultureInfo.InvariantCulture, out long ticks) ? ticks : null;
            }
            catch (IOException) { return null; }
            catch (UnauthorizedAccessException) { return null; }
        }

        public void Dispose() => Stop();
    }
}
