using ComputeGrid.Exchange.Instruments;
using ComputeGrid.Exchange.Matching;
using ComputeGrid.Exchange.StateMachine;
using ComputeGrid.Exchange.Trading;
using ComputeGrid.Ledger;

namespace ComputeGrid.Exchange.Tests.StateMachine;

/// <summary>What one command did, as the reference says: comparable with a <see cref="CommandResult"/> and its fills.</summary>
public sealed record ReferenceResult(ExchangeError Error, RejectReason BookReject, OrderStatus Status, RefusalDetail Detail, long DetailValue,
    long Subject, long Remaining, IReadOnlyList<FillRecord> Fills, long Cost = 0)
{
    public bool Ok => Error == ExchangeError.None;
}

/// <summary>An account's asset and four balances (micro-USD, or whole shares of a node), in the ledger's terms.</summary>
public readonly record struct Balances(uint Asset, long DebitsPending, long DebitsPosted, long CreditsPending, long CreditsPosted);

/// <summary>
/// A plain, obviously-correct model of the whole exchange, money included: the oracle of
/// <see cref="ExchangeDifferentialTests"/> for <see cref="ExchangeStateMachine"/>. It shares the semantics, not the
/// code: matching is <see cref="ReferenceOrderBook"/>; orders, nodes, leases and capacity are lists and dictionaries
/// scanned naively (a sell's committed GPUs are not stored but summed from the open sells, hour by hour); money is
/// a naive ledger of its own — every account's posted debits and credits moved directly by the reference's logic, in
/// its own asset (USD, or one node's shares), its pending amounts derived from the open orders (each buy holds
/// limit × remaining dollars, each share sell its remaining shares). It never reads the state machine's plan: the test
/// compares this model with the real ledger the plan was applied to. Node shares (issuance, transfers, share orders and
/// share pools) are in <c>ReferenceExchange.Shares.cs</c>.
/// <para>
/// Semantics (the old <c>ExchangeService</c>'s, with the state machine's deliberate changes): money for buys is the
/// trader's exchange trading account, counted once a deposit's ledger result comes back Ok; a buy needs available
/// ≥ limit × quantity (a market buy: the band's maximum); a sell needs the provider's free GPUs in every hour of the
/// window. A refused command changes nothing. A good-till-time order that expired leaves its book when a command
/// acts on that book (a place, cancel or replace naming it, a node going down that reviews its provider's sells in
/// it, any tick), before the command is checked; until then it keeps what it held. A lease reserves
/// min(penalty × notional, free collateral); a failure refunds the rest and pays min(penalty × refund, reserve).
/// Node failures fail only leases in delivery; later ones fail at the first tick at or after their start if a node of
/// theirs is still down.
/// </para>
/// </summary>
public sealed partial class ReferenceExchange
{
    private const long NsPerHour = 3_600_000_000_000L;

    /// <summary>The exchange's order escrow (holds of open buys are its pending credits).</summary>
    public static readonly UInt128 Escrow = ChartOfAccounts.SystemAccount(AccountCode.ExchangeEscrow, ComputeGrid.Core.Asset.Usd);

    private readonly InstrumentRegistry _registry;
    private readonly int _ordersPerBookMax;
    private readonly int _penaltyBasisPoints;
    private readonly ulong _epoch;
    private readonly PledgeTerms _pledges;

    // ---- money: every account, posted amounts moved directly; pending amounts derived from the open orders
    private sealed class Money(AccountFlags flags, uint asset)
    {
        public readonly AccountFlags Flags = flags;
        public readonly uint Asset = asset;
        public long DebitsPosted, CreditsPosted;
    }

    private readonly Dictionary<UInt128, Money> _accounts = [];

    // ---- participants
    private sealed class Trader
    {
        /// <summary>What the exchange counts as the trader's: settled deposits − withdrawals − bought + refunds + penalties.</summary>
        public long Cash;
    }

    private sealed class Provider(UInt128 revenue, UInt128 collateral, long collateralFree)
    {
        public readonly UInt128 Revenue = revenue, Collateral = collateral;
        public long CollateralFree = collateralFree;
    }

    private sealed record PendingDeposit(long Owner, long Amount, bool Collateral, bool LedgerTakes, bool Withdrawal = false);

    private readonly SortedDictionary<long, Trader> _traders = [];
    private readonly SortedDictionary<long, Provider> _providers = [];
    private readonly SortedDictionary<long, PendingDeposit> _deposits = [];

    // ---- orders and books
    private sealed class Order
    {
        public required long Id, Owner;
        public required Instrument Instrument;
        public required Side Side;
        public required long Limit;
        public long Remaining;
        /// <summary>The lease whose time a resale sell offers (null: the provider's capacity backs it).</summary>
        public long? ResoldLease;
        public bool Shares => Instrument.Class == InstrumentClass.NodeShares;
        /// <summary>What the order holds in the ledger: a buy limit × remaining micro-USD, a share sell its remaining shares, a compute sell nothing.</summary>
        public long Hold => Side == Side.Buy ? checked(Limit * Remaining) : Shares ? Remaining : 0;
    }

    private readonly SortedDictionary<long, Order> _orders = [];
    private readonly SortedDictionary<int, ReferenceOrderBook> _books = [];
    private readonly Dictionary<long, (OrderEndReason Reason, long Value)> _ended = [];

    // ---- nodes, capacity and leases
    private sealed class NodeRecord
    {
        public required long Id, Provider;
        public required string Name, Region;
        public required GpuClass Gpu;
        public required int Gpus;
        public long? DownSince;
    }

