namespace ComputeGrid.Energy.Series;

/// <summary>
/// A regular time series on a UTC grid: <c>Values[i]</c> covers <c>[StartUtc + i·Step, StartUtc + (i+1)·Step)</c>.
/// Values are rates as the market publishes them (USD/MWh, MW, USD per TH/s per day), never money amounts:
/// money is computed from them in <c>long</c> micro-USD by the accounting.
/// </summary>
public sealed class IntervalSeries
{
    public IntervalSeries(string name, string unit, DateTime startUtc, TimeSpan step, double[] values, RepairReport repairs)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentNullException.ThrowIfNull(values);
        ArgumentNullException.ThrowIfNull(repairs);
        if (startUtc.Kind != DateTimeKind.Utc) throw new ArgumentException("The start must be UTC.", nameof(startUtc));
        if (step <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(step));
        Name = name;
        Unit = unit;
        StartUtc = startUtc;
        Step = step;
        Values = values;
        Repairs = repairs;
    }

    /// <summary>What the series is, e.g. <c>ERCOT HB_WEST real-time price</c>.</summary>
    public string Name { get; }

    /// <summary>The unit of every value, e.g. <c>USD/MWh</c>.</summary>
    public string Unit { get; }

    /// <summary>The start of the first interval (UTC).</summary>
    public DateTime StartUtc { get; }

    /// <summary>The length of every interval.</summary>
    public TimeSpan Step { get; }

    /// <summary>One value per interval, no gaps (gaps in the source were repaired and reported in <see cref="Repairs"/>).</summary>
    public double[] Values { get; }

    /// <summary>What the loader changed to make the series regular.</summary>
    public RepairReport Repairs { get; }

    /// <summary>The number of intervals.</summary>
    public int Count => Values.Length;

    /// <summary>The end of the last interval (exclusive).</summary>
    public DateTime EndUtc => StartUtc + Step * Values.Length;

    /// <summary>The index of the interval that contains <paramref name="utc"/>, or -1 when outside the series.</summary>
    public int IndexOf(DateTime utc)
    {
        if (utc < StartUtc || utc >= EndUtc) return -1;
        return (int)((utc - StartUtc).Ticks / Step.Ticks);
    }
}

/// <summary>The kinds of repair a loader may make to a source file, each reported with a count.</summary>
public enum RepairKind
{
    /// <summary>Intervals missing from the source, filled by carrying the last known value forward.</summary>
    GapFilled,
    /// <summary>Rows whose timestamp appeared before; the first was kept.</summary>
    DuplicateDropped,
    /// <summary>The repeated local hour at the end of daylight saving, mapped to its own UTC hour.</summary>
    DstRepeatedHour,
    /// <summary>The local hour skipped at the start of daylight saving (nothing to repair; reported).</summary>
    DstSkippedHour,
    /// <summary>Negative prices, kept as they are (they are real), counted.</summary>
    NegativeKept,
    /// <summary>A coarser series split into equal finer intervals (e.g. 30-minute JEPX slots into two 15-minute ones).</summary>
    Upsampled,
    /// <summary>Values converted from another currency or unit at a stated rate.</summary>
    Converted,
    /// <summary>Numbers written with thousands separators, parsed after removing them.</summary>
    ThousandsSeparator,
    /// <summary>Rows outside the requested period, skipped.</summary>
    OutsidePeriod,
}

/// <summary>One repair: its kind, how many intervals or rows it touched, and a plain sentence saying what was done.</summary>
public sealed record Repair(RepairKind Kind, int Count, string Detail);

/// <summary>The repairs a loader made, to print ("what was repaired") next to any result that used the series.</summary>
public sealed class RepairReport
{
    private readonly List<Repair> _items = [];

    /// <summary>The repairs, in the order they were made.</summary>
    public IReadOnlyList<Repair> Items => _items;

    /// <summary>Records a repair (a zero count is ignored).</summary>
    public void Add(RepairKind kind, int count, string detail)
    {
        if (count > 0) _items.Add(new Repair(kind, count, detail));
    }

    /// <summary>The total count of one kind.</summary>
    public int CountOf(RepairKind kind) => _items.Where(r => r.Kind == kind).Sum(r => r.Count);

    /// <inheritdoc />
    public override string ToString() =>
        _items.Count == 0 ? "no repairs" : string.Join("; ", _items.Select(r => $"{r.Kind} ×{r.Count}: {r.Detail}"));
}
