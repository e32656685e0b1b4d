using ComputeGrid.Energy.Dispatch;
using ComputeGrid.Energy.Miners;
using ComputeGrid.Energy.Sites;
using ComputeGrid.Simulation;

namespace ComputeGrid.Server.Energy;

/// <summary>How one site runs live in the server.</summary>
public sealed record LiveSiteOptions
{
    /// <summary>The site.</summary>
    public required SiteConfig Config { get; init; }

    /// <summary>Where the site file's relative paths are resolved.</summary>
    public string? BaseDirectory { get; init; }

    /// <summary>Replay speed: seconds of price series per second of real time (60 = an interval every 15 s).</summary>
    public double Speed { get; init; } = 60;

    /// <summary>Where in the series the replay starts (UTC); default its first interval.</summary>
    public DateTime? StartUtc { get; init; }

    /// <summary>
    /// How many simulated miner endpoints serve each group. Each endpoint stands for a rack of identical miners (the
    /// group's count ÷ racks) and reports the rack's hashrate and power and its machines' temperature (each heated by
    /// its own power), so a 12,000-miner site runs as a few hundred TCP endpoints.
    /// </summary>
    public int RacksPerGroup { get; init; } = 100;

    /// <summary>The fleet simulator's options (seed, delays).</summary>
    public MinerFleetSimulatorOptions? Simulator { get; init; }

    /// <summary>The fleet driver's options (timeouts, retries).</summary>
    public FleetDriverOptions? Driver { get; init; }
}

/// <summary>What a live site is doing now (the API's view).</summary>
public sealed record LiveSiteState
{
    public required string Name { get; init; }
    public required DateTime SeriesTimeUtc { get; init; }
    public required double Speed { get; init; }
    public required int Interval { get; init; }
    public required int Intervals { get; init; }
    /// <summary>The last known price (null before the first interval has passed).</summary>
    public required double? LastPriceUsdPerMwh { get; init; }
    public required double KnownHashpriceUsdPerThDay { get; init; }
    /// <summary>The system load of the last hour that ended (null when the site has no load series, or none is known yet).</summary>
    public required double? SystemLoadMw { get; init; }
    public required bool Emergency { get; init; }
    public required bool PeakGuardActive { get; init; }
    public required int LeasedGpus { get; init; }
    public required double AiFacilityKw { get; init; }
    public required double MinerFacilityKw { get; init; }
    public required double FacilityKw { get; init; }
    public required double InterconnectKw { get; init; }
    /// <summary>The miners' measured power, all racks that answered together (the groups' <see cref="LiveGroupState.PowerKw"/>), kW.</summary>
    public required double MeasuredMinerPowerKw { get; init; }
    /// <summary>The miners' measured hash rate, all racks that answered together (the groups' <see cref="LiveGroupState.HashrateThs"/>), TH/s.</summary>
    public required double MeasuredHashrateThs { get; init; }
    public required IReadOnlyList<LiveGroupState> Groups { get; init; }
    public required LiveEconomics Economics { get; init; }
    public required int MinersDown { get; init; }
    public required long CommandsSent { get; init; }
}

/// <summary>One miner group of a live site.</summary>
/// <param name="Model">The miner model.</param>
/// <param name="Miners">Machines in the group.</param>
/// <param name="Racks">Racks (simulated endpoints) serving the group.</param>
/// <param name="MinersPerRack">Machines per rack (the last rack may hold fewer).</param>
/// <param name="TargetMiners">Machines the controller last decided to run.</param>
/// <param name="TargetRacks">Racks the controller last decided to run.</param>
/// <param name="RacksHashing">Racks observed hashing.</param>
/// <param name="RacksWakingUp">Racks observed booting or ramping.</param>
/// <param name="RacksSleeping">Racks observed asleep.</param>
/// <param name="RacksDown">Racks not answering.</param>
/// <param name="RacksPossiblyRunning">Racks that may be drawing power (hashing, waking up, down).</param>
/// <param name="MachinesRunning">Machines hashing: the sum of the racks' <see cref="MinerView.MachinesRunning"/>.</param>
/// <param name="HashrateThs">Measured hash rate: the sum of the racks' <see cref="MinerView.HashrateThs"/>, TH/s.</param>
/// <param name="PowerKw">Measured power of the racks that answered: the sum of the racks' <see cref="MinerView.PowerKw"/>, kW.</param>
/// <param name="BreakevenUsdPerMwh">The price above which the group loses money at the known hashprice.</param>
public sealed record LiveGroupState(
    string Model, int Miners, int Racks, int MinersPerRack, int TargetMiners, int TargetRacks,
    int RacksHashing, int RacksWakingUp, int RacksSleeping, int RacksDown, int RacksPossiblyRunning,
    int MachinesRunning, double HashrateThs, double PowerKw,
    double BreakevenUsdPerMwh);

