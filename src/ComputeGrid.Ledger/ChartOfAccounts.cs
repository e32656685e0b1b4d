using ComputeGrid.Core;

namespace ComputeGrid.Ledger;

/// <summary>
/// What a ledger account is for. Every account code ComputeGrid uses is declared here, once; a code never has two
/// meanings. Codes 1 to <see cref="ChartOfAccounts.ClientCodeMax"/> are the client space: accounts operators create
/// through the raw ledger API, which the chart gives no meaning. Values are stable (they are in the log).
/// </summary>
public enum AccountCode : ushort
{
    // ---- system accounts: one per asset, owned by no principal ----

    /// <summary>The stablecoin's issuance side: operator funding is debited here (its balance is what was issued).</summary>
    Treasury = 1001,
    /// <summary>The platform's fee revenue (inference fees, exchange fees).</summary>
    PlatformFees = 1002,
    /// <summary>Paid inference: holds of requests in flight are pending credits here until captured or voided.</summary>
    InferenceEscrow = 1003,
    /// <summary>The exchange: holds of open buy orders are pending credits here.</summary>
    ExchangeEscrow = 1004,
    /// <summary>Hybrid sites: what sites pay for their power (the utility's side).</summary>
    Utility = 1005,
    /// <summary>Hybrid sites: where mining revenue comes from (the pool's side).</summary>
    Mining = 1006,
    /// <summary>Settlement: stablecoin that left for, or arrived from, the chain.</summary>
    ChainBridge = 1007,
    /// <summary>Node shares: the issuance side of one node's shares (qualifier: the share asset); its balance is the supply issued.</summary>
    ShareIssuance = 1008,
    /// <summary>Node shares: shares offered by open sell orders are pending credits here (one per share asset).</summary>
    ShareEscrow = 1009,
    /// <summary>Lending against pledged shares: the pool loans are paid from and repaid to (stablecoin).</summary>
    LendingPool = 1010,
    /// <summary>x402: the platform's claim on signed payment authorizations not yet settled on chain (payers are credited from it).</summary>
    X402Receivable = 1011,
    /// <summary>x402: authorizations served but never settled on chain (used elsewhere, expired, reverted): the platform's loss.</summary>
    X402Losses = 1012,
    /// <summary>Stablecoin the server's own chain account holds (x402 settlements arrive there).</summary>
    ChainCustody = 1013,
    // 1020-1029: the chain bridge (issue 16); other chain work takes codes outside this range.
    /// <summary>The chain bridge: the stablecoin the vault contract holds on chain (the server's own chain account is ChainCustody) (debited by each deposit, credited by each paid withdrawal).</summary>
    VaultCustody = 1020,
    /// <summary>The chain bridge: withdrawals held from their payer's balance until the chain pays them (pending credits here).</summary>
    ChainWithdrawalsInFlight = 1021,
    /// <summary>The chain bridge: deposits that named no ledger account a deposit may credit, kept for operators to resolve.</summary>
    ChainSuspense = 1022,
    // 1030-1039: hybrid sites' economics in the ledger (issue 17).
    /// <summary>Hybrid sites: the conversion desk's bitcoin (credited with the satoshis each site sells at the day's price).</summary>
    BitcoinConversion = 1030,
    /// <summary>Hybrid sites: the conversion desk's stablecoin (debited with what it pays sites for their satoshis).</summary>
    BitcoinConversionUsd = 1031,
    /// <summary>
    /// Hybrid sites: the AI revenue a site recognizes (its nodes' leases and inference, paid to the nodes elsewhere in the
    /// ledger): the counterpart of each site's AI revenue line, so a site's P&amp;L reads from its own account.
    /// </summary>
    SiteAiRevenue = 1032,
    /// <summary>Hybrid sites: the wear of miner restarts, accrued against each site (a cost, not a payment to anyone).</summary>
    SiteEquipmentWear = 1033,

    // ---- accounts owned by a principal: the id's low 64 bits are the principal's id ----

