using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using ComputeGrid.Core;
using ComputeGrid.Inference.Model;
using ComputeGrid.Inference.Nodes;
using ComputeGrid.Inference.Reports;
using ComputeGrid.Ledger;
using ComputeGrid.Server.Inference;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;

namespace ComputeGrid.Server.Tests;

/// <summary>The real model, loaded once for the report tests (one thread).</summary>
public sealed class ReportModelFixture : IDisposable
{
    public MiniLmEmbeddingModel Model { get; } = new(1);

    public void Dispose() => Model.Dispose();
}

/// <summary>
/// Verifiable node reports through a real server: a node agent serves paid requests (so the node's revenue account has
/// real captures), the server's clock passes the epoch's end, and then reports arrive — the node's own (accepted and
/// published, verifiable offline), and forged, broken-chain or inflated ones, each refused with its rule and flagged.
/// </summary>
public sealed class NodeEpochReportTests(ReportModelFixture fixture) : IClassFixture<ReportModelFixture>, IAsyncLifetime
{
    private const string NodeId = "rep-1";
    private const long Price = 50;
    private const int Gpus = 2;
    private static readonly long HourNs = 3_600_000_000_000;
    private readonly string _dir = TestServer.TempDir("epoch-reports");
    private readonly FakeTimeProvider _time = new(DateTimeOffset.UtcNow);
    private readonly CancellationTokenSource _stopAgent = new();
    private WebApplication _app = null!;
    private HttpClient _op = null!;
    private HttpClient _public = null!;
    private NodeAgent _agent = null!;
    private Task _agentRun = Task.CompletedTask;
    private byte[] _key = null!;
    private ulong _principal;
    private long _epoch;
    private long _tokens;

    public async Task InitializeAsync()
    {
        _app = ServerHost.Build(new ServerOptions { Urls = "http://127.0.0.1:0", NodeUrls = "http://127.0.0.1:0", DataDirectory = _dir, Time = _time });
        await _app.StartAsync();
        _op = TestServer.Client(ServerHost.Endpoints(_app).ApiUrl, TestServer.OperatorKey(_dir));
        _public = TestServer.Client(ServerHost.Endpoints(_app).ApiUrl, null);
        Party provider = await TestServer.NewProviderAsync(_op, "reporter");
        provider.Http.Dispose();
        string keyFile = Path.Combine(_dir, NodeId + ".key");
        (_key, byte[] publicKey, _, _) = NodeAgent.LoadOrCreateKey(keyFile);
        JsonElement admission = await _op.PostJsonAsync($"/api/providers/{provider.Id}/nodes",
            new { node_id = NodeId, public_key = Convert.ToBase64String(publicKey), price_ceiling_micro_usd_per_1k_tokens = 100 });
        _principal = admission.GetProperty("principal").GetUInt64();
        _agent = new NodeAgent(new NodeAgentOptions
        {
            Server = new Uri(ServerHost.Endpoints(_app).NodeUrl), NodeId = NodeId, Region = "frankfurt", PriceMicroUsdPer1kTokens = Price, Capacity = 4,
            KeyFile = keyFile, Gpus = Gpus, HeartbeatInterval = TimeSpan.FromMilliseconds(100), EpochReportCheckInterval = TimeSpan.FromHours(1),
        }, log: null, model: fixture.Model);
        _agentRun = _agent.RunAsync(_stopAgent.Token);
        await WaitAsync(async () => _agent.EpochMeter is not null && await HealthyAsync());
        _epoch = ApiTime.Of(_time.GetUtcNow()).UnixNanoseconds / HourNs;

        // Paid requests, each served by the node and captured into its revenue account.
        Party customer = await TestServer.NewCustomerAsync(_op, "payer", "frankfurt", fundMicroUsd: 10_000_000);
        foreach (string input in new[] { "a watt of power", "turned into tokens by a node", "paid through the ledger, then reported and signed" })
        {
            var r = await customer.Http.PostAsync("/v1/embeddings", new StringContent(JsonSerializer.Serialize(new { model = "all-MiniLM-L6-v2", input }), Encoding.UTF8, "application/json"));
            string body = await r.Content.ReadAsStringAsync();
            Assert.True(r.StatusCode == HttpStatusCode.OK, body);
            _tokens += JsonDocument.Parse(body).RootElement.GetProperty("usage").GetProperty("prompt_tokens").GetInt64();
        }
        customer.Http.Dispose();
        await _app.Services.GetRequiredService<InferenceHost>().Gateway.Settler.IdleAsync();
        // Some heartbeats land in the epoch, then the server's clock passes its end.
        await Task.Delay(300);
        _time.Advance(TimeSpan.FromHours(1));
    }

