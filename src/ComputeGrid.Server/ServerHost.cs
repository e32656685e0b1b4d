using ComputeGrid.Exchange.Instruments;
using ComputeGrid.Exchange.Trading;
using ComputeGrid.Ledger;
using ComputeGrid.Inference.Model;
using ComputeGrid.Inference.Routing;
using ComputeGrid.Server.Energy;
using ComputeGrid.Server.Inference;
using ComputeGrid.Server.Exchange;
using ComputeGrid.Server.Ledger;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace ComputeGrid.Server;

/// <summary>Settings of <c>computegrid serve</c>.</summary>
public sealed record ServerOptions
{
    /// <summary>Where to listen, as ASP.NET's <c>--urls</c> (semicolon-separated).</summary>
    public string Urls { get; init; } = "http://127.0.0.1:5080";

    /// <summary>The data folder: ledger log and snapshots, exchange journal.</summary>
    public required string DataDirectory { get; init; }

    /// <summary>How often a balance checkpoint (Merkle sum root) is taken when the ledger changed.</summary>
    public TimeSpan CheckpointInterval { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>The clock of every component (a simulation passes a fake one).</summary>
    public TimeProvider Time { get; init; } = TimeProvider.System;

    /// <summary>How often the exchange is advanced to the clock (instrument listing and expiry, GTT expiry, heartbeats).</summary>
    public TimeSpan ExchangeTickInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>How often an idle live-feed stream sends a heartbeat comment.</summary>
    public TimeSpan FeedHeartbeatInterval { get; init; } = TimeSpan.FromSeconds(15);

    /// <summary>Hybrid sites to run live (each replays its price series and drives a simulated miner fleet over TCP).</summary>
    public IReadOnlyList<LiveSiteOptions> Sites { get; init; } = [];

    /// <summary>The least severe log messages written to the console (benchmarks run quiet).</summary>
    public LogLevel MinimumLogLevel { get; init; } = LogLevel.Information;

    /// <summary>Where nodes connect (HTTP/2 cleartext), semicolon-separated; empty for none.</summary>
    public string NodeUrls { get; init; } = "";

    /// <summary>
    /// Give the runtime's JIT and background-GC threads the longest scheduler slice, so request threads woken onto
    /// their core preempt them (see <see cref="ComputeGrid.Core.RuntimeBackgroundThreads"/>). Default on (Linux). In
    /// alternating quick benches on this project's 2-core VM, requests with over 1 ms of overhead fell from 44 to 12
    /// (of 800, both probes of two runs each), and the overhead p99 from 0.89–1.23 ms to 0.74–1.10 ms.
    /// </summary>
    public bool LongSliceRuntimeThreads { get; init; } = true;

    /// <summary>
    /// Run request code on Kestrel's socket threads rather than handing it to the thread pool (Kestrel's
    /// <c>UnsafePreferInlineScheduling</c>). Default true: it removes two thread hand-offs from every request.
    /// </summary>
    public bool InlineIoScheduling { get; init; } = true;

    /// <summary>Paid inference: local nodes, the demo customer, the gateway's settings.</summary>
    public InferenceServerOptions Inference { get; init; } = new();
}

/// <summary>
/// The composition root of the server: opens the ledger (recovering it from its folder) before listening,
/// maps each component's endpoints, and on SIGTERM or Ctrl-C stops Kestrel first, then flushes the ledger
/// and writes a snapshot.
/// </summary>
public static class ServerHost
{
    public static WebApplication Build(ServerOptions options)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [] });
        var endpoints = new ServerEndpoints();
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Limits.MaxRequestBodySize = LedgerEndpoints.RequestBytesMax;
            // The API on --urls (HTTP/1.1); the nodes' persistent connections on --node-urls (HTTP/2 cleartext with prior
            // knowledge: Kestrel speaks h2c only on an HTTP/2-only endpoint).
            endpoints.Clear();
            foreach (string url in Split(options.Urls)) endpoints.Api.Add(Listen(k, url, Microsoft.AspNetCore.Server.Kestrel.Core.HttpProtocols.Http1));
            foreach (string url in Split(options.NodeUrls)) endpoints.Node.Add(Listen(k, url, Microsoft.AspNetCore.Server.Kestrel.Core.HttpProtocols.Http2));
        });
        builder.Services.AddSingleton(endpoints);
        // Request code runs on the socket's I/O thread instead of being handed to the thread pool, and a response is
        // sent by the thread that wrote it: each hand-off wakes a sleeping thread, which on this project's 2-core VM
        // costs 50-250 µs after an idle stretch (such as a model call). Safe here because no endpoint blocks: the
        // ledger, the exchange and the model run on their own threads and are awaited.
        if (options.InlineIoScheduling) builder.WebHost.UseSockets(o => o.UnsafePreferInlineScheduling = true);
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(o => { o.SingleLine = true; o.TimestampFormat = "HH:mm:ss "; });
        builder.Logging.SetMinimumLevel(options.MinimumLogLevel);
        builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(30));
        builder.Services.AddProblemDetails();
        builder.Services.ConfigureHttpJsonOptions(o =>
        {
            foreach (var c in ApiJson.Options.Converters) o.SerializerOptions.Converters.Add(c);
        });
        builder.Services.AddSingleton(options);
        builder.Services.AddSingleton(options.Time);

        var ledger = LedgerEngine.Open(new LedgerEngineOptions { DataDirectory = Path.Combine(options.DataDirectory, "ledger") }, options.Time);
        builder.Services.AddSingleton(ledger);
        builder.Services.AddHostedService<LedgerLifetime>();
        if (options.LongSliceRuntimeThreads) builder.Services.AddHostedService<RuntimeThreadSlices>();

        // The exchange trades the regions of the latency data file; a binary shipped without data/ still serves the
        // same built-in list (a test keeps the two equal) rather than refusing to start.
        string? regionWarning = null;
        RegionCatalog regions;
        try { regions = RegionCatalog.LoadDefault(); }
        catch (FileNotFoundException e)
        {
            regions = RegionCatalog.Fallback;
            regionWarning = e.Message;
        }
        var instruments = new InstrumentRegistry(new InstrumentSchedule(regions, ListingPolicy.Default));
        // The journal brings the books, orders, leases and nodes back after a restart, beside the ledger it settles in.
        var exchange = new ExchangeService(ledger, instruments, options.Time,
            new ExchangeOptions { JournalPath = Path.Combine(options.DataDirectory, "exchange", "exchange.journal") });
        builder.Services.AddSingleton(instruments);
        builder.Services.AddSingleton(exchange);
        builder.Services.AddSingleton(new ExchangeFeed(exchange, instruments, options.Time));
        // Registered after the ledger's lifetime so it stops first: no exchange tick runs against a closed ledger.
        builder.Services.AddHostedService<ExchangeLifetime>();

        // Live hybrid sites: built (and their data checked) before the server listens, so a bad site fails the start.
        var liveSites = new List<LiveSite>();
        foreach (LiveSiteOptions site in options.Sites) liveSites.Add(LiveSite.Start(site, TimeProvider.System));
        builder.Services.AddSingleton(new LiveSites(liveSites));
        builder.Services.AddHostedService<EnergyLifetime>();

        // Paid inference: keys, payments through the ledger, the node registry and router, in-process nodes.
        var latency = LatencyMatrix.LoadDefault();
        var models = new ModelRegistry();
        var miniLm = LazyEmbeddingModel.MiniLm(options.Inference.ModelParallelism.IntraOpThreads);
        models.Register(miniLm);
        var registry = new NodeRegistry(latency, options.Time);
        var payments = new InferencePayments(ledger);
        string inferenceDir = Path.Combine(options.DataDirectory, "inference");
        var keys = new ApiKeys(inferenceDir);
        var localNodes = new LocalNodes(options.Inference.LocalNodes.Select(n =>
        {
            if (!latency.TryGetRegion(n.Region, out int region)) throw new ArgumentException($"Local node {n.Id}: unknown region '{n.Region}'.");
            var batcher = new EmbeddingBatcher(miniLm, new EmbeddingBatcherOptions
            {
                Workers = options.Inference.ModelParallelism.Workers,
                WorkerNice = options.Inference.ModelWorkerNice,
                WorkerSlice = options.Inference.ModelWorkerSlice,
            }, options.Time);
            return (n, new LocalNodeChannel(batcher, region, latency, options.Time));
        }).ToArray());
        var gateway = new InferenceGateway(models, registry, new Router(registry), payments, new Settler(payments), options.Inference.Gateway);
        builder.Services.AddSingleton(new InferenceHost(gateway, keys, payments, new IdempotencyCache(options.Time), latency, OperatorToken(inferenceDir), options.Time));
        builder.Services.AddSingleton(localNodes);
        builder.Services.AddSingleton(new RemoteNodes());
        builder.Services.AddSingleton(options.Inference);
        builder.Services.AddHostedService<InferenceLifetime>();

        var app = builder.Build();
        var log = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("ComputeGrid.Server");
        if (regionWarning is not null)
            log.LogWarning("Region data file not found, using the built-in list of {Count} regions: {Reason}", regions.Count, regionWarning);
        var r = ledger.Recovery;
        log.LogInformation("Ledger recovered from {Dir}: snapshot {Snap} (op {SnapOp}), {Records} records replayed, last op {LastOp}, {Truncated} torn bytes truncated{Reason} in {Ms} ms",
            options.DataDirectory, r.SnapshotLoaded ? "loaded" : "none", r.SnapshotOp, r.RecordsReplayed, r.LastOp, r.TruncatedBytes,
            r.StopReason is null ? "" : $" ({r.StopReason})", (int)r.Elapsed.TotalMilliseconds);

        app.UseExceptionHandler(new ExceptionHandlerOptions
        {
            StatusCodeSelector = e => e switch
            {
                LedgerFaultedException => StatusCodes.Status503ServiceUnavailable,
                BadHttpRequestException b => b.StatusCode,
                OperationCanceledException => StatusCodes.Status499ClientClosedRequest,
                _ => StatusCodes.Status500InternalServerError,
            },
        });
        app.UseStatusCodePages();

        app.MapGet("/healthz", (LedgerEngine l) => l.Fault is null ? Results.Ok(new { status = "ok" }) : Problems.Unavailable(l.Fault.Message));
        app.MapGet("/metrics", (LedgerEngine l) =>
        {
            // Prometheus text exposition format.
            var s = l.Stats;
            string text = $"""
                # HELP computegrid_ledger_committed_op Last log op given by the sequencer.
                # TYPE computegrid_ledger_committed_op gauge
                computegrid_ledger_committed_op {s.CommittedOp}
                # HELP computegrid_ledger_durable_op Last log op on stable storage.
                # TYPE computegrid_ledger_durable_op gauge
                computegrid_ledger_durable_op {s.DurableOp}
                # HELP computegrid_ledger_fsyncs_total fdatasync calls of the ledger log.
                # TYPE computegrid_ledger_fsyncs_total counter
                computegrid_ledger_fsyncs_total {s.Fsyncs}
                # HELP computegrid_ledger_groups_total Group commits (batches sharing one fdatasync).
                # TYPE computegrid_ledger_groups_total counter
                computegrid_ledger_groups_total {s.Groups}
                # HELP computegrid_ledger_log_bytes Bytes in the ledger log.
                # TYPE computegrid_ledger_log_bytes gauge
                computegrid_ledger_log_bytes {s.LogBytes}
                # HELP computegrid_ledger_accounts Accounts in the ledger.
                # TYPE computegrid_ledger_accounts gauge
                computegrid_ledger_accounts {s.Accounts}
                # HELP computegrid_ledger_transfers Transfers in the ledger.
                # TYPE computegrid_ledger_transfers gauge
                computegrid_ledger_transfers {s.Transfers}

                """;
            return Results.Text(text, "text/plain; version=0.0.4");
        });
        app.MapLedger();
        app.MapExchange();
        app.MapEnergy();
        app.MapInference();
        app.MapInferenceNodes();
        return app;
    }

    private static string[] Split(string urls) => urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    /// <summary>
    /// The addresses the started server listens on, by role. Port 0 in <c>--urls</c> or <c>--node-urls</c> asks the
    /// kernel for a free port; these give the port it chose.
    /// </summary>
    public static ServerEndpoints Endpoints(WebApplication app) => app.Services.GetRequiredService<ServerEndpoints>();

    private static Microsoft.AspNetCore.Server.Kestrel.Core.ListenOptions Listen(Microsoft.AspNetCore.Server.Kestrel.Core.KestrelServerOptions k, string url, Microsoft.AspNetCore.Server.Kestrel.Core.HttpProtocols protocols)
    {
        if (!Uri.TryCreate(url.Replace("://*", "://0.0.0.0").Replace("://+", "://0.0.0.0"), UriKind.Absolute, out Uri? uri) || uri.Scheme != "http")
            throw new ArgumentException($"'{url}' is not an http:// address with a port (https is not served here).");
        Microsoft.AspNetCore.Server.Kestrel.Core.ListenOptions? bound = null;
        Action<Microsoft.AspNetCore.Server.Kestrel.Core.ListenOptions> configure = o => { o.Protocols = protocols; bound = o; };
        if (uri.Host == "localhost")
        {
            if (uri.Port == 0) throw new ArgumentException($"'{url}': port 0 (any free port) needs an IP address, such as 127.0.0.1, not localhost.");
            k.ListenLocalhost(uri.Port, configure);
        }
        else if (System.Net.IPAddress.TryParse(uri.Host, out System.Net.IPAddress? ip)) k.Listen(ip, uri.Port, configure);
        else throw new ArgumentException($"'{url}': listen on an IP address or localhost.");
        return bound!;
    }

    // The operators' bearer token: made once per data folder, kept in inference/operator-token.txt (owner-only).
    private static string OperatorToken(string directory)
    {
        string path = Path.Combine(directory, "operator-token.txt");
        if (File.Exists(path)) return File.ReadAllText(path).Trim();
        string token = "op-" + Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(24));
        File.WriteAllText(path, token + "\n");
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        return token;
    }
}

