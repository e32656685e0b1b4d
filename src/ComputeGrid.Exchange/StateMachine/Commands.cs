using ComputeGrid.Exchange.Instruments;
using ComputeGrid.Exchange.Matching;
using ComputeGrid.Exchange.Trading;
using ComputeGrid.Ledger;

namespace ComputeGrid.Exchange.StateMachine;

/// <summary>What a command to the exchange's state machine does. Stable values (they are in the journal).</summary>
public enum ExchangeCommandKind : byte
{
    /// <summary>A principal becomes a trader: its exchange trading account is created (money reaches it by <see cref="Deposit"/>).</summary>
    RegisterTrader = 1,
    /// <summary>A principal becomes a provider (and a trader): revenue and collateral accounts named, collateral observed.</summary>
    RegisterProvider = 2,
    /// <summary>
    /// A provider's node is admitted: <see cref="ExchangeCommand.Gpus"/> GPUs of a class in a region. Its id is
    /// <see cref="ExchangeCommand.Target"/> when given (the node's principal id: one id for its capacity, inference
    /// revenue and shares), else the command's sequence.
    /// </summary>
    AdmitNode = 3,
    /// <summary>Money moves from one of the owner's accounts into its trading account (counted once the ledger confirms).</summary>
    Deposit = 4,
    /// <summary>Money moves from the trading account to one of the owner's accounts (reserved at once).</summary>
    Withdraw = 5,
    /// <summary>Money moves from one of the provider's accounts into its collateral (counted once the ledger confirms).</summary>
    FundCollateral = 6,

    /// <summary>An order: limit or market, any time in force, post-only.</summary>
    Place = 10,
    /// <summary>Cancels an open order (<see cref="ExchangeCommand.Target"/>).</summary>
    Cancel = 11,
    /// <summary>Replaces an open order's price and quantity.</summary>
    Replace = 12,
    /// <summary>
    /// A lease holder offers time of its lease (<see cref="ExchangeCommand.Target"/>) for resale: a limit sell on an
    /// instrument whose window the lease covers (same class and region), good-till-cancel, immediate-or-cancel or fill-or-kill.
    /// </summary>
    Resell = 13,
    /// <summary>
    /// A block order: <see cref="ExchangeCommand.Gpus"/> GPUs of a class in a region for every hour of
    /// [<see cref="ExchangeCommand.From"/>, <see cref="ExchangeCommand.To"/>), all-or-none across the hourly spot books,
    /// at an average price per GPU-hour of at most <see cref="ExchangeCommand.Price"/>.
    /// </summary>
    Block = 14,

    /// <summary>Delivery of a lease (<see cref="ExchangeCommand.Target"/>) over [From, To) is reported by its provider.</summary>
    Deliver = 20,
    /// <summary>A provider reports a node (<see cref="ExchangeCommand.Target"/>) down: leases in delivery on it fail.</summary>
    Outage = 21,
    /// <summary>A node (<see cref="ExchangeCommand.Target"/>) with leases in delivery missed its heartbeats since <see cref="ExchangeCommand.From"/>.</summary>
    NodeTimeout = 22,
    /// <summary>A node that was down sends heartbeats again: its GPUs back sells again.</summary>
    NodeUp = 23,

    /// <summary>The clock: instruments listed and expired, good-till-time orders expired, leases entering delivery checked.</summary>
    Tick = 30,

    /// <summary>The ledger's answer to a transfer that waits for it (a deposit): <see cref="ExchangeCommand.Target"/> is its command's sequence.</summary>
    TransferSettled = 40,

    /// <summary>
    /// The command <see cref="ExchangeCommand.Target"/> (a sequence number) failed part-way, or the ledger refused its
    /// settlement, and is excluded: replay never applies it. Written by the pipeline (after the rebuild that dropped a
    /// command that threw; before the rebuild that compensates a refused settlement); changes nothing itself. For a
    /// refused settlement, <see cref="ExchangeCommand.Account"/> is the transfer the ledger refused and
    /// <see cref="ExchangeCommand.Amount"/> its answer (a <see cref="CreateTransferResult"/>); both are zero otherwise.
    /// </summary>
    Excluded = 41,

