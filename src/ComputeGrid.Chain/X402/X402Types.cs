using System.Text.Json;
using System.Text.Json.Serialization;

namespace ComputeGrid.Chain.X402;

// The x402 v2 wire types (https://github.com/coinbase/x402, specs/x402-specification-v2.md), field for field as the
// official TypeScript packages (@x402/core 2.27.0 types and zod schemas) name and order them. Amounts and uint256s are
// decimal strings on the wire; networks are CAIP-2 ("eip155:31337").

/// <summary>The resource being paid for (<c>PaymentRequired.resource</c>, echoed in <c>PaymentPayload.resource</c>).</summary>
public sealed record ResourceInfo(string Url, string? Description = null, string? MimeType = null);

/// <summary>
/// <c>accepts[].extra</c>: for the <c>exact</c> scheme on EVM, the token's EIP-712 <c>name</c> and <c>version</c> (the client
/// cannot sign without them). Other members (<c>assetTransferMethod</c>, extensions) are kept as they came.
/// </summary>
public sealed record PaymentExtra
{
    /// <summary>The token's EIP-712 domain name.</summary>
    public string? Name { get; init; }

    /// <summary>The token's EIP-712 domain version.</summary>
    public string? Version { get; init; }

    /// <summary>
    /// Members this type does not name, kept so that a payload echoes what it accepted. Settable, not init-only: the
    /// JSON source generator treats init-only members as constructor parameters, which extension data cannot be.
    /// </summary>
    [JsonExtensionData]
    public Dictionary<string, JsonElement>? Other { get; set; }
}

/// <summary>
/// One way to pay (<c>PaymentRequirements</c>): <paramref name="Amount"/> in the asset's atomic units (for a 6-decimal
/// stablecoin, micro-USD), to <paramref name="PayTo"/>, on <paramref name="Network"/>, with a signature valid for at most
/// <paramref name="MaxTimeoutSeconds"/>.
/// </summary>
public sealed record PaymentRequirements(string Scheme, string Network, string Amount, string Asset, string PayTo, int MaxTimeoutSeconds, PaymentExtra? Extra = null);

/// <summary>The body of the <c>PAYMENT-REQUIRED</c> header of a 402 answer.</summary>
public sealed record PaymentRequired(int X402Version, ResourceInfo Resource, IReadOnlyList<PaymentRequirements> Accepts, string? Error = null,
    Dictionary<string, JsonElement>? Extensions = null);

/// <summary>The EIP-3009 authorization as the client sends it: addresses and the nonce as 0x-hex, integers as decimal strings.</summary>
public sealed record ExactEvmAuthorization(string From, string To, string Value, string ValidAfter, string ValidBefore, string Nonce);

/// <summary>
/// <c>PaymentPayload.payload</c> of the <c>exact</c> scheme on EVM with EIP-3009: the signature and what it signs. Both
/// are optional here only so that another payload kind (Permit2) parses and is refused with a reason rather than as
/// malformed JSON.
/// </summary>
public sealed record ExactEvmPayload(string? Signature = null, ExactEvmAuthorization? Authorization = null);

/// <summary>The body of the <c>PAYMENT-SIGNATURE</c> header: the requirements the client chose, and its signed payment.</summary>
public sealed record PaymentPayload(int X402Version, PaymentRequirements Accepted, ExactEvmPayload Payload, ResourceInfo? Resource = null,
    Dictionary<string, JsonElement>? Extensions = null);

/// <summary>The body of the facilitator's <c>POST /verify</c> and <c>POST /settle</c> (the official VerifyRequest and SettleRequest are alike).</summary>
public sealed record FacilitatorRequest(int X402Version, PaymentPayload PaymentPayload, PaymentRequirements PaymentRequirements);

/// <summary>The facilitator's answer to <c>/verify</c>: valid, or the reason (an official reason code) it is not.</summary>
public sealed record VerifyResponse(bool IsValid, string? InvalidReason = null, string? InvalidMessage = null, string? Payer = null);

/// <summary>The facilitator's answer to <c>/settle</c>, and the body of the <c>PAYMENT-RESPONSE</c> header.</summary>
public sealed record SettleResponse(bool Success, string Transaction, string Network, string? Payer = null, string? ErrorReason = null,
    string? ErrorMessage = null, string? Amount = null);

/// <summary>One (version, scheme, network) the facilitator handles.</summary>
public sealed record SupportedKind(int X402Version, string Scheme, string Network, Dictionary<string, JsonElement>? Extra = null);

/// <summary>The facilitator's answer to <c>GET /supported</c>: its kinds, extensions, and its signer addresses per CAIP family.</summary>
public sealed record SupportedResponse(IReadOnlyList<SupportedKind> Kinds, IReadOnlyList<string> Extensions, IReadOnlyDictionary<string, IReadOnlyList<string>> Signers);

/// <summary>
/// The System.Text.Json contract of the wire types, generated at build time: camelCase names, nulls left out (the
/// official client treats absent and null alike), and missing required members refused rather than read as null.
/// </summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    RespectNullableAnnotations = true, RespectRequiredConstructorParameters = true)]
[JsonSerializable(typeof(PaymentRequired))]
[JsonSerializable(typeof(PaymentPayload))]
[JsonSerializable(typeof(FacilitatorRequest))]
[JsonSerializable(typeof(VerifyResponse))]
[JsonSerializable(typeof(SettleResponse))]
[JsonSerializable(typeof(SupportedResponse))]
public sealed partial class X402Json : JsonSerializerContext;
