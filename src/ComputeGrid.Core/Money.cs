using System.Globalization;

namespace ComputeGrid.Core;

/// <summary>
/// An amount of one asset in minor units (micro-USD, satoshi). Arithmetic is checked: an overflow throws
/// <see cref="OverflowException"/>, it never wraps. Mixing assets throws <see cref="InvalidOperationException"/>
/// because it is a programming error, not an expected outcome. No floating type ever holds money;
/// <see cref="ToDecimalString"/> exists for display only.
/// </summary>
public readonly record struct Money(long Units, Asset Asset)
{
    /// <summary>Zero of the given asset.</summary>
    public static Money Zero(Asset asset) => new(0, asset);

    /// <summary>Adds two amounts of the same asset, checked.</summary>
    public static Money operator +(Money a, Money b)
    {
        SameAsset(a, b);
        return new Money(checked(a.Units + b.Units), a.Asset);
    }

    /// <summary>Subtracts two amounts of the same asset, checked.</summary>
    public static Money operator -(Money a, Money b)
    {
        SameAsset(a, b);
        return new Money(checked(a.Units - b.Units), a.Asset);
    }

    /// <summary>Multiplies by an integer count, checked.</summary>
    public static Money operator *(Money a, long count) => new(checked(a.Units * count), a.Asset);

    /// <summary>
    /// <paramref name="units"/> × <paramref name="numerator"/> / <paramref name="denominator"/>, computed in 128 bits and
    /// rounded toward zero; throws on overflow of the result. Used for pro-rata splits and fees.
    /// </summary>
    public static long MulDiv(long units, long numerator, long denominator)
    {
        if (denominator == 0) throw new DivideByZeroException();
        Int128 r = (Int128)units * numerator / denominator;
        return checked((long)r);
    }

    /// <summary>Formats the amount in major units with all decimals, e.g. <c>12.500000 USDC</c>.</summary>
    public string ToDecimalString()
    {
        long per = Asset.UnitsPerMajor;
        long whole = Units / per;
        long frac = Math.Abs(Units % per);
        string sign = Units < 0 && whole == 0 ? "-" : "";
        return string.Create(CultureInfo.InvariantCulture, $"{sign}{whole}.{frac.ToString(new string('0', Asset.Decimals), CultureInfo.InvariantCulture)} {Asset.Symbol}");
    }

    /// <summary>
    /// Parses a decimal string in major units (e.g. <c>"12.5"</c>) exactly into minor units. Returns false for
    /// more decimals than the asset has, for non-numeric text and for overflow.
    /// </summary>
    public static bool TryParseMajor(string text, Asset asset, out Money money)
    {
        money = default;
        text = text.Trim();
        if (text.Length == 0) return false;
        bool negative = text[0] == '-';
        if (negative || text[0] == '+') text = text[1..];
        int dot = text.IndexOf('.');
        string wholePart = dot < 0 ? text : text[..dot];
        string fracPart = dot < 0 ? "" : text[(dot + 1)..];
        if (wholePart.Length == 0 && fracPart.Length == 0) return false;
        if (fracPart.Length > asset.Decimals) return false;
        foreach (char c in wholePart) if (c is < '0' or > '9') return false;
        foreach (char c in fracPart) if (c is < '0' or > '9') return false;
        try
        {
            long whole = wholePart.Length == 0 ? 0 : long.Parse(wholePart, CultureInfo.InvariantCulture);
            long frac = fracPart.Length == 0 ? 0 : long.Parse(fracPart.PadRight(asset.Decimals, '0'), CultureInfo.InvariantCulture);
            // Negative amounts are built negative so that long.MinValue round-trips.
            long units = negative ? checked(-(whole * asset.UnitsPerMajor) - frac) : checked(whole * asset.UnitsPerMajor + frac);
            money = new Money(units, asset);
            return true;
        }
        catch (OverflowException)
        {
            return false;
        }
    }

    private static void SameAsset(Money a, Money b)
    {
        if (a.Asset.Code != b.Asset.Code)
            throw new InvalidOperationException($"Cannot combine {a.Asset} with {b.Asset}.");
    }

    public override string ToString() => ToDecimalString();
}
