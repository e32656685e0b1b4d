using System.Globalization;
using System.Runtime.InteropServices;
using System.Security.Claims;
using System.Text.Json;
using System.Text.Json.Serialization;
using ComputeGrid.Core;
using ComputeGrid.Inference.Model;
using ComputeGrid.Inference.Nodes;
using ComputeGrid.Inference.Routing;
using ComputeGrid.Server.Trust;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Http.Metadata;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace ComputeGrid.Server.Inference;

/// <summary>The inference services of a server (one instance).</summary>
public sealed class InferenceHost(InferenceGateway gateway, InferencePayments payments, IdempotencyCache idempotency, LatencyMatrix latency, TimeProvider time)
{
    public InferenceGateway Gateway => gateway;
    public InferencePayments Payments => payments;
    public IdempotencyCache Idempotency => idempotency;
    public LatencyMatrix Latency => latency;
    public TimeProvider Time => time;
}

/// <summary><c>input</c> of an embeddings request: one string or an array of strings (token arrays are not accepted).</summary>
[JsonConverter(typeof(EmbeddingInputConverter))]
public sealed record EmbeddingInput(string[] Texts);

/// <summary>Reads <see cref="EmbeddingInput"/> from a string or an array of strings.</summary>
public sealed class EmbeddingInputConverter : JsonConverter<EmbeddingInput>
{
    /// <inheritdoc />
    public override EmbeddingInput Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType == JsonTokenType.String) return new EmbeddingInput([reader.GetString()!]);
        if (reader.TokenType != JsonTokenType.StartArray) throw new JsonException("'input' must be a string or an array of strings.");
        var texts = new List<string>();
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            if (reader.TokenType != JsonTokenType.String) throw new JsonException($"input[{texts.Count}] is not a string (token arrays are not accepted).");
            texts.Add(reader.GetString()!);
        }
        return new EmbeddingInput([.. texts]);
    }

    /// <inheritdoc />
    public override void Write(Utf8JsonWriter writer, EmbeddingInput value, JsonSerializerOptions options)
    {
        writer.WriteStartArray();
        foreach (string t in value.Texts) writer.WriteStringValue(t);
        writer.WriteEndArray();
    }
}

/// <summary>Routing preferences of a request (OpenRouter's <c>provider</c> object).</summary>
public sealed record RoutingInput
{
    /// <summary><c>latency</c>, <c>price</c>, <c>balanced</c> or <c>power</c> (cheapest price plus the node's site's marginal power cost, within <c>max_latency_ms</c>).</summary>
    public string? Sort { get; init; }
    /// <summary>The most to pay, USD per million tokens.</summary>
    public decimal? MaxPrice { get; init; }
    /// <summary>The longest round trip to accept, milliseconds.</summary>
    public int? MaxLatencyMs { get; init; }
    /// <summary>Only these regions.</summary>
    public string[]? Only { get; init; }
    /// <summary>Not these regions.</summary>
    public string[]? Ignore { get; init; }
    /// <summary>Whether to fail over to nodes outside the preferences.</summary>
    public bool? AllowFallbacks { get; init; }
}

/// <summary>An OpenAI embeddings request (<c>POST /v1/embeddings</c>), with ComputeGrid's routing preferences.</summary>
public sealed record EmbeddingsInput
{
    /// <summary>The model (<c>GET /v1/models</c> lists them).</summary>
    public required string Model { get; init; }
    /// <summary>The text, or texts, to embed.</summary>
    public required EmbeddingInput Input { get; init; }
    /// <summary><c>float</c> (default) or <c>base64</c>.</summary>
    public string? EncodingFormat { get; init; }
    /// <summary>The vectors' length; only the model's own is accepted.</summary>
    public int? Dimensions { get; init; }
    /// <summary>OpenAI's end-user id (accepted, not used).</summary>
    public string? User { get; init; }
    /// <summary>Routing preferences.</summary>
    public RoutingInput? Provider { get; init; }

    private static readonly System.Text.Json.Serialization.Metadata.JsonTypeInfo<EmbeddingsInput> Type =
        (System.Text.Json.Serialization.Metadata.JsonTypeInfo<EmbeddingsInput>)ApiJson.Options.GetTypeInfo(typeof(EmbeddingsInput));

    /// <summary>The framework's custom binding: the whole (small) body, then one parse (see <see cref="JsonBody"/>).</summary>
    public static async ValueTask<EmbeddingsInput?> BindAsync(HttpContext http) => await JsonBody.ReadAsync(http, Type);
}

