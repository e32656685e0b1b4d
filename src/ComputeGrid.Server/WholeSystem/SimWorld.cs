using ComputeGrid.Energy.Bookkeeping;
using ComputeGrid.Energy.Sites;
using ComputeGrid.Exchange.Instruments;
using ComputeGrid.Exchange.Pipeline;
using ComputeGrid.Inference.Model;
using ComputeGrid.Inference.Routing;
using ComputeGrid.Ledger;
using ComputeGrid.Server.Energy;
using ComputeGrid.Server.Inference;
using ComputeGrid.Server.Tokens;
using ComputeGrid.Server.Trust;
using ComputeGrid.Simulation;
using ComputeGrid.Energy.Miners;

namespace ComputeGrid.Server.WholeSystem;

/// <summary>
/// An I/O fault armed for the next write of the ledger log or of the exchange journal (test seams in the real file
/// layers). It fires once, on the first write that reaches its point, then disarms.
/// </summary>
internal sealed class SimIoFault
{
    private LedgerLogFaultPoint? _ledger;
    private JournalFaultPoint? _journal;
    private readonly Lock _lock = new();

    /// <summary>Arms a ledger log fault.</summary>
    public void Arm(LedgerLogFaultPoint point) { lock (_lock) _ledger = point; }

    /// <summary>Arms an exchange journal fault.</summary>
    public void Arm(JournalFaultPoint point) { lock (_lock) _journal = point; }

    /// <summary>Disarms whatever did not fire.</summary>
    public void Disarm() { lock (_lock) { _ledger = null; _journal = null; } }

    /// <summary>The ledger's hook.</summary>
    public bool Ledger(LedgerLogFaultPoint point)
    {
        lock (_lock)
        {
            if (_ledger != point) return false;
            _ledger = null;
            return true;
        }
    }

    /// <summary>The journal's hook.</summary>
    public bool Journal(JournalFaultPoint point)
    {
        lock (_lock)
        {
            if (_journal != point) return false;
            _journal = null;
            return true;
        }
    }
}

/// <summary>
/// The real components of one server process, composed as <see cref="ServerHost"/> composes them (ledger with its log
/// in a folder, share revenue book, exchange with its journal, paid inference gateway, router and capture settler, the
/// hybrid site with its miner fleet over TCP and its books in the ledger), without HTTP and under the simulation's
/// clock. Opening it again on the same folder is a process restart: everything comes back from disk.
/// </summary>
internal sealed class SimWorld : IAsyncDisposable
{
    /// <summary>The platform's fee on inference, basis points (the server's default).</summary>
    public const int PlatformFeeBasisPoints = 1_000;

    public required LedgerEngine Ledger { get; init; }
    public required ShareRevenue Shares { get; init; }
    public required ExchangeHost Exchange { get; init; }
    public required NodeRegistry Registry { get; init; }
    public required InferencePayments Payments { get; init; }
    public required CaptureSettler Settler { get; init; }
    public required DeadLetters DeadLetters { get; init; }
    public required InferenceGateway Gateway { get; init; }
    public required IEmbeddingModel Model { get; init; }
    public LiveSite? Site { get; init; }

    /// <summary>The site's miner I/O clock (timeouts, retry waits, the slow fault's delay), moved only by <see cref="StepSiteAsync"/>.</summary>
    public required SimMinerIo MinerIo { get; init; }

    /// <summary>Decides the site's next interval (drives its miners, books it), the miners' I/O on <see cref="MinerIo"/>.</summary>
    public Task StepSiteAsync(CancellationToken ct) =>
        Site is { } s ? MinerIo.RunAsync(c => s.StepAsync(c), s.Driver, s.Simulator, ct) : Task.CompletedTask;

    /// <summary>What recovery completed at this open (captures of holds a crash cut off).</summary>
    public RecoveryCounts Recovered { get; private set; }

