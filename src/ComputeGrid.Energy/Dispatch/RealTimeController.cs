using ComputeGrid.Energy.Sites;

namespace ComputeGrid.Energy.Dispatch;

/// <summary>
/// The site's real-time controller. Each interval it decides from what is known before the interval
/// (<see cref="RealTimeView"/>):
/// <list type="number">
/// <item><b>Demand response</b>: during a declared grid emergency no miner runs.</item>
/// <item><b>Peak-charge guard</b> (ERCOT 4CP): in a charged month, during the afternoon hours in which system peaks
/// fall, the miners stop when the last known hour's system load reaches <c>PeakGuardFraction</c> of the reference
/// peak — the larger of the month-to-date maximum and <c>PeakGuardPriorFraction</c> × the last 30 days' maximum. A kW
/// drawn in the month's peak hour costs (charge per kW-year ÷ months) — hundreds of times an hour's mining margin — so
/// the guard trades a few hours of margin for the chance of missing the peak.</item>
/// <item><b>Mining margin, most efficient first</b>: a group runs while its margin at the last price and yesterday's
/// hashprice is positive; stopped miners restart only when the margin over <c>RestartPaybackHours</c> pays for the
/// restart (wear plus the minutes without hashing), so a flickering price does not cycle the fleet.</item>
/// </list>
/// The caller then applies <see cref="DispatchLimits.Enforce"/>: the interconnect beside the firm AI load (miners give
/// way at once, least efficient first), ramp limits and counts. No allocation per decision.
/// </summary>
public sealed class RealTimeController : IDispatchPolicy, IExplainsCurtailment
{
    private const int HistoryDays = 30;
    private readonly ControllerConfig _config;
    private readonly double[] _dailyMax = new double[HistoryDays]; // ring of the last 30 days' daily maxima (hours seen)
    private int _hoursSeen;
    private int _consumedUntil; // intervals of system load already read
    private int _month;         // local month of the month-to-date maximum
    private double _monthMax;
    private double _lastHourLoad = double.NaN;
    private bool[] _peakMonth = new bool[13];
    // Per group, the price below which it runs (breakeven) and below which stopped miners restart, for the hashprice
    // they were computed at (recomputed only when the known hashprice changes, once a day).
    private double[] _runBelow = [];
    private double[] _startBelow = [];
    private double _thresholdsHashprice = double.NaN;

    public RealTimeController(ControllerConfig? config = null, string name = "controller")
    {
        _config = config ?? new ControllerConfig();
        Name = name;
    }

    public string Name { get; }

    /// <summary>Whether the peak guard held the miners off in the last decision (for telemetry).</summary>
    public bool PeakGuardActive { get; private set; }

    /// <inheritdoc />
    public CurtailmentReason LastReason { get; private set; }

    public void Reset(SiteProblem problem)
    {
        Array.Clear(_dailyMax);
        _hoursSeen = 0;
        _consumedUntil = 0;
        _month = 0;
        _monthMax = 0;
        _lastHourLoad = double.NaN;
        _peakMonth = new bool[13];
        foreach (int m in problem.PeakChargeMonths) _peakMonth[m] = true;
        _runBelow = new double[problem.Groups.Length];
        _startBelow = new double[problem.Groups.Length];
        _thresholdsHashprice = double.NaN;
        PeakGuardActive = false;
    }

    public void Decide(in RealTimeView view, Span<int> running)
    {
        SiteProblem p = view.Site;
        PeakGuardActive = false;
        LastReason = CurtailmentReason.None;
        if (view.Emergency)
        {
            LastReason = CurtailmentReason.Emergency;
            running.Clear();
            return;
        }

        ConsumeSystemLoad(view);
        if (PeakGuard(view))
        {
            PeakGuardActive = true;
            LastReason = CurtailmentReason.PeakRisk;
            running.Clear();
            return;
        }

        double last = view.LastPrice;
        double hashprice = view.KnownHashprice;
        if (hashprice != _thresholdsHashprice) Thresholds(p, hashprice);
        MinerGroup[] groups = p.Groups;
        for (int g = 0; g < groups.Length; g++)
        {
            int previous = view.PreviousRunning[g];
            if (double.IsNaN(last)) running[g] = previous;
            else if (last >= _runBelow[g]) running[g] = 0; // the margin is not positive
            else running[g] = last < _startBelow[g] ? groups[g].Count : previous;
            if (running[g] < groups[g].Count) LastReason = CurtailmentReason.Price;
        }
    }

    // margin(price) = revenue − price × PUE × W / 10⁶ per miner-hour: it is positive below the breakeven price, and pays
    // for a restart within the payback horizon below breakeven − restart cost / (payback × PUE × W / 10⁶).
    private void Thresholds(SiteProblem p, double hashprice)
    {
        for (int g = 0; g < p.Groups.Length; g++)
        {
            MinerGroup group = p.Groups[g];
            double perMwh = p.Pue * group.WattsEach / 1e6;
            _runBelow[g] = Economics.BreakevenUsdPerMwh(p, group, hashprice);
            _startBelow[g] = _config.RestartPaybackHours > 0
                ? _runBelow[g] - Economics.RestartCost(p, group, hashprice) / (_config.RestartPaybackHours * perMwh)
                : double.NegativeInfinity;
        }
        _thresholdsHashprice = hashprice;
    }

    private bool PeakGuard(in RealTimeView view)
    {
        if (view.Site.PeakChargeUsdPerKwYear <= 0 || !_peakMonth[view.LocalMonth]) return false;
        int hour = view.LocalHour;
        if (hour < _config.PeakGuardFirstHour || hour > _config.PeakGuardLastHour) return false;
        if (double.IsNaN(_lastHourLoad)) return false;
        double reference = Math.Max(_month == view.LocalMonth ? _monthMax : 0, _config.PeakGuardPriorFraction * Max30Days());
        return _lastHourLoad >= _config.PeakGuardFraction * reference;
    }

    // Reads the hours of system load that became known since the last decision (one value per hour).
    private void ConsumeSystemLoad(in RealTimeView view)
    {
        ReadOnlySpan<double> known = view.PastSystemLoadMw;
        int perHour = Math.Max(1, 60 / view.Site.IntervalMinutes);
        SiteProblem p = view.Site;
        while (_consumedUntil + perHour <= known.Length)
        {
            double load = known[_consumedUntil];
            int month = p.LocalMonth(_consumedUntil);
            _consumedUntil += perHour;
            if (double.IsNaN(load)) continue;
            // 24-hour blocks of hours seen stand in for days (exact for the 30-day maximum up to a day's edge).
            int day = _hoursSeen / 24 % HistoryDays;
            if (_hoursSeen % 24 == 0) _dailyMax[day] = 0;
            _dailyMax[day] = Math.Max(_dailyMax[day], load);
            _hoursSeen++;
            if (month != _month) { _month = month; _monthMax = 0; }
            _monthMax = Math.Max(_monthMax, load);
            _lastHourLoad = load;
        }
    }

    private double Max30Days()
    {
        double max = 0;
        foreach (double d in _dailyMax) max = Math.Max(max, d);
        return max;
    }
}
