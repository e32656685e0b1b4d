using System.Text;
using System.Text.Json;
using ComputeGrid.Chain.X402;

namespace ComputeGrid.Chain.Tests.X402;

/// <summary>
/// The three headers on the wire: what our builder emits (pinned byte for byte), a PAYMENT-SIGNATURE captured from the
/// official client (@x402/fetch + @x402/evm 2.27.0, Anvil key 0) decoded and verified, round trips, and every way a
/// header can be malformed answered with a one-line reason.
/// </summary>
public class X402HeadersTests
{
    /// <summary>Our PAYMENT-REQUIRED for 1,250 micro-USD of embeddings: field names, order and values as the official client reads them.</summary>
    private const string GoldenRequiredJson =
        """{"x402Version":2,"resource":{"url":"http://127.0.0.1/v1/embeddings","description":"Embeddings"},"accepts":[{"scheme":"exact","network":"eip155:31337","amount":"1250","asset":"0x5FbDB2315678afecb367f032d93F642f64180aa3","payTo":"0x70997970C51812dc3A010C7d01b50e0d17dc79C8","maxTimeoutSeconds":60,"extra":{"name":"ComputeGrid USD","version":"1"}}]}""";

    /// <summary>
    /// What the official client sent for the PAYMENT-REQUIRED above (official-client.cjs, captured once): it signed
    /// validAfter 0, validBefore = its clock + maxTimeoutSeconds (1796576094), a random nonce.
    /// </summary>
    private const string GoldenSignatureHeader =
        "eyJ4NDAyVmVyc2lvbiI6MiwicGF5bG9hZCI6eyJhdXRob3JpemF0aW9uIjp7ImZyb20iOiIweGYzOUZkNmU1MWFhZDg4RjZGNGNlNmFCODgyNzI3OWNmZkZiOTIyNjYiLCJ0byI6IjB4NzA5OTc5NzBDNTE4MTJkYzNBMDEwQzdkMDFiNTBlMGQxN2RjNzlDOCIsInZhbHVlIjoiMTI1MCIsInZhbGlkQWZ0ZXIiOiIwIiwidmFsaWRCZWZvcmUiOiIxNzk2NTc2MDk0Iiwibm9uY2UiOiIweDI4YTJmZDdmMDYzMmFlMjE0MDY4ZDgzNmYxMjA0YWY3ZGRlNjJkZDlhZjRkOGJhNmUyZjQxMDc3OTBiNmY1MjQifSwic2lnbmF0dXJlIjoiMHg2ZjhhY2RjYWZjNTViMDMzNjg4OTc1N2FhNzEzMDc1NDFkNTVkMmJkYmM2ZjUzMjkyYjZlY2M2OGQ2Yjc4Njc4NjFlNDk2ZGRmZTI0MTc1YTMxZmI3N2NiYTZkYTI2ZjE2ZDUxMmVhNDljNzI3MGFhYzUwZDJjNDA0OTY3OTkxMjFjIn0sInJlc291cmNlIjp7InVybCI6Imh0dHA6Ly8xMjcuMC4wLjEvdjEvZW1iZWRkaW5ncyIsImRlc2NyaXB0aW9uIjoiRW1iZWRkaW5ncyJ9LCJhY2NlcHRlZCI6eyJzY2hlbWUiOiJleGFjdCIsIm5ldHdvcmsiOiJlaXAxNTU6MzEzMzciLCJhbW91bnQiOiIxMjUwIiwiYXNzZXQiOiIweDVGYkRCMjMxNTY3OGFmZWNiMzY3ZjAzMmQ5M0Y2NDJmNjQxODBhYTMiLCJwYXlUbyI6IjB4NzA5OTc5NzBDNTE4MTJkYzNBMDEwQzdkMDFiNTBlMGQxN2RjNzlDOCIsIm1heFRpbWVvdXRTZWNvbmRzIjo2MCwiZXh0cmEiOnsibmFtZSI6IkNvbXB1dGVHcmlkIFVTRCIsInZlcnNpb24iOiIxIn19fQ==";

    private const long GoldenValidBefore = 1796576094;

