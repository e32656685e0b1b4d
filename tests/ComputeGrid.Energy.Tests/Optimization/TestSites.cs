using ComputeGrid.Energy.Dispatch;

namespace ComputeGrid.Energy.Tests.Optimization;

/// <summary>Small hand-built site problems and schedule helpers for the optimizer tests.</summary>
internal static class TestSites
{
    public static readonly DateTime July = new(2021, 7, 1, 5, 0, 0, DateTimeKind.Utc); // local midnight, UTC−5

    /// <summary>
    /// A random site: 2 groups (40 × 3.5 kW / 200 TH/s, 60 × 3.05 kW / 104 TH/s, 323 kW of miners), interconnect
    /// 400 kW at PUE 1.1, AI load stepping within [50, 300] kW by up to <paramref name="aiStepKw"/>, prices with
    /// negative hours and spikes, a few peak-charge hours, finite ramps.
    /// </summary>
    public static SiteProblem Random(int n, int seed, double rampUpKw = 60, double rampDownKw = 90, double aiStepKw = 80,
        int[]? initial = null, bool emergencies = false, bool peakCharge = true)
    {
        var rng = new Random(seed);
        var price = new double[n];
        var hashprice = new double[n];
        var known = new double[n];
        var ai = new double[n];
        var aiRevenue = new double[n];
        var load = new double[n];
        var peak = new double[n];
        var emergency = new bool[n];
        var offsets = new sbyte[n];
        double hp = 0.04 + 0.02 * rng.NextDouble(), aiKw = 150, noise = 0;
        int nextStep = 10 + rng.Next(40);
        for (int t = 0; t < n; t++)
        {
            if (t % 96 == 0 && t > 0) hp = Math.Clamp(hp * (0.9 + 0.2 * rng.NextDouble()), 0.02, 0.08);
            hashprice[t] = hp;
            known[t] = t < 96 ? hp : hashprice[t - 96];
            double hour = t % 96 / 4.0;
            noise = 0.7 * noise + 10 * (rng.NextDouble() - 0.5);
            double p = 35 + 20 * Math.Sin((hour - 10) / 24 * 2 * Math.PI) + noise;
            double u = rng.NextDouble();
            if (u < 0.06) p = -60 * rng.NextDouble();
            else if (u < 0.08) p = 200 + 2_800 * rng.NextDouble();
            price[t] = Math.Round(p, 2);
            if (t == nextStep)
            {
                aiKw = Math.Clamp(aiKw + aiStepKw * (2 * rng.NextDouble() - 1), 50, 300);
                nextStep = t + 5 + rng.Next(60);
            }
            ai[t] = Math.Round(aiKw, 1);
            aiRevenue[t] = ai[t] * 0.5 * 0.25;
            load[t] = 60_000 + 15_000 * Math.Exp(-Math.Pow((hour - 17) / 3, 2)) + 2_000 * rng.NextDouble();
            offsets[t] = -5;
            emergency[t] = emergencies && t % 200 >= 150 && t % 200 < 154;
        }
        // Hourly system load: one value per hour.
        for (int t = 0; t < n; t++) load[t] = load[t - t % 4];
        // Peak charge: a few random whole hours.
        for (int k = 0; peakCharge && k < Math.Max(1, n / 400); k++)
        {
            int h = rng.Next(Math.Max(1, n / 4)) * 4;
            for (int i = h; i < Math.Min(n, h + 4); i++) peak[i] = 15.0 / 4;
        }
        return new SiteProblem
        {
            Name = $"random-{seed}",
            StartUtc = July,
            IntervalMinutes = 15,
            PriceUsdPerMwh = price,
            HashpriceUsdPerThDay = hashprice,
            KnownHashpriceUsdPerThDay = known,
            AiItKw = ai,
            AiRevenueUsd = aiRevenue,
            SystemLoadMw = load,
            Emergency = emergency,
            PeakChargeUsdPerKw = peak,
            PeakChargeMonths = peakCharge ? [6, 7, 8, 9] : [],
            PeakChargeUsdPerKwYear = peakCharge ? 60 : 0,
            LocalUtcOffsetHours = offsets,
            InterconnectKw = 400,
            Pue = 1.1,
            Groups = [new MinerGroup("S21", 40, 3_500, 200), new MinerGroup("S19j Pro", 60, 3_050, 104)],
            RampUpKwPerInterval = rampUpKw,
            RampDownKwPerInterval = rampDownKw,
            RestartMinutes = 5,
            RestartWearUsd = 0.02,
            PoolFeeFraction = 0.02,
            InitialRunning = initial ?? [20, 30],
        };
    }

