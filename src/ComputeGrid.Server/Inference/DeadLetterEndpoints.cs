using ComputeGrid.Core;
using ComputeGrid.Server.Trust;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;

namespace ComputeGrid.Server.Inference;

/// <summary>A refused capture, as operators see it (amounts in micro-USD).</summary>
public sealed record DeadLetterView(long Id, ApiTime At, ulong Customer, string RequestKey, UInt128 HoldId, int Generation, string Node,
    long CostMicroUsd, long FeeMicroUsd, string Reason)
{
    public static DeadLetterView From(DeadLetter d) =>
        new(d.Id, ApiTime.Of(d.At), d.Customer, d.RequestKey, d.HoldId, d.Generation, d.Node, d.CostMicroUsd, d.FeeMicroUsd, d.Reason);
}

/// <summary>A page of dead letters, oldest first; <c>next</c> is the <c>after</c> of the next page (null at the end); <c>total</c> counts all.</summary>
public sealed record DeadLetterPage(IReadOnlyList<DeadLetterView> DeadLetters, long? Next, long Total);

/// <summary>The operators' view of paid inference's dead letters (<c>GET /api/operator/dead-letters</c>).</summary>
public static class DeadLetterEndpoints
{
    public static IEndpointRouteBuilder MapDeadLetters(this IEndpointRouteBuilder app)
    {
        app.MapGet("/api/operator/dead-letters", Results<Ok<DeadLetterPage>, ProblemHttpResult> (long? after, int? limit, InferenceHost host, ServerLimits limits) =>
            {
                if (after < 0) return Problems.BadRequest("'after' must be a dead letter id, 0 or more.");
                if (limit is < 1) return Problems.BadRequest($"'limit' must be 1 to {limits.PageMax}.");
                int n = Math.Min(limit ?? 100, limits.PageMax);
                DeadLetters letters = host.Gateway.DeadLetters;
                var page = letters.List(after ?? 0, n + 1);
                return TypedResults.Ok(new DeadLetterPage(page.Take(n).Select(DeadLetterView.From).ToArray(), page.Count > n ? page[n - 1].Id : null, letters.Count));
            })
            .RequireAuthorization(Policies.OperatorRead).WithTags("operators")
            .WithSummary("Charges the ledger refused (paid requests run but not charged: answered, the platform's loss; or on failover answered 503), oldest first; also counted in /metrics.");
        return app;
    }
}