    private sealed class LeaseRecord
    {
        public required long Id, Buyer, Provider, Payee, Start, End, Price, Notional;
        /// <summary>The lease this one was resold from.</summary>
        public long? Parent;
        public required int Instrument, Gpus;
        public required UInt128 Escrow, PayeeAccount;
        public required List<(long Node, int Gpus)> Nodes;
        public LeaseStatus Status;
        public long Delivered, Paid, Refunded, Penalty, Shortfall, Reserve;
        public bool StartChecked;
        public long GpuHours => Gpus * ((End - Start) / NsPerHour);
    }

    private readonly List<NodeRecord> _nodes = [];
    private readonly Dictionary<(long Node, long Hour), int> _leased = [];
    private readonly List<LeaseRecord> _leases = [];

    // ---- the running command
    private ulong _seq;
    private long _now;
    private int _leasesOfCommand;
    private long _trades;

    public ReferenceExchange(InstrumentRegistry registry, int ordersPerBookMax, int penaltyBasisPoints, ulong epoch, PledgeTerms? pledges = null)
    {
        _pledges = pledges ?? new PledgeTerms();
        _registry = registry;
        _ordersPerBookMax = ordersPerBookMax;
        _penaltyBasisPoints = penaltyBasisPoints;
        _epoch = epoch;
    }

    // ================================================================== money

    /// <summary>Opens an account in the reference's ledger (the test's setup opens the same in the real one); USD unless told.</summary>
    public void CreateAccount(UInt128 id, AccountFlags flags, uint asset = 0)
    {
        if (!_accounts.ContainsKey(id)) _accounts[id] = new Money(flags, asset == 0 ? ComputeGrid.Core.Asset.Usd.Code : asset);
    }

    /// <summary>Moves posted money (the test's setup funds accounts through it too).</summary>
    public void Post(UInt128 debit, UInt128 credit, long amount)
    {
        Money d = _accounts[debit], c = _accounts[credit];
        d.DebitsPosted = checked(d.DebitsPosted + amount);
        c.CreditsPosted = checked(c.CreditsPosted + amount);
    }

    /// <summary>The holds of the open orders as pending transfers: a buy's from its owner's trading account to the order escrow, a share sell's from its owner's holding to the node's share escrow.</summary>
    private IEnumerable<(UInt128 Debit, UInt128 Credit, long Amount)> Holds() =>
        _orders.Values.Where(o => o.Hold > 0).Select(o => o.Side == Side.Buy
            ? (ExchangeStateMachine.TradingAccount(o.Owner), Escrow, o.Hold)
            : (HoldingAccount(o.Owner, o.Instrument.Node), ShareEscrow(o.Instrument.Node), o.Hold));

    private long DebitsPending(UInt128 account) => Holds().Where(h => h.Debit == account).Sum(h => h.Amount);

    /// <summary>Would the ledger take this transfer? (Both accounts exist and differ; a debit-limited account can pay it.)</summary>
    private bool LedgerTakes(UInt128 debit, UInt128 credit, long amount)
    {
        if (debit == credit || !_accounts.TryGetValue(debit, out Money? d) || !_accounts.ContainsKey(credit)) return false;
        if ((d.Flags & AccountFlags.DebitsMustNotExceedCredits) != 0 && d.DebitsPosted + DebitsPending(debit) + amount > d.CreditsPosted) return false;
        return true;
    }

    /// <summary>Every account's balances, as the real ledger must hold them.</summary>
    public IReadOnlyDictionary<UInt128, Balances> Accounts()
    {
        var debits = new Dictionary<UInt128, long>();
        var credits = new Dictionary<UInt128, long>();
        foreach ((UInt128 debit, UInt128 credit, long amount) in Holds())
        {
            debits[debit] = debits.GetValueOrDefault(debit) + amount;
            credits[credit] = credits.GetValueOrDefault(credit) + amount;
        }
        var result = new Dictionary<UInt128, Balances>();
        foreach ((UInt128 id, Money m) in _accounts)
            result[id] = new Balances(m.Asset, debits.GetValueOrDefault(id), m.DebitsPosted, credits.GetValueOrDefault(id), m.CreditsPosted);
        return result;
    }

    // ================================================================== views

    /// <summary>A trader's available balance (null: not a trader): cash minus the holds of its open buys.</summary>
    public long? Available(long owner) => _traders.TryGetValue(owner, out Trader? t) ? t.Cash - DebitsPending(ExchangeStateMachine.TradingAccount(owner)) : null;

    /// <summary>A provider's collateral not reserved by its leases (null: not a provider).</summary>
    public long? CollateralAvailable(long provider) => _providers.TryGetValue(provider, out Provider? p) ? p.CollateralFree : null;

    public IReadOnlyCollection<long> Traders => _traders.Keys;

    public IReadOnlyCollection<long> Providers => _providers.Keys;

    /// <summary>Deposits waiting for the ledger's answer, by command sequence.</summary>
    public IReadOnlyList<long> PendingDeposits => _deposits.Keys.ToList();

    /// <summary>Whether the ledger takes the deposit of command <paramref name="seq"/> (the reference's own prediction).</summary>
    public bool DepositTaken(long seq) => _deposits[seq].LedgerTakes;

    /// <summary>Open orders by id (Price is the limit; HoldAmount is limit × remaining for buys).</summary>
    public IReadOnlyList<OpenOrder> OpenOrders() =>
        _orders.Values.Select(o => new OpenOrder(o.Id, o.Owner, o.Instrument.Id, o.Side, o.Limit, o.Remaining, o.Hold, o.ResoldLease)).ToList();

    /// <summary>Instruments that have a book now.</summary>
    public IReadOnlyCollection<int> Books => _books.Keys;

    /// <summary>The resting orders of a book in priority order.</summary>
    public IReadOnlyList<RestingOrder> Resting(int instrument) => _books.TryGetValue(instrument, out ReferenceOrderBook? b) ? b.Orders() : [];

