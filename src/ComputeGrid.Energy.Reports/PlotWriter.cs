using System.Globalization;
using ComputeGrid.Energy.Backtesting;
using ComputeGrid.Energy.Dispatch;
using ComputeGrid.Energy.Sites;
using ScottPlot;

namespace ComputeGrid.Energy.Reports;

/// <summary>
/// The backtest's figures as PNG files, drawn headless with ScottPlot, for a site operator: each title names the site
/// and the period run, each axis says what it measures and in which unit, and each value axis spans the data (with a
/// margin) rather than zero to the largest value, so figures that differ by a few percent look different. Every text
/// is drawn with the shipped <see cref="ReportFonts"/>, so a figure looks the same on every machine, fonts installed
/// or not. Each <c>…Plot</c> method writes a file; the matching <c>Create…</c> method returns the ScottPlot
/// <see cref="Plot"/> (to restyle or render elsewhere; the caller disposes it).
/// </summary>
public static class PlotWriter
{
    /// <summary>Default image width (pixels).</summary>
    public const int DefaultWidth = 1600;

    /// <summary>Default image height (pixels).</summary>
    public const int DefaultHeight = 900;

    /// <summary>Periods of at least this many days are plotted by month in <see cref="CreateProfitPlot"/>; shorter ones by day.</summary>
    public const int ProfitByMonthDaysMin = 62;

    /// <summary>The name of the LP optimum's bar in <see cref="PolicyValues"/> (when it is the bound scored against).</summary>
    public const string OptimumName = SiteBacktestResult.LpBoundName;

    /// <summary>Whether a bar of <see cref="CreateComparisonPlot(BuiltSite, IReadOnlyList{ValueTuple{string, long}}, string)"/> is a bound (drawn blue, the other bars' shares taken of its gain): the LP's or the integer bound.</summary>
    public static bool IsBound(string name) => name is SiteBacktestResult.LpBoundName or SiteBacktestResult.IntegerBoundName;

    private static readonly Color AiColor = Color.FromHex("#1F77B4");
    private static readonly Color MinerColor = Color.FromHex("#FF7F0E");
    private static readonly Color OptimumColor = Color.FromHex("#006D2C");
    private static readonly Color HeadroomColor = Color.FromHex("#D9D9D9");
    private static readonly Color LimitColor = Color.FromHex("#D62728");
    private static readonly Color PriceColor = Color.FromHex("#333333");
    private static readonly Color EmergencyColor = Color.FromHex("#D62728").WithAlpha(0.18);
    private static readonly Color PeakColor = Color.FromHex("#9467BD").WithAlpha(0.30);
    private static readonly Color EnergyColor = Color.FromHex("#8C564B");
    private static readonly Color PeakChargeColor = Color.FromHex("#9467BD");
    private static readonly Color WearColor = Color.FromHex("#7F7F7F");
    private static readonly Color NetColor = Color.FromHex("#000000");
    private static readonly Color GainColor = Color.FromHex("#2CA02C");
    private static readonly Color LossColor = Color.FromHex("#D62728");
    private static readonly Color BoundColor = Color.FromHex("#1F77B4");

    // The curtailment reasons marked on the week plot, in legend order, with their colour and legend text.
    private static readonly (CurtailmentReason Reason, Color Color, string Text)[] ReasonStyles =
    [
        (CurtailmentReason.Price, Color.FromHex("#17BECF"), "Held off: price"),
        (CurtailmentReason.PeakRisk, Color.FromHex("#9467BD"), "Held off: peak risk"),
        (CurtailmentReason.Emergency, Color.FromHex("#D62728"), "Held off: grid emergency"),
        (CurtailmentReason.Limits, Color.FromHex("#7F7F7F"), "Held off: limits (ramp)"),
    ];

    /// <summary>The legend text that marks intervals where the controller held miners off for <paramref name="reason"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="reason"/> is <see cref="CurtailmentReason.None"/> or unknown.</exception>
    public static string ReasonLegend(CurtailmentReason reason)
    {
        foreach (var style in ReasonStyles)
            if (style.Reason == reason) return style.Text;
        throw new ArgumentOutOfRangeException(nameof(reason), reason, "Only a reason to hold miners off is marked.");
    }

