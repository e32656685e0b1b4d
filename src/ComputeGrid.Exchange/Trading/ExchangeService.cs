using System.Text.Json;
using System.Text.Json.Nodes;
using ComputeGrid.Core;
using ComputeGrid.Exchange.Instruments;
using ComputeGrid.Exchange.MarketData;
using ComputeGrid.Exchange.Matching;
using ComputeGrid.Ledger;

namespace ComputeGrid.Exchange.Trading;

/// <summary>Settings of the exchange.</summary>
public sealed record ExchangeOptions
{
    /// <summary>Most resting orders per instrument book (the book's pool is allocated when it opens).</summary>
    public int OrdersPerBookMax { get; init; } = 4096;

    /// <summary>Penalty a failing provider pays the buyer, in basis points of the undelivered notional.</summary>
    public int PenaltyBasisPoints { get; init; } = 2_000;

    /// <summary>A node with active leases that sends no heartbeat for this long is treated as down.</summary>
    public TimeSpan HeartbeatTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Trades kept per instrument on the tape.</summary>
    public int TapeTradesMax { get; init; } = 64;

    /// <summary>The exchange journal's file; null keeps the exchange in memory (a restart loses its orders and leases).</summary>
    public string? JournalPath { get; init; }
}

/// <summary>
/// The compute exchange: instruments, one <see cref="OrderBook"/> per instrument, and the money and
/// capacity around it. Every money movement is a ledger transfer; the pipeline per command is, in order:
/// <list type="number">
/// <item>Pre-trade checks: the instrument trades now; a buy holds its maximum notional in the ledger (a pending
///   transfer to the exchange escrow); a sell is backed by free registered capacity (or lease time, for resale),
///   which is reserved for the order.</item>
/// <item>Matching in the instrument's book.</item>
/// <item>Settlement: each trade creates a lease on named nodes; the buyer's hold is posted for what it bought
///   (the escrow passes it to the lease's own escrow account) and re-held for what still rests, in one linked
///   chain; cancels, expiries and rejects release holds and capacity.</item>
/// </list>
/// Commands run one at a time (a single gate), so the books stay single-threaded and deterministic.
/// Invariants (checked by <see cref="CheckInvariantsAsync"/>): the escrow's pending credits equal the sum
/// of the holds of open buy orders, and each open buy order's hold equals its limit × remaining quantity.
/// </summary>
public sealed partial class ExchangeService : IDisposable
{
    // Ledger codes used by the exchange, from the one chart of accounts.
    private const ushort HoldCode = (ushort)TransferCode.ExchangeHold, LeaseFundingCode = (ushort)TransferCode.LeaseFunding,
        DeliveryPaymentCode = (ushort)TransferCode.DeliveryPayment, RefundCode = (ushort)TransferCode.Refund, PenaltyCode = (ushort)TransferCode.Penalty;

    /// <summary>The exchange's order escrow account: holds of open buy orders are pending credits here.</summary>
    public static readonly UInt128 EscrowAccount = ChartOfAccounts.SystemAccount(AccountCode.ExchangeEscrow, Asset.Usd);

    private readonly LedgerEngine _ledger;
    private readonly InstrumentRegistry _instruments;
    private readonly TimeProvider _time;
    private readonly ExchangeOptions _options;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly Dictionary<int, OrderBook> _books = new();
    private readonly Dictionary<long, OrderState> _orders = new();
    private readonly Dictionary<long, UInt128> _traders = new();
    private readonly Dictionary<long, Provider> _providers = new();
    private readonly Dictionary<long, Node> _nodes = new();
    private readonly Dictionary<long, Lease> _leases = new();
    // Indexes for listings a page at a time, so no listing sorts or scans under the gate: open order ids (in order, and
    // per owner), and lease ids per participant (leases are never removed and their ids only grow, so lists suffice).
    private readonly SortedSet<long> _openOrderIds = new();
    private readonly Dictionary<long, SortedSet<long>> _openOrdersByOwner = new();
    private readonly List<long> _leaseIds = new();
    private readonly Dictionary<long, List<long>> _leasesByParticipant = new();
    private readonly Dictionary<(long Node, long Hour), int> _leasedGpus = new();
    private readonly Dictionary<(long Provider, GpuClass Gpu, string Region, long Hour), int> _committedGpus = new();
    private long _nextOrderId, _nextLeaseId, _nextNodeId, _nextTransfer, _tradeSequence;
    private ulong _runEpoch;
    private readonly ExchangeJournal? _journal;
    private long _journalSeq;
    private long? _commandNow;
    private long _lastCommandNow;
    private long _lastPrune;
    private readonly HashSet<int> _tradedInstruments = new(); // instruments with market data to forget one day
    private JsonArray? _recording;        // ledger answers of the running command, for its "done" record
    private Queue<JsonNode?>? _replay;     // recorded ledger answers fed back during a replay
    private bool _recovering;              // re-running a command the journal never saw finish

    /// <summary>Journal serialization: fields of ledger structs, enums as numbers.</summary>
    internal static readonly JsonSerializerOptions JournalJson = new() { IncludeFields = true };

    /// <summary>Trades, candles and the price index, fed by every fill.</summary>
    public MarketDataHub MarketData { get; }

    /// <summary>Raised (under the exchange's gate) for every trade, for live feeds.</summary>
    public event Action<Trade>? TradeExecuted;

    private sealed class OrderState
    {
        public required long Id;
        public required long Owner;
        public required Instrument Instrument;
        public required Side Side;
        public required long Limit;          // for the hold: the limit price, or the band's maximum for market buys
        public long Remaining;
        public UInt128 HoldId;               // the open pending transfer of a buy order
        public long HoldAmount;
        public long? ResoldLease;            // a sell backed by a lease (resale) instead of provider capacity
    }

    public ExchangeService(LedgerEngine ledger, InstrumentRegistry instruments, TimeProvider time, ExchangeOptions? options = null)
    {
        _ledger = ledger;
        _instruments = instruments;
        _time = time;
        _options = options ?? new ExchangeOptions();
        long epochMs = Clock.UnixNanoseconds(time) / 1_000_000; // read once: the journal and the ids must agree
        if (_options.JournalPath is not null)
        {
            _journal = new ExchangeJournal(_options.JournalPath);
            // The first record fixes the run epoch that all ledger ids carry: replays must rebuild the same ids.
            if (_journal.Recovered.Count == 0) _journal.Append(new JournalRecord(0, true, "epoch", epochMs, null, null));
            else epochMs = _journal.Recovered[0].Timestamp;
        }
        _runEpoch = (ulong)epochMs & 0xFFFF_FFFF_FFFF;
        // The index counts hourly spot and daily forwards (prices per GPU-hour of near-term delivery); monthly
        // forwards carry term premia that would blur "what compute costs now".
        MarketData = new MarketDataHub(id => _instruments.TryGet(id, out var i) && i.Kind != DeliveryKind.MonthlyForward ? GpuClasses.Code(i.Gpu) : null,
            new MarketDataOptions { MaxInstruments = 8192, TradesPerInstrument = _options.TapeTradesMax });
    }

    /// <summary>
    /// Creates the exchange's ledger accounts (idempotent), replays the journal (books, orders, leases and nodes
    /// come back exactly as they were), releases holds that belong to no open order, and lists the instruments
    /// trading now.
    /// </summary>
    public async Task StartAsync(CancellationToken ct = default)
    {
        var r = await _ledger.CreateAccountsAsync(new[] { ChartOfAccounts.NewAccount(AccountCode.ExchangeEscrow, EscrowAccount, Asset.Usd) }, ct);
        if (r[0] is not (CreateAccountResult.Ok or CreateAccountResult.Exists)) throw new InvalidOperationException($"Cannot create the exchange escrow account: {r[0]}.");
        await _gate.WaitAsync(ct);
        try
        {
            Replayed = await ReplayJournalAsync(ct);
            // Heartbeats are not journaled: after a restart every node gets a full timeout to check in again.
            long now = Clock.UnixNanoseconds(_time);
            foreach (var n in _nodes.Values) n.LastHeartbeat = Math.Max(n.LastHeartbeat, now);
        }
        finally { _gate.Release(); }
        ReleasedOrphanHolds = await CommandAsync("release-holds", new JsonObject(), () => ReleaseOrphanHoldsAsync(ct), ct);
        await TickAsync(ct);
    }

    /// <summary>Closes the journal.</summary>
    public void Dispose()
    {
        _gate.Wait();
        try { _journal?.Dispose(); }
        finally { _gate.Release(); }
    }

    /// <summary>How many journal commands <see cref="StartAsync"/> replayed.</summary>
    public int Replayed { get; private set; }

