using ComputeGrid.Inference.Reports;
using ComputeGrid.Ledger;
using ComputeGrid.Server.Inference;

namespace ComputeGrid.Server.Reports;

/// <summary>
/// How many shares a node has outstanding at an instant, or null when it has issued none. The Tokens component provides
/// the real one when node shares are wired into the server; until then <see cref="NoNodeShares"/>.
/// </summary>
public interface INodeShareSupply
{
    /// <summary>The shares of <paramref name="nodePrincipal"/> outstanding at <paramref name="atUnixNs"/>, or null when none were issued.</summary>
    long? SharesOutstanding(ulong nodePrincipal, long atUnixNs);
}

/// <summary>The exchange's share register: a node's fixed supply from its issuance on.</summary>
public sealed class ExchangeShareSupply(ComputeGrid.Exchange.Pipeline.ExchangeHost exchange) : INodeShareSupply
{
    /// <inheritdoc />
    public long? SharesOutstanding(ulong nodePrincipal, long atUnixNs) =>
        exchange.SharesOf((long)nodePrincipal) is { } s && s.IssuedAt <= atUnixNs ? s.Supply : null;
}

/// <summary>No node has issued shares.</summary>
public sealed class NoNodeShares : INodeShareSupply
{
    /// <inheritdoc />
    public long? SharesOutstanding(ulong nodePrincipal, long atUnixNs) => null;
}

/// <summary>
/// A node's figures for one epoch, derived from the ledger alone: the transfers escrow → the node's revenue account
/// with code <c>InferenceRevenue</c> (or, for a node that issued shares, escrow → its share pool with code
/// <c>ShareRevenue</c>) whose ledger timestamp falls in [start, end) — one per paid request, its amount the
/// node's revenue, its <c>user_data_32</c> the request's tokens as the gateway metered them (0 on a capture that
/// recovery completed after a crash: the hold does not carry the tokens, so they are unknown and not counted). The
/// account's history is read newest first, a page per ledger read, down to the epoch's start.
/// </summary>
public static class NodeLedgerStatement
{
    /// <summary>The statement of <paramref name="epoch"/> for the node, read now.</summary>
    public static async Task<EpochStatement> ReadAsync(InferencePayments payments, INodeShareSupply shares, ulong nodePrincipal, long epoch, long epochNs,
        long nowUnixNs, CancellationToken ct)
    {
        long start = checked(epoch * epochNs), end = checked(start + epochNs);
        var sums = new Sums();
        // A node that issued shares is paid into its share pool (code ShareRevenue) instead of its revenue account: both count.
        await AddAsync(payments, InferencePayments.NodeRevenueAccount(nodePrincipal), (ushort)TransferCode.InferenceRevenue, start, end, sums, ct);
        await AddAsync(payments, ChartOfAccounts.SharePool(nodePrincipal), (ushort)TransferCode.ShareRevenue, start, end, sums, ct);
        return new EpochStatement
        {
            NodePrincipal = nodePrincipal, Epoch = epoch, StartUnixNs = start, EndUnixNs = end, Complete = end <= nowUnixNs,
            Requests = sums.Requests, Tokens = sums.Tokens, TokensUnknownRequests = sums.Unknown, RevenueMicroUsd = sums.Revenue,
            SharesOutstanding = shares.SharesOutstanding(nodePrincipal, end),
        };
    }

    // Adds the account's transfers escrow → account with the code whose timestamps fall in [start, end).
    private static async Task AddAsync(InferencePayments payments, UInt128 account, ushort code, long start, long end, Sums sums, CancellationToken ct)
    {
        long before = long.MaxValue;
        while (true)
        {
            Transfer[]? page = await payments.HistoryAsync(account, before, LedgerLimits.HistoryLimitMax, ct);
            if (page is null || page.Length == 0) return;
            foreach (Transfer t in page)
            {
                if (t.Timestamp >= end) continue;
                if (t.Timestamp < start) return;
                if (t.CreditAccountId != account || t.DebitAccountId != InferencePayments.EscrowAccount || t.Code != code) continue;
                sums.Requests++;
                sums.Revenue = checked(sums.Revenue + t.Amount);
                if (t.UserData32 == 0) sums.Unknown++;
                else sums.Tokens = checked(sums.Tokens + t.UserData32);
            }
            if (page.Length < LedgerLimits.HistoryLimitMax) return;
            before = page[^1].Timestamp;
        }
    }

    private sealed class Sums
    {
        public long Requests, Tokens, Unknown, Revenue;
    }
}
