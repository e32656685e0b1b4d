using ComputeGrid.Core;

namespace ComputeGrid.Server.WebConsole;

/// <summary>
/// One sample of the figures the console shows, as one caller may see it: <c>GET /api/console/overview</c> answers the
/// latest, and <c>GET /api/stream</c> pushes each new one. Money is micro-USD (integers); a rate is the change over
/// <see cref="WindowMs"/> divided by it, computed here so the page shows the server's figure, never its own.
/// </summary>
/// <param name="Seq">The sample's number (increases by one per sample since the server started).</param>
/// <param name="At">When it was taken (server clock).</param>
/// <param name="Scope"><c>operator</c> (everything), <c>customer</c> or <c>provider</c> (its own figures and the public ones).</param>
/// <param name="WindowMs">The span the rates are measured over (0 for the first sample).</param>
/// <param name="Ledger">The ledger's op and size, its invariants, its latest checkpoint and the checkpoint's anchor on chain.</param>
/// <param name="Trades">Trades on the exchange since the server started (public market data: every trade is on the public tape).</param>
/// <param name="Requests">Paid requests: all of them for an operator, the caller's own for a customer; null for a provider.</param>
/// <param name="Revenue">Revenue by source (operators only).</param>
/// <param name="Power">The live sites' power (operators and providers).</param>
/// <param name="Own">The caller's own accounts (customers and providers).</param>
public sealed record ConsoleOverview(long Seq, ApiTime At, string Scope, long WindowMs, LedgerFigures Ledger, TradeFigures Trades,
    RequestFigures? Requests, RevenueFigures? Revenue, PowerFigures? Power, OwnBalance? Own);

/// <summary>
/// The ledger as the sample saw it. Its size and the invariants' detail (op, transfers, accounts, which account broke
/// what) describe every customer's activity, so only operators see them; the checkpoint root and its anchor are public
/// (anyone may check a balance proof against them), so everyone does.
/// </summary>
/// <param name="Op">The last op the ledger committed (operators; null for others).</param>
/// <param name="Transfers">Transfers stored (operators; null for others).</param>
/// <param name="Accounts">Accounts (operators; null for others).</param>
/// <param name="Invariants">The money invariants, checked over every account at this sample (operators; null for others).</param>
/// <param name="Checkpoint">The latest balance checkpoint (public, like <c>/api/ledger/checkpoints/latest</c>), or null before the first.</param>
/// <param name="Anchor">The latest checkpoint anchored on chain, or null (no chain, or none anchored yet).</param>
public sealed record LedgerFigures(ulong? Op, int? Transfers, int? Accounts, InvariantStatus? Invariants, CheckpointFigures? Checkpoint, AnchorFigures? Anchor);

/// <summary>A balance checkpoint: the Merkle sum root over every balance at an op, bound to the log's hash chain.</summary>
public sealed record CheckpointFigures(ulong Op, string Root, string ChainHead);

/// <summary>A checkpoint anchored on chain: its op and root, the anchor contract and the transaction.</summary>
public sealed record AnchorFigures(ulong Op, string Root, string Contract, string TransactionHash, long BlockNumber);

/// <summary>Trades since the server started.</summary>
/// <param name="Count">Trades.</param>
/// <param name="NotionalMicroUsd">Their price × quantity, summed (micro-USD).</param>
/// <param name="PerMinute">Trades per minute over the window.</param>
/// <param name="LastPrice">The last trade's price (micro-USD per unit), or null.</param>
/// <param name="LastInstrument">The last trade's instrument id, or null.</param>
public sealed record TradeFigures(long Count, long NotionalMicroUsd, double PerMinute, long? LastPrice, int? LastInstrument);

/// <summary>Paid requests charged (from the ledger: each charge is one request).</summary>
/// <param name="Total">Requests charged, all time.</param>
/// <param name="PerSecond">Requests per second over the window.</param>
/// <param name="SpentMicroUsd">What they cost, all time.</param>
/// <param name="SpentMicroUsdPerSecond">Spend per second over the window (rounded down).</param>
public sealed record RequestFigures(long Total, double PerSecond, long SpentMicroUsd, long SpentMicroUsdPerSecond);

/// <summary>Revenue by source, all time and per second over the window (micro-USD, rounded down).</summary>
/// <param name="InferenceMicroUsd">Paid inference charges.</param>
/// <param name="LeasesMicroUsd">Lease deliveries paid from escrow.</param>
/// <param name="MiningMicroUsd">Mined bitcoin sold at the day's price.</param>
/// <param name="InferenceMicroUsdPerSecond">Inference per second.</param>
/// <param name="LeasesMicroUsdPerSecond">Leases per second.</param>
/// <param name="MiningMicroUsdPerSecond">Mining per second.</param>
public sealed record RevenueFigures(long InferenceMicroUsd, long LeasesMicroUsd, long MiningMicroUsd,
    long InferenceMicroUsdPerSecond, long LeasesMicroUsdPerSecond, long MiningMicroUsdPerSecond);

/// <summary>Power across the live sites (kW, as the sites' controllers and fleets report it).</summary>
/// <param name="AiKw">GPU load with its cooling share, all sites.</param>
/// <param name="MinersKw">Miners with their cooling share, all sites.</param>
/// <param name="FacilityKw">Everything drawn, all sites.</param>
/// <param name="InterconnectKw">The sites' interconnect limits, summed.</param>
/// <param name="Sites">Each site.</param>
public sealed record PowerFigures(double AiKw, double MinersKw, double FacilityKw, double InterconnectKw, IReadOnlyList<SitePowerFigures> Sites);

/// <summary>One site's power at its replayed time.</summary>
/// <param name="Name">The site.</param>
/// <param name="SeriesTime">The replayed time of its price series.</param>
/// <param name="PriceUsdPerMwh">The last real-time power price (USD/MWh), or null before the first.</param>
/// <param name="AiKw">GPU load with cooling.</param>
/// <param name="MinersKw">Miners with cooling.</param>
/// <param name="FacilityKw">Everything drawn.</param>
/// <param name="InterconnectKw">The interconnect limit.</param>
/// <param name="Emergency">A grid emergency is declared.</param>
/// <param name="PeakGuard">The 4CP peak guard is curtailing.</param>
/// <param name="MinersDown">Racks that do not answer.</param>
public sealed record SitePowerFigures(string Name, ApiTime SeriesTime, double? PriceUsdPerMwh, double AiKw, double MinersKw, double FacilityKw,
    double InterconnectKw, bool Emergency, bool PeakGuard, int MinersDown);
