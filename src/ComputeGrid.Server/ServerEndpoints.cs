using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace ComputeGrid.Server;

/// <summary>
/// The server's listening endpoints by role: the API (<c>--urls</c>) and the nodes' endpoint (<c>--node-urls</c>).
/// Kestrel writes the bound address back into each endpoint when it starts, so after start these give the real port
/// of an address given with port 0. Tests and the benchmark listen on port 0 and read the port here, instead of
/// picking a "free" port first and racing every other socket on the machine for it.
/// </summary>
public sealed class ServerEndpoints
{
    internal List<ListenOptions> Api { get; } = [];
    internal List<ListenOptions> Node { get; } = [];

    /// <summary>The API's addresses (http://ip:port); before start, as configured.</summary>
    public IReadOnlyList<string> ApiUrls => Api.Select(Url).ToArray();

    /// <summary>The nodes' endpoint addresses (http://ip:port); before start, as configured.</summary>
    public IReadOnlyList<string> NodeUrls => Node.Select(Url).ToArray();

    /// <summary>The first API address, as a client on this machine reaches it (0.0.0.0 becomes 127.0.0.1).</summary>
    public string ApiUrl => Local(ApiUrls.FirstOrDefault() ?? throw new InvalidOperationException("the server has no API address"));

    /// <summary>The first nodes' endpoint address, as a node on this machine reaches it.</summary>
    public string NodeUrl => Local(NodeUrls.FirstOrDefault() ?? throw new InvalidOperationException("the server has no node endpoint"));

    internal void Clear()
    {
        Api.Clear();
        Node.Clear();
    }

    private static string Url(ListenOptions o) => o.IPEndPoint is { } ip
        ? $"http://{(ip.Address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? $"[{ip.Address}]" : ip.Address.ToString())}:{ip.Port}"
        : o.ToString() ?? "";

    private static string Local(string url) => url.Replace("://0.0.0.0:", "://127.0.0.1:").Replace("://[::]:", "://[::1]:");
}
