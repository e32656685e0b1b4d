using System.CommandLine;
using System.Text.Json;
using ComputeGrid.Cli;
using ComputeGrid.Cli.Bench;
using ComputeGrid.Cli.Energy;
using ComputeGrid.Cli.Inference;
using ComputeGrid.Cli.Market;
using ComputeGrid.Cli.Trust;
using ComputeGrid.Ledger;
using ComputeGrid.Ledger.Audit;
using ComputeGrid.Server;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

// The `computegrid` command. Conventions: a bad command line or bad input exits with code 2 and one line on
// stderr; a check that runs and finds a problem (a proof that does not verify) exits with 1.

// Socket completions run on the socket event threads (then one per core) instead of being handed to the thread pool:
// with Kestrel's inline scheduling (ServerOptions.InlineIoScheduling) a request crosses no thread on its way in or
// out. Each hand-off wakes a sleeping thread, which costs 50-250 µs on a small VM after an idle stretch such as a
// model call; `bench inference` measured the paid path's overhead at p50 0.52-0.56 ms with it and 0.66-0.75 ms
// without. Safe because no socket continuation here blocks. The runtime reads the variable once, when the first
// socket is made, so it is set before anything else; a value the user set (0 to turn it off) wins, and child
// processes (the demo's nodes) inherit it.
if (Environment.GetEnvironmentVariable("DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS") is null)
    Environment.SetEnvironmentVariable("DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS", "1");

var urls = new Option<string>("--urls") { Description = "Where to listen, semicolon-separated (as ASP.NET's --urls).", DefaultValueFactory = _ => "http://127.0.0.1:5080" };
var dataDir = new Option<string>("--data-dir") { Description = "Data folder (ledger log, snapshots).", DefaultValueFactory = _ => CliDefaults.DataDirectory };
var sites = new Option<string[]>("--site") { Description = "A hybrid site to run live: an example's name (ercot-west-reference, caiso-sp15, jepx-tokyo) or a site file. Repeatable; default: ercot-west-reference.", AllowMultipleArgumentsPerToken = false };
var noSites = new Option<bool>("--no-sites") { Description = "Run no live hybrid site." };
var siteSpeed = new Option<double>("--site-speed") { Description = "Replay speed of the live sites' price series (60 = one 15-minute interval every 15 s).", DefaultValueFactory = _ => 60 };
var siteStart = new Option<string?>("--site-start") { Description = "Where the live sites' replay starts (UTC date, e.g. 2021-08-24; outside a site's data it is an error); default: the series start." };
var nodeUrls = new Option<string>("--node-urls") { Description = "Where inference nodes connect (HTTP/2 cleartext), semicolon-separated; empty for none.", DefaultValueFactory = _ => "http://127.0.0.1:5081" };
var demo = new Option<bool>("--demo") { Description = "Run the demo world: three live sites (ERCOT West, CAISO SP-15, JEPX Tokyo) unless --site says otherwise, inference nodes in six regions running the real model, seeded actors trading compute and shares and paying for requests (keys and x402), and a funded demo customer whose API key is written to demo-api-key.txt in the data folder." };
var demoSeed = new Option<int>("--seed") { Description = "With --demo: the seed of the demo actors' plan.", DefaultValueFactory = _ => 1 };
var tlsCert = new Option<string?>("--tls-cert") { Description = "A PEM certificate for the https:// addresses of --urls and --node-urls." };
var tlsKey = new Option<string?>("--tls-key") { Description = "The PEM private key of --tls-cert (when the certificate file does not hold it)." };
var allowedHosts = new Option<string[]>("--allowed-hosts") { Description = "Host names the API answers to besides the ones it is bound to (comma-separated or repeated; * for any).", AllowMultipleArgumentsPerToken = false };
var corsOrigins = new Option<string[]>("--cors-origins") { Description = "Browser origins allowed to call the API (CORS), comma-separated or repeated; none by default.", AllowMultipleArgumentsPerToken = false };
var chainRpc = new Option<string?>("--chain") { Description = "An EVM chain's JSON-RPC address: the contracts are deployed there once (DATA/chain.json) and x402 payments settle there. Needs --chain-key. --demo without it starts a local Anvil." };
var chainKey = new Option<string?>("--chain-key") { Description = "A file holding the private key (hex) of the server's account on --chain." };
var chainConfirmations = new Option<int?>("--chain-confirmations") { Description = "Blocks a transaction needs before it is final (default 2 on the demo Anvil, 12 on --chain)." };
var chainBlockTime = new Option<int?>("--chain-block-time") { Description = "The demo Anvil mines a block every this many seconds instead of one per transaction." };
var serve = new Command("serve", "Run the ComputeGrid server: ledger, exchange, live hybrid sites, paid inference and the HTTP API.")
    { urls, dataDir, sites, noSites, siteSpeed, siteStart, demo, demoSeed, nodeUrls, tlsCert, tlsKey, allowedHosts, corsOrigins, chainRpc, chainKey, chainConfirmations, chainBlockTime };
