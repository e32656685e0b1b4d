using System.Diagnostics.CodeAnalysis;
using ComputeGrid.Core;

namespace ComputeGrid.Exchange.Instruments;

/// <summary>
/// How far ahead instruments are listed and when their trading closes. An instrument with delivery start D is
/// listed (trading opens) at D minus the horizon and closes at D minus the gate closure:
/// <list type="bullet">
/// <item>hourly spot: opens <see cref="HourlyAhead"/> hours before D, closes <see cref="HourlyGateClosure"/> before D;</item>
/// <item>daily forward: opens <see cref="DailyAhead"/> days before D, closes <see cref="DailyGateClosure"/> before D;</item>
/// <item>monthly forward: opens on the 1st of the month <see cref="MonthlyAhead"/> months before D (calendar
/// months differ in length, so the horizon counts months), closes <see cref="MonthlyGateClosure"/> before D.</item>
/// </list>
/// A horizon of 0 lists no instruments of that kind. The gate closure exists so that capacity sold can still be
/// scheduled onto nodes before delivery begins.
/// </summary>
public sealed record ListingPolicy
{
    /// <summary>The largest horizon of each kind: about ten years, which keeps every computed time within range.</summary>
    public const int MaxHourlyAhead = 87_840, MaxDailyAhead = 3_660, MaxMonthlyAhead = 120;

    /// <summary>The default policy: 48 hours, 14 days and 3 months ahead; gates 5 minutes, 1 hour and 1 day.</summary>
    public static ListingPolicy Default { get; } = new();

    /// <summary>How many hours ahead hourly spot instruments are listed (default 48).</summary>
    public int HourlyAhead { get; init; } = 48;

    /// <summary>How many days ahead daily forwards are listed (default 14).</summary>
    public int DailyAhead { get; init; } = 14;

    /// <summary>How many calendar months ahead monthly forwards are listed (default 3).</summary>
    public int MonthlyAhead { get; init; } = 3;

    /// <summary>Hourly trading closes this long before delivery starts (default 5 minutes).</summary>
    public TimeSpan HourlyGateClosure { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>Daily trading closes this long before delivery starts (default 1 hour).</summary>
    public TimeSpan DailyGateClosure { get; init; } = TimeSpan.FromHours(1);

    /// <summary>Monthly trading closes this long before delivery starts (default 1 day).</summary>
    public TimeSpan MonthlyGateClosure { get; init; } = TimeSpan.FromDays(1);

    /// <summary>The horizon of a kind, in its own unit (hours, days, months).</summary>
    public int Ahead(DeliveryKind kind) => kind switch
    {
        DeliveryKind.HourlySpot => HourlyAhead,
        DeliveryKind.DailyForward => DailyAhead,
        DeliveryKind.MonthlyForward => MonthlyAhead,
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "Not a defined delivery kind."),
    };

    /// <summary>The gate closure of a kind.</summary>
    public TimeSpan GateClosure(DeliveryKind kind) => kind switch
    {
        DeliveryKind.HourlySpot => HourlyGateClosure,
        DeliveryKind.DailyForward => DailyGateClosure,
        DeliveryKind.MonthlyForward => MonthlyGateClosure,
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "Not a defined delivery kind."),
    };

    /// <summary>
    /// Throws unless every horizon is within 0 and its maximum and every listed kind's gate closure is at least 0
    /// and shorter than its shortest horizon (else an instrument would close before it opens).
    /// </summary>
    /// <exception cref="ArgumentException">The policy is invalid; the message says which part.</exception>
    public void Validate()
    {
        Check(DeliveryKind.HourlySpot, MaxHourlyAhead, TimeSpan.FromHours(HourlyAhead));
        Check(DeliveryKind.DailyForward, MaxDailyAhead, TimeSpan.FromDays(DailyAhead));
        // The shortest span of k calendar months is k × 28 days (February counts toward it at most once per
        // year, but 28 days is the safe bound for any k).
        Check(DeliveryKind.MonthlyForward, MaxMonthlyAhead, TimeSpan.FromDays(28L * MonthlyAhead));
    }

    private void Check(DeliveryKind kind, int max, TimeSpan shortestHorizon)
    {
        int ahead = Ahead(kind);
        TimeSpan gate = GateClosure(kind);
        if (ahead < 0 || ahead > max)
            throw new ArgumentException($"{kind}: the horizon {ahead} must lie within 0 and {max}.");
        if (gate < TimeSpan.Zero)
            throw new ArgumentException($"{kind}: the gate closure {gate} must not be negative.");
        if (ahead > 0 && gate >= shortestHorizon)
            throw new ArgumentException($"{kind}: the gate closure {gate} must be shorter than the horizon ({shortestHorizon}).");
    }
}

