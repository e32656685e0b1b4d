using System.Threading.Channels;
using ComputeGrid.Ledger;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace ComputeGrid.Server.Inference;

/// <summary>
/// The capture of an answered request, due per the intent its durable hold carries.
/// </summary>
/// <param name="HoldId">The hold.</param>
/// <param name="Customer">The customer's principal id.</param>
/// <param name="RequestKey">The request's key (empty when recovery found the hold: a hold does not carry its key).</param>
/// <param name="Generation">The hold's generation (−1 when recovery found it).</param>
/// <param name="Node">The node's id (for dead letters).</param>
/// <param name="Intent">What to capture.</param>
/// <param name="Tokens">The request's metered tokens, recorded on the node's revenue transfer (0 when recovery found the hold: a hold does not carry them).</param>
/// <param name="Account">The account the hold debits when it is not the customer's balance (an x402 payer's); 0: the customer's.</param>
public sealed record DueCapture(UInt128 HoldId, ulong Customer, string RequestKey, int Generation, string Node, CaptureIntent Intent, int Tokens = 0, UInt128 Account = default);

/// <summary>What a round of settlement did, per capture.</summary>
/// <param name="Captured">Holds posted now.</param>
/// <param name="AlreadySettled">Captures found done before (posted, or charged after expiry, by this same request).</param>
/// <param name="ChargedAfterExpiry">Holds that had expired, charged now by direct transfers with the capture's ids.</param>
/// <param name="DeadLettered">Charges the ledger refused: recorded as dead letters (the platform's loss).</param>
public readonly record struct SettleCounts(int Captured, int AlreadySettled, int ChargedAfterExpiry, int DeadLettered)
{
    public static SettleCounts operator +(SettleCounts a, SettleCounts b) =>
        new(a.Captured + b.Captured, a.AlreadySettled + b.AlreadySettled, a.ChargedAfterExpiry + b.ChargedAfterExpiry, a.DeadLettered + b.DeadLettered);
}

/// <summary>
/// Captures answered requests in the background, many per ledger batch (one durable write, one fdatasync). The charge is
/// already a durable fact when a capture is queued — the request's hold carries its intent (<see cref="CaptureIntent"/>)
/// and was durable before the answer — so this queue may be lost with the process: <see cref="RecoverAsync"/> completes
/// it at the next start. Rules:
/// <list type="bullet">
/// <item>It never dies: a failed write (the ledger faulted, disposed, an I/O error) is retried with backoff, the same ids
/// each time (a retry of a chain that landed answers <c>Exists</c>). The queue is bounded
/// (<see cref="QueuedCapturesMax"/>); when it is full (or stopped) the gateway captures before answering instead.</item>
/// <item>It never serves free and never stops on one capture: a chain the ledger refuses is resolved alone — hold posted
/// already by this request: done; hold expired: charged by direct transfers with the same ids
/// (<see cref="InferencePayments.ChargeAfterExpiryChain"/>); anything else (the expired hold's money spent meanwhile, the
/// hold voided, a missing account): a dead letter (persisted, logged as an error, counted, listed), the hold released if
/// still pending, and the next capture goes on. The answer was sent, so a dead letter here is the platform's loss,
/// recorded for operators.</item>
/// </list>
/// </summary>
public sealed class CaptureSettler : IAsyncDisposable
{
    /// <summary>The most captures waiting; past it the gateway captures before answering (bounded memory).</summary>
    public const int QueuedCapturesMax = 65_536;

    /// <summary>The most captures in one ledger batch (three transfers each at most).</summary>
    public const int ChainsPerBatchMax = LedgerLimits.BatchEventsMax / 3;

    /// <summary>The longest wait between two tries of a failed write.</summary>
    public static readonly TimeSpan RetryDelayMax = TimeSpan.FromSeconds(2);

    /// <summary>How far before the newest escrow transfer recovery looks, beyond the holds' timeout.</summary>
    public static readonly TimeSpan RecoveryMargin = TimeSpan.FromSeconds(60);

    private readonly InferencePayments _payments;
    private readonly DeadLetters _deadLetters;
    private readonly Channel<DueCapture> _queue = Channel.CreateBounded<DueCapture>(new BoundedChannelOptions(QueuedCapturesMax)
    {
        SingleReader = true, FullMode = BoundedChannelFullMode.Wait,
    });
    private readonly CancellationTokenSource _stopping = new();
    private readonly Task _loop;
    private long _queued, _captured, _already, _afterExpiry, _dead, _retries;

