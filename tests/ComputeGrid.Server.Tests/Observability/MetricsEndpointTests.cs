using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using ComputeGrid.Ledger;
using ComputeGrid.Server.Inference;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;

namespace ComputeGrid.Server.Tests.Observability;

/// <summary>
/// <c>GET /metrics</c> of a real server (Kestrel on loopback, one in-process node running the real model, the real
/// ledger and exchange): a strict Prometheus text parse, then the figures before and after orders and paid requests
/// sent through the API. Only operators may scrape.
/// </summary>
public sealed class MetricsEndpointTests : IAsyncLifetime
{
    private readonly string _dir = TestServer.TempDir("metrics");
    private WebApplication _app = null!;
    private HttpClient _op = null!;
    private HttpClient _anonymous = null!;

    public async Task InitializeAsync()
    {
        (_app, _op) = await TestServer.StartInProcessAsync(_dir, inference: new InferenceServerOptions { LocalNodes = [new("fra-1", "frankfurt", 18, 8)] });
        _anonymous = TestServer.Client(ServerHost.Endpoints(_app).ApiUrl, null);
        // The local node is admitted and registered by the server's start-up.
        InferenceHost host = _app.Services.GetRequiredService<InferenceHost>();
        for (int i = 0; i < 100 && host.Gateway.Registry.Count < 1; i++) await Task.Delay(50);
        Assert.Equal(1, host.Gateway.Registry.Count);
    }

