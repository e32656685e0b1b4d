using System.Text.Json;
using ComputeGrid.Core;
using ComputeGrid.Ledger;
using ComputeGrid.Ledger.Audit;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Routing;

namespace ComputeGrid.Server.Ledger;

/// <summary>
/// The ledger's HTTP API under <c>/api/ledger</c>. Batches in, one result per event out (HTTP 200 even
/// when events fail: each carries its result code). Malformed requests get a problem+json 4xx and never
/// reach the ledger, so nothing is half-applied.
/// </summary>
public static class LedgerEndpoints
{
    /// <summary>Largest request body the batch endpoints read: a full batch of verbose JSON transfers.</summary>
    public const long RequestBytesMax = 4L << 20;

    public static RouteGroupBuilder MapLedger(this IEndpointRouteBuilder app)
    {
        var g = app.MapGroup("/api/ledger").WithTags("ledger");

        MapBatch<AccountInput, Account, CreateAccountResult>(g, "/accounts", a => a.ToAccount(), a => a.Id, (l, e, ct) => l.CreateAccountsAsync(e, ct));
        MapBatch<TransferInput, Transfer, CreateTransferResult>(g, "/transfers", t => t.ToTransfer(), t => t.Id, (l, e, ct) => l.CreateTransfersAsync(e, ct));

        g.MapPost("/accounts/lookup", async (HttpContext http, LedgerEngine ledger) =>
        {
            var (ids, problem) = await ReadBatchAsync<UInt128>(http);
            if (problem is not null) return problem;
            var found = await ledger.LookupAccountsAsync(ids!, http.RequestAborted);
            return Results.Ok(found.Select(a => AccountView.From(a)).ToArray());
        });

        g.MapPost("/transfers/lookup", async (HttpContext http, LedgerEngine ledger) =>
        {
            var (ids, problem) = await ReadBatchAsync<UInt128>(http);
            if (problem is not null) return problem;
            var found = await ledger.LookupTransfersAsync(ids!, http.RequestAborted);
            return Results.Ok(found.Select(x => TransferView.From(x.Transfer, x.Status)).ToArray());
        });

        g.MapGet("/accounts/{id}", async (string id, LedgerEngine ledger, CancellationToken ct) =>
        {
            if (!Ids.TryParse(id, out var accountId)) return BadId(id);
            var found = await ledger.LookupAccountsAsync(new[] { accountId }, ct);
            return found.Length == 0 ? Problems.NotFound($"No account {id}.") : Results.Ok(AccountView.From(found[0]));
        });

        g.MapGet("/transfers/{id}", async (string id, LedgerEngine ledger, CancellationToken ct) =>
        {
            if (!Ids.TryParse(id, out var transferId)) return BadId(id);
            var found = await ledger.LookupTransfersAsync(new[] { transferId }, ct);
            return found.Length == 0 ? Problems.NotFound($"No transfer {id}.") : Results.Ok(TransferView.From(found[0].Transfer, found[0].Status));
        });

        g.MapGet("/accounts/{id}/transfers", async (string id, int? limit, long? before, LedgerEngine ledger, CancellationToken ct) =>
        {
            if (!Ids.TryParse(id, out var accountId)) return BadId(id);
            int n = limit ?? 100;
            if (n < 1 || n > LedgerLimits.HistoryLimitMax) return Problems.BadRequest($"limit must be between 1 and {LedgerLimits.HistoryLimitMax}.");
            Transfer[]? history;
            // `before` must be a `next` this endpoint handed out (a transfer of this account): the ledger refuses others.
            try { history = await ledger.GetAccountTransfersAsync(accountId, before ?? long.MaxValue, n, ct); }
            catch (HistoryCursorException e) { return Problems.BadRequest(e.Message, "Bad cursor"); }
            if (history is null) return Problems.NotFound($"No account {id}.");
            // History holds the stored transfers; their pending status is looked up in one more ordered read.
            var withStatus = await ledger.LookupTransfersAsync(history.Select(t => t.Id).ToArray(), ct);
            return Results.Ok(new
            {
                accountId = Ids.Format(accountId),
                transfers = withStatus.Select(x => TransferView.From(x.Transfer, x.Status)).ToArray(),
                next = history.Length == n ? history[^1].Timestamp : (long?)null,
            });
        });

        g.MapPost("/checkpoints", async (LedgerEngine ledger, CancellationToken ct) => Results.Ok(CheckpointView(await ledger.CheckpointAsync(ct))));

        g.MapGet("/checkpoints/latest", async (LedgerEngine ledger, CancellationToken ct) =>
        {
            var cp = ledger.LatestCheckpoint ?? await ledger.CheckpointAsync(ct);
            return Results.Ok(CheckpointView(cp));
        });

        g.MapGet("/accounts/{id}/proof", async (string id, LedgerEngine ledger, CancellationToken ct) =>
        {
            if (!Ids.TryParse(id, out var accountId)) return BadId(id);
            var cp = ledger.LatestCheckpoint ?? await ledger.CheckpointAsync(ct);
            var proof = cp.ProofFor(accountId);
            if (proof is null)
            {
                // The account may be newer than the checkpoint: take a fresh one before answering "not found".
                cp = await ledger.CheckpointAsync(ct);
                proof = cp.ProofFor(accountId);
            }
            return proof is null ? Problems.NotFound($"No account {id}.") : Results.Json(proof, BalanceProof.Json);
        });

        g.MapGet("/chain", (LedgerEngine ledger) =>
        {
            var (op, head) = ledger.ChainHead;
            var stats = ledger.Stats;
            return Results.Ok(new { op, head, stats.Accounts, stats.Transfers, stats.Fsyncs, stats.Groups, logBytes = stats.LogBytes });
        });

        return g;
    }