    public CaptureSettler(InferencePayments payments, DeadLetters deadLetters)
    {
        _payments = payments;
        _deadLetters = deadLetters;
        _loop = Task.Run(RunAsync);
    }

    /// <summary>Where refusals (errors) and retries (warnings) are logged.</summary>
    public ILogger Log { get; set; } = NullLogger.Instance;

    /// <summary>Captures waiting now.</summary>
    public long Queued => Interlocked.Read(ref _queued);

    /// <summary>What the settler (and recovery) did since start.</summary>
    public SettleCounts Totals => new((int)Interlocked.Read(ref _captured), (int)Interlocked.Read(ref _already), (int)Interlocked.Read(ref _afterExpiry), (int)Interlocked.Read(ref _dead));

    /// <summary>Failed writes retried since start.</summary>
    public long Retries => Interlocked.Read(ref _retries);

    /// <summary>Queues a capture; false when the queue is full or stopped (the caller then captures before answering).</summary>
    public bool TryEnqueue(DueCapture capture)
    {
        if (DropForTest is { } drop && drop(capture)) return true; // the planted bug: accepted and lost
        if (!_queue.Writer.TryWrite(capture)) return false;
        Interlocked.Increment(ref _queued);
        return true;
    }

    /// <summary>
    /// Test-only: the whole-system simulation's planted bug. True drops the capture asked about as a bug that lost it
    /// would (accepted, never written), so the simulation shows its invariants catch it. Null everywhere else.
    /// </summary>
    internal Func<DueCapture, bool>? DropForTest { get; set; }

    /// <summary>Waits until no capture is queued (tests and tools read settled balances after it).</summary>
    public async Task IdleAsync(CancellationToken ct = default)
    {
        while (Queued > 0) await Task.Delay(2, ct);
    }

    /// <summary>
    /// Settles <paramref name="captures"/> now: one durable batch of capture chains, then each refused chain resolved
    /// alone (see the class). Idempotent: the same captures again change nothing. Throws only when the ledger or the
    /// dead-letter store fails (the caller retries).
    /// </summary>
    public async Task<SettleCounts> SettleAsync(IReadOnlyList<DueCapture> captures, CancellationToken ct = default)
    {
        var counts = new SettleCounts();
        for (int from = 0; from < captures.Count; from += ChainsPerBatchMax)
        {
            int n = Math.Min(ChainsPerBatchMax, captures.Count - from);
            var batch = new List<Transfer>(n * 3);
            var starts = new int[n + 1];
            for (int i = 0; i < n; i++)
            {
                DueCapture c = captures[from + i];
                starts[i] = batch.Count;
                batch.AddRange(InferencePayments.CaptureChain(c.HoldId, c.Intent.CostMicroUsd, c.Intent.FeeMicroUsd, c.Intent.NodePrincipal, c.Tokens, _payments.HasShares(c.Intent.NodePrincipal)));
            }
            starts[n] = batch.Count;
            CreateTransferResult[] results = await _payments.SubmitAsync(batch.ToArray(), ct);
            for (int i = 0; i < n; i++)
            {
                var chain = results.AsSpan(starts[i], starts[i + 1] - starts[i]);
                if (All(chain, CreateTransferResult.Ok)) counts += new SettleCounts(1, 0, 0, 0);
                else if (All(chain, CreateTransferResult.Exists)) counts += new SettleCounts(0, 1, 0, 0);
                else counts += await ResolveAsync(captures[from + i], chain.ToArray(), ct);
            }
        }
        Interlocked.Add(ref _captured, counts.Captured);
        Interlocked.Add(ref _already, counts.AlreadySettled);
        Interlocked.Add(ref _afterExpiry, counts.ChargedAfterExpiry);
        Interlocked.Add(ref _dead, counts.DeadLettered);
        return counts;
    }

