using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Numerics;
using System.Text;
using System.Text.Json;
using ComputeGrid.Chain;
using ComputeGrid.Chain.Contracts;
using ComputeGrid.Chain.X402;
using ComputeGrid.Server;
using ComputeGrid.Server.Chain;
using ComputeGrid.Server.Inference;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Nethereum.Hex.HexConvertors.Extensions;

namespace ComputeGrid.Cli.Bench;

/// <summary>
/// What <c>computegrid bench chain</c> runs against: its own Anvil, and an in-process server on it
/// (<c>--chain RPC --chain-key FILE</c>, the server's account is dev key 9, which deploys and so owns the stablecoin's
/// mint) with one local node running the real model. Dev accounts 1 to 8 are the payers (funded with 1,000 test USDC
/// each), signing EIP-3009 authorizations in C# with <see cref="Eip3009Signer"/>; a keyed customer funded by the
/// operator sends the same bodies for the baseline. Nonces come from the seed.
/// </summary>
internal sealed class ChainBenchRig : IAsyncDisposable
{
    /// <summary>The node's price, micro-USD per 1,000 tokens (a probe sentence costs hundreds of micro-USD).</summary>
    public const long PriceMicroUsdPer1kTokens = 50_000;

    /// <summary>The local node's region; every request names it (X-Region), so no simulated distance differs between paths.</summary>
    public const string Region = "frankfurt";

    /// <summary>Blocks a settlement needs (its own included) before the server counts it final: Anvil's demo default.</summary>
    public const int Confirmations = ChainOptions.AnvilConfirmationsDefault;

    /// <summary>What each payer is minted at the start (1,000 test USDC).</summary>
    public const long PayerFunding = 1_000_000_000;

    /// <summary>The dev accounts that pay.</summary>
    public static readonly int[] PayerDevAccounts = [1, 2, 3, 4, 5, 6, 7, 8];

    /// <summary>What the depositor (dev account 0) is minted at the start and lets the vault take (100 test USDC).</summary>
    public const long DepositorFunding = 100_000_000;

    private const int ServerDevAccount = 9;
    private const int DepositorDevAccount = 0;
    private readonly Random _nonces;
    private readonly Eip3009Signer[] _payers;
    private readonly TimeProvider _time;
    private Nethereum.Web3.Web3? _bystander;

    private ChainBenchRig(AnvilProcess anvil, string dir, string keyFile, int seed, TimeProvider time)
    {
        (Anvil, Dir, KeyFile, _time) = (anvil, dir, keyFile, time);
        _nonces = new Random(seed);
        _payers = PayerDevAccounts.Select(d => Eip3009Signer.FromHex(ChainDeployment.AnvilDevKeys[d])).ToArray();
    }

    /// <summary>The chain.</summary>
    public AnvilProcess Anvil { get; }

    /// <summary>The server's data folder.</summary>
    public string Dir { get; }

    private string KeyFile { get; }

    /// <summary>The server.</summary>
    public WebApplication App { get; private set; } = null!;

    /// <summary>A client without credentials (x402 payers present none).</summary>
    public HttpClient Http { get; private set; } = null!;

    /// <summary>The keyed customer's API key.</summary>
    public string ApiKey { get; private set; } = "";

    /// <summary>The ledger account vault deposits credit: a second customer's balance, which nothing else moves.</summary>
    public UInt128 DepositAccount { get; private set; }

    private VaultClient _vault = null!;

    /// <summary>The server's x402 services (store, settler).</summary>
    public X402Payments X402 => App.Services.GetRequiredService<X402Payments>();

    /// <summary>The server's chain connection (signs as the server's account).</summary>
    public ChainConnection Chain => App.Services.GetRequiredService<ChainConnection>();

    /// <summary>How often the server's bridge reads deposits (and anchors), as configured.</summary>
    public TimeSpan BridgePollInterval => App.Services.GetRequiredService<BridgeOptions>().PollInterval;

    /// <summary>How many payers sign.</summary>
    public int PayerCount => _payers.Length;

    /// <summary>Payer <paramref name="i"/>'s address.</summary>
    public EvmAddress Payer(int i) => _payers[i].Address;

