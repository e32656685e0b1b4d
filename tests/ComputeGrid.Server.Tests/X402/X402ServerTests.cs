using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using ComputeGrid.Chain.X402;
using ComputeGrid.Ledger;
using ComputeGrid.Server.Chain;
using ComputeGrid.Server.Inference;
using Xunit.Abstractions;

namespace ComputeGrid.Server.Tests.X402;

/// <summary>
/// x402 v2 on <c>POST /v1/embeddings</c> against a real Anvil, with the official <c>@x402/fetch</c> + <c>@x402/evm</c>
/// client (node, the pinned packages, installed through ChainTools): the 402's requirements are this body's metered cost,
/// a paid request is answered with PAYMENT-RESPONSE and settled on chain once, the money goes through the ledger as a
/// keyed request's does (the node's holders' entitlements rise), and every refused payment is a 402 with the official
/// reason, no model run and no ledger movement.
/// </summary>
public sealed class X402ServerTests(ITestOutputHelper output)
{
    [Fact]
    public async Task The_official_client_pays_a_request_which_settles_on_chain_once_and_raises_the_node_holders_entitlements()
    {
        await using X402Rig rig = await X402Rig.StartAsync("x402-paid", confirmations: 2);
        (long node, Party alice) = await IssueSharesAsync(rig);
        const string Text = "paid per request with a signed authorization, no account";
        long cost = rig.CostOf(Text);

        // No key, no payment: 402 with the requirements of exactly this body.
        using (HttpResponseMessage unpaid = await rig.PostAsync(Text))
        {
            Assert.Equal(HttpStatusCode.PaymentRequired, unpaid.StatusCode);
            Assert.Equal("application/problem+json", unpaid.Content.Headers.ContentType?.MediaType);
            JsonElement problem = JsonDocument.Parse(await unpaid.Content.ReadAsStringAsync()).RootElement;
            Assert.Equal(402, problem.GetProperty("status").GetInt32());
            Assert.True(X402Headers.TryDecodePaymentRequired(unpaid.Headers.GetValues(X402Headers.PaymentRequiredName).Single(), out PaymentRequired? required, out string error), error);
            Assert.Equal(2, required!.X402Version);
            PaymentRequirements accept = Assert.Single(required.Accepts);
            Assert.Equal(("exact", "eip155:31337", cost.ToString()), (accept.Scheme, accept.Network, accept.Amount));
            Assert.Equal(rig.Chain.Stablecoin, accept.Asset, StringComparer.OrdinalIgnoreCase);
            Assert.Equal(rig.Chain.PayTo, accept.PayTo, StringComparer.OrdinalIgnoreCase);
            Assert.Equal(X402Payments.MaxTimeoutSecondsDefault, accept.MaxTimeoutSeconds);
            Assert.Equal(("ComputeGrid USD", "1"), (accept.Extra!.Name, accept.Extra.Version));
            Assert.EndsWith("/v1/embeddings", required.Resource.Url);
        }

        string payer = X402Rig.Address(1);
        JsonElement paid = await X402Rig.OfficialAsync("pay", rig.Url, X402Rig.Key(1), X402Rig.Body(Text));
        Assert.True(paid.GetProperty("status").GetInt32() == 200, paid.GetRawText());
        Assert.True(X402Headers.TryDecodeSettleResponse(paid.GetProperty("paymentResponse").GetString(), out SettleResponse? settlement, out string decodeError), decodeError);
        Assert.True(settlement!.Success);
        Assert.Equal("eip155:31337", settlement.Network);
        Assert.Equal(payer, settlement.Payer, StringComparer.OrdinalIgnoreCase);
        Assert.Matches("^0x[0-9a-f]{64}$", settlement.Transaction);

        // On chain: the payer paid the cost once, to the server's account (Anvil mines the transaction at once).
        Assert.True(await X402Rig.EventuallyAsync(async () => await rig.BalanceAsync(payer) == X402Rig.Funding - cost, TimeSpan.FromSeconds(20)));
        Assert.Equal(cost, await rig.BalanceAsync(rig.Chain.PayTo));

        // The ledger: the payer's own account was credited and charged the cost; the node's part went to its share pool.
        await rig.Host.Gateway.Settler.IdleAsync();
        Account payerAccount = await rig.AccountAsync(X402Ledger.PayerAccount(EvmAddress.Parse(payer)));
        Assert.Equal((cost, cost, 0L), (payerAccount.CreditsPosted, payerAccount.DebitsPosted, payerAccount.DebitsPending));
        long fee = cost * rig.Host.Gateway.Options.PlatformFeeBasisPoints / 10_000;
        JsonElement entitlement = await alice.Http.GetJsonAsync($"/api/shares/{node}/entitlement");
        Assert.Equal(cost - fee, entitlement.GetProperty("pool_revenue_micro_usd").GetInt64());
        Assert.Equal((cost - fee) * 250 / 1_000, entitlement.GetProperty("entitled_micro_usd").GetInt64());

        // Two confirmations: one block carries it, the settlement waits for the next; then custody holds it.
        Assert.Equal(0, (await rig.AccountAsync(X402Ledger.ReceivableAccount)).CreditsPosted);
        await rig.Anvil.MineAsync();
        Assert.True(await X402Rig.EventuallyAsync(async () => (await rig.AccountAsync(X402Ledger.ReceivableAccount)).CreditsPosted == cost, TimeSpan.FromSeconds(20)));
        Account receivable = await rig.AccountAsync(X402Ledger.ReceivableAccount);
        Assert.Equal(cost, receivable.DebitsPosted);
        Assert.Equal(cost, (await rig.AccountAsync(X402Ledger.CustodyAccount)).DebitsPosted);
        Assert.Equal(0, (await rig.AccountAsync(X402Ledger.LossesAccount)).DebitsPosted);
        JsonElement settled = await rig.Operator.GetJsonAsync("/api/chain/settlements?state=settled");
        JsonElement row = Assert.Single(settled.GetProperty("settlements").EnumerateArray());
        Assert.Equal(settlement.Transaction, row.GetProperty("tx_hash").GetString());
        Assert.Equal(0, settled.GetProperty("counts").GetProperty("failed").GetInt64());
        output.WriteLine($"paid {cost} micro-USD in {settlement.Transaction}; answer after {paid.GetProperty("elapsedMs").GetDouble():0.0} ms");
    }

