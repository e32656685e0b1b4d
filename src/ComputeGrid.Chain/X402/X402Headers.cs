using System.Buffers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;

namespace ComputeGrid.Chain.X402;

/// <summary>
/// The three x402 v2 HTTP headers, each base64 (standard alphabet) of UTF-8 JSON, as <c>@x402/core/http</c> encodes them:
/// <c>PAYMENT-REQUIRED</c> on a 402, <c>PAYMENT-SIGNATURE</c> on the paid retry, <c>PAYMENT-RESPONSE</c> on the answer.
/// Decoding is client input: it never throws, and says in one line what was wrong.
/// </summary>
public static class X402Headers
{
    /// <summary>Header of a 402 answer: base64 JSON of <see cref="PaymentRequired"/>.</summary>
    public const string PaymentRequiredName = "PAYMENT-REQUIRED";

    /// <summary>Header of the paid request: base64 JSON of <see cref="PaymentPayload"/>.</summary>
    public const string PaymentSignatureName = "PAYMENT-SIGNATURE";

    /// <summary>Header of the paid answer: base64 JSON of <see cref="SettleResponse"/>.</summary>
    public const string PaymentResponseName = "PAYMENT-RESPONSE";

    /// <summary>The longest header value decoded (a payload is ~1 KiB; this bounds the work a stranger can ask for).</summary>
    public const int HeaderCharsMax = 16 * 1024;

    /// <summary>The <c>PAYMENT-REQUIRED</c> value of <paramref name="required"/>.</summary>
    public static string Encode(PaymentRequired required) => Encode(required, X402Json.Default.PaymentRequired);

    /// <summary>The <c>PAYMENT-SIGNATURE</c> value of <paramref name="payload"/>.</summary>
    public static string Encode(PaymentPayload payload) => Encode(payload, X402Json.Default.PaymentPayload);

    /// <summary>The <c>PAYMENT-RESPONSE</c> value of <paramref name="settlement"/>.</summary>
    public static string Encode(SettleResponse settlement) => Encode(settlement, X402Json.Default.SettleResponse);

    /// <summary>Reads a <c>PAYMENT-SIGNATURE</c> value.</summary>
    public static bool TryDecodePaymentPayload(string? header, out PaymentPayload? payload, out string error) =>
        TryDecode(header, PaymentSignatureName, X402Json.Default.PaymentPayload, out payload, out error);

    /// <summary>Reads a <c>PAYMENT-REQUIRED</c> value.</summary>
    public static bool TryDecodePaymentRequired(string? header, out PaymentRequired? required, out string error) =>
        TryDecode(header, PaymentRequiredName, X402Json.Default.PaymentRequired, out required, out error);

    /// <summary>Reads a <c>PAYMENT-RESPONSE</c> value.</summary>
    public static bool TryDecodeSettleResponse(string? header, out SettleResponse? settlement, out string error) =>
        TryDecode(header, PaymentResponseName, X402Json.Default.SettleResponse, out settlement, out error);

    private static string Encode<T>(T value, JsonTypeInfo<T> type) => Convert.ToBase64String(JsonSerializer.SerializeToUtf8Bytes(value, type));

    private static bool TryDecode<T>(string? header, string name, JsonTypeInfo<T> type, out T? value, out string error) where T : class
    {
        value = null;
        if (string.IsNullOrEmpty(header)) { error = $"{name} is empty"; return false; }
        if (header.Length > HeaderCharsMax) { error = $"{name} is longer than {HeaderCharsMax} characters"; return false; }
        // The official decoder's test (^[A-Za-z0-9+/]*={0,2}$) first, so that base64url or stray spaces are named as such.
        int end = header.Length;
        while (end > 0 && header[end - 1] == '=' && header.Length - end < 2) end--;
        foreach (char c in header.AsSpan(0, end))
            if (!char.IsAsciiLetterOrDigit(c) && c != '+' && c != '/') { error = $"{name} is not base64 (character '{Printable(c)}')"; return false; }
        // atob accepts a value without its '=' padding; so do we.
        string padded = (header.Length % 4) switch { 0 => header, 2 => header + "==", 3 => header + "=", _ => header };
        byte[] buffer = ArrayPool<byte>.Shared.Rent(padded.Length / 4 * 3);
        try
        {
            if (!Convert.TryFromBase64String(padded, buffer, out int length)) { error = $"{name} is not base64 (bad length or padding)"; return false; }
            try
            {
                value = JsonSerializer.Deserialize(buffer.AsSpan(0, length), type);
            }
            catch (JsonException e)
            {
                error = $"{name} is not the JSON of a {typeof(T).Name}: {OneLine(e.Message)}";
                return false;
            }
            if (value is null) { error = $"{name} is JSON null"; return false; }
            error = "";
            return true;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static string Printable(char c) => char.IsControl(c) || char.IsWhiteSpace(c) ? $"U+{(int)c:X4}" : c.ToString();

    private static string OneLine(string message)
    {
        var sb = new StringBuilder(message.Length);
        foreach (char c in message) sb.Append(char.IsControl(c) ? ' ' : c);
        return sb.ToString();
    }
}