    public IReadOnlyList<Node> Nodes => _nodes.Select(n => new Node(n.Id, n.Provider, n.Name, n.Gpu, n.Region, n.Gpus) { DownSince = n.DownSince }).ToList();

    public IReadOnlyList<LeaseView> Leases => _leases.Select(l => new LeaseView(l.Id, l.Instrument, l.Buyer, l.Provider, l.Payee, l.PayeeAccount, l.Parent, l.Start, l.End, l.Gpus,
        l.Price, l.Notional, l.Escrow, l.Nodes.ToArray(), l.Status, l.Delivered, l.Paid, l.Refunded, l.Penalty, l.Shortfall, l.Reserve)).ToList();

    /// <summary>An instrument the registry still knows (active or not), or null.</summary>
    public Instrument? InstrumentOf(int id) => _registry.TryGet(id, out Instrument? i) ? i : null;

    /// <summary>Why orders ended other than by their owner or the matcher (instrument closed, node down).</summary>
    public IReadOnlyDictionary<long, (OrderEndReason Reason, long Value)> Ended => _ended;

    public IReadOnlyList<Instrument> ActiveInstruments => _registry.Active;

    /// <summary>Leases failed by a tick at their start because a node of theirs was down (for the test's coverage report).</summary>
    public int FailedAtStart { get; private set; }

    // ================================================================== commands

    /// <summary>Applies one command; the same <see cref="ExchangeCommand"/> the state machine takes.</summary>
    public ReferenceResult Apply(in ExchangeCommand c)
    {
        _seq = c.Seq;
        _now = c.Time;
        _leasesOfCommand = 0;
        var fills = new List<FillRecord>();
        // Time first: the book a place, cancel or replace acts on drops the orders that expired by now, whatever the
        // command's outcome, so the command is checked against the book it will meet.
        if (c.Kind is ExchangeCommandKind.Place or ExchangeCommandKind.Resell && _books.ContainsKey(c.Instrument)) ExpireBook(c.Instrument);
        if (c.Kind is ExchangeCommandKind.Cancel or ExchangeCommandKind.Replace && _orders.TryGetValue(c.Target, out Order? target)) ExpireBook(target.Instrument.Id);
        return c.Kind switch
        {
            ExchangeCommandKind.RegisterTrader => RegisterTrader(c.Owner),
            ExchangeCommandKind.RegisterProvider => RegisterProvider(in c),
            ExchangeCommandKind.AdmitNode => AdmitNode(in c),
            ExchangeCommandKind.Deposit => Deposit(in c, collateral: false),
            ExchangeCommandKind.FundCollateral => Deposit(in c, collateral: true),
            ExchangeCommandKind.Withdraw => Withdraw(in c),
            ExchangeCommandKind.TransferSettled => Settled(in c),
            ExchangeCommandKind.Place => Place(in c, fills),
            ExchangeCommandKind.Cancel => Cancel(in c, fills),
            ExchangeCommandKind.Replace => Replace(in c, fills),
            ExchangeCommandKind.Resell => Resell(in c, fills),
            ExchangeCommandKind.Block => Block(in c, fills),
            ExchangeCommandKind.Deliver => Deliver(in c),
            ExchangeCommandKind.Outage => Outage(in c),
            ExchangeCommandKind.NodeTimeout => NodeDown(c.Target, c.From),
            ExchangeCommandKind.NodeUp => NodeUp(c.Target),
            ExchangeCommandKind.Tick => Tick(fills),
            ExchangeCommandKind.ApproveIssuer => ApproveIssuer(c.Owner),
            ExchangeCommandKind.IssueShares => IssueShares(in c),
            ExchangeCommandKind.TransferShares => TransferShares(in c),
            ExchangeCommandKind.Pledge => Pledge(in c),
            ExchangeCommandKind.Repay => Repay(in c),
            ExchangeCommandKind.PledgeLease => PledgeLease(in c),
            _ => Refuse(ExchangeError.InvalidRequest),
        };
    }

    private static ReferenceResult Refuse(ExchangeError e, RefusalDetail detail = RefusalDetail.None, long value = 0, RejectReason book = RejectReason.None) =>
        new(e, book, OrderStatus.Rejected, detail, value, 0, 0, []);

    private static ReferenceResult Done(long subject, OrderStatus status = OrderStatus.Rejected) => new(ExchangeError.None, RejectReason.None, status, RefusalDetail.None, 0, subject, 0, []);

    // ---- participants and money

    private ReferenceResult RegisterTrader(long owner)
    {
        if (owner <= 0) return Refuse(ExchangeError.InvalidRequest);
        if (!_traders.ContainsKey(owner))
        {
            _traders[owner] = new Trader();
            CreateAccount(ExchangeStateMachine.TradingAccount(owner), AccountFlags.DebitsMustNotExceedCredits);
        }
        return Done(owner);
    }

    private ReferenceResult RegisterProvider(in ExchangeCommand c)
    {
        if (c.Owner <= 0 || c.Amount < 0 || c.Account == 0 || c.Account2 == 0) return Refuse(ExchangeError.InvalidRequest);
        if (_providers.ContainsKey(c.Owner)) return Refuse(ExchangeError.AlreadyRegistered);
        _providers[c.Owner] = new Provider(c.Account, c.Account2, c.Amount);
        RegisterTrader(c.Owner);
        return Done(c.Owner);
    }

    private ReferenceResult AdmitNode(in ExchangeCommand c)
    {
        if (c.Gpus <= 0 || string.IsNullOrWhiteSpace(c.Name) || !GpuClasses.IsDefined(c.Gpu) || c.Region is null || !_registry.Schedule.Regions.Contains(c.Region))
            return Refuse(ExchangeError.InvalidRequest);
        if (!_providers.ContainsKey(c.Owner)) return Refuse(ExchangeError.UnknownProvider);
        _nodes.Add(new NodeRecord { Id = (long)_seq, Provider = c.Owner, Name = c.Name, Gpu = c.Gpu, Region = c.Region, Gpus = c.Gpus });
        return Done((long)_seq);
    }

