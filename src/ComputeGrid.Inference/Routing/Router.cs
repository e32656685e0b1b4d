using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace ComputeGrid.Inference.Routing;

/// <summary>Settings of a <see cref="Router"/> (and of <see cref="BruteForceRouter"/>, which must agree).</summary>
public sealed record RouterOptions
{
    /// <summary>
    /// The weight of price in <see cref="RouteSort.Balanced"/>: how many microseconds of estimated latency one
    /// micro-USD per 1,000 tokens is worth, 0 … 1,000,000. Default 1,000, so 1 micro-USD per 1,000 tokens (USD 1 per
    /// 1,000,000,000 tokens) weighs as much as 1 ms of latency: a node 20 ms closer may charge 20 micro-USD per 1,000
    /// tokens more and score the same.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">A value outside 0 … 1,000,000.</exception>
    public long BalancedMicrosPerPriceUnit
    {
        get;
        init
        {
            ArgumentOutOfRangeException.ThrowIfNegative(value, nameof(BalancedMicrosPerPriceUnit));
            ArgumentOutOfRangeException.ThrowIfGreaterThan(value, 1_000_000, nameof(BalancedMicrosPerPriceUnit));
            field = value;
        }
    } = 1_000;
}

/// <summary>
/// Chooses where each inference request runs: the best eligible node of a <see cref="NodeRegistry"/> for a request from
/// one region, and a ranked list of fallbacks for failover. Allocation-free, lock-free, safe to call from many threads.
/// </summary>
/// <remarks>
/// <para><b>Eligible.</b> A node is eligible when it serves the model; is healthy (not failed, heartbeat fresh by the
/// registry's clock at the moment of the decision); is in <see cref="RoutingPreferences.Only"/> (when set) and not in
/// <see cref="RoutingPreferences.Ignore"/>; costs at most <see cref="RoutingPreferences.MaxPriceMicroUsdPer1kTokens"/>;
/// has an estimated latency of at most <see cref="RoutingPreferences.MaxLatencyMs"/>; and holds fewer router-placed
/// requests than its capacity.</para>
/// <para><b>Estimated latency</b>, in whole microseconds, integer arithmetic (the division rounds down):
/// <code>
/// latency = rtt(request region, node region) + ewma + work × ewma / capacity
/// work    = queue length + max(reported inflight, router inflight)
/// </code>
/// where <c>rtt</c> is <see cref="LatencyMatrix.RttMicros"/>, <c>ewma</c> the node's reported EWMA model time per
/// request, <c>queue length</c> and <c>reported inflight</c> come from its last heartbeat and <c>router inflight</c> is
/// the count of slots taken with <see cref="NodeRegistry.TryAcquire"/> (fresher than the heartbeat). So a request pays
/// the network round trip, its own model time, and a share of the work ahead of it spread over the node's parallel
/// capacity.</para>
/// <para><b>Order.</b> <see cref="RouteSort.Latency"/>: (latency, price, node id); <see cref="RouteSort.Price"/>:
/// (price, latency, node id); <see cref="RouteSort.Balanced"/>: (latency + <see cref="RouterOptions.BalancedMicrosPerPriceUnit"/>
/// × price, latency, node id); <see cref="RouteSort.Power"/>: (1,000 × price + power cost in nano-USD per 1,000 tokens,
/// latency, node id). Node ids compare ordinally.</para>
/// <para><b>Power.</b> Under every sort, a node whose site is in a peak hour or a grid emergency
/// (<see cref="NodePowerState.Avoid"/>) ranks after every eligible node whose site is not: it is chosen only when no other
/// eligible node exists (within the latency bound and the other preferences), and it is never dropped for its power alone.
/// Inference is all flexible load; firm leases are not routed here (they are GPUs reserved on named nodes by the exchange),
/// so they are never shed. The avoided flag is a penalty added to the first key, so every bound below stays a lower bound. The best <c>k</c> are kept with a bounded insertion (top-k,
/// no sort of the fleet), where <c>k</c> is the length of the caller's span (at most <see cref="MaxRanked"/>), or 1 when
/// <see cref="RoutingPreferences.AllowFallbacks"/> is false.</para>
/// <para><b>Cost.</b> The result is exactly that of ranking every node (see <see cref="BruteForceRouter"/>), but not every
/// node is examined. The price sort walks the model's nodes in (price, id) order and stops at the first price above the
/// k-th ranked one. The latency-led sorts walk regions nearest first, skip a region whose RTT (plus its cheapest price,
/// for balanced) cannot beat the k-th ranked key, stop within a region (kept in price order) at the first price that
/// cannot, and skip a node whose RTT + EWMA cannot before computing its queue estimate. The power sort scans the model's
/// nodes linearly (a site's power cost may be negative and changes every interval, so no static order bounds it). The
/// worst case is a linear scan: a few nanoseconds per node.</para>
/// <para><b>No node.</b> When nothing is eligible, the decision says why, checking in this order: no node serves the
/// model; none of those is healthy; every healthy one is excluded by the preferences; every one left is at capacity.</para>
/// <para>Choosing does not take a capacity slot: call <see cref="NodeRegistry.TryAcquire"/> on the best node, and on
/// the next ranked one if that fails.</para>
/// </remarks>
public sealed class Router
{
    /// <summary>The most nodes one decision ranks.</summary>
    public const int MaxRanked = 64;