    /// <summary>A customer's stablecoin balance: pays for inference and what it buys on the exchange. Never below zero.</summary>
    CustomerBalance = 2001,
    /// <summary>
    /// A principal's funds on the exchange: deposited from its own accounts, debited only by the exchange (holds of
    /// buy orders, withdrawals), so the exchange's pre-trade risk mirrors it exactly. Never below zero.
    /// </summary>
    ExchangeTrading = 2002,
    /// <summary>A provider's revenue from delivered compute (also what it pays with when it buys). Never below zero.</summary>
    ProviderRevenue = 2101,
    /// <summary>A provider's collateral: penalties for failed delivery are taken from it. Never below zero.</summary>
    ProviderCollateral = 2102,
    /// <summary>An admitted node's inference revenue (the node's share of every request it served).</summary>
    NodeRevenue = 2201,
    /// <summary>A holder's shares of one node (asset: the node's shares; qualifier: the node's id). Never below zero.</summary>
    ShareHolding = 2301,
    /// <summary>A holder's pledged shares of one node: locked as a loan's collateral (qualifier: the node's id). Never below zero.</summary>
    SharePledge = 2302,

    // ---- accounts of an object, owned by the system: the id's low 64 bits are the object's id ----

    /// <summary>One exchange lease's escrow: funded at the fill, paid out as delivery is reported, refunded on failure.</summary>
    LeaseEscrow = 3001,
    /// <summary>One node's share pool: revenue owed to the holders of its share tokens until they claim it.</summary>
    SharePool = 3101,
    /// <summary>
    /// An x402 payer's balance: a wallet without a principal, keyed by its address (the id's qualifier and number are
    /// 112 bits of SHA-256 of the address). Credited with each signed authorization, charged like a customer. Never below zero.
    /// </summary>
    X402Payer = 3201,
    // 3301-3309: a hybrid site's accounts (the id's number: the site's id, SiteLedger.SiteId).
    /// <summary>A hybrid site's operating account (stablecoin): receives its revenue (AI, mining sold, the utility's payments at negative prices). Never below zero.</summary>
    SiteOperating = 3301,
    /// <summary>A hybrid site's bitcoin (satoshis): mining revenue arrives here and is sold at the day's price.</summary>
    SiteBitcoin = 3302,
    /// <summary>
    /// A hybrid site's costs (stablecoin), debit-normal: debited with its energy bills, 4CP charges and restart wear as
    /// they accrue, whatever its cash, so a site in loss still books every cost. Its credits never exceed its debits.
    /// </summary>
    SiteExpenses = 3303,
}

/// <summary>What a transfer is. Declared once, as <see cref="AccountCode"/>; codes up to <see cref="ChartOfAccounts.ClientCodeMax"/> are the client space.</summary>
public enum TransferCode : ushort
{
    /// <summary>An operator funds a principal's account from the treasury (user_data_64: the operator's principal id).</summary>
    Funding = 1001,
    /// <summary>Paid inference: the hold of a request's maximum cost.</summary>
    InferenceHold = 1101,
    /// <summary>Paid inference: the node's part of a captured charge.</summary>
    InferenceRevenue = 1102,
    /// <summary>Paid inference: the platform's fee of a captured charge.</summary>
    InferenceFee = 1103,
    /// <summary>Exchange: the hold of a buy order's maximum notional.</summary>
    ExchangeHold = 1201,
    /// <summary>Exchange: a fill moves the notional from the order escrow into the lease's escrow.</summary>
    LeaseFunding = 1202,
    /// <summary>Exchange: metered delivery pays the payee from the lease's escrow.</summary>
    DeliveryPayment = 1203,
    /// <summary>Exchange: what was not delivered goes back to the buyer.</summary>
    Refund = 1204,
    /// <summary>Exchange: a provider that failed delivery pays the buyer from its collateral.</summary>
    Penalty = 1205,
    /// <summary>Exchange: a principal moves money from its own account into its exchange trading account (or its collateral).</summary>
    ExchangeDeposit = 1206,
    /// <summary>Exchange: a principal takes money from its exchange trading account back to its own account.</summary>
    ExchangeWithdrawal = 1207,
    /// <summary>Node shares: the issuance of a node's fixed supply to its provider.</summary>
    ShareIssue = 1301,
    /// <summary>Node shares: the hold of shares a sell order offers, and a fill's shares to the buyer.</summary>
    ShareTrade = 1302,
    /// <summary>Node shares: a fill's stablecoin from the order escrow to the seller.</summary>
    SharePayment = 1303,
    /// <summary>Node shares: revenue of a node paid into its share pool (each inference capture, each lease delivery).</summary>
    ShareRevenue = 1304,
    /// <summary>Node shares: a holder claims its entitlement from the node's share pool.</summary>
    ShareClaim = 1305,
    /// <summary>Node shares: a holder moves shares to another principal (not through the book).</summary>
    ShareTransfer = 1306,
    /// <summary>Pledges: shares moved into, or released from, a pledge.</summary>
    SharePledge = 1307,
    /// <summary>Pledges: a loan paid out of the lending pool, its repayment and its interest.</summary>
    Loan = 1308,
    /// <summary>x402: a payer credited with a signed authorization's value, from the receivable.</summary>
    X402Payment = 1401,
    /// <summary>x402: an authorization settled on chain (custody debited, receivable credited).</summary>
    X402Settlement = 1402,
    /// <summary>x402: an authorization that finally failed to settle after service, written off to losses.</summary>
    X402Loss = 1403,
    /// <summary>x402: a credited authorization handed back unserved (the payer debited, the receivable credited).</summary>
    X402Release = 1404,
    // 1501-1509: the chain bridge (issue 16).
    /// <summary>Chain bridge: a vault deposit credited after its confirmations (user_data_64: its block number).</summary>
    ChainDeposit = 1501,
    /// <summary>Chain bridge: a withdrawal's hold on its payer's balance, and its post or void.</summary>
    ChainWithdrawal = 1502,
    /// <summary>Chain bridge: a paid withdrawal leaves the vault's custody.</summary>
    ChainWithdrawalPaid = 1503,
    /// <summary>Chain bridge: share revenue claimed for a node's on-chain holders leaves as the stablecoin their token pulled from the server's account.</summary>
    ChainShareDividends = 1504,

