using System.Runtime.CompilerServices;
using System.Security.Cryptography.X509Certificates;
using ComputeGrid.Exchange.Instruments;
using ComputeGrid.Exchange.Pipeline;
using ComputeGrid.Inference.Model;
using ComputeGrid.Inference.Routing;
using ComputeGrid.Ledger;
using ComputeGrid.Server.Energy;
using ComputeGrid.Server.Exchange;
using ComputeGrid.Server.Inference;
using ComputeGrid.Server.Ledger;
using ComputeGrid.Server.Trust;
using ComputeGrid.Server.Tokens;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Authorization.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace ComputeGrid.Server;

/// <summary>Settings of <c>computegrid serve</c>.</summary>
public sealed record ServerOptions
{
    /// <summary>Where to listen, as ASP.NET's <c>--urls</c> (semicolon-separated; <c>https://</c> needs a certificate).</summary>
    public string Urls { get; init; } = "http://127.0.0.1:5080";

    /// <summary>The data folder: trust store, ledger log and snapshots, exchange journal.</summary>
    public required string DataDirectory { get; init; }

    /// <summary>How often a balance checkpoint (Merkle sum root) is taken when the ledger changed.</summary>
    public TimeSpan CheckpointInterval { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>The clock of every component (a simulation passes a fake one).</summary>
    public TimeProvider Time { get; init; } = TimeProvider.System;

    /// <summary>How often the exchange is advanced to the clock (instrument listing and expiry, GTT expiry, heartbeats).</summary>
    public TimeSpan ExchangeTickInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>How often holders whose owed share revenue reached their auto-claim threshold are paid.</summary>
    public TimeSpan AutoClaimInterval { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>How often an idle live-feed stream sends a heartbeat comment.</summary>
    public TimeSpan FeedHeartbeatInterval { get; init; } = TimeSpan.FromSeconds(15);

    /// <summary>Hybrid sites to run live (each replays its price series and drives a simulated miner fleet over TCP).</summary>
    public IReadOnlyList<LiveSiteOptions> Sites { get; init; } = [];

    /// <summary>The least severe log messages written to the console (benchmarks run quiet).</summary>
    public LogLevel MinimumLogLevel { get; init; } = LogLevel.Information;

    /// <summary>Where nodes connect (HTTP/2: cleartext with prior knowledge, or TLS), semicolon-separated; empty for none.</summary>
    public string NodeUrls { get; init; } = "";

    /// <summary>The epoch of nodes' signed reports (whole seconds, 1 s to 1 day; one hour by default).</summary>
    public TimeSpan NodeReportEpoch { get; init; } = ComputeGrid.Inference.Reports.EpochReportLimits.EpochDefault;

    /// <summary>Nodes' shares outstanding, for revenue per share in their reports (null: the exchange's share register).</summary>
    public ComputeGrid.Server.Reports.INodeShareSupply? NodeShares { get; init; }

    /// <summary>A PEM certificate (chain) for <c>https://</c> addresses, or null.</summary>
    public string? TlsCertificatePath { get; init; }

    /// <summary>The PEM private key of <see cref="TlsCertificatePath"/>, or null when the certificate file holds it.</summary>
    public string? TlsKeyPath { get; init; }

    /// <summary>Host names the public port answers to besides the names it is bound to (<c>*</c>: any).</summary>
    public IReadOnlyList<string> AllowedHosts { get; init; } = [];

    /// <summary>Origins allowed to call the API from a browser (CORS); none unless configured.</summary>
    public IReadOnlyList<string> CorsOrigins { get; init; } = [];

    /// <summary>Every limit of the server (request sizes, quotas, rate limits).</summary>
    public ServerLimits Limits { get; init; } = new();

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

    /// <summary>The EVM chain (an RPC endpoint and the server's key, or a demo Anvil); null: no chain.</summary>
    public ComputeGrid.Server.Chain.ChainOptions? Chain { get; init; }

    /// <summary>The chain bridge's and the anchoring's settings (used only with <see cref="Chain"/>).</summary>
    public ComputeGrid.Server.Chain.BridgeOptions Bridge { get; init; } = new();
}

/// <summary>
/// The composition root of the server: opens the trust store and the ledger (recovering it from its folder) before
/// listening, draws the trust boundary (the request gate, authentication, authorization, rate limits), maps each
/// component's endpoints, and on SIGTERM or Ctrl-C stops Kestrel first, then flushes the ledger and writes a
/// snapshot. The pipeline, in order: errors → routing → <see cref="RequestGate"/> (Host, port, media type, size, then
/// authentication and the caller's rate limit) → CORS when configured → authorization (every endpoint's policy) → the
/// endpoint.
/// </summary>
public static class ServerHost
{
    /// <summary>Builds the server; throws <see cref="ServerStartException"/> (one line for the user) when it cannot start.</summary>
    public static WebApplication Build(ServerOptions options)
    {
        ServerLimits limits = options.Limits.Validate();
        Directory.CreateDirectory(options.DataDirectory);
        DataLayout.Check(options.DataDirectory);
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [] });
        X509Certificate2? certificate = LoadCertificate(options);
        var endpoints = new ServerEndpoints();
        var hosts = new HostAllowList();
        hosts.Add(options.AllowedHosts);
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Limits.MaxRequestBodySize = limits.BatchBodyBytesMax;
            k.AddServerHeader = false;
            // The API on --urls (HTTP/1.1, or HTTP/1.1 and 2 over TLS); the nodes' persistent connections on --node-urls
            // (HTTP/2: Kestrel speaks cleartext h2c only on an HTTP/2-only endpoint). Every connection to the node port
            // is marked, so the request gate serves the node protocol there and nothing else.
            endpoints.Clear();
            foreach (string url in Split(options.Urls))
                endpoints.Api.Add(Listen(k, url, certificate, node: false, hosts));
            foreach (string url in Split(options.NodeUrls))
                endpoints.Node.Add(Listen(k, url, certificate, node: true, hosts: null));
        });
        builder.Services.AddSingleton(endpoints);
        builder.Services.AddSingleton(hosts);
        builder.Services.AddSingleton(limits);
        // Request code runs on the socket's I/O thread instead of being handed to the thread pool, and a response is
        // sent by the thread that wrote it: each hand-off wakes a sleeping thread, which on this project's 2-core VM
        // costs 50-250 µs after an idle stretch (such as a model call). Safe here because no endpoint blocks: the
        // ledger, the exchange and the model run on their own threads and are awaited.
        if (options.InlineIoScheduling) builder.WebHost.UseSockets(o => o.UnsafePreferInlineScheduling = true);
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(o => { o.SingleLine = true; o.TimestampFormat = "HH:mm:ss "; });
        builder.Logging.SetMinimumLevel(options.MinimumLogLevel);
        builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        builder.Logging.AddFilter("Microsoft.AspNetCore.Authentication", LogLevel.Error);
        builder.Logging.AddFilter("Microsoft.AspNetCore.DataProtection", LogLevel.Error);
        // A failed start (a port in use) is reported by the caller in one line; the host would log it again with a stack
        // trace. Only until the server has started: after that, the host's messages (a background service that failed
        // and stopped the server) are what an operator must see.
        var starting = new StrongBox<bool>(true);
        LogLevel hostLevel = (LogLevel)Math.Max((int)LogLevel.Warning, (int)options.MinimumLogLevel);
        builder.Logging.AddFilter("Microsoft.Extensions.Hosting.Internal.Host", level => !starting.Value && level >= hostLevel);
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(30));
        builder.Services.AddSingleton(options);
        builder.Services.AddSingleton(options.Time);

        // ---- the contract: one JSON convention, problem+json (OpenAI's shape under /v1), validation, OpenAPI
        builder.Services.AddSingleton<Microsoft.AspNetCore.Http.IProblemDetailsWriter, OpenAiProblemWriter>();
        builder.Services.AddProblemDetails(o => o.CustomizeProblemDetails = ApiContract.CustomizeProblem);
        builder.Services.ConfigureHttpJsonOptions(o => ApiJson.Configure(o.SerializerOptions));
        builder.Services.Configure<RouteHandlerOptions>(o => o.ThrowOnBadRequest = true);
        builder.Services.AddValidation();
        builder.Services.AddOpenApi(ApiContract.ConfigureOpenApi);
        // Metrics (OpenTelemetry, Prometheus text at /metrics): every meter of this server comes from one factory.
        var meters = new Observability.ServerMeters();
        Observability.ServerTelemetry.Add(builder, meters);

        // ---- the trust boundary
        TrustStore store;
        try
        {
            store = TrustStore.Open(options.DataDirectory, options.Time, limits);
            OperatorKeyFile.Bootstrap(store, options.DataDirectory);
        }
        catch (Exception e) when (e is InvalidDataException or OperatorKeyFileException or IOException or UnauthorizedAccessException)
        {
            throw new ServerStartException(e.Message, e);
        }
        builder.Services.AddSingleton(store);
        builder.Services.AddSingleton<NodeSessions>();
        builder.Services.AddHostedService<TrustLifetime>();
        // Authentication brings ASP.NET's data protection, which nothing here uses (no cookies): keep its keys in memory
        // rather than in a folder of the user's home.
        builder.Services.AddDataProtection().UseEphemeralDataProtectionProvider();
        // One scheme, the default for everything: the request gate authenticates each request once (an API
        // key on the public port, a node session on the node port) and the policies read the user it sets; a key
        // presented on a public route (market data) makes its caller that key's principal, so the rate limit it is held to
        // is its own, not its address's. The scheme's handler answers challenges (401) and forbids (403).
        builder.Services.AddAuthentication(o =>
        {
            o.AddScheme<TrustAuthenticationHandler>(TrustSchemes.ApiKey, null);
            o.DefaultScheme = TrustSchemes.ApiKey;
        });
        builder.Services.AddTransient<TrustAuthenticationHandler>();
        // The authorization services are stateless and their handlers need no scoped services: made once instead of per
        // request (ASP.NET registers them transient, which on the paid path cost a chain of constructions per request).
        builder.Services.AddSingleton<IAuthorizationHandler, PassThroughAuthorizationHandler>();
        builder.Services.AddSingleton<IAuthorizationHandlerProvider, DefaultAuthorizationHandlerProvider>();
        builder.Services.AddSingleton<IAuthorizationService, DefaultAuthorizationService>();
        builder.Services.AddSingleton<Microsoft.AspNetCore.Authorization.Policy.IPolicyEvaluator, Microsoft.AspNetCore.Authorization.Policy.PolicyEvaluator>();
        Policies.Add(builder.Services.AddAuthorizationBuilder());
        builder.Services.AddSingleton(new PrincipalRateLimiter(limits, options.Time));
        if (options.CorsOrigins.Count > 0)
            builder.Services.AddCors(o => o.AddDefaultPolicy(p => p.WithOrigins([.. options.CorsOrigins]).WithMethods("GET", "POST", "PUT", "DELETE")
                .WithHeaders("Authorization", "Content-Type", "Idempotency-Key", "X-Region")));

        // ---- the components
        // A damaged ledger folder throws LedgerCorruptException (one line: file, offset, op): the server refuses to start.
        // A failed snapshot is logged as an error once the logger exists; the ledger goes on and retries it.
        var ledgerLog = new StrongBox<ILogger?>();
        var ledger = LedgerEngine.Open(new LedgerEngineOptions
        {
            DataDirectory = Path.Combine(options.DataDirectory, "ledger"),
            SnapshotFailed = e => ledgerLog.Value?.LogError(e, "Ledger snapshot failed; the ledger goes on (its log has everything) and retries later: {Reason}", e.Message),
            Meters = meters,
        }, options.Time);
        builder.Services.AddSingleton(ledger);
        builder.Services.AddSingleton(new PrincipalLedger(ledger));
        builder.Services.AddHostedService<LedgerLifetime>();
        // Node shares' revenue: the book is rebuilt from the ledger before anything else can move money (registered
        // right after the ledger's lifetime, so it starts before the exchange and the paid path).
        ShareRevenue shareRevenue;
        try { shareRevenue = ShareRevenue.Open(ledger, options.DataDirectory); }
        catch (InvalidDataException e) { throw new ServerStartException(e.Message, e); }
        builder.Services.AddSingleton(shareRevenue);
        builder.Services.AddHostedService<ShareRevenueLifetime>();
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
        // The command journal brings the books, orders, leases and nodes back after a restart, beside the ledger it settles in.
        string exchangeDir = Path.Combine(options.DataDirectory, "exchange");
        if (File.Exists(Path.Combine(exchangeDir, "exchange.journal")))
            throw new ServerStartException($"{exchangeDir} holds an exchange journal of an older format (exchange.journal); start on a new data folder.");
        // CG_FAULT=journal-… (test-only) makes the journal fail at a chosen append: the exchange stops taking commands (503).
        var exchange = new ExchangeHost(ledger, instruments, options.Time, new ExchangeHostOptions
        {
            JournalPath = Path.Combine(exchangeDir, "commands.journal"),
            Journal = JournalFaults.FromEnvironment() is { } journalFault ? new JournalOptions { InjectFault = journalFault } : null,
        });
        builder.Services.AddSingleton(instruments);
        builder.Services.AddSingleton(exchange);
        ExchangeMetrics.Register(meters, exchange);
        builder.Services.AddSingleton(new ExchangeFeed(exchange, instruments, options.Time));
        builder.Services.AddSingleton<FeedSubscribers>();
        // Registered after the ledger's lifetime so it stops first: no exchange tick runs against a closed ledger.
        builder.Services.AddHostedService<ExchangeLifetime>();

        // Live hybrid sites: built (and their data checked) before the server listens, so a bad site fails the start.
        var liveSites = new List<LiveSite>();
        foreach (LiveSiteOptions site in options.Sites) liveSites.Add(LiveSite.Start(site, TimeProvider.System));
        builder.Services.AddSingleton(new LiveSites(liveSites));
        builder.Services.AddHostedService<EnergyLifetime>();

        // Paid inference: payments through the ledger, the node registry and router, in-process nodes.
        var latency = LatencyMatrix.LoadDefault();
        var models = new ModelRegistry();
        var miniLm = LazyEmbeddingModel.MiniLm(options.Inference.ModelParallelism.IntraOpThreads);
        models.Register(miniLm);
        var registry = new NodeRegistry(latency, options.Time);
        // Sites that list nodes measure them (exchange leases, inference utilization) and publish their power state to the router.
        foreach (LiveSite site in liveSites) site.Attach(new ServerSiteNodes(exchange, store, registry, options.Time));
        // Each decided interval's economics is booked in the server's ledger (issue 17).
        foreach (LiveSite site in liveSites) site.Attach(new ComputeGrid.Energy.Bookkeeping.SiteLedger(ledger, site.Name));
        var payments = new InferencePayments(ledger) { HasShares = node => exchange.NodeHasShares((long)node) };
        var localNodes = new LocalNodes(options.Inference.LocalNodes.Select(n =>
        {
            if (!latency.TryGetRegion(n.Region, out int region)) throw new ServerStartException($"Local node {n.Id}: unknown region '{n.Region}'.");
            var batcher = new EmbeddingBatcher(miniLm, new EmbeddingBatcherOptions
            {
                Workers = options.Inference.ModelParallelism.Workers,
                WorkerNice = options.Inference.ModelWorkerNice,
                WorkerSlice = options.Inference.ModelWorkerSlice,
            }, options.Time);
            return (n, new LocalNodeChannel(batcher, region, latency, options.Time));
        }).ToArray());
        // Refused captures are kept in DATA/inference/money.db; CG_FAULT (test-only) makes the paid path kill the process.
        DeadLetters deadLetters;
        InferenceFault fault;
        try
        {
            deadLetters = DeadLetters.Open(options.DataDirectory, options.Time);
            fault = options.Inference.Gateway.Fault != InferenceFault.None ? options.Inference.Gateway.Fault : InferenceFaults.FromEnvironment();
        }
        catch (Exception e) when (e is InvalidDataException or ArgumentException or IOException or UnauthorizedAccessException)
        {
            throw new ServerStartException(e.Message, e);
        }
        builder.Services.AddSingleton(deadLetters);
        ComputeGrid.Server.Reports.NodeReports nodeReports; // nodes' signed epoch reports, DATA/inference/reports.db
        try
        {
            var reportStore = ComputeGrid.Server.Reports.NodeReportStore.Open(options.DataDirectory);
            nodeReports = new(reportStore, payments, options.NodeShares ?? new ComputeGrid.Server.Reports.ExchangeShareSupply(exchange), options.Time, reportStore.EpochFor(options.NodeReportEpoch));
        }
        catch (Exception e) when (e is InvalidDataException or ArgumentException or IOException) { throw new ServerStartException(e.Message, e); }
        builder.Services.AddSingleton(nodeReports);
        // Answered requests' captures, in the background (their holds carry them; recovery completes them after a crash).
        var settler = new CaptureSettler(payments, deadLetters);
        var router = new Router(registry);
        RouterMetrics.Register(meters, router);
        var gateway = new InferenceGateway(models, registry, router, payments, deadLetters, settler, options.Inference.Gateway with { Fault = fault });
        builder.Services.AddSingleton(new InferenceHost(gateway, payments, new IdempotencyCache(options.Time, limits), latency, options.Time));
        builder.Services.AddSingleton(localNodes);
        builder.Services.AddSingleton<RemoteNodes>();
        builder.Services.AddSingleton(options.Inference);
        builder.Services.AddHostedService<InferenceLifetime>();

        // The chain last, once nothing else can fail the start: a demo Anvil it starts is stopped with the server.
        ComputeGrid.Server.Chain.ChainConnection? chain = options.Chain is null ? null
            : Task.Run(() => ComputeGrid.Server.Chain.ChainConnection.OpenAsync(options.Chain, options.DataDirectory)).GetAwaiter().GetResult();
        if (chain is not null)
        {
            // x402 per-request payments: durable intents in DATA/chain/x402.db, resumed before the server takes requests.
            builder.Services.AddSingleton(chain);
            try { builder.Services.AddSingleton(new ComputeGrid.Server.Chain.X402Payments(chain, ComputeGrid.Server.Chain.X402Store.Open(options.DataDirectory, options.Time), ledger, options.Time)); }
            catch (InvalidDataException e) { chain.Dispose(); throw new ServerStartException(e.Message, e); }
            builder.Services.AddHostedService<ComputeGrid.Server.Chain.X402Lifetime>();
            // Deposits, withdrawals and checkpoint anchors (DATA/chain/bridge.db).
            ComputeGrid.Server.Chain.BridgeLifetime.Register(builder.Services, chain, options);
        }

        // The web console's files and the figures it shows, sampled once a second (console/README.md).
        ComputeGrid.Server.WebConsole.ConsoleEndpoints.AddConsole(builder.Services);
        Observability.Readiness.Track(builder.Services); // /health/ready: a marker after each service that recovers a part
        var app = builder.Build();
        Observability.ServerMetrics.Register(meters, app.Services, settler);
        app.Lifetime.ApplicationStopped.Register(meters.Dispose);
        if (chain is not null) app.Lifetime.ApplicationStopped.Register(chain.Dispose);
        app.Lifetime.ApplicationStarted.Register(() => starting.Value = false);
        app.Lifetime.ApplicationStopped.Register(nodeReports.Store.Dispose);
        var log = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("ComputeGrid.Server");
        gateway.Log = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger<InferenceGateway>();
        settler.Log = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger<CaptureSettler>();
        if (fault != InferenceFault.None) log.LogWarning("{Variable}={Fault}: the paid path kills this process (a test-only fault)", InferenceFaults.Variable, fault);
        if (regionWarning is not null)
            log.LogWarning("Region data file not found, using the built-in list of {Count} regions: {Reason}", regions.Count, regionWarning);
        ledgerLog.Value = log;
        var r = ledger.Recovery;
        log.LogInformation("Ledger recovered from {Dir}: snapshot {Snap} (op {SnapOp}), {Records} records replayed, last op {LastOp}, {Truncated} torn bytes truncated{Reason} in {Ms} ms",
            options.DataDirectory, r.SnapshotLoaded ? "loaded" : "none", r.SnapshotOp, r.RecordsReplayed, r.LastOp, r.TruncatedBytes,
            r.StopReason is null ? "" : $" ({r.StopReason})", (int)r.Elapsed.TotalMilliseconds);

        // The moment a paid request entered the server (before any other middleware), for its X-CG-Server-Ms receipt.
        app.Use((http, next) =>
        {
            if (http.Request.Path.StartsWithSegments("/v1/embeddings", StringComparison.Ordinal))
                http.Items[InferenceEndpoints.EnteredItem] = System.Diagnostics.Stopwatch.GetTimestamp();
            return next(http);
        });
        app.UseExceptionHandler(new ExceptionHandlerOptions
        {
            StatusCodeSelector = ApiContract.StatusOf,
            // A client's bad request or a reached quota is an answer, not a server fault: it is not logged as an error.
            SuppressDiagnosticsCallback = c => ApiContract.StatusOf(c.Exception) < 500,
        });
        app.UseStatusCodePages();
        app.UseRouting();
        app.UseMiddleware<RequestGate>();
        if (options.CorsOrigins.Count > 0) app.UseCors();
        app.UseAuthorization();

        app.MapGet("/healthz", Results<Ok<HealthView>, ProblemHttpResult> (LedgerEngine l) =>
                l.Fault is null ? TypedResults.Ok(new HealthView("ok")) : Problems.Unavailable(l.Fault.Message))
            .AllowAnonymous().WithTags("health").WithSummary("Whether the server is up and its ledger healthy.");
        Observability.HealthEndpoints.MapHealth(app);
        Observability.ServerTelemetry.MapMetrics(app);
        app.MapOpenApi().AllowAnonymous();
        app.MapTrust();
        app.MapLedger();
        app.MapExchange();
        app.MapShares();
        app.MapEnergy();
        app.MapInference();
        app.MapNodeProtocol();
        ComputeGrid.Server.Chain.ChainEndpoints.MapChain(app);
        ComputeGrid.Server.Chain.X402Endpoints.MapX402(app);
        ComputeGrid.Server.Chain.BridgeEndpoints.MapBridge(app);
        ComputeGrid.Server.Chain.ShareBridgeEndpoints.MapShareBridge(app);
        ComputeGrid.Server.Reports.NodeReportEndpoints.MapNodeReports(app);
        ComputeGrid.Server.WebConsole.ConsoleEndpoints.MapConsole(app);
        return app;
    }

    private static string[] Split(string urls) => urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    /// <summary>
    /// The addresses the started server listens on, by role. Port 0 in <c>--urls</c> or <c>--node-urls</c> asks the
    /// kernel for a free port; these give the port it chose.
    /// </summary>
    public static ServerEndpoints Endpoints(WebApplication app) => app.Services.GetRequiredService<ServerEndpoints>();

    private static X509Certificate2? LoadCertificate(ServerOptions options)
    {
        bool wantsTls = Split(options.Urls).Concat(Split(options.NodeUrls)).Any(u => u.StartsWith("https://", StringComparison.OrdinalIgnoreCase));
        if (options.TlsCertificatePath is null)
        {
            if (options.TlsKeyPath is not null) throw new ServerStartException("--tls-key needs --tls-cert.");
            if (wantsTls) throw new ServerStartException("An https:// address needs a certificate: --tls-cert FILE (PEM) and --tls-key FILE.");
            return null;
        }
        if (!wantsTls) throw new ServerStartException("--tls-cert is given but no address is https:// (e.g. --urls https://127.0.0.1:5443).");
        try
        {
            var pem = X509Certificate2.CreateFromPemFile(options.TlsCertificatePath, options.TlsKeyPath);
            // Kestrel needs the key in a form the platform's TLS can use: round-trip through PKCS#12.
            return X509CertificateLoader.LoadPkcs12(pem.Export(X509ContentType.Pkcs12), null);
        }
        catch (Exception e) when (e is IOException or System.Security.Cryptography.CryptographicException or ArgumentException or UnauthorizedAccessException)
        {
            throw new ServerStartException($"Cannot load the TLS certificate {options.TlsCertificatePath}: {e.Message}", e);
        }
    }

    private static ListenOptions Listen(KestrelServerOptions k, string url, X509Certificate2? certificate, bool node, HostAllowList? hosts)
    {
        if (!Uri.TryCreate(url.Replace("://*", "://0.0.0.0").Replace("://+", "://0.0.0.0"), UriKind.Absolute, out Uri? uri) || uri.Scheme is not ("http" or "https"))
            throw new ServerStartException($"'{url}' is not an http:// or https:// address with a port.");
        bool tls = uri.Scheme == "https";
        ListenOptions? bound = null;
        Action<ListenOptions> configure = o =>
        {
            o.Protocols = node ? HttpProtocols.Http2 : tls ? HttpProtocols.Http1AndHttp2 : HttpProtocols.Http1;
            if (tls) o.UseHttps(certificate!);
            if (node) o.Use(ConnectionRoles.MarkNode);
            bound = o;
        };
        if (uri.Host == "localhost")
        {
            if (uri.Port == 0) throw new ServerStartException($"'{url}': port 0 (any free port) needs an IP address, such as 127.0.0.1, not localhost.");
            k.ListenLocalhost(uri.Port, configure);
            hosts?.AddBinding(System.Net.IPAddress.Loopback);
        }
        else if (System.Net.IPAddress.TryParse(uri.Host, out System.Net.IPAddress? ip))
        {
            k.Listen(ip, uri.Port, configure);
            hosts?.AddBinding(ip);
        }
        else throw new ServerStartException($"'{url}': listen on an IP address or localhost (names go in --allowed-hosts).");
        return bound!;
    }
}

