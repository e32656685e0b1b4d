using ComputeGrid.Energy.Dispatch;

namespace ComputeGrid.Energy.Tests.Dispatch;

/// <summary>The predictive controller's plan (<see cref="RampPlan"/>) against exhaustive search, seeded.</summary>
public class RampPlanTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void The_plan_equals_exhaustive_search(int seed)
    {
        var rng = new Random(seed);
        for (int trial = 0; trial < 300; trial++)
        {
            int units = 1 + rng.Next(4), horizon = 1 + rng.Next(6), width = units + 1;
            var cumKw = new double[width];
            var cumRestart = new double[width];
            for (int u = 0; u < units; u++)
            {
                cumKw[u + 1] = cumKw[u] + 1 + rng.Next(10);
                cumRestart[u + 1] = cumRestart[u] + rng.NextDouble() * 30;
            }
            // What state n earns at k: per-unit margins that swing between loss and gain (prices that spike), summed.
            var earn = new double[horizon * width];
            for (int k = 0; k < horizon; k++)
            {
                double price = rng.NextDouble() < 0.3 ? 200 * rng.NextDouble() : 20 * rng.NextDouble();
                for (int u = 0; u < units; u++)
                    earn[k * width + u + 1] = earn[k * width + u] + (cumKw[u + 1] - cumKw[u]) * (40 + 5 * rng.NextDouble() - price);
            }
            var terminal = new double[width];
            for (int n = 0; n < width; n++) terminal[n] = -rng.NextDouble() * 20;
            double up = rng.NextDouble() < 0.2 ? double.PositiveInfinity : 1 + rng.Next(12);
            double down = rng.NextDouble() < 0.7 ? double.PositiveInfinity : 1 + rng.Next(12);
            // The interconnect's headroom: often above the whole fleet, sometimes cutting into it.
            var cap = new double[horizon];
            for (int k = 0; k < horizon; k++) cap[k] = rng.NextDouble() < 0.6 ? double.PositiveInfinity : cumKw[units] * rng.NextDouble();
            int now = rng.Next(width);
            // Part of the next unit may run too (trimmed by the headroom before): its power, and its restarts not to pay again.
            double part = now < units && rng.NextDouble() < 0.5 ? rng.NextDouble() : 0;
            double nowKw = cumKw[now] + (now < units ? part * (cumKw[now + 1] - cumKw[now]) : 0);
            double nowCredit = now < units ? part * (cumRestart[now + 1] - cumRestart[now]) : 0;

            (int first, double value) = RampPlan.Solve(earn, horizon, cumKw, cumRestart, terminal, cap, up, down, now, nowKw, nowCredit, new double[width], new double[width]);
            double reference = RampPlan.Reference(earn, horizon, cumKw, cumRestart, terminal, cap, up, down, now, nowKw, nowCredit);
            if (double.IsNegativeInfinity(reference)) { Assert.True(double.IsNegativeInfinity(value)); continue; }
            Assert.Equal(reference, value, 9);
            // The first step is feasible and leads to the optimum.
            double step = Math.Min(cumKw[first], cap[0]) - nowKw;
            Assert.True(step <= up + 1e-6 && -step <= down + 1e-6, $"trial {trial}: {now} → {first} breaks a ramp");
            double rest = horizon == 1 ? terminal[first]
                : RampPlan.Reference(earn[width..], horizon - 1, cumKw, cumRestart, terminal, cap[1..], up, down, first, Math.Min(cumKw[first], cap[0]), 0);
            double restart = first > now ? cumRestart[first] - cumRestart[now] - nowCredit : 0;
            Assert.Equal(reference, earn[first] - restart + rest, 9);
        }
    }

    [Fact]
    public void It_comes_back_before_a_known_spike_ends_when_that_pays()
    {
        // Four units of 10 kW, ramp-up 10 kW per interval, all off during a spike that ends after interval 3. Running a
        // unit loses 1 during the spike and earns 10 after it: the plan restarts one unit at interval 1, 2 and 3 so all
        // four run when the spike ends (waiting would give up 10 per unit per interval of ramp).
        int units = 4, width = units + 1, horizon = 8;
        double[] cumKw = [0, 10, 20, 30, 40];
        double[] cumRestart = [0, 1, 2, 3, 4];
        var earn = new double[horizon * width];
        for (int k = 0; k < horizon; k++)
            for (int n = 1; n <= units; n++) earn[k * width + n] = n * (k < 4 ? -1 : 10);
        var terminal = new double[width];
        int state = 0;
        var path = new List<int>();
        for (int k = 0; k < horizon; k++)
        {
            var cap = Enumerable.Repeat(double.PositiveInfinity, horizon - k).ToArray();
            state = RampPlan.Solve(earn.AsSpan(k * width), horizon - k, cumKw, cumRestart, terminal, cap, 10, double.PositiveInfinity, state, cumKw[state], 0,
                new double[width], new double[width]).First;
            path.Add(state);
        }
        Assert.Equal([0, 1, 2, 3, 4, 4, 4, 4], path);
    }
}
