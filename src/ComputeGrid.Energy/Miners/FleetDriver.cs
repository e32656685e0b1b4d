namespace ComputeGrid.Energy.Miners;

/// <summary>Settings for <see cref="FleetDriver"/>.</summary>
public sealed record FleetDriverOptions
{
    /// <summary>The default options.</summary>
    public static FleetDriverOptions Default { get; } = new();

    /// <summary>How many miners are talked to at once. Default 64.</summary>
    public int MaxParallelism { get; init; } = 64;

    /// <summary>
    /// How long one attempt at one miner operation may take (a LuxOS command is three exchanges: logon, command,
    /// logoff). Default 500 ms.
    /// </summary>
    public TimeSpan CommandTimeout { get; init; } = TimeSpan.FromMilliseconds(500);

    /// <summary>Attempts per operation before the miner is marked down. Default 3.</summary>
    public int MaxAttempts { get; init; } = 3;

    /// <summary>The wait before the first retry; it doubles per retry (capped by <see cref="MaxRetryBackoff"/>), ±50 % seeded jitter. Default 100 ms.</summary>
    public TimeSpan RetryBackoff { get; init; } = TimeSpan.FromMilliseconds(100);

    /// <summary>The longest wait between retries before jitter. Default 2 s.</summary>
    public TimeSpan MaxRetryBackoff { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>How long a down miner is skipped before it is tried again (driver clock). Default 1 min.</summary>
    public TimeSpan ReprobeInterval { get; init; } = TimeSpan.FromMinutes(1);

    /// <summary>Attempts when re-probing a down miner. Default 1, so down miners cost little.</summary>
    public int ReprobeAttempts { get; init; } = 1;

    /// <summary>
    /// How long after a command an observation that contradicts it is put down to the transition (a miner keeps hashing
    /// for a moment after sleep) rather than to the miner having changed state on its own. Default 2 min.
    /// </summary>
    public TimeSpan IntentGracePeriod { get; init; } = TimeSpan.FromMinutes(2);

    /// <summary>
    /// A miner that reports no hashrate but at least this power per machine (the reported power ÷
    /// <see cref="MinerEndpoint.Machines"/>) is booting (waking up); below it, asleep. Only used when the firmware
    /// reports power. Default 100 W.
    /// </summary>
    public double WakingPowerThresholdWatts { get; init; } = 100;

    /// <summary>Whether <see cref="FleetDriver.PollAsync"/> also reads <c>devs</c> for temperatures when the summary has none. Default true.</summary>
    public bool ReadDeviceTemperatures { get; init; } = true;

    /// <summary>Seed of the retry jitter, so runs are reproducible. Default 0.</summary>
    public int Seed { get; init; }

    /// <summary>
    /// The clock network timeouts and retry waits run on: a wall clock, separate from the driver's clock (which stamps
    /// down times and schedules re-probes and may be simulated). Default <see cref="TimeProvider.System"/>. A seeded
    /// simulation gives a virtual clock it advances itself (see <see cref="FleetDriver.CallsInFlight"/>), so whether a
    /// rack answers in time never depends on the machine's load.
    /// </summary>
    public TimeProvider IoClock { get; init; } = TimeProvider.System;

    /// <summary>Client limits (reply size, Braiins power-target command); its timeout and clock are replaced by <see cref="CommandTimeout"/> and <see cref="IoClock"/>.</summary>
    public CgminerClientOptions Client { get; init; } = CgminerClientOptions.Default;

    internal void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxParallelism, 1, nameof(MaxParallelism));
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(CommandTimeout, TimeSpan.Zero, nameof(CommandTimeout));
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxAttempts, 1, nameof(MaxAttempts));
        ArgumentOutOfRangeException.ThrowIfLessThan(ReprobeAttempts, 1, nameof(ReprobeAttempts));
        ArgumentOutOfRangeException.ThrowIfLessThan(RetryBackoff, TimeSpan.Zero, nameof(RetryBackoff));
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxRetryBackoff, RetryBackoff, nameof(MaxRetryBackoff));
        ArgumentOutOfRangeException.ThrowIfLessThan(ReprobeInterval, TimeSpan.Zero, nameof(ReprobeInterval));
        ArgumentOutOfRangeException.ThrowIfLessThan(IntentGracePeriod, TimeSpan.Zero, nameof(IntentGracePeriod));
        if (!double.IsFinite(WakingPowerThresholdWatts) || WakingPowerThresholdWatts < 0)
            throw new ArgumentOutOfRangeException(nameof(WakingPowerThresholdWatts));
        ArgumentNullException.ThrowIfNull(IoClock, nameof(IoClock));
        ArgumentNullException.ThrowIfNull(Client, nameof(Client));
    }
}

