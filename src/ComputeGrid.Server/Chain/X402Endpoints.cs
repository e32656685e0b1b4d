using System.Text.Json;
using ComputeGrid.Chain.X402;
using ComputeGrid.Core;
using ComputeGrid.Server.Trust;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace ComputeGrid.Server.Chain;

/// <summary>A settlement intent as operators see it.</summary>
public sealed record X402SettlementView(string Payer, string Nonce, string Asset, string PayTo, long Value, long Cost, string Source, string State,
    string? TxHash, string? Error, string RequestId, ApiTime CreatedAt, ApiTime UpdatedAt);

/// <summary>A page of settlement intents.</summary>
public sealed record X402SettlementList(IReadOnlyList<X402SettlementView> Settlements, IReadOnlyDictionary<string, long> Counts);

/// <summary>
/// The x402 facilitator API (<c>/x402/verify</c>, <c>/x402/settle</c>, <c>/x402/supported</c>, the official request and
/// response shapes, camelCase as <c>@x402/core</c>'s <c>HTTPFacilitatorClient</c> speaks them) and the operators' view of
/// settlements. Who may call what:
/// <list type="bullet">
/// <item><c>GET /x402/supported</c> and <c>POST /x402/verify</c> are public: they read nothing private and cost a signature
/// recovery and two chain reads; anonymous callers are held to the per-address rate limit of every public route.</item>
/// <item><c>POST /x402/settle</c> needs an API key (customers with the inference scope, or operators): it spends the
/// server's gas, so it is metered per principal by the key's rate limit and attributable.</item>
/// </list>
/// Only our chain and our token are settled (others: <c>invalid_network</c> / asset mismatch). A settle waits until its
/// transaction is mined (not for N confirmations), as the official facilitator does; the settler follows it from there.
/// </summary>
public static class X402Endpoints
{
    /// <summary>The longest a settle waits for its transaction to be mined before answering with the hash (success still true).</summary>
    public static readonly TimeSpan SettleWaitMax = TimeSpan.FromSeconds(30);

    /// <summary>The most settlements one listing returns.</summary>
    public const int ListLimitMax = 1_000;

    /// <summary>Maps the facilitator API and <c>GET /api/chain/settlements</c>.</summary>
    public static void MapX402(this IEndpointRouteBuilder app)
    {
        var f = app.MapGroup("/x402").WithTags("x402");
        f.MapGet("/supported", Supported).AllowAnonymous()
            .WithSummary("The facilitator's kinds (x402 v2, exact, this chain), extensions and signer (the server's account).");
        f.MapPost("/verify", VerifyAsync).AllowAnonymous().Accepts<FacilitatorRequest>("application/json").DisableValidation()
            .WithSummary("Verifies an x402 payment against requirements (signature, payTo, window, value, nonce unused here and on chain, balance); reserves nothing.");
        f.MapPost("/settle", SettleAsync).RequireAuthorization(Policies.Facilitator).Accepts<FacilitatorRequest>("application/json").DisableValidation()
            .WithSummary("Verifies, then settles an x402 payment on chain from the server's account (transferWithAuthorization); answers once it is mined.");
        app.MapGet("/api/chain/settlements", List).RequireAuthorization(Policies.OperatorRead).WithTags("chain")
            .WithSummary("x402 settlement intents in a state (reserved, sent, settled, failed, released; default failed), oldest change first, with the counts per state.");
    }

    private static Results<ContentHttpResult, ProblemHttpResult> Supported(HttpContext http)
    {
        if (http.RequestServices.GetService<X402Payments>() is not { } x402) return NoChain();
        var body = new SupportedResponse([new SupportedKind(2, X402Requirements.SchemeExact, x402.Requirements.Network)], [],
            new Dictionary<string, IReadOnlyList<string>> { ["eip155:*"] = [x402.Chain.Account] });
        return Json(body, X402Json.Default.SupportedResponse);
    }

    private static async Task<Results<ContentHttpResult, ProblemHttpResult>> VerifyAsync(HttpContext http, CancellationToken ct)
    {
        if (http.RequestServices.GetService<X402Payments>() is not { } x402) return NoChain();
        (FacilitatorRequest? request, ProblemHttpResult? bad) = await ReadAsync(http);
        if (bad is not null) return bad;
        X402Check check = await x402.CheckAsync(request!.PaymentPayload, request.PaymentRequirements, reserve: false, ct);
        return Json(check.Response, X402Json.Default.VerifyResponse);
    }

