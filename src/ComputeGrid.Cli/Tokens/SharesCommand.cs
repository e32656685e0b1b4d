using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using ComputeGrid.Cli.Market;

namespace ComputeGrid.Cli.Tokens;

/// <summary>
/// <c>computegrid shares …</c>: node share tokens through a running server's API — list and inspect nodes' shares,
/// approve issuers (operators), issue (providers), holdings, transfers, pledges and loans. Share orders go through
/// <c>computegrid market order --symbol SHR-{node}</c> like any instrument. Tables by default, JSON with <c>--json</c>;
/// money typed in dollars and sent as exact micro-USD.
/// </summary>
internal static class SharesCommand
{
    public static Command Create()
    {
        var server = new Option<string>("--server") { Description = "The ComputeGrid server's URL.", DefaultValueFactory = _ => MarketCommand.DefaultServer, Recursive = true };
        var json = new Option<bool>("--json") { Description = "Print the server's JSON instead of a table.", Recursive = true };
        var key = new Option<string?>("--key")
        {
            Description = $"Your API key (default: ${MarketCommand.KeyVariable}).", Recursive = true,
            DefaultValueFactory = _ => Environment.GetEnvironmentVariable(MarketCommand.KeyVariable) is { Length: > 0 } k ? k : null,
        };
        var shares = new Command("shares", "Node share tokens: issue, hold, move, pledge.") { server, json, key };

        var list = new Command("list", "Every node that issued shares.");
        list.SetAction((pr, ct) => MarketCommand.RunAsync(pr, server, json, key, async c => (await c.GetAsync("/api/shares", ct), Nodes)));

        var nodeArg = new Argument<long>("node") { Description = "The node's id." };
        var show = new Command("show", "One node's shares.") { nodeArg };
        show.SetAction((pr, ct) => MarketCommand.RunAsync(pr, server, json, key, async c =>
            (await c.GetAsync($"/api/shares/{pr.GetValue(nodeArg)}", ct), (o, e) => Nodes(o, Wrap("nodes", e)))));

        var providerArg = new Argument<long>("provider") { Description = "The provider's principal id." };
        var approve = new Command("approve", "Approve a provider to issue shares of its nodes (operators).") { providerArg };
        approve.SetAction((pr, ct) => MarketCommand.RunAsync(pr, server, json, key, async c =>
            (await c.SendJsonAsync(HttpMethod.Post, $"/api/shares/issuers/{pr.GetValue(providerArg)}", new { }, ct),
             (o, e) => o.WriteLine($"provider {MarketFormat.Long(e, "provider")} may issue shares"))));

        var node = new Option<long>("--node") { Description = "The node's id.", Required = true };
        var supply = new Option<long>("--supply") { Description = "Shares issued (fixed for ever).", Required = true };
        var issue = new Command("issue", "Issue a fixed supply of shares of one of your nodes (an approved provider).") { node, supply };
        issue.SetAction((pr, ct) => MarketCommand.RunAsync(pr, server, json, key, async c =>
            (await c.SendJsonAsync(HttpMethod.Post, "/api/shares", new Dictionary<string, object?> { ["node_id"] = pr.GetValue(node), ["supply"] = pr.GetValue(supply) }, ct),
             (o, e) => Nodes(o, Wrap("nodes", e)))));

        var holdings = new Command("holdings", "Your shares, by node.");
        holdings.SetAction((pr, ct) => MarketCommand.RunAsync(pr, server, json, key, async c => (await c.GetAsync("/api/shares/holdings", ct), Holdings)));

        var to = new Option<long>("--to") { Description = "The principal receiving the shares.", Required = true };
        var count = new Option<long>("--shares") { Description = "Whole shares.", Required = true };
        var transfer = new Command("transfer", "Move free shares to another principal.") { node, to, count };
        transfer.SetAction((pr, ct) => MarketCommand.RunAsync(pr, server, json, key, async c =>
            (await c.SendJsonAsync(HttpMethod.Post, $"/api/shares/{pr.GetValue(node)}/transfers", new Dictionary<string, object?> { ["to"] = pr.GetValue(to), ["shares"] = pr.GetValue(count) }, ct),
             (o, e) => Holdings(o, Wrap("holdings", e)))));

        var loan = new Option<string>("--loan") { Description = "The loan in USD, e.g. 150.00 (exact to the micro-dollar).", Required = true };
        // Either shares of a node or a whole lease: neither option is required alone, their combination is checked.
        var pledgeNode = new Option<long?>("--node") { Description = "The node whose free shares you pledge (with --shares)." };
        var pledgeShares = new Option<long?>("--shares") { Description = "Whole shares pledged (with --node)." };
        var lease = new Option<long?>("--lease") { Description = "One of your leases, pledged whole (instead of --node and --shares): still delivered to you, not resold while pledged." };
        var pledge = new Command("pledge", "Pledge free shares (--node, --shares) or a lease (--lease) for a loan paid into your trading account.") { pledgeNode, pledgeShares, lease, loan };
        pledge.SetAction((pr, ct) => MarketCommand.RunAsync(pr, server, json, key, async c =>
            (await c.SendJsonAsync(HttpMethod.Post, "/api/shares/pledges", PledgeBody(pr.GetValue(pledgeNode), pr.GetValue(pledgeShares), pr.GetValue(lease),
                MarketCommand.PriceArg(pr.GetValue(loan), true, "--loan")), ct),
             (o, e) => Loans(o, Wrap("loans", e)))));

        var loans = new Command("loans", "Your loans against pledged shares or leases (operators: everyone's).");
        loans.SetAction((pr, ct) => MarketCommand.RunAsync(pr, server, json, key, async c => (await c.GetAsync("/api/shares/loans", ct), Loans)));

        var loanArg = new Argument<long>("loan") { Description = "The loan's id." };
        var amount = new Option<string>("--amount") { Description = "USD, e.g. 50.00; more than is due repays what is due.", Required = true };
        var repay = new Command("repay", "Repay a loan from your trading account.") { loanArg, amount };
        repay.SetAction((pr, ct) => MarketCommand.RunAsync(pr, server, json, key, async c =>
            (await c.SendJsonAsync(HttpMethod.Post, $"/api/shares/loans/{pr.GetValue(loanArg)}/repayments",
                new Dictionary<string, object?> { ["amount"] = MarketCommand.PriceArg(pr.GetValue(amount), true, "--amount") }, ct),
             (o, e) => Loans(o, Wrap("loans", e)))));

        var entitlement = new Command("entitlement", "Your revenue of a node: entitled, claimed, owed, revenue per share.") { nodeArg };
        entitlement.SetAction((pr, ct) => MarketCommand.RunAsync(pr, server, json, key, async c =>
            (await c.GetAsync($"/api/shares/{pr.GetValue(nodeArg)}/entitlement", ct), Entitlement)));

        var claimAmount = new Option<string?>("--amount") { Description = "USD to claim (default: everything owed)." };
        var claim = new Command("claim", "Claim revenue a node's pool owes you into your balance.") { node, claimAmount };
        claim.SetAction((pr, ct) => MarketCommand.RunAsync(pr, server, json, key, async c =>
            (await c.SendJsonAsync(HttpMethod.Post, $"/api/shares/{pr.GetValue(node)}/claims",
                new Dictionary<string, object?> { ["amount"] = pr.GetValue(claimAmount) is { } a ? MarketCommand.PriceArg(a, true, "--amount") : null }, ct),
             (o, e) => o.WriteLine($"claimed {MarketFormat.Usd(MarketFormat.Long(e, "amount_micro_usd"))} USD into {MarketFormat.Str(e, "account")} (transfer {MarketFormat.Str(e, "transfer_id")})"))));

        var threshold = new Option<string>("--threshold") { Description = "USD; once owed revenue reaches it, all of it is claimed (0 turns auto-claim off).", Required = true };
        var autoClaim = new Command("auto-claim", "Set your auto-claim threshold for a node.") { node, threshold };
        autoClaim.SetAction((pr, ct) => MarketCommand.RunAsync(pr, server, json, key, async c =>
            (await c.SendJsonAsync(HttpMethod.Put, $"/api/shares/{pr.GetValue(node)}/auto-claim",
                new Dictionary<string, object?> { ["threshold"] = pr.GetValue(threshold) is "0" ? 0L : MarketCommand.PriceArg(pr.GetValue(threshold), true, "--threshold") }, ct),
             Entitlement)));

        foreach (var sub in new[] { list, show, approve, issue, holdings, transfer, entitlement, claim, autoClaim, pledge, loans, repay }) shares.Subcommands.Add(sub);
        return shares;
    }

