namespace ComputeGrid.Energy.Sites;

/// <summary>
/// The power market a site buys in, as one short label for tables (<c>ERCOT West LMP</c>, <c>CAISO SP-15 LMP</c>,
/// <c>JEPX area price tokyo</c>): the market operator, from the price file's name (the data files are named
/// <c>OPERATOR_…</c>, <c>data/README.md</c>), and the price column the site pays.
/// </summary>
public static class SiteMarket
{
    /// <summary>The label of <paramref name="config"/>'s market.</summary>
    public static string Describe(SiteConfig config)
    {
        string file = Path.GetFileNameWithoutExtension(config.Prices.File);
        int cut = file.IndexOf('_', StringComparison.Ordinal);
        string market = (cut > 0 ? file[..cut] : file).ToUpperInvariant();
        return $"{market} {config.Prices.Column.Replace('_', ' ')}";
    }
}
