using ComputeGrid.Energy.Dispatch;
using ComputeGrid.Energy.Tests.Optimization;
using ComputeGrid.Inference.Routing;
using ComputeGrid.Simulation.Fleet;

namespace ComputeGrid.Energy.Tests.Fleet;

/// <summary>What a site tells the router before an interval: the price it knows, the mining a unit would displace, 4CP and emergencies.</summary>
public sealed class SitePowerPublisherTests
{
    // One group of 2 × 40 kW miners of 1,500 TH/s at 0.12 USD per TH/s-day, 20 kW of AI, 110 kW interconnect, PUE 1.
    private static SiteProblem Site(bool emergency = false)
    {
        SiteProblem p = TestSites.OneGroup([30, 45, 60], [20, 20, 20], 2, 40_000, 1_500, 0.12, 110, 40, double.PositiveInfinity, 2);
        if (emergency) p.Emergency[2] = true;
        return p;
    }

    [Fact]
    public void A_site_with_room_publishes_the_last_known_price()
    {
        var publisher = new SitePowerPublisher(Site(), unitItKw: 30, tokensPerUnit: 20_000_000, countDisplacedMining: true);
        NodePowerState state = publisher.State(2, [0], peakGuard: false); // no miner ran: 90 kW of room
        Assert.Equal(45_000_000, state.PriceMicroUsdPerMwh); // interval 1's price, the last known at interval 2
        Assert.Equal(90, state.InterconnectHeadroomKw);
        Assert.Equal(PowerFlags.None, state.Flags);
        // 30 kW × 0.25 h = 7.5 kWh = 2.7·10¹⁰ mJ for 20,000 × 1,000 tokens.
        Assert.Equal(1_350_000, state.MilliJoulesPer1kTokens);
    }

    [Fact]
    public void A_site_whose_miners_fill_the_interconnect_publishes_the_mining_a_unit_displaces()
    {
        var publisher = new SitePowerPublisher(Site(), 30, 20_000_000, countDisplacedMining: true);
        NodePowerState state = publisher.State(2, [2], peakGuard: false); // 20 + 80 kW: 10 kW of room, a unit needs 30
        // 0.12 USD/TH-day ÷ 24 × 1,500 TH/s ÷ 0.04 MW = 187.5 USD per MWh, above the 45 USD known price.
        Assert.Equal(187_500_000, state.PriceMicroUsdPerMwh);
        Assert.Equal(80, state.MinerHeadroomKw);
        Assert.Equal(10, state.InterconnectHeadroomKw);
        var blind = new SitePowerPublisher(Site(), 30, 20_000_000, countDisplacedMining: false);
        Assert.Equal(45_000_000, blind.State(2, [2], peakGuard: false).PriceMicroUsdPerMwh);
    }

    [Fact]
    public void A_4CP_guard_adds_the_peak_charge_per_MWh_and_flags_the_hour_and_an_emergency_is_flagged()
    {
        SiteProblem p = TestSites.Random(8, 1, rampDownKw: double.PositiveInfinity); // 60 USD per kW-year over 4 months
        var publisher = new SitePowerPublisher(p, 10, 20_000_000, countDisplacedMining: false);
        NodePowerState state = publisher.State(3, [0, 0], peakGuard: true);
        // 60 / 4 × 0.25 h = 3.75 USD per kW in a peak interval = 15,000 USD per MWh drawn in it.
        Assert.Equal((long)Math.Round((p.PriceUsdPerMwh[2] + 15_000) * 1e6), state.PriceMicroUsdPerMwh);
        Assert.Equal(PowerFlags.PeakHour, state.Flags);
        Assert.True(state.Avoid);
        var stormy = new SitePowerPublisher(Site(emergency: true), 30, 20_000_000, countDisplacedMining: true);
        Assert.Equal(PowerFlags.Emergency, stormy.State(2, [0], peakGuard: false).Flags);
    }
}
