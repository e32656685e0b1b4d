using ComputeGrid.Energy.Backtesting;
using ComputeGrid.Energy.Dispatch;
using ComputeGrid.Energy.Reports;
using ComputeGrid.Energy.Sites;
using ScottPlot;
using ScottPlot.Plottables;

namespace ComputeGrid.Energy.Tests.Reports;

/// <summary>
/// What the plots say, read from ScottPlot's object model (titles, axis labels and limits, ticks, plottables and
/// legend entries): each names its site and period, labels its axes with units, spans its data rather than zero to the
/// largest value, and the week plot is in the market's local time with the optimum beside the controller.
/// </summary>
public sealed class PlotContentTests
{
    private static readonly DateTime SummerFrom = ReportSites.Utc(2021, 6, 27), SummerTo = ReportSites.Utc(2021, 7, 4);
    private const string SummerPeriod = "ercot-west-reference, 2021-06-27 to 2021-07-04 UTC";

    private static SiteBacktestResult Summer => ReportSites.Backtest(SummerFrom, SummerTo);

    private static List<string> LegendTexts(Plot plot) =>
        plot.GetPlottables().SelectMany(p => p.LegendItems).Select(i => i.LabelText).Where(t => !string.IsNullOrEmpty(t)).ToList();

    // The major ticks of an axis as drawn (tick generators fill their ticks when the plot is rendered), in position order.
    private static Tick[] MajorTicks(Plot plot, IAxis axis)
    {
        ReportFonts.Apply(plot);
        plot.GetImageBytes(PlotWriter.DefaultWidth, PlotWriter.DefaultHeight, ImageFormat.Png);
        return axis.TickGenerator.Ticks.Where(t => t.IsMajor).OrderBy(t => t.Position).ToArray();
    }

    public static TheoryData<string> Kinds => new() { "week", "profit", "comparison" };

    private static Plot Create(string kind) => kind switch
    {
        "week" => PlotWriter.CreateWeekPlot(Summer.Site, Summer.Controller, Summer.Optimum!.Running, SummerFrom),
        "profit" => PlotWriter.CreateProfitPlot(Summer.Site, IntervalLedger.Compute(Summer.Site.Problem, Summer.Controller.Running), "controller"),
        _ => PlotWriter.CreateComparisonPlot(Summer.Site, PlotWriter.PolicyValues(Summer)),
    };

    [Theory]
    [MemberData(nameof(Kinds))]
    public void Every_plot_names_its_site_and_period_and_labels_its_axes_with_units(string kind)
    {
        using Plot plot = Create(kind);
        Assert.StartsWith(SummerPeriod + "\n", plot.Axes.Title.Label.Text);
        string bottom = plot.Axes.Bottom.Label.Text, left = plot.Axes.Left.Label.Text;
        switch (kind)
        {
            case "week":
                Assert.StartsWith("Local time (US-Central", bottom);
                Assert.Equal("Facility power (MW)", left);
                Assert.Equal("Real-time price (USD/MWh)", plot.Axes.Right.Label.Text);
                break;
            case "profit":
                Assert.Equal("Day (local time, US-Central)", bottom);
                Assert.Matches(@"^Profit per day \((thousand |million )?USD\)$", left);
                break;
            default:
                Assert.Matches(@"^Value over always-on \((thousand |million )?USD", bottom);
                Assert.Equal("Policy", left);
                break;
        }
    }

