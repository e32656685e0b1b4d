using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using static ComputeGrid.Cli.Ops.OpsTable;

namespace ComputeGrid.Cli.Ops;

/// <summary>
/// <c>computegrid nodes</c>: every inference node the router knows (<c>/api/inference/nodes</c>: region, price,
/// capacity, requests running, health) beside the site it runs at and that site's power state (<c>/api/energy/sites</c>:
/// the sites list their nodes by id; a node at no live site shows "-"). Utilization is requests running ÷ capacity;
/// the price is micro-USD per 1,000 tokens; the power is the site's marginal price in $/MWh, marked 4CP in a
/// peak-charge hour and EMERG in a grid emergency.
/// </summary>
internal static class NodesView
{
    /// <summary>Fetches the routing table and the sites.</summary>
    public static async Task<OpsCommands.View> FetchAsync(OpsClient client, CancellationToken ct)
    {
        var nodes = await client.GetAsync("/api/inference/nodes", ct);
        var sites = await client.GetAsync("/api/energy/sites", ct);
        var json = new JsonObject { ["nodes"] = OpsCommands.Node(nodes), ["sites"] = OpsCommands.Node(sites) };
        return new(json, o => Write(o, nodes.Json, sites.Json));
    }

    private static void Write(TextWriter o, JsonElement nodes, JsonElement sites)
    {
        // Each node's site: the live site whose file lists it.
        var siteOf = new Dictionary<string, JsonElement>(StringComparer.Ordinal);
        foreach (JsonElement s in sites.EnumerateArray())
            if (s.TryGetProperty("nodes", out var listed))
                foreach (JsonElement n in listed.EnumerateArray()) siteOf[Str(n, "node_id")] = s;
        var rows = nodes.GetProperty("nodes").EnumerateArray().Select(n =>
        {
            string id = Str(n, "id");
            long capacity = Long(n, "capacity") ?? 0, inflight = Long(n, "inflight") ?? 0;
            string utilization = capacity > 0 ? (100 * inflight / capacity).ToString(CultureInfo.InvariantCulture) + "%" : "-";
            string health = Bool(n, "healthy") ? "up" : Bool(n, "failed") ? "failed" : "down";
            string site = "-", power = "-";
            if (siteOf.TryGetValue(id, out JsonElement s))
            {
                site = Str(s, "name");
                power = Power(s);
            }
            return new[] { id, Str(n, "region"), site, utilization, Count(Long(n, "price_micro_usd_per_1k_tokens") ?? 0), health, power };
        }).ToList();
        if (rows.Count == 0)
        {
            o.WriteLine("no inference nodes connected (serve --demo starts some; computegrid node runs one)");
            return;
        }
        OpsTable.Write(o, ["NODE", "REGION", "SITE", "UTIL", "PRICE", "HEALTH", "POWER"], rows,
            right: ["UTIL", "PRICE"], shrink: ["NODE", "REGION", "SITE"]);
        o.WriteLine("UTIL: running/capacity; PRICE: micro-USD per 1k tokens; POWER: site $/MWh");
    }

    // The site's published power state: its marginal price in $/MWh (integer micro-USD per MWh shown to the cent) and flags.
    private static string Power(JsonElement site)
    {
        if (!site.TryGetProperty("power", out var p) || p.ValueKind != JsonValueKind.Object) return "n/a";
        long micro = Long(p, "price_micro_usd_per_mwh") ?? 0;
        string price = ComputeGrid.Cli.Market.MarketFormat.Usd(micro - micro % 10_000);
        string flags = (Bool(p, "peak_hour") ? " 4CP" : "") + (Bool(p, "emergency") ? " EMERG" : "");
        return price + flags;
    }
}
