using System.Text.Json.Serialization;
using ComputeGrid.Core;

namespace ComputeGrid.Inference.Reports;

/// <summary>
/// A node's report of one epoch ([start, end) of the server's clock, <see cref="EpochReportLimits.EpochDefault"/> by
/// default): what it served and was paid (taken from the ledger statement the server gives it, so the server can check
/// them against its own records), what it measured about itself, the figures derived from both, and the link to its
/// previous report. <see cref="Hash"/> is SHA-256 over <see cref="EpochReportEncoding.Canonical"/> (not over this JSON:
/// any re-encoding of the JSON keeps the hash), and <see cref="Signature"/> is the node's Ed25519 signature over those
/// 32 bytes. Money and counts are integers; derived figures round down, and a reader recomputes them exactly
/// (<see cref="EpochFigures"/>).
/// </summary>
public sealed record EpochReport
{
    /// <summary>The node's principal id (its revenue account is derived from it).</summary>
    [JsonPropertyName("node_principal")] public required ulong NodePrincipal { get; init; }

    /// <summary>The node's id, as admitted.</summary>
    [JsonPropertyName("node_id")] public required string NodeId { get; init; }

    /// <summary>The epoch number: <c>start / epoch length</c>, counted from the Unix epoch.</summary>
    [JsonPropertyName("epoch")] public required long Epoch { get; init; }

    /// <summary>The epoch's start (inclusive), Unix nanoseconds (RFC 3339 on the wire).</summary>
    [JsonPropertyName("start"), JsonConverter(typeof(UnixNanosecondsAsRfc3339Converter))] public required long StartUnixNs { get; init; }

    /// <summary>The epoch's end (exclusive), Unix nanoseconds (RFC 3339 on the wire).</summary>
    [JsonPropertyName("end"), JsonConverter(typeof(UnixNanosecondsAsRfc3339Converter))] public required long EndUnixNs { get; init; }

    /// <summary>The node's GPUs (its accelerators; a CPU node counts as one), the denominator of revenue per GPU-hour.</summary>
    [JsonPropertyName("gpus")] public required int Gpus { get; init; }

    /// <summary>Paid requests whose node revenue the ledger recorded in the epoch.</summary>
    [JsonPropertyName("requests")] public required long Requests { get; init; }

    /// <summary>The tokens of those requests.</summary>
    [JsonPropertyName("tokens")] public required long Tokens { get; init; }

    /// <summary>The node's mean utilization over its uptime in the epoch, basis points (0 to 10,000).</summary>
    [JsonPropertyName("utilization_bp")] public required int UtilizationBasisPoints { get; init; }

    /// <summary>Seconds of the epoch the node was up (at most the epoch's length).</summary>
    [JsonPropertyName("uptime_s")] public required long UptimeSeconds { get; init; }

    /// <summary>The energy the node drew in the epoch, joules.</summary>
    [JsonPropertyName("energy_j")] public required long EnergyJoules { get; init; }

    /// <summary><see cref="EpochReportEncoding.Measured"/> (nvidia-smi) or <see cref="EpochReportEncoding.Modeled"/> (estimated from utilization).</summary>
    [JsonPropertyName("energy_source")] public required string EnergySource { get; init; }

    /// <summary>Tokens per joule in thousandths (⌊tokens × 1000 / energy⌋); null when no energy was recorded.</summary>
    [JsonPropertyName("tokens_per_joule_milli")] public required long? TokensPerJouleMilli { get; init; }

    /// <summary>The node's revenue in the epoch, micro-USD (the ledger's escrow → node revenue transfers).</summary>
    [JsonPropertyName("revenue_micro_usd")] public required long RevenueMicroUsd { get; init; }

    /// <summary>Revenue per GPU-hour of uptime, micro-USD (⌊revenue × 3600 / (gpus × uptime)⌋); null with no uptime.</summary>
    [JsonPropertyName("revenue_per_gpu_hour_micro_usd")] public required long? RevenuePerGpuHourMicroUsd { get; init; }

    /// <summary>The node's shares outstanding at the epoch's end; null when it has issued none.</summary>
    [JsonPropertyName("shares_outstanding")] public required long? SharesOutstanding { get; init; }

    /// <summary>
    /// Revenue per share in millionths of a micro-USD (fixed point, 6 decimals: ⌊revenue × 10⁶ / shares⌋); null when the
    /// node has issued no shares.
    /// </summary>
    [JsonPropertyName("revenue_per_share_micro_usd_e6")] public required long? RevenuePerShareMicroUsdE6 { get; init; }

    /// <summary>The previous report's hash (hex), 64 zeros for a node's first report.</summary>
    [JsonPropertyName("previous_hash")] public required string PreviousHash { get; init; }

    /// <summary>SHA-256 of the canonical encoding (hex).</summary>
    [JsonPropertyName("hash")] public required string Hash { get; init; }

    /// <summary>The node's Ed25519 signature over the hash's 32 bytes (base64).</summary>
    [JsonPropertyName("signature")] public required string Signature { get; init; }
}

/// <summary>The limits of a report's figures, chosen so every derived figure fits 64 bits (checked by a test).</summary>
public static class EpochReportLimits
{
    /// <summary>The default epoch: one hour of the server's clock.</summary>
    public static readonly TimeSpan EpochDefault = TimeSpan.FromHours(1);

    /// <summary>The shortest epoch a server may be configured with.</summary>
    public static readonly TimeSpan EpochMin = TimeSpan.FromSeconds(1);

    /// <summary>The longest epoch (a day).</summary>
    public static readonly TimeSpan EpochMax = TimeSpan.FromDays(1);

    /// <summary>The most bytes of a node id (UTF-8).</summary>
    public const int NodeIdBytesMax = 128;

    /// <summary>The most GPUs of one node.</summary>
    public const int GpusMax = 65_536;

    /// <summary>The most requests, tokens, joules or shares in one report.</summary>
    public const long CountMax = 1_000_000_000_000_000;

    /// <summary>The most revenue in one report (one million USD): × 10⁶ still fits 64 bits.</summary>
    public const long RevenueMicroUsdMax = 1_000_000_000_000;

    /// <summary>The most reports a node's chain serves in one document.</summary>
    public const int ServedReportsMax = 100_000;
}
