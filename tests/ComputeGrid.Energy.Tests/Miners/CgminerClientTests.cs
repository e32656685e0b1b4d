using System.Text;
using ComputeGrid.Energy.Miners;
using ComputeGrid.Simulation;
using static ComputeGrid.Energy.Tests.Miners.MinerTestSupport;

namespace ComputeGrid.Energy.Tests.Miners;

[Collection(Collection)]
public sealed class CgminerClientTests
{
    [Fact]
    public async Task Summary_reads_hashrate_elapsed_shares_and_power()
    {
        var clock = NewClock();
        await using var sim = StartOne(clock, MinerDialect.LuxOS);
        clock.Advance(TimeSpan.FromSeconds(100));

        var summary = await Client(sim).SummaryAsync();

        Assert.InRange(summary.HashrateThs, 180, 220);
        Assert.InRange(summary.AverageHashrateThs, 199, 201);
        Assert.Equal(100, summary.ElapsedSeconds);
        Assert.InRange(summary.Accepted, 95, 100); // 0.005 shares/TH × 200 TH/s × 100 s, 0.2 % rejected
        Assert.Equal(0, summary.Rejected);
        Assert.Equal(3500, summary.PowerWatts);
        Assert.Equal(clock.GetUtcNow().ToUnixTimeSeconds(), summary.When.ToUnixTimeSeconds());
    }

    [Fact]
    public async Task Devs_reports_each_board_with_temperature_and_hashrate()
    {
        var clock = NewClock();
        await using var sim = StartOne(clock, MinerDialect.Braiins);

        var devs = await Client(sim).DevsAsync();

        Assert.Equal(3, devs.Count);
        Assert.Equal([0, 1, 2], devs.Select(d => d.Index));
        Assert.All(devs, d =>
        {
            Assert.Equal("Alive", d.Status);
            Assert.True(d.Enabled);
            Assert.InRange(d.TemperatureC!.Value, 64, 70); // 25 °C + 12 °C/kW × 3.5 kW, ±1.5 per board
        });
        Assert.InRange(devs.Sum(d => d.HashrateThs), 185, 215);
    }

    [Fact]
    public async Task Pools_reports_url_status_and_user()
    {
        var clock = NewClock();
        await using var sim = StartOne(clock, MinerDialect.LuxOS);

        var pool = Assert.Single(await Client(sim).PoolsAsync());

        Assert.Equal(0, pool.Index);
        Assert.StartsWith("stratum+tcp://", pool.Url);
        Assert.Equal("Alive", pool.Status);
        Assert.Equal("computegrid.S21-0", pool.User);
        Assert.True(pool.StratumActive);
    }

    [Theory]
    [InlineData(MinerDialect.LuxOS)]
    [InlineData(MinerDialect.Braiins)]
    public async Task Sleep_takes_effect_within_two_seconds(MinerDialect dialect)
    {
        var clock = NewClock();
        await using var sim = StartOne(clock, dialect);
        var client = Client(sim);

        await client.SleepAsync();
        Assert.Equal(1, sim.Inspect(0).ControlCommands);
        Assert.True((await client.SummaryAsync()).HashrateThs > 0, "the sleep has not taken effect yet");

        clock.Advance(TimeSpan.FromSeconds(2));
        var summary = await client.SummaryAsync();
        Assert.Equal(0, summary.HashrateThs);
        Assert.Equal(15, summary.PowerWatts);
        Assert.Equal(VirtualMinerPhase.Sleeping, sim.Inspect(0).Phase);
        Assert.All(await client.DevsAsync(), d => Assert.Equal("Disabled", d.Status));
    }

