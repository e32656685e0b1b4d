using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json;
using ComputeGrid.Chain;
using ComputeGrid.Chain.Contracts;
using ComputeGrid.Chain.X402;
using ComputeGrid.Inference.Nodes;
using ComputeGrid.Server.Chain;
using ComputeGrid.Server.Inference;
using Xunit.Abstractions;

namespace ComputeGrid.Server.Tests.X402;

/// <summary>
/// A real <c>computegrid serve --chain RPC --chain-key FILE</c> child killed with SIGKILL by its x402 fault hook
/// (<c>CG_FAULT</c>) between serving a paid request and its settlement landing: after the answer went out with its
/// transaction hash (the settlement not yet confirmed or posted), or after the model ran and before anything was sent
/// (the intent Reserved). After the restart the authorization is settled exactly once: the payer's on-chain balance fell
/// by the cost once, custody holds it once, the intent is Settled, and presenting the same payment again is refused.
/// A node agent with the real model (in the test process) serves the child's node port.
/// </summary>
public sealed class X402CrashTests(CrashModelFixture fixture, ITestOutputHelper output) : IClassFixture<CrashModelFixture>, IDisposable
{
    private const string NodeId = "x402-crash-1";
    private const long Price = 40_000;
    private readonly string _dir = TestServer.TempDir("x402-crash");

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    [Theory]
    [InlineData("x402-kill-after-answer")]
    [InlineData("x402-kill-before-send")]
    public async Task A_kill_between_serving_a_paid_request_and_its_settlement_settles_it_once_after_the_restart(string fault)
    {
        await using AnvilProcess anvil = await AnvilProcess.StartAsync();
        string keyFile = _dir + ".key";
        await File.WriteAllTextAsync(keyFile, X402Rig.ServerKey);
        string[] chainArgs = ["--no-sites", "--chain", anvil.RpcUrl, "--chain-key", keyFile, "--chain-confirmations", "1"];
        int port = TestServer.FreePort();
        string nodeUrl = $"http://127.0.0.1:{TestServer.FreePort()}";
        var (server, url) = await TestServer.StartChildAsync(_dir, port, nodeUrl, new Dictionary<string, string> { [InferenceFaults.Variable] = fault }, chainArgs);
        using var op = TestServer.Client(url, TestServer.OperatorKey(_dir));
        using var anonymous = TestServer.Client(url, null);
        using var stop = new CancellationTokenSource();
        await using NodeAgent agent = await StartNodeAsync(op, nodeUrl, stop.Token);
        try
        {
            ChainInfo chain = ChainDeployment.Read(Path.Combine(_dir, "chain.json"));
            var mint = new StablecoinClient(ChainDeployment.Connect(anvil.RpcUrl, anvil.ChainId, X402Rig.ServerKey), chain.Stablecoin);
            string payer = X402Rig.Address(2);
            await mint.MintAsync(payer, X402Rig.Funding);
            var coin = new StablecoinClient(ChainDeployment.Connect(anvil.RpcUrl, anvil.ChainId, X402Rig.Key(1)), chain.Stablecoin);

            string text = $"killed between its answer and its settlement ({fault})";
            long cost = InferenceGateway.Cost(fixture.Model.Tokenize(text).TokenCount, Price);
            using HttpResponseMessage unpaid = await Post(anonymous, text, null);
            Assert.Equal(HttpStatusCode.PaymentRequired, unpaid.StatusCode);
            Assert.True(X402Headers.TryDecodePaymentRequired(unpaid.Headers.GetValues(X402Headers.PaymentRequiredName).Single(), out PaymentRequired? required, out _));
            Assert.Equal(cost.ToString(), required!.Accepts[0].Amount);
            string header = X402Rig.Sign(required, 2);

            string? tx = null;
            if (fault == "x402-kill-after-answer")
            {
                using HttpResponseMessage answered = await Post(anonymous, text, header);
                Assert.True(answered.StatusCode == HttpStatusCode.OK, await answered.Content.ReadAsStringAsync());
                Assert.True(X402Headers.TryDecodeSettleResponse(answered.Headers.GetValues(X402Headers.PaymentResponseName).Single(), out SettleResponse? s, out _));
                tx = s!.Transaction;
            }
            else await Assert.ThrowsAnyAsync<HttpRequestException>(() => Post(anonymous, text, header)); // dies served, nothing sent
            using (var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30))) await server.WaitForExitAsync(timeout.Token);
            server.Dispose();