    /// <summary>How many holds of a previous run <see cref="StartAsync"/> found without an order and voided.</summary>
    public int ReleasedOrphanHolds { get; private set; }

    /// <summary>
    /// Voids every hold pending on the escrow that no open order owns: holds of a run without a journal (orders
    /// lived in memory only), or of a command that failed half-way. Afterwards holds == open orders again.
    /// </summary>
    private async Task<int> ReleaseOrphanHoldsAsync(CancellationToken ct)
    {
        var owned = _orders.Values.Where(o => o.Side == Side.Buy).Select(o => o.HoldId).ToHashSet();
        var pendingIds = new List<UInt128>();
        long before = long.MaxValue;
        while (true)
        {
            var page = await LedgerHistoryAsync(EscrowAccount, before, LedgerLimits.HistoryLimitMax, ct);
            if (page is null || page.Length == 0) break;
            var withStatus = await LedgerLookupTransfersAsync(page.Where(t => (t.Flags & TransferFlags.Pending) != 0).Select(t => t.Id).ToArray(), ct);
            pendingIds.AddRange(withStatus.Where(x => x.Status == PendingStatus.Pending && !owned.Contains(x.Transfer.Id)).Select(x => x.Transfer.Id));
            before = page[^1].Timestamp;
            if (page.Length < LedgerLimits.HistoryLimitMax) break;
        }
        foreach (var chunk in pendingIds.Chunk(LedgerLimits.BatchEventsMax))
        {
            var voids = chunk.Select(id => new Transfer { Id = NextTransferId(), PendingId = id, Flags = TransferFlags.VoidPendingTransfer }).ToArray();
            var vr = await LedgerTransfersAsync(voids, ct);
            if (vr.Any(x => x is not (CreateTransferResult.Ok or CreateTransferResult.Exists or CreateTransferResult.PendingTransferAlreadyVoided or CreateTransferResult.PendingTransferExpired)))
                throw new InvalidOperationException("Cannot release holds of the previous run: " + string.Join(",", vr.Distinct()));
        }
        return pendingIds.Count;
    }

    // Inside a command, every reading of the clock is the command's own timestamp (recorded in the journal, so a
    // replay sees the same time); outside one, it is the clock.
    private long Now => _commandNow ?? Clock.UnixNanoseconds(_time);

    // ================================================================== journal

    /// <summary>
    /// Runs one command under the gate, journaled: a "start" record (kind, arguments, timestamp) before it, a
    /// "done" record with every ledger answer after it. A command that throws leaves no "done": the next start
    /// runs it again.
    /// </summary>
    private async Task<T> CommandAsync<T>(string kind, JsonObject args, Func<Task<T>> body, CancellationToken ct)
    {
        await _gate.WaitAsync(ct);
        try
        {
            long seq = ++_journalSeq;
            // Command time never goes backwards, even if the system clock is stepped back: candles, the index and
            // expiries all rely on it.
            _commandNow = Math.Max(Clock.UnixNanoseconds(_time), _lastCommandNow);
            _lastCommandNow = _commandNow.Value;
            _journal?.Append(new JournalRecord(seq, false, kind, _commandNow.Value, args, null));
            _recording = _journal is null ? null : new JsonArray();
            var result = await body();
            _journal?.Append(new JournalRecord(seq, true, kind, _commandNow.Value, null, _recording));
            return result;
        }
        finally
        {
            _commandNow = null;
            _recording = null;
            _gate.Release();
        }
    }

    /// <summary>Replays the journal (under the gate): finished commands with their recorded ledger answers, an unfinished last one live.</summary>
    private async Task<int> ReplayJournalAsync(CancellationToken ct)
    {
        if (_journal is null) return 0;
        var done = _journal.Recovered.Where(r => r.Done && r.Kind != "epoch").ToDictionary(r => r.Seq);
        int count = 0;
        foreach (var start in _journal.Recovered.Where(r => !r.Done))
        {
            _journalSeq = start.Seq;
            _commandNow = start.Timestamp;
            _lastCommandNow = Math.Max(_lastCommandNow, start.Timestamp);
            try
            {
                if (done.TryGetValue(start.Seq, out var d))
                {
                    _replay = new Queue<JsonNode?>(d.Ledger ?? new JsonArray());
                    await DispatchAsync(start.Kind, start.Args?.AsObject() ?? new JsonObject(), ct);
                    if (_replay.Count != 0) throw new InvalidDataException($"Journal command {start.Seq} ({start.Kind}) replayed with {_replay.Count} ledger answers left over.");
                }
                else
                {
                    // It crashed in the middle: run it again against the ledger; what it already did there answers "exists".
                    _recovering = true;
                    _recording = new JsonArray();
                    await DispatchAsync(start.Kind, start.Args?.AsObject() ?? new JsonObject(), ct);
                    _journal.Append(new JournalRecord(start.Seq, true, start.Kind, start.Timestamp, null, _recording));
                }
            }
            finally
            {
                _replay = null;
                _recovering = false;
                _recording = null;
                _commandNow = null;
            }
            count++;
        }
        return count;
    }

    private async Task DispatchAsync(string kind, JsonObject a, CancellationToken ct)
    {
        long L(string name) => a[name]!.GetValue<long>();
        UInt128 U(string name) => UInt128.Parse(a[name]!.GetValue<string>(), System.Globalization.CultureInfo.InvariantCulture);
        switch (kind)
        {
            case "trader": await RegisterTraderCoreAsync(L("owner"), U("account"), ct); break;
            case "provider": await RegisterProviderCoreAsync(L("id"), U("revenue"), U("collateral"), ct); break;
            case "node": RegisterNodeCore(L("provider"), a["name"]!.GetValue<string>(), (GpuClass)a["gpu"]!.GetValue<int>(), a["region"]!.GetValue<string>(), a["gpus"]!.GetValue<int>()); break;
            case "node-timeout": await NodeDownLockedAsync(_nodes[L("node")], L("since"), ct); break;
            case "place": await PlaceLockedAsync(a.Deserialize<PlaceOrder>(JournalJson)!, null, ct); break;
            case "resell": await PlaceLockedAsync(a.Deserialize<PlaceOrder>(JournalJson)!, L("lease"), ct); break;
            case "cancel": await CancelCoreAsync(L("owner"), L("order"), ct); break;
            case "replace": await ReplaceCoreAsync(L("owner"), L("order"), L("price"), L("quantity"), ct); break;
            case "tick": await TickCoreAsync(ct); break;
            case "delivery": await ReportDeliveryCoreAsync(L("provider"), L("lease"), L("from"), L("to"), ct); break;
            case "outage": await ReportOutageCoreAsync(L("provider"), L("node"), ct); break;
            case "block": await PlaceBlockLockedAsync(a.Deserialize<BlockOrder>(JournalJson)!, ct); break;
            case "release-holds": await ReleaseOrphanHoldsAsync(ct); break;
            default: throw new InvalidDataException($"Unknown journal command '{kind}'.");
        }
    }

    /// <summary>
    /// Every ledger call of a command goes through here: live, its answer is recorded; in a replay, the recorded
    /// answer is returned and the ledger is not asked; re-running an unfinished command, "exists" means "done before".
    /// </summary>
    private async Task<T> LedgerCallAsync<T>(Func<Task<T>> live, Func<T, T>? whenRecovering = null)
    {
        if (_replay is { } q)
        {
            if (q.Count == 0) throw new InvalidDataException("The journal has fewer ledger answers than the replayed command asks for.");
            return q.Dequeue().Deserialize<T>(JournalJson)!;
        }
        var result = await live();
        if (_recovering && whenRecovering is not null) result = whenRecovering(result);
        _recording?.Add(JsonSerializer.SerializeToNode(result, JournalJson));
        return result;
    }

    private Task<CreateTransferResult[]> LedgerTransfersAsync(Transfer[] events, CancellationToken ct) =>
        LedgerCallAsync(() => _ledger.CreateTransfersAsync(events, ct), r => AsFirstRun(events, r));

    /// <summary>
    /// The answers of a command run again after a crash, as its first run got them: what it did before answers "exists",
    /// which was "ok". A linked chain is atomic and refused whole at its first refusal, so a chain whose first transfer
    /// answers "exists" and the rest "linked event failed" was committed whole before (its ids are the command's own):
    /// all of it was "ok".
    /// </summary>
    private static CreateTransferResult[] AsFirstRun(Transfer[] events, CreateTransferResult[] results)
    {
        var r = (CreateTransferResult[])results.Clone();
        for (int start = 0; start < r.Length;)
        {
            int end = start;
            while (end < r.Length - 1 && (events[end].Flags & TransferFlags.Linked) != 0) end++;
            bool committedBefore = r[start] == CreateTransferResult.Exists;
            for (int i = start + 1; i <= end && committedBefore; i++) committedBefore = r[i] == CreateTransferResult.LinkedEventFailed;
            for (int i = start; i <= end; i++)
                if (r[i] == CreateTransferResult.Exists || (committedBefore && r[i] == CreateTransferResult.LinkedEventFailed)) r[i] = CreateTransferResult.Ok;
            start = end + 1;
        }
        return r;
    }

