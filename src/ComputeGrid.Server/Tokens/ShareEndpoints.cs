using System.ComponentModel.DataAnnotations;
using System.Security.Claims;
using ComputeGrid.Core;
using ComputeGrid.Exchange.Pipeline;
using ComputeGrid.Exchange.StateMachine;
using ComputeGrid.Exchange.Trading;
using ComputeGrid.Ledger;
using ComputeGrid.Tokens;
using ComputeGrid.Server.Exchange;
using ComputeGrid.Server.Trust;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;

namespace ComputeGrid.Server.Tokens;

/// <summary>A provider issues shares of one of its nodes: the node's id (its principal id) and the fixed supply.</summary>
public sealed record ShareIssueInput
{
    /// <summary>The node (its id on the exchange, which is its principal id).</summary>
    public required long NodeId { get; init; }
    /// <summary>Shares issued, all to the provider at first; the supply never changes.</summary>
    [Range(1, ExchangeStateMachine.ShareSupplyMax)]
    public required long Supply { get; init; }
}

/// <summary>A holder moves free shares of a node to another principal.</summary>
public sealed record ShareTransferInput
{
    /// <summary>The principal receiving the shares.</summary>
    [Range(1, long.MaxValue)]
    public required long To { get; init; }
    /// <summary>Whole shares.</summary>
    [Range(1, ExchangeStateMachine.ShareSupplyMax)]
    public required long Shares { get; init; }
}

/// <summary>A holder pledges free shares of a node for a stablecoin loan paid into its trading account.</summary>
public sealed record PledgeInput
{
    /// <summary>Whole shares pledged.</summary>
    [Range(1, ExchangeStateMachine.ShareSupplyMax)]
    public required long Shares { get; init; }
    /// <summary>The loan, micro-USD (at most the pledge's value at the share's recent VWAP, less the haircut, times the maximum loan-to-value).</summary>
    [Range(1, long.MaxValue)]
    public required long Loan { get; init; }
}

/// <summary>
/// A pledge for a stablecoin loan paid into the caller's trading account, of either free shares of a node
/// (<see cref="Node"/> and <see cref="Shares"/>) or one of the caller's leases, whole (<see cref="LeaseId"/>).
/// </summary>
public sealed record CollateralPledgeInput
{
    /// <summary>The node whose free shares are pledged (with <see cref="Shares"/>; not with <see cref="LeaseId"/>).</summary>
    [Range(1, long.MaxValue)]
    public long? Node { get; init; }
    /// <summary>Whole shares pledged (with <see cref="Node"/>).</summary>
    [Range(1, ExchangeStateMachine.ShareSupplyMax)]
    public long? Shares { get; init; }
    /// <summary>The caller's lease pledged whole: active, none of its time offered or resold (not with <see cref="Node"/>).</summary>
    [Range(1, long.MaxValue)]
    public long? LeaseId { get; init; }
    /// <summary>
    /// The loan, micro-USD: at most the collateral's value (shares × the share's recent VWAP, or the lease's undelivered
    /// GPU-hours × its instrument's recent VWAP) less the haircut, times the maximum loan-to-value.
    /// </summary>
    [Range(1, long.MaxValue)]
    public required long Loan { get; init; }
}

/// <summary>A repayment of a loan from the borrower's trading account.</summary>
public sealed record RepayInput
{
    /// <summary>Micro-USD (more than is due repays what is due).</summary>
    [Range(1, long.MaxValue)]
    public required long Amount { get; init; }
}

