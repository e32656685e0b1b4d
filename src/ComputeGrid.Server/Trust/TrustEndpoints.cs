using System.Security.Claims;
using ComputeGrid.Exchange.Pipeline;
using ComputeGrid.Exchange.StateMachine;
using ComputeGrid.Server.Exchange;
using ComputeGrid.Ledger;
using ComputeGrid.Server.Inference;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;

namespace ComputeGrid.Server.Trust;

/// <summary>
/// Principals and credentials: who am I and my keys (any key), and the operators' endpoints that create principals,
/// issue and revoke keys, admit nodes and fund accounts. Every operator action that creates money or changes who may
/// do what is recorded with the operator who did it.
/// </summary>
public static class TrustEndpoints
{
    /// <summary>Maps <c>/api/me</c>, <c>/api/keys</c>, <c>/api/operators</c>, <c>/api/customers</c>, <c>/api/providers</c>, <c>/api/principals</c>, <c>/api/nodes</c>.</summary>
    public static IEndpointRouteBuilder MapTrust(this IEndpointRouteBuilder app)
    {
        var self = app.MapGroup("/api").WithTags("principals").RequireAuthorization(Policies.Self);
        self.MapGet("/me", MeAsync).WithSummary("The caller: its principal, the key it used, its accounts.");
        self.MapGet("/keys", (ClaimsPrincipal user, TrustStore store) => TypedResults.Ok(new ApiKeyList(store.KeysOf(user.RequireCaller().Principal.Id).Select(ApiKeyView.From).ToArray())))
            .WithSummary("The caller's keys (never their secrets).");
        self.MapPost("/keys", NewOwnKey).WithSummary("A new key for the caller, with at most the presenting key's scopes.");
        self.MapPost("/keys/{keyId}/rotate", RotateKeyAsync).WithSummary("A new key in place of one (same name and scopes); the old one stops working at once.");
        self.MapDelete("/keys/{keyId}", RevokeKeyAsync).WithSummary("Revokes a key: the next request with it gets 401.");

        var ops = app.MapGroup("/api").WithTags("operators").RequireAuthorization(Policies.Operator);
        ops.MapPost("/operators", NewOperator).WithSummary("A new operator (a person) and its key.");
        ops.MapDelete("/operators/{id}", DisableOperator).WithSummary("Disables an operator: every key of it stops working at once.");
        ops.MapPost("/customers", NewCustomerAsync).WithSummary("A new customer: its balance account and its first key (inference, trade, read).");
        ops.MapPost("/customers/{id}/fund", FundCustomerAsync).WithSummary("Funds a customer's balance from the treasury, once per funding_id; recorded with the operator.");
        ops.MapPost("/providers", NewProviderAsync).WithSummary("A new provider: its revenue and collateral accounts and its first key (trade, read).");
        ops.MapPost("/providers/{id}/collateral", FundCollateralAsync).WithSummary("Funds a provider's collateral from the treasury, once per funding_id.");
        ops.MapPost("/providers/{id}/nodes", AdmitNodeAsync).WithSummary("Admits a node for a provider: its id, Ed25519 public key and price ceiling.");
        ops.MapDelete("/nodes/{nodeId}", RevokeNode).WithSummary("Revokes a node's admission: its session ends at once.");
        ops.MapPost("/principals/{id}/keys", IssueKey).WithSummary("Issues a key for a principal.");
        ops.MapDelete("/principals/{id}", DisablePrincipal).WithSummary("Disables a customer, provider or node: its keys and sessions stop working at once.");

        var reads = app.MapGroup("/api").WithTags("operators").RequireAuthorization(Policies.OperatorRead);
        reads.MapGet("/principals", Results<Ok<PrincipalPage>, ProblemHttpResult> (string? kind, ulong? after, int? limit, TrustStore store, ServerLimits limits) =>
        {
            // The kind as the JSON writes it ("customer"); the framework's enum binding would take only "Customer".
            PrincipalKind? of = null;
            if (kind is not null)
            {
                if (!Enum.GetNames<PrincipalKind>().Any(k => k.Equals(kind, StringComparison.OrdinalIgnoreCase)))
                    return Problems.BadRequest($"'kind' must be one of: {string.Join(", ", Enum.GetNames<PrincipalKind>().Select(k => k.ToLowerInvariant()))}.");
                of = Enum.Parse<PrincipalKind>(kind, ignoreCase: true);
            }
            int n = Math.Clamp(limit ?? 100, 1, limits.PageMax);
            var page = store.List(of, after ?? 0, n + 1);
            return TypedResults.Ok(new PrincipalPage(page.Take(n).Select(PrincipalView.From).ToArray(), page.Count > n ? page[n - 1].Id : null));
        }).WithSummary("Principals by id, optionally of one kind.");
        reads.MapGet("/principals/{id}", PrincipalAsync).WithSummary("A principal with its keys and accounts.");
        reads.MapGet("/operator-actions", (long? after, int? limit, TrustStore store, ServerLimits limits) =>
        {
            int n = Math.Clamp(limit ?? 100, 1, limits.PageMax);
            var page = store.Actions(after ?? 0, n + 1);
            return TypedResults.Ok(new OperatorActionPage(page.Take(n).Select(OperatorActionView.From).ToArray(), page.Count > n ? page[n - 1].Sequence : null));
        }).WithSummary("What operators did (funding, admissions, principals), oldest first.");

        app.MapGet("/api/provider/nodes", (ClaimsPrincipal user, TrustStore store) =>
                TypedResults.Ok(new NodeAdmissionList(store.Nodes(user.RequireCaller().Principal.Id).Select(NodeAdmissionView.From).ToArray())))
            .RequireAuthorization(Policies.Provider).WithTags("principals").WithSummary("The nodes admitted for the calling provider.");
        return app;
    }

