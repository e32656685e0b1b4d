using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using ComputeGrid.Core;
using ComputeGrid.Energy.Miners;
using ComputeGrid.Energy.Sites;
using ComputeGrid.Exchange.Instruments;
using ComputeGrid.Exchange.Matching;
using ComputeGrid.Exchange.Pipeline;
using ComputeGrid.Exchange.StateMachine;
using ComputeGrid.Exchange.Trading;
using ComputeGrid.Inference.Routing;
using ComputeGrid.Ledger;
using ComputeGrid.Server.Inference;
using ComputeGrid.Server.Trust;
using ComputeGrid.Simulation;
using Microsoft.Extensions.Time.Testing;

namespace ComputeGrid.Server.WholeSystem;

/// <summary>
/// One run: the actors, the fault schedule and the simulation's own records (answered requests, acknowledged orders),
/// which the invariants compare with what the components say (<c>SimRun.Invariants.cs</c>).
/// </summary>
internal sealed partial class SimRun(SimulationOptions options, string dir, FakeTimeProvider clock, LatencyMatrix latency, SiteConfig? site) : IAsyncDisposable
{
    // ---- the cast (principal ids never collide: the ranges are the simulation's own)
    public const int GpusPerNode = 8;
    private const int CustomerCount = 8, ProviderCount = 3, NodesPerProvider = 2;
    private const long FirstCustomer = 1001, FirstProvider = 2001, FirstNode = 3001;
    private const long CustomerFunding = 20_000_000, TopUp = 10_000_000, TradingDeposit = 5_000_000, Collateral = 500_000_000, ShareSupply = 1_000;
    private const long StepMinutes = 1, SiteEveryMinutes = 15;
    /// <summary>The nodes at the site (provider 2001's two nodes, in Dallas).</summary>
    public static readonly string[] SiteNodeIds = ["node-3001", "node-3002"];
    private static readonly long[] ShareNodes = [FirstNode, FirstNode + 2];
    private static readonly string[] Words = ["grid", "power", "token", "ledger", "miner", "price", "latency", "node", "share", "lease", "hash", "watt", "queue", "route"];

    private readonly Random _act = new(unchecked((int)(options.Seed * 2_654_435_761L ^ 0x5EED)));
    private readonly Random _chaos = new(unchecked((int)(options.Seed * 40_503L ^ 0xFA17)));
    private readonly SimIoFault _io = new();
    private readonly List<SimNode> _nodes = [];
    private readonly long[] _customers = [.. Enumerable.Range(0, CustomerCount).Select(i => FirstCustomer + i)];
    private readonly int[] _customerRegion = new int[CustomerCount];
    private readonly long[] _providers = [.. Enumerable.Range(0, ProviderCount).Select(i => FirstProvider + i)];
    private readonly Dictionary<long, List<SimFaultKind>> _schedule = [];
    private readonly Dictionary<SimFaultKind, int> _faults = SimFaults.All.ToDictionary(k => k, _ => 0);
    private readonly List<(long Step, SimNode? Node, int Miner, bool Undo)> _timedUndo = [];
    private SimWorld _world = null!;
    private long _step;
    private long _requestNo;
    private bool _dropped;

    public long Steps { get; private set; }
    public long Requests => _requestNo;
    public int Restarts { get; private set; }
    public long OrdersAcknowledged { get; private set; }
    public long LeasesCreated { get; private set; }
    public long InvariantChecks { get; private set; }
    public string? Violation { get; private set; }
    public string FinalStateHash { get; private set; } = "";
    public IReadOnlyDictionary<SimFaultKind, int> FaultCounts => _faults;

