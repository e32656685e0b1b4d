using ComputeGrid.Energy.Dispatch;
using ComputeGrid.Energy.Optimization;
using ComputeGrid.Energy.Tests.Dispatch;
using Xunit.Abstractions;

namespace ComputeGrid.Energy.Tests.Optimization;

public sealed class IntegerBoundTests(ITestOutputHelper output)
{
    // (1) LP bound ≥ integer upper bound ≥ exact whole-horizon integer optimum ≥ feasible value. The whole horizon
    // is solved by SCIP at its default gap of zero: `exact` is its schedule's value, `proved` its bound; with a
    // finite ramp-down the exemption may need a second pass, whose schedule is legal but not proved optimal, so the
    // integer optimum lies in [exact, proved].
    [Theory]
    [InlineData(1, 80.0, false)]
    [InlineData(2, 80.0, true)]   // emergencies: no miner runs, the drop into one is immediate
    [InlineData(3, 250.0, false)] // AI steps beyond the ramp-down limit: the exemption's hull is in the windows
    [InlineData(4, 250.0, true)]
    [InlineData(5, 80.0, false)]
    public void BoundsSandwichTheExactIntegerOptimum(int seed, double aiStepKw, bool emergencies)
    {
        SiteProblem p = TestSites.Random(288, seed, aiStepKw: aiStepKw, emergencies: emergencies);
        OptimizerResult lp = PerfectForesightOptimizer.Solve(p);
        OptimizerResult mip = PerfectForesightOptimizer.Solve(p, new OptimizerOptions { Solver = "scip", RelaxStarts = false, TimeLimitSeconds = 120 });
        IntegerBoundResult r = IntegerBound.Compute(p, new IntegerBoundOptions { WindowIntervals = 48 });
        double tol = 1e-6 * TestSites.Gross(r.Feasible) + TestSites.Rounding(p);
        output.WriteLine($"LP {r.LpBoundUsd:F4} ≥ windows {r.IntegerUpperBoundUsd:F4} ≥ integer [{mip.ObjectiveUsd:F4}, {mip.UpperBoundUsd:F4}] (passes {mip.Passes}) ≥ feasible {r.FeasibleValueUsd:F4} "
            + $"(sequential {r.SequentialValueMicroUsd / 1e6:F4}, joined {r.JoinedValueMicroUsd / 1e6:F4}); {r.Windows} windows, {r.OptimalWindows} optimal, {r.Elapsed.TotalMilliseconds:F0} ms");

        Assert.True(mip.Optimal);
        Assert.Equal(6, r.Windows);
        Assert.Equal(r.Windows, r.OptimalWindows);
        Assert.Equal(0, r.RelaxedWindows);
        Assert.Equal(lp.UpperBoundUsd, r.LpBoundUsd, 1e-9 * Math.Abs(lp.UpperBoundUsd));
        Assert.True(r.IntegerUpperBoundUsd <= r.LpBoundUsd + tol, "the priced windows' bound exceeds the LP's");
        Assert.True(r.IntegerUpperBoundUsd >= mip.ObjectiveUsd - tol, "a whole-miner schedule beats the integer bound");
        Assert.True(r.FeasibleValueUsd <= mip.UpperBoundUsd + tol, "the feasible schedule beats the proved integer optimum");
        Assert.True(r.GapUsd >= -tol);
        // Whole miners make a difference on these fleets (the relaxation fills the interconnect with a fraction of a miner).
        Assert.True(r.IntegerUpperBoundUsd < r.LpBoundUsd - 1e-3);
        Assert.Equal(r.FeasibleValueMicroUsd, SiteAccumulator.Evaluate(p, r.FeasibleRunning).ValueMicroUsd);
    }

