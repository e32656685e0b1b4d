using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using ComputeGrid.Exchange.Instruments;
using ComputeGrid.Exchange.Matching;
using ComputeGrid.Exchange.Pipeline;
using ComputeGrid.Exchange.StateMachine;
using ComputeGrid.Exchange.Trading;
using ComputeGrid.Inference.Routing;
using ComputeGrid.Ledger;
using ComputeGrid.Server.Inference;
using ComputeGrid.Server.Tokens;
using ComputeGrid.Tokens;

namespace ComputeGrid.Server.WholeSystem;

/// <summary>What became of a paid request, as its caller saw it.</summary>
internal enum RequestFate
{
    /// <summary>Answered (200): owed exactly one charge.</summary>
    Answered,
    /// <summary>Refused (402, 503, …): owed no charge.</summary>
    Refused,
    /// <summary>The call failed with the process (an I/O fault stopped a writer): at most one charge (recovery may complete its intent).</summary>
    InDoubt,
}

/// <summary>The simulation's own record of one paid request.</summary>
internal sealed class RequestRecord(long customer, UInt128 hold)
{
    public long Customer { get; } = customer;
    public UInt128 Hold { get; set; } = hold;
    public RequestFate Fate { get; set; } = RequestFate.InDoubt;
    public long Cost { get; set; }
    /// <summary>For an in-doubt request: whether the ledger settled it one way or the other (and it is counted).</summary>
    public bool Resolved { get; set; }
}

internal sealed partial class SimRun
{
    private readonly List<RequestRecord> _requests = [];
    private readonly List<RequestRecord> _stepRequests = [];
    private readonly List<RequestRecord> _inDoubt = [];
    // The charges the ledger owes the escrow's history: every answered request's cost, and in-doubt ones it captured.
    private long _expectedCharged;
    // Acknowledged orders the simulation believes open: id → (owner, remaining).
    private readonly SortedDictionary<long, (long Owner, long Remaining)> _open = [];
    private readonly Dictionary<long, int> _instrumentOf = [];

    public long AnsweredCount { get; private set; }

    private const long NsPerHour = 3_600_000_000_000L;

    // ================================================================== paid inference (gateway → router → node → hold/capture)

    private async Task InferenceRequestAsync(CancellationToken ct)
    {
        int ci = _act.Next(_customers.Length);
        long customer = _customers[ci];
        string key = $"sim-{options.Seed}-{++_requestNo}";
        string[] inputs = [.. Enumerable.Range(0, 1 + _act.Next(3))
            .Select(_ => string.Join(' ', Enumerable.Range(0, 2 + _act.Next(10)).Select(_ => Words[_act.Next(Words.Length)])))];
        RoutingPreferences preferences = _act.Next(4) switch
        {
            0 => RoutingPreferences.Default,
            1 => new RoutingPreferences { Sort = RouteSort.Latency },
            2 => new RoutingPreferences { Sort = RouteSort.Price },
            _ => new RoutingPreferences { Sort = RouteSort.Power, MaxLatencyMs = 250 },
        };
        var record = new RequestRecord(customer, InferencePayments.HoldId((ulong)customer, key));
        _requests.Add(record);
        _stepRequests.Add(record);
        long t0 = System.Diagnostics.Stopwatch.GetTimestamp();
        try
        {
            GatewayResult r = await _world.Gateway.EmbedAsync((ulong)customer, _world.Model, inputs, _customerRegion[ci], preferences, key, Fingerprint(key), ct);
            if (r.Status == 200) r = await _world.Gateway.ConfirmAsync(r);
            if (r.Status == 200)
            {
                Check(r.Charged && r.CostMicroUsd > 0, "answered_is_charged", $"request {key} was answered with charged={r.Charged}, cost {r.CostMicroUsd}");
                record.Fate = RequestFate.Answered;
                record.Hold = r.TransferId;
                record.Cost = r.CostMicroUsd;
                _expectedCharged = checked(_expectedCharged + r.CostMicroUsd);
                AnsweredCount++;
            }
            else record.Fate = RequestFate.Refused;
            Trace("inference", t0);
        }
        catch (Exception) when (_world.Faulted)
        {
            record.Fate = RequestFate.InDoubt;
            _inDoubt.Add(record);
            await RestartAsync(clean: false, ct);
        }
    }

    private static UInt128 Fingerprint(string key)
    {
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(Encoding.UTF8.GetBytes(key), hash);
        return BinaryPrimitives.ReadUInt128LittleEndian(hash);
    }

    // ================================================================== the exchange's traders and providers

    private async Task<Instrument?> PickInstrumentAsync(string region, CancellationToken ct)
    {
        long now = ComputeGrid.Core.Clock.UnixNanoseconds(clock);
        Instrument[] open = await _world.Exchange.ReadAsync(sm => sm.Instruments.Active
            .Where(i => i.Gpu == GpuClass.H100 && i.Region == region && i.Kind == DeliveryKind.HourlySpot && i.IsTradingAt(now) && i.DeliveryStart > now)
            .OrderBy(i => i.DeliveryStart).Take(4).ToArray(), ct);
        return open.Length == 0 ? null : open[_act.Next(open.Length)];
    }

