using ComputeGrid.Energy.Dispatch;

namespace ComputeGrid.Energy.Forecasting;

/// <summary>
/// The power price ahead, from what a <see cref="RealTimeView"/> shows (nothing later can be read):
/// <list type="bullet">
/// <item><b>Published prices</b>: in a day-ahead market every price up to <see cref="RealTimeView.PricesKnownUntil"/> is
/// the price itself.</item>
/// <item><b>Seasonality</b>: beyond them, the median of the same local time of day over the last
/// <see cref="SeasonalDays"/> days (a median, so one storm's spikes do not set tomorrow's price).</item>
/// <item><b>Persistence</b>: the last known price blends into the seasonal level as the lead grows,
/// <c>f(t + k) = φ^k · p_last + (1 − φ^k) · S(t + k)</c> — the interval being decided (<c>k = 0</c>) is forecast by
/// persistence. <c>φ</c> is estimated online — the least-squares slope of each departure from the seasonal level on
/// the one before it, with a forgetting factor — and clamped to [0, 0.99]: the market's own persistence, fitted to
/// nothing but its past.</item>
/// </list>
/// No allocation after <see cref="Reset"/>. Errors of its lead-1 and lead-4 forecasts are tracked against the prices
/// as they become known (<see cref="Errors"/>).
/// </summary>
public sealed class PriceForecaster
{
    private const double Forgetting = 0.999; // about 1,000 intervals (10 days of 15 minutes) of memory for φ
    private readonly int _days;
    private SiteProblem? _p;
    private short[] _slot = [];           // local slot of day of each interval
    private double[] _ring = [];          // [slot × days + day]: the last prices of each slot
    private byte[] _filled = [];          // values in each slot's ring
    private byte[] _head = [];            // next write position in each slot's ring
    private double[] _median = [];        // each slot's current median (NaN until it has a value)
    private readonly double[] _scratch;
    private int _observed;                // intervals whose price has been folded in (the past)
    private double _sxy, _sxx, _lastDeparture = double.NaN;
    private double _phi;
    // Forecasts made at each decision for leads 1 and 4 (circular by interval), to score when the price becomes known.
    private readonly double[] _made1 = new double[8], _made4 = new double[8];
    private readonly int[] _made1At = new int[8], _made4At = new int[8];
    private readonly ForecastError _error1 = new(), _error4 = new(), _persistence1 = new();

    /// <summary>Creates a forecaster whose seasonal level is the median over <paramref name="seasonalDays"/> days.</summary>
    public PriceForecaster(int seasonalDays = 7)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(seasonalDays, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(seasonalDays, 60);
        _days = seasonalDays;
        _scratch = new double[seasonalDays];
    }

    /// <summary>Days in the seasonal median.</summary>
    public int SeasonalDays => _days;

    /// <summary>The persistence factor φ now.</summary>
    public double Phi => _phi;

    /// <summary>Error of the forecasts one and four intervals ahead, and of plain persistence (the last price) one ahead.</summary>
    public (ForecastError Lead1, ForecastError Lead4, ForecastError Persistence1) Errors => (_error1, _error4, _persistence1);

    /// <summary>Prepares for a new horizon of <paramref name="p"/>.</summary>
    public void Reset(SiteProblem p)
    {
        _p = p;
        int perDay = 24 * 60 / p.IntervalMinutes;
        _slot = new short[p.Count];
        for (int t = 0; t < p.Count; t++)
        {
            DateTime local = p.IntervalStartUtc(t).AddHours(p.LocalUtcOffsetHours[t]);
            _slot[t] = (short)((local.Hour * 60 + local.Minute) / p.IntervalMinutes % perDay);
        }
        _ring = new double[perDay * _days];
        _filled = new byte[perDay];
        _head = new byte[perDay];
        _median = new double[perDay];
        Array.Fill(_median, double.NaN);
        _observed = 0;
        _sxy = _sxx = 0;
        _lastDeparture = double.NaN;
        _phi = 0;
        Array.Fill(_made1At, -1);
        Array.Fill(_made4At, -1);
        _error1.Clear();
        _error4.Clear();
        _persistence1.Clear();
    }

