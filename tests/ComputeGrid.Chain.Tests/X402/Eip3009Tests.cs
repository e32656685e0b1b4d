using System.Globalization;
using System.Numerics;
using ComputeGrid.Chain.X402;
using Nethereum.Signer;
using Nethereum.Signer.EIP712;
using Nethereum.Util;

namespace ComputeGrid.Chain.Tests.X402;

/// <summary>
/// The EIP-712 digest of EIP-3009 authorizations, computed by hand, against Nethereum's general EIP-712 encoder; the
/// signature rules (v forms, low-s, ranges) and recovery against Nethereum's signer; the integer and address parsers.
/// </summary>
public class Eip3009Tests
{
    private static readonly BigInteger CurveOrder = BigInteger.Parse("115792089237316195423570985008687907852837564279074904382605163141518161494337", CultureInfo.InvariantCulture);

    /// <summary>The same typed data as eth_signTypedData_v4 JSON, which Nethereum's encoder reads.</summary>
    private static string TypedDataJson(Eip712Domain domain, ExactEvmAuthorization a, string primaryType) => $$$"""
        {"types":{"EIP712Domain":[{"name":"name","type":"string"},{"name":"version","type":"string"},{"name":"chainId","type":"uint256"},{"name":"verifyingContract","type":"address"}],
        "{{{primaryType}}}":[{"name":"from","type":"address"},{"name":"to","type":"address"},{"name":"value","type":"uint256"},{"name":"validAfter","type":"uint256"},{"name":"validBefore","type":"uint256"},{"name":"nonce","type":"bytes32"}]},
        "primaryType":"{{{primaryType}}}",
        "domain":{"name":"{{{domain.Name}}}","version":"{{{domain.Version}}}","chainId":{{{domain.ChainId}}},"verifyingContract":"{{{domain.VerifyingContract}}}"},
        "message":{"from":"{{{a.From}}}","to":"{{{a.To}}}","value":{{{a.Value}}},"validAfter":{{{a.ValidAfter}}},"validBefore":{{{a.ValidBefore}}},"nonce":"{{{a.Nonce}}}"}}
        """;

    private static byte[] OurDigest(Eip712Domain domain, ExactEvmAuthorization a, Eip3009Kind kind)
    {
        Assert.True(X402Verifier.TryParse(a, out var auth, out _));
        var digest = new byte[32];
        Eip3009.Digest(domain, auth, digest, kind);
        return digest;
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(135)]
    [InlineData(136)]
    [InlineData(137)]
    [InlineData(1000)]
    public void Keccak256_over_spans_equals_Nethereums_Sha3Keccack_across_the_136_byte_block_boundary(int length)
    {
        var data = new byte[length];
        new Random(length).NextBytes(data);
        var ours = new byte[32];
        Keccak256.Hash(data, ours);
        Assert.Equal(Sha3Keccack.Current.CalculateHash(data), ours);
        Keccak256.Hash(data, ours); // the per-thread digest is reset by each hash
        Assert.Equal(Sha3Keccack.Current.CalculateHash(data), ours);
    }

    [Theory]
    [InlineData(Eip3009Kind.TransferWithAuthorization, "TransferWithAuthorization", 1250L, 0L, 1796572800L, 1)]
    [InlineData(Eip3009Kind.ReceiveWithAuthorization, "ReceiveWithAuthorization", 1250L, 0L, 1796572800L, 2)]
    [InlineData(Eip3009Kind.TransferWithAuthorization, "TransferWithAuthorization", long.MaxValue, 1700000000L, long.MaxValue, 3)]
    public void The_typed_data_digest_equals_Nethereums_Eip712TypedDataSigner_for_the_same_message(Eip3009Kind kind, string primaryType, long value, long after, long before, int nonceSeed)
    {
        var domain = X402World.Offer().Domain;
        var a = X402World.Authorization(value: value, validAfter: after, validBefore: before, nonceSeed: nonceSeed);
        byte[] theirs = Sha3Keccack.Current.CalculateHash(new Eip712TypedDataSigner().EncodeTypedData(TypedDataJson(domain, a, primaryType)));
        Assert.Equal(theirs, OurDigest(domain, a, kind));
    }

    // The two other typed messages the contracts check (the Nethereum signer that once signed them is gone: these pin ours).
    private static string DomainJson(Eip712Domain domain) =>
        $$"""{"name":"{{domain.Name}}","version":"{{domain.Version}}","chainId":{{domain.ChainId}},"verifyingContract":"{{domain.VerifyingContract}}"}""";

    private const string DomainTypes = """
        "EIP712Domain":[{"name":"name","type":"string"},{"name":"version","type":"string"},{"name":"chainId","type":"uint256"},{"name":"verifyingContract","type":"address"}]
        """;

