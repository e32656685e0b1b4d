using System.Net;
using System.Text.Json;
using ComputeGrid.Inference.Routing;
using ComputeGrid.Ledger;
using ComputeGrid.Server.Inference;
using Xunit.Abstractions;

namespace ComputeGrid.Server.Tests;

/// <summary>One server with three in-process nodes (Frankfurt 18, Dallas 20, Tokyo 16 micro-USD per 1k tokens).</summary>
public sealed class MoneyServerFixture : IAsyncLifetime
{
    public static InferenceServerOptions Options { get; } = new()
    {
        LocalNodes = [new("fra-1", "frankfurt", 18, 8), new("dal-1", "dallas", 20, 8), new("tok-1", "tokyo", 16, 8)],
    };

    public MoneyServer Server { get; private set; } = null!;

    public async Task InitializeAsync() => Server = await MoneyServer.StartAsync("money", Options);

    public async Task DisposeAsync() => await Server.DisposeAsync();
}

/// <summary>
/// Paid inference's money facts on one running server: a node's non-finite answer is a node failure (fail over, no
/// charge), a client that hangs up has its hold released at once, a reused Idempotency-Key with another request is 422,
/// a 402 is not remembered (top up, retry, served), and the holds a crash leaves behind (pending for the same amount, or
/// for another after a price change) are captured once or released — never a refused capture, never a free answer.
/// </summary>
public sealed class InferenceMoneyTests(MoneyServerFixture fixture, ITestOutputHelper output) : IClassFixture<MoneyServerFixture>
{
    private MoneyServer S => fixture.Server;

    private static object Body(string input, string? only = null) => only is null
        ? new { model = MoneyServer.Model, input }
        : new { model = MoneyServer.Model, input, provider = new { only = new[] { only }, allow_fallbacks = false } };

    [Theory]
    [InlineData(float.NaN)]
    [InlineData(float.PositiveInfinity)]
    [InlineData(float.NegativeInfinity)]
    public async Task A_node_answering_a_non_finite_value_fails_over_and_the_request_is_charged_once_at_the_other_nodes_price(float poison)
    {
        Party c = await S.CustomerAsync("frankfurt", 10_000_000);
        const string text = "a vector with a hole in it";
        using var bad = new SwappedNode(S.Host.Gateway, "fra-1", real => new FaultyChannel(real, alter: FaultyChannel.Poison(poison)));
        var r = await S.EmbedAsync(c.Key, Body(text));
        await MoneyServer.AssertStatusAsync(HttpStatusCode.OK, r);
        Assert.Equal(1, bad.Channel.Calls); // Frankfurt, the customer's home, was tried first
        string node = r.Headers.GetValues("X-CG-Node").Single();
        Assert.NotEqual("fra-1", node);
        Assert.Contains("non-finite", r.Headers.GetValues("X-CG-Failed-Over").Single());
        long price = MoneyServerFixture.Options.LocalNodes.Single(n => n.Id == node).PriceMicroUsdPer1kTokens;
        long cost = long.Parse(r.Headers.GetValues("X-CG-Cost-Micro-Usd").Single());
        Assert.Equal(S.CostOf(text, price), cost);
        // The vectors are all finite (the answer is JSON numbers).
        foreach (JsonElement v in JsonDocument.Parse(await r.Content.ReadAsStringAsync()).RootElement.GetProperty("data")[0].GetProperty("embedding").EnumerateArray())
            Assert.True(float.IsFinite(v.GetSingle()));
        var (debits, _, pending) = await S.AccountAsync(c.Id);
        Assert.Equal(cost, debits);
        Assert.Equal(0, pending);
    }

    [Fact]
    public async Task When_every_node_answers_NaN_the_request_is_503_the_hold_is_released_and_nothing_is_charged()
    {
        Party c = await S.CustomerAsync("frankfurt", 10_000_000);
        var swapped = MoneyServerFixture.Options.LocalNodes.Select(n => new SwappedNode(S.Host.Gateway, n.Id, real => new FaultyChannel(real, alter: FaultyChannel.Poison(float.NaN)))).ToArray();
        try
        {
            var r = await S.EmbedAsync(c.Key, Body("nobody can answer this"));
            await MoneyServer.AssertStatusAsync(HttpStatusCode.ServiceUnavailable, r);
            Assert.Equal("no_node_available", await MoneyServer.ErrorCodeAsync(r));
            Assert.All(swapped, s => Assert.Equal(1, s.Channel.Calls));
        }
        finally
        {
            foreach (var s in swapped) s.Dispose();
        }
        Assert.Equal((0L, 10_000_000L, 0L), await S.AccountAsync(c.Id));
    }