    public async Task RunAsync(CancellationToken ct)
    {
        long steps = checked((long)Math.Ceiling(options.Hours * 60 / StepMinutes));
        Plan(steps);
        // Nodes: two per provider; provider 2001's sit at the site in Dallas, the others in seeded regions.
        int dallas = latency.TryGetRegion("Dallas", out int d) ? d : 0;
        for (int p = 0; p < ProviderCount; p++)
            for (int k = 0; k < NodesPerProvider; k++)
            {
                long id = FirstNode + p * NodesPerProvider + k;
                _nodes.Add(new SimNode($"node-{id}", id, p == 0 ? dallas : _act.Next(latency.Count), GpusPerNode));
            }
        for (int i = 0; i < CustomerCount; i++) _customerRegion[i] = _act.Next(latency.Count);
        if (Tracing) SimWorld.Phase = Trace;
        long t0 = System.Diagnostics.Stopwatch.GetTimestamp();
        _world = await OpenWorldAsync(ct);
        Trace("open", t0);
        try
        {
            t0 = System.Diagnostics.Stopwatch.GetTimestamp();
            await SetUpAsync(ct);
            Trace("setup", t0);
            await CheckAsync(ct);
            for (_step = 1; _step <= steps; _step++)
            {
                long t1 = System.Diagnostics.Stopwatch.GetTimestamp();
                // A write outside the step's guarded operations (the ledger's expiry pulse, a capture the settler makes in
                // the background) may meet the armed I/O fault, on the machine's timing: the writer stopped as it must,
                // and the process restarts from disk as a guarded operation's would. Any other exception is a bug.
                try { await StepAsync(ct); }
                catch (Exception e) when (_world.Faulted && e is not SimInvariantException) { await RestartAsync(clean: false, ct); }
                Trace("step", t1);
                t1 = System.Diagnostics.Stopwatch.GetTimestamp();
                try { await CheckAsync(ct); }
                catch (Exception e) when (_world.Faulted && e is not SimInvariantException)
                {
                    await RestartAsync(clean: false, ct);
                    await CheckAsync(ct);
                }
                Trace("check", t1);
                Steps = _step;
            }
            FinalStateHash = Convert.ToHexStringLower(await StateHashAsync(ct));
            if (Tracing) foreach (var kv in _trace) Console.Error.WriteLine($"trace {kv.Key}: {kv.Value:0} ms");
        }
        catch (SimInvariantException e)
        {
            Violation = $"step {_step}: {e.Message}".ReplaceLineEndings(" ");
            FinalStateHash = Convert.ToHexStringLower(await SafeStateHashAsync(ct));
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // A component that throws where no fault explains it is a bug the seed found: reported like a broken invariant.
            Violation = $"step {_step}: unexpected_exception: {e.GetType().Name}: {e.Message}".ReplaceLineEndings(" ");
            FinalStateHash = Convert.ToHexStringLower(await SafeStateHashAsync(ct));
        }
    }

    private Task<SimWorld> OpenWorldAsync(CancellationToken ct) =>
        SimWorld.OpenAsync(dir, clock, _io, _nodes, latency, site, options.Bug, DropOneCapture, ct);

    // The planted bug (test-only): the first capture after step 10 is accepted and lost.
    private bool DropOneCapture(DueCapture capture)
    {
        if (_dropped || _step < 10) return false;
        _dropped = true;
        return true;
    }

    // ================================================================== the fault schedule

    // Each enabled kind fires a seeded number of times (at least once) at seeded steps, decided before the run starts, so
    // the schedule does not depend on what the run does.
    private void Plan(long steps)
    {
        foreach (SimFaultKind kind in SimFaults.All)
        {
            if (!options.Faults.Contains(kind)) continue;
            double perHour = kind switch
            {
                SimFaultKind.CrashRestart or SimFaultKind.ClockJump => 0.5,
                SimFaultKind.LedgerIo => 0.75,
                _ => 1.5,
            };
            int count = Math.Max(1, (int)Math.Round(options.Hours * perHour * (0.5 + _chaos.NextDouble())));
            for (int i = 0; i < count; i++)
            {
                long at = steps <= 4 ? 1 : 2 + _chaos.NextInt64(steps - 2);
                if (!_schedule.TryGetValue(at, out var list)) _schedule[at] = list = [];
                list.Add(kind);
            }
        }
    }

