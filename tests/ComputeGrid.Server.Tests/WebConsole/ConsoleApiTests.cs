using System.IO.Compression;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using ComputeGrid.Server.WebConsole;
using Microsoft.AspNetCore.Builder;

namespace ComputeGrid.Server.Tests.WebConsole;

/// <summary>
/// The console against a real server on loopback: its files (CSP, compression, caching), the overview each kind of
/// principal sees, and the push channel. Principals and trades are made through the API.
/// </summary>
public sealed class ConsoleApiTests : IAsyncLifetime
{
    private readonly string _dir = TestServer.TempDir("console");
    private WebApplication _app = null!;
    private HttpClient _op = null!;
    private string _url = "";

    public async Task InitializeAsync()
    {
        (_app, _op) = await TestServer.StartInProcessAsync(_dir);
        _url = ServerHost.Endpoints(_app).ApiUrl;
    }

    public async Task DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public async Task A_trade_shows_in_each_callers_overview_cut_to_what_it_may_see()
    {
        ExchangeSeed seed = await TestServer.SeedExchangeAsync(_op, ("H100", "tokyo"));
        var page = await seed.Buyer.Http.GetJsonAsync("/api/exchange/instruments?gpu=H100&region=tokyo&kind=H&limit=3");
        string symbol = page.GetProperty("instruments")[2].GetProperty("symbol").GetString()!;
        await seed.Provider.Http.PostJsonAsync("/api/exchange/orders", new { instrument = symbol, side = "sell", price = 2_000_000, quantity = 4 });
        await seed.Buyer.Http.PostJsonAsync("/api/exchange/orders", new { instrument = symbol, side = "buy", price = 2_000_000, quantity = 4, time_in_force = "ioc" });

        JsonElement buyer = await OverviewWhenAsync(seed.Buyer.Http, o => o.GetProperty("trades").GetProperty("count").GetInt64() == 1);
        Assert.Equal("customer", buyer.GetProperty("scope").GetString());
        Assert.Equal(8_000_000, buyer.GetProperty("trades").GetProperty("notional_micro_usd").GetInt64());
        Assert.Equal(2_000_000, buyer.GetProperty("trades").GetProperty("last_price").GetInt64());
        // The buyer's own accounts, from the ledger: $1,000 deposited to trading, $8 paid for the fill.
        Assert.Equal(1_000_000_000 - 8_000_000, buyer.GetProperty("own").GetProperty("trading_micro_usd").GetInt64());
        Assert.Equal(0, buyer.GetProperty("requests").GetProperty("total").GetInt64());
        Assert.Equal(JsonValueKind.Null, buyer.GetProperty("revenue").ValueKind);
        Assert.Equal(JsonValueKind.Null, buyer.GetProperty("power").ValueKind);
        // The system's size and the invariants' detail are the operator's; the checkpoint (public) is everyone's.
        JsonElement buyerLedger = buyer.GetProperty("ledger");
        foreach (string systemWide in new[] { "op", "transfers", "accounts", "invariants" })
            Assert.Equal(JsonValueKind.Null, buyerLedger.GetProperty(systemWide).ValueKind);
        JsonElement latest = await _op.GetJsonAsync("/api/ledger/checkpoints/latest");
        Assert.Equal(JsonValueKind.Object, buyerLedger.GetProperty("checkpoint").ValueKind);
        Assert.True(buyerLedger.GetProperty("checkpoint").GetProperty("op").GetUInt64() <= latest.GetProperty("op").GetUInt64());

        JsonElement provider = await OverviewWhenAsync(seed.Provider.Http, o => o.GetProperty("trades").GetProperty("count").GetInt64() == 1);
        Assert.Equal("provider", provider.GetProperty("scope").GetString());
        Assert.Equal(JsonValueKind.Null, provider.GetProperty("requests").ValueKind);
        Assert.Equal(JsonValueKind.Null, provider.GetProperty("ledger").GetProperty("op").ValueKind);
        Assert.Equal(JsonValueKind.Null, provider.GetProperty("ledger").GetProperty("invariants").ValueKind);

        JsonElement op = await OverviewWhenAsync(_op, o => o.GetProperty("trades").GetProperty("count").GetInt64() == 1);
        Assert.Equal("operator", op.GetProperty("scope").GetString());
        Assert.True(op.GetProperty("ledger").GetProperty("invariants").GetProperty("ok").GetBoolean());
        Assert.Equal(0, op.GetProperty("revenue").GetProperty("leases_micro_usd").GetInt64()); // nothing delivered yet
        Assert.Equal(JsonValueKind.Null, op.GetProperty("own").ValueKind);
        // The operator's ledger figures are the ledger's: the op the overview reports is one the ledger committed.
        Assert.True(op.GetProperty("ledger").GetProperty("op").GetInt64() > 0);
    }

    [Fact]
    public async Task The_stream_pushes_each_new_sample_as_an_overview_event_whose_id_is_its_seq()
    {
        Party alice = await TestServer.NewCustomerAsync(_op, "alice", fundMicroUsd: 25_000_000);
        using var request = new HttpRequestMessage(HttpMethod.Get, "/api/stream");
        using HttpResponseMessage r = await alice.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        Assert.Equal("text/event-stream", r.Content.Headers.ContentType?.MediaType);
        using var reader = new StreamReader(await r.Content.ReadAsStreamAsync());
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        var events = new List<(string Name, long Id, JsonElement Data)>();
        string? name = null;
        long id = -1;
        while (events.Count < 2)
        {
            string line = await reader.ReadLineAsync(timeout.Token) ?? throw new EndOfStreamException();
            if (line.StartsWith("event: ", StringComparison.Ordinal)) name = line[7..];
            else if (line.StartsWith("id: ", StringComparison.Ordinal)) id = long.Parse(line[4..], System.Globalization.CultureInfo.InvariantCulture);
            else if (line.StartsWith("data: ", StringComparison.Ordinal)) events.Add((name!, id, JsonDocument.Parse(line[6..]).RootElement.Clone()));
        }
        Assert.All(events, e => Assert.Equal("overview", e.Name));
        Assert.All(events, e => Assert.Equal(e.Id, e.Data.GetProperty("seq").GetInt64()));
        Assert.True(events[1].Id > events[0].Id);
        Assert.Equal(25_000_000, events[1].Data.GetProperty("own").GetProperty("balance_micro_usd").GetInt64());
        Assert.Equal("customer", events[1].Data.GetProperty("scope").GetString());
    }