    /// <summary>Starts Anvil (automine) and the server, funds the payers and creates the keyed customer.</summary>
    public static async Task<ChainBenchRig> StartAsync(string dir, int seed, CancellationToken ct)
    {
        ChainTools.Ensure();
        AnvilProcess anvil = await AnvilProcess.StartAsync(cancel: ct);
        Directory.CreateDirectory(dir);
        string keyFile = Path.Combine(dir, "server.key");
        await File.WriteAllTextAsync(keyFile, ChainDeployment.AnvilDevKeys[ServerDevAccount], ct);
        var rig = new ChainBenchRig(anvil, Path.Combine(dir, "data"), keyFile, seed, TimeProvider.System);
        try
        {
            rig.App = ServerHost.Build(new ServerOptions
            {
                Urls = "http://127.0.0.1:0", DataDirectory = rig.Dir, MinimumLogLevel = Microsoft.Extensions.Logging.LogLevel.Warning,
                Inference = new InferenceServerOptions { LocalNodes = [new LocalNodeSpec("bench-chain-1", Region, PriceMicroUsdPer1kTokens, 64)] },
                Chain = new ChainOptions { RpcUrl = anvil.RpcUrl, KeyFile = keyFile, Confirmations = Confirmations },
                // One keyed customer and eight keyless payers from one address drive the server at full speed: the rate
                // limits (still run on every request) are raised out of the way, so the paid path is what is measured.
                Limits = new ComputeGrid.Server.Trust.ServerLimits
                {
                    Customer = new ComputeGrid.Server.Trust.RateLimit(1_000_000, 1_000_000),
                    Anonymous = new ComputeGrid.Server.Trust.RateLimit(1_000_000, 1_000_000),
                },
            });
            await rig.App.StartAsync(ct);
            rig.Http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 64 }) { BaseAddress = new Uri(ServerHost.Endpoints(rig.App).ApiUrl) };
            InferenceHost host = rig.App.Services.GetRequiredService<InferenceHost>();
            for (int i = 0; i < 400 && !host.Gateway.Registry.Snapshot().Any(n => n.Healthy); i++) await Task.Delay(25, ct);
            if (!host.Gateway.Registry.Snapshot().Any(n => n.Healthy)) throw new InvalidOperationException("the bench's node did not become healthy");
            var mint = new StablecoinClient(ChainDeployment.Connect(anvil.RpcUrl, anvil.ChainId, ChainDeployment.AnvilDevKeys[ServerDevAccount]), rig.Chain.Info.Stablecoin);
            foreach (Eip3009Signer payer in rig._payers) await mint.MintAsync(payer.Address.ToChecksumString(), PayerFunding);
            (rig.ApiKey, _) = await rig.CustomerAsync("bench-chain", fund: true, ct);
            // The depositor: funded and its allowance given now, while blocks are mined per transaction; it sends from a
            // connection of its own (its account nonce is nobody else's).
            (_, ulong depositor) = await rig.CustomerAsync("bench-chain-depositor", fund: false, ct);
            rig.DepositAccount = ComputeGrid.Ledger.ChartOfAccounts.PrincipalAccount(ComputeGrid.Ledger.AccountCode.CustomerBalance, depositor);
            await mint.MintAsync(ChainDeployment.AddressOf(ChainDeployment.AnvilDevKeys[DepositorDevAccount]), DepositorFunding);
            var wallet = ChainDeployment.Connect(anvil.RpcUrl, anvil.ChainId, ChainDeployment.AnvilDevKeys[DepositorDevAccount]);
            await new StablecoinClient(wallet, rig.Chain.Info.Stablecoin).ApproveAsync(rig.Chain.Info.Vault, DepositorFunding);
            rig._vault = new VaultClient(wallet, rig.Chain.Info.Vault);
            return rig;
        }
        catch
        {
            await rig.DisposeAsync();
            throw;
        }
    }

    /// <summary>The 402's requirements for <paramref name="body"/> (what a payer signs for), and how long the 402 took, ms.</summary>
    public async Task<(PaymentRequirements Accepted, double Ms)> QuoteAsync(string body, CancellationToken ct)
    {
        long start = Stopwatch.GetTimestamp();
        using HttpRequestMessage req = Request(body, key: null, payment: null);
        using HttpResponseMessage r = await Http.SendAsync(req, ct);
        await r.Content.ReadAsByteArrayAsync(ct);
        double ms = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        if (r.StatusCode != HttpStatusCode.PaymentRequired || !r.Headers.TryGetValues(X402Headers.PaymentRequiredName, out var values)
            || !X402Headers.TryDecodePaymentRequired(values.Single(), out PaymentRequired? required, out string error))
            throw new InvalidOperationException($"an unpaid request got {(int)r.StatusCode} without a readable {X402Headers.PaymentRequiredName}");
        _ = error;
        return (required!.Accepts[0], ms);
    }

    /// <summary>A signed payment of <paramref name="accepted"/> by payer <paramref name="payer"/>: its header, its key and its value.</summary>
    public SignedPayment Sign(PaymentRequirements accepted, int payer)
    {
        Span<byte> nonce = stackalloc byte[32];
        lock (_nonces) _nonces.NextBytes(nonce);
        long validBefore = _time.GetUtcNow().ToUnixTimeSeconds() + accepted.MaxTimeoutSeconds;
        long value = long.Parse(accepted.Amount, CultureInfo.InvariantCulture);
        Eip3009Signer signer = _payers[payer];
        EvmAddress payTo = EvmAddress.Parse(accepted.PayTo), asset = EvmAddress.Parse(accepted.Asset);
        var auth = new Eip3009Authorization(signer.Address, payTo, Uint256.FromInt64(value), Uint256.FromInt64(0), Uint256.FromInt64(validBefore), Bytes32.FromBytes(nonce));
        if (!X402Verifier.TryChainId(accepted.Network, out long chainId)) throw new InvalidOperationException($"the 402 names network '{accepted.Network}'");
        var domain = new ComputeGrid.Chain.X402.Eip712Domain(accepted.Extra!.Name!, accepted.Extra.Version!, chainId, asset);
        var wire = new ExactEvmAuthorization(signer.Address.ToChecksumString(), payTo.ToChecksumString(), accepted.Amount, "0",
            validBefore.ToString(CultureInfo.InvariantCulture), auth.Nonce.ToString());
        var payload = new PaymentPayload(2, accepted, new ExactEvmPayload(signer.Sign(domain, auth), wire));
        return new SignedPayment(X402Headers.Encode(payload), payload, new NonceKey(asset, signer.Address, auth.Nonce), payer, value);
    }

    /// <summary>
    /// <c>POST /x402/verify</c> of <paramref name="payment"/> (the facilitator API: the same checks as the paid path, the two
    /// chain reads included, nothing reserved, so the payment stays unused): whether it was valid, and the latency, ms.
    /// </summary>
    public async Task<(bool Valid, double Ms)> FacilitatorVerifyAsync(SignedPayment payment, CancellationToken ct)
    {
        string json = JsonSerializer.Serialize(new FacilitatorRequest(2, payment.Payload, payment.Payload.Accepted), X402Json.Default.FacilitatorRequest);
        long start = Stopwatch.GetTimestamp();
        using var req = new HttpRequestMessage(HttpMethod.Post, "/x402/verify") { Content = new StringContent(json, Encoding.UTF8, "application/json") };
        using HttpResponseMessage r = await Http.SendAsync(req, ct);
        string body = await r.Content.ReadAsStringAsync(ct);
        double ms = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        return (r.IsSuccessStatusCode && JsonSerializer.Deserialize(body, X402Json.Default.VerifyResponse)?.IsValid == true, ms);
    }

    /// <summary>One chain read (<c>eth_call</c> of the stablecoin's <c>balanceOf</c>) through the server's connection, ms.</summary>
    public async Task<double> ChainReadAsync(CancellationToken ct)
    {
        long start = Stopwatch.GetTimestamp();
        await Chain.Stablecoin.BalanceOfAsync(Chain.Info.PayTo).WaitAsync(ct);
        return Stopwatch.GetElapsedTime(start).TotalMilliseconds;
    }

    /// <summary>
    /// Signs (does not send) the settlement transaction of <paramref name="payment"/> as the settler does, through
    /// Nethereum's contract handler (its gas estimate, account nonce and fee lookups), but from dev account 0, which
    /// sends nothing in this bench, so the server's account nonce is untouched: ms.
    /// </summary>
    public async Task<double> SignSettlementAsync(SignedPayment payment)
    {
        _bystander ??= ChainDeployment.Connect(Anvil.RpcUrl, Anvil.ChainId, ChainDeployment.AnvilDevKeys[0]);
        ExactEvmAuthorization a = payment.Payload.Payload.Authorization!;
        byte[] nonce = new byte[32];
        payment.Key.Nonce.WriteTo(nonce);
        var message = new ComputeGrid.Chain.Contracts.TransferWithAuthorizationFunction
        {
            From = a.From, To = a.To, Value = new BigInteger(payment.Value), ValidAfter = BigInteger.Parse(a.ValidAfter, CultureInfo.InvariantCulture),
            ValidBefore = BigInteger.Parse(a.ValidBefore, CultureInfo.InvariantCulture), AuthorizationNonce = nonce, Signature = payment.Payload.Payload.Signature!.HexToByteArray(),
        };
        long start = Stopwatch.GetTimestamp();
        await _bystander.Eth.GetContractTransactionHandler<ComputeGrid.Chain.Contracts.TransferWithAuthorizationFunction>().SignTransactionAsync(payment.Key.Asset.ToChecksumString(), message);
        return Stopwatch.GetElapsedTime(start).TotalMilliseconds;
    }

    /// <summary>One 4 KiB write made durable (fsync) in the server's data folder: the disk's floor under each durable commit, ms.</summary>
    public double Fsync()
    {
        string path = Path.Combine(Dir, "bench-fsync.tmp");
        Span<byte> page = stackalloc byte[4096];
        long start = Stopwatch.GetTimestamp();
        using (var f = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1))
        {
            f.Write(page);
            f.Flush(flushToDisk: true);
        }
        double ms = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        File.Delete(path);
        return ms;
    }

    /// <summary>
    /// Deposits <paramref name="amount"/> into the vault for <see cref="DepositAccount"/> and waits until the server's
    /// bridge has credited it in the ledger (polled every 10 ms): ms from sending the deposit, and from its receipt.
    /// </summary>
    public async Task<(double FromSendMs, double FromMinedMs)> DepositToCreditAsync(long amount, CancellationToken ct)
    {
        long before = await DepositBalanceAsync(ct);
        long start = Stopwatch.GetTimestamp();
        await _vault.DepositAsync(amount, ComputeGrid.Server.Chain.BridgeIds.AccountToBytes32(DepositAccount)).WaitAsync(ct);
        long mined = Stopwatch.GetTimestamp();
        var deadline = DateTime.UtcNow + DepositWaitMax;
        while (await DepositBalanceAsync(ct) < before + amount)
        {
            if (DateTime.UtcNow > deadline) throw new InvalidOperationException($"a vault deposit was not credited within {DepositWaitMax.TotalSeconds} s");
            await Task.Delay(10, ct);
        }
        return (Stopwatch.GetElapsedTime(start).TotalMilliseconds, Stopwatch.GetElapsedTime(mined).TotalMilliseconds);
    }

    /// <summary>The longest a deposit may take to be credited before the bench gives up.</summary>
    public static readonly TimeSpan DepositWaitMax = TimeSpan.FromSeconds(120);

    /// <summary>The posted balance of <see cref="DepositAccount"/>, micro-USD.</summary>
    public async Task<long> DepositBalanceAsync(CancellationToken ct)
    {
        ComputeGrid.Ledger.Account[] a = await App.Services.GetRequiredService<ComputeGrid.Ledger.LedgerEngine>().LookupAccountsAsync([DepositAccount], ct);
        return a.Length == 0 ? 0 : checked((long)(a[0].CreditsPosted - a[0].DebitsPosted));
    }

    /// <summary>One keyed request of <paramref name="body"/>.</summary>
    public Task<Answer> KeyedAsync(string body, CancellationToken ct) => SendAsync(body, ApiKey, null, ct);

    /// <summary>One request of <paramref name="body"/> paid with <paramref name="payment"/>.</summary>
    public Task<Answer> PaidAsync(string body, SignedPayment payment, CancellationToken ct) => SendAsync(body, null, payment.Header, ct);

    private async Task<Answer> SendAsync(string body, string? key, string? payment, CancellationToken ct)
    {
        long start = Stopwatch.GetTimestamp();
        using HttpRequestMessage req = Request(body, key, payment);
        using HttpResponseMessage r = await Http.SendAsync(req, ct);
        await r.Content.ReadAsByteArrayAsync(ct);
        double ms = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        if (r.StatusCode != HttpStatusCode.OK) return new Answer((int)r.StatusCode, ms, 0, 0, null);
        double Ms(string header) => double.Parse(r.Headers.GetValues(header).Single(), CultureInfo.InvariantCulture);
        string? tx = null;
        if (payment is not null)
        {
            // A paid answer must say where its settlement went; without a transaction hash it is not counted as paid.
            if (!r.Headers.TryGetValues(X402Headers.PaymentResponseName, out var values)
                || !X402Headers.TryDecodeSettleResponse(values.Single(), out SettleResponse? settled, out _) || !settled!.Success || settled.Transaction.Length == 0)
                return new Answer(-200, ms, 0, 0, null);
            tx = settled.Transaction;
        }
        return new Answer(200, ms, Ms("X-CG-Model-Ms"), Ms("X-CG-Simulated-Network-Ms"), tx);
    }

    private static HttpRequestMessage Request(string body, string? key, string? payment)
    {
        var req = new HttpRequestMessage(HttpMethod.Post, "/v1/embeddings") { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        req.Headers.Add("X-Region", Region);
        if (key is not null) req.Headers.Authorization = new("Bearer", key);
        if (payment is not null) req.Headers.TryAddWithoutValidation(X402Headers.PaymentSignatureName, payment);
        return req;
    }

    /// <summary>An embeddings body of one sentence.</summary>
    public static string Body(string sentence) => $$"""{"model":"all-MiniLM-L6-v2","input":{{JsonSerializer.Serialize(sentence)}},"encoding_format":"base64"}""";

    // As an operator would: the first operator's key from the data folder creates and funds the keyed customer.
    private async Task<(string Key, ulong Id)> CustomerAsync(string name, bool fund, CancellationToken ct)
    {
        string token = (await File.ReadAllTextAsync(Path.Combine(Dir, ComputeGrid.Server.Trust.OperatorKeyFile.FileName), ct)).Trim();
        using var create = new HttpRequestMessage(HttpMethod.Post, "/api/customers") { Content = JsonContent.Create(new { name, region = Region }) };
        create.Headers.Authorization = new("Bearer", token);
        using HttpResponseMessage created = await Http.SendAsync(create, ct);
        created.EnsureSuccessStatusCode();
        JsonElement root = JsonDocument.Parse(await created.Content.ReadAsStringAsync(ct)).RootElement;
        ulong id = root.GetProperty("principal").GetProperty("id").GetUInt64();
        if (!fund) return (root.GetProperty("api_key").GetString()!, id);
        using var funding = new HttpRequestMessage(HttpMethod.Post, $"/api/customers/{id}/fund") { Content = JsonContent.Create(new { amount = 1_000_000_000_000L, funding_id = "bench-chain" }) };
        funding.Headers.Authorization = new("Bearer", token);
        using HttpResponseMessage funded = await Http.SendAsync(funding, ct);
        funded.EnsureSuccessStatusCode();
        return (root.GetProperty("api_key").GetString()!, id);
    }

    /// <summary>Stops the server, then Anvil; the data folder stays for whoever named it.</summary>
    public async ValueTask DisposeAsync()
    {
        if (App is not null)
        {
            await App.StopAsync();
            await App.DisposeAsync();
        }
        Http?.Dispose();
        foreach (Eip3009Signer p in _payers) p.Dispose();
        Anvil.Dispose();
    }
}

/// <summary>A signed x402 payment: the PAYMENT-SIGNATURE header and its payload, the authorization's key, the payer's index and the value in micro-USD.</summary>
internal sealed record SignedPayment(string Header, PaymentPayload Payload, NonceKey Key, int Payer, long Value);

/// <summary>
/// One answer: the status (200, another HTTP status, or −200 for a paid 200 without a settlement hash), the latency the
/// client saw, the node's model time and the simulated network (ms, from the receipt headers), and the settlement's
/// transaction hash of a paid answer.
/// </summary>
internal sealed record Answer(int Status, double Ms, double ModelMs, double NetworkMs, string? TxHash)
{
    /// <summary>Latency less the model and the simulated network: what the server's path itself took, ms.</summary>
    public double PathMs => Ms - ModelMs - NetworkMs;
}
