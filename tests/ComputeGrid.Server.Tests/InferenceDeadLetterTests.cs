using System.Net;
using System.Text.Json;
using ComputeGrid.Ledger;
using ComputeGrid.Server.Inference;
using Xunit.Abstractions;

namespace ComputeGrid.Server.Tests;

/// <summary>
/// Captures the ledger refuses. A hold that expired before its capture (holds live 1 s here, and the node takes longer)
/// is the poison: its capture becomes a persisted dead letter listed for operators and counted in /metrics, the request
/// is answered 503 (never a free 200), every other request's capture goes on, and a retry with the same key is served
/// and charged once on the next generation of its hold.
/// </summary>
public sealed class InferenceDeadLetterTests(ITestOutputHelper output)
{
    private static readonly InferenceServerOptions Options = new()
    {
        LocalNodes = [new("fra-1", "frankfurt", 18, 8), new("dal-1", "dallas", 20, 8)],
        Gateway = new InferenceOptions { HoldTimeoutSeconds = 1 },
    };

    [Fact]
    public async Task A_capture_refused_as_expired_is_a_listed_dead_letter_answered_503_and_never_stops_other_captures()
    {
        int seed = int.TryParse(Environment.GetEnvironmentVariable("CG_SEED"), out int s) ? s : 1212;
        output.WriteLine($"seed {seed} (set CG_SEED={seed} to replay)");
        var rng = new Random(seed);
        await using MoneyServer server = await MoneyServer.StartAsync("dead-letters", Options);
        Party poisoned = await server.CustomerAsync("frankfurt", 10_000_000);
        Party others = await server.CustomerAsync("dallas", 10_000_000);

        // Frankfurt answers only after its hold has expired (1 s); the ledger expires it at its next write.
        var slowStarted = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var node = new SwappedNode(server.Host.Gateway, "fra-1", real => new FaultyChannel(real, before: async (_, ct) =>
        {
            slowStarted.TrySetResult();
            await Task.Delay(TimeSpan.FromMilliseconds(1_600), ct);
        }));
        const string poisonText = "answered after its hold expired";
        Task<HttpResponseMessage> poison = server.EmbedAsync(poisoned.Key, new { model = MoneyServer.Model, input = poisonText, provider = new { only = new[] { "frankfurt" }, allow_fallbacks = false } }, "poison");
        await slowStarted.Task.WaitAsync(TimeSpan.FromSeconds(20));

        // Meanwhile, and after, other requests (Dallas) are answered and captured.
        string[] texts = Enumerable.Range(0, 12).Select(i => $"ordinary request {i} of seed {seed}: {rng.Next()}").ToArray();
        var ordinary = texts.Select(t => server.EmbedAsync(others.Key, new { model = MoneyServer.Model, input = t, provider = new { only = new[] { "dallas" } } })).ToList();
        HttpResponseMessage refused = await poison;
        node.Dispose();
        ordinary.Add(server.EmbedAsync(others.Key, new { model = MoneyServer.Model, input = "after the dead letter", provider = new { only = new[] { "dallas" } } }));
        long othersCost = 0;
        foreach (HttpResponseMessage r in await Task.WhenAll(ordinary))
        {
            await MoneyServer.AssertStatusAsync(HttpStatusCode.OK, r);
            othersCost += long.Parse(r.Headers.GetValues("X-CG-Cost-Micro-Usd").Single());
        }
        Assert.Equal(texts.Sum(t => server.CostOf(t, 20)) + server.CostOf("after the dead letter", 20), othersCost);
        Assert.Equal((othersCost, 10_000_000 - othersCost, 0L), await server.AccountAsync(others.Id));

        // The poisoned request: 503, not charged, its hold released (expired).
        await MoneyServer.AssertStatusAsync(HttpStatusCode.ServiceUnavailable, refused);
        Assert.Equal("capture_refused", await MoneyServer.ErrorCodeAsync(refused));
        Assert.Equal((0L, 10_000_000L, 0L), await server.AccountAsync(poisoned.Id));

        // Listed for operators, with what the ledger said, and counted.
        UInt128 hold = InferencePayments.HoldId(poisoned.Id, "idem:poison", 0);
        JsonElement page = JsonDocument.Parse(await server.Operator.GetStringAsync("/api/operator/dead-letters")).RootElement;
        Assert.Equal(1, page.GetProperty("total").GetInt64());
        JsonElement letter = page.GetProperty("dead_letters").EnumerateArray().Single();
        Assert.Equal(hold.ToString(), letter.GetProperty("hold_id").GetString());
        Assert.Equal(poisoned.Id, letter.GetProperty("customer").GetUInt64());
        Assert.Equal("fra-1", letter.GetProperty("node").GetString());
        Assert.Equal(server.CostOf(poisonText, 18), letter.GetProperty("cost_micro_usd").GetInt64());
        Assert.Contains(nameof(CreateTransferResult.PendingTransferExpired), letter.GetProperty("reason").GetString());
        Assert.Contains("computegrid_inference_dead_letters_total 1", await server.Operator.GetStringAsync("/metrics"));

        // The retry (same key) takes the next generation of the hold: served and charged once.
        var retry = await server.EmbedAsync(poisoned.Key, new { model = MoneyServer.Model, input = poisonText, provider = new { only = new[] { "frankfurt" }, allow_fallbacks = false } }, "poison");
        await MoneyServer.AssertStatusAsync(HttpStatusCode.OK, retry);
        Assert.Equal(InferencePayments.HoldId(poisoned.Id, "idem:poison", 1), UInt128.Parse(retry.Headers.GetValues("X-CG-Transfer-Id").Single()));
        long cost = server.CostOf(poisonText, 18);
        Assert.Equal((cost, 10_000_000 - cost, 0L), await server.AccountAsync(poisoned.Id));

        // The dead letter is persisted: still listed after a restart.
        await server.RestartAsync(Options);
        page = JsonDocument.Parse(await server.Operator.GetStringAsync("/api/operator/dead-letters?limit=1")).RootElement;
        Assert.Equal(hold.ToString(), page.GetProperty("dead_letters")[0].GetProperty("hold_id").GetString());
        Assert.Equal(JsonValueKind.Null, page.GetProperty("next").ValueKind);
    }

    [Fact]
    public async Task The_dead_letter_list_is_for_operators_and_bad_paging_is_a_problem()
    {
        await using MoneyServer server = await MoneyServer.StartAsync("dead-letters-auth", Options with { LocalNodes = [] });
        Party customer = await server.CustomerAsync("frankfurt", 0);
        Assert.Equal(HttpStatusCode.Unauthorized, (await server.Http.GetAsync("/api/operator/dead-letters")).StatusCode);
        using var asCustomer = TestServer.Client(server.Http.BaseAddress!.ToString(), customer.Key);
        Assert.Equal(HttpStatusCode.Forbidden, (await asCustomer.GetAsync("/api/operator/dead-letters")).StatusCode);
        foreach (string bad in new[] { "?limit=0", "?after=-1" })
        {
            var r = await server.Operator.GetAsync("/api/operator/dead-letters" + bad);
            Assert.Equal(HttpStatusCode.BadRequest, r.StatusCode);
            Assert.Equal("application/problem+json", r.Content.Headers.ContentType?.MediaType);
        }
        JsonElement empty = JsonDocument.Parse(await server.Operator.GetStringAsync("/api/operator/dead-letters")).RootElement;
        Assert.Equal(0, empty.GetProperty("total").GetInt64());
        Assert.Equal(0, empty.GetProperty("dead_letters").GetArrayLength());
    }
}
