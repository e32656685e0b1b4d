using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using ComputeGrid.Energy.Miners;

namespace ComputeGrid.Simulation;

/// <summary>
/// Serves the cgminer-style JSON API for a fleet of virtual miners on 127.0.0.1, one TCP listener per miner on an
/// ephemeral port, as real miners each listen on their own address. Each virtual miner has a model, a power state
/// machine (sleep takes effect after <see cref="MinerFleetSimulatorOptions.SleepDelay"/>; wake-up boots for
/// <see cref="MinerFleetSimulatorOptions.BootDuration"/>, drawing power without hashing, then ramps), power targets
/// that scale hashrate within the model's limits, a temperature that follows power with a first-order lag, seeded
/// hashrate noise and shares that grow with the work done. An endpoint may stand for a rack of identical machines
/// (<see cref="VirtualMinerSpec.Machines"/>): it reports their total power and hashrate, and the temperature of one of
/// them, heated by that machine's own power (ambient + °C/kW × kW of ONE machine, lagged).
/// <para>
/// Only the miner physics read <see cref="Clock"/> (so a fake clock can be advanced over a ten-minute boot in no time);
/// socket I/O and request timeouts run on the wall clock and never wait on the simulated one, and
/// <see cref="MinerFault.Slow"/> delays on <see cref="MinerFleetSimulatorOptions.FaultClock"/> (the wall clock unless
/// a simulation gives its virtual I/O clock; <see cref="Held"/> then tells it when every request is held on purpose). Faults (<see cref="SetFault"/>) change how a miner's API behaves, not its physics.
/// </para>
/// </summary>
public sealed class MinerFleetSimulator : IAsyncDisposable
{
    private static readonly byte[] GarbageReply = Encoding.ASCII.GetBytes("\u0002\u0017HTTP/1.0 500 <html>not json</html>\r\n\u00ff\u00fe\0");

    private readonly MinerHost[] _hosts;
    private readonly MinerFleetSimulatorOptions _options;
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentDictionary<long, Task> _tasks = new();
    private long _nextTaskId;
    private long _connections;
    private int _disposed;

    private MinerFleetSimulator(IReadOnlyList<VirtualMinerSpec> miners, TimeProvider clock, MinerFleetSimulatorOptions options)
    {
        Clock = clock;
        _options = options;
        _hosts = new MinerHost[miners.Count];
        for (var i = 0; i < miners.Count; i++)
        {
            var spec = miners[i] ?? throw new ArgumentException($"Miner {i} is null.", nameof(miners));
            ArgumentNullException.ThrowIfNull(spec.Model, nameof(miners));
            if (!Enum.IsDefined(spec.Dialect)) throw new ArgumentException($"Miner {i} has an unknown dialect.", nameof(miners));
            if (spec.Machines is < 1 or > VirtualMinerSpec.MachinesMax)
                throw new ArgumentException($"Miner {i} stands for {spec.Machines} machines; 1 to {VirtualMinerSpec.MachinesMax} are allowed.", nameof(miners));
            _hosts[i] = new MinerHost(new VirtualMiner(i, spec, clock, options));
        }
    }

    /// <summary>Binds one listener per miner on 127.0.0.1 (ephemeral ports) and starts serving.</summary>
    /// <param name="miners">The virtual miners, in index order.</param>
    /// <param name="clock">The clock of the miner physics (the system clock or a fake one).</param>
    /// <param name="options">Physics and protocol settings; <see cref="MinerFleetSimulatorOptions.Default"/> when null.</param>
    /// <returns>The running simulator; dispose it to stop.</returns>
    public static MinerFleetSimulator Start(IEnumerable<VirtualMinerSpec> miners, TimeProvider clock, MinerFleetSimulatorOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(miners);
        ArgumentNullException.ThrowIfNull(clock);
        options ??= MinerFleetSimulatorOptions.Default;
        options.Validate();
        var list = miners.ToArray();
        if (list.Length == 0) throw new ArgumentException("The fleet needs at least one miner.", nameof(miners));

        var simulator = new MinerFleetSimulator(list, clock, options);
        try
        {
            foreach (var host in simulator._hosts)
                lock (host.Sync) simulator.Listen(host, 0);
        }
        catch
        {
            simulator._stop.Cancel();
            simulator.StopListeners();
            throw;
        }
        return simulator;
    }

    /// <summary>The clock the miner physics run on.</summary>
    public TimeProvider Clock { get; }