    /// <summary>An operator approves a provider (<see cref="ExchangeCommand.Owner"/>) to issue shares of its nodes.</summary>
    ApproveIssuer = 50,
    /// <summary>
    /// An approved provider issues a fixed supply (<see cref="ExchangeCommand.Quantity"/>) of shares of its node
    /// (<see cref="ExchangeCommand.Target"/>): all to itself, and the node's share instrument is listed.
    /// </summary>
    IssueShares = 51,
    /// <summary>A holder moves <see cref="ExchangeCommand.Quantity"/> free shares of node <see cref="ExchangeCommand.Target"/> to principal <see cref="ExchangeCommand.To"/>.</summary>
    TransferShares = 52,
    /// <summary>
    /// A holder pledges <see cref="ExchangeCommand.Quantity"/> free shares of node <see cref="ExchangeCommand.Target"/> for a
    /// loan of <see cref="ExchangeCommand.Amount"/> micro-USD paid into its trading account (at most the collateral's value
    /// after the haircut × the maximum loan-to-value, at the share's recent VWAP).
    /// </summary>
    Pledge = 53,
    /// <summary>A borrower repays <see cref="ExchangeCommand.Amount"/> (at most what is due) of loan <see cref="ExchangeCommand.Target"/> from its trading account.</summary>
    Repay = 54,
    /// <summary>
    /// A lease holder pledges its lease <see cref="ExchangeCommand.Target"/> (active, none of its time offered or sold) for a
    /// loan of <see cref="ExchangeCommand.Amount"/> micro-USD paid into its trading account (at most the undelivered
    /// GPU-hours' value after the haircut × the maximum loan-to-value, at the lease instrument's recent VWAP); repaid by <see cref="Repay"/>.
    /// </summary>
    PledgeLease = 55,
}

/// <summary>
/// One command to <see cref="ExchangeStateMachine"/>: a fixed set of fields, each kind using some (see
/// <see cref="ExchangeCommandKind"/>). <see cref="Seq"/> and <see cref="Time"/> are given by the sequencer: everything
/// the state machine decides follows from the commands alone (no clock, no I/O), so a journal replays exactly.
/// </summary>
public struct ExchangeCommand
{
    /// <summary>The command's sequence number (1, 2, 3, … in journal order): every id it causes derives from it.</summary>
    public ulong Seq;
    /// <summary>When it was sequenced (Unix ns, never decreasing).</summary>
    public long Time;
    public ExchangeCommandKind Kind;
    public Side Side;
    public OrderType Type;
    public TimeInForce TimeInForce;
    public bool PostOnly;
    /// <summary>The principal acting (trader, provider).</summary>
    public long Owner;
    public int Instrument;
    public long Price;
    public long Quantity;
    /// <summary>Good-till-time expiry (Unix ns, 0 for none).</summary>
    public long ExpiresAt;
    /// <summary>The order (cancel, replace), lease (deliver), node (outage, timeout, up) or command sequence (transfer settled) acted on.</summary>
    public long Target;
    /// <summary>Delivery interval start, or when heartbeats stopped (Unix ns).</summary>
    public long From;
    /// <summary>Delivery interval end (Unix ns).</summary>
    public long To;
    /// <summary>Money (micro-USD): deposit, withdrawal, collateral; for <see cref="ExchangeCommandKind.RegisterProvider"/>, the collateral observed.</summary>
    public long Amount;
    /// <summary>An account of the owner: deposit source, withdrawal destination, provider revenue.</summary>
    public UInt128 Account;
    /// <summary>
    /// A second account: provider collateral. For a deposit or collateral funding, the transfer's id when the caller
    /// fixes it (0: derived from the seq): an operator's funding id, so that a retried funding moves the money once (the
    /// ledger answers the retry <c>Exists</c> and it is not counted again).
    /// </summary>
    public UInt128 Account2;
    public int Gpus;
    public GpuClass Gpu;
    /// <summary>Region code (node admission).</summary>
    public string? Region;
    /// <summary>Node name (node admission).</summary>
    public string? Name;
    /// <summary>For <see cref="ExchangeCommandKind.TransferSettled"/>: whether the ledger took the transfer.</summary>
    public bool Ok;

    public static ExchangeCommand Place(long owner, int instrument, Side side, OrderType type, TimeInForce tif, long price, long quantity,
        bool postOnly = false, long expiresAt = 0) => new()
        {
            Kind = ExchangeCommandKind.Place, Owner = owner, Instrument = instrument, Side = side, Type = type, TimeInForce = tif,
            Price = price, Quantity = quantity, PostOnly = postOnly, ExpiresAt = expiresAt,
        };

    public static ExchangeCommand Cancel(long owner, long order) => new() { Kind = ExchangeCommandKind.Cancel, Owner = owner, Target = order };

