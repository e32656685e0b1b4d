using System.Text.Json.Serialization;
using ComputeGrid.Core;

namespace ComputeGrid.Inference.Reports;

/// <summary>
/// A node's published reports (<c>GET /api/nodes/{id}/reports</c>), everything a reader needs to check them offline:
/// the node's public key, the epoch length, the accepted chain from its first report, the totals of that chain, and
/// the submissions the server refused (flagged, with the reason; they are not part of the chain).
/// </summary>
public sealed record NodeReportsDocument
{
    /// <summary>The node's id.</summary>
    [JsonPropertyName("node_id")] public required string NodeId { get; init; }

    /// <summary>The node's principal id.</summary>
    [JsonPropertyName("node_principal")] public required ulong NodePrincipal { get; init; }

    /// <summary>The node's admitted Ed25519 public key (raw, base64).</summary>
    [JsonPropertyName("public_key")] public required string PublicKey { get; init; }

    /// <summary>The server's epoch length in seconds.</summary>
    [JsonPropertyName("epoch_seconds")] public required long EpochSeconds { get; init; }

    /// <summary>The accepted reports, oldest first, each chained to the one before (the first to 64 zeros).</summary>
    [JsonPropertyName("reports")] public required IReadOnlyList<EpochReport> Reports { get; init; }

    /// <summary>The sums of the accepted reports.</summary>
    [JsonPropertyName("totals")] public required NodeReportTotals Totals { get; init; }

    /// <summary>Refused submissions, oldest first.</summary>
    [JsonPropertyName("flagged")] public required IReadOnlyList<FlaggedReport> Flagged { get; init; }
}

/// <summary>The sums of a node's accepted reports.</summary>
public sealed record NodeReportTotals
{
    /// <summary>How many reports.</summary>
    [JsonPropertyName("reports")] public required long Reports { get; init; }

    /// <summary>Paid requests.</summary>
    [JsonPropertyName("requests")] public required long Requests { get; init; }

    /// <summary>Their tokens.</summary>
    [JsonPropertyName("tokens")] public required long Tokens { get; init; }

    /// <summary>Seconds up.</summary>
    [JsonPropertyName("uptime_s")] public required long UptimeSeconds { get; init; }

    /// <summary>Joules drawn.</summary>
    [JsonPropertyName("energy_j")] public required long EnergyJoules { get; init; }

    /// <summary>Node revenue, micro-USD.</summary>
    [JsonPropertyName("revenue_micro_usd")] public required long RevenueMicroUsd { get; init; }

    /// <summary>The sums of <paramref name="reports"/> (checked arithmetic).</summary>
    public static NodeReportTotals Of(IReadOnlyList<EpochReport> reports)
    {
        long requests = 0, tokens = 0, uptime = 0, energy = 0, revenue = 0;
        foreach (EpochReport r in reports)
        {
            requests = checked(requests + r.Requests);
            tokens = checked(tokens + r.Tokens);
            uptime = checked(uptime + r.UptimeSeconds);
            energy = checked(energy + r.EnergyJoules);
            revenue = checked(revenue + r.RevenueMicroUsd);
        }
        return new NodeReportTotals { Reports = reports.Count, Requests = requests, Tokens = tokens, UptimeSeconds = uptime, EnergyJoules = energy, RevenueMicroUsd = revenue };
    }
}

/// <summary>A report the server refused, kept with the reason (the report as submitted; its signature may well not verify).</summary>
public sealed record FlaggedReport
{
    /// <summary>When the server received it.</summary>
    [JsonPropertyName("received_at"), JsonConverter(typeof(UnixNanosecondsAsRfc3339Converter))] public required long ReceivedAtUnixNs { get; init; }

    /// <summary>The epoch it claimed.</summary>
    [JsonPropertyName("epoch")] public required long Epoch { get; init; }

    /// <summary>Which check it failed: <c>signature</c>, <c>chain</c>, <c>shape</c>, <c>ledger</c> or <c>identity</c>.</summary>
    [JsonPropertyName("check")] public required string Check { get; init; }

    /// <summary>Why, in one sentence.</summary>
    [JsonPropertyName("reason")] public required string Reason { get; init; }

    /// <summary>The report as submitted.</summary>
    [JsonPropertyName("report")] public required EpochReport Report { get; init; }
}
