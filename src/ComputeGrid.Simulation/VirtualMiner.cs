using System.Buffers;
using System.Globalization;
using System.Text.Encodings.Web;
using System.Text.Json;
using ComputeGrid.Energy.Miners;

namespace ComputeGrid.Simulation;

/// <summary>
/// One virtual miner endpoint: its power state machine and thermal and share physics, evaluated lazily at the simulator
/// clock's current time whenever it is asked something (no timers), and its cgminer-style API (request bytes in, reply
/// bytes out).
/// <para>
/// An endpoint stands for <see cref="Machines"/> identical machines commanded together (one machine, or a rack). The
/// state machine and the thermal model are those of ONE machine; the API reports the endpoint's totals (power, hashrate,
/// work, shares: machines × one machine's) and one machine's temperatures. The temperature model, per machine: the
/// target is <c>T* = AmbientC + TemperatureRisePerKilowatt × P</c>, with <c>P</c> that machine's own draw in kW, and
/// the temperature follows it with a first-order lag, <c>dT/dt = (T* − T) / ThermalTimeConstant</c>. With the defaults
/// (25 °C, 12 °C/kW) an S21 at 3.5 kW settles at 67 °C, a sleeping machine (15 W) at ambient, a booting one (a quarter
/// of its power) near 36 °C. It depends only on the simulator clock, never on the wall clock or the noise.
/// </para>
/// </summary>
internal sealed class VirtualMiner
{
    private static readonly JsonWriterOptions WriterOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
    private const double MaxIntegrationStepSeconds = 2;
    private const int MaxIntegrationSteps = 5000;

    private readonly object _sync = new();
    private readonly MinerFleetSimulatorOptions _options;
    private readonly TimeProvider _clock;
    private readonly Random _random;
    private readonly DateTimeOffset _startedAt;
    private readonly string _description;
    private readonly int _machines;

    private VirtualMinerPhase _phase;
    private DateTimeOffset _phaseStart;
    private VirtualMinerPhase _phaseBeforeSleep;
    private DateTimeOffset _phaseBeforeSleepStart;
    // Per machine: the draw and hashrate held until a sleep takes effect, and the power target.
    private double _pendingPower;
    private double _pendingHashrate;
    private double _targetWatts;
    private DateTimeOffset _lastUpdate;
    private double _temperature;
    private double _terahashes;
    private double _shares;
    private string? _session;
    private DateTimeOffset _sessionUsed;
    private int _controlCommands;
    private long _requests;

    public VirtualMiner(int index, VirtualMinerSpec spec, TimeProvider clock, MinerFleetSimulatorOptions options)
    {
        Index = index;
        Model = spec.Model;
        Dialect = spec.Dialect;
        _machines = spec.Machines;
        _options = options;
        _clock = clock;
        _random = new Random(DeriveSeed(options.Seed, index));
        _description = Dialect == MinerDialect.LuxOS ? "LUXminer (simulated)" : "BOSminer (simulated)";
        var now = clock.GetUtcNow();
        _startedAt = now;
        _lastUpdate = now;
        _phaseStart = now;
        _targetWatts = Model.Watts;
        _phase = spec.StartHashing ? VirtualMinerPhase.Hashing : VirtualMinerPhase.Sleeping;
        _temperature = SteadyTemperature(MachinePowerAt(now));
    }

    public int Index { get; }

    public MinerModel Model { get; }

    public MinerDialect Dialect { get; }

    /// <summary>How many identical machines the endpoint stands for.</summary>
    public int Machines => _machines;

    public VirtualMinerSnapshot Inspect(MinerFault fault)
    {
        var now = _clock.GetUtcNow();
        lock (_sync)
        {
            AdvanceTo(now);
            return new VirtualMinerSnapshot(Index, Model, Dialect, _phase, HashrateAt(now), PowerAt(now), _temperature,
                _targetWatts * _machines, Accepted, Rejected, _controlCommands, _requests, fault, _machines);
        }
    }

