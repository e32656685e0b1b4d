namespace ComputeGrid.Energy.Dispatch;

/// <summary>
/// A dispatch policy decides, interval by interval, how many miners of each group run. It is called once per
/// interval in order, with a <see cref="RealTimeView"/> that exposes only what was known before the interval
/// (no look-ahead is possible through it). Implementations must be deterministic and must not allocate per call.
/// </summary>
public interface IDispatchPolicy
{
    /// <summary>A short name for tables and JSON (e.g. <c>controller</c>, <c>myopic</c>).</summary>
    string Name { get; }

    /// <summary>Prepares for a new horizon of <paramref name="problem"/> (called once before the first decision).</summary>
    void Reset(SiteProblem problem);

    /// <summary>
    /// Decides interval <c>view.Interval</c>: writes the number of miners of each group to run into
    /// <paramref name="running"/> (length = groups). The caller then enforces the hard limits (interconnect,
    /// ramps, counts) with <see cref="DispatchLimits.Enforce"/>, so a policy's mistake can never break them.
    /// </summary>
    void Decide(in RealTimeView view, Span<int> running);
}

/// <summary>Why miners that fit beside the firm AI load were held off in an interval (for plots, the CSV and telemetry).</summary>
public enum CurtailmentReason : byte
{
    /// <summary>Nothing was held off (or the policy does not say).</summary>
    None = 0,

    /// <summary>The expected mining margin (price, hashprice, restart cost) did not pay.</summary>
    Price = 1,

    /// <summary>The risk of the peak-charge hour (ERCOT 4CP) outweighed the margin.</summary>
    PeakRisk = 2,

    /// <summary>A declared grid emergency (demand response): no miner runs.</summary>
    Emergency = 3,

    /// <summary>The hard limits cut what the policy asked for (ramp-up limit).</summary>
    Limits = 4,
}

/// <summary>A policy that says why it held miners off in its last decision.</summary>
public interface IExplainsCurtailment
{
    /// <summary>The reason behind the last <see cref="IDispatchPolicy.Decide"/> (<see cref="CurtailmentReason.None"/> when it ran every miner it could).</summary>
    CurtailmentReason LastReason { get; }
}

/// <summary>
/// What a real-time controller knows when it decides interval <see cref="Interval"/>: prices of earlier intervals,
/// system load of hours that ended before the interval starts, the previous day's hashprice, and the contracted AI
/// load and emergency signal of the interval itself. Nothing later can be read through it.
/// </summary>
public readonly ref struct RealTimeView
{
    private readonly SiteProblem _problem;

    /// <summary>Creates the view of <paramref name="problem"/> at interval <paramref name="interval"/>.</summary>
    public RealTimeView(SiteProblem problem, int interval, ReadOnlySpan<int> previousRunning)
    {
        _problem = problem;
        Interval = interval;
        PreviousRunning = previousRunning;
    }

    /// <summary>The site (static facts only: limits, groups, rates; its series must be read through this view).</summary>
    public SiteProblem Site => _problem;

    /// <summary>The interval being decided.</summary>
    public int Interval { get; }

    /// <summary>Miners of each group running in the previous interval (or the initial state).</summary>
    public ReadOnlySpan<int> PreviousRunning { get; }

    /// <summary>Prices of every interval before this one (USD/MWh).</summary>
    public ReadOnlySpan<double> PastPrices => _problem.PriceUsdPerMwh.AsSpan(0, Interval);

    /// <summary>The last known price (of the previous interval), or NaN at the first interval.</summary>
    public double LastPrice => Interval > 0 ? _problem.PriceUsdPerMwh[Interval - 1] : double.NaN;

    /// <summary>
    /// The first interval whose price is not yet known: this interval in a real-time market that settles after the
    /// interval; one or more intervals later in one that publishes binding prices before the interval starts
    /// (<see cref="SiteProblem.PricePublishedMinutesBeforeStart"/>); in a day-ahead market
    /// (<see cref="SiteProblem.DayAheadPublishedLocalHour"/>) the end of the last delivery day whose auction result is
    /// published (today's, and tomorrow's from the publication hour on).
    /// </summary>
    public int PricesKnownUntil => _problem.PricesKnownUntil(Interval);

    /// <summary>Every price known now: the past, and in a day-ahead market the published prices ahead (USD/MWh).</summary>
    public ReadOnlySpan<double> KnownPrices => _problem.PriceUsdPerMwh.AsSpan(0, PricesKnownUntil);

    /// <summary>
    /// System load of the hours that ended at or before the start of this interval: element <c>k</c> is the load of
    /// the hour containing interval <c>k</c>, for <c>k</c> below <see cref="SystemLoadKnownUntil"/>.
    /// </summary>
    public ReadOnlySpan<double> PastSystemLoadMw => _problem.SystemLoadMw.AsSpan(0, SystemLoadKnownUntil);

    /// <summary>The first interval whose hour's system load is not yet known (the start of the current hour).</summary>
    public int SystemLoadKnownUntil
    {
        get
        {
            int minutes = _problem.IntervalMinutes;
            int minuteOfHour = (int)((_problem.StartUtc.Minute + (long)Interval * minutes) % 60);
            return Interval - minuteOfHour / minutes;
        }
    }

    /// <summary>Yesterday's hashprice (USD per TH/s per day) — today's is not published until the day ends.</summary>
    public double KnownHashprice => _problem.KnownHashpriceUsdPerThDay[Interval];

    /// <summary>The contracted AI IT load of this interval (kW).</summary>
    public double AiItKw => _problem.AiItKw[Interval];

    /// <summary>The contracted AI IT load of a later interval (kW): leases are contracts, known in advance.</summary>
    public double ScheduledAiItKw(int interval) => _problem.AiItKw[Math.Min(interval, _problem.Count - 1)];

    /// <summary>Whether the grid operator has declared an emergency for this interval.</summary>
    public bool Emergency => _problem.Emergency[Interval];

    /// <summary>Local hour (0–23) of the interval's start.</summary>
    public int LocalHour => _problem.LocalHour(Interval);

    /// <summary>Local month (1–12) of the interval's start.</summary>
    public int LocalMonth => _problem.LocalMonth(Interval);
}
