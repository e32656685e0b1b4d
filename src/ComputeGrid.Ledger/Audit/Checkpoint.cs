using System.Buffers.Binary;
using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Serialization;
using ComputeGrid.Core;

namespace ComputeGrid.Ledger.Audit;

/// <summary>One asset's Merkle sum root as published in a checkpoint.</summary>
public sealed record AssetRoot(uint Asset, string Hash, string Debits, string Credits, int Accounts);

/// <summary>
/// A checkpoint: the state of every balance at one point of the log (op), committed by one root hash.
/// <c>root = SHA-256(0x03 ‖ op u64 ‖ timestamp i64 ‖ chain head ‖ for each asset by code: asset u32 ‖ root hash ‖
/// debits i128 ‖ credits i128)</c>. The chain head ties the checkpoint to the audit hash chain of the log:
/// anyone holding the log can recompute both.
/// </summary>
public sealed class Checkpoint
{
    private readonly Dictionary<uint, MerkleSumTree> _trees;

    public ulong Op { get; }
    public long Timestamp { get; }
    public string ChainHead { get; }
    public IReadOnlyList<AssetRoot> Assets { get; }
    public string Root { get; }

    /// <summary>Builds the per-asset trees from the accounts' posted balances and computes the root.</summary>
    public Checkpoint(ulong op, long timestamp, byte[] chainHead, IEnumerable<BalanceLeaf> balances)
    {
        Op = op;
        Timestamp = timestamp;
        ChainHead = Convert.ToHexStringLower(chainHead);
        _trees = balances.GroupBy(b => b.Asset).ToDictionary(g => g.Key, g => new MerkleSumTree(g.Key, g));
        Assets = _trees.Values.OrderBy(t => t.Asset)
            .Select(t => new AssetRoot(t.Asset, Convert.ToHexStringLower(t.Root.Hash), t.Root.Debits.ToString(CultureInfo.InvariantCulture),
                t.Root.Credits.ToString(CultureInfo.InvariantCulture), t.Leaves.Count))
            .ToArray();
        Root = ComputeRoot(op, timestamp, ChainHead, Assets);
    }

    /// <summary>The checkpoint root from its published parts.</summary>
    public static string ComputeRoot(ulong op, long timestamp, string chainHeadHex, IReadOnlyList<AssetRoot> assets)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        Span<byte> buf = stackalloc byte[1 + 8 + 8];
        buf[0] = 0x03;
        BinaryPrimitives.WriteUInt64LittleEndian(buf[1..], op);
        BinaryPrimitives.WriteInt64LittleEndian(buf[9..], timestamp);
        sha.AppendData(buf);
        sha.AppendData(Convert.FromHexString(chainHeadHex));
        Span<byte> a = stackalloc byte[4 + 16 + 16];
        foreach (var r in assets.OrderBy(r => r.Asset))
        {
            BinaryPrimitives.WriteUInt32LittleEndian(a, r.Asset);
            sha.AppendData(a[..4]);
            sha.AppendData(Convert.FromHexString(r.Hash));
            BinaryPrimitives.WriteInt128LittleEndian(a[4..], Int128.Parse(r.Debits, CultureInfo.InvariantCulture));
            BinaryPrimitives.WriteInt128LittleEndian(a[20..], Int128.Parse(r.Credits, CultureInfo.InvariantCulture));
            sha.AppendData(a[4..]);
        }
        return Convert.ToHexStringLower(sha.GetHashAndReset());
    }

    /// <summary>A proof that the account's balances are included in this checkpoint, or null if it has no leaf.</summary>
    public BalanceProof? ProofFor(UInt128 accountId)
    {
        foreach (var tree in _trees.Values)
        {
            var path = tree.PathFor(accountId);
            if (path is null) continue;
            var leaf = tree.Leaves.First(l => l.AccountId == accountId);
            return new BalanceProof(1, Ids.Format(accountId), leaf.Asset, leaf.DebitsPosted, leaf.CreditsPosted, path,
                Op, Timestamp, ChainHead, Assets, Root);
        }
        return null;
    }
}

