namespace ComputeGrid.Energy.Miners;

/// <summary>
/// One miner the fleet drives: where its API listens, which model group it belongs to, its dialect, and how many
/// identical machines answer behind it (one for a real miner; a rack's count for an endpoint that aggregates a rack).
/// </summary>
public sealed record MinerEndpoint
{
    /// <summary>Creates an endpoint.</summary>
    /// <param name="host">IP address or host name of the miner's API.</param>
    /// <param name="port">TCP port of the API (cgminer's default is <see cref="CgminerClient.DefaultPort"/>).</param>
    /// <param name="group">The model group the controller counts the miner in (0-based).</param>
    /// <param name="dialect">Which control commands the miner understands.</param>
    /// <param name="machines">How many identical machines the endpoint stands for (their total power and hashrate is what it reports).</param>
    public MinerEndpoint(string host, int port, int group, MinerDialect dialect, int machines = 1)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(host);
        ArgumentOutOfRangeException.ThrowIfLessThan(port, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(port, 65535);
        ArgumentOutOfRangeException.ThrowIfNegative(group);
        if (!Enum.IsDefined(dialect)) throw new ArgumentOutOfRangeException(nameof(dialect));
        ArgumentOutOfRangeException.ThrowIfLessThan(machines, 1);
        Host = host;
        Port = port;
        Group = group;
        Dialect = dialect;
        Machines = machines;
    }

    /// <summary>IP address or host name of the miner's API.</summary>
    public string Host { get; }

    /// <summary>TCP port of the miner's API.</summary>
    public int Port { get; }

    /// <summary>The model group the controller counts the miner in (0-based).</summary>
    public int Group { get; }

    /// <summary>Which control commands the miner understands.</summary>
    public MinerDialect Dialect { get; }

    /// <summary>How many identical machines the endpoint stands for: 1 for a real miner, more for a rack endpoint.</summary>
    public int Machines { get; }

    /// <summary><c>host:port</c>.</summary>
    public override string ToString() => $"{Host}:{Port}";
}
