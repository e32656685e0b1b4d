using System.Collections.Concurrent;
using System.Globalization;
using System.Threading.RateLimiting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.RateLimiting;

namespace ComputeGrid.Server.Trust;

/// <summary>
/// Rate limits per principal (ASP.NET Core rate limiting): one token bucket per authenticated principal, sized by its
/// kind (<see cref="ServerLimits"/>), and one per client address for anonymous callers. The node port is not limited
/// (its callers are admitted nodes on their own sessions). A refused request gets 429 problem+json with
/// <c>Retry-After</c>; other principals are unaffected.
/// </summary>
internal static class RateLimits
{
    private readonly record struct Partition(PrincipalKind? Kind, ulong Principal, string? Address);

    public static void Configure(RateLimiterOptions o, ServerLimits limits)
    {
        o.RejectionStatusCode = StatusCodes.Status429TooManyRequests;
        o.GlobalLimiter = PartitionedRateLimiter.Create<HttpContext, Partition>(http =>
        {
            if (ConnectionRoles.IsNodePort(http)) return RateLimitPartition.GetNoLimiter(new Partition(PrincipalKind.Node, 0, null));
            if (http.User.Caller() is { } caller)
            {
                RateLimit rate = caller.Principal.Kind switch
                {
                    PrincipalKind.Operator => limits.Operator,
                    PrincipalKind.Provider => limits.Provider,
                    _ => limits.Customer,
                };
                return RateLimitPartition.GetTokenBucketLimiter(new Partition(caller.Principal.Kind, caller.Principal.Id, null), _ => Bucket(rate));
            }
            string address = http.Connection.RemoteIpAddress?.ToString() ?? "unknown";
            return RateLimitPartition.GetTokenBucketLimiter(new Partition(null, 0, address), _ => Bucket(limits.Anonymous));
        });
        o.OnRejected = async (context, _) =>
        {
            TimeSpan after = context.Lease.TryGetMetadata(MetadataName.RetryAfter, out TimeSpan retry) ? retry : TimeSpan.FromSeconds(1);
            context.HttpContext.Response.Headers.RetryAfter = Math.Max(1, (int)Math.Ceiling(after.TotalSeconds)).ToString(CultureInfo.InvariantCulture);
            string who = context.HttpContext.User.Caller() is { } c ? $"{c.Principal.Kind.ToString().ToLowerInvariant()} {c.Principal.Id}" : "this address";
            await ApiErrors.WriteAsync(context.HttpContext, StatusCodes.Status429TooManyRequests, "Too many requests",
                $"The rate limit of {who} is reached; retry after the time in Retry-After.", "rate_limit_exceeded");
        };
    }

    // Replenished by the partitioned limiter's own timer (AutoReplenishment off), so there is no timer per principal.
    private static TokenBucketRateLimiterOptions Bucket(RateLimit rate) => new()
    {
        TokenLimit = rate.Burst, TokensPerPeriod = rate.PerSecond, ReplenishmentPeriod = TimeSpan.FromSeconds(1),
        QueueLimit = 0, AutoReplenishment = false,
    };
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