    [Theory]
    [InlineData(MinerDialect.LuxOS)]
    [InlineData(MinerDialect.Braiins)]
    public async Task Wake_boots_for_ten_minutes_drawing_power_before_hashing(MinerDialect dialect)
    {
        var clock = NewClock();
        await using var sim = StartOne(clock, dialect, hashing: false);
        var client = Client(sim);
        Assert.Equal(0, (await client.SummaryAsync()).HashrateThs);

        await client.WakeAsync();
        clock.Advance(TimeSpan.FromMinutes(5));
        var booting = await client.SummaryAsync();
        Assert.Equal(0, booting.HashrateThs);
        Assert.Equal(875, booting.PowerWatts); // 25 % of 3500 W while booting
        Assert.All(await client.DevsAsync(), d => Assert.Equal("Initialising", d.Status));

        clock.Advance(TimeSpan.FromMinutes(5) - TimeSpan.FromSeconds(1));
        Assert.Equal(0, (await client.SummaryAsync()).HashrateThs);

        clock.Advance(TimeSpan.FromSeconds(31)); // half-way through the 60 s ramp
        Assert.InRange((await client.SummaryAsync()).HashrateThs, 85, 115);

        clock.Advance(TimeSpan.FromSeconds(30));
        var hashing = await client.SummaryAsync();
        Assert.InRange(hashing.HashrateThs, 185, 215);
        Assert.Equal(3500, hashing.PowerWatts);
        Assert.Equal(VirtualMinerPhase.Hashing, sim.Inspect(0).Phase);
    }

    [Theory]
    [InlineData(MinerDialect.LuxOS)]
    [InlineData(MinerDialect.Braiins)]
    public async Task Power_target_scales_hashrate_within_model_limits(MinerDialect dialect)
    {
        var clock = NewClock();
        await using var sim = StartOne(clock, dialect);
        var client = Client(sim);

        await client.SetPowerTargetAsync(2800);
        var reduced = await client.SummaryAsync();
        Assert.Equal(2800, reduced.PowerWatts);
        Assert.InRange(reduced.HashrateThs, 150, 170); // 200 TH/s × 2800/3500

        await client.SetPowerTargetAsync(10_000);
        Assert.Equal(3850, (await client.SummaryAsync()).PowerWatts); // clamped to 110 %
        Assert.Equal(2, sim.Inspect(0).ControlCommands);
    }

    [Fact]
    public async Task LuxOS_commands_adopt_an_active_session_and_release_it()
    {
        var clock = NewClock();
        await using var sim = StartOne(clock, MinerDialect.LuxOS);
        var client = Client(sim);
        var other = await client.SendAsync("logon");
        var held = other.GetFirst("SESSION").GetProperty("SessionID").GetString();
        Assert.False(string.IsNullOrEmpty(held));

        await client.SleepAsync();

        Assert.Equal(1, sim.Inspect(0).ControlCommands);
        var after = await client.SendAsync("session");
        Assert.Equal("", after.GetFirst("SESSION").GetProperty("SessionID").GetString());
    }

    [Fact]
    public async Task Error_status_raises_MinerProtocolException_with_code_and_message()
    {
        var clock = NewClock();
        await using var sim = StartOne(clock, MinerDialect.Braiins);
        var client = Client(sim);

        var unknown = await Assert.ThrowsAsync<MinerProtocolException>(() => client.SendAsync("frobnicate"));
        Assert.Equal(MinerErrorKind.ErrorStatus, unknown.Kind);
        Assert.Equal(14, unknown.StatusCode);
        Assert.Equal("Invalid command", unknown.StatusMessage);
        Assert.Equal("frobnicate", unknown.Command);

        // A LuxOS command sent to a Braiins miner is an error, not a silent no-op.
        var wrongDialect = Client(sim, dialect: MinerDialect.LuxOS);
        var e = await Assert.ThrowsAsync<MinerProtocolException>(() => wrongDialect.SleepAsync());
        Assert.Equal(MinerErrorKind.ErrorStatus, e.Kind);
        Assert.Equal(0, sim.Inspect(0).ControlCommands);
    }