/// <summary>One embedding of an OpenAI answer.</summary>
public sealed record EmbeddingData(string Object, int Index, float[] Embedding);

/// <summary>Token usage of an OpenAI answer.</summary>
public sealed record EmbeddingUsage(int PromptTokens, int TotalTokens);

/// <summary>An OpenAI embeddings answer (with <c>encoding_format: base64</c> each embedding is a base64 string of little-endian float32).</summary>
public sealed record EmbeddingsResponse(string Object, IReadOnlyList<EmbeddingData> Data, string Model, EmbeddingUsage Usage);

/// <summary>A model of <c>GET /v1/models</c>.</summary>
public sealed record ModelView(string Id, string Object, long Created, string OwnedBy);

/// <summary>OpenAI's model list.</summary>
public sealed record ModelList(string Object, IReadOnlyList<ModelView> Data);

/// <summary>A customer's balance: <c>available</c> and <c>held</c> (in flight) in minor units of <c>asset</c>.</summary>
public sealed record InferenceAccountView(ulong Id, string Name, string? Region, UInt128 Account, string Asset, long Available, long Held);

/// <summary>A node in the routing table (public).</summary>
public sealed record InferenceNodeView(string Id, string Region, IReadOnlyList<string> Models,
    long PriceMicroUsdPer1kTokens, int Capacity, int Inflight, int Queue,
    double EwmaModelMs, bool Healthy, bool Failed, ApiTime LastHeartbeat, UInt128? RevenueAccount);

/// <summary>The routing table.</summary>
public sealed record InferenceNodeList(IReadOnlyList<InferenceNodeView> Nodes);

/// <summary>A node's latest verified telemetry and its signed form (anyone holding the public key can check it).</summary>
public sealed record TelemetryView(string NodeId, string PublicKey, NodeTelemetry Telemetry, SignedTelemetry Signed);

/// <summary>
/// The OpenAI-compatible API (<c>POST /v1/embeddings</c>, <c>GET /v1/models</c>), a customer's balance, and the public
/// routing table and node telemetry. The paid path authenticates (the customer's key), holds, runs, captures; errors
/// under <c>/v1</c> have OpenAI's shape.
/// </summary>
public static class InferenceEndpoints
{
    /// <summary>Marks the moment a paid request entered the server (the first middleware), for <c>X-CG-Server-Ms</c>.</summary>
    internal const string EnteredItem = "cg-entered";

    public static IEndpointRouteBuilder MapInference(this IEndpointRouteBuilder app)
    {
        long batchBytes = app.ServiceProvider.GetRequiredService<ServerLimits>().BatchBodyBytesMax;
        var v1 = app.MapGroup("/v1").WithTags("openai");
        v1.MapGet("/models", (InferenceHost host) => TypedResults.Ok(new ModelList("list",
                host.Gateway.Models.Models.Select(m => new ModelView(m.Id, "model", 0, "computegrid")).ToArray())))
            .AllowAnonymous().WithSummary("The models served (OpenAI's list).");
        v1.MapPost("/embeddings", EmbeddingsAsync).RequireAuthorization(Policies.InferenceOrX402).WithMetadata(new BodyLimitAttribute(batchBytes))
            // The body binds by EmbeddingsInput.BindAsync (so the document names it here); it declares no validation
            // attributes (ParseRequest checks it against the models and limits), and the validation filter, run for
            // nothing, cost ~20 µs per paid request.
            .Accepts<EmbeddingsInput>("application/json").DisableValidation()
            .WithSummary("OpenAI-compatible embeddings, paid from the caller's balance (API key) or per request with x402 v2 (no key: 402 with PAYMENT-REQUIRED; retry with PAYMENT-SIGNATURE): hold, run on the best node, capture. Receipt in X-CG-* headers, the settlement in PAYMENT-RESPONSE.");

        var api = app.MapGroup("/api/inference").WithTags("inference");
        api.MapGet("/account", AccountAsync).RequireAuthorization(Policies.Inference).WithSummary("The calling customer's balance.");
        api.MapGet("/nodes", (InferenceHost host) => TypedResults.Ok(new InferenceNodeList(host.Gateway.Registry.Snapshot().Select(n => new InferenceNodeView(
                n.NodeId, n.Region, n.Models, n.PriceMicroUsdPer1kTokens, n.Capacity, n.Inflight, n.QueueLength, Math.Round(n.EwmaModelMs, 3), n.Healthy, n.Failed,
                ApiTime.Of(n.LastHeartbeat), host.Gateway.NodeNumber(n.NodeId) is { } num ? InferencePayments.NodeRevenueAccount(num) : null)).ToArray())))
            .AllowAnonymous().WithSummary("The routing table: every node's region, price, capacity and health.");
        api.MapGet("/nodes/{id}/telemetry", Results<Ok<TelemetryView>, ProblemHttpResult> (string id, RemoteNodes nodes) =>
                nodes.Find(id) is { LastTelemetry: { } t } node
                    ? TypedResults.Ok(new TelemetryView(id, Convert.ToBase64String(node.PublicKey), t.Telemetry, t.Signed))
                    : Problems.NotFound($"No telemetry from node '{id}'."))
            .AllowAnonymous().WithSummary("A node's latest signed telemetry, checkable with its public key.");
        app.MapDeadLetters();
        app.MapLatency();
        app.MapUsage();
        return app;
    }