/// <summary>
/// Which instruments exist at a given time: every combination of the configured GPU classes, regions and delivery
/// kinds, listed and closed by a <see cref="ListingPolicy"/>. The schedule is a pure function of the time passed in
/// (it never reads a clock) and holds no state, so any component can ask it about any time; ids are assigned by
/// <see cref="InstrumentRegistry"/>, and instruments returned here carry <see cref="Instrument.Id"/> 0.
/// <para>
/// Results are in <see cref="ListingOrder"/>: by trading start, then delivery start, kind, GPU class (enum value)
/// and region code (ordinal). Listing time comes first so that ids assigned in this order never depend on how
/// often the registry is advanced (see <see cref="InstrumentRegistry"/>).
/// </para>
/// </summary>
public sealed class InstrumentSchedule
{
    private static readonly DeliveryKind[] Kinds = [DeliveryKind.HourlySpot, DeliveryKind.DailyForward, DeliveryKind.MonthlyForward];

    private readonly GpuClass[] _classes;
    private readonly string[] _regions;
    private readonly long[] _gateNs = new long[Kinds.Length];

    /// <summary>A schedule over the given classes and region codes.</summary>
    /// <param name="classes">GPU classes to list (duplicates are an error; the order given does not matter).</param>
    /// <param name="regions">Region codes to list (see <see cref="RegionCatalog.Codes"/>; duplicates are an error; order does not matter).</param>
    /// <param name="policy">Horizons and gate closures.</param>
    /// <exception cref="ArgumentException">A duplicate, a malformed region code, or an invalid policy.</exception>
    /// <exception cref="ArgumentOutOfRangeException">An undefined GPU class.</exception>
    public InstrumentSchedule(IEnumerable<GpuClass> classes, IEnumerable<string> regions, ListingPolicy policy)
    {
        ArgumentNullException.ThrowIfNull(classes);
        ArgumentNullException.ThrowIfNull(regions);
        ArgumentNullException.ThrowIfNull(policy);
        policy.Validate();

        // Sorted copies: the listing order (and so every id) must not depend on the order the caller passed.
        _classes = [.. classes.Order()];
        foreach (GpuClass gpu in _classes)
            if (!GpuClasses.IsDefined(gpu)) throw new ArgumentOutOfRangeException(nameof(classes), gpu, "Not a defined GPU class.");
        if (_classes.Distinct().Count() != _classes.Length) throw new ArgumentException("A GPU class is given twice.", nameof(classes));

        _regions = [.. regions.Order(StringComparer.Ordinal)];
        foreach (string region in _regions)
            if (region is null || !RegionCatalog.IsValidCode(region))
                throw new ArgumentException($"'{region}' is not a valid region code.", nameof(regions));
        if (_regions.Distinct(StringComparer.Ordinal).Count() != _regions.Length)
            throw new ArgumentException("A region is given twice.", nameof(regions));

        Policy = policy;
        foreach (DeliveryKind kind in Kinds)
            _gateNs[(int)kind] = checked(policy.GateClosure(kind).Ticks * DeliveryCalendar.NsPerTick);
    }

    /// <summary>A schedule over every GPU class and every region of <paramref name="regions"/>.</summary>
    public InstrumentSchedule(RegionCatalog regions, ListingPolicy policy)
        : this(GpuClasses.All, (regions ?? throw new ArgumentNullException(nameof(regions))).Codes, policy)
    {
    }

    /// <summary>The order ids are assigned in: trading start, delivery start, kind, GPU class, region code (ordinal).</summary>
    public static IComparer<Instrument> ListingOrder { get; } = Comparer<Instrument>.Create(CompareListing);

    /// <summary>The classes listed, in enum order.</summary>
    public IReadOnlyList<GpuClass> Classes => _classes;

    /// <summary>The region codes listed, in ordinal order.</summary>
    public IReadOnlyList<string> Regions => _regions;