    private Task<CreateAccountResult[]> LedgerAccountsAsync(Account[] events, CancellationToken ct) =>
        LedgerCallAsync(() => _ledger.CreateAccountsAsync(events, ct), r => r.Select(x => x == CreateAccountResult.Exists ? CreateAccountResult.Ok : x).ToArray());

    private Task<Account[]> LedgerLookupAccountsAsync(UInt128[] ids, CancellationToken ct) => LedgerCallAsync(() => _ledger.LookupAccountsAsync(ids, ct));

    private Task<Transfer[]?> LedgerHistoryAsync(UInt128 account, long before, int limit, CancellationToken ct) =>
        LedgerCallAsync(() => _ledger.GetAccountTransfersAsync(account, before, limit, ct));

    private async Task<(Transfer Transfer, PendingStatus Status)[]> LedgerLookupTransfersAsync(UInt128[] ids, CancellationToken ct)
    {
        // Tuples do not serialize by name: record them as pairs.
        var pairs = await LedgerCallAsync(async () => (await _ledger.LookupTransfersAsync(ids, ct)).Select(x => new TransferWithStatus(x.Transfer, x.Status)).ToArray());
        return pairs.Select(p => (p.Transfer, p.Status)).ToArray();
    }

    private sealed record TransferWithStatus(Transfer Transfer, PendingStatus Status);

    // ================================================================== participants

    /// <summary>Registers a trader: an existing USD ledger account that pays for what it buys.</summary>
    public Task<ExchangeError> RegisterTraderAsync(long owner, UInt128 account, CancellationToken ct = default) =>
        CommandAsync("trader", new JsonObject { ["owner"] = owner, ["account"] = account.ToString() }, () => RegisterTraderCoreAsync(owner, account, ct), ct);

    private async Task<ExchangeError> RegisterTraderCoreAsync(long owner, UInt128 account, CancellationToken ct)
    {
        var found = await LedgerLookupAccountsAsync(new[] { account }, ct);
        if (found.Length == 0 || found[0].Asset != Asset.Usd.Code) return ExchangeError.UnknownTrader;
        if (_traders.TryGetValue(owner, out var existing)) return existing == account ? ExchangeError.None : ExchangeError.AlreadyRegistered;
        _traders[owner] = account;
        return ExchangeError.None;
    }

    /// <summary>Registers a provider (also a trader, paid into its revenue account) with its collateral account.</summary>
    public Task<ExchangeError> RegisterProviderAsync(long id, UInt128 revenueAccount, UInt128 collateralAccount, CancellationToken ct = default) =>
        CommandAsync("provider", new JsonObject { ["id"] = id, ["revenue"] = revenueAccount.ToString(), ["collateral"] = collateralAccount.ToString() },
            () => RegisterProviderCoreAsync(id, revenueAccount, collateralAccount, ct), ct);

    private async Task<ExchangeError> RegisterProviderCoreAsync(long id, UInt128 revenueAccount, UInt128 collateralAccount, CancellationToken ct)
    {
        var found = await LedgerLookupAccountsAsync(new[] { revenueAccount, collateralAccount }, ct);
        if (found.Length != 2 || found.Any(a => a.Asset != Asset.Usd.Code)) return ExchangeError.UnknownProvider;
        if (_providers.ContainsKey(id)) return ExchangeError.AlreadyRegistered;
        _providers[id] = new Provider(id, revenueAccount, collateralAccount);
        _traders.TryAdd(id, revenueAccount);
        return ExchangeError.None;
    }

    /// <summary>Registers a provider's node; its GPUs back the provider's sell orders.</summary>
    public Task<(ExchangeError Error, Node? Node)> RegisterNodeAsync(long provider, string name, GpuClass gpu, string region, int gpus, CancellationToken ct = default)
    {
        if (gpus <= 0 || string.IsNullOrWhiteSpace(name) || !GpuClasses.IsDefined(gpu) || !_instruments.Schedule.Regions.Contains(region))
            return Task.FromResult<(ExchangeError, Node?)>((ExchangeError.InvalidRequest, null));
        return CommandAsync("node", new JsonObject { ["provider"] = provider, ["name"] = name, ["gpu"] = (int)gpu, ["region"] = region, ["gpus"] = gpus },
            () => Task.FromResult(RegisterNodeCore(provider, name, gpu, region, gpus)), ct);
    }

    private (ExchangeError Error, Node? Node) RegisterNodeCore(long provider, string name, GpuClass gpu, string region, int gpus)
    {
        if (!_providers.ContainsKey(provider)) return (ExchangeError.UnknownProvider, null);
        var node = new Node(++_nextNodeId, provider, name, gpu, region, gpus) { LastHeartbeat = Now };
        _nodes[node.Id] = node;
        return (ExchangeError.None, node);
    }

    /// <summary>A node's heartbeat; nodes that stop sending them are treated as down by <see cref="TickAsync"/>.</summary>
    /// <remarks>
    /// Heartbeats are not journaled (they arrive every few seconds from every node): a heartbeat only feeds the
    /// decision that a node is down, and that decision is journaled as its own command ("node-timeout").
    /// </remarks>
    public async Task<ExchangeError> HeartbeatAsync(long nodeId, CancellationToken ct = default)
    {
        await _gate.WaitAsync(ct);
        try
        {
            if (!_nodes.TryGetValue(nodeId, out var node)) return ExchangeError.UnknownNode;
            node.LastHeartbeat = Math.Max(node.LastHeartbeat, Clock.UnixNanoseconds(_time));
            return ExchangeError.None;
        }
        finally { _gate.Release(); }
    }

    // ================================================================== orders

    /// <summary>Places an order: pre-trade checks, matching, settlement. See the class summary.</summary>
    public Task<OrderResult> PlaceAsync(PlaceOrder p, CancellationToken ct = default) =>
        CommandAsync("place", JsonSerializer.SerializeToNode(p, JournalJson)!.AsObject(), () => PlaceLockedAsync(p, null, ct), ct);

    /// <summary>Offers the remaining time of a lease for resale on an instrument whose window it covers.</summary>
    public Task<OrderResult> ResellAsync(long owner, long leaseId, int instrument, long price, long quantity, TimeInForce tif = TimeInForce.GoodTillCancel, CancellationToken ct = default)
    {
        var p = new PlaceOrder(owner, instrument, Side.Sell, OrderType.Limit, tif, price, quantity);
        var args = JsonSerializer.SerializeToNode(p, JournalJson)!.AsObject();
        args["lease"] = leaseId;
        return CommandAsync("resell", args, () => PlaceLockedAsync(p, leaseId, ct), ct);
    }

    private static OrderResult Refuse(ExchangeError e, string? detail = null) => new(e, RejectReason.None, 0, OrderStatus.Rejected, 0, Array.Empty<Fill>(), detail);

