namespace ComputeGrid.Energy.Miners;

/// <summary>
/// Which control commands a miner's cgminer-compatible API (TCP port 4028) understands. Reads
/// (<c>summary</c>, <c>devs</c>, <c>pools</c>) are the same for every dialect; sleep, wake and power target differ.
/// </summary>
public enum MinerDialect
{
    /// <summary>
    /// LuxOS (LUXminer): state-changing commands need a session from <c>logon</c>, passed as the first parameter;
    /// <c>curtail</c> with <c>&lt;session&gt;,sleep</c> / <c>&lt;session&gt;,wakeup</c> sleeps and wakes the miner, and
    /// <c>profileset</c> with <c>&lt;session&gt;,&lt;watts&gt;W</c> selects the profile for a power target.
    /// </summary>
    LuxOS,

    /// <summary>
    /// Braiins OS (BOSminer): <c>pause</c> and <c>resume</c> stop and restart hashing without a session. Braiins OS sets
    /// power targets through its gRPC API, not the socket API, so the socket command used for a power target is
    /// configurable (<see cref="CgminerClientOptions.BraiinsPowerTargetCommand"/>).
    /// </summary>
    Braiins,
}
