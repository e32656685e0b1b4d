using ComputeGrid.Energy.Miners;
using ComputeGrid.Simulation;
using static ComputeGrid.Energy.Tests.Miners.MinerTestSupport;

namespace ComputeGrid.Energy.Tests.Miners;

[Collection(Collection)]
public sealed class FleetDriverTests
{
    private static int[] ControlCommands(MinerFleetSimulator sim) => sim.InspectAll().Select(m => m.ControlCommands).ToArray();

    [Fact]
    public async Task Apply_reaches_targets_exactly_touching_only_the_miners_it_must()
    {
        var clock = NewClock();
        var (sim, driver) = TwoGroupFleet(clock, perGroup: 100);
        await using var _ = sim;

        var first = await driver.ApplyAsync([60, 70]);

        Assert.True(first.TargetsMet);
        Assert.Equal([60, 70], first.AwakePerGroup);
        Assert.Equal([60, 70], first.PossiblyRunningPerGroup);
        Assert.Equal([0, 0], first.ShortfallPerGroup);
        Assert.Empty(first.Woken);
        Assert.Equal(70, first.Slept.Count);
        Assert.Equal(Enumerable.Range(60, 40).Concat(Enumerable.Range(170, 30)), first.Slept); // highest indices first
        var commands = ControlCommands(sim);
        Assert.Equal(70, commands.Sum());
        Assert.All(first.Slept, i => Assert.Equal(1, commands[i]));

        clock.Advance(TimeSpan.FromSeconds(2));
        var snapshot = await driver.PollAsync();
        Assert.Equal(60, snapshot.Groups[0].Hashing);
        Assert.Equal(40, snapshot.Groups[0].Sleeping);
        Assert.Equal(70, snapshot.Groups[1].Hashing);
        Assert.Equal(30, snapshot.Groups[1].Sleeping);
        Assert.InRange(snapshot.Groups[0].HashrateThs, 60 * 195, 60 * 205);
        Assert.InRange(snapshot.Groups[1].PowerWatts, 70 * 3010 + 30 * 15 - 1, 70 * 3010 + 30 * 15 + 1);

        // Raise group 0 only: exactly the 20 missing miners are woken, group 1 is not touched.
        var second = await driver.ApplyAsync([80, 70]);
        Assert.True(second.TargetsMet);
        Assert.Equal(Enumerable.Range(60, 20), second.Woken);
        Assert.Empty(second.Slept);
        var after = ControlCommands(sim);
        Assert.Equal(90, after.Sum());
        Assert.Equal(commands.Skip(100), after.Skip(100));

        // Same targets again: nothing to do.
        var third = await driver.ApplyAsync([80, 70]);
        Assert.Equal(0, third.CommandsApplied);
        Assert.Equal(90, ControlCommands(sim).Sum());
    }

    [Fact]
    public async Task Surplus_is_taken_from_miners_still_booting_before_hashing_ones()
    {
        var clock = NewClock();
        var specs = Enumerable.Range(0, 10).Select(i => new VirtualMinerSpec(S21, MinerDialect.LuxOS, StartHashing: i >= 5));
        await using var sim = MinerFleetSimulator.Start(specs, clock);
        var driver = new FleetDriver(sim.ToMinerEndpoints(_ => 0), clock, FastDriver());

        var up = await driver.ApplyAsync([7]);
        Assert.Equal([0, 1], up.Woken);

        var down = await driver.ApplyAsync([5]);

        Assert.Equal([0, 1], down.Slept); // booting, so no hashrate is lost; by index alone 8 and 9 would go
        Assert.Equal(VirtualMinerPhase.Hashing, sim.Inspect(9).Phase);
    }

    [Fact]
    public async Task Woken_miners_are_waking_up_until_their_boot_completes()
    {
        var clock = NewClock();
        var (sim, driver) = TwoGroupFleet(clock, perGroup: 10, hashing: false);
        await using var _ = sim;

        var result = await driver.ApplyAsync([4, 3]);
        Assert.Equal([0, 1, 2, 3, 10, 11, 12], result.Woken);
        Assert.Equal([4, 3], driver.PossiblyRunningPerGroup);

        clock.Advance(TimeSpan.FromMinutes(5));
        var booting = await driver.PollAsync();
        Assert.Equal(4, booting.Groups[0].WakingUp);
        Assert.Equal(3, booting.Groups[1].WakingUp);
        Assert.Equal(0, booting.TotalHashrateThs);
        Assert.True(booting.Groups[0].PowerWatts > 4 * 800, "booting miners draw power");
        Assert.Equal(MinerState.WakingUp, driver.GetStatus(0).State);

        clock.Advance(TimeSpan.FromMinutes(6));
        var hashing = await driver.PollAsync();
        Assert.Equal(4, hashing.Groups[0].Hashing);
        Assert.Equal(3, hashing.Groups[1].Hashing);
        Assert.Equal(6, hashing.Groups[0].Sleeping);
        Assert.All(hashing.Miners.Where(m => m.State == MinerState.Hashing), m => Assert.NotNull(m.TemperatureC));
    }

