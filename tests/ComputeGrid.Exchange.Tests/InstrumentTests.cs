using System.Globalization;
using ComputeGrid.Core;
using ComputeGrid.Exchange.Instruments;
using CsCheck;
using Microsoft.Extensions.Time.Testing;

namespace ComputeGrid.Exchange.Tests;

/// <summary>
/// The instrument catalogue (GPU classes, regions from the real IBM latency file, symbols) and the clock-driven
/// listing schedule. Time is only ever what the test passes in: a <see cref="FakeTimeProvider"/> or explicit
/// nanoseconds.
/// </summary>
public class InstrumentTests
{
    private const long Second = 1_000_000_000L;
    private const long Minute = 60 * Second;
    private const long Hour = 60 * Minute;
    private const long Day = 24 * Hour;

    private static readonly string[] ExpectedCodes =
    [
        "dallas", "toronto", "washington-dc", "frankfurt", "london", "madrid", "montreal",
        "chennai", "mumbai", "osaka", "sydney", "tokyo", "sao-paulo",
    ];

    private static long Ns(string iso) => (At(iso).UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks) * 100;

    private static DateTimeOffset At(string iso) =>
        DateTimeOffset.Parse(iso, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal);

    private static InstrumentSchedule DefaultSchedule() => new(RegionCatalog.Fallback, ListingPolicy.Default);

    // ---- GPU classes -------------------------------------------------------------------------------------------

    [Fact]
    public void GpuTable_is_in_enum_order_with_public_vendor_figures()
    {
        Assert.Equal(Enum.GetValues<GpuClass>(), GpuClasses.All);
        for (int i = 0; i < GpuClasses.Specs.Count; i++) Assert.Equal((GpuClass)i, GpuClasses.Specs[i].Class);

        Assert.Equal((80, 700), (GpuClasses.Spec(GpuClass.H100).MemoryGb, GpuClasses.Spec(GpuClass.H100).TdpWatts));
        Assert.Equal((141, 700), (GpuClasses.Spec(GpuClass.H200).MemoryGb, GpuClasses.Spec(GpuClass.H200).TdpWatts));
        Assert.Equal((192, 1000), (GpuClasses.Spec(GpuClass.B200).MemoryGb, GpuClasses.Spec(GpuClass.B200).TdpWatts));
        Assert.Equal((80, 400), (GpuClasses.Spec(GpuClass.A100).MemoryGb, GpuClasses.Spec(GpuClass.A100).TdpWatts));
        Assert.Equal((24, 450), (GpuClasses.Spec(GpuClass.Rtx4090).MemoryGb, GpuClasses.Spec(GpuClass.Rtx4090).TdpWatts));
        Assert.Throws<ArgumentOutOfRangeException>(() => GpuClasses.Spec((GpuClass)99));
    }

    [Fact]
    public void Every_band_fits_a_direct_indexed_ladder()
    {
        foreach (GpuSpec spec in GpuClasses.Specs)
        {
            var band = spec.Band;
            Assert.True(band.Tick > 0, spec.Code);
            Assert.True(band.MinPrice >= band.Tick, $"{spec.Code}: the lowest price is at least one tick");
            Assert.Equal(0, band.MinPrice % band.Tick);
            Assert.True(band.OnTick(band.MaxPrice), $"{spec.Code}: the maximum is on the tick grid");
            Assert.InRange(band.Levels, 2, GpuClasses.MaxLevels);
            Assert.InRange(band.MaxPrice, 1_000_000L, 65_536_000_000L); // at least $1/h, and far below overflow risk
        }
        // The share books' band too (it once spanned 10^8 ticks: the first share order allocated gigabytes).
        var shares = Instrument.ShareBand;
        Assert.True(shares.MinPrice >= shares.Tick && shares.MinPrice % shares.Tick == 0 && shares.OnTick(shares.MaxPrice));
        Assert.InRange(shares.Levels, 2, GpuClasses.MaxLevels);
    }

    [Fact]
    public void Gpu_codes_round_trip_exactly()
    {
        foreach (GpuClass gpu in GpuClasses.All)
        {
            Assert.True(GpuClasses.TryParseCode(GpuClasses.Code(gpu), out GpuClass parsed));
            Assert.Equal(gpu, parsed);
        }
        Assert.Equal("RTX4090", GpuClasses.Code(GpuClass.Rtx4090));
        Assert.False(GpuClasses.TryParseCode("h100", out _));
        Assert.False(GpuClasses.TryParseCode("Rtx4090", out _));
        Assert.False(GpuClasses.TryParseCode((string?)null, out _));
        Assert.False(GpuClasses.TryParseCode("", out _));
    }

    // ---- Regions and data files ---------------------------------------------------------------------------------

    [Fact]
    public void Regions_read_from_the_real_csv_equal_the_built_in_list()
    {
        string path = DataFiles.Find(RegionCatalog.FileName);
        RegionCatalog fromFile = RegionCatalog.Load(path);

        Assert.Equal(13, fromFile.Count);
        Assert.Equal(RegionCatalog.FallbackNames, fromFile.Regions.Select(r => r.Name));
        Assert.Equal(RegionCatalog.Fallback.Regions, fromFile.Regions);
        Assert.Equal(ExpectedCodes, fromFile.Codes);
        Assert.Equal(fromFile.Codes, RegionCatalog.LoadDefault().Codes);

        Assert.True(fromFile.TryGetByCode("washington-dc", out Region? dc));
        Assert.Equal("Washington DC", dc.Name);
        Assert.True(fromFile.TryGetByName("Sao Paulo", out Region? sp));
        Assert.Equal("sao-paulo", sp.Code);
        Assert.False(fromFile.Contains("shanghai"));
    }

