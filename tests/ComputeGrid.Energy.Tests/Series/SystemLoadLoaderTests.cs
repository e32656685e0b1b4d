using ComputeGrid.Energy.Series;

namespace ComputeGrid.Energy.Tests.Series;

public class SystemLoadLoaderTests
{
    private const string Header = "Hour Ending,COAST,ERCOT";

    private static DateTime Utc(int y, int mo, int d, int h = 0) => new(y, mo, d, h, 0, 0, DateTimeKind.Utc);

    [Fact]
    public void Ercot2021_IsAFullYearOfHours()
    {
        IntervalSeries s = SystemLoadLoader.LoadErcotNativeLoadHourly(EnergyData.ErcotNativeLoad2021);

        Assert.Equal(8_760, s.Count);
        Assert.Equal(TimeSpan.FromHours(1), s.Step);
        Assert.Equal("MW", s.Unit);
        Assert.Equal(Utc(2021, 1, 1, 6), s.StartUtc); // HE 01:00 CST on 01/01 = 00:00–01:00 local
        Assert.Equal(Utc(2022, 1, 1, 6), s.EndUtc);
        Assert.Equal(1, s.Repairs.CountOf(RepairKind.DstRepeatedHour));
        Assert.Equal(1, s.Repairs.CountOf(RepairKind.DstSkippedHour));
        Assert.Equal(8_760, s.Repairs.CountOf(RepairKind.ThousandsSeparator)); // every system total is ≥ 1,000 MW
        Assert.Equal(0, s.Repairs.CountOf(RepairKind.GapFilled));
        Assert.Equal(0, s.Repairs.CountOf(RepairKind.DuplicateDropped));
        Assert.Equal(43_719.85, s.Values[0]);
        Assert.Equal(39_270.59, s.Values[^1]);
        Assert.Equal(27_800.15, s.Values.Min());
        Assert.InRange(s.Values.Sum() / 1e6, 392.6, 392.8); // ≈ 392.7 TWh
    }

    [Fact]
    public void Ercot2021_PeakHourLandsOnItsUtcHour()
    {
        IntervalSeries s = SystemLoadLoader.LoadErcotNativeLoadHourly(EnergyData.ErcotNativeLoad2021);

        // 08/24/2021 HE 17:00 CDT = 16:00–17:00 local = 21:00–22:00 UTC.
        int peak = s.IndexOf(Utc(2021, 8, 24, 21));
        Assert.Equal(73_650.57, s.Values[peak]);
        Assert.Equal(73_650.57, s.Values.Max());
        Assert.Equal(peak, Array.IndexOf(s.Values, s.Values.Max()));
    }

    [Fact]
    public void Ercot2021_DstHoursMapToConsecutiveUtcHours()
    {
        IntervalSeries s = SystemLoadLoader.LoadErcotNativeLoadHourly(EnergyData.ErcotNativeLoad2021);

        // Fall back: 02:00 (CDT) at 06:00 UTC, 02:00 DST (CST) at 07:00, 03:00 (CST) at 08:00.
        Assert.Equal(33_049.82, s.Values[s.IndexOf(Utc(2021, 11, 7, 6))]);
        Assert.Equal(32_661.76, s.Values[s.IndexOf(Utc(2021, 11, 7, 7))]);
        Assert.Equal(32_503.67, s.Values[s.IndexOf(Utc(2021, 11, 7, 8))]);
        // Spring forward: 02:00 (CST) at 07:00 UTC, then 04:00 (CDT) at 08:00 UTC.
        Assert.Equal(32_296.90, s.Values[s.IndexOf(Utc(2021, 3, 14, 7))]);
        Assert.Equal(31_390.58, s.Values[s.IndexOf(Utc(2021, 3, 14, 8))]);
    }

    [Fact]
    public void Ercot2021_FileTimestampsAreStrictlyIncreasingHoursInUtc()
    {
        DateTime[] starts = File.ReadLines(EnergyData.ErcotNativeLoad2021)
            .Skip(1)
            .Where(l => l.Length > 0)
            .Select(l => SystemLoadLoader.HourEndingToUtcStart(l[..l.IndexOf(',')]))
            .ToArray();

        Assert.Equal(8_760, starts.Length);
        for (int i = 1; i < starts.Length; i++)
            Assert.Equal(TimeSpan.FromHours(1), starts[i] - starts[i - 1]);
        Assert.All(starts, t => Assert.Equal(DateTimeKind.Utc, t.Kind));
    }

    [Theory]
    [InlineData("01/01/2021 01:00", "2021-01-01T06:00")]
    [InlineData("01/01/2021 24:00", "2021-01-02T05:00")]
    [InlineData("03/14/2021 02:00", "2021-03-14T07:00")]
    [InlineData("03/14/2021 04:00", "2021-03-14T08:00")]
    [InlineData("08/24/2021 17:00", "2021-08-24T21:00")]
    [InlineData("11/07/2021 01:00", "2021-11-07T05:00")]
    [InlineData("11/07/2021 02:00", "2021-11-07T06:00")]
    [InlineData("11/07/2021 02:00 DST", "2021-11-07T07:00")]
    [InlineData("11/07/2021 03:00", "2021-11-07T08:00")]
    [InlineData("03/10/2024 04:00", "2024-03-10T08:00")]
    public void HourEnding_ConvertsToTheUtcStartOfTheHour(string hourEnding, string expectedUtc)
    {
        DateTime expected = DateTime.SpecifyKind(DateTime.Parse(expectedUtc, System.Globalization.CultureInfo.InvariantCulture), DateTimeKind.Utc);
        Assert.Equal(expected, SystemLoadLoader.HourEndingToUtcStart(hourEnding));
    }

