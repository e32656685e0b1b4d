using ComputeGrid.Core;

namespace ComputeGrid.Energy.Series;

/// <summary>
/// The energy data files in the repository's <c>data/</c> folder (see <c>data/README.md</c> for their sources and
/// licences), found with <see cref="DataFiles.Find(string)"/>. Each property returns the full path and throws
/// <see cref="FileNotFoundException"/> when the file is not there.
/// </summary>
public static class EnergyData
{
    /// <summary>File name of ERCOT's 2021 real-time 15-minute hub prices (EIA); read with <see cref="PriceSeriesLoader.LoadEia15Min"/>.</summary>
    public const string ErcotPrices2021File = "ercot_rt_lmp_hubs_15min_2021.csv";

    /// <summary>File name of CAISO's 2021 real-time 15-minute zone prices (EIA); read with <see cref="PriceSeriesLoader.LoadEia15Min"/>.</summary>
    public const string CaisoPrices2021File = "caiso_rt_lmp_zones_15min_2021.csv";

    /// <summary>File name of JEPX's 2023 day-ahead 30-minute spot prices; read with <see cref="PriceSeriesLoader.LoadJepx30Min"/>.</summary>
    public const string JepxSpot2023File = "jepx_spot_30min_2023.csv";

    /// <summary>File name of ERCOT's 2021 hourly native load; read with <see cref="SystemLoadLoader.LoadErcotNativeLoadHourly"/>.</summary>
    public const string ErcotNativeLoad2021File = "ercot_native_load_hourly_2021.csv";

    /// <summary>File name of the Coin Metrics daily Bitcoin data (CC BY-NC 4.0, non-commercial); read with <see cref="BitcoinSeries.Load"/>.</summary>
    public const string BitcoinDailyFile = "btc_daily_coinmetrics_2020-2026.csv";

    /// <summary>File name of the MineForge ASIC catalogue; read with <see cref="MinerCatalog.Load"/>.</summary>
    public const string MinersMineforgeFile = "asic_miners_specs_mineforge.csv";

    /// <summary>File name of the F2Pool ASIC list of March 2020; read with <see cref="MinerCatalog.Load"/>.</summary>
    public const string MinersF2Pool2020File = "asic_miners_specs_f2pool_2020-03.csv";

    /// <summary>Path of <see cref="ErcotPrices2021File"/>.</summary>
    public static string ErcotPrices2021 => DataFiles.Find(ErcotPrices2021File);

    /// <summary>Path of <see cref="CaisoPrices2021File"/>.</summary>
    public static string CaisoPrices2021 => DataFiles.Find(CaisoPrices2021File);

    /// <summary>Path of <see cref="JepxSpot2023File"/>.</summary>
    public static string JepxSpot2023 => DataFiles.Find(JepxSpot2023File);

    /// <summary>Path of <see cref="ErcotNativeLoad2021File"/>.</summary>
    public static string ErcotNativeLoad2021 => DataFiles.Find(ErcotNativeLoad2021File);

    /// <summary>Path of <see cref="BitcoinDailyFile"/>.</summary>
    public static string BitcoinDaily => DataFiles.Find(BitcoinDailyFile);

    /// <summary>Path of <see cref="MinersMineforgeFile"/>.</summary>
    public static string MinersMineforge => DataFiles.Find(MinersMineforgeFile);

    /// <summary>Path of <see cref="MinersF2Pool2020File"/>.</summary>
    public static string MinersF2Pool2020 => DataFiles.Find(MinersF2Pool2020File);

    /// <summary>Loads the ERCOT 2021 price of one hub column (e.g. <c>West LMP</c>).</summary>
    public static IntervalSeries LoadErcotPrices2021(string column = "West LMP", DateTime? fromUtc = null, DateTime? toUtc = null) =>
        PriceSeriesLoader.LoadEia15Min(ErcotPrices2021, column, fromUtc, toUtc);

    /// <summary>Loads both miner tables into one catalogue.</summary>
    public static MinerCatalog LoadMinerCatalog() => MinerCatalog.Load(MinersMineforge, MinersF2Pool2020);
}