    /// <summary>The number of virtual miners.</summary>
    public int Count => _hosts.Length;

    /// <summary>Each miner's API endpoint (127.0.0.1 and its port), in index order. A refusing miner keeps its port.</summary>
    public IReadOnlyList<IPEndPoint> Endpoints => _hosts.Select(h => h.Endpoint!).ToArray();

    /// <summary>TCP connections accepted so far, all miners together.</summary>
    public long ConnectionsAccepted => Interlocked.Read(ref _connections);

    /// <summary>Fleet endpoints for a <see cref="FleetDriver"/>: each miner's address, dialect and machines, in the group <paramref name="groupOf"/> gives it.</summary>
    /// <param name="groupOf">The group of the miner with the given index.</param>
    public IReadOnlyList<MinerEndpoint> ToMinerEndpoints(Func<int, int> groupOf)
    {
        ArgumentNullException.ThrowIfNull(groupOf);
        return _hosts.Select((h, i) => new MinerEndpoint(h.Endpoint!.Address.ToString(), h.Endpoint.Port, groupOf(i), h.Miner.Dialect, h.Miner.Machines)).ToArray();
    }

    /// <summary>
    /// Requests miner <paramref name="index"/> holds on purpose right now: connections a silent miner keeps open, replies a
    /// slow one delays. A call in flight to a miner beyond these is one the miner will answer without any clock moving.
    /// </summary>
    public int Held(int index) => Volatile.Read(ref Host(index).HeldCount);

    /// <summary>The fault injected into a miner.</summary>
    public MinerFault GetFault(int index) => Host(index).Fault;

    /// <summary>
    /// Injects a fault into a miner's API (or clears it with <see cref="MinerFault.None"/>). Connections already open
    /// finish as they began. <see cref="MinerFault.Refuse"/> closes the port; leaving it reopens the same port.
    /// </summary>
    /// <param name="index">The miner.</param>
    /// <param name="fault">The fault.</param>
    public void SetFault(int index, MinerFault fault)
    {
        ArgumentNullException.ThrowIfNull(fault);
        var host = Host(index);
        lock (host.Sync)
        {
            ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
            var wasRefusing = host.Fault.Kind == MinerFaultKind.Refuse;
            var refuses = fault.Kind == MinerFaultKind.Refuse;
            if (refuses && !wasRefusing)
            {
                host.Listener?.Stop();
                host.Listener = null;
            }
            else if (!refuses && wasRefusing)
            {
                Listen(host, host.Endpoint!.Port);
            }
            host.Fault = fault;
        }
    }

    /// <summary>The true physical state of a miner now (simulator clock).</summary>
    public VirtualMinerSnapshot Inspect(int index)
    {
        var host = Host(index);
        return host.Miner.Inspect(host.Fault);
    }

    /// <summary>The true physical state of every miner now, in index order.</summary>
    public IReadOnlyList<VirtualMinerSnapshot> InspectAll() => _hosts.Select(h => h.Miner.Inspect(h.Fault)).ToArray();

