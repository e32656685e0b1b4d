using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;

namespace ComputeGrid.Server;

/// <summary>RFC 7807 problem+json answers with a stable type URI per kind of error.</summary>
public static class Problems
{
    public static ProblemHttpResult BadRequest(string detail, string title = "Bad request") =>
        TypedResults.Problem(detail, statusCode: StatusCodes.Status400BadRequest, title: title, type: "https://computegrid.dev/problems/bad-request");

    public static ProblemHttpResult NotFound(string detail) =>
        TypedResults.Problem(detail, statusCode: StatusCodes.Status404NotFound, title: "Not found", type: "https://computegrid.dev/problems/not-found");

    public static ProblemHttpResult TooLarge(string detail) =>
        TypedResults.Problem(detail, statusCode: StatusCodes.Status413PayloadTooLarge, title: "Payload too large", type: "https://computegrid.dev/problems/too-large");

    public static ProblemHttpResult Unavailable(string detail) =>
        TypedResults.Problem(detail, statusCode: StatusCodes.Status503ServiceUnavailable, title: "Service unavailable", type: "https://computegrid.dev/problems/unavailable");

    public static ProblemHttpResult UnsupportedMediaType(string detail) =>
        TypedResults.Problem(detail, statusCode: StatusCodes.Status415UnsupportedMediaType, title: "Unsupported media type", type: "https://computegrid.dev/problems/media-type");
}
