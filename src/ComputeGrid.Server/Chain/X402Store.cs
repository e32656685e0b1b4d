using System.Globalization;
using ComputeGrid.Chain.X402;
using Microsoft.Data.Sqlite;

namespace ComputeGrid.Server.Chain;

/// <summary>Where a settlement intent is. Stored as its name; the only moves are the arrows below.</summary>
public enum X402State
{
    /// <summary>Persisted before service: the authorization will be sent unless released (a restart sends it).</summary>
    Reserved,
    /// <summary>The request was not served: the credit went back and the authorization is never sent. Final.</summary>
    Released,
    /// <summary>The transaction is signed, its hash recorded before it was broadcast; awaiting N confirmations.</summary>
    Sent,
    /// <summary>Mined with N confirmations (or found used by this very authorization): custody holds the money. Final.</summary>
    Settled,
    /// <summary>Never settled (nonce used by another authorization, expired before mined, reverted): the platform's loss. Final.</summary>
    Failed,
}

/// <summary>Who asked for a settlement: a paid request of this server, or a resource server through the facilitator API.</summary>
public enum X402Source
{
    /// <summary><c>POST /v1/embeddings</c>: the ledger posts the money.</summary>
    Embeddings,
    /// <summary><c>POST /x402/settle</c>: another resource server's payment; the server only relays it (no ledger movement).</summary>
    Facilitator,
}

/// <summary>
/// One settlement intent: the whole signed authorization (enough to send it after a restart), the request it paid for,
/// and where its transaction is.
/// </summary>
public sealed record X402Intent
{
    /// <summary>The token, payer and nonce (the key; ids derive from it).</summary>
    public required NonceKey Key { get; init; }
    /// <summary>The payee (<c>to</c>).</summary>
    public required EvmAddress PayTo { get; init; }
    /// <summary>The signed value, atomic units (decimal string on the wire; fits a long here).</summary>
    public required long Value { get; init; }
    /// <summary><c>validAfter</c>, unix seconds (decimal string).</summary>
    public required string ValidAfter { get; init; }
    /// <summary><c>validBefore</c>, unix seconds (decimal string).</summary>
    public required string ValidBefore { get; init; }
    /// <summary>The 65-byte signature, 0x-hex.</summary>
    public required string Signature { get; init; }
    /// <summary>The request it paid for (the hold's key for embeddings; the facilitator caller's resource otherwise).</summary>
    public required string RequestId { get; init; }
    /// <summary>The metered cost charged in the ledger (0 for the facilitator).</summary>
    public required long Cost { get; init; }
    /// <summary>Who asked.</summary>
    public required X402Source Source { get; init; }
    /// <summary>Where it is.</summary>
    public X402State State { get; init; } = X402State.Reserved;
    /// <summary>The latest transaction's hash, once signed.</summary>
    public string? TxHash { get; init; }
    /// <summary>The latest signed raw transaction (rebroadcast as is while its account nonce is unused).</summary>
    public string? RawTx { get; init; }
    /// <summary>Earlier transaction hashes of this intent (re-signed after a drop), space-separated: any of them may be the one mined.</summary>
    public string PriorTxHashes { get; init; } = "";
    /// <summary>Why it failed, or the last transient error.</summary>
    public string? Error { get; init; }
    /// <summary>When it was persisted, unix milliseconds.</summary>
    public long CreatedUnixMs { get; init; }
    /// <summary>When it last changed, unix milliseconds.</summary>
    public long UpdatedUnixMs { get; init; }

    /// <summary><c>validBefore</c> as a number (saturated: a far-future value reads as long.MaxValue).</summary>
    public long ValidBeforeSeconds => long.TryParse(ValidBefore, NumberStyles.None, CultureInfo.InvariantCulture, out long s) ? s : long.MaxValue;

    /// <summary>Every transaction hash this intent ever had.</summary>
    public IEnumerable<string> AllTxHashes => PriorTxHashes.Split(' ', StringSplitOptions.RemoveEmptyEntries).Append(TxHash).OfType<string>();
}

/// <summary>
/// The durable settlement intents (<c>DATA/chain/x402.db</c>, SQLite WAL, <c>synchronous=FULL</c>, through
/// <see cref="DurableSqlite"/>): an intent is written before its request is served and before any transaction is sent,
/// a transaction's hash before it is broadcast, so a restart resubmits rather than forgets, and never sends an
/// authorization twice. Invariants: one row per (token, payer, nonce); Released, Settled and Failed are final; only
/// Reserved → Sent/Released, Sent → Sent (re-signed)/Settled/Failed and Reserved → Failed are written. Thread-safe (one
/// connection behind a lock).
/// </summary>
public sealed class X402Store : IDisposable
{
    /// <summary>The file under the data folder.</summary>
    public static string PathIn(string dataDirectory) => Path.Combine(dataDirectory, "chain", "x402.db");

