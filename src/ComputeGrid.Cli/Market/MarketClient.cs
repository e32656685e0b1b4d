using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace ComputeGrid.Cli.Market;

/// <summary>An error to show the user as one line (exit code 2): the server's problem detail, or why it was not reached.</summary>
internal sealed class MarketException(string message) : Exception(message);

/// <summary>
/// A thin HTTP client for <c>/api/exchange</c>: returns the response body of a 2xx answer as text, and turns anything
/// else (a problem+json 4xx/5xx, a refused connection, a timeout) into a <see cref="MarketException"/> with one line.
/// </summary>
internal sealed class MarketClient : IDisposable
{
    /// <summary>How long one request may take before the command gives up.</summary>
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    private static readonly JsonSerializerOptions BodyJson = new(JsonSerializerDefaults.Web) { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    private readonly HttpClient _http;
    private readonly string _server;

    public MarketClient(string server, string? key = null)
    {
        if (!Uri.TryCreate(server, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
            throw new MarketException($"--server must be an http:// or https:// URL; got '{server}'");
        _server = uri.GetLeftPart(UriPartial.Authority);
        _http = new HttpClient { BaseAddress = new Uri(_server), Timeout = Timeout };
        _http.DefaultRequestHeaders.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
        if (key is { Length: > 0 }) _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key.Trim());
    }

    public Task<string> GetAsync(string path, CancellationToken ct) => SendAsync(new HttpRequestMessage(HttpMethod.Get, path), ct);

    public Task<string> DeleteAsync(string path, CancellationToken ct) => SendAsync(new HttpRequestMessage(HttpMethod.Delete, path), ct);

    public Task<string> SendJsonAsync(HttpMethod method, string path, object body, CancellationToken ct) =>
        SendAsync(new HttpRequestMessage(method, path)
        {
            Content = new StringContent(JsonSerializer.Serialize(body, BodyJson), Encoding.UTF8, "application/json"),
        }, ct);

    private async Task<string> SendAsync(HttpRequestMessage request, CancellationToken ct)
    {
        using (request)
        {
            try
            {
                using var response = await _http.SendAsync(request, ct);
                string text = await response.Content.ReadAsStringAsync(ct);
                if (response.IsSuccessStatusCode) return text;
                string line = ProblemLine(text, (int)response.StatusCode, response.ReasonPhrase);
                if (response.StatusCode == System.Net.HttpStatusCode.Unauthorized) line += $" (give your API key with --key or ${MarketCommand.KeyVariable})";
                throw new MarketException(line);
            }
            catch (HttpRequestException e)
            {
                throw new MarketException($"cannot reach the server at {_server}: {e.Message}");
            }
            catch (TaskCanceledException) when (!ct.IsCancellationRequested)
            {
                throw new MarketException($"the server at {_server} did not answer within {Timeout.TotalSeconds:0} s");
            }
        }
    }

    /// <summary>The problem's detail (else its title), else the status line: what the user needs, on one line.</summary>
    private static string ProblemLine(string body, int status, string? reason)
    {
        try
        {
            using var doc = JsonDocument.Parse(body);
            if (doc.RootElement.ValueKind == JsonValueKind.Object)
            {
                if (doc.RootElement.TryGetProperty("detail", out var d) && d.ValueKind == JsonValueKind.String && d.GetString() is { Length: > 0 } detail) return detail;
                if (doc.RootElement.TryGetProperty("title", out var t) && t.ValueKind == JsonValueKind.String && t.GetString() is { Length: > 0 } title) return $"{title} (HTTP {status})";
            }
        }
        catch (JsonException) { }
        return $"HTTP {status} {reason}".TrimEnd();
    }

    public void Dispose() => _http.Dispose();
}
