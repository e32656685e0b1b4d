using System.Diagnostics;

namespace ComputeGrid.Chain.Tests;

public sealed class ArtifactTests
{
    [ChainFact]
    public void Committed_artifacts_equal_a_fresh_compile_of_the_sources_and_the_embedded_copies()
    {
        ChainToolPaths tools = ChainTools.Ensure();
        string temp = Directory.CreateTempSubdirectory("cg-contracts-").FullName;
        try
        {
            var start = new ProcessStartInfo(tools.Node) { RedirectStandardOutput = true, RedirectStandardError = true };
            start.ArgumentList.Add(tools.CompileScript);
            start.ArgumentList.Add(temp);
            using var p = Process.Start(start)!;
            string stdout = p.StandardOutput.ReadToEnd(), stderr = p.StandardError.ReadToEnd();
            Assert.True(p.WaitForExit(120_000), "compile.mjs did not finish in 2 minutes");
            Assert.True(p.ExitCode == 0, $"compile.mjs failed: {stderr} {stdout}");

            string committed = Path.Combine(tools.ContractsDirectory, "build");
            string[] fresh = Directory.GetFiles(temp).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToArray()!;
            Assert.Equal(Directory.GetFiles(committed).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToArray()!, fresh);
            Assert.Equal(ContractArtifacts.Names.SelectMany(n => new[] { $"{n}.abi.json", $"{n}.bin" }).Order(StringComparer.Ordinal), fresh);
            foreach (string file in fresh)
                Assert.True(File.ReadAllText(Path.Combine(committed, file)) == File.ReadAllText(Path.Combine(temp, file)),
                    $"contracts/build/{file} is stale: run node tools/chain/compile.mjs and commit");

            foreach (string name in ContractArtifacts.Names)
            {
                ContractArtifact embedded = ContractArtifacts.Load(name);
                Assert.Equal(File.ReadAllText(Path.Combine(committed, $"{name}.abi.json")), embedded.Abi);
                Assert.Equal(File.ReadAllText(Path.Combine(committed, $"{name}.bin")).Trim(), embedded.Bytecode);
            }
        }
        finally
        {
            Directory.Delete(temp, recursive: true);
        }
    }

    [Fact]
    public void A_missing_artifact_is_a_clear_error()
    {
        var e = Assert.Throws<InvalidOperationException>(() => ContractArtifacts.Load("NoSuchContract"));
        Assert.Contains("NoSuchContract.abi.json is not embedded", e.Message);
    }
}
