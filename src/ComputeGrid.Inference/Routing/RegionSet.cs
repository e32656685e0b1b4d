using System.Numerics;
using System.Runtime.CompilerServices;

namespace ComputeGrid.Inference.Routing;

/// <summary>
/// A set of region indexes (positions in a <see cref="LatencyMatrix"/>), held as a 64-bit mask so a router tests
/// membership with one shift. Build one with <see cref="Of(ReadOnlySpan{int})"/>, <see cref="With"/> or
/// <see cref="LatencyMatrix.TryCreateRegionSet"/>.
/// </summary>
/// <param name="Mask">Bit <c>i</c> is set when region <c>i</c> is in the set.</param>
public readonly record struct RegionSet(ulong Mask)
{
    /// <summary>The most regions a set can name (indexes 0 … 63).</summary>
    public const int Capacity = 64;

    /// <summary>The empty set.</summary>
    public static RegionSet Empty => default;

    /// <summary>Every region index 0 … 63.</summary>
    public static RegionSet All => new(ulong.MaxValue);

    /// <summary>The number of regions in the set.</summary>
    public int Count => BitOperations.PopCount(Mask);

    /// <summary>True when the set is empty.</summary>
    public bool IsEmpty => Mask == 0;

    /// <summary>True if region <paramref name="index"/> is in the set (false for an index outside 0 … 63).</summary>
    /// <param name="index">A region index.</param>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool Contains(int index) => (uint)index < Capacity && ((Mask >> index) & 1) != 0;

    /// <summary>This set with region <paramref name="index"/> added.</summary>
    /// <param name="index">A region index, 0 … 63.</param>
    /// <exception cref="ArgumentOutOfRangeException">The index is outside 0 … 63.</exception>
    public RegionSet With(int index)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, Capacity);
        return new RegionSet(Mask | (1UL << index));
    }

    /// <summary>The set of the given region indexes.</summary>
    /// <param name="indexes">Region indexes, each 0 … 63.</param>
    /// <exception cref="ArgumentOutOfRangeException">An index is outside 0 … 63.</exception>
    public static RegionSet Of(params ReadOnlySpan<int> indexes)
    {
        var set = Empty;
        foreach (int i in indexes) set = set.With(i);
        return set;
    }

    /// <summary>The region indexes in the set, ascending.</summary>
    public IEnumerable<int> Indexes()
    {
        for (int i = 0; i < Capacity; i++)
            if (((Mask >> i) & 1) != 0) yield return i;
    }
}