    [Fact]
    public void The_comparison_draws_each_policy_over_always_on_on_an_axis_that_spans_the_differences()
    {
        // The user's year: six values between 461 and 472 M USD, which bars from zero drew alike.
        (string, long)[] values =
        [
            (PlotWriter.OptimumName, 472_400_000_000_000), ("controller", 470_150_000_000_000), ("day-ahead", 466_020_000_000_000),
            ("myopic", 463_700_000_000_000), (SiteBacktestResult.AlwaysOn, 461_300_000_000_000), ("threshold", 460_950_000_000_000),
        ];
        using Plot plot = PlotWriter.CreateComparisonPlot(Summer.Site, values);

        BarPlot bars = Assert.Single(plot.GetPlottables<BarPlot>());
        double[] expected = [11.10, 8.85, 4.72, 2.40, 0, -0.35]; // million USD over always-on, first policy on top
        Assert.Equal(expected.Length, bars.Bars.Count);
        for (int i = 0; i < expected.Length; i++)
        {
            Bar bar = bars.Bars.Single(b => b.Position == expected.Length - 1 - i);
            Assert.Equal(expected[i], bar.Value, 9);
        }
        Assert.Equal("+8.85 M USD (79.7 %)", bars.Bars.Single(b => b.Position == 4).Label);
        Assert.Equal("−350.0 k USD (−3.2 %)", bars.Bars.Single(b => b.Position == 0).Label);
        Assert.Equal("baseline: 461.30 M USD", bars.Bars.Single(b => b.Position == 1).Label);
        Assert.Contains("million USD", plot.Axes.Bottom.Label.Text);
        Assert.Contains("always-on earned 461.30 M USD", plot.Axes.Title.Label.Text);

        // The axis spans min(difference, 0) .. max(difference) with modest margins (room for the labels), not 0 .. 472.
        AxisLimits limits = plot.Axes.GetLimits();
        double low = -0.35, high = 11.10, range = high - low;
        Assert.InRange(limits.Left, low - 0.5 * range, low);
        Assert.InRange(limits.Right, high, high + 0.5 * range);
    }

    [Fact]
    public void The_comparison_of_a_real_backtest_has_the_scored_bound_by_name_and_every_policy()
    {
        using Plot plot = PlotWriter.CreateComparisonPlot(Summer.Site, PlotWriter.PolicyValues(Summer));
        string[] labels = MajorTicks(plot, plot.Axes.Left).Reverse().Select(t => t.Label).ToArray();
        // The bound the policies are scored against, by its name (whole miners: the integer bound is the tighter), then the
        // whole-miner schedule found under it, then the policies.
        Assert.Equal(SiteBacktestResult.IntegerBoundName, Summer.ScoredBoundName);
        Assert.Equal([SiteBacktestResult.IntegerBoundName, SiteBacktestResult.WholeMinersName, .. Summer.Runs.Select(r => r.Policy)], labels);
        BarPlot bars = Assert.Single(plot.GetPlottables<BarPlot>());
        Assert.Equal(labels.Length, bars.Bars.Count);
        int alwaysOn = Array.IndexOf(labels, SiteBacktestResult.AlwaysOn);
        Assert.Equal(0, bars.Bars.Single(b => b.Position == labels.Length - 1 - alwaysOn).Value);
        // The bound gains at least as much as any policy over always-on.
        double optimum = bars.Bars.Single(b => b.Position == labels.Length - 1).Value;
        Assert.All(bars.Bars, b => Assert.True(b.Value <= optimum + 1e-9));
    }

