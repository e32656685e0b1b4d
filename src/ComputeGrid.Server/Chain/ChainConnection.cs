using System.Globalization;
using ComputeGrid.Chain;
using ComputeGrid.Chain.Contracts;
using Nethereum.Web3;

namespace ComputeGrid.Server.Chain;

/// <summary>
/// The server's one connection to its EVM chain, a singleton other components take from DI: a Web3 that signs as the
/// server's account, the deployment (<see cref="ChainInfo"/>, also in <c>DATA/chain.json</c>), the confirmations a
/// transaction needs, and the typed contract clients. In demo mode it owns the Anvil it started and stops it on dispose.
/// Invariant: one data folder belongs to one chain (its chain id and contracts); a folder bound to another chain, or
/// whose contracts are gone from the chain, is refused at start rather than mixed (the ledger's x402 receivables and
/// bridge records name those contracts).
/// </summary>
public sealed class ChainConnection : IDisposable
{
    /// <summary>The file in the data folder that records the deployment.</summary>
    public const string FileName = "chain.json";

    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(60);
    private readonly string _privateKey;

    private ChainConnection(ChainInfo info, string privateKey, int confirmations, AnvilProcess? anvil, string json)
    {
        Info = info;
        _privateKey = privateKey;
        Confirmations = confirmations;
        Anvil = anvil;
        Json = json;
        Web3 = ChainDeployment.Connect(info.RpcUrl, info.ChainId, privateKey);
        Account = ChainDeployment.AddressOf(privateKey);
        Stablecoin = new StablecoinClient(Web3, info.Stablecoin);
        Vault = new VaultClient(Web3, info.Vault);
        Anchor = new AnchorClient(Web3, info.Anchor);
    }

    /// <summary>Where the contracts are and where x402 payments go.</summary>
    public ChainInfo Info { get; }

    /// <summary>The text of <c>DATA/chain.json</c>, as served by <c>GET /api/chain</c>.</summary>
    public string Json { get; }

    /// <summary>A Web3 that signs as the server's account.</summary>
    public Web3 Web3 { get; }

    /// <summary>The server's account (sends settlements, withdrawals and anchors; x402's payTo on a chain it deployed).</summary>
    public string Account { get; }

    /// <summary>Blocks a transaction needs (its own included) before the server treats it as final.</summary>
    public int Confirmations { get; }

    /// <summary>The demo chain this connection started, or null on an external chain.</summary>
    public AnvilProcess? Anvil { get; }

    /// <summary>The stablecoin, as the server's account.</summary>
    public StablecoinClient Stablecoin { get; }

    /// <summary>The deposit/withdrawal vault, as the server's account.</summary>
    public VaultClient Vault { get; }

    /// <summary>The state-root anchor, as the server's account.</summary>
    public AnchorClient Anchor { get; }

    /// <summary>A node's share token at <paramref name="address"/>, as the server's account.</summary>
    public ShareTokenClient ShareToken(string address) => new(Web3, address);

    /// <summary>Deploys node <paramref name="node"/>'s share token from the server's account; returns its address and deployment block.</summary>
    public Task<(string Address, long Block)> DeployShareTokenAsync(string node, string name, string symbol, long nodeSupply) =>
        ChainDeployment.DeployShareTokenAsync(Info, _privateKey, node, name, symbol, nodeSupply);

