using System.Diagnostics;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using ComputeGrid.Chain;
using ComputeGrid.Chain.Contracts;
using ComputeGrid.Chain.X402;
using ComputeGrid.Ledger;
using ComputeGrid.Server.Chain;
using ComputeGrid.Server.Inference;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;

namespace ComputeGrid.Server.Tests.X402;

/// <summary>
/// A real Anvil started by the test and an in-process server on it (<c>--chain RPC --chain-key FILE</c>: the server's
/// account is dev key 9, which deploys and so owns the stablecoin's mint), with one local node running the real model.
/// Dev accounts 1 to 8 are the payers, funded here with 1,000 test USDC each.
/// </summary>
public sealed class X402Rig : IAsyncDisposable
{
    /// <summary>The node's price, micro-USD per 1,000 tokens (each request costs hundreds of micro-USD).</summary>
    public const long Price = 50_000;

    /// <summary>The local node.</summary>
    public const string NodeId = "fra-x402";

    /// <summary>The server's account.</summary>
    public static string ServerKey => ChainDeployment.AnvilDevKeys[9];

    /// <summary>What each payer holds at the start.</summary>
    public const long Funding = 1_000_000_000;

    private X402Rig(AnvilProcess anvil, string dir, string keyFile) => (Anvil, Dir, KeyFile) = (anvil, dir, keyFile);

    public AnvilProcess Anvil { get; }
    public string Dir { get; }
    public string KeyFile { get; }
    public WebApplication App { get; private set; } = null!;
    public HttpClient Operator { get; private set; } = null!;
    public HttpClient Anonymous { get; private set; } = null!;
    public string Url { get; private set; } = "";
    public ChainInfo Chain => App.Services.GetRequiredService<ChainConnection>().Info;
    public X402Payments X402 => App.Services.GetRequiredService<X402Payments>();
    public LedgerEngine Ledger => App.Services.GetRequiredService<LedgerEngine>();
    public InferenceHost Host => App.Services.GetRequiredService<InferenceHost>();

    /// <summary>Anvil (automine), the server with <paramref name="confirmations"/>, the payers funded.</summary>
    public static async Task<X402Rig> StartAsync(string name, int confirmations = 1)
    {
        ChainTools.Ensure();
        AnvilProcess anvil = await AnvilProcess.StartAsync();
        string dir = TestServer.TempDir(name);
        string keyFile = dir + ".key";
        await File.WriteAllTextAsync(keyFile, ServerKey);
        var rig = new X402Rig(anvil, dir, keyFile);
        await rig.StartServerAsync(confirmations);
        var mint = new StablecoinClient(ChainDeployment.Connect(anvil.RpcUrl, anvil.ChainId, ServerKey), rig.Chain.Stablecoin);
        for (int dev = 1; dev <= 8; dev++) await mint.MintAsync(Address(dev), Funding);
        return rig;
    }

    /// <summary>Stops the server (gracefully) and starts it again on the same folder and chain.</summary>
    public async Task RestartAsync(int confirmations = 1)
    {
        await StopServerAsync();
        await StartServerAsync(confirmations);
    }

    private async Task StartServerAsync(int confirmations)
    {
        App = ServerHost.Build(new ServerOptions
        {
            Urls = "http://127.0.0.1:0", DataDirectory = Dir, MinimumLogLevel = Microsoft.Extensions.Logging.LogLevel.Warning,
            Inference = new InferenceServerOptions { LocalNodes = [new(NodeId, "frankfurt", Price, 8)] },
            Chain = new ChainOptions { RpcUrl = Anvil.RpcUrl, KeyFile = KeyFile, Confirmations = confirmations },
        });
        await App.StartAsync();
        Url = ServerHost.Endpoints(App).ApiUrl;
        Operator = TestServer.Client(Url, TestServer.OperatorKey(Dir));
        Anonymous = TestServer.Client(Url, null);
        for (int i = 0; i < 200 && !Host.Gateway.Registry.Snapshot().Any(n => n.Healthy); i++) await Task.Delay(25);
        Assert.Contains(Host.Gateway.Registry.Snapshot(), n => n.Healthy);
    }

    private async Task StopServerAsync()
    {
        await App.StopAsync();
        await App.DisposeAsync();
        Operator.Dispose();
        Anonymous.Dispose();
    }

    public static string Key(int dev) => ChainDeployment.AnvilDevKeys[dev];

    public static string Address(int dev) => ChainDeployment.AddressOf(Key(dev));

    /// <summary>The on-chain stablecoin balance of <paramref name="address"/>.</summary>
    public Task<long> BalanceAsync(string address) =>
        new StablecoinClient(ChainDeployment.Connect(Anvil.RpcUrl, Anvil.ChainId, Key(1)), Chain.Stablecoin).BalanceOfAsync(address);

    /// <summary>A ledger account (absent: all zero).</summary>
    public async Task<Account> AccountAsync(UInt128 id) => (await Ledger.LookupAccountsAsync([id])).FirstOrDefault();

