using System.CommandLine;
using System.Globalization;
using ComputeGrid.Server;
using ComputeGrid.Server.Trust;

namespace ComputeGrid.Cli.Trust;

/// <summary>
/// <c>computegrid operator add NAME | revoke NAME|ID | list</c>: operators (people, each with their own key) managed on a
/// data folder's trust store directly, whether or not a server runs on it (a running server picks the change up within a
/// second). The API does the same at <c>/api/operators</c>. A new key is printed once, on stdout.
/// </summary>
internal static class OperatorCommand
{
    public static Command Create()
    {
        var dataDir = new Option<string>("--data-dir") { Description = "The server's data folder.", DefaultValueFactory = _ => CliDefaults.DataDirectory, Recursive = true };
        var name = new Argument<string>("name") { Description = "The operator's name (letters, digits, '-', '_', '.', '@')." };
        var add = new Command("add", "Add an operator and print its API key (shown once).") { name };
        add.SetAction(pr => WithStore(pr.GetValue(dataDir)!, store =>
        {
            Principal first = store.List(PrincipalKind.Operator, 0, 1)[0];
            Principal p = store.CreatePrincipal(PrincipalKind.Operator, pr.GetValue(name)!, first.Id);
            var (info, key) = store.IssueKey(p.Id, "first", Principal.AllowedScopes(PrincipalKind.Operator), first.Id);
            store.Record(first.Id, "operator-added", $"operator {p.Id} {p.Name} (command line)");
            Console.Out.WriteLine(key);
            Console.Error.WriteLine($"operator {p.Id} '{p.Name}' added; its key {info.KeyId} is printed above and is not stored (only its hash is).");
            return 0;
        }));

        var who = new Argument<string>("operator") { Description = "The operator's name or id." };
        var revoke = new Command("revoke", "Disable an operator: every key of it stops working (within a second on a running server).") { who };
        revoke.SetAction(pr => WithStore(pr.GetValue(dataDir)!, store =>
        {
            string text = pr.GetValue(who)!;
            Principal? p = ulong.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out ulong id) ? store.Find(id) : store.Find(PrincipalKind.Operator, text);
            if (p is not { Kind: PrincipalKind.Operator }) return CliDefaults.Fail($"no operator '{text}'");
            if (p.Disabled is null && store.List(PrincipalKind.Operator, 0, int.MaxValue).Count(o => o.Disabled is null) <= 1)
                return CliDefaults.Fail($"'{p.Name}' is the last enabled operator; add another first");
            store.Disable(p.Id);
            store.Record(store.List(PrincipalKind.Operator, 0, 1)[0].Id, "operator-disabled", $"operator {p.Id} {p.Name} (command line)");
            Console.Out.WriteLine($"operator {p.Id} '{p.Name}' disabled");
            return 0;
        }));

        var list = new Command("list", "List the operators and their keys.");
        list.SetAction(pr => WithStore(pr.GetValue(dataDir)!, store =>
        {
            Console.Out.WriteLine("ID  NAME  STATE  KEYS (id: last used)");
            foreach (Principal p in store.List(PrincipalKind.Operator, 0, int.MaxValue))
            {
                var keys = store.KeysOf(p.Id).Where(k => k.Revoked is null)
                    .Select(k => $"{k.KeyId}: {(k.LastUsed is { } u ? u.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss'Z'", CultureInfo.InvariantCulture) : "never")}");
                Console.Out.WriteLine($"{p.Id}  {p.Name}  {(p.Disabled is null ? "enabled" : "disabled")}  {string.Join(", ", keys)}");
            }
            return 0;
        }));
        var deadLetters = new Command("dead-letters", "List paid inference's dead letters (captures the ledger refused; also GET /api/operator/dead-letters), oldest first.");
        deadLetters.SetAction(pr =>
        {
            string dir = Path.GetFullPath(pr.GetValue(dataDir)!);
            if (!File.Exists(ComputeGrid.Server.Inference.DeadLetters.PathIn(dir))) return CliDefaults.Fail($"{dir} has no money store ({ComputeGrid.Server.Inference.DeadLetters.RelativePath}): no server ran on it");
            try
            {
                using var letters = ComputeGrid.Server.Inference.DeadLetters.Open(dir, TimeProvider.System);
                Console.Out.WriteLine("ID  AT  CUSTOMER  NODE  COST  HOLD  REQUEST  REASON");
                long after = 0;
                while (letters.List(after, 1_000) is { Count: > 0 } page)
                {
                    foreach (var d in page)
                        Console.Out.WriteLine($"{d.Id}  {d.At.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss'Z'", CultureInfo.InvariantCulture)}  {d.Customer}  {d.Node}  {d.CostMicroUsd}  {d.HoldId}/{d.Generation}  {d.RequestKey}  {d.Reason}");
                    after = page[^1].Id;
                }
                Console.Error.WriteLine($"{letters.Count} dead letters");
                return 0;
            }
            catch (Exception e) when (e is InvalidDataException or IOException or UnauthorizedAccessException)
            {
                return CliDefaults.Fail(e.Message);
            }
        });
        return new Command("operator", "Manage operators (people with admin keys) on a data folder; list dead letters.") { dataDir, add, revoke, list, deadLetters };
    }

    // The store of the folder, with its first operator made if the folder is new (as the server's first start would).
    private static int WithStore(string dataDirectory, Func<TrustStore, int> act)
    {
        string dir = Path.GetFullPath(dataDirectory);
        try
        {
            Directory.CreateDirectory(dir);
            DataLayout.Check(dir);
            using TrustStore store = TrustStore.Open(dir);
            if (OperatorKeyFile.Bootstrap(store, dir)) Console.Error.WriteLine($"new data folder: the first operator's key is in {OperatorKeyFile.PathIn(dir)}");
            return act(store);
        }
        catch (Exception e) when (e is TrustStoreException or ServerStartException or OperatorKeyFileException or InvalidDataException or IOException or UnauthorizedAccessException)
        {
            return CliDefaults.Fail(e.Message);
        }
    }
}