/// <summary>The server cannot start (bad settings, a corrupt or foreign data folder): one line for the user.</summary>
public sealed class ServerStartException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>The health answer.</summary>
/// <param name="Status"><c>ok</c>.</param>
public sealed record HealthView(string Status);

/// <summary>
/// The data folder's layout version (<c>DATA/layout</c>). A folder written before principals and the chart of accounts
/// numbers its accounts differently; it is refused rather than mixed with the new numbering.
/// </summary>
public static class DataLayout
{
    /// <summary>The layout this version writes.</summary>
    public const string Current = "computegrid-data 2";

    /// <summary>Writes the layout of a new folder; refuses a folder of another layout.</summary>
    public static void Check(string dataDirectory)
    {
        string path = Path.Combine(dataDirectory, "layout");
        if (File.Exists(path))
        {
            string found = File.ReadAllText(path).Trim();
            if (found != Current) throw new ServerStartException($"{dataDirectory} has data layout '{found}'; this version reads '{Current}'.");
            return;
        }
        if (new[] { "ledger", "exchange", "inference" }.Any(d => Directory.Exists(Path.Combine(dataDirectory, d)) && Directory.EnumerateFileSystemEntries(Path.Combine(dataDirectory, d)).Any()))
            throw new ServerStartException($"{dataDirectory} was written by an earlier version of ComputeGrid (before principals and the chart of accounts); start with a new --data-dir, or move it aside.");
        ComputeGrid.Core.DurableFile.ReplacePrivate(path, Current + "\n");
    }
}

