using ComputeGrid.Server.Chain;
using ComputeGrid.Server.Exchange;
using ComputeGrid.Server.Inference;
using ComputeGrid.Server.Tokens;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace ComputeGrid.Server.Observability;

/// <summary>
/// Which parts of the server have finished recovering (<c>GET /health/ready</c>). Each part is the hosted service that
/// recovers it: the ledger's system accounts, the trust store's upkeep, the share book rebuilt from the ledger, the
/// exchange's journal replayed, paid inference's captures completed, x402 intents resumed. A part is ready once its
/// service's start has returned, and not ready again once the server begins to stop it.
/// </summary>
/// <remarks>
/// The host starts its services one after another in registration order (and stops them in reverse), so a marker
/// registered right after a service is started exactly when that service's start completed — the same order the
/// server relies on to recover before it listens. <see cref="Track"/> inserts those markers; no lifetime changes.
/// </remarks>
public sealed class Readiness
{
    // The services whose start recovers something, and the part each one recovers. The ledger itself is recovered when
    // it is opened (ServerHost.Build); its lifetime's start then creates the chart's system accounts.
    private static readonly (Type Service, string Part)[] Recoveries =
    [
        (typeof(LedgerLifetime), "ledger"),
        (typeof(TrustLifetime), "trust"),
        (typeof(ShareRevenueLifetime), "shares"),
        (typeof(ExchangeLifetime), "exchange"),
        (typeof(InferenceLifetime), "inference"),
        (typeof(X402Lifetime), "x402"),
    ];

    private readonly List<string> _parts = [];
    private readonly HashSet<string> _ready = [];

    /// <summary>The parts tracked, in the order they recover.</summary>
    public IReadOnlyList<string> Parts
    {
        get { lock (_ready) return [.. _parts]; }
    }

    /// <summary>The parts not ready yet (or no longer), in the order they recover; empty when every part is ready.</summary>
    public IReadOnlyList<string> Pending
    {
        get { lock (_ready) return [.. _parts.Where(p => !_ready.Contains(p))]; }
    }

    /// <summary>Registers the readiness of <paramref name="services"/>: a marker after each recovering service found.</summary>
    public static Readiness Track(IServiceCollection services)
    {
        var readiness = new Readiness();
        for (int i = 0; i < services.Count; i++)
        {
            ServiceDescriptor d = services[i];
            if (d.ServiceType != typeof(IHostedService) || d.IsKeyedService) continue;
            string? part = Recoveries.FirstOrDefault(r => r.Service == d.ImplementationType).Part;
            if (part is null) continue;
            lock (readiness._ready) readiness._parts.Add(part);
            services.Insert(++i, ServiceDescriptor.Singleton<IHostedService>(new Marker(readiness, part)));
        }
        services.AddSingleton(readiness);
        return readiness;
    }

    private void Set(string part, bool ready)
    {
        lock (_ready)
        {
            if (ready) _ready.Add(part);
            else _ready.Remove(part);
        }
    }

    // Started right after the service it follows has started (so its part has recovered); stopped right before it stops.
    private sealed class Marker(Readiness readiness, string part) : IHostedService
    {
        public Task StartAsync(CancellationToken cancellationToken)
        {
            readiness.Set(part, ready: true);
            return Task.CompletedTask;
        }

        public Task StopAsync(CancellationToken cancellationToken)
        {
            readiness.Set(part, ready: false);
            return Task.CompletedTask;
        }
    }
}