    private const string Schema = """
        CREATE TABLE IF NOT EXISTS intents(
          asset TEXT NOT NULL, payer TEXT NOT NULL, nonce TEXT NOT NULL, pay_to TEXT NOT NULL, value INTEGER NOT NULL,
          valid_after TEXT NOT NULL, valid_before TEXT NOT NULL, signature TEXT NOT NULL, request_id TEXT NOT NULL,
          cost INTEGER NOT NULL, source TEXT NOT NULL, state TEXT NOT NULL, tx_hash TEXT, raw_tx TEXT, prior_tx TEXT NOT NULL DEFAULT '',
          error TEXT, created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL,
          PRIMARY KEY(asset, payer, nonce));
        CREATE INDEX IF NOT EXISTS intents_state ON intents(state, updated_ms);
        """;

    private readonly SqliteConnection _db;
    private readonly TimeProvider _time;
    private readonly Lock _lock = new();

    private X402Store(SqliteConnection db, TimeProvider time) => (_db, _time) = (db, time);

    /// <summary>Opens (creating) the store of a data folder; a corrupt file or another schema throws <see cref="InvalidDataException"/>.</summary>
    public static X402Store Open(string dataDirectory, TimeProvider time) =>
        new(DurableSqlite.Open(PathIn(dataDirectory), "x402 settlement store", Schema), time);

    /// <summary>Persists a new intent (durable when this returns); false when one with its key exists already.</summary>
    public bool TryInsert(X402Intent i)
    {
        long now = _time.GetUtcNow().ToUnixTimeMilliseconds();
        lock (_lock)
        {
            using var c = _db.CreateCommand();
            c.CommandText = """
                INSERT OR IGNORE INTO intents(asset, payer, nonce, pay_to, value, valid_after, valid_before, signature, request_id, cost, source, state, created_ms, updated_ms)
                VALUES($a, $p, $n, $to, $v, $va, $vb, $s, $r, $c, $src, $st, $now, $now)
                """;
            Key(c, i.Key);
            c.Parameters.AddWithValue("$to", i.PayTo.ToString());
            c.Parameters.AddWithValue("$v", i.Value);
            c.Parameters.AddWithValue("$va", i.ValidAfter);
            c.Parameters.AddWithValue("$vb", i.ValidBefore);
            c.Parameters.AddWithValue("$s", i.Signature);
            c.Parameters.AddWithValue("$r", i.RequestId);
            c.Parameters.AddWithValue("$c", i.Cost);
            c.Parameters.AddWithValue("$src", i.Source.ToString());
            c.Parameters.AddWithValue("$st", X402State.Reserved.ToString());
            c.Parameters.AddWithValue("$now", now);
            return c.ExecuteNonQuery() == 1;
        }
    }

    /// <summary>Records a signed transaction before it is broadcast (Reserved or Sent → Sent; a previous hash is kept as prior).</summary>
    public void MarkSent(in NonceKey key, string txHash, string rawTx)
    {
        Update(key, """
            UPDATE intents SET state='Sent', prior_tx = CASE WHEN tx_hash IS NULL OR tx_hash=$h THEN prior_tx ELSE trim(prior_tx || ' ' || tx_hash) END,
              tx_hash=$h, raw_tx=$raw, error=NULL, updated_ms=$now
            WHERE asset=$a AND payer=$p AND nonce=$n AND state IN ('Reserved','Sent')
            """, c => { c.Parameters.AddWithValue("$h", txHash); c.Parameters.AddWithValue("$raw", rawTx); });
    }

    /// <summary>Moves an intent to a final state (from Reserved or Sent); false when it was final already.</summary>
    public bool MarkFinal(in NonceKey key, X402State state, string? error = null)
    {
        if (state is not (X402State.Released or X402State.Settled or X402State.Failed)) throw new ArgumentOutOfRangeException(nameof(state), state, "not a final state");
        return Update(key, "UPDATE intents SET state=$st, error=$e, updated_ms=$now WHERE asset=$a AND payer=$p AND nonce=$n AND state IN ('Reserved','Sent')",
            c => { c.Parameters.AddWithValue("$st", state.ToString()); c.Parameters.AddWithValue("$e", (object?)error ?? DBNull.Value); }) == 1;
    }

    /// <summary>Notes a transient error (kept for operators; the state does not change).</summary>
    public void NoteError(in NonceKey key, string error) =>
        Update(key, "UPDATE intents SET error=$e, updated_ms=$now WHERE asset=$a AND payer=$p AND nonce=$n", c => c.Parameters.AddWithValue("$e", error));

    /// <summary>The intent of <paramref name="key"/>, or null.</summary>
    public X402Intent? Find(in NonceKey key)
    {
        lock (_lock)
        {
            using var c = _db.CreateCommand();
            c.CommandText = "SELECT * FROM intents WHERE asset=$a AND payer=$p AND nonce=$n";
            Key(c, key);
            using var r = c.ExecuteReader();
            return r.Read() ? Read(r) : null;
        }
    }