            (server, _) = await TestServer.StartChildAsync(_dir, port, nodeUrl, null, chainArgs);
            // Recovery resumed the intent before the server took requests; the settler lands it once.
            Assert.True(await X402Rig.EventuallyAsync(async () => Count(await op.GetJsonAsync("/api/chain/settlements?state=settled")) == 1, TimeSpan.FromSeconds(30)));
            JsonElement settled = await op.GetJsonAsync("/api/chain/settlements?state=settled");
            JsonElement row = settled.GetProperty("settlements")[0];
            if (tx is not null) Assert.Equal(tx, row.GetProperty("tx_hash").GetString());
            Assert.Equal(0, settled.GetProperty("counts").GetProperty("failed").GetInt64());
            Assert.Equal(0, settled.GetProperty("counts").GetProperty("sent").GetInt64() + settled.GetProperty("counts").GetProperty("reserved").GetInt64());
            Assert.Equal(X402Rig.Funding - cost, await coin.BalanceOfAsync(payer));
            Assert.Equal(cost, await coin.BalanceOfAsync(chain.PayTo));

            // The ledger, read through the operator's API: the payer credited and charged once, custody holds it once.
            Assert.Equal((cost, cost), await PostedAsync(op, X402Ledger.PayerAccount(EvmAddress.Parse(payer))));
            Assert.Equal((cost, 0L), await PostedAsync(op, X402Ledger.CustodyAccount));
            Assert.Equal((cost, cost), await PostedAsync(op, X402Ledger.ReceivableAccount));

