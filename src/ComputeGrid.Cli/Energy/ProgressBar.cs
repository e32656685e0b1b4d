namespace ComputeGrid.Cli.Energy;

/// <summary>
/// A progress bar on stderr: redrawn in place on a terminal, one plain line per step when stderr is redirected (a log
/// or CI), so progress never mixes with the results on stdout.
/// </summary>
internal sealed class ProgressBar(int totalSteps, TextWriter? writer = null)
{
    private readonly TextWriter _out = writer ?? Console.Error;
    private readonly bool _interactive = writer is null && !Console.IsErrorRedirected;
    private int _done;

    /// <summary>Starts step <paramref name="label"/> (the previous one is done).</summary>
    public void Step(string label)
    {
        int done = Math.Min(_done, totalSteps);
        _done++;
        const int width = 30;
        int filled = totalSteps == 0 ? width : done * width / totalSteps;
        string line = $"[{new string('#', filled)}{new string('-', width - filled)}] {done * 100 / Math.Max(1, totalSteps),3}% {label}";
        if (_interactive) _out.Write("\r" + line.PadRight(Console.WindowWidth > 0 ? Math.Min(Console.WindowWidth - 1, 100) : 100));
        else _out.WriteLine(line);
    }

    /// <summary>Completes the bar.</summary>
    public void Done()
    {
        string line = $"[{new string('#', 30)}] 100% done";
        if (_interactive) _out.WriteLine("\r" + line.PadRight(Console.WindowWidth > 0 ? Math.Min(Console.WindowWidth - 1, 100) : 100));
        else _out.WriteLine(line);
    }
}