    private async Task<OrderResult> PlaceLockedAsync(PlaceOrder p, long? resaleLease, CancellationToken ct)
    {
        long now = Now;
        if (!_instruments.TryGet(p.Instrument, out var instrument) || !_instruments.IsActive(p.Instrument)) return Refuse(ExchangeError.UnknownInstrument);
        if (!instrument.IsTradingAt(now)) return Refuse(ExchangeError.InstrumentNotTrading, $"{instrument.Symbol} trades from {instrument.TradingStart} to {instrument.TradingEnd} (Unix ns)");
        if (!_traders.TryGetValue(p.Owner, out var traderAccount)) return Refuse(ExchangeError.UnknownTrader);
        long hours = instrument.Hours;
        if (p.Quantity <= 0 || p.Quantity % hours != 0) return Refuse(ExchangeError.QuantityMustBeWholeGpus, $"quantity must be a positive multiple of {hours} GPU-hours");
        if (!Enum.IsDefined(p.Side) || !Enum.IsDefined(p.Type) || !Enum.IsDefined(p.TimeInForce)) return Refuse(ExchangeError.InvalidRequest);
        var band = instrument.Band;
        if (p.Type == OrderType.Limit && (p.Price <= 0 || !band.Contains(p.Price) || !band.OnTick(p.Price)))
            return Refuse(ExchangeError.BookRejected, $"price must be on the {band.Tick} tick within [{band.MinPrice}, {band.MaxPrice}]") with
            { BookReject = p.Price <= 0 ? RejectReason.PriceMustBePositive : !band.Contains(p.Price) ? RejectReason.PriceOutsideBand : RejectReason.PriceNotOnTick };

        if (p.Type == OrderType.Market && (!_books.TryGetValue(instrument.Id, out var existing) || (p.Side == Side.Buy ? existing.BestAsk : existing.BestBid) == 0))
            return Refuse(ExchangeError.BookRejected, "nothing rests on the other side for a market order") with { BookReject = RejectReason.NoLiquidity };

        // Orders the book would refuse without trading are refused here, before any money is held for them.
        if (_books.TryGetValue(instrument.Id, out var current))
        {
            long best = p.Side == Side.Buy ? current.BestAsk : current.BestBid;
            if (p.PostOnly && (p.Type == OrderType.Market || (best != 0 && (p.Side == Side.Buy ? best <= p.Price : best >= p.Price))))
                return Refuse(ExchangeError.BookRejected, "a post-only order must not take liquidity") with { BookReject = RejectReason.PostOnlyWouldTake };
            if (p.TimeInForce == TimeInForce.FillOrKill && current.AvailableToTaker(p.Side, p.Owner, p.Type == OrderType.Market ? 0 : p.Price, p.Quantity) < p.Quantity)
                return Refuse(ExchangeError.BookRejected, "the book cannot fill this fill-or-kill order whole now") with { BookReject = RejectReason.FillOrKillUnfillable };
        }
        else if (p.TimeInForce == TimeInForce.FillOrKill)
            return Refuse(ExchangeError.BookRejected, "the book cannot fill this fill-or-kill order whole now") with { BookReject = RejectReason.FillOrKillUnfillable };
        else if (p.PostOnly && p.Type == OrderType.Market)
            return Refuse(ExchangeError.BookRejected, "a post-only order must not take liquidity") with { BookReject = RejectReason.PostOnlyWouldTake };

        var order = new OrderState
        {
            Id = ++_nextOrderId, Owner = p.Owner, Instrument = instrument, Side = p.Side, Remaining = p.Quantity,
            Limit = p.Type == OrderType.Market ? band.MaxPrice : p.Price, ResoldLease = resaleLease,
        };
        long gpus = p.Quantity / hours;
        if (p.Side == Side.Buy)
        {
            long hold;
            try { hold = checked(order.Limit * p.Quantity); }
            catch (OverflowException) { return Refuse(ExchangeError.NotionalOverflows); }
            var holdId = NextTransferId();
            var r = await LedgerTransfersAsync(new[] { new Transfer
            {
                Id = holdId, DebitAccountId = traderAccount, CreditAccountId = EscrowAccount, Amount = hold, Asset = Asset.Usd.Code,
                Code = HoldCode, Flags = TransferFlags.Pending, UserData64 = (ulong)order.Id,
            } }, ct);
            if (r[0] == CreateTransferResult.ExceedsCredits) return Refuse(ExchangeError.InsufficientBalance, $"holding {hold} micro-USD for this order exceeds the available balance");
            if (r[0] != CreateTransferResult.Ok) return Refuse(ExchangeError.LedgerRejected, r[0].ToString());
            order.HoldId = holdId;
            order.HoldAmount = hold;
        }
        else if (resaleLease is long leaseId)
        {
            var e = ReserveLeaseTime(p.Owner, leaseId, instrument, (int)gpus);
            if (e != ExchangeError.None) return Refuse(e);
        }
        else
        {
            if (!_providers.ContainsKey(p.Owner)) return Refuse(ExchangeError.InsufficientCapacity, "only registered providers (or lease holders, through resale) can sell");
            if (FreeGpus(p.Owner, instrument) < gpus) return Refuse(ExchangeError.InsufficientCapacity, $"the provider has fewer than {gpus} free {instrument.Gpu} GPUs in {instrument.Region} for the whole window");
            Commit(p.Owner, instrument, (int)gpus);
        }
        AddOrder(order);

        var book = BookFor(instrument);
        var command = new OrderCommand
        {
            Kind = CommandKind.Place, Side = p.Side, Type = p.Type, TimeInForce = p.TimeInForce, PostOnly = p.PostOnly,
            OrderId = order.Id, Owner = p.Owner, Price = p.Price, Quantity = p.Quantity, ExpiresAt = p.ExpiresAt, Timestamp = now,
        };
        return await ApplyAsync(book, command, order.Id, ct);
    }

    /// <summary>Cancels an open order; its hold or reserved capacity is released.</summary>
    public Task<OrderResult> CancelAsync(long owner, long orderId, CancellationToken ct = default) =>
        CommandAsync("cancel", new JsonObject { ["owner"] = owner, ["order"] = orderId }, () => CancelCoreAsync(owner, orderId, ct), ct);

    private async Task<OrderResult> CancelCoreAsync(long owner, long orderId, CancellationToken ct)
    {
        {
            if (!_orders.TryGetValue(orderId, out var o)) return Refuse(ExchangeError.UnknownOrder);
            if (o.Owner != owner) return Refuse(ExchangeError.NotOwner);
            var command = new OrderCommand { Kind = CommandKind.Cancel, OrderId = orderId, Owner = owner, Side = o.Side, Timestamp = Now };
            return await ApplyAsync(BookFor(o.Instrument), command, orderId, ct);
        }
    }

    /// <summary>
    /// Replaces an open order's price and/or remaining quantity (priority is kept only for a smaller quantity at
    /// the same price). A buy's hold follows the new limit × quantity; a sell's reserved capacity follows the quantity.
    /// </summary>
    public Task<OrderResult> ReplaceAsync(long owner, long orderId, long price, long quantity, CancellationToken ct = default) =>
        CommandAsync("replace", new JsonObject { ["owner"] = owner, ["order"] = orderId, ["price"] = price, ["quantity"] = quantity },
            () => ReplaceCoreAsync(owner, orderId, price, quantity, ct), ct);

    private async Task<OrderResult> ReplaceCoreAsync(long owner, long orderId, long price, long quantity, CancellationToken ct)
    {
        {
            if (!_orders.TryGetValue(orderId, out var o)) return Refuse(ExchangeError.UnknownOrder);
            if (o.Owner != owner) return Refuse(ExchangeError.NotOwner);
            long hours = o.Instrument.Hours;
            if (quantity <= 0 || quantity % hours != 0) return Refuse(ExchangeError.QuantityMustBeWholeGpus);
            var band = o.Instrument.Band;
            if (price <= 0 || !band.Contains(price) || !band.OnTick(price)) return Refuse(ExchangeError.BookRejected) with { BookReject = RejectReason.PriceOutsideBand };
            // Refuse a post-only replace that would take before any hold or capacity changes.
            var book = BookFor(o.Instrument);
            if (book.TryGetOrder(orderId, out var resting) && resting.PostOnly && (price != resting.Price || quantity > resting.Remaining))
            {
                long best = o.Side == Side.Buy ? book.BestAsk : book.BestBid;
                if (best != 0 && (o.Side == Side.Buy ? best <= price : best >= price))
                    return Refuse(ExchangeError.BookRejected) with { BookReject = RejectReason.PostOnlyWouldTake };
            }
            long extraGpus = (quantity - o.Remaining) / hours;
            if (o.Side == Side.Buy)
            {
                // Re-hold for the new terms first, so a replace that the balance cannot cover changes nothing.
                long hold;
                try { hold = checked(price * quantity); }
                catch (OverflowException) { return Refuse(ExchangeError.NotionalOverflows); }
                if (hold != o.HoldAmount)
                {
                    var e = await RehouldAsync(o, hold, ct);
                    if (e != ExchangeError.None) return Refuse(e);
                }
                o.Limit = price;
            }
            else if (extraGpus > 0)
            {
                if (o.ResoldLease is long lid)
                {
                    var e = ReserveLeaseTime(owner, lid, o.Instrument, (int)extraGpus);
                    if (e != ExchangeError.None) return Refuse(e);
                }
                else
                {
                    if (FreeGpus(owner, o.Instrument) < extraGpus) return Refuse(ExchangeError.InsufficientCapacity);
                    Commit(owner, o.Instrument, (int)extraGpus);
                }
            }
            else if (extraGpus < 0) ReleaseSellCapacity(o, (int)-extraGpus);
            if (o.Side == Side.Sell) o.Remaining = quantity; // capacity now matches the new quantity
            var command = new OrderCommand { Kind = CommandKind.Replace, OrderId = orderId, Owner = owner, Side = o.Side, Price = price, Quantity = quantity, Timestamp = Now };
            if (o.Side == Side.Buy) o.Remaining = quantity;
            return await ApplyAsync(book, command, orderId, ct);
        }
    }