serve.SetAction(async (pr, ct) =>
{
    if (!(pr.GetValue(siteSpeed) is > 0 and <= 1_000_000)) return CliDefaults.Fail("--site-speed must be in (0, 1000000]");
    // --seed seeds the demo actors' plan; without --demo nothing would use it, so a mistyped command line says so.
    if (!pr.GetValue(demo) && pr.GetResult(demoSeed) is { Implicit: false }) return CliDefaults.Fail("--seed applies only with --demo (the seed of the demo actors' plan)");
    DateTime? start = null;
    if (pr.GetValue(siteStart) is { } startText && !BacktestCommand.TryParseUtc(startText, out start)) return CliDefaults.Fail($"--site-start '{startText}' is not a UTC date or time");
    var liveSites = new List<ComputeGrid.Server.Energy.LiveSiteOptions>();
    if (!pr.GetValue(noSites))
    {
        string[] names = pr.GetValue(sites) is { Length: > 0 } given ? given : pr.GetValue(demo) ? [] : [ComputeGrid.Energy.Sites.SiteExamples.Reference];
        // --demo without --site: the demo world's three sites, each listing its GPU nodes (ComputeGrid.Cli.Demo.DemoWorld).
        if (names.Length == 0)
            liveSites.AddRange(ComputeGrid.Cli.Demo.DemoWorld.Sites().Select(config => new ComputeGrid.Server.Energy.LiveSiteOptions { Config = config, Speed = pr.GetValue(siteSpeed), StartUtc = start }));
        foreach (string name in names)
        {
            try
            {
                bool isFile = File.Exists(name);
                var config = isFile ? ComputeGrid.Energy.Sites.SiteConfigLoader.Load(name) : ComputeGrid.Energy.Sites.SiteExamples.Load(name);
                liveSites.Add(new ComputeGrid.Server.Energy.LiveSiteOptions
                {
                    Config = config,
                    BaseDirectory = isFile ? Path.GetDirectoryName(Path.GetFullPath(name)) : null,
                    Speed = pr.GetValue(siteSpeed),
                    StartUtc = start,
                });
            }
            catch (KeyNotFoundException e) { return CliDefaults.Fail($"--site {name}: not a file, and {e.Message}"); }
            catch (ComputeGrid.Energy.Sites.SiteConfigException e) { return CliDefaults.Fail($"--site {name}: {e.Message}"); }
        }
    }
    bool demoFleet = pr.GetValue(demo);
    if (demoFleet && (pr.GetValue(nodeUrls) ?? "").Trim(';', ' ').Length == 0) return CliDefaults.Fail("--demo needs a node endpoint (--node-urls)");
    var inference = new ComputeGrid.Server.Inference.InferenceServerOptions { DemoCustomerFundingMicroUsd = demoFleet ? 100_000_000 : 0 };
    // A chain when one is named, or the demo's Anvil; the chain flags without either are a usage error.
    var chain = new ComputeGrid.Server.Chain.ChainOptions
    {
        RpcUrl = pr.GetValue(chainRpc), KeyFile = pr.GetValue(chainKey), Confirmations = pr.GetValue(chainConfirmations), BlockTimeSeconds = pr.GetValue(chainBlockTime),
    };
    if (chain.Problem() is { } chainProblem) return CliDefaults.Fail(chainProblem);
    bool wantsChain = chain.RpcUrl is not null || demoFleet;
    if (!wantsChain && (chain.Confirmations is not null || chain.BlockTimeSeconds is not null)) return CliDefaults.Fail("--chain-confirmations and --chain-block-time need --chain RPC_URL or --demo");
    static string[] List(string[]? values) => (values ?? []).SelectMany(v => v.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)).ToArray();
    var options = new ServerOptions
    {
        Urls = pr.GetValue(urls)!, NodeUrls = pr.GetValue(nodeUrls) ?? "", DataDirectory = Path.GetFullPath(pr.GetValue(dataDir)!), Sites = liveSites, Inference = inference,
        TlsCertificatePath = pr.GetValue(tlsCert), TlsKeyPath = pr.GetValue(tlsKey), AllowedHosts = List(pr.GetValue(allowedHosts)), CorsOrigins = List(pr.GetValue(corsOrigins)),
        Chain = wantsChain ? chain : null,
        // The demo's nodes publish a signed report a minute (the Nodes page verifies them), not one an hour; a data folder
        // keeps the epoch it began with (NodeReportStore.EpochFor).
        NodeReportEpoch = demoFleet ? TimeSpan.FromMinutes(1) : ComputeGrid.Inference.Reports.EpochReportLimits.EpochDefault,
    };
    WebApplication app;
    try { app = ServerHost.Build(options); }
    catch (ComputeGrid.Energy.Sites.SiteConfigException e) { return CliDefaults.Fail($"site: {e.Message}"); }
    catch (ServerStartException e) { return CliDefaults.Fail(e.Message); }
    catch (LedgerCorruptException e)
    {
        // Not a usage error: the data folder is damaged. One line naming file, offset and op; exit 1 (as verify).
        Console.Error.WriteLine("error: " + e.Message);
        return 1;
    }
    // Start first, then print the addresses Kestrel bound: with port 0 in --urls or --node-urls the kernel picks the port.
    try { await app.StartAsync(); }
    catch (IOException e) when (e.InnerException is System.Net.Sockets.SocketException { SocketErrorCode: System.Net.Sockets.SocketError.AddressAlreadyInUse } || e.Message.Contains("address already in use", StringComparison.OrdinalIgnoreCase))
    {
        await app.DisposeAsync();
        return CliDefaults.Fail($"{e.Message.TrimEnd('.')}: another program listens there; choose another port with --urls or --node-urls");
    }
    catch (ServerStartException e)
    {
        // A check made as the services start (a node's revenue account of another shape): one line, as at build.
        await app.DisposeAsync();
        return CliDefaults.Fail(e.Message);
    }
    catch (ComputeGrid.Exchange.Pipeline.JournalCorruptException e)
    {
        // The exchange's journal is damaged anywhere but a torn tail: nothing was truncated. One line; exit 1 (as the ledger).
        await app.DisposeAsync();
        Console.Error.WriteLine("error: " + e.Message);
        return 1;
    }
    var bound = ServerHost.Endpoints(app);
    Console.Out.WriteLine($"computegrid serving on {string.Join(';', bound.ApiUrls)} with data in {options.DataDirectory}");
    ComputeGrid.Cli.Ops.ServerAddressFile.Write(options.DataDirectory, bound.ApiUrl); // where `computegrid status` finds it
    if (bound.NodeUrls.Count > 0) Console.Out.WriteLine($"  node endpoint on {string.Join(';', bound.NodeUrls)}");
    Console.Out.WriteLine($"  metrics: GET /metrics with the operator key as a bearer token ({ComputeGrid.Server.Trust.OperatorKeyFile.PathIn(options.DataDirectory)}); probes: GET /health/live, /health/ready");
    foreach (var site in liveSites)
        Console.Out.WriteLine($"  live site {site.Config.Name} at {site.Speed}×: GET /api/energy/sites/{site.Config.Name}" + (site.Config.Nodes.Length > 0 ? $" (GPU nodes {string.Join(", ", site.Config.Nodes.Select(n => n.Id))})" : ""));
    if (app.Services.GetService<ComputeGrid.Server.Chain.ChainConnection>() is { } connected)
        Console.Out.WriteLine($"  chain {connected.Info.Network} at {connected.Info.RpcUrl}: stablecoin {connected.Info.Stablecoin}, payTo {connected.Info.PayTo} (GET /api/chain)");
    if (!demoFleet)
    {
        await app.WaitForShutdownAsync();
        ComputeGrid.Cli.Ops.ServerAddressFile.RemoveIfOurs(options.DataDirectory, bound.ApiUrl);
        await app.DisposeAsync();
        return Environment.ExitCode; // non-zero when the server stopped itself (a store found corrupt while serving)
    }
    try
    {
        await DemoFleet.AdmitAsync(app.Services.GetRequiredService<ComputeGrid.Server.Trust.TrustStore>(), app.Services.GetRequiredService<ComputeGrid.Server.Trust.PrincipalLedger>(),
            app.Services.GetRequiredService<ComputeGrid.Exchange.Pipeline.ExchangeHost>(), options.DataDirectory, ct);
    }
    catch (Exception e) when (e is InvalidOperationException or ComputeGrid.Server.Trust.TrustStoreException)
    {
        await app.StopAsync();
        await app.DisposeAsync();
        return CliDefaults.Fail(e.Message);
    }
    Console.Out.WriteLine($"  demo fleet: {DemoFleet.Nodes.Length} node processes connecting to {bound.NodeUrl}: {string.Join(", ", DemoFleet.Nodes.Select(n => $"{n.Id} ({n.Region})"))} (GET /api/inference/nodes)");
    Console.Out.WriteLine($"  demo actors (seed {pr.GetValue(demoSeed)}): their keys in {ComputeGrid.Cli.Demo.DemoCast.PathIn(options.DataDirectory)}");
    Console.Out.WriteLine($"  web console: {bound.ApiUrl}/ (sign in with the operator key in {ComputeGrid.Server.Trust.OperatorKeyFile.PathIn(options.DataDirectory)})");
    await using (DemoFleet.Start(bound.NodeUrl, options.DataDirectory, Console.Out))
    await using (ComputeGrid.Cli.Demo.DemoDriver.Start(new Uri(bound.ApiUrl), File.ReadAllText(ComputeGrid.Server.Trust.OperatorKeyFile.PathIn(options.DataDirectory)).Trim(),
        options.DataDirectory, pr.GetValue(demoSeed), ComputeGrid.Cli.Demo.DemoRates.Default, app.Services.GetRequiredService<TimeProvider>(),
        app.Services.GetRequiredService<Microsoft.Extensions.Logging.ILoggerFactory>().CreateLogger("ComputeGrid.Demo"), app.Lifetime.ApplicationStopping))
        await app.WaitForShutdownAsync();
    ComputeGrid.Cli.Ops.ServerAddressFile.RemoveIfOurs(options.DataDirectory, bound.ApiUrl);
    await app.DisposeAsync();
    return Environment.ExitCode;
});

