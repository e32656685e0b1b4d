using ComputeGrid.Energy.Dispatch;

namespace ComputeGrid.Energy.Forecasting;

/// <summary>
/// The likelihood that an hour ahead is its month's system peak (ERCOT 4CP), from the system load's own shape as a
/// <see cref="RealTimeView"/> shows it (hours that ended before the decision):
/// <list type="bullet">
/// <item><b>Load ahead</b>: hour <c>j</c>, <c>ℓ</c> hours after the last known hour <c>i = j − ℓ</c>, is forecast as
/// <c>L̂_j = L_i · L_{j−24} / L_{i−24}</c> — the last known level carried along yesterday's shape (ℓ ≤ 23).</item>
/// <item><b>Its error</b>: for every lead, the root-mean-square relative error of that same forecast over the hours
/// already known (each scored as soon as its hour ends, never later), with a floor of <see cref="MinRelativeError"/>.</item>
/// <item><b>The bar to beat</b>: the month-to-date maximum, or — early in a month, when few days have been seen — the
/// larger of it and <see cref="PriorFraction"/> × the last 30 days' maximum.</item>
/// <item><b>Likelihood</b>: the product of four chances — that the hour beats the bar, <c>Φ((L̂_j − bar) / (σ_ℓ · L̂_j))</c>;
/// that it beats the hours of its day already known, <c>Φ((L̂_j − known) / (σ_ℓ · L̂_j))</c>, and the highest other hour
/// forecast, <c>Φ((L̂_j − L̂_o) / (s_d · L̂_j))</c> — both forecast from the same last known hour, they share its level, so
/// the error is <c>s_d</c>, the measured error of yesterday's shape over the <c>d = |j − o|</c> hours between
/// (<see cref="ShapeError"/>); that its local hour is the one that peaks, <c>((c_H + ½) / (c_max + ½))^x</c> with
/// <c>c_H</c> the last 30 days whose peak fell in that hour and <c>x</c> the hour prior's exponent; and that none of the
/// month's remaining <c>R</c> days beats it, <c>(1 − q)^(w·R)</c>, with <c>q</c> the share of the last 30 days whose
/// peak reached <c>L̂_j</c> (smoothed: (count + ½) / 31) and <c>w</c> the remaining days' weight.
/// For hours of the peak-charge months; zero elsewhere, beyond 23 hours ahead, and without a load series.</item>
/// </list>
/// The controller multiplies it by the charge (USD per kW of the month's peak hour) to price each kW it runs in that
/// hour. No allocation after <see cref="Reset"/>.
/// </summary>
public sealed class PeakRiskForecaster : IPeakHourForecast
{
    /// <summary>Hours of load history kept (31 days: the 30-day maximum plus yesterday's shape).</summary>
    private const int HistoryHours = 31 * 24;

    /// <summary>Longest lead forecast (hours).</summary>
    public const int MaxLeadHours = 23;

    private readonly double _priorFraction, _minRelativeError, _remainingDaysWeight, _hourPriorExponent;
    private SiteProblem? _p;
    private readonly double[] _load = new double[HistoryHours];   // ring of hourly loads, by hour index
    private readonly double[] _sq = new double[MaxLeadHours + 1];  // Σ squared relative error per lead
    private readonly long[] _n = new long[MaxLeadHours + 1];
    private readonly double[] _shapeSq = new double[MaxLeadHours + 1]; // Σ squared relative error of the d-hour ratio, by d
    private readonly long[] _shapeN = new long[MaxLeadHours + 1];
    private long _hours;            // hours seen
    private int _consumedUntil = -1; // the next interval whose hour is read
    private int _perHour;
    private bool[] _peakMonth = new bool[13];
    private int _monthNow;
    private double _monthMax, _max30, _todayMax;
    private readonly double[] _dailyMax = new double[30]; // ring of the last 30 complete local days' maxima
    private int _days, _today = -1, _todayMaxHour;
    private readonly int[] _dailyPeakHour = new int[30]; // ring: the local hour of each of those days' maxima
    private readonly int[] _peakHourCount = new int[24]; // days of the ring whose maximum fell in each local hour
    private readonly double[] _ahead = new double[MaxLeadHours + 1]; // L̂ by lead
    private readonly double[] _leadProbability = new double[MaxLeadHours + 1];
    private long _cachedHours = -1;
    private int _cachedLead = -1;