    [Fact]
    public void Region_csv_loader_rejects_malformed_files()
    {
        string dir = Directory.CreateTempSubdirectory("cg-regions-").FullName;
        try
        {
            string Write(string name, string text)
            {
                string p = Path.Combine(dir, name);
                File.WriteAllText(p, text);
                return p;
            }

            const string Header = "snapshot,window_start,window_end,row_region,column_region,avg_rtt_ms\n";
            Assert.Throws<InvalidDataException>(() => RegionCatalog.Load(Write("empty.csv", "")));
            Assert.Throws<InvalidDataException>(() => RegionCatalog.Load(Write("header-only.csv", Header)));
            Assert.Throws<InvalidDataException>(() => RegionCatalog.Load(Write("no-column.csv", "a,b,c\n1,2,3\n")));
            Assert.Throws<InvalidDataException>(() => RegionCatalog.Load(Write("short.csv", Header + "x,y,z,Dallas\n")));
            Assert.Throws<InvalidDataException>(() => RegionCatalog.Load(Write("blank-name.csv", Header + "x,y,z,,Dallas,3\n")));
            Assert.Throws<InvalidDataException>(() => RegionCatalog.Load(Write("quote.csv", Header + "x,y,z,\"Dallas,Toronto,3\n")));
            // Toronto only ever appears as a column: a truncated matrix.
            var oneSided = Assert.Throws<InvalidDataException>(() => RegionCatalog.Load(Write("one-sided.csv", Header + "x,y,z,Dallas,Toronto,35\n")));
            Assert.Contains("Toronto", oneSided.Message);
            // Two names that map to one code.
            Assert.Throws<InvalidDataException>(() => RegionCatalog.Load(Write("same-code.csv",
                Header + "x,y,z,Sao Paulo,Sao-Paulo,1\nx,y,z,Sao-Paulo,Sao Paulo,1\n")));

            // Quoted fields and CRLF are read like the plain form.
            RegionCatalog ok = RegionCatalog.Load(Write("ok.csv",
                Header.Replace("\n", "\r\n") + "x,y,z,\"Washington DC\",Dallas,32\r\nx,y,z,Dallas,\"Washington DC\",32\r\n"));
            Assert.Equal(new[] { "washington-dc", "dallas" }, ok.Codes);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void Region_codes_are_derived_and_validated()
    {
        Assert.Equal("washington-dc", RegionCatalog.CodeFor("Washington DC"));
        Assert.Equal("sao-paulo", RegionCatalog.CodeFor("  Sao   Paulo! "));
        Assert.Equal("", RegionCatalog.CodeFor("---"));
        Assert.True(RegionCatalog.IsValidCode("us-east-2"));
        Assert.False(RegionCatalog.IsValidCode("Dallas"));
        Assert.False(RegionCatalog.IsValidCode("a--b"));
        Assert.False(RegionCatalog.IsValidCode("-a"));
        Assert.False(RegionCatalog.IsValidCode("a.b"));
        Assert.False(RegionCatalog.IsValidCode(new string('a', RegionCatalog.MaxCodeLength + 1)));
        Assert.Throws<ArgumentException>(() => RegionCatalog.FromNames(["Dallas", "Dallas"]));
        Assert.Throws<ArgumentException>(() => RegionCatalog.FromNames(["???"]));
    }

    [Fact]
    public void DataFiles_find_walks_up_and_fails_clearly()
    {
        string found = DataFiles.Find(RegionCatalog.FileName);
        Assert.Equal(DataFiles.FolderName, Path.GetFileName(Path.GetDirectoryName(found)));
        Assert.True(File.Exists(found));

        var missing = Assert.Throws<FileNotFoundException>(() => DataFiles.Find("no_such_file_7f3a.csv"));
        Assert.Equal("no_such_file_7f3a.csv", missing.FileName);
        Assert.Contains("no_such_file_7f3a.csv", missing.Message);
        Assert.Contains("data/", missing.Message);

        Assert.Throws<ArgumentException>(() => DataFiles.Find("../README.md"));
        Assert.Throws<ArgumentException>(() => DataFiles.Find(Path.Combine("data", RegionCatalog.FileName)));
        Assert.Throws<ArgumentException>(() => DataFiles.Find(" "));

        // From a start folder with no data/ anywhere above it (the file system root's own data/ aside).
        string dir = Directory.CreateTempSubdirectory("cg-nodata-").FullName;
        try
        {
            Assert.Throws<FileNotFoundException>(() => DataFiles.Find("no_such_file_7f3a.csv", dir));
            Directory.CreateDirectory(Path.Combine(dir, "data"));
            File.WriteAllText(Path.Combine(dir, "data", "probe.csv"), "x");
            string nested = Directory.CreateDirectory(Path.Combine(dir, "a", "b", "c")).FullName;
            Assert.Equal(Path.Combine(dir, "data", "probe.csv"), DataFiles.Find("probe.csv", nested));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    // ---- Symbols --------------------------------------------------------------------------------------------------

    [Theory]
    [InlineData("H100.frankfurt.H.2026-11-26T14", GpuClass.H100, "frankfurt", DeliveryKind.HourlySpot, "2026-11-26T14:00:00Z", "2026-11-26T15:00:00Z")]
    [InlineData("H100.frankfurt.D.2026-11-27", GpuClass.H100, "frankfurt", DeliveryKind.DailyForward, "2026-11-27T00:00:00Z", "2026-11-28T00:00:00Z")]
    [InlineData("H100.frankfurt.M.2026-12", GpuClass.H100, "frankfurt", DeliveryKind.MonthlyForward, "2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z")]
    [InlineData("RTX4090.sao-paulo.H.2028-02-29T00", GpuClass.Rtx4090, "sao-paulo", DeliveryKind.HourlySpot, "2028-02-29T00:00:00Z", "2028-02-29T01:00:00Z")]
    [InlineData("B200.washington-dc.M.2027-02", GpuClass.B200, "washington-dc", DeliveryKind.MonthlyForward, "2027-02-01T00:00:00Z", "2027-03-01T00:00:00Z")]
    public void Symbols_parse_to_their_parts(string text, GpuClass gpu, string region, DeliveryKind kind, string start, string end)
    {
        Assert.True(InstrumentSymbol.TryParse(text, out InstrumentSymbol? symbol));
        Assert.Equal(gpu, symbol.Gpu);
        Assert.Equal(region, symbol.Region);
        Assert.Equal(kind, symbol.Kind);
        Assert.Equal(Ns(start), symbol.DeliveryStart);
        Assert.Equal(Ns(end), symbol.DeliveryEnd);
        Assert.Equal(text, symbol.ToString());
        Assert.Equal(symbol, InstrumentSymbol.Parse(text));
    }

    [Theory]
    [InlineData("")]
    [InlineData("H100")]
    [InlineData("H100.frankfurt.H")]
    [InlineData("H100.frankfurt.H.")]
    [InlineData("h100.frankfurt.H.2026-11-26T14")]          // class code is case-sensitive
    [InlineData("H300.frankfurt.H.2026-11-26T14")]          // unknown class
    [InlineData("H100.Frankfurt.H.2026-11-26T14")]          // region codes are lower case
    [InlineData("H100..H.2026-11-26T14")]                   // empty region
    [InlineData("H100.frank furt.H.2026-11-26T14")]
    [InlineData("H100.frankfurt.h.2026-11-26T14")]
    [InlineData("H100.frankfurt.X.2026-11-26T14")]
    [InlineData("H100.frankfurt.HH.2026-11-26T14")]
    [InlineData("H100.frankfurt.H.2026-11-26T24")]          // no hour 24
    [InlineData("H100.frankfurt.H.2026-11-26T1")]           // fixed widths only
    [InlineData("H100.frankfurt.H.2026-11-26T14:00")]
    [InlineData("H100.frankfurt.H.2026-11-26")]             // hourly needs an hour
    [InlineData("H100.frankfurt.D.2026-11-26T14")]          // daily has none
    [InlineData("H100.frankfurt.D.2026-02-29")]             // 2026 is no leap year
    [InlineData("H100.frankfurt.D.2026-11-31")]
    [InlineData("H100.frankfurt.D.2026-00-10")]
    [InlineData("H100.frankfurt.M.2026-13")]
    [InlineData("H100.frankfurt.M.2026-1")]
    [InlineData("H100.frankfurt.M.2026-12-01")]
    [InlineData("H100.frankfurt.M.+026-12")]
    [InlineData("H100.frankfurt.M.2026-1\u0661")]           // a non-ASCII digit
    [InlineData("H100.frankfurt.M.3000-01")]                // beyond the range of Unix nanoseconds
    [InlineData("H100.frankfurt.M.2262-04")]                // its window would end past that range
    [InlineData(" H100.frankfurt.H.2026-11-26T14")]
    [InlineData("H100.frankfurt.H.2026-11-26T14 ")]
    [InlineData("H100.frankfurt.H.2026-11-26T14.x")]
    [InlineData("H100.frankfurt.extra.H.2026-11-26T14")]
    public void Bad_symbols_are_rejected(string text)
    {
        Assert.False(InstrumentSymbol.TryParse(text, out InstrumentSymbol? symbol));
        Assert.Null(symbol);
        Assert.Throws<FormatException>(() => InstrumentSymbol.Parse(text));
    }

    [Theory]
    [InlineData("H100.dallas.H.1677-09-21T00", false)] // starts before the earliest Unix-ns time (1677-09-21T00:12:43)
    [InlineData("H100.dallas.H.1677-09-21T01", true)]
    [InlineData("H100.dallas.M.1677-09", false)]
    [InlineData("H100.dallas.M.1677-10", true)]
    [InlineData("H100.dallas.H.2262-04-11T22", true)]
    [InlineData("H100.dallas.H.2262-04-11T23", false)] // ends after the latest (2262-04-11T23:47:16)
    [InlineData("H100.dallas.D.2262-04-11", false)]
    [InlineData("H100.dallas.M.2262-03", true)]
    public void Symbols_at_the_edges_of_the_time_range_parse_or_fail_without_throwing(string text, bool valid)
    {
        Assert.Equal(valid, InstrumentSymbol.TryParse(text, out InstrumentSymbol? symbol));
        if (valid) Assert.Equal(text, symbol!.ToString());
        // Describing it must not throw either, even where the listing time falls outside the range.
        DefaultSchedule().TryDescribe(text, out _);
    }

    [Fact]
    public void Null_and_overlong_symbols_are_rejected()
    {
        Assert.False(InstrumentSymbol.TryParse(null, out _));
        Assert.False(InstrumentSymbol.TryParse("H100." + new string('a', 80) + ".H.2026-11-26T14", out _));
    }

    [Fact]
    public void Symbols_round_trip()
    {
        // Any class × region × kind × window start from 1971 to 2250 formats and parses back to itself.
        var gen = Gen.Select(
            Gen.Int[0, GpuClasses.All.Count - 1],
            Gen.Int[0, ExpectedCodes.Length - 1],
            Gen.Int[0, 2],
            Gen.Long[Ns("1971-01-01T00:00:00Z"), Ns("2250-01-01T00:00:00Z")]);
        gen.Sample(t =>
        {
            var (gpu, region, kind, anyTime) = t;
            var k = (DeliveryKind)kind;
            long start = StartOfWindow(k, anyTime);
            var symbol = new InstrumentSymbol((GpuClass)gpu, ExpectedCodes[region], k, start);
            string text = symbol.ToString();
            Assert.True(InstrumentSymbol.TryParse(text, out InstrumentSymbol? back), text);
            Assert.Equal(symbol, back);
            Assert.Equal(text, back.ToString());
            Assert.True(back.DeliveryEnd > back.DeliveryStart);
        }, iter: 5_000);
    }

    [Fact]
    public void Arbitrary_text_never_throws_and_only_canonical_text_parses()
    {
        var gen = Gen.OneOf(
            Gen.String,
            Gen.Char["HMD0123456789-.TfrankH10"].Array[0, 40].Select(cs => new string(cs)),
            Gen.Char["H100.frankfurt.H.2026-11-26T14"].Array[25, 35].Select(cs => new string(cs)));
        gen.Sample(text =>
        {
            if (InstrumentSymbol.TryParse(text, out InstrumentSymbol? symbol))
                Assert.Equal(text, symbol.ToString());
        }, iter: 20_000);
    }

    [Fact]
    public void Symbol_constructor_rejects_unaligned_or_invalid_parts()
    {
        long h14 = Ns("2026-11-26T14:00:00Z");
        Assert.Throws<ArgumentOutOfRangeException>(() => new InstrumentSymbol(GpuClass.H100, "dallas", DeliveryKind.HourlySpot, h14 + 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => new InstrumentSymbol(GpuClass.H100, "dallas", DeliveryKind.DailyForward, h14));
        Assert.Throws<ArgumentOutOfRangeException>(() => new InstrumentSymbol(GpuClass.H100, "dallas", DeliveryKind.MonthlyForward, Ns("2026-11-02T00:00:00Z")));
        Assert.Throws<ArgumentOutOfRangeException>(() => new InstrumentSymbol((GpuClass)42, "dallas", DeliveryKind.HourlySpot, h14));
        Assert.Throws<ArgumentOutOfRangeException>(() => new InstrumentSymbol(GpuClass.H100, "dallas", (DeliveryKind)9, h14));
        Assert.Throws<ArgumentException>(() => new InstrumentSymbol(GpuClass.H100, "Dallas", DeliveryKind.HourlySpot, h14));
    }

    // ---- Instruments ------------------------------------------------------------------------------------------------

    [Fact]
    public void GpuHours_multiply_gpus_by_whole_hours_checked()
    {
        var schedule = DefaultSchedule();
        Instrument Describe(string s)
        {
            Assert.True(schedule.TryDescribe(s, out Instrument? i), s);
            return i;
        }

        Assert.Equal(8, Describe("H100.frankfurt.H.2026-11-26T14").GpuHours(8));
        Assert.Equal(8 * 24, Describe("H100.frankfurt.D.2026-11-27").GpuHours(8));
        Assert.Equal(8 * 744, Describe("H100.frankfurt.M.2026-12").GpuHours(8));
        Assert.Equal(8 * 720, Describe("H100.frankfurt.M.2026-11").GpuHours(8));
        Assert.Equal(672, Describe("H100.frankfurt.M.2027-02").GpuHours(1));
        Assert.Equal(696, Describe("H100.frankfurt.M.2028-02").GpuHours(1));
        Assert.Equal(0, Describe("H100.frankfurt.D.2026-11-27").GpuHours(0));
        Assert.Throws<ArgumentOutOfRangeException>(() => Describe("H100.frankfurt.H.2026-11-26T14").GpuHours(-1));
        Assert.Throws<OverflowException>(() => Describe("H100.frankfurt.D.2026-11-27").GpuHours(long.MaxValue / 10));
        Assert.Equal(long.MaxValue, Describe("H100.frankfurt.H.2026-11-26T14").GpuHours(long.MaxValue));
    }

    [Fact]
    public void Described_instruments_carry_the_class_band_and_the_policy_times()
    {
        var schedule = DefaultSchedule();
        Assert.True(schedule.TryDescribe("RTX4090.tokyo.D.2026-11-27", out Instrument? d));
        Assert.Equal(0, d.Id);
        Assert.Equal(GpuClasses.Spec(GpuClass.Rtx4090).Band, d.Band);
        Assert.Equal(Ns("2026-11-13T00:00:00Z"), d.TradingStart);     // 14 days ahead
        Assert.Equal(Ns("2026-11-26T23:00:00Z"), d.TradingEnd);       // 1 hour gate
        Assert.Equal(new InstrumentSymbol(GpuClass.Rtx4090, "tokyo", DeliveryKind.DailyForward, d.DeliveryStart), d.Key);

        Assert.True(schedule.TryDescribe("A100.dallas.M.2027-01", out Instrument? m));
        Assert.Equal(Ns("2026-10-01T00:00:00Z"), m.TradingStart);     // the 1st, 3 months before
        Assert.Equal(Ns("2026-12-31T00:00:00Z"), m.TradingEnd);       // 1 day gate

        Assert.False(schedule.TryDescribe("A100.shanghai.M.2027-01", out _)); // not a listed region
        Assert.False(schedule.TryDescribe("A100.dallas.M.2027-13", out _));
        var hourlyOnly = new InstrumentSchedule([GpuClass.H100], ["dallas"], new ListingPolicy { DailyAhead = 0, MonthlyAhead = 0 });
        Assert.False(hourlyOnly.TryDescribe("H100.dallas.D.2026-11-27", out _));
        Assert.False(hourlyOnly.TryDescribe("B200.dallas.H.2026-11-27T00", out _));
    }

    // ---- Schedule and registry over simulated time ------------------------------------------------------------------

    [Fact]
    public void Listing_and_gate_closure_follow_the_clock_exactly()
    {
        var time = new FakeTimeProvider(At("2026-11-26T00:00:00Z"));
        var registry = new InstrumentRegistry(DefaultSchedule());
        InstrumentChanges first = registry.Advance(time);

        // 65 instruments per class × region: 48 hourly (01:00 today … 00:00 on the 28th), 14 daily (27th … Dec 10th),
        // 3 monthly (Dec, Jan, Feb).
        Assert.Equal(65 * 5 * 13, first.Listed.Count);
        Assert.Equal(Enumerable.Range(1, first.Listed.Count), first.Listed.Select(i => i.Id));
        Assert.Empty(first.Expired);
        Assert.Equal(0, first.Skipped);
        Assert.True(registry.TryGetBySymbol("H100.frankfurt.H.2026-11-26T01", out _));
        Assert.False(registry.TryGetBySymbol("H100.frankfurt.H.2026-11-26T00", out _)); // closed at 23:55 yesterday
        Assert.True(registry.TryGetBySymbol("H100.frankfurt.H.2026-11-28T00", out _));
        Assert.False(registry.TryGetBySymbol("H100.frankfurt.H.2026-11-28T01", out _));
        Assert.True(registry.TryGetBySymbol("H100.frankfurt.D.2026-12-10", out _));
        Assert.False(registry.TryGetBySymbol("H100.frankfurt.D.2026-12-11", out _));
        Assert.True(registry.TryGetBySymbol("H100.frankfurt.M.2027-02", out _));
        Assert.False(registry.TryGetBySymbol("H100.frankfurt.M.2027-03", out _));

        Instrument h14 = registry.GetBySymbol("H100.frankfurt.H.2026-11-26T14");
        Assert.Equal(Ns("2026-11-24T14:00:00Z"), h14.TradingStart);
        Assert.Equal(Ns("2026-11-26T13:55:00Z"), h14.TradingEnd);

        // 13:54:59: still trading.
        time.SetUtcNow(At("2026-11-26T13:54:59Z"));
        InstrumentChanges before = registry.Advance(time);
        Assert.DoesNotContain(h14, before.Expired);
        Assert.True(registry.IsActive(h14.Id));
        Assert.True(h14.IsTradingAt(Ns("2026-11-26T13:55:00Z") - 1));

        // 13:55:00: the gate closes; the instrument stays known for delivery and settlement.
        time.SetUtcNow(At("2026-11-26T13:55:00Z"));
        InstrumentChanges gate = registry.Advance(time);
        Assert.Contains(h14, gate.Expired);
        Assert.All(gate.Expired, i => Assert.Equal(h14.DeliveryStart, i.DeliveryStart));
        Assert.Equal(5 * 13, gate.Expired.Count);
        Assert.Empty(gate.Listed);
        Assert.False(registry.IsActive(h14.Id));
        Assert.False(h14.IsTradingAt(registry.Now!.Value));
        Assert.Same(h14, registry.Get(h14.Id));
        Assert.Same(h14, registry.GetBySymbol(h14.Symbol));
        Assert.DoesNotContain(h14, registry.Active);

        // 13:59:59: the hour two days ahead is not listed yet; 14:00:00 lists it.
        time.SetUtcNow(At("2026-11-26T13:59:59Z"));
        Assert.True(registry.Advance(time).IsEmpty);
        Assert.False(registry.TryGetBySymbol("H100.frankfurt.H.2026-11-28T14", out _));

        time.SetUtcNow(At("2026-11-26T14:00:00Z"));
        InstrumentChanges fourteen = registry.Advance(time);
        Assert.Equal(5 * 13, fourteen.Listed.Count);
        Assert.Empty(fourteen.Expired);
        Assert.All(fourteen.Listed, i => Assert.Equal(Ns("2026-11-28T14:00:00Z"), i.DeliveryStart));
        Instrument h28 = registry.GetBySymbol("H100.frankfurt.H.2026-11-28T14");
        Assert.True(registry.IsActive(h28.Id));
        Assert.True(h28.Id > h14.Id);
        Assert.Equal(Ns("2026-11-26T14:00:00Z"), h28.TradingStart);

        // The daily for tomorrow closes at 23:00; the day 14 days after tomorrow lists at midnight.
        time.SetUtcNow(At("2026-11-26T22:59:59Z"));
        registry.Advance(time);
        Assert.True(registry.IsActive(registry.GetBySymbol("H100.frankfurt.D.2026-11-27").Id));
        time.SetUtcNow(At("2026-11-26T23:00:00Z"));
        Assert.Contains(registry.Advance(time).Expired, i => i.Symbol == "H100.frankfurt.D.2026-11-27");
        time.SetUtcNow(At("2026-11-26T23:59:59Z"));
        registry.Advance(time);
        Assert.False(registry.TryGetBySymbol("H100.frankfurt.D.2026-12-11", out _));
        time.SetUtcNow(At("2026-11-27T00:00:00Z"));
        Assert.Contains(registry.Advance(time).Listed, i => i.Symbol == "H100.frankfurt.D.2026-12-11");

        // The December monthly closes a day early (Nov 30th, 00:00); March lists on Dec 1st.
        time.SetUtcNow(At("2026-11-29T23:59:59Z"));
        registry.Advance(time);
        Assert.True(registry.IsActive(registry.GetBySymbol("H100.frankfurt.M.2026-12").Id));
        time.SetUtcNow(At("2026-11-30T00:00:00Z"));
        Assert.Contains(registry.Advance(time).Expired, i => i.Symbol == "H100.frankfurt.M.2026-12");
        time.SetUtcNow(At("2026-11-30T23:59:59Z"));
        registry.Advance(time);
        Assert.False(registry.TryGetBySymbol("H100.frankfurt.M.2027-03", out _));
        time.SetUtcNow(At("2026-12-01T00:00:00Z"));
        Assert.Contains(registry.Advance(time).Listed, i => i.Symbol == "H100.frankfurt.M.2027-03");
    }

    [Fact]
    public void A_simulated_day_minute_by_minute_matches_the_schedule_and_never_reuses_ids()
    {
        var schedule = DefaultSchedule();
        var time = new FakeTimeProvider(At("2026-11-26T00:00:00Z"));
        var registry = new InstrumentRegistry(schedule);
        var seen = new HashSet<int>();
        var everExpired = new HashSet<int>();
        int lastId = 0;

        for (int minute = 0; minute <= 24 * 60; minute++)
        {
            InstrumentChanges changes = registry.Advance(time);
            Assert.Equal(0, changes.Skipped);
            foreach (Instrument listed in changes.Listed)
            {
                Assert.True(listed.Id > lastId, "ids grow");
                Assert.True(seen.Add(listed.Id), "an id is never listed twice");
                lastId = listed.Id;
            }
            foreach (Instrument expired in changes.Expired)
            {
                Assert.True(everExpired.Add(expired.Id), "an instrument expires once");
                Assert.Contains(expired.Id, seen);
            }
            Assert.Equal(registry.LastId, lastId);

            long now = registry.Now!.Value;
            foreach (Instrument i in registry.Active)
                if (!i.IsTradingAt(now)) Assert.Fail($"{i.Symbol} is active at {now} outside its trading window");
            if (minute % 60 == 0 || minute % 60 == 55)
            {
                // The registry's active set is exactly what the stateless schedule says, in listing order.
                Assert.Equal(schedule.ActiveAt(now).Select(i => i.Symbol), registry.Active.Select(i => i.Symbol));
            }
            time.Advance(TimeSpan.FromMinutes(1));
        }

        // One hourly instrument per class × region listed per hour, and one daily at midnight: 24 + 1 batches.
        Assert.Equal(4225 + 65 * 24 + 65, seen.Count);
        Assert.Equal(65 * 24 + 65, everExpired.Count);
    }

    [Fact]
    public void Ids_do_not_depend_on_how_often_the_registry_is_advanced()
    {
        var schedule = DefaultSchedule();
        long t0 = Ns("2026-11-26T00:00:00Z");
        long end = t0 + 3 * Day + 7 * Hour + 13 * Minute;

        var fine = new InstrumentRegistry(schedule);
        for (long t = t0; t <= end; t += 10 * Minute) fine.Advance(t);
        fine.Advance(end);

        var coarse = new InstrumentRegistry(schedule);
        coarse.Advance(t0);
        InstrumentChanges jump = coarse.Advance(end);
        // Hourly instruments listed and closed within the jump (opened after t0, closed by the end) spent ids.
        Assert.True(jump.Skipped > 0);
        Assert.Equal(fine.LastId, coarse.LastId);
        Assert.Equal(fine.Active, coarse.Active);
        foreach (Instrument i in coarse.Active) Assert.Equal(i, fine.Get(i.Id));
        int skippedId = FirstSkippedId(coarse, fine);
        Assert.True(fine.TryGet(skippedId, out _));
        Assert.False(coarse.TryGet(skippedId, out _));
    }

    private static int FirstSkippedId(InstrumentRegistry coarse, InstrumentRegistry fine)
    {
        for (int id = 1; id <= fine.LastId; id++)
            if (!coarse.TryGet(id, out _)) return id;
        throw new InvalidOperationException("no skipped id");
    }

    [Fact]
    public void Any_sequence_of_advances_gives_the_same_ids_and_the_schedules_active_set()
    {
        var schedule = new InstrumentSchedule([GpuClass.A100, GpuClass.H100], ["tokyo", "dallas"],
            new ListingPolicy { HourlyAhead = 6, DailyAhead = 3, MonthlyAhead = 1, HourlyGateClosure = TimeSpan.FromMinutes(5) });
        long t0 = Ns("2026-12-30T21:17:00Z"); // crosses a day, a month and a year

        // Reference: one registry advanced once at t0 and once at each checkpoint.
        Gen.Long[0, 9 * Hour].Array[1, 20].Sample(steps =>
        {
            var stepped = new InstrumentRegistry(schedule);
            stepped.Advance(t0);
            long t = t0;
            var ids = new HashSet<int>();
            foreach (long step in steps)
            {
                t += step;
                InstrumentChanges c = stepped.Advance(t);
                foreach (Instrument i in c.Listed) Assert.True(ids.Add(i.Id));
                Assert.Equal(schedule.ActiveAt(t).Select(i => i.Symbol), stepped.Active.Select(i => i.Symbol));
            }

            var direct = new InstrumentRegistry(schedule);
            direct.Advance(t0);
            direct.Advance(t);
            Assert.Equal(direct.Active, stepped.Active);
            Assert.Equal(direct.LastId, stepped.LastId);
        }, iter: 300);
    }

    [Fact]
    public void Schedule_ignores_the_order_classes_and_regions_are_given_in()
    {
        long now = Ns("2026-11-26T10:30:00Z");
        var a = new InstrumentSchedule([GpuClass.H100, GpuClass.B200], ["tokyo", "dallas", "london"], ListingPolicy.Default);
        var b = new InstrumentSchedule([GpuClass.B200, GpuClass.H100], ["london", "dallas", "tokyo"], ListingPolicy.Default);
        Assert.Equal(a.ActiveAt(now), b.ActiveAt(now));
        Assert.Equal(new[] { "dallas", "london", "tokyo" }, a.Regions);

        IReadOnlyList<Instrument> active = a.ActiveAt(now);
        Assert.Equal(active.Order(InstrumentSchedule.ListingOrder), active);
        Assert.All(active, i => Assert.Equal(0, i.Id));
    }

    [Fact]
    public void OpeningIn_lists_exactly_the_instruments_whose_trading_opens_in_the_window()
    {
        var schedule = DefaultSchedule();
        long t = Ns("2026-11-26T13:00:00Z");
        Assert.Empty(schedule.OpeningIn(t, t));
        Assert.Empty(schedule.OpeningIn(t, t + Hour - 1));
        IReadOnlyList<Instrument> one = schedule.OpeningIn(t, t + Hour);
        Assert.Equal(65, one.Count);
        Assert.All(one, i => Assert.Equal(t + Hour, i.TradingStart));
        Assert.Equal(130, schedule.OpeningIn(t - 1, t + Hour).Count); // 13:00 and 14:00
        Assert.Throws<ArgumentOutOfRangeException>(() => schedule.OpeningIn(t, t - 1));
    }

    [Fact]
    public void Registry_rejects_time_going_backwards_and_ignores_a_repeat()
    {
        var registry = new InstrumentRegistry(DefaultSchedule());
        Assert.Null(registry.Now);
        Assert.Empty(registry.Active);
        long t = Ns("2026-11-26T12:00:00Z");
        registry.Advance(t);
        int last = registry.LastId;
        Assert.True(registry.Advance(t).IsEmpty);
        Assert.Equal(last, registry.LastId);
        Assert.Throws<ArgumentOutOfRangeException>(() => registry.Advance(t - 1));
        Assert.Equal(t, registry.Now);
        Assert.False(registry.TryGet(0, out _));
        Assert.Throws<KeyNotFoundException>(() => registry.Get(last + 1));
        Assert.Throws<KeyNotFoundException>(() => registry.GetBySymbol("H100.nowhere.H.2026-11-26T14"));
    }

    [Fact]
    public void Prune_forgets_delivered_instruments_but_never_reuses_their_ids()
    {
        var schedule = new InstrumentSchedule([GpuClass.H100], ["dallas"], new ListingPolicy { DailyAhead = 0, MonthlyAhead = 0 });
        var registry = new InstrumentRegistry(schedule);
        long t0 = Ns("2026-11-26T00:00:00Z");
        registry.Advance(t0);
        Instrument first = registry.GetBySymbol("H100.dallas.H.2026-11-26T01");
        registry.Advance(t0 + 3 * Hour);
        Assert.False(registry.IsActive(first.Id));

        Assert.Equal(0, registry.Prune(first.DeliveryEnd - 1));
        int pruned = registry.Prune(t0 + 3 * Hour);
        Assert.Equal(2, pruned); // the 01:00 and 02:00 hours were delivered; 03:00 is still in delivery
        Assert.False(registry.TryGet(first.Id, out _));
        Assert.False(registry.TryGetBySymbol(first.Symbol, out _));
        Assert.True(registry.TryGetBySymbol("H100.dallas.H.2026-11-26T03", out _));

        int before = registry.LastId;
        registry.Advance(t0 + 4 * Hour);
        Assert.All(registry.Active, i => Assert.True(i.Id != first.Id));
        Assert.Equal(before + 1, registry.LastId);
    }

    [Fact]
    public void Policy_is_validated_and_a_zero_horizon_lists_nothing()
    {
        Assert.Throws<ArgumentException>(() => new InstrumentSchedule([GpuClass.H100], ["dallas"],
            new ListingPolicy { HourlyAhead = 1, HourlyGateClosure = TimeSpan.FromHours(1) }));
        Assert.Throws<ArgumentException>(() => new InstrumentSchedule([GpuClass.H100], ["dallas"],
            new ListingPolicy { HourlyGateClosure = TimeSpan.FromTicks(-1) }));
        Assert.Throws<ArgumentException>(() => new InstrumentSchedule([GpuClass.H100], ["dallas"],
            new ListingPolicy { DailyAhead = -1 }));
        Assert.Throws<ArgumentException>(() => new InstrumentSchedule([GpuClass.H100], ["dallas"],
            new ListingPolicy { MonthlyAhead = ListingPolicy.MaxMonthlyAhead + 1 }));
        Assert.Throws<ArgumentException>(() => new InstrumentSchedule([GpuClass.H100], ["dallas"],
            new ListingPolicy { MonthlyAhead = 1, MonthlyGateClosure = TimeSpan.FromDays(28) }));
        Assert.Throws<ArgumentException>(() => new InstrumentSchedule([GpuClass.H100, GpuClass.H100], ["dallas"], ListingPolicy.Default));
        Assert.Throws<ArgumentException>(() => new InstrumentSchedule([GpuClass.H100], ["dallas", "dallas"], ListingPolicy.Default));
        Assert.Throws<ArgumentException>(() => new InstrumentSchedule([GpuClass.H100], ["Dallas"], ListingPolicy.Default));
        Assert.Throws<ArgumentOutOfRangeException>(() => new InstrumentSchedule([(GpuClass)7], ["dallas"], ListingPolicy.Default));

        var monthlyOnly = new InstrumentSchedule([GpuClass.H100], ["dallas"], new ListingPolicy { HourlyAhead = 0, DailyAhead = 0 });
        IReadOnlyList<Instrument> active = monthlyOnly.ActiveAt(Ns("2026-11-26T12:00:00Z"));
        Assert.Equal(new[] { "H100.dallas.M.2026-12", "H100.dallas.M.2027-01", "H100.dallas.M.2027-02" }, active.Select(i => i.Symbol));
        Assert.Empty(new InstrumentSchedule([GpuClass.H100], [], ListingPolicy.Default).ActiveAt(Ns("2026-11-26T12:00:00Z")));
    }

    [Fact]
    public void Timestamps_before_1970_align_like_later_ones()
    {
        var schedule = new InstrumentSchedule([GpuClass.H100], ["dallas"], ListingPolicy.Default);
        IReadOnlyList<Instrument> active = schedule.ActiveAt(Ns("1969-12-31T22:30:00Z"));
        Assert.Contains(active, i => i.Symbol == "H100.dallas.H.1969-12-31T23");
        Assert.Contains(active, i => i.Symbol == "H100.dallas.D.1970-01-01");
        Assert.DoesNotContain(active, i => i.Symbol == "H100.dallas.M.1970-01"); // its gate closed at 1969-12-31T00:00
        Assert.Contains(active, i => i.Symbol == "H100.dallas.M.1970-02");
        Assert.All(active, i => Assert.True(i.IsTradingAt(Ns("1969-12-31T22:30:00Z"))));
    }

    private static long StartOfWindow(DeliveryKind kind, long ns)
    {
        DateTime t = DateTime.UnixEpoch.AddTicks(ns / 100);
        DateTime start = kind switch
        {
            DeliveryKind.HourlySpot => new DateTime(t.Year, t.Month, t.Day, t.Hour, 0, 0, DateTimeKind.Utc),
            DeliveryKind.DailyForward => new DateTime(t.Year, t.Month, t.Day, 0, 0, 0, DateTimeKind.Utc),
            _ => new DateTime(t.Year, t.Month, 1, 0, 0, 0, DateTimeKind.Utc),
        };
        return (start.Ticks - DateTime.UnixEpoch.Ticks) * 100;
    }
}