var component = new Argument<string>("component") { Description = "What to measure: ledger, exchange, energy, inference, tokens, chain." };
component.AcceptOnlyFromAmong("ledger", "exchange", "energy", "inference", "tokens", "chain", "fleet");
var quick = new Option<bool>("--quick") { Description = "A shorter run (under 30 seconds)." };
var workDir = new Option<string?>("--work-dir") { Description = "Folder for the benchmark's files (default: a temporary folder)." };
var benchPrices = new Option<string?>("--prices") { Description = "energy: a 15-minute hub price file of the shared ERCOT format, instead of the reference site's." };
var benchPriceColumn = new Option<string?>("--price-column") { Description = "energy: the price column to use (e.g. 'West LMP')." };
var benchLoad = new Option<string?>("--load") { Description = "energy: an hourly native-load file of the shared ERCOT format." };
var benchOnly = new Option<string?>("--only") { Description = "exchange: run one part alone ('restart': the restart after N orders)." };
var benchSeed = new Option<int?>("--seed") { Description = "fleet: the seed of the demand and the request order (default 1)." };
var bench = new Command("bench", "Run a benchmark; the last line printed is one JSON object.") { component, quick, workDir, benchPrices, benchPriceColumn, benchLoad, benchOnly, benchSeed };
bench.SetAction(async (pr, ct) => pr.GetValue(component) switch
{
    "ledger" => await LedgerBench.RunAsync(pr.GetValue(quick), pr.GetValue(workDir), Console.Out, ct),
    "exchange" => await ExchangeBench.RunAsync(pr.GetValue(quick), pr.GetValue(benchOnly), Console.Out, ct),
    "inference" => await InferenceBench.RunAsync(pr.GetValue(quick), pr.GetValue(workDir), Console.Out, ct),
    "energy" => EnergyBench.Run(pr.GetValue(quick), pr.GetValue(benchPrices), pr.GetValue(benchPriceColumn), pr.GetValue(benchLoad), Console.Out),
    "tokens" => TokensBench.Run(pr.GetValue(quick), Console.Out),
    "fleet" => FleetBench.Run(pr.GetValue(quick), pr.GetValue(benchSeed), Console.Out),
    "chain" => await ChainBench.RunAsync(pr.GetValue(quick), pr.GetValue(workDir), Console.Out, Console.Error, ct),
    var c => CliDefaults.Fail($"unknown benchmark '{c}'"),
});

