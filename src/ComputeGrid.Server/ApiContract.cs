using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using ComputeGrid.Core;
using ComputeGrid.Ledger;
using ComputeGrid.Server.Trust;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;

namespace ComputeGrid.Server;

/// <summary>A per-principal quota is reached: 429 with <c>Retry-After</c>, nothing changed.</summary>
public sealed class QuotaExceededException(string message, TimeSpan retryAfter) : Exception(message)
{
    /// <summary>When trying again may succeed.</summary>
    public TimeSpan RetryAfter { get; } = retryAfter;
}

/// <summary>
/// The parts of the HTTP contract that are not one endpoint's: how exceptions become problems (status, detail,
/// <c>Retry-After</c>), validation errors' member names in the API's snake_case, and the OpenAPI document's security
/// (each operation names its scheme and policy; public ones say so).
/// </summary>
internal static class ApiContract
{
    /// <summary>The status of an exception that reached the exception handler.</summary>
    public static int StatusOf(Exception e) => e switch
    {
        LedgerFaultedException or ComputeGrid.Exchange.Pipeline.ExchangeUnavailableException => StatusCodes.Status503ServiceUnavailable,
        BadHttpRequestException b => b.StatusCode,
        QuotaExceededException => StatusCodes.Status429TooManyRequests,
        TrustStoreException { Error: TrustError.QuotaReached } => StatusCodes.Status429TooManyRequests,
        OperationCanceledException => StatusCodes.Status499ClientClosedRequest,
        _ => StatusCodes.Status500InternalServerError,
    };

    /// <summary>Fills a problem's detail from its exception and puts validation errors in the API's member names.</summary>
    public static void CustomizeProblem(ProblemDetailsContext context)
    {
        ProblemDetails p = context.ProblemDetails;
        switch (context.Exception)
        {
            case BadHttpRequestException b:
                p.Title = b.StatusCode == StatusCodes.Status413PayloadTooLarge ? "Payload too large" : "Bad request";
                p.Detail = BindingDetail(b);
                break;
            case QuotaExceededException q:
                p.Title = "Quota reached";
                p.Detail = q.Message;
                p.Extensions[ApiErrors.CodeExtension] = "quota_reached";
                RetryAfter(context.HttpContext, q.RetryAfter);
                break;
            case TrustStoreException { Error: TrustError.QuotaReached } t:
                p.Title = "Quota reached";
                p.Detail = t.Message;
                p.Extensions[ApiErrors.CodeExtension] = "quota_reached";
                RetryAfter(context.HttpContext, TimeSpan.FromSeconds(60));
                break;
            case LedgerFaultedException or ComputeGrid.Exchange.Pipeline.ExchangeUnavailableException:
                // Fail-stop: nothing half-done was acknowledged; a restart replays cleanly.
                p.Title = "Service unavailable";
                p.Detail = context.Exception.Message;
                break;
            case not null:
                // An unexpected exception: a bug. The client gets no internals.
                p.Detail = "The server failed on this request; it is logged.";
                break;
        }
        if (p is HttpValidationProblemDetails v && v.Errors.Count > 0)
        {
            var renamed = v.Errors.ToDictionary(e => SnakeCase(e.Key), e => e.Value);
            v.Errors.Clear();
            foreach (var (k, messages) in renamed) v.Errors[k] = messages;
            p.Detail ??= string.Join(" ", renamed.SelectMany(e => e.Value.Select(m => $"{e.Key}: {m}")));
        }
    }

    private static void RetryAfter(HttpContext http, TimeSpan after) =>
        http.Response.Headers.RetryAfter = Math.Max(1, (int)Math.Ceiling(after.TotalSeconds)).ToString(CultureInfo.InvariantCulture);

    // "Failed to read parameter … as JSON." says little; the serializer's own message names the member and the problem.
    private static string BindingDetail(BadHttpRequestException b)
    {
        if (b.InnerException is JsonException j)
        {
            string where = j.Path is null or "$" ? "" : $" at {j.Path}";
            return $"Malformed JSON{where}: {FirstSentence(j.Message)}";
        }
        return b.Message;
    }

    private static string FirstSentence(string message)
    {
        // The serializer names the CLR type of a missing member's object; the client only needs the members.
        const string missing = "was missing required properties including: ";
        int m = message.IndexOf(missing, StringComparison.Ordinal);
        if (m >= 0) return "missing required members: " + message[(m + missing.Length)..].TrimEnd('.') + ".";
        const string unmapped = " could not be mapped to any .NET member";
        int u = message.IndexOf(unmapped, StringComparison.Ordinal);
        if (u >= 0) return message[..u].Replace("The JSON property", "the member", StringComparison.Ordinal) + " is not one of this request's members.";
        int i = message.IndexOf(". ", StringComparison.Ordinal);
        return i < 0 ? message : message[..(i + 1)];
    }

