using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace ComputeGrid.Cli.Ops;

/// <summary>
/// The operator's read-only view of a running server, through its HTTP API: <c>computegrid status</c>, <c>sites</c> and
/// <c>nodes</c>. Tables that fit 80 columns by default; <c>--json</c> prints the API's answers as they came, under one
/// object whose members name what each is (a script reads the same JSON the API serves). Any failure (unreachable,
/// 401, 403, 404, a problem answer) is one line on stderr and exit 2; <c>status</c> exits 1 when the server answers
/// that it is unhealthy (a check that ran and found a problem).
/// </summary>
internal static class OpsCommands
{
    /// <summary>The three commands, for the root command.</summary>
    public static IEnumerable<Command> Create() =>
    [
        Command("status", "Show a running server's health, ledger op and checkpoint root, chain anchor, sites and nodes.", StatusView.FetchAsync),
        Command("sites", "Show a running server's live sites: market, price, power split, miners, P&L.", SitesView.FetchAsync),
        Command("nodes", "Show a running server's inference nodes: region, site, utilization, price, health, power.", NodesView.FetchAsync),
    ];

    /// <summary>What a command fetched: the JSON to print with <c>--json</c>, the table to print otherwise, and its exit code.</summary>
    internal sealed record View(JsonObject Json, Action<TextWriter> Table, int ExitCode = 0);

    private static Command Command(string name, string description, Func<OpsClient, CancellationToken, Task<View>> fetch)
    {
        var url = new Option<string?>("--url") { Description = $"The server's URL (default: the address serve wrote in the data folder, else {ServerTarget.DefaultUrl})." };
        var key = new Option<string?>("--key") { Description = $"An API key (default: ${ServerTarget.KeyVariable}, else the data folder's operator key)." };
        var json = new Option<bool>("--json") { Description = "Print the API's JSON instead of tables." };
        var dataDir = new Option<string>("--data-dir") { Description = "The server's data folder, for its address and operator key.", DefaultValueFactory = _ => CliDefaults.DataDirectory };
        var command = new Command(name, description) { url, key, json, dataDir };
        command.SetAction(async (pr, ct) =>
        {
            try
            {
                var target = ServerTarget.Resolve(pr.GetValue(url), pr.GetValue(key), Path.GetFullPath(pr.GetValue(dataDir)!));
                using var client = new OpsClient(target);
                View view = await fetch(client, ct);
                if (pr.GetValue(json)) Console.Out.WriteLine(view.Json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
                else view.Table(Console.Out);
                return view.ExitCode;
            }
            catch (OpsException e)
            {
                return CliDefaults.Fail(e.Message);
            }
            catch (Exception e) when (e is KeyNotFoundException or InvalidOperationException or FormatException)
            {
                // A member missing or of another type than the API documents: a server of another version.
                return CliDefaults.Fail($"the server's answer is not the JSON expected: {e.Message}");
            }
        });
        return command;
    }

    /// <summary>A parsed answer as a node of the output object (null stays null).</summary>
    internal static JsonNode? Node(OpsClient.Answer? answer) => answer is null ? null : JsonNode.Parse(answer.Text);
}
