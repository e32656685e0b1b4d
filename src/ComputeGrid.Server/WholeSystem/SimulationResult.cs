using System.Globalization;
using System.Text;

namespace ComputeGrid.Server.WholeSystem;

/// <summary>What one run of the whole-system simulation did and found.</summary>
public sealed record SimulationResult
{
    /// <summary>The run's seed (<c>simulate --seed N</c> replays it).</summary>
    public required long Seed { get; init; }

    /// <summary>Steps taken (one simulated minute each, a clock jump aside).</summary>
    public required long Steps { get; init; }

    /// <summary>Faults injected, per kind (every kind listed, 0 when off).</summary>
    public required IReadOnlyDictionary<SimFaultKind, int> Faults { get; init; }

    /// <summary>Paid inference requests sent through the gateway.</summary>
    public required long Requests { get; init; }

    /// <summary>Of them, answered (200) and so owed a charge.</summary>
    public required long Answered { get; init; }

    /// <summary>Orders the exchange acknowledged (placed).</summary>
    public required long Orders { get; init; }

    /// <summary>Leases the exchange created (fills).</summary>
    public required long Leases { get; init; }

    /// <summary>Fills on the node share instruments (<c>SHR-{node}</c>): shares that changed hands through the exchange pipeline.</summary>
    public long ShareTrades { get; init; }

    /// <summary>Share revenue claims that paid a holder (the API's claim path).</summary>
    public long Claims { get; init; }

    /// <summary>Process restarts (crash_restart, and the restarts a ledger or journal I/O error forces).</summary>
    public required int Restarts { get; init; }

    /// <summary>Individual invariant checks evaluated.</summary>
    public required long InvariantChecks { get; init; }

    /// <summary>The first broken invariant (null: all held): its name, the step and what was found.</summary>
    public string? Violation { get; init; }

    /// <summary>SHA-256 (hex) of the final ledger balances, exchange state and share entitlements.</summary>
    public required string FinalStateHash { get; init; }

    /// <summary>Simulated hours covered (clock jumps included).</summary>
    public required double SimulatedHours { get; init; }

    /// <summary>Wall-clock seconds the run took (reported, never part of the outcome or the hash).</summary>
    public required double WallSeconds { get; init; }

    /// <summary>The run's folder when it was kept (null: deleted).</summary>
    public string? KeptDirectory { get; init; }

    /// <summary>Whether every invariant held after every step.</summary>
    public bool InvariantsOk => Violation is null;

    /// <summary>The benchmark line: <c>{"bench":"simulate","metrics":{…}}</c>.</summary>
    public string ToJson()
    {
        var sb = new StringBuilder();
        sb.Append("{\"bench\":\"simulate\",\"metrics\":{");
        sb.Append(CultureInfo.InvariantCulture, $"\"steps\":{Steps}");
        foreach ((SimFaultKind kind, int n) in Faults.OrderBy(kv => kv.Key)) sb.Append(CultureInfo.InvariantCulture, $",\"faults_{SimFaults.Name(kind)}\":{n}");
        sb.Append(CultureInfo.InvariantCulture, $",\"requests\":{Requests},\"answered\":{Answered},\"orders\":{Orders},\"leases\":{Leases},\"share_trades\":{ShareTrades},\"claims\":{Claims},\"restarts\":{Restarts}");
        sb.Append(CultureInfo.InvariantCulture, $",\"invariant_checks\":{InvariantChecks},\"invariants_ok\":{(InvariantsOk ? 1 : 0)},\"final_state_hash\":\"{FinalStateHash}\"");
        sb.Append(CultureInfo.InvariantCulture, $",\"simulated_hours\":{SimulatedHours:0.###},\"wall_s\":{WallSeconds:0.###}");
        sb.Append(CultureInfo.InvariantCulture, $",\"simulated_hours_per_s\":{(WallSeconds > 0 ? SimulatedHours / WallSeconds : 0):0.###},\"seed\":{Seed}}}}}");
        return sb.ToString();
    }
}

/// <summary>An invariant broke: the simulation stops at the step it was found.</summary>
public sealed class SimInvariantException(string invariant, string detail) : Exception($"{invariant}: {detail}")
{
    /// <summary>The invariant's name (<c>debits_equal_credits</c>, <c>charged_exactly_once</c>, …).</summary>
    public string Invariant { get; } = invariant;
}