// The inference bench's one-client probe, run by the bench as a separate process (not for users).
var probeUrl = new Argument<string>("url");
var probeCount = new Argument<int>("count");
var probeWarm = new Argument<int>("warm-seconds");
var benchProbe = new Command("bench-probe", "Internal: the inference bench's one-client probe.") { probeUrl, probeCount, probeWarm };
benchProbe.Hidden = true;
benchProbe.SetAction(async (pr, ct) =>
{
    string url = pr.GetValue(probeUrl)!;
    if (!Uri.TryCreate(url, UriKind.Absolute, out Uri? server) || server.Scheme != Uri.UriSchemeHttp) return CliDefaults.Fail($"'{url}' is not an http:// address");
    if (pr.GetValue(probeCount) < 1) return CliDefaults.Fail("count must be at least 1");
    if (pr.GetValue(probeWarm) < 0) return CliDefaults.Fail("warm-seconds must not be negative");
    try { return await InferenceBench.ProbeChildAsync(server, pr.GetValue(probeCount), pr.GetValue(probeWarm), Console.Out, ct); }
    catch (HttpRequestException e) { return CliDefaults.Fail($"{url}: {e.Message}"); }
});

var proofFile = new Option<FileInfo?>("--proof") { Description = "A balance proof (JSON) from GET /api/ledger/accounts/{id}/proof." };
var root = new Option<string?>("--root") { Description = "The published checkpoint root (hex) to check the proof against." };
var verifyDir = new Option<string?>("--ledger-dir") { Description = "Verify a ledger folder offline: the log's hash chain and a full replay." };
var verifyNodeReports = new Option<string?>("--node-reports") { Description = "Verify a node's published reports (FILE or URL of GET /api/nodes/{id}/reports): signatures, hash chain, derived figures, totals." };
var verifyChain = new Option<string?>("--chain") { Description = "With --proof and --anchor: an EVM JSON-RPC address; the root is read from the chain's StateRootAnchor instead of --root." };
var verifyAnchor = new Option<string?>("--anchor") { Description = "The StateRootAnchor contract's address (GET /api/chain: anchor)." };
var verify = new Command("verify", "Check a balance proof against a checkpoint root (given, or anchored on chain), a ledger folder's hash chain, or a node's signed epoch reports.") { proofFile, root, verifyDir, verifyNodeReports, verifyChain, verifyAnchor };
verify.SetAction(async (pr, ct) =>
{
    var file = pr.GetValue(proofFile);
    var dir = pr.GetValue(verifyDir);
    string? chainUrl = pr.GetValue(verifyChain), anchorAddress = pr.GetValue(verifyAnchor);
    if (chainUrl is not null || anchorAddress is not null)
    {
        if (file is null || chainUrl is null || anchorAddress is null) return CliDefaults.Fail("--chain and --anchor go together, with --proof FILE");
        if (pr.GetValue(root) is not null) return CliDefaults.Fail("--root and --chain/--anchor are two ways to give the root: use one");
        return await ComputeGrid.Cli.Chain.AnchoredProofVerify.RunAsync(file, chainUrl, anchorAddress, Console.Out, Console.Error);
    }
    if (file is not null) return VerifyProof(file, pr.GetValue(root));
    if (dir is not null) return VerifyLedger(dir);
    if (pr.GetValue(verifyNodeReports) is { } reports) return await NodeReportsVerify.RunAsync(reports, Console.Out, ct);
    return CliDefaults.Fail("verify needs --proof FILE --root HEX, --ledger-dir DIR, or --node-reports FILE|URL");
});

