using System.Globalization;
using System.Text.Json;
using ComputeGrid.Chain.X402;
using ComputeGrid.Inference.Routing;
using ComputeGrid.Ledger;
using ComputeGrid.Server.Inference;
using ComputeGrid.Server.Trust;
using Microsoft.AspNetCore.Http;

namespace ComputeGrid.Server.Chain;

/// <summary>A test-only fault of the x402 paid path, from <c>CG_FAULT</c> (read once at start), for the crash tests.</summary>
public enum X402Fault
{
    /// <summary>None.</summary>
    None,
    /// <summary><c>x402-kill-before-send</c>: the request was served (its charge captured or queued), the intent is Reserved, nothing sent.</summary>
    KillBeforeSend,
    /// <summary><c>x402-kill-after-answer</c>: the transaction is broadcast and the answer flushed; the settlement has not landed.</summary>
    KillAfterAnswer,
}

/// <summary>Reads <see cref="X402Fault"/> from <c>CG_FAULT</c>.</summary>
public static class X402Faults
{
    /// <summary>The fault asked for (values not starting with <c>x402-</c> belong to other components).</summary>
    public static X402Fault FromEnvironment() => Environment.GetEnvironmentVariable(InferenceFaults.Variable) switch
    {
        "x402-kill-before-send" => X402Fault.KillBeforeSend,
        "x402-kill-after-answer" => X402Fault.KillAfterAnswer,
        var other when other?.StartsWith("x402-", StringComparison.Ordinal) == true =>
            throw new ArgumentException($"{InferenceFaults.Variable}='{other}' is not an x402 fault (x402-kill-before-send, x402-kill-after-answer)."),
        _ => X402Fault.None,
    };
}

/// <summary>
/// <c>POST /v1/embeddings</c> paid per request with x402 v2, by a caller without an API key. In order:
/// <list type="number">
/// <item>Quote: the body's tokens at the price of the node the router ranks first (<see cref="InferenceGateway.Quote"/>); no
/// <c>PAYMENT-SIGNATURE</c> → 402 with <c>PAYMENT-REQUIRED</c> for exactly that amount.</item>
/// <item>Check (<see cref="X402Payments.CheckAsync"/>): signature, amount ≥ the quote, payTo, window, nonce unused here and on
/// chain, balance; the nonce is reserved (of concurrent requests carrying one authorization, one passes). Any failure →
/// 402 with the official reason, nothing run, nothing posted.</item>
/// <item>Persist the settlement intent (durable), credit the payer's own ledger account from the receivable (durable).</item>
/// <item>Run exactly like a keyed request, paying from the payer's account (hold, run, capture: node revenue or share pool,
/// platform fee), routed only to nodes no dearer than the quote so the hold fits the credit. Not served → the credit goes
/// back, the intent is Released and never sent.</item>
/// <item>Send <c>transferWithAuthorization</c> (signed, its hash recorded, broadcast) and answer with <c>PAYMENT-RESPONSE</c>
/// carrying the hash, without waiting for a block; the settler follows it to N confirmations.</item>
/// </list>
/// Ids derive from the authorization (payer, nonce): the hold is named by it, the ledger transfers too, so a restart at
/// any point posts nothing twice.
/// </summary>
public static class X402Embeddings
{
    private static readonly X402Fault Fault = X402Faults.FromEnvironment();

