using System.Collections.Concurrent;
using System.Globalization;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Data.Sqlite;

namespace ComputeGrid.Server.Trust;

/// <summary>An API key as it is listed: never its secret.</summary>
/// <param name="KeyId">The key's public id (the 16 hex digits after <c>cg_</c>).</param>
/// <param name="Principal">Whose key it is.</param>
/// <param name="Name">A name its owner chose (<c>laptop</c>, <c>ci</c>).</param>
/// <param name="Scopes">What it may do.</param>
/// <param name="Created">When it was made.</param>
/// <param name="CreatedBy">Who made it (the owner itself, or an operator).</param>
/// <param name="Revoked">When it was revoked, or null.</param>
/// <param name="LastUsed">When it last authenticated a request (recorded within seconds), or null.</param>
public sealed record ApiKeyInfo(string KeyId, ulong Principal, string Name, Scopes Scopes, DateTimeOffset Created, ulong? CreatedBy, DateTimeOffset? Revoked, DateTimeOffset? LastUsed);

/// <summary>A node an operator admitted for a provider: its Ed25519 public key and the most it may charge.</summary>
/// <param name="Principal">The node's principal id (its revenue account is derived from it).</param>
/// <param name="NodeId">The node's name (letters, digits, '-', '_'), unique.</param>
/// <param name="Provider">The provider that owns the node.</param>
/// <param name="PublicKey">The raw 32-byte Ed25519 public key the node proves itself with.</param>
/// <param name="PriceCeilingMicroUsdPer1kTokens">The highest inference price the node may register with.</param>
/// <param name="Revoked">When the admission was revoked (the node's sessions end at once), or null.</param>
public sealed record NodeAdmission(ulong Principal, string NodeId, ulong Provider, byte[] PublicKey, long PriceCeilingMicroUsdPer1kTokens, DateTimeOffset? Revoked);

/// <summary>An operator action that created money or changed who may do what, recorded with who did it.</summary>
public sealed record OperatorAction(long Sequence, DateTimeOffset At, ulong Operator, string Action, string Subject, long? Amount, uint? Asset, string? TransferId);

/// <summary>Why a presented credential was not accepted.</summary>
public enum AuthOutcome
{
    /// <summary>Accepted.</summary>
    Ok,
    /// <summary>It does not have the shape of a key.</summary>
    Malformed,
    /// <summary>No key has that id, or its secret does not match.</summary>
    Unknown,
    /// <summary>The key was revoked.</summary>
    Revoked,
    /// <summary>The key's principal was disabled.</summary>
    Disabled,
}

/// <summary>A refused change to the trust store (a name taken, a quota reached, an unknown principal).</summary>
public sealed class TrustStoreException(TrustError error, string message) : Exception(message)
{
    /// <summary>What went wrong.</summary>
    public TrustError Error { get; } = error;
}

/// <summary>What a refused change ran into.</summary>
public enum TrustError
{
    /// <summary>The name is taken.</summary>
    NameTaken,
    /// <summary>No such principal, key or node.</summary>
    NotFound,
    /// <summary>A per-principal quota is reached.</summary>
    QuotaReached,
    /// <summary>The request breaks a rule (scopes the kind cannot have, a bad name).</summary>
    Invalid,
}

/// <summary>
/// Principals, API keys, admitted nodes and the operators' action log, in SQLite (<c>DATA/trust.db</c>, WAL,
/// synchronous=FULL: a key is on disk before it is shown). Every row is also in memory, so authenticating a request
/// touches no disk: a key is found by its id and its secret hash compared in constant time. Changes made by another
/// process (<c>computegrid operator add</c> on the same folder) are picked up by <see cref="Refresh"/>, which the
/// server calls every second; changes made through this instance are visible at once.
/// </summary>
/// <remarks>
/// SQLite checks its pages, not what a row says: a flipped byte inside a key's secret hash or a principal's kind
/// would be read as a valid value. So every row carries a checksum over its values (<see cref="TrustRows"/>), every
/// table a digest of its rows (count, XOR of their checksums, highest id assigned: a lost row, or an older version
/// of a row put back, does not add up), and the meta table the hash of the schema. Opening runs SQLite's
/// <c>PRAGMA integrity_check</c>, and opening and every reload check the rows, digests and schema hash; any mismatch
/// is an <see cref="InvalidDataException"/> whose message is one line naming the file, the table and the row: the
/// store refuses to open rather than guess. After each change the WAL is checkpointed into the main file, so at rest
/// the WAL is empty and only a change torn by a crash (its commit frame incomplete: SQLite's frame checksums discard
/// it) can be lost, never an acknowledged one. Ids come from the digest's high-water mark, so an id is never reused.
/// </remarks>
public sealed class TrustStore : IDisposable
{
    /// <summary>The file name in the data folder.</summary>
    public const string FileName = "trust.db";

    private const int SchemaVersion = 2;

    private readonly SqliteConnection _db;
    private readonly string _path;
    private readonly Lock _lock = new();
    private readonly TimeProvider _time;
    private readonly ServerLimits _limits;
    private readonly ConcurrentDictionary<ulong, Principal> _principals = new();
    private readonly ConcurrentDictionary<(PrincipalKind, string), ulong> _byName = new();
    private readonly ConcurrentDictionary<string, KeyEntry> _keys = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, KeyEntry>.AlternateLookup<ReadOnlySpan<char>> _keysBySpan;
    private readonly ConcurrentDictionary<string, NodeAdmission> _nodes = new(StringComparer.Ordinal);
    private long _dataVersion;
    private bool _disposed;

