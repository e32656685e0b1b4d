using System.Security.Cryptography;
using System.Text;
using ComputeGrid.Core;
using ComputeGrid.Ledger;

namespace ComputeGrid.Energy.Bookkeeping;

/// <summary>What became of one interval's postings.</summary>
public enum SitePostingResult
{
    /// <summary>The interval's transfers were committed, together.</summary>
    Posted = 0,
    /// <summary>The interval was already booked with the same amounts (a replay or a restart): nothing was applied.</summary>
    AlreadyPosted = 1,
    /// <summary>The interval was already booked with different amounts: nothing was applied, the first booking stands.</summary>
    ExistsWithDifferentAmounts = 2,
}

/// <summary>
/// A hybrid site's economics in the ledger: each decided interval is one linked chain of transfers under the chart of
/// accounts, with ids derived from (site, interval start, leg), so a replay or a restart posts nothing twice.
/// Used by the backtest (a <see cref="LedgerEngine"/> per run, in memory) and by the live site (the server's ledger).
/// <list type="bullet">
/// <item>energy bill: site expenses → <see cref="AccountCode.Utility"/> (utility → site operating when the price was negative);</item>
/// <item>4CP peak charge: site expenses → <see cref="AccountCode.Utility"/>;</item>
/// <item>mining: <see cref="AccountCode.Mining"/> (BTC) → site bitcoin, satoshis; then site bitcoin →
/// <see cref="AccountCode.BitcoinConversion"/> (the satoshis sold) and <see cref="AccountCode.BitcoinConversionUsd"/> →
/// site operating (their price, <see cref="BitcoinConversion"/>);</item>
/// <item>AI revenue: <see cref="AccountCode.SiteAiRevenue"/> → site operating; restart wear: site expenses →
/// <see cref="AccountCode.SiteEquipmentWear"/>.</item>
/// </list>
/// Revenue credits the site's operating account and costs debit its expenses account (debit-normal), so no leg depends on
/// the cash the site holds: an interval at a loss books as any other, and the chain's legs never fail for a balance.
/// Every transfer's <c>user_data_64</c> is its interval's start (Unix seconds): <see cref="ProfitAndLossAsync"/> reads
/// the site's accounts' histories and sums them by code over a range.
/// </summary>
public sealed class SiteLedger
{
    // The legs of an interval's chain: the low 8 bits of its transfers' qualifier.
    private const byte LegEnergy = 1, LegPeak = 2, LegMining = 3, LegSale = 4, LegProceeds = 5, LegAi = 6, LegWear = 7;

    private readonly LedgerEngine _ledger;

    /// <summary>A site's books in <paramref name="ledger"/> (call <see cref="OpenAsync"/> before posting).</summary>
    public SiteLedger(LedgerEngine ledger, string site)
    {
        ArgumentNullException.ThrowIfNull(ledger);
        ArgumentException.ThrowIfNullOrWhiteSpace(site);
        _ledger = ledger;
        Site = site;
        SiteNumber = SiteId(site);
        OperatingAccount = ChartOfAccounts.ObjectAccount(AccountCode.SiteOperating, 1, SiteNumber);
        BitcoinAccount = ChartOfAccounts.ObjectAccount(AccountCode.SiteBitcoin, 1, SiteNumber);
        ExpensesAccount = ChartOfAccounts.ObjectAccount(AccountCode.SiteExpenses, 1, SiteNumber);
    }

    /// <summary>The site's name.</summary>
    public string Site { get; }

    /// <summary>The site's id (<see cref="SiteId"/>): the number of its accounts.</summary>
    public ulong SiteNumber { get; }

    /// <summary>The site's operating account (stablecoin).</summary>
    public UInt128 OperatingAccount { get; }

    /// <summary>The site's bitcoin account (satoshis).</summary>
    public UInt128 BitcoinAccount { get; }

    /// <summary>The site's accrued costs (stablecoin, debit-normal).</summary>
    public UInt128 ExpensesAccount { get; }

    /// <summary>
    /// A site's id: the first 8 bytes of SHA-256 of its name (UTF-8), never 0. From the name alone, so the same site has
    /// the same accounts and transfer ids in every run and after every restart.
    /// </summary>
    public static ulong SiteId(string site)
    {
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(Encoding.UTF8.GetBytes(site), hash);
        ulong id = BitConverter.ToUInt64(hash);
        return id == 0 ? 1 : id;
    }