    [Fact]
    public async Task Silent_and_garbage_miners_are_marked_down_and_do_not_block_the_rest()
    {
        var clock = NewClock();
        var (sim, driver) = TwoGroupFleet(clock, perGroup: 100);
        await using var _ = sim;
        sim.SetFault(5, MinerFault.Silent);
        sim.SetFault(150, MinerFault.Garbage);

        var result = await driver.ApplyAsync([50, 40]).WaitAsync(Bound);

        Assert.True(result.TargetsMet);
        Assert.Equal([50, 40], result.AwakePerGroup);
        Assert.Equal([51, 41], result.PossiblyRunningPerGroup); // the down miners may still be running
        Assert.Equal([51, 41], driver.PossiblyRunningPerGroup);
        Assert.Equal([1, 1], driver.DownPerGroup);
        Assert.Equal([5, 150], result.NewlyDown.Select(m => m.Index));

        var silent = driver.GetStatus(5);
        Assert.Equal(MinerState.Down, silent.State);
        Assert.Equal(clock.GetUtcNow(), silent.DownSince);
        Assert.Equal(clock.GetUtcNow() + TimeSpan.FromMinutes(1), silent.NextProbeAt);
        Assert.Contains("no answer within 2500 ms", silent.DownReason);
        var garbage = driver.GetStatus(150);
        Assert.Equal(MinerState.Down, garbage.State);
        Assert.Contains("not valid JSON", garbage.DownReason);

        // Physically the two are still hashing: that is why they count as possibly running.
        Assert.Equal(VirtualMinerPhase.Hashing, sim.Inspect(5).Phase);
        Assert.Equal(VirtualMinerPhase.Hashing, sim.Inspect(150).Phase);
        Assert.Equal(0, sim.Inspect(5).ControlCommands);

        // Down miners are skipped (not re-tried) until their re-probe is due, so the next call is quick and quiet.
        var connections = sim.ConnectionsAccepted;
        var again = await driver.ApplyAsync([50, 40]).WaitAsync(Bound);
        Assert.Equal(0, again.CommandsApplied);
        Assert.Empty(again.Recovered);
        Assert.Equal(connections, sim.ConnectionsAccepted);

        clock.Advance(TimeSpan.FromSeconds(2)); // let the sleeps take effect
        var snapshot = await driver.PollAsync().WaitAsync(Bound);
        Assert.Equal(MinerState.Down, snapshot.Miners[5].State);
        Assert.Equal(1, snapshot.Groups[0].Down);
        Assert.Equal(51, snapshot.Groups[0].PossiblyRunning);
    }

    [Fact]
    public async Task A_failed_wake_is_replaced_by_another_sleeping_miner()
    {
        var clock = NewClock();
        var (sim, driver) = TwoGroupFleet(clock, perGroup: 10, hashing: false);
        await using var _ = sim;
        await driver.ApplyAsync([0, 0]);
        sim.SetFault(0, MinerFault.Garbage);

        var result = await driver.ApplyAsync([3, 0]).WaitAsync(Bound);

        Assert.True(result.TargetsMet);
        Assert.Equal([1, 2, 3], result.Woken);
        Assert.Equal([0], result.NewlyDown.Select(m => m.Index));
        Assert.StartsWith("wake failed:", result.NewlyDown[0].DownReason);
        Assert.Equal([4, 0], result.PossiblyRunningPerGroup);
    }

    [Fact]
    public async Task A_failed_sleep_leaves_the_miner_counted_as_possibly_running()
    {
        var clock = NewClock();
        var (sim, driver) = TwoGroupFleet(clock, perGroup: 10);
        await using var _ = sim;
        await driver.ApplyAsync([10, 10]);
        sim.SetFault(9, MinerFault.Garbage);

        var result = await driver.ApplyAsync([7, 10]).WaitAsync(Bound);

        Assert.True(result.TargetsMet);
        Assert.Equal([7, 8], result.Slept);
        Assert.Equal([9], result.NewlyDown.Select(m => m.Index));
        Assert.Equal([8, 10], result.PossiblyRunningPerGroup); // 7 awake + 1 that did not confirm its sleep
        Assert.Equal(VirtualMinerPhase.Hashing, sim.Inspect(9).Phase);
    }

