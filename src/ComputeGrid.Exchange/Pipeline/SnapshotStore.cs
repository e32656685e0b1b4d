using System.Buffers.Binary;
using System.Globalization;
using System.Security.Cryptography;
using ComputeGrid.Core;

namespace ComputeGrid.Exchange.Pipeline;

/// <summary>A snapshot read back: the state machine's bytes after command <see cref="LastSeq"/>.</summary>
/// <param name="LastSeq">The last command the state includes.</param>
/// <param name="Position">The journal position right after that command's record: resume the scan there.</param>
/// <param name="State">The state machine's bytes, as written.</param>
/// <param name="File">The snapshot file it was read from.</param>
public sealed record JournalSnapshot(ulong LastSeq, JournalPosition Position, byte[] State, string File);

/// <summary>
/// Snapshots of the state machine beside the command journal, one file each (<c>snapshot-{last seq, 20 digits}.cgsnap</c>).
/// Layout (little-endian):
/// <code>
///  0 u32 magic "CGJS"  4 u32 version 1  8 u64 last seq  16 i64 journal offset  24 [32] journal chain hash at last seq
/// 56 i64 state bytes  64 [32] SHA-256 of the state  96 [32] SHA-256 of bytes 0..96   128 the state
/// </code>
/// A snapshot is written to a temporary file, fsynced, renamed into place and its folder fsynced, so a published snapshot
/// is whole: any check that fails on one is damage, not a crash, and <see cref="Latest"/> refuses it (it does not fall
/// back silently to an older one, which would hide the damage). The newest two are kept: a crash while writing one never
/// touches the published ones, and after damage an operator can move the newest aside to start from the one before (the
/// journal still holds every record after it).
/// </summary>
public static class SnapshotStore
{
    /// <summary>"CGJS" little-endian.</summary>
    public const uint Magic = 0x534A4743;

    /// <summary>The version written.</summary>
    public const uint Version = 1;

    /// <summary>Header bytes (where the state starts).</summary>
    public const int HeaderBytes = 128;

    /// <summary>Snapshots kept in a folder after a write (the newest ones).</summary>
    public const int SnapshotsKept = 2;

    private const string Prefix = "snapshot-";
    private const string Suffix = ".cgsnap";
    private const string TempSuffix = ".tmp";

    /// <summary>The file name of the snapshot at <paramref name="lastSeq"/>.</summary>
    public static string FileName(ulong lastSeq) => Prefix + lastSeq.ToString("D20", CultureInfo.InvariantCulture) + Suffix;

