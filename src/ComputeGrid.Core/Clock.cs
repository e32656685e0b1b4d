namespace ComputeGrid.Core;

/// <summary>
/// Conversions between <see cref="TimeProvider"/> readings and the nanosecond timestamps the ledger
/// stores. Every component reads time through a <see cref="TimeProvider"/> so a simulation can drive it.
/// </summary>
public static class Clock
{
    /// <summary>Nanoseconds since the Unix epoch of the provider's current UTC time.</summary>
    public static long UnixNanoseconds(TimeProvider time) =>
        checked((time.GetUtcNow().UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks) * 100L);

    /// <summary>Converts Unix nanoseconds to a UTC <see cref="DateTimeOffset"/> (100 ns resolution).</summary>
    public static DateTimeOffset FromUnixNanoseconds(long ns) => DateTimeOffset.UnixEpoch.AddTicks(ns / 100);
}
