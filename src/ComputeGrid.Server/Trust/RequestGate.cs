using System.Net;
using System.Net.NetworkInformation;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace ComputeGrid.Server.Trust;

/// <summary>Marks an endpoint as part of the node protocol: served only on the node port (and nothing else is served there).</summary>
public sealed class NodePortOnlyAttribute : Attribute;

/// <summary>The largest request body an endpoint reads (checked before any parsing); the default is <see cref="ServerLimits.JsonBodyBytesMax"/>.</summary>
public sealed class BodyLimitAttribute(long bytes) : Attribute
{
    /// <summary>The limit in bytes.</summary>
    public long Bytes { get; } = bytes;
}

/// <summary>Which listening endpoint a connection arrived on: the public API or the nodes' port.</summary>
public static class ConnectionRoles
{
    private const string Key = "cg-role";
    private static readonly object NodeRole = new();

    /// <summary>Connection middleware for the node port's listen options: every connection there is marked.</summary>
    public static ConnectionDelegate MarkNode(ConnectionDelegate next) => connection =>
    {
        connection.Items[Key] = NodeRole;
        return next(connection);
    };

    /// <summary>True when the request arrived on the node port.</summary>
    public static bool IsNodePort(HttpContext http) =>
        http.Features.Get<IConnectionItemsFeature>()?.Items.TryGetValue(Key, out object? role) == true && ReferenceEquals(role, NodeRole);
}

/// <summary>
/// The Host names the public port answers to: the names it is bound to (a loopback binding answers to
/// <c>localhost</c>, <c>127.0.0.1</c> and <c>[::1]</c>; a wildcard binding to this machine's name and addresses), plus
/// what <c>--allowed-hosts</c> adds (<c>*</c>: any). A foreign Host is how a DNS-rebinding page reaches a loopback
/// server, so it is refused.
/// </summary>
public sealed class HostAllowList
{
    private readonly HashSet<string> _hosts = new(StringComparer.OrdinalIgnoreCase);
    private readonly HashSet<string>.AlternateLookup<ReadOnlySpan<char>> _bySpan;
    private bool _any;

    /// <summary>An empty list (nothing allowed until bindings or names are added).</summary>
    public HostAllowList() => _bySpan = _hosts.GetAlternateLookup<ReadOnlySpan<char>>();

    /// <summary>Adds the names of a bound address.</summary>
    public void AddBinding(IPAddress address)
    {
        if (IPAddress.IsLoopback(address))
        {
            _hosts.UnionWith(["localhost", "127.0.0.1", "[::1]", "::1"]);
            return;
        }
        if (address.Equals(IPAddress.Any) || address.Equals(IPAddress.IPv6Any))
        {
            _hosts.UnionWith(["localhost", "127.0.0.1", "[::1]", "::1", Dns.GetHostName()]);
            foreach (NetworkInterface nic in NetworkInterface.GetAllNetworkInterfaces())
                foreach (UnicastIPAddressInformation a in nic.GetIPProperties().UnicastAddresses)
                    _hosts.Add(Format(a.Address));
            return;
        }
        _hosts.Add(Format(address));
    }

    /// <summary>Adds configured names (<c>*</c> allows any Host).</summary>
    public void Add(IEnumerable<string> names)
    {
        foreach (string n in names)
        {
            if (n == "*") _any = true;
            else _hosts.Add(n.Trim());
        }
    }

    /// <summary>The allowed names, for messages.</summary>
    public IEnumerable<string> Names => _any ? ["*"] : _hosts.Order(StringComparer.Ordinal);

    /// <summary>Whether a request's Host (port ignored) is allowed; allocates nothing.</summary>
    public bool Allows(HostString host)
    {
        if (_any) return true;
        if (!host.HasValue) return false;
        ReadOnlySpan<char> value = host.Value;
        // "name:port", "[v6]:port" or without the port.
        int colon = value.LastIndexOf(':');
        if (colon >= 0 && value.IndexOf(']') < colon) value = value[..colon];
        return _bySpan.Contains(value);
    }

