using ComputeGrid.Exchange.Matching;
using ComputeGrid.Exchange.MarketData;

namespace ComputeGrid.Exchange.Tests;

public class MarketDataForgetTests
{
    [Fact]
    public void A_forgotten_instrument_frees_its_tape_slot_and_candles_for_a_new_one()
    {
        var hub = new MarketDataHub(_ => "H100", new MarketDataOptions { MaxInstruments = 2, TradesPerInstrument = 4, FeedCapacity = 16 });
        hub.OnTrade(new Trade(1, 100, 1, 1_000, Side.Buy, 1));
        hub.OnTrade(new Trade(2, 110, 2, 2_000, Side.Sell, 2));
        Assert.Throws<InvalidOperationException>(() => hub.OnTrade(new Trade(3, 120, 1, 3_000, Side.Buy, 3)));
        hub.Forget(1);
        Assert.Equal(0, hub.Tape.Count(1));
        Assert.False(hub.Candles.TryGetLatest(1, CandleInterval.OneMinute, out _));
        hub.OnTrade(new Trade(3, 120, 1, 3_000, Side.Buy, 3));
        Assert.Equal(120, hub.Tape.Recent(3, 1)[0].Price);
        Assert.Equal(110, hub.Tape.Recent(2, 1)[0].Price); // the other instrument's ring is untouched
        Assert.Equal(1, hub.Tape.Count(3));
    }
}
