using System.Security.Cryptography;
using ComputeGrid.Exchange.Trading;
using ComputeGrid.Ledger;
using ComputeGrid.Server.Trust;
using ComputeGrid.Inference.Model;
using ComputeGrid.Inference.Routing;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace ComputeGrid.Server.Inference;

/// <summary>A node the server runs in its own process (the demo fleet): the real model, with the request region's distance applied as a delay.</summary>
public sealed record LocalNodeSpec(string Id, string Region, long PriceMicroUsdPer1kTokens, int Capacity);

/// <summary>Paid inference settings of a server.</summary>
public sealed record InferenceServerOptions
{
    /// <summary>Nodes to run in the server's process.</summary>
    public IReadOnlyList<LocalNodeSpec> LocalNodes { get; init; } = [];

    /// <summary>Create a funded demo customer at start and write its key to <c>demo-api-key.txt</c> in the data folder.</summary>
    public long DemoCustomerFundingMicroUsd { get; init; }

    /// <summary>The gateway's settings.</summary>
    public InferenceOptions Gateway { get; init; } = new();

    /// <summary>How the local nodes' model uses the cores: batches side by side and threads per call.</summary>
    public ModelParallelism ModelParallelism { get; init; } = ModelParallelism.Default;

    /// <summary>
    /// The nice value of the local nodes' model threads (0 to 19). Default 0: at light load the model call is on
    /// every request's critical path, and at nice 10 it waited behind background work (the JIT, the GC) for
    /// milliseconds; under full load, nice 10 gave no measurable gain on this project's 2-core VM.
    /// </summary>
    public int ModelWorkerNice { get; init; }

    /// <summary>
    /// The local nodes' model threads' scheduler slice (see <see cref="EmbeddingBatcherOptions.WorkerSlice"/>), null for
    /// the kernel's default. Default the longest, 100 ms: a thread woken onto a model worker's core preempts the model
    /// call at once instead of waiting out its slice. In alternating quick benches on this project's 2-core VM, the
    /// machine's stalls over 1 ms in the overhead window fell from 19–23 to 2–8 and the overhead p99 from 1.67–2.52 ms
    /// to 1.21–1.27 ms.
    /// </summary>
    public TimeSpan? ModelWorkerSlice { get; init; } = ComputeGrid.Core.ThreadSlice.Max;
}

/// <summary>
/// An embedding model loaded on first use: the server can list and route to all-MiniLM-L6-v2 without paying the
/// model's load (≈ 90 MB, a second) until a request needs its tokenizer or a local node runs it.
/// </summary>
public sealed class LazyEmbeddingModel(string id, int dimensions, int maxTokens, Func<IEmbeddingModel> load) : IEmbeddingModel, IDisposable
{
    private readonly Lazy<IEmbeddingModel> _model = new(load, LazyThreadSafetyMode.ExecutionAndPublication);

    public string Id => id;
    public int Dimensions => dimensions;
    public int MaxTokens => maxTokens;
    public bool IsLoaded => _model.IsValueCreated;

    public TokenizedInput Tokenize(string text) => _model.Value.Tokenize(text);

    public void Embed(ReadOnlySpan<TokenizedInput> batch, Span<float> output) => _model.Value.Embed(batch, output);

    public void Dispose()
    {
        if (_model.IsValueCreated && _model.Value is IDisposable d) d.Dispose();
    }

    /// <summary>all-MiniLM-L6-v2, loaded on first use.</summary>
    /// <param name="intraOpThreads">ONNX Runtime threads per model call.</param>
    public static LazyEmbeddingModel MiniLm(int intraOpThreads) => new(MiniLmEmbeddingModel.ModelId, MiniLmEmbeddingModel.EmbeddingDimensions, MiniLmEmbeddingModel.MaxSequenceLength, () => new MiniLmEmbeddingModel(intraOpThreads));
}