    /// <summary>Answers one request; the reply is a complete cgminer JSON reply (NUL-terminated when configured).</summary>
    public byte[] Handle(ReadOnlySpan<byte> request)
    {
        var now = _clock.GetUtcNow();
        lock (_sync)
        {
            _requests++;
            AdvanceTo(now);
            if (!TryParseRequest(request, out var command, out var parameter))
                return Reply(now, "E", 23, "Invalid JSON");
            return command switch
            {
                "summary" => Summary(now),
                "devs" or "edevs" => Devs(now),
                "pools" => Pools(now),
                "version" => Reply(now, "S", 22, "CGMiner versions", "VERSION", w =>
                {
                    w.WriteStartObject();
                    w.WriteString(Dialect == MinerDialect.LuxOS ? "LUXminer" : "BOSminer", "simulated");
                    w.WriteString("API", "3.7");
                    w.WriteString("Type", _machines == 1 ? Model.Name : $"{Model.Name} ×{_machines}");
                    w.WriteEndObject();
                }),
                _ => Dialect == MinerDialect.LuxOS ? LuxCommand(command, parameter, now) : BraiinsCommand(command, parameter, now),
            };
        }
    }

    // ---- physics -------------------------------------------------------------------------------------------------

    private long Accepted => (long)Math.Floor(_shares * (1 - _options.RejectFraction));

    private long Rejected => (long)Math.Floor(_shares * _options.RejectFraction);

    private double FullHashrate => Model.TerahashPerSecond * _targetWatts / Model.Watts;

    private double BootWatts => Math.Max(_options.IdleWatts, _targetWatts * _options.BootPowerFraction);

    /// <summary>The temperature one machine settles at while drawing <paramref name="machineWatts"/> (its own draw, not the endpoint's).</summary>
    private double SteadyTemperature(double machineWatts) => _options.AmbientC + machineWatts / 1000 * _options.TemperatureRisePerKilowatt;

    private DateTimeOffset? PhaseEnd() => _phase switch
    {
        VirtualMinerPhase.SleepPending => _phaseStart + _options.SleepDelay,
        VirtualMinerPhase.Booting => _phaseStart + _options.BootDuration,
        VirtualMinerPhase.Ramping => _phaseStart + _options.RampDuration,
        _ => null,
    };

    private double RampFraction(DateTimeOffset t) => _options.RampDuration <= TimeSpan.Zero
        ? 1
        : Math.Clamp((t - _phaseStart) / _options.RampDuration, 0, 1);

    /// <summary>The endpoint's power draw (all its machines), W.</summary>
    private double PowerAt(DateTimeOffset t) => _machines * MachinePowerAt(t);

    /// <summary>The endpoint's hashrate (all its machines), TH/s.</summary>
    private double HashrateAt(DateTimeOffset t) => _machines * MachineHashrateAt(t);

    /// <summary>One machine's power draw, W.</summary>
    private double MachinePowerAt(DateTimeOffset t) => _phase switch
    {
        VirtualMinerPhase.Hashing => _targetWatts,
        VirtualMinerPhase.SleepPending => _pendingPower,
        VirtualMinerPhase.Sleeping => _options.IdleWatts,
        VirtualMinerPhase.Booting => BootWatts,
        _ => BootWatts + (_targetWatts - BootWatts) * RampFraction(t),
    };

    /// <summary>One machine's hashrate, TH/s.</summary>
    private double MachineHashrateAt(DateTimeOffset t) => _phase switch
    {
        VirtualMinerPhase.Hashing => FullHashrate,
        VirtualMinerPhase.SleepPending => _pendingHashrate,
        VirtualMinerPhase.Ramping => FullHashrate * RampFraction(t),
        _ => 0,
    };

    /// <summary>Brings the state to <paramref name="now"/>: integrates temperature and work, and takes due phase transitions.</summary>
    private void AdvanceTo(DateTimeOffset now)
    {
        while (true)
        {
            if (PhaseEnd() is { } end && end <= now)
            {
                if (end > _lastUpdate)
                {
                    Integrate(_lastUpdate, end);
                    _lastUpdate = end;
                }
                _phase = _phase switch
                {
                    VirtualMinerPhase.SleepPending => VirtualMinerPhase.Sleeping,
                    VirtualMinerPhase.Booting => VirtualMinerPhase.Ramping,
                    _ => VirtualMinerPhase.Hashing,
                };
                _phaseStart = end;
                continue;
            }

            if (now > _lastUpdate)
            {
                Integrate(_lastUpdate, now);
                _lastUpdate = now;
            }
            return;
        }
    }

