using ComputeGrid.Exchange.Pipeline;
using ComputeGrid.Ledger;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;

namespace ComputeGrid.Server.Observability;

/// <summary>
/// The probes, public (no credential): <c>GET /health/live</c> answers 200 while the process serves HTTP at all;
/// <c>GET /health/ready</c> answers 200 once every part has recovered (<see cref="Readiness"/>) and the ledger and the
/// exchange take writes, else 503 problem+json whose <c>not_ready</c> lists the parts, each with why.
/// </summary>
public static class HealthEndpoints
{
    /// <summary>Maps the probes.</summary>
    public static void MapHealth(IEndpointRouteBuilder app)
    {
        RouteGroupBuilder health = app.MapGroup("/health").AllowAnonymous().WithTags("health");
        health.MapGet("/live", () => TypedResults.Ok(new HealthView("live")))
            .WithSummary("200 while the process runs (liveness).");
        health.MapGet("/ready", Ready)
            .WithSummary("200 once the ledger, trust store, share book, exchange, paid inference and x402 intents have recovered; 503 problem+json naming what is not ready.");
    }

    private static Results<Ok<ReadyView>, ProblemHttpResult> Ready(Readiness readiness, LedgerEngine ledger, ExchangeHost exchange)
    {
        var notReady = new List<NotReadyPart>();
        foreach (string part in readiness.Pending) notReady.Add(new NotReadyPart(part, "recovering"));
        // After recovery, a fail-stop (the first write error) takes the server out of rotation until a restart.
        if (ledger.Fault is { } lf) notReady.Add(new NotReadyPart("ledger", "stopped after a storage failure: " + lf.Message));
        if (exchange.Fault is { } xf) notReady.Add(new NotReadyPart("exchange", "stopped after a write failure: " + xf.Message));
        if (notReady.Count == 0) return TypedResults.Ok(new ReadyView("ready", readiness.Parts));
        return TypedResults.Problem(
            "Not ready: " + string.Join(", ", notReady.Select(p => $"{p.Part} ({p.Reason})")),
            statusCode: StatusCodes.Status503ServiceUnavailable, title: "Not ready", type: "https://computegrid.dev/problems/not-ready",
            extensions: new Dictionary<string, object?> { ["not_ready"] = notReady });
    }
}

/// <summary>The readiness answer.</summary>
/// <param name="Status"><c>ready</c>.</param>
/// <param name="Parts">The parts that recovered, in order.</param>
public sealed record ReadyView(string Status, IReadOnlyList<string> Parts);

/// <summary>A part of the server that is not ready.</summary>
/// <param name="Part">Its name: ledger, trust, shares, exchange, inference, x402.</param>
/// <param name="Reason">Why: <c>recovering</c>, or the failure that stopped it.</param>
public sealed record NotReadyPart(string Part, string Reason);
