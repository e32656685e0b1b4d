using System.Text.Json;
using System.Text.Json.Serialization;
using NSec.Cryptography;

namespace ComputeGrid.Inference.Nodes;

/// <summary>Asks the server for a registration challenge (<c>POST /node/v1/challenge</c>).</summary>
public sealed record NodeChallengeRequest([property: JsonPropertyName("node_id")] string NodeId);

/// <summary>The server's challenge: a fresh nonce the node signs to prove it holds its admitted key.</summary>
public sealed record NodeChallenge(
    [property: JsonPropertyName("node_id")] string NodeId,
    [property: JsonPropertyName("nonce")] string Nonce,
    [property: JsonPropertyName("expires_at")] DateTimeOffset ExpiresAt);

/// <summary>
/// A node's registration (<c>POST /node/v1/sessions</c>): what it offers, and its Ed25519 signature over
/// <see cref="NodeSigning.SessionMessage"/> of the challenge's nonce and these fields.
/// </summary>
public sealed record NodeRegisterRequest(
    [property: JsonPropertyName("node_id")] string NodeId,
    [property: JsonPropertyName("nonce")] string Nonce,
    [property: JsonPropertyName("region")] string Region,
    [property: JsonPropertyName("models")] string[] Models,
    [property: JsonPropertyName("price_micro_usd_per_1k_tokens")] long PriceMicroUsdPer1kTokens,
    [property: JsonPropertyName("capacity")] int Capacity,
    [property: JsonPropertyName("signature")] string SignatureBase64);

/// <summary>The server's answer to a registration: the session's bearer token (valid until the node registers again).</summary>
public sealed record NodeSessionGrant(
    [property: JsonPropertyName("node_id")] string NodeId,
    [property: JsonPropertyName("token")] string Token,
    [property: JsonPropertyName("heartbeat_interval_ms")] int HeartbeatIntervalMs,
    [property: JsonPropertyName("revenue_account")] string RevenueAccount);

/// <summary>What a node measures about itself, signed with its key and sent with each heartbeat.</summary>
public sealed record NodeTelemetry
{
    [JsonPropertyName("node_id")] public required string NodeId { get; init; }
    [JsonPropertyName("seq")] public required long Sequence { get; init; }
    [JsonPropertyName("at")] public required DateTimeOffset At { get; init; }
    [JsonPropertyName("uptime_s")] public required double UptimeSeconds { get; init; }
    [JsonPropertyName("utilization")] public required double Utilization { get; init; }
    [JsonPropertyName("requests")] public required long Requests { get; init; }
    [JsonPropertyName("tokens")] public required long Tokens { get; init; }
    [JsonPropertyName("inflight")] public required int Inflight { get; init; }
    [JsonPropertyName("queue")] public required int Queue { get; init; }
    [JsonPropertyName("ewma_model_ms")] public required double EwmaModelMs { get; init; }
    [JsonPropertyName("power_w")] public required double PowerWatts { get; init; }

    /// <summary><c>nvidia-smi</c> when measured on a GPU, <c>modeled</c> when estimated from utilization (no GPU).</summary>
    [JsonPropertyName("power_source")] public required string PowerSource { get; init; }
}

/// <summary>A heartbeat: the telemetry's exact bytes (base64) and their Ed25519 signature, so anyone holding the node's public key can check them.</summary>
public sealed record SignedTelemetry(
    [property: JsonPropertyName("telemetry")] string TelemetryBase64,
    [property: JsonPropertyName("signature")] string SignatureBase64);

/// <summary>
/// A node's report about the capacity it sells on the exchange, signed with the node's key (its provider cannot claim
/// what its node did not sign): <c>delivery</c> of <c>lease</c> over [from, to) (whole hours), or <c>outage</c> (the
/// node cannot deliver; lease, from and to are not used). <c>seq</c> increases with every report, so a replayed one is
/// refused.
/// </summary>
public sealed record NodeReport
{
    [JsonPropertyName("node_id")] public required string NodeId { get; init; }
    [JsonPropertyName("seq")] public required long Sequence { get; init; }
    [JsonPropertyName("at")] public required DateTimeOffset At { get; init; }
    /// <summary><c>delivery</c>.</summary>
    [JsonPropertyName("kind")] public required string Kind { get; init; }
    [JsonPropertyName("lease")] public long Lease { get; init; }
    [JsonPropertyName("from")] public DateTimeOffset From { get; init; }
    [JsonPropertyName("to")] public DateTimeOffset To { get; init; }
}

/// <summary>A signed report: its exact bytes (base64) and their Ed25519 signature.</summary>
public sealed record SignedReport(
    [property: JsonPropertyName("report")] string ReportBase64,
    [property: JsonPropertyName("signature")] string SignatureBase64);

/// <summary>One request for a node, sent down its work stream (one JSON object per line).</summary>
public sealed record NodeWorkItem(
    [property: JsonPropertyName("id")] string Id,
    [property: JsonPropertyName("model")] string Model,
    [property: JsonPropertyName("inputs")] string[] Inputs,
    [property: JsonPropertyName("request_region")] string RequestRegion);

