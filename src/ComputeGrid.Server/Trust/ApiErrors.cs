using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;

namespace ComputeGrid.Server.Trust;

/// <summary>
/// Writes every error of the server: problem+json (RFC 7807) everywhere, except under <c>/v1/</c> where OpenAI's
/// clients expect <c>{"error":{"message","type","code","param"}}</c>. Handlers return <c>ProblemHttpResult</c>s; the
/// framework's own errors (authentication, rate limits, status codes, exceptions, validation) go through the same
/// <see cref="IProblemDetailsService"/>, so the shape depends only on the path.
/// </summary>
public static class ApiErrors
{
    /// <summary>The extension member that carries a machine-readable error code (e.g. <c>invalid_api_key</c>).</summary>
    public const string CodeExtension = "code";

    /// <summary>Writes a problem for <paramref name="status"/> through the problem details service.</summary>
    public static ValueTask WriteAsync(HttpContext http, int status, string title, string detail, string? code = null)
    {
        var problem = new ProblemDetails
        {
            Status = status, Title = title, Detail = detail,
            Type = $"https://computegrid.dev/problems/{title.ToLowerInvariant().Replace(' ', '-')}",
        };
        if (code is not null) problem.Extensions[CodeExtension] = code;
        http.Response.StatusCode = status;
        var service = http.RequestServices.GetService(typeof(IProblemDetailsService)) as IProblemDetailsService
            ?? throw new InvalidOperationException("AddProblemDetails() is missing.");
        return service.WriteAsync(new ProblemDetailsContext { HttpContext = http, ProblemDetails = problem });
    }

    /// <summary>True for the OpenAI-compatible paths.</summary>
    public static bool IsOpenAiPath(PathString path) => path.StartsWithSegments("/v1", StringComparison.Ordinal);
}

/// <summary>OpenAI's error object, as its clients parse it.</summary>
/// <param name="Message">What went wrong, for a person.</param>
/// <param name="Type">OpenAI's error type (<c>invalid_request_error</c>, <c>authentication_error</c>, …).</param>
/// <param name="Code">A machine-readable code, or null.</param>
/// <param name="Param">The request parameter at fault, or null.</param>
public sealed record OpenAiError(string Message, string Type, string? Code, string? Param);

/// <summary>The body of an error under <c>/v1/</c>.</summary>
/// <param name="Error">The error.</param>
public sealed record OpenAiErrorBody(OpenAiError Error);

/// <summary>Writes problems under <c>/v1/</c> in OpenAI's error shape (registered before the default writer).</summary>
public sealed class OpenAiProblemWriter(Microsoft.Extensions.Options.IOptions<ProblemDetailsOptions> options) : IProblemDetailsWriter
{
    /// <inheritdoc />
    public bool CanWrite(ProblemDetailsContext context) => ApiErrors.IsOpenAiPath(context.HttpContext.Request.Path);

    /// <inheritdoc />
    public ValueTask WriteAsync(ProblemDetailsContext context)
    {
        // The same customization the default writer applies (details from exceptions, Retry-After, member names).
        options.Value.CustomizeProblemDetails?.Invoke(context);
        ProblemDetails p = context.ProblemDetails;
        int status = p.Status ?? context.HttpContext.Response.StatusCode;
        string? code = p.Extensions.TryGetValue(ApiErrors.CodeExtension, out object? c) ? c?.ToString() : null;
        string message = p.Detail ?? p.Title ?? "Error.";
        if (p is HttpValidationProblemDetails v && v.Errors.Count > 0)
            message = string.Join(" ", v.Errors.SelectMany(e => e.Value.Select(m => $"{e.Key}: {m}")));
        string type = status switch
        {
            401 => "authentication_error",
            402 => "insufficient_quota",
            403 => "permission_error",
            404 => "not_found_error",
            429 => "rate_limit_error",
            >= 500 => "server_error",
            _ => "invalid_request_error",
        };
        var body = new OpenAiErrorBody(new OpenAiError(message, type, code, null));
        context.HttpContext.Response.ContentType = "application/json; charset=utf-8";
        return new ValueTask(JsonSerializer.SerializeAsync(context.HttpContext.Response.Body, body, ApiJson.Options, context.HttpContext.RequestAborted));
    }
}