    // 1601-1609: hybrid sites' economics (issue 17); every one's user_data_64 is the interval's start (Unix seconds).
    /// <summary>Hybrid site: an interval's energy bill (site's expenses → utility; the utility → site's operating account when the price was negative).</summary>
    SiteEnergyBill = 1601,
    /// <summary>Hybrid site: an interval's share of the transmission peak charge (4CP) (site's expenses → utility).</summary>
    SitePeakCharge = 1602,
    /// <summary>Hybrid site: an interval's mining revenue in satoshis (mining pool → site's bitcoin).</summary>
    SiteMiningRevenue = 1603,
    /// <summary>Hybrid site: the satoshis sold at the day's price (site's bitcoin → conversion desk).</summary>
    SiteBitcoinSale = 1604,
    /// <summary>Hybrid site: the stablecoin the sale paid (conversion desk → site; user_data_128: price per BTC in micro-USD, high 64 bits, and the exact remainder, low 64 bits).</summary>
    SiteBitcoinProceeds = 1605,
    /// <summary>Hybrid site: an interval's AI revenue recognized by the site (leases and inference of its nodes).</summary>
    SiteAiRevenue = 1606,
    /// <summary>Hybrid site: an interval's miner restart wear.</summary>
    SiteRestartWear = 1607,
}

/// <summary>Who owns the accounts of a code.</summary>
public enum AccountOwnership : byte
{
    /// <summary>Client space: made through the raw ledger API, owned by the operators.</summary>
    Operators,
    /// <summary>A system account, one per asset.</summary>
    System,
    /// <summary>A principal's account: the id names the principal.</summary>
    Principal,
    /// <summary>An object's account (a lease, a node's share pool), owned by the system.</summary>
    Object,
}

/// <summary>The transfer ids' spaces: each component derives its transfer ids inside its own.</summary>
public enum TransferSpace : ushort
{
    /// <summary>Operator funding: ids from the funding's client-chosen id.</summary>
    Funding = 1,
    /// <summary>Paid inference: ids from the request's key.</summary>
    Inference = 2,
    /// <summary>The exchange: ids from its run epoch and command sequence.</summary>
    Exchange = 3,
    /// <summary>Node share tokens.</summary>
    Tokens = 4,
    /// <summary>Chain settlement.</summary>
    Chain = 5,
    /// <summary>Hybrid sites' energy and mining accounting.</summary>
    Energy = 6,
}

