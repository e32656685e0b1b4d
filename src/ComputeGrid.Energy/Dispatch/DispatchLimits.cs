namespace ComputeGrid.Energy.Dispatch;

/// <summary>
/// The hard limits every schedule obeys, applied after a policy decides: counts within the fleet, the miner
/// fleet's ramp limits, and the interconnect limit beside the firm AI load (AI load is never curtailed; miners
/// give way, least efficient first), and demand response (no miner runs during a declared grid emergency). The
/// interconnect and emergencies outrank the ramp-down limit: when AI load rises, miners stop at once.
/// </summary>
public static class DispatchLimits
{
    /// <summary>
    /// Clamps <paramref name="running"/> for interval <paramref name="t"/> in place, given the previous interval's
    /// <paramref name="previous"/> counts.
    /// </summary>
    public static void Enforce(SiteProblem p, int t, ReadOnlySpan<int> previous, Span<int> running)
    {
        MinerGroup[] groups = p.Groups;
        if (p.Emergency[t])
        {
            // Demand response: during a declared grid emergency every miner stops (it outranks every other rule).
            running.Clear();
            return;
        }
        double prevKw = 0, kw = 0;
        for (int g = 0; g < groups.Length; g++)
        {
            running[g] = Math.Clamp(running[g], 0, groups[g].Count);
            double each = groups[g].WattsEach;
            prevKw += previous[g] * each;
            kw += running[g] * each;
        }
        prevKw /= 1000.0;
        kw /= 1000.0;
        if (kw <= prevKw + p.RampUpKwPerInterval && prevKw - kw <= p.RampDownKwPerInterval && kw <= p.MinerHeadroomKw(t)) return;

        // Ramp up: trim the increase, least efficient group first.
        if (kw - prevKw > p.RampUpKwPerInterval)
            kw = TrimDown(groups, running, previous, kw, prevKw + p.RampUpKwPerInterval, keepPrevious: true);

        // Ramp down: keep enough running (most efficient first) to respect the limit.
        if (prevKw - kw > p.RampDownKwPerInterval)
        {
            double need = prevKw - p.RampDownKwPerInterval;
            for (int g = 0; g < groups.Length && kw < need - 1e-9; g++)
            {
                int add = Math.Min(previous[g] - running[g], (int)Math.Ceiling((need - kw) * 1000.0 / groups[g].WattsEach));
                if (add <= 0) continue;
                running[g] += add;
                kw += add * groups[g].WattsEach / 1000.0;
            }
        }

        // Interconnect: facility load = PUE × (AI + miners) ≤ limit. Outranks the ramp-down limit.
        double headroom = p.MinerHeadroomKw(t);
        if (kw > headroom) TrimDown(groups, running, previous, kw, headroom, keepPrevious: false);
    }

    /// <summary>The miner fleet's IT power (kW) for the given counts.</summary>
    public static double MinerKw(MinerGroup[] groups, ReadOnlySpan<int> running)
    {
        double kw = 0;
        for (int g = 0; g < groups.Length; g++) kw += running[g] * groups[g].WattsEach / 1000.0;
        return kw;
    }

    // Removes miners, least efficient group first, until kw ≤ target. With keepPrevious, a group is not trimmed
    // below its previous count (only the increase is undone), so a ramp-up trim never turns off running miners.
    private static double TrimDown(MinerGroup[] groups, Span<int> running, ReadOnlySpan<int> previous, double kw, double target, bool keepPrevious)
    {
        for (int g = groups.Length - 1; g >= 0 && kw > target + 1e-9; g--)
        {
            int floor = keepPrevious ? Math.Min(previous[g], running[g]) : 0;
            int removable = running[g] - floor;
            if (removable <= 0) continue;
            int remove = Math.Min(removable, (int)Math.Ceiling((kw - target) * 1000.0 / groups[g].WattsEach - 1e-9));
            running[g] -= remove;
            kw -= remove * groups[g].WattsEach / 1000.0;
        }
        return kw;
    }
}
