using System.Net;
using System.Net.Http.Json;
using System.Text;
using ComputeGrid.Core;
using ComputeGrid.Ledger;
using ComputeGrid.Server.Chain;

namespace ComputeGrid.Server.Tests.Chain;

/// <summary>
/// The chain, bridge, share-bridge and x402 facilitator routes walked as an attacker on a server bridged to a real
/// Anvil: no credential, another principal's key or withdrawal, a principal kind that holds nothing, zero, negative,
/// huge and overflowing amounts, malformed and zero addresses, keys too long, bodies not JSON or too large, another
/// chain's network, an unknown node. Every one is a 4xx problem (or an x402 refusal) and moves nothing.
/// </summary>
public sealed class ChainAttackTests
{
    private const string Good = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";

    [Fact]
    public async Task Bad_and_foreign_requests_to_the_bridge_routes_are_refused_with_a_problem_and_move_nothing()
    {
        await using BridgeHarness h = await BridgeHarness.StartAsync();
        ExchangeSeed seed = await TestServer.SeedExchangeAsync(h.Operator, ("H100", "frankfurt"));
        Party provider = seed.Provider, bob = seed.Poor;
        Party alice = await TestServer.NewCustomerAsync(h.Operator, "carol", fundMicroUsd: 5_000_000);
        long node = seed.Nodes[("H100", "frankfurt")];
        await ApiTestHelpers.OkAsync(await h.Operator.PostSnakeAsync($"/api/shares/issuers/{provider.Id}", new { }));
        Assert.Equal(HttpStatusCode.Created, (await provider.Http.PostSnakeAsync("/api/shares", new { node_id = node, supply = 1_000 })).StatusCode);
        using HttpClient anonymous = TestServer.Client(h.Operator.BaseAddress!.ToString(), null);
        long aliceBefore = await h.CreditBalanceAsync(alice.Account);

        // No credential: 401 on every route that moves or shows something of someone's.
        Assert.Equal(HttpStatusCode.Unauthorized, (await SendAsync(anonymous, "/api/chain/withdrawals", new { amount = 1, to = Good }, "k")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await SendAsync(anonymous, "/api/chain/share-withdrawals", new { node, shares = 1, to = Good }, "k")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync("/api/chain/deposit-account")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.PostAsync("/x402/settle", Json("{}"))).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync("/api/chain/settlements")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await alice.Http.GetAsync("/api/chain/settlements")).StatusCode); // operators only

        // Amounts: zero, negative, above the maximum, beyond a long, not a number.
        foreach (object amount in new object[] { 0, -1, BridgeOptions.WithdrawalAmountMax + 1, long.MinValue })
            await AssertProblemAsync(HttpStatusCode.BadRequest, await SendAsync(alice.Http, "/api/chain/withdrawals", new { amount, to = Good }, $"a{amount}"));
        foreach (string raw in new[] { "9223372036854775808", "1e30", "\"5\"", "1.5", "null" })
            await AssertProblemAsync(HttpStatusCode.BadRequest, await SendRawAsync(alice.Http, "/api/chain/withdrawals", $$"""{"amount":{{raw}},"to":"{{Good}}"}""", $"r{raw}"));
        foreach (object shares in new object[] { 0, -5, long.MaxValue })
            await AssertProblemAsync(HttpStatusCode.BadRequest, await SendAsync(provider.Http, "/api/chain/share-withdrawals", new { node, shares, to = Good }, $"s{shares}"));
        foreach (long badNode in new[] { 0L, -1L, long.MinValue })
            await AssertProblemAsync(HttpStatusCode.BadRequest, await SendAsync(provider.Http, "/api/chain/share-withdrawals", new { node = badNode, shares = 1, to = Good }, $"n{badNode}"));
        await AssertProblemAsync(HttpStatusCode.NotFound, await SendAsync(provider.Http, "/api/chain/share-withdrawals", new { node = node + 999, shares = 1, to = Good }, "unknown-node"));

        // Addresses: short, long, not hex, the zero address, missing, an ENS-like name.
        foreach (string? to in new[] { "0x1234", Good + "00", "0xZZ997970C51812dc3A010C7d01b50e0d17dc79C8", "0x" + new string('0', 40), null, "alice.eth", " " + Good[1..] })
        {
            await AssertProblemAsync(HttpStatusCode.BadRequest, await SendAsync(alice.Http, "/api/chain/withdrawals", new { amount = 1, to }, $"to{to}"));
            await AssertProblemAsync(HttpStatusCode.BadRequest, await SendAsync(provider.Http, "/api/chain/share-withdrawals", new { node, shares = 1, to }, $"to{to}"));
        }