    public static ExchangeCommand Replace(long owner, long order, long price, long quantity) =>
        new() { Kind = ExchangeCommandKind.Replace, Owner = owner, Target = order, Price = price, Quantity = quantity };

    public static ExchangeCommand Tick() => new() { Kind = ExchangeCommandKind.Tick };

    /// <summary>Provider <paramref name="provider"/> issues <paramref name="supply"/> shares of its node <paramref name="node"/>.</summary>
    public static ExchangeCommand IssueShares(long provider, long node, long supply) =>
        new() { Kind = ExchangeCommandKind.IssueShares, Owner = provider, Target = node, Quantity = supply };

    /// <summary>Holder <paramref name="holder"/> pledges <paramref name="shares"/> of <paramref name="node"/> for a loan of <paramref name="loan"/>.</summary>
    public static ExchangeCommand Pledge(long holder, long node, long shares, long loan) =>
        new() { Kind = ExchangeCommandKind.Pledge, Owner = holder, Target = node, Quantity = shares, Amount = loan };

    /// <summary>Lease holder <paramref name="holder"/> pledges its lease <paramref name="lease"/> for a loan of <paramref name="loan"/>.</summary>
    public static ExchangeCommand PledgeLease(long holder, long lease, long loan) =>
        new() { Kind = ExchangeCommandKind.PledgeLease, Owner = holder, Target = lease, Amount = loan };

    /// <summary>Borrower <paramref name="borrower"/> repays <paramref name="amount"/> of loan <paramref name="loan"/>.</summary>
    public static ExchangeCommand Repay(long borrower, long loan, long amount) =>
        new() { Kind = ExchangeCommandKind.Repay, Owner = borrower, Target = loan, Amount = amount };

    /// <summary>Holder <paramref name="from"/> moves <paramref name="shares"/> shares of <paramref name="node"/> to <paramref name="to"/>.</summary>
    public static ExchangeCommand TransferShares(long from, long node, long to, long shares) =>
        new() { Kind = ExchangeCommandKind.TransferShares, Owner = from, Target = node, To = to, Quantity = shares };

    /// <summary>Offers <paramref name="quantity"/> GPU-hours of lease <paramref name="lease"/> on <paramref name="instrument"/> at <paramref name="price"/>.</summary>
    public static ExchangeCommand Resell(long owner, long lease, int instrument, long price, long quantity, TimeInForce tif = TimeInForce.GoodTillCancel) =>
        new()
        {
            Kind = ExchangeCommandKind.Resell, Owner = owner, Target = lease, Instrument = instrument, Side = Side.Sell, Type = OrderType.Limit,
            TimeInForce = tif, Price = price, Quantity = quantity,
        };

    /// <summary>A block: <paramref name="gpus"/> GPUs for every hour of [<paramref name="startHour"/>, <paramref name="endHour"/>) at an average of at most <paramref name="maxAveragePrice"/>.</summary>
    public static ExchangeCommand Block(long owner, GpuClass gpu, string region, long startHour, long endHour, int gpus, long maxAveragePrice) =>
        new() { Kind = ExchangeCommandKind.Block, Owner = owner, Gpu = gpu, Region = region, From = startHour, To = endHour, Gpus = gpus, Price = maxAveragePrice };

    /// <summary>The block order a <see cref="ExchangeCommandKind.Block"/> command describes.</summary>
    public readonly BlockOrder AsBlock() => new(Owner, Gpu, Region ?? "", From, To, Gpus, Price);

    public override readonly string ToString() => $"#{Seq} {Kind} owner {Owner} instrument {Instrument} {Side} {Type} {Price}×{Quantity} target {Target}";
}

/// <summary>What one command did (fixed-size; its fills are in the batch's fill buffer).</summary>
public struct CommandResult
{
    public ExchangeError Error;
    public RejectReason BookReject;
    public OrderStatus Status;
    /// <summary>Why, in more words, as a stable code (see <see cref="RefusalDetail"/>).</summary>
    public RefusalDetail Detail;
    /// <summary>The order placed or acted on; for node admission the node; for deliveries the lease.</summary>
    public long Subject;
    /// <summary>What still rests of the order.</summary>
    public long Remaining;
    /// <summary>The first of the command's fills in the fill buffer, and how many.</summary>
    public int FirstFill, Fills;
    /// <summary>A number the detail refers to (GPUs free, the node that is down, the balance available…).</summary>
    public long DetailValue;
    /// <summary>For a block: the total paid (micro-USD); its average price per GPU-hour is ceil(Cost / (GPUs × hours)).</summary>
    public long Cost;

