using ComputeGrid.Energy.Bookkeeping;
using ComputeGrid.Energy.Sites;
using ComputeGrid.Ledger;
using ComputeGrid.Server.Energy;
using ComputeGrid.Simulation;
using Microsoft.Extensions.Time.Testing;

namespace ComputeGrid.Server.Tests;

/// <summary>A live site books each decided interval in the ledger; its P&amp;L read back equals its running economics.</summary>
public class SiteLedgerLiveTests
{
    // 24 August 2021 05:00 UTC: the day of the August 4CP peak, from midnight in Texas.
    private static readonly DateTime Midnight = new(2021, 8, 24, 5, 0, 0, DateTimeKind.Utc);

    private static LiveSite Start(FakeTimeProvider clock, LedgerEngine ledger)
    {
        LiveSite site = LiveSite.Start(new LiveSiteOptions
        {
            Config = SiteExamples.Load(SiteExamples.Reference), Speed = 1, StartUtc = Midnight, RacksPerGroup = 4,
            Simulator = new MinerFleetSimulatorOptions { Seed = 5, HashrateNoise = 0 },
        }, clock);
        site.Attach(new SiteLedger(ledger, site.Name));
        return site;
    }

    private static async Task StepIntervals(LiveSite site, FakeTimeProvider clock, int intervals, CancellationToken ct)
    {
        await site.StepAsync(ct);
        for (int i = 1; i < intervals; i++)
        {
            clock.Advance(TimeSpan.FromMinutes(15));
            await site.StepAsync(ct);
        }
    }

    [Fact]
    public async Task A_live_sites_PnL_from_the_ledger_equals_its_running_economics_and_a_restart_books_nothing_twice()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        await using LedgerEngine ledger = LedgerEngine.Open(new LedgerEngineOptions { PulseInterval = TimeSpan.FromDays(1) });
        var clock = new FakeTimeProvider(new DateTimeOffset(2025, 1, 1, 0, 0, 0, TimeSpan.Zero));
        SiteProfitAndLoss first;
        int transfers;
        LiveSite site = Start(clock, ledger);
        try
        {
            await StepIntervals(site, clock, 8, cts.Token);
            LiveEconomics e = site.State.Economics;
            first = await site.Books!.ProfitAndLossAsync(Midnight, Midnight.AddDays(1), cts.Token);
            Assert.Equal(8, first.Intervals);
            Assert.Equal(e.AiRevenueMicroUsd, first.AiRevenueMicroUsd);
            Assert.Equal(e.MiningRevenueMicroUsd, first.MiningRevenueMicroUsd);
            Assert.Equal(e.EnergyCostMicroUsd, first.EnergyCostMicroUsd);
            Assert.Equal(e.PeakChargeMicroUsd, first.PeakChargeMicroUsd);
            Assert.Equal(e.RestartWearMicroUsd, first.RestartWearMicroUsd);
            Assert.Equal(e.ValueMicroUsd, first.ValueMicroUsd);
            Assert.True(first.EnergyCostMicroUsd > 0 && first.AiRevenueMicroUsd > 0);
            transfers = ledger.Stats.Transfers;
        }
        finally { await site.DisposeAsync(); }

        // A restart replays the same intervals into the same ledger: each is already booked, nothing is posted twice.
        var clock2 = new FakeTimeProvider(new DateTimeOffset(2025, 1, 1, 0, 0, 0, TimeSpan.Zero));
        LiveSite again = Start(clock2, ledger);
        try
        {
            await StepIntervals(again, clock2, 8, cts.Token);
            Assert.Equal(transfers, ledger.Stats.Transfers);
            Assert.Equal(first, await again.Books!.ProfitAndLossAsync(Midnight, Midnight.AddDays(1), cts.Token));
            clock2.Advance(TimeSpan.FromMinutes(15));
            await again.StepAsync(cts.Token); // a new interval is booked
            Assert.Equal(9, (await again.Books!.ProfitAndLossAsync(Midnight, Midnight.AddDays(1), cts.Token)).Intervals);
            await ledger.ReadAsync(sm => { sm.AssertInvariants(); return 0; });
        }
        finally { await again.DisposeAsync(); }
    }
}
