using Microsoft.Data.Sqlite;

namespace ComputeGrid.Server;

/// <summary>
/// The server's small SQLite stores of facts that must survive a crash (dead letters, node reports, auto-claim
/// thresholds), opened one way: owner-only file, WAL with <c>synchronous=FULL</c>, an integrity check before use, the
/// schema created if absent and its version checked. A store that fails any of it refuses to start.
/// </summary>
internal static class DurableSqlite
{
    /// <summary>
    /// Opens (creating if absent) <paramref name="path"/>, applies <paramref name="schema"/> (idempotent DDL) and checks
    /// that its <c>meta</c> table says schema <paramref name="version"/>; <paramref name="what"/> names the store in errors.
    /// </summary>
    /// <exception cref="InvalidDataException">The file is corrupt, cannot be opened, or has another schema.</exception>
    public static SqliteConnection Open(string path, string what, string schema, string version = "1")
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        bool created = !File.Exists(path);
        var db = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Mode = SqliteOpenMode.ReadWriteCreate, Pooling = false, DefaultTimeout = 30 }.ToString());
        try
        {
            db.Open();
            if (created && !OperatingSystem.IsWindows()) File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            Exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=30000;");
            string check = Scalar(db, "PRAGMA quick_check") as string ?? "no answer";
            if (check != "ok") throw new InvalidDataException($"The {what} {path} is corrupt ({check}); restore it from a backup.");
            Exec(db, "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);" + schema
                + $"INSERT OR IGNORE INTO meta(key, value) VALUES('schema', '{version}');");
            if (Scalar(db, "SELECT value FROM meta WHERE key='schema'") as string != version)
                throw new InvalidDataException($"The {what} {path} has an unknown schema; this version reads schema {version}.");
            return db;
        }
        catch (SqliteException e)
        {
            db.Dispose();
            throw new InvalidDataException($"The {what} {path} cannot be opened: {e.Message}", e);
        }
        catch
        {
            db.Dispose();
            throw;
        }
    }

    /// <summary>Runs a statement.</summary>
    public static void Exec(SqliteConnection db, string sql)
    {
        using var c = db.CreateCommand();
        c.CommandText = sql;
        c.ExecuteNonQuery();
    }

    /// <summary>Runs a query of one value.</summary>
    public static object? Scalar(SqliteConnection db, string sql)
    {
        using var c = db.CreateCommand();
        c.CommandText = sql;
        return c.ExecuteScalar();
    }
}
