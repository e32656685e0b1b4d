using System.Net;
using System.Security.Cryptography;
using System.Text.Json;
using ComputeGrid.Ledger;
using ComputeGrid.Server.Inference;
using ComputeGrid.Server.Trust;
using Microsoft.Extensions.DependencyInjection;

namespace ComputeGrid.Server.Tests;

/// <summary>
/// Money facts across a restart (in-process, graceful; the kill -9 variants are in <see cref="InferenceCrashTests"/>):
/// the idempotency cache is gone, and the ledger alone (hold ids from the key, the fingerprint in the hold) makes a
/// retry charge once, a reused key with another body 422, and a request that failed on every node servable; node
/// revenue accounts stay bound to their nodes whatever order the nodes come back in, and one of another shape stops the start.
/// </summary>
public sealed class InferenceRestartTests
{
    private static readonly InferenceServerOptions Options = new()
    {
        LocalNodes = [new("fra-1", "frankfurt", 18, 8), new("dal-1", "dallas", 20, 8)],
    };

    private static object Body(string input) => new { model = MoneyServer.Model, input };

    [Fact]
    public async Task A_retry_after_a_restart_is_served_without_a_second_charge_and_another_body_under_its_key_is_422()
    {
        await using MoneyServer server = await MoneyServer.StartAsync("restart-idem", Options);
        Party c = await server.CustomerAsync("frankfurt", 10_000_000);
        var first = await server.EmbedAsync(c.Key, Body("charged once, whatever happens"), "once");
        await MoneyServer.AssertStatusAsync(HttpStatusCode.OK, first);
        long cost = long.Parse(first.Headers.GetValues("X-CG-Cost-Micro-Usd").Single());
        Assert.Equal((cost, 10_000_000 - cost, 0L), await server.AccountAsync(c.Id));

        await server.RestartAsync(Options);
        var retry = await server.EmbedAsync(c.Key, Body("charged once, whatever happens"), "once");
        await MoneyServer.AssertStatusAsync(HttpStatusCode.OK, retry);
        Assert.Equal("false", retry.Headers.GetValues("X-CG-Charged").Single());
        Assert.Equal(cost, long.Parse(retry.Headers.GetValues("X-CG-Cost-Micro-Usd").Single()));
        Assert.Equal(first.Headers.GetValues("X-CG-Transfer-Id").Single(), retry.Headers.GetValues("X-CG-Transfer-Id").Single());
        Assert.Equal(JsonDocument.Parse(await first.Content.ReadAsStringAsync()).RootElement.GetProperty("usage").GetRawText(),
            JsonDocument.Parse(await retry.Content.ReadAsStringAsync()).RootElement.GetProperty("usage").GetRawText());
        Assert.Equal((cost, 10_000_000 - cost, 0L), await server.AccountAsync(c.Id));

        // The cache is empty after the restart: the ledger's hold, with the first body's fingerprint, refuses another body.
        await server.RestartAsync(Options);
        var other = await server.EmbedAsync(c.Key, Body("another body under the same key"), "once");
        await MoneyServer.AssertStatusAsync(HttpStatusCode.UnprocessableEntity, other);
        Assert.Equal("idempotency_key_reused", await MoneyServer.ErrorCodeAsync(other));
        Assert.Equal((cost, 10_000_000 - cost, 0L), await server.AccountAsync(c.Id));
    }

