using ComputeGrid.Core;
using ComputeGrid.Exchange.Instruments;
using ComputeGrid.Exchange.Matching;
using ComputeGrid.Exchange.StateMachine;
using ComputeGrid.Exchange.Trading;
using ComputeGrid.Ledger;

namespace ComputeGrid.Exchange.Tests.StateMachine;

/// <summary>One seeded stream: the machines, the reference, the ledger, the generator and the checks.</summary>
internal sealed partial class DifferentialStream : IDisposable
{
    private const long NsPerMinute = 60_000_000_000L, NsPerHour = 60 * NsPerMinute;
    private static readonly long[] Traders = [1, 2, 3, 4], ProviderIds = [11, 12, 13];
    private static readonly GpuClass[] Classes = [GpuClass.A100, GpuClass.H100];
    private static readonly string[] Regions = ["frankfurt", "tokyo"];
    private static readonly ListingPolicy Policy = new() { HourlyAhead = 4, DailyAhead = 2, MonthlyAhead = 1 };
    private static readonly UInt128 Treasury = 1, Nowhere = 99_999;

    private readonly int _seed;
    private readonly Random _rng;
    private readonly StateMachineOptions _options;
    private readonly ExchangeStateMachine _machine;
    private readonly ExchangeStateMachine? _replica; // every fourth stream: replay determinism
    private readonly ReferenceExchange _reference;
    private readonly LedgerStateMachine _ledger = new(accountsCapacity: 128, transfersCapacity: 1024);
    private readonly SettlementPlan _plan = new(), _replicaPlan = new();
    private readonly List<FillRecord> _fills = [], _replicaFills = [];
    private readonly List<(long Seq, bool Ok)> _settlements = [];     // ledger answers to deposits, not yet told
    private readonly HashSet<long> _settled = [];
    private readonly List<int> _seenInstruments = [];
    private readonly Dictionary<long, List<int>> _pendingHolds = [];  // buy order → ledger positions of its holds still pending
    private int _transfersScanned;
    private readonly Queue<string> _recent = new();                    // the last commands, for the failure message
    private readonly long _stepMaxNs;
    private readonly (GpuClass Gpu, string Region) _hot, _second;
    private readonly Dictionary<long, long> _collateralFunded = [];
    private long _now;
    private ulong _seq;
    private int _index;

    private readonly Dictionary<string, int>? _coverage;

    private readonly IReadOnlyList<Func<DifferentialStream, ExchangeCommand>>? _script;

    /// <summary>
    /// A stream of <paramref name="seed"/>: generated, or <paramref name="script"/>ed from <paramref name="startNs"/> (then each
    /// command is its own batch); on <paramref name="pledges"/> terms when given (else drawn from the seed).
    /// </summary>
    public DifferentialStream(int seed, Dictionary<string, int>? coverage = null, long? startNs = null, IReadOnlyList<Func<DifferentialStream, ExchangeCommand>>? script = null,
        PledgeTerms? pledges = null)
    {
        _script = script;
        _coverage = coverage;
        _seed = seed;
        _rng = new Random(seed);
        _options = new StateMachineOptions
        {
            OrdersPerBookMax = _rng.Next(4) == 0 ? 3 : 64,
            PenaltyBasisPoints = new[] { 2_000, 500, 5_000 }[_rng.Next(3)],
            Epoch = (ulong)_rng.NextInt64(1, 1L << 48),
            Pledges = pledges ?? DrawPledgeTerms(),
        };
        // Start mid-month or near a month's end (monthly forwards then deliver within the stream).
        var start = new DateTimeOffset(2026, 11, _rng.Next(2) == 0 ? 26 : 29, _rng.Next(24), _rng.Next(60), 0, TimeSpan.Zero);
        _now = startNs ?? start.ToUnixTimeMilliseconds() * 1_000_000;
        // Most streams span a few hours (hourly leases start and deliver); some a day or two (daily and monthly ones too).
        _stepMaxNs = _rng.Next(100) switch { < 40 => NsPerMinute / 3, < 88 => NsPerMinute, _ => 8 * NsPerMinute };
        // Trading concentrates on one class and region, and a second one (the other class, or the other region):
        // books cross often, and a stream opens few books.
        // (A100 first: its band has half the H100's ticks, and a book's ladder is allocated for every tick of its band.)
        _hot = (_rng.Next(4) == 0 ? GpuClass.H100 : GpuClass.A100, Regions[_rng.Next(Regions.Length)]);
        _second = _rng.Next(3) == 0 ? (Classes.First(g => g != _hot.Gpu), _hot.Region) : (_hot.Gpu, Regions.First(r => r != _hot.Region));
        _machine = new ExchangeStateMachine(Registry(), _options);
        if (seed % 4 == 0) _replica = new ExchangeStateMachine(Registry(), _options);
        _reference = new ReferenceExchange(Registry(), _options.OrdersPerBookMax, _options.PenaltyBasisPoints, _options.Epoch, _options.Pledges);
        SetUpLedger();
        _setup = SetupScript();
    }

