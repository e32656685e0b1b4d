using System.Diagnostics;
using ComputeGrid.Core;
using ComputeGrid.Energy.Sites;
using ComputeGrid.Inference.Routing;
using Microsoft.Extensions.Time.Testing;

namespace ComputeGrid.Server.WholeSystem;

/// <summary>
/// The seeded whole-system simulation (TigerBeetle's VOPR, for the whole of ComputeGrid): customers, traders,
/// providers, share holders, nodes, a hybrid site and its miner fleet driven through the real components under one
/// simulated clock and one seed, one step (a simulated minute) at a time, with faults at seeded steps and every
/// invariant checked after every step. The same seed gives the same run: nothing outcome-deciding reads the wall clock
/// or races another thread (each step's work is awaited in order; background captures are drained before the next).
/// </summary>
public static class WholeSystemSimulation
{
    /// <summary>When the simulated clock starts: the site's price series (ERCOT 2021) is replayed from here at speed 1.</summary>
    public static readonly DateTimeOffset Start = new(2021, 8, 2, 5, 0, 0, TimeSpan.Zero);

    /// <summary>Runs one simulation; an invariant that breaks ends the run with <see cref="SimulationResult.Violation"/> set.</summary>
    /// <exception cref="ArgumentException">The options are not valid (<see cref="SimulationOptions.Validate"/>).</exception>
    public static async Task<SimulationResult> RunAsync(SimulationOptions options, CancellationToken ct = default)
    {
        if (options.Validate() is { } error) throw new ArgumentException(error);
        string dir = options.WorkDirectory ?? Path.Combine(Path.GetTempPath(), $"cg-sim-{options.Seed}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        long wallStart = Stopwatch.GetTimestamp();
        var clock = new FakeTimeProvider(Start);
        var run = new SimRun(options, dir, clock, LatencyMatrix.LoadDefault(), options.Site ? SiteConfigFor() : null);
        try
        {
            await run.RunAsync(ct);
        }
        finally
        {
            await run.DisposeAsync();
            if (!options.KeepFiles && options.WorkDirectory is null)
            {
                try { Directory.Delete(dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            }
        }
        return new SimulationResult
        {
            Seed = options.Seed, Steps = run.Steps, Faults = run.FaultCounts, Requests = run.Requests, Answered = run.AnsweredCount,
            Orders = run.OrdersAcknowledged, Leases = run.LeasesCreated, ShareTrades = run.ShareTrades, Claims = run.Claims, Restarts = run.Restarts, InvariantChecks = run.InvariantChecks,
            Violation = run.Violation, FinalStateHash = run.FinalStateHash,
            KeptDirectory = options.KeepFiles || options.WorkDirectory is not null ? dir : null,
            SimulatedHours = (clock.GetUtcNow() - Start).TotalHours, WallSeconds = Stopwatch.GetElapsedTime(wallStart).TotalSeconds,
        };
    }

    /// <summary>
    /// The site: the reference ERCOT West site, its GPU schedule replaced by the simulation's two nodes in Dallas, and a
    /// 1 MW interconnect that 260 S21 miners nearly fill, so the interconnect check has something to hold.
    /// </summary>
    public static SiteConfig SiteConfigFor() => SiteExamples.Load(SiteExamples.Reference) with
    {
        Name = "sim-dallas", InterconnectKw = 1_000, Gpus = [],
        Nodes = [.. SimRun.SiteNodeIds.Select(id => new SiteNodeConfig { Id = id, Gpus = SimRun.GpusPerNode, WattsPerGpu = 700, JoulesPer1kTokens = 50 })],
        Miners = [new MinerFleetConfig { Model = "Antminer S21", Count = 260 }],
    };
}
