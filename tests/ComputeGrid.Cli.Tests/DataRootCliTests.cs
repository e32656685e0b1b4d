namespace ComputeGrid.Cli.Tests;

/// <summary><c>--data-root</c> and <c>COMPUTEGRID_DATA_ROOT</c>: where the real data files come from, for every command.</summary>
public sealed class DataRootCliTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("cg-data-root-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static string Site => Path.Combine(CliRunner.RepoRoot(), "examples", "sites", "ercot-west-reference.json");

    // A short backtest that reads four data files (prices, system load, Bitcoin, miners).
    private static readonly string[] Week = ["--from", "2021-08-23T05:00:00Z", "--to", "2021-08-25T05:00:00Z", "--no-plots", "--no-optimum"];

    private static string OneLineError((int Code, string Out, string Err) r)
    {
        Assert.True(r.Code == 2, $"exit {r.Code}: {r.Err}");
        string line = Assert.Single(r.Err.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("error: ", line);
        return line;
    }

    private string CopyOfTheData()
    {
        string root = Directory.CreateDirectory(Path.Combine(_dir, "data-copy")).FullName;
        foreach (string file in Directory.GetFiles(Path.Combine(CliRunner.RepoRoot(), "data")))
            File.Copy(file, Path.Combine(root, Path.GetFileName(file)));
        return root;
    }

    [Fact]
    public async Task A_data_root_given_by_option_or_environment_is_where_the_data_files_are_read()
    {
        string root = CopyOfTheData();
        var r = await CliRunner.RunAsync(["backtest", Site, .. Week, "--out", Path.Combine(_dir, "a"), "--data-root", root]);
        Assert.True(r.Code == 0, r.Err);
        r = await CliRunner.RunAsync(new Dictionary<string, string?> { ["COMPUTEGRID_DATA_ROOT"] = root }, ["backtest", Site, .. Week, "--out", Path.Combine(_dir, "b")]);
        Assert.True(r.Code == 0, r.Err);
    }

    [Fact]
    public async Task A_data_root_that_lacks_a_file_is_an_error_naming_the_root_not_a_fall_back_to_the_repository()
    {
        string root = CopyOfTheData();
        File.Delete(Path.Combine(root, "btc_daily_coinmetrics_2020-2026.csv"));
        // The repository's data/ above the build output holds the file; an explicit root still must not reach it.
        string line = OneLineError(await CliRunner.RunAsync(["backtest", Site, .. Week, "--out", Path.Combine(_dir, "a"), "--data-root", root]));
        Assert.Contains("btc_daily_coinmetrics_2020-2026.csv", line);
        Assert.Contains(root, line);
        line = OneLineError(await CliRunner.RunAsync(new Dictionary<string, string?> { ["COMPUTEGRID_DATA_ROOT"] = root }, ["backtest", Site, .. Week, "--out", Path.Combine(_dir, "b")]));
        Assert.Contains(root, line);
        // The server reads the inter-region latencies at its start: same rule, one line, exit 2.
        line = OneLineError(await CliRunner.RunAsync(["serve", "--urls", "http://127.0.0.1:0", "--node-urls", "", "--no-sites", "--data-dir", Path.Combine(_dir, "serve"), "--data-root", _dir]));
        Assert.Contains("ibm_cloud_vpc_inter_region_rtt_ms.csv", line);
        Assert.Contains(_dir, line);
    }

    [Fact]
    public async Task A_data_root_folder_that_does_not_exist_exits_2_with_one_line_before_the_command_runs()
    {
        string missing = Path.Combine(_dir, "no-such-folder");
        // Recognised by every command, before or after the command's name.
        Assert.Contains("--data-root", OneLineError(await CliRunner.RunAsync("bench", "energy", "--quick", "--data-root", missing)));
        Assert.Contains(missing, OneLineError(await CliRunner.RunAsync("--data-root", missing, "serve", "--data-dir", Path.Combine(_dir, "serve"))));
        Assert.Contains(missing, OneLineError(await CliRunner.RunAsync("verify", "--ledger-dir", _dir, "--data-root", missing)));
        Assert.Contains("COMPUTEGRID_DATA_ROOT", OneLineError(await CliRunner.RunAsync(new Dictionary<string, string?> { ["COMPUTEGRID_DATA_ROOT"] = missing }, "backtest", Site)));
        Assert.Contains("--data-root needs a folder", OneLineError(await CliRunner.RunAsync("backtest", Site, "--data-root", " ")));
        Assert.False(Directory.Exists(Path.Combine(_dir, "serve")), "serve ran with a missing data root");
    }
}
