using ComputeGrid.Core;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics.X86;

namespace ComputeGrid.Exchange.Matching;

/// <summary>
/// Fixed-capacity open-addressing map from a positive long (an order id) to an int (a pool index): linear
/// probing, load factor ≤ 1/2 at capacity, backward-shift deletion, no allocation after construction.
/// Key 0 marks an empty slot, so order ids must be positive.
/// </summary>
internal sealed unsafe class LongIntMap
{
    private struct Entry
    {
        public long Key;
        public int Value;
    }

    private readonly Entry* _entries;
    private readonly NativeBlock _block; // huge pages: probes land anywhere in the table
    private readonly int _mask;
    private readonly int _shift;

    private readonly int _slots;

    public int Count { get; private set; }

    public LongIntMap(int capacity)
    {
        int slots = (int)BitOperations.RoundUpToPowerOf2((uint)Math.Max(16, capacity * 2));
        _block = new NativeBlock((nuint)slots * (nuint)sizeof(Entry));
        _block.Prefault(_block.Bytes);
        _entries = (Entry*)_block.Pointer;
        _slots = slots;
        _mask = slots - 1;
        _shift = 64 - BitOperations.Log2((uint)slots);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int Home(long key) => (int)(((ulong)key * 0x9E3779B97F4A7C15UL) >> _shift);

    /// <summary>Starts loading the slot where <paramref name="key"/> would be (x86; a no-op elsewhere).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Prefetch(long key)
    {
        if (Sse.IsSupported) Sse.Prefetch0(_entries + Home(key));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryGet(long key, out int value)
    {
        int i = Home(key);
        while (true)
        {
            ref Entry e = ref _entries[i];
            if (e.Key == key && key != 0) { value = e.Value; return true; }
            if (e.Key == 0) { value = -1; return false; }
            i = (i + 1) & _mask;
        }
    }

    public void Add(long key, int value)
    {
        if (key <= 0) throw new ArgumentOutOfRangeException(nameof(key), "Keys must be positive.");
        if (Count * 2 >= _slots) throw new InvalidOperationException("LongIntMap is full.");
        int i = Home(key);
        while (_entries[i].Key != 0) i = (i + 1) & _mask;
        _entries[i].Key = key;
        _entries[i].Value = value;
        Count++;
    }

    public bool Remove(long key)
    {
        int i = Home(key);
        while (true)
        {
            if (_entries[i].Key == 0) return false;
            if (_entries[i].Key == key) break;
            i = (i + 1) & _mask;
        }
        int hole = i, j = i;
        while (true)
        {
            j = (j + 1) & _mask;
            if (_entries[j].Key == 0) break;
            int home = Home(_entries[j].Key);
            bool inRange = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
            if (!inRange)
            {
                _entries[hole] = _entries[j];
                hole = j;
            }
        }
        _entries[hole] = default;
        Count--;
        return true;
    }
}
