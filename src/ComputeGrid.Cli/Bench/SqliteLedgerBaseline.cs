using System.Buffers.Binary;
using ComputeGrid.Ledger;
using Microsoft.Data.Sqlite;

namespace ComputeGrid.Cli.Bench;

/// <summary>
/// The benchmark's baseline: the same double-entry transfers applied to SQLite the way a careful ordinary
/// application would — WAL journal, <c>synchronous=FULL</c> (every commit is fsynced), one transaction per
/// batch, prepared statements with reused parameters. Each transfer inserts one row and updates the posted
/// balances of both accounts. 128-bit ids are stored as 16-byte big-endian BLOBs.
/// </summary>
public sealed class SqliteLedgerBaseline : IDisposable
{
    private readonly SqliteConnection _connection;
    private readonly SqliteCommand _insertTransfer;
    private readonly SqliteCommand _debit;
    private readonly SqliteCommand _credit;
    private readonly SqliteParameter _tId, _tDebit, _tCredit, _tAmount, _tTs;
    private readonly SqliteParameter _dId, _dAmount, _cId, _cAmount;
    private readonly Dictionary<UInt128, byte[]> _accountKeys = new();
    private long _lastTimestamp;

    /// <summary>Transfers committed so far.</summary>
    public long TransfersApplied { get; private set; }

    /// <summary>Path of the database file.</summary>
    public string DatabasePath { get; }

    /// <summary>Creates (replacing any old one) the database file at <paramref name="path"/> with the schema.</summary>
    public SqliteLedgerBaseline(string path)
    {
        DatabasePath = path;
        DeleteFiles(path);
        _connection = new SqliteConnection(new SqliteConnectionStringBuilder
        {
            DataSource = path,
            Mode = SqliteOpenMode.ReadWriteCreate,
            Pooling = false,
        }.ToString());
        _connection.Open();
        Execute("PRAGMA journal_mode=WAL;");
        Execute("PRAGMA synchronous=FULL;");
        Execute("PRAGMA cache_size=-65536;"); // 64 MiB page cache, so the benchmark is not starved of cache
        Execute("""
            CREATE TABLE accounts(
                id BLOB PRIMARY KEY NOT NULL,
                debits_posted INTEGER NOT NULL,
                credits_posted INTEGER NOT NULL
            ) WITHOUT ROWID;
            CREATE TABLE transfers(
                id BLOB PRIMARY KEY NOT NULL,
                debit BLOB NOT NULL,
                credit BLOB NOT NULL,
                amount INTEGER NOT NULL,
                ts INTEGER NOT NULL
            ) WITHOUT ROWID;
            """);

        _insertTransfer = _connection.CreateCommand();
        _insertTransfer.CommandText = "INSERT INTO transfers(id, debit, credit, amount, ts) VALUES ($id, $debit, $credit, $amount, $ts);";
        _tId = _insertTransfer.Parameters.Add("$id", SqliteType.Blob);
        _tDebit = _insertTransfer.Parameters.Add("$debit", SqliteType.Blob);
        _tCredit = _insertTransfer.Parameters.Add("$credit", SqliteType.Blob);
        _tAmount = _insertTransfer.Parameters.Add("$amount", SqliteType.Integer);
        _tTs = _insertTransfer.Parameters.Add("$ts", SqliteType.Integer);

        _debit = _connection.CreateCommand();
        _debit.CommandText = "UPDATE accounts SET debits_posted = debits_posted + $amount WHERE id = $id;";
        _dAmount = _debit.Parameters.Add("$amount", SqliteType.Integer);
        _dId = _debit.Parameters.Add("$id", SqliteType.Blob);

        _credit = _connection.CreateCommand();
        _credit.CommandText = "UPDATE accounts SET credits_posted = credits_posted + $amount WHERE id = $id;";
        _cAmount = _credit.Parameters.Add("$amount", SqliteType.Integer);
        _cId = _credit.Parameters.Add("$id", SqliteType.Blob);

        // Placeholder values so Prepare can bind; the real values are set per transfer.
        foreach (var p in new[] { _tId, _tDebit, _tCredit, _dId, _cId }) p.Value = Array.Empty<byte>();
        foreach (var p in new[] { _tAmount, _tTs, _dAmount, _cAmount }) p.Value = 0L;
        _insertTransfer.Prepare();
        _debit.Prepare();
        _credit.Prepare();
    }

