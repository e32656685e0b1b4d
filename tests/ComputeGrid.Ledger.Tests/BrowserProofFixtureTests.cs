using System.Text.Json;
using ComputeGrid.Ledger.Audit;

namespace ComputeGrid.Ledger.Tests;

/// <summary>
/// The web console checks balance proofs in the browser (<c>console/src/proof.ts</c>) and tests that verifier on two
/// committed files: a proof a running server wrote (<c>GET /api/ledger/accounts/{id}/proof</c>) and a tampered copy.
/// This verifier must agree on both, so the browser's tests stand on proofs the C# code accepts and refuses.
/// </summary>
public sealed class BrowserProofFixtureTests
{
    private static BalanceProof Read(string name)
    {
        string path = Path.Combine(RepoRoot(), "console", "src", "fixtures", name);
        return JsonSerializer.Deserialize<BalanceProof>(File.ReadAllText(path), BalanceProof.Json) ?? throw new InvalidDataException(path);
    }

    [Fact]
    public void The_consoles_real_proof_verifies_against_its_checkpoint_root()
    {
        BalanceProof proof = Read("balance-proof.json");
        var (ok, message) = proof.Verify(proof.Root);
        Assert.True(ok, message);
        Assert.True(proof.Path.Count > 1);
    }

    [Fact]
    public void The_consoles_tampered_proof_does_not_verify_and_fails_on_its_path()
    {
        BalanceProof real = Read("balance-proof.json");
        BalanceProof tampered = Read("balance-proof-tampered.json");
        Assert.Equal(real.CreditsPosted + 1, tampered.CreditsPosted); // one micro-dollar more, nothing else
        var (ok, message) = tampered.Verify(real.Root);
        Assert.False(ok);
        Assert.Equal("the account's path does not lead to its asset's root", message);
    }

    private static string RepoRoot()
    {
        for (DirectoryInfo? d = new(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "ComputeGrid.slnx"))) return d.FullName;
        throw new DirectoryNotFoundException("ComputeGrid.slnx not found above " + AppContext.BaseDirectory);
    }
}