    // (2) The feasible schedule is whole miners within the fleet and breaks no limit.
    [Theory]
    [InlineData(11, false)]
    [InlineData(12, true)]
    [InlineData(13, false)]
    public void FeasibleScheduleIsWholeAndLegal(int seed, bool emergencies)
    {
        SiteProblem p = TestSites.Random(400, seed, emergencies: emergencies);
        IntegerBoundResult r = IntegerBound.Compute(p, new IntegerBoundOptions { WindowIntervals = 96 });
        output.WriteLine($"feasible {r.FeasibleValueUsd:F4} (sequential {r.SequentialValueMicroUsd / 1e6:F4}, joined {r.JoinedValueMicroUsd / 1e6:F4}), bound {r.BestUpperBoundUsd:F4} ({r.BestUpperBoundName}), repaired {r.RepairedIntervals}");

        SiteValue v = SiteAccumulator.Evaluate(p, r.FeasibleRunning);
        Assert.Equal(0, v.InterconnectViolations);
        Assert.Equal(0, v.RampViolations);
        Assert.Equal(0, TestSites.UnexcusedRampViolations(p, r.FeasibleRunning));
        Assert.Equal(v, r.Feasible);
        Assert.Equal(5, r.Windows);
        for (int g = 0; g < p.Groups.Length; g++)
        {
            Assert.Equal(p.Count, r.FeasibleRunning[g].Length);
            Assert.All(r.FeasibleRunning[g], x => Assert.Equal(Math.Round(x), x));
            Assert.All(r.FeasibleRunning[g], x => Assert.InRange(x, 0, p.Groups[g].Count));
        }
        for (int t = 0; t < p.Count; t++)
            if (p.Emergency[t]) Assert.All(r.FeasibleRunning, row => Assert.Equal(0, row[t]));
        Assert.True(r.FeasibleValueUsd <= r.BestUpperBoundUsd + TestSites.Rounding(p));
        Assert.Equal(Math.Max(r.SequentialValueMicroUsd, r.JoinedValueMicroUsd), r.FeasibleValueMicroUsd);
    }

    // Tiny one-group problems against exhaustive search (the accounting's own rules, exemption included): windows
    // of two intervals, so most of the horizon's couplings are priced rather than modelled.
    [Fact]
    public void TinyProblemsBracketTheBestWholeMinerSchedule()
    {
        var rng = new Random(17);
        for (int trial = 0; trial < 24; trial++)
        {
            int n = 6;
            bool exemption = trial % 2 == 1;
            var price = new double[n];
            var ai = new double[n];
            for (int t = 0; t < n; t++)
            {
                double u = rng.NextDouble();
                price[t] = u < 0.2 ? -40 * rng.NextDouble() : u < 0.4 ? 150 + 400 * rng.NextDouble() : 60 * rng.NextDouble();
                // With the ramp-down limit of 1 kW, headroom of 3, 2 or 1 kW: a step from 3 to 1 forces a drop beyond
                // the ramp, legal only at the limit (the exemption, whose hull row may be priced at a window's start).
                ai[t] = exemption ? 0.2 + rng.Next(3) : 0.5 * rng.Next(4);
            }
            double rampDown = exemption ? 1 : double.PositiveInfinity;
            SiteProblem p = TestSites.OneGroup(price, ai, count: 3, wattsEach: 1_000, terahashEach: 100, hashprice: 0.0096 + 0.004 * rng.NextDouble(),
                interconnectKw: 3.2, rampUpKw: 1 + rng.Next(2), rampDownKw: rampDown, initial: rng.Next(4), restartMinutes: 5, wearUsd: 0.01 + 0.02 * rng.NextDouble());
            IntegerBoundResult r = IntegerBound.Compute(p, new IntegerBoundOptions { WindowIntervals = 2 });
            (_, double[] bestSchedule) = PerfectForesightOptimizerTests.Exhaustive(p, step: 1);
            double best = UnroundedValue(p, [bestSchedule]);
            output.WriteLine($"trial {trial}: LP {r.LpBoundUsd:F6} windows {r.IntegerUpperBoundUsd:F6} best {best:F6} feasible {r.FeasibleValueUsd:F6} (ramp flags {r.Feasible.RampViolations})");

            // The best schedule is valued by the accounting's formulas unrounded, as the solvers value theirs.
            const double tol = 1e-8;
            Assert.True(r.IntegerUpperBoundUsd <= r.LpBoundUsd + tol);
            Assert.True(r.IntegerUpperBoundUsd >= best - tol);
            if (r.Feasible.RampViolations == 0 && r.Feasible.InterconnectViolations == 0) Assert.True(UnroundedValue(p, r.FeasibleRunning) <= best + tol);
            if (double.IsPositiveInfinity(rampDown)) Assert.Equal(0, r.Feasible.RampViolations);
        }
    }

    // With one window the bound is the whole horizon's integer program, solved exactly.
    [Fact]
    public void OneWindowIsTheWholeIntegerProgram()
    {
        SiteProblem p = TestSites.Random(96, 8, rampDownKw: double.PositiveInfinity);
        OptimizerResult mip = PerfectForesightOptimizer.Solve(p, new OptimizerOptions { Solver = "scip", RelaxStarts = false, TimeLimitSeconds = 60 });
        IntegerBoundResult r = IntegerBound.Compute(p, new IntegerBoundOptions { WindowIntervals = 1_000, MaxParallelism = 1 });
        double tol = 1e-6 * TestSites.Gross(r.Feasible) + TestSites.Rounding(p);
        Assert.Equal(1, r.Windows);
        Assert.InRange(r.IntegerUpperBoundUsd - mip.UpperBoundUsd, -tol, tol);
        Assert.InRange(r.FeasibleValueUsd - mip.ObjectiveUsd, -tol, tol);
    }

