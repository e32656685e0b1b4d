using ComputeGrid.Energy.Dispatch;
using ComputeGrid.Energy.Optimization;
using CsCheck;
using Xunit.Abstractions;

namespace ComputeGrid.Energy.Tests.Optimization;

public sealed class PerfectForesightOptimizerTests(ITestOutputHelper output)
{
    // (a) The LP's objective is the accounting's value of its own schedule, and the schedule respects every limit.
    [Theory]
    [InlineData(96, 1)]
    [InlineData(500, 2)]
    [InlineData(2_000, 3)]
    [InlineData(700, 4, 250.0)] // AI steps beyond the ramp-down limit: the interconnect-forced exemption is in play
    [InlineData(1_000, 5, 250.0)]
    public void ObjectiveIsTheAccountingValueOfItsSchedule(int n, int seed, double aiStepKw = 80)
    {
        SiteProblem p = TestSites.Random(n, seed, aiStepKw: aiStepKw);
        OptimizerResult r = PerfectForesightOptimizer.Solve(p);
        SiteValue v = SiteAccumulator.Evaluate(p, r.Running);
        output.WriteLine($"n={n} value={r.ObjectiveUsd:F6} bound={r.UpperBoundUsd:F6} accounting={v.ValueUsd:F6} passes={r.Passes} vars={r.Variables} rows={r.Constraints}");

        Assert.Equal(0, v.InterconnectViolations);
        Assert.Equal(0, v.RampViolations);
        Assert.Equal(2, r.Running.Length);
        for (int g = 0; g < 2; g++)
        {
            Assert.Equal(n, r.Running[g].Length);
            Assert.All(r.Running[g], x => Assert.InRange(x, 0, p.Groups[g].Count));
        }
        double rounding = TestSites.Rounding(p), relative = 1e-6 * TestSites.Gross(v);
        Assert.InRange(v.ValueUsd - r.ObjectiveUsd, -rounding, rounding);
        Assert.True(r.UpperBoundUsd >= r.ObjectiveUsd - relative);
        // The solver's own optimum (not recomputed from the schedule) is the accounting value too.
        if (r.Passes == 1) Assert.InRange(r.UpperBoundUsd - v.ValueUsd, -relative - rounding, relative + rounding);
        Assert.True(r.Optimal);
    }

    [Fact]
    public void SyntheticMonthMatchesTheAccounting()
    {
        OptimizerResult r = OptimizerSmoke.RunYear(2_976, 11);
        SiteProblem p = OptimizerSmoke.Build(2_976, 11);
        SiteValue v = SiteAccumulator.Evaluate(p, r.Running);
        output.WriteLine($"build {r.BuildTime.TotalMilliseconds:F0} ms, solve {r.SolveTime.TotalMilliseconds:F0} ms, {r.Variables} variables, {r.Constraints} rows ({r.Solver})");
        Assert.Equal(0, v.InterconnectViolations);
        // The synthetic site has emergencies: the miners stop at once, as DispatchLimits rules, which
        // SiteAccumulator (it does not read the emergency signal) flags as ramp violations. Nothing else may be flagged.
        Assert.Equal(0, TestSites.UnexcusedRampViolations(p, r.Running));
        Assert.True(v.RampViolations <= TestSites.EmergencyStops(p, r.Running));
        Assert.InRange(v.ValueUsd - r.ObjectiveUsd, -TestSites.Rounding(p), TestSites.Rounding(p));
        Assert.InRange(r.UpperBoundUsd - v.ValueUsd, -1e-6 * TestSites.Gross(v), 1e-6 * TestSites.Gross(v));
        for (int t = 0; t < p.Count; t++)
            if (p.Emergency[t]) Assert.All(r.Running, row => Assert.Equal(0, row[t]));
    }

