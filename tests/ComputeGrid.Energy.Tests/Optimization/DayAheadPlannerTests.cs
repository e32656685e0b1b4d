using ComputeGrid.Energy.Dispatch;
using ComputeGrid.Energy.Optimization;
using Xunit.Abstractions;

namespace ComputeGrid.Energy.Tests.Optimization;

public sealed class DayAheadPlannerTests(ITestOutputHelper output)
{
    // (e) Over several days the planner, after the limits, never breaks them and never beats the perfect-foresight bound.
    [Theory]
    [InlineData(1, 80.0)]
    [InlineData(2, 250.0)]
    [InlineData(3, 80.0)]
    public void RespectsTheLimitsAndStaysBelowTheOptimum(int seed, double aiStepKw)
    {
        SiteProblem p = TestSites.Random(6 * 96, seed, aiStepKw: aiStepKw, emergencies: true);
        var planner = new DayAheadPlanner();
        double[][] schedule = TestSites.Run(p, planner);
        SiteValue v = SiteAccumulator.Evaluate(p, schedule);
        OptimizerResult lp = PerfectForesightOptimizer.Solve(p);
        output.WriteLine($"day-ahead {v.ValueUsd:F2} vs LP {lp.ObjectiveUsd:F2} (bound {lp.UpperBoundUsd:F2}); {planner.Plans} plans, "
            + $"{planner.PlanningTime.TotalMilliseconds / planner.Plans:F2} ms each; accounting ramp flags {v.RampViolations}");

        Assert.Equal(0, v.InterconnectViolations);
        AssertRampsHeld(p, schedule);
        Assert.True(v.ValueUsd <= lp.UpperBoundUsd + TestSites.Rounding(p));
        Assert.Equal(6, planner.Plans); // the horizon starts at local midnight: one plan per local day
        for (int g = 0; g < schedule.Length; g++)
            Assert.All(schedule[g], x => Assert.InRange(x, 0, p.Groups[g].Count));
    }

    [Fact]
    public void CapturesMostOfTheOptimumOnARepetitiveWeek()
    {
        // Prices repeat day after day: persistence is then a perfect forecast from the second day on (no peak
        // charge: the planner's guess of the peak hours would be the only other error).
        SiteProblem p = TestSites.Random(7 * 96, 9, peakCharge: false);
        for (int t = 96; t < p.Count; t++) p.PriceUsdPerMwh[t] = p.PriceUsdPerMwh[t - 96];
        double[][] schedule = TestSites.Run(p, new DayAheadPlanner());
        SiteValue v = SiteAccumulator.Evaluate(p, schedule);
        OptimizerResult lp = PerfectForesightOptimizer.Solve(p);
        // Miner value: above the value with no miner at all (the AI load's revenue and energy are in both).
        double[][] none = [new double[p.Count], new double[p.Count]];
        double off = SiteAccumulator.Evaluate(p, none).ValueUsd;
        double capture = (v.ValueUsd - off) / (lp.ObjectiveUsd - off);
        output.WriteLine($"miner value captured: {capture:P2}");
        Assert.InRange(capture, 0.8, 1.0 + 1e-9);
    }

    [Fact]
    public void StopsMinersInAnEmergency()
    {
        SiteProblem p = TestSites.Random(3 * 96, 4, rampDownKw: double.PositiveInfinity, emergencies: true);
        double[][] schedule = TestSites.Run(p, new DayAheadPlanner());
        for (int t = 0; t < p.Count; t++)
            if (p.Emergency[t])
                for (int g = 0; g < schedule.Length; g++) Assert.Equal(0, schedule[g][t]);
    }

