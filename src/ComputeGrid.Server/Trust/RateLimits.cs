using System.Collections.Concurrent;
using System.Globalization;
using System.Threading.RateLimiting;
using Microsoft.AspNetCore.Http;

namespace ComputeGrid.Server.Trust;

/// <summary>
/// Rate limits per principal, a .NET <see cref="PartitionedRateLimiter{TResource}"/> over the request: one token bucket
/// per authenticated principal, sized by its kind (<see cref="ServerLimits"/>), and one per client address for
/// anonymous callers; the node port is not limited (its callers are admitted nodes on their own sessions). The request
/// gate asks it right after authentication and answers a refusal with 429 problem+json and <c>Retry-After</c>; other
/// principals are unaffected. (ASP.NET's rate-limiting middleware would ask the same limiter one layer later, and on
/// the paid path every layer costs.) The buckets are refilled from the <see cref="TimeProvider"/> when they are used (no
/// timer per principal), allocation-free on the way through (a granted request shares one lease object), with a lock
/// per bucket. Buckets of addresses that are full again are dropped when there are many, so addresses cannot make the
/// server hold without bound.
/// </summary>
public sealed class PrincipalRateLimiter(ServerLimits limits, TimeProvider time) : PartitionedRateLimiter<HttpContext>
{
    /// <summary>Answers a refused request: 429 problem+json with <c>Retry-After</c>.</summary>
    public static Task RejectAsync(HttpContext http, RateLimitLease lease)
    {
        TimeSpan after = lease.TryGetMetadata(MetadataName.RetryAfter, out TimeSpan retry) ? retry : TimeSpan.FromSeconds(1);
        http.Response.Headers.RetryAfter = Math.Max(1, (int)Math.Ceiling(after.TotalSeconds)).ToString(CultureInfo.InvariantCulture);
        string who = http.User.Caller() is { } c ? $"{c.Principal.Kind.ToString().ToLowerInvariant()} {c.Principal.Id}" : "this address";
        return ApiErrors.WriteAsync(http, StatusCodes.Status429TooManyRequests, "Too many requests",
            $"The rate limit of {who} is reached; retry after the time in Retry-After.", "rate_limit_exceeded").AsTask();
    }

    /// <summary>Address buckets kept before full ones are dropped.</summary>
    public const int AddressBucketsMax = 100_000;

    private readonly ConcurrentDictionary<ulong, Bucket> _principals = new();
    private readonly ConcurrentDictionary<System.Net.IPAddress, Bucket> _addresses = new();

    protected override RateLimitLease AttemptAcquireCore(HttpContext http, int permitCount)
    {
        if (ConnectionRoles.IsNodePort(http)) return Lease.Granted;
        long now = time.GetTimestamp();
        Bucket bucket;
        if (http.User.Caller() is { } caller)
        {
            RateLimit rate = caller.Principal.Kind switch
            {
                PrincipalKind.Operator => limits.Operator,
                PrincipalKind.Provider => limits.Provider,
                _ => limits.Customer,
            };
            bucket = _principals.GetOrAdd(caller.Principal.Id, static (_, r) => new Bucket(r.Rate, r.Now), (Rate: rate, Now: now));
        }
        else
        {
            System.Net.IPAddress address = http.Connection.RemoteIpAddress ?? System.Net.IPAddress.None;
            if (!_addresses.TryGetValue(address, out bucket!))
            {
                if (_addresses.Count >= AddressBucketsMax) Sweep(now);
                bucket = _addresses.GetOrAdd(address, static (_, r) => new Bucket(r.Rate, r.Now), (Rate: limits.Anonymous, Now: now));
            }
        }
        TimeSpan? wait = bucket.TryTake(Math.Max(permitCount, 1), now, time.TimestampFrequency);
        return wait is { } retry ? new Lease(false, retry) : Lease.Granted;
    }

    protected override ValueTask<RateLimitLease> AcquireAsyncCore(HttpContext http, int permitCount, CancellationToken cancellationToken) =>
        ValueTask.FromResult(AttemptAcquireCore(http, permitCount));

    public override RateLimiterStatistics? GetStatistics(HttpContext resource) => null;

