using System.Diagnostics;
using ComputeGrid.Server.Trust;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Time.Testing;
using Xunit.Abstractions;

namespace ComputeGrid.Server.Tests;

/// <summary>
/// The key store follows the torn-tail-vs-corruption rule: a byte changed anywhere in <c>trust.db</c> is either refused
/// at open (one line naming the file, and the table and row when a row is at fault) or changes nothing; a row edited,
/// lost or put back behind the store's back is refused; a torn WAL tail loses only the change it tore; ids are never
/// reused; <c>serve</c> and <c>operator</c> refuse a corrupt store with one line. Seeded: set CG_SEED to replay.
/// </summary>
public sealed class TrustStoreCorruptionTests(ITestOutputHelper output) : IDisposable
{
    private static readonly DateTimeOffset Start = new(2026, 3, 1, 9, 0, 0, TimeSpan.Zero);

    private readonly string _dir = TestServer.TempDir("trust-corrupt");

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    private int Seed(int fallback)
    {
        int seed = int.TryParse(Environment.GetEnvironmentVariable("CG_SEED"), out int s) ? s : fallback;
        output.WriteLine($"seed {seed} (set CG_SEED={seed} to replay)");
        return seed;
    }

    private string Folder(string name)
    {
        string path = Path.Combine(_dir, name);
        Directory.CreateDirectory(path);
        return path;
    }

    /// <summary>What a populated store holds, for the checks that need to find it again.</summary>
    private sealed record Content(ulong FirstOperator, ulong Customer, string CustomerKeyId, string RevokedKeyId, ulong Node, string NodeId, long LastAction);

    /// <summary>
    /// Operators, customers with keys (one revoked, one rotated, one customer disabled, last uses flushed), providers,
    /// nodes (one revoked) and operator actions; every kind of write the store makes. Closed at the end (the WAL is
    /// checkpointed into trust.db and removed).
    /// </summary>
    private static Content Populate(string folder, Random rng)
    {
        var time = new FakeTimeProvider(Start);
        using TrustStore s = TrustStore.Open(folder, time);
        var (firstKeyId, _, firstHash) = ApiKeyFormat.NewKey();
        s.CreateFirstOperator("root", firstKeyId, firstHash);
        ulong root = s.List(PrincipalKind.Operator, 0, 1)[0].Id;
        Principal bob = s.CreatePrincipal(PrincipalKind.Operator, "bob", root);
        s.IssueKey(bob.Id, "laptop", Scopes.Admin | Scopes.Read, root);
        var keys = new List<string>();
        var customers = new List<Principal>();
        foreach (string name in new[] { "acme", "globex", "initech", "umbrella" })
        {
            time.Advance(TimeSpan.FromSeconds(rng.Next(1, 100)));
            Principal c = s.CreatePrincipal(PrincipalKind.Customer, name, root, region: rng.Next(2) == 0 ? "frankfurt" : "tokyo");
            customers.Add(c);
            for (int k = 0; k < 2; k++)
            {
                var (info, key) = s.IssueKey(c.Id, $"key-{k}", Scopes.Inference | Scopes.Read, k == 0 ? root : null);
                keys.Add(key);
                Assert.Equal(AuthOutcome.Ok, s.Authenticate(key, out _, out _));
                s.Record(root, "fund", $"customer {c.Id}", amount: rng.Next(1, 1_000_000), asset: 1, transferId: (UInt128)rng.NextInt64() << 64 | (UInt128)(ulong)rng.NextInt64());
            }
        }
        time.Advance(TimeSpan.FromMinutes(5));
        Assert.Equal(keys.Count, s.FlushLastUse());
        string revoked = s.KeysOf(customers[0].Id)[^1].KeyId;
        s.RevokeKey(revoked);
        s.RotateKey(s.KeysOf(customers[1].Id)[0].KeyId, root);
        s.Disable(customers[3].Id);
        var providers = new[] { s.CreatePrincipal(PrincipalKind.Provider, "gpu-farm", root), s.CreatePrincipal(PrincipalKind.Provider, "rackspace", bob.Id) };
        foreach (Principal p in providers) s.IssueKey(p.Id, "ops", Scopes.Trade | Scopes.Read, root);
        NodeAdmission? first = null;
        for (int n = 0; n < 3; n++)
        {
            byte[] publicKey = new byte[32];
            rng.NextBytes(publicKey);
            NodeAdmission a = s.AdmitNode(providers[n % 2].Id, $"node-{n}", publicKey, 1_000 + n, root);
            first ??= a;
            s.Record(root, "node-admitted", a.NodeId);
        }
        s.RevokeNode("node-2");
        time.Advance(TimeSpan.FromMinutes(1));
        Assert.Equal(AuthOutcome.Ok, s.Authenticate(keys[4], out _, out _));
        s.FlushLastUse();
        OperatorAction last = s.Record(bob.Id, "ledger-accounts", "raw accounts", amount: 3);
        return new Content(root, customers[0].Id, s.KeysOf(customers[0].Id)[0].KeyId, revoked, first!.Principal, first.NodeId, last.Sequence);
    }

