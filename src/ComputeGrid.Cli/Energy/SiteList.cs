using System.Globalization;
using ComputeGrid.Cli.Market;
using ComputeGrid.Energy.Sites;

namespace ComputeGrid.Cli.Energy;

/// <summary>
/// <c>computegrid backtest</c> with no site: the example sites any command takes by name (<c>backtest NAME</c>,
/// <c>serve --site NAME</c>), one row each: the market, the GPUs and listed nodes, the miners. From the site files
/// alone (no price data is read), so it answers at once.
/// </summary>
internal static class SiteList
{
    /// <summary>Prints the table and how to run one; returns 0.</summary>
    public static int Print(TextWriter o)
    {
        var rows = SiteExamples.Names.Select(name =>
        {
            SiteConfig c = SiteExamples.Load(name);
            return new[]
            {
                name, SiteMarket.Describe(c), Count(c.Gpus.Sum(g => (long)g.Count)), Count(c.Nodes.Length), Count(c.Miners.Sum(m => (long)m.Count)),
            };
        });
        MarketFormat.Table(o, ["SITE", "MARKET", "GPUS", "NODES", "MINERS"], rows, "GPUS", "NODES", "MINERS");
        o.WriteLine();
        o.WriteLine("Run one: computegrid backtest NAME [--from DATE --to DATE]; or give a site file (examples/sites/README.md).");
        return 0;
    }

    private static string Count(long n) => n.ToString("N0", CultureInfo.InvariantCulture);
}
