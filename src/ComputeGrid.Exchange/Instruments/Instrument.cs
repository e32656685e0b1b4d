using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using ComputeGrid.Exchange.Matching;

namespace ComputeGrid.Exchange.Instruments;

/// <summary>
/// The delivery window of an instrument. All windows are aligned in UTC: an hour, a calendar day, a calendar
/// month. Values are stable (journals, id ordering): add new kinds at the end.
/// </summary>
public enum DeliveryKind : byte
{
    /// <summary>One UTC hour, [HH:00, HH+1:00). Symbol letter <c>H</c>.</summary>
    HourlySpot = 0,
    /// <summary>One UTC calendar day, [00:00, next 00:00). Symbol letter <c>D</c>.</summary>
    DailyForward = 1,
    /// <summary>One UTC calendar month, [1st 00:00, next 1st 00:00). Symbol letter <c>M</c>.</summary>
    MonthlyForward = 2,
}

/// <summary>What an instrument trades. Stable values (snapshots): add new classes at the end.</summary>
public enum InstrumentClass : byte
{
    /// <summary>GPU capacity of one class in one region over one delivery window; a fill makes a lease.</summary>
    Compute = 0,
    /// <summary>The share tokens of one node (<see cref="Instrument.Node"/>), priced in micro-USD per share; a fill moves shares.</summary>
    NodeShares = 1,
}

/// <summary>
/// A tradable contract. Most are GPU capacity of one class, in one region, over one delivery window. Prices are micro-USD
/// per GPU-hour within <paramref name="Band"/>; quantities are GPU-hours. All times are Unix nanoseconds, UTC.
/// Instruments are made by <see cref="InstrumentSchedule"/> and numbered by <see cref="InstrumentRegistry"/>.
/// </summary>
/// <param name="Id">Exchange-wide id, assigned by <see cref="InstrumentRegistry"/> and never reused; 0 = not yet registered.</param>
/// <param name="Symbol">The canonical symbol, e.g. <c>H100.frankfurt.H.2026-11-26T14</c> (see <see cref="InstrumentSymbol"/>).</param>
/// <param name="Gpu">The GPU class delivered.</param>
/// <param name="Region">The region code (see <see cref="RegionCatalog"/>).</param>
/// <param name="Kind">The delivery window's kind.</param>
/// <param name="DeliveryStart">Start of delivery (inclusive).</param>
/// <param name="DeliveryEnd">End of delivery (exclusive).</param>
/// <param name="TradingStart">When the instrument is listed (inclusive).</param>
/// <param name="TradingEnd">Gate closure: when trading stops (exclusive), before delivery starts.</param>
/// <param name="Band">Tick and price band of the instrument's book.</param>
public sealed record Instrument(
    int Id,
    string Symbol,
    GpuClass Gpu,
    string Region,
    DeliveryKind Kind,
    long DeliveryStart,
    long DeliveryEnd,
    long TradingStart,
    long TradingEnd,
    PriceBand Band)
{
    /// <summary>What the instrument trades (compute capacity unless made by <see cref="ForNodeShares"/>).</summary>
    public InstrumentClass Class { get; init; }

    /// <summary>For <see cref="InstrumentClass.NodeShares"/>: the node (its principal id) whose shares trade; 0 otherwise.</summary>
    public long Node { get; init; }

    /// <summary>
    /// The unit quantities come in: whole hours in the delivery window (1 for hourly spot, 24 for a day, 672–744 for a
    /// month), so a quantity is whole GPUs over the window; 1 for shares (whole shares).
    /// </summary>
    public long Hours => Class == InstrumentClass.NodeShares ? 1 : checked(DeliveryEnd - DeliveryStart) / DeliveryCalendar.NsPerHour;

    /// <summary>
    /// The price band of share instruments: 0.01 to 100 USD per share in steps of a cent (as stocks trade), 10,000 levels.
    /// A book's ladder is indexed directly by tick and allocated whole with the book, so a band spans at most
    /// <see cref="GpuClasses.MaxLevels"/> ticks, and fewer is cheaper (100,000 USD in steps of 0.001 would allocate 10^8
    /// levels a side, some 4 GB, for the first order); an issuer picks its supply so that a share's price falls inside.
    /// </summary>
    public static PriceBand ShareBand { get; } = new(10_000, 100_000_000, 10_000);

    /// <summary>The symbol of node <paramref name="node"/>'s shares: <c>SHR-{node}</c>.</summary>
    public static string NodeSharesSymbol(long node) => "SHR-" + node.ToString(CultureInfo.InvariantCulture);

    /// <summary>
    /// The instrument of node <paramref name="node"/>'s shares, listed at <paramref name="listedAt"/>: it trades from then
    /// on and never expires (no delivery window; its "delivery" fields are the listing time and the end of time).
    /// </summary>
    public static Instrument ForNodeShares(int id, long node, long listedAt) =>
        new(id, NodeSharesSymbol(node), default, "", DeliveryKind.HourlySpot, listedAt, long.MaxValue, listedAt, long.MaxValue, ShareBand)
        {
            Class = InstrumentClass.NodeShares, Node = node,
        };

    /// <summary>The GPU-hours delivered by <paramref name="gpus"/> GPUs over the whole window (checked).</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="gpus"/> is negative.</exception>
    /// <exception cref="OverflowException">The product does not fit a <see cref="long"/>.</exception>
    public long GpuHours(long gpus)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(gpus);
        return checked(gpus * Hours);
    }

    /// <summary>True while the instrument trades: <see cref="TradingStart"/> ≤ <paramref name="nowNs"/> &lt; <see cref="TradingEnd"/>.</summary>
    public bool IsTradingAt(long nowNs) => nowNs >= TradingStart && nowNs < TradingEnd;

    /// <summary>The parsed form of <see cref="Symbol"/> (GPU, region, kind, delivery start).</summary>
    public InstrumentSymbol Key => new(Gpu, Region, Kind, DeliveryStart);
}

