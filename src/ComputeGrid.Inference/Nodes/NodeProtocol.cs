using System.Text.Json;
using System.Text.Json.Serialization;
using NSec.Cryptography;

namespace ComputeGrid.Inference.Nodes;

/// <summary>A node's registration with the server (<c>POST /api/inference/nodes/register</c>).</summary>
public sealed record NodeRegisterRequest(
    [property: JsonPropertyName("node_id")] string NodeId,
    [property: JsonPropertyName("region")] string Region,
    [property: JsonPropertyName("models")] string[] Models,
    [property: JsonPropertyName("price_micro_usd_per_1k_tokens")] long PriceMicroUsdPer1kTokens,
    [property: JsonPropertyName("capacity")] int Capacity,
    [property: JsonPropertyName("public_key")] string PublicKeyBase64);

/// <summary>What a node measures about itself, signed with its key and sent with each heartbeat.</summary>
public sealed record NodeTelemetry
{
    [JsonPropertyName("node_id")] public required string NodeId { get; init; }
    [JsonPropertyName("seq")] public required long Sequence { get; init; }
    [JsonPropertyName("at_unix_ms")] public required long AtUnixMs { get; init; }
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

/// <summary>One request for a node, sent down its work stream (one JSON object per line).</summary>
public sealed record NodeWorkItem(
    [property: JsonPropertyName("id")] string Id,
    [property: JsonPropertyName("model")] string Model,
    [property: JsonPropertyName("inputs")] string[] Inputs,
    [property: JsonPropertyName("request_region")] string RequestRegion);

/// <summary>A node's answer to one work item (<c>POST /api/inference/nodes/{id}/results/{work}</c>).</summary>
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

    /// <summary>Signs the telemetry's UTF-8 JSON bytes with a raw private key.</summary>
    public static SignedTelemetry Sign(NodeTelemetry telemetry, byte[] privateKey)
    {
        byte[] bytes = JsonSerializer.SerializeToUtf8Bytes(telemetry);
        using var key = Key.Import(Algorithm, privateKey, KeyBlobFormat.RawPrivateKey);
        return new SignedTelemetry(Convert.ToBase64String(bytes), Convert.ToBase64String(Algorithm.Sign(key, bytes)));
    }

    /// <summary>Checks a heartbeat's signature against a raw public key and returns its telemetry, or null when it does not verify.</summary>
    public static NodeTelemetry? Verify(SignedTelemetry signed, ReadOnlySpan<byte> publicKey)
    {
        byte[] bytes, signature;
        try
        {
            bytes = Convert.FromBase64String(signed.TelemetryBase64);
            signature = Convert.FromBase64String(signed.SignatureBase64);
        }
        catch (FormatException) { return null; }
        if (!PublicKey.TryImport(Algorithm, publicKey, KeyBlobFormat.RawPublicKey, out PublicKey? key) || key is null) return null;
        if (!Algorithm.Verify(key, bytes, signature)) return null;
        try { return JsonSerializer.Deserialize<NodeTelemetry>(bytes); }
        catch (JsonException) { return null; }
    }
}
