using System.Security.Claims;
using System.Text.Json;
using ComputeGrid.Exchange.Pipeline;
using ComputeGrid.Exchange.StateMachine;
using ComputeGrid.Server.Trust;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace ComputeGrid.Server.Chain;

/// <summary>A share withdrawal to the chain: which node, how many shares, to which address.</summary>
public sealed record ShareWithdrawalInput
{
    /// <summary>The node whose shares are withdrawn (positive).</summary>
    public long Node { get; init; }

    /// <summary>Whole shares, positive: the caller's free shares of the node.</summary>
    public long Shares { get; init; }

    /// <summary>The address the token mints to (0x and 40 hex digits).</summary>
    public string To { get; init; } = "";
}

/// <summary>A share withdrawal as the API shows it; <c>token</c> is the node's share token once deployed.</summary>
public sealed record ShareWithdrawalView(string Id, string State, long Node, long Shares, string To, string? Token, string? TransactionHash, long? BlockNumber, int Attempts, string? Error)
{
    internal static ShareWithdrawalView Of(ShareWithdrawalRow r, string? token) => new(r.Id, JsonNamingPolicy.SnakeCaseLower.ConvertName(r.State.ToString()), r.Node, r.Shares, r.To,
        token, r.TransactionHash, r.BlockNumber, r.Attempts, r.Error);
}

/// <summary>The share bridge's routes under <c>/api/chain</c>.</summary>
public static class ShareBridgeEndpoints
{
    /// <summary>
    /// Maps <c>POST /api/chain/share-withdrawals</c> (customers and providers, trade scope: their own free shares only) and
    /// <c>GET /api/chain/share-withdrawals/{id}</c> (its owner, or operators). Without a chain they answer 404.
    /// </summary>
    public static void MapShareBridge(this IEndpointRouteBuilder app)
    {
        var g = app.MapGroup("/api/chain").WithTags("chain");
        g.MapPost("/share-withdrawals", WithdrawAsync).RequireAuthorization(Policies.Trader)
            .WithSummary("Withdraws free shares of a node from the caller to an address on chain, once per Idempotency-Key: moved to custody now, minted by the node's token, final after the chain's confirmations.");
        g.MapGet("/share-withdrawals/{id}", WithdrawalAsync).RequireAuthorization(Policies.Reader).WithSummary("One of the caller's share withdrawals (operators: anyone's).");
    }

    private static async Task<Results<Accepted<ShareWithdrawalView>, ProblemHttpResult>> WithdrawAsync(
        ShareWithdrawalInput input, [FromHeader(Name = "Idempotency-Key")] string? idempotencyKey, ClaimsPrincipal user, HttpContext http, CancellationToken ct)
    {
        if (http.RequestServices.GetService<ShareBridge>() is not { } bridge) return NoChain();
        if (string.IsNullOrWhiteSpace(idempotencyKey) || idempotencyKey.Length > BridgeOptions.IdempotencyKeyLengthMax)
            return Problems.BadRequest($"An Idempotency-Key header (1 to {BridgeOptions.IdempotencyKeyLengthMax} characters) is required: a retry with the same key is the same withdrawal.");
        if (input.Node <= 0) return Problems.BadRequest("node must be a positive node id.");
        if (input.Shares is <= 0 or > ExchangeStateMachine.ShareSupplyMax) return Problems.BadRequest($"shares must be a positive whole number, at most {ExchangeStateMachine.ShareSupplyMax}.");
        if (!BridgeEndpoints.IsAddress(input.To)) return Problems.BadRequest("to must be an address: 0x and 40 hex digits, not the zero address.");
        CallerIdentity caller = user.RequireCaller();
        // Shares are held by customers and providers; the holder is the caller, never named.
        if (caller.Principal.Kind is not (PrincipalKind.Customer or PrincipalKind.Provider)) return Problems.Forbidden("Only customers and providers hold shares.");
        ExchangeHost exchange = http.RequestServices.GetRequiredService<ExchangeHost>();
        if (await exchange.ReadAsync(v => v.ShareNode(input.Node) is null, ct)) return Problems.NotFound($"Node {input.Node} has issued no shares.");
        var (outcome, row) = await bridge.RequestAsync(caller.Principal.Id, input.Node, input.Shares, input.To, idempotencyKey, CancellationToken.None);
        return outcome switch
        {
            ShareWithdrawalOutcome.KeyReused => Problems.Unprocessable("This Idempotency-Key was used before for another share withdrawal (node, shares or address); use a new key."),
            ShareWithdrawalOutcome.InsufficientShares => Problems.Conflict($"You have fewer than {input.Shares} free shares of node {input.Node}; nothing moved."),
            _ => TypedResults.Accepted($"/api/chain/share-withdrawals/{row.Id}", ShareWithdrawalView.Of(row, http.RequestServices.GetRequiredService<BridgeStore>().ShareToken(row.Node))),
        };
    }

    private static async Task<Results<Ok<ShareWithdrawalView>, ProblemHttpResult>> WithdrawalAsync(string id, ClaimsPrincipal user, HttpContext http, IAuthorizationService authorization)
    {
        if (http.RequestServices.GetService<ShareBridge>() is null || http.RequestServices.GetService<BridgeStore>() is not { } store) return NoChain();
        ShareWithdrawalRow? row = store.ShareWithdrawal(id.ToLowerInvariant());
        // Another's withdrawal answers as one that does not exist.
        if (row is null || !await authorization.MayAsync(user, row.Principal)) return Problems.NotFound($"No share withdrawal {id} of yours.");
        return TypedResults.Ok(ShareWithdrawalView.Of(row, store.ShareToken(row.Node)));
    }

    private static ProblemHttpResult NoChain() => Problems.NotFound("This server runs without a chain (serve --chain RPC_URL --chain-key FILE, or --demo).");
}
