using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using ComputeGrid.Ledger;
using ComputeGrid.Server.Inference;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;

namespace ComputeGrid.Server.Tests;

/// <summary>
/// Node agents as their own processes (<c>computegrid node</c>) connected over HTTP/2: registration, signed telemetry,
/// and a node killed in the middle of a request — the request fails over and is charged exactly once.
/// </summary>
public sealed class InferenceNodeTests
{
    [Fact]
    public async Task A_node_killed_mid_request_fails_over_and_the_request_is_charged_once()
    {
        string dir = TestServer.TempDir("inference-nodes");
        var app = ServerHost.Build(new ServerOptions { Urls = "http://127.0.0.1:0", NodeUrls = "http://127.0.0.1:0", DataDirectory = dir });
        await app.StartAsync();
        string apiUrl = ServerHost.Endpoints(app).ApiUrl, nodeUrl = ServerHost.Endpoints(app).NodeUrl;
        var nodes = new List<Process>();
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri(apiUrl) };
            // Two nodes: Dallas (near the customer, chosen first) and Frankfurt (the fallback).
            nodes.Add(StartNode(nodeUrl, "dal-1", "dallas", dir));
            nodes.Add(StartNode(nodeUrl, "fra-1", "frankfurt", dir));
            var sw = Stopwatch.StartNew();
            while (sw.Elapsed < TimeSpan.FromSeconds(60))
            {
                var list = JsonDocument.Parse(await http.GetStringAsync("/api/inference/nodes")).RootElement;
                if (list.GetArrayLength() == 2 && list.EnumerateArray().All(n => n.GetProperty("healthy").GetBoolean())) break;
                await Task.Delay(200);
            }
            var host = app.Services.GetRequiredService<InferenceHost>();
            Assert.Equal(2, host.Gateway.Registry.Snapshot().Count(n => n.Healthy));

            // Signed telemetry: the server verified it, and anyone can check it again with the node's public key.
            var telemetry = JsonDocument.Parse(await http.GetStringAsync("/api/inference/nodes/dal-1/telemetry")).RootElement;
            var signed = telemetry.GetProperty("signed").Deserialize<ComputeGrid.Inference.Nodes.SignedTelemetry>()!;
            Assert.NotNull(ComputeGrid.Inference.Nodes.NodeSigning.Verify(signed, Convert.FromBase64String(telemetry.GetProperty("public_key").GetString()!)));
            Assert.Equal("modeled", telemetry.GetProperty("telemetry").GetProperty("power_source").GetString());

            string token = (await File.ReadAllTextAsync(Path.Combine(dir, "inference", "operator-token.txt"))).Trim();
            using var create = new HttpRequestMessage(HttpMethod.Post, "/api/inference/customers") { Content = JsonContent.Create(new { name = "t", region = "dallas" }) };
            create.Headers.Authorization = new("Bearer", token);
            var customer = JsonDocument.Parse(await (await http.SendAsync(create)).Content.ReadAsStringAsync()).RootElement;
            ulong id = customer.GetProperty("id").GetUInt64();
            using var fund = new HttpRequestMessage(HttpMethod.Post, $"/api/inference/customers/{id}/fund") { Content = JsonContent.Create(new { amount_micro_usd = 10_000_000 }) };
            fund.Headers.Authorization = new("Bearer", token);
            (await http.SendAsync(fund)).EnsureSuccessStatusCode();

            // A request long enough to be cut: many sentences on a one-thread node; Dallas is killed while it runs.
            string[] inputs = Enumerable.Range(0, 160).Select(i => $"sentence number {i} about grids, miners and ledgers").ToArray();
            using var req = new HttpRequestMessage(HttpMethod.Post, "/v1/embeddings")
            {
                Content = new StringContent(JsonSerializer.Serialize(new { model = "all-MiniLM-L6-v2", input = inputs, encoding_format = "base64", provider = new { sort = "latency" } }), Encoding.UTF8, "application/json"),
            };
            req.Headers.Authorization = new("Bearer", customer.GetProperty("api_key").GetString());
            // One small request first: the server's tokenizer and both nodes' models are warm before the timed one.
            foreach (string region in new[] { "dallas", "frankfurt" })
            {
                using var warm = new HttpRequestMessage(HttpMethod.Post, "/v1/embeddings") { Content = new StringContent(JsonSerializer.Serialize(new { model = "all-MiniLM-L6-v2", input = "warm", provider = new { only = new[] { region } } }), Encoding.UTF8, "application/json") };
                warm.Headers.Authorization = new("Bearer", customer.GetProperty("api_key").GetString());
                Assert.Equal(HttpStatusCode.OK, (await http.SendAsync(warm)).StatusCode);
            }
            await host.Gateway.Settler.IdleAsync();
            long warmCost = (await app.Services.GetRequiredService<LedgerEngine>().LookupAccountsAsync([InferencePayments.CustomerAccount(id)]))[0].DebitsPosted;
            Task<HttpResponseMessage> pending = http.SendAsync(req);
            await Task.Delay(400);
            Assert.False(pending.IsCompleted, "the request finished before the node could be killed");
            nodes[0].Kill();
            HttpResponseMessage answer = await pending;
            Assert.True(answer.StatusCode == HttpStatusCode.OK, await answer.Content.ReadAsStringAsync());
            Assert.True(answer.Headers.GetValues("X-CG-Node").Single() == "fra-1" && answer.Headers.GetValues("X-CG-Attempts").Single() == "2",
                $"node {answer.Headers.GetValues("X-CG-Node").Single()}, attempts {answer.Headers.GetValues("X-CG-Attempts").Single()}, failed over: {(answer.Headers.TryGetValues("X-CG-Failed-Over", out var f) ? string.Join(",", f) : "-")}");
            long cost = long.Parse(answer.Headers.GetValues("X-CG-Cost-Micro-Usd").Single());

            await host.Gateway.Settler.IdleAsync();
            var ledger = app.Services.GetRequiredService<LedgerEngine>();
            Account account = (await ledger.LookupAccountsAsync([InferencePayments.CustomerAccount(id)]))[0];
            Assert.Equal(warmCost + cost, account.DebitsPosted);
            Assert.Equal(0, account.DebitsPending);
            // The killed node left the rotation at once.
            Assert.False(host.Gateway.Registry.Snapshot().Single(n => n.NodeId == "dal-1").Healthy);
        }
        finally
        {
            foreach (Process p in nodes) { if (!p.HasExited) p.Kill(); p.Dispose(); }
            await app.StopAsync();
            await app.DisposeAsync();
            Directory.Delete(dir, recursive: true);
        }
    }

    private static Process StartNode(string nodeUrl, string id, string region, string dir)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string a in new[] { Path.Combine(AppContext.BaseDirectory, "computegrid.dll"), "node", "--server", nodeUrl, "--id", id, "--region", region,
                     "--price", "20", "--capacity", "4", "--threads", "1", "--key-file", Path.Combine(dir, id + ".key") })
            psi.ArgumentList.Add(a);
        var p = Process.Start(psi)!;
        p.OutputDataReceived += (_, _) => { };
        p.ErrorDataReceived += (_, _) => { };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        return p;
    }
}
