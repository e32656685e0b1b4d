namespace ComputeGrid.Inference.Reports;

/// <summary>Which rule a report broke (also the <c>check</c> of a flagged report).</summary>
public enum ReportCheck
{
    /// <summary>It verifies.</summary>
    None,
    /// <summary>It names another node than the one it is filed for.</summary>
    Identity,
    /// <summary>A figure out of range, a window that is not one epoch, or a derived figure that does not recompute.</summary>
    Shape,
    /// <summary>The hash is not that of its canonical bytes, or the signature is not the node's.</summary>
    Signature,
    /// <summary>The previous hash is not the last report's, or the epoch does not follow the last one.</summary>
    Chain,
    /// <summary>Requests, tokens or revenue disagree with the server's ledger (checked by the server only).</summary>
    Ledger,
}

/// <summary>A failed check: which rule, and why in one sentence.</summary>
public readonly record struct ReportFailure(ReportCheck Check, string Reason)
{
    /// <summary>The check's name on the wire (<c>signature</c>, <c>chain</c>, …).</summary>
    public string CheckName => Check.ToString().ToLowerInvariant();
}

/// <summary>
/// The offline checks of a node's reports, one definition for the server (on receipt) and for
/// <c>computegrid verify --node-reports</c> (on the served document): identity, shape and derived figures, hash and
/// signature, and the link to the report before. The ledger cross-check needs the ledger and is the server's.
/// </summary>
public static class EpochReportChain
{
    /// <summary>
    /// Checks <paramref name="report"/> as the report that follows <paramref name="previous"/> (null: the node's first)
    /// in the chain of node (<paramref name="principal"/>, <paramref name="nodeId"/>, <paramref name="publicKey"/>) on
    /// a server whose epochs last <paramref name="epochNs"/> nanoseconds. Null when it holds.
    /// </summary>
    public static ReportFailure? Check(EpochReport report, EpochReport? previous, ulong principal, string nodeId, ReadOnlySpan<byte> publicKey, long epochNs)
    {
        if (report.NodePrincipal != principal || !string.Equals(report.NodeId, nodeId, StringComparison.Ordinal))
            return new ReportFailure(ReportCheck.Identity, $"it names node {report.NodeId} ({report.NodePrincipal}), not {nodeId} ({principal})");
        if (EpochFigures.CheckShape(report) is { } shape) return new ReportFailure(ReportCheck.Shape, shape);
        if (report.StartUnixNs != checked(report.Epoch * epochNs) || report.EndUnixNs != checked(report.StartUnixNs + epochNs))
            return new ReportFailure(ReportCheck.Shape, $"its window is not epoch {report.Epoch} of {epochNs / 1_000_000_000} s");
        if (!EpochReportEncoding.VerifySignature(report, publicKey))
            return new ReportFailure(ReportCheck.Signature, "its hash or its Ed25519 signature does not verify with the node's key");
        string expected = previous?.Hash ?? EpochReportEncoding.GenesisHash;
        if (!string.Equals(report.PreviousHash, expected, StringComparison.OrdinalIgnoreCase))
            return new ReportFailure(ReportCheck.Chain, previous is null
                ? "a node's first report must have a previous hash of 64 zeros"
                : $"its previous hash is not the hash of epoch {previous.Epoch}'s report");
        if (previous is not null && report.Epoch != checked(previous.Epoch + 1))
            return new ReportFailure(ReportCheck.Chain, $"epoch {report.Epoch} does not follow epoch {previous.Epoch}");
        return null;
    }

    /// <summary>
    /// Checks a whole served document: every report in order (the first must be the node's first), and that its totals
    /// are the sums of its reports. Null when everything verifies, else the index of the first bad report (−1 for the
    /// document itself: key, epoch length or totals) and why.
    /// </summary>
    public static (int Index, ReportFailure Failure)? Verify(NodeReportsDocument document)
    {
        byte[] publicKey;
        try { publicKey = Convert.FromBase64String(document.PublicKey); }
        catch (FormatException) { return (-1, new ReportFailure(ReportCheck.Signature, "public_key is not base64")); }
        if (publicKey.Length != 32) return (-1, new ReportFailure(ReportCheck.Signature, "public_key is not a 32-byte Ed25519 key"));
        if (document.EpochSeconds < (long)EpochReportLimits.EpochMin.TotalSeconds || document.EpochSeconds > (long)EpochReportLimits.EpochMax.TotalSeconds)
            return (-1, new ReportFailure(ReportCheck.Shape, "epoch_seconds is out of range"));
        long epochNs = document.EpochSeconds * 1_000_000_000;
        EpochReport? previous = null;
        for (int i = 0; i < document.Reports.Count; i++)
        {
            EpochReport r = document.Reports[i];
            ReportFailure? failure;
            try { failure = Check(r, previous, document.NodePrincipal, document.NodeId, publicKey, epochNs); }
            catch (OverflowException) { failure = new ReportFailure(ReportCheck.Shape, "a figure overflows 64 bits"); }
            if (failure is { } f) return (i, f);
            previous = r;
        }
        NodeReportTotals sums;
        try { sums = NodeReportTotals.Of(document.Reports); }
        catch (OverflowException) { return (-1, new ReportFailure(ReportCheck.Shape, "the totals overflow 64 bits")); }
        if (sums != document.Totals)
            return (-1, new ReportFailure(ReportCheck.Shape, $"the totals are not the sums of the reports (requests {document.Totals.Requests} vs {sums.Requests}, " +
                $"tokens {document.Totals.Tokens} vs {sums.Tokens}, revenue {document.Totals.RevenueMicroUsd} vs {sums.RevenueMicroUsd}, " +
                $"energy {document.Totals.EnergyJoules} vs {sums.EnergyJoules}, uptime {document.Totals.UptimeSeconds} vs {sums.UptimeSeconds}, reports {document.Totals.Reports} vs {sums.Reports})"));
        return null;
    }
}