/// <summary>
/// Registers and heartbeats the local nodes (admitted, like any node, for the server's own "local" provider, so their
/// revenue accounts are their principals' and survive restarts), and sets up the demo customer.
/// </summary>
internal sealed class InferenceLifetime(InferenceHost host, InferenceServerOptions options, ServerOptions server, LocalNodes nodes, TrustStore store,
    PrincipalLedger accounts, ComputeGrid.Exchange.Pipeline.ExchangeHost exchange, ILogger<InferenceLifetime> log) : BackgroundService
{
    /// <summary>The provider the server's in-process nodes are admitted for.</summary>
    public const string LocalProvider = "local";

    /// <summary>The demo customer's name.</summary>
    public const string DemoCustomer = "demo";

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        ulong firstOperator = store.List(PrincipalKind.Operator, 0, 1)[0].Id;
        if (nodes.All.Count > 0)
        {
            Principal provider = store.Find(PrincipalKind.Provider, LocalProvider) ?? store.CreatePrincipal(PrincipalKind.Provider, LocalProvider, firstOperator);
            await accounts.CreateAccountsAsync(provider, stoppingToken);
            foreach (var (spec, channel) in nodes.All)
            {
                // An in-process node proves nothing by signature (it is the server itself), so its key is a random one.
                NodeAdmission admission = store.FindNode(spec.Id)
                    ?? store.AdmitNode(provider.Id, spec.Id, RandomNumberGenerator.GetBytes(32), Math.Max(spec.PriceMicroUsdPer1kTokens, 0), firstOperator);
                await accounts.CreateAccountsAsync(store.Find(admission.Principal)!, stoppingToken);
                host.Gateway.AddNode(new NodeRegistration(spec.Id, spec.Region, [host.Gateway.Models.Models[0].Id], spec.PriceMicroUsdPer1kTokens, spec.Capacity,
                    admission.PublicKey), admission.Principal, channel);
                host.Gateway.Registry.Heartbeat(spec.Id, new NodeHeartbeat(0, 0, 10));
            }
            log.LogInformation("Inference: {Count} local nodes in {Regions}", nodes.All.Count, string.Join(", ", nodes.All.Select(n => n.Spec.Region).Distinct()));
        }
        if (options.DemoCustomerFundingMicroUsd > 0) await CreateDemoCustomerAsync(firstOperator, stoppingToken);

        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1), server.Time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
                foreach (var (spec, channel) in nodes.All)
                    if (!channel.Broken) host.Gateway.Registry.Heartbeat(spec.Id, new NodeHeartbeat(0, 0, 10));
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested) { }
    }

    /// <summary>How long a stop waits for the settler to capture what is queued (the rest is left to recovery).</summary>
    public static readonly TimeSpan SettlerDrain = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Before the server listens: every admitted node's revenue account is bound (see <see cref="NodeRevenueBindings"/>),
    /// then the captures a crash cut off are completed (<see cref="CaptureSettler.RecoverAsync"/>), so no request is
    /// served before every earlier answer is charged.
    /// </summary>
    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        int checkedNodes = await NodeRevenueBindings.EnsureAsync(store, accounts, cancellationToken);
        RecoveryCounts r = await CaptureRecovery.RunAsync(host.Gateway, store, cancellationToken);
        log.LogInformation("Inference: {Count} admitted nodes' revenue accounts checked; captures recovered: {Scanned} escrow transfers read, {Holds} holds with an intent, " +
            "{Before} settled before, {Captured} captured, {Expired} charged after expiry, {Already} found charged, {Dead} dead letters; {DeadLetters} dead letters on record",
            checkedNodes, r.Scanned, r.HoldsWithIntent, r.SettledBefore, r.Settled.Captured, r.Settled.ChargedAfterExpiry, r.Settled.AlreadySettled, r.Settled.DeadLettered,
            host.Gateway.DeadLetters.Count);
        await base.StartAsync(cancellationToken);
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        // Kestrel has stopped: capture what is queued (the ledger is still open), then no charge can be refused any more.
        await host.Gateway.Settler.StopAsync(SettlerDrain);
        host.Gateway.DeadLetters.Dispose();
    }

    // The demo customer, funded once (its funding id is fixed), with a fresh key at every start written to
    // DATA/demo-api-key.txt, private from its creation.
    private async Task CreateDemoCustomerAsync(ulong by, CancellationToken ct)
    {
        string path = Path.Combine(server.DataDirectory, "demo-api-key.txt");
        string region = nodes.All.Count > 0 ? nodes.All[0].Spec.Region : host.Latency.Regions[0];
        Principal customer = store.Find(PrincipalKind.Customer, DemoCustomer) ?? store.CreatePrincipal(PrincipalKind.Customer, DemoCustomer, by, region);
        await accounts.CreateAccountsAsync(customer, ct);
        await ComputeGrid.Server.Exchange.ExchangeCalls.RegisterTraderAsync(exchange, (long)customer.Id);
        var (outcome, transfer) = await accounts.FundAsync(customer, AccountCode.CustomerBalance, options.DemoCustomerFundingMicroUsd, "demo", by, ct);
        if (outcome == FundOutcome.Funded)
            store.Record(by, "fund", $"customer {customer.Id} {AccountCode.CustomerBalance} (demo)", options.DemoCustomerFundingMicroUsd, ComputeGrid.Core.Asset.Usd.Code, transfer);
        // The previous start's demo key stops working: the file always holds the one live demo key.
        foreach (var old in store.KeysOf(customer.Id).Where(k => k.Name == DemoCustomer && k.Revoked is null)) store.RevokeKey(old.KeyId);
        var (_, key) = store.IssueKey(customer.Id, DemoCustomer, Principal.AllowedScopes(PrincipalKind.Customer), by);
        ComputeGrid.Core.DurableFile.ReplacePrivate(path, key + "\n");
        long available = (await accounts.BalancesAsync(customer, ct)).Sum(a => a.AvailableCredit);
        string funding = outcome == FundOutcome.Funded ? $"funded with {options.DemoCustomerFundingMicroUsd / 1_000_000m:0.00} USDC" : $"has {available / 1_000_000m:0.00} USDC (funded at its first start)";
        Console.Out.WriteLine($"demo customer {customer.Id} ({customer.Region}) {funding}; API key: {key} (also in {path})");
    }
}