    [Fact]
    public async Task A_request_that_failed_on_every_node_is_served_and_charged_once_when_retried_after_a_restart()
    {
        await using MoneyServer server = await MoneyServer.StartAsync("restart-voided", Options);
        Party c = await server.CustomerAsync("frankfurt", 10_000_000);
        // The request must reach the nodes (a hold, then failover to each): on a loaded machine a late heartbeat can leave
        // a node unhealthy for a moment, and a request with no healthy node is refused before any hold. Wait for all.
        // If a heartbeat is late even so, the request is refused before its hold (a 503 that holds nothing): send it again.
        UInt128 voided = InferencePayments.HoldId(c.Id, "idem:voided", 0);
        (Transfer Transfer, PendingStatus Status)[] hold = [];
        for (int attempt = 0; attempt < 20 && hold.Length == 0; attempt++)
        {
            for (int i = 0; i < 400 && server.Host.Gateway.Registry.Snapshot().Count(n => n.Healthy) < server.Nodes.All.Count; i++) await Task.Delay(25);
            foreach (var (_, channel) in server.Nodes.All) channel.Broken = true;
            var failed = await server.EmbedAsync(c.Key, Body("every node was down"), "voided");
            await MoneyServer.AssertStatusAsync(HttpStatusCode.ServiceUnavailable, failed);
            Assert.Equal((0L, 10_000_000L, 0L), await server.AccountAsync(c.Id));
            hold = await server.Ledger.LookupTransfersAsync([voided]);
            foreach (var (_, channel) in server.Nodes.All) channel.Broken = false;
        }
        Assert.True(hold.Length == 1, "the request never reached a node in 20 attempts: no hold was written");
        foreach (var (_, channel) in server.Nodes.All) channel.Broken = true;
        Assert.Equal(PendingStatus.Voided, hold[0].Status);

        await server.RestartAsync(Options);
        var served = await server.EmbedAsync(c.Key, Body("every node was down"), "voided");
        await MoneyServer.AssertStatusAsync(HttpStatusCode.OK, served);
        Assert.Equal(InferencePayments.HoldId(c.Id, "idem:voided", 1), UInt128.Parse(served.Headers.GetValues("X-CG-Transfer-Id").Single()));
        long cost = long.Parse(served.Headers.GetValues("X-CG-Cost-Micro-Usd").Single());
        Assert.Equal((cost, 10_000_000 - cost, 0L), await server.AccountAsync(c.Id));
        // And once more: replayed from the cache, nothing more charged.
        var again = await server.EmbedAsync(c.Key, Body("every node was down"), "voided");
        await MoneyServer.AssertStatusAsync(HttpStatusCode.OK, again);
        Assert.Equal((cost, 10_000_000 - cost, 0L), await server.AccountAsync(c.Id));
        Assert.Equal(0, server.Host.Gateway.DeadLetters.Count);
    }

    [Fact]
    public async Task Recovery_captures_a_pending_hold_and_charges_an_expired_one_by_direct_transfers_once_and_a_second_run_changes_nothing()
    {
        // Two holds with their capture intents, as a process killed after writing them leaves them: one still pending,
        // one that expires before the next start. Recovery (at the start) charges both; the retries are served free.
        await using MoneyServer server = await MoneyServer.StartAsync("restart-recovery", Options);
        Party c = await server.CustomerAsync("frankfurt", 10_000_000);
        ulong fra = server.Host.Gateway.NodeNumber("fra-1")!.Value;
        int feeBps = server.Host.Gateway.Options.PlatformFeeBasisPoints;
        Assert.True(server.Host.Latency.TryCreateRegionSet(["frankfurt"], out var only, out _));
        var prefs = new ComputeGrid.Inference.Routing.RoutingPreferences { Only = only, AllowFallbacks = false };
        object Body(string text) => new { model = MoneyServer.Model, input = text, provider = new { only = new[] { "frankfurt" }, allow_fallbacks = false } };
        async Task<HoldResult> HoldAsync(string text, string key, uint timeoutSeconds)
        {
            long cost = server.CostOf(text, 18);
            UInt128 fingerprint = RequestFingerprint.Of(MoneyServer.Model, [text], false, null, "frankfurt", prefs, server.Host.Latency.Regions);
            HoldResult h = await server.Host.Payments.HoldAsync(c.Id, "idem:" + key, cost, timeoutSeconds, fingerprint, CaptureIntent.TryCreate(fra, feeBps, cost));
            Assert.Equal(HoldOutcome.Held, h.Outcome);
            return h;
        }
        const string pendingText = "running when the server died", expiredText = "its hold expired while the server was down";
        long pendingCost = server.CostOf(pendingText, 18), expiredCost = server.CostOf(expiredText, 18), total = pendingCost + expiredCost;
        HoldResult pending = await HoldAsync(pendingText, "pending", server.Host.Gateway.Options.HoldTimeoutSeconds);
        HoldResult expired = await HoldAsync(expiredText, "expired", 1);
        Assert.True(await MoneyServer.EventuallyAsync(async () => (await server.Ledger.LookupTransfersAsync([expired.HoldId]))[0].Status == PendingStatus.Expired,
            TimeSpan.FromSeconds(20)), "the hold never expired");
        var (_, revenueBefore) = await server.RevenueAsync("fra-1");

        await server.RestartAsync(Options);
        Assert.Equal((total, 10_000_000 - total, 0L), await server.AccountAsync(c.Id));
        var found = await server.Ledger.LookupTransfersAsync([pending.HoldId, expired.HoldId, expired.HoldId + 1, expired.HoldId + 2, expired.HoldId + 3]);
        Assert.Equal([PendingStatus.Posted, PendingStatus.Expired], found.Take(2).Select(f => f.Status));
        Assert.True(InferencePayments.IsChargeAfterExpiry(found[2].Transfer, expired.HoldId));
        Assert.Equal(expiredCost, found[2].Transfer.Amount);
        long fees = server.FeeOf(pendingCost) + server.FeeOf(expiredCost);
        Assert.Equal(revenueBefore + total - fees, (await server.RevenueAsync("fra-1")).Credits);

        // Recovery again (as a second start would): the same ids, nothing new.
        int transfers = server.Ledger.Stats.Transfers;
        var store = server.App.Services.GetRequiredService<TrustStore>();
        RecoveryCounts again = await CaptureRecovery.RunAsync(server.Host.Gateway, store, CancellationToken.None);
        Assert.Equal(2, again.HoldsWithIntent);
        Assert.Equal(new SettleCounts(0, 1, 0, 0), again.Settled); // the expired one found charged; the posted one skipped
        Assert.Equal(1, again.SettledBefore);
        Assert.Equal(transfers, server.Ledger.Stats.Transfers);
        Assert.Equal((total, 10_000_000 - total, 0L), await server.AccountAsync(c.Id));

        // The clients retry with their keys: served, not charged again.
        foreach (var (text, key, hold) in new[] { (pendingText, "pending", pending.HoldId), (expiredText, "expired", expired.HoldId) })
        {
            var r = await server.EmbedAsync(c.Key, Body(text), key);
            await MoneyServer.AssertStatusAsync(HttpStatusCode.OK, r);
            Assert.Equal("false", r.Headers.GetValues("X-CG-Charged").Single());
            Assert.Equal(hold, UInt128.Parse(r.Headers.GetValues("X-CG-Transfer-Id").Single()));
        }
        Assert.Equal((total, 10_000_000 - total, 0L), await server.AccountAsync(c.Id));
        Assert.Equal(0, server.Host.Gateway.DeadLetters.Count);
    }

