namespace ComputeGrid.Cli;

/// <summary>Defaults and the error convention of the command line.</summary>
internal static class CliDefaults
{
    /// <summary>The default data folder: <c>~/.computegrid</c> (or COMPUTEGRID_DATA when set).</summary>
    public static string DataDirectory =>
        Environment.GetEnvironmentVariable("COMPUTEGRID_DATA") is { Length: > 0 } env
            ? env
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".computegrid");

    /// <summary>Writes one line to stderr and returns exit code 2 (bad input or usage).</summary>
    public static int Fail(string message)
    {
        Console.Error.WriteLine("error: " + message.ReplaceLineEndings(" "));
        return 2;
    }
}
