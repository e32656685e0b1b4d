using ComputeGrid.Energy.Bookkeeping;
using ComputeGrid.Energy.Dispatch;
using ComputeGrid.Energy.Miners;
using ComputeGrid.Energy.Series;
using ComputeGrid.Energy.Sites;
using ComputeGrid.Inference.Routing;
using ComputeGrid.Simulation;
using ComputeGrid.Simulation.Fleet;

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

    /// <summary>
    /// The power state the site published for the interval (to its nodes' router entries): null before its first interval.
    /// </summary>
    public LiveSitePower? Power { get; init; }

    /// <summary>
    /// The GPU nodes the site file lists, each with its measured load; empty when it lists none (its firm load is then the
    /// file's GPU schedule).
    /// </summary>
    public IReadOnlyList<LiveNodeLoad> Nodes { get; init; } = [];

    /// <summary>The power market the site buys in, e.g. <c>ERCOT West LMP</c> (<see cref="SiteMarket"/>).</summary>
    public string Market { get; init; } = "";

    /// <summary>The miners' facility power held off now: the whole fleet's at full power less what runs, kW.</summary>
    public double CurtailedMinerKw { get; init; }

    /// <summary>The naive strategies decided beside the controller over the same replay (<see cref="LiveBaseline"/>).</summary>
    public IReadOnlyList<LiveBaseline> Baselines { get; init; } = [];
}

/// <summary>
/// A live site's power state for one interval, as published to the router for each of its nodes
/// (<see cref="NodePowerState"/>).
/// </summary>
/// <param name="PriceMicroUsdPerMwh">The marginal power price: the last price known when the interval was decided, plus, in
/// a peak-charge interval, that charge per MWh (micro-USD per MWh).</param>
/// <param name="PeakHour">The controller's 4CP guard holds the miners off for peak risk (its forecast at decision time; a
/// replay never uses its knowledge of the month's actual peak hour).</param>
/// <param name="Emergency">A declared grid emergency.</param>
/// <param name="MinerHeadroomKw">The miners' facility power running: what curtailing them frees for AI load (kW).</param>
/// <param name="InterconnectHeadroomKw">The interconnect limit less the facility load (kW).</param>
public sealed record LiveSitePower(long PriceMicroUsdPerMwh, bool PeakHour, bool Emergency, long MinerHeadroomKw, long InterconnectHeadroomKw);