    /// <summary>
    /// The site and the period run, as every title starts: <c>ercot-west-reference, 2021-08-21 to 2021-08-28 UTC</c>
    /// (with hours and minutes when a bound is not at midnight; the end is exclusive).
    /// </summary>
    public static string SiteAndPeriod(SiteProblem problem)
    {
        ArgumentNullException.ThrowIfNull(problem);
        DateTime from = problem.StartUtc, to = problem.IntervalStartUtc(problem.Count);
        string format = from.TimeOfDay == TimeSpan.Zero && to.TimeOfDay == TimeSpan.Zero ? "yyyy-MM-dd" : "yyyy-MM-dd HH:mm";
        return $"{problem.Name}, {from.ToString(format, CultureInfo.InvariantCulture)} to {to.ToString(format, CultureInfo.InvariantCulture)} UTC";
    }

    /// <summary>
    /// Writes a week of the controller's run beside the perfect-foresight optimum (see <see cref="CreateWeekPlot"/>).
    /// </summary>
    /// <param name="path">The PNG file to write (overwritten; its folder is created).</param>
    /// <param name="result">The site's backtest; its optimum is drawn when it was solved.</param>
    /// <param name="weekStartUtc">Start of the week (UTC); the seven days from it that the horizon covers are drawn.</param>
    /// <param name="width">Image width (pixels).</param>
    /// <param name="height">Image height (pixels).</param>
    /// <exception cref="ArgumentOutOfRangeException">The week holds no interval of the horizon.</exception>
    public static void WeekPlot(string path, SiteBacktestResult result, DateTime weekStartUtc, int width = DefaultWidth, int height = DefaultHeight)
    {
        ArgumentNullException.ThrowIfNull(result);
        using Plot plot = CreateWeekPlot(result.Site, result.Controller, result.Optimum?.Running, weekStartUtc);
        Save(plot, path, width, height);
    }