    private static async Task<Ok<InferenceAccountView>> AccountAsync(ClaimsPrincipal user, InferenceHost host, CancellationToken ct)
    {
        Principal me = user.RequireCaller().Principal;
        var balance = await host.Payments.BalanceAsync(me.Id, ct);
        return TypedResults.Ok(new InferenceAccountView(me.Id, me.Name, me.Region, InferencePayments.CustomerAccount(me.Id), ComputeGrid.Core.Asset.Usd.Symbol,
            balance?.Available ?? 0, balance?.Held ?? 0));
    }

    private static async Task<Results<StoredResult, ProblemHttpResult>> EmbeddingsAsync(EmbeddingsInput body, HttpContext http, ClaimsPrincipal user, InferenceHost host)
    {
        long handlerEntered = System.Diagnostics.Stopwatch.GetTimestamp();
        if (user.Caller() is null)
        {
            // No key: paid per request with x402 (the policy admits a keyless caller only when the server has a chain).
            (EmbeddingsRequest? paid, ProblemHttpResult? invalid) = ParseRequest(body, host, null, http);
            if (invalid is not null) return invalid;
            var x402 = http.RequestServices.GetRequiredService<ComputeGrid.Server.Chain.X402Payments>();
            (StoredResponse answer, bool kill) = await ComputeGrid.Server.Chain.X402Embeddings.HandleAsync(paid!, http, host, x402);
            return new StoredResult(answer, replayed: false, handlerEntered, kill);
        }
        Principal customer = user.RequireCaller().Principal;
        (EmbeddingsRequest? parsed, ProblemHttpResult? problem) = ParseRequest(body, host, customer, http);
        if (problem is not null) return problem;
        EmbeddingsRequest request = parsed!;

        string? idempotencyKey = http.Request.Headers["Idempotency-Key"].FirstOrDefault();
        if (idempotencyKey is { Length: 0 or > 255 }) return Problems.BadRequest("Idempotency-Key must be 1 to 255 characters.");
        UInt128 fingerprint = RequestFingerprint.Of(request.Model.Id, request.Inputs, request.Base64, request.Dimensions, host.Latency.Regions[request.Region],
            request.Preferences, host.Latency.Regions);
        if (idempotencyKey is null)
        {
            // No key: the request's own id names its hold; if the client goes away, the hold is released at once.
            StoredResponse fresh = await RunAsync(host, customer.Id, request, "req:" + Guid.NewGuid().ToString("N"), fingerprint, http.RequestAborted);
            return new StoredResult(fresh, replayed: false, handlerEntered, KillsAfterAnswer(host, fresh));
        }
        // The key names the request: a retry gets the first answer and is charged once. The work is completed even if
        // the client goes away (its retry will want it).
        (StoredResponse? response, IdempotencyOutcome outcome) = await host.Idempotency.RunOnceAsync(customer.Id, idempotencyKey, fingerprint,
            () => RunAsync(host, customer.Id, request, "idem:" + idempotencyKey, fingerprint, CancellationToken.None));
        if (outcome == IdempotencyOutcome.KeyReused) return new StoredResult(KeyReused, replayed: false, handlerEntered);
        return new StoredResult(response!, outcome == IdempotencyOutcome.Replayed, handlerEntered,
            outcome == IdempotencyOutcome.Fresh && KillsAfterAnswer(host, response!));
    }

