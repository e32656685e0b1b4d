namespace ComputeGrid.Simulation;

/// <summary>
/// A clock that runs <see cref="Speed"/> times faster than an inner clock, starting at <see cref="Origin"/>: replaying a
/// year of 15-minute prices at 60× makes an interval last 15 s, and the simulated miners' boot of ten minutes last ten
/// seconds, so the physics and the price replay stay in step. Timers created through it fire at the scaled times.
/// </summary>
public sealed class ScaledTimeProvider : TimeProvider
{
    private readonly TimeProvider _inner;
    private readonly long _innerStart;

    public ScaledTimeProvider(TimeProvider inner, double speed, DateTimeOffset origin)
    {
        ArgumentNullException.ThrowIfNull(inner);
        if (!(speed > 0) || double.IsInfinity(speed)) throw new ArgumentOutOfRangeException(nameof(speed), "The speed must be a positive number.");
        _inner = inner;
        Speed = speed;
        Origin = origin;
        _innerStart = inner.GetTimestamp();
    }

    /// <summary>How many seconds of this clock pass per second of the inner clock.</summary>
    public double Speed { get; }

    /// <summary>This clock's time when it was created.</summary>
    public DateTimeOffset Origin { get; }

    public override DateTimeOffset GetUtcNow() => Origin + _inner.GetElapsedTime(_innerStart) * Speed;

    public override long TimestampFrequency => _inner.TimestampFrequency;

    public override long GetTimestamp() => _innerStart + (long)((_inner.GetTimestamp() - _innerStart) * Speed);

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period) =>
        new ScaledTimer(_inner.CreateTimer(callback, state, Scale(dueTime), Scale(period)), this);

    private TimeSpan Scale(TimeSpan t) => t == Timeout.InfiniteTimeSpan || t == TimeSpan.Zero ? t : t / Speed;

    private sealed class ScaledTimer(ITimer inner, ScaledTimeProvider clock) : ITimer
    {
        public bool Change(TimeSpan dueTime, TimeSpan period) => inner.Change(clock.Scale(dueTime), clock.Scale(period));

        public void Dispose() => inner.Dispose();

        public ValueTask DisposeAsync() => inner.DisposeAsync();
    }
}
