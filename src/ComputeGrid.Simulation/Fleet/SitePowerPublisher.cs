using ComputeGrid.Energy.Dispatch;
using ComputeGrid.Inference.Routing;

namespace ComputeGrid.Simulation.Fleet;

/// <summary>
/// What a site publishes to the router before an interval is routed (<see cref="NodePowerState"/>), from what it knows
/// then: the last known price, its controller's 4CP guard, the interval's emergency signal, the miners it ran last.
/// </summary>
/// <remarks>
/// <para>The price follows the live site (<c>LiveSite.PublishPower</c>): the last known price, plus the peak charge per
/// MWh while the controller's 4CP guard is up.</para>
/// <para><b>Displaced mining.</b> With <see cref="CountDisplacedMining"/>, a site whose miners fill the interconnect
/// beside the firm load (no room for one more unit) publishes the marginal cost of a unit as it really is there: the
/// unit pushes miners off (least efficient first, <see cref="DispatchLimits.Enforce"/>), so the site buys no more energy
/// but loses those miners' revenue — yesterday's hashprice × the group's TH/s per MW, per facility MWh — or the price,
/// if that is higher (the miners would then be off anyway). Without it, a site at the limit looks as cheap as its price,
/// however much mining a unit displaces there.</para>
/// </remarks>
public sealed class SitePowerPublisher
{
    private readonly SiteProblem _site;
    private readonly double _peakWeightUsdPerKw;
    private readonly long _milliJoulesPer1kTokens;

    /// <summary>A publisher for <paramref name="site"/>.</summary>
    /// <param name="site">The site as its controller sees it: the AI load of an interval about to be routed is the firm
    /// load plus the flexible load it carries now (the live site's measured load), so the units already there count
    /// against the headroom.</param>
    /// <param name="unitItKw">A unit's IT power (kW).</param>
    /// <param name="tokensPerUnit">Tokens one unit serves (the router prices power per 1,000 tokens).</param>
    /// <param name="countDisplacedMining">Publish the displaced mining revenue as the marginal cost at a full interconnect.</param>
    public SitePowerPublisher(SiteProblem site, double unitItKw, long tokensPerUnit, bool countDisplacedMining)
    {
        ArgumentNullException.ThrowIfNull(site);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(tokensPerUnit);
        _site = site;
        SiteProblem p = site;
        UnitItKw = unitItKw;
        CountDisplacedMining = countDisplacedMining;
        // The tariff's weight per interval of a peak hour (USD per kW), as the peak-charge series holds it.
        _peakWeightUsdPerKw = p.PeakChargeMonths.Length == 0 ? 0 : p.PeakChargeUsdPerKwYear / p.PeakChargeMonths.Length * p.IntervalHours;
        // mJ per 1,000 tokens, cooling included: kW × h × 3.6·10⁹ mJ/kWh.
        _milliJoulesPer1kTokens = (long)Math.Round(unitItKw * p.Pue * p.IntervalHours * 3.6e9 / (tokensPerUnit / 1000.0));
    }

    /// <summary>A unit's IT power (kW).</summary>
    public double UnitItKw { get; }

    /// <summary>Whether a full interconnect is priced at the mining it displaces.</summary>
    public bool CountDisplacedMining { get; }

    /// <summary>The energy per 1,000 tokens the router prices the site's nodes with (mJ, cooling included).</summary>
    public long MilliJoulesPer1kTokens => _milliJoulesPer1kTokens;

    /// <summary>The state to publish before interval <paramref name="t"/> is routed.</summary>
    /// <param name="t">The interval.</param>
    /// <param name="previousRunning">Miners of each group that ran in the interval before.</param>
    /// <param name="peakGuard">True while the site's controller holds miners off for 4CP risk (as decided last).</param>
    public NodePowerState State(int t, ReadOnlySpan<int> previousRunning, bool peakGuard)
    {
        SitePowerSignal signal = Signal(_site, t, previousRunning, peakGuard, _peakWeightUsdPerKw, CountDisplacedMining ? UnitItKw : null);
        return new NodePowerState(_site.Name, signal.PriceMicroUsdPerMwh, _milliJoulesPer1kTokens, signal.MinerKw, signal.InterconnectHeadroomKw, signal.Flags);
    }