    private async Task InjectAsync(SimFaultKind kind, CancellationToken ct)
    {
        _faults[kind]++;
        switch (kind)
        {
            case SimFaultKind.NodeCrash:
                _nodes[_chaos.Next(_nodes.Count)].CrashNext = true;
                break;
            case SimFaultKind.NodeGarbage:
                _nodes[_chaos.Next(_nodes.Count)].GarbageLeft += 1 + _chaos.Next(3);
                break;
            case SimFaultKind.Partition:
            {
                SimNode n = _nodes[_chaos.Next(_nodes.Count)];
                n.PartitionedUntilStep = _step + 2 + _chaos.Next(8);
                n.PartitionDelays = _chaos.Next(2) == 0;
                break;
            }
            case SimFaultKind.MinerSilent or SimFaultKind.MinerGarbage or SimFaultKind.MinerSlow:
                if (_world.Site is not { } s) break;
                int miner = _chaos.Next(s.Simulator.Count);
                s.Simulator.SetFault(miner, kind switch
                {
                    SimFaultKind.MinerSilent => MinerFault.Silent,
                    SimFaultKind.MinerGarbage => MinerFault.Garbage,
                    _ => MinerFault.Slow(TimeSpan.FromMilliseconds(5)),
                });
                _timedUndo.Add((_step + 15 + _chaos.Next(45), null, miner, true));
                break;
            case SimFaultKind.LedgerIo:
                // The next write of the step fails at a seeded point, in the ledger log or the exchange journal.
                int point = _chaos.Next(3);
                if (_chaos.Next(2) == 0) _io.Arm((LedgerLogFaultPoint)point);
                else _io.Arm((JournalFaultPoint)point);
                break;
            case SimFaultKind.CrashRestart:
                await RestartAsync(clean: true, ct);
                break;
            case SimFaultKind.ClockJump:
                clock.Advance(TimeSpan.FromMinutes(5 + _chaos.Next(175)));
                break;
        }
    }

    // ================================================================== a step

    private async Task StepAsync(CancellationToken ct)
    {
        clock.Advance(TimeSpan.FromMinutes(StepMinutes));
        foreach (SimNode n in _nodes) n.Step = _step;
        for (int i = _timedUndo.Count - 1; i >= 0; i--)
        {
            if (_timedUndo[i].Step > _step) continue;
            _world.Site?.Simulator.SetFault(_timedUndo[i].Miner, MinerFault.None);
            _timedUndo.RemoveAt(i);
        }
        await GuardAsync(HeartbeatsAsync, ct);
        await GuardAsync(async c => await _world.Exchange.TickAsync(c), ct);
        // Faults come after the heartbeats and the exchange's tick: a restart then finds nothing due on the clock, so a
        // clean one must bring back exactly the state it left (the exchange's start ticks what is due, as the step would).
        if (_schedule.TryGetValue(_step, out var due))
            foreach (SimFaultKind kind in due) await GuardAsync(c => InjectAsync(kind, c), ct);
        // The step's paid requests first, then their captures drained: the background settler's order within a step can
        // then change no outcome (no balance is near a hold: deposits keep a floor; share moves and claims come after).
        int requests = _act.Next(0, 5);
        for (int i = 0; i < requests; i++) await InferenceRequestAsync(ct);
        await _world.DrainAsync(ct);
        if (_world.Faulted) await RestartAsync(clean: false, ct);
        if (_act.NextDouble() < 0.35) await GuardAsync(ProviderSellAsync, ct);
        if (_act.NextDouble() < 0.35) await GuardAsync(CustomerBuyAsync, ct);
        if (_act.NextDouble() < 0.08) await GuardAsync(CancelSomeOrderAsync, ct);
        if (_act.NextDouble() < 0.05) await GuardAsync(DepositAsync, ct);
        if (_act.NextDouble() < 0.05) await GuardAsync(TopUpAsync, ct);
        if (_act.NextDouble() < 0.25) await GuardAsync(ShareTradeAsync, ct);
        if (_act.NextDouble() < 0.04) await GuardAsync(TransferSharesAsync, ct);
        if (_act.NextDouble() < 0.08) await GuardAsync(ClaimAsync, ct);
        await GuardAsync(DeliverAsync, ct);
        if (options.Bug == PlantedBug.WakeEveryRack && _step >= 10) await WakeEveryRackAsync(ct);
        if (_world.Site is not null && (clock.GetUtcNow() - WholeSystemSimulation.Start).Ticks / TimeSpan.FromMinutes(SiteEveryMinutes).Ticks != _lastSiteSlot)
        {
            _lastSiteSlot = (clock.GetUtcNow() - WholeSystemSimulation.Start).Ticks / TimeSpan.FromMinutes(SiteEveryMinutes).Ticks;
            await GuardAsync(_world.StepSiteAsync, ct);
        }
        await _world.DrainAsync(ct);
        if (_world.Faulted) await RestartAsync(clean: false, ct);
    }

