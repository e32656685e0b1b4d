using ComputeGrid.Exchange.Pipeline;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace ComputeGrid.Server.Exchange;

/// <summary>
/// Starts the exchange before the server listens (its escrow account, the journal replay, the instruments trading
/// now), stops it on shutdown, and in between advances it on the clock: every
/// <see cref="ServerOptions.ExchangeTickInterval"/> it lists and expires instruments, expires good-till-time orders
/// and fails leases on nodes in delivery that missed their heartbeats (only ticks that change something are journaled).
/// </summary>
internal sealed class ExchangeLifetime(ExchangeHost exchange, ExchangeFeed feed, ServerOptions options, ILogger<ExchangeLifetime> log) : BackgroundService
{
    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        // Hosted services start before Kestrel listens, so no request can reach an exchange that has not started.
        await exchange.StartAsync(cancellationToken);
        var (_, commands, _) = exchange.Pipeline.Counters;
        long last = await exchange.ReadAsync(sm => (long)sm.LastSeq, cancellationToken);
        // What start itself sent (ledger answers left waiting, the first tick) is counted apart from the replay.
        log.LogInformation("Exchange started: {Replayed} journal commands replayed, {Commands} sent at start", last - commands, commands);
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
                    await exchange.TickAsync(CancellationToken.None);
                    lastError = null;
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    // A stopped exchange fails every tick the same way: log a failure once, not once a second.
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
        await exchange.DisposeAsync();
    }
}