    /// <summary>The policy.</summary>
    public ListingPolicy Policy { get; }

    /// <summary>When an instrument of <paramref name="kind"/> delivering from <paramref name="deliveryStart"/> is listed.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Not the start of a window of that kind.</exception>
    public long TradingStartOf(DeliveryKind kind, long deliveryStart)
    {
        RequireAligned(kind, deliveryStart);
        return TradingStart(kind, deliveryStart);
    }

    /// <summary>When trading of an instrument of <paramref name="kind"/> delivering from <paramref name="deliveryStart"/> closes.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Not the start of a window of that kind.</exception>
    public long TradingEndOf(DeliveryKind kind, long deliveryStart)
    {
        RequireAligned(kind, deliveryStart);
        return TradingEnd(kind, deliveryStart);
    }

    /// <summary>
    /// Every instrument that trades at <paramref name="nowNs"/> (listed at or before it, gate not yet closed), in
    /// <see cref="ListingOrder"/>, with id 0.
    /// </summary>
    public IReadOnlyList<Instrument> ActiveAt(long nowNs) => Materialize(ActiveSlots(nowNs));

    /// <summary>
    /// Every instrument whose trading opens in (<paramref name="afterNs"/>, <paramref name="upToNs"/>], in
    /// <see cref="ListingOrder"/>, with id 0, including any whose gate also closed by <paramref name="upToNs"/>.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="upToNs"/> is before <paramref name="afterNs"/>.</exception>
    public IReadOnlyList<Instrument> OpeningIn(long afterNs, long upToNs) => Materialize(OpeningSlots(afterNs, upToNs));

    /// <summary>
    /// The instrument a symbol names under this schedule (id 0), whether or not it trades now; false if the symbol
    /// is malformed or its class, region or kind is not listed by this schedule.
    /// </summary>
    public bool TryDescribe(string? symbol, [NotNullWhen(true)] out Instrument? instrument)
    {
        instrument = null;
        if (!InstrumentSymbol.TryParse(symbol, out InstrumentSymbol? key)) return false;
        if (Array.BinarySearch(_classes, key.Gpu) < 0) return false;
        if (Array.BinarySearch(_regions, key.Region, StringComparer.Ordinal) < 0) return false;
        if (Policy.Ahead(key.Kind) == 0) return false;
        try
        {
            instrument = Build(new Slot(key.Kind, key.DeliveryStart, TradingStart(key.Kind, key.DeliveryStart),
                TradingEnd(key.Kind, key.DeliveryStart), key.Gpu, key.Region), id: 0);
            return true;
        }
        catch (OverflowException)
        {
            // A symbol at the edge of the representable range whose listing time falls outside it.
            return false;
        }
    }

    /// <summary>Builds the instrument of a slot with the given id.</summary>
    internal static Instrument Build(in Slot slot, int id) => new(
        id,
        // Slots come from the schedule's own validated classes, regions and aligned starts: no re-validation.
        InstrumentSymbol.Format(slot.Gpu, slot.Region, slot.Kind, slot.DeliveryStart),
        slot.Gpu,
        slot.Region,
        slot.Kind,
        slot.DeliveryStart,
        DeliveryCalendar.End(slot.Kind, slot.DeliveryStart),
        slot.TradingStart,
        slot.TradingEnd,
        GpuClasses.Spec(slot.Gpu).Band);

    /// <summary>Slots trading at <paramref name="nowNs"/>, sorted.</summary>
    internal List<Slot> ActiveSlots(long nowNs)
    {
        var windows = new List<Window>();
        foreach (DeliveryKind kind in Kinds)
        {
            if (Policy.Ahead(kind) == 0) continue;
            // Trading has not closed ⇔ D − gate > now ⇔ D > now + gate.
            long first = DeliveryCalendar.AlignUp(kind, checked(nowNs + _gateNs[(int)kind] + 1));
            Collect(kind, first, afterNs: null, upToNs: nowNs, windows);
        }
        return Expand(windows);
    }

