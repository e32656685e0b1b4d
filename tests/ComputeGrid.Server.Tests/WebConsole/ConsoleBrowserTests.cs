using System.Diagnostics;
using Xunit.Abstractions;

namespace ComputeGrid.Server.Tests.WebConsole;

/// <summary>
/// The console in a real headless Chromium (Debian's, driven by playwright-core): <c>console/e2e/console.e2e.mjs</c>
/// against <c>computegrid serve --demo --site-speed 600</c>: the demo world (three live sites, inference nodes, actors). The script signs in, opens every page,
/// checks a live figure changes and equals the API's at the same sample, places and cancels an order, manages a key,
/// and saves screenshots (desktop and phone) under this test's output: <c>TestResults/console-e2e/</c> beside the
/// test assembly. Where chromium cannot be installed (no root, no apt), the test is reported SKIPPED with the reason.
/// </summary>
public sealed class ConsoleBrowserTests(ITestOutputHelper output)
{
    [SkippableFact]
    public async Task The_console_signs_in_shows_live_figures_that_agree_with_the_API_and_trades_in_a_real_browser()
    {
        string console = ConsoleDirectory();
        var (installCode, installOut) = await RunAsync("bash", [Path.Combine(console, "e2e", "install-chromium.sh")], console, TimeSpan.FromMinutes(5));
        Skip.If(installCode == 3, $"chromium is not available: {installOut.Trim()}");
        Assert.True(installCode == 0, $"install-chromium.sh failed ({installCode}): {installOut}");
        var (npmCode, npmOut) = await RunAsync("bash", [Path.Combine(console, "install.sh")], console, TimeSpan.FromMinutes(10));
        Assert.True(npmCode == 0, $"console/install.sh failed ({npmCode}): {npmOut}");

        string dir = TestServer.TempDir("console-e2e");
        string shots = Path.Combine(AppContext.BaseDirectory, "TestResults", "console-e2e", DateTime.UtcNow.ToString("yyyyMMdd-HHmmss", System.Globalization.CultureInfo.InvariantCulture));
        // The demo world: three live sites, seven model nodes, the demo Anvil and its seeded actors trading and paying.
        Skip.IfNot(ComputeGrid.Chain.ChainTools.TryEnsure(out _, out string chainMissing), $"the demo chain (Anvil) is not available: {chainMissing}");
        var (server, url) = await TestServer.StartChildAsync(dir, 0, "http://127.0.0.1:0", (IReadOnlyDictionary<string, string>?)null, "--demo", "--site-speed", "600");
        try
        {
            var (code, text) = await RunAsync("node", [Path.Combine(console, "e2e", "console.e2e.mjs")], console, TimeSpan.FromMinutes(7),
                new Dictionary<string, string> { ["CG_URL"] = url, ["CG_OPERATOR_KEY"] = TestServer.OperatorKey(dir), ["CG_E2E_OUT"] = shots });
            output.WriteLine(text);
            output.WriteLine($"screenshots: {shots}");
            Assert.True(code == 0, $"the browser test failed (exit {code}):\n{text}");
            Assert.True(Directory.GetFiles(shots, "*.png").Length >= 8, "every page's screenshot is saved, desktop and phone");
        }
        finally
        {
            server.Kill(entireProcessTree: true);
            await server.WaitForExitAsync();
            Directory.Delete(dir, recursive: true);
        }
    }

    // The repository's console/ folder: a walk up from the test assembly to the folder holding ComputeGrid.slnx.
    private static string ConsoleDirectory()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "ComputeGrid.slnx"))) return Path.Combine(d.FullName, "console");
        throw new DirectoryNotFoundException("ComputeGrid.slnx not found above " + AppContext.BaseDirectory);
    }

    private static async Task<(int Code, string Output)> RunAsync(string file, string[] args, string workingDirectory, TimeSpan timeout, IReadOnlyDictionary<string, string>? environment = null)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = workingDirectory };
        foreach (string a in args) psi.ArgumentList.Add(a);
        foreach (var (k, v) in environment ?? new Dictionary<string, string>()) psi.Environment[k] = v;
        using var p = Process.Start(psi)!;
        Task<string> stdout = p.StandardOutput.ReadToEndAsync();
        Task<string> stderr = p.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout);
        try { await p.WaitForExitAsync(cts.Token); }
        catch (OperationCanceledException)
        {
            p.Kill(entireProcessTree: true);
            return (-1, $"timed out after {timeout}: {await stdout}{await stderr}");
        }
        return (p.ExitCode, await stdout + await stderr);
    }
}