    [Fact]
    public async Task A_miner_that_comes_back_is_reprobed_after_the_interval_and_recovers()
    {
        var clock = NewClock();
        var (sim, driver) = TwoGroupFleet(clock, perGroup: 20);
        await using var _ = sim;
        sim.SetFault(3, MinerFault.Silent);
        sim.SetFault(25, MinerFault.Refuse);
        var down = await driver.ApplyAsync([10, 10]).WaitAsync(Bound);
        Assert.True(down.NewlyDown.Count == 2, string.Join("\n", down.NewlyDown.Select(m => $"{m.Index}: {m.DownReason}")));
        Assert.Equal([3, 25], down.NewlyDown.Select(m => m.Index));
        Assert.Contains("ConnectionRefused", down.NewlyDown[1].DownReason);

        sim.SetFault(3, MinerFault.None);
        sim.SetFault(25, MinerFault.None);
        clock.Advance(TimeSpan.FromSeconds(59));
        var early = await driver.ApplyAsync([10, 10]);
        Assert.Empty(early.Recovered);
        Assert.Equal(MinerState.Down, driver.GetStatus(3).State);

        clock.Advance(TimeSpan.FromSeconds(1));
        var recovered = await driver.ApplyAsync([10, 10]).WaitAsync(Bound);

        Assert.Equal([3, 25], recovered.Recovered);
        Assert.Empty(recovered.NewlyDown);
        Assert.True(recovered.TargetsMet);
        Assert.Equal([10, 10], recovered.PossiblyRunningPerGroup);
        Assert.Equal([0, 0], driver.DownPerGroup);
        var status = driver.GetStatus(3);
        Assert.Null(status.DownReason);
        Assert.Null(status.DownSince);
        // Both came back hashing, one more than the target per group: one miner per group was put to sleep.
        Assert.Equal(2, recovered.Slept.Count);
    }

    [Fact]
    public async Task Shortfall_is_reported_when_a_group_has_too_few_reachable_miners()
    {
        var clock = NewClock();
        var (sim, driver) = TwoGroupFleet(clock, perGroup: 5, hashing: false);
        await using var _ = sim;
        sim.SetFault(1, MinerFault.Refuse);

        var result = await driver.ApplyAsync([5, 2]).WaitAsync(Bound);

        Assert.False(result.TargetsMet);
        Assert.Equal([4, 2], result.AwakePerGroup);
        Assert.Equal([1, 0], result.ShortfallPerGroup);
        Assert.Equal([5, 2], result.PossiblyRunningPerGroup);
        Assert.Equal([0, 2, 3, 4, 5, 6], result.Woken);

        var beyond = await driver.ApplyAsync([7, 9]);
        Assert.Equal([3, 4], beyond.ShortfallPerGroup);
    }

    [Fact]
    public async Task Unknown_miners_count_as_possibly_running_before_first_contact()
    {
        var clock = NewClock();
        var (sim, driver) = TwoGroupFleet(clock, perGroup: 3, hashing: false);
        await using var _ = sim;

        Assert.Equal([3, 3], driver.PossiblyRunningPerGroup);
        Assert.All(driver.GetStatuses(), s => Assert.Equal(MinerState.Unknown, s.State));

        await driver.PollAsync();
        Assert.Equal([0, 0], driver.PossiblyRunningPerGroup);
    }

    [Fact]
    public async Task Runs_are_deterministic_for_a_seed()
    {
        async Task<(string Commands, double[] Hashrates)> RunAsync(int seed)
        {
            var clock = NewClock();
            var (sim, driver) = TwoGroupFleet(clock, perGroup: 30, seed: seed);
            await using var _ = sim;
            var a = await driver.ApplyAsync([12, 25]);
            clock.Advance(TimeSpan.FromSeconds(3));
            var b = await driver.ApplyAsync([20, 5]);
            clock.Advance(TimeSpan.FromMinutes(12));
            var snapshot = await driver.PollAsync();
            var commands = $"{string.Join(',', a.Slept)}|{string.Join(',', a.Woken)}|{string.Join(',', b.Slept)}|{string.Join(',', b.Woken)}";
            return (commands, snapshot.Miners.Select(m => m.HashrateThs).ToArray());
        }

        var first = await RunAsync(11);
        var second = await RunAsync(11);
        var other = await RunAsync(12);

        Assert.Equal(first.Commands, second.Commands);
        Assert.Equal(first.Hashrates, second.Hashrates);
        Assert.Equal(first.Commands, other.Commands); // choices depend on state, not on noise
        Assert.NotEqual(first.Hashrates, other.Hashrates);
    }

    [Fact]
    public async Task Arguments_are_validated()
    {
        var clock = NewClock();
        var (sim, driver) = TwoGroupFleet(clock, perGroup: 1);
        await using var _ = sim;

        await Assert.ThrowsAsync<ArgumentException>(() => driver.ApplyAsync([1]));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => driver.ApplyAsync([1, -1]));
        Assert.Throws<ArgumentOutOfRangeException>(() => new FleetDriver(driver.Miners, clock, groupCount: 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => new FleetDriver(driver.Miners, clock, new FleetDriverOptions { MaxAttempts = 0 }));
    }
}
