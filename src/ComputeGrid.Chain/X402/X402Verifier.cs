using System.Collections.Concurrent;
using System.Globalization;

namespace ComputeGrid.Chain.X402;

/// <summary>
/// Verifies an x402 v2 <c>exact</c> payment on an EVM chain (EIP-3009 <c>transferWithAuthorization</c>) against the
/// requirements the server offered, the way the official facilitator does, without any chain call: scheme, network and
/// token agree; the signature (EIP-712, low-s) recovers <c>from</c>; <c>to</c> is <c>payTo</c>; <c>validAfter ≤ now</c> and
/// <c>now + 6 s ≤ validBefore</c>; the value covers the amount; the nonce is neither in flight nor settled here.
/// Pure: the time comes from the caller (its <see cref="TimeProvider"/>), the only state read is the nonce registry.
/// What it cannot see (the payer's balance, a nonce used elsewhere on chain) the settlement transaction finds.
/// </summary>
public sealed class X402Verifier
{
    /// <summary>
    /// The official facilitator refuses an authorization whose <c>validBefore</c> is less than 6 s away
    /// (<c>validBefore &lt; now + 6</c>): it must still be valid when the settlement transaction is mined.
    /// </summary>
    public const long ValidBeforeMarginSeconds = 6;

    /// <summary>Domains kept (name, version, chain, token); past this a stranger's requirements cost a fresh separator.</summary>
    public const int DomainCacheMax = 64;

    private readonly INonceRegistry _nonces;
    private readonly ConcurrentDictionary<(string Name, string Version, long ChainId, EvmAddress Asset), Eip712Domain> _domains = new();

    /// <summary>A verifier that consults <paramref name="nonces"/> for used nonces.</summary>
    public X402Verifier(INonceRegistry nonces) => _nonces = nonces;

    /// <summary>Verifies <paramref name="payload"/> against <paramref name="requirements"/> at <paramref name="now"/>; reserves nothing.</summary>
    public VerifyResponse Verify(PaymentPayload payload, PaymentRequirements requirements, DateTimeOffset now)
    {
        var verdict = Check(payload, requirements, now, out _, out string? detail);
        return Response(verdict, payload, detail);
    }

    /// <summary>
    /// Verifies, then reserves the nonce: of concurrent requests carrying one authorization, exactly one is valid. The
    /// caller then owns <paramref name="nonce"/> and must <see cref="INonceRegistry.MarkSettled"/> or
    /// <see cref="INonceRegistry.Release"/> it.
    /// </summary>
    public VerifyResponse VerifyAndReserve(PaymentPayload payload, PaymentRequirements requirements, DateTimeOffset now, out NonceKey nonce)
    {
        var verdict = Check(payload, requirements, now, out nonce, out string? detail);
        if (verdict == X402Verdict.Valid && _nonces.TryReserve(nonce) != NonceReservation.Reserved)
            (verdict, detail) = (X402Verdict.NonceAlreadyUsed, "another request holds or has settled this authorization");
        return Response(verdict, payload, detail);
    }

