using System.Globalization;
using System.Text;

namespace ComputeGrid.Energy.Series;

/// <summary>
/// A CSV file with a header line, read row by row. Blank lines are skipped; every other row must have as many
/// fields as the header. Fields are read as spans of the current line (no allocation per field). Errors name the
/// file and the 1-based line (the header is line 1).
/// </summary>
internal sealed class CsvFile : IDisposable
{
    private readonly StreamReader _reader;
    private readonly List<CsvField> _fields = new(24);
    private readonly List<string> _header = [];
    private string _line = string.Empty;

    private CsvFile(string path)
    {
        Path = path;
        _reader = new StreamReader(path, Encoding.UTF8, detectEncodingFromByteOrderMarks: true, bufferSize: 1 << 16);
    }

    /// <summary>The file as given to <see cref="Open"/>.</summary>
    public string Path { get; }

    /// <summary>The line number of the row read last (the header is line 1).</summary>
    public int LineNumber { get; private set; }

    /// <summary>Opens <paramref name="path"/> and reads its header.</summary>
    /// <exception cref="SeriesFormatException">The file is empty.</exception>
    public static CsvFile Open(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        var file = new CsvFile(path);
        try
        {
            if (!file.ReadRow(checkWidth: false))
                throw new SeriesFormatException(path, 1, "the file is empty; expected a header line");
            for (int i = 0; i < file._fields.Count; i++) file._header.Add(file.Text(i));
            return file;
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>The index of the column headed exactly <paramref name="name"/>.</summary>
    /// <exception cref="SeriesFormatException">No such column.</exception>
    public int Column(string name)
    {
        int index = _header.IndexOf(name);
        if (index < 0)
            throw new SeriesFormatException(Path, 1,
                $"no column '{name}' (the columns are: {string.Join(", ", _header.Select(h => $"'{h}'"))})");
        return index;
    }

    /// <summary>The name of a column.</summary>
    public string HeaderOf(int column) => _header[column];

    /// <summary>Reads the next non-blank row; false at the end of the file.</summary>
    public bool ReadRow() => ReadRow(checkWidth: true);

    private bool ReadRow(bool checkWidth)
    {
        while (_reader.ReadLine() is { } line)
        {
            LineNumber++;
            if (line.Length == 0) continue;
            _line = line;
            CsvLine.Split(line, _fields, Path, LineNumber);
            if (checkWidth && _fields.Count != _header.Count)
                throw Error($"{_fields.Count} fields, but the header has {_header.Count}");
            return true;
        }
        return false;
    }

    /// <summary>The field of the current row in <paramref name="column"/>, without quotes.</summary>
    public ReadOnlySpan<char> Span(int column) => _fields[column].In(_line);

    /// <summary>The field of the current row in <paramref name="column"/> as a string (allocates; for names and messages).</summary>
    public string Text(int column) => Span(column).ToString();

    /// <summary>The field of the current row in <paramref name="column"/> as a finite number (invariant culture, no thousands separators).</summary>
    /// <exception cref="SeriesFormatException">The field is empty or not a finite number.</exception>
    public double Number(int column)
    {
        ReadOnlySpan<char> text = Span(column);
        if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double value) || !double.IsFinite(value))
            throw Error(text.IsEmpty ? $"'{_header[column]}' is empty" : $"'{_header[column]}' is not a number: '{text}'");
        return value;
    }

    /// <summary>An exception for the current line.</summary>
    public SeriesFormatException Error(string reason) => new(Path, LineNumber, reason);

    /// <inheritdoc />
    public void Dispose() => _reader.Dispose();
}
