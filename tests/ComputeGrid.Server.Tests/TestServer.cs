using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text.Json;
using ComputeGrid.Server;
using Microsoft.AspNetCore.Builder;

namespace ComputeGrid.Server.Tests;

/// <summary>Helpers shared by the server tests: free ports, an in-process server, and the child-process server.</summary>
public static class TestServer
{
    public static string TempDir(string name)
    {
        string dir = Path.Combine(Path.GetTempPath(), $"cg-{name}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        return dir;
    }

    /// <summary>A real Kestrel server on a loopback port, in this process.</summary>
    public static async Task<(WebApplication App, HttpClient Client)> StartInProcessAsync(string dataDir, IReadOnlyList<ComputeGrid.Server.Energy.LiveSiteOptions>? sites = null,
        ComputeGrid.Server.Inference.InferenceServerOptions? inference = null)
    {
        // Port 0: the kernel picks a free port as Kestrel binds, and the server reports it.
        var app = ServerHost.Build(new ServerOptions { Urls = "http://127.0.0.1:0", DataDirectory = dataDir, Sites = sites ?? [], Inference = inference ?? new() });
        await app.StartAsync();
        var client = new HttpClient { BaseAddress = new Uri(ServerHost.Endpoints(app).ApiUrl) };
        return (app, client);
    }

    /// <summary>
    /// Starts <c>computegrid serve</c> as a child process and waits until it answers /healthz. Port 0 (the default) lets
    /// the kernel pick the port; the child prints the address it bound, which is returned.
    /// </summary>
    public static async Task<(Process Process, string Url)> StartChildAsync(string dataDir, int port = 0, params string[] extraArgs)
    {
        string dll = Path.Combine(AppContext.BaseDirectory, "computegrid.dll");
        var psi = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        // The ledger and exchange tests run without the live hybrid site unless they ask for it.
        string[] args = [dll, "serve", "--urls", $"http://127.0.0.1:{port}", "--node-urls", "", "--data-dir", dataDir, .. (extraArgs.Length > 0 ? extraArgs : ["--no-sites"])];
        foreach (var a in args) psi.ArgumentList.Add(a);
        var p = Process.Start(psi)!;
        var serving = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        p.OutputDataReceived += (_, e) =>
        {
            const string Prefix = "computegrid serving on ";
            if (e.Data is { } line && line.StartsWith(Prefix, StringComparison.Ordinal)) serving.TrySetResult(line[Prefix.Length..].Split(' ')[0].Split(';')[0]);
        };
        p.ErrorDataReceived += (_, _) => { };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        using var probe = new HttpClient { Timeout = TimeSpan.FromSeconds(1) };
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (DateTime.UtcNow < deadline)
        {
            if (p.HasExited) throw new InvalidOperationException($"computegrid serve exited with {p.ExitCode} during start.");
            if (serving.Task.IsCompleted)
            {
                try
                {
                    var r = await probe.GetAsync($"{serving.Task.Result}/healthz");
                    if (r.IsSuccessStatusCode) return (p, serving.Task.Result);
                }
                catch (HttpRequestException) { }
                catch (TaskCanceledException) { }
            }
            await Task.Delay(50);
        }
        p.Kill(entireProcessTree: true);
        throw new TimeoutException("computegrid serve did not start in 60 s.");
    }

    /// <summary>
    /// Seeds an exchange through the API: ledger accounts 1 (funding), 11 (buyer, $1,000), 12 (poor buyer, $1),
    /// 21 (provider revenue) and 22 (collateral, $100); traders 1 and 2; provider 100 with 8-GPU nodes for each
    /// (gpu, region) given. The exchange fixtures share it so their participants are the same.
    /// </summary>
    public static async Task SeedExchangeAsync(HttpClient http, params (string Gpu, string Region)[] nodes)
    {
        var accounts = await http.PostJsonAsync("/api/ledger/accounts", new object[]
        {
            new { id = "1", asset = 1, code = 1 },
            new { id = "11", asset = 1, code = 2, flags = "DebitsMustNotExceedCredits" },
            new { id = "12", asset = 1, code = 2, flags = "DebitsMustNotExceedCredits" },
            new { id = "21", asset = 1, code = 3, flags = "DebitsMustNotExceedCredits" },
            new { id = "22", asset = 1, code = 4, flags = "DebitsMustNotExceedCredits" },
        });
        Assert.Equal(5, accounts.GetProperty("ok").GetInt32());
        var funded = await http.PostJsonAsync("/api/ledger/transfers", new object[]
        {
            new { id = "1001", debitAccountId = "1", creditAccountId = "11", amount = 1_000_000_000L, asset = 1, code = 1 },
            new { id = "1002", debitAccountId = "1", creditAccountId = "12", amount = 1_000_000L, asset = 1, code = 1 },
            new { id = "1003", debitAccountId = "1", creditAccountId = "22", amount = 100_000_000L, asset = 1, code = 1 },
        });
        Assert.Equal(3, funded.GetProperty("ok").GetInt32());
        await http.PostJsonAsync("/api/exchange/traders", new { owner = 1, account = "11" });
        await http.PostJsonAsync("/api/exchange/traders", new { owner = 2, account = "12" });
        await http.PostJsonAsync("/api/exchange/providers", new { id = 100, revenueAccount = "21", collateralAccount = "22" });
        foreach (var (gpu, region) in nodes)
        {
            var r = await http.PostAsJsonAsync("/api/exchange/nodes", new { provider = 100, name = $"{region}-{gpu}-01", gpu, region, gpus = 8 });
            Assert.Equal(HttpStatusCode.Created, r.StatusCode);
        }
    }

    public static async Task<JsonElement> PostJsonAsync(this HttpClient client, string path, object body)
    {
        var r = await client.PostAsJsonAsync(path, body);
        r.EnsureSuccessStatusCode();
        return await r.Content.ReadFromJsonAsync<JsonElement>();
    }
}