    /// <summary>Stops every listener, closes open connections (silent ones included) and waits for them to finish.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        await _stop.CancelAsync().ConfigureAwait(false);
        StopListeners();
        while (true)
        {
            var pending = _tasks.Values.Where(t => !t.IsCompleted).ToArray();
            if (pending.Length == 0) break;
            await Task.WhenAll(pending).ConfigureAwait(false);
        }
        _stop.Dispose();
    }

    private MinerHost Host(int index)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, _hosts.Length);
        return _hosts[index];
    }

    private void StopListeners()
    {
        foreach (var host in _hosts)
        {
            lock (host.Sync)
            {
                host.Listener?.Stop();
                host.Listener = null;
            }
        }
    }

    /// <summary>Binds and starts a miner's listener; called under the host's lock.</summary>
    private void Listen(MinerHost host, int port)
    {
        var listener = new TcpListener(IPAddress.Loopback, port);
        try
        {
            // Rebinding a port after Refuse must not fail on connections still in TIME_WAIT.
            listener.Server.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
            listener.Start(backlog: 1024);
        }
        catch
        {
            listener.Stop();
            throw;
        }
        host.Listener = listener;
        host.Endpoint ??= (IPEndPoint)listener.LocalEndpoint;
        Track(AcceptLoopAsync(host, listener));
    }

    private void Track(Task task)
    {
        var id = Interlocked.Increment(ref _nextTaskId);
        _tasks[id] = task;
        task.ContinueWith(_ => _tasks.TryRemove(id, out Task? _), CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    private async Task AcceptLoopAsync(MinerHost host, TcpListener listener)
    {
        var stop = _stop.Token;
        while (!stop.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                socket = await listener.AcceptSocketAsync(stop).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException or InvalidOperationException)
            {
                return; // Stopped: disposal or Refuse.
            }

            Interlocked.Increment(ref _connections);
            Track(ServeAsync(host, socket, stop));
        }
    }

    private async Task ServeAsync(MinerHost host, Socket socket, CancellationToken stop)
    {
        using (socket)
        {
            try
            {
                socket.NoDelay = true;
                var fault = host.Fault;
                if (fault.Kind == MinerFaultKind.Silent)
                {
                    Interlocked.Increment(ref host.HeldCount);
                    try { await DrainUntilClosedAsync(socket, stop).ConfigureAwait(false); }
                    finally { Interlocked.Decrement(ref host.HeldCount); }
                    return;
                }

                var request = await ReadRequestAsync(socket, stop).ConfigureAwait(false);
                if (request is null) return;
                if (fault.Kind == MinerFaultKind.Slow)
                {
                    Interlocked.Increment(ref host.HeldCount);
                    try { await Task.Delay(fault.Delay, _options.FaultClock, stop).ConfigureAwait(false); }
                    finally { Interlocked.Decrement(ref host.HeldCount); }
                }

                var reply = fault.Kind == MinerFaultKind.Garbage ? GarbageReply : host.Miner.Handle(request);
                var sent = 0;
                while (sent < reply.Length)
                    sent += await socket.SendAsync(reply.AsMemory(sent), SocketFlags.None, stop).ConfigureAwait(false);
                socket.Shutdown(SocketShutdown.Send);
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                // The client went away, the request timed out, or the simulator is stopping.
            }
        }
    }

    /// <summary>A silent miner: holds the connection, reading and discarding, until the client closes it or the simulator stops.</summary>
    private static async Task DrainUntilClosedAsync(Socket socket, CancellationToken stop)
    {
        var buffer = new byte[1024];
        while (await socket.ReceiveAsync(buffer, SocketFlags.None, stop).ConfigureAwait(false) > 0)
        {
        }
    }

    /// <summary>Reads one request: a complete JSON value, or text up to a NUL, newline or the end of the stream.</summary>
    private async Task<byte[]?> ReadRequestAsync(Socket socket, CancellationToken stop)
    {
        using var timeout = new CancellationTokenSource(_options.RequestReadTimeout, TimeProvider.System);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(stop, timeout.Token);
        var buffer = new byte[_options.MaxRequestBytes];
        var total = 0;
        while (total < buffer.Length)
        {
            var read = await socket.ReceiveAsync(buffer.AsMemory(total), SocketFlags.None, linked.Token).ConfigureAwait(false);
            if (read == 0) break;
            total += read;
            if (IsCompleteRequest(buffer.AsSpan(0, total))) break;
        }

        if (total == 0) return null;
        var request = buffer.AsSpan(0, total);
        var nul = request.IndexOf((byte)0);
        return (nul >= 0 ? request[..nul] : request).ToArray();
    }

    private static bool IsCompleteRequest(ReadOnlySpan<byte> data)
    {
        if (data.IndexOf((byte)0) >= 0) return true;
        var trimmed = data.TrimStart(" \t\r\n"u8);
        if (trimmed.IsEmpty) return false;
        if (trimmed[0] != (byte)'{' && trimmed[0] != (byte)'[') return trimmed.IndexOf((byte)'\n') >= 0;
        var reader = new Utf8JsonReader(trimmed, isFinalBlock: false, state: default);
        try
        {
            return reader.Read() && reader.TrySkip();
        }
        catch (JsonException)
        {
            return true; // Malformed: answer with an error now rather than wait for more.
        }
    }

    private sealed class MinerHost(VirtualMiner miner)
    {
        public object Sync { get; } = new();
        public VirtualMiner Miner { get; } = miner;
        // Requests held on purpose by a fault (Held): a field, for Interlocked.
        public int HeldCount;
        public IPEndPoint? Endpoint { get; set; }
        public TcpListener? Listener { get; set; }
        public MinerFault Fault
        {
            get => Volatile.Read(ref _fault);
            set => Volatile.Write(ref _fault, value);
        }

        private MinerFault _fault = MinerFault.None;
    }
}
