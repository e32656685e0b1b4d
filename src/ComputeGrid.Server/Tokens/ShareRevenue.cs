using System.Buffers.Binary;
using System.Security.Cryptography;
using ComputeGrid.Core;
using ComputeGrid.Ledger;
using ComputeGrid.Tokens;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace ComputeGrid.Server.Tokens;

/// <summary>A holder's revenue of one node: its shares, what it earned, claimed and is owed, and its auto-claim threshold.</summary>
public sealed record Entitlement(ulong Node, ulong Holder, long Shares, long Entitled, long Claimed, long Owed, long AutoClaimThreshold);

/// <summary>A node's revenue as its holders see it: received into the pool, the fixed supply, and revenue per share.</summary>
public sealed record PoolRevenue(ulong Node, long Revenue, long Supply, long Holders)
{
    /// <summary>Revenue per share in micro-USD, rounded down (the exact figure is <see cref="Revenue"/> / <see cref="Supply"/>).</summary>
    public long PerShare => Supply == 0 ? 0 : Revenue / Supply;
}

/// <summary>The outcome of a claim: what moved, or why nothing did.</summary>
public sealed record ClaimOutcome(ClaimDecision Decision, long Amount, long OwedBefore, UInt128 TransferId);

/// <summary>
/// Every inference's and every lease delivery's revenue to the holders of a node's shares, through the ledger: the
/// <see cref="ShareLedgerProjection"/> watches the ledger's postings (revenue into a node's share pool raises its
/// accumulator; share movements settle both sides first; claims are subtracted), so entitlements are a function of the
/// ledger alone and are rebuilt from it at start. Reads run on the ledger's sequencer thread (the book's only writer).
/// Claims are serialized here: each reads what is owed, then waits for its transfer to be durable before the next
/// reads, so no claim can exceed what is owed (the ledger only knows a pool's total). A claim's id derives from the
/// holder, the node and what it had claimed before: a retried claim moves the money once. Auto-claim thresholds are kept
/// in <c>DATA/tokens/auto-claim.db</c>; a loop claims for holders whose owed revenue reached theirs.
/// </summary>
public sealed class ShareRevenue : IDisposable
{
    private readonly LedgerEngine _ledger;
    private readonly ShareRegistry _book = new();
    private readonly SemaphoreSlim _claims = new(1, 1);
    private readonly SqliteConnection _db;
    private readonly object _dbLock = new();

    private ShareRevenue(LedgerEngine ledger, SqliteConnection db)
    {
        _ledger = ledger;
        _db = db;
    }

    /// <summary>Opens the auto-claim store of <paramref name="dataDirectory"/> (the book is built by <see cref="StartAsync"/>).</summary>
    /// <exception cref="InvalidDataException">The store is corrupt or of an unknown schema.</exception>
    public static ShareRevenue Open(LedgerEngine ledger, string dataDirectory)
    {
        string path = Path.Combine(dataDirectory, "tokens", "auto-claim.db");
        SqliteConnection db = DurableSqlite.Open(path, "auto-claim store",
            "CREATE TABLE IF NOT EXISTS auto_claim(holder INTEGER NOT NULL, node INTEGER NOT NULL, threshold INTEGER NOT NULL, PRIMARY KEY(holder, node));");
        return new ShareRevenue(ledger, db);
    }

    /// <summary>Builds the book from the ledger's whole history and attaches it, before anything else moves money.</summary>
    public Task StartAsync(CancellationToken ct) => _ledger.ReadAsync(sm =>
    {
        ShareLedgerProjection.Rebuild(sm, _book);
        return 0;
    }, ct);

    /// <summary>What <paramref name="holder"/> earned, claimed and is owed of <paramref name="node"/> (null when the node issued no shares).</summary>
    public async Task<Entitlement?> EntitlementAsync(ulong node, ulong holder, CancellationToken ct)
    {
        long threshold = Threshold(holder, node);
        return await _ledger.ReadAsync(_ => _book.IsIssued(node)
            ? new Entitlement(node, holder, _book.Shares(node, holder), _book.Entitlement(node, holder), _book.Claimed(node, holder), _book.Owed(node, holder), threshold)
            : null, ct);
    }

    /// <summary>A node's revenue received into its pool and its holders (null when it issued no shares).</summary>
    public Task<PoolRevenue?> PoolAsync(ulong node, CancellationToken ct) => _ledger.ReadAsync(_ =>
        _book.TryGet(node, out ShareAccumulator? a) ? new PoolRevenue(node, a.Revenue, a.Supply, a.HolderCount) : null, ct);

    /// <summary>
    /// R when <paramref name="holder"/>'s shares of <paramref name="node"/> last moved (its checkpoint c_h, set by every
    /// settlement; 0 for a stranger or a node that issued none): the exact R of a holder's last move, whatever was paid since.
    /// </summary>
    public Task<long> CheckpointAsync(ulong node, ulong holder, CancellationToken ct) => _ledger.ReadAsync(_ =>
        _book.TryGet(node, out ShareAccumulator? a) ? a.HolderState(holder).Checkpoint : 0, ct);