    [Theory]
    [InlineData("glop")]
    [InlineData("clp")]
    [InlineData("HIGHS")]
    public void ExactSolversAgree(string solver)
    {
        SiteProblem p = TestSites.Random(600, 21, aiStepKw: 250);
        OptimizerResult reference = PerfectForesightOptimizer.Solve(p, new OptimizerOptions { Solver = "highs" });
        OptimizerResult r = PerfectForesightOptimizer.Solve(p, new OptimizerOptions { Solver = solver });
        Assert.Equal(solver.ToLowerInvariant(), r.Solver);
        SiteValue v = SiteAccumulator.Evaluate(p, r.Running);
        Assert.Equal(0, v.InterconnectViolations);
        Assert.Equal(0, v.RampViolations);
        Assert.InRange(r.UpperBoundUsd - reference.UpperBoundUsd, -1e-7 * TestSites.Gross(v), 1e-7 * TestSites.Gross(v));
    }

    [Fact]
    public void PdlpIsCloseButApproximate()
    {
        SiteProblem p = TestSites.Random(600, 22);
        OptimizerResult exact = PerfectForesightOptimizer.Solve(p);
        OptimizerResult r = PerfectForesightOptimizer.Solve(p, new OptimizerOptions { Solver = "pdlp" });
        Assert.Equal("pdlp", r.Solver);
        Assert.InRange(r.ObjectiveUsd, exact.UpperBoundUsd - 1e-3 * Math.Abs(exact.UpperBoundUsd), exact.UpperBoundUsd + 1e-3 * Math.Abs(exact.UpperBoundUsd));
    }

    // (b) Controller value ≤ LP optimum: no schedule that went through DispatchLimits.Enforce beats the bound.
    [Theory]
    [InlineData(1, 80.0)]
    [InlineData(2, 80.0)]
    [InlineData(3, 250.0)]
    [InlineData(4, 250.0)]
    public void NoEnforcedIntegerScheduleBeatsTheOptimum(int seed, double aiStepKw)
    {
        SiteProblem p = TestSites.Random(672, seed, aiStepKw: aiStepKw);
        OptimizerResult r = PerfectForesightOptimizer.Solve(p);
        var rng = new Random(seed);
        var schedules = new List<(string, double[][])>
        {
            ("always-on", TestSites.Run(p, (t, prev, run) => { for (int g = 0; g < run.Length; g++) run[g] = p.Groups[g].Count; })),
            ("threshold", TestSites.Run(p, (t, prev, run) => Threshold(p, t, run))),
            ("hindsight-threshold", TestSites.Run(p, (t, prev, run) => HindsightThreshold(p, t, run))),
            ("random", TestSites.Run(p, (t, prev, run) => { for (int g = 0; g < run.Length; g++) run[g] = rng.Next(p.Groups[g].Count + 1); })),
            ("sticky-random", TestSites.Run(p, (t, prev, run) =>
            {
                for (int g = 0; g < run.Length; g++) run[g] = rng.NextDouble() < 0.9 ? prev[g] : rng.Next(p.Groups[g].Count + 1);
            })),
            ("rounded-lp", TestSites.Run(p, (t, prev, run) => { for (int g = 0; g < run.Length; g++) run[g] = (int)Math.Round(r.Running[g][t]); })),
            ("day-ahead", TestSites.Run(p, new DayAheadPlanner())),
        };
        foreach ((string name, double[][] schedule) in schedules)
        {
            SiteValue v = SiteAccumulator.Evaluate(p, schedule);
            output.WriteLine($"{name,-20} {v.ValueUsd,14:F2} (bound {r.UpperBoundUsd:F2}, LP schedule {r.ObjectiveUsd:F2}; ramp flags {v.RampViolations})");
            Assert.Equal(0, v.InterconnectViolations);
            Assert.True(v.ValueUsd <= r.UpperBoundUsd + TestSites.Rounding(p), $"{name}: {v.ValueUsd} > bound {r.UpperBoundUsd}");
            if (r.Passes == 1) Assert.True(v.ValueUsd <= r.ObjectiveUsd + TestSites.Rounding(p), $"{name}: {v.ValueUsd} > optimum {r.ObjectiveUsd}");
        }
    }

