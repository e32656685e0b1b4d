using System.Globalization;
using ComputeGrid.Energy.Dispatch;
using ComputeGrid.Energy.Sites;
using ScottPlot;

namespace ComputeGrid.Energy.Reports;

/// <summary>
/// The backtest's figures as PNG files, drawn headless with ScottPlot. Every text is drawn with the shipped
/// <see cref="ReportFonts"/>, so a figure looks the same on every machine, fonts installed or not. Each
/// <c>…Plot</c> method writes a file; the matching <c>Create…</c> method returns the ScottPlot <see cref="Plot"/>
/// (to restyle or render elsewhere; the caller disposes it).
/// </summary>
public static class PlotWriter
{
    /// <summary>Default image width (pixels).</summary>
    public const int DefaultWidth = 1600;

    /// <summary>Default image height (pixels).</summary>
    public const int DefaultHeight = 900;

    private static readonly Color AiColor = Color.FromHex("#1F77B4");
    private static readonly Color MinerColor = Color.FromHex("#FF7F0E");
    private static readonly Color HeadroomColor = Color.FromHex("#D9D9D9");
    private static readonly Color LimitColor = Color.FromHex("#D62728");
    private static readonly Color PriceColor = Color.FromHex("#222222");
    private static readonly Color EmergencyColor = Color.FromHex("#D62728").WithAlpha(0.18);
    private static readonly Color PeakColor = Color.FromHex("#9467BD").WithAlpha(0.35);
    private static readonly Color EnergyColor = Color.FromHex("#8C564B");
    private static readonly Color PeakChargeColor = Color.FromHex("#9467BD");
    private static readonly Color WearColor = Color.FromHex("#7F7F7F");
    private static readonly Color NetColor = Color.FromHex("#000000");
    private static readonly Color GainColor = Color.FromHex("#2CA02C");
    private static readonly Color LossColor = Color.FromHex("#D62728");

    /// <summary>
    /// Writes a week of <paramref name="run"/>: the facility power split as stacked areas (AI, miners, headroom up to
    /// the interconnect limit, drawn as a line), the real-time price on the right axis, and the grid-emergency and
    /// peak-charge intervals shaded.
    /// </summary>
    /// <param name="path">The PNG file to write (overwritten; its folder is created).</param>
    /// <param name="site">The site the run was made over.</param>
    /// <param name="run">The policy's run.</param>
    /// <param name="weekStartUtc">Start of the week (UTC); the seven days from it that the horizon covers are drawn.</param>
    /// <param name="width">Image width (pixels).</param>
    /// <param name="height">Image height (pixels).</param>
    /// <exception cref="ArgumentOutOfRangeException">The week holds no interval of the horizon.</exception>
    public static void WeekPlot(string path, BuiltSite site, PolicyRun run, DateTime weekStartUtc, int width = DefaultWidth, int height = DefaultHeight)
    {
        ArgumentNullException.ThrowIfNull(site);
        ArgumentNullException.ThrowIfNull(run);
        using Plot plot = CreateWeekPlot(site, IntervalLedger.Compute(site.Problem, run.Running), run.Policy, weekStartUtc);
        Save(plot, path, width, height);
    }

