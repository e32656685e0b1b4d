using System.Collections.Concurrent;
using ComputeGrid.Chain.X402;
using Microsoft.Extensions.Time.Testing;

namespace ComputeGrid.Chain.Tests.X402;

/// <summary>
/// Each rule of verification, broken alone, gives its official reason code and the payer; a valid payment is valid
/// exactly inside its window (with the official 6 s margin before validBefore); a nonce buys one answer, even to many
/// threads at once.
/// </summary>
public class X402VerifierTests
{
    private readonly FakeTimeProvider _clock = new(X402World.Now);
    private readonly InMemoryNonceRegistry _nonces = new();
    private readonly X402Requirements _offer = X402World.Offer();
    private readonly PaymentRequirements _required;
    private readonly X402Verifier _verifier;

    public X402VerifierTests()
    {
        _verifier = new X402Verifier(_nonces);
        _required = _offer.For(X402World.AmountMicro);
    }

    private VerifyResponse Verify(PaymentPayload payload) => _verifier.Verify(payload, _required, _clock.GetUtcNow());

    private void AssertRefused(string reason, PaymentPayload payload, PaymentRequirements? required = null)
    {
        var response = _verifier.Verify(payload, required ?? _required, _clock.GetUtcNow());
        Assert.False(response.IsValid, reason);
        Assert.Equal(reason, response.InvalidReason);
        Assert.Equal(payload.Payload.Authorization?.From, response.Payer);
    }

    [Fact]
    public void A_payment_signed_by_its_payer_for_the_amount_to_payTo_inside_its_window_is_valid_and_names_the_payer()
    {
        var response = Verify(X402World.Pay(_offer, X402World.Authorization()));
        Assert.Equal(new VerifyResponse(true, null, null, X402World.DevAddress0), response);
        Assert.Equal(0, _nonces.Count); // Verify reserves nothing
    }

    [Fact]
    public void A_payment_signed_by_another_key_than_from_is_refused_as_an_invalid_signature()
    {
        var payment = X402World.Pay(_offer, X402World.Authorization(), key: X402World.DevKey2);
        AssertRefused("invalid_exact_evm_signature", payment);
        Assert.Contains("recovers 0x", Verify(payment).InvalidMessage);
    }

    [Fact]
    public void A_signed_field_changed_after_signing_breaks_the_signature()
    {
        var payment = X402World.Pay(_offer, X402World.Authorization());
        var auth = payment.Payload.Authorization!;
        foreach (var tampered in new[]
                 {
                     auth with { Value = "1251" }, auth with { ValidAfter = "1" }, auth with { ValidBefore = (X402World.Now.ToUnixTimeSeconds() + 61).ToString() },
                     auth with { Nonce = X402World.Authorization(nonceSeed: 99).Nonce },
                 })
            AssertRefused("invalid_exact_evm_signature", payment with { Payload = payment.Payload with { Authorization = tampered } });
    }

    [Fact]
    public void A_signature_for_another_token_name_version_or_chain_is_refused()
    {
        var auth = X402World.Authorization();
        foreach (var other in new[]
                 {
                     new X402Requirements(X402World.ChainId, EvmAddress.Parse(X402World.Token), "USD Coin", "1", EvmAddress.Parse(X402World.PayTo), 60),
                     new X402Requirements(X402World.ChainId, EvmAddress.Parse(X402World.Token), "ComputeGrid USD", "2", EvmAddress.Parse(X402World.PayTo), 60),
                     new X402Requirements(1, EvmAddress.Parse(X402World.Token), "ComputeGrid USD", "1", EvmAddress.Parse(X402World.PayTo), 60),
                 })
        {
            var signedElsewhere = X402World.Pay(other, auth);
            AssertRefused("invalid_exact_evm_signature", signedElsewhere with { Accepted = _required });
        }
    }

