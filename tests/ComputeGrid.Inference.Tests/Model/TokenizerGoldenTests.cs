using ComputeGrid.Inference.Model;

namespace ComputeGrid.Inference.Tests.Model;

/// <summary>
/// Token ids checked against Hugging Face's own BERT tokenization: the expected ids were produced by
/// @huggingface/tokenizers 0.2.0 (tokenizers.js, which ports the Rust <c>tokenizers</c> BertNormalizer,
/// BertPreTokenizer and WordPiece) configured as all-MiniLM-L6-v2's tokenizer.json (lower-case, accents stripped,
/// CJK split, max_input_chars_per_word 100, special tokens not normalised) over the package's vocab.txt.
/// They cover the places where Microsoft.ML.Tokenizers' stock BertTokenizer differs: symbols ($ + = | ^ ` ~ ° ©,
/// emoji), tab/newline/return between words, accents under invariant globalization, format characters, special
/// tokens written in the text.
/// </summary>
[Collection(MiniLmCollection.Name)]
public sealed class TokenizerGoldenTests(MiniLmFixture fixture)
{
    public static TheoryData<string, long[]> Cases => new()
    {
        { "to $900/MWh", [101,2000,1002,7706,1013,12464,2232,102] },
        { "one\u000Aline note\u0009book", [101,2028,2240,3602,2338,102] },
        { "\u00B0C \u00A9 \U0001F600 x+y=z", [101,6362,1075,100,1060,1009,1061,1027,1062,102] },
        { "[SEP] a[MASK]b [sep]", [101,102,1037,103,1038,1031,19802,1033,102] },
        { "Caf\u00E9 na\u00EFve \u6771\u4EAC \u0130stanbul", [101,7668,15743,1879,1755,9960,102] },
        { "\uD55C\uAD6D\uC5B4 \u0395\u03BB\u03BB\u03B7\u03BD\u03B9\u03BA\u03AC \u03A3", [101,1469,30006,30021,29991,30014,30020,29999,30008,1159,29727,29727,24824,16177,18199,29726,14608,1173,102] },
        { "zero\u200Bwidth soft\u00ADhyphen", [101,5717,9148,11927,2232,3730,10536,8458,2368,102] },
        { new string('a', 101), [101,100,102] },
        { "A man is playing a guitar.", [101,1037,2158,2003,2652,1037,2858,1012,102] },
        { "Electricity prices spiked to $900/MWh during the heatwave, so the miners were curtailed.", [101,6451,7597,25362,2000,1002,7706,1013,12464,2232,2076,1996,3684,16535,1010,2061,1996,11257,2020,20099,17440,1012,102] },
        { "UNSTOPPABLE!!! tokenization of hyphenated-words, numbers like 3.14159 and e-mail@example.com", [101,4895,16033,13944,3468,999,999,999,19204,3989,1997,1044,22571,10222,4383,1011,2616,1010,3616,2066,1017,1012,15471,28154,1998,1041,1011,5653,1030,2742,1012,4012,102] },
        { "What's the weather like in Berlin tomorrow?", [101,2054,1005,1055,1996,4633,2066,1999,4068,4826,1029,102] },
        { "\u00DCn\u00EFc\u00F6d\u00E9 fa\u00E7ade \u2014 \u201Cquotes\u201D \u2018single\u2019 \u2026 ellipsis", [101,27260,8508,1517,1523,16614,1524,1520,2309,1521,1529,3449,15000,6190,102] },
        { "x\u0301y combining", [101,1060,2100,11566,102] },
        { "tabs\u0009and\u000D\u000ACRLF\u000Bvt\u0085nel", [101,21628,2015,1998,13675,10270,2615,2102,11877,102] },
        { "emoji \U0001F44D\U0001F3FD family \U0001F468\u200D\U0001F469\u200D\U0001F467", [101,7861,29147,2072,100,2155,100,102] },
        { "<html><body>a&amp;b</body></html>", [101,1026,16129,1028,1026,2303,1028,1037,1004,23713,1025,1038,1026,1013,2303,1028,1026,1013,16129,1028,102] },
        { "C++ | C# ^ `code` ~tilde", [101,1039,1009,1009,1064,1039,1001,1034,1036,3642,1036,1066,18681,3207,102] },
        { "\U00020000 astral CJK ext B", [101,100,2004,21493,1039,15992,4654,2102,1038,102] },
        { "\uFB01 ligature \u216B roman \u00BD fraction", [101,1984,8018,11244,100,3142,1092,12884,102] },
        { "Stra\u00DFe \u00DF", [101,2358,27807,1096,102] },
        { "\u65E5\u672C\u8A9E\u306E\u30C6\u30AD\u30B9\u30C8", [101,1864,1876,1950,1671,30239,30227,30233,30240,102] },
        { "\u041F\u0440\u0438\u0432\u0435\u0442 \u043C\u0438\u0440", [101,1194,16856,10325,25529,15290,22919,1191,10325,16856,102] },
        { "\u0645\u0631\u062D\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645", [101,1295,17149,29820,29816,25573,1271,25573,23673,29830,25573,23673,22192,102] },
        { "", [101,102] },
        { "   ", [101,102] },
        { "[CLS][SEP][PAD][UNK][MASK]", [101,101,102,0,100,103,102] },
        { "[Sep] [cls", [101,1031,19802,1033,1031,18856,2015,102] },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Token_ids_match_hugging_face(string text, long[] expected)
    {
        TokenizedInput input = fixture.Model.Tokenize(text);
        Assert.Equal(expected, input.InputIds.ToArray());
        Assert.Equal(expected.Length, input.TokenCount);
    }
}