/// <summary>
/// A loan as the API shows it (interest accrued to now). <c>collateral</c> is <c>shares</c> (node, shares; symbol the
/// share instrument's) or <c>lease</c> (lease_id, gpu_hours undelivered; symbol the lease's instrument, when still listed).
/// </summary>
public sealed record LoanDto(long Id, long Borrower, long Node, string? Symbol, long Shares, long Lent, long Principal, long Interest, long Due, long Repaid,
    long CollateralValue, long LoanToValueBp, string Status, ApiTime OpenedAt, long Proceeds, long WrittenOff, string Collateral, long? LeaseId, long GpuHours)
{
    /// <summary>The view of a loan; <paramref name="leaseSymbol"/>: a lease loan's instrument symbol.</summary>
    public static LoanDto From(LoanView l, string? leaseSymbol = null) => new(l.Id, l.Borrower, l.Node,
        l.Collateral == LoanCollateral.Lease ? leaseSymbol : ComputeGrid.Exchange.Instruments.Instrument.NodeSharesSymbol(l.Node), l.Shares, l.Lent,
        l.Principal, l.Interest, l.Principal + l.Interest, l.Repaid, l.CollateralValue, l.LoanToValueBp, ShareEndpoints.Snake(l.Status.ToString()),
        ApiTime.Of(DateTimeOffset.UnixEpoch.AddTicks(l.OpenedAt / 100)), l.Proceeds, l.WrittenOff, ShareEndpoints.Snake(l.Collateral.ToString()),
        l.Collateral == LoanCollateral.Lease ? l.Lease : null, l.GpuHours);

    /// <summary>The view of a loan read inside the exchange's read (a lease loan's symbol from its lease's instrument).</summary>
    internal static LoanDto Read(ExchangeStateMachine v, ComputeGrid.Exchange.Instruments.InstrumentRegistry registry, LoanView l) =>
        From(l, l.Collateral == LoanCollateral.Lease && v.Lease(l.Lease) is { } lease && registry.TryGet(lease.Instrument, out var i) ? i.Symbol : null);
}

/// <summary>A claim of share revenue: micro-USD, or everything owed when absent or 0.</summary>
public sealed record ClaimInput
{
    /// <summary>Micro-USD to claim (0 or absent: all that is owed).</summary>
    [Range(0, long.MaxValue)]
    public long? Amount { get; init; }
}

/// <summary>A holder's auto-claim threshold for a node: once owed revenue reaches it, all of it is claimed (0: off).</summary>
public sealed record AutoClaimInput
{
    /// <summary>Micro-USD.</summary>
    [Range(0, long.MaxValue)]
    public required long Threshold { get; init; }
}

/// <summary>A holder's revenue of one node.</summary>
public sealed record EntitlementDto(long Node, long Holder, long Shares, long EntitledMicroUsd, long ClaimedMicroUsd, long OwedMicroUsd, long AutoClaimThresholdMicroUsd,
    long PoolRevenueMicroUsd, long Supply, long RevenuePerShareMicroUsd);

/// <summary>A claim that moved money into the holder's balance.</summary>
public sealed record ClaimDto(long Node, long AmountMicroUsd, long OwedBeforeMicroUsd, string TransferId, string Account);

/// <summary>One bucket of a node's revenue history: revenue received in it and revenue per share since issuance at its end.</summary>
public sealed record RevenuePoint(ApiTime Start, long RevenueMicroUsd, long CumulativeMicroUsd, long RevenuePerShareMicroUsd, long RevenuePerShareNanoUsd);

/// <summary>A node's revenue per share over time (hourly buckets).</summary>
public sealed record RevenueHistory(long Node, long Supply, IReadOnlyList<RevenuePoint> Points);

/// <summary>The caller's loans.</summary>
public sealed record LoanList(IReadOnlyList<LoanDto> Loans);

/// <summary>The terms every pledge is made under.</summary>
public sealed record PledgeTermsDto(int HaircutBp, int MaxLoanToValueBp, int MarginCallBp, int LiquidationBp, int InterestBpPerYear, int VwapTrades);

/// <summary>A node's shares as the API shows them: with the share's recent VWAP (its reference price for pledges).</summary>
public sealed record ShareNodeDto(long Node, long Issuer, long Supply, string Symbol, ApiTime IssuedAt, int Holders, long VwapMicroUsd);

