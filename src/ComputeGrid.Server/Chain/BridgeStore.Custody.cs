using System.Globalization;
using Microsoft.Data.Sqlite;

namespace ComputeGrid.Server.Chain;

/// <summary>A custody move of the share bridge that was applied: its shares' signed change to custody and the ledger's R when it was applied.</summary>
public sealed record CustodyMove(string Source, long Node, long Delta, long Revenue);

/// <summary>
/// Revenue of shares in transit owed to one principal: <see cref="Shares"/> held by the custody holder in the ledger while
/// on chain nobody held them, from R = <see cref="RevenueFrom"/> to <see cref="RevenueTo"/>. Closed once both ends are
/// known (<see cref="Amount"/> set); <see cref="Paid"/> once the ledger moved it.
/// </summary>
public sealed record TransitRow(string Source, long Node, ulong Principal, long Shares, long? RevenueFrom, long? RevenueTo, long? Amount, bool Paid);

public sealed partial class BridgeStore
{
    // share_custody_pending: the one custody move of a node that may have been applied without being recorded (written
    // before it is sent to the exchange). share_custody_moves: every applied move, with the count, in one transaction.
    // share_transit: the in-transit revenue of each withdrawal and deposit, closed once, paid once.
    private const string CustodySchema = """
        CREATE TABLE IF NOT EXISTS share_custody_pending(node INTEGER PRIMARY KEY, source TEXT NOT NULL, delta INTEGER NOT NULL);
        CREATE TABLE IF NOT EXISTS share_custody_moves(source TEXT PRIMARY KEY, node INTEGER NOT NULL, delta INTEGER NOT NULL, revenue INTEGER NOT NULL);
        CREATE TABLE IF NOT EXISTS share_transit(source TEXT PRIMARY KEY, node INTEGER NOT NULL, principal INTEGER NOT NULL, shares INTEGER NOT NULL,
            revenue_from INTEGER, revenue_to INTEGER, units TEXT, amount INTEGER, paid INTEGER NOT NULL);
        """;

    // ---- custody moves

    /// <summary>The applied custody move <paramref name="source"/>, or null.</summary>
    public CustodyMove? CustodyMoveOf(string source)
    {
        lock (_lock) return Query(c =>
        {
            using SqliteDataReader r = c.ExecuteReader();
            return r.Read() ? new CustodyMove(r.GetString(0), r.GetInt64(1), r.GetInt64(2), r.GetInt64(3)) : null;
        }, "SELECT source, node, delta, revenue FROM share_custody_moves WHERE source=$s", ("$s", source));
    }

    /// <summary>The move of <paramref name="node"/>'s custody that was about to be sent when the server stopped, or null.</summary>
    public (string Source, long Delta)? PendingCustodyMove(long node)
    {
        lock (_lock) return Query<(string, long)?>(c =>
        {
            using SqliteDataReader r = c.ExecuteReader();
            return r.Read() ? (r.GetString(0), r.GetInt64(1)) : null;
        }, "SELECT source, delta FROM share_custody_pending WHERE node=$n", ("$n", node));
    }

    /// <summary>Records that move <paramref name="source"/> is about to be sent (replacing a resolved one), durably, before it is.</summary>
    public void SetPendingCustodyMove(long node, string source, long delta)
    {
        lock (_lock)
            Execute(null, "INSERT INTO share_custody_pending(node, source, delta) VALUES($n,$s,$d) ON CONFLICT(node) DO UPDATE SET source=$s, delta=$d",
                ("$n", node), ("$s", source), ("$d", delta));
    }

    /// <summary>Forgets <paramref name="node"/>'s pending move (it was not applied).</summary>
    public void ClearPendingCustodyMove(long node)
    {
        lock (_lock) Execute(null, "DELETE FROM share_custody_pending WHERE node=$n", ("$n", node));
    }

    /// <summary>Records an applied move: the move, the custody count and the pending mark change in one transaction.</summary>
    public void RecordCustodyMove(CustodyMove move)
    {
        lock (_lock)
        {
            using SqliteTransaction tx = _db.BeginTransaction();
            Execute(tx, "INSERT INTO share_custody_moves(source, node, delta, revenue) VALUES($s,$n,$d,$r)",
                ("$s", move.Source), ("$n", move.Node), ("$d", move.Delta), ("$r", move.Revenue));
            Execute(tx, "UPDATE share_tokens SET custody_shares=custody_shares+$d WHERE node=$n", ("$d", move.Delta), ("$n", move.Node));
            Execute(tx, "DELETE FROM share_custody_pending WHERE node=$n AND source=$s", ("$n", move.Node), ("$s", move.Source));
            tx.Commit();
        }
    }

    // ---- in-transit revenue

    /// <summary>Opens <paramref name="source"/>'s transit row unless it exists (what is known of it stays).</summary>
    public void OpenTransit(string source, long node, ulong principal, long shares)
    {
        lock (_lock)
            Execute(null, "INSERT OR IGNORE INTO share_transit(source, node, principal, shares, paid) VALUES($s,$n,$p,$sh,0)",
                ("$s", source), ("$n", node), ("$p", (long)principal), ("$sh", shares));
    }

