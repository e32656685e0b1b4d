using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using ComputeGrid.Inference.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Time.Testing;

namespace ComputeGrid.Server.Tests;

/// <summary>
/// One node identity: the admitted node that sells capacity reports its delivery and its outages itself, signed with
/// its key, on the node port. Its provider's key cannot report delivery (only the node's signature or an operator can),
/// a replayed or foreign-signed report is refused, and a delivery pays the provider from the lease's escrow.
/// </summary>
public sealed class NodeReportTests : IAsyncLifetime
{
    private readonly string _dir = TestServer.TempDir("node-reports");
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(DateTime.UtcNow.Date.AddHours(DateTime.UtcNow.Hour), TimeSpan.Zero));
    private WebApplication _app = null!;
    private HttpClient _op = null!;

    public async Task InitializeAsync()
    {
        _app = ServerHost.Build(new ServerOptions { Urls = "http://127.0.0.1:0", NodeUrls = "http://127.0.0.1:0", DataDirectory = _dir, Time = _time });
        await _app.StartAsync();
        _op = TestServer.Client(ServerHost.Endpoints(_app).ApiUrl, TestServer.OperatorKey(_dir));
    }

    public async Task DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    private static NodeReport Report(string kind, long seq, long lease = 0, DateTimeOffset from = default, DateTimeOffset to = default) =>
        new() { NodeId = "n1", Sequence = seq, At = DateTimeOffset.UtcNow, Kind = kind, Lease = lease, From = from, To = to };

    [Fact]
    public async Task A_nodes_signed_delivery_pays_its_provider_once_and_its_signed_outage_takes_its_capacity_down()
    {
        Party provider = await TestServer.NewProviderAsync(_op, "acme", collateralMicroUsd: 10_000_000);
        byte[] key = await TestServer.AdmitNodeAsync(_op, provider.Id, "n1");
        var listed = await provider.Http.PostAsJsonAsync("/api/exchange/nodes", new { node_id = "n1", gpu = "H100", region = "frankfurt", gpus = 8 }, TestServer.Json);
        long node = (await listed.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetInt64();
        Party buyer = await TestServer.DepositAsync(await TestServer.NewCustomerAsync(_op, "buyer", fundMicroUsd: 100_000_000), 100_000_000);
        string symbol = (await _op.GetFromJsonAsync<JsonElement>("/api/exchange/instruments?gpu=H100&region=frankfurt&kind=H&limit=3"))
            .GetProperty("instruments")[0].GetProperty("symbol").GetString()!;
        await provider.Http.PostJsonAsync("/api/exchange/orders", new { instrument = symbol, side = "sell", price = 2_000_000, quantity = 2 });
        JsonElement bought = await buyer.Http.PostJsonAsync("/api/exchange/orders", new { instrument = symbol, side = "buy", price = 2_000_000, quantity = 2 });
        long lease = bought.GetProperty("fills")[0].GetProperty("lease_id").GetInt64();
        JsonElement view = await buyer.Http.GetFromJsonAsync<JsonElement>($"/api/exchange/leases/{lease}");
        var start = DateTimeOffset.Parse(view.GetProperty("start").GetString()!, System.Globalization.CultureInfo.InvariantCulture);
        var end = DateTimeOffset.Parse(view.GetProperty("end").GetString()!, System.Globalization.CultureInfo.InvariantCulture);

        // The provider's own key cannot claim delivery: that is the node's signature (or an operator's word).
        var claimed = await provider.Http.PostAsJsonAsync($"/api/exchange/leases/{lease}/delivery", new { from = start, to = end }, TestServer.Json);
        Assert.Equal(HttpStatusCode.Forbidden, claimed.StatusCode);

        string nodeUrl = ServerHost.Endpoints(_app).NodeUrl;
        string token = await TestServer.RegisterNodeAsync(nodeUrl, "n1", key);
        using var session = TestServer.NodeClient(nodeUrl, token);
        // Before the hours have passed the delivery does not fit the lease.
        var early = await session.PostAsJsonAsync("/node/v1/reports", NodeSigning.Sign(Report("delivery", 1, lease, start, end), key));
        Assert.Equal(HttpStatusCode.UnprocessableEntity, early.StatusCode);
        // The clock runs to the end of the lease while the node sends its signed heartbeats: they also keep its capacity
        // alive on the exchange (a node silent for 30 s is treated as down and its leases fail).
        long beat = 0;
        while (_time.GetUtcNow() <= end)
        {
            _time.Advance(TimeSpan.FromSeconds(20));
            var telemetry = new NodeTelemetry
            {
                NodeId = "n1", Sequence = ++beat, At = _time.GetUtcNow(), UptimeSeconds = beat * 20, Utilization = 0, Requests = 0, Tokens = 0, Inflight = 0,
                Queue = 0, EwmaModelMs = 5, PowerWatts = 10, PowerSource = "modeled",
            };
            Assert.Equal(HttpStatusCode.NoContent, (await session.PostAsJsonAsync("/node/v1/heartbeat", NodeSigning.Sign(telemetry, key))).StatusCode);
        }
        // Signed by another key: refused, and nothing is paid.
        var forged = await session.PostAsJsonAsync("/node/v1/reports", NodeSigning.Sign(Report("delivery", 2, lease, start, end), NodeSigning.NewKeyPair().PrivateKey));
        Assert.Equal(HttpStatusCode.Unauthorized, forged.StatusCode);
        SignedReport delivery = NodeSigning.Sign(Report("delivery", 3, lease, start, end), key);
        var paid = await session.PostAsJsonAsync("/node/v1/reports", delivery);
        Assert.True(paid.StatusCode == HttpStatusCode.OK, await paid.Content.ReadAsStringAsync());
        JsonElement answer = await paid.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(4_000_000, answer.GetProperty("lease").GetProperty("paid").GetInt64());
        Assert.Equal("completed", answer.GetProperty("lease").GetProperty("status").GetString());
        // The same signed report again is a replay.
        Assert.Equal(HttpStatusCode.Conflict, (await session.PostAsJsonAsync("/node/v1/reports", delivery)).StatusCode);
        JsonElement me = await provider.Http.GetFromJsonAsync<JsonElement>("/api/me");
        var revenue = me.GetProperty("accounts").EnumerateArray().Single(a => a.GetProperty("code").GetString() == "provider_revenue");
        Assert.Equal(4_000_000, revenue.GetProperty("available").GetInt64());

        // An outage, signed: its listed capacity is down.
        var down = await session.PostAsJsonAsync("/node/v1/reports", NodeSigning.Sign(Report("outage", 4), key));
        Assert.Equal(HttpStatusCode.OK, down.StatusCode);
        Assert.Equal([node], (await down.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("nodes_down").EnumerateArray().Select(x => x.GetInt64()).ToArray());
        Assert.Equal(JsonValueKind.String, (await provider.Http.GetFromJsonAsync<JsonElement>($"/api/exchange/nodes/{node}")).GetProperty("down_since").ValueKind);
    }

    [Fact]
    public async Task A_node_cannot_report_delivery_of_a_lease_it_does_not_serve()
    {
        Party provider = await TestServer.NewProviderAsync(_op, "acme");
        byte[] key = await TestServer.AdmitNodeAsync(_op, provider.Id, "n1");
        string token = await TestServer.RegisterNodeAsync(ServerHost.Endpoints(_app).NodeUrl, "n1", key);
        using var session = TestServer.NodeClient(ServerHost.Endpoints(_app).NodeUrl, token);
        var r = await session.PostAsJsonAsync("/node/v1/reports", NodeSigning.Sign(Report("delivery", 1, 42, _time.GetUtcNow().AddHours(-2), _time.GetUtcNow().AddHours(-1)), key));
        Assert.Equal(HttpStatusCode.NotFound, r.StatusCode);
    }
}