    /// <summary>Slots whose trading opens in (<paramref name="afterNs"/>, <paramref name="upToNs"/>], sorted.</summary>
    internal List<Slot> OpeningSlots(long afterNs, long upToNs)
    {
        if (upToNs < afterNs) throw new ArgumentOutOfRangeException(nameof(upToNs), upToNs, "The end precedes the start.");
        var windows = new List<Window>();
        if (upToNs == afterNs) return [];
        foreach (DeliveryKind kind in Kinds)
        {
            int ahead = Policy.Ahead(kind);
            if (ahead == 0) continue;
            // The first delivery start whose trading start can exceed afterNs; Collect filters exactly.
            long first = kind switch
            {
                DeliveryKind.HourlySpot => DeliveryCalendar.AlignUp(kind, checked(afterNs + ahead * DeliveryCalendar.NsPerHour + 1)),
                DeliveryKind.DailyForward => DeliveryCalendar.AlignUp(kind, checked(afterNs + ahead * DeliveryCalendar.NsPerDay + 1)),
                _ => DeliveryCalendar.AddMonths(DeliveryCalendar.MonthFloor(afterNs), ahead),
            };
            Collect(kind, first, afterNs, upToNs, windows);
        }
        return Expand(windows);
    }

    // Walks delivery starts upward from `first` while their trading start is ≤ upToNs (trading start grows with
    // the delivery start), adding the window of each start that opened after `afterNs`.
    private void Collect(DeliveryKind kind, long first, long? afterNs, long upToNs, List<Window> into)
    {
        for (long d = first; ; d = DeliveryCalendar.End(kind, d))
        {
            long opens = TradingStart(kind, d);
            if (opens > upToNs) return;
            if (afterNs is long after && opens <= after) continue;
            into.Add(new Window(kind, d, opens, TradingEnd(kind, d)));
        }
    }

    // Sorts the few windows (tens, not thousands) and expands each into class × region slots. Classes and regions
    // are stored sorted, so the expansion is already in listing order: sorting thousands of slots is avoided.
    private List<Slot> Expand(List<Window> windows)
    {
        windows.Sort(static (x, y) =>
        {
            int c = x.TradingStart.CompareTo(y.TradingStart);
            if (c == 0) c = x.DeliveryStart.CompareTo(y.DeliveryStart);
            if (c == 0) c = ((byte)x.Kind).CompareTo((byte)y.Kind);
            return c;
        });
        var slots = new List<Slot>(checked(windows.Count * _classes.Length * _regions.Length));
        foreach (Window w in windows)
            foreach (GpuClass gpu in _classes)
                foreach (string region in _regions)
                    slots.Add(new Slot(w.Kind, w.DeliveryStart, w.TradingStart, w.TradingEnd, gpu, region));
        return slots;
    }

    private readonly record struct Window(DeliveryKind Kind, long DeliveryStart, long TradingStart, long TradingEnd);

    private long TradingStart(DeliveryKind kind, long deliveryStart) => kind switch
    {
        DeliveryKind.HourlySpot => checked(deliveryStart - Policy.HourlyAhead * DeliveryCalendar.NsPerHour),
        DeliveryKind.DailyForward => checked(deliveryStart - Policy.DailyAhead * DeliveryCalendar.NsPerDay),
        _ => DeliveryCalendar.AddMonths(deliveryStart, -Policy.MonthlyAhead),
    };

    private long TradingEnd(DeliveryKind kind, long deliveryStart) => checked(deliveryStart - _gateNs[(int)kind]);

    private static void RequireAligned(DeliveryKind kind, long deliveryStart)
    {
        if (!Enum.IsDefined(kind)) throw new ArgumentOutOfRangeException(nameof(kind), kind, "Not a defined delivery kind.");
        if (!DeliveryCalendar.IsAligned(kind, deliveryStart))
            throw new ArgumentOutOfRangeException(nameof(deliveryStart), deliveryStart, $"Not the start of a {kind} window.");
    }

    private static Instrument[] Materialize(List<Slot> slots)
    {
        var result = new Instrument[slots.Count];
        for (int i = 0; i < result.Length; i++) result[i] = Build(slots[i], id: 0);
        return result;
    }

    internal static int CompareSlots(Slot x, Slot y)
    {
        int c = x.TradingStart.CompareTo(y.TradingStart);
        if (c == 0) c = x.DeliveryStart.CompareTo(y.DeliveryStart);
        // Enum.CompareTo takes object (boxes); compare the underlying bytes instead, this runs n·log n times per batch.
        if (c == 0) c = ((byte)x.Kind).CompareTo((byte)y.Kind);
        if (c == 0) c = ((byte)x.Gpu).CompareTo((byte)y.Gpu);
        if (c == 0) c = string.CompareOrdinal(x.Region, y.Region);
        return c;
    }

