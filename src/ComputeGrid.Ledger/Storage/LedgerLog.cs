using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using Microsoft.Win32.SafeHandles;

namespace ComputeGrid.Ledger.Storage;

/// <summary>
/// One record of the ledger log: the input of one batch (its operation, the timestamp the sequencer gave
/// it, and the raw events), so replaying the records through the state machine rebuilds the state.
/// </summary>
/// <param name="Op">The record's op (1, 2, 3, …).</param>
/// <param name="Timestamp">The timestamp the sequencer gave the batch (Unix ns).</param>
/// <param name="Operation">What the batch does.</param>
/// <param name="EventCount">Events in the body.</param>
/// <param name="Body">The raw events (valid only during the scan's callback).</param>
/// <param name="Hash">The record's chain hash.</param>
/// <param name="Offset">Where the record starts in the log file.</param>
public readonly record struct LogRecord(ulong Op, long Timestamp, LedgerOperation Operation, int EventCount, ReadOnlyMemory<byte> Body, byte[] Hash, long Offset)
{
    /// <summary>Where the next record starts.</summary>
    public long End => Offset + LedgerLimits.RecordHeaderBytes + Body.Length;
}

/// <summary>
/// The ledger's append-only log file. Layout of a record (little-endian):
/// <code>
///  0 u32 magic "CGLR"   4 u32 body bytes   8 u64 op (1, 2, 3, …)   16 i64 timestamp (Unix ns)
/// 24 u8 operation  25..27 zero  28 u32 event count   32 [32] SHA-256(previous hash ‖ bytes 0..32 ‖ body)
/// 64 body: event count × event size
/// </code>
/// The hash field is both the record's checksum and a link of the audit hash chain: changing any byte of
/// any record changes every later hash. Recovery truncates only a provably torn tail (a bad record with no plausible
/// record after it, <see cref="FindRecordAfter"/>); a bad record followed by valid ones is corruption
/// (<see cref="LedgerCorruptException"/>).
/// </summary>
public static partial class LedgerLog
{
    /// <summary>"CGLR" little-endian.</summary>
    public const uint RecordMagic = 0x524C4743;

    /// <summary>The hash before the first record: 32 zero bytes.</summary>
    public static byte[] GenesisHash => new byte[32];

    /// <summary>Size of one event of the operation, in bytes.</summary>
    public static int EventSize(LedgerOperation op) => op switch
    {
        LedgerOperation.CreateAccounts => Account.Size,
        LedgerOperation.CreateTransfers => Transfer.Size,
        LedgerOperation.Pulse => 0,
        _ => -1,
    };

    /// <summary>Writes a record header (with a zero hash) into <paramref name="header"/>.</summary>
    public static void WriteHeader(Span<byte> header, ulong op, long timestamp, LedgerOperation operation, int eventCount, int bodyBytes)
    {
        header[..LedgerLimits.RecordHeaderBytes].Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(header, RecordMagic);
        BinaryPrimitives.WriteUInt32LittleEndian(header[4..], (uint)bodyBytes);
        BinaryPrimitives.WriteUInt64LittleEndian(header[8..], op);
        BinaryPrimitives.WriteInt64LittleEndian(header[16..], timestamp);
        header[24] = (byte)operation;
        BinaryPrimitives.WriteUInt32LittleEndian(header[28..], (uint)eventCount);
    }

    /// <summary>
    /// Computes the record's chain hash from the previous hash, the first 32 header bytes and the body, and
    /// writes it into the header's hash field.
    /// </summary>
    public static void Seal(IncrementalHash sha, ReadOnlySpan<byte> previousHash, Span<byte> record)
    {
        sha.AppendData(previousHash);
        sha.AppendData(record[..32]);
        sha.AppendData(record[LedgerLimits.RecordHeaderBytes..]);
        if (!sha.TryGetHashAndReset(record.Slice(32, 32), out _)) throw new InvalidOperationException("SHA-256 output did not fit.");
    }