    /// <summary>Integrates within one phase: first-order thermal lag toward the steady temperature of the power drawn, work and shares.</summary>
    private void Integrate(DateTimeOffset from, DateTimeOffset to)
    {
        var span = (to - from).TotalSeconds;
        if (span <= 0) return;
        var steps = (int)Math.Clamp(Math.Ceiling(span / MaxIntegrationStepSeconds), 1, MaxIntegrationSteps);
        var dt = span / steps;
        var decay = Math.Exp(-dt / _options.ThermalTimeConstant.TotalSeconds);
        for (var i = 0; i < steps; i++)
        {
            var mid = from + TimeSpan.FromSeconds((i + 0.5) * dt);
            var steady = SteadyTemperature(MachinePowerAt(mid));
            _temperature = steady + (_temperature - steady) * decay;
            var work = HashrateAt(mid) * dt;
            _terahashes += work;
            _shares += work * _options.SharesPerTerahash;
        }
    }

    private double ReportedHashrate(DateTimeOffset now, double share = 1)
    {
        var h = HashrateAt(now) * share;
        return h <= 0 ? 0 : Math.Max(0, h * (1 + _options.HashrateNoise * Gaussian()));
    }

    private double Gaussian()
    {
        var u1 = 1.0 - _random.NextDouble();
        var u2 = _random.NextDouble();
        return Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
    }

    private bool Sleep(DateTimeOffset now)
    {
        _controlCommands++;
        if (_phase is VirtualMinerPhase.Sleeping or VirtualMinerPhase.SleepPending) return false;
        _pendingPower = MachinePowerAt(now);
        _pendingHashrate = MachineHashrateAt(now);
        _phaseBeforeSleep = _phase;
        _phaseBeforeSleepStart = _phaseStart;
        _phase = VirtualMinerPhase.SleepPending;
        _phaseStart = now;
        AdvanceTo(now);
        return true;
    }

    private bool Wake(DateTimeOffset now)
    {
        _controlCommands++;
        switch (_phase)
        {
            case VirtualMinerPhase.Sleeping:
                _phase = VirtualMinerPhase.Booting;
                _phaseStart = now;
                AdvanceTo(now);
                return true;
            case VirtualMinerPhase.SleepPending:
                // The sleep had not taken effect yet: cancel it.
                _phase = _phaseBeforeSleep;
                _phaseStart = _phaseBeforeSleepStart;
                AdvanceTo(now);
                return true;
            default:
                return false;
        }
    }

    /// <summary>Sets the endpoint's power target (all its machines, W), shared equally; returns the target applied, W.</summary>
    private double SetPowerTarget(double watts, DateTimeOffset now)
    {
        _controlCommands++;
        AdvanceTo(now);
        _targetWatts = Model.ClampPower(watts / _machines);
        return _targetWatts * _machines;
    }

    // ---- protocol ------------------------------------------------------------------------------------------------

