using System.Buffers.Binary;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using ComputeGrid.Chain;
using ComputeGrid.Chain.X402;

namespace ComputeGrid.Cli.Demo;

/// <summary>
/// The demo's x402 customer: an Anvil dev account (funded with the demo chain's TestUSDC at start) that pays each
/// embeddings request with an EIP-3009 <c>transferWithAuthorization</c> signed in C#, as the official client would:
/// ask, read the 402's requirements, sign them, send again with <c>PAYMENT-SIGNATURE</c>.
/// </summary>
internal sealed class DemoX402Payer : IDisposable
{
    private readonly Eip3009Signer _signer = Eip3009Signer.FromHex(ChainDeployment.AnvilDevKeys[DemoWorld.X402DevAccount]);
    private readonly TimeProvider _time;
    private readonly byte[] _nonceBase;
    private long _nonces;

    /// <param name="time">The server's clock (the authorization's window).</param>
    /// <param name="seed">The demo's seed, with the driver's start time in the nonces: a restart with the same seed signs new nonces.</param>
    public DemoX402Payer(TimeProvider time, int seed)
    {
        _time = time;
        _nonceBase = SHA256.HashData(Encoding.UTF8.GetBytes(string.Create(CultureInfo.InvariantCulture, $"demo-x402|{seed}|{time.GetUtcNow().UtcTicks}")));
    }

    /// <summary>The payer's address.</summary>
    public EvmAddress Address => _signer.Address;

    /// <summary>Sends <paramref name="body"/> unpaid, signs what the 402 asks and sends it paid; the paid answer.</summary>
    public async Task<DemoAnswer> PayAsync(DemoApi api, string body, CancellationToken ct)
    {
        var region = new[] { KeyValuePair.Create("X-Region", DemoWorld.X402Region) };
        DemoAnswer quote = await api.SendAsync(HttpMethod.Post, "/v1/embeddings", null, body, ct, region);
        if (quote.Status != 402) return quote;
        if (quote.Headers is null || !quote.Headers.TryGetValues(X402Headers.PaymentRequiredName, out var values)
            || !X402Headers.TryDecodePaymentRequired(values.FirstOrDefault(), out PaymentRequired? required, out _) || required!.Accepts.Count == 0)
            return quote with { Status = 402 };
        string header = Sign(required.Accepts[0]);
        return await api.SendAsync(HttpMethod.Post, "/v1/embeddings", null, body, ct, [.. region, KeyValuePair.Create(X402Headers.PaymentSignatureName, header)]);
    }

    private string Sign(PaymentRequirements accepted)
    {
        // Each nonce: SHA-256 of the payer's base and a counter; never the same twice within a run or across runs.
        Span<byte> input = stackalloc byte[40];
        _nonceBase.CopyTo(input);
        BinaryPrimitives.WriteInt64BigEndian(input[32..], Interlocked.Increment(ref _nonces));
        byte[] nonce = SHA256.HashData(input);
        long validBefore = _time.GetUtcNow().ToUnixTimeSeconds() + accepted.MaxTimeoutSeconds;
        long value = long.Parse(accepted.Amount, CultureInfo.InvariantCulture);
        EvmAddress payTo = EvmAddress.Parse(accepted.PayTo), asset = EvmAddress.Parse(accepted.Asset);
        var auth = new Eip3009Authorization(_signer.Address, payTo, Uint256.FromInt64(value), Uint256.FromInt64(0), Uint256.FromInt64(validBefore), Bytes32.FromBytes(nonce));
        if (!X402Verifier.TryChainId(accepted.Network, out long chainId)) throw new InvalidOperationException($"the 402 names network '{accepted.Network}'");
        var domain = new Eip712Domain(accepted.Extra!.Name!, accepted.Extra.Version!, chainId, asset);
        var wire = new ExactEvmAuthorization(_signer.Address.ToChecksumString(), payTo.ToChecksumString(), accepted.Amount, "0",
            validBefore.ToString(CultureInfo.InvariantCulture), auth.Nonce.ToString());
        return X402Headers.Encode(new PaymentPayload(2, accepted, new ExactEvmPayload(_signer.Sign(domain, auth), wire)));
    }

    public void Dispose() => _signer.Dispose();
}