    [Fact]
    public void An_amount_below_the_cost_is_refused_and_an_amount_above_is_accepted()
    {
        AssertRefused("invalid_exact_evm_payload_authorization_value_mismatch", X402World.Pay(_offer, X402World.Authorization(value: X402World.AmountMicro - 1)));
        Assert.True(Verify(X402World.Pay(_offer, X402World.Authorization(value: X402World.AmountMicro + 1))).IsValid);
    }

    [Fact]
    public void An_authorization_to_another_payTo_is_refused()
    {
        var elsewhere = X402World.Pay(_offer, X402World.Authorization(to: "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"));
        AssertRefused("invalid_exact_evm_recipient_mismatch", elsewhere);
        // payTo compares as an address, not as text: lower case is the same payee.
        Assert.True(Verify(X402World.Pay(_offer, X402World.Authorization(to: X402World.PayTo.ToLowerInvariant()))).IsValid);
    }

    [Fact]
    public void ValidBefore_must_be_at_least_6_seconds_ahead_and_validAfter_not_ahead()
    {
        long now = X402World.Now.ToUnixTimeSeconds();
        Assert.True(Verify(X402World.Pay(_offer, X402World.Authorization(validBefore: now + 6))).IsValid);
        AssertRefused("invalid_exact_evm_payload_authorization_valid_before", X402World.Pay(_offer, X402World.Authorization(validBefore: now + 5)));
        AssertRefused("invalid_exact_evm_payload_authorization_valid_before", X402World.Pay(_offer, X402World.Authorization(validBefore: now - 100)));
        Assert.True(Verify(X402World.Pay(_offer, X402World.Authorization(validAfter: now))).IsValid);
        AssertRefused("invalid_exact_evm_payload_authorization_valid_after", X402World.Pay(_offer, X402World.Authorization(validAfter: now + 1)));
    }

    [Fact]
    public void A_valid_payment_expires_as_the_clock_passes_its_validBefore_less_the_margin()
    {
        var payment = X402World.Pay(_offer, X402World.Authorization()); // valid before now + 60
        _clock.Advance(TimeSpan.FromSeconds(54));
        Assert.True(Verify(payment).IsValid);
        _clock.Advance(TimeSpan.FromSeconds(1));
        AssertRefused("invalid_exact_evm_payload_authorization_valid_before", payment);
    }

    [Fact]
    public void A_reused_nonce_is_refused_while_in_flight_and_after_settlement_and_accepted_again_after_release()
    {
        var payment = X402World.Pay(_offer, X402World.Authorization());
        var first = _verifier.VerifyAndReserve(payment, _required, _clock.GetUtcNow(), out var nonce);
        Assert.True(first.IsValid);
        AssertRefused("invalid_exact_evm_nonce_already_used", payment);
        Assert.Equal("invalid_exact_evm_nonce_already_used", _verifier.VerifyAndReserve(payment, _required, _clock.GetUtcNow(), out _).InvalidReason);
        Assert.True(_nonces.Release(nonce));
        Assert.True(_verifier.VerifyAndReserve(payment, _required, _clock.GetUtcNow(), out _).IsValid);
        Assert.True(_nonces.MarkSettled(nonce));
        AssertRefused("invalid_exact_evm_nonce_already_used", payment);
        Assert.False(_nonces.Release(nonce)); // a settled nonce is never free again
        AssertRefused("invalid_exact_evm_nonce_already_used", payment);
        // Another nonce of the same payer is its own authorization.
        Assert.True(Verify(X402World.Pay(_offer, X402World.Authorization(nonceSeed: 2))).IsValid);
    }