    private readonly Queue<Func<ExchangeCommand>> _setup;

    /// <summary>A new, empty registry over the streams' schedule.</summary>
    public static InstrumentRegistry Registry() => new(new InstrumentSchedule(Classes, Regions, Policy));

    /// <summary>The state machine's settings of this stream.</summary>
    public StateMachineOptions Options => _options;

    /// <summary>When set, every command applied is added to it (with its sequence and time): a stream to apply elsewhere.</summary>
    public List<ExchangeCommand>? Recorded { get; init; }

    public void Dispose() => _ledger.Dispose();

    /// <summary>For scripts and their assertions.</summary>
    public ExchangeStateMachine Machine => _machine;

    public ReferenceExchange Reference => _reference;

    /// <summary>The sequence number of the command a script is making (it names the node or order the command creates).</summary>
    public long Seq => (long)_seq;

    /// <summary>The ledger's answer to the oldest deposit not yet told, as the command that tells it.</summary>
    public ExchangeCommand SettleOldest()
    {
        (long seq, bool ok) = _settlements[0];
        _settlements.RemoveAt(0);
        return new ExchangeCommand { Kind = ExchangeCommandKind.TransferSettled, Target = seq, Ok = ok };
    }

    public static UInt128 SourceOf(long owner) => Source(owner);

    public static UInt128 RevenueOf(long provider) => Revenue(provider);

    public static UInt128 CollateralOf(long provider) => Collateral(provider);

    private static UInt128 Source(long owner) => (UInt128)(10_000 + owner);
    private static UInt128 Poor(long owner) => (UInt128)(20_000 + owner);
    private static UInt128 Revenue(long provider) => (UInt128)(30_000 + provider);
    private static UInt128 Collateral(long provider) => (UInt128)(40_000 + provider);

    /// <summary>The world outside the exchange, in the ledger and the reference alike: a treasury, the escrow, each owner's accounts funded.</summary>
    private void SetUpLedger()
    {
        var accounts = new List<Account>
        {
            new() { Id = Treasury, Asset = Asset.Usd.Code, Code = 1 },
            ChartOfAccounts.NewAccount(AccountCode.ExchangeEscrow, ExchangeStateMachine.EscrowAccount, Asset.Usd),
        };
        var funding = new List<Transfer>();
        void Open(UInt128 id, ushort code, long funds)
        {
            accounts.Add(new Account { Id = id, Asset = Asset.Usd.Code, Code = code, Flags = AccountFlags.DebitsMustNotExceedCredits });
            if (funds > 0) funding.Add(new Transfer { Id = (UInt128)(funding.Count + 1), DebitAccountId = Treasury, CreditAccountId = id, Amount = funds, Asset = Asset.Usd.Code, Code = 1 });
        }
        foreach (long owner in Traders.Concat(ProviderIds))
        {
            Open(Source(owner), 2, _rng.Next(8) == 0 ? 50_000_000 : 40_000_000_000);
            Open(Poor(owner), 2, 3_000_000);
        }
        foreach (long p in ProviderIds)
        {
            Open(Revenue(p), 3, 0);
            long collateral = new long[] { 0, 2_000_000, 50_000_000, 500_000_000 }[_rng.Next(4)];
            _collateralFunded[p] = collateral;
            Open(Collateral(p), 4, collateral);
        }
        var ar = new CreateAccountResult[accounts.Count];
        _ledger.CreateAccounts(accounts.ToArray(), _ledger.LastTimestamp + 1, ar);
        Require(ar.All(r => r == CreateAccountResult.Ok), () => "setup accounts: " + string.Join(",", ar));
        var tr = new CreateTransferResult[funding.Count];
        _ledger.CreateTransfers(funding.ToArray(), _ledger.LastTimestamp + 1, tr);
        Require(tr.All(r => r == CreateTransferResult.Ok), () => "setup funding: " + string.Join(",", tr));
        foreach (Account a in accounts) _reference.CreateAccount(a.Id, a.Flags);
        foreach (Transfer t in funding) _reference.Post(t.DebitAccountId, t.CreditAccountId, t.Amount);
        _transfersScanned = _ledger.TransferCount;
    }