    /// <summary>
    /// Builds a week of <paramref name="run"/> in the market's local time: the facility power as stacked areas (AI,
    /// the run's miners, headroom up to the interconnect limit, drawn as a line), the optimum's AI + miners as a line
    /// over them (where the line stands above the miners' area the optimum ran more, below it less), the real-time price
    /// on the right axis, the grid-emergency and peak-charge intervals shaded, and a strip along the top marking each
    /// interval where the run held miners off, coloured by its <see cref="PolicyRun.Reasons"/> (price, peak risk, grid
    /// emergency, limits). Local time is wall-clock time: in the hour repeated when daylight saving ends, the two
    /// hours are drawn over each other.
    /// </summary>
    /// <param name="site">The site the run was made over.</param>
    /// <param name="run">The policy's run (the controller's, in the backtest).</param>
    /// <param name="optimumRunning">The optimum's miners running (<c>[group][t]</c>, fractional), or null to draw the run alone.</param>
    /// <param name="weekStartUtc">Start of the week (UTC).</param>
    /// <exception cref="ArgumentOutOfRangeException">The week holds no interval of the horizon.</exception>
    public static Plot CreateWeekPlot(BuiltSite site, PolicyRun run, double[][]? optimumRunning, DateTime weekStartUtc)
    {
        ArgumentNullException.ThrowIfNull(site);
        ArgumentNullException.ThrowIfNull(run);
        SiteProblem p = site.Problem;
        IntervalLedger ledger = IntervalLedger.Compute(p, run.Running);
        IntervalLedger? optimum = optimumRunning is null ? null : IntervalLedger.Compute(p, optimumRunning);
        DateTime weekStart = DateTime.SpecifyKind(weekStartUtc, DateTimeKind.Utc);
        (int from, int to) = IntervalRange(p, weekStart, weekStart.AddDays(7));
        if (from >= to)
            throw new ArgumentOutOfRangeException(nameof(weekStartUtc), weekStartUtc,
                $"The week holds no interval of the horizon ({p.StartUtc:yyyy-MM-dd HH:mm} to {p.IntervalStartUtc(p.Count):yyyy-MM-dd HH:mm} UTC).");

        // Step shapes: each interval is drawn flat from its local start to its local end.
        int n = to - from, m = 2 * n;
        var xs = new double[m];
        var zero = new double[m];
        var ai = new double[m];
        var aiMiners = new double[m];
        var aiOptimum = new double[m];
        var limit = new double[m];
        var price = new double[m];
        double limitMw = p.InterconnectKw / 1000.0;
        double priceMin = double.PositiveInfinity, priceMax = double.NegativeInfinity, powerMax = limitMw;
        for (int i = 0; i < n; i++)
        {
            int t = from + i;
            xs[2 * i] = LocalX(p, t);
            xs[2 * i + 1] = LocalX(p, t) + p.IntervalMinutes / 1440.0;
            double aiMw = p.Pue * p.AiItKw[t] / 1000.0;
            double minerMw = p.Pue * ledger.MinerItKw[t] / 1000.0;
            double optimumMw = optimum is null ? 0 : p.Pue * optimum.MinerItKw[t] / 1000.0;
            ai[2 * i] = ai[2 * i + 1] = aiMw;
            aiMiners[2 * i] = aiMiners[2 * i + 1] = aiMw + minerMw;
            aiOptimum[2 * i] = aiOptimum[2 * i + 1] = aiMw + optimumMw;
            limit[2 * i] = limit[2 * i + 1] = Math.Max(limitMw, aiMw + minerMw);
            price[2 * i] = price[2 * i + 1] = p.PriceUsdPerMwh[t];
            priceMin = Math.Min(priceMin, p.PriceUsdPerMwh[t]);
            priceMax = Math.Max(priceMax, p.PriceUsdPerMwh[t]);
            powerMax = Math.Max(powerMax, Math.Max(aiMw + minerMw, aiMw + optimumMw));
        }
        // The reasons' strip lies above everything drawn in MW, below the axis top.
        double stripLow = powerMax * 1.04, stripHigh = powerMax * 1.11, powerTop = powerMax * 1.13;

        var plot = new Plot();
        plot.Axes.Bottom.TickGenerator = LocalDayTicks(xs[0], xs[^1]);

        // Shading first, so the areas and lines are drawn over it.
        AddSpans(plot, p, from, to, t => p.Emergency[t], EmergencyColor, "Grid emergency (miners off)");

        var aiFill = plot.Add.FillY(xs, zero, ai);
        aiFill.FillColor = AiColor.WithAlpha(0.85);
        aiFill.LineWidth = 0;
        aiFill.LegendText = "AI (MW, firm: same in both)";
        var minerFill = plot.Add.FillY(xs, ai, aiMiners);
        minerFill.FillColor = MinerColor.WithAlpha(0.85);
        minerFill.LineWidth = 0;
        minerFill.LegendText = $"Miners, {run.Policy} (MW)";
        var headroomFill = plot.Add.FillY(xs, aiMiners, limit);
        headroomFill.FillColor = HeadroomColor.WithAlpha(0.7);
        headroomFill.LineWidth = 0;
        headroomFill.LegendText = "Headroom (MW)";

        AddSpans(plot, p, from, to, t => p.PeakChargeUsdPerKw[t] != 0, PeakColor, "Peak-charge interval");

        if (optimum is not null)
        {
            var optimumLine = plot.Add.ScatterLine(xs, aiOptimum, OptimumColor);
            optimumLine.LineWidth = 2.5f;
            optimumLine.LegendText = "AI + miners, optimum (LP, MW)";
        }

        // After the optimum's line: a site that runs flat out sits on the limit, and both stay visible (dashes over the line).
        var limitLine = plot.Add.HorizontalLine(limitMw, 2, LimitColor, LinePattern.Dashed);
        limitLine.LegendText = $"Interconnect limit ({limitMw.ToString("0.#", CultureInfo.InvariantCulture)} MW)";

        // One strip per reason present: zero height where the interval was held off for another reason (or none).
        var reasons = run.Reasons;
        foreach ((CurtailmentReason reason, Color color, string text) in ReasonStyles)
        {
            bool any = false;
            var top = new double[m];
            var bottom = new double[m];
            for (int i = 0; i < n; i++)
            {
                bool marked = reasons[from + i] == reason;
                any |= marked;
                bottom[2 * i] = bottom[2 * i + 1] = stripLow;
                top[2 * i] = top[2 * i + 1] = marked ? stripHigh : stripLow;
            }
            if (!any) continue;
            var strip = plot.Add.FillY(xs, bottom, top);
            strip.FillColor = color;
            strip.LineWidth = 0;
            strip.LegendText = text;
        }

        var priceLine = plot.Add.ScatterLine(xs, price, PriceColor.WithAlpha(0.8));
        priceLine.LineWidth = 1.2f;
        priceLine.LegendText = "Real-time price (USD/MWh, right axis)";
        priceLine.Axes.XAxis = plot.Axes.Bottom;
        priceLine.Axes.YAxis = plot.Axes.Right;

        long runValue = IntervalLedger.Sum(Values(ledger, from, to), 0, n);
        string values = $"{run.Policy} {FormatUsd(runValue / 1e6)}";
        if (optimum is not null) values += $", optimum {FormatUsd(IntervalLedger.Sum(Values(optimum, from, to), 0, n) / 1e6)}";
        DateTime localStart = DateTime.FromOADate(xs[0]);
        SetTitle(plot, SiteAndPeriod(p),
            $"Week from {localStart.ToString("yyyy-MM-dd HH:mm", CultureInfo.InvariantCulture)} local: {run.Policy}" +
            $"{(optimum is null ? "" : " beside the optimum")}, value {values}");
        plot.XLabel($"Local time ({ZoneText(site, p, from, to)})");
        plot.YLabel("Facility power (MW)");
        plot.Axes.Right.Label.Text = "Real-time price (USD/MWh)";

        plot.Axes.SetLimitsX(xs[0], xs[^1], plot.Axes.Bottom);
        plot.Axes.SetLimitsY(0, powerTop, plot.Axes.Left);
        // The price spans its data with a margin, its top mapped under the reasons' strip.
        double pad = Math.Max(1, (priceMax - priceMin) * 0.06);
        double priceLow = priceMin - pad, priceHigh = priceMax + pad;
        plot.Axes.SetLimitsY(priceLow, priceLow + (priceHigh - priceLow) * powerTop / stripLow, plot.Axes.Right);

        plot.ShowLegend(Edge.Bottom);
        ReportFonts.Apply(plot);
        return plot;
    }

