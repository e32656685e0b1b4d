using System.Text.Json;
using ComputeGrid.Core;
using ComputeGrid.Inference.Reports;

namespace ComputeGrid.Inference.Nodes;

// The node's epoch reports: it meters itself per epoch of the server's clock (uptime, utilization, energy, from each
// heartbeat interval), and once an epoch has ended it takes the server's ledger statement of it (its receipts summed:
// paid requests, tokens, revenue, shares), signs the report chained to its last accepted one and publishes it.
public sealed partial class NodeAgent
{
    /// <summary>The most epochs one round catches up on (a node back after a long absence reports the rest later).</summary>
    public const int EpochsPerRoundMax = 24;

    private EpochMeter? _meter;
    private long _meterLastNs;
    private long _refusedEpoch = -1, _refusedDuring = -1;

    /// <summary>What the node measured about itself per epoch (null until the server told it the epoch length).</summary>
    public EpochMeter? EpochMeter => Volatile.Read(ref _meter);

    // Called by each heartbeat with the interval since the last one.
    private void MeterEpoch(double seconds, double watts, double utilization, bool measured)
    {
        long now = ApiTime.Of(DateTimeOffset.UtcNow).UnixNanoseconds;
        long from = _meterLastNs > 0 ? _meterLastNs : now - (long)(seconds * 1e9);
        _meterLastNs = now;
        Volatile.Read(ref _meter)?.Add(from, now, watts, utilization, measured);
    }

    private async Task EpochReportsLoopAsync(CancellationToken ct)
    {
        string? state = null;
        while (!ct.IsCancellationRequested)
        {
            string next;
            try
            {
                // The meter starts as soon as the epoch length is known; the first round comes an interval later.
                if (Volatile.Read(ref _meter) is null)
                {
                    await EpochClockAsync(ct).ConfigureAwait(false);
                    next = state ?? "epoch reports: metering";
                    if (next != state) Log($"{next} (epochs of {_meter!.EpochNs / 1_000_000_000} s)");
                    state = next;
                    await Task.Delay(_options.EpochReportCheckInterval, ct).ConfigureAwait(false);
                    continue;
                }
                int published = await PublishEpochReportsAsync(ct).ConfigureAwait(false);
                next = published > 0 ? $"epoch reports ok ({published} published)" : state ?? "epoch reports ok";
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested) { return; }
            catch (Exception e) when (e is HttpRequestException or IOException or JsonException or InvalidOperationException or OperationCanceledException)
            {
                next = $"epoch reports failing ({e.Message})";
            }
            if (next != state) Log(next);
            state = next;
            try { await Task.Delay(_options.EpochReportCheckInterval, ct).ConfigureAwait(false); }
            catch (OperationCanceledException) { return; }
        }
    }

    /// <summary>
    /// Publishes a signed report for every ended epoch after the node's last accepted one (its first report covers the
    /// last ended epoch), at most <see cref="EpochsPerRoundMax"/>; returns how many were accepted. A refused report is
    /// logged with the server's reason and not sent again until another epoch has ended (the server flags each refusal).
    /// </summary>
    /// <exception cref="HttpRequestException">The server could not be reached or answered an error.</exception>
    public async Task<int> PublishEpochReportsAsync(CancellationToken ct = default)
    {
        Session session = _session ?? throw new InvalidOperationException("The node is not registered.");
        (EpochClock clock, EpochMeter meter) = await EpochClockAsync(ct).ConfigureAwait(false);
        long first = clock.LastEpoch is long last ? last + 1 : clock.CurrentEpoch - 1;
        string previous = clock.LastHash;
        int published = 0;
        for (long epoch = Math.Max(0, first); epoch < clock.CurrentEpoch && published < EpochsPerRoundMax; epoch++)
        {
            if (epoch == _refusedEpoch && clock.CurrentEpoch == _refusedDuring) break;
            EpochStatement statement = await GetAsync<EpochStatement>($"node/v1/epochs/{epoch}", session, ct).ConfigureAwait(false);
            EpochReport report = EpochReportBuilder.Build(NodeId, _options.Gpus, statement, meter.Of(epoch, measuredWhenDown: _nvidiaSmi is not null), previous, _privateKey);
            using var request = NewRequest(HttpMethod.Post, "node/v1/epoch-reports", session.Token, JsonBody(report));
            using var response = await _http.SendAsync(request, ct).ConfigureAwait(false);
            if (!response.IsSuccessStatusCode)
            {
                (_refusedEpoch, _refusedDuring) = (epoch, clock.CurrentEpoch);
                Log($"epoch report {epoch} refused ({(int)response.StatusCode}): {await DetailAsync(response, ct).ConfigureAwait(false)}");
                break;
            }
            Log($"epoch report {epoch} accepted: {report.Requests} requests, {report.Tokens} tokens, {report.RevenueMicroUsd} micro-USD, " +
                $"{report.EnergyJoules} J {report.EnergySource}, up {report.UptimeSeconds} s");
            previous = report.Hash;
            published++;
        }
        return published;
    }

    /// <summary>The server's epoch clock and this node's chain head; starts (or restarts, when the length changed) the epoch meter.</summary>
    public async Task<(EpochClock Clock, EpochMeter Meter)> EpochClockAsync(CancellationToken ct = default)
    {
        Session session = _session ?? throw new InvalidOperationException("The node is not registered.");
        EpochClock clock = await GetAsync<EpochClock>("node/v1/epochs", session, ct).ConfigureAwait(false);
        long epochNs = checked(clock.EpochSeconds * 1_000_000_000);
        if (Volatile.Read(ref _meter) is not { } meter || meter.EpochNs != epochNs)
        {
            meter = new EpochMeter(epochNs);
            Volatile.Write(ref _meter, meter);
        }
        return (clock, meter);
    }

    private async Task<T> GetAsync<T>(string path, Session session, CancellationToken ct) where T : class
    {
        using var request = NewRequest(HttpMethod.Get, path, session.Token, null);
        using var response = await _http.SendAsync(request, ct).ConfigureAwait(false);
        if (!response.IsSuccessStatusCode)
            throw new HttpRequestException($"GET /{path}: {(int)response.StatusCode} {await DetailAsync(response, ct).ConfigureAwait(false)}", null, response.StatusCode);
        return JsonSerializer.Deserialize<T>(await response.Content.ReadAsStringAsync(ct).ConfigureAwait(false))
            ?? throw new JsonException($"GET /{path} answered no JSON object.");
    }
}
