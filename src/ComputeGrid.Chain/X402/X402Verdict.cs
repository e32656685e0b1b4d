namespace ComputeGrid.Chain.X402;

/// <summary>
/// What verifying an x402 <c>exact</c> EVM payment found, in order of precedence: the first rule a payment breaks is the
/// one reported. The order follows the official facilitator (<c>@x402/evm</c> exact <c>verifyEIP3009</c>) so that a
/// payment with several faults gets the reason the official one would give; the nonce, which the official facilitator
/// learns only by simulating the transaction, comes last.
/// </summary>
public enum X402Verdict
{
    /// <summary>Every rule holds: the signature recovers <c>from</c> and the authorization pays enough, to us, now.</summary>
    Valid = 0,

    /// <summary>The payload is not x402 version 2.</summary>
    InvalidX402Version = 1,

    /// <summary>Our own requirements are not well formed (a bad address, network or amount): a server bug, not the payer's.</summary>
    InvalidPaymentRequirements = 2,

    /// <summary>The payload or the requirements are not scheme <c>exact</c>.</summary>
    InvalidScheme = 3,

    /// <summary>The requirements lack the token's EIP-712 name or version in <c>extra</c>.</summary>
    MissingEip712Domain = 4,

    /// <summary>The payload was made for another network than the requirements'.</summary>
    NetworkMismatch = 5,

    /// <summary>The payload was made for another token than the requirements' (ComputeGrid's own check).</summary>
    AssetMismatch = 6,

    /// <summary>The payload carries no EIP-3009 authorization and signature (e.g. a Permit2 payload).</summary>
    UnsupportedPayloadType = 7,

    /// <summary>An authorization field is not a 0x address, a decimal uint256 or a 0x 32-byte nonce.</summary>
    InvalidPayload = 8,

    /// <summary>The signature is not 65 bytes of hex with v in {27, 28, 0, 1} and r, s in [1, n − 1].</summary>
    FailedToParseSignature = 9,

    /// <summary>The signature does not recover <c>from</c>, or its s is in the upper half (EIP-2 malleability).</summary>
    InvalidSignature = 10,

    /// <summary>The authorization pays someone other than <c>payTo</c>.</summary>
    RecipientMismatch = 11,

    /// <summary><c>validBefore</c> is past, or too close to settle in time (the official 6 s margin).</summary>
    ValidBeforeExpired = 12,

    /// <summary><c>validAfter</c> is still in the future.</summary>
    ValidAfterInFuture = 13,

    /// <summary>The authorization's value is below the amount required.</summary>
    ValueMismatch = 14,

    /// <summary>The nonce is in flight in another request or already settled.</summary>
    NonceAlreadyUsed = 15,
}

/// <summary>The official x402 reason codes of each <see cref="X402Verdict"/> (the <c>invalidReason</c> strings on the wire).</summary>
public static class X402Reasons
{
    /// <summary>The <c>invalidReason</c> of <paramref name="verdict"/>; null for <see cref="X402Verdict.Valid"/>.</summary>
    public static string? Of(X402Verdict verdict) => verdict switch
    {
        X402Verdict.Valid => null,
        X402Verdict.InvalidX402Version => "invalid_x402_version",
        X402Verdict.InvalidPaymentRequirements => "invalid_payment_requirements",
        X402Verdict.InvalidScheme => "invalid_exact_evm_scheme",
        X402Verdict.MissingEip712Domain => "invalid_exact_evm_missing_eip712_domain",
        X402Verdict.NetworkMismatch => "invalid_exact_evm_network_mismatch",
        X402Verdict.AssetMismatch => "invalid_exact_evm_asset_mismatch",
        X402Verdict.UnsupportedPayloadType => "unsupported_payload_type",
        X402Verdict.InvalidPayload => "invalid_payload",
        X402Verdict.FailedToParseSignature => "invalid_exact_evm_failed_to_parse_signature",
        X402Verdict.InvalidSignature => "invalid_exact_evm_signature",
        X402Verdict.RecipientMismatch => "invalid_exact_evm_recipient_mismatch",
        X402Verdict.ValidBeforeExpired => "invalid_exact_evm_payload_authorization_valid_before",
        X402Verdict.ValidAfterInFuture => "invalid_exact_evm_payload_authorization_valid_after",
        X402Verdict.ValueMismatch => "invalid_exact_evm_payload_authorization_value_mismatch",
        X402Verdict.NonceAlreadyUsed => "invalid_exact_evm_nonce_already_used",
        _ => throw new ArgumentOutOfRangeException(nameof(verdict), verdict, "not a verdict"),
    };
}