    // CG_FAULT=kill-after-answer (test-only): a fresh 200 kills the process once its bytes are flushed to the client.
    private static bool KillsAfterAnswer(InferenceHost host, StoredResponse response) =>
        host.Gateway.Options.Fault == InferenceFault.KillAfterAnswer && response.Status == 200;

    private static readonly StoredResponse KeyReused = Error(422, "invalid_request_error", "idempotency_key_reused",
        "This Idempotency-Key was used before for a different request (another model, input, format, region or routing preferences); use a new key.");

    private static StoredResponse Error(int status, string type, string? code, string message) =>
        new(status, JsonSerializer.SerializeToUtf8Bytes(new OpenAiErrorBody(new OpenAiError(message, type, code, null)), ApiJson.Options), "application/json", []);

    internal sealed record EmbeddingsRequest(IEmbeddingModel Model, string[] Inputs, bool Base64, int? Dimensions, int Region, RoutingPreferences Preferences);

    private static (EmbeddingsRequest? Request, ProblemHttpResult? Problem) ParseRequest(EmbeddingsInput body, InferenceHost host, Principal? customer, HttpContext http)
    {
        static (EmbeddingsRequest?, ProblemHttpResult?) Bad(string detail, string? code = null) =>
            (null, Problems.BadRequest(detail, extensions: code is null ? null : new Dictionary<string, object?> { [ApiErrors.CodeExtension] = code }));
        if (!host.Gateway.Models.TryGet(body.Model, out IEmbeddingModel? model))
            return (null, Problems.NotFound($"No model '{body.Model}'; the models are: {string.Join(", ", host.Gateway.Models.Models.Select(x => x.Id))}.",
                new Dictionary<string, object?> { [ApiErrors.CodeExtension] = "model_not_found" }));
        string[] inputs = body.Input.Texts;
        if (inputs.Length == 0) return Bad("'input' is an empty array.");
        if (inputs.Length > host.Gateway.Options.MaxInputs) return Bad($"'input' has {inputs.Length} items; the limit is {host.Gateway.Options.MaxInputs}.");
        for (int i = 0; i < inputs.Length; i++)
            if (string.IsNullOrWhiteSpace(inputs[i])) return Bad(inputs.Length == 1 ? "'input' is empty." : $"input[{i}] is empty.");
        if (body.EncodingFormat is not (null or "float" or "base64")) return Bad("'encoding_format' must be \"float\" or \"base64\".");
        if (body.Dimensions is { } d && d != model.Dimensions) return Bad($"'dimensions' must be {model.Dimensions} for {model.Id} (it cannot be shortened).");

        string regionName = http.Request.Headers["X-Region"].FirstOrDefault() ?? customer?.Region ?? host.Latency.Regions[0];
        if (!host.Latency.TryGetRegion(regionName, out int region)) return Bad($"Region '{regionName}' (X-Region header) is not one of: {string.Join(", ", host.Latency.Regions)}.");

        var prefs = new RoutingPreferences();
        if (body.Provider is { } p)
        {
            if (p.Sort is not null)
            {
                RouteSort? sort = p.Sort switch { "latency" => RouteSort.Latency, "price" => RouteSort.Price, "balanced" => RouteSort.Balanced, "power" => RouteSort.Power, _ => null };
                if (sort is null) return Bad("'provider.sort' must be \"latency\", \"price\", \"balanced\" or \"power\".");
                prefs = prefs with { Sort = sort.Value };
            }
            if (p.MaxPrice is { } usdPerMillion)
            {
                // USD per million tokens (OpenRouter's unit) → micro-USD per 1,000 tokens.
                if (usdPerMillion < 0 || usdPerMillion > 1_000_000) return Bad("'provider.max_price' must be a number of USD per million tokens, 0 or more.");
                prefs = prefs with { MaxPriceMicroUsdPer1kTokens = (long)decimal.Floor(usdPerMillion * 1000m) };
            }
            if (p.MaxLatencyMs is { } ms)
            {
                if (ms < 0) return Bad("'provider.max_latency_ms' must be a non-negative integer.");
                prefs = prefs with { MaxLatencyMs = ms };
            }
            foreach (var (name, regions) in new[] { ("only", p.Only), ("ignore", p.Ignore) })
            {
                if (regions is null) continue;
                if (!host.Latency.TryCreateRegionSet(regions, out RegionSet set, out string? unknown)) return Bad($"'provider.{name}' names an unknown region '{unknown}'.");
                prefs = name == "only" ? prefs with { Only = set } : prefs with { Ignore = set };
            }
            if (p.AllowFallbacks is { } fallbacks) prefs = prefs with { AllowFallbacks = fallbacks };
        }
        return (new EmbeddingsRequest(model, inputs, body.EncodingFormat == "base64", body.Dimensions, region, prefs), null);
    }