    /// <summary>An embeddings request's body.</summary>
    public static string Body(string text) => JsonSerializer.Serialize(new { model = "all-MiniLM-L6-v2", input = text });

    /// <summary>The metered cost of <paramref name="text"/> on the node.</summary>
    public long CostOf(string text) => InferenceGateway.Cost(Host.Gateway.Models.Models[0].Tokenize(text).TokenCount, Price);

    /// <summary>Posts <paramref name="text"/> without a key, with <paramref name="paymentSignature"/> when given.</summary>
    public async Task<HttpResponseMessage> PostAsync(string text, string? paymentSignature = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/embeddings") { Content = new StringContent(Body(text), Encoding.UTF8, "application/json") };
        if (paymentSignature is not null) request.Headers.TryAddWithoutValidation(X402Headers.PaymentSignatureName, paymentSignature);
        return await Anonymous.SendAsync(request);
    }

    /// <summary>The 402's requirements for <paramref name="text"/>.</summary>
    public async Task<PaymentRequired> RequiredAsync(string text)
    {
        using HttpResponseMessage r = await PostAsync(text);
        Assert.Equal(System.Net.HttpStatusCode.PaymentRequired, r.StatusCode);
        Assert.True(X402Headers.TryDecodePaymentRequired(r.Headers.GetValues(X402Headers.PaymentRequiredName).Single(), out PaymentRequired? required, out string error), error);
        return required!;
    }

    /// <summary>
    /// A PAYMENT-SIGNATURE for <paramref name="required"/> signed by dev <paramref name="signer"/> with our own EIP-3009
    /// signer, the authorization changed by <paramref name="tweak"/> before signing (for the refusal tests).
    /// </summary>
    public static string Sign(PaymentRequired required, int signer, Func<ExactEvmAuthorization, ExactEvmAuthorization>? tweak = null, int? from = null, long? now = null)
    {
        PaymentRequirements accepted = required.Accepts[0];
        long t = now ?? DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var nonce = new byte[32];
        Random.Shared.NextBytes(nonce);
        var a = new ExactEvmAuthorization(Address(from ?? signer), accepted.PayTo, accepted.Amount, "0", (t + accepted.MaxTimeoutSeconds).ToString(),
            "0x" + Convert.ToHexStringLower(nonce));
        if (tweak is not null) a = tweak(a);
        Assert.True(X402Verifier.TryParse(a, out Eip3009Authorization auth, out string? detail), detail);
        Assert.True(X402Verifier.TryChainId(accepted.Network, out long chainId));
        var domain = new ComputeGrid.Chain.X402.Eip712Domain(accepted.Extra!.Name!, accepted.Extra.Version!, chainId, EvmAddress.Parse(accepted.Asset));
        using Eip3009Signer s = Eip3009Signer.FromHex(Key(signer));
        string signature = s.Sign(domain, auth);
        return X402Headers.Encode(new PaymentPayload(2, accepted, new ExactEvmPayload(signature, a), required.Resource));
    }

    /// <summary>Runs tests/ComputeGrid.Server.Tests/X402/x402-client.cjs with the official packages; its one JSON line.</summary>
    public static async Task<JsonElement> OfficialAsync(params string[] args)
    {
        ChainToolPaths tools = ChainTools.Ensure();
        string script = Path.Combine(tools.ToolsDirectory, "..", "..", "tests", "ComputeGrid.Server.Tests", "X402", "x402-client.cjs");
        var start = new ProcessStartInfo(tools.Node) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(script);
        foreach (string a in args) start.ArgumentList.Add(a);
        start.Environment["NODE_MODULES"] = Path.Combine(tools.ToolsDirectory, "node_modules");
        using var node = Process.Start(start)!;
        Task<string> stdout = node.StandardOutput.ReadToEndAsync(), stderr = node.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        await node.WaitForExitAsync(timeout.Token);
        Assert.True(node.ExitCode == 0, $"x402-client.cjs {args[0]} exited {node.ExitCode}: {await stderr}");
        string line = (await stdout).Split('\n', StringSplitOptions.RemoveEmptyEntries).Last();
        return JsonDocument.Parse(line).RootElement.Clone();
    }

    /// <summary>Waits until <paramref name="condition"/> holds (polling), at most <paramref name="within"/>.</summary>
    public static async Task<bool> EventuallyAsync(Func<Task<bool>> condition, TimeSpan within)
    {
        var deadline = DateTime.UtcNow + within;
        while (DateTime.UtcNow < deadline)
        {
            if (await condition()) return true;
            await Task.Delay(50);
        }
        return await condition();
    }

    public async ValueTask DisposeAsync()
    {
        await StopServerAsync();
        Anvil.Dispose();
        try { Directory.Delete(Dir, recursive: true); } catch (IOException) { }
        File.Delete(KeyFile);
    }
}
