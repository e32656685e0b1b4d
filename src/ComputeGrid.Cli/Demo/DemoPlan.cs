namespace ComputeGrid.Cli.Demo;

/// <summary>What a step of the demo's plan does.</summary>
public enum DemoStepKind
{
    /// <summary>A keyed customer sends a paid embeddings request.</summary>
    KeyedRequest = 0,
    /// <summary>The x402 payer sends an embeddings request paid with an EIP-3009 authorization.</summary>
    X402Request = 1,
    /// <summary>The provider offers capacity of one of its nodes on an hourly or daily instrument (good for a while).</summary>
    ComputeAsk = 2,
    /// <summary>A buyer rests a bid under the market.</summary>
    ComputeBid = 3,
    /// <summary>A buyer lifts the best ask (immediate-or-cancel): a trade and a lease.</summary>
    ComputeLift = 4,
    /// <summary>The provider offers shares of a node on its <c>SHR-{node}</c> book.</summary>
    ShareAsk = 5,
    /// <summary>A holder buys shares (immediate-or-cancel).</summary>
    ShareBuy = 6,
    /// <summary>A holder claims the revenue its shares are owed.</summary>
    Claim = 7,
}

/// <summary>One step of the plan: when (from the driver's start), what, by whom, and the seeded choices it makes.</summary>
/// <param name="At">When the step is due, from the start of the plan.</param>
/// <param name="Kind">What it does.</param>
/// <param name="Actor">Which actor of its kind (an index into that kind's cast).</param>
/// <param name="Pick">A seeded choice (a node, an instrument, a sentence), taken modulo what there is to choose from.</param>
/// <param name="Size">A seeded size, 1 … 8 (units of a node's GPUs, see <see cref="DemoWorld.OrderGpus"/>; shares in fives; sentences).</param>
/// <param name="Offset">A seeded price offset, 0 … 19 cents.</param>
public readonly record struct DemoStep(TimeSpan At, DemoStepKind Kind, int Actor, int Pick, int Size, int Offset);

/// <summary>The mean pace of each kind of step, in steps per second (0 turns a kind off).</summary>
public sealed record DemoRates
{
    /// <summary>The default pace: about two keyed requests a second in all, one x402 request every four seconds, and a market that trades every few seconds.</summary>
    public static DemoRates Default { get; } = new();

    /// <summary>Keyed requests per second, all customers together.</summary>
    public double KeyedRequests { get; init; } = 2.0;

    /// <summary>x402 requests per second.</summary>
    public double X402Requests { get; init; } = 0.25;

    /// <summary>Compute asks per second.</summary>
    public double ComputeAsks { get; init; } = 0.5;

    /// <summary>Resting compute bids per second.</summary>
    public double ComputeBids { get; init; } = 0.1;

    /// <summary>Compute lifts per second.</summary>
    public double ComputeLifts { get; init; } = 0.25;

    /// <summary>Share asks per second.</summary>
    public double ShareAsks { get; init; } = 0.1;

    /// <summary>Share buys per second.</summary>
    public double ShareBuys { get; init; } = 0.15;

    /// <summary>Claims per second.</summary>
    public double Claims { get; init; } = 0.1;

    /// <summary>The rate of <paramref name="kind"/>.</summary>
    public double Of(DemoStepKind kind) => kind switch
    {
        DemoStepKind.KeyedRequest => KeyedRequests,
        DemoStepKind.X402Request => X402Requests,
        DemoStepKind.ComputeAsk => ComputeAsks,
        DemoStepKind.ComputeBid => ComputeBids,
        DemoStepKind.ComputeLift => ComputeLifts,
        DemoStepKind.ShareAsk => ShareAsks,
        DemoStepKind.ShareBuy => ShareBuys,
        DemoStepKind.Claim => Claims,
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "Not a step kind."),
    };

    /// <summary>Throws unless every rate is finite, at least 0 and at most <see cref="DemoPlan.RateMax"/>.</summary>
    public void Validate()
    {
        foreach (DemoStepKind kind in Enum.GetValues<DemoStepKind>())
        {
            double r = Of(kind);
            if (!double.IsFinite(r) || r < 0 || r > DemoPlan.RateMax)
                throw new ArgumentOutOfRangeException(nameof(kind), r, $"The rate of {kind} must be between 0 and {DemoPlan.RateMax} a second.");
        }
    }
}