    /// <summary>Voids a buy order's hold and holds <paramref name="amount"/> instead, atomically (a linked pair).</summary>
    private async Task<ExchangeError> RehouldAsync(OrderState o, long amount, CancellationToken ct)
    {
        var newHold = NextTransferId();
        var r = await LedgerTransfersAsync(new[]
        {
            new Transfer { Id = NextTransferId(), PendingId = o.HoldId, Flags = TransferFlags.VoidPendingTransfer | TransferFlags.Linked },
            new Transfer { Id = newHold, DebitAccountId = _traders[o.Owner], CreditAccountId = EscrowAccount, Amount = amount, Asset = Asset.Usd.Code,
                Code = HoldCode, Flags = TransferFlags.Pending, UserData64 = (ulong)o.Id },
        }, ct);
        if (r[1] == CreateTransferResult.ExceedsCredits) return ExchangeError.InsufficientBalance;
        if (r[0] != CreateTransferResult.Ok || r[1] != CreateTransferResult.Ok) return ExchangeError.LedgerRejected;
        o.HoldId = newHold;
        o.HoldAmount = amount;
        return ExchangeError.None;
    }

    // ================================================================== matching and settlement

    private OrderBook BookFor(Instrument instrument)
    {
        if (!_books.TryGetValue(instrument.Id, out var book)) _books[instrument.Id] = book = new OrderBook(instrument.Band, _options.OrdersPerBookMax);
        return book;
    }

    /// <summary>Applies a command to a book and settles everything its events imply.</summary>
    private async Task<OrderResult> ApplyAsync(OrderBook book, OrderCommand command, long subject, CancellationToken ct)
    {
        var events = book.Apply(in command).ToArray(); // copied: settlement awaits the ledger
        var fills = new List<Fill>();
        var newLeases = new List<Lease>();
        var touchedBuys = new Dictionary<long, long>();   // buy order → notional bought in this command
        var leaseFunding = new List<(Lease Lease, long FromOrder)>();
        var closed = new List<OrderState>();
        RejectReason bookReject = RejectReason.None;
        long now = command.Timestamp;
        foreach (var e in events)
        {
            switch (e.Kind)
            {
                case EventKind.Trade:
                {
                    var taker = _orders[e.OrderId];
                    var maker = _orders[e.MakerOrderId];
                    var (lease, fill) = RecordTrade(taker, maker, in e, now);
                    var buy = taker.Side == Side.Buy ? taker : maker;
                    newLeases.Add(lease);
                    leaseFunding.Add((lease, buy.Id));
                    touchedBuys[buy.Id] = checked(touchedBuys.GetValueOrDefault(buy.Id) + lease.Notional);
                    fills.Add(fill);
                    if (maker.Remaining == 0) closed.Add(maker);
                    if (taker.Remaining == 0) closed.Add(taker);
                    break;
                }
                case EventKind.Rested:
                    break;
                case EventKind.Reduced:
                {
                    var o = _orders[e.OrderId];
                    o.Remaining = e.Quantity;
                    break;
                }
                case EventKind.Cancelled:
                {
                    var o = _orders[e.OrderId];
                    if (e.Reason == CancelReason.Replaced) break; // the same order re-enters at once
                    if (o.Side == Side.Sell) ReleaseSellCapacity(o, (int)(e.Quantity / o.Instrument.Hours));
                    o.Remaining = 0;
                    closed.Add(o);
                    break;
                }
                case EventKind.Rejected:
                {
                    bookReject = e.Reject;
                    if (_orders.TryGetValue(e.OrderId, out var o) && e.OrderId == subject && command.Kind == CommandKind.Place)
                    {
                        if (o.Side == Side.Sell) ReleaseSellCapacity(o, (int)(o.Remaining / o.Instrument.Hours));
                        o.Remaining = 0;
                        closed.Add(o);
                    }
                    break;
                }
            }
        }
        foreach (var o in closed) if (o.Side == Side.Buy) touchedBuys.TryAdd(o.Id, 0);
        await SettleAsync(touchedBuys, newLeases, leaseFunding, ct);
        foreach (var o in closed) if (o.Remaining == 0) RemoveOrder(o.Id);

        _orders.TryGetValue(subject, out var subjectOrder);
        long remaining = subjectOrder?.Remaining ?? 0;
        bool rejected = bookReject != RejectReason.None && command.Kind == CommandKind.Place;
        var status = rejected ? OrderStatus.Rejected
            : command.Kind == CommandKind.Cancel ? OrderStatus.Cancelled
            : remaining > 0 ? OrderStatus.Resting
            : events.Any(x => x.Kind == EventKind.Cancelled && x.OrderId == subject && x.Reason != CancelReason.Replaced)
                ? (fills.Count > 0 ? OrderStatus.PartiallyFilledCancelled : OrderStatus.Cancelled)
                : OrderStatus.Filled;
        if (bookReject != RejectReason.None)
            return new OrderResult(ExchangeError.BookRejected, bookReject, subject, status, remaining, fills);
        return new OrderResult(ExchangeError.None, RejectReason.None, subject, status, remaining, fills);
    }

    /// <summary>
    /// The bookkeeping of one trade, shared by orders and block legs: the lease on named nodes, both orders'
    /// remaining quantities, the trade's sequence number, market data and the live feed.
    /// </summary>
    private (Lease Lease, Fill Fill) RecordTrade(OrderState taker, OrderState maker, in MatchEvent e, long now)
    {
        var (buy, sell) = taker.Side == Side.Buy ? (taker, maker) : (maker, taker);
        var lease = CreateLease(buy, sell, e.Price, e.Quantity);
        taker.Remaining -= e.Quantity;
        maker.Remaining -= e.Quantity;
        long seq = ++_tradeSequence;
        var trade = new Trade(taker.Instrument.Id, e.Price, e.Quantity, now, taker.Side, seq);
        _tradedInstruments.Add(trade.Instrument);
        try { MarketData.OnTrade(trade); }
        catch (Exception ex) when (ex is ArgumentException or InvalidOperationException or OverflowException)
        {
            // Market data is a view of the trades; it must never stop the settlement that follows. A refused
            // trade is counted so the gap is visible.
            MarketDataErrors++;
        }
        PublishTrade(trade);
        return (lease, new Fill(taker.Id, maker.Id, e.Price, e.Quantity, lease.Id, seq));
    }

    /// <summary>Trades the market data refused (a full tape, a sum overflow): they settled, but are missing from the feeds.</summary>
    public long MarketDataErrors { get; private set; }

    /// <summary>Raises <see cref="TradeExecuted"/>; a failing subscriber must not stop the settlement that follows.</summary>
    private void PublishTrade(Trade trade)
    {
        var handlers = TradeExecuted;
        if (handlers is null) return;
        foreach (Action<Trade> h in handlers.GetInvocationList())
        {
            try { h(trade); }
            catch (Exception) { /* a feed subscriber's bug; the trade itself stands */ }
        }
    }

