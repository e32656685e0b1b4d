using ComputeGrid.Energy.Miners;
using ComputeGrid.Simulation;
using static ComputeGrid.Energy.Tests.Miners.MinerTestSupport;

namespace ComputeGrid.Energy.Tests.Miners;

/// <summary>
/// Endpoints that stand for a rack of identical machines (as the live sites run them): the rack reports its machines'
/// total power and hashrate, and the temperature of a machine, which heats from its own power, not the rack's.
/// </summary>
[Collection(Collection)]
public sealed class RackEndpointTests
{
    private const double AmbientC = 25; // the simulator's default
    private const double BoardMaxC = 100; // no ASIC board runs hotter; a reading above it is a modelling error

    /// <summary>Racks of 1 and 120 machines of each model, in that order: group 0 S21 (3.5 kW), group 1 S19 XP (3.01 kW).</summary>
    private static readonly VirtualMinerSpec[] Racks =
    [
        new(S21, MinerDialect.LuxOS, StartHashing: false, Machines: 1),
        new(S21, MinerDialect.Braiins, StartHashing: false, Machines: 120),
        new(S19XP, MinerDialect.LuxOS, StartHashing: false, Machines: 1),
        new(S19XP, MinerDialect.Braiins, StartHashing: false, Machines: 120),
    ];

    [Fact]
    public async Task Every_temperature_of_a_sleeping_waking_and_running_rack_is_a_machines_plausible_temperature()
    {
        var clock = NewClock();
        await using var sim = MinerFleetSimulator.Start(Racks, clock, new MinerFleetSimulatorOptions { Seed = 3 });
        var driver = new FleetDriver(sim.ToMinerEndpoints(i => i / 2), clock, FastDriver());

        // Asleep from the start: every machine at ambient, a rack of 120 drawing 120 control boards' worth (1.8 kW) is
        // still seen asleep, not waking up.
        var asleep = await PollAndCheckAsync("asleep", 0, 0.5);
        Assert.All(asleep.Miners, m => Assert.Equal(MinerState.Sleeping, m.State));

        // Woken: booting at a quarter of their power, warming towards ambient + 12 °C/kW × a quarter of ONE machine's kW.
        var woken = await driver.ApplyAsync([2, 2]);
        Assert.True(woken.TargetsMet);
        for (var minute = 3; minute <= 9; minute += 3) // the boot lasts 10 minutes
        {
            clock.Advance(TimeSpan.FromMinutes(3));
            var waking = await PollAndCheckAsync($"waking, minute {minute}", 0, 12);
            Assert.All(waking.Miners, m => Assert.Equal(MinerState.WakingUp, m.State));
        }

        // Running: after boot, ramp and five time constants, each machine's boards sit at 61–71 °C, whatever the rack.
        clock.Advance(TimeSpan.FromMinutes(20));
        var running = await PollAndCheckAsync("running", 30, 50);
        Assert.All(running.Miners, m => Assert.Equal(MinerState.Hashing, m.State));
        Assert.All(running.Miners, m => Assert.InRange(m.TemperatureC!.Value, 55, 85));

        // Put back to sleep: cooling from the running temperature to ambient, never below it.
        Assert.True((await driver.ApplyAsync([0, 0])).TargetsMet);
        foreach (var minutes in new[] { 1, 3, 10, 60 })
        {
            clock.Advance(TimeSpan.FromMinutes(minutes));
            var cooling = await PollAndCheckAsync($"sleeping {minutes} min more", 0, 50);
            Assert.All(cooling.Miners, m => Assert.Equal(MinerState.Sleeping, m.State));
        }
        var cold = await PollAndCheckAsync("asleep for long", 0, 1);
        Assert.Equal(cold.Miners[0].TemperatureC, cold.Miners[1].TemperatureC);

        // Reads the fleet through the driver (each rack's hottest board) and the simulator's truth; checks that every
        // temperature lies between ambient and the board limit and that its rise above ambient is within [riseMin, riseMax].
        async Task<FleetSnapshot> PollAndCheckAsync(string when, double riseMin, double riseMax)
        {
            var snapshot = await driver.PollAsync();
            for (var i = 0; i < Racks.Length; i++)
            {
                var read = snapshot.Miners[i].TemperatureC;
                var truth = sim.Inspect(i).TemperatureC;
                Assert.True(read is not null, $"{when}: rack {i} reported no temperature");
                foreach (var t in new[] { read!.Value, truth })
                {
                    Assert.True(t >= AmbientC && t <= BoardMaxC, $"{when}: rack {i} ({Racks[i].Machines} × {Racks[i].Model.Name}) at {t:0.0} °C");
                    Assert.True(t - AmbientC >= riseMin - 2 && t - AmbientC <= riseMax + 2,
                        $"{when}: rack {i} ({Racks[i].Machines} × {Racks[i].Model.Name}) at {t:0.0} °C, expected {riseMin}–{riseMax} °C above ambient");
                }
            }
            // Identical machines heat alike, whatever the size of their rack.
            Assert.Equal(sim.Inspect(0).TemperatureC, sim.Inspect(1).TemperatureC, 9);
            Assert.Equal(sim.Inspect(2).TemperatureC, sim.Inspect(3).TemperatureC, 9);
            return snapshot;
        }
    }

    [Fact]
    public async Task A_rack_reports_its_machines_total_power_and_hashrate_and_takes_power_targets_for_the_rack()
    {
        var clock = NewClock();
        await using var sim = MinerFleetSimulator.Start(
            [new VirtualMinerSpec(S21, MinerDialect.Braiins, Machines: 120), new VirtualMinerSpec(S19XP, MinerDialect.LuxOS, StartHashing: false, Machines: 120)],
            clock, new MinerFleetSimulatorOptions { HashrateNoise = 0 });

        var rack = sim.Inspect(0);
        Assert.Equal(120, rack.Machines);
        Assert.Equal(120 * 3500, rack.PowerWatts, 6);
        Assert.Equal(120 * 200, rack.HashrateThs, 6);
        Assert.Equal(120 * 3500, rack.PowerTargetWatts, 6);
        Assert.Equal(67, rack.TemperatureC, 6); // 25 °C + 12 °C/kW × 3.5 kW of one machine

        var summary = await Client(sim, 0).SummaryAsync();
        Assert.Equal(120 * 3500, summary.PowerWatts!.Value, 6);
        Assert.Equal(120 * 200, summary.HashrateThs, 3);
        var sleeping = await Client(sim, 1).SummaryAsync();
        Assert.Equal(120 * 15, sleeping.PowerWatts!.Value, 6); // every machine's control board
        Assert.Equal(0, sleeping.HashrateThs);

        // A power target is the rack's, shared by its machines: half the rack's power, half each machine's.
        await Client(sim, 0).SetPowerTargetAsync(120 * 1750);
        clock.Advance(TimeSpan.FromMinutes(30));
        rack = sim.Inspect(0);
        Assert.Equal(120 * 1750, rack.PowerWatts, 6);
        Assert.Equal(120 * 100, rack.HashrateThs, 6);
        Assert.InRange(rack.TemperatureC, 25 + 12 * 1.75 - 0.1, 25 + 12 * 1.75 + 0.1);

        var endpoints = sim.ToMinerEndpoints(_ => 0);
        Assert.Equal([120, 120], endpoints.Select(e => e.Machines));
    }
}
