using System.Buffers.Binary;
using System.Security.Cryptography;
using Microsoft.Win32.SafeHandles;

namespace ComputeGrid.Exchange.Pipeline;

/// <summary>The command journal's fixed sizes and limits, declared once (checked against each other by a test).</summary>
public static class JournalLimits
{
    /// <summary>Bytes of a record header (where the body starts).</summary>
    public const int RecordHeaderBytes = 64;

    /// <summary>Bytes of the length prefix before each command in a record body.</summary>
    public const int CommandPrefixBytes = 4;

    /// <summary>
    /// The largest record the format can hold (header included). A reader accepts any record up to this size, whatever
    /// <see cref="JournalOptions.RecordBytesMax"/> was when it was written, so lowering that option can never turn a
    /// valid record into a "bad header" (a torn tail to truncate, or corruption).
    /// </summary>
    public const int RecordBytesFormatMax = 1 << 30;

    /// <summary>The default for <see cref="JournalOptions.RecordBytesMax"/>: what one append may write.</summary>
    public const int RecordBytesMaxDefault = 16 << 20;

    /// <summary>Bytes of a chain hash (SHA-256).</summary>
    public const int HashBytes = 32;
}

/// <summary>
/// The record format of <see cref="CommandJournal"/> (little-endian):
/// <code>
///  0 u32 magic "CGJR"   4 u32 body bytes   8 u64 first seq (1, 2, …)   16 i64 timestamp (ns)
/// 24 u32 command count (≥ 1)   28 u32 zero   32 [32] SHA-256(previous hash ‖ bytes 0..32 ‖ body)
/// 64 body: per command, u32 length then its bytes
/// </code>
/// Commands of a record have seqs first seq, first seq + 1, …; the next record's first seq is this one's plus its count.
/// The hash is both the record's checksum and a link of the chain: changing any byte of any record changes every later
/// hash. Nothing here writes a file.
/// </summary>
internal static class JournalFormat
{
    /// <summary>"CGJR" little-endian.</summary>
    public const uint RecordMagic = 0x524A4743;

    private static ReadOnlySpan<byte> MagicBytes => [0x43, 0x47, 0x4A, 0x52];

    /// <summary>Bytes read from the file at a time by <see cref="Scan"/> (grown when one record is larger).</summary>
    private const int ScanBufferBytes = 4 << 20;

    /// <summary>Writes a record header (with a zero hash).</summary>
    public static void WriteHeader(Span<byte> header, ulong firstSeq, long timestampNs, int commandCount, int bodyBytes)
    {
        header[..JournalLimits.RecordHeaderBytes].Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(header, RecordMagic);
        BinaryPrimitives.WriteUInt32LittleEndian(header[4..], (uint)bodyBytes);
        BinaryPrimitives.WriteUInt64LittleEndian(header[8..], firstSeq);
        BinaryPrimitives.WriteInt64LittleEndian(header[16..], timestampNs);
        BinaryPrimitives.WriteUInt32LittleEndian(header[24..], (uint)commandCount);
    }

    /// <summary>Computes the record's chain hash and writes it into its header's hash field.</summary>
    public static void Seal(IncrementalHash sha, ReadOnlySpan<byte> previousHash, Span<byte> record)
    {
        Hash(sha, previousHash, record, record.Slice(32, JournalLimits.HashBytes));
    }

    /// <summary>SHA-256(previous hash ‖ record bytes 0..32 ‖ body) into <paramref name="destination"/>.</summary>
    public static void Hash(IncrementalHash sha, ReadOnlySpan<byte> previousHash, ReadOnlySpan<byte> record, Span<byte> destination)
    {
        sha.AppendData(previousHash);
        sha.AppendData(record[..32]);
        sha.AppendData(record[JournalLimits.RecordHeaderBytes..]);
        if (!sha.TryGetHashAndReset(destination, out _)) throw new InvalidOperationException("SHA-256 output did not fit.");
    }

