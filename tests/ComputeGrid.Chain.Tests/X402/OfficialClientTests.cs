using System.Diagnostics;
using ComputeGrid.Chain.X402;

namespace ComputeGrid.Chain.Tests.X402;

/// <summary>
/// A fact that needs Node and the repository's pinned x402 clients (tools/chain/node_modules, installed once per process
/// by <see cref="ChainTools.Ensure"/>): reported as skipped, with the reason, only where they cannot be installed.
/// </summary>
public sealed class OfficialClientFactAttribute : FactAttribute
{
    public OfficialClientFactAttribute()
    {
        if (OfficialClient.Missing() is { } reason) Skip = reason;
    }
}

/// <summary>Runs official-client.cjs: the official @x402/fetch + @x402/evm client paying for a PAYMENT-REQUIRED header.</summary>
internal static class OfficialClient
{
    public static string NodeModules => Path.Combine(ChainTools.Ensure().ToolsDirectory, "node_modules");

    public static string? Missing()
    {
        if (!ChainTools.TryEnsure(out _, out string reason)) return $"chain tools unavailable: {reason}";
        if (!Directory.Exists(Path.Combine(NodeModules, "@x402", "fetch")) || !Directory.Exists(Path.Combine(NodeModules, "@x402", "evm")))
            return $"the pinned x402 clients are not in {NodeModules} after installing the chain tools";
        return null;
    }

    /// <summary>The PAYMENT-SIGNATURE header the official client sends for <paramref name="paymentRequired"/>, signing with <paramref name="key"/>.</summary>
    public static string Pay(string paymentRequired, string key)
    {
        string script = Path.Combine(X402World.RepoRoot(), "tests", "ComputeGrid.Chain.Tests", "X402", "official-client.cjs");
        var start = new ProcessStartInfo(ChainTools.Ensure().Node) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string a in new[] { script, NodeModules, paymentRequired, key }) start.ArgumentList.Add(a);
        using var node = Process.Start(start)!;
        var stdout = node.StandardOutput.ReadToEndAsync();
        var stderr = node.StandardError.ReadToEndAsync();
        if (!node.WaitForExit(60_000))
        {
            node.Kill(entireProcessTree: true);
            Assert.Fail("official-client.cjs ran past 60 s");
        }
        Assert.True(node.ExitCode == 0, $"official-client.cjs exited {node.ExitCode}: {stderr.Result}");
        return stdout.Result.Trim();
    }
}

/// <summary>
/// Compatibility with the official x402 v2 client, no chain needed: it pays for a PAYMENT-REQUIRED that our C# built,
/// and our verifier accepts its PAYMENT-SIGNATURE, and refuses it once any signed field, the signature or the
/// requirements change. The client's clock is the real one, so the verifier is asked at the real time too.
/// </summary>
public class OfficialClientTests
{
    [OfficialClientFact]
    public void The_official_clients_payment_for_our_requirements_verifies_and_is_refused_when_tampered()
    {
        var offer = X402World.Offer();
        string required = offer.Header("http://127.0.0.1:5080/v1/embeddings", "Embeddings of one request", 2_468);
        string header = OfficialClient.Pay(required, X402World.DevKey0);

        Assert.True(X402Headers.TryDecodePaymentPayload(header, out var payment, out string error), error);
        Assert.Equal(offer.For(2_468), payment!.Accepted);
        Assert.Equal("http://127.0.0.1:5080/v1/embeddings", payment.Resource!.Url);
        var verifier = new X402Verifier(new InMemoryNonceRegistry());
        var now = TimeProvider.System.GetUtcNow();
        Assert.Equal(new VerifyResponse(true, null, null, X402World.DevAddress0), verifier.Verify(payment, offer.For(2_468), now));

        var auth = payment.Payload.Authorization!;
        var signature = payment.Payload.Signature!;
        PaymentPayload With(ExactEvmAuthorization a) => payment with { Payload = payment.Payload with { Authorization = a } };
        Assert.Equal("invalid_exact_evm_signature", verifier.Verify(With(auth with { Value = "2469" }), offer.For(2_468), now).InvalidReason);
        Assert.Equal("invalid_exact_evm_signature", verifier.Verify(With(auth with { From = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC" }), offer.For(2_468), now).InvalidReason);
        Assert.Equal("invalid_exact_evm_signature", verifier.Verify(With(auth with { Nonce = "0x" + new string('0', 64) }), offer.For(2_468), now).InvalidReason);
        string flipped = signature[..10] + (signature[10] == '0' ? '1' : '0') + signature[11..];
        Assert.Equal("invalid_exact_evm_signature",
            verifier.Verify(payment with { Payload = payment.Payload with { Signature = flipped } }, offer.For(2_468), now).InvalidReason);
        Assert.Equal("invalid_exact_evm_payload_authorization_value_mismatch", verifier.Verify(payment, offer.For(2_469), now).InvalidReason);

        // And once reserved, the same header buys nothing more.
        Assert.True(verifier.VerifyAndReserve(payment, offer.For(2_468), now, out _).IsValid);
        Assert.Equal("invalid_exact_evm_nonce_already_used", verifier.VerifyAndReserve(payment, offer.For(2_468), now, out _).InvalidReason);
    }

    [OfficialClientFact]
    public void The_official_client_signing_with_another_key_is_refused_for_the_payer_it_names()
    {
        var offer = X402World.Offer();
        string header = OfficialClient.Pay(offer.Header("http://127.0.0.1:5080/v1/embeddings", null, 1_000), X402World.DevKey2);
        Assert.True(X402Headers.TryDecodePaymentPayload(header, out var payment, out string error), error);
        var verifier = new X402Verifier(new InMemoryNonceRegistry());
        var now = TimeProvider.System.GetUtcNow();
        Assert.True(verifier.Verify(payment!, offer.For(1_000), now).IsValid); // its own from: valid
        var claimsDev0 = payment! with { Payload = payment.Payload with { Authorization = payment.Payload.Authorization! with { From = X402World.DevAddress0 } } };
        var refused = verifier.Verify(claimsDev0, offer.For(1_000), now);
        Assert.Equal(("invalid_exact_evm_signature", X402World.DevAddress0), (refused.InvalidReason, refused.Payer));
    }
}