/// <summary>The node share instruments, by node.</summary>
public sealed record ShareNodeList(IReadOnlyList<ShareNodeDto> Nodes);

/// <summary>A holder's shares of one node.</summary>
public sealed record HoldingDto(long Node, string Symbol, long Shares, long Free, long Offered, long Pledged);

/// <summary>The caller's holdings.</summary>
public sealed record HoldingList(long Holder, IReadOnlyList<HoldingDto> Holdings);

/// <summary>An approved issuer.</summary>
public sealed record IssuerDto(long Provider, bool Approved);

/// <summary>
/// Node share tokens (<c>/api/shares</c>): operators approve issuers; an approved provider issues a fixed supply of
/// shares of one of its nodes, which then trade on the exchange's book as the instrument <c>SHR-{node}</c> (orders
/// through <c>/api/exchange/orders</c>); holders see and move their shares. The exchange is the register of record:
/// every share movement is one of its journaled commands, settled in the ledger (an asset per node). Nobody names an
/// account: the holder is the caller.
/// </summary>
public static class ShareEndpoints
{
    /// <summary>Maps <c>/api/shares</c>.</summary>
    public static RouteGroupBuilder MapShares(this IEndpointRouteBuilder app)
    {
        var g = app.MapGroup("/api/shares").WithTags("shares");
        app.MapGet("/api/shares", ListAsync).WithTags("shares").AllowAnonymous().WithSummary("Every node that issued shares: supply, symbol, number of holders.");
        g.MapGet("/{node}", NodeAsync).AllowAnonymous().WithSummary("One node's shares.");
        g.MapPost("/issuers/{provider}", ApproveAsync).RequireAuthorization(Policies.Operator).WithSummary("Approves a provider to issue shares of its nodes.");
        app.MapPost("/api/shares", IssueAsync).WithTags("shares").RequireAuthorization(Policies.Provider).WithSummary("Issues a fixed supply of shares of one of the caller's nodes (an approved issuer).");
        g.MapGet("/holdings", HoldingsAsync).RequireAuthorization(Policies.Reader).WithSummary("The caller's shares, by node.");
        g.MapPost("/{node}/transfers", TransferAsync).RequireAuthorization(Policies.Trader).WithSummary("Moves free shares of a node from the caller to another principal.");
        g.MapGet("/{node}/entitlement", EntitlementAsync).RequireAuthorization(Policies.Reader).WithSummary("The caller's revenue of a node: entitled, claimed, owed, revenue per share.");
        g.MapGet("/{node}/revenue", RevenueAsync).AllowAnonymous().WithSummary("A node's revenue per share over time (hourly), from its share pool's ledger postings.");
        g.MapPost("/{node}/claims", ClaimAsync).RequireAuthorization(Policies.Trader).WithSummary("Claims revenue owed by a node's pool into the caller's balance (all of it unless an amount is given).");
        g.MapPut("/{node}/auto-claim", AutoClaim).RequireAuthorization(Policies.Trader).WithSummary("Sets the caller's auto-claim threshold for a node (0 turns it off).");
        g.MapGet("/pledge-terms", (ExchangeHost ex) => TypedResults.Ok(TermsDto(ex.StateMachineOptions.Pledges))).AllowAnonymous().WithSummary("The terms of loans against pledged shares and leases.");
        g.MapPost("/{node}/pledges", PledgeAsync).RequireAuthorization(Policies.Trader).WithSummary("Pledges free shares of a node for a loan paid into the caller's trading account.");
        g.MapPost("/pledges", PledgeCollateralAsync).RequireAuthorization(Policies.Trader)
            .WithSummary("Pledges free shares of a node ({node, shares, loan}) or one of the caller's leases, whole ({lease_id, loan}), for a loan paid into the caller's trading account.")
            .WithDescription("A pledged lease is still delivered to its holder but cannot be resold or pledged again; its value (undelivered GPU-hours × its instrument's recent VWAP, less the haircut) falls as it is delivered. At the liquidation threshold its time is sold on the book through the resale path and the loan is repaid from the sale's payments as the time is delivered; a lease that fails repays the loan from its refund first.");
        g.MapGet("/loans", LoansAsync).RequireAuthorization(Policies.Reader).WithSummary("The caller's loans against pledged shares or leases, each with its collateral kind (operators: everyone's).");
        g.MapPost("/loans/{id}/repayments", RepayAsync).RequireAuthorization(Policies.Trader).WithSummary("Repays one of the caller's loans from its trading account; repaid in full, the shares or the lease are free again.");
        return g;
    }

