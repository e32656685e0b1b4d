using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using ComputeGrid.Core;

namespace ComputeGrid.Server;

/// <summary>
/// The JSON conventions of every API of the server, one set for all (OpenAI's <c>/v1</c> included): member names and
/// enum values in snake_case, unknown members refused, numbers strict, 128-bit ids as decimal strings, times as
/// RFC 3339 strings (<see cref="ApiTime"/>), amounts as integers of the asset's minor units.
/// </summary>
public static class ApiJson
{
    // Declared before Options: static fields initialize in order, and Options' Configure reads it.
    /// <summary>snake_case, with digits set apart as words too: <c>user_data_64</c>, <c>price_micro_usd_per_1k_tokens</c>.</summary>
    public static JsonNamingPolicy Naming { get; } = new SnakeCaseWithNumbers();

    /// <summary>The options (also the framework's, for bound bodies and typed results).</summary>
    public static readonly JsonSerializerOptions Options = Configure(new JsonSerializerOptions(JsonSerializerDefaults.Web) { TypeInfoResolver = new System.Text.Json.Serialization.Metadata.DefaultJsonTypeInfoResolver() });

    /// <summary>Applies the conventions to <paramref name="o"/> (the framework's own options object).</summary>
    public static JsonSerializerOptions Configure(JsonSerializerOptions o)
    {
        o.PropertyNamingPolicy = Naming;
        o.DictionaryKeyPolicy = Naming;
        o.UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow;
        o.NumberHandling = JsonNumberHandling.Strict;
        o.MaxDepth = 16;
        o.DefaultIgnoreCondition = JsonIgnoreCondition.Never;
        o.RespectNullableAnnotations = true;
        o.Converters.Add(new UInt128Converter());
        o.Converters.Add(new JsonStringEnumConverter(Naming, allowIntegerValues: false));
        return o;
    }

    private sealed class SnakeCaseWithNumbers : JsonNamingPolicy
    {
        public override string ConvertName(string name)
        {
            string snake = SnakeCaseLower.ConvertName(name);
            var text = new System.Text.StringBuilder(snake.Length + 4);
            for (int i = 0; i < snake.Length; i++)
            {
                if (i > 0 && char.IsAsciiDigit(snake[i]) && char.IsAsciiLetterLower(snake[i - 1])) text.Append('_');
                text.Append(snake[i]);
            }
            return text.ToString();
        }
    }
}

/// <summary>
/// 128-bit ids travel as decimal strings ("12345") because JSON numbers lose precision past 2^53; a 0x-hex string is
/// accepted on input too.
/// </summary>
public sealed class UInt128Converter : JsonConverter<UInt128>
{
    /// <inheritdoc />
    public override UInt128 Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType == JsonTokenType.String && Ids.TryParse(reader.GetString(), out var id)) return id;
        throw new JsonException("An id is a decimal string of a 128-bit unsigned integer (or 0x-hex), like \"12345\".");
    }

    /// <inheritdoc />
    public override void Write(Utf8JsonWriter writer, UInt128 value, JsonSerializerOptions options) =>
        writer.WriteStringValue(value.ToString(CultureInfo.InvariantCulture));
}