/// <summary>One declared account code: what it is, who owns it, its balance flags.</summary>
public sealed record AccountKind(AccountCode Code, AccountOwnership Ownership, AccountFlags Flags, string Description);

/// <summary>
/// The one chart of accounts: every account code and id range of ComputeGrid, declared once and owned by the
/// ledger component. Components never build account or transfer ids by hand; they ask here.
/// <para>
/// Ids are 128-bit. The client space (the high bit clear) belongs to the raw ledger API. The reserved space (the
/// high bit set) is the system's: <c>hi = 1 · code (15 bits) · qualifier (48 bits)</c>, <c>lo = number</c>. An
/// account's code field equals the code in its id; a system account's qualifier is its asset code; a principal's
/// account has the principal's id as its number (and in <c>user_data_64</c>); an object's account has the object's
/// id as its number and the component's qualifier (the exchange's run epoch). Transfer ids use the same layout with
/// a <see cref="TransferSpace"/> in place of the code.
/// </para>
/// </summary>
public static class ChartOfAccounts
{
    /// <summary>The highest account or transfer code of the client space.</summary>
    public const ushort ClientCodeMax = 999;

    /// <summary>The high bit of an id's upper half: set for every id of the reserved (system) space.</summary>
    public const ulong ReservedBit = 0x8000_0000_0000_0000;

    /// <summary>The largest qualifier (48 bits).</summary>
    public const ulong QualifierMax = 0x0000_FFFF_FFFF_FFFF;

    /// <summary>Every declared account code.</summary>
    public static IReadOnlyList<AccountKind> Accounts { get; } =
    [
        new(AccountCode.Treasury, AccountOwnership.System, AccountFlags.None, "the stablecoin's issuance side (operator funding)"),
        new(AccountCode.PlatformFees, AccountOwnership.System, AccountFlags.None, "the platform's fees"),
        new(AccountCode.InferenceEscrow, AccountOwnership.System, AccountFlags.None, "inference holds in flight"),
        new(AccountCode.ExchangeEscrow, AccountOwnership.System, AccountFlags.None, "holds of open buy orders"),
        new(AccountCode.Utility, AccountOwnership.System, AccountFlags.None, "sites' power bills"),
        new(AccountCode.Mining, AccountOwnership.System, AccountFlags.None, "sites' mining revenue"),
        new(AccountCode.ChainBridge, AccountOwnership.System, AccountFlags.None, "stablecoin on the chain"),
        new(AccountCode.ShareIssuance, AccountOwnership.System, AccountFlags.None, "the issuance side of a node's shares"),
        new(AccountCode.ShareEscrow, AccountOwnership.System, AccountFlags.None, "shares offered by open sell orders"),
        new(AccountCode.LendingPool, AccountOwnership.System, AccountFlags.None, "the pool loans against pledges are paid from (its balance: what is lent out less what was funded)"),
        new(AccountCode.X402Receivable, AccountOwnership.System, AccountFlags.None, "x402 authorizations not yet settled on chain"),
        new(AccountCode.X402Losses, AccountOwnership.System, AccountFlags.None, "x402 authorizations served but never settled"),
        new(AccountCode.ChainCustody, AccountOwnership.System, AccountFlags.None, "stablecoin in the server's chain account"),
        new(AccountCode.VaultCustody, AccountOwnership.System, AccountFlags.None, "the stablecoin the chain vault holds (debit balance)"),
        new(AccountCode.ChainWithdrawalsInFlight, AccountOwnership.System, AccountFlags.None, "withdrawals to the chain held until paid"),
        new(AccountCode.ChainSuspense, AccountOwnership.System, AccountFlags.None, "chain deposits naming no account they may credit"),
        new(AccountCode.BitcoinConversion, AccountOwnership.System, AccountFlags.None, "the satoshis sites sold to the conversion desk"),
        new(AccountCode.BitcoinConversionUsd, AccountOwnership.System, AccountFlags.None, "what the conversion desk paid sites for their satoshis"),
        new(AccountCode.SiteAiRevenue, AccountOwnership.System, AccountFlags.None, "AI revenue recognized by sites (earned by their nodes)"),
        new(AccountCode.SiteEquipmentWear, AccountOwnership.System, AccountFlags.None, "miner restart wear accrued by sites"),
        new(AccountCode.CustomerBalance, AccountOwnership.Principal, AccountFlags.DebitsMustNotExceedCredits, "a customer's balance"),
        new(AccountCode.ExchangeTrading, AccountOwnership.Principal, AccountFlags.DebitsMustNotExceedCredits, "a principal's funds on the exchange"),
        new(AccountCode.ProviderRevenue, AccountOwnership.Principal, AccountFlags.DebitsMustNotExceedCredits, "a provider's revenue"),
        new(AccountCode.ProviderCollateral, AccountOwnership.Principal, AccountFlags.DebitsMustNotExceedCredits, "a provider's collateral"),
        new(AccountCode.NodeRevenue, AccountOwnership.Principal, AccountFlags.DebitsMustNotExceedCredits, "a node's inference revenue"),
        new(AccountCode.ShareHolding, AccountOwnership.Principal, AccountFlags.DebitsMustNotExceedCredits, "a holder's shares of one node"),
        new(AccountCode.SharePledge, AccountOwnership.Principal, AccountFlags.DebitsMustNotExceedCredits, "a holder's pledged shares of one node"),
        new(AccountCode.LeaseEscrow, AccountOwnership.Object, AccountFlags.DebitsMustNotExceedCredits, "one lease's escrow"),
        new(AccountCode.SharePool, AccountOwnership.Object, AccountFlags.DebitsMustNotExceedCredits, "one node's share pool"),
        new(AccountCode.X402Payer, AccountOwnership.Object, AccountFlags.DebitsMustNotExceedCredits, "an x402 payer's balance (keyed by its address)"),
        new(AccountCode.SiteOperating, AccountOwnership.Object, AccountFlags.DebitsMustNotExceedCredits, "a hybrid site's operating account (its revenue)"),
        new(AccountCode.SiteBitcoin, AccountOwnership.Object, AccountFlags.DebitsMustNotExceedCredits, "a hybrid site's bitcoin"),
        new(AccountCode.SiteExpenses, AccountOwnership.Object, AccountFlags.CreditsMustNotExceedDebits, "a hybrid site's accrued costs (debit-normal)"),
    ];