    private static async Task<Ok<ShareNodeList>> ListAsync(ExchangeHost ex, CancellationToken ct) =>
        TypedResults.Ok(new ShareNodeList(await ex.ReadAsync(v => v.ShareNodes.Select(n => Dto(v, n)).ToList(), ct)));

    private static async Task<Results<Ok<ShareNodeDto>, ProblemHttpResult>> NodeAsync(long node, ExchangeHost ex, CancellationToken ct)
    {
        ShareNodeDto? dto = await ex.ReadAsync(v => v.ShareNode(node) is { } n ? Dto(v, n) : null, ct);
        return dto is null ? Problems.NotFound($"Node {node} has issued no shares.") : TypedResults.Ok(dto);
    }

    private static ShareNodeDto Dto(ExchangeStateMachine v, ShareNodeView n) =>
        new(n.Node, n.Issuer, n.Supply, n.Symbol, ApiTime.Of(DateTimeOffset.UnixEpoch.AddTicks(n.IssuedAt / 100)), v.HoldersOf(n.Node).Count, v.ShareVwap(n.Node));

    /// <summary>Where a holder's claims are paid: a customer's balance, a provider's revenue account (null: not a holder kind).</summary>
    internal static UInt128? BalanceOf(TrustStore store, ulong holder) => store.Find(holder) switch
    {
        { Kind: PrincipalKind.Customer, Disabled: null } => ChartOfAccounts.PrincipalAccount(AccountCode.CustomerBalance, holder),
        { Kind: PrincipalKind.Provider, Disabled: null } => ChartOfAccounts.PrincipalAccount(AccountCode.ProviderRevenue, holder),
        _ => null,
    };

    private static async Task<Results<Ok<EntitlementDto>, ProblemHttpResult>> EntitlementAsync(long node, ClaimsPrincipal user, ShareRevenue revenue, CancellationToken ct)
    {
        ulong holder = user.RequireCaller().Principal.Id;
        if (await revenue.EntitlementAsync((ulong)node, holder, ct) is not { } e || await revenue.PoolAsync((ulong)node, ct) is not { } pool)
            return Problems.NotFound($"Node {node} has issued no shares.");
        return TypedResults.Ok(new EntitlementDto(node, (long)holder, e.Shares, e.Entitled, e.Claimed, e.Owed, e.AutoClaimThreshold, pool.Revenue, pool.Supply, pool.PerShare));
    }

    private static async Task<Results<Ok<ClaimDto>, ProblemHttpResult>> ClaimAsync(long node, ClaimInput input, ClaimsPrincipal user, ShareRevenue revenue, TrustStore store)
    {
        ulong holder = user.RequireCaller().Principal.Id;
        if (BalanceOf(store, holder) is not UInt128 into) return Problems.Forbidden("Only customers and providers hold shares.");
        if (await revenue.PoolAsync((ulong)node, CancellationToken.None) is null) return Problems.NotFound($"Node {node} has issued no shares.");
        ClaimOutcome o = await revenue.ClaimAsync((ulong)node, holder, input.Amount ?? 0, into, CancellationToken.None);
        return o.Decision switch
        {
            ClaimDecision.Claim => TypedResults.Ok(new ClaimDto(node, o.Amount, o.OwedBefore, o.TransferId.ToString(), into.ToString())),
            ClaimDecision.ExceedsOwed => Problems.Conflict($"You are owed {o.OwedBefore} micro-USD of node {node}'s revenue; the claim asks for more."),
            _ => Problems.Conflict($"Nothing is owed to you by node {node}'s pool now."),
        };
    }

