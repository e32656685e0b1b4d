using System.Globalization;
using ComputeGrid.Ledger;
using Microsoft.Data.Sqlite;

namespace ComputeGrid.Server.Inference;

/// <summary>
/// A charge the ledger refused, kept for operators to see and settle by hand. Either the request's answer was sent (the
/// normal path captures after the answer: e.g. its hold expired and the customer spent the released money meanwhile) and
/// the charge is the platform's loss; or, on the slow path (failover), the answer was withheld (a 503, nothing charged).
/// Either way the node's work went unpaid. A hold with a dead letter is left alone by recovery.
/// </summary>
/// <param name="Id">The dead letter's sequence number (1, 2, …; never reused).</param>
/// <param name="At">When it was recorded.</param>
/// <param name="Customer">The customer's principal id.</param>
/// <param name="RequestKey">The request's key (<c>idem:</c> + its Idempotency-Key, or <c>req:</c> + a request id); empty when recovery found the hold (a hold does not carry its key).</param>
/// <param name="HoldId">The hold the capture would have posted.</param>
/// <param name="Generation">The hold's generation (see <see cref="InferencePayments.HoldId"/>); −1 when recovery found the hold.</param>
/// <param name="Node">The node that ran the request.</param>
/// <param name="CostMicroUsd">The metered cost that was not captured.</param>
/// <param name="FeeMicroUsd">Its platform fee.</param>
/// <param name="Reason">The ledger's result codes for the chain, and what became of the hold.</param>
public sealed record DeadLetter(long Id, DateTimeOffset At, ulong Customer, string RequestKey, UInt128 HoldId, int Generation, string Node,
    long CostMicroUsd, long FeeMicroUsd, string Reason);

/// <summary>
/// The dead letters of paid inference, in <c>DATA/inference/money.db</c> (SQLite in WAL mode with
/// <c>synchronous=FULL</c>): a refused capture is on stable storage before the request is answered, one per hold
/// (a second refusal of the same hold is not recorded twice). A database that fails SQLite's integrity check stops the
/// start. Written rarely (only refusals), so one connection behind a lock.
/// </summary>
public sealed class DeadLetters : IDisposable
{
    /// <summary>The file, relative to the data folder.</summary>
    public const string RelativePath = "inference/money.db";

    private readonly SqliteConnection _db;
    private readonly TimeProvider _time;
    private readonly Lock _gate = new();
    private long _recorded;

    private DeadLetters(SqliteConnection db, TimeProvider time, long count)
    {
        _db = db;
        _time = time;
        Count = count;
    }

    /// <summary>Dead letters in the store (all time).</summary>
    public long Count { get; private set; }

    /// <summary>Dead letters recorded by this process (the <c>/metrics</c> counter).</summary>
    public long RecordedSinceStart => Interlocked.Read(ref _recorded);

    /// <summary>The store's path in <paramref name="dataDirectory"/>.</summary>
    public static string PathIn(string dataDirectory) => Path.Combine(dataDirectory, RelativePath);

    /// <summary>Opens (creating if absent) the store of <paramref name="dataDirectory"/>.</summary>
    /// <exception cref="InvalidDataException">The database fails its integrity check, cannot be opened, or has an unknown schema.</exception>
    public static DeadLetters Open(string dataDirectory, TimeProvider time)
    {
        string path = PathIn(dataDirectory);
        SqliteConnection db = DurableSqlite.Open(path, "money store", """
            CREATE TABLE IF NOT EXISTS dead_letters(
                id INTEGER PRIMARY KEY AUTOINCREMENT, at_ms INTEGER NOT NULL, customer INTEGER NOT NULL, request_key TEXT NOT NULL,
                hold_id TEXT NOT NULL UNIQUE, generation INTEGER NOT NULL, node TEXT NOT NULL, cost INTEGER NOT NULL, fee INTEGER NOT NULL,
                reason TEXT NOT NULL);
            """);
        long count = (long)(Scalar(db, "SELECT count(*) FROM dead_letters") ?? 0L);
        return new DeadLetters(db, time, count);
    }