    /// <summary>
    /// Checks a header's magic and sizes (not its seq or hash); gives its body size, first seq and command count, or
    /// why it is not a header.
    /// </summary>
    public static bool TryReadHeader(ReadOnlySpan<byte> header, out int bodyBytes, out ulong firstSeq, out int count, out string? whyNot)
    {
        bodyBytes = 0;
        count = 0;
        firstSeq = BinaryPrimitives.ReadUInt64LittleEndian(header[8..]);
        if (BinaryPrimitives.ReadUInt32LittleEndian(header) != RecordMagic) { whyNot = "bad magic"; return false; }
        uint body = BinaryPrimitives.ReadUInt32LittleEndian(header[4..]);
        uint n = BinaryPrimitives.ReadUInt32LittleEndian(header[24..]);
        if (body > JournalLimits.RecordBytesFormatMax - JournalLimits.RecordHeaderBytes || n == 0
            || (ulong)n * JournalLimits.CommandPrefixBytes > body || BinaryPrimitives.ReadUInt32LittleEndian(header[28..]) != 0
            || firstSeq == 0)
        {
            whyNot = "bad header";
            return false;
        }
        bodyBytes = (int)body;
        count = (int)n;
        whyNot = null;
        return true;
    }

    /// <summary>
    /// Splits a body into its commands (slices of <paramref name="body"/>); false when the length prefixes do not add
    /// up to exactly <paramref name="count"/> commands filling the body.
    /// </summary>
    public static bool TrySplit(ReadOnlyMemory<byte> body, int count, ReadOnlyMemory<byte>[]? commands)
    {
        var span = body.Span;
        int at = 0;
        for (int i = 0; i < count; i++)
        {
            if (span.Length - at < JournalLimits.CommandPrefixBytes) return false;
            uint length = BinaryPrimitives.ReadUInt32LittleEndian(span[at..]);
            at += JournalLimits.CommandPrefixBytes;
            if (length > (uint)(span.Length - at)) return false;
            if (commands is not null) commands[i] = body.Slice(at, (int)length);
            at += (int)length;
        }
        return at == span.Length;
    }

    /// <summary>What <see cref="Scan"/> found.</summary>
    /// <param name="ValidBytes">Where the valid prefix ends (the offset after the last valid record).</param>
    /// <param name="FileBytes">The file's length when it was scanned.</param>
    /// <param name="LastSeq">The seq of the last command of the last valid record (the starting one if none).</param>
    /// <param name="LastHash">The chain hash of the last valid record (the starting hash if none).</param>
    /// <param name="Records">Valid records read.</param>
    /// <param name="StopReason">Why the scan stopped before the end (of the file or of the range), or null.</param>
    public sealed record ScanResult(long ValidBytes, long FileBytes, ulong LastSeq, byte[] LastHash, long Records, string? StopReason);

