using System.Globalization;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using ComputeGrid.Inference.Model;
using ComputeGrid.Inference.Routing;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace ComputeGrid.Server.Inference;

/// <summary>The inference services of a server (one instance).</summary>
public sealed class InferenceHost(InferenceGateway gateway, ApiKeys keys, InferencePayments payments, IdempotencyCache idempotency, LatencyMatrix latency, string operatorToken, TimeProvider time)
{
    public InferenceGateway Gateway => gateway;
    public ApiKeys Keys => keys;
    public InferencePayments Payments => payments;
    public IdempotencyCache Idempotency => idempotency;
    public LatencyMatrix Latency => latency;
    public string OperatorToken => operatorToken;
    public TimeProvider Time => time;
}

/// <summary>
/// The OpenAI-compatible API (<c>POST /v1/embeddings</c>, <c>GET /v1/models</c>) and the operators' endpoints
/// (<c>/api/inference/…</c>: customers and their keys, funding, nodes).
/// </summary>
public static class InferenceEndpoints
{
    /// <summary>The largest request body accepted by /v1/embeddings.</summary>
    public const int RequestBytesMax = 4 << 20;

    public static IEndpointRouteBuilder MapInference(this IEndpointRouteBuilder app)
    {
        app.MapGet("/v1/models", (InferenceHost host) => Results.Json(new
        {
            @object = "list",
            data = host.Gateway.Models.Models.Select(m => new { id = m.Id, @object = "model", created = 0, owned_by = "computegrid" }).ToArray(),
        }));
        app.MapPost("/v1/embeddings", EmbeddingsAsync);

        app.MapPost("/api/inference/customers", async (HttpContext http, InferenceHost host) =>
        {
            if (!IsOperator(http, host)) return Problems.Unauthorized("Operator endpoints need 'Authorization: Bearer <operator token>' (see inference/operator-token.txt in the data folder).");
            using JsonDocument? doc = await ReadJsonAsync(http);
            if (doc is null || doc.RootElement.ValueKind != JsonValueKind.Object) return Problems.BadRequest("The body must be a JSON object: {\"name\": \"…\", \"region\": \"…\"}.");
            string name = doc.RootElement.TryGetProperty("name", out var n) && n.ValueKind == JsonValueKind.String ? n.GetString()! : "customer";
            string region = doc.RootElement.TryGetProperty("region", out var r) && r.ValueKind == JsonValueKind.String ? r.GetString()! : "";
            if (!host.Latency.TryGetRegion(region, out _)) return Problems.BadRequest($"'region' must be one of: {string.Join(", ", host.Latency.Regions)}.");
            (Customer customer, string key) = host.Keys.Create(name, region, host.Time.GetUtcNow());
            await host.Payments.CreateCustomerAccountAsync(customer.Id, http.RequestAborted);
            return Results.Json(new { id = customer.Id, name = customer.Name, region = customer.HomeRegion, api_key = key, account = InferencePayments.CustomerAccount(customer.Id).ToString() }, statusCode: 201);
        });
        app.MapPost("/api/inference/customers/{id}/fund", async (string id, HttpContext http, InferenceHost host) =>
        {
            if (!IsOperator(http, host)) return Problems.Unauthorized("Operator endpoints need 'Authorization: Bearer <operator token>'.");
            if (!ulong.TryParse(id, NumberStyles.None, CultureInfo.InvariantCulture, out ulong number) || host.Keys.Find(number) is null) return Problems.NotFound($"No customer '{id}'.");
            using JsonDocument? doc = await ReadJsonAsync(http);
            if (doc is null || !doc.RootElement.TryGetProperty("amount_micro_usd", out var a) || !a.TryGetInt64(out long amount) || amount <= 0)
                return Problems.BadRequest("The body must be {\"amount_micro_usd\": N} with N a positive integer (micro-USD), optionally \"funding_id\".");
            string fundingKey = doc.RootElement.TryGetProperty("funding_id", out var f) && f.ValueKind == JsonValueKind.String ? f.GetString()! : Guid.NewGuid().ToString("N");
            var result = await host.Payments.FundAsync(number, amount, InferencePayments.HoldId(number, "fund:" + fundingKey), http.RequestAborted);
            if (result is not (ComputeGrid.Ledger.CreateTransferResult.Ok or ComputeGrid.Ledger.CreateTransferResult.Exists)) return Problems.Conflict($"The ledger refused the funding: {result}.");
            var balance = await host.Payments.BalanceAsync(number, http.RequestAborted);
            return Results.Json(new { id = number, funded_micro_usd = amount, available_micro_usd = balance?.Available, replayed = result == ComputeGrid.Ledger.CreateTransferResult.Exists });
        });
        app.MapGet("/api/inference/account", async (HttpContext http, InferenceHost host) =>
        {
            if (Authenticate(http, host) is not { } customer) return Problems.Unauthorized("Send 'Authorization: Bearer <API key>'.");
            var balance = await host.Payments.BalanceAsync(customer.Id, http.RequestAborted);
            return Results.Json(new { id = customer.Id, name = customer.Name, region = customer.HomeRegion, account = InferencePayments.CustomerAccount(customer.Id).ToString(), available_micro_usd = balance?.Available ?? 0, held_micro_usd = balance?.Held ?? 0 });
        });
        app.MapGet("/api/inference/nodes", (InferenceHost host) => Results.Json(host.Gateway.Registry.Snapshot().Select(n => new
        {
            id = n.NodeId, region = n.Region, models = n.Models, price_micro_usd_per_1k_tokens = n.PriceMicroUsdPer1kTokens, capacity = n.Capacity,
            inflight = n.Inflight, queue = n.QueueLength, ewma_model_ms = Math.Round(n.EwmaModelMs, 3), healthy = n.Healthy, failed = n.Failed,
            last_heartbeat = n.LastHeartbeat, revenue_account = host.Gateway.NodeNumber(n.NodeId) is { } num ? InferencePayments.NodeRevenueAccount(num).ToString() : null,
        }).ToArray()));
        return app;
    }