    internal static async Task<StoredResponse> RunAsync(InferenceHost host, ulong customer, EmbeddingsRequest request, string requestKey, UInt128 fingerprint, CancellationToken ct,
        UInt128 account = default)
    {
        GatewayResult r = await host.Gateway.EmbedAsync(customer, request.Model, request.Inputs, request.Region, request.Preferences, requestKey, fingerprint, ct, account);
        if (r.Status != 200) return ErrorOf(r);
        // On the slow path (failover) the body is written while the capture's group commit runs, and the answer goes out
        // only once the charge is durable; on the normal path the charge is durable already (the hold carries it).
        byte[] body = Body(r, request);
        r = await host.Gateway.ConfirmAsync(r);
        if (r.Status != 200) return ErrorOf(r);
        NodeRunResult run = r.Run!;
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
            new("X-CG-Capture-Wait-Ms", r.CaptureWaitMs.ToString("0.000", CultureInfo.InvariantCulture)),
            new("X-CG-Charged", r.Charged ? "true" : "false"),
        };
        if (r.FailedOver.Count > 0) headers.Add(new("X-CG-Failed-Over", string.Join(" | ", r.FailedOver).ReplaceLineEndings(" ")));
        return new StoredResponse(200, body, "application/json", headers);
    }

    // Stored as OpenAI's error shape, so a replayed answer (Idempotency-Key) is the same bytes as the first.
    private static StoredResponse ErrorOf(GatewayResult r)
    {
        string type = r.Status switch { 402 => "insufficient_quota", >= 500 => "server_error", _ => "invalid_request_error" };
        string? code = r.ProblemCode ?? r.Status switch { 402 => "insufficient_balance", 503 => "no_node_available", _ => null };
        return Error(r.Status, type, code, r.Problem ?? r.ProblemTitle ?? "Error.");
    }

    // The answer's JSON, written by hand once (the vectors as numbers, or base64 of little-endian float32).
    private static byte[] Body(GatewayResult r, EmbeddingsRequest request)
    {
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
        return body.ToArray();
    }

    /// <summary>An answer written as it was first produced (the JSON is written by hand on the paid path, once).</summary>
    public sealed class StoredResult(StoredResponse response, bool replayed, long handlerEntered, bool killAfterAnswer = false) : IResult, IEndpointMetadataProvider
    {
        /// <summary>Documents the answer's shape for the OpenAPI document.</summary>
        public static void PopulateMetadata(System.Reflection.MethodInfo method, EndpointBuilder builder) =>
            builder.Metadata.Add(new ProducesResponseTypeMetadata(StatusCodes.Status200OK, typeof(EmbeddingsResponse), ["application/json"]));

        /// <inheritdoc />
        public async Task ExecuteAsync(HttpContext http)
        {
            http.Response.StatusCode = response.Status;
            if (http.Items.TryGetValue(EnteredItem, out object? e) && e is long entered)
            {
                // The server's time from its first middleware, and from the endpoint's handler: the difference is the
                // pipeline in front of it (the trust boundary, routing, binding).
                long now = System.Diagnostics.Stopwatch.GetTimestamp();
                http.Response.Headers["X-CG-Server-Ms"] = System.Diagnostics.Stopwatch.GetElapsedTime(entered, now).TotalMilliseconds.ToString("0.000", CultureInfo.InvariantCulture);
                http.Response.Headers["X-CG-Handler-Ms"] = System.Diagnostics.Stopwatch.GetElapsedTime(handlerEntered, now).TotalMilliseconds.ToString("0.000", CultureInfo.InvariantCulture);
            }
            http.Response.ContentType = response.ContentType;
            foreach (var (k, v) in response.Headers) http.Response.Headers[k] = v;
            if (replayed) http.Response.Headers["Idempotent-Replayed"] = "true";
            http.Response.ContentLength = response.Body.Length;
            await http.Response.Body.WriteAsync(response.Body);
            if (killAfterAnswer)
            {
                // The test-only fault: the answer is on the wire, its capture only in the hold's intent.
                await http.Response.CompleteAsync();
                InferenceGateway.KillSelf();
            }
        }
    }
}