    /// <summary>A validation key (a C# member path) in the API's snake_case.</summary>
    public static string SnakeCase(string key) => string.Join('.', key.Split('.').Select(part => ApiJson.Naming.ConvertName(part)));

    /// <summary>The OpenAPI document: its title, the two security schemes, each operation's security, times as date-times.</summary>
    public static void ConfigureOpenApi(OpenApiOptions o)
    {
        o.AddDocumentTransformer((document, _, _) =>
        {
            document.Info = new OpenApiInfo
            {
                Title = "ComputeGrid",
                Version = "v1",
                Description = "Compute exchange, paid inference, hybrid energy sites and the stablecoin ledger. JSON members are snake_case, "
                    + "times RFC 3339 strings, amounts integers of the asset's minor units (micro-USD for USDC), 128-bit ids decimal strings. "
                    + "Errors are problem+json (RFC 7807), except under /v1 where they have OpenAI's shape.",
            };
            document.Components ??= new OpenApiComponents();
            document.Components.SecuritySchemes ??= new Dictionary<string, IOpenApiSecurityScheme>();
            document.Components.SecuritySchemes[TrustSchemes.ApiKey] = new OpenApiSecurityScheme
            {
                Type = SecuritySchemeType.Http, Scheme = "bearer", BearerFormat = "cg_<key id>_<secret>",
                Description = "An API key of an operator, customer or provider: 'Authorization: Bearer cg_…'.",
            };
            document.Components.SecuritySchemes[TrustSchemes.NodeSession] = new OpenApiSecurityScheme
            {
                Type = SecuritySchemeType.Http, Scheme = "bearer", BearerFormat = "cgn_<secret>",
                Description = "An admitted node's session token, from a signed challenge (POST /node/v1/sessions); node port only.",
            };
            return Task.CompletedTask;
        });
        o.AddOperationTransformer((operation, context, _) =>
        {
            IList<object> metadata = context.Description.ActionDescriptor.EndpointMetadata;
            operation.Extensions ??= new Dictionary<string, IOpenApiExtension>();
            if (metadata.OfType<NodePortOnlyAttribute>().Any()) operation.Extensions["x-computegrid-port"] = new JsonNodeExtension(JsonValue.Create("node"));
            // The endpoint's own AllowAnonymous or policy wins over its group's, as it does for authorization itself.
            object? decision = metadata.LastOrDefault(m => m is IAllowAnonymous || (m is IAuthorizeData a && a.Policy is not null));
            if (decision is IAuthorizeData { Policy: { } policy })
            {
                operation.Security = [new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference(Policies.SchemeOf(policy), context.Document)] = [] }];
                operation.Extensions["x-computegrid-policy"] = new JsonNodeExtension(JsonValue.Create(policy));
                operation.Description = (operation.Description is null ? "" : operation.Description + "\n\n") + "Who may call: " + Policies.Describe(policy) + ".";
            }
            else
            {
                operation.Security = [];
                operation.Extensions["x-computegrid-policy"] = new JsonNodeExtension(JsonValue.Create("public"));
                operation.Description = (operation.Description is null ? "" : operation.Description + "\n\n") + "Public: no credential needed.";
            }
            return Task.CompletedTask;
        });
        o.AddSchemaTransformer((schema, context, _) =>
        {
            Type t = Nullable.GetUnderlyingType(context.JsonTypeInfo.Type) ?? context.JsonTypeInfo.Type;
            if (t == typeof(ApiTime))
            {
                // The component itself is a string; where a time is optional the document wraps it with null.
                schema.Type = JsonSchemaType.String;
                schema.Format = "date-time";
                schema.Description ??= "An RFC 3339 time (UTC, up to nanoseconds).";
                schema.Properties?.Clear();
            }
            else if (t == typeof(Exchange.InstrumentRef))
            {
                schema.Type = JsonSchemaType.String | JsonSchemaType.Integer;
                schema.Description ??= "An instrument's symbol (e.g. H100.frankfurt.H.2026-11-26T14) or its numeric id.";
            }
            else if (t == typeof(Inference.EmbeddingInput))
            {
                schema.Type = JsonSchemaType.String | JsonSchemaType.Array;
                schema.Items = new OpenApiSchema { Type = JsonSchemaType.String };
                schema.Description ??= "A text, or an array of texts.";
            }
            else if (t == typeof(UInt128))
            {
                schema.Type = JsonSchemaType.String;
                schema.Pattern = "^[0-9]{1,39}$";
                schema.Description ??= "A 128-bit id as a decimal string.";
            }
            return Task.CompletedTask;
        });
    }
}
