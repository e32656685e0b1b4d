using System.Diagnostics.Metrics;

namespace ComputeGrid.Inference.Routing;

/// <summary>
/// The router's instrument (meter <see cref="MeterName"/>): <c>computegrid.router.decisions</c>, routing decisions since
/// start by <c>sort</c> (balanced, latency, price, power) and <c>outcome</c> (routed, or why no node was found:
/// no_node_serves_model, no_healthy_node, filtered_by_preferences, all_busy) — 20 series at most. Observed from the
/// router's own counters when a reader collects, so <see cref="Router.Choose"/> stays allocation-free.
/// </summary>
public static class RouterMetrics
{
    /// <summary>The meter's name.</summary>
    public const string MeterName = "ComputeGrid.Inference";

    private static readonly (RouteSort Sort, string Name)[] Sorts =
        [(RouteSort.Balanced, "balanced"), (RouteSort.Latency, "latency"), (RouteSort.Price, "price"), (RouteSort.Power, "power")];

    private static readonly (RouteStatus Status, string Name)[] Outcomes =
    [
        (RouteStatus.Routed, "routed"), (RouteStatus.NoNodeServesModel, "no_node_serves_model"), (RouteStatus.NoHealthyNode, "no_healthy_node"),
        (RouteStatus.FilteredByPreferences, "filtered_by_preferences"), (RouteStatus.AllBusy, "all_busy"),
    ];

    /// <summary>Makes the instruments of <paramref name="router"/> on a meter of <paramref name="factory"/>.</summary>
    public static Meter Register(IMeterFactory factory, Router router)
    {
        ArgumentNullException.ThrowIfNull(factory);
        ArgumentNullException.ThrowIfNull(router);
        Meter meter = factory.Create(MeterName);
        meter.CreateObservableCounter("computegrid.router.decisions", () => Decisions(router), "{decision}",
            "Routing decisions since start, by the request's sort and the outcome.");
        return meter;
    }

    private static IEnumerable<Measurement<long>> Decisions(Router router)
    {
        foreach (var (sort, sortName) in Sorts)
            foreach (var (status, outcome) in Outcomes)
                yield return new Measurement<long>(router.Decisions(sort, status),
                    new KeyValuePair<string, object?>("sort", sortName), new KeyValuePair<string, object?>("outcome", outcome));
    }
}