/// <summary>
/// The demo's seeded schedule: each kind of step arrives as a Poisson process of its rate (exponential gaps), with its own
/// random stream derived from the seed and the kind, so that the same seed gives the same plan step for step and turning one
/// kind off leaves the others' steps unchanged. Pure: no clock, no I/O; the driver waits for each step's time on the
/// server's <see cref="TimeProvider"/>.
/// </summary>
public sealed class DemoPlan
{
    /// <summary>The fastest rate any kind may have (steps per second): a bound on the load the demo can put on the server.</summary>
    public const double RateMax = 100;

    private readonly int _seed;
    private readonly DemoRates _rates;
    private readonly IReadOnlyDictionary<DemoStepKind, int> _actors;

    /// <summary>A plan of <paramref name="seed"/> at <paramref name="rates"/>; <paramref name="actors"/> says how many actors each kind has.</summary>
    public DemoPlan(int seed, DemoRates rates, IReadOnlyDictionary<DemoStepKind, int> actors)
    {
        rates.Validate();
        foreach (var (kind, n) in actors)
            if (n < 1) throw new ArgumentOutOfRangeException(nameof(actors), n, $"{kind} needs at least one actor.");
        (_seed, _rates, _actors) = (seed, rates, actors);
    }

    /// <summary>The plan for the demo's cast (<see cref="DemoWorld"/>).</summary>
    public static DemoPlan ForWorld(int seed, DemoRates rates) => new(seed, rates, new Dictionary<DemoStepKind, int>
    {
        [DemoStepKind.KeyedRequest] = DemoWorld.Customers.Count,
        [DemoStepKind.X402Request] = 1,
        [DemoStepKind.ComputeAsk] = 1,
        [DemoStepKind.ComputeBid] = DemoWorld.Buyers.Count,
        [DemoStepKind.ComputeLift] = DemoWorld.Buyers.Count,
        [DemoStepKind.ShareAsk] = 1,
        [DemoStepKind.ShareBuy] = DemoWorld.Holders.Count,
        [DemoStepKind.Claim] = DemoWorld.Holders.Count,
    });

    /// <summary>The steps in time order, without end (the driver stops taking them when the server stops).</summary>
    public IEnumerable<DemoStep> Steps()
    {
        // One stream per kind with a rate; a merge by time (ties: the kind's order) keeps the plan sorted.
        var streams = new List<IEnumerator<DemoStep>>();
        foreach (DemoStepKind kind in Enum.GetValues<DemoStepKind>())
            if (_rates.Of(kind) > 0 && _actors.ContainsKey(kind)) streams.Add(Stream(kind).GetEnumerator());
        var queue = new PriorityQueue<IEnumerator<DemoStep>, (TimeSpan, DemoStepKind)>();
        foreach (var s in streams)
            if (s.MoveNext()) queue.Enqueue(s, (s.Current.At, s.Current.Kind));
        while (queue.TryDequeue(out var next, out _))
        {
            yield return next.Current;
            if (next.MoveNext()) queue.Enqueue(next, (next.Current.At, next.Current.Kind));
        }
    }

    private IEnumerable<DemoStep> Stream(DemoStepKind kind)
    {
        // A stream's own seed: the plan's seed and the kind, mixed so that seeds 1 and 2 do not give neighbouring streams.
        var random = new Random(unchecked((int)Mix((uint)_seed, (uint)kind)));
        double rate = _rates.Of(kind);
        int actors = _actors[kind];
        double seconds = 0;
        while (true)
        {
            // Exponential gaps: 1 − U lies in (0, 1], so the logarithm is finite.
            seconds += -Math.Log(1 - random.NextDouble()) / rate;
            yield return new DemoStep(TimeSpan.FromSeconds(seconds), kind, random.Next(actors), random.Next(1 << 20), 1 + random.Next(8), random.Next(20));
        }
    }

    // A 32-bit finalizer (murmur3's) over the seed and the kind.
    private static uint Mix(uint seed, uint kind)
    {
        uint h = seed * 0x9E3779B1u ^ (kind + 0x7F4A7C15u);
        h ^= h >> 16;
        h *= 0x85EBCA6Bu;
        h ^= h >> 13;
        h *= 0xC2B2AE35u;
        h ^= h >> 16;
        return h;
    }
}
