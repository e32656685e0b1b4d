using System.Diagnostics;
using System.Text.Json;
using ComputeGrid.Ledger;

namespace ComputeGrid.Cli.Tests;

/// <summary>The `computegrid` executable as a user runs it: exit codes, stderr lines, benchmark output.</summary>
public sealed class CliTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "cg-cli-" + Guid.NewGuid().ToString("N"));

    public CliTests() => Directory.CreateDirectory(_dir);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static Task<(int Code, string Out, string Err)> RunAsync(params string[] args) => CliRunner.RunAsync(args);

    private static void AssertOneLineError((int Code, string Out, string Err) r)
    {
        Assert.Equal(2, r.Code);
        var lines = r.Err.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Single(lines);
        Assert.StartsWith("error: ", lines[0]);
    }

    [Theory]
    [InlineData("frobnicate")]
    [InlineData("verify")]
    [InlineData("verify", "--proof", "/nonexistent/proof.json", "--root", "00000000000000000000000000000000000000000000000000000000000000aa")]
    [InlineData("verify", "--proof", "/nonexistent/proof.json", "--root", "xyz")]
    [InlineData("verify", "--ledger-dir", "/nonexistent/ledger")]
    [InlineData("bench", "nothing")]
    [InlineData("bench", "exchange", "--only", "nothing")]
    [InlineData("serve", "--urls")]
    [InlineData("node", "--server", "http://127.0.0.1:5081", "--region", "atlantis", "--price", "20", "--capacity", "4")]
    [InlineData("node", "--server", "http://127.0.0.1:5081", "--region", "dallas", "--price", "-1", "--capacity", "4")]
    [InlineData("node", "--server", "http://127.0.0.1:5081", "--region", "dallas", "--price", "20", "--capacity", "0")]
    [InlineData("node", "--server", "not a url", "--region", "dallas", "--price", "20", "--capacity", "4")]
    [InlineData("bench", "inference", "--work-dir")]
    [InlineData("bench-probe", "not-a-url", "5", "1")]
    [InlineData("bench-probe", "http://127.0.0.1:1", "0", "1")]
    [InlineData("bench-probe", "http://127.0.0.1:1", "5", "0")]
    public async Task Bad_usage_exits_2_with_one_line_on_stderr(params string[] args) => AssertOneLineError(await RunAsync(args));

    [Fact]
    public async Task Verify_accepts_a_good_proof_and_rejects_a_wrong_root_or_a_tampered_file()
    {
        string ledgerDir = Path.Combine(_dir, "ledger");
        string root, proofPath = Path.Combine(_dir, "proof.json");
        await using (var engine = LedgerEngine.Open(new LedgerEngineOptions { DataDirectory = ledgerDir }))
        {
            await engine.CreateAccountsAsync(new[] { new Account { Id = 1, Asset = 1, Code = 1 }, new Account { Id = 2, Asset = 1, Code = 1 }, new Account { Id = 3, Asset = 1, Code = 1 } });
            await engine.CreateTransfersAsync(new[] { new Transfer { Id = 1, DebitAccountId = 1, CreditAccountId = 2, Amount = 70, Asset = 1, Code = 1 } });
            var cp = await engine.CheckpointAsync();
            root = cp.Root;
            File.WriteAllText(proofPath, JsonSerializer.Serialize(cp.ProofFor(2), ComputeGrid.Ledger.Audit.BalanceProof.Json));
        }
        var ok = await RunAsync("verify", "--proof", proofPath, "--root", root);
        Assert.Equal(0, ok.Code);
        Assert.Contains("credits_posted=70", ok.Out);

        var wrongRoot = await RunAsync("verify", "--proof", proofPath, "--root", new string('a', 64));
        Assert.Equal(1, wrongRoot.Code);

        string proof = File.ReadAllText(proofPath), tamperedProof = proof.Replace("\"credits_posted\": 70", "\"credits_posted\": 7000");
        Assert.NotEqual(proof, tamperedProof);
        File.WriteAllText(proofPath, tamperedProof);
        var tampered = await RunAsync("verify", "--proof", proofPath, "--root", root);
        Assert.Equal(1, tampered.Code);

        File.WriteAllText(proofPath, "{ not json");
        AssertOneLineError(await RunAsync("verify", "--proof", proofPath, "--root", root));

        var chain = await RunAsync("verify", "--ledger-dir", ledgerDir);
        Assert.Equal(0, chain.Code);
        Assert.StartsWith("ok: 2 records", chain.Out);
    }

    [Fact]
    public async Task Verify_ledger_dir_exits_0_on_a_sound_or_torn_folder_and_1_with_one_line_on_corruption()
    {
        string ledgerDir = Path.Combine(_dir, "ledger");
        await using (var engine = LedgerEngine.Open(new LedgerEngineOptions { DataDirectory = ledgerDir }))
        {
            await engine.CreateAccountsAsync(new[] { new Account { Id = 1, Asset = 1, Code = 1 }, new Account { Id = 2, Asset = 1, Code = 1 } });
            for (int i = 1; i <= 5; i++)
                await engine.CreateTransfersAsync(new[] { new Transfer { Id = (ulong)i, DebitAccountId = 1, CreditAccountId = 2, Amount = i, Asset = 1, Code = 1 } });
        }
        string log = Path.Combine(ledgerDir, "ledger.log");
        var sound = await RunAsync("verify", "--ledger-dir", ledgerDir);
        Assert.Equal(0, sound.Code);
        Assert.StartsWith("ok: 6 records", sound.Out);
        Assert.Contains("snapshot at op 6 matches the replay", sound.Out);

        // A torn tail: reported, still sound (nothing is modified).
        File.AppendAllBytes(log, new byte[100]);
        var torn = await RunAsync("verify", "--ledger-dir", ledgerDir);
        Assert.Equal(0, torn.Code);
        Assert.Contains("100 bytes of a torn tail", torn.Out);
        Assert.Equal(100, new FileInfo(log).Length - LedgerLog(ledgerDir));

        // One byte flipped in the second record, valid records after it: corruption, one line naming file, offset and op.
        byte[] bytes = File.ReadAllBytes(log);
        long second = bytes.Length - 100 - 5 * (64 + 128);
        bytes[second + 64 + 10] ^= 0x20;
        File.WriteAllBytes(log, bytes);
        var corrupt = await RunAsync("verify", "--ledger-dir", ledgerDir);
        Assert.Equal(1, corrupt.Code);
        string line = Assert.Single(corrupt.Err.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Equal($"error: ledger corrupt: {log} at byte {second}, op 2: hash mismatch, and a record (op 3) follows at byte {second + 64 + 128}: not a torn tail", line);
        Assert.Equal("", corrupt.Out);
    }

    [Fact]
    public async Task Serve_refuses_a_corrupt_ledger_with_one_line_and_exit_1()
    {
        string dataDir = Path.Combine(_dir, "data");
        Directory.CreateDirectory(dataDir);
        ComputeGrid.Server.DataLayout.Check(dataDir);
        string ledgerDir = Path.Combine(dataDir, "ledger");
        await using (var engine = LedgerEngine.Open(new LedgerEngineOptions { DataDirectory = ledgerDir }))
        {
            await engine.CreateAccountsAsync(new[] { new Account { Id = 1, Asset = 1, Code = 1 }, new Account { Id = 2, Asset = 1, Code = 1 } });
            for (int i = 1; i <= 3; i++)
                await engine.CreateTransfersAsync(new[] { new Transfer { Id = (ulong)i, DebitAccountId = 1, CreditAccountId = 2, Amount = i, Asset = 1, Code = 1 } });
        }
        File.Delete(Path.Combine(ledgerDir, "ledger.snapshot"));
        string log = Path.Combine(ledgerDir, "ledger.log");
        byte[] bytes = File.ReadAllBytes(log);
        bytes[3] ^= 0x01; // the first record's magic
        File.WriteAllBytes(log, bytes);
        var r = await RunAsync("serve", "--urls", "http://127.0.0.1:0", "--no-sites", "--node-urls", "", "--data-dir", dataDir);
        Assert.Equal(1, r.Code);
        string line = Assert.Single(r.Err.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith($"error: ledger corrupt: {log} at byte 0, op 1: bad magic, and a record (op 2) follows", line);
        Assert.Equal(bytes, File.ReadAllBytes(log));
    }

    private static long LedgerLog(string dir) => ComputeGrid.Ledger.Storage.LedgerLog.Scan(Path.Combine(dir, "ledger.log"), 0, 0, ComputeGrid.Ledger.Storage.LedgerLog.GenesisHash, null).ValidBytes;

    [Fact]
    public async Task Serve_refuses_a_data_folder_in_use_with_one_line()
    {
        string dataDir = Path.Combine(_dir, "data");
        // A folder of this version's layout, whose ledger another process holds.
        Directory.CreateDirectory(dataDir);
        ComputeGrid.Server.DataLayout.Check(dataDir);
        await using var engine = LedgerEngine.Open(new LedgerEngineOptions { DataDirectory = Path.Combine(dataDir, "ledger") });
        var r = await RunAsync("serve", "--urls", "http://127.0.0.1:0", "--data-dir", dataDir);
        AssertOneLineError(r);
        Assert.Contains("in use", r.Err);
    }

    [Fact]
    public async Task Serve_refuses_port_0_on_localhost_with_one_line()
    {
        // Port 0 asks the kernel for a free port; "localhost" would bind two sockets (IPv4 and IPv6) to two different ports.
        var r = await RunAsync("serve", "--urls", "http://localhost:0", "--no-sites", "--node-urls", "", "--data-dir", Path.Combine(_dir, "data"));
        AssertOneLineError(r);
        Assert.Contains("port 0", r.Err);
    }

    [Fact]
    public async Task Bench_ledger_quick_ends_with_one_json_object()
    {
        var r = await RunAsync("bench", "ledger", "--quick", "--work-dir", _dir);
        Assert.True(r.Code == 0, r.Err);
        string last = r.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries)[^1];
        using var doc = JsonDocument.Parse(last);
        Assert.Equal("ledger", doc.RootElement.GetProperty("bench").GetString());
        var m = doc.RootElement.GetProperty("metrics");
        foreach (var key in new[] { "inmem_transfers_per_s", "durable_transfers_per_s", "durable_batch_p99_ms", "sqlite_transfers_per_s", "durable_vs_sqlite" })
            Assert.True(m.GetProperty(key).GetDouble() > 0, key);
    }

    [Fact]
    public async Task Bench_inference_quick_ends_with_one_json_object()
    {
        // A guard, not a speed check: beside other work on 2 cores the quick bench has run past three minutes.
        var r = await CliRunner.RunProcessAsync("dotnet", [Path.Combine(AppContext.BaseDirectory, "computegrid.dll"), "bench", "inference", "--quick"], null, null, TimeSpan.FromMinutes(8));
        Assert.True(r.Code == 0, r.Err);
        string last = r.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries)[^1];
        using var doc = JsonDocument.Parse(last);
        Assert.Equal("inference", doc.RootElement.GetProperty("bench").GetString());
        var m = doc.RootElement.GetProperty("metrics");
        foreach (var key in new[] { "model_sentences_per_s", "e2e_sentences_per_s", "e2e_vs_model", "overhead_p50_ms", "overhead_p99_ms", "router_decisions_per_s",
            "overhead_separate_client_p50_ms", "overhead_separate_client_p99_ms", "overhead_floor_p50_ms", "overhead_floor_p99_ms" })
            Assert.True(m.GetProperty(key).GetDouble() > 0, key);
        Assert.Equal(0, m.GetProperty("e2e_failures").GetInt32());
        if (OperatingSystem.IsLinux()) Assert.True(m.GetProperty("overhead_window_steal_ms").GetDouble() >= 0); // read from /proc/stat
    }
}
