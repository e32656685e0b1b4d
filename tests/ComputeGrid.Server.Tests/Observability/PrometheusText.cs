using System.Globalization;
using System.Text;

namespace ComputeGrid.Server.Tests.Observability;

/// <summary>One sample line: its metric name, its labels (sorted by name) and its value.</summary>
public sealed record PrometheusSample(string Name, IReadOnlyDictionary<string, string> Labels, double Value)
{
    /// <summary>Whether every pair of <paramref name="labels"/> is among this sample's labels.</summary>
    public bool Has(params (string Name, string Value)[] labels) => labels.All(l => Labels.TryGetValue(l.Name, out string? v) && v == l.Value);
}

/// <summary>A metric family: its name, TYPE, HELP and samples.</summary>
public sealed record PrometheusFamily(string Name, string Type, string? Help, List<PrometheusSample> Samples);

/// <summary>
/// A strict reader of the Prometheus text exposition format (version 0.0.4): <c># HELP</c> and <c># TYPE</c> lines,
/// metric and label names by the format's grammar, quoted label values with their three escapes, float values
/// (<c>+Inf</c>, <c>-Inf</c>, <c>NaN</c>), an optional integer timestamp. Beyond the grammar it checks what a scraper
/// relies on: one TYPE per family, before its samples; every sample in a declared family (a histogram's
/// <c>_bucket</c>, <c>_sum</c>, <c>_count</c>; a counter named <c>…_total</c>); no series twice; histogram buckets
/// cumulative up to <c>le="+Inf"</c>, which equals <c>_count</c>; counters never negative. Any breach throws
/// <see cref="FormatException"/> naming the line.
/// </summary>
public sealed class PrometheusText
{
    private static readonly string[] Types = ["counter", "gauge", "histogram", "summary", "untyped"];

    /// <summary>The families, by name.</summary>
    public IReadOnlyDictionary<string, PrometheusFamily> Families { get; }

    private PrometheusText(Dictionary<string, PrometheusFamily> families) => Families = families;

    /// <summary>The samples named <paramref name="name"/> that carry every label of <paramref name="labels"/>.</summary>
    public IEnumerable<PrometheusSample> Samples(string name, params (string Name, string Value)[] labels) =>
        Families.Values.SelectMany(f => f.Samples).Where(s => s.Name == name && s.Has(labels));

    /// <summary>The sum of <see cref="Samples"/> (0 when none matches).</summary>
    public double Sum(string name, params (string Name, string Value)[] labels) => Samples(name, labels).Sum(s => s.Value);

    /// <summary>The one sample named <paramref name="name"/> with those labels; fails when there is none or more than one.</summary>
    public double Single(string name, params (string Name, string Value)[] labels)
    {
        var found = Samples(name, labels).ToList();
        if (found.Count != 1) throw new InvalidOperationException($"{found.Count} samples of {name} with {string.Join(",", labels)}");
        return found[0].Value;
    }

    /// <summary>Parses a scrape; throws <see cref="FormatException"/> at the first breach.</summary>
    public static PrometheusText Parse(string text)
    {
        if (text.Length > 0 && !text.EndsWith('\n')) throw new FormatException("the exposition does not end with a line feed");
        var families = new Dictionary<string, PrometheusFamily>(StringComparer.Ordinal);
        var help = new Dictionary<string, string>(StringComparer.Ordinal);
        var series = new HashSet<string>(StringComparer.Ordinal);
        string[] lines = text.Split('\n');
        for (int i = 0; i < lines.Length - 1; i++)
        {
            string line = lines[i];
            int number = i + 1;
            try
            {
                if (line.Length == 0) continue;
                if (line.StartsWith('#'))
                {
                    Comment(line, families, help);
                    continue;
                }
                PrometheusSample sample = Sample(line);
                PrometheusFamily family = FamilyOf(sample.Name, families)
                    ?? throw new FormatException($"sample {sample.Name} has no # TYPE line before it");
                string key = sample.Name + "{" + string.Join(",", sample.Labels.Select(l => $"{l.Key}={l.Value}")) + "}";
                if (!series.Add(key)) throw new FormatException($"series {key} appears twice");
                if (family.Type == "counter" && (sample.Value < 0 || double.IsNaN(sample.Value))) throw new FormatException($"counter {sample.Name} is {sample.Value}");
                family.Samples.Add(sample);
            }
            catch (FormatException e)
            {
                throw new FormatException($"line {number}: {e.Message}: {line}", e);
            }
        }
        foreach (PrometheusFamily f in families.Values)
        {
            if (help.TryGetValue(f.Name, out string? h)) families[f.Name] = f with { Help = h };
            if (f.Type == "histogram") CheckHistogram(f);
        }
        return new PrometheusText(families);
    }

