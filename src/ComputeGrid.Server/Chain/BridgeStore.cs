using Microsoft.Data.Sqlite;

namespace ComputeGrid.Server.Chain;

/// <summary>Where a withdrawal stands. Values are stored; each moves only forward, except Sent back to Held when a reorg drops its payment.</summary>
public enum WithdrawalState
{
    /// <summary>Recorded; its hold on the payer's balance is not yet known to be in the ledger.</summary>
    New = 0,
    /// <summary>Held in the ledger (pending transfer to in-flight); to be sent to the vault.</summary>
    Held = 1,
    /// <summary>Paid by a mined transaction; waiting for its confirmations.</summary>
    Sent = 2,
    /// <summary>Paid with its confirmations; the hold is posted. Final.</summary>
    Paid = 3,
    /// <summary>Refused by the vault for good; the hold is voided (the money is back). Final.</summary>
    Failed = 4,
    /// <summary>The ledger refused the hold (the balance was short); nothing moved. Final.</summary>
    Refused = 5,
}

/// <summary>One withdrawal of the outbox.</summary>
public sealed record WithdrawalRow(
    string Id, ulong Principal, UInt128 Account, string To, long Amount, string IdempotencyKey, WithdrawalState State,
    string? TransactionHash, long? BlockNumber, int Attempts, string? Error, long CreatedUnixNs, long UpdatedUnixNs);

/// <summary>One checkpoint to anchor, and what became of it.</summary>
public sealed record AnchorRow(ulong Op, string Root, string ChainHead, string Liabilities, string State, string? TransactionHash, long? BlockNumber, ulong? AnchoredAs);

/// <summary>
/// The bridge's durable facts, <c>DATA/chain/bridge.db</c> (<see cref="DurableSqlite"/>): the deposit cursor (the next
/// block to read), each credited deposit, the withdrawal outbox and the anchor outbox. Every fact is written here before
/// it is acted on (a withdrawal row before its hold and its transaction), or after what it records is durable elsewhere
/// (the cursor after the credits). One connection, used under a lock.
/// </summary>
public sealed partial class BridgeStore : IDisposable
{
    private const string Schema = """
        CREATE TABLE IF NOT EXISTS cursor(name TEXT PRIMARY KEY, next_block INTEGER NOT NULL);
        CREATE TABLE IF NOT EXISTS deposits(tx_hash TEXT NOT NULL, log_index INTEGER NOT NULL, block_number INTEGER NOT NULL,
            block_hash TEXT NOT NULL, depositor TEXT NOT NULL, account TEXT NOT NULL, amount INTEGER NOT NULL, credited TEXT NOT NULL,
            outcome TEXT NOT NULL, PRIMARY KEY(tx_hash, log_index));
        CREATE TABLE IF NOT EXISTS withdrawals(id TEXT PRIMARY KEY, principal INTEGER NOT NULL, account TEXT NOT NULL, to_address TEXT NOT NULL,
            amount INTEGER NOT NULL, idempotency_key TEXT NOT NULL, state INTEGER NOT NULL, tx_hash TEXT, block_number INTEGER,
            attempts INTEGER NOT NULL, error TEXT, created_ns INTEGER NOT NULL, updated_ns INTEGER NOT NULL, UNIQUE(principal, idempotency_key));
        CREATE TABLE IF NOT EXISTS anchors(op INTEGER PRIMARY KEY, root TEXT NOT NULL, chain_head TEXT NOT NULL, liabilities TEXT NOT NULL,
            state TEXT NOT NULL, tx_hash TEXT, block_number INTEGER, anchored_as INTEGER);
        """;

    private readonly SqliteConnection _db;
    private readonly object _lock = new();

    private BridgeStore(SqliteConnection db) => _db = db;

    /// <summary>The store's file in a data folder.</summary>
    public static string PathIn(string dataDirectory) => Path.Combine(dataDirectory, "chain", "bridge.db");

    /// <summary>Opens (creating) the store of <paramref name="dataDirectory"/>.</summary>
    /// <exception cref="InvalidDataException">Corrupt, or of another schema.</exception>
    public static BridgeStore Open(string dataDirectory) => new(DurableSqlite.Open(PathIn(dataDirectory), "bridge store", Schema + ShareSchema + CustodySchema));

    // ---- deposits

    /// <summary>The next block the deposit watcher reads for <paramref name="source"/> (a contract address), or null before the first pass.</summary>
    public long? NextBlock(string source)
    {
        lock (_lock) return Query(c => c.ExecuteScalar() is long b ? b : (long?)null, "SELECT next_block FROM cursor WHERE name=$n", ("$n", source.ToLowerInvariant()));
    }