    private readonly NodeRegistry _registry;
    private readonly long _priceWeight;

    // Decisions per (sort, status), for RouterMetrics: one atomic add per decision, preallocated, so Choose stays
    // allocation-free whether or not anyone listens. Each counter sits on its own cache line (stride 8 longs) so
    // concurrent requests of different sorts do not fight over one line.
    private const int SortCount = 4, StatusCount = 5, Stride = 8;
    private readonly long[] _decisions = new long[SortCount * StatusCount * Stride];

    /// <summary>A router over <paramref name="registry"/>.</summary>
    /// <param name="registry">The nodes.</param>
    /// <param name="options">Settings; null for the defaults.</param>
    public Router(NodeRegistry registry, RouterOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(registry);
        _registry = registry;
        _priceWeight = (options ?? new RouterOptions()).BalancedMicrosPerPriceUnit;
    }

    /// <summary>The nodes this router chooses from.</summary>
    public NodeRegistry Registry => _registry;

    /// <summary>
    /// Chooses the best eligible node for <paramref name="request"/> and writes it, then its best fallbacks, to
    /// <paramref name="rankedOut"/> (best first).
    /// </summary>
    /// <param name="request">The request's region, model and preferences.</param>
    /// <param name="rankedOut">Receives up to <c>min(length, <see cref="MaxRanked"/>)</c> nodes (1 when fallbacks are
    /// not allowed); the decision's <see cref="RouteDecision.Count"/> says how many were written.</param>
    /// <returns>The decision: the best node, or why there is none.</returns>
    /// <exception cref="ArgumentOutOfRangeException">The request's region is not a region of the registry's matrix.</exception>
    /// <exception cref="ArgumentException">The request names no model, or <paramref name="rankedOut"/> is empty.</exception>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // optimised from the first call: no slow tier-0 phase on the hot path
    public RouteDecision Choose(in RouteRequest request, Span<NodeHandle> rankedOut)
    {
        RouteDecision decision = Decide(in request, rankedOut);
        RouteSort sort = (request.Preferences ?? RoutingPreferences.Default).Sort;
        if ((uint)sort < SortCount && (uint)decision.Status < StatusCount)
            Interlocked.Increment(ref _decisions[((int)sort * StatusCount + (int)decision.Status) * Stride]);
        return decision;
    }

    /// <summary>How many decisions of <paramref name="sort"/> ended in <paramref name="status"/> since this router was made.</summary>
    public long Decisions(RouteSort sort, RouteStatus status) =>
        (uint)sort < SortCount && (uint)status < StatusCount ? Volatile.Read(ref _decisions[((int)sort * StatusCount + (int)status) * Stride]) : 0;

