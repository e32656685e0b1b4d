using System.Diagnostics;
using System.Globalization;
using ComputeGrid.Energy.Dispatch;
using ComputeGrid.Energy.Reports;
using ComputeGrid.Energy.Sites;
using Xunit.Abstractions;

namespace ComputeGrid.Energy.Tests.Reports;

public sealed class IntervalCsvWriterTests(ITestOutputHelper output)
{
    private static readonly string[] MoneyColumns =
        ["mining_revenue_usd", "energy_cost_usd", "ai_revenue_usd", "peak_charge_usd", "restart_wear_usd", "value_usd"];

    [Fact]
    public void Ledger_reproduces_the_accumulator_totals_exactly()
    {
        foreach ((BuiltSite site, PolicyRun run) in new[] { ReportSites.UriWeek, ReportSites.SummerWeek })
        {
            IntervalLedger ledger = IntervalLedger.Compute(site.Problem, run.Running);
            int n = ledger.Count;
            Assert.Equal(run.Value.AiRevenueMicroUsd, IntervalLedger.Sum(ledger.AiRevenueMicroUsd, 0, n));
            Assert.Equal(run.Value.MiningRevenueMicroUsd, IntervalLedger.Sum(ledger.MiningRevenueMicroUsd, 0, n));
            Assert.Equal(run.Value.EnergyCostMicroUsd, IntervalLedger.Sum(ledger.EnergyCostMicroUsd, 0, n));
            Assert.Equal(run.Value.PeakChargeMicroUsd, IntervalLedger.Sum(ledger.PeakChargeMicroUsd, 0, n));
            Assert.Equal(run.Value.RestartWearMicroUsd, IntervalLedger.Sum(ledger.RestartWearMicroUsd, 0, n));
            long value = 0;
            for (int t = 0; t < n; t++) value += ledger.ValueMicroUsd(t);
            Assert.Equal(run.Value.ValueMicroUsd, value);
            Assert.Equal(run.Value.MaxFacilityKw, ledger.FacilityKw.Max());
        }
    }

    [Fact]
    public void Ledger_of_a_fractional_schedule_matches_SiteAccumulator_Evaluate()
    {
        (BuiltSite site, _) = ReportSites.PeakWeek;
        SiteProblem p = site.Problem;
        // A relaxed-looking schedule: fractional counts that wander (restarts included), within the fleet.
        var running = new double[p.Groups.Length][];
        for (int g = 0; g < running.Length; g++)
        {
            running[g] = new double[p.Count];
            for (int t = 0; t < p.Count; t++)
                running[g][t] = p.Groups[g].Count * (0.5 + 0.45 * Math.Sin(t * 0.37 + g)) + 0.25;
        }
        SiteValue expected = SiteAccumulator.Evaluate(p, running);
        IntervalLedger ledger = IntervalLedger.Compute(p, running);
        Assert.Equal(expected.MiningRevenueMicroUsd, IntervalLedger.Sum(ledger.MiningRevenueMicroUsd, 0, p.Count));
        Assert.Equal(expected.EnergyCostMicroUsd, IntervalLedger.Sum(ledger.EnergyCostMicroUsd, 0, p.Count));
        Assert.Equal(expected.PeakChargeMicroUsd, IntervalLedger.Sum(ledger.PeakChargeMicroUsd, 0, p.Count));
        Assert.Equal(expected.RestartWearMicroUsd, IntervalLedger.Sum(ledger.RestartWearMicroUsd, 0, p.Count));
        Assert.True(expected.PeakChargeMicroUsd > 0, "the summer week should carry a peak charge");
        Assert.True(expected.RestartWearMicroUsd > 0, "the wandering schedule should restart miners");

        using var dir = new TempFolder();
        string path = dir.File("fractional.csv");
        IntervalCsvWriter.Write(path, site, running);
        Assert.Equal(p.Count + 1, File.ReadLines(path).Count());
    }

