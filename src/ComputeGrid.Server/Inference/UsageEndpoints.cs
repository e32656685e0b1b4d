using System.Globalization;
using System.Security.Claims;
using ComputeGrid.Core;
using ComputeGrid.Ledger;
using ComputeGrid.Server.Trust;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;

namespace ComputeGrid.Server.Inference;

/// <summary>The bounds of <c>GET /api/inference/usage</c>: every query costs at most a fixed number of ledger reads.</summary>
public static class UsageLimits
{
    /// <summary>Requests per page, at most.</summary>
    public const int PageMax = 500;

    /// <summary>Requests per page when the caller does not say.</summary>
    public const int PageDefault = 100;

    /// <summary>The longest range one query covers (from → to).</summary>
    public static readonly TimeSpan RangeMax = TimeSpan.FromDays(93);

    /// <summary>The range when the caller gives no <c>from</c>: the 30 days before <c>to</c>.</summary>
    public static readonly TimeSpan RangeDefault = TimeSpan.FromDays(30);

    /// <summary>Transfers of the account one ledger read visits (one sequencer command; below <see cref="LedgerLimits.HistoryLimitMax"/>).</summary>
    public const int LedgerPage = 1_000;

    /// <summary>Transfers one query visits in all; past it the answer says so (<c>complete: false</c>) and hands a cursor to go on.</summary>
    public const int ScanTransfersMax = 200_000;
}

/// <summary>One paid request (the receipt's figures, read back from the ledger).</summary>
/// <param name="Time">When it was charged (the charge's ledger timestamp).</param>
/// <param name="TransferId">The hold's transfer id, as the receipt's <c>X-CG-Transfer-Id</c> gave it.</param>
/// <param name="Model">The model: the ledger does not record it, so it is the model the node serves when the node is known and serves exactly one; else null.</param>
/// <param name="Node">The node's principal id, or null when the ledger does not say.</param>
/// <param name="NodeId">The node's name in the routing table, or null (the node is not registered now).</param>
/// <param name="Tokens">Metered tokens, or null when unknown (a capture completed by recovery after a crash records none).</param>
/// <param name="CostMicroUsd">What the request cost.</param>
/// <param name="FeeMicroUsd">The platform's part of the cost (the rest went to the node or its share holders).</param>
/// <param name="PaidBy"><c>key</c> (from a customer's balance, with an API key) or <c>x402</c> (a per-request payment).</param>
/// <param name="Customer">The paying customer's principal id (null for x402).</param>
public sealed record UsageRequest(ApiTime Time, string TransferId, string? Model, long? Node, string? NodeId, int? Tokens, long CostMicroUsd, long FeeMicroUsd,
    string PaidBy, long? Customer);

/// <summary>One UTC day of the range.</summary>
/// <param name="Day">The day's start (00:00 UTC).</param>
/// <param name="Requests">Requests charged that day.</param>
/// <param name="Tokens">Their tokens (those known).</param>
/// <param name="SpendMicroUsd">What they cost.</param>
public sealed record UsageDay(ApiTime Day, long Requests, long Tokens, long SpendMicroUsd);

/// <summary>The range's totals.</summary>
/// <param name="Requests">Requests charged.</param>
/// <param name="Tokens">Their tokens (those known).</param>
/// <param name="SpendMicroUsd">What they cost.</param>
public sealed record UsageTotals(long Requests, long Tokens, long SpendMicroUsd);