    // ------------------------------------------------------------------ the caller's own

    private static async Task<Ok<MeView>> MeAsync(ClaimsPrincipal user, TrustStore store, PrincipalLedger accounts, CancellationToken ct)
    {
        CallerIdentity caller = user.RequireCaller();
        Account[] owned = await accounts.BalancesAsync(caller.Principal, ct);
        return TypedResults.Ok(new MeView(PrincipalView.From(caller.Principal), store.FindKey(caller.CredentialId) is { } k ? ApiKeyView.From(k) : null,
            owned.Select(a => OwnedAccountView.From(a)).ToArray()));
    }

    private static Results<Created<IssuedKeyView>, ProblemHttpResult> NewOwnKey(NewKeyInput input, ClaimsPrincipal user, TrustStore store)
    {
        CallerIdentity caller = user.RequireCaller();
        if (!TryScopes(input.Scopes, caller.Scopes, out Scopes scopes, out ProblemHttpResult? bad)) return bad!;
        if ((scopes & ~caller.Scopes) != 0)
            return Problems.Forbidden($"A key can give a new key only its own scopes ({ScopeNames.Format(caller.Scopes)}).");
        return Issue(store, caller.Principal.Id, input.Name, scopes, caller.Principal.Id);
    }

    private static async Task<Results<Created<IssuedKeyView>, ProblemHttpResult>> RotateKeyAsync(string keyId, ClaimsPrincipal user, TrustStore store, IAuthorizationService authz)
    {
        if (store.FindKey(keyId) is not { } key || !await authz.MayAsync(user, key.Principal, change: true)) return NoKey(keyId);
        try
        {
            var (info, secret) = store.RotateKey(keyId, user.RequireCaller().Principal.Id);
            return TypedResults.Created($"/api/keys/{info.KeyId}", new IssuedKeyView(secret, ApiKeyView.From(info)));
        }
        catch (TrustStoreException e) when (e.Error == TrustError.NotFound) { return Problems.Conflict(e.Message); }
    }

    private static async Task<Results<Ok<ApiKeyView>, ProblemHttpResult>> RevokeKeyAsync(string keyId, ClaimsPrincipal user, TrustStore store, IAuthorizationService authz)
    {
        if (store.FindKey(keyId) is not { } key || !await authz.MayAsync(user, key.Principal, change: true)) return NoKey(keyId);
        return TypedResults.Ok(ApiKeyView.From(store.RevokeKey(keyId)!));
    }

    private static ProblemHttpResult NoKey(string keyId) => Problems.NotFound($"No key '{keyId}' of yours.");

    // ------------------------------------------------------------------ operators' actions

    private static Results<Created<CreatedPrincipalView>, ProblemHttpResult> NewOperator(NewNamedInput input, ClaimsPrincipal user, TrustStore store)
    {
        ulong by = user.RequireCaller().Principal.Id;
        Principal p;
        try { p = store.CreatePrincipal(PrincipalKind.Operator, input.Name, by); }
        catch (TrustStoreException e) when (e.Error is TrustError.NameTaken or TrustError.Invalid) { return Refused(e); }
        var (info, key) = store.IssueKey(p.Id, "first", Principal.AllowedScopes(PrincipalKind.Operator), by);
        store.Record(by, "operator-added", $"operator {p.Id} {p.Name}");
        return TypedResults.Created($"/api/principals/{p.Id}", new CreatedPrincipalView(PrincipalView.From(p), [], key, ApiKeyView.From(info)));
    }