    private static string DumpOf(string folder)
    {
        using TrustStore s = TrustStore.Open(folder, new FakeTimeProvider(Start));
        return s.Dump();
    }

    /// <summary>Opens the store of <paramref name="folder"/>, which must refuse; returns the one-line message.</summary>
    private static string Refusal(string folder)
    {
        var e = Assert.Throws<InvalidDataException>(() => TrustStore.Open(folder, new FakeTimeProvider(Start)).Dispose());
        Assert.DoesNotContain('\n', e.Message);
        Assert.Contains(TrustStore.PathIn(folder), e.Message);
        return e.Message;
    }

    // Copies the store files of one folder into a fresh one.
    private string CopyOf(string from, string name)
    {
        string to = Folder(name);
        foreach (string f in Directory.GetFiles(from, TrustStore.FileName + "*").Where(f => !f.EndsWith("-shm", StringComparison.Ordinal)))
            File.Copy(f, Path.Combine(to, Path.GetFileName(f)), overwrite: true);
        return to;
    }

    private static void Sql(string folder, string sql, params (string Name, object? Value)[] args)
    {
        using var db = new SqliteConnection($"Data Source={TrustStore.PathIn(folder)};Pooling=False");
        db.Open();
        using var cmd = db.CreateCommand();
        cmd.CommandText = sql;
        foreach (var (name, value) in args) cmd.Parameters.AddWithValue(name, value ?? DBNull.Value);
        cmd.ExecuteNonQuery();
    }

    private static object? SqlValue(string folder, string sql)
    {
        using var db = new SqliteConnection($"Data Source={TrustStore.PathIn(folder)};Pooling=False");
        db.Open();
        using var cmd = db.CreateCommand();
        cmd.CommandText = sql;
        return cmd.ExecuteScalar();
    }