/// <summary>
/// Drives a fleet of miners through their cgminer-compatible API so that each model group runs a target number of
/// miners. Commands go out concurrently (bounded), each attempt with a timeout, with bounded retries and backoff; a miner
/// that keeps failing is marked <see cref="MinerState.Down"/> with the reason and time, skipped, and re-probed after
/// <see cref="FleetDriverOptions.ReprobeInterval"/>. Down and unknown miners count as possibly running
/// (<see cref="PossiblyRunningPerGroup"/>), because a miner that does not answer a sleep command may still draw power.
/// Operations (<see cref="ApplyAsync"/>, <see cref="PollAsync"/>) run one at a time; state reads are safe at any time.
/// </summary>
public sealed class FleetDriver
{
    private readonly Slot[] _slots;
    private readonly TimeProvider _clock;
    private readonly FleetDriverOptions _options;
    private readonly object _gate = new();
    private readonly SemaphoreSlim _operation = new(1, 1);
    private long _operationNumber;

    /// <summary>Creates a driver. No miner is contacted until the first operation.</summary>
    /// <param name="miners">The miners, in index order.</param>
    /// <param name="clock">The driver clock: stamps down times and schedules re-probes.</param>
    /// <param name="options">Parallelism, timeouts, retries; <see cref="FleetDriverOptions.Default"/> when null.</param>
    /// <param name="groupCount">The number of groups; when null, one more than the highest group of any miner.</param>
    public FleetDriver(IEnumerable<MinerEndpoint> miners, TimeProvider clock, FleetDriverOptions? options = null, int? groupCount = null)
    {
        ArgumentNullException.ThrowIfNull(miners);
        ArgumentNullException.ThrowIfNull(clock);
        _options = options ?? FleetDriverOptions.Default;
        _options.Validate();
        _clock = clock;
        var clientOptions = _options.Client with { CallTimeout = _options.CommandTimeout, TimeoutClock = _options.IoClock };
        var endpoints = miners.ToArray();
        if (endpoints.Length == 0) throw new ArgumentException("The fleet needs at least one miner.", nameof(miners));
        _slots = new Slot[endpoints.Length];
        for (var i = 0; i < endpoints.Length; i++)
        {
            var endpoint = endpoints[i] ?? throw new ArgumentException($"Miner {i} is null.", nameof(miners));
            _slots[i] = new Slot(i, endpoint, new CgminerClient(endpoint, clientOptions));
        }

        var highest = endpoints.Max(e => e.Group);
        GroupCount = groupCount ?? highest + 1;
        if (GroupCount <= highest)
            throw new ArgumentOutOfRangeException(nameof(groupCount), $"A miner is in group {highest}, so there must be more than {highest} groups.");
        Miners = endpoints;
    }

    /// <summary>The miners, in index order.</summary>
    public IReadOnlyList<MinerEndpoint> Miners { get; }

    /// <summary>The number of miners.</summary>
    public int Count => _slots.Length;