    [Fact]
    public void The_cancel_authorization_digest_equals_Nethereums_for_the_same_message()
    {
        var domain = X402World.Offer().Domain;
        var a = X402World.Authorization(nonceSeed: 7);
        string json = $$$"""
            {"types":{{{{DomainTypes}}},"CancelAuthorization":[{"name":"authorizer","type":"address"},{"name":"nonce","type":"bytes32"}]},
            "primaryType":"CancelAuthorization","domain":{{{DomainJson(domain)}}},"message":{"authorizer":"{{{a.From}}}","nonce":"{{{a.Nonce}}}"}}
            """;
        Assert.True(Bytes32.TryParse(a.Nonce, out Bytes32 nonce));
        var ours = new byte[32];
        Eip3009.CancelDigest(domain, EvmAddress.Parse(a.From), nonce, ours);
        Assert.Equal(Sha3Keccack.Current.CalculateHash(new Eip712TypedDataSigner().EncodeTypedData(json)), ours);
    }

    [Theory]
    [InlineData(12_345_678L, 0L, 1796572800L)]
    [InlineData(long.MaxValue, 41L, long.MaxValue)]
    public void The_permit_digest_equals_Nethereums_for_the_same_message(long value, long nonce, long deadline)
    {
        var domain = X402World.Offer().Domain;
        var a = X402World.Authorization();
        string json = $$$"""
            {"types":{{{{DomainTypes}}},"Permit":[{"name":"owner","type":"address"},{"name":"spender","type":"address"},{"name":"value","type":"uint256"},{"name":"nonce","type":"uint256"},{"name":"deadline","type":"uint256"}]},
            "primaryType":"Permit","domain":{{{DomainJson(domain)}}},"message":{"owner":"{{{a.From}}}","spender":"{{{a.To}}}","value":{{{value}}},"nonce":{{{nonce}}},"deadline":{{{deadline}}}}}
            """;
        var ours = new byte[32];
        Eip2612.Digest(domain, EvmAddress.Parse(a.From), EvmAddress.Parse(a.To), Uint256.FromInt64(value), Uint256.FromInt64(nonce), Uint256.FromInt64(deadline), ours);
        Assert.Equal(Sha3Keccack.Current.CalculateHash(new Eip712TypedDataSigner().EncodeTypedData(json)), ours);
    }

    [Fact]
    public void Transfer_and_receive_authorizations_of_one_message_have_different_digests()
    {
        var domain = X402World.Offer().Domain;
        var a = X402World.Authorization();
        Assert.NotEqual(OurDigest(domain, a, Eip3009Kind.TransferWithAuthorization), OurDigest(domain, a, Eip3009Kind.ReceiveWithAuthorization));
    }

    [Fact]
    public void Our_signature_is_recovered_by_Nethereum_and_Nethereums_signature_by_us()
    {
        var domain = X402World.Offer().Domain;
        var a = X402World.Authorization();
        using var signer = Eip3009Signer.FromHex(X402World.DevKey0);
        Assert.Equal(X402World.DevAddress0, signer.Address.ToChecksumString());
        Assert.True(X402Verifier.TryParse(a, out var auth, out _));
        string ours = signer.Sign(domain, auth);
        Assert.Equal(X402World.DevAddress0, new Eip712TypedDataSigner().RecoverFromSignatureV4(TypedDataJson(domain, a, "TransferWithAuthorization"), ours), ignoreCase: true);

        byte[] digest = OurDigest(domain, a, Eip3009Kind.TransferWithAuthorization);
        var theirs = new EthECKey(X402World.DevKey0).SignAndCalculateV(digest);
        var sig = new byte[65];
        theirs.R.CopyTo(sig, 32 - theirs.R.Length);
        theirs.S.CopyTo(sig, 64 - theirs.S.Length);
        sig[64] = theirs.V[0];
        Assert.Equal(SignatureCheck.Valid, Eip3009.TryRecover(digest, sig, out var recovered));
        Assert.Equal(signer.Address, recovered);
    }

    [Fact]
    public void V_may_be_27_28_or_0_1_and_anything_else_is_malformed()
    {
        var (digest, sig, payer) = Signed();
        var raw = (byte[])sig.Clone();
        raw[64] -= 27;
        Assert.Equal(SignatureCheck.Valid, Eip3009.TryRecover(digest, raw, out var fromRaw));
        Assert.Equal(payer, fromRaw);
        foreach (byte v in new byte[] { 2, 26, 29, 35, 255 })
        {
            raw[64] = v;
            Assert.Equal(SignatureCheck.Malformed, Eip3009.TryRecover(digest, raw, out _));
        }
    }

