namespace ComputeGrid.Energy.Dispatch;

/// <summary>A group of identical miners at a site (one model), in the order the controller runs them (most efficient first).</summary>
/// <param name="Model">The model's name as in the miner tables, e.g. <c>Antminer S21</c>.</param>
/// <param name="Count">How many miners of this model the site has.</param>
/// <param name="WattsEach">Electrical power of one running miner (W, at the wall, before cooling).</param>
/// <param name="TerahashEach">Hash rate of one running miner (TH/s).</param>
public sealed record MinerGroup(string Model, int Count, double WattsEach, double TerahashEach)
{
    /// <summary>Joules per terahash (= W per TH/s).</summary>
    public double JoulesPerTerahash => WattsEach / TerahashEach;

    /// <summary>The whole group's power when every miner runs (kW).</summary>
    public double FleetKw => Count * WattsEach / 1000.0;
}

/// <summary>
/// Everything the dispatch of one site over one horizon needs, resolved to one value per interval. Built from a
/// site configuration and the real series (<c>SiteProblemBuilder</c>); read by the controllers, the
/// optimizer and the accounting. Arrays are indexed by interval; interval <c>t</c> covers
/// <c>[StartUtc + t·IntervalMinutes, …)</c>.
/// </summary>
/// <remarks>
/// What is known when: the real-time controller deciding interval <c>t</c> sees prices of intervals <c>&lt; t</c>,
/// the system load of hours that ended before <c>t</c> starts, the hashprice of the previous UTC day, and the
/// contracted AI load and emergency signal of interval <c>t</c> itself (leases are contracts known in advance;
/// an emergency is declared by the grid operator in real time). <see cref="RealTimeView"/> enforces this.
/// </remarks>
public sealed class SiteProblem
{
    /// <summary>The site's name.</summary>
    public required string Name { get; init; }

    /// <summary>The start of interval 0 (UTC).</summary>
    public required DateTime StartUtc { get; init; }

    /// <summary>Length of one interval in minutes (15 for the reference site).</summary>
    public required int IntervalMinutes { get; init; }

    /// <summary>Real-time energy price of each interval (USD/MWh; may be negative).</summary>
    public required double[] PriceUsdPerMwh { get; init; }

    /// <summary>Hashprice of each interval's UTC day (USD per TH/s per day), from the daily Bitcoin data.</summary>
    public required double[] HashpriceUsdPerThDay { get; init; }

    /// <summary>Hashprice of the previous UTC day (what a real-time controller knows), per interval.</summary>
    public required double[] KnownHashpriceUsdPerThDay { get; init; }

    /// <summary>Firm AI IT load of each interval (kW, before cooling): leased GPUs × watts.</summary>
    public required double[] AiItKw { get; init; }

    /// <summary>AI revenue earned in each interval (USD) when its AI load is served.</summary>
    public required double[] AiRevenueUsd { get; init; }

    /// <summary>
    /// System load of the hour that contains each interval (MW), or NaN where the site has no system-load series.
    /// A controller may read it only for hours that ended before the current interval starts.
    /// </summary>
    public required double[] SystemLoadMw { get; init; }

    /// <summary>True while the grid operator has declared an emergency (demand response: miners must stop).</summary>
    public required bool[] Emergency { get; init; }

    /// <summary>
    /// Peak-charge weight of each interval (USD per kW of facility load in that interval): zero except in the
    /// intervals of the charge's peak hours (ERCOT 4CP: usdPerKwYear / months / intervals per hour).
    /// </summary>
    public required double[] PeakChargeUsdPerKw { get; init; }

    /// <summary>Months (1–12, local) whose system peak sets the peak charge; empty when the site has none.</summary>
    public required int[] PeakChargeMonths { get; init; }

    /// <summary>Peak charge rate (USD per kW-year), for controllers that price the risk of a peak.</summary>
    public required double PeakChargeUsdPerKwYear { get; init; }

