using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using ComputeGrid.Chain;
using ComputeGrid.Cli.Demo;
using Xunit.Abstractions;

namespace ComputeGrid.Server.Tests.Demo;

/// <summary>
/// A bounded soak of <c>computegrid serve --demo --site-speed 600</c> as a child process, the way a user starts it: three
/// live sites, seven node processes running the real model, the demo Anvil and the seeded actors. After about two and a
/// half minutes the world must have done everything it claims, read back from the API (paid requests by key and by
/// x402, trades, leases, share trades, claims), the money invariants must hold (the overview's check over every account,
/// and <c>computegrid verify --ledger-dir</c> after a graceful stop), the server must have logged nothing at error or
/// critical level, and its resident memory must not grow by more than <see cref="RssGrowthMaxBytes"/> between the
/// end of the warm-up and the end. Then it is restarted on the same folder and, once it pays for requests again, killed
/// with SIGKILL (server, nodes and Anvil at once): the folder verifies, and a third start is ready with the invariants
/// holding and no acknowledged paid request lost. Skipped (with the reason) where the demo chain's tools cannot be installed.
/// </summary>
public sealed partial class DemoSoakTests(ITestOutputHelper output) : IDisposable
{
    /// <summary>
    /// The bound on the server's RSS growth after warm-up. The state the world adds in 90 s is a few thousand ledger
    /// transfers, exchange orders and journal records (well under 5 MB); the rest of the bound is the GC's latitude:
    /// a workstation-concurrent heap may keep a few generation-0 budgets (each up to the L3 size, tens of MB here) before
    /// it collects. A leak of a request's buffers (about 2 per second × 10 KB) or of a connection per step would pass
    /// it only in a soak much longer than this one, so the test also prints every sample for the note.
    /// </summary>
    private const long RssGrowthMaxBytes = 64L << 20;

    private static readonly TimeSpan StartMax = TimeSpan.FromMinutes(3);
    private static readonly TimeSpan WarmUp = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan Soak = TimeSpan.FromSeconds(100);

