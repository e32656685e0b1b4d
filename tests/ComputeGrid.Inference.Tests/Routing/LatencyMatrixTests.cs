using System.Globalization;
using ComputeGrid.Core;
using ComputeGrid.Inference.Routing;

namespace ComputeGrid.Inference.Tests.Routing;

public class LatencyMatrixTests
{
    internal static readonly LatencyMatrix Real = LatencyMatrix.LoadDefault();

    private static readonly string[] ExpectedCodes =
    [
        "dallas", "toronto", "washington-dc", "frankfurt", "london", "madrid", "montreal",
        "chennai", "mumbai", "osaka", "sydney", "tokyo", "sao-paulo",
    ];

    [Fact]
    public void Loads_thirteen_regions_with_the_exchange_spelling_from_the_latest_snapshot()
    {
        Assert.Equal(13, Real.Count);
        Assert.Equal(ExpectedCodes, Real.Regions);
        Assert.Equal("Washington DC", Real.RegionNames[2]);
        Assert.Equal(new DateOnly(2026, 8, 16), Real.Snapshot);
    }

    [Fact]
    public void Is_symmetric_with_a_one_millisecond_diagonal()
    {
        for (int a = 0; a < Real.Count; a++)
        {
            Assert.Equal(LatencyMatrix.IntraRegionRttMicros, Real.RttMicros(a, a));
            Assert.Equal(1.0, Real.Rtt(a, a));
            for (int b = 0; b < Real.Count; b++)
            {
                Assert.Equal(Real.RttMicros(a, b), Real.RttMicros(b, a));
                Assert.Equal(Real.RttMicros(a, b), Real.RowMicros(a)[b]);
                if (a != b) Assert.True(Real.RttMicros(a, b) > LatencyMatrix.IntraRegionRttMicros);
            }
        }
    }

    [Fact]
    public void Known_pairs_match_the_file()
    {
        // 16 Aug 2026 rows: Dallas→Toronto 35, Toronto→Dallas 34; Frankfurt↔London 13; Sydney→Sao Paulo 327,
        // Sao Paulo→Sydney 325; Osaka↔Tokyo 9.
        Assert.Equal(34.5, Rtt("dallas", "toronto"));
        Assert.Equal(34_500, Real.RttMicros(Index("toronto"), Index("dallas")));
        Assert.Equal(13.0, Rtt("frankfurt", "london"));
        Assert.Equal(326.0, Rtt("sydney", "sao-paulo"));
        Assert.Equal(9.0, Rtt("tokyo", "osaka"));
    }

    [Fact]
    public void Every_pair_is_the_mean_of_both_directions_of_the_latest_snapshot()
    {
        // Independent re-read of the file: the rows of the latest snapshot, by name.
        string[] lines = File.ReadAllLines(DataFiles.Find(LatencyMatrix.FileName));
        string[] header = lines[0].Split(',');
        int snap = Array.IndexOf(header, "snapshot"), row = Array.IndexOf(header, "row_region"),
            col = Array.IndexOf(header, "column_region"), val = Array.IndexOf(header, "avg_rtt_ms");
        var rows = lines.Skip(1).Where(l => l.Length > 0).Select(l => l.Split(',')).ToList();
        DateTime latest = rows.Max(r => DateTime.ParseExact(r[snap], "d MMM yyyy", CultureInfo.InvariantCulture));
        var values = rows
            .Where(r => DateTime.ParseExact(r[snap], "d MMM yyyy", CultureInfo.InvariantCulture) == latest)
            .ToDictionary(r => (r[row], r[col]), r => decimal.Parse(r[val], CultureInfo.InvariantCulture));
        Assert.Equal(13 * 12, values.Count);
        for (int a = 0; a < 13; a++)
        {
            for (int b = 0; b < 13; b++)
            {
                if (a == b) continue;
                string na = Real.RegionNames[a], nb = Real.RegionNames[b];
                decimal mean = (values[(na, nb)] + values[(nb, na)]) / 2m;
                Assert.Equal((double)mean, Real.Rtt(a, b));
            }
        }
    }

    [Fact]
    public void Region_lookup_accepts_ids_and_names()
    {
        Assert.True(Real.TryGetRegion("washington-dc", out int dc));
        Assert.Equal(2, dc);
        Assert.True(Real.TryGetRegion("Washington DC", out int dc2));
        Assert.Equal(dc, dc2);
        Assert.True(Real.TryGetRegion("Sao Paulo", out int sp));
        Assert.Equal("sao-paulo", Real.Regions[sp]);
        Assert.False(Real.TryGetRegion("singapore", out int none));
        Assert.Equal(-1, none);
        Assert.False(Real.TryGetRegion(null, out _));
        Assert.True(Real.TryCreateRegionSet(["tokyo", "Osaka"], out RegionSet set, out string? unknown));
        Assert.Null(unknown);
        Assert.Equal(2, set.Count);
        Assert.True(set.Contains(Index("tokyo")));
        Assert.False(Real.TryCreateRegionSet(["tokyo", "mars"], out _, out unknown));
        Assert.Equal("mars", unknown);
        Assert.Throws<IndexOutOfRangeException>(() => Real.RttMicros(13, 0));
    }

    [Fact]
    public void Loading_rejects_a_matrix_with_a_missing_pair_and_keeps_only_the_latest_snapshot()
    {
        string dir = Directory.CreateTempSubdirectory("latency").FullName;
        try
        {
            string path = Path.Combine(dir, "m.csv");
            File.WriteAllLines(path,
            [
                "snapshot,window_start,window_end,row_region,column_region,avg_rtt_ms",
                "1 Aug 2026,x,y,A,B,100",
                "1 Aug 2026,x,y,B,A,100",
                "8 Aug 2026,x,y,A,B,10",
                "8 Aug 2026,x,y,B,A,11.5",
            ]);
            var m = LatencyMatrix.Load(path);
            Assert.Equal(["a", "b"], m.Regions);
            Assert.Equal(10_750, m.RttMicros(0, 1));

            File.WriteAllLines(path,
            [
                "snapshot,window_start,window_end,row_region,column_region,avg_rtt_ms",
                "8 Aug 2026,x,y,A,B,10",
                "8 Aug 2026,x,y,B,C,11",
            ]);
            Assert.Throws<InvalidDataException>(() => LatencyMatrix.Load(path));
            File.WriteAllLines(path, ["snapshot,row_region,column_region", "8 Aug 2026,A,B"]);
            Assert.Throws<InvalidDataException>(() => LatencyMatrix.Load(path));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    internal static int Index(string code)
    {
        Assert.True(Real.TryGetRegion(code, out int i), code);
        return i;
    }

    private static double Rtt(string a, string b) => Real.Rtt(Index(a), Index(b));
}
