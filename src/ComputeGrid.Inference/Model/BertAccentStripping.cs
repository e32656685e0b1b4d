using System.Globalization;
using System.Text;

namespace ComputeGrid.Inference.Model;

/// <summary>
/// BERT's accent stripping (NFD, then drop the non-spacing marks) one code point at a time, from a table, because
/// this project runs with invariant globalization, where <see cref="string.Normalize(NormalizationForm)"/> leaves
/// non-ASCII text as it is (so "café" would stay "café" and miss the vocabulary's "cafe").
/// </summary>
/// <remarks>
/// The table (BertAccentStripping.Data.cs) was generated with Python's unicodedata:
/// <code>
/// for cp in range(0x110000):
///     if 0xD800 &lt;= cp &lt;= 0xDFFF or 0xAC00 &lt;= cp &lt;= 0xD7A3: continue
///     d = unicodedata.normalize('NFD', chr(cp))
///     if d != chr(cp): emit(cp, ''.join(x for x in d if unicodedata.category(x) != 'Mn'))
/// </code>
/// Hangul syllables decompose algorithmically into their conjoining jamo, as NFD does.
/// </remarks>
internal static partial class BertAccentStripping
{
    private const int HangulBase = 0xAC00;
    private const int HangulCount = 11172;
    private const int JamoLBase = 0x1100;
    private const int JamoVBase = 0x1161;
    private const int JamoTBase = 0x11A7;
    private const int JamoVCount = 21;
    private const int JamoTCount = 28;

    /// <summary>Appends <paramref name="rune"/> decomposed (NFD) without its non-spacing marks.</summary>
    public static void AppendStripped(StringBuilder builder, Rune rune)
    {
        int cp = rune.Value;
        if ((uint)(cp - HangulBase) < HangulCount)
        {
            int index = cp - HangulBase;
            builder.Append((char)(JamoLBase + (index / (JamoVCount * JamoTCount))));
            builder.Append((char)(JamoVBase + (index % (JamoVCount * JamoTCount) / JamoTCount)));
            if (index % JamoTCount != 0)
            {
                builder.Append((char)(JamoTBase + (index % JamoTCount)));
            }
            return;
        }
        if (cp >= 0xC0)
        {
            int found = DecomposingCodePoints.BinarySearch(cp);
            if (found >= 0)
            {
                builder.Append(StrippedForms[found]);
                return;
            }
        }
        if (Rune.GetUnicodeCategory(rune) != UnicodeCategory.NonSpacingMark)
        {
            AppendRune(builder, rune);
        }
    }

    /// <summary>Appends a code point as one or two UTF-16 units.</summary>
    public static void AppendRune(StringBuilder builder, Rune rune)
    {
        if (rune.IsBmp)
        {
            builder.Append((char)rune.Value);
        }
        else
        {
            Span<char> pair = stackalloc char[2];
            int written = rune.EncodeToUtf16(pair);
            builder.Append(pair[..written]);
        }
    }
}