    [Fact]
    public async Task Garbage_reply_raises_MinerProtocolException()
    {
        var clock = NewClock();
        await using var sim = StartOne(clock, MinerDialect.LuxOS);
        sim.SetFault(0, MinerFault.Garbage);

        var e = await Assert.ThrowsAsync<MinerProtocolException>(() => Client(sim).SummaryAsync());

        Assert.Equal(MinerErrorKind.InvalidReply, e.Kind);
        Assert.Contains("not valid JSON", e.Message);
    }

    [Fact]
    public async Task Silent_miner_times_out_on_the_wall_clock_even_with_a_fake_physics_clock()
    {
        var clock = NewClock();
        await using var sim = StartOne(clock, MinerDialect.LuxOS);
        sim.SetFault(0, MinerFault.Silent);

        var e = await Assert.ThrowsAsync<MinerProtocolException>(
            () => Client(sim, timeout: TimeSpan.FromMilliseconds(300)).SummaryAsync().WaitAsync(Bound));

        Assert.Equal(MinerErrorKind.Timeout, e.Kind);
    }

    [Fact]
    public async Task Caller_cancellation_is_OperationCanceledException_not_a_protocol_error()
    {
        var clock = NewClock();
        await using var sim = StartOne(clock, MinerDialect.LuxOS);
        sim.SetFault(0, MinerFault.Silent);
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(200));

