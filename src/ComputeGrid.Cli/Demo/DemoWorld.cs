using ComputeGrid.Energy.Sites;

namespace ComputeGrid.Cli.Demo;

/// <summary>An inference node of the demo: one <c>computegrid node</c> process running the real model.</summary>
/// <param name="Id">The admitted node id, the same on the exchange, in the router and at its site.</param>
/// <param name="Region">Its region in the latency data (routing, and its exchange instruments).</param>
/// <param name="Price">Its inference price, micro-USD per 1,000 tokens.</param>
/// <param name="Capacity">Requests it runs at once (the node runs one model thread: the demo machine is small).</param>
/// <param name="Site">The live site it draws its power from, or null for a node in a colocation hall.</param>
/// <param name="Gpus">The GPUs it lists on the exchange and draws at its site (H100s).</param>
/// <param name="SharesIssued">Whether its provider issues shares of it.</param>
public sealed record DemoNode(string Id, string Region, long Price, int Capacity, string? Site, int Gpus, bool SharesIssued);

/// <summary>A customer of the demo that pays for embeddings with its API key from its home region.</summary>
/// <param name="Name">Its principal's name.</param>
/// <param name="Region">Its home region (where its requests come from).</param>
public sealed record DemoCustomer(string Name, string Region);

/// <summary>
/// The cast of <c>serve --demo</c>: three live sites in three power markets with their GPU nodes, inference nodes in
/// six regions, one provider owning them, keyed customers, compute buyers, share holders and one x402 payer. The numbers
/// are chosen for a 2-core machine: one model thread per node, a few requests a second in all.
/// </summary>
public static class DemoWorld
{
    /// <summary>The file in the data folder that keeps the actors' principals and keys (0600): <c>demo-actors.json</c>.</summary>
    public const string ActorsFile = "demo-actors.json";

    /// <summary>The provider every demo node belongs to (it lists their capacity and issues their shares).</summary>
    public const string Provider = "demo-provider";

    /// <summary>The most a demo node may charge, micro-USD per 1,000 tokens.</summary>
    public const long PriceCeiling = 100;

    /// <summary>The GPU class the demo nodes list on the exchange.</summary>
    public const string Gpu = "H100";

    /// <summary>
    /// The nodes. Three sit at the live sites (ERCOT West in Dallas, CAISO SP-15, JEPX Tokyo): GPU halls large enough that
    /// their leased GPUs are a visible share of the site's 50 MW interconnect (16,384 H100s at 700 W and PUE 1.1 draw
    /// 12.6 MW, beside some 44 MW of miners, so miners give way to AI load when it is leased), each with an inference pool
    /// of <see cref="SiteInferenceGpus"/> beside the GPUs it leases. The latency data names no US West region, so the SP-15
    /// node routes as Dallas, the nearest it has. The others are small and run in colocation halls.
    /// </summary>
    public static IReadOnlyList<DemoNode> Nodes { get; } =
    [
        new("dal-1", "dallas", 40, 4, SiteExamples.Reference, 16_384, SharesIssued: true),
        new("cal-1", "dallas", 44, 4, "caiso-sp15", 12_288, SharesIssued: false),
        new("tok-1", "tokyo", 36, 4, "jepx-tokyo", 8_192, SharesIssued: true),
        new("wdc-1", "washington-dc", 48, 4, null, 64, SharesIssued: false),
        new("fra-1", "frankfurt", 38, 4, null, 64, SharesIssued: true),
        new("lon-1", "london", 42, 4, null, 64, SharesIssued: false),
        new("syd-1", "sydney", 46, 4, null, 64, SharesIssued: false),
    ];

    /// <summary>
    /// The GPUs of a site node that serve its inference (<see cref="SiteNodeConfig.InferenceGpus"/>): a request running on
    /// one of the four model slots takes a quarter of them (256 H100s, some 180 kW), not a quarter of the hall.
    /// </summary>
    public const int SiteInferenceGpus = 1_024;

    /// <summary>Customers paying with their keys, one per region they send from.</summary>
    public static IReadOnlyList<DemoCustomer> Customers { get; } =
    [
        new("demo-acme-frankfurt", "frankfurt"), new("demo-kumo-tokyo", "tokyo"), new("demo-lone-star-dallas", "dallas"),
        new("demo-vale-sao-paulo", "sao-paulo"), new("demo-indus-mumbai", "mumbai"),
    ];

    /// <summary>Customers who buy compute on the exchange: they bid and lift the provider's asks.</summary>
    public static IReadOnlyList<DemoCustomer> Buyers { get; } = [new("demo-buyer-lab", "washington-dc"), new("demo-buyer-studio", "london")];

    /// <summary>Customers who buy node shares on the <c>SHR-{node}</c> books and claim their revenue.</summary>
    public static IReadOnlyList<DemoCustomer> Holders { get; } = [new("demo-holder-ada", "london"), new("demo-holder-kenji", "osaka")];

    /// <summary>The Anvil dev account that pays per request with x402 (funded with the demo's TestUSDC; 0 is the server's).</summary>
    public const int X402DevAccount = 7;

    /// <summary>The region the x402 payer's requests come from.</summary>
    public const string X402Region = "toronto";

    /// <summary>Each keyed customer's first funding, micro-USD.</summary>
    public const long CustomerFunding = 100_000_000;