    public readonly bool Ok => Error == ExchangeError.None;
}

/// <summary>The detail of a refusal, stable values; <see cref="Refusals.Describe"/> says it in words.</summary>
public enum RefusalDetail : byte
{
    None = 0,
    /// <summary>The trading account's available balance (DetailValue) does not cover the order's maximum notional.</summary>
    BalanceShort = 1,
    /// <summary>The provider has fewer free GPUs (DetailValue) for the whole window.</summary>
    CapacityShort = 2,
    /// <summary>As <see cref="CapacityShort"/>, and a node of the provider in that class and region is down (DetailValue: the node).</summary>
    CapacityShortNodeDown = 3,
    /// <summary>Only registered providers sell capacity.</summary>
    NotAProvider = 4,
    /// <summary>The price is off the instrument's tick or band.</summary>
    PriceOffBand = 5,
    /// <summary>A market order found nothing on the other side.</summary>
    NoLiquidity = 6,
    /// <summary>A post-only order would take.</summary>
    PostOnlyWouldTake = 7,
    /// <summary>A fill-or-kill order cannot fill whole now.</summary>
    FillOrKillUnfillable = 8,
    /// <summary>The instrument does not trade now (DetailValue: when it starts or ended, Unix ns).</summary>
    NotTrading = 9,
    /// <summary>The quantity is not a whole number of GPUs for the window (DetailValue: the window's hours).</summary>
    NotWholeGpus = 10,
    /// <summary>The withdrawal exceeds what is available (DetailValue).</summary>
    WithdrawalShort = 11,
    /// <summary>The resting sell was cancelled because a node of its provider went down (DetailValue: the node).</summary>
    NodeDown = 12,
    /// <summary>The lease offered for resale is no longer active (DetailValue: its status).</summary>
    LeaseNotActive = 13,
    /// <summary>The lease does not cover the instrument's window, class and region from now on (DetailValue: the lease).</summary>
    LeaseDoesNotCover = 14,
    /// <summary>The lease has fewer GPUs not yet offered or sold (DetailValue) in some hour of the window.</summary>
    LeaseTimeShort = 15,
    /// <summary>The block is malformed (DetailValue: which rule, see <see cref="BlockRule"/>).</summary>
    BlockInvalid = 16,
    /// <summary>Some hour of the block has no hourly instrument trading now (DetailValue: the first such hour, Unix ns).</summary>
    BlockNotTrading = 17,
    /// <summary>Some hour's book offers the block fewer GPUs than it wants (DetailValue: the first such hour, Unix ns).</summary>
    BlockShort = 18,
    /// <summary>The block's quoted average price (DetailValue) is above its limit.</summary>
    BlockAboveLimit = 19,
    /// <summary>The block would trade with more makers (DetailValue) than one ledger chain settles atomically.</summary>
    BlockTooManyFills = 20,
    /// <summary>The ledger refused the command's settlement (DetailValue: its answer, a <see cref="CreateTransferResult"/>).</summary>
    LedgerRefused = 21,
    /// <summary>The holder has fewer free shares (DetailValue): shares offered by open sells or pledged are not free.</summary>
    SharesShort = 40,
    /// <summary>The loan asked exceeds the most the pledge allows (DetailValue, micro-USD).</summary>
    LoanMax = 41,
    /// <summary>Some of the lease's time is offered or sold on the book (resale): a pledge needs the whole lease (DetailValue: the lease).</summary>
    LeaseResold = 42,
}

/// <summary>Which shape rule a malformed block breaks (the <see cref="CommandResult.DetailValue"/> of <see cref="RefusalDetail.BlockInvalid"/>).</summary>
public enum BlockRule : byte
{
    None = 0,
    GpusNotPositive = 1,
    LimitNotPositive = 2,
    UnknownGpuClass = 3,
    UnknownRegion = 4,
    NotWholeHours = 5,
    EndNotAfterStart = 6,
    TooLong = 7,
    NotionalOverflows = 8,
}

/// <summary>Why an order left the book, beyond the matcher's own reasons.</summary>
public enum OrderEndReason : byte
{
    None = 0,
    Filled = 1,
    Cancelled = 2,
    Expired = 3,
    /// <summary>Its instrument stopped trading.</summary>
    InstrumentClosed = 4,
    /// <summary>A sell whose capacity went with a node that went down.</summary>
    NodeDown = 5,
    /// <summary>Cancelled by self-trade prevention, IOC/market remainder.</summary>
    Unfilled = 6,
    /// <summary>A resale sell whose lease failed.</summary>
    LeaseEnded = 7,
}

