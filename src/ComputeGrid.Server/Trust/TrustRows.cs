using System.Buffers;
using System.Buffers.Binary;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Data.Sqlite;

[assembly: System.Runtime.CompilerServices.InternalsVisibleTo("ComputeGrid.Server.Tests")]

namespace ComputeGrid.Server.Trust;

/// <summary>
/// A table of the trust store as the checks see it: its columns in a fixed order (the row's key first), each row
/// carrying a <c>checksum</c> column over them.
/// </summary>
internal sealed class TrustTable
{
    public TrustTable(string name, bool numbered, params string[] columns)
    {
        Name = name;
        Numbered = numbered;
        Columns = columns;
        string list = string.Join(", ", columns);
        Select = $"SELECT {list}, checksum FROM {name}";
        SelectOne = $"{Select} WHERE {columns[0]}=$key";
        Insert = $"INSERT INTO {name}({list}, checksum) VALUES({string.Join(", ", columns.Select((_, i) => "$c" + i))}, $checksum)";
        Update = $"UPDATE {name} SET {string.Join(", ", columns.Skip(1).Select((c, i) => $"{c}=$c{i + 1}"))}, checksum=$checksum WHERE {columns[0]}=$c0";
    }

    /// <summary>The table's name.</summary>
    public string Name { get; }

    /// <summary>True when the key is an AUTOINCREMENT id the store assigns (the digest keeps its high-water mark).</summary>
    public bool Numbered { get; }

    /// <summary>The columns, key first, in the order the checksum covers them.</summary>
    public string[] Columns { get; }

    public string Select { get; }

    public string SelectOne { get; }

    public string Insert { get; }

    public string Update { get; }

    /// <summary>The index of a column (a programmer error when absent).</summary>
    public int Index(string column)
    {
        int i = Array.IndexOf(Columns, column);
        if (i < 0) throw new ArgumentException($"{Name} has no column {column}.", nameof(column));
        return i;
    }
}

/// <summary>A row's values (in its table's column order), readable and writable by column name.</summary>
internal sealed class TrustRow(TrustTable table, object?[] values)
{
    public TrustTable Table { get; } = table;

    public object?[] Values { get; } = values;

    public object? this[string column]
    {
        get => Values[Table.Index(column)];
        set => Values[Table.Index(column)] = value;
    }

    public long Long(string column) => (long)this[column]!;

    public long? NullableLong(string column) => this[column] is long v ? v : null;

    public string Text(string column) => (string)this[column]!;

    public string? NullableText(string column) => this[column] as string;

    public byte[] Blob(string column) => (byte[])this[column]!;
}

/// <summary>
/// What a table's rows add up to: how many there are, the XOR of their checksums and (for a numbered table) the
/// highest id ever assigned. Kept in <c>table_digests</c> (each row checksummed too) and changed in the same transaction
/// as the rows, so a row that vanished, appeared or was replaced by an older version of itself (whose own checksum is
/// valid) is caught when the table is read.
/// </summary>
internal sealed class TableDigest
{
    public long Rows;
    public byte[] Xor = new byte[TrustRows.ChecksumBytes];
    public long HighWater;
    public bool Dirty;

    public void Add(ReadOnlySpan<byte> checksum)
    {
        Rows = checked(Rows + 1);
        Mix(checksum);
    }

    public void Mix(ReadOnlySpan<byte> checksum)
    {
        for (int i = 0; i < Xor.Length; i++) Xor[i] ^= checksum[i];
    }

    public bool SameAs(TableDigest other) => Rows == other.Rows && Xor.AsSpan().SequenceEqual(other.Xor);
}

/// <summary>
/// The trust store's row checks: the tables, the canonical encoding a row's checksum covers (the first 16 bytes of
/// SHA-256 over a version tag, the table's name and each value with its type), the digests, and the one-line errors a
/// failed check raises (<see cref="InvalidDataException"/>: the store refuses to open rather than guess).
/// </summary>
internal static class TrustRows
{
    /// <summary>The bytes of a row checksum.</summary>
    public const int ChecksumBytes = 16;

    /// <summary>The meta row holding the SHA-256 of the schema (the <c>sqlite_schema</c> rows).</summary>
    public const string SchemaHashKey = "schema_sha256";

    public static readonly TrustTable Meta = new("meta", numbered: false, "key", "value");

    public static readonly TrustTable Principals = new("principals", numbered: true, "id", "kind", "name", "parent", "region", "created_ms", "created_by", "disabled_ms");

