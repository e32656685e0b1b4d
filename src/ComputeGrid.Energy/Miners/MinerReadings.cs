namespace ComputeGrid.Energy.Miners;

/// <summary>A miner's <c>summary</c>: what the whole machine is doing.</summary>
/// <param name="HashrateThs">The current hashrate in TH/s (the shortest window reported, e.g. <c>MHS 5s</c>).</param>
/// <param name="AverageHashrateThs">The average hashrate since the miner software started (<c>MHS av</c>), TH/s.</param>
/// <param name="ElapsedSeconds">Seconds since the miner software started (<c>Elapsed</c>).</param>
/// <param name="Accepted">Shares the pool accepted.</param>
/// <param name="Rejected">Shares the pool rejected.</param>
/// <param name="HardwareErrors">Hardware errors, when reported.</param>
/// <param name="PowerWatts">Power draw in watts, when the firmware reports it (<c>Power</c> or <c>Watts</c>); cgminer does not.</param>
/// <param name="TemperatureC">A machine temperature in °C, when the firmware puts one in the summary; cgminer does not.</param>
/// <param name="When">The miner's clock when it answered (STATUS <c>When</c>).</param>
public sealed record MinerSummary(
    double HashrateThs,
    double AverageHashrateThs,
    long ElapsedSeconds,
    long Accepted,
    long Rejected,
    long? HardwareErrors,
    double? PowerWatts,
    double? TemperatureC,
    DateTimeOffset When);

/// <summary>One hashboard (device) from <c>devs</c>.</summary>
/// <param name="Index">The device number (<c>ASC</c>, <c>PGA</c>, <c>GPU</c> or <c>ID</c>).</param>
/// <param name="Name">The driver name, when reported.</param>
/// <param name="Enabled">Whether the device is enabled (<c>Enabled</c> Y/N).</param>
/// <param name="Status">The device status, e.g. <c>Alive</c>, <c>Sick</c>, <c>Dead</c>, <c>Initialising</c>, <c>Disabled</c>.</param>
/// <param name="TemperatureC">The board temperature in °C, when reported.</param>
/// <param name="HashrateThs">The current hashrate in TH/s.</param>
/// <param name="Accepted">Shares accepted from this device.</param>
/// <param name="Rejected">Shares rejected from this device.</param>
public sealed record MinerDevice(
    int Index,
    string? Name,
    bool Enabled,
    string Status,
    double? TemperatureC,
    double HashrateThs,
    long Accepted,
    long Rejected);

/// <summary>One pool from <c>pools</c>.</summary>
/// <param name="Index">The pool number (<c>POOL</c>).</param>
/// <param name="Url">The pool URL, e.g. <c>stratum+tcp://pool:3333</c>.</param>
/// <param name="Status">The pool status, e.g. <c>Alive</c>, <c>Dead</c>, <c>Disabled</c>.</param>
/// <param name="User">The worker name the miner authenticates with.</param>
/// <param name="Priority">The failover priority (0 is first).</param>
/// <param name="Accepted">Shares this pool accepted.</param>
/// <param name="Rejected">Shares this pool rejected.</param>
/// <param name="StratumActive">Whether the stratum connection is active, when reported.</param>
public sealed record MinerPool(
    int Index,
    string Url,
    string Status,
    string User,
    int Priority,
    long Accepted,
    long Rejected,
    bool? StratumActive);