/// <summary>
/// The parts of an instrument symbol, <c>{GPU}.{region}.{H|D|M}.{delivery start}</c>, the start written in UTC:
/// <list type="bullet">
/// <item>hourly spot: <c>H100.frankfurt.H.2026-11-26T14</c> (the hour 14:00–15:00),</item>
/// <item>daily forward: <c>H100.frankfurt.D.2026-11-27</c>,</item>
/// <item>monthly forward: <c>H100.frankfurt.M.2026-12</c>.</item>
/// </list>
/// The text form is canonical: <see cref="TryParse"/> accepts exactly what <see cref="ToString"/> writes, so a
/// symbol names one instrument and one instrument has one symbol. Parsing checks the syntax only; whether a region
/// is in the catalogue or an instrument is listed is the registry's question.
/// </summary>
public sealed record InstrumentSymbol
{
    private const char Separator = '.';

    /// <summary>Makes a symbol from its parts.</summary>
    /// <exception cref="ArgumentOutOfRangeException">An undefined GPU class or kind, or a start that is not the start
    /// of a window of <paramref name="kind"/>, or whose window ends past the range of Unix nanoseconds.</exception>
    /// <exception cref="ArgumentException">A malformed region code (see <see cref="RegionCatalog.IsValidCode"/>).</exception>
    public InstrumentSymbol(GpuClass gpu, string region, DeliveryKind kind, long deliveryStart)
    {
        if (!GpuClasses.IsDefined(gpu)) throw new ArgumentOutOfRangeException(nameof(gpu), gpu, "Not a defined GPU class.");
        ArgumentNullException.ThrowIfNull(region);
        if (!RegionCatalog.IsValidCode(region)) throw new ArgumentException($"'{region}' is not a valid region code.", nameof(region));
        if (!Enum.IsDefined(kind)) throw new ArgumentOutOfRangeException(nameof(kind), kind, "Not a defined delivery kind.");
        if (!DeliveryCalendar.TryEnd(kind, deliveryStart, out long end) || !DeliveryCalendar.IsAligned(kind, deliveryStart))
            throw new ArgumentOutOfRangeException(nameof(deliveryStart), deliveryStart, $"Not the start of a {kind} window in range.");
        Gpu = gpu;
        Region = region;
        Kind = kind;
        DeliveryStart = deliveryStart;
        DeliveryEnd = end;
    }

    /// <summary>The GPU class.</summary>
    public GpuClass Gpu { get; }

    /// <summary>The region code.</summary>
    public string Region { get; }

    /// <summary>The delivery kind.</summary>
    public DeliveryKind Kind { get; }

    /// <summary>Start of delivery (Unix ns, UTC).</summary>
    public long DeliveryStart { get; }

    /// <summary>End of delivery (Unix ns, UTC, exclusive).</summary>
    public long DeliveryEnd { get; }

