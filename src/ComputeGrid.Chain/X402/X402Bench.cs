using System.Diagnostics;
using System.Globalization;

namespace ComputeGrid.Chain.X402;

/// <summary>
/// Latency of one verification, in microseconds: the median and the 99th percentile of the measured calls (wall time),
/// and the process CPU time per call, which a machine shared with other work inflates far less than wall time.
/// </summary>
public readonly record struct X402VerifyLatency(int Iterations, double P50Microseconds, double P99Microseconds, double CpuMicrosecondsMean);

/// <summary>
/// The micro-benchmark of payment verification (signature recovery and every check, no chain call) behind
/// <c>computegrid bench chain</c>'s <c>x402_verify_us_p50</c>. Payments are signed beforehand by a key and nonces drawn
/// from the seed, so two runs verify the same bytes; each call is timed alone so the percentiles are per payment.
/// </summary>
public static class X402Bench
{
    /// <summary>Distinct signed payments cycled through, so caches see more than one nonce and signature.</summary>
    public const int PaymentCount = 64;

    /// <summary>Times <paramref name="iterations"/> verifications (after a tenth as many unmeasured, to warm the JIT).</summary>
    public static X402VerifyLatency VerifyLatency(int iterations, int seed = 1)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(iterations);
        var random = new Random(seed);
        var now = new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
        Span<byte> keyBytes = stackalloc byte[32];
        random.NextBytes(keyBytes);
        keyBytes[0] &= 0x7F; // below the curve order, whatever the seed
        using var payer = new Eip3009Signer(keyBytes);
        var offer = new X402Requirements(31337, EvmAddress.Parse("0x5fbdb2315678afecb367f032d93f642f64180aa3"), "ComputeGrid USD", "1",
            EvmAddress.Parse("0x70997970c51812dc3a010c7d01b50e0d17dc79c8"), 60);
        var requirements = offer.For(1_250);
        var payments = new PaymentPayload[PaymentCount];
        Span<byte> nonce = stackalloc byte[32];
        for (int i = 0; i < payments.Length; i++)
        {
            random.NextBytes(nonce);
            var auth = new Eip3009Authorization(payer.Address, offer.PayTo, Uint256.FromInt64(1_250), Uint256.FromInt64(0),
                Uint256.FromInt64(now.ToUnixTimeSeconds() + 60), Bytes32.FromBytes(nonce));
            var wire = new ExactEvmAuthorization(auth.From.ToChecksumString(), auth.To.ToChecksumString(), "1250", "0",
                (now.ToUnixTimeSeconds() + 60).ToString(CultureInfo.InvariantCulture), auth.Nonce.ToString());
            payments[i] = new PaymentPayload(2, requirements, new ExactEvmPayload(payer.Sign(offer.Domain, auth), wire));
        }
        var verifier = new X402Verifier(new InMemoryNonceRegistry());
        for (int i = 0; i < Math.Max(iterations / 10, 10); i++) Require(verifier.Verify(payments[i % payments.Length], requirements, now));
        var micros = new double[iterations];
        var cpuStart = Process.GetCurrentProcess().TotalProcessorTime;
        for (int i = 0; i < iterations; i++)
        {
            long start = Stopwatch.GetTimestamp();
            var response = verifier.Verify(payments[i % payments.Length], requirements, now);
            micros[i] = Stopwatch.GetElapsedTime(start).TotalMicroseconds;
            Require(response);
        }
        double cpuMicros = (Process.GetCurrentProcess().TotalProcessorTime - cpuStart).TotalMicroseconds / iterations;
        Array.Sort(micros);
        return new X402VerifyLatency(iterations, micros[(iterations - 1) / 2], micros[Math.Min(iterations - 1, (int)(iterations * 0.99))], cpuMicros);
    }

    private static void Require(VerifyResponse response)
    {
        if (!response.IsValid) throw new InvalidOperationException($"the benchmark's own payment was refused: {response.InvalidReason} {response.InvalidMessage}");
    }
}