    [Fact]
    public async Task Node_revenue_stays_bound_to_each_node_across_restarts_with_the_nodes_coming_back_in_another_order()
    {
        InferenceServerOptions first = new() { LocalNodes = [new("fra-1", "frankfurt", 18, 8), new("dal-1", "dallas", 20, 8)] };
        InferenceServerOptions reordered = new() { LocalNodes = [new("tok-1", "tokyo", 16, 8), new("dal-1", "dallas", 20, 8), new("fra-1", "frankfurt", 18, 8)] };
        await using MoneyServer server = await MoneyServer.StartAsync("restart-binding", first);
        Party c = await server.CustomerAsync("frankfurt", 10_000_000);
        var bound = new Dictionary<string, UInt128>();
        var earned = new Dictionary<string, long>();
        foreach (var (node, region, price) in new[] { ("fra-1", "frankfurt", 18L), ("dal-1", "dallas", 20L) })
        {
            var (account, credits) = await server.RevenueAsync(node);
            Assert.Equal(0, credits);
            bound[node] = account;
            earned[node] = await ServeAsync(server, c, node, region, price, $"before the restart on {node}");
        }
        Assert.NotEqual(bound["fra-1"], bound["dal-1"]);

        // Tokyo first, then Dallas, then Frankfurt: registration order must not matter.
        await server.RestartAsync(reordered);
        Assert.Equal(bound["fra-1"], (await server.RevenueAsync("fra-1")).Id);
        Assert.Equal(bound["dal-1"], (await server.RevenueAsync("dal-1")).Id);
        bound["tok-1"] = (await server.RevenueAsync("tok-1")).Id;
        Assert.Equal(3, bound.Values.Distinct().Count());
        foreach (var (node, region, price) in new[] { ("tok-1", "tokyo", 16L), ("dal-1", "dallas", 20L), ("fra-1", "frankfurt", 18L) })
            earned[node] = earned.GetValueOrDefault(node) + await ServeAsync(server, c, node, region, price, $"after the restart on {node}");
        foreach (var (node, account) in bound)
        {
            Account a = (await server.Ledger.LookupAccountsAsync([account]))[0];
            Assert.Equal(earned[node], a.CreditsPosted);
            Assert.Equal((ushort)AccountCode.NodeRevenue, a.Code);
        }
        // The public routing table names the same accounts.
        JsonElement nodes = JsonDocument.Parse(await server.Http.GetStringAsync("/api/inference/nodes")).RootElement.GetProperty("nodes");
        foreach (JsonElement n in nodes.EnumerateArray())
            Assert.Equal(bound[n.GetProperty("id").GetString()!], UInt128.Parse(n.GetProperty("revenue_account").GetString()!));
    }