    private static void Comment(string line, Dictionary<string, PrometheusFamily> families, Dictionary<string, string> help)
    {
        string[] parts = line.Split(' ', 4);
        if (parts.Length < 3 || parts[0] != "#" || parts[1] is not ("HELP" or "TYPE")) return; // any other comment is allowed
        string name = parts[2];
        if (!IsMetricName(name)) throw new FormatException($"'{name}' is not a metric name");
        if (parts[1] == "TYPE")
        {
            string type = parts.Length == 4 ? parts[3] : throw new FormatException("TYPE without a type");
            if (!Types.Contains(type)) throw new FormatException($"unknown type '{type}'");
            if (families.ContainsKey(name)) throw new FormatException($"second TYPE line for {name}");
            if (type == "counter" && !name.EndsWith("_total", StringComparison.Ordinal)) throw new FormatException($"counter {name} is not named …_total");
            families[name] = new PrometheusFamily(name, type, null, []);
        }
        else
        {
            if (help.ContainsKey(name)) throw new FormatException($"second HELP line for {name}");
            help[name] = Unescape(parts.Length == 4 ? parts[3] : "", inLabel: false);
        }
    }

    private static PrometheusFamily? FamilyOf(string sample, Dictionary<string, PrometheusFamily> families)
    {
        if (families.TryGetValue(sample, out PrometheusFamily? f) && f.Type is "counter" or "gauge" or "untyped") return f;
        foreach (string suffix in (string[])["_bucket", "_sum", "_count"])
            if (sample.EndsWith(suffix, StringComparison.Ordinal) && families.TryGetValue(sample[..^suffix.Length], out f) && f.Type is "histogram" or "summary"
                && (suffix != "_bucket" || f.Type == "histogram"))
                return f;
        return null;
    }