    /// <summary>Intents in <paramref name="states"/>, oldest change first, at most <paramref name="limit"/>.</summary>
    public IReadOnlyList<X402Intent> List(IReadOnlyCollection<X402State> states, int limit)
    {
        lock (_lock)
        {
            using var c = _db.CreateCommand();
            var names = states.Select((s, i) => (Name: $"$s{i}", Value: s.ToString())).ToArray();
            c.CommandText = $"SELECT * FROM intents WHERE state IN ({string.Join(',', names.Select(n => n.Name))}) ORDER BY updated_ms, rowid LIMIT $limit";
            foreach (var (name, value) in names) c.Parameters.AddWithValue(name, value);
            c.Parameters.AddWithValue("$limit", limit);
            var list = new List<X402Intent>();
            using var r = c.ExecuteReader();
            while (r.Read()) list.Add(Read(r));
            return list;
        }
    }

    /// <summary>When the oldest intent not yet final (reserved or sent) was written, Unix ms; null when none is open.</summary>
    public long? OldestOpenCreatedUnixMs()
    {
        lock (_lock)
        {
            using var c = _db.CreateCommand();
            c.CommandText = "SELECT MIN(created_ms) FROM intents WHERE state IN ($r, $s)";
            c.Parameters.AddWithValue("$r", nameof(X402State.Reserved));
            c.Parameters.AddWithValue("$s", nameof(X402State.Sent));
            return c.ExecuteScalar() is long ms ? ms : null;
        }
    }

    /// <summary>How many intents are in each state.</summary>
    public IReadOnlyDictionary<X402State, long> Counts()
    {
        lock (_lock)
        {
            using var c = _db.CreateCommand();
            c.CommandText = "SELECT state, count(*) FROM intents GROUP BY state";
            var counts = Enum.GetValues<X402State>().ToDictionary(s => s, _ => 0L);
            using var r = c.ExecuteReader();
            while (r.Read()) counts[Enum.Parse<X402State>(r.GetString(0))] = r.GetInt64(1);
            return counts;
        }
    }

    /// <summary>Every key not Released (each nonce this server will settle or has settled): the nonce registry is rebuilt from them at start.</summary>
    public IReadOnlyList<NonceKey> UsedKeys()
    {
        lock (_lock)
        {
            using var c = _db.CreateCommand();
            c.CommandText = "SELECT asset, payer, nonce FROM intents WHERE state <> 'Released'";
            var keys = new List<NonceKey>();
            using var r = c.ExecuteReader();
            while (r.Read()) keys.Add(new NonceKey(EvmAddress.Parse(r.GetString(0)), EvmAddress.Parse(r.GetString(1)), ParseNonce(r.GetString(2))));
            return keys;
        }
    }

    private int Update(in NonceKey key, string sql, Action<SqliteCommand> bind)
    {
        long now = _time.GetUtcNow().ToUnixTimeMilliseconds();
        lock (_lock)
        {
            using var c = _db.CreateCommand();
            c.CommandText = sql;
            Key(c, key);
            c.Parameters.AddWithValue("$now", now);
            bind(c);
            return c.ExecuteNonQuery();
        }
    }

    private static void Key(SqliteCommand c, in NonceKey key)
    {
        c.Parameters.AddWithValue("$a", key.Asset.ToString());
        c.Parameters.AddWithValue("$p", key.From.ToString());
        c.Parameters.AddWithValue("$n", key.Nonce.ToString());
    }

    private static Bytes32 ParseNonce(string text) =>
        Bytes32.TryParse(text, out Bytes32 nonce) ? nonce : throw new InvalidDataException($"x402 store: '{text}' is not a nonce");

    private static X402Intent Read(SqliteDataReader r) => new()
    {
        Key = new NonceKey(EvmAddress.Parse(r.GetString(r.GetOrdinal("asset"))), EvmAddress.Parse(r.GetString(r.GetOrdinal("payer"))), ParseNonce(r.GetString(r.GetOrdinal("nonce")))),
        PayTo = EvmAddress.Parse(r.GetString(r.GetOrdinal("pay_to"))),
        Value = r.GetInt64(r.GetOrdinal("value")),
        ValidAfter = r.GetString(r.GetOrdinal("valid_after")),
        ValidBefore = r.GetString(r.GetOrdinal("valid_before")),
        Signature = r.GetString(r.GetOrdinal("signature")),
        RequestId = r.GetString(r.GetOrdinal("request_id")),
        Cost = r.GetInt64(r.GetOrdinal("cost")),
        Source = Enum.Parse<X402Source>(r.GetString(r.GetOrdinal("source"))),
        State = Enum.Parse<X402State>(r.GetString(r.GetOrdinal("state"))),
        TxHash = r.IsDBNull(r.GetOrdinal("tx_hash")) ? null : r.GetString(r.GetOrdinal("tx_hash")),
        RawTx = r.IsDBNull(r.GetOrdinal("raw_tx")) ? null : r.GetString(r.GetOrdinal("raw_tx")),
        PriorTxHashes = r.GetString(r.GetOrdinal("prior_tx")),
        Error = r.IsDBNull(r.GetOrdinal("error")) ? null : r.GetString(r.GetOrdinal("error")),
        CreatedUnixMs = r.GetInt64(r.GetOrdinal("created_ms")),
        UpdatedUnixMs = r.GetInt64(r.GetOrdinal("updated_ms")),
    };

    /// <summary>Closes the file.</summary>
    public void Dispose()
    {
        lock (_lock) _db.Dispose();
    }
}
