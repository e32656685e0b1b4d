using System.Diagnostics.Metrics;

namespace ComputeGrid.Exchange.Pipeline;

/// <summary>
/// The exchange's instruments (meter <see cref="MeterName"/>): the matching rate (orders placed and refused, trades and
/// the quantity traded), the pipeline's batches and commands, and what went wrong (compensated settlements, commands
/// that failed part-way, a stopped pipeline). All are observed from the pipeline's counters when a reader collects, so
/// the matching thread only adds to a few fields once per batch and never sees a listener.
/// </summary>
public static class ExchangeMetrics
{
    /// <summary>The meter's name.</summary>
    public const string MeterName = "ComputeGrid.Exchange";

    /// <summary>Makes the instruments of <paramref name="exchange"/> on a meter of <paramref name="factory"/> (nothing is observed before it starts).</summary>
    public static Meter Register(IMeterFactory factory, ExchangeHost exchange)
    {
        ArgumentNullException.ThrowIfNull(factory);
        ArgumentNullException.ThrowIfNull(exchange);
        Meter meter = factory.Create(MeterName);
        meter.CreateObservableCounter("computegrid.exchange.orders", () => Orders(exchange), "{order}",
            "Orders placed since start, by result: accepted (rested or traded) or refused by the state machine.");
        meter.CreateObservableCounter("computegrid.exchange.trades", () => Of(exchange, p => p.Matching.Trades), "{trade}", "Trades (fills) since start.");
        meter.CreateObservableCounter("computegrid.exchange.traded_quantity", () => Of(exchange, p => p.Matching.TradedQuantity), "{unit}",
            "Quantity traded since start (GPU-hours for capacity, shares for node shares).");
        meter.CreateObservableCounter("computegrid.exchange.commands", () => Of(exchange, p => p.Counters.Commands), "{command}", "Commands sequenced since start.");
        meter.CreateObservableCounter("computegrid.exchange.batches", () => Of(exchange, p => p.Counters.Batches), "{batch}", "Command batches sequenced (one journal fsync each) since start.");
        meter.CreateObservableCounter("computegrid.exchange.compensations", () => Of(exchange, p => p.Compensations.Count), "{settlement}",
            "Settlements the ledger refused, each compensated (the command excluded), since start.");
        meter.CreateObservableCounter("computegrid.exchange.failed_commands", () => Of(exchange, p => p.FailedCommands.Count), "{command}",
            "Commands that failed part-way (excluded, the state machine rebuilt without them) since start.");
        meter.CreateObservableGauge("computegrid.exchange.stopped", () => exchange.Fault is null ? 0 : 1, null,
            "1 once the exchange stopped taking commands after a journal or ledger write failure (fail-stop), else 0.");
        return meter;
    }

    private static long Of(ExchangeHost exchange, Func<ExchangePipeline, long> read) => exchange.Started ? read(exchange.Pipeline) : 0;

    private static Measurement<long>[] Orders(ExchangeHost exchange)
    {
        var (placed, refused, _, _) = exchange.Started ? exchange.Pipeline.Matching : default;
        return [new(placed, new KeyValuePair<string, object?>("result", "accepted")), new(refused, new KeyValuePair<string, object?>("result", "refused"))];
    }
}
