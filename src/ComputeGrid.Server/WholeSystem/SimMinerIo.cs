using ComputeGrid.Energy.Miners;
using ComputeGrid.Simulation;
using Microsoft.Extensions.Time.Testing;

namespace ComputeGrid.Server.WholeSystem;

/// <summary>
/// The site's miner I/O on a virtual clock: the driver's timeouts and retry waits and the slow fault's delay run on
/// <see cref="Clock"/>, which moves only while a site step runs and only when every call in flight waits on a miner
/// that holds it on purpose (silent or slow). A healthy rack's answer then never races a timeout, a silent rack always
/// times out and a slow one (5 ms against a 150 ms timeout) always answers, whatever the machine's load: the miners'
/// outcomes, and so the site's books, follow from the seed alone.
/// </summary>
internal sealed class SimMinerIo
{
    /// <summary>How far the clock moves per turn when nothing but held calls and timers is left: the finest delay in play.</summary>
    private static readonly TimeSpan Tick = TimeSpan.FromMilliseconds(1);

    /// <summary>The virtual I/O clock (starts at the simulated time the world opened; only differences matter).</summary>
    public FakeTimeProvider Clock { get; }

    public SimMinerIo(DateTimeOffset start) => Clock = new FakeTimeProvider(start);

    /// <summary>Runs one site step, moving <see cref="Clock"/> whenever the miners' I/O can go no further without it.</summary>
    public async Task RunAsync(Func<CancellationToken, Task> step, FleetDriver driver, MinerFleetSimulator miners, CancellationToken ct)
    {
        Task running = step(ct);
        while (!running.IsCompleted)
        {
            switch (State(driver, miners))
            {
                case Io.Held:
                    // Only held calls are in flight: their timeouts (and a slow reply's delay) are all that can move them.
                    // Timers that fire complete their continuations inline or just ahead of this one: yield, look again.
                    Clock.Advance(Tick);
                    await Task.Yield();
                    break;
                case Io.Idle:
                    // No call in flight: a retry's backoff, or work that is not I/O (the controller, the ledger's thread).
                    Clock.Advance(Tick);
                    await Task.WhenAny(running, Task.Delay(1, ct));
                    break;
                default:
                    // A call waits on a socket a healthy miner will answer: wait for it (wall clock; decides nothing).
                    await Task.WhenAny(running, Task.Delay(1, ct));
                    break;
            }
        }
        await running;
    }

    private enum Io { Idle, Held, Answering }

    // Held: every call in flight is one its miner holds on purpose. A silent miner may still count a connection its client
    // just closed: then only a call to that same (still silent) miner can be let time out, which it would anyway.
    private static Io State(FleetDriver driver, MinerFleetSimulator miners)
    {
        bool any = false;
        for (int i = 0; i < driver.Count; i++)
        {
            int calls = driver.CallsInFlight(i);
            if (calls > miners.Held(i)) return Io.Answering;
            any |= calls > 0;
        }
        return any ? Io.Held : Io.Idle;
    }
}
