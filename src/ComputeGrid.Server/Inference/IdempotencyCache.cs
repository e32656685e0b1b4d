using System.Collections.Concurrent;
using ComputeGrid.Server.Trust;

namespace ComputeGrid.Server.Inference;

/// <summary>The first answer to an idempotent request: status, body and receipt headers.</summary>
public sealed record StoredResponse(int Status, byte[] Body, string ContentType, IReadOnlyList<KeyValuePair<string, string>> Headers);

/// <summary>What <see cref="IdempotencyCache.RunOnceAsync"/> did.</summary>
public enum IdempotencyOutcome
{
    /// <summary>The request ran now.</summary>
    Fresh,
    /// <summary>The first answer to this key was returned again.</summary>
    Replayed,
    /// <summary>The key was used for another request (another fingerprint): nothing ran (HTTP 422).</summary>
    KeyReused,
}

/// <summary>
/// Answers a request retried with the same <c>Idempotency-Key</c> (per customer) with its first answer. Concurrent
/// retries wait for the first to finish rather than run twice. Only a finished answer (2xx) is kept: a 402 (the customer
/// may top up), a 5xx (no node, a refused capture) or a failure is forgotten once answered, so a retry runs again. An
/// entry remembers its request's fingerprint: the same key with another request is <see cref="IdempotencyOutcome.KeyReused"/>.
/// Entries live for <see cref="Lifetime"/> (24 h, far longer than a hold) in memory; the charge itself is protected
/// beyond that, and across restarts, by the ledger (the hold's id is derived from the key and carries the fingerprint).
/// A customer holds at most <see cref="ServerLimits.IdempotencyEntriesPerCustomerMax"/> entries: a new key past that is
/// refused with 429 (<see cref="QuotaExceededException"/>) until old entries expire.
/// </summary>
public sealed class IdempotencyCache(TimeProvider time, ServerLimits limits)
{
    private readonly ConcurrentDictionary<(ulong Customer, string Key), Entry> _entries = new();
    private readonly ConcurrentDictionary<ulong, int> _perCustomer = new();
    private long _lastSweep;

    /// <summary>How long an answer is kept.</summary>
    public static TimeSpan Lifetime { get; } = TimeSpan.FromHours(24);

    /// <summary>Whether an answer of <paramref name="status"/> is kept for replay: only finished work (2xx).</summary>
    public static bool Keeps(int status) => status is >= 200 and < 300;

    /// <summary>Keys remembered now for <paramref name="customer"/>.</summary>
    public int CountOf(ulong customer) => _perCustomer.TryGetValue(customer, out int n) ? n : 0;

    /// <summary>
    /// Runs <paramref name="produce"/> once per (customer, key) and returns its answer to every caller with the same key
    /// and fingerprint (<see cref="IdempotencyOutcome.Fresh"/> for the first caller, <see cref="IdempotencyOutcome.Replayed"/>
    /// for the others); a caller with another fingerprint gets <see cref="IdempotencyOutcome.KeyReused"/> and no answer.
    /// An answer that is not kept (<see cref="Keeps"/>) or a failed attempt (exception) is forgotten, so the client may retry.
    /// </summary>
    public async Task<(StoredResponse? Response, IdempotencyOutcome Outcome)> RunOnceAsync(ulong customer, string key, UInt128 fingerprint, Func<Task<StoredResponse>> produce)
    {
        Sweep();
        if (_entries.TryGetValue((customer, key), out Entry? known))
            return known.Fingerprint != fingerprint ? (null, IdempotencyOutcome.KeyReused) : (await known.Completion.Task, IdempotencyOutcome.Replayed);
        if (_perCustomer.AddOrUpdate(customer, 1, (_, n) => n + 1) > limits.IdempotencyEntriesPerCustomerMax)
        {
            _perCustomer.AddOrUpdate(customer, 0, (_, n) => n - 1);
            throw new QuotaExceededException($"This customer has {limits.IdempotencyEntriesPerCustomerMax} remembered Idempotency-Keys (each is kept {Lifetime.TotalHours:0} h), the most allowed.", TimeSpan.FromMinutes(1));
        }
        var entry = new Entry(time.GetUtcNow(), fingerprint);
        Entry existing = _entries.GetOrAdd((customer, key), entry);
        if (!ReferenceEquals(existing, entry))
        {
            _perCustomer.AddOrUpdate(customer, 0, (_, n) => n - 1);
            return existing.Fingerprint != fingerprint ? (null, IdempotencyOutcome.KeyReused) : (await existing.Completion.Task, IdempotencyOutcome.Replayed);
        }
        try
        {
            StoredResponse response = await produce();
            if (!Keeps(response.Status)) Forget(customer, key, entry);
            entry.Completion.SetResult(response);
            return (response, IdempotencyOutcome.Fresh);
        }
        catch (Exception e)
        {
            Forget(customer, key, entry);
            entry.Completion.SetException(e);
            throw;
        }
    }

    private void Forget(ulong customer, string key, Entry entry)
    {
        if (_entries.TryRemove(new KeyValuePair<(ulong, string), Entry>((customer, key), entry))) _perCustomer.AddOrUpdate(customer, 0, (_, n) => n - 1);
    }

    private void Sweep()
    {
        DateTimeOffset now = time.GetUtcNow();
        long last = Interlocked.Read(ref _lastSweep);
        if (now.UtcTicks - last < TimeSpan.TicksPerMinute || Interlocked.CompareExchange(ref _lastSweep, now.UtcTicks, last) != last) return;
        foreach (var (k, e) in _entries)
            if (now - e.Created > Lifetime && e.Completion.Task.IsCompleted && _entries.TryRemove(k, out _)) _perCustomer.AddOrUpdate(k.Customer, 0, (_, n) => n - 1);
    }

    private sealed class Entry(DateTimeOffset created, UInt128 fingerprint)
    {
        public DateTimeOffset Created { get; } = created;
        public UInt128 Fingerprint { get; } = fingerprint;
        public TaskCompletionSource<StoredResponse> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
