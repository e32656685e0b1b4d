using System.Buffers;
using System.Globalization;
using System.Text.Json;

namespace ComputeGrid.Energy.Miners;

/// <summary>One cgminer API request: <c>{"command":"summary"}</c> or <c>{"command":"x","parameter":"..."}</c>.</summary>
public sealed record CgminerRequest
{
    /// <summary>Creates a request.</summary>
    /// <param name="command">The API command, e.g. <c>summary</c>.</param>
    /// <param name="parameter">The command's parameter, or null when it takes none.</param>
    public CgminerRequest(string command, string? parameter = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(command);
        Command = command;
        Parameter = parameter;
    }

    /// <summary>The API command, e.g. <c>summary</c>.</summary>
    public string Command { get; }

    /// <summary>The command's parameter, or null when it takes none.</summary>
    public string? Parameter { get; }

    /// <summary>The request as UTF-8 JSON, as written to the socket.</summary>
    public byte[] ToUtf8Json()
    {
        var buffer = new ArrayBufferWriter<byte>(64);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            writer.WriteString("command", Command);
            if (Parameter is not null) writer.WriteString("parameter", Parameter);
            writer.WriteEndObject();
        }
        return buffer.WrittenSpan.ToArray();
    }
}

/// <summary>
/// The STATUS entry every cgminer reply starts with: <c>STATUS</c> is <c>S</c> (success), <c>I</c> (informational),
/// <c>W</c> (warning), <c>E</c> (error) or <c>F</c> (fatal); <c>When</c> is the miner's Unix time in seconds.
/// </summary>
/// <param name="Status">The one-letter status.</param>
/// <param name="When">The miner's clock when it answered, Unix seconds.</param>
/// <param name="Code">The reply's message code.</param>
/// <param name="Msg">The reply's message.</param>
/// <param name="Description">The miner software's description (usually its name and version).</param>
public sealed record CgminerStatus(string Status, long When, int Code, string Msg, string Description)
{
    /// <summary>True for <c>E</c> and <c>F</c>.</summary>
    public bool IsError => Status is "E" or "F";
}

/// <summary>
/// A parsed, validated cgminer reply: a JSON object with a <c>STATUS</c> array and optional sections such as
/// <c>SUMMARY</c>, <c>DEVS</c> or <c>POOLS</c>, each an array of objects.
/// </summary>
public sealed class CgminerReply
{
    private static readonly JsonDocumentOptions StrictJson = new()
    {
        AllowTrailingCommas = false,
        CommentHandling = JsonCommentHandling.Disallow,
        MaxDepth = 32,
    };

    private CgminerReply(string command, JsonElement root, CgminerStatus status, int? id)
    {
        Command = command;
        Root = root;
        Status = status;
        Id = id;
    }

    /// <summary>The command this reply answers.</summary>
    public string Command { get; }

    /// <summary>The whole reply object (detached from any document; safe to keep).</summary>
    public JsonElement Root { get; }

    /// <summary>The reply's first STATUS entry.</summary>
    public CgminerStatus Status { get; }

    /// <summary>The reply's <c>id</c>, when present.</summary>
    public int? Id { get; }

    /// <summary>Finds a section (an array) by name, e.g. <c>SUMMARY</c>.</summary>
    /// <returns>False when the reply has no such section.</returns>
    /// <exception cref="MinerProtocolException">The member exists but is not an array.</exception>
    public bool TryGetSection(string name, out JsonElement section)
    {
        if (!Root.TryGetProperty(name, out section)) return false;
        if (section.ValueKind != JsonValueKind.Array)
            throw Invalid(Command, $"section {name} is not an array");
        return true;
    }

    /// <summary>The first object of a section, e.g. the one entry of <c>SUMMARY</c>.</summary>
    /// <exception cref="MinerProtocolException">The section is missing, empty, or its first entry is not an object.</exception>
    public JsonElement GetFirst(string section)
    {
        if (!TryGetSection(section, out var array) || array.GetArrayLength() == 0)
            throw Invalid(Command, $"the reply has no {section} entry");
        var first = array[0];
        if (first.ValueKind != JsonValueKind.Object) throw Invalid(Command, $"the {section} entry is not an object");
        return first;
    }

