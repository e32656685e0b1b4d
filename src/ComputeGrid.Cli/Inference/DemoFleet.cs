using System.Diagnostics;
using System.Reflection;

namespace ComputeGrid.Cli.Inference;

/// <summary>
/// The demo fleet of <c>serve --demo</c>: one <c>computegrid node</c> child process per region, each running the real
/// model and connecting to the server's node endpoint over HTTP/2. The distance between a request's region and a node's
/// is applied by the node as a delay from the latency data (<c>--simulate-distance</c>) — the one simulated part.
/// </summary>
internal sealed class DemoFleet : IAsyncDisposable
{
    /// <summary>The demo's nodes: id, region, price (micro-USD per 1,000 tokens), capacity (the cast is <see cref="Demo.DemoWorld"/>'s).</summary>
    public static readonly (string Id, string Region, long Price, int Capacity)[] Nodes =
        [.. Demo.DemoWorld.Nodes.Select(n => (n.Id, n.Region, n.Price, n.Capacity))];

    private readonly List<Process> _children = [];

    /// <summary>The provider the demo's nodes belong to.</summary>
    public const string Provider = Demo.DemoWorld.Provider;

    /// <summary>The most a demo node may charge, micro-USD per 1,000 tokens.</summary>
    public const long PriceCeiling = Demo.DemoWorld.PriceCeiling;

    /// <summary>
    /// Admits the demo's nodes, as an operator would: a provider, and for each node its key (made in <c>DATA/nodes/</c>
    /// if missing) with a price ceiling. Nothing is done twice on a later start.
    /// </summary>
    public static async Task AdmitAsync(ComputeGrid.Server.Trust.TrustStore store, ComputeGrid.Server.Trust.PrincipalLedger accounts,
        ComputeGrid.Exchange.Pipeline.ExchangeHost exchange, string dataDirectory, CancellationToken ct)
    {
        ulong by = store.List(ComputeGrid.Server.Trust.PrincipalKind.Operator, 0, 1)[0].Id;
        var provider = store.Find(ComputeGrid.Server.Trust.PrincipalKind.Provider, Provider)
            ?? store.CreatePrincipal(ComputeGrid.Server.Trust.PrincipalKind.Provider, Provider, by);
        await accounts.CreateAccountsAsync(provider, ct);
        await ComputeGrid.Server.Exchange.ExchangeCalls.RegisterProviderAsync(exchange, (long)provider.Id);
        string keys = Path.Combine(dataDirectory, "nodes");
        Directory.CreateDirectory(keys);
        foreach (var (id, _, _, _) in Nodes)
        {
            var (_, publicKey, _, _) = ComputeGrid.Inference.Nodes.NodeAgent.LoadOrCreateKey(Path.Combine(keys, id + ".key"));
            var admission = store.FindNode(id) ?? store.AdmitNode(provider.Id, id, publicKey, PriceCeiling, by);
            if (!admission.PublicKey.AsSpan().SequenceEqual(publicKey))
                throw new InvalidOperationException($"demo node {id} was admitted with another key than {Path.Combine(keys, id + ".key")} holds; start with a new --data-dir");
            await accounts.CreateAccountsAsync(store.Find(admission.Principal)!, ct);
        }
    }

    /// <summary>Starts the nodes against <paramref name="serverNodeUrl"/>; their keys live in <c>DATA/nodes/</c>.</summary>
    public static DemoFleet Start(string serverNodeUrl, string dataDirectory, TextWriter log)
    {
        var fleet = new DemoFleet();
        string keys = Path.Combine(dataDirectory, "nodes");
        Directory.CreateDirectory(keys);
        foreach (var (id, region, price, capacity) in Nodes)
        {
            var psi = SelfStartInfo();
            foreach (string a in new[]
            {
                "node", "--server", serverNodeUrl, "--id", id, "--region", region, "--price", price.ToString(System.Globalization.CultureInfo.InvariantCulture),
                "--capacity", capacity.ToString(System.Globalization.CultureInfo.InvariantCulture), "--simulate-distance", "--threads", "1",
                "--key-file", Path.Combine(keys, id + ".key"),
            }) psi.ArgumentList.Add(a);
            psi.RedirectStandardOutput = true;
            psi.RedirectStandardError = true;
            var p = Process.Start(psi)!;
            string prefix = $"[node {id}] ";
            p.OutputDataReceived += (_, e) => { if (e.Data is { Length: > 0 }) log.WriteLine(prefix + e.Data); };
            p.ErrorDataReceived += (_, e) => { if (e.Data is { Length: > 0 }) log.WriteLine(prefix + e.Data); };
            p.BeginOutputReadLine();
            p.BeginErrorReadLine();
            fleet._children.Add(p);
        }
        return fleet;
    }

    /// <summary>The node processes (tests kill one to check failover).</summary>
    public IReadOnlyList<Process> Children => _children;

    // This program again: `dotnet computegrid.dll …` when run through the dotnet host, else the apphost itself.
    internal static ProcessStartInfo SelfStartInfo()
    {
        string? processPath = Environment.ProcessPath;
        string dll = Path.Combine(AppContext.BaseDirectory, "computegrid.dll");
        if (processPath is not null && Path.GetFileNameWithoutExtension(processPath) == "dotnet")
        {
            var psi = new ProcessStartInfo(processPath) { UseShellExecute = false };
            psi.ArgumentList.Add(dll);
            return psi;
        }
        return new ProcessStartInfo(processPath ?? Assembly.GetEntryAssembly()!.Location) { UseShellExecute = false };
    }

    public async ValueTask DisposeAsync()
    {
        foreach (Process p in _children)
        {
            try { if (!p.HasExited) Process.Start("kill", ["-TERM", p.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])?.WaitForExit(); }
            catch (Exception e) when (e is InvalidOperationException or System.ComponentModel.Win32Exception) { }
        }
        foreach (Process p in _children)
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            try { await p.WaitForExitAsync(cts.Token); }
            catch (OperationCanceledException) { p.Kill(entireProcessTree: true); }
            p.Dispose();
        }
    }
}
