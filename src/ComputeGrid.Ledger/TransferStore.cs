using System.Runtime.CompilerServices;

namespace ComputeGrid.Ledger;

/// <summary>
/// Append-only storage for transfers in fixed chunks of 65,536, so growth never copies what is stored
/// and no single array passes the large-object limits. Beside each transfer it keeps its pending status
/// and the previous transfer of its debit and credit accounts (the per-account history chains).
/// </summary>
internal sealed class TransferStore
{
    internal const int ChunkShift = 16;
    internal const int ChunkSize = 1 << ChunkShift;
    private const int ChunkMask = ChunkSize - 1;

    private Transfer[][] _transfers = new Transfer[16][];
    private PendingStatus[][] _status = new PendingStatus[16][];
    private int[][] _prevDebit = new int[16][];
    private int[][] _prevCredit = new int[16][];
    private int _chunks;

    public int Count { get; private set; }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ref Transfer At(int index) => ref _transfers[index >> ChunkShift][index & ChunkMask];

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ref PendingStatus StatusAt(int index) => ref _status[index >> ChunkShift][index & ChunkMask];

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ref int PrevDebitAt(int index) => ref _prevDebit[index >> ChunkShift][index & ChunkMask];

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ref int PrevCreditAt(int index) => ref _prevCredit[index >> ChunkShift][index & ChunkMask];

    /// <summary>Appends a transfer and returns its index.</summary>
    public int Append(in Transfer t, PendingStatus status, int prevDebit, int prevCredit)
    {
        int index = Count;
        int chunk = index >> ChunkShift;
        if (chunk == _chunks) AddChunk();
        int o = index & ChunkMask;
        _transfers[chunk][o] = t;
        _status[chunk][o] = status;
        _prevDebit[chunk][o] = prevDebit;
        _prevCredit[chunk][o] = prevCredit;
        Count = index + 1;
        return index;
    }

    /// <summary>Removes the last transfer (undo of a failed linked chain).</summary>
    public void RemoveLast()
    {
        if (Count == 0) throw new InvalidOperationException("TransferStore is empty.");
        Count--;
        int chunk = Count >> ChunkShift, o = Count & ChunkMask;
        _transfers[chunk][o] = default;
        _status[chunk][o] = PendingStatus.None;
        _prevDebit[chunk][o] = 0;
        _prevCredit[chunk][o] = 0;
    }

    /// <summary>The stored transfers of chunk <paramref name="chunk"/> that are in use, for snapshots.</summary>
    public ReadOnlySpan<Transfer> ChunkTransfers(int chunk) => _transfers[chunk].AsSpan(0, UsedIn(chunk));
    public ReadOnlySpan<PendingStatus> ChunkStatus(int chunk) => _status[chunk].AsSpan(0, UsedIn(chunk));
    public ReadOnlySpan<int> ChunkPrevDebit(int chunk) => _prevDebit[chunk].AsSpan(0, UsedIn(chunk));
    public ReadOnlySpan<int> ChunkPrevCredit(int chunk) => _prevCredit[chunk].AsSpan(0, UsedIn(chunk));

    /// <summary>Number of chunks holding at least one transfer.</summary>
    public int UsedChunks => (Count + ChunkSize - 1) >> ChunkShift;

    private int UsedIn(int chunk) => Math.Min(ChunkSize, Count - (chunk << ChunkShift));

    private void AddChunk()
    {
        if (_chunks == _transfers.Length)
        {
            Array.Resize(ref _transfers, _chunks * 2);
            Array.Resize(ref _status, _chunks * 2);
            Array.Resize(ref _prevDebit, _chunks * 2);
            Array.Resize(ref _prevCredit, _chunks * 2);
        }
        _transfers[_chunks] = new Transfer[ChunkSize];
        _status[_chunks] = new PendingStatus[ChunkSize];
        _prevDebit[_chunks] = new int[ChunkSize];
        _prevCredit[_chunks] = new int[ChunkSize];
        _chunks++;
    }
}
