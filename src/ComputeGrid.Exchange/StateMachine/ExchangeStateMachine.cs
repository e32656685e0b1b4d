using ComputeGrid.Core;
using ComputeGrid.Exchange.Instruments;
using ComputeGrid.Exchange.Matching;
using ComputeGrid.Exchange.Trading;
using ComputeGrid.Ledger;

namespace ComputeGrid.Exchange.StateMachine;

/// <summary>Settings of the state machine (part of its identity: a journal replays only under the same settings).</summary>
public sealed record StateMachineOptions
{
    /// <summary>Most resting orders per instrument book.</summary>
    public int OrdersPerBookMax { get; init; } = 4096;

    /// <summary>Penalty a failing provider pays the buyer, in basis points of the undelivered notional.</summary>
    public int PenaltyBasisPoints { get; init; } = 2_000;

    /// <summary>The qualifier every id of this exchange carries (48 bits): fixed by the journal's first record.</summary>
    public ulong Epoch { get; init; } = 1;

    /// <summary>
    /// Test-only: asked for each place accepted, after its hold is reserved and the order recorded (part-way through);
    /// true makes the command throw there, leaving the state half-changed, as a bug would.
    /// </summary>
    public Func<ExchangeCommand, bool>? InjectFault { get; init; }

    /// <summary>The terms of loans against pledged shares.</summary>
    public PledgeTerms Pledges { get; init; } = new();
}

/// <summary>
/// The exchange as a pure, synchronous, deterministic state machine (exchange-core's shape, the ledger's split):
/// typed <see cref="ExchangeCommand"/>s in, a <see cref="CommandResult"/>, fills and a <see cref="SettlementPlan"/> out.
/// No awaits, no clock (time is in the command), no I/O; every id derives from the command's sequence number.
/// <list type="bullet">
/// <item><b>Pre-trade risk (R1)</b> without a round trip: each trader's available balance on its exchange trading
/// account is mirrored here. Only the exchange debits that account, and money counts only once the ledger confirmed
/// it arrived (<see cref="ExchangeCommandKind.TransferSettled"/>), so a hold planned within the mirror is one the
/// ledger takes. A provider's collateral is mirrored the same way; each lease reserves its penalty from it.</item>
/// <item><b>Matching</b> in one <see cref="OrderBook"/> per instrument.</item>
/// <item><b>Settlement (R2)</b>: each command's ledger effects are one linked chain in the plan — a buy's hold; for
/// each fill the hold posted for what it bought, the lease escrow funded, the rest held again; voids on cancel;
/// delivery payments; a failed lease's refund and penalty together.</item>
/// </list>
/// Invariants (<see cref="CheckInvariants"/>): every open buy's hold is its limit × remaining; the mirror of each
/// trading account equals deposits − withdrawals − holds − spent + refunds; capacity committed never exceeds what
/// nodes that are up can give.
/// </summary>
public sealed partial class ExchangeStateMachine
{
    /// <summary>The exchange's order escrow account: holds of open buy orders are pending credits here.</summary>
    public static readonly UInt128 EscrowAccount = ChartOfAccounts.SystemAccount(AccountCode.ExchangeEscrow, Asset.Usd);

    private const ushort HoldCode = (ushort)TransferCode.ExchangeHold, LeaseFundingCode = (ushort)TransferCode.LeaseFunding,
        DeliveryPaymentCode = (ushort)TransferCode.DeliveryPayment, RefundCode = (ushort)TransferCode.Refund, PenaltyCode = (ushort)TransferCode.Penalty,
        DepositCode = (ushort)TransferCode.ExchangeDeposit, WithdrawalCode = (ushort)TransferCode.ExchangeWithdrawal;