    /// <summary>The symbol letter of a kind: H, D or M.</summary>
    public static char KindLetter(DeliveryKind kind) => kind switch
    {
        DeliveryKind.HourlySpot => 'H',
        DeliveryKind.DailyForward => 'D',
        DeliveryKind.MonthlyForward => 'M',
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "Not a defined delivery kind."),
    };

    /// <summary>The canonical text, e.g. <c>H100.frankfurt.H.2026-11-26T14</c>.</summary>
    public override string ToString() => Format(Gpu, Region, Kind, DeliveryStart);

    // Writes the symbol of parts already known to be valid. Digits are written by hand rather than through
    // DateTime.ToString: the schedule formats thousands of symbols per call and the fixed layout needs no culture.
    internal static string Format(GpuClass gpu, string region, DeliveryKind kind, long deliveryStart)
    {
        DateTime start = DeliveryCalendar.ToDateTime(deliveryStart);
        string code = GpuClasses.Code(gpu);
        int whenLength = kind switch { DeliveryKind.HourlySpot => 13, DeliveryKind.DailyForward => 10, _ => 7 };
        int length = code.Length + 1 + region.Length + 3 + whenLength;
        return string.Create(length, (code, region, kind, start), static (span, state) =>
        {
            var (code, region, kind, start) = state;
            int p = 0;
            code.CopyTo(span);
            p += code.Length;
            span[p++] = Separator;
            region.CopyTo(span[p..]);
            p += region.Length;
            span[p++] = Separator;
            span[p++] = KindLetter(kind);
            span[p++] = Separator;
            Digits(span, ref p, start.Year, 4);
            span[p++] = '-';
            Digits(span, ref p, start.Month, 2);
            if (kind == DeliveryKind.MonthlyForward) return;
            span[p++] = '-';
            Digits(span, ref p, start.Day, 2);
            if (kind == DeliveryKind.DailyForward) return;
            span[p++] = 'T';
            Digits(span, ref p, start.Hour, 2);
        });
    }

    private static void Digits(Span<char> span, ref int p, int value, int width)
    {
        for (int i = width - 1; i >= 0; i--)
        {
            span[p + i] = (char)('0' + value % 10);
            value /= 10;
        }
        p += width;
    }

    /// <summary>Parses a canonical symbol; false (never an exception) for anything else.</summary>
    public static bool TryParse([NotNullWhen(true)] string? text, [NotNullWhen(true)] out InstrumentSymbol? symbol)
    {
        symbol = null;
        // The longest valid symbol is short; refusing long input first keeps hostile input cheap.
        if (text is null || text.Length > 64) return false;
        ReadOnlySpan<char> s = text;

        int a = s.IndexOf(Separator);
        if (a < 0) return false;
        int b = s[(a + 1)..].IndexOf(Separator);
        if (b < 0) return false;
        b += a + 1;
        int c = s[(b + 1)..].IndexOf(Separator);
        if (c < 0) return false;
        c += b + 1;
        ReadOnlySpan<char> gpuPart = s[..a], regionPart = s[(a + 1)..b], kindPart = s[(b + 1)..c], whenPart = s[(c + 1)..];
        if (whenPart.Contains(Separator)) return false;

        if (!GpuClasses.TryParseCode(gpuPart, out GpuClass gpu)) return false;
        if (!RegionCatalog.IsValidCode(regionPart)) return false;
        if (kindPart.Length != 1) return false;
        DeliveryKind kind;
        switch (kindPart[0])
        {
            case 'H': kind = DeliveryKind.HourlySpot; break;
            case 'D': kind = DeliveryKind.DailyForward; break;
            case 'M': kind = DeliveryKind.MonthlyForward; break;
            default: return false;
        }
        if (!TryParseStart(kind, whenPart, out long start)) return false;
        if (!DeliveryCalendar.TryEnd(kind, start, out _)) return false;

        symbol = new InstrumentSymbol(gpu, regionPart.ToString(), kind, start);
        return true;
    }

    /// <summary>Parses a canonical symbol.</summary>
    /// <exception cref="FormatException">Not a canonical symbol.</exception>
    public static InstrumentSymbol Parse(string text) =>
        TryParse(text, out InstrumentSymbol? symbol) ? symbol : throw new FormatException($"'{text}' is not an instrument symbol.");

    // Fixed-width fields only ("yyyy-MM-ddTHH", "yyyy-MM-dd", "yyyy-MM"): parsing by position rather than with
    // DateTime.TryParseExact keeps the form canonical (no leniency about widths, spaces or signs).
    private static bool TryParseStart(DeliveryKind kind, ReadOnlySpan<char> s, out long startNs)
    {
        startNs = 0;
        int expected = kind switch { DeliveryKind.HourlySpot => 13, DeliveryKind.DailyForward => 10, _ => 7 };
        if (s.Length != expected) return false;
        if (!TryDigits(s[..4], out int year) || s[4] != '-' || !TryDigits(s.Slice(5, 2), out int month)) return false;
        int day = 1, hour = 0;
        if (kind != DeliveryKind.MonthlyForward && (s[7] != '-' || !TryDigits(s.Slice(8, 2), out day))) return false;
        if (kind == DeliveryKind.HourlySpot && (s[10] != 'T' || !TryDigits(s.Slice(11, 2), out hour))) return false;
        if (year < 1 || month is < 1 or > 12 || day < 1 || day > DateTime.DaysInMonth(year, month) || hour > 23) return false;
        return DeliveryCalendar.TryToUnixNs(new DateTime(year, month, day, hour, 0, 0, DateTimeKind.Utc), out startNs);
    }

    private static bool TryDigits(ReadOnlySpan<char> s, out int value)
    {
        value = 0;
        foreach (char ch in s)
        {
            if (!char.IsAsciiDigit(ch)) return false;
            value = value * 10 + (ch - '0');
        }
        return true;
    }
}

