using System.Collections.Frozen;
using System.IO.Compression;
using System.Reflection;
using System.Security.Cryptography;
using Microsoft.AspNetCore.Http;

namespace ComputeGrid.Server.WebConsole;

/// <summary>
/// The built console (<c>console/dist</c>, embedded in this assembly by the project's <c>EmbedConsole</c> target as
/// <c>console/…</c> resources), served from memory: all local, nothing from a CDN. The build writes a Brotli (<c>.br</c>)
/// and a gzip (<c>.gz</c>) copy of each text file (<c>console/scripts/postbuild.mjs</c>), sent as they are to a client
/// that accepts them (a file without its copies is compressed once, on first request); Vite's content-hashed files under
/// <c>assets/</c> are cached for a year, everything else is revalidated by its ETag. Every answer carries the console's
/// Content-Security-Policy.
/// </summary>
public sealed class ConsoleAssets
{
    /// <summary>
    /// Scripts, styles, images, fonts and connections only from this server; no plugins, no framing, no foreign form
    /// targets. Inline styles are allowed because the chart libraries size their canvases with style attributes; inline
    /// scripts are not.
    /// </summary>
    public const string ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
        + "font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

    /// <summary>
    /// The policy with one more origin the page may connect to: the chain's JSON-RPC, which the Tokens page asks itself
    /// for the anchored root (an <c>eth_call</c>), so a balance proof is checked against the chain, not against this server.
    /// </summary>
    public static string PolicyWithRpc(string? rpcUrl) =>
        rpcUrl is not null && Uri.TryCreate(rpcUrl, UriKind.Absolute, out Uri? rpc) && rpc.Scheme is "http" or "https"
            ? ContentSecurityPolicy.Replace("connect-src 'self'", $"connect-src 'self' {rpc.GetLeftPart(UriPartial.Authority)}", StringComparison.Ordinal)
            : ContentSecurityPolicy;

    private const string Prefix = "console/";
    private readonly FrozenDictionary<string, Asset> _files;

    /// <summary>Reads the console's files from <paramref name="assembly"/>'s resources (none: the console was not built).</summary>
    public ConsoleAssets(Assembly assembly)
    {
        var files = new Dictionary<string, Asset>(StringComparer.Ordinal);
        foreach (string name in assembly.GetManifestResourceNames())
        {
            if (!name.StartsWith(Prefix, StringComparison.Ordinal)) continue;
            using Stream stream = assembly.GetManifestResourceStream(name)!;
            using var buffer = new MemoryStream();
            stream.CopyTo(buffer);
            string path = name[Prefix.Length..].Replace('\\', '/');
            files[path] = new Asset(path, buffer.ToArray());
        }
        // The build's compressed copies belong to their file; they are not served under their own names.
        foreach (string path in files.Keys.Where(p => p.EndsWith(".br", StringComparison.Ordinal) || p.EndsWith(".gz", StringComparison.Ordinal)).ToArray())
        {
            if (files.TryGetValue(path[..^3], out Asset? original))
            {
                byte[] packed = files[path].Raw;
                if (path.EndsWith(".br", StringComparison.Ordinal)) original.Brotli = new(() => packed);
                else original.Gzip = new(() => packed);
            }
            files.Remove(path);
        }
        _files = files.ToFrozenDictionary(StringComparer.Ordinal);
    }

    /// <summary>Whether the console was built into this binary.</summary>
    public bool Built => _files.ContainsKey("index.html");

    /// <summary>The paths served (relative, e.g. <c>index.html</c>, <c>assets/main-3f2a.js</c>).</summary>
    public IEnumerable<string> Paths => _files.Keys;

    /// <summary>Writes <paramref name="path"/>'s file, compressed as the client accepts, or a 304 when its ETag matches; false when there is no such file.</summary>
    public async Task<bool> TryServeAsync(HttpContext http, string path)
    {
        if (!_files.TryGetValue(path, out Asset? asset)) return false;
        HttpResponse r = http.Response;
        r.Headers.ContentSecurityPolicy = PolicyWithRpc(
            Microsoft.Extensions.DependencyInjection.ServiceProviderServiceExtensions.GetService<ComputeGrid.Server.Chain.ChainConnection>(http.RequestServices)?.Info.RpcUrl);
        r.Headers.XContentTypeOptions = "nosniff";
        r.Headers["Referrer-Policy"] = "no-referrer";
        r.Headers.CacheControl = path.StartsWith("assets/", StringComparison.Ordinal) ? "public, max-age=31536000, immutable" : "no-cache";
        r.Headers.ETag = asset.ETag;
        r.Headers.Vary = "Accept-Encoding";
        if (http.Request.Headers.IfNoneMatch.Contains(asset.ETag))
        {
            r.StatusCode = StatusCodes.Status304NotModified;
            return true;
        }
        r.ContentType = asset.ContentType;
        string accepts = http.Request.Headers.AcceptEncoding.ToString();
        byte[] body = asset.Raw;
        if (asset.Compressible && accepts.Contains("br", StringComparison.OrdinalIgnoreCase))
        {
            body = asset.Brotli.Value;
            r.Headers.ContentEncoding = "br";
        }
        else if (asset.Compressible && accepts.Contains("gzip", StringComparison.OrdinalIgnoreCase))
        {
            body = asset.Gzip.Value;
            r.Headers.ContentEncoding = "gzip";
        }
        r.ContentLength = body.Length;
        if (!HttpMethods.IsHead(http.Request.Method)) await r.Body.WriteAsync(body, http.RequestAborted);
        return true;
    }

    private sealed class Asset
    {
        public Asset(string path, byte[] raw)
        {
            Raw = raw;
            ContentType = TypeOf(path);
            Compressible = ContentType.StartsWith("text/", StringComparison.Ordinal) || ContentType.Contains("javascript", StringComparison.Ordinal)
                || ContentType.Contains("json", StringComparison.Ordinal) || ContentType.Contains("svg", StringComparison.Ordinal);
            ETag = "\"" + Convert.ToHexStringLower(SHA256.HashData(raw).AsSpan(0, 16)) + "\"";
            Brotli = new(() => Compress(raw, s => new BrotliStream(s, CompressionLevel.Optimal)));
            Gzip = new(() => Compress(raw, s => new GZipStream(s, CompressionLevel.Optimal)));
        }

        public byte[] Raw { get; }
        public string ContentType { get; }
        public bool Compressible { get; }
        public string ETag { get; }
        public Lazy<byte[]> Brotli { get; set; }
        public Lazy<byte[]> Gzip { get; set; }

        private static byte[] Compress(byte[] raw, Func<Stream, Stream> wrap)
        {
            using var output = new MemoryStream();
            using (Stream z = wrap(output)) z.Write(raw);
            return output.ToArray();
        }

        private static string TypeOf(string path) => Path.GetExtension(path).ToLowerInvariant() switch
        {
            ".html" => "text/html; charset=utf-8",
            ".js" or ".mjs" => "text/javascript; charset=utf-8",
            ".css" => "text/css; charset=utf-8",
            ".json" or ".map" => "application/json; charset=utf-8",
            ".svg" => "image/svg+xml",
            ".png" => "image/png",
            ".ico" => "image/x-icon",
            ".woff2" => "font/woff2",
            ".woff" => "font/woff",
            ".ttf" => "font/ttf",
            ".txt" => "text/plain; charset=utf-8",
            _ => "application/octet-stream",
        };
    }
}