    /// <summary>
    /// One linked chain for the whole command: lease escrow accounts are created, then for each buy order it
    /// touched, its hold is posted for what it bought (or voided), the escrow funds each new lease, and what still
    /// rests is held again.
    /// </summary>
    private async Task SettleAsync(Dictionary<long, long> touchedBuys, List<Lease> newLeases, List<(Lease Lease, long FromOrder)> funding, CancellationToken ct)
    {
        if (newLeases.Count > 0)
        {
            var accounts = newLeases.Select(l => LeaseEscrowAccount(l)).ToArray();
            var ar = await LedgerAccountsAsync(accounts, ct);
            if (ar.Any(x => x != CreateAccountResult.Ok)) throw new InvalidOperationException("Cannot create lease escrow accounts: " + string.Join(",", ar));
        }
        var transfers = new List<Transfer>();
        var rehold = new List<(OrderState Order, UInt128 HoldId, long Amount)>();
        foreach (var (orderId, bought) in touchedBuys)
        {
            var o = _orders[orderId];
            if (bought > 0) transfers.Add(new Transfer { Id = NextTransferId(), PendingId = o.HoldId, Amount = bought, Flags = TransferFlags.PostPendingTransfer | TransferFlags.Linked });
            else transfers.Add(new Transfer { Id = NextTransferId(), PendingId = o.HoldId, Flags = TransferFlags.VoidPendingTransfer | TransferFlags.Linked });
            if (o.Remaining > 0)
            {
                long amount = checked(o.Limit * o.Remaining);
                var id = NextTransferId();
                transfers.Add(new Transfer { Id = id, DebitAccountId = _traders[o.Owner], CreditAccountId = EscrowAccount, Amount = amount, Asset = Asset.Usd.Code,
                    Code = HoldCode, Flags = TransferFlags.Pending | TransferFlags.Linked, UserData64 = (ulong)o.Id });
                rehold.Add((o, id, amount));
            }
            else rehold.Add((o, 0, 0));
        }
        foreach (var (lease, _) in funding)
            transfers.Add(new Transfer { Id = NextTransferId(), DebitAccountId = EscrowAccount, CreditAccountId = lease.EscrowAccount, Amount = lease.Notional,
                Asset = Asset.Usd.Code, Code = LeaseFundingCode, Flags = TransferFlags.Linked, UserData64 = (ulong)lease.Id });
        if (transfers.Count == 0) return;
        // One chain per ledger batch; a command that touches more than a batch holds (thousands of makers) settles
        // in several chains, each atomic.
        foreach (var chunk in transfers.Chunk(LedgerLimits.BatchEventsMax))
        {
            chunk[^1].Flags &= ~TransferFlags.Linked;
            var r = await LedgerTransfersAsync(chunk, ct);
            // Settlement of a match must not fail: the holds cover it by construction. A failure is a bug.
            if (r.Any(x => x != CreateTransferResult.Ok)) throw new InvalidOperationException("Settlement chain failed: " + string.Join(",", r));
        }
        foreach (var (o, id, amount) in rehold) { o.HoldId = id; o.HoldAmount = amount; }
    }

    private Lease CreateLease(OrderState buy, OrderState sell, long price, long quantity)
    {
        var instrument = buy.Instrument;
        int gpus = (int)(quantity / instrument.Hours);
        long leaseId = ++_nextLeaseId;
        IReadOnlyList<(long, int)> nodes;
        long provider;
        long payee;
        UInt128 payeeAccount;
        long? parent = null;
        if (sell.ResoldLease is long parentId)
        {
            var p = _leases[parentId];
            nodes = p.Nodes;
            provider = p.Provider;
            payee = sell.Owner;
            payeeAccount = _traders[sell.Owner];
            parent = parentId;
        }
        else
        {
            nodes = AllocateNodes(sell.Owner, instrument, gpus);
            provider = sell.Owner;
            payee = sell.Owner;
            payeeAccount = _providers[sell.Owner].RevenueAccount;
            Uncommit(sell.Owner, instrument, gpus);
        }
        var lease = new Lease
        {
            Id = leaseId, Instrument = instrument.Id, Buyer = buy.Owner, Provider = provider, Payee = payee, PayeeAccount = payeeAccount, Parent = parent,
            Start = instrument.DeliveryStart, End = instrument.DeliveryEnd, Gpus = gpus, Price = price, Notional = checked(price * quantity),
            EscrowAccount = LeaseEscrowId(leaseId), Nodes = nodes,
        };
        AddLease(lease);
        return lease;
    }

    // ================================================================== capacity

    private IEnumerable<long> HoursOf(Instrument i)
    {
        for (long h = i.DeliveryStart; h < i.DeliveryEnd; h += DeliveryCalendar.NsPerHour) yield return h;
    }

    /// <summary>GPUs the provider can still commit for every hour of the window (nodes up, minus leased, minus committed).</summary>
    private long FreeGpus(long provider, Instrument i)
    {
        var nodes = _nodes.Values.Where(n => n.Provider == provider && n.Gpu == i.Gpu && n.Region == i.Region && n.DownSince is null).ToList();
        long min = long.MaxValue;
        foreach (long h in HoursOf(i))
        {
            long free = nodes.Sum(n => (long)n.Gpus - _leasedGpus.GetValueOrDefault((n.Id, h))) - _committedGpus.GetValueOrDefault((provider, i.Gpu, i.Region, h));
            min = Math.Min(min, free);
        }
        return min == long.MaxValue ? 0 : min;
    }

    private void Commit(long provider, Instrument i, int gpus)
    {
        foreach (long h in HoursOf(i)) _committedGpus[(provider, i.Gpu, i.Region, h)] = _committedGpus.GetValueOrDefault((provider, i.Gpu, i.Region, h)) + gpus;
    }

    private void Uncommit(long provider, Instrument i, int gpus) => Commit(provider, i, -gpus);

    private void ReleaseSellCapacity(OrderState o, int gpus)
    {
        if (gpus <= 0) return;
        if (o.ResoldLease is long lid)
        {
            var lease = _leases[lid];
            foreach (long h in HoursOf(o.Instrument)) lease.ResoldGpus[h] = lease.ResoldGpus.GetValueOrDefault(h) - gpus;
        }
        else Uncommit(o.Owner, o.Instrument, gpus);
    }

    /// <summary>First fit: the provider's nodes (by id) with room in every hour of the window take the lease's GPUs.</summary>
    private List<(long Node, int Gpus)> AllocateNodes(long provider, Instrument i, int gpus)
    {
        var result = new List<(long, int)>();
        int left = gpus;
        foreach (var n in _nodes.Values.Where(n => n.Provider == provider && n.Gpu == i.Gpu && n.Region == i.Region && n.DownSince is null).OrderBy(n => n.Id))
        {
            int room = HoursOf(i).Min(h => n.Gpus - _leasedGpus.GetValueOrDefault((n.Id, h)));
            int take = Math.Min(room, left);
            if (take <= 0) continue;
            foreach (long h in HoursOf(i)) _leasedGpus[(n.Id, h)] = _leasedGpus.GetValueOrDefault((n.Id, h)) + take;
            result.Add((n.Id, take));
            left -= take;
            if (left == 0) break;
        }
        if (left != 0) throw new InvalidOperationException("Committed capacity was not available at allocation: capacity accounting is broken.");
        return result;
    }

    /// <summary>Reserves GPUs of a held lease for resale on an instrument inside the lease's remaining window.</summary>
    private ExchangeError ReserveLeaseTime(long owner, long leaseId, Instrument i, int gpus)
    {
        if (!_leases.TryGetValue(leaseId, out var lease)) return ExchangeError.UnknownLease;
        if (lease.Buyer != owner) return ExchangeError.NotOwner;
        var parentInstrument = _instruments.TryGet(lease.Instrument, out var pi) ? pi : null;
        if (lease.Status != LeaseStatus.Active || parentInstrument is null || parentInstrument.Gpu != i.Gpu || parentInstrument.Region != i.Region
            || i.DeliveryStart < lease.Start || i.DeliveryEnd > lease.End || i.DeliveryStart < Now)
            return ExchangeError.InsufficientCapacity;
        if (HoursOf(i).Any(h => lease.Gpus - lease.ResoldGpus.GetValueOrDefault(h) < gpus)) return ExchangeError.InsufficientCapacity;
        foreach (long h in HoursOf(i)) lease.ResoldGpus[h] = lease.ResoldGpus.GetValueOrDefault(h) + gpus;
        return ExchangeError.None;
    }

    // Ids of this run carry its start time (ms) in the high word, so they never collide with a previous run's.
    private UInt128 NextTransferId() => ChartOfAccounts.TransferId(TransferSpace.Exchange, _runEpoch, (ulong)++_nextTransfer);

    private UInt128 LeaseEscrowId(long leaseId) => ChartOfAccounts.ObjectAccount(AccountCode.LeaseEscrow, _runEpoch, (ulong)leaseId);

    // A lease's escrow account, as the chart declares it, with the lease's id in user_data_64.
    private static Account LeaseEscrowAccount(Lease lease)
    {
        Account a = ChartOfAccounts.NewAccount(AccountCode.LeaseEscrow, lease.EscrowAccount, Asset.Usd);
        a.UserData64 = (ulong)lease.Id;
        return a;
    }

    // ================================================================== clock

