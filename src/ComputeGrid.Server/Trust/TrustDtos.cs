using System.ComponentModel.DataAnnotations;
using System.Text.Json.Serialization;
using ComputeGrid.Core;
using ComputeGrid.Ledger;

namespace ComputeGrid.Server.Trust;

// Requests. Strict JSON (unknown members are errors), checked by the framework's validation before a handler runs.

/// <summary>A new API key for the caller (or, from an operator, for a principal).</summary>
public sealed record NewKeyInput
{
    /// <summary>A name for the key (<c>laptop</c>, <c>ci</c>): 1–64 letters, digits, '-', '_', '.', '@'.</summary>
    [Required, StringLength(64, MinimumLength = 1), RegularExpression("^[A-Za-z0-9._@-]+$")]
    public required string Name { get; init; }

    /// <summary>Its scopes (<c>read</c>, <c>trade</c>, <c>inference</c>, <c>admin</c>); default: the presenting key's (or, from an operator, all the principal's kind allows).</summary>
    public string[]? Scopes { get; init; }
}

/// <summary>A new customer.</summary>
public sealed record NewCustomerInput
{
    /// <summary>The customer's name, unique among customers.</summary>
    [Required, StringLength(64, MinimumLength = 1), RegularExpression("^[A-Za-z0-9._@-]+$")]
    public required string Name { get; init; }

    /// <summary>Its home region (where its requests come from unless one says otherwise), e.g. <c>frankfurt</c>.</summary>
    [Required, StringLength(64, MinimumLength = 1)]
    public required string Region { get; init; }
}

/// <summary>A new provider or operator: a name.</summary>
public sealed record NewNamedInput
{
    /// <summary>The name, unique for its kind.</summary>
    [Required, StringLength(64, MinimumLength = 1), RegularExpression("^[A-Za-z0-9._@-]+$")]
    public required string Name { get; init; }
}

/// <summary>Funding from the treasury: an amount and an id that makes a retried call move the money once.</summary>
public sealed record FundInput
{
    /// <summary>Minor units of USDC (micro-USD): 1,000,000 is one dollar.</summary>
    [Range(1, long.MaxValue)]
    public required long Amount { get; init; }

    /// <summary>The caller's id of this funding (1–128 characters): the same id, amount and account always mean the same funding.</summary>
    [Required, StringLength(128, MinimumLength = 1)]
    public required string FundingId { get; init; }
}

/// <summary>An operator admits a node for a provider.</summary>
public sealed record AdmitNodeInput
{
    /// <summary>The node's id: 1–64 letters, digits, '-', '_' (what the node registers as).</summary>
    [Required, StringLength(64, MinimumLength = 1), RegularExpression("^[A-Za-z0-9_-]+$")]
    public required string NodeId { get; init; }

    /// <summary>The node's Ed25519 public key, base64 (32 bytes raw): <c>computegrid node --key-file F --print-public-key</c>.</summary>
    [Required, StringLength(64, MinimumLength = 40)]
    public required string PublicKey { get; init; }

    /// <summary>The highest inference price the node may register with, micro-USD per 1,000 tokens.</summary>
    [Range(0, 1_000_000_000)]
    public required long PriceCeilingMicroUsdPer1kTokens { get; init; }
}

// Responses.

/// <summary>A principal as the API shows it.</summary>
public sealed record PrincipalView(ulong Id, PrincipalKind Kind, string Name, ulong? Provider, string? Region, ApiTime Created, ulong? CreatedBy, ApiTime? Disabled)
{
    /// <summary>The view of a principal.</summary>
    public static PrincipalView From(Principal p) => new(p.Id, p.Kind, p.Name, p.Parent, p.Region, ApiTime.Of(p.Created), p.CreatedBy, p.Disabled is { } d ? ApiTime.Of(d) : null);
}

/// <summary>An API key as it is listed (never its secret).</summary>
public sealed record ApiKeyView(string KeyId, ulong Principal, string Name, string[] Scopes, ApiTime Created, ulong? CreatedBy, ApiTime? Revoked, ApiTime? LastUsed)
{
    /// <summary>The view of a key.</summary>
    public static ApiKeyView From(ApiKeyInfo k) => new(k.KeyId, k.Principal, k.Name, ScopeNames.Of(k.Scopes), ApiTime.Of(k.Created), k.CreatedBy,
        k.Revoked is { } r ? ApiTime.Of(r) : null, k.LastUsed is { } u ? ApiTime.Of(u) : null);
}