    // A Host header carries an IPv6 address in brackets and without a scope id.
    private static string Format(IPAddress a) =>
        a.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? $"[{new IPAddress(a.GetAddressBytes())}]" : a.ToString();
}

/// <summary>
/// The first check of every request, before authentication: the Host is one this server answers to (public port),
/// the endpoint belongs to the port it arrived on (the node protocol only on the node port, nothing else there), a
/// request with a body says <c>application/json</c> (415 otherwise: a cross-site page cannot send one without a CORS
/// preflight, which is refused), and the body's declared size is within the endpoint's limit (413) — all before any
/// byte of it is parsed.
/// </summary>
/// <para>
/// Then it authenticates the request, once (see <see cref="TrustSchemes.Authenticate"/>), and sets its user (the
/// authorization policies name no scheme and read that user), and takes a token from the caller's rate limit
/// (<see cref="PrincipalRateLimiter"/>). One middleware rather than three: on the paid path every layer's code is one
/// more thing to fetch into a cache the model's computing has just emptied.
/// </para>
public sealed class RequestGate(RequestDelegate next, HostAllowList hosts, ServerLimits limits, TrustStore store, NodeSessions sessions, PrincipalRateLimiter rates)
{
    /// <summary>Runs the checks, authenticates, then runs the rest of the pipeline.</summary>
    public Task InvokeAsync(HttpContext http)
    {
        bool nodePort = ConnectionRoles.IsNodePort(http);
        if (!nodePort && !hosts.Allows(http.Request.Host))
            return Refuse(http, StatusCodes.Status400BadRequest, "Host not allowed",
                $"This server does not answer to Host '{http.Request.Host.Host}'; it answers to {string.Join(", ", hosts.Names)} (see --allowed-hosts).", "host_not_allowed");

        Endpoint? endpoint = http.GetEndpoint();
        if (endpoint is not null && (endpoint.Metadata.GetMetadata<NodePortOnlyAttribute>() is not null) != nodePort)
            return Refuse(http, StatusCodes.Status404NotFound, "Not found",
                nodePort ? "The node port serves only the node protocol." : "The node protocol is served only on the node port.", "wrong_port");

        var body = http.Features.Get<IHttpRequestBodyDetectionFeature>();
        if (body?.CanHaveBody == true)
        {
            if (!IsJson(http.Request.ContentType))
                return Refuse(http, StatusCodes.Status415UnsupportedMediaType, "Unsupported media type",
                    "Send the request body as application/json (with a Content-Type header).", "unsupported_media_type");
            long max = endpoint?.Metadata.GetMetadata<BodyLimitAttribute>()?.Bytes ?? limits.JsonBodyBytesMax;
            if (http.Request.ContentLength > max)
                return Refuse(http, StatusCodes.Status413PayloadTooLarge, "Payload too large",
                    $"The body is {http.Request.ContentLength} bytes; this endpoint reads at most {max}.", "payload_too_large");
            var size = http.Features.Get<IHttpMaxRequestBodySizeFeature>();
            if (size is { IsReadOnly: false }) size.MaxRequestBodySize = max;
        }
        TrustSchemes.SetUser(http, TrustSchemes.Authenticate(http, store, sessions));
        using System.Threading.RateLimiting.RateLimitLease lease = rates.AttemptAcquire(http);
        return lease.IsAcquired ? next(http) : PrincipalRateLimiter.RejectAsync(http, lease);
    }

    // "application/json", optionally with parameters ("; charset=utf-8"); read without allocating.
    private static bool IsJson(string? contentType)
    {
        ReadOnlySpan<char> type = contentType.AsSpan().Trim();
        int semicolon = type.IndexOf(';');
        if (semicolon >= 0) type = type[..semicolon].TrimEnd();
        return type.Equals("application/json", StringComparison.OrdinalIgnoreCase);
    }

    private static Task Refuse(HttpContext http, int status, string title, string detail, string code) =>
        ApiErrors.WriteAsync(http, status, title, detail, code).AsTask();
}