    /// <summary>Records credited deposits and moves the cursor past them, in one transaction (after the credits are durable in the ledger).</summary>
    public void Advance(string source, long nextBlock, IEnumerable<(ComputeGrid.Chain.Contracts.ChainDeposit Deposit, string Credited, string Outcome)> credited)
    {
        lock (_lock)
        {
            using SqliteTransaction tx = _db.BeginTransaction();
            foreach (var (d, to, outcome) in credited)
                Execute(tx, "INSERT OR IGNORE INTO deposits(tx_hash, log_index, block_number, block_hash, depositor, account, amount, credited, outcome) VALUES($t,$i,$b,$h,$d,$a,$m,$c,$o)",
                    ("$t", d.TransactionHash.ToLowerInvariant()), ("$i", d.LogIndex), ("$b", d.BlockNumber), ("$h", d.BlockHash), ("$d", d.Depositor),
                    ("$a", d.Account), ("$m", d.Amount), ("$c", to), ("$o", outcome));
            Execute(tx, "INSERT INTO cursor(name, next_block) VALUES($n,$b) ON CONFLICT(name) DO UPDATE SET next_block=$b", ("$n", source.ToLowerInvariant()), ("$b", nextBlock));
            tx.Commit();
        }
    }

    /// <summary>How many deposits were recorded as credited.</summary>
    public long DepositCount()
    {
        lock (_lock) return Query(c => (long)c.ExecuteScalar()!, "SELECT COUNT(*) FROM deposits");
    }

    /// <summary>
    /// What the bridge could not deliver, all time (for <c>/metrics</c>): deposits credited to <c>ChainSuspense</c>, share
    /// deposits left with the custody holder, and withdrawals and share withdrawals that failed for good.
    /// </summary>
    public (long DepositsInSuspense, long ShareDepositsInSuspense, long WithdrawalsFailed, long ShareWithdrawalsFailed) Undelivered()
    {
        lock (_lock)
            return Query(c =>
            {
                using SqliteDataReader r = c.ExecuteReader();
                r.Read();
                return (r.GetInt64(0), r.GetInt64(1), r.GetInt64(2), r.GetInt64(3));
            }, """
                SELECT (SELECT COUNT(*) FROM deposits WHERE outcome='suspense'), (SELECT COUNT(*) FROM share_deposits WHERE state='suspense'),
                       (SELECT COUNT(*) FROM withdrawals WHERE state=$wf), (SELECT COUNT(*) FROM share_withdrawals WHERE state=$sf)
                """, ("$wf", (int)WithdrawalState.Failed), ("$sf", (int)ShareWithdrawalState.Failed));
    }

    // ---- withdrawals

    /// <summary>Inserts <paramref name="row"/> unless its id exists; returns the stored row either way.</summary>
    public WithdrawalRow InsertWithdrawal(WithdrawalRow row)
    {
        lock (_lock)
        {
            Execute(null, """
                INSERT OR IGNORE INTO withdrawals(id, principal, account, to_address, amount, idempotency_key, state, tx_hash, block_number, attempts, error, created_ns, updated_ns)
                VALUES($id,$p,$a,$to,$m,$k,$s,NULL,NULL,0,NULL,$c,$c)
                """, ("$id", row.Id), ("$p", (long)row.Principal), ("$a", row.Account.ToString()), ("$to", row.To), ("$m", row.Amount),
                ("$k", row.IdempotencyKey), ("$s", (int)row.State), ("$c", row.CreatedUnixNs));
            return Withdrawal(row.Id)!;
        }
    }

    /// <summary>The withdrawal <paramref name="id"/>, or null.</summary>
    public WithdrawalRow? Withdrawal(string id)
    {
        lock (_lock) return Withdrawals("WHERE id=$id", ("$id", id)).FirstOrDefault();
    }

    /// <summary>Withdrawals not final yet (New, Held, Sent), oldest first.</summary>
    public IReadOnlyList<WithdrawalRow> OpenWithdrawals()
    {
        lock (_lock) return Withdrawals($"WHERE state IN ({(int)WithdrawalState.New},{(int)WithdrawalState.Held},{(int)WithdrawalState.Sent}) ORDER BY created_ns, id");
    }

    /// <summary>
    /// Moves withdrawal <paramref name="id"/> to <paramref name="state"/>, with its payment (or none) and an error note;
    /// with <paramref name="onlyFrom"/>, only while it is in that state (a request and a pass may hold the same row at once).
    /// </summary>
    public void SetWithdrawal(string id, WithdrawalState state, string? txHash, long? block, string? error, long nowUnixNs, bool attempt = false, WithdrawalState? onlyFrom = null)
    {
        lock (_lock)
            Execute(null, "UPDATE withdrawals SET state=$s, tx_hash=$t, block_number=$b, error=$e, updated_ns=$u, attempts=attempts+$x WHERE id=$id AND ($f < 0 OR state=$f)",
                ("$s", (int)state), ("$t", (object?)txHash), ("$b", (object?)block), ("$e", (object?)error), ("$u", nowUnixNs), ("$x", attempt ? 1 : 0), ("$id", id),
                ("$f", onlyFrom is { } f ? (int)f : -1));
    }

