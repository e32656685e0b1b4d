using ComputeGrid.Energy.Forecasting;
using ComputeGrid.Energy.Sites;

namespace ComputeGrid.Energy.Dispatch;

/// <summary>
/// The site's model-predictive controller. At every interval it re-plans the next <see cref="ControllerConfig.HorizonHours"/>
/// (longer in a day-ahead market, to the end of the last published day, up to 48 hours) on forecasts made from what a
/// <see cref="RealTimeView"/> shows, and acts on the plan's first interval:
/// <list type="number">
/// <item><b>Forecasts</b>: the price (<see cref="PriceForecaster"/>: published day-ahead prices, else the seasonal median
/// plus the last price's decaying departure from it), the hashprice (yesterday's, the last published), the likelihood
/// that an hour is its month's system peak (<see cref="PeakRiskForecaster"/>), the contracted AI load (leases are known
/// in advance).</item>
/// <item><b>The plan</b>: the fleet is cut into units in restart order — groups most efficient first, each cut into equal
/// pieces no larger than the ramp-up limit — and <see cref="RampPlan"/> finds, exactly, how many units to run in each
/// interval of the horizon to maximize the expected margin (hashprice revenue minus the forecast energy cost minus the
/// expected peak charge, likelihood × charge per kW, the interconnect's headroom beside the AI load capping what runs)
/// minus every restart (wear plus the minutes without hashing), with no more restarted per interval than the ramp-up
/// limit allows. Modelling the ramp is what lets it come back <i>before</i> a spike ends: the units it will want when
/// the price falls start while the price is still high, as the perfect-foresight optimum does.</item>
/// <item><b>Hysteresis falls out</b>: a running unit stops only when the expected loss over the coming intervals exceeds
/// the restart it will cost, and a stopped one starts only when the margin ahead pays for its restart — no threshold
/// bands to tune.</item>
/// </list>
/// Demand response (a declared emergency) stops every miner; the caller then applies <see cref="DispatchLimits.Enforce"/>
/// (interconnect, ramps, counts). No allocation per decision; no look-ahead beyond the view (tested by poisoning the
/// future).
/// </summary>
public sealed class PredictiveController : IDispatchPolicy, IExplainsCurtailment
{
    private const int MaxHorizonHours = 48;
    private readonly ControllerConfig _config;
    private readonly PriceForecaster _prices;
    private readonly IPeakHourForecast _peaks;
    private double[] _price = [], _peakProbability = [];
    private int _horizon, _maxHorizon;
    private double _peakRatePerKw; // USD per facility kW per interval of the month's peak hour

    /// <summary>
    /// Creates the controller with <paramref name="config"/> (default: the tuned defaults) and its 4CP forecast
    /// <paramref name="peaks"/> (default: a <see cref="PeakRiskForecaster"/> with the config's settings).
    /// </summary>
    public PredictiveController(ControllerConfig? config = null, IPeakHourForecast? peaks = null)
    {
        _config = config ?? new ControllerConfig();
        _prices = new PriceForecaster(_config.SeasonalDays);
        _peaks = peaks ?? new PeakRiskForecaster(_config.PeakPriorFraction, _config.PeakMinRelativeError, _config.PeakRemainingDaysWeight, _config.PeakHourPriorExponent);
    }

    /// <inheritdoc />
    public string Name => "controller";

    /// <inheritdoc />
    public CurtailmentReason LastReason { get; private set; }

    /// <summary>Whether the peak-charge risk held miners off in the last decision (for telemetry).</summary>
    public bool PeakGuardActive => LastReason == CurtailmentReason.PeakRisk;

    /// <summary>Intervals planned at each decision in a real-time market (a day-ahead market plans to its last published price, up to 48 hours).</summary>
    public int HorizonIntervals => _horizon;

    /// <summary>The price forecaster (its errors so far).</summary>
    public PriceForecaster Prices => _prices;

    /// <summary>The peak-hour forecast (a <see cref="PeakRiskForecaster"/> unless another was composed in).</summary>
    public IPeakHourForecast Peaks => _peaks;

