using ComputeGrid.Exchange.Trading;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace ComputeGrid.Server.Exchange;

/// <summary>
/// Starts the exchange before the server listens (its escrow account, the journal replay, the instruments trading
/// now), closes its journal on shutdown, and in between advances it on the clock: every
/// <see cref="ServerOptions.ExchangeTickInterval"/> it lists and expires instruments, expires good-till-time orders
/// and fails leases on nodes that missed their heartbeats.
/// </summary>
internal sealed class ExchangeLifetime(ExchangeService exchange, ExchangeFeed feed, ServerOptions options, ILogger<ExchangeLifetime> log) : BackgroundService
{
    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        // Hosted services start before Kestrel listens, so no request can reach an exchange that has not started.
        await exchange.StartAsync(cancellationToken);
        log.LogInformation("Exchange started: {Replayed} journal commands replayed, {Released} orphan holds released",
            exchange.Replayed, exchange.ReleasedOrphanHolds);
        await base.StartAsync(cancellationToken);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.ExchangeTickInterval, options.Time);
        string? lastError = null;
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                try
                {
                    // Not cancellable once begun: a tick cancelled between a ledger call and the book update would leave
                    // them disagreeing. Stopping waits for the tick in flight instead.
                    var changes = await exchange.TickAsync(CancellationToken.None);
                    if (changes.Listed.Count > 0 || changes.Expired.Count > 0)
                        log.LogInformation("Instruments: {Listed} listed, {Expired} expired", changes.Listed.Count, changes.Expired.Count);
                    lastError = null;
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    // A faulted ledger fails every tick the same way: log a failure once, not once a second.
                    if (e.Message != lastError) log.LogError(e, "Exchange tick failed");
                    lastError = e.Message;
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested) { }
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        feed.Dispose(); // ends every live stream (they also watch ApplicationStopping)
        await base.StopAsync(cancellationToken);
        // Kestrel has stopped and the tick loop has ended: no command can still reach the journal.
        exchange.Dispose();
    }
}