    /// <summary>How the profit of a period is grouped: by local calendar day or month.</summary>
    public enum ProfitPeriod
    {
        /// <summary>Local calendar days (periods shorter than <see cref="ProfitByMonthDaysMin"/> days).</summary>
        Day,

        /// <summary>Local calendar months.</summary>
        Month,
    }

    /// <summary>The grouping <see cref="CreateProfitPlot"/> uses for <paramref name="problem"/>'s period: by day below <see cref="ProfitByMonthDaysMin"/> days, else by month.</summary>
    public static ProfitPeriod ProfitPeriodFor(SiteProblem problem)
    {
        ArgumentNullException.ThrowIfNull(problem);
        return (double)problem.Count * problem.IntervalMinutes < ProfitByMonthDaysMin * 1440.0 ? ProfitPeriod.Day : ProfitPeriod.Month;
    }

    /// <summary>Writes <paramref name="run"/>'s profit by local day or month (see <see cref="CreateProfitPlot"/>).</summary>
    /// <param name="path">The PNG file to write (overwritten; its folder is created).</param>
    /// <param name="site">The site the run was made over.</param>
    /// <param name="run">The policy's run.</param>
    /// <param name="width">Image width (pixels).</param>
    /// <param name="height">Image height (pixels).</param>
    public static void ProfitPlot(string path, BuiltSite site, PolicyRun run, int width = DefaultWidth, int height = DefaultHeight)
    {
        ArgumentNullException.ThrowIfNull(site);
        ArgumentNullException.ThrowIfNull(run);
        using Plot plot = CreateProfitPlot(site, IntervalLedger.Compute(site.Problem, run.Running), run.Policy);
        Save(plot, path, width, height);
    }

