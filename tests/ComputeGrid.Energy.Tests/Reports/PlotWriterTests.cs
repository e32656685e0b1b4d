using ComputeGrid.Energy.Backtesting;
using ComputeGrid.Energy.Dispatch;
using ComputeGrid.Energy.Reports;
using ComputeGrid.Energy.Sites;
using ScottPlot;
using SkiaSharp;

namespace ComputeGrid.Energy.Tests.Reports;

public sealed class PlotWriterTests
{
    private static readonly byte[] PngSignature = [0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A];

    private static readonly (string Policy, long ValueMicroUsd)[] Values =
    [
        (PlotWriter.OptimumName, 4_812_345_500_000), ("controller", 4_650_000_000_000), ("day-ahead", 4_400_000_000_000),
        ("threshold", 3_900_000_000_000), ("myopic", 3_100_000_000_000), ("always-on", -250_000_000_000),
    ];

    [Fact]
    public void Fonts_are_shipped_beside_the_assembly_and_registered_from_those_files()
    {
        string fonts = Path.Combine(AppContext.BaseDirectory, "Fonts");
        Assert.True(File.Exists(Path.Combine(fonts, ReportFonts.RegularFile)));
        Assert.True(File.Exists(Path.Combine(fonts, ReportFonts.BoldFile)));
        Assert.Contains("Bitstream Vera", File.ReadAllText(Path.Combine(fonts, "LICENSE.txt")));

        ReportFonts.EnsureRegistered();
        Assert.Equal(Path.GetFullPath(fonts), Path.GetFullPath(ReportFonts.Directory));
        // The family name is no installed font's: only the shipped files can resolve it.
        Assert.DoesNotContain(ReportFonts.Family, SKFontManager.Default.FontFamilies);
        Assert.Contains(Fonts.FontResolvers, r => r.CreateTypeface(ReportFonts.Family, FontWeight.Normal, FontSlant.Upright, FontSpacing.Normal) is not null);
        Assert.Contains(Fonts.FontResolvers, r => r.CreateTypeface(ReportFonts.Family, FontWeight.Bold, FontSlant.Upright, FontSpacing.Normal) is not null);
        SKTypeface regular = Fonts.GetTypeface(ReportFonts.Family, bold: false, italic: false);
        SKTypeface bold = Fonts.GetTypeface(ReportFonts.Family, bold: true, italic: false);
        Assert.Equal("DejaVu Sans", regular.FamilyName);
        Assert.Equal("DejaVu Sans", bold.FamilyName);
        Assert.True(bold.FontStyle.Weight >= (int)SKFontStyleWeight.Bold);
        Assert.True(regular.FontStyle.Weight < (int)SKFontStyleWeight.Bold);
        Assert.True(regular.ContainsGlyphs("Value by policy (USD/MWh) −"));
    }

    [Fact]
    public void The_three_plots_are_PNGs_of_the_requested_size()
    {
        SiteBacktestResult uri = ReportSites.Backtest(ReportSites.Utc(2021, 2, 13), ReportSites.Utc(2021, 2, 20), optimum: false);
        SiteBacktestResult summer = ReportSites.Backtest(ReportSites.Utc(2021, 6, 27), ReportSites.Utc(2021, 7, 4));
        using var dir = new TempFolder();

        string week = dir.File("week.png");
        PlotWriter.WeekPlot(week, uri, ReportSites.Utc(2021, 2, 13));
        AssertPng(week, PlotWriter.DefaultWidth, PlotWriter.DefaultHeight);

        string summerWeek = dir.File("nested/summer-week.png");
        PlotWriter.WeekPlot(summerWeek, summer, ReportSites.Utc(2021, 6, 27), 1200, 700);
        AssertPng(summerWeek, 1200, 700);

        string profit = dir.File("profit.png");
        PlotWriter.ProfitPlot(profit, summer.Site, summer.Controller, 1000, 600);
        AssertPng(profit, 1000, 600);

        string comparison = dir.File("comparison.png");
        PlotWriter.ComparisonPlot(comparison, summer, 900, 500);
        AssertPng(comparison, 900, 500);
    }

