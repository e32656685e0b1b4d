using ComputeGrid.Server.Trust;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;

namespace ComputeGrid.Server.Energy;

/// <summary>
/// <c>/api/energy/…</c>: each live site's current power split, prices, miner states and running economics, for
/// operators and providers (read scope).
/// </summary>
public static class EnergyEndpoints
{
    /// <summary>Maps the energy endpoints.</summary>
    public static IEndpointRouteBuilder MapEnergy(this IEndpointRouteBuilder app)
    {
        var g = app.MapGroup("/api/energy").WithTags("energy").RequireAuthorization(Policies.OperatorOrProviderRead);
        g.MapGet("/sites", (LiveSites sites) => TypedResults.Ok(sites.All.Select(s => s.State).ToArray())).WithSummary("Every live site's state.");
        g.MapGet("/sites/{name}", Results<Ok<LiveSiteState>, ProblemHttpResult> (string name, LiveSites sites) =>
            sites.Find(name) is { } site ? TypedResults.Ok(site.State) : Problems.NotFound($"No live site '{name}' (there are: {string.Join(", ", sites.All.Select(s => s.Name))}).")).WithSummary("One live site's state.");
        g.MapGet("/sites/{name}/miners", Results<Ok<MinerView[]>, ProblemHttpResult> (string name, LiveSites sites) =>
            sites.Find(name) is { } site
                ? TypedResults.Ok(site.Racks.ToArray())
                : Problems.NotFound($"No live site '{name}'.")).WithSummary("A live site's racks of miners: machines, machines running, power (kW), hash rate (TH/s), a machine's temperature (°C).");
        return app;
    }
}
