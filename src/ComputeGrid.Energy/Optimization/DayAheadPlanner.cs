using System.Diagnostics;
using ComputeGrid.Energy.Dispatch;

namespace ComputeGrid.Energy.Optimization;

/// <summary>
/// Plans each local day at its first interval with the site LP (the <see cref="PerfectForesightOptimizer"/>'s model,
/// solved over the day only) on a forecast built from what a <see cref="RealTimeView"/> shows, then dispatches the
/// plan's counts rounded to whole miners; the caller applies <see cref="DispatchLimits.Enforce"/>.
/// </summary>
/// <remarks>
/// <para><b>Forecast</b> (made at the start of the plan, from the view only):</para>
/// <list type="bullet">
/// <item>price: persistence — the price of the same interval one day earlier (two days for the 25th hour of a
/// plan); where that is not yet known (the first day), the last known price; with no price known at all (the very
/// first interval), zero (mine);</item>
/// <item>hashprice: <see cref="RealTimeView.KnownHashprice"/> (yesterday's) for the whole plan;</item>
/// <item>AI load: the contracted schedule (<see cref="RealTimeView.ScheduledAiItKw"/>);</item>
/// <item>peak charge: the charge's rate per interval (<c>USD/kW-year ÷ months ÷ intervals per hour</c>) times the
/// probability that the hour is the month's system peak: <see cref="NearPeakProbability"/> for hours between 12:00
/// and 20:00 local of a peak-charge month whose load the previous day was within 3 % of the month's running maximum
/// (seen through the view; the previous day's maximum on a month's first day), zero for other hours. Without a
/// system-load series the prior <c>1 / (4 × days in the month)</c> is spread over 15:00–19:00.</item>
/// </list>
/// <para>Plans start at the first interval and at each local midnight and cover 25 hours (a DST day may have
/// 25), cut at the end of the horizon; local times of later intervals are the current one plus elapsed time (a DST
/// change inside a plan shifts its last hours by one). Emergencies cannot be foreseen: the plan assumes none after
/// its first interval, and in an emergency the planner asks for no miners (as <see cref="DispatchLimits.Enforce"/> rules).</para>
/// <para>Only the view and the site's static facts (groups, limits, rates, peak-charge months and rate, interval
/// length, start time, horizon length) are read. <see cref="Decide"/> allocates only on the interval that makes a
/// plan (the solver); every other call reads the plan.</para>
/// </remarks>
public sealed class DayAheadPlanner : IDispatchPolicy
{
    /// <summary>The probability that an afternoon hour near the month's running peak load is the month's system peak.</summary>
    public const double NearPeakProbability = 0.25;

    /// <summary>How close (fraction) the previous day's load of an hour must be to the month's running maximum.</summary>
    public const double NearPeakBand = 0.03;

    private readonly OptimizerOptions _options;
    private SiteProblem? _site;
    private LpWindow _window = new();
    private int[][] _plan = [];
    private int _perDay, _perHour, _capacity, _planStart = -1, _planLength, _lastInterval = -1, _lastLocalHour = -1;
    private double _peakRate;
    private readonly bool[] _peakMonth = new bool[13];

    /// <summary>Creates the planner; <paramref name="options"/> chooses the solver (default: auto, the relaxation).</summary>
    public DayAheadPlanner(OptimizerOptions? options = null) => _options = options ?? new OptimizerOptions();

    /// <inheritdoc />
    public string Name => "day-ahead";

    /// <summary>Plans made since the last <see cref="Reset"/>.</summary>
    public int Plans { get; private set; }

    /// <summary>Wall time spent making plans (forecast, model build and solve) since the last <see cref="Reset"/>.</summary>
    public TimeSpan PlanningTime { get; private set; }

    /// <inheritdoc />
    public void Reset(SiteProblem problem)
    {
        ArgumentNullException.ThrowIfNull(problem);
        if (problem.IntervalMinutes <= 0 || 60 % problem.IntervalMinutes != 0)
            throw new ArgumentException($"The day-ahead planner needs intervals that divide an hour (got {problem.IntervalMinutes} minutes).", nameof(problem));
        _site = problem;
        _perHour = 60 / problem.IntervalMinutes;
        _perDay = 24 * _perHour;
        _capacity = _perDay + _perHour;

        _window = LpWindow.ForSite(problem);
        _window.Price = new double[_capacity];
        _window.Hashprice = new double[_capacity];
        _window.AiKw = new double[_capacity];
        _window.PeakWeight = new double[_capacity];
        _window.Emergency = new bool[_capacity]; // only the current interval's signal is known
        _window.Initial = new double[problem.Groups.Length];
        _plan = new int[problem.Groups.Length][];
        for (int g = 0; g < _plan.Length; g++) _plan[g] = new int[_capacity];

        Array.Clear(_peakMonth);
        foreach (int m in problem.PeakChargeMonths)
            if (m >= 1 && m <= 12) _peakMonth[m] = true;
        int months = problem.PeakChargeMonths.Length;
        _peakRate = months == 0 ? 0 : problem.PeakChargeUsdPerKwYear / months / _perHour;

        _planStart = -1;
        _planLength = 0;
        _lastInterval = -1;
        _lastLocalHour = -1;
        Plans = 0;
        PlanningTime = TimeSpan.Zero;
    }