    [Fact]
    public void A_week_outside_the_horizon_is_refused()
    {
        (BuiltSite site, PolicyRun run) = ReportSites.UriWeek;
        Assert.Throws<ArgumentOutOfRangeException>(() => PlotWriter.CreateWeekPlot(site, run, null, ReportSites.Utc(2021, 5, 1)));
        Assert.Throws<ArgumentException>(() => PlotWriter.CreateComparisonPlot(site, []));
        // The differences need the baseline they are measured from.
        Assert.Throws<ArgumentException>(() => PlotWriter.CreateComparisonPlot(site, [("controller", 1_000_000)]));
    }

    [Fact]
    public void Bold_titles_are_drawn_with_the_bold_file()
    {
        // A label with a fixed typeface would ignore Bold; ReportFonts.Apply leaves the choice to the family's files.
        using Plot plot = PlotWriter.CreateComparisonPlot(ReportSites.SummerWeek.Site, Values);
        plot.Axes.Title.Label.Text = "Value by policy Hamburgefonstiv";
        plot.Axes.Title.Label.Bold = false;
        using SKBitmap regular = Render(plot, 1000, 500);
        PixelRect data = plot.LastRender.DataRect;
        int regularInk = DarkPixels(regular, 0, 0, 1000, (int)data.Top - 4);
        plot.Axes.Title.Label.Bold = true;
        using SKBitmap bold = Render(plot, 1000, 500);
        int boldInk = DarkPixels(bold, 0, 0, 1000, (int)plot.LastRender.DataRect.Top - 4);
        Assert.True(regularInk > 150, $"only {regularInk} dark pixels in the regular title");
        Assert.True(boldInk > regularInk * 13 / 10, $"bold title {boldInk} dark pixels, regular {regularInk}: the bold face was not used");
    }

    public static TheoryData<string> Kinds => new() { "week", "profit", "comparison" };

    /// <summary>
    /// The point of shipping fonts: without a usable font ScottPlot draws no text at all, silently. Each plot is
    /// rendered with its texts and again with the title and axis labels emptied; the first must have glyphs (dark
    /// pixels) in the title band and in the tick-label margins, where nothing but text is drawn, and differ
    /// substantially from the second.
    /// </summary>
    [Theory]
    [MemberData(nameof(Kinds))]
    public void Plots_draw_text(string kind)
    {
        const int width = 1200, height = 700;
        using Plot plot = Create(kind);
        using SKBitmap withText = Render(plot, width, height);
        PixelRect data = plot.LastRender.DataRect;

        // Control: the same plot with every text painted transparent (what a machine without fonts draws: the layout
        // is the same, the glyphs are missing). Whatever ink it has in a region is not text (frame, ticks, legend
        // symbols and box), so the difference to the real plot counts glyphs.
        using Plot control = Create(kind);
        control.Axes.Title.Label.ForeColor = Colors.Transparent;
        foreach (IAxis axis in control.Axes.GetAxes())
        {
            axis.Label.ForeColor = Colors.Transparent;
            axis.TickLabelStyle.ForeColor = Colors.Transparent;
        }
        control.Legend.FontColor = Colors.Transparent;
        foreach (var bars in control.GetPlottables<ScottPlot.Plottables.BarPlot>()) bars.ValueLabelStyle.ForeColor = Colors.Transparent;
        using SKBitmap noText = Render(control, width, height);
        Assert.Equal(data, control.LastRender.DataRect);

        (string Name, int X0, int Y0, int X1, int Y1)[] regions =
        [
            ("title band", (int)data.Left, 0, (int)data.Right, (int)data.Top - 4),
            ("left of the data area (tick and axis labels)", 0, (int)data.Top, (int)data.Left - 10, (int)data.Bottom),
            ("below the data area (tick and axis labels, legend)", (int)data.Left, (int)data.Bottom + 10, (int)data.Right, height),
        ];
        int titleInk = 0;
        foreach ((string name, int x0, int y0, int x1, int y1) in regions)
        {
            int ink = DarkPixels(withText, x0, y0, x1, y1), controlInk = DarkPixels(noText, x0, y0, x1, y1);
            Assert.True(ink - controlInk > 150,
                $"{kind}, {name}: {ink} dark pixels with text, {controlInk} without: no text was drawn (fonts missing?)");
            if (name == "title band")
            {
                Assert.Equal(0, controlInk);
                titleInk = ink;
            }
        }

        plot.Axes.Title.Label.Text = "";
        foreach (IAxis axis in plot.Axes.GetAxes()) axis.Label.Text = "";
        using SKBitmap withoutText = Render(plot, width, height);
        PixelRect bare = plot.LastRender.DataRect;
        Assert.True(bare.Top < data.Top, $"{kind}: the empty title should free its band");
        int bareTitleInk = DarkPixels(withoutText, (int)bare.Left, 0, (int)bare.Right, (int)bare.Top - 4);
        Assert.True(bareTitleInk < titleInk / 10, $"{kind}: {bareTitleInk} dark pixels above the data area without a title");
        int changed = ChangedPixels(withText, withoutText);
        Assert.True(changed > width * height / 50, $"{kind}: only {changed} pixels changed when the title and labels were removed");
    }

