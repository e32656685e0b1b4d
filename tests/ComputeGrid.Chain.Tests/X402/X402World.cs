using System.Globalization;
using ComputeGrid.Chain.X402;

namespace ComputeGrid.Chain.Tests.X402;

/// <summary>
/// One offer (Anvil's chain id, the first contract address Anvil gives, Anvil's second account as payee) and payers
/// signing with Anvil's development keys, so that a test builds a valid payment and changes one thing.
/// </summary>
internal static class X402World
{
    /// <summary>Anvil's development key 0 and its address (TOOLCHAIN.md).</summary>
    public const string DevKey0 = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
    public const string DevAddress0 = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";

    /// <summary>Anvil's development key 2: a signer that is not the payer.</summary>
    public const string DevKey2 = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a";

    public const string Token = "0x5FbDB2315678afecb367f032d93F642f64180aa3";
    public const string PayTo = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
    public const long ChainId = 31337;
    public const long AmountMicro = 1_250;

    /// <summary>The verifier's "now": a fixed instant, as a FakeTimeProvider would give it.</summary>
    public static readonly DateTimeOffset Now = new(2026, 12, 6, 12, 0, 0, TimeSpan.Zero);

    public static X402Requirements Offer() =>
        new(ChainId, EvmAddress.Parse(Token), "ComputeGrid USD", "1", EvmAddress.Parse(PayTo), maxTimeoutSeconds: 60);

    /// <summary>The wire authorization a client would send, valid from 0 to now + 60 s, with a nonce from <paramref name="nonceSeed"/>.</summary>
    public static ExactEvmAuthorization Authorization(string from = DevAddress0, string to = PayTo, long value = AmountMicro,
        long validAfter = 0, long? validBefore = null, int nonceSeed = 1)
    {
        var nonce = new byte[32];
        new Random(nonceSeed).NextBytes(nonce);
        return new ExactEvmAuthorization(from, to, value.ToString(CultureInfo.InvariantCulture), validAfter.ToString(CultureInfo.InvariantCulture),
            (validBefore ?? Now.ToUnixTimeSeconds() + 60).ToString(CultureInfo.InvariantCulture), "0x" + Convert.ToHexStringLower(nonce));
    }

    /// <summary>A payment of <paramref name="auth"/> signed by <paramref name="key"/> under the offer's domain.</summary>
    public static PaymentPayload Pay(X402Requirements offer, ExactEvmAuthorization auth, string key = DevKey0, long amountMicro = AmountMicro)
    {
        Assert.True(X402Verifier.TryParse(auth, out var parsed, out string? detail), detail);
        using var signer = Eip3009Signer.FromHex(key);
        return new PaymentPayload(2, offer.For(amountMicro), new ExactEvmPayload(signer.Sign(offer.Domain, parsed), auth),
            new ResourceInfo("http://127.0.0.1/v1/embeddings"));
    }

    /// <summary>The repository root: the folder above this test's output that holds ComputeGrid.slnx.</summary>
    public static string RepoRoot()
    {
        for (DirectoryInfo? d = new(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "ComputeGrid.slnx"))) return d.FullName;
        throw new DirectoryNotFoundException("repository root (ComputeGrid.slnx) not found above " + AppContext.BaseDirectory);
    }
}