    [SkipLocalsInit]
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private RouteDecision Decide(in RouteRequest request, Span<NodeHandle> rankedOut)
    {
        NodeRegistry registry = _registry;
        LatencyMatrix matrix = registry.Matrix;
        if ((uint)request.Region >= (uint)matrix.Count)
            throw new ArgumentOutOfRangeException(nameof(request), $"Region index {request.Region} is outside 0 … {matrix.Count - 1}.");
        if (request.Model is null) throw new ArgumentException("The request names no model.", nameof(request));
        if (rankedOut.IsEmpty) throw new ArgumentException("The ranked output must hold at least one node.", nameof(rankedOut));
        RoutingPreferences preferences = request.Preferences ?? RoutingPreferences.Default;
        int k = preferences.AllowFallbacks ? Math.Min(rankedOut.Length, MaxRanked) : 1;

        if (!registry.Topology.ByModel.TryGetValue(request.Model, out ModelIndex? index))
            return RouteDecision.NoNode(RouteStatus.NoNodeServesModel);

        var query = new Query(
            (preferences.Only?.Mask ?? ulong.MaxValue) & ~preferences.Ignore.Mask,
            preferences.MaxPriceMicroUsdPer1kTokens ?? long.MaxValue,
            preferences.MaxLatencyMs is int ms ? ms * 1000L : long.MaxValue,
            registry.NowTimestamp(),
            _priceWeight);
        ReadOnlySpan<int> rtt = matrix.RowMicros(request.Region);
        var top = new TopK(stackalloc Entry[k]);
        switch (preferences.Sort)
        {
            case RouteSort.Price:
                ScanByPriceOrder<ByPrice>(registry, index, rtt, in query, ref top);
                break;
            case RouteSort.Latency:
                ScanByRegion<ByLatency>(registry, index, rtt, matrix.RegionsByDistance(request.Region), in query, ref top);
                break;
            case RouteSort.Power:
                ScanByPriceOrder<ByPower>(registry, index, rtt, in query, ref top);
                break;
            default:
                ScanByRegion<ByBalanced>(registry, index, rtt, matrix.RegionsByDistance(request.Region), in query, ref top);
                break;
        }
        if (top.Count == 0) return RouteDecision.NoNode(Diagnose(registry, index, rtt, in query));

        Span<Entry> ranked = top.Entries;
        for (int i = 0; i < top.Count; i++) rankedOut[i] = new NodeHandle(ranked[i].Slot, ranked[i].Generation);
        return new RouteDecision(RouteStatus.Routed, top.Count, rankedOut[0], ranked[0].Latency, ranked[0].Price);
    }

    private readonly record struct Query(ulong AllowedRegions, long MaxPrice, long MaxLatencyMicros, long Now, long PriceWeight);

    // Added to the first key of a node whose site asks flexible load to go elsewhere: above every real key (registry bounds
    // keep those below 2^60), and twice it still below long.MaxValue, the empty top-k's sentinel.
    private const long AvoidPenalty = 1L << 61;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static long Penalty(int flags) => (flags & (int)NodePowerState.AvoidFlags) != 0 ? AvoidPenalty : 0;

    private struct Entry
    {
        public long Key1, Key2, Latency, Price;
        public int Rank, Slot, Generation;
    }

    // The best k offers so far, by (key1, key2, rank) ascending: a bounded insertion, no sort of the fleet.
    private ref struct TopK(Span<Entry> entries)
    {
        public readonly Span<Entry> Entries = entries;
        public int Count;
        // The k-th entry's keys once full. Until then Worst1 is long.MaxValue, which no key reaches (registry bounds keep
        // every key below 2^60 in magnitude, plus at most the avoid penalty of 2^61), so "key1 > Worst1" alone says whether
        // a node is out of the running.
        public long Worst1 = long.MaxValue;
        private long _worst2 = long.MaxValue;
        private int _worstRank = int.MaxValue;

        public readonly bool IsFull => Count == Entries.Length;

        /// <summary>Offers a node; returns its new <see cref="Worst1"/> (unchanged when the node did not make the top).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public long Offer(long key1, long key2, int rank, long latency, long price, int slot, int generation)
        {
            if (IsFull && !(key1 < Worst1 || (key1 == Worst1 && (key2 < _worst2 || (key2 == _worst2 && rank < _worstRank)))))
                return Worst1;
            Insert(key1, key2, rank, latency, price, slot, generation);
            return Worst1;
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private void Insert(long key1, long key2, int rank, long latency, long price, int slot, int generation)
        {
            Span<Entry> e = Entries;
            int i = Count < e.Length ? Count++ : e.Length - 1;
            while (i > 0)
            {
                ref Entry p = ref e[i - 1];
                if (key1 > p.Key1 || (key1 == p.Key1 && (key2 > p.Key2 || (key2 == p.Key2 && rank > p.Rank)))) break;
                e[i] = p;
                i--;
            }
            e[i] = new Entry { Key1 = key1, Key2 = key2, Latency = latency, Price = price, Rank = rank, Slot = slot, Generation = generation };
            if (IsFull)
            {
                ref Entry worst = ref e[^1];
                Worst1 = worst.Key1;
                _worst2 = worst.Key2;
                _worstRank = worst.Rank;
            }
        }
    }

    private interface ILatencyLed
    {
        // The sort keys of a node; key1 never decreases as latency or price grows.
        static abstract void Keys(long latency, long price, long priceWeight, out long key1, out long key2);
    }

    private struct ByLatency : ILatencyLed
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Keys(long latency, long price, long priceWeight, out long key1, out long key2)
        {
            key1 = latency;
            key2 = price;
        }
    }