        // Idempotency keys: missing, blank, too long.
        foreach (string? key in new[] { null, " ", new string('k', BridgeOptions.IdempotencyKeyLengthMax + 1) })
            await AssertProblemAsync(HttpStatusCode.BadRequest, await SendAsync(alice.Http, "/api/chain/withdrawals", new { amount = 1, to = Good }, key));

        // Bodies: not JSON, JSON null, an array, and one far larger than any withdrawal needs.
        foreach (string body in new[] { "not json", "null", "[]", "{\"amount\":1,\"to\":\"" + new string('a', 2_000_000) + "\"}" })
        {
            HttpResponseMessage r = await SendRawAsync(alice.Http, "/api/chain/withdrawals", body, "body");
            Assert.True(r.StatusCode is HttpStatusCode.BadRequest or HttpStatusCode.RequestEntityTooLarge, $"{body[..Math.Min(20, body.Length)]}: {r.StatusCode}");
        }

        // An operator and a node hold no balance or shares: nothing to withdraw, no account to deposit to.
        await AssertProblemAsync(HttpStatusCode.Forbidden, await SendAsync(h.Operator, "/api/chain/withdrawals", new { amount = 1, to = Good }, "op"));
        await AssertProblemAsync(HttpStatusCode.Forbidden, await SendAsync(h.Operator, "/api/chain/share-withdrawals", new { node, shares = 1, to = Good }, "op"));
        await AssertProblemAsync(HttpStatusCode.NotFound, await h.Operator.GetAsync("/api/chain/deposit-account"));

        // More shares than the caller holds free (bob holds none): 409, nothing moved; the same for money.
        await AssertProblemAsync(HttpStatusCode.Conflict, await SendAsync(bob.Http, "/api/chain/share-withdrawals", new { node, shares = 1, to = Good }, "none"));
        await AssertProblemAsync(HttpStatusCode.Conflict, await SendAsync(alice.Http, "/api/chain/withdrawals", new { amount = BridgeOptions.WithdrawalAmountMax, to = Good }, "rich"));

        // Another's withdrawal and share withdrawal answer as unknown; so do made-up and oversize ids.
        HttpResponseMessage own = await SendAsync(alice.Http, "/api/chain/withdrawals", new { amount = 1_000, to = Good }, "mine");
        Assert.Equal(HttpStatusCode.Accepted, own.StatusCode);
        string withdrawal = (await BridgeHarness.JsonAsync(own)).GetProperty("id").GetString()!;
        HttpResponseMessage ownShares = await SendAsync(provider.Http, "/api/chain/share-withdrawals", new { node, shares = 3, to = Good }, "mine");
        Assert.Equal(HttpStatusCode.Accepted, ownShares.StatusCode);
        string shareWithdrawal = (await BridgeHarness.JsonAsync(ownShares)).GetProperty("id").GetString()!;
        await AssertProblemAsync(HttpStatusCode.NotFound, await bob.Http.GetAsync($"/api/chain/withdrawals/{withdrawal}"));
        await AssertProblemAsync(HttpStatusCode.NotFound, await alice.Http.GetAsync($"/api/chain/share-withdrawals/{shareWithdrawal}"));
        await AssertProblemAsync(HttpStatusCode.NotFound, await alice.Http.GetAsync($"/api/chain/withdrawals/{new string('f', 4_000)}"));
        Assert.Equal(HttpStatusCode.OK, (await h.Operator.GetAsync($"/api/chain/share-withdrawals/{shareWithdrawal}")).StatusCode);
        // Bob reusing alice's key names bob's own withdrawal, never alice's.
        HttpResponseMessage bobs = await SendAsync(bob.Http, "/api/chain/withdrawals", new { amount = 1_000, to = Good }, "mine");
        if (bobs.StatusCode == HttpStatusCode.Accepted) Assert.NotEqual(withdrawal, (await BridgeHarness.JsonAsync(bobs)).GetProperty("id").GetString());

