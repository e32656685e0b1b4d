using ComputeGrid.Energy.Sites;

namespace ComputeGrid.Energy.Tests.Dispatch;

/// <summary>
/// A backtest's seeded inputs are functions of absolute time: the AI leases of a week are the leases of the same week
/// inside a longer run (before, the schedule restarted at <c>--from</c>: a week run leased a constant 14,398 GPUs where
/// the year run leased 10,843–17,340 over the same dates).
/// </summary>
public class SubPeriodTests
{
    [Theory]
    [InlineData(7)]
    [InlineData(1234)]
    public void The_leases_of_a_week_are_those_of_the_same_week_inside_a_longer_run(int seed)
    {
        DateTime from = new(2021, 8, 23, 5, 0, 0, DateTimeKind.Utc);
        BuiltSite week = ReferenceSite.Week(from, days: 7, leaseSeed: seed);
        BuiltSite longer = ReferenceSite.Week(from.AddDays(-40), days: 60, leaseSeed: seed);
        int offset = (int)((from - longer.Problem.StartUtc) / TimeSpan.FromMinutes(15));
        Assert.Equal(from, week.Problem.StartUtc);
        Assert.Equal(longer.LeasedGpus.AsSpan(offset, week.Problem.Count).ToArray(), week.LeasedGpus);
        Assert.Equal(longer.Problem.AiRevenueUsd.AsSpan(offset, week.Problem.Count).ToArray(), week.Problem.AiRevenueUsd);
        Assert.Equal(longer.Problem.AiItKw.AsSpan(offset, week.Problem.Count).ToArray(), week.Problem.AiItKw);
        // The schedule does step within the longer run (leases are not one constant level).
        Assert.True(longer.LeasedGpus.Distinct().Count() > 1);
    }

    [Fact]
    public void A_month_s_peak_hour_is_the_month_s_whatever_the_period()
    {
        // The August 2021 4CP peak (24 August, 21:00 UTC) is taken from the whole month: the week that holds it charges it
        // on the same intervals as a longer run, and a week without it has no peak hour (before, each period took the
        // highest hour inside itself as "the month's peak").
        DateTime peakWeek = new(2021, 8, 23, 5, 0, 0, DateTimeKind.Utc);
        BuiltSite longer = ReferenceSite.Week(peakWeek.AddDays(-20), days: 40);
        BuiltSite holding = ReferenceSite.Week(peakWeek);
        BuiltSite without = ReferenceSite.Week(new DateTime(2021, 8, 2, 5, 0, 0, DateTimeKind.Utc));
        DateTime peak = Assert.Single(holding.PeakHoursUtc);
        Assert.Contains(peak, longer.PeakHoursUtc);
        int offset = (int)((peakWeek - longer.Problem.StartUtc) / TimeSpan.FromMinutes(15));
        Assert.Equal(longer.Problem.PeakChargeUsdPerKw.AsSpan(offset, holding.Problem.Count).ToArray(), holding.Problem.PeakChargeUsdPerKw);
        Assert.Empty(without.PeakHoursUtc);
        Assert.All(without.Problem.PeakChargeUsdPerKw, w => Assert.Equal(0.0, w));
    }

    [Fact]
    public void A_seeded_schedule_before_its_epoch_is_refused()
    {
        GpuFleetConfig g = ReferenceSite.Config.Gpus[0];
        var e = Assert.Throws<SiteConfigException>(() => SiteProblemBuilder.LeaseSchedule(g, new DateTime(1999, 12, 31, 0, 0, 0, DateTimeKind.Utc), 96, 96));
        Assert.Contains("2000-01-01", e.Message);
    }
}
