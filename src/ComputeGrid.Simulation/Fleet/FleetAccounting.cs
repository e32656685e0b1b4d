using ComputeGrid.Energy.Dispatch;

namespace ComputeGrid.Simulation.Fleet;

/// <summary>The value of one policy's dispatch over a fleet, and the limits it kept or broke.</summary>
/// <param name="Policy">The policy's name.</param>
/// <param name="Sites">Each site's economics (<see cref="SiteAccumulator"/>), in the scenario's site order.</param>
/// <param name="ServedUnits">Flexible units served, all sites.</param>
/// <param name="UnservedUnits">Units asked for and not served.</param>
/// <param name="LatencyBoundViolations">Units served at a site whose round trip from the customer's region exceeds the
/// unit's bound.</param>
/// <param name="CapacityViolations">Site-intervals whose flexible units exceed the site's node capacity, or whose
/// served units exceed a class's demand.</param>
/// <param name="InterconnectViolations">Site-intervals whose facility load exceeded the interconnect.</param>
public sealed record FleetValue(
    string Policy,
    SiteValue[] Sites,
    double ServedUnits,
    double UnservedUnits,
    double LatencyBoundViolations,
    int CapacityViolations,
    int InterconnectViolations)
{
    private long Sum(Func<SiteValue, long> f)
    {
        long total = 0;
        foreach (SiteValue v in Sites) total = checked(total + f(v));
        return total;
    }

    /// <summary>AI revenue (leases and flexible units), micro-USD.</summary>
    public long AiRevenueMicroUsd => Sum(v => v.AiRevenueMicroUsd);

    /// <summary>Energy bought, micro-USD.</summary>
    public long EnergyCostMicroUsd => Sum(v => v.EnergyCostMicroUsd);

    /// <summary>Peak (4CP) charges, micro-USD.</summary>
    public long PeakChargeMicroUsd => Sum(v => v.PeakChargeMicroUsd);

    /// <summary>Mining revenue, micro-USD.</summary>
    public long MiningRevenueMicroUsd => Sum(v => v.MiningRevenueMicroUsd);

    /// <summary>Miner restart wear, micro-USD.</summary>
    public long WearMicroUsd => Sum(v => v.RestartWearMicroUsd);

    /// <summary>The fleet's value: AI revenue − energy cost − peak charge + mining revenue − wear, micro-USD.</summary>
    public long ValueMicroUsd => Sum(v => v.ValueMicroUsd);

    /// <summary>Site-intervals whose miner ramp broke a ramp limit (<see cref="SiteValue.RampViolations"/>).</summary>
    public int RampViolations => Sites.Sum(v => v.RampViolations);

    /// <summary>True when no latency bound, node capacity, interconnect or ramp limit was broken.</summary>
    public bool WithinLimits => LatencyBoundViolations == 0 && CapacityViolations == 0 && InterconnectViolations == 0 && RampViolations == 0;
}

/// <summary>
/// The one valuation of a fleet dispatch, the same for every policy and the LP. Each site is valued by the site's own
/// economics (<see cref="SiteAccumulator"/>: amounts rounded to the micro-dollar once per interval, summed with checked
/// arithmetic), with its AI load and revenue being the firm leases plus the flexible units the dispatch put there:
/// <code>
/// AI IT kW(s, t)   = firm kW(s, t) + units(s, t) × UnitItKw
/// AI revenue(s, t) = firm revenue(s, t) + units(s, t) × UnitRevenueUsd
/// value            = Σ_s (AI revenue + mining revenue − energy cost − peak charge − wear)
/// </code>
/// Limits are counted beside the value, never folded into it: a unit served beyond its latency bound, units beyond a
/// site's node capacity or a class's demand, facility load beyond the interconnect.
/// </summary>
public static class FleetAccounting
{
    // Fractional (LP) schedules meet their limits up to the solver's tolerance.
    private const double Tolerance = 1e-6;

    /// <summary>Values <paramref name="dispatch"/> over <paramref name="scenario"/>.</summary>
    public static FleetValue Evaluate(FleetScenario scenario, FleetDispatch dispatch)
    {
        ArgumentNullException.ThrowIfNull(scenario);
        ArgumentNullException.ThrowIfNull(dispatch);
        int n = scenario.Count, sites = scenario.Sites.Length, classes = scenario.Classes.Length;
        double served = 0, latency = 0;
        int capacity = 0;
        var values = new SiteValue[sites];
        for (int s = 0; s < sites; s++)
        {
            FleetSite site = scenario.Sites[s];
            SiteProblem firm = site.Problem;
            var aiKw = new double[n];
            var aiRevenue = new double[n];
            for (int t = 0; t < n; t++)
            {
                double units = dispatch.UnitsAt(s, t);
                if (units > site.CapacityUnits + Tolerance) capacity++;
                aiKw[t] = firm.AiItKw[t] + units * scenario.UnitItKw;
                aiRevenue[t] = firm.AiRevenueUsd[t] + units * scenario.UnitRevenueUsd;
                served += units;
            }
            for (int c = 0; c < classes; c++)
            {
                if (scenario.Eligible(c, s)) continue;
                foreach (double u in dispatch.Served[s][c]) latency += u;
            }
            values[s] = SiteAccumulator.Evaluate(WithAiLoad(firm, aiKw, aiRevenue), dispatch.Running[s]);
        }
        double demand = 0;
        for (int c = 0; c < classes; c++)
            for (int t = 0; t < n; t++)
            {
                double asked = scenario.Demand[c][t], got = 0;
                for (int s = 0; s < sites; s++) got += dispatch.Served[s][c][t];
                if (got > asked + Tolerance) capacity++;
                demand += asked;
            }
        return new FleetValue(dispatch.Policy, values, served, Math.Max(0, demand - served), latency, capacity,
            values.Sum(v => v.InterconnectViolations));
    }

    /// <summary>A copy of <paramref name="p"/> with another AI load and revenue (every other series shared).</summary>
    public static SiteProblem WithAiLoad(SiteProblem p, double[] aiItKw, double[] aiRevenueUsd) => new()
    {
        Name = p.Name, StartUtc = p.StartUtc, IntervalMinutes = p.IntervalMinutes, PriceUsdPerMwh = p.PriceUsdPerMwh,
        HashpriceUsdPerThDay = p.HashpriceUsdPerThDay, KnownHashpriceUsdPerThDay = p.KnownHashpriceUsdPerThDay,
        AiItKw = aiItKw, AiRevenueUsd = aiRevenueUsd, SystemLoadMw = p.SystemLoadMw, Emergency = p.Emergency,
        PeakChargeUsdPerKw = p.PeakChargeUsdPerKw, PeakChargeMonths = p.PeakChargeMonths, PeakChargeUsdPerKwYear = p.PeakChargeUsdPerKwYear,
        LocalUtcOffsetHours = p.LocalUtcOffsetHours, InterconnectKw = p.InterconnectKw, Pue = p.Pue, Groups = p.Groups,
        RampUpKwPerInterval = p.RampUpKwPerInterval, RampDownKwPerInterval = p.RampDownKwPerInterval, RestartMinutes = p.RestartMinutes,
        RestartWearUsd = p.RestartWearUsd, PoolFeeFraction = p.PoolFeeFraction, InitialRunning = p.InitialRunning,
        DayAheadPublishedLocalHour = p.DayAheadPublishedLocalHour, PricePublishedMinutesBeforeStart = p.PricePublishedMinutesBeforeStart,
    };
}