    /// <summary>
    /// Reads records from <paramref name="from"/> up to <paramref name="endOffset"/> (or the end of the file), checking
    /// magic, sizes, seq continuity and the hash chain, and hands each valid one to <paramref name="onBatch"/> (its
    /// commands are only valid during the call). Stops at the first record that is incomplete or does not check. A record
    /// whose hash checks but whose command lengths do not add up was written that way (no crash explains it): that throws
    /// <see cref="JournalCorruptException"/> at once. Never writes the file.
    /// </summary>
    public static ScanResult Scan(SafeFileHandle handle, string path, JournalPosition from, Action<JournalBatch>? onBatch, long endOffset = long.MaxValue)
    {
        long length = RandomAccess.GetLength(handle);
        long limit = Math.Min(length, endOffset);
        long offset = from.Offset;
        byte[] buffer = new byte[(int)Math.Clamp(limit - offset, JournalLimits.RecordHeaderBytes, ScanBufferBytes)];
        long bufferStart = offset;
        int bufferLength = 0;
        byte[] prev = from.Hash.ToArray();
        ulong lastSeq = from.LastSeq;
        long records = 0;
        string? stop = null;
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        Span<byte> check = stackalloc byte[JournalLimits.HashBytes];

        // Makes [at, at + n) readable from the buffer; false if the range ends past the limit.
        bool Ensure(long at, int n)
        {
            if (at >= bufferStart && at + n <= bufferStart + bufferLength) return true;
            if (at + n > limit) return false;
            if (n > buffer.Length) buffer = new byte[n]; // one record larger than the buffer: rare, and bounded by the format
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
            if (!Ensure(offset, JournalLimits.RecordHeaderBytes)) { stop = "incomplete header"; break; }
            var header = buffer.AsSpan((int)(offset - bufferStart), JournalLimits.RecordHeaderBytes);
            if (!TryReadHeader(header, out int bodyBytes, out ulong firstSeq, out int count, out string? why)) { stop = why; break; }
            if (firstSeq != lastSeq + 1) { stop = $"first seq {firstSeq}, expected {lastSeq + 1}"; break; }
            if (!Ensure(offset, JournalLimits.RecordHeaderBytes + bodyBytes)) { stop = "incomplete body"; break; }
            int at = (int)(offset - bufferStart);
            var record = buffer.AsSpan(at, JournalLimits.RecordHeaderBytes + bodyBytes);
            Hash(sha, prev, record, check);
            if (!check.SequenceEqual(record.Slice(32, JournalLimits.HashBytes))) { stop = "hash mismatch"; break; }
            var body = buffer.AsMemory(at + JournalLimits.RecordHeaderBytes, bodyBytes);
            var commands = onBatch is null ? null : new ReadOnlyMemory<byte>[count];
            if (!TrySplit(body, count, commands))
                throw new JournalCorruptException(path, offset, $"the record's hash checks but its {count} command lengths do not fill its {bodyBytes}-byte body");
            check.CopyTo(prev);
            lastSeq = firstSeq + (ulong)count - 1;
            records++;
            onBatch?.Invoke(new JournalBatch(firstSeq, BinaryPrimitives.ReadInt64LittleEndian(record[16..]), commands!));
            offset += record.Length;
        }
        return new ScanResult(offset, length, lastSeq, prev, records, stop);
    }

    /// <summary>
    /// Looks past a bad record at <paramref name="badOffset"/> for data that a torn write cannot explain: a complete,
    /// plausible record (magic, sane sizes, a first seq at or above <paramref name="expectedSeq"/> and no further above it
    /// than the commands that fit in between: every command takes at least its 4-byte prefix) starting anywhere after
    /// <paramref name="badOffset"/>. Returns its offset and first seq, or null when nothing after the bad record looks like
    /// a record: then the bad record is a torn tail.
    /// </summary>
    public static (long Offset, ulong FirstSeq)? FindRecordAfter(SafeFileHandle handle, long badOffset, ulong expectedSeq)
    {
        long length = RandomAccess.GetLength(handle);
        byte[] block = new byte[(int)Math.Clamp(length - badOffset, JournalLimits.RecordHeaderBytes, ScanBufferBytes)];
        // Blocks overlap by a header, so a header across a block boundary is seen whole in the next block.
        for (long start = badOffset + 1; start + JournalLimits.RecordHeaderBytes <= length; start += block.Length - JournalLimits.RecordHeaderBytes)
        {
            int n = 0;
            while (n < block.Length)
            {
                int read = RandomAccess.Read(handle, block.AsSpan(n), start + n);
                if (read == 0) break;
                n += read;
            }
            var span = block.AsSpan(0, n);
            int from = 0;
            while (true)
            {
                int hit = span[from..].IndexOf(MagicBytes);
                if (hit < 0) break;
                int at = from + hit;
                from = at + 1;
                if (at + JournalLimits.RecordHeaderBytes > n) break; // seen whole in the next block
                long offset = start + at;
                if (!TryReadHeader(span.Slice(at, JournalLimits.RecordHeaderBytes), out int bodyBytes, out ulong firstSeq, out _, out _)) continue;
                ulong seqRoom = (ulong)((offset - badOffset) / JournalLimits.CommandPrefixBytes);
                if (firstSeq < expectedSeq || firstSeq - expectedSeq > seqRoom) continue;
                if (offset + JournalLimits.RecordHeaderBytes + bodyBytes > length) continue;
                return (offset, firstSeq);
            }
            if (start + n >= length) break;
        }
        return null;
    }
}
