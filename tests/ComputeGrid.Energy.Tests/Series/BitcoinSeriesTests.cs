using ComputeGrid.Energy.Series;

namespace ComputeGrid.Energy.Tests.Series;

public class BitcoinSeriesTests
{
    private static readonly BitcoinSeries Btc = BitcoinSeries.Load(EnergyData.BitcoinDaily);

    private static DateTime Utc(int y, int mo, int d) => new(y, mo, d, 0, 0, 0, DateTimeKind.Utc);

    [Fact]
    public void Load_ReadsEveryDayInOrder()
    {
        Assert.Equal(2_344, Btc.Days.Count);
        Assert.Equal(new DateOnly(2020, 1, 1), Btc.Days[0].Date);
        Assert.Equal(new DateOnly(2026, 6, 1), Btc.Days[^1].Date);
        for (int i = 1; i < Btc.Days.Count; i++)
            Assert.Equal(Btc.Days[i - 1].Date.AddDays(1), Btc.Days[i].Date);
        BitcoinDaily first = Btc.Days[0];
        Assert.Equal(7170.63186879018, first.PriceUsd);
        Assert.Equal(112929774.50430365, first.HashRateThs);
        Assert.Equal(15596124.314618642, first.IssuanceUsd);
        Assert.Equal(9.88624584, first.FeesBtc);
    }

    [Fact]
    public void Hashprice_MatchesTheDocumentedValues()
    {
        Assert.Equal(0.33, Btc.Hashprice(new DateOnly(2021, 2, 16)), 0.005);
        Assert.Equal(0.054, Btc.Hashprice(new DateOnly(2024, 12, 31)), 0.0005);

        BitcoinDaily d = Btc.Day(new DateOnly(2024, 12, 31));
        Assert.Equal((d.IssuanceUsd + d.FeesBtc * d.PriceUsd) / d.HashRateThs, d.HashpriceUsdPerThDay);
    }

    [Fact]
    public void Hashprice_OfAMissingDay_Throws()
    {
        var e = Assert.Throws<KeyNotFoundException>(() => Btc.Hashprice(new DateOnly(2019, 12, 31)));
        Assert.Contains("2020-01-01 to 2026-06-01", e.Message);
    }

    [Fact]
    public void HashpriceSeries_IsDaily()
    {
        IntervalSeries s = Btc.HashpriceSeries(Utc(2021, 1, 1), Utc(2022, 1, 1));

        Assert.Equal(365, s.Count);
        Assert.Equal(TimeSpan.FromDays(1), s.Step);
        Assert.Equal(BitcoinSeries.HashpriceUnit, s.Unit);
        Assert.Equal(Btc.Hashprice(new DateOnly(2021, 2, 16)), s.Values[s.IndexOf(Utc(2021, 2, 16).AddHours(13))]);
        Assert.Equal(0, s.Repairs.CountOf(RepairKind.GapFilled));
        Assert.Equal(2_344 - 365, s.Repairs.CountOf(RepairKind.OutsidePeriod));
    }

    [Fact]
    public void HashpriceSeries_RejectsBadPeriods()
    {
        Assert.Throws<ArgumentException>(() => Btc.HashpriceSeries(Utc(2021, 1, 1).AddHours(1), Utc(2021, 2, 1)));
        Assert.Throws<SeriesFormatException>(() => Btc.HashpriceSeries(Utc(2030, 1, 1), Utc(2030, 2, 1)));
    }

    [Fact]
    public void Load_RejectsDatesOutOfOrder()
    {
        using var f = new TempCsv("time,PriceUSD,HashRate,IssTotUSD,FeeTotNtv",
            "2021-01-02,1,1,1,1",
            "2021-01-01,1,1,1,1");
        var e = Assert.Throws<SeriesFormatException>(() => BitcoinSeries.Load(f.Path));
        Assert.Equal(3, e.LineNumber);
    }
}
