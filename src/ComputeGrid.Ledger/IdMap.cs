using ComputeGrid.Core;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics.X86;

namespace ComputeGrid.Ledger;

/// <summary>Where an <see cref="IdMap"/> finds the id stored at an index (the map keeps only indexes and tags).</summary>
internal abstract class IdSource
{
    public abstract UInt128 IdAt(int index);
}

/// <summary>
/// Open-addressing hash map from a 128-bit id to a non-negative int index, for millions of ids probed at
/// random. Each slot is 8 bytes: the index + 1 (0 = empty) and a 32-bit tag from the id's hash. A probe
/// compares tags and reads the real id (through <see cref="IdSource"/>, i.e. from the record itself) only
/// when a tag matches, so a miss, the common case for a new transfer, touches one cache line of a table
/// 3× smaller than one holding the keys. Linear probing, power-of-two capacity, load factor ≤ 1/2,
/// backward-shift deletion (used only to undo a failed linked chain). The table lives in a
/// <see cref="NativeBlock"/> (huge pages), and <see cref="Prefetch"/> lets a batch loop hide memory latency.
/// </summary>
internal sealed unsafe class IdMap : IDisposable
{
    private struct Slot
    {
        public int ValuePlusOne;
        public uint Tag;
    }

    private readonly IdSource _source;
    private NativeBlock _block;
    private Slot* _slots;
    private int _mask;
    private int _shift;
    // A miss remembers where its probe ended, so the insert that usually follows does not probe again.
    private UInt128 _hintId;
    private int _hintSlot = -1;

    /// <summary>Number of ids stored.</summary>
    public int Count { get; private set; }

    public IdMap(IdSource source, int capacityHint)
    {
        _source = source;
        int slots = (int)BitOperations.RoundUpToPowerOf2((uint)Math.Max(16, capacityHint * 2));
        _block = Allocate(slots, out _slots);
        SetSize(slots);
    }

    private static NativeBlock Allocate(int slots, out Slot* pointer)
    {
        var block = new NativeBlock((nuint)slots * (nuint)sizeof(Slot));
        block.Prefault(block.Bytes); // probes land anywhere: map the whole table now
        pointer = (Slot*)block.Pointer;
        return block;
    }

    private void SetSize(int slots)
    {
        _mask = slots - 1;
        _shift = 64 - BitOperations.Log2((uint)slots);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Hash(UInt128 id)
    {
        ulong h = ((ulong)id ^ ((ulong)(id >> 64) * 0x9E3779B97F4A7C15UL)) * 0xBF58476D1CE4E5B9UL;
        h ^= h >> 31;
        return h * 0x94D049BB133111EBUL;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint TagOf(ulong hash) => (uint)hash | 1u; // never 0, so a zeroed slot never matches

    /// <summary>Asks the CPU to start loading the slot where <paramref name="id"/> would be (x86; no-op elsewhere).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Prefetch(UInt128 id)
    {
        if (Sse.IsSupported) Sse.Prefetch0(_slots + (int)(Hash(id) >> _shift));
    }

    /// <summary>Finds the index stored for <paramref name="id"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryGet(UInt128 id, out int value)
    {
        ulong h = Hash(id);
        uint tag = TagOf(h);
        int i = (int)(h >> _shift);
        while (true)
        {
            Slot s = _slots[i];
            if (s.ValuePlusOne == 0)
            {
                _hintId = id;
                _hintSlot = i;
                value = -1;
                return false;
            }
            if (s.Tag == tag && _source.IdAt(s.ValuePlusOne - 1) == id)
            {
                value = s.ValuePlusOne - 1;
                return true;
            }
            i = (i + 1) & _mask;
        }
    }

    /// <summary>Adds an id that is not present (the caller checked with <see cref="TryGet"/>).</summary>
    public void Add(UInt128 id, int value)
    {
        if (id == UInt128.Zero) throw new ArgumentException("Id zero is reserved.", nameof(id));
        if ((Count + 1) * 2 > _mask + 1) { Grow(); _hintSlot = -1; }
        ulong h = Hash(id);
        int i;
        if (_hintSlot >= 0 && _hintId == id && _slots[_hintSlot].ValuePlusOne == 0)
        {
            i = _hintSlot;
        }
        else
        {
            i = (int)(h >> _shift);
            while (_slots[i].ValuePlusOne != 0)
            {
                if (_source.IdAt(_slots[i].ValuePlusOne - 1) == id) throw new InvalidOperationException("Duplicate id in IdMap.");
                i = (i + 1) & _mask;
            }
        }
        _slots[i].ValuePlusOne = value + 1;
        _slots[i].Tag = TagOf(h);
        _hintSlot = -1;
        Count++;
    }

    /// <summary>Removes an id (undo of a failed linked chain). The id source must still answer for it.</summary>
    public bool Remove(UInt128 id)
    {
        _hintSlot = -1;
        if (!TryGet(id, out int value)) { _hintSlot = -1; return false; }
        ulong h = Hash(id);
        int i = (int)(h >> _shift);
        while (_slots[i].ValuePlusOne != value + 1) i = (i + 1) & _mask;
        // Backward-shift deletion keeps every probe sequence unbroken without tombstones.
        int hole = i, j = i;
        while (true)
        {
            j = (j + 1) & _mask;
            if (_slots[j].ValuePlusOne == 0) break;
            int home = (int)(Hash(_source.IdAt(_slots[j].ValuePlusOne - 1)) >> _shift);
            bool inRange = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
            if (!inRange)
            {
                _slots[hole] = _slots[j];
                hole = j;
            }
        }
        _slots[hole] = default;
        _hintSlot = -1;
        Count--;
        return true;
    }

    private void Grow()
    {
        var oldBlock = _block;
        Slot* old = _slots;
        int oldSlots = _mask + 1;
        _block = Allocate(oldSlots * 2, out _slots);
        SetSize(oldSlots * 2);
        for (int s = 0; s < oldSlots; s++)
        {
            if (old[s].ValuePlusOne == 0) continue;
            int i = (int)(Hash(_source.IdAt(old[s].ValuePlusOne - 1)) >> _shift);
            while (_slots[i].ValuePlusOne != 0) i = (i + 1) & _mask;
            _slots[i] = old[s];
        }
        oldBlock.Dispose();
    }

    public void Dispose() => _block.Dispose();
}
