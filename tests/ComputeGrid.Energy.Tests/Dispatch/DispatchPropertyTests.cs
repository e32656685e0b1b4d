using ComputeGrid.Energy.Dispatch;
using ComputeGrid.Energy.Optimization;
using ComputeGrid.Energy.Sites;

namespace ComputeGrid.Energy.Tests.Dispatch;

/// <summary>
/// Properties of every policy on random real weeks of the reference site (random start, lease seed): the interconnect
/// limit is never exceeded, firm AI load is always served, miners are off whenever the known price is above their
/// breakeven (controller and myopic), and no policy beats the perfect-foresight LP.
/// </summary>
public class DispatchPropertyTests
{
    public static TheoryData<int> Seeds => new() { 1, 2, 3, 4, 5, 6 };

    [Theory]
    [MemberData(nameof(Seeds))]
    public void Policies_respect_the_limits_and_never_beat_the_optimum(int seed)
    {
        var random = new Random(seed);
        var from = new DateTime(2021, 1, 1, 6, 0, 0, DateTimeKind.Utc).AddDays(random.Next(0, 355));
        BuiltSite site = ReferenceSite.Week(from, days: 7, leaseSeed: random.Next(1, 1000));
        SiteProblem p = site.Problem;
        OptimizerResult lp = PerfectForesightOptimizer.Solve(p);
        SiteValue optimum = SiteAccumulator.Evaluate(p, lp.Running);
        Assert.Equal(0, optimum.InterconnectViolations);

        foreach (IDispatchPolicy policy in new IDispatchPolicy[] { new PredictiveController(), new RealTimeController(), new MyopicPolicy(), new AlwaysOnPolicy(), new FixedThresholdPolicy(100), new DayAheadPlanner() })
        {
            PolicyRun run = Backtest.Run(p, policy);
            Assert.Equal(0, run.Value.InterconnectViolations);
            Assert.Equal(0, run.Value.RampViolations);
            Assert.True(run.Value.ValueMicroUsd <= optimum.ValueMicroUsd + 1_000_000,
                $"seed {seed} {policy.Name}: {run.Value.ValueUsd:N0} USD beats the optimum {optimum.ValueUsd:N0} USD");
            // Firm AI load is served in every interval: its revenue is all earned, and the miners fit beside it.
            Assert.Equal(Math.Round(p.AiRevenueUsd.Sum() * 1e6), run.Value.AiRevenueMicroUsd, 0);
            for (int t = 0; t < p.Count; t++)
            {
                double minerKw = 0;
                for (int g = 0; g < p.Groups.Length; g++) minerKw += run.Running[g][t] * p.Groups[g].WattsEach / 1000.0;
                Assert.True(p.Pue * (p.AiItKw[t] + minerKw) <= p.InterconnectKw + 1e-6, $"{policy.Name} interval {t} exceeds the interconnect");
                if (p.Emergency[t]) Assert.True(minerKw == 0, $"{policy.Name} runs miners during an emergency at {t}");
            }
            if (policy is RealTimeController or MyopicPolicy)
            {
                for (int t = 1; t < p.Count; t++)
                    for (int g = 0; g < p.Groups.Length; g++)
                        if (p.PriceUsdPerMwh[t - 1] > Economics.BreakevenUsdPerMwh(p, p.Groups[g], p.KnownHashpriceUsdPerThDay[t]))
                            Assert.True(run.Running[g][t] == 0, $"{policy.Name}: {p.Groups[g].Model} runs at {t} although the known price {p.PriceUsdPerMwh[t - 1]} is above breakeven");
            }
        }
    }

    [Fact]
    public void Miners_give_way_at_once_when_a_lease_starts()
    {
        // A week in which the leased AI load steps up: the miners' power falls in the same interval.
        BuiltSite site = ReferenceSite.Week(new DateTime(2021, 3, 1, 6, 0, 0, DateTimeKind.Utc), days: 28);
        SiteProblem p = site.Problem;
        PolicyRun run = Backtest.Run(p, new RealTimeController());
        int steps = 0;
        for (int t = 1; t < p.Count; t++)
        {
            if (p.AiItKw[t] <= p.AiItKw[t - 1]) continue;
            double minerKw = 0;
            for (int g = 0; g < p.Groups.Length; g++) minerKw += run.Running[g][t] * p.Groups[g].WattsEach / 1000.0;
            if (p.Pue * (p.AiItKw[t] + minerKw) <= p.InterconnectKw) { steps++; continue; }
            Assert.Fail($"interval {t}: AI rose and the miners did not give way");
        }
        Assert.True(steps > 0, "the period has a lease start");
    }

    [Fact]
    public void The_controller_decides_without_looking_ahead()
    {
        // Changing the future (prices and system load after interval k) cannot change any decision up to k.
        BuiltSite site = ReferenceSite.Week(new DateTime(2021, 8, 20, 5, 0, 0, DateTimeKind.Utc), days: 10);
        SiteProblem p = site.Problem;
        PolicyRun baseline = Backtest.Run(p, new RealTimeController());
        int k = p.Count / 2;
        double[] prices = (double[])p.PriceUsdPerMwh.Clone();
        double[] load = (double[])p.SystemLoadMw.Clone();
        for (int t = k; t < p.Count; t++) { prices[t] = 9_000; load[t] = 99_999; }
        SiteProblem altered = p.With(prices: prices, systemLoadMw: load);
        PolicyRun other = Backtest.Run(altered, new RealTimeController());
        for (int g = 0; g < p.Groups.Length; g++)
            Assert.Equal(baseline.Running[g].AsSpan(0, k + 1).ToArray(), other.Running[g].AsSpan(0, k + 1).ToArray());
        // …and it does react once the future has become the past.
        Assert.NotEqual(baseline.Running[0].AsSpan(k + 1).ToArray(), other.Running[0].AsSpan(k + 1).ToArray());
    }
}
