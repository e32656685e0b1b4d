using System.Text.Json;
using System.Text.Json.Nodes;
using ComputeGrid.Inference.Nodes;
using ComputeGrid.Inference.Reports;

namespace ComputeGrid.Cli.Tests;

/// <summary>
/// <c>computegrid verify --node-reports FILE|URL</c>: 0 when every signature, link, derived figure and total checks;
/// 1 with one line naming the first bad report; 2 with one line for a usage error (no file, not JSON, no server).
/// </summary>
public sealed class NodeReportsCliTests : IDisposable
{
    private const long EpochSeconds = 3600, FirstEpoch = 493_000;
    private readonly string _dir = Directory.CreateTempSubdirectory("cg-node-reports-cli-").FullName;
    private readonly (byte[] PrivateKey, byte[] PublicKey) _key = NodeSigning.NewKeyPair();

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static Task<(int Code, string Out, string Err)> VerifyAsync(string source) =>
        CliRunner.RunAsync(new Dictionary<string, string?> { ["COMPUTEGRID_API_KEY"] = null }, "verify", "--node-reports", source);

    [Fact]
    public async Task A_signed_chained_document_verifies_with_exit_0()
    {
        var r = await VerifyAsync(Write("good.json", Document()));
        Assert.True(r.Code == 0, $"exit {r.Code}: {r.Out}{r.Err}");
        Assert.Equal("", r.Err);
        Assert.Contains("ok: node fra-7, 3 reports (epochs 493000-493002) signed and chained; totals 33 requests, 3300 tokens, 3300 micro-USD", r.Out);
    }

    [Fact]
    public async Task A_changed_figure_a_missing_report_a_wrong_derived_figure_or_wrong_totals_exit_1_naming_the_first_bad_one()
    {
        // A figure changed after signing: its hash no longer recomputes.
        JsonNode altered = Document();
        altered["reports"]![1]!["revenue_micro_usd"] = 999_999;
        await AssertBadAsync(altered, "report 1 (epoch 493001) of node fra-7: shape: revenue_per_gpu_hour_micro_usd");
        altered = Document();
        altered["reports"]![1]!["utilization_bp"] = 10;
        await AssertBadAsync(altered, "report 1 (epoch 493001) of node fra-7: signature:");

        // A report taken out of the middle: the next one does not link.
        JsonNode gap = Document();
        gap["reports"]!.AsArray().RemoveAt(1);
        gap["totals"] = JsonSerializer.SerializeToNode(NodeReportTotals.Of([Reports()[0], Reports()[2]]));
        await AssertBadAsync(gap, "report 1 (epoch 493002) of node fra-7: chain:");

        // Signed by the node, but with a derived figure that does not recompute from its own figures.
        EpochReport[] reports = Reports();
        reports[2] = EpochReportEncoding.Sign(reports[2] with { TokensPerJouleMilli = reports[2].TokensPerJouleMilli + 1 }, _key.PrivateKey);
        await AssertBadAsync(Document(reports), "report 2 (epoch 493002) of node fra-7: shape: tokens_per_joule_milli");

        // Every report good, the totals not their sums.
        JsonNode totals = Document();
        totals["totals"]!["revenue_micro_usd"] = 1;
        await AssertBadAsync(totals, "the document of node fra-7: shape: the totals are not the sums");

        // Another key's document: the first report already fails.
        JsonNode foreign = Document();
        foreign["public_key"] = Convert.ToBase64String(NodeSigning.NewKeyPair().PublicKey);
        await AssertBadAsync(foreign, "report 0 (epoch 493000) of node fra-7: signature:");
    }