    /// <summary>Creates the site's accounts and the system accounts its transfers use (idempotent: existing ones are kept).</summary>
    public async Task OpenAsync(CancellationToken ct = default)
    {
        Account[] accounts =
        [
            ChartOfAccounts.NewAccount(AccountCode.SiteOperating, OperatingAccount, Asset.Usd),
            ChartOfAccounts.NewAccount(AccountCode.SiteBitcoin, BitcoinAccount, Asset.Btc),
            ChartOfAccounts.NewAccount(AccountCode.SiteExpenses, ExpensesAccount, Asset.Usd),
            System(AccountCode.Utility, Asset.Usd),
            System(AccountCode.Mining, Asset.Btc),
            System(AccountCode.BitcoinConversion, Asset.Btc),
            System(AccountCode.BitcoinConversionUsd, Asset.Usd),
            System(AccountCode.SiteAiRevenue, Asset.Usd),
            System(AccountCode.SiteEquipmentWear, Asset.Usd),
        ];
        CreateAccountResult[] results = await _ledger.CreateAccountsAsync(accounts, ct).ConfigureAwait(false);
        for (int i = 0; i < results.Length; i++)
            if (results[i] is not (CreateAccountResult.Ok or CreateAccountResult.Exists))
                throw new InvalidOperationException($"Site '{Site}': creating account {accounts[i].Id} answered {results[i]}.");

        static Account System(AccountCode code, Asset asset) => ChartOfAccounts.NewAccount(code, ChartOfAccounts.SystemAccount(code, asset), asset);
    }

    /// <summary>The transfers of one interval, in chain order (legs with a zero amount are left out; all but the last linked).</summary>
    public Transfer[] Transfers(in SiteInterval interval)
    {
        if (interval.StartUtc.Kind != DateTimeKind.Utc) throw new ArgumentException("An interval's start must be UTC.", nameof(interval));
        if (interval.MiningRevenueMicroUsd < 0 || interval.PeakChargeMicroUsd < 0 || interval.RestartWearMicroUsd < 0 || interval.AiRevenueMicroUsd < 0)
            throw new ArgumentOutOfRangeException(nameof(interval), interval, "mining revenue, AI revenue, peak charge and wear are never negative");
        ulong start = checked((ulong)new DateTimeOffset(interval.StartUtc).ToUnixTimeSeconds());
        var legs = new List<Transfer>(7);
        UInt128 utility = ChartOfAccounts.SystemAccount(AccountCode.Utility, Asset.Usd);

        // A negative energy price makes the bill a payment from the utility: the same leg, the other way.
        if (interval.EnergyCostMicroUsd > 0) Add(LegEnergy, ExpensesAccount, utility, interval.EnergyCostMicroUsd, Asset.Usd, TransferCode.SiteEnergyBill);
        else if (interval.EnergyCostMicroUsd < 0) Add(LegEnergy, utility, OperatingAccount, checked(-interval.EnergyCostMicroUsd), Asset.Usd, TransferCode.SiteEnergyBill);
        Add(LegPeak, ExpensesAccount, utility, interval.PeakChargeMicroUsd, Asset.Usd, TransferCode.SitePeakCharge);
        (long sats, long remainder) = BitcoinConversion.ToSatoshis(interval.MiningRevenueMicroUsd, interval.BtcPriceMicroUsd);
        Add(LegMining, ChartOfAccounts.SystemAccount(AccountCode.Mining, Asset.Btc), BitcoinAccount, sats, Asset.Btc, TransferCode.SiteMiningRevenue);
        Add(LegSale, BitcoinAccount, ChartOfAccounts.SystemAccount(AccountCode.BitcoinConversion, Asset.Btc), sats, Asset.Btc, TransferCode.SiteBitcoinSale);
        Add(LegProceeds, ChartOfAccounts.SystemAccount(AccountCode.BitcoinConversionUsd, Asset.Usd), OperatingAccount, interval.MiningRevenueMicroUsd, Asset.Usd,
            TransferCode.SiteBitcoinProceeds, new UInt128((ulong)interval.BtcPriceMicroUsd, (ulong)remainder));
        Add(LegAi, ChartOfAccounts.SystemAccount(AccountCode.SiteAiRevenue, Asset.Usd), OperatingAccount, interval.AiRevenueMicroUsd, Asset.Usd, TransferCode.SiteAiRevenue);
        Add(LegWear, ExpensesAccount, ChartOfAccounts.SystemAccount(AccountCode.SiteEquipmentWear, Asset.Usd), interval.RestartWearMicroUsd, Asset.Usd, TransferCode.SiteRestartWear);

        for (int i = 0; i < legs.Count - 1; i++)
        {
            Transfer t = legs[i];
            t.Flags |= TransferFlags.Linked;
            legs[i] = t;
        }
        return [.. legs];

        void Add(byte leg, UInt128 debit, UInt128 credit, long amount, Asset asset, TransferCode code, UInt128 userData128 = default)
        {
            if (amount == 0) return; // the ledger refuses zero amounts; an absent leg reads as zero
            legs.Add(new Transfer
            {
                Id = TransferId(start, leg),
                DebitAccountId = debit,
                CreditAccountId = credit,
                Amount = amount,
                Asset = asset.Code,
                Code = (ushort)code,
                UserData64 = start,
                UserData128 = userData128,
            });
        }
    }

