using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace ComputeGrid.Server.Energy;

/// <summary>The live sites of a server.</summary>
public sealed class LiveSites(IReadOnlyList<LiveSite> sites)
{
    public IReadOnlyList<LiveSite> All { get; } = sites;

    public LiveSite? Find(string name) => All.FirstOrDefault(s => string.Equals(s.Name, name, StringComparison.OrdinalIgnoreCase));
}

/// <summary>Steps every live site on the real clock (a few times per replayed interval) and stops their fleets on shutdown.</summary>
internal sealed class EnergyLifetime(LiveSites sites, ILogger<EnergyLifetime> log) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (sites.All.Count == 0) return;
        foreach (LiveSite s in sites.All)
            log.LogInformation("Site {Site} live: {Intervals} intervals from {Start:yyyy-MM-dd HH:mm} UTC at {Speed}×, {Endpoints} miner endpoints on 127.0.0.1",
                s.Name, s.Site.Problem.Count, s.State.SeriesTimeUtc, s.Speed, s.Simulator.Endpoints.Count);
        double fastest = sites.All.Max(s => s.Speed);
        TimeSpan period = TimeSpan.FromSeconds(Math.Clamp(15 * 60 / fastest / 4, 0.1, 1.0));
        using var timer = new PeriodicTimer(period, TimeProvider.System); // live sites replay on the real clock
        try
        {
            do
            {
                foreach (LiveSite s in sites.All)
                {
                    try { await s.StepAsync(stoppingToken); }
                    catch (Exception e) when (e is not OperationCanceledException)
                    {
                        log.LogWarning(e, "Site {Site}: step failed", s.Name);
                    }
                }
            }
            while (await timer.WaitForNextTickAsync(stoppingToken));
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested) { }
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        foreach (LiveSite s in sites.All) await s.DisposeAsync();
    }
}
