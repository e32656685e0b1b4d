using ComputeGrid.Core;
using ComputeGrid.Exchange.Matching;
using ComputeGrid.Exchange.Pipeline;
using ComputeGrid.Exchange.StateMachine;
using ComputeGrid.Exchange.Trading;
using ComputeGrid.Ledger;

namespace ComputeGrid.Server.Exchange;

/// <summary>A block order's outcome as the API answers it.</summary>
public sealed record BlockOutcome(ExchangeError Error, BlockRefusal Refusal, long BlockId, BlockQuote? Quote, IReadOnlyList<Fill> Fills,
    IReadOnlyList<ComputeGrid.Exchange.StateMachine.LeaseView> Leases, long TotalCost, long AveragePrice, string? Detail = null)
{
    /// <summary>True when the block filled.</summary>
    public bool Ok => Error == ExchangeError.None && Refusal == BlockRefusal.None;
}

/// <summary>The exchange's commands as the API's callers (endpoints, the node port) send them, and their outcomes as the API reads them.</summary>
public static class ExchangeCalls
{
    private const long NsPerHour = 3_600_000_000_000L;

    /// <summary>A place, cancel, replace or resale's outcome.</summary>
    public static OrderResult Order(CommandOutcome o)
    {
        CommandResult r = o.Result;
        var fills = new Fill[o.Fills.Length];
        for (int i = 0; i < fills.Length; i++)
        {
            FillRecord f = o.Fills[i];
            fills[i] = new Fill(f.OrderId, f.CounterOrderId, f.Price, f.Quantity, f.LeaseId, f.Sequence);
        }
        return new OrderResult(r.Error, r.BookReject, r.Subject, r.Status, r.Remaining, fills, Refusals.Describe(r));
    }

    /// <summary>Makes a principal a trader (its trading account); again is a no-op.</summary>
    public static async Task RegisterTraderAsync(ExchangeHost ex, long owner)
    {
        if (await ex.ReadAsync(sm => sm.Available(owner) is not null, CancellationToken.None)) return; // journal no command that changes nothing
        CommandOutcome o = await ex.SubmitAsync(new ExchangeCommand { Kind = ExchangeCommandKind.RegisterTrader, Owner = owner }, CancellationToken.None);
        if (!o.Result.Ok) throw new InvalidOperationException($"The exchange refused to register trader {owner}: {o.Result.Error}.");
    }

    /// <summary>
    /// Makes a principal a provider: paid on its revenue account, penalties from its collateral account (whose money
    /// reaches the exchange's mirror only through <see cref="ExchangeCommandKind.FundCollateral"/>); again is a no-op.
    /// </summary>
    public static async Task RegisterProviderAsync(ExchangeHost ex, long provider)
    {
        if (await ex.ReadAsync(sm => sm.CollateralAvailable(provider) is not null, CancellationToken.None)) return;
        CommandOutcome o = await ex.SubmitAsync(new ExchangeCommand
        {
            Kind = ExchangeCommandKind.RegisterProvider, Owner = provider,
            Account = ChartOfAccounts.PrincipalAccount(AccountCode.ProviderRevenue, (ulong)provider),
            Account2 = ChartOfAccounts.PrincipalAccount(AccountCode.ProviderCollateral, (ulong)provider),
        }, CancellationToken.None);
        if (!o.Result.Ok && o.Result.Error != ExchangeError.AlreadyRegistered)
            throw new InvalidOperationException($"The exchange refused to register provider {provider}: {o.Result.Error}.");
    }

    /// <summary>A provider's delivery report on a lease.</summary>
    public static async Task<ExchangeError> DeliverAsync(ExchangeHost ex, long provider, long lease, long fromNs, long toNs)
    {
        CommandOutcome o = await ex.SubmitAsync(new ExchangeCommand { Kind = ExchangeCommandKind.Deliver, Owner = provider, Target = lease, From = fromNs, To = toNs },
            CancellationToken.None);
        return o.Result.Error;
    }

    /// <summary>A provider's outage report on one of its nodes.</summary>
    public static async Task<ExchangeError> OutageAsync(ExchangeHost ex, long provider, long node)
    {
        CommandOutcome o = await ex.SubmitAsync(new ExchangeCommand { Kind = ExchangeCommandKind.Outage, Owner = provider, Target = node }, CancellationToken.None);
        return o.Result.Error;
    }

    /// <summary>
    /// A block command's outcome: its leases (copies) when it filled; when the books refused it, a quote taken just
    /// after the refusal (other commands may have moved the books since) so the client sees which hours are short.
    /// </summary>
    public static async Task<BlockOutcome> BlockAsync(ExchangeHost ex, BlockOrder block, CommandOutcome o, TimeProvider time)
    {
        CommandResult r = o.Result;
        string? detail = Refusals.Describe(r);
        BlockRefusal refusal = r.Detail switch
        {
            RefusalDetail.BlockShort or RefusalDetail.BlockNotTrading => BlockRefusal.Short,
            RefusalDetail.BlockAboveLimit => BlockRefusal.AboveLimit,
            RefusalDetail.BlockTooManyFills => BlockRefusal.TooManyFills,
            _ => BlockRefusal.None,
        };
        if (!r.Ok)
        {
            BlockQuote? quote = refusal == BlockRefusal.None ? null
                : await ex.ReadAsync(v => v.QuoteBlock(block, Math.Max(Clock.UnixNanoseconds(time), v.LastTime)), CancellationToken.None);
            return new BlockOutcome(r.Error == ExchangeError.None ? ExchangeError.BookRejected : r.Error, refusal, r.Subject, quote, [], [], 0, 0, detail);
        }
        var fills = Order(o).Fills;
        var leaseIds = fills.Select(f => f.LeaseId).ToArray();
        var leases = await ex.ReadAsync(v => leaseIds.Select(id => v.Lease(id)).OfType<ComputeGrid.Exchange.StateMachine.LeaseView>().ToArray(), CancellationToken.None);
        long gpuHours = checked((long)block.Gpus * ((block.EndHour - block.StartHour) / NsPerHour));
        long average = gpuHours == 0 ? 0 : (r.Cost + gpuHours - 1) / gpuHours;
        return new BlockOutcome(ExchangeError.None, BlockRefusal.None, r.Subject, null, fills, leases, r.Cost, average);
    }
}