    // Unpriced windows (each free at its start, at no cost) bound the integer optimum too, if more loosely.
    [Fact]
    public void DroppedCouplingsStillBound()
    {
        SiteProblem p = TestSites.Random(288, 6, aiStepKw: 250);
        OptimizerResult mip = PerfectForesightOptimizer.Solve(p, new OptimizerOptions { Solver = "scip", RelaxStarts = false, TimeLimitSeconds = 120 });
        IntegerBoundResult priced = IntegerBound.Compute(p, new IntegerBoundOptions { WindowIntervals = 24 });
        IntegerBoundResult dropped = IntegerBound.Compute(p, new IntegerBoundOptions { WindowIntervals = 24, PriceCouplings = false });
        output.WriteLine($"LP {priced.LpBoundUsd:F4} priced {priced.IntegerUpperBoundUsd:F4} dropped {dropped.IntegerUpperBoundUsd:F4} integer {mip.ObjectiveUsd:F4}");
        double tol = 1e-6 * TestSites.Gross(priced.Feasible) + TestSites.Rounding(p);
        Assert.True(dropped.IntegerUpperBoundUsd >= mip.ObjectiveUsd - tol);
        Assert.True(priced.IntegerUpperBoundUsd >= mip.ObjectiveUsd - tol);
        Assert.True(priced.IntegerUpperBoundUsd <= priced.LpBoundUsd + tol);
        Assert.Equal(priced.LpBoundUsd, dropped.LpBoundUsd, 1e-9 * Math.Abs(priced.LpBoundUsd));
    }

    // (3) A week of the real ERCOT reference site (August 2021, its 4CP peak hour included): the integer bound is
    // below the LP's, the feasible schedule below both and legal.
    [Fact]
    public void ReferenceWeekIntegerBoundIsBelowTheLp()
    {
        SiteProblem p = ReferenceSite.Week(new DateTime(2021, 8, 23, 5, 0, 0, DateTimeKind.Utc)).Problem;
        OptimizerResult lp = PerfectForesightOptimizer.Solve(p);
        IntegerBoundResult r = IntegerBound.Compute(p);
        output.WriteLine($"LP {r.LpBoundUsd:F2} integer bound {r.IntegerUpperBoundUsd:F2} (−{r.TighteningUsd:F2}) feasible {r.FeasibleValueUsd:F2} gap {r.GapUsd:F2}; "
            + $"{r.Windows} windows, {r.OptimalWindows} optimal; LP {r.LpTime.TotalSeconds:F2} s, windows {r.BoundSolveTime.TotalSeconds:F2} s, "
            + $"feasible {r.FeasibleSolveTime.TotalSeconds:F2} s, elapsed {r.Elapsed.TotalSeconds:F2} s ({r.Solver}); peak charge {r.Feasible.PeakChargeMicroUsd / 1e6:F2}");

        double tol = 1e-6 * TestSites.Gross(r.Feasible);
        Assert.Equal(7, r.Windows);
        Assert.Equal(lp.UpperBoundUsd, r.LpBoundUsd, 1e-9 * Math.Abs(lp.UpperBoundUsd));
        Assert.True(r.IntegerUpperBoundUsd < r.LpBoundUsd, "whole miners cannot fill the interconnect as the relaxation does");
        Assert.Equal(IntegerBound.IntegerBoundName, r.BestUpperBoundName);
        Assert.True(r.FeasibleValueUsd <= r.IntegerUpperBoundUsd + tol);
        Assert.InRange(r.GapUsd, -tol, 1e-6 * Math.Abs(r.LpBoundUsd)); // the integer optimum is pinned down
        Assert.Equal(0, r.Feasible.InterconnectViolations);
        Assert.Equal(0, r.Feasible.RampViolations);
        Assert.True(r.Feasible.PeakChargeMicroUsd > 0);
    }

