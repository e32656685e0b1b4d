using System.Security.Claims;
using ComputeGrid.Server.Trust;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace ComputeGrid.Server.WebConsole;

/// <summary>
/// The web console: its files at <c>/</c> (public, like the OpenAPI document: they hold no data, and the page asks for
/// an API key before it calls anything else), the figures it shows at <c>GET /api/console/overview</c> and their push
/// channel <c>GET /api/stream</c> (Server-Sent Events), both for a signed-in reader and cut to what it may see.
/// </summary>
public static class ConsoleEndpoints
{
    /// <summary>Registers the console's files and the figures' sampler.</summary>
    public static IServiceCollection AddConsole(this IServiceCollection services)
    {
        services.AddSingleton(new ConsoleAssets(typeof(ConsoleAssets).Assembly));
        services.AddSingleton(s => new LiveFigures(s.GetRequiredService<ComputeGrid.Ledger.LedgerEngine>(), s.GetRequiredService<ComputeGrid.Exchange.Pipeline.ExchangeHost>(),
            s.GetRequiredService<ComputeGrid.Server.Energy.LiveSites>(), s.GetRequiredService<TimeProvider>(), () => Anchor(s)));
        services.AddHostedService<LiveFiguresLifetime>();
        return services;
    }

    /// <summary>Maps the console's files, <c>GET /api/console/overview</c> and <c>GET /api/stream</c>.</summary>
    public static IEndpointRouteBuilder MapConsole(this IEndpointRouteBuilder app)
    {
        // Flat folders (Vite writes every bundle into assets/, the build copies Scalar into vendor/scalar/): one segment per
        // file name, so no route catches paths it does not serve.
        var files = app.MapGroup("").AllowAnonymous().WithTags("console");
        files.MapGet("/", (HttpContext http, ConsoleAssets assets) => ServeAsync(http, assets, "index.html")).WithSummary("The web console (HTML; sign in there with an API key).");
        files.MapGet("/index.html", (HttpContext http, ConsoleAssets assets) => ServeAsync(http, assets, "index.html")).WithSummary("The web console (HTML).");
        files.MapGet("/reference.html", (HttpContext http, ConsoleAssets assets) => ServeAsync(http, assets, "reference.html")).WithSummary("This API's reference, rendered by Scalar from /openapi/v1.json (HTML).");
        files.MapGet("/favicon.svg", (HttpContext http, ConsoleAssets assets) => ServeAsync(http, assets, "favicon.svg")).WithSummary("The console's icon.");
        files.MapGet("/assets/{file}", (string file, HttpContext http, ConsoleAssets assets) => ServeAsync(http, assets, "assets/" + file))
            .WithSummary("The console's scripts and styles (content-hashed names, cached for a year).");
        files.MapGet("/vendor/scalar/{file}", (string file, HttpContext http, ConsoleAssets assets) => ServeAsync(http, assets, "vendor/scalar/" + file))
            .WithSummary("Scalar's browser bundle, for the API reference (served from this server, not a CDN).");

        var api = app.MapGroup("/api").WithTags("console").RequireAuthorization(Policies.Reader);
        api.MapGet("/console/overview", Results<Ok<ConsoleOverview>, ProblemHttpResult> (ClaimsPrincipal user, LiveFigures figures) =>
                figures.Latest is { } s ? TypedResults.Ok(s.ViewFor(user.RequireCaller())) : Problems.Unavailable("The first sample of the figures is not taken yet; retry in a second."))
            .WithSummary("The console's figures as the caller may see them (operators: everything; customers and providers: their own and the public ones), the latest sample.");
        api.MapGet("/stream", StreamAsync).Produces(StatusCodes.Status200OK, contentType: "text/event-stream")
            .WithSummary("Server-Sent Events: an `overview` event (id = the sample's seq, data = GET /api/console/overview's answer) at each new sample, about once a second.");
        return app;
    }

