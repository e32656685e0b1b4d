namespace ComputeGrid.Server.Chain;

/// <summary>Settings of the chain bridge and the anchoring (<see cref="ServerOptions.Bridge"/>); they matter only with a chain.</summary>
public sealed record BridgeOptions
{
    /// <summary>How often the deposit watcher, the withdrawal outbox and the anchor outbox each take a pass.</summary>
    public TimeSpan PollInterval { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>False: no background passes (tests drive <see cref="BridgeDeposits.PollAsync"/> and the others themselves).</summary>
    public bool RunLoops { get; init; } = true;

    /// <summary>The most blocks one deposit pass reads (a long way behind is caught up in several passes).</summary>
    public int BlocksPerPassMax { get; init; } = 5_000;

    /// <summary>The first block the deposit watcher reads on a new data folder, at the earliest (it starts at the later of this and the contracts' deployment block).</summary>
    public long StartBlock { get; init; }

    /// <summary>The largest withdrawal, micro-USD (one million USDC).</summary>
    public const long WithdrawalAmountMax = 1_000_000_000_000;

    /// <summary>The longest Idempotency-Key, characters.</summary>
    public const int IdempotencyKeyLengthMax = 128;

    /// <summary>
    /// Test-only: called after a withdrawal's transaction is mined and before the outbox records it, as a crash there
    /// would find it; a hook that throws ends the pass with nothing recorded (the crash tests then restart the server).
    /// </summary>
    public Func<string, Task>? AfterWithdrawalSent { get; init; }
}
