using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json;

namespace ComputeGrid.Cli.Tests;

/// <summary>
/// <c>serve --demo</c>: seven node processes running the real model, admitted for <c>demo-provider</c> with their keys in
/// <c>DATA/nodes/</c>, and a demo customer funded once whose key is written to <c>DATA/demo-api-key.txt</c>. Slow: the
/// model loads in each node process, twice.
/// </summary>
public sealed class DemoCliTests : IDisposable
{
    private const UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    private const long DemoFunding = 100_000_000;
    private static readonly string[] DemoNodes = ["cal-1", "dal-1", "fra-1", "lon-1", "syd-1", "tok-1", "wdc-1"];

    private readonly string _dir = Directory.CreateTempSubdirectory("cg-demo-cli-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Data => Path.Combine(_dir, "data");

    private string KeyFile => Path.Combine(Data, "demo-api-key.txt");

    private static UnixFileMode ModeOf(string path)
    {
        if (OperatingSystem.IsWindows()) throw new PlatformNotSupportedException("file modes are Unix's");
        return File.GetUnixFileMode(path);
    }

    private Task<ServeProcess> StartDemoAsync() =>
        ServeProcess.StartAsync(Data, ["--node-urls", "http://127.0.0.1:0", "--no-sites", "--demo"]);

    /// <summary>Waits (up to <paramref name="within"/>) until <paramref name="done"/> holds; fails with <paramref name="what"/> and the server's output.</summary>
    private static async Task<T> UntilAsync<T>(Func<Task<(bool Done, T Value)>> done, TimeSpan within, string what, ServeProcess serve)
    {
        var sw = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                var (ok, value) = await done();
                if (ok) return value;
            }
            catch (HttpRequestException e) when (!serve.HasExited && sw.Elapsed <= within)
            {
                _ = e; // not answering yet
            }
            catch (HttpRequestException e)
            {
                Assert.Fail($"{what}: {e.Message}; server said: {serve.Out} {serve.Err}");
            }
            if (sw.Elapsed > within) Assert.Fail($"{what} within {within.TotalSeconds:0} s; server said: {serve.Out} {serve.Err}");
            await Task.Delay(200);
        }
    }

    /// <summary>The key the demo wrote, once the server has written it (a new one at every start).</summary>
    private async Task<string> DemoKeyAsync(ServeProcess serve, string? notThis) =>
        await UntilAsync(async () =>
        {
            await Task.Yield();
            string text = File.Exists(KeyFile) ? File.ReadAllText(KeyFile).Trim() : "";
            return (text.Length > 0 && text != notThis, text);
        }, TimeSpan.FromSeconds(30), "no new demo-api-key.txt", serve);

    /// <summary>The demo customer's account once nothing is held (every request settled): (available, customer id).</summary>
    private static Task<(long Available, ulong Customer)> SettledAccountAsync(HttpClient customer, ServeProcess serve) =>
        UntilAsync(async () =>
        {
            var a = await customer.GetJsonAsync("/api/inference/account");
            return (a.GetProperty("held").GetInt64() == 0, (a.GetProperty("available").GetInt64(), a.GetProperty("id").GetUInt64()));
        }, TimeSpan.FromSeconds(30), "the demo account did not settle", serve);

    [Fact]
    public async Task Serve_demo_admits_its_seven_nodes_writes_a_0600_working_key_and_funds_the_demo_customer_once_across_restarts()
    {
        string firstKey;
        long afterFirst;
        ulong customerId;
        await using (var serve = await StartDemoAsync())
        {
            firstKey = await DemoKeyAsync(serve, notThis: null);
            Assert.Equal(OwnerOnly, ModeOf(KeyFile));
            using var op = Api.Client(serve.Url, Api.OperatorKey(Data));

            // The nodes, admitted for demo-provider as an operator would, each with its own key file.
            var principals = (await op.GetJsonAsync("/api/principals")).GetProperty("principals").EnumerateArray().ToArray();
            ulong provider = principals.Single(p => p.GetProperty("kind").GetString() == "provider" && p.GetProperty("name").GetString() == "demo-provider").GetProperty("id").GetUInt64();
            var nodes = principals.Where(p => p.GetProperty("kind").GetString() == "node").ToArray();
            Assert.Equal(DemoNodes, nodes.Select(n => n.GetProperty("name").GetString()).Order());
            Assert.All(nodes, n => Assert.Equal(provider, n.GetProperty("provider").GetUInt64()));
            foreach (string id in DemoNodes) Assert.Equal(OwnerOnly, ModeOf(Path.Combine(Data, "nodes", id + ".key")));

            // Each node proves its key (challenge and signature) and serves: all seven healthy in the routing table.
            using var anyone = Api.Client(serve.Url, null);
            await UntilAsync(async () =>
            {
                var table = (await anyone.GetJsonAsync("/api/inference/nodes")).GetProperty("nodes").EnumerateArray()
                    .Where(n => n.GetProperty("healthy").GetBoolean()).Select(n => n.GetProperty("id").GetString()).Order().ToArray();
                return (table.SequenceEqual(DemoNodes), 0);
            }, TimeSpan.FromSeconds(180), "the seven demo nodes were not healthy", serve);

            // The key works as a user would use it: curl -H 'Authorization: Bearer KEY' -d '{…}' /v1/embeddings.
            using var customer = Api.Client(serve.Url, firstKey);
            using var answer = await customer.PostAsync("/v1/embeddings",
                new StringContent("""{"model":"all-MiniLM-L6-v2","input":"A man is playing a guitar."}""", Encoding.UTF8, "application/json"));
            string body = await answer.Content.ReadAsStringAsync();
            Assert.True(answer.StatusCode == HttpStatusCode.OK, $"{(int)answer.StatusCode}: {body}");
            Assert.Equal(384, JsonDocument.Parse(body).RootElement.GetProperty("data")[0].GetProperty("embedding").GetArrayLength());
            long cost = long.Parse(answer.Headers.GetValues("X-CG-Cost-Micro-Usd").Single(), System.Globalization.CultureInfo.InvariantCulture);
            Assert.True(cost > 0, $"cost {cost}");

            (afterFirst, customerId) = await SettledAccountAsync(customer, serve);
            Assert.Equal(DemoFunding - cost, afterFirst);
            Assert.Equal(0, await serve.StopAsync());
        }

        await using (var serve = await StartDemoAsync())
        {
            string secondKey = await DemoKeyAsync(serve, notThis: firstKey);
            Assert.Equal(OwnerOnly, ModeOf(KeyFile));
            using var customer = Api.Client(serve.Url, secondKey);
            var (available, id) = await SettledAccountAsync(customer, serve);
            Assert.Equal(customerId, id);
            Assert.Equal(afterFirst, available); // funded once: the second start moved no money

            // The previous start's key stops working; the operators' log holds one funding of the demo customer.
            using var old = Api.Client(serve.Url, firstKey);
            using (var refused = await old.GetAsync("/api/inference/account")) Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
            using var op = Api.Client(serve.Url, Api.OperatorKey(Data));
            var fundings = (await op.GetJsonAsync("/api/operator-actions")).GetProperty("actions").EnumerateArray()
                .Where(a => a.GetProperty("action").GetString() == "fund").Select(a => (a.GetProperty("subject").GetString(), a.GetProperty("amount").GetInt64()))
                .Where(f => f.Item1!.StartsWith($"customer {customerId} ", StringComparison.Ordinal)).ToArray(); // the demo actors are funded too, each once
            Assert.Equal([($"customer {customerId} CustomerBalance (demo)", DemoFunding)], fundings);
            Assert.Equal(0, await serve.StopAsync());
        }
    }
}
