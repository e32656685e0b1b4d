using ComputeGrid.Energy.Backtesting;
using ComputeGrid.Energy.Dispatch;
using ComputeGrid.Energy.Optimization;
using ComputeGrid.Energy.Sites;
using ComputeGrid.Energy.Tests.Dispatch;

namespace ComputeGrid.Energy.Tests.Backtesting;

/// <summary>
/// Policies are scored against the tightest bound that is a proof: the LP's relaxation optimum and the integer bound
/// (<see cref="IntegerBound"/>), each in micro-USD rounded up with the accounting's rounding allowed for, the smaller
/// one named; each half of the year against a bound of its own.
/// </summary>
public sealed class ScoredBoundTests
{
    private static readonly BacktestOptions NoPlanner = new() { DayAhead = false };

    [Fact]
    public void The_controllable_share_is_taken_of_the_tightest_proved_bound()
    {
        // The August 2021 4CP week of the reference site (all in July–December).
        BuiltSite site = ReferenceSite.Week(new DateTime(2021, 8, 23, 5, 0, 0, DateTimeKind.Utc));
        SiteBacktestResult r = SiteBacktest.Run(site, NoPlanner);
        int n = site.Problem.Count;

        // The bounds by hand: USD up to the micro-dollar, plus 2.5 micro-USD an interval (five amounts, each rounded).
        OptimizerResult lp = r.Optimum!;
        IntegerBoundResult ib = r.IntegerBound!;
        long lpBound = Math.Max((long)Math.Ceiling(Math.Max(lp.UpperBoundUsd, lp.ObjectiveUsd) * 1e6 + 2.5 * n), r.OptimumValue!.ValueMicroUsd);
        long integerBound = (long)Math.Ceiling(ib.IntegerUpperBoundUsd * 1e6 + 2.5 * n);
        Assert.Equal(lpBound, r.LpBoundMicroUsd);
        Assert.Equal(integerBound, r.IntegerUpperBoundMicroUsd);
        // Whole miners cannot fill the interconnect as fractional ones do: the integer bound is the tighter, and scored.
        Assert.True(integerBound < lpBound, $"integer {integerBound} LP {lpBound}");
        Assert.Equal(integerBound, r.ScoredBoundMicroUsd);
        Assert.Equal(SiteBacktestResult.IntegerBoundName, r.ScoredBoundName);

        long alwaysOn = r.Run(SiteBacktestResult.AlwaysOn).Value.ValueMicroUsd;
        Assert.Equal(integerBound - alwaysOn, r.ControllableValueMicroUsd);
        foreach (PolicyRun run in r.Runs)
        {
            Assert.True(run.Value.ValueMicroUsd <= integerBound, run.Policy);
            Assert.Equal((double)(run.Value.ValueMicroUsd - alwaysOn) / (integerBound - alwaysOn), r.ControllableCaptured(run.Policy));
            // A period within one half: that half is scored against the same bound.
            Assert.Equal(r.ControllableCaptured(run.Policy), r.ControllableCapturedInHalf(run.Policy, secondHalf: true));
            Assert.True(double.IsNaN(r.ControllableCapturedInHalf(run.Policy, secondHalf: false)));
        }
        Assert.Equal((0L, integerBound), r.HalfBoundsMicroUsd);
        Assert.Equal(SiteBacktestResult.IntegerBoundName, r.HalfBoundName);
        // The LP's fractional schedule scores above the whole-miner bound; the whole-miner schedule found under it, at most 1.
        Assert.True(r.ControllableCaptured(SiteBacktestResult.OptimumName) > 1);
        Assert.InRange(r.ControllableCaptured(SiteBacktestResult.WholeMinersName), r.ControllableCaptured(), 1.0);
        Assert.Equal(ib.FeasibleValueMicroUsd, r.Value(SiteBacktestResult.WholeMinersName).ValueMicroUsd);

        // Without the integer bound the LP's is scored, and the same gain (or loss) is a smaller share of a larger controllable value.
        SiteBacktestResult lpOnly = SiteBacktest.Run(site, NoPlanner with { IntegerBound = false });
        Assert.Null(lpOnly.IntegerBound);
        Assert.Equal(SiteBacktestResult.LpBoundName, lpOnly.ScoredBoundName);
        Assert.Equal(lpBound, lpOnly.ScoredBoundMicroUsd);
        Assert.Equal((double)(r.Controller.Value.ValueMicroUsd - alwaysOn) / (lpBound - alwaysOn), lpOnly.ControllableCaptured());
        // (The rule-based controller's: the predictive one, started cold on this week, leaves every miner running.)
        Assert.NotEqual(0, r.OverAlwaysOnMicroUsd("rule-based"));
        Assert.True(Math.Abs(lpOnly.ControllableCaptured("rule-based")) < Math.Abs(r.ControllableCaptured("rule-based")),
            $"LP-scored {lpOnly.ControllableCaptured("rule-based")}, integer-scored {r.ControllableCaptured("rule-based")}");

        // No optimum, no bound, no share.
        SiteBacktestResult none = SiteBacktest.Run(site, NoPlanner with { Optimum = false });
        Assert.Null(none.ScoredBoundMicroUsd);
        Assert.Null(none.ScoredBoundName);
        Assert.True(double.IsNaN(none.ControllableCaptured()));
    }

