using System.Globalization;

namespace ComputeGrid.Energy.Series;

/// <summary>
/// Turns timestamped rows into a regular <see cref="IntervalSeries"/>: rows are placed on the grid by time
/// (so their order in the file does not matter), rows outside the requested period are skipped, repeated
/// intervals keep the first row, and missing intervals carry the last value forward. Every change is recorded in
/// the report.
/// </summary>
internal sealed class GridBuilder
{
    private const int GapsListed = 5;

    private readonly string _path;
    private readonly TimeSpan _step;
    private readonly long _stepTicks;
    private readonly DateTime? _from;
    private readonly DateTime? _to;
    private readonly List<Point> _points;
    private int _outsideRows;
    private long _lastBeforeTicks = long.MinValue;
    private double _lastBeforeValue;

    /// <param name="path">The source file, for messages.</param>
    /// <param name="step">The grid step.</param>
    /// <param name="fromUtc">The start of the period (inclusive), or null for the first row's interval.</param>
    /// <param name="toUtc">The end of the period (exclusive), or null for the end of the last row's interval.</param>
    /// <param name="capacity">The expected number of rows.</param>
    public GridBuilder(string path, TimeSpan step, DateTime? fromUtc, DateTime? toUtc, int capacity = 0)
    {
        _path = path;
        _step = step;
        _stepTicks = step.Ticks;
        _from = CheckBound(fromUtc, nameof(fromUtc));
        _to = CheckBound(toUtc, nameof(toUtc));
        if (_from is { } f && _to is { } t && t <= f)
            throw new ArgumentException($"The period is empty: {Show(f)} is not before {Show(t)}.", nameof(toUtc));
        _points = new List<Point>(capacity);
    }

    /// <summary>The number of rows added that overlap the period.</summary>
    public int RowsInPeriod => _points.Count;

    /// <summary>
    /// Adds a row whose value covers <paramref name="slots"/> grid steps from <paramref name="startUtc"/>
    /// (more than one when a coarser source is split into finer intervals).
    /// </summary>
    public void Add(DateTime startUtc, int slots, double value, int lineNumber)
    {
        long start = startUtc.Ticks;
        if (start % _stepTicks != 0)
            throw new SeriesFormatException(_path, lineNumber, $"{Show(startUtc)} does not start a {StepText(_step)} interval");
        long end = start + slots * _stepTicks;
        if (_from is { } from && end <= from.Ticks)
        {
            _outsideRows++;
            if (end - _stepTicks > _lastBeforeTicks)
            {
                _lastBeforeTicks = end - _stepTicks;
                _lastBeforeValue = value;
            }
            return;
        }
        if (_to is { } to && start >= to.Ticks)
        {
            _outsideRows++;
            return;
        }
        _points.Add(new Point(start, slots, value));
    }