    [Fact]
    public void A_byte_flipped_anywhere_in_the_key_store_is_refused_or_changes_nothing_never_a_silent_change()
    {
        int seed = Seed(20260301);
        var rng = new Random(seed);
        string original = Folder("original");
        Populate(original, rng);
        Assert.False(File.Exists(TrustStore.PathIn(original) + "-wal"), "closing the store leaves everything in trust.db");
        string reference = DumpOf(original);
        byte[] bytes = File.ReadAllBytes(TrustStore.PathIn(original));
        Assert.Contains("key ", reference);
        Assert.Contains("node node-2", reference);
        Assert.Contains("action ", reference);

        // Half the flips anywhere in the file (most of a small database is free space), half among its non-zero bytes
        // (where the pages' headers, cell pointers and rows are).
        const int Flips = 400;
        int[] nonZero = Enumerable.Range(0, bytes.Length).Where(i => bytes[i] != 0).ToArray();
        int refused = 0, unchanged = 0;
        var reasons = new Dictionary<string, int>();
        string trial = Folder("trial");
        for (int i = 0; i < Flips; i++)
        {
            int offset = i % 2 == 0 ? rng.Next(bytes.Length) : nonZero[rng.Next(nonZero.Length)];
            byte mask = (byte)rng.Next(1, 256);
            foreach (string f in Directory.GetFiles(trial)) File.Delete(f);
            byte[] copy = (byte[])bytes.Clone();
            copy[offset] ^= mask;
            File.WriteAllBytes(TrustStore.PathIn(trial), copy);
            TrustStore store;
            try { store = TrustStore.Open(trial, new FakeTimeProvider(Start)); }
            catch (InvalidDataException e)
            {
                Assert.False(e.Message.Contains('\n'), $"offset {offset}: a refusal is one line: {e.Message}");
                Assert.True(e.Message.Contains(TrustStore.PathIn(trial), StringComparison.Ordinal), $"offset {offset}: the refusal names the file: {e.Message}");
                string reason = e.Message.Contains("checksum mismatch", StringComparison.Ordinal) ? "row checksum"
                    : e.Message.Contains("digest", StringComparison.Ordinal) ? "table digest"
                    : e.Message.Contains("integrity check", StringComparison.Ordinal) ? "SQLite integrity check"
                    : e.Message.Contains("sqlite_schema", StringComparison.Ordinal) ? "schema hash"
                    : "SQLite error at open";
                reasons[reason] = reasons.GetValueOrDefault(reason) + 1;
                refused++;
                continue;
            }
            catch (Exception e)
            {
                Assert.Fail($"seed {seed}, flip {i} at offset {offset} (mask {mask:x2}): the open failed with {e.GetType().Name} instead of refusing: {e}");
                throw;
            }
            string dump;
            using (store) dump = store.Dump();
            Assert.True(dump == reference, $"seed {seed}, flip {i} at offset {offset} (mask {mask:x2}) of {bytes.Length}: the store opened with different content");
            unchanged++;
        }
        output.WriteLine($"{bytes.Length} bytes, {Flips} flips: {refused} refused ({string.Join(", ", reasons.OrderBy(r => r.Key).Select(r => $"{r.Key} {r.Value}"))}), {unchanged} opened with the same content");
        Assert.Equal(Flips, refused + unchanged);
        Assert.True(refused > 0, "no flip was refused: the sweep missed the content");
        Assert.True(unchanged > 0, "every flip was refused: the sweep never hit bytes that do not matter");
        Assert.True(reasons.GetValueOrDefault("row checksum") > 0, "no flip was caught by a row checksum: the sweep never changed a row's value");
    }

    [Fact]
    public void A_value_changed_behind_the_stores_back_is_refused_naming_the_file_the_table_and_the_row()
    {
        var rng = new Random(Seed(7));
        string original = Folder("original");
        Content c = Populate(original, rng);
        // Each edit is one SQLite can not see: the page is valid, the row's value is another. The first four are what
        // would silently change who may do what.
        var edits = new (string Table, string Row, string Sql)[]
        {
            ("principals", $"{c.Customer}", $"UPDATE principals SET kind={(int)PrincipalKind.Operator} WHERE id={c.Customer}"),
            ("api_keys", c.CustomerKeyId, $"UPDATE api_keys SET secret_sha256=zeroblob(32) WHERE key_id='{c.CustomerKeyId}'"),
            ("api_keys", c.RevokedKeyId, $"UPDATE api_keys SET revoked_ms=NULL WHERE key_id='{c.RevokedKeyId}'"),
            ("nodes", $"{c.Node}", $"UPDATE nodes SET public_key=zeroblob(32) WHERE principal={c.Node}"),
            ("principals", $"{c.Node}", $"UPDATE principals SET parent={c.FirstOperator} WHERE id={c.Node}"),
            ("operator_actions", $"{c.LastAction}", $"UPDATE operator_actions SET amount=amount+1 WHERE seq={c.LastAction}"),
            ("meta", TrustRows.SchemaHashKey, $"UPDATE meta SET value=upper(value) WHERE key='{TrustRows.SchemaHashKey}'"),
            // The checksum itself changed: the row no longer matches it.
            ("api_keys", c.CustomerKeyId, $"UPDATE api_keys SET checksum=zeroblob(16) WHERE key_id='{c.CustomerKeyId}'"),
            ("principals", $"{c.FirstOperator}", $"UPDATE principals SET checksum=substr(checksum, 1, 15) || x'00' WHERE id={c.FirstOperator}"),
            ("table_digests", "api_keys", "UPDATE table_digests SET row_count=row_count+1 WHERE name='api_keys'"),
        };
        for (int i = 0; i < edits.Length; i++)
        {
            var (table, row, sql) = edits[i];
            string copy = CopyOf(original, $"edit-{i}");
            Sql(copy, sql);
            string message = Refusal(copy);
            Assert.Contains($"table {table}, row {row}: checksum mismatch", message);
            output.WriteLine(message);
        }
    }

