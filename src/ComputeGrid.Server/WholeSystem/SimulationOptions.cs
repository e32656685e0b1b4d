namespace ComputeGrid.Server.WholeSystem;

/// <summary>What one run of the whole-system simulation does: its seed, how long, which faults.</summary>
public sealed record SimulationOptions
{
    /// <summary>The most simulated hours one run may ask for (a month: the folder and the ledger stay small).</summary>
    public const double HoursMax = 744;

    /// <summary>The one seed every random choice of the run derives from.</summary>
    public required long Seed { get; init; }

    /// <summary>Simulated hours to run (0 &lt; hours ≤ <see cref="HoursMax"/>).</summary>
    public double Hours { get; init; } = 2;

    /// <summary>The fault kinds injected (empty: none, the default).</summary>
    public IReadOnlySet<SimFaultKind> Faults { get; init; } = new HashSet<SimFaultKind>();

    /// <summary>Whether the hybrid site runs (its miner fleet over real TCP sockets). On by default.</summary>
    public bool Site { get; init; } = true;

    /// <summary>The folder the run's files go in (a fresh temporary folder when null; deleted at the end either way unless kept).</summary>
    public string? WorkDirectory { get; init; }

    /// <summary>Keeps the run's folder after the run (to inspect a failure with <c>verify --ledger-dir</c>).</summary>
    public bool KeepFiles { get; init; }

    /// <summary>Test-only: a bug planted in the real paid path, to show the invariants catch it (never set outside tests).</summary>
    public PlantedBug Bug { get; init; }

    /// <summary>The planted bug <c>CG_FAULT</c> asks for (<c>sim-skip-capture</c>, <c>sim-wake-every-rack</c>), else none.</summary>
    public static PlantedBug BugFromEnvironment() => Environment.GetEnvironmentVariable("CG_FAULT") switch
    {
        "sim-skip-capture" => PlantedBug.SkipOneCapture,
        "sim-wake-every-rack" => PlantedBug.WakeEveryRack,
        _ => PlantedBug.None,
    };

    /// <summary>Checks the values; returns a one-line error or null.</summary>
    public string? Validate() =>
        !(Hours > 0) || Hours > HoursMax ? $"--hours must be above 0 and at most {HoursMax} (got {Hours})" : null;
}

/// <summary>
/// Test-only bugs planted in the real components, so a test shows the invariants can fail. The CLI sets one from
/// <c>CG_FAULT=sim-skip-capture</c> (the repository's convention for test-only faults, read once at start).
/// </summary>
public enum PlantedBug
{
    /// <summary>No bug.</summary>
    None,
    /// <summary>The capture settler drops one answered request's capture (the answer went out, the charge is lost).</summary>
    SkipOneCapture,
    /// <summary>
    /// Every rack is woken out of band (a hand on the miners' API, behind the controller's back) at every step from step
    /// 10 on: the plan still says what the controller decided; only the measured power shows the interconnect exceeded.
    /// </summary>
    WakeEveryRack,
}