    /// <summary>
    /// Builds a schedule's profit by local calendar day (periods under <see cref="ProfitByMonthDaysMin"/> days) or
    /// month as stacked bars: AI and mining revenue above zero, energy cost, peak charge and restart wear below it (an
    /// energy income from negative prices stacks above), and each day's or month's net value as a line with markers.
    /// The first and last day or month may be partial (the period's bounds are UTC).
    /// </summary>
    /// <param name="site">The site the schedule was made over.</param>
    /// <param name="ledger">The schedule's per-interval money.</param>
    /// <param name="policy">The schedule's name, for the title.</param>
    /// <param name="period">The grouping; default <see cref="ProfitPeriodFor"/>.</param>
    public static Plot CreateProfitPlot(BuiltSite site, IntervalLedger ledger, string policy, ProfitPeriod? period = null)
    {
        ArgumentNullException.ThrowIfNull(site);
        ArgumentNullException.ThrowIfNull(ledger);
        SiteProblem p = ledger.Problem;
        ProfitPeriod by = period ?? ProfitPeriodFor(p);

        // Local days or months in order, with each source's signed contribution (micro-USD).
        var buckets = new List<DateTime>();
        var sums = new List<long[]>(); // ai, mining, -energy, -peak, -wear
        for (int t = 0; t < p.Count; t++)
        {
            DateTime local = p.IntervalStartUtc(t).AddHours(p.LocalUtcOffsetHours[t]);
            var bucket = by == ProfitPeriod.Day
                ? DateTime.SpecifyKind(local.Date, DateTimeKind.Unspecified)
                : new DateTime(local.Year, local.Month, 1, 0, 0, 0, DateTimeKind.Unspecified);
            if (buckets.Count == 0 || buckets[^1] != bucket)
            {
                buckets.Add(bucket);
                sums.Add(new long[5]);
            }
            long[] s = sums[^1];
            s[0] = checked(s[0] + ledger.AiRevenueMicroUsd[t]);
            s[1] = checked(s[1] + ledger.MiningRevenueMicroUsd[t]);
            s[2] = checked(s[2] - ledger.EnergyCostMicroUsd[t]);
            s[3] = checked(s[3] - ledger.PeakChargeMicroUsd[t]);
            s[4] = checked(s[4] - ledger.RestartWearMicroUsd[t]);
        }

        double largest = 1;
        foreach (long[] s in sums)
        {
            double up = 0, down = 0;
            foreach (long v in s) if (v > 0) up += v / 1e6; else down -= v / 1e6;
            largest = Math.Max(largest, Math.Max(up, down));
        }
        (double scale, string unit) = Scale(largest);

        var plot = new Plot();
        string[] names = ["AI revenue", "Mining revenue", "Energy cost", "Peak charge", "Restart wear"];
        Color[] colors = [AiColor, MinerColor, EnergyColor, PeakChargeColor, WearColor];
        var positive = new double[buckets.Count];
        var negative = new double[buckets.Count];
        for (int k = 0; k < names.Length; k++)
        {
            var bars = new List<Bar>(buckets.Count);
            for (int i = 0; i < buckets.Count; i++)
            {
                double v = sums[i][k] / 1e6 / scale;
                if (v == 0) continue;
                ref double stackBase = ref (v > 0 ? ref positive[i] : ref negative[i]);
                bars.Add(new Bar { Position = i, ValueBase = stackBase, Value = stackBase + v, Size = 0.7, FillColor = colors[k], LineWidth = 0 });
                stackBase += v;
            }
            if (bars.Count == 0) continue;
            var barPlot = plot.Add.Bars(bars);
            barPlot.LegendText = k < 2 ? names[k] : "− " + names[k];
            barPlot.Color = colors[k];
        }

        var xs = new double[buckets.Count];
        var net = new double[buckets.Count];
        for (int i = 0; i < buckets.Count; i++)
        {
            xs[i] = i;
            long total = 0;
            foreach (long v in sums[i]) total = checked(total + v);
            net[i] = total / 1e6 / scale;
        }
        var netLine = plot.Add.Scatter(xs, net, NetColor);
        netLine.LineWidth = 2;
        netLine.MarkerSize = by == ProfitPeriod.Day && buckets.Count > 31 ? 5 : 9;
        netLine.MarkerShape = MarkerShape.FilledDiamond;
        netLine.LegendText = "Net value";
        plot.Add.HorizontalLine(0, 1, Colors.Black);

        // Labels: every month (on two lines beyond a year); days thinned to at most about 16 labels.
        string format = by == ProfitPeriod.Day ? "MMM d" : buckets.Count > 12 ? "MMM'\n'yyyy" : "MMM yyyy";
        int every = by == ProfitPeriod.Day ? Math.Max(1, (buckets.Count + 15) / 16) : 1;
        var tickPositions = new List<double>();
        var tickLabels = new List<string>();
        for (int i = 0; i < buckets.Count; i += every)
        {
            tickPositions.Add(i);
            tickLabels.Add(buckets[i].ToString(format, CultureInfo.InvariantCulture));
        }
        plot.Axes.Bottom.SetTicks([.. tickPositions], [.. tickLabels]);
        plot.Axes.SetLimitsX(-0.6, buckets.Count - 0.4);

        // The value axis spans the stacks and the net line (all from zero), with a margin.
        double low = Math.Min(0, Math.Min(negative.DefaultIfEmpty(0).Min(), net.DefaultIfEmpty(0).Min()));
        double high = Math.Max(0, Math.Max(positive.DefaultIfEmpty(0).Max(), net.DefaultIfEmpty(0).Max()));
        double margin = Math.Max(high - low, 1e-9) * 0.06;
        plot.Axes.SetLimitsY(low - margin, high + margin);

        long totalValue = 0;
        foreach (long[] s in sums) foreach (long v in s) totalValue = checked(totalValue + v);
        string word = by == ProfitPeriod.Day ? "day" : "month";
        SetTitle(plot, SiteAndPeriod(p), $"{policy}: profit by {word} (total {FormatUsd(totalValue / 1e6)})");
        plot.XLabel($"{(by == ProfitPeriod.Day ? "Day" : "Month")} (local time, {site.TimeZone.Id})");
        plot.YLabel($"Profit per {word} ({unit})");
        plot.ShowLegend(Edge.Right);
        ReportFonts.Apply(plot);
        return plot;
    }