    private long _lastSiteSlot = -1;

    // The planted bug (test-only): a hand on the miners' API wakes every rack behind the controller's back, every step.
    private async Task WakeEveryRackAsync(CancellationToken ct)
    {
        if (_world.Site is not { } s) return;
        var options = new CgminerClientOptions { CallTimeout = TimeSpan.FromSeconds(5) };
        foreach (MinerEndpoint m in s.Driver.Miners) await new CgminerClient(m, options).WakeAsync(ct);
    }

    private static readonly bool Tracing = Environment.GetEnvironmentVariable("CG_SIM_TRACE") == "1";
    private readonly Dictionary<string, double> _trace = [];
    private void Trace(string what, long t0)
    {
        if (!Tracing) return;
        _trace[what] = _trace.GetValueOrDefault(what) + System.Diagnostics.Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
    }

    // Runs one operation; an exception is expected only when a writer stopped at an injected I/O error: the operation is
    // in doubt (it may or may not be on disk) and the process restarts from disk. Any other exception is a bug.
    private async Task GuardAsync(Func<CancellationToken, Task> op, CancellationToken ct)
    {
        long t0 = System.Diagnostics.Stopwatch.GetTimestamp();
        try { await op(ct); Trace(op.Method.Name, t0); }
        catch (Exception) when (_world.Faulted) { await RestartAsync(clean: false, ct); }
    }

    private async Task HeartbeatsAsync(CancellationToken ct)
    {
        foreach (SimNode n in _nodes)
        {
            if (!n.Reachable) continue;
            // A delaying partition lets every other heartbeat through: the router sees the node flap.
            if (n.Step < n.PartitionedUntilStep && n.PartitionDelays && _step % 2 == 1) continue;
            _world.Registry.Heartbeat(n.Id, new NodeHeartbeat(0, 0, 5));
            await _world.Exchange.HeartbeatAsync(n.Principal, ct);
        }
    }

    // ================================================================== the restart

    private async Task RestartAsync(bool clean, CancellationToken ct)
    {
        await _world.DrainAsync(ct);
        // An armed I/O fault may meet a write made while reading (the ledger's expiry pulse): then it is no clean restart.
        (byte[] Hash, Account[] Accounts, byte[] Exchange, byte[] Shares)? before = null;
        if (clean && !_world.Faulted)
        {
            try { before = await StatePartsAsync(ct); }
            catch (Exception) when (_world.Faulted) { }
        }
        await _world.DisposeAsync();
        _io.Disarm();
        _world = await OpenWorldAsync(ct);
        Restarts++;
        foreach (SimNode n in _nodes)
            if (n.Reachable) _world.Registry.Heartbeat(n.Id, new NodeHeartbeat(0, 0, 5));
        // A clean restart changes nothing: the same balances, exchange state and entitlements come back from disk.
        if (before is { } b)
        {
            var after = await StatePartsAsync(ct);
            Check(b.Hash.AsSpan().SequenceEqual(after.Hash), "restart_restores_state", "after a clean restart: " + DescribeDifference(b, after));
        }
        await VerifyAllRequestsAsync(ct);
    }

    public async ValueTask DisposeAsync()
    {
        if (_world is null) return;
        try { await _world.DisposeAsync(); }
        catch (Exception) when (Violation is not null) { } // a run that already failed reports that failure, not its teardown's
    }

    // ================================================================== set-up