/// <summary>A page of usage.</summary>
/// <param name="Customer">Whose requests: the customer's principal id, or null for an operator's view of every request.</param>
/// <param name="From">The range's start (inclusive).</param>
/// <param name="To">The range's end (exclusive).</param>
/// <param name="Requests">Paid requests in the range, newest first, at most <c>limit</c>.</param>
/// <param name="Next">The <c>after</c> of the next page (with the same from and to), or null on the last page.</param>
/// <param name="Days">Per UTC day of the range (days with requests, oldest first); only on the first page (no <c>after</c>), else null.</param>
/// <param name="Totals">The range's totals; only on the first page, else null.</param>
/// <param name="Complete">False when the query reached <see cref="UsageLimits.ScanTransfersMax"/> before the range's start: days and totals cover only the newer part.</param>
public sealed record UsagePage(long? Customer, ApiTime From, ApiTime To, IReadOnlyList<UsageRequest> Requests, ApiTime? Next, IReadOnlyList<UsageDay>? Days,
    UsageTotals? Totals, bool Complete);

/// <summary>
/// <c>GET /api/inference/usage</c>: a customer's paid requests and its spend per day, like OpenAI's usage page, read from
/// the ledger (the only durable record of each charge: cost, node, tokens, fee, payer), so it survives any restart.
/// A customer sees its own requests; an operator (read scope) anyone's with <c>customer=</c>, or every request (keyed
/// and x402) without it; naming another principal's usage answers 404, as if it had none.
/// </summary>
public static class UsageEndpoints
{
    private const long DayNs = 86_400_000_000_000L;

    /// <summary>Maps the endpoint.</summary>
    public static IEndpointRouteBuilder MapUsage(this IEndpointRouteBuilder app)
    {
        app.MapGet("/api/inference/usage", UsageAsync).WithTags("inference").RequireAuthorization(Policies.Reader)
            .WithSummary("The caller's paid requests (time, model, node, tokens, cost, transfer id, key or x402), newest first and paged (after = the previous page's next), "
                + "and its requests, tokens and spend per UTC day over [from, to) (default: the last 30 days; at most 93). Operators: customer=ID, or every request without it.");
        return app;
    }