    [Fact]
    public void ReadsNothingOfTheFuture()
    {
        // Two problems equal up to interval 250 and different after it (everything but the contracted AI load):
        // every decision before 250 must be the same.
        SiteProblem a = TestSites.Random(5 * 96, 17, emergencies: true);
        SiteProblem b = TestSites.Random(5 * 96, 17, emergencies: true);
        var rng = new Random(1);
        for (int t = 250; t < b.Count; t++)
        {
            b.PriceUsdPerMwh[t] = 1_000 * rng.NextDouble() - 300;
            b.HashpriceUsdPerThDay[t] = 0.5 * rng.NextDouble();
            b.KnownHashpriceUsdPerThDay[t] = 0.5 * rng.NextDouble();
            b.SystemLoadMw[t] = 90_000 * rng.NextDouble();
            b.PeakChargeUsdPerKw[t] = rng.NextDouble();
            b.Emergency[t] = rng.NextDouble() < 0.5;
            b.AiRevenueUsd[t] = 0;
        }
        double[][] sa = TestSites.Run(a, new DayAheadPlanner());
        double[][] sb = TestSites.Run(b, new DayAheadPlanner());
        for (int g = 0; g < sa.Length; g++)
            for (int t = 0; t < 250; t++) Assert.Equal(sa[g][t], sb[g][t]);
        Assert.False(sa[0].AsSpan(250).SequenceEqual(sb[0].AsSpan(250)) && sa[1].AsSpan(250).SequenceEqual(sb[1].AsSpan(250)));
    }

    [Fact]
    public void CurtailsTheAfternoonAfterANearPeakDay()
    {
        // Yesterday's 17:00–18:00 load set the month's maximum: today's 17:00 hour probably sets the 4CP peak.
        SiteProblem p = TestSites.Random(2 * 96, 5, rampUpKw: double.PositiveInfinity, rampDownKw: double.PositiveInfinity);
        for (int t = 0; t < p.Count; t++)
        {
            p.PriceUsdPerMwh[t] = 20; // mining pays all day
            p.SystemLoadMw[t] = t % 96 / 4 == 17 ? 80_000 : 60_000;
        }
        double[][] schedule = TestSites.Run(p, new DayAheadPlanner());
        double[] kw = TestSites.MinerKw(p, schedule);
        for (int t = 96; t < 2 * 96; t++)
        {
            int hour = t % 96 / 4;
            if (hour == 17) Assert.Equal(0, kw[t]);
            else Assert.True(kw[t] > 0, $"interval {t} (hour {hour}) should mine");
        }
    }

    [Fact]
    public void DecideDoesNotAllocateBetweenPlans()
    {
        SiteProblem p = TestSites.Random(3 * 96, 6);
        var planner = new DayAheadPlanner();
        TestSites.Run(p, planner); // warm up (JIT, solver libraries)
        planner.Reset(p);
        int[] previous = (int[])p.InitialRunning.Clone();
        var running = new int[2];
        long allocated = 0;
        for (int t = 0; t < p.Count; t++)
        {
            bool planDay = t % 96 == 0;
            long before = GC.GetAllocatedBytesForCurrentThread();
            planner.Decide(new RealTimeView(p, t, previous), running);
            long after = GC.GetAllocatedBytesForCurrentThread();
            if (!planDay && t > 96) allocated += after - before;
            DispatchLimits.Enforce(p, t, previous, running);
            Array.Copy(running, previous, 2);
        }
        Assert.Equal(0, allocated);
    }

    [Fact]
    public void PlansTakeMilliseconds()
    {
        SiteProblem p = OptimizerSmoke.Build(30 * 96, 2);
        var planner = new DayAheadPlanner();
        TestSites.Run(p, planner);
        double ms = planner.PlanningTime.TotalMilliseconds / planner.Plans;
        output.WriteLine($"{planner.Plans} plans, {ms:F2} ms each");
        Assert.InRange(ms, 0, 100); // a few ms on a quiet machine; generous for a busy CI runner
    }

    // Ramp limits as DispatchLimits applies them to whole miners: a drop beyond the limit only where the
    // interconnect forced it (the facility then within one miner of the limit) or an emergency stopped every miner.
    internal static void AssertRampsHeld(SiteProblem p, double[][] schedule)
    {
        double[] kw = TestSites.MinerKw(p, schedule);
        double oneMiner = p.Groups.Max(g => g.WattsEach) / 1000.0;
        double previous = p.InitialRunning.Select((c, g) => c * p.Groups[g].WattsEach / 1000.0).Sum();
        for (int t = 0; t < p.Count; t++)
        {
            double ramp = kw[t] - previous;
            Assert.True(ramp <= p.RampUpKwPerInterval + 1e-6, $"ramp up {ramp} at {t}");
            if (p.Emergency[t]) Assert.Equal(0, kw[t]);
            else if (-ramp > p.RampDownKwPerInterval + 1e-6)
                Assert.True(kw[t] >= p.MinerHeadroomKw(t) - oneMiner - 1e-6, $"ramp down {-ramp} at {t} below the interconnect limit");
            previous = kw[t];
        }
    }
}