// Recursive: every command takes it (`computegrid serve --data-root DIR`, `computegrid backtest … --data-root DIR`).
var dataRoot = new Option<string?>("--data-root")
{
    Description = $"Folder holding the real data files: prices, latencies, miner tables (default: ${ComputeGrid.Core.DataFiles.RootVariable}, else the data/ folder beside the binary or above it in the repository). Not the server's --data-dir.",
    Recursive = true,
};
var rootCommand = new RootCommand("ComputeGrid: compute exchange, paid inference, hybrid energy sites, tokenized nodes and settlement.") { serve, bench, benchProbe, verify, MarketCommand.Create(), ComputeGrid.Cli.Tokens.SharesCommand.Create(), ComputeGrid.Cli.Simulate.SimulateCommand.Create(), BacktestCommand.Create(), NodeCommand.Create(), NodeKeyCommand.Create(), OperatorCommand.Create(), dataRoot };
// The operator's read-only view of a running server: status, sites, nodes (Ops/).
foreach (var opsCommand in ComputeGrid.Cli.Ops.OpsCommands.Create()) rootCommand.Subcommands.Add(opsCommand);
var parsed = rootCommand.Parse(args);
// Bare `computegrid`: the list of commands (stderr, exit 2), not just "Required command was not provided".
if (args.Length == 0 && CliUsage.IsMissingSubcommand(parsed)) return CliUsage.Print(rootCommand, CliUsage.PathOf(parsed), Console.Error);
if (parsed.Errors.Count > 0) return CliDefaults.Fail(parsed.Errors[0].Message);
// The data root is settled before any command runs, so a mistyped folder is one line and exit 2 up front rather than
// a missing-file error halfway through (or, worse, a silent fall back to some other copy of the data).
if (UseDataRoot(parsed.GetValue(dataRoot)) is { } rootError) return CliDefaults.Fail(rootError);
try
{
    return await parsed.InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = null, EnableDefaultExceptionHandler = false });
}
catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidDataException or ArgumentException)
{
    return CliDefaults.Fail(e.Message);
}

