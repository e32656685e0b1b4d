using ComputeGrid.Energy.Dispatch;

namespace ComputeGrid.Energy.Optimization;

/// <summary>
/// A synthetic site with the shape of the reference site (ERCOT-like 15-minute prices with negative hours and
/// scarcity spikes, a 4CP summer peak charge, two miner models beside stepping AI load, finite ramp limits), for
/// timing the optimizer at full scale without the data files. Deterministic for a seed.
/// </summary>
public static class OptimizerSmoke
{
    /// <summary>
    /// Builds the synthetic problem of <paramref name="intervals"/> 15-minute intervals (35,040 = a year) from
    /// <paramref name="seed"/> and solves it with the default options; the result carries the build and solve times.
    /// </summary>
    public static OptimizerResult RunYear(int intervals, int seed) => RunYear(intervals, seed, null);

    /// <summary>As <see cref="RunYear(int, int)"/>, with explicit options (e.g. another solver).</summary>
    public static OptimizerResult RunYear(int intervals, int seed, OptimizerOptions? options) =>
        PerfectForesightOptimizer.Solve(Build(intervals, seed), options);

    /// <summary>
    /// The synthetic problem: <paramref name="intervals"/> 15-minute intervals from 2021-01-01 00:00 Central time;
    /// interconnect 50 MW, PUE 1.1; 4,000 × 3.5 kW / 200 TH/s and 6,000 × 3.05 kW / 104 TH/s miners; AI load
    /// 8–16 MW IT in weekly steps; ramps +4 MW / −8 MW per interval; 5-minute restarts, 0.05 USD wear, 2 % pool fee.
    /// </summary>
    public static SiteProblem Build(int intervals, int seed)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(intervals);
        var rng = new Random(seed);
        const int minutes = 15, perHour = 4, perDay = 96;
        DateTime start = new(2021, 1, 1, 6, 0, 0, DateTimeKind.Utc);
        int days = (intervals + perDay - 1) / perDay;

        var offsets = new sbyte[intervals];
        for (int t = 0; t < intervals; t++) offsets[t] = CentralOffset(start.AddMinutes((double)t * minutes));

        // Daily hashprice: a random walk around 0.25 USD per TH/s per day; the controller knows yesterday's.
        var hpDay = new double[days + 2];
        hpDay[0] = 0.25;
        for (int d = 1; d < hpDay.Length; d++) hpDay[d] = Math.Clamp(hpDay[d - 1] * Math.Exp(0.03 * Gauss(rng)), 0.1, 0.6);
        var hashprice = new double[intervals];
        var knownHashprice = new double[intervals];
        for (int t = 0; t < intervals; t++)
        {
            int utcDay = (int)(start.AddMinutes((double)t * minutes).Date - start.Date).TotalDays;
            hashprice[t] = hpDay[utcDay + 1];
            knownHashprice[t] = hpDay[utcDay];
        }

        // System load (hourly, MW): seasonal and daily shape with weather noise; prices follow it.
        var load = new double[intervals];
        var price = new double[intervals];
        double ar = 0, weather = 0;
        for (int t = 0; t < intervals; t++)
        {
            DateTime local = start.AddMinutes((double)t * minutes).AddHours(offsets[t]);
            double hourOfDay = local.Hour + local.Minute / 60.0;
            double summer = Math.Max(0, Math.Cos((local.DayOfYear - 200) / 365.0 * 2 * Math.PI));
            if (t % perDay == 0) weather = 0.8 * weather + 0.2 * Gauss(rng);
            if (t % perHour == 0 || t == 0)
            {
                double daily = Math.Exp(-Math.Pow((hourOfDay - 17) / 4.0, 2));
                load[t] = 42_000 + 18_000 * summer + (8_000 + 12_000 * summer) * daily + 3_000 * weather + 500 * Gauss(rng);
            }
            else load[t] = load[t - 1];

            ar = 0.9 * ar + Gauss(rng) * 6;
            double p = 18 + 25 * (load[t] - 40_000) / 40_000 + ar;
            if (hourOfDay < 6 && rng.NextDouble() < 0.15) p = -5 - 30 * rng.NextDouble();           // windy nights
            if (rng.NextDouble() < 0.004) p = 300 + 4_700 * Math.Pow(rng.NextDouble(), 3);        // scarcity spikes
            price[t] = Math.Round(p, 2);
        }