/// <summary>A node's answer to one work item (<c>POST /node/v1/results/{work}</c>).</summary>
public sealed record NodeWorkResult
{
    [JsonPropertyName("vectors")] public string? VectorsBase64 { get; init; }
    [JsonPropertyName("dimensions")] public int Dimensions { get; init; }
    [JsonPropertyName("tokens")] public int Tokens { get; init; }
    [JsonPropertyName("queue_ms")] public double QueueMs { get; init; }
    [JsonPropertyName("model_ms")] public double ModelMs { get; init; }
    [JsonPropertyName("network_ms")] public double NetworkMs { get; init; }
    [JsonPropertyName("error")] public string? Error { get; init; }
}

/// <summary>Ed25519 keys and signatures of node telemetry (libsodium through NSec).</summary>
public static class NodeSigning
{
    private static readonly SignatureAlgorithm Algorithm = SignatureAlgorithm.Ed25519;

    /// <summary>A new key pair: the private key (32-byte seed) and the public key, both raw.</summary>
    public static (byte[] PrivateKey, byte[] PublicKey) NewKeyPair()
    {
        using var key = Key.Create(Algorithm, new KeyCreationParameters { ExportPolicy = KeyExportPolicies.AllowPlaintextExport });
        return (key.Export(KeyBlobFormat.RawPrivateKey), key.PublicKey.Export(KeyBlobFormat.RawPublicKey));
    }

    /// <summary>
    /// The bytes a node signs to register: the challenge's nonce bound to everything it offers, so neither a replayed
    /// signature nor an altered offer is accepted.
    /// </summary>
    public static byte[] SessionMessage(string nodeId, string nonce, string region, IReadOnlyList<string> models, long priceMicroUsdPer1kTokens, int capacity) =>
        System.Text.Encoding.UTF8.GetBytes(string.Join('\n', "computegrid-node-session/v1", nodeId, nonce, region, string.Join(',', models),
            priceMicroUsdPer1kTokens.ToString(System.Globalization.CultureInfo.InvariantCulture), capacity.ToString(System.Globalization.CultureInfo.InvariantCulture)));

    /// <summary>Signs <paramref name="message"/> with a raw private key.</summary>
    public static byte[] SignBytes(ReadOnlySpan<byte> message, byte[] privateKey)
    {
        using var key = Key.Import(Algorithm, privateKey, KeyBlobFormat.RawPrivateKey);
        return Algorithm.Sign(key, message);
    }

    /// <summary>Checks an Ed25519 signature of <paramref name="message"/> against a raw public key.</summary>
    public static bool VerifyBytes(ReadOnlySpan<byte> message, ReadOnlySpan<byte> signature, ReadOnlySpan<byte> publicKey) =>
        PublicKey.TryImport(Algorithm, publicKey, KeyBlobFormat.RawPublicKey, out PublicKey? key) && key is not null && Algorithm.Verify(key, message, signature);

    /// <summary>The raw public key of a raw private key.</summary>
    public static byte[] PublicKeyOf(byte[] privateKey)
    {
        using var key = Key.Import(Algorithm, privateKey, KeyBlobFormat.RawPrivateKey);
        return key.PublicKey.Export(KeyBlobFormat.RawPublicKey);
    }

    /// <summary>Signs a report's UTF-8 JSON bytes with a raw private key.</summary>
    public static SignedReport Sign(NodeReport report, byte[] privateKey)
    {
        var (bytes, signature) = SignJson(report, privateKey);
        return new SignedReport(bytes, signature);
    }

    /// <summary>Checks a report's signature against a raw public key and returns it, or null when it does not verify.</summary>
    public static NodeReport? Verify(SignedReport signed, ReadOnlySpan<byte> publicKey) => VerifyJson<NodeReport>(signed.ReportBase64, signed.SignatureBase64, publicKey);

    /// <summary>Signs the telemetry's UTF-8 JSON bytes with a raw private key.</summary>
    public static SignedTelemetry Sign(NodeTelemetry telemetry, byte[] privateKey)
    {
        var (bytes, signature) = SignJson(telemetry, privateKey);
        return new SignedTelemetry(bytes, signature);
    }

    /// <summary>Checks a heartbeat's signature against a raw public key and returns its telemetry, or null when it does not verify.</summary>
    public static NodeTelemetry? Verify(SignedTelemetry signed, ReadOnlySpan<byte> publicKey) => VerifyJson<NodeTelemetry>(signed.TelemetryBase64, signed.SignatureBase64, publicKey);

    // A signed document travels as its exact JSON bytes (base64) beside their signature, so the verifier checks the
    // very bytes that were signed, whatever JSON library re-encodes it on the way.
    private static (string Bytes, string Signature) SignJson<T>(T value, byte[] privateKey)
    {
        byte[] bytes = JsonSerializer.SerializeToUtf8Bytes(value);
        return (Convert.ToBase64String(bytes), Convert.ToBase64String(SignBytes(bytes, privateKey)));
    }

    private static T? VerifyJson<T>(string bytesBase64, string signatureBase64, ReadOnlySpan<byte> publicKey) where T : class
    {
        byte[] bytes, signature;
        try
        {
            bytes = Convert.FromBase64String(bytesBase64);
            signature = Convert.FromBase64String(signatureBase64);
        }
        catch (FormatException) { return null; }
        if (!VerifyBytes(bytes, signature, publicKey)) return null;
        try { return JsonSerializer.Deserialize<T>(bytes); }
        catch (JsonException) { return null; }
    }
}
