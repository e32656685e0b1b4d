namespace ComputeGrid.Ledger.Tests;

/// <summary>
/// Stopping an engine while clients still write: every command either completes or is refused, and the stop itself
/// finishes. A stop once hung for good in the demo world: the flusher reset its wake-up after the stop had set it, so it
/// slept on an event nobody would set again (a lost wake-up between the last hand-off and the stop).
/// </summary>
public sealed class ShutdownTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "cg-ledger-stop-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public async Task A_stop_while_clients_write_finishes_and_every_write_either_completes_or_is_refused()
    {
        const int Cycles = 60, Writers = 4; // the old flusher hung within the first two cycles here
        for (int cycle = 0; cycle < Cycles; cycle++)
        {
            string dir = Path.Combine(_dir, cycle.ToString(System.Globalization.CultureInfo.InvariantCulture));
            var engine = LedgerEngine.Open(new LedgerEngineOptions { DataDirectory = dir, SnapshotEveryOps = 0 }, TimeProvider.System);
            long next = 1_000;
            long completed = 0;
            using var started = new CountdownEvent(Writers);
            Task[] writers = [.. Enumerable.Range(0, Writers).Select(w => Task.Run(async () =>
            {
                started.Signal();
                while (true)
                {
                    long id = Interlocked.Increment(ref next);
                    try { await engine.CreateAccountsAsync(new[] { new Account { Id = (UInt128)id, Asset = 1, Code = 1 } }); }
                    catch (ObjectDisposedException) { return; }
                    Interlocked.Increment(ref completed);
                }
            }))];
            started.Wait();
            // Let the writers fill a few groups, then stop in the middle of their stream.
            while (Interlocked.Read(ref completed) < 20 + cycle % 7) await Task.Yield();
            Task stop = engine.DisposeAsync().AsTask();
            Task done = await Task.WhenAny(stop, Task.Delay(TimeSpan.FromSeconds(30)));
            Assert.True(done == stop, $"cycle {cycle}: the stop did not finish within 30 s");
            await stop;
            await Task.WhenAll(writers).WaitAsync(TimeSpan.FromSeconds(30));
            // What completed is on disk: the log replays, and the accounts written are there.
            await using var reopened = LedgerEngine.Open(new LedgerEngineOptions { DataDirectory = dir }, TimeProvider.System);
            Assert.True(reopened.Stats.Accounts >= Interlocked.Read(ref completed), $"cycle {cycle}: {Interlocked.Read(ref completed)} accounts acknowledged, {reopened.Stats.Accounts} after the restart");
        }
    }
}