/// <summary>
/// A self-contained proof of one account's posted balances in a checkpoint. It is checked offline by
/// <see cref="Verify"/> (and <c>computegrid verify --proof FILE --root HEX</c>) with nothing but this file
/// and the published root.
/// </summary>
public sealed record BalanceProof(
    int Version,
    string AccountId,
    uint Asset,
    long DebitsPosted,
    long CreditsPosted,
    IReadOnlyList<ProofStep> Path,
    ulong Op,
    [property: JsonConverter(typeof(UnixNanosecondsAsRfc3339Converter))] long Timestamp,
    string ChainHead,
    IReadOnlyList<AssetRoot> Assets,
    string Root)
{
    /// <summary>
    /// JSON options for proof files: the API's conventions (snake_case members, the checkpoint's time as an RFC 3339
    /// string with every nanosecond, so the root recomputes exactly), indented.
    /// </summary>
    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        WriteIndented = true, UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
    };

    /// <summary>
    /// Checks the proof against <paramref name="expectedRootHex"/>: the leaf climbs its path to the asset's root
    /// (hash and totals), every asset's total debits equal its total credits, and the checkpoint root built
    /// from the published parts equals the expected root. Returns a one-line verdict.
    /// </summary>
    public (bool Ok, string Message) Verify(string expectedRootHex)
    {
        try
        {
            if (Version != 1) return (false, $"unknown proof version {Version}");
            if (!Ids.TryParse(AccountId, out var id)) return (false, "account id is not a valid id");
            var node = MerkleSumTree.HashLeaf(new BalanceLeaf(id, Asset, DebitsPosted, CreditsPosted));
            foreach (var step in Path)
            {
                var sibling = new SumNode(Convert.FromHexString(step.Hash), Int128.Parse(step.Debits, CultureInfo.InvariantCulture), Int128.Parse(step.Credits, CultureInfo.InvariantCulture));
                if (sibling.Hash.Length != 32) return (false, "a path hash is not 32 bytes");
                if (sibling.Debits < 0 || sibling.Credits < 0) return (false, "a path node has a negative sum");
                node = step.SiblingOnLeft ? MerkleSumTree.HashInternal(sibling, node) : MerkleSumTree.HashInternal(node, sibling);
            }
            var assetRoot = Assets.FirstOrDefault(a => a.Asset == Asset);
            if (assetRoot is null) return (false, $"the checkpoint has no root for asset {Asset}");
            if (!string.Equals(Convert.ToHexStringLower(node.Hash), assetRoot.Hash, StringComparison.OrdinalIgnoreCase))
                return (false, "the account's path does not lead to its asset's root");
            if (node.Debits.ToString(CultureInfo.InvariantCulture) != assetRoot.Debits || node.Credits.ToString(CultureInfo.InvariantCulture) != assetRoot.Credits)
                return (false, "the asset root's totals differ from the path's totals");
            foreach (var a in Assets)
                if (a.Debits != a.Credits) return (false, $"asset {a.Asset}: total debits {a.Debits} differ from total credits {a.Credits}");
            string root = Checkpoint.ComputeRoot(Op, Timestamp, ChainHead, Assets);
            if (!string.Equals(root, Root, StringComparison.OrdinalIgnoreCase)) return (false, "the proof's root does not match its parts");
            if (!string.Equals(root, expectedRootHex.Trim(), StringComparison.OrdinalIgnoreCase)) return (false, $"root {root} differs from the expected root");
            string symbol = ComputeGrid.Core.Asset.TryFromCode(Asset, out var asset) ? asset.Symbol : $"asset {Asset}";
            return (true, $"ok: account {AccountId} ({symbol}) debits_posted={DebitsPosted} credits_posted={CreditsPosted} is included in checkpoint op {Op}; {symbol} total debits = total credits = {assetRoot.Credits}");
        }
        catch (FormatException e) { return (false, "malformed proof: " + e.Message); }
        catch (OverflowException) { return (false, "malformed proof: a sum overflows"); }
    }
}