    private readonly string _dir = TestServer.TempDir("demo-soak");
    private readonly List<string> _log = [];

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    [SkippableFact]
    public async Task The_demo_world_runs_a_soak_with_every_actor_busy_the_money_conserved_no_error_logged_memory_stable_and_survives_a_kill_9()
    {
        Skip.IfNot(ChainTools.TryEnsure(out _, out string reason), $"the demo chain (Anvil) is not available: {reason}");
        var started = Stopwatch.StartNew();
        using Process server = Start();
        try
        {
            string url = await ServingAsync(server);
            using var op = TestServer.Client(url, TestServer.OperatorKey(_dir));

            // The first paid request: the time from the start of the process, for the note.
            JsonElement overview = await UntilAsync(async () =>
            {
                using HttpResponseMessage r = await op.GetAsync("/api/console/overview"); // 503 before the first sample
                if (!r.IsSuccessStatusCode) return (false, default);
                JsonElement o = JsonDocument.Parse(await r.Content.ReadAsStringAsync()).RootElement.Clone();
                return (o.GetProperty("requests").GetProperty("total").GetInt64() > 0, o);
            }, StartMax, "no paid request", server);
            output.WriteLine($"first paid request {started.Elapsed.TotalSeconds:0.0} s after the process started");

            await Task.Delay(WarmUp);
            var samples = new List<(double At, long Rss)>();
            var soak = Stopwatch.StartNew();
            long cpuBefore = CpuTicks(server.Id);
            while (soak.Elapsed < Soak)
            {
                Assert.False(server.HasExited, $"the server exited during the soak: {Tail()}");
                samples.Add((soak.Elapsed.TotalSeconds, Rss(server.Id)));
                await Task.Delay(TimeSpan.FromSeconds(10));
            }
            samples.Add((soak.Elapsed.TotalSeconds, Rss(server.Id)));
            double cpuSeconds = (CpuTicks(server.Id) - cpuBefore) / 100.0; // USER_HZ
            output.WriteLine("RSS samples (s after warm-up: MB): " + string.Join(", ", samples.Select(s => $"{s.At:0}: {s.Rss / 1048576.0:0.0}")));
            output.WriteLine($"server CPU over the soak: {cpuSeconds:0.0} s in {soak.Elapsed.TotalSeconds:0} s ({100 * cpuSeconds / soak.Elapsed.TotalSeconds:0} % of one core)");

            // What happened, read from the API.
            overview = await op.GetJsonAsync("/api/console/overview");
            JsonElement invariants = overview.GetProperty("ledger").GetProperty("invariants");
            Assert.True(invariants.GetProperty("ok").GetBoolean(), $"the money invariants broke: {invariants}");
            long requests = overview.GetProperty("requests").GetProperty("total").GetInt64();
            long trades = overview.GetProperty("trades").GetProperty("count").GetInt64();
            var actors = JsonSerializer.Deserialize<Dictionary<string, DemoActor>>(File.ReadAllText(Path.Combine(_dir, DemoWorld.ActorsFile)))!;

            long keyed = 0;
            foreach (DemoCustomer c in DemoWorld.Customers)
            {
                using var customer = TestServer.Client(url, actors[c.Name].Key);
                keyed += (await customer.GetJsonAsync("/api/console/overview")).GetProperty("requests").GetProperty("total").GetInt64();
            }
            JsonElement settlements = (await op.GetJsonAsync("/api/chain/settlements")).GetProperty("counts");
            long x402 = new[] { "reserved", "sent", "settled" }.Sum(s => settlements.TryGetProperty(s, out JsonElement n) ? n.GetInt64() : 0);
            long failedX402 = settlements.TryGetProperty("failed", out JsonElement f) ? f.GetInt64() : 0;

            long leases = 0;
            foreach (DemoCustomer b in DemoWorld.Buyers)
            {
                using var buyer = TestServer.Client(url, actors[b.Name].Key);
                leases += (await buyer.GetJsonAsync("/api/exchange/leases")).GetProperty("leases").GetArrayLength();
            }
            long shareTrades = 0, claimed = 0;
            using var anonymous = TestServer.Client(url, null);
            var symbols = new HashSet<string>();
            foreach (DemoCustomer h in DemoWorld.Holders)
            {
                using var holder = TestServer.Client(url, actors[h.Name].Key);
                foreach (JsonElement holding in (await holder.GetJsonAsync("/api/shares/holdings")).GetProperty("holdings").EnumerateArray())
                {
                    symbols.Add(holding.GetProperty("symbol").GetString()!);
                    claimed += (await holder.GetJsonAsync($"/api/shares/{holding.GetProperty("node").GetInt64()}/entitlement")).GetProperty("claimed_micro_usd").GetInt64();
                }
            }
            foreach (string symbol in symbols)
                shareTrades += (await anonymous.GetJsonAsync($"/api/exchange/trades/{symbol}?limit=1000")).GetProperty("trades").GetArrayLength();
            output.WriteLine($"in the soak: {requests} paid requests ({keyed} keyed, {x402} x402, {failedX402} x402 failed), {trades} trades, {leases} leases of the buyers, "
                + $"{shareTrades} share trades, {claimed} micro-USD claimed by holders");

            Assert.True(keyed > 0, "no keyed request was paid");
            Assert.True(x402 > 0, $"no x402 request was paid: {settlements}");
            Assert.Equal(0, failedX402);
            Assert.True(trades > 0, "no trade");
            Assert.True(leases > 0, "no lease");
            Assert.True(shareTrades > 0, "no share trade");
            Assert.True(claimed > 0, "no holder claimed revenue");

            long growth = samples[^1].Rss - samples[0].Rss;
            Assert.True(growth < RssGrowthMaxBytes, $"RSS grew {growth / 1048576.0:0.0} MB after warm-up (bound {RssGrowthMaxBytes >> 20} MB)");

            // A graceful stop, then the ledger folder verifies offline.
            Process.Start("kill", ["-TERM", server.Id.ToString(CultureInfo.InvariantCulture)]).WaitForExit();
            using (var stop = new CancellationTokenSource(TimeSpan.FromSeconds(60))) await server.WaitForExitAsync(stop.Token);
            Assert.Equal(0, server.ExitCode);
            var (code, verified) = await VerifyAsync();
            Assert.True(code == 0, $"verify --ledger-dir failed ({code}): {verified}");
            output.WriteLine(verified.Trim());

            await KilledAndRestartedAsync(requests);

            string[] errors;
            lock (_log) errors = [.. _log.Where(l => ErrorLine().IsMatch(l))];
            Assert.True(errors.Length == 0, "the server logged at error or critical level:\n" + string.Join('\n', errors));
        }
        finally
        {
            if (!server.HasExited) server.Kill(entireProcessTree: true);
            await server.WaitForExitAsync();
        }
    }

