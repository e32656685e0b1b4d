namespace ComputeGrid.Core;

/// <summary>
/// Finds the repository's real data files (<c>data/</c> at the repository root) at run time. Tests, benches and
/// the server run from different output folders (<c>bin/Debug/net10.0</c>, <c>bin/Release/…</c>, a published
/// folder), so rather than copy data next to every assembly, the lookup walks up from the application's base
/// directory to the first <c>data/</c> folder that holds the file.
/// </summary>
public static class DataFiles
{
    /// <summary>The name of the folder the data files live in.</summary>
    public const string FolderName = "data";

    /// <summary>
    /// The full path of <paramref name="fileName"/> in the nearest <c>data/</c> folder at or above
    /// <see cref="AppContext.BaseDirectory"/>.
    /// </summary>
    /// <param name="fileName">A plain file name such as <c>ibm_cloud_vpc_inter_region_rtt_ms.csv</c> (no folders).</param>
    /// <exception cref="ArgumentException">The name is empty or contains a directory part.</exception>
    /// <exception cref="FileNotFoundException">No <c>data/</c> folder above the base directory holds the file.</exception>
    public static string Find(string fileName) => Find(fileName, AppContext.BaseDirectory);

    /// <summary>
    /// The full path of <paramref name="fileName"/> in the nearest <c>data/</c> folder at or above
    /// <paramref name="startDirectory"/>.
    /// </summary>
    /// <param name="fileName">A plain file name (no folders).</param>
    /// <param name="startDirectory">Where the walk up begins.</param>
    /// <exception cref="ArgumentException">The name is empty or contains a directory part.</exception>
    /// <exception cref="FileNotFoundException">No <c>data/</c> folder at or above the start holds the file.</exception>
    public static string Find(string fileName, string startDirectory)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(fileName);
        ArgumentException.ThrowIfNullOrWhiteSpace(startDirectory);
        // Only a bare name: a path like "../x" would let the walk escape the data folder it promises to search.
        if (Path.GetFileName(fileName) != fileName || fileName is "." or "..")
            throw new ArgumentException($"'{fileName}' must be a plain file name, without folders.", nameof(fileName));

        string start = Path.GetFullPath(startDirectory);
        for (DirectoryInfo? dir = new(start); dir is not null; dir = dir.Parent)
        {
            string candidate = Path.Combine(dir.FullName, FolderName, fileName);
            if (File.Exists(candidate)) return candidate;
        }

        throw new FileNotFoundException(
            $"Data file '{fileName}' was not found in a '{FolderName}/' folder at or above '{start}'. "
            + $"It belongs in the repository's '{FolderName}/' folder (copied unchanged from shared/data; see {FolderName}/README.md).",
            fileName);
    }
}
