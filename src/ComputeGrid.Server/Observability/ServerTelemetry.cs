using System.Diagnostics.Metrics;
using ComputeGrid.Server.Trust;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
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
        // ASP.NET makes its meters through the app's factory: this one, so they carry the server's scope too.
        builder.Services.AddSingleton<IMeterFactory>(meters);
        builder.Services.AddOpenTelemetry().WithMetrics(m => m
            .AddMeter("ComputeGrid.*")
            .AddAspNetCoreInstrumentation()
            // Only this server's instruments: meters are matched by name across the whole process.
            .AddView(instrument => meters.Owns(instrument) ? null : MetricStreamConfiguration.Drop)
            .AddPrometheusExporter(o =>
            {
                o.ScrapeEndpointPath = MetricsPath;
                // Every scrape reads the figures now: a cached answer would hide a change a test (or an operator) just caused.
                o.ScrapeResponseCacheDurationMilliseconds = 0;
                // One server per scrape target: the scope and target labels would only repeat on every series.
                o.ScopeInfoEnabled = false;
                o.TargetInfoEnabled = false;
            }));
    }

    /// <summary>
    /// Maps <c>GET /metrics</c> for operators (read scope): the figures describe every customer's traffic and the
    /// platform's money flows, so they are not public. Prometheus presents an operator key as a bearer token.
    /// </summary>
    public static void MapMetrics(IEndpointRouteBuilder app) =>
        app.MapPrometheusScrapingEndpoint(MetricsPath)
            .WithMetadata(new HttpMethodMetadata(["GET"]))
            .RequireAuthorization(Policies.OperatorRead)
            .WithDisplayName("GET /metrics");
}
