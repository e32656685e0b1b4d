using System.Diagnostics;
using System.Globalization;

namespace ComputeGrid.Inference.Nodes;

/// <summary>
/// A node's power draw for its telemetry: measured with <c>nvidia-smi</c> (the sum of all GPUs' <c>power.draw</c>)
/// when it is on the PATH and answers, otherwise modeled from utilization as a CPU node:
/// <see cref="IdleWatts"/> + utilization × <see cref="DynamicWatts"/>.
/// </summary>
/// <remarks>
/// The model: a small server's package and platform draw about 35 W idle, and an inference load that keeps its
/// cores busy adds about 65 W (100 W at full load), the order of a desktop-class CPU's TDP. It is an estimate and
/// is labelled <see cref="ModeledSource"/> in the telemetry, so nobody mistakes it for a measurement.
/// </remarks>
public static class NodePowerMeter
{
    /// <summary>The power source label of a measurement by <c>nvidia-smi</c>.</summary>
    public const string NvidiaSmiSource = "nvidia-smi";

    /// <summary>The power source label of an estimate from utilization.</summary>
    public const string ModeledSource = "modeled";

    /// <summary>The modeled draw of an idle CPU node, in watts.</summary>
    public const double IdleWatts = 35;

    /// <summary>The modeled extra draw of a CPU node at full utilization, in watts.</summary>
    public const double DynamicWatts = 65;

    private static readonly TimeSpan QueryTimeout = TimeSpan.FromSeconds(2);

    /// <summary>The modeled draw at <paramref name="utilization"/> (clamped to 0 … 1), in watts.</summary>
    /// <param name="utilization">The share of the node's model capacity in use.</param>
    public static double Modeled(double utilization) =>
        IdleWatts + (double.IsFinite(utilization) ? Math.Clamp(utilization, 0, 1) : 0) * DynamicWatts;

    /// <summary>The full path of <c>nvidia-smi</c> on the PATH, or null.</summary>
    public static string? FindNvidiaSmi()
    {
        string? path = Environment.GetEnvironmentVariable("PATH");
        if (string.IsNullOrEmpty(path)) return null;
        string name = OperatingSystem.IsWindows() ? "nvidia-smi.exe" : "nvidia-smi";
        foreach (string dir in path.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            try
            {
                string candidate = Path.Combine(dir, name);
                if (File.Exists(candidate)) return candidate;
            }
            catch (ArgumentException) { } // a malformed PATH entry
        }
        return null;
    }

    /// <summary>
    /// Runs <c>nvidia-smi --query-gpu=power.draw --format=csv,noheader,nounits</c> and sums the GPUs' draws; null when
    /// it fails, times out (2 s) or reports no number (e.g. <c>[N/A]</c>).
    /// </summary>
    /// <param name="nvidiaSmi">The program's path.</param>
    /// <param name="cancellationToken">Stops the query.</param>
    public static async Task<double?> QueryNvidiaSmiAsync(string nvidiaSmi, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(nvidiaSmi);
        var start = new ProcessStartInfo(nvidiaSmi)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            CreateNoWindow = true,
        };
        start.ArgumentList.Add("--query-gpu=power.draw");
        start.ArgumentList.Add("--format=csv,noheader,nounits");
        Process? process;
        try { process = Process.Start(start); }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or InvalidOperationException or IOException) { return null; }
        if (process is null) return null;
        using (process)
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(QueryTimeout);
            try
            {
                Task<string> output = process.StandardOutput.ReadToEndAsync(timeout.Token);
                Task<string> errors = process.StandardError.ReadToEndAsync(timeout.Token);
                await process.WaitForExitAsync(timeout.Token).ConfigureAwait(false);
                string text = await output.ConfigureAwait(false);
                await errors.ConfigureAwait(false);
                if (process.ExitCode != 0) return null;
                return ParseWatts(text);
            }
            catch (OperationCanceledException)
            {
                try { process.Kill(entireProcessTree: true); }
                catch (InvalidOperationException) { } // already gone
                cancellationToken.ThrowIfCancellationRequested();
                return null;
            }
        }
    }

    /// <summary>The sum of the numbers on the lines of <c>nvidia-smi</c>'s CSV answer; null when no line holds a number.</summary>
    /// <param name="text">One power draw (watts) per GPU per line.</param>
    public static double? ParseWatts(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        double sum = 0;
        bool any = false;
        foreach (string line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (double.TryParse(line, NumberStyles.Float, CultureInfo.InvariantCulture, out double watts) && double.IsFinite(watts) && watts >= 0)
            {
                sum += watts;
                any = true;
            }
        }
        return any ? sum : null;
    }
}