    /// <inheritdoc />
    public void Reset(SiteProblem problem)
    {
        int perHour = Math.Max(1, 60 / problem.IntervalMinutes);
        _horizon = Math.Clamp(_config.HorizonHours, 1, MaxHorizonHours) * perHour;
        _maxHorizon = problem.DayAheadPublishedLocalHour is null ? _horizon : MaxHorizonHours * perHour;
        _price = new double[_maxHorizon];
        _peakProbability = new double[_maxHorizon];
        _prices.Reset(problem);
        _peaks.Reset(problem);
        _peakRatePerKw = problem.PeakChargeMonths.Length == 0 ? 0 : problem.PeakChargeUsdPerKwYear / problem.PeakChargeMonths.Length / perHour;
        BuildUnits(problem);
        LastReason = CurtailmentReason.None;
    }

    // The fleet as units in restart order (groups most efficient first, each cut into equal pieces no larger than the
    // ramp-up limit), so that at most the units whose kW fits the limit start in one interval.
    private void BuildUnits(SiteProblem p)
    {
        var group = new List<int>();
        var miners = new List<int>();
        double ramp = p.RampUpKwPerInterval;
        for (int g = 0; g < p.Groups.Length; g++)
        {
            MinerGroup grp = p.Groups[g];
            if (grp.Count == 0) continue;
            int pieces = double.IsFinite(ramp) && ramp > 0 ? (int)Math.Min(grp.Count, Math.Max(1, Math.Ceiling(grp.FleetKw / ramp - 1e-9))) : 1;
            for (int i = 0; i < pieces; i++)
            {
                group.Add(g);
                miners.Add(grp.Count / pieces + (i < grp.Count % pieces ? 1 : 0));
            }
        }
        int units = group.Count;
        _unitGroup = [.. group];
        _unitMiners = [.. miners];
        _cumKw = new double[units + 1];
        for (int u = 0; u < units; u++) _cumKw[u + 1] = _cumKw[u] + _unitMiners[u] * p.Groups[_unitGroup[u]].WattsEach / 1000.0;
        _cumRestart = new double[units + 1];
        _groupMargin = new double[p.Groups.Length];
        _next = new double[units + 1];
        _current = new double[units + 1];
        _terminal = new double[units + 1];
        _earn = new double[_maxHorizon * (units + 1)];
        _cap = new double[_maxHorizon];
    }

    private int[] _unitGroup = [], _unitMiners = [];
    private double[] _cumKw = [], _cumRestart = [], _groupMargin = [], _next = [], _current = [], _terminal = [], _earn = [], _cap = [];

