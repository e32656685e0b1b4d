using Microsoft.Data.Sqlite;

namespace ComputeGrid.Server.Chain;

/// <summary>Where a share withdrawal stands. Values are stored; each moves only forward, except Sent back to Moved when a reorg drops its mint.</summary>
public enum ShareWithdrawalState
{
    /// <summary>Recorded; its shares are not yet known to be with the custody holder.</summary>
    New = 0,
    /// <summary>The shares are with the custody holder in the exchange and the ledger; to be minted.</summary>
    Moved = 1,
    /// <summary>Minted by a mined transaction; waiting for its confirmations.</summary>
    Sent = 2,
    /// <summary>Minted with its confirmations. Final.</summary>
    Minted = 3,
    /// <summary>The token refused the mint for good; the shares went back to the holder. Final.</summary>
    Failed = 4,
    /// <summary>The exchange refused the move (too few free shares); nothing moved. Final.</summary>
    Refused = 5,
}

/// <summary>One share withdrawal of the outbox: <see cref="Shares"/> of <see cref="Node"/> from <see cref="Principal"/> to <see cref="To"/> on chain.</summary>
public sealed record ShareWithdrawalRow(
    string Id, ulong Principal, long Node, string To, long Shares, string IdempotencyKey, ShareWithdrawalState State,
    string? TransactionHash, long? BlockNumber, int Attempts, string? Error, long CreatedUnixNs, long UpdatedUnixNs);

/// <summary>One <c>Deposited</c> log of a share token, and what became of it (<c>new</c>, <c>credited</c>, <c>suspense</c>).</summary>
public sealed record ShareDepositRow(string Token, string TransactionHash, long LogIndex, long BlockNumber, long Node, string Account, long Shares, ulong Holder, string State);

public sealed partial class BridgeStore
{
    // share_tokens: one token per node, with the shares its custody holder holds once every applied custody move is
    // counted (the exactly-once check of each custody move: see ShareBridge and BridgeStore.Custody). share_withdrawals: the mint outbox.
    // share_deposits: Deposited logs read, keyed by (token, tx, log index). share_distributions: each distribute sent.
    private const string ShareSchema = """
        CREATE TABLE IF NOT EXISTS share_tokens(node INTEGER PRIMARY KEY, address TEXT, custody_shares INTEGER NOT NULL);
        CREATE TABLE IF NOT EXISTS share_withdrawals(id TEXT PRIMARY KEY, principal INTEGER NOT NULL, node INTEGER NOT NULL, to_address TEXT NOT NULL,
            shares INTEGER NOT NULL, idempotency_key TEXT NOT NULL, state INTEGER NOT NULL, tx_hash TEXT, block_number INTEGER,
            attempts INTEGER NOT NULL, error TEXT, created_ns INTEGER NOT NULL, updated_ns INTEGER NOT NULL, UNIQUE(principal, idempotency_key));
        CREATE TABLE IF NOT EXISTS share_deposits(token TEXT NOT NULL, tx_hash TEXT NOT NULL, log_index INTEGER NOT NULL, block_number INTEGER NOT NULL,
            node INTEGER NOT NULL, account TEXT NOT NULL, shares INTEGER NOT NULL, holder INTEGER NOT NULL, state TEXT NOT NULL, PRIMARY KEY(token, tx_hash, log_index));
        CREATE TABLE IF NOT EXISTS share_distributions(node INTEGER NOT NULL, revenue_total INTEGER NOT NULL, amount INTEGER NOT NULL, tx_hash TEXT,
            created_ns INTEGER NOT NULL, PRIMARY KEY(node, revenue_total));
        """;

    // ---- tokens

    /// <summary>The share token of <paramref name="node"/>, or null before its first withdrawal deployed it.</summary>
    public string? ShareToken(long node)
    {
        lock (_lock) return Query(c => c.ExecuteScalar() as string, "SELECT address FROM share_tokens WHERE node=$n", ("$n", node));
    }

    /// <summary>Every deployed share token, by node.</summary>
    public IReadOnlyList<(long Node, string Address)> ShareTokens()
    {
        lock (_lock) return Query(c =>
        {
            var all = new List<(long, string)>();
            using SqliteDataReader r = c.ExecuteReader();
            while (r.Read()) all.Add((r.GetInt64(0), r.GetString(1)));
            return all;
        }, "SELECT node, address FROM share_tokens WHERE address IS NOT NULL ORDER BY node");
    }

