using System.Net;
using System.Text;
using System.Text.Json;
using ComputeGrid.Server.Observability;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace ComputeGrid.Server.Tests.Observability;

/// <summary>
/// The probes. A server is observed at each stage of its life without waiting on a clock: built (its ledger log
/// recovered, no service started: the probes' own endpoints are invoked directly, as Kestrel does not listen yet),
/// started (over HTTP), stopped (directly again).
/// </summary>
public sealed class HealthTests : IAsyncLifetime
{
    private static readonly string[] Parts = ["trust", "ledger", "shares", "exchange", "inference"];
    private readonly string _dir = TestServer.TempDir("health");

    public Task InitializeAsync() => Task.CompletedTask;

    public Task DisposeAsync()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
        return Task.CompletedTask;
    }

    [Fact]
    public async Task Ready_is_503_naming_each_part_until_it_has_recovered_then_200_and_live_is_200_throughout()
    {
        WebApplication app = ServerHost.Build(new ServerOptions { Urls = "http://127.0.0.1:0", DataDirectory = _dir });
        try
        {
            Assert.Equal(Parts, app.Services.GetRequiredService<Readiness>().Parts);
            // Built: nothing has started, so nothing after the ledger's log has recovered (no journal replayed, no share
            // book rebuilt, no capture completed).
            await AssertNotReadyAsync(await InvokeAsync(app, "/health/ready"), Parts);
            Assert.Equal(200, (await InvokeAsync(app, "/health/live")).Status);

            await app.StartAsync();
            using HttpClient anonymous = TestServer.Client(ServerHost.Endpoints(app).ApiUrl, null);
            using HttpResponseMessage ready = await anonymous.GetAsync("/health/ready");
            JsonElement body = await ApiTestHelpers.OkAsync(ready);
            Assert.Equal("ready", body.GetProperty("status").GetString());
            Assert.Equal(Parts, body.GetProperty("parts").EnumerateArray().Select(p => p.GetString()!));
            Assert.Equal("live", (await anonymous.GetJsonAsync("/health/live")).GetProperty("status").GetString());

            // Stopping takes every part out of rotation before it stops (markers stop first, in reverse order).
            await app.StopAsync();
            await AssertNotReadyAsync(await InvokeAsync(app, "/health/ready"), Parts);
            Assert.Equal(200, (await InvokeAsync(app, "/health/live")).Status);
        }
        finally
        {
            await app.DisposeAsync();
        }
    }

    private static Task AssertNotReadyAsync((int Status, string? ContentType, string Body) answer, string[] parts)
    {
        Assert.Equal(503, answer.Status);
        Assert.Equal("application/problem+json", answer.ContentType);
        JsonElement problem = JsonDocument.Parse(answer.Body).RootElement;
        Assert.Equal(503, problem.GetProperty("status").GetInt32());
        Assert.Equal(parts, problem.GetProperty("not_ready").EnumerateArray().Select(p => p.GetProperty("part").GetString()!));
        Assert.All(problem.GetProperty("not_ready").EnumerateArray(), p => Assert.Equal("recovering", p.GetProperty("reason").GetString()));
        Assert.All(parts, p => Assert.Contains(p, problem.GetProperty("detail").GetString()));
        return Task.CompletedTask;
    }

    // The endpoint's own request delegate (the probe's real handler and the server's real services), for the stages at
    // which Kestrel is not listening.
    private static async Task<(int Status, string? ContentType, string Body)> InvokeAsync(WebApplication app, string path)
    {
        RouteEndpoint endpoint = ((IEndpointRouteBuilder)app).DataSources.SelectMany(d => d.Endpoints).OfType<RouteEndpoint>()
            .Single(e => "/" + e.RoutePattern.RawText!.TrimStart('/') == path);
        using var scope = app.Services.CreateScope();
        var http = new DefaultHttpContext { RequestServices = scope.ServiceProvider };
        http.Request.Method = "GET";
        http.Request.Path = path;
        using var body = new MemoryStream();
        http.Response.Body = body;
        await endpoint.RequestDelegate!(http);
        return (http.Response.StatusCode, http.Response.ContentType?.Split(';')[0], Encoding.UTF8.GetString(body.ToArray()));
    }
}
