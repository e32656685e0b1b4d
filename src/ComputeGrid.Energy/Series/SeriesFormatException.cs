namespace ComputeGrid.Energy.Series;

/// <summary>
/// A data file could not be read as a series: a malformed row, a missing column, or no rows in the requested
/// period. The message names the file, the line (when there is one) and the reason, e.g.
/// <c>ercot_rt_lmp_hubs_15min_2021.csv, line 1234: 'West LMP' is not a number: 'abc'</c>.
/// </summary>
public sealed class SeriesFormatException : FormatException
{
    /// <summary>Creates the exception for <paramref name="path"/> at <paramref name="lineNumber"/>.</summary>
    /// <param name="path">The file (its name alone goes into the message).</param>
    /// <param name="lineNumber">The 1-based line (the header is line 1), or <see langword="null"/> when the problem is not on one line.</param>
    /// <param name="reason">What is wrong, as a plain sentence fragment.</param>
    public SeriesFormatException(string path, int? lineNumber, string reason)
        : base(Format(path, lineNumber, reason))
    {
        FileName = Path.GetFileName(path);
        LineNumber = lineNumber;
        Reason = reason;
    }

    /// <summary>The file's name, without its folder.</summary>
    public string FileName { get; }

    /// <summary>The 1-based line number (the header is line 1), or <see langword="null"/> for a file-wide problem.</summary>
    public int? LineNumber { get; }

    /// <summary>What is wrong, without the file name and line.</summary>
    public string Reason { get; }

    private static string Format(string path, int? lineNumber, string reason) =>
        lineNumber is int line ? $"{Path.GetFileName(path)}, line {line}: {reason}" : $"{Path.GetFileName(path)}: {reason}";
}
