using System.Diagnostics;
using System.Net;
using System.Text.Json;

namespace ComputeGrid.Cli.Tests;

/// <summary>
/// A real <c>computegrid serve</c> for the operator commands: a live site (the reference ERCOT site renamed
/// <c>ops-west</c>, listing one node) replayed at 900×, and a real <c>computegrid node</c> process of that id, admitted
/// for a provider, registered on the node port. The node's GPUs are also listed on the exchange, where the provider
/// sold and a customer bought, so an instrument's book has both sides and a trade.
/// </summary>
public sealed class OpsServerFixture : IAsyncLifetime
{
    /// <summary>The node of the live site.</summary>
    public const string NodeId = "fra-ops";

    /// <summary>The live site's name.</summary>
    public const string SiteName = "ops-west";

    private readonly List<IDisposable> _disposables = [];
    private Process? _node;

    /// <summary>The test's folder (the data folder is <see cref="Data"/>, inside it).</summary>
    public string Dir { get; } = Path.Combine(Path.GetTempPath(), "cg-ops-cli-" + Guid.NewGuid().ToString("N"));

    /// <summary>The server's data folder: its address file and operator key are there.</summary>
    public string Data => Path.Combine(Dir, "data");

    internal ServeProcess Serve { get; private set; } = null!;

    /// <summary>A client with the first operator's key.</summary>
    public HttpClient Operator { get; private set; } = null!;

    /// <summary>A customer's key (it may not read the sites).</summary>
    public string CustomerKey { get; private set; } = "";

    /// <summary>The instrument traded: a resting ask, a resting bid and one trade.</summary>
    public string Symbol { get; private set; } = "";

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(Dir);
        string reference = File.ReadAllText(Path.Combine(CliRunner.RepoRoot(), "examples", "sites", "ercot-west-reference.json"));
        string site = reference.Replace("\"name\": \"ercot-west-reference\"", $"\"name\": \"{SiteName}\"")
            .Replace("\"pue\": 1.10,", $"\"pue\": 1.10, \"nodes\": [{{ \"id\": \"{NodeId}\", \"gpus\": 8, \"wattsPerGpu\": 700, \"joulesPer1kTokens\": 50 }}],");
        Assert.Contains(NodeId, site);
        string siteFile = Path.Combine(Dir, "ops-west.json");
        File.WriteAllText(siteFile, site);
        Serve = await ServeProcess.StartAsync(Data, ["--node-urls", "http://127.0.0.1:0", "--site", siteFile, "--site-speed", "900"]);
        Operator = Keep(Api.Client(Serve.Url, Api.OperatorKey(Data)));

        // The node: its key made by node-key, admitted for a provider, then its own process on the node port.
        string keyFile = Path.Combine(Dir, "fra-ops.key");
        var key = await CliRunner.RunAsync("node-key", "--key-file", keyFile);
        Assert.True(key.Code == 0, key.Err);
        string publicKey = key.Out.Split('\n').Single(l => l.StartsWith("public_key: ", StringComparison.Ordinal))["public_key: ".Length..].Trim();
        Party provider = await Api.NewProviderAsync(Operator, "ops-provider", collateralMicroUsd: 100_000_000);
        Keep(provider.Http);
        await Operator.PostJsonAsync($"/api/providers/{provider.Id}/nodes",
            new { node_id = NodeId, public_key = publicKey, price_ceiling_micro_usd_per_1k_tokens = 100 });
        string nodeUrl = Serve.Out.Split('\n').Select(l => l.Trim()).Single(l => l.StartsWith("node endpoint on ", StringComparison.Ordinal))["node endpoint on ".Length..];
        _node = Process.Start(CliRunner.StartInfo("dotnet",
            [Path.Combine(AppContext.BaseDirectory, "computegrid.dll"), "node", "--server", nodeUrl, "--id", NodeId, "--key-file", keyFile,
                "--region", "frankfurt", "--price", "20", "--capacity", "4", "--workers", "1", "--threads", "1"], null, null))!;
        _node.BeginOutputReadLine();
        _node.BeginErrorReadLine();
        await UntilAsync(async () => (await Operator.GetJsonAsync("/api/inference/nodes")).GetProperty("nodes").EnumerateArray()
            .Any(n => n.GetProperty("id").GetString() == NodeId && n.GetProperty("healthy").GetBoolean()), "the node registers");
        // The site publishes its power state at its first decided interval (a second of real time at 900×).
        await UntilAsync(async () => (await Operator.GetJsonAsync($"/api/energy/sites/{SiteName}")).TryGetProperty("power", out var p)
            && p.ValueKind == JsonValueKind.Object, "the site decides its first interval");