    private List<WithdrawalRow> Withdrawals(string where, params (string, object?)[] args) => Query(c =>
    {
        var rows = new List<WithdrawalRow>();
        using SqliteDataReader r = c.ExecuteReader();
        while (r.Read())
            rows.Add(new WithdrawalRow(r.GetString(0), (ulong)r.GetInt64(1), UInt128.Parse(r.GetString(2), System.Globalization.CultureInfo.InvariantCulture),
                r.GetString(3), r.GetInt64(4), r.GetString(5), (WithdrawalState)r.GetInt32(6), r.IsDBNull(7) ? null : r.GetString(7),
                r.IsDBNull(8) ? null : r.GetInt64(8), r.GetInt32(9), r.IsDBNull(10) ? null : r.GetString(10), r.GetInt64(11), r.GetInt64(12)));
        return rows;
    }, "SELECT id, principal, account, to_address, amount, idempotency_key, state, tx_hash, block_number, attempts, error, created_ns, updated_ns FROM withdrawals " + where, args);

    // ---- anchors

    /// <summary>Records a checkpoint to anchor (once per op).</summary>
    public void InsertAnchor(ulong op, string root, string chainHead, string liabilities)
    {
        lock (_lock)
            Execute(null, "INSERT OR IGNORE INTO anchors(op, root, chain_head, liabilities, state) VALUES($o,$r,$h,$l,'pending')",
                ("$o", (long)op), ("$r", root), ("$h", chainHead), ("$l", liabilities));
    }

    /// <summary>Checkpoints recorded and not yet anchored, oldest first.</summary>
    public IReadOnlyList<AnchorRow> PendingAnchors()
    {
        lock (_lock) return Anchors("WHERE state='pending' ORDER BY op");
    }

    /// <summary>The latest anchored checkpoint, or null.</summary>
    public AnchorRow? LatestAnchored()
    {
        lock (_lock) return Anchors("WHERE state='anchored' ORDER BY op DESC LIMIT 1").FirstOrDefault();
    }

    /// <summary>The checkpoints not anchored themselves because anchor <paramref name="op"/> came after them (at most <paramref name="limit"/>, latest first).</summary>
    public IReadOnlyList<ulong> CoveredBy(ulong op, int limit)
    {
        lock (_lock) return Anchors("WHERE state='covered' AND anchored_as=$o ORDER BY op DESC LIMIT $l", ("$o", (long)op), ("$l", limit)).Select(a => a.Op).ToArray();
    }

    /// <summary>
    /// Marks <paramref name="op"/> anchored by <paramref name="txHash"/>, and every pending op before it as covered by it
    /// (the chain lagged: only the latest is anchored, and the rows say which ops were skipped and by what).
    /// </summary>
    public void SetAnchored(ulong op, string txHash, long block)
    {
        lock (_lock)
        {
            using SqliteTransaction tx = _db.BeginTransaction();
            Execute(tx, "UPDATE anchors SET state='covered', anchored_as=$o WHERE state='pending' AND op < $o", ("$o", (long)op));
            Execute(tx, "UPDATE anchors SET state='anchored', tx_hash=$t, block_number=$b, anchored_as=$o WHERE op=$o", ("$o", (long)op), ("$t", txHash), ("$b", block));
            tx.Commit();
        }
    }

    /// <summary>Puts anchored op <paramref name="op"/> back to pending (its transaction was reorganised away), with the ops it covered.</summary>
    public void Reopen(ulong op)
    {
        lock (_lock)
        {
            using SqliteTransaction tx = _db.BeginTransaction();
            Execute(tx, "UPDATE anchors SET state='pending', tx_hash=NULL, block_number=NULL, anchored_as=NULL WHERE anchored_as=$o", ("$o", (long)op));
            tx.Commit();
        }
    }

    private List<AnchorRow> Anchors(string where, params (string, object?)[] args) => Query(c =>
    {
        var rows = new List<AnchorRow>();
        using SqliteDataReader r = c.ExecuteReader();
        while (r.Read())
            rows.Add(new AnchorRow((ulong)r.GetInt64(0), r.GetString(1), r.GetString(2), r.GetString(3), r.GetString(4),
                r.IsDBNull(5) ? null : r.GetString(5), r.IsDBNull(6) ? null : r.GetInt64(6), r.IsDBNull(7) ? null : (ulong)r.GetInt64(7)));
        return rows;
    }, "SELECT op, root, chain_head, liabilities, state, tx_hash, block_number, anchored_as FROM anchors " + where, args);

    // ---- plumbing

    private T Query<T>(Func<SqliteCommand, T> read, string sql, params (string Name, object? Value)[] args)
    {
        using SqliteCommand c = _db.CreateCommand();
        c.CommandText = sql;
        foreach (var (n, v) in args) c.Parameters.AddWithValue(n, v ?? DBNull.Value);
        return read(c);
    }

    private void Execute(SqliteTransaction? tx, string sql, params (string Name, object? Value)[] args)
    {
        using SqliteCommand c = _db.CreateCommand();
        c.Transaction = tx;
        c.CommandText = sql;
        foreach (var (n, v) in args) c.Parameters.AddWithValue(n, v ?? DBNull.Value);
        c.ExecuteNonQuery();
    }

    /// <summary>Closes the store.</summary>
    public void Dispose()
    {
        lock (_lock) _db.Dispose();
    }
}
