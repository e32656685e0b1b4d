using ComputeGrid.Energy.Dispatch;

namespace ComputeGrid.Energy.Forecasting;

/// <summary>
/// What the predictive controller asks of a peak-charge (ERCOT 4CP) forecast: the likelihood that each interval ahead
/// lies in its month's system-peak hour, from what a <see cref="RealTimeView"/> shows. <see cref="PeakRiskForecaster"/>
/// is the controller's own; another can be composed in (<see cref="PredictiveController(Sites.ControllerConfig?, IPeakHourForecast?)"/>),
/// for instance to measure what a better 4CP forecast would be worth.
/// </summary>
public interface IPeakHourForecast
{
    /// <summary>Prepares for a new horizon of <paramref name="p"/>.</summary>
    void Reset(SiteProblem p);

    /// <summary>
    /// Writes into <paramref name="probability"/>[k] the likelihood that interval <c>view.Interval + k</c>'s hour is its
    /// month's system peak (zeros where the site pays no peak charge).
    /// </summary>
    void Forecast(in RealTimeView view, Span<double> probability);
}
