using ComputeGrid.Core;

namespace ComputeGrid.Server.Trust;

/// <summary>A problem with the operator key file that stops the server from starting (one line for the user).</summary>
public sealed class OperatorKeyFileException(string message) : Exception(message);

/// <summary>
/// The first operator's key, in <c>DATA/operator-key.txt</c>: written at the first start (mode 0600 from its creation,
/// fsync-ed), and required at every later one. A missing, empty or malformed file, or one whose key is not in this
/// data folder's trust store, stops the start with one line. The file is written before the store learns the key, so
/// a crash between the two leaves a file the next start adopts rather than a key nobody has.
/// </summary>
public static class OperatorKeyFile
{
    /// <summary>The file's name in the data folder.</summary>
    public const string FileName = "operator-key.txt";

    /// <summary>The name of the first operator.</summary>
    public const string FirstOperatorName = "operator";

    /// <summary>The file's path in a data folder.</summary>
    public static string PathIn(string dataDirectory) => Path.Combine(dataDirectory, FileName);

    /// <summary>
    /// Makes sure the data folder has an operator: at the first start, creates the first one and writes its key to the
    /// file; at later starts, checks the file. Returns true when the first operator was created now.
    /// </summary>
    /// <exception cref="OperatorKeyFileException">The file is missing, empty, malformed or foreign.</exception>
    public static bool Bootstrap(TrustStore store, string dataDirectory)
    {
        string path = PathIn(dataDirectory);
        if (!store.HasOperators)
        {
            string key;
            if (File.Exists(path)) key = Read(path);
            else
            {
                key = ApiKeyFormat.NewKey().Key;
                DurableFile.CreatePrivate(path, key + "\n");
            }
            ApiKeyFormat.TryParse(key, out var keyId, out var secret);
            store.CreateFirstOperator(FirstOperatorName, keyId.ToString(), ApiKeyFormat.HashSecret(secret));
            return true;
        }
        string existing = Read(path);
        ApiKeyFormat.TryParse(existing, out var id, out _);
        if (store.FindKey(id.ToString()) is null)
            throw new OperatorKeyFileException($"{path} holds a key that is not one of this data folder's keys (was it copied from another folder?).");
        return false;
    }

    /// <summary>Reads and checks the key file.</summary>
    /// <exception cref="OperatorKeyFileException">Missing, empty or malformed.</exception>
    public static string Read(string path)
    {
        if (!File.Exists(path))
            throw new OperatorKeyFileException($"{path} is missing: this data folder has operators, so the operator key file must be there (restore it, or start with a new --data-dir).");
        string text;
        try { text = File.ReadAllText(path).Trim(); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw new OperatorKeyFileException($"{path} cannot be read: {e.Message}"); }
        if (text.Length == 0) throw new OperatorKeyFileException($"{path} is empty: it must hold the operator's API key (cg_…).");
        if (!ApiKeyFormat.TryParse(text, out _, out _))
            throw new OperatorKeyFileException($"{path} does not hold an API key: expected one line 'cg_' + 16 hex digits + '_' + 43 base64url characters.");
        return text;
    }
}