    private struct ByBalanced : ILatencyLed
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Keys(long latency, long price, long priceWeight, out long key1, out long key2)
        {
            key1 = latency + priceWeight * price; // ≤ 10^6 × 10^12 + latency: no overflow (registry bounds)
            key2 = latency;
        }
    }

    // Latency and balanced: region by region, nearest first. A node's latency is at least its region's RTT plus its
    // EWMA model time, and key1 never decreases as latency or price grows, so once k nodes are ranked: a region whose
    // RTT and cheapest price cannot reach the k-th key is skipped whole; within a region (in price order) the scan
    // stops at the first price that cannot; a node whose RTT + EWMA cannot is skipped before its queue estimate.
    // Equal keys are still examined, and the rank (id order) breaks ties, so the result does not depend on the order.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ScanByRegion<TSort>(
        NodeRegistry registry, ModelIndex index, ReadOnlySpan<int> rtt, ReadOnlySpan<int> regionsByDistance,
        in Query query, ref TopK top)
        where TSort : struct, ILatencyLed
    {
        // Slots come from the registry's topology, so they index its arrays (all MaxNodes long) in range.
        ref long aliveUntil = ref MemoryMarshal.GetArrayDataReference(registry.AliveUntil);
        ref long loadOf = ref MemoryMarshal.GetArrayDataReference(registry.Load);
        ref long ewmaOf = ref MemoryMarshal.GetArrayDataReference(registry.EwmaMicrosOf);
        ref int queueOf = ref MemoryMarshal.GetArrayDataReference(registry.QueueLengthOf);
        ref int reportedOf = ref MemoryMarshal.GetArrayDataReference(registry.ReportedInflightOf);
        ref int flagsOf = ref MemoryMarshal.GetArrayDataReference(registry.PowerFlagsOf);
        IndexEntry[] entries = index.ByRegion;
        int[] regionStart = index.RegionStart;
        long[] regionMinPrice = index.RegionMinPrice;
        ulong allowed = query.AllowedRegions;
        long maxPrice = query.MaxPrice, maxLatency = query.MaxLatencyMicros, now = query.Now, weight = query.PriceWeight;
        long worst = top.Worst1;

        foreach (int region in regionsByDistance)
        {
            if (((allowed >> region) & 1) == 0) continue;
            int start = regionStart[region], end = regionStart[region + 1];
            if (start == end) continue;
            long rttMicros = rtt[region];
            long minPrice = regionMinPrice[region];
            if (rttMicros > maxLatency || minPrice > maxPrice) continue;
            TSort.Keys(rttMicros, minPrice, weight, out long regionBound, out _);
            if (regionBound > worst) continue;

            // Entries of a region are in (price, id) order.
            for (int i = start; i < end; i++)
            {
                ref readonly IndexEntry e = ref entries[i];
                long price = e.Price;
                if (price > maxPrice) break;
                TSort.Keys(rttMicros, price, weight, out long priceBound, out _);
                if (priceBound > worst) break; // the rest of the region costs at least as much
                nint s = e.Slot;
                if (Unsafe.Add(ref aliveUntil, s) <= now) continue;
                long ewma = Unsafe.Add(ref ewmaOf, s);
                long latency = rttMicros + ewma;
                TSort.Keys(latency, price, weight, out long bound, out _);
                if (bound > worst) continue;
                long load = Unsafe.Add(ref loadOf, s);
                if (NodeRegistry.Generation(load) != e.Generation) continue; // removed since the index was built
                int held = NodeRegistry.Held(load);
                int capacity = e.Capacity;
                if (held >= capacity) continue;
                long work = Unsafe.Add(ref queueOf, s) + (long)Math.Max(Unsafe.Add(ref reportedOf, s), held);
                latency += work * ewma / capacity;
                if (latency > maxLatency) continue;
                TSort.Keys(latency, price, weight, out long key1, out long key2);
                key1 += Penalty(Unsafe.Add(ref flagsOf, s));
                worst = top.Offer(key1, key2, e.Rank, latency, price, e.Slot, e.Generation);
            }
        }
    }

    private interface IPriceOrdered
    {
        // Whether a node of this price, and every node after it in (price, id) order, is out of the running once the k-th
        // ranked key is `worst`: the walk stops there.
        static abstract bool PastWorst(long price, long worst);

        // A node's first key before the avoid penalty; reads its power cost only if the key uses it.
        static abstract long Key1(long price, ref long powerOf, nint slot);
    }

    // Price: keyed by price, so the price alone is a lower bound of every later key (the penalty only adds): the walk
    // stops at the first price above the k-th ranked one.
    private struct ByPrice : IPriceOrdered
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static bool PastWorst(long price, long worst) => price > worst;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static long Key1(long price, ref long powerOf, nint slot) => price;
    }

    // Power: keyed by 1,000 × price + power cost (nano-USD per 1,000 tokens). A site's power cost is signed and changes
    // every interval, so no order of the index bounds the key: every node of the model is examined.
    private struct ByPower : IPriceOrdered
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static bool PastWorst(long price, long worst) => false;

        // ≤ 10^15 + 2.8·10^11 in magnitude (registry bounds), plus the penalty: no overflow.
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static long Key1(long price, ref long powerOf, nint slot) => price * 1000 + Unsafe.Add(ref powerOf, slot);
    }

    // Price and power: the model's nodes in (price, id) order, keyed by (penalty + TKey's key, latency); the walk stops at
    // the first price above the max price or, when TKey says so, past the k-th ranked key. The cheap filters (region,
    // health, generation, capacity) come before the queue estimate. One implementation, specialised per key by the JIT.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ScanByPriceOrder<TKey>(NodeRegistry registry, ModelIndex index, ReadOnlySpan<int> rtt, in Query query, ref TopK top)
        where TKey : struct, IPriceOrdered
    {
        ref long aliveUntil = ref MemoryMarshal.GetArrayDataReference(registry.AliveUntil);
        ref long loadOf = ref MemoryMarshal.GetArrayDataReference(registry.Load);
        ref long ewmaOf = ref MemoryMarshal.GetArrayDataReference(registry.EwmaMicrosOf);
        ref int queueOf = ref MemoryMarshal.GetArrayDataReference(registry.QueueLengthOf);
        ref int reportedOf = ref MemoryMarshal.GetArrayDataReference(registry.ReportedInflightOf);
        ref int flagsOf = ref MemoryMarshal.GetArrayDataReference(registry.PowerFlagsOf);
        ref long powerOf = ref MemoryMarshal.GetArrayDataReference(registry.PowerCostOf);
        ulong allowed = query.AllowedRegions;
        long maxPrice = query.MaxPrice, maxLatency = query.MaxLatencyMicros, now = query.Now;
        long worst = top.Worst1;

        foreach (ref readonly IndexEntry e in index.ByPrice.AsSpan())
        {
            long price = e.Price;
            if (price > maxPrice || TKey.PastWorst(price, worst)) break;
            int region = e.Region;
            if (((allowed >> region) & 1) == 0) continue;
            nint s = e.Slot;
            if (Unsafe.Add(ref aliveUntil, s) <= now) continue;
            long load = Unsafe.Add(ref loadOf, s);
            if (NodeRegistry.Generation(load) != e.Generation) continue; // removed since the index was built
            int held = NodeRegistry.Held(load);
            int capacity = e.Capacity;
            if (held >= capacity) continue;
            long ewma = Unsafe.Add(ref ewmaOf, s);
            long work = Unsafe.Add(ref queueOf, s) + (long)Math.Max(Unsafe.Add(ref reportedOf, s), held);
            long latency = rtt[region] + ewma + work * ewma / capacity;
            if (latency > maxLatency) continue;
            long key1 = TKey.Key1(price, ref powerOf, s) + Penalty(Unsafe.Add(ref flagsOf, s));
            worst = top.Offer(key1, latency, e.Rank, latency, price, e.Slot, e.Generation);
        }
    }

    // Only when nothing is eligible: why not, in the documented order of checks.
    private static RouteStatus Diagnose(NodeRegistry registry, ModelIndex index, ReadOnlySpan<int> rtt, in Query query)
    {
        bool anyHealthy = false;
        foreach (ref readonly IndexEntry e in index.ByRegion.AsSpan())
        {
            int slot = e.Slot;
            long load = Volatile.Read(ref registry.Load[slot]);
            if (NodeRegistry.Generation(load) != e.Generation) continue; // removed since the index was built
            if (Volatile.Read(ref registry.AliveUntil[slot]) <= query.Now) continue;
            anyHealthy = true;
            if (((query.AllowedRegions >> e.Region) & 1) == 0) continue;
            if (e.Price > query.MaxPrice) continue;
            int held = NodeRegistry.Held(load);
            long ewma = registry.EwmaMicrosOf[slot];
            long work = registry.QueueLengthOf[slot] + (long)Math.Max(registry.ReportedInflightOf[slot], held);
            long latency = rtt[e.Region] + ewma + work * ewma / e.Capacity;
            if (latency > query.MaxLatencyMicros) continue;
            return RouteStatus.AllBusy;
        }
        return anyHealthy ? RouteStatus.FilteredByPreferences : RouteStatus.NoHealthyNode;
    }
}
