using System.Net.Http.Json;
using System.Text.Json;
using ComputeGrid.Chain;
using ComputeGrid.Chain.Contracts;
using ComputeGrid.Core;
using ComputeGrid.Ledger;
using ComputeGrid.Server.Chain;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;

namespace ComputeGrid.Server.Tests.Chain;

/// <summary>
/// A real Anvil (started and killed here) and an in-process server bridged to it as an external chain (so the test can
/// mine, revert and reorganise it), with the bridge's background loops off: each test drives the deposit, withdrawal
/// and anchor passes itself, so what a pass sees is decided by the test, not by a timer. The server's account is Anvil's
/// dev key 0; depositors are dev keys 1 and up, funded by the server's mint.
/// </summary>
public sealed class BridgeHarness : IAsyncDisposable
{
    /// <summary>Confirmations the harness's server needs.</summary>
    public const int Confirmations = 3;

    private readonly string _keyFile;
    private bool _running;

    private BridgeHarness(AnvilProcess anvil, string dir, string keyFile)
    {
        Anvil = anvil;
        Dir = dir;
        _keyFile = keyFile;
    }

    public AnvilProcess Anvil { get; }
    public string Dir { get; }
    public WebApplication App { get; private set; } = null!;
    public HttpClient Operator { get; private set; } = null!;

    public ChainConnection Chain => App.Services.GetRequiredService<ChainConnection>();
    public BridgeDeposits Deposits => App.Services.GetRequiredService<BridgeDeposits>();
    public BridgeWithdrawals Withdrawals => App.Services.GetRequiredService<BridgeWithdrawals>();
    public AnchorOutbox Anchors => App.Services.GetRequiredService<AnchorOutbox>();
    public LedgerEngine Ledger => App.Services.GetRequiredService<LedgerEngine>();
    public ShareBridge Shares => App.Services.GetRequiredService<ShareBridge>();

    /// <summary>A fresh Anvil (with <paramref name="blocksBefore"/> empty blocks mined before anything is deployed) and a server on a new folder.</summary>
    public static async Task<BridgeHarness> StartAsync(Func<string, Task>? afterWithdrawalSent = null, int blocksBefore = 0)
    {
        AnvilProcess anvil = await AnvilProcess.StartAsync();
        if (blocksBefore > 0) await anvil.MineAsync(blocksBefore);
        string dir = TestServer.TempDir("bridge");
        string keyFile = dir + ".key";
        File.WriteAllText(keyFile, ChainDeployment.AnvilDevKeys[0]);
        var h = new BridgeHarness(anvil, dir, keyFile);
        await h.StartServerAsync(afterWithdrawalSent);
        return h;
    }

    /// <summary>Starts the server (again) on the same folder and chain.</summary>
    public async Task StartServerAsync(Func<string, Task>? afterWithdrawalSent = null)
    {
        App = ServerHost.Build(new ServerOptions
        {
            Urls = "http://127.0.0.1:0", DataDirectory = Dir,
            Chain = new ChainOptions { RpcUrl = Anvil.RpcUrl, KeyFile = _keyFile, Confirmations = Confirmations },
            Bridge = new BridgeOptions { RunLoops = false, AfterWithdrawalSent = afterWithdrawalSent },
            CheckpointInterval = TimeSpan.FromHours(1),
        });
        await App.StartAsync();
        _running = true;
        Operator = TestServer.Client(ServerHost.Endpoints(App).ApiUrl, TestServer.OperatorKey(Dir));
    }

    /// <summary>Stops the server as a shutdown would; the folder and the chain stay.</summary>
    public async Task StopServerAsync()
    {
        if (!_running) return;
        _running = false;
        Operator.Dispose();
        await App.StopAsync();
        await App.DisposeAsync();
    }

    /// <summary>A Web3 signing as dev key <paramref name="index"/>.</summary>
    public Nethereum.Web3.Web3 Wallet(int index) => ChainDeployment.Connect(Anvil.RpcUrl, Anvil.ChainId, ChainDeployment.AnvilDevKeys[index]);

    /// <summary>The address of dev key <paramref name="index"/>.</summary>
    public static string Address(int index) => ChainDeployment.AddressOf(ChainDeployment.AnvilDevKeys[index]);

    /// <summary>Dev account <paramref name="index"/> deposits <paramref name="amount"/> naming <paramref name="accountBytes32"/> (minted to it first); returns the receipt.</summary>
    public async Task<ChainReceipt> DepositAsync(int index, long amount, string accountBytes32)
    {
        await Chain.Stablecoin.MintAsync(Address(index), amount);
        var web3 = Wallet(index);
        await new StablecoinClient(web3, Chain.Info.Stablecoin).ApproveAsync(Chain.Info.Vault, amount);
        return await new VaultClient(web3, Chain.Info.Vault).DepositAsync(amount, accountBytes32);
    }

    /// <summary>Posted credits minus posted debits of <paramref name="account"/> (0 when it does not exist).</summary>
    public async Task<long> CreditBalanceAsync(UInt128 account)
    {
        Account[] a = await Ledger.LookupAccountsAsync([account]);
        return a.Length == 0 ? 0 : checked(a[0].CreditsPosted - a[0].DebitsPosted);
    }

    /// <summary>The ledger account of <paramref name="code"/> as a full record.</summary>
    public async Task<Account> SystemAccountAsync(AccountCode code) => (await Ledger.LookupAccountsAsync([ChartOfAccounts.SystemAccount(code, Asset.Usd)]))[0];

    /// <summary>The bytes32 naming a principal's customer balance.</summary>
    public static string Bytes32(UInt128 account) => BridgeIds.AccountToBytes32(account);

    /// <summary>POST /api/chain/withdrawals as <paramref name="who"/>.</summary>
    public static async Task<HttpResponseMessage> WithdrawAsync(HttpClient who, long amount, string to, string key)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/api/chain/withdrawals") { Content = JsonContent.Create(new { amount, to }, options: TestServer.Json) };
        request.Headers.Add("Idempotency-Key", key);
        return await who.SendAsync(request);
    }

    public static async Task<JsonElement> JsonAsync(HttpResponseMessage r) => JsonDocument.Parse(await r.Content.ReadAsStringAsync()).RootElement;

    public async ValueTask DisposeAsync()
    {
        await StopServerAsync();
        Anvil.Dispose();
        try { Directory.Delete(Dir, recursive: true); } catch (IOException) { }
        File.Delete(_keyFile);
    }
}
