using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;

namespace ComputeGrid.Energy.Miners;

/// <summary>Settings for <see cref="CgminerClient"/>.</summary>
public sealed record CgminerClientOptions
{
    /// <summary>The default options.</summary>
    public static CgminerClientOptions Default { get; } = new();

    /// <summary>
    /// How long one exchange (connect, send, read the reply) may take before it fails with
    /// <see cref="MinerErrorKind.Timeout"/>; <see cref="Timeout.InfiniteTimeSpan"/> for none. Default 5 s.
    /// </summary>
    public TimeSpan CallTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>The largest reply accepted; a longer one fails with <see cref="MinerErrorKind.ReplyTooLarge"/>. Default 64 KiB.</summary>
    public int MaxReplyBytes { get; init; } = 64 * 1024;

    /// <summary>
    /// The clock the <see cref="CallTimeout"/> runs on. Network deadlines are wall-clock deadlines, so this is the system
    /// clock unless a test wants otherwise; it is deliberately separate from any simulated clock.
    /// </summary>
    public TimeProvider TimeoutClock { get; init; } = TimeProvider.System;

    /// <summary>
    /// The socket command a <see cref="MinerDialect.Braiins"/> miner is sent to set a power target, with the watts as its
    /// parameter. Braiins OS sets power targets through its gRPC API (PerformanceService.SetPowerTarget); its
    /// cgminer-compatible socket API has no documented equivalent, so this names the command a gateway or simulator
    /// serves. Default <c>powertarget</c>.
    /// </summary>
    public string BraiinsPowerTargetCommand { get; init; } = "powertarget";

    internal void Validate()
    {
        if (CallTimeout != Timeout.InfiniteTimeSpan && CallTimeout <= TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(CallTimeout), "The call timeout must be positive or infinite.");
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxReplyBytes, 64, nameof(MaxReplyBytes));
        ArgumentNullException.ThrowIfNull(TimeoutClock, nameof(TimeoutClock));
        ArgumentException.ThrowIfNullOrWhiteSpace(BraiinsPowerTargetCommand, nameof(BraiinsPowerTargetCommand));
    }
}

/// <summary>
/// A client for the cgminer-style JSON API miners serve on TCP port 4028 (cgminer, bmminer, LuxOS LUXminer,
/// Braiins OS BOSminer). Each call opens a connection, writes one JSON request, reads one JSON reply (terminated by a
/// NUL byte or by the miner closing the connection) and closes the connection. The client holds no connection state
/// and is safe to use from many threads at once.
/// </summary>
public sealed class CgminerClient
{
    /// <summary>The port cgminer-compatible APIs listen on by default.</summary>
    public const int DefaultPort = 4028;

    private readonly CgminerClientOptions _options;

    /// <summary>Creates a client for one miner.</summary>
    /// <param name="host">IP address or host name of the miner.</param>
    /// <param name="port">The API port.</param>
    /// <param name="dialect">Which control commands the miner understands.</param>
    /// <param name="options">Timeouts and limits; <see cref="CgminerClientOptions.Default"/> when null.</param>
    public CgminerClient(string host, int port = DefaultPort, MinerDialect dialect = MinerDialect.LuxOS, CgminerClientOptions? options = null)
        : this(new MinerEndpoint(host, port, 0, dialect), options)
    {
    }

    /// <summary>Creates a client for one miner endpoint.</summary>
    /// <param name="endpoint">Where the miner listens and its dialect.</param>
    /// <param name="options">Timeouts and limits; <see cref="CgminerClientOptions.Default"/> when null.</param>
    public CgminerClient(MinerEndpoint endpoint, CgminerClientOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        _options = options ?? CgminerClientOptions.Default;
        _options.Validate();
        Endpoint = endpoint;
    }

    /// <summary>The miner this client talks to.</summary>
    public MinerEndpoint Endpoint { get; }

    /// <summary>The miner's control dialect.</summary>
    public MinerDialect Dialect => Endpoint.Dialect;