    private static async Task<IResult> EmbeddingsAsync(HttpContext http, InferenceHost host)
    {
        long entered = System.Diagnostics.Stopwatch.GetTimestamp();
        http.Items["cg-entered"] = entered;
        if (Authenticate(http, host) is not { } customer)
            return Problems.Unauthorized(http.Request.Headers.Authorization.Count == 0 ? "Send 'Authorization: Bearer <API key>'." : "The API key is not valid.");
        if (http.Request.ContentType is { } ct && !ct.StartsWith("application/json", StringComparison.OrdinalIgnoreCase))
            return Problems.UnsupportedMediaType("Send the request as application/json.");
        if (http.Request.ContentLength > RequestBytesMax) return Problems.TooLarge($"The request body is over {RequestBytesMax} bytes.");
        using JsonDocument? doc = await ReadJsonAsync(http);
        if (doc is null) return Problems.BadRequest("The body is not valid JSON.");
        (EmbeddingsRequest? parsed, IResult? problem) = ParseRequest(doc.RootElement, host, customer, http);
        if (problem is not null) return problem;
        EmbeddingsRequest request = parsed!;

        string? idempotencyKey = http.Request.Headers["Idempotency-Key"].FirstOrDefault();
        if (idempotencyKey is { Length: 0 or > 255 }) return Problems.BadRequest("Idempotency-Key must be 1 to 255 characters.");
        if (idempotencyKey is null)
        {
            StoredResponse fresh = await RunAsync(host, customer, request, "req:" + Guid.NewGuid().ToString("N"), http.RequestAborted);
            return new StoredResult(fresh, replayed: false);
        }
        // The key names the request: a retry gets the first answer and is charged once.
        (StoredResponse response, bool replayed) = await host.Idempotency.RunOnceAsync(customer.Id, idempotencyKey,
            () => RunAsync(host, customer, request, "idem:" + idempotencyKey, CancellationToken.None));
        return new StoredResult(response, replayed);
    }

    private sealed record EmbeddingsRequest(IEmbeddingModel Model, string[] Inputs, bool Base64, int Region, RoutingPreferences Preferences);

