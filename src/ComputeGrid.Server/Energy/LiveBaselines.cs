using ComputeGrid.Energy.Dispatch;
using ComputeGrid.Energy.Sites;

namespace ComputeGrid.Server.Energy;

/// <summary>
/// A naive strategy's economics over the same replay as a live site's controller (micro-USD since the replay started).
/// </summary>
/// <param name="Name">The strategy: <c>always-on</c> (every miner whenever the limits allow) or <c>threshold</c> (every
/// miner while the last price is below the site's fixed threshold, none above).</param>
/// <param name="ValueMicroUsd">AI revenue + mining revenue − energy cost − peak charge − restart wear.</param>
/// <param name="MiningRevenueMicroUsd">Mining revenue.</param>
/// <param name="EnergyCostMicroUsd">Energy bills.</param>
/// <param name="PeakChargeMicroUsd">4CP peak charges.</param>
/// <param name="RestartWearMicroUsd">Restart wear.</param>
/// <param name="CurtailedMwh">Miner energy held off (MWh).</param>
public sealed record LiveBaseline(string Name, long ValueMicroUsd, long MiningRevenueMicroUsd, long EnergyCostMicroUsd, long PeakChargeMicroUsd,
    long RestartWearMicroUsd, double CurtailedMwh);

/// <summary>
/// The backtest's baselines (DESIGN.md: naive strategies are the controller's baselines), decided live beside the
/// controller on the same intervals, the same data (including the measured GPU load) and the same hard limits
/// (<see cref="DispatchLimits"/>), each with its own fleet state and accounting. They command no miner: whole racks
/// and racks that do not answer bind only the real fleet, so the controller's figure carries those and theirs do not.
/// </summary>
internal sealed class LiveBaselines
{
    private readonly IDispatchPolicy[] _policies;
    private readonly int[][] _previous;
    private readonly int[][] _decided;
    private readonly SiteAccumulator[] _accumulators;

    public LiveBaselines(SiteProblem problem, SiteProblem accounted, ControllerConfig? controller)
    {
        _policies = [new AlwaysOnPolicy(), new FixedThresholdPolicy((controller ?? new ControllerConfig()).FixedThresholdUsdPerMwh)];
        _previous = [.. _policies.Select(_ => new int[problem.Groups.Length])];
        _decided = [.. _policies.Select(_ => new int[problem.Groups.Length])];
        _accumulators = [.. _policies.Select(_ => new SiteAccumulator(accounted))];
        foreach (IDispatchPolicy policy in _policies) policy.Reset(problem);
    }

    /// <summary>Decides interval <paramref name="t"/> (its accounting index <paramref name="accounted"/>) for every baseline.</summary>
    public void Decide(SiteProblem p, int t, int accounted)
    {
        for (int i = 0; i < _policies.Length; i++)
        {
            _policies[i].Decide(new RealTimeView(p, t, _previous[i]), _decided[i]);
            DispatchLimits.Enforce(p, t, _previous[i], _decided[i]);
            _decided[i].CopyTo(_previous[i], 0);
            _accumulators[i].Add(accounted, (ReadOnlySpan<int>)_previous[i]);
        }
    }

    /// <summary>Each baseline's economics so far.</summary>
    public LiveBaseline[] Results()
    {
        var results = new LiveBaseline[_policies.Length];
        for (int i = 0; i < results.Length; i++)
        {
            SiteValue v = _accumulators[i].Result();
            results[i] = new LiveBaseline(_policies[i].Name, v.ValueMicroUsd, v.MiningRevenueMicroUsd, v.EnergyCostMicroUsd, v.PeakChargeMicroUsd,
                v.RestartWearMicroUsd, Math.Round(v.CurtailedMwh, 3));
        }
        return results;
    }
}