    /// <summary>A one-group problem with the given per-interval series (PUE 1, no AI revenue, no peak charge unless given).</summary>
    public static SiteProblem OneGroup(double[] price, double[] aiKw, int count, double wattsEach, double terahashEach,
        double hashprice, double interconnectKw, double rampUpKw, double rampDownKw, int initial,
        double restartMinutes = 5, double wearUsd = 0.01, double[]? peak = null)
    {
        int n = price.Length;
        return new SiteProblem
        {
            Name = "one-group",
            StartUtc = July,
            IntervalMinutes = 15,
            PriceUsdPerMwh = price,
            HashpriceUsdPerThDay = Enumerable.Repeat(hashprice, n).ToArray(),
            KnownHashpriceUsdPerThDay = Enumerable.Repeat(hashprice, n).ToArray(),
            AiItKw = aiKw,
            AiRevenueUsd = new double[n],
            SystemLoadMw = Enumerable.Repeat(double.NaN, n).ToArray(),
            Emergency = new bool[n],
            PeakChargeUsdPerKw = peak ?? new double[n],
            PeakChargeMonths = [],
            PeakChargeUsdPerKwYear = 0,
            LocalUtcOffsetHours = new sbyte[n],
            InterconnectKw = interconnectKw,
            Pue = 1.0,
            Groups = [new MinerGroup("M", count, wattsEach, terahashEach)],
            RampUpKwPerInterval = rampUpKw,
            RampDownKwPerInterval = rampDownKw,
            RestartMinutes = restartMinutes,
            RestartWearUsd = wearUsd,
            PoolFeeFraction = 0,
            InitialRunning = [initial],
        };
    }

    /// <summary>Runs a per-interval rule through <see cref="DispatchLimits.Enforce"/>, returning the schedule as <c>[group][t]</c>.</summary>
    public static double[][] Run(SiteProblem p, Action<int, int[], int[]> request)
    {
        int G = p.Groups.Length;
        var schedule = new double[G][];
        for (int g = 0; g < G; g++) schedule[g] = new double[p.Count];
        int[] previous = (int[])p.InitialRunning.Clone();
        var running = new int[G];
        for (int t = 0; t < p.Count; t++)
        {
            request(t, previous, running);
            DispatchLimits.Enforce(p, t, previous, running);
            for (int g = 0; g < G; g++) schedule[g][t] = running[g];
            Array.Copy(running, previous, G);
        }
        return schedule;
    }

    /// <summary>Runs a policy the way a backtest does: a view per interval, the decision, then the limits.</summary>
    public static double[][] Run(SiteProblem p, IDispatchPolicy policy)
    {
        policy.Reset(p);
        int G = p.Groups.Length;
        var schedule = new double[G][];
        for (int g = 0; g < G; g++) schedule[g] = new double[p.Count];
        int[] previous = (int[])p.InitialRunning.Clone();
        var running = new int[G];
        for (int t = 0; t < p.Count; t++)
        {
            var view = new RealTimeView(p, t, previous);
            policy.Decide(view, running);
            DispatchLimits.Enforce(p, t, previous, running);
            for (int g = 0; g < G; g++) schedule[g][t] = running[g];
            Array.Copy(running, previous, G);
        }
        return schedule;
    }

    /// <summary>The miner IT kW of each interval of a schedule.</summary>
    public static double[] MinerKw(SiteProblem p, double[][] schedule)
    {
        var kw = new double[p.Count];
        for (int g = 0; g < p.Groups.Length; g++)
            for (int t = 0; t < p.Count; t++) kw[t] += schedule[g][t] * p.Groups[g].WattsEach / 1000.0;
        return kw;
    }

    /// <summary>The accounting rounds five amounts per interval to the micro-dollar: the most a double-precision sum can differ by.</summary>
    public static double Rounding(SiteProblem p) => 2.5e-6 * p.Count + 1e-9;

    /// <summary>The gross amounts of a value (USD), the scale of a relative comparison.</summary>
    public static double Gross(SiteValue v) =>
        (Math.Abs((double)v.AiRevenueMicroUsd) + Math.Abs((double)v.MiningRevenueMicroUsd) + Math.Abs((double)v.EnergyCostMicroUsd)
         + Math.Abs((double)v.PeakChargeMicroUsd) + Math.Abs((double)v.RestartWearMicroUsd)) / 1e6;

    /// <summary>
    /// Ramp violations as <see cref="DispatchLimits"/> rules them (continuous schedules): a rise above the ramp-up
    /// limit, or a drop beyond the ramp-down limit that is neither at the interconnect limit nor into an emergency.
    /// </summary>
    public static int UnexcusedRampViolations(SiteProblem p, double[][] schedule)
    {
        double[] kw = MinerKw(p, schedule);
        double previous = p.InitialRunning.Select((c, g) => c * p.Groups[g].WattsEach / 1000.0).Sum();
        int violations = 0;
        for (int t = 0; t < p.Count; t++)
        {
            double ramp = kw[t] - previous;
            if (ramp > p.RampUpKwPerInterval + 1e-6) violations++;
            if (-ramp > p.RampDownKwPerInterval + 1e-6 && !p.Emergency[t] && kw[t] < p.MinerHeadroomKw(t) - 1e-6) violations++;
            previous = kw[t];
        }
        return violations;
    }

    /// <summary>Intervals where an emergency stopped miners faster than the ramp-down limit allows.</summary>
    public static int EmergencyStops(SiteProblem p, double[][] schedule)
    {
        double[] kw = MinerKw(p, schedule);
        double previous = p.InitialRunning.Select((c, g) => c * p.Groups[g].WattsEach / 1000.0).Sum();
        int stops = 0;
        for (int t = 0; t < p.Count; t++)
        {
            if (p.Emergency[t] && previous - kw[t] > p.RampDownKwPerInterval + 1e-6) stops++;
            previous = kw[t];
        }
        return stops;
    }
}
