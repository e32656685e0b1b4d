using System.Diagnostics;

namespace ComputeGrid.Chain;

/// <summary>Paths to the pinned chain tools, installed by <c>tools/chain/install.sh</c>.</summary>
/// <param name="ToolsDirectory">The <c>tools/chain</c> folder.</param>
/// <param name="Node">The <c>node</c> executable (found on PATH).</param>
/// <param name="Anvil">The Anvil binary of <c>@foundry-rs/anvil-linux-amd64</c>.</param>
public sealed record ChainToolPaths(string ToolsDirectory, string Node, string Anvil)
{
    /// <summary>The Solidity build script.</summary>
    public string CompileScript => Path.Combine(ToolsDirectory, "compile.mjs");

    /// <summary>The repository's <c>contracts</c> folder (two levels above the tools).</summary>
    public string ContractsDirectory => Path.GetFullPath(Path.Combine(ToolsDirectory, "..", "..", "contracts"));
}

/// <summary>Raised when the chain tools cannot be found or installed; the message says what is missing.</summary>
public sealed class ChainToolsException(string message) : Exception(message);

/// <summary>
/// Finds the repository's <c>tools/chain</c> folder (the environment variable <c>COMPUTEGRID_TOOLS</c>, else a walk up
/// from the application's folder to the one holding <c>ComputeGrid.slnx</c>) and runs its <c>install.sh</c> once per
/// process. The script is idempotent and holds a file lock, so parallel test processes may all call it.
/// </summary>
public static class ChainTools
{
    /// <summary>The environment variable that names the <c>tools/chain</c> folder explicitly.</summary>
    public const string ToolsVariable = "COMPUTEGRID_TOOLS";

    private static readonly TimeSpan InstallTimeout = TimeSpan.FromMinutes(5);
    private static readonly Lazy<ChainToolPaths> Installed = new(Install, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>Installs the tools if needed (once per process) and returns their paths.</summary>
    /// <exception cref="ChainToolsException">node or npm is missing, the folder is not found, or the install failed.</exception>
    public static ChainToolPaths Ensure() => Installed.Value;

    /// <summary>Like <see cref="Ensure"/>, but answers false with the reason instead of throwing (tests skip on it).</summary>
    public static bool TryEnsure(out ChainToolPaths? paths, out string reason)
    {
        try
        {
            paths = Ensure();
            reason = "";
            return true;
        }
        catch (ChainToolsException e)
        {
            paths = null;
            reason = e.Message;
            return false;
        }
    }

    /// <summary>The <c>tools/chain</c> folder, or null when neither the variable nor the walk up finds it.</summary>
    public static string? FindToolsDirectory()
    {
        string? named = Environment.GetEnvironmentVariable(ToolsVariable);
        if (!string.IsNullOrEmpty(named)) return Directory.Exists(named) ? Path.GetFullPath(named) : null;
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "ComputeGrid.slnx")))
            {
                string tools = Path.Combine(dir.FullName, "tools", "chain");
                return Directory.Exists(tools) ? tools : null;
            }
        }
        return null;
    }

    /// <summary>The full path of <paramref name="program"/> on PATH, or null.</summary>
    public static string? FindOnPath(string program)
    {
        foreach (string dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator))
        {
            if (dir.Length == 0) continue;
            string candidate = Path.Combine(dir, program);
            if (File.Exists(candidate)) return candidate;
        }
        return null;
    }

    private static ChainToolPaths Install()
    {
        string node = FindOnPath("node") ?? throw new ChainToolsException("node is not installed: the chain tools (Anvil, solc) need Node 20+ and npm on PATH");
        if (FindOnPath("npm") is null) throw new ChainToolsException("npm is not installed: the chain tools (Anvil, solc) need Node 20+ and npm on PATH");
        string tools = FindToolsDirectory()
            ?? throw new ChainToolsException($"tools/chain not found: set {ToolsVariable} or run from inside the repository (no ComputeGrid.slnx above {AppContext.BaseDirectory})");
        string script = Path.Combine(tools, "install.sh");
        if (!File.Exists(script)) throw new ChainToolsException($"{script} is missing");

        var start = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(script);
        using var process = Process.Start(start) ?? throw new ChainToolsException("could not start bash for install.sh");
        Task<string> output = process.StandardOutput.ReadToEndAsync();
        Task<string> error = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(InstallTimeout))
        {
            process.Kill(entireProcessTree: true);
            throw new ChainToolsException($"install.sh did not finish within {InstallTimeout.TotalMinutes} minutes");
        }
        if (process.ExitCode != 0)
            throw new ChainToolsException($"install.sh failed (exit {process.ExitCode}): {error.Result.Trim()} {output.Result.Trim()}".Trim());

        string anvil = Path.Combine(tools, "node_modules", "@foundry-rs", "anvil-linux-amd64", "bin", "anvil");
        if (!File.Exists(anvil)) throw new ChainToolsException($"install.sh ran but {anvil} is missing");
        return new ChainToolPaths(tools, node, anvil);
    }
}