    /// <summary>
    /// Completes, before the server takes requests, the captures a crash cut off: walks the inference escrow account's
    /// history newest first, back to its newest transfer − the hold timeout − <see cref="RecoveryMargin"/> (an older hold
    /// was settled or expired before the process died, and an expired one was resolved by the settler), takes the holds
    /// with an intent, and settles them by their status: pending → captured per intent; expired → charged by direct
    /// transfers; posted or voided → nothing. Idempotent (same ids): a second run changes nothing.
    /// </summary>
    /// <param name="nodeIds">The node id of each node principal (for dead letters).</param>
    /// <param name="holdTimeoutSeconds">The longest a hold lives.</param>
    /// <param name="ct">Cancels the walk (the start is abandoned).</param>
    public async Task<RecoveryCounts> RecoverAsync(IReadOnlyDictionary<ulong, string> nodeIds, uint holdTimeoutSeconds, CancellationToken ct = default)
    {
        var holds = new List<Transfer>();
        int scanned = 0;
        long before = long.MaxValue, cutoff = long.MinValue;
        while (true)
        {
            Transfer[]? page = await _payments.HistoryAsync(InferencePayments.EscrowAccount, before, LedgerLimits.HistoryLimitMax, ct);
            if (page is null || page.Length == 0) break;
            if (cutoff == long.MinValue)
                cutoff = page[0].Timestamp - checked((holdTimeoutSeconds + (long)RecoveryMargin.TotalSeconds) * LedgerLimits.NanosecondsPerSecond);
            bool done = false;
            foreach (Transfer t in page)
            {
                if (t.Timestamp < cutoff) { done = true; break; }
                scanned++;
                if (t.Code == (ushort)TransferCode.InferenceHold && (t.Flags & TransferFlags.Pending) != 0 && CaptureIntent.Of(t) is not null) holds.Add(t);
            }
            if (done || page.Length < LedgerLimits.HistoryLimitMax) break;
            before = page[^1].Timestamp;
        }
        var due = new List<DueCapture>();
        int settledBefore = 0;
        for (int from = 0; from < holds.Count; from += LedgerLimits.BatchEventsMax)
        {
            var ids = holds.Skip(from).Take(LedgerLimits.BatchEventsMax).Select(h => h.Id).ToArray();
            foreach (var (hold, status) in await _payments.LookupAsync(ids, ct))
            {
                // Posted or voided: settled. Dead-lettered: an operator's to settle (a charge retried now would contradict it).
                if (status is not (PendingStatus.Pending or PendingStatus.Expired) || _deadLetters.Contains(hold.Id)) { settledBefore++; continue; }
                CaptureIntent intent = CaptureIntent.Of(hold)!.Value;
                ulong customer = ChartOfAccounts.OwnerOf(hold.DebitAccountId).Principal;
                string node = nodeIds.TryGetValue(intent.NodePrincipal, out string? id) ? id : $"principal {intent.NodePrincipal}";
                due.Add(new DueCapture(hold.Id, customer, "", -1, node, intent, Account: hold.DebitAccountId));
            }
        }
        SettleCounts counts = await SettleAsync(due, ct);
        return new RecoveryCounts(scanned, holds.Count, settledBefore, counts);
    }

    // A refused chain, alone: what is its hold now?
    private async Task<SettleCounts> ResolveAsync(DueCapture c, CreateTransferResult[] refused, CancellationToken ct)
    {
        var found = await _payments.LookupAsync([c.HoldId, c.HoldId + 1], ct);
        PendingStatus status = found.Length > 0 && found[0].Transfer.Id == c.HoldId ? found[0].Status : PendingStatus.None;
        bool hasNext = found.Length > 0 && found[^1].Transfer.Id == c.HoldId + 1;
        switch (status)
        {
            case PendingStatus.Posted:
                return new SettleCounts(0, 1, 0, 0); // posted by this request's own capture (the ids are the request's)
            case PendingStatus.Expired when hasNext && InferencePayments.IsChargeAfterExpiry(found[^1].Transfer, c.HoldId):
                return new SettleCounts(0, 1, 0, 0);
            case PendingStatus.Expired:
            {
                CaptureIntent i = c.Intent;
                CreateTransferResult[] r = await _payments.SubmitAsync(
                    InferencePayments.ChargeAfterExpiryChain(c.HoldId, c.Customer, i.CostMicroUsd, i.FeeMicroUsd, i.NodePrincipal, c.Tokens, _payments.HasShares(i.NodePrincipal), c.Account), ct);
                if (All(r, CreateTransferResult.Ok)) return new SettleCounts(0, 0, 1, 0);
                if (All(r, CreateTransferResult.Exists)) return new SettleCounts(0, 1, 0, 0);
                DeadLetter(c, $"capture refused: {DeadLetters.Describe(refused)}; the hold had expired; the charge by direct transfers refused: {DeadLetters.Describe(r)}");
                return new SettleCounts(0, 0, 0, 1);
            }
            case PendingStatus.Pending:
            {
                // Refused while pending (an account missing or of another shape): release the hold, so no later
                // recovery acts on it, and record the loss.
                CreateTransferResult voided = await _payments.TryVoidAsync(c.HoldId, ct);
                DeadLetter(c, $"capture refused: {DeadLetters.Describe(refused)}; releasing the hold: {voided}");
                return new SettleCounts(0, 0, 0, 1);
            }
            default:
                DeadLetter(c, $"capture refused: {DeadLetters.Describe(refused)}; the hold is {status}");
                return new SettleCounts(0, 0, 0, 1);
        }
    }