    /// <summary>
    /// Records <paramref name="node"/>'s token (the first one recorded stays) and starts its deposit cursor at the block it
    /// was deployed in, <paramref name="deployedAtBlock"/>: no log of it is older.
    /// </summary>
    public void InsertShareToken(long node, string address, long deployedAtBlock)
    {
        lock (_lock)
        {
            using SqliteTransaction tx = _db.BeginTransaction();
            Execute(tx, "INSERT INTO share_tokens(node, address, custody_shares) VALUES($n,$a,0) ON CONFLICT(node) DO UPDATE SET address=$a WHERE address IS NULL",
                ("$n", node), ("$a", address));
            Execute(tx, "INSERT OR IGNORE INTO cursor(name, next_block) VALUES($c,$b)", ("$c", address.ToLowerInvariant()), ("$b", deployedAtBlock));
            tx.Commit();
        }
    }

    /// <summary>Makes <paramref name="node"/>'s row (custody count 0, no token yet) unless it exists: the count must exist before a custody move is recorded.</summary>
    public void InsertShareNode(long node)
    {
        lock (_lock) Execute(null, "INSERT OR IGNORE INTO share_tokens(node, address, custody_shares) VALUES($n,NULL,0)", ("$n", node));
    }

    /// <summary>The shares <paramref name="node"/>'s custody holder holds once every applied withdrawal and deposit is counted.</summary>
    public long CustodyShares(long node)
    {
        lock (_lock) return Query(c => c.ExecuteScalar() is long n ? n : 0, "SELECT custody_shares FROM share_tokens WHERE node=$n", ("$n", node));
    }

    // ---- withdrawals

    /// <summary>Inserts <paramref name="row"/> unless its id exists; returns the stored row either way.</summary>
    public ShareWithdrawalRow InsertShareWithdrawal(ShareWithdrawalRow row)
    {
        lock (_lock)
        {
            Execute(null, """
                INSERT OR IGNORE INTO share_withdrawals(id, principal, node, to_address, shares, idempotency_key, state, attempts, created_ns, updated_ns)
                VALUES($id,$p,$n,$to,$s,$k,$st,0,$c,$c)
                """, ("$id", row.Id), ("$p", (long)row.Principal), ("$n", row.Node), ("$to", row.To), ("$s", row.Shares), ("$k", row.IdempotencyKey),
                ("$st", (int)row.State), ("$c", row.CreatedUnixNs));
            return ShareWithdrawal(row.Id)!;
        }
    }

    /// <summary>The share withdrawal <paramref name="id"/>, or null.</summary>
    public ShareWithdrawalRow? ShareWithdrawal(string id)
    {
        lock (_lock) return ShareWithdrawals("WHERE id=$id", ("$id", id)).FirstOrDefault();
    }

    /// <summary>Share withdrawals not final yet, oldest first.</summary>
    public IReadOnlyList<ShareWithdrawalRow> OpenShareWithdrawals()
    {
        lock (_lock) return ShareWithdrawals($"WHERE state IN ({(int)ShareWithdrawalState.New},{(int)ShareWithdrawalState.Moved},{(int)ShareWithdrawalState.Sent}) ORDER BY created_ns, id");
    }

    /// <summary>Moves share withdrawal <paramref name="id"/> to <paramref name="state"/>, only from <paramref name="from"/> (the custody count moves with each custody move, <see cref="RecordCustodyMove"/>).</summary>
    public void SetShareWithdrawal(string id, ShareWithdrawalState from, ShareWithdrawalState state, string? txHash, long? block, string? error, long nowUnixNs,
        bool attempt = false)
    {
        lock (_lock)
        {
            using SqliteTransaction tx = _db.BeginTransaction();
            ShareWithdrawalRow row = ShareWithdrawals("WHERE id=$id", ("$id", id)).Single();
            if (row.State == from)
            {
                Execute(tx, "UPDATE share_withdrawals SET state=$s, tx_hash=$t, block_number=$b, error=$e, updated_ns=$u, attempts=attempts+$x WHERE id=$id",
                    ("$s", (int)state), ("$t", (object?)txHash), ("$b", (object?)block), ("$e", (object?)error), ("$u", nowUnixNs), ("$x", attempt ? 1 : 0), ("$id", id));
            }
            tx.Commit();
        }
    }

