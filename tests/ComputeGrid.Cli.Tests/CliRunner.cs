using System.Diagnostics;

namespace ComputeGrid.Cli.Tests;

/// <summary>Runs the built <c>computegrid</c> executable as a user would and captures its exit code and output.</summary>
internal static class CliRunner
{
    public static Task<(int Code, string Out, string Err)> RunAsync(params string[] args) =>
        RunAsync(environment: null, args);

    /// <summary>Runs the built <c>computegrid</c> with extra environment variables (a null value removes one).</summary>
    public static Task<(int Code, string Out, string Err)> RunAsync(IReadOnlyDictionary<string, string?>? environment, params string[] args) =>
        RunProcessAsync("dotnet", [Path.Combine(AppContext.BaseDirectory, "computegrid.dll"), .. args], workingDirectory: null, environment, TimeSpan.FromMinutes(3));

    /// <summary>Runs any program to its end and captures its exit code and output; past <paramref name="timeout"/> it is killed and the test fails.</summary>
    public static async Task<(int Code, string Out, string Err)> RunProcessAsync(string fileName, IEnumerable<string> args, string? workingDirectory,
        IReadOnlyDictionary<string, string?>? environment, TimeSpan timeout)
    {
        using var p = Process.Start(StartInfo(fileName, args, workingDirectory, environment))!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await p.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            p.Kill(entireProcessTree: true);
            Assert.Fail($"{Path.GetFileName(fileName)} {string.Join(' ', args)} ran past {timeout}: {await stdout} {await stderr}");
        }
        return (p.ExitCode, await stdout, await stderr);
    }

    /// <summary>The repository root: the folder above this test's output that holds ComputeGrid.slnx.</summary>
    public static string RepoRoot()
    {
        for (DirectoryInfo? d = new(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "ComputeGrid.slnx"))) return d.FullName;
        throw new DirectoryNotFoundException("repository root (ComputeGrid.slnx) not found above " + AppContext.BaseDirectory);
    }

    /// <summary>A start for a program whose output is read by the test (no shell, no window).</summary>
    public static ProcessStartInfo StartInfo(string fileName, IEnumerable<string> args, string? workingDirectory, IReadOnlyDictionary<string, string?>? environment)
    {
        var psi = new ProcessStartInfo(fileName) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (workingDirectory is not null) psi.WorkingDirectory = workingDirectory;
        foreach (var a in args) psi.ArgumentList.Add(a);
        foreach (var (name, value) in environment ?? new Dictionary<string, string?>())
        {
            if (value is null) psi.Environment.Remove(name);
            else psi.Environment[name] = value;
        }
        return psi;
    }
}