    private static async Task<Results<Ok<EntitlementDto>, ProblemHttpResult>> AutoClaim(long node, AutoClaimInput input, ClaimsPrincipal user, ShareRevenue revenue, CancellationToken ct)
    {
        ulong holder = user.RequireCaller().Principal.Id;
        if (await revenue.PoolAsync((ulong)node, ct) is null) return Problems.NotFound($"Node {node} has issued no shares.");
        revenue.SetThreshold(holder, (ulong)node, input.Threshold);
        return await EntitlementAsync(node, user, revenue, ct);
    }

    /// <summary>Most pool postings a revenue history reads (newest first): the endpoint is public, so its cost is bounded.</summary>
    private const int RevenueHistoryTransfersMax = 10_000;

    private static async Task<Results<Ok<RevenueHistory>, ProblemHttpResult>> RevenueAsync(long node, ShareRevenue revenue, LedgerEngine ledger, CancellationToken ct)
    {
        if (await revenue.PoolAsync((ulong)node, ct) is not { } pool) return Problems.NotFound($"Node {node} has issued no shares.");
        // The pool's credits (revenue), newest first, a page at a time; bucketed by hour of the ledger's timestamp.
        var credits = new List<(long At, long Amount)>();
        long before = long.MaxValue;
        UInt128 account = ChartOfAccounts.SharePool((ulong)node);
        while (credits.Count < RevenueHistoryTransfersMax)
        {
            Transfer[]? page = await ledger.GetAccountTransfersAsync(account, before, 1_000, ct);
            if (page is null || page.Length == 0) break;
            foreach (Transfer t in page)
                if (t.CreditAccountId == account) credits.Add(((long)t.Timestamp, t.Amount));
            before = (long)page[^1].Timestamp;
            if (page.Length < 1_000) break;
        }
        const long hour = 3_600_000_000_000L;
        var points = new List<RevenuePoint>();
        long cumulative = 0;
        foreach (var bucket in credits.GroupBy(c => c.At - c.At % hour).OrderBy(g => g.Key))
        {
            long amount = bucket.Sum(c => c.Amount);
            cumulative = checked(cumulative + amount);
            points.Add(new RevenuePoint(new ApiTime(bucket.Key), amount, cumulative, cumulative / pool.Supply,
                (long)((Int128)cumulative * 1_000 / pool.Supply)));
        }
        return TypedResults.Ok(new RevenueHistory(node, pool.Supply, points));
    }

    private static PledgeTermsDto TermsDto(PledgeTerms t) => new(t.HaircutBp, t.MaxLoanToValueBp, t.MarginCallBp, t.LiquidationBp, t.InterestBpPerYear, t.VwapTrades);

    /// <summary>snake_case of an enum member's name (MarginCall → margin_call).</summary>
    internal static string Snake(string name) => string.Concat(name.Select((ch, i) => char.IsUpper(ch) ? (i > 0 ? "_" : "") + char.ToLowerInvariant(ch) : ch.ToString()));

    private static async Task<Results<Created<LoanDto>, ProblemHttpResult>> PledgeAsync(long node, PledgeInput input, ClaimsPrincipal user, ExchangeHost ex, TimeProvider time)
    {
        long holder = (long)user.RequireCaller().Principal.Id;
        CommandOutcome o = await ex.SubmitAsync(ExchangeCommand.Pledge(holder, node, input.Shares, input.Loan), CancellationToken.None);
        if (!o.Result.Ok) return ExchangeProblems.From(ExchangeCalls.Order(o), new ProblemContext(Owner: holder, Node: node));
        long now = Clock.UnixNanoseconds(time);
        LoanView loan = (await ex.ReadAsync(v => v.Loan(o.Result.Subject, now), CancellationToken.None))!;
        return TypedResults.Created($"/api/shares/loans/{loan.Id}", LoanDto.From(loan));
    }