    [Fact]
    public void Of_many_threads_presenting_one_authorization_at_once_exactly_one_is_valid()
    {
        var payment = X402World.Pay(_offer, X402World.Authorization());
        var outcomes = new ConcurrentBag<VerifyResponse>();
        using var start = new Barrier(16);
        var threads = Enumerable.Range(0, 16).Select(t => new Thread(() =>
        {
            start.SignalAndWait();
            for (int i = 0; i < 8; i++) outcomes.Add(_verifier.VerifyAndReserve(payment, _required, _clock.GetUtcNow(), out _));
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
        Assert.Equal(128, outcomes.Count);
        Assert.Single(outcomes, o => o.IsValid);
        Assert.All(outcomes.Where(o => !o.IsValid), o => Assert.Equal("invalid_exact_evm_nonce_already_used", o.InvalidReason));
    }

    [Fact]
    public void A_high_s_signature_is_refused_as_an_invalid_signature()
    {
        var payment = X402World.Pay(_offer, X402World.Authorization());
        var sig = Convert.FromHexString(payment.Payload.Signature![2..]);
        var s = new System.Numerics.BigInteger(sig.AsSpan(32, 32), isUnsigned: true, isBigEndian: true);
        var n = System.Numerics.BigInteger.Parse("115792089237316195423570985008687907852837564279074904382605163141518161494337");
        (n - s).TryWriteBytes(sig.AsSpan(32, 32), out _, isUnsigned: true, isBigEndian: true);
        sig[64] = (byte)(sig[64] == 27 ? 28 : 27);
        var twin = payment with { Payload = payment.Payload with { Signature = "0x" + Convert.ToHexStringLower(sig) } };
        AssertRefused("invalid_exact_evm_signature", twin);
        Assert.Contains("EIP-2", Verify(twin).InvalidMessage);
    }

    [Fact]
    public void Scheme_network_token_and_version_mismatches_are_refused_with_their_reasons()
    {
        var payment = X402World.Pay(_offer, X402World.Authorization());
        AssertRefused("invalid_x402_version", payment with { X402Version = 1 });
        AssertRefused("invalid_exact_evm_scheme", payment with { Accepted = payment.Accepted with { Scheme = "upto" } });
        AssertRefused("invalid_exact_evm_scheme", payment, _required with { Scheme = "upto" });
        AssertRefused("invalid_exact_evm_missing_eip712_domain", payment, _required with { Extra = new PaymentExtra { Name = "ComputeGrid USD" } });
        AssertRefused("invalid_exact_evm_missing_eip712_domain", payment, _required with { Extra = null });
        AssertRefused("invalid_exact_evm_network_mismatch", payment with { Accepted = payment.Accepted with { Network = "eip155:8453" } });
        AssertRefused("invalid_exact_evm_asset_mismatch", payment with { Accepted = payment.Accepted with { Asset = "0x036CbD53842c5426634e7929541eC2318f3dCF7e" } });
        AssertRefused("invalid_payment_requirements", payment, _required with { Network = "base" });
        AssertRefused("invalid_payment_requirements", payment, _required with { Amount = "1.25" });
    }

    [Fact]
    public void A_payload_without_an_authorization_or_with_unparsable_fields_is_refused()
    {
        var payment = X402World.Pay(_offer, X402World.Authorization());
        AssertRefused("unsupported_payload_type", payment with { Payload = new ExactEvmPayload(payment.Payload.Signature) });
        AssertRefused("unsupported_payload_type", payment with { Payload = payment.Payload with { Signature = null } });
        var auth = payment.Payload.Authorization!;
        foreach (var bad in new[] { auth with { To = "0x1234" }, auth with { Value = "-5" }, auth with { ValidBefore = "soon" }, auth with { Nonce = "0x01" } })
            AssertRefused("invalid_payload", payment with { Payload = payment.Payload with { Authorization = bad } });
        foreach (string sig in new[] { "0x", "0xzz", payment.Payload.Signature![..^2], payment.Payload.Signature + "1b" })
            AssertRefused("invalid_exact_evm_failed_to_parse_signature", payment with { Payload = payment.Payload with { Signature = sig } });
    }

    [Fact]
    public void Every_verdict_has_its_own_reason_code()
    {
        var reasons = Enum.GetValues<X402Verdict>().Where(v => v != X402Verdict.Valid).Select(X402Reasons.Of).ToList();
        Assert.All(reasons, r => Assert.False(string.IsNullOrEmpty(r)));
        Assert.Equal(reasons.Count, reasons.Distinct().Count());
        Assert.Null(X402Reasons.Of(X402Verdict.Valid));
    }
}
