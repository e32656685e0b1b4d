using System.Diagnostics;
using ComputeGrid.Energy.Series;

namespace ComputeGrid.Energy.Tests.Series;

public class PriceSeriesLoaderTests
{
    private const string EiaHeader =
        "UTC Timestamp (Interval Ending),Local Timestamp Central Time (Interval Beginning),Local Timestamp Central Time (Interval Ending),Local Date,Hour Number,West LMP";

    private static DateTime Utc(int y, int mo, int d, int h = 0, int mi = 0) => new(y, mo, d, h, mi, 0, DateTimeKind.Utc);

    private static string EiaRow(string utcEnding, string value) => $"{utcEnding},x,x,x,1,{value}";

    [Fact]
    public void ErcotWest2021_IsAFullYearWithTheDocumentedGapsAndNegatives()
    {
        IntervalSeries s = PriceSeriesLoader.LoadEia15Min(EnergyData.ErcotPrices2021, "West LMP");

        Assert.Equal(35_040, s.Count);
        Assert.Equal(Utc(2021, 1, 1, 6), s.StartUtc);
        Assert.Equal(Utc(2022, 1, 1, 6), s.EndUtc);
        Assert.Equal(TimeSpan.FromMinutes(15), s.Step);
        Assert.Equal("USD/MWh", s.Unit);
        Assert.Equal(57, s.Repairs.CountOf(RepairKind.GapFilled));
        Assert.Contains("in 17 gaps", s.Repairs.ToString());
        Assert.Contains("2021-01-16 20:00 UTC ×1", s.Repairs.ToString());
        Assert.Equal(3_255, s.Repairs.CountOf(RepairKind.NegativeKept));
        Assert.Equal(0, s.Repairs.CountOf(RepairKind.DuplicateDropped));
        Assert.Equal(0, s.Repairs.CountOf(RepairKind.OutsidePeriod));
        Assert.All(s.Values, v => Assert.True(double.IsFinite(v)));
    }

    [Fact]
    public void ErcotWest2021_PeaksAt9310_49DuringUri()
    {
        IntervalSeries s = PriceSeriesLoader.LoadEia15Min(EnergyData.ErcotPrices2021, "West LMP");

        double max = s.Values.Max();
        int at = Array.IndexOf(s.Values, max);
        Assert.Equal(9_310.49, max);
        DateTime start = s.StartUtc + s.Step * at;
        Assert.Equal(new DateOnly(2021, 2, 17), DateOnly.FromDateTime(start));
        Assert.Equal(Utc(2021, 2, 17, 10, 30), start); // interval ending 10:45 UTC = 04:45 CST, HE5 interval 3
        Assert.Equal(-31.66, s.Values.Min());
    }

    [Fact]
    public void ErcotWest2021_GapCarriesTheLastValueForward()
    {
        IntervalSeries s = PriceSeriesLoader.LoadEia15Min(EnergyData.ErcotPrices2021, "West LMP");

        // The row ending 2021-01-16 20:00 UTC is present; the one ending 20:15 is missing.
        int missing = s.IndexOf(Utc(2021, 1, 16, 20));
        Assert.Equal(s.Values[missing - 1], s.Values[missing]);
        // Four intervals missing after the row ending 2021-02-15 12:00 UTC.
        int first = s.IndexOf(Utc(2021, 2, 15, 12));
        for (int k = 0; k < 4; k++) Assert.Equal(s.Values[first - 1], s.Values[first + k]);
    }

