using System.Security.Claims;
using ComputeGrid.Core;
using ComputeGrid.Ledger;
using ComputeGrid.Ledger.Audit;
using ComputeGrid.Server.Trust;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace ComputeGrid.Server.Ledger;

/// <summary>
/// The ledger's HTTP API under <c>/api/ledger</c>. The raw batch API is the operators' and works in the client space
/// only (the chart of accounts' reserved ids and codes are refused, so no client can touch a system, customer or node
/// account through it). Everyone else reads what they own: their accounts, their history, their balance proofs.
/// Public: the latest checkpoint root and the audit chain's head.
/// </summary>
public static class LedgerEndpoints
{
    /// <summary>Maps the ledger's endpoints under <c>/api/ledger</c>.</summary>
    public static RouteGroupBuilder MapLedger(this IEndpointRouteBuilder app)
    {
        long batchBytes = app.ServiceProvider.GetRequiredService<ServerLimits>().BatchBodyBytesMax;
        var g = app.MapGroup("/api/ledger").WithTags("ledger");

        g.MapPost("/accounts", CreateAccountsAsync).RequireAuthorization(Policies.Operator).WithMetadata(new BodyLimitAttribute(batchBytes))
            .WithSummary("Creates accounts in the client space (operators): one result per event.");
        g.MapPost("/transfers", CreateTransfersAsync).RequireAuthorization(Policies.Operator).WithMetadata(new BodyLimitAttribute(batchBytes))
            .WithSummary("Creates transfers between client-space accounts (operators): one result per event.");
        g.MapPost("/accounts/lookup", async ([FromBody] UInt128[] ids, LedgerEngine ledger, CancellationToken ct) =>
                BatchSize(ids.Length) ?? (IResult)TypedResults.Ok((await ledger.LookupAccountsAsync(ids, ct)).Select(a => AccountView.From(a)).ToArray()))
            .RequireAuthorization(Policies.OperatorRead).WithMetadata(new BodyLimitAttribute(batchBytes)).Produces<AccountView[]>()
            .WithSummary("Looks accounts up by id (operators).");
        g.MapPost("/transfers/lookup", async ([FromBody] UInt128[] ids, LedgerEngine ledger, CancellationToken ct) =>
                BatchSize(ids.Length) ?? (IResult)TypedResults.Ok((await ledger.LookupTransfersAsync(ids, ct)).Select(x => TransferView.From(x.Transfer, x.Status)).ToArray()))
            .RequireAuthorization(Policies.OperatorRead).WithMetadata(new BodyLimitAttribute(batchBytes)).Produces<TransferView[]>()
            .WithSummary("Looks transfers up by id (operators).");

        g.MapGet("/accounts/{id}", AccountAsync).RequireAuthorization(Policies.Reader).WithSummary("An account the caller owns (operators: any).");
        g.MapGet("/transfers/{id}", TransferAsync).RequireAuthorization(Policies.Reader).WithSummary("A transfer to or from an account the caller owns (operators: any).");
        g.MapGet("/accounts/{id}/transfers", HistoryAsync).RequireAuthorization(Policies.Reader)
            .WithSummary("An account's transfers, newest first, a page at a time (O(page), whatever the history's length).");
        g.MapGet("/accounts/{id}/proof", ProofAsync).RequireAuthorization(Policies.Reader)
            .WithSummary("A balance proof of an account against the latest checkpoint, checkable offline with `computegrid verify`.");

        g.MapPost("/checkpoints", async (LedgerEngine ledger, CancellationToken ct) => TypedResults.Ok(CheckpointView.From(await ledger.CheckpointAsync(ct))))
            .RequireAuthorization(Policies.Operator).WithSummary("Takes a checkpoint now (operators; the server takes one periodically).");
        g.MapGet("/checkpoints/latest", Results<Ok<CheckpointView>, ProblemHttpResult> (LedgerEngine ledger) =>
                ledger.LatestCheckpoint is { } cp ? TypedResults.Ok(CheckpointView.From(cp)) : Problems.NotFound("No checkpoint yet: the server takes the first one as it starts."))
            .AllowAnonymous().WithSummary("The latest checkpoint's root: what balance proofs are checked against.");
        g.MapGet("/chain", (LedgerEngine ledger) =>
            {
                var (op, head) = ledger.ChainHead;
                return TypedResults.Ok(new ChainHeadView(op, head));
            })
            .AllowAnonymous().WithSummary("The head of the ledger's audit hash chain.");
        return g;
    }