    // ================================================================== the run

    public int Run()
    {
        int length = _script?.Count ?? _rng.Next(100, 301);
        int batchEnd = 0;
        try
        {
            for (_index = 0; _index < length; _index++)
            {
                ExchangeCommand c = Next();
                Step(in c);
                if (_index >= batchEnd || _index == length - 1 || _script is not null)
                {
                    EndBatch();
                    batchEnd = _index + (Chance(20) ? _rng.Next(1, 6) : _rng.Next(1, 51));
                }
            }
        }
        catch (Exception e)
        {
            string replay = _script is null
                ? $"replay with ExchangeDifferentialTests.RunStream({_seed}) or COMPUTEGRID_EXCHANGE_SEED={_seed}"
                : "a scripted stream";
            throw new Xunit.Sdk.XunitException(
                $"Stream seed {_seed} failed at command index {_index} (seq {_seq}); {replay}.\n{e.GetType().Name}: {e.Message}\n"
                + $"Last commands:\n{string.Join("\n", _recent)}\n{e.StackTrace}");
        }
        if (_coverage is not null)
        {
            void Count(string key, int n) => _coverage[key] = _coverage.GetValueOrDefault(key) + n;
            foreach (LeaseView l in _reference.Leases.Where(l => l.Parent != 0)) Count($"resold lease {l.Status}", 1);
            foreach (LeaseView l in _reference.Leases)
                Count($"lease {l.Status}{(l.Penalty > 0 ? " with penalty" : "")}{(l.PenaltyShortfall > 0 ? " with shortfall" : "")}{(l.Paid > 0 && l.Status != LeaseStatus.Completed ? " part-paid" : "")}", 1);
            foreach ((OrderEndReason reason, _) in _reference.Ended.Values) Count($"order ended: {reason}", 1);
            Count("leases failed at their start", _reference.FailedAtStart);
            foreach (ShareNodeView n in _reference.ShareNodes)
            {
                Count("share nodes", 1);
                if (_reference.PoolBalance(n.Node) > 0) Count("share pools paid", 1);
                if (_reference.Holdings().Count(h => h.Node == n.Node && h.Total > 0) > 1) Count("share nodes with several holders", 1);
            }
            foreach (string outcome in _reference.LoanOutcomes()) Count(outcome, 1);
        }
        return length;
    }

    private static void Require(bool condition, Func<string> message)
    {
        if (!condition) throw new InvalidOperationException(message());
    }

    private static string Show(in CommandResult r) =>
        $"{r.Error} book {r.BookReject} {r.Status} {r.Detail}({r.DetailValue}) subject {r.Subject} remaining {r.Remaining} cost {r.Cost}";

    private static string Show(ReferenceResult r) =>
        $"{r.Error} book {r.BookReject} {r.Status} {r.Detail}({r.DetailValue}) subject {r.Subject} remaining {r.Remaining} cost {r.Cost}";