    private async Task ProviderSellAsync(CancellationToken ct)
    {
        SimNode node = _nodes[_act.Next(_nodes.Count)];
        Instrument? inst = await PickInstrumentAsync(latency.Regions[node.Region], ct);
        long price = (1_500 + _act.Next(1_500)) * SimPrices.H100Tick;
        long gpus = 1 + _act.Next(4);
        if (inst is null) return;
        await PlaceAsync(ExchangeCommand.Place(ProviderOf(node), inst.Id, Side.Sell, OrderType.Limit, TimeInForce.GoodTillCancel, price, gpus * inst.Hours), ct);
    }

    private async Task CustomerBuyAsync(CancellationToken ct)
    {
        long customer = _customers[_act.Next(_customers.Length)];
        SimNode near = _nodes[_act.Next(_nodes.Count)];
        Instrument? inst = await PickInstrumentAsync(latency.Regions[near.Region], ct);
        long price = (1_500 + _act.Next(1_500)) * SimPrices.H100Tick;
        long gpus = 1 + _act.Next(3);
        TimeInForce tif = _act.Next(3) == 0 ? TimeInForce.ImmediateOrCancel : TimeInForce.GoodTillCancel;
        if (inst is null) return;
        await PlaceAsync(ExchangeCommand.Place(customer, inst.Id, Side.Buy, OrderType.Limit, tif, price, gpus * inst.Hours), ct);
    }

    // An exchange command whose answer an I/O fault cut off: it may or may not be in the journal (never acknowledged).
    // The first check after the restart accepts either outcome for what it could have touched, then forgets it.
    private readonly List<ExchangeCommand> _inDoubtCommands = [];

    private async Task<CommandOutcome> SubmitAsync(ExchangeCommand command, CancellationToken ct)
    {
        try { return await _world.Exchange.SubmitAsync(command, ct); }
        catch (Exception) when (_world.Faulted)
        {
            _inDoubtCommands.Add(command);
            throw;
        }
    }

    private async Task PlaceAsync(ExchangeCommand command, CancellationToken ct)
    {
        CommandOutcome o = await SubmitAsync(command, ct);
        if (!o.Result.Ok) return; // refused (no capacity, no money, …): an answer, not an acknowledged order
        OrdersAcknowledged++;
        if (_shareInstruments.Contains(command.Instrument)) ShareTrades += o.Fills.Length;
        var leases = new HashSet<long>();
        foreach (FillRecord f in o.Fills)
        {
            if (f.LeaseId != 0) leases.Add(f.LeaseId);
            foreach (long id in new[] { f.OrderId, f.CounterOrderId })
            {
                if (id == o.Result.Subject || !_open.TryGetValue(id, out var rest)) continue;
                long left = rest.Remaining - f.Quantity;
                if (left <= 0) _open.Remove(id);
                else _open[id] = (rest.Owner, left);
            }
        }
        LeasesCreated += leases.Count;
        if (o.Result.Status == OrderStatus.Resting && o.Result.Remaining > 0)
        {
            _open[o.Result.Subject] = (command.Owner, o.Result.Remaining);
            _instrumentOf[o.Result.Subject] = command.Instrument;
        }
    }

    private async Task CancelSomeOrderAsync(CancellationToken ct)
    {
        if (_open.Count == 0) return;
        (long id, (long owner, _)) = _open.ElementAt(_act.Next(_open.Count));
        CommandOutcome o = await SubmitAsync(ExchangeCommand.Cancel(owner, id), ct);
        if (o.Result.Ok) _open.Remove(id);
    }

    private async Task DepositAsync(CancellationToken ct)
    {
        long c = _customers[_act.Next(_customers.Length)];
        // A deposit leaves at least 1 USD on the balance: a step's holds (tens of micro-USD) never meet an empty account,
        // so when the settler captures within the step decides nothing.
        Account[] a = await _world.Ledger.LookupAccountsAsync([Customer(c)], ct);
        if (a.Length != 1 || a[0].AvailableCredit < 3_000_000) return;
        await _world.Exchange.SubmitAsync(new ExchangeCommand { Kind = ExchangeCommandKind.Deposit, Owner = c, Account = Customer(c), Amount = 2_000_000 }, ct);
    }

    private async Task TopUpAsync(CancellationToken ct)
    {
        long c = _customers[_act.Next(_customers.Length)];
        Account[] a = await _world.Ledger.LookupAccountsAsync([Customer(c)], ct);
        if (a.Length == 1 && a[0].CreditsPosted - a[0].DebitsPosted - a[0].DebitsPending < 2_000_000) await FundAsync(c, TopUp, "top-up", ct);
    }