    private static Results<Ok<PrincipalView>, ProblemHttpResult> DisableOperator(ulong id, ClaimsPrincipal user, TrustStore store)
    {
        if (store.Find(id) is not { Kind: PrincipalKind.Operator } p) return Problems.NotFound($"No operator {id}.");
        if (p.Disabled is null && store.List(PrincipalKind.Operator, 0, int.MaxValue).Count(o => o.Disabled is null) <= 1)
            return Problems.Conflict("This is the last enabled operator; add another before disabling it.");
        ulong by = user.RequireCaller().Principal.Id;
        Principal disabled = store.Disable(id)!;
        store.Record(by, "operator-disabled", $"operator {id} {p.Name}");
        return TypedResults.Ok(PrincipalView.From(disabled));
    }

    private static async Task<Results<Created<CreatedPrincipalView>, ProblemHttpResult>> NewCustomerAsync(NewCustomerInput input, ClaimsPrincipal user,
        TrustStore store, PrincipalLedger accounts, ExchangeHost exchange, InferenceHost inference, CancellationToken ct)
    {
        if (!inference.Latency.TryGetRegion(input.Region, out int region))
            return Problems.BadRequest($"'region' must be one of: {string.Join(", ", inference.Latency.Regions)}.");
        ulong by = user.RequireCaller().Principal.Id;
        Principal p;
        try { p = store.CreatePrincipal(PrincipalKind.Customer, input.Name, by, inference.Latency.Regions[region]); }
        catch (TrustStoreException e) when (e.Error is TrustError.NameTaken or TrustError.Invalid) { return Refused(e); }
        await accounts.CreateAccountsAsync(p, ct);
        // The exchange knows a customer as a trader from the start: its trading account is made now (money reaches it by deposit).
        await ExchangeCalls.RegisterTraderAsync(exchange, (long)p.Id);
        var (info, key) = store.IssueKey(p.Id, "default", Principal.AllowedScopes(PrincipalKind.Customer), by);
        store.Record(by, "customer-added", $"customer {p.Id} {p.Name}");
        return TypedResults.Created($"/api/principals/{p.Id}", new CreatedPrincipalView(PrincipalView.From(p), PrincipalLedger.AccountsOf(p), key, ApiKeyView.From(info)));
    }

    private static async Task<Results<Created<CreatedPrincipalView>, ProblemHttpResult>> NewProviderAsync(NewNamedInput input, ClaimsPrincipal user,
        TrustStore store, PrincipalLedger accounts, ExchangeHost exchange, CancellationToken ct)
    {
        ulong by = user.RequireCaller().Principal.Id;
        Principal p;
        try { p = store.CreatePrincipal(PrincipalKind.Provider, input.Name, by); }
        catch (TrustStoreException e) when (e.Error is TrustError.NameTaken or TrustError.Invalid) { return Refused(e); }
        await accounts.CreateAccountsAsync(p, ct);
        await ExchangeCalls.RegisterProviderAsync(exchange, (long)p.Id);
        var (info, key) = store.IssueKey(p.Id, "default", Principal.AllowedScopes(PrincipalKind.Provider), by);
        store.Record(by, "provider-added", $"provider {p.Id} {p.Name}");
        return TypedResults.Created($"/api/principals/{p.Id}", new CreatedPrincipalView(PrincipalView.From(p), PrincipalLedger.AccountsOf(p), key, ApiKeyView.From(info)));
    }

    private static Task<Results<Ok<FundView>, ProblemHttpResult>> FundCustomerAsync(ulong id, FundInput input, ClaimsPrincipal user, TrustStore store, PrincipalLedger accounts, CancellationToken ct) =>
        FundAsync(id, PrincipalKind.Customer, AccountCode.CustomerBalance, input, user, store, accounts, ct);