    private async Task SetUpAsync(CancellationToken ct)
    {
        LedgerEngine ledger = _world.Ledger;
        var accounts = new List<Account>();
        foreach (long c in _customers) accounts.Add(ChartOfAccounts.NewAccount(AccountCode.CustomerBalance, Customer(c), Asset.Usd));
        foreach (long p in _providers)
        {
            accounts.Add(ChartOfAccounts.NewAccount(AccountCode.ProviderRevenue, ChartOfAccounts.PrincipalAccount(AccountCode.ProviderRevenue, (ulong)p), Asset.Usd));
            accounts.Add(ChartOfAccounts.NewAccount(AccountCode.ProviderCollateral, ChartOfAccounts.PrincipalAccount(AccountCode.ProviderCollateral, (ulong)p), Asset.Usd));
        }
        foreach (SimNode n in _nodes) accounts.Add(ChartOfAccounts.NewAccount(AccountCode.NodeRevenue, InferencePayments.NodeRevenueAccount((ulong)n.Principal), Asset.Usd));
        CreateAccountResult[] made = await ledger.CreateAccountsAsync(accounts.ToArray(), ct);
        Check(made.All(r => r is CreateAccountResult.Ok or CreateAccountResult.Exists), "setup", string.Join(",", made));
        foreach (long c in _customers) await FundAsync(c, CustomerFunding, "initial", ct);

        foreach (long c in _customers) await Ok(new ExchangeCommand { Kind = ExchangeCommandKind.RegisterTrader, Owner = c }, ct);
        foreach (long p in _providers)
        {
            await Ok(new ExchangeCommand
            {
                Kind = ExchangeCommandKind.RegisterProvider, Owner = p,
                Account = ChartOfAccounts.PrincipalAccount(AccountCode.ProviderRevenue, (ulong)p),
                Account2 = ChartOfAccounts.PrincipalAccount(AccountCode.ProviderCollateral, (ulong)p),
            }, ct);
            await Ok(new ExchangeCommand
            {
                Kind = ExchangeCommandKind.FundCollateral, Owner = p, Amount = Collateral,
                Account = ChartOfAccounts.SystemAccount(AccountCode.Treasury, Asset.Usd), Account2 = PrincipalLedger.FundingId((ulong)p, AccountCode.ProviderCollateral, "sim"),
            }, ct);
        }
        foreach (SimNode n in _nodes)
        {
            await Ok(new ExchangeCommand
            {
                Kind = ExchangeCommandKind.AdmitNode, Owner = ProviderOf(n), Target = n.Principal, Name = n.Id, Gpu = GpuClass.H100,
                Region = latency.Regions[n.Region], Gpus = n.Gpus,
            }, ct);
        }
        foreach (long c in _customers)
            await Ok(new ExchangeCommand { Kind = ExchangeCommandKind.Deposit, Owner = c, Account = Customer(c), Amount = TradingDeposit }, ct);
        // Two nodes issue shares; their issuers hand them out to the first four customers.
        foreach (long node in ShareNodes)
        {
            long issuer = FirstProvider + (node - FirstNode) / NodesPerProvider;
            await Ok(new ExchangeCommand { Kind = ExchangeCommandKind.ApproveIssuer, Owner = issuer }, ct);
            await Ok(ExchangeCommand.IssueShares(issuer, node, ShareSupply), ct);
            for (int h = 0; h < 4; h++) await Ok(ExchangeCommand.TransferShares(issuer, node, _customers[h], 100 + 50 * h), ct);
        }
    }

    private async Task Ok(ExchangeCommand command, CancellationToken ct)
    {
        CommandOutcome o = await _world.Exchange.SubmitAsync(command, ct);
        Check(o.Result.Ok && o.Settlement is null or CreateTransferResult.Ok, "setup", $"{command.Kind} refused: {o.Result.Error} {o.Settlement}");
    }

    private async Task FundAsync(long customer, long amount, string why, CancellationToken ct)
    {
        UInt128 id = PrincipalLedger.FundingId((ulong)customer, AccountCode.CustomerBalance, $"{why}-{_step}");
        CreateTransferResult[] r = await _world.Ledger.CreateTransfersAsync(new[]
        {
            new Transfer
            {
                Id = id, DebitAccountId = ChartOfAccounts.SystemAccount(AccountCode.Treasury, Asset.Usd), CreditAccountId = Customer(customer),
                Amount = amount, Asset = Asset.Usd.Code, Code = (ushort)TransferCode.Funding,
            },
        }, ct);
        Check(r[0] is CreateTransferResult.Ok or CreateTransferResult.Exists, "funding", $"customer {customer}: {r[0]}");
    }

    private static UInt128 Customer(long c) => InferencePayments.CustomerAccount((ulong)c);

    private static long ProviderOf(SimNode n) => FirstProvider + (n.Principal - FirstNode) / NodesPerProvider;
}