    [Fact]
    public void RandomFeasibleSchedulesNeverBeatTheOptimum()
    {
        Gen.Select(Gen.Int[0, 1_000_000], Gen.Int[96, 400], Gen.Double[0, 1]).Sample((seed, n, stickiness) =>
        {
            SiteProblem p = TestSites.Random(n, seed, aiStepKw: seed % 2 == 0 ? 80 : 250);
            OptimizerResult r = PerfectForesightOptimizer.Solve(p);
            var rng = new Random(seed);
            double[][] schedule = TestSites.Run(p, (t, prev, run) =>
            {
                for (int g = 0; g < run.Length; g++) run[g] = rng.NextDouble() < stickiness ? prev[g] : rng.Next(p.Groups[g].Count + 1);
            });
            SiteValue v = SiteAccumulator.Evaluate(p, schedule);
            return v.InterconnectViolations == 0 && v.ValueUsd <= r.UpperBoundUsd + TestSites.Rounding(p);
        }, iter: 25, threads: 1);
    }

    // (c) Tiny problems against exhaustive search: the LP equals the best schedule on a half-miner grid (its
    // constraint matrix is totally unimodular and every right-hand side is a multiple of half a miner, so an optimal
    // vertex lies on that grid), and the integer program equals the best whole-miner schedule.
    [Fact]
    public void TinyProblemsMatchExhaustiveSearch()
    {
        var rng = new Random(5);
        for (int trial = 0; trial < 12; trial++)
        {
            int n = trial % 2 == 0 ? 5 : 6;
            var price = new double[n];
            var ai = new double[n];
            var peak = new double[n];
            for (int t = 0; t < n; t++)
            {
                double u = rng.NextDouble();
                price[t] = u < 0.2 ? -40 * rng.NextDouble() : u < 0.35 ? 150 + 400 * rng.NextDouble() : 60 * rng.NextDouble();
                ai[t] = 0.5 * rng.Next(3);                 // headroom 3, 2.5 or 2 kW: steps never exceed the ramp-down limit
                if (rng.NextDouble() < 0.15) peak[t] = 0.02;
            }
            double rampUp = 0.5 * (1 + rng.Next(4)), rampDown = trial % 3 == 0 ? double.PositiveInfinity : 1 + 0.5 * rng.Next(3);
            SiteProblem p = TestSites.OneGroup(price, ai, count: 3, wattsEach: 1_000, terahashEach: 100, hashprice: 0.0096 + 0.004 * rng.NextDouble(),
                interconnectKw: 3, rampUpKw: rampUp, rampDownKw: rampDown, initial: rng.Next(4), peak: peak);

            OptimizerResult lp = PerfectForesightOptimizer.Solve(p);
            OptimizerResult mip = PerfectForesightOptimizer.Solve(p, new OptimizerOptions { RelaxStarts = false });
            (double bestGrid, _) = Exhaustive(p, step: 0.5);
            (double bestInteger, _) = Exhaustive(p, step: 1);
            output.WriteLine($"trial {trial}: LP {lp.ObjectiveUsd:F6} grid {bestGrid:F6} MIP {mip.ObjectiveUsd:F6} integer {bestInteger:F6}");

            Assert.Equal(1, lp.Passes);
            Assert.InRange(lp.ObjectiveUsd - bestGrid, -1e-5, 1e-5);
            Assert.True(lp.UpperBoundUsd >= bestInteger - 1e-5);
            Assert.InRange(mip.ObjectiveUsd - bestInteger, -1e-5, 1e-5);
            Assert.All(mip.Running[0], x => Assert.Equal(Math.Round(x), x));
            Assert.True(mip.Optimal);
        }
    }