/// <summary>A new key: <c>api_key</c> is shown this once and never again (only its hash is kept).</summary>
public sealed record IssuedKeyView(string ApiKey, ApiKeyView Key);

/// <summary>One of a principal's ledger accounts: its balances in minor units of <c>asset</c>.</summary>
public sealed record OwnedAccountView(UInt128 Id, AccountCode Code, string Asset, long Available, long DebitsPending, long DebitsPosted, long CreditsPending, long CreditsPosted)
{
    /// <summary>The view of a ledger account.</summary>
    public static OwnedAccountView From(in Account a) => new(a.Id, (AccountCode)a.Code, AssetSymbol(a.Asset),
        checked(a.CreditsPosted - a.DebitsPosted - a.DebitsPending), a.DebitsPending, a.DebitsPosted, a.CreditsPending, a.CreditsPosted);

    /// <summary>An asset code's symbol (<c>USDC</c>), or the code itself when unknown.</summary>
    public static string AssetSymbol(uint code) => ComputeGrid.Core.Asset.TryFromCode(code, out ComputeGrid.Core.Asset asset) ? asset.Symbol : code.ToString(System.Globalization.CultureInfo.InvariantCulture);
}

/// <summary>Who the caller is: its principal, the key it used and its accounts.</summary>
public sealed record MeView(PrincipalView Principal, ApiKeyView? Key, IReadOnlyList<OwnedAccountView> Accounts);

/// <summary>A principal just created: its accounts and its first key (<c>api_key</c>, shown once).</summary>
public sealed record CreatedPrincipalView(PrincipalView Principal, IReadOnlyList<UInt128> Accounts, string ApiKey, ApiKeyView Key);

/// <summary>A principal with its keys and accounts (operators' view).</summary>
public sealed record PrincipalDetailView(PrincipalView Principal, IReadOnlyList<ApiKeyView> Keys, IReadOnlyList<OwnedAccountView> Accounts);

/// <summary>A page of principals; <c>next</c> is the <c>after</c> of the next page, null on the last.</summary>
public sealed record PrincipalPage(IReadOnlyList<PrincipalView> Principals, ulong? Next);

/// <summary>A funding: the account credited, the amount, its ledger transfer, and whether it was done before (a retry).</summary>
public sealed record FundView(ulong Principal, UInt128 Account, long Amount, string Asset, UInt128 TransferId, bool Replayed, long Available);

/// <summary>An admitted node.</summary>
public sealed record NodeAdmissionView(string NodeId, ulong Principal, ulong Provider, string PublicKey,
    long PriceCeilingMicroUsdPer1kTokens, UInt128 RevenueAccount, ApiTime? Revoked)
{
    /// <summary>The view of an admission.</summary>
    public static NodeAdmissionView From(NodeAdmission n) => new(n.NodeId, n.Principal, n.Provider, Convert.ToBase64String(n.PublicKey), n.PriceCeilingMicroUsdPer1kTokens,
        ChartOfAccounts.PrincipalAccount(AccountCode.NodeRevenue, n.Principal), n.Revoked is { } r ? ApiTime.Of(r) : null);
}

/// <summary>The nodes a provider has admitted.</summary>
public sealed record NodeAdmissionList(IReadOnlyList<NodeAdmissionView> Nodes);

/// <summary>A list of keys, newest first.</summary>
public sealed record ApiKeyList(IReadOnlyList<ApiKeyView> Keys);

/// <summary>An operator action (funding, admission, principals), with who did it.</summary>
public sealed record OperatorActionView(long Sequence, ApiTime At, ulong Operator, string Action, string Subject, long? Amount, string? Asset, string? TransferId)
{
    /// <summary>The view of an action.</summary>
    public static OperatorActionView From(OperatorAction a) => new(a.Sequence, ApiTime.Of(a.At), a.Operator, a.Action, a.Subject, a.Amount,
        a.Asset is { } x ? OwnedAccountView.AssetSymbol(x) : null, a.TransferId);
}

/// <summary>A page of operator actions, oldest first; <c>next</c> is the <c>after</c> of the next page.</summary>
public sealed record OperatorActionPage(IReadOnlyList<OperatorActionView> Actions, long? Next);