    /// <summary>
    /// Each run's value for <see cref="CreateComparisonPlot(BuiltSite, IReadOnlyList{ValueTuple{string, long}}, string)"/>:
    /// the bound the policies are scored against first (when solved, by its name: <see cref="SiteBacktestResult.ScoredBoundName"/>),
    /// the whole-miner perfect-foresight schedule (when the integer bound was computed), then the policies in run order.
    /// </summary>
    public static IReadOnlyList<(string Policy, long ValueMicroUsd)> PolicyValues(SiteBacktestResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        var values = result.Runs.Select(r => (r.Policy, r.Value.ValueMicroUsd)).ToList();
        if (result.IntegerBound is { } ib) values.Insert(0, (SiteBacktestResult.WholeMinersName, ib.FeasibleValueMicroUsd));
        if (result.ScoredBoundName is { } name) values.Insert(0, (name, result.ScoredBoundMicroUsd!.Value));
        return values;
    }

    /// <summary>Writes the policies' value over always-on (see <see cref="CreateComparisonPlot(BuiltSite, IReadOnlyList{ValueTuple{string, long}}, string)"/>).</summary>
    /// <param name="path">The PNG file to write (overwritten; its folder is created).</param>
    /// <param name="result">The site's backtest.</param>
    /// <param name="width">Image width (pixels).</param>
    /// <param name="height">Image height (pixels).</param>
    public static void ComparisonPlot(string path, SiteBacktestResult result, int width = DefaultWidth, int height = DefaultHeight)
    {
        ArgumentNullException.ThrowIfNull(result);
        using Plot plot = CreateComparisonPlot(result.Site, PolicyValues(result));
        Save(plot, path, width, height);
    }

