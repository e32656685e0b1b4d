using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace ComputeGrid.Server.Energy;

/// <summary>
/// <c>/api/energy/…</c>: each live site's current power split, prices, miner states and running economics.
/// </summary>
public static class EnergyEndpoints
{
    public static IEndpointRouteBuilder MapEnergy(this IEndpointRouteBuilder app)
    {
        app.MapGet("/api/energy/sites", (LiveSites sites) => Results.Ok(sites.All.Select(s => s.State).ToArray()));
        app.MapGet("/api/energy/sites/{name}", (string name, LiveSites sites) =>
            sites.Find(name) is { } site ? (IResult)Results.Ok(site.State) : Problems.NotFound($"No live site '{name}' (there are: {string.Join(", ", sites.All.Select(s => s.Name))})."));
        app.MapGet("/api/energy/sites/{name}/miners", (string name, LiveSites sites) =>
            sites.Find(name) is { } site
                ? (IResult)Results.Ok(site.Driver.GetStatuses().Select(m => new
                {
                    index = m.Index,
                    endpoint = m.Endpoint.ToString(),
                    group = m.Endpoint.Group,
                    dialect = m.Endpoint.Dialect.ToString(),
                    state = m.State.ToString(),
                    intent = m.Intent.ToString(),
                    hashrate_ths = Math.Round(m.HashrateThs, 1),
                    power_w = m.PowerWatts,
                    temperature_c = m.TemperatureC,
                    down_reason = m.DownReason,
                }).ToArray())
                : Problems.NotFound($"No live site '{name}'."));
        return app;
    }
}