    /// <summary>
    /// Advances the exchange to the clock: lists and expires instruments (orders of an expired instrument are
    /// cancelled and released), expires good-till-time orders, and treats nodes with active leases that missed
    /// their heartbeats as down (their leases fail over to refunds and penalties).
    /// </summary>
    public async Task<InstrumentChanges> TickAsync(CancellationToken ct = default)
    {
        // Only a tick that will change something is run and journaled: the server ticks every second, and a
        // journal of empty ticks would grow by two lines a second forever.
        await _gate.WaitAsync(ct);
        long now;
        bool due;
        try
        {
            now = Math.Max(Clock.UnixNanoseconds(_time), _lastCommandNow);
            due = TickDue(now);
        }
        finally { _gate.Release(); }
        var changes = due ? await CommandAsync("tick", new JsonObject(), () => TickCoreAsync(ct), ct)
            : new InstrumentChanges(now, Array.Empty<Instrument>(), Array.Empty<Instrument>(), 0);

        // Nodes with active leases that stopped sending heartbeats are down; each decision is its own command.
        List<(long Node, long Since)> timedOut;
        await _gate.WaitAsync(ct);
        try { timedOut = TimedOutNodes(Math.Max(Clock.UnixNanoseconds(_time), _lastCommandNow)); }
        finally { _gate.Release(); }
        foreach (var (node, since) in timedOut)
            await CommandAsync("node-timeout", new JsonObject { ["node"] = node, ["since"] = since }, async () =>
            {
                var n = _nodes[node];
                if (n.DownSince is null) await NodeDownLockedAsync(n, since, ct);
                return true;
            }, ct);
        return changes;
    }

    private List<(long Node, long Since)> TimedOutNodes(long now)
    {
        long timeout = (long)_options.HeartbeatTimeout.TotalMilliseconds * 1_000_000L;
        return _nodes.Values.Where(n => n.DownSince is null && now - n.LastHeartbeat > timeout
                                        && _leases.Values.Any(l => l.Status == LeaseStatus.Active && l.Nodes.Any(x => x.Node == n.Id)))
            .OrderBy(n => n.Id).Select(n => (n.Id, n.LastHeartbeat)).ToList();
    }

    private const long PruneEveryNs = 3_600_000_000_000L, KeepDeliveredNs = 40L * 24 * 3_600_000_000_000L, KeepMarketDataNs = 24 * 3_600_000_000_000L;

    /// <summary>Would a tick at <paramref name="now"/> list or expire an instrument, expire an order, fail a node or prune?</summary>
    private bool TickDue(long now)
    {
        if (_instruments.Now is not long last) return true;
        if (now - _lastPrune >= PruneEveryNs) return true;
        if (_instruments.Active.Any(i => !i.IsTradingAt(now))) return true;
        if (_instruments.Schedule.OpeningIn(last, now).Count > 0) return true;
        return _books.Values.Any(b => b.NextExpiry <= now);
    }

    private async Task<InstrumentChanges> TickCoreAsync(CancellationToken ct)
    {
        {
            long now = Now;
            var changes = _instruments.Advance(now);
            if (now - _lastPrune >= PruneEveryNs)
            {
                // Instruments whose delivery ended long ago (no lease can still refer to them) leave the registry.
                _instruments.Prune(now - KeepDeliveredNs);
                _lastPrune = now;
                // Market data of an instrument is kept for a day after its delivery ends; then its slots serve new ones.
                foreach (int id in _tradedInstruments.Where(id => !_instruments.TryGet(id, out var i) || i.DeliveryEnd + KeepMarketDataNs <= now).ToList())
                {
                    MarketData.Forget(id);
                    _tradedInstruments.Remove(id);
                }
            }
            foreach (var (id, book) in _books.ToList())
            {
                if (!_instruments.IsActive(id) || !_instruments.Get(id).IsTradingAt(now))
                {
                    foreach (var o in book.Orders())
                        await ApplyAsync(book, new OrderCommand { Kind = CommandKind.Cancel, OrderId = o.Id, Owner = o.Owner, Timestamp = now }, o.Id, ct);
                    _books.Remove(id);
                }
                else if (book.Count > 0)
                    await ApplyAsync(book, new OrderCommand { Kind = CommandKind.Expire, Timestamp = now }, 0, ct);
            }
            return changes;
        }
    }

    // ================================================================== leases

    /// <summary>
    /// A provider reports delivery on a lease for the metered interval [from, to): the escrow pays the payee
    /// price × GPUs × hours of the interval inside the lease window. The last interval completes the lease.
    /// </summary>
    public Task<(ExchangeError Error, Lease? Lease)> ReportDeliveryAsync(long provider, long leaseId, long fromNs, long toNs, CancellationToken ct = default) =>
        CommandAsync("delivery", new JsonObject { ["provider"] = provider, ["lease"] = leaseId, ["from"] = fromNs, ["to"] = toNs },
            () => ReportDeliveryCoreAsync(provider, leaseId, fromNs, toNs, ct), ct);

    private async Task<(ExchangeError Error, Lease? Lease)> ReportDeliveryCoreAsync(long provider, long leaseId, long fromNs, long toNs, CancellationToken ct)
    {
        {
            if (!_leases.TryGetValue(leaseId, out var lease)) return (ExchangeError.UnknownLease, null);
            if (lease.Provider != provider) return (ExchangeError.NotOwner, lease);
            // Delivery is reported for hours that have passed, on the hour grid of the lease's window.
            if (lease.Status != LeaseStatus.Active || fromNs >= toNs || fromNs < lease.Start || toNs > lease.End || toNs > Now
                || (fromNs - lease.Start) % DeliveryCalendar.NsPerHour != 0 || (toNs - lease.Start) % DeliveryCalendar.NsPerHour != 0)
                return (ExchangeError.InvalidDelivery, lease);
            long gpuHours = lease.Gpus * ((toNs - fromNs) / DeliveryCalendar.NsPerHour);
            if (lease.DeliveredGpuHours + gpuHours > lease.GpuHours) return (ExchangeError.InvalidDelivery, lease);
            await PayDeliveryAsync(lease, gpuHours, ct);
            // A lease resold for part of this interval is delivered there too: its buyer got the GPUs, its reseller is paid.
            foreach (var child in _leases.Values.Where(c => c.Parent == lease.Id && c.Status == LeaseStatus.Active && c.Start < toNs && c.End > fromNs).ToList())
            {
                long childHours = (Math.Min(toNs, child.End) - Math.Max(fromNs, child.Start)) / DeliveryCalendar.NsPerHour;
                await PayDeliveryAsync(child, child.Gpus * childHours, ct);
            }
            return (ExchangeError.None, lease);
        }
    }

    private async Task PayDeliveryAsync(Lease lease, long gpuHours, CancellationToken ct)
    {
        long amount = checked(lease.Price * gpuHours);
        // The last payment takes whatever is left, so the escrow always ends at exactly zero.
        if (lease.DeliveredGpuHours + gpuHours == lease.GpuHours) amount = lease.Notional - lease.Paid - lease.Refunded;
        var r = await LedgerTransfersAsync(new[] { new Transfer
        {
            Id = NextTransferId(), DebitAccountId = lease.EscrowAccount, CreditAccountId = lease.PayeeAccount, Amount = amount, Asset = Asset.Usd.Code,
            Code = DeliveryPaymentCode, UserData64 = (ulong)lease.Id,
        } }, ct);
        if (r[0] != CreateTransferResult.Ok) throw new InvalidOperationException($"Delivery payment failed: {r[0]}.");
        lease.DeliveredGpuHours += gpuHours;
        lease.Paid += amount;
        if (lease.DeliveredGpuHours == lease.GpuHours) lease.Status = LeaseStatus.Completed;
    }

    /// <summary>A provider (or the heartbeat monitor) reports a node down: every active lease on it fails.</summary>
    public Task<ExchangeError> ReportOutageAsync(long provider, long nodeId, CancellationToken ct = default) =>
        CommandAsync("outage", new JsonObject { ["provider"] = provider, ["node"] = nodeId }, () => ReportOutageCoreAsync(provider, nodeId, ct), ct);

    private async Task<ExchangeError> ReportOutageCoreAsync(long provider, long nodeId, CancellationToken ct)
    {
        if (!_nodes.TryGetValue(nodeId, out var node)) return ExchangeError.UnknownNode;
        if (node.Provider != provider) return ExchangeError.NotOwner;
        await NodeDownLockedAsync(node, Now, ct);
        return ExchangeError.None;
    }

    private async Task NodeDownLockedAsync(Node node, long since, CancellationToken ct)
    {
        node.DownSince = since;
        foreach (var lease in _leases.Values.Where(l => l.Status == LeaseStatus.Active && l.Nodes.Any(x => x.Node == node.Id)).OrderBy(l => l.Id).ToList())
            await FailLeaseAsync(lease, ct);
    }