    /// <summary>Sends one command and returns the validated reply.</summary>
    /// <param name="command">The API command, e.g. <c>summary</c>.</param>
    /// <param name="parameter">The command's parameter, or null.</param>
    /// <param name="cancellationToken">Cancels the call (it also ends after <see cref="CgminerClientOptions.CallTimeout"/>).</param>
    /// <exception cref="MinerProtocolException">The call failed; <see cref="MinerProtocolException.Kind"/> says why.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled.</exception>
    public Task<CgminerReply> SendAsync(string command, string? parameter = null, CancellationToken cancellationToken = default) =>
        SendAsync(new CgminerRequest(command, parameter), cancellationToken);

    /// <summary>Sends one request and returns the validated reply.</summary>
    /// <param name="request">The request.</param>
    /// <param name="cancellationToken">Cancels the call (it also ends after <see cref="CgminerClientOptions.CallTimeout"/>).</param>
    /// <exception cref="MinerProtocolException">The call failed; <see cref="MinerProtocolException.Kind"/> says why.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled.</exception>
    public async Task<CgminerReply> SendAsync(CgminerRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        var bytes = await ExchangeAsync(request, cancellationToken).ConfigureAwait(false);
        return CgminerReply.Parse(bytes, request.Command);
    }

    /// <summary>Reads <c>summary</c>: hashrate, uptime, shares and, when the firmware reports them, power and temperature.</summary>
    /// <exception cref="MinerProtocolException">The call failed or the reply lacks a required field.</exception>
    public async Task<MinerSummary> SummaryAsync(CancellationToken cancellationToken = default)
    {
        const string command = "summary";
        var reply = await SendAsync(command, null, cancellationToken).ConfigureAwait(false);
        var s = reply.GetFirst("SUMMARY");
        var current = CgminerFields.HashrateThs(s, "5s", command);
        var average = CgminerFields.HashrateThs(s, "av", command);
        if (current is null && average is null) throw CgminerReply.Invalid(command, "no hashrate field (MHS/GHS/THS 5s or av)");
        return new MinerSummary(
            HashrateThs: current ?? average!.Value,
            AverageHashrateThs: average ?? current!.Value,
            ElapsedSeconds: CgminerFields.RequiredLong(s, "Elapsed", command),
            Accepted: CgminerFields.RequiredLong(s, "Accepted", command),
            Rejected: CgminerFields.RequiredLong(s, "Rejected", command),
            HardwareErrors: CgminerFields.OptionalLong(s, "Hardware Errors", command),
            PowerWatts: CgminerFields.OptionalDouble(s, "Power", command) ?? CgminerFields.OptionalDouble(s, "Watts", command),
            TemperatureC: CgminerFields.OptionalDouble(s, "Temperature", command),
            When: DateTimeOffset.FromUnixTimeSeconds(reply.Status.When));
    }

