using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.RegularExpressions;
using ComputeGrid.Inference.Nodes;
using ComputeGrid.Server.Trust;

namespace ComputeGrid.Cli.Tests;

/// <summary>
/// The trust boundary from the command line: <c>operator add | revoke | list</c> on a data folder (with and without a
/// server running on it), the operator key file a server needs at its start, <c>node-key</c>, and <c>serve</c>'s
/// one-line failures.
/// </summary>
public sealed class TrustCliTests : IDisposable
{
    private const UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    private static readonly Regex KeyShape = new("^cg_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$");

    private readonly string _dir = Directory.CreateTempSubdirectory("cg-trust-cli-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Data => Path.Combine(_dir, "data");

    private static Task<(int Code, string Out, string Err)> RunAsync(params string[] args) =>
        CliRunner.RunAsync(new Dictionary<string, string?> { ["COMPUTEGRID_API_KEY"] = null, ["COMPUTEGRID_DATA"] = null }, args);

    private static string[] Lines(string text) => text.Split('\n', StringSplitOptions.RemoveEmptyEntries);

    private static string OneErrorLine((int Code, string Out, string Err) r)
    {
        Assert.True(r.Code == 2, $"exit {r.Code}: {r.Out}{r.Err}");
        string line = Assert.Single(Lines(r.Err));
        Assert.StartsWith("error: ", line);
        return line;
    }

    /// <summary>A file's permission bits (these tests run where the CLI serves: Linux).</summary>
    private static UnixFileMode ModeOf(string path)
    {
        if (OperatingSystem.IsWindows()) throw new PlatformNotSupportedException("file modes are Unix's");
        return File.GetUnixFileMode(path);
    }

    /// <summary>The public id of a key: the 16 hex digits after <c>cg_</c>.</summary>
    private static string KeyId(string key) => key.Substring(3, 16);

    /// <summary>Polls <paramref name="path"/> with <paramref name="http"/> until it answers <paramref name="wanted"/> or <paramref name="within"/> passes; returns the last answer.</summary>
    private static async Task<(HttpStatusCode Status, string Body)> PollAsync(HttpClient http, string path, HttpStatusCode wanted, TimeSpan within)
    {
        var sw = Stopwatch.StartNew();
        while (true)
        {
            using var r = await http.GetAsync(path);
            string body = await r.Content.ReadAsStringAsync();
            if (r.StatusCode == wanted || sw.Elapsed > within) return (r.StatusCode, body);
            await Task.Delay(100);
        }
    }

    [Fact]
    public async Task Operator_add_on_a_new_folder_makes_the_first_operator_with_a_0600_key_file_and_prints_the_new_key_on_one_line()
    {
        var add = await RunAsync("operator", "add", "alice", "--data-dir", Data);
        Assert.True(add.Code == 0, add.Err);
        string alice = Assert.Single(Lines(add.Out));
        Assert.Matches(KeyShape, alice);

        string keyFile = OperatorKeyFile.PathIn(Data);
        Assert.Equal(OwnerOnly, ModeOf(keyFile));
        string first = Api.OperatorKey(Data);
        Assert.Matches(KeyShape, first);
        Assert.NotEqual(first, alice);
        Assert.Equal(
            [$"new data folder: the first operator's key is in {keyFile}", $"operator 2 'alice' added; its key {KeyId(alice)} is printed above and is not stored (only its hash is)."],
            Lines(add.Err));

        var list = await RunAsync("operator", "list", "--data-dir", Data);
        Assert.True(list.Code == 0, list.Err);
        Assert.Equal(["ID  NAME  STATE  KEYS (id: last used)", $"1  operator  enabled  {KeyId(first)}: never", $"2  alice  enabled  {KeyId(alice)}: never"], Lines(list.Out));
        Assert.Equal("", list.Err);
        // The key file is written once: a later command leaves it as it was.
        Assert.Equal(first, Api.OperatorKey(Data));
    }

    [Fact]
    public async Task Operator_add_and_revoke_take_effect_on_a_running_server_within_seconds_and_the_last_enabled_operator_cannot_be_revoked()
    {
        string alice = (await RunAsync("operator", "add", "alice", "--data-dir", Data)).Out.Trim();
        await using var serve = await ServeProcess.StartAsync(Data);
        using var asAlice = Api.Client(serve.Url, alice);
        using var asFirst = Api.Client(serve.Url, Api.OperatorKey(Data));

        // Alice's key is an operator's: it lists the principals (an operator-only endpoint).
        var principals = (await asAlice.GetJsonAsync("/api/principals")).GetProperty("principals").EnumerateArray()
            .Select(p => (p.GetProperty("id").GetUInt64(), p.GetProperty("kind").GetString(), p.GetProperty("name").GetString())).ToArray();
        Assert.Equal([(1UL, "operator", "operator"), (2UL, "operator", "alice")], principals);

        // An operator added while the server runs: its key works once the server has picked the change up.
        var addBob = await RunAsync("operator", "add", "bob", "--data-dir", Data);
        Assert.True(addBob.Code == 0, addBob.Err);
        using var asBob = Api.Client(serve.Url, addBob.Out.Trim());
        Assert.Equal(HttpStatusCode.OK, (await PollAsync(asBob, "/api/principals", HttpStatusCode.OK, TimeSpan.FromSeconds(10))).Status);

        var revoke = await RunAsync("operator", "revoke", "alice", "--data-dir", Data);
        Assert.True(revoke.Code == 0, revoke.Err);
        Assert.Equal("operator 2 'alice' disabled\n", revoke.Out);
        var (status, body) = await PollAsync(asAlice, "/api/principals", HttpStatusCode.Unauthorized, TimeSpan.FromSeconds(10));
        Assert.True(status == HttpStatusCode.Unauthorized, $"{(int)status}: {body}");
        Assert.Equal("The API key's principal is disabled.", JsonDocument.Parse(body).RootElement.GetProperty("detail").GetString());
        using (var stillFirst = await asFirst.GetAsync("/api/principals")) Assert.Equal(HttpStatusCode.OK, stillFirst.StatusCode);

        // By id as well as by name; then the first operator is the last one enabled, and stays.
        var revokeBob = await RunAsync("operator", "revoke", "3", "--data-dir", Data);
        Assert.Equal("operator 3 'bob' disabled\n", revokeBob.Out);
        Assert.Equal("error: 'operator' is the last enabled operator; add another first", OneErrorLine(await RunAsync("operator", "revoke", "operator", "--data-dir", Data)));
        Assert.Equal("error: no operator 'carol'", OneErrorLine(await RunAsync("operator", "revoke", "carol", "--data-dir", Data)));
        var list = await RunAsync("operator", "list", "--data-dir", Data);
        Assert.Equal(["1  operator  enabled", "2  alice  disabled", "3  bob  disabled"], Lines(list.Out).Skip(1).Select(l => string.Join("  ", l.Split("  ").Take(3))));
        using (var stillFirst = await asFirst.GetAsync("/api/principals")) Assert.Equal(HttpStatusCode.OK, stillFirst.StatusCode);
        Assert.Equal(0, await serve.StopAsync());
    }

    [Theory]
    [InlineData("empty", "is empty: it must hold the operator's API key (cg_…).")]
    [InlineData("missing", "is missing: this data folder has operators, so the operator key file must be there (restore it, or start with a new --data-dir).")]
    [InlineData("malformed", "does not hold an API key: expected one line 'cg_' + 16 hex digits + '_' + 43 base64url characters.")]
    [InlineData("foreign", "holds a key that is not one of this data folder's keys (was it copied from another folder?).")]
    public async Task A_server_whose_operator_key_file_is_unusable_exits_2_with_one_line_naming_the_problem_and_does_not_listen(string problem, string expected)
    {
        var made = await RunAsync("operator", "list", "--data-dir", Data); // a folder with its first operator and key file
        Assert.True(made.Code == 0, made.Err);
        string keyFile = OperatorKeyFile.PathIn(Data);
        switch (problem)
        {
            case "empty": File.WriteAllText(keyFile, ""); break;
            case "missing": File.Delete(keyFile); break;
            case "malformed": File.WriteAllText(keyFile, "operator password\n"); break;
            case "foreign": File.WriteAllText(keyFile, ApiKeyFormat.NewKey().Key + "\n"); break;
        }

        int port = Api.FreePort();
        var r = await RunAsync("serve", "--urls", $"http://127.0.0.1:{port}", "--node-urls", "", "--no-sites", "--data-dir", Data);
        Assert.Equal($"error: {keyFile} {expected}", OneErrorLine(r));
        // It stopped before opening the ledger, so long before binding: nothing printed, no ledger folder.
        Assert.Equal("", r.Out);
        Assert.False(Directory.Exists(Path.Combine(Data, "ledger")), "the ledger was opened");
    }

    [Theory]
    [InlineData("earlier-version", "was written by an earlier version of ComputeGrid (before principals and the chart of accounts); start with a new --data-dir, or move it aside.")]
    [InlineData("other-layout", "has data layout 'computegrid-data 1'; this version reads 'computegrid-data 2'.")]
    [InlineData("corrupt-trust-store", "cannot be opened: SQLite Error 26: 'file is not a database'.")]
    public async Task Serve_on_a_bad_data_folder_exits_2_with_one_line_naming_the_folder_and_the_problem(string problem, string expected)
    {
        Directory.CreateDirectory(Data);
        string named = Data;
        switch (problem)
        {
            case "earlier-version": // a ledger of the old numbering, no layout file
                Directory.CreateDirectory(Path.Combine(Data, "ledger"));
                File.WriteAllText(Path.Combine(Data, "ledger", "ledger.log"), "old");
                break;
            case "other-layout":
                File.WriteAllText(Path.Combine(Data, "layout"), "computegrid-data 1\n");
                break;
            case "corrupt-trust-store":
                File.WriteAllText(Path.Combine(Data, "layout"), "computegrid-data 2\n");
                File.WriteAllText(TrustStore.PathIn(Data), new string('x', 4096));
                named = "The trust store " + TrustStore.PathIn(Data);
                break;
        }
        var r = await RunAsync("serve", "--urls", "http://127.0.0.1:0", "--node-urls", "", "--no-sites", "--data-dir", Data);
        Assert.Equal($"error: {named} {expected}", OneErrorLine(r));
        Assert.DoesNotContain("computegrid serving on", r.Out);
    }

    [Theory]
    [InlineData("--urls")]
    [InlineData("--node-urls")]
    public async Task Serve_on_a_port_in_use_exits_2_with_exactly_one_line_on_stderr_and_no_stack_trace(string option)
    {
        using var taken = new TcpListener(IPAddress.Loopback, 0);
        taken.Start();
        string address = $"http://127.0.0.1:{((IPEndPoint)taken.LocalEndpoint).Port}";
        string[] urls = option == "--urls" ? ["--urls", address, "--node-urls", ""] : ["--urls", "http://127.0.0.1:0", "--node-urls", address];

        var r = await RunAsync(["serve", .. urls, "--no-sites", "--data-dir", Data]);
        string line = OneErrorLine(r);
        Assert.Contains("127.0.0.1:" + ((IPEndPoint)taken.LocalEndpoint).Port, line);
        Assert.EndsWith(": another program listens there; choose another port with --urls or --node-urls", line);
        Assert.DoesNotContain("Exception", r.Out + r.Err);
        Assert.DoesNotMatch(@"\n\s+at ", r.Out + r.Err);
        Assert.DoesNotContain("computegrid serving on", r.Out);
    }

    [Fact]
    public async Task Node_key_creates_an_owner_only_key_file_and_prints_the_same_public_key_and_node_id_every_time()
    {
        string file = Path.Combine(_dir, "keys", "node.key");
        var first = await RunAsync("node-key", "--key-file", file, "--region", "frankfurt");
        Assert.True(first.Code == 0, first.Err);
        Assert.Equal(OwnerOnly, ModeOf(file));
        byte[] publicKey = NodeSigning.PublicKeyOf(File.ReadAllBytes(file));
        string nodeId = "frankfurt-" + Convert.ToHexStringLower(SHA256.HashData(publicKey))[..8];
        Assert.Equal($"public_key: {Convert.ToBase64String(publicKey)}\nnode_id: {nodeId}\n", first.Out);
        Assert.Equal($"created {file} (Ed25519, owner-only)\n", first.Err);

        var again = await RunAsync("node-key", "--key-file", file, "--region", "frankfurt");
        Assert.True(again.Code == 0, again.Err);
        Assert.Equal(first.Out, again.Out);
        Assert.Equal("", again.Err);

        // Without a region: the public key only.
        var keyOnly = await RunAsync("node-key", "--key-file", file);
        Assert.Equal($"public_key: {Convert.ToBase64String(publicKey)}\n", keyOnly.Out);
    }

    [Fact]
    public async Task Node_key_with_an_unknown_region_or_a_key_file_that_is_not_32_bytes_exits_2_with_one_line()
    {
        string file = Path.Combine(_dir, "node.key");
        var r = await RunAsync("node-key", "--key-file", file, "--region", "atlantis");
        Assert.StartsWith("error: unknown region 'atlantis'; the regions are: ", OneErrorLine(r));
        Assert.Equal("", r.Out);
        Assert.False(File.Exists(file), "node-key made a key file for a command it refused");
        string bad = Path.Combine(_dir, "bad.key");
        File.WriteAllBytes(bad, new byte[31]);
        Assert.Equal($"error: The key file {bad} holds 31 bytes; it must hold a raw 32-byte Ed25519 private key.", OneErrorLine(await RunAsync("node-key", "--key-file", bad)));
        Assert.Contains("--key-file", OneErrorLine(await RunAsync("node-key", "--region", "frankfurt")));
    }
}

/// <summary><c>computegrid market …</c> trades as the holder of the key it is given, and only as that holder.</summary>
public sealed class MarketKeyCliTests(MarketServerFixture f) : IClassFixture<MarketServerFixture>
{
    private Task<(int Code, string Out, string Err)> MarketAsync(string? key, string? keyVariable, params string[] args) =>
        CliRunner.RunAsync(new Dictionary<string, string?> { ["COMPUTEGRID_API_KEY"] = keyVariable },
            ["market", .. args, "--server", f.Url, .. key is null ? Array.Empty<string>() : ["--key", key]]);

