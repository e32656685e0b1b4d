using ComputeGrid.Server.Trust;

namespace ComputeGrid.Cli.Ops;

/// <summary>
/// Which server the operator commands talk to and with which key, and where each came from (named in errors, so
/// "cannot reach http://127.0.0.1:41234 (from ~/.computegrid/server-url.txt)" says why that address was tried).
/// The URL: <c>--url</c>, else the address the last <c>serve</c> on the data folder wrote (<see cref="ServerAddressFile"/>),
/// else <c>http://127.0.0.1:5080</c> (serve's default). The key: <c>--key</c>, else <c>$COMPUTEGRID_KEY</c>, else
/// <c>$COMPUTEGRID_API_KEY</c> (what <c>computegrid market</c> reads), else the data folder's operator key file.
/// </summary>
internal sealed record ServerTarget(string Url, string UrlSource, string? Key, string KeySource)
{
    /// <summary>Where <c>computegrid serve</c> listens by default.</summary>
    public const string DefaultUrl = "http://127.0.0.1:5080";

    /// <summary>The environment variable of the caller's API key.</summary>
    public const string KeyVariable = "COMPUTEGRID_KEY";

    /// <summary>Resolves the target from the options given (null: not given) and the data folder.</summary>
    public static ServerTarget Resolve(string? url, string? key, string dataDirectory)
    {
        string urlSource = "--url";
        if (url is null)
        {
            if (ServerAddressFile.Read(dataDirectory) is { } written)
            {
                url = written;
                urlSource = ServerAddressFile.PathIn(dataDirectory);
            }
            else
            {
                url = DefaultUrl;
                urlSource = "serve's default address";
            }
        }
        if (key is { Length: > 0 }) return new(url, urlSource, key.Trim(), "--key");
        foreach (string variable in new[] { KeyVariable, Market.MarketCommand.KeyVariable })
            if (Environment.GetEnvironmentVariable(variable) is { Length: > 0 } fromEnv) return new(url, urlSource, fromEnv.Trim(), "$" + variable);
        string keyFile = OperatorKeyFile.PathIn(dataDirectory);
        if (File.Exists(keyFile))
        {
            try { return new(url, urlSource, File.ReadAllText(keyFile).Trim(), keyFile); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw new OpsException($"cannot read the operator key {keyFile}: {e.Message}"); }
        }
        return new(url, urlSource, null, "none");
    }
}

/// <summary>
/// <c>DATA/server-url.txt</c>: the API address the last <c>serve</c> on a data folder bound (port 0 included), written
/// when it starts and removed when it stops cleanly, so that the operator commands find it without <c>--url</c>. It may
/// be stale (the server was killed); the error then names the file.
/// </summary>
internal static class ServerAddressFile
{
    /// <summary>The file's name in the data folder.</summary>
    public const string FileName = "server-url.txt";

    /// <summary>The file's path in a data folder.</summary>
    public static string PathIn(string dataDirectory) => Path.Combine(dataDirectory, FileName);

    /// <summary>Writes the API address of a started server (as <c>ServerEndpoints.ApiUrl</c> gives it: a wildcard bind as loopback).</summary>
    public static void Write(string dataDirectory, string apiUrl)
    {
        try { ComputeGrid.Core.DurableFile.ReplacePrivate(PathIn(dataDirectory), apiUrl + "\n"); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // A convenience for the CLI, not a fact the server needs: say so and serve on.
            Console.Error.WriteLine($"warning: cannot write {PathIn(dataDirectory)}: {e.Message}");
        }
    }

    /// <summary>
    /// Removes the file when a server stops cleanly, if it still holds that server's address (another <c>serve</c> on the
    /// same folder since then keeps its own). A server killed outright leaves it, stale; the operator commands then name it.
    /// </summary>
    public static void RemoveIfOurs(string dataDirectory, string apiUrl)
    {
        try
        {
            if (Read(dataDirectory) == apiUrl) File.Delete(PathIn(dataDirectory));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
    }

    /// <summary>The address written in the data folder, or null when there is none.</summary>
    public static string? Read(string dataDirectory)
    {
        string path = PathIn(dataDirectory);
        if (!File.Exists(path)) return null;
        try { return File.ReadAllText(path).Trim() is { Length: > 0 } url ? url : null; }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return null; }
    }
}