    private void Sweep(long now)
    {
        foreach (var (address, bucket) in _addresses)
            if (bucket.IsFull(now, time.TimestampFrequency)) _addresses.TryRemove(address, out _);
    }

    /// <summary>A token bucket in millionths of a token, refilled lazily.</summary>
    private sealed class Bucket(RateLimit rate, long now)
    {
        private const long Scale = 1_000_000;
        private readonly long _capacity = rate.Burst * Scale;
        private readonly long _perSecond = rate.PerSecond * Scale;
        private long _tokens = rate.Burst * Scale;
        private long _last = now;

        /// <summary>Takes <paramref name="n"/> tokens; null when granted, else how long until they are there.</summary>
        public TimeSpan? TryTake(int n, long now, long frequency)
        {
            long need = n * Scale;
            lock (this)
            {
                Refill(now, frequency);
                if (_tokens >= need)
                {
                    _tokens -= need;
                    return null;
                }
                return TimeSpan.FromSeconds((double)(need - _tokens) / _perSecond);
            }
        }

        public bool IsFull(long now, long frequency)
        {
            lock (this)
            {
                Refill(now, frequency);
                return _tokens >= _capacity;
            }
        }

        private void Refill(long now, long frequency)
        {
            long elapsed = now - _last;
            if (elapsed <= 0) return;
            _last = now;
            // Past a full refill the exact amount does not matter (and the product could overflow).
            _tokens = elapsed >= frequency * (_capacity / Math.Max(_perSecond, 1) + 1)
                ? _capacity
                : Math.Min(_capacity, _tokens + (long)((decimal)elapsed * _perSecond / frequency));
        }
    }

    private sealed class Lease(bool acquired, TimeSpan retryAfter) : RateLimitLease
    {
        public static readonly Lease Granted = new(true, TimeSpan.Zero);

        public override bool IsAcquired => acquired;

        public override IEnumerable<string> MetadataNames => acquired ? [] : [MetadataName.RetryAfter.Name];

        public override bool TryGetMetadata(string metadataName, out object? metadata)
        {
            metadata = !acquired && metadataName == MetadataName.RetryAfter.Name ? retryAfter : null;
            return metadata is not null;
        }

        protected override void Dispose(bool disposing) { }
    }
}

/// <summary>
/// Live-feed connections per principal (or client address) and in all: a subscriber over its quota is refused with
/// 429 before its stream opens.
/// </summary>
public sealed class FeedSubscribers(ServerLimits limits)
{
    private readonly ConcurrentDictionary<string, int> _by = new(StringComparer.Ordinal);
    private int _total;

    /// <summary>Takes a slot for <paramref name="http"/>'s caller; dispose it when the stream ends.</summary>
    /// <exception cref="QuotaExceededException">The caller's or the server's quota is reached.</exception>
    public IDisposable Acquire(HttpContext http)
    {
        string who = http.User.Caller() is { } c ? "p:" + c.Principal.Id.ToString(CultureInfo.InvariantCulture) : "a:" + http.Connection.RemoteIpAddress;
        if (Interlocked.Increment(ref _total) > limits.FeedSubscribersMax)
        {
            Interlocked.Decrement(ref _total);
            throw new QuotaExceededException($"The server has {limits.FeedSubscribersMax} live-feed connections, the most it serves.", TimeSpan.FromSeconds(30));
        }
        int mine = _by.AddOrUpdate(who, 1, (_, n) => n + 1);
        if (mine > limits.FeedSubscribersPerPrincipalMax)
        {
            Release(who);
            throw new QuotaExceededException($"This caller has {limits.FeedSubscribersPerPrincipalMax} live-feed connections open, the most allowed; close one first.", TimeSpan.FromSeconds(30));
        }
        return new Slot(this, who);
    }

    private void Release(string who)
    {
        _by.AddOrUpdate(who, 0, (_, n) => n - 1);
        _by.TryRemove(new KeyValuePair<string, int>(who, 0));
        Interlocked.Decrement(ref _total);
    }

    private sealed class Slot(FeedSubscribers owner, string who) : IDisposable
    {
        private int _released;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _released, 1) == 0) owner.Release(who);
        }
    }
}
