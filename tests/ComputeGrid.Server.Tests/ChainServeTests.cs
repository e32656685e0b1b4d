using System.Diagnostics;
using System.Net;
using System.Text.Json;
using ComputeGrid.Chain;
using ComputeGrid.Server.Chain;

namespace ComputeGrid.Server.Tests;

/// <summary>
/// <c>serve</c> with a chain: a demo Anvil started, deployed and stopped by the server, or an external chain (an Anvil the
/// test starts) whose deployment is recorded in <c>DATA/chain.json</c> and reused on restart. The chain tools are
/// installed through <see cref="ChainTools.Ensure"/>, not skipped.
/// </summary>
public sealed class ChainServeTests : IDisposable
{
    private readonly string _dir = TestServer.TempDir("chain-serve");

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    [Fact]
    public async Task ServeWithADemoChainWritesChainJsonAnswersApiChainAndStopsAnvilWithIt()
    {
        ChainTools.Ensure();
        var app = ServerHost.Build(new ServerOptions { Urls = "http://127.0.0.1:0", DataDirectory = _dir, Chain = ChainOptions.Demo() });
        await app.StartAsync();
        var chain = (ChainConnection)app.Services.GetService(typeof(ChainConnection))!;
        int anvilPid = chain.Anvil!.ProcessId;
        try
        {
            ChainInfo written = ChainDeployment.Read(Path.Combine(_dir, "chain.json"));
            Assert.Equal(AnvilProcess.DefaultChainId, written.ChainId);
            Assert.Equal(ChainDeployment.AddressOf(ChainDeployment.AnvilDevKeys[0]), written.PayTo, StringComparer.OrdinalIgnoreCase);
            Assert.Equal(ChainOptions.AnvilConfirmationsDefault, chain.Confirmations);

            // Public: no key presented.
            using var anonymous = TestServer.Client(ServerHost.Endpoints(app).ApiUrl, key: null);
            var r = await anonymous.GetAsync("/api/chain");
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
            JsonElement served = JsonDocument.Parse(await r.Content.ReadAsStringAsync()).RootElement;
            Assert.Equal(written.RpcUrl, served.GetProperty("rpcUrl").GetString());
            Assert.Equal(written.ChainId, served.GetProperty("chainId").GetInt64());
            Assert.Equal(written.Stablecoin, served.GetProperty("stablecoin").GetString());
            Assert.Equal(written.Vault, served.GetProperty("vault").GetString());
            Assert.Equal(written.Anchor, served.GetProperty("anchor").GetString());
            Assert.Equal(written.PayTo, served.GetProperty("payTo").GetString());

            // The ten dev accounts hold 1,000 test USDC each on the chain the file names.
            foreach (string key in ChainDeployment.AnvilDevKeys)
                Assert.Equal(ChainDeployment.DevFundingMicro, await chain.Stablecoin.BalanceOfAsync(ChainDeployment.AddressOf(key)));
        }
        finally
        {
            await app.StopAsync();
            await app.DisposeAsync();
        }
        Assert.True(HasExited(anvilPid), $"Anvil (pid {anvilPid}) still runs after the server stopped");
    }

