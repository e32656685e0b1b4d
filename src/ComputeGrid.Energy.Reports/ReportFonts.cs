using ScottPlot;
using ScottPlot.FontResolvers;

namespace ComputeGrid.Energy.Reports;

/// <summary>
/// The fonts every plot of this project draws its text with: DejaVu Sans and DejaVu Sans Bold, shipped as files in
/// the <c>Fonts</c> folder beside this assembly (see <c>Fonts/LICENSE.txt</c>). ScottPlot otherwise asks the
/// machine for a font, and on a machine without fonts it silently draws no text at all; registering the shipped
/// files under a family name no installed font has makes every plot look the same on every machine.
/// </summary>
public static class ReportFonts
{
    /// <summary>The family name the shipped fonts are registered under (deliberately not an installed font's name).</summary>
    public const string Family = "ComputeGrid DejaVu Sans";

    /// <summary>File name of the regular face in the <c>Fonts</c> folder.</summary>
    public const string RegularFile = "DejaVuSans.ttf";

    /// <summary>File name of the bold face in the <c>Fonts</c> folder.</summary>
    public const string BoldFile = "DejaVuSans-Bold.ttf";

    private static readonly Lock Gate = new();
    private static string? _directory;

    /// <summary>The folder the font files were registered from (registering them first if needed).</summary>
    public static string Directory
    {
        get
        {
            EnsureRegistered();
            return _directory!;
        }
    }

    /// <summary>
    /// Registers the shipped font files with ScottPlot under <see cref="Family"/> and makes that family ScottPlot's
    /// default (<c>ScottPlot.Fonts.Default</c>), once per process; later calls do nothing. Called by every
    /// <see cref="PlotWriter"/> method.
    /// </summary>
    /// <exception cref="FileNotFoundException">The <c>Fonts</c> folder or one of its files is not beside the assembly.</exception>
    public static void EnsureRegistered()
    {
        if (Volatile.Read(ref _directory) is not null) return;
        lock (Gate)
        {
            if (_directory is not null) return;
            string directory = FindDirectory();
            string regular = Path.Combine(directory, RegularFile);
            string bold = Path.Combine(directory, BoldFile);
            // Ahead of the system resolver, so the shipped files win even if a font of the same name were installed.
            Fonts.FontResolvers.Insert(0, new FileFontResolver(Family, regular, FontWeight.Normal, FontSlant.Upright, FontSpacing.Normal));
            Fonts.FontResolvers.Insert(0, new FileFontResolver(Family, bold, FontWeight.Bold, FontSlant.Upright, FontSpacing.Normal));
            // Labels ScottPlot creates from now on (legend items, bar value labels) start from the shipped family.
            Fonts.Default = Family;
            Volatile.Write(ref _directory, directory);
        }
    }

    /// <summary>
    /// Sets every text of <paramref name="plot"/> to the shipped family: title, axis labels, tick labels, the legend
    /// and the labels of bar plots, axis lines and text plottables. Call it after the plottables are added.
    /// </summary>
    /// <remarks>
    /// Unlike ScottPlot's <c>plot.Font.Set</c>, this names the family on each label and clears the label's fixed
    /// typeface, so the label's <c>Bold</c> still picks the bold file (a fixed typeface would draw every text regular),
    /// and it leaves ScottPlot's global default typeface alone.
    /// </remarks>
    public static void Apply(Plot plot)
    {
        ArgumentNullException.ThrowIfNull(plot);
        EnsureRegistered();
        Use(plot.Axes.Title.Label);
        foreach (IAxis axis in plot.Axes.GetAxes())
        {
            Use(axis.Label);
            Use(axis.TickLabelStyle);
        }
        plot.Legend.FontName = Family;
        foreach (IPlottable plottable in plot.GetPlottables())
        {
            switch (plottable)
            {
                case ScottPlot.Plottables.BarPlot bars:
                    Use(bars.ValueLabelStyle);
                    break;
                case ScottPlot.Plottables.AxisLine line:
                    Use(line.LabelStyle);
                    break;
                case ScottPlot.Plottables.Text text:
                    Use(text.LabelStyle);
                    break;
            }
        }
    }

    private static void Use(LabelStyle label)
    {
        label.FontName = Family;
        label.Font = null;
    }

    private static string FindDirectory()
    {
        var candidates = new List<string> { Path.Combine(AppContext.BaseDirectory, "Fonts") };
        string? assemblyDirectory = Path.GetDirectoryName(typeof(ReportFonts).Assembly.Location);
        if (!string.IsNullOrEmpty(assemblyDirectory)) candidates.Add(Path.Combine(assemblyDirectory, "Fonts"));
        candidates = candidates.Select(Path.GetFullPath).Distinct(StringComparer.Ordinal).ToList();
        foreach (string candidate in candidates)
            if (File.Exists(Path.Combine(candidate, RegularFile)) && File.Exists(Path.Combine(candidate, BoldFile)))
                return candidate;
        throw new FileNotFoundException(
            $"The report fonts ({RegularFile}, {BoldFile}) are not in {string.Join(" or ", candidates)}; " +
            "they are copied there by the build of ComputeGrid.Energy.Reports.", RegularFile);
    }
}
