using ComputeGrid.Energy.Dispatch;
using ComputeGrid.Energy.Sites;
using ComputeGrid.Inference.Routing;

namespace ComputeGrid.Simulation.Fleet;

/// <summary>
/// One site of a fleet: a hybrid site (its market's prices, its firm leased GPUs, its miner fleet, its interconnect, as
/// <see cref="SiteProblem"/> holds them) plus the inference nodes whose GPUs serve flexible requests routed to it.
/// </summary>
/// <param name="Problem">The site over the fleet's horizon: interval <c>t</c> of every site is the same fleet interval.
/// Its <see cref="SiteProblem.AiItKw"/> and <see cref="SiteProblem.AiRevenueUsd"/> hold the firm (leased) load only.</param>
/// <param name="Region">The site's region, an index of the fleet's <see cref="LatencyMatrix"/>.</param>
/// <param name="NodeUnits">Each inference node's capacity, in request units per interval.</param>
/// <param name="Controller">The real-time controller's settings (the site file's), null for the defaults.</param>
public sealed record FleetSite(SiteProblem Problem, int Region, int[] NodeUnits, ControllerConfig? Controller)
{
    /// <summary>The site's name.</summary>
    public string Name => Problem.Name;

    /// <summary>
    /// The same site from an earlier start to the end of <see cref="Problem"/> (its last <see cref="SiteProblem.Count"/>
    /// intervals are <see cref="Problem"/>'s), or null. A real-time controller is run through the history first, as a live
    /// site's controller has lived through it: its 4CP forecaster learns the system load and its own errors as it goes.
    /// </summary>
    public SiteProblem? History { get; init; }

    /// <summary>Intervals of <see cref="History"/> before the fleet's horizon (0 without a history).</summary>
    public int HistoryIntervals => History is null ? 0 : History.Count - Problem.Count;

    /// <summary>The flexible units the site's nodes serve at most in one interval.</summary>
    public int CapacityUnits => NodeUnits.Sum();
}

/// <summary>
/// Customers of one region whose requests share one latency bound: a row of the demand. A class may be served by a site
/// only when the round trip from its region to the site's region is within its bound.
/// </summary>
/// <param name="Region">The customers' region (index of the fleet's matrix).</param>
/// <param name="BoundMs">The latency bound of every request of the class, milliseconds.</param>
public sealed record DemandClass(int Region, int BoundMs);

/// <summary>
/// A fleet benchmark's world: sites in several markets, customers in every region with a latency bound per class, and
/// each class's demand per interval. Immutable once built (<see cref="FleetScenarioBuilder"/> or a test builds one);
/// every policy is run, and valued, against the same scenario.
/// </summary>
/// <remarks>
/// A <b>unit</b> is one interval of work on <see cref="GpusPerUnit"/> GPUs (one request batch): it draws
/// <see cref="UnitItKw"/> of IT power (before cooling) at the site that serves it for the whole interval and earns
/// <see cref="UnitRevenueUsd"/> wherever it runs. So AI revenue differs between policies only by units left unserved.
/// </remarks>
public sealed class FleetScenario
{
    /// <summary>The sites, in a fixed order (their index is used everywhere).</summary>
    public required FleetSite[] Sites { get; init; }

    /// <summary>The demand classes.</summary>
    public required DemandClass[] Classes { get; init; }

    /// <summary>Units asked for by each class in each interval: <c>Demand[c][t]</c>.</summary>
    public required int[][] Demand { get; init; }

    /// <summary>The round trips between regions (the router's and the accounting's).</summary>
    public required LatencyMatrix Matrix { get; init; }

    /// <summary>GPUs busy for one unit.</summary>
    public required int GpusPerUnit { get; init; }

    /// <summary>IT power of one unit for its interval (kW, before the site's PUE).</summary>
    public required double UnitItKw { get; init; }

    /// <summary>What the customer pays for one unit, USD (the same at every site).</summary>
    public required double UnitRevenueUsd { get; init; }

    /// <summary>The seed the demand (and the request order of the real-time runs) came from.</summary>
    public required int Seed { get; init; }

    /// <summary>The number of intervals.</summary>
    public int Count => Sites[0].Problem.Count;

    /// <summary>Minutes per interval (the same at every site).</summary>
    public int IntervalMinutes => Sites[0].Problem.IntervalMinutes;

    /// <summary>True when class <paramref name="c"/> may be served at site <paramref name="s"/>: RTT within its bound.</summary>
    public bool Eligible(int c, int s) => Matrix.RttMicros(Classes[c].Region, Sites[s].Region) <= Classes[c].BoundMs * 1000L;

    /// <summary>Checks the scenario's shape: equal horizons and interval lengths, demand rows of the right length, no
    /// negative demand, every class eligible somewhere.</summary>
    /// <exception cref="ArgumentException">The scenario is malformed.</exception>
    public void Validate()
    {
        if (Sites.Length == 0) throw new ArgumentException("A fleet needs at least one site.");
        foreach (FleetSite s in Sites)
        {
            if (s.Problem.Count != Count || s.Problem.IntervalMinutes != IntervalMinutes)
                throw new ArgumentException($"Site {s.Name} has {s.Problem.Count} intervals of {s.Problem.IntervalMinutes} min; the fleet has {Count} of {IntervalMinutes}.");
            if (s.History is { } h && (h.Count < s.Problem.Count || h.IntervalStartUtc(s.HistoryIntervals) != s.Problem.StartUtc))
                throw new ArgumentException($"Site {s.Name}'s history does not end with its horizon.");
            if ((uint)s.Region >= (uint)Matrix.Count) throw new ArgumentException($"Site {s.Name} names region {s.Region}, outside the matrix.");
            if (s.NodeUnits.Length == 0 || s.NodeUnits.Any(u => u < 1)) throw new ArgumentException($"Site {s.Name} needs nodes of at least one unit each.");
            // A site whose AI load alone could pass the interconnect cannot keep the "AI is never curtailed" rule.
            double maxAi = s.Problem.AiItKw.Max() + s.CapacityUnits * UnitItKw;
            if (s.Problem.Pue * maxAi > s.Problem.InterconnectKw)
                throw new ArgumentException($"Site {s.Name}: firm and flexible AI load ({maxAi:N0} kW IT) could pass the interconnect.");
        }
        if (Demand.Length != Classes.Length) throw new ArgumentException("One demand row per class is required.");
        for (int c = 0; c < Classes.Length; c++)
        {
            if (Demand[c].Length != Count) throw new ArgumentException($"Demand row {c} has {Demand[c].Length} intervals, not {Count}.");
            if (Demand[c].Any(d => d < 0)) throw new ArgumentException($"Demand row {c} has a negative entry.");
            if (!Enumerable.Range(0, Sites.Length).Any(s => Eligible(c, s)))
                throw new ArgumentException($"Class {c} ({Matrix.Regions[Classes[c].Region]}, {Classes[c].BoundMs} ms) reaches no site within its bound.");
        }
        if (!(UnitItKw > 0) || !(UnitRevenueUsd >= 0)) throw new ArgumentException("A unit needs positive power and a non-negative price.");
    }
}