    private ReferenceResult Deposit(in ExchangeCommand c, bool collateral)
    {
        // Money the exchange keeps (and counts) cannot be the source: it would leave behind the exchange's back.
        UInt128 source = c.Account;
        bool kept = (ChartOfAccounts.TryDecode(source, out ushort code, out _, out _)
                     && (AccountCode)code is AccountCode.ExchangeTrading or AccountCode.ExchangeEscrow or AccountCode.LeaseEscrow)
                    || _providers.Values.Any(p => p.Collateral == source);
        if (c.Amount <= 0 || c.Account == 0 || kept) return Refuse(ExchangeError.InvalidRequest);
        UInt128 to;
        if (collateral)
        {
            if (!_providers.TryGetValue(c.Owner, out Provider? p)) return Refuse(ExchangeError.UnknownProvider);
            to = p.Collateral;
        }
        else
        {
            if (!_traders.ContainsKey(c.Owner)) return Refuse(ExchangeError.UnknownTrader);
            to = ExchangeStateMachine.TradingAccount(c.Owner);
        }
        // The ledger moves the money now if the source can pay; the exchange counts it only when told so.
        bool takes = LedgerTakes(c.Account, to, c.Amount);
        if (takes) Post(c.Account, to, c.Amount);
        _deposits[(long)_seq] = new PendingDeposit(c.Owner, c.Amount, collateral, takes);
        return Done((long)_seq, OrderStatus.Resting);
    }

    private ReferenceResult Settled(in ExchangeCommand c)
    {
        if (!_deposits.Remove(c.Target, out PendingDeposit? d)) return Refuse(ExchangeError.InvalidRequest);
        if (d.Withdrawal)
        {
            // A refused withdrawal's money is the trader's again.
            if (!c.Ok) _traders[d.Owner].Cash += d.Amount;
        }
        else if (c.Ok)
        {
            if (d.Collateral) _providers[d.Owner].CollateralFree += d.Amount;
            else _traders[d.Owner].Cash += d.Amount;
        }
        return Done(c.Target, c.Ok ? OrderStatus.Filled : OrderStatus.Rejected);
    }

    private ReferenceResult Withdraw(in ExchangeCommand c)
    {
        if (c.Amount <= 0 || c.Account == 0) return Refuse(ExchangeError.InvalidRequest);
        if (!_traders.TryGetValue(c.Owner, out Trader? t)) return Refuse(ExchangeError.UnknownTrader);
        long available = Available(c.Owner)!.Value;
        if (available < c.Amount) return Refuse(ExchangeError.InsufficientBalance, RefusalDetail.WithdrawalShort, available);
        t.Cash -= c.Amount;
        // The ledger pays it out now if the destination exists; the exchange hears its answer later.
        bool takes = LedgerTakes(ExchangeStateMachine.TradingAccount(c.Owner), c.Account, c.Amount);
        if (takes) Post(ExchangeStateMachine.TradingAccount(c.Owner), c.Account, c.Amount);
        _deposits[(long)_seq] = new PendingDeposit(c.Owner, c.Amount, false, takes, Withdrawal: true);
        return Done((long)_seq, OrderStatus.Resting);
    }

    // ---- orders

    /// <summary>The unit of an instrument's quantities: the hours of its window (whole GPUs over it); 1 for shares (whole shares).</summary>
    private static long HoursOf(Instrument i) => i.Class == InstrumentClass.NodeShares ? 1 : (i.DeliveryEnd - i.DeliveryStart) / NsPerHour;

    private static IEnumerable<long> HourStarts(Instrument i)
    {
        for (long h = i.DeliveryStart; h < i.DeliveryEnd; h += NsPerHour) yield return h;
    }

    private static bool Crosses(Side taker, long limit, long makerPrice) => taker == Side.Buy ? makerPrice <= limit : makerPrice >= limit;

    /// <summary>Why an order on <c>c.Instrument</c> cannot trade now (unknown, outside its window, not a trader, not whole GPUs), or null.</summary>
    private ReferenceResult? Untradable(in ExchangeCommand c, out Instrument instrument, out long hours)
    {
        hours = 0;
        if (!_registry.TryGet(c.Instrument, out Instrument? known) || !_registry.IsActive(c.Instrument))
        {
            instrument = null!;
            return Refuse(ExchangeError.UnknownInstrument);
        }
        instrument = known;
        if (_now < instrument.TradingStart || _now >= instrument.TradingEnd)
            return Refuse(ExchangeError.InstrumentNotTrading, RefusalDetail.NotTrading, _now < instrument.TradingStart ? instrument.TradingStart : instrument.TradingEnd);
        if (!_traders.ContainsKey(c.Owner)) return Refuse(ExchangeError.UnknownTrader);
        hours = HoursOf(instrument);
        if (c.Quantity <= 0 || c.Quantity % hours != 0) return Refuse(ExchangeError.QuantityMustBeWholeGpus, RefusalDetail.NotWholeGpus, hours);
        return null;
    }