    /// <summary>
    /// Refunds the undelivered part from the lease's escrow to the buyer and pays the buyer a penalty from the
    /// provider's collateral (as much as the collateral holds; the rest is recorded as a shortfall).
    /// </summary>
    private async Task FailLeaseAsync(Lease lease, CancellationToken ct)
    {
        long refund = lease.Notional - lease.Paid - lease.Refunded;
        long penalty = Money.MulDiv(refund, _options.PenaltyBasisPoints, 10_000);
        var buyerAccount = _traders[lease.Buyer];
        var provider = _providers[lease.Provider];
        var collateral = (await LedgerLookupAccountsAsync(new[] { provider.CollateralAccount }, ct))[0];
        long available = Math.Max(0, collateral.CreditsPosted - collateral.DebitsPosted - collateral.DebitsPending);
        long paid = Math.Min(penalty, available);
        var transfers = new List<Transfer>();
        if (refund > 0)
            transfers.Add(new Transfer { Id = NextTransferId(), DebitAccountId = lease.EscrowAccount, CreditAccountId = buyerAccount, Amount = refund,
                Asset = Asset.Usd.Code, Code = RefundCode, UserData64 = (ulong)lease.Id });
        if (paid > 0)
            transfers.Add(new Transfer { Id = NextTransferId(), DebitAccountId = provider.CollateralAccount, CreditAccountId = buyerAccount, Amount = paid,
                Asset = Asset.Usd.Code, Code = PenaltyCode, UserData64 = (ulong)lease.Id });
        if (transfers.Count > 0)
        {
            var r = await LedgerTransfersAsync(transfers.ToArray(), ct);
            if (r.Any(x => x != CreateTransferResult.Ok)) throw new InvalidOperationException("Refund or penalty failed: " + string.Join(",", r));
        }
        lease.Refunded += refund;
        lease.Penalty = paid;
        lease.PenaltyShortfall = penalty - paid;
        lease.Status = LeaseStatus.Failed;
        // Leases resold from this one fail with it: their buyers are refunded too (the reseller pays no penalty).
        foreach (var child in _leases.Values.Where(c => c.Parent == lease.Id && c.Status == LeaseStatus.Active).ToList())
        {
            long childRefund = child.Notional - child.Paid - child.Refunded;
            if (childRefund > 0)
            {
                var r = await LedgerTransfersAsync(new[] { new Transfer { Id = NextTransferId(), DebitAccountId = child.EscrowAccount,
                    CreditAccountId = _traders[child.Buyer], Amount = childRefund, Asset = Asset.Usd.Code, Code = RefundCode, UserData64 = (ulong)child.Id } }, ct);
                if (r[0] != CreateTransferResult.Ok) throw new InvalidOperationException($"Refund failed: {r[0]}.");
            }
            child.Refunded += childRefund;
            child.Status = LeaseStatus.Failed;
        }
    }

    // ================================================================== indexes

    private void AddOrder(OrderState order)
    {
        _orders[order.Id] = order;
        _openOrderIds.Add(order.Id);
        if (!_openOrdersByOwner.TryGetValue(order.Owner, out var mine)) _openOrdersByOwner[order.Owner] = mine = new SortedSet<long>();
        mine.Add(order.Id);
    }

    private void RemoveOrder(long id)
    {
        if (!_orders.Remove(id, out var order)) return;
        _openOrderIds.Remove(id);
        if (_openOrdersByOwner.TryGetValue(order.Owner, out var mine) && mine.Remove(id) && mine.Count == 0) _openOrdersByOwner.Remove(order.Owner);
    }

    private void AddLease(Lease lease)
    {
        _leases[lease.Id] = lease;
        _leaseIds.Add(lease.Id);
        foreach (long who in new[] { lease.Buyer, lease.Payee, lease.Provider }.Distinct())
        {
            if (!_leasesByParticipant.TryGetValue(who, out var list)) _leasesByParticipant[who] = list = new List<long>();
            list.Add(lease.Id);
        }
    }

    // The ids after `after` of an ascending list, at most `limit`: a binary search and a page.
    private static IEnumerable<long> PageOf(List<long> ascending, long after, int limit)
    {
        int i = ascending.BinarySearch(after);
        i = i < 0 ? ~i : i + 1;
        for (int n = 0; i < ascending.Count && n < limit; i++, n++) yield return ascending[i];
    }

    // ================================================================== queries

    public async Task<T> ReadAsync<T>(Func<ExchangeView, T> read, CancellationToken ct = default)
    {
        await _gate.WaitAsync(ct);
        try { return read(new ExchangeView(this)); }
        finally { _gate.Release(); }
    }

    /// <summary>A read-only view for queries, valid inside <see cref="ReadAsync"/>.</summary>
    public sealed class ExchangeView
    {
        private readonly ExchangeService s;
        internal ExchangeView(ExchangeService service) => s = service;

        /// <summary>Every open order (or an owner's), by id. O(n): for tests and audits; listings use the paged overload.</summary>
        public IReadOnlyList<OpenOrder> OpenOrders(long? owner = null) => OpenOrders(owner, 0, int.MaxValue);

        /// <summary>Open orders (or an owner's) with ids above <paramref name="after"/>, by id, at most <paramref name="limit"/>: O(log n + page).</summary>
        public IReadOnlyList<OpenOrder> OpenOrders(long? owner, long after, int limit)
        {
            SortedSet<long>? ids = owner is long o ? s._openOrdersByOwner.GetValueOrDefault(o) : s._openOrderIds;
            if (ids is null || ids.Count == 0 || after == long.MaxValue) return [];
            return ids.GetViewBetween(after + 1, long.MaxValue).Take(limit).Select(id => View(s._orders[id])).ToList();
        }

        /// <summary>How many orders an owner has open.</summary>
        public int OpenOrderCount(long owner) => s._openOrdersByOwner.GetValueOrDefault(owner)?.Count ?? 0;

        /// <summary>An open order by id, or null.</summary>
        public OpenOrder? Order(long id) => s._orders.TryGetValue(id, out var o) ? View(o) : null;

        /// <summary>Every lease (or a participant's), by id. O(n): for tests and audits; listings use the paged overload.</summary>
        public IReadOnlyList<Lease> Leases(long? owner = null) => Leases(owner, 0, int.MaxValue);

        /// <summary>Leases (or those a participant buys, is paid for or delivers) with ids above <paramref name="after"/>, by id: O(log n + page).</summary>
        public IReadOnlyList<Lease> Leases(long? owner, long after, int limit)
        {
            List<long>? ids = owner is long o ? s._leasesByParticipant.GetValueOrDefault(o) : s._leaseIds;
            return ids is null ? [] : PageOf(ids, after, limit).Select(id => s._leases[id]).ToList();
        }

        private static OpenOrder View(OrderState o) => new(o.Id, o.Owner, o.Instrument.Id, o.Side, o.Limit, o.Remaining, o.HoldAmount, o.ResoldLease);
        public Lease? Lease(long id) => s._leases.GetValueOrDefault(id);
        public IReadOnlyList<Node> Nodes => s._nodes.Values.OrderBy(n => n.Id).ToList();

        /// <summary>A node by id, or null.</summary>
        public Node? Node(long id) => s._nodes.GetValueOrDefault(id);
        public int Depth(int instrument, Side side, Span<DepthLevel> into) => s._books.TryGetValue(instrument, out var b) ? b.Depth(side, into) : 0;
        public bool HasBook(int instrument) => s._books.ContainsKey(instrument);
        public OrderBook? Book(int instrument) => s._books.GetValueOrDefault(instrument);
    }

    /// <summary>
    /// Checks the money invariants against the ledger: the escrow's pending credits equal the holds of open
    /// buy orders; each open buy order's hold is its limit × remaining; every open order rests in its book.
    /// </summary>
    public async Task CheckInvariantsAsync(CancellationToken ct = default)
    {
        await _gate.WaitAsync(ct);
        try
        {
            var escrow = (await LedgerLookupAccountsAsync(new[] { EscrowAccount }, ct))[0];
            long holds = 0;
            foreach (var o in _orders.Values)
            {
                if (!_books.TryGetValue(o.Instrument.Id, out var book) || !book.TryGetOrder(o.Id, out var resting) || resting.Remaining != o.Remaining)
                    throw new InvalidOperationException($"Open order {o.Id} does not rest in its book as tracked.");
                if (o.Side == Side.Buy)
                {
                    if (o.HoldAmount != checked(o.Limit * o.Remaining)) throw new InvalidOperationException($"Order {o.Id}: hold {o.HoldAmount} != limit × remaining.");
                    holds = checked(holds + o.HoldAmount);
                }
            }
            if (escrow.CreditsPending != holds) throw new InvalidOperationException($"Escrow pending {escrow.CreditsPending} != open buy holds {holds}.");
            if (escrow.CreditsPosted != escrow.DebitsPosted) throw new InvalidOperationException("The order escrow keeps money it should have passed to leases.");
            foreach (var book in _books.Values) book.AssertInvariants();
        }
        finally { _gate.Release(); }
    }
}