/// <summary>
/// One rack of a live site as the fleet driver last saw it: a simulated endpoint standing for <paramref name="Machines"/>
/// identical miners, commanded together. Power and hash rate are the rack's; the temperature is a machine's.
/// </summary>
/// <param name="Index">The rack's endpoint index in the fleet.</param>
/// <param name="Endpoint">Where its API listens (<c>host:port</c>).</param>
/// <param name="Group">Its group (index into the site's groups).</param>
/// <param name="Model">The model of its machines.</param>
/// <param name="Dialect">The control dialect it speaks.</param>
/// <param name="State">What it was last observed doing (<see cref="MinerState"/>).</param>
/// <param name="Intent">What the driver last told it (<see cref="MinerIntent"/>).</param>
/// <param name="Machines">Machines in the rack.</param>
/// <param name="MachinesRunning">Machines hashing: all of them while the rack hashes, none otherwise (they are commanded together).</param>
/// <param name="HashrateThs">The rack's hash rate, TH/s (0 when not hashing or down).</param>
/// <param name="PowerKw">The rack's power draw, kW; null when it is down or has not answered yet.</param>
/// <param name="TemperatureC">
/// The hottest board of a machine of the rack, °C (its machines are identical and heat from their own power, so this is
/// every machine's); null when it is down or has not answered yet.
/// </param>
/// <param name="DownReason">Why it is down; null otherwise.</param>
public sealed record MinerView(
    int Index, string Endpoint, int Group, string Model, string Dialect, string State, string Intent,
    int Machines, int MachinesRunning, double HashrateThs, double? PowerKw, double? TemperatureC, string? DownReason);

/// <summary>Running economics of a live site since its replay started (micro-USD).</summary>
public sealed record LiveEconomics(
    long ValueMicroUsd, long AiRevenueMicroUsd, long MiningRevenueMicroUsd, long EnergyCostMicroUsd,
    long PeakChargeMicroUsd, long RestartWearMicroUsd, double CurtailedMwh, double Restarts);

/// <summary>
/// A site running live: its real-time controller decides each interval as the replayed clock reaches it, and drives the
/// simulated miner fleet over the cgminer TCP protocol through <see cref="FleetDriver"/> — the same code that would drive
/// real miners. Miners that do not answer count as possibly running, so the interconnect limit holds even then.
/// </summary>
public sealed class LiveSite : IAsyncDisposable
{
    private readonly BuiltSite _site;
    private readonly PredictiveController _controller;
    private readonly ScaledTimeProvider _clock;
    private readonly MinerFleetSimulator _simulator;
    private readonly FleetDriver _driver;
    private readonly int[] _rackSize;
    private readonly int[] _racks;
    private readonly int[] _previous;
    private readonly int[] _decided;
    private readonly int[] _targetRacks;
    private readonly SiteAccumulator _accumulator;
    private readonly int _firstInterval;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private int _next;
    private long _commands;
    private FleetSnapshot? _snapshot;
    private volatile Published _published;

    private LiveSite(LiveSiteOptions options, BuiltSite site, TimeProvider realTime)
    {
        _site = site;
        SiteProblem p = site.Problem;
        _controller = new PredictiveController(site.Config.Controller);
        _controller.Reset(p);
        _firstInterval = options.StartUtc is { } start ? Math.Clamp((int)((start - p.StartUtc).Ticks / TimeSpan.FromMinutes(p.IntervalMinutes).Ticks), 0, p.Count - 1) : 0;
        _next = _firstInterval;
        _clock = new ScaledTimeProvider(realTime, options.Speed, new DateTimeOffset(p.IntervalStartUtc(_firstInterval)));

        int groups = p.Groups.Length;
        _rackSize = new int[groups];
        _racks = new int[groups];
        var specs = new List<VirtualMinerSpec>();
        var groupOf = new List<int>();
        for (int g = 0; g < groups; g++)
        {
            MinerGroup grp = p.Groups[g];
            int racks = Math.Clamp(options.RacksPerGroup, 1, grp.Count);
            _rackSize[g] = (grp.Count + racks - 1) / racks;
            _racks[g] = (grp.Count + _rackSize[g] - 1) / _rackSize[g];
            for (int r = 0; r < _racks[g]; r++)
            {
                int size = Math.Min(_rackSize[g], grp.Count - r * _rackSize[g]);
                // The model is one machine's; the endpoint stands for `size` of them, so each heats from its own power.
                specs.Add(new VirtualMinerSpec(new Simulation.MinerModel(grp.Model, grp.TerahashEach, grp.WattsEach),
                    r % 2 == 0 ? MinerDialect.LuxOS : MinerDialect.Braiins, StartHashing: false, Machines: size));
                groupOf.Add(g);
            }
        }
        _simulator = MinerFleetSimulator.Start(specs, _clock, options.Simulator);
        _driver = new FleetDriver(_simulator.ToMinerEndpoints(i => groupOf[i]), realTime, options.Driver, groups);
        _previous = new int[groups];
        _decided = new int[groups];
        _targetRacks = new int[groups];
        // The fleet starts asleep; the accounting starts from the same state.
        _accumulator = new SiteAccumulator(WithStart(p, _firstInterval));
        Speed = options.Speed;
        _published = Snapshot();
    }