    /// <summary>
    /// Writes the forecast of the prices of intervals <c>view.Interval + k</c> into <paramref name="ahead"/>[k] (the
    /// caller sizes it; intervals past the horizon's end are forecast as if it went on).
    /// </summary>
    public void Forecast(in RealTimeView view, Span<double> ahead)
    {
        SiteProblem p = _p ?? throw new InvalidOperationException("Reset first.");
        int t = view.Interval;
        ReadOnlySpan<double> past = view.PastPrices;
        while (_observed < past.Length) Observe(_observed, past[_observed++]);

        ReadOnlySpan<double> known = view.KnownPrices;
        // Persistence starts from the last price known: the previous interval's, or the last one published ahead.
        double last = known.Length > 0 ? known[^1] : double.NaN;
        double decay = 1;
        int perDay = _median.Length;
        double rate = _phi;
        for (int k = 0; k < ahead.Length; k++)
        {
            int i = t + k;
            if (i < known.Length) { ahead[k] = known[i]; continue; }
            int slot = i < _slot.Length ? _slot[i] : (_slot[_slot.Length - 1] + i - _slot.Length + 1) % perDay;
            double level = _median[slot];
            if (double.IsNaN(last)) { ahead[k] = double.IsNaN(level) ? 0 : level; continue; }
            if (double.IsNaN(level)) level = last; // no history of this slot yet
            ahead[k] = decay * last + (1 - decay) * level;
            decay *= rate;
        }
        if (ahead.Length > 0) { _made1[t & 7] = ahead[0]; _made1At[t & 7] = t; }
        if (ahead.Length > 3) { _made4[(t + 3) & 7] = ahead[3]; _made4At[(t + 3) & 7] = t + 3; }
    }

    // Folds the price of interval i (now known) into the seasonal rings, φ and the error meters.
    private void Observe(int i, double price)
    {
        int slot = _slot[i];
        double level = _median[slot];
        if (!double.IsNaN(level))
        {
            double departure = price - level;
            if (!double.IsNaN(_lastDeparture))
            {
                _sxy = _sxy * Forgetting + departure * _lastDeparture;
                _sxx = _sxx * Forgetting + _lastDeparture * _lastDeparture;
                _phi = _sxx > 0 ? Math.Clamp(_sxy / _sxx, 0, 0.99) : 0;
            }
            _lastDeparture = departure;
        }
        // Scored only where a forecast for i was made (not during an emergency, when the controller does not plan).
        if (i >= 1 && _made1At[i & 7] == i)
        {
            _error1.Add(_made1[i & 7], price);
            _persistence1.Add(_p!.PriceUsdPerMwh[i - 1], price);
        }
        if (i >= 4 && _made4At[i & 7] == i) _error4.Add(_made4[i & 7], price);

        int at = slot * _days;
        _ring[at + _head[slot]] = price;
        _head[slot] = (byte)((_head[slot] + 1) % _days);
        if (_filled[slot] < _days) _filled[slot]++;
        int n = _filled[slot];
        Span<double> s = _scratch.AsSpan(0, n);
        _ring.AsSpan(at, n).CopyTo(s);
        s.Sort();
        _median[slot] = n % 2 == 1 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
    }
}

/// <summary>Mean absolute and root-mean-square error of a forecast, over the values scored so far.</summary>
public sealed class ForecastError
{
    private double _abs, _sq;

    /// <summary>Values scored.</summary>
    public long Count { get; private set; }

    /// <summary>Mean absolute error (NaN before the first value).</summary>
    public double MeanAbsolute => Count == 0 ? double.NaN : _abs / Count;

    /// <summary>Root-mean-square error (NaN before the first value).</summary>
    public double RootMeanSquare => Count == 0 ? double.NaN : Math.Sqrt(_sq / Count);

    /// <summary>Scores one forecast against what happened (ignored when either is not finite).</summary>
    public void Add(double forecast, double actual)
    {
        if (!double.IsFinite(forecast) || !double.IsFinite(actual)) return;
        double e = forecast - actual;
        _abs += Math.Abs(e);
        _sq += e * e;
        Count++;
    }

    /// <summary>Forgets every value.</summary>
    public void Clear()
    {
        _abs = _sq = 0;
        Count = 0;
    }
}
