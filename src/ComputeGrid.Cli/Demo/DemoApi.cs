using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace ComputeGrid.Cli.Demo;

/// <summary>An answer of the server: its status, its JSON (default when it had none) and, for a refusal, a short reason.</summary>
/// <param name="Status">The HTTP status code.</param>
/// <param name="Json">The body as JSON, or default.</param>
/// <param name="Headers">The response's headers (the receipt and x402 headers live there).</param>
public readonly record struct DemoAnswer(int Status, JsonElement Json, HttpResponseHeaders? Headers)
{
    /// <summary>A 2xx.</summary>
    public bool Ok => Status is >= 200 and < 300;

    /// <summary>What a refusal says, short enough for one log line: the status and the problem's error code or title.</summary>
    public string Reason
    {
        get
        {
            string? what = null;
            if (Json.ValueKind == JsonValueKind.Object)
            {
                if (Json.TryGetProperty("error", out JsonElement e))
                    what = e.ValueKind == JsonValueKind.String ? e.GetString() : e.TryGetProperty("code", out JsonElement c) ? c.ToString() : null;
                if (what is null && Json.TryGetProperty("title", out JsonElement t)) what = t.GetString();
            }
            return $"{Status} {what ?? "(no problem body)"}";
        }
    }

    /// <summary>A member of the answer's JSON object, or default.</summary>
    public JsonElement this[string name] => Json.ValueKind == JsonValueKind.Object && Json.TryGetProperty(name, out JsonElement v) ? v : default;
}

/// <summary>
/// The demo's client of the server's public HTTP API: one connection pool, each call with the acting principal's own key
/// (or none, for x402 and public market data). Bodies are snake_case JSON as the API takes them.
/// </summary>
/// <param name="http">The client, its base address the server's.</param>
public sealed class DemoApi(HttpClient http) : IDisposable
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    /// <summary>The server's address.</summary>
    public Uri BaseAddress => http.BaseAddress!;

    /// <summary>Sends a call and reads its answer; a transport failure becomes status 0 with the exception's message as its reason.</summary>
    public async Task<DemoAnswer> SendAsync(HttpMethod method, string path, string? key, object? body, CancellationToken ct,
        IReadOnlyList<KeyValuePair<string, string>>? headers = null)
    {
        using var request = new HttpRequestMessage(method, path);
        if (key is not null) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        if (body is not null) request.Content = new StringContent(body as string ?? JsonSerializer.Serialize(body, Json), Encoding.UTF8, "application/json");
        foreach (var (name, value) in headers ?? []) request.Headers.TryAddWithoutValidation(name, value);
        try
        {
            using HttpResponseMessage response = await http.SendAsync(request, ct).ConfigureAwait(false);
            string text = await response.Content.ReadAsStringAsync(ct).ConfigureAwait(false);
            JsonElement json = default;
            if (text.Length > 0 && text[0] is '{' or '[')
            {
                try { json = JsonDocument.Parse(text).RootElement.Clone(); }
                catch (JsonException) { }
            }
            return new DemoAnswer((int)response.StatusCode, json, response.Headers);
        }
        catch (HttpRequestException e)
        {
            return new DemoAnswer(0, JsonSerializer.SerializeToElement(new { title = "unreachable: " + e.Message }), null);
        }
        catch (TaskCanceledException) when (!ct.IsCancellationRequested)
        {
            return new DemoAnswer(0, JsonSerializer.SerializeToElement(new { title = "timed out" }), null);
        }
    }

    /// <summary>GET with a key (or none).</summary>
    public Task<DemoAnswer> GetAsync(string path, string? key, CancellationToken ct) => SendAsync(HttpMethod.Get, path, key, null, ct);

    /// <summary>POST a JSON body with a key (or none).</summary>
    public Task<DemoAnswer> PostAsync(string path, string? key, object body, CancellationToken ct) => SendAsync(HttpMethod.Post, path, key, body, ct);

    /// <summary>Disposes the client.</summary>
    public void Dispose() => http.Dispose();
}
