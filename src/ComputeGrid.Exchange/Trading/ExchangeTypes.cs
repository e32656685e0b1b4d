using ComputeGrid.Exchange.Instruments;
using ComputeGrid.Exchange.Matching;

namespace ComputeGrid.Exchange.Trading;

/// <summary>Why the exchange refused a request before or around the book. Stable values.</summary>
public enum ExchangeError : byte
{
    None = 0,
    UnknownInstrument = 1,
    InstrumentNotTrading = 2,
    UnknownTrader = 3,
    /// <summary>The quantity must be a whole number of GPUs for the instrument's whole window (a multiple of its hours).</summary>
    QuantityMustBeWholeGpus = 4,
    /// <summary>The buyer's balance cannot hold the order's maximum notional.</summary>
    InsufficientBalance = 5,
    /// <summary>The seller has no free registered capacity (or lease time) for the window.</summary>
    InsufficientCapacity = 6,
    NotionalOverflows = 7,
    /// <summary>The book refused the order; see <see cref="OrderResult.BookReject"/>.</summary>
    BookRejected = 8,
    UnknownOrder = 9,
    NotOwner = 10,
    UnknownProvider = 11,
    UnknownNode = 12,
    UnknownLease = 13,
    /// <summary>A delivery report that does not fit the lease (outside its window, more than leased, lease not active).</summary>
    InvalidDelivery = 14,
    AlreadyRegistered = 15,
    LedgerRejected = 16,
    InvalidRequest = 17,
    /// <summary>The exchange failed while applying the command (a bug): nothing of it was applied, and it never will be.</summary>
    CommandFailed = 18,
    /// <summary>
    /// The ledger refused the command's settlement (its chain of transfers): nothing of it was applied, on either side,
    /// and it never will be; the exchange goes on without it (see <see cref="StateMachine.RefusalDetail.LedgerRefused"/>).
    /// </summary>
    SettlementRefused = 19,

    /// <summary>The seller or sender has too few free shares of the node.</summary>
    InsufficientShares = 30,
    /// <summary>The provider is not approved by an operator to issue shares.</summary>
    NotApprovedIssuer = 31,
    /// <summary>The node has issued its shares already (the supply is fixed).</summary>
    SharesAlreadyIssued = 32,
    /// <summary>The node has not issued shares.</summary>
    NoShares = 33,
    /// <summary>The share has not traded: it has no reference price to lend against.</summary>
    NoPrice = 34,
    /// <summary>The loan asked is more than the pledge allows.</summary>
    LoanTooLarge = 35,
    /// <summary>No open loan with that id.</summary>
    UnknownLoan = 36,
    /// <summary>The lease is pledged as collateral for a loan: it cannot be resold or pledged again until the loan ends.</summary>
    LeasePledged = 37,
    /// <summary>The lease cannot be pledged: it is not active with time left, or some of its time is offered or sold on the book.</summary>
    LeaseNotPledgeable = 38,
}

/// <summary>A request to place an order.</summary>
public sealed record PlaceOrder(
    long Owner, int Instrument, Side Side, OrderType Type, TimeInForce TimeInForce, long Price, long Quantity,
    bool PostOnly = false, long ExpiresAt = 0);

/// <summary>One fill of an order, and the lease it created.</summary>
public sealed record Fill(long OrderId, long CounterOrderId, long Price, long Quantity, long LeaseId, long Sequence);

/// <summary>The outcome of a place, cancel or replace.</summary>
public sealed record OrderResult(
    ExchangeError Error, RejectReason BookReject, long OrderId, OrderStatus Status, long Remaining, IReadOnlyList<Fill> Fills, string? Detail = null)
{
    public bool Ok => Error == ExchangeError.None;
}

/// <summary>Where an order stands after a command.</summary>
public enum OrderStatus : byte
{
    Rejected = 0,
    Resting = 1,
    Filled = 2,
    /// <summary>Partly filled; the rest was cancelled (IOC, market, self-trade) or is resting (then <see cref="Resting"/>).</summary>
    PartiallyFilledCancelled = 3,
    Cancelled = 4,
}

/// <summary>An open order as the exchange tracks it beside the book (holds and capacity).</summary>
public sealed record OpenOrder(long OrderId, long Owner, int Instrument, Side Side, long Price, long Remaining, long HoldAmount, long? LeaseId);

/// <summary>A provider: the account paid for delivered compute, and the collateral penalties come from.</summary>
public sealed record Provider(long Id, UInt128 RevenueAccount, UInt128 CollateralAccount);

/// <summary>A provider's node: a number of GPUs of one class in one region.</summary>
public sealed record Node(long Id, long Provider, string Name, GpuClass Gpu, string Region, int Gpus)
{
    /// <summary>Last heartbeat (Unix ns).</summary>
    public long LastHeartbeat { get; set; }
    /// <summary>Set when the node is reported down or missed its heartbeats; it backs no new capacity.</summary>
    public long? DownSince { get; set; }
}

/// <summary>Where a lease stands.</summary>
public enum LeaseStatus : byte
{
    Active = 0,
    /// <summary>Every GPU-hour was delivered and paid.</summary>
    Completed = 1,
    /// <summary>The provider failed: the undelivered part was refunded and a penalty paid.</summary>
    Failed = 2,
}

/// <summary>
/// A lease: GPUs reserved on named nodes for a window, paid from its own escrow account as delivery is
/// reported. <see cref="Notional"/> = price × GPUs × hours; Paid + Refunded never exceed it.
/// </summary>
public sealed class Lease
{
    public required long Id { get; init; }
    public required int Instrument { get; init; }
    public required long Buyer { get; init; }
    /// <summary>The provider who delivers (for a resold lease, the original provider).</summary>
    public required long Provider { get; init; }
    /// <summary>Who is paid on delivery: the provider, or the reseller for a lease bought from a lease holder.</summary>
    public required long Payee { get; init; }
    public required UInt128 PayeeAccount { get; init; }
    /// <summary>The lease this one was resold from, if any.</summary>
    public long? Parent { get; init; }
    public required long Start { get; init; }
    public required long End { get; init; }
    public required int Gpus { get; init; }
    public required long Price { get; init; }
    public required long Notional { get; init; }
    public required UInt128 EscrowAccount { get; init; }
    public required IReadOnlyList<(long Node, int Gpus)> Nodes { get; init; }
    public LeaseStatus Status { get; set; }
    /// <summary>GPU-hours delivered and paid for.</summary>
    public long DeliveredGpuHours { get; set; }
    public long Paid { get; set; }
    public long Refunded { get; set; }
    public long Penalty { get; set; }
    /// <summary>Collateral the provider's mirror set aside for this lease's penalty when it was created (released when it ends).</summary>
    public long PenaltyReserve { get; set; }
    /// <summary>Penalty owed but not covered by the provider's collateral.</summary>
    public long PenaltyShortfall { get; set; }
    /// <summary>GPU-hours of this lease offered or sold on the book (resale), per hour start (Unix ns) → GPUs.</summary>
    public Dictionary<long, int> ResoldGpus { get; } = new();
    public long GpuHours => (long)Gpus * ((End - Start) / DeliveryCalendar.NsPerHour);
}