/// <summary>Takes periodic checkpoints and, on shutdown, flushes the ledger and writes its snapshot.</summary>
internal sealed class LedgerLifetime(LedgerEngine ledger, PrincipalLedger accounts, ServerOptions options, ILogger<LedgerLifetime> log) : BackgroundService
{
    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        // The system accounts of the chart exist before any request can move money.
        await accounts.EnsureSystemAccountsAsync(cancellationToken);
        await base.StartAsync(cancellationToken);
    }

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

/// <summary>Every second, picks up changes another process made to the trust store; every 10 s, records keys' last use.</summary>
internal sealed class TrustLifetime(TrustStore store, ServerOptions options, ILogger<TrustLifetime> log, IHostApplicationLifetime lifetime) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1), options.Time);
        int ticks = 0;
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                try
                {
                    if (store.Refresh()) log.LogInformation("Trust store changed by another process; reloaded");
                    if (++ticks % 10 == 0) store.FlushLastUse();
                }
                catch (Microsoft.Data.Sqlite.SqliteException e) { log.LogError(e, "Trust store upkeep failed"); }
                catch (InvalidDataException e)
                {
                    // Corruption found while serving (a row changed behind the store's back): stop rather than guess.
                    log.LogCritical("Stopping: {Reason}", e.Message);
                    Environment.ExitCode = 1;
                    lifetime.StopApplication();
                    return;
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested) { }
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        store.Dispose();
    }
}

/// <summary>Every second, gives the runtime's JIT and background-GC threads the longest scheduler slice (see <see cref="ComputeGrid.Core.RuntimeBackgroundThreads"/>).</summary>
internal sealed class RuntimeThreadSlices(ServerOptions options) : BackgroundService
{
    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        ComputeGrid.Core.RuntimeBackgroundThreads.RunAsync(TimeSpan.FromSeconds(1), options.Time, stoppingToken);
}