    private static async Task<IResult> ServeAsync(HttpContext http, ConsoleAssets assets, string path)
    {
        if (await assets.TryServeAsync(http, path)) return TypedResults.Empty;
        return assets.Built
            ? Problems.NotFound($"The console has no file '{path}'.")
            : Problems.Unavailable("This build has no web console: it was built with -p:ConsoleBuild=false (or without npm). Build with npm on PATH (see console/README.md); the API works without it.");
    }

    private static async Task<Results<EmptyHttpResult, ProblemHttpResult>> StreamAsync(HttpContext http, ClaimsPrincipal user, LiveFigures figures, FeedSubscribers subscribers,
        IHostApplicationLifetime life)
    {
        CallerIdentity caller = user.RequireCaller();
        // The caller's slot (429 past its quota, shared with the exchange's feed) is taken before the stream opens.
        using IDisposable slot = subscribers.Acquire(http);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(http.RequestAborted, life.ApplicationStopping);
        http.Response.ContentType = "text/event-stream";
        http.Response.Headers.CacheControl = "no-cache";
        http.Response.Headers["X-Accel-Buffering"] = "no";
        http.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
        long seq = 0;
        try
        {
            await http.Response.WriteAsync(": subscribed\n\n", stop.Token);
            await http.Response.Body.FlushAsync(stop.Token);
            while (true)
            {
                LiveFigures.Sample s = await figures.NextAsync(seq, stop.Token);
                seq = s.Seq;
                await SseWriter.WriteAsync(http.Response.Body, "overview", seq, s.JsonFor(caller), stop.Token);
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested) { }
        catch (IOException) when (http.RequestAborted.IsCancellationRequested) { }
        return TypedResults.Empty;
    }

    private static AnchorFigures? Anchor(IServiceProvider services)
    {
        if (services.GetService<ComputeGrid.Server.Chain.BridgeStore>() is not { } store || services.GetService<ComputeGrid.Server.Chain.ChainConnection>() is not { } chain) return null;
        return store.LatestAnchored() is { } a ? new AnchorFigures(a.Op, "0x" + a.Root, chain.Info.Anchor, a.TransactionHash ?? "", a.BlockNumber ?? -1) : null;
    }
}

/// <summary>Writes Server-Sent Events.</summary>
public static class SseWriter
{
    private static readonly byte[] Event = "event: "u8.ToArray(), Id = "\nid: "u8.ToArray(), Data = "\ndata: "u8.ToArray(), End = "\n\n"u8.ToArray();

    /// <summary>Writes one event whose data is one line of JSON (JSON has no raw newlines), and flushes it.</summary>
    public static async Task WriteAsync(Stream body, string name, long id, byte[] json, CancellationToken ct)
    {
        using var buffer = new MemoryStream(json.Length + 64);
        buffer.Write(Event);
        buffer.Write(System.Text.Encoding.ASCII.GetBytes(name));
        buffer.Write(Id);
        buffer.Write(System.Text.Encoding.ASCII.GetBytes(id.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        buffer.Write(Data);
        buffer.Write(json);
        buffer.Write(End);
        await body.WriteAsync(buffer.GetBuffer().AsMemory(0, (int)buffer.Length), ct);
        await body.FlushAsync(ct);
    }
}

/// <summary>Takes a sample of the console's figures every <see cref="LiveFigures.Period"/>.</summary>
internal sealed class LiveFiguresLifetime(LiveFigures figures, TimeProvider time, ILogger<LiveFiguresLifetime> log) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(LiveFigures.Period, time);
        try
        {
            do
            {
                try { await figures.SampleAsync(stoppingToken); }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    // A stopped ledger (fail-stop) answers no reads: the console shows the last sample and its age.
                    log.LogWarning("Console figures: sample failed: {Reason}", e.Message);
                }
            }
            while (await timer.WaitForNextTickAsync(stoppingToken));
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested) { }
    }

    public override void Dispose()
    {
        figures.Dispose();
        base.Dispose();
    }
}