    // One request served by `node` (only its region): returns what the node earned (cost − fee) and checks the charge.
    private static async Task<long> ServeAsync(MoneyServer server, Party c, string node, string region, long price, string text)
    {
        var before = await server.AccountAsync(c.Id);
        var r = await server.EmbedAsync(c.Key, new { model = MoneyServer.Model, input = text, provider = new { only = new[] { region }, allow_fallbacks = false } });
        await MoneyServer.AssertStatusAsync(HttpStatusCode.OK, r);
        Assert.Equal(node, r.Headers.GetValues("X-CG-Node").Single());
        long cost = server.CostOf(text, price);
        Assert.Equal(cost, long.Parse(r.Headers.GetValues("X-CG-Cost-Micro-Usd").Single()));
        Assert.Equal(before.Debits + cost, (await server.AccountAsync(c.Id)).Debits);
        return cost - server.FeeOf(cost);
    }

    [Fact]
    public async Task A_missing_node_revenue_account_is_created_at_start_and_one_of_another_shape_refuses_the_start()
    {
        string dir = TestServer.TempDir("binding-shape");
        try
        {
            // A first start makes the folder (operator, system accounts); then, with the server stopped, a node is admitted
            // in the trust store without its revenue account: the next start creates it.
            await StartAndStopAsync(dir);
            ulong missing = Admit(dir, "missing-1");
            await using (LedgerEngine ledger = LedgerEngine.Open(new LedgerEngineOptions { DataDirectory = Path.Combine(dir, "ledger") }))
                Assert.Empty(await ledger.LookupAccountsAsync([InferencePayments.NodeRevenueAccount(missing)]));
            await StartAndStopAsync(dir);
            await using (LedgerEngine ledger = LedgerEngine.Open(new LedgerEngineOptions { DataDirectory = Path.Combine(dir, "ledger") }))
            {
                Account created = (await ledger.LookupAccountsAsync([InferencePayments.NodeRevenueAccount(missing)])).Single();
                Assert.Equal((ushort)AccountCode.NodeRevenue, created.Code);
                // Another node whose revenue account's id holds an account of another code (a customer balance).
                ulong wrong = Admit(dir, "wrong-1");
                Account other = ChartOfAccounts.NewAccount(AccountCode.NodeRevenue, InferencePayments.NodeRevenueAccount(wrong), ComputeGrid.Core.Asset.Usd);
                other.Code = (ushort)AccountCode.CustomerBalance;
                var r = await ledger.CreateAccountsAsync(new[] { other });
                Assert.Equal(CreateAccountResult.Ok, r[0]);
            }
            var app = ServerHost.Build(new ServerOptions { Urls = "http://127.0.0.1:0", NodeUrls = "", DataDirectory = dir, Sites = [] });
            var refused = await Assert.ThrowsAsync<ServerStartException>(() => app.StartAsync());
            await app.DisposeAsync();
            Assert.Contains("wrong-1", refused.Message);
            Assert.Contains(InferencePayments.NodeRevenueAccount(AdmittedPrincipal(dir, "wrong-1")).ToString(), refused.Message);
            Assert.DoesNotContain('\n', refused.Message);
        }
        finally
        {
            try { Directory.Delete(dir, recursive: true); } catch (IOException) { }
        }
    }

    private static async Task StartAndStopAsync(string dir)
    {
        var (app, op) = await TestServer.StartInProcessAsync(dir);
        op.Dispose();
        await app.StopAsync();
        await app.DisposeAsync();
    }

    private static ulong Admit(string dir, string nodeId)
    {
        using TrustStore store = TrustStore.Open(dir);
        ulong by = store.List(PrincipalKind.Operator, 0, 1)[0].Id;
        Principal provider = store.Find(PrincipalKind.Provider, "shapes") ?? store.CreatePrincipal(PrincipalKind.Provider, "shapes", by);
        return store.AdmitNode(provider.Id, nodeId, RandomNumberGenerator.GetBytes(32), 100, by).Principal;
    }

    private static ulong AdmittedPrincipal(string dir, string nodeId)
    {
        using TrustStore store = TrustStore.Open(dir);
        return store.FindNode(nodeId)!.Principal;
    }
}