    private void DeadLetter(DueCapture c, string reason)
    {
        DeadLetter letter = _deadLetters.Record(c.Customer, c.RequestKey, c.HoldId, c.Generation, c.Node, c.Intent.CostMicroUsd, c.Intent.FeeMicroUsd, reason);
        Log.LogError("Dead letter {Id}: the charge of answered request {Key} (hold {Hold}, customer {Customer}, node {Node}, {Cost} micro-USD) was refused: {Reason}",
            letter.Id, c.RequestKey, c.HoldId, c.Customer, c.Node, c.Intent.CostMicroUsd, reason);
    }

    private static bool All(ReadOnlySpan<CreateTransferResult> results, CreateTransferResult code)
    {
        foreach (CreateTransferResult r in results) if (r != code) return false;
        return true;
    }

    // The loop: take what is queued (up to a batch), settle it, retry a failed write with backoff until it lands or
    // the settler stops (then recovery completes it at the next start).
    private async Task RunAsync()
    {
        var batch = new List<DueCapture>(ChainsPerBatchMax);
        try
        {
            while (await _queue.Reader.WaitToReadAsync(_stopping.Token))
            {
                batch.Clear();
                while (batch.Count < ChainsPerBatchMax && _queue.Reader.TryRead(out DueCapture? c)) batch.Add(c);
                TimeSpan delay = TimeSpan.FromMilliseconds(5);
                while (true)
                {
                    try
                    {
                        await SettleAsync(batch, CancellationToken.None);
                        break;
                    }
                    catch (Exception e) when (!_stopping.IsCancellationRequested)
                    {
                        Interlocked.Increment(ref _retries);
                        Log.LogWarning(e, "Settling {Count} captures failed; retrying in {Delay} ms (the holds carry them; nothing is lost)", batch.Count, (int)delay.TotalMilliseconds);
                        await Task.Delay(delay, _stopping.Token);
                        delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, RetryDelayMax.Ticks));
                    }
                }
                Interlocked.Add(ref _queued, -batch.Count);
            }
        }
        catch (Exception e) when (_stopping.IsCancellationRequested)
        {
            // Stopped with captures unsettled: their holds carry them, and recovery completes them at the next start.
            if (e is not OperationCanceledException) Log.LogWarning(e, "Settling stopped by shutdown");
        }
        if (Queued > 0) Log.LogWarning("{Count} captures left to recovery at the next start", Queued);
    }

    /// <summary>
    /// Stops taking captures and settles what is queued, for at most <paramref name="drain"/>; what is left (the ledger
    /// down) is completed by recovery at the next start.
    /// </summary>
    public async Task StopAsync(TimeSpan drain)
    {
        _queue.Writer.TryComplete();
        _stopping.CancelAfter(drain);
        await _loop;
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync(TimeSpan.Zero);
        _stopping.Dispose();
    }
}

/// <summary>What recovery found and did.</summary>
/// <param name="Scanned">Escrow transfers read.</param>
/// <param name="HoldsWithIntent">Holds with a capture intent among them.</param>
/// <param name="SettledBefore">Of those, posted, voided or dead-lettered before (nothing to do).</param>
/// <param name="Settled">What settling the rest did.</param>
public readonly record struct RecoveryCounts(int Scanned, int HoldsWithIntent, int SettledBefore, SettleCounts Settled);