    [Fact]
    public void The_payment_required_header_is_base64_of_exactly_the_golden_JSON()
    {
        string header = X402World.Offer().Header("http://127.0.0.1/v1/embeddings", "Embeddings", X402World.AmountMicro);
        Assert.Equal(GoldenRequiredJson, Encoding.UTF8.GetString(Convert.FromBase64String(header)));
        Assert.True(X402Headers.TryDecodePaymentRequired(header, out var decoded, out string error), error);
        Assert.Equal(GoldenRequiredJson, Json(decoded!));
        var accept = Assert.Single(decoded!.Accepts);
        Assert.Equal(("exact", "eip155:31337", "1250", 60), (accept.Scheme, accept.Network, accept.Amount, accept.MaxTimeoutSeconds));
        Assert.Equal(("ComputeGrid USD", "1"), (accept.Extra!.Name, accept.Extra.Version));
    }

    [Fact]
    public void The_official_clients_payment_signature_decodes_and_verifies_inside_its_window_only()
    {
        Assert.True(X402Headers.TryDecodePaymentPayload(GoldenSignatureHeader, out var payload, out string error), error);
        var auth = payload!.Payload.Authorization!;
        Assert.Equal((X402World.DevAddress0, X402World.PayTo, "1250", "0"), (auth.From, auth.To, auth.Value, auth.ValidAfter));
        Assert.Equal(X402World.Offer().For(X402World.AmountMicro), payload.Accepted);
        Assert.Equal(new ResourceInfo("http://127.0.0.1/v1/embeddings", "Embeddings"), payload.Resource);

        var verifier = new X402Verifier(new InMemoryNonceRegistry());
        var required = X402World.Offer().For(X402World.AmountMicro);
        var signedAt = DateTimeOffset.FromUnixTimeSeconds(GoldenValidBefore - 60);
        Assert.Equal(new VerifyResponse(true, null, null, X402World.DevAddress0), verifier.Verify(payload, required, signedAt));
        Assert.Equal("invalid_exact_evm_payload_authorization_valid_before",
            verifier.Verify(payload, required, DateTimeOffset.FromUnixTimeSeconds(GoldenValidBefore - 5)).InvalidReason);
    }

    [Fact]
    public void A_payment_payload_survives_encode_and_decode_unchanged()
    {
        Assert.True(X402Headers.TryDecodePaymentPayload(GoldenSignatureHeader, out var payload, out _));
        string again = X402Headers.Encode(payload!);
        Assert.True(X402Headers.TryDecodePaymentPayload(again, out var back, out string error), error);
        Assert.Equal(Json(payload!), Json(back!));
        // Same members and values as the official client's JSON (its member order differs: payload first).
        using var theirs = JsonDocument.Parse(Convert.FromBase64String(GoldenSignatureHeader));
        using var ours = JsonDocument.Parse(Convert.FromBase64String(again));
        Assert.True(JsonElement.DeepEquals(theirs.RootElement, ours.RootElement));
    }

    [Fact]
    public void A_settle_response_round_trips_and_leaves_absent_members_out()
    {
        var settled = new SettleResponse(true, "0x" + new string('a', 64), "eip155:31337", X402World.DevAddress0);
        string header = X402Headers.Encode(settled);
        Assert.Equal($$"""{"success":true,"transaction":"0x{{new string('a', 64)}}","network":"eip155:31337","payer":"{{X402World.DevAddress0}}"}""",
            Encoding.UTF8.GetString(Convert.FromBase64String(header)));
        Assert.True(X402Headers.TryDecodeSettleResponse(header, out var back, out string error), error);
        Assert.Equal(settled, back);
    }

    [Fact]
    public void A_header_without_its_base64_padding_is_read_as_atob_reads_it()
    {
        string header = X402World.Offer().Header("http://127.0.0.1/v1/x", null, 7);
        string unpadded = header.TrimEnd('=');
        Assert.NotEqual(header, unpadded);
        Assert.True(X402Headers.TryDecodePaymentRequired(unpadded, out var decoded, out string error), error);
        Assert.Equal("7", decoded!.Accepts[0].Amount);
    }