    private static async Task<Results<Ok<UsagePage>, ProblemHttpResult>> UsageAsync(ApiTime? from, ApiTime? to, int? limit, ApiTime? after, long? customer,
        ClaimsPrincipal user, IAuthorizationService authz, LedgerEngine ledger, InferenceHost host, CancellationToken ct)
    {
        CallerIdentity caller = user.RequireCaller();
        int n = limit ?? UsageLimits.PageDefault;
        if (n is < 1 or > UsageLimits.PageMax) return Problems.BadRequest($"limit must be between 1 and {UsageLimits.PageMax}.");
        if (customer is <= 0) return Problems.BadRequest("customer must be a principal id (1 or more).");
        long end = to?.UnixNanoseconds ?? Clock.UnixNanoseconds(host.Time);
        long start = from?.UnixNanoseconds ?? end - UsageLimits.RangeDefault.Ticks * 100;
        if (start >= end) return Problems.BadRequest("from must be before to.");
        if (end - start > UsageLimits.RangeMax.Ticks * 100) return Problems.BadRequest($"The range is at most {UsageLimits.RangeMax.TotalDays:0} days; ask for several.");
        if (after is { } a && (a.UnixNanoseconds < start || a.UnixNanoseconds > end)) return Problems.BadRequest("after must be a next this query handed out, inside [from, to).");

        // Whose: a customer's own; an operator's choice. Nobody names a principal it does not own (404, as if it had nothing).
        ulong? owner = customer is { } c ? (ulong)c : caller.Principal.Kind == PrincipalKind.Operator ? null : caller.Principal.Id;
        if (!await authz.MayAsync(user, owner)) return Problems.NotFound($"No usage of principal {customer} that you may read.");
        UInt128 account = owner is { } o ? InferencePayments.CustomerAccount(o) : InferencePayments.EscrowAccount;

        bool first = after is null;
        var items = new List<UsageCharge>(n + 1);
        var days = new SortedDictionary<long, (long Requests, long Tokens, long Spend)>();
        long cursor = after?.UnixNanoseconds ?? long.MaxValue;
        bool rangeDone = false;
        int visited = 0;
        while (!rangeDone && visited < UsageLimits.ScanTransfersMax && (first || items.Count <= n))
        {
            long before = cursor;
            UsageLedgerPage page = await ledger.ReadAsync(sm => UsageLedger.Page(sm, account, before, UsageLimits.LedgerPage), ct);
            if (page.Result == HistoryResult.CursorNotAnAccountTransfer) return Problems.BadRequest("after is not a cursor this query handed out.", "Bad cursor");
            if (page.Result == HistoryResult.AccountNotFound) break; // a customer never funded: no requests
            visited += page.Visited;
            foreach (UsageCharge charge in page.Charges)
            {
                if (charge.Timestamp >= end) continue;
                if (charge.Timestamp < start) break;
                if (first)
                {
                    long day = charge.Timestamp - (((charge.Timestamp % DayNs) + DayNs) % DayNs);
                    var d = days.GetValueOrDefault(day);
                    days[day] = (d.Requests + 1, checked(d.Tokens + (charge.Tokens ?? 0)), checked(d.Spend + charge.CostMicroUsd));
                }
                if (items.Count <= n) items.Add(charge);
            }
            rangeDone = page.Visited < UsageLimits.LedgerPage || page.Oldest < start;
            cursor = page.Oldest;
        }

        // One more than a page was read: there is a next page, starting below the page's last request.
        bool more = items.Count > n;
        ApiTime? next = more ? new ApiTime(items[n - 1].Timestamp) : !rangeDone && visited > 0 ? new ApiTime(cursor) : null;
        if (more) items.RemoveAt(n);
        // The first page's days need the whole range; a later page is complete once it is full or reached the range's start.
        bool complete = rangeDone || (!first && more);
        var nodes = NodeNames(host);
        UsageRequest[] requests = items.Select(x => View(x, nodes)).ToArray();
        UsageDay[]? dayViews = first ? days.Select(d => new UsageDay(new ApiTime(d.Key), d.Value.Requests, d.Value.Tokens, d.Value.Spend)).ToArray() : null;
        UsageTotals? totals = dayViews is null ? null
            : new UsageTotals(dayViews.Sum(d => d.Requests), dayViews.Aggregate(0L, (s, d) => checked(s + d.Tokens)), dayViews.Aggregate(0L, (s, d) => checked(s + d.SpendMicroUsd)));
        return TypedResults.Ok(new UsagePage(owner is { } w ? (long)w : null, new ApiTime(start), new ApiTime(end), requests, next, dayViews, totals, complete));
    }

    // The routing table's nodes by principal number: their names and, for a node serving one model, that model.
    private static Dictionary<ulong, (string Id, string? Model)> NodeNames(InferenceHost host)
    {
        var names = new Dictionary<ulong, (string, string?)>();
        foreach (var node in host.Gateway.Registry.Snapshot())
            if (host.Gateway.NodeNumber(node.NodeId) is { } number) names[number] = (node.NodeId, node.Models.Count == 1 ? node.Models[0] : null);
        return names;
    }

    private static UsageRequest View(UsageCharge c, Dictionary<ulong, (string Id, string? Model)> nodes)
    {
        (string Id, string? Model)? node = c.Node is { } id && nodes.TryGetValue(id, out var known) ? known : null;
        bool x402 = ChartOfAccounts.TryDecode(c.PayerAccount, out ushort code, out _, out _) && code == (ushort)AccountCode.X402Payer;
        long? customer = !x402 && ChartOfAccounts.OwnerOf(c.PayerAccount) is (AccountOwnership.Principal, ulong p) ? (long)p : null;
        return new UsageRequest(new ApiTime(c.Timestamp), c.HoldId.ToString(CultureInfo.InvariantCulture), node?.Model, c.Node is { } nn ? (long)nn : null, node?.Id,
            c.Tokens, c.CostMicroUsd, c.FeeMicroUsd, x402 ? "x402" : "key", customer);
    }
}