    [Fact]
    public async Task Refused_payments_are_402_with_the_official_reason_no_model_run_and_no_ledger_movement()
    {
        await using X402Rig rig = await X402Rig.StartAsync("x402-refusals");
        const string Text = "refused unless paid properly";
        PaymentRequired required = await rig.RequiredAsync(Text);
        long cost = rig.CostOf(Text);
        long now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var cases = new (string Name, string Header, string Reason)[]
        {
            ("expired", X402Rig.Sign(required, 2, a => a with { ValidBefore = (now - 10).ToString() }), "invalid_exact_evm_payload_authorization_valid_before"),
            ("not yet valid", X402Rig.Sign(required, 2, a => a with { ValidAfter = (now + 600).ToString() }), "invalid_exact_evm_payload_authorization_valid_after"),
            ("wrong signer", X402Rig.Sign(required, 2, from: 3), "invalid_exact_evm_signature"),
            ("amount below", X402Rig.Sign(required, 2, a => a with { Value = (cost - 1).ToString() }), "invalid_exact_evm_payload_authorization_value_mismatch"),
            ("another payTo", X402Rig.Sign(required, 2, a => a with { To = X402Rig.Address(5) }), "invalid_exact_evm_recipient_mismatch"),
            ("not base64", "%%%", "invalid_payload"),
            ("no funds", X402Rig.Sign(required, 2, a => a with { Value = (X402Rig.Funding + 1).ToString() }), X402Payments.InsufficientFunds),
        };
        using var counted = new SwappedNode(rig.Host.Gateway, X402Rig.NodeId, inner => new FaultyChannel(inner));
        var transfers = rig.Ledger.Stats.Transfers;
        foreach (var (name, header, reason) in cases)
            await AssertRefusedAsync(rig, Text, header, reason, name);
        Assert.Equal(0, counted.Channel.Calls);
        Assert.Equal(transfers, rig.Ledger.Stats.Transfers);

        // A valid payment is served once; the same header again is a reused nonce.
        string valid = X402Rig.Sign(required, 2);
        using (HttpResponseMessage ok = await rig.PostAsync(Text, valid)) Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        Assert.Equal(1, counted.Channel.Calls);
        var afterOne = rig.Ledger.Stats.Transfers;
        await AssertRefusedAsync(rig, Text, valid, "invalid_exact_evm_nonce_already_used", "reused nonce");
        Assert.Equal(1, counted.Channel.Calls);
        Assert.Equal(afterOne, rig.Ledger.Stats.Transfers);
        Assert.True(await X402Rig.EventuallyAsync(async () => await rig.BalanceAsync(X402Rig.Address(2)) == X402Rig.Funding - cost, TimeSpan.FromSeconds(20)));
    }