    /// <summary>
    /// Records a refused capture durably (before the request is answered). A hold recorded before is not recorded again:
    /// the first letter is returned.
    /// </summary>
    public DeadLetter Record(ulong customer, string requestKey, UInt128 holdId, int generation, string node, long costMicroUsd, long feeMicroUsd, string reason)
    {
        DateTimeOffset at = _time.GetUtcNow();
        lock (_gate)
        {
            using (var insert = _db.CreateCommand())
            {
                insert.CommandText = """
                    INSERT OR IGNORE INTO dead_letters(at_ms, customer, request_key, hold_id, generation, node, cost, fee, reason)
                    VALUES($at, $customer, $key, $hold, $generation, $node, $cost, $fee, $reason)
                    """;
                insert.Parameters.AddWithValue("$at", at.ToUnixTimeMilliseconds());
                insert.Parameters.AddWithValue("$customer", unchecked((long)customer));
                insert.Parameters.AddWithValue("$key", requestKey);
                insert.Parameters.AddWithValue("$hold", holdId.ToString(CultureInfo.InvariantCulture));
                insert.Parameters.AddWithValue("$generation", generation);
                insert.Parameters.AddWithValue("$node", node);
                insert.Parameters.AddWithValue("$cost", costMicroUsd);
                insert.Parameters.AddWithValue("$fee", feeMicroUsd);
                insert.Parameters.AddWithValue("$reason", reason);
                if (insert.ExecuteNonQuery() == 1)
                {
                    Count++;
                    Interlocked.Increment(ref _recorded);
                }
            }
            using var select = _db.CreateCommand();
            select.CommandText = $"{SelectColumns} WHERE hold_id = $hold";
            select.Parameters.AddWithValue("$hold", holdId.ToString(CultureInfo.InvariantCulture));
            using var reader = select.ExecuteReader();
            reader.Read();
            return Read(reader);
        }
    }

    /// <summary>Whether a dead letter of <paramref name="holdId"/> is on record (recovery leaves such a hold alone).</summary>
    public bool Contains(UInt128 holdId)
    {
        lock (_gate)
        {
            using var select = _db.CreateCommand();
            select.CommandText = "SELECT 1 FROM dead_letters WHERE hold_id = $hold";
            select.Parameters.AddWithValue("$hold", holdId.ToString(CultureInfo.InvariantCulture));
            return select.ExecuteScalar() is not null;
        }
    }

    /// <summary>Dead letters with an id above <paramref name="after"/>, oldest first, at most <paramref name="limit"/>.</summary>
    public IReadOnlyList<DeadLetter> List(long after, int limit)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(limit);
        lock (_gate)
        {
            using var select = _db.CreateCommand();
            select.CommandText = $"{SelectColumns} WHERE id > $after ORDER BY id LIMIT $limit";
            select.Parameters.AddWithValue("$after", after);
            select.Parameters.AddWithValue("$limit", limit);
            using var reader = select.ExecuteReader();
            var list = new List<DeadLetter>();
            while (reader.Read()) list.Add(Read(reader));
            return list;
        }
    }

    public void Dispose()
    {
        lock (_gate) _db.Dispose();
    }

    private const string SelectColumns = "SELECT id, at_ms, customer, request_key, hold_id, generation, node, cost, fee, reason FROM dead_letters";

    private static DeadLetter Read(SqliteDataReader r) => new(r.GetInt64(0), DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(1)), unchecked((ulong)r.GetInt64(2)),
        r.GetString(3), UInt128.Parse(r.GetString(4), CultureInfo.InvariantCulture), r.GetInt32(5), r.GetString(6), r.GetInt64(7), r.GetInt64(8), r.GetString(9));

    private static void Exec(SqliteConnection db, string sql) => DurableSqlite.Exec(db, sql);

    private static object? Scalar(SqliteConnection db, string sql) => DurableSqlite.Scalar(db, sql);

    /// <summary>The reason text of a refused chain: each transfer's result code.</summary>
    public static string Describe(CreateTransferResult[] results) => string.Join(", ", results);
}
