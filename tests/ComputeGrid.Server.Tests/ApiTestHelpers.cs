using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;

namespace ComputeGrid.Server.Tests;

/// <summary>
/// Helpers of the ledger, exchange, crash and energy tests that <see cref="TestServer"/> does not offer: a server with
/// options of its own (a checkpoint interval, a clock), JSON reads that must succeed, problem+json checks, the ledger's
/// counts and the <c>computegrid</c> executable.
/// </summary>
internal static class ApiTestHelpers
{
    /// <summary>
    /// A real Kestrel server on a loopback port, as <see cref="TestServer.StartInProcessAsync"/> starts it, with
    /// <paramref name="configure"/> applied to its options; the client carries the first operator's key.
    /// </summary>
    public static async Task<(WebApplication App, HttpClient Operator)> StartAsync(string dataDir, Func<ServerOptions, ServerOptions> configure)
    {
        var app = ServerHost.Build(configure(new ServerOptions { Urls = "http://127.0.0.1:0", NodeUrls = "", DataDirectory = dataDir }));
        await app.StartAsync();
        return (app, TestServer.Client(ServerHost.Endpoints(app).ApiUrl, TestServer.OperatorKey(dataDir)));
    }

    /// <summary>GETs <paramref name="path"/>; the answer must be a success, whose JSON is returned.</summary>
    public static async Task<JsonElement> GetJsonAsync(this HttpClient client, string path) => await OkAsync(await client.GetAsync(path));

    /// <summary>The JSON of a successful answer (the test fails with the status and body otherwise).</summary>
    public static async Task<JsonElement> OkAsync(HttpResponseMessage r)
    {
        string body = await r.Content.ReadAsStringAsync();
        Assert.True(r.IsSuccessStatusCode, $"{r.RequestMessage?.Method} {r.RequestMessage?.RequestUri?.PathAndQuery}: {(int)r.StatusCode} {body}");
        return JsonDocument.Parse(body).RootElement.Clone();
    }

    /// <summary>Posts <paramref name="body"/> as snake_case JSON and returns the raw answer.</summary>
    public static Task<HttpResponseMessage> PostSnakeAsync(this HttpClient client, string path, object body) => client.PostAsJsonAsync(path, body, TestServer.Json);

    /// <summary>Puts <paramref name="body"/> as snake_case JSON and returns the raw answer.</summary>
    public static Task<HttpResponseMessage> PutSnakeAsync(this HttpClient client, string path, object body) => client.PutAsJsonAsync(path, body, TestServer.Json);

    /// <summary>
    /// The answer is a problem+json of <paramref name="status"/> with a detail (and, when given, the exchange's
    /// snake_case <c>error</c>); returns the problem.
    /// </summary>
    public static async Task<JsonElement> AssertProblemAsync(HttpResponseMessage r, HttpStatusCode status, string? error = null)
    {
        string body = await r.Content.ReadAsStringAsync();
        Assert.True(status == r.StatusCode, $"expected {(int)status}, got {(int)r.StatusCode}: {body}");
        Assert.Equal("application/problem+json", r.Content.Headers.ContentType?.MediaType);
        var p = JsonDocument.Parse(body).RootElement.Clone();
        Assert.Equal((int)status, p.GetProperty("status").GetInt32());
        Assert.False(string.IsNullOrWhiteSpace(p.GetProperty("detail").GetString()), body);
        if (error is not null) Assert.Equal(error, p.GetProperty("error").GetString());
        return p;
    }

    /// <summary>The ledger's account and transfer counts, from <c>/metrics</c> (operators, read scope).</summary>
    public static async Task<string> LedgerCountsAsync(HttpClient op)
    {
        string metrics = await op.GetStringAsync("/metrics");
        string[] counts = metrics.Split('\n').Where(l => l.StartsWith("computegrid_ledger_accounts{} ", StringComparison.Ordinal)
            || l.StartsWith("computegrid_ledger_transfers{} ", StringComparison.Ordinal)).ToArray();
        Assert.Equal(2, counts.Length);
        return string.Join(" / ", counts);
    }

    /// <summary>Runs the built <c>computegrid</c> (beside the tests) to its end: exit code, stdout, stderr.</summary>
    public static async Task<(int Code, string Out, string Err)> RunCliAsync(params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "computegrid.dll"));
        foreach (string a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        try { await p.WaitForExitAsync(cts.Token); }
        catch (OperationCanceledException)
        {
            p.Kill(entireProcessTree: true);
            Assert.Fail($"computegrid {string.Join(' ', args)} ran past 2 minutes");
        }
        return (p.ExitCode, await stdout, await stderr);
    }
}

/// <summary>
/// Heartbeats of listed nodes, sent by the operator every <c>every</c> as the nodes themselves would: the exchange
/// fails the leases of a node that misses its heartbeats for 30 s, and a shared fixture outlives that.
/// </summary>
internal sealed class NodeHeartbeats : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;

    public NodeHeartbeats(HttpClient op, IEnumerable<long> nodes, TimeSpan every)
    {
        long[] ids = nodes.ToArray();
        _loop = Task.Run(() => RunAsync(op, ids, every, _stop.Token));
    }

    private static async Task RunAsync(HttpClient op, long[] nodes, TimeSpan every, CancellationToken stop)
    {
        try
        {
            while (!stop.IsCancellationRequested)
            {
                foreach (long node in nodes)
                {
                    try { (await op.PostAsync($"/api/exchange/nodes/{node}/heartbeat", null, stop)).Dispose(); }
                    catch (HttpRequestException) { } // the next round tries again
                }
                await Task.Delay(every, stop);
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested) { }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _loop;
        _stop.Dispose();
    }
}