    [Fact]
    public async Task The_figures_need_a_key_and_the_stream_refuses_an_anonymous_caller()
    {
        using var anonymous = TestServer.Client(_url, null);
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync("/api/stream")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync("/api/console/overview")).StatusCode);
        using var garbage = TestServer.Client(_url, "cg_not-a-key");
        Assert.Equal(HttpStatusCode.Unauthorized, (await garbage.GetAsync("/api/console/overview")).StatusCode);
    }

    [Fact]
    public async Task The_console_page_is_served_with_its_content_security_policy_compressed_and_revalidated()
    {
        using var http = new HttpClient(new HttpClientHandler { AutomaticDecompression = DecompressionMethods.None }) { BaseAddress = new Uri(_url) };
        HttpResponseMessage plain = await http.GetAsync("/");
        Assert.Equal(HttpStatusCode.OK, plain.StatusCode);
        Assert.Equal("text/html", plain.Content.Headers.ContentType?.MediaType);
        Assert.Equal(ConsoleAssets.ContentSecurityPolicy, plain.Headers.GetValues("Content-Security-Policy").Single());
        Assert.Equal("no-cache", plain.Headers.CacheControl?.ToString());
        byte[] raw = await plain.Content.ReadAsByteArrayAsync();
        string html = System.Text.Encoding.UTF8.GetString(raw);
        Assert.Contains("<main id=\"view\"", html, StringComparison.Ordinal);
        Assert.DoesNotContain("http://", html.Replace("http://www.w3.org", "", StringComparison.Ordinal), StringComparison.Ordinal); // nothing from elsewhere

        using var brRequest = new HttpRequestMessage(HttpMethod.Get, "/");
        brRequest.Headers.AcceptEncoding.Add(new StringWithQualityHeaderValue("br"));
        HttpResponseMessage br = await http.SendAsync(brRequest);
        Assert.Equal("br", br.Content.Headers.ContentEncoding.Single());
        using (var unpacked = new MemoryStream())
        {
            await using (var z = new BrotliStream(await br.Content.ReadAsStreamAsync(), CompressionMode.Decompress)) await z.CopyToAsync(unpacked);
            Assert.Equal(raw, unpacked.ToArray());
        }

        using var again = new HttpRequestMessage(HttpMethod.Get, "/");
        again.Headers.IfNoneMatch.Add(plain.Headers.ETag!);
        Assert.Equal(HttpStatusCode.NotModified, (await http.SendAsync(again)).StatusCode);

        // The page's script: a content-hashed file, cached for a year.
        string script = System.Text.RegularExpressions.Regex.Match(html, "src=\"(/assets/[^\"]+\\.js)\"").Groups[1].Value;
        HttpResponseMessage js = await http.GetAsync(script);
        Assert.Equal(HttpStatusCode.OK, js.StatusCode);
        Assert.Contains("immutable", js.Headers.CacheControl?.ToString(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/vendor/scalar/standalone.js")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/reference.html")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await http.GetAsync("/assets/no-such-file.js")).StatusCode);
    }

    [Fact]
    public void With_a_chain_the_pages_may_connect_to_its_rpc_origin_and_nowhere_else()
    {
        string policy = ConsoleAssets.PolicyWithRpc("http://127.0.0.1:35353/some/path");
        Assert.Contains("connect-src 'self' http://127.0.0.1:35353;", policy, StringComparison.Ordinal);
        Assert.Equal(ConsoleAssets.ContentSecurityPolicy, ConsoleAssets.PolicyWithRpc(null)); // no chain
        Assert.Equal(ConsoleAssets.ContentSecurityPolicy, ConsoleAssets.PolicyWithRpc("ws://127.0.0.1:8545")); // not http(s)
        Assert.Equal(ConsoleAssets.ContentSecurityPolicy, ConsoleAssets.PolicyWithRpc("not a url"));
        Assert.Equal(ConsoleAssets.ContentSecurityPolicy.Replace("connect-src 'self'", "connect-src 'self' http://127.0.0.1:35353", StringComparison.Ordinal), policy);
    }

    // The overview is sampled once a second: poll until a sample shows what the test did (at most 10 s).
    private static async Task<JsonElement> OverviewWhenAsync(HttpClient http, Func<JsonElement, bool> until)
    {
        DateTime deadline = DateTime.UtcNow.AddSeconds(10);
        while (true)
        {
            HttpResponseMessage r = await http.GetAsync("/api/console/overview");
            if (r.StatusCode == HttpStatusCode.OK)
            {
                JsonElement o = JsonDocument.Parse(await r.Content.ReadAsStringAsync()).RootElement.Clone();
                if (until(o) || DateTime.UtcNow > deadline) return o;
            }
            else Assert.Equal(HttpStatusCode.ServiceUnavailable, r.StatusCode); // before the first sample
            await Task.Delay(200);
        }
    }
}