    [Fact]
    public void Each_half_of_a_period_across_the_first_of_July_is_scored_against_its_own_proved_bound()
    {
        // 22 June – 2 July 2021, the June 4CP hour (23 June) in the first half; the halves meet at local midnight, 1 July.
        DateTime from = new(2021, 6, 22, 5, 0, 0, DateTimeKind.Utc);
        BuiltSite site = ReferenceSite.Week(from, days: 10);
        SiteBacktestResult r = SiteBacktest.Run(site, NoPlanner);
        SiteProblem p = site.Problem;
        int july = (int)((new DateTime(2021, 7, 1, 5, 0, 0, DateTimeKind.Utc) - from) / TimeSpan.FromMinutes(15));
        Assert.Equal([july], SiteBacktestResult.HalfStarts(p));

        IntegerBoundResult ib = r.IntegerBound!;
        Assert.Equal([0, july], ib.PartStarts);
        long first = (long)Math.Ceiling(ib.PartUpperBoundsUsd[0] * 1e6 + 2.5 * july);
        long second = (long)Math.Ceiling(ib.PartUpperBoundsUsd[1] * 1e6 + 2.5 * (p.Count - july));
        Assert.Equal((first, second), r.HalfBoundsMicroUsd);
        Assert.Contains("each half bounded alone", r.HalfBoundName);

        // Each half's bound is a proof for that half alone: no policy and no perfect-foresight whole-miner schedule passes it.
        foreach (string name in r.Runs.Select(x => x.Policy).Append(SiteBacktestResult.WholeMinersName))
        {
            (long v1, long v2) = r.HalfValues(name);
            Assert.True(v1 <= first && v2 <= second, $"{name}: {v1} / {first}, {v2} / {second}");
        }

        (long a1, long a2) = r.HalfValues(SiteBacktestResult.AlwaysOn);
        // The rule-based controller's halves (the predictive one, started cold on these ten days, leaves every miner running).
        (long c1, long c2) = r.HalfValues("rule-based");
        Assert.Equal((double)(c1 - a1) / (first - a1), r.ControllableCapturedInHalf("rule-based", secondHalf: false));
        Assert.True(r.ControllableCapturedInHalf("rule-based", secondHalf: false) > 0.3, $"rule-based first half {r.ControllableCapturedInHalf("rule-based", secondHalf: false)}");
        double expectedSecond = SiteBacktestResult.IsControllable(second - a2, second) ? (double)(c2 - a2) / (second - a2) : double.NaN;
        Assert.Equal(expectedSecond, r.ControllableCapturedInHalf("rule-based", secondHalf: true));
    }

    [Fact]
    public void A_controllable_value_within_a_millionth_of_the_bound_gives_no_share()
    {
        Assert.False(SiteBacktestResult.IsControllable(0, 1_000_000_000));
        Assert.False(SiteBacktestResult.IsControllable(1_000, 1_000_000_000));
        Assert.True(SiteBacktestResult.IsControllable(1_001, 1_000_000_000));
        Assert.False(SiteBacktestResult.IsControllable(-5, 1_000_000_000));
        Assert.Equal(3_360 + 1_000_001, SiteBacktestResult.ProvenMicroUsd(1.0000005, 1_344));
    }
}