    public static readonly TrustTable ApiKeys = new("api_keys", numbered: false, "key_id", "principal", "name", "scopes", "secret_sha256", "created_ms", "created_by", "revoked_ms", "last_used_ms");

    public static readonly TrustTable Nodes = new("nodes", numbered: false, "principal", "node_id", "provider", "public_key", "price_ceiling", "revoked_ms");

    public static readonly TrustTable OperatorActions = new("operator_actions", numbered: true, "seq", "at_ms", "operator", "action", "subject", "amount", "asset", "transfer_id");

    /// <summary>Every checked table, in the order they are read.</summary>
    public static readonly TrustTable[] All = [Meta, Principals, ApiKeys, Nodes, OperatorActions];

    /// <summary>The digests' own table (its rows are checksummed like any other, with <see cref="DigestColumns"/>).</summary>
    public const string DigestTable = "table_digests";

    private static readonly string[] DigestColumns = ["name", "row_count", "xor", "high_water"];

    private static ReadOnlySpan<byte> Tag => "computegrid.trust.row.v1"u8;

    /// <summary>The checksum of a row of <paramref name="table"/> with <paramref name="values"/> (its columns in order).</summary>
    public static byte[] Checksum(string table, ReadOnlySpan<object?> values)
    {
        var w = new ArrayBufferWriter<byte>(256);
        w.Write(Tag);
        WriteValue(w, table);
        foreach (object? v in values) WriteValue(w, v);
        return SHA256.HashData(w.WrittenSpan)[..ChecksumBytes];
    }

    // One value: a type byte, then a fixed-size integer or a length-prefixed text or blob. Types are part of the encoding,
    // so a value that comes back as another type (a flipped serial type) does not match.
    private static void WriteValue(ArrayBufferWriter<byte> w, object? value)
    {
        switch (value)
        {
            case null or DBNull:
                w.Write([(byte)0]);
                break;
            case long l:
                Span<byte> n = stackalloc byte[9];
                n[0] = 1;
                BinaryPrimitives.WriteInt64LittleEndian(n[1..], l);
                w.Write(n);
                break;
            case double d:
                Span<byte> f = stackalloc byte[9];
                f[0] = 2;
                BinaryPrimitives.WriteInt64LittleEndian(f[1..], BitConverter.DoubleToInt64Bits(d));
                w.Write(f);
                break;
            case string s:
                WriteBytes(w, 3, Encoding.UTF8.GetBytes(s));
                break;
            case byte[] b:
                WriteBytes(w, 4, b);
                break;
            default:
                throw new ArgumentException($"A trust store value is a long, text, blob or null; got {value.GetType().Name}.", nameof(value));
        }
    }

    private static void WriteBytes(ArrayBufferWriter<byte> w, byte type, ReadOnlySpan<byte> bytes)
    {
        Span<byte> head = stackalloc byte[5];
        head[0] = type;
        BinaryPrimitives.WriteInt32LittleEndian(head[1..], bytes.Length);
        w.Write(head);
        w.Write(bytes);
    }

