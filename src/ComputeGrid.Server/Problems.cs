using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;

namespace ComputeGrid.Server;

/// <summary>RFC 7807 problem+json answers with a stable type URI per kind of error.</summary>
public static class Problems
{
    public static ProblemHttpResult BadRequest(string detail, string title = "Bad request", IDictionary<string, object?>? extensions = null) =>
        TypedResults.Problem(detail, statusCode: StatusCodes.Status400BadRequest, title: title, type: "https://computegrid.dev/problems/bad-request", extensions: extensions);

    public static ProblemHttpResult NotFound(string detail) =>
        TypedResults.Problem(detail, statusCode: StatusCodes.Status404NotFound, title: "Not found", type: "https://computegrid.dev/problems/not-found");

    public static ProblemHttpResult TooLarge(string detail) =>
        TypedResults.Problem(detail, statusCode: StatusCodes.Status413PayloadTooLarge, title: "Payload too large", type: "https://computegrid.dev/problems/too-large");

    public static ProblemHttpResult Unavailable(string detail) =>
        TypedResults.Problem(detail, statusCode: StatusCodes.Status503ServiceUnavailable, title: "Service unavailable", type: "https://computegrid.dev/problems/unavailable");

    public static ProblemHttpResult UnsupportedMediaType(string detail) =>
        TypedResults.Problem(detail, statusCode: StatusCodes.Status415UnsupportedMediaType, title: "Unsupported media type", type: "https://computegrid.dev/problems/media-type");

    /// <summary>402: the buyer's balance cannot cover what the request would hold.</summary>
    public static ProblemHttpResult PaymentRequired(string detail, IDictionary<string, object?>? extensions = null) =>
        TypedResults.Problem(detail, statusCode: StatusCodes.Status402PaymentRequired, title: "Insufficient balance", type: "https://computegrid.dev/problems/insufficient-balance", extensions: extensions);

    /// <summary>403: the caller does not own what it tries to change.</summary>
    public static ProblemHttpResult Forbidden(string detail, IDictionary<string, object?>? extensions = null) =>
        TypedResults.Problem(detail, statusCode: StatusCodes.Status403Forbidden, title: "Forbidden", type: "https://computegrid.dev/problems/forbidden", extensions: extensions);

    /// <summary>404 with extension members (e.g. the component's error code).</summary>
    public static ProblemHttpResult NotFound(string detail, IDictionary<string, object?>? extensions) =>
        TypedResults.Problem(detail, statusCode: StatusCodes.Status404NotFound, title: "Not found", type: "https://computegrid.dev/problems/not-found", extensions: extensions);

    /// <summary>The request is valid but the current state refuses it (nothing to match, capacity taken, already registered).</summary>
    public static ProblemHttpResult Conflict(string detail, IDictionary<string, object?>? extensions = null) =>
        TypedResults.Problem(detail, statusCode: StatusCodes.Status409Conflict, title: "Conflict", type: "https://computegrid.dev/problems/conflict", extensions: extensions);

    /// <summary>The request is well-formed but breaks a rule of the resource (price band, tick, lot size).</summary>
    public static ProblemHttpResult Unprocessable(string detail, IDictionary<string, object?>? extensions = null) =>
        TypedResults.Problem(detail, statusCode: StatusCodes.Status422UnprocessableEntity, title: "Unprocessable request", type: "https://computegrid.dev/problems/unprocessable", extensions: extensions);

    /// <summary>401: no API key, or one that names no customer.</summary>
    public static ProblemHttpResult Unauthorized(string detail) =>
        TypedResults.Problem(detail, statusCode: StatusCodes.Status401Unauthorized, title: "Unauthorized", type: "https://computegrid.dev/problems/unauthorized");

    /// <summary>Any status with a title (the inference gateway's outcomes).</summary>
    public static ProblemHttpResult Status(int status, string title, string detail) =>
        TypedResults.Problem(detail, statusCode: status, title: title, type: $"https://computegrid.dev/problems/{title.ToLowerInvariant().Replace(' ', '-')}");
}
