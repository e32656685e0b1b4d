using System.Security.Claims;
using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace ComputeGrid.Server.Trust;

/// <summary>The authentication schemes: API keys on the public port, node sessions on the node port.</summary>
public static class TrustSchemes
{
    /// <summary><c>Authorization: Bearer cg_…</c>: an API key of an operator, customer or provider.</summary>
    public const string ApiKey = "ApiKey";

    /// <summary><c>Authorization: Bearer cgn_…</c>: a node's session token, issued for a signed challenge, node port only.</summary>
    public const string NodeSession = "NodeSession";

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
    internal static async Task ChallengeAsync(HttpContext http, string realm, string? error, string detail)
    {
        http.Response.Headers.WWWAuthenticate = error is null
            ? $"Bearer realm=\"{realm}\""
            : $"Bearer realm=\"{realm}\", error=\"{error}\", error_description=\"{detail.Replace('"', '\'')}\"";
        await ApiErrors.WriteAsync(http, StatusCodes.Status401Unauthorized, "Unauthorized", detail, error is null ? "missing_api_key" : "invalid_api_key");
    }
}

/// <summary>
/// Authenticates API keys (<c>Authorization: Bearer cg_…</c>) against the <see cref="TrustStore"/>. The identity of a
/// key is built once and reused, so a request pays for a dictionary lookup and one SHA-256 of its secret.
/// </summary>
public sealed class ApiKeyAuthenticationHandler(IOptionsMonitor<AuthenticationSchemeOptions> options, ILoggerFactory logger, UrlEncoder encoder, TrustStore store)
    : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
{
    private const string FailureItem = "cg-auth-failure";

    /// <inheritdoc />
    protected override Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        if (!TrustSchemes.TryBearer(Request, out ReadOnlySpan<char> token, out bool present))
            return Task.FromResult(present ? Fail("The Authorization header must be 'Bearer <API key>'.") : AuthenticateResult.NoResult());
        AuthOutcome outcome = store.Authenticate(token, out TrustStore.KeyEntry? entry, out Principal? principal);
        if (outcome != AuthOutcome.Ok) return Task.FromResult(Fail(outcome switch
        {
            AuthOutcome.Revoked => "The API key was revoked.",
            AuthOutcome.Disabled => "The API key's principal is disabled.",
            _ => "The API key is not valid.",
        }));
        AuthenticationTicket? ticket = entry!.Ticket;
        if (ticket is null)
        {
            var identity = new CallerIdentity(principal!, entry.Info.Scopes, entry.Info.KeyId, TrustSchemes.ApiKey);
            entry.Ticket = ticket = new AuthenticationTicket(new ClaimsPrincipal(identity), TrustSchemes.ApiKey);
        }
        return Task.FromResult(AuthenticateResult.Success(ticket));
    }

    private AuthenticateResult Fail(string why)
    {
        Context.Items[FailureItem] = why;
        return AuthenticateResult.Fail(why);
    }

    /// <inheritdoc />
    protected override Task HandleChallengeAsync(AuthenticationProperties properties) =>
        Context.Items.TryGetValue(FailureItem, out object? why) && why is string detail
            ? TrustSchemes.ChallengeAsync(Context, "computegrid", "invalid_token", detail)
            : TrustSchemes.ChallengeAsync(Context, "computegrid", null, "This endpoint needs 'Authorization: Bearer <API key>'.");

    /// <inheritdoc />
    protected override Task HandleForbiddenAsync(AuthenticationProperties properties) =>
        ApiErrors.WriteAsync(Context, StatusCodes.Status403Forbidden, "Forbidden",
            $"The credential ({Context.User.Caller()?.Principal.Kind.ToString().ToLowerInvariant()} key with scopes {ScopeNames.Format(Context.User.Caller()?.Scopes ?? Scopes.None)}) may not call this endpoint.",
            "insufficient_scope").AsTask();
}

/// <summary>Authenticates node sessions (<c>Authorization: Bearer cgn_…</c>) on the node port.</summary>
public sealed class NodeSessionAuthenticationHandler(IOptionsMonitor<AuthenticationSchemeOptions> options, ILoggerFactory logger, UrlEncoder encoder, NodeSessions sessions)
    : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
{
    /// <inheritdoc />
    protected override Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        if (!TrustSchemes.TryBearer(Request, out ReadOnlySpan<char> token, out bool present))
            return Task.FromResult(present ? AuthenticateResult.Fail("The Authorization header must be 'Bearer <session token>'.") : AuthenticateResult.NoResult());
        return Task.FromResult(sessions.Authenticate(token) is { } session
            ? AuthenticateResult.Success(session.Ticket)
            : AuthenticateResult.Fail("The node session is not valid (it may have been replaced by a newer registration)."));
    }

    /// <inheritdoc />
    protected override Task HandleChallengeAsync(AuthenticationProperties properties) =>
        TrustSchemes.ChallengeAsync(Context, "computegrid-node", Request.Headers.Authorization.Count > 0 ? "invalid_token" : null,
            "The node protocol needs 'Authorization: Bearer <session token>' from a signed registration.");

    /// <inheritdoc />
    protected override Task HandleForbiddenAsync(AuthenticationProperties properties) =>
        ApiErrors.WriteAsync(Context, StatusCodes.Status403Forbidden, "Forbidden", "The session may not call this endpoint.").AsTask();
}