    /// <summary>
    /// Parses and validates a reply. One trailing NUL (cgminer terminates replies with one) and surrounding whitespace
    /// are accepted; anything else that is not one strict JSON object with a valid STATUS is rejected.
    /// </summary>
    /// <param name="utf8">The bytes received.</param>
    /// <param name="command">The command the reply answers (for messages).</param>
    /// <exception cref="MinerProtocolException">
    /// Kind <see cref="MinerErrorKind.InvalidReply"/> for garbage or a wrong shape, <see cref="MinerErrorKind.ErrorStatus"/>
    /// when STATUS is E or F.
    /// </exception>
    public static CgminerReply Parse(ReadOnlySpan<byte> utf8, string command)
    {
        ArgumentNullException.ThrowIfNull(command);
        var nul = utf8.IndexOf((byte)0);
        if (nul >= 0) utf8 = utf8[..nul];
        utf8 = utf8.Trim(" \t\r\n"u8);
        if (utf8.IsEmpty) throw Invalid(command, "the reply is empty");

        JsonElement root;
        try
        {
            using var document = JsonDocument.Parse(utf8.ToArray(), StrictJson);
            root = document.RootElement.Clone();
        }
        catch (JsonException e)
        {
            throw new MinerProtocolException(MinerErrorKind.InvalidReply,
                $"Miner reply to '{command}' is not valid JSON: {e.Message}", command, innerException: e);
        }

        if (root.ValueKind != JsonValueKind.Object) throw Invalid(command, "the reply is not a JSON object");
        if (!root.TryGetProperty("STATUS", out var statusArray) || statusArray.ValueKind != JsonValueKind.Array
            || statusArray.GetArrayLength() == 0 || statusArray[0].ValueKind != JsonValueKind.Object)
            throw Invalid(command, "the reply has no STATUS entry");

        var s = statusArray[0];
        var letter = CgminerFields.OptionalString(s, "STATUS", command);
        if (letter is not ("S" or "I" or "W" or "E" or "F"))
            throw Invalid(command, $"unknown STATUS '{letter ?? "(missing)"}'");
        var status = new CgminerStatus(
            letter,
            CgminerFields.OptionalLong(s, "When", command) ?? 0,
            (int)(CgminerFields.OptionalLong(s, "Code", command) ?? 0),
            CgminerFields.OptionalString(s, "Msg", command) ?? "",
            CgminerFields.OptionalString(s, "Description", command) ?? "");

        if (status.IsError)
            throw new MinerProtocolException(MinerErrorKind.ErrorStatus,
                $"Miner answered '{command}' with STATUS {status.Status}, code {status.Code}: {status.Msg}",
                command, status.Code, status.Msg);

        int? id = root.TryGetProperty("id", out var idElement) && idElement.ValueKind == JsonValueKind.Number
            && idElement.TryGetInt32(out var parsedId) ? parsedId : null;
        return new CgminerReply(command, root, status, id);
    }

    internal static MinerProtocolException Invalid(string command, string what) =>
        new(MinerErrorKind.InvalidReply, $"Invalid miner reply to '{command}': {what}.", command);
}

/// <summary>Typed reads of cgminer reply fields; numbers may be JSON numbers or numeric strings (some firmwares quote them).</summary>
internal static class CgminerFields
{
    public static double? OptionalDouble(JsonElement obj, string name, string command)
    {
        if (!obj.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null) return null;
        switch (value.ValueKind)
        {
            case JsonValueKind.Number:
                return value.GetDouble();
            case JsonValueKind.String when double.TryParse(value.GetString(), NumberStyles.Float, CultureInfo.InvariantCulture, out var parsed)
                                           && double.IsFinite(parsed):
                return parsed;
            default:
                throw CgminerReply.Invalid(command, $"field '{name}' is not a number");
        }
    }

    public static double RequiredDouble(JsonElement obj, string name, string command) =>
        OptionalDouble(obj, name, command) ?? throw CgminerReply.Invalid(command, $"field '{name}' is missing");

    public static long? OptionalLong(JsonElement obj, string name, string command)
    {
        if (obj.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.Number && value.TryGetInt64(out var exact))
            return exact;
        var d = OptionalDouble(obj, name, command);
        if (d is null) return null;
        if (d.Value < long.MinValue || d.Value > long.MaxValue) throw CgminerReply.Invalid(command, $"field '{name}' is out of range");
        return (long)Math.Round(d.Value);
    }

    public static long RequiredLong(JsonElement obj, string name, string command) =>
        OptionalLong(obj, name, command) ?? throw CgminerReply.Invalid(command, $"field '{name}' is missing");

    public static string? OptionalString(JsonElement obj, string name, string command)
    {
        if (!obj.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null) return null;
        return value.ValueKind switch
        {
            JsonValueKind.String => value.GetString(),
            JsonValueKind.Number => value.GetRawText(),
            JsonValueKind.True => "true",
            JsonValueKind.False => "false",
            _ => throw CgminerReply.Invalid(command, $"field '{name}' is not a string"),
        };
    }

    public static bool? OptionalBool(JsonElement obj, string name, string command)
    {
        if (!obj.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null) return null;
        return value.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            JsonValueKind.String => value.GetString() switch
            {
                "Y" or "y" or "true" or "True" => true,
                "N" or "n" or "false" or "False" => false,
                _ => throw CgminerReply.Invalid(command, $"field '{name}' is not a boolean"),
            },
            _ => throw CgminerReply.Invalid(command, $"field '{name}' is not a boolean"),
        };
    }

    /// <summary>
    /// A hashrate in TH/s from the first of <c>THS x</c>, <c>GHS x</c>, <c>MHS x</c> present (cgminer reports MH/s,
    /// bmminer/Antminer GH/s), where x is the window, e.g. <c>5s</c> or <c>av</c>.
    /// </summary>
    public static double? HashrateThs(JsonElement obj, string window, string command)
    {
        if (OptionalDouble(obj, "THS " + window, command) is { } ths) return ths;
        if (OptionalDouble(obj, "GHS " + window, command) is { } ghs) return ghs / 1e3;
        if (OptionalDouble(obj, "MHS " + window, command) is { } mhs) return mhs / 1e6;
        return null;
    }
}
