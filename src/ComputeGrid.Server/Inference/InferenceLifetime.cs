using System.Security.Cryptography;
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

/// <summary>Creates the inference system accounts, registers and heartbeats the local nodes, and sets up the demo customer.</summary>
internal sealed class InferenceLifetime(InferenceHost host, InferenceServerOptions options, ServerOptions server, LocalNodes nodes, ILogger<InferenceLifetime> log) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await host.Payments.EnsureSystemAccountsAsync(stoppingToken);
        foreach (var (spec, channel) in nodes.All)
        {
            await host.Gateway.AddNodeAsync(new NodeRegistration(spec.Id, spec.Region, [host.Gateway.Models.Models[0].Id], spec.PriceMicroUsdPer1kTokens, spec.Capacity,
                RandomNumberGenerator.GetBytes(32)), channel, stoppingToken);
            host.Gateway.Registry.Heartbeat(spec.Id, new NodeHeartbeat(0, 0, 10));
        }
        if (nodes.All.Count > 0)
            log.LogInformation("Inference: {Count} local nodes in {Regions}", nodes.All.Count, string.Join(", ", nodes.All.Select(n => n.Spec.Region).Distinct()));
        if (options.DemoCustomerFundingMicroUsd > 0) await CreateDemoCustomerAsync(stoppingToken);

        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1), server.Time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
                foreach (var (spec, channel) in nodes.All)
                    if (!channel.Broken) host.Gateway.Registry.Heartbeat(spec.Id, new NodeHeartbeat(0, 0, 10));
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested) { }
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        // Every answered request's charge reaches the ledger before the ledger closes.
        await host.Gateway.Settler.DisposeAsync();
    }

    private async Task CreateDemoCustomerAsync(CancellationToken ct)
    {
        string path = Path.Combine(server.DataDirectory, "demo-api-key.txt");
        string region = nodes.All.Count > 0 ? nodes.All[0].Spec.Region : host.Latency.Regions[0];
        (Customer customer, string key) = host.Keys.Create("demo", region, host.Time.GetUtcNow());
        await host.Payments.CreateCustomerAccountAsync(customer.Id, ct);
        await host.Payments.FundAsync(customer.Id, options.DemoCustomerFundingMicroUsd, InferencePayments.HoldId(customer.Id, "fund:demo"), ct);
        await File.WriteAllTextAsync(path, key + "\n", ct);
        Console.Out.WriteLine($"demo customer {customer.Id} ({region}) funded with {options.DemoCustomerFundingMicroUsd / 1_000_000.0:0.00} USDC; API key: {key} (also in {path})");
    }
}

/// <summary>The server's in-process nodes.</summary>
public sealed class LocalNodes(IReadOnlyList<(LocalNodeSpec Spec, LocalNodeChannel Channel)> all)
{
    public IReadOnlyList<(LocalNodeSpec Spec, LocalNodeChannel Channel)> All { get; } = all;
}