    private static int CompareListing(Instrument? x, Instrument? y)
    {
        if (ReferenceEquals(x, y)) return 0;
        if (x is null) return -1;
        if (y is null) return 1;
        return CompareSlots(
            new Slot(x.Kind, x.DeliveryStart, x.TradingStart, x.TradingEnd, x.Gpu, x.Region),
            new Slot(y.Kind, y.DeliveryStart, y.TradingStart, y.TradingEnd, y.Gpu, y.Region));
    }

    /// <summary>An instrument before it is built: cheap to sort, and what the registry skips costs no symbol string.</summary>
    internal readonly record struct Slot(DeliveryKind Kind, long DeliveryStart, long TradingStart, long TradingEnd, GpuClass Gpu, string Region);
}

/// <summary>What one <see cref="InstrumentRegistry.Advance(long)"/> changed.</summary>
/// <param name="Now">The time advanced to (Unix ns).</param>
/// <param name="Listed">Instruments that started trading since the previous call (all active ones on the first call), by id.</param>
/// <param name="Expired">Instruments whose gate closed since the previous call, by id.</param>
/// <param name="Skipped">Ids spent on instruments that opened and closed entirely between two calls; they were never
/// active, are not in <paramref name="Listed"/> and cannot be looked up.</param>
public sealed record InstrumentChanges(long Now, IReadOnlyList<Instrument> Listed, IReadOnlyList<Instrument> Expired, int Skipped)
{
    /// <summary>True if nothing was listed or expired (and no id was spent).</summary>
    public bool IsEmpty => Listed.Count == 0 && Expired.Count == 0 && Skipped == 0;
}

/// <summary>
/// The exchange's instruments over time: lists and expires them as the time passed to <see cref="Advance(long)"/>
/// moves (never from a clock of its own), numbers them, and looks them up by id and symbol.
/// <para>
/// Ids start at 1, grow by one per instrument in <see cref="InstrumentSchedule.ListingOrder"/>, and are never
/// reused. The first <see cref="Advance(long)"/> numbers the instruments active then; later calls number those that
/// opened since, including any that opened and closed between two calls (their ids are spent and reported as
/// <see cref="InstrumentChanges.Skipped"/>). Hence an instrument's id depends only on the schedule and the time of
/// the first call, not on how often or when the registry is advanced afterwards: a replay that advances hourly and
/// one that advances every command give the same ids.
/// </para>
/// <para>
/// Expired instruments stay available to <see cref="TryGet"/> and <see cref="TryGetBySymbol"/> (delivery and
/// settlement follow trading) until <see cref="Prune"/> removes them. Not thread-safe: the exchange's single
/// sequencing thread owns it.
/// </para>
/// </summary>
public sealed class InstrumentRegistry
{
    private readonly Dictionary<int, Instrument> _byId = [];
    private readonly Dictionary<string, Instrument> _bySymbol = new(StringComparer.Ordinal);
    private readonly List<Instrument> _active = [];
    private readonly HashSet<int> _activeIds = [];
    private Instrument[] _activeSnapshot = [];
    private long _now;
    private bool _started;
    private int _lastId;

    /// <summary>An empty registry over <paramref name="schedule"/>; nothing is listed until the first <see cref="Advance(long)"/>.</summary>
    public InstrumentRegistry(InstrumentSchedule schedule)
    {
        ArgumentNullException.ThrowIfNull(schedule);
        Schedule = schedule;
    }

    /// <summary>The schedule that decides what is listed.</summary>
    public InstrumentSchedule Schedule { get; }

    /// <summary>Back to empty, as constructed (a state machine rebuilt from its journal lists everything again).</summary>
    public void Reset()
    {
        _byId.Clear();
        _bySymbol.Clear();
        _active.Clear();
        _activeIds.Clear();
        _activeSnapshot = [];
        _now = 0;
        _started = false;
        _lastId = 0;
    }

    /// <summary>The time of the last <see cref="Advance(long)"/>, or null before the first.</summary>
    public long? Now => _started ? _now : null;

    /// <summary>The highest id assigned so far (0 before the first listing).</summary>
    public int LastId => _lastId;