    [Fact]
    public void Profit_is_by_day_for_short_periods_and_by_month_for_long_ones()
    {
        using Plot week = Create("profit");
        Assert.Equal(PlotWriter.ProfitPeriod.Day, PlotWriter.ProfitPeriodFor(Summer.Site.Problem));
        Assert.StartsWith("Day (local time", week.Axes.Bottom.Label.Text);
        Assert.Contains("profit by day", week.Axes.Title.Label.Text);
        // 2021-06-27 00:00 UTC is 26 June 19:00 CDT: eight local days, the first and last partial.
        string[] days = MajorTicks(week, week.Axes.Bottom).Select(t => t.Label).ToArray();
        Assert.Equal(["Jun 26", "Jun 27", "Jun 28", "Jun 29", "Jun 30", "Jul 1", "Jul 2", "Jul 3"], days);
        AssertSpansBars(week);

        // Three local months (the bounds at local midnight).
        (BuiltSite site, PolicyRun run) = ReportSites.Get(new DateTime(2021, 6, 1, 5, 0, 0, DateTimeKind.Utc), new DateTime(2021, 9, 1, 5, 0, 0, DateTimeKind.Utc));
        Assert.Equal(PlotWriter.ProfitPeriod.Month, PlotWriter.ProfitPeriodFor(site.Problem));
        using Plot summer = PlotWriter.CreateProfitPlot(site, IntervalLedger.Compute(site.Problem, run.Running), run.Policy);
        Assert.Equal("Month (local time, US-Central)", summer.Axes.Bottom.Label.Text);
        Assert.Matches(@"^Profit per month \(million USD\)$", summer.Axes.Left.Label.Text);
        Assert.Equal(["Jun 2021", "Jul 2021", "Aug 2021"], MajorTicks(summer, summer.Axes.Bottom).Select(t => t.Label).ToArray());
        AssertSpansBars(summer);

        // The switch: under 62 days by day, from 62 by month.
        Assert.Equal(62, PlotWriter.ProfitByMonthDaysMin);
        Assert.Equal(PlotWriter.ProfitPeriod.Day, PlotWriter.ProfitPeriodFor(site.Problem.Slice(0, 61 * 96 + 95)));
        Assert.Equal(PlotWriter.ProfitPeriod.Month, PlotWriter.ProfitPeriodFor(site.Problem.Slice(0, 62 * 96)));
    }

    // The value axis spans the bars (stacked from zero) and the net line with margins of at most a tenth of the range.
    private static void AssertSpansBars(Plot plot)
    {
        var bars = plot.GetPlottables<BarPlot>().SelectMany(b => b.Bars).ToList();
        Assert.NotEmpty(bars);
        double low = Math.Min(0, bars.Min(b => Math.Min(b.ValueBase, b.Value))), high = Math.Max(0, bars.Max(b => Math.Max(b.ValueBase, b.Value)));
        double range = high - low;
        AxisLimits limits = plot.Axes.GetLimits();
        Assert.InRange(limits.Bottom, low - 0.1 * range, low);
        Assert.InRange(limits.Top, high, high + 0.1 * range);
    }

    [Fact]
    public void The_week_plot_is_in_market_local_time_with_the_optimum_beside_the_controller()
    {
        SiteBacktestResult r = Summer;
        SiteProblem p = r.Site.Problem;
        using Plot plot = Create("week");

        // The first interval starts 2021-06-27 00:00 UTC = 26 June 19:00 CDT: the x axis is local wall-clock time.
        DateTime firstLocal = new(2021, 6, 26, 19, 0, 0);
        Assert.Equal(firstLocal, r.Site.TimeZone.ToLocal(p.StartUtc));
        AxisLimits limits = plot.Axes.GetLimits();
        Assert.Equal(firstLocal.ToOADate(), limits.Left, 9);
        Assert.Equal(firstLocal.AddDays(7).ToOADate(), limits.Right, 9);
        Assert.Equal("Local time (US-Central, CDT = UTC−5)", plot.Axes.Bottom.Label.Text);
        Tick firstDay = MajorTicks(plot, plot.Axes.Bottom)[0];
        Assert.Equal("Sun 27 Jun", firstDay.Label);
        Assert.Equal(new DateTime(2021, 6, 27).ToOADate(), firstDay.Position, 9); // local midnight, 05:00 UTC

        // The controller's power split and the optimum's, both in the legend; the optimum's line is AI + its miners.
        List<string> legend = LegendTexts(plot);
        Assert.Contains("AI (MW, firm: same in both)", legend);
        Assert.Contains("Miners, controller (MW)", legend);
        Assert.Contains("AI + miners, optimum (LP, MW)", legend);
        Scatter optimum = plot.GetPlottables<Scatter>().Single(s => s.LegendText == "AI + miners, optimum (LP, MW)");
        IReadOnlyList<Coordinates> points = optimum.Data.GetScatterPoints();
        Assert.Equal(2 * p.Count, points.Count);
        for (int t = 0; t < p.Count; t += 37)
        {
            double minerItKw = 0;
            for (int g = 0; g < p.Groups.Length; g++) minerItKw += r.Optimum!.Running[g][t] * p.Groups[g].WattsEach / 1000;
            Assert.Equal(p.Pue * (p.AiItKw[t] + minerItKw) / 1000, points[2 * t].Y, 6);
            Assert.Equal(r.Site.TimeZone.ToLocal(p.IntervalStartUtc(t)).ToOADate(), points[2 * t].X, 9);
        }
        Assert.Contains("controller beside the optimum", plot.Axes.Title.Label.Text);

        // The price axis spans the week's prices with a margin, not from zero.
        AxisLimits price = plot.Axes.GetLimits(plot.Axes.Bottom, plot.Axes.Right);
        double min = p.PriceUsdPerMwh.Min(), max = p.PriceUsdPerMwh.Max(), range = max - min;
        Assert.InRange(price.Bottom, min - 0.1 * range, min);
        Assert.InRange(price.Top, max, max + 0.25 * range);

        // Without an optimum, the controller alone.
        using Plot alone = PlotWriter.CreateWeekPlot(r.Site, r.Controller, null, SummerFrom);
        Assert.DoesNotContain(LegendTexts(alone), t => t.Contains("optimum", StringComparison.Ordinal));
        Assert.DoesNotContain("optimum", alone.Axes.Title.Label.Text);
    }

