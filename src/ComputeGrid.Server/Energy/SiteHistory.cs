namespace ComputeGrid.Server.Energy;

/// <summary>
/// Why a live site's miners were held off in a decided interval, named where the decision is made
/// (<see cref="LiveSite"/>): the controller's own reason first, then what the hard limits did.
/// </summary>
public enum SiteCurtailmentReason
{
    /// <summary>The expected mining margin at the price did not pay (the controller's reason).</summary>
    Price = 1,

    /// <summary>The controller's 4CP guard: the risk of the month's system-peak hour outweighed the margin.</summary>
    PeakRisk = 2,

    /// <summary>A declared grid emergency (demand response): no miner runs.</summary>
    Emergency = 3,

    /// <summary>The GPUs' load left the miners too little of the interconnect.</summary>
    AiLoad = 4,

    /// <summary>The hard limits held back what the controller asked for: the ramp-up limit, whole racks, racks not answering.</summary>
    Limits = 5,
}

/// <summary>One decided interval of a live site, as the API's history lists it (facility kW, cooling included).</summary>
/// <param name="SeriesTimeUtc">The interval's start on the replayed clock.</param>
/// <param name="Interval">The interval's index in the site's series.</param>
/// <param name="PriceUsdPerMwh">The last price known when it was decided (the state's <see cref="LiveSiteState.LastPriceUsdPerMwh"/>); null for the series' first interval.</param>
/// <param name="AiKw">The GPUs' facility load.</param>
/// <param name="MinerKw">The miners' facility load decided.</param>
/// <param name="CurtailedKw">The miners' facility power held off: the whole fleet's less what runs.</param>
/// <param name="PeakGuard">The controller's 4CP guard held miners off.</param>
/// <param name="Emergency">A declared grid emergency.</param>
/// <param name="MinersOn">Machines decided to run.</param>
/// <param name="Reason">Why miners were held off; null when the whole fleet runs.</param>
public sealed record SiteHistoryPoint(DateTime SeriesTimeUtc, int Interval, double? PriceUsdPerMwh, double AiKw, double MinerKw, double CurtailedKw,
    bool PeakGuard, bool Emergency, int MinersOn, SiteCurtailmentReason? Reason);

/// <summary>
/// A curtailment event: consecutive decided intervals that held miners off for the same reason.
/// </summary>
/// <param name="StartUtc">The first interval's start (replayed clock).</param>
/// <param name="LastIntervalUtc">The start of its latest interval so far.</param>
/// <param name="Intervals">How many intervals it lasted so far.</param>
/// <param name="Reason">Why.</param>
/// <param name="CurtailedKw">The facility power held off in its first interval.</param>
/// <param name="MaxCurtailedKw">The most held off in any of its intervals.</param>
/// <param name="Ongoing">Its reason still holds at the latest decided interval.</param>
public sealed record CurtailmentEvent(DateTime StartUtc, DateTime LastIntervalUtc, int Intervals, SiteCurtailmentReason Reason,
    double CurtailedKw, double MaxCurtailedKw, bool Ongoing);

/// <summary>The latest decided intervals of a site (<c>GET /api/energy/sites/{name}/history</c>), oldest first.</summary>
public sealed record SiteHistoryView(string Site, int IntervalMinutes, int Capacity, IReadOnlyList<SiteHistoryPoint> Points);

/// <summary>The latest curtailment events of a site (<c>GET /api/energy/sites/{name}/events</c>), newest first.</summary>
public sealed record SiteEventsView(string Site, int Capacity, IReadOnlyList<CurtailmentEvent> Events);

/// <summary>
/// A live site's recent past in bounded memory: the last <see cref="PointsMax"/> decided intervals and the last
/// <see cref="EventsMax"/> curtailment events, each a ring overwritten oldest first. Written by the site's stepping
/// (one writer, under its gate), read by the API under a lock: a reader copies what it asked for.
/// </summary>
public sealed class SiteHistory
{
    /// <summary>Decided intervals kept: a month of 15-minute intervals.</summary>
    public const int PointsMax = 2_880;

    /// <summary>Curtailment events kept.</summary>
    public const int EventsMax = 512;

    private readonly SiteHistoryPoint[] _points = new SiteHistoryPoint[PointsMax];
    private readonly CurtailmentEvent[] _events = new CurtailmentEvent[EventsMax];
    private readonly Lock _lock = new();
    private long _pointCount, _eventCount;

    /// <summary>
    /// Adds a decided interval; a held-off interval extends the ongoing event of the same reason (its next interval) or
    /// opens a new one, and one that holds nothing off (or for another reason) ends the ongoing event.
    /// </summary>
    public void Add(SiteHistoryPoint point, TimeSpan intervalLength)
    {
        lock (_lock)
        {
            CurtailmentEvent? last = _eventCount == 0 ? null : _events[(_eventCount - 1) % EventsMax];
            bool continues = last is { Ongoing: true } e && point.Reason == e.Reason && point.SeriesTimeUtc == e.LastIntervalUtc + intervalLength;
            if (last is { Ongoing: true } && !continues) _events[(_eventCount - 1) % EventsMax] = last with { Ongoing = false };
            if (continues)
                _events[(_eventCount - 1) % EventsMax] = last! with
                {
                    LastIntervalUtc = point.SeriesTimeUtc, Intervals = last.Intervals + 1, MaxCurtailedKw = Math.Max(last.MaxCurtailedKw, point.CurtailedKw),
                };
            else if (point.Reason is { } reason)
                _events[_eventCount++ % EventsMax] = new CurtailmentEvent(point.SeriesTimeUtc, point.SeriesTimeUtc, 1, reason, point.CurtailedKw, point.CurtailedKw, Ongoing: true);
            _points[_pointCount++ % PointsMax] = point;
        }
    }

    /// <summary>The latest <paramref name="limit"/> decided intervals (at most those kept), oldest first.</summary>
    public SiteHistoryPoint[] Points(int limit)
    {
        lock (_lock)
        {
            long n = Math.Min(Math.Min(limit, PointsMax), _pointCount);
            var copy = new SiteHistoryPoint[n];
            for (long i = 0; i < n; i++) copy[i] = _points[(_pointCount - n + i) % PointsMax];
            return copy;
        }
    }

    /// <summary>The latest <paramref name="limit"/> curtailment events (at most those kept), newest first.</summary>
    public CurtailmentEvent[] Events(int limit)
    {
        lock (_lock)
        {
            long n = Math.Min(Math.Min(limit, EventsMax), _eventCount);
            var copy = new CurtailmentEvent[n];
            for (long i = 0; i < n; i++) copy[i] = _events[(_eventCount - 1 - i) % EventsMax];
            return copy;
        }
    }
}