    // Parts: each part's bound covers the part's own value of every whole-miner schedule. The first part's against the
    // exact integer optimum of the part alone from the horizon's initial state; the second's (whose first interval is
    // free) against the part's exact optimum from several entry states, the whole horizon's optimal one among them.
    [Theory]
    [InlineData(21, 100)] // inside a window: the window is cut there
    [InlineData(22, 96)]  // at a window boundary
    public void EachPartIsBoundedAlone(int seed, int cut)
    {
        SiteProblem p = TestSites.Random(192, seed);
        var scip = new OptimizerOptions { Solver = "scip", RelaxStarts = false, TimeLimitSeconds = 120 };
        IntegerBoundResult r = IntegerBound.Compute(p, new IntegerBoundOptions { WindowIntervals = 48, PartStarts = [cut] });
        OptimizerResult whole = PerfectForesightOptimizer.Solve(p, scip);
        double tol = 1e-6 * TestSites.Gross(r.Feasible) + TestSites.Rounding(p);

        Assert.Equal([0, cut], r.PartStarts);
        Assert.Equal(cut % 48 == 0 ? 4 : 5, r.Windows);
        Assert.Equal(2, r.PartEdgeWindows);
        Assert.Equal(r.Windows, r.OptimalWindows);
        Assert.True(r.IntegerUpperBoundUsd >= whole.ObjectiveUsd - tol);
        Assert.True(r.PartUpperBoundsUsd.Sum() >= whole.ObjectiveUsd - tol);

        OptimizerResult firstPart = PerfectForesightOptimizer.Solve(p.Slice(0, cut), scip);
        output.WriteLine($"part 1: bound {r.PartUpperBoundsUsd[0]:F4}, exact {firstPart.ObjectiveUsd:F4}");
        Assert.True(r.PartUpperBoundsUsd[0] >= firstPart.ObjectiveUsd - tol);

        int G = p.Groups.Length;
        int[][] entries =
        [
            new int[G],
            p.Groups.Select(g => g.Count).ToArray(),
            Enumerable.Range(0, G).Select(g => (int)Math.Round(whole.Running[g][cut - 1])).ToArray(),
        ];
        foreach (int[] entry in entries)
        {
            OptimizerResult secondPart = PerfectForesightOptimizer.Solve(p.Slice(cut, p.Count - cut, entry), scip);
            output.WriteLine($"part 2 from [{string.Join(", ", entry)}]: bound {r.PartUpperBoundsUsd[1]:F4}, exact {secondPart.ObjectiveUsd:F4}");
            Assert.True(r.PartUpperBoundsUsd[1] >= secondPart.ObjectiveUsd - tol);
        }

        // A part start outside the horizon, or out of order, is refused.
        Assert.Throws<ArgumentOutOfRangeException>(() => IntegerBound.Compute(p, new IntegerBoundOptions { PartStarts = [0] }));
        Assert.Throws<ArgumentOutOfRangeException>(() => IntegerBound.Compute(p, new IntegerBoundOptions { PartStarts = [100, 50] }));
        Assert.Throws<ArgumentOutOfRangeException>(() => IntegerBound.Compute(p, new IntegerBoundOptions { PartStarts = [p.Count] }));
    }

    // A schedule's value by the accounting's formulas (IntervalEconomics), before any rounding to the micro-dollar.
    private static double UnroundedValue(SiteProblem p, double[][] schedule)
    {
        var previous = p.InitialRunning.Select(x => (double)x).ToArray();
        var running = new double[p.Groups.Length];
        double startFraction = IntervalEconomics.StartFraction(p.RestartMinutes, p.IntervalMinutes), total = 0;
        for (int t = 0; t < p.Count; t++)
        {
            for (int g = 0; g < running.Length; g++) running[g] = schedule[g][t];
            IntervalFlow flow = IntervalEconomics.Flow(p.Groups, p.Pue, p.AiItKw[t], startFraction, running, previous);
            total += IntervalEconomics.Amounts(flow, p.AiRevenueUsd[t], p.HashpriceUsdPerThDay[t], p.PoolFeeFraction, p.PriceUsdPerMwh[t],
                p.PeakChargeUsdPerKw[t], p.RestartWearUsd, p.IntervalHours).ValueUsd;
        }
        return total;
    }

    [Fact]
    public void InputsItCannotSolveAreRefused()
    {
        SiteProblem p = TestSites.Random(96, 1);
        Assert.Throws<ArgumentException>(() => IntegerBound.Compute(p, new IntegerBoundOptions { Solver = "glop" }));
        Assert.Throws<ArgumentException>(() => IntegerBound.Compute(p, new IntegerBoundOptions { Solver = "no-such-solver" }));
        Assert.Throws<ArgumentOutOfRangeException>(() => IntegerBound.Compute(p, new IntegerBoundOptions { WindowIntervals = -1 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => IntegerBound.Compute(p, new IntegerBoundOptions { RelativeGap = -1 }));
    }
}