    [Fact]
    public void Curtailment_reasons_are_marked_with_a_legend_entry_each_when_present()
    {
        SiteBacktestResult r = Summer;
        PolicyRun With(CurtailmentReason[] reasons) => new()
        {
            Policy = "controller", Value = r.Controller.Value, Running = r.Controller.Running, Reasons = reasons, DecisionTime = TimeSpan.Zero,
        };
        string[] all = [.. new[] { CurtailmentReason.Price, CurtailmentReason.PeakRisk, CurtailmentReason.Emergency, CurtailmentReason.Limits }.Select(PlotWriter.ReasonLegend)];

        var none = new CurtailmentReason[r.Site.Problem.Count];
        using (Plot plot = PlotWriter.CreateWeekPlot(r.Site, With(none), null, SummerFrom))
            Assert.Empty(LegendTexts(plot).Intersect(all));

        var some = new CurtailmentReason[r.Site.Problem.Count];
        some[10] = CurtailmentReason.Price;
        some[11] = CurtailmentReason.Price;
        some[200] = CurtailmentReason.Limits;
        using (Plot plot = PlotWriter.CreateWeekPlot(r.Site, With(some), null, SummerFrom))
            Assert.Equal(new[] { "Held off: price", "Held off: limits (ramp)" }, LegendTexts(plot).Intersect(all));

        // Real runs: Winter Storm Uri's emergency, and the peak risk of the week holding August's 4CP hour.
        (BuiltSite uriSite, PolicyRun uriRun) = ReportSites.UriWeek;
        Assert.Contains(CurtailmentReason.Emergency, uriRun.Reasons);
        using (Plot plot = PlotWriter.CreateWeekPlot(uriSite, uriRun, null, ReportSites.Utc(2021, 2, 13)))
            Assert.Contains("Held off: grid emergency", LegendTexts(plot));
        (BuiltSite peakSite, PolicyRun peakRun) = ReportSites.PeakWeek;
        Assert.Contains(CurtailmentReason.PeakRisk, peakRun.Reasons);
        using (Plot plot = PlotWriter.CreateWeekPlot(peakSite, peakRun, null, ReportSites.Utc(2021, 8, 23)))
            Assert.Contains("Held off: peak risk", LegendTexts(plot));

        Assert.Throws<ArgumentOutOfRangeException>(() => PlotWriter.ReasonLegend(CurtailmentReason.None));
    }
}