    /// <summary>Creates the accounts (zero balances) in one transaction.</summary>
    public void CreateAccounts(ReadOnlySpan<Account> accounts)
    {
        using var tx = _connection.BeginTransaction();
        using var insert = _connection.CreateCommand();
        insert.Transaction = tx;
        insert.CommandText = "INSERT INTO accounts(id, debits_posted, credits_posted) VALUES ($id, 0, 0);";
        var id = insert.Parameters.Add("$id", SqliteType.Blob);
        foreach (ref readonly Account a in accounts)
        {
            byte[] key = Key(a.Id);
            _accountKeys.Add(a.Id, key);
            id.Value = key;
            insert.ExecuteNonQuery();
        }
        tx.Commit();
    }

    /// <summary>
    /// Applies one batch of plain transfers in one transaction (committed, hence fsynced, before it returns).
    /// Transfer i gets timestamp <paramref name="timestamp"/> + i. Throws if a transfer is invalid for this
    /// simple model (unknown account, same account on both sides, non-positive amount, duplicate id).
    /// </summary>
    public void ApplyBatch(ReadOnlySpan<Transfer> batch, long timestamp)
    {
        if (timestamp <= _lastTimestamp) throw new ArgumentException("Batch timestamps must strictly increase.", nameof(timestamp));
        using var tx = _connection.BeginTransaction();
        _insertTransfer.Transaction = tx;
        _debit.Transaction = tx;
        _credit.Transaction = tx;
        for (int i = 0; i < batch.Length; i++)
        {
            ref readonly Transfer t = ref batch[i];
            if (t.Amount <= 0) throw new InvalidOperationException($"Transfer {i}: amount must be positive.");
            if (t.DebitAccountId == t.CreditAccountId) throw new InvalidOperationException($"Transfer {i}: accounts must be different.");
            if (!_accountKeys.TryGetValue(t.DebitAccountId, out var debitKey)) throw new InvalidOperationException($"Transfer {i}: debit account not found.");
            if (!_accountKeys.TryGetValue(t.CreditAccountId, out var creditKey)) throw new InvalidOperationException($"Transfer {i}: credit account not found.");

            _tId.Value = Key(t.Id);
            _tDebit.Value = debitKey;
            _tCredit.Value = creditKey;
            _tAmount.Value = t.Amount;
            _tTs.Value = timestamp + i;
            _insertTransfer.ExecuteNonQuery(); // a duplicate id throws (primary key)

            _dAmount.Value = t.Amount;
            _dId.Value = debitKey;
            if (_debit.ExecuteNonQuery() != 1) throw new InvalidOperationException($"Transfer {i}: debit account row missing.");
            _cAmount.Value = t.Amount;
            _cId.Value = creditKey;
            if (_credit.ExecuteNonQuery() != 1) throw new InvalidOperationException($"Transfer {i}: credit account row missing.");
        }
        tx.Commit();
        _insertTransfer.Transaction = null;
        _debit.Transaction = null;
        _credit.Transaction = null;
        _lastTimestamp = timestamp + batch.Length - 1;
        TransfersApplied += batch.Length;
    }

    /// <summary>Totals for the double-entry check: Σ debits_posted, Σ credits_posted, Σ transfer amounts, transfer rows.</summary>
    public (long Debits, long Credits, long Amounts, long Transfers) Totals()
    {
        using var cmd = _connection.CreateCommand();
        cmd.CommandText = """
            SELECT (SELECT coalesce(sum(debits_posted), 0) FROM accounts),
                   (SELECT coalesce(sum(credits_posted), 0) FROM accounts),
                   (SELECT coalesce(sum(amount), 0) FROM transfers),
                   (SELECT count(*) FROM transfers);
            """;
        using var r = cmd.ExecuteReader();
        if (!r.Read()) throw new InvalidOperationException("No totals row.");
        return (r.GetInt64(0), r.GetInt64(1), r.GetInt64(2), r.GetInt64(3));
    }

    public void Dispose()
    {
        _insertTransfer.Dispose();
        _debit.Dispose();
        _credit.Dispose();
        _connection.Dispose();
    }

    /// <summary>Deletes the database file and its WAL and shared-memory files, if present.</summary>
    public static void DeleteFiles(string path)
    {
        foreach (var p in new[] { path, path + "-wal", path + "-shm", path + "-journal" })
            if (File.Exists(p)) File.Delete(p);
    }

    private void Execute(string sql)
    {
        using var cmd = _connection.CreateCommand();
        cmd.CommandText = sql;
        cmd.ExecuteNonQuery();
    }

    private static byte[] Key(UInt128 id)
    {
        var key = new byte[16];
        BinaryPrimitives.WriteUInt128BigEndian(key, id);
        return key;
    }
}
