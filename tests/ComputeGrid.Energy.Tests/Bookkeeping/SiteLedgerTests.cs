using System.Text.Json.Nodes;
using ComputeGrid.Core;
using CsCheck;
using ComputeGrid.Energy.Backtesting;
using ComputeGrid.Energy.Bookkeeping;
using ComputeGrid.Energy.Dispatch;
using ComputeGrid.Energy.Series;
using ComputeGrid.Energy.Sites;
using ComputeGrid.Energy.Tests.Dispatch;
using ComputeGrid.Ledger;

namespace ComputeGrid.Energy.Tests.Bookkeeping;

/// <summary>
/// The site's economics booked in the real ledger (an in-memory <see cref="LedgerEngine"/> per run, or one in a temporary
/// folder across a restart) and read back as a P&amp;L: equal to the backtest's accounting to the micro-dollar.
/// </summary>
public class SiteLedgerTests
{
    // The golden week (GoldenWeekTests): 23–30 August 2021, ERCOT West, holding August's 4CP peak.
    private static readonly DateTime From = new(2021, 8, 23, 5, 0, 0, DateTimeKind.Utc);
    private static readonly DateTime To = From.AddDays(7);
    private const string GoldenFile = "ercot-west-reference-2021-08-23.json";

    private static readonly Lazy<SiteBacktestResult> Golden = new(() =>
        SiteBacktest.Run(ReferenceSite.Week(From), new BacktestOptions { Optimum = false, DayAhead = false }, history: ReferenceSite.Whole()));

    private static readonly Lazy<BitcoinSeries> Btc = new(() => BitcoinSeries.Load(EnergyData.BitcoinDaily));

    private static LedgerEngine InMemory() => LedgerEngine.Open(new LedgerEngineOptions { PulseInterval = TimeSpan.FromDays(1) });

    [Fact]
    public async Task Site_PnL_from_the_ledger_equals_the_backtest_accounting_over_the_golden_week()
    {
        SiteBacktestResult result = Golden.Value;
        SiteProblem p = result.Site.Problem;
        JsonObject golden = JsonNode.Parse(File.ReadAllText(Path.Combine(ReferenceSite.RepoRoot(), "tests", "ComputeGrid.Energy.Tests", "Golden", GoldenFile)))!.AsObject();
        foreach (string policy in new[] { "controller", "myopic", "always-on", "threshold" })
        {
            PolicyRun run = result.Run(policy);
            await using LedgerEngine ledger = InMemory();
            var books = new SiteLedger(ledger, p.Name);
            await books.OpenAsync();
            SiteInterval[] intervals = SiteInterval.FromRun(p, run, Btc.Value);
            Assert.Equal(672, intervals.Length);
            foreach (SiteInterval interval in intervals)
                Assert.Equal(SitePostingResult.Posted, await books.PostAsync(interval));

            SiteProfitAndLoss pnl = await books.ProfitAndLossAsync(From, To);
            SiteValue v = run.Value;
            Assert.Equal(v.AiRevenueMicroUsd, pnl.AiRevenueMicroUsd);
            Assert.Equal(v.MiningRevenueMicroUsd, pnl.MiningRevenueMicroUsd);
            Assert.Equal(v.EnergyCostMicroUsd, pnl.EnergyCostMicroUsd);
            Assert.Equal(v.PeakChargeMicroUsd, pnl.PeakChargeMicroUsd);
            Assert.Equal(v.RestartWearMicroUsd, pnl.RestartWearMicroUsd);
            Assert.Equal(v.ValueMicroUsd, pnl.ValueMicroUsd);
            Assert.Equal(672, pnl.Intervals);
            // And the checked-in golden figures, so the ledger is held to the reviewed numbers, not only to today's run.
            JsonObject g = golden["policies"]![policy]!.AsObject();
            Assert.Equal(g["value_micro_usd"]!.GetValue<long>(), pnl.ValueMicroUsd);
            Assert.Equal(g["mining_revenue_micro_usd"]!.GetValue<long>(), pnl.MiningRevenueMicroUsd);
            Assert.Equal(g["peak_charge_micro_usd"]!.GetValue<long>(), pnl.PeakChargeMicroUsd);

            // The system accounts mirror the site: the utility got the bills and peak charges, the desk paid the mining.
            Account[] system = await ledger.LookupAccountsAsync([
                ChartOfAccounts.SystemAccount(AccountCode.Utility, Asset.Usd), ChartOfAccounts.SystemAccount(AccountCode.BitcoinConversionUsd, Asset.Usd),
                ChartOfAccounts.SystemAccount(AccountCode.Mining, Asset.Btc), ChartOfAccounts.SystemAccount(AccountCode.BitcoinConversion, Asset.Btc), books.BitcoinAccount]);
            Assert.Equal(v.EnergyCostMicroUsd + v.PeakChargeMicroUsd, system[0].CreditsPosted - system[0].DebitsPosted);
            Assert.Equal(v.MiningRevenueMicroUsd, system[1].DebitsPosted);
            Assert.Equal(pnl.MiningRevenueSatoshis, system[2].DebitsPosted);
            Assert.Equal(pnl.MiningRevenueSatoshis, system[3].CreditsPosted);
            Assert.Equal(0, system[4].CreditBalance); // every satoshi earned was sold the same interval
            await ledger.ReadAsync(sm => { sm.AssertInvariants(); return 0; });

            // Each interval's satoshis, its price and the remainder kept with the sale make exactly the micro-USD it paid.
            await AssertConversionsExact(ledger, books, intervals);
        }
        // The controller's week carries August's 4CP peak: a non-zero peak charge line was booked.
        Assert.True(result.Controller.Value.PeakChargeMicroUsd > 0);
    }

