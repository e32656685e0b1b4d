using System.Collections.Concurrent;
using ComputeGrid.Server.Trust;

namespace ComputeGrid.Server.Inference;

/// <summary>The first answer to an idempotent request: status, body and receipt headers.</summary>
public sealed record StoredResponse(int Status, byte[] Body, string ContentType, IReadOnlyList<KeyValuePair<string, string>> Headers);

/// <summary>
/// Answers a request retried with the same <c>Idempotency-Key</c> (per customer) with its first answer. Concurrent
/// retries wait for the first to finish rather than run twice. Entries live for <see cref="Lifetime"/> (24 h) in memory;
/// the charge itself is protected beyond that, and across restarts, by the ledger (the hold's id is derived from the key).
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

    /// <summary>
    /// Runs <paramref name="produce"/> once per (customer, key) and returns its answer to every caller with the same key
    /// (false in <c>Replayed</c> for the first caller, true for the others). A failed attempt (exception) is forgotten,
    /// so the client may retry.
    /// </summary>
    public async Task<(StoredResponse Response, bool Replayed)> RunOnceAsync(ulong customer, string key, Func<Task<StoredResponse>> produce)
    {
        Sweep();
        if (_entries.TryGetValue((customer, key), out Entry? known)) return (await known.Completion.Task, true);
        if (_perCustomer.AddOrUpdate(customer, 1, (_, n) => n + 1) > limits.IdempotencyEntriesPerCustomerMax)
        {
            _perCustomer.AddOrUpdate(customer, 0, (_, n) => n - 1);
            throw new QuotaExceededException($"This customer has {limits.IdempotencyEntriesPerCustomerMax} remembered Idempotency-Keys (each is kept {Lifetime.TotalHours:0} h), the most allowed.", TimeSpan.FromMinutes(1));
        }
        var entry = new Entry(time.GetUtcNow());
        Entry existing = _entries.GetOrAdd((customer, key), entry);
        if (!ReferenceEquals(existing, entry))
        {
            _perCustomer.AddOrUpdate(customer, 0, (_, n) => n - 1);
            return (await existing.Completion.Task, true);
        }
        try
        {
            StoredResponse response = await produce();
            entry.Completion.SetResult(response);
            return (response, false);
        }
        catch (Exception e)
        {
            if (_entries.TryRemove(new KeyValuePair<(ulong, string), Entry>((customer, key), entry))) _perCustomer.AddOrUpdate(customer, 0, (_, n) => n - 1);
            entry.Completion.SetException(e);
            throw;
        }
    }

    private void Sweep()
    {
        DateTimeOffset now = time.GetUtcNow();
        long last = Interlocked.Read(ref _lastSweep);
        if (now.UtcTicks - last < TimeSpan.TicksPerMinute || Interlocked.CompareExchange(ref _lastSweep, now.UtcTicks, last) != last) return;
        foreach (var (k, e) in _entries)
            if (now - e.Created > Lifetime && e.Completion.Task.IsCompleted && _entries.TryRemove(k, out _)) _perCustomer.AddOrUpdate(k.Customer, 0, (_, n) => n - 1);
    }

    private sealed class Entry(DateTimeOffset created)
    {
        public DateTimeOffset Created { get; } = created;
        public TaskCompletionSource<StoredResponse> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