    [Fact]
    public void A_row_lost_added_or_put_back_as_an_older_version_is_refused_by_its_tables_digest()
    {
        var rng = new Random(Seed(11));
        string original = Folder("original");
        var time = new FakeTimeProvider(Start);
        string keyId;
        object?[] before;
        using (TrustStore s = TrustStore.Open(original, time))
        {
            OperatorKeyFile.Bootstrap(s, original);
            ulong root = s.List(PrincipalKind.Operator, 0, 1)[0].Id;
            Principal c = s.CreatePrincipal(PrincipalKind.Customer, "acme", root);
            keyId = s.IssueKey(c.Id, "laptop", Scopes.Inference, root).Info.KeyId;
            s.Record(root, "fund", "acme", amount: rng.Next(1, 1000), asset: 1);
            s.Record(root, "fund", "acme", amount: rng.Next(1, 1000), asset: 1);
        }
        // The key's row as it was before its revocation: values and checksum, all valid.
        using (var db = new SqliteConnection($"Data Source={TrustStore.PathIn(original)};Pooling=False"))
        {
            db.Open();
            using var cmd = db.CreateCommand();
            cmd.CommandText = $"{TrustRows.ApiKeys.Select} WHERE key_id='{keyId}'";
            using var r = cmd.ExecuteReader();
            Assert.True(r.Read());
            before = new object?[r.FieldCount];
            for (int i = 0; i < before.Length; i++) before[i] = r.IsDBNull(i) ? null : r.GetValue(i);
        }
        using (TrustStore s = TrustStore.Open(original, time)) Assert.NotNull(s.RevokeKey(keyId)!.Revoked);

        // The revoked key put back as it was (an older version of the row, with its own valid checksum).
        string putBack = CopyOf(original, "put-back");
        Sql(putBack, "UPDATE api_keys SET revoked_ms=$r, checksum=$c WHERE key_id=$k", ("$r", before[TrustRows.ApiKeys.Index("revoked_ms")]), ("$c", before[^1]), ("$k", keyId));
        Assert.Contains("table api_keys: its 2 rows do not add up to its digest (2 rows recorded)", Refusal(putBack));

        // A lost row.
        string lost = CopyOf(original, "lost");
        Sql(lost, "DELETE FROM operator_actions WHERE seq=(SELECT max(seq) FROM operator_actions)");
        Assert.Contains("table operator_actions: its 1 rows do not add up to its digest (2 rows recorded)", Refusal(lost));

        // An added row with a valid checksum of its own: a key nobody issued.
        string added = CopyOf(original, "added");
        var (forgedId, _, forgedHash) = ApiKeyFormat.NewKey();
        object?[] row = [forgedId, 1L, "forged", (long)(Scopes.Admin | Scopes.Read), forgedHash, Start.ToUnixTimeMilliseconds(), null, null, null];
        Sql(added, "INSERT INTO api_keys(key_id, principal, name, scopes, secret_sha256, created_ms, checksum) VALUES($k, 1, 'forged', $s, $h, $t, $c)",
            ("$k", forgedId), ("$s", row[3]), ("$h", forgedHash), ("$t", row[5]), ("$c", TrustRows.Checksum("api_keys", row)));
        Assert.Contains("table api_keys: its 3 rows do not add up to its digest (2 rows recorded)", Refusal(added));

        // The untouched store opens, the key revoked.
        using TrustStore ok = TrustStore.Open(original, time);
        Assert.NotNull(ok.FindKey(keyId)!.Revoked);
    }