    private static (EmbeddingsRequest? Request, IResult? Problem) ParseRequest(JsonElement root, InferenceHost host, Customer customer, HttpContext http)
    {
        static (EmbeddingsRequest?, IResult?) Bad(string detail) => (null, Problems.BadRequest(detail));
        if (root.ValueKind != JsonValueKind.Object) return Bad("The body must be a JSON object with 'input' and 'model'.");
        if (!root.TryGetProperty("model", out var m) || m.ValueKind != JsonValueKind.String) return Bad("'model' is required (a string; GET /v1/models lists them).");
        if (!host.Gateway.Models.TryGet(m.GetString(), out IEmbeddingModel? model))
            return (null, Problems.NotFound($"No model '{m.GetString()}'; the models are: {string.Join(", ", host.Gateway.Models.Models.Select(x => x.Id))}."));
        if (!root.TryGetProperty("input", out var input)) return Bad("'input' is required: a string or an array of strings.");
        string[] inputs;
        if (input.ValueKind == JsonValueKind.String) inputs = [input.GetString()!];
        else if (input.ValueKind == JsonValueKind.Array)
        {
            if (input.GetArrayLength() == 0) return Bad("'input' is an empty array.");
            if (input.GetArrayLength() > host.Gateway.Options.MaxInputs) return Bad($"'input' has {input.GetArrayLength()} items; the limit is {host.Gateway.Options.MaxInputs}.");
            inputs = new string[input.GetArrayLength()];
            int i = 0;
            foreach (JsonElement e in input.EnumerateArray())
            {
                if (e.ValueKind != JsonValueKind.String) return Bad($"input[{i}] is not a string (token arrays are not accepted).");
                inputs[i++] = e.GetString()!;
            }
        }
        else return Bad("'input' must be a string or an array of strings.");
        for (int i = 0; i < inputs.Length; i++)
            if (string.IsNullOrWhiteSpace(inputs[i])) return Bad(inputs.Length == 1 ? "'input' is empty." : $"input[{i}] is empty.");

        bool base64 = false;
        if (root.TryGetProperty("encoding_format", out var fmt))
        {
            if (fmt.ValueKind != JsonValueKind.String || fmt.GetString() is not ("float" or "base64")) return Bad("'encoding_format' must be \"float\" or \"base64\".");
            base64 = fmt.GetString() == "base64";
        }
        if (root.TryGetProperty("dimensions", out var dims) && (!dims.TryGetInt32(out int d) || d != model.Dimensions))
            return Bad($"'dimensions' must be {model.Dimensions} for {model.Id} (it cannot be shortened).");

        string regionName = http.Request.Headers["X-Region"].FirstOrDefault() ?? customer.HomeRegion;
        if (!host.Latency.TryGetRegion(regionName, out int region)) return Bad($"Region '{regionName}' (X-Region header) is not one of: {string.Join(", ", host.Latency.Regions)}.");

        var prefs = new RoutingPreferences();
        if (root.TryGetProperty("provider", out var p))
        {
            if (p.ValueKind != JsonValueKind.Object) return Bad("'provider' must be an object of routing preferences.");
            foreach (JsonProperty prop in p.EnumerateObject())
            {
                switch (prop.Name)
                {
                    case "sort":
                        RouteSort? sort = prop.Value.ValueKind == JsonValueKind.String ? prop.Value.GetString() switch { "latency" => RouteSort.Latency, "price" => RouteSort.Price, "balanced" => RouteSort.Balanced, _ => null } : null;
                        if (sort is null) return Bad("'provider.sort' must be \"latency\", \"price\" or \"balanced\".");
                        prefs = prefs with { Sort = sort.Value };
                        break;
                    case "max_price":
                        // USD per million tokens (OpenRouter's unit) → micro-USD per 1,000 tokens.
                        if (!prop.Value.TryGetDecimal(out decimal usdPerMillion) || usdPerMillion < 0 || usdPerMillion > 1_000_000)
                            return Bad("'provider.max_price' must be a number of USD per million tokens, 0 or more.");
                        prefs = prefs with { MaxPriceMicroUsdPer1kTokens = (long)decimal.Floor(usdPerMillion * 1000m) };
                        break;
                    case "max_latency_ms":
                        if (!prop.Value.TryGetInt32(out int ms) || ms < 0) return Bad("'provider.max_latency_ms' must be a non-negative integer.");
                        prefs = prefs with { MaxLatencyMs = ms };
                        break;
                    case "only" or "ignore":
                        if (prop.Value.ValueKind != JsonValueKind.Array || prop.Value.EnumerateArray().Any(x => x.ValueKind != JsonValueKind.String))
                            return Bad($"'provider.{prop.Name}' must be an array of region names.");
                        if (!host.Latency.TryCreateRegionSet(prop.Value.EnumerateArray().Select(x => x.GetString()!), out RegionSet set, out string? unknown))
                            return Bad($"'provider.{prop.Name}' names an unknown region '{unknown}'.");
                        prefs = prop.Name == "only" ? prefs with { Only = set } : prefs with { Ignore = set };
                        break;
                    case "allow_fallbacks":
                        if (prop.Value.ValueKind is not (JsonValueKind.True or JsonValueKind.False)) return Bad("'provider.allow_fallbacks' must be true or false.");
                        prefs = prefs with { AllowFallbacks = prop.Value.GetBoolean() };
                        break;
                    default:
                        return Bad($"'provider.{prop.Name}' is not a routing preference (sort, max_price, max_latency_ms, only, ignore, allow_fallbacks).");
                }
            }
        }
        return (new EmbeddingsRequest(model, inputs, base64, region, prefs), null);
    }

