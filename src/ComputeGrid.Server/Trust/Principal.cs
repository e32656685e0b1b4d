using System.Security.Claims;

namespace ComputeGrid.Server.Trust;

/// <summary>Who a caller is. Values are stable (they are stored).</summary>
public enum PrincipalKind : byte
{
    /// <summary>A person who runs the system: admits nodes, creates customers and providers, funds accounts.</summary>
    Operator = 1,
    /// <summary>Buys inference, trades on the exchange, later holds shares.</summary>
    Customer = 2,
    /// <summary>Sells capacity and owns nodes.</summary>
    Provider = 3,
    /// <summary>An admitted machine of a provider (Ed25519 key; challenge-response sessions on the node port).</summary>
    Node = 4,
}

/// <summary>What an API key may do. Stored as a bit set; on the wire as names.</summary>
[Flags]
public enum Scopes : byte
{
    /// <summary>Nothing.</summary>
    None = 0,
    /// <summary>Read the principal's own accounts, orders, leases, keys (and, for operators, everything).</summary>
    Read = 1,
    /// <summary>Place, replace and cancel orders; buy blocks; resell leases; list capacity.</summary>
    Trade = 2,
    /// <summary>Call the paid inference API.</summary>
    Inference = 4,
    /// <summary>Operator actions: principals, keys, node admission, funding, the raw ledger.</summary>
    Admin = 8,
}

/// <summary>A principal: one identity with an id that never changes and is never reused.</summary>
/// <param name="Id">Unique across every kind; a principal's ledger accounts are derived from it.</param>
/// <param name="Kind">Operator, customer, provider or node.</param>
/// <param name="Name">Unique per kind: an operator's or customer's name, a node's id.</param>
/// <param name="Parent">A node's provider; otherwise null.</param>
/// <param name="Region">A customer's home region (where its requests come from unless a request says otherwise).</param>
/// <param name="Created">When it was created.</param>
/// <param name="CreatedBy">The operator who created it (null for the first operator).</param>
/// <param name="Disabled">When it was disabled (its keys stop working at once), or null.</param>
public sealed record Principal(ulong Id, PrincipalKind Kind, string Name, ulong? Parent, string? Region, DateTimeOffset Created, ulong? CreatedBy, DateTimeOffset? Disabled)
{
    /// <summary>The scopes a key of this kind may carry (a key's scopes are a subset).</summary>
    public static Scopes AllowedScopes(PrincipalKind kind) => kind switch
    {
        PrincipalKind.Operator => Scopes.Admin | Scopes.Read,
        PrincipalKind.Customer => Scopes.Inference | Scopes.Trade | Scopes.Read,
        PrincipalKind.Provider => Scopes.Trade | Scopes.Read,
        _ => Scopes.None,
    };
}

/// <summary>
/// The authenticated caller of a request: its principal, the scopes of the credential it used and which credential
/// it was. Built once per API key (or node session) and reused by every request that presents it.
/// </summary>
public sealed class CallerIdentity : ClaimsIdentity
{
    /// <summary>The claim type of the principal's id.</summary>
    public const string PrincipalIdClaim = "cg:principal";

    /// <summary>Creates the identity of <paramref name="principal"/> authenticated by credential <paramref name="credentialId"/>.</summary>
    public CallerIdentity(Principal principal, Scopes scopes, string credentialId, string scheme)
        : base([new Claim(PrincipalIdClaim, principal.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)), new Claim(ClaimTypes.Name, principal.Name),
            new Claim(ClaimTypes.Role, principal.Kind.ToString().ToLowerInvariant())], scheme)
    {
        Principal = principal;
        Scopes = scopes;
        CredentialId = credentialId;
    }

    /// <summary>Who called.</summary>
    public Principal Principal { get; }

    /// <summary>What the credential may do.</summary>
    public Scopes Scopes { get; }

    /// <summary>The API key's id, or the node session's id.</summary>
    public string CredentialId { get; }
}

/// <summary>Reads the caller from a request's <see cref="ClaimsPrincipal"/>.</summary>
public static class CallerExtensions
{
    /// <summary>The authenticated caller, or null for an anonymous request.</summary>
    public static CallerIdentity? Caller(this ClaimsPrincipal user)
    {
        foreach (ClaimsIdentity identity in user.Identities)
            if (identity is CallerIdentity caller) return caller;
        return null;
    }

    /// <summary>The authenticated caller; the endpoint's policy guarantees there is one.</summary>
    public static CallerIdentity RequireCaller(this ClaimsPrincipal user) =>
        user.Caller() ?? throw new InvalidOperationException("The endpoint's policy admits only authenticated callers, yet there is none.");
}