    /// <summary>A batch endpoint: strict JSON array in, one result per event out (name and stable code).</summary>
    private static void MapBatch<TInput, TEvent, TResult>(RouteGroupBuilder g, string path, Func<TInput, TEvent> toEvent, Func<TEvent, UInt128> idOf,
        Func<LedgerEngine, TEvent[], CancellationToken, Task<TResult[]>> create) where TResult : struct, Enum
    {
        g.MapPost(path, async (HttpContext http, LedgerEngine ledger) =>
        {
            var (batch, problem) = await ReadBatchAsync<TInput>(http);
            if (problem is not null) return problem;
            var events = batch!.Select(toEvent).ToArray();
            var results = await create(ledger, events, http.RequestAborted);
            var items = results.Select((r, i) => new EventResult(i, idOf(events[i]), r.ToString(), Convert.ToUInt32(r, System.Globalization.CultureInfo.InvariantCulture))).ToArray();
            int ok = items.Count(r => r.Code == 0);
            return Results.Ok(new BatchResponse(ok, items.Length - ok, items));
        });
    }

    private static object CheckpointView(Checkpoint cp) => new
    {
        cp.Op, cp.Timestamp, cp.ChainHead, cp.Root,
        assets = cp.Assets.Select(a => new { a.Asset, symbol = Asset.TryFromCode(a.Asset, out var s) ? s.Symbol : null, a.Hash, a.Debits, a.Credits, a.Accounts }),
    };

    private static IResult BadId(string id) => Problems.BadRequest($"'{id}' is not an id: ids are decimal strings of 128-bit unsigned integers (or 0x-hex).");

    /// <summary>
    /// Reads a JSON array of events with the body-size limit, strict parsing and the batch limit; returns a
    /// problem (400, 413, 415) instead when the request is malformed.
    /// </summary>
    private static async Task<(T[]? Batch, IResult? Problem)> ReadBatchAsync<T>(HttpContext http)
    {
        if (http.Request.ContentType is { } ct && !ct.StartsWith("application/json", StringComparison.OrdinalIgnoreCase))
            return (null, Problems.UnsupportedMediaType("Send the batch as application/json."));
        if (http.Request.ContentLength > RequestBytesMax)
            return (null, Problems.TooLarge($"The body is {http.Request.ContentLength} bytes; the limit is {RequestBytesMax}."));
        var sizeFeature = http.Features.Get<IHttpMaxRequestBodySizeFeature>();
        if (sizeFeature is { IsReadOnly: false }) sizeFeature.MaxRequestBodySize = RequestBytesMax;
        T[]? batch;
        try
        {
            batch = await JsonSerializer.DeserializeAsync<T[]>(http.Request.Body, ApiJson.Options, http.RequestAborted);
        }
        catch (JsonException e)
        {
            string where = e.Path is null ? "" : $" at {e.Path}";
            return (null, Problems.BadRequest($"Malformed JSON{where}: {FirstSentence(e.Message)}", "Malformed JSON"));
        }
        catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            return (null, Problems.TooLarge($"The body exceeds the limit of {RequestBytesMax} bytes."));
        }
        if (batch is null) return (null, Problems.BadRequest("The body must be a JSON array of events, not null."));
        if (batch.Length == 0) return (null, Problems.BadRequest("The batch is empty."));
        if (batch.Length > LedgerLimits.BatchEventsMax)
            return (null, Problems.BadRequest($"A batch holds at most {LedgerLimits.BatchEventsMax} events; this one has {batch.Length}."));
        return (batch, null);
    }

    private static string FirstSentence(string message)
    {
        int i = message.IndexOf(". ", StringComparison.Ordinal);
        return i < 0 ? message : message[..(i + 1)];
    }
}