    private static PrometheusSample Sample(string line)
    {
        int i = 0;
        while (i < line.Length && line[i] is not ('{' or ' ')) i++;
        string name = line[..i];
        if (!IsMetricName(name)) throw new FormatException($"'{name}' is not a metric name");
        var labels = new SortedDictionary<string, string>(StringComparer.Ordinal);
        if (i < line.Length && line[i] == '{')
        {
            i++;
            while (true)
            {
                if (i >= line.Length) throw new FormatException("unterminated label set");
                if (line[i] == '}') { i++; break; }
                int start = i;
                while (i < line.Length && line[i] != '=') i++;
                string label = line[start..i];
                if (!IsLabelName(label)) throw new FormatException($"'{label}' is not a label name");
                if (i + 1 >= line.Length || line[i + 1] != '"') throw new FormatException($"label {label} has no quoted value");
                i += 2;
                var value = new StringBuilder();
                while (true)
                {
                    if (i >= line.Length) throw new FormatException($"unterminated value of label {label}");
                    char c = line[i++];
                    if (c == '"') break;
                    if (c != '\\') { value.Append(c); continue; }
                    if (i >= line.Length) throw new FormatException("a backslash ends the line");
                    char e = line[i++];
                    value.Append(e switch { '\\' => '\\', '"' => '"', 'n' => '\n', _ => throw new FormatException($"unknown escape \\{e}") });
                }
                if (!labels.TryAdd(label, value.ToString())) throw new FormatException($"label {label} twice");
                if (i < line.Length && line[i] == ',') i++;
                else if (i >= line.Length || line[i] != '}') throw new FormatException($"expected ',' or '}}' after label {label}");
            }
        }
        if (i >= line.Length || line[i] != ' ') throw new FormatException("no value");
        string[] rest = line[(i + 1)..].Split(' ');
        if (rest.Length is < 1 or > 2) throw new FormatException("expected a value and at most a timestamp");
        double v = rest[0] switch
        {
            "+Inf" => double.PositiveInfinity,
            "-Inf" => double.NegativeInfinity,
            "NaN" => double.NaN,
            _ => double.TryParse(rest[0], NumberStyles.AllowLeadingSign | NumberStyles.AllowDecimalPoint | NumberStyles.AllowExponent, CultureInfo.InvariantCulture, out double d)
                ? d : throw new FormatException($"'{rest[0]}' is not a value"),
        };
        if (rest.Length == 2 && !long.TryParse(rest[1], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out _))
            throw new FormatException($"'{rest[1]}' is not a timestamp");
        return new PrometheusSample(name, labels, v);
    }

    private static void CheckHistogram(PrometheusFamily f)
    {
        // Per series (the labels other than le): buckets non-decreasing in le, ending at +Inf = _count.
        foreach (var group in f.Samples.Where(s => s.Name == f.Name + "_bucket").GroupBy(s => Key(s.Labels.Where(l => l.Key != "le"))))
        {
            var buckets = group.Select(s => (Le: s.Labels.TryGetValue("le", out string? le) ? Bound(le) : throw new FormatException($"{f.Name}: a bucket without le"), s.Value))
                .OrderBy(b => b.Le).ToList();
            for (int k = 1; k < buckets.Count; k++)
                if (buckets[k].Value < buckets[k - 1].Value) throw new FormatException($"{f.Name}{group.Key}: bucket le={buckets[k].Le} below the one before");
            if (buckets.Count == 0 || !double.IsPositiveInfinity(buckets[^1].Le)) throw new FormatException($"{f.Name}{group.Key}: no le=\"+Inf\" bucket");
            var count = f.Samples.SingleOrDefault(s => s.Name == f.Name + "_count" && Key(s.Labels) == group.Key)
                ?? throw new FormatException($"{f.Name}{group.Key}: no _count");
            if (count.Value != buckets[^1].Value) throw new FormatException($"{f.Name}{group.Key}: _count {count.Value} is not the +Inf bucket's {buckets[^1].Value}");
            if (!f.Samples.Any(s => s.Name == f.Name + "_sum" && Key(s.Labels) == group.Key)) throw new FormatException($"{f.Name}{group.Key}: no _sum");
        }
    }

    private static double Bound(string le) => le == "+Inf" ? double.PositiveInfinity
        : double.TryParse(le, NumberStyles.Float, CultureInfo.InvariantCulture, out double d) ? d : throw new FormatException($"le=\"{le}\" is not a number");

    private static string Key(IEnumerable<KeyValuePair<string, string>> labels) => "{" + string.Join(",", labels.Select(l => $"{l.Key}={l.Value}")) + "}";

    private static string Unescape(string text, bool inLabel) => inLabel ? text : text.Replace("\\n", "\n").Replace("\\\\", "\\");

    private static bool IsMetricName(string s) =>
        s.Length > 0 && (char.IsAsciiLetter(s[0]) || s[0] is '_' or ':') && s.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or ':');

    private static bool IsLabelName(string s) =>
        s.Length > 0 && (char.IsAsciiLetter(s[0]) || s[0] == '_') && s.All(c => char.IsAsciiLetterOrDigit(c) || c == '_');
}