    /// <summary>The SHA-256 (hex) of the database's schema: every <c>sqlite_schema</c> row's type, name, table and SQL text.</summary>
    public static string SchemaHash(SqliteConnection db, SqliteTransaction tx)
    {
        using var cmd = Command(db, tx, "SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY type, name");
        using var r = cmd.ExecuteReader();
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var values = new object?[4];
        while (r.Read())
        {
            for (int i = 0; i < 4; i++) values[i] = r.GetValue(i);
            hash.AppendData(Checksum("sqlite_schema", values));
        }
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    /// <summary>
    /// Reads every row of <paramref name="table"/>, checking each row's checksum and the rows together against the
    /// table's digest. Throws <see cref="InvalidDataException"/> (one line) on the first mismatch.
    /// </summary>
    public static List<TrustRow> ReadAll(SqliteConnection db, SqliteTransaction tx, TrustTable table, TableDigest expected, string path)
    {
        var rows = new List<TrustRow>();
        var found = new TableDigest();
        long maxId = 0;
        using (var cmd = Command(db, tx, table.Select))
        using (var r = cmd.ExecuteReader())
            while (r.Read())
            {
                TrustRow row = Read(r, table, path);
                found.Add(Checksum(table.Name, row.Values));
                if (table.Numbered) maxId = Math.Max(maxId, row.Values[0] as long? ?? 0);
                rows.Add(row);
            }
        if (!found.SameAs(expected))
            throw Corrupt(path, $"table {table.Name}: its {found.Rows} rows do not add up to its digest ({expected.Rows} rows recorded): a row was lost, added or replaced by an older version");
        if (table.Numbered && maxId > expected.HighWater)
            throw Corrupt(path, $"table {table.Name}: id {maxId} is above the highest id the store assigned ({expected.HighWater})");
        return rows;
    }

    /// <summary>The row of <paramref name="table"/> with key <paramref name="key"/>, its checksum checked, or null when there is none.</summary>
    public static TrustRow? ReadOne(SqliteConnection db, SqliteTransaction? tx, TrustTable table, object key, string path)
    {
        using var cmd = Command(db, tx, table.SelectOne);
        cmd.Parameters.AddWithValue("$key", key);
        using var r = cmd.ExecuteReader();
        return r.Read() ? Read(r, table, path) : null;
    }

    /// <summary>The current row of a reader positioned on a <see cref="TrustTable.Select"/> row, its checksum checked.</summary>
    public static TrustRow Read(SqliteDataReader r, TrustTable table, string path)
    {
        var values = new object?[table.Columns.Length];
        for (int i = 0; i < values.Length; i++) values[i] = r.IsDBNull(i) ? null : r.GetValue(i);
        object stored = r.GetValue(values.Length);
        if (stored is not byte[] checksum || !checksum.AsSpan().SequenceEqual(Checksum(table.Name, values)))
            throw Corrupt(path, $"table {table.Name}, row {Describe(values[0])}: checksum mismatch");
        return new TrustRow(table, values);
    }

    /// <summary>The digests of every checked table, each digest row's checksum checked; one missing is corruption.</summary>
    public static Dictionary<string, TableDigest> ReadDigests(SqliteConnection db, SqliteTransaction tx, string path)
    {
        var digests = new Dictionary<string, TableDigest>(StringComparer.Ordinal);
        using (var cmd = Command(db, tx, $"SELECT {string.Join(", ", DigestColumns)}, checksum FROM {DigestTable}"))
        using (var r = cmd.ExecuteReader())
            while (r.Read())
            {
                var values = new object?[DigestColumns.Length];
                for (int i = 0; i < values.Length; i++) values[i] = r.IsDBNull(i) ? null : r.GetValue(i);
                if (r.GetValue(values.Length) is not byte[] checksum || !checksum.AsSpan().SequenceEqual(Checksum(DigestTable, values))
                    || values[0] is not string name || values[1] is not long rows || values[2] is not byte[] { Length: ChecksumBytes } xor || values[3] is not long high)
                    throw Corrupt(path, $"table {DigestTable}, row {Describe(values[0])}: checksum mismatch");
                digests[name] = new TableDigest { Rows = rows, Xor = xor, HighWater = high };
            }
        foreach (TrustTable t in All)
            if (!digests.ContainsKey(t.Name)) throw Corrupt(path, $"table {DigestTable}, row {t.Name}: missing");
        return digests;
    }

    /// <summary>Writes a digest row (insert or update) with its checksum.</summary>
    public static void WriteDigest(SqliteConnection db, SqliteTransaction tx, string table, TableDigest d)
    {
        object?[] values = [table, d.Rows, d.Xor, d.HighWater];
        using var cmd = Command(db, tx, $"INSERT INTO {DigestTable}(name, row_count, xor, high_water, checksum) VALUES($c0, $c1, $c2, $c3, $checksum) " +
            "ON CONFLICT(name) DO UPDATE SET row_count=excluded.row_count, xor=excluded.xor, high_water=excluded.high_water, checksum=excluded.checksum");
        for (int i = 0; i < values.Length; i++) cmd.Parameters.AddWithValue("$c" + i, values[i]);
        cmd.Parameters.AddWithValue("$checksum", Checksum(DigestTable, values));
        cmd.ExecuteNonQuery();
        d.Dirty = false;
    }

    /// <summary>The corruption error: one line naming the file and what failed.</summary>
    public static InvalidDataException Corrupt(string path, string what) =>
        new($"The trust store {path} is corrupt: {what}; restore it from a backup.".ReplaceLineEndings(" "));

    // A row's key for an error message: printable characters only (a corrupt key may hold anything), at most 64.
    private static string Describe(object? key)
    {
        string text = key switch
        {
            null => "(null)",
            long l => l.ToString(CultureInfo.InvariantCulture),
            byte[] b => Convert.ToHexStringLower(b),
            _ => Convert.ToString(key, CultureInfo.InvariantCulture) ?? "?",
        };
        var sb = new StringBuilder(Math.Min(text.Length, 64));
        foreach (char c in text.AsSpan(0, Math.Min(text.Length, 64))) sb.Append(char.IsControl(c) || char.IsWhiteSpace(c) ? '?' : c);
        return sb.ToString();
    }

    public static SqliteCommand Command(SqliteConnection db, SqliteTransaction? tx, string sql)
    {
        var cmd = db.CreateCommand();
        cmd.CommandText = sql;
        cmd.Transaction = tx;
        return cmd;
    }
}

/// <summary>
/// One write transaction of the trust store (<c>BEGIN IMMEDIATE</c>: the write lock is taken first, so the rows and
/// digests it reads are the ones it changes, even with another process writing): rows are inserted and updated with
/// their checksums, each update re-reads and checks the row as it is on disk, and the digests of the tables it touched
/// are written before it commits. Disposed without <see cref="Commit"/>, it rolls back.
/// </summary>
internal sealed class TrustWrite(SqliteConnection db, string path) : IDisposable
{
    private readonly SqliteTransaction _tx = db.BeginTransaction(deferred: false);
    private readonly Dictionary<string, TableDigest> _digests = new(StringComparer.Ordinal);
    private Dictionary<string, TableDigest>? _stored;