/// <summary>UTC calendar arithmetic on Unix nanoseconds for delivery windows (floor semantics, checked).</summary>
internal static class DeliveryCalendar
{
    public const long NsPerTick = 100;
    public const long NsPerHour = 3_600_000_000_000L;
    public const long NsPerDay = 24 * NsPerHour;

    private static readonly long EpochTicks = DateTime.UnixEpoch.Ticks;

    /// <summary>Floor division: windows before 1970 align like those after.</summary>
    public static long FloorDiv(long a, long b)
    {
        long q = a / b;
        return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
    }

    public static DateTime ToDateTime(long ns) =>
        new(checked(FloorDiv(ns, NsPerTick) + EpochTicks), DateTimeKind.Utc);

    public static long ToUnixNs(DateTime utc) => checked((utc.Ticks - EpochTicks) * NsPerTick);

    public static bool TryToUnixNs(DateTime utc, out long ns)
    {
        long ticks = utc.Ticks - EpochTicks;
        if (ticks > long.MaxValue / NsPerTick || ticks < long.MinValue / NsPerTick)
        {
            ns = 0;
            return false;
        }
        ns = ticks * NsPerTick;
        return true;
    }

    /// <summary>Start of the window of <paramref name="kind"/> that contains <paramref name="ns"/>.</summary>
    public static long Floor(DeliveryKind kind, long ns) => kind switch
    {
        DeliveryKind.HourlySpot => checked(FloorDiv(ns, NsPerHour) * NsPerHour),
        DeliveryKind.DailyForward => checked(FloorDiv(ns, NsPerDay) * NsPerDay),
        DeliveryKind.MonthlyForward => MonthFloor(ns),
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };

    /// <summary>The first window start at or after <paramref name="ns"/>.</summary>
    public static long AlignUp(DeliveryKind kind, long ns)
    {
        long floor = Floor(kind, ns);
        return floor == ns ? ns : End(kind, floor);
    }

    public static bool IsAligned(DeliveryKind kind, long ns) => Floor(kind, ns) == ns;

    /// <summary>End (exclusive) of the window that starts at <paramref name="start"/>.</summary>
    public static long End(DeliveryKind kind, long start) => kind switch
    {
        DeliveryKind.HourlySpot => checked(start + NsPerHour),
        DeliveryKind.DailyForward => checked(start + NsPerDay),
        DeliveryKind.MonthlyForward => AddMonths(start, 1),
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };

    public static bool TryEnd(DeliveryKind kind, long start, out long end)
    {
        try
        {
            end = End(kind, start);
            return true;
        }
        catch (Exception e) when (e is OverflowException or ArgumentOutOfRangeException)
        {
            end = 0;
            return false;
        }
    }

    public static long MonthFloor(long ns)
    {
        DateTime t = ToDateTime(ns);
        return ToUnixNs(new DateTime(t.Year, t.Month, 1, 0, 0, 0, DateTimeKind.Utc));
    }

    /// <summary>Adds whole months to a month start (only month starts, so no day clamping can occur).</summary>
    public static long AddMonths(long monthStartNs, int months) => ToUnixNs(ToDateTime(monthStartNs).AddMonths(months));
}
