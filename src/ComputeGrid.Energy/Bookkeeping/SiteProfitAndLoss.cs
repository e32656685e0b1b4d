namespace ComputeGrid.Energy.Bookkeeping;

/// <summary>
/// A hybrid site's profit and loss over [<see cref="FromUtc"/>, <see cref="ToUtc"/>), read from the ledger. Amounts are
/// <c>long</c> micro-USD (mining revenue also in satoshis); costs are positive when the site paid.
/// </summary>
public sealed record SiteProfitAndLoss
{
    /// <summary>The site's name.</summary>
    public required string Site { get; init; }
    /// <summary>The first interval start included (UTC).</summary>
    public required DateTime FromUtc { get; init; }
    /// <summary>The first interval start not included (UTC).</summary>
    public required DateTime ToUtc { get; init; }
    /// <summary>Intervals booked in the range (those with an energy bill, an AI revenue or a mining revenue line).</summary>
    public required int Intervals { get; init; }
    /// <summary>AI revenue recognized (leases and inference of the site's nodes).</summary>
    public required long AiRevenueMicroUsd { get; init; }
    /// <summary>Mining revenue: what the conversion desk paid for the satoshis at each day's price.</summary>
    public required long MiningRevenueMicroUsd { get; init; }
    /// <summary>Mining revenue in satoshis (paid by the pool).</summary>
    public required long MiningRevenueSatoshis { get; init; }
    /// <summary>Energy bills paid to the utility (less what the utility paid at negative prices).</summary>
    public required long EnergyCostMicroUsd { get; init; }
    /// <summary>4CP peak charges paid to the utility.</summary>
    public required long PeakChargeMicroUsd { get; init; }
    /// <summary>Miner restart wear accrued.</summary>
    public required long RestartWearMicroUsd { get; init; }

    /// <summary>AI revenue + mining revenue − energy cost − peak charge − restart wear.</summary>
    public long ValueMicroUsd => checked(AiRevenueMicroUsd + MiningRevenueMicroUsd - EnergyCostMicroUsd - PeakChargeMicroUsd - RestartWearMicroUsd);
}