    /// <summary>Either shares (as <c>/{node}/pledges</c>) or a lease of the caller's; a lease that is not the caller's reads as no lease.</summary>
    private static async Task<Results<Created<LoanDto>, ProblemHttpResult>> PledgeCollateralAsync(CollateralPledgeInput input, ClaimsPrincipal user, ExchangeHost ex,
        ComputeGrid.Exchange.Instruments.InstrumentRegistry registry, TimeProvider time)
    {
        if ((input.LeaseId is null) == (input.Node is null)) return Problems.BadRequest("Give either lease_id, or node and shares.");
        if (input.LeaseId is not null && input.Shares is not null) return Problems.BadRequest("shares goes with node, not with lease_id (a lease is pledged whole).");
        if (input.Node is long node)
        {
            if (input.Shares is not long shares) return Problems.BadRequest("shares is required with node.");
            return await PledgeAsync(node, new PledgeInput { Shares = shares, Loan = input.Loan }, user, ex, time);
        }
        long holder = (long)user.RequireCaller().Principal.Id, leaseId = input.LeaseId!.Value;
        CommandOutcome o = await ex.SubmitAsync(ExchangeCommand.PledgeLease(holder, leaseId, input.Loan), CancellationToken.None);
        // Another's lease reads as no lease: a caller learns nothing of leases it does not hold.
        if (o.Result.Error is ExchangeError.NotOwner or ExchangeError.UnknownLease) return Problems.NotFound($"No lease {leaseId} of yours.");
        if (!o.Result.Ok) return ExchangeProblems.From(ExchangeCalls.Order(o), new ProblemContext(Owner: holder, Lease: leaseId));
        long now = Clock.UnixNanoseconds(time);
        LoanDto loan = (await ex.ReadAsync(v => LoanDto.Read(v, registry, v.Loan(o.Result.Subject, now)!), CancellationToken.None))!;
        return TypedResults.Created($"/api/shares/loans/{loan.Id}", loan);
    }

    private static async Task<Ok<LoanList>> LoansAsync(ClaimsPrincipal user, ExchangeHost ex, ComputeGrid.Exchange.Instruments.InstrumentRegistry registry, TimeProvider time,
        CancellationToken ct)
    {
        CallerIdentity caller = user.RequireCaller();
        long? borrower = caller.Principal.Kind == PrincipalKind.Operator ? null : (long)caller.Principal.Id;
        long now = Clock.UnixNanoseconds(time);
        return TypedResults.Ok(new LoanList(await ex.ReadAsync(v => v.Loans(borrower, now).Select(l => LoanDto.Read(v, registry, l)).ToList(), ct)));
    }

    private static async Task<Results<Ok<LoanDto>, ProblemHttpResult>> RepayAsync(long id, RepayInput input, ClaimsPrincipal user, ExchangeHost ex,
        ComputeGrid.Exchange.Instruments.InstrumentRegistry registry, TimeProvider time)
    {
        long borrower = (long)user.RequireCaller().Principal.Id;
        CommandOutcome o = await ex.SubmitAsync(ExchangeCommand.Repay(borrower, id, input.Amount), CancellationToken.None);
        // Another's loan reads as no loan: a caller learns nothing of loans it does not hold.
        if (o.Result.Error == ExchangeError.NotOwner) return Problems.NotFound($"No open loan {id} of yours.");
        if (!o.Result.Ok) return o.Result.Error == ExchangeError.UnknownLoan ? Problems.NotFound($"No open loan {id} of yours.")
            : ExchangeProblems.From(ExchangeCalls.Order(o), new ProblemContext(Owner: borrower));
        long now = Clock.UnixNanoseconds(time);
        return TypedResults.Ok((await ex.ReadAsync(v => LoanDto.Read(v, registry, v.Loan(id, now)!), CancellationToken.None))!);
    }