    [Fact]
    public void Csv_has_one_row_per_interval_and_its_money_columns_sum_to_the_run_totals()
    {
        (BuiltSite site, PolicyRun run) = ReportSites.UriWeek;
        SiteProblem p = site.Problem;
        using var dir = new TempFolder();
        string path = dir.File("intervals.csv");
        IntervalCsvWriter.Write(path, site, run);

        string[] lines = File.ReadAllLines(path);
        Assert.Equal(p.Count + 1, lines.Length);
        string[] header = lines[0].Split(',');
        string[] expectedHeader =
        [
            "interval_start_utc", "local_time", "price_usd_per_mwh", "hashprice_usd_per_th_day", "system_load_mw",
            "emergency", "peak_charge_usd_per_kw", "ai_it_kw", "leased_gpus",
            "miners_running_antminer_s21", "miners_running_antminer_s19_xp",
            "miner_it_kw", "facility_kw", "headroom_kw", "mining_revenue_usd", "energy_cost_usd", "ai_revenue_usd",
            "peak_charge_usd", "restart_wear_usd", "value_usd",
        ];
        Assert.Equal(expectedHeader, header);
        Assert.Equal(expectedHeader, IntervalCsvWriter.Header(p));
        int Col(string name) => Array.IndexOf(header, name);

        var sums = MoneyColumns.ToDictionary(c => c, _ => 0m);
        int emergencies = 0;
        for (int t = 0; t < p.Count; t++)
        {
            string[] f = lines[t + 1].Split(',');
            Assert.Equal(header.Length, f.Length);
            foreach (string c in MoneyColumns) sums[c] += decimal.Parse(f[Col(c)], NumberStyles.Float, CultureInfo.InvariantCulture);

            DateTime start = DateTime.Parse(f[Col("interval_start_utc")], CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal);
            Assert.Equal(p.IntervalStartUtc(t), start);
            var local = DateTimeOffset.Parse(f[Col("local_time")], CultureInfo.InvariantCulture);
            Assert.Equal(p.IntervalStartUtc(t), local.UtcDateTime);
            Assert.Equal(TimeSpan.FromHours(-6), local.Offset); // February: CST
            Assert.Equal(p.PriceUsdPerMwh[t], double.Parse(f[Col("price_usd_per_mwh")], CultureInfo.InvariantCulture));
            Assert.Equal(p.HashpriceUsdPerThDay[t], double.Parse(f[Col("hashprice_usd_per_th_day")], CultureInfo.InvariantCulture));
            if (double.IsNaN(p.SystemLoadMw[t])) Assert.Equal("", f[Col("system_load_mw")]);
            else Assert.Equal(p.SystemLoadMw[t], double.Parse(f[Col("system_load_mw")], CultureInfo.InvariantCulture));
            Assert.Equal(p.Emergency[t] ? "1" : "0", f[Col("emergency")]);
            if (p.Emergency[t]) emergencies++;
            Assert.Equal(site.LeasedGpus[t], int.Parse(f[Col("leased_gpus")], CultureInfo.InvariantCulture));
            Assert.Equal(run.Running[0][t], int.Parse(f[Col("miners_running_antminer_s21")], CultureInfo.InvariantCulture));
            Assert.Equal(run.Running[1][t], int.Parse(f[Col("miners_running_antminer_s19_xp")], CultureInfo.InvariantCulture));

            double minerKw = double.Parse(f[Col("miner_it_kw")], CultureInfo.InvariantCulture);
            double facilityKw = double.Parse(f[Col("facility_kw")], CultureInfo.InvariantCulture);
            double headroomKw = double.Parse(f[Col("headroom_kw")], CultureInfo.InvariantCulture);
            double expectedMinerKw = run.Running[0][t] * p.Groups[0].WattsEach / 1000.0 + run.Running[1][t] * p.Groups[1].WattsEach / 1000.0;
            Assert.Equal(expectedMinerKw, minerKw, tolerance: 6e-4);
            Assert.Equal(p.Pue * (p.AiItKw[t] + expectedMinerKw), facilityKw, tolerance: 6e-4);
            Assert.Equal(p.InterconnectKw, facilityKw + headroomKw, tolerance: 2e-3);
            Assert.True(headroomKw >= -1e-3, $"interval {t}: facility load above the interconnect");

            decimal value = Money(f, Col("ai_revenue_usd")) + Money(f, Col("mining_revenue_usd")) - Money(f, Col("energy_cost_usd"))
                            - Money(f, Col("peak_charge_usd")) - Money(f, Col("restart_wear_usd"));
            Assert.Equal(value, Money(f, Col("value_usd")));
        }
        Assert.True(emergencies > 0, "the Uri week has a declared emergency");

        // The column sums are the run's totals: within 1e-3 USD per interval (they are in fact exact).
        double tolerance = 1e-3 * p.Count;
        SiteValue v = run.Value;
        Assert.Equal(v.MiningRevenueMicroUsd / 1e6, (double)sums["mining_revenue_usd"], tolerance);
        Assert.Equal(v.EnergyCostMicroUsd / 1e6, (double)sums["energy_cost_usd"], tolerance);
        Assert.Equal(v.AiRevenueMicroUsd / 1e6, (double)sums["ai_revenue_usd"], tolerance);
        Assert.Equal(v.PeakChargeMicroUsd / 1e6, (double)sums["peak_charge_usd"], tolerance);
        Assert.Equal(v.RestartWearMicroUsd / 1e6, (double)sums["restart_wear_usd"], tolerance);
        Assert.Equal(v.ValueUsd, (double)sums["value_usd"], tolerance);
        Assert.Equal(v.MiningRevenueMicroUsd, (long)(sums["mining_revenue_usd"] * 1_000_000m));
        Assert.Equal(v.EnergyCostMicroUsd, (long)(sums["energy_cost_usd"] * 1_000_000m));
        Assert.Equal(v.ValueMicroUsd, (long)(sums["value_usd"] * 1_000_000m));
    }