    /// <summary>One command to both machines and the reference; results and fills compared.</summary>
    private void Step(in ExchangeCommand c)
    {
        int before = _fills.Count, replicaBefore = _replicaFills.Count, spansBefore = _plan.Commands.Length;
        CommandResult r = _machine.Apply(in c, _plan, _fills);
        Recorded?.Add(c);
        CommandResult r2 = _replica is null ? r : _replica.Apply(in c, _replicaPlan, _replicaFills);
        bool onShares = _coverage is not null && OnShares(in c); // asked of the reference before it applies
        ReferenceResult expected = _reference.Apply(in c);
        ExchangeCommand shown = c;
        if (_recent.Count == 16) _recent.Dequeue();
        _recent.Enqueue($"  [{_index}] {Describe(in shown)} -> {Show(in r)}; {r.Fills} fills");

        if (_coverage is not null)
        {
            // Commands on share books are counted twice: as any command, and as share commands.
            void Count(string key)
            {
                _coverage[key] = _coverage.GetValueOrDefault(key) + 1;
                if (onShares) _coverage["share " + key] = _coverage.GetValueOrDefault("share " + key) + 1;
            }
            Count($"{c.Kind} {r.Error} {(r.BookReject != RejectReason.None ? r.BookReject : r.Detail != RefusalDetail.None ? r.Detail : r.Status)}");
            if (r.Fills > 0) Count($"{c.Kind} with fills");
            if (_plan.Commands.Length > spansBefore + 1 || (!r.Ok && _plan.Commands.Length > spansBefore)) Count($"{c.Kind} after an expiry");
        }
        Require(r.Equals(r2), () => $"replica disagrees: {Show(in r)} vs {Show(in r2)}");
        Require(_replica is null || _fills.Skip(before).SequenceEqual(_replicaFills.Skip(replicaBefore)), () => "replica's fills differ");
        Require(r.Error == expected.Error && r.BookReject == expected.BookReject && r.Detail == expected.Detail && r.DetailValue == expected.DetailValue
                && r.Subject == expected.Subject && r.Remaining == expected.Remaining && r.Cost == expected.Cost,
            () => $"result {Show(in r)}, reference {Show(expected)}");
        if (c.Kind is ExchangeCommandKind.Place or ExchangeCommandKind.Cancel or ExchangeCommandKind.Replace or ExchangeCommandKind.Resell or ExchangeCommandKind.Block
            or ExchangeCommandKind.Deposit
            or ExchangeCommandKind.FundCollateral or ExchangeCommandKind.TransferSettled || !r.Ok)
            Require(r.Status == expected.Status, () => $"status {r.Status}, reference {expected.Status}");
        Require(r.FirstFill == before && r.Fills == _fills.Count - before, () => "the result's fill span is not the command's fills");
        List<FillRecord> fills = _fills.GetRange(before, r.Fills);
        Require(fills.SequenceEqual(expected.Fills),
            () => $"fills\n    {string.Join("\n    ", fills)}\nreference\n    {string.Join("\n    ", expected.Fills)}");
        if (!r.Ok)
        {
            // A refused command plans nothing of its own (only the expiry of the book it named, which time caused).
            for (int s = spansBefore; s < _plan.Commands.Length; s++)
            {
                SettlementPlan.CommandSpan span = _plan.Commands[s];
                Require(span.Accounts == 0, () => "a refused command planned accounts");
                foreach (Transfer t in _plan.Transfers.Slice(span.FirstTransfer, span.Transfers))
                    Require((t.Flags & TransferFlags.VoidPendingTransfer) != 0, () => $"a refused command planned {t.Flags} transfer {t.Id}");
            }
        }
    }

