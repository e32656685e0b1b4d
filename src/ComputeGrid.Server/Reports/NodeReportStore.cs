using System.Text.Json;
using ComputeGrid.Inference.Reports;
using Microsoft.Data.Sqlite;

namespace ComputeGrid.Server.Reports;

/// <summary>
/// Nodes' epoch reports, in <c>DATA/inference/reports.db</c> (SQLite in WAL mode with <c>synchronous=FULL</c>, created
/// 0600): the accepted chain of each node (one row per node and epoch, the report's JSON and hash) and the flagged
/// submissions (with the check they failed and why). A report is on stable storage before the node is answered. The
/// head of each node's chain (last epoch and hash) is kept in memory, loaded at open. Reports are rare (one per node per
/// epoch), so one connection behind a lock. A database that fails SQLite's check, or a stored report whose hash does
/// not recompute, stops the start.
/// </summary>
public sealed class NodeReportStore : IDisposable
{
    /// <summary>The file, relative to the data folder.</summary>
    public const string RelativePath = "inference/reports.db";

    private readonly SqliteConnection _db;
    private readonly Lock _gate = new();
    private readonly Dictionary<ulong, EpochReport> _heads;

    private NodeReportStore(SqliteConnection db, Dictionary<ulong, EpochReport> heads)
    {
        _db = db;
        _heads = heads;
    }

    /// <summary>
    /// The epoch length of this store's chains: the one recorded at its first use, else <paramref name="requested"/>
    /// (recorded now). A published chain is verified with one epoch length, so a data folder keeps the length it began
    /// with whatever a later start asks for. A store written before the length was recorded used the default (one hour).
    /// </summary>
    public TimeSpan EpochFor(TimeSpan requested)
    {
        lock (_gate)
        {
            using var read = _db.CreateCommand();
            read.CommandText = "SELECT value FROM meta WHERE key = 'epoch_ns'";
            if (read.ExecuteScalar() is { } stored and not DBNull) return TimeSpan.FromTicks(Convert.ToInt64(stored, System.Globalization.CultureInfo.InvariantCulture) / 100);
            using var any = _db.CreateCommand();
            any.CommandText = "SELECT EXISTS(SELECT 1 FROM reports)";
            TimeSpan epoch = (long)any.ExecuteScalar()! != 0 ? EpochReportLimits.EpochDefault : requested;
            using var write = _db.CreateCommand();
            write.CommandText = "INSERT INTO meta(key, value) VALUES ('epoch_ns', $ns)";
            write.Parameters.AddWithValue("$ns", checked(epoch.Ticks * 100));
            write.ExecuteNonQuery();
            return epoch;
        }
    }

    /// <summary>The store's path in <paramref name="dataDirectory"/>.</summary>
    public static string PathIn(string dataDirectory) => Path.Combine(dataDirectory, RelativePath);

    /// <summary>Opens (creating if absent) the store of <paramref name="dataDirectory"/>.</summary>
    /// <exception cref="InvalidDataException">The database is corrupt, has an unknown schema, or holds a report whose hash does not recompute.</exception>
    public static NodeReportStore Open(string dataDirectory)
    {
        string path = PathIn(dataDirectory);
        SqliteConnection db = DurableSqlite.Open(path, "report store", """
            CREATE TABLE IF NOT EXISTS reports(
                node_principal INTEGER NOT NULL, epoch INTEGER NOT NULL, hash TEXT NOT NULL, received_ns INTEGER NOT NULL, report TEXT NOT NULL,
                PRIMARY KEY(node_principal, epoch));
            CREATE TABLE IF NOT EXISTS flagged(
                id INTEGER PRIMARY KEY AUTOINCREMENT, node_principal INTEGER NOT NULL, epoch INTEGER NOT NULL, received_ns INTEGER NOT NULL,
                check_name TEXT NOT NULL, reason TEXT NOT NULL, report TEXT NOT NULL);
            CREATE INDEX IF NOT EXISTS flagged_node ON flagged(node_principal, id);
            CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);
            """);
        try
        {
            var heads = new Dictionary<ulong, EpochReport>();
            using (var c = db.CreateCommand())
            {
                c.CommandText = "SELECT node_principal, hash, report FROM reports r WHERE epoch = (SELECT max(epoch) FROM reports WHERE node_principal = r.node_principal)";
                using var reader = c.ExecuteReader();
                while (reader.Read())
                {
                    EpochReport head = Parse(reader.GetString(2), path);
                    if (EpochReportEncoding.ComputeHash(head) != reader.GetString(1) || head.Hash != reader.GetString(1))
                        throw new InvalidDataException($"The report store {path} holds a report of node {reader.GetInt64(0)} whose hash does not recompute; restore it from a backup.");
                    heads[unchecked((ulong)reader.GetInt64(0))] = head;
                }
            }
            return new NodeReportStore(db, heads);
        }
        catch (SqliteException e)
        {
            db.Dispose();
            throw new InvalidDataException($"The report store {path} cannot be opened: {e.Message}", e);
        }
        catch
        {
            db.Dispose();
            throw;
        }
    }