    /// <summary>Sets the R a not yet closed transit ends at (a withdrawal's mint, planned before it is sent; sent again after a reorg).</summary>
    public void SetTransitEnd(string source, long revenueTo)
    {
        lock (_lock) Execute(null, "UPDATE share_transit SET revenue_to=$r WHERE source=$s AND amount IS NULL", ("$r", revenueTo), ("$s", source));
    }

    /// <summary>The transit row <paramref name="source"/>, or null.</summary>
    public TransitRow? Transit(string source)
    {
        lock (_lock) return Transits("WHERE source=$s", ("$s", source)).FirstOrDefault();
    }

    /// <summary>
    /// Closes <paramref name="source"/>'s transit from <paramref name="revenueFrom"/> to <paramref name="revenueTo"/>, once:
    /// its units are shares × ΔR (in 1/S micro-USD), and its amount what they add to the principal's floor of all its
    /// transit units of the node, as the accumulator floors a holder's n: Σ amounts of a principal = floor(Σ units / S).
    /// </summary>
    public TransitRow CloseTransit(string source, long revenueFrom, long revenueTo, long supply)
    {
        if (revenueTo < revenueFrom) throw new InvalidOperationException($"Transit {source} ends at R {revenueTo}, before it began ({revenueFrom}).");
        lock (_lock)
        {
            using SqliteTransaction tx = _db.BeginTransaction();
            TransitRow row = Transits("WHERE source=$s", ("$s", source)).Single();
            if (row.Amount is null)
            {
                Int128 units = (Int128)row.Shares * (revenueTo - revenueFrom);
                Int128 before = ClosedUnits(row.Node, row.Principal);
                long amount = checked((long)((before + units) / supply) - (long)(before / supply));
                Execute(tx, "UPDATE share_transit SET revenue_from=$f, revenue_to=$t, units=$u, amount=$a, paid=$p WHERE source=$s",
                    ("$f", revenueFrom), ("$t", revenueTo), ("$u", units.ToString(CultureInfo.InvariantCulture)), ("$a", amount), ("$p", amount == 0 ? 1 : 0), ("$s", source));
            }
            tx.Commit();
            return Transits("WHERE source=$s", ("$s", source)).Single();
        }
    }

    /// <summary>Σ closed transit amounts of <paramref name="node"/>: what the custody holder claims for principals besides what its token pulled.</summary>
    public long TransitTotal(long node)
    {
        lock (_lock) return Query(c => c.ExecuteScalar() is long n ? n : 0, "SELECT SUM(amount) FROM share_transit WHERE node=$n AND amount IS NOT NULL", ("$n", node));
    }

    /// <summary>Closed transit rows of <paramref name="node"/> not paid yet.</summary>
    public IReadOnlyList<TransitRow> UnpaidTransits(long node)
    {
        lock (_lock) return Transits("WHERE node=$n AND amount IS NOT NULL AND paid=0 ORDER BY source", ("$n", node));
    }

    /// <summary>Every transit row of <paramref name="node"/>.</summary>
    public IReadOnlyList<TransitRow> TransitsOf(long node)
    {
        lock (_lock) return Transits("WHERE node=$n ORDER BY source", ("$n", node));
    }

    /// <summary>Marks a closed transit paid (its ledger transfer is durable).</summary>
    public void SetTransitPaid(string source)
    {
        lock (_lock) Execute(null, "UPDATE share_transit SET paid=1 WHERE source=$s AND amount IS NOT NULL", ("$s", source));
    }

    // Σ units of a principal's closed transits of a node (text: shares × ΔR may pass a long).
    private Int128 ClosedUnits(long node, ulong principal) => Query(c =>
    {
        Int128 sum = 0;
        using SqliteDataReader r = c.ExecuteReader();
        while (r.Read()) sum += Int128.Parse(r.GetString(0), CultureInfo.InvariantCulture);
        return sum;
    }, "SELECT units FROM share_transit WHERE node=$n AND principal=$p AND amount IS NOT NULL", ("$n", node), ("$p", (long)principal));

    private List<TransitRow> Transits(string where, params (string, object?)[] args) => Query(c =>
    {
        var rows = new List<TransitRow>();
        using SqliteDataReader r = c.ExecuteReader();
        while (r.Read())
            rows.Add(new TransitRow(r.GetString(0), r.GetInt64(1), (ulong)r.GetInt64(2), r.GetInt64(3), r.IsDBNull(4) ? null : r.GetInt64(4),
                r.IsDBNull(5) ? null : r.GetInt64(5), r.IsDBNull(6) ? null : r.GetInt64(6), r.GetInt64(7) != 0));
        return rows;
    }, "SELECT source, node, principal, shares, revenue_from, revenue_to, amount, paid FROM share_transit " + where, args);
}