    [Fact]
    public async Task A_client_that_disconnects_mid_request_without_a_key_has_its_hold_voided_at_once()
    {
        Party c = await S.CustomerAsync("tokyo", 10_000_000);
        var called = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        // The node holds the request until it is cancelled (the client's disconnect cancels it).
        using var slow = new SwappedNode(S.Host.Gateway, "tok-1", real => new FaultyChannel(real, before: async (_, ct) =>
        {
            called.TrySetResult();
            await Task.Delay(Timeout.Infinite, ct);
        }));
        using var hangUp = new CancellationTokenSource();
        Task<HttpResponseMessage> request = S.EmbedAsync(c.Key, Body("a request whose client hangs up", only: "tokyo"), ct: hangUp.Token);
        await called.Task.WaitAsync(TimeSpan.FromSeconds(20));
        Assert.True(await MoneyServer.EventuallyAsync(async () => (await S.AccountAsync(c.Id)).Pending > 0, TimeSpan.FromSeconds(10)), "the hold was never taken");
        await hangUp.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => request);
        // Held for 300 s if nothing released it: it must be released now, well before.
        Assert.True(await MoneyServer.EventuallyAsync(async () => (await S.AccountAsync(c.Id)).Pending == 0, TimeSpan.FromSeconds(10)), "the hold was not voided");
        Assert.Equal((0L, 10_000_000L, 0L), await S.AccountAsync(c.Id));
    }

    [Fact]
    public async Task A_reused_idempotency_key_with_another_body_is_422_and_the_first_answer_is_still_replayed()
    {
        Party c = await S.CustomerAsync("frankfurt", 10_000_000);
        var first = await S.EmbedAsync(c.Key, Body("the first body"), "key-reuse");
        await MoneyServer.AssertStatusAsync(HttpStatusCode.OK, first);
        var other = await S.EmbedAsync(c.Key, Body("another body"), "key-reuse");
        await MoneyServer.AssertStatusAsync(HttpStatusCode.UnprocessableEntity, other);
        Assert.Equal("idempotency_key_reused", await MoneyServer.ErrorCodeAsync(other));
        // Another encoding of the same input is another request too.
        var base64 = await S.EmbedAsync(c.Key, new { model = MoneyServer.Model, input = "the first body", encoding_format = "base64" }, "key-reuse");
        await MoneyServer.AssertStatusAsync(HttpStatusCode.UnprocessableEntity, base64);
        var again = await S.EmbedAsync(c.Key, Body("the first body"), "key-reuse");
        await MoneyServer.AssertStatusAsync(HttpStatusCode.OK, again);
        Assert.Equal("true", again.Headers.GetValues("Idempotent-Replayed").Single());
        long cost = long.Parse(first.Headers.GetValues("X-CG-Cost-Micro-Usd").Single());
        Assert.Equal(cost, (await S.AccountAsync(c.Id)).Debits);
    }

    [Fact]
    public async Task A_402_is_not_remembered_so_after_a_top_up_the_retry_with_the_same_key_is_served_and_charged_once()
    {
        Party c = await S.CustomerAsync("frankfurt", 0);
        var poor = await S.EmbedAsync(c.Key, Body("paid for after a top-up"), "top-up");
        await MoneyServer.AssertStatusAsync(HttpStatusCode.PaymentRequired, poor);
        Assert.Equal("insufficient_balance", await MoneyServer.ErrorCodeAsync(poor));
        await S.FundAsync(c.Id, 1_000_000, $"top-up-{c.Id}");
        var served = await S.EmbedAsync(c.Key, Body("paid for after a top-up"), "top-up");
        await MoneyServer.AssertStatusAsync(HttpStatusCode.OK, served);
        Assert.False(served.Headers.Contains("Idempotent-Replayed"));
        long cost = long.Parse(served.Headers.GetValues("X-CG-Cost-Micro-Usd").Single());
        Assert.True(cost > 0);
        Assert.Equal((cost, 1_000_000 - cost, 0L), await S.AccountAsync(c.Id));
    }

    [Fact]
    public async Task A_pending_hold_left_by_a_crash_for_another_amount_is_released_and_the_retry_charged_once_on_the_next_generation()
    {
        // The state a crash leaves when the first attempt was priced on other nodes (ExistsWithDifferentAmount before).
        Party c = await S.CustomerAsync("frankfurt", 10_000_000);
        const string text = "priced again after a restart";
        UInt128 fingerprint = Fingerprint(text, "frankfurt", new RoutingPreferences());
        HoldResult orphan = await S.Host.Payments.HoldAsync(c.Id, "idem:price-change", 777, 300, fingerprint);
        Assert.Equal(HoldOutcome.Held, orphan.Outcome);
        long deadBefore = S.Host.Gateway.DeadLetters.Count;

        var r = await S.EmbedAsync(c.Key, Body(text), "price-change");
        await MoneyServer.AssertStatusAsync(HttpStatusCode.OK, r);
        Assert.Equal("true", r.Headers.GetValues("X-CG-Charged").Single());
        Assert.Equal(InferencePayments.HoldId(c.Id, "idem:price-change", 1), UInt128.Parse(r.Headers.GetValues("X-CG-Transfer-Id").Single()));
        long cost = long.Parse(r.Headers.GetValues("X-CG-Cost-Micro-Usd").Single());
        Assert.Equal((cost, 10_000_000 - cost, 0L), await S.AccountAsync(c.Id)); // the orphan is released, the request charged once
        Assert.Equal(PendingStatus.Voided, (await S.Ledger.LookupTransfersAsync([orphan.HoldId]))[0].Status);
        Assert.Equal(deadBefore, S.Host.Gateway.DeadLetters.Count);
    }

    [Fact]
    public async Task A_pending_hold_left_for_the_same_request_is_captured_once()
    {
        // The very hold this request writes (same amount, timeout, fingerprint and intent), pending: it is used as it is.
        Party c = await S.CustomerAsync("frankfurt", 10_000_000);
        const string text = "held, then the server died";
        Assert.True(S.Host.Latency.TryCreateRegionSet(["frankfurt"], out RegionSet only, out _));
        UInt128 fingerprint = Fingerprint(text, "frankfurt", new RoutingPreferences { Only = only, AllowFallbacks = false });
        long cost = S.CostOf(text, 18);
        CaptureIntent? intent = CaptureIntent.TryCreate(S.Host.Gateway.NodeNumber("fra-1")!.Value, S.Host.Gateway.Options.PlatformFeeBasisPoints, cost);
        HoldResult orphan = await S.Host.Payments.HoldAsync(c.Id, "idem:orphan", cost, S.Host.Gateway.Options.HoldTimeoutSeconds, fingerprint, intent);
        Assert.Equal(HoldOutcome.Held, orphan.Outcome);

        var r = await S.EmbedAsync(c.Key, Body(text, only: "frankfurt"), "orphan");
        await MoneyServer.AssertStatusAsync(HttpStatusCode.OK, r);
        Assert.Equal(orphan.HoldId, UInt128.Parse(r.Headers.GetValues("X-CG-Transfer-Id").Single()));
        Assert.Equal("true", r.Headers.GetValues("X-CG-Charged").Single());
        Assert.Equal((cost, 10_000_000 - cost, 0L), await S.AccountAsync(c.Id));
        Assert.Equal(PendingStatus.Posted, (await S.Ledger.LookupTransfersAsync([orphan.HoldId]))[0].Status);
    }

    [Fact]
    public async Task A_pending_hold_of_the_same_request_with_another_intent_is_released_and_the_request_charged_once_on_the_next_generation()
    {
        // Same amount, other node in the intent (the request was first routed to Dallas, then retried to Frankfurt).
        Party c = await S.CustomerAsync("frankfurt", 10_000_000);
        const string text = "routed elsewhere the first time";
        Assert.True(S.Host.Latency.TryCreateRegionSet(["frankfurt"], out RegionSet only, out _));
        UInt128 fingerprint = Fingerprint(text, "frankfurt", new RoutingPreferences { Only = only, AllowFallbacks = false });
        long cost = S.CostOf(text, 18);
        CaptureIntent? elsewhere = CaptureIntent.TryCreate(S.Host.Gateway.NodeNumber("dal-1")!.Value, S.Host.Gateway.Options.PlatformFeeBasisPoints, cost);
        HoldResult orphan = await S.Host.Payments.HoldAsync(c.Id, "idem:elsewhere", cost, S.Host.Gateway.Options.HoldTimeoutSeconds, fingerprint, elsewhere);
        Assert.Equal(HoldOutcome.Held, orphan.Outcome);
        var (_, dallasBefore) = await S.RevenueAsync("dal-1");

        var r = await S.EmbedAsync(c.Key, Body(text, only: "frankfurt"), "elsewhere");
        await MoneyServer.AssertStatusAsync(HttpStatusCode.OK, r);
        Assert.Equal(InferencePayments.HoldId(c.Id, "idem:elsewhere", 1), UInt128.Parse(r.Headers.GetValues("X-CG-Transfer-Id").Single()));
        Assert.Equal((cost, 10_000_000 - cost, 0L), await S.AccountAsync(c.Id));
        Assert.Equal(PendingStatus.Voided, (await S.Ledger.LookupTransfersAsync([orphan.HoldId]))[0].Status);
        Assert.Equal(dallasBefore, (await S.RevenueAsync("dal-1")).Credits);
    }

    [Fact]
    public void A_capture_intent_rides_in_the_hold_only_when_it_fits()
    {
        var fits = CaptureIntent.TryCreate(42, 1_000, 1_234)!.Value;
        var hold = new Transfer { UserData64 = fits.UserData64, UserData32 = fits.UserData32 };
        Assert.Equal(fits, CaptureIntent.Of(hold));
        Assert.Equal(123, fits.FeeMicroUsd);
        Assert.Equal((42UL << 16) | 1_000, fits.UserData64);
        Assert.Null(CaptureIntent.TryCreate(42, 1_000, CaptureIntent.CostMicroUsdMax + 1)); // the cost does not fit 32 bits
        Assert.Null(CaptureIntent.TryCreate(CaptureIntent.NodePrincipalMax + 1, 1_000, 5)); // the principal does not fit 48 bits
        Assert.Null(CaptureIntent.TryCreate(42, 1_000, 0)); // nothing to capture
        Assert.Null(CaptureIntent.TryCreate(0, 1_000, 5));
        Assert.Null(CaptureIntent.Of(new Transfer())); // a hold without an intent
        Assert.Equal(CaptureIntent.CostMicroUsdMax, CaptureIntent.TryCreate(CaptureIntent.NodePrincipalMax, CaptureIntent.FeeBasisPointsMax, CaptureIntent.CostMicroUsdMax)!.Value.CostMicroUsd);
    }

    [Fact]
    public async Task The_same_request_keeps_its_fingerprint_and_any_change_of_its_work_changes_it()
    {
        var prefs = new RoutingPreferences();
        UInt128 a = Fingerprint("x", "frankfurt", prefs);
        Assert.Equal(a, Fingerprint("x", "frankfurt", new RoutingPreferences()));
        Assert.NotEqual(a, Fingerprint("y", "frankfurt", prefs));
        Assert.NotEqual(a, Fingerprint("x", "dallas", prefs));
        Assert.NotEqual(a, Fingerprint("x", "frankfurt", prefs with { Sort = RouteSort.Price }));
        Assert.NotEqual(a, Fingerprint("x", "frankfurt", prefs with { MaxPriceMicroUsdPer1kTokens = 5 }));
        Assert.NotEqual(a, RequestFingerprint.Of(MoneyServer.Model, ["x"], base64: true, null, "frankfurt", prefs, S.Host.Latency.Regions));
        Assert.NotEqual(a, RequestFingerprint.Of(MoneyServer.Model, ["x"], base64: false, 384, "frankfurt", prefs, S.Host.Latency.Regions));
        // Inputs are length-prefixed: ["ab"] is not ["a", "b"].
        Assert.NotEqual(RequestFingerprint.Of(MoneyServer.Model, ["ab"], false, null, "frankfurt", prefs, S.Host.Latency.Regions),
            RequestFingerprint.Of(MoneyServer.Model, ["a", "b"], false, null, "frankfurt", prefs, S.Host.Latency.Regions));
        await Task.CompletedTask;
        output.WriteLine($"fingerprint of 'x': {a}");
    }

    private UInt128 Fingerprint(string text, string region, RoutingPreferences prefs) =>
        RequestFingerprint.Of(MoneyServer.Model, [text], base64: false, dimensions: null, region, prefs, S.Host.Latency.Regions);
}