    // (d) Ramp limits bind where the prices say they must.
    [Fact]
    public void RampUpBindsFromAColdStart()
    {
        int n = 16;
        SiteProblem p = TestSites.OneGroup(Enumerable.Repeat(20.0, n).ToArray(), new double[n], count: 100, wattsEach: 1_000,
            terahashEach: 100, hashprice: 0.05, interconnectKw: 1_000, rampUpKw: 15, rampDownKw: 20, initial: 0);
        OptimizerResult r = PerfectForesightOptimizer.Solve(p);
        double[] kw = TestSites.MinerKw(p, r.Running);
        for (int t = 0; t < n; t++) Assert.Equal(Math.Min(100, 15.0 * (t + 1)), kw[t], 6);
    }

    [Fact]
    public void RampDownBindsBeforeAForeseenSpike()
    {
        int n = 14;
        double[] price = Enumerable.Repeat(20.0, n).ToArray();
        price[9] = 20_000; // a spike: every kW running then costs 5 USD, far more than it earns in a day
        SiteProblem p = TestSites.OneGroup(price, new double[n], count: 100, wattsEach: 1_000, terahashEach: 100,
            hashprice: 0.05, interconnectKw: 1_000, rampUpKw: 25, rampDownKw: 20, initial: 100);
        OptimizerResult r = PerfectForesightOptimizer.Solve(p);
        double[] kw = TestSites.MinerKw(p, r.Running);
        // Full until the ramp-down must start, 20 kW less each interval to zero at the spike, then back up by 25 kW.
        double[] expected = [100, 100, 100, 100, 100, 80, 60, 40, 20, 0, 25, 50, 75, 100];
        for (int t = 0; t < n; t++) Assert.Equal(expected[t], kw[t], 6);
        SiteValue v = SiteAccumulator.Evaluate(p, r.Running);
        Assert.Equal(0, v.RampViolations);
    }

    [Fact]
    public void InterconnectForcedDropNeedsNoPreRamp()
    {
        // AI load rises by 70 kW at t = 6: miners must fall from 100 to 30 kW at once (ramp-down limit 20 kW).
        int n = 10;
        double[] ai = Enumerable.Range(0, n).Select(t => t < 6 ? 50.0 : 120.0).ToArray();
        SiteProblem p = TestSites.OneGroup(Enumerable.Repeat(20.0, n).ToArray(), ai, count: 100, wattsEach: 1_000,
            terahashEach: 100, hashprice: 0.05, interconnectKw: 150, rampUpKw: 50, rampDownKw: 20, initial: 100);
        OptimizerResult r = PerfectForesightOptimizer.Solve(p);
        double[] kw = TestSites.MinerKw(p, r.Running);
        Assert.Equal(100, kw[5], 6);
        Assert.Equal(30, kw[6], 6);
        Assert.Equal(1, r.Passes);
        SiteValue v = SiteAccumulator.Evaluate(p, r.Running);
        Assert.Equal(0, v.RampViolations);
        Assert.Equal(0, v.InterconnectViolations);
        // The always-on controller does the same, and the optimum is no worse.
        double[][] alwaysOn = TestSites.Run(p, (t, prev, run) => run[0] = 100);
        Assert.True(SiteAccumulator.Evaluate(p, alwaysOn).ValueUsd <= r.ObjectiveUsd + TestSites.Rounding(p));
    }

    [Fact]
    public void InitialStateAboveTheHeadroomDropsToTheLimit()
    {
        // 100 kW running, AI load leaves 30 kW from the first interval: the only legal start is at the limit.
        int n = 4;
        SiteProblem p = TestSites.OneGroup(Enumerable.Repeat(20.0, n).ToArray(), Enumerable.Repeat(120.0, n).ToArray(), count: 100,
            wattsEach: 1_000, terahashEach: 100, hashprice: 0.05, interconnectKw: 150, rampUpKw: 50, rampDownKw: 20, initial: 100);
        OptimizerResult r = PerfectForesightOptimizer.Solve(p);
        Assert.Equal(30, TestSites.MinerKw(p, r.Running)[0], 6);
        Assert.Equal(0, SiteAccumulator.Evaluate(p, r.Running).RampViolations);
    }

