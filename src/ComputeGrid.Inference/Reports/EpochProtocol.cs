using System.Text.Json.Serialization;
using ComputeGrid.Core;

namespace ComputeGrid.Inference.Reports;

/// <summary>
/// The server's epochs as a node sees them (<c>GET /node/v1/epochs</c>): their length, the epoch running now, and the
/// head of the node's accepted chain (the epoch and hash its next report follows; null before its first).
/// </summary>
public sealed record EpochClock
{
    /// <summary>The epoch length in seconds.</summary>
    [JsonPropertyName("epoch_seconds")] public required long EpochSeconds { get; init; }

    /// <summary>The epoch running now on the server's clock.</summary>
    [JsonPropertyName("current_epoch")] public required long CurrentEpoch { get; init; }

    /// <summary>The server's clock now (RFC 3339).</summary>
    [JsonPropertyName("now"), JsonConverter(typeof(UnixNanosecondsAsRfc3339Converter))] public required long NowUnixNs { get; init; }

    /// <summary>The node's last accepted report's epoch, or null.</summary>
    [JsonPropertyName("last_epoch")] public required long? LastEpoch { get; init; }

    /// <summary>The node's last accepted report's hash, or 64 zeros before its first.</summary>
    [JsonPropertyName("last_hash")] public required string LastHash { get; init; }
}

/// <summary>
/// The server's ledger statement of one epoch for a node (<c>GET /node/v1/epochs/{epoch}</c>): the node's receipts
/// summed — its paid requests, their tokens and its revenue, each request counted when its revenue transfer was
/// recorded — and its shares outstanding at the epoch's end. The node signs these figures in its report, and the
/// server checks them against the ledger again when the report arrives.
/// </summary>
public sealed record EpochStatement
{
    /// <summary>The node's principal id.</summary>
    [JsonPropertyName("node_principal")] public required ulong NodePrincipal { get; init; }

    /// <summary>The epoch.</summary>
    [JsonPropertyName("epoch")] public required long Epoch { get; init; }

    /// <summary>Its start (inclusive).</summary>
    [JsonPropertyName("start"), JsonConverter(typeof(UnixNanosecondsAsRfc3339Converter))] public required long StartUnixNs { get; init; }

    /// <summary>Its end (exclusive).</summary>
    [JsonPropertyName("end"), JsonConverter(typeof(UnixNanosecondsAsRfc3339Converter))] public required long EndUnixNs { get; init; }

    /// <summary>Whether the epoch has ended (only an ended epoch can be reported).</summary>
    [JsonPropertyName("complete")] public required bool Complete { get; init; }

    /// <summary>Paid requests (revenue transfers to the node).</summary>
    [JsonPropertyName("requests")] public required long Requests { get; init; }

    /// <summary>Their tokens, as the server metered them.</summary>
    [JsonPropertyName("tokens")] public required long Tokens { get; init; }

    /// <summary>Requests whose tokens the ledger does not hold (captured by recovery after a crash); 0 normally.</summary>
    [JsonPropertyName("tokens_unknown_requests")] public required long TokensUnknownRequests { get; init; }

    /// <summary>The node's revenue, micro-USD.</summary>
    [JsonPropertyName("revenue_micro_usd")] public required long RevenueMicroUsd { get; init; }

    /// <summary>The node's shares outstanding at the epoch's end, or null.</summary>
    [JsonPropertyName("shares_outstanding")] public required long? SharesOutstanding { get; init; }
}

/// <summary>The server's answer to an accepted report.</summary>
public sealed record EpochReportReceipt(
    [property: JsonPropertyName("epoch")] long Epoch,
    [property: JsonPropertyName("hash")] string Hash,
    [property: JsonPropertyName("accepted")] bool Accepted);