    /// <summary>The site's name.</summary>
    public string Name => _site.Config.Name;

    /// <summary>Replay speed.</summary>
    public double Speed { get; }

    /// <summary>The site as built from its data.</summary>
    public BuiltSite Site => _site;

    /// <summary>The latest state.</summary>
    public LiveSiteState State => _published.State;

    /// <summary>Every rack as of the latest state, in endpoint order (the groups' totals in <see cref="State"/> are their sums).</summary>
    public IReadOnlyList<MinerView> Racks => _published.Racks;

    /// <summary>The fleet driver (for tests and diagnostics).</summary>
    public FleetDriver Driver => _driver;

    /// <summary>The fleet simulator serving the site's miners.</summary>
    public MinerFleetSimulator Simulator => _simulator;

    /// <summary>Builds the site and starts its simulated fleet.</summary>
    public static LiveSite Start(LiveSiteOptions options, TimeProvider realTime)
    {
        BuiltSite site = SiteProblemBuilder.Build(options.Config, options.BaseDirectory);
        return new LiveSite(options, site, realTime);
    }

    /// <summary>
    /// Decides every interval the replayed clock has reached (at most <paramref name="maxIntervals"/>), then drives the
    /// fleet to the last decision and polls it.
    /// </summary>
    public async Task StepAsync(CancellationToken cancellationToken, int maxIntervals = 96)
    {
        await _gate.WaitAsync(cancellationToken);
        try
        {
            SiteProblem p = _site.Problem;
            DateTime now = _clock.GetUtcNow().UtcDateTime;
            int decided = 0;
            while (_next < p.Count && decided < maxIntervals && p.IntervalStartUtc(_next) <= now)
            {
                Decide(_next);
                _next++;
                decided++;
            }
            if (decided > 0)
            {
                FleetApplyResult applied = await _driver.ApplyAsync((int[])_targetRacks.Clone(), cancellationToken);
                _commands += applied.CommandsApplied;
            }
            _snapshot = await _driver.PollAsync(cancellationToken);
            _published = Snapshot();
        }
        finally { _gate.Release(); }
    }

    private void Decide(int t)
    {
        SiteProblem p = _site.Problem;
        _controller.Decide(new RealTimeView(p, t, _previous), _decided);
        DispatchLimits.Enforce(p, t, _previous, _decided);

        // Racks: whole racks only, never more than decided. Racks that did not answer may still be running: their power
        // comes off the headroom first, and the other groups give way (least efficient first) so the limit holds.
        int[] possibly = _driver.PossiblyRunningPerGroup;
        int[] awake = _driver.AwakePerGroup;
        double headroomKw = p.MinerHeadroomKw(t), plannedKw = 0;
        for (int g = 0; g < _racks.Length; g++)
        {
            _targetRacks[g] = Math.Min(_racks[g], _decided[g] / _rackSize[g]);
            int stuck = Math.Max(0, possibly[g] - awake[g]); // asked to sleep, not confirmed
            plannedKw += (_targetRacks[g] + stuck) * RackKw(g);
        }
        for (int g = _racks.Length - 1; g >= 0 && plannedKw > headroomKw + 1e-9; g--)
        {
            while (_targetRacks[g] > 0 && plannedKw > headroomKw + 1e-9)
            {
                _targetRacks[g]--;
                plannedKw -= RackKw(g);
            }
        }
        for (int g = 0; g < _racks.Length; g++) _previous[g] = Math.Min(p.Groups[g].Count, _targetRacks[g] * _rackSize[g]);
        _accumulator.Add(t - _firstInterval, (ReadOnlySpan<int>)_previous);
    }

    private double RackKw(int g) => _rackSize[g] * _site.Problem.Groups[g].WattsEach / 1000.0;

