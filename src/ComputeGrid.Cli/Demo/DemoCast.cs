using System.Text.Json;

namespace ComputeGrid.Cli.Demo;

/// <summary>An actor of the demo: its principal and its own API key.</summary>
/// <param name="Name">The principal's name.</param>
/// <param name="Id">The principal's id.</param>
/// <param name="Key">Its API key (the driver acts with it, never with the operator's).</param>
/// <param name="Region">Its home region (customers).</param>
public sealed record DemoActor(string Name, ulong Id, string Key, string? Region);

/// <summary>
/// The demo's actors as principals of the running server, made through the operator API the way an operator would, and
/// made once: their keys are kept in <c>DATA/demo-actors.json</c> (0600), a later start on the same data folder reuses
/// them, an actor whose key was lost gets a new one (its principal stays), and every funding carries an id of its own
/// so a restart funds nothing twice.
/// </summary>
public sealed class DemoCast
{
    /// <summary>The file the actors' keys are kept in, in the data folder.</summary>
    public const string FileName = DemoWorld.ActorsFile;

    /// <summary>The provider of every demo node.</summary>
    public required DemoActor Provider { get; init; }

    /// <summary>The keyed customers, in <see cref="DemoWorld.Customers"/>' order.</summary>
    public required IReadOnlyList<DemoActor> Customers { get; init; }

    /// <summary>The compute buyers, in <see cref="DemoWorld.Buyers"/>' order.</summary>
    public required IReadOnlyList<DemoActor> Buyers { get; init; }

    /// <summary>The share holders, in <see cref="DemoWorld.Holders"/>' order.</summary>
    public required IReadOnlyList<DemoActor> Holders { get; init; }

    /// <summary>Each demo node's id on the exchange (its principal id), by node id.</summary>
    public required IReadOnlyDictionary<string, long> ExchangeNodes { get; init; }

    /// <summary>The path of the actors' key file in <paramref name="dataDirectory"/>.</summary>
    public static string PathIn(string dataDirectory) => Path.Combine(dataDirectory, FileName);

    /// <summary>
    /// Makes (or finds) every actor, funds them once, lists the provider's nodes on the exchange and issues the shares of
    /// the nodes that issue them. Every step is idempotent, so a restart on the same data folder repeats none of them.
    /// </summary>
    /// <param name="api">The server's API.</param>
    /// <param name="operatorKey">An operator's key (creates, keys and funds the actors, approves the issuer).</param>
    /// <param name="dataDirectory">The server's data folder, where the actors' keys are kept.</param>
    /// <param name="ct">Stops the setup.</param>
    /// <exception cref="DemoSetupException">The server refused a step.</exception>
    public static async Task<DemoCast> EnsureAsync(DemoApi api, string operatorKey, string dataDirectory, CancellationToken ct)
    {
        string file = PathIn(dataDirectory);
        var keys = Load(file);
        async Task<DemoActor> Actor(string kind, string name, string? region)
        {
            DemoActor actor = await PrincipalAsync(api, operatorKey, kind, name, region, keys.GetValueOrDefault(name), ct);
            if (keys.GetValueOrDefault(name) != actor)
            {
                keys[name] = actor;
                Save(file, keys);
            }
            return actor;
        }

        DemoActor provider = await Actor("provider", DemoWorld.Provider, null);
        await Must(api.PostAsync($"/api/providers/{provider.Id}/collateral", operatorKey, new { amount = DemoWorld.ProviderCollateral, funding_id = "demo-collateral" }, ct), "fund the provider's collateral");
        var customers = new List<DemoActor>();
        foreach (DemoCustomer c in DemoWorld.Customers)
        {
            DemoActor a = await Actor("customer", c.Name, c.Region);
            await Must(api.PostAsync($"/api/customers/{a.Id}/fund", operatorKey, new { amount = DemoWorld.CustomerFunding, funding_id = "demo-initial" }, ct), $"fund {c.Name}");
            customers.Add(a);
        }
        var buyers = new List<DemoActor>();
        foreach (DemoCustomer c in DemoWorld.Buyers) buyers.Add(await TraderAsync(api, operatorKey, await Actor("customer", c.Name, c.Region), ct));
        var holders = new List<DemoActor>();
        foreach (DemoCustomer c in DemoWorld.Holders) holders.Add(await TraderAsync(api, operatorKey, await Actor("customer", c.Name, c.Region), ct));

        // The provider lists each node's GPUs (a node listed before answers 409: already registered), then reads the ids.
        foreach (DemoNode n in DemoWorld.Nodes)
        {
            DemoAnswer listed = await api.PostAsync("/api/exchange/nodes", provider.Key, new { node_id = n.Id, gpu = DemoWorld.Gpu, region = n.Region, gpus = n.Gpus }, ct);
            if (!listed.Ok && listed.Status != 409) throw new DemoSetupException($"list node {n.Id} on the exchange: {listed.Reason}");
        }
        DemoAnswer nodes = await Must(api.GetAsync("/api/exchange/nodes", provider.Key, ct), "read the provider's exchange nodes");
        var exchangeNodes = new Dictionary<string, long>();
        foreach (JsonElement n in nodes["nodes"].EnumerateArray()) exchangeNodes[n.GetProperty("name").GetString()!] = n.GetProperty("id").GetInt64();
        foreach (DemoNode n in DemoWorld.Nodes)
            if (!exchangeNodes.ContainsKey(n.Id)) throw new DemoSetupException($"node {n.Id} is not listed on the exchange after listing it");

        // Shares: the operator approves the issuer, the provider issues the nodes that issue shares (409: issued before).
        await Must(api.PostAsync($"/api/shares/issuers/{provider.Id}", operatorKey, new { }, ct), "approve the share issuer");
        foreach (DemoNode n in DemoWorld.Nodes.Where(n => n.SharesIssued))
        {
            DemoAnswer issued = await api.PostAsync("/api/shares", provider.Key, new { node_id = exchangeNodes[n.Id], supply = DemoWorld.ShareSupply }, ct);
            if (!issued.Ok && issued.Status != 409) throw new DemoSetupException($"issue shares of {n.Id}: {issued.Reason}");
        }
        return new DemoCast { Provider = provider, Customers = customers, Buyers = buyers, Holders = holders, ExchangeNodes = exchangeNodes };
    }

