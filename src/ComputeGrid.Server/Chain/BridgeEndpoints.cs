using System.Security.Claims;
using System.Text.Json;
using ComputeGrid.Core;
using ComputeGrid.Ledger;
using ComputeGrid.Server.Trust;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace ComputeGrid.Server.Chain;

/// <summary>A withdrawal to the chain: how much, and to which address.</summary>
public sealed record WithdrawalInput
{
    /// <summary>Micro-USD, positive.</summary>
    public long Amount { get; init; }

    /// <summary>The address paid (0x and 40 hex digits).</summary>
    public string To { get; init; } = "";
}

/// <summary>A withdrawal as the API shows it.</summary>
public sealed record WithdrawalView(string Id, string State, long Amount, string To, string Account, string? TransactionHash, long? BlockNumber, int Attempts, string? Error)
{
    internal static WithdrawalView Of(WithdrawalRow r) => new(r.Id, JsonNamingPolicy.SnakeCaseLower.ConvertName(r.State.ToString()), r.Amount, r.To, Ids.Format(r.Account),
        r.TransactionHash, r.BlockNumber, r.Attempts, r.Error);
}

/// <summary>Where the caller deposits: the vault, and (<c>AccountHex</c>) the bytes32 that names the caller's account in <c>deposit(amount, account)</c>.</summary>
public sealed record DepositInstructions(string Vault, string Stablecoin, string Account, string AccountHex, int Confirmations);

/// <summary>The latest anchored checkpoint, and what the anchoring covered.</summary>
public sealed record AnchorView(ulong Op, string Root, string ChainHead, string Anchor, string TransactionHash, long BlockNumber, IReadOnlyList<ulong> CoveredOps);

/// <summary>The bridge's and the anchor's routes under <c>/api/chain</c>.</summary>
public static class BridgeEndpoints
{
    /// <summary>
    /// Maps <c>POST /api/chain/withdrawals</c> (customers and providers, trade scope: from their own balance only),
    /// <c>GET /api/chain/withdrawals/{id}</c> (its owner, or operators), <c>GET /api/chain/deposit-account</c> (read
    /// scope: the caller's own) and <c>GET /api/chain/anchors/latest</c> (public, like checkpoint roots). Without a
    /// chain they answer 404.
    /// </summary>
    public static void MapBridge(this IEndpointRouteBuilder app)
    {
        var g = app.MapGroup("/api/chain").WithTags("chain");
        g.MapPost("/withdrawals", WithdrawAsync).RequireAuthorization(Policies.Trader)
            .WithSummary("Withdraws from the caller's balance (a provider's: its revenue) to an address on chain, once per Idempotency-Key: held now, paid by the vault, final after the chain's confirmations.");
        g.MapGet("/withdrawals/{id}", WithdrawalAsync).RequireAuthorization(Policies.Reader).WithSummary("One of the caller's withdrawals (operators: anyone's).");
        g.MapGet("/deposit-account", DepositAccountAsync).RequireAuthorization(Policies.Reader)
            .WithSummary("The vault and the bytes32 naming the caller's account: Vault.deposit(amount, account) credits it after the chain's confirmations.");
        g.MapGet("/anchors/latest", LatestAnchor).AllowAnonymous().WithSummary("The latest checkpoint anchored on chain (op, root, log head, transaction), and the older checkpoints it covered.");
    }