    /// <summary>UTC offset of the market's local time for each interval (hours), used for local hour and month.</summary>
    public required sbyte[] LocalUtcOffsetHours { get; init; }

    /// <summary>Interconnect limit: the site's facility load may never exceed it (kW).</summary>
    public required double InterconnectKw { get; init; }

    /// <summary>Power usage effectiveness: facility load = PUE × IT load.</summary>
    public required double Pue { get; init; }

    /// <summary>Miner groups, most efficient (lowest J/TH) first.</summary>
    public required MinerGroup[] Groups { get; init; }

    /// <summary>Largest increase of the miner fleet's IT power from one interval to the next (kW); +∞ when unlimited.</summary>
    public required double RampUpKwPerInterval { get; init; }

    /// <summary>Largest decrease of the miner fleet's IT power from one interval to the next (kW); +∞ when unlimited (curtailment is immediate).</summary>
    public required double RampDownKwPerInterval { get; init; }

    /// <summary>Minutes a restarted miner draws power without hashing.</summary>
    public required double RestartMinutes { get; init; }

    /// <summary>Wear cost of one miner restart (USD).</summary>
    public required double RestartWearUsd { get; init; }

    /// <summary>Pool fee as a fraction of mining revenue (0 when none).</summary>
    public required double PoolFeeFraction { get; init; }

    /// <summary>Miners of each group running before interval 0 (the state the horizon starts from).</summary>
    public required int[] InitialRunning { get; init; }

    /// <summary>
    /// For a day-ahead market (JEPX): the local hour at which the auction's prices for the next local day are published
    /// (every price of day D is known from hour H of day D − 1 on). Null for a real-time market, whose price becomes known
    /// only once its interval has passed.
    /// </summary>
    public double? DayAheadPublishedLocalHour { get; init; }

    /// <summary>
    /// For a real-time market that publishes each interval's binding price before the interval starts (CAISO's
    /// fifteen-minute market): the minutes before the start. Interval <c>i</c>'s price is known when interval <c>t</c> is
    /// decided (at its start) when <c>start(i) − minutes ≤ start(t)</c>. Null when prices are known only once their
    /// interval has passed.
    /// </summary>
    public double? PricePublishedMinutesBeforeStart { get; init; }

    private int[]? _pricesKnownUntil;

    /// <summary>The first interval whose price is not yet known when interval <paramref name="t"/> is decided (see <see cref="RealTimeView.PricesKnownUntil"/>).</summary>
    public int PricesKnownUntil(int t)
    {
        int until = t;
        if (PricePublishedMinutesBeforeStart is { } ahead)
            until = (int)Math.Min(Count, t + Math.Floor(ahead / IntervalMinutes) + 1);
        if (DayAheadPublishedLocalHour is null) return until;
        int[] known = _pricesKnownUntil ??= DayAheadKnown(DayAheadPublishedLocalHour.Value);
        return Math.Max(until, known[t]);
    }

    // For each interval: the end (exclusive) of the local day whose prices are the last published at its start.
    private int[] DayAheadKnown(double publishedHour)
    {
        int n = Count;
        var dayEnd = new int[n];
        for (int t = n - 1, end = n; t >= 0; t--)
        {
            dayEnd[t] = end;
            if (t > 0 && LocalDate(t) != LocalDate(t - 1)) end = t;
        }
        var known = new int[n];
        for (int t = 0; t < n; t++)
        {
            DateTime local = IntervalStartUtc(t).AddHours(LocalUtcOffsetHours[t]);
            // Today's prices are known (published yesterday); tomorrow's once today's publication hour has passed.
            known[t] = local.TimeOfDay.TotalHours >= publishedHour && dayEnd[t] < n ? dayEnd[dayEnd[t]] : dayEnd[t];
        }
        return known;
    }

    private DateTime LocalDate(int t) => IntervalStartUtc(t).AddHours(LocalUtcOffsetHours[t]).Date;

    /// <summary>The number of intervals.</summary>
    public int Count => PriceUsdPerMwh.Length;