    private static string OneErrorLine((int Code, string Out, string Err) r)
    {
        Assert.True(r.Code == 2, $"exit {r.Code}: {r.Out}{r.Err}");
        string line = Assert.Single(r.Err.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("error: ", line);
        return line;
    }

    /// <summary>The H100 Frankfurt hourly instrument delivering three hours ahead (no other test of this class trades it).</summary>
    private async Task<string> SymbolAsync()
    {
        var r = await MarketAsync(null, null, "instruments", "--gpu", "H100", "--region", "frankfurt", "--kind", "H", "--limit", "4", "--json");
        Assert.True(r.Code == 0, r.Err);
        return JsonDocument.Parse(r.Out).RootElement.GetProperty("instruments")[3].GetProperty("symbol").GetString()!;
    }

    /// <summary>Places a resting buy at $1.00 (no seller goes that low here) as <paramref name="key"/>; returns its id.</summary>
    private async Task<long> RestingBuyAsync(string symbol, string? key, string? keyVariable)
    {
        var r = await MarketAsync(key, keyVariable, "order", "--symbol", symbol, "--side", "buy", "--price", "1", "--quantity", "1", "--json");
        Assert.True(r.Code == 0, r.Err);
        var result = JsonDocument.Parse(r.Out).RootElement;
        Assert.Equal("resting", result.GetProperty("status").GetString());
        return result.GetProperty("order_id").GetInt64();
    }

    private async Task<long[]> OrdersAsync(string key)
    {
        var r = await MarketAsync(key, null, "orders", "--json");
        Assert.True(r.Code == 0, r.Err);
        return JsonDocument.Parse(r.Out).RootElement.GetProperty("orders").EnumerateArray().Select(o => o.GetProperty("order_id").GetInt64()).ToArray();
    }

    [Fact]
    public async Task An_order_without_a_key_exits_2_with_one_line_that_names_the_key_option()
    {
        string symbol = await SymbolAsync();
        string line = OneErrorLine(await MarketAsync(null, null, "order", "--symbol", symbol, "--side", "buy", "--price", "1", "--quantity", "1"));
        Assert.Equal("error: This endpoint needs 'Authorization: Bearer <API key>'. (give your API key with --key or $COMPUTEGRID_API_KEY)", line);
        line = OneErrorLine(await MarketAsync(ApiKeyFormat.NewKey().Key, null, "order", "--symbol", symbol, "--side", "buy", "--price", "1", "--quantity", "1"));
        Assert.Equal("error: The API key is not valid. (give your API key with --key or $COMPUTEGRID_API_KEY)", line);
    }

    [Fact]
    public async Task A_customer_trades_with_its_key_from_the_option_or_the_environment_and_lists_only_its_own_orders()
    {
        string symbol = await SymbolAsync();
        long byOption = await RestingBuyAsync(symbol, f.Buyer.Key, null);
        long byVariable = await RestingBuyAsync(symbol, null, f.Buyer.Key);
        // --key wins over the environment's key.
        long rivals = await RestingBuyAsync(symbol, f.Rival.Key, f.Buyer.Key);

        long[] these = [byOption, byVariable, rivals];
        Assert.Equal([byOption, byVariable], (await OrdersAsync(f.Buyer.Key)).Where(these.Contains));
        Assert.Equal([rivals], (await OrdersAsync(f.Rival.Key)).Where(these.Contains));

        foreach (long id in new[] { byOption, byVariable })
            Assert.Equal(0, (await MarketAsync(f.Buyer.Key, null, "cancel", id.ToString())).Code);
        Assert.Equal(0, (await MarketAsync(f.Rival.Key, null, "cancel", rivals.ToString())).Code);
    }

    [Fact]
    public async Task Cancelling_or_replacing_another_customers_order_exits_2_as_not_found_and_leaves_it_open()
    {
        string symbol = await SymbolAsync();
        long rivals = await RestingBuyAsync(symbol, f.Rival.Key, null);

        Assert.Equal($"error: No open order {rivals} of yours.", OneErrorLine(await MarketAsync(f.Buyer.Key, null, "cancel", rivals.ToString())));
        Assert.Equal($"error: No open order {rivals} of yours.", OneErrorLine(await MarketAsync(f.Buyer.Key, null, "replace", rivals.ToString(), "--price", "0.5", "--quantity", "1")));
        Assert.Contains(rivals, await OrdersAsync(f.Rival.Key));
        var cancelled = await MarketAsync(f.Rival.Key, null, "cancel", rivals.ToString());
        Assert.Equal($"order {rivals} on {symbol}: cancelled, remaining 0\n", cancelled.Out);
    }

    [Fact]
    public async Task What_node_key_prints_is_what_an_operator_admits_a_node_with()
    {
        string file = Path.Combine(Path.GetTempPath(), $"cg-node-key-{Guid.NewGuid():N}.key");
        try
        {
            var printed = await CliRunner.RunAsync("node-key", "--key-file", file, "--region", "tokyo");
            Assert.True(printed.Code == 0, printed.Err);
            var fields = printed.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split(": ")).ToDictionary(p => p[0], p => p[1]);
            var admitted = await f.Operator.PostJsonAsync($"/api/providers/{f.Provider.Id}/nodes",
                new { node_id = fields["node_id"], public_key = fields["public_key"], price_ceiling_micro_usd_per_1k_tokens = 50 });
            Assert.Equal(fields["node_id"], admitted.GetProperty("node_id").GetString());
            Assert.Equal(fields["public_key"], admitted.GetProperty("public_key").GetString());
            Assert.Equal(f.Provider.Id, admitted.GetProperty("provider").GetUInt64());
        }
        finally
        {
            File.Delete(file);
        }
    }
}