    private byte[] LuxCommand(string command, string? parameter, DateTimeOffset now)
    {
        var sessionActive = _session is not null && now - _sessionUsed < _options.SessionTimeout;
        if (!sessionActive) _session = null;
        switch (command)
        {
            case "logon":
                if (sessionActive) return Reply(now, "E", 310, "Another session is active");
                _session = NewSessionId();
                _sessionUsed = now;
                return SessionReply(now, 316, "Session created", _session);
            case "session":
                return SessionReply(now, 319, "Session information", _session ?? "");
            case "logoff":
                if (!sessionActive || parameter != _session) return Reply(now, "E", 311, "Invalid session");
                _session = null;
                return Reply(now, "S", 317, "Session ended");
            case "power":
                return Reply(now, "S", 338, "Power", "POWER", w =>
                {
                    w.WriteStartObject();
                    w.WriteBoolean("PSU", _phase != VirtualMinerPhase.Sleeping);
                    w.WriteNumber("Watts", Math.Round(PowerAt(now)));
                    w.WriteEndObject();
                });
            case "profiles":
                return Reply(now, "S", 327, "Profiles", "PROFILES", w =>
                {
                    for (var f = Model.MinPowerFraction; f <= Model.MaxPowerFraction + 1e-9; f += 0.05)
                    {
                        var watts = Math.Round(Model.Watts * f * _machines);
                        w.WriteStartObject();
                        w.WriteString("Profile Name", watts.ToString(CultureInfo.InvariantCulture) + "W");
                        w.WriteNumber("Watts", watts);
                        w.WriteNumber("Hashrate", Math.Round(Model.TerahashPerSecond * watts / Model.Watts, 1));
                        w.WriteEndObject();
                    }
                });
            case "curtail":
            case "profileset":
            {
                var parts = (parameter ?? "").Split(',', 2, StringSplitOptions.TrimEntries);
                if (parts.Length != 2) return Reply(now, "E", 312, "Missing parameter: session_id,value");
                if (!sessionActive || parts[0] != _session) return Reply(now, "E", 311, "Invalid session");
                _sessionUsed = now;
                return command == "curtail" ? Curtail(parts[1], now) : ProfileSet(parts[1], now);
            }
            default:
                return Reply(now, "E", 14, "Invalid command");
        }
    }

    private byte[] Curtail(string action, DateTimeOffset now)
    {
        switch (action)
        {
            case "sleep":
                Sleep(now);
                break;
            case "wakeup":
                Wake(now);
                break;
            default:
                return Reply(now, "E", 336, "Invalid curtail action");
        }
        return Reply(now, "S", 335, "Curtailment command sent", "CURTAIL", w =>
        {
            w.WriteStartObject();
            w.WriteString("Action", action == "sleep" ? "sleep mode" : "wake up");
            w.WriteEndObject();
        });
    }

