using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using Microsoft.Win32.SafeHandles;

namespace ComputeGrid.Ledger.Storage;

/// <summary>
/// One record of the ledger log: the input of one batch (its operation, the timestamp the sequencer gave
/// it, and the raw events), so replaying the records through the state machine rebuilds the state.
/// </summary>
public readonly record struct LogRecord(ulong Op, long Timestamp, LedgerOperation Operation, int EventCount, ReadOnlyMemory<byte> Body, byte[] Hash);

/// <summary>
/// The ledger's append-only log file. Layout of a record (little-endian):
/// <code>
///  0 u32 magic "CGLR"   4 u32 body bytes   8 u64 op (1, 2, 3, …)   16 i64 timestamp (Unix ns)
/// 24 u8 operation  25..27 zero  28 u32 event count   32 [32] SHA-256(previous hash ‖ bytes 0..32 ‖ body)
/// 64 body: event count × event size
/// </code>
/// The hash field is both the record's checksum and a link of the audit hash chain: changing any byte of
/// any record changes every later hash. Recovery keeps the longest valid prefix and truncates the rest
/// (a torn tail from a crash in the middle of a write).
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
    public sealed record ScanResult(long ValidBytes, long FileBytes, ulong LastOp, byte[] LastHash, int Records, string? StopReason);

    /// <summary>
    /// Reads records from <paramref name="offset"/>, checking magic, sizes, op sequence and the hash chain from
    /// <paramref name="previousHash"/>, and hands each valid one to <paramref name="onRecord"/>. Stops at the
    /// first record that is incomplete or does not check; <see cref="ScanResult.ValidBytes"/> is where the valid
    /// prefix ends.
    /// </summary>
    public static ScanResult Scan(string path, long offset, ulong previousOp, byte[] previousHash, Action<LogRecord>? onRecord)
    {
        using var handle = File.OpenHandle(path, FileMode.OpenOrCreate, FileAccess.Read, FileShare.ReadWrite);
        long length = RandomAccess.GetLength(handle);
        byte[] buffer = new byte[LedgerLimits.RecordHeaderBytes + LedgerLimits.RecordBodyBytesMax];
        byte[] prev = (byte[])previousHash.Clone();
        ulong op = previousOp;
        int records = 0;
        string? stop = null;
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        Span<byte> check = stackalloc byte[32];
        while (true)
        {
            if (offset == length) break;
            if (length - offset < LedgerLimits.RecordHeaderBytes) { stop = "incomplete header"; break; }
            RandomAccess.Read(handle, buffer.AsSpan(0, LedgerLimits.RecordHeaderBytes), offset);
            var header = buffer.AsSpan(0, LedgerLimits.RecordHeaderBytes);
            if (BinaryPrimitives.ReadUInt32LittleEndian(header) != RecordMagic) { stop = "bad magic"; break; }
            uint bodyBytes = BinaryPrimitives.ReadUInt32LittleEndian(header[4..]);
            ulong recOp = BinaryPrimitives.ReadUInt64LittleEndian(header[8..]);
            long timestamp = BinaryPrimitives.ReadInt64LittleEndian(header[16..]);
            var operation = (LedgerOperation)header[24];
            uint count = BinaryPrimitives.ReadUInt32LittleEndian(header[28..]);
            int eventSize = EventSize(operation);
            if (eventSize < 0 || count > LedgerLimits.BatchEventsMax || bodyBytes != count * (uint)eventSize) { stop = "bad header"; break; }
            if (recOp != op + 1) { stop = $"op {recOp} after {op}"; break; }
            if (length - offset - LedgerLimits.RecordHeaderBytes < bodyBytes) { stop = "incomplete body"; break; }
            var record = buffer.AsSpan(0, LedgerLimits.RecordHeaderBytes + (int)bodyBytes);
            RandomAccess.Read(handle, record[LedgerLimits.RecordHeaderBytes..], offset + LedgerLimits.RecordHeaderBytes);
            sha.AppendData(prev);
            sha.AppendData(record[..32]);
            sha.AppendData(record[LedgerLimits.RecordHeaderBytes..]);
            sha.TryGetHashAndReset(check, out _);
            if (!check.SequenceEqual(record.Slice(32, 32))) { stop = "hash mismatch"; break; }
            prev = check.ToArray();
            op = recOp;
            records++;
            onRecord?.Invoke(new LogRecord(recOp, timestamp, operation, (int)count,
                buffer.AsMemory(LedgerLimits.RecordHeaderBytes, (int)bodyBytes), prev));
            offset += record.Length;
        }
        return new ScanResult(offset, length, op, prev, records, stop);
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