    private static Plot Create(string kind)
    {
        switch (kind)
        {
            case "week":
            {
                (BuiltSite site, PolicyRun run) = ReportSites.UriWeek;
                return PlotWriter.CreateWeekPlot(site, run, null, ReportSites.Utc(2021, 2, 13));
            }
            case "profit":
            {
                (BuiltSite site, PolicyRun run) = ReportSites.SummerWeek;
                return PlotWriter.CreateProfitPlot(site, IntervalLedger.Compute(site.Problem, run.Running), run.Policy);
            }
            default:
                return PlotWriter.CreateComparisonPlot(ReportSites.SummerWeek.Site, Values);
        }
    }

    private static SKBitmap Render(Plot plot, int width, int height)
    {
        ReportFonts.Apply(plot);
        byte[] png = plot.GetImageBytes(width, height, ImageFormat.Png);
        SKBitmap? bitmap = SKBitmap.Decode(png);
        Assert.NotNull(bitmap);
        Assert.Equal(width, bitmap.Width);
        Assert.Equal(height, bitmap.Height);
        return bitmap;
    }

    private static void AssertPng(string path, int width, int height)
    {
        byte[] bytes = File.ReadAllBytes(path);
        Assert.True(bytes.Length > 1000, $"{path} is only {bytes.Length} bytes");
        Assert.Equal(PngSignature, bytes[..8]);
        using SKBitmap? bitmap = SKBitmap.Decode(bytes);
        Assert.NotNull(bitmap);
        Assert.Equal(width, bitmap.Width);
        Assert.Equal(height, bitmap.Height);
        Assert.True(DarkPixels(bitmap, 0, 0, width, height) > 1000, $"{path} is nearly blank");
    }

    // Pixels darker than mid-grey in [x0, x1) × [y0, y1), clipped to the image.
    private static int DarkPixels(SKBitmap bitmap, int x0, int y0, int x1, int y1)
    {
        x0 = Math.Max(0, x0); y0 = Math.Max(0, y0);
        x1 = Math.Min(bitmap.Width, x1); y1 = Math.Min(bitmap.Height, y1);
        int count = 0;
        for (int y = y0; y < y1; y++)
            for (int x = x0; x < x1; x++)
            {
                SKColor c = bitmap.GetPixel(x, y);
                if (c.Alpha > 128 && 0.299 * c.Red + 0.587 * c.Green + 0.114 * c.Blue < 110) count++;
            }
        return count;
    }

    private static int ChangedPixels(SKBitmap a, SKBitmap b)
    {
        int count = 0;
        for (int y = 0; y < a.Height; y++)
            for (int x = 0; x < a.Width; x++)
            {
                SKColor p = a.GetPixel(x, y), q = b.GetPixel(x, y);
                if (Math.Abs(p.Red - q.Red) + Math.Abs(p.Green - q.Green) + Math.Abs(p.Blue - q.Blue) > 60) count++;
            }
        return count;
    }
}