        // A market on the node's GPUs: an ask at 2.50 and one at 2.40 (3 GPU-hours of it bought), a bid at 2.00.
        await provider.Http.PostJsonAsync("/api/exchange/nodes", new { node_id = NodeId, gpu = "H100", region = "frankfurt", gpus = 8 });
        Party customer = await Api.NewCustomerAsync(Operator, "ops-customer", fundMicroUsd: 100_000_000);
        Keep(customer.Http);
        CustomerKey = customer.Key;
        await customer.Http.PostJsonAsync("/api/exchange/deposits", new { amount = 50_000_000 });
        Symbol = (await Operator.GetJsonAsync("/api/exchange/instruments?gpu=H100&region=frankfurt&kind=H&limit=3")).GetProperty("instruments")[2].GetProperty("symbol").GetString()!;
        await provider.Http.PostJsonAsync("/api/exchange/orders", new { instrument = Symbol, side = "sell", price = 2_500_000, quantity = 4 });
        await provider.Http.PostJsonAsync("/api/exchange/orders", new { instrument = Symbol, side = "sell", price = 2_400_000, quantity = 4 });
        await customer.Http.PostJsonAsync("/api/exchange/orders", new { instrument = Symbol, side = "buy", price = 2_400_000, quantity = 3, time_in_force = "ioc" });
        await customer.Http.PostJsonAsync("/api/exchange/orders", new { instrument = Symbol, side = "buy", price = 2_000_000, quantity = 2 });
    }

    private async Task UntilAsync(Func<Task<bool>> done, string what)
    {
        var sw = Stopwatch.StartNew();
        while (!await done())
        {
            if (sw.Elapsed > TimeSpan.FromSeconds(90)) Assert.Fail($"{what}: not within 90 s; server said: {Serve.Out} {Serve.Err}");
            if (_node is { HasExited: true }) Assert.Fail($"the node exited with {_node.ExitCode}");
            await Task.Delay(200);
        }
    }

    private HttpClient Keep(HttpClient http)
    {
        _disposables.Add(http);
        return http;
    }

    public async Task DisposeAsync()
    {
        if (_node is { HasExited: false }) _node.Kill(entireProcessTree: true);
        _node?.Dispose();
        foreach (var d in _disposables) d.Dispose();
        await Serve.DisposeAsync();
        Directory.Delete(Dir, recursive: true);
    }
}

/// <summary><c>computegrid status</c>, <c>sites</c>, <c>nodes</c> and <c>market book</c> against a real server: tables, <c>--json</c> against the API, errors.</summary>
public sealed class OpsCliTests(OpsServerFixture f) : IClassFixture<OpsServerFixture>
{
    // No key or data folder from the test machine's environment: each run names its own.
    private static readonly Dictionary<string, string?> Clean = new() { ["COMPUTEGRID_API_KEY"] = null, ["COMPUTEGRID_KEY"] = null, ["COMPUTEGRID_DATA"] = null };

    private static Task<(int Code, string Out, string Err)> RunAsync(params string[] args) => CliRunner.RunAsync(Clean, args);

    /// <summary>A command that finds the server and the operator key through the data folder alone (no --url, no --key).</summary>
    private Task<(int Code, string Out, string Err)> OpsAsync(params string[] args) => RunAsync([.. args, "--data-dir", f.Data]);

    private static string Ok((int Code, string Out, string Err) r)
    {
        Assert.True(r.Code == 0, $"exit {r.Code}: {r.Out}{r.Err}");
        Assert.All(r.Out.Split('\n'), line => Assert.True(line.Length <= 80, $"wider than 80 columns: '{line}'"));
        return r.Out;
    }

    /// <summary>A successful --json run's output (JSON lines are not held to the terminal's width).</summary>
    private static string Json((int Code, string Out, string Err) r)
    {
        Assert.True(r.Code == 0, $"exit {r.Code}: {r.Out}{r.Err}");
        return r.Out;
    }