        // AI load: weekly steps between 8 and 16 MW of IT; revenue 2.5 USD per kWh served.
        var ai = new double[intervals];
        var aiRevenue = new double[intervals];
        double aiKw = 12_000;
        for (int t = 0; t < intervals; t++)
        {
            if (t % (7 * perDay) == 0 && t > 0) aiKw = Math.Clamp(aiKw + 2_000 * Math.Round(2 * Gauss(rng)), 8_000, 16_000);
            ai[t] = aiKw;
            aiRevenue[t] = aiKw * 2.5 * minutes / 60.0;
        }

        // 4CP: June–September, the hour of each month's highest system load; 60 USD per kW-year.
        int[] peakMonths = [6, 7, 8, 9];
        const double peakPerKwYear = 60;
        var peak = new double[intervals];
        foreach (int month in peakMonths)
        {
            int best = -1;
            for (int t = 0; t < intervals; t += perHour)
            {
                DateTime local = start.AddMinutes((double)t * minutes).AddHours(offsets[t]);
                if (local.Month == month && (best < 0 || load[t] > load[best])) best = t;
            }
            for (int k = 0; best >= 0 && k < perHour && best + k < intervals; k++)
                peak[best + k] = peakPerKwYear / peakMonths.Length / perHour;
        }

        var emergency = new bool[intervals];
        for (int t = 0; t < intervals; t++) emergency[t] = price[t] > 3_000;

        return new SiteProblem
        {
            Name = $"synthetic-{seed}",
            StartUtc = start,
            IntervalMinutes = minutes,
            PriceUsdPerMwh = price,
            HashpriceUsdPerThDay = hashprice,
            KnownHashpriceUsdPerThDay = knownHashprice,
            AiItKw = ai,
            AiRevenueUsd = aiRevenue,
            SystemLoadMw = load,
            Emergency = emergency,
            PeakChargeUsdPerKw = peak,
            PeakChargeMonths = peakMonths,
            PeakChargeUsdPerKwYear = peakPerKwYear,
            LocalUtcOffsetHours = offsets,
            InterconnectKw = 50_000,
            Pue = 1.1,
            Groups =
            [
                new MinerGroup("Antminer S21", 4_000, 3_500, 200),
                new MinerGroup("Antminer S19j Pro", 6_000, 3_050, 104),
            ],
            RampUpKwPerInterval = 4_000,
            RampDownKwPerInterval = 8_000,
            RestartMinutes = 5,
            RestartWearUsd = 0.05,
            PoolFeeFraction = 0.02,
            InitialRunning = [4_000, 6_000],
        };
    }

    // US Central: UTC−5 from the second Sunday of March 08:00 UTC to the first Sunday of November 07:00 UTC, else UTC−6.
    private static sbyte CentralOffset(DateTime utc)
    {
        DateTime march = new(utc.Year, 3, 8, 8, 0, 0, DateTimeKind.Utc);
        while (march.DayOfWeek != DayOfWeek.Sunday) march = march.AddDays(1);
        DateTime november = new(utc.Year, 11, 1, 7, 0, 0, DateTimeKind.Utc);
        while (november.DayOfWeek != DayOfWeek.Sunday) november = november.AddDays(1);
        return (sbyte)(utc >= march && utc < november ? -5 : -6);
    }

    private static double Gauss(Random rng)
    {
        double u1 = 1.0 - rng.NextDouble(), u2 = rng.NextDouble();
        return Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
    }
}
