using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using ComputeGrid.Server.Trust;
using Microsoft.AspNetCore.Builder;

namespace ComputeGrid.Server.Tests;

/// <summary>Operators and their keys, the operator key file, the trust store across restarts, TLS and the OpenAPI document.</summary>
public sealed class TrustTests : IDisposable
{
    private readonly string _dir = TestServer.TempDir("trust");

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    private static async Task StopAsync(WebApplication app)
    {
        await app.StopAsync();
        await app.DisposeAsync();
    }

    [Fact]
    [System.Runtime.Versioning.SupportedOSPlatform("linux")]
    public async Task The_first_start_writes_the_operator_key_owner_only_and_a_later_start_reads_it()
    {
        var (app, op) = await TestServer.StartInProcessAsync(_dir);
        string path = OperatorKeyFile.PathIn(_dir);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(TrustStore.PathIn(_dir)));
        string key = TestServer.OperatorKey(_dir);
        Assert.Matches("^cg_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$", key);
        JsonElement me = await op.GetFromJsonAsync<JsonElement>("/api/me");
        Assert.Equal("operator", me.GetProperty("principal").GetProperty("kind").GetString());
        Assert.Equal(["read", "admin"], me.GetProperty("key").GetProperty("scopes").EnumerateArray().Select(s => s.GetString()!).ToArray());
        await StopAsync(app);

