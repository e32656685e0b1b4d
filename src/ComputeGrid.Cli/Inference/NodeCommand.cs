using System.CommandLine;
using System.Runtime.InteropServices;
using ComputeGrid.Inference.Nodes;
using ComputeGrid.Inference.Routing;

namespace ComputeGrid.Cli.Inference;

/// <summary>
/// <c>computegrid node --server URL --region REGION --price MICRO_USD_PER_1K --capacity N …</c>: an inference node as
/// its own process. It loads the model, registers with the server's node endpoint (HTTP/2), takes work from its work
/// stream and sends signed telemetry until SIGTERM or Ctrl-C, then finishes the work in hand and exits 0. State
/// changes are logged to stderr; stdout gets one line once the node is registered.
/// </summary>
internal static class NodeCommand
{
    public static Command Create()
    {
        var server = new Option<string>("--server") { Description = "The server's node endpoint (HTTP/2), e.g. http://127.0.0.1:5081.", Required = true };
        var region = new Option<string>("--region") { Description = "The node's region, e.g. frankfurt or washington-dc (a region of the latency data).", Required = true };
        var price = new Option<long>("--price") { Description = "Price in micro-USD per 1,000 tokens (20 = 0.02 USD per million tokens).", Required = true };
        var capacity = new Option<int>("--capacity") { Description = "The most requests the node works on at once.", Required = true };
        var id = new Option<string?>("--id") { Description = "The node's id (letters, digits, '-', '_'); default: the region and a hash of the node's public key." };
        var keyFile = new Option<string?>("--key-file") { Description = "The node's Ed25519 private key (raw 32 bytes), created (mode 0600) if missing; default: a new key for this run." };
        var simulate = new Option<bool>("--simulate-distance") { Description = "Delay each request by the RTT between its region and the node's (from the latency data), reported as network time." };
        var threads = new Option<int?>("--threads") { Description = "ONNX Runtime intra-op threads per model call (default: 1 per worker, more on machines with over 8 cores)." };
        var workers = new Option<int?>("--workers") { Description = "Batches run at once, each on its own thread (default: one per processor up to 8 when --threads is not given, else 1)." };
        var gpus = new Option<int>("--gpus") { Description = "The node's GPUs, for revenue per GPU-hour in its signed epoch reports (a CPU node counts as one).", DefaultValueFactory = _ => 1 };
        var command = new Command("node", "Run an inference node: register with a server, take embedding work over HTTP/2, send signed telemetry and a signed report per epoch.")
        {
            server, region, price, capacity, id, keyFile, simulate, threads, workers, gpus,
        };
        command.SetAction((pr, ct) => RunAsync(
            pr.GetValue(server)!, pr.GetValue(region)!, pr.GetValue(price), pr.GetValue(capacity), pr.GetValue(id), pr.GetValue(keyFile),
            pr.GetValue(simulate), pr.GetValue(threads), pr.GetValue(workers), pr.GetValue(gpus), ct));
        return command;
    }

    private static async Task<int> RunAsync(string serverText, string regionText, long price, int capacity, string? id, string? keyFile,
        bool simulate, int? threads, int? workers, int gpus, CancellationToken ct)
    {
        if (!Uri.TryCreate(serverText, UriKind.Absolute, out Uri? server) || (server.Scheme != Uri.UriSchemeHttp && server.Scheme != Uri.UriSchemeHttps)
            || string.IsNullOrEmpty(server.Host))
            return CliDefaults.Fail($"--server '{serverText}' is not an http:// or https:// URL");
        if (price < 0) return CliDefaults.Fail("--price must not be negative");
        if (capacity < 1) return CliDefaults.Fail("--capacity must be at least 1");
        if (threads is < 1) return CliDefaults.Fail("--threads must be at least 1");
        if (workers is < 1) return CliDefaults.Fail("--workers must be at least 1");
        if (gpus is < 1 or > ComputeGrid.Inference.Reports.EpochReportLimits.GpusMax) return CliDefaults.Fail($"--gpus must be 1 to {ComputeGrid.Inference.Reports.EpochReportLimits.GpusMax}");
        if (id is not null && !NodeAgentOptions.IsValidNodeId(id)) return CliDefaults.Fail($"--id '{id}' must be 1-64 letters, digits, '-' or '_'");
        LatencyMatrix latency;
        try { latency = LatencyMatrix.LoadDefault(); }
        catch (Exception e) when (e is IOException or InvalidDataException) { return CliDefaults.Fail($"cannot load the region data: {e.Message}"); }
        if (!latency.TryGetRegion(regionText, out _))
            return CliDefaults.Fail($"unknown region '{regionText}'; the regions are: {string.Join(", ", latency.Regions)}");

        var options = new NodeAgentOptions
        {
            Server = server,
            NodeId = id,
            Region = regionText,
            PriceMicroUsdPer1kTokens = price,
            Capacity = capacity,
            KeyFile = keyFile,
            SimulateDistance = simulate,
            IntraOpThreads = threads,
            Workers = workers,
            Gpus = gpus,
        };

        // Program invokes commands with ProcessTerminationTimeout = null, so the signals are handled here: the first
        // SIGTERM or Ctrl-C stops the node gracefully; a second one ends the process at once.
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        void OnSignal(PosixSignalContext context)
        {
            if (stop.IsCancellationRequested) return; // the default action: terminate
            context.Cancel = true;
            stop.Cancel();
        }
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);

        NodeAgent agent;
        try { agent = new NodeAgent(options, Console.Error, model: null, latency); }
        catch (Exception e) when (e is ArgumentException or IOException or InvalidDataException or UnauthorizedAccessException)
        {
            return CliDefaults.Fail(e.Message);
        }
        await using (agent)
        {
            Task run = agent.RunAsync(stop.Token);
            // As the server does: the runtime's JIT and background GC yield at once to the node's connection threads.
            _ = ComputeGrid.Core.RuntimeBackgroundThreads.RunAsync(TimeSpan.FromSeconds(1), TimeProvider.System, stop.Token);
            _ = agent.Registered.ContinueWith(t =>
            {
                if (t.IsCompletedSuccessfully)
                {
                    Console.Out.WriteLine($"node {agent.NodeId} registered at {server} in {agent.Region}, price {price} micro-USD per 1k tokens, capacity {capacity}"
                        + (agent.RevenueAccount is { } account ? $", revenue account {account}" : ""));
                    Console.Out.Flush();
                }
            }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
            try
            {
                await run;
            }
            catch (NodeRegistrationException e)
            {
                return CliDefaults.Fail(e.Message);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidOperationException)
            {
                Console.Error.WriteLine("error: " + e.Message.ReplaceLineEndings(" "));
                return 1;
            }
        }
        return 0;
    }
}