    /// <summary>The pledge's body: <c>{node, shares, loan}</c> or <c>{lease_id, loan}</c>; any other combination is a usage error.</summary>
    internal static Dictionary<string, object?> PledgeBody(long? node, long? shares, long? lease, long? loan) => (node, shares, lease) switch
    {
        (null, null, long l) when l > 0 => new() { ["lease_id"] = l, ["loan"] = loan },
        (long n, long s, null) when n > 0 && s > 0 => new() { ["node"] = n, ["shares"] = s, ["loan"] = loan },
        (not null, _, not null) or (_, not null, not null) => throw new MarketException("give either --lease, or --node and --shares, not both"),
        (null, null, null) => throw new MarketException("give --lease ID, or --node ID and --shares N"),
        (_, _, null) when node is null || shares is null => throw new MarketException("--node and --shares go together"),
        _ => throw new MarketException("--node, --shares and --lease must be positive"),
    };

    private static void Entitlement(TextWriter o, JsonElement e) => MarketFormat.Table(o, ["NODE", "SHARES", "ENTITLED", "CLAIMED", "OWED", "AUTO-CLAIM", "POOL", "PER SHARE"],
        [[
            MarketFormat.Num(MarketFormat.Long(e, "node")), MarketFormat.Num(MarketFormat.Long(e, "shares")), MarketFormat.Usd(MarketFormat.Long(e, "entitled_micro_usd")),
            MarketFormat.Usd(MarketFormat.Long(e, "claimed_micro_usd")), MarketFormat.Usd(MarketFormat.Long(e, "owed_micro_usd")),
            MarketFormat.Long(e, "auto_claim_threshold_micro_usd") is var t and > 0 ? MarketFormat.Usd(t) : "off",
            MarketFormat.Usd(MarketFormat.Long(e, "pool_revenue_micro_usd")), MarketFormat.Usd(MarketFormat.Long(e, "revenue_per_share_micro_usd")),
        ]], "SHARES", "ENTITLED", "CLAIMED", "OWED", "POOL", "PER SHARE");

