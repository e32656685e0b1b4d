using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;

namespace ComputeGrid.Cli.Ops;

/// <summary>An error to show the user as one line (exit code 2).</summary>
internal sealed class OpsException(string message) : Exception(message);

/// <summary>
/// The operator commands' read-only HTTP client. A 2xx answer is returned as parsed JSON beside its raw text (the
/// text is what <c>--json</c> prints); anything else (a refused connection, a timeout, a 401, a problem+json 4xx/5xx)
/// becomes an <see cref="OpsException"/> whose one line says what failed and where the URL or key came from.
/// <see cref="GetOptionalAsync"/> reads a 404 as "not there" (no chain, no checkpoint yet) instead.
/// </summary>
internal sealed class OpsClient : IDisposable
{
    /// <summary>How long one request may take before the command gives up.</summary>
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(15);

    private readonly HttpClient _http;
    private readonly ServerTarget _target;

    public OpsClient(ServerTarget target)
    {
        if (!Uri.TryCreate(target.Url, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
            throw new OpsException($"the server URL must be http:// or https://; got '{target.Url}' ({target.UrlSource})");
        _target = target;
        _http = new HttpClient { BaseAddress = new Uri(uri.GetLeftPart(UriPartial.Authority)), Timeout = Timeout };
        _http.DefaultRequestHeaders.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
        if (target.Key is { Length: > 0 } key) _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
    }

    /// <summary>The server and key this client uses.</summary>
    public ServerTarget Target => _target;

    /// <summary>GETs <paramref name="path"/>; anything but a 2xx is an error.</summary>
    public async Task<Answer> GetAsync(string path, CancellationToken ct) =>
        await GetOptionalAsync(path, ct) ?? throw new OpsException($"{path}: not found on the server at {_target.Url} (HTTP 404)");

    /// <summary>
    /// <c>GET /healthz</c>: the answer when the server says it is healthy (200), else null with the problem's line (a 503
    /// when its ledger stopped); an unreachable server is an error.
    /// </summary>
    public async Task<(Answer? Healthy, string Problem)> HealthAsync(CancellationToken ct)
    {
        var (status, text) = await SendAsync("/healthz", ct);
        if (status == HttpStatusCode.OK) return (Parse("/healthz", text), "");
        return (null, ProblemLine(text, (int)status));
    }

    /// <summary>GETs <paramref name="path"/>; a 404 answers null (the thing is not there), anything else but a 2xx is an error.</summary>
    public async Task<Answer?> GetOptionalAsync(string path, CancellationToken ct)
    {
        var (status, text) = await SendAsync(path, ct);
        if (status == HttpStatusCode.NotFound) return null;
        if (status == HttpStatusCode.Unauthorized)
            throw new OpsException(_target.Key is null
                ? $"{path} needs an API key: give it with --key or ${ServerTarget.KeyVariable}, or use --data-dir of the server's data folder (its operator key)"
                : $"the server at {_target.Url} refused the key from {_target.KeySource}: {ProblemLine(text, (int)status)}");
        if (status == HttpStatusCode.Forbidden)
            throw new OpsException($"{path}: the key from {_target.KeySource} may not read this (an operator's key can): {ProblemLine(text, (int)status)}");
        if ((int)status is < 200 or > 299) throw new OpsException($"{path}: {ProblemLine(text, (int)status)}");
        return Parse(path, text);
    }

    private async Task<(HttpStatusCode Status, string Text)> SendAsync(string path, CancellationToken ct)
    {
        try
        {
            using var response = await _http.GetAsync(path, ct);
            return (response.StatusCode, await response.Content.ReadAsStringAsync(ct));
        }
        catch (HttpRequestException e)
        {
            throw new OpsException($"cannot reach the server at {_target.Url} ({_target.UrlSource}): {e.Message}");
        }
        catch (TaskCanceledException) when (!ct.IsCancellationRequested)
        {
            throw new OpsException($"the server at {_target.Url} ({_target.UrlSource}) did not answer within {Timeout.TotalSeconds:0} s");
        }
    }

    private static Answer Parse(string path, string text)
    {
        try
        {
            using var doc = JsonDocument.Parse(text);
            return new Answer(text, doc.RootElement.Clone());
        }
        catch (JsonException e)
        {
            throw new OpsException($"{path}: the server's answer is not JSON: {e.Message}");
        }
    }

    /// <summary>The problem's detail (else its title) and the status: what the user needs, on one line.</summary>
    private static string ProblemLine(string body, int status)
    {
        try
        {
            using var doc = JsonDocument.Parse(body);
            if (doc.RootElement.ValueKind == JsonValueKind.Object)
            {
                foreach (string member in new[] { "detail", "title" })
                    if (doc.RootElement.TryGetProperty(member, out var v) && v.ValueKind == JsonValueKind.String && v.GetString() is { Length: > 0 } s)
                        return $"{s} (HTTP {status})";
            }
        }
        catch (JsonException) { }
        return $"HTTP {status}";
    }

    public void Dispose() => _http.Dispose();

    /// <summary>A 2xx answer: its text as the server sent it, and its JSON.</summary>
    public sealed record Answer(string Text, JsonElement Json);
}
