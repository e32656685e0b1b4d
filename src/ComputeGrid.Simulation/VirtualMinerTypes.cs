using ComputeGrid.Energy.Miners;

namespace ComputeGrid.Simulation;

/// <summary>One virtual miner endpoint to serve: one machine, or a rack of identical machines commanded together.</summary>
/// <param name="Model">The model of each of its machines (one machine's nameplate, not the rack's).</param>
/// <param name="Dialect">Which control commands it understands.</param>
/// <param name="StartHashing">Whether it starts hashing at its nominal power (true) or asleep (false).</param>
/// <param name="Machines">
/// How many identical machines the endpoint stands for (1 to <see cref="MachinesMax"/>). Its API reports their totals
/// (power, hashrate, shares) and one machine's temperatures; each machine heats from its own power.
/// </param>
public sealed record VirtualMinerSpec(MinerModel Model, MinerDialect Dialect = MinerDialect.LuxOS, bool StartHashing = true, int Machines = 1)
{
    /// <summary>The most machines one endpoint may stand for.</summary>
    public const int MachinesMax = 100_000;
}

/// <summary>Where a virtual miner is in its power state machine.</summary>
public enum VirtualMinerPhase
{
    /// <summary>Hashing at its power target.</summary>
    Hashing,

    /// <summary>Told to sleep; still hashing until the sleep takes effect.</summary>
    SleepPending,

    /// <summary>Asleep: only the control board draws power.</summary>
    Sleeping,

    /// <summary>Woken and booting: drawing power, not hashing.</summary>
    Booting,

    /// <summary>Booted; hashrate and power ramping up to the target.</summary>
    Ramping,
}

/// <summary>The true physical state of a virtual miner at one moment (simulator clock), for tests and dashboards.</summary>
/// <param name="Index">The miner's index.</param>
/// <param name="Model">Its model.</param>
/// <param name="Dialect">Its dialect.</param>
/// <param name="Phase">Its phase.</param>
/// <param name="HashrateThs">True hashrate (no measurement noise) of all its machines, TH/s.</param>
/// <param name="PowerWatts">Power draw of all its machines, W.</param>
/// <param name="TemperatureC">The temperature of each of its machines (identical, commanded together), °C.</param>
/// <param name="PowerTargetWatts">Its power target (all its machines), W.</param>
/// <param name="Accepted">Shares accepted so far.</param>
/// <param name="Rejected">Shares rejected so far.</param>
/// <param name="ControlCommands">State-changing commands it accepted (sleep, wake, power target).</param>
/// <param name="Requests">API requests it answered.</param>
/// <param name="Fault">The fault currently injected.</param>
/// <param name="Machines">How many identical machines the endpoint stands for.</param>
public sealed record VirtualMinerSnapshot(
    int Index,
    MinerModel Model,
    MinerDialect Dialect,
    VirtualMinerPhase Phase,
    double HashrateThs,
    double PowerWatts,
    double TemperatureC,
    double PowerTargetWatts,
    long Accepted,
    long Rejected,
    int ControlCommands,
    long Requests,
    MinerFault Fault,
    int Machines = 1);

/// <summary>Physics and protocol settings of a <see cref="MinerFleetSimulator"/>.</summary>
public sealed record MinerFleetSimulatorOptions
{
    /// <summary>The default options.</summary>
    public static MinerFleetSimulatorOptions Default { get; } = new();

    /// <summary>Seed of every miner's noise (each miner derives its own stream from it and its index).</summary>
    public int Seed { get; init; }

    /// <summary>How long after a sleep command hashing stops and power drops. Default 1.5 s.</summary>
    public TimeSpan SleepDelay { get; init; } = TimeSpan.FromSeconds(1.5);

