namespace ComputeGrid.Server.Trust;

/// <summary>A token bucket: <paramref name="PerSecond"/> requests a second on average, up to <paramref name="Burst"/> at once.</summary>
public sealed record RateLimit(int PerSecond, int Burst);

/// <summary>
/// Every limit of the server in one place: what one request may send, what one principal may make the server hold,
/// and how fast one principal may call. Every limit is per principal (anonymous callers: per client address) unless
/// its name says otherwise. <see cref="Validate"/> checks that they agree with each other.
/// </summary>
public sealed record ServerLimits
{
    /// <summary>The largest body of an ordinary JSON request (one object).</summary>
    public long JsonBodyBytesMax { get; init; } = 64 << 10;

    /// <summary>The largest body of a batch (the raw ledger API, embeddings, a node's results).</summary>
    public long BatchBodyBytesMax { get; init; } = 4 << 20;

    /// <summary>Active API keys per principal.</summary>
    public int KeysPerPrincipalMax { get; init; } = 16;

    /// <summary>Principals (customers, providers, nodes, operators) one operator may create.</summary>
    public int PrincipalsPerOperatorMax { get; init; } = 100_000;

    /// <summary>Raw ledger accounts one operator may create through <c>POST /api/ledger/accounts</c>.</summary>
    public int RawAccountsPerOperatorMax { get; init; } = 100_000;

    /// <summary>Open orders per trader on the exchange.</summary>
    public int OpenOrdersPerTraderMax { get; init; } = 1_000;

    /// <summary>Remembered <c>Idempotency-Key</c> answers per customer (each is kept 24 h).</summary>
    public int IdempotencyEntriesPerCustomerMax { get; init; } = 10_000;

    /// <summary>Live-feed (SSE) connections per principal, or per client address for anonymous callers.</summary>
    public int FeedSubscribersPerPrincipalMax { get; init; } = 4;

    /// <summary>Live-feed connections in all.</summary>
    public int FeedSubscribersMax { get; init; } = 1_000;

    /// <summary>Node registration challenges kept waiting for an answer, in all (each lives <see cref="NodeChallengeLifetime"/>; past this the oldest are dropped).</summary>
    public int NodeChallengesMax { get; init; } = 1_000;

    /// <summary>How long a node has to answer its registration challenge.</summary>
    public TimeSpan NodeChallengeLifetime { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Most items on one page of a listing.</summary>
    public int PageMax { get; init; } = 1_000;

    /// <summary>Requests of one customer.</summary>
    public RateLimit Customer { get; init; } = new(500, 1_000);

    /// <summary>Requests of one provider.</summary>
    public RateLimit Provider { get; init; } = new(200, 400);

    /// <summary>Requests of one operator.</summary>
    public RateLimit Operator { get; init; } = new(1_000, 2_000);

    /// <summary>Requests without a credential, per client address.</summary>
    public RateLimit Anonymous { get; init; } = new(100, 200);

    /// <summary>Throws when limits contradict each other (a per-principal limit above its total, a burst below its rate).</summary>
    public ServerLimits Validate()
    {
        Require(JsonBodyBytesMax > 0 && JsonBodyBytesMax <= BatchBodyBytesMax, "JsonBodyBytesMax must be positive and at most BatchBodyBytesMax");
        Require(KeysPerPrincipalMax >= 2, "KeysPerPrincipalMax must leave room to rotate a key (2 or more)");
        Require(PrincipalsPerOperatorMax > 0 && RawAccountsPerOperatorMax > 0, "an operator must be able to create principals and accounts");
        Require(OpenOrdersPerTraderMax > 0 && IdempotencyEntriesPerCustomerMax > 0, "quotas must be positive");
        Require(FeedSubscribersPerPrincipalMax > 0 && FeedSubscribersPerPrincipalMax <= FeedSubscribersMax, "FeedSubscribersPerPrincipalMax must be positive and at most FeedSubscribersMax");
        Require(NodeChallengesMax > 0 && NodeChallengeLifetime > TimeSpan.Zero, "node challenges need room and time");
        Require(PageMax > 0, "PageMax must be positive");
        foreach (var (name, rate) in new[] { ("Customer", Customer), ("Provider", Provider), ("Operator", Operator), ("Anonymous", Anonymous) })
            Require(rate.PerSecond > 0 && rate.Burst >= rate.PerSecond, $"{name}: a rate limit needs PerSecond > 0 and Burst >= PerSecond");
        return this;
    }

    private static void Require(bool condition, string what)
    {
        if (!condition) throw new ArgumentException($"Server limits: {what}.");
    }
}
