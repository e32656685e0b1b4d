using System.Diagnostics;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using ComputeGrid.Server;
using Microsoft.AspNetCore.Builder;

namespace ComputeGrid.Cli.Bench;

/// <summary>What the HTTP batch run measured.</summary>
public sealed record ApiBatchRun(double OrdersPerSecond, long Orders, long Accepted, long Fills, int BatchSize, int Clients, double RequestP50Ms, double RequestP99Ms,
    double JournalCommandsPerSecond, double StateMachineCommandsPerSecond, double LedgerCommandsPerSecond, double CpuBusyShare);

/// <summary>
/// Orders through the HTTP API's batch endpoint (<c>POST /api/exchange/orders/batch</c>) on loopback, to a server with a
/// durable ledger and journal, as market makers would send them: each client alternates a batch of the provider's sells
/// with a batch of its own customer's IOC buys that cross them, so the books stay small and every order trades (a lease,
/// a settlement chain). Everything a user's request goes through is in the path: TLS-less Kestrel, authentication, the
/// rate limiter, JSON binding, the exchange's gate, the journal's fsync, the ledger's durable batch. The clients run on
/// the same machine, so they take part of its CPU.
/// </summary>
public static class ExchangeApiBench
{
    private const long Price = 1_000_000; // $1.00 per GPU-hour