    /// <summary>One key in memory: what is listed, the hash its secret is checked against, the reusable ticket.</summary>
    internal sealed class KeyEntry(ApiKeyInfo info, byte[] secretHash)
    {
        public ApiKeyInfo Info { get; set; } = info;
        public byte[] SecretHash { get; } = secretHash;
        public long LastUsedMs;
        public long FlushedLastUsedMs;
        public AuthenticationTicket? Ticket;
    }

    private TrustStore(SqliteConnection db, string path, TimeProvider time, ServerLimits limits)
    {
        _db = db;
        _path = path;
        _time = time;
        _limits = limits;
        _keysBySpan = _keys.GetAlternateLookup<ReadOnlySpan<char>>();
    }

    /// <summary>
    /// Whether each change is followed by a checkpoint of the WAL into the main file (true). Tests turn it off to leave
    /// committed changes in the WAL, as a crash between a commit and its checkpoint does.
    /// </summary>
    internal bool CheckpointAfterWrite { get; set; } = true;

    /// <summary>The path of the store in <paramref name="dataDirectory"/>.</summary>
    public static string PathIn(string dataDirectory) => Path.Combine(dataDirectory, FileName);

    /// <summary>Opens (creating if absent) the store of <paramref name="dataDirectory"/>.</summary>
    /// <exception cref="InvalidDataException">
    /// The database fails its integrity check, a row its checksum, a table its digest, the schema its hash, or the schema
    /// version is unknown. The message is one line naming the file (and the table and row).
    /// </exception>
    public static TrustStore Open(string dataDirectory, TimeProvider? time = null, ServerLimits? limits = null)
    {
        Directory.CreateDirectory(dataDirectory);
        string path = PathIn(dataDirectory);
        bool created = !File.Exists(path);
        var db = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Mode = SqliteOpenMode.ReadWriteCreate, Pooling = false, DefaultTimeout = 30 }.ToString());
        try
        {
            db.Open();
            if (created && !OperatingSystem.IsWindows()) File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            // secure_delete: a replaced row's old bytes are zeroed, so no older version of a row lies in a free block
            // for a corrupted cell pointer to bring back.
            Exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; PRAGMA busy_timeout=30000; PRAGMA secure_delete=ON;");
            string check = Scalar<string>(db, "PRAGMA integrity_check(1)") ?? "no answer";
            if (check != "ok") throw TrustRows.Corrupt(path, $"SQLite's integrity check: {check}");
            Migrate(db, path);
            var store = new TrustStore(db, path, time ?? TimeProvider.System, limits ?? new ServerLimits());
            store.LoadAll();
            store.Checkpoint();
            return store;
        }
        catch (SqliteException e)
        {
            db.Dispose();
            throw new InvalidDataException($"The trust store {path} cannot be opened: {e.Message}".ReplaceLineEndings(" "), e);
        }
        catch
        {
            db.Dispose();
            throw;
        }
    }

    // Version 1 (no checksums) is created first and then migrated, so a new store and an upgraded one are the same.
    internal const string SchemaV1 = """
        CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE principals(
            id INTEGER PRIMARY KEY AUTOINCREMENT, kind INTEGER NOT NULL, name TEXT NOT NULL, parent INTEGER REFERENCES principals(id),
            region TEXT, created_ms INTEGER NOT NULL, created_by INTEGER, disabled_ms INTEGER, UNIQUE(kind, name));
        CREATE TABLE api_keys(
            key_id TEXT PRIMARY KEY, principal INTEGER NOT NULL REFERENCES principals(id), name TEXT NOT NULL, scopes INTEGER NOT NULL,
            secret_sha256 BLOB NOT NULL, created_ms INTEGER NOT NULL, created_by INTEGER, revoked_ms INTEGER, last_used_ms INTEGER);
        CREATE INDEX api_keys_principal ON api_keys(principal);
        CREATE TABLE nodes(
            principal INTEGER PRIMARY KEY REFERENCES principals(id), node_id TEXT NOT NULL UNIQUE, provider INTEGER NOT NULL REFERENCES principals(id),
            public_key BLOB NOT NULL, price_ceiling INTEGER NOT NULL, revoked_ms INTEGER);
        CREATE TABLE operator_actions(
            seq INTEGER PRIMARY KEY AUTOINCREMENT, at_ms INTEGER NOT NULL, operator INTEGER NOT NULL, action TEXT NOT NULL, subject TEXT NOT NULL,
            amount INTEGER, asset INTEGER, transfer_id TEXT);
        INSERT INTO meta(key, value) VALUES('schema', '1');
        """;

    private static void Migrate(SqliteConnection db, string path)
    {
        using var tx = db.BeginTransaction(deferred: false);
        bool Exists(string table)
        {
            using var cmd = TrustRows.Command(db, tx, "SELECT count(*) FROM sqlite_schema WHERE type='table' AND name=$n");
            cmd.Parameters.AddWithValue("$n", table);
            return (long)cmd.ExecuteScalar()! > 0;
        }

        if (!Exists(TrustRows.Meta.Name))
            using (var cmd = TrustRows.Command(db, tx, SchemaV1)) cmd.ExecuteNonQuery();
        if (Exists(TrustRows.DigestTable))
        {
            // Version 2 on: the version row is checked before it is believed.
            string? version = TrustRows.ReadOne(db, tx, TrustRows.Meta, "schema", path)?.NullableText("value");
            if (version != SchemaVersion.ToString(CultureInfo.InvariantCulture))
                throw new InvalidDataException($"The trust store {path} has schema {version ?? "(none)"}; this version reads schema {SchemaVersion}.");
            return;
        }
        string? v1;
        using (var cmd = TrustRows.Command(db, tx, "SELECT value FROM meta WHERE key='schema'")) v1 = cmd.ExecuteScalar() as string;
        if (v1 != "1") throw new InvalidDataException($"The trust store {path} has schema {v1 ?? "(none)"}; this version reads schema {SchemaVersion}.");
        MigrateToV2(db, tx);
        tx.Commit();
    }

    // 1 -> 2, in one transaction: a checksum column in every table, filled for the rows there are; the digests; the
    // schema's hash. The high-water marks start at SQLite's own (sqlite_sequence), so no id is issued twice.
    private static void MigrateToV2(SqliteConnection db, SqliteTransaction tx)
    {
        void Exec(string sql)
        {
            using var cmd = TrustRows.Command(db, tx, sql);
            cmd.ExecuteNonQuery();
        }

        foreach (TrustTable t in TrustRows.All) Exec($"ALTER TABLE {t.Name} ADD COLUMN checksum BLOB NOT NULL DEFAULT x''");
        Exec($"CREATE TABLE {TrustRows.DigestTable}(name TEXT PRIMARY KEY, row_count INTEGER NOT NULL, xor BLOB NOT NULL, high_water INTEGER NOT NULL, checksum BLOB NOT NULL)");
        Exec($"UPDATE meta SET value='{SchemaVersion}' WHERE key='schema'");
        string schemaHash = TrustRows.SchemaHash(db, tx);
        using (var cmd = TrustRows.Command(db, tx, "INSERT INTO meta(key, value) VALUES($k, $v)"))
        {
            cmd.Parameters.AddWithValue("$k", TrustRows.SchemaHashKey);
            cmd.Parameters.AddWithValue("$v", schemaHash);
            cmd.ExecuteNonQuery();
        }
        foreach (TrustTable t in TrustRows.All)
        {
            var rows = new List<object?[]>();
            using (var cmd = TrustRows.Command(db, tx, $"SELECT {string.Join(", ", t.Columns)} FROM {t.Name}"))
            using (var r = cmd.ExecuteReader())
                while (r.Read())
                {
                    var values = new object?[t.Columns.Length];
                    for (int i = 0; i < values.Length; i++) values[i] = r.IsDBNull(i) ? null : r.GetValue(i);
                    rows.Add(values);
                }
            var digest = new TableDigest();
            foreach (object?[] values in rows)
            {
                byte[] checksum = TrustRows.Checksum(t.Name, values);
                using var cmd = TrustRows.Command(db, tx, $"UPDATE {t.Name} SET checksum=$c WHERE {t.Columns[0]}=$k");
                cmd.Parameters.AddWithValue("$c", checksum);
                cmd.Parameters.AddWithValue("$k", values[0]);
                cmd.ExecuteNonQuery();
                digest.Add(checksum);
                if (t.Numbered) digest.HighWater = Math.Max(digest.HighWater, (long)values[0]!);
            }
            if (t.Numbered)
            {
                using var cmd = TrustRows.Command(db, tx, "SELECT seq FROM sqlite_sequence WHERE name=$n");
                cmd.Parameters.AddWithValue("$n", t.Name);
                if (cmd.ExecuteScalar() is long seq) digest.HighWater = Math.Max(digest.HighWater, seq);
            }
            TrustRows.WriteDigest(db, tx, t.Name, digest);
        }
    }

    // ================================================================== reads (memory only)

    /// <summary>True when there is at least one operator (enabled or not).</summary>
    public bool HasOperators => _principals.Values.Any(p => p.Kind == PrincipalKind.Operator);

    /// <summary>A principal by id, or null.</summary>
    public Principal? Find(ulong id) => _principals.GetValueOrDefault(id);

    /// <summary>A principal by kind and name, or null.</summary>
    public Principal? Find(PrincipalKind kind, string name) => _byName.TryGetValue((kind, name), out ulong id) ? Find(id) : null;

    /// <summary>Principals of <paramref name="kind"/> (or every kind) with ids above <paramref name="after"/>, in id order.</summary>
    public IReadOnlyList<Principal> List(PrincipalKind? kind, ulong after, int limit) =>
        _principals.Values.Where(p => p.Id > after && (kind is null || p.Kind == kind)).OrderBy(p => p.Id).Take(limit).ToList();

    /// <summary>The keys of a principal, newest first.</summary>
    public IReadOnlyList<ApiKeyInfo> KeysOf(ulong principal) =>
        _keys.Values.Where(k => k.Info.Principal == principal).Select(WithLastUse).OrderByDescending(k => k.Created).ThenBy(k => k.KeyId).ToList();

    /// <summary>A key by id (revoked ones included), or null.</summary>
    public ApiKeyInfo? FindKey(string keyId) => _keys.TryGetValue(keyId, out KeyEntry? e) ? WithLastUse(e) : null;

    /// <summary>An admitted node by its node id (revoked ones included), or null.</summary>
    public NodeAdmission? FindNode(string nodeId) => _nodes.GetValueOrDefault(nodeId);

    /// <summary>The nodes admitted for a provider (or every provider), by node id.</summary>
    public IReadOnlyList<NodeAdmission> Nodes(ulong? provider = null) =>
        _nodes.Values.Where(n => provider is null || n.Provider == provider).OrderBy(n => n.NodeId, StringComparer.Ordinal).ToList();

    /// <summary>How many principals an operator has created.</summary>
    public int CreatedBy(ulong operatorId) => _principals.Values.Count(p => p.CreatedBy == operatorId);

    private static ApiKeyInfo WithLastUse(KeyEntry e)
    {
        long ms = Volatile.Read(ref e.LastUsedMs);
        return ms > 0 ? e.Info with { LastUsed = DateTimeOffset.FromUnixTimeMilliseconds(ms) } : e.Info;
    }

    // ================================================================== authentication (the hot path)

    /// <summary>
    /// Checks a presented API key: found by its id, its secret compared in constant time, its principal enabled. Records
    /// its use (in memory at once; on disk by <see cref="FlushLastUse"/>). Allocates nothing.
    /// </summary>
    internal AuthOutcome Authenticate(ReadOnlySpan<char> key, out KeyEntry? entry, out Principal? principal)
    {
        entry = null;
        principal = null;
        if (!ApiKeyFormat.TryParse(key, out var keyId, out var secret)) return AuthOutcome.Malformed;
        if (!_keysBySpan.TryGetValue(keyId, out KeyEntry? found) || !ApiKeyFormat.Matches(secret, found.SecretHash)) return AuthOutcome.Unknown;
        if (found.Info.Revoked is not null) return AuthOutcome.Revoked;
        if (!_principals.TryGetValue(found.Info.Principal, out Principal? owner) || owner.Disabled is not null) return AuthOutcome.Disabled;
        Volatile.Write(ref found.LastUsedMs, _time.GetUtcNow().ToUnixTimeMilliseconds());
        entry = found;
        principal = owner;
        return AuthOutcome.Ok;
    }

    // ================================================================== changes (disk first, then memory)

    /// <summary>Creates a principal. Its name must be unique for its kind.</summary>
    /// <exception cref="TrustStoreException">The name is taken or invalid, or the creator's quota is reached.</exception>
    public Principal CreatePrincipal(PrincipalKind kind, string name, ulong? createdBy, string? region = null, ulong? parent = null)
    {
        ValidateName(name, kind == PrincipalKind.Node ? "node id" : "name");
        lock (_lock)
        {
            if (createdBy is { } by && CreatedBy(by) >= _limits.PrincipalsPerOperatorMax)
                throw new TrustStoreException(TrustError.QuotaReached, $"Operator {by} has created {_limits.PrincipalsPerOperatorMax} principals, the most one operator may create.");
            if (_byName.ContainsKey((kind, name))) throw new TrustStoreException(TrustError.NameTaken, $"A {kind.ToString().ToLowerInvariant()} named '{name}' exists.");
            long now = NowMs();
            ulong id;
            using (var w = Begin())
            {
                id = Insert(w, kind, name, createdBy, region, parent, now);
                Commit(w);
            }
            return Cache(new Principal(id, kind, name, parent, region, FromMs(now), createdBy, null));
        }
    }

    private static ulong Insert(TrustWrite w, PrincipalKind kind, string name, ulong? createdBy, string? region, ulong? parent, long now)
    {
        long id = w.NextId(TrustRows.Principals);
        w.Insert(TrustRows.Principals, id, (long)kind, name, (long?)parent, region, now, (long?)createdBy, null);
        return (ulong)id;
    }

    /// <summary>Disables a principal: every key of it stops working at once, a node's sessions end. Returns it, or null when unknown.</summary>
    public Principal? Disable(ulong id)
    {
        lock (_lock)
        {
            if (!_principals.TryGetValue(id, out Principal? p)) return null;
            if (p.Disabled is not null) return p;
            long now = NowMs();
            using (var w = Begin())
            {
                SetDisabled(w, id, now);
                Commit(w);
            }
            return Cache(p with { Disabled = FromMs(now) });
        }
    }

    private static void SetDisabled(TrustWrite w, ulong id, long now) =>
        w.Update(TrustRows.Principals, (long)id, row =>
        {
            if (row["disabled_ms"] is not null) return false;
            row["disabled_ms"] = now;
            return true;
        });

    /// <summary>Issues a new key for a principal; the key itself is returned once and never stored.</summary>
    /// <exception cref="TrustStoreException">The principal is unknown or disabled, the scopes are not its kind's, or its key quota is reached.</exception>
    public (ApiKeyInfo Info, string Key) IssueKey(ulong principal, string name, Scopes scopes, ulong? createdBy)
    {
        ValidateName(name, "key name");
        lock (_lock)
        {
            (KeyEntry entry, string key) = IssueKey(principal, name, scopes, createdBy, replacing: null);
            _keys[entry.Info.KeyId] = entry;
            return (entry.Info, key);
        }
    }

    // Checks and writes a new key (in one transaction, with the revocation of the key it replaces, if any); the caller
    // puts it in memory.
    private (KeyEntry Entry, string Key) IssueKey(ulong principal, string name, Scopes scopes, ulong? createdBy, KeyEntry? replacing)
    {
        if (!_principals.TryGetValue(principal, out Principal? p) || p.Disabled is not null)
            throw new TrustStoreException(TrustError.NotFound, $"No enabled principal {principal}.");
        Scopes allowed = Principal.AllowedScopes(p.Kind);
        if (scopes == Scopes.None || (scopes & ~allowed) != 0)
            throw new TrustStoreException(TrustError.Invalid, $"A {p.Kind.ToString().ToLowerInvariant()} key may have only the scopes {ScopeNames.Format(allowed)}.");
        int active = _keys.Values.Count(k => k.Info.Principal == principal && k.Info.Revoked is null && k != replacing);
        if (active >= _limits.KeysPerPrincipalMax)
            throw new TrustStoreException(TrustError.QuotaReached, $"Principal {principal} has {active} active keys, the most allowed; revoke one first.");
        (string keyId, string key, byte[] hash) = ApiKeyFormat.NewKey();
        long now = NowMs();
        using (var w = Begin())
        {
            if (replacing is not null) SetRevoked(w, replacing.Info.KeyId, now);
            w.Insert(TrustRows.ApiKeys, keyId, (long)principal, name, (long)scopes, hash, now, (long?)createdBy, null, null);
            Commit(w);
        }
        if (replacing is not null) replacing.Info = replacing.Info with { Revoked = FromMs(now) };
        return (new KeyEntry(new ApiKeyInfo(keyId, principal, name, scopes, FromMs(now), createdBy, null, null), hash), key);
    }

    /// <summary>
    /// Creates the first operator with a key generated elsewhere (the operator key file is written before the store
    /// learns the key; see <see cref="OperatorKeyFile"/>). Does nothing when an operator exists.
    /// </summary>
    public void CreateFirstOperator(string name, string keyId, byte[] secretHash)
    {
        lock (_lock)
        {
            if (HasOperators) return;
            long now = NowMs();
            ulong id;
            using (var w = Begin())
            {
                id = Insert(w, PrincipalKind.Operator, name, null, null, null, now);
                w.Insert(TrustRows.ApiKeys, keyId, (long)id, "first", (long)(Scopes.Admin | Scopes.Read), secretHash, now, null, null, null);
                Commit(w);
            }
            Cache(new Principal(id, PrincipalKind.Operator, name, null, null, FromMs(now), null, null));
            _keys[keyId] = new KeyEntry(new ApiKeyInfo(keyId, id, "first", Scopes.Admin | Scopes.Read, FromMs(now), null, null, null), secretHash);
        }
    }

    /// <summary>Revokes a key: the next request that presents it gets 401. Returns it, or null when unknown.</summary>
    public ApiKeyInfo? RevokeKey(string keyId)
    {
        lock (_lock)
        {
            if (!_keys.TryGetValue(keyId, out KeyEntry? e)) return null;
            if (e.Info.Revoked is not null) return e.Info;
            long now = NowMs();
            using (var w = Begin())
            {
                SetRevoked(w, keyId, now);
                Commit(w);
            }
            e.Info = e.Info with { Revoked = FromMs(now) };
            return e.Info;
        }
    }

    private static void SetRevoked(TrustWrite w, string keyId, long now) =>
        w.Update(TrustRows.ApiKeys, keyId, row =>
        {
            if (row["revoked_ms"] is not null) return false;
            row["revoked_ms"] = now;
            return true;
        });

    /// <summary>Rotates a key: a new key with the same name and scopes, and the old one revoked, in one transaction.</summary>
    /// <exception cref="TrustStoreException">The key is unknown or revoked.</exception>
    public (ApiKeyInfo Info, string Key) RotateKey(string keyId, ulong? by)
    {
        lock (_lock)
        {
            if (!_keys.TryGetValue(keyId, out KeyEntry? e) || e.Info.Revoked is not null)
                throw new TrustStoreException(TrustError.NotFound, $"No active key {keyId}.");
            // The old key does not count against the quota: it is revoked in the same transaction that adds the new one,
            // so either both happen or neither.
            (KeyEntry entry, string key) = IssueKey(e.Info.Principal, e.Info.Name, e.Info.Scopes, by, replacing: e);
            _keys[entry.Info.KeyId] = entry;
            return (entry.Info, key);
        }
    }

    /// <summary>Admits a node for a provider: a node principal and its key and price ceiling, in one transaction.</summary>
    /// <exception cref="TrustStoreException">The provider is unknown, the node id is taken, or the key is not 32 bytes.</exception>
    public NodeAdmission AdmitNode(ulong provider, string nodeId, byte[] publicKey, long priceCeiling, ulong admittedBy)
    {
        ValidateName(nodeId, "node id");
        if (publicKey.Length != 32) throw new TrustStoreException(TrustError.Invalid, "An Ed25519 public key is 32 bytes.");
        if (priceCeiling < 0) throw new TrustStoreException(TrustError.Invalid, "The price ceiling must not be negative.");
        lock (_lock)
        {
            if (!_principals.TryGetValue(provider, out Principal? p) || p.Kind != PrincipalKind.Provider || p.Disabled is not null)
                throw new TrustStoreException(TrustError.NotFound, $"No enabled provider {provider}.");
            if (CreatedBy(admittedBy) >= _limits.PrincipalsPerOperatorMax)
                throw new TrustStoreException(TrustError.QuotaReached, $"Operator {admittedBy} has created {_limits.PrincipalsPerOperatorMax} principals, the most one operator may create.");
            if (_nodes.ContainsKey(nodeId) || _byName.ContainsKey((PrincipalKind.Node, nodeId)))
                throw new TrustStoreException(TrustError.NameTaken, $"A node '{nodeId}' is admitted already.");
            long now = NowMs();
            byte[] key = publicKey.ToArray();
            ulong id;
            using (var w = Begin())
            {
                id = Insert(w, PrincipalKind.Node, nodeId, admittedBy, null, provider, now);
                w.Insert(TrustRows.Nodes, (long)id, nodeId, (long)provider, key, priceCeiling, null);
                Commit(w);
            }
            Cache(new Principal(id, PrincipalKind.Node, nodeId, provider, null, FromMs(now), admittedBy, null));
            var admission = new NodeAdmission(id, nodeId, provider, key, priceCeiling, null);
            _nodes[nodeId] = admission;
            return admission;
        }
    }

    /// <summary>Revokes a node's admission (and disables its principal, in the same transaction). Returns it, or null when unknown.</summary>
    public NodeAdmission? RevokeNode(string nodeId)
    {
        lock (_lock)
        {
            if (!_nodes.TryGetValue(nodeId, out NodeAdmission? n)) return null;
            if (n.Revoked is not null) return n;
            long now = NowMs();
            using (var w = Begin())
            {
                w.Update(TrustRows.Nodes, (long)n.Principal, row =>
                {
                    if (row["revoked_ms"] is not null) return false;
                    row["revoked_ms"] = now;
                    return true;
                });
                SetDisabled(w, n.Principal, now);
                Commit(w);
            }
            if (_principals.TryGetValue(n.Principal, out Principal? p) && p.Disabled is null) Cache(p with { Disabled = FromMs(now) });
            return _nodes[nodeId] = n with { Revoked = FromMs(now) };
        }
    }

    /// <summary>Records an operator's action (funding, minting, admissions) durably, with who did it.</summary>
    public OperatorAction Record(ulong operatorId, string action, string subject, long? amount = null, uint? asset = null, UInt128? transferId = null)
    {
        lock (_lock)
        {
            long now = NowMs();
            string? transfer = transferId?.ToString(CultureInfo.InvariantCulture);
            long seq;
            using (var w = Begin())
            {
                seq = w.NextId(TrustRows.OperatorActions);
                w.Insert(TrustRows.OperatorActions, seq, now, (long)operatorId, action, subject, amount, (long?)asset, transfer);
                Commit(w);
            }
            return new OperatorAction(seq, FromMs(now), operatorId, action, subject, amount, asset, transfer);
        }
    }

    /// <summary>How many raw ledger accounts an operator has created (from the action log).</summary>
    public int RawAccountsCreatedBy(ulong operatorId)
    {
        lock (_lock)
        {
            using var cmd = Command(null, "SELECT COALESCE(SUM(amount), 0) FROM operator_actions WHERE operator=$o AND action='ledger-accounts'", ("$o", (long)operatorId));
            return (int)Math.Min(int.MaxValue, (long)cmd.ExecuteScalar()!);
        }
    }

    /// <summary>The operators' actions after sequence <paramref name="after"/>, oldest first (each row's checksum checked).</summary>
    /// <exception cref="InvalidDataException">A row fails its checksum.</exception>
    public IReadOnlyList<OperatorAction> Actions(long after, int limit)
    {
        lock (_lock)
        {
            using var cmd = Command(null, $"{TrustRows.OperatorActions.Select} WHERE seq > $a ORDER BY seq LIMIT $l", ("$a", after), ("$l", (long)limit));
            using var r = cmd.ExecuteReader();
            var list = new List<OperatorAction>();
            while (r.Read()) list.Add(ToAction(TrustRows.Read(r, TrustRows.OperatorActions, _path)));
            return list;
        }
    }

    private static OperatorAction ToAction(TrustRow r) =>
        new(r.Long("seq"), FromMs(r.Long("at_ms")), (ulong)r.Long("operator"), r.Text("action"), r.Text("subject"),
            r.NullableLong("amount"), r.NullableLong("asset") is { } asset ? (uint)asset : null, r.NullableText("transfer_id"));

    // ================================================================== upkeep

    /// <summary>Reloads everything when another process changed the database since the last look. Returns true when it did.</summary>
    /// <exception cref="InvalidDataException">What changed fails the checks (the store in memory stays as it was).</exception>
    public bool Refresh()
    {
        lock (_lock)
        {
            long version = Scalar<long>(_db, "PRAGMA data_version");
            if (version == _dataVersion) return false;
            LoadAll();
            return true;
        }
    }

    /// <summary>Writes the keys' last-use times that changed since the last flush (the server calls it every few seconds and at shutdown).</summary>
    public int FlushLastUse()
    {
        lock (_lock)
        {
            var changed = _keys.Values.Where(k => Volatile.Read(ref k.LastUsedMs) > k.FlushedLastUsedMs).ToList();
            if (changed.Count == 0) return 0;
            var flushed = new List<(KeyEntry Key, long Ms)>(changed.Count);
            using (var w = Begin())
            {
                foreach (KeyEntry k in changed)
                {
                    long ms = Volatile.Read(ref k.LastUsedMs);
                    w.Update(TrustRows.ApiKeys, k.Info.KeyId, row =>
                    {
                        if (row["last_used_ms"] is long stored && stored >= ms) return false;
                        row["last_used_ms"] = ms;
                        return true;
                    });
                    flushed.Add((k, ms));
                }
                Commit(w);
            }
            foreach (var (k, ms) in flushed) k.FlushedLastUsedMs = ms;
            return changed.Count;
        }
    }

    /// <summary>
    /// The whole content as loaded, one line per row in a fixed order (principals, keys with their secret hashes and
    /// last use, nodes, actions): two stores with the same content give the same text. For comparing a restored copy.
    /// </summary>
    public string Dump()
    {
        lock (_lock)
        {
            static string Ms(DateTimeOffset? t) => t is { } v ? v.ToUnixTimeMilliseconds().ToString(CultureInfo.InvariantCulture) : "-";
            var sb = new System.Text.StringBuilder();
            foreach (Principal p in _principals.Values.OrderBy(p => p.Id))
                sb.Append(CultureInfo.InvariantCulture, $"principal {p.Id} {p.Kind} {p.Name} parent={p.Parent} region={p.Region} created={Ms(p.Created)} by={p.CreatedBy} disabled={Ms(p.Disabled)}\n");
            foreach (KeyEntry k in _keys.Values.OrderBy(k => k.Info.KeyId, StringComparer.Ordinal))
            {
                ApiKeyInfo i = WithLastUse(k);
                sb.Append(CultureInfo.InvariantCulture, $"key {i.KeyId} principal={i.Principal} {i.Name} scopes={(int)i.Scopes} hash={Convert.ToHexStringLower(k.SecretHash)} created={Ms(i.Created)} by={i.CreatedBy} revoked={Ms(i.Revoked)} used={Ms(i.LastUsed)}\n");
            }
            foreach (NodeAdmission n in _nodes.Values.OrderBy(n => n.NodeId, StringComparer.Ordinal))
                sb.Append(CultureInfo.InvariantCulture, $"node {n.NodeId} principal={n.Principal} provider={n.Provider} key={Convert.ToHexStringLower(n.PublicKey)} ceiling={n.PriceCeilingMicroUsdPer1kTokens} revoked={Ms(n.Revoked)}\n");
            foreach (OperatorAction a in Actions(0, int.MaxValue))
                sb.Append(CultureInfo.InvariantCulture, $"action {a.Sequence} {Ms(a.At)} operator={a.Operator} {a.Action} '{a.Subject}' amount={a.Amount} asset={a.Asset} transfer={a.TransferId}\n");
            return sb.ToString();
        }
    }

    /// <summary>Flushes last-use times and closes the database (once).</summary>
    public void Dispose()
    {
        lock (_lock)
        {
            if (_disposed) return;
            // A store found corrupt is not written to; it is closed all the same.
            try { FlushLastUse(); }
            catch (Exception e) when (e is SqliteException or InvalidDataException) { }
            _db.Dispose();
            _disposed = true;
        }
    }

    private TrustWrite Begin() => new(_db, _path);

    private void Commit(TrustWrite w)
    {
        w.Commit();
        if (CheckpointAfterWrite) Checkpoint();
    }

    // Copies the WAL into the main file and empties it, so at rest everything is in the file the checks cover. Busy (a
    // reader of another process on an older snapshot) is no error: the next change or the close does it.
    private void Checkpoint()
    {
        using var cmd = Command(null, "PRAGMA wal_checkpoint(TRUNCATE)");
        cmd.ExecuteNonQuery();
    }

    // Reads every table in one snapshot and checks it all (schema, digests, every row) before memory is touched, so a
    // failed check leaves the store in memory as it was.
    private void LoadAll()
    {
        // Read before the snapshot: a change committed in between is then seen again by the next Refresh, never missed.
        long dataVersion = Scalar<long>(_db, "PRAGMA data_version");
        List<TrustRow> principalRows, keyRows, nodeRows;
        using (var tx = _db.BeginTransaction(deferred: true))
        {
            var digests = TrustRows.ReadDigests(_db, tx, _path);
            var meta = TrustRows.ReadAll(_db, tx, TrustRows.Meta, digests[TrustRows.Meta.Name], _path).ToDictionary(r => r.Text("key"), r => r.Text("value"), StringComparer.Ordinal);
            if (meta.GetValueOrDefault("schema") != SchemaVersion.ToString(CultureInfo.InvariantCulture))
                throw new InvalidDataException($"The trust store {_path} has schema {meta.GetValueOrDefault("schema") ?? "(none)"}; this version reads schema {SchemaVersion}.");
            if (meta.GetValueOrDefault(TrustRows.SchemaHashKey) != TrustRows.SchemaHash(_db, tx))
                throw TrustRows.Corrupt(_path, "table sqlite_schema: the schema does not match its hash");
            foreach (TrustTable t in TrustRows.All.Where(t => t.Numbered))
            {
                using var cmd = TrustRows.Command(_db, tx, "SELECT seq FROM sqlite_sequence WHERE name=$n");
                cmd.Parameters.AddWithValue("$n", t.Name);
                long seq = cmd.ExecuteScalar() as long? ?? 0;
                if (seq != digests[t.Name].HighWater)
                    throw TrustRows.Corrupt(_path, $"table sqlite_sequence, row {t.Name}: {seq} is not the highest id assigned ({digests[t.Name].HighWater})");
            }
            principalRows = TrustRows.ReadAll(_db, tx, TrustRows.Principals, digests[TrustRows.Principals.Name], _path);
            keyRows = TrustRows.ReadAll(_db, tx, TrustRows.ApiKeys, digests[TrustRows.ApiKeys.Name], _path);
            nodeRows = TrustRows.ReadAll(_db, tx, TrustRows.Nodes, digests[TrustRows.Nodes.Name], _path);
            TrustRows.ReadAll(_db, tx, TrustRows.OperatorActions, digests[TrustRows.OperatorActions.Name], _path);
            tx.Commit();
        }

        var principals = new Dictionary<ulong, Principal>();
        foreach (TrustRow r in principalRows)
        {
            var p = new Principal((ulong)r.Long("id"), (PrincipalKind)r.Long("kind"), r.Text("name"), (ulong?)r.NullableLong("parent"), r.NullableText("region"),
                FromMs(r.Long("created_ms")), (ulong?)r.NullableLong("created_by"), r.NullableLong("disabled_ms") is { } d ? FromMs(d) : null);
            principals[p.Id] = p;
        }
        foreach (var p in principals.Values) Cache(p);
        foreach (ulong gone in _principals.Keys.Except(principals.Keys).ToList()) _principals.TryRemove(gone, out _);

        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (TrustRow r in keyRows)
        {
            string keyId = r.Text("key_id");
            seen.Add(keyId);
            long lastUsed = r.NullableLong("last_used_ms") ?? 0;
            var info = new ApiKeyInfo(keyId, (ulong)r.Long("principal"), r.Text("name"), (Scopes)r.Long("scopes"), FromMs(r.Long("created_ms")),
                (ulong?)r.NullableLong("created_by"), r.NullableLong("revoked_ms") is { } rev ? FromMs(rev) : null, null);
            if (_keys.TryGetValue(keyId, out KeyEntry? existing))
            {
                existing.Info = info;
                if (lastUsed > Volatile.Read(ref existing.LastUsedMs)) Volatile.Write(ref existing.LastUsedMs, lastUsed);
            }
            else _keys[keyId] = new KeyEntry(info, r.Blob("secret_sha256")) { LastUsedMs = lastUsed, FlushedLastUsedMs = lastUsed };
        }
        foreach (string gone in _keys.Keys.Where(k => !seen.Contains(k)).ToList()) _keys.TryRemove(gone, out _);

        foreach (TrustRow r in nodeRows)
        {
            var n = new NodeAdmission((ulong)r.Long("principal"), r.Text("node_id"), (ulong)r.Long("provider"), r.Blob("public_key"), r.Long("price_ceiling"),
                r.NullableLong("revoked_ms") is { } rev ? FromMs(rev) : null);
            _nodes[n.NodeId] = n;
        }
        _dataVersion = dataVersion;
    }

    private Principal Cache(Principal p)
    {
        _principals[p.Id] = p;
        _byName[(p.Kind, p.Name)] = p.Id;
        // A changed principal (disabled, renamed) gets new tickets: the cached ones carry the old record.
        foreach (KeyEntry k in _keys.Values)
            if (k.Info.Principal == p.Id) k.Ticket = null;
        return p;
    }

    /// <summary>Names are 1–64 characters of letters, digits, '-', '_', '.' and '@' (no spaces or control characters).</summary>
    public static bool IsValidName(string? name) =>
        name is { Length: > 0 and <= 64 } && name.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' or '@');

    private static void ValidateName(string name, string what)
    {
        if (!IsValidName(name)) throw new TrustStoreException(TrustError.Invalid, $"A {what} is 1 to 64 letters, digits, '-', '_', '.' or '@'; got '{name}'.");
    }

    private long NowMs() => _time.GetUtcNow().ToUnixTimeMilliseconds();

    private static DateTimeOffset FromMs(long ms) => DateTimeOffset.FromUnixTimeMilliseconds(ms);

    private SqliteCommand Command(SqliteTransaction? tx, string sql, params (string Name, object? Value)[] args)
    {
        var cmd = _db.CreateCommand();
        cmd.CommandText = sql;
        cmd.Transaction = tx;
        foreach (var (name, value) in args) cmd.Parameters.AddWithValue(name, value ?? DBNull.Value);
        return cmd;
    }

    private static void Exec(SqliteConnection db, string sql)
    {
        using var cmd = db.CreateCommand();
        cmd.CommandText = sql;
        cmd.ExecuteNonQuery();
    }

    private static T? Scalar<T>(SqliteConnection db, string sql)
    {
        using var cmd = db.CreateCommand();
        cmd.CommandText = sql;
        object? v = cmd.ExecuteScalar();
        return v is null or DBNull ? default : (T)Convert.ChangeType(v, typeof(T), CultureInfo.InvariantCulture);
    }
}

/// <summary>Scope names on the wire: <c>read</c>, <c>trade</c>, <c>inference</c>, <c>admin</c>.</summary>
public static class ScopeNames
{
    private static readonly (Scopes Scope, string Name)[] Names = [(Scopes.Read, "read"), (Scopes.Trade, "trade"), (Scopes.Inference, "inference"), (Scopes.Admin, "admin")];

    /// <summary>The names of a set of scopes, in a fixed order.</summary>
    public static string[] Of(Scopes scopes) => Names.Where(n => (scopes & n.Scope) != 0).Select(n => n.Name).ToArray();

    /// <summary>The names joined with commas.</summary>
    public static string Format(Scopes scopes) => string.Join(", ", Of(scopes));

    /// <summary>Parses scope names; false (with the unknown name) when one is not a scope.</summary>
    public static bool TryParse(IEnumerable<string> names, out Scopes scopes, out string? unknown)
    {
        scopes = Scopes.None;
        unknown = null;
        foreach (string name in names)
        {
            var match = Names.FirstOrDefault(n => n.Name == name.Trim().ToLowerInvariant());
            if (match.Name is null) { unknown = name; return false; }
            scopes |= match.Scope;
        }
        return true;
    }
}
