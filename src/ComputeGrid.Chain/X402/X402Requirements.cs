using System.Globalization;

namespace ComputeGrid.Chain.X402;

/// <summary>
/// What this server accepts as payment, fixed at start (chain, token, payee, timeout), turned per request into the
/// x402 v2 <see cref="PaymentRequired"/> of a 402 answer: one <c>exact</c> requirement on <c>eip155:&lt;chainId&gt;</c> for
/// the amount of that request, with the token's EIP-712 name and version in <c>extra</c> so that the official client can
/// sign without asking the chain.
/// </summary>
public sealed class X402Requirements
{
    /// <summary>The scheme: pay exactly the amount named, by one signed EIP-3009 authorization.</summary>
    public const string SchemeExact = "exact";

    /// <summary>The longest validity a requirement may ask of a signature (an hour: an authorization is a bearer cheque).</summary>
    public const int MaxTimeoutSecondsMax = 3600;

    /// <summary>The token's EIP-712 domain (its separator is what signatures are checked under).</summary>
    public Eip712Domain Domain { get; }

    /// <summary>Who is paid.</summary>
    public EvmAddress PayTo { get; }

    /// <summary>How long the client should make its authorization valid for.</summary>
    public int MaxTimeoutSeconds { get; }

    /// <summary>The CAIP-2 network, <c>eip155:&lt;chainId&gt;</c>.</summary>
    public string Network { get; }

    private readonly string _asset, _payTo;

    /// <summary>The offer of one chain and token; <paramref name="tokenName"/> and <paramref name="tokenVersion"/> are the token's EIP-712 ones.</summary>
    public X402Requirements(long chainId, EvmAddress asset, string tokenName, string tokenVersion, EvmAddress payTo, int maxTimeoutSeconds)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxTimeoutSeconds);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(maxTimeoutSeconds, MaxTimeoutSecondsMax);
        Domain = new Eip712Domain(tokenName, tokenVersion, chainId, asset);
        (PayTo, MaxTimeoutSeconds) = (payTo, maxTimeoutSeconds);
        Network = "eip155:" + chainId.ToString(CultureInfo.InvariantCulture);
        (_asset, _payTo) = (asset.ToChecksumString(), payTo.ToChecksumString());
    }

    /// <summary>The requirement to pay <paramref name="amountMicro"/> atomic units (micro-USD for a 6-decimal stablecoin).</summary>
    public PaymentRequirements For(long amountMicro)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(amountMicro);
        return new PaymentRequirements(SchemeExact, Network, amountMicro.ToString(CultureInfo.InvariantCulture), _asset, _payTo, MaxTimeoutSeconds,
            new PaymentExtra { Name = Domain.Name, Version = Domain.Version });
    }

    /// <summary>The body of a 402 for <paramref name="resourceUrl"/> costing <paramref name="amountMicro"/>; <paramref name="error"/> says why a payment was refused.</summary>
    public PaymentRequired PaymentRequired(string resourceUrl, string? description, long amountMicro, string? mimeType = null, string? error = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(resourceUrl);
        return new PaymentRequired(2, new ResourceInfo(resourceUrl, description, mimeType), [For(amountMicro)], error);
    }

    /// <summary>The <c>PAYMENT-REQUIRED</c> header value of <see cref="PaymentRequired"/>.</summary>
    public string Header(string resourceUrl, string? description, long amountMicro, string? mimeType = null, string? error = null) =>
        X402Headers.Encode(PaymentRequired(resourceUrl, description, amountMicro, mimeType, error));
}