    [Fact]
    public void A_reload_checks_what_another_process_wrote_and_refuses_a_tampered_row_keeping_what_it_had()
    {
        string folder = Folder("shared");
        var time = new FakeTimeProvider(Start);
        using TrustStore server = TrustStore.Open(folder, time);
        OperatorKeyFile.Bootstrap(server, folder);
        // Another process (computegrid operator …) adds a customer: the reload picks it up, checked.
        using (TrustStore cli = TrustStore.Open(folder, time)) cli.CreatePrincipal(PrincipalKind.Customer, "acme", 1);
        Assert.True(server.Refresh());
        Principal acme = server.Find(PrincipalKind.Customer, "acme")!;
        string before = server.Dump();

        Sql(folder, $"UPDATE principals SET kind={(int)PrincipalKind.Operator} WHERE id={acme.Id}");
        var e = Assert.Throws<InvalidDataException>(() => server.Refresh());
        Assert.Contains($"table principals, row {acme.Id}: checksum mismatch", e.Message);
        Assert.Equal(PrincipalKind.Customer, server.Find(acme.Id)!.Kind);
        Assert.Equal(before, server.Dump());
        // A write that would touch the tampered row checks it first and refuses too.
        Assert.Throws<InvalidDataException>(() => server.Disable(acme.Id));
        Assert.Null(server.Find(acme.Id)!.Disabled);
    }

    [Fact]
    public void Ids_are_never_reused_and_a_rewound_id_sequence_is_refused()
    {
        string folder = Folder("ids");
        var time = new FakeTimeProvider(Start);
        var ids = new List<ulong>();
        long lastAction;
        using (TrustStore s = TrustStore.Open(folder, time))
        {
            OperatorKeyFile.Bootstrap(s, folder);
            ulong root = s.List(PrincipalKind.Operator, 0, 1)[0].Id;
            ids.Add(root);
            for (int i = 0; i < 3; i++) ids.Add(s.CreatePrincipal(PrincipalKind.Customer, $"c{i}", root).Id);
            s.Disable(ids[^1]);
            lastAction = s.Record(root, "x", "y").Sequence;
        }
        // A rejected insert (a taken name) rolls back and takes no id.
        using (TrustStore s = TrustStore.Open(folder, time))
        {
            Assert.Throws<TrustStoreException>(() => s.CreatePrincipal(PrincipalKind.Customer, "c0", ids[0]));
            ulong next = s.CreatePrincipal(PrincipalKind.Customer, "c3", ids[0]).Id;
            Assert.Equal(ids.Max() + 1, next);
            ids.Add(next);
            Assert.Equal(lastAction + 1, s.Record(ids[0], "x", "z").Sequence);
        }
        Assert.Equal(ids.Count, ids.Distinct().Count());

        // SQLite's own counter rewound (as a flipped byte in sqlite_sequence would): refused, not trusted.
        string rewound = CopyOf(folder, "rewound");
        Sql(rewound, "UPDATE sqlite_sequence SET seq=1 WHERE name='principals'");
        Assert.Contains($"table sqlite_sequence, row principals: 1 is not the highest id assigned ({ids.Max()})", Refusal(rewound));
    }

