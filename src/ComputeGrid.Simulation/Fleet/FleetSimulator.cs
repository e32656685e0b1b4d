using System.Diagnostics;
using ComputeGrid.Energy.Dispatch;
using ComputeGrid.Inference.Routing;

namespace ComputeGrid.Simulation.Fleet;

/// <summary>A real-time fleet policy: how the router sorts, whether sites publish their power, and who runs the miners.</summary>
/// <param name="Name">For tables and JSON.</param>
/// <param name="Sort">The router's sort for every request (each within its class's latency bound).</param>
/// <param name="PublishPower">Sites publish their power state to the router each interval (<see cref="SitePowerPublisher"/>).</param>
/// <param name="CountDisplacedMining">The published price counts the mining a unit displaces at a full interconnect.</param>
/// <param name="Controller">Each site's real-time controller (<see cref="PredictiveController"/>) runs its miners; otherwise
/// every miner runs whenever the limits allow (<see cref="AlwaysOnPolicy"/>).</param>
/// <param name="Reserve">A unit that other sites could serve within its bound skips a site whose free slots are down to what
/// the classes only that site can serve asked for in the last interval, plus a quarter (the gateway's reserve; it knows no
/// power, and a unit goes to a reserved slot when no other node within its bound has one).</param>
public sealed record FleetPolicy(string Name, RouteSort Sort, bool PublishPower, bool CountDisplacedMining, bool Controller, bool Reserve = true)
{
    /// <summary>Power-blind: the nearest node within the bound, miners always on (what nothing that knows power does).</summary>
    public static FleetPolicy LatencyOnly { get; } = new("latency-only", RouteSort.Latency, false, false, false);

    /// <summary>Ours: the power sort over the sites' published states, each site's controller running its miners.</summary>
    public static FleetPolicy PowerAware { get; } = new("power-aware", RouteSort.Power, true, true, true);
}

/// <summary>What a real-time run produced.</summary>
/// <param name="Dispatch">Where units and miners ran.</param>
/// <param name="Decisions">Routing decisions made (one per unit asked for).</param>
/// <param name="Unrouted">Units for which no node within the bound had a free slot.</param>
/// <param name="Seconds">Wall time of the run.</param>
public sealed record FleetRun(FleetDispatch Dispatch, long Decisions, long Unrouted, double Seconds);

/// <summary>
/// Runs a fleet in real time, interval by interval, through the real components: every unit asked for is routed by the
/// real <see cref="Router"/> over a <see cref="NodeRegistry"/> of the sites' nodes (under its class's
/// <see cref="RoutingPreferences.MaxLatencyMs"/>) and takes a capacity slot with <see cref="NodeRegistry.TryAcquire"/>;
/// then each site's policy decides its miners from a <see cref="RealTimeView"/> whose AI load of the interval is the
/// firm leases plus the units routed there, and <see cref="DispatchLimits.Enforce"/> applies the hard limits. No step
/// reads the future: a site publishes its state before the interval is routed, from the last known price, its
/// controller's last 4CP guard and the miners it ran last.
/// </summary>
/// <remarks>
/// Each interval's units arrive in a seeded random order (the scenario's seed: every policy sees the same order). A
/// controller forecasts the flexible load it will carry as the last interval's (persistence over the next 48 hours,
/// as the live site does with its measured load), beside the leases it knows in advance.
/// </remarks>
public static class FleetSimulator
{
    /// <summary>The one model every node serves (the bench's requests all name it).</summary>
    public const string Model = "fleet-embeddings";

    /// <summary>Tokens in one unit (the router prices power per 1,000 tokens).</summary>
    public const long TokensPerUnit = 20_000_000;

