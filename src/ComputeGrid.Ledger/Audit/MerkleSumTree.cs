using System.Buffers.Binary;
using System.Security.Cryptography;

namespace ComputeGrid.Ledger.Audit;

/// <summary>One account's posted balances as committed by a checkpoint.</summary>
public readonly record struct BalanceLeaf(UInt128 AccountId, uint Asset, long DebitsPosted, long CreditsPosted);

/// <summary>A node of a Merkle sum tree: a hash that commits to the subtree, and the subtree's totals.</summary>
public readonly record struct SumNode(byte[] Hash, Int128 Debits, Int128 Credits);

/// <summary>
/// A Merkle <b>sum</b> tree over the posted balances of one asset's accounts, sorted by account id. Each
/// node commits to its children's hashes <i>and</i> their debit and credit totals, so the root commits to
/// the asset's total debits and credits: a holder who checks a proof of their own balance also checks that
/// the total the operator reports includes it, and no subtree can hide a negative sum.
/// <code>
/// leaf     = SHA-256(0x00 ‖ id u128 ‖ asset u32 ‖ debits_posted i64 ‖ credits_posted i64)      sums = (debits, credits)
/// internal = SHA-256(0x01 ‖ left hash ‖ left debits i128 ‖ left credits i128 ‖ right hash ‖ right debits ‖ right credits)
/// </code>
/// An odd node at the end of a level is carried up unchanged. All integers little-endian.
/// </summary>
public sealed class MerkleSumTree
{
    private readonly List<SumNode[]> _levels = new();

    /// <summary>The asset this tree covers.</summary>
    public uint Asset { get; }

    /// <summary>The leaves, sorted by account id.</summary>
    public IReadOnlyList<BalanceLeaf> Leaves { get; }

    /// <summary>The root: hash and the asset's total posted debits and credits.</summary>
    public SumNode Root => _levels[^1][0];

    /// <summary>Builds the tree; <paramref name="leaves"/> must all be of <paramref name="asset"/> and have distinct ids.</summary>
    public MerkleSumTree(uint asset, IEnumerable<BalanceLeaf> leaves)
    {
        Asset = asset;
        var sorted = leaves.OrderBy(l => l.AccountId).ToArray();
        for (int i = 0; i < sorted.Length; i++)
        {
            if (sorted[i].Asset != asset) throw new ArgumentException("Every leaf must be of the tree's asset.");
            if (i > 0 && sorted[i].AccountId == sorted[i - 1].AccountId) throw new ArgumentException("Duplicate account id.");
        }
        Leaves = sorted;
        var level = sorted.Length == 0
            ? new[] { new SumNode(SHA256.HashData(new byte[] { 0x02 }), 0, 0) } // the empty tree's root
            : sorted.Select(HashLeaf).ToArray();
        _levels.Add(level);
        while (level.Length > 1)
        {
            var next = new SumNode[(level.Length + 1) / 2];
            for (int i = 0; i < next.Length; i++)
            {
                int l = 2 * i;
                next[i] = l + 1 < level.Length ? HashInternal(level[l], level[l + 1]) : level[l];
            }
            _levels.Add(next);
            level = next;
        }
    }

    /// <summary>Hash and sums of a leaf.</summary>
    public static SumNode HashLeaf(BalanceLeaf leaf)
    {
        Span<byte> buf = stackalloc byte[1 + 16 + 4 + 8 + 8];
        buf[0] = 0x00;
        BinaryPrimitives.WriteUInt128LittleEndian(buf[1..], leaf.AccountId);
        BinaryPrimitives.WriteUInt32LittleEndian(buf[17..], leaf.Asset);
        BinaryPrimitives.WriteInt64LittleEndian(buf[21..], leaf.DebitsPosted);
        BinaryPrimitives.WriteInt64LittleEndian(buf[29..], leaf.CreditsPosted);
        return new SumNode(SHA256.HashData(buf), leaf.DebitsPosted, leaf.CreditsPosted);
    }

    /// <summary>Hash and sums of an internal node; sums are exact (128-bit, checked).</summary>
    public static SumNode HashInternal(SumNode left, SumNode right)
    {
        Span<byte> buf = stackalloc byte[1 + 2 * (32 + 16 + 16)];
        buf[0] = 0x01;
        Write(buf[1..], left);
        Write(buf[65..], right);
        return new SumNode(SHA256.HashData(buf), checked(left.Debits + right.Debits), checked(left.Credits + right.Credits));

        static void Write(Span<byte> into, SumNode n)
        {
            n.Hash.CopyTo(into);
            BinaryPrimitives.WriteInt128LittleEndian(into[32..], n.Debits);
            BinaryPrimitives.WriteInt128LittleEndian(into[48..], n.Credits);
        }
    }

    /// <summary>The path from the leaf of <paramref name="accountId"/> to the root, or null if it has no leaf.</summary>
    public IReadOnlyList<ProofStep>? PathFor(UInt128 accountId)
    {
        int lo = 0, hi = Leaves.Count - 1, index = -1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >>> 1;
            int c = Leaves[mid].AccountId.CompareTo(accountId);
            if (c == 0) { index = mid; break; }
            if (c < 0) lo = mid + 1; else hi = mid - 1;
        }
        if (index < 0) return null;
        var steps = new List<ProofStep>();
        for (int level = 0; level < _levels.Count - 1; level++)
        {
            var nodes = _levels[level];
            int sibling = index ^ 1;
            if (sibling < nodes.Length)
            {
                var s = nodes[sibling];
                steps.Add(new ProofStep(Convert.ToHexStringLower(s.Hash), s.Debits.ToString(), s.Credits.ToString(), SiblingOnLeft: sibling < index));
            }
            index >>= 1;
        }
        return steps;
    }
}

/// <summary>One step of a proof: the sibling's hash and sums, and on which side it sits.</summary>
public sealed record ProofStep(string Hash, string Debits, string Credits, bool SiblingOnLeft);
