using ComputeGrid.Energy.Series;

namespace ComputeGrid.Energy.Tests.Series;

public class EnergyDataTests
{
    [Fact]
    public void EveryFileIsFound()
    {
        string[] paths =
        [
            EnergyData.ErcotPrices2021, EnergyData.CaisoPrices2021, EnergyData.JepxSpot2023, EnergyData.ErcotNativeLoad2021,
            EnergyData.BitcoinDaily, EnergyData.MinersMineforge, EnergyData.MinersF2Pool2020,
        ];
        Assert.All(paths, p => Assert.True(File.Exists(p), p));
        Assert.Equal(EnergyData.ErcotPrices2021File, Path.GetFileName(EnergyData.ErcotPrices2021));
    }
}