    private readonly StateMachineOptions _options;
    private readonly InstrumentRegistry _instruments;
    private readonly Dictionary<int, OrderBook> _books = [];
    private readonly Dictionary<long, OrderState> _orders = [];
    private readonly Stack<OrderState> _orderPool = new();
    private readonly Dictionary<long, TraderState> _traders = [];
    private readonly Dictionary<long, ProviderState> _providers = [];
    private readonly Dictionary<long, PendingDeposit> _pendingDeposits = [];
    private readonly HashSet<UInt128> _collateralAccounts = [];
    private readonly CapacityBook _capacity = new();
    private readonly LeaseBook _leases = new();
    private readonly ComputeKind _computeKind;
    private readonly ShareKind _shareKind;
    private long _tradeSequence;
    private long _lastTime;
    private ulong _lastSeq;

    // The running command (set by Apply).
    private SettlementPlan _plan = null!;
    private List<FillRecord> _fills = null!;
    private ulong _seq;
    private long _now;
    private ulong _transferIndex;
    private int _leaseIndex;

    private sealed class OrderState
    {
        public long Id;
        public long Owner;
        public Instrument Instrument = null!;
        public Side Side;
        public long Limit;          // the limit price (a market buy: the band's maximum)
        public long Remaining;
        public UInt128 HoldId;
        public long HoldAmount;
        public long ResoldLease;    // a sell backed by time of this lease (resale) instead of provider capacity; 0 for none
    }

    private sealed class TraderState(long owner, UInt128 account)
    {
        public long Owner { get; } = owner;
        public UInt128 Account { get; } = account;
        public long Available;
        public readonly HashSet<long> OpenOrders = [];
    }

    private sealed class ProviderState(long id, UInt128 revenue, UInt128 collateral)
    {
        public long Id { get; } = id;
        public UInt128 Revenue { get; } = revenue;
        public UInt128 Collateral { get; } = collateral;
        /// <summary>Collateral not reserved by a lease.</summary>
        public long CollateralAvailable;
    }

    // A transfer waiting for the ledger's answer: a deposit (counted when taken) or a withdrawal (given back when refused).
    // The transfer itself is kept until the answer, so a restart from a snapshot can submit it again (idempotent).
    private readonly record struct PendingDeposit(long Owner, long Amount, bool Collateral, bool Withdrawal = false)
    {
        public Transfer Transfer { get; init; }
    }

    public ExchangeStateMachine(InstrumentRegistry instruments, StateMachineOptions? options = null)
    {
        _computeKind = new ComputeKind(this);
        _shareKind = new ShareKind(this);
        _instruments = instruments;
        _options = options ?? new StateMachineOptions();
        if (_options.Epoch == 0 || _options.Epoch > ChartOfAccounts.QualifierMax) throw new ArgumentOutOfRangeException(nameof(options), "The epoch must be in [1, 2^48).");
    }

    /// <summary>The instruments (listed and expired by <see cref="ExchangeCommandKind.Tick"/> commands).</summary>
    public InstrumentRegistry Instruments => _instruments;

    /// <summary>The last command applied.</summary>
    public ulong LastSeq => _lastSeq;

    /// <summary>A trading account's id for a principal.</summary>
    public static UInt128 TradingAccount(long owner) => ChartOfAccounts.PrincipalAccount(AccountCode.ExchangeTrading, (ulong)owner);

