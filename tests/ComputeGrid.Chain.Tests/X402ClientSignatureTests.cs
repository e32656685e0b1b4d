using System.Diagnostics;
using System.Text.Json;
using ComputeGrid.Chain.Contracts;

namespace ComputeGrid.Chain.Tests;

/// <summary>
/// The official x402 client (<c>@x402/evm</c> 2.27.0, pinned in tools/chain), unchanged, signs against the domain
/// ComputeGrid publishes (chain.json's name and version as x402's <c>extra</c>); the contract must accept its payload.
/// </summary>
[Collection(AnvilCollection.Name)]
public sealed class X402ClientSignatureTests(AnvilFixture f)
{
    private const string Script = """
        import { ExactEvmScheme } from '@x402/evm/exact/client';
        import { privateKeyToAccount } from 'viem/accounts';
        const [key, requirements] = process.argv.slice(1);
        const result = await new ExactEvmScheme(privateKeyToAccount(key)).createPaymentPayload(2, JSON.parse(requirements));
        console.log(JSON.stringify(result));
        """;

    [ChainFact]
    public async Task A_payment_signed_by_the_official_x402_evm_client_settles_on_TestUSDC_once()
    {
        ChainInfo chain = f.Chain;
        var requirements = new
        {
            scheme = "exact", network = chain.Network, amount = "1234", asset = chain.Stablecoin, payTo = chain.PayTo,
            maxTimeoutSeconds = 120, extra = new { name = chain.TokenName, version = chain.TokenVersion },
        };
        using JsonDocument payload = JsonDocument.Parse(RunNode(AnvilFixture.Key(1), JsonSerializer.Serialize(requirements)));
        Assert.Equal(2, payload.RootElement.GetProperty("x402Version").GetInt32());
        JsonElement auth = payload.RootElement.GetProperty("payload").GetProperty("authorization");
        var authorization = new TransferAuthorization(
            auth.GetProperty("from").GetString()!, auth.GetProperty("to").GetString()!, long.Parse(auth.GetProperty("value").GetString()!),
            long.Parse(auth.GetProperty("validAfter").GetString()!), long.Parse(auth.GetProperty("validBefore").GetString()!),
            auth.GetProperty("nonce").GetString()!);
        string signature = payload.RootElement.GetProperty("payload").GetProperty("signature").GetString()!;
        Assert.Equal(AnvilFixture.Address(1), authorization.From, ignoreCase: true);

        // The C# signer produces the very same signature for the same message (RFC 6979: deterministic).
        Assert.Equal(signature, authorization.Sign(await f.Stablecoin(0).DomainAsync(), AnvilFixture.Key(1)));

        StablecoinClient facilitator = f.Stablecoin(0); // the server settles as its own facilitator
        long before = await facilitator.BalanceOfAsync(authorization.From);
        await facilitator.TransferWithAuthorizationAsync(authorization, signature);
        Assert.Equal(before - 1234, await facilitator.BalanceOfAsync(authorization.From));
        var again = await Assert.ThrowsAsync<ChainRevertException>(() => facilitator.TransferWithAuthorizationAsync(authorization, signature));
        Assert.Equal("authorization used or canceled", again.Reason);
    }

    private static string RunNode(string key, string requirements)
    {
        ChainToolPaths tools = ChainTools.Ensure();
        // An inline ES module resolves packages from the working directory: tools/chain and its node_modules.
        var start = new ProcessStartInfo(tools.Node) { WorkingDirectory = tools.ToolsDirectory, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string a in new[] { "--input-type=module", "-e", Script, key, requirements }) start.ArgumentList.Add(a);
        using var p = Process.Start(start)!;
        string stdout = p.StandardOutput.ReadToEnd(), stderr = p.StandardError.ReadToEnd();
        Assert.True(p.WaitForExit(60_000), "node did not finish in 60 s");
        Assert.True(p.ExitCode == 0, $"the x402 client failed: {stderr}");
        return stdout.Trim();
    }
}
