using ComputeGrid.Core;
using CsCheck;

namespace ComputeGrid.Core.Tests;

public class MoneyTests
{
    [Fact]
    public void Arithmetic_is_checked_and_never_wraps()
    {
        var max = new Money(long.MaxValue, Asset.Usd);
        Assert.Throws<OverflowException>(() => max + new Money(1, Asset.Usd));
        Assert.Throws<OverflowException>(() => new Money(long.MinValue, Asset.Usd) - new Money(1, Asset.Usd));
        Assert.Throws<OverflowException>(() => max * 2);
        Assert.Throws<InvalidOperationException>(() => new Money(1, Asset.Usd) + new Money(1, Asset.Btc));
        Assert.Equal(new Money(3, Asset.Btc), new Money(1, Asset.Btc) + new Money(2, Asset.Btc));
    }

    [Theory]
    [InlineData("12.5", 12_500_000)]
    [InlineData("0.000001", 1)]
    [InlineData("-3", -3_000_000)]
    [InlineData("9223372036854.775807", long.MaxValue)]
    public void Parsing_major_units_is_exact(string text, long units)
    {
        Assert.True(Money.TryParseMajor(text, Asset.Usd, out var m));
        Assert.Equal(units, m.Units);
    }

    [Theory]
    [InlineData("0.0000001")]            // more decimals than USDC has
    [InlineData("9223372036854.775808")] // one micro-USD past long.MaxValue
    [InlineData("1e6")]
    [InlineData("")]
    [InlineData(".")]
    public void Parsing_rejects_what_cannot_be_held_exactly(string text) => Assert.False(Money.TryParseMajor(text, Asset.Usd, out _));

    [Fact]
    public void Formatting_and_parsing_round_trip() =>
        Gen.Long.Sample(units =>
        {
            var m = new Money(units, Asset.Btc);
            string text = m.ToDecimalString().Split(' ')[0];
            Assert.True(Money.TryParseMajor(text, Asset.Btc, out var back), text);
            Assert.Equal(m, back);
        });

    [Fact]
    public void MulDiv_rounds_toward_zero_in_128_bits()
    {
        Assert.Equal(long.MaxValue / 3, Money.MulDiv(long.MaxValue, 1_000_000, 3_000_000));
        Assert.Equal(333_333, Money.MulDiv(1_000_000, 1, 3));
        Assert.Throws<OverflowException>(() => Money.MulDiv(long.MaxValue, 2, 1));
    }

    [Fact]
    public void Ids_parse_decimal_and_hex_and_refuse_junk()
    {
        Assert.True(Ids.TryParse("340282366920938463463374607431768211455", out var max));
        Assert.Equal(UInt128.MaxValue, max);
        Assert.True(Ids.TryParse("0xff", out var hex));
        Assert.Equal((UInt128)255, hex);
        Assert.False(Ids.TryParse("340282366920938463463374607431768211456", out _));
        Assert.False(Ids.TryParse("-1", out _));
        Assert.False(Ids.TryParse("1.5", out _));
        Assert.False(Ids.TryParse(" ", out _));
    }
}