    /// <summary>What <see cref="Scan"/> found.</summary>
    /// <param name="ValidBytes">Where the valid prefix ends (the offset after the last valid record).</param>
    /// <param name="FileBytes">The file's length when it was scanned.</param>
    /// <param name="LastOp">The op of the last valid record (the starting op if none).</param>
    /// <param name="LastHash">The chain hash of the last valid record (the starting hash if none).</param>
    /// <param name="Records">Valid records read.</param>
    /// <param name="StopReason">Why the scan stopped before the end (of the file or of the range), or null.</param>
    public sealed record ScanResult(long ValidBytes, long FileBytes, ulong LastOp, byte[] LastHash, int Records, string? StopReason);

    /// <summary>Bytes read from the file at a time by <see cref="Scan"/> (holds the largest record several times).</summary>
    private const int ScanBufferBytes = 4 << 20;

    /// <summary>
    /// Reads records from <paramref name="offset"/> up to <paramref name="endOffset"/> (or the end of the file), checking
    /// magic, sizes, op sequence and the hash chain from <paramref name="previousHash"/>, and hands each valid one to
    /// <paramref name="onRecord"/> (its body is only valid during the call). Stops at the first record that is incomplete
    /// or does not check; <see cref="ScanResult.ValidBytes"/> is where the valid prefix ends. Never writes the file.
    /// </summary>
    public static ScanResult Scan(string path, long offset, ulong previousOp, byte[] previousHash, Action<LogRecord>? onRecord, long endOffset = long.MaxValue)
    {
        if (!File.Exists(path)) return new ScanResult(0, 0, previousOp, (byte[])previousHash.Clone(), 0, offset > 0 ? "no log file" : null);
        using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        long length = RandomAccess.GetLength(handle);
        long limit = Math.Min(length, endOffset);
        byte[] buffer = new byte[ScanBufferBytes];
        long bufferStart = offset;
        int bufferLength = 0;
        byte[] prev = (byte[])previousHash.Clone();
        ulong op = previousOp;
        int records = 0;
        string? stop = null;
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        Span<byte> check = stackalloc byte[32];

        // Makes [at, at + n) readable from the buffer; false if the range ends past the limit.
        bool Ensure(long at, int n)
        {
            if (at >= bufferStart && at + n <= bufferStart + bufferLength) return true;
            if (at + n > limit) return false;
            bufferStart = at;
            bufferLength = 0;
            int want = (int)Math.Min(buffer.Length, limit - at);
            while (bufferLength < want)
            {
                int read = RandomAccess.Read(handle, buffer.AsSpan(bufferLength, want - bufferLength), at + bufferLength);
                if (read == 0) break;
                bufferLength += read;
            }
            return bufferLength >= n;
        }

        while (offset < limit)
        {
            if (!Ensure(offset, LedgerLimits.RecordHeaderBytes)) { stop = "incomplete header"; break; }
            var header = buffer.AsSpan((int)(offset - bufferStart), LedgerLimits.RecordHeaderBytes);
            if (!TryReadHeader(header, out int bodyBytes, out ulong recOp, out string? why)) { stop = why; break; }
            if (recOp != op + 1) { stop = $"op {recOp} after {op}"; break; }
            if (!Ensure(offset, LedgerLimits.RecordHeaderBytes + bodyBytes)) { stop = "incomplete body"; break; }
            int at = (int)(offset - bufferStart);
            var record = buffer.AsSpan(at, LedgerLimits.RecordHeaderBytes + bodyBytes);
            sha.AppendData(prev);
            sha.AppendData(record[..32]);
            sha.AppendData(record[LedgerLimits.RecordHeaderBytes..]);
            sha.TryGetHashAndReset(check, out _);
            if (!check.SequenceEqual(record.Slice(32, 32))) { stop = "hash mismatch"; break; }
            prev = check.ToArray();
            op = recOp;
            records++;
            onRecord?.Invoke(new LogRecord(recOp, BinaryPrimitives.ReadInt64LittleEndian(record[16..]), (LedgerOperation)record[24],
                (int)BinaryPrimitives.ReadUInt32LittleEndian(record[28..]), buffer.AsMemory(at + LedgerLimits.RecordHeaderBytes, bodyBytes), prev, offset));
            offset += record.Length;
        }
        return new ScanResult(offset, length, op, prev, records, stop);
    }