    [Theory]
    [InlineData("03/14/2021 03:00")] // skipped in spring
    [InlineData("11/08/2021 02:00 DST")] // not the repeated hour
    [InlineData("13/01/2021 01:00")]
    [InlineData("01/01/2021 25:00")]
    [InlineData("01/01/2021 01:30")]
    [InlineData("2021-01-01 01:00")]
    public void HourEnding_RejectsImpossibleLabels(string hourEnding)
    {
        Assert.Throws<FormatException>(() => SystemLoadLoader.HourEndingToUtcStart(hourEnding));
    }

    [Fact]
    public void CentralTime_FollowsTheUsRule()
    {
        Assert.Equal(new DateTime(2021, 3, 14, 2, 0, 0), CentralTime.DaylightStartLocal(2021));
        Assert.Equal(new DateTime(2021, 11, 7, 2, 0, 0), CentralTime.DaylightEndLocal(2021));
        Assert.Equal(new DateTime(2024, 3, 10, 2, 0, 0), CentralTime.DaylightStartLocal(2024));
        Assert.Equal(new DateTime(2024, 11, 3, 2, 0, 0), CentralTime.DaylightEndLocal(2024));
        Assert.Equal(Utc(2021, 3, 14, 8), CentralTime.DaylightStartUtc(2021));
        Assert.Equal(Utc(2021, 11, 7, 7), CentralTime.DaylightEndUtc(2021));
        Assert.Equal(Utc(2021, 7, 1, 17), CentralTime.ToUtc(new DateTime(2021, 7, 1, 12, 0, 0)));
        Assert.Equal(Utc(2021, 12, 1, 18), CentralTime.ToUtc(new DateTime(2021, 12, 1, 12, 0, 0)));
        Assert.Throws<ArgumentOutOfRangeException>(() => CentralTime.ToUtc(new DateTime(2006, 7, 1)));
    }

    [Fact]
    public void ThousandsSeparators_AreParsedAndCounted_BadGroupingIsRejected()
    {
        using var ok = new TempCsv(Header,
            "01/01/2021 01:00,\"11,047.02\",\"43,719.85\"",
            "01/01/2021 02:00,838.35,999.5",
            "01/01/2021 03:00,1,\"1,234,567.25\"");
        IntervalSeries s = SystemLoadLoader.LoadErcotNativeLoadHourly(ok.Path);
        Assert.Equal([43_719.85, 999.5, 1_234_567.25], s.Values);
        Assert.Equal(2, s.Repairs.CountOf(RepairKind.ThousandsSeparator));
        Assert.Equal(0, s.Repairs.CountOf(RepairKind.DstSkippedHour));

        IntervalSeries coast = SystemLoadLoader.LoadErcotNativeLoadHourly(ok.Path, "COAST");
        Assert.Equal([11_047.02, 838.35, 1.0], coast.Values);

        using var bad = new TempCsv(Header, "01/01/2021 01:00,1,\"43,71.85\"");
        var e = Assert.Throws<SeriesFormatException>(() => SystemLoadLoader.LoadErcotNativeLoadHourly(bad.Path));
        Assert.Equal(2, e.LineNumber);
        Assert.Contains("'ERCOT' is not a number: '43,71.85'", e.Message);

        foreach (string badGrouping in new[] { "1,2345", "1234,567", ",123", "1,234.5,6", "1,,234" })
        {
            using var f = new TempCsv(Header, $"01/01/2021 01:00,1,\"{badGrouping}\"");
            Assert.Throws<SeriesFormatException>(() => SystemLoadLoader.LoadErcotNativeLoadHourly(f.Path));
        }
    }

    [Fact]
    public void NonexistentHour_InTheFile_NamesTheLine()
    {
        using var f = new TempCsv(Header, "03/14/2021 02:00,1,2", "03/14/2021 03:00,1,2");
        var e = Assert.Throws<SeriesFormatException>(() => SystemLoadLoader.LoadErcotNativeLoadHourly(f.Path));
        Assert.Equal(3, e.LineNumber);
        Assert.Contains("does not exist", e.Message);
    }

    [Fact]
    public void DuplicateHour_IsDropped_AndMissingHour_IsFilled()
    {
        using var f = new TempCsv(Header,
            "11/07/2021 01:00,1,100",
            "11/07/2021 02:00,1,200",
            "11/07/2021 02:00,1,250",
            "11/07/2021 02:00 DST,1,300",
            "11/07/2021 05:00,1,500");

        IntervalSeries s = SystemLoadLoader.LoadErcotNativeLoadHourly(f.Path);

        Assert.Equal(Utc(2021, 11, 7, 5), s.StartUtc);
        Assert.Equal([100.0, 200.0, 300.0, 300.0, 300.0, 500.0], s.Values); // 03:00 and 04:00 CST missing
        Assert.Equal(1, s.Repairs.CountOf(RepairKind.DuplicateDropped));
        Assert.Equal(2, s.Repairs.CountOf(RepairKind.GapFilled));
        Assert.Equal(1, s.Repairs.CountOf(RepairKind.DstRepeatedHour));
    }

    [Fact]
    public void MissingColumn_IsReported()
    {
        var e = Assert.Throws<SeriesFormatException>(() => SystemLoadLoader.LoadErcotNativeLoadHourly(EnergyData.ErcotNativeLoad2021, "MARS"));
        Assert.Equal(1, e.LineNumber);
        Assert.Contains("no column 'MARS'", e.Message);
    }
}