    /// <inheritdoc />
    public void Decide(in RealTimeView view, Span<int> running)
    {
        if (_site is null) throw new InvalidOperationException("Reset must be called before Decide.");
        int t = view.Interval;
        int localHour = view.LocalHour;
        bool midnight = _lastInterval == t - 1 && localHour < _lastLocalHour;
        if (_planStart < 0 || t != _lastInterval + 1 || t - _planStart >= _planLength || midnight) Plan(view);
        _lastInterval = t;
        _lastLocalHour = localHour;

        if (view.Emergency)
        {
            running.Clear();
            return;
        }
        int k = t - _planStart;
        for (int g = 0; g < running.Length; g++) running[g] = _plan[g][k];
    }

    private void Plan(in RealTimeView view)
    {
        long started = Stopwatch.GetTimestamp();
        SiteProblem site = _site!;
        int t0 = view.Interval;
        int n = Math.Min(_capacity, site.Count - t0);
        LpWindow w = _window;
        w.Count = n;

        ReadOnlySpan<double> past = view.PastPrices;
        double last = view.LastPrice;
        double hashprice = view.KnownHashprice;
        for (int k = 0; k < n; k++)
        {
            int same = t0 + k - _perDay;
            while (same >= t0) same -= _perDay;
            w.Price[k] = same >= 0 ? past[same] : double.IsNaN(last) ? 0 : last;
            w.Hashprice[k] = hashprice;
            w.AiKw[k] = view.ScheduledAiItKw(t0 + k);
        }
        w.Emergency![0] = view.Emergency;
        ForecastPeakWeights(view, n);
        ReadOnlySpan<int> previous = view.PreviousRunning;
        for (int g = 0; g < w.Initial.Length; g++) w.Initial[g] = previous[g];

        LpSolution s = SiteLp.Solve(w, _options);
        for (int g = 0; g < _plan.Length; g++)
        {
            int count = site.Groups[g].Count;
            for (int k = 0; k < n; k++) _plan[g][k] = Math.Clamp((int)Math.Round(s.Running[g][k], MidpointRounding.ToEven), 0, count);
        }
        _planStart = t0;
        _planLength = n;
        Plans++;
        PlanningTime += Stopwatch.GetElapsedTime(started);
    }

    // Expected peak-charge weight of each planned interval: the charge's rate × the probability that its hour is the month's peak.
    private void ForecastPeakWeights(in RealTimeView view, int n)
    {
        double[] weights = _window.PeakWeight;
        Array.Clear(weights, 0, n);
        if (_peakRate == 0) return;

        SiteProblem site = _site!;
        int t0 = view.Interval;
        DateTime utc = site.IntervalStartUtc(t0);
        int offset = ((view.LocalHour - utc.Hour) % 24 + 35) % 24 - 11; // the whole-hour UTC offset, in [−11, +12]
        DateTime local0 = utc.AddHours(offset);

        // The month's running maximum of system load seen so far (the previous day's on the month's first day).
        ReadOnlySpan<double> load = view.PastSystemLoadMw;
        int sinceMonthStart = (int)((local0 - new DateTime(local0.Year, local0.Month, 1)).TotalMinutes / site.IntervalMinutes);
        int from = Math.Max(0, t0 - sinceMonthStart);
        if (from >= load.Length) from = Math.Max(0, load.Length - _perDay);
        double monthMax = double.NegativeInfinity;
        for (int i = from; i < load.Length; i++)
            if (load[i] > monthMax) monthMax = load[i];
        bool informed = !double.IsNegativeInfinity(monthMax) && !double.IsNaN(monthMax);

        for (int k = 0; k < n; k++)
        {
            DateTime local = local0.AddMinutes((double)k * site.IntervalMinutes);
            if (!_peakMonth[local.Month]) continue;
            double probability;
            if (informed)
            {
                int yesterday = t0 + k - _perDay;
                while (yesterday >= load.Length) yesterday -= _perDay;
                bool near = yesterday >= 0 && load[yesterday] >= (1 - NearPeakBand) * monthMax;
                probability = near && local.Hour >= 12 && local.Hour < 20 ? NearPeakProbability : 0;
            }
            else
            {
                probability = local.Hour >= 15 && local.Hour < 19 ? 1.0 / (4 * DateTime.DaysInMonth(local.Year, local.Month)) : 0;
            }
            weights[k] = probability * _peakRate;
        }
    }
}
