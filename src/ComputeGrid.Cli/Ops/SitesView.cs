using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using static ComputeGrid.Cli.Ops.OpsTable;

namespace ComputeGrid.Cli.Ops;

/// <summary>
/// <c>computegrid sites</c>: each live site's market and replayed time, then its price now, where its power goes
/// (GPUs, miners, miners held off), miners running and the P&amp;L the ledger holds for it. From
/// <c>/api/energy/sites</c> and, per site, <c>/api/energy/sites/{name}/pnl</c> (a site not booked in the ledger shows
/// "-"). Power in MW, money in whole dollars (the JSON has micro-USD).
/// </summary>
internal static class SitesView
{
    /// <summary>Fetches the sites and their P&amp;L.</summary>
    public static async Task<OpsCommands.View> FetchAsync(OpsClient client, CancellationToken ct)
    {
        var sites = await client.GetAsync("/api/energy/sites", ct);
        var pnl = new Dictionary<string, OpsClient.Answer?>();
        var pnlJson = new JsonObject();
        foreach (JsonElement s in sites.Json.EnumerateArray())
        {
            string name = Str(s, "name");
            var answer = await client.GetOptionalAsync($"/api/energy/sites/{Uri.EscapeDataString(name)}/pnl", ct);
            pnl[name] = answer;
            pnlJson[name] = OpsCommands.Node(answer);
        }
        var json = new JsonObject { ["sites"] = OpsCommands.Node(sites), ["pnl"] = pnlJson };
        return new(json, o => Write(o, sites.Json, pnl));
    }

    private static void Write(TextWriter o, JsonElement sites, Dictionary<string, OpsClient.Answer?> pnl)
    {
        var list = sites.EnumerateArray().ToList();
        if (list.Count == 0)
        {
            o.WriteLine("no live sites (serve runs ercot-west-reference unless given --site NAME|FILE or --no-sites)");
            return;
        }
        OpsTable.Write(o, ["SITE", "MARKET", "REPLAYED", "SPEED"], list.Select(s => new[]
        {
            Str(s, "name"), Str(s, "market"), Time(s, "series_time_utc"), (Num(s, "speed") ?? 0).ToString("0.##", CultureInfo.InvariantCulture) + "x",
        }), right: ["SPEED"], shrink: ["SITE", "MARKET"]);
        o.WriteLine();
        OpsTable.Write(o, ["SITE", "$/MWH", "GPU MW", "MINER MW", "OFF MW", "MINERS ON", "P&L"], list.Select(s =>
        {
            var groups = s.GetProperty("groups").EnumerateArray().ToList();
            long running = groups.Sum(g => Long(g, "machines_running") ?? 0), miners = groups.Sum(g => Long(g, "miners") ?? 0);
            string profit = pnl.GetValueOrDefault(Str(s, "name")) is { } p ? Dollars(Long(p.Json, "value_micro_usd") ?? 0) : "-";
            return new[]
            {
                Str(s, "name"), Num(s, "last_price_usd_per_mwh") is { } price ? price.ToString("0.00", CultureInfo.InvariantCulture) : "-",
                Mw(Num(s, "ai_facility_kw")), Mw(Num(s, "miner_facility_kw")), Mw(Num(s, "curtailed_miner_kw")),
                $"{Count(running)}/{Count(miners)}", profit,
            };
        }), right: ["$/MWH", "GPU MW", "MINER MW", "OFF MW", "MINERS ON", "P&L"], shrink: ["SITE"]);
        o.WriteLine("MW with cooling; OFF: miners curtailed; P&L: from the ledger, USD");
    }
}