    public static TheoryData<string?, string> Malformed => new()
    {
        { null, "PAYMENT-SIGNATURE is empty" },
        { "", "PAYMENT-SIGNATURE is empty" },
        { "eyJ4NDAy VmVyc2lvbiI6Mn0=", "PAYMENT-SIGNATURE is not base64 (character 'U+0020')" },
        { "eyJ4NDAyVmVyc2lvbiI6Mn0_", "PAYMENT-SIGNATURE is not base64 (character '_')" },
        { "ab=c", "PAYMENT-SIGNATURE is not base64 (character '=')" },
        { "abcde", "PAYMENT-SIGNATURE is not base64 (bad length or padding)" },
        { Convert.ToBase64String("not json"u8), "PAYMENT-SIGNATURE is not the JSON of a PaymentPayload" },
        { Convert.ToBase64String("null"u8), "PAYMENT-SIGNATURE is JSON null" },
        { Convert.ToBase64String("""{"x402Version":2}"""u8), "PAYMENT-SIGNATURE is not the JSON of a PaymentPayload" },
        { Convert.ToBase64String("""{"x402Version":"2","accepted":{},"payload":{}}"""u8), "PAYMENT-SIGNATURE is not the JSON of a PaymentPayload" },
        { new string('A', X402Headers.HeaderCharsMax + 4), $"PAYMENT-SIGNATURE is longer than {X402Headers.HeaderCharsMax} characters" },
    };

    [Theory]
    [MemberData(nameof(Malformed))]
    public void A_malformed_payment_signature_is_refused_with_a_one_line_reason(string? header, string reasonStart)
    {
        Assert.False(X402Headers.TryDecodePaymentPayload(header, out var payload, out string error));
        Assert.Null(payload);
        Assert.StartsWith(reasonStart, error);
        Assert.DoesNotContain('\n', error);
    }

    [Fact]
    public void The_requirement_carries_the_amount_in_micro_units_and_refuses_a_non_positive_amount_or_timeout()
    {
        var offer = X402World.Offer();
        Assert.Equal("123456789", offer.For(123_456_789).Amount);
        Assert.Equal("eip155:31337", offer.Network);
        Assert.Throws<ArgumentOutOfRangeException>(() => offer.For(0));
        Assert.Throws<ArgumentOutOfRangeException>(() => offer.For(-1));
        Assert.Throws<ArgumentOutOfRangeException>(() => new X402Requirements(1, default, "n", "1", default, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => new X402Requirements(1, default, "n", "1", default, X402Requirements.MaxTimeoutSecondsMax + 1));
    }

    [Fact]
    public void The_facilitator_bodies_read_and_write_the_official_shapes()
    {
        // What @x402/core's HTTPFacilitatorClient posts to /verify and /settle.
        string payloadJson = Encoding.UTF8.GetString(Convert.FromBase64String(GoldenSignatureHeader));
        string requirementsJson = GoldenRequiredJson[(GoldenRequiredJson.IndexOf("[{", StringComparison.Ordinal) + 1)..GoldenRequiredJson.LastIndexOf(']')];
        string body = $$$"""{"x402Version":2,"paymentPayload":{{{payloadJson}}},"paymentRequirements":{{{requirementsJson}}}}""";
        var request = JsonSerializer.Deserialize(body, X402Json.Default.FacilitatorRequest)!;
        Assert.Equal(X402World.Offer().For(X402World.AmountMicro), request.PaymentRequirements);
        Assert.Equal(X402World.DevAddress0, request.PaymentPayload.Payload.Authorization!.From);

        var supported = new SupportedResponse([new SupportedKind(2, "exact", "eip155:31337")], [],
            new Dictionary<string, IReadOnlyList<string>> { ["eip155:*"] = [X402World.PayTo] });
        Assert.Equal($$$"""{"kinds":[{"x402Version":2,"scheme":"exact","network":"eip155:31337"}],"extensions":[],"signers":{"eip155:*":["{{{X402World.PayTo}}}"]}}""",
            JsonSerializer.Serialize(supported, X402Json.Default.SupportedResponse));
        Assert.Equal("""{"isValid":false,"invalidReason":"invalid_exact_evm_signature","payer":"0xabc"}""",
            JsonSerializer.Serialize(new VerifyResponse(false, "invalid_exact_evm_signature", null, "0xabc"), X402Json.Default.VerifyResponse));
    }

    private static string Json(PaymentRequired r) => JsonSerializer.Serialize(r, X402Json.Default.PaymentRequired);
    private static string Json(PaymentPayload p) => JsonSerializer.Serialize(p, X402Json.Default.PaymentPayload);
}