    /// <summary>
    /// Checks a record header's magic and sizes (not its op or hash); gives its body size and op, or why it is not one.
    /// </summary>
    public static bool TryReadHeader(ReadOnlySpan<byte> header, out int bodyBytes, out ulong op, out string? whyNot)
    {
        bodyBytes = 0;
        op = BinaryPrimitives.ReadUInt64LittleEndian(header[8..]);
        if (BinaryPrimitives.ReadUInt32LittleEndian(header) != RecordMagic) { whyNot = "bad magic"; return false; }
        uint body = BinaryPrimitives.ReadUInt32LittleEndian(header[4..]);
        uint count = BinaryPrimitives.ReadUInt32LittleEndian(header[28..]);
        int eventSize = EventSize((LedgerOperation)header[24]);
        if (eventSize < 0 || count > LedgerLimits.BatchEventsMax || body != count * (uint)eventSize
            || header[25] != 0 || header[26] != 0 || header[27] != 0) { whyNot = "bad header"; return false; }
        bodyBytes = (int)body;
        whyNot = null;
        return true;
    }

    /// <summary>
    /// Looks past a bad record at <paramref name="badOffset"/> for data that a torn write cannot explain: a complete,
    /// plausible record (magic, sane sizes, an op above <paramref name="lastGoodOp"/> and no further above it than records
    /// could fit in between) starting anywhere after <paramref name="badOffset"/>. Returns its offset and op, or null when
    /// nothing after the bad record looks like a record: then the bad record is a torn tail.
    /// </summary>
    public static (long Offset, ulong Op)? FindRecordAfter(string path, long badOffset, ulong lastGoodOp)
    {
        if (!File.Exists(path)) return null;
        using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        long length = RandomAccess.GetLength(handle);
        byte[] block = new byte[ScanBufferBytes];
        ReadOnlySpan<byte> magic = [0x43, 0x47, 0x4C, 0x52]; // "CGLR"
        // Blocks overlap by a header, so a header across a block boundary is seen whole in the next block.
        for (long start = badOffset + 1; start + LedgerLimits.RecordHeaderBytes <= length; start += block.Length - LedgerLimits.RecordHeaderBytes)
        {
            int n = RandomAccess.Read(handle, block, start);
            var span = block.AsSpan(0, n);
            int from = 0;
            while (true)
            {
                int hit = span[from..].IndexOf(magic);
                if (hit < 0) break;
                int at = from + hit;
                from = at + 1;
                if (at + LedgerLimits.RecordHeaderBytes > n) break; // seen whole in the next block
                long offset = start + at;
                if (!TryReadHeader(span.Slice(at, LedgerLimits.RecordHeaderBytes), out int bodyBytes, out ulong op, out _)) continue;
                ulong opsRoom = (ulong)((offset - badOffset) / LedgerLimits.RecordHeaderBytes) + 1;
                if (op <= lastGoodOp || op - lastGoodOp > opsRoom) continue;
                if (offset + LedgerLimits.RecordHeaderBytes + bodyBytes > length) continue;
                return (offset, op);
            }
            if (start + n >= length) break;
        }
        return null;
    }

    /// <summary>Flushes written data of the file to stable storage (fdatasync on Linux, fsync elsewhere).</summary>
    public static void FlushData(SafeFileHandle handle)
    {
        if (OperatingSystem.IsLinux())
        {
            if (fdatasync((int)handle.DangerousGetHandle()) != 0)
                throw new IOException($"fdatasync failed with errno {Marshal.GetLastPInvokeError()}.");
        }
        else
        {
            RandomAccess.FlushToDisk(handle);
        }
    }

    /// <summary>Makes a rename or create inside <paramref name="directory"/> durable (fsync of the directory).</summary>
    public static void FlushDirectory(string directory)
    {
        if (!OperatingSystem.IsLinux()) return;
        int fd = open(directory, 0 /* O_RDONLY */);
        if (fd < 0) return;
        try { fsync(fd); } finally { close(fd); }
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int fdatasync(int fd);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int fsync(int fd);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int open(string path, int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int close(int fd);
}