    private static async Task<StoredResponse> RunAsync(InferenceHost host, Customer customer, EmbeddingsRequest request, string requestKey, CancellationToken ct)
    {
        GatewayResult r = await host.Gateway.EmbedAsync(customer, request.Model, request.Inputs, request.Region, request.Preferences, requestKey, ct);
        if (r.Status != 200)
        {
            byte[] problem = JsonSerializer.SerializeToUtf8Bytes(new Dictionary<string, object?>
            {
                ["type"] = $"https://computegrid.dev/problems/{r.ProblemTitle!.ToLowerInvariant().Replace(' ', '-')}",
                ["title"] = r.ProblemTitle, ["status"] = r.Status, ["detail"] = r.Problem,
            });
            return new StoredResponse(r.Status, problem, "application/problem+json", []);
        }
        NodeRunResult run = r.Run!;
        var body = new MemoryStream(run.Vectors.Length * 10 + 256);
        using (var w = new Utf8JsonWriter(body))
        {
            w.WriteStartObject();
            w.WriteString("object", "list");
            w.WriteStartArray("data");
            for (int i = 0; i < request.Inputs.Length; i++)
            {
                ReadOnlySpan<float> v = run.Vectors.AsSpan(i * run.Dimensions, run.Dimensions);
                w.WriteStartObject();
                w.WriteString("object", "embedding");
                w.WriteNumber("index", i);
                if (request.Base64) w.WriteBase64String("embedding", MemoryMarshal.AsBytes(v));
                else
                {
                    w.WriteStartArray("embedding");
                    foreach (float f in v) w.WriteNumberValue(f);
                    w.WriteEndArray();
                }
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteString("model", r.Model);
            w.WriteStartObject("usage");
            w.WriteNumber("prompt_tokens", r.Tokens);
            w.WriteNumber("total_tokens", r.Tokens);
            w.WriteEndObject();
            w.WriteEndObject();
        }
        var headers = new List<KeyValuePair<string, string>>
        {
            new("X-CG-Transfer-Id", r.TransferId.ToString()),
            new("X-CG-Node", r.Node!),
            new("X-CG-Node-Region", r.NodeRegion!),
            new("X-CG-Cost-Micro-Usd", r.CostMicroUsd.ToString(CultureInfo.InvariantCulture)),
            new("X-CG-Tokens", r.Tokens.ToString(CultureInfo.InvariantCulture)),
            new("X-CG-Queue-Ms", run.QueueMs.ToString("0.000", CultureInfo.InvariantCulture)),
            new("X-CG-Model-Ms", run.ModelMs.ToString("0.000", CultureInfo.InvariantCulture)),
            new("X-CG-Simulated-Network-Ms", run.NetworkMs.ToString("0.000", CultureInfo.InvariantCulture)),
            new("X-CG-Attempts", r.Attempts.ToString(CultureInfo.InvariantCulture)),
            new("X-CG-Hold-Ms", r.HoldMs.ToString("0.000", CultureInfo.InvariantCulture)),
        };
        if (r.FailedOver.Count > 0) headers.Add(new("X-CG-Failed-Over", string.Join(" | ", r.FailedOver).ReplaceLineEndings(" ")));
        return new StoredResponse(200, body.ToArray(), "application/json", headers);
    }

    private static Customer? Authenticate(HttpContext http, InferenceHost host)
    {
        string? header = http.Request.Headers.Authorization.FirstOrDefault();
        if (header is null || !header.StartsWith("Bearer ", StringComparison.Ordinal)) return null;
        return host.Keys.Find(header["Bearer ".Length..].Trim());
    }

    private static bool IsOperator(HttpContext http, InferenceHost host)
    {
        string? header = http.Request.Headers.Authorization.FirstOrDefault();
        if (header is null || !header.StartsWith("Bearer ", StringComparison.Ordinal)) return false;
        byte[] given = Encoding.UTF8.GetBytes(header["Bearer ".Length..].Trim());
        byte[] expected = Encoding.UTF8.GetBytes(host.OperatorToken);
        return CryptographicOperations.FixedTimeEquals(given, expected);
    }

    private static async Task<JsonDocument?> ReadJsonAsync(HttpContext http)
    {
        try { return await JsonDocument.ParseAsync(http.Request.Body, new JsonDocumentOptions { MaxDepth = 16 }, http.RequestAborted); }
        catch (JsonException) { return null; }
    }

    private sealed class StoredResult(StoredResponse response, bool replayed) : IResult
    {
        public async Task ExecuteAsync(HttpContext http)
        {
            http.Response.StatusCode = response.Status;
            if (http.Items.TryGetValue("cg-entered", out object? e) && e is long entered)
                http.Response.Headers["X-CG-Server-Ms"] = System.Diagnostics.Stopwatch.GetElapsedTime(entered).TotalMilliseconds.ToString("0.000", CultureInfo.InvariantCulture);
            http.Response.ContentType = response.ContentType;
            foreach (var (k, v) in response.Headers) http.Response.Headers[k] = v;
            if (replayed) http.Response.Headers["Idempotent-Replayed"] = "true";
            http.Response.ContentLength = response.Body.Length;
            await http.Response.Body.WriteAsync(response.Body);
        }
    }
}