    private byte[] ProfileSet(string profile, DateTimeOffset now)
    {
        double? watts = profile switch
        {
            "default" => Model.Watts * _machines,
            _ when profile.EndsWith("kW", StringComparison.Ordinal) => Parse(profile[..^2]) * 1000,
            _ when profile.EndsWith("THs", StringComparison.Ordinal) => Parse(profile[..^3]) / Model.TerahashPerSecond * Model.Watts,
            _ when profile.EndsWith('W') => Parse(profile[..^1]),
            _ => null,
        };
        if (watts is not { } w || !double.IsFinite(w) || w <= 0) return Reply(now, "E", 322, "Unknown profile");
        var applied = SetPowerTarget(w, now);
        return Reply(now, "S", 321, "Profile Set", "PROFILE", writer =>
        {
            writer.WriteStartObject();
            writer.WriteNumber("Board", 0);
            writer.WriteNumber("FrequencyStep", 5);
            writer.WriteString("Profile", Math.Round(applied).ToString(CultureInfo.InvariantCulture) + "W");
            writer.WriteNumber("VoltageStep", 0.05);
            writer.WriteEndObject();
        });

        static double Parse(string s) =>
            double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) ? v : double.NaN;
    }

    private byte[] BraiinsCommand(string command, string? parameter, DateTimeOffset now)
    {
        if (command == "pause")
        {
            var changed = Sleep(now);
            return Reply(now, "S", 1000, changed ? "Mining paused" : "Mining already paused");
        }
        if (command == "resume")
        {
            var changed = Wake(now);
            return Reply(now, "S", 1001, changed ? "Mining resumed" : "Mining already running");
        }
        if (command == _options.BraiinsPowerTargetCommand)
        {
            if (!double.TryParse(parameter, NumberStyles.Float, CultureInfo.InvariantCulture, out var watts) || !double.IsFinite(watts) || watts <= 0)
                return Reply(now, "E", 1003, "Missing or invalid power target");
            var applied = SetPowerTarget(watts, now);
            return Reply(now, "S", 1002, "Power target set", "POWERTARGET", w =>
            {
                w.WriteStartObject();
                w.WriteNumber("PowerTarget", Math.Round(applied));
                w.WriteEndObject();
            });
        }
        return Reply(now, "E", 14, "Invalid command");
    }

    private byte[] Summary(DateTimeOffset now)
    {
        var elapsed = (long)(now - _startedAt).TotalSeconds;
        var accepted = Accepted;
        var rejected = Rejected;
        var minutes = Math.Max(elapsed / 60.0, 1.0 / 60);
        return Reply(now, "S", 11, "Summary", "SUMMARY", w =>
        {
            w.WriteStartObject();
            w.WriteNumber("Elapsed", elapsed);
            w.WriteNumber("MHS av", Math.Round(elapsed > 0 ? _terahashes / elapsed * 1e6 : 0, 2));
            w.WriteNumber("MHS 5s", Math.Round(ReportedHashrate(now) * 1e6, 2));
            w.WriteNumber("MHS 1m", Math.Round(HashrateAt(now) * 1e6, 2));
            w.WriteNumber("MHS 5m", Math.Round(HashrateAt(now) * 1e6, 2));
            w.WriteNumber("MHS 15m", Math.Round(HashrateAt(now) * 1e6, 2));
            w.WriteNumber("Found Blocks", 0);
            w.WriteNumber("Getworks", accepted + rejected);
            w.WriteNumber("Accepted", accepted);
            w.WriteNumber("Rejected", rejected);
            w.WriteNumber("Hardware Errors", 0);
            w.WriteNumber("Utility", Math.Round(accepted / minutes, 2));
            w.WriteNumber("Discarded", 0);
            w.WriteNumber("Stale", 0);
            w.WriteNumber("Get Failures", 0);
            w.WriteNumber("Remote Failures", 0);
            w.WriteNumber("Network Blocks", 0);
            w.WriteNumber("Total MH", Math.Round(_terahashes * 1e6));
            w.WriteNumber("Device Hardware%", 0);
            w.WriteNumber("Device Rejected%", Math.Round(_options.RejectFraction * 100, 4));
            w.WriteNumber("Pool Rejected%", Math.Round(_options.RejectFraction * 100, 4));
            w.WriteNumber("Pool Stale%", 0);
            w.WriteNumber("Last getwork", now.ToUnixTimeSeconds());
            w.WriteNumber("Power", Math.Round(PowerAt(now), 1));
            w.WriteEndObject();
        });
    }

    private byte[] Devs(DateTimeOffset now)
    {
        var boards = _options.BoardsPerMiner;
        var elapsed = (long)(now - _startedAt).TotalSeconds;
        var status = _phase switch
        {
            VirtualMinerPhase.Sleeping => "Disabled",
            VirtualMinerPhase.Booting => "Initialising",
            _ => "Alive",
        };
        return Reply(now, "S", 9, $"{boards} ASC(s)", "DEVS", w =>
        {
            for (var b = 0; b < boards; b++)
            {
                w.WriteStartObject();
                w.WriteNumber("ASC", b);
                w.WriteString("Name", Model.Name);
                w.WriteNumber("ID", b);
                w.WriteString("Enabled", _phase == VirtualMinerPhase.Sleeping ? "N" : "Y");
                w.WriteString("Status", status);
                w.WriteNumber("Temperature", Math.Round(BoardTemperature(b, boards), 1));
                w.WriteNumber("MHS av", Math.Round(elapsed > 0 ? _terahashes / elapsed / boards * 1e6 : 0, 2));
                w.WriteNumber("MHS 5s", Math.Round(ReportedHashrate(now, 1.0 / boards) * 1e6, 2));
                w.WriteNumber("Accepted", Accepted / boards);
                w.WriteNumber("Rejected", Rejected / boards);
                w.WriteNumber("Hardware Errors", 0);
                w.WriteNumber("Last Share Pool", 0);
                w.WriteNumber("Device Elapsed", elapsed);
                w.WriteEndObject();
            }
        });
    }

    /// <summary>
    /// One board's temperature, °C: the machine's, spread ±4 % of its rise above ambient across the boards (the middle
    /// board reads the machine's), so a hot machine's boards differ by a degree or two and no board reads below ambient.
    /// On a rack endpoint, board <paramref name="board"/> stands for that board position of every machine (identical).
    /// </summary>
    private double BoardTemperature(int board, int boards) =>
        _temperature + (_temperature - _options.AmbientC) * 0.04 * (board - (boards - 1) / 2.0);

    private byte[] Pools(DateTimeOffset now) => Reply(now, "S", 7, "1 Pool(s)", "POOLS", w =>
    {
        w.WriteStartObject();
        w.WriteNumber("POOL", 0);
        w.WriteString("URL", "stratum+tcp://pool.sim.invalid:3333");
        w.WriteString("Status", "Alive");
        w.WriteNumber("Priority", 0);
        w.WriteNumber("Quota", 1);
        w.WriteString("Long Poll", "N");
        w.WriteNumber("Getworks", Accepted + Rejected);
        w.WriteNumber("Accepted", Accepted);
        w.WriteNumber("Rejected", Rejected);
        w.WriteNumber("Stale", 0);
        w.WriteString("User", $"computegrid.{Model.Name}-{Index}");
        w.WriteBoolean("Stratum Active", true);
        w.WriteString("Stratum URL", "pool.sim.invalid");
        w.WriteEndObject();
    });

    private byte[] SessionReply(DateTimeOffset now, int code, string msg, string sessionId) =>
        Reply(now, "S", code, msg, "SESSION", w =>
        {
            w.WriteStartObject();
            w.WriteString("SessionID", sessionId);
            w.WriteEndObject();
        });

    private string NewSessionId()
    {
        const string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        Span<char> id = stackalloc char[8];
        for (var i = 0; i < id.Length; i++) id[i] = alphabet[_random.Next(alphabet.Length)];
        return new string(id);
    }

    private byte[] Reply(DateTimeOffset now, string status, int code, string msg, string? section = null, Action<Utf8JsonWriter>? writeItems = null)
    {
        var buffer = new ArrayBufferWriter<byte>(512);
        using (var w = new Utf8JsonWriter(buffer, WriterOptions))
        {
            w.WriteStartObject();
            w.WriteStartArray("STATUS");
            w.WriteStartObject();
            w.WriteString("STATUS", status);
            w.WriteNumber("When", now.ToUnixTimeSeconds());
            w.WriteNumber("Code", code);
            w.WriteString("Msg", msg);
            w.WriteString("Description", _description);
            w.WriteEndObject();
            w.WriteEndArray();
            if (section is not null && writeItems is not null)
            {
                w.WriteStartArray(section);
                writeItems(w);
                w.WriteEndArray();
            }
            w.WriteNumber("id", 1);
            w.WriteEndObject();
        }
        if (_options.NulTerminateReplies) buffer.Write([(byte)0]);
        return buffer.WrittenSpan.ToArray();
    }

    private static bool TryParseRequest(ReadOnlySpan<byte> request, out string command, out string? parameter)
    {
        command = "";
        parameter = null;
        try
        {
            using var document = JsonDocument.Parse(request.ToArray());
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("command", out var c)
                || c.ValueKind != JsonValueKind.String || string.IsNullOrWhiteSpace(c.GetString()))
                return false;
            command = c.GetString()!;
            if (root.TryGetProperty("parameter", out var p))
            {
                parameter = p.ValueKind switch
                {
                    JsonValueKind.String => p.GetString(),
                    JsonValueKind.Number => p.GetRawText(),
                    JsonValueKind.Null => null,
                    _ => throw new JsonException("parameter must be a string or a number"),
                };
            }
            return true;
        }
        catch (JsonException)
        {
            return false;
        }
    }

    private static int DeriveSeed(int seed, int index)
    {
        var z = unchecked((ulong)(uint)seed << 32 | (uint)index) + 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return (int)((z ^ (z >> 31)) & int.MaxValue);
    }
}
