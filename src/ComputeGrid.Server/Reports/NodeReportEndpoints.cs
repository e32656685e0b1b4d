using System.Security.Claims;
using ComputeGrid.Inference.Reports;
using ComputeGrid.Server.Trust;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;

namespace ComputeGrid.Server.Reports;

/// <summary>
/// Nodes' epoch reports. On the node port, with the node's session (<see cref="Policies.Node"/>): the epoch clock and
/// the node's chain head, the ledger's statement of an epoch, and the submission of a signed report. On the public port,
/// anonymous by design (DESIGN.md: node reports are public): a node's published chain with its public key.
/// </summary>
public static class NodeReportEndpoints
{
    /// <summary>Maps the endpoints.</summary>
    public static IEndpointRouteBuilder MapNodeReports(this IEndpointRouteBuilder app)
    {
        var node = app.MapGroup("/node/v1").WithTags("node protocol").WithMetadata(new NodePortOnlyAttribute()).RequireAuthorization(Policies.Node);
        node.MapGet("/epochs", Clock).WithSummary("The server's epochs and the head of this node's report chain.");
        node.MapGet("/epochs/{epoch}", StatementAsync).WithSummary("The ledger's statement of one epoch for this node: paid requests, tokens, revenue, shares.");
        node.MapPost("/epoch-reports", SubmitAsync).WithSummary("A signed, hash-chained epoch report; refused (and flagged) when a check fails.");
        app.MapGet("/api/nodes/{id}/reports", Published).AllowAnonymous().WithTags("inference")
            .WithSummary("A node's accepted report chain, its totals, its flagged submissions and its public key (public: anyone may verify).");
        return app;
    }

    private static Results<Ok<EpochClock>, ProblemHttpResult> Clock(ClaimsPrincipal user, NodeSessions sessions, NodeReports reports) =>
        Caller(user, sessions) is { } node ? TypedResults.Ok(reports.Clock(node.Principal)) : Problems.NotFound("The node has not registered.");

    private static async Task<Results<Ok<EpochStatement>, ProblemHttpResult>> StatementAsync(long epoch, ClaimsPrincipal user, NodeSessions sessions, NodeReports reports,
        CancellationToken ct)
    {
        if (Caller(user, sessions) is not { } node) return Problems.NotFound("The node has not registered.");
        if (epoch < 0 || epoch > reports.CurrentEpoch) return Problems.BadRequest($"'epoch' must be 0 to the current epoch {reports.CurrentEpoch}.");
        return TypedResults.Ok(await reports.StatementAsync(node.Principal, epoch, ct));
    }

    private static async Task<Results<Ok<EpochReportReceipt>, ProblemHttpResult>> SubmitAsync(EpochReport report, ClaimsPrincipal user, NodeSessions sessions,
        NodeReports reports, CancellationToken ct)
    {
        if (Caller(user, sessions) is not { } node) return Problems.NotFound("The node has not registered.");
        // Decided and stored whatever the client does meanwhile: a half-decided report would be neither accepted nor flagged.
        ReportFailure? failure = await reports.SubmitAsync(node, report, CancellationToken.None);
        if (failure is not { } f) return TypedResults.Ok(new EpochReportReceipt(report.Epoch, report.Hash, true));
        var extensions = new Dictionary<string, object?> { ["check"] = f.CheckName, ["flagged"] = true };
        string detail = $"Report of epoch {report.Epoch} refused and flagged: {f.Reason}.";
        return f.Check switch
        {
            ReportCheck.Identity => Problems.Forbidden(detail, extensions),
            ReportCheck.Chain => Problems.Conflict(detail, extensions),
            ReportCheck.Signature => TypedResults.Problem(detail, statusCode: StatusCodes.Status401Unauthorized, title: "Unauthorized",
                type: "https://computegrid.dev/problems/unauthorized", extensions: extensions),
            _ => Problems.Unprocessable(detail, extensions),
        };
    }

    private static Results<Ok<NodeReportsDocument>, ProblemHttpResult> Published(string id, TrustStore trust, NodeReports reports) =>
        trust.FindNode(id) is { } node ? TypedResults.Ok(reports.Document(node)) : Problems.NotFound($"No admitted node '{id}'.");

    private static NodeAdmission? Caller(ClaimsPrincipal user, NodeSessions sessions) => sessions.Current(user.RequireCaller().Principal.Name)?.Admission;
}
