using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json;
using ComputeGrid.Ledger.Audit;

namespace ComputeGrid.Cli.Chain;

/// <summary>
/// <c>computegrid verify --proof FILE --chain RPC --anchor ADDR</c>: reads the root anchored for the proof's op from
/// <c>StateRootAnchor</c> on the chain (a plain <c>eth_call</c>, no key, nothing from the server) and checks the proof
/// against it offline. Exit codes as <c>--proof --root</c>: 0 verified, 1 it does not verify (or nothing is anchored for
/// its op), 2 bad flags or input (or a chain that cannot be read).
/// The call is plain JSON-RPC over HttpClient, not Nethereum: the published binary leaves out Newtonsoft.Json, which
/// Nethereum's RPC client needs (see ComputeGrid.Cli.csproj), and one <c>eth_call</c> needs no client library.
/// </summary>
public static class AnchoredProofVerify
{
    /// <summary>The selector of <c>rootAt(uint64)</c>: the first 4 bytes of its Keccak-256 (the CLI test reads a real anchor through it).</summary>
    public const string RootAtSelector = "eaa38b41";

    /// <summary>Checks <paramref name="file"/> against the root anchored at <paramref name="anchor"/> on <paramref name="rpcUrl"/>.</summary>
    public static async Task<int> RunAsync(FileInfo file, string rpcUrl, string anchor, TextWriter output, TextWriter error)
    {
        if (!Uri.TryCreate(rpcUrl, UriKind.Absolute, out Uri? uri) || uri.Scheme is not ("http" or "https"))
            return CliDefaults.Fail($"--chain '{rpcUrl}' is not an http:// or https:// JSON-RPC address");
        if (anchor.Length != 42 || !anchor.StartsWith("0x", StringComparison.OrdinalIgnoreCase) || !anchor[2..].All(Uri.IsHexDigit))
            return CliDefaults.Fail($"--anchor '{anchor}' is not a contract address (0x and 40 hex digits)");
        if (!file.Exists) return CliDefaults.Fail($"no such proof file: {file.FullName}");
        BalanceProof? proof;
        try { proof = JsonSerializer.Deserialize<BalanceProof>(File.ReadAllText(file.FullName), BalanceProof.Json); }
        catch (JsonException e) { return CliDefaults.Fail($"{file.Name} is not a balance proof: {e.Message.Split(". ")[0]}"); }
        if (proof is null) return CliDefaults.Fail($"{file.Name} is empty");

        string? root;
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            root = await RootAtAsync(rpcUrl, anchor, proof.Op, timeout.Token);
        }
        catch (Exception e) when (e is HttpRequestException or OperationCanceledException or JsonException or InvalidDataException or KeyNotFoundException or InvalidOperationException)
        {
            return CliDefaults.Fail($"cannot read the anchor {anchor} on {rpcUrl}: {e.Message.Split('\n')[0]}");
        }
        if (root is null)
        {
            error.WriteLine($"proof does not verify: no root is anchored for op {proof.Op} at {anchor}");
            return 1;
        }
        var (ok, message) = proof.Verify(root[2..]);
        if (ok)
        {
            output.WriteLine($"{message}; root {root} read from anchor {anchor}");
            return 0;
        }
        error.WriteLine("proof does not verify: " + message);
        return 1;
    }

    // eth_call of rootAt(op) at the latest block; null when the word is zero (nothing anchored at that op).
    private static async Task<string?> RootAtAsync(string rpcUrl, string anchor, ulong op, CancellationToken ct)
    {
        using var http = new HttpClient();
        string data = "0x" + RootAtSelector + op.ToString("x64", CultureInfo.InvariantCulture);
        var request = new { jsonrpc = "2.0", id = 1, method = "eth_call", @params = new object[] { new { to = anchor, data }, "latest" } };
        using HttpResponseMessage response = await http.PostAsJsonAsync(rpcUrl, request, ct);
        response.EnsureSuccessStatusCode();
        using JsonDocument doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync(ct));
        if (doc.RootElement.TryGetProperty("error", out JsonElement error)) throw new InvalidDataException("the chain answered " + error.GetRawText());
        string word = doc.RootElement.GetProperty("result").GetString() ?? "";
        if (word.Length != 66 || !word.StartsWith("0x", StringComparison.Ordinal)) throw new InvalidDataException($"rootAt answered '{word}', not one 32-byte word (is {anchor} a StateRootAnchor?)");
        return word.AsSpan(2).ContainsAnyExcept('0') ? word.ToLowerInvariant() : null;
    }
}
