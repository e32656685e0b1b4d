using System.Text.Json;
using ComputeGrid.Inference.Reports;

namespace ComputeGrid.Cli.Inference;

/// <summary>
/// <c>computegrid verify --node-reports FILE|URL</c>: checks a node's published reports offline (the JSON of
/// <c>GET /api/nodes/{id}/reports</c>, from a file or fetched from an http(s) URL): every report's hash and Ed25519
/// signature against the document's public key, the chain from the node's first report (previous hashes, consecutive
/// epochs), each window one epoch, derived figures recomputed exactly, and the totals equal to the sums. Exit 0 when all
/// verify (one line on stdout), 1 with one line naming the first bad report, 2 on a usage error (no such file, an
/// unreachable URL, not such a document).
/// </summary>
internal static class NodeReportsVerify
{
    /// <summary>The longest wait for a URL's answer.</summary>
    private static readonly TimeSpan FetchTimeout = TimeSpan.FromSeconds(30);

    /// <summary>The largest document read (bytes).</summary>
    private const long DocumentBytesMax = 256L << 20;

    /// <summary>Runs the check; returns the exit code.</summary>
    public static async Task<int> RunAsync(string source, TextWriter output, CancellationToken ct)
    {
        string json;
        if (Uri.TryCreate(source, UriKind.Absolute, out Uri? url) && (url.Scheme == Uri.UriSchemeHttp || url.Scheme == Uri.UriSchemeHttps))
        {
            try
            {
                using var http = new HttpClient { Timeout = FetchTimeout, MaxResponseContentBufferSize = DocumentBytesMax };
                using var response = await http.GetAsync(url, ct);
                if (!response.IsSuccessStatusCode) return CliDefaults.Fail($"{source}: the server answered {(int)response.StatusCode} {response.ReasonPhrase}");
                json = await response.Content.ReadAsStringAsync(ct);
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
            {
                return CliDefaults.Fail($"{source}: {e.Message}");
            }
        }
        else
        {
            if (!File.Exists(source)) return CliDefaults.Fail($"no such file: {Path.GetFullPath(source)}");
            if (new FileInfo(source).Length > DocumentBytesMax) return CliDefaults.Fail($"{source} is larger than {DocumentBytesMax >> 20} MiB");
            json = await File.ReadAllTextAsync(source, ct);
        }
        NodeReportsDocument? document;
        try { document = JsonSerializer.Deserialize<NodeReportsDocument>(json, new JsonSerializerOptions { RespectNullableAnnotations = true }); }
        catch (JsonException e) { return CliDefaults.Fail($"{source} is not a node's reports document: {e.Message.Split(". ")[0]}"); }
        if (document is null) return CliDefaults.Fail($"{source} is empty");

        if (EpochReportChain.Verify(document) is { } bad)
        {
            string which = bad.Index < 0 ? "the document" : $"report {bad.Index} (epoch {document.Reports[bad.Index].Epoch})";
            Console.Error.WriteLine($"node reports do not verify: {which} of node {document.NodeId}: {bad.Failure.CheckName}: {bad.Failure.Reason}");
            return 1;
        }
        NodeReportTotals t = document.Totals;
        string span = document.Reports.Count == 0 ? "no reports" : $"epochs {document.Reports[0].Epoch}-{document.Reports[^1].Epoch}";
        output.WriteLine($"ok: node {document.NodeId}, {t.Reports} reports ({span}) signed and chained; totals {t.Requests} requests, {t.Tokens} tokens, " +
            $"{t.RevenueMicroUsd} micro-USD, {t.EnergyJoules} J; {document.Flagged.Count} flagged submission(s)");
        return 0;
    }
}
