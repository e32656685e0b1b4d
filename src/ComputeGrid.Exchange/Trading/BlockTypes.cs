using ComputeGrid.Exchange.Instruments;

namespace ComputeGrid.Exchange.Trading;

/// <summary>
/// A block order: <paramref name="Gpus"/> GPUs of one class in one region for every hour of
/// [<paramref name="StartHour"/>, <paramref name="EndHour"/>), bought all-or-none across the hourly spot books the
/// window spans, at an average price no higher than <paramref name="MaxAveragePrice"/>.
/// </summary>
/// <param name="Owner">The buying trader (also the owner whose own asks the block never trades with).</param>
/// <param name="Gpu">The GPU class.</param>
/// <param name="Region">The region code.</param>
/// <param name="StartHour">Start of the window (Unix ns, UTC, a whole hour).</param>
/// <param name="EndHour">End of the window (Unix ns, UTC, a whole hour, exclusive).</param>
/// <param name="Gpus">GPUs wanted in every hour.</param>
/// <param name="MaxAveragePrice">Limit on the average price over the whole block, micro-USD per GPU-hour.</param>
public sealed record BlockOrder(long Owner, GpuClass Gpu, string Region, long StartHour, long EndHour, int Gpus, long MaxAveragePrice);

/// <summary>
/// One hour of a block quote: what that hour's spot book offers the block now, walking its asks in price-time
/// order up to the block's GPUs.
/// </summary>
/// <param name="Hour">Start of the hour (Unix ns).</param>
/// <param name="Instrument">The hourly instrument's id.</param>
/// <param name="Symbol">The hourly instrument's symbol.</param>
/// <param name="Gpus">GPUs available to the block in this hour, at most the block's GPUs.</param>
/// <param name="Cost">What those GPUs cost (micro-USD): the sum of each maker's price × GPUs taken.</param>
/// <param name="WorstPrice">The highest price the block reaches in this hour (0 when nothing is available).</param>
/// <param name="Makers">How many resting asks the block would trade with in this hour (one lease each).</param>
public sealed record BlockLeg(long Hour, int Instrument, string Symbol, int Gpus, long Cost, long WorstPrice, int Makers);

/// <summary>Why a window of a block is short.</summary>
public enum ShortReason : byte
{
    /// <summary>The hour's book offers the block fewer GPUs than it wants (its own asks do not count).</summary>
    NotEnoughOffered = 0,
    /// <summary>No hourly instrument for the hour trades now (not listed yet, past its gate closure, or unknown).</summary>
    NotTrading = 1,
}

/// <summary>A run of consecutive hours [<paramref name="Start"/>, <paramref name="End"/>) where a block is short for the same reason.</summary>
/// <param name="Start">First hour of the run (Unix ns).</param>
/// <param name="End">End of the run (Unix ns, exclusive).</param>
/// <param name="Available">GPUs available to the block in each hour of the run.</param>
/// <param name="Reason">Why the run is short.</param>
public sealed record ShortWindow(long Start, long End, int Available, ShortReason Reason);

/// <summary>
/// What filling a block would cost now. When <paramref name="Fillable"/> is false, <paramref name="TotalCost"/> and
/// <paramref name="AveragePrice"/> describe only what is available.
/// </summary>
/// <param name="Fillable">Every hour offers the block all its GPUs.</param>
/// <param name="TotalCost">Sum of the legs' costs (micro-USD).</param>
/// <param name="AveragePrice">TotalCost over the GPU-hours available, rounded up (so it exceeds a limit exactly when the total does).</param>
/// <param name="Legs">One leg per hour whose instrument trades now, by hour.</param>
/// <param name="Short">The short windows, by start.</param>
public sealed record BlockQuote(bool Fillable, long TotalCost, long AveragePrice, IReadOnlyList<BlockLeg> Legs, IReadOnlyList<ShortWindow> Short);

/// <summary>Why the books could not fill a well-formed block.</summary>
public enum BlockRefusal : byte
{
    None = 0,
    /// <summary>Some window is short; see <see cref="BlockQuote.Short"/>.</summary>
    Short = 1,
    /// <summary>The quoted average price is above the block's limit.</summary>
    AboveLimit = 2,
    /// <summary>The block would trade with more makers than one atomic ledger chain can settle.</summary>
    TooManyFills = 3,
}