/// <summary>One GPU node of a live site and its measured load at the last decided interval.</summary>
/// <param name="NodeId">The node's id.</param>
/// <param name="Gpus">Its GPUs (site file).</param>
/// <param name="LeasedGpus">GPUs in leases being delivered (exchange).</param>
/// <param name="Utilization">Its inference utilization, 0 … 1 (requests running ÷ capacity).</param>
/// <param name="Measured">False when it could not be measured and was counted at full power.</param>
/// <param name="ItKw">Its IT load: (leased + utilization × the GPUs serving inference: the others, at most its inference pool) × watts per GPU, kW.</param>
/// <param name="MilliJoulesPer1kTokens">The energy per 1,000 tokens the router prices it with, cooling included (mJ).</param>
/// <param name="PowerCostNanoUsdPer1kTokens">Its marginal power cost per 1,000 tokens at the published price (nano-USD).</param>
public sealed record LiveNodeLoad(string NodeId, int Gpus, int LeasedGpus, double Utilization, bool Measured, double ItKw,
    long MilliJoulesPer1kTokens, long PowerCostNanoUsdPer1kTokens)
{
    /// <summary>The GPUs that serve its inference (site file; all of them when it names no pool).</summary>
    public int InferenceGpus { get; init; }

    /// <summary>GPUs in leases sold for the next whole hour (<see cref="NextHourUtc"/>, the exchange's clock): load already known to come.</summary>
    public int LeasedNextHourGpus { get; init; }

    /// <summary>The start of the next whole hour on the exchange's clock when it was measured; null when not measured.</summary>
    public DateTime? NextHourUtc { get; init; }
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
    // The tariff's 4CP weight per peak interval (USD per kW): the same for every peak interval, so its size says nothing
    // about when the peaks fall.
    private readonly double _peakChargeUsdPerKw;
    // One more busy node's IT power: the unit a full interconnect is priced for (the mining it would displace).
    private readonly double _largestNodeItKw;
    private readonly ScaledTimeProvider _clock;
    private readonly MinerFleetSimulator _simulator;
    private readonly FleetDriver _driver;
    private readonly int[] _rackSize;
    private readonly int[] _racks;
    private readonly int[] _previous;
    private readonly int[] _decided;
    private readonly int[] _targetRacks;
    private readonly SiteAccumulator _accumulator;
    private readonly SiteProblem _accounted;
    private readonly SiteNodeConfig[] _nodeConfigs;
    private readonly NodeLoadSample[] _nodeSamples;
    private readonly double[] _nodeKw;
    private ISiteNodes? _nodes;
    // The ledger's books of the site (null: not booked) and the decided intervals not yet posted to them, oldest first.
    private SiteLedger? _books;
    private bool _booksOpened;
    private readonly Queue<SiteInterval> _unposted = new();
    private long _postConflicts;
    private LiveSitePower? _power;
    private readonly SiteHistory _history = new();
    private readonly LiveBaselines _baselines;
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
        _peakChargeUsdPerKw = p.PeakChargeUsdPerKw.Length == 0 ? 0 : p.PeakChargeUsdPerKw.Max();
        // A start outside the series is refused rather than clamped: a replay that silently began elsewhere would show
        // another season's prices under the date the operator asked for.
        DateTime seriesEnd = p.IntervalStartUtc(p.Count);
        if (options.StartUtc is { } asked && (asked < p.StartUtc || asked >= seriesEnd))
            throw new ServerStartException($"--site-start {asked:yyyy-MM-dd'T'HH:mm'Z'} is outside site {p.Name}'s data, which runs from {p.StartUtc:yyyy-MM-dd'T'HH:mm'Z'} to {seriesEnd:yyyy-MM-dd'T'HH:mm'Z'} (UTC).");
        _firstInterval = options.StartUtc is { } start ? (int)((start - p.StartUtc).Ticks / TimeSpan.FromMinutes(p.IntervalMinutes).Ticks) : 0;
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
        // Listed nodes replace the file's GPU schedule: their load is measured as each interval is decided, and their AI
        // revenue is the ledger's (leases and inference pay their nodes there), not the site accounting's.
        _nodeConfigs = site.Config.Nodes;
        _largestNodeItKw = _nodeConfigs.Length == 0 ? 0 : _nodeConfigs.Max(n => n.Gpus * n.WattsPerGpu / 1000.0);
        _nodeSamples = new NodeLoadSample[_nodeConfigs.Length];
        _nodeKw = new double[_nodeConfigs.Length];
        if (_nodeConfigs.Length > 0)
        {
            Array.Clear(p.AiItKw);
            Array.Clear(p.AiRevenueUsd);
        }
        // The fleet starts asleep; the accounting starts from the same state.
        _accounted = WithStart(p, _firstInterval);
        _accumulator = new SiteAccumulator(_accounted);
        _baselines = new LiveBaselines(p, _accounted, site.Config.Controller);
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

    /// <summary>The last decided intervals and curtailment events, in bounded memory.</summary>
    public SiteHistory History => _history;

    /// <summary>The fleet driver (for tests and diagnostics).</summary>
    public FleetDriver Driver => _driver;

    /// <summary>The fleet simulator serving the site's miners.</summary>
    public MinerFleetSimulator Simulator => _simulator;

    /// <summary>
    /// Connects the site to its nodes: from now on their measured load is its firm GPU load, and each interval's power state
    /// goes to them. Without it, a site that lists nodes counts them at full power (the interconnect holds) and publishes
    /// nothing.
    /// </summary>
    public void Attach(ISiteNodes nodes) => _nodes = nodes;

    /// <summary>
    /// Books the site in the ledger from now on: each decided interval's economics is posted as one linked chain
    /// (<see cref="SiteLedger"/>). A restart replays the series from its start: intervals already booked answer
    /// <see cref="SitePostingResult.AlreadyPosted"/>, or are counted in <see cref="BookingConflicts"/> when the replayed
    /// fleet decided otherwise (the first booking stands).
    /// </summary>
    public void Attach(SiteLedger books) => _books = books;

    /// <summary>The site's books in the ledger, when attached.</summary>
    public SiteLedger? Books => _books;

    /// <summary>Decided intervals the ledger already held with other amounts (after a restart): not booked again.</summary>
    public long BookingConflicts => Interlocked.Read(ref _postConflicts);

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
            // The nodes are measured once per step: the intervals a step catches up on see the same load.
            if (_nodeConfigs.Length > 0 && _next < p.Count && p.IntervalStartUtc(_next) <= now) await MeasureNodesAsync(cancellationToken);
            while (_next < p.Count && decided < maxIntervals && p.IntervalStartUtc(_next) <= now)
            {
                Decide(_next);
                _next++;
                decided++;
            }
            if (decided > 0)
            {
                PublishPower(_next - 1);
                FleetApplyResult applied = await _driver.ApplyAsync((int[])_targetRacks.Clone(), cancellationToken);
                _commands += applied.CommandsApplied;
            }
            _snapshot = await _driver.PollAsync(cancellationToken);
            _published = Snapshot();
            await PostDecidedAsync(cancellationToken);
        }
        finally { _gate.Release(); }
    }

    // Posts the decided intervals in order; one the ledger fails on stays queued for the next step.
    private async Task PostDecidedAsync(CancellationToken cancellationToken)
    {
        if (_books is null || _unposted.Count == 0) return;
        if (!_booksOpened)
        {
            await _books.OpenAsync(cancellationToken);
            _booksOpened = true;
        }
        while (_unposted.TryPeek(out SiteInterval interval))
        {
            if (await _books.PostAsync(interval, cancellationToken) == SitePostingResult.ExistsWithDifferentAmounts) Interlocked.Increment(ref _postConflicts);
            _unposted.Dequeue();
        }
    }

    // The controller plans up to 48 hours ahead; a measured load is carried over that horizon (persistence: no lease or
    // request is known ahead here) and overwritten as each interval is decided.
    private int MeasuredLoadHorizon => 48 * 60 / _site.Problem.IntervalMinutes;

    private async Task MeasureNodesAsync(CancellationToken cancellationToken)
    {
        NodeLoadSample[] samples = _nodes is null
            ? [.. _nodeConfigs.Select(_ => new NodeLoadSample(0, 0, Measured: false))]
            : await _nodes.MeasureAsync(_nodeConfigs, cancellationToken);
        if (samples.Length != _nodeConfigs.Length) throw new InvalidOperationException($"{samples.Length} samples for {_nodeConfigs.Length} nodes.");
        for (int i = 0; i < samples.Length; i++)
        {
            SiteNodeConfig n = _nodeConfigs[i];
            NodeLoadSample x = samples[i];
            int leased = Math.Clamp(x.LeasedGpus, 0, n.Gpus);
            // Leased GPUs are reserved for their buyer; inference runs on the others, up to the node's inference pool. An
            // unmeasured node draws its full power.
            int serving = Math.Min(n.InferenceGpus ?? n.Gpus, n.Gpus - leased);
            double busy = x.Measured ? leased + Math.Clamp(x.Utilization, 0, 1) * serving : n.Gpus;
            _nodeSamples[i] = x with { LeasedGpus = leased };
            _nodeKw[i] = busy * n.WattsPerGpu / 1000.0;
        }
    }

    // A site with listed nodes: interval t's firm load is their measured load.
    private void ApplyMeasuredLoad(int t)
    {
        SiteProblem p = _site.Problem;
        double kw = 0;
        foreach (double k in _nodeKw) kw += k;
        Array.Fill(p.AiItKw, kw, t, Math.Min(p.Count, t + MeasuredLoadHorizon) - t);
        _accounted.AiItKw[t - _firstInterval] = kw; // the same array when the replay starts at 0; a copy otherwise
    }

    // Interval t's power state, to every listed node's router entry: the same signal the fleet benchmark scores
    // (SitePowerPublisher.Signal), with a full interconnect priced at the mining one more busy node would displace.
    private void PublishPower(int t)
    {
        SiteProblem p = _site.Problem;
        SitePowerSignal signal = SitePowerPublisher.Signal(p, t, _previous, _controller.PeakGuardActive, _peakChargeUsdPerKw,
            _nodeConfigs.Length == 0 ? null : _largestNodeItKw);
        var power = new LiveSitePower(signal.PriceMicroUsdPerMwh, (signal.Flags & PowerFlags.PeakHour) != 0, (signal.Flags & PowerFlags.Emergency) != 0,
            signal.MinerKw, signal.InterconnectHeadroomKw);
        _power = power;
        if (_nodes is null) return;
        foreach (SiteNodeConfig n in _nodeConfigs)
            _nodes.PublishPower(n.Id, new NodePowerState(Name, signal.PriceMicroUsdPerMwh, MilliJoules(n), power.MinerHeadroomKw, power.InterconnectHeadroomKw, signal.Flags));
    }

    // The router's energy per 1,000 tokens: the node's figure with the site's cooling (PUE), in mJ.
    private long MilliJoules(SiteNodeConfig n) => (long)Math.Round(n.JoulesPer1kTokens * _site.Problem.Pue * 1000.0);

    private void Decide(int t)
    {
        SiteProblem p = _site.Problem;
        if (_nodeConfigs.Length > 0) ApplyMeasuredLoad(t);
        _controller.Decide(new RealTimeView(p, t, _previous), _decided);
        DispatchLimits.Enforce(p, t, _previous, _decided);

        // Racks: whole racks only, never more than decided. Racks that did not answer may still be running: their power
        // comes off the headroom first, and the other groups give way (least efficient first) so the limit holds.
        int[] possibly = _driver.PossiblyRunningPerGroup;
        int[] awake = _driver.AwakePerGroup;
        double headroomKw = p.MinerHeadroomKw(t), plannedKw = 0;
        for (int g = 0; g < _racks.Length; g++)
        {
            // The last rack may be short (the group's count is rarely a multiple of the rack size): a whole group decided runs it too.
            _targetRacks[g] = _decided[g] >= p.Groups[g].Count ? _racks[g] : Math.Min(_racks[g], _decided[g] / _rackSize[g]);
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
        SiteValue before = _accumulator.Result();
        _accumulator.Add(t - _firstInterval, (ReadOnlySpan<int>)_previous);
        if (_books is not null) _unposted.Enqueue(Interval(t, before, _accumulator.Result()));
        _baselines.Decide(p, t, t - _firstInterval);
        Record(t);
    }

    // Interval t as decided, into the history; the same figures (and rounding) the state shows for it.
    private void Record(int t)
    {
        SiteProblem p = _site.Problem;
        double minerKw = 0, fleetKw = 0;
        int minersOn = 0;
        for (int g = 0; g < p.Groups.Length; g++)
        {
            minerKw += _previous[g] * p.Groups[g].WattsEach / 1000.0;
            fleetKw += p.Groups[g].FleetKw;
            minersOn += _previous[g];
        }
        _history.Add(new SiteHistoryPoint(p.IntervalStartUtc(t), t, t > 0 ? p.PriceUsdPerMwh[t - 1] : null,
            Math.Round(p.Pue * p.AiItKw[t], 1), Math.Round(p.Pue * minerKw, 1), Math.Round(Math.Max(0, p.Pue * (fleetKw - minerKw)), 1),
            _controller.PeakGuardActive, p.Emergency[t], minersOn, Why(t, minerKw, fleetKw)), TimeSpan.FromMinutes(p.IntervalMinutes));
    }

    // Why miners are off in interval t (null: the whole fleet runs): a declared emergency; else the GPUs' load, when the
    // interconnect's headroom beside it has no room for one more of the racks that are off; else the controller's reason (price or 4CP
    // risk); else the hard limits (ramp, whole racks, racks that did not answer). The controller names no reason when
    // the interconnect bound it, and prices a partly fitting unit, so the interconnect is read here first.
    private SiteCurtailmentReason? Why(int t, double minerKw, double fleetKw)
    {
        SiteProblem p = _site.Problem;
        if (minerKw >= fleetKw - 1e-9) return null;
        if (p.Emergency[t] || _controller.LastReason == CurtailmentReason.Emergency) return SiteCurtailmentReason.Emergency;
        // Racks are what the site commands: the smallest rack still off. A group running whole has no rack to add, so its
        // racks, however small, do not say that the GPUs left room.
        double rackKw = double.MaxValue;
        for (int g = 0; g < p.Groups.Length; g++) if (_previous[g] < p.Groups[g].Count) rackKw = Math.Min(rackKw, RackKw(g));
        if (minerKw + rackKw > p.MinerHeadroomKw(t) + 1e-9) return SiteCurtailmentReason.AiLoad;
        return _controller.LastReason switch
        {
            CurtailmentReason.PeakRisk => SiteCurtailmentReason.PeakRisk,
            CurtailmentReason.Price => SiteCurtailmentReason.Price,
            _ => SiteCurtailmentReason.Limits,
        };
    }

    // The interval's amounts: the accumulator's totals after it less those before (each interval is rounded once, so the
    // differences are exactly its amounts), priced at its UTC day.
    private SiteInterval Interval(int t, SiteValue before, SiteValue after)
    {
        DateTime start = _site.Problem.IntervalStartUtc(t);
        BitcoinSeries btc = _site.Bitcoin ?? throw new InvalidOperationException($"Site '{Name}' was built without its bitcoin series.");
        return new SiteInterval(start,
            checked(after.AiRevenueMicroUsd - before.AiRevenueMicroUsd),
            checked(after.MiningRevenueMicroUsd - before.MiningRevenueMicroUsd),
            checked(after.EnergyCostMicroUsd - before.EnergyCostMicroUsd),
            checked(after.PeakChargeMicroUsd - before.PeakChargeMicroUsd),
            checked(after.RestartWearMicroUsd - before.RestartWearMicroUsd),
            BitcoinConversion.PriceMicroUsd(btc.Day(DateOnly.FromDateTime(start)).PriceUsd));
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
            LeasedGpus = _nodeConfigs.Length > 0 ? _nodeSamples.Sum(x => x.LeasedGpus) : _site.LeasedGpus[t],
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
            Power = _power,
            Market = SiteMarket.Describe(_site.Config),
            CurtailedMinerKw = Math.Round(Math.Max(0, p.Pue * (p.Groups.Sum(g => g.FleetKw) - minerKw)), 1),
            Baselines = _baselines.Results(),
            Nodes = [.. _nodeConfigs.Select((n, i) => new LiveNodeLoad(n.Id, n.Gpus, _nodeSamples[i].LeasedGpus, Math.Round(_nodeSamples[i].Utilization, 4),
                _nodeSamples[i].Measured, Math.Round(_nodeKw[i], 3), MilliJoules(n),
                _power is { } pw ? new NodePowerState(Name, pw.PriceMicroUsdPerMwh, MilliJoules(n), 0, 0, PowerFlags.None).PowerCostNanoUsdPer1kTokens : 0)
            {
                InferenceGpus = n.InferenceGpus ?? n.Gpus, LeasedNextHourGpus = _nodeSamples[i].LeasedNextHourGpus, NextHourUtc = _nodeSamples[i].NextHour?.UtcDateTime,
            })],
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
