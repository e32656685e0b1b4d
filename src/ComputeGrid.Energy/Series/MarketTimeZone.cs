namespace ComputeGrid.Energy.Series;

/// <summary>
/// The local time of a power market, by rule rather than the machine's time-zone database (so results do not depend
/// on what tzdata a machine has): US zones follow the US daylight-saving rule in force since 2007 (second Sunday of
/// March 02:00 local to the first Sunday of November 02:00 local); Japan has no daylight saving.
/// </summary>
public sealed class MarketTimeZone
{
    private readonly int _standardOffsetHours;
    private readonly bool _usDst;

    private MarketTimeZone(string id, int standardOffsetHours, bool usDst)
    {
        Id = id;
        _standardOffsetHours = standardOffsetHours;
        _usDst = usDst;
    }

    /// <summary>US Central prevailing time (ERCOT): CST = UTC−6, CDT = UTC−5.</summary>
    public static MarketTimeZone UsCentral { get; } = new("US-Central", -6, usDst: true);

    /// <summary>US Pacific prevailing time (CAISO): PST = UTC−8, PDT = UTC−7.</summary>
    public static MarketTimeZone UsPacific { get; } = new("US-Pacific", -8, usDst: true);

    /// <summary>Japan Standard Time (JEPX): UTC+9, no daylight saving.</summary>
    public static MarketTimeZone AsiaTokyo { get; } = new("Asia-Tokyo", 9, usDst: false);

    /// <summary>Coordinated Universal Time.</summary>
    public static MarketTimeZone Utc { get; } = new("UTC", 0, usDst: false);

    /// <summary>The zones by id.</summary>
    public static IReadOnlyList<MarketTimeZone> All { get; } = [UsCentral, UsPacific, AsiaTokyo, Utc];

    /// <summary>The zone's id as written in site files (e.g. <c>US-Central</c>).</summary>
    public string Id { get; }

    /// <summary>The zone named <paramref name="id"/> (case-insensitive), or null.</summary>
    public static MarketTimeZone? Find(string id) => All.FirstOrDefault(z => string.Equals(z.Id, id, StringComparison.OrdinalIgnoreCase));

    /// <summary>The offset of local time from UTC (hours) at the instant <paramref name="utc"/>.</summary>
    public int OffsetHours(DateTime utc)
    {
        if (!_usDst) return _standardOffsetHours;
        int year = utc.Year;
        // DST starts at 02:00 local standard time and ends at 02:00 local daylight time (= 01:00 standard).
        DateTime startUtc = UsDaylightSaving.StartLocal(year).AddHours(-_standardOffsetHours);
        DateTime endUtc = UsDaylightSaving.EndLocal(year).AddHours(-(_standardOffsetHours + 1));
        return utc >= startUtc && utc < endUtc ? _standardOffsetHours + 1 : _standardOffsetHours;
    }

    /// <summary>Local wall-clock time of <paramref name="utc"/>.</summary>
    public DateTime ToLocal(DateTime utc) => DateTime.SpecifyKind(utc.AddHours(OffsetHours(utc)), DateTimeKind.Unspecified);
}
