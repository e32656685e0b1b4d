using ComputeGrid.Energy.Sites;
using ComputeGrid.Exchange.StateMachine;
using ComputeGrid.Exchange.Trading;
using ComputeGrid.Inference.Routing;
using ComputeGrid.Server.Energy;

namespace ComputeGrid.Server.WholeSystem;

/// <summary>
/// The site's view of its nodes in the simulation, as <see cref="ServerSiteNodes"/> gives it in the server: leases in
/// delivery from the exchange (the node's principal is its exchange id), inference utilization from the router's
/// registry, and the site's power state published into that registry for power-aware routing.
/// </summary>
internal sealed class SimSiteNodes(SimWorld world, IReadOnlyList<SimNode> nodes, TimeProvider clock) : ISiteNodes
{
    /// <inheritdoc />
    public async ValueTask<NodeLoadSample[]> MeasureAsync(IReadOnlyList<SiteNodeConfig> listed, CancellationToken cancellationToken)
    {
        long now = checked(clock.GetUtcNow().ToUnixTimeMilliseconds() * 1_000_000L);
        Dictionary<long, int>? leased;
        try { leased = await world.Exchange.ReadAsync(sm => ServerSiteNodes.LeasedNow(sm, now), cancellationToken); }
        catch (Exception e) when (e is not OperationCanceledException) { leased = null; } // a stopped exchange: full power
        var samples = new NodeLoadSample[listed.Count];
        for (int i = 0; i < samples.Length; i++)
        {
            SiteNodeConfig n = listed[i];
            long principal = nodes.First(x => x.Id == n.Id).Principal;
            double utilization = 0;
            if (world.Registry.TryGetNode(n.Id, out NodeSnapshot? s) && s.Healthy)
                utilization = Math.Min(1.0, Math.Max(s.Inflight, s.ReportedInflight) / (double)s.Capacity);
            samples[i] = leased is null ? new NodeLoadSample(n.Gpus, 1, Measured: false) : new NodeLoadSample(Math.Min(n.Gpus, leased.GetValueOrDefault(principal)), utilization);
        }
        return samples;
    }

    /// <inheritdoc />
    public void PublishPower(string nodeId, in NodePowerState state) => world.Registry.PublishPower(nodeId, in state);
}

/// <summary>The simulation's fixed prices (integers, micro-USD).</summary>
internal static class SimPrices
{
    /// <summary>A node's inference price per 1,000 tokens: 200 plus 25 per node index (so the router has choices).</summary>
    public static long NodePricePer1k(SimNode n) => 200 + 25 * (n.Principal % 8);

    /// <summary>The tick of H100 hourly books (micro-USD per GPU-hour).</summary>
    public const long H100Tick = 1_000;
}
