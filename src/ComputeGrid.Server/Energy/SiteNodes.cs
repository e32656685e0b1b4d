using ComputeGrid.Energy.Sites;
using ComputeGrid.Exchange.Pipeline;
using ComputeGrid.Exchange.StateMachine;
using ComputeGrid.Exchange.Trading;
using ComputeGrid.Inference.Routing;
using ComputeGrid.Server.Trust;

namespace ComputeGrid.Server.Energy;

/// <summary>What a site measured of one of its nodes at one moment.</summary>
/// <param name="LeasedGpus">GPUs of the node in leases being delivered now (0 … the node's GPUs).</param>
/// <param name="Utilization">The node's inference utilization, 0 … 1: requests running ÷ its capacity.</param>
/// <param name="Measured">False when the node could not be measured (the exchange was unavailable): it then counts at full power.</param>
/// <param name="LeasedNextHourGpus">GPUs of the node in leases sold for the next whole hour (<paramref name="NextHour"/>): the
/// firm load the exchange already knows is coming. Shown, not planned with: a site replaying its prices faster than real
/// time has no interval that is that hour.</param>
/// <param name="NextHour">The start of the next whole UTC hour on the exchange's clock; null when not measured.</param>
public readonly record struct NodeLoadSample(int LeasedGpus, double Utilization, bool Measured = true, int LeasedNextHourGpus = 0, DateTimeOffset? NextHour = null);

/// <summary>
/// The nodes a live site lists, as the rest of the system knows them: their measured load (for the site's firm GPU load)
/// and where the site's power state goes (for the router). The server's implementation is <see cref="ServerSiteNodes"/>.
/// </summary>
public interface ISiteNodes
{
    /// <summary>Measures the nodes now, one sample per node, in order.</summary>
    ValueTask<NodeLoadSample[]> MeasureAsync(IReadOnlyList<SiteNodeConfig> nodes, CancellationToken cancellationToken);

    /// <summary>Publishes a node's power state to the router.</summary>
    void PublishPower(string nodeId, in NodePowerState state);
}

/// <summary>
/// The server's view of a site's nodes: leases in delivery from the exchange (by the node's admitted principal, which is
/// its id on the exchange), inference utilization from the router's registry, and the power state published into that
/// registry.
/// </summary>
/// <param name="exchange">The exchange (leases).</param>
/// <param name="trust">The trust store (a node id's principal).</param>
/// <param name="registry">The inference nodes (utilization; the power state goes here).</param>
/// <param name="time">The clock leases are delivered on (the server's).</param>
public sealed class ServerSiteNodes(ExchangeHost exchange, TrustStore trust, NodeRegistry registry, TimeProvider time) : ISiteNodes
{
    private const long NsPerHour = 3_600_000_000_000L;

    /// <inheritdoc />
    public async ValueTask<NodeLoadSample[]> MeasureAsync(IReadOnlyList<SiteNodeConfig> nodes, CancellationToken cancellationToken)
    {
        long now = checked(time.GetUtcNow().ToUnixTimeMilliseconds() * 1_000_000L); // the exchange's Unix ns
        long next = checked(now - now % NsPerHour + NsPerHour);
        long[] exchangeIds = [.. nodes.Select(n => trust.FindNode(n.Id) is { Revoked: null } a ? (long)a.Principal : 0L)];
        Dictionary<long, int>? leased = null, leasedNext = null;
        if (exchangeIds.Any(id => id != 0))
        {
            try { (leased, leasedNext) = await exchange.ReadAsync(sm => LeasedAt(sm, now, next), cancellationToken); }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                leased = null; // a stopped exchange: the nodes count at full power below, so the interconnect still holds
            }
        }
        DateTimeOffset nextHour = DateTimeOffset.FromUnixTimeMilliseconds(next / 1_000_000);
        var samples = new NodeLoadSample[nodes.Count];
        for (int i = 0; i < samples.Length; i++)
        {
            SiteNodeConfig node = nodes[i];
            double utilization = 0;
            if (registry.TryGetNode(node.Id, out NodeSnapshot? s) && s.Healthy)
                utilization = Math.Min(1.0, Math.Max(s.Inflight, s.ReportedInflight) / (double)s.Capacity);
            bool measured = exchangeIds[i] == 0 || leased is not null;
            int gpus = measured ? Math.Min(node.Gpus, leased?.GetValueOrDefault(exchangeIds[i]) ?? 0) : node.Gpus;
            int nextGpus = Math.Min(node.Gpus, leasedNext?.GetValueOrDefault(exchangeIds[i]) ?? 0);
            samples[i] = new NodeLoadSample(gpus, utilization, measured, nextGpus, measured ? nextHour : null);
        }
        return samples;
    }

    // GPUs per exchange node in leases being delivered at `now`. A lease resold from another (Parent set) runs on its
    // parent's GPUs, so only original leases count.
    internal static Dictionary<long, int> LeasedNow(ExchangeStateMachine sm, long now) => LeasedAt(sm, now, now).Now;

    // The same at two moments in one walk of the leases: now, and `next` (the next hour's start).
    internal static (Dictionary<long, int> Now, Dictionary<long, int> Next) LeasedAt(ExchangeStateMachine sm, long now, long next)
    {
        var leased = new Dictionary<long, int>();
        var leasedNext = new Dictionary<long, int>();
        foreach (LeaseView l in sm.Leases())
        {
            if (l.Status != LeaseStatus.Active || l.Parent is not null) continue;
            bool atNow = l.Start <= now && now < l.End, atNext = l.Start <= next && next < l.End;
            if (!atNow && !atNext) continue;
            foreach ((long node, int gpus) in l.Nodes)
            {
                if (atNow) leased[node] = leased.GetValueOrDefault(node) + gpus;
                if (atNext) leasedNext[node] = leasedNext.GetValueOrDefault(node) + gpus;
            }
        }
        return (leased, leasedNext);
    }

    /// <inheritdoc />
    public void PublishPower(string nodeId, in NodePowerState state) => registry.PublishPower(nodeId, in state);
}