    private static async Task<Results<Ok<BatchResponse>, ProblemHttpResult>> CreateAccountsAsync([FromBody] AccountInput[] batch, ClaimsPrincipal user,
        LedgerEngine ledger, TrustStore store, ServerLimits limits, CancellationToken ct)
    {
        if (BatchSize(batch.Length) is { } bad) return bad;
        for (int i = 0; i < batch.Length; i++)
        {
            if (ChartOfAccounts.IsReserved(batch[i].Id))
                return Problems.Unprocessable($"accounts[{i}]: id {batch[i].Id} is in the reserved (system) space; client accounts have ids below 2^127.", Code("reserved_id"));
            // Checked here, not only by the input's [Range]: the framework's validation does not reach the elements of a batch.
            if (ChartOfAccounts.IsReservedCode(batch[i].Code))
                return Problems.Unprocessable($"accounts[{i}]: code {batch[i].Code} is reserved by the chart of accounts; client accounts have codes 1 to {ChartOfAccounts.ClientCodeMax}.", Code("reserved_code"));
            if (!Asset.TryFromSymbol(batch[i].Asset, out _))
                return Problems.BadRequest($"accounts[{i}]: asset must be one of {string.Join(", ", Asset.All.Select(a => a.Symbol))}.");
        }
        ulong by = user.RequireCaller().Principal.Id;
        int made = store.RawAccountsCreatedBy(by);
        if (made + batch.Length > limits.RawAccountsPerOperatorMax)
            throw new QuotaExceededException($"Operator {by} has created {made} raw ledger accounts; the most is {limits.RawAccountsPerOperatorMax}.", TimeSpan.FromHours(1));
        var events = batch.Select(a => a.ToAccount()).ToArray();
        // Not cancellable once sent: the ledger applies the batch whether or not the client waits for the answer.
        CreateAccountResult[] results = await ledger.CreateAccountsAsync(events, CancellationToken.None);
        BatchResponse response = Response(results, i => events[i].Id);
        if (response.Ok > 0) store.Record(by, "ledger-accounts", $"{response.Ok} raw accounts", response.Ok);
        return TypedResults.Ok(response);
    }

    private static async Task<Results<Ok<BatchResponse>, ProblemHttpResult>> CreateTransfersAsync([FromBody] TransferInput[] batch, LedgerEngine ledger, CancellationToken ct)
    {
        if (BatchSize(batch.Length) is { } bad) return bad;
        for (int i = 0; i < batch.Length; i++)
        {
            TransferInput t = batch[i];
            string? reserved = ChartOfAccounts.IsReserved(t.Id) ? "id"
                : ChartOfAccounts.IsReserved(t.DebitAccountId) ? "debit_account_id"
                : ChartOfAccounts.IsReserved(t.CreditAccountId) ? "credit_account_id"
                : ChartOfAccounts.IsReserved(t.PendingId) ? "pending_id" : null;
            if (reserved is not null)
                return Problems.Unprocessable($"transfers[{i}]: {reserved} is in the reserved (system) space; the raw API moves money between client accounts only.", Code("reserved_id"));
            if (ChartOfAccounts.IsReservedCode(t.Code))
                return Problems.Unprocessable($"transfers[{i}]: code {t.Code} is reserved by the chart of accounts; client transfers have codes up to {ChartOfAccounts.ClientCodeMax}.", Code("reserved_code"));
            if (t.Asset.Length > 0 && !Asset.TryFromSymbol(t.Asset, out _))
                return Problems.BadRequest($"transfers[{i}]: asset must be one of {string.Join(", ", Asset.All.Select(a => a.Symbol))}.");
        }
        var events = batch.Select(t => t.ToTransfer()).ToArray();
        CreateTransferResult[] results = await ledger.CreateTransfersAsync(events, CancellationToken.None);
        return TypedResults.Ok(Response(results, i => events[i].Id));
    }

    private static async Task<Results<Ok<AccountView>, ProblemHttpResult>> AccountAsync(UInt128 id, ClaimsPrincipal user, LedgerEngine ledger, IAuthorizationService authz, CancellationToken ct)
    {
        if (!await MayReadAsync(authz, user, id)) return NoAccount(id);
        Account[] found = await ledger.LookupAccountsAsync([id], ct);
        return found.Length == 0 ? NoAccount(id) : TypedResults.Ok(AccountView.From(found[0]));
    }