    [Fact]
    public async Task A_concurrent_double_spend_of_one_authorization_is_served_exactly_once()
    {
        await using X402Rig rig = await X402Rig.StartAsync("x402-double");
        const string Text = "one authorization, eight requests at once";
        string header = X402Rig.Sign(await rig.RequiredAsync(Text), 4);
        long cost = rig.CostOf(Text);
        HttpResponseMessage[] answers = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => rig.PostAsync(Text, header)));
        Assert.Single(answers, a => a.StatusCode == HttpStatusCode.OK);
        Assert.All(answers.Where(a => a.StatusCode != HttpStatusCode.OK), a => Assert.Equal(HttpStatusCode.PaymentRequired, a.StatusCode));
        foreach (var a in answers.Where(a => a.StatusCode != HttpStatusCode.OK))
            Assert.Equal("invalid_exact_evm_nonce_already_used", JsonDocument.Parse(await a.Content.ReadAsStringAsync()).RootElement.GetProperty("code").GetString());
        Assert.True(await X402Rig.EventuallyAsync(async () => await rig.BalanceAsync(X402Rig.Address(4)) == X402Rig.Funding - cost, TimeSpan.FromSeconds(20)));
        await rig.Host.Gateway.Settler.IdleAsync();
        Account payer = await rig.AccountAsync(X402Ledger.PayerAccount(EvmAddress.Parse(X402Rig.Address(4))));
        Assert.Equal((cost, cost), (payer.CreditsPosted, payer.DebitsPosted));
        Assert.True(await X402Rig.EventuallyAsync(async () => (await rig.AccountAsync(X402Ledger.CustodyAccount)).DebitsPosted == cost, TimeSpan.FromSeconds(20)));
    }

    [Fact]
    public async Task The_official_facilitator_client_verifies_and_settles_through_the_facilitator_api()
    {
        await using X402Rig rig = await X402Rig.StartAsync("x402-facilitator");
        Party resourceServer = await TestServer.NewCustomerAsync(rig.Operator, "resource-server");
        string payTo = X402Rig.Address(7), payer = X402Rig.Address(6);
        const long Amount = 12_345;
        var transfers = rig.Ledger.Stats.Transfers;

        JsonElement r = await X402Rig.OfficialAsync("facilitator", rig.Url, X402Rig.Key(6), resourceServer.Key, payTo, Amount.ToString());
        output.WriteLine(r.GetRawText());
        JsonElement kind = Assert.Single(r.GetProperty("supported").GetProperty("kinds").EnumerateArray());
        Assert.Equal(("exact", "eip155:31337"), (kind.GetProperty("scheme").GetString(), kind.GetProperty("network").GetString()));
        Assert.Equal(ComputeGrid.Chain.ChainDeployment.AddressOf(X402Rig.ServerKey), r.GetProperty("supported").GetProperty("signers").GetProperty("eip155:*")[0].GetString(),
            StringComparer.OrdinalIgnoreCase);
        Assert.True(r.GetProperty("verify").GetProperty("isValid").GetBoolean(), r.GetProperty("verify").GetRawText());
        Assert.Contains("401", r.GetProperty("settleWithoutKey").GetProperty("error").GetString());
        JsonElement settle = r.GetProperty("settle");
        Assert.True(settle.GetProperty("success").GetBoolean(), settle.GetRawText());
        Assert.Equal(payer, settle.GetProperty("payer").GetString(), StringComparer.OrdinalIgnoreCase);
        string tx = settle.GetProperty("transaction").GetString()!;
        // Verified after its settlement: the nonce is used; settling again answers the same transaction, sends nothing.
        Assert.False(r.GetProperty("verifyAfter").GetProperty("isValid").GetBoolean());
        Assert.Equal("invalid_exact_evm_nonce_already_used", r.GetProperty("verifyAfter").GetProperty("invalidReason").GetString());
        Assert.True(r.GetProperty("settleAgain").GetProperty("success").GetBoolean());
        Assert.Equal(tx, r.GetProperty("settleAgain").GetProperty("transaction").GetString());

        Assert.Equal(X402Rig.Funding - Amount, await rig.BalanceAsync(payer));
        Assert.Equal(X402Rig.Funding + Amount, await rig.BalanceAsync(payTo));
        Assert.Equal(transfers, rig.Ledger.Stats.Transfers); // another resource server's money: the ledger does not move
    }

    [Fact]
    public async Task On_a_chain_mining_every_2_seconds_answers_do_not_wait_for_blocks_and_every_settlement_lands_once()
    {
        await using X402Rig rig = await X402Rig.StartAsync("x402-slow");
        await rig.Anvil.CallAsync("evm_setIntervalMining", 2);
        string[] texts = ["slow chain, first", "slow chain, second request", "slow chain, the third one"];
        long total = 0;
        var hashes = new List<string>();
        int answeredBeforeMined = 0;
        foreach (string text in texts)
        {
            JsonElement paid = await X402Rig.OfficialAsync("pay", rig.Url, X402Rig.Key(8), X402Rig.Body(text));
            Assert.True(paid.GetProperty("status").GetInt32() == 200, paid.GetRawText());
            Assert.True(X402Headers.TryDecodeSettleResponse(paid.GetProperty("paymentResponse").GetString(), out SettleResponse? s, out _));
            var receipt = await rig.X402.Chain.Web3.Eth.Transactions.GetTransactionReceipt.SendRequestAsync(s!.Transaction);
            if (receipt is null) answeredBeforeMined++;
            hashes.Add(s.Transaction);
            total += rig.CostOf(text);
            output.WriteLine($"answer latency {paid.GetProperty("elapsedMs").GetDouble():0.0} ms (block time 2,000 ms); mined when answered: {receipt is not null}");
        }
        Assert.True(answeredBeforeMined > 0, "every answer came after its block: the answers waited for the chain");
        Assert.Equal(3, hashes.Distinct().Count());
        Assert.True(await X402Rig.EventuallyAsync(async () => (await rig.AccountAsync(X402Ledger.CustodyAccount)).DebitsPosted == total, TimeSpan.FromSeconds(30)));
        Assert.Equal(X402Rig.Funding - total, await rig.BalanceAsync(X402Rig.Address(8)));
        Assert.Equal(3, rig.X402.Store.Counts()[X402State.Settled]);
        Assert.Equal(0, rig.X402.Store.Counts()[X402State.Failed]);
    }

    private static async Task AssertRefusedAsync(X402Rig rig, string text, string header, string reason, string name)
    {
        using HttpResponseMessage r = await rig.PostAsync(text, header);
        string body = await r.Content.ReadAsStringAsync();
        Assert.True(r.StatusCode == HttpStatusCode.PaymentRequired, $"{name}: {(int)r.StatusCode} {body}");
        Assert.Equal(reason, JsonDocument.Parse(body).RootElement.GetProperty("code").GetString());
        Assert.True(X402Headers.TryDecodePaymentRequired(r.Headers.GetValues(X402Headers.PaymentRequiredName).Single(), out PaymentRequired? again, out _), name);
        Assert.Equal(reason, again!.Error);
        Assert.False(r.Headers.Contains(X402Headers.PaymentResponseName), name);
    }

    // The local provider lists its node, issues 1,000 shares and gives alice 250 of them (as ShareRevenueTests does).
    private static async Task<(long Node, Party Alice)> IssueSharesAsync(X402Rig rig)
    {
        HttpClient op = rig.Operator;
        JsonElement principals = await op.GetJsonAsync("/api/principals?kind=provider");
        ulong provider = principals.GetProperty("principals").EnumerateArray().Single(p => p.GetProperty("name").GetString() == "local").GetProperty("id").GetUInt64();
        JsonElement issued = await op.PostJsonAsync($"/api/principals/{provider}/keys", new { name = "shares", scopes = new[] { "trade", "read" } });
        using HttpClient providerHttp = TestServer.Client(op.BaseAddress!.ToString(), issued.GetProperty("api_key").GetString());
        await op.PostJsonAsync($"/api/providers/{provider}/collateral", new { amount = 10_000_000, funding_id = "local-collateral" });
        var listed = await providerHttp.PostSnakeAsync("/api/exchange/nodes", new { node_id = X402Rig.NodeId, gpu = "H100", region = "frankfurt", gpus = 8 });
        Assert.Equal(HttpStatusCode.Created, listed.StatusCode);
        long node = (await listed.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetInt64();
        Party alice = await TestServer.NewCustomerAsync(op, "alice");
        await ApiTestHelpers.OkAsync(await op.PostSnakeAsync($"/api/shares/issuers/{provider}", new { }));
        Assert.Equal(HttpStatusCode.Created, (await providerHttp.PostSnakeAsync("/api/shares", new { node_id = node, supply = 1_000 })).StatusCode);
        await ApiTestHelpers.OkAsync(await providerHttp.PostSnakeAsync($"/api/shares/{node}/transfers", new { to = alice.Id, shares = 250 }));
        return (node, alice);
    }
}
