using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using ComputeGrid.Inference.Routing;

namespace ComputeGrid.Server.Inference;

/// <summary>
/// A 128-bit fingerprint of a paid request (SHA-256 over canonical bytes of everything that decides its work and price:
/// model, inputs, encoding format, dimensions, region and routing preferences), carried by its hold in the ledger
/// (<c>user_data_128</c>) and by its idempotency entry: the same Idempotency-Key with another request is refused (422).
/// Regions go in by name, so the fingerprint does not depend on the order of the latency data.
/// </summary>
public static class RequestFingerprint
{
    /// <summary>The fingerprint of an embeddings request.</summary>
    public static UInt128 Of(string model, IReadOnlyList<string> inputs, bool base64, int? dimensions, string region, RoutingPreferences preferences,
        IReadOnlyList<string> regionNames)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        byte[] scratch = new byte[8];
        void Int(long v)
        {
            BinaryPrimitives.WriteInt64LittleEndian(scratch, v);
            hash.AppendData(scratch);
        }
        void Text(string s)
        {
            byte[] bytes = Encoding.UTF8.GetBytes(s);
            Int(bytes.Length);
            hash.AppendData(bytes);
        }
        void Regions(RegionSet? set)
        {
            if (set is not { } s) { Int(-1); return; }
            var names = new List<string>();
            for (int i = 0; i < regionNames.Count && i < RegionSet.Capacity; i++)
                if (s.Contains(i)) names.Add(regionNames[i]);
            names.Sort(StringComparer.Ordinal);
            Int(names.Count);
            foreach (string n in names) Text(n);
        }
        Text("computegrid embeddings v1");
        Text(model);
        Int(inputs.Count);
        foreach (string input in inputs) Text(input);
        Int(base64 ? 1 : 0);
        Int(dimensions ?? -1);
        Text(region);
        Int((long)preferences.Sort);
        Int(preferences.MaxPriceMicroUsdPer1kTokens ?? -1);
        Int(preferences.MaxLatencyMs ?? -1);
        Regions(preferences.Only);
        Regions(preferences.Ignore);
        Int(preferences.AllowFallbacks ? 1 : 0);
        Span<byte> digest = stackalloc byte[32];
        hash.GetHashAndReset(digest);
        return BinaryPrimitives.ReadUInt128LittleEndian(digest);
    }
}