    /// <summary>Runs <paramref name="policy"/> over <paramref name="scenario"/>.</summary>
    public static FleetRun Run(FleetScenario scenario, FleetPolicy policy)
    {
        ArgumentNullException.ThrowIfNull(scenario);
        ArgumentNullException.ThrowIfNull(policy);
        scenario.Validate();
        var clock = Stopwatch.StartNew();
        int n = scenario.Count, sites = scenario.Sites.Length, classes = scenario.Classes.Length;
        var interval = TimeSpan.FromMinutes(scenario.IntervalMinutes);
        var time = new SteppedClock(new DateTimeOffset(scenario.Sites[0].Problem.StartUtc, TimeSpan.Zero));
        var registry = new NodeRegistry(scenario.Matrix, time, new NodeRegistryOptions { HeartbeatTimeout = interval * 2, MaxNodes = 1024 });

        // The nodes: ids name their site, one registration each (the same model, price and key for all).
        var registrations = new List<NodeRegistration>();
        var siteOfNode = new List<int>();
        for (int s = 0; s < sites; s++)
            for (int k = 0; k < scenario.Sites[s].NodeUnits.Length; k++)
            {
                registrations.Add(new NodeRegistration($"{scenario.Sites[s].Name}-n{k:D2}", scenario.Matrix.Regions[scenario.Sites[s].Region],
                    [Model], 1_000, scenario.Sites[s].NodeUnits[k], new byte[] { 1 }));
                siteOfNode.Add(s);
            }
        NodeHandle[] handles = registry.RegisterAll(registrations);
        var siteOfSlot = new int[registry.MaxNodes];
        var nodeOfSlot = new int[registry.MaxNodes];
        for (int i = 0; i < handles.Length; i++)
        {
            siteOfSlot[handles[i].Slot] = siteOfNode[i];
            nodeOfSlot[handles[i].Slot] = i;
        }
        var router = new Router(registry);

        // Each site's controller sees its own copy of the problem (from the start of its history), whose AI load it is
        // told as the fleet runs; it lives through the history first, beside the firm load only.
        var views = new SiteProblem[sites];
        var offset = new int[sites];
        var policies = new IDispatchPolicy[sites];
        var publishers = new SitePowerPublisher[sites];
        var previous = new int[sites][];
        var running = new int[sites][];
        for (int s = 0; s < sites; s++)
        {
            FleetSite site = scenario.Sites[s];
            SiteProblem basis = site.History ?? site.Problem;
            offset[s] = site.HistoryIntervals;
            views[s] = FleetAccounting.WithAiLoad(basis, (double[])basis.AiItKw.Clone(), basis.AiRevenueUsd);
            policies[s] = policy.Controller ? new PredictiveController(site.Controller) : new AlwaysOnPolicy();
            policies[s].Reset(views[s]);
            publishers[s] = new SitePowerPublisher(views[s], scenario.UnitItKw, TokensPerUnit, policy.CountDisplacedMining);
            running[s] = new int[site.Problem.Groups.Length];
            previous[s] = (int[])basis.InitialRunning.Clone();
            for (int k = 0; k < offset[s]; k++)
            {
                policies[s].Decide(new RealTimeView(views[s], k, previous[s]), running[s]);
                DispatchLimits.Enforce(views[s], k, previous[s], running[s]);
                running[s].CopyTo(previous[s], 0);
            }
            // The horizon starts from the scenario's state, as the LP does.
            previous[s] = (int[])site.Problem.InitialRunning.Clone();
        }

        // A class that only one site can serve within its bound, and what each site keeps free for such classes: a quarter
        // more units than they asked for in the last interval (the gateway knows only the past).
        var onlySite = new int[classes];
        for (int c = 0; c < classes; c++)
        {
            onlySite[c] = -1;
            for (int s = 0, eligible = 0; s < sites; s++)
                if (scenario.Eligible(c, s) && ++eligible == 1) onlySite[c] = s;
                else if (scenario.Eligible(c, s)) onlySite[c] = -1;
        }
        var reserve = new int[sites];
        var reserveUsed = new int[sites];
        var capacity = scenario.Sites.Select(x => x.CapacityUnits).ToArray();

        var preferences = new RoutingPreferences[classes];
        for (int c = 0; c < classes; c++)
            preferences[c] = new RoutingPreferences { Sort = policy.Sort, MaxLatencyMs = scenario.Classes[c].BoundMs };
        var dispatch = new FleetDispatch(scenario, policy.Name);
        var rng = new Random(scenario.Seed);
        var arrivals = new List<int>();
        var held = new int[handles.Length];
        var units = new int[sites];
        Span<NodeHandle> ranked = new NodeHandle[Router.MaxRanked];
        long decisions = 0, unrouted = 0;
        int forecastIntervals = 48 * 60 / scenario.IntervalMinutes;

        for (int t = 0; t < n; t++)
        {
            time.Advance(interval);
            foreach (NodeRegistration node in registrations) registry.Heartbeat(node.NodeId, new NodeHeartbeat(0, 0, 0));
            for (int s = 0; s < sites && policy.PublishPower; s++)
            {
                bool guard = policies[s] is PredictiveController pc && pc.PeakGuardActive;
                NodePowerState state = publishers[s].State(offset[s] + t, previous[s], guard);
                for (int i = 0; i < handles.Length; i++)
                    if (siteOfNode[i] == s) registry.PublishPower(registrations[i].NodeId, state);
            }

            // The interval's units, in a seeded order.
            arrivals.Clear();
            for (int c = 0; c < classes; c++)
                for (int k = 0; k < scenario.Demand[c][t]; k++) arrivals.Add(c);
            for (int i = arrivals.Count - 1; i > 0; i--)
            {
                int j = rng.Next(i + 1);
                (arrivals[i], arrivals[j]) = (arrivals[j], arrivals[i]);
            }
            Array.Clear(units);
            Array.Clear(reserveUsed);
            foreach (int c in arrivals)
            {
                decisions++;
                var decision = router.Choose(new RouteRequest(scenario.Classes[c].Region, Model, preferences[c]), ranked);
                int placedAt = -1;
                // First pass: a unit with somewhere else to go leaves a site's reserve alone; second pass: anywhere it fits.
                for (int pass = policy.Reserve && onlySite[c] < 0 ? 0 : 1; pass < 2 && placedAt < 0; pass++)
                    for (int i = 0; i < decision.Count && placedAt < 0; i++)
                    {
                        int s = siteOfSlot[ranked[i].Slot];
                        if (pass == 0 && capacity[s] - units[s] <= Math.Max(0, reserve[s] - reserveUsed[s])) continue;
                        if (!registry.TryAcquire(ranked[i])) continue;
                        held[nodeOfSlot[ranked[i].Slot]]++;
                        placedAt = s;
                    }
                if (placedAt < 0) { unrouted++; continue; }
                dispatch.Served[placedAt][c][t]++;
                units[placedAt]++;
                if (onlySite[c] >= 0) reserveUsed[placedAt]++;
            }
            Array.Clear(reserve);
            for (int c = 0; c < classes; c++)
                if (onlySite[c] >= 0) reserve[onlySite[c]] += scenario.Demand[c][t];
            // A quarter more than last time: demand moves from one interval to the next, and a unit turned away costs its
            // whole price, a unit sent to a dearer site only the difference in power.
            for (int s = 0; s < sites; s++) reserve[s] += (reserve[s] + 3) / 4;
            for (int i = 0; i < held.Length; i++)
            {
                for (; held[i] > 0; held[i]--) registry.Release(handles[i]);
            }

            // Each site's miners, beside the AI load it now carries.
            for (int s = 0; s < sites; s++)
            {
                SiteProblem firm = scenario.Sites[s].Problem, view = views[s];
                double flexKw = units[s] * scenario.UnitItKw;
                int until = Math.Min(n, t + forecastIntervals);
                for (int k = t; k < until; k++) view.AiItKw[offset[s] + k] = firm.AiItKw[k] + flexKw;
                policies[s].Decide(new RealTimeView(view, offset[s] + t, previous[s]), running[s]);
                DispatchLimits.Enforce(view, offset[s] + t, previous[s], running[s]);
                for (int g = 0; g < running[s].Length; g++) dispatch.Running[s][g][t] = running[s][g];
                running[s].CopyTo(previous[s], 0);
            }
        }
        return new FleetRun(dispatch, decisions, unrouted, clock.Elapsed.TotalSeconds);
    }

    /// <summary>The fleet's simulated clock: it moves only when the run advances it.</summary>
    private sealed class SteppedClock(DateTimeOffset start) : TimeProvider
    {
        private DateTimeOffset _now = start;

        public override DateTimeOffset GetUtcNow() => _now;

        public override long GetTimestamp() => _now.UtcTicks;

        public override long TimestampFrequency => TimeSpan.TicksPerSecond;

        public void Advance(TimeSpan by) => _now += by;
    }
}