    private static string Describe(in ExchangeCommand c) => c.Kind switch
    {
        ExchangeCommandKind.Place => $"#{c.Seq} t={c.Time} Place owner {c.Owner} instr {c.Instrument} {c.Side} {c.Type} {c.TimeInForce}{(c.PostOnly ? " post-only" : "")} {c.Price}x{c.Quantity} exp {c.ExpiresAt}",
        ExchangeCommandKind.Cancel or ExchangeCommandKind.Replace => $"#{c.Seq} t={c.Time} {c.Kind} owner {c.Owner} order {c.Target} {c.Price}x{c.Quantity}",
        ExchangeCommandKind.Resell => $"#{c.Seq} t={c.Time} Resell owner {c.Owner} lease {c.Target} instr {c.Instrument} {c.TimeInForce} {c.Price}x{c.Quantity}",
        ExchangeCommandKind.Block => $"#{c.Seq} t={c.Time} Block owner {c.Owner} {c.Gpus} {c.Gpu} {c.Region} [{c.From}, {c.To}) limit {c.Price}",
        ExchangeCommandKind.Deposit or ExchangeCommandKind.FundCollateral or ExchangeCommandKind.Withdraw => $"#{c.Seq} t={c.Time} {c.Kind} owner {c.Owner} {c.Amount} account {c.Account}",
        ExchangeCommandKind.TransferSettled => $"#{c.Seq} t={c.Time} TransferSettled {c.Target} ok={c.Ok}",
        ExchangeCommandKind.Deliver => $"#{c.Seq} t={c.Time} Deliver owner {c.Owner} lease {c.Target} [{c.From}, {c.To})",
        ExchangeCommandKind.AdmitNode => $"#{c.Seq} t={c.Time} AdmitNode owner {c.Owner} {c.Gpus} {c.Gpu} {c.Region} '{c.Name}'",
        ExchangeCommandKind.RegisterProvider => $"#{c.Seq} t={c.Time} RegisterProvider {c.Owner} {c.Account}/{c.Account2} collateral {c.Amount}",
        ExchangeCommandKind.IssueShares => $"#{c.Seq} t={c.Time} IssueShares owner {c.Owner} node {c.Target} supply {c.Quantity}",
        ExchangeCommandKind.TransferShares => $"#{c.Seq} t={c.Time} TransferShares owner {c.Owner} node {c.Target} to {c.To} shares {c.Quantity}",
        ExchangeCommandKind.Pledge => $"#{c.Seq} t={c.Time} Pledge owner {c.Owner} node {c.Target} shares {c.Quantity} loan {c.Amount}",
        ExchangeCommandKind.Repay => $"#{c.Seq} t={c.Time} Repay owner {c.Owner} loan {c.Target} amount {c.Amount}",
        _ => $"#{c.Seq} t={c.Time} {c.Kind} owner {c.Owner} target {c.Target} from {c.From}",
    };

    // ================================================================== batches: ledger, checks, determinism

    private void EndBatch()
    {
        ComparePlans();
        CheckIds();
        ApplyToLedger();
        CheckState();
        if (_replica is not null) Require(_machine.StateHash().AsSpan().SequenceEqual(_replica.StateHash()), () => "the replica's state hash differs");
        _plan.Clear();
        _replicaPlan.Clear();
        _fills.Clear();
        _replicaFills.Clear();
    }

    private void ComparePlans()
    {
        if (_replica is null) return;
        Require(_plan.Accounts.SequenceEqual(_replicaPlan.Accounts), () => "replica planned other accounts");
        Require(_plan.Transfers.SequenceEqual(_replicaPlan.Transfers), () => "replica planned other transfers");
        Require(_plan.Commands.SequenceEqual(_replicaPlan.Commands), () => "replica's command spans differ");
        Require(_plan.Awaiting.SequenceEqual(_replicaPlan.Awaiting), () => "replica awaits other transfers");
    }

    /// <summary>Transfer ids are TransferId(Exchange, epoch, seq &lt;&lt; 16 | n), n = 1, 2, … per command; each command's transfers one chain.</summary>
    private void CheckIds()
    {
        var awaited = new HashSet<int>();
        foreach ((int transfer, _) in _plan.Awaiting) awaited.Add(transfer);
        ulong lastSeq = 0, n = 0;
        foreach (SettlementPlan.CommandSpan span in _plan.Commands)
        {
            if (span.Seq != lastSeq) n = 0;
            lastSeq = span.Seq;
            for (int i = span.FirstTransfer; i < span.FirstTransfer + span.Transfers; i++)
            {
                Transfer t = _plan.Transfers[i];
                UInt128 id = ChartOfAccounts.TransferId(TransferSpace.Exchange, _options.Epoch, ExchangeStateMachine.IdOf(span.Seq, (ulong)++n));
                Require(t.Id == id, () => $"transfer {i} of command {span.Seq} has id {t.Id}, not the command's transfer {n}");
                bool last = i == span.FirstTransfer + span.Transfers - 1;
                bool linked = (t.Flags & TransferFlags.Linked) != 0;
                Require(last || awaited.Contains(i) ? !linked : linked, () => $"transfer {i} of command {span.Seq}: linked {linked}");
            }
        }
    }