    /// <summary>Interval length in hours.</summary>
    public double IntervalHours => IntervalMinutes / 60.0;

    /// <summary>The start of interval <paramref name="t"/> (UTC).</summary>
    public DateTime IntervalStartUtc(int t) => StartUtc.AddMinutes((double)t * IntervalMinutes);

    /// <summary>The local hour (0–23) in which interval <paramref name="t"/> starts.</summary>
    public int LocalHour(int t) => LocalCalendar()[t] & 0x1F;

    /// <summary>The local month (1–12) in which interval <paramref name="t"/> starts.</summary>
    public int LocalMonth(int t) => LocalCalendar()[t] >> 5;

    private ushort[]? _localCalendar;

    // Local hour (low 5 bits) and month (high bits) of every interval, computed once (a benign race at worst
    // computes it twice): the controllers read them every decision.
    private ushort[] LocalCalendar()
    {
        if (_localCalendar is { } cached) return cached;
        var calendar = new ushort[Count];
        for (int t = 0; t < calendar.Length; t++)
        {
            DateTime local = IntervalStartUtc(t).AddHours(LocalUtcOffsetHours[t]);
            calendar[t] = (ushort)(local.Month << 5 | local.Hour);
        }
        return _localCalendar = calendar;
    }

    /// <summary>The miners' IT power (kW) that fits beside the firm AI load of interval <paramref name="t"/> within the interconnect.</summary>
    public double MinerHeadroomKw(int t) => Math.Max(0, InterconnectKw / Pue - AiItKw[t]);

    /// <summary>A copy with some series or the initial state replaced (the others shared).</summary>
    public SiteProblem With(double[]? prices = null, double[]? hashprice = null, double[]? systemLoadMw = null, int[]? initialRunning = null) =>
        Copy(0, Count, initialRunning ?? InitialRunning, prices, hashprice, systemLoadMw);

    /// <summary>The intervals <c>[first, first + count)</c> as a problem of their own, starting from <paramref name="initialRunning"/> (default: this problem's initial state).</summary>
    public SiteProblem Slice(int first, int count, int[]? initialRunning = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(first);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(count);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(first + count, Count);
        return Copy(first, count, initialRunning ?? InitialRunning, null, null, null);
    }

    private SiteProblem Copy(int first, int count, int[] initialRunning, double[]? prices, double[]? hashprice, double[]? systemLoad)
    {
        T[] Cut<T>(T[] a) => first == 0 && count == a.Length ? a : a[first..(first + count)];
        return new SiteProblem
        {
            Name = Name, StartUtc = IntervalStartUtc(first), IntervalMinutes = IntervalMinutes,
            PriceUsdPerMwh = prices ?? Cut(PriceUsdPerMwh), HashpriceUsdPerThDay = hashprice ?? Cut(HashpriceUsdPerThDay),
            KnownHashpriceUsdPerThDay = Cut(KnownHashpriceUsdPerThDay), AiItKw = Cut(AiItKw), AiRevenueUsd = Cut(AiRevenueUsd),
            SystemLoadMw = systemLoad ?? Cut(SystemLoadMw), Emergency = Cut(Emergency), PeakChargeUsdPerKw = Cut(PeakChargeUsdPerKw),
            PeakChargeMonths = PeakChargeMonths, PeakChargeUsdPerKwYear = PeakChargeUsdPerKwYear, LocalUtcOffsetHours = Cut(LocalUtcOffsetHours),
            InterconnectKw = InterconnectKw, Pue = Pue, Groups = Groups, RampUpKwPerInterval = RampUpKwPerInterval,
            RampDownKwPerInterval = RampDownKwPerInterval, RestartMinutes = RestartMinutes, RestartWearUsd = RestartWearUsd,
            PoolFeeFraction = PoolFeeFraction, InitialRunning = initialRunning, DayAheadPublishedLocalHour = DayAheadPublishedLocalHour,
            PricePublishedMinutesBeforeStart = PricePublishedMinutesBeforeStart,
        };
    }
}