    [Fact]
    public void A_torn_WAL_tail_is_discarded_by_SQLite_and_every_change_committed_before_it_survives()
    {
        var rng = new Random(Seed(23));
        string live = Folder("live");
        var time = new FakeTimeProvider(Start);
        using TrustStore s = TrustStore.Open(live, time);
        OperatorKeyFile.Bootstrap(s, live);
        string wal = TrustStore.PathIn(live) + "-wal";
        Assert.Equal(0, new FileInfo(wal).Length); // each change is checkpointed into trust.db: at rest the WAL is empty
        // As a crash between a commit and its checkpoint leaves it: committed changes only in the WAL.
        s.CheckpointAfterWrite = false;
        ulong root = s.List(PrincipalKind.Operator, 0, 1)[0].Id;
        for (int i = 0; i < 5; i++) s.IssueKey(s.CreatePrincipal(PrincipalKind.Customer, $"c{i}", root).Id, "k", Scopes.Inference, root);
        s.Record(root, "fund", "c1", amount: rng.Next(1, 1000), asset: 1);
        Assert.True(new FileInfo(wal).Length > 0, "the changes are in the WAL");
        string committed = CopyOf(live, "committed");
        string withGarbage = CopyOf(live, "garbage");
        // One more change (one transaction), torn: its last frame (the commit frame) cut in the middle.
        s.CreatePrincipal(PrincipalKind.Customer, "late", root);
        string complete = CopyOf(live, "complete");
        string torn = CopyOf(live, "torn");

        byte[] garbage = new byte[rng.Next(100, 5000)];
        rng.NextBytes(garbage);
        using (var f = new FileStream(TrustStore.PathIn(withGarbage) + "-wal", FileMode.Append)) f.Write(garbage);
        long walLength = new FileInfo(TrustStore.PathIn(torn) + "-wal").Length;
        long pageSize = (long)SqlValue(committed, "PRAGMA page_size")!;
        using (var f = new FileStream(TrustStore.PathIn(torn) + "-wal", FileMode.Open)) f.SetLength(walLength - rng.Next(1, (int)pageSize));

        string expected = DumpOf(committed);
        Assert.Contains("principal 6 Customer c4", expected);
        Assert.Equal(expected, DumpOf(withGarbage));
        Assert.Equal(expected, DumpOf(torn));
        string all = DumpOf(complete);
        Assert.Contains("Customer late", all);
        Assert.NotEqual(expected, all);
    }

