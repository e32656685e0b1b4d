using System.Buffers.Binary;
using System.Security.Cryptography;
using ComputeGrid.Core;
using ComputeGrid.Ledger.Storage;
using Microsoft.Win32.SafeHandles;

namespace ComputeGrid.Exchange.Pipeline;

/// <summary>
/// One journal record: a batch of commands, each an opaque payload (the pipeline serializes its typed commands). The
/// commands have seqs <see cref="FirstSeq"/>, <see cref="FirstSeq"/> + 1, …, in order.
/// </summary>
/// <param name="FirstSeq">The seq of the first command (seqs start at 1).</param>
/// <param name="TimestampNs">The timestamp the sequencer gave the batch (ns; the journal does not interpret it).</param>
/// <param name="Commands">The payloads. During a scan they point into the reader's buffer: valid only during the callback.</param>
public readonly record struct JournalBatch(ulong FirstSeq, long TimestampNs, IReadOnlyList<ReadOnlyMemory<byte>> Commands)
{
    /// <summary>The seq of the last command.</summary>
    public ulong LastSeq => FirstSeq + (ulong)Commands.Count - 1;
}

/// <summary>
/// A place in the journal at a record boundary: what a snapshot stores so the scan can resume after it.
/// </summary>
/// <param name="Offset">Where the next record starts (the journal's valid length there).</param>
/// <param name="LastSeq">The seq of the last command before <paramref name="Offset"/> (0 at the start).</param>
/// <param name="Hash">The chain hash of the last record before <paramref name="Offset"/> (32 zero bytes at the start).</param>
public sealed record JournalPosition(long Offset, ulong LastSeq, byte[] Hash)
{
    /// <summary>The start of an empty journal.</summary>
    public static JournalPosition Start => new(0, 0, new byte[JournalLimits.HashBytes]);

    /// <summary>The seq the next command gets.</summary>
    public ulong NextSeq => LastSeq + 1;

    /// <summary>Equal when offset, seq and hash bytes are.</summary>
    public bool Equals(JournalPosition? other) =>
        other is not null && Offset == other.Offset && LastSeq == other.LastSeq && Hash.AsSpan().SequenceEqual(other.Hash);

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(Offset, LastSeq);

    /// <inheritdoc/>
    public override string ToString() => $"byte {Offset}, seq {LastSeq}, hash {Convert.ToHexStringLower(Hash)}";
}

/// <summary>
/// The exchange's durable command journal: an append-only file of records, each one batch of commands, written with
/// one write and made durable with one fdatasync per batch (group commit: many commands share each fsync), each record
/// chained to the one before by SHA-256 (<see cref="JournalFormat"/>). Every command gets a sequence number (its
/// record's first seq + its index) from which the pipeline derives ids, so a replay gives the same ids.
/// <para>Invariants. A batch is acknowledged (its <see cref="Append"/> returns) only once it is on disk. After the first
/// write or flush error the journal is faulted and writes nothing more (fail-stop). Opening truncates only a provably
/// torn tail (a bad record with nothing after it that looks like a record) and refuses anything else with a one-line
/// <see cref="JournalCorruptException"/>, touching nothing.</para>
/// <para>Not thread-safe: one owner (the pipeline's journal stage) stages and appends. One process per file: the file is
/// held with an exclusive lock while open.</para>
/// </summary>
public sealed class CommandJournal : IDisposable
{
    private readonly SafeFileHandle _file;
    private readonly IncrementalHash _sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
    private readonly Func<JournalFaultPoint, bool>? _injectFault;
    private readonly int _recordBytesMax;
    private readonly byte[] _lastHash = new byte[JournalLimits.HashBytes];
    private byte[] _buffer;          // the record being staged: header, then each command's prefix and bytes
    private int _stagedBytes = JournalLimits.RecordHeaderBytes;
    private int _stagedCount;
    private long _end;               // where the next record goes (the journal's valid length)
    private ulong _nextSeq;
    private long _flushes;
    private Exception? _fault;
    private bool _disposed;

    /// <summary>The journal file.</summary>
    public string Path { get; }

    /// <summary>The seq the next appended command gets (the first staged command's seq).</summary>
    public ulong NextSeq => _nextSeq;

    /// <summary>The end of the last durable record: what a snapshot taken now stores.</summary>
    public JournalPosition Position => new(_end, _nextSeq - 1, _lastHash.ToArray());

    /// <summary>Bytes of a torn tail dropped at open (0 when the file ended at a record boundary).</summary>
    public long TruncatedBytes { get; }

    /// <summary>Why the torn tail dropped at open did not check (null when nothing was dropped).</summary>
    public string? TornTailReason { get; }

    /// <summary>Stopwatch ticks the open spent checking the journal before the start position (0 when it started at the front).</summary>
    public long PrefixCheckTicks { get; private init; }