    /// <summary>
    /// Books one interval as one linked chain. A replay with the same amounts answers
    /// <see cref="SitePostingResult.AlreadyPosted"/>, with other amounts <see cref="SitePostingResult.ExistsWithDifferentAmounts"/>;
    /// neither applies anything.
    /// </summary>
    /// <exception cref="InvalidOperationException">The ledger refused the chain for another reason (accounts not opened: a bug).</exception>
    public async Task<SitePostingResult> PostAsync(SiteInterval interval, CancellationToken ct = default)
    {
        Transfer[] legs = Transfers(interval);
        if (legs.Length == 0) return SitePostingResult.Posted;
        CreateTransferResult[] results = await _ledger.CreateTransfersAsync(legs, ct).ConfigureAwait(false);
        // A chain fails as a whole at its first refused event; the others answer LinkedEventFailed.
        CreateTransferResult first = CreateTransferResult.Ok;
        foreach (CreateTransferResult r in results)
            if (r is not (CreateTransferResult.Ok or CreateTransferResult.LinkedEventFailed)) { first = r; break; }
        if (first == CreateTransferResult.Ok && Array.TrueForAll(results, r => r == CreateTransferResult.Ok)) return SitePostingResult.Posted;
        if (first == CreateTransferResult.Exists)
        {
            // The first leg existed; the chain was committed whole before. It is this one when every leg of the interval,
            // present or absent (a zero amount), was booked as now.
            ulong start = legs[0].UserData64;
            var ids = new UInt128[LegWear];
            for (byte leg = 1; leg <= LegWear; leg++) ids[leg - 1] = TransferId(start, leg);
            (Transfer Transfer, PendingStatus Status)[] stored = await _ledger.LookupTransfersAsync(ids, ct).ConfigureAwait(false);
            bool same = stored.Length == legs.Length;
            foreach ((Transfer s, _) in stored)
            {
                int i = Array.FindIndex(legs, l => l.Id == s.Id);
                same &= i >= 0 && s.Amount == legs[i].Amount && s.DebitAccountId == legs[i].DebitAccountId
                    && s.CreditAccountId == legs[i].CreditAccountId && s.UserData128 == legs[i].UserData128;
            }
            return same ? SitePostingResult.AlreadyPosted : SitePostingResult.ExistsWithDifferentAmounts;
        }
        if (first is >= CreateTransferResult.ExistsWithDifferentFlags and < CreateTransferResult.Exists) return SitePostingResult.ExistsWithDifferentAmounts;
        throw new InvalidOperationException($"Site '{Site}': the ledger refused interval {interval.StartUtc:O}: {first}.");
    }

