namespace ComputeGrid.Inference.Reports;

/// <summary>What a node measured about itself in one epoch.</summary>
/// <param name="UptimeSeconds">Whole seconds it was up.</param>
/// <param name="UtilizationBasisPoints">Its mean utilization over that time, basis points.</param>
/// <param name="EnergyJoules">Whole joules drawn.</param>
/// <param name="EnergySource"><c>measured</c> when every interval was measured, else <c>modeled</c>.</param>
public readonly record struct EpochMeasurement(long UptimeSeconds, int UtilizationBasisPoints, long EnergyJoules, string EnergySource)
{
    /// <summary>An epoch the node was not up in.</summary>
    public static EpochMeasurement Down(bool measured) => new(0, 0, 0, measured ? EpochReportEncoding.Measured : EpochReportEncoding.Modeled);
}

/// <summary>
/// A node's own meter per epoch of the server's clock: each heartbeat interval adds its length, utilization and power,
/// split across an epoch boundary it straddles. Energy is power × time (watts are measured by nvidia-smi, or modeled
/// from utilization; one modeled interval makes the epoch's energy modeled). Keeps at most
/// <see cref="EpochsKeptMax"/> epochs (the oldest are dropped). Thread-safe.
/// </summary>
public sealed class EpochMeter(long epochNs)
{
    /// <summary>The most epochs kept (a week of hours).</summary>
    public const int EpochsKeptMax = 168;

    private readonly Lock _gate = new();
    private readonly SortedDictionary<long, Sums> _epochs = [];

    /// <summary>The epoch length, nanoseconds.</summary>
    public long EpochNs => epochNs;

    /// <summary>Adds the interval [<paramref name="fromUnixNs"/>, <paramref name="toUnixNs"/>) at a mean power and utilization.</summary>
    /// <param name="fromUnixNs">Its start.</param>
    /// <param name="toUnixNs">Its end.</param>
    /// <param name="watts">Mean power, watts (ignored unless finite and non-negative).</param>
    /// <param name="utilization">Mean utilization, 0 to 1.</param>
    /// <param name="measured">Whether the power was measured (nvidia-smi) rather than modeled.</param>
    public void Add(long fromUnixNs, long toUnixNs, double watts, double utilization, bool measured)
    {
        if (toUnixNs <= fromUnixNs) return;
        if (!double.IsFinite(watts) || watts < 0) watts = 0;
        utilization = double.IsFinite(utilization) ? Math.Clamp(utilization, 0, 1) : 0;
        lock (_gate)
        {
            long t = fromUnixNs;
            while (t < toUnixNs)
            {
                long epoch = t / epochNs;
                long end = Math.Min(toUnixNs, checked((epoch + 1) * epochNs));
                double seconds = (end - t) / 1e9;
                if (!_epochs.TryGetValue(epoch, out Sums? s))
                {
                    s = new Sums();
                    _epochs[epoch] = s;
                    while (_epochs.Count > EpochsKeptMax) _epochs.Remove(_epochs.Keys.First());
                }
                s.Seconds += seconds;
                s.BusySeconds += seconds * utilization;
                s.Joules += seconds * watts;
                s.AllMeasured &= measured;
                t = end;
            }
        }
    }

    /// <summary>What was measured in <paramref name="epoch"/> (zeros when the node was not up in it).</summary>
    public EpochMeasurement Of(long epoch, bool measuredWhenDown)
    {
        lock (_gate)
        {
            if (!_epochs.TryGetValue(epoch, out Sums? s) || s.Seconds <= 0) return EpochMeasurement.Down(measuredWhenDown);
            long uptime = Math.Min((long)s.Seconds, epochNs / 1_000_000_000);
            int utilization = (int)Math.Clamp(Math.Round(s.BusySeconds / s.Seconds * 10_000), 0, 10_000);
            return new EpochMeasurement(uptime, utilization, (long)Math.Min(s.Joules, EpochReportLimits.CountMax),
                s.AllMeasured ? EpochReportEncoding.Measured : EpochReportEncoding.Modeled);
        }
    }

    private sealed class Sums
    {
        public double Seconds, BusySeconds, Joules;
        public bool AllMeasured = true;
    }
}

/// <summary>Builds and signs a node's report from the server's statement and the node's own measurement.</summary>
public static class EpochReportBuilder
{
    /// <summary>The signed report of <paramref name="statement"/>'s epoch, chained to <paramref name="previousHash"/>.</summary>
    public static EpochReport Build(string nodeId, int gpus, EpochStatement statement, EpochMeasurement measured, string previousHash, byte[] privateKey)
    {
        var unsigned = new EpochReport
        {
            NodePrincipal = statement.NodePrincipal, NodeId = nodeId, Epoch = statement.Epoch, StartUnixNs = statement.StartUnixNs, EndUnixNs = statement.EndUnixNs,
            Gpus = gpus, Requests = statement.Requests, Tokens = statement.Tokens, UtilizationBasisPoints = measured.UtilizationBasisPoints,
            UptimeSeconds = measured.UptimeSeconds, EnergyJoules = measured.EnergyJoules, EnergySource = measured.EnergySource,
            TokensPerJouleMilli = EpochFigures.TokensPerJouleMilli(statement.Tokens, measured.EnergyJoules),
            RevenueMicroUsd = statement.RevenueMicroUsd,
            RevenuePerGpuHourMicroUsd = EpochFigures.RevenuePerGpuHourMicroUsd(statement.RevenueMicroUsd, gpus, measured.UptimeSeconds),
            SharesOutstanding = statement.SharesOutstanding,
            RevenuePerShareMicroUsdE6 = EpochFigures.RevenuePerShareMicroUsdE6(statement.RevenueMicroUsd, statement.SharesOutstanding),
            PreviousHash = previousHash, Hash = "", Signature = "",
        };
        return EpochReportEncoding.Sign(unsigned, privateKey);
    }
}