        // A second start keeps the same operator and key; the store keeps only the key's hash.
        (app, op) = await TestServer.StartInProcessAsync(_dir);
        Assert.Equal(key, TestServer.OperatorKey(_dir));
        Assert.Equal(HttpStatusCode.OK, (await op.GetAsync("/api/me")).StatusCode);
        await StopAsync(app);
        byte[] db = File.ReadAllBytes(TrustStore.PathIn(_dir)).Concat(File.Exists(TrustStore.PathIn(_dir) + "-wal") ? File.ReadAllBytes(TrustStore.PathIn(_dir) + "-wal") : []).ToArray();
        string secret = key[(3 + 16 + 1)..];
        Assert.Equal(-1, db.AsSpan().IndexOf(System.Text.Encoding.ASCII.GetBytes(secret)));
    }

    [Theory]
    [InlineData("", "is empty")]
    [InlineData("not-a-key\n", "does not hold an API key")]
    [InlineData(null, "is missing")]
    public async Task A_missing_empty_or_malformed_operator_key_file_stops_the_start_with_one_line(string? content, string expected)
    {
        var (app, _) = await TestServer.StartInProcessAsync(_dir);
        await StopAsync(app);
        string path = OperatorKeyFile.PathIn(_dir);
        if (content is null) File.Delete(path);
        else File.WriteAllText(path, content);
        var e = Assert.Throws<ServerStartException>(() => ServerHost.Build(new ServerOptions { Urls = "http://127.0.0.1:0", DataDirectory = _dir }));
        Assert.Contains(expected, e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public async Task A_key_of_another_data_folder_in_the_key_file_stops_the_start()
    {
        var (app, _) = await TestServer.StartInProcessAsync(_dir);
        await StopAsync(app);
        File.WriteAllText(OperatorKeyFile.PathIn(_dir), ApiKeyFormat.NewKey().Key + "\n");
        var e = Assert.Throws<ServerStartException>(() => ServerHost.Build(new ServerOptions { Urls = "http://127.0.0.1:0", DataDirectory = _dir }));
        Assert.Contains("not one of this data folder's keys", e.Message);
    }

    [Fact]
    public async Task An_operator_added_through_the_api_works_at_once_and_once_disabled_gets_401_at_once()
    {
        var (app, op) = await TestServer.StartInProcessAsync(_dir);
        try
        {
            JsonElement added = await op.PostJsonAsync("/api/operators", new { name = "carol" });
            ulong carolId = added.GetProperty("principal").GetProperty("id").GetUInt64();
            using var carol = TestServer.Client(op.BaseAddress!.ToString(), added.GetProperty("api_key").GetString());
            // Carol can do what operators do: make a customer.
            Assert.Equal(HttpStatusCode.Created, (await carol.PostAsJsonAsync("/api/customers", new { name = "dave", region = "tokyo" }, TestServer.Json)).StatusCode);
            var actions = await op.GetFromJsonAsync<JsonElement>("/api/operator-actions");
            Assert.Contains(actions.GetProperty("actions").EnumerateArray(), a => a.GetProperty("operator").GetUInt64() == carolId && a.GetProperty("action").GetString() == "customer-added");
            Assert.Equal(HttpStatusCode.OK, (await op.DeleteAsync($"/api/operators/{carolId}")).StatusCode);
            var refused = await carol.GetAsync("/api/principals");
            Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
            Assert.Contains("disabled", (await refused.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("detail").GetString());
            // The last enabled operator cannot be disabled.
            ulong first = (await op.GetFromJsonAsync<JsonElement>("/api/me")).GetProperty("principal").GetProperty("id").GetUInt64();
            Assert.Equal(HttpStatusCode.Conflict, (await op.DeleteAsync($"/api/operators/{first}")).StatusCode);
        }
        finally { await StopAsync(app); }
    }

    [Fact]
    public async Task A_revoked_key_gets_401_at_once_and_a_key_never_carries_more_scopes_than_the_key_that_made_it()
    {
        var (app, op) = await TestServer.StartInProcessAsync(_dir);
        try
        {
            Party alice = await TestServer.NewCustomerAsync(op, "alice", fundMicroUsd: 1_000_000);
            JsonElement reader = await alice.Http.PostJsonAsync("/api/keys", new { name = "dashboard", scopes = new[] { "read" } });
            using var readOnly = TestServer.Client(op.BaseAddress!.ToString(), reader.GetProperty("api_key").GetString());
            Assert.Equal(HttpStatusCode.OK, (await readOnly.GetAsync($"/api/ledger/accounts/{alice.Account}")).StatusCode);
            // A read key cannot trade, call inference, or make itself a stronger key.
            Assert.Equal(HttpStatusCode.Forbidden, (await readOnly.PostAsJsonAsync("/api/exchange/orders", new { instrument = "1", side = "buy", price = 1, quantity = 1 }, TestServer.Json)).StatusCode);
            Assert.Equal(HttpStatusCode.Forbidden, (await readOnly.GetAsync("/api/inference/account")).StatusCode);
            Assert.Equal(HttpStatusCode.Forbidden, (await readOnly.PostAsJsonAsync("/api/keys", new { name = "escalate", scopes = new[] { "trade" } }, TestServer.Json)).StatusCode);
            // A customer cannot have an admin key at all.
            Assert.Equal(HttpStatusCode.Forbidden, (await alice.Http.PostAsJsonAsync("/api/keys", new { name = "admin", scopes = new[] { "admin" } }, TestServer.Json)).StatusCode);
            string readerId = reader.GetProperty("key").GetProperty("key_id").GetString()!;
            Assert.Equal(HttpStatusCode.OK, (await alice.Http.DeleteAsync($"/api/keys/{readerId}")).StatusCode);
            var r = await readOnly.GetAsync($"/api/ledger/accounts/{alice.Account}");
            Assert.Equal(HttpStatusCode.Unauthorized, r.StatusCode);
            Assert.Contains("revoked", (await r.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("detail").GetString());
            // Keys are listed without secrets, with when they were last used.
            var keys = await alice.Http.GetFromJsonAsync<JsonElement>("/api/keys");
            Assert.All(keys.GetProperty("keys").EnumerateArray(), k => Assert.False(k.TryGetProperty("api_key", out _)));
            Assert.Contains(keys.GetProperty("keys").EnumerateArray(), k => k.GetProperty("key_id").GetString() == readerId && k.GetProperty("revoked").ValueKind == JsonValueKind.String);
        }
        finally { await StopAsync(app); }
    }

    [Fact]
    public async Task Funding_needs_a_funding_id_a_retry_moves_the_money_once_and_the_transfer_names_the_operator()
    {
        var (app, op) = await TestServer.StartInProcessAsync(_dir);
        try
        {
            Party alice = await TestServer.NewCustomerAsync(op, "alice");
            Assert.Equal(HttpStatusCode.BadRequest, (await op.PostAsJsonAsync($"/api/customers/{alice.Id}/fund", new { amount = 5_000_000 }, TestServer.Json)).StatusCode);
            JsonElement first = await op.PostJsonAsync($"/api/customers/{alice.Id}/fund", new { amount = 5_000_000, funding_id = "invoice-17" });
            JsonElement again = await op.PostJsonAsync($"/api/customers/{alice.Id}/fund", new { amount = 5_000_000, funding_id = "invoice-17" });
            Assert.False(first.GetProperty("replayed").GetBoolean());
            Assert.True(again.GetProperty("replayed").GetBoolean());
            Assert.Equal(5_000_000, again.GetProperty("available").GetInt64());
            Assert.Equal(HttpStatusCode.Conflict, (await op.PostAsJsonAsync($"/api/customers/{alice.Id}/fund", new { amount = 6_000_000, funding_id = "invoice-17" }, TestServer.Json)).StatusCode);
            Assert.Equal(5_000_000, (await alice.Http.GetFromJsonAsync<JsonElement>("/api/inference/account")).GetProperty("available").GetInt64());
            ulong operatorId = (await op.GetFromJsonAsync<JsonElement>("/api/me")).GetProperty("principal").GetProperty("id").GetUInt64();
            JsonElement transfer = await alice.Http.GetFromJsonAsync<JsonElement>($"/api/ledger/transfers/{first.GetProperty("transfer_id").GetString()}");
            Assert.Equal(operatorId, transfer.GetProperty("user_data_64").GetUInt64());
            var actions = (await op.GetFromJsonAsync<JsonElement>("/api/operator-actions")).GetProperty("actions").EnumerateArray().Where(a => a.GetProperty("action").GetString() == "fund").ToArray();
            Assert.Single(actions);
            Assert.Equal(5_000_000, actions[0].GetProperty("amount").GetInt64());
            Assert.Equal("USDC", actions[0].GetProperty("asset").GetString());
        }
        finally { await StopAsync(app); }
    }

    [Fact]
    public async Task The_openapi_document_lists_every_mapped_route_with_its_security()
    {
        var (app, _) = await TestServer.StartInProcessAsync(_dir, nodeUrls: "http://127.0.0.1:0");
        try
        {
            using var anonymous = TestServer.Client(ServerHost.Endpoints(app).ApiUrl, null);
            var r = await anonymous.GetAsync("/openapi/v1.json");
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
            using var doc = JsonDocument.Parse(await r.Content.ReadAsStringAsync());
            JsonElement root = doc.RootElement;
            Assert.StartsWith("3.", root.GetProperty("openapi").GetString());
            var schemes = root.GetProperty("components").GetProperty("securitySchemes");
            Assert.Equal("bearer", schemes.GetProperty(TrustSchemes.ApiKey).GetProperty("scheme").GetString());
            Assert.Equal("bearer", schemes.GetProperty(TrustSchemes.NodeSession).GetProperty("scheme").GetString());
            JsonElement paths = root.GetProperty("paths");
            int operations = 0;
            foreach (Route route in RouteTable.Of(app).Where(x => x.Pattern != "/openapi/{documentName}.json"))
            {
                Assert.True(paths.TryGetProperty(route.Pattern, out JsonElement path), $"{route} is not in the OpenAPI document");
                Assert.True(path.TryGetProperty(route.Method.ToLowerInvariant(), out JsonElement op), $"{route}: no {route.Method} operation");
                JsonElement security = op.GetProperty("security");
                string policy = op.GetProperty("x-computegrid-policy").GetString()!;
                if (route.Public)
                {
                    Assert.Equal("public", policy);
                    Assert.Equal(0, security.GetArrayLength());
                }
                else
                {
                    Assert.Equal(route.Policy, policy);
                    string scheme = security[0].EnumerateObject().Single().Name;
                    Assert.Equal(route.Policy == Policies.Node ? TrustSchemes.NodeSession : TrustSchemes.ApiKey, scheme);
                }
                operations++;
            }
            Assert.True(operations > 50, $"{operations} operations");
            // Request and response bodies have named schemas in the API's member names.
            var schemas = root.GetProperty("components").GetProperty("schemas");
            Assert.True(schemas.GetProperty("OrderInput").GetProperty("properties").TryGetProperty("time_in_force", out _));
            Assert.Equal("#/components/schemas/ApiTime", schemas.GetProperty("LeaseView").GetProperty("properties").GetProperty("start").GetProperty("$ref").GetString());
            Assert.Equal("date-time", schemas.GetProperty("ApiTime").GetProperty("format").GetString());
            Assert.Equal("string", schemas.GetProperty("ApiTime").GetProperty("type").GetString());
        }
        finally { await StopAsync(app); }
    }

    [Fact]
    public async Task With_a_certificate_the_api_is_served_over_tls_only_where_asked()
    {
        using RSA rsa = RSA.Create(2048);
        var request = new CertificateRequest("CN=localhost", rsa, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var san = new SubjectAlternativeNameBuilder();
        san.AddIpAddress(IPAddress.Loopback);
        san.AddDnsName("localhost");
        request.CertificateExtensions.Add(san.Build());
        using X509Certificate2 cert = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
        string certPath = Path.Combine(_dir, "tls.crt"), keyPath = Path.Combine(_dir, "tls.key");
        File.WriteAllText(certPath, cert.ExportCertificatePem());
        File.WriteAllText(keyPath, rsa.ExportPkcs8PrivateKeyPem());
        string data = Path.Combine(_dir, "data");
        var app = ServerHost.Build(new ServerOptions { Urls = "https://127.0.0.1:0", DataDirectory = data, TlsCertificatePath = certPath, TlsKeyPath = keyPath });
        await app.StartAsync();
        try
        {
            string url = ServerHost.Endpoints(app).ApiUrl.Replace("http://", "https://");
            using var handler = new HttpClientHandler { ServerCertificateCustomValidationCallback = (_, c, _, _) => c?.Thumbprint == cert.Thumbprint };
            using var https = new HttpClient(handler) { BaseAddress = new Uri(url) };
            https.DefaultRequestHeaders.Authorization = new("Bearer", TestServer.OperatorKey(data));
            Assert.Equal(HttpStatusCode.OK, (await https.GetAsync("/api/me")).StatusCode);
            // Plain HTTP to the TLS port gets no answer from the API.
            using var plain = new HttpClient { BaseAddress = new Uri(url.Replace("https://", "http://")) };
            await Assert.ThrowsAnyAsync<Exception>(async () => (await plain.GetAsync("/healthz")).EnsureSuccessStatusCode());
        }
        finally { await StopAsync(app); }
        // An https address without a certificate is a one-line start error.
        var e = Assert.Throws<ServerStartException>(() => ServerHost.Build(new ServerOptions { Urls = "https://127.0.0.1:0", DataDirectory = Path.Combine(_dir, "other") }));
        Assert.Contains("--tls-cert", e.Message);
    }

    [Fact]
    public void The_limits_agree_with_each_other_and_contradictions_are_refused()
    {
        new ServerLimits().Validate();
        Assert.Throws<ArgumentException>(() => new ServerLimits { FeedSubscribersPerPrincipalMax = 5, FeedSubscribersMax = 4 }.Validate());
        Assert.Throws<ArgumentException>(() => new ServerLimits { Customer = new RateLimit(10, 5) }.Validate());
        Assert.Throws<ArgumentException>(() => new ServerLimits { JsonBodyBytesMax = 8 << 20 }.Validate());
        Assert.Throws<ArgumentException>(() => new ServerLimits { KeysPerPrincipalMax = 1 }.Validate());
        // The request body limits fit the ledger's largest batch of verbose JSON transfers.
        Assert.True(new ServerLimits().BatchBodyBytesMax >= ComputeGrid.Ledger.LedgerLimits.BatchEventsMax * 400L);
    }

    [Fact]
    public void A_data_folder_of_an_earlier_layout_is_refused_rather_than_mixed()
    {
        Directory.CreateDirectory(Path.Combine(_dir, "ledger"));
        File.WriteAllText(Path.Combine(_dir, "ledger", "ledger.log"), "old");
        var e = Assert.Throws<ServerStartException>(() => ServerHost.Build(new ServerOptions { Urls = "http://127.0.0.1:0", DataDirectory = _dir }));
        Assert.Contains("earlier version", e.Message);
    }
}