    /// <summary>
    /// Connects as <paramref name="options"/> say: starts and deploys a demo Anvil, or reaches the RPC endpoint and reuses
    /// the deployment recorded in <c>DATA/chain.json</c> for that chain (deploying once when there is none).
    /// </summary>
    /// <exception cref="ServerStartException">Bad options, the tools or the chain unreachable, or a folder bound to another chain.</exception>
    public static async Task<ChainConnection> OpenAsync(ChainOptions options, string dataDirectory, CancellationToken cancel = default)
    {
        if (options.Problem() is { } problem) throw new ServerStartException(problem);
        string path = Path.Combine(dataDirectory, FileName);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        timeout.CancelAfter(StartTimeout);
        try
        {
            return options.IsDemo
                ? await OpenDemoAsync(options, path, timeout.Token).ConfigureAwait(false)
                : await OpenRpcAsync(options, path).WaitAsync(timeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested && !cancel.IsCancellationRequested)
        {
            throw new ServerStartException($"The chain did not answer within {StartTimeout.TotalSeconds} s ({options.RpcUrl ?? "demo Anvil"}).");
        }
        catch (Exception e) when (e is ChainToolsException or HttpRequestException or Nethereum.JsonRpc.Client.RpcClientUnknownException
            or Nethereum.JsonRpc.Client.RpcResponseException or ChainRevertException or InvalidOperationException)
        {
            throw new ServerStartException($"Cannot connect to the chain ({options.RpcUrl ?? "demo Anvil"}): {e.Message}", e);
        }
    }

    // A demo chain is new at every start: its contracts are deployed afresh (Anvil's deterministic deployer gives the same
    // addresses each time) and chain.json rewritten. Deployment runs with automine, then the block time (if any) is set,
    // so a 2-second chain does not spend half a minute mining the deployment and the dev accounts' funding.
    private static async Task<ChainConnection> OpenDemoAsync(ChainOptions options, string path, CancellationToken cancel)
    {
        AnvilProcess anvil = await AnvilProcess.StartAsync(cancel: cancel).ConfigureAwait(false);
        try
        {
            ChainInfo info = await ChainDeployment.DeployDevAsync(anvil).WaitAsync(cancel).ConfigureAwait(false);
            if (options.BlockTimeSeconds is int seconds)
                await anvil.CallAsync("evm_setIntervalMining", seconds).ConfigureAwait(false);
            ChainDeployment.Write(info, path);
            return new ChainConnection(info, ChainDeployment.AnvilDevKeys[0], options.ConfirmationsOrDefault, anvil, File.ReadAllText(path));
        }
        catch
        {
            anvil.Dispose();
            throw;
        }
    }

    private static async Task<ChainConnection> OpenRpcAsync(ChainOptions options, string path)
    {
        string rpcUrl = options.RpcUrl!;
        string key = ReadKey(options.KeyFile!);
        string account = ChainDeployment.AddressOf(key);
        var probe = new Web3(rpcUrl);
        long chainId = (long)(await probe.Eth.ChainId.SendRequestAsync().ConfigureAwait(false)).Value;
        ChainInfo info;
        if (File.Exists(path))
        {
            ChainInfo recorded;
            try { recorded = ChainDeployment.Read(path); }
            catch (IOException e) { throw new ServerStartException($"Cannot read {path}: {e.Message}", e); }
            catch (InvalidDataException e) { throw new ServerStartException(e.Message, e); }
            if (recorded.ChainId != chainId)
                throw new ServerStartException($"{path} belongs to chain {recorded.ChainId}, but {rpcUrl} is chain {chainId}: use that chain, or a new --data-dir.");
            if (!string.Equals(recorded.PayTo, account, StringComparison.OrdinalIgnoreCase))
                throw new ServerStartException($"{path} was deployed by {recorded.PayTo}, but --chain-key is {account}: use that account's key.");
            string code = await probe.Eth.GetCode.SendRequestAsync(recorded.Stablecoin).ConfigureAwait(false);
            if (code is null || code is "0x" or "0x0")
                throw new ServerStartException($"{path} names a stablecoin at {recorded.Stablecoin} that has no code on chain {chainId} (was the chain reset?): move {path} aside to deploy anew.");
            info = recorded with { RpcUrl = rpcUrl };
            if (info != recorded) ChainDeployment.Write(info, path);
        }
        else
        {
            // The first start on this chain deploys; x402 payers bring their own funds, so nobody is funded.
            info = await ChainDeployment.DeployAsync(rpcUrl, chainId, key, []).ConfigureAwait(false);
            ChainDeployment.Write(info, path);
        }
        return new ChainConnection(info, key, options.ConfirmationsOrDefault, anvil: null, File.ReadAllText(path));
    }

    /// <summary>The private key in <paramref name="file"/>: 64 hex digits, with or without 0x, surrounding white space ignored.</summary>
    private static string ReadKey(string file)
    {
        string text;
        try { text = File.ReadAllText(file).Trim(); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw new ServerStartException($"--chain-key {file}: {e.Message}", e); }
        string hex = text.StartsWith("0x", StringComparison.OrdinalIgnoreCase) ? text[2..] : text;
        if (hex.Length != 64 || !hex.All(Uri.IsHexDigit) || hex.All(c => c == '0'))
            throw new ServerStartException($"--chain-key {file}: not a private key (64 hex digits, optionally 0x-prefixed)");
        return "0x" + hex.ToLower(CultureInfo.InvariantCulture);
    }

    /// <summary>Stops the demo chain, if this connection started one.</summary>
    public void Dispose() => Anvil?.Dispose();
}