    /// <summary>The verdict alone, with the nonce's key (valid only when the verdict is past <see cref="X402Verdict.InvalidPayload"/>).</summary>
    public X402Verdict Check(PaymentPayload payload, PaymentRequirements requirements, DateTimeOffset now, out NonceKey nonce, out string? detail)
    {
        nonce = default;
        detail = null;
        if (payload.X402Version != 2) { detail = $"x402Version {payload.X402Version}, expected 2"; return X402Verdict.InvalidX402Version; }

        if (!TryChainId(requirements.Network, out long chainId) || !EvmAddress.TryParse(requirements.Asset, out var asset)
            || !EvmAddress.TryParse(requirements.PayTo, out var payTo) || !Uint256.TryParse(requirements.Amount, out var amount))
            return X402Verdict.InvalidPaymentRequirements;
        if (payload.Accepted.Scheme != "exact" || requirements.Scheme != "exact") return X402Verdict.InvalidScheme;
        string? name = requirements.Extra?.Name, version = requirements.Extra?.Version;
        if (string.IsNullOrEmpty(name) || string.IsNullOrEmpty(version)) return X402Verdict.MissingEip712Domain;
        if (payload.Accepted.Network != requirements.Network) return X402Verdict.NetworkMismatch;
        if (!EvmAddress.TryParse(payload.Accepted.Asset, out var acceptedAsset) || acceptedAsset != asset) return X402Verdict.AssetMismatch;

        if (payload.Payload.Authorization is not { } a || payload.Payload.Signature is not { } signature) return X402Verdict.UnsupportedPayloadType;
        if (!TryParse(a, out var auth, out detail)) return X402Verdict.InvalidPayload;

        Span<byte> digest = stackalloc byte[32];
        Eip3009.Digest(Domain(name, version, chainId, asset), auth, digest);
        switch (Eip3009.CheckSignature(digest, signature, auth.From, out var signer))
        {
            case SignatureCheck.Valid: break;
            case SignatureCheck.Malformed: detail = "a signature is 0x and 130 hex digits: r, s in [1, n-1], v in {27, 28, 0, 1}"; return X402Verdict.FailedToParseSignature;
            case SignatureCheck.HighS: detail = "s is in the upper half of the curve order (EIP-2)"; return X402Verdict.InvalidSignature;
            default: detail = signer == default ? "no signer recovers" : $"the signature recovers {signer}, not from"; return X402Verdict.InvalidSignature;
        }
        if (auth.To != payTo) return X402Verdict.RecipientMismatch;

        long nowSeconds = Math.Max(0, now.ToUnixTimeSeconds());
        if (Uint256.Compare(auth.ValidBefore, Uint256.FromInt64(nowSeconds + ValidBeforeMarginSeconds)) < 0) return X402Verdict.ValidBeforeExpired;
        if (Uint256.Compare(auth.ValidAfter, Uint256.FromInt64(nowSeconds)) > 0) return X402Verdict.ValidAfterInFuture;
        if (Uint256.Compare(auth.Value, amount) < 0) { detail = $"value {a.Value} is below the amount {requirements.Amount}"; return X402Verdict.ValueMismatch; }

        nonce = new NonceKey(asset, auth.From, auth.Nonce);
        return _nonces.IsUsed(nonce) ? X402Verdict.NonceAlreadyUsed : X402Verdict.Valid;
    }

    /// <summary>The chain id of a CAIP-2 EVM network, <c>eip155:&lt;decimal id&gt;</c>.</summary>
    public static bool TryChainId(string network, out long chainId)
    {
        chainId = 0;
        return network.StartsWith("eip155:", StringComparison.Ordinal)
            && long.TryParse(network.AsSpan(7), NumberStyles.None, CultureInfo.InvariantCulture, out chainId) && chainId > 0;
    }

    /// <summary>Parses the wire authorization; <paramref name="detail"/> names the first bad field.</summary>
    public static bool TryParse(ExactEvmAuthorization a, out Eip3009Authorization auth, out string? detail)
    {
        auth = default;
        EvmAddress from = default, to = default;
        Bytes32 value = default, after = default, before = default, nonce = default;
        detail = null;
        if (!EvmAddress.TryParse(a.From, out from)) detail = "from is not a 0x address";
        else if (!EvmAddress.TryParse(a.To, out to)) detail = "to is not a 0x address";
        else if (!Uint256.TryParse(a.Value, out value)) detail = "value is not a decimal uint256";
        else if (!Uint256.TryParse(a.ValidAfter, out after)) detail = "validAfter is not a decimal uint256";
        else if (!Uint256.TryParse(a.ValidBefore, out before)) detail = "validBefore is not a decimal uint256";
        else if (!Bytes32.TryParse(a.Nonce, out nonce)) detail = "nonce is not 0x and 64 hex digits";
        if (detail is not null) return false;
        auth = new Eip3009Authorization(from, to, value, after, before, nonce);
        return true;
    }

    private Eip712Domain Domain(string name, string version, long chainId, EvmAddress asset)
    {
        var key = (name, version, chainId, asset);
        if (_domains.TryGetValue(key, out var domain)) return domain;
        domain = new Eip712Domain(name, version, chainId, asset);
        if (_domains.Count < DomainCacheMax) _domains.TryAdd(key, domain);
        return domain;
    }

    private static VerifyResponse Response(X402Verdict verdict, PaymentPayload payload, string? detail) =>
        new(verdict == X402Verdict.Valid, X402Reasons.Of(verdict), verdict == X402Verdict.Valid ? null : detail, payload.Payload.Authorization?.From);
}