    /// <summary>
    /// Applies one command: its result, its fills appended to <paramref name="fills"/>, its ledger effects appended to
    /// <paramref name="plan"/>. A command applies whole or not at all: a refusal changes no state and plans nothing.
    /// Time comes first, whatever the outcome: the book a place, resale, cancel or replace names drops the good-till-time orders
    /// that expired by the command's time (their releases in a span of their own, with the command's sequence).
    /// </summary>
    /// <exception cref="ArgumentException">The command's sequence or time goes backwards (the sequencer's bug).</exception>
    public CommandResult Apply(in ExchangeCommand c, SettlementPlan plan, List<FillRecord> fills)
    {
        if (c.Seq <= _lastSeq) throw new ArgumentException($"Command {c.Seq} is not after {_lastSeq}.", nameof(c));
        if (c.Time < _lastTime) throw new ArgumentException($"Command {c.Seq}'s time {c.Time} is before {_lastTime}.", nameof(c));
        _plan = plan;
        _fills = fills;
        _seq = c.Seq;
        _now = c.Time;
        _transferIndex = 0;
        _leaseIndex = 0;
        _shareKind.Begin();
        int fillsBefore = fills.Count;
        // Time first: the book a place, cancel or replace acts on drops the orders that expired by now, in a span of
        // its own that stays whatever the command's outcome; so the command is checked against the book it will meet
        // and the book can refuse nothing the checks let through (a refusal's plan is dropped, and with it would go
        // the releases of those expired orders' holds).
        if (BookActedOn(in c) is OrderBook due && due.NextExpiry <= c.Time)
        {
            plan.BeginCommand(c.Seq);
            ApplyBook(due, new OrderCommand { Kind = CommandKind.Expire, Timestamp = c.Time }, 0);
            plan.EndCommand();
        }
        plan.BeginCommand(c.Seq);
        CommandResult r = c.Kind switch
        {
            ExchangeCommandKind.RegisterTrader => RegisterTrader(c.Owner),
            ExchangeCommandKind.RegisterProvider => RegisterProvider(in c),
            ExchangeCommandKind.AdmitNode => AdmitNode(in c),
            ExchangeCommandKind.Deposit => Deposit(in c, collateral: false),
            ExchangeCommandKind.FundCollateral => Deposit(in c, collateral: true),
            ExchangeCommandKind.Withdraw => Withdraw(in c),
            ExchangeCommandKind.TransferSettled => TransferSettled(in c),
            ExchangeCommandKind.Place => Place(in c),
            ExchangeCommandKind.Cancel => Cancel(in c),
            ExchangeCommandKind.Replace => Replace(in c),
            ExchangeCommandKind.Resell => Resell(in c),
            ExchangeCommandKind.Block => Block(in c),
            ExchangeCommandKind.Deliver => Deliver(in c),
            ExchangeCommandKind.Outage => Outage(in c),
            ExchangeCommandKind.NodeTimeout => NodeDown(c.Target, c.From),
            ExchangeCommandKind.NodeUp => NodeUp(c.Target),
            ExchangeCommandKind.Tick => Tick(),
            ExchangeCommandKind.Excluded => new CommandResult { Subject = c.Target },
            ExchangeCommandKind.ApproveIssuer => ApproveIssuer(in c),
            ExchangeCommandKind.IssueShares => IssueShares(in c),
            ExchangeCommandKind.TransferShares => TransferShares(in c),
            ExchangeCommandKind.Pledge => Pledge(in c),
            ExchangeCommandKind.Repay => Repay(in c),
            ExchangeCommandKind.PledgeLease => PledgeLease(in c),
            _ => Refused(ExchangeError.InvalidRequest),
        };
        if (r.Ok) plan.EndCommand();
        else plan.AbandonCommand();
        r.FirstFill = fillsBefore;
        r.Fills = fills.Count - fillsBefore;
        _lastSeq = c.Seq;
        _lastTime = c.Time;
        return r;
    }

    private OrderBook? BookActedOn(in ExchangeCommand c) => c.Kind switch
    {
        ExchangeCommandKind.Place or ExchangeCommandKind.Resell => _books.GetValueOrDefault(c.Instrument),
        ExchangeCommandKind.Cancel or ExchangeCommandKind.Replace => _orders.TryGetValue(c.Target, out OrderState? o) ? _books[o.Instrument.Id] : null,
        _ => null,
    };

    private static CommandResult Refused(ExchangeError e, RefusalDetail detail = RefusalDetail.None, long value = 0, RejectReason book = RejectReason.None) =>
        new() { Error = e, Detail = detail, DetailValue = value, BookReject = book, Status = OrderStatus.Rejected };