        // Only alice's own 1,000 is held (pending, for her withdrawal); nothing else of hers moved.
        Assert.Equal(aliceBefore, await h.CreditBalanceAsync(alice.Account));
        Assert.Equal(1_000, (await h.Ledger.LookupAccountsAsync([alice.Account]))[0].DebitsPending);
    }

    [Fact]
    public async Task The_facilitator_refuses_other_chains_malformed_payloads_and_callers_without_the_right_key()
    {
        await using BridgeHarness h = await BridgeHarness.StartAsync();
        Party alice = await TestServer.NewCustomerAsync(h.Operator, "alice");
        Party acme = await TestServer.NewProviderAsync(h.Operator, "acme");
        using HttpClient anonymous = TestServer.Client(h.Operator.BaseAddress!.ToString(), null);

        // Not JSON, JSON null, the wrong shape: 400 problems, before any chain call.
        foreach (string body in new[] { "{", "null", "[1,2]", "{\"x402Version\":\"two\"}" })
        {
            await AssertProblemAsync(HttpStatusCode.BadRequest, await anonymous.PostAsync("/x402/verify", Json(body)));
            await AssertProblemAsync(HttpStatusCode.BadRequest, await alice.Http.PostAsync("/x402/settle", Json(body)));
        }
        // A provider's key (no inference scope) may not make the server spend gas settling.
        Assert.Equal(HttpStatusCode.Forbidden, (await acme.Http.PostAsync("/x402/settle", Json("{}"))).StatusCode);

        // Another chain's network, an amount beyond uint256, a malformed signature: refused, nothing reserved or sent.
        string chainId = h.Chain.Info.ChainId.ToString(System.Globalization.CultureInfo.InvariantCulture);
        string Request(string network, string value, string signature)
        {
            var requirements = new Dictionary<string, object>
            {
                ["scheme"] = "exact", ["network"] = network, ["amount"] = "1000", ["asset"] = h.Chain.Info.Stablecoin, ["payTo"] = h.Chain.Info.PayTo,
                ["maxTimeoutSeconds"] = 60, ["extra"] = new Dictionary<string, string> { ["name"] = "ComputeGrid USD", ["version"] = "1" },
            };
            var authorization = new Dictionary<string, string>
            {
                ["from"] = Good, ["to"] = h.Chain.Info.PayTo, ["value"] = value, ["validAfter"] = "0", ["validBefore"] = "99999999999", ["nonce"] = "0x" + new string('1', 64),
            };
            return System.Text.Json.JsonSerializer.Serialize(new Dictionary<string, object>
            {
                ["x402Version"] = 2,
                ["paymentPayload"] = new Dictionary<string, object>
                {
                    ["x402Version"] = 2, ["accepted"] = requirements,
                    ["payload"] = new Dictionary<string, object> { ["signature"] = signature, ["authorization"] = authorization },
                },
                ["paymentRequirements"] = requirements,
            });
        }
        string goodSignature = "0x" + new string('a', 128) + "1b";
        foreach (var (network, value, signature) in new[]
        {
            ("eip155:1", "1000", goodSignature),
            ($"eip155:{chainId}", "115792089237316195423570985008687907853269984665640564039457584007913129639936", goodSignature),
            ($"eip155:{chainId}", "-1", goodSignature),
            ($"eip155:{chainId}", "1000", "0x1234"),
            ($"eip155:{chainId}", "1000", goodSignature), // well formed, but it recovers someone else
        })
        {
            HttpResponseMessage verify = await anonymous.PostAsync("/x402/verify", Json(Request(network, value, signature)));
            string text = await verify.Content.ReadAsStringAsync();
            Assert.True(verify.StatusCode is HttpStatusCode.OK or HttpStatusCode.BadRequest, $"{network} {value} {signature}: {verify.StatusCode} {text}");
            if (verify.StatusCode == HttpStatusCode.OK) Assert.Contains("\"isValid\":false", text, StringComparison.Ordinal);
            HttpResponseMessage settle = await alice.Http.PostAsync("/x402/settle", Json(Request(network, value, signature)));
            string settled = await settle.Content.ReadAsStringAsync();
            Assert.True(settle.StatusCode is HttpStatusCode.OK or HttpStatusCode.BadRequest, $"{network} {value}: {settle.StatusCode} {settled}");
            if (settle.StatusCode == HttpStatusCode.OK) Assert.Contains("\"success\":false", settled, StringComparison.Ordinal);
        }
        Assert.Empty(h.App.Services.GetService(typeof(X402Payments)) is X402Payments x ? x.Store.List([X402State.Reserved, X402State.Sent, X402State.Settled], 10) : []);
    }

    private static StringContent Json(string body) => new(body, Encoding.UTF8, "application/json");

    private static async Task AssertProblemAsync(HttpStatusCode expected, HttpResponseMessage r)
    {
        string body = await r.Content.ReadAsStringAsync();
        Assert.True(expected == r.StatusCode, $"expected {expected}, got {r.StatusCode}: {body}");
        Assert.Equal("application/problem+json", r.Content.Headers.ContentType?.MediaType);
    }

    private static async Task<HttpResponseMessage> SendAsync(HttpClient who, string path, object body, string? key)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = JsonContent.Create(body, options: TestServer.Json) };
        if (key is not null) request.Headers.TryAddWithoutValidation("Idempotency-Key", key);
        return await who.SendAsync(request);
    }

    private static async Task<HttpResponseMessage> SendRawAsync(HttpClient who, string path, string body, string key)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = Json(body) };
        request.Headers.TryAddWithoutValidation("Idempotency-Key", key);
        return await who.SendAsync(request);
    }
}
