using Microsoft.AspNetCore.Authorization;

namespace ComputeGrid.Server.Trust;

/// <summary>
/// Who may call what: one authorization policy per kind of endpoint, declared on each endpoint (or its group) with
/// <c>RequireAuthorization(Policies.X)</c>, or <c>AllowAnonymous()</c> for the public ones. An endpoint that declares
/// nothing falls to <see cref="Deny"/> (refused), and a test enumerates the route table so that it cannot ship.
/// Ownership of a named resource (an account, an order) is checked by the resource's owner, derived from the
/// credential; clients never name an owner.
/// </summary>
public static class Policies
{
    /// <summary>Operators with the <c>admin</c> scope.</summary>
    public const string Operator = "operator";

    /// <summary>Operators with the <c>read</c> scope (system-wide listings and state).</summary>
    public const string OperatorRead = "operator-read";

    /// <summary>Customers with the <c>inference</c> scope: the paid API.</summary>
    public const string Inference = "inference";

    /// <summary>
    /// The paid API: customers with the <c>inference</c> scope, or — when the server has a chain — a caller presenting no
    /// credential at all, who pays per request with x402 (the handler answers 402 until it does).
    /// </summary>
    public const string InferenceOrX402 = "inference-or-x402";

    /// <summary>Settling x402 payments for other resource servers (it spends the server's gas): customers (inference scope) or operators (admin).</summary>
    public const string Facilitator = "x402-facilitator";

    /// <summary>Customers or providers with the <c>trade</c> scope: orders, blocks, resale.</summary>
    public const string Trader = "trader";

    /// <summary>Providers with the <c>trade</c> scope: capacity and its reports.</summary>
    public const string Provider = "provider";

    /// <summary>Operators, customers or providers with the <c>read</c> scope: each reads what it owns (operators: everything).</summary>
    public const string Reader = "reader";

    /// <summary>Any authenticated operator, customer or provider, whatever its scopes: who am I, my keys.</summary>
    public const string Self = "self";

    /// <summary>Operators or providers with the <c>read</c> scope: capacity and the hybrid sites' state.</summary>
    public const string OperatorOrProviderRead = "operator-or-provider-read";

    /// <summary>Operators (admin scope) or providers (trade scope): reports about a provider's own capacity.</summary>
    public const string OperatorOrProvider = "operator-or-provider";

    /// <summary>An admitted node's session, on the node port.</summary>
    public const string Node = "node";

    /// <summary>The fallback for an endpoint that declares no policy: nobody.</summary>
    public const string Deny = "deny";

    /// <summary>
    /// Resource-based (checked with <c>IAuthorizationService</c> against a <see cref="OwnedResource"/>): the caller owns the
    /// resource, or is an operator (admin scope to change it, read scope to read it).
    /// </summary>
    public const string Owner = "owner";

    /// <summary>Every policy name, for the OpenAPI document and the tests.</summary>
    public static IReadOnlyList<string> All { get; } = [Operator, OperatorRead, Inference, Trader, Provider, Reader, Self, OperatorOrProviderRead, OperatorOrProvider, Node,
        InferenceOrX402, Facilitator];

    /// <summary>Registers the policies and the fallback.</summary>
    public static void Add(AuthorizationBuilder b)
    {
        b.AddPolicy(Operator, Caller(Scopes.Admin, PrincipalKind.Operator));
        b.AddPolicy(OperatorRead, Caller(Scopes.Read, PrincipalKind.Operator));
        b.AddPolicy(Inference, Caller(Scopes.Inference, PrincipalKind.Customer));
        b.AddPolicy(InferenceOrX402, new AuthorizationPolicyBuilder()
            .AddRequirements(new CallerOrX402PayerRequirement([(PrincipalKind.Customer, Scopes.Inference)])).Build());
        b.AddPolicy(Facilitator, new AuthorizationPolicyBuilder()
            .AddRequirements(new CallerRequirement([(PrincipalKind.Customer, Scopes.Inference), (PrincipalKind.Operator, Scopes.Admin)])).Build());
        b.AddPolicy(Trader, Caller(Scopes.Trade, PrincipalKind.Customer, PrincipalKind.Provider));
        b.AddPolicy(Provider, Caller(Scopes.Trade, PrincipalKind.Provider));
        b.AddPolicy(Reader, Caller(Scopes.Read, PrincipalKind.Operator, PrincipalKind.Customer, PrincipalKind.Provider));
        b.AddPolicy(Self, Caller(Scopes.None, PrincipalKind.Operator, PrincipalKind.Customer, PrincipalKind.Provider));
        b.AddPolicy(OperatorOrProviderRead, Caller(Scopes.Read, PrincipalKind.Operator, PrincipalKind.Provider));
        b.AddPolicy(OperatorOrProvider, new AuthorizationPolicyBuilder()
            .AddRequirements(new CallerRequirement([(PrincipalKind.Operator, Scopes.Admin), (PrincipalKind.Provider, Scopes.Trade)])).Build());
        b.AddPolicy(Node, Caller(Scopes.None, PrincipalKind.Node));
        b.AddPolicy(Owner, p => p.AddRequirements(new OwnerRequirement()));
        // The fallback applies to endpoints that declare nothing (none should: a test enumerates the route table), and to
        // requests no endpoint matches, which must still get their 404.
        AuthorizationPolicy deny = new AuthorizationPolicyBuilder()
            .RequireAssertion(c => c.Resource is Microsoft.AspNetCore.Http.HttpContext http && Microsoft.AspNetCore.Http.EndpointHttpContextExtensions.GetEndpoint(http) is null).Build();
        b.AddPolicy(Deny, deny);
        b.SetFallbackPolicy(deny);
    }

