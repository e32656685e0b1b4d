using Microsoft.Extensions.Time.Testing;

namespace ComputeGrid.Ledger.Tests;

/// <summary>
/// The test seam in the log's file layer (<see cref="LedgerEngineOptions.InjectLogFault"/>): a write, torn write or
/// fdatasync that fails stops the ledger at once (fail-stop: the batch and every later one refused), and a reopen
/// recovers every acknowledged transfer; the failed batch, never acknowledged, may or may not be there.
/// </summary>
public sealed class LogFaultTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "cg-logfault-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true);
    }

    private static Transfer Move(ulong id, long amount) => new() { Id = id, DebitAccountId = 1, CreditAccountId = 2, Amount = amount, Asset = 1, Code = 1 };

    [Theory]
    [InlineData(LedgerLogFaultPoint.Write, false)]
    [InlineData(LedgerLogFaultPoint.TornWrite, false)]
    [InlineData(LedgerLogFaultPoint.Flush, true)]
    public async Task A_failed_log_write_stops_the_ledger_and_a_reopen_keeps_what_was_acknowledged(LedgerLogFaultPoint point, bool failedBatchOnDisk)
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 6, 0, 0, 0, TimeSpan.Zero));
        bool armed = false;
        var options = new LedgerEngineOptions { DataDirectory = _dir, InjectLogFault = p => armed && p == point, AccountsCapacity = 64, TransfersCapacity = 1024 };
        await using (var engine = LedgerEngine.Open(options, time))
        {
            await engine.CreateAccountsAsync(new[] { new Account { Id = 1, Asset = 1, Code = 1 }, new Account { Id = 2, Asset = 1, Code = 1 } });
            Assert.Equal(CreateTransferResult.Ok, (await engine.CreateTransfersAsync(new[] { Move(10, 5) }))[0]);
            armed = true;
            await Assert.ThrowsAsync<LedgerFaultedException>(() => engine.CreateTransfersAsync(new[] { Move(11, 7) }));
            armed = false;
            Assert.NotNull(engine.Fault);
            // Fail-stop: nothing more is taken, even with the disk healthy again.
            await Assert.ThrowsAsync<LedgerFaultedException>(() => engine.CreateTransfersAsync(new[] { Move(12, 9) }));
        }
        await using (var reopened = LedgerEngine.Open(options with { InjectLogFault = null }, time))
        {
            Account[] a = await reopened.LookupAccountsAsync([1, 2]);
            Assert.Equal(failedBatchOnDisk ? 12 : 5, a[1].CreditsPosted);
            Assert.Equal(a[0].DebitsPosted, a[1].CreditsPosted);
            Assert.Equal(point == LedgerLogFaultPoint.TornWrite, reopened.Recovery.TruncatedBytes > 0);
            Assert.Equal(CreateTransferResult.Ok, (await reopened.CreateTransfersAsync(new[] { Move(12, 9) }))[0]);
        }
    }
}
