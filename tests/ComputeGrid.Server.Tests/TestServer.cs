using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using ComputeGrid.Inference.Nodes;
using ComputeGrid.Server;
using ComputeGrid.Server.Trust;
using Microsoft.AspNetCore.Builder;

namespace ComputeGrid.Server.Tests;

/// <summary>A principal the tests made through the API: its id, its key, a client that presents the key, its ledger account.</summary>
public sealed record Party(ulong Id, string Key, HttpClient Http, UInt128 Account);

/// <summary>What <see cref="TestServer.SeedExchangeAsync"/> made: two funded customers and a provider with collateral and capacity.</summary>
public sealed record ExchangeSeed(Party Buyer, Party Poor, Party Provider, IReadOnlyDictionary<(string Gpu, string Region), long> Nodes);

/// <summary>
/// Helpers shared by the server tests: temporary folders, an in-process server, the child-process server, and the
/// principals every test needs — made through the API as an operator would (the first operator's key from the data
/// folder), never by writing to the ledger directly.
/// </summary>
public static class TestServer
{
    /// <summary>The JSON of request bodies, as the API expects it (snake_case).</summary>
    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    public static string TempDir(string name)
    {
        string dir = Path.Combine(Path.GetTempPath(), $"cg-{name}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        return dir;
    }

    /// <summary>A real Kestrel server on a loopback port, in this process; the client carries the first operator's key.</summary>
    public static async Task<(WebApplication App, HttpClient Operator)> StartInProcessAsync(string dataDir, IReadOnlyList<ComputeGrid.Server.Energy.LiveSiteOptions>? sites = null,
        ComputeGrid.Server.Inference.InferenceServerOptions? inference = null, ServerLimits? limits = null, string nodeUrls = "")
    {
        // Port 0: the kernel picks a free port as Kestrel binds, and the server reports it.
        var app = ServerHost.Build(new ServerOptions
        {
            Urls = "http://127.0.0.1:0", NodeUrls = nodeUrls, DataDirectory = dataDir, Sites = sites ?? [], Inference = inference ?? new(), Limits = limits ?? new ServerLimits(),
        });
        await app.StartAsync();
        return (app, Client(ServerHost.Endpoints(app).ApiUrl, OperatorKey(dataDir)));
    }

    /// <summary>The first operator's key of a data folder.</summary>
    public static string OperatorKey(string dataDir) => File.ReadAllText(OperatorKeyFile.PathIn(dataDir)).Trim();

    /// <summary>A client of <paramref name="baseUrl"/> that presents <paramref name="key"/> (none when null).</summary>
    public static HttpClient Client(string baseUrl, string? key)
    {
        var http = new HttpClient { BaseAddress = new Uri(baseUrl) };
        if (key is not null) http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return http;
    }

    /// <summary>A new customer (through <c>POST /api/customers</c>), funded with <paramref name="fundMicroUsd"/> when positive.</summary>
    public static async Task<Party> NewCustomerAsync(HttpClient op, string name, string region = "frankfurt", long fundMicroUsd = 0)
    {
        JsonElement created = await op.PostJsonAsync("/api/customers", new { name, region });
        var party = Party(op, created);
        if (fundMicroUsd > 0) await op.PostJsonAsync($"/api/customers/{party.Id}/fund", new { amount = fundMicroUsd, funding_id = "seed-" + name });
        return party;
    }

    /// <summary>A new provider, its collateral funded with <paramref name="collateralMicroUsd"/> when positive.</summary>
    public static async Task<Party> NewProviderAsync(HttpClient op, string name, long collateralMicroUsd = 0)
    {
        JsonElement created = await op.PostJsonAsync("/api/providers", new { name });
        var party = Party(op, created);
        if (collateralMicroUsd > 0) await op.PostJsonAsync($"/api/providers/{party.Id}/collateral", new { amount = collateralMicroUsd, funding_id = "seed-" + name });
        return party;
    }

    /// <summary>Admits a node for a provider with a new key; returns the node's private key (raw) to sign with.</summary>
    public static async Task<byte[]> AdmitNodeAsync(HttpClient op, ulong provider, string nodeId, long priceCeiling = 1_000)
    {
        var (privateKey, publicKey) = NodeSigning.NewKeyPair();
        await op.PostJsonAsync($"/api/providers/{provider}/nodes",
            new { node_id = nodeId, public_key = Convert.ToBase64String(publicKey), price_ceiling_micro_usd_per_1k_tokens = priceCeiling });
        return privateKey;
    }

    /// <summary>A client of the node port (HTTP/2 cleartext with prior knowledge, as nodes speak it).</summary>
    public static HttpClient NodeClient(string nodeUrl, string? token = null)
    {
        var http = new HttpClient { BaseAddress = new Uri(nodeUrl), DefaultRequestVersion = HttpVersion.Version20, DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact };
        if (token is not null) http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return http;
    }

    /// <summary>Registers an admitted node by challenge and response; returns its session token.</summary>
    public static async Task<string> RegisterNodeAsync(string nodeUrl, string nodeId, byte[] privateKey, string region = "frankfurt", long price = 20, int capacity = 4)
    {
        using var http = NodeClient(nodeUrl);
        JsonElement challenge = await http.PostJsonAsync("/node/v1/challenge", new { node_id = nodeId });
        string nonce = challenge.GetProperty("nonce").GetString()!;
        string[] models = ["all-MiniLM-L6-v2"];
        byte[] signature = NodeSigning.SignBytes(NodeSigning.SessionMessage(nodeId, nonce, region, models, price, capacity), privateKey);
        JsonElement grant = await http.PostJsonAsync("/node/v1/sessions", new
        {
            node_id = nodeId, nonce, region, models, price_micro_usd_per_1k_tokens = price, capacity, signature = Convert.ToBase64String(signature),
        });
        return grant.GetProperty("token").GetString()!;
    }

    private static Party Party(HttpClient op, JsonElement created)
    {
        ulong id = created.GetProperty("principal").GetProperty("id").GetUInt64();
        string key = created.GetProperty("api_key").GetString()!;
        var accounts = created.GetProperty("accounts").EnumerateArray().Select(a => UInt128.Parse(a.GetString()!)).ToArray();
        return new Party(id, key, Client(op.BaseAddress!.ToString(), key), accounts.Length > 0 ? accounts[0] : 0);
    }

    /// <summary>
    /// Moves <paramref name="amount"/> from the party's balance to its exchange trading account (<c>POST
    /// /api/exchange/deposits</c>, with its own key); the party returned names the trading account as its account.
    /// </summary>
    public static async Task<Party> DepositAsync(Party p, long amount)
    {
        JsonElement account = await p.Http.PostJsonAsync("/api/exchange/deposits", new { amount });
        return p with { Account = UInt128.Parse(account.GetProperty("account").GetString()!) };
    }

    /// <summary>
    /// Seeds an exchange through the API: customers <c>buyer</c> ($1,000) and <c>poor</c> ($1), and a provider with $100
    /// of collateral and an admitted node of 8 GPUs listed for each (gpu, region) given. The exchange fixtures share it.
    /// </summary>
    public static async Task<ExchangeSeed> SeedExchangeAsync(HttpClient op, params (string Gpu, string Region)[] nodes)
    {
        Party buyer = await DepositAsync(await NewCustomerAsync(op, "buyer", fundMicroUsd: 1_000_000_000), 1_000_000_000);
        Party poor = await DepositAsync(await NewCustomerAsync(op, "poor", fundMicroUsd: 1_000_000), 1_000_000);
        Party provider = await NewProviderAsync(op, "provider", collateralMicroUsd: 100_000_000);
        var listed = new Dictionary<(string, string), long>();
        foreach (var (gpu, region) in nodes)
        {
            string nodeId = $"{region}-{gpu}-01";
            await AdmitNodeAsync(op, provider.Id, nodeId);
            var r = await provider.Http.PostAsJsonAsync("/api/exchange/nodes", new { node_id = nodeId, gpu, region, gpus = 8 }, Json);
            Assert.Equal(HttpStatusCode.Created, r.StatusCode);
            listed[(gpu, region)] = (await r.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetInt64();
        }
        return new ExchangeSeed(buyer, poor, provider, listed);
    }

    /// <summary>
    /// Leases <paramref name="gpus"/> GPUs of <paramref name="region"/>'s H100 hour starting at <paramref name="hourUtc"/>
    /// (as the API writes it, e.g. <c>2026-12-07T11:00:00Z</c>) at <paramref name="price"/> micro-USD a GPU-hour: the
    /// seed's provider asks, its buyer takes it. Returns the instrument's symbol and the lease's id.
    /// </summary>
    public static async Task<(string Symbol, long Lease)> LeaseHourAsync(HttpClient op, ExchangeSeed seed, string region, string hourUtc, long gpus, long price)
    {
        JsonElement page = await op.GetJsonAsync($"/api/exchange/instruments?gpu=H100&region={region}&kind=H&limit=10");
        string symbol = page.GetProperty("instruments").EnumerateArray().Single(i => i.GetProperty("delivery_start").GetString() == hourUtc).GetProperty("symbol").GetString()!;
        await ApiTestHelpers.OkAsync(await seed.Provider.Http.PostSnakeAsync("/api/exchange/orders", new { instrument = symbol, side = "sell", price, quantity = gpus }));
        JsonElement buy = await ApiTestHelpers.OkAsync(await seed.Buyer.Http.PostSnakeAsync("/api/exchange/orders", new { instrument = symbol, side = "buy", price, quantity = gpus }));
        return (symbol, buy.GetProperty("fills")[0].GetProperty("lease_id").GetInt64());
    }

    /// <summary>
    /// Starts <c>computegrid serve</c> as a child process and waits until it answers /healthz. Port 0 (the default) lets
    /// the kernel pick the port; the child prints the address it bound, which is returned.
    /// </summary>
    public static Task<(Process Process, string Url)> StartChildAsync(string dataDir, int port = 0, params string[] extraArgs) =>
        StartChildAsync(dataDir, port, "", null, extraArgs);

    /// <summary>
    /// Starts <c>computegrid serve</c> as a child process with a node endpoint (<paramref name="nodeUrls"/>, empty for
    /// none) and extra environment variables (e.g. <c>CG_FAULT</c>), and waits until it answers /healthz.
    /// </summary>
    public static async Task<(Process Process, string Url)> StartChildAsync(string dataDir, int port, string nodeUrls, IReadOnlyDictionary<string, string>? environment, params string[] extraArgs)
    {
        string dll = Path.Combine(AppContext.BaseDirectory, "computegrid.dll");
        var psi = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var (k, v) in environment ?? new Dictionary<string, string>()) psi.Environment[k] = v;
        // The ledger and exchange tests run without the live hybrid site unless they ask for it.
        string[] args = [dll, "serve", "--urls", $"http://127.0.0.1:{port}", "--node-urls", nodeUrls, "--data-dir", dataDir, .. (extraArgs.Length > 0 ? extraArgs : ["--no-sites"])];
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

    /// <summary>A loopback port that was free a moment ago (for a child that must bind the same port at every restart).</summary>
    public static int FreePort()
    {
        var listener = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }

    /// <summary>Posts <paramref name="body"/> as snake_case JSON; the answer must be a success, whose JSON is returned.</summary>
    public static async Task<JsonElement> PostJsonAsync(this HttpClient client, string path, object body)
    {
        var r = await client.PostAsJsonAsync(path, body, Json);
        if (!r.IsSuccessStatusCode) throw new HttpRequestException($"POST {path}: {(int)r.StatusCode} {await r.Content.ReadAsStringAsync()}");
        return await r.Content.ReadFromJsonAsync<JsonElement>();
    }

    /// <summary>Sends raw JSON text.</summary>
    public static Task<HttpResponseMessage> SendJsonAsync(this HttpClient client, HttpMethod method, string path, string json) =>
        client.SendAsync(new HttpRequestMessage(method, path) { Content = new StringContent(json, Encoding.UTF8, "application/json") });
}
