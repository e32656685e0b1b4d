using System.Net;
using System.Text.Json;
using ComputeGrid.Ledger.Audit;

namespace ComputeGrid.Server.Tests.Chain;

/// <summary>
/// Checkpoints anchored on a real Anvil, and <c>computegrid verify --proof FILE --chain RPC --anchor ADDR</c> checking a
/// customer's proof against the root read from the chain (not from the server), refusing a tampered proof and bad flags.
/// </summary>
public sealed class AnchorTests
{
    [Fact]
    public async Task A_checkpoint_is_anchored_once_and_a_proof_verifies_against_the_root_read_from_the_chain_through_the_cli()
    {
        await using BridgeHarness h = await BridgeHarness.StartAsync();
        using HttpClient anonymous = TestServer.Client(ServerHost.Endpoints(h.App).ApiUrl, key: null);
        Assert.Equal(HttpStatusCode.NotFound, (await anonymous.GetAsync("/api/chain/anchors/latest")).StatusCode);

        Party alice = await TestServer.NewCustomerAsync(h.Operator, "alice", fundMicroUsd: 12_345_678);
        // Two checkpoints before the anchor runs (the chain lagging): only the latest is anchored, the first is recorded as covered by it.
        JsonElement first = await PostCheckpointAsync(h.Operator);
        await TestServer.NewCustomerAsync(h.Operator, "bob", fundMicroUsd: 1_000_000);
        JsonElement second = await PostCheckpointAsync(h.Operator);
        ulong op = await h.Anchors.AnchorAsync() ?? throw new Xunit.Sdk.XunitException("nothing anchored");
        Assert.Equal(U64(second.GetProperty("op")), op);
        Assert.Null(await h.Anchors.AnchorAsync()); // nothing new: no second transaction
        string? onChain = await h.Chain.Anchor.RootAtAsync(op);
        Assert.Equal("0x" + second.GetProperty("root").GetString(), onChain);
        Assert.Null(await h.Chain.Anchor.RootAtAsync(U64(first.GetProperty("op"))));

        JsonElement latest = JsonDocument.Parse(await anonymous.GetStringAsync("/api/chain/anchors/latest")).RootElement;
        Assert.Equal(op, U64(latest.GetProperty("op")));
        Assert.Equal(onChain, latest.GetProperty("root").GetString());
        Assert.Equal(h.Chain.Info.Anchor, latest.GetProperty("anchor").GetString());
        Assert.Equal([U64(first.GetProperty("op"))], latest.GetProperty("covered_ops").EnumerateArray().Select(U64).ToArray());

        // The customer's proof, checked against the chain with the server out of the loop.
        string proofJson = await alice.Http.GetStringAsync($"/api/ledger/accounts/{alice.Account}/proof");
        string file = Path.Combine(h.Dir, "alice-proof.json");
        await File.WriteAllTextAsync(file, proofJson);
        string anchor = h.Chain.Info.Anchor;
        await h.StopServerAsync();
        var ok = await ApiTestHelpers.RunCliAsync("verify", "--proof", file, "--chain", h.Anvil.RpcUrl, "--anchor", anchor);
        Assert.True(ok.Code == 0, ok.Err);
        Assert.Contains("credits_posted=12345678", ok.Out);
        Assert.Contains(onChain!, ok.Out);

        // Tampered: exit 1. Bad flags: exit 2 with one line.
        var proof = JsonSerializer.Deserialize<BalanceProof>(proofJson, BalanceProof.Json)!;
        await File.WriteAllTextAsync(file, JsonSerializer.Serialize(proof with { CreditsPosted = proof.CreditsPosted + 1 }, BalanceProof.Json));
        var tampered = await ApiTestHelpers.RunCliAsync("verify", "--proof", file, "--chain", h.Anvil.RpcUrl, "--anchor", anchor);
        Assert.Equal(1, tampered.Code);
        Assert.Contains("proof does not verify", tampered.Err);
        // A proof of an op nobody anchored: exit 1.
        await File.WriteAllTextAsync(file, JsonSerializer.Serialize(proof with { Op = proof.Op + 1_000 }, BalanceProof.Json));
        var unanchored = await ApiTestHelpers.RunCliAsync("verify", "--proof", file, "--chain", h.Anvil.RpcUrl, "--anchor", anchor);
        Assert.Equal(1, unanchored.Code);
        Assert.Contains("no root is anchored", unanchored.Err);

        foreach (string[] bad in new[]
        {
            new[] { "verify", "--proof", file, "--chain", h.Anvil.RpcUrl },
            ["verify", "--proof", file, "--anchor", anchor],
            ["verify", "--chain", h.Anvil.RpcUrl, "--anchor", anchor],
            ["verify", "--proof", file, "--chain", h.Anvil.RpcUrl, "--anchor", anchor, "--root", new string('a', 64)],
            ["verify", "--proof", file, "--chain", "ftp://x", "--anchor", anchor],
            ["verify", "--proof", file, "--chain", h.Anvil.RpcUrl, "--anchor", "0x1234"],
        })
        {
            var r = await ApiTestHelpers.RunCliAsync(bad);
            Assert.True(r.Code == 2, $"{string.Join(' ', bad)}: exit {r.Code} {r.Err}");
            Assert.Single(r.Err.Trim().Split('\n'));
        }
    }

    // An op is a JSON number, or a decimal string where the API writes 64-bit ids as strings.
    private static ulong U64(JsonElement e) => e.ValueKind == JsonValueKind.String ? ulong.Parse(e.GetString()!, System.Globalization.CultureInfo.InvariantCulture) : e.GetUInt64();

    private static async Task<JsonElement> PostCheckpointAsync(HttpClient op)
    {
        HttpResponseMessage r = await op.PostAsync("/api/ledger/checkpoints", null);
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        return JsonDocument.Parse(await r.Content.ReadAsStringAsync()).RootElement;
    }
}
