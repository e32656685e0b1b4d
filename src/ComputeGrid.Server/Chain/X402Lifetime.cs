using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace ComputeGrid.Server.Chain;

/// <summary>
/// Before the server takes requests, resumes every unfinished x402 settlement (<see cref="X402Settler.RecoverAsync"/>):
/// registered after the ledger's lifetime, so the ledger's system accounts exist and it is open; on shutdown stops
/// following (the rest resumes at the next start) before the ledger closes.
/// </summary>
internal sealed class X402Lifetime(X402Payments x402, ILogger<X402Settler> log) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        x402.Settler.Log = log;
        await x402.Settler.RecoverAsync(cancellationToken);
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await x402.Settler.DisposeAsync();
        x402.Store.Dispose();
    }
}