    /// <summary>How long a woken miner boots (drawing power, not hashing) before it ramps. Default 10 min.</summary>
    public TimeSpan BootDuration { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>How long hashrate and power ramp to the target after boot. Default 60 s.</summary>
    public TimeSpan RampDuration { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Power of a sleeping machine (control board), W. Default 15.</summary>
    public double IdleWatts { get; init; } = 15;

    /// <summary>Power while booting, as a fraction of the power target. Default 0.25.</summary>
    public double BootPowerFraction { get; init; } = 0.25;

    /// <summary>Ambient (intake) temperature, °C. Default 25.</summary>
    public double AmbientC { get; init; } = 25;

    /// <summary>
    /// Steady-state temperature rise of a machine per kW that machine draws (its own power, never a rack's), °C/kW.
    /// Default 12: an S21 at 3.5 kW settles at 67 °C with the default ambient.
    /// </summary>
    public double TemperatureRisePerKilowatt { get; init; } = 12;

    /// <summary>Time constant of the first-order lag of temperature behind power. Default 3 min.</summary>
    public TimeSpan ThermalTimeConstant { get; init; } = TimeSpan.FromMinutes(3);

    /// <summary>Relative standard deviation of the reported short-window hashrate. Default 0.02.</summary>
    public double HashrateNoise { get; init; } = 0.02;

    /// <summary>Shares found per TH of work (sets the pool difficulty). Default 0.005 (1 share/s at 200 TH/s).</summary>
    public double SharesPerTerahash { get; init; } = 0.005;

    /// <summary>Fraction of shares the pool rejects. Default 0.002.</summary>
    public double RejectFraction { get; init; } = 0.002;

    /// <summary>Hashboards per miner, reported by <c>devs</c>. Default 3.</summary>
    public int BoardsPerMiner { get; init; } = 3;

    /// <summary>Idle time after which a LuxOS session expires (simulator clock). Default 1 min, as on LuxOS.</summary>
    public TimeSpan SessionTimeout { get; init; } = TimeSpan.FromMinutes(1);

    /// <summary>Whether replies end with a NUL byte, as cgminer's do. Default true.</summary>
    public bool NulTerminateReplies { get; init; } = true;

    /// <summary>The largest request accepted. Default 8 KiB.</summary>
    public int MaxRequestBytes { get; init; } = 8 * 1024;

    /// <summary>How long (wall clock) a connection may take to deliver its request before it is closed. Default 10 s.</summary>
    public TimeSpan RequestReadTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// The clock a <see cref="MinerFault.Slow"/> miner's delay runs on. Default the system clock; a simulation that runs its
    /// clients' timeouts on a virtual clock gives the same clock here, so a slow reply and a timeout are ordered by that
    /// clock and never by the machine's load.
    /// </summary>
    public TimeProvider FaultClock { get; init; } = TimeProvider.System;

    /// <summary>The command a Braiins-dialect miner takes a power target with (watts as parameter). Default <c>powertarget</c>.</summary>
    public string BraiinsPowerTargetCommand { get; init; } = "powertarget";

    internal void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(SleepDelay, TimeSpan.Zero, nameof(SleepDelay));
        ArgumentOutOfRangeException.ThrowIfLessThan(BootDuration, TimeSpan.Zero, nameof(BootDuration));
        ArgumentOutOfRangeException.ThrowIfLessThan(RampDuration, TimeSpan.Zero, nameof(RampDuration));
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(ThermalTimeConstant, TimeSpan.Zero, nameof(ThermalTimeConstant));
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(SessionTimeout, TimeSpan.Zero, nameof(SessionTimeout));
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(RequestReadTimeout, TimeSpan.Zero, nameof(RequestReadTimeout));
        ArgumentOutOfRangeException.ThrowIfLessThan(BoardsPerMiner, 1, nameof(BoardsPerMiner));
        ArgumentNullException.ThrowIfNull(FaultClock, nameof(FaultClock));
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxRequestBytes, 64, nameof(MaxRequestBytes));
        foreach (var (name, value) in new[]
                 {
                     (nameof(IdleWatts), IdleWatts), (nameof(BootPowerFraction), BootPowerFraction), (nameof(AmbientC), AmbientC + 273.15),
                     (nameof(TemperatureRisePerKilowatt), TemperatureRisePerKilowatt), (nameof(HashrateNoise), HashrateNoise),
                     (nameof(SharesPerTerahash), SharesPerTerahash), (nameof(RejectFraction), RejectFraction),
                 })
            if (!double.IsFinite(value) || value < 0) throw new ArgumentOutOfRangeException(name);
        if (RejectFraction > 1) throw new ArgumentOutOfRangeException(nameof(RejectFraction));
        ArgumentException.ThrowIfNullOrWhiteSpace(BraiinsPowerTargetCommand, nameof(BraiinsPowerTargetCommand));
    }
}