    /// <summary>
    /// Tops a trader's exchange account up to <see cref="DemoWorld.TraderFunding"/> when it fell under a fifth of it: the
    /// operator funds its balance (the funding id is the balance's credits so far, so a retry funds once) and the trader
    /// deposits it.
    /// </summary>
    /// <param name="api">The server's API.</param>
    /// <param name="operatorKey">An operator's key (funds the trader's balance).</param>
    /// <param name="trader">The trader, acting with its own key for its deposit.</param>
    /// <param name="ct">Stops it.</param>
    public static async Task<DemoActor> TraderAsync(DemoApi api, string operatorKey, DemoActor trader, CancellationToken ct)
    {
        DemoAnswer account = await Must(api.GetAsync("/api/exchange/account", trader.Key, ct), $"read {trader.Name}'s trading account");
        long available = account["available"].GetInt64();
        if (available >= DemoWorld.TraderFunding / 5) return trader;
        long topUp = DemoWorld.TraderFunding - available;
        DemoAnswer me = await Must(api.GetAsync("/api/inference/account", trader.Key, ct), $"read {trader.Name}'s balance");
        if (me["available"].GetInt64() < topUp)
        {
            DemoAnswer whoami = await Must(api.GetAsync("/api/me", trader.Key, ct), $"read {trader.Name}'s accounts");
            long credited = whoami["accounts"].EnumerateArray().Select(a => a.GetProperty("credits_posted").GetInt64()).Sum();
            await Must(api.PostAsync($"/api/customers/{trader.Id}/fund", operatorKey, new { amount = topUp, funding_id = $"demo-top-up-{credited}" }, ct), $"fund {trader.Name}");
        }
        await Must(api.PostAsync("/api/exchange/deposits", trader.Key, new { amount = topUp }, ct), $"deposit for {trader.Name}");
        return trader;
    }

    private static async Task<DemoActor> PrincipalAsync(DemoApi api, string operatorKey, string kind, string name, string? region, DemoActor? known, CancellationToken ct)
    {
        // A key kept from an earlier start that still works is the actor.
        if (known is not null && (await api.GetAsync("/api/me", known.Key, ct)).Ok) return known;
        string path = kind == "provider" ? "/api/providers" : "/api/customers";
        DemoAnswer created = await api.PostAsync(path, operatorKey, region is null ? new { name } : new { name, region }, ct);
        if (created.Ok)
            return new DemoActor(name, created["principal"].GetProperty("id").GetUInt64(), created["api_key"].GetString()!, region);
        if (created.Status != 409) throw new DemoSetupException($"create {kind} {name}: {created.Reason}");
        // The principal exists (made by an earlier start, or the fleet's admission for the provider): a new key for it.
        ulong id = await FindAsync(api, operatorKey, kind, name, ct) ?? throw new DemoSetupException($"{kind} {name} exists but is not listed");
        DemoAnswer key = await Must(api.PostAsync($"/api/principals/{id}/keys", operatorKey, new { name = "demo-driver" }, ct), $"issue a key for {name}");
        return new DemoActor(name, id, key["api_key"].GetString()!, region);
    }

    private static async Task<ulong?> FindAsync(DemoApi api, string operatorKey, string kind, string name, CancellationToken ct)
    {
        ulong after = 0;
        while (true)
        {
            DemoAnswer page = await Must(api.GetAsync($"/api/principals?kind={kind}&after={after}&limit=100", operatorKey, ct), $"list {kind}s");
            foreach (JsonElement p in page["principals"].EnumerateArray())
                if (p.GetProperty("name").GetString() == name) return p.GetProperty("id").GetUInt64();
            if (page["next"].ValueKind != JsonValueKind.Number) return null;
            after = page["next"].GetUInt64();
        }
    }

    private static async Task<DemoAnswer> Must(Task<DemoAnswer> call, string what)
    {
        DemoAnswer a = await call;
        return a.Ok ? a : throw new DemoSetupException($"{what}: {a.Reason}");
    }

    private static Dictionary<string, DemoActor> Load(string file)
    {
        if (!File.Exists(file)) return [];
        try { return JsonSerializer.Deserialize<Dictionary<string, DemoActor>>(File.ReadAllText(file)) ?? []; }
        catch (JsonException) { return []; } // unreadable: the actors get new keys (their principals stay)
    }

    // Written whole to a new file (0600 from its creation: it holds keys) and renamed over the old one.
    private static void Save(string file, Dictionary<string, DemoActor> keys)
    {
        string temp = file + ".tmp";
        var options = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows()) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        using (var stream = new FileStream(temp, options))
        {
            JsonSerializer.Serialize(stream, keys, new JsonSerializerOptions { WriteIndented = true });
            stream.Flush(flushToDisk: true);
        }
        File.Move(temp, file, overwrite: true);
    }
}

/// <summary>The demo could not set its actors up (the server refused a step): the message says which step and why.</summary>
public sealed class DemoSetupException(string message) : Exception(message);