    /// <summary>
    /// Builds each policy's value over <paramref name="baseline"/> (policy − baseline, USD) as a horizontal bar, first
    /// policy on top: gains green, losses red, a bound (<see cref="IsBound"/>: the LP's or the integer bound) blue; each bar
    /// labelled with the difference and, with a bound, the share of the bound's gain it captured. The baseline's own value is
    /// written beside its (empty) bar. What dispatch controls is a few percent of a site's value (AI revenue is earned
    /// alike by every policy), so the differences are drawn, not the values.
    /// </summary>
    /// <param name="site">The site the runs were made over.</param>
    /// <param name="values">Each policy's name and value (micro-USD, as the accounting keeps it).</param>
    /// <param name="baseline">The policy the others are measured from.</param>
    /// <exception cref="ArgumentException"><paramref name="values"/> is empty or has no <paramref name="baseline"/>.</exception>
    public static Plot CreateComparisonPlot(BuiltSite site, IReadOnlyList<(string Policy, long ValueMicroUsd)> values, string baseline = SiteBacktestResult.AlwaysOn)
    {
        ArgumentNullException.ThrowIfNull(site);
        ArgumentNullException.ThrowIfNull(values);
        if (values.Count == 0) throw new ArgumentException("There is no policy to compare.", nameof(values));
        int baseIndex = -1;
        for (int i = 0; i < values.Count; i++) if (values[i].Policy == baseline) baseIndex = i;
        if (baseIndex < 0) throw new ArgumentException($"There is no '{baseline}' among the policies to measure from.", nameof(values));
        long baseValue = values[baseIndex].ValueMicroUsd;
        long[] over = values.Select(v => checked(v.ValueMicroUsd - baseValue)).ToArray();
        long? optimumOver = null;
        string? boundName = null;
        foreach (var (v, o) in values.Zip(over))
            if (IsBound(v.Policy) && SiteBacktestResult.IsControllable(o, v.ValueMicroUsd) && boundName is null) (optimumOver, boundName) = (o, v.Policy);

        // Dollars as doubles only for drawing: bar lengths and labels.
        double largest = 1;
        foreach (long o in over) largest = Math.Max(largest, Math.Abs(o / 1e6));
        (double scale, string unit) = Scale(largest);

        var plot = new Plot();
        var bars = new List<Bar>(values.Count);
        var positions = new double[values.Count];
        var labels = new string[values.Count];
        for (int i = 0; i < values.Count; i++)
        {
            double position = values.Count - 1 - i;
            double v = over[i] / 1e6 / scale;
            positions[i] = position;
            labels[i] = values[i].Policy;
            string label = i == baseIndex
                ? $"baseline: {FormatUsd(baseValue / 1e6)}"
                : FormatUsd(over[i] / 1e6, signed: true) +
                  (optimumOver is { } best && values[i].Policy != boundName
                      ? $" ({Percent((double)over[i] / best)})"
                      : "");
            bars.Add(new Bar
            {
                Position = position,
                Value = v,
                Size = 0.6,
                FillColor = IsBound(values[i].Policy) ? BoundColor : v >= 0 ? GainColor : LossColor,
                LineWidth = 0,
                Label = label,
            });
        }
        var barPlot = plot.Add.Bars(bars);
        barPlot.Horizontal = true;
        barPlot.ValueLabelStyle.FontSize = 16;
        plot.Add.VerticalLine(0, 1, Colors.Black);
        plot.Axes.Left.SetTicks(positions, labels);
        plot.Axes.Left.TickLabelStyle.FontSize = 16;

        // The axis spans the differences and zero, with room beside the bars for their labels (right of a gain, left of a loss).
        double low = Math.Min(0, bars.Min(b => b.Value)), high = Math.Max(0, bars.Max(b => b.Value));
        double range = high - low;
        if (range <= 0) { range = 1; high = 1; }
        plot.Axes.SetLimitsX(low - (low < 0 ? 0.3 : 0.04) * range, high + (high > 0 ? 0.3 : 0.04) * range);
        plot.Axes.SetLimitsY(-0.6, values.Count - 0.4);

        SetTitle(plot, SiteAndPeriod(site.Problem), $"Value over {baseline} by policy ({baseline} earned {FormatUsd(baseValue / 1e6)})");
        plot.XLabel(optimumOver is null
            ? $"Value over {baseline} ({unit})"
            : $"Value over {baseline} ({unit}; in brackets, the share of the gain to the {boundName})");
        plot.YLabel("Policy");
        ReportFonts.Apply(plot);
        return plot;
    }

    /// <summary>Saves <paramref name="plot"/> as a PNG of the given size (creating the folder), with the shipped fonts applied.</summary>
    public static void Save(Plot plot, string path, int width, int height)
    {
        ArgumentNullException.ThrowIfNull(plot);
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentOutOfRangeException.ThrowIfLessThan(width, 16);
        ArgumentOutOfRangeException.ThrowIfLessThan(height, 16);
        string? directory = Path.GetDirectoryName(Path.GetFullPath(path));
        if (!string.IsNullOrEmpty(directory)) System.IO.Directory.CreateDirectory(directory);
        ReportFonts.Apply(plot);
        plot.SavePng(path, width, height);
    }

    // Two lines: the site and period, then what the figure shows.
    private static void SetTitle(Plot plot, string siteAndPeriod, string what)
    {
        plot.Title(siteAndPeriod + "\n" + what);
        plot.Axes.Title.Label.Bold = true;
        plot.Axes.Title.Label.FontSize = 20;
    }

    // "24.7 %", "−51.1 %" (the minus sign the plots' other negatives have).
    private static string Percent(double fraction)
    {
        string text = Math.Abs(fraction * 100).ToString("0.0", CultureInfo.InvariantCulture) + " %";
        return fraction < 0 && text != "0.0 %" ? "−" + text : text;
    }

    // Ticks of a local-time axis (OADate) from x0 to x1: each midnight labelled with its day ("Sat 21 Aug"), each noon
    // "12:00", minor ticks every six hours.
    private static ScottPlot.TickGenerators.NumericManual LocalDayTicks(double x0, double x1)
    {
        var ticks = new ScottPlot.TickGenerators.NumericManual();
        DateTime first = DateTime.FromOADate(x0).Date, last = DateTime.FromOADate(x1);
        for (DateTime d = first; d <= last; d = d.AddHours(6))
        {
            double x = d.ToOADate();
            if (x < x0 - 1e-9) continue;
            if (d.Hour == 0) ticks.AddMajor(x, d.ToString("ddd d MMM", CultureInfo.InvariantCulture));
            else if (d.Hour == 12) ticks.AddMajor(x, "12:00");
            else ticks.AddMinor(x);
        }
        return ticks;
    }