    /// <summary>The node's last accepted report, or null before its first.</summary>
    public EpochReport? Head(ulong nodePrincipal)
    {
        lock (_gate) return _heads.GetValueOrDefault(nodePrincipal);
    }

    /// <summary>
    /// Appends an accepted report (durably) if it still follows the head it was checked against; false when another
    /// report took that place first (the caller answers a chain conflict).
    /// </summary>
    public bool TryAppend(EpochReport report, EpochReport? checkedAgainst, long receivedUnixNs)
    {
        lock (_gate)
        {
            if (!ReferenceEquals(_heads.GetValueOrDefault(report.NodePrincipal), checkedAgainst)) return false;
            using var insert = _db.CreateCommand();
            insert.CommandText = "INSERT INTO reports(node_principal, epoch, hash, received_ns, report) VALUES($node, $epoch, $hash, $at, $report)";
            insert.Parameters.AddWithValue("$node", unchecked((long)report.NodePrincipal));
            insert.Parameters.AddWithValue("$epoch", report.Epoch);
            insert.Parameters.AddWithValue("$hash", report.Hash);
            insert.Parameters.AddWithValue("$at", receivedUnixNs);
            insert.Parameters.AddWithValue("$report", JsonSerializer.Serialize(report));
            insert.ExecuteNonQuery();
            _heads[report.NodePrincipal] = report;
            return true;
        }
    }

    /// <summary>Records a refused report (durably) with the check it failed and why.</summary>
    public void Flag(ulong nodePrincipal, EpochReport report, ReportFailure failure, long receivedUnixNs)
    {
        lock (_gate)
        {
            using var insert = _db.CreateCommand();
            insert.CommandText = "INSERT INTO flagged(node_principal, epoch, received_ns, check_name, reason, report) VALUES($node, $epoch, $at, $check, $reason, $report)";
            insert.Parameters.AddWithValue("$node", unchecked((long)nodePrincipal));
            insert.Parameters.AddWithValue("$epoch", report.Epoch);
            insert.Parameters.AddWithValue("$at", receivedUnixNs);
            insert.Parameters.AddWithValue("$check", failure.CheckName);
            insert.Parameters.AddWithValue("$reason", failure.Reason);
            insert.Parameters.AddWithValue("$report", JsonSerializer.Serialize(report));
            insert.ExecuteNonQuery();
        }
    }

    /// <summary>The node's accepted reports, oldest first (at most <see cref="EpochReportLimits.ServedReportsMax"/>, from its first).</summary>
    public IReadOnlyList<EpochReport> Accepted(ulong nodePrincipal)
    {
        lock (_gate)
        {
            using var select = _db.CreateCommand();
            select.CommandText = "SELECT report FROM reports WHERE node_principal = $node ORDER BY epoch LIMIT $limit";
            select.Parameters.AddWithValue("$node", unchecked((long)nodePrincipal));
            select.Parameters.AddWithValue("$limit", EpochReportLimits.ServedReportsMax);
            using var reader = select.ExecuteReader();
            var list = new List<EpochReport>();
            while (reader.Read()) list.Add(Parse(reader.GetString(0), _db.DataSource));
            return list;
        }
    }

    /// <summary>The node's flagged submissions, oldest first (the newest <see cref="EpochReportLimits.ServedReportsMax"/>).</summary>
    public IReadOnlyList<FlaggedReport> Flagged(ulong nodePrincipal)
    {
        lock (_gate)
        {
            using var select = _db.CreateCommand();
            select.CommandText = """
                SELECT received_ns, epoch, check_name, reason, report FROM
                  (SELECT * FROM flagged WHERE node_principal = $node ORDER BY id DESC LIMIT $limit) ORDER BY id
                """;
            select.Parameters.AddWithValue("$node", unchecked((long)nodePrincipal));
            select.Parameters.AddWithValue("$limit", EpochReportLimits.ServedReportsMax);
            using var reader = select.ExecuteReader();
            var list = new List<FlaggedReport>();
            while (reader.Read())
                list.Add(new FlaggedReport
                {
                    ReceivedAtUnixNs = reader.GetInt64(0), Epoch = reader.GetInt64(1), Check = reader.GetString(2), Reason = reader.GetString(3),
                    Report = Parse(reader.GetString(4), _db.DataSource),
                });
            return list;
        }
    }

    public void Dispose()
    {
        lock (_gate) _db.Dispose();
    }

    private static EpochReport Parse(string json, string path) =>
        JsonSerializer.Deserialize<EpochReport>(json) ?? throw new InvalidDataException($"The report store {path} holds a report that is not JSON.");

}