    /// <summary>The instruments trading as of the last <see cref="Advance(long)"/>, by id (a snapshot: later calls do not change it).</summary>
    public IReadOnlyList<Instrument> Active => _activeSnapshot;

    /// <summary>How many instruments can be looked up (active, and expired but not yet pruned).</summary>
    public int Count => _byId.Count;

    /// <summary>Moves the registry to the provider's current time; see <see cref="Advance(long)"/>.</summary>
    public InstrumentChanges Advance(TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(time);
        return Advance(Clock.UnixNanoseconds(time));
    }

    /// <summary>
    /// Moves the registry to <paramref name="nowNs"/>: expires the instruments whose gate has closed
    /// (<see cref="Instrument.TradingEnd"/> ≤ now) and lists those whose trading has opened
    /// (<see cref="Instrument.TradingStart"/> ≤ now). Calling again with the same time changes nothing.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="nowNs"/> is before the previous call's time.</exception>
    /// <exception cref="OverflowException">More than <see cref="int.MaxValue"/> ids would be needed.</exception>
    public InstrumentChanges Advance(long nowNs)
    {
        if (_started && nowNs < _now)
            throw new ArgumentOutOfRangeException(nameof(nowNs), nowNs, $"Time went backwards (last advanced to {_now}).");

        // Compute everything before touching state, so a failure (overflow at the edge of time) changes nothing.
        List<InstrumentSchedule.Slot> opened = _started ? Schedule.OpeningSlots(_now, nowNs) : Schedule.ActiveSlots(nowNs);
        var expired = new List<Instrument>();
        foreach (Instrument instrument in _active)
            if (instrument.TradingEnd <= nowNs) expired.Add(instrument);
        if (opened.Count > int.MaxValue - _lastId) throw new OverflowException("Instrument ids are exhausted.");

        var listed = new List<Instrument>();
        int skipped = 0, id = _lastId;
        foreach (InstrumentSchedule.Slot slot in opened)
        {
            id++;
            if (slot.TradingEnd <= nowNs)
            {
                skipped++; // opened and closed between two calls: the id is spent so later ids do not depend on call spacing
                continue;
            }
            listed.Add(InstrumentSchedule.Build(slot, id));
        }

        _lastId = id;
        _now = nowNs;
        _started = true;
        if (expired.Count > 0)
        {
            _active.RemoveAll(i => i.TradingEnd <= nowNs);
            foreach (Instrument instrument in expired) _activeIds.Remove(instrument.Id);
        }
        foreach (Instrument instrument in listed)
        {
            // Ids only grow, so appending keeps _active in id order.
            _active.Add(instrument);
            _activeIds.Add(instrument.Id);
            _byId.Add(instrument.Id, instrument);
            _bySymbol.Add(instrument.Symbol, instrument);
        }
        if (expired.Count > 0 || listed.Count > 0) _activeSnapshot = [.. _active];
        return new InstrumentChanges(nowNs, listed, expired, skipped);
    }

    /// <summary>
    /// Lists node <paramref name="node"/>'s shares as an instrument with the next id (they trade from the registry's
    /// current time and never expire). The exchange's sequencing thread calls it while applying a share issuance, so ids
    /// stay a function of the commands.
    /// </summary>
    /// <exception cref="InvalidOperationException">The registry was never advanced, or the node's shares are listed already.</exception>
    public Instrument ListNodeShares(long node)
    {
        if (!_started) throw new InvalidOperationException("Shares are listed once the registry has a clock.");
        string symbol = Instrument.NodeSharesSymbol(node);
        if (_bySymbol.ContainsKey(symbol)) throw new InvalidOperationException($"{symbol} is listed already.");
        Instrument instrument = Instrument.ForNodeShares(checked(_lastId + 1), node, _now);
        _lastId = instrument.Id;
        _active.Add(instrument);
        _activeIds.Add(instrument.Id);
        _byId.Add(instrument.Id, instrument);
        _bySymbol.Add(symbol, instrument);
        _activeSnapshot = [.. _active];
        return instrument;
    }

    /// <summary>Every instrument still known (active or not yet pruned), by id: for snapshots.</summary>
    internal IEnumerable<Instrument> All => _byId.Values.OrderBy(i => i.Id);

