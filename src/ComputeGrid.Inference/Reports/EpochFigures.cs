namespace ComputeGrid.Inference.Reports;

/// <summary>
/// The derived figures of a report, in integers, rounded down — the one definition both the node that writes a report
/// and every reader that checks it use, so a reader recomputes them exactly. Within
/// <see cref="EpochReportLimits"/> every product fits 64 bits (checked arithmetic all the same).
/// </summary>
public static class EpochFigures
{
    /// <summary>⌊tokens × 1000 / energy⌋ (tokens per joule in thousandths), null when no energy was recorded.</summary>
    public static long? TokensPerJouleMilli(long tokens, long energyJoules) =>
        energyJoules <= 0 ? null : checked(tokens * 1000) / energyJoules;

    /// <summary>⌊revenue × 3600 / (gpus × uptime seconds)⌋ micro-USD per GPU-hour, null with no GPU-time.</summary>
    public static long? RevenuePerGpuHourMicroUsd(long revenueMicroUsd, int gpus, long uptimeSeconds) =>
        gpus <= 0 || uptimeSeconds <= 0 ? null : checked(revenueMicroUsd * 3600) / checked(gpus * uptimeSeconds);

    /// <summary>⌊revenue × 10⁶ / shares⌋ (micro-USD per share, 6 decimals), null when the node has no shares.</summary>
    public static long? RevenuePerShareMicroUsdE6(long revenueMicroUsd, long? sharesOutstanding) =>
        sharesOutstanding is not long shares || shares <= 0 ? null : checked(revenueMicroUsd * 1_000_000) / shares;

    /// <summary>
    /// The report's shape: its figures within limits, its window one epoch, its derived figures exactly those of
    /// <see cref="EpochFigures"/>. Null when it holds, else why not (one sentence).
    /// </summary>
    public static string? CheckShape(EpochReport r)
    {
        if (string.IsNullOrEmpty(r.NodeId) || System.Text.Encoding.UTF8.GetByteCount(r.NodeId) > EpochReportLimits.NodeIdBytesMax) return "node_id is empty or too long";
        if (r.Epoch < 0 || r.EndUnixNs <= r.StartUnixNs) return "the epoch's window is empty or negative";
        long seconds = (r.EndUnixNs - r.StartUnixNs) / 1_000_000_000;
        if (r.Gpus is < 1 or > EpochReportLimits.GpusMax) return $"gpus must be 1 to {EpochReportLimits.GpusMax}";
        if (r.Requests is < 0 or > EpochReportLimits.CountMax || r.Tokens is < 0 or > EpochReportLimits.CountMax) return "requests and tokens must be 0 to 10^15";
        if (r.UtilizationBasisPoints is < 0 or > 10_000) return "utilization_bp must be 0 to 10000";
        if (r.UptimeSeconds < 0 || r.UptimeSeconds > seconds) return $"uptime_s must be 0 to the epoch's {seconds} s";
        if (r.EnergyJoules is < 0 or > EpochReportLimits.CountMax) return "energy_j must be 0 to 10^15";
        if (r.EnergySource is not (EpochReportEncoding.Measured or EpochReportEncoding.Modeled)) return "energy_source must be \"measured\" or \"modeled\"";
        if (r.RevenueMicroUsd is < 0 or > EpochReportLimits.RevenueMicroUsdMax) return "revenue_micro_usd must be 0 to 10^12";
        if (r.SharesOutstanding is long s && s is < 1 or > EpochReportLimits.CountMax) return "shares_outstanding must be 1 to 10^15, or null";
        if (EpochReportEncoding.HashBytes(r.PreviousHash) is null) return "previous_hash must be 64 hex digits";
        if (r.TokensPerJouleMilli != TokensPerJouleMilli(r.Tokens, r.EnergyJoules))
            return $"tokens_per_joule_milli is {Show(r.TokensPerJouleMilli)}, its figures give {Show(TokensPerJouleMilli(r.Tokens, r.EnergyJoules))}";
        if (r.RevenuePerGpuHourMicroUsd != RevenuePerGpuHourMicroUsd(r.RevenueMicroUsd, r.Gpus, r.UptimeSeconds))
            return $"revenue_per_gpu_hour_micro_usd is {Show(r.RevenuePerGpuHourMicroUsd)}, its figures give {Show(RevenuePerGpuHourMicroUsd(r.RevenueMicroUsd, r.Gpus, r.UptimeSeconds))}";
        if (r.RevenuePerShareMicroUsdE6 != RevenuePerShareMicroUsdE6(r.RevenueMicroUsd, r.SharesOutstanding))
            return $"revenue_per_share_micro_usd_e6 is {Show(r.RevenuePerShareMicroUsdE6)}, its figures give {Show(RevenuePerShareMicroUsdE6(r.RevenueMicroUsd, r.SharesOutstanding))}";
        return null;
    }

    private static string Show(long? v) => v?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "null";
}