    /// <summary>Builds the figure of <see cref="WeekPlot"/> for a schedule's <paramref name="ledger"/> (fractional schedules too).</summary>
    /// <exception cref="ArgumentOutOfRangeException">The week holds no interval of the horizon.</exception>
    public static Plot CreateWeekPlot(BuiltSite site, IntervalLedger ledger, string policy, DateTime weekStartUtc)
    {
        ArgumentNullException.ThrowIfNull(site);
        ArgumentNullException.ThrowIfNull(ledger);
        SiteProblem p = ledger.Problem;
        DateTime weekStart = DateTime.SpecifyKind(weekStartUtc, DateTimeKind.Utc);
        (int from, int to) = IntervalRange(p, weekStart, weekStart.AddDays(7));
        if (from >= to)
            throw new ArgumentOutOfRangeException(nameof(weekStartUtc), weekStartUtc,
                $"The week holds no interval of the horizon ({p.StartUtc:yyyy-MM-dd HH:mm} to {p.IntervalStartUtc(p.Count):yyyy-MM-dd HH:mm} UTC).");

        // Step shapes: each interval is drawn flat from its start to its end.
        int n = to - from, m = 2 * n;
        var xs = new double[m];
        var zero = new double[m];
        var ai = new double[m];
        var aiMiners = new double[m];
        var limit = new double[m];
        var price = new double[m];
        double limitMw = p.InterconnectKw / 1000.0;
        double priceMin = double.PositiveInfinity, priceMax = double.NegativeInfinity;
        for (int i = 0; i < n; i++)
        {
            int t = from + i;
            xs[2 * i] = p.IntervalStartUtc(t).ToOADate();
            xs[2 * i + 1] = p.IntervalStartUtc(t + 1).ToOADate();
            double aiMw = p.Pue * p.AiItKw[t] / 1000.0;
            double minerMw = p.Pue * ledger.MinerItKw[t] / 1000.0;
            ai[2 * i] = ai[2 * i + 1] = aiMw;
            aiMiners[2 * i] = aiMiners[2 * i + 1] = aiMw + minerMw;
            limit[2 * i] = limit[2 * i + 1] = Math.Max(limitMw, aiMw + minerMw);
            price[2 * i] = price[2 * i + 1] = p.PriceUsdPerMwh[t];
            priceMin = Math.Min(priceMin, p.PriceUsdPerMwh[t]);
            priceMax = Math.Max(priceMax, p.PriceUsdPerMwh[t]);
        }

        var plot = new Plot();
        plot.Axes.DateTimeTicksBottom();

        // Shading first, so the areas and lines are drawn over it.
        bool emergencyLabelled = false, peakLabelled = false;
        foreach ((int a, int b) in Runs(from, to, t => p.Emergency[t]))
        {
            var span = plot.Add.HorizontalSpan(p.IntervalStartUtc(a).ToOADate(), p.IntervalStartUtc(b).ToOADate(), EmergencyColor);
            span.LineWidth = 0;
            if (!emergencyLabelled) span.LegendText = "Grid emergency (miners off)";
            emergencyLabelled = true;
        }

        var aiFill = plot.Add.FillY(xs, zero, ai);
        aiFill.FillColor = AiColor.WithAlpha(0.85);
        aiFill.LineWidth = 0;
        aiFill.LegendText = "AI (facility MW)";
        var minerFill = plot.Add.FillY(xs, ai, aiMiners);
        minerFill.FillColor = MinerColor.WithAlpha(0.85);
        minerFill.LineWidth = 0;
        minerFill.LegendText = "Miners (facility MW)";
        var headroomFill = plot.Add.FillY(xs, aiMiners, limit);
        headroomFill.FillColor = HeadroomColor.WithAlpha(0.7);
        headroomFill.LineWidth = 0;
        headroomFill.LegendText = "Headroom (MW)";

        foreach ((int a, int b) in Runs(from, to, t => p.PeakChargeUsdPerKw[t] != 0))
        {
            var span = plot.Add.HorizontalSpan(p.IntervalStartUtc(a).ToOADate(), p.IntervalStartUtc(b).ToOADate(), PeakColor);
            span.LineWidth = 0;
            if (!peakLabelled) span.LegendText = "Peak-charge interval";
            peakLabelled = true;
        }

        var limitLine = plot.Add.HorizontalLine(limitMw, 2, LimitColor, LinePattern.Dashed);
        limitLine.LegendText = $"Interconnect limit ({limitMw.ToString("0.#", CultureInfo.InvariantCulture)} MW)";

        var priceLine = plot.Add.ScatterLine(xs, price, PriceColor);
        priceLine.LineWidth = 1.2f;
        priceLine.LegendText = "Real-time price (USD/MWh, right axis)";
        priceLine.Axes.XAxis = plot.Axes.Bottom;
        priceLine.Axes.YAxis = plot.Axes.Right;

        long weekValue = 0;
        for (int t = from; t < to; t++) weekValue = checked(weekValue + ledger.ValueMicroUsd(t));
        SetTitle(plot, $"{site.Problem.Name}: {policy}, week of {weekStart.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture)} " +
                   $"(value {FormatUsd(weekValue / 1e6)})");
        plot.XLabel("Time (UTC)");
        plot.YLabel("Facility power (MW)");
        plot.Axes.Right.Label.Text = "Real-time price (USD/MWh)";

        plot.Axes.SetLimitsX(xs[0], xs[^1], plot.Axes.Bottom);
        double top = Math.Max(limitMw, aiMiners.Max()) * 1.12;
        plot.Axes.SetLimitsY(0, top, plot.Axes.Left);
        double pad = Math.Max(1, (priceMax - priceMin) * 0.08);
        plot.Axes.SetLimitsY(Math.Min(0, priceMin - pad), priceMax + pad, plot.Axes.Right);

        plot.ShowLegend(Edge.Bottom);
        ReportFonts.Apply(plot);
        return plot;
    }

