using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using ComputeGrid.Inference.Nodes;

namespace ComputeGrid.Inference.Reports;

/// <summary>
/// The canonical bytes of an <see cref="EpochReport"/>, its hash and its signature. The hash is over these bytes, not
/// over JSON text, so it does not depend on member order, whitespace, number or time formatting of any JSON library.
/// The encoding (version 1), in this order, integers little-endian:
/// <code>
/// "computegrid-epoch-report/v1"  27 ASCII bytes (domain separation: no other signed message starts so)
/// node_principal                 u64
/// node_id                        u16 byte length, then UTF-8
/// epoch, start, end              i64 each (start and end in Unix nanoseconds)
/// gpus                           i32
/// requests, tokens               i64 each
/// utilization_bp                 i32
/// uptime_s, energy_j             i64 each
/// energy_source                  u8: 0 measured, 1 modeled
/// tokens_per_joule_milli         optional i64
/// revenue_micro_usd              i64
/// revenue_per_gpu_hour_micro_usd optional i64
/// shares_outstanding             optional i64
/// revenue_per_share_micro_usd_e6 optional i64
/// previous_hash                  32 bytes
/// </code>
/// An optional value is one byte 0 (null) or 1 followed by the i64. The signature is Ed25519 over the 32-byte hash.
/// </summary>
public static class EpochReportEncoding
{
    /// <summary>The energy source of a measurement (nvidia-smi).</summary>
    public const string Measured = "measured";

    /// <summary>The energy source of an estimate from utilization.</summary>
    public const string Modeled = "modeled";

    /// <summary>The previous hash of a node's first report: 32 zero bytes.</summary>
    public static readonly string GenesisHash = new('0', 64);

    private static ReadOnlySpan<byte> Domain => "computegrid-epoch-report/v1"u8;

    /// <summary>The report's canonical bytes (its hash and signature are not part of them).</summary>
    /// <exception cref="FormatException">The node id is too long or the previous hash is not 64 hex digits.</exception>
    public static byte[] Canonical(EpochReport r)
    {
        byte[] id = Encoding.UTF8.GetBytes(r.NodeId);
        if (id.Length > EpochReportLimits.NodeIdBytesMax) throw new FormatException($"The node id is longer than {EpochReportLimits.NodeIdBytesMax} bytes.");
        byte[] previous = HashBytes(r.PreviousHash) ?? throw new FormatException("previous_hash must be 64 hex digits.");
        var w = new List<byte>(Domain.Length + 8 + 2 + id.Length + 8 * 14 + 4 * 2 + 5 + 32);
        w.AddRange(Domain);
        U64(w, r.NodePrincipal);
        Span<byte> len = stackalloc byte[2];
        BinaryPrimitives.WriteUInt16LittleEndian(len, (ushort)id.Length);
        w.AddRange(len);
        w.AddRange(id);
        I64(w, r.Epoch);
        I64(w, r.StartUnixNs);
        I64(w, r.EndUnixNs);
        I32(w, r.Gpus);
        I64(w, r.Requests);
        I64(w, r.Tokens);
        I32(w, r.UtilizationBasisPoints);
        I64(w, r.UptimeSeconds);
        I64(w, r.EnergyJoules);
        w.Add(r.EnergySource == Measured ? (byte)0 : r.EnergySource == Modeled ? (byte)1 : throw new FormatException("energy_source must be \"measured\" or \"modeled\"."));
        Optional(w, r.TokensPerJouleMilli);
        I64(w, r.RevenueMicroUsd);
        Optional(w, r.RevenuePerGpuHourMicroUsd);
        Optional(w, r.SharesOutstanding);
        Optional(w, r.RevenuePerShareMicroUsdE6);
        w.AddRange(previous);
        return [.. w];
    }

    /// <summary>SHA-256 of the canonical bytes, lowercase hex.</summary>
    public static string ComputeHash(EpochReport r) => Convert.ToHexStringLower(SHA256.HashData(Canonical(r)));

    /// <summary>The report with its hash and the node's signature over it.</summary>
    /// <param name="unsigned">The report (its hash and signature are ignored).</param>
    /// <param name="privateKey">The node's raw Ed25519 private key.</param>
    public static EpochReport Sign(EpochReport unsigned, byte[] privateKey)
    {
        string hash = ComputeHash(unsigned);
        byte[] signature = NodeSigning.SignBytes(Convert.FromHexString(hash), privateKey);
        return unsigned with { Hash = hash, Signature = Convert.ToBase64String(signature) };
    }

    /// <summary>Whether the report's signature is the node's (the raw public key) over its recomputed hash, and the stated hash is that hash.</summary>
    public static bool VerifySignature(EpochReport r, ReadOnlySpan<byte> publicKey)
    {
        string hash;
        try { hash = ComputeHash(r); }
        catch (FormatException) { return false; }
        if (!string.Equals(hash, r.Hash, StringComparison.Ordinal)) return false;
        byte[] signature;
        try { signature = Convert.FromBase64String(r.Signature); }
        catch (FormatException) { return false; }
        return NodeSigning.VerifyBytes(Convert.FromHexString(hash), signature, publicKey);
    }

    /// <summary>The 32 bytes of a lowercase or uppercase 64-digit hex hash, or null.</summary>
    public static byte[]? HashBytes(string? hex)
    {
        if (hex is not { Length: 64 }) return null;
        try { return Convert.FromHexString(hex); }
        catch (FormatException) { return null; }
    }

    private static void U64(List<byte> w, ulong v)
    {
        Span<byte> b = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(b, v);
        w.AddRange(b);
    }

    private static void I64(List<byte> w, long v)
    {
        Span<byte> b = stackalloc byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(b, v);
        w.AddRange(b);
    }

    private static void I32(List<byte> w, int v)
    {
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(b, v);
        w.AddRange(b);
    }

    private static void Optional(List<byte> w, long? v)
    {
        w.Add(v.HasValue ? (byte)1 : (byte)0);
        if (v is long x) I64(w, x);
    }
}
