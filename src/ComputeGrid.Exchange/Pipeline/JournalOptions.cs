namespace ComputeGrid.Exchange.Pipeline;

/// <summary>Settings of a <see cref="CommandJournal"/>.</summary>
public sealed record JournalOptions
{
    /// <summary>
    /// The largest record one append may write, header included (at most <see cref="JournalLimits.RecordBytesFormatMax"/>).
    /// It limits writing only: reading accepts any record the format can hold.
    /// </summary>
    public int RecordBytesMax { get; init; } = JournalLimits.RecordBytesMaxDefault;

    /// <summary>
    /// Checks the hash chain of the journal from its first record up to the start position at open (hashing only, no
    /// callbacks), and that it ends exactly at the position's offset, seq and hash: a snapshot can then never be resumed
    /// against a journal it does not belong to. On by default; it costs one read of the prefix.
    /// </summary>
    public bool VerifyPrefix { get; init; } = true;

    /// <summary>
    /// Test-only: asked at each <see cref="JournalFaultPoint"/> of every append; true makes that step fail with an
    /// <see cref="IOException"/> as the disk would. Null (the default) asks nothing.
    /// </summary>
    public Func<JournalFaultPoint, bool>? InjectFault { get; init; }
}

/// <summary>Where an append can be made to fail (test-only; see <see cref="JournalOptions.InjectFault"/>).</summary>
public enum JournalFaultPoint
{
    /// <summary>Before the record is written: the write fails and nothing reaches the file.</summary>
    Write,
    /// <summary>The first half of the record is written, then the write fails (a torn record is left in the file).</summary>
    TornWrite,
    /// <summary>The whole record is written; the fdatasync that would make it durable fails.</summary>
    Flush,
}

/// <summary>
/// Test-only faults for crash tests of a real server process, read from the environment once at start:
/// <c>CG_FAULT</c> = <c>journal-write-error</c>, <c>journal-torn-write</c> or <c>journal-fsync-error</c>, and
/// <c>CG_FAULT_AFTER</c> = N (default 0): the first N appends succeed and the next one fails at that point (then the
/// journal is faulted, and every later append throws without touching the file). Never set them in production.
/// </summary>
public static class JournalFaults
{
    /// <summary>The environment variable naming the fault (shared with other components' test-only faults).</summary>
    public const string Variable = "CG_FAULT";

    /// <summary>The environment variable counting the appends that succeed before the fault.</summary>
    public const string AfterVariable = "CG_FAULT_AFTER";

    /// <summary>The hook <c>CG_FAULT</c> and <c>CG_FAULT_AFTER</c> ask for, or null when <c>CG_FAULT</c> names no journal fault.</summary>
    /// <exception cref="ArgumentException">A <c>journal-…</c> value that is not a journal fault, or a bad count.</exception>
    public static Func<JournalFaultPoint, bool>? FromEnvironment() =>
        Parse(Environment.GetEnvironmentVariable(Variable), Environment.GetEnvironmentVariable(AfterVariable));

    /// <summary>
    /// <see cref="FromEnvironment"/> on given values. A fault value that does not start with <c>journal-</c> belongs to
    /// another component and gives null.
    /// </summary>
    public static Func<JournalFaultPoint, bool>? Parse(string? fault, string? after)
    {
        if (string.IsNullOrEmpty(fault) || !fault.StartsWith("journal-", StringComparison.Ordinal)) return null;
        var point = fault switch
        {
            "journal-write-error" => JournalFaultPoint.Write,
            "journal-torn-write" => JournalFaultPoint.TornWrite,
            "journal-fsync-error" => JournalFaultPoint.Flush,
            _ => throw new ArgumentException($"{Variable}='{fault}' is not a journal fault (journal-write-error, journal-torn-write, journal-fsync-error)."),
        };
        int n = 0;
        if (!string.IsNullOrEmpty(after) && (!int.TryParse(after, out n) || n < 0))
            throw new ArgumentException($"{AfterVariable}='{after}' is not a count of appends (0, 1, 2, …).");
        return AfterAppends(point, n);
    }

    /// <summary>A hook that lets <paramref name="appends"/> appends pass <paramref name="point"/>, then fails every later one there.</summary>
    public static Func<JournalFaultPoint, bool> AfterAppends(JournalFaultPoint point, int appends)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(appends);
        int passed = 0;
        return p =>
        {
            if (p != point) return false;
            if (passed < appends) { passed++; return false; }
            return true;
        };
    }
}

/// <summary>
/// The journal refuses to open: a file is damaged in a way a crash cannot explain (a bad record with a plausible record
/// after it, a snapshot failing its checksum, a snapshot that does not match the journal). Nothing was truncated or
/// rewritten. The message is one line: the file, the byte offset and why.
/// </summary>
public sealed class JournalCorruptException(string file, long offset, string reason, Exception? inner = null)
    : Exception($"journal corrupt: {file} at byte {offset}: {reason.ReplaceLineEndings(" ")}", inner)
{
    /// <summary>The damaged file.</summary>
    public string File { get; } = file;

    /// <summary>Byte offset in <see cref="File"/> where the damage was found (the start of the first bad record).</summary>
    public long Offset { get; } = offset;

    /// <summary>What is wrong, in words.</summary>
    public string Reason { get; } = reason;
}

/// <summary>
/// The journal stopped at its first write or flush error (fail-stop): the append that met it and every later one throw
/// this, and nothing more is written. What the failed append wrote may or may not be in the file after a restart (it was
/// never acknowledged); every append acknowledged before it is.
/// </summary>
public sealed class JournalFaultedException(Exception inner)
    : Exception("The command journal stopped after a storage failure: " + inner.Message, inner);
