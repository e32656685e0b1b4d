using ComputeGrid.Inference.Nodes;
using ComputeGrid.Inference.Reports;

namespace ComputeGrid.Inference.Tests.Reports;

/// <summary>The report's canonical encoding, hash, signature, derived figures, chain rules, limits and the node's meter.</summary>
public sealed class EpochReportTests
{
    private const long HourNs = 3_600_000_000_000;
    private static readonly (byte[] PrivateKey, byte[] PublicKey) Key = NodeSigning.NewKeyPair();

    private static EpochStatement Statement(long epoch, long requests = 5, long tokens = 700, long revenue = 1_234, long? shares = null) => new()
    {
        NodePrincipal = 9, Epoch = epoch, StartUnixNs = epoch * HourNs, EndUnixNs = (epoch + 1) * HourNs, Complete = true,
        Requests = requests, Tokens = tokens, TokensUnknownRequests = 0, RevenueMicroUsd = revenue, SharesOutstanding = shares,
    };

    private static EpochReport Report(long epoch, string previous, long? shares = null) =>
        EpochReportBuilder.Build("n-1", 4, Statement(epoch, shares: shares), new EpochMeasurement(1_800, 5_000, 72_000, EpochReportEncoding.Modeled), previous, Key.PrivateKey);

    [Fact]
    public void Derived_figures_are_exact_integers_rounded_down()
    {
        // 700 tokens over 72,000 J: 9.72… milli-tokens per joule → 9; 1,234 µUSD over 4 GPUs × 0.5 h → 617; per share of 3.
        EpochReport r = Report(100, EpochReportEncoding.GenesisHash, shares: 3);
        Assert.Equal(9, r.TokensPerJouleMilli);
        Assert.Equal(617, r.RevenuePerGpuHourMicroUsd);
        Assert.Equal(411_333_333, r.RevenuePerShareMicroUsdE6);
        Assert.Null(EpochFigures.TokensPerJouleMilli(700, 0));
        Assert.Null(EpochFigures.RevenuePerGpuHourMicroUsd(1_234, 4, 0));
        Assert.Null(EpochFigures.RevenuePerShareMicroUsdE6(1_234, null));
        Assert.Null(EpochFigures.CheckShape(r));
    }

    [Fact]
    public void The_hash_covers_every_figure_and_the_signature_is_over_the_hash()
    {
        EpochReport r = Report(100, EpochReportEncoding.GenesisHash);
        Assert.True(EpochReportEncoding.VerifySignature(r, Key.PublicKey));
        Assert.Equal(Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(EpochReportEncoding.Canonical(r))), r.Hash);
        Assert.Equal("computegrid-epoch-report/v1"u8.ToArray(), EpochReportEncoding.Canonical(r)[..27]);
        EpochReport[] changed =
        [
            r with { NodePrincipal = 10 }, r with { NodeId = "n-2" }, r with { Epoch = 101 }, r with { Gpus = 5 }, r with { Requests = 6 }, r with { Tokens = 701 },
            r with { UtilizationBasisPoints = 5_001 }, r with { UptimeSeconds = 1_801 }, r with { EnergyJoules = 72_001 }, r with { EnergySource = EpochReportEncoding.Measured },
            r with { TokensPerJouleMilli = null }, r with { RevenueMicroUsd = 1_235 }, r with { RevenuePerGpuHourMicroUsd = 0 }, r with { SharesOutstanding = 1 },
            r with { RevenuePerShareMicroUsdE6 = 1 }, r with { PreviousHash = new string('1', 64) }, r with { StartUnixNs = 1 }, r with { EndUnixNs = 1 },
        ];
        foreach (EpochReport c in changed)
        {
            Assert.NotEqual(r.Hash, EpochReportEncoding.ComputeHash(c));
            Assert.False(EpochReportEncoding.VerifySignature(c, Key.PublicKey));
        }
        Assert.False(EpochReportEncoding.VerifySignature(r, NodeSigning.NewKeyPair().PublicKey));
    }

    [Fact]
    public void The_chain_accepts_the_next_epoch_linked_to_the_last_hash_and_nothing_else()
    {
        EpochReport first = Report(100, EpochReportEncoding.GenesisHash), second = Report(101, first.Hash);
        Assert.Null(EpochReportChain.Check(first, null, 9, "n-1", Key.PublicKey, HourNs));
        Assert.Null(EpochReportChain.Check(second, first, 9, "n-1", Key.PublicKey, HourNs));
        Assert.Equal(ReportCheck.Chain, EpochReportChain.Check(Report(102, first.Hash), first, 9, "n-1", Key.PublicKey, HourNs)?.Check);
        Assert.Equal(ReportCheck.Chain, EpochReportChain.Check(Report(101, EpochReportEncoding.GenesisHash), first, 9, "n-1", Key.PublicKey, HourNs)?.Check);
        Assert.Equal(ReportCheck.Chain, EpochReportChain.Check(second, null, 9, "n-1", Key.PublicKey, HourNs)?.Check);
        Assert.Equal(ReportCheck.Identity, EpochReportChain.Check(first, null, 8, "n-1", Key.PublicKey, HourNs)?.Check);
        Assert.Equal(ReportCheck.Shape, EpochReportChain.Check(first, null, 9, "n-1", Key.PublicKey, HourNs / 2)?.Check);
        Assert.Equal(ReportCheck.Signature, EpochReportChain.Check(first, null, 9, "n-1", NodeSigning.NewKeyPair().PublicKey, HourNs)?.Check);
    }

    [Fact]
    public void The_limits_keep_every_derived_figure_within_64_bits()
    {
        Assert.Equal(EpochReportLimits.CountMax * 1_000, EpochFigures.TokensPerJouleMilli(EpochReportLimits.CountMax, 1));
        Assert.Equal(EpochReportLimits.RevenueMicroUsdMax * 1_000_000, EpochFigures.RevenuePerShareMicroUsdE6(EpochReportLimits.RevenueMicroUsdMax, 1));
        long longestEpochSeconds = (long)EpochReportLimits.EpochMax.TotalSeconds;
        Assert.Equal(EpochReportLimits.RevenueMicroUsdMax * 3600, EpochFigures.RevenuePerGpuHourMicroUsd(EpochReportLimits.RevenueMicroUsdMax, 1, 1));
        Assert.True((long)EpochReportLimits.GpusMax * longestEpochSeconds < long.MaxValue);
        Assert.True(EpochReportLimits.EpochMin < EpochReportLimits.EpochDefault && EpochReportLimits.EpochDefault < EpochReportLimits.EpochMax);
    }

    [Fact]
    public void The_meter_splits_an_interval_at_the_epoch_boundary_and_labels_any_modeled_power()
    {
        var meter = new EpochMeter(HourNs);
        long boundary = 100 * HourNs;
        // 10 s at 100 W and full load straddling the boundary: 4 s before it, 6 s after.
        meter.Add(boundary - 4_000_000_000, boundary + 6_000_000_000, watts: 100, utilization: 1, measured: true);
        meter.Add(boundary + 6_000_000_000, boundary + 16_000_000_000, watts: 50, utilization: 0, measured: false);
        Assert.Equal(new EpochMeasurement(4, 10_000, 400, EpochReportEncoding.Measured), meter.Of(99, measuredWhenDown: false));
        Assert.Equal(new EpochMeasurement(16, 3_750, 1_100, EpochReportEncoding.Modeled), meter.Of(100, measuredWhenDown: false));
        Assert.Equal(EpochMeasurement.Down(measured: true), meter.Of(101, measuredWhenDown: true));
    }
}