/// <summary>
/// The binding of each node to its revenue account: the chart's <see cref="AccountCode.NodeRevenue"/> account of the
/// node's principal id (never a counter, so never renumbered). At every start each admitted node's account is checked:
/// created if missing (idempotently), and the start refused, in one line, when an account of that id exists with
/// another shape (asset, code or flags).
/// </summary>
public static class NodeRevenueBindings
{
    /// <summary>Checks (and creates where missing) every admitted node's revenue account; answers how many were checked.</summary>
    /// <exception cref="ServerStartException">A node's principal is missing or not a node, or its account has another shape.</exception>
    public static async Task<int> EnsureAsync(TrustStore store, PrincipalLedger accounts, CancellationToken ct)
    {
        IReadOnlyList<NodeAdmission> admitted = store.Nodes();
        if (admitted.Count == 0) return 0;
        var expected = admitted.Select(a => ChartOfAccounts.NewAccount(AccountCode.NodeRevenue, InferencePayments.NodeRevenueAccount(a.Principal), ComputeGrid.Core.Asset.Usd)).ToArray();
        var found = (await accounts.Ledger.LookupAccountsAsync(expected.Select(a => a.Id).ToArray(), ct)).ToDictionary(a => a.Id);
        for (int i = 0; i < admitted.Count; i++)
        {
            NodeAdmission node = admitted[i];
            Account want = expected[i];
            if (store.Find(node.Principal) is not { Kind: PrincipalKind.Node } principal)
                throw new ServerStartException($"Node {node.NodeId}: its principal {node.Principal} is missing from the trust store or is not a node.");
            if (found.TryGetValue(want.Id, out Account have))
            {
                if (have.Asset != want.Asset || have.Code != want.Code || (have.Flags & ~AccountFlags.Linked) != (want.Flags & ~AccountFlags.Linked))
                    throw new ServerStartException($"Node {node.NodeId}: ledger account {want.Id} (its revenue account) has asset {have.Asset}, code {have.Code}, flags {have.Flags}; the chart says asset {want.Asset}, code {want.Code}, flags {want.Flags}.");
            }
            else await accounts.CreateAccountsAsync(principal, ct);
        }
        return admitted.Count;
    }
}

/// <summary>The completion of captures a crash cut off, as a start runs it.</summary>
public static class CaptureRecovery
{
    /// <summary>Completes the captures of holds a crash left (see <see cref="CaptureSettler.RecoverAsync"/>); idempotent.</summary>
    public static Task<RecoveryCounts> RunAsync(InferenceGateway gateway, TrustStore store, CancellationToken ct) =>
        gateway.Settler.RecoverAsync(store.Nodes().ToDictionary(n => n.Principal, n => n.NodeId), gateway.Options.HoldTimeoutSeconds, ct);
}

/// <summary>The server's in-process nodes.</summary>
public sealed class LocalNodes(IReadOnlyList<(LocalNodeSpec Spec, LocalNodeChannel Channel)> all)
{
    public IReadOnlyList<(LocalNodeSpec Spec, LocalNodeChannel Channel)> All { get; } = all;
}