    /// <summary>Bits of an id that number what one command causes (its transfers, its leases): up to 1,048,575 each.</summary>
    public const int IdIndexBits = 20;

    // Ids: the command's sequence in the high bits, the n-th thing it causes in the low IdIndexBits (a command that would
    // cause more fails whole rather than reuse the next command's ids).
    private UInt128 NextTransferId() => ChartOfAccounts.TransferId(TransferSpace.Exchange, _options.Epoch, IdOf(_seq, ++_transferIndex));

    private long NextLeaseId() => checked((long)IdOf(_seq, (ulong)++_leaseIndex));

    /// <summary>The id of the <paramref name="index"/>-th thing (from 1) command <paramref name="seq"/> causes.</summary>
    public static ulong IdOf(ulong seq, ulong index)
    {
        if (index == 0 || index >= 1UL << IdIndexBits) throw new InvalidOperationException($"Command {seq} causes more than {(1UL << IdIndexBits) - 1} transfers or leases.");
        if (seq >= 1UL << (63 - IdIndexBits)) throw new InvalidOperationException($"Sequence {seq} is beyond the ids' range.");
        return (seq << IdIndexBits) | index;
    }

    private UInt128 LeaseEscrowId(long leaseId) => ChartOfAccounts.ObjectAccount(AccountCode.LeaseEscrow, _options.Epoch, (ulong)leaseId);

    // ================================================================== participants and money

    private CommandResult RegisterTrader(long owner)
    {
        if (owner <= 0) return Refused(ExchangeError.InvalidRequest);
        if (_traders.ContainsKey(owner)) return new CommandResult { Subject = owner }; // idempotent
        var t = new TraderState(owner, TradingAccount(owner));
        _traders[owner] = t;
        _plan.Account(ChartOfAccounts.NewAccount(AccountCode.ExchangeTrading, t.Account, Asset.Usd));
        return new CommandResult { Subject = owner };
    }

    private CommandResult RegisterProvider(in ExchangeCommand c)
    {
        if (c.Owner <= 0 || c.Amount < 0 || c.Account == 0 || c.Account2 == 0) return Refused(ExchangeError.InvalidRequest);
        if (_providers.ContainsKey(c.Owner)) return Refused(ExchangeError.AlreadyRegistered);
        _providers[c.Owner] = new ProviderState(c.Owner, c.Account, c.Account2) { CollateralAvailable = c.Amount };
        _collateralAccounts.Add(c.Account2);
        RegisterTrader(c.Owner);
        return new CommandResult { Subject = c.Owner };
    }

    private CommandResult AdmitNode(in ExchangeCommand c)
    {
        if (c.Gpus <= 0 || string.IsNullOrWhiteSpace(c.Name) || !GpuClasses.IsDefined(c.Gpu) || c.Region is null || !_instruments.Schedule.Regions.Contains(c.Region))
            return Refused(ExchangeError.InvalidRequest);
        if (!_providers.ContainsKey(c.Owner)) return Refused(ExchangeError.UnknownProvider);
        // One node identity: a node the server admitted carries its principal id (Target), the id its inference revenue
        // and its shares use too; a command without one (tests, benches) is numbered by its sequence.
        long id = c.Target > 0 ? c.Target : (long)_seq;
        if (_capacity.TryGetNode(id, out _)) return Refused(ExchangeError.AlreadyRegistered);
        _capacity.AddNode(new NodeState(id, c.Owner, c.Name, c.Gpu, c.Region, c.Gpus));
        return new CommandResult { Subject = id };
    }