    private static readonly Dictionary<AccountCode, AccountKind> ByCode = Accounts.ToDictionary(a => a.Code);

    /// <summary>The declaration of <paramref name="code"/>.</summary>
    public static AccountKind Kind(AccountCode code) =>
        ByCode.TryGetValue(code, out AccountKind? kind) ? kind : throw new ArgumentOutOfRangeException(nameof(code), code, "not in the chart of accounts");

    /// <summary>True for an id of the reserved (system) space: the raw ledger API refuses it from clients.</summary>
    public static bool IsReserved(UInt128 id) => ((ulong)(id >> 64) & ReservedBit) != 0;

    /// <summary>True for an account or transfer code the chart reserves (above the client space).</summary>
    public static bool IsReservedCode(ushort code) => code > ClientCodeMax;

    /// <summary>The system account of <paramref name="code"/> in <paramref name="asset"/>.</summary>
    public static UInt128 SystemAccount(AccountCode code, Asset asset)
    {
        Require(code, AccountOwnership.System);
        return Compose((ushort)code, asset.Code, 1);
    }

    /// <summary>The account of <paramref name="code"/> that <paramref name="principal"/> owns.</summary>
    public static UInt128 PrincipalAccount(AccountCode code, ulong principal)
    {
        Require(code, AccountOwnership.Principal);
        if (principal == 0) throw new ArgumentOutOfRangeException(nameof(principal), "principal ids start at 1");
        return Compose((ushort)code, 0, principal);
    }

    /// <summary>
    /// The account of <paramref name="code"/> that <paramref name="principal"/> owns for <paramref name="qualifier"/>
    /// (48 bits): one per node for <see cref="AccountCode.ShareHolding"/> and <see cref="AccountCode.SharePledge"/>.
    /// </summary>
    public static UInt128 PrincipalAccount(AccountCode code, ulong principal, ulong qualifier)
    {
        Require(code, AccountOwnership.Principal);
        if (principal == 0) throw new ArgumentOutOfRangeException(nameof(principal), "principal ids start at 1");
        return Compose((ushort)code, qualifier, principal);
    }