    /// <summary>Opens every component from <paramref name="dir"/> (creating what is missing), in the server's order.</summary>
    public static async Task<SimWorld> OpenAsync(string dir, TimeProvider clock, SimIoFault io, IReadOnlyList<SimNode> nodes, LatencyMatrix latency,
        SiteConfig? site, PlantedBug bug, Func<DueCapture, bool> dropCapture, CancellationToken ct)
    {
        long t0 = System.Diagnostics.Stopwatch.GetTimestamp();
        var ledger = LedgerEngine.Open(new LedgerEngineOptions
        {
            DataDirectory = Path.Combine(dir, "ledger"),
            InjectLogFault = io.Ledger,
            // Expiry pulses run on the ledger's own thread; the simulation's holds are settled within a step.
            PulseInterval = TimeSpan.FromDays(1),
            AccountsCapacity = 1 << 12, TransfersCapacity = 1 << 18,
        }, clock);
        await new PrincipalLedger(ledger).EnsureSystemAccountsAsync(ct);
        // The share book is rebuilt from the ledger before anything can move money (as the server registers it).
        ShareRevenue shares = ShareRevenue.Open(ledger, dir);
        await shares.StartAsync(ct);
        var instruments = new InstrumentRegistry(new InstrumentSchedule(RegionCatalog.LoadDefault(), ListingPolicy.Default));
        var exchange = new ExchangeHost(ledger, instruments, clock, new ExchangeHostOptions
        {
            JournalPath = Path.Combine(dir, "exchange", "commands.journal"),
            Journal = new JournalOptions { InjectFault = io.Journal },
        });
        await exchange.StartAsync(ct);

        Phase?.Invoke("open_ledger_exchange", t0);
        t0 = System.Diagnostics.Stopwatch.GetTimestamp();
        var model = new SimModel();
        var minerIo = new SimMinerIo(clock.GetUtcNow());
        var registry = new NodeRegistry(latency, clock);
        var payments = new InferencePayments(ledger) { HasShares = node => exchange.NodeHasShares((long)node) };
        DeadLetters dead = DeadLetters.Open(dir, clock);
        var settler = new CaptureSettler(payments, dead);
        if (bug == PlantedBug.SkipOneCapture) settler.DropForTest = dropCapture;
        var models = new ModelRegistry();
        models.Register(model);
        var gateway = new InferenceGateway(models, registry, new Router(registry), payments, dead, settler,
            new InferenceOptions { PlatformFeeBasisPoints = PlatformFeeBasisPoints });
        foreach (SimNode n in nodes)
        {
            gateway.AddNode(new NodeRegistration(n.Id, latency.Regions[n.Region], [model.Id], SimPrices.NodePricePer1k(n), 4, KeyOf(n)), (ulong)n.Principal, n);
        }
        var world = new SimWorld
        {
            Ledger = ledger, Shares = shares, Exchange = exchange, Registry = registry, Payments = payments, Settler = settler, DeadLetters = dead,
            Gateway = gateway, Model = model,
            Site = site is null ? null : StartSite(site, clock, minerIo.Clock),
            MinerIo = minerIo,
        };
        Phase?.Invoke("open_inference_site", t0);
        t0 = System.Diagnostics.Stopwatch.GetTimestamp();
        // Captures a crash cut off are completed before any request is taken (the server's InferenceLifetime).
        world.Recovered = await settler.RecoverAsync(nodes.ToDictionary(n => (ulong)n.Principal, n => n.Id), gateway.Options.HoldTimeoutSeconds, ct);
        if (world.Site is { } s)
        {
            s.Attach(new SimSiteNodes(world, nodes, clock));
            s.Attach(new SiteLedger(ledger, s.Name));
        }
        Phase?.Invoke("open_recovery", t0);
        return world;
    }

    /// <summary>Where the simulation's phase timings go (wall clock, for the trace only; never part of the outcome).</summary>
    public static Action<string, long>? Phase { get; set; }

    // The site starts at the clock's time (the series is replayed at speed 1, so series time is simulated time). After a
    // restart it starts again from an idle fleet at the restart's time; intervals already booked stay booked.
    private static LiveSite StartSite(SiteConfig config, TimeProvider clock, TimeProvider io) => LiveSite.Start(new LiveSiteOptions
    {
        Config = config, Speed = 1, StartUtc = clock.GetUtcNow().UtcDateTime, RacksPerGroup = 13,
        Simulator = new MinerFleetSimulatorOptions { Seed = 7, HashrateNoise = 0, FaultClock = io },
        // Network timeouts, retry waits and the slow fault's delay run on the virtual I/O clock (SimMinerIo), which moves
        // only when every call in flight is held by a faulted rack: a silent rack always times out, a slow one (5 ms)
        // always answers within the 150 ms, a healthy one never times out, whatever the machine's load.
        Driver = new FleetDriverOptions
        {
            ReadDeviceTemperatures = false, CommandTimeout = TimeSpan.FromMilliseconds(150), RetryBackoff = TimeSpan.FromMilliseconds(5),
            MaxRetryBackoff = TimeSpan.FromMilliseconds(20), Seed = 7, IoClock = io,
        },
    }, clock);

    private static byte[] KeyOf(SimNode n)
    {
        var key = new byte[32];
        BitConverter.TryWriteBytes(key, n.Principal);
        return key;
    }

    /// <summary>Waits until the settler has written every capture it was given.</summary>
    /// A ledger that stopped at an I/O error never takes them: then this returns, and the restart's recovery completes them.
    public async Task DrainAsync(CancellationToken ct)
    {
        for (int i = 0; i < 4096 && Settler.Queued > 0 && !Faulted; i++) await Task.Yield();
        while (Settler.Queued > 0 && !Faulted) await Task.Delay(1, ct);
    }

    /// <summary>Whether a writer stopped at an I/O error (fail-stop): the process must restart.</summary>
    public bool Faulted => Ledger.Fault is not null || Exchange.Fault is not null;

    /// <summary>Stops everything, in the server's reverse order.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Site is not null) await Site.DisposeAsync();
        await Settler.StopAsync(TimeSpan.FromSeconds(Faulted ? 0 : 5));
        await Settler.DisposeAsync();
        DeadLetters.Dispose();
        await Exchange.DisposeAsync();
        Shares.Dispose();
        await Ledger.DisposeAsync();
    }
}
