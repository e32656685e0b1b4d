using System.Text.Json;
using ComputeGrid.Inference.Reports;

namespace ComputeGrid.Server.Tests.WebConsole;

/// <summary>
/// The console verifies node reports in the browser (<c>console/src/reports.ts</c>); its unit tests check a chain this
/// side signed, committed as <c>console/src/fixtures/node-reports.json</c>. This test signs the chain again with the same
/// fixed key (Ed25519 is deterministic) and requires the committed file to be exactly what the server would serve, so a
/// change to the canonical encoding or the JSON cannot leave the browser's verifier checking an outdated format.
/// <c>CG_UPDATE_FIXTURES=1</c> rewrites the file instead.
/// </summary>
public sealed class NodeReportsFixtureTests
{
    private const long EpochSeconds = 3_600;

    [Fact]
    public void The_consoles_report_fixture_is_a_chain_the_server_signs_and_the_cli_verifies()
    {
        byte[] privateKey = [.. Enumerable.Range(1, 32).Select(i => (byte)i)];
        byte[] publicKey = ComputeGrid.Inference.Nodes.NodeSigning.PublicKeyOf(privateKey);
        const ulong principal = 42;
        const string node = "fra-1";
        var reports = new List<EpochReport>();
        string previous = EpochReportEncoding.GenesisHash;
        // Three epochs: an idle one, a paid one with modeled energy, and one after shares were issued (every optional
        // figure present), so the fixture exercises each branch of the encoding.
        (long Requests, long Tokens, int Util, long Uptime, long Energy, string Source, long Revenue, long? Shares)[] epochs =
        [
            (0, 0, 0, 3_600, 0, EpochReportEncoding.Modeled, 0, null),
            (1_234, 98_765, 2_150, 3_590, 1_800_000, EpochReportEncoding.Modeled, 5_432_101, null),
            (2_000, 150_001, 3_300, 3_600, 2_400_000, EpochReportEncoding.Measured, 7_654_321, 1_000_000),
        ];
        for (int i = 0; i < epochs.Length; i++)
        {
            var e = epochs[i];
            long epoch = 493_000 + i;
            var unsigned = new EpochReport
            {
                NodePrincipal = principal, NodeId = node, Epoch = epoch, StartUnixNs = epoch * EpochSeconds * 1_000_000_000, EndUnixNs = (epoch + 1) * EpochSeconds * 1_000_000_000,
                Gpus = 8, Requests = e.Requests, Tokens = e.Tokens, UtilizationBasisPoints = e.Util, UptimeSeconds = e.Uptime, EnergyJoules = e.Energy, EnergySource = e.Source,
                TokensPerJouleMilli = EpochFigures.TokensPerJouleMilli(e.Tokens, e.Energy), RevenueMicroUsd = e.Revenue,
                RevenuePerGpuHourMicroUsd = EpochFigures.RevenuePerGpuHourMicroUsd(e.Revenue, 8, e.Uptime), SharesOutstanding = e.Shares,
                RevenuePerShareMicroUsdE6 = EpochFigures.RevenuePerShareMicroUsdE6(e.Revenue, e.Shares), PreviousHash = previous, Hash = "", Signature = "",
            };
            EpochReport signed = EpochReportEncoding.Sign(unsigned, privateKey);
            reports.Add(signed);
            previous = signed.Hash;
        }
        var document = new NodeReportsDocument
        {
            NodeId = node, NodePrincipal = principal, PublicKey = Convert.ToBase64String(publicKey), EpochSeconds = EpochSeconds,
            Reports = reports, Totals = NodeReportTotals.Of(reports), Flagged = [],
        };
        Assert.Null(EpochReportChain.Verify(document));

        string json = JsonSerializer.Serialize(document, new JsonSerializerOptions(ApiJson.Options) { WriteIndented = true }) + "\n";
        string file = Path.Combine(RepositoryRoot(), "console", "src", "fixtures", "node-reports.json");
        if (Environment.GetEnvironmentVariable("CG_UPDATE_FIXTURES") == "1") File.WriteAllText(file, json);
        Assert.True(File.Exists(file), $"{file} is missing: run this test with CG_UPDATE_FIXTURES=1");
        Assert.Equal(json, File.ReadAllText(file));
        // What the server serves parses back to the same document, and the CLI's checks pass on it.
        NodeReportsDocument back = JsonSerializer.Deserialize<NodeReportsDocument>(File.ReadAllText(file), ApiJson.Options)!;
        Assert.Null(EpochReportChain.Verify(back));
    }

    private static string RepositoryRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "ComputeGrid.slnx"))) return d.FullName;
        throw new DirectoryNotFoundException("ComputeGrid.slnx not found above " + AppContext.BaseDirectory);
    }
}
