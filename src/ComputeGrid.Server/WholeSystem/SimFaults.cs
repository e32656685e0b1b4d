namespace ComputeGrid.Server.WholeSystem;

/// <summary>A kind of fault the whole-system simulation injects at seeded moments. Stable names (the CLI's <c>--faults</c>).</summary>
public enum SimFaultKind
{
    /// <summary><c>node_crash</c>: an inference node dies in the middle of its next request and stays down for a while (its leases see an outage).</summary>
    NodeCrash,
    /// <summary><c>node_garbage</c>: a node answers its next requests with vectors that are not numbers.</summary>
    NodeGarbage,
    /// <summary><c>partition</c>: the link between the server and a node drops requests and heartbeats, or delays them, for a while.</summary>
    Partition,
    /// <summary><c>miner_silent</c>: a rack of miners accepts connections and never answers.</summary>
    MinerSilent,
    /// <summary><c>miner_garbage</c>: a rack of miners answers bytes that are not the cgminer protocol.</summary>
    MinerGarbage,
    /// <summary><c>miner_slow</c>: a rack of miners answers late (within the driver's timeout).</summary>
    MinerSlow,
    /// <summary><c>ledger_io</c>: a write, torn write or fdatasync error on the ledger log or the exchange journal; the writer stops and everything reopens from disk.</summary>
    LedgerIo,
    /// <summary><c>crash_restart</c>: every component is disposed and reopened from its files on disk.</summary>
    CrashRestart,
    /// <summary><c>clock_jump</c>: the simulated clock jumps forward by minutes to hours at once.</summary>
    ClockJump,
}

/// <summary>The fault kinds' names and the parsing of <c>--faults</c>.</summary>
public static class SimFaults
{
    /// <summary>Every kind, in a fixed order (the order of the metrics).</summary>
    public static IReadOnlyList<SimFaultKind> All { get; } = Enum.GetValues<SimFaultKind>();

    /// <summary>The kind's name as the CLI and the metrics write it (<c>node_crash</c>, …).</summary>
    public static string Name(SimFaultKind kind) => kind switch
    {
        SimFaultKind.NodeCrash => "node_crash",
        SimFaultKind.NodeGarbage => "node_garbage",
        SimFaultKind.Partition => "partition",
        SimFaultKind.MinerSilent => "miner_silent",
        SimFaultKind.MinerGarbage => "miner_garbage",
        SimFaultKind.MinerSlow => "miner_slow",
        SimFaultKind.LedgerIo => "ledger_io",
        SimFaultKind.CrashRestart => "crash_restart",
        SimFaultKind.ClockJump => "clock_jump",
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };

    /// <summary>
    /// Parses a comma-separated list of names, <c>all</c> or <c>none</c> (empty is none). Returns false with a one-line
    /// error naming the first unknown name.
    /// </summary>
    public static bool TryParse(string? text, out IReadOnlySet<SimFaultKind> kinds, out string? error)
    {
        var set = new HashSet<SimFaultKind>();
        kinds = set;
        error = null;
        foreach (string raw in (text ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            string name = raw.ToLowerInvariant();
            if (name == "all") { set.UnionWith(All); continue; }
            if (name == "none") continue;
            SimFaultKind? found = null;
            foreach (SimFaultKind k in All)
                if (Name(k) == name) found = k;
            if (found is not { } kind)
            {
                error = $"unknown fault '{raw}' (known: all, none, {string.Join(", ", All.Select(Name))})";
                return false;
            }
            set.Add(kind);
        }
        return true;
    }
}
