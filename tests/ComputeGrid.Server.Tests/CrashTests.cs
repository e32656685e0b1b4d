using System.Collections.Concurrent;
using System.Net.Http.Json;
using System.Text.Json;
using ComputeGrid.Ledger;
using Xunit.Abstractions;

namespace ComputeGrid.Server.Tests;

/// <summary>
/// Kills <c>computegrid serve</c> with SIGKILL at random moments while several clients send transfers,
/// restarts it, and checks that every acknowledged transfer survived, balances add up exactly to the
/// transfers that exist, and the log's hash chain verifies. Seeded: set CG_SEED to replay a failure.
/// </summary>
public sealed class CrashTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _dir = TestServer.TempDir("crash");

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    private sealed record Sent(UInt128 Id, ulong Debit, ulong Credit, long Amount);

    [Fact]
    public async Task Acknowledged_transfers_survive_repeated_SIGKILL()
    {
        int seed = int.TryParse(Environment.GetEnvironmentVariable("CG_SEED"), out var s) ? s : 20261126;
        output.WriteLine($"seed {seed} (set CG_SEED={seed} to replay)");
        var rng = new Random(seed);
        const int accounts = 16, clients = 4, kills = 6;
        var sent = new ConcurrentDictionary<UInt128, Sent>();
        var acked = new ConcurrentDictionary<UInt128, string>();
        // The first start picks a free port; every restart binds the same one, so the clients' address stays valid.
        var (server, url) = await TestServer.StartChildAsync(_dir);
        int port = new Uri(url).Port;
        // The raw ledger API is the operators': the child wrote the first operator's key as it started.
        using var http = TestServer.Client(url, TestServer.OperatorKey(_dir));
        http.Timeout = TimeSpan.FromSeconds(10);
        // Client-space accounts (ids below 2^127, code 1), in USDC.
        var created = await http.PostJsonAsync("/api/ledger/accounts",
            Enumerable.Range(1, accounts).Select(i => new { id = i.ToString(), asset = "USDC", code = 1 }).ToArray());
        Assert.Equal(accounts, created.GetProperty("ok").GetInt32());

        for (int round = 0; round < kills; round++)
        {
            using var stop = new CancellationTokenSource();
            int killAfterMs = rng.Next(150, 1200);
            var clientTasks = Enumerable.Range(0, clients).Select(c =>
            {
                var crng = new Random(seed * 31 + round * 7 + c);
                return Task.Run(() => ClientLoop(http, crng, round, c, sent, acked, stop.Token));
            }).ToArray();
            await Task.Delay(killAfterMs);
            server.Kill(entireProcessTree: true); // SIGKILL: no flush, no snapshot
            await server.WaitForExitAsync();
            stop.Cancel();
            await Task.WhenAll(clientTasks);
            output.WriteLine($"round {round}: killed after {killAfterMs} ms; {acked.Count} transfers acknowledged so far");

            // The log on disk must verify as it is (a torn tail is allowed; recovery truncates it).
            var v = LedgerEngine.VerifyDirectory(Path.Combine(_dir, "ledger"));
            output.WriteLine($"  log: {v.Records} records, last op {v.LastOp}, {v.TrailingBytes} torn bytes");

            (server, _) = await TestServer.StartChildAsync(_dir, port);
            await CheckAsync(http, sent, acked, accounts);
        }

        // Idempotency across crashes: resending acknowledged transfers answers exists and changes nothing.
        var again = acked.Keys.Take(200).Select(id => sent[id]).Select(t => Body(t)).ToArray();
        Assert.NotEmpty(again);
        var res = await http.PostJsonAsync("/api/ledger/transfers", again);
        foreach (var r in res.GetProperty("results").EnumerateArray()) Assert.Equal("exists", r.GetProperty("result").GetString());
        await CheckAsync(http, sent, acked, accounts);

        // A graceful stop (SIGTERM) flushes and snapshots; the chain verifies from genesis.
        await StopGracefullyAsync(server);
        var final = LedgerEngine.VerifyDirectory(Path.Combine(_dir, "ledger"));
        Assert.Equal(0, final.TrailingBytes);
        Assert.True(acked.Count > 100, $"only {acked.Count} transfers were acknowledged: the test did too little");
        // Every id the clients sent is of the client space, which the raw API serves.
        Assert.All(sent.Keys, id => Assert.False(ChartOfAccounts.IsReserved(id), $"{id} is a reserved id"));
    }

    private static object Body(Sent t) => new { id = t.Id.ToString(), debit_account_id = t.Debit.ToString(), credit_account_id = t.Credit.ToString(), amount = t.Amount, asset = "USDC", code = 1 };

    private static async Task ClientLoop(HttpClient http, Random rng, int round, int client, ConcurrentDictionary<UInt128, Sent> sent,
        ConcurrentDictionary<UInt128, string> acked, CancellationToken stop)
    {
        ulong seq = 0;
        while (!stop.IsCancellationRequested)
        {
            int n = rng.Next(1, 40);
            var batch = new Sent[n];
            for (int i = 0; i < n; i++)
            {
                ulong d = (ulong)rng.Next(1, 17), c = (ulong)rng.Next(1, 16);
                if (c >= d) c++;
                var id = new UInt128((ulong)(round + 1) << 40 | (ulong)client << 32, ++seq);
                batch[i] = new Sent(id, d, c, rng.Next(1, 1000));
                sent[id] = batch[i];
            }
            try
            {
                var r = await http.PostAsJsonAsync("/api/ledger/transfers", batch.Select(Body).ToArray(), TestServer.Json, stop);
                if (!r.IsSuccessStatusCode) continue;
                var json = await r.Content.ReadFromJsonAsync<JsonElement>(stop);
                int i = 0;
                foreach (var res in json.GetProperty("results").EnumerateArray())
                    acked[batch[i++].Id] = res.GetProperty("result").GetString()!;
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException or OperationCanceledException or IOException)
            {
                return; // the server died under us: this batch's fate is unknown, which is allowed
            }
        }
    }

    private static async Task CheckAsync(HttpClient http, ConcurrentDictionary<UInt128, Sent> sent, ConcurrentDictionary<UInt128, string> acked, int accounts)
    {
        // Which of the transfers ever sent exist now (acknowledged or not)?
        var exists = new HashSet<UInt128>();
        foreach (var chunk in sent.Keys.Chunk(4000))
        {
            var found = await http.PostJsonAsync("/api/ledger/transfers/lookup", chunk.Select(id => id.ToString()).ToArray());
            foreach (var t in found.EnumerateArray()) exists.Add(UInt128.Parse(t.GetProperty("id").GetString()!));
        }
        foreach (var (id, result) in acked)
        {
            if (result == "ok") Assert.True(exists.Contains(id), $"acknowledged transfer {id} was lost");
        }
        // Balances equal exactly what the surviving transfers imply, and debits equal credits.
        var expectedDebits = new long[accounts + 1];
        var expectedCredits = new long[accounts + 1];
        foreach (var id in exists)
        {
            var t = sent[id];
            expectedDebits[t.Debit] += t.Amount;
            expectedCredits[t.Credit] += t.Amount;
        }
        var all = await http.PostJsonAsync("/api/ledger/accounts/lookup", Enumerable.Range(1, accounts).Select(i => i.ToString()).ToArray());
        long totalD = 0, totalC = 0;
        foreach (var a in all.EnumerateArray())
        {
            int i = int.Parse(a.GetProperty("id").GetString()!);
            long d = a.GetProperty("debits_posted").GetInt64(), c = a.GetProperty("credits_posted").GetInt64();
            Assert.Equal(expectedDebits[i], d);
            Assert.Equal(expectedCredits[i], c);
            totalD += d;
            totalC += c;
        }
        Assert.Equal(totalD, totalC);
    }

    private static async Task StopGracefullyAsync(System.Diagnostics.Process p)
    {
        // SIGTERM, as a service manager sends it.
        using var kill = System.Diagnostics.Process.Start("kill", ["-TERM", p.Id.ToString()]);
        await kill.WaitForExitAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await p.WaitForExitAsync(cts.Token);
        Assert.Equal(0, p.ExitCode);
    }
}