    /// <summary>
    /// Creates the forecaster. <paramref name="priorFraction"/>: the share of the last 30 days' maximum the month's peak
    /// is assumed to reach at least; <paramref name="minRelativeError"/>: the floor of the load forecast's relative error;
    /// <paramref name="remainingDaysWeight"/>: <c>w</c>, the weight of the month's remaining days;
    /// <paramref name="hourPriorExponent"/>: <c>x</c>, how strongly the hours that peaked lately are preferred (0: not at all).
    /// The controller's defaults are <see cref="Sites.ControllerConfig"/>'s.
    /// </summary>
    public PeakRiskForecaster(double priorFraction = 0.97, double minRelativeError = 0.01, double remainingDaysWeight = 1, double hourPriorExponent = 1)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(hourPriorExponent);
        _hourPriorExponent = hourPriorExponent;
        ArgumentOutOfRangeException.ThrowIfNegative(remainingDaysWeight);
        _remainingDaysWeight = remainingDaysWeight;
        ArgumentOutOfRangeException.ThrowIfNegative(priorFraction);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(minRelativeError);
        _priorFraction = priorFraction;
        _minRelativeError = minRelativeError;
    }

    /// <summary>The share of the last 30 days' maximum a month's peak is assumed to reach.</summary>
    public double PriorFraction => _priorFraction;

    /// <summary>The floor of the relative error of the load forecast.</summary>
    public double MinRelativeError => _minRelativeError;

    /// <summary>The measured root-mean-square relative error of the load forecast <paramref name="leadHours"/> ahead (NaN before any).</summary>
    public double RelativeError(int leadHours) => _n[leadHours] == 0 ? double.NaN : Math.Sqrt(_sq[leadHours] / _n[leadHours]);

    /// <summary>
    /// The measured root-mean-square relative error of yesterday's shape as a forecast of the ratio of two hours
    /// <paramref name="hoursApart"/> apart today, <c>(L_j / L_{j−d}) / (L_{j−24} / L_{j−24−d}) − 1</c> (NaN before any).
    /// Two hours forecast from the same last known hour share its level's error, so which of them is higher is
    /// uncertain only by this much.
    /// </summary>
    public double ShapeError(int hoursApart) => _shapeN[hoursApart] == 0 ? double.NaN : Math.Sqrt(_shapeSq[hoursApart] / _shapeN[hoursApart]);

    /// <summary>Whether the site pays a peak charge that this forecaster prices.</summary>
    public bool Active { get; private set; }

    /// <summary>Prepares for a new horizon of <paramref name="p"/>.</summary>
    public void Reset(SiteProblem p)
    {
        _p = p;
        _perHour = Math.Max(1, 60 / p.IntervalMinutes);
        _peakMonth = new bool[13];
        foreach (int m in p.PeakChargeMonths) _peakMonth[m] = true;
        Active = p.PeakChargeUsdPerKwYear > 0 && p.PeakChargeMonths.Length > 0 && p.Count > 0 && !double.IsNaN(p.SystemLoadMw[0]);
        Array.Clear(_load);
        Array.Clear(_sq);
        Array.Clear(_n);
        Array.Clear(_shapeSq);
        Array.Clear(_shapeN);
        _hours = 0;
        _monthNow = 0;
        _monthMax = 0;
        _max30 = 0;
        _todayMax = 0;
        Array.Clear(_dailyMax);
        Array.Clear(_dailyPeakHour);
        Array.Clear(_peakHourCount);
        _todayMaxHour = 0;
        _days = 0;
        _today = -1;
        _cachedHours = -1;
        _cachedLead = -1;
        // The first interval that starts an hour: loads are read hour by hour from there.
        _consumedUntil = 0;
        while (_consumedUntil < p.Count && p.IntervalStartUtc(_consumedUntil).Minute != 0) _consumedUntil++;
    }

    /// <summary>
    /// Writes into <paramref name="probability"/>[k] the likelihood that interval <c>view.Interval + k</c>'s hour is its
    /// month's system peak (zeros when the site has no peak charge).
    /// </summary>
    public void Forecast(in RealTimeView view, Span<double> probability)
    {
        probability.Clear();
        if (!Active) return;
        SiteProblem p = _p ?? throw new InvalidOperationException("Reset first.");
        ReadOnlySpan<double> known = view.PastSystemLoadMw;
        while (_consumedUntil + _perHour <= known.Length)
        {
            DateTime local = p.IntervalStartUtc(_consumedUntil).AddHours(p.LocalUtcOffsetHours[_consumedUntil]);
            Observe(known[_consumedUntil], local.Month, local.Day, local.Hour);
            _consumedUntil += _perHour;
        }
        if (_hours < 25) return;

        int t = view.Interval;
        // Interval t lies in the hour after the last known one, or later (the current hour is never known yet).
        int hoursAfterKnown = (t - _consumedUntil) / _perHour + 1; // lead (hours) of interval t's hour
        int offset = (t - _consumedUntil) % _perHour;              // intervals of t's hour already decided
        // The likelihoods change only when an hour of load becomes known or the decision enters a new hour.
        if (_cachedHours != _hours || _cachedLead != hoursAfterKnown)
        {
            HourLikelihoods(p, t - offset, hoursAfterKnown);
            _cachedHours = _hours;
            _cachedLead = hoursAfterKnown;
        }
        for (int k = 0; k < probability.Length; k++)
        {
            int lead = hoursAfterKnown + (offset + k) / _perHour;
            if (lead > MaxLeadHours || t + k >= p.Count) break;
            probability[k] = _leadProbability[lead];
        }
    }

    // The likelihood of each hour from lead firstLead (the hour starting at interval hourStart) to MaxLeadHours.
    private void HourLikelihoods(SiteProblem p, int hourStart, int firstLead)
    {
        Array.Clear(_leadProbability);
        long last = _hours - 1;
        double lastLoad = Load(last);
        double yesterdayBase = Load(last - 24);
        if (!(yesterdayBase > 0) || double.IsNaN(lastLoad)) return;
        for (int lead = 1; lead <= MaxLeadHours; lead++)
        {
            double y = Load(last + lead - 24);
            _ahead[lead] = double.IsNaN(y) ? double.NaN : lastLoad * y / yesterdayBase;
        }
        DateTime today = default;
        int hoursLeftToday = 0;
        for (int lead = firstLead; lead <= MaxLeadHours; lead++)
        {
            int i = hourStart + (lead - firstLead) * _perHour;
            if (i >= p.Count) break;
            DateTime local = p.IntervalStartUtc(i).AddHours(p.LocalUtcOffsetHours[i]);
            if (lead == firstLead) { today = local.Date; hoursLeftToday = 24 - local.Hour; }
            int month = local.Month;
            double forecast = _ahead[lead];
            if (!_peakMonth[month] || double.IsNaN(forecast)) continue;
            bool isToday = local.Date == today;
            double bar = month == _monthNow ? Math.Max(_monthMax, _priorFraction * _max30) : _priorFraction * _max30;
            double relative = Math.Max(_minRelativeError, double.IsNaN(RelativeError(lead)) ? 0.05 : RelativeError(lead));
            double sigma = relative * forecast;
            // The rest of its day: the hours of today already known (when it is today) must be beaten by the forecast, whose
            // error is the lead's; the other hours forecast from the same last known hour share its level, so the
            // highest of them is beaten within the error of yesterday's shape over the hours between.
            double beatsDay = 1;
            if (isToday && _todayMax > 0) beatsDay = Normal.Cdf((forecast - _todayMax) / sigma);
            int firstLeadOfDay = isToday ? firstLead : lead - local.Hour;
            int lastLeadOfDay = Math.Min(MaxLeadHours, isToday ? firstLead + hoursLeftToday - 1 : lead + 23 - local.Hour);
            double other = 0;
            int otherLead = 0;
            for (int l = Math.Max(1, firstLeadOfDay); l <= lastLeadOfDay; l++)
                if (l != lead && !double.IsNaN(_ahead[l]) && _ahead[l] > other) { other = _ahead[l]; otherLead = l; }
            if (other > 0)
            {
                double shape = ShapeError(Math.Abs(lead - otherLead));
                double shapeSigma = Math.Max(_minRelativeError / 2, double.IsNaN(shape) ? relative * Math.Sqrt(2) : shape) * forecast;
                beatsDay *= Normal.Cdf((forecast - other) / shapeSigma);
            }
            // Which hour of the day peaks: as often as it did over the last 30 days, relative to the most frequent hour.
            int mostFrequent = 0;
            for (int hr = 0; hr < 24; hr++) mostFrequent = Math.Max(mostFrequent, _peakHourCount[hr]);
            beatsDay *= Math.Pow((_peakHourCount[local.Hour] + 0.5) / (mostFrequent + 0.5), _hourPriorExponent);
            int remainingDays = DateTime.DaysInMonth(local.Year, local.Month) - local.Day;
            double q = (CountDaysAtLeast(forecast) + 0.5) / (Math.Min(_days, 30) + 1);
            _leadProbability[lead] = Normal.Cdf((forecast - bar) / sigma) * beatsDay * Math.Pow(1 - q, remainingDays * _remainingDaysWeight);
        }
    }

    private int CountDaysAtLeast(double load)
    {
        int n = 0, days = Math.Min(_days, 30);
        for (int d = 0; d < days; d++) if (_dailyMax[d] >= load) n++;
        return n;
    }

    private double Load(long hour) => hour < 0 || hour < _hours - HistoryHours || hour >= _hours ? double.NaN : _load[hour % HistoryHours];

    // Folds one known hour into the history, the month's maximum and the error of every lead that forecast it.
    private void Observe(double load, int month, int day, int hour)
    {
        long h = _hours;
        if (day != _today)
        {
            if (_today >= 0)
            {
                int slot = _days % 30;
                if (_days >= 30) _peakHourCount[_dailyPeakHour[slot]]--;
                _dailyMax[slot] = _todayMax;
                _dailyPeakHour[slot] = _todayMaxHour;
                _peakHourCount[_todayMaxHour]++;
                _days++;
            }
            _today = day;
            _todayMax = 0;
        }
        if (!double.IsNaN(load) && load > _todayMax) { _todayMax = load; _todayMaxHour = hour; }
        if (!double.IsNaN(load) && h >= 25)
        {
            for (int lead = 1; lead <= MaxLeadHours && h - lead - 24 >= Math.Max(0, h - HistoryHours + 1); lead++)
            {
                double baseLoad = Load(h - lead), y = Load(h - 24), yBase = Load(h - lead - 24);
                if (double.IsNaN(baseLoad) || double.IsNaN(y) || !(yBase > 0)) continue;
                double e = baseLoad * y / yBase / load - 1;
                _sq[lead] += e * e;
                _n[lead]++;
            }
            for (int d = 1; d <= MaxLeadHours && h - d - 24 >= Math.Max(0, h - HistoryHours + 1); d++)
            {
                double before = Load(h - d), y = Load(h - 24), yBefore = Load(h - d - 24);
                if (!(before > 0) || !(y > 0) || !(yBefore > 0)) continue;
                double e = load / before / (y / yBefore) - 1;
                _shapeSq[d] += e * e;
                _shapeN[d]++;
            }
        }
        _load[h % HistoryHours] = load;
        _hours++;
        _max30 = Max30();
        if (month != _monthNow) { _monthNow = month; _monthMax = 0; }
        if (!double.IsNaN(load)) _monthMax = Math.Max(_monthMax, load);
    }

    private double Max30()
    {
        double max = 0;
        long from = Math.Max(0, _hours - 30 * 24);
        for (long h = from; h < _hours; h++)
        {
            double v = _load[h % HistoryHours];
            if (!double.IsNaN(v)) max = Math.Max(max, v);
        }
        return max;
    }
}

/// <summary>The standard normal distribution.</summary>
public static class Normal
{
    /// <summary>Φ(z), the probability that a standard normal value is at most <paramref name="z"/> (absolute error below 1.5e-7).</summary>
    public static double Cdf(double z)
    {
        if (double.IsNaN(z)) return double.NaN;
        if (z < -8) return 0;
        if (z > 8) return 1;
        // Abramowitz & Stegun 7.1.26 on erf(z / √2).
        double x = Math.Abs(z) / Math.Sqrt(2);
        double t = 1 / (1 + 0.3275911 * x);
        double erf = 1 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.Exp(-x * x);
        return z >= 0 ? (1 + erf) / 2 : (1 - erf) / 2;
    }
}
