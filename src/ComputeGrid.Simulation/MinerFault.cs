namespace ComputeGrid.Simulation;

/// <summary>How a virtual miner misbehaves on the network.</summary>
public enum MinerFaultKind
{
    /// <summary>Answers normally.</summary>
    None,

    /// <summary>Accepts the connection and never answers (until the client closes it).</summary>
    Silent,

    /// <summary>Answers bytes that are not JSON.</summary>
    Garbage,

    /// <summary>Answers normally after a delay (wall clock).</summary>
    Slow,

    /// <summary>The port is closed: connections are refused.</summary>
    Refuse,
}

/// <summary>A fault injected into one virtual miner's API. Physics carry on regardless.</summary>
public sealed record MinerFault
{
    private MinerFault(MinerFaultKind kind, TimeSpan delay)
    {
        Kind = kind;
        Delay = delay;
    }

    /// <summary>No fault.</summary>
    public static MinerFault None { get; } = new(MinerFaultKind.None, TimeSpan.Zero);

    /// <summary>Accepts connections and never answers.</summary>
    public static MinerFault Silent { get; } = new(MinerFaultKind.Silent, TimeSpan.Zero);

    /// <summary>Answers non-JSON bytes.</summary>
    public static MinerFault Garbage { get; } = new(MinerFaultKind.Garbage, TimeSpan.Zero);

    /// <summary>Closes the port, so connections are refused.</summary>
    public static MinerFault Refuse { get; } = new(MinerFaultKind.Refuse, TimeSpan.Zero);

    /// <summary>Answers after <paramref name="delay"/> of wall-clock time (never the simulated clock: socket I/O must not wait on fake timers).</summary>
    public static MinerFault Slow(TimeSpan delay)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(delay, TimeSpan.Zero);
        return new MinerFault(MinerFaultKind.Slow, delay);
    }

    /// <summary>Which fault.</summary>
    public MinerFaultKind Kind { get; }

    /// <summary>The answer delay of <see cref="MinerFaultKind.Slow"/>; zero otherwise.</summary>
    public TimeSpan Delay { get; }

    /// <summary>The fault's name, with the delay for <see cref="MinerFaultKind.Slow"/>.</summary>
    public override string ToString() => Kind == MinerFaultKind.Slow ? $"Slow({Delay.TotalMilliseconds:0} ms)" : Kind.ToString();
}