    /// <summary>
    /// Writes the snapshot of <paramref name="state"/> after command <paramref name="lastSeq"/>, valid for the journal at
    /// <paramref name="position"/> (whose last seq it must be), atomically and durably; then deletes all but the newest
    /// <see cref="SnapshotsKept"/> snapshots and any temporary file a crash left. Returns the snapshot's path.
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="lastSeq"/> is not the position's last seq.</exception>
    /// <exception cref="IOException">The disk refused; the published snapshots are untouched.</exception>
    public static string Write(string folder, ulong lastSeq, JournalPosition position, ReadOnlySpan<byte> state)
    {
        ArgumentNullException.ThrowIfNull(position);
        if (lastSeq != position.LastSeq)
            throw new ArgumentException($"The snapshot's last seq {lastSeq} is not its journal position's ({position}).", nameof(lastSeq));
        if (position.Hash.Length != JournalLimits.HashBytes) throw new ArgumentException("Not a journal position.", nameof(position));
        Directory.CreateDirectory(folder);
        string path = Path.Combine(folder, FileName(lastSeq));
        string temp = path + TempSuffix;
        Span<byte> header = stackalloc byte[HeaderBytes];
        header.Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(header, Magic);
        BinaryPrimitives.WriteUInt32LittleEndian(header[4..], Version);
        BinaryPrimitives.WriteUInt64LittleEndian(header[8..], lastSeq);
        BinaryPrimitives.WriteInt64LittleEndian(header[16..], position.Offset);
        position.Hash.CopyTo(header[24..]);
        BinaryPrimitives.WriteInt64LittleEndian(header[56..], state.Length);
        SHA256.HashData(state, header.Slice(64, 32));
        SHA256.HashData(header[..96], header[96..128]);
        try
        {
            using (var fs = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16))
            {
                fs.Write(header);
                fs.Write(state);
                fs.Flush(flushToDisk: true);
            }
            File.Move(temp, path, overwrite: true);
            DurableFile.SyncDirectory(folder);
        }
        catch
        {
            try { File.Delete(temp); } catch (Exception d) when (d is IOException or UnauthorizedAccessException) { }
            throw;
        }
        foreach (var old in List(folder).Skip(SnapshotsKept)) File.Delete(old.Path);
        foreach (var t in Directory.EnumerateFiles(folder, Prefix + "*" + Suffix + TempSuffix)) File.Delete(t);
        return path;
    }

    /// <summary>
    /// Reads and checks the newest snapshot in <paramref name="folder"/> (header checksum, state checksum, sizes, and the
    /// seq in its name), or null when there is none. Never writes.
    /// </summary>
    /// <exception cref="JournalCorruptException">The newest snapshot is damaged (one line: file, offset, why).</exception>
    public static JournalSnapshot? Latest(string folder)
    {
        if (!Directory.Exists(folder)) return null;
        var newest = List(folder).FirstOrDefault();
        return newest.Path is null ? null : Read(newest.Path, newest.LastSeq);
    }

    /// <summary>The snapshot files of <paramref name="folder"/>, newest first (by the seq in their names), not read yet.</summary>
    public static IReadOnlyList<string> Files(string folder) => Directory.Exists(folder) ? List(folder).Select(f => f.Path).ToList() : [];

    /// <summary>Reads and checks one snapshot file (see <see cref="Latest"/>), including the seq in its name.</summary>
    /// <exception cref="JournalCorruptException">The snapshot is damaged.</exception>
    public static JournalSnapshot ReadFile(string path)
    {
        string name = Path.GetFileName(path);
        ulong? named = name.Length == Prefix.Length + 20 + Suffix.Length && name.StartsWith(Prefix, StringComparison.Ordinal)
            && ulong.TryParse(name.AsSpan(Prefix.Length, 20), NumberStyles.None, CultureInfo.InvariantCulture, out ulong seq) ? seq : null;
        return Read(path, named);
    }

    /// <summary>Reads and checks one snapshot file (see <see cref="Latest"/>).</summary>
    /// <exception cref="JournalCorruptException">The snapshot is damaged.</exception>
    public static JournalSnapshot Read(string path) => Read(path, null);

    private static JournalSnapshot Read(string path, ulong? seqInName)
    {
        byte[] bytes = File.ReadAllBytes(path);
        string previous = "; move it aside to start from the snapshot before it";
        if (bytes.Length < HeaderBytes) throw new JournalCorruptException(path, bytes.Length, $"the snapshot is {bytes.Length} bytes, shorter than its header{previous}");
        var header = bytes.AsSpan(0, HeaderBytes);
        if (BinaryPrimitives.ReadUInt32LittleEndian(header) != Magic) throw new JournalCorruptException(path, 0, "bad snapshot magic" + previous);
        Span<byte> check = stackalloc byte[32];
        SHA256.HashData(header[..96], check);
        if (!check.SequenceEqual(header[96..128])) throw new JournalCorruptException(path, 96, "the snapshot header fails its checksum" + previous);
        uint version = BinaryPrimitives.ReadUInt32LittleEndian(header[4..]);
        if (version != Version) throw new JournalCorruptException(path, 4, $"unknown snapshot version {version}" + previous);
        ulong lastSeq = BinaryPrimitives.ReadUInt64LittleEndian(header[8..]);
        long offset = BinaryPrimitives.ReadInt64LittleEndian(header[16..]);
        long stateBytes = BinaryPrimitives.ReadInt64LittleEndian(header[56..]);
        if (seqInName is { } named && named != lastSeq)
            throw new JournalCorruptException(path, 8, $"the snapshot says seq {lastSeq}, its name seq {named}" + previous);
        if (offset < 0 || (offset == 0) != (lastSeq == 0))
            throw new JournalCorruptException(path, 16, $"the snapshot's journal position (byte {offset}, seq {lastSeq}) is impossible" + previous);
        if (stateBytes != bytes.Length - HeaderBytes)
            throw new JournalCorruptException(path, Math.Min(bytes.Length, HeaderBytes + Math.Max(0, stateBytes)),
                $"the snapshot is {bytes.Length} bytes, its header says {HeaderBytes} + {stateBytes}" + previous);
        SHA256.HashData(bytes.AsSpan(HeaderBytes), check);
        if (!check.SequenceEqual(header.Slice(64, 32))) throw new JournalCorruptException(path, HeaderBytes, "the snapshot's state fails its checksum" + previous);
        var position = new JournalPosition(offset, lastSeq, header.Slice(24, JournalLimits.HashBytes).ToArray());
        return new JournalSnapshot(lastSeq, position, bytes.AsSpan(HeaderBytes).ToArray(), path);
    }

    /// <summary>The folder's snapshots, newest first (by the seq in their names).</summary>
    private static List<(string Path, ulong LastSeq)> List(string folder)
    {
        var found = new List<(string Path, ulong LastSeq)>();
        foreach (string file in Directory.EnumerateFiles(folder, Prefix + "*" + Suffix))
        {
            string name = Path.GetFileName(file);
            var digits = name.AsSpan(Prefix.Length, name.Length - Prefix.Length - Suffix.Length);
            if (digits.Length == 20 && ulong.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out ulong seq)) found.Add((file, seq));
        }
        found.Sort((a, b) => b.LastSeq.CompareTo(a.LastSeq));
        return found;
    }
}
