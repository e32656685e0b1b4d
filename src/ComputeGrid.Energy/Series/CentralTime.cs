namespace ComputeGrid.Energy.Series;

/// <summary>
/// US Central prevailing time (ERCOT's clock) converted to UTC by the US daylight-saving rule in force since 2007,
/// without the machine's time-zone database: daylight time (CDT, UTC−5) runs from 02:00 local on the second
/// Sunday of March to 02:00 local on the first Sunday of November; standard time (CST, UTC−6) the rest of the year.
/// </summary>
/// <remarks>
/// In spring the clock jumps from 02:00 to 03:00, so local times in <c>[02:00, 03:00)</c> do not exist. In autumn
/// it falls back from 02:00 CDT to 01:00 CST, so local times in <c>[01:00, 02:00)</c> happen twice: first in
/// CDT, then, repeated, in CST.
/// </remarks>
public static class CentralTime
{
    /// <summary>The first year the rule applies to.</summary>
    public const int FirstYear = 2007;

    /// <summary>Offset of Central Standard Time from UTC.</summary>
    public static readonly TimeSpan StandardOffset = TimeSpan.FromHours(-6);

    /// <summary>Offset of Central Daylight Time from UTC.</summary>
    public static readonly TimeSpan DaylightOffset = TimeSpan.FromHours(-5);

    private static readonly TimeSpan OneHour = TimeSpan.FromHours(1);

    /// <summary>The local time daylight saving starts: 02:00 on the second Sunday of March (the clock jumps to 03:00).</summary>
    public static DateTime DaylightStartLocal(int year) => UsDaylightSaving.StartLocal(year);

    /// <summary>The local (daylight) time daylight saving ends: 02:00 on the first Sunday of November (the clock falls back to 01:00).</summary>
    public static DateTime DaylightEndLocal(int year) => UsDaylightSaving.EndLocal(year);

    /// <summary>The instant daylight saving starts, in UTC (08:00 UTC).</summary>
    public static DateTime DaylightStartUtc(int year) => DateTime.SpecifyKind(DaylightStartLocal(year) - StandardOffset, DateTimeKind.Utc);

    /// <summary>The instant daylight saving ends, in UTC (07:00 UTC).</summary>
    public static DateTime DaylightEndUtc(int year) => DateTime.SpecifyKind(DaylightEndLocal(year) - DaylightOffset, DateTimeKind.Utc);

    /// <summary>
    /// Converts a local Central wall-clock time to UTC. A time in the repeated hour of the autumn change is read as
    /// the first (CDT) one, unless <paramref name="repeated"/> says it is the second (CST) one.
    /// </summary>
    /// <param name="local">The wall-clock time (its <see cref="DateTime.Kind"/> is ignored).</param>
    /// <param name="repeated">True for the second occurrence of a time in the repeated hour.</param>
    /// <returns>The UTC time (<see cref="DateTimeKind.Utc"/>).</returns>
    /// <exception cref="ArgumentException">The time falls in the hour skipped in spring, or <paramref name="repeated"/> is set for a time outside the repeated hour.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The year is before <see cref="FirstYear"/>.</exception>
    public static DateTime ToUtc(DateTime local, bool repeated = false)
    {
        local = DateTime.SpecifyKind(local, DateTimeKind.Unspecified);
        if (local.Year < FirstYear)
            throw new ArgumentOutOfRangeException(nameof(local), local, $"The US daylight-saving rule implemented here applies from {FirstYear}.");
        DateTime start = DaylightStartLocal(local.Year), end = DaylightEndLocal(local.Year);
        bool ambiguous = local >= end - OneHour && local < end;
        if (repeated && !ambiguous)
            throw new ArgumentException(
                $"{local:yyyy-MM-dd HH:mm} is not in the hour repeated when daylight saving ends ({end - OneHour:yyyy-MM-dd HH:mm}–{end:HH:mm}).", nameof(repeated));
        if (local >= start && local < start + OneHour)
            throw new ArgumentException(
                $"{local:yyyy-MM-dd HH:mm} does not exist in Central time: the clock jumps from {start:HH:mm} to {start + OneHour:HH:mm} that day.", nameof(local));

        bool daylight = local >= start && local < end && !(ambiguous && repeated);
        return DateTime.SpecifyKind(local - (daylight ? DaylightOffset : StandardOffset), DateTimeKind.Utc);
    }

}

/// <summary>The US daylight-saving rule in force since 2007: local 02:00 on the second Sunday of March to local 02:00 on the first Sunday of November.</summary>
internal static class UsDaylightSaving
{
    /// <summary>Local wall-clock time at which daylight saving starts (clocks jump from 02:00 to 03:00).</summary>
    public static DateTime StartLocal(int year) => NthSunday(year, 3, 2).AddHours(2);

    /// <summary>Local wall-clock (daylight) time at which daylight saving ends (clocks fall back from 02:00 to 01:00).</summary>
    public static DateTime EndLocal(int year) => NthSunday(year, 11, 1).AddHours(2);

    private static DateTime NthSunday(int year, int month, int n)
    {
        var first = new DateTime(year, month, 1);
        int toSunday = ((int)DayOfWeek.Sunday - (int)first.DayOfWeek + 7) % 7;
        return first.AddDays(toSunday + 7 * (n - 1));
    }
}