    /// <summary>
    /// Collateral is funded through the exchange, which mirrors it (each lease reserves its penalty from the mirror): the
    /// funding is an exchange command whose transfer id derives from the funding id, so a retry moves the money once.
    /// </summary>
    private static async Task<Results<Ok<FundView>, ProblemHttpResult>> FundCollateralAsync(ulong id, FundInput input, ClaimsPrincipal user, TrustStore store,
        PrincipalLedger accounts, ExchangeHost exchange, CancellationToken ct)
    {
        if (store.Find(id) is not { } target || target.Kind != PrincipalKind.Provider) return Problems.NotFound($"No provider {id}.");
        if (target.Disabled is not null) return Problems.Conflict($"Provider {id} is disabled.");
        ulong by = user.RequireCaller().Principal.Id;
        await accounts.CreateAccountsAsync(target, ct); // a provider whose accounts a crash left unmade gets them now
        await ExchangeCalls.RegisterProviderAsync(exchange, (long)id); // and one a crash left unregistered is registered now
        UInt128 transfer = PrincipalLedger.FundingId(id, AccountCode.ProviderCollateral, input.FundingId);
        var o = await exchange.SubmitAsync(new ExchangeCommand
        {
            Kind = ExchangeCommandKind.FundCollateral, Owner = (long)id, Amount = input.Amount,
            Account = ChartOfAccounts.SystemAccount(AccountCode.Treasury, ComputeGrid.Core.Asset.Usd), Account2 = transfer,
        }, CancellationToken.None);
        if (!o.Result.Ok) return Problems.Conflict($"The exchange refused the funding: {o.Result.Error}.");
        bool replayed = o.Settlement == CreateTransferResult.Exists;
        if (!replayed && o.Settlement != CreateTransferResult.Ok)
            return o.Settlement.ToString()!.StartsWith("ExistsWith", StringComparison.Ordinal)
                ? Problems.Conflict($"funding_id '{input.FundingId}' was used before with another amount or by another operator; use a new funding_id.")
                : Problems.Conflict($"The ledger refused the funding: {o.Settlement}.");
        if (!replayed) store.Record(by, "fund", $"provider {id} {AccountCode.ProviderCollateral}", input.Amount, ComputeGrid.Core.Asset.Usd.Code, transfer);
        UInt128 account = ChartOfAccounts.PrincipalAccount(AccountCode.ProviderCollateral, id);
        Account[] now = await accounts.Ledger.LookupAccountsAsync([account], ct);
        return TypedResults.Ok(new FundView(id, account, input.Amount, ComputeGrid.Core.Asset.Usd.Symbol, transfer, replayed, now.Length == 1 ? now[0].AvailableCredit : 0));
    }

    private static async Task<Results<Ok<FundView>, ProblemHttpResult>> FundAsync(ulong id, PrincipalKind kind, AccountCode code, FundInput input, ClaimsPrincipal user,
        TrustStore store, PrincipalLedger accounts, CancellationToken ct)
    {
        if (store.Find(id) is not { } target || target.Kind != kind) return Problems.NotFound($"No {kind.ToString().ToLowerInvariant()} {id}.");
        if (target.Disabled is not null) return Problems.Conflict($"{kind} {id} is disabled.");
        ulong by = user.RequireCaller().Principal.Id;
        await accounts.CreateAccountsAsync(target, ct); // a principal whose accounts a crash left unmade gets them now
        var (outcome, transfer) = await accounts.FundAsync(target, code, input.Amount, input.FundingId, by, CancellationToken.None);
        if (outcome == FundOutcome.Conflict)
            return Problems.Conflict($"funding_id '{input.FundingId}' was used before with another amount or by another operator; use a new funding_id.");
        if (outcome == FundOutcome.NoAccount) return Problems.Conflict($"The account of {kind.ToString().ToLowerInvariant()} {id} does not exist.");
        // The transfer names the operator (user_data_64); the action log names it for people, once per funding.
        if (outcome == FundOutcome.Funded)
            store.Record(by, "fund", $"{kind.ToString().ToLowerInvariant()} {id} {code}", input.Amount, ComputeGrid.Core.Asset.Usd.Code, transfer);
        UInt128 account = ChartOfAccounts.PrincipalAccount(code, id);
        Account[] now = await accounts.Ledger.LookupAccountsAsync([account], ct);
        return TypedResults.Ok(new FundView(id, account, input.Amount, ComputeGrid.Core.Asset.Usd.Symbol, transfer, outcome == FundOutcome.Replayed,
            now.Length == 1 ? now[0].AvailableCredit : 0));
    }

    private static async Task<Results<Created<NodeAdmissionView>, ProblemHttpResult>> AdmitNodeAsync(ulong id, AdmitNodeInput input, ClaimsPrincipal user,
        TrustStore store, PrincipalLedger accounts, CancellationToken ct)
    {
        byte[] key;
        try { key = Convert.FromBase64String(input.PublicKey); }
        catch (FormatException) { return Problems.BadRequest("'public_key' must be base64 of a 32-byte Ed25519 public key."); }
        ulong by = user.RequireCaller().Principal.Id;
        NodeAdmission admission;
        try { admission = store.AdmitNode(id, input.NodeId, key, input.PriceCeilingMicroUsdPer1kTokens, by); }
        catch (TrustStoreException e) when (e.Error != TrustError.QuotaReached) { return Refused(e); }
        await accounts.CreateAccountsAsync(store.Find(admission.Principal)!, ct);
        store.Record(by, "node-admitted", $"node {admission.NodeId} ({admission.Principal}) of provider {id}, ceiling {input.PriceCeilingMicroUsdPer1kTokens}");
        return TypedResults.Created($"/api/provider/nodes", NodeAdmissionView.From(admission));
    }