/// <summary>One fill: the taker's order, the maker's, the price and quantity, and the lease it created.</summary>
public readonly record struct FillRecord(long OrderId, long CounterOrderId, long Price, long Quantity, long LeaseId, long Sequence, int Instrument, Side TakerSide, long Time);

/// <summary>A refusal's detail in words.</summary>
public static class Refusals
{
    public static string? Describe(in CommandResult r) => r.Detail switch
    {
        RefusalDetail.None => null,
        RefusalDetail.BalanceShort => $"the order's maximum notional exceeds the trading account's available balance of {r.DetailValue} micro-USD",
        RefusalDetail.CapacityShort => $"the provider has {r.DetailValue} free GPUs of this class in this region for the whole window",
        RefusalDetail.CapacityShortNodeDown => $"too few free GPUs for the whole window: node {r.DetailValue} of this class and region is down",
        RefusalDetail.NotAProvider => "only registered providers sell capacity",
        RefusalDetail.PriceOffBand => "the price must be on the instrument's tick within its band",
        RefusalDetail.NoLiquidity => "nothing rests on the other side for a market order",
        RefusalDetail.PostOnlyWouldTake => "a post-only order must not take liquidity",
        RefusalDetail.FillOrKillUnfillable => "the book cannot fill this fill-or-kill order whole now",
        RefusalDetail.NotTrading => $"the instrument does not trade now (its trading window starts or ended at {r.DetailValue} Unix ns)",
        RefusalDetail.NotWholeGpus => $"the quantity must be a positive multiple of the window's {r.DetailValue} hours (whole GPUs)",
        RefusalDetail.WithdrawalShort => $"the trading account has {r.DetailValue} micro-USD available",
        RefusalDetail.NodeDown => $"node {r.DetailValue} of the provider went down",
        RefusalDetail.LeaseNotActive => $"the lease is no longer active (it is {(LeaseStatus)r.DetailValue})",
        RefusalDetail.LeaseDoesNotCover => $"lease {r.DetailValue} does not cover this instrument's class, region and window from now on",
        RefusalDetail.LeaseTimeShort => $"the lease has {r.DetailValue} GPUs not yet offered or sold in some hour of the window",
        RefusalDetail.BlockInvalid => (BlockRule)r.DetailValue switch
        {
            BlockRule.GpusNotPositive => "a block needs a positive number of GPUs",
            BlockRule.LimitNotPositive => "the average price limit must be positive",
            BlockRule.UnknownGpuClass => "unknown GPU class",
            BlockRule.UnknownRegion => "unknown region",
            BlockRule.NotWholeHours => "start and end must be whole UTC hours",
            BlockRule.EndNotAfterStart => "the end must be after the start",
            BlockRule.TooLong => $"a block spans at most {ExchangeStateMachine.BlockHoursMax} hours",
            BlockRule.NotionalOverflows => "the block's notional at the band's maximum price does not fit",
            _ => "the block is malformed",
        },
        RefusalDetail.BlockNotTrading => $"some hours of the block have no hourly instrument trading now (the first starts at {r.DetailValue} Unix ns)",
        RefusalDetail.BlockShort => $"some hours offer fewer GPUs than the block wants (the first starts at {r.DetailValue} Unix ns)",
        RefusalDetail.BlockAboveLimit => $"the average price {r.DetailValue} is above the block's limit",
        RefusalDetail.LoanMax => $"the pledge allows a loan of at most {r.DetailValue} micro-USD (the collateral's value at its recent VWAP, less the haircut, times the maximum loan-to-value)",
        RefusalDetail.LeaseResold => $"some of lease {r.DetailValue}'s time is offered or sold on the book: only a whole lease can be pledged",
        RefusalDetail.SharesShort => $"the holder has {r.DetailValue} free shares of this node (shares offered by open sells or pledged are not free)",
        RefusalDetail.BlockTooManyFills => $"the block would trade with {r.DetailValue} orders; at most {LedgerLimits.BatchEventsMax - 1} settle atomically",
        RefusalDetail.LedgerRefused => $"the ledger refused the command's settlement ({(CreateTransferResult)r.DetailValue}); nothing of it was applied",
        _ => r.Detail.ToString(),
    };
}