    // Local wall-clock start of interval t as an OADate (the x of the week plot).
    private static double LocalX(SiteProblem p, int t) => p.IntervalStartUtc(t).AddHours(p.LocalUtcOffsetHours[t]).ToOADate();

    // The zone and the offsets the intervals [from, to) have: "US-Central, CDT = UTC−5" or "US-Central, CDT/CST".
    private static string ZoneText(BuiltSite site, SiteProblem p, int from, int to)
    {
        var offsets = new SortedSet<int>();
        for (int t = from; t < to; t++) offsets.Add(p.LocalUtcOffsetHours[t]);
        string[] names = offsets.Reverse().Select(o => Abbreviation(site.TimeZone.Id, o)).ToArray();
        if (offsets.Count == 1) return $"{site.TimeZone.Id}, {names[0]} = UTC{(offsets.Min < 0 ? "−" : "+")}{Math.Abs(offsets.Min)}";
        return $"{site.TimeZone.Id}, {string.Join('/', names)}";
    }

    private static string Abbreviation(string zone, int offsetHours) => (zone, offsetHours) switch
    {
        ("US-Central", -6) => "CST",
        ("US-Central", -5) => "CDT",
        ("US-Pacific", -8) => "PST",
        ("US-Pacific", -7) => "PDT",
        ("Asia-Tokyo", 9) => "JST",
        ("UTC", 0) => "UTC",
        _ => "UTC" + (offsetHours < 0 ? "−" : "+") + Math.Abs(offsetHours).ToString(CultureInfo.InvariantCulture),
    };

    // Each interval's value in [from, to) (micro-USD).
    private static long[] Values(IntervalLedger ledger, int from, int to)
    {
        var values = new long[to - from];
        for (int t = from; t < to; t++) values[t - from] = ledger.ValueMicroUsd(t);
        return values;
    }

    // Shades the maximal runs of intervals in [from, to) where the predicate holds, the first one with the legend text.
    private static void AddSpans(Plot plot, SiteProblem p, int from, int to, Func<int, bool> predicate, Color color, string legend)
    {
        bool labelled = false;
        foreach ((int a, int b) in Runs(from, to, predicate))
        {
            var span = plot.Add.HorizontalSpan(LocalX(p, a), LocalX(p, b - 1) + p.IntervalMinutes / 1440.0, color);
            span.LineWidth = 0;
            if (!labelled) span.LegendText = legend;
            labelled = true;
        }
    }

    // The intervals [from, to) whose start lies in [fromUtc, toUtc).
    private static (int From, int To) IntervalRange(SiteProblem p, DateTime fromUtc, DateTime toUtc)
    {
        double step = p.IntervalMinutes;
        int from = (int)Math.Clamp(Math.Ceiling((fromUtc - p.StartUtc).TotalMinutes / step), 0, p.Count);
        int to = (int)Math.Clamp(Math.Ceiling((toUtc - p.StartUtc).TotalMinutes / step), 0, p.Count);
        return (from, Math.Max(from, to));
    }

    // Maximal runs [a, b) of intervals in [from, to) where the predicate holds.
    private static List<(int A, int B)> Runs(int from, int to, Func<int, bool> predicate)
    {
        var runs = new List<(int, int)>();
        for (int t = from; t < to; t++)
        {
            if (!predicate(t)) continue;
            int a = t;
            while (t < to && predicate(t)) t++;
            runs.Add((a, t));
        }
        return runs;
    }

    private static (double Scale, string Unit) Scale(double largestUsd) => largestUsd switch
    {
        >= 1e6 => (1e6, "million USD"),
        >= 1e4 => (1e3, "thousand USD"),
        _ => (1, "USD"),
    };

    private static string FormatUsd(double usd, bool signed = false)
    {
        double a = Math.Abs(usd);
        string text = a switch
        {
            >= 1e6 => (a / 1e6).ToString("0.00", CultureInfo.InvariantCulture) + " M USD",
            >= 1e4 => (a / 1e3).ToString("0.0", CultureInfo.InvariantCulture) + " k USD",
            _ => a.ToString("0", CultureInfo.InvariantCulture) + " USD",
        };
        string sign = usd < 0 && text[0] != '0' ? "−" : signed && usd > 0 ? "+" : "";
        return sign + text;
    }
}
