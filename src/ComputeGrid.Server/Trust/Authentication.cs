using System.Security.Claims;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features.Authentication;

namespace ComputeGrid.Server.Trust;

/// <summary>
/// The credentials: API keys (<c>Bearer cg_…</c>) on the public port, node sessions (<c>Bearer cgn_…</c>) on the node
/// port. One ASP.NET Core authentication scheme, <see cref="ApiKey"/>, is the default for everything (authenticate,
/// challenge, forbid); <see cref="NodeSession"/> names the node port's credential in the OpenAPI document.
/// </summary>
public static class TrustSchemes
{
    /// <summary>The authentication scheme (and, in the OpenAPI document, the API-key security scheme).</summary>
    public const string ApiKey = "ApiKey";

    /// <summary>The node session's security scheme in the OpenAPI document (authenticated by the same handler, on the node port).</summary>
    public const string NodeSession = "NodeSession";

    private const string FailureItem = "cg-auth-failure";

    /// <summary>
    /// Who presented what: on the public port an API key (a dictionary lookup by key id and one constant-time comparison
    /// of the secret's SHA-256; the identity of a key is built once and reused), on the node port a node session. A
    /// credential of the other port is not one here.
    /// </summary>
    public static AuthenticateResult Authenticate(HttpContext http, TrustStore store, NodeSessions sessions)
    {
        bool nodePort = ConnectionRoles.IsNodePort(http);
        if (!TryBearer(http.Request, out ReadOnlySpan<char> token, out bool present))
            return present ? Fail(http, nodePort ? "The Authorization header must be 'Bearer <session token>'." : "The Authorization header must be 'Bearer <API key>'.")
                : AuthenticateResult.NoResult();
        if (nodePort)
        {
            return sessions.Authenticate(token) is { } session
                ? AuthenticateResult.Success(session.Ticket)
                : Fail(http, "The node session is not valid (it may have been replaced by a newer registration).");
        }
        AuthOutcome outcome = store.Authenticate(token, out TrustStore.KeyEntry? entry, out Principal? principal);
        if (outcome != AuthOutcome.Ok)
        {
            return Fail(http, outcome switch
            {
                AuthOutcome.Revoked => "The API key was revoked.",
                AuthOutcome.Disabled => "The API key's principal is disabled.",
                _ => "The API key is not valid.",
            });
        }
        AuthenticationTicket? ticket = entry!.Ticket;
        if (ticket is null)
        {
            var identity = new CallerIdentity(principal!, entry.Info.Scopes, entry.Info.KeyId, ApiKey);
            entry.Ticket = ticket = new AuthenticationTicket(new ClaimsPrincipal(identity), ApiKey);
        }
        return AuthenticateResult.Success(ticket);
    }

    /// <summary>
    /// Makes a successful result the request's user (what ASP.NET's authentication middleware does for a default
    /// scheme, without its per-request handler, service scope and result copies).
    /// </summary>
    internal static void SetUser(HttpContext http, AuthenticateResult result)
    {
        if (!result.Succeeded) return;
        http.User = result.Principal!;
        http.Features.Set<IAuthenticateResultFeature>(new AuthenticatedFeature(result));
    }

    private static AuthenticateResult Fail(HttpContext http, string why)
    {
        http.Items[FailureItem] = why;
        return AuthenticateResult.Fail(why);
    }

    /// <summary>Reads a bearer token; false when the header is absent or not a bearer token.</summary>
    internal static bool TryBearer(HttpRequest request, out ReadOnlySpan<char> token, out bool present)
    {
        token = default;
        present = false;
        if (!request.Headers.TryGetValue("Authorization", out var values) || values.Count == 0) return false;
        present = true;
        ReadOnlySpan<char> header = values[0];
        if (values.Count != 1 || header.Length <= 7 || !header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase)) return false;
        token = header[7..].Trim();
        return token.Length > 0;
    }

    /// <summary>Answers 401 with <c>WWW-Authenticate</c> and a problem naming what was wrong.</summary>
    internal static Task ChallengeAsync(HttpContext http)
    {
        bool node = ConnectionRoles.IsNodePort(http);
        string realm = node ? "computegrid-node" : "computegrid";
        string? failure = http.Items.TryGetValue(FailureItem, out object? why) ? why as string : null;
        string detail = failure ?? (node
            ? "The node protocol needs 'Authorization: Bearer <session token>' from a signed registration."
            : "This endpoint needs 'Authorization: Bearer <API key>'.");
        http.Response.Headers.WWWAuthenticate = failure is null
            ? $"Bearer realm=\"{realm}\""
            : $"Bearer realm=\"{realm}\", error=\"invalid_token\", error_description=\"{detail.Replace('"', '\'')}\"";
        return ApiErrors.WriteAsync(http, StatusCodes.Status401Unauthorized, "Unauthorized", detail, failure is null ? "missing_api_key" : "invalid_api_key").AsTask();
    }

    /// <summary>Answers 403: the credential is valid but may not call this endpoint.</summary>
    internal static Task ForbidAsync(HttpContext http)
    {
        CallerIdentity? caller = http.User.Caller();
        string what = caller is null ? "The credential"
            : caller.Principal.Kind == PrincipalKind.Node ? "A node session"
            : $"The credential ({caller.Principal.Kind.ToString().ToLowerInvariant()} key with scopes {ScopeNames.Format(caller.Scopes)})";
        return ApiErrors.WriteAsync(http, StatusCodes.Status403Forbidden, "Forbidden", $"{what} may not call this endpoint.", "insufficient_scope").AsTask();
    }
}

/// <summary>The result of the request's authentication, as ASP.NET's features expose it.</summary>
internal sealed class AuthenticatedFeature(AuthenticateResult result) : IAuthenticateResultFeature, IHttpAuthenticationFeature
{
    public AuthenticateResult? AuthenticateResult { get; set; } = result;

    public ClaimsPrincipal? User
    {
        get => AuthenticateResult?.Principal;
        set => AuthenticateResult = value is null ? null : AuthenticateResult.Success(new AuthenticationTicket(value, TrustSchemes.ApiKey));
    }
}

/// <summary>The <see cref="TrustSchemes.ApiKey"/> scheme's handler: 401 with <c>WWW-Authenticate</c>, 403, and authentication on request.</summary>
public sealed class TrustAuthenticationHandler(TrustStore store, NodeSessions sessions) : IAuthenticationHandler
{
    private HttpContext _http = null!;

    /// <inheritdoc />
    public Task InitializeAsync(AuthenticationScheme scheme, HttpContext context)
    {
        _http = context;
        return Task.CompletedTask;
    }

    /// <inheritdoc />
    public Task<AuthenticateResult> AuthenticateAsync() =>
        Task.FromResult(_http.Features.Get<IAuthenticateResultFeature>()?.AuthenticateResult ?? TrustSchemes.Authenticate(_http, store, sessions));

    /// <inheritdoc />
    public Task ChallengeAsync(AuthenticationProperties? properties) => TrustSchemes.ChallengeAsync(_http);

    /// <inheritdoc />
    public Task ForbidAsync(AuthenticationProperties? properties) => TrustSchemes.ForbidAsync(_http);
}