            // The same payment again buys nothing.
            // (Once the re-registered node takes work again: with no node the request has no price and is a 503.)
            HttpStatusCode again = HttpStatusCode.ServiceUnavailable;
            Assert.True(await X402Rig.EventuallyAsync(async () =>
            {
                using HttpResponseMessage r = await Post(anonymous, text, header);
                again = r.StatusCode;
                return again != HttpStatusCode.ServiceUnavailable;
            }, TimeSpan.FromSeconds(30)));
            Assert.Equal(HttpStatusCode.PaymentRequired, again);
            output.WriteLine($"{fault}: cost {cost}, settled in {row.GetProperty("tx_hash").GetString()} after the restart");
        }
        finally
        {
            await stop.CancelAsync();
            if (!server.HasExited) { server.Kill(entireProcessTree: true); server.WaitForExit(); }
            server.Dispose();
            File.Delete(keyFile);
        }
    }

    [Fact]
    public async Task A_served_payment_whose_nonce_the_payer_spends_elsewhere_before_the_send_is_written_off_and_listed_for_operators()
    {
        await using AnvilProcess anvil = await AnvilProcess.StartAsync();
        string keyFile = _dir + ".key";
        await File.WriteAllTextAsync(keyFile, X402Rig.ServerKey);
        string[] chainArgs = ["--no-sites", "--chain", anvil.RpcUrl, "--chain-key", keyFile, "--chain-confirmations", "1"];
        int port = TestServer.FreePort();
        string nodeUrl = $"http://127.0.0.1:{TestServer.FreePort()}";
        var (server, url) = await TestServer.StartChildAsync(_dir, port, nodeUrl, new Dictionary<string, string> { [InferenceFaults.Variable] = "x402-kill-before-send" }, chainArgs);
        using var op = TestServer.Client(url, TestServer.OperatorKey(_dir));
        using var anonymous = TestServer.Client(url, null);
        using var stop = new CancellationTokenSource();
        await using NodeAgent agent = await StartNodeAsync(op, nodeUrl, stop.Token);
        try
        {
            ChainInfo chain = ChainDeployment.Read(Path.Combine(_dir, "chain.json"));
            string payer = X402Rig.Address(3), elsewhere = X402Rig.Address(4);
            await new StablecoinClient(ChainDeployment.Connect(anvil.RpcUrl, anvil.ChainId, X402Rig.ServerKey), chain.Stablecoin).MintAsync(payer, X402Rig.Funding);
            const string Text = "served, then its nonce spent on another authorization";
            long cost = InferenceGateway.Cost(fixture.Model.Tokenize(Text).TokenCount, Price);
            using HttpResponseMessage unpaid = await Post(anonymous, Text, null);
            Assert.True(X402Headers.TryDecodePaymentRequired(unpaid.Headers.GetValues(X402Headers.PaymentRequiredName).Single(), out PaymentRequired? required, out _));
            string header = X402Rig.Sign(required!, 3);
            Assert.True(X402Headers.TryDecodePaymentPayload(header, out PaymentPayload? payment, out _));
            await Assert.ThrowsAnyAsync<HttpRequestException>(() => Post(anonymous, Text, header)); // served, killed before the send

            // While the server is down the payer signs the same nonce to someone else and settles that first.
            ExactEvmAuthorization a = payment!.Payload.Authorization!;
            var other = new TransferAuthorization(payer, elsewhere, 1, 0, long.Parse(a.ValidBefore), a.Nonce);
            var payerWeb3 = new StablecoinClient(ChainDeployment.Connect(anvil.RpcUrl, anvil.ChainId, X402Rig.Key(3)), chain.Stablecoin);
            await payerWeb3.TransferWithAuthorizationAsync(other, other.Sign(new ComputeGrid.Chain.X402.Eip712Domain(chain.TokenName, chain.TokenVersion, chain.ChainId, EvmAddress.Parse(chain.Stablecoin)), X402Rig.Key(3)));
            using (var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30))) await server.WaitForExitAsync(timeout.Token);
            server.Dispose();

            (server, _) = await TestServer.StartChildAsync(_dir, port, nodeUrl, null, chainArgs);
            JsonElement failed = await op.GetJsonAsync("/api/chain/settlements?state=failed");
            JsonElement row = Assert.Single(failed.GetProperty("settlements").EnumerateArray());
            Assert.Equal(payer, row.GetProperty("payer").GetString(), StringComparer.OrdinalIgnoreCase);
            Assert.Equal(cost, row.GetProperty("value").GetInt64());
            Assert.Contains("refuses", row.GetProperty("error").GetString());
            // The platform's loss, in the ledger: the receivable closed by X402Losses; custody got nothing; the payer paid 1 elsewhere only.
            Assert.Equal((cost, 0L), await PostedAsync(op, X402Ledger.LossesAccount));
            Assert.Equal((cost, cost), await PostedAsync(op, X402Ledger.ReceivableAccount));
            Assert.Equal(X402Rig.Funding - 1, await payerWeb3.BalanceOfAsync(payer));
            string metrics = await op.GetStringAsync("/metrics");
            Assert.Equal(1, Observability.PrometheusText.Parse(metrics).Single("computegrid_x402_settlements", ("state", "failed")));
            output.WriteLine($"written off: {row.GetProperty("error").GetString()}");
        }
        finally
        {
            await stop.CancelAsync();
            if (!server.HasExited) { server.Kill(entireProcessTree: true); server.WaitForExit(); }
            server.Dispose();
            File.Delete(keyFile);
        }
    }

    private static int Count(JsonElement list) => list.GetProperty("settlements").GetArrayLength();

    private static async Task<(long Debits, long Credits)> PostedAsync(HttpClient op, UInt128 account)
    {
        JsonElement a = await op.GetJsonAsync($"/api/ledger/accounts/{account}");
        return (a.GetProperty("debits_posted").GetInt64(), a.GetProperty("credits_posted").GetInt64());
    }

    private static Task<HttpResponseMessage> Post(HttpClient http, string text, string? header)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "/v1/embeddings") { Content = new StringContent(X402Rig.Body(text), Encoding.UTF8, "application/json") };
        if (header is not null) request.Headers.TryAddWithoutValidation(X402Headers.PaymentSignatureName, header);
        return http.SendAsync(request);
    }

    private async Task<NodeAgent> StartNodeAsync(HttpClient op, string nodeUrl, CancellationToken stop)
    {
        Party provider = await TestServer.NewProviderAsync(op, "x402-provider");
        provider.Http.Dispose();
        string keyFile = Path.Combine(_dir, NodeId + ".nodekey");
        var (_, publicKey, _, _) = NodeAgent.LoadOrCreateKey(keyFile);
        await op.PostJsonAsync($"/api/providers/{provider.Id}/nodes", new { node_id = NodeId, public_key = Convert.ToBase64String(publicKey), price_ceiling_micro_usd_per_1k_tokens = 100_000 });
        var agent = new NodeAgent(new NodeAgentOptions
        {
            Server = new Uri(nodeUrl), NodeId = NodeId, Region = "frankfurt", PriceMicroUsdPer1kTokens = Price, Capacity = 4, KeyFile = keyFile,
            ReconnectMinDelay = TimeSpan.FromMilliseconds(50), ReconnectMaxDelay = TimeSpan.FromMilliseconds(300), DrainTimeout = TimeSpan.FromSeconds(1),
        }, log: null, model: fixture.Model);
        _ = agent.RunAsync(stop);
        await AgentReadyAsync(op);
        return agent;
    }

    private static async Task AgentReadyAsync(HttpClient op)
    {
        bool healthy = await X402Rig.EventuallyAsync(async () =>
        {
            JsonElement nodes = JsonDocument.Parse(await op.GetStringAsync("/api/inference/nodes")).RootElement.GetProperty("nodes");
            return nodes.EnumerateArray().Any(n => n.GetProperty("id").GetString() == NodeId && n.GetProperty("healthy").GetBoolean());
        }, TimeSpan.FromSeconds(60));
        Assert.True(healthy, $"node {NodeId} did not become healthy");
    }
}
