using ComputeGrid.Core;
using ComputeGrid.Inference.Reports;
using ComputeGrid.Server.Inference;
using ComputeGrid.Server.Trust;

namespace ComputeGrid.Server.Reports;

/// <summary>
/// Receives nodes' epoch reports and decides each: identity (the session's node), shape and derived figures, hash and
/// Ed25519 signature (the admitted key), chain (the previous hash is the last accepted report's, the epoch the next
/// one), an ended epoch, and the ledger (requests, tokens, revenue and shares equal the ledger's statement of that node
/// and epoch, read again now). The first rule broken decides; the report is then stored as flagged with it, else
/// appended to the node's chain. One report at a time (they are rare), so two submissions never race for one place.
/// </summary>
public sealed class NodeReports(NodeReportStore store, InferencePayments payments, INodeShareSupply shares, TimeProvider time, TimeSpan epoch)
{
    private readonly SemaphoreSlim _gate = new(1, 1);

    /// <summary>The store.</summary>
    public NodeReportStore Store => store;

    /// <summary>The epoch length, nanoseconds.</summary>
    public long EpochNs { get; } = Validate(epoch);

    /// <summary>The epoch running on the server's clock.</summary>
    public long CurrentEpoch => Now / EpochNs;

    /// <summary>The server's clock, Unix nanoseconds.</summary>
    public long Now => ApiTime.Of(time.GetUtcNow()).UnixNanoseconds;

    /// <summary>The node's epoch clock and chain head.</summary>
    public EpochClock Clock(ulong nodePrincipal)
    {
        EpochReport? head = store.Head(nodePrincipal);
        long now = Now;
        return new EpochClock
        {
            EpochSeconds = EpochNs / 1_000_000_000, CurrentEpoch = now / EpochNs, NowUnixNs = now, LastEpoch = head?.Epoch,
            LastHash = head?.Hash ?? EpochReportEncoding.GenesisHash,
        };
    }

    /// <summary>The ledger's statement of <paramref name="epoch"/> for the node.</summary>
    public Task<EpochStatement> StatementAsync(ulong nodePrincipal, long epoch, CancellationToken ct) =>
        NodeLedgerStatement.ReadAsync(payments, shares, nodePrincipal, epoch, EpochNs, Now, ct);

    /// <summary>Decides a report submitted by <paramref name="node"/>: null when accepted (and stored), else the rule it broke (and it is flagged).</summary>
    public async Task<ReportFailure?> SubmitAsync(NodeAdmission node, EpochReport report, CancellationToken ct)
    {
        await _gate.WaitAsync(ct);
        try
        {
            long received = Now;
            EpochReport? head = store.Head(node.Principal);
            ReportFailure? failure = await DecideAsync(node, report, head, received, ct);
            if (failure is null && !store.TryAppend(report, head, received))
                failure = new ReportFailure(ReportCheck.Chain, "another report took this place in the chain");
            if (failure is { } f) store.Flag(node.Principal, report, f, received);
            return failure;
        }
        finally { _gate.Release(); }
    }

    private async Task<ReportFailure?> DecideAsync(NodeAdmission node, EpochReport report, EpochReport? head, long now, CancellationToken ct)
    {
        ReportFailure? failure;
        try { failure = EpochReportChain.Check(report, head, node.Principal, node.NodeId, node.PublicKey, EpochNs); }
        catch (OverflowException) { failure = new ReportFailure(ReportCheck.Shape, "a figure overflows 64 bits"); }
        if (failure is not null) return failure;
        if (report.EndUnixNs > now) return new ReportFailure(ReportCheck.Shape, $"epoch {report.Epoch} has not ended");
        EpochStatement ledger = await StatementAsync(node.Principal, report.Epoch, ct);
        if (report.Requests != ledger.Requests || report.Tokens != ledger.Tokens || report.RevenueMicroUsd != ledger.RevenueMicroUsd)
            return new ReportFailure(ReportCheck.Ledger, $"the ledger records {ledger.Requests} requests, {ledger.Tokens} tokens and {ledger.RevenueMicroUsd} micro-USD " +
                $"of revenue for epoch {report.Epoch}; the report says {report.Requests}, {report.Tokens} and {report.RevenueMicroUsd}");
        if (report.SharesOutstanding != ledger.SharesOutstanding)
            return new ReportFailure(ReportCheck.Ledger, $"the node has {ledger.SharesOutstanding?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "no"} shares outstanding at the epoch's end; the report says {report.SharesOutstanding?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "none"}");
        return null;
    }

    /// <summary>The node's published document (its chain, totals, flagged submissions and key).</summary>
    public NodeReportsDocument Document(NodeAdmission node)
    {
        IReadOnlyList<EpochReport> accepted = store.Accepted(node.Principal);
        return new NodeReportsDocument
        {
            NodeId = node.NodeId, NodePrincipal = node.Principal, PublicKey = Convert.ToBase64String(node.PublicKey), EpochSeconds = EpochNs / 1_000_000_000,
            Reports = accepted, Totals = NodeReportTotals.Of(accepted), Flagged = store.Flagged(node.Principal),
        };
    }

    private static long Validate(TimeSpan epoch)
    {
        if (epoch < EpochReportLimits.EpochMin || epoch > EpochReportLimits.EpochMax || epoch.Ticks % TimeSpan.TicksPerSecond != 0)
            throw new ArgumentOutOfRangeException(nameof(epoch), $"The report epoch must be whole seconds from {EpochReportLimits.EpochMin.TotalSeconds} s to {EpochReportLimits.EpochMax.TotalHours} h.");
        return epoch.Ticks * 100;
    }
}
