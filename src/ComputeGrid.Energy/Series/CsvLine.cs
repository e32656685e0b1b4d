using System.Text;

namespace ComputeGrid.Energy.Series;

/// <summary>
/// Where one field of a CSV line lies: <see cref="Length"/> characters from <see cref="Start"/>, or, for a quoted
/// field with doubled quotes inside, its unescaped text.
/// </summary>
internal readonly record struct CsvField(int Start, int Length, string? Unescaped)
{
    /// <summary>The field's text in <paramref name="line"/> (quotes removed).</summary>
    public ReadOnlySpan<char> In(string line) => Unescaped is null ? line.AsSpan(Start, Length) : Unescaped.AsSpan();
}

/// <summary>
/// Splits one CSV line into fields (RFC 4180 quoting: a field in double quotes may hold commas, and <c>""</c> inside
/// it is one quote). Fields are returned as positions in the line, so reading a row allocates nothing. A quoted
/// field may not span lines; none of the data files needs that.
/// </summary>
internal static class CsvLine
{
    /// <summary>Clears <paramref name="fields"/> and fills it with the fields of <paramref name="line"/>.</summary>
    /// <exception cref="SeriesFormatException">An unterminated quoted field, text after a closing quote, or a quote inside an unquoted field.</exception>
    public static void Split(string line, List<CsvField> fields, string path, int lineNumber)
    {
        fields.Clear();
        int i = 0;
        while (true)
        {
            if (i < line.Length && line[i] == '"')
            {
                i = ReadQuoted(line, i, fields, path, lineNumber);
            }
            else
            {
                int comma = line.IndexOf(',', i);
                int end = comma < 0 ? line.Length : comma;
                int quote = line.IndexOf('"', i, end - i);
                if (quote >= 0)
                    throw new SeriesFormatException(path, lineNumber, $"a quote inside an unquoted field at column {quote + 1}");
                fields.Add(new CsvField(i, end - i, null));
                i = end;
            }

            if (i >= line.Length) return;
            // line[i] is the comma that ends the field just read; a comma at the very end starts one more, empty field.
            i++;
            if (i == line.Length)
            {
                fields.Add(new CsvField(i, 0, null));
                return;
            }
        }
    }

    private static int ReadQuoted(string line, int start, List<CsvField> fields, string path, int lineNumber)
    {
        int i = start + 1;
        StringBuilder? escaped = null; // only needed when the field holds a doubled quote
        int runStart = i;
        while (true)
        {
            int quote = line.IndexOf('"', i);
            if (quote < 0)
                throw new SeriesFormatException(path, lineNumber, $"the quoted field starting at column {start + 1} is not closed");
            if (quote + 1 < line.Length && line[quote + 1] == '"')
            {
                escaped ??= new StringBuilder();
                escaped.Append(line, runStart, quote + 1 - runStart);
                i = runStart = quote + 2;
                continue;
            }
            fields.Add(escaped is null
                ? new CsvField(start + 1, quote - start - 1, null)
                : new CsvField(start + 1, quote - start - 1, escaped.Append(line, runStart, quote - runStart).ToString()));
            int next = quote + 1;
            if (next < line.Length && line[next] != ',')
                throw new SeriesFormatException(path, lineNumber, $"text after the closing quote at column {next + 1}");
            return next;
        }
    }
}
