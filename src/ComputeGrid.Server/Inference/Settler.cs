using System.Threading.Channels;
using ComputeGrid.Ledger;

namespace ComputeGrid.Server.Inference;

/// <summary>One request's charge: post its hold with the metered cost and split it between the node and the platform.</summary>
public sealed record Settlement(UInt128 HoldId, long CostMicroUsd, long FeeMicroUsd, ulong Node);

/// <summary>
/// Captures charges after the answer has gone out, many requests per ledger batch (one linked chain each, one group
/// commit for all). The request's hold was made durable before its answer, so the customer's money is reserved; the
/// capture follows within milliseconds. If the server dies in between, the hold expires and the customer is not
/// charged — the platform carries that risk, the customer never pays twice (transfer ids derive from the hold's).
/// </summary>
public sealed class Settler : IAsyncDisposable
{
    private readonly Channel<Settlement> _queue = Channel.CreateUnbounded<Settlement>(new UnboundedChannelOptions { SingleReader = true });
    private readonly InferencePayments _payments;
    private readonly Task _loop;
    private long _queued, _done, _failures;

    public Settler(InferencePayments payments)
    {
        _payments = payments;
        _loop = Task.Run(LoopAsync);
    }

    /// <summary>Charges settled so far, and attempts that failed and were retried.</summary>
    public (long Settled, long Failures) Stats => (Interlocked.Read(ref _done), Interlocked.Read(ref _failures));

    /// <summary>Queues a charge.</summary>
    public void Enqueue(Settlement s)
    {
        Interlocked.Increment(ref _queued);
        if (!_queue.Writer.TryWrite(s)) throw new InvalidOperationException("The settler is stopped.");
    }

    /// <summary>Waits until every charge queued so far is in the ledger.</summary>
    public async Task IdleAsync(CancellationToken ct = default)
    {
        long target = Interlocked.Read(ref _queued);
        while (Interlocked.Read(ref _done) < target) await Task.Delay(2, ct);
    }

    private async Task LoopAsync()
    {
        var batch = new List<Settlement>(256);
        while (await _queue.Reader.WaitToReadAsync())
        {
            batch.Clear();
            while (batch.Count < 256 && _queue.Reader.TryRead(out Settlement? s)) batch.Add(s);
            for (int attempt = 0; ; attempt++)
            {
                try
                {
                    await _payments.SettleManyAsync(batch, CancellationToken.None);
                    Interlocked.Add(ref _done, batch.Count);
                    break;
                }
                catch (Exception) when (attempt < 50)
                {
                    Interlocked.Increment(ref _failures);
                    await Task.Delay(TimeSpan.FromMilliseconds(Math.Min(1_000, 10 << Math.Min(attempt, 6))));
                }
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        _queue.Writer.TryComplete();
        await _loop;
    }
}
