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
/// server calls every second; changes made through this instance are visible at once. The store refuses to open a
/// database that fails SQLite's integrity check.
/// </summary>
public sealed class TrustStore : IDisposable
{
    /// <summary>The file name in the data folder.</summary>
    public const string FileName = "trust.db";

    private const int SchemaVersion = 1;

    private readonly SqliteConnection _db;
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

    private TrustStore(SqliteConnection db, TimeProvider time, ServerLimits limits)
    {
        _db = db;
        _time = time;
        _limits = limits;
        _keysBySpan = _keys.GetAlternateLookup<ReadOnlySpan<char>>();
    }

    /// <summary>The path of the store in <paramref name="dataDirectory"/>.</summary>
    public static string PathIn(string dataDirectory) => Path.Combine(dataDirectory, FileName);

    /// <summary>Opens (creating if absent) the store of <paramref name="dataDirectory"/>.</summary>
    /// <exception cref="InvalidDataException">The database fails its integrity check or has an unknown schema.</exception>
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
            Exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; PRAGMA busy_timeout=30000;");
            string check = Scalar<string>(db, "PRAGMA quick_check") ?? "no answer";
            if (check != "ok") throw new InvalidDataException($"The trust store {path} is corrupt ({check}); restore it from a backup.");
            Migrate(db, path);
            var store = new TrustStore(db, time ?? TimeProvider.System, limits ?? new ServerLimits());
            store.LoadAll();
            return store;
        }
        catch (SqliteException e)
        {
            db.Dispose();
            throw new InvalidDataException($"The trust store {path} cannot be opened: {e.Message}", e);
        }
        catch
        {
            db.Dispose();
            throw;
        }
    }

    private static void Migrate(SqliteConnection db, string path)
    {
        Exec(db, """
            CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS principals(
                id INTEGER PRIMARY KEY AUTOINCREMENT, kind INTEGER NOT NULL, name TEXT NOT NULL, parent INTEGER REFERENCES principals(id),
                region TEXT, created_ms INTEGER NOT NULL, created_by INTEGER, disabled_ms INTEGER, UNIQUE(kind, name));
            CREATE TABLE IF NOT EXISTS api_keys(
                key_id TEXT PRIMARY KEY, principal INTEGER NOT NULL REFERENCES principals(id), name TEXT NOT NULL, scopes INTEGER NOT NULL,
                secret_sha256 BLOB NOT NULL, created_ms INTEGER NOT NULL, created_by INTEGER, revoked_ms INTEGER, last_used_ms INTEGER);
            CREATE INDEX IF NOT EXISTS api_keys_principal ON api_keys(principal);
            CREATE TABLE IF NOT EXISTS nodes(
                principal INTEGER PRIMARY KEY REFERENCES principals(id), node_id TEXT NOT NULL UNIQUE, provider INTEGER NOT NULL REFERENCES principals(id),
                public_key BLOB NOT NULL, price_ceiling INTEGER NOT NULL, revoked_ms INTEGER);
            CREATE TABLE IF NOT EXISTS operator_actions(
                seq INTEGER PRIMARY KEY AUTOINCREMENT, at_ms INTEGER NOT NULL, operator INTEGER NOT NULL, action TEXT NOT NULL, subject TEXT NOT NULL,
                amount INTEGER, asset INTEGER, transfer_id TEXT);
            INSERT OR IGNORE INTO meta(key, value) VALUES('schema', '1');
            """);
        string? version = Scalar<string>(db, "SELECT value FROM meta WHERE key='schema'");
        if (version != SchemaVersion.ToString(CultureInfo.InvariantCulture))
            throw new InvalidDataException($"The trust store {path} has schema {version}; this version reads schema {SchemaVersion}.");
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
            using var tx = _db.BeginTransaction();
            ulong id = Insert(tx, kind, name, createdBy, region, parent, now);
            tx.Commit();
            return Cache(new Principal(id, kind, name, parent, region, FromMs(now), createdBy, null));
        }
    }

    private ulong Insert(SqliteTransaction tx, PrincipalKind kind, string name, ulong? createdBy, string? region, ulong? parent, long now)
    {
        using var cmd = Command(tx, "INSERT INTO principals(kind, name, parent, region, created_ms, created_by) VALUES($k, $n, $p, $r, $t, $b) RETURNING id",
            ("$k", (long)kind), ("$n", name), ("$p", (object?)(long?)parent), ("$r", region), ("$t", now), ("$b", (long?)createdBy));
        return (ulong)(long)cmd.ExecuteScalar()!;
    }

    /// <summary>Disables a principal: every key of it stops working at once, a node's sessions end. Returns it, or null when unknown.</summary>
    public Principal? Disable(ulong id)
    {
        lock (_lock)
        {
            if (!_principals.TryGetValue(id, out Principal? p)) return null;
            if (p.Disabled is not null) return p;
            long now = NowMs();
            using (var cmd = Command(null, "UPDATE principals SET disabled_ms=$t WHERE id=$id", ("$t", now), ("$id", (long)id))) cmd.ExecuteNonQuery();
            return Cache(p with { Disabled = FromMs(now) });
        }
    }

    /// <summary>Issues a new key for a principal; the key itself is returned once and never stored.</summary>
    /// <exception cref="TrustStoreException">The principal is unknown or disabled, the scopes are not its kind's, or its key quota is reached.</exception>
    public (ApiKeyInfo Info, string Key) IssueKey(ulong principal, string name, Scopes scopes, ulong? createdBy)
    {
        ValidateName(name, "key name");
        lock (_lock)
        {
            if (!_principals.TryGetValue(principal, out Principal? p) || p.Disabled is not null)
                throw new TrustStoreException(TrustError.NotFound, $"No enabled principal {principal}.");
            Scopes allowed = Principal.AllowedScopes(p.Kind);
            if (scopes == Scopes.None || (scopes & ~allowed) != 0)
                throw new TrustStoreException(TrustError.Invalid, $"A {p.Kind.ToString().ToLowerInvariant()} key may have only the scopes {ScopeNames.Format(allowed)}.");
            int active = _keys.Values.Count(k => k.Info.Principal == principal && k.Info.Revoked is null);
            if (active >= _limits.KeysPerPrincipalMax)
                throw new TrustStoreException(TrustError.QuotaReached, $"Principal {principal} has {active} active keys, the most allowed; revoke one first.");
            (string keyId, string key, byte[] hash) = ApiKeyFormat.NewKey();
            long now = NowMs();
            using (var cmd = Command(null, "INSERT INTO api_keys(key_id, principal, name, scopes, secret_sha256, created_ms, created_by) VALUES($id, $p, $n, $s, $h, $t, $b)",
                ("$id", keyId), ("$p", (long)principal), ("$n", name), ("$s", (long)scopes), ("$h", hash), ("$t", now), ("$b", (long?)createdBy)))
                cmd.ExecuteNonQuery();
            var info = new ApiKeyInfo(keyId, principal, name, scopes, FromMs(now), createdBy, null, null);
            _keys[keyId] = new KeyEntry(info, hash);
            return (info, key);
        }
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
            using var tx = _db.BeginTransaction();
            ulong id = Insert(tx, PrincipalKind.Operator, name, null, null, null, now);
            using (var cmd = Command(tx, "INSERT INTO api_keys(key_id, principal, name, scopes, secret_sha256, created_ms) VALUES($id, $p, 'first', $s, $h, $t)",
                ("$id", keyId), ("$p", (long)id), ("$s", (long)(Scopes.Admin | Scopes.Read)), ("$h", secretHash), ("$t", now)))
                cmd.ExecuteNonQuery();
            tx.Commit();
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
            using (var cmd = Command(null, "UPDATE api_keys SET revoked_ms=$t WHERE key_id=$id", ("$t", now), ("$id", keyId))) cmd.ExecuteNonQuery();
            e.Info = e.Info with { Revoked = FromMs(now) };
            return e.Info;
        }
    }

    /// <summary>Rotates a key: a new key with the same name and scopes, and the old one revoked, in one step.</summary>
    /// <exception cref="TrustStoreException">The key is unknown or revoked.</exception>
    public (ApiKeyInfo Info, string Key) RotateKey(string keyId, ulong? by)
    {
        lock (_lock)
        {
            if (!_keys.TryGetValue(keyId, out KeyEntry? e) || e.Info.Revoked is not null)
                throw new TrustStoreException(TrustError.NotFound, $"No active key {keyId}.");
            // The old key is revoked first so that the new one fits the principal's key quota; if issuing fails, the old
            // key is restored and keeps working.
            RevokeKey(keyId);
            try { return IssueKey(e.Info.Principal, e.Info.Name, e.Info.Scopes, by); }
            catch
            {
                using (var cmd = Command(null, "UPDATE api_keys SET revoked_ms=NULL WHERE key_id=$id", ("$id", keyId))) cmd.ExecuteNonQuery();
                e.Info = e.Info with { Revoked = null };
                throw;
            }
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
            using var tx = _db.BeginTransaction();
            ulong id = Insert(tx, PrincipalKind.Node, nodeId, admittedBy, null, provider, now);
            using (var cmd = Command(tx, "INSERT INTO nodes(principal, node_id, provider, public_key, price_ceiling) VALUES($p, $n, $v, $k, $c)",
                ("$p", (long)id), ("$n", nodeId), ("$v", (long)provider), ("$k", publicKey), ("$c", priceCeiling)))
                cmd.ExecuteNonQuery();
            tx.Commit();
            Cache(new Principal(id, PrincipalKind.Node, nodeId, provider, null, FromMs(now), admittedBy, null));
            var admission = new NodeAdmission(id, nodeId, provider, publicKey.ToArray(), priceCeiling, null);
            _nodes[nodeId] = admission;
            return admission;
        }
    }

    /// <summary>Revokes a node's admission (and disables its principal). Returns it, or null when unknown.</summary>
    public NodeAdmission? RevokeNode(string nodeId)
    {
        lock (_lock)
        {
            if (!_nodes.TryGetValue(nodeId, out NodeAdmission? n)) return null;
            if (n.Revoked is not null) return n;
            long now = NowMs();
            using (var cmd = Command(null, "UPDATE nodes SET revoked_ms=$t WHERE principal=$p", ("$t", now), ("$p", (long)n.Principal))) cmd.ExecuteNonQuery();
            Disable(n.Principal);
            return _nodes[nodeId] = n with { Revoked = FromMs(now) };
        }
    }

    /// <summary>Records an operator's action (funding, minting, admissions) durably, with who did it.</summary>
    public OperatorAction Record(ulong operatorId, string action, string subject, long? amount = null, uint? asset = null, UInt128? transferId = null)
    {
        lock (_lock)
        {
            long now = NowMs();
            using var cmd = Command(null, "INSERT INTO operator_actions(at_ms, operator, action, subject, amount, asset, transfer_id) VALUES($t, $o, $a, $s, $m, $x, $i) RETURNING seq",
                ("$t", now), ("$o", (long)operatorId), ("$a", action), ("$s", subject), ("$m", amount), ("$x", (long?)asset), ("$i", transferId?.ToString(CultureInfo.InvariantCulture)));
            long seq = (long)cmd.ExecuteScalar()!;
            return new OperatorAction(seq, FromMs(now), operatorId, action, subject, amount, asset, transferId?.ToString(CultureInfo.InvariantCulture));
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

    /// <summary>The operators' actions after sequence <paramref name="after"/>, oldest first.</summary>
    public IReadOnlyList<OperatorAction> Actions(long after, int limit)
    {
        lock (_lock)
        {
            using var cmd = Command(null, "SELECT seq, at_ms, operator, action, subject, amount, asset, transfer_id FROM operator_actions WHERE seq > $a ORDER BY seq LIMIT $l",
                ("$a", after), ("$l", (long)limit));
            using var r = cmd.ExecuteReader();
            var list = new List<OperatorAction>();
            while (r.Read())
                list.Add(new OperatorAction(r.GetInt64(0), FromMs(r.GetInt64(1)), (ulong)r.GetInt64(2), r.GetString(3), r.GetString(4),
                    r.IsDBNull(5) ? null : r.GetInt64(5), r.IsDBNull(6) ? null : (uint)r.GetInt64(6), r.IsDBNull(7) ? null : r.GetString(7)));
            return list;
        }
    }

    // ================================================================== upkeep

    /// <summary>Reloads everything when another process changed the database since the last look. Returns true when it did.</summary>
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
            using var tx = _db.BeginTransaction();
            foreach (KeyEntry k in changed)
            {
                long ms = Volatile.Read(ref k.LastUsedMs);
                using var cmd = Command(tx, "UPDATE api_keys SET last_used_ms=$t WHERE key_id=$id AND (last_used_ms IS NULL OR last_used_ms < $t)", ("$t", ms), ("$id", k.Info.KeyId));
                cmd.ExecuteNonQuery();
                k.FlushedLastUsedMs = ms;
            }
            tx.Commit();
            return changed.Count;
        }
    }

    /// <summary>Flushes last-use times and closes the database (once).</summary>
    public void Dispose()
    {
        lock (_lock)
        {
            if (_disposed) return;
            try { FlushLastUse(); }
            catch (SqliteException) { }
            _db.Dispose();
            _disposed = true;
        }
    }

    private void LoadAll()
    {
        var principals = new Dictionary<ulong, Principal>();
        using (var cmd = Command(null, "SELECT id, kind, name, parent, region, created_ms, created_by, disabled_ms FROM principals"))
        using (var r = cmd.ExecuteReader())
            while (r.Read())
            {
                var p = new Principal((ulong)r.GetInt64(0), (PrincipalKind)r.GetInt64(1), r.GetString(2), r.IsDBNull(3) ? null : (ulong)r.GetInt64(3),
                    r.IsDBNull(4) ? null : r.GetString(4), FromMs(r.GetInt64(5)), r.IsDBNull(6) ? null : (ulong)r.GetInt64(6), r.IsDBNull(7) ? null : FromMs(r.GetInt64(7)));
                principals[p.Id] = p;
            }
        foreach (var p in principals.Values) Cache(p);
        foreach (ulong gone in _principals.Keys.Except(principals.Keys).ToList()) _principals.TryRemove(gone, out _);

        var seen = new HashSet<string>(StringComparer.Ordinal);
        using (var cmd = Command(null, "SELECT key_id, principal, name, scopes, secret_sha256, created_ms, created_by, revoked_ms, last_used_ms FROM api_keys"))
        using (var r = cmd.ExecuteReader())
            while (r.Read())
            {
                string keyId = r.GetString(0);
                seen.Add(keyId);
                long lastUsed = r.IsDBNull(8) ? 0 : r.GetInt64(8);
                var info = new ApiKeyInfo(keyId, (ulong)r.GetInt64(1), r.GetString(2), (Scopes)r.GetInt64(3), FromMs(r.GetInt64(5)),
                    r.IsDBNull(6) ? null : (ulong)r.GetInt64(6), r.IsDBNull(7) ? null : FromMs(r.GetInt64(7)), null);
                if (_keys.TryGetValue(keyId, out KeyEntry? existing))
                {
                    existing.Info = info;
                    if (lastUsed > Volatile.Read(ref existing.LastUsedMs)) Volatile.Write(ref existing.LastUsedMs, lastUsed);
                }
                else
                {
                    var entry = new KeyEntry(info, (byte[])r.GetValue(4)) { LastUsedMs = lastUsed, FlushedLastUsedMs = lastUsed };
                    _keys[keyId] = entry;
                }
            }
        foreach (string gone in _keys.Keys.Where(k => !seen.Contains(k)).ToList()) _keys.TryRemove(gone, out _);

        using (var cmd = Command(null, "SELECT principal, node_id, provider, public_key, price_ceiling, revoked_ms FROM nodes"))
        using (var r = cmd.ExecuteReader())
            while (r.Read())
            {
                var n = new NodeAdmission((ulong)r.GetInt64(0), r.GetString(1), (ulong)r.GetInt64(2), (byte[])r.GetValue(3), r.GetInt64(4), r.IsDBNull(5) ? null : FromMs(r.GetInt64(5)));
                _nodes[n.NodeId] = n;
            }
        _dataVersion = Scalar<long>(_db, "PRAGMA data_version");
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