    private async Task TransferSharesAsync(CancellationToken ct)
    {
        long node = ShareNodes[_act.Next(ShareNodes.Length)];
        long from = _customers[_act.Next(4)], to = _customers[_act.Next(_customers.Length)];
        long shares = 1 + _act.Next(20);
        if (from == to) return;
        await _world.Exchange.SubmitAsync(ExchangeCommand.TransferShares(from, node, to, shares), ct);
    }

    // The API's claim path (ShareEndpoints.ClaimAsync → ShareRevenue.ClaimAsync), into the holder's balance: all that is
    // owed, or a seeded part of it.
    private async Task ClaimAsync(CancellationToken ct)
    {
        long node = ShareNodes[_act.Next(ShareNodes.Length)];
        // Mostly a customer holding shares now (trades move them), sometimes any customer (most likely owed nothing).
        long[] holding = await _world.Exchange.ReadAsync(sm => sm.HoldersOf(node).Select(h => h.Holder).Where(h => _customers.Contains(h)).ToArray(), ct);
        long holder = holding.Length > 0 && _act.Next(4) != 0 ? holding[_act.Next(holding.Length)] : _customers[_act.Next(_customers.Length)];
        long amount = 0;
        if (_act.Next(3) == 0 && await _world.Shares.EntitlementAsync((ulong)node, (ulong)holder, ct) is { Owed: > 1 } e) amount = 1 + _act.NextInt64(e.Owed - 1);
        ClaimOutcome o = await _world.Shares.ClaimAsync((ulong)node, (ulong)holder, amount, Customer(holder), ct);
        if (o.Decision == ClaimDecision.Claim) Claims++;
    }

    // Share instruments (SHR-{node}) by id: their fills are counted as share trades.
    private readonly HashSet<int> _shareInstruments = [];

    /// <summary>Fills on the share instruments (each moves shares between holders, settled in the ledger).</summary>
    public long ShareTrades { get; private set; }

    /// <summary>Claims that paid share revenue into a holder's balance.</summary>
    public long Claims { get; private set; }

    // A holder trades a node's shares on its book (SHR-{node}) through the exchange pipeline like any order: a holder
    // with free shares sells some (or buys more), anyone else buys; prices 5-24 cents a share, so a buy's hold stays far
    // below a customer's trading deposit. The fills move the shares in the ledger, and the share book follows them, so
    // revenue that reaches the node afterwards is owed to the new holders.
    private async Task ShareTradeAsync(CancellationToken ct)
    {
        long node = ShareNodes[_act.Next(ShareNodes.Length)];
        long issuer = FirstProvider + (node - FirstNode) / NodesPerProvider;
        long trader = _act.Next(10) == 0 ? issuer : _customers[_act.Next(_customers.Length)];
        var (instrument, free) = await _world.Exchange.ReadAsync(sm => (sm.ShareNode(node)?.Instrument ?? -1, sm.HoldingOf(trader, node).Free), ct);
        Check(instrument >= 0, "shares_issued", $"node {node} has no share instrument");
        _shareInstruments.Add(instrument);
        bool sell = free > 0 && (trader == issuer || _act.Next(2) == 0);
        long price = (5 + _act.Next(20)) * Instrument.ShareBand.Tick;
        long quantity = sell ? 1 + _act.NextInt64(Math.Min(free, 25)) : 1 + _act.Next(20);
        TimeInForce tif = _act.Next(4) == 0 ? TimeInForce.ImmediateOrCancel : TimeInForce.GoodTillCancel;
        await PlaceAsync(ExchangeCommand.Place(trader, instrument, sell ? Side.Sell : Side.Buy, OrderType.Limit, tif, price, quantity), ct);
    }

    // Providers report delivery of their leases' hours that have passed (on the lease's hour grid).
    private async Task DeliverAsync(CancellationToken ct)
    {
        long now = ComputeGrid.Core.Clock.UnixNanoseconds(clock);
        var due = await _world.Exchange.ReadAsync(sm => sm.Leases()
            .Where(l => l.Status == LeaseStatus.Active && l.Parent is null && l.Start + (l.DeliveredGpuHours / Math.Max(1, l.Gpus)) * NsPerHour + NsPerHour <= now)
            .Select(l => (l.Id, l.Provider, From: l.Start + l.DeliveredGpuHours / Math.Max(1, l.Gpus) * NsPerHour, l.Start, l.End))
            .ToArray(), ct);
        foreach (var (id, provider, from, start, end) in due)
        {
            long to = Math.Min(end, start + (now - start) / NsPerHour * NsPerHour);
            if (to > from) await _world.Exchange.SubmitAsync(new ExchangeCommand { Kind = ExchangeCommandKind.Deliver, Owner = provider, Target = id, From = from, To = to }, ct);
        }
    }
}