    [Fact]
    public async Task ServeOnAnExternalChainDeploysOnceAndReusesTheAddressesAfterARestart()
    {
        await using AnvilProcess anvil = await AnvilProcess.StartAsync();
        string keyFile = Path.Combine(_dir, "..", Path.GetFileName(_dir) + ".key");
        File.WriteAllText(keyFile, ChainDeployment.AnvilDevKeys[3][2..] + "\n"); // without 0x: both forms are read
        try
        {
            var options = new ServerOptions
            {
                Urls = "http://127.0.0.1:0", DataDirectory = _dir, Chain = new ChainOptions { RpcUrl = anvil.RpcUrl, KeyFile = keyFile, Confirmations = 3 },
            };
            ChainInfo first;
            var app = ServerHost.Build(options);
            await app.StartAsync();
            try
            {
                var chain = (ChainConnection)app.Services.GetService(typeof(ChainConnection))!;
                Assert.Null(chain.Anvil);
                Assert.Equal(3, chain.Confirmations);
                first = ChainDeployment.Read(Path.Combine(_dir, "chain.json"));
                Assert.Equal(ChainDeployment.AddressOf(ChainDeployment.AnvilDevKeys[3]), first.PayTo, StringComparer.OrdinalIgnoreCase);
                Assert.Equal(chain.Account, first.PayTo, StringComparer.OrdinalIgnoreCase);
            }
            finally
            {
                await app.StopAsync();
                await app.DisposeAsync();
            }
            long blockAfterDeploy = await anvil.BlockNumberAsync();

            app = ServerHost.Build(options);
            await app.StartAsync();
            try
            {
                using var anonymous = TestServer.Client(ServerHost.Endpoints(app).ApiUrl, key: null);
                JsonElement served = JsonDocument.Parse(await anonymous.GetStringAsync("/api/chain")).RootElement;
                Assert.Equal(first.Stablecoin, served.GetProperty("stablecoin").GetString());
                Assert.Equal(first.Vault, served.GetProperty("vault").GetString());
                Assert.Equal(first.Anchor, served.GetProperty("anchor").GetString());
            }
            finally
            {
                await app.StopAsync();
                await app.DisposeAsync();
            }
            // The restart deployed nothing: no block was mined.
            Assert.Equal(blockAfterDeploy, await anvil.BlockNumberAsync());

            // Another account's key on the same folder is refused (the contracts are the first account's).
            File.WriteAllText(keyFile, ChainDeployment.AnvilDevKeys[4]);
            var e = Assert.Throws<ServerStartException>(() => ServerHost.Build(options));
            Assert.Contains("--chain-key", e.Message);
        }
        finally
        {
            File.Delete(keyFile);
        }
    }

    [Fact]
    public async Task ApiChainIsANotFoundProblemWithoutAChain()
    {
        var (app, _) = await TestServer.StartInProcessAsync(_dir);
        try
        {
            using var anonymous = TestServer.Client(ServerHost.Endpoints(app).ApiUrl, key: null);
            var r = await anonymous.GetAsync("/api/chain");
            Assert.Equal(HttpStatusCode.NotFound, r.StatusCode);
            Assert.Equal("application/problem+json", r.Content.Headers.ContentType?.MediaType);
            Assert.False(File.Exists(Path.Combine(_dir, "chain.json")));
        }
        finally
        {
            await app.StopAsync();
            await app.DisposeAsync();
        }
    }

    [Theory]
    [InlineData("--chain", "http://127.0.0.1:1")]
    [InlineData("--chain", "ftp://example.org", "--chain-key", "k")]
    [InlineData("--chain-key", "k")]
    [InlineData("--chain-confirmations", "2")]
    [InlineData("--chain-block-time", "2")]
    [InlineData("--chain", "http://127.0.0.1:1", "--chain-key", "k", "--chain-block-time", "2")]
    [InlineData("--chain", "http://127.0.0.1:1", "--chain-key", "k", "--chain-confirmations", "0")]
    [InlineData("--chain", "http://127.0.0.1:1", "--chain-key", "/nonexistent/key")]
    public async Task BadChainFlagsExitWithTwoAndOneLine(params string[] flags)
    {
        string dll = Path.Combine(AppContext.BaseDirectory, "computegrid.dll");
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string a in (string[])[dll, "serve", "--urls", "http://127.0.0.1:0", "--node-urls", "", "--no-sites", "--data-dir", _dir, .. flags]) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        Task<string> stdout = p.StandardOutput.ReadToEndAsync();
        string stderr = await p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync();
        await stdout;
        Assert.Equal(2, p.ExitCode);
        string[] lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Single(lines);
        Assert.StartsWith("error: ", lines[0]);
    }

    private static bool HasExited(int pid)
    {
        try
        {
            using var p = Process.GetProcessById(pid);
            return p.HasExited;
        }
        catch (ArgumentException)
        {
            return true; // no such process
        }
    }
}
