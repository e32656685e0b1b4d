using ComputeGrid.Core;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace ComputeGrid.Ledger;

/// <summary>What the ledger keeps beside each stored transfer: its pending status and history links.</summary>
[StructLayout(LayoutKind.Sequential, Pack = 4)]
internal struct TransferMeta
{
    /// <summary>The previous transfer of the debit account (its history chain), or -1.</summary>
    public int PrevDebit;
    /// <summary>The previous transfer of the credit account, or -1.</summary>
    public int PrevCredit;
    public PendingStatus Status;
}

/// <summary>
/// Append-only storage for transfers in fixed chunks of 65,536 (8 MiB of transfers plus their
/// <see cref="TransferMeta"/>), in unmanaged huge-page memory: growth never copies what is stored, and
/// the GC never scans or moves it. Appends are sequential writes, so a chunk's pages fault in 2 MiB at a time.
/// </summary>
internal sealed unsafe class TransferStore : IdSource, IDisposable
{
    internal const int ChunkShift = 16;
    internal const int ChunkSize = 1 << ChunkShift;
    private const int ChunkMask = ChunkSize - 1;

    private Transfer*[] _transfers = new Transfer*[16];
    private TransferMeta*[] _meta = new TransferMeta*[16];
    private readonly List<NativeBlock> _blocks = new();
    private int _chunks;

    public int Count { get; private set; }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ref Transfer At(int index) => ref _transfers[index >> ChunkShift][index & ChunkMask];

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ref TransferMeta MetaAt(int index) => ref _meta[index >> ChunkShift][index & ChunkMask];

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ref PendingStatus StatusAt(int index) => ref MetaAt(index).Status;

    public override UInt128 IdAt(int index) => At(index).Id;

    /// <summary>Appends a transfer and returns its index.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int Append(in Transfer t, PendingStatus status, int prevDebit, int prevCredit)
    {
        int index = Count;
        int chunk = index >> ChunkShift;
        if (chunk == _chunks) AddChunk();
        int o = index & ChunkMask;
        _transfers[chunk][o] = t;
        ref TransferMeta m = ref _meta[chunk][o];
        m.PrevDebit = prevDebit;
        m.PrevCredit = prevCredit;
        m.Status = status;
        Count = index + 1;
        return index;
    }

    /// <summary>Allocates (and maps) room for <paramref name="capacity"/> transfers now, so appends up to it never fault.</summary>
    public void Reserve(int capacity)
    {
        while ((long)_chunks * ChunkSize < capacity) AddChunk();
        for (int c = 0; c < _chunks; c++)
        {
            nuint n = (nuint)Math.Clamp(capacity - (long)c * ChunkSize, 0, ChunkSize);
            _blocks[2 * c].Prefault(n * (nuint)sizeof(Transfer));
            _blocks[2 * c + 1].Prefault(n * (nuint)sizeof(TransferMeta));
        }
    }

    /// <summary>Removes the last transfer (undo of a failed linked chain).</summary>
    public void RemoveLast()
    {
        if (Count == 0) throw new InvalidOperationException("TransferStore is empty.");
        Count--;
        At(Count) = default;
        MetaAt(Count) = default;
    }

    /// <summary>The used transfers of one chunk, for snapshots.</summary>
    public ReadOnlySpan<Transfer> ChunkTransfers(int chunk) => new(_transfers[chunk], UsedIn(chunk));

    /// <summary>The used metadata of one chunk, for snapshots.</summary>
    public ReadOnlySpan<TransferMeta> ChunkMeta(int chunk) => new(_meta[chunk], UsedIn(chunk));

    /// <summary>
    /// The memory of chunk <paramref name="chunk"/>'s transfers and metadata. Chunks never move or shrink while the
    /// store lives, so a snapshot writer may read the part below a captured count on another thread (see
    /// <c>LedgerStateMachine.StateImage</c>): nothing below <see cref="Count"/> is rewritten except statuses, which the state machine
    /// reports to the image before changing them, and the last transfer of a failed chain, which lies above any capture.
    /// </summary>
    public (nint Transfers, nint Meta) ChunkPointers(int chunk) => ((nint)_transfers[chunk], (nint)_meta[chunk]);

    /// <summary>Number of chunks holding at least one transfer.</summary>
    public int UsedChunks => (Count + ChunkSize - 1) >> ChunkShift;

    private int UsedIn(int chunk) => Math.Min(ChunkSize, Count - (chunk << ChunkShift));

    private void AddChunk()
    {
        if (_chunks == _transfers.Length)
        {
            var transfers = new Transfer*[_chunks * 2];
            var meta = new TransferMeta*[_chunks * 2];
            for (int c = 0; c < _chunks; c++) { transfers[c] = _transfers[c]; meta[c] = _meta[c]; }
            _transfers = transfers;
            _meta = meta;
        }
        var t = new NativeBlock((nuint)ChunkSize * (nuint)sizeof(Transfer));
        var m = new NativeBlock((nuint)ChunkSize * (nuint)sizeof(TransferMeta));
        _blocks.Add(t);
        _blocks.Add(m);
        _transfers[_chunks] = (Transfer*)t.Pointer;
        _meta[_chunks] = (TransferMeta*)m.Pointer;
        _chunks++;
    }

    public void Dispose()
    {
        foreach (var b in _blocks) b.Dispose();
        _blocks.Clear();
        _chunks = 0;
        Count = 0;
    }
}
