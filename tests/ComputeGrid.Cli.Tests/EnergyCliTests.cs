using System.Diagnostics;
using System.Net.Http;
using System.Text.Json;

namespace ComputeGrid.Cli.Tests;

/// <summary><c>computegrid backtest</c>, <c>bench energy</c> and the live site of <c>serve</c>, run as a user runs them.</summary>
public sealed class EnergyCliTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "cg-energy-cli-" + Guid.NewGuid().ToString("N"));

    public EnergyCliTests() => Directory.CreateDirectory(_dir);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static string RepoFile(string relative)
    {
        for (DirectoryInfo? d = new(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "ComputeGrid.slnx"))) return Path.Combine(d.FullName, relative);
        throw new DirectoryNotFoundException("repository root not found");
    }

    private static void AssertOneLineError((int Code, string Out, string Err) r, string contains)
    {
        Assert.True(r.Code == 2, $"exit {r.Code}: {r.Err}");
        var lines = r.Err.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Single(lines);
        Assert.StartsWith("error: ", lines[0]);
        Assert.Contains(contains, lines[0]);
    }

    [Fact]
    public async Task Backtest_of_a_week_prints_the_summary_and_writes_csv_and_plots()
    {
        string outDir = Path.Combine(_dir, "out");
        var r = await CliRunner.RunAsync("backtest", RepoFile("examples/sites/ercot-west-reference.json"), "--from", "2021-08-23T05:00:00Z", "--to", "2021-08-30T05:00:00Z", "--out", outDir);
        Assert.True(r.Code == 0, r.Err);
        // Both bounds and the whole-miner schedule under the integer one are rows beside the policies.
        foreach (string policy in new[] { "optimum (LP)", "integer bound (day windows)", "whole-miner foresight", "controller", "day-ahead", "myopic", "always-on", "threshold" })
            Assert.Contains("\n  " + policy + " ", r.Out);
        // The headline names the bound the score is against: the tighter, the integer one.
        Assert.Contains("controller captures", r.Out);
        Assert.Contains("of the controllable value (integer bound (day windows) − always-on = ", r.Out);
        Assert.Contains("the bound: integer bound (day windows), the tightest proved", r.Out);
        Assert.Contains("controller's gap against whole-miner foresight (USD), by local month and cause", r.Out);
        Assert.Contains("\n    2021-08 ", r.Out);
        Assert.Contains("100% done", r.Err); // the progress bar (plain lines when stderr is not a terminal)
        // The run's own folder: site, then the period run (UTC, with the time when it is not midnight).
        string site = Path.Combine(outDir, "ercot-west-reference", "2021-08-23T0500_2021-08-30T0500");
        Assert.Contains($"files in {site}{Path.DirectorySeparatorChar}: intervals.csv, summary.json, week-price-vs-power.png, profit.png, policies.png", r.Out);
        Assert.Equal(1 + 672, File.ReadLines(Path.Combine(site, "intervals.csv")).Count());
        foreach (string png in new[] { "week-price-vs-power.png", "profit.png", "policies.png" })
        {
            byte[] bytes = File.ReadAllBytes(Path.Combine(site, png));
            Assert.True(bytes.Length > 10_000 && bytes[1] == (byte)'P' && bytes[2] == (byte)'N' && bytes[3] == (byte)'G', png);
        }
        using var summary = JsonDocument.Parse(File.ReadAllText(Path.Combine(site, "summary.json")));
        Assert.True(summary.RootElement.GetProperty("policies").GetProperty("controller").GetProperty("captured_vs_optimum").GetDouble() is > 0.9 and <= 1.0);
        Assert.Equal(0.0, summary.RootElement.GetProperty("policies").GetProperty("always-on").GetProperty("controllable_captured").GetDouble());
        Assert.True(summary.RootElement.GetProperty("controllable_value_micro_usd").GetInt64() > 0);
        // The bounds, which one the shares are taken of, and what it took.
        JsonElement root = summary.RootElement;
        long lpBound = root.GetProperty("lp_bound_micro_usd").GetInt64(), integerBound = root.GetProperty("integer_upper_bound_micro_usd").GetInt64();
        long wholeMiners = root.GetProperty("whole_miner_value_micro_usd").GetInt64();
        Assert.True(wholeMiners <= integerBound && integerBound < lpBound, $"{wholeMiners} ≤ {integerBound} < {lpBound}");
        Assert.Equal("integer bound (day windows)", root.GetProperty("scored_against").GetString());
        Assert.Equal(integerBound, root.GetProperty("scored_bound_micro_usd").GetInt64());
        long alwaysOn = root.GetProperty("policies").GetProperty("always-on").GetProperty("value_micro_usd").GetInt64();
        Assert.Equal(integerBound - alwaysOn, root.GetProperty("controllable_value_micro_usd").GetInt64());
        Assert.True(root.GetProperty("integer_bound_seconds").GetDouble() > 0);
        Assert.Equal(7, root.GetProperty("integer_bound").GetProperty("windows").GetInt32());
        Assert.Equal(wholeMiners, root.GetProperty("policies").GetProperty("whole-miner foresight").GetProperty("value_micro_usd").GetInt64());
        // The controller's gap by month adds up to the whole-miner schedule's value minus the controller's.
        JsonElement gap = Assert.Single(root.GetProperty("controller_gap_by_month").EnumerateArray());
        Assert.Equal("2021-08", gap.GetProperty("month").GetString());
        Assert.Equal(wholeMiners - root.GetProperty("policies").GetProperty("controller").GetProperty("value_micro_usd").GetInt64(), gap.GetProperty("gap_micro_usd").GetInt64());
    }

    [Fact]
    public async Task Backtest_without_the_integer_bound_scores_against_the_lp_and_says_so()
    {
        string outDir = Path.Combine(_dir, "lp");
        var r = await CliRunner.RunAsync("backtest", RepoFile("examples/sites/ercot-west-reference.json"), "--from", "2021-08-23", "--to", "2021-08-25", "--no-integer-bound", "--no-plots", "--out", outDir);
        Assert.True(r.Code == 0, r.Err);
        Assert.DoesNotContain("integer bound", r.Out);
        Assert.DoesNotContain("whole-miner foresight", r.Out);
        Assert.Contains("of the controllable value (optimum (LP) − always-on = ", r.Out);
        using var summary = JsonDocument.Parse(File.ReadAllText(Path.Combine(outDir, "ercot-west-reference", "2021-08-23_2021-08-25", "summary.json")));
        JsonElement root = summary.RootElement;
        Assert.Equal("optimum (LP)", root.GetProperty("scored_against").GetString());
        Assert.Equal(root.GetProperty("lp_bound_micro_usd").GetInt64(), root.GetProperty("scored_bound_micro_usd").GetInt64());
        Assert.Equal(JsonValueKind.Null, root.GetProperty("integer_upper_bound_micro_usd").ValueKind);
        Assert.Equal(JsonValueKind.Null, root.GetProperty("integer_bound").ValueKind);
        Assert.False(root.GetProperty("policies").TryGetProperty("whole-miner foresight", out _));
    }

    // The files of a folder with their contents and write times, to tell that nothing changed.
    private static Dictionary<string, (string Hash, DateTime Written)> Snapshot(string dir) =>
        Directory.GetFiles(dir, "*", SearchOption.AllDirectories).ToDictionary(
            f => Path.GetRelativePath(dir, f),
            f => (Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(f))), File.GetLastWriteTimeUtc(f)));

    [Fact]
    public async Task Backtest_runs_have_their_own_folders_and_a_second_run_into_one_is_refused_unless_overwrite()
    {
        string outDir = Path.Combine(_dir, "runs");
        string site = RepoFile("examples/sites/ercot-west-reference.json");
        string[] first = ["backtest", site, "--from", "2021-08-23", "--to", "2021-08-25", "--no-optimum", "--out", outDir];
        var r = await CliRunner.RunAsync(first);
        Assert.True(r.Code == 0, r.Err);
        string folder = Path.Combine(outDir, "ercot-west-reference", "2021-08-23_2021-08-25");
        foreach (string file in new[] { "intervals.csv", "summary.json", "week-price-vs-power.png", "profit.png", "policies.png" })
            Assert.True(File.Exists(Path.Combine(folder, file)), file);
        var before = Snapshot(outDir);

        // The same period again: refused before anything runs, one line naming the folder and the way out; nothing changed.
        r = await CliRunner.RunAsync(first);
        AssertOneLineError(r, folder);
        Assert.Contains("already holds a backtest of this site and period", r.Err);
        Assert.Contains("--overwrite", r.Err);
        Assert.Contains("--out", r.Err);
        Assert.Equal("", r.Out);
        Assert.Equal(before, Snapshot(outDir));

        // --overwrite replaces the run (every file written anew).
        r = await CliRunner.RunAsync([.. first, "--overwrite"]);
        Assert.True(r.Code == 0, r.Err);
        var after = Snapshot(outDir);
        Assert.Equal(before.Keys.Order(), after.Keys.Order());
        Assert.All(after, f => Assert.True(f.Value.Written > before[f.Key].Written, f.Key));

        // --overwrite without plots leaves no plot of the run it replaced.
        r = await CliRunner.RunAsync([.. first, "--overwrite", "--no-plots"]);
        Assert.True(r.Code == 0, r.Err);
        Assert.Equal(["intervals.csv", "summary.json"], Directory.GetFiles(folder).Select(Path.GetFileName).Order());

        // Another period: another folder, the first left as it was.
        before = Snapshot(folder);
        r = await CliRunner.RunAsync("backtest", site, "--from", "2021-08-25T06:00:00Z", "--to", "2021-08-27", "--no-optimum", "--no-plots", "--out", outDir);
        Assert.True(r.Code == 0, r.Err);
        Assert.True(File.Exists(Path.Combine(outDir, "ercot-west-reference", "2021-08-25T0600_2021-08-27", "summary.json")));
        Assert.Equal(before, Snapshot(folder));
        Assert.Equal(2, Directory.GetDirectories(Path.Combine(outDir, "ercot-west-reference")).Length);
    }

    [Fact]
    public async Task Backtest_checks_every_sites_folder_before_anything_runs_or_is_written()
    {
        string outDir = Path.Combine(_dir, "taken");
        // The second site's folder holds part of a run (its CSV): the first site must not run or write either.
        string taken = Path.Combine(outDir, "ercot-west-reference", "2021-08-23_2021-08-25");
        Directory.CreateDirectory(taken);
        File.WriteAllText(Path.Combine(taken, "intervals.csv"), "an earlier run\n");
        var r = await CliRunner.RunAsync("backtest", RepoFile("examples/sites/caiso-sp15.json"), RepoFile("examples/sites/ercot-west-reference.json"),
            "--from", "2021-08-23", "--to", "2021-08-25", "--no-optimum", "--no-plots", "--out", outDir);
        AssertOneLineError(r, taken);
        Assert.Contains("holds part of a backtest (intervals.csv)", r.Err);
        Assert.DoesNotContain("%", r.Err); // no progress: nothing ran
        Assert.False(Directory.Exists(Path.Combine(outDir, "caiso-sp15")));
        Assert.Equal("an earlier run\n", File.ReadAllText(Path.Combine(taken, "intervals.csv")));
        Assert.Single(Directory.GetFiles(taken));

        // The same site twice over the same period would write one folder twice.
        string ercot = RepoFile("examples/sites/ercot-west-reference.json");
        r = await CliRunner.RunAsync("backtest", ercot, ercot, "--from", "2021-08-25", "--to", "2021-08-26", "--no-optimum", "--no-plots", "--out", outDir);
        AssertOneLineError(r, "two sites would write to");
        Assert.False(Directory.Exists(Path.Combine(outDir, "ercot-west-reference", "2021-08-25_2021-08-26")));
    }

    [Fact]
    public async Task Backtest_bad_input_exits_2_with_one_line()
    {
        AssertOneLineError(await CliRunner.RunAsync("backtest", Path.Combine(_dir, "missing.json")), "no such site file");
        string bad = Path.Combine(_dir, "bad.json");
        File.WriteAllText(bad, File.ReadAllText(RepoFile("examples/sites/ercot-west-reference.json")).Replace("\"pue\": 1.10", "\"pue\": 7"));
        AssertOneLineError(await CliRunner.RunAsync("backtest", bad), "pue");
        string tooSmall = Path.Combine(_dir, "small.json");
        File.WriteAllText(tooSmall, File.ReadAllText(RepoFile("examples/sites/ercot-west-reference.json")).Replace("\"interconnectKw\": 50000", "\"interconnectKw\": 12000"));
        AssertOneLineError(await CliRunner.RunAsync("backtest", tooSmall), "exceeds interconnectKw");
        AssertOneLineError(await CliRunner.RunAsync("backtest", RepoFile("examples/sites/ercot-west-reference.json"), "--from", "2021-08-30", "--to", "2021-08-01"), "--to");
        AssertOneLineError(await CliRunner.RunAsync("backtest", RepoFile("examples/sites/ercot-west-reference.json"), "--from", "2030-01-01", "--to", "2030-02-01"), "prices");
        AssertOneLineError(await CliRunner.RunAsync("backtest", RepoFile("examples/sites/ercot-west-reference.json"), "--from", "yesterday"), "--from");
    }

    [Fact]
    public async Task Bench_energy_quick_scores_the_reference_year_and_ends_with_one_json_object()
    {
        var r = await CliRunner.RunAsync("bench", "energy", "--quick");
        Assert.True(r.Code == 0, r.Err);
        string last = r.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries)[^1];
        using var doc = JsonDocument.Parse(last);
        Assert.Equal("energy", doc.RootElement.GetProperty("bench").GetString());
        var m = doc.RootElement.GetProperty("metrics");
        foreach (var key in new[] { "value_optimum_usd", "value_controller_usd", "value_myopic_usd", "value_always_on_usd", "value_threshold_usd", "captured_vs_optimum", "lp_seconds_year", "controller_decisions_per_s" })
            Assert.True(m.GetProperty(key).GetDouble() > 0, key);
        Assert.Equal(35_040, m.GetProperty("intervals").GetInt32());
        // The score's conditions that do not depend on the machine's speed.
        Assert.True(m.GetProperty("captured_vs_optimum").GetDouble() >= 0.97);
        // The share of the controllable value is (controller − always-on) / (bound − always-on), the bound the tighter of
        // the LP's and the integer one (named), beside the ratio above.
        double bound = m.GetProperty("scored_bound_usd").GetDouble(), alwaysOn = m.GetProperty("value_always_on_usd").GetDouble();
        double lpBound = m.GetProperty("lp_bound_usd").GetDouble(), integerBound = m.GetProperty("integer_upper_bound_usd").GetDouble();
        Assert.Equal(Math.Min(lpBound, integerBound), bound);
        Assert.Equal(integerBound <= lpBound ? "integer bound (day windows)" : "optimum (LP)", m.GetProperty("controllable_bound").GetString());
        Assert.True(m.GetProperty("value_whole_miner_usd").GetDouble() <= integerBound);
        Assert.True(m.GetProperty("integer_bound_seconds").GetDouble() > 0);
        Assert.Equal(bound - alwaysOn, m.GetProperty("controllable_value_usd").GetDouble(), 0.02);
        Assert.Equal((m.GetProperty("value_controller_usd").GetDouble() - alwaysOn) / (bound - alwaysOn), m.GetProperty("controllable_captured").GetDouble(), 4);
        Assert.Equal((m.GetProperty("value_myopic_usd").GetDouble() - alwaysOn) / (bound - alwaysOn), m.GetProperty("controllable_captured_myopic").GetDouble(), 4);
        Assert.Contains("of the controllable value", r.Out);
        Assert.Contains("scored against: ", r.Out);
        Assert.True(m.GetProperty("value_controller_usd").GetDouble() > m.GetProperty("value_myopic_usd").GetDouble());
        Assert.True(m.GetProperty("value_controller_usd").GetDouble() <= bound);
    }

    [Fact]
    public async Task Bench_energy_runs_on_other_files_of_the_same_format()
    {
        // The same reference site on ERCOT's Houston hub instead of West (same file format, other column).
        var r = await CliRunner.RunAsync("bench", "energy", "--quick", "--prices", RepoFile("data/ercot_rt_lmp_hubs_15min_2021.csv"), "--price-column", "Houston LMP", "--load", RepoFile("data/ercot_native_load_hourly_2021.csv"));
        Assert.True(r.Code == 0, r.Err);
        Assert.Contains("'Houston LMP'", r.Out);
        AssertOneLineError(await CliRunner.RunAsync("bench", "energy", "--prices", Path.Combine(_dir, "none.csv")), "no such prices file");
        AssertOneLineError(await CliRunner.RunAsync("bench", "energy", "--price-column", "Moon LMP"), "Moon LMP");
    }

    [Fact]
    public async Task Serve_runs_the_reference_site_live_by_default()
    {
        // Port 0: the kernel picks the port as the server binds it, and serve prints the address it got.
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        string dataDir = Path.Combine(_dir, "data");
        foreach (string a in new[] { Path.Combine(AppContext.BaseDirectory, "computegrid.dll"), "serve", "--urls", "http://127.0.0.1:0", "--node-urls", "", "--data-dir", dataDir, "--site-speed", "900" })
            psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stderr = p.StandardError.ReadToEndAsync();
        var stdout = new System.Text.StringBuilder();
        string? url = null;
        while (url is null && await p.StandardOutput.ReadLineAsync() is { } line)
        {
            stdout.AppendLine(line);
            if (line.StartsWith("computegrid serving on http://127.0.0.1:", StringComparison.Ordinal)) url = line.Split(' ')[3];
        }
        if (url is null) Assert.Fail("serve printed no address: " + stdout + await stderr);
        var rest = p.StandardOutput.ReadToEndAsync();
        try
        {
            // The sites' state is for operators (and providers): the first operator's key, written at the first start.
            using var http = Api.Client(url, Api.OperatorKey(dataDir));
            http.Timeout = TimeSpan.FromSeconds(5);
            var sw = Stopwatch.StartNew();
            JsonElement site = default;
            while (sw.Elapsed < TimeSpan.FromSeconds(90))
            {
                if (p.HasExited) Assert.Fail("serve exited: " + await stderr);
                try
                {
                    site = JsonDocument.Parse(await http.GetStringAsync("/api/energy/sites")).RootElement[0];
                    if (site.GetProperty("interval").GetInt32() > 2) break;
                }
                catch (HttpRequestException) { }
                await Task.Delay(250);
            }
            Assert.Equal("ercot-west-reference", site.GetProperty("name").GetString());
            Assert.True(site.GetProperty("interval").GetInt32() > 2, site.ToString());
        }
        finally
        {
            if (!p.HasExited)
            {
                Process.Start("kill", ["-TERM", p.Id.ToString()])!.WaitForExit();
                using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
                await p.WaitForExitAsync(cts.Token);
            }
        }
        Assert.Equal(0, p.ExitCode);
        Assert.Contains("live site ercot-west-reference", stdout + await rest);
    }
}