    /// <summary>
    /// Claims <paramref name="requested"/> micro-USD (0: all that is owed) of <paramref name="node"/>'s pool for
    /// <paramref name="holder"/>, into <paramref name="into"/> (a USD account the holder owns), durably.
    /// </summary>
    public async Task<ClaimOutcome> ClaimAsync(ulong node, ulong holder, long requested, UInt128 into, CancellationToken ct)
    {
        await _claims.WaitAsync(ct);
        try
        {
            var (issued, owed, claimed) = await _ledger.ReadAsync(_ => _book.IsIssued(node) ? (true, _book.Owed(node, holder), _book.Claimed(node, holder)) : (false, 0L, 0L), ct);
            if (!issued) return new ClaimOutcome(ClaimDecision.NothingToClaim, 0, 0, 0);
            (ClaimDecision decision, long amount) = ClaimPolicy.Request(owed, requested);
            if (decision != ClaimDecision.Claim) return new ClaimOutcome(decision, 0, owed, 0);
            Transfer t = TokenTransfers.Claim(ClaimKey(node, holder, claimed), node, holder, amount, into);
            CreateTransferResult[] r = await _ledger.CreateTransfersAsync(new[] { t }, LedgerAck.Durable, CancellationToken.None);
            if (r[0] is not (CreateTransferResult.Ok or CreateTransferResult.Exists))
                throw new InvalidOperationException($"The ledger refused the claim of {amount} from node {node}'s pool for {holder}: {r[0]}.");
            return new ClaimOutcome(ClaimDecision.Claim, amount, owed, t.Id);
        }
        finally { _claims.Release(); }
    }

    // A claim's key: the holder, the node and what it had claimed before (so the same claim retried has the same id).
    private static ulong ClaimKey(ulong node, ulong holder, long claimedBefore)
    {
        Span<byte> input = stackalloc byte[24];
        BinaryPrimitives.WriteUInt64LittleEndian(input, node);
        BinaryPrimitives.WriteUInt64LittleEndian(input[8..], holder);
        BinaryPrimitives.WriteInt64LittleEndian(input[16..], claimedBefore);
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(input, hash);
        return BinaryPrimitives.ReadUInt64LittleEndian(hash) | 1; // never 0
    }

    /// <summary>Sets <paramref name="holder"/>'s auto-claim threshold for <paramref name="node"/> (0 turns it off), durably.</summary>
    public void SetThreshold(ulong holder, ulong node, long threshold)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(threshold);
        lock (_dbLock)
        {
            using var cmd = _db.CreateCommand();
            cmd.CommandText = threshold == 0 ? "DELETE FROM auto_claim WHERE holder=$h AND node=$n"
                : "INSERT INTO auto_claim(holder, node, threshold) VALUES($h, $n, $t) ON CONFLICT(holder, node) DO UPDATE SET threshold=$t";
            cmd.Parameters.AddWithValue("$h", (long)holder);
            cmd.Parameters.AddWithValue("$n", (long)node);
            cmd.Parameters.AddWithValue("$t", threshold);
            cmd.ExecuteNonQuery();
        }
    }

    private long Threshold(ulong holder, ulong node)
    {
        lock (_dbLock)
        {
            using var cmd = _db.CreateCommand();
            cmd.CommandText = "SELECT threshold FROM auto_claim WHERE holder=$h AND node=$n";
            cmd.Parameters.AddWithValue("$h", (long)holder);
            cmd.Parameters.AddWithValue("$n", (long)node);
            return cmd.ExecuteScalar() is long t ? t : 0;
        }
    }

    private List<(ulong Holder, ulong Node, long Threshold)> Thresholds()
    {
        lock (_dbLock)
        {
            using var cmd = _db.CreateCommand();
            cmd.CommandText = "SELECT holder, node, threshold FROM auto_claim ORDER BY node, holder";
            using var r = cmd.ExecuteReader();
            var all = new List<(ulong, ulong, long)>();
            while (r.Read()) all.Add(((ulong)r.GetInt64(0), (ulong)r.GetInt64(1), r.GetInt64(2)));
            return all;
        }
    }

    /// <summary>
    /// One pass of auto-claim: every holder whose owed revenue of a node reached its threshold claims all of it into
    /// <paramref name="into"/>(holder). Returns how many claims moved money.
    /// </summary>
    public async Task<int> AutoClaimAsync(Func<ulong, UInt128?> into, CancellationToken ct)
    {
        int claimed = 0;
        foreach ((ulong holder, ulong node, long threshold) in Thresholds())
        {
            long owed = await _ledger.ReadAsync(_ => _book.IsIssued(node) ? _book.Owed(node, holder) : 0, ct);
            if (ClaimPolicy.AutoClaim(owed, threshold) == 0 || into(holder) is not UInt128 account) continue;
            if ((await ClaimAsync(node, holder, 0, account, ct)).Decision == ClaimDecision.Claim) claimed++;
        }
        return claimed;
    }

    /// <summary>Closes the auto-claim store.</summary>
    public void Dispose()
    {
        _db.Dispose();
        _claims.Dispose();
    }
}

/// <summary>Builds the share book before the exchange and the paid path start; runs the auto-claim loop.</summary>
internal sealed class ShareRevenueLifetime(ShareRevenue revenue, Trust.TrustStore store, ServerOptions options, ILogger<ShareRevenueLifetime> log) : BackgroundService
{
    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        await revenue.StartAsync(cancellationToken);
        await base.StartAsync(cancellationToken);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.AutoClaimInterval, options.Time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                try { await revenue.AutoClaimAsync(holder => ShareEndpoints.BalanceOf(store, holder), stoppingToken); }
                catch (Exception e) when (e is not OperationCanceledException) { log.LogError(e, "Auto-claim failed; it runs again at the next interval"); }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested) { }
    }
}