    public async Task DisposeAsync()
    {
        _anonymous.Dispose();
        _op.Dispose();
        await _app.StopAsync();
        await _app.DisposeAsync();
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    private async Task<PrometheusText> ScrapeAsync()
    {
        using HttpResponseMessage r = await _op.GetAsync("/metrics");
        string body = await r.Content.ReadAsStringAsync();
        Assert.True(r.StatusCode == HttpStatusCode.OK, $"{(int)r.StatusCode}: {body}");
        Assert.Equal("text/plain", r.Content.Headers.ContentType?.MediaType);
        Assert.Contains("version=0.0.4", r.Content.Headers.ContentType!.ToString());
        return PrometheusText.Parse(body);
    }

    // ASP.NET Core records a request's duration after its response is sent, so a scrape right after an answer may not count
    // it yet: scrapes until `counted` holds (or 30 s pass; the assertions then say what is missing).
    private async Task<PrometheusText> ScrapeUntilAsync(Func<PrometheusText, bool> counted)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            PrometheusText scrape = await ScrapeAsync();
            if (counted(scrape) || DateTime.UtcNow > deadline) return scrape;
            await Task.Delay(20);
        }
    }

    private static async Task PlaceAsync(Party trader, string symbol, string side) =>
        await ApiTestHelpers.OkAsync(await trader.Http.PostSnakeAsync("/api/exchange/orders",
            new { instrument = symbol, side, price = 2_000_000, quantity = 1, time_in_force = "gtc" }));

    [Fact]
    public async Task Metrics_parse_as_prometheus_text_and_the_figures_move_under_requests_orders_and_paid_inference()
    {
        ExchangeSeed seed = await TestServer.SeedExchangeAsync(_op, ("H100", "tokyo"));
        string symbol = (await _anonymous.GetJsonAsync("/api/exchange/instruments?gpu=H100&region=tokyo&kind=H&limit=3"))
            .GetProperty("instruments")[2].GetProperty("symbol").GetString()!;
        Party customer = await TestServer.NewCustomerAsync(_op, "embedder", "frankfurt", fundMicroUsd: 10_000_000);
        PrometheusText before = await ScrapeAsync();

        await PlaceAsync(seed.Provider, symbol, "sell");
        await PlaceAsync(seed.Buyer, symbol, "buy"); // crosses: one trade of one GPU-hour
        for (int i = 0; i < 3; i++)
        {
            using var embed = new StringContent("""{"model":"all-MiniLM-L6-v2","input":"power, compute and money"}""", Encoding.UTF8, "application/json");
            using HttpResponseMessage r = await customer.Http.PostAsync("/v1/embeddings", embed);
            Assert.True(r.IsSuccessStatusCode, await r.Content.ReadAsStringAsync());
        }
        await _app.Services.GetRequiredService<InferenceHost>().Gateway.Settler.IdleAsync(); // captures follow the answers
        await _anonymous.GetJsonAsync($"/api/exchange/instruments/{symbol}");
        // Requests per route template, never per raw path.
        const string Requests = "http_server_request_duration_seconds_count";
        PrometheusText after = await ScrapeUntilAsync(a => a.Sum(Requests, ("http_route", "/api/exchange/instruments/{symbol}")) - before.Sum(Requests, ("http_route", "/api/exchange/instruments/{symbol}")) >= 1
            && a.Sum(Requests, ("http_route", "/v1/embeddings")) - before.Sum(Requests, ("http_route", "/v1/embeddings")) >= 3
            && a.Sum(Requests, ("http_route", "/api/exchange/orders")) - before.Sum(Requests, ("http_route", "/api/exchange/orders")) >= 2);

        double Delta(string name, params (string, string)[] labels) => after.Sum(name, labels) - before.Sum(name, labels);
        Assert.Equal(2, Delta(Requests, ("http_route", "/api/exchange/orders"), ("http_request_method", "POST"), ("http_response_status_code", "200")));
        Assert.Equal(3, Delta(Requests, ("http_route", "/v1/embeddings"), ("http_request_method", "POST"), ("http_response_status_code", "200")));
        Assert.Equal(1, Delta(Requests, ("http_route", "/api/exchange/instruments/{symbol}")));
        Assert.DoesNotContain(after.Families.Values.SelectMany(f => f.Samples), s => s.Labels.Values.Any(v => v.Contains(symbol, StringComparison.Ordinal)));
        Assert.Equal("histogram", after.Families["http_server_request_duration_seconds"].Type);
        // The ledger: more transfers, batches applied and group commits timed.
        Assert.True(Delta("computegrid_ledger_transfers") >= 2 + 3, "transfers");
        Assert.True(Delta("computegrid_ledger_batch_events_count") >= 2, "batches");
        Assert.True(Delta("computegrid_ledger_batch_events_sum") >= Delta("computegrid_ledger_batch_events_count"), "events per batch");
        Assert.True(Delta("computegrid_ledger_commit_duration_seconds_count") >= 1, "commits");
        Assert.True(Delta("computegrid_ledger_fsyncs_total") >= 1, "fsyncs");
        // Matching: two orders accepted, one trade of one GPU-hour.
        Assert.Equal(2, Delta("computegrid_exchange_orders_total", ("result", "accepted")));
        Assert.Equal(0, Delta("computegrid_exchange_orders_total", ("result", "refused")));
        Assert.Equal(1, Delta("computegrid_exchange_trades_total"));
        Assert.Equal(1, Delta("computegrid_exchange_traded_quantity_total"));
        // Routing and settlement of the paid requests; nothing dead-lettered.
        Assert.True(Delta("computegrid_router_decisions_total", ("outcome", "routed"), ("sort", "balanced")) >= 3, "routed");
        Assert.Equal(20, after.Samples("computegrid_router_decisions_total").Count()); // 4 sorts × 5 outcomes, no more
        Assert.Equal(3, Delta("computegrid_inference_captures_total"));
        Assert.Equal(0, after.Single("computegrid_inference_dead_letters_total"));
        Assert.Equal(0, after.Single("computegrid_inference_captures_queued"));
        // The figures are this server's own, though other servers run in this process with meters of the same names.
        LedgerStats stats = _app.Services.GetRequiredService<LedgerEngine>().Stats;
        Assert.Equal(stats.Accounts, after.Single("computegrid_ledger_accounts"));
        Assert.Equal(stats.Transfers, after.Single("computegrid_ledger_transfers"));
        // Every family of ours says what it measures.
        Assert.All(after.Families.Values.Where(f => f.Name.StartsWith("computegrid_", StringComparison.Ordinal)),
            f => Assert.False(string.IsNullOrWhiteSpace(f.Help), f.Name));
    }

    [Fact]
    public async Task Metrics_are_refused_without_an_operator_credential()
    {
        using HttpResponseMessage anonymous = await _anonymous.GetAsync("/metrics");
        await ApiTestHelpers.AssertProblemAsync(anonymous, HttpStatusCode.Unauthorized);
        Assert.Contains("Bearer", anonymous.Headers.WwwAuthenticate.ToString());
        Party customer = await TestServer.NewCustomerAsync(_op, "curious");
        await ApiTestHelpers.AssertProblemAsync(await customer.Http.GetAsync("/metrics"), HttpStatusCode.Forbidden);
        Party provider = await TestServer.NewProviderAsync(_op, "nosy");
        await ApiTestHelpers.AssertProblemAsync(await provider.Http.GetAsync("/metrics"), HttpStatusCode.Forbidden);
        // The refusals are counted too, under the route's template.
        PrometheusText scrape = await ScrapeUntilAsync(s => s.Sum("http_server_request_duration_seconds_count", ("http_route", "/metrics"), ("http_response_status_code", "403")) >= 2);
        Assert.True(scrape.Sum("http_server_request_duration_seconds_count", ("http_route", "/metrics"), ("http_response_status_code", "401")) >= 1);
        Assert.True(scrape.Sum("http_server_request_duration_seconds_count", ("http_route", "/metrics"), ("http_response_status_code", "403")) >= 2);
    }
}