    /// <summary>
    /// A site's power signal before interval <paramref name="t"/> is routed: what the fleet benchmark's sites and the
    /// live sites of <c>serve</c> (<c>LiveSite</c>) both publish, so the benchmark scores the policy the server runs.
    /// </summary>
    /// <param name="p">The site as its controller sees it.</param>
    /// <param name="t">The interval.</param>
    /// <param name="previousRunning">Miners of each group that ran in the interval before.</param>
    /// <param name="peakGuard">True while the site's controller holds miners off for 4CP risk (as decided last).</param>
    /// <param name="peakWeightUsdPerKw">The tariff's weight per peak interval (USD per kW).</param>
    /// <param name="displacedUnitItKw">A unit's IT power (kW) to price a full interconnect at the mining a unit displaces;
    /// null: the price alone.</param>
    public static SitePowerSignal Signal(SiteProblem p, int t, ReadOnlySpan<int> previousRunning, bool peakGuard, double peakWeightUsdPerKw, double? displacedUnitItKw)
    {
        ArgumentNullException.ThrowIfNull(p);
        int known = Math.Min(p.PricesKnownUntil(t), t + 1) - 1; // the interval's own price when published already, else the last
        double price = known >= 0 ? p.PriceUsdPerMwh[known] : 0;
        // Peak risk is what the controller's 4CP guard believes at decision time, never hindsight of which interval
        // turned out to be the month's peak: while it is up, a kW drawn is priced as if this interval were the peak.
        if (peakGuard) price += peakWeightUsdPerKw * 1000.0 / p.IntervalHours;
        double minerKw = 0;
        int leastEfficient = -1;
        for (int g = 0; g < p.Groups.Length; g++)
        {
            minerKw += previousRunning[g] * p.Groups[g].WattsEach / 1000.0;
            if (previousRunning[g] > 0) leastEfficient = g; // groups are kept most efficient first
        }
        double headroomKw = p.InterconnectKw - p.Pue * (p.AiItKw[t] + minerKw);
        if (displacedUnitItKw is double unitKw && leastEfficient >= 0 && headroomKw < p.Pue * unitKw)
        {
            MinerGroup g = p.Groups[leastEfficient];
            // USD per facility MWh of the displaced miners: per TH/s and day → per MWh of IT power, then per facility MWh.
            double perMwh = p.KnownHashpriceUsdPerThDay[t] / 24.0 * (1 - p.PoolFeeFraction) * g.TerahashEach / (g.WattsEach / 1e6) / p.Pue;
            price = Math.Max(price, perMwh);
        }
        long priceMicro = (long)Math.Clamp(Math.Round(price * 1e6), -NodeRegistry.MaxPowerPriceMicroUsdPerMwh, NodeRegistry.MaxPowerPriceMicroUsdPerMwh);
        PowerFlags flags = (peakGuard ? PowerFlags.PeakHour : PowerFlags.None) | (p.Emergency[t] ? PowerFlags.Emergency : PowerFlags.None);
        return new SitePowerSignal(priceMicro, (long)Math.Round(p.Pue * minerKw), (long)Math.Floor(headroomKw), flags);
    }
}

/// <summary>A site's power signal for one interval (<see cref="SitePowerPublisher.Signal"/>).</summary>
/// <param name="PriceMicroUsdPerMwh">The marginal power price (micro-USD per facility MWh).</param>
/// <param name="MinerKw">The miners' facility power that could give way (kW).</param>
/// <param name="InterconnectHeadroomKw">The interconnect's headroom beside firm load and miners (kW).</param>
/// <param name="Flags">4CP guard and grid emergency.</param>
public readonly record struct SitePowerSignal(long PriceMicroUsdPerMwh, long MinerKw, long InterconnectHeadroomKw, PowerFlags Flags);
