using ComputeGrid.Inference.Model;

namespace ComputeGrid.Inference.Nodes;

/// <summary>Settings of a <see cref="NodeAgent"/>: where the server is, who the node is and what it offers.</summary>
public sealed class NodeAgentOptions
{
    /// <summary>
    /// The server's node endpoint, <c>http://</c> (HTTP/2 cleartext with prior knowledge) or <c>https://</c>
    /// (HTTP/2 over TLS), e.g. <c>http://127.0.0.1:5081</c>. A path is kept as a prefix of the API's paths.
    /// </summary>
    public required Uri Server { get; init; }

    /// <summary>
    /// The node's id: 1–64 ASCII letters, digits, <c>-</c> or <c>_</c>. Null or empty: derived from the region and the
    /// node's public key (<c>{region}-{first 8 hex digits of SHA-256(public key)}</c>), so a node with a
    /// <see cref="KeyFile"/> keeps its id across restarts.
    /// </summary>
    public string? NodeId { get; init; }

    /// <summary>The node's region: an id or name of <see cref="Routing.LatencyMatrix"/> (<c>frankfurt</c>, <c>Washington DC</c>).</summary>
    public required string Region { get; init; }

    /// <summary>The node's price in micro-USD per 1,000 tokens (20 = 0.02 USD per million tokens); not negative.</summary>
    public long PriceMicroUsdPer1kTokens { get; init; }

    /// <summary>The most work items the node processes at once (at least 1); more wait in the node's queue.</summary>
    public int Capacity { get; init; } = 1;

    /// <summary>
    /// A file holding the node's Ed25519 private key (the raw 32-byte seed). Created, readable by its owner only
    /// (0600), with a new key when it does not exist. Null: a new key for this run only.
    /// </summary>
    public string? KeyFile { get; init; }

    /// <summary>
    /// Delay each work item by the round-trip time between its request's region and the node's region (from the
    /// latency data) before it is processed, reported as the result's <c>network_ms</c>: the one simulated part of a
    /// demo whose nodes all run on one machine.
    /// </summary>
    public bool SimulateDistance { get; init; }

    /// <summary>ONNX Runtime intra-op threads per model call; null: <see cref="ModelParallelism.Default"/>'s.</summary>
    public int? IntraOpThreads { get; init; }

    /// <summary>
    /// Batches the node runs at once, each on its own thread; null: <see cref="ModelParallelism.Default"/>'s when
    /// <see cref="IntraOpThreads"/> is null too, else 1.
    /// </summary>
    public int? Workers { get; init; }

    /// <summary>How often the node sends its signed telemetry. Default 1 s.</summary>
    public TimeSpan HeartbeatInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>The node's GPUs (a CPU node counts as one): the denominator of revenue per GPU-hour in its epoch reports.</summary>
    public int Gpus { get; init; } = 1;

    /// <summary>How often the node asks whether an epoch ended that it has not reported yet.</summary>
    public TimeSpan EpochReportCheckInterval { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>The first wait before reconnecting a broken work stream (or retrying registration); doubles per failure. Default 250 ms.</summary>
    public TimeSpan ReconnectMinDelay { get; init; } = TimeSpan.FromMilliseconds(250);

    /// <summary>The longest wait between reconnection (or registration) attempts. Default 10 s.</summary>
    public TimeSpan ReconnectMaxDelay { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// How long the work stream may stay silent (no work, no keep-alive line) before the node treats it as dead and
    /// reconnects. Default 30 s (the server sends a keep-alive line every few seconds).
    /// </summary>
    public TimeSpan StreamIdleTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// How long <see cref="NodeAgent.RunAsync"/>, once cancelled, lets work in progress finish and send its results
    /// before abandoning it. Default 5 s.
    /// </summary>
    public TimeSpan DrainTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Whether <paramref name="id"/> is a valid node id (1–64 ASCII letters, digits, <c>-</c> or <c>_</c>).</summary>
    /// <param name="id">The id to check.</param>
    public static bool IsValidNodeId(string? id) =>
        id is { Length: > 0 and <= 64 } && id.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_');

    /// <summary>Checks the settings other than the region (which needs the latency data).</summary>
    /// <exception cref="ArgumentException">A setting is out of range.</exception>
    internal void Validate()
    {
        ArgumentNullException.ThrowIfNull(Server, nameof(Server));
        if (!Server.IsAbsoluteUri || (Server.Scheme != Uri.UriSchemeHttp && Server.Scheme != Uri.UriSchemeHttps))
            throw new ArgumentException($"The server URL '{Server}' must be an absolute http:// or https:// URL.", nameof(Server));
        if (!string.IsNullOrEmpty(NodeId) && !IsValidNodeId(NodeId))
            throw new ArgumentException($"The node id '{NodeId}' must be 1–64 letters, digits, '-' or '_'.", nameof(NodeId));
        ArgumentException.ThrowIfNullOrWhiteSpace(Region, nameof(Region));
        ArgumentOutOfRangeException.ThrowIfNegative(PriceMicroUsdPer1kTokens, nameof(PriceMicroUsdPer1kTokens));
        ArgumentOutOfRangeException.ThrowIfLessThan(Capacity, 1, nameof(Capacity));
        if (IntraOpThreads is { } threads) ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1, nameof(IntraOpThreads));
        if (Workers is { } workers) ArgumentOutOfRangeException.ThrowIfLessThan(workers, 1, nameof(Workers));
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(HeartbeatInterval, TimeSpan.Zero, nameof(HeartbeatInterval));
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(ReconnectMinDelay, TimeSpan.Zero, nameof(ReconnectMinDelay));
        ArgumentOutOfRangeException.ThrowIfLessThan(ReconnectMaxDelay, ReconnectMinDelay, nameof(ReconnectMaxDelay));
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(StreamIdleTimeout, TimeSpan.Zero, nameof(StreamIdleTimeout));
        ArgumentOutOfRangeException.ThrowIfLessThan(DrainTimeout, TimeSpan.Zero, nameof(DrainTimeout));
        if (Gpus is < 1 or > Reports.EpochReportLimits.GpusMax) throw new ArgumentOutOfRangeException(nameof(Gpus), $"gpus must be 1 to {Reports.EpochReportLimits.GpusMax}.");
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(EpochReportCheckInterval, TimeSpan.Zero, nameof(EpochReportCheckInterval));
    }
}

/// <summary>
/// The server refused a node's registration (a 4xx answer: another key holds the id, or the region, model, price or
/// capacity is not accepted). Retrying cannot help; the message says why.
/// </summary>
public sealed class NodeRegistrationException : Exception
{
    /// <summary>Creates the exception with a default message.</summary>
    public NodeRegistrationException()
        : base("The server refused the node's registration.")
    {
    }

    /// <summary>Creates the exception with a message.</summary>
    /// <param name="message">What was refused and why.</param>
    public NodeRegistrationException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and an inner exception.</summary>
    /// <param name="message">What was refused and why.</param>
    /// <param name="innerException">The cause.</param>
    public NodeRegistrationException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>The HTTP status code of the refusal (0 when not from an HTTP answer).</summary>
    public int StatusCode { get; init; }
}