    private ReferenceResult Place(in ExchangeCommand c, List<FillRecord> fills)
    {
        if (Untradable(in c, out Instrument instrument, out long hours) is { } untradable) return untradable;
        if (!Enum.IsDefined(c.Side) || !Enum.IsDefined(c.Type) || !Enum.IsDefined(c.TimeInForce)) return Refuse(ExchangeError.InvalidRequest);
        PriceBand band = instrument.Band;
        bool market = c.Type == OrderType.Market, buy = c.Side == Side.Buy;
        if (!market)
        {
            RejectReason off = c.Price <= 0 ? RejectReason.PriceMustBePositive
                : c.Price < band.MinPrice || c.Price > band.MaxPrice ? RejectReason.PriceOutsideBand
                : (c.Price - band.MinPrice) % band.Tick != 0 ? RejectReason.PriceNotOnTick : RejectReason.None;
            if (off != RejectReason.None) return Refuse(ExchangeError.BookRejected, RefusalDetail.PriceOffBand, 0, off);
        }
        else if (c.Price != 0) return Refuse(ExchangeError.InvalidRequest);

        // What the order would meet: the other side in priority order.
        ReferenceOrderBook? book = _books.GetValueOrDefault(instrument.Id);
        Side side = c.Side;
        List<RestingOrder> opposite = book is null ? [] : book.Orders().Where(o => o.Side != side).ToList();
        if (market && opposite.Count == 0) return Refuse(ExchangeError.BookRejected, RefusalDetail.NoLiquidity, 0, RejectReason.NoLiquidity);
        if (c.PostOnly && (market || (opposite.Count > 0 && Crosses(c.Side, c.Price, opposite[0].Price))))
            return Refuse(ExchangeError.BookRejected, RefusalDetail.PostOnlyWouldTake, 0, RejectReason.PostOnlyWouldTake);
        if (c.TimeInForce == TimeInForce.FillOrKill)
        {
            long fillable = 0;
            foreach (RestingOrder o in opposite)
            {
                if ((!market && !Crosses(c.Side, c.Price, o.Price)) || o.Owner == c.Owner) break; // self-trade prevention stops the taker there
                fillable += o.Remaining;
            }
            if (fillable < c.Quantity) return Refuse(ExchangeError.BookRejected, RefusalDetail.FillOrKillUnfillable, 0, RejectReason.FillOrKillUnfillable);
        }
        if (c.TimeInForce == TimeInForce.GoodTillTime && c.ExpiresAt <= _now) return Refuse(ExchangeError.InvalidRequest);
        // The book's own refusals, asked before anything is held.
        if (market && c.TimeInForce == TimeInForce.GoodTillTime) return Refuse(ExchangeError.BookRejected, book: RejectReason.MarketOrderMustBeImmediate);
        bool rests = !market && c.TimeInForce is TimeInForce.GoodTillCancel or TimeInForce.GoodTillTime;
        if (rests && book is not null && book.Count >= _ordersPerBookMax) return Refuse(ExchangeError.BookRejected, book: RejectReason.BookFull);

        long limit = market ? (buy ? band.MaxPrice : band.MinPrice) : c.Price;
        long gpus = c.Quantity / hours;
        if (buy)
        {
            Int128 hold = (Int128)limit * c.Quantity;
            if (hold > long.MaxValue) return Refuse(ExchangeError.NotionalOverflows);
            long available = Available(c.Owner)!.Value;
            if (available < hold) return Refuse(ExchangeError.InsufficientBalance, RefusalDetail.BalanceShort, available);
        }
        else if (instrument.Class == InstrumentClass.NodeShares)
        {
            if (SharesShort(c.Owner, instrument.Node, c.Quantity) is ReferenceResult refused) return refused;
        }
        else
        {
            if (!_providers.ContainsKey(c.Owner)) return Refuse(ExchangeError.InsufficientCapacity, RefusalDetail.NotAProvider);
            long free = FreeGpus(c.Owner, instrument);
            if (free < gpus)
            {
                NodeRecord? down = Pool(c.Owner, instrument.Gpu, instrument.Region).FirstOrDefault(n => n.DownSince is not null);
                return down is not null ? Refuse(ExchangeError.InsufficientCapacity, RefusalDetail.CapacityShortNodeDown, down.Id)
                    : Refuse(ExchangeError.InsufficientCapacity, RefusalDetail.CapacityShort, free);
            }
        }

        // Accepted: the order is open (a buy holds limit × quantity, a sell commits its GPUs: both derived from it).
        var order = new Order { Id = (long)_seq, Owner = c.Owner, Instrument = instrument, Side = c.Side, Limit = limit, Remaining = c.Quantity };
        _orders.Add(order.Id, order);
        if (book is null) _books[instrument.Id] = new ReferenceOrderBook(band, _ordersPerBookMax);
        return RunBook(instrument.Id, new OrderCommand
        {
            Kind = CommandKind.Place, Side = c.Side, Type = c.Type, TimeInForce = c.TimeInForce, PostOnly = c.PostOnly, OrderId = order.Id, Owner = c.Owner,
            Price = market ? 0 : c.Price, Quantity = c.Quantity, ExpiresAt = c.TimeInForce == TimeInForce.GoodTillTime ? c.ExpiresAt : 0, Timestamp = _now,
        }, order.Id, fills);
    }

    private ReferenceResult Cancel(in ExchangeCommand c, List<FillRecord> fills)
    {
        if (!_orders.TryGetValue(c.Target, out Order? o)) return Refuse(ExchangeError.UnknownOrder);
        if (o.Owner != c.Owner) return Refuse(ExchangeError.NotOwner);
        return RunBook(o.Instrument.Id, new OrderCommand { Kind = CommandKind.Cancel, OrderId = o.Id, Owner = o.Owner, Side = o.Side, Timestamp = _now }, o.Id, fills);
    }