    // Called under the gate right after a poll (or before the first), so the driver's statuses are the poll's readings.
    private Published Snapshot()
    {
        SiteProblem p = _site.Problem;
        int t = Math.Clamp(_next - 1, 0, p.Count - 1);
        MinerView[] racks = _driver.GetStatuses().Select(RackView).ToArray();
        double minerKw = 0, measuredKw = 0, measuredThs = 0;
        var groups = new List<LiveGroupState>();
        for (int g = 0; g < p.Groups.Length; g++)
        {
            minerKw += _previous[g] * p.Groups[g].WattsEach / 1000.0;
            GroupTotals? totals = _snapshot?.Groups.FirstOrDefault(x => x.Group == g);
            int machinesRunning = 0;
            double groupThs = 0, groupKw = 0;
            foreach (MinerView r in racks)
            {
                if (r.Group != g) continue;
                machinesRunning += r.MachinesRunning;
                groupThs += r.HashrateThs;
                groupKw += r.PowerKw ?? 0;
            }
            groupThs = Math.Round(groupThs, 1);
            groupKw = Math.Round(groupKw, 3);
            measuredKw += groupKw;
            measuredThs += groupThs;
            groups.Add(new LiveGroupState(p.Groups[g].Model, p.Groups[g].Count, _racks[g], _rackSize[g], _previous[g], _targetRacks[g],
                totals?.Hashing ?? 0, totals?.WakingUp ?? 0, totals?.Sleeping ?? 0, totals?.Down ?? 0, totals?.PossiblyRunning ?? 0,
                machinesRunning, groupThs, groupKw,
                Math.Round(Economics.BreakevenUsdPerMwh(p, p.Groups[g], p.KnownHashpriceUsdPerThDay[t]), 2)));
        }
        SiteValue v = _accumulator.Result();
        var state = new LiveSiteState
        {
            Name = Name,
            SeriesTimeUtc = _clock.GetUtcNow().UtcDateTime,
            Speed = Speed,
            Interval = t,
            Intervals = p.Count,
            LastPriceUsdPerMwh = t > 0 ? p.PriceUsdPerMwh[t - 1] : null,
            KnownHashpriceUsdPerThDay = p.KnownHashpriceUsdPerThDay[t],
            SystemLoadMw = t >= 4 && !double.IsNaN(p.SystemLoadMw[t - 4]) ? p.SystemLoadMw[t - 4] : null,
            Emergency = p.Emergency[t],
            PeakGuardActive = _controller.PeakGuardActive,
            LeasedGpus = _site.LeasedGpus[t],
            AiFacilityKw = Math.Round(p.Pue * p.AiItKw[t], 1),
            MinerFacilityKw = Math.Round(p.Pue * minerKw, 1),
            FacilityKw = Math.Round(p.Pue * (p.AiItKw[t] + minerKw), 1),
            InterconnectKw = p.InterconnectKw,
            MeasuredMinerPowerKw = Math.Round(measuredKw, 1),
            MeasuredHashrateThs = Math.Round(measuredThs, 1),
            Groups = groups,
            Economics = new LiveEconomics(v.ValueMicroUsd, v.AiRevenueMicroUsd, v.MiningRevenueMicroUsd, v.EnergyCostMicroUsd,
                v.PeakChargeMicroUsd, v.RestartWearMicroUsd, Math.Round(v.CurtailedMwh, 3), v.Restarts),
            MinersDown = _snapshot?.Groups.Sum(x => x.Down) ?? 0,
            CommandsSent = _commands,
        };
        return new Published(state, racks);
    }

    // A rack as the driver sees it: the endpoint reports the rack's totals in W and TH/s and a machine's hottest board.
    private MinerView RackView(MinerStatus m)
    {
        bool down = m.State == MinerState.Down;
        int machines = m.Endpoint.Machines;
        return new MinerView(m.Index, m.Endpoint.ToString(), m.Endpoint.Group, _site.Problem.Groups[m.Endpoint.Group].Model,
            m.Endpoint.Dialect.ToString(), m.State.ToString(), m.Intent.ToString(),
            machines, m.State == MinerState.Hashing ? machines : 0,
            down ? 0 : Math.Round(m.HashrateThs, 1),
            down || m.PowerWatts is not { } w ? null : Math.Round(w / 1000.0, 3),
            down || m.TemperatureC is not { } c ? null : Math.Round(c, 1),
            m.DownReason);
    }

    // What readers see: a state and the racks it sums, swapped in together.
    private sealed record Published(LiveSiteState State, MinerView[] Racks);

    // The accounting of a replay that starts at interval `first` from an idle fleet.
    private static SiteProblem WithStart(SiteProblem p, int first) => p.Slice(first, p.Count - first, new int[p.Groups.Length]);

    public async ValueTask DisposeAsync()
    {
        await _gate.WaitAsync();
        try { await _simulator.DisposeAsync(); }
        finally { _gate.Release(); }
    }
}
