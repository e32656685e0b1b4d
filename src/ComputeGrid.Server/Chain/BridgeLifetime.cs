using ComputeGrid.Ledger;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace ComputeGrid.Server.Chain;

/// <summary>
/// Runs the bridge while the server runs: every <see cref="BridgeOptions.PollInterval"/> a deposit pass, a pass over the
/// withdrawal outbox, an anchor of the latest checkpoint, and the share tokens' deposits, mints and revenue (<see cref="ShareBridge"/>). Each step's failure is logged and retried at the next
/// tick; none blocks the others. Registered after the ledger's lifetime, so it starts after the system accounts exist
/// and stops before the ledger closes.
/// </summary>
public sealed class BridgeLifetime(BridgeDeposits deposits, BridgeWithdrawals withdrawals, AnchorOutbox anchors, ShareBridge shares, BridgeStore store, BridgeOptions options,
    ServerOptions server, ILogger<BridgeLifetime> log) : BackgroundService
{
    /// <summary>Registers the bridge's store, its three parts and this lifetime; a damaged store refuses the start.</summary>
    public static void Register(IServiceCollection services, ChainConnection chain, ServerOptions options)
    {
        BridgeStore store;
        try { store = BridgeStore.Open(options.DataDirectory); }
        catch (InvalidDataException e) { throw new ServerStartException(e.Message, e); }
        services.AddSingleton(store);
        services.AddSingleton(options.Bridge);
        services.AddSingleton(sp => new BridgeDeposits(chain, sp.GetRequiredService<LedgerEngine>(), store, options.Bridge, sp.GetRequiredService<ILogger<BridgeDeposits>>()));
        services.AddSingleton(sp => new BridgeWithdrawals(chain, sp.GetRequiredService<LedgerEngine>(), store, options.Bridge, options.Time, sp.GetRequiredService<ILogger<BridgeWithdrawals>>()));
        services.AddSingleton(sp => new ShareBridge(chain, sp.GetRequiredService<LedgerEngine>(), sp.GetRequiredService<ComputeGrid.Exchange.Pipeline.ExchangeHost>(),
            sp.GetRequiredService<ComputeGrid.Server.Tokens.ShareRevenue>(), store, options.Bridge, sp.GetRequiredService<Trust.TrustStore>(), options.Time,
            sp.GetRequiredService<ILogger<ShareBridge>>()));
        services.AddSingleton(sp =>
        {
            LedgerEngine ledger = sp.GetRequiredService<LedgerEngine>();
            var outbox = new AnchorOutbox(chain, ledger, store, sp.GetRequiredService<ILogger<AnchorOutbox>>());
            ledger.CheckpointTaken += outbox.Record;
            return outbox;
        });
        services.AddHostedService<BridgeLifetime>();
    }

    /// <inheritdoc />
    public override Task StartAsync(CancellationToken cancellationToken)
    {
        // Built now (not at first use), so it records every checkpoint from the start.
        _ = anchors;
        return base.StartAsync(cancellationToken);
    }

    /// <inheritdoc />
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!options.RunLoops) return;
        using var timer = new PeriodicTimer(options.PollInterval, server.Time);
        try
        {
            do
            {
                await StepAsync("deposit pass", () => deposits.PollAsync(stoppingToken), stoppingToken);
                await StepAsync("withdrawal pass", () => withdrawals.ProcessAsync(stoppingToken), stoppingToken);
                await StepAsync("anchor", () => anchors.AnchorAsync(stoppingToken), stoppingToken);
                await StepAsync("share deposit pass", () => shares.PollDepositsAsync(stoppingToken), stoppingToken);
                await StepAsync("share withdrawal pass", () => shares.ProcessAsync(stoppingToken), stoppingToken);
                await StepAsync("share revenue distribution", () => shares.DistributeAsync(stoppingToken), stoppingToken);
            }
            while (await timer.WaitForNextTickAsync(stoppingToken));
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested) { }
    }

    private async Task StepAsync(string what, Func<Task> step, CancellationToken stoppingToken)
    {
        try { await step(); }
        catch (Exception e) when (e is not OperationCanceledException || !stoppingToken.IsCancellationRequested)
        {
            log.LogError(e, "Bridge {What} failed; retried at the next tick: {Reason}", what, e.Message);
        }
    }

    /// <inheritdoc />
    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        store.Dispose();
    }
}