    private void ApplyToLedger()
    {
        if (_plan.Accounts.Length > 0)
        {
            var results = new CreateAccountResult[_plan.Accounts.Length];
            _ledger.CreateAccounts(_plan.Accounts, _ledger.LastTimestamp + 1, results);
            for (int i = 0; i < results.Length; i++)
            {
                CreateAccountResult r = results[i];
                Require(r is CreateAccountResult.Ok or CreateAccountResult.Exists, () => $"account {_plan.Accounts[i].Id}: {r}");
            }
        }
        if (_plan.Transfers.Length == 0) return;
        Require(_plan.Transfers.Length <= LedgerLimits.BatchEventsMax, () => "a batch's plan exceeds a ledger batch");
        var tr = new CreateTransferResult[_plan.Transfers.Length];
        _ledger.CreateTransfers(_plan.Transfers, _ledger.LastTimestamp + 1, tr);
        var awaited = new Dictionary<int, ulong>();
        foreach ((int transfer, ulong seq) in _plan.Awaiting) awaited[transfer] = seq;
        for (int i = 0; i < tr.Length; i++)
        {
            CreateTransferResult r = tr[i];
            if (awaited.TryGetValue(i, out ulong seq))
            {
                // The ledger's answer to a deposit goes back to the exchange as a command, some time later.
                bool ok = r == CreateTransferResult.Ok;
                Require(ok == _reference.DepositTaken((long)seq), () => $"deposit {seq}: the ledger answered {r}, the reference expected {(ok ? "a refusal" : "Ok")}");
                _settlements.Add(((long)seq, ok));
            }
            else Require(r == CreateTransferResult.Ok, () => $"transfer {i} ({_plan.Transfers[i].Flags}, code {_plan.Transfers[i].Code}, {_plan.Transfers[i].Amount}) failed in the ledger: {r}"
                + $"; the cause: {Causes(tr, awaited)}");
        }
    }

    /// <summary>The transfers the ledger refused on their own (not for a linked one), with the commands that planned them: what a chain failed on.</summary>
    private string Causes(CreateTransferResult[] results, Dictionary<int, ulong> awaited)
    {
        var causes = new List<string>();
        for (int k = 0; k < results.Length; k++)
        {
            if (results[k] is CreateTransferResult.Ok or CreateTransferResult.LinkedEventFailed || awaited.ContainsKey(k)) continue;
            ulong seq = _plan.Commands.ToArray().First(s => k >= s.FirstTransfer && k < s.FirstTransfer + s.Transfers).Seq;
            Transfer t = _plan.Transfers[k];
            causes.Add($"transfer {k} of command {seq} ({t.Flags}, code {t.Code}, {t.Amount}): {results[k]}");
        }
        return string.Join(", ", causes);
    }