    /// <summary>Reads <c>devs</c>: one entry per hashboard with its status, temperature and hashrate.</summary>
    /// <exception cref="MinerProtocolException">The call failed or an entry is malformed.</exception>
    public async Task<IReadOnlyList<MinerDevice>> DevsAsync(CancellationToken cancellationToken = default)
    {
        const string command = "devs";
        var reply = await SendAsync(command, null, cancellationToken).ConfigureAwait(false);
        if (!reply.TryGetSection("DEVS", out var devs)) return [];
        var list = new List<MinerDevice>(devs.GetArrayLength());
        var position = 0;
        foreach (var d in devs.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Object) throw CgminerReply.Invalid(command, "a DEVS entry is not an object");
            var index = CgminerFields.OptionalLong(d, "ASC", command) ?? CgminerFields.OptionalLong(d, "PGA", command)
                        ?? CgminerFields.OptionalLong(d, "GPU", command) ?? CgminerFields.OptionalLong(d, "ID", command) ?? position;
            list.Add(new MinerDevice(
                Index: (int)index,
                Name: CgminerFields.OptionalString(d, "Name", command),
                Enabled: CgminerFields.OptionalBool(d, "Enabled", command) ?? true,
                Status: CgminerFields.OptionalString(d, "Status", command) ?? "Unknown",
                TemperatureC: CgminerFields.OptionalDouble(d, "Temperature", command),
                HashrateThs: CgminerFields.HashrateThs(d, "5s", command) ?? CgminerFields.HashrateThs(d, "av", command)
                             ?? throw CgminerReply.Invalid(command, "a DEVS entry has no hashrate"),
                Accepted: CgminerFields.OptionalLong(d, "Accepted", command) ?? 0,
                Rejected: CgminerFields.OptionalLong(d, "Rejected", command) ?? 0));
            position++;
        }
        return list;
    }

    /// <summary>Reads <c>pools</c>: the configured pools with URL, status and worker name.</summary>
    /// <exception cref="MinerProtocolException">The call failed or an entry is malformed.</exception>
    public async Task<IReadOnlyList<MinerPool>> PoolsAsync(CancellationToken cancellationToken = default)
    {
        const string command = "pools";
        var reply = await SendAsync(command, null, cancellationToken).ConfigureAwait(false);
        if (!reply.TryGetSection("POOLS", out var pools)) return [];
        var list = new List<MinerPool>(pools.GetArrayLength());
        var position = 0;
        foreach (var p in pools.EnumerateArray())
        {
            if (p.ValueKind != JsonValueKind.Object) throw CgminerReply.Invalid(command, "a POOLS entry is not an object");
            list.Add(new MinerPool(
                Index: (int)(CgminerFields.OptionalLong(p, "POOL", command) ?? position),
                Url: CgminerFields.OptionalString(p, "URL", command) ?? throw CgminerReply.Invalid(command, "a POOLS entry has no URL"),
                Status: CgminerFields.OptionalString(p, "Status", command) ?? "Unknown",
                User: CgminerFields.OptionalString(p, "User", command) ?? "",
                Priority: (int)(CgminerFields.OptionalLong(p, "Priority", command) ?? position),
                Accepted: CgminerFields.OptionalLong(p, "Accepted", command) ?? 0,
                Rejected: CgminerFields.OptionalLong(p, "Rejected", command) ?? 0,
                StratumActive: CgminerFields.OptionalBool(p, "Stratum Active", command)));
            position++;
        }
        return list;
    }

    /// <summary>
    /// Puts the miner to sleep: LuxOS <c>curtail</c> <c>&lt;session&gt;,sleep</c> (hashboards and PSU off) or
    /// Braiins <c>pause</c>. The miner acknowledges at once; the power drop follows within seconds.
    /// </summary>
    /// <exception cref="MinerProtocolException">The command failed.</exception>
    public Task SleepAsync(CancellationToken cancellationToken = default) => Dialect switch
    {
        MinerDialect.LuxOS => SendWithLuxSessionAsync("curtail", "sleep", cancellationToken),
        _ => SendAsync("pause", null, cancellationToken),
    };

    /// <summary>
    /// Wakes the miner: LuxOS <c>curtail</c> <c>&lt;session&gt;,wakeup</c> or Braiins <c>resume</c>. The miner then boots
    /// its hashboards, drawing power before it hashes.
    /// </summary>
    /// <exception cref="MinerProtocolException">The command failed.</exception>
    public Task WakeAsync(CancellationToken cancellationToken = default) => Dialect switch
    {
        MinerDialect.LuxOS => SendWithLuxSessionAsync("curtail", "wakeup", cancellationToken),
        _ => SendAsync("resume", null, cancellationToken),
    };

    /// <summary>
    /// Sets a power target: LuxOS <c>profileset</c> with the power selector <c>&lt;session&gt;,&lt;watts&gt;W</c> (the miner picks
    /// its profile for that power), or, for Braiins, <see cref="CgminerClientOptions.BraiinsPowerTargetCommand"/> with the watts.
    /// </summary>
    /// <param name="watts">The target power in watts.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <exception cref="MinerProtocolException">The command failed.</exception>
    public Task SetPowerTargetAsync(int watts, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(watts);
        var w = watts.ToString(CultureInfo.InvariantCulture);
        return Dialect switch
        {
            MinerDialect.LuxOS => SendWithLuxSessionAsync("profileset", w + "W", cancellationToken),
            _ => SendAsync(_options.BraiinsPowerTargetCommand, w, cancellationToken),
        };
    }

    /// <summary>
    /// Runs one LuxOS command that needs a session: <c>logon</c> (or, when another session is active, the one
    /// <c>session</c> reports, as LuxOS sessions are cooperative), the command with <c>&lt;session&gt;,&lt;argument&gt;</c>,
    /// then <c>logoff</c>.
    /// </summary>
    private async Task SendWithLuxSessionAsync(string command, string argument, CancellationToken cancellationToken)
    {
        var session = await AcquireLuxSessionAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await SendAsync(command, session + "," + argument, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            // Best effort: an unreleased session expires on the miner after a minute, and the next caller adopts it.
            if (!cancellationToken.IsCancellationRequested)
            {
                try
                {
                    await SendAsync("logoff", session, cancellationToken).ConfigureAwait(false);
                }
                catch (MinerProtocolException)
                {
                }
                catch (OperationCanceledException)
                {
                    // The command itself completed; the caller sees its cancellation at its next await.
                }
            }
        }
    }

    private async Task<string> AcquireLuxSessionAsync(CancellationToken cancellationToken)
    {
        try
        {
            var logon = await SendAsync("logon", null, cancellationToken).ConfigureAwait(false);
            return ReadSessionId(logon) is { Length: > 0 } id ? id : throw CgminerReply.Invalid("logon", "empty SessionID");
        }
        catch (MinerProtocolException e) when (e.Kind == MinerErrorKind.ErrorStatus)
        {
            var active = await SendAsync("session", null, cancellationToken).ConfigureAwait(false);
            if (ReadSessionId(active) is { Length: > 0 } id) return id;
            throw;
        }
    }

    private static string? ReadSessionId(CgminerReply reply) =>
        CgminerFields.OptionalString(reply.GetFirst("SESSION"), "SessionID", reply.Command);

    private async Task<byte[]> ExchangeAsync(CgminerRequest request, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        using var timeout = new CancellationTokenSource(_options.CallTimeout, _options.TimeoutClock);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeout.Token);
        var token = linked.Token;
        var payload = request.ToUtf8Json();
        var stage = "connect";
        try
        {
            using var socket = await ConnectAsync(token).ConfigureAwait(false);
            stage = "send";
            var sent = 0;
            while (sent < payload.Length)
                sent += await socket.SendAsync(payload.AsMemory(sent), SocketFlags.None, token).ConfigureAwait(false);
            stage = "receive";
            return await ReceiveReplyAsync(socket, request.Command, token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new MinerProtocolException(MinerErrorKind.Timeout,
                $"Miner {Endpoint} did not answer '{request.Command}' within {_options.CallTimeout.TotalMilliseconds:0} ms ({stage}).",
                request.Command);
        }
        catch (SocketException e)
        {
            throw new MinerProtocolException(MinerErrorKind.ConnectionFailed,
                $"Miner {Endpoint}: {stage} failed for '{request.Command}': {e.SocketErrorCode}.", request.Command, innerException: e);
        }
    }

    private async Task<Socket> ConnectAsync(CancellationToken token)
    {
        Socket socket;
        EndPoint remote;
        if (IPAddress.TryParse(Endpoint.Host, out var address))
        {
            socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            remote = new IPEndPoint(address, Endpoint.Port);
        }
        else
        {
            socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
            remote = new DnsEndPoint(Endpoint.Host, Endpoint.Port);
        }

        try
        {
            socket.NoDelay = true;
            await socket.ConnectAsync(remote, token).ConfigureAwait(false);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>Reads until the NUL terminator or the end of the stream, never more than the reply limit.</summary>
    private async Task<byte[]> ReceiveReplyAsync(Socket socket, string command, CancellationToken token)
    {
        var limit = _options.MaxReplyBytes;
        var buffer = new byte[Math.Min(limit + 1, 4096)];
        var total = 0;
        while (true)
        {
            if (total == buffer.Length)
            {
                if (buffer.Length > limit) throw TooLarge(command, limit);
                Array.Resize(ref buffer, (int)Math.Min((long)buffer.Length * 2, limit + 1L));
            }

            var read = await socket.ReceiveAsync(buffer.AsMemory(total), SocketFlags.None, token).ConfigureAwait(false);
            if (read == 0) break;
            var nul = buffer.AsSpan(total, read).IndexOf((byte)0);
            total += nul >= 0 ? nul : read;
            if (total > limit) throw TooLarge(command, limit);
            if (nul >= 0) break;
        }

        return buffer.AsSpan(0, total).ToArray();
    }

    private MinerProtocolException TooLarge(string command, int limit) =>
        new(MinerErrorKind.ReplyTooLarge, $"Miner {Endpoint}: the reply to '{command}' exceeds {limit} bytes.", command);
}