    private ReferenceResult Replace(in ExchangeCommand c, List<FillRecord> fills)
    {
        if (!_orders.TryGetValue(c.Target, out Order? o)) return Refuse(ExchangeError.UnknownOrder);
        if (o.Owner != c.Owner) return Refuse(ExchangeError.NotOwner);
        long hours = HoursOf(o.Instrument);
        if (c.Quantity <= 0 || c.Quantity % hours != 0) return Refuse(ExchangeError.QuantityMustBeWholeGpus, RefusalDetail.NotWholeGpus, hours);
        PriceBand band = o.Instrument.Band;
        if (c.Price <= 0 || c.Price < band.MinPrice || c.Price > band.MaxPrice || (c.Price - band.MinPrice) % band.Tick != 0)
            return Refuse(ExchangeError.BookRejected, RefusalDetail.PriceOffBand, 0, RejectReason.PriceOutsideBand);
        ReferenceOrderBook book = _books[o.Instrument.Id];
        RestingOrder resting = book.Orders().Single(r => r.Id == o.Id);
        // A post-only order that would lose its place (new price, or more) must still not take.
        if (resting.PostOnly && (c.Price != resting.Price || c.Quantity > resting.Remaining))
        {
            RestingOrder[] opposite = book.Orders().Where(r => r.Side != o.Side).ToArray();
            if (opposite.Length > 0 && Crosses(o.Side, c.Price, opposite[0].Price))
                return Refuse(ExchangeError.BookRejected, RefusalDetail.PostOnlyWouldTake, 0, RejectReason.PostOnlyWouldTake);
        }
        if (o.Side == Side.Buy)
        {
            Int128 hold = (Int128)c.Price * c.Quantity;
            if (hold > long.MaxValue) return Refuse(ExchangeError.NotionalOverflows);
            long more = (long)hold - o.Hold, available = Available(o.Owner)!.Value;
            if (more > 0 && available < more) return Refuse(ExchangeError.InsufficientBalance, RefusalDetail.BalanceShort, available);
        }
        else if (o.Shares)
        {
            long more = c.Quantity - o.Remaining;
            if (more > 0 && SharesShort(o.Owner, o.Instrument.Node, more) is ReferenceResult refused) return refused;
        }
        else if (o.ResoldLease is long resold)
        {
            long moreGpus = (c.Quantity - o.Remaining) / hours;
            if (moreGpus > 0 && LeaseTimeRefusal(o.Owner, resold, o.Instrument, moreGpus) is ReferenceResult refused) return refused;
        }
        else
        {
            long moreGpus = (c.Quantity - o.Remaining) / hours;
            long free = FreeGpus(o.Owner, o.Instrument);
            if (moreGpus > 0 && free < moreGpus) return Refuse(ExchangeError.InsufficientCapacity, RefusalDetail.CapacityShort, free);
        }
        o.Limit = c.Price;
        o.Remaining = c.Quantity;
        return RunBook(o.Instrument.Id, new OrderCommand
        {
            Kind = CommandKind.Replace, OrderId = o.Id, Owner = o.Owner, Side = o.Side, Price = c.Price, Quantity = c.Quantity, Timestamp = _now,
        }, o.Id, fills);
    }

    private void ExpireBook(int instrument) => RunBook(instrument, new OrderCommand { Kind = CommandKind.Expire, Timestamp = _now }, 0, []);

    /// <summary>
    /// One command to a book and what its events mean: a trade is a lease (the buyer pays its notional out of its hold
    /// into the lease's escrow), or on a share book a delivery of shares against payment; an order that leaves the book
    /// (filled, cancelled, expired, unfilled) holds and commits nothing more.
    /// </summary>
    private ReferenceResult RunBook(int instrument, OrderCommand command, long subject, List<FillRecord> fills)
    {
        List<MatchEvent> events = _books[instrument].Apply(command);
        bool subjectCancelled = false;
        int fillsBefore = fills.Count;
        foreach (MatchEvent e in events)
        {
            switch (e.Kind)
            {
                case EventKind.Trade:
                {
                    Order taker = _orders[e.OrderId], maker = _orders[e.MakerOrderId];
                    (Order buy, Order sell) = taker.Side == Side.Buy ? (taker, maker) : (maker, taker);
                    long lease = buy.Shares ? TradeShares(buy, sell, e.Price, e.Quantity) : NewLease(buy, sell, e.Price, e.Quantity).Id;
                    if (!buy.Shares) RecordComputeTrade(instrument, e.Price, e.Quantity);
                    taker.Remaining -= e.Quantity;
                    maker.Remaining -= e.Quantity;
                    fills.Add(new FillRecord(taker.Id, maker.Id, e.Price, e.Quantity, lease, ++_trades, instrument, taker.Side, _now));
                    break;
                }
                case EventKind.Reduced:
                    _orders[e.OrderId].Remaining = e.Quantity;
                    break;
                case EventKind.Cancelled when e.Reason != CancelReason.Replaced:
                    _orders[e.OrderId].Remaining = 0;
                    if (e.OrderId == subject) subjectCancelled = true;
                    break;
                case EventKind.Rejected:
                    // Every refusal the book could give is asked before the command reaches it.
                    throw new InvalidOperationException($"Reference: the book refused an accepted command ({e.Reject}, order {e.OrderId}).");
            }
        }
        foreach (Order gone in _orders.Values.Where(o => o.Remaining == 0).ToList()) _orders.Remove(gone.Id);
        long remaining = _orders.TryGetValue(subject, out Order? s) ? s.Remaining : 0;
        OrderStatus status = command.Kind == CommandKind.Cancel ? OrderStatus.Cancelled
            : remaining > 0 ? OrderStatus.Resting
            : subjectCancelled ? (fills.Count > fillsBefore ? OrderStatus.PartiallyFilledCancelled : OrderStatus.Cancelled)
            : OrderStatus.Filled;
        return new ReferenceResult(ExchangeError.None, RejectReason.None, status, RefusalDetail.None, 0, subject, remaining, fills);
    }

    // ---- capacity and leases

    private IEnumerable<NodeRecord> Pool(long provider, GpuClass gpu, string region) =>
        _nodes.Where(n => n.Provider == provider && n.Gpu == gpu && n.Region == region).OrderBy(n => n.Id);