    [Fact]
    public void ExemptionMisusedByTheRelaxationIsResolved()
    {
        // Headroom falls from 4 to 1 kW at t = 4 (ramp-down limit 1 kW) and the prices make the interval before the
        // step dear and the step itself dearer: the hull relaxation then drops from 3 kW to below the 1 kW limit, a
        // drop neither within the ramp nor at the limit, which the second pass must repair.
        double[] price = [10, 10, 10, 40, 200, 10];
        double[] ai = [1, 1, 1, 1, 4, 4];
        SiteProblem p = TestSites.OneGroup(price, ai, count: 4, wattsEach: 1_000, terahashEach: 100, hashprice: 0.012,
            interconnectKw: 5, rampUpKw: 2, rampDownKw: 1, initial: 4);
        OptimizerResult r = PerfectForesightOptimizer.Solve(p);
        SiteValue v = SiteAccumulator.Evaluate(p, r.Running);
        (double bestInteger, _) = Exhaustive(p, step: 1);
        output.WriteLine($"passes {r.Passes}, value {r.ObjectiveUsd:F6}, bound {r.UpperBoundUsd:F6}, best integer {bestInteger:F6}");
        output.WriteLine("kW: " + string.Join(", ", TestSites.MinerKw(p, r.Running).Select(x => x.ToString("F3"))));

        Assert.Equal(2, r.Passes);
        Assert.Equal(0, v.RampViolations);
        Assert.Equal(0, v.InterconnectViolations);
        Assert.InRange(v.ValueUsd - r.ObjectiveUsd, -TestSites.Rounding(p), TestSites.Rounding(p));
        Assert.True(r.UpperBoundUsd > r.ObjectiveUsd + 1e-6); // the relaxation was strictly better: its schedule was illegal
        Assert.True(r.ObjectiveUsd >= bestInteger - 1e-5);
    }

    [Fact]
    public void IntegerScheduleIsWholeAndBelowTheRelaxation()
    {
        SiteProblem p = TestSites.Random(96, 8, rampDownKw: double.PositiveInfinity);
        OptimizerResult lp = PerfectForesightOptimizer.Solve(p);
        OptimizerResult mip = PerfectForesightOptimizer.Solve(p, new OptimizerOptions { RelaxStarts = false, TimeLimitSeconds = 30 });
        SiteValue v = SiteAccumulator.Evaluate(p, mip.Running);
        output.WriteLine($"LP {lp.ObjectiveUsd:F4} MIP {mip.ObjectiveUsd:F4} (bound {mip.UpperBoundUsd:F4}) in {mip.SolveTime.TotalMilliseconds:F0} ms");
        Assert.All(mip.Running, row => Assert.All(row, x => Assert.Equal(Math.Round(x), x)));
        Assert.Equal(0, v.InterconnectViolations);
        Assert.Equal(0, v.RampViolations);
        Assert.True(mip.ObjectiveUsd <= lp.UpperBoundUsd + TestSites.Rounding(p));
        Assert.InRange(v.ValueUsd - mip.ObjectiveUsd, -TestSites.Rounding(p), TestSites.Rounding(p));
    }

    [Fact]
    public void NegativePricesAndFreeStartsStayBounded()
    {
        // Prices far below zero pay for every kW; without wear and with instant restarts a start costs nothing.
        int n = 8;
        SiteProblem p = TestSites.OneGroup(Enumerable.Repeat(-500.0, n).ToArray(), new double[n], count: 10, wattsEach: 1_000,
            terahashEach: 100, hashprice: 0.05, interconnectKw: 100, rampUpKw: double.PositiveInfinity, rampDownKw: double.PositiveInfinity,
            initial: 0, restartMinutes: 0, wearUsd: 0);
        OptimizerResult r = PerfectForesightOptimizer.Solve(p);
        Assert.All(r.Running[0], x => Assert.Equal(10, x, 9));
        Assert.InRange(SiteAccumulator.Evaluate(p, r.Running).ValueUsd - r.ObjectiveUsd, -TestSites.Rounding(p), TestSites.Rounding(p));
    }