// Makes --data-root (else $COMPUTEGRID_DATA_ROOT) the data files' root; returns an error message, or null when fine.
static string? UseDataRoot(string? option)
{
    string source = "--data-root";
    string? dir = option;
    if (option is null)
    {
        source = ComputeGrid.Core.DataFiles.RootVariable;
        dir = Environment.GetEnvironmentVariable(source);
        if (string.IsNullOrEmpty(dir)) return null; // neither given: the walk up to a data/ folder
    }
    if (string.IsNullOrWhiteSpace(dir)) return $"{source} needs a folder";
    try { ComputeGrid.Core.DataFiles.UseRoot(dir); }
    catch (DirectoryNotFoundException)
    {
        string full = Path.GetFullPath(dir);
        return $"{source} '{dir}': no such folder" + (full == dir ? "" : $" ({full})");
    }
    // Child processes (the demo fleet's nodes, the inference bench's probe) read the same root: they inherit it
    // through the environment, as a full path since they may start in another folder.
    Environment.SetEnvironmentVariable(ComputeGrid.Core.DataFiles.RootVariable, ComputeGrid.Core.DataFiles.Root);
    return null;
}

static int VerifyProof(FileInfo file, string? rootHex)
{
    if (string.IsNullOrWhiteSpace(rootHex)) return CliDefaults.Fail("--root HEX is required with --proof");
    if (rootHex.Trim().Length != 64 || !rootHex.Trim().All(Uri.IsHexDigit)) return CliDefaults.Fail("--root must be 64 hex digits");
    if (!file.Exists) return CliDefaults.Fail($"no such proof file: {file.FullName}");
    BalanceProof? proof;
    try { proof = JsonSerializer.Deserialize<BalanceProof>(File.ReadAllText(file.FullName), BalanceProof.Json); }
    catch (JsonException e) { return CliDefaults.Fail($"{file.Name} is not a balance proof: {e.Message.Split(". ")[0]}"); }
    if (proof is null) return CliDefaults.Fail($"{file.Name} is empty");
    var (ok, message) = proof.Verify(rootHex);
    if (ok) { Console.Out.WriteLine(message); return 0; }
    Console.Error.WriteLine("proof does not verify: " + message);
    return 1;
}

static int VerifyLedger(string dir)
{
    string ledgerDir = File.Exists(Path.Combine(dir, "ledger.log")) ? dir : Path.Combine(dir, "ledger");
    if (!File.Exists(Path.Combine(ledgerDir, "ledger.log"))) return CliDefaults.Fail($"no ledger log in {dir}");
    LedgerVerifyReport v;
    try { v = LedgerEngine.VerifyDirectory(ledgerDir); }
    catch (LedgerCorruptException e)
    {
        // The check ran and found damage: exit 1, one line naming file, offset and op (what `serve` refuses to start with).
        Console.Error.WriteLine("error: " + e.Message);
        return 1;
    }
    Console.Out.WriteLine($"ok: {v.Records} records, last op {v.LastOp}, chain head {v.Head}, state {Convert.ToHexStringLower(v.StateHash)}"
        + (v.SnapshotOp is { } snapOp ? $"; snapshot at op {snapOp} matches the replay" : "; no snapshot")
        + (v.TrailingBytes > 0 ? $"; {v.TrailingBytes} bytes of a torn tail past the last valid record ({v.TornTailReason}; nothing valid after it), truncated at the next start" : ""));
    return 0;
}
