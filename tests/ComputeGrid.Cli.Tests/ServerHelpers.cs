using System.Diagnostics;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using ComputeGrid.Inference.Nodes;
using ComputeGrid.Server.Trust;

namespace ComputeGrid.Cli.Tests;

/// <summary>A principal made through the API: its id and key, and a client of the server that presents the key.</summary>
internal sealed record Party(ulong Id, string Key, HttpClient Http);

/// <summary>
/// The few helpers of the server tests' <c>TestServer</c> the CLI tests need (copied, not shared: this project does not
/// reference the server tests): principals made through the API as an operator would, with the first operator's key
/// from the data folder.
/// </summary>
internal static class Api
{
    /// <summary>The JSON of request bodies, as the API expects it (snake_case).</summary>
    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    /// <summary>The first operator's key of a data folder (DATA/operator-key.txt).</summary>
    public static string OperatorKey(string dataDir) => File.ReadAllText(OperatorKeyFile.PathIn(dataDir)).Trim();

    /// <summary>A client of <paramref name="baseUrl"/> that presents <paramref name="key"/> (none when null).</summary>
    public static HttpClient Client(string baseUrl, string? key)
    {
        var http = new HttpClient { BaseAddress = new Uri(baseUrl), Timeout = TimeSpan.FromSeconds(30) };
        if (key is not null) http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return http;
    }

    /// <summary>Posts <paramref name="body"/> as snake_case JSON; the answer must be a success, whose JSON is returned.</summary>
    public static async Task<JsonElement> PostJsonAsync(this HttpClient client, string path, object body)
    {
        using var r = await client.PostAsJsonAsync(path, body, Json);
        string text = await r.Content.ReadAsStringAsync();
        if (!r.IsSuccessStatusCode) throw new HttpRequestException($"POST {path}: {(int)r.StatusCode} {text}");
        return JsonDocument.Parse(text).RootElement.Clone();
    }

    /// <summary>GETs <paramref name="path"/>; the answer must be a success, whose JSON is returned.</summary>
    public static async Task<JsonElement> GetJsonAsync(this HttpClient client, string path)
    {
        using var r = await client.GetAsync(path);
        string text = await r.Content.ReadAsStringAsync();
        if (!r.IsSuccessStatusCode) throw new HttpRequestException($"GET {path}: {(int)r.StatusCode} {text}");
        return JsonDocument.Parse(text).RootElement.Clone();
    }

    /// <summary>A new customer (<c>POST /api/customers</c>), funded with <paramref name="fundMicroUsd"/> when positive.</summary>
    public static async Task<Party> NewCustomerAsync(HttpClient op, string name, string region = "frankfurt", long fundMicroUsd = 0)
    {
        var party = Party(op, await op.PostJsonAsync("/api/customers", new { name, region }));
        if (fundMicroUsd > 0) await op.PostJsonAsync($"/api/customers/{party.Id}/fund", new { amount = fundMicroUsd, funding_id = "seed-" + name });
        return party;
    }

    /// <summary>A new provider, its collateral funded with <paramref name="collateralMicroUsd"/> when positive.</summary>
    public static async Task<Party> NewProviderAsync(HttpClient op, string name, long collateralMicroUsd = 0)
    {
        var party = Party(op, await op.PostJsonAsync("/api/providers", new { name }));
        if (collateralMicroUsd > 0) await op.PostJsonAsync($"/api/providers/{party.Id}/collateral", new { amount = collateralMicroUsd, funding_id = "seed-" + name });
        return party;
    }

    /// <summary>Admits a node for a provider with a new key.</summary>
    public static async Task AdmitNodeAsync(HttpClient op, ulong provider, string nodeId, long priceCeiling = 1_000)
    {
        var (_, publicKey) = NodeSigning.NewKeyPair();
        await op.PostJsonAsync($"/api/providers/{provider}/nodes",
            new { node_id = nodeId, public_key = Convert.ToBase64String(publicKey), price_ceiling_micro_usd_per_1k_tokens = priceCeiling });
    }

    private static Party Party(HttpClient op, JsonElement created) =>
        new(created.GetProperty("principal").GetProperty("id").GetUInt64(), created.GetProperty("api_key").GetString()!,
            Client(op.BaseAddress!.ToString(), created.GetProperty("api_key").GetString()!));