    /// <summary>
    /// The provider's GPUs free in every hour of the window: GPUs of its nodes of the class and region that are up,
    /// minus those leased, minus those its open sells there commit in that hour (0 without a node there).
    /// </summary>
    private long FreeGpus(long provider, Instrument i)
    {
        List<NodeRecord> pool = Pool(provider, i.Gpu, i.Region).ToList();
        if (pool.Count == 0) return 0;
        List<NodeRecord> up = pool.Where(n => n.DownSince is null).ToList();
        List<Order> sells = _orders.Values.Where(o => o.Side == Side.Sell && o.ResoldLease is null && o.Owner == provider && o.Instrument.Gpu == i.Gpu && o.Instrument.Region == i.Region).ToList();
        long min = long.MaxValue;
        foreach (long h in HourStarts(i))
        {
            long free = 0;
            foreach (NodeRecord n in up) free += n.Gpus - _leased.GetValueOrDefault((n.Id, h));
            foreach (Order o in sells)
                if (o.Instrument.DeliveryStart <= h && h < o.Instrument.DeliveryEnd) free -= o.Remaining / HoursOf(o.Instrument);
            min = Math.Min(min, free);
        }
        return min;
    }

    private LeaseRecord NewLease(Order buy, Order sell, long price, long quantity)
    {
        Instrument i = buy.Instrument;
        int gpus = (int)(quantity / HoursOf(i));
        long id = (long)((_seq << 20) | (uint)++_leasesOfCommand);
        if (sell.ResoldLease is long resold) return NewResoldLease(buy, sell, _leases.Single(l => l.Id == resold), id, gpus, price, quantity);
        // First fit: the seller's nodes that are up, by id, each taking what it has free in every hour of the window;
        // what none has for the whole window, hour by hour (each hour first fit; a node is named with the most it gives).
        List<NodeRecord> up = Pool(sell.Owner, i.Gpu, i.Region).Where(n => n.DownSince is null).ToList();
        var nodes = new List<(long Node, int Gpus)>();
        int left = gpus;
        foreach (NodeRecord n in up)
        {
            int take = Math.Min(left, HourStarts(i).Min(h => n.Gpus - _leased.GetValueOrDefault((n.Id, h))));
            if (take <= 0) continue;
            foreach (long h in HourStarts(i)) _leased[(n.Id, h)] = _leased.GetValueOrDefault((n.Id, h)) + take;
            nodes.Add((n.Id, take));
            left -= take;
        }
        if (left > 0)
        {
            var most = new Dictionary<long, int>();
            foreach (long h in HourStarts(i))
            {
                int need = left;
                foreach (NodeRecord n in up)
                {
                    int take = Math.Min(need, n.Gpus - _leased.GetValueOrDefault((n.Id, h)));
                    if (take <= 0) continue;
                    _leased[(n.Id, h)] = _leased.GetValueOrDefault((n.Id, h)) + take;
                    most[n.Id] = Math.Max(most.GetValueOrDefault(n.Id), take);
                    need -= take;
                }
                if (need != 0) throw new InvalidOperationException($"Reference: provider {sell.Owner}'s sell {sell.Id} was backed but hour {h} has no room for {need} GPUs.");
            }
            foreach (NodeRecord n in up.Where(n => most.ContainsKey(n.Id)))
            {
                int at = nodes.FindIndex(x => x.Node == n.Id);
                if (at >= 0) nodes[at] = (n.Id, nodes[at].Gpus + most[n.Id]);
                else nodes.Add((n.Id, most[n.Id]));
            }
        }
        long notional = checked(price * quantity);
        Provider p = _providers[sell.Owner];
        long reserve = Math.Min(Penalty(notional), p.CollateralFree);
        p.CollateralFree -= reserve;
        var lease = new LeaseRecord
        {
            Id = id, Instrument = i.Id, Buyer = buy.Owner, Provider = sell.Owner, Payee = sell.Owner, Start = i.DeliveryStart, End = i.DeliveryEnd, Gpus = gpus, Price = price,
            Notional = notional, Escrow = ChartOfAccounts.ObjectAccount(AccountCode.LeaseEscrow, _epoch, (ulong)id), PayeeAccount = p.Revenue, Nodes = nodes,
            Reserve = reserve,
        };
        _leases.Add(lease);
        // The buyer pays out of its hold into the order escrow, which passes it to the lease's own escrow.
        CreateAccount(lease.Escrow, AccountFlags.DebitsMustNotExceedCredits);
        Post(ExchangeStateMachine.TradingAccount(buy.Owner), Escrow, notional);
        Post(Escrow, lease.Escrow, notional);
        _traders[buy.Owner].Cash -= notional;
        return lease;
    }

    private long Penalty(long amount) => (long)((Int128)amount * _penaltyBasisPoints / 10_000);

    private ReferenceResult Deliver(in ExchangeCommand c)
    {
        long target = c.Target;
        LeaseRecord? lease = _leases.Find(l => l.Id == target);
        if (lease is null) return Refuse(ExchangeError.UnknownLease);
        if (lease.Provider != c.Owner) return Refuse(ExchangeError.NotOwner);
        bool onGrid = (c.From - lease.Start) % NsPerHour == 0 && (c.To - lease.Start) % NsPerHour == 0;
        if (lease.Status != LeaseStatus.Active || c.From >= c.To || c.From < lease.Start || c.To > lease.End || c.To > _now || !onGrid)
            return Refuse(ExchangeError.InvalidDelivery);
        long gpuHours = lease.Gpus * ((c.To - c.From) / NsPerHour);
        if (lease.Delivered + gpuHours > lease.GpuHours) return Refuse(ExchangeError.InvalidDelivery);
        PayFor(lease, gpuHours);
        DeliverResold(lease, c.From, c.To);
        EndLiquidatingLeaseLoans();
        return Done(lease.Id);
    }