    /// <inheritdoc />
    public void Decide(in RealTimeView view, Span<int> running)
    {
        SiteProblem p = view.Site;
        LastReason = CurtailmentReason.None;
        if (view.Emergency)
        {
            LastReason = CurtailmentReason.Emergency;
            running.Clear();
            return;
        }

        int t = view.Interval;
        int h = Math.Min(p.Count - t, _maxHorizon);
        if (_maxHorizon > _horizon) h = Math.Min(h, Math.Max(_horizon, view.PricesKnownUntil - t));
        Span<double> price = _price.AsSpan(0, h), peak = _peakProbability.AsSpan(0, h);
        _prices.Forecast(view, price);
        _peaks.Forecast(view, peak);

        double hashprice = view.KnownHashprice;
        MinerGroup[] groups = p.Groups;
        int units = _unitGroup.Length;
        for (int u = 0; u < units; u++)
            _cumRestart[u + 1] = _cumRestart[u] + _unitMiners[u] * Economics.RestartCost(p, groups[_unitGroup[u]], hashprice);

        // The state now: how many units, in restart order, run. A unit counts when at least half its miners run (a site
        // that runs whole racks rarely matches a unit's edge), and the plan's first step is measured from at least the
        // units' power, so a unit short of a rack does not hold the next one back; the caller's limits trim the rest.
        // The miners already running in a unit not counted are credited their restart.
        int now = 0;
        double nowKw = 0, nowCredit = 0;
        for (int g = 0; g < groups.Length; g++) nowKw += Math.Clamp(view.PreviousRunning[g], 0, groups[g].Count) * groups[g].WattsEach / 1000.0;
        {
            int g = -1, used = 0;
            for (; now < units; now++)
            {
                int ug = _unitGroup[now];
                if (ug != g) { g = ug; used = 0; }
                int inUnit = Math.Clamp(view.PreviousRunning[ug], 0, groups[ug].Count) - used;
                if (2 * inUnit < _unitMiners[now])
                {
                    nowCredit = Math.Max(0, inUnit) * Economics.RestartCost(p, groups[ug], hashprice);
                    break;
                }
                // Counted, whole or at least half: the next units are read on. Stopping at a counted partial unit left the
                // units of later groups uncounted, so a site one rack short of a unit's edge in an efficient group planned
                // a step it could never take and held the same decision interval after interval.
                used += _unitMiners[now];
            }
        }
        nowKw = Math.Max(nowKw, _cumKw[now]);

        // The plan (RampPlan): interval k in state n earns what the first n units earn at the forecast price and peak
        // likelihood, the interconnect's headroom capping it (least efficient miners first). Beyond the horizon a
        // stopped unit is assumed to restart when the last planned interval still pays.
        int width = units + 1;
        for (int k = 0; k < h; k++)
        {
            Margins(p, hashprice, price[k], peak[k]);
            Prefix(p, t + k, _earn.AsSpan(k * width, width));
            _cap[k] = p.MinerHeadroomKw(t + k);
        }
        ReadOnlySpan<double> last = _earn.AsSpan((h - 1) * width, width);
        for (int n = 0; n <= units; n++)
        {
            double restartLater = 0;
            for (int u = n; u < units; u++)
                if (last[u + 1] - last[u] > 0) restartLater += _cumRestart[u + 1] - _cumRestart[u];
            _terminal[n] = -restartLater;
        }
        int best = RampPlan.Solve(_earn.AsSpan(0, h * width), h, _cumKw, _cumRestart, _terminal, _cap.AsSpan(0, h), p.RampUpKwPerInterval,
            p.RampDownKwPerInterval, now, nowKw, nowCredit, _next, _current).First;

        // The decision: units below `best` run; the state's own partial unit (miners beyond whole units) is kept as it was.
        Span<int> want = running;
        want.Clear();
        for (int u = 0; u < best; u++) want[_unitGroup[u]] += _unitMiners[u];
        if (best == now)
            for (int g = 0; g < groups.Length; g++) want[g] = Math.Max(want[g], Math.Clamp(view.PreviousRunning[g], 0, groups[g].Count));
        if (best < units)
        {
            // Why the rest is off: the expected peak charge when the unit would pay without it, else the price.
            Margins(p, hashprice, price[0], peak[0]);
            int g = _unitGroup[best];
            double withoutPeak = _groupMargin[g] + peak[0] * _peakRatePerKw * p.Pue * groups[g].WattsEach / 1000.0;
            if (p.MinerHeadroomKw(t) > _cumKw[best] + 1e-6)
                LastReason = peak[0] > 0 && withoutPeak > 0 ? CurtailmentReason.PeakRisk : CurtailmentReason.Price;
        }
    }

    // Each group's expected margin per miner over one interval at a price and a peak likelihood.
    private void Margins(SiteProblem p, double hashprice, double price, double peak)
    {
        double hours = p.IntervalHours;
        for (int g = 0; g < p.Groups.Length; g++)
        {
            MinerGroup grp = p.Groups[g];
            _groupMargin[g] = Economics.RevenuePerMinerHour(p, grp, hashprice) * hours - price * p.Pue * grp.WattsEach / 1e6 * hours
                - peak * _peakRatePerKw * p.Pue * grp.WattsEach / 1000.0;
        }
    }

    // prefix[n]: what the first n units earn in interval i, the part of them above the interconnect's headroom idle.
    private void Prefix(SiteProblem p, int i, Span<double> prefix)
    {
        double headroom = p.MinerHeadroomKw(i);
        prefix[0] = 0;
        for (int u = 0; u < _unitGroup.Length; u++)
        {
            double kw = _cumKw[u + 1] - _cumKw[u];
            double fits = kw <= 0 ? 0 : Math.Clamp((headroom - _cumKw[u]) / kw, 0, 1);
            prefix[u + 1] = prefix[u] + fits * _unitMiners[u] * _groupMargin[_unitGroup[u]];
        }
    }
}