    public SqliteTransaction Transaction => _tx;

    /// <summary>The next id of a numbered table (one above the highest ever assigned, so an id is never reused).</summary>
    public long NextId(TrustTable table)
    {
        if (!table.Numbered) throw new ArgumentException($"{table.Name} is not numbered.", nameof(table));
        TableDigest d = Digest(table);
        d.HighWater = checked(d.HighWater + 1);
        d.Dirty = true;
        return d.HighWater;
    }

    /// <summary>Inserts a row (<paramref name="values"/> in the table's column order) with its checksum.</summary>
    public void Insert(TrustTable table, params object?[] values)
    {
        if (values.Length != table.Columns.Length) throw new ArgumentException($"{table.Name} has {table.Columns.Length} columns.", nameof(values));
        byte[] checksum = TrustRows.Checksum(table.Name, values);
        using var cmd = TrustRows.Command(db, _tx, table.Insert);
        for (int i = 0; i < values.Length; i++) cmd.Parameters.AddWithValue("$c" + i, values[i] ?? DBNull.Value);
        cmd.Parameters.AddWithValue("$checksum", checksum);
        cmd.ExecuteNonQuery();
        TableDigest d = Digest(table);
        d.Add(checksum);
        d.Dirty = true;
    }

    /// <summary>
    /// Changes the row with key <paramref name="key"/> as it is on disk (its checksum checked first): <paramref name="change"/>
    /// edits it and says whether anything changed; the row is rewritten with its new checksum. Returns the row as it now is.
    /// </summary>
    /// <exception cref="InvalidDataException">The row is missing or fails its checksum.</exception>
    public TrustRow Update(TrustTable table, object key, Func<TrustRow, bool> change)
    {
        TrustRow row = TrustRows.ReadOne(db, _tx, table, key, path)
            ?? throw TrustRows.Corrupt(path, $"table {table.Name}, row {key}: missing");
        byte[] before = TrustRows.Checksum(table.Name, row.Values);
        if (!change(row)) return row;
        byte[] after = TrustRows.Checksum(table.Name, row.Values);
        using var cmd = TrustRows.Command(db, _tx, table.Update);
        for (int i = 0; i < row.Values.Length; i++) cmd.Parameters.AddWithValue("$c" + i, row.Values[i] ?? DBNull.Value);
        cmd.Parameters.AddWithValue("$checksum", after);
        cmd.ExecuteNonQuery();
        TableDigest d = Digest(table);
        d.Mix(before);
        d.Mix(after);
        d.Dirty = true;
        return row;
    }

    /// <summary>Writes the changed digests and commits.</summary>
    public void Commit()
    {
        foreach (var (name, d) in _digests)
            if (d.Dirty) TrustRows.WriteDigest(db, _tx, name, d);
        _tx.Commit();
    }

    public void Dispose() => _tx.Dispose();

    private TableDigest Digest(TrustTable table)
    {
        if (_digests.TryGetValue(table.Name, out TableDigest? d)) return d;
        _stored ??= TrustRows.ReadDigests(db, _tx, path);
        return _digests[table.Name] = _stored[table.Name];
    }
}