    /// <summary>The scheme of a policy (for the OpenAPI document's security requirements).</summary>
    public static string SchemeOf(string policy) => policy == Node ? TrustSchemes.NodeSession : TrustSchemes.ApiKey;

    /// <summary>What a policy admits, in words (for the OpenAPI document).</summary>
    public static string Describe(string policy) => policy switch
    {
        Operator => "operators (admin scope)",
        OperatorRead => "operators (read scope)",
        Inference => "customers (inference scope)",
        Trader => "customers and providers (trade scope)",
        Provider => "providers (trade scope)",
        Reader => "operators, customers and providers (read scope); each sees what it owns",
        Self => "any operator, customer or provider key",
        OperatorOrProviderRead => "operators and providers (read scope)",
        OperatorOrProvider => "operators (admin scope) and providers (trade scope), each for what it owns",
        Node => "an admitted node's session (node port)",
        InferenceOrX402 => "customers (inference scope), or anyone without a credential paying per request with x402 (when the server has a chain)",
        Facilitator => "customers (inference scope) and operators (admin scope)",
        _ => "nobody",
    };

    // Policies name no scheme: they read the user the request gate set, once per request (naming a scheme
    // would authenticate and merge the user anew in every request). No RequireAuthenticatedUser either: a caller is
    // an authenticated user, and whether a refusal is 401 or 403 follows from authentication, not from a requirement.
    private static AuthorizationPolicy Caller(Scopes scope, params PrincipalKind[] kinds) =>
        new AuthorizationPolicyBuilder().AddRequirements(new CallerRequirement(kinds.Select(k => (k, scope)).ToArray())).Build();
}

/// <summary>The caller is of one of the admitted kinds, and its credential carries the scope that kind needs (None: any).</summary>
public sealed class CallerRequirement((PrincipalKind Kind, Scopes Scope)[] admitted) : AuthorizationHandler<CallerRequirement>, IAuthorizationRequirement
{
    /// <summary>Each admitted kind with the scope it needs.</summary>
    public IReadOnlyList<(PrincipalKind Kind, Scopes Scope)> Admitted { get; } = admitted;

    /// <inheritdoc />
    protected override Task HandleRequirementAsync(AuthorizationHandlerContext context, CallerRequirement requirement)
    {
        if (context.User.Caller() is { } caller)
            foreach (var (kind, scope) in requirement.Admitted)
                if (caller.Principal.Kind == kind && (caller.Scopes & scope) == scope)
                {
                    context.Succeed(requirement);
                    break;
                }
        return Task.CompletedTask;
    }
}

/// <summary>
/// <see cref="CallerRequirement"/>, or a caller that presents no credential at all (no Authorization header: a garbage
/// key is still 401) on a server with a chain: it pays per request with x402, checked by the endpoint.
/// </summary>
public sealed class CallerOrX402PayerRequirement((PrincipalKind Kind, Scopes Scope)[] admitted) : AuthorizationHandler<CallerOrX402PayerRequirement>, IAuthorizationRequirement
{
    private readonly CallerRequirement _callers = new(admitted);

    /// <summary>The keyed callers admitted.</summary>
    public IReadOnlyList<(PrincipalKind Kind, Scopes Scope)> Admitted => _callers.Admitted;

    /// <inheritdoc />
    protected override Task HandleRequirementAsync(AuthorizationHandlerContext context, CallerOrX402PayerRequirement requirement)
    {
        if (context.User.Caller() is { } caller)
        {
            foreach (var (kind, scope) in Admitted)
                if (caller.Principal.Kind == kind && (caller.Scopes & scope) == scope)
                {
                    context.Succeed(requirement);
                    break;
                }
            return Task.CompletedTask;
        }
        if (context.Resource is Microsoft.AspNetCore.Http.HttpContext http && !http.Request.Headers.ContainsKey("Authorization")
            && Microsoft.Extensions.DependencyInjection.ServiceProviderServiceExtensions.GetService<ComputeGrid.Server.Chain.X402Payments>(http.RequestServices) is not null)
            context.Succeed(requirement);
        return Task.CompletedTask;
    }
}

/// <summary>A resource owned by a principal (null: the system's, which only operators see).</summary>
/// <param name="OwnerPrincipal">The owner's principal id, or null.</param>
/// <param name="Change">True to change it (operators need admin), false to read it (operators need read).</param>
public sealed record OwnedResource(ulong? OwnerPrincipal, bool Change);

/// <summary>The rule of <see cref="Policies.Owner"/>.</summary>
public sealed class OwnerRequirement : AuthorizationHandler<OwnerRequirement, OwnedResource>, IAuthorizationRequirement
{
    /// <inheritdoc />
    protected override Task HandleRequirementAsync(AuthorizationHandlerContext context, OwnerRequirement requirement, OwnedResource resource)
    {
        if (context.User.Caller() is not { } caller) return Task.CompletedTask;
        bool owns = resource.OwnerPrincipal == caller.Principal.Id;
        bool operatorMay = caller.Principal.Kind == PrincipalKind.Operator && (caller.Scopes & (resource.Change ? Scopes.Admin : Scopes.Read)) != 0;
        if (owns || operatorMay) context.Succeed(requirement);
        return Task.CompletedTask;
    }
}

/// <summary>Resource checks against <see cref="Policies.Owner"/>.</summary>
public static class Ownership
{
    /// <summary>Whether the caller may read (or change) what <paramref name="owner"/> owns.</summary>
    public static async Task<bool> MayAsync(this IAuthorizationService authorization, System.Security.Claims.ClaimsPrincipal user, ulong? owner, bool change = false) =>
        (await authorization.AuthorizeAsync(user, new OwnedResource(owner, change), Policies.Owner)).Succeeded;
}
