using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace ComputeGrid.Ledger;

public sealed partial class LedgerStateMachine
{
    private const uint SnapshotMagic = 0x534C4743; // "CGLS"
    private const int SnapshotVersion = 1;

    /// <summary>The image a background snapshot is being written from, or null (sequencer-owned).</summary>
    private StateImage? _image;

    /// <summary>
    /// Captures a consistent image of the state as it is now, for <see cref="StateImage.WriteTo"/> on another thread
    /// while this one goes on applying batches. Costs O(accounts + chunks): the accounts and their history heads are
    /// copied; transfers are not, since stored transfers never move and never change below the captured count, except
    /// their status, whose value at capture the image keeps when it changes (<see cref="SetStatus"/>). One image at a
    /// time; the state machine must outlive it (not be disposed while it is written).
    /// </summary>
    internal StateImage CaptureImage()
    {
        if (_image is { IsFinished: false }) throw new InvalidOperationException("A state image is already being written.");
        _image = new StateImage(this, copy: true);
        return _image;
    }

    /// <summary>Every status change of a stored transfer goes through here, so a snapshot being written sees the old one.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void SetStatus(int index, PendingStatus status)
    {
        if (_image is not null) KeepForImage(index);
        _transfers.StatusAt(index) = status;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void KeepForImage(int index)
    {
        if (!_image!.Keep(index, _transfers.StatusAt(index))) _image = null;
    }

    /// <summary>
    /// The state at one point, written in <see cref="WriteState"/>'s canonical bytes. A live image (the owner's thread,
    /// nothing changes meanwhile) reads the state directly; a captured one (<see cref="CaptureImage"/>) holds copies of
    /// the accounts and heads, the transfer count and the chunk pointers, and the status at capture of every transfer
    /// below the count whose status changed since. The per-chunk list of kept statuses and the writer's copy of a chunk's
    /// metadata are guarded by one lock; the sequencer takes it only when it changes a status while an image is written.
    /// </summary>
    internal sealed unsafe class StateImage
    {
        private readonly LedgerStateMachine _owner;
        private readonly long _lastTimestamp;
        private readonly Account[] _accounts;
        private readonly int[] _heads;
        private readonly int _accountCount;
        private readonly int _transferCount;
        private readonly nint[] _transferChunks;
        private readonly nint[] _metaChunks;
        private readonly List<(int Offset, PendingStatus Status)>?[]? _kept; // per chunk; null for a live image
        private readonly Lock _gate = new();
        private bool _finished;

        public StateImage(LedgerStateMachine owner, bool copy)
        {
            _owner = owner;
            _lastTimestamp = owner.LastTimestamp;
            _accountCount = owner._accountCount;
            _accounts = copy ? owner._accounts.AsSpan(0, _accountCount).ToArray() : owner._accounts;
            _heads = copy ? owner._accountHead.AsSpan(0, _accountCount).ToArray() : owner._accountHead;
            _transferCount = owner._transfers.Count;
            int chunks = (_transferCount + TransferStore.ChunkSize - 1) >> TransferStore.ChunkShift;
            _transferChunks = new nint[chunks];
            _metaChunks = new nint[chunks];
            for (int c = 0; c < chunks; c++) (_transferChunks[c], _metaChunks[c]) = owner._transfers.ChunkPointers(c);
            if (copy) _kept = new List<(int, PendingStatus)>?[chunks];
        }

        /// <summary>Transfers in the image.</summary>
        public int TransferCount => _transferCount;

        /// <summary>Whether the writer is done with the image (it keeps nothing more).</summary>
        public bool IsFinished
        {
            get { lock (_gate) return _finished; }
        }

        /// <summary>
        /// Keeps the status a transfer had at capture, before the sequencer changes it. The first value kept for an index
        /// is its status at capture (later ones are applied before it, see <see cref="WriteTo"/>). False once the writer
        /// is done: the state machine then stops reporting.
        /// </summary>
        public bool Keep(int index, PendingStatus current)
        {
            if (index >= _transferCount) return true;
            lock (_gate)
            {
                if (_finished) return false;
                (_kept![index >> TransferStore.ChunkShift] ??= new()).Add((index & (TransferStore.ChunkSize - 1), current));
                return true;
            }
        }

        /// <summary>The writer is done (or gave up): the sequencer stops keeping statuses for it.</summary>
        public void Finish()
        {
            lock (_gate) _finished = true;
        }

        /// <summary>Writes the image in <see cref="WriteState"/>'s format (the same state gives the same bytes).</summary>
        public void WriteTo(Stream stream)
        {
            Span<byte> header = stackalloc byte[32];
            header.Clear();
            BinaryPrimitives.WriteUInt32LittleEndian(header, SnapshotMagic);
            BinaryPrimitives.WriteInt32LittleEndian(header[4..], SnapshotVersion);
            BinaryPrimitives.WriteInt64LittleEndian(header[8..], _lastTimestamp);
            BinaryPrimitives.WriteInt32LittleEndian(header[16..], _accountCount);
            BinaryPrimitives.WriteInt32LittleEndian(header[20..], _transferCount);
            stream.Write(header);
            stream.Write(MemoryMarshal.AsBytes(_accounts.AsSpan(0, _accountCount)));
            stream.Write(MemoryMarshal.AsBytes(_heads.AsSpan(0, _accountCount)));
            if (_transferCount == 0) return;
            var metaCopy = _kept is null ? null : new TransferMeta[TransferStore.ChunkSize];
            var metaBuffer = new byte[TransferStore.ChunkSize * 9];
            for (int c = 0; c < _transferChunks.Length; c++)
            {
                int n = Math.Min(TransferStore.ChunkSize, _transferCount - (c << TransferStore.ChunkShift));
                stream.Write(new ReadOnlySpan<byte>((void*)_transferChunks[c], n * sizeof(Transfer)));
                ReadOnlySpan<TransferMeta> metas;
                if (metaCopy is null) metas = new ReadOnlySpan<TransferMeta>((void*)_metaChunks[c], n);
                else
                {
                    lock (_gate)
                    {
                        new ReadOnlySpan<TransferMeta>((void*)_metaChunks[c], n).CopyTo(metaCopy);
                        // Newest first, so the first value kept for an index (its status at capture) is applied last.
                        if (_kept![c] is { } kept)
                            for (int k = kept.Count - 1; k >= 0; k--) metaCopy[kept[k].Offset].Status = kept[k].Status;
                    }
                    metas = metaCopy.AsSpan(0, n);
                }
                for (int i = 0; i < n; i++)
                {
                    var m = metaBuffer.AsSpan(i * 9, 9);
                    BinaryPrimitives.WriteInt32LittleEndian(m, metas[i].PrevDebit);
                    BinaryPrimitives.WriteInt32LittleEndian(m[4..], metas[i].PrevCredit);
                    m[8] = (byte)metas[i].Status;
                }
                stream.Write(metaBuffer, 0, n * 9);
            }
            GC.KeepAlive(_owner);
        }
    }
}
