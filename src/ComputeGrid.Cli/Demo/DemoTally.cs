using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace ComputeGrid.Cli.Demo;

/// <summary>How a step ended.</summary>
internal enum DemoOutcome
{
    /// <summary>Done: a paid answer, an order accepted, a claim paid.</summary>
    Done = 0,
    /// <summary>Refused for a reason the market gives and the demo expects (nothing to lift, nothing owed, no shares left).</summary>
    Declined = 1,
    /// <summary>Not started: the driver already had its most steps in flight (the server is slower than the plan).</summary>
    Skipped = 2,
    /// <summary>An error: refused for another reason, or the server unreachable.</summary>
    Failed = 3,
}

/// <summary>
/// The driver's counts per kind of step and outcome. An error is logged at warning level the first time its kind and
/// reason are seen, and only counted after that, so a steady fault is one line, not one per request; the periodic
/// summary gives the counts.
/// </summary>
internal sealed class DemoTally(ILogger log)
{
    private readonly ConcurrentDictionary<(DemoStepKind, DemoOutcome), long> _counts = new();
    private readonly ConcurrentDictionary<(DemoStepKind, string), long> _errors = new();

    /// <summary>Counts a step's outcome; an error's reason is logged once per kind and reason.</summary>
    public void Count(DemoStepKind kind, DemoOutcome outcome, string? reason = null)
    {
        _counts.AddOrUpdate((kind, outcome), 1, (_, n) => n + 1);
        if (outcome != DemoOutcome.Failed) return;
        string why = reason ?? "unknown";
        if (_errors.AddOrUpdate((kind, why), 1, (_, n) => n + 1) == 1)
            log.LogWarning("demo {Kind}: {Reason} (logged once; later ones are counted in the summary)", Name(kind), why);
    }

    private readonly ConcurrentDictionary<(string, string), long> _otherErrors = new();

    /// <summary>A failure of work outside the plan (the metering): logged once per what and reason, like a step's.</summary>
    public void Failure(string what, string reason)
    {
        if (_otherErrors.AddOrUpdate((what, reason), 1, (_, n) => n + 1) == 1)
            log.LogWarning("demo {What}: {Reason} (logged once; later ones are counted)", what, reason);
    }

    /// <summary>How many steps of <paramref name="kind"/> ended with <paramref name="outcome"/>.</summary>
    public long Of(DemoStepKind kind, DemoOutcome outcome) => _counts.GetValueOrDefault((kind, outcome));

    /// <summary>One line: per kind, done/declined/skipped/failed (kinds with no step left out).</summary>
    public string Summary()
    {
        var parts = new List<string>();
        foreach (DemoStepKind kind in Enum.GetValues<DemoStepKind>())
        {
            long done = Of(kind, DemoOutcome.Done), declined = Of(kind, DemoOutcome.Declined), skipped = Of(kind, DemoOutcome.Skipped), failed = Of(kind, DemoOutcome.Failed);
            if (done + declined + skipped + failed == 0) continue;
            parts.Add($"{Name(kind)} {done}" + (declined > 0 ? $" ({declined} declined)" : "") + (skipped > 0 ? $" ({skipped} skipped)" : "") + (failed > 0 ? $" ({failed} failed)" : ""));
        }
        return parts.Count == 0 ? "no steps yet" : string.Join(", ", parts);
    }

    /// <summary>A kind's name in the log: snake_case.</summary>
    public static string Name(DemoStepKind kind) => kind switch
    {
        DemoStepKind.KeyedRequest => "keyed_request",
        DemoStepKind.X402Request => "x402_request",
        DemoStepKind.ComputeAsk => "compute_ask",
        DemoStepKind.ComputeBid => "compute_bid",
        DemoStepKind.ComputeLift => "compute_lift",
        DemoStepKind.ShareAsk => "share_ask",
        DemoStepKind.ShareBuy => "share_buy",
        DemoStepKind.Claim => "claim",
        _ => kind.ToString(),
    };
}