    /// <summary>
    /// Each buyer's and holder's funding (moved into its trading account), micro-USD; topped up below a fifth of it. A lift
    /// of a site node's hour holds up to 4,096 GPU-hours × 2.3 USD, so a million dollars carries a buyer through a few
    /// hundred lifts between top-ups.
    /// </summary>
    public const long TraderFunding = 1_000_000_000_000;

    /// <summary>
    /// The provider's collateral (each lease reserves its penalty, a fifth of its notional, from it), micro-USD: enough to
    /// back every GPU of the demo nodes sold at 2.2 USD an hour for the three hourly and three daily instruments it trades.
    /// </summary>
    public const long ProviderCollateral = 2_000_000_000_000;

    /// <summary>
    /// Shares each share-issuing node issues: few, so that a holder of a handful is owed whole micro-dollars within minutes
    /// of requests that cost a few micro-dollars each (revenue per share is rounded down).
    /// </summary>
    public const long ShareSupply = 200;

    /// <summary>
    /// The GPUs a compute order of the demo names on <paramref name="node"/>'s instrument, from the step's seeded
    /// <paramref name="size"/> (1 … 8): for the provider's asks a thirty-second of the node per unit (512 … 4,096 GPUs of
    /// a 16,384-GPU site node), for a buyer's lift a sixty-fourth per unit (256 … 2,048) and for a resting bid a
    /// sixty-fourth per unit of 1 … 4; on a daily forward (24 times the hours, paid up front) an eighth of that. At least
    /// one GPU, never more than the node has.
    /// </summary>
    /// <param name="node">The node whose region's instrument the order is on.</param>
    /// <param name="kind">An ask, a bid or a lift.</param>
    /// <param name="size">The step's seeded size, 1 … 8.</param>
    /// <param name="daily">Whether the instrument is a daily forward.</param>
    /// <exception cref="ArgumentOutOfRangeException">Not a compute order, or a size outside 1 … 8.</exception>
    public static int OrderGpus(DemoNode node, DemoStepKind kind, int size, bool daily)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(size, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(size, 8);
        int gpus = kind switch
        {
            DemoStepKind.ComputeAsk => node.Gpus / 32 * size,
            DemoStepKind.ComputeLift => node.Gpus / 64 * size,
            DemoStepKind.ComputeBid => node.Gpus / 64 * (1 + size % 4),
            _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "Not a compute order."),
        };
        if (daily) gpus /= 8;
        return Math.Clamp(gpus, 1, node.Gpus);
    }

    /// <summary>
    /// The share of <paramref name="region"/>'s GPUs the provider offers for the hour that begins at
    /// <paramref name="hourStart"/>, 35 … 95 %, drawn from the seed and the hour: a provider keeps some capacity back, more
    /// in some hours than others, so the leased load at a site (and the miners beside it) moves from hour to hour rather
    /// than every hour selling out.
    /// </summary>
    /// <param name="seed">The demo's seed.</param>
    /// <param name="region">The instrument's region.</param>
    /// <param name="hourStart">The delivery hour's start.</param>
    public static double OfferedShare(int seed, string region, DateTimeOffset hourStart)
    {
        ArgumentNullException.ThrowIfNull(region);
        ulong x = unchecked((ulong)(uint)seed * 0x9E3779B97F4A7C15UL + (ulong)(hourStart.ToUnixTimeSeconds() / 3600) * 0xBF58476D1CE4E5B9UL);
        foreach (char c in region) x = unchecked((x ^ c) * 0x100000001B3UL);
        // SplitMix64's finalizer: every bit of the inputs moves the result.
        x = unchecked((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9UL);
        x = unchecked((x ^ (x >> 27)) * 0x94D049BB133111EBUL);
        x ^= x >> 31;
        return 0.35 + 0.60 * ((x >> 11) / (double)(1UL << 53));
    }

    /// <summary>The GPUs the demo's nodes in <paramref name="region"/> list together.</summary>
    public static int RegionGpus(string region) => Nodes.Where(n => n.Region == region).Sum(n => n.Gpus);

    /// <summary>
    /// Which of the hourly instruments trading now (nearest delivery first) a compute step takes, from its seeded
    /// <paramref name="pick"/>: the nearest hour one step in two, the second and third one step in four each, so most
    /// leases are bought for the coming hour and are in delivery soon after it begins.
    /// </summary>
    /// <param name="pick">The step's seeded choice (at least 0).</param>
    /// <param name="count">How many instruments trade now (at least 1).</param>
    public static int HourlyIndex(int pick, int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(pick);
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        return Math.Min(count - 1, Math.Max(0, (pick >> 4) % 4 - 1));
    }

    /// <summary>
    /// The live sites of the demo: the three embedded examples, each listing its nodes, so a site's firm GPU load is its
    /// nodes' measured load (leases in delivery and inference) rather than the example's GPU schedule.
    /// </summary>
    public static IReadOnlyList<SiteConfig> Sites()
    {
        var sites = new List<SiteConfig>();
        foreach (string name in SiteExamples.ThreeMarkets)
        {
            SiteConfig example = SiteExamples.Load(name);
            SiteNodeConfig[] nodes = [.. Nodes.Where(n => n.Site == name).Select(n => new SiteNodeConfig { Id = n.Id, Gpus = n.Gpus, InferenceGpus = Math.Min(SiteInferenceGpus, n.Gpus), WattsPerGpu = 700, JoulesPer1kTokens = 50 })];
            sites.Add(example with { Nodes = nodes, Description = example.Description + " Demo: its GPUs are the nodes " + string.Join(", ", nodes.Select(n => n.Id)) + "." });
        }
        return sites;
    }
}