    private static string OneErrorLine((int Code, string Out, string Err) r)
    {
        Assert.True(r.Code == 2, $"exit {r.Code}: {r.Out}{r.Err}");
        string line = Assert.Single(r.Err.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("error: ", line);
        return line;
    }

    private static string[] Row(string table, string first) =>
        table.Split('\n').Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries)).First(cells => cells.Length > 0 && cells[0] == first);

    [Fact]
    public async Task Status_finds_the_server_and_key_in_the_data_folder_and_shows_health_ledger_checkpoint_sites_and_nodes()
    {
        string table = Ok(await OpsAsync("status"));
        Assert.Contains($"server      {f.Serve.Url}  healthy", table);
        Assert.Matches(@"ledger      op \d+, chain head [0-9a-f]{18}…", table);
        Assert.Matches(@"  root      [0-9a-f]{64}\n", table);
        Assert.Contains("chain       none", table);
        Assert.Contains("sites       1 live:", table);
        Assert.Equal(OpsServerFixture.SiteName, Row(table, OpsServerFixture.SiteName)[0]);
        Assert.Contains("nodes       1 up of 1", table);
    }

    [Fact]
    public async Task Status_json_holds_the_apis_answers()
    {
        ulong opBefore = (await f.Operator.GetJsonAsync("/api/ledger/chain")).GetProperty("op").GetUInt64();
        var status = JsonDocument.Parse(Json(await OpsAsync("status", "--json"))).RootElement;
        ulong opAfter = (await f.Operator.GetJsonAsync("/api/ledger/chain")).GetProperty("op").GetUInt64();
        Assert.Equal(f.Serve.Url, status.GetProperty("url").GetString());
        Assert.Equal("ok", status.GetProperty("health").GetProperty("status").GetString());
        // The ledger moves while the site books its intervals: the CLI's op lies between two reads of the API's.
        ulong op = status.GetProperty("ledger_chain").GetProperty("op").GetUInt64();
        Assert.InRange(op, opBefore, opAfter);
        var checkpoint = status.GetProperty("checkpoint");
        Assert.Equal(64, checkpoint.GetProperty("root").GetString()!.Length);
        Assert.True(checkpoint.GetProperty("op").GetUInt64() <= op);
        Assert.Equal(JsonValueKind.Null, status.GetProperty("chain").ValueKind);
        Assert.Equal(JsonValueKind.Null, status.GetProperty("anchor").ValueKind);
        var site = Assert.Single(status.GetProperty("sites").EnumerateArray());
        var apiSite = (await f.Operator.GetJsonAsync("/api/energy/sites"))[0];
        Assert.Equal(apiSite.GetProperty("name").GetString(), site.GetProperty("name").GetString());
        Assert.Equal(apiSite.GetProperty("intervals").GetInt32(), site.GetProperty("intervals").GetInt32());
        Assert.Equal(NodeIds(await f.Operator.GetJsonAsync("/api/inference/nodes")), NodeIds(status.GetProperty("nodes")));
    }

    [Fact]
    public async Task Sites_shows_market_price_power_split_miners_and_the_ledgers_pnl()
    {
        string table = Ok(await OpsAsync("sites"));
        Assert.Contains("ERCOT West LMP", table);
        string[] split = table.Split('\n').Select(l => l.Split("  ", StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            .Last(cells => cells.Length == 7 && cells[0] == OpsServerFixture.SiteName);
        Assert.Matches(@"^\d+\.\d\d$", split[1]);                 // $/MWh now
        Assert.Matches(@"^\d+\.\d$", split[2]);                   // GPU MW
        Assert.Matches(@"^[\d,]+/12,358$", split[5]);             // miners running of the reference fleet
        Assert.Matches(@"^-?\$[\d,]+$", split[6]);                // the ledger's P&L

        var json = JsonDocument.Parse(Json(await OpsAsync("sites", "--json"))).RootElement;
        var site = Assert.Single(json.GetProperty("sites").EnumerateArray());
        Assert.Equal("ERCOT West LMP", site.GetProperty("market").GetString());
        Assert.True(site.GetProperty("curtailed_miner_kw").GetDouble() >= 0);
        var pnl = json.GetProperty("pnl").GetProperty(OpsServerFixture.SiteName);
        Assert.Equal(OpsServerFixture.SiteName, pnl.GetProperty("site").GetString());
        // The P&L grows as intervals are booked: the CLI's count of booked intervals lies between two reads of the API's.
        var api = await f.Operator.GetJsonAsync($"/api/energy/sites/{OpsServerFixture.SiteName}/pnl");
        Assert.InRange(pnl.GetProperty("intervals").GetInt32(), 0, api.GetProperty("intervals").GetInt32());
        Assert.Equal(api.GetProperty("from_utc").GetString(), pnl.GetProperty("from_utc").GetString());
    }

    [Fact]
    public async Task Nodes_shows_each_node_with_its_region_site_utilization_price_health_and_power()
    {
        string table = Ok(await OpsAsync("nodes"));
        string[] row = Row(table, OpsServerFixture.NodeId);
        Assert.Equal(["frankfurt", OpsServerFixture.SiteName], row[1..3]);
        Assert.Matches(@"^\d+%$", row[3]);
        Assert.Equal(["20", "up"], row[4..6]);
        Assert.Matches(@"^-?\d+\.\d\d$", row[6]);                 // the site's power price now, $/MWh

        var json = JsonDocument.Parse(Json(await OpsAsync("nodes", "--json"))).RootElement;
        Assert.Equal(NodeIds(await f.Operator.GetJsonAsync("/api/inference/nodes")), NodeIds(json.GetProperty("nodes")));
        var node = Assert.Single(json.GetProperty("nodes").GetProperty("nodes").EnumerateArray());
        Assert.Equal(20, node.GetProperty("price_micro_usd_per_1k_tokens").GetInt64());
        Assert.Equal(OpsServerFixture.NodeId, Assert.Single(json.GetProperty("sites")[0].GetProperty("nodes").EnumerateArray()).GetProperty("node_id").GetString());
    }

    [Fact]
    public async Task Market_book_shows_both_sides_and_the_last_trades_and_its_json_is_the_apis()
    {
        string table = Ok(await RunAsync("market", "book", f.Symbol, "--url", f.Serve.Url));
        Assert.Equal(["ask", "2.50", "4", "1"], Row(table, "ask"));
        Assert.Equal(["ask", "2.40", "1", "1"], table.Split('\n').Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries)).Where(c => c.Length > 0 && c[0] == "ask").Last());
        Assert.Equal(["bid", "2.00", "2", "1"], Row(table, "bid"));
        Assert.Contains("last trades", table);
        Assert.Matches(@"buy\s+2\.40\s+3\s+\d+", table);

        var json = JsonDocument.Parse(Json(await RunAsync("market", "book", f.Symbol, "--url", f.Serve.Url, "--json"))).RootElement;
        var book = await f.Operator.GetJsonAsync($"/api/exchange/book/{f.Symbol}");
        Assert.Equal(book.GetProperty("asks").ToString(), json.GetProperty("book").GetProperty("asks").ToString());
        Assert.Equal(book.GetProperty("bids").ToString(), json.GetProperty("book").GetProperty("bids").ToString());
        var trades = await f.Operator.GetJsonAsync($"/api/exchange/trades/{f.Symbol}");
        Assert.Equal(trades.GetProperty("trades").ToString(), json.GetProperty("trades").GetProperty("trades").ToString());
    }

    [Fact]
    public async Task The_key_comes_from_the_option_or_the_variable_before_the_data_folder()
    {
        // An empty data folder has no key and no address: --url and $COMPUTEGRID_KEY give them.
        string empty = Path.Combine(f.Dir, "empty-" + Guid.NewGuid().ToString("N"));
        string opKey = Api.OperatorKey(f.Data);
        var env = new Dictionary<string, string?>(Clean) { ["COMPUTEGRID_KEY"] = opKey };
        var r = await CliRunner.RunAsync(env, "sites", "--url", f.Serve.Url, "--data-dir", empty);
        Assert.Contains(OpsServerFixture.SiteName, Ok(r));
        // --key wins over the variable: a customer's key may not read the sites (403).
        string line = OneErrorLine(await CliRunner.RunAsync(env, "sites", "--url", f.Serve.Url, "--data-dir", empty, "--key", f.CustomerKey));
        Assert.Contains("the key from --key may not read this", line);
        Assert.Contains("HTTP 403", line);
    }

    [Fact]
    public async Task An_unreachable_server_a_refused_or_missing_key_and_a_404_each_exit_2_with_one_line()
    {
        string empty = Path.Combine(f.Dir, "empty-" + Guid.NewGuid().ToString("N"));
        int port = Api.FreePort();
        string line = OneErrorLine(await RunAsync("status", "--url", $"http://127.0.0.1:{port}", "--data-dir", empty));
        Assert.Contains($"cannot reach the server at http://127.0.0.1:{port} (--url)", line);

        line = OneErrorLine(await RunAsync("sites", "--url", f.Serve.Url, "--data-dir", empty, "--key", "cg_0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"));
        Assert.Contains("refused the key from --key", line);
        Assert.Contains("HTTP 401", line);

        line = OneErrorLine(await RunAsync("nodes", "--url", f.Serve.Url, "--data-dir", empty));
        Assert.Contains("needs an API key", line);

        line = OneErrorLine(await RunAsync("market", "book", "H100.nowhere.H.2000-01-01T00", "--url", f.Serve.Url));
        Assert.Contains("No instrument", line);

        // Something else on the port that answers 404 to everything (another program, an older server).
        using var other = new HttpListener();
        int otherPort = Api.FreePort();
        other.Prefixes.Add($"http://127.0.0.1:{otherPort}/");
        other.Start();
        var answering = Task.Run(async () =>
        {
            while (other.IsListening)
            {
                HttpListenerContext c;
                try { c = await other.GetContextAsync(); }
                catch (Exception e) when (e is HttpListenerException or ObjectDisposedException) { return; }
                c.Response.StatusCode = 404;
                c.Response.Close();
            }
        });
        line = OneErrorLine(await RunAsync("sites", "--url", $"http://127.0.0.1:{otherPort}", "--data-dir", empty, "--key", f.CustomerKey));
        Assert.Contains("/api/energy/sites: not found on the server", line);
        Assert.Contains("HTTP 404", line);
        other.Stop();
        await answering;
    }

    private static string[] NodeIds(JsonElement list) =>
        list.GetProperty("nodes").EnumerateArray().Select(n => n.GetProperty("id").GetString()!).Order().ToArray();
}