    private static async Task<Results<Ok<TransferView>, ProblemHttpResult>> TransferAsync(UInt128 id, ClaimsPrincipal user, LedgerEngine ledger, IAuthorizationService authz, CancellationToken ct)
    {
        var found = await ledger.LookupTransfersAsync([id], ct);
        // A transfer is the business of both its accounts; anyone else gets the same answer as for a transfer that does not exist.
        if (found.Length == 0 || !(await MayReadAsync(authz, user, found[0].Transfer.DebitAccountId) || await MayReadAsync(authz, user, found[0].Transfer.CreditAccountId)))
            return Problems.NotFound($"No transfer {id} of yours.");
        return TypedResults.Ok(TransferView.From(found[0].Transfer, found[0].Status));
    }

    private static async Task<Results<Ok<HistoryPage>, ProblemHttpResult>> HistoryAsync(UInt128 id, int? limit, ApiTime? before, ClaimsPrincipal user,
        LedgerEngine ledger, IAuthorizationService authz, CancellationToken ct)
    {
        if (!await MayReadAsync(authz, user, id)) return NoAccount(id);
        int n = limit ?? 100;
        if (n < 1 || n > LedgerLimits.HistoryLimitMax) return Problems.BadRequest($"limit must be between 1 and {LedgerLimits.HistoryLimitMax}.");
        Transfer[]? history;
        // `before` must be a `next` this endpoint handed out (a transfer of this account): the ledger refuses others.
        try { history = await ledger.GetAccountTransfersAsync(id, before?.UnixNanoseconds ?? long.MaxValue, n, ct); }
        catch (HistoryCursorException e) { return Problems.BadRequest(e.Message, "Bad cursor"); }
        if (history is null) return NoAccount(id);
        // History holds the stored transfers; their pending status is looked up in one more ordered read.
        var withStatus = await ledger.LookupTransfersAsync(history.Select(t => t.Id).ToArray(), ct);
        return TypedResults.Ok(new HistoryPage(id, withStatus.Select(x => TransferView.From(x.Transfer, x.Status)).ToArray(),
            history.Length == n ? new ApiTime(history[^1].Timestamp) : null));
    }

    private static async Task<Results<JsonHttpResult<BalanceProof>, ProblemHttpResult>> ProofAsync(UInt128 id, ClaimsPrincipal user, LedgerEngine ledger, IAuthorizationService authz,
        ServerOptions options)
    {
        if (!await MayReadAsync(authz, user, id)) return NoAccount(id);
        // Proofs come from the latest checkpoint, never from one built for the request: building one walks every account.
        if (ledger.LatestCheckpoint is not { } cp) return Problems.NotFound("No checkpoint yet: the server takes the first one as it starts.");
        return cp.ProofFor(id) is { } proof
            ? TypedResults.Json(proof, BalanceProof.Json)
            : Problems.NotFound($"Account {id} is not in the latest checkpoint (op {cp.Op}); checkpoints are taken every {options.CheckpointInterval.TotalSeconds:0} s while the ledger changes.");
    }

    private static async Task<bool> MayReadAsync(IAuthorizationService authz, ClaimsPrincipal user, UInt128 account)
    {
        var (ownership, principal) = ChartOfAccounts.OwnerOf(account);
        return await authz.MayAsync(user, ownership == AccountOwnership.Principal ? principal : null);
    }

    private static ProblemHttpResult NoAccount(UInt128 id) => Problems.NotFound($"No account {id} of yours.");

    private static ProblemHttpResult? BatchSize(int count) =>
        count == 0 ? Problems.BadRequest("The batch is empty.")
        : count > LedgerLimits.BatchEventsMax ? Problems.BadRequest($"A batch holds at most {LedgerLimits.BatchEventsMax} events; this one has {count}.")
        : null;

    private static BatchResponse Response<TResult>(TResult[] results, Func<int, UInt128> idOf) where TResult : struct, Enum
    {
        var items = results.Select((r, i) => new EventResult(i, idOf(i), ApiJson.Naming.ConvertName(r.ToString()),
            Convert.ToUInt32(r, System.Globalization.CultureInfo.InvariantCulture))).ToArray();
        int ok = items.Count(r => r.Code == 0);
        return new BatchResponse(ok, items.Length - ok, items);
    }

    private static Dictionary<string, object?> Code(string code) => new() { [ApiErrors.CodeExtension] = code };
}
