using System.Buffers.Binary;
using System.Security.Cryptography;

namespace ComputeGrid.Ledger.Storage;

/// <summary>What a snapshot file's header says (its checksums already checked).</summary>
/// <param name="Op">The last log op the snapshot's state includes.</param>
/// <param name="LogOffset">Where the record after op <paramref name="Op"/> starts in the log (the log's length at the snapshot).</param>
/// <param name="ChainHead">The hash chain head at op <paramref name="Op"/>.</param>
/// <param name="StateBytes">Length of the state (<see cref="LedgerStateMachine.WriteState"/>'s bytes).</param>
/// <param name="StateHash">SHA-256 of the state bytes: equal to <see cref="LedgerStateMachine.ComputeStateHash"/> of the state.</param>
/// <param name="StateOffset">Where the state starts in the file.</param>
public sealed record SnapshotHeader(ulong Op, long LogOffset, byte[] ChainHead, long StateBytes, byte[] StateHash, int StateOffset);

/// <summary>
/// The ledger snapshot file. Layout (little-endian), version 2:
/// <code>
///  0 u32 magic "CGSP"  4 u32 version  8 u64 op  16 i64 log offset  24 [32] chain head at op
/// 56 i64 state bytes  64 [32] SHA-256 of the state  96 [32] SHA-256 of bytes 0..96   128 the state
/// </code>
/// Version 1 (read, no longer written) has no header checksum and its state starts at 96. A snapshot is written to a
/// temporary file and renamed into place once complete and fsynced, so a published snapshot is whole: any check that
/// fails is corruption, not a crash.
/// </summary>
public static class SnapshotFile
{
    /// <summary>"CGSP" little-endian.</summary>
    public const uint Magic = 0x50534743;

    /// <summary>The version written.</summary>
    public const uint Version = 2;

    /// <summary>Header bytes of version 2 (where the state starts).</summary>
    public const int HeaderBytes = 128;

    private const int HeaderBytesV1 = 96;

    /// <summary>Fills a version-2 header, its checksum included.</summary>
    public static void WriteHeader(Span<byte> header, ulong op, long logOffset, ReadOnlySpan<byte> chainHead, long stateBytes, ReadOnlySpan<byte> stateHash)
    {
        header[..HeaderBytes].Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(header, Magic);
        BinaryPrimitives.WriteUInt32LittleEndian(header[4..], Version);
        BinaryPrimitives.WriteUInt64LittleEndian(header[8..], op);
        BinaryPrimitives.WriteInt64LittleEndian(header[16..], logOffset);
        chainHead.CopyTo(header[24..]);
        BinaryPrimitives.WriteInt64LittleEndian(header[56..], stateBytes);
        stateHash.CopyTo(header[64..]);
        SHA256.HashData(header[..96], header[96..128]);
    }

    /// <summary>
    /// Reads and checks a snapshot's header and the checksum of its whole state (one pass over the file).
    /// </summary>
    /// <exception cref="LedgerCorruptException">Any check fails: the message names the file, the offset and the op.</exception>
    public static SnapshotHeader Read(string path)
    {
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
        Span<byte> header = stackalloc byte[HeaderBytes];
        int got = fs.ReadAtLeast(header, HeaderBytes, throwOnEndOfStream: false);
        if (got < HeaderBytesV1) throw new LedgerCorruptException(path, got, 0, $"the snapshot is {got} bytes, shorter than its header");
        if (BinaryPrimitives.ReadUInt32LittleEndian(header) != Magic) throw new LedgerCorruptException(path, 0, 0, "bad snapshot magic");
        uint version = BinaryPrimitives.ReadUInt32LittleEndian(header[4..]);
        ulong op = BinaryPrimitives.ReadUInt64LittleEndian(header[8..]);
        int stateOffset = version switch
        {
            1 => HeaderBytesV1,
            Version => HeaderBytes,
            _ => throw new LedgerCorruptException(path, 4, op, $"unknown snapshot version {version}"),
        };
        if (version == Version)
        {
            if (got < HeaderBytes) throw new LedgerCorruptException(path, got, op, $"the snapshot is {got} bytes, shorter than its header");
            Span<byte> check = stackalloc byte[32];
            SHA256.HashData(header[..96], check);
            if (!check.SequenceEqual(header[96..128])) throw new LedgerCorruptException(path, 0, op, "the snapshot header fails its checksum");
        }
        long logOffset = BinaryPrimitives.ReadInt64LittleEndian(header[16..]);
        byte[] chainHead = header.Slice(24, 32).ToArray();
        long stateBytes = BinaryPrimitives.ReadInt64LittleEndian(header[56..]);
        byte[] stateHash = header.Slice(64, 32).ToArray();
        if (logOffset < 0 || stateBytes < 0 || fs.Length != stateOffset + stateBytes)
            throw new LedgerCorruptException(path, Math.Min(fs.Length, stateOffset + Math.Max(0, stateBytes)), op,
                $"the snapshot is {fs.Length} bytes, its header says {stateOffset} + {stateBytes}");
        fs.Position = stateOffset;
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[1 << 20];
        int n;
        while ((n = fs.Read(buffer)) > 0) sha.AppendData(buffer, 0, n);
        if (!sha.GetHashAndReset().AsSpan().SequenceEqual(stateHash))
            throw new LedgerCorruptException(path, stateOffset, op, "the snapshot's state fails its checksum");
        return new SnapshotHeader(op, logOffset, chainHead, stateBytes, stateHash, stateOffset);
    }

    /// <summary>Loads the state of a snapshot whose header <see cref="Read"/> checked.</summary>
    /// <exception cref="LedgerCorruptException">The state does not parse or breaks an invariant.</exception>
    public static LedgerStateMachine LoadState(string path, SnapshotHeader header)
    {
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
        fs.Position = header.StateOffset;
        LedgerStateMachine? sm = null;
        try
        {
            sm = LedgerStateMachine.ReadState(fs);
            sm.AssertInvariants();
            return sm;
        }
        catch (Exception e) when (e is InvalidDataException or EndOfStreamException or InvalidOperationException or ArgumentException)
        {
            sm?.Dispose();
            throw new LedgerCorruptException(path, header.StateOffset, header.Op, "the snapshot's state is unusable: " + e.Message, e);
        }
    }
}
