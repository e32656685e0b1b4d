namespace ComputeGrid.Inference.Routing;

/// <summary>What a node's site says about its power this interval, beyond the price.</summary>
[Flags]
public enum PowerFlags
{
    /// <summary>Nothing unusual.</summary>
    None = 0,

    /// <summary>
    /// The site is in a likely (or, in a replay, the actual) peak-charge hour, e.g. ERCOT 4CP: every kW drawn now may set
    /// a year of transmission charges. Flexible inference is moved away when it can be.
    /// </summary>
    PeakHour = 1,

    /// <summary>The grid operator has declared an emergency at the site's grid: flexible inference is moved away when it can be.</summary>
    Emergency = 2,
}

/// <summary>
/// One site's power state for one of its nodes, as the site publishes it each interval (<see cref="NodeRegistry.PublishPower"/>).
/// Integers only: the router compares them on its hot path.
/// </summary>
/// <param name="Site">The site's name.</param>
/// <param name="PriceMicroUsdPerMwh">The site's marginal power price, micro-USD per MWh (may be negative, as real-time
/// prices are; a peak hour's charge is included by the site when it knows it), −<see cref="NodeRegistry.MaxPowerPriceMicroUsdPerMwh"/>
/// … <see cref="NodeRegistry.MaxPowerPriceMicroUsdPerMwh"/>.</param>
/// <param name="MilliJoulesPer1kTokens">The energy the node draws from the grid for 1,000 tokens, millijoules, cooling
/// included (its site's PUE): the site's model of the node (see the Energy README), 0 … <see cref="NodeRegistry.MaxMilliJoulesPer1kTokens"/>.</param>
/// <param name="MinerHeadroomKw">The miners' facility power running at the site now, kW: what curtailing them would free.</param>
/// <param name="InterconnectHeadroomKw">The interconnect limit less the site's facility load now, kW.</param>
/// <param name="Flags">Peak hour, emergency.</param>
public readonly record struct NodePowerState(
    string Site,
    long PriceMicroUsdPerMwh,
    long MilliJoulesPer1kTokens,
    long MinerHeadroomKw,
    long InterconnectHeadroomKw,
    PowerFlags Flags)
{
    /// <summary>The flags that make the router avoid the node for flexible inference.</summary>
    public const PowerFlags AvoidFlags = PowerFlags.PeakHour | PowerFlags.Emergency;

    /// <summary>True when the node's site asks flexible inference to go elsewhere (peak hour or emergency).</summary>
    public bool Avoid => (Flags & AvoidFlags) != 0;

    /// <summary>
    /// The marginal power cost of 1,000 tokens on the node, nano-USD (10⁻⁹ USD): energy × price, exact in 128 bits, then
    /// rounded toward zero. Nano-USD because a small model's power per 1,000 tokens is far below a micro-dollar at
    /// ordinary prices and would otherwise round to nothing.
    /// </summary>
    /// <remarks>mJ × µUSD/MWh ÷ 3.6·10¹² mJ/MWh = µUSD; × 1,000 = nano-USD, so the divisor is 3.6·10⁹.</remarks>
    public long PowerCostNanoUsdPer1kTokens => (long)((Int128)MilliJoulesPer1kTokens * PriceMicroUsdPerMwh / 3_600_000_000L);
}