    private List<ShareWithdrawalRow> ShareWithdrawals(string where, params (string, object?)[] args) => Query(c =>
    {
        var rows = new List<ShareWithdrawalRow>();
        using SqliteDataReader r = c.ExecuteReader();
        while (r.Read())
            rows.Add(new ShareWithdrawalRow(r.GetString(0), (ulong)r.GetInt64(1), r.GetInt64(2), r.GetString(3), r.GetInt64(4), r.GetString(5),
                (ShareWithdrawalState)r.GetInt32(6), r.IsDBNull(7) ? null : r.GetString(7), r.IsDBNull(8) ? null : r.GetInt64(8), r.GetInt32(9),
                r.IsDBNull(10) ? null : r.GetString(10), r.GetInt64(11), r.GetInt64(12)));
        return rows;
    }, "SELECT id, principal, node, to_address, shares, idempotency_key, state, tx_hash, block_number, attempts, error, created_ns, updated_ns FROM share_withdrawals " + where, args);

    // ---- deposits

    /// <summary>Records a Deposited log as <c>new</c> unless it was recorded before; returns the stored row.</summary>
    public ShareDepositRow InsertShareDeposit(ShareDepositRow row)
    {
        lock (_lock)
        {
            Execute(null, "INSERT OR IGNORE INTO share_deposits(token, tx_hash, log_index, block_number, node, account, shares, holder, state) VALUES($t,$h,$i,$b,$n,$a,$s,$p,$st)",
                ("$t", row.Token.ToLowerInvariant()), ("$h", row.TransactionHash.ToLowerInvariant()), ("$i", row.LogIndex), ("$b", row.BlockNumber), ("$n", row.Node),
                ("$a", row.Account), ("$s", row.Shares), ("$p", (long)row.Holder), ("$st", row.State));
            return ShareDeposits("WHERE token=$t AND tx_hash=$h AND log_index=$i", ("$t", row.Token.ToLowerInvariant()), ("$h", row.TransactionHash.ToLowerInvariant()), ("$i", row.LogIndex)).Single();
        }
    }

    /// <summary>Share deposits of <paramref name="node"/> not yet applied, in chain order.</summary>
    public IReadOnlyList<ShareDepositRow> NewShareDeposits(long node)
    {
        lock (_lock) return ShareDeposits("WHERE node=$n AND state='new' ORDER BY block_number, log_index", ("$n", node));
    }

    /// <summary>Every share deposit of <paramref name="node"/>, in chain order.</summary>
    public IReadOnlyList<ShareDepositRow> ShareDepositsOf(long node)
    {
        lock (_lock) return ShareDeposits("WHERE node=$n ORDER BY block_number, log_index", ("$n", node));
    }

    /// <summary>Marks a new deposit <paramref name="state"/> (its custody move, if any, was recorded by <see cref="RecordCustodyMove"/>).</summary>
    public void SetShareDeposit(ShareDepositRow row, string state)
    {
        lock (_lock)
            Execute(null, "UPDATE share_deposits SET state=$s WHERE token=$t AND tx_hash=$h AND log_index=$i AND state='new'",
                ("$s", state), ("$t", row.Token.ToLowerInvariant()), ("$h", row.TransactionHash.ToLowerInvariant()), ("$i", row.LogIndex));
    }

    private List<ShareDepositRow> ShareDeposits(string where, params (string, object?)[] args) => Query(c =>
    {
        var rows = new List<ShareDepositRow>();
        using SqliteDataReader r = c.ExecuteReader();
        while (r.Read())
            rows.Add(new ShareDepositRow(r.GetString(0), r.GetString(1), r.GetInt64(2), r.GetInt64(3), r.GetInt64(4), r.GetString(5), r.GetInt64(6), (ulong)r.GetInt64(7), r.GetString(8)));
        return rows;
    }, "SELECT token, tx_hash, log_index, block_number, node, account, shares, holder, state FROM share_deposits " + where, args);

    // ---- distributions

    /// <summary>Records a distribute up to <paramref name="revenueTotal"/> before it is sent (once per node and total).</summary>
    public void InsertShareDistribution(long node, long revenueTotal, long amount, long nowUnixNs)
    {
        lock (_lock)
            Execute(null, "INSERT OR IGNORE INTO share_distributions(node, revenue_total, amount, created_ns) VALUES($n,$r,$a,$c)",
                ("$n", node), ("$r", revenueTotal), ("$a", amount), ("$c", nowUnixNs));
    }

    /// <summary>Records the transaction that carried the distribute up to <paramref name="revenueTotal"/>.</summary>
    public void SetShareDistributionSent(long node, long revenueTotal, string txHash)
    {
        lock (_lock)
            Execute(null, "UPDATE share_distributions SET tx_hash=$t WHERE node=$n AND revenue_total=$r", ("$t", txHash), ("$n", node), ("$r", revenueTotal));
    }
}