    /// <summary>Records handed to the open's callback.</summary>
    public long RecoveredBatches { get; }

    /// <summary>fdatasyncs of appends since open: exactly one per successful <see cref="Commit"/>.</summary>
    public long Flushes => _flushes;

    /// <summary>True once a write or flush failed: every later append throws <see cref="JournalFaultedException"/>.</summary>
    public bool Faulted => _fault is not null;

    /// <summary>Commands staged for the next <see cref="Commit"/>.</summary>
    public int StagedCount => _stagedCount;

    /// <summary>Bytes of the record staged so far, header included (at most <see cref="JournalOptions.RecordBytesMax"/>).</summary>
    public int StagedBytes => _stagedBytes;

    private CommandJournal(string path, SafeFileHandle file, JournalOptions options, JournalFormat.ScanResult scan, long truncated, string? tornReason)
    {
        Path = path;
        _file = file;
        _injectFault = options.InjectFault;
        _recordBytesMax = options.RecordBytesMax;
        _buffer = new byte[Math.Min(_recordBytesMax, 64 << 10)];
        _end = scan.ValidBytes;
        _nextSeq = scan.LastSeq + 1;
        scan.LastHash.CopyTo(_lastHash, 0);
        TruncatedBytes = truncated;
        TornTailReason = tornReason;
        RecoveredBatches = scan.Records;
    }

