namespace ComputeGrid.Energy.Miners;

/// <summary>What a miner is observed (or, right after a command, believed) to be doing.</summary>
public enum MinerState
{
    /// <summary>Not contacted yet.</summary>
    Unknown,

    /// <summary>Producing hashrate.</summary>
    Hashing,

    /// <summary>Asleep: hashboards and PSU off, only the control board draws power.</summary>
    Sleeping,

    /// <summary>Woken and booting or ramping: drawing power, not (yet) hashing.</summary>
    WakingUp,

    /// <summary>Not answering; skipped until its next re-probe. It may still be drawing power.</summary>
    Down,
}

/// <summary>What the fleet driver last told a miner to do (or, before any command, what it found it doing).</summary>
public enum MinerIntent
{
    /// <summary>Neither commanded nor observed yet.</summary>
    Unknown,

    /// <summary>Meant to run (hashing or waking up).</summary>
    Awake,

    /// <summary>Meant to sleep.</summary>
    Asleep,
}

/// <summary>The fleet driver's view of one miner.</summary>
/// <param name="Index">The miner's position in the fleet.</param>
/// <param name="Endpoint">Where it listens, its group and dialect.</param>
/// <param name="State">What it is doing, as last observed or commanded.</param>
/// <param name="Intent">What the driver last told it to do.</param>
/// <param name="HashrateThs">The hashrate last read, TH/s (0 when never read, asleep or down).</param>
/// <param name="PowerWatts">The power last read, when the firmware reports it (a rack endpoint's: all its <see cref="MinerEndpoint.Machines"/>).</param>
/// <param name="TemperatureC">The hottest board temperature last read, °C.</param>
/// <param name="LastSeen">When it last answered (driver clock).</param>
/// <param name="DownSince">When it was marked down; null unless <see cref="MinerState.Down"/>.</param>
/// <param name="DownReason">Why it was marked down (the last failure); null unless down.</param>
/// <param name="NextProbeAt">When a down miner is next tried; null unless down.</param>
public sealed record MinerStatus(
    int Index,
    MinerEndpoint Endpoint,
    MinerState State,
    MinerIntent Intent,
    double HashrateThs,
    double? PowerWatts,
    double? TemperatureC,
    DateTimeOffset? LastSeen,
    DateTimeOffset? DownSince,
    string? DownReason,
    DateTimeOffset? NextProbeAt)
{
    /// <summary>
    /// Whether the miner may be drawing full power: everything except a reachable miner the driver put (or found)
    /// asleep and has not seen running since. Down and unknown miners count, since a miner that does not answer may
    /// still be running.
    /// </summary>
    public bool PossiblyRunning =>
        State is MinerState.Down or MinerState.Unknown or MinerState.Hashing or MinerState.WakingUp || Intent != MinerIntent.Asleep;
}

/// <summary>The outcome of <see cref="FleetDriver.ApplyAsync"/>.</summary>
/// <param name="TargetPerGroup">The requested number of running miners per group.</param>
/// <param name="AwakePerGroup">Reachable miners meant to run per group after the call (hashing or waking up).</param>
/// <param name="PossiblyRunningPerGroup">Miners that may be drawing power per group: the awake ones plus down and unknown ones.</param>
/// <param name="ShortfallPerGroup">How many miners each group lacks to reach its target because too few are reachable.</param>
/// <param name="Woken">Miners sent a wake command that acknowledged it, in index order.</param>
/// <param name="Slept">Miners sent a sleep command that acknowledged it, in index order.</param>
/// <param name="NewlyDown">Miners marked down during the call.</param>
/// <param name="Recovered">Down miners that answered a re-probe during the call.</param>
public sealed record FleetApplyResult(
    IReadOnlyList<int> TargetPerGroup,
    IReadOnlyList<int> AwakePerGroup,
    IReadOnlyList<int> PossiblyRunningPerGroup,
    IReadOnlyList<int> ShortfallPerGroup,
    IReadOnlyList<int> Woken,
    IReadOnlyList<int> Slept,
    IReadOnlyList<MinerStatus> NewlyDown,
    IReadOnlyList<int> Recovered)
{
    /// <summary>True when every group has exactly its target of reachable miners meant to run.</summary>
    public bool TargetsMet
    {
        get
        {
            for (var g = 0; g < TargetPerGroup.Count; g++)
                if (AwakePerGroup[g] != TargetPerGroup[g]) return false;
            return true;
        }
    }

    /// <summary>The number of control commands that took effect (<see cref="Woken"/> plus <see cref="Slept"/>).</summary>
    public int CommandsApplied => Woken.Count + Slept.Count;
}

/// <summary>One miner in a <see cref="FleetSnapshot"/>.</summary>
/// <param name="Index">The miner's position in the fleet.</param>
/// <param name="Endpoint">Where it listens, its group and dialect.</param>
/// <param name="State">What it was found doing (<see cref="MinerState.Down"/> when it did not answer or was skipped).</param>
/// <param name="HashrateThs">The current hashrate, TH/s (0 when down).</param>
/// <param name="PowerWatts">The power draw, when reported (a rack endpoint's: all its <see cref="MinerEndpoint.Machines"/>).</param>
/// <param name="TemperatureC">The hottest board temperature, °C, when read.</param>
/// <param name="DownReason">Why it is down; null otherwise.</param>
public sealed record MinerReading(
    int Index,
    MinerEndpoint Endpoint,
    MinerState State,
    double HashrateThs,
    double? PowerWatts,
    double? TemperatureC,
    string? DownReason);

/// <summary>Totals of one group in a <see cref="FleetSnapshot"/>.</summary>
/// <param name="Group">The group index.</param>
/// <param name="Hashing">Miners hashing.</param>
/// <param name="WakingUp">Miners booting or ramping.</param>
/// <param name="Sleeping">Miners asleep.</param>
/// <param name="Down">Miners down.</param>
/// <param name="PossiblyRunning">Miners that may be drawing power (hashing, waking up, down).</param>
/// <param name="HashrateThs">Total hashrate, TH/s.</param>
/// <param name="PowerWatts">Total reported power, W (miners that report none add nothing).</param>
public sealed record GroupTotals(
    int Group,
    int Hashing,
    int WakingUp,
    int Sleeping,
    int Down,
    int PossiblyRunning,
    double HashrateThs,
    double PowerWatts);

/// <summary>The result of <see cref="FleetDriver.PollAsync"/>: every miner and per-group totals at one moment.</summary>
/// <param name="Timestamp">When the poll finished (driver clock).</param>
/// <param name="Miners">One reading per miner, in index order.</param>
/// <param name="Groups">Totals per group, in group order.</param>
public sealed record FleetSnapshot(DateTimeOffset Timestamp, IReadOnlyList<MinerReading> Miners, IReadOnlyList<GroupTotals> Groups)
{
    /// <summary>Total hashrate of the fleet, TH/s.</summary>
    public double TotalHashrateThs => Groups.Sum(g => g.HashrateThs);

    /// <summary>Total reported power of the fleet, W.</summary>
    public double TotalPowerWatts => Groups.Sum(g => g.PowerWatts);
}