    /// <summary>
    /// Calls to miner <paramref name="index"/> waiting on its answer right now (0 or 1: a miner's calls are sequential).
    /// A simulation that runs <see cref="FleetDriverOptions.IoClock"/> virtually advances that clock only while every
    /// call in flight waits on a miner that holds it on purpose (a fault), so no healthy call can time out.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="index"/> is not a miner's index.</exception>
    public int CallsInFlight(int index)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual((uint)index, (uint)_slots.Length, nameof(index));
        return Volatile.Read(ref _slots[index].InFlight);
    }

    /// <summary>The number of groups.</summary>
    public int GroupCount { get; }

    /// <summary>
    /// Per group, how many miners may be drawing power: those meant to run, those observed running, and every down or
    /// not yet contacted miner. A controller keeping an interconnect limit should budget with this, not with the target.
    /// </summary>
    public int[] PossiblyRunningPerGroup => CountPerGroup(s => s.PossiblyRunning);

    /// <summary>Per group, how many reachable miners are meant to run (hashing or waking up).</summary>
    public int[] AwakePerGroup => CountPerGroup(s => s.State != MinerState.Down && s.Intent == MinerIntent.Awake);

    /// <summary>Per group, how many miners are down.</summary>
    public int[] DownPerGroup => CountPerGroup(s => s.State == MinerState.Down);

    /// <summary>The driver's view of one miner.</summary>
    public MinerStatus GetStatus(int index)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, _slots.Length);
        lock (_gate) return _slots[index].ToStatus();
    }

    /// <summary>The driver's view of every miner, in index order.</summary>
    public IReadOnlyList<MinerStatus> GetStatuses()
    {
        lock (_gate) return _slots.Select(s => s.ToStatus()).ToArray();
    }

    /// <summary>
    /// Makes each group's count of reachable miners meant to run equal its target. First contacts miners never seen
    /// and re-probes down miners that are due; then, per group, wakes the missing number of sleeping miners (lowest index
    /// first) or sleeps the surplus (miners still waking up first, then highest index first), touching no other miner.
    /// A miner whose command keeps failing is marked down and the plan is redone without it, so a replacement is used
    /// when one exists; when a group then has too few reachable miners, <see cref="FleetApplyResult.ShortfallPerGroup"/>
    /// says by how many.
    /// </summary>
    /// <param name="targetRunningPerGroup">The number of miners to run per group (length <see cref="GroupCount"/>).</param>
    /// <param name="cancellationToken">Cancels the operation; commands already acknowledged stay applied.</param>
    /// <returns>What was done and where each group stands.</returns>
    public async Task<FleetApplyResult> ApplyAsync(int[] targetRunningPerGroup, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(targetRunningPerGroup);
        if (targetRunningPerGroup.Length != GroupCount)
            throw new ArgumentException($"Expected {GroupCount} targets, got {targetRunningPerGroup.Length}.", nameof(targetRunningPerGroup));
        if (targetRunningPerGroup.Any(t => t < 0))
            throw new ArgumentOutOfRangeException(nameof(targetRunningPerGroup), "Targets cannot be negative.");
        var target = (int[])targetRunningPerGroup.Clone();

        await _operation.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            Interlocked.Increment(ref _operationNumber);
            var probe = await ProbeAsync(SelectForProbe(includeKnown: false), readTemperatures: false, cancellationToken).ConfigureAwait(false);
            var newlyDown = new List<int>(probe.NewlyDown);
            var woken = new List<int>();
            var slept = new List<int>();

            // Each round either completes the plan or marks at least one more miner down, so this ends.
            for (var round = 0; round <= _slots.Length; round++)
            {
                var plan = Plan(target);
                if (plan.Count == 0) break;
                var failed = await ExecuteAsync(plan, woken, slept, cancellationToken).ConfigureAwait(false);
                newlyDown.AddRange(failed);
                if (failed.Count == 0) break;
            }

            woken.Sort();
            slept.Sort();
            newlyDown.Sort();
            lock (_gate)
            {
                var awake = new int[GroupCount];
                var possibly = new int[GroupCount];
                var reachable = new int[GroupCount];
                foreach (var s in _slots)
                {
                    var g = s.Endpoint.Group;
                    if (s.State != MinerState.Down)
                    {
                        reachable[g]++;
                        if (s.Intent == MinerIntent.Awake) awake[g]++;
                    }
                    if (s.PossiblyRunning) possibly[g]++;
                }

                var shortfall = new int[GroupCount];
                for (var g = 0; g < GroupCount; g++) shortfall[g] = Math.Max(0, target[g] - reachable[g]);
                return new FleetApplyResult(target, awake, possibly, shortfall, woken, slept,
                    newlyDown.Select(i => _slots[i].ToStatus()).ToArray(), probe.Recovered);
            }
        }
        finally
        {
            _operation.Release();
        }
    }

    /// <summary>
    /// Reads <c>summary</c> (and, when it carries no temperature and <see cref="FleetDriverOptions.ReadDeviceTemperatures"/>
    /// is set, <c>devs</c>) from every miner that is not down, and from down miners due a re-probe, with bounded
    /// concurrency. A miner that keeps failing is marked down; down miners not yet due are reported down without being
    /// contacted.
    /// </summary>
    /// <param name="cancellationToken">Cancels the poll.</param>
    /// <returns>Every miner's state and readings, and totals per group.</returns>
    public async Task<FleetSnapshot> PollAsync(CancellationToken cancellationToken = default)
    {
        await _operation.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            Interlocked.Increment(ref _operationNumber);
            await ProbeAsync(SelectForProbe(includeKnown: true), _options.ReadDeviceTemperatures, cancellationToken).ConfigureAwait(false);
            lock (_gate)
            {
                var readings = new MinerReading[_slots.Length];
                var hashing = new int[GroupCount];
                var waking = new int[GroupCount];
                var sleeping = new int[GroupCount];
                var down = new int[GroupCount];
                var possibly = new int[GroupCount];
                var hashrate = new double[GroupCount];
                var power = new double[GroupCount];
                foreach (var s in _slots)
                {
                    var g = s.Endpoint.Group;
                    var isDown = s.State == MinerState.Down;
                    readings[s.Index] = new MinerReading(s.Index, s.Endpoint, s.State, isDown ? 0 : s.HashrateThs,
                        isDown ? null : s.PowerWatts, isDown ? null : s.TemperatureC, s.DownReason);
                    switch (s.State)
                    {
                        case MinerState.Hashing: hashing[g]++; break;
                        case MinerState.WakingUp: waking[g]++; break;
                        case MinerState.Sleeping: sleeping[g]++; break;
                        case MinerState.Down: down[g]++; break;
                    }
                    if (s.PossiblyRunning) possibly[g]++;
                    if (!isDown)
                    {
                        hashrate[g] += s.HashrateThs;
                        power[g] += s.PowerWatts ?? 0;
                    }
                }

                var groups = new GroupTotals[GroupCount];
                for (var g = 0; g < GroupCount; g++)
                    groups[g] = new GroupTotals(g, hashing[g], waking[g], sleeping[g], down[g], possibly[g], hashrate[g], power[g]);
                return new FleetSnapshot(_clock.GetUtcNow(), readings, groups);
            }
        }
        finally
        {
            _operation.Release();
        }
    }

    private int[] CountPerGroup(Func<Slot, bool> predicate)
    {
        var counts = new int[GroupCount];
        lock (_gate)
        {
            foreach (var s in _slots)
                if (predicate(s)) counts[s.Endpoint.Group]++;
        }
        return counts;
    }

    /// <summary>Miners to read before acting: never contacted ones, down ones that are due, and (for polls) every reachable one.</summary>
    private List<Slot> SelectForProbe(bool includeKnown)
    {
        var now = _clock.GetUtcNow();
        lock (_gate)
        {
            return _slots.Where(s => s.State == MinerState.Down
                    ? s.NextProbeAt <= now
                    : includeKnown || s.Intent == MinerIntent.Unknown)
                .ToList();
        }
    }

    private async Task<(List<int> NewlyDown, List<int> Recovered)> ProbeAsync(List<Slot> slots, bool readTemperatures, CancellationToken cancellationToken)
    {
        var newlyDown = new List<int>();
        var recovered = new List<int>();
        if (slots.Count == 0) return (newlyDown, recovered);

        await Parallel.ForEachAsync(slots, ParallelOptions(cancellationToken), async (slot, token) =>
        {
            bool wasDown;
            lock (_gate) wasDown = slot.State == MinerState.Down;
            var attempts = wasDown ? _options.ReprobeAttempts : _options.MaxAttempts;
            var summary = await TryAsync(slot, static (c, t) => c.SummaryAsync(t), attempts, token).ConfigureAwait(false);
            if (!summary.Ok)
            {
                lock (_gate)
                {
                    MarkDown(slot, summary.Error);
                    if (!wasDown) newlyDown.Add(slot.Index);
                }
                return;
            }

            var temperature = summary.Value!.TemperatureC;
            if (temperature is null && readTemperatures)
            {
                var devs = await TryAsync(slot, static (c, t) => c.DevsAsync(t), 1, token).ConfigureAwait(false);
                if (devs.Ok && devs.Value!.Any(d => d.TemperatureC is not null))
                    temperature = devs.Value!.Max(d => d.TemperatureC);
            }

            lock (_gate)
            {
                Observe(slot, summary.Value, temperature);
                if (wasDown) recovered.Add(slot.Index);
            }
        }).ConfigureAwait(false);

        newlyDown.Sort();
        recovered.Sort();
        return (newlyDown, recovered);
    }

    /// <summary>The minimal set of commands that brings every group to its target, given the current intents.</summary>
    private List<(Slot Slot, bool Wake)> Plan(int[] target)
    {
        var plan = new List<(Slot, bool)>();
        lock (_gate)
        {
            for (var g = 0; g < GroupCount; g++)
            {
                var group = _slots.Where(s => s.Endpoint.Group == g && s.State != MinerState.Down).ToList();
                var awake = group.Where(s => s.Intent == MinerIntent.Awake).ToList();
                var asleep = group.Where(s => s.Intent == MinerIntent.Asleep).ToList();
                if (awake.Count > target[g])
                {
                    // Sleep miners that are not producing yet first (no hashrate lost), then the highest indices.
                    plan.AddRange(awake
                        .OrderBy(s => s.State == MinerState.Hashing ? 1 : 0)
                        .ThenByDescending(s => s.Index)
                        .Take(awake.Count - target[g])
                        .Select(s => (s, false)));
                }
                else if (awake.Count < target[g])
                {
                    plan.AddRange(asleep
                        .OrderBy(s => s.Index)
                        .Take(target[g] - awake.Count)
                        .Select(s => (s, true)));
                }
            }
        }
        return plan;
    }

    private async Task<List<int>> ExecuteAsync(List<(Slot Slot, bool Wake)> plan, List<int> woken, List<int> slept, CancellationToken cancellationToken)
    {
        var failed = new List<int>();
        await Parallel.ForEachAsync(plan, ParallelOptions(cancellationToken), async (step, token) =>
        {
            var (slot, wake) = step;
            var outcome = await TryAsync<bool>(slot, wake
                    ? static async (c, t) => { await c.WakeAsync(t).ConfigureAwait(false); return true; }
                    : static async (c, t) => { await c.SleepAsync(t).ConfigureAwait(false); return true; },
                _options.MaxAttempts, token).ConfigureAwait(false);
            lock (_gate)
            {
                if (!outcome.Ok)
                {
                    MarkDown(slot, $"{(wake ? "wake" : "sleep")} failed: {outcome.Error}");
                    failed.Add(slot.Index);
                    return;
                }

                var now = _clock.GetUtcNow();
                slot.Intent = wake ? MinerIntent.Awake : MinerIntent.Asleep;
                slot.State = wake ? MinerState.WakingUp : MinerState.Sleeping;
                slot.LastCommandAt = now;
                slot.LastSeen = now;
                if (!wake) slot.HashrateThs = 0;
                (wake ? woken : slept).Add(slot.Index);
            }
        }).ConfigureAwait(false);
        return failed;
    }

    private ParallelOptions ParallelOptions(CancellationToken cancellationToken) => new()
    {
        MaxDegreeOfParallelism = _options.MaxParallelism,
        CancellationToken = cancellationToken,
    };

    /// <summary>Runs one miner operation with a timeout per attempt and backoff between attempts; never throws for miner failures.</summary>
    private async Task<Outcome<T>> TryAsync<T>(Slot slot, Func<CgminerClient, CancellationToken, Task<T>> call, int attempts, CancellationToken cancellationToken)
    {
        var error = "";
        for (var attempt = 1; ; attempt++)
        {
            using (var timeout = new CancellationTokenSource(_options.CommandTimeout, _options.IoClock))
            using (var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeout.Token))
            {
                Interlocked.Increment(ref slot.InFlight);
                try
                {
                    return new Outcome<T>(true, await call(slot.Client, linked.Token).ConfigureAwait(false), "");
                }
                catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
                {
                    error = $"no answer within {_options.CommandTimeout.TotalMilliseconds:0} ms";
                }
                catch (MinerProtocolException e) when (e.Kind == MinerErrorKind.Timeout)
                {
                    // The client's own timeout is the same length on the same clock (see the constructor): whichever of
                    // the two fires first, the miner is down for the same reason, in the same words.
                    error = $"no answer within {_options.CommandTimeout.TotalMilliseconds:0} ms: {e.Message}";
                }
                catch (MinerProtocolException e)
                {
                    error = e.Message;
                }
                finally
                {
                    Interlocked.Decrement(ref slot.InFlight);
                }
            }

            if (attempt >= attempts) return new Outcome<T>(false, default, attempts == 1 ? error : $"{error} ({attempts} attempts)");
            await Task.Delay(Backoff(slot.Index, attempt), _options.IoClock, cancellationToken).ConfigureAwait(false);
        }
    }

    private TimeSpan Backoff(int index, int attempt)
    {
        var baseMs = Math.Min(_options.RetryBackoff.TotalMilliseconds * Math.Pow(2, attempt - 1), _options.MaxRetryBackoff.TotalMilliseconds);
        var mixed = Mix(Mix(Mix((ulong)_options.Seed) ^ (ulong)index) ^ ((ulong)attempt << 32 | (ulong)Interlocked.Read(ref _operationNumber)));
        var unit = (mixed >> 11) * (1.0 / (1UL << 53));
        return TimeSpan.FromMilliseconds(baseMs * (0.5 + unit));
    }

    /// <summary>SplitMix64's finalizer: a fixed, platform-independent mix for reproducible jitter.</summary>
    private static ulong Mix(ulong z)
    {
        z += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    private void MarkDown(Slot slot, string reason)
    {
        var now = _clock.GetUtcNow();
        if (slot.State != MinerState.Down) slot.DownSince = now;
        slot.State = MinerState.Down;
        slot.DownReason = reason;
        slot.NextProbeAt = now + _options.ReprobeInterval;
        slot.HashrateThs = 0;
    }

    private void Observe(Slot slot, MinerSummary summary, double? temperature)
    {
        var now = _clock.GetUtcNow();
        MinerState state;
        if (summary.HashrateThs > 0) state = MinerState.Hashing;
        else if (summary.PowerWatts is { } watts)
            state = watts / slot.Endpoint.Machines >= _options.WakingPowerThresholdWatts ? MinerState.WakingUp : MinerState.Sleeping;
        else state = slot.Intent == MinerIntent.Awake ? MinerState.WakingUp : MinerState.Sleeping;

        var running = state is MinerState.Hashing or MinerState.WakingUp;
        var settled = slot.LastCommandAt is not { } at || now - at >= _options.IntentGracePeriod;
        if (slot.Intent == MinerIntent.Unknown || (settled && running != (slot.Intent == MinerIntent.Awake)))
            slot.Intent = running ? MinerIntent.Awake : MinerIntent.Asleep;

        slot.State = state;
        slot.HashrateThs = summary.HashrateThs;
        slot.PowerWatts = summary.PowerWatts;
        slot.TemperatureC = temperature;
        slot.LastSeen = now;
        slot.DownSince = null;
        slot.DownReason = null;
        slot.NextProbeAt = null;
    }

    private readonly record struct Outcome<T>(bool Ok, T? Value, string Error);

    /// <summary>Mutable per-miner state; every field is read and written under the driver's gate.</summary>
    private sealed class Slot(int index, MinerEndpoint endpoint, CgminerClient client)
    {
        public int Index { get; } = index;
        public MinerEndpoint Endpoint { get; } = endpoint;
        public CgminerClient Client { get; } = client;
        // Calls waiting on the miner's answer (CallsInFlight): a field, for Interlocked.
        public int InFlight;
        public MinerState State { get; set; } = MinerState.Unknown;
        public MinerIntent Intent { get; set; } = MinerIntent.Unknown;
        public double HashrateThs { get; set; }
        public double? PowerWatts { get; set; }
        public double? TemperatureC { get; set; }
        public DateTimeOffset? LastSeen { get; set; }
        public DateTimeOffset? LastCommandAt { get; set; }
        public DateTimeOffset? DownSince { get; set; }
        public string? DownReason { get; set; }
        public DateTimeOffset? NextProbeAt { get; set; }

        public bool PossiblyRunning =>
            State is MinerState.Down or MinerState.Unknown or MinerState.Hashing or MinerState.WakingUp || Intent != MinerIntent.Asleep;

        public MinerStatus ToStatus() => new(Index, Endpoint, State, Intent, HashrateThs, PowerWatts, TemperatureC,
            LastSeen, DownSince, DownReason, NextProbeAt);
    }
}