    private static async Task AssertConversionsExact(LedgerEngine ledger, SiteLedger books, SiteInterval[] intervals)
    {
        int converted = 0;
        foreach (SiteInterval interval in intervals)
        {
            if (interval.MiningRevenueMicroUsd == 0) continue;
            ulong start = (ulong)new DateTimeOffset(interval.StartUtc).ToUnixTimeSeconds();
            // Missing ids are left out of a lookup: the mining leg is absent when the revenue is below one satoshi.
            var found = await ledger.LookupTransfersAsync([books.TransferId(start, 3)]);
            long sats = found.Length == 0 ? 0 : found[0].Transfer.Amount;
            Transfer proceeds = (await ledger.LookupTransfersAsync([books.TransferId(start, 5)])).Single().Transfer;
            Assert.Equal(interval.MiningRevenueMicroUsd, proceeds.Amount);
            long price = (long)(ulong)(proceeds.UserData128 >> 64), remainder = (long)(ulong)proceeds.UserData128;
            Assert.Equal(interval.BtcPriceMicroUsd, price);
            Assert.InRange(remainder, 0, price - 1);
            Assert.Equal(proceeds.Amount, BitcoinConversion.ToMicroUsd(sats, price, remainder));
            converted++;
        }
        Assert.True(converted > 0);
    }