    /// <summary>
    /// Opens the journal at <paramref name="path"/>, creating it (and its folder) if missing. Scans from the start, or
    /// from <paramref name="from"/> (a snapshot's position: with <see cref="JournalOptions.VerifyPrefix"/> the chain up to
    /// it is checked first), checking every record (magic, sizes, seq continuity, chain hash) and handing each valid batch
    /// to <paramref name="onBatch"/> in order (its payloads are valid only during the call). A provably torn tail is
    /// truncated and the truncation made durable; any other damage throws and leaves the file as it was.
    /// </summary>
    /// <exception cref="JournalCorruptException">The journal is damaged in a way a crash cannot explain.</exception>
    /// <exception cref="IOException">The file cannot be opened (another process holds it) or read.</exception>
    public static CommandJournal Open(string path, Action<JournalBatch> onBatch, JournalOptions? options = null, JournalPosition? from = null)
    {
        ArgumentNullException.ThrowIfNull(onBatch);
        options ??= new JournalOptions();
        if (options.RecordBytesMax is < JournalLimits.RecordHeaderBytes + JournalLimits.CommandPrefixBytes or > JournalLimits.RecordBytesFormatMax)
            throw new ArgumentOutOfRangeException(nameof(options), $"RecordBytesMax {options.RecordBytesMax} is outside [{JournalLimits.RecordHeaderBytes + JournalLimits.CommandPrefixBytes}, {JournalLimits.RecordBytesFormatMax}].");
        from ??= JournalPosition.Start;
        if (from.Offset < 0 || from.Hash.Length != JournalLimits.HashBytes || (from.Offset == 0) != (from.LastSeq == 0))
            throw new ArgumentException($"Not a journal position: {from}.", nameof(from));
        path = System.IO.Path.GetFullPath(path);
        string folder = System.IO.Path.GetDirectoryName(path)!;
        bool existed = File.Exists(path);
        if (!existed && from.Offset > 0)
            throw new JournalCorruptException(path, 0, $"the journal is missing, but the start position says it reaches byte {from.Offset} (seq {from.LastSeq})");
        Directory.CreateDirectory(folder);
        // FileShare.None takes an exclusive lock: a second writer (another process, or this one twice) cannot open it.
        var file = File.OpenHandle(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        try
        {
            // A new file's name must be durable before its first acknowledged record (fdatasync does not sync the folder).
            if (!existed) DurableFile.SyncDirectory(folder);
            long length = RandomAccess.GetLength(file);
            long opened = System.Diagnostics.Stopwatch.GetTimestamp();
            if (from.Offset > 0)
            {
                if (length < from.Offset)
                    throw new JournalCorruptException(path, length, $"the journal ends at byte {length}, before byte {from.Offset} where the start position (seq {from.LastSeq}) ends");
                if (options.VerifyPrefix) VerifyPrefix(file, path, from);
            }
            long prefixTicks = System.Diagnostics.Stopwatch.GetTimestamp() - opened;
            var scan = JournalFormat.Scan(file, path, from, onBatch);
            long truncated = 0;
            if (scan.StopReason is not null)
            {
                if (JournalFormat.FindRecordAfter(file, scan.ValidBytes, scan.LastSeq + 1) is { } after)
                    throw new JournalCorruptException(path, scan.ValidBytes,
                        $"{scan.StopReason}, and a record (first seq {after.FirstSeq}) follows at byte {after.Offset}: not a torn tail");
                // Provably torn: nothing after the bad record looks like a record. A crash interrupted the last write,
                // whose append was never acknowledged.
                truncated = scan.FileBytes - scan.ValidBytes;
                RandomAccess.SetLength(file, scan.ValidBytes);
                RandomAccess.FlushToDisk(file);
            }
            return new CommandJournal(path, file, options, scan, truncated, truncated > 0 ? scan.StopReason : null) { PrefixCheckTicks = prefixTicks };
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Checks that the chain from the first record ends exactly at <paramref name="from"/> (as <see cref="Open"/> does with
    /// <see cref="JournalOptions.VerifyPrefix"/>), for a journal opened without that check. Reads only the bytes before
    /// <paramref name="from"/>, which appends never touch: it may run on another thread while the owner appends (the
    /// handle reads with pread), but not after <see cref="Dispose"/>.
    /// </summary>
    /// <exception cref="JournalCorruptException">The chain breaks before the position or does not end there.</exception>
    public void CheckPrefix(JournalPosition from)
    {
        ArgumentNullException.ThrowIfNull(from);
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (from.Offset > 0) VerifyPrefix(_file, Path, from);
    }

    /// <summary>Checks that the chain from the first record ends exactly at <paramref name="from"/>.</summary>
    private static void VerifyPrefix(SafeFileHandle file, string path, JournalPosition from)
    {
        var p = JournalFormat.Scan(file, path, JournalPosition.Start, null, from.Offset);
        if (p.StopReason is not null)
            throw new JournalCorruptException(path, p.ValidBytes, $"{p.StopReason}, before byte {from.Offset} where the start position (seq {from.LastSeq}) ends");
        if (p.ValidBytes != from.Offset || p.LastSeq != from.LastSeq || !p.LastHash.AsSpan().SequenceEqual(from.Hash))
            throw new JournalCorruptException(path, p.ValidBytes,
                $"a chain break: the start position is seq {from.LastSeq} at byte {from.Offset}, the journal has seq {p.LastSeq} at byte {p.ValidBytes} with another hash");
    }

    /// <summary>
    /// Reads the journal again from its start to its end as it is now, handing each batch to <paramref name="onBatch"/>
    /// (its payloads valid only during the call): a state machine rebuilt without a command that failed part-way.
    /// </summary>
    /// <exception cref="JournalCorruptException">What was written reads back otherwise (the storage changed under it).</exception>
    public void Replay(Action<JournalBatch> onBatch) => Replay(onBatch, JournalPosition.Start);

    /// <summary>
    /// Reads the journal again from <paramref name="from"/> (a position in it, a snapshot's) to its end as it is now, as
    /// <see cref="Replay(Action{JournalBatch})"/> does from its start.
    /// </summary>
    /// <exception cref="JournalCorruptException">What was written reads back otherwise, or the position is not in it.</exception>
    public void Replay(Action<JournalBatch> onBatch, JournalPosition from)
    {
        ArgumentNullException.ThrowIfNull(onBatch);
        ArgumentNullException.ThrowIfNull(from);
        if (from.Offset < 0 || from.Offset > _end || from.Hash.Length != JournalLimits.HashBytes)
            throw new JournalCorruptException(Path, from.Offset, $"replaying from {from}, which is not in the journal (it ends at byte {_end})");
        var scan = JournalFormat.Scan(_file, Path, from, onBatch, _end);
        if (scan.StopReason is not null || scan.ValidBytes != _end)
            throw new JournalCorruptException(Path, scan.ValidBytes, $"reading back the journal: {scan.StopReason ?? "it ends early"}");
    }

    /// <summary>
    /// Stages a command of <paramref name="length"/> bytes for the next <see cref="Commit"/> and returns the span to
    /// write it into (serialize in place: no copy). Its seq will be <see cref="NextSeq"/> + its index among the staged.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">The record would exceed <see cref="JournalOptions.RecordBytesMax"/>; nothing is staged.</exception>
    /// <exception cref="JournalFaultedException">The journal is faulted.</exception>
    public Span<byte> Stage(int length)
    {
        ThrowIfUnusable();
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        long need = (long)_stagedBytes + JournalLimits.CommandPrefixBytes + length;
        if (need > _recordBytesMax)
            throw new ArgumentOutOfRangeException(nameof(length), $"A record of {need} bytes would exceed RecordBytesMax ({_recordBytesMax}): commit first, or raise the limit.");
        if (need > _buffer.Length) Grow((int)need);
        BinaryPrimitives.WriteUInt32LittleEndian(_buffer.AsSpan(_stagedBytes), (uint)length);
        var span = _buffer.AsSpan(_stagedBytes + JournalLimits.CommandPrefixBytes, length);
        _stagedBytes = (int)need;
        _stagedCount++;
        return span;
    }

    /// <summary>Stages a copy of <paramref name="command"/> (see <see cref="Stage(int)"/>).</summary>
    public void Stage(ReadOnlySpan<byte> command) => command.CopyTo(Stage(command.Length));

    /// <summary>Drops the staged commands (nothing was written).</summary>
    public void ClearStaged()
    {
        _stagedBytes = JournalLimits.RecordHeaderBytes;
        _stagedCount = 0;
    }

    /// <summary>
    /// Writes the staged commands as one record (one write) and makes it durable (one fdatasync) before returning; their
    /// seqs are the returned first seq, + 1, …. On any error the journal becomes faulted: this and every later append
    /// throw <see cref="JournalFaultedException"/> and nothing more is written.
    /// </summary>
    /// <returns>The seq of the first command of the record.</returns>
    /// <exception cref="InvalidOperationException">Nothing is staged (a record holds at least one command).</exception>
    /// <exception cref="JournalFaultedException">The write or the flush failed, now or earlier.</exception>
    public ulong Commit(long timestampNs)
    {
        ThrowIfUnusable();
        if (_stagedCount == 0) throw new InvalidOperationException("Nothing is staged: a record holds at least one command.");
        ulong firstSeq = _nextSeq;
        var record = _buffer.AsSpan(0, _stagedBytes);
        JournalFormat.WriteHeader(record, firstSeq, timestampNs, _stagedCount, _stagedBytes - JournalLimits.RecordHeaderBytes);
        JournalFormat.Seal(_sha, _lastHash, record);
        try
        {
            if (_injectFault is { } fault)
            {
                if (fault(JournalFaultPoint.Write)) throw new IOException("Injected journal write error (test-only).");
                if (fault(JournalFaultPoint.TornWrite))
                {
                    RandomAccess.Write(_file, record[..(record.Length / 2)], _end);
                    throw new IOException("Injected torn journal write (test-only).");
                }
            }
            RandomAccess.Write(_file, record, _end);
            if (_injectFault?.Invoke(JournalFaultPoint.Flush) == true) throw new IOException("Injected journal fsync error (test-only).");
            LedgerLog.FlushData(_file);
        }
        catch (Exception e)
        {
            // Fail-stop: after a failed write or fdatasync the file's state is unknown (Linux may even drop the dirty
            // pages and report success next time), so nothing more is written; a restart's recovery sorts it out.
            _fault = e;
            ClearStaged();
            throw new JournalFaultedException(e);
        }
        _flushes++;
        _end += record.Length;
        _nextSeq = firstSeq + (ulong)_stagedCount;
        record.Slice(32, JournalLimits.HashBytes).CopyTo(_lastHash);
        ClearStaged();
        return firstSeq;
    }

    /// <summary>
    /// Appends one batch: stages <paramref name="commands"/> (seqs <see cref="NextSeq"/>, + 1, …) and commits them with one
    /// write and one fdatasync. Allocates nothing in steady state.
    /// </summary>
    /// <returns>The seq of the batch's first command.</returns>
    /// <exception cref="ArgumentException">No commands, or the batch exceeds <see cref="JournalOptions.RecordBytesMax"/>; nothing is written.</exception>
    /// <exception cref="InvalidOperationException">Commands are staged (use <see cref="Commit"/>).</exception>
    /// <exception cref="JournalFaultedException">The write or the flush failed, now or earlier.</exception>
    public ulong Append(long timestampNs, ReadOnlySpan<ReadOnlyMemory<byte>> commands)
    {
        ThrowIfUnusable();
        if (_stagedCount != 0) throw new InvalidOperationException($"{_stagedCount} commands are staged: commit or clear them before an append.");
        if (commands.IsEmpty) throw new ArgumentException("A batch holds at least one command.", nameof(commands));
        long bytes = JournalLimits.RecordHeaderBytes;
        foreach (var c in commands) bytes += JournalLimits.CommandPrefixBytes + c.Length;
        if (bytes > _recordBytesMax)
            throw new ArgumentException($"A batch of {commands.Length} commands makes a {bytes}-byte record, over RecordBytesMax ({_recordBytesMax}).", nameof(commands));
        foreach (var c in commands) Stage(c.Span);
        return Commit(timestampNs);
    }

    private void Grow(int need)
    {
        var bigger = new byte[(int)Math.Min(_recordBytesMax, Math.Max(need, 2L * _buffer.Length))];
        _buffer.AsSpan(0, _stagedBytes).CopyTo(bigger);
        _buffer = bigger;
    }

    private void ThrowIfUnusable()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_fault is not null) throw new JournalFaultedException(_fault);
    }

    /// <summary>Closes the file (staged commands are dropped).</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _file.Dispose();
        _sha.Dispose();
    }
}
