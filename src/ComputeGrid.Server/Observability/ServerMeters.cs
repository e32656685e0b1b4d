using System.Diagnostics.Metrics;

namespace ComputeGrid.Server.Observability;

/// <summary>
/// The one <see cref="IMeterFactory"/> of a server: every meter of its components (ledger, exchange, router, sites, the
/// server's own) and of ASP.NET (registered as the app's factory) is made here and carries this factory as its scope.
/// The server's metrics reader keeps only instruments of its own scope, so two servers in one process (the tests run
/// many) never report each other's figures although their meters share names.
/// </summary>
public sealed class ServerMeters : IMeterFactory
{
    private readonly List<Meter> _meters = [];
    private bool _disposed;

    /// <summary>A new meter of this server (<see cref="Meter.Scope"/> is this factory).</summary>
    public Meter Create(MeterOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Scope = this;
        var meter = new Meter(options);
        lock (_meters)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            _meters.Add(meter);
        }
        return meter;
    }

    /// <summary>Whether <paramref name="instrument"/> belongs to this server.</summary>
    public bool Owns(Instrument instrument) => ReferenceEquals(instrument.Meter.Scope, this);

    /// <summary>Disposes every meter made (their instruments stop being reported).</summary>
    public void Dispose()
    {
        Meter[] meters;
        lock (_meters)
        {
            if (_disposed) return;
            _disposed = true;
            meters = [.. _meters];
            _meters.Clear();
        }
        foreach (Meter m in meters) m.Dispose();
    }
}