    /// <summary>Places the rows on the grid, repairs it, and records what was done in <paramref name="report"/>.</summary>
    /// <exception cref="SeriesFormatException">No row falls in the period.</exception>
    public IntervalSeries Build(string name, string unit, RepairReport report, bool countNegatives)
    {
        if (_points.Count == 0)
        {
            string reason = _from is null && _to is null
                ? "the file has no data rows"
                : $"no rows between {(_from is { } f ? Show(f) : "the start of the file")} and {(_to is { } t ? Show(t) : "the end of the file")}";
            throw new SeriesFormatException(_path, null, reason);
        }

        long start = _from?.Ticks ?? _points.Min(p => p.Start);
        long end = _to?.Ticks ?? _points.Max(p => p.Start + p.Slots * _stepTicks);
        long length = (end - start + _stepTicks - 1) / _stepTicks;
        if (length > Array.MaxLength)
            throw new ArgumentOutOfRangeException("toUtc", $"The period holds {length:N0} intervals, too many for one series.");
        var values = new double[length];
        var present = new bool[length];

        int duplicateRows = 0, duplicatesDiffering = 0, negatives = 0;
        foreach (Point p in _points)
        {
            bool duplicate = false, differs = false;
            for (int k = 0; k < p.Slots; k++)
            {
                long t = p.Start + k * _stepTicks;
                if (t < start || t >= end) continue;
                int i = (int)((t - start) / _stepTicks);
                if (present[i])
                {
                    duplicate = true;
                    differs |= values[i] != p.Value;
                    continue;
                }
                present[i] = true;
                values[i] = p.Value;
                if (countNegatives && p.Value < 0) negatives++;
            }
            if (duplicate)
            {
                duplicateRows++;
                if (differs) duplicatesDiffering++;
            }
        }

        DateTime startUtc = new(start, DateTimeKind.Utc);
        if (_outsideRows > 0)
            report.Add(RepairKind.OutsidePeriod, _outsideRows,
                $"rows outside the period {Show(startUtc)} – {Show(new DateTime(end, DateTimeKind.Utc))} skipped");
        report.Add(RepairKind.DuplicateDropped, duplicateRows,
            $"rows repeating an earlier interval dropped, the first kept ({duplicatesDiffering} of them had a different value)");

        FillGaps(values, present, startUtc, report);

        report.Add(RepairKind.NegativeKept, negatives, "intervals with a negative value in the source, kept as they are");
        return new IntervalSeries(name, unit, startUtc, _step, values, report);
    }

    private void FillGaps(double[] values, bool[] present, DateTime startUtc, RepairReport report)
    {
        int first = Array.IndexOf(present, true);
        if (first > 0)
        {
            bool seeded = _lastBeforeTicks != long.MinValue;
            double seed = seeded ? _lastBeforeValue : values[first];
            Array.Fill(values, seed, 0, first);
            report.Add(RepairKind.GapFilled, first, seeded
                ? $"{first} {StepText(_step)} intervals at the start of the period, before its first row, filled with the last value before the period"
                : $"{first} {StepText(_step)} intervals at the start of the period, before the first row of the file, filled with the first value (carried backward)");
        }

        var gaps = new List<(int Start, int Length)>();
        int missing = 0;
        for (int i = first + 1; i < values.Length; i++)
        {
            if (present[i]) continue;
            int gapStart = i;
            while (i < values.Length && !present[i]) values[i++] = values[gapStart - 1];
            gaps.Add((gapStart, i - gapStart));
            missing += i - gapStart;
        }
        if (missing == 0) return;

        string listed = string.Join(", ", gaps.Take(GapsListed).Select(g => $"{Show(startUtc + _step * g.Start)} ×{g.Length}"));
        string more = gaps.Count > GapsListed ? $", and {gaps.Count - GapsListed} more" : "";
        report.Add(RepairKind.GapFilled, missing,
            $"{missing} missing {StepText(_step)} intervals in {gaps.Count} gaps, each filled with the last value before it (gaps start at {listed}{more})");
    }

    private DateTime? CheckBound(DateTime? bound, string parameter)
    {
        if (bound is not { } b) return null;
        if (b.Kind != DateTimeKind.Utc)
            throw new ArgumentException($"{Show(b)} must be a UTC time (DateTimeKind.Utc).", parameter);
        if (b.Ticks % _stepTicks != 0)
            throw new ArgumentException($"{Show(b)} does not start a {StepText(_step)} interval.", parameter);
        return b;
    }

    /// <summary>A UTC time as the messages show it.</summary>
    internal static string Show(DateTime utc) =>
        utc.ToString(utc.TimeOfDay == TimeSpan.Zero ? "yyyy-MM-dd" : "yyyy-MM-dd HH:mm", CultureInfo.InvariantCulture) + " UTC";

    private static string StepText(TimeSpan step) => step.TotalMinutes switch
    {
        15 => "15-minute",
        30 => "30-minute",
        60 => "hourly",
        1440 => "daily",
        _ => $"{step}",
    };

    private readonly record struct Point(long Start, int Slots, double Value);
}
