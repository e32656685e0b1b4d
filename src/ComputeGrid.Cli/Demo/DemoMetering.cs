using System.Globalization;
using System.Text.Json;

namespace ComputeGrid.Cli.Demo;

/// <summary>
/// The demo's metering of leases: the demo nodes do not report their leases' delivery themselves, so once a minute the
/// operator reports the whole hours that have passed of each active lease the provider sold (<c>POST
/// /api/exchange/leases/{id}/delivery</c>, the operator's route for metered delivery), which pays the provider — or the
/// node's share pool — from the lease's escrow, as a node's signed report would. Leases resold from another are paid
/// through their parent's delivery and are passed over. A cursor skips the leases already finished, so a sweep reads
/// what is still running, not the whole history.
/// </summary>
/// <param name="api">The server's API.</param>
/// <param name="operatorKey">An operator's key: delivery is the operator's report on the public port.</param>
/// <param name="provider">The provider whose leases are metered (it lists them with its own key).</param>
/// <param name="time">The server's clock: hours count as passed on it.</param>
public sealed class DemoMetering(DemoApi api, string operatorKey, DemoActor provider, TimeProvider time)
{
    private const long NsPerHour = 3_600_000_000_000;
    private const int PagesPerSweepMax = 20;
    private long _after; // every lease with an id up to this one is finished

    /// <summary>Lease-hours of delivery reported so far (an hour of a lease, whatever its GPUs).</summary>
    public long Reported { get; private set; }

    /// <summary>One sweep: the active leases' passed hours reported; returns a failure's reason, or null.</summary>
    /// <param name="ct">Stops the sweep.</param>
    public async Task<string?> SweepAsync(CancellationToken ct)
    {
        long now = checked(time.GetUtcNow().ToUnixTimeMilliseconds() * 1_000_000L);
        long after = _after;
        bool finishedSoFar = true;
        for (int page = 0; page < PagesPerSweepMax; page++)
        {
            DemoAnswer leases = await api.GetAsync($"/api/exchange/leases?limit=100&after={after}", provider.Key, ct);
            if (!leases.Ok) return leases.Reason;
            foreach (JsonElement l in leases["leases"].EnumerateArray())
            {
                long id = l.GetProperty("id").GetInt64();
                bool active = l.GetProperty("status").GetString() == "active";
                if (active && l.GetProperty("parent").ValueKind == JsonValueKind.Null && l.GetProperty("provider").GetInt64() == (long)provider.Id)
                {
                    long start = Ns(l.GetProperty("start")), end = Ns(l.GetProperty("end"));
                    int gpus = l.GetProperty("gpus").GetInt32();
                    long deliveredHours = l.GetProperty("delivered_gpu_hours").GetInt64() / gpus;
                    long passedHours = (Math.Min(now, end) - start) / NsPerHour;
                    if (passedHours > deliveredHours)
                    {
                        DemoAnswer d = await api.PostAsync($"/api/exchange/leases/{id}/delivery", operatorKey,
                            new { from = Time(start + deliveredHours * NsPerHour), to = Time(start + passedHours * NsPerHour) }, ct);
                        if (!d.Ok) return d.Reason;
                        Reported += passedHours - deliveredHours;
                        active = start + passedHours * NsPerHour < end;
                    }
                }
                finishedSoFar &= !active;
                if (finishedSoFar) _after = id;
            }
            if (leases["next"].ValueKind != JsonValueKind.Number) break;
            after = leases["next"].GetInt64();
        }
        return null;
    }

    private static long Ns(JsonElement time) => checked(DateTimeOffset.Parse(time.GetString()!, CultureInfo.InvariantCulture).ToUnixTimeMilliseconds() * 1_000_000L);

    private static string Time(long ns) => DateTimeOffset.FromUnixTimeMilliseconds(ns / 1_000_000).ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture);
}
