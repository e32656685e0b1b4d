using System.Globalization;
using System.Text;

namespace ComputeGrid.Inference.Model;

// Microsoft.ML.Tokenizers 2.0.1's BertTokenizer does the WordPiece step like Hugging Face, but its default basic
// tokenization differs from the reference (the Rust `tokenizers` BertNormalizer + BertPreTokenizer that
// sentence-transformers runs) in ways that change real inputs' tokens and so their embeddings:
//   * its normalizer deletes '\t', '\n' and '\r' instead of treating them as spaces, gluing the words on either side
//     together (dotnet/machinelearning#7724);
//   * its pre-tokenizer (\w+|\p{P}) silently deletes every symbol character ($ + < = > ^ ` | ~ ° © emoji …)
//     (dotnet/machinelearning#7725);
//   * its accent stripping relies on string.Normalize(FormD), which under this project's invariant globalization
//     leaves non-ASCII text unchanged, so "café" would not become the vocabulary's "cafe".
// BertOptions.Normalizer / BertOptions.PreTokenizer look pluggable, but 2.0.1's BertTokenizer.Create replaces them
// with its own, so the basic tokenization is done here, following the Rust implementation rule for rule, and each
// resulting word goes through the library's WordPiece on its own (no further normalisation or pre-tokenization).

/// <summary>
/// BERT's normalisation as Hugging Face's <c>BertNormalizer</c> does it: drop NUL, U+FFFD and "other" characters
/// (Cc, Cf, Cs, Co, Cn) except tab/newline/return; map white space (tab, newline and return included) to a space;
/// put spaces around CJK ideographs; strip accents (NFD, drop Mn, via <see cref="BertAccentStripping"/>); lower-case.
/// </summary>
internal static class BertBasicNormalizer
{
    public static string Normalize(ReadOnlySpan<char> original, bool lowerCase, bool stripAccents, bool handleChineseChars)
    {
        if (original.IsEmpty)
        {
            return string.Empty;
        }

        // The Rust BertNormalizer's order: clean text, pad CJK, strip accents, lower-case.
        var builder = new StringBuilder(original.Length + 16);
        foreach (Rune rune in original.EnumerateRunes()) // an unpaired surrogate comes back as U+FFFD and is dropped
        {
            int cp = rune.Value;
            if (cp is 0 or 0xFFFD)
            {
                continue;
            }
            if (cp is '\t' or '\n' or '\r')
            {
                builder.Append(' ');
                continue;
            }
            if (Rune.GetUnicodeCategory(rune) is UnicodeCategory.Control or UnicodeCategory.Format
                or UnicodeCategory.Surrogate or UnicodeCategory.PrivateUse or UnicodeCategory.OtherNotAssigned)
            {
                continue;
            }
            if (Rune.IsWhiteSpace(rune))
            {
                builder.Append(' ');
                continue;
            }
            bool cjk = handleChineseChars && IsChineseChar(cp);
            if (cjk)
            {
                builder.Append(' ');
            }
            if (stripAccents)
            {
                BertAccentStripping.AppendStripped(builder, rune);
            }
            else
            {
                BertAccentStripping.AppendRune(builder, rune);
            }
            if (cjk)
            {
                builder.Append(' ');
            }
        }

        string text = builder.ToString();
        return lowerCase ? text.ToLowerInvariant() : text;
    }

    /// <summary>The CJK Unified Ideographs blocks BERT splits into single characters.</summary>
    private static bool IsChineseChar(int cp) =>
        cp is (>= 0x4E00 and <= 0x9FFF) or (>= 0x3400 and <= 0x4DBF) or (>= 0x20000 and <= 0x2A6DF)
            or (>= 0x2A700 and <= 0x2B73F) or (>= 0x2B740 and <= 0x2B81F) or (>= 0x2B820 and <= 0x2CEAF)
            or (>= 0xF900 and <= 0xFAFF) or (>= 0x2F800 and <= 0x2FA1F);
}

/// <summary>
/// BERT's pre-tokenization as Hugging Face's <c>BertPreTokenizer</c> does it: split on white space (removed), then
/// isolate every punctuation character — ASCII punctuation (which includes the symbols <c>$ + &lt; = &gt; ^ ` | ~</c>)
/// and the Unicode P categories — as its own piece. Everything else stays in its word for WordPiece (which maps
/// what the vocabulary lacks to [UNK]); nothing is dropped.
/// </summary>
internal static class BertBasicPreTokenizer
{
    /// <summary>Appends the (offset, length) of each word and punctuation character of <paramref name="text"/>.</summary>
    public static void Split(ReadOnlySpan<char> text, List<(int Offset, int Length)> pieces)
    {
        int wordStart = -1;
        int i = 0;
        while (i < text.Length)
        {
            Rune.DecodeFromUtf16(text[i..], out Rune rune, out int width);
            bool space = Rune.IsWhiteSpace(rune);
            bool punctuation = !space && IsPunctuation(rune);
            if (space || punctuation)
            {
                if (wordStart >= 0)
                {
                    pieces.Add((wordStart, i - wordStart));
                    wordStart = -1;
                }
                if (punctuation)
                {
                    pieces.Add((i, width));
                }
            }
            else if (wordStart < 0)
            {
                wordStart = i;
            }
            i += width;
        }
        if (wordStart >= 0)
        {
            pieces.Add((wordStart, text.Length - wordStart));
        }
    }

    private static bool IsPunctuation(Rune rune)
    {
        int cp = rune.Value;
        if (cp < 128)
        {
            return cp is (>= 33 and <= 47) or (>= 58 and <= 64) or (>= 91 and <= 96) or (>= 123 and <= 126);
        }
        return Rune.GetUnicodeCategory(rune) is UnicodeCategory.ConnectorPunctuation or UnicodeCategory.DashPunctuation
            or UnicodeCategory.OpenPunctuation or UnicodeCategory.ClosePunctuation
            or UnicodeCategory.InitialQuotePunctuation or UnicodeCategory.FinalQuotePunctuation
            or UnicodeCategory.OtherPunctuation;
    }
}
