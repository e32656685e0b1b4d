namespace ComputeGrid.Energy.Dispatch;

/// <summary>
/// The predictive controller's plan: how many units of the miner fleet run in each interval of a horizon, the units
/// taken in restart order (most efficient first, each no larger than the ramp-up limit), so a state is a count
/// <c>n</c> — units <c>0 … n − 1</c> run. An exact backward dynamic program over <c>(interval, n)</c>, O(horizon × (units + 1)²):
/// <list type="bullet">
/// <item>interval <c>k</c> in state <c>n</c> earns <c>earn[k, n]</c> (what the first <c>n</c> units earn then);</item>
/// <item>going from <c>n</c> to <c>m &gt; n</c> pays the restarts of units <c>n … m − 1</c>; the power that runs in
/// state <c>n</c> at <c>k</c> is <c>min(kw[n], cap[k])</c> (the interconnect's headroom beside the AI load), and a step
/// may raise it by at most <c>rampUp</c> and lower it by at most <c>rampDown</c>;</item>
/// <item>the state before interval 0 is <c>now</c> whole units plus what else runs: <c>nowKw</c> is the power running
/// then, and <c>nowCredit</c> the restarts the miners running beyond the whole units would not pay again;</item>
/// <item>after the last interval, state <c>n</c> is worth <c>terminal[n]</c>.</item>
/// </list>
/// Ties keep the state (no needless switching). <see cref="Reference"/> is the same problem by exhaustive search.
/// </summary>
public static class RampPlan
{
    /// <summary>
    /// The best state for interval 0 from state <paramref name="now"/>, and the plan's value.
    /// <paramref name="earn"/> is row-major <c>[k × (units + 1) + n]</c>; <paramref name="cumKw"/> and
    /// <paramref name="cumRestart"/> are prefix sums over units (length units + 1, starting at 0);
    /// <paramref name="next"/> and <paramref name="current"/> are scratch of length units + 1.
    /// </summary>
    public static (int First, double Value) Solve(ReadOnlySpan<double> earn, int horizon, ReadOnlySpan<double> cumKw, ReadOnlySpan<double> cumRestart,
        ReadOnlySpan<double> terminal, ReadOnlySpan<double> capKw, double rampUpKw, double rampDownKw, int now, double nowKw, double nowCredit,
        Span<double> next, Span<double> current)
    {
        int units = cumKw.Length - 1;
        int width = units + 1;
        if (horizon <= 0) return (now, terminal[now]);
        terminal.CopyTo(next);
        double up = rampUpKw + 1e-6, down = rampDownKw + 1e-6;
        int first = now;
        double value = 0;
        for (int k = horizon - 1; k >= 0; k--)
        {
            ReadOnlySpan<double> row = earn.Slice(k * width, width);
            int from = k == 0 ? now : 0, to = k == 0 ? now : units;
            double cap = capKw[k], capBefore = k == 0 ? double.PositiveInfinity : capKw[k - 1];
            for (int n = from; n <= to; n++)
            {
                double top = double.NegativeInfinity;
                int arg = n;
                double before = k == 0 ? nowKw : Math.Min(cumKw[n], capBefore);
                double credit = k == 0 ? nowCredit : 0;
                for (int m = 0; m <= units; m++)
                {
                    double step = Math.Min(cumKw[m], cap) - before;
                    if (step > up || -step > down) continue;
                    double v = row[m] + next[m] - (m > n ? cumRestart[m] - cumRestart[n] - credit : 0);
                    if (v > top + 1e-9 || (m == n && v >= top - 1e-9)) { top = v; arg = m; }
                }
                current[n] = top;
                if (k == 0) { first = arg; value = top; }
            }
            Span<double> swap = next;
            next = current;
            current = swap;
        }
        return (first, value);
    }

    /// <summary>The best plan's value by trying every sequence of states (small problems only; the tests' reference).</summary>
    public static double Reference(double[] earn, int horizon, double[] cumKw, double[] cumRestart, double[] terminal, double[] capKw,
        double rampUpKw, double rampDownKw, int now, double nowKw, double nowCredit)
    {
        int units = cumKw.Length - 1;
        double Best(int k, int n)
        {
            if (k == horizon) return terminal[n];
            double best = double.NegativeInfinity;
            double before = k == 0 ? nowKw : Math.Min(cumKw[n], capKw[k - 1]);
            for (int m = 0; m <= units; m++)
            {
                double step = Math.Min(cumKw[m], capKw[k]) - before;
                if (step > rampUpKw + 1e-6 || -step > rampDownKw + 1e-6) continue;
                double restart = m > n ? cumRestart[m] - cumRestart[n] - (k == 0 ? nowCredit : 0) : 0;
                best = Math.Max(best, earn[k * (units + 1) + m] - restart + Best(k + 1, m));
            }
            return best;
        }
        return Best(0, now);
    }
}
