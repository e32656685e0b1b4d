using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using static ComputeGrid.Cli.Ops.OpsTable;

namespace ComputeGrid.Cli.Ops;

/// <summary>
/// <c>computegrid status</c>: one screen of what an operator checks first. Health (<c>/healthz</c>), the ledger's last op
/// and chain head (<c>/api/ledger/chain</c>), the latest checkpoint and its root (<c>/api/ledger/checkpoints/latest</c>),
/// the chain and the latest anchored checkpoint when the server has one (<c>/api/chain</c>,
/// <c>/api/chain/anchors/latest</c>), each live site's replay and power (<c>/api/energy/sites</c>, operators and
/// providers) and how many inference nodes are up (<c>/api/inference/nodes</c>).
/// </summary>
internal static class StatusView
{
    /// <summary>Fetches everything; exit code 1 when the server says it is unhealthy.</summary>
    public static async Task<OpsCommands.View> FetchAsync(OpsClient client, CancellationToken ct)
    {
        var (healthy, problem) = await client.HealthAsync(ct);
        var head = await client.GetAsync("/api/ledger/chain", ct);
        var checkpoint = await client.GetOptionalAsync("/api/ledger/checkpoints/latest", ct);
        var chain = await client.GetOptionalAsync("/api/chain", ct);
        var anchor = chain is null ? null : await client.GetOptionalAsync("/api/chain/anchors/latest", ct);
        var sites = await client.GetAsync("/api/energy/sites", ct);
        var nodes = await client.GetAsync("/api/inference/nodes", ct);
        var json = new JsonObject
        {
            ["url"] = client.Target.Url,
            ["health"] = healthy is null ? new JsonObject { ["status"] = "unavailable", ["problem"] = problem } : OpsCommands.Node(healthy),
            ["ledger_chain"] = OpsCommands.Node(head),
            ["checkpoint"] = OpsCommands.Node(checkpoint),
            ["chain"] = OpsCommands.Node(chain),
            ["anchor"] = OpsCommands.Node(anchor),
            ["sites"] = OpsCommands.Node(sites),
            ["nodes"] = OpsCommands.Node(nodes),
        };
        return new(json, o => Write(o, client.Target, problem, head.Json, checkpoint?.Json, chain?.Json, anchor?.Json, sites.Json, nodes.Json),
            healthy is null ? 1 : 0);
    }

    private static void Write(TextWriter o, ServerTarget target, string problem, JsonElement head, JsonElement? checkpoint, JsonElement? chain,
        JsonElement? anchor, JsonElement sites, JsonElement nodes)
    {
        o.WriteLine($"server      {target.Url}  {(problem.Length == 0 ? "healthy" : "UNHEALTHY: " + problem)}");
        o.WriteLine($"ledger      op {Long(head, "op")}, chain head {Short(Str(head, "head"))}");
        if (checkpoint is { } cp)
        {
            o.WriteLine($"checkpoint  op {Long(cp, "op")} at {Time(cp, "timestamp")}");
            o.WriteLine($"  root      {Str(cp, "root")}");
        }
        else o.WriteLine("checkpoint  none yet");
        if (chain is { } c)
        {
            string id = c.TryGetProperty("chainId", out var v) ? v.ToString() : "?";
            o.WriteLine($"chain       eip155:{id}, anchor contract {Str(c, "anchor")}");
            o.WriteLine(anchor is { } a
                ? $"  anchored  op {Long(a, "op")} in tx {Short(Str(a, "transaction_hash"))} (block {Long(a, "block_number")})"
                : "  anchored  nothing yet");
        }
        else o.WriteLine("chain       none (serve --chain RPC_URL --chain-key FILE, or --demo)");

        var siteList = sites.EnumerateArray().ToList();
        o.WriteLine($"sites       {siteList.Count} live{(siteList.Count == 0 ? "" : ":")}");
        if (siteList.Count > 0)
            OpsTable.Write(o, ["  SITE", "REPLAYED", "$/MWH", "GPU MW", "MINER MW"], siteList.Select(s => new[]
            {
                "  " + Str(s, "name"), Time(s, "series_time_utc"),
                Num(s, "last_price_usd_per_mwh") is { } p ? p.ToString("0.00", CultureInfo.InvariantCulture) : "-",
                Mw(Num(s, "ai_facility_kw")), Mw(Num(s, "miner_facility_kw")),
            }), right: ["$/MWH", "GPU MW", "MINER MW"], shrink: ["  SITE"]);

        var nodeList = nodes.GetProperty("nodes").EnumerateArray().ToList();
        int up = nodeList.Count(n => Bool(n, "healthy"));
        long running = nodeList.Sum(n => Long(n, "inflight") ?? 0);
        o.WriteLine($"nodes       {up} up of {nodeList.Count}, {Count(running)} requests running");
    }

    // A hash cut to 16 hex digits (the full one is in --json): enough to tell two apart at a glance.
    private static string Short(string hash) => hash.Length > 18 ? hash[..18] + "…" : hash;
}