    private static Results<Ok<NodeAdmissionView>, ProblemHttpResult> RevokeNode(string nodeId, ClaimsPrincipal user, TrustStore store, NodeSessions sessions, RemoteNodes nodes)
    {
        if (store.RevokeNode(nodeId) is not { } n) return Problems.NotFound($"No admitted node '{nodeId}'.");
        sessions.End(nodeId);
        nodes.Disconnect(nodeId);
        store.Record(user.RequireCaller().Principal.Id, "node-revoked", $"node {nodeId} ({n.Principal})");
        return TypedResults.Ok(NodeAdmissionView.From(n));
    }

    private static Results<Created<IssuedKeyView>, ProblemHttpResult> IssueKey(ulong id, NewKeyInput input, ClaimsPrincipal user, TrustStore store)
    {
        if (store.Find(id) is not { } p || p.Kind == PrincipalKind.Node) return Problems.NotFound($"No operator, customer or provider {id}.");
        Scopes allowed = Principal.AllowedScopes(p.Kind);
        if (!TryScopes(input.Scopes, allowed, out Scopes scopes, out ProblemHttpResult? bad)) return bad!;
        ulong by = user.RequireCaller().Principal.Id;
        var result = Issue(store, id, input.Name, scopes, by);
        if (result.Result is Created<IssuedKeyView> created) store.Record(by, "key-issued", $"key {created.Value!.Key.KeyId} of {p.Kind.ToString().ToLowerInvariant()} {id}");
        return result;
    }

    private static Results<Ok<PrincipalView>, ProblemHttpResult> DisablePrincipal(ulong id, ClaimsPrincipal user, TrustStore store, NodeSessions sessions, RemoteNodes nodes)
    {
        if (store.Find(id) is not { } p || p.Kind == PrincipalKind.Operator) return Problems.NotFound($"No customer, provider or node {id} (operators: DELETE /api/operators/{{id}}).");
        Principal disabled = store.Disable(id)!;
        if (p.Kind == PrincipalKind.Node)
        {
            sessions.End(p.Name);
            nodes.Disconnect(p.Name);
        }
        store.Record(user.RequireCaller().Principal.Id, "principal-disabled", $"{p.Kind.ToString().ToLowerInvariant()} {id} {p.Name}");
        return TypedResults.Ok(PrincipalView.From(disabled));
    }

    private static async Task<Results<Ok<PrincipalDetailView>, ProblemHttpResult>> PrincipalAsync(ulong id, TrustStore store, PrincipalLedger accounts, CancellationToken ct)
    {
        if (store.Find(id) is not { } p) return Problems.NotFound($"No principal {id}.");
        Account[] owned = await accounts.BalancesAsync(p, ct);
        return TypedResults.Ok(new PrincipalDetailView(PrincipalView.From(p), store.KeysOf(id).Select(ApiKeyView.From).ToArray(), owned.Select(a => OwnedAccountView.From(a)).ToArray()));
    }

    // ------------------------------------------------------------------ helpers

    private static Results<Created<IssuedKeyView>, ProblemHttpResult> Issue(TrustStore store, ulong principal, string name, Scopes scopes, ulong by)
    {
        try
        {
            var (info, key) = store.IssueKey(principal, name, scopes, by);
            return TypedResults.Created($"/api/keys/{info.KeyId}", new IssuedKeyView(key, ApiKeyView.From(info)));
        }
        catch (TrustStoreException e) when (e.Error != TrustError.QuotaReached) { return Refused(e); }
    }

    private static bool TryScopes(string[]? names, Scopes @default, out Scopes scopes, out ProblemHttpResult? problem)
    {
        problem = null;
        scopes = @default;
        if (names is null) return true;
        if (!ScopeNames.TryParse(names, out scopes, out string? unknown))
        {
            problem = Problems.BadRequest($"'{unknown}' is not a scope; the scopes are read, trade, inference and admin.");
            return false;
        }
        if (scopes == Scopes.None)
        {
            problem = Problems.BadRequest("A key needs at least one scope.");
            return false;
        }
        return true;
    }

    private static ProblemHttpResult Refused(TrustStoreException e) => e.Error switch
    {
        TrustError.NameTaken => Problems.Conflict(e.Message),
        TrustError.NotFound => Problems.NotFound(e.Message),
        _ => Problems.BadRequest(e.Message),
    };
}
