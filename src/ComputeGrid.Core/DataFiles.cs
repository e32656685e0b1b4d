namespace ComputeGrid.Core;

/// <summary>
/// Finds the project's real data files at run time. Tests, benches and the server run from different output folders
/// (<c>bin/Debug/net10.0</c>, <c>bin/Release/…</c>), so rather than copy data next to every assembly, the lookup walks
/// up from the application's base directory to the first <c>data/</c> folder that holds the file: the repository's
/// <c>data/</c> for a build inside the repository, the <c>data/</c> that <c>dotnet publish</c> puts beside a published
/// binary. A data root set explicitly (<see cref="UseRoot"/>, which the CLI's <c>--data-root</c> calls, or the
/// <c>COMPUTEGRID_DATA_ROOT</c> environment variable) replaces the walk: the files are looked up in that folder only.
/// </summary>
public static class DataFiles
{
    /// <summary>The name of the folder the data files live in.</summary>
    public const string FolderName = "data";

    /// <summary>The environment variable that names a data root (a folder holding the data files themselves).</summary>
    public const string RootVariable = "COMPUTEGRID_DATA_ROOT";

    private static volatile string? s_root;

    /// <summary>
    /// The data root set explicitly, as a full path: the one given to <see cref="UseRoot"/>, else
    /// <c>COMPUTEGRID_DATA_ROOT</c> when set and not empty, else <see langword="null"/> (the walk up is used).
    /// </summary>
    public static string? Root =>
        s_root ?? (Environment.GetEnvironmentVariable(RootVariable) is { Length: > 0 } env ? Path.GetFullPath(env) : null);

    /// <summary>
    /// Makes <paramref name="directory"/> the data root of this process (it wins over <c>COMPUTEGRID_DATA_ROOT</c>);
    /// <see langword="null"/> goes back to the environment variable or the walk up.
    /// </summary>
    /// <param name="directory">A folder holding the data files themselves (like the repository's <c>data/</c>).</param>
    /// <exception cref="DirectoryNotFoundException">The folder does not exist.</exception>
    public static void UseRoot(string? directory)
    {
        if (directory is null)
        {
            s_root = null;
            return;
        }
        ArgumentException.ThrowIfNullOrWhiteSpace(directory);
        string full = Path.GetFullPath(directory);
        // Checked here rather than at the first lookup: a mistyped root is reported once, before anything runs.
        if (!Directory.Exists(full)) throw new DirectoryNotFoundException($"The data root '{full}' does not exist.");
        s_root = full;
    }

    /// <summary>
    /// The full path of <paramref name="fileName"/>: in the explicit data root (<see cref="Root"/>) when one is set,
    /// otherwise in the nearest <c>data/</c> folder at or above <see cref="AppContext.BaseDirectory"/>.
    /// </summary>
    /// <param name="fileName">A plain file name such as <c>ibm_cloud_vpc_inter_region_rtt_ms.csv</c> (no folders).</param>
    /// <exception cref="ArgumentException">The name is empty or contains a directory part.</exception>
    /// <exception cref="FileNotFoundException">The data root, or every <c>data/</c> folder above the base directory, lacks the file.</exception>
    /// <exception cref="DirectoryNotFoundException">The explicit data root does not exist.</exception>
    public static string Find(string fileName) =>
        Root is { } root ? FindInRoot(fileName, root) : Find(fileName, AppContext.BaseDirectory);

    /// <summary>
    /// The full path of <paramref name="fileName"/> in <paramref name="root"/> itself. Nothing else is searched: a root
    /// given on purpose that lacks a file is a mistake to report, not a reason to read another copy found elsewhere.
    /// </summary>
    /// <param name="fileName">A plain file name (no folders).</param>
    /// <param name="root">The folder holding the data files.</param>
    /// <exception cref="ArgumentException">The name is empty or contains a directory part.</exception>
    /// <exception cref="FileNotFoundException">The root lacks the file.</exception>
    /// <exception cref="DirectoryNotFoundException">The root does not exist.</exception>
    public static string FindInRoot(string fileName, string root)
    {
        CheckName(fileName);
        ArgumentException.ThrowIfNullOrWhiteSpace(root);
        string full = Path.GetFullPath(root);
        if (!Directory.Exists(full)) throw new DirectoryNotFoundException($"The data root '{full}' does not exist.");
        string candidate = Path.Combine(full, fileName);
        if (File.Exists(candidate)) return candidate;
        throw new FileNotFoundException(
            $"Data file '{fileName}' was not found in the data root '{full}' (set by --data-root or {RootVariable}). "
            + $"The files belong there unchanged, as in the repository's '{FolderName}/' folder (see {FolderName}/README.md).",
            fileName);
    }

    /// <summary>
    /// The full path of <paramref name="fileName"/> in the nearest <c>data/</c> folder at or above
    /// <paramref name="startDirectory"/> (the walk only; an explicit data root plays no part).
    /// </summary>
    /// <param name="fileName">A plain file name (no folders).</param>
    /// <param name="startDirectory">Where the walk up begins.</param>
    /// <exception cref="ArgumentException">The name is empty or contains a directory part.</exception>
    /// <exception cref="FileNotFoundException">No <c>data/</c> folder at or above the start holds the file.</exception>
    public static string Find(string fileName, string startDirectory)
    {
        CheckName(fileName);
        ArgumentException.ThrowIfNullOrWhiteSpace(startDirectory);

        string start = Path.GetFullPath(startDirectory);
        for (DirectoryInfo? dir = new(start); dir is not null; dir = dir.Parent)
        {
            string candidate = Path.Combine(dir.FullName, FolderName, fileName);
            if (File.Exists(candidate)) return candidate;
        }

        throw new FileNotFoundException(
            $"Data file '{fileName}' was not found in a '{FolderName}/' folder at or above '{start}'. "
            + $"It belongs in the repository's '{FolderName}/' folder (copied unchanged from shared/data; see {FolderName}/README.md); "
            + $"a published binary carries it in its own '{FolderName}/', and --data-root or {RootVariable} names another folder.",
            fileName);
    }

    private static void CheckName(string fileName)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(fileName);
        // Only a bare name: a path like "../x" would let the lookup escape the data folder it promises to search.
        if (Path.GetFileName(fileName) != fileName || fileName is "." or "..")
            throw new ArgumentException($"'{fileName}' must be a plain file name, without folders.", nameof(fileName));
    }
}