    /// <summary>Serves one keyless request; the flag asks the caller to kill the process once the answer is flushed (test fault).</summary>
    internal static async Task<(StoredResponse Response, bool KillAfterAnswer)> HandleAsync(InferenceEndpoints.EmbeddingsRequest request, HttpContext http,
        InferenceHost host, X402Payments x402)
    {
        GatewayQuote quote = host.Gateway.Quote(request.Model, request.Inputs, request.Region, request.Preferences);
        if (quote.Status != 200) return (Error(quote.Status, quote.Status == 400 ? "invalid_request_error" : "server_error",
            quote.Status == 400 ? null : "no_node_available", quote.Problem ?? "No price."), false);
        string resource = $"{http.Request.Scheme}://{http.Request.Host}{http.Request.Path}";
        const string Description = "OpenAI-compatible embeddings: this body's tokens at the chosen node's price";

        string? header = http.Request.Headers[X402Headers.PaymentSignatureName].FirstOrDefault();
        if (header is null)
            return (PaymentRequired(x402, resource, Description, quote.CostMicroUsd, null,
                $"This request costs {quote.CostMicroUsd} micro-USD ({quote.Tokens} tokens at {quote.PriceMicroUsdPer1kTokens} micro-USD per 1k on {quote.Node}): pay with x402 (PAYMENT-SIGNATURE) or present an API key."), false);
        if (!X402Headers.TryDecodePaymentPayload(header, out PaymentPayload? payload, out string decodeError))
            return (PaymentRequired(x402, resource, Description, quote.CostMicroUsd, X402Reasons.Of(X402Verdict.InvalidPayload), decodeError), false);

        PaymentRequirements requirements = x402.Requirements.For(quote.CostMicroUsd);
        X402Check check;
        try { check = await x402.CheckAsync(payload!, requirements, reserve: true, http.RequestAborted); }
        catch (Exception e) when (e is HttpRequestException or Nethereum.JsonRpc.Client.RpcClientUnknownException or Nethereum.JsonRpc.Client.RpcResponseException
            or Nethereum.JsonRpc.Client.RpcClientTimeoutException)
        {
            return (Error(503, "server_error", "chain_unavailable", $"The chain cannot be asked about this payment now ({e.Message}); nothing was charged. Retry."), false);
        }
        if (!check.IsValid)
            return (PaymentRequired(x402, resource, Description, quote.CostMicroUsd, check.Response.InvalidReason, check.Response.InvalidMessage ?? check.Response.InvalidReason!), false);

        // From here the nonce is ours: persist the intent before anything else, so no crash can forget it.
        NonceKey key = check.Key;
        string requestKey = X402Ledger.RequestKey(key);
        X402Intent intent = X402Payments.IntentOf(payload!, check, requestKey, quote.CostMicroUsd, X402Source.Embeddings);
        if (!x402.Store.TryInsert(intent))
        {
            x402.Nonces.MarkSettled(key);
            return (PaymentRequired(x402, resource, Description, quote.CostMicroUsd, X402Reasons.Of(X402Verdict.NonceAlreadyUsed), "this authorization was presented before"), false);
        }
        if (!await CreditAsync(x402, key, check.Value))
        {
            x402.Store.MarkFinal(key, X402State.Released, "the ledger refused the payer's credit");
            return (Error(503, "server_error", "ledger_unavailable", "The ledger could not take this payment now; nothing was charged and the authorization will not be used. Sign a new one and retry."), false);
        }

        // Only nodes no dearer than the quote: the hold (the most the request may cost on any node it fails over to) then
        // fits the credit. The fingerprint names the request as a keyed one's does.
        RoutingPreferences preferences = request.Preferences with
        {
            MaxPriceMicroUsdPer1kTokens = Math.Min(request.Preferences.MaxPriceMicroUsdPer1kTokens ?? long.MaxValue, quote.PriceMicroUsdPer1kTokens),
            AllowFallbacks = false,
        };
        var paid = request with { Preferences = preferences };
        UInt128 fingerprint = RequestFingerprint.Of(request.Model.Id, request.Inputs, request.Base64, request.Dimensions, host.Latency.Regions[request.Region],
            preferences, host.Latency.Regions);
        StoredResponse answer;
        try { answer = await InferenceEndpoints.RunAsync(host, 0, paid, requestKey, fingerprint, http.RequestAborted, X402Ledger.PayerAccount(key.From)); }
        catch (OperationCanceledException)
        {
            await ReleaseAsync(x402, key, check.Value, "the client went away before its answer");
            throw;
        }
        if (answer.Status != 200)
        {
            await ReleaseAsync(x402, key, check.Value, $"not served: {answer.Status}");
            return (answer, false);
        }

        if (Fault == X402Fault.KillBeforeSend) InferenceGateway.KillSelf();
        SettleResponse settlement;
        try
        {
            string hash = await x402.Settler.SendAsync(intent, CancellationToken.None);
            settlement = new SettleResponse(true, hash, x402.Requirements.Network, key.From.ToChecksumString(), Amount: check.Value.ToString(CultureInfo.InvariantCulture));
        }
        catch (X402SettleException e)
        {
            // The chain refuses the authorization now (the payer moved its funds since the check): the answer is withheld;
            // the node was paid through the ledger and the settler wrote the authorization off (the platform's loss).
            return (PaymentRequired(x402, resource, Description, quote.CostMicroUsd, InsufficientOr(e.Message), $"the chain refused the settlement: {e.Message}"), false);
        }
        catch (Exception e) when (e is HttpRequestException or Nethereum.JsonRpc.Client.RpcClientUnknownException or Nethereum.JsonRpc.Client.RpcClientTimeoutException)
        {
            // The chain is unreachable for the broadcast: the intent is durable and will be sent (at the latest at the next
            // start); the answer goes out with no hash yet rather than holding the payer's answer hostage to the RPC.
            x402.Store.NoteError(key, $"broadcast deferred: {e.Message}");
            settlement = new SettleResponse(true, "", x402.Requirements.Network, key.From.ToChecksumString(), ErrorMessage: "settlement deferred: the chain is unreachable; it will be sent",
                Amount: check.Value.ToString(CultureInfo.InvariantCulture));
        }
        var headers = new List<KeyValuePair<string, string>>(answer.Headers) { new(X402Headers.PaymentResponseName, X402Headers.Encode(settlement)) };
        return (answer with { Headers = headers }, Fault == X402Fault.KillAfterAnswer);
    }