    /// <summary>
    /// The site's P&amp;L over the intervals starting in [<paramref name="fromUtc"/>, <paramref name="toUtc"/>), read back from
    /// the ledger: every transfer of the site's operating, expenses and bitcoin accounts whose interval falls in the range, summed
    /// by code with its direction. O(the accounts' histories): a page of <see cref="LedgerLimits.HistoryLimitMax"/> at a time.
    /// </summary>
    public async Task<SiteProfitAndLoss> ProfitAndLossAsync(DateTime fromUtc, DateTime toUtc, CancellationToken ct = default)
    {
        if (fromUtc.Kind != DateTimeKind.Utc || toUtc.Kind != DateTimeKind.Utc) throw new ArgumentException("The range must be UTC.");
        if (toUtc < fromUtc) throw new ArgumentException("The range ends before it starts.", nameof(toUtc));
        ulong from = (ulong)Math.Max(0, new DateTimeOffset(fromUtc).ToUnixTimeSeconds()), to = (ulong)Math.Max(0, new DateTimeOffset(toUtc).ToUnixTimeSeconds());
        long ai = 0, mining = 0, energy = 0, peak = 0, wear = 0, sats = 0;
        var intervals = new HashSet<ulong>();
        // Revenue (and the utility's payments at negative prices) credited the operating account: + to the site.
        await foreach (Transfer t in HistoryAsync(OperatingAccount, ct).ConfigureAwait(false))
        {
            if (t.UserData64 < from || t.UserData64 >= to || t.CreditAccountId != OperatingAccount) continue;
            switch ((TransferCode)t.Code)
            {
                case TransferCode.SiteAiRevenue: ai = checked(ai + t.Amount); intervals.Add(t.UserData64); break;
                case TransferCode.SiteBitcoinProceeds: mining = checked(mining + t.Amount); intervals.Add(t.UserData64); break;
                case TransferCode.SiteEnergyBill: energy = checked(energy - t.Amount); intervals.Add(t.UserData64); break;
            }
        }
        // Costs debited the expenses account.
        await foreach (Transfer t in HistoryAsync(ExpensesAccount, ct).ConfigureAwait(false))
        {
            if (t.UserData64 < from || t.UserData64 >= to || t.DebitAccountId != ExpensesAccount) continue;
            switch ((TransferCode)t.Code)
            {
                case TransferCode.SiteEnergyBill: energy = checked(energy + t.Amount); intervals.Add(t.UserData64); break;
                case TransferCode.SitePeakCharge: peak = checked(peak + t.Amount); break;
                case TransferCode.SiteRestartWear: wear = checked(wear + t.Amount); break;
            }
        }
        await foreach (Transfer t in HistoryAsync(BitcoinAccount, ct).ConfigureAwait(false))
            if (t.UserData64 >= from && t.UserData64 < to && (TransferCode)t.Code == TransferCode.SiteMiningRevenue)
                sats = checked(sats + t.Amount);
        return new SiteProfitAndLoss
        {
            Site = Site, FromUtc = fromUtc, ToUtc = toUtc, Intervals = intervals.Count,
            AiRevenueMicroUsd = ai, MiningRevenueMicroUsd = mining, MiningRevenueSatoshis = sats,
            EnergyCostMicroUsd = energy, PeakChargeMicroUsd = peak, RestartWearMicroUsd = wear,
        };
    }

    /// <summary>Every transfer of <paramref name="account"/>, newest first (none when it does not exist).</summary>
    public async IAsyncEnumerable<Transfer> HistoryAsync(UInt128 account, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken ct = default)
    {
        long cursor = long.MaxValue;
        while (true)
        {
            Transfer[]? page = await _ledger.GetAccountTransfersAsync(account, cursor, LedgerLimits.HistoryLimitMax, ct).ConfigureAwait(false);
            if (page is null) yield break;
            foreach (Transfer t in page) yield return t;
            if (page.Length < LedgerLimits.HistoryLimitMax) yield break;
            cursor = page[^1].Timestamp;
        }
    }

    /// <summary>The id of one leg of one interval: space Energy, qualifier (site id's low 40 bits · leg), number the interval's start.</summary>
    public UInt128 TransferId(ulong intervalStartUnixSeconds, byte leg) =>
        ChartOfAccounts.TransferId(TransferSpace.Energy, ((SiteNumber & 0xFF_FFFF_FFFF) << 8) | leg, intervalStartUnixSeconds);
}