    [Fact]
    public async Task No_file_not_a_document_or_an_unreachable_url_exit_2_with_one_line()
    {
        await AssertUsageAsync(Path.Combine(_dir, "missing.json"), "no such file");
        File.WriteAllText(Path.Combine(_dir, "junk.json"), "{ this is not json");
        await AssertUsageAsync(Path.Combine(_dir, "junk.json"), "is not a node's reports document");
        await AssertUsageAsync($"http://127.0.0.1:{Api.FreePort()}/api/nodes/x/reports", "http://127.0.0.1:");
        var r = await CliRunner.RunAsync(new Dictionary<string, string?> { ["COMPUTEGRID_API_KEY"] = null }, "verify");
        Assert.Equal(2, r.Code);
        Assert.Contains("--node-reports FILE|URL", r.Err);
    }

    [Fact]
    public async Task A_real_servers_published_reports_verify_from_their_url_and_an_unknown_node_is_a_usage_error()
    {
        string data = Path.Combine(_dir, "data");
        await using var serve = await ServeProcess.StartAsync(data);
        using var op = Api.Client(serve.Url, Api.OperatorKey(data));
        JsonElement provider = await op.PostJsonAsync("/api/providers", new { name = "p" });
        await Api.AdmitNodeAsync(op, provider.GetProperty("principal").GetProperty("id").GetUInt64(), "fra-9");

        var r = await VerifyAsync($"{serve.Url}/api/nodes/fra-9/reports");
        Assert.True(r.Code == 0, $"exit {r.Code}: {r.Out}{r.Err}");
        Assert.Contains("ok: node fra-9, 0 reports (no reports)", r.Out);
        r = await VerifyAsync($"{serve.Url}/api/nodes/nobody/reports");
        Assert.Equal(2, r.Code);
        Assert.Contains("404", Assert.Single(r.Err.Split('\n', StringSplitOptions.RemoveEmptyEntries)));
    }

    private async Task AssertBadAsync(JsonNode document, string expected)
    {
        var r = await VerifyAsync(Write($"bad-{Guid.NewGuid():N}.json", document));
        Assert.True(r.Code == 1, $"exit {r.Code}: {r.Out}{r.Err}");
        string line = Assert.Single(r.Err.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Contains("node reports do not verify: " + expected, line);
    }

    private static async Task AssertUsageAsync(string source, string expected)
    {
        var r = await VerifyAsync(source);
        Assert.True(r.Code == 2, $"exit {r.Code}: {r.Out}{r.Err}");
        string line = Assert.Single(r.Err.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("error: ", line);
        Assert.Contains(expected, line);
    }

    private string Write(string name, JsonNode document)
    {
        string path = Path.Combine(_dir, name);
        File.WriteAllText(path, document.ToJsonString());
        return path;
    }

    // Three chained epochs of one node: 10, 11 and 12 requests of 100 tokens each, 100 micro-USD per request.
    private EpochReport[] Reports()
    {
        var reports = new EpochReport[3];
        string previous = EpochReportEncoding.GenesisHash;
        for (int i = 0; i < reports.Length; i++)
        {
            long epoch = FirstEpoch + i, requests = 10 + i;
            var statement = new EpochStatement
            {
                NodePrincipal = 42, Epoch = epoch, StartUnixNs = epoch * EpochSeconds * 1_000_000_000, EndUnixNs = (epoch + 1) * EpochSeconds * 1_000_000_000,
                Complete = true, Requests = requests, Tokens = requests * 100, TokensUnknownRequests = 0, RevenueMicroUsd = requests * 100, SharesOutstanding = 1_000,
            };
            reports[i] = EpochReportBuilder.Build("fra-7", 8, statement, new EpochMeasurement(3_000 + i, 4_000, 250_000 + i, EpochReportEncoding.Measured), previous, _key.PrivateKey);
            previous = reports[i].Hash;
        }
        return reports;
    }

    private JsonNode Document(EpochReport[]? reports = null)
    {
        reports ??= Reports();
        return JsonSerializer.SerializeToNode(new NodeReportsDocument
        {
            NodeId = "fra-7", NodePrincipal = 42, PublicKey = Convert.ToBase64String(_key.PublicKey), EpochSeconds = EpochSeconds,
            Reports = reports, Totals = NodeReportTotals.Of(reports), Flagged = [],
        })!;
    }
}