    [Fact]
    public void The_high_s_twin_of_a_valid_signature_is_refused_as_EIP_2_requires()
    {
        var (digest, sig, _) = Signed();
        // (r, n − s, v flipped) is the same point's other signature: valid to plain ECDSA, refused by EIP-2.
        var s = new BigInteger(sig.AsSpan(32, 32), isUnsigned: true, isBigEndian: true);
        var twin = (byte[])sig.Clone();
        (CurveOrder - s).TryWriteBytes(twin.AsSpan(32, 32), out int written, isUnsigned: true, isBigEndian: true);
        Assert.Equal(32, written);
        twin[64] = (byte)(sig[64] == 27 ? 28 : 27);
        Assert.Equal(SignatureCheck.HighS, Eip3009.TryRecover(digest, twin, out _));
        Assert.Equal(SignatureCheck.HighS, Eip3009.CheckSignature(digest, "0x" + Convert.ToHexStringLower(twin), default, out _));
    }

    [Fact]
    public void R_or_s_zero_or_not_below_the_curve_order_and_wrong_lengths_are_malformed()
    {
        var (digest, sig, payer) = Signed();
        var zeroR = (byte[])sig.Clone();
        zeroR.AsSpan(0, 32).Clear();
        Assert.Equal(SignatureCheck.Malformed, Eip3009.TryRecover(digest, zeroR, out _));
        var bigR = (byte[])sig.Clone();
        CurveOrder.TryWriteBytes(bigR.AsSpan(0, 32), out _, isUnsigned: true, isBigEndian: true);
        Assert.Equal(SignatureCheck.Malformed, Eip3009.TryRecover(digest, bigR, out _));
        Assert.Equal(SignatureCheck.Malformed, Eip3009.TryRecover(digest, sig.AsSpan(0, 64), out _));
        string hex = "0x" + Convert.ToHexStringLower(sig);
        Assert.Equal(SignatureCheck.Valid, Eip3009.CheckSignature(digest, hex, payer, out _));
        Assert.Equal(SignatureCheck.Malformed, Eip3009.CheckSignature(digest, hex.AsSpan(2), payer, out _));
        Assert.Equal(SignatureCheck.Malformed, Eip3009.CheckSignature(digest, hex + "00", payer, out _));
        Assert.Equal(SignatureCheck.Malformed, Eip3009.CheckSignature(digest, hex[..^1] + "g", payer, out _));
    }

    [Fact]
    public void A_signature_of_another_digest_recovers_another_address()
    {
        var (digest, sig, payer) = Signed();
        digest[0] ^= 1;
        var check = Eip3009.CheckSignature(digest, "0x" + Convert.ToHexStringLower(sig), payer, out var recovered);
        Assert.Equal(SignatureCheck.WrongSigner, check);
        Assert.NotEqual(payer, recovered);
    }

    [Theory]
    [InlineData("0", "0x0000000000000000000000000000000000000000000000000000000000000000")]
    [InlineData("1250", "0x00000000000000000000000000000000000000000000000000000000000004e2")]
    [InlineData("18446744073709551616", "0x0000000000000000000000000000000000000000000000010000000000000000")]
    [InlineData("115792089237316195423570985008687907853269984665640564039457584007913129639935", "0xffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff")]
    public void Decimal_uint256_text_parses_to_its_big_endian_word(string text, string word)
    {
        Assert.True(Uint256.TryParse(text, out var value));
        Assert.Equal(word, value.ToString());
    }

    [Theory]
    [InlineData("")]
    [InlineData("-1")]
    [InlineData("+1")]
    [InlineData("1e3")]
    [InlineData(" 1")]
    [InlineData("0x10")]
    [InlineData("115792089237316195423570985008687907853269984665640564039457584007913129639936")] // 2^256
    [InlineData("999999999999999999999999999999999999999999999999999999999999999999999999999999")] // 78 digits, > 2^256
    public void Text_that_is_not_a_decimal_uint256_is_refused(string text) => Assert.False(Uint256.TryParse(text, out _));

    [Fact]
    public void Addresses_compare_regardless_of_case_and_print_with_the_EIP_55_checksum()
    {
        Assert.True(EvmAddress.TryParse(X402World.DevAddress0.ToLowerInvariant(), out var lower));
        Assert.True(EvmAddress.TryParse(X402World.DevAddress0.ToUpperInvariant().Replace("0X", "0x"), out var upper));
        Assert.Equal(lower, upper);
        Assert.Equal(X402World.DevAddress0, lower.ToChecksumString());
        Assert.Equal(new AddressUtil().ConvertToChecksumAddress(X402World.PayTo.ToLowerInvariant()), EvmAddress.Parse(X402World.PayTo).ToChecksumString());
        Assert.False(EvmAddress.TryParse("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb9226", out _));
        Assert.False(EvmAddress.TryParse("f39Fd6e51aad88F6F4ce6aB8827279cffFb922660", out _));
    }

    private static (byte[] Digest, byte[] Signature, EvmAddress Payer) Signed()
    {
        var domain = X402World.Offer().Domain;
        byte[] digest = OurDigest(domain, X402World.Authorization(), Eip3009Kind.TransferWithAuthorization);
        using var signer = Eip3009Signer.FromHex(X402World.DevKey0);
        return (digest, Convert.FromHexString(signer.SignDigest(digest)[2..]), signer.Address);
    }
}