    private static async Task<Results<Ok<IssuerDto>, ProblemHttpResult>> ApproveAsync(long provider, ClaimsPrincipal user, ExchangeHost ex, TrustStore store)
    {
        if (store.Find((ulong)provider) is not { Kind: PrincipalKind.Provider, Disabled: null }) return Problems.NotFound($"No provider {provider}.");
        await ExchangeCalls.RegisterProviderAsync(ex, provider);
        CommandOutcome o = await ex.SubmitAsync(new ExchangeCommand { Kind = ExchangeCommandKind.ApproveIssuer, Owner = provider }, CancellationToken.None);
        if (!o.Result.Ok) return ExchangeProblems.From(o.Result.Error, new ProblemContext(Provider: provider));
        store.Record(user.RequireCaller().Principal.Id, "share-issuer-approved", $"provider {provider}");
        return TypedResults.Ok(new IssuerDto(provider, true));
    }

    private static async Task<Results<Created<ShareNodeDto>, ProblemHttpResult>> IssueAsync(ShareIssueInput input, ClaimsPrincipal user, ExchangeHost ex)
    {
        long provider = (long)user.RequireCaller().Principal.Id;
        CommandOutcome o = await ex.SubmitAsync(ExchangeCommand.IssueShares(provider, input.NodeId, input.Supply), CancellationToken.None);
        if (!o.Result.Ok) return ExchangeProblems.From(o.Result.Error, new ProblemContext(Provider: provider, Node: input.NodeId));
        ShareNodeDto dto = (await ex.ReadAsync(v => v.ShareNode(input.NodeId) is { } n ? Dto(v, n) : null, CancellationToken.None))!;
        return TypedResults.Created($"/api/shares/{input.NodeId}", dto);
    }

    private static async Task<Ok<HoldingList>> HoldingsAsync(ClaimsPrincipal user, ExchangeHost ex, CancellationToken ct)
    {
        long holder = (long)user.RequireCaller().Principal.Id;
        var holdings = await ex.ReadAsync(v => v.HoldingsOf(holder)
            .Select(h => new HoldingDto(h.Node, ComputeGrid.Exchange.Instruments.Instrument.NodeSharesSymbol(h.Node), h.Total, h.Free, h.Offered, h.Pledged)).ToList(), ct);
        return TypedResults.Ok(new HoldingList(holder, holdings));
    }

    private static async Task<Results<Ok<HoldingDto>, ProblemHttpResult>> TransferAsync(long node, ShareTransferInput input, ClaimsPrincipal user, ExchangeHost ex, TrustStore store)
    {
        long holder = (long)user.RequireCaller().Principal.Id;
        if (store.Find((ulong)input.To) is not { Disabled: null } to || to.Kind is not (PrincipalKind.Customer or PrincipalKind.Provider))
            return Problems.NotFound($"No customer or provider {input.To} to receive the shares.");
        CommandOutcome o = await ex.SubmitAsync(ExchangeCommand.TransferShares(holder, node, input.To, input.Shares), CancellationToken.None);
        if (!o.Result.Ok) return ExchangeProblems.From(o.Result.Error, new ProblemContext(Owner: holder, Node: node));
        ShareHoldingView h = await ex.ReadAsync(v => v.HoldingOf(holder, node), CancellationToken.None);
        return TypedResults.Ok(new HoldingDto(node, ComputeGrid.Exchange.Instruments.Instrument.NodeSharesSymbol(node), h.Total, h.Free, h.Offered, h.Pledged));
    }
}