    /// <summary>
    /// Writes <paramref name="run"/>'s profit by local calendar month as stacked bars: AI and mining revenue above
    /// zero, energy cost, peak charge and restart wear below it (an energy income from negative prices stacks above),
    /// and the month's net value as a line with markers.
    /// </summary>
    /// <param name="path">The PNG file to write (overwritten; its folder is created).</param>
    /// <param name="site">The site the run was made over.</param>
    /// <param name="run">The policy's run.</param>
    /// <param name="width">Image width (pixels).</param>
    /// <param name="height">Image height (pixels).</param>
    public static void MonthlyProfitPlot(string path, BuiltSite site, PolicyRun run, int width = DefaultWidth, int height = DefaultHeight)
    {
        ArgumentNullException.ThrowIfNull(site);
        ArgumentNullException.ThrowIfNull(run);
        using Plot plot = CreateMonthlyProfitPlot(site, IntervalLedger.Compute(site.Problem, run.Running), run.Policy);
        Save(plot, path, width, height);
    }

    /// <summary>Builds the figure of <see cref="MonthlyProfitPlot"/> for a schedule's <paramref name="ledger"/>.</summary>
    public static Plot CreateMonthlyProfitPlot(BuiltSite site, IntervalLedger ledger, string policy)
    {
        ArgumentNullException.ThrowIfNull(site);
        ArgumentNullException.ThrowIfNull(ledger);
        SiteProblem p = ledger.Problem;

        // Local calendar months in order, with each source's signed contribution (micro-USD).
        var months = new List<DateTime>();
        var sums = new List<long[]>(); // ai, mining, -energy, -peak, -wear
        for (int t = 0; t < p.Count; t++)
        {
            DateTime local = p.IntervalStartUtc(t).AddHours(p.LocalUtcOffsetHours[t]);
            var month = new DateTime(local.Year, local.Month, 1, 0, 0, 0, DateTimeKind.Unspecified);
            if (months.Count == 0 || months[^1] != month)
            {
                months.Add(month);
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
        var positive = new double[months.Count];
        var negative = new double[months.Count];
        for (int k = 0; k < names.Length; k++)
        {
            var bars = new List<Bar>(months.Count);
            for (int i = 0; i < months.Count; i++)
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

        var xs = new double[months.Count];
        var net = new double[months.Count];
        for (int i = 0; i < months.Count; i++)
        {
            xs[i] = i;
            long total = 0;
            foreach (long v in sums[i]) total = checked(total + v);
            net[i] = total / 1e6 / scale;
        }
        var netLine = plot.Add.Scatter(xs, net, NetColor);
        netLine.LineWidth = 2;
        netLine.MarkerSize = 9;
        netLine.MarkerShape = MarkerShape.FilledDiamond;
        netLine.LegendText = "Net value";

        plot.Add.HorizontalLine(0, 1, Colors.Black);
        // One label per month; beyond a year, on two lines so they stay apart.
        string format = months.Count > 12 ? "MMM'\n'yyyy" : "MMM yyyy";
        string[] labels = months.Select(d => d.ToString(format, CultureInfo.InvariantCulture)).ToArray();
        plot.Axes.Bottom.SetTicks(xs, labels);
        plot.Axes.SetLimitsX(-0.6, months.Count - 0.4);
        plot.Axes.Margins(horizontal: 0, vertical: 0.08);

        long totalValue = 0;
        foreach (long[] s in sums) foreach (long v in s) totalValue = checked(totalValue + v);
        SetTitle(plot, $"{site.Problem.Name}: {policy}, profit by month (total {FormatUsd(totalValue / 1e6)})");
        plot.XLabel("Month (local time)");
        plot.YLabel($"Profit ({unit})");
        plot.ShowLegend(Edge.Right);
        ReportFonts.Apply(plot);
        return plot;
    }

    /// <summary>Writes each policy's value as a horizontal bar (first policy on top), gains green, losses red, values labelled.</summary>
    /// <param name="path">The PNG file to write (overwritten; its folder is created).</param>
    /// <param name="values">Each policy's name and value (micro-USD, as the accounting keeps it).</param>
    /// <param name="width">Image width (pixels).</param>
    /// <param name="height">Image height (pixels).</param>
    /// <exception cref="ArgumentException"><paramref name="values"/> is empty.</exception>
    public static void ComparisonPlot(string path, IReadOnlyList<(string Policy, long ValueMicroUsd)> values, int width = DefaultWidth, int height = DefaultHeight)
    {
        using Plot plot = CreateComparisonPlot(values);
        Save(plot, path, width, height);
    }

    /// <summary>Builds the figure of <see cref="ComparisonPlot"/>.</summary>
    /// <param name="values">Each policy's name and value (micro-USD, as the accounting keeps it).</param>
    /// <param name="title">The title (default: "Value by policy").</param>
    /// <exception cref="ArgumentException"><paramref name="values"/> is empty.</exception>
    public static Plot CreateComparisonPlot(IReadOnlyList<(string Policy, long ValueMicroUsd)> values, string? title = null)
    {
        ArgumentNullException.ThrowIfNull(values);
        if (values.Count == 0) throw new ArgumentException("There is no policy to compare.", nameof(values));
        // Dollars as doubles only for drawing: bar lengths and labels.
        double[] usd = values.Select(v => v.ValueMicroUsd / 1e6).ToArray();
        double largest = 1;
        foreach (double v in usd) largest = Math.Max(largest, Math.Abs(v));
        (double scale, string unit) = Scale(largest);

        var plot = new Plot();
        var bars = new List<Bar>(values.Count);
        var positions = new double[values.Count];
        var labels = new string[values.Count];
        for (int i = 0; i < values.Count; i++)
        {
            double position = values.Count - 1 - i;
            double v = usd[i] / scale;
            positions[i] = position;
            labels[i] = values[i].Policy;
            bars.Add(new Bar
            {
                Position = position,
                Value = v,
                Size = 0.6,
                FillColor = v >= 0 ? GainColor : LossColor,
                LineWidth = 0,
                Label = FormatUsd(usd[i]),
            });
        }
        var barPlot = plot.Add.Bars(bars);
        barPlot.Horizontal = true;
        barPlot.ValueLabelStyle.FontSize = 16;
        plot.Add.VerticalLine(0, 1, Colors.Black);
        plot.Axes.Left.SetTicks(positions, labels);
        plot.Axes.Left.TickLabelStyle.FontSize = 16;
        // Room beside the bars for their value labels (right of a gain, left of a loss).
        double low = Math.Min(0, bars.Min(b => b.Value)), high = Math.Max(0, bars.Max(b => b.Value));
        double range = Math.Max(high - low, 1e-9);
        plot.Axes.SetLimitsX(low - (low < 0 ? 0.25 : 0.03) * range, high + (high > 0 ? 0.25 : 0.03) * range);
        plot.Axes.SetLimitsY(-0.6, values.Count - 0.4);
        SetTitle(plot, title ?? "Value by policy");
        plot.XLabel($"Value ({unit})");
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

    private static void SetTitle(Plot plot, string text)
    {
        plot.Title(text);
        plot.Axes.Title.Label.Bold = true;
        plot.Axes.Title.Label.FontSize = 20;
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

    private static string FormatUsd(double usd)
    {
        double a = Math.Abs(usd);
        string text = a switch
        {
            >= 1e6 => (usd / 1e6).ToString("0.00", CultureInfo.InvariantCulture) + " M USD",
            >= 1e4 => (usd / 1e3).ToString("0.0", CultureInfo.InvariantCulture) + " k USD",
            _ => usd.ToString("0", CultureInfo.InvariantCulture) + " USD",
        };
        return text;
    }
}
