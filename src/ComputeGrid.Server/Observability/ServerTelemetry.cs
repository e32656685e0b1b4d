using System.Diagnostics.Metrics;
using ComputeGrid.Server.Trust;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.AspNetCore.Http;
using OpenTelemetry.Metrics;

namespace ComputeGrid.Server.Observability;

/// <summary>
/// OpenTelemetry metrics, exported in Prometheus text at <c>GET /metrics</c>: the components' meters
/// (<c>ComputeGrid.*</c>) and ASP.NET Core's (requests per route template, Kestrel's connections), read on each scrape.
/// </summary>
public static class ServerTelemetry
{
    /// <summary>Where Prometheus scrapes.</summary>
    public const string MetricsPath = "/metrics";

    /// <summary>Registers the meter provider over <paramref name="meters"/> and makes it the app's meter factory.</summary>
    public static void Add(WebApplicationBuilder builder, ServerMeters meters)
    {
        // ASP.NET makes its meters through the app's factory: this one, so they carry the server's scope too. Registered
        // by a factory so that the container disposes it with itself (the meters would otherwise stay in the process's list).
        builder.Services.AddSingleton<IMeterFactory>(_ => meters);
        builder.Services.AddOpenTelemetry().WithMetrics(m => m
            .AddMeter("ComputeGrid.*")
            .AddAspNetCoreInstrumentation()
            // Only this server's instruments: meters are matched by name across the whole process.
            .AddView(instrument => meters.Owns(instrument) ? null : MetricStreamConfiguration.Drop)
            .AddPrometheusExporter(o =>
            {
                // Every scrape reads the figures now: a cached answer would hide a change a test (or an operator) just caused.
                o.ScrapeResponseCacheDurationMilliseconds = 0;
                // One server per scrape target: the scope and target labels would only repeat on every series.
                o.ScopeInfoEnabled = false;
                o.TargetInfoEnabled = false;
            }));
    }

    /// <summary>
    /// Maps <c>GET /metrics</c> for operators (read scope): the figures describe every customer's traffic and the
    /// platform's money flows, so they are not public. Prometheus presents an operator key as a bearer token. A typed
    /// route (not the exporter's own branch) so it is in the OpenAPI document with its policy like every other route.
    /// </summary>
    public static void MapMetrics(IEndpointRouteBuilder app)
    {
        // The exporter's middleware on a pipeline of its own (every request it sees is a scrape), called by the route.
        RequestDelegate scrape = app.CreateApplicationBuilder()
            .UseOpenTelemetryPrometheusScrapingEndpoint(meterProvider: null, predicate: static _ => true, path: null, configureBranchedPipeline: null, optionsName: null)
            .Build();
        // A Func, not a RequestDelegate: the framework then describes the route (OpenAPI) like the typed ones.
        app.MapGet(MetricsPath, (Func<HttpContext, Task>)(http => scrape(http)))
            .RequireAuthorization(Policies.OperatorRead)
            .Produces<string>(StatusCodes.Status200OK, "text/plain")
            .WithTags("health")
            .WithSummary("OpenTelemetry metrics in Prometheus text (operators, read scope).");
    }
}
