using System.Diagnostics.Metrics;

namespace ComputeGrid.Ledger;

/// <summary>
/// The ledger's instruments (meter <see cref="MeterName"/>): batch size and commit latency recorded by the engine's
/// threads as they work, and its <see cref="LedgerStats"/> observed when a reader (the server's <c>/metrics</c>)
/// collects. Made from the <see cref="IMeterFactory"/> of <see cref="LedgerEngineOptions.Meters"/>, so a process
/// holding several servers (the tests) keeps each one's figures apart by the factory (the meter's scope).
/// </summary>
/// <remarks>
/// Recording allocates nothing: a histogram value without tags goes to the listener's preallocated buckets, and with no
/// listener it is one check. The sequencer records a batch's size as it applies it; the flusher records a group's
/// commit (its write and fdatasync) in seconds of the engine's <see cref="TimeProvider"/>.
/// </remarks>
public sealed class LedgerMetrics
{
    /// <summary>The meter's name.</summary>
    public const string MeterName = "ComputeGrid.Ledger";

    // A group commit is one write and one fdatasync: tens of microseconds on NVMe, milliseconds on a cloud disk.
    private static readonly double[] CommitSecondsBuckets =
        [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];

    // Events per batch: 1 for a lone transfer, up to BatchEventsMax for a bulk write.
    private static readonly int[] BatchEventsBuckets = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8190];

    private readonly Histogram<int> _batchEvents;
    private readonly Histogram<int> _groupBatches;
    private readonly Histogram<double> _commitSeconds;

    internal LedgerMetrics(IMeterFactory factory, LedgerEngine engine)
    {
        Meter meter = factory.Create(MeterName);
        _batchEvents = meter.CreateHistogram("computegrid.ledger.batch.events", "{event}",
            "Events (accounts or transfers) per batch applied by the sequencer.",
            advice: new InstrumentAdvice<int> { HistogramBucketBoundaries = BatchEventsBuckets });
        _groupBatches = meter.CreateHistogram("computegrid.ledger.group.batches", "{batch}",
            "Batches per group commit (sharing one fdatasync).",
            advice: new InstrumentAdvice<int> { HistogramBucketBoundaries = BatchEventsBuckets });
        _commitSeconds = meter.CreateHistogram("computegrid.ledger.commit.duration", "s",
            "Time to make one group durable: its write and fdatasync.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = CommitSecondsBuckets });
        meter.CreateObservableGauge("computegrid.ledger.committed_op", () => (long)engine.Stats.CommittedOp, null, "Last log op given by the sequencer.");
        meter.CreateObservableGauge("computegrid.ledger.durable_op", () => (long)engine.Stats.DurableOp, null, "Last log op on stable storage.");
        meter.CreateObservableCounter("computegrid.ledger.fsyncs", () => engine.Stats.Fsyncs, null, "fdatasync calls of the ledger log.");
        meter.CreateObservableCounter("computegrid.ledger.groups", () => engine.Stats.Groups, null, "Group commits (batches sharing one fdatasync).");
        meter.CreateObservableGauge("computegrid.ledger.log_bytes", () => engine.Stats.LogBytes, null, "Bytes in the ledger log.");
        meter.CreateObservableCounter("computegrid.ledger.snapshots", () => engine.Stats.Snapshots, null, "Ledger snapshots published.");
        meter.CreateObservableCounter("computegrid.ledger.snapshot_failures", () => engine.Stats.SnapshotFailures, null,
            "Ledger snapshots that failed (each logged as an error; the ledger goes on).");
        meter.CreateObservableGauge("computegrid.ledger.accounts", () => engine.Stats.Accounts, null, "Accounts in the ledger.");
        meter.CreateObservableGauge("computegrid.ledger.transfers", () => engine.Stats.Transfers, null, "Transfers in the ledger.");
        meter.CreateObservableGauge("computegrid.ledger.faulted", () => engine.Fault is null ? 0 : 1, null,
            "1 once the ledger stopped after a storage failure (fail-stop), else 0.");
    }

    /// <summary>One batch of <paramref name="events"/> events applied.</summary>
    internal void Batch(int events) => _batchEvents.Record(events);

    /// <summary>One group of <paramref name="batches"/> commands made durable in <paramref name="seconds"/>.</summary>
    internal void Commit(int batches, double seconds)
    {
        _groupBatches.Record(batches);
        _commitSeconds.Record(seconds);
    }
}