    // The world restarted on the same folder until it pays for requests again, then the whole process tree (server, node
    // processes, Anvil) killed with SIGKILL mid-flight: the ledger folder verifies, and a third start comes back ready with
    // the invariants holding and every paid request acknowledged before the kill still counted.
    private async Task KilledAndRestartedAsync(long requestsBefore)
    {
        int mark;
        lock (_log) mark = _log.Count;
        long acknowledged;
        var restarted = Stopwatch.StartNew();
        using (Process second = Start())
        {
            try
            {
                string url = await ServingAsync(second, mark);
                using var op = TestServer.Client(url, TestServer.OperatorKey(_dir));
                acknowledged = await UntilAsync(async () =>
                {
                    using HttpResponseMessage r = await op.GetAsync("/api/console/overview");
                    if (!r.IsSuccessStatusCode) return (false, 0L);
                    long total = JsonDocument.Parse(await r.Content.ReadAsStringAsync()).RootElement.GetProperty("requests").GetProperty("total").GetInt64();
                    return (total > requestsBefore + 5, total);
                }, StartMax, "no paid request after the restart", second);
                output.WriteLine($"restarted: paying again {restarted.Elapsed.TotalSeconds:0.0} s after the start ({acknowledged} paid requests acknowledged); killing the tree");
            }
            finally
            {
                if (!second.HasExited) second.Kill(entireProcessTree: true); // SIGKILL, the server and every child
                await second.WaitForExitAsync();
            }
        }
        var (code, verified) = await VerifyAsync();
        Assert.True(code == 0, $"verify --ledger-dir failed after kill -9 ({code}): {verified}");
        output.WriteLine("after kill -9: " + verified.Trim());

        lock (_log) mark = _log.Count;
        using Process third = Start();
        try
        {
            string url = await ServingAsync(third, mark);
            using var op = TestServer.Client(url, TestServer.OperatorKey(_dir));
            JsonElement overview = await UntilAsync(async () =>
            {
                using HttpResponseMessage r = await op.GetAsync("/api/console/overview");
                return r.IsSuccessStatusCode ? (true, JsonDocument.Parse(await r.Content.ReadAsStringAsync()).RootElement.Clone()) : (false, default);
            }, StartMax, "no overview after the kill", third);
            using (HttpResponseMessage ready = await op.GetAsync("/health/ready"))
                Assert.True(ready.IsSuccessStatusCode, $"not ready after the kill: {(int)ready.StatusCode} {await ready.Content.ReadAsStringAsync()}");
            JsonElement invariants = overview.GetProperty("ledger").GetProperty("invariants");
            Assert.True(invariants.GetProperty("ok").GetBoolean(), $"the money invariants broke after the kill: {invariants}");
            long counted = overview.GetProperty("requests").GetProperty("total").GetInt64();
            Assert.True(counted >= acknowledged, $"{acknowledged} paid requests acknowledged before the kill, {counted} counted after it");
            output.WriteLine($"after the kill: ready, invariants hold, {counted} paid requests counted (≥ {acknowledged})");
            Process.Start("kill", ["-TERM", third.Id.ToString(CultureInfo.InvariantCulture)]).WaitForExit();
            using (var stop = new CancellationTokenSource(TimeSpan.FromSeconds(60))) await third.WaitForExitAsync(stop.Token);
            Assert.Equal(0, third.ExitCode);
        }
        finally
        {
            if (!third.HasExited) third.Kill(entireProcessTree: true);
            await third.WaitForExitAsync();
        }
    }