    private static async Task<Results<ContentHttpResult, ProblemHttpResult>> SettleAsync(HttpContext http, CancellationToken ct)
    {
        if (http.RequestServices.GetService<X402Payments>() is not { } x402) return NoChain();
        (FacilitatorRequest? request, ProblemHttpResult? bad) = await ReadAsync(http);
        if (bad is not null) return bad;
        PaymentPayload payload = request!.PaymentPayload;
        string network = request.PaymentRequirements.Network;
        X402Check check = await x402.CheckAsync(payload, request.PaymentRequirements, reserve: true, ct);
        if (!check.IsValid)
        {
            // A retry of a settle that went through answers as the first did (the same authorization, its transaction).
            if (check.Key != default && x402.Store.Find(check.Key) is { Source: X402Source.Facilitator, State: X402State.Sent or X402State.Settled, TxHash: { } done }
                && x402.Store.Find(check.Key)!.Signature == payload.Payload.Signature)
                return Json(new SettleResponse(true, done, network, check.Response.Payer), X402Json.Default.SettleResponse);
            return Json(new SettleResponse(false, "", network, check.Response.Payer, check.Response.InvalidReason, check.Response.InvalidMessage), X402Json.Default.SettleResponse);
        }
        X402Intent intent = X402Payments.IntentOf(payload, check, payload.Resource?.Url ?? "", 0, X402Source.Facilitator);
        if (!x402.Store.TryInsert(intent))
        {
            x402.Nonces.MarkSettled(check.Key);
            return Json(new SettleResponse(false, "", network, check.Response.Payer, X402Reasons.Of(X402Verdict.NonceAlreadyUsed), "this authorization was presented before"),
                X402Json.Default.SettleResponse);
        }
        string hash;
        try { hash = await x402.Settler.SendAsync(intent, CancellationToken.None); }
        catch (X402SettleException e)
        {
            return Json(new SettleResponse(false, "", network, check.Response.Payer, "transaction_failed", e.Message), X402Json.Default.SettleResponse);
        }
        catch (Exception e) when (e is HttpRequestException or Nethereum.JsonRpc.Client.RpcClientUnknownException or Nethereum.JsonRpc.Client.RpcClientTimeoutException)
        {
            // The intent is durable: it is sent as soon as the chain answers again, so the caller must not pay anew.
            x402.Settler.Defer(intent);
            return Json(new SettleResponse(false, "", network, check.Response.Payer, "settle_deferred", $"the chain is unreachable ({e.Message}); the payment will be settled, do not resubmit another"),
                X402Json.Default.SettleResponse);
        }
        // Mined (one confirmation) is what the official facilitator waits for; N confirmations are the settler's.
        var deadline = x402.Time.GetUtcNow() + SettleWaitMax;
        while (x402.Time.GetUtcNow() < deadline)
        {
            var receipt = await x402.Chain.Web3.Eth.Transactions.GetTransactionReceipt.SendRequestAsync(hash);
            if (receipt is not null)
            {
                bool ok = receipt.Status?.Value == System.Numerics.BigInteger.One;
                return Json(new SettleResponse(ok, hash, network, check.Response.Payer, ok ? null : "transaction_failed", ok ? null : "the transaction reverted",
                    check.Value.ToString(System.Globalization.CultureInfo.InvariantCulture)), X402Json.Default.SettleResponse);
            }
            await Task.Delay(TimeSpan.FromMilliseconds(50), x402.Time, http.RequestAborted);
        }
        return Json(new SettleResponse(true, hash, network, check.Response.Payer, ErrorMessage: "sent, not yet mined: the server follows it to its end"),
            X402Json.Default.SettleResponse);
    }

    private static Results<Ok<X402SettlementList>, ProblemHttpResult> List(HttpContext http, string? state, int? limit)
    {
        if (http.RequestServices.GetService<X402Payments>() is not { } x402) return NoChain();
        X402State wanted = X402State.Failed;
        if (state is not null && !Enum.TryParse(state, ignoreCase: true, out wanted))
            return Problems.BadRequest($"'state' must be one of: {string.Join(", ", Enum.GetNames<X402State>().Select(n => n.ToLowerInvariant()))}.");
        int n = limit ?? 100;
        if (n is < 1 or > ListLimitMax) return Problems.BadRequest($"'limit' must be in [1, {ListLimitMax}].");
        var rows = x402.Store.List([wanted], n).Select(i => new X402SettlementView(i.Key.From.ToChecksumString(), i.Key.Nonce.ToString(), i.Key.Asset.ToChecksumString(),
            i.PayTo.ToChecksumString(), i.Value, i.Cost, i.Source.ToString().ToLowerInvariant(), i.State.ToString().ToLowerInvariant(), i.TxHash, i.Error, i.RequestId,
            ApiTime.Of(DateTimeOffset.FromUnixTimeMilliseconds(i.CreatedUnixMs)), ApiTime.Of(DateTimeOffset.FromUnixTimeMilliseconds(i.UpdatedUnixMs)))).ToArray();
        var counts = x402.Store.Counts().ToDictionary(c => c.Key.ToString().ToLowerInvariant(), c => c.Value);
        return TypedResults.Ok(new X402SettlementList(rows, counts));
    }

    private static async Task<(FacilitatorRequest?, ProblemHttpResult?)> ReadAsync(HttpContext http)
    {
        try
        {
            FacilitatorRequest? request = await JsonSerializer.DeserializeAsync(http.Request.Body, X402Json.Default.FacilitatorRequest, http.RequestAborted);
            return request is null ? (null, Problems.BadRequest("The body is JSON null; send {x402Version, paymentPayload, paymentRequirements}.")) : (request, null);
        }
        catch (JsonException e)
        {
            return (null, Problems.BadRequest($"The body is not an x402 facilitator request ({{x402Version, paymentPayload, paymentRequirements}}): {e.Message.ReplaceLineEndings(" ")}"));
        }
    }

    private static ContentHttpResult Json<T>(T value, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> type) =>
        TypedResults.Content(JsonSerializer.Serialize(value, type), "application/json");

    private static ProblemHttpResult NoChain() =>
        Problems.NotFound("This server runs without a chain (serve --chain RPC_URL --chain-key FILE, or --demo): it settles no x402 payments.");
}