    [Fact]
    public async Task Posting_the_week_again_after_a_restart_books_nothing_twice()
    {
        SiteBacktestResult result = Golden.Value;
        SiteProblem p = result.Site.Problem;
        SiteInterval[] intervals = SiteInterval.FromRun(p, result.Controller, Btc.Value);
        string dir = Path.Combine(Path.GetTempPath(), "cg-siteledger-" + Guid.NewGuid().ToString("N"));
        try
        {
            await using (LedgerEngine first = LedgerEngine.Open(new LedgerEngineOptions { DataDirectory = dir, PulseInterval = TimeSpan.FromDays(1) }))
            {
                var books = new SiteLedger(first, p.Name);
                await books.OpenAsync();
                for (int t = 0; t < 300; t++) Assert.Equal(SitePostingResult.Posted, await books.PostAsync(intervals[t]));
            }
            await using LedgerEngine second = LedgerEngine.Open(new LedgerEngineOptions { DataDirectory = dir, PulseInterval = TimeSpan.FromDays(1) });
            var again = new SiteLedger(second, p.Name);
            await again.OpenAsync(); // the accounts exist: kept
            int transfersBefore = second.Stats.Transfers;
            for (int t = 0; t < 300; t++) Assert.Equal(SitePostingResult.AlreadyPosted, await again.PostAsync(intervals[t]));
            Assert.Equal(transfersBefore, second.Stats.Transfers);
            for (int t = 300; t < intervals.Length; t++) Assert.Equal(SitePostingResult.Posted, await again.PostAsync(intervals[t]));

            SiteProfitAndLoss pnl = await again.ProfitAndLossAsync(From, To);
            Assert.Equal(result.Controller.Value.ValueMicroUsd, pnl.ValueMicroUsd);
            Assert.Equal(672, pnl.Intervals);

            // The same interval with another amount is refused as a whole: the first booking stands.
            SiteInterval changed = intervals[10] with { EnergyCostMicroUsd = intervals[10].EnergyCostMicroUsd + 1 };
            Assert.Equal(SitePostingResult.ExistsWithDifferentAmounts, await again.PostAsync(changed));
            // So is one that leaves out a leg that was booked (its wear now zero, every other leg the same).
            int worn = Array.FindIndex(intervals, i => i.RestartWearMicroUsd > 0);
            Assert.True(worn >= 0);
            Assert.Equal(SitePostingResult.ExistsWithDifferentAmounts, await again.PostAsync(intervals[worn] with { RestartWearMicroUsd = 0 }));
            Assert.Equal(pnl, await again.ProfitAndLossAsync(From, To));
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public async Task A_range_reads_only_the_intervals_starting_in_it()
    {
        SiteBacktestResult result = Golden.Value;
        SiteProblem p = result.Site.Problem;
        SiteInterval[] intervals = SiteInterval.FromRun(p, result.Controller, Btc.Value);
        await using LedgerEngine ledger = InMemory();
        var books = new SiteLedger(ledger, p.Name);
        await books.OpenAsync();
        foreach (SiteInterval interval in intervals) await books.PostAsync(interval);

        // The second day: 96 intervals of 15 minutes, the 4CP peak hour of 24 August among them.
        DateTime dayFrom = From.AddDays(1), dayTo = From.AddDays(2);
        SiteInterval[] day = intervals.Where(i => i.StartUtc >= dayFrom && i.StartUtc < dayTo).ToArray();
        SiteProfitAndLoss pnl = await books.ProfitAndLossAsync(dayFrom, dayTo);
        Assert.Equal(96, pnl.Intervals);
        Assert.Equal(day.Sum(i => i.ValueMicroUsd), pnl.ValueMicroUsd);
        Assert.Equal(day.Sum(i => i.PeakChargeMicroUsd), pnl.PeakChargeMicroUsd);
        Assert.True(pnl.PeakChargeMicroUsd > 0);
        // Another site's books in the same ledger read nothing of this one's.
        var other = new SiteLedger(ledger, p.Name + "-other");
        await other.OpenAsync();
        Assert.Equal(0, (await other.ProfitAndLossAsync(From, To)).Intervals);
    }

    [Fact]
    public async Task A_negative_energy_price_is_booked_as_the_utility_paying_the_site()
    {
        await using LedgerEngine ledger = InMemory();
        var books = new SiteLedger(ledger, "negative-price-site");
        await books.OpenAsync();
        DateTime t0 = new(2021, 3, 1, 6, 0, 0, DateTimeKind.Utc);
        long price = BitcoinConversion.PriceMicroUsd(49_612.34);
        Assert.Equal(SitePostingResult.Posted, await books.PostAsync(new SiteInterval(t0, 1_000_000, 2_500_000, -730_000, 0, 0, price)));
        Assert.Equal(SitePostingResult.Posted, await books.PostAsync(new SiteInterval(t0.AddMinutes(15), 1_000_000, 0, 410_000, 125_000, 60_000, price)));
        SiteProfitAndLoss pnl = await books.ProfitAndLossAsync(t0, t0.AddHours(1));
        Assert.Equal(-730_000 + 410_000, pnl.EnergyCostMicroUsd);
        Assert.Equal(125_000, pnl.PeakChargeMicroUsd);
        Assert.Equal(60_000, pnl.RestartWearMicroUsd);
        Assert.Equal(2_500_000, pnl.MiningRevenueMicroUsd);
        Assert.Equal(2_000_000 + 2_500_000 + 320_000 - 125_000 - 60_000, pnl.ValueMicroUsd);
        // USD 2.50 at USD 49,612.34 a bitcoin: ⌊2.5e6 × 1e8 / 49,612,340,000⌋ = 5,039 sat.
        Assert.Equal(5_039, pnl.MiningRevenueSatoshis);
        Account utility = (await ledger.LookupAccountsAsync([ChartOfAccounts.SystemAccount(AccountCode.Utility, Asset.Usd)]))[0];
        Assert.Equal(730_000, utility.DebitsPosted);
        Assert.Equal(410_000 + 125_000, utility.CreditsPosted);
    }

    [Fact]
    public void Satoshis_and_their_remainder_make_exactly_the_micro_dollars()
    {
        Gen.Select(Gen.Long[0, 1_000_000_000_000], Gen.Long[1, BitcoinConversion.PriceMicroUsdMax]).Sample((microUsd, price) =>
        {
            (long sats, long remainder) = BitcoinConversion.ToSatoshis(microUsd, price);
            Assert.InRange(remainder, 0, price - 1);
            Assert.Equal((Int128)microUsd * BitcoinConversion.SatoshisPerBtc, (Int128)sats * price + remainder);
            Assert.Equal(microUsd, BitcoinConversion.ToMicroUsd(sats, price, remainder));
        });
        Assert.Equal((100_000_000L, 0L), BitcoinConversion.ToSatoshis(50_000_000_000, 50_000_000_000));
        Assert.Throws<ArgumentException>(() => BitcoinConversion.ToMicroUsd(1, 50_000_000_000, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => BitcoinConversion.PriceMicroUsd(0));
        Assert.Throws<ArgumentOutOfRangeException>(() => BitcoinConversion.ToSatoshis(-1, 1));
    }
}