    // The simple console logger's level tags ("12:00:00 fail: …", "crit: …"), also in a node's prefixed lines.
    [GeneratedRegex(@"\b(fail|crit):")]
    private static partial Regex ErrorLine();

    private Process Start()
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string a in new[]
        {
            Path.Combine(AppContext.BaseDirectory, "computegrid.dll"), "serve", "--urls", "http://127.0.0.1:0", "--node-urls", "http://127.0.0.1:0",
            "--data-dir", _dir, "--demo", "--site-speed", "600", "--seed", "1",
        }) psi.ArgumentList.Add(a);
        var p = Process.Start(psi)!;
        p.OutputDataReceived += (_, e) => { if (e.Data is { } l) lock (_log) _log.Add(l); };
        p.ErrorDataReceived += (_, e) => { if (e.Data is { } l) lock (_log) _log.Add(l); };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        return p;
    }

    // The address the server printed, in the log lines from `from` on (a restart prints its own).
    private async Task<string> ServingAsync(Process server, int from = 0)
    {
        const string Prefix = "computegrid serving on ";
        return await UntilAsync(async () =>
        {
            await Task.Yield();
            string? line;
            lock (_log) line = _log.Skip(from).FirstOrDefault(l => l.StartsWith(Prefix, StringComparison.Ordinal));
            return (line is not null, line is null ? "" : line[Prefix.Length..].Split(' ')[0].Split(';')[0]);
        }, StartMax, "the server did not print its address", server);
    }

    private async Task<T> UntilAsync<T>(Func<Task<(bool Done, T Value)>> check, TimeSpan within, string what, Process server)
    {
        var sw = Stopwatch.StartNew();
        while (true)
        {
            Assert.False(server.HasExited, $"the server exited ({(server.HasExited ? server.ExitCode : 0)}) while waiting: {what}\n{Tail()}");
            try
            {
                var (done, value) = await check();
                if (done) return value;
            }
            catch (HttpRequestException) { } // not answering yet (or 503 before the first sample)
            if (sw.Elapsed > within) Assert.Fail($"{what} within {within.TotalSeconds:0} s\n{Tail()}");
            await Task.Delay(500);
        }
    }

    private string Tail()
    {
        lock (_log) return string.Join('\n', _log.TakeLast(40));
    }

    private async Task<(int Code, string Output)> VerifyAsync()
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string a in new[] { Path.Combine(AppContext.BaseDirectory, "computegrid.dll"), "verify", "--ledger-dir", _dir }) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        Task<string> stdout = p.StandardOutput.ReadToEndAsync(), stderr = p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync();
        return (p.ExitCode, await stdout + await stderr);
    }

    // VmRSS of /proc/PID/status, in bytes.
    private static long Rss(int pid)
    {
        foreach (string line in File.ReadLines($"/proc/{pid}/status"))
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                return long.Parse(line["VmRSS:".Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) * 1024;
        throw new InvalidOperationException($"no VmRSS in /proc/{pid}/status");
    }

    // utime + stime of /proc/PID/stat, in clock ticks (fields 14 and 15, after the parenthesised command name).
    private static long CpuTicks(int pid)
    {
        string stat = File.ReadAllText($"/proc/{pid}/stat");
        string[] fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
    }
}