/// <summary>Takes periodic checkpoints and, on shutdown, flushes the ledger and writes its snapshot.</summary>
internal sealed class LedgerLifetime(LedgerEngine ledger, ServerOptions options, ILogger<LedgerLifetime> log) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        ulong last = ulong.MaxValue;
        using var timer = new PeriodicTimer(options.CheckpointInterval, options.Time);
        try
        {
            do
            {
                var op = ledger.Stats.CommittedOp;
                if (op == last) continue;
                var cp = await ledger.CheckpointAsync(stoppingToken);
                last = op;
                log.LogInformation("Checkpoint at op {Op}: root {Root}", cp.Op, cp.Root);
            }
            while (await timer.WaitForNextTickAsync(stoppingToken));
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested) { }
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        var stats = ledger.Stats;
        await ledger.DisposeAsync();
        log.LogInformation("Ledger flushed and closed at op {Op} ({Transfers} transfers); snapshot written", stats.CommittedOp, stats.Transfers);
    }
}

/// <summary>Every second, gives the runtime's JIT and background-GC threads the longest scheduler slice (see <see cref="ComputeGrid.Core.RuntimeBackgroundThreads"/>).</summary>
internal sealed class RuntimeThreadSlices(ServerOptions options) : BackgroundService
{
    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        ComputeGrid.Core.RuntimeBackgroundThreads.RunAsync(TimeSpan.FromSeconds(1), options.Time, stoppingToken);
}