    private void CheckState()
    {
        _ledger.AssertInvariants();
        _machine.CheckInvariants();

        // Every account of the ledger, posted and pending, is the reference's.
        IReadOnlyDictionary<UInt128, Balances> expected = _reference.Accounts();
        Require(_ledger.AccountCount == expected.Count, () => $"the ledger has {_ledger.AccountCount} accounts, the reference {expected.Count}");
        for (int i = 0; i < _ledger.AccountCount; i++)
        {
            Account a = _ledger.AccountAt(i);
            var actual = new Balances(a.Asset, a.DebitsPending, a.DebitsPosted, a.CreditsPending, a.CreditsPosted);
            Require(expected.TryGetValue(a.Id, out Balances b) && b == actual, () => $"account {a.Id} (code {a.Code}): ledger {actual}, reference {b}");
        }

        // Open orders as the reference has them; the escrow's pending credits are their holds, each limit × remaining.
        IReadOnlyList<OpenOrder> open = _machine.OpenOrders(), expectedOpen = _reference.OpenOrders();
        Require(open.SequenceEqual(expectedOpen), () => $"open orders\n    {string.Join("\n    ", open)}\nreference\n    {string.Join("\n    ", expectedOpen)}");
        long holds = open.Where(o => o.Side == Side.Buy).Sum(o => o.HoldAmount);
        Require(open.All(o => o.Side == Side.Sell || o.HoldAmount == o.Price * o.Remaining), () => "a buy's hold is not limit × remaining");
        Require(_ledger.TryGetAccount(ExchangeStateMachine.EscrowAccount, out Account escrow) && escrow.CreditsPending == holds,
            () => $"escrow pending {escrow.CreditsPending}, open buy holds {holds}");
        int scanFrom = _transfersScanned;
        CheckHolds(open);
        CheckShareHolds(open, scanFrom);
        CheckShares(open);
        CheckLoans();
        CheckLeasePledges();

        // The mirrors.
        foreach (long owner in Traders.Concat(ProviderIds).Append(99))
        {
            Require(_machine.Available(owner) == _reference.Available(owner), () => $"available of {owner}: {_machine.Available(owner)}, reference {_reference.Available(owner)}");
            Require(_machine.CollateralAvailable(owner) == _reference.CollateralAvailable(owner),
                () => $"free collateral of {owner}: {_machine.CollateralAvailable(owner)}, reference {_reference.CollateralAvailable(owner)}");
            if (_machine.Available(owner) is long available)
            {
                // The mirror never promises more than the ledger holds.
                _ledger.TryGetAccount(ExchangeStateMachine.TradingAccount(owner), out Account trading);
                Require(available <= trading.AvailableCredit, () => $"{owner}'s mirror {available} exceeds the ledger's {trading.AvailableCredit}");
            }
        }
        Require(_machine.PendingDeposits.SequenceEqual(_reference.PendingDeposits), () => "pending deposits differ");

        // Leases, nodes, books, and why orders ended.
        IReadOnlyList<LeaseView> leases = _machine.Leases(), expectedLeases = _reference.Leases;
        Require(leases.Count == expectedLeases.Count, () => $"{leases.Count} leases, reference {expectedLeases.Count}");
        for (int i = 0; i < leases.Count; i++)
        {
            string a = Show(leases[i]), b = Show(expectedLeases[i]);
            Require(a == b, () => $"lease\n    {a}\nreference\n    {b}");
        }
        Require(_machine.Nodes.SequenceEqual(_reference.Nodes), () => "nodes differ");
        foreach (int instrument in _reference.Books.Concat(open.Select(o => o.Instrument)).Distinct())
            Require(_machine.Resting(instrument).SequenceEqual(_reference.Resting(instrument)), () => $"book {instrument} differs");
        foreach ((long order, (OrderEndReason Reason, long Value) end) in _reference.Ended)
            Require(_machine.EndOf(order) == end, () => $"order {order} ended {_machine.EndOf(order)}, reference {end}");
    }

    private static string Show(LeaseView l) =>
        $"{l.Id} i{l.Instrument} buyer {l.Buyer} provider {l.Provider} payee {l.Payee} [{l.Start},{l.End}) {l.Gpus}x{l.Price}={l.Notional} escrow {l.EscrowAccount} "
        + $"nodes [{string.Join(",", l.Nodes)}] {l.Status} delivered {l.DeliveredGpuHours} paid {l.Paid} refunded {l.Refunded} penalty {l.Penalty} "
        + $"shortfall {l.PenaltyShortfall} reserve {l.PenaltyReserve} parent {l.Parent}";

    /// <summary>Each open buy has exactly one hold pending in the ledger, of limit × remaining; no other order has one.</summary>
    private void CheckHolds(IReadOnlyList<OpenOrder> open)
    {
        for (; _transfersScanned < _ledger.TransferCount; _transfersScanned++)
        {
            Transfer t = _ledger.TransferAt(_transfersScanned);
            if (t.Code != (ushort)TransferCode.ExchangeHold || (t.Flags & TransferFlags.Pending) == 0) continue;
            if (!_pendingHolds.TryGetValue((long)t.UserData64, out List<int>? list)) _pendingHolds[(long)t.UserData64] = list = [];
            list.Add(_transfersScanned);
        }
        foreach (List<int> list in _pendingHolds.Values) list.RemoveAll(i => _ledger.StatusAt(i) != PendingStatus.Pending);
        var buys = open.Where(o => o.Side == Side.Buy).ToDictionary(o => o.OrderId);
        foreach ((long order, List<int> list) in _pendingHolds)
        {
            if (buys.TryGetValue(order, out OpenOrder? o))
                Require(list.Count == 1 && _ledger.TransferAt(list[0]).Amount == o.Price * o.Remaining,
                    () => $"buy {order}: {list.Count} holds pending ({string.Join(",", list.Select(i => _ledger.TransferAt(i).Amount))}), expected one of {o.Price * o.Remaining}");
            else Require(list.Count == 0, () => $"order {order} is not an open buy but has {list.Count} holds pending");
        }
        foreach (OpenOrder o in buys.Values) Require(_pendingHolds.ContainsKey(o.OrderId), () => $"buy {o.OrderId} has no hold in the ledger");
    }
}
