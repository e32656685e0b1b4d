using System.Net;
using System.Text.Json;
using ComputeGrid.Ledger;
using ComputeGrid.Server.Inference;
using Xunit.Abstractions;

namespace ComputeGrid.Server.Tests;

/// <summary>
/// Charges the ledger refuses. The poison: a request whose hold expires before its node answers (holds live 1 s here)
/// while the customer spends the released money on another request. The answer is sent (the charge rode in the durable
/// hold), then the settler finds the hold expired, tries the charge by direct transfers, and the ledger refuses it (the
/// balance is spent): a persisted dead letter, listed for operators, counted in /metrics, logged — and every other
/// request's capture goes on, before and after it.
/// </summary>
public sealed class InferenceDeadLetterTests(ITestOutputHelper output)
{
    private static readonly InferenceServerOptions Options = new()
    {
        LocalNodes = [new("fra-1", "frankfurt", 18, 8), new("dal-1", "dallas", 20, 8)],
        Gateway = new InferenceOptions { HoldTimeoutSeconds = 1 },
    };

    private static object Only(string input, string region) => new { model = MoneyServer.Model, input, provider = new { only = new[] { region }, allow_fallbacks = false } };

    [Fact]
    public async Task A_charge_refused_after_the_hold_expired_and_the_money_was_spent_is_a_listed_dead_letter_and_never_stops_other_captures()
    {
        int seed = int.TryParse(Environment.GetEnvironmentVariable("CG_SEED"), out int s) ? s : 1212;
        output.WriteLine($"seed {seed} (set CG_SEED={seed} to replay)");
        var rng = new Random(seed);
        await using MoneyServer server = await MoneyServer.StartAsync("dead-letters", Options);
        const string poisonText = "answered after its hold expired";
        const string spendText = "spend it";
        long cost = server.CostOf(poisonText, 18), spent = server.CostOf(spendText, 20);
        Assert.True(spent is > 0 && spent <= cost, $"the test needs 0 < {spent} <= {cost}");
        // The poisoned customer has exactly the poison's cost: once the hold expires, spending any of it leaves too little.
        Party poisoned = await server.CustomerAsync("frankfurt", cost);
        Party others = await server.CustomerAsync("dallas", 10_000_000);
        UInt128 hold = InferencePayments.HoldId(poisoned.Id, "idem:poison", 0);

        // Frankfurt answers the poison only when the test lets it (after its hold expired and its money was spent).
        var slowStarted = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var node = new SwappedNode(server.Host.Gateway, "fra-1", real => new FaultyChannel(real, before: async (_, ct) =>
        {
            slowStarted.TrySetResult();
            await release.Task.WaitAsync(ct);
        }));
        Task<HttpResponseMessage> poison = server.EmbedAsync(poisoned.Key, Only(poisonText, "frankfurt"), "poison");
        await slowStarted.Task.WaitAsync(TimeSpan.FromSeconds(20));

        // Meanwhile other requests (Dallas) are answered and captured.
        string[] texts = Enumerable.Range(0, 12).Select(i => $"ordinary request {i} of seed {seed}: {rng.Next()}").ToArray();
        var ordinary = texts.Select(t => server.EmbedAsync(others.Key, Only(t, "dallas"))).ToList();

        // The hold expires (the ledger's pulse), the customer spends the released money, and only then the node answers.
        Assert.True(await MoneyServer.EventuallyAsync(async () =>
            (await server.Ledger.LookupTransfersAsync([hold])) is [var h] && h.Status == PendingStatus.Expired, TimeSpan.FromSeconds(20)), "the hold never expired");
        var spend = await server.EmbedAsync(poisoned.Key, Only(spendText, "dallas"));
        await MoneyServer.AssertStatusAsync(HttpStatusCode.OK, spend);
        Assert.Equal((spent, cost - spent, 0L), await server.AccountAsync(poisoned.Id));
        release.SetResult();

        // The answer was sent: the charge rode in the durable hold.
        HttpResponseMessage answered = await poison;
        node.Dispose();
        await MoneyServer.AssertStatusAsync(HttpStatusCode.OK, answered);
        Assert.Equal("true", answered.Headers.GetValues("X-CG-Charged").Single());
        ordinary.Add(server.EmbedAsync(others.Key, Only("after the dead letter", "dallas")));
        long othersCost = 0;
        foreach (HttpResponseMessage r in await Task.WhenAll(ordinary))
        {
            await MoneyServer.AssertStatusAsync(HttpStatusCode.OK, r);
            othersCost += long.Parse(r.Headers.GetValues("X-CG-Cost-Micro-Usd").Single());
        }
        Assert.Equal(texts.Sum(t => server.CostOf(t, 20)) + server.CostOf("after the dead letter", 20), othersCost);
        Assert.Equal((othersCost, 10_000_000 - othersCost, 0L), await server.AccountAsync(others.Id));

        // The poisoned customer paid only what it spent; its hold expired, and the charge went to a dead letter.
        Assert.Equal((spent, cost - spent, 0L), await server.AccountAsync(poisoned.Id));
        Assert.Equal(PendingStatus.Expired, (await server.Ledger.LookupTransfersAsync([hold]))[0].Status);
        Assert.Equal(1, server.Host.Gateway.Settler.Totals.DeadLettered);

        // Listed for operators, with what the ledger said, and counted.
        JsonElement page = JsonDocument.Parse(await server.Operator.GetStringAsync("/api/operator/dead-letters")).RootElement;
        Assert.Equal(1, page.GetProperty("total").GetInt64());
        JsonElement letter = page.GetProperty("dead_letters").EnumerateArray().Single();
        Assert.Equal(hold.ToString(), letter.GetProperty("hold_id").GetString());
        Assert.Equal(poisoned.Id, letter.GetProperty("customer").GetUInt64());
        Assert.Equal("idem:poison", letter.GetProperty("request_key").GetString());
        Assert.Equal("fra-1", letter.GetProperty("node").GetString());
        Assert.Equal(cost, letter.GetProperty("cost_micro_usd").GetInt64());
        string reason = letter.GetProperty("reason").GetString()!;
        Assert.Contains(nameof(CreateTransferResult.PendingTransferExpired), reason);
        Assert.Contains(nameof(CreateTransferResult.ExceedsCredits), reason);
        Assert.Equal(1, Observability.PrometheusText.Parse(await server.Operator.GetStringAsync("/metrics")).Single("computegrid_inference_dead_letters_total"));

        // Persisted: still listed after a restart, and recovery (which finds the expired hold with its intent) leaves a
        // dead-lettered hold alone: no second letter, nothing charged.
        await server.RestartAsync(Options);
        page = JsonDocument.Parse(await server.Operator.GetStringAsync("/api/operator/dead-letters?limit=1")).RootElement;
        Assert.Equal(1, page.GetProperty("total").GetInt64());
        Assert.Equal(hold.ToString(), page.GetProperty("dead_letters")[0].GetProperty("hold_id").GetString());
        Assert.Equal(JsonValueKind.Null, page.GetProperty("next").ValueKind);
        Assert.Equal((spent, cost - spent, 0L), await server.AccountAsync(poisoned.Id));
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
