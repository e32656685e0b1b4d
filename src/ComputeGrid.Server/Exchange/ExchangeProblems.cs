using System.Globalization;
using ComputeGrid.Exchange.Matching;
using ComputeGrid.Exchange.Trading;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;

namespace ComputeGrid.Server.Exchange;

/// <summary>What a refused request was about, so the problem's detail can name it.</summary>
internal readonly record struct ProblemContext(
    long? Owner = null, string? Instrument = null, long? Order = null, long? Lease = null, long? Node = null, long? Provider = null);

/// <summary>
/// Turns the exchange's refusals into problem+json. The split: 400 the request itself is malformed (the endpoints
/// catch that before the exchange); 402 the buyer's balance cannot hold the order; 403 not the owner; 404 something
/// named does not exist; 409 valid, but the current state refuses it (nothing to match, capacity taken, the
/// instrument stopped trading, already registered); 422 valid JSON that breaks an instrument's rules (band, tick,
/// lot size, delivery outside the lease). Every problem carries <c>error</c> (the <see cref="ExchangeError"/> name)
/// and, for book refusals, <c>reject</c> (the <see cref="RejectReason"/> name), for clients that branch on them; a
/// refused block order carries <c>refusal</c> (the <see cref="BlockRefusal"/> name) and the <c>quote</c> instead.
/// </summary>
internal static class ExchangeProblems
{
    public static ProblemHttpResult From(OrderResult r, ProblemContext c) => From(r.Error, r.BookReject, r.Detail, c);

    public static ProblemHttpResult From(ExchangeError error, ProblemContext c) => From(error, RejectReason.None, null, c);

    public static ProblemHttpResult From(ExchangeError error, RejectReason reject, string? detail, ProblemContext c)
    {
        var ext = new Dictionary<string, object?> { ["error"] = Snake(error.ToString()) };
        if (reject != RejectReason.None) ext["reject"] = Snake(reject.ToString());
        return Status(error, reject, Text(error, reject, detail, c), ext);
    }

    /// <summary>
    /// A refused block order. A refusal by the books (short, above the limit, too many makers) is the current
    /// state's answer, so 409 whatever <see cref="ExchangeError"/> carries it (the order split would send a
    /// <see cref="ExchangeError.BookRejected"/> without a <see cref="RejectReason"/> to 422). The problem carries
    /// <c>refusal</c> and, when the exchange quoted the block, <c>quote</c>: what the decision was made on, so a
    /// client sees which hours are short without quoting again (the books may have moved since).
    /// </summary>
    public static ProblemHttpResult From(BlockOutcome r, BlockOrder b, ProblemContext c)
    {
        var ext = new Dictionary<string, object?> { ["error"] = Snake(r.Error.ToString()) };
        if (r.Refusal != BlockRefusal.None) ext["refusal"] = Snake(r.Refusal.ToString());
        if (r.Quote is { } q) ext["quote"] = BlockQuoteView.From(b, q);
        string text = Text(r.Error, RejectReason.None, r.Detail, c);
        // The detail is the one line a CLI user sees: name the short hours there, not only in the quote.
        if (r.Refusal == BlockRefusal.Short && r.Quote is { Short.Count: > 0 } sq) text += " " + ShortWindows(sq.Short, b.Gpus);
        return r.Refusal != BlockRefusal.None ? Problems.Conflict(text, ext) : Status(r.Error, RejectReason.None, text, ext);
    }

    /// <summary>An enum member's name as the API writes enum values (snake_case).</summary>
    public static string Snake(string name) => ApiJson.Naming.ConvertName(name);

    /// <summary>The short windows as one sentence, the first few only: a month-long block can have hundreds.</summary>
    private static string ShortWindows(IReadOnlyList<ShortWindow> windows, int gpus)
    {
        const int shown = 3;
        static string Iso(long ns) => DateTimeOffset.UnixEpoch.AddTicks(ns / 100).ToString("yyyy-MM-dd'T'HH:mm'Z'", CultureInfo.InvariantCulture);
        var parts = windows.Take(shown).Select(w => $"{Iso(w.Start)} to {Iso(w.End)} has {w.Available} of {gpus} GPUs ({w.Reason})");
        string more = windows.Count > shown ? $"; and {windows.Count - shown} more windows" : "";
        return $"Short: {string.Join("; ", parts)}{more}.";
    }

    // The exchange's own detail is specific (it knows the band, the hold); ours fills in where it has none.
    private static string Text(ExchangeError error, RejectReason reject, string? detail, ProblemContext c) =>
        detail is not { Length: > 0 } d ? Describe(error, reject, c)
            : error == ExchangeError.LedgerRejected ? $"The ledger refused the order's hold: {d}."
            : Sentence(d);