    public static async Task<ApiBatchRun> RunAsync(TimeSpan duration, int clients, int batchSize, CancellationToken ct)
    {
        string dir = Path.Combine(Path.GetTempPath(), "cg-bench-exchange-api-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        var app = ServerHost.Build(new ServerOptions
        {
            Urls = "http://127.0.0.1:0",
            DataDirectory = dir,
            MinimumLogLevel = Microsoft.Extensions.Logging.LogLevel.Warning,
            // Raised out of the way (each limit still runs on every request): what is measured is the path, not the quotas.
            Limits = new ComputeGrid.Server.Trust.ServerLimits
            {
                Customer = new ComputeGrid.Server.Trust.RateLimit(1_000_000, 1_000_000), Provider = new ComputeGrid.Server.Trust.RateLimit(1_000_000, 1_000_000),
                Operator = new ComputeGrid.Server.Trust.RateLimit(1_000_000, 1_000_000), OpenOrdersPerTraderMax = 1_000_000,
            },
        });
        await app.StartAsync(ct);
        try
        {
            using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = clients * 2 }) { BaseAddress = new Uri(ServerHost.Endpoints(app).ApiUrl) };
            string op = (await File.ReadAllTextAsync(Path.Combine(dir, ComputeGrid.Server.Trust.OperatorKeyFile.FileName), ct)).Trim();
            async Task<JsonElement> PostAsync(string key, string path, object body)
            {
                using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = JsonContent.Create(body) };
                request.Headers.Authorization = new("Bearer", key);
                using var response = await http.SendAsync(request, ct);
                string text = await response.Content.ReadAsStringAsync(ct);
                if (!response.IsSuccessStatusCode) throw new InvalidOperationException($"POST {path}: {(int)response.StatusCode} {text}");
                return JsonDocument.Parse(text).RootElement.Clone();
            }

            // As an operator would: a provider with collateral for every lease's penalty and one large node, and a funded
            // customer per client whose money is on its trading account.
            JsonElement provider = await PostAsync(op, "/api/providers", new { name = "bench-maker" });
            ulong providerId = provider.GetProperty("principal").GetProperty("id").GetUInt64();
            string providerKey = provider.GetProperty("api_key").GetString()!;
            await PostAsync(op, $"/api/providers/{providerId}/collateral", new { amount = 1_000_000_000_000_000L, funding_id = "bench" });
            // Every fill leases one GPU for the hour: ten nodes of the most GPUs a node may list (100,000) outlast the run.
            for (int n = 0; n < 10; n++)
            {
                var (_, nodeKey, _, _) = ComputeGrid.Inference.Nodes.NodeAgent.LoadOrCreateKey(Path.Combine(dir, $"bench-node-{n}.key"));
                await PostAsync(op, $"/api/providers/{providerId}/nodes", new { node_id = $"bench-node-{n}", public_key = Convert.ToBase64String(nodeKey), price_ceiling_micro_usd_per_1k_tokens = 50 });
                await PostAsync(providerKey, "/api/exchange/nodes", new { node_id = $"bench-node-{n}", gpu = "H100", region = "frankfurt", gpus = 100_000 });
            }
            var buyers = new string[clients];
            for (int i = 0; i < clients; i++)
            {
                JsonElement customer = await PostAsync(op, "/api/customers", new { name = $"bench-taker-{i}", region = "frankfurt" });
                ulong id = customer.GetProperty("principal").GetProperty("id").GetUInt64();
                buyers[i] = customer.GetProperty("api_key").GetString()!;
                await PostAsync(op, $"/api/customers/{id}/fund", new { amount = 1_000_000_000_000_000L, funding_id = "bench" });
                await PostAsync(buyers[i], "/api/exchange/deposits", new { amount = 1_000_000_000_000_000L });
            }
            // Each client trades its own hourly book (from two hours ahead, trading for the whole run): a book holds at most
            // one client's batch of sells, far below its order limit.
            using var instruments = await http.GetAsync($"/api/exchange/instruments?gpu=H100&region=frankfurt&kind=H&limit={clients + 2}", ct);
            JsonElement listed = JsonDocument.Parse(await instruments.Content.ReadAsStringAsync(ct)).RootElement.GetProperty("instruments");
            if (listed.GetArrayLength() < clients + 2) throw new InvalidOperationException($"only {listed.GetArrayLength()} hourly H100 books trade; the bench needs {clients + 2}");
            string Symbol(int who) => listed[2 + who].GetProperty("symbol").GetString()!;
            string[] sells = Enumerable.Range(0, clients).Select(i => Batch(Symbol(i), "sell", "gtc", batchSize)).ToArray();
            string[] buys = Enumerable.Range(0, clients).Select(i => Batch(Symbol(i), "buy", "ioc", batchSize)).ToArray();

            long orders = 0, accepted = 0, fills = 0;
            var latencies = new List<double>[clients];
            async Task<(int Accepted, int Fills)> SendAsync(string key, string body, List<double> lat)
            {
                using var request = new HttpRequestMessage(HttpMethod.Post, "/api/exchange/orders/batch") { Content = new StringContent(body, Encoding.UTF8, "application/json") };
                request.Headers.Authorization = new("Bearer", key);
                long t0 = Stopwatch.GetTimestamp();
                using var response = await http.SendAsync(request, ct);
                byte[] bytes = await response.Content.ReadAsByteArrayAsync(ct);
                lat.Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
                if (!response.IsSuccessStatusCode) throw new InvalidOperationException($"batch: {(int)response.StatusCode} {Encoding.UTF8.GetString(bytes)}");
                using JsonDocument doc = JsonDocument.Parse(bytes);
                int filled = 0;
                foreach (JsonElement r in doc.RootElement.GetProperty("results").EnumerateArray())
                    if (r.GetProperty("order") is { ValueKind: JsonValueKind.Object } o) filled += o.GetProperty("fills").GetArrayLength();
                return (doc.RootElement.GetProperty("accepted").GetInt32(), filled);
            }
            async Task ClientAsync(int who, TimeSpan runFor, bool count)
            {
                var lat = latencies[who] = [];
                var clock = Stopwatch.StartNew();
                while (clock.Elapsed < runFor)
                {
                    var (a1, _) = await SendAsync(providerKey, sells[who], lat);
                    var (a2, f2) = await SendAsync(buyers[who], buys[who], lat);
                    if (!count) continue;
                    Interlocked.Add(ref orders, 2L * batchSize);
                    Interlocked.Add(ref accepted, a1 + a2);
                    Interlocked.Add(ref fills, f2);
                }
            }
            // Warm-up (JIT, connection pool), then the measured window.
            await Task.WhenAll(Enumerable.Range(0, clients).Select(i => ClientAsync(i, TimeSpan.FromSeconds(2), count: false)));
            // Each stage's own time in the window names the one that bounds the rate; the process's CPU time (server and
            // clients together) against the cores says whether the machine itself is the bound.
            var exchange = (ComputeGrid.Exchange.Pipeline.ExchangeHost)app.Services.GetService(typeof(ComputeGrid.Exchange.Pipeline.ExchangeHost))!;
            var (_, commandsBefore, _) = exchange.Pipeline.Counters;
            var stagesBefore = exchange.Pipeline.StageSeconds;
            TimeSpan cpuBefore = Process.GetCurrentProcess().TotalProcessorTime;
            var window = Stopwatch.StartNew();
            await Task.WhenAll(Enumerable.Range(0, clients).Select(i => ClientAsync(i, duration, count: true)));
            double seconds = window.Elapsed.TotalSeconds;
            double cpu = (Process.GetCurrentProcess().TotalProcessorTime - cpuBefore).TotalSeconds / (seconds * Environment.ProcessorCount);
            var (_, commandsAfter, _) = exchange.Pipeline.Counters;
            var stagesAfter = exchange.Pipeline.StageSeconds;
            long commands = commandsAfter - commandsBefore;
            static double Rate(long n, double busy) => busy <= 0 ? 0 : Math.Round(n / busy);
            double[] all = latencies.SelectMany(l => l).Order().ToArray();
            return new ApiBatchRun(orders / seconds, orders, accepted, fills, batchSize, clients,
                Math.Round(all[all.Length / 2], 2), Math.Round(all[Math.Min(all.Length - 1, (int)(all.Length * 0.99))], 2),
                Rate(commands, stagesAfter.Journal - stagesBefore.Journal), Rate(commands, stagesAfter.StateMachine - stagesBefore.StateMachine),
                Rate(commands, stagesAfter.Ledger - stagesBefore.Ledger), Math.Round(cpu, 3));
        }
        finally
        {
            await app.StopAsync(CancellationToken.None);
            await app.DisposeAsync();
            try { Directory.Delete(dir, recursive: true); } catch (IOException) { }
        }
    }

    // One batch body, written once and sent again and again (the exchange numbers each order anew).
    private static string Batch(string symbol, string side, string tif, int n)
    {
        var text = new StringBuilder("{\"orders\":[");
        for (int i = 0; i < n; i++)
        {
            if (i > 0) text.Append(',');
            text.Append("{\"instrument\":\"").Append(symbol).Append("\",\"side\":\"").Append(side).Append("\",\"price\":").Append(Price)
                .Append(",\"quantity\":1,\"time_in_force\":\"").Append(tif).Append("\"}");
        }
        return text.Append("]}").ToString();
    }
}
