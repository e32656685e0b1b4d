using ComputeGrid.Server.Trust;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace ComputeGrid.Server.Tests;

/// <summary>One route of the server: method, pattern, and what its metadata declares (policy, public, node port).</summary>
public sealed record Route(string Method, string Pattern, string? Policy, bool Public, bool NodePort)
{
    /// <summary>The route's parameters, e.g. <c>id</c>, <c>keyId</c>.</summary>
    public IReadOnlyList<string> Parameters => Microsoft.AspNetCore.Routing.Patterns.RoutePatternFactory.Parse(Pattern).Parameters.Select(p => p.Name).ToArray();

    public override string ToString() => $"{Method} {Pattern}";
}

/// <summary>
/// The route table of the server, read from the app's own endpoint data source (as ASP.NET routes requests), so a route
/// added later is enumerated whether or not anyone remembered to test it.
/// </summary>
public static class RouteTable
{
    /// <summary>Every route of a server built (not started) on a temporary folder.</summary>
    public static IReadOnlyList<Route> Read()
    {
        string dir = TestServer.TempDir("routes");
        try
        {
            WebApplication app = ServerHost.Build(new ServerOptions { Urls = "http://127.0.0.1:0", NodeUrls = "http://127.0.0.1:0", DataDirectory = dir });
            try { return Of(app); }
            finally { app.DisposeAsync().AsTask().GetAwaiter().GetResult(); }
        }
        finally
        {
            try { Directory.Delete(dir, recursive: true); } catch (IOException) { }
        }
    }

    /// <summary>The routes of an app that is built.</summary>
    public static IReadOnlyList<Route> Of(WebApplication app)
    {
        var routes = new List<Route>();
        foreach (Endpoint e in ((IEndpointRouteBuilder)app).DataSources.SelectMany(d => d.Endpoints))
        {
            if (e is not RouteEndpoint re) continue;
            string pattern = "/" + re.RoutePattern.RawText!.TrimStart('/');
            var methods = e.Metadata.GetMetadata<IHttpMethodMetadata>()?.HttpMethods ?? ["GET"];
            // The endpoint's own declaration wins over its group's, as it does for authorization.
            object? decision = e.Metadata.LastOrDefault(m => m is IAllowAnonymous || (m is IAuthorizeData a && a.Policy is not null));
            string? policy = decision is IAuthorizeData d ? d.Policy : null;
            bool isPublic = decision is IAllowAnonymous;
            bool node = e.Metadata.GetMetadata<NodePortOnlyAttribute>() is not null;
            foreach (string m in methods) routes.Add(new Route(m, pattern, policy, isPublic, node));
        }
        return routes;
    }
}