    /// <summary>A loopback port nobody listens on now.</summary>
    public static int FreePort()
    {
        using var l = new TcpListener(System.Net.IPAddress.Loopback, 0);
        l.Start();
        return ((System.Net.IPEndPoint)l.LocalEndpoint).Port;
    }
}

/// <summary>
/// <c>computegrid serve</c> as a child process on port 0: started, its address read from the line it prints, its
/// output kept, stopped with SIGTERM.
/// </summary>
internal sealed class ServeProcess : IAsyncDisposable
{
    private const string Serving = "computegrid serving on ";

    private readonly Process _process;
    private readonly StringBuilder _out = new(), _err = new();
    private readonly TaskCompletionSource<string> _url = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private ServeProcess(Process process) => _process = process;

    /// <summary>The API's address (http://127.0.0.1:PORT).</summary>
    public string Url { get; private set; } = "";

    /// <summary>Whether the process has ended.</summary>
    public bool HasExited => _process.HasExited;

    /// <summary>What it printed on stdout so far.</summary>
    public string Out { get { lock (_out) return _out.ToString(); } }

    /// <summary>What it printed on stderr so far.</summary>
    public string Err { get { lock (_err) return _err.ToString(); } }

    /// <summary>
    /// Starts <c>serve --urls http://127.0.0.1:0 --data-dir DIR</c> with <paramref name="args"/> (default: no node port,
    /// no live site) and waits until it prints its address and answers /healthz.
    /// </summary>
    public static async Task<ServeProcess> StartAsync(string dataDir, string[]? args = null, TimeSpan? timeout = null)
    {
        var psi = CliRunner.StartInfo("dotnet",
            [Path.Combine(AppContext.BaseDirectory, "computegrid.dll"), "serve", "--urls", "http://127.0.0.1:0", "--data-dir", dataDir, .. args ?? ["--node-urls", "", "--no-sites"]],
            workingDirectory: null, new Dictionary<string, string?> { ["COMPUTEGRID_API_KEY"] = null });
        var serve = new ServeProcess(Process.Start(psi)!);
        serve._process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is not { } line) return;
            lock (serve._out) serve._out.AppendLine(line);
            if (line.StartsWith(Serving, StringComparison.Ordinal)) serve._url.TrySetResult(line[Serving.Length..].Split(' ')[0].Split(';')[0]);
        };
        serve._process.ErrorDataReceived += (_, e) => { if (e.Data is { } line) lock (serve._err) serve._err.AppendLine(line); };
        serve._process.BeginOutputReadLine();
        serve._process.BeginErrorReadLine();
        using var probe = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < (timeout ?? TimeSpan.FromSeconds(90)))
        {
            if (serve._process.HasExited)
            {
                await serve._process.WaitForExitAsync();
                Assert.Fail($"serve exited with {serve._process.ExitCode} during its start: {serve.Out} {serve.Err}");
            }
            if (serve._url.Task.IsCompleted)
            {
                try
                {
                    using var r = await probe.GetAsync($"{serve._url.Task.Result}/healthz");
                    if (r.IsSuccessStatusCode)
                    {
                        serve.Url = serve._url.Task.Result;
                        return serve;
                    }
                }
                catch (HttpRequestException) { }
                catch (TaskCanceledException) { }
            }
            await Task.Delay(50);
        }
        serve._process.Kill(entireProcessTree: true);
        Assert.Fail($"serve did not start in time: {serve.Out} {serve.Err}");
        return serve;
    }

    /// <summary>Sends SIGTERM and waits for the exit (killing it after 30 s); returns the exit code.</summary>
    public async Task<int> StopAsync()
    {
        if (!_process.HasExited) Process.Start("kill", ["-TERM", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])!.WaitForExit();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        try { await _process.WaitForExitAsync(cts.Token); }
        catch (OperationCanceledException)
        {
            _process.Kill(entireProcessTree: true);
            Assert.Fail($"serve did not stop within 30 s of SIGTERM: {Out} {Err}");
        }
        return _process.ExitCode;
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited) await StopAsync();
        _process.Dispose();
    }
}
