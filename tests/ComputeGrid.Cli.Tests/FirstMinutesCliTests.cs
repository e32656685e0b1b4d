namespace ComputeGrid.Cli.Tests;

/// <summary>
/// The first minutes at the terminal, as a new user tries them: bare <c>computegrid</c>, <c>backtest</c> alone and by
/// site name, a site file with a typo, a replay start outside the data.
/// </summary>
public sealed class FirstMinutesCliTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "cg-first-" + Guid.NewGuid().ToString("N"));

    public FirstMinutesCliTests() => Directory.CreateDirectory(_dir);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static string OneErrorLine((int Code, string Out, string Err) r)
    {
        Assert.True(r.Code == 2, $"exit {r.Code}: {r.Out}{r.Err}");
        string line = Assert.Single(r.Err.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("error: ", line);
        return line;
    }

    [Fact]
    public async Task Bare_computegrid_prints_every_command_with_a_line_each_on_stderr_and_exits_2()
    {
        var r = await CliRunner.RunAsync();
        Assert.Equal(2, r.Code);
        Assert.Equal("", r.Out);
        Assert.DoesNotContain("Required command", r.Err);
        string[] lines = r.Err.Split('\n');
        Assert.Equal("usage: computegrid <command> [options]", lines[0]);
        foreach (string command in new[] { "serve", "backtest", "bench", "verify", "market", "node", "status", "sites", "nodes" })
            Assert.Contains(lines, l => l.StartsWith($"  {command} ", StringComparison.Ordinal) && l.Trim().Length > command.Length + 10);
        Assert.DoesNotContain(lines, l => l.StartsWith("  bench-probe", StringComparison.Ordinal)); // hidden
        Assert.All(lines, l => Assert.True(l.Length <= 80, $"wider than 80 columns: '{l}'"));
        // --help is asked for: it succeeds.
        Assert.Equal(0, (await CliRunner.RunAsync("--help")).Code);
    }

    [Fact]
    public async Task Backtest_alone_lists_the_sites_with_market_nodes_and_miners()
    {
        var r = await CliRunner.RunAsync("backtest");
        Assert.True(r.Code == 0, r.Err);
        string[][] rows = r.Out.Split('\n').Select(l => l.Split("  ", StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)).ToArray();
        Assert.Equal(["SITE", "MARKET", "GPUS", "NODES", "MINERS"], rows[0]);
        Assert.Contains(["ercot-west-reference", "ERCOT West LMP", "22,857", "0", "12,358"], rows);
        Assert.Contains(rows, row => row.Length == 5 && row[0] == "caiso-sp15" && row[1] == "CAISO SP-15 LMP");
        Assert.Contains(rows, row => row.Length == 5 && row[0] == "jepx-tokyo" && row[1].StartsWith("JEPX", StringComparison.Ordinal));
        Assert.Contains("computegrid backtest NAME", r.Out);
    }

    [Fact]
    public async Task Backtest_takes_a_site_by_name_as_serve_does_and_an_unknown_name_is_one_line()
    {
        string outDir = Path.Combine(_dir, "out");
        var r = await CliRunner.RunAsync("backtest", "ercot-west-reference", "--from", "2021-08-25", "--to", "2021-08-26", "--no-optimum", "--no-plots", "--out", outDir);
        Assert.True(r.Code == 0, r.Err);
        Assert.True(File.Exists(Path.Combine(outDir, "ercot-west-reference", "2021-08-25_2021-08-26", "summary.json")));

        string line = OneErrorLine(await CliRunner.RunAsync("backtest", "ercot-east"));
        Assert.Contains("no such site file or example: ercot-east", line);
        Assert.Contains("caiso-sp15", line);
    }

    [Fact]
    public async Task A_malformed_site_file_is_one_line_naming_the_file_line_and_column_in_backtest_and_serve()
    {
        string bad = Path.Combine(_dir, "typo.json");
        string reference = File.ReadAllText(Path.Combine(CliRunner.RepoRoot(), "examples", "sites", "ercot-west-reference.json"));
        // A comma doubled after the pue (line and column found from the text, 1-based as editors count).
        string broken = reference.Replace("\"pue\": 1.10,", "\"pue\": 1.10,,");
        File.WriteAllText(bad, broken);
        int at = broken.IndexOf(",,", StringComparison.Ordinal) + 1;
        int line = broken[..at].Count(c => c == '\n') + 1, column = at - (broken.LastIndexOf('\n', at - 1) + 1) + 1;

        string backtest = OneErrorLine(await CliRunner.RunAsync("backtest", bad));
        Assert.Contains(bad, backtest);
        Assert.Contains($"(line {line}, column {column})", backtest);

        string serve = OneErrorLine(await CliRunner.RunAsync("serve", "--urls", "http://127.0.0.1:0", "--node-urls", "", "--data-dir", Path.Combine(_dir, "data"), "--site", bad));
        Assert.Contains(bad, serve);
        Assert.Contains($"(line {line}, column {column})", serve);
    }

    [Fact]
    public async Task A_replay_start_or_period_outside_the_data_is_one_line_naming_the_datas_range()
    {
        // The reference site's prices: ERCOT's 2021 in Texas time, 06:00 UTC on 1 January 2021 to the same in 2022.
        const string Range = "2021-01-01T06:00Z to 2022-01-01T06:00Z";
        string serve = OneErrorLine(await CliRunner.RunAsync("serve", "--urls", "http://127.0.0.1:0", "--node-urls", "", "--data-dir", Path.Combine(_dir, "data"),
            "--site-start", "2019-06-01"));
        Assert.Contains("--site-start 2019-06-01T00:00Z is outside site ercot-west-reference's data", serve);
        Assert.Contains(Range, serve);
        serve = OneErrorLine(await CliRunner.RunAsync("serve", "--urls", "http://127.0.0.1:0", "--node-urls", "", "--data-dir", Path.Combine(_dir, "data"),
            "--site", "caiso-sp15", "--site-start", "2022-01-01T08:00Z"));
        Assert.Contains("outside site caiso-sp15's data", serve);

        string backtest = OneErrorLine(await CliRunner.RunAsync("backtest", "ercot-west-reference", "--from", "2020-12-01", "--to", "2021-01-10"));
        Assert.Contains("--from 2020-12-01T00:00Z is outside the data", backtest);
        Assert.Contains(Range, backtest);
        backtest = OneErrorLine(await CliRunner.RunAsync("backtest", "ercot-west-reference", "--from", "2021-12-20", "--to", "2022-02-01"));
        Assert.Contains("--to 2022-02-01T00:00Z is outside the data", backtest);
    }

    [Fact]
    public async Task A_demo_seed_without_the_demo_is_one_line_not_silently_ignored()
    {
        string serve = OneErrorLine(await CliRunner.RunAsync("serve", "--urls", "http://127.0.0.1:0", "--node-urls", "", "--data-dir", Path.Combine(_dir, "data"), "--seed", "7"));
        Assert.Contains("--seed applies only with --demo", serve);
    }
}
