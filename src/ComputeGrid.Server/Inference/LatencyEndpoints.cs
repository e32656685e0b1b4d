using ComputeGrid.Inference.Routing;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;

namespace ComputeGrid.Server.Inference;

/// <summary>One region of the latency data: its id (as nodes and customers name it) and its name in the source.</summary>
public sealed record LatencyRegion(string Id, string Name);

/// <summary>
/// The inter-region round-trip times the router scores nodes with (<see cref="LatencyMatrix"/>): <c>rtt_us[from][to]</c>
/// in whole microseconds, symmetric, <see cref="LatencyMatrix.IntraRegionRttMicros"/> on the diagonal.
/// </summary>
public sealed record LatencyView(IReadOnlyList<LatencyRegion> Regions, DateOnly? Snapshot, IReadOnlyList<int[]> RttUs);

/// <summary>
/// <c>GET /api/inference/latency</c>: the router's latency data, public like the routing table (it is public data, and
/// the console draws its region matrix from it rather than from a copy of its own).
/// </summary>
public static class LatencyEndpoints
{
    /// <summary>Maps the endpoint.</summary>
    public static IEndpointRouteBuilder MapLatency(this IEndpointRouteBuilder app)
    {
        app.MapGet("/api/inference/latency", (InferenceHost host) => TypedResults.Ok(View(host.Latency)))
            .AllowAnonymous().WithTags("inference").WithSummary("The inter-region round-trip times the router uses (µs), with the regions' ids and names.");
        return app;
    }

    /// <summary>The matrix as the API shows it.</summary>
    public static LatencyView View(LatencyMatrix m) =>
        new([.. m.Regions.Select((id, i) => new LatencyRegion(id, m.RegionNames[i]))], m.Snapshot,
            [.. Enumerable.Range(0, m.Count).Select(i => m.RowMicros(i).ToArray())]);
}