    public async Task DisposeAsync()
    {
        await StopAgentAsync();
        await _agent.DisposeAsync();
        await _app.StopAsync();
        await _app.DisposeAsync();
        _op.Dispose();
        _public.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public async Task The_nodes_own_report_after_paid_requests_agrees_with_the_ledger_is_accepted_and_verifies_offline()
    {
        Assert.Equal(1, await _agent.PublishEpochReportsAsync());

        NodeReportsDocument doc = await PublishedAsync();
        EpochReport report = Assert.Single(doc.Reports);
        Assert.Empty(doc.Flagged);
        Assert.Equal(_epoch, report.Epoch);
        Assert.Equal(3, report.Requests);
        Assert.Equal(_tokens, report.Tokens);
        // The revenue is what the ledger credited the node's revenue account: the three captures' node shares.
        Account revenue = (await _app.Services.GetRequiredService<LedgerEngine>().LookupAccountsAsync([InferencePayments.NodeRevenueAccount(_principal)]))[0];
        Assert.True(revenue.CreditsPosted > 0);
        Assert.Equal(revenue.CreditsPosted, report.RevenueMicroUsd);
        Assert.Equal(Gpus, report.Gpus);
        // The node metered itself on its own clock (the server's clock here is a fake one that started at the same instant).
        if (ApiTime.Of(DateTimeOffset.UtcNow).UnixNanoseconds / HourNs == _epoch) Assert.True(report.EnergyJoules > 0, "no energy metered");
        Assert.Contains(report.EnergySource, new[] { EpochReportEncoding.Measured, EpochReportEncoding.Modeled });
        Assert.Equal(EpochFigures.TokensPerJouleMilli(report.Tokens, report.EnergyJoules), report.TokensPerJouleMilli);
        Assert.Null(report.SharesOutstanding);
        Assert.Null(report.RevenuePerShareMicroUsdE6);
        Assert.Equal(EpochReportEncoding.GenesisHash, report.PreviousHash);
        Assert.Equal(new NodeReportTotals { Reports = 1, Requests = 3, Tokens = _tokens, UptimeSeconds = report.UptimeSeconds, EnergyJoules = report.EnergyJoules, RevenueMicroUsd = report.RevenueMicroUsd }, doc.Totals);
        Assert.Equal(Convert.ToBase64String(NodeSigning.PublicKeyOf(_key)), doc.PublicKey);
        Assert.Null(EpochReportChain.Verify(doc));
        // Nothing more to report until another epoch ends.
        Assert.Equal(0, await _agent.PublishEpochReportsAsync());
    }

    [Fact]
    public async Task A_forged_signature_or_an_altered_figure_is_refused_with_401_and_flagged()
    {
        using HttpClient node = await TakeOverSessionAsync();
        EpochStatement statement = await StatementAsync(node, _epoch);
        Assert.Equal(3, statement.Requests);

        EpochReport forged = Report(statement, EpochReportEncoding.GenesisHash, NodeSigning.NewKeyPair().PrivateKey);
        await AssertRefusedAsync(node, forged, HttpStatusCode.Unauthorized, "signature");
        // Signed by the node, then one figure changed: the hash no longer recomputes.
        EpochReport altered = Report(statement, EpochReportEncoding.GenesisHash, _key) with { UtilizationBasisPoints = 9_999 };
        await AssertRefusedAsync(node, altered, HttpStatusCode.Unauthorized, "signature");

        // The refusals changed nothing: the true report still takes the first place in the chain.
        Assert.Equal(HttpStatusCode.OK, (await node.PostAsJsonAsync("/node/v1/epoch-reports", Report(statement, EpochReportEncoding.GenesisHash, _key))).StatusCode);
        NodeReportsDocument doc = await PublishedAsync();
        Assert.Single(doc.Reports);
        Assert.Equal(["signature", "signature"], doc.Flagged.Select(f => f.Check));
        Assert.Equal(forged.Signature, doc.Flagged[0].Report.Signature);
        Assert.Null(EpochReportChain.Verify(doc));
    }

    [Fact]
    public async Task A_skipped_epoch_a_wrong_previous_hash_or_a_replay_is_refused_with_409_and_flagged()
    {
        using HttpClient node = await TakeOverSessionAsync();
        EpochReport first = Report(await StatementAsync(node, _epoch), EpochReportEncoding.GenesisHash, _key);
        Assert.Equal(HttpStatusCode.OK, (await node.PostAsJsonAsync("/node/v1/epoch-reports", first)).StatusCode);
        _time.Advance(TimeSpan.FromHours(2));

        EpochReport skipped = Report(await StatementAsync(node, _epoch + 2), first.Hash, _key);
        string detail = await AssertRefusedAsync(node, skipped, HttpStatusCode.Conflict, "chain");
        Assert.Contains($"epoch {_epoch + 2} does not follow epoch {_epoch}", detail);
        EpochStatement next = await StatementAsync(node, _epoch + 1);
        detail = await AssertRefusedAsync(node, Report(next, EpochReportEncoding.GenesisHash, _key), HttpStatusCode.Conflict, "chain");
        Assert.Contains("previous hash is not the hash of epoch", detail);
        await AssertRefusedAsync(node, first, HttpStatusCode.Conflict, "chain"); // the same report again

        Assert.Equal(HttpStatusCode.OK, (await node.PostAsJsonAsync("/node/v1/epoch-reports", Report(next, first.Hash, _key))).StatusCode);
        NodeReportsDocument doc = await PublishedAsync();
        Assert.Equal([_epoch, _epoch + 1], doc.Reports.Select(r => r.Epoch));
        Assert.Equal(["chain", "chain", "chain"], doc.Flagged.Select(f => f.Check));
        Assert.Null(EpochReportChain.Verify(doc));
    }

    [Fact]
    public async Task A_report_whose_requests_tokens_or_revenue_disagree_with_the_ledger_is_refused_with_422_and_flagged()
    {
        using HttpClient node = await TakeOverSessionAsync();
        EpochStatement truth = await StatementAsync(node, _epoch);
        Assert.True(truth.RevenueMicroUsd > 0);
        // Each correctly signed, chained and internally consistent; only the ledger says otherwise.
        foreach (EpochStatement inflated in new[] { truth with { Requests = truth.Requests + 1 }, truth with { Tokens = truth.Tokens + 10 }, truth with { RevenueMicroUsd = truth.RevenueMicroUsd + 1 } })
        {
            string detail = await AssertRefusedAsync(node, Report(inflated, EpochReportEncoding.GenesisHash, _key), HttpStatusCode.UnprocessableEntity, "ledger");
            Assert.Contains($"the ledger records {truth.Requests} requests, {truth.Tokens} tokens and {truth.RevenueMicroUsd} micro-USD", detail);
        }
        // A report of an epoch that has not ended cannot be checked yet: refused too.
        EpochStatement running = await StatementAsync(node, _epoch + 1);
        Assert.False(running.Complete);
        Assert.Contains("has not ended", await AssertRefusedAsync(node, Report(running, EpochReportEncoding.GenesisHash, _key), HttpStatusCode.UnprocessableEntity, "shape"));

        NodeReportsDocument doc = await PublishedAsync();
        Assert.Empty(doc.Reports);
        Assert.Equal(["ledger", "ledger", "ledger", "shape"], doc.Flagged.Select(f => f.Check));
        Assert.Equal(truth.Requests + 1, doc.Flagged[0].Report.Requests);
        Assert.Equal(HttpStatusCode.OK, (await node.PostAsJsonAsync("/node/v1/epoch-reports", Report(truth, EpochReportEncoding.GenesisHash, _key))).StatusCode);
    }

    [Fact]
    public async Task Accepted_and_flagged_reports_and_the_chain_head_survive_a_restart()
    {
        EpochReport first;
        using (HttpClient node = await TakeOverSessionAsync())
        {
            first = Report(await StatementAsync(node, _epoch), EpochReportEncoding.GenesisHash, _key);
            Assert.Equal(HttpStatusCode.OK, (await node.PostAsJsonAsync("/node/v1/epoch-reports", first)).StatusCode);
            await AssertRefusedAsync(node, first, HttpStatusCode.Conflict, "chain");
        }
        await _app.StopAsync();
        await _app.DisposeAsync();
        _app = ServerHost.Build(new ServerOptions { Urls = "http://127.0.0.1:0", NodeUrls = "http://127.0.0.1:0", DataDirectory = _dir, Time = _time });
        await _app.StartAsync();
        _public.Dispose();
        _public = TestServer.Client(ServerHost.Endpoints(_app).ApiUrl, null);

        NodeReportsDocument doc = await PublishedAsync();
        Assert.Equal(first, Assert.Single(doc.Reports));
        Assert.Equal("chain", Assert.Single(doc.Flagged).Check);
        Assert.Null(EpochReportChain.Verify(doc));
        // The head came back too: the next report must follow the first, not start a new chain.
        _time.Advance(TimeSpan.FromHours(1));
        string token = await TestServer.RegisterNodeAsync(ServerHost.Endpoints(_app).NodeUrl, NodeId, _key, price: Price);
        using HttpClient again = TestServer.NodeClient(ServerHost.Endpoints(_app).NodeUrl, token);
        EpochClock clock = JsonSerializer.Deserialize<EpochClock>(await again.GetStringAsync("/node/v1/epochs"))!;
        Assert.Equal((_epoch, first.Hash), (clock.LastEpoch, clock.LastHash));
        EpochStatement next = await StatementAsync(again, _epoch + 1);
        await AssertRefusedAsync(again, Report(next, EpochReportEncoding.GenesisHash, _key), HttpStatusCode.Conflict, "chain");
        Assert.Equal(HttpStatusCode.OK, (await again.PostAsJsonAsync("/node/v1/epoch-reports", Report(next, first.Hash, _key))).StatusCode);
    }

    [Fact]
    public async Task Reports_are_public_to_read_and_node_only_to_file()
    {
        // Anyone reads a node's reports; an unknown node is a 404 problem.
        Assert.Equal(HttpStatusCode.OK, (await _public.GetAsync($"/api/nodes/{NodeId}/reports")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await _public.GetAsync("/api/nodes/nobody/reports")).StatusCode);
        // Filing needs the node's session on the node port: an operator's key on the public port does not reach it.
        var filed = await _op.PostAsJsonAsync("/node/v1/epoch-reports", new { });
        Assert.True((int)filed.StatusCode is 401 or 404, filed.StatusCode.ToString());
        using HttpClient anonymous = TestServer.NodeClient(ServerHost.Endpoints(_app).NodeUrl);
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync("/node/v1/epochs")).StatusCode);
    }

    private EpochReport Report(EpochStatement statement, string previousHash, byte[] key) =>
        EpochReportBuilder.Build(NodeId, Gpus, statement, new EpochMeasurement(1800, 2500, 90_000, EpochReportEncoding.Modeled), previousHash, key);

    private static async Task<string> AssertRefusedAsync(HttpClient node, EpochReport report, HttpStatusCode status, string check)
    {
        var r = await node.PostAsJsonAsync("/node/v1/epoch-reports", report);
        string body = await r.Content.ReadAsStringAsync();
        Assert.True(r.StatusCode == status, $"{r.StatusCode}: {body}");
        Assert.Equal("application/problem+json", r.Content.Headers.ContentType?.MediaType);
        JsonElement problem = JsonDocument.Parse(body).RootElement;
        Assert.Equal(check, problem.GetProperty("check").GetString());
        Assert.True(problem.GetProperty("flagged").GetBoolean());
        return problem.GetProperty("detail").GetString()!;
    }

    private async Task<NodeReportsDocument> PublishedAsync() =>
        JsonSerializer.Deserialize<NodeReportsDocument>(await _public.GetStringAsync($"/api/nodes/{NodeId}/reports"), new JsonSerializerOptions { RespectNullableAnnotations = true })!;

    private static async Task<EpochStatement> StatementAsync(HttpClient node, long epoch) =>
        JsonSerializer.Deserialize<EpochStatement>(await node.GetStringAsync($"/node/v1/epochs/{epoch}"))!;

    // The test files the reports itself: the agent stops, and the test registers with the node's key.
    private async Task<HttpClient> TakeOverSessionAsync()
    {
        await StopAgentAsync();
        string token = await TestServer.RegisterNodeAsync(ServerHost.Endpoints(_app).NodeUrl, NodeId, _key, price: Price);
        return TestServer.NodeClient(ServerHost.Endpoints(_app).NodeUrl, token);
    }

    private async Task StopAgentAsync()
    {
        await _stopAgent.CancelAsync();
        try { await _agentRun; }
        catch (OperationCanceledException) { }
    }

    private async Task<bool> HealthyAsync()
    {
        JsonElement nodes = JsonDocument.Parse(await _op.GetStringAsync("/api/inference/nodes")).RootElement.GetProperty("nodes");
        return nodes.EnumerateArray().Any(n => n.GetProperty("id").GetString() == NodeId && n.GetProperty("healthy").GetBoolean());
    }

    private static async Task WaitAsync(Func<Task<bool>> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "timed out");
            await Task.Delay(50);
        }
    }
}
