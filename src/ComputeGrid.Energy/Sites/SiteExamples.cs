using System.Reflection;

namespace ComputeGrid.Energy.Sites;

/// <summary>
/// The example sites of <c>examples/sites/</c>, embedded in this assembly: the reference site that scores the
/// controller (<c>ercot-west-reference</c>) and the CAISO and JEPX sites of the three-market backtest.
/// </summary>
public static class SiteExamples
{
    /// <summary>The reference site's name.</summary>
    public const string Reference = "ercot-west-reference";

    /// <summary>The three-market configuration: ERCOT West, CAISO SP-15, JEPX Tokyo.</summary>
    public static IReadOnlyList<string> ThreeMarkets { get; } = [Reference, "caiso-sp15", "jepx-tokyo"];

    /// <summary>The names of every embedded example.</summary>
    public static IReadOnlyList<string> Names { get; } = typeof(SiteExamples).Assembly.GetManifestResourceNames()
        .Where(n => n.StartsWith("ComputeGrid.Energy.Sites.", StringComparison.Ordinal) && n.EndsWith(".json", StringComparison.Ordinal))
        .Select(n => n["ComputeGrid.Energy.Sites.".Length..^".json".Length])
        .Order(StringComparer.Ordinal)
        .ToArray();

    /// <summary>The JSON text of the example <paramref name="name"/>.</summary>
    /// <exception cref="KeyNotFoundException">No such example.</exception>
    public static string Json(string name)
    {
        Assembly assembly = typeof(SiteExamples).Assembly;
        using Stream? stream = assembly.GetManifestResourceStream($"ComputeGrid.Energy.Sites.{name}.json")
            ?? throw new KeyNotFoundException($"No example site '{name}' (there are: {string.Join(", ", Names)}).");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }

    /// <summary>The example <paramref name="name"/>, parsed and validated.</summary>
    public static SiteConfig Load(string name) => SiteConfigLoader.Parse(Json(name));
}