        await Assert.ThrowsAnyAsync<OperationCanceledException>(
            () => Client(sim, timeout: TimeSpan.FromSeconds(30)).SummaryAsync(cts.Token).WaitAsync(Bound));
    }

    [Fact]
    public async Task Slow_miner_answers_after_its_delay()
    {
        var clock = NewClock();
        await using var sim = StartOne(clock, MinerDialect.LuxOS);
        sim.SetFault(0, MinerFault.Slow(TimeSpan.FromMilliseconds(300)));

        var tooShort = await Assert.ThrowsAsync<MinerProtocolException>(
            () => Client(sim, timeout: TimeSpan.FromMilliseconds(100)).SummaryAsync());
        Assert.Equal(MinerErrorKind.Timeout, tooShort.Kind);

        var summary = await Client(sim, timeout: TimeSpan.FromSeconds(5)).SummaryAsync();
        Assert.True(summary.HashrateThs > 0);
    }

    [Fact]
    public async Task Refused_port_is_a_connection_failure_and_reopens_on_the_same_port()
    {
        var clock = NewClock();
        await using var sim = StartOne(clock, MinerDialect.LuxOS);
        var port = sim.Endpoints[0].Port;
        sim.SetFault(0, MinerFault.Refuse);

        var e = await Assert.ThrowsAsync<MinerProtocolException>(() => Client(sim).SummaryAsync());
        Assert.Equal(MinerErrorKind.ConnectionFailed, e.Kind);

        sim.SetFault(0, MinerFault.None);
        Assert.Equal(port, sim.Endpoints[0].Port);
        Assert.True((await Client(sim).SummaryAsync()).HashrateThs > 0);
    }

    [Fact]
    public async Task Replies_without_the_trailing_NUL_are_accepted()
    {
        var clock = NewClock();
        await using var sim = StartOne(clock, MinerDialect.LuxOS, options: new MinerFleetSimulatorOptions { NulTerminateReplies = false });

        Assert.True((await Client(sim).SummaryAsync()).HashrateThs > 0);
        Assert.Equal(3, (await Client(sim).DevsAsync()).Count);
    }

    [Fact]
    public async Task NUL_ends_the_reply_without_waiting_for_the_server_to_close()
    {
        var reply = """{"STATUS":[{"STATUS":"S","When":1700000000,"Code":11,"Msg":"Summary","Description":"cgminer 4.12.1"}],"SUMMARY":[{"Elapsed":5,"GHS 5s":"101500.5","GHS av":100000,"Accepted":3,"Rejected":1}],"id":1}""";
        await using var server = new CannedServer([.. Encoding.UTF8.GetBytes(reply), 0], keepOpen: true);
        var client = new CgminerClient("127.0.0.1", server.Port, options: new CgminerClientOptions { CallTimeout = TimeSpan.FromSeconds(5) });

        var summary = await client.SummaryAsync().WaitAsync(Bound);

        Assert.Equal("""{"command":"summary"}""", server.Request);
        Assert.Equal(101.5005, summary.HashrateThs, 6); // GH/s (bmminer style, even quoted) to TH/s
        Assert.Equal(100, summary.AverageHashrateThs, 6);
        Assert.Null(summary.PowerWatts);
        Assert.Equal(DateTimeOffset.FromUnixTimeSeconds(1700000000), summary.When);
    }

    [Theory]
    [InlineData("""{"STATUS":[{"STATUS":"S","Code":11}],"SUMMARY":[{"Elapsed":5,}],"id":1}""", "trailing comma")]
    [InlineData("""{"STATUS":[{"STATUS":"S","Code":11}]}garbage""", "trailing bytes")]
    [InlineData("""[{"STATUS":"S"}]""", "not an object")]
    [InlineData("""{"SUMMARY":[{"Elapsed":5}]}""", "no STATUS")]
    [InlineData("""{"STATUS":[{"STATUS":"S","Code":11}],"id":1}""", "no SUMMARY")]
    [InlineData("""{"STATUS":[{"STATUS":"S","Code":11}],"SUMMARY":[{"Elapsed":"soon","MHS av":1,"Accepted":0,"Rejected":0}]}""", "non-numeric field")]
    [InlineData("""{"STATUS":[{"STATUS":"S","Code":11}],"SUMMARY":[{"Elapsed":5,"Accepted":0,"Rejected":0}]}""", "no hashrate")]
    [InlineData("", "empty")]
    public async Task Malformed_replies_are_invalid(string reply, string because)
    {
        await using var server = new CannedServer(Encoding.UTF8.GetBytes(reply));
        var client = new CgminerClient("127.0.0.1", server.Port);

        var e = await Assert.ThrowsAsync<MinerProtocolException>(() => client.SummaryAsync().WaitAsync(Bound));

        Assert.True(e.Kind == MinerErrorKind.InvalidReply, $"{because}: {e.Kind} {e.Message}");
    }

    [Fact]
    public async Task Fatal_status_is_an_error_status()
    {
        var reply = """{"STATUS":[{"STATUS":"F","When":1,"Code":99,"Msg":"Bug","Description":"x"}],"id":1}""";
        await using var server = new CannedServer(Encoding.UTF8.GetBytes(reply + "\0"));

        var e = await Assert.ThrowsAsync<MinerProtocolException>(() => new CgminerClient("127.0.0.1", server.Port).SendAsync("summary"));

        Assert.Equal(MinerErrorKind.ErrorStatus, e.Kind);
        Assert.Equal(99, e.StatusCode);
    }

    [Fact]
    public async Task Oversized_reply_is_rejected_at_the_limit()
    {
        var huge = Encoding.UTF8.GetBytes("{\"STATUS\":[{\"STATUS\":\"S\",\"Msg\":\"" + new string('x', 70 * 1024) + "\"}]}");
        await using var server = new CannedServer(huge, keepOpen: true);
        var client = new CgminerClient("127.0.0.1", server.Port);

        var e = await Assert.ThrowsAsync<MinerProtocolException>(() => client.SummaryAsync().WaitAsync(Bound));

        Assert.Equal(MinerErrorKind.ReplyTooLarge, e.Kind);
    }

    [Fact]
    public async Task Parameters_are_sent_as_the_JSON_parameter_member()
    {
        var reply = """{"STATUS":[{"STATUS":"S","When":1,"Code":7,"Msg":"ok","Description":"x"}],"id":1}""";
        await using var server = new CannedServer(Encoding.UTF8.GetBytes(reply + "\0"));

        var result = await new CgminerClient("127.0.0.1", server.Port).SendAsync("switchpool", "1");

        Assert.Equal("""{"command":"switchpool","parameter":"1"}""", server.Request);
        Assert.Equal(7, result.Status.Code);
        Assert.Equal(1, result.Id);
    }
}