    private static string InsufficientOr(string reason) =>
        reason.Contains("balance", StringComparison.OrdinalIgnoreCase) ? X402Payments.InsufficientFunds : X402Reasons.Of(X402Verdict.NonceAlreadyUsed)!;

    private static async Task<bool> CreditAsync(X402Payments x402, NonceKey key, long value)
    {
        CreateAccountResult[] a = await x402.Ledger.CreateAccountsAsync(new[] { X402Ledger.NewPayerAccount(key.From) });
        if (a[0] is not (CreateAccountResult.Ok or CreateAccountResult.Exists)) return false;
        CreateTransferResult[] r = await x402.Ledger.CreateTransfersAsync(new[] { X402Ledger.Credit(key, value) }, LedgerAck.Durable);
        return r[0] is CreateTransferResult.Ok or CreateTransferResult.Exists;
    }

    // Not served: the credit goes back (the gateway released the hold), the intent is Released and never sent.
    private static async Task ReleaseAsync(X402Payments x402, NonceKey key, long value, string why)
    {
        await x402.Ledger.CreateTransfersAsync(new[] { X402Ledger.Release(key, value) }, LedgerAck.Durable);
        x402.Store.MarkFinal(key, X402State.Released, why);
    }

    private static StoredResponse PaymentRequired(X402Payments x402, string resource, string description, long amount, string? reason, string detail)
    {
        string header = x402.Requirements.Header(resource, description, amount, "application/json", reason);
        byte[] body = JsonSerializer.SerializeToUtf8Bytes(new X402Problem("about:blank", "Payment required", 402, detail, reason ?? "payment_required",
            new OpenAiError(detail, "insufficient_quota", reason ?? "payment_required", null)), ApiJson.Options);
        return new StoredResponse(402, body, "application/problem+json", [new(X402Headers.PaymentRequiredName, header)]);
    }

    private static StoredResponse Error(int status, string type, string? code, string message) =>
        new(status, JsonSerializer.SerializeToUtf8Bytes(new OpenAiErrorBody(new OpenAiError(message, type, code, null)), ApiJson.Options), "application/json", []);
}

/// <summary>
/// The body of an x402 402: problem+json (RFC 7807: type, title, status, detail, code), and OpenAI's <c>error</c> object
/// beside it, so both a problem reader and the OpenAI clients find the reason.
/// </summary>
/// <param name="Type">The problem type.</param>
/// <param name="Title">Payment required.</param>
/// <param name="Status">402.</param>
/// <param name="Detail">What to pay, or why the payment was refused.</param>
/// <param name="Code">The official x402 reason code, or <c>payment_required</c>.</param>
/// <param name="Error">The same in OpenAI's shape.</param>
public sealed record X402Problem(string Type, string Title, int Status, string Detail, string Code, OpenAiError Error);
