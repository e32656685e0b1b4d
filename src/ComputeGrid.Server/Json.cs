using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using ComputeGrid.Core;

namespace ComputeGrid.Server;

/// <summary>JSON settings of the HTTP API: camelCase, strict (unknown members are errors), ids as strings.</summary>
public static class ApiJson
{
    public static readonly JsonSerializerOptions Options = Create();

    private static JsonSerializerOptions Create()
    {
        var o = new JsonSerializerOptions(JsonSerializerDefaults.Web)
        {
            UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
            NumberHandling = JsonNumberHandling.Strict,
            MaxDepth = 16,
            DefaultIgnoreCondition = JsonIgnoreCondition.Never,
        };
        o.Converters.Add(new UInt128Converter());
        o.Converters.Add(new JsonStringEnumConverter());
        return o;
    }
}

/// <summary>
/// 128-bit ids travel as decimal strings ("12345") because JSON numbers lose precision past 2^53; a number
/// within that range and a 0x-hex string are accepted on input.
/// </summary>
public sealed class UInt128Converter : JsonConverter<UInt128>
{
    public override UInt128 Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType == JsonTokenType.String)
        {
            if (Ids.TryParse(reader.GetString(), out var id)) return id;
            throw new JsonException("An id must be a decimal string of a 128-bit unsigned integer (or 0x-hex).");
        }
        if (reader.TokenType == JsonTokenType.Number && reader.TryGetUInt64(out ulong n) && n <= (1UL << 53)) return n;
        throw new JsonException("An id must be a string (ids are 128-bit; numbers above 2^53 lose precision in JSON).");
    }

    public override void Write(Utf8JsonWriter writer, UInt128 value, JsonSerializerOptions options) =>
        writer.WriteStringValue(value.ToString(CultureInfo.InvariantCulture));
}
