using System.Net;
using System.Net.Sockets;
using ComputeGrid.Energy.Miners;
using ComputeGrid.Simulation;
using Microsoft.Extensions.Time.Testing;

namespace ComputeGrid.Energy.Tests.Miners;

/// <summary>Shared models, clocks and builders for the miner tests.</summary>
internal static class MinerTestSupport
{
    public static readonly DateTimeOffset Start = new(2025, 1, 1, 0, 0, 0, TimeSpan.Zero);

    /// <summary>200 TH/s at 3500 W.</summary>
    public static readonly MinerModel S21 = new("S21", 200, 3500);

    /// <summary>140 TH/s at 3010 W.</summary>
    public static readonly MinerModel S19XP = new("S19XP", 140, 3010);

    /// <summary>A generous wall-clock bound for operations that must finish (not a benchmark).</summary>
    public static readonly TimeSpan Bound = TimeSpan.FromSeconds(10);

    /// <summary>The miner tests open many sockets and use wall-clock timeouts: they run one class at a time.</summary>
    public const string Collection = "Miners";

    public static FakeTimeProvider NewClock() => new(Start);

    public static MinerFleetSimulator StartOne(TimeProvider clock, MinerDialect dialect, bool hashing = true, MinerFleetSimulatorOptions? options = null) =>
        MinerFleetSimulator.Start([new VirtualMinerSpec(S21, dialect, hashing)], clock, options);

    public static CgminerClient Client(MinerFleetSimulator simulator, int index = 0, MinerDialect? dialect = null, TimeSpan? timeout = null)
    {
        var endpoint = simulator.Endpoints[index];
        return new CgminerClient(endpoint.Address.ToString(), endpoint.Port, dialect ?? simulator.Inspect(index).Dialect,
            new CgminerClientOptions { CallTimeout = timeout ?? TimeSpan.FromSeconds(5) });
    }

    /// <summary>Two groups of <paramref name="perGroup"/>: group 0 LuxOS S21s, group 1 Braiins S19 XPs.</summary>
    public static (MinerFleetSimulator Simulator, FleetDriver Driver) TwoGroupFleet(
        FakeTimeProvider clock, int perGroup, bool hashing = true, int seed = 7, FleetDriverOptions? driverOptions = null)
    {
        var specs = Enumerable.Range(0, 2 * perGroup)
            .Select(i => i < perGroup
                ? new VirtualMinerSpec(S21, MinerDialect.LuxOS, hashing)
                : new VirtualMinerSpec(S19XP, MinerDialect.Braiins, hashing))
            .ToArray();
        var simulator = MinerFleetSimulator.Start(specs, clock, new MinerFleetSimulatorOptions { Seed = seed });
        var driver = new FleetDriver(simulator.ToMinerEndpoints(i => i < perGroup ? 0 : 1), clock, driverOptions ?? FastDriver(seed));
        return (simulator, driver);
    }

    /// <summary>
    /// Driver options for tests: two attempts with a timeout generous enough that a healthy miner on a loaded build machine
    /// never misses both, yet short enough that a silent miner costs a few seconds.
    /// </summary>
    public static FleetDriverOptions FastDriver(int seed = 7) => new()
    {
        CommandTimeout = TimeSpan.FromSeconds(2.5),
        MaxAttempts = 2,
        RetryBackoff = TimeSpan.FromMilliseconds(20),
        MaxRetryBackoff = TimeSpan.FromMilliseconds(100),
        Seed = seed,
    };

    /// <summary>A one-connection server that answers the first request with fixed bytes, for malformed-reply tests.</summary>
    public sealed class CannedServer : IAsyncDisposable
    {
        private readonly TcpListener _listener;
        private readonly Task _serve;
        private readonly CancellationTokenSource _stop = new();

        public CannedServer(byte[] reply, bool keepOpen = false)
        {
            _listener = new TcpListener(IPAddress.Loopback, 0);
            _listener.Start();
            Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
            _serve = ServeAsync(reply, keepOpen);
        }

        public int Port { get; }

        public string? Request { get; private set; }

        private async Task ServeAsync(byte[] reply, bool keepOpen)
        {
            try
            {
                using var socket = await _listener.AcceptSocketAsync(_stop.Token);
                var buffer = new byte[4096];
                var read = await socket.ReceiveAsync(buffer, SocketFlags.None, _stop.Token);
                Request = System.Text.Encoding.UTF8.GetString(buffer, 0, read);
                var sent = 0;
                while (sent < reply.Length) sent += await socket.SendAsync(reply.AsMemory(sent), SocketFlags.None, _stop.Token);
                if (keepOpen) await Task.Delay(Timeout.Infinite, _stop.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException)
            {
            }
        }

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            _listener.Stop();
            await _serve;
            _stop.Dispose();
        }
    }
}
