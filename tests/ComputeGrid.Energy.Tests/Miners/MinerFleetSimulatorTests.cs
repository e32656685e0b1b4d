using System.Net.Sockets;
using ComputeGrid.Energy.Miners;
using ComputeGrid.Simulation;
using static ComputeGrid.Energy.Tests.Miners.MinerTestSupport;

namespace ComputeGrid.Energy.Tests.Miners;

[Collection(Collection)]
public sealed class MinerFleetSimulatorTests
{
    [Fact]
    public async Task Temperature_follows_power_with_a_first_order_lag()
    {
        var clock = NewClock();
        await using var sim = StartOne(clock, MinerDialect.Braiins);
        var hot = sim.Inspect(0).TemperatureC;
        Assert.Equal(67, hot, 6); // 25 °C + 12 °C/kW × 3.5 kW

        await Client(sim).SleepAsync();
        clock.Advance(TimeSpan.FromSeconds(2));
        Assert.InRange(sim.Inspect(0).TemperatureC, 66, 67); // barely moved

        clock.Advance(TimeSpan.FromMinutes(3)); // one time constant: 63 % of the way to ambient
        var expected = 25.18 + (67 - 25.18) * Math.Exp(-1);
        Assert.InRange(sim.Inspect(0).TemperatureC, expected - 0.5, expected + 0.5);

        clock.Advance(TimeSpan.FromMinutes(30));
        Assert.InRange(sim.Inspect(0).TemperatureC, 25.1, 25.3);
    }

    [Fact]
    public async Task Shares_grow_with_hashrate()
    {
        var clock = NewClock();
        await using var sim = StartOne(clock, MinerDialect.LuxOS);
        clock.Advance(TimeSpan.FromSeconds(1000));
        var full = sim.Inspect(0).Accepted;

        await Client(sim).SetPowerTargetAsync(1750);
        clock.Advance(TimeSpan.FromSeconds(1000));
        var half = sim.Inspect(0).Accepted - full;

        Assert.InRange(full, 990, 1000);
        Assert.InRange(half, 490, 505);
        await Client(sim).SleepAsync();
        clock.Advance(TimeSpan.FromSeconds(1000));
        Assert.InRange(sim.Inspect(0).Accepted - full - half, 0, 5); // only the 1.5 s before the sleep took effect
    }

    [Fact]
    public async Task Same_seed_same_readings_different_seed_different_readings()
    {
        async Task<double[]> ReadAsync(int seed)
        {
            var clock = NewClock();
            await using var sim = StartOne(clock, MinerDialect.LuxOS, options: new MinerFleetSimulatorOptions { Seed = seed });
            var readings = new double[5];
            for (var i = 0; i < readings.Length; i++)
            {
                clock.Advance(TimeSpan.FromSeconds(5));
                readings[i] = (await Client(sim).SummaryAsync()).HashrateThs;
            }
            return readings;
        }

        Assert.Equal(await ReadAsync(1), await ReadAsync(1));
        Assert.NotEqual(await ReadAsync(1), await ReadAsync(2));
    }

    [Fact]
    public async Task Serves_hundreds_of_miners_and_many_concurrent_connections_on_the_real_clock()
    {
        var specs = Enumerable.Range(0, 300).Select(i => new VirtualMinerSpec(i % 2 == 0 ? S21 : S19XP, (MinerDialect)(i % 2)));
        await using var sim = MinerFleetSimulator.Start(specs, TimeProvider.System);
        Assert.Equal(300, sim.Endpoints.Select(e => e.Port).Distinct().Count());

        var calls = Enumerable.Range(0, 600).Select(async k =>
        {
            var summary = await Client(sim, k % 300, timeout: TimeSpan.FromSeconds(30)).SummaryAsync();
            return summary.HashrateThs;
        });
        var hashrates = await Task.WhenAll(calls).WaitAsync(TimeSpan.FromSeconds(120));

        Assert.All(hashrates, h => Assert.True(h > 100));
        Assert.True(sim.ConnectionsAccepted >= 600);
    }

    [Fact]
    public async Task Dispose_stops_cleanly_with_silent_connections_open()
    {
        var clock = NewClock();
        var sim = StartOne(clock, MinerDialect.LuxOS);
        sim.SetFault(0, MinerFault.Silent);
        var endpoint = sim.Endpoints[0];
        var hanging = Client(sim, timeout: TimeSpan.FromSeconds(30)).SummaryAsync();
        while (sim.ConnectionsAccepted == 0) await Task.Delay(10);

        await sim.DisposeAsync().AsTask().WaitAsync(Bound);

        // The client sees the connection end without a reply.
        var e = await Assert.ThrowsAsync<MinerProtocolException>(() => hanging.WaitAsync(Bound));
        Assert.True(e.Kind is MinerErrorKind.InvalidReply or MinerErrorKind.ConnectionFailed, e.Kind.ToString());
        using var probe = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await Assert.ThrowsAsync<SocketException>(() => probe.ConnectAsync(endpoint));
        Assert.Throws<ObjectDisposedException>(() => sim.SetFault(0, MinerFault.None));
        await sim.DisposeAsync(); // idempotent
    }

    [Fact]
    public async Task Invalid_requests_get_an_error_status_not_a_hang()
    {
        var clock = NewClock();
        await using var sim = StartOne(clock, MinerDialect.LuxOS);
        var endpoint = sim.Endpoints[0];
        using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(endpoint);
        await socket.SendAsync("{\"command\": 42}"u8.ToArray(), SocketFlags.None);
        var buffer = new byte[4096];
        var total = 0;
        int read;
        while ((read = await socket.ReceiveAsync(buffer.AsMemory(total), SocketFlags.None).AsTask().WaitAsync(Bound)) > 0) total += read;

        var e = Assert.Throws<MinerProtocolException>(() => CgminerReply.Parse(buffer.AsSpan(0, total), "?"));
        Assert.Equal(MinerErrorKind.ErrorStatus, e.Kind);
        Assert.Equal(23, e.StatusCode);
    }

    [Fact]
    public async Task LuxOS_control_commands_need_a_valid_session()
    {
        var clock = NewClock();
        await using var sim = StartOne(clock, MinerDialect.LuxOS);
        var client = Client(sim);

        var e = await Assert.ThrowsAsync<MinerProtocolException>(() => client.SendAsync("curtail", "bogus,sleep"));
        Assert.Equal("Invalid session", e.StatusMessage);
        Assert.Equal(VirtualMinerPhase.Hashing, sim.Inspect(0).Phase);

        var profiles = await client.SendAsync("profiles");
        Assert.True(profiles.TryGetSection("PROFILES", out var list));
        Assert.Equal(13, list.GetArrayLength()); // 50 % to 110 % in 5 % steps
    }
}