    private static ProblemHttpResult Status(ExchangeError error, RejectReason reject, string text, Dictionary<string, object?> ext)
    {
        return error switch
        {
            // A bug met while applying it: nothing of it was applied (it was excluded); retrying is safe.
            ExchangeError.CommandFailed => Problems.Status(StatusCodes.Status500InternalServerError, "Command failed", text),
            ExchangeError.InsufficientBalance => Problems.PaymentRequired(text, ext),
            ExchangeError.NotOwner => Problems.Forbidden(text, ext),
            ExchangeError.UnknownInstrument or ExchangeError.UnknownTrader or ExchangeError.UnknownOrder or ExchangeError.UnknownProvider
                or ExchangeError.UnknownNode or ExchangeError.UnknownLease => Problems.NotFound(text, ext),
            ExchangeError.InstrumentNotTrading or ExchangeError.InsufficientCapacity or ExchangeError.AlreadyRegistered
                or ExchangeError.LedgerRejected or ExchangeError.InsufficientShares or ExchangeError.SharesAlreadyIssued
                or ExchangeError.SettlementRefused or ExchangeError.LeasePledged or ExchangeError.LeaseNotPledgeable => Problems.Conflict(text, ext),
            ExchangeError.NotApprovedIssuer => Problems.Forbidden(text, ext),
            ExchangeError.NoShares => Problems.NotFound(text, ext),
            ExchangeError.BookRejected when reject is RejectReason.NoLiquidity or RejectReason.PostOnlyWouldTake
                or RejectReason.FillOrKillUnfillable or RejectReason.BookFull => Problems.Conflict(text, ext),
            _ => Problems.Unprocessable(text, ext),
        };
    }

    private static string Describe(ExchangeError e, RejectReason reject, ProblemContext c) => e switch
    {
        ExchangeError.UnknownInstrument => $"No instrument {c.Instrument} is trading (unknown symbol, expired, or not listed yet).",
        ExchangeError.InstrumentNotTrading => $"Instrument {c.Instrument} is not trading now.",
        ExchangeError.UnknownTrader => c.Owner is long o
            ? $"Principal {o} is not a trader on the exchange (customers and providers are)."
            : "The ledger account does not exist or is not a USD account.",
        ExchangeError.QuantityMustBeWholeGpus => "The quantity must be a positive whole number of GPUs times the instrument's hours.",
        ExchangeError.InsufficientBalance => "The buyer's available balance cannot hold this order's maximum notional.",
        ExchangeError.InsufficientCapacity => c.Lease is long l
            ? $"Lease {l} has no free GPU time for that instrument (window, GPU class, region, or already offered)."
            : "The seller has no free registered capacity for the instrument's whole window.",
        ExchangeError.NotionalOverflows => "Price × quantity does not fit in 64-bit micro-USD.",
        ExchangeError.BookRejected => DescribeReject(reject),
        ExchangeError.UnknownOrder => $"No open order {c.Order}.",
        ExchangeError.NotOwner => c.Order is long order ? $"Order {order} is not owned by {c.Owner}."
            : c.Lease is long lease ? $"Lease {lease} is not held (or delivered) by {c.Owner?.ToString() ?? c.Provider?.ToString()}."
            : c.Node is long node ? $"Node {node} does not belong to provider {c.Provider}."
            : "Not the owner.",
        ExchangeError.UnknownProvider => c.Provider is long p
            ? $"Provider {p} is not registered, or its revenue/collateral accounts are not USD ledger accounts."
            : "Unknown provider.",
        ExchangeError.UnknownNode => $"No node {c.Node}.",
        ExchangeError.UnknownLease => $"No lease {c.Lease}.",
        ExchangeError.InvalidDelivery => $"The delivery does not fit lease {c.Lease}: it must be whole hours inside its window, not more than leased, on an active lease.",
        ExchangeError.AlreadyRegistered => "Already registered with different accounts.",
        ExchangeError.LedgerRejected => "The ledger refused the order's hold.",
        ExchangeError.InvalidRequest => "The request is invalid (GPU class, region, count or name).",
        ExchangeError.CommandFailed => "The exchange failed while applying this command; nothing of it was applied, and it never will be (retry it).",
        ExchangeError.InsufficientShares => "Too few free shares of the node (shares offered by open sells or pledged are not free).",
        ExchangeError.NotApprovedIssuer => "The provider is not approved to issue shares (an operator approves issuers: POST /api/shares/issuers/{id}).",
        ExchangeError.SharesAlreadyIssued => $"Node {c.Node} has issued its shares already; the supply is fixed.",
        ExchangeError.NoShares => $"Node {c.Node} has issued no shares.",
        ExchangeError.LeasePledged => $"Lease {c.Lease} is pledged for a loan: it cannot be resold or pledged again until the loan is repaid.",
        ExchangeError.LeaseNotPledgeable => $"Lease {c.Lease} cannot be pledged: it must be active with time left, none of it offered or sold on the book.",
        ExchangeError.SettlementRefused => "The ledger refused this command's settlement; nothing of it was applied, and it never will be (the exchange goes on without it).",
        _ => e.ToString(),
    };

    private static string DescribeReject(RejectReason r) => r switch
    {
        RejectReason.QuantityMustBePositive => "The quantity must be positive.",
        RejectReason.PriceMustBePositive => "The price must be positive.",
        RejectReason.PriceOutsideBand => "The price is outside the instrument's band (see min_price/max_price of the instrument).",
        RejectReason.PriceNotOnTick => "The price is not on the instrument's tick (see tick of the instrument).",
        RejectReason.PostOnlyWouldTake => "A post-only order would take liquidity.",
        RejectReason.FillOrKillUnfillable => "The fill-or-kill order cannot be filled whole now.",
        RejectReason.NoLiquidity => "Nothing rests on the other side for a market order.",
        RejectReason.ExpiryMustBeInTheFuture => "expires_at must be in the future.",
        RejectReason.BookFull => "The instrument's book holds its maximum number of orders.",
        RejectReason.MarketOrderMustBeImmediate => "A market order cannot be good-till-time.",
        _ => $"The book refused the order ({r}).",
    };

    private static string Sentence(string s)
    {
        s = s.Trim();
        if (s.Length == 0) return s;
        s = char.ToUpperInvariant(s[0]) + s[1..];
        return s.EndsWith('.') ? s : s + ".";
    }
}
