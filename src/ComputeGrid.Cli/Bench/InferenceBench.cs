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
/// network), and the router over 1,000 nodes.
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
        output.WriteLine($"inference bench ({(quick ? "quick" : "full")}): {Environment.ProcessorCount} cores");

        // 1. The model alone, in process, at several batch sizes: the best is the reference.
        using var model = new MiniLmEmbeddingModel();
        ModelBenchmarkResult sweep = ModelBenchmark.RunSweep(model, Sentences, [1, 8, 32], each);
        foreach (BatchThroughput b in sweep.Results) output.WriteLine($"  model alone, batch {b.BatchSize,2}: {b.SentencesPerSecond:N1} sentences/s");
        double modelRate = sweep.Best.SentencesPerSecond;

        // 2. The whole path on loopback: a server with a durable ledger and one node running the same model.
        string dir = workDir ?? Path.Combine(Path.GetTempPath(), "cg-bench-inference-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        int port = FreePort();
        var app = ServerHost.Build(new ServerOptions
        {
            Urls = $"http://127.0.0.1:{port}",
            DataDirectory = dir,
            MinimumLogLevel = Microsoft.Extensions.Logging.LogLevel.Warning,
            Inference = new InferenceServerOptions { LocalNodes = [new LocalNodeSpec("bench-1", "dallas", 20, 64)] },
        });
        await app.StartAsync(ct);
        try
        {
            InferenceHost host = app.Services.GetRequiredService<InferenceHost>();
            for (int i = 0; i < 200 && host.Gateway.Registry.Count < 1; i++) await Task.Delay(25, ct);
            using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 64 }) { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
            string key = await CustomerAsync(http, dir, ct);

            // Warm up under the same load as the measurement (model load, connections, and the JIT's tiering — a short
            // warm-up leaves the JIT compiling through the measured window).
            var warm = Stopwatch.StartNew();
            await Parallel.ForEachAsync(Enumerable.Range(0, 32), new ParallelOptions { MaxDegreeOfParallelism = 32, CancellationToken = ct }, async (client, c) =>
            {
                int i = client;
                while (warm.Elapsed < each * 3) await EmbedAsync(http, key, Sentences[i++ % Sentences.Length], c);
            });

            // Throughput: 32 clients, one sentence per request.
            long sentences = 0, failures = 0;
            var sw = Stopwatch.StartNew();
            await Parallel.ForEachAsync(Enumerable.Range(0, 32), new ParallelOptions { MaxDegreeOfParallelism = 32, CancellationToken = ct }, async (client, c) =>
            {
                int i = client;
                while (sw.Elapsed < each * 2)
                {
                    var (ok, _, _) = await EmbedAsync(http, key, Sentences[i++ % Sentences.Length], c);
                    if (ok) Interlocked.Increment(ref sentences); else Interlocked.Increment(ref failures);
                }
            });
            double e2eRate = sentences / sw.Elapsed.TotalSeconds;
            output.WriteLine($"  end to end, 32 clients: {e2eRate:N1} sentences/s ({sentences:N0} requests, {failures} failed) = {e2eRate / modelRate:P1} of the model alone");

            // Overhead at moderate load: one client at a time.
            var overheads = new List<double>();
            var holds = new List<double>();
            var models = new List<double>();
            var servers = new List<double>();
            int n = quick ? 150 : 400;
            for (int i = 0; i < n; i++)
            {
                long start = Stopwatch.GetTimestamp();
                var (ok, modelMs, networkMs, holdMs) = await EmbedWithHoldAsync(http, key, Sentences[i % Sentences.Length], ct);
                double ms = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
                if (ok) { overheads.Add(ms - modelMs - networkMs); holds.Add(holdMs); models.Add(modelMs); servers.Add(LastServerMs - modelMs - networkMs); }
            }
            overheads.Sort();
            double p50 = overheads[overheads.Count / 2], p99 = overheads[(int)Math.Ceiling(overheads.Count * 0.99) - 1];
            output.WriteLine($"  overhead (latency − node model time − simulated network), 1 client: p50 {p50:F3} ms, p99 {p99:F3} ms over {overheads.Count} requests");
            holds.Sort();
            models.Sort();
            servers.Sort();
            output.WriteLine($"    inside the server (its time − model − network): p50 {servers[servers.Count / 2]:F3} ms, p99 {servers[(int)Math.Ceiling(servers.Count * 0.99) - 1]:F3} ms; the rest is HTTP on loopback and the client");
            output.WriteLine($"    the ledger hold (answered once applied, overlapped with the model): p50 {holds[holds.Count / 2]:F3} ms, p99 {holds[(int)Math.Ceiling(holds.Count * 0.99) - 1]:F3} ms; model p50 {models[models.Count / 2]:F3} ms");

            // The router over 1,000 nodes.
            RouterBenchmarkResult router = RouterBenchmark.Run(1_000, TimeSpan.FromSeconds(quick ? 1 : 3), 7);
            output.WriteLine($"  router: {router.DecisionsPerSecond:N0} decisions/s over {router.Nodes:N0} nodes in {router.Regions} regions, {router.AllocatedBytes} bytes allocated");

            var metrics = new SortedDictionary<string, object>(StringComparer.Ordinal)
            {
                ["model_sentences_per_s"] = Math.Round(modelRate, 1),
                ["model_best_batch"] = sweep.Best.BatchSize,
                ["e2e_sentences_per_s"] = Math.Round(e2eRate, 1),
                ["e2e_vs_model"] = Math.Round(e2eRate / modelRate, 3),
                ["overhead_p50_ms"] = Math.Round(p50, 3),
                ["overhead_p99_ms"] = Math.Round(p99, 3),
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
        }
    }

    private static async Task<string> CustomerAsync(HttpClient http, string dir, CancellationToken ct)
    {
        string token = (await File.ReadAllTextAsync(Path.Combine(dir, "inference", "operator-token.txt"), ct)).Trim();
        using var create = new HttpRequestMessage(HttpMethod.Post, "/api/inference/customers") { Content = JsonContent.Create(new { name = "bench", region = "dallas" }) };
        create.Headers.Authorization = new("Bearer", token);
        var created = JsonDocument.Parse(await (await http.SendAsync(create, ct)).Content.ReadAsStringAsync(ct)).RootElement;
        using var fund = new HttpRequestMessage(HttpMethod.Post, $"/api/inference/customers/{created.GetProperty("id").GetUInt64()}/fund") { Content = JsonContent.Create(new { amount_micro_usd = 1_000_000_000_000L }) };
        fund.Headers.Authorization = new("Bearer", token);
        (await http.SendAsync(fund, ct)).EnsureSuccessStatusCode();
        return created.GetProperty("api_key").GetString()!;
    }

    private static async Task<(bool Ok, double ModelMs, double NetworkMs)> EmbedAsync(HttpClient http, string key, string sentence, CancellationToken ct)
    {
        var (ok, model, network, _) = await EmbedWithHoldAsync(http, key, sentence, ct);
        return (ok, model, network);
    }

    private static async Task<(bool Ok, double ModelMs, double NetworkMs, double HoldMs)> EmbedWithHoldAsync(HttpClient http, string key, string sentence, CancellationToken ct)
    {
        using var req = new HttpRequestMessage(HttpMethod.Post, "/v1/embeddings")
        {
            Content = new StringContent($$"""{"model":"all-MiniLM-L6-v2","input":{{JsonSerializer.Serialize(sentence)}},"encoding_format":"base64"}""", Encoding.UTF8, "application/json"),
        };
        req.Headers.Authorization = new("Bearer", key);
        using HttpResponseMessage r = await http.SendAsync(req, ct);
        await r.Content.ReadAsByteArrayAsync(ct);
        if (r.StatusCode != HttpStatusCode.OK) return (false, 0, 0, 0);
        double modelMs = double.Parse(r.Headers.GetValues("X-CG-Model-Ms").Single(), CultureInfo.InvariantCulture);
        double networkMs = double.Parse(r.Headers.GetValues("X-CG-Simulated-Network-Ms").Single(), CultureInfo.InvariantCulture);
        double holdMs = double.Parse(r.Headers.GetValues("X-CG-Hold-Ms").Single(), CultureInfo.InvariantCulture);
        LastServerMs = double.Parse(r.Headers.GetValues("X-CG-Server-Ms").Single(), CultureInfo.InvariantCulture);
        return (true, modelMs, networkMs, holdMs);
    }

    [ThreadStatic] private static double LastServerMs;

    private static int FreePort()
    {
        using var l = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }
}