    private void PayFor(LeaseRecord lease, long gpuHours)
    {
        bool last = lease.Delivered + gpuHours == lease.GpuHours;
        long amount = last ? lease.Notional - lease.Paid : lease.Price * gpuHours;
        // A first-hand lease's payment is its nodes' revenue: the part of a node that issued shares goes to its pool.
        long toPools = lease.Parent is null ? PayPools(lease, amount) : 0;
        Post(lease.Escrow, lease.PayeeAccount, amount - toPools);
        if (lease.Parent is long parent)
        {
            _traders[lease.Payee].Cash += amount; // a reseller is paid into its trading account
            LeaseSaleProceeds(parent, lease.Payee, amount);
        }
        lease.Delivered += gpuHours;
        lease.Paid += amount;
        if (last)
        {
            lease.Status = LeaseStatus.Completed;
            _providers[lease.Provider].CollateralFree += lease.Reserve;
            lease.Reserve = 0;
        }
    }

    private void Fail(LeaseRecord lease)
    {
        long refund = lease.Notional - lease.Paid - lease.Refunded;
        long penalty = Penalty(refund);
        long paid = Math.Min(penalty, lease.Reserve);
        Provider p = _providers[lease.Provider];
        UInt128 buyer = ExchangeStateMachine.TradingAccount(lease.Buyer);
        if (refund > 0) Post(lease.Escrow, buyer, refund);
        if (paid > 0) Post(p.Collateral, buyer, paid);
        _traders[lease.Buyer].Cash += refund + paid;
        p.CollateralFree += lease.Reserve - paid;
        lease.Reserve = 0;
        lease.Refunded += refund;
        lease.Penalty = paid;
        lease.Shortfall = penalty - paid;
        lease.Status = LeaseStatus.Failed;
        FailResale(lease);
        LeaseFailed(lease, refund + paid);
    }

    private ReferenceResult Outage(in ExchangeCommand c)
    {
        long target = c.Target;
        NodeRecord? node = _nodes.Find(n => n.Id == target);
        if (node is null) return Refuse(ExchangeError.UnknownNode);
        if (node.Provider != c.Owner) return Refuse(ExchangeError.NotOwner);
        return NodeDown(target, _now);
    }

    private ReferenceResult NodeDown(long id, long since)
    {
        NodeRecord? node = _nodes.Find(n => n.Id == id);
        if (node is null) return Refuse(ExchangeError.UnknownNode);
        node.DownSince ??= Math.Min(since, _now);
        // Leases in delivery on it fail now; later ones wait for their start.
        foreach (LeaseRecord lease in _leases.Where(l => l.Status == LeaseStatus.Active && l.Parent is null && l.Start <= _now && l.Nodes.Any(n => n.Node == id)).ToList()) Fail(lease);
        // The provider's sells of that class and region: their books first drop what expired, then, newest first,
        // each sell whose window the provider's capacity no longer covers is cancelled.
        bool Candidate(Order o) => o.Side == Side.Sell && o.ResoldLease is null && o.Owner == node.Provider && o.Instrument.Gpu == node.Gpu && o.Instrument.Region == node.Region;
        foreach (int book in _orders.Values.Where(Candidate).Select(o => o.Instrument.Id).Distinct().ToList()) ExpireBook(book);
        foreach (Order o in _orders.Values.Where(Candidate).OrderByDescending(o => o.Id).ToList())
        {
            if (FreeGpus(o.Owner, o.Instrument) >= 0) continue;
            RunBook(o.Instrument.Id, new OrderCommand { Kind = CommandKind.Cancel, OrderId = o.Id, Owner = o.Owner, Side = o.Side, Timestamp = _now }, o.Id, []);
            _ended[o.Id] = (OrderEndReason.NodeDown, id);
        }
        return Done(id);
    }

    private ReferenceResult NodeUp(long id)
    {
        NodeRecord? node = _nodes.Find(n => n.Id == id);
        if (node is null) return Refuse(ExchangeError.UnknownNode);
        node.DownSince = null;
        return Done(id);
    }

    // ---- clock

    private ReferenceResult Tick(List<FillRecord> fills)
    {
        InstrumentChanges changes = _registry.Advance(_now);
        // Books of instruments that stopped trading: every order in them ends.
        foreach (int id in _books.Keys.ToList())
        {
            if (_registry.IsActive(id) && _registry.Get(id).IsTradingAt(_now)) continue;
            List<RestingOrder> resting = _books[id].Orders();
            foreach (RestingOrder r in resting) _ended[r.Id] = (OrderEndReason.InstrumentClosed, id);
            ExpireBook(id);
            foreach (RestingOrder r in resting.Where(r => _orders.ContainsKey(r.Id)))
                RunBook(id, new OrderCommand { Kind = CommandKind.Cancel, OrderId = r.Id, Owner = r.Owner, Side = r.Side, Timestamp = _now }, r.Id, []);
            _books.Remove(id);
        }
        foreach (int id in _books.Keys.ToList()) ExpireBook(id);
        // Leases whose delivery started since the last tick: one on a node that is down fails.
        foreach (LeaseRecord lease in _leases.Where(l => !l.StartChecked && l.Start <= _now).OrderBy(l => l.Start).ThenBy(l => l.Id).ToList())
        {
            lease.StartChecked = true;
            if (lease.Status == LeaseStatus.Active && lease.Parent is null && lease.Nodes.Any(n => _nodes.Find(x => x.Id == n.Node)!.DownSince is not null))
            {
                Fail(lease);
                FailedAtStart++;
            }
        }
        // Loans last: their status at the prices after everything above; a liquidation's sale is the tick's fills.
        TickLoans(fills);
        return Done(changes.Listed.Count) with { Fills = fills };
    }
}
