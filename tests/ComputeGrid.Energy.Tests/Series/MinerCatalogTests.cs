using ComputeGrid.Energy.Series;

namespace ComputeGrid.Energy.Tests.Series;

public class MinerCatalogTests
{
    private static readonly MinerCatalog Catalog = MinerCatalog.Load(EnergyData.MinersMineforge, EnergyData.MinersF2Pool2020);

    [Fact]
    public void Find_AntminerS21()
    {
        MinerModel m = Catalog.Find("Antminer S21");
        Assert.Equal("s21", m.Id);
        Assert.Equal("Bitmain", m.Manufacturer);
        Assert.Equal(200, m.TerahashPerSecond);
        Assert.Equal(3500, m.Watts);
        Assert.Equal(17.5, m.JoulesPerTerahash);
        Assert.Equal(2023, m.ReleaseYear);
        Assert.Equal(MinerCatalog.MineforgeSource, m.Source);
        Assert.Same(m, Catalog.Find("S21"));
        Assert.Same(m, Catalog.Find("antminer s21"));
    }

    [Fact]
    public void Find_AntminerS19Xp()
    {
        MinerModel m = Catalog.Find("Antminer S19 XP");
        Assert.Equal(140, m.TerahashPerSecond);
        Assert.Equal(3010, m.Watts);
        Assert.Equal(21.5, m.JoulesPerTerahash);
    }

    [Fact]
    public void Load_AddsOnlyF2PoolModelsNotAlreadyPresent()
    {
        Assert.Equal(50 + 73, Catalog.Models.Count);
        Assert.Equal(50, Catalog.Models.Count(m => m.Source == MinerCatalog.MineforgeSource));
        Assert.Single(Catalog.Models, m => m.Name == "Antminer S19 Pro");
        Assert.Equal(MinerCatalog.MineforgeSource, Catalog.Find("Antminer S19 Pro").Source);
        Assert.Equal(Catalog.Models.Count, Catalog.Models.Select(m => m.Id.ToLowerInvariant()).Distinct().Count());

        MinerModel s17 = Catalog.Find("Antminer S17+");
        Assert.Equal(MinerCatalog.F2PoolSource, s17.Source);
        Assert.Equal(73, s17.TerahashPerSecond);
        Assert.Equal(2920, s17.Watts);
        Assert.Equal(2019, s17.ReleaseYear);
        Assert.Same(s17, Catalog.Find(s17.Id));

        // A name repeated in the F2Pool list keeps its first row.
        Assert.Equal(53, Catalog.Find("Hummer Miner H7 Pro (48T)").TerahashPerSecond);
    }

    [Fact]
    public void Find_Missing_ListsCloseNames()
    {
        var e = Assert.Throws<KeyNotFoundException>(() => Catalog.Find("Antminer S21 XP"));
        Assert.Contains("'Antminer S21", e.Message);
        Assert.False(Catalog.TryFind("nothing like it", out _));
    }

    [Fact]
    public void Breakeven_MatchesAHandComputation()
    {
        MinerModel s21 = Catalog.Find("Antminer S21");

        // 17.5 J/TH × 24 h = 420 Wh = 0.00042 MWh per TH/s per day; 0.054 / 0.00042 = 128.571428…
        Assert.Equal(128.571428571, MinerCatalog.BreakevenUsdPerMwh(s21, 0.054), 6);
        // With PUE 1.1 and a 2 % pool fee: 0.054 × 0.98 / (0.00042 × 1.1) = 0.05292 / 0.000462 = 114.545454…
        Assert.Equal(114.545454545, MinerCatalog.BreakevenUsdPerMwh(s21, 0.054, pue: 1.1, poolFee: 0.02), 6);
    }

    [Fact]
    public void Breakeven_RejectsBadArguments()
    {
        MinerModel s21 = Catalog.Find("s21");
        Assert.Throws<ArgumentOutOfRangeException>(() => MinerCatalog.BreakevenUsdPerMwh(s21, 0.05, pue: 0.9));
        Assert.Throws<ArgumentOutOfRangeException>(() => MinerCatalog.BreakevenUsdPerMwh(s21, 0.05, poolFee: 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => MinerCatalog.BreakevenUsdPerMwh(s21, double.NaN));
    }
}