    /// <summary>A system account of <paramref name="code"/> in <paramref name="asset"/> (any asset, node shares included).</summary>
    public static UInt128 SystemAccount(AccountCode code, uint asset)
    {
        Require(code, AccountOwnership.System);
        return Compose((ushort)code, asset, 1);
    }

    /// <summary>A holder's shares of <paramref name="node"/>.</summary>
    public static UInt128 ShareHolding(ulong holder, ulong node) => PrincipalAccount(AccountCode.ShareHolding, holder, node);

    /// <summary>A holder's pledged shares of <paramref name="node"/>.</summary>
    public static UInt128 SharePledge(ulong holder, ulong node) => PrincipalAccount(AccountCode.SharePledge, holder, node);

    /// <summary>The share pool of <paramref name="node"/>: its holders' revenue until they claim it (stablecoin).</summary>
    public static UInt128 SharePool(ulong node) => ObjectAccount(AccountCode.SharePool, 1, node);

    /// <summary>The account of <paramref name="code"/> for object <paramref name="objectId"/> within <paramref name="qualifier"/> (48 bits).</summary>
    public static UInt128 ObjectAccount(AccountCode code, ulong qualifier, ulong objectId)
    {
        Require(code, AccountOwnership.Object);
        return Compose((ushort)code, qualifier, objectId);
    }

    /// <summary>A transfer id in <paramref name="space"/>: <paramref name="qualifier"/> (48 bits) and <paramref name="number"/>.</summary>
    public static UInt128 TransferId(TransferSpace space, ulong qualifier, ulong number) => Compose((ushort)space, qualifier, number);

    /// <summary>A new account of <paramref name="code"/> with the chart's flags, its owner in <c>user_data_64</c> (0 for the system).</summary>
    public static Account NewAccount(AccountCode code, UInt128 id, Asset asset)
    {
        AccountKind kind = Kind(code);
        if (!TryDecode(id, out ushort idCode, out _, out ulong number) || idCode != (ushort)code)
            throw new ArgumentException($"Account id {id} is not an id of {code}.", nameof(id));
        return new Account
        {
            Id = id, Asset = asset.Code, Code = (ushort)code, Flags = kind.Flags,
            UserData64 = kind.Ownership == AccountOwnership.Principal ? number : 0,
        };
    }

    /// <summary>Splits a reserved id into its code (or transfer space), qualifier and number; false for a client-space id.</summary>
    public static bool TryDecode(UInt128 id, out ushort code, out ulong qualifier, out ulong number)
    {
        ulong hi = (ulong)(id >> 64);
        number = (ulong)id;
        code = (ushort)((hi >> 48) & 0x7FFF);
        qualifier = hi & QualifierMax;
        return (hi & ReservedBit) != 0;
    }

    /// <summary>
    /// Who owns an account: <see cref="AccountOwnership.Principal"/> with the principal's id, or the system, an object
    /// (the system) or the operators (a client-space account).
    /// </summary>
    public static (AccountOwnership Ownership, ulong Principal) OwnerOf(UInt128 accountId)
    {
        if (!TryDecode(accountId, out ushort code, out _, out ulong number)) return (AccountOwnership.Operators, 0);
        if (!ByCode.TryGetValue((AccountCode)code, out AccountKind? kind)) return (AccountOwnership.System, 0);
        return kind.Ownership == AccountOwnership.Principal ? (AccountOwnership.Principal, number) : (kind.Ownership, 0);
    }

    private static UInt128 Compose(ushort code, ulong qualifier, ulong number)
    {
        if (code == 0 || code > 0x7FFF) throw new ArgumentOutOfRangeException(nameof(code), code, "codes are 1 to 32767");
        if (qualifier > QualifierMax) throw new ArgumentOutOfRangeException(nameof(qualifier), qualifier, "qualifiers are 48 bits");
        return new UInt128(ReservedBit | ((ulong)code << 48) | qualifier, number);
    }

    private static void Require(AccountCode code, AccountOwnership ownership)
    {
        if (Kind(code).Ownership != ownership) throw new ArgumentException($"{code} is not a {ownership.ToString().ToLowerInvariant()} account.", nameof(code));
    }
}
