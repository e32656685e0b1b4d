namespace ComputeGrid.Energy.Bookkeeping;

/// <summary>
/// Mining revenue between satoshis and micro-USD at the day's price, in integers only. The accounting values mining
/// revenue in micro-USD (M); the pool pays whole satoshis: <c>S = ⌊M × 10⁸ / P⌋</c> for a price of P micro-USD per BTC,
/// and the remainder <c>R = M × 10⁸ − S × P</c> (0 ≤ R &lt; P, in units of 10⁻⁸ micro-USD: less than one satoshi's worth)
/// is kept exactly beside the sale, so <c>S × P + R = M × 10⁸</c> always holds. The sale pays the site M micro-USD: the
/// site's P&amp;L is the accounting's to the micro-dollar, and the conversion desk carries the remainders, each recorded.
/// Each interval converts on its own (no carry from the one before), so a replay or restart books the same amounts.
/// </summary>
public static class BitcoinConversion
{
    /// <summary>Satoshis per bitcoin.</summary>
    public const long SatoshisPerBtc = 100_000_000;

    /// <summary>
    /// The highest price accepted, micro-USD per BTC (USD 10⁹): keeps <c>R</c> and <c>P</c> far inside 64 bits.
    /// </summary>
    public const long PriceMicroUsdMax = 1_000_000_000L * 1_000_000;

    /// <summary>A price in USD per BTC (the daily series' double) as micro-USD per BTC, rounded half to even once.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Not positive, not finite or above <see cref="PriceMicroUsdMax"/>.</exception>
    public static long PriceMicroUsd(double usdPerBtc)
    {
        double m = Math.Round(usdPerBtc * 1e6, MidpointRounding.ToEven);
        if (!(m >= 1 && m <= PriceMicroUsdMax)) throw new ArgumentOutOfRangeException(nameof(usdPerBtc), usdPerBtc, "a bitcoin price must be positive and at most USD 10^9");
        return (long)m;
    }

    /// <summary>Splits <paramref name="microUsd"/> (≥ 0) at <paramref name="priceMicroUsd"/> into whole satoshis and the exact remainder.</summary>
    public static (long Satoshis, long Remainder) ToSatoshis(long microUsd, long priceMicroUsd)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(microUsd);
        if (priceMicroUsd < 1 || priceMicroUsd > PriceMicroUsdMax) throw new ArgumentOutOfRangeException(nameof(priceMicroUsd), priceMicroUsd, "a bitcoin price must be positive and at most USD 10^9");
        // 128-bit product: M × 10⁸ overflows 64 bits beyond USD 92,233 an interval.
        Int128 scaled = (Int128)microUsd * SatoshisPerBtc;
        Int128 sats = scaled / priceMicroUsd;
        long remainder = (long)(scaled - sats * priceMicroUsd);
        return (checked((long)sats), remainder);
    }

    /// <summary>The micro-USD of <paramref name="satoshis"/> sold at <paramref name="priceMicroUsd"/> with <paramref name="remainder"/>: the inverse of <see cref="ToSatoshis"/>.</summary>
    /// <exception cref="ArgumentException">The three do not make a whole number of micro-USD (the remainder is not the one <see cref="ToSatoshis"/> gave).</exception>
    public static long ToMicroUsd(long satoshis, long priceMicroUsd, long remainder)
    {
        Int128 scaled = (Int128)satoshis * priceMicroUsd + remainder;
        if (remainder < 0 || remainder >= priceMicroUsd || scaled % SatoshisPerBtc != 0)
            throw new ArgumentException($"{satoshis} sat at {priceMicroUsd} micro-USD/BTC with remainder {remainder} is not a whole number of micro-USD.");
        return checked((long)(scaled / SatoshisPerBtc));
    }
}
