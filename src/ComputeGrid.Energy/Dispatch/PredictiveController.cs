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
/// <item><b>The plan</b>: for each miner group, the schedule that maximizes the expected margin — hashprice revenue minus
/// the forecast energy cost minus the expected peak charge (likelihood × charge per kW) — minus the cost of every
/// restart (wear plus the minutes without hashing). Miners of a group are identical and the margin is linear, so the
/// best schedule runs each miner on or off: a two-state dynamic program over the horizon solves it exactly in
/// O(horizon) per group — the same model as the site LP restricted to one group, with whole restarts. Its value beyond
/// the horizon: a stopped miner is assumed to restart (paying once) when the last planned interval still pays.</item>
/// <item><b>Hysteresis falls out</b>: a running miner stops only when the expected loss over the coming intervals exceeds
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
    private readonly PeakRiskForecaster _peaks;
    private double[] _price = [], _peakProbability = [];
    private int _horizon, _maxHorizon;
    private double _peakRatePerKw; // USD per facility kW per interval of the month's peak hour

    /// <summary>Creates the controller with <paramref name="config"/> (default: the tuned defaults).</summary>
    public PredictiveController(ControllerConfig? config = null)
    {
        _config = config ?? new ControllerConfig();
        _prices = new PriceForecaster(_config.SeasonalDays);
        _peaks = new PeakRiskForecaster(_config.PeakPriorFraction, _config.PeakMinRelativeError, _config.PeakRemainingDaysWeight);
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

    /// <summary>The peak-hour forecaster (its load forecast errors so far).</summary>
    public PeakRiskForecaster Peaks => _peaks;

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
        LastReason = CurtailmentReason.None;
    }

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
        double hours = p.IntervalHours;
        MinerGroup[] groups = p.Groups;
        double kwBefore = 0;
        for (int g = 0; g < groups.Length; g++)
        {
            MinerGroup grp = groups[g];
            double revenue = Economics.RevenuePerMinerHour(p, grp, hashprice) * hours;
            double mwhPerInterval = p.Pue * grp.WattsEach / 1e6 * hours;
            double facilityKw = p.Pue * grp.WattsEach / 1000.0;
            double lastValue = revenue - price[h - 1] * mwhPerInterval - peak[h - 1] * _peakRatePerKw * facilityKw;
            // A restart costs its wear and minutes without hashing, and — when the whole fleet restarts — the intervals this
            // group waits behind the ramp-up limit (groups restart most efficient first), valued at the horizon's margin.
            double waiting = double.IsFinite(p.RampUpKwPerInterval) && p.RampUpKwPerInterval > 0
                ? Math.Max(0, (kwBefore + grp.FleetKw / 2) / p.RampUpKwPerInterval - 0.5) : 0;
            kwBefore += grp.FleetKw;
            double restart = Economics.RestartCost(p, grp, hashprice) + waiting * Math.Max(0, lastValue);

            // Backward two-state dynamic program: next1 / next0 = best value from k + 1 on when the miner runs / is off at k.
            double next1 = 0, next0 = lastValue > 0 ? -restart : 0;
            double runFromOn = 0, runFromOff = 0, stay = 0, value0 = 0;
            for (int k = h - 1; k >= 0; k--)
            {
                double value = revenue - price[k] * mwhPerInterval - peak[k] * _peakRatePerKw * facilityKw;
                runFromOn = value + next1;
                runFromOff = value - restart + next1;
                stay = next0;
                next1 = Math.Max(stay, runFromOn);
                next0 = Math.Max(stay, runFromOff);
                value0 = value;
            }
            // Per miner: those running keep running if that beats stopping; those stopped start if that beats staying off.
            int previous = Math.Clamp(view.PreviousRunning[g], 0, grp.Count);
            int keep = runFromOn >= stay ? previous : 0;
            int start = runFromOff > stay ? grp.Count - previous : 0;
            running[g] = keep + start;
            if (running[g] < grp.Count && LastReason == CurtailmentReason.None)
                LastReason = peak[0] > 0 && value0 + peak[0] * _peakRatePerKw * facilityKw > 0 ? CurtailmentReason.PeakRisk : CurtailmentReason.Price;
        }
    }
}