    private static async Task<Results<Accepted<WithdrawalView>, Ok<WithdrawalView>, ProblemHttpResult>> WithdrawAsync(
        WithdrawalInput input, [FromHeader(Name = "Idempotency-Key")] string? idempotencyKey, ClaimsPrincipal user, HttpContext http, CancellationToken ct)
    {
        if (http.RequestServices.GetService<BridgeWithdrawals>() is not { } withdrawals) return NoChain();
        if (string.IsNullOrWhiteSpace(idempotencyKey) || idempotencyKey.Length > BridgeOptions.IdempotencyKeyLengthMax)
            return Problems.BadRequest($"An Idempotency-Key header (1 to {BridgeOptions.IdempotencyKeyLengthMax} characters) is required: a retry with the same key is the same withdrawal.");
        if (input.Amount is <= 0 or > BridgeOptions.WithdrawalAmountMax)
            return Problems.BadRequest($"amount must be a positive integer of micro-USD, at most {BridgeOptions.WithdrawalAmountMax}.");
        if (!IsAddress(input.To)) return Problems.BadRequest("to must be an address: 0x and 40 hex digits, not the zero address.");
        CallerIdentity caller = user.RequireCaller();
        // The account is the caller's own, derived from its credential: nobody names an account.
        UInt128 own = ChartOfAccounts.PrincipalAccount(caller.Principal.Kind == PrincipalKind.Provider ? AccountCode.ProviderRevenue : AccountCode.CustomerBalance, caller.Principal.Id);
        var (outcome, row) = await withdrawals.RequestAsync(caller.Principal.Id, own, input.Amount, input.To, idempotencyKey, ct);
        return outcome switch
        {
            WithdrawalRequestOutcome.KeyReused => Problems.Unprocessable("This Idempotency-Key was used before for another withdrawal (amount or address); use a new key."),
            WithdrawalRequestOutcome.InsufficientFunds => Problems.Conflict($"Your balance cannot cover a withdrawal of {input.Amount} micro-USD; nothing moved."),
            _ => TypedResults.Accepted($"/api/chain/withdrawals/{row!.Id}", WithdrawalView.Of(row)),
        };
    }

    private static async Task<Results<Ok<WithdrawalView>, ProblemHttpResult>> WithdrawalAsync(string id, ClaimsPrincipal user, HttpContext http, IAuthorizationService authorization)
    {
        if (http.RequestServices.GetService<BridgeStore>() is not { } store) return NoChain();
        WithdrawalRow? row = store.Withdrawal(id.ToLowerInvariant());
        // Another's withdrawal answers as one that does not exist.
        if (row is null || !await authorization.MayAsync(user, row.Principal)) return Problems.NotFound($"No withdrawal {id} of yours.");
        return TypedResults.Ok(WithdrawalView.Of(row));
    }

    private static Results<Ok<DepositInstructions>, ProblemHttpResult> DepositAccountAsync(ClaimsPrincipal user, HttpContext http)
    {
        if (http.RequestServices.GetService<ChainConnection>() is not { } chain) return NoChain();
        CallerIdentity caller = user.RequireCaller();
        if (caller.Principal.Kind is not (PrincipalKind.Customer or PrincipalKind.Provider))
            return Problems.NotFound("Operators have no account a deposit credits; a deposit naming no customer's or provider's account is held in suspense.");
        UInt128 own = ChartOfAccounts.PrincipalAccount(caller.Principal.Kind == PrincipalKind.Provider ? AccountCode.ProviderRevenue : AccountCode.CustomerBalance, caller.Principal.Id);
        return TypedResults.Ok(new DepositInstructions(chain.Info.Vault, chain.Info.Stablecoin, Ids.Format(own), BridgeIds.AccountToBytes32(own), chain.Confirmations));
    }

    private static Results<Ok<AnchorView>, ProblemHttpResult> LatestAnchor(HttpContext http)
    {
        if (http.RequestServices.GetService<BridgeStore>() is not { } store || http.RequestServices.GetService<ChainConnection>() is not { } chain) return NoChain();
        if (store.LatestAnchored() is not { } a) return Problems.NotFound("No checkpoint has been anchored yet.");
        IReadOnlyList<ulong> covered = store.CoveredBy(a.Op, 1_000);
        return TypedResults.Ok(new AnchorView(a.Op, "0x" + a.Root, "0x" + a.ChainHead, chain.Info.Anchor, a.TransactionHash!, a.BlockNumber ?? -1, covered));
    }

    internal static bool IsAddress(string? s) =>
        s is { Length: 42 } && s.StartsWith("0x", StringComparison.OrdinalIgnoreCase) && s.AsSpan(2).ContainsOnlyHex() && s.AsSpan(2).ContainsAnyExcept('0');

    private static bool ContainsOnlyHex(this ReadOnlySpan<char> s)
    {
        foreach (char c in s) if (!char.IsAsciiHexDigit(c)) return false;
        return true;
    }

    private static ProblemHttpResult NoChain() => Problems.NotFound("This server runs without a chain (serve --chain RPC_URL --chain-key FILE, or --demo).");
}