    [Fact]
    public void Summer_csv_carries_the_peak_charge_and_daylight_time()
    {
        (BuiltSite site, PolicyRun run) = ReportSites.PeakWeek;
        using var dir = new TempFolder();
        string path = dir.File("summer.csv");
        IntervalCsvWriter.Write(path, site, run);
        string[] lines = File.ReadAllLines(path);
        string[] header = lines[0].Split(',');
        int peakCol = Array.IndexOf(header, "peak_charge_usd"), localCol = Array.IndexOf(header, "local_time");
        decimal peak = lines.Skip(1).Sum(l => decimal.Parse(l.Split(',')[peakCol], CultureInfo.InvariantCulture));
        Assert.True(peak > 0);
        Assert.Equal(run.Value.PeakChargeMicroUsd, (long)(peak * 1_000_000m));
        Assert.EndsWith("-05:00", lines[1].Split(',')[localCol]); // August: CDT
    }

    [Fact]
    public void A_year_of_intervals_is_written_in_well_under_a_second()
    {
        (BuiltSite week, _) = ReportSites.UriWeek;
        BuiltSite year = Tile(week, 35_040);
        var running = new int[year.Problem.Groups.Length][];
        for (int g = 0; g < running.Length; g++)
        {
            running[g] = new int[year.Problem.Count];
            for (int t = 0; t < year.Problem.Count; t++) running[g][t] = (t / 7 % 3) * year.Problem.Groups[g].Count / 3;
        }
        var run = new PolicyRun
        {
            Policy = "synthetic",
            Running = running,
            Value = SiteAccumulator.Evaluate(year.Problem, running.Select(r => r.Select(x => (double)x).ToArray()).ToArray()),
            Reasons = new CurtailmentReason[year.Problem.Count],
            DecisionTime = TimeSpan.Zero,
        };
        using var dir = new TempFolder();
        string path = dir.File("year.csv");
        IntervalCsvWriter.Write(path, year, run); // warm-up (JIT)
        // Best of three, so a busy machine (parallel test classes, a build beside) does not fail it.
        TimeSpan best = TimeSpan.MaxValue;
        for (int i = 0; i < 3; i++)
        {
            var watch = Stopwatch.StartNew();
            IntervalCsvWriter.Write(path, year, run);
            best = watch.Elapsed < best ? watch.Elapsed : best;
        }
        output.WriteLine($"35,040 rows: best of three {best.TotalMilliseconds:0} ms, {new FileInfo(path).Length / 1e6:0.0} MB");
        Assert.Equal(35_041, File.ReadLines(path).Count());
        Assert.True(best < TimeSpan.FromSeconds(1), $"writing 35,040 rows took {best.TotalMilliseconds:0} ms");
    }

    private static decimal Money(string[] fields, int column) => decimal.Parse(fields[column], CultureInfo.InvariantCulture);

    // The week's series repeated to n intervals (a year-sized problem without loading a year of data).
    private static BuiltSite Tile(BuiltSite site, int n)
    {
        SiteProblem p = site.Problem;
        T[] R<T>(T[] a) => Enumerable.Range(0, n).Select(i => a[i % a.Length]).ToArray();
        var problem = new SiteProblem
        {
            Name = p.Name,
            StartUtc = p.StartUtc,
            IntervalMinutes = p.IntervalMinutes,
            PriceUsdPerMwh = R(p.PriceUsdPerMwh),
            HashpriceUsdPerThDay = R(p.HashpriceUsdPerThDay),
            KnownHashpriceUsdPerThDay = R(p.KnownHashpriceUsdPerThDay),
            AiItKw = R(p.AiItKw),
            AiRevenueUsd = R(p.AiRevenueUsd),
            SystemLoadMw = R(p.SystemLoadMw),
            Emergency = R(p.Emergency),
            PeakChargeUsdPerKw = R(p.PeakChargeUsdPerKw),
            PeakChargeMonths = p.PeakChargeMonths,
            PeakChargeUsdPerKwYear = p.PeakChargeUsdPerKwYear,
            LocalUtcOffsetHours = R(p.LocalUtcOffsetHours),
            InterconnectKw = p.InterconnectKw,
            Pue = p.Pue,
            Groups = p.Groups,
            RampUpKwPerInterval = p.RampUpKwPerInterval,
            RampDownKwPerInterval = p.RampDownKwPerInterval,
            RestartMinutes = p.RestartMinutes,
            RestartWearUsd = p.RestartWearUsd,
            PoolFeeFraction = p.PoolFeeFraction,
            InitialRunning = p.InitialRunning,
        };
        return new BuiltSite
        {
            Config = site.Config,
            Problem = problem,
            TimeZone = site.TimeZone,
            Models = site.Models,
            Series = site.Series,
            PeakHoursUtc = site.PeakHoursUtc,
            LeasedGpus = R(site.LeasedGpus),
        };
    }
}
