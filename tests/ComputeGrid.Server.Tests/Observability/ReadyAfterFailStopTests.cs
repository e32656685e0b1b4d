using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;

namespace ComputeGrid.Server.Tests.Observability;

/// <summary>
/// <c>/health/ready</c> across a fail-stop: a real <c>serve</c> child whose exchange journal fails at its fdatasync
/// (the journal's test seam, <c>CG_FAULT=journal-fsync-error</c>) answers 503 naming the exchange from the first failed
/// write on, and the same folder served again answers 200 only once it has recovered from disk.
/// </summary>
public sealed class ReadyAfterFailStopTests : IDisposable
{
    private readonly string _dir = TestServer.TempDir("ready-fail-stop");
    private readonly List<Process> _children = [];

    public void Dispose()
    {
        foreach (Process p in _children)
        {
            try { if (!p.HasExited) { p.Kill(entireProcessTree: true); p.WaitForExit(10_000); } }
            catch (InvalidOperationException) { }
            p.Dispose();
        }
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    [Fact]
    public async Task Ready_is_503_from_the_first_failed_journal_write_and_200_only_after_recovery_on_restart()
    {
        // The start's first tick is the one append that passes; the next one (a new customer, registered as a trader) fails
        // at fdatasync.
        var fault = new Dictionary<string, string> { ["CG_FAULT"] = "journal-fsync-error", ["CG_FAULT_AFTER"] = "1" };
        var (server, url) = await TestServer.StartChildAsync(_dir, 0, "", fault);
        _children.Add(server);
        using HttpClient anonymous = TestServer.Client(url, null);
        Assert.Equal("ready", (await anonymous.GetJsonAsync("/health/ready")).GetProperty("status").GetString());

        using HttpClient op = TestServer.Client(url, TestServer.OperatorKey(_dir));
        using (HttpResponseMessage created = await op.PostAsJsonAsync("/api/customers", new { name = "ready-fs", region = "frankfurt" }))
            Assert.Equal(HttpStatusCode.ServiceUnavailable, created.StatusCode);

        // Fail-stop: out of rotation, saying why, and still live.
        using (HttpResponseMessage ready = await anonymous.GetAsync("/health/ready"))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, ready.StatusCode);
            Assert.Equal("application/problem+json", ready.Content.Headers.ContentType?.MediaType);
            JsonElement problem = JsonDocument.Parse(await ready.Content.ReadAsStringAsync()).RootElement;
            JsonElement[] notReady = [.. problem.GetProperty("not_ready").EnumerateArray()];
            JsonElement exchange = Assert.Single(notReady);
            Assert.Equal("exchange", exchange.GetProperty("part").GetString());
            Assert.StartsWith("stopped after a write failure", exchange.GetProperty("reason").GetString(), StringComparison.Ordinal);
        }
        Assert.Equal("live", (await anonymous.GetJsonAsync("/health/live")).GetProperty("status").GetString());
        // It stays out of rotation: a fail-stop is not healed by time or by more requests.
        using (HttpResponseMessage again = await op.PostAsJsonAsync("/api/customers", new { name = "ready-fs-2", region = "frankfurt" }))
            Assert.Equal(HttpStatusCode.ServiceUnavailable, again.StatusCode);
        using (HttpResponseMessage still = await anonymous.GetAsync("/health/ready"))
            Assert.Equal(HttpStatusCode.ServiceUnavailable, still.StatusCode);

        // Restart on the same folder without the fault: serve listens only after recovery, so its first answer is 200,
        // and the recovered exchange takes writes again.
        server.Kill(entireProcessTree: true);
        await server.WaitForExitAsync();
        var (restarted, url2) = await TestServer.StartChildAsync(_dir);
        _children.Add(restarted);
        using HttpClient anonymous2 = TestServer.Client(url2, null);
        JsonElement body = await anonymous2.GetJsonAsync("/health/ready");
        Assert.Equal("ready", body.GetProperty("status").GetString());
        Assert.Contains("exchange", body.GetProperty("parts").EnumerateArray().Select(p => p.GetString()));
        using HttpClient op2 = TestServer.Client(url2, TestServer.OperatorKey(_dir));
        Party customer = await TestServer.NewCustomerAsync(op2, "ready-after", fundMicroUsd: 5_000_000);
        await TestServer.DepositAsync(customer, 1_000_000);
        Assert.Equal("ready", (await anonymous2.GetJsonAsync("/health/ready")).GetProperty("status").GetString());
    }
}