    [Fact]
    public void InputsTheModelCannotRepresentAreRefused()
    {
        SiteProblem ok = TestSites.Random(96, 1);
        Assert.Throws<ArgumentException>(() => PerfectForesightOptimizer.Solve(ok, new OptimizerOptions { Solver = "simplex-of-my-own" }));
        Assert.Throws<ArgumentException>(() => PerfectForesightOptimizer.Solve(ok, new OptimizerOptions { Solver = "glop", RelaxStarts = false }));
        double[] hp = (double[])ok.HashpriceUsdPerThDay.Clone();
        hp[5] = -0.01;
        Assert.Throws<ArgumentException>(() => PerfectForesightOptimizer.Solve(With(ok, hashprice: hp)));
        Assert.Throws<ArgumentException>(() => PerfectForesightOptimizer.Solve(With(ok, initial: [41, 0])));
        double[] price = (double[])ok.PriceUsdPerMwh.Clone();
        price[3] = double.NaN;
        Assert.Throws<ArgumentException>(() => PerfectForesightOptimizer.Solve(With(ok, price: price)));
    }

    [Fact]
    public void SolverThatRunsOutOfTimeIsAnError()
    {
        SiteProblem p = OptimizerSmoke.Build(20_000, 3);
        var e = Assert.Throws<OptimizerException>(() => PerfectForesightOptimizer.Solve(p, new OptimizerOptions { TimeLimitSeconds = 1e-4 }));
        output.WriteLine(e.Message);
    }

    private static void Threshold(SiteProblem p, int t, int[] run)
    {
        double price = t == 0 ? 30 : p.PriceUsdPerMwh[t - 1];
        for (int g = 0; g < run.Length; g++)
        {
            MinerGroup grp = p.Groups[g];
            double earns = p.KnownHashpriceUsdPerThDay[t] * grp.TerahashEach / 24 * (1 - p.PoolFeeFraction);
            double costs = price * p.Pue * grp.WattsEach / 1e6;
            run[g] = earns > costs ? grp.Count : 0;
        }
    }

    // Knows this interval's true price and peak weight: a strong (cheating) heuristic that still cannot beat the LP.
    private static void HindsightThreshold(SiteProblem p, int t, int[] run)
    {
        for (int g = 0; g < run.Length; g++)
        {
            MinerGroup grp = p.Groups[g];
            double earns = p.HashpriceUsdPerThDay[t] * grp.TerahashEach / 24 * (1 - p.PoolFeeFraction) * p.IntervalHours;
            double costs = p.PriceUsdPerMwh[t] * p.Pue * grp.WattsEach / 1e6 * p.IntervalHours + p.PeakChargeUsdPerKw[t] * p.Pue * grp.WattsEach / 1000;
            run[g] = earns > costs ? grp.Count : 0;
        }
    }

    // The best schedule of a one-group problem whose counts lie on a grid of the given step, by the accounting, among
    // those the accounting finds no violation in.
    internal static (double Value, double[] Schedule) Exhaustive(SiteProblem p, double step)
    {
        int n = p.Count, levels = (int)Math.Round(p.Groups[0].Count / step) + 1;
        var schedule = new double[n];
        var best = (Value: double.NegativeInfinity, Schedule: Array.Empty<double>());
        var digits = new int[n];
        double[][] wrap = [schedule];
        while (true)
        {
            for (int t = 0; t < n; t++) schedule[t] = digits[t] * step;
            SiteValue v = SiteAccumulator.Evaluate(p, wrap);
            if (v.InterconnectViolations == 0 && v.RampViolations == 0 && v.ValueUsd > best.Value) best = (v.ValueUsd, (double[])schedule.Clone());
            int i = 0;
            while (i < n && ++digits[i] == levels) digits[i++] = 0;
            if (i == n) return best;
        }
    }

    private static SiteProblem With(SiteProblem p, double[]? hashprice = null, int[]? initial = null, double[]? price = null) =>
        p.With(prices: price, hashprice: hashprice, initialRunning: initial);
}
