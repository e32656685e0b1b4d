using System.Numerics;
using System.Text.Json;
using ComputeGrid.Chain.Contracts;
using Nethereum.Contracts;
using Nethereum.Web3;
using Nethereum.Web3.Accounts;

namespace ComputeGrid.Chain;

/// <summary>
/// Deploys ComputeGrid's contracts from the operator's key (the server's account: it owns the stablecoin's mint,
/// withdraws from the vault and anchors roots), funds development accounts, and writes/reads <c>chain.json</c>.
/// </summary>
public static class ChainDeployment
{
    /// <summary>The private keys of Anvil's ten development accounts (its default mnemonic); key 0 is the usual deployer. Test keys only.</summary>
    public static readonly IReadOnlyList<string> AnvilDevKeys =
    [
        "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
        "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
        "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
        "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
        "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a",
        "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba",
        "0x92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d6b8d88b2b4ec1564e",
        "0x4bbbf85ce3377467afe5d46f804f221813b2bb87f24d81f60f1fcdbf7cbf4356",
        "0xdbda1821b80551c9d65939329250298aa3472ba22feea921c0cf5d620ea67b97",
        "0x2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6",
    ];

    /// <summary>What each development account is funded with: 1,000 test USDC in micro-USD.</summary>
    public const long DevFundingMicro = 1_000_000_000;

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { WriteIndented = true };

    /// <summary>A Web3 that signs as <paramref name="privateKey"/> for chain <paramref name="chainId"/>.</summary>
    public static Web3 Connect(string rpcUrl, long chainId, string privateKey)
    {
        var web3 = new Web3(new Account(privateKey, chainId), rpcUrl);
        // A local chain mines in milliseconds; Nethereum's default receipt polling would dominate every call.
        web3.TransactionManager.TransactionReceiptService = new Nethereum.RPC.TransactionReceipts.TransactionReceiptPollingService(web3.TransactionManager, 25);
        return web3;
    }

    /// <summary>The address of <paramref name="privateKey"/>.</summary>
    public static string AddressOf(string privateKey) => new Account(privateKey).Address;

    /// <summary>
    /// Deploys TestUSDC, the Vault and the StateRootAnchor from <paramref name="operatorKey"/> and mints
    /// <paramref name="fundEach"/> to each of <paramref name="fund"/> (addresses). PayTo is the operator.
    /// </summary>
    public static async Task<ChainInfo> DeployAsync(string rpcUrl, long chainId, string operatorKey, IEnumerable<string> fund, long fundEach = DevFundingMicro)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(fundEach);
        Web3 web3 = Connect(rpcUrl, chainId, operatorKey);
        string operatorAddress = AddressOf(operatorKey);
        (string usdc, long deployedAt) = await DeployAsync(web3, new DeployTestUsdc()).ConfigureAwait(false);
        (string vault, _) = await DeployAsync(web3, new DeployVault { Token = usdc, Operator = operatorAddress }).ConfigureAwait(false);
        (string anchor, _) = await DeployAsync(web3, new DeployAnchor { Operator = operatorAddress }).ConfigureAwait(false);
        var stablecoin = new StablecoinClient(web3, usdc);
        foreach (string address in fund) await stablecoin.MintAsync(address, fundEach).ConfigureAwait(false);
        return new ChainInfo(rpcUrl, chainId, usdc, vault, anchor, operatorAddress, DeployedAtBlock: deployedAt);
    }

    /// <summary>Deploys on Anvil from dev key 0 and funds all ten dev accounts with 1,000 test USDC each.</summary>
    public static Task<ChainInfo> DeployDevAsync(AnvilProcess anvil) =>
        DeployAsync(anvil.RpcUrl, anvil.ChainId, AnvilDevKeys[0], AnvilDevKeys.Select(AddressOf));

    /// <summary>
    /// Deploys node <paramref name="node"/>'s share token (its fixed supply <paramref name="nodeSupply"/>) from the
    /// operator's key; returns its address and the block it was deployed in (its logs start there).
    /// </summary>
    public static Task<(string Address, long Block)> DeployShareTokenAsync(ChainInfo chain, string operatorKey, string node, string name, string symbol, long nodeSupply)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(nodeSupply);
        Web3 web3 = Connect(chain.RpcUrl, chain.ChainId, operatorKey);
        return DeployAsync(web3, new DeployShareToken
        {
            Name = name, Symbol = symbol, Node = ChainCalls.Bytes32(node, nameof(node)), NodeSupply = new BigInteger(nodeSupply),
            Stablecoin = chain.Stablecoin, Operator = AddressOf(operatorKey),
        });
    }

    /// <summary>Writes <paramref name="chain"/> to <paramref name="path"/> as JSON (camelCase), atomically.</summary>
    public static void Write(ChainInfo chain, string path)
    {
        string temp = path + ".tmp";
        File.WriteAllText(temp, JsonSerializer.Serialize(chain, Json));
        File.Move(temp, path, overwrite: true);
    }

    /// <summary>Reads a <c>chain.json</c>; a missing field or a malformed file is an <see cref="InvalidDataException"/>.</summary>
    public static ChainInfo Read(string path)
    {
        ChainInfo? chain;
        try
        {
            chain = JsonSerializer.Deserialize<ChainInfo>(File.ReadAllText(path), Json);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path} is not a chain.json: {e.Message}", e);
        }
        if (chain is null || string.IsNullOrEmpty(chain.RpcUrl) || chain.ChainId <= 0 || string.IsNullOrEmpty(chain.Stablecoin)
            || string.IsNullOrEmpty(chain.Vault) || string.IsNullOrEmpty(chain.Anchor) || string.IsNullOrEmpty(chain.PayTo))
            throw new InvalidDataException($"{path} lacks a field: rpcUrl, chainId, stablecoin, vault, anchor and payTo are required");
        return chain;
    }

    private static async Task<(string Address, long Block)> DeployAsync<TDeployment>(Web3 web3, TDeployment deployment) where TDeployment : ContractDeploymentMessage, new()
    {
        var receipt = await web3.Eth.GetContractDeploymentHandler<TDeployment>().SendRequestAndWaitForReceiptAsync(deployment, new CancellationTokenSource(Contracts.ChainCalls.ReceiptTimeout)).ConfigureAwait(false);
        if (receipt.Status?.Value != BigInteger.One || string.IsNullOrEmpty(receipt.ContractAddress))
            throw new InvalidOperationException($"deploying {typeof(TDeployment).Name} failed in transaction {receipt.TransactionHash}");
        return (receipt.ContractAddress, (long)receipt.BlockNumber.Value);
    }
}