    private CommandResult Deposit(in ExchangeCommand c, bool collateral)
    {
        if (c.Amount <= 0 || c.Account == 0 || KeptByExchange(c.Account)) return Refused(ExchangeError.InvalidRequest);
        UInt128 to;
        if (collateral)
        {
            if (!_providers.TryGetValue(c.Owner, out ProviderState? p)) return Refused(ExchangeError.UnknownProvider);
            to = p.Collateral;
        }
        else
        {
            if (!_traders.TryGetValue(c.Owner, out TraderState? t)) return Refused(ExchangeError.UnknownTrader);
            to = t.Account;
        }
        // Counted once the ledger confirms: the source is the owner's and may lack the money.
        var transfer = new Transfer
        {
            // A funding with its own id (an operator's, from the treasury) keeps the funding code, as its id is in the funding space.
            Id = c.Account2 != 0 ? c.Account2 : NextTransferId(), DebitAccountId = c.Account, CreditAccountId = to, Amount = c.Amount, Asset = Asset.Usd.Code,
            Code = c.Account2 != 0 ? (ushort)TransferCode.Funding : DepositCode, UserData64 = (ulong)c.Owner,
        };
        _plan.AwaitedTransfer(transfer, _seq);
        _pendingDeposits[(long)_seq] = new PendingDeposit(c.Owner, c.Amount, collateral) { Transfer = transfer };
        return new CommandResult { Subject = (long)_seq, Status = OrderStatus.Resting };
    }

    /// <summary>
    /// Accounts the exchange keeps and mirrors (trading accounts, its escrows, providers' collateral) or that hold others'
    /// money (a node's share pool, owed to its holders; the lending pool): never a deposit's source, or the ledger would
    /// take from them behind the mirror (and a hold or penalty planned within it could fail) or pay one principal with
    /// money owed to others.
    /// </summary>
    private bool KeptByExchange(UInt128 account) =>
        (ChartOfAccounts.TryDecode(account, out ushort code, out _, out _)
         && code is (ushort)AccountCode.ExchangeTrading or (ushort)AccountCode.ExchangeEscrow or (ushort)AccountCode.LeaseEscrow
             or (ushort)AccountCode.SharePool or (ushort)AccountCode.LendingPool)
        || _collateralAccounts.Contains(account);

    private CommandResult TransferSettled(in ExchangeCommand c)
    {
        if (!_pendingDeposits.TryGetValue(c.Target, out PendingDeposit d)) return Refused(ExchangeError.InvalidRequest);
        // Computed before anything changes, so an overflow changes nothing.
        if (d.Withdrawal)
        {
            if (!c.Ok) _traders[d.Owner].Available = checked(_traders[d.Owner].Available + d.Amount);
        }
        else if (c.Ok)
        {
            if (d.Collateral) _providers[d.Owner].CollateralAvailable = checked(_providers[d.Owner].CollateralAvailable + d.Amount);
            else _traders[d.Owner].Available = checked(_traders[d.Owner].Available + d.Amount);
        }
        _pendingDeposits.Remove(c.Target);
        return new CommandResult { Subject = c.Target, Status = c.Ok ? OrderStatus.Filled : OrderStatus.Rejected };
    }

    private CommandResult Withdraw(in ExchangeCommand c)
    {
        if (c.Amount <= 0 || c.Account == 0) return Refused(ExchangeError.InvalidRequest);
        if (!_traders.TryGetValue(c.Owner, out TraderState? t)) return Refused(ExchangeError.UnknownTrader);
        if (t.Available < c.Amount) return Refused(ExchangeError.InsufficientBalance, RefusalDetail.WithdrawalShort, t.Available);
        // Reserved at once; the ledger may still refuse the destination (then the money comes back when it says so).
        t.Available -= c.Amount;
        var transfer = new Transfer
        {
            Id = NextTransferId(), DebitAccountId = t.Account, CreditAccountId = c.Account, Amount = c.Amount, Asset = Asset.Usd.Code,
            Code = WithdrawalCode, UserData64 = (ulong)c.Owner,
        };
        _plan.AwaitedTransfer(transfer, _seq);
        _pendingDeposits[(long)_seq] = new PendingDeposit(c.Owner, c.Amount, Collateral: false, Withdrawal: true) { Transfer = transfer };
        return new CommandResult { Subject = (long)_seq, Status = OrderStatus.Resting };
    }
}