    /// <summary>
    /// Restores the registry as a snapshot recorded it: its clock (<paramref name="now"/>, null when never advanced), the
    /// last id spent, every instrument it knows and which of them trade (<paramref name="activeIds"/>, in id order).
    /// Checked whole before anything changes.
    /// </summary>
    /// <exception cref="InvalidOperationException">The registry is not empty.</exception>
    /// <exception cref="InvalidDataException">The parts do not fit together.</exception>
    internal void Restore(long? now, int lastId, IReadOnlyList<Instrument> all, IReadOnlyList<int> activeIds)
    {
        if (_started || _byId.Count > 0) throw new InvalidOperationException("Only an empty registry is restored.");
        var byId = new Dictionary<int, Instrument>(all.Count);
        var bySymbol = new Dictionary<string, Instrument>(all.Count, StringComparer.Ordinal);
        foreach (Instrument i in all)
        {
            if (i.Id <= 0 || i.Id > lastId || !byId.TryAdd(i.Id, i) || !bySymbol.TryAdd(i.Symbol, i))
                throw new InvalidDataException($"Instrument {i.Id} ({i.Symbol}) is restored twice or beyond the last id {lastId}.");
        }
        var active = new List<Instrument>(activeIds.Count);
        foreach (int id in activeIds)
        {
            if (!byId.TryGetValue(id, out Instrument? i) || (active.Count > 0 && active[^1].Id >= id))
                throw new InvalidDataException($"Active instrument {id} is unknown or out of order.");
            active.Add(i);
        }
        if (now is null && (lastId != 0 || all.Count > 0)) throw new InvalidDataException("A registry never advanced has no instruments.");
        foreach (var kv in byId) _byId.Add(kv.Key, kv.Value);
        foreach (var kv in bySymbol) _bySymbol.Add(kv.Key, kv.Value);
        _active.AddRange(active);
        foreach (Instrument i in active) _activeIds.Add(i.Id);
        _activeSnapshot = [.. _active];
        _now = now ?? 0;
        _started = now is not null;
        _lastId = lastId;
    }

    /// <summary>Looks an instrument up by id (active, or expired and not pruned).</summary>
    public bool TryGet(int id, [MaybeNullWhen(false)] out Instrument instrument) => _byId.TryGetValue(id, out instrument);

    /// <summary>Looks an instrument up by its exact symbol (active, or expired and not pruned).</summary>
    public bool TryGetBySymbol(string symbol, [MaybeNullWhen(false)] out Instrument instrument)
    {
        ArgumentNullException.ThrowIfNull(symbol);
        return _bySymbol.TryGetValue(symbol, out instrument);
    }

    /// <summary>The instrument with this id.</summary>
    /// <exception cref="KeyNotFoundException">No such instrument (never listed, skipped, or pruned).</exception>
    public Instrument Get(int id) =>
        _byId.TryGetValue(id, out Instrument? instrument) ? instrument : throw new KeyNotFoundException($"No instrument with id {id}.");

    /// <summary>The instrument with this symbol.</summary>
    /// <exception cref="KeyNotFoundException">No such instrument (never listed, skipped, or pruned).</exception>
    public Instrument GetBySymbol(string symbol)
    {
        ArgumentNullException.ThrowIfNull(symbol);
        return _bySymbol.TryGetValue(symbol, out Instrument? instrument)
            ? instrument
            : throw new KeyNotFoundException($"No instrument with symbol '{symbol}'.");
    }

    /// <summary>True if the instrument trades as of the last <see cref="Advance(long)"/>.</summary>
    public bool IsActive(int id) => _activeIds.Contains(id);

    /// <summary>
    /// Forgets expired instruments whose delivery ended at or before <paramref name="deliveryEndedByNs"/>, so a
    /// long-running registry does not grow without bound. Their ids stay spent. Returns how many were forgotten.
    /// </summary>
    public int Prune(long deliveryEndedByNs)
    {
        var gone = new List<Instrument>();
        foreach (Instrument instrument in _byId.Values)
            if (instrument.DeliveryEnd <= deliveryEndedByNs && !_activeIds.Contains(instrument.Id)) gone.Add(instrument);
        foreach (Instrument instrument in gone)
        {
            _byId.Remove(instrument.Id);
            _bySymbol.Remove(instrument.Symbol);
        }
        return gone.Count;
    }
}