    [Fact]
    public void A_version_1_store_is_migrated_in_place_with_every_row_checksummed()
    {
        string folder = Folder("v1");
        var (keyId, _, hash) = ApiKeyFormat.NewKey();
        byte[] nodeKey = new byte[32];
        new Random(Seed(5)).NextBytes(nodeKey);
        long t = Start.ToUnixTimeMilliseconds();
        using (var db = new SqliteConnection($"Data Source={TrustStore.PathIn(folder)};Pooling=False"))
        {
            db.Open();
            using var cmd = db.CreateCommand();
            cmd.CommandText = TrustStore.SchemaV1 + $"""
                INSERT INTO principals(kind, name, created_ms) VALUES(1, 'root', {t});
                INSERT INTO principals(kind, name, created_ms, created_by, region) VALUES(2, 'acme', {t}, 1, 'tokyo');
                INSERT INTO principals(kind, name, created_ms, created_by) VALUES(3, 'farm', {t}, 1);
                INSERT INTO principals(kind, name, created_ms, created_by, parent) VALUES(4, 'node-a', {t}, 1, 3);
                INSERT INTO principals(kind, name, created_ms, created_by) VALUES(2, 'gone', {t}, 1);
                DELETE FROM principals WHERE name='gone';
                INSERT INTO api_keys(key_id, principal, name, scopes, secret_sha256, created_ms, last_used_ms) VALUES($k, 2, 'laptop', 5, $h, {t}, {t + 5});
                INSERT INTO nodes(principal, node_id, provider, public_key, price_ceiling) VALUES(4, 'node-a', 3, $n, 2000);
                INSERT INTO operator_actions(at_ms, operator, action, subject, amount, asset) VALUES({t}, 1, 'fund', 'acme', 500, 1);
                """;
            cmd.Parameters.AddWithValue("$k", keyId);
            cmd.Parameters.AddWithValue("$h", hash);
            cmd.Parameters.AddWithValue("$n", nodeKey);
            cmd.ExecuteNonQuery();
        }

        string dump;
        using (TrustStore s = TrustStore.Open(folder, new FakeTimeProvider(Start)))
        {
            dump = s.Dump();
            Assert.Equal("2", SqlValue(folder, "SELECT value FROM meta WHERE key='schema'"));
            Assert.Equal(0L, SqlValue(folder, "SELECT count(*) FROM principals WHERE length(checksum) <> 16"));
            // Id 5 was issued once (then deleted) by version 1: it is not issued again.
            Assert.Equal(6UL, s.CreatePrincipal(PrincipalKind.Customer, "new", 1).Id);
        }
        Assert.Contains($"key {keyId} principal=2 laptop scopes=5 hash={Convert.ToHexStringLower(hash)} created={t} by= revoked=- used={t + 5}", dump);
        Assert.Contains($"node node-a principal=4 provider=3 key={Convert.ToHexStringLower(nodeKey)} ceiling=2000 revoked=-", dump);
        Assert.Contains($"action 1 {t} operator=1 fund 'acme' amount=500 asset=1 transfer=", dump);
        Assert.Contains("principal 2 Customer acme parent= region=tokyo", dump);
        Assert.DoesNotContain("gone", dump);
        // Migrated rows are checked like new ones.
        Sql(folder, $"UPDATE api_keys SET scopes=15 WHERE key_id='{keyId}'");
        Assert.Contains($"table api_keys, row {keyId}: checksum mismatch", Refusal(folder));
    }

    [Fact]
    public async Task Serve_and_the_operator_command_refuse_a_corrupt_key_store_with_one_line()
    {
        string folder = Folder("served");
        using (TrustStore s = TrustStore.Open(folder)) OperatorKeyFile.Bootstrap(s, folder);
        Sql(folder, "UPDATE principals SET name='mallory' WHERE id=1");
        string expected = $"table principals, row 1: checksum mismatch";

        foreach (string[] args in new[]
        {
            new[] { "serve", "--urls", "http://127.0.0.1:0", "--node-urls", "", "--no-sites", "--data-dir", folder },
            new[] { "operator", "list", "--data-dir", folder },
        })
        {
            var (code, stderr) = await RunCliAsync(args);
            string[] lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            output.WriteLine($"{args[0]}: exit {code}: {stderr.Trim()}");
            Assert.Equal(2, code);
            string line = Assert.Single(lines);
            Assert.StartsWith("error: The trust store ", line);
            Assert.Contains(TrustStore.PathIn(folder), line);
            Assert.Contains(expected, line);
        }
    }

    [Fact]
    public async Task A_row_tampered_while_serving_stops_the_server_with_exit_code_1()
    {
        string folder = Folder("tampered-live");
        var (server, _) = await TestServer.StartChildAsync(folder);
        try
        {
            // Another process changes a row without its checksum: the next reload (every second) finds it and the server stops.
            Sql(folder, "UPDATE principals SET name='mallory' WHERE id=1");
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await server.WaitForExitAsync(timeout.Token);
            Assert.Equal(1, server.ExitCode);
        }
        finally
        {
            if (!server.HasExited) server.Kill(entireProcessTree: true);
            server.Dispose();
        }
    }

    private static async Task<(int Code, string Stderr)> RunCliAsync(string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "computegrid.dll"));
        foreach (string a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        Task<string> stdout = p.StandardOutput.ReadToEndAsync();
        Task<string> stderr = p.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        try { await p.WaitForExitAsync(timeout.Token); }
        catch (OperationCanceledException)
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"computegrid {string.Join(' ', args)} did not exit in 60 s (it should refuse at once).");
        }
        await stdout;
        return (p.ExitCode, await stderr);
    }
}
