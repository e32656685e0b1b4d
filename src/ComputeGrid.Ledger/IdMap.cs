using System.Numerics;
using System.Runtime.CompilerServices;

namespace ComputeGrid.Ledger;

/// <summary>
/// Open-addressing hash map from a 128-bit id to a non-negative int index (linear probing, power-of-two
/// capacity, load factor at most 1/2, backward-shift deletion). Keys and values live in plain arrays of
/// unmanaged data, so the GC never scans them and a lookup touches one or two cache lines.
/// Zero is never a key (the ledger reserves id zero), so a zero key marks an empty slot.
/// </summary>
public sealed class IdMap
{
    private ulong[] _lo;
    private ulong[] _hi;
    private int[] _values;
    private int _shift;
    private int _mask;

    /// <summary>Number of keys stored.</summary>
    public int Count { get; private set; }

    /// <summary>Creates a map that holds <paramref name="capacityHint"/> keys before it grows.</summary>
    public IdMap(int capacityHint = 1024)
    {
        int slots = (int)BitOperations.RoundUpToPowerOf2((uint)Math.Max(16, capacityHint * 2));
        _lo = new ulong[slots];
        _hi = new ulong[slots];
        _values = new int[slots];
        _mask = slots - 1;
        _shift = 64 - BitOperations.Log2((uint)slots);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int Slot(ulong lo, ulong hi)
    {
        ulong h = (lo ^ (hi * 0x9E3779B97F4A7C15UL)) * 0xBF58476D1CE4E5B9UL;
        h ^= h >> 29;
        return (int)((h * 0x94D049BB133111EBUL) >> _shift);
    }

    /// <summary>Finds the index stored for <paramref name="id"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryGet(UInt128 id, out int value)
    {
        ulong lo = (ulong)id, hi = (ulong)(id >> 64);
        int i = Slot(lo, hi);
        ulong[] los = _lo, his = _hi;
        while (true)
        {
            ulong k = los[i];
            ulong kh = his[i];
            if (k == lo && kh == hi && (k | kh) != 0) { value = _values[i]; return true; }
            if ((k | kh) == 0) { value = -1; return false; }
            i = (i + 1) & _mask;
        }
    }

    /// <summary>Adds a key that is not present. Asserts (throws) if the key is zero or already present.</summary>
    public void Add(UInt128 id, int value)
    {
        if (id == UInt128.Zero) throw new ArgumentException("Id zero is reserved.", nameof(id));
        if ((Count + 1) * 2 > _lo.Length) Grow();
        ulong lo = (ulong)id, hi = (ulong)(id >> 64);
        int i = Slot(lo, hi);
        while ((_lo[i] | _hi[i]) != 0)
        {
            if (_lo[i] == lo && _hi[i] == hi) throw new InvalidOperationException("Duplicate id in IdMap.");
            i = (i + 1) & _mask;
        }
        _lo[i] = lo; _hi[i] = hi; _values[i] = value;
        Count++;
    }

    /// <summary>Removes a key (used to undo the inserts of a failed linked chain). Returns false if absent.</summary>
    public bool Remove(UInt128 id)
    {
        ulong lo = (ulong)id, hi = (ulong)(id >> 64);
        int i = Slot(lo, hi);
        while (true)
        {
            if ((_lo[i] | _hi[i]) == 0) return false;
            if (_lo[i] == lo && _hi[i] == hi) break;
            i = (i + 1) & _mask;
        }
        // Backward-shift deletion keeps every probe sequence unbroken without tombstones.
        int hole = i;
        int j = i;
        while (true)
        {
            j = (j + 1) & _mask;
            if ((_lo[j] | _hi[j]) == 0) break;
            int home = Slot(_lo[j], _hi[j]);
            // Move j into the hole if its home is not cyclically within (hole, j].
            bool inRange = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
            if (!inRange)
            {
                _lo[hole] = _lo[j]; _hi[hole] = _hi[j]; _values[hole] = _values[j];
                hole = j;
            }
        }
        _lo[hole] = 0; _hi[hole] = 0; _values[hole] = 0;
        Count--;
        return true;
    }

    private void Grow()
    {
        ulong[] oldLo = _lo, oldHi = _hi;
        int[] oldValues = _values;
        int slots = oldLo.Length * 2;
        _lo = new ulong[slots];
        _hi = new ulong[slots];
        _values = new int[slots];
        _mask = slots - 1;
        _shift = 64 - BitOperations.Log2((uint)slots);
        for (int s = 0; s < oldLo.Length; s++)
        {
            if ((oldLo[s] | oldHi[s]) == 0) continue;
            int i = Slot(oldLo[s], oldHi[s]);
            while ((_lo[i] | _hi[i]) != 0) i = (i + 1) & _mask;
            _lo[i] = oldLo[s]; _hi[i] = oldHi[s]; _values[i] = oldValues[s];
        }
    }
}