    // One object shown as a one-row table.
    private static JsonElement Wrap(string name, JsonElement e) =>
        JsonDocument.Parse($"{{\"{name}\":[{e.GetRawText()}]}}").RootElement;

    private static void Nodes(TextWriter o, JsonElement e) => MarketFormat.Table(o, ["NODE", "SYMBOL", "SUPPLY", "HOLDERS", "VWAP", "ISSUER", "ISSUED"],
        e.GetProperty("nodes").EnumerateArray().Select(n => new[]
        {
            MarketFormat.Num(MarketFormat.Long(n, "node")), MarketFormat.Str(n, "symbol"), MarketFormat.Num(MarketFormat.Long(n, "supply")),
            MarketFormat.Num(MarketFormat.Long(n, "holders")), MarketFormat.Long(n, "vwap_micro_usd") is var v and > 0 ? MarketFormat.Usd(v) : "-",
            MarketFormat.Num(MarketFormat.Long(n, "issuer")), MarketFormat.Time(n, "issued_at"),
        }), "SUPPLY", "HOLDERS", "VWAP");

    private static void Holdings(TextWriter o, JsonElement e) => MarketFormat.Table(o, ["NODE", "SYMBOL", "SHARES", "FREE", "OFFERED", "PLEDGED"],
        e.GetProperty("holdings").EnumerateArray().Select(h => new[]
        {
            MarketFormat.Num(MarketFormat.Long(h, "node")), MarketFormat.Str(h, "symbol"), MarketFormat.Num(MarketFormat.Long(h, "shares")),
            MarketFormat.Num(MarketFormat.Long(h, "free")), MarketFormat.Num(MarketFormat.Long(h, "offered")), MarketFormat.Num(MarketFormat.Long(h, "pledged")),
        }), "SHARES", "FREE", "OFFERED", "PLEDGED");

    // Basis points as a percentage with two decimals, in integers (7512 → 75.12%).
    private static string Percent(long bp) => string.Create(CultureInfo.InvariantCulture, $"{bp / 100}.{bp % 100:00}%");

    // PLEDGED: shares of a node, or a lease's id and its undelivered GPU-hours.
    private static void Loans(TextWriter o, JsonElement e) => MarketFormat.Table(o, ["LOAN", "KIND", "SYMBOL", "PLEDGED", "LENT", "DUE", "VALUE", "LTV", "STATUS"],
        e.GetProperty("loans").EnumerateArray().Select(l => new[]
        {
            MarketFormat.Num(MarketFormat.Long(l, "id")), MarketFormat.Str(l, "collateral"),
            l.TryGetProperty("symbol", out JsonElement s) && s.ValueKind == JsonValueKind.String ? s.GetString()! : "-",
            MarketFormat.Str(l, "collateral") == "lease"
                ? $"lease {MarketFormat.Long(l, "lease_id")} ({MarketFormat.Num(MarketFormat.Long(l, "gpu_hours"))} GPU-h)"
                : $"{MarketFormat.Num(MarketFormat.Long(l, "shares"))} shares",
            MarketFormat.Usd(MarketFormat.Long(l, "lent")), MarketFormat.Usd(MarketFormat.Long(l, "due")), MarketFormat.Usd(MarketFormat.Long(l, "collateral_value")),
            Percent(MarketFormat.Long(l, "loan_to_value_bp")), MarketFormat.Str(l, "status"),
        }), "LENT", "DUE", "VALUE", "LTV");
}
