using System.Globalization;
using ComputeGrid.Energy.Bookkeeping;
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
        // The same read policy as the site's state: a site's P&L is its operator's and providers' business, not public.
        g.MapGet("/sites/{name}/pnl", ProfitAndLossAsync)
            .WithSummary("A live site's P&L read from the ledger (micro-USD) over the intervals starting in [from, to) (ISO 8601 UTC; default: the site's whole series).");
        g.MapGet("/sites/{name}/history", History)
            .WithSummary($"A live site's last decided intervals, oldest first: price known, GPU, miner and curtailed facility kW, 4CP and emergency flags, miners on, why miners were held off (limit 1 to {SiteHistory.PointsMax}, default {HistoryDefault}).");
        g.MapGet("/sites/{name}/events", Events)
            .WithSummary($"A live site's last curtailment events, newest first: when, why (price, peak_risk, emergency, ai_load, limits), kW held off (limit 1 to {SiteHistory.EventsMax}, default {EventsDefault}).");
        return app;
    }

    /// <summary>Intervals <c>/history</c> answers without a limit: three days of 15-minute intervals.</summary>
    public const int HistoryDefault = 288;

    /// <summary>Events <c>/events</c> answers without a limit.</summary>
    public const int EventsDefault = 100;

    private static Results<Ok<SiteHistoryView>, ProblemHttpResult> History(string name, int? limit, LiveSites sites)
    {
        if (sites.Find(name) is not { } site) return Problems.NotFound($"No live site '{name}'.");
        if (limit is < 1 or > SiteHistory.PointsMax) return Problems.BadRequest($"'limit' must be 1 to {SiteHistory.PointsMax}.");
        return TypedResults.Ok(new SiteHistoryView(site.Name, site.Site.Problem.IntervalMinutes, SiteHistory.PointsMax, site.History.Points(limit ?? HistoryDefault)));
    }

    private static Results<Ok<SiteEventsView>, ProblemHttpResult> Events(string name, int? limit, LiveSites sites)
    {
        if (sites.Find(name) is not { } site) return Problems.NotFound($"No live site '{name}'.");
        if (limit is < 1 or > SiteHistory.EventsMax) return Problems.BadRequest($"'limit' must be 1 to {SiteHistory.EventsMax}.");
        return TypedResults.Ok(new SiteEventsView(site.Name, SiteHistory.EventsMax, site.History.Events(limit ?? EventsDefault)));
    }

    private static async Task<Results<Ok<SiteProfitAndLoss>, ProblemHttpResult>> ProfitAndLossAsync(string name, string? from, string? to, LiveSites sites, CancellationToken ct)
    {
        if (sites.Find(name) is not { } site) return Problems.NotFound($"No live site '{name}'.");
        if (site.Books is not { } books) return Problems.NotFound($"Site '{name}' is not booked in the ledger.");
        ComputeGrid.Energy.Dispatch.SiteProblem p = site.Site.Problem;
        if (!TryUtc(from, p.StartUtc, out DateTime fromUtc)) return Problems.BadRequest($"'from' is not an ISO 8601 time: '{from}'.");
        if (!TryUtc(to, p.IntervalStartUtc(p.Count), out DateTime toUtc)) return Problems.BadRequest($"'to' is not an ISO 8601 time: '{to}'.");
        if (toUtc < fromUtc) return Problems.BadRequest($"'to' ({toUtc:O}) is before 'from' ({fromUtc:O}).");
        return TypedResults.Ok(await books.ProfitAndLossAsync(fromUtc, toUtc, ct));
    }

    // A time without an offset is read as UTC; none given: the default.
    private static bool TryUtc(string? text, DateTime fallback, out DateTime utc)
    {
        utc = fallback;
        if (string.IsNullOrEmpty(text)) return true;
        if (!DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out DateTimeOffset t)) return false;
        utc = t.UtcDateTime;
        return true;
    }
}