    [Fact]
    public void ErcotYear_LoadsWellUnderASecond()
    {
        PriceSeriesLoader.LoadEia15Min(EnergyData.ErcotPrices2021, "West LMP"); // warm up the JIT
        var watch = Stopwatch.StartNew();
        PriceSeriesLoader.LoadEia15Min(EnergyData.ErcotPrices2021, "West LMP");
        watch.Stop();
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(1), $"took {watch.Elapsed.TotalMilliseconds:F0} ms");
    }

    [Fact]
    public void ErcotWest_RequestedPeriodIsCutAndOutsideRowsReported()
    {
        IntervalSeries s = PriceSeriesLoader.LoadEia15Min(EnergyData.ErcotPrices2021, "West LMP", Utc(2021, 2, 1), Utc(2021, 3, 1));

        Assert.Equal(28 * 96, s.Count);
        Assert.Equal(Utc(2021, 2, 1), s.StartUtc);
        Assert.Equal(9_310.49, s.Values.Max());
        Assert.Equal(34_983 - (28 * 96 - 16), s.Repairs.CountOf(RepairKind.OutsidePeriod)); // 16 February intervals are missing (4 + 8 + 4)
        Assert.Equal(16, s.Repairs.CountOf(RepairKind.GapFilled));
    }

    [Fact]
    public void CaisoSp15_2021_HasTheDocumentedGapsAndNegatives()
    {
        IntervalSeries s = PriceSeriesLoader.LoadEia15Min(EnergyData.CaisoPrices2021, "SP-15 LMP");

        Assert.Equal(35_040, s.Count);
        Assert.Equal(Utc(2021, 1, 1, 8), s.StartUtc);
        Assert.Equal(74, s.Repairs.CountOf(RepairKind.GapFilled));
        Assert.Contains("in 51 gaps", s.Repairs.ToString());
        Assert.Equal(886, s.Repairs.CountOf(RepairKind.NegativeKept));
        Assert.Equal(-94.38, Math.Round(s.Values.Min(), 2));
        Assert.Equal(1_585.45, Math.Round(s.Values.Max(), 2));
    }

    [Fact]
    public void JepxTokyo2023_IsUpsampledTo15MinutesAndConverted()
    {
        IntervalSeries s = PriceSeriesLoader.LoadJepx30Min(EnergyData.JepxSpot2023, "area_price_tokyo", jpyPerUsd: 140);

        Assert.Equal(35_040, s.Count);
        Assert.Equal(Utc(2022, 12, 31, 15), s.StartUtc); // 2023-01-01 00:00 JST
        Assert.Equal(TimeSpan.FromMinutes(15), s.Step);
        Assert.Equal("USD/MWh", s.Unit);
        Assert.Equal(17_520, s.Repairs.CountOf(RepairKind.Converted));
        Assert.Equal(17_520, s.Repairs.CountOf(RepairKind.Upsampled));
        Assert.Contains("140 JPY per USD", s.Repairs.ToString());
        Assert.Equal(0, s.Repairs.CountOf(RepairKind.GapFilled));
        // Slot 1 of 2023/1/1, Tokyo 24.9 JPY/kWh, becomes two equal 15-minute intervals.
        Assert.Equal(24.9 * 1000 / 140, s.Values[0], 9);
        Assert.Equal(s.Values[0], s.Values[1]);
        // The last slot, 2023/12/31 time code 48 (23:30–24:00 JST), Tokyo 10.45.
        Assert.Equal(10.45 * 1000 / 140, s.Values[^1], 9);
        Assert.Equal(Utc(2023, 12, 31, 15), s.EndUtc);
    }

    [Fact]
    public void Jepx_PeriodCanStartInsideASlot()
    {
        IntervalSeries s = PriceSeriesLoader.LoadJepx30Min(
            EnergyData.JepxSpot2023, "system_price_jpy_per_kwh", 150, Utc(2022, 12, 31, 15, 15), Utc(2022, 12, 31, 16));

        Assert.Equal(3, s.Count);
        Assert.Equal(23.7 * 1000 / 150, s.Values[0], 9);
        Assert.Equal(23.66 * 1000 / 150, s.Values[1], 9);
        Assert.Equal(2, s.Repairs.CountOf(RepairKind.Converted));
    }

    [Fact]
    public void Jepx_RejectsANonPositiveRate()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => PriceSeriesLoader.LoadJepx30Min(EnergyData.JepxSpot2023, "area_price_tokyo", 0));
    }

    [Fact]
    public void MalformedNumber_NamesTheLineTheColumnAndTheText()
    {
        using var f = new TempCsv(EiaHeader, EiaRow("2021-01-01 06:15:00", "15.1"), EiaRow("2021-01-01 06:30:00", "abc"));

        var e = Assert.Throws<SeriesFormatException>(() => PriceSeriesLoader.LoadEia15Min(f.Path, "West LMP"));
        Assert.Equal(3, e.LineNumber);
        Assert.Equal(Path.GetFileName(f.Path), e.FileName);
        Assert.Contains("line 3: 'West LMP' is not a number: 'abc'", e.Message);
        Assert.IsAssignableFrom<FormatException>(e);
    }

    [Fact]
    public void MalformedTimestamp_AndShortRow_AreReported()
    {
        using var badTime = new TempCsv(EiaHeader, EiaRow("01/01/2021 06:15", "15.1"));
        var e1 = Assert.Throws<SeriesFormatException>(() => PriceSeriesLoader.LoadEia15Min(badTime.Path, "West LMP"));
        Assert.Equal(2, e1.LineNumber);
        Assert.Contains("UTC Timestamp (Interval Ending)", e1.Message);

        using var shortRow = new TempCsv(EiaHeader, "2021-01-01 06:15:00,x,x");
        var e2 = Assert.Throws<SeriesFormatException>(() => PriceSeriesLoader.LoadEia15Min(shortRow.Path, "West LMP"));
        Assert.Equal(2, e2.LineNumber);
        Assert.Contains("3 fields", e2.Message);

        using var offGrid = new TempCsv(EiaHeader, EiaRow("2021-01-01 06:10:00", "1"));
        var e3 = Assert.Throws<SeriesFormatException>(() => PriceSeriesLoader.LoadEia15Min(offGrid.Path, "West LMP"));
        Assert.Equal(2, e3.LineNumber);

        using var openQuote = new TempCsv(EiaHeader, EiaRow("2021-01-01 06:15:00", "\"15.1"));
        var e4 = Assert.Throws<SeriesFormatException>(() => PriceSeriesLoader.LoadEia15Min(openQuote.Path, "West LMP"));
        Assert.Equal(2, e4.LineNumber);
        Assert.Contains("not closed", e4.Message);
    }

    [Fact]
    public void QuotedFields_AreRead()
    {
        using var f = new TempCsv(EiaHeader, "\"2021-01-01 06:15:00\",\"a, b\",\"say \"\"x\"\"\",x,1,\"-3.5\"");
        IntervalSeries s = PriceSeriesLoader.LoadEia15Min(f.Path, "West LMP");
        Assert.Equal([-3.5], s.Values);
        Assert.Equal(1, s.Repairs.CountOf(RepairKind.NegativeKept));
    }

    [Fact]
    public void MissingColumn_IsReportedOnTheHeaderLine()
    {
        var e = Assert.Throws<SeriesFormatException>(() => PriceSeriesLoader.LoadEia15Min(EnergyData.ErcotPrices2021, "Nowhere LMP"));
        Assert.Equal(1, e.LineNumber);
        Assert.Contains("no column 'Nowhere LMP'", e.Message);
        Assert.Contains("'West LMP'", e.Message);
    }

    [Fact]
    public void EmptyPeriod_SaysSo()
    {
        var e = Assert.Throws<SeriesFormatException>(() =>
            PriceSeriesLoader.LoadEia15Min(EnergyData.ErcotPrices2021, "West LMP", Utc(2030, 1, 1), Utc(2030, 1, 2)));
        Assert.Null(e.LineNumber);
        Assert.Contains("no rows between 2030-01-01 UTC and 2030-01-02 UTC", e.Message);

        using var headerOnly = new TempCsv(EiaHeader);
        Assert.Throws<SeriesFormatException>(() => PriceSeriesLoader.LoadEia15Min(headerOnly.Path, "West LMP"));
    }

    [Fact]
    public void BadBounds_AreArgumentErrors()
    {
        string path = EnergyData.ErcotPrices2021;
        Assert.Throws<ArgumentException>(() => PriceSeriesLoader.LoadEia15Min(path, "West LMP", new DateTime(2021, 2, 1), null));
        Assert.Throws<ArgumentException>(() => PriceSeriesLoader.LoadEia15Min(path, "West LMP", Utc(2021, 2, 1, 0, 5), null));
        Assert.Throws<ArgumentException>(() => PriceSeriesLoader.LoadEia15Min(path, "West LMP", Utc(2021, 2, 2), Utc(2021, 2, 1)));
    }

    [Fact]
    public void Duplicates_AreDroppedKeepingTheFirst_AndReported()
    {
        using var f = new TempCsv(EiaHeader,
            EiaRow("2021-01-01 06:15:00", "10"),
            EiaRow("2021-01-01 06:30:00", "20"),
            EiaRow("2021-01-01 06:30:00", "99"),
            EiaRow("2021-01-01 06:45:00", "30"));

        IntervalSeries s = PriceSeriesLoader.LoadEia15Min(f.Path, "West LMP");

        Assert.Equal([10.0, 20.0, 30.0], s.Values);
        Assert.Equal(1, s.Repairs.CountOf(RepairKind.DuplicateDropped));
        Assert.Contains("1 of them had a different value", s.Repairs.ToString());
    }

    [Fact]
    public void Gap_IsFilledWithTheLastValue_AndReported()
    {
        using var f = new TempCsv(EiaHeader,
            EiaRow("2021-01-01 06:15:00", "10"),
            EiaRow("2021-01-01 06:30:00", "-5"),
            EiaRow("2021-01-01 07:15:00", "40"));

        IntervalSeries s = PriceSeriesLoader.LoadEia15Min(f.Path, "West LMP");

        Assert.Equal([10.0, -5.0, -5.0, -5.0, 40.0], s.Values);
        Repair gap = Assert.Single(s.Repairs.Items, r => r.Kind == RepairKind.GapFilled);
        Assert.Equal(2, gap.Count);
        Assert.Contains("in 1 gaps", gap.Detail);
        Assert.Contains("2021-01-01 06:30 UTC ×2", gap.Detail);
        Assert.Equal(1, s.Repairs.CountOf(RepairKind.NegativeKept)); // the source's negative row, not the filled copies
    }

    [Fact]
    public void LeadingGap_UsesTheLastValueBeforeThePeriod()
    {
        using var f = new TempCsv(EiaHeader,
            EiaRow("2021-01-01 06:15:00", "10"),
            EiaRow("2021-01-01 07:00:00", "40"));

        IntervalSeries s = PriceSeriesLoader.LoadEia15Min(f.Path, "West LMP", Utc(2021, 1, 1, 6, 15), Utc(2021, 1, 1, 7));

        Assert.Equal([10.0, 10.0, 40.0], s.Values);
        Assert.Equal(2, s.Repairs.CountOf(RepairKind.GapFilled));
        Assert.Equal(1, s.Repairs.CountOf(RepairKind.OutsidePeriod));
    }
}
