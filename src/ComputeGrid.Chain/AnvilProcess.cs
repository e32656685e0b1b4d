using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace ComputeGrid.Chain;

/// <summary>
/// A local Anvil chain in a child process: started on a free port (Anvil binds port 0 and prints the one it got, so
/// there is no race for the port), ready once it answers <c>eth_chainId</c>, killed by its pid on dispose.
/// Automine by default (a block per transaction); <c>blockTimeSeconds</c> mines on an interval instead, like a real
/// chain. The helpers wrap Anvil's test RPCs: snapshot/revert, mine, reorg.
/// </summary>
public sealed partial class AnvilProcess : IAsyncDisposable, IDisposable
{
    /// <summary>The chain id Anvil uses unless told otherwise.</summary>
    public const long DefaultChainId = 31337;

    private static readonly TimeSpan ReadyTimeout = TimeSpan.FromSeconds(30);

    private readonly Process _process;
    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(30) };
    private int _rpcId;
    private bool _disposed;

    /// <summary>The JSON-RPC endpoint, <c>http://127.0.0.1:PORT</c>.</summary>
    public string RpcUrl { get; }

    /// <summary>The chain id Anvil reported.</summary>
    public long ChainId { get; private set; }

    /// <summary>The process id (the process is killed by it on dispose).</summary>
    public int ProcessId => _process.Id;

    private AnvilProcess(Process process, string rpcUrl)
    {
        _process = process;
        RpcUrl = rpcUrl;
    }

    /// <summary>Starts Anvil from the installed tools and waits until it answers.</summary>
    /// <param name="blockTimeSeconds">Mine a block every this many seconds instead of one per transaction.</param>
    /// <param name="cancel">Stops the wait (the process is then killed).</param>
    public static async Task<AnvilProcess> StartAsync(int? blockTimeSeconds = null, CancellationToken cancel = default)
    {
        if (blockTimeSeconds is <= 0) throw new ArgumentOutOfRangeException(nameof(blockTimeSeconds), blockTimeSeconds, "a block time is positive");
        ChainToolPaths tools = ChainTools.Ensure();
        var start = new ProcessStartInfo(tools.Anvil)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string a in new[] { "--host", "127.0.0.1", "--port", "0" }) start.ArgumentList.Add(a);
        if (blockTimeSeconds is int seconds)
        {
            start.ArgumentList.Add("--block-time");
            start.ArgumentList.Add(seconds.ToString(CultureInfo.InvariantCulture));
        }

        var process = Process.Start(start) ?? throw new ChainToolsException($"could not start {tools.Anvil}");
        var listening = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        var tail = new Queue<string>();
        // Anvil logs every RPC call; the output is drained (a full pipe would stall it) and only its tail is kept
        // for the error message of a failed start.
        DataReceivedEventHandler onLine = (_, e) =>
        {
            if (e.Data is null) return;
            lock (tail)
            {
                tail.Enqueue(e.Data);
                if (tail.Count > 20) tail.Dequeue();
            }
            Match m = ListeningLine().Match(e.Data);
            if (m.Success) listening.TrySetResult(m.Groups[1].Value);
        };
        process.OutputDataReceived += onLine;
        process.ErrorDataReceived += onLine;
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();

        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancel);
            timeout.CancelAfter(ReadyTimeout);
            Task exited = process.WaitForExitAsync(timeout.Token);
            Task first = await Task.WhenAny(listening.Task, exited, Task.Delay(Timeout.Infinite, timeout.Token)).ConfigureAwait(false);
            if (first != listening.Task)
            {
                string log;
                lock (tail) log = string.Join(" | ", tail);
                throw new ChainToolsException(process.HasExited
                    ? $"anvil exited with {process.ExitCode} before listening: {log}"
                    : $"anvil did not listen within {ReadyTimeout.TotalSeconds} s: {log}");
            }
            var anvil = new AnvilProcess(process, $"http://{listening.Task.Result}");
            anvil.ChainId = await anvil.WaitReadyAsync(timeout.Token).ConfigureAwait(false);
            return anvil;
        }
        catch
        {
            Kill(process);
            process.Dispose();
            throw;
        }
    }

    /// <summary>Takes a snapshot of the chain state (<c>evm_snapshot</c>); returns its id for <see cref="RevertAsync"/>.</summary>
    public async Task<string> SnapshotAsync() => (await CallAsync("evm_snapshot").ConfigureAwait(false)).GetString()!;

    /// <summary>Returns the chain to a snapshot (<c>evm_revert</c>); a snapshot can be reverted to once.</summary>
    public async Task<bool> RevertAsync(string snapshotId) =>
        (await CallAsync("evm_revert", snapshotId).ConfigureAwait(false)).GetBoolean();

    /// <summary>Mines <paramref name="blocks"/> blocks now (<c>anvil_mine</c>).</summary>
    public async Task MineAsync(int blocks = 1)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(blocks);
        await CallAsync("anvil_mine", "0x" + blocks.ToString("x", CultureInfo.InvariantCulture)).ConfigureAwait(false);
    }

    /// <summary>
    /// Replaces the last <paramref name="depth"/> blocks with as many empty ones (<c>anvil_reorg</c>): the transactions
    /// in them are gone, as after a chain reorganisation.
    /// </summary>
    public async Task ReorgAsync(int depth)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(depth);
        await CallAsync("anvil_reorg", depth, Array.Empty<object>()).ConfigureAwait(false);
    }

    /// <summary>The number of the latest block.</summary>
    public async Task<long> BlockNumberAsync() => ParseQuantity((await CallAsync("eth_blockNumber").ConfigureAwait(false)).GetString()!);

    /// <summary>Moves the next block's timestamp forward by <paramref name="seconds"/> (<c>evm_increaseTime</c>).</summary>
    public async Task IncreaseTimeAsync(long seconds)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(seconds);
        await CallAsync("evm_increaseTime", seconds).ConfigureAwait(false);
    }

    /// <summary>Sends one JSON-RPC call and returns its result; an error answer throws.</summary>
    public async Task<JsonElement> CallAsync(string method, params object[] parameters)
    {
        using var cancel = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        return await CallAsync(method, parameters, cancel.Token).ConfigureAwait(false);
    }

    private async Task<JsonElement> CallAsync(string method, object[] parameters, CancellationToken cancel)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var request = new { jsonrpc = "2.0", id = Interlocked.Increment(ref _rpcId), method, @params = parameters };
        using HttpResponseMessage response = await _http.PostAsJsonAsync(RpcUrl, request, cancel).ConfigureAwait(false);
        response.EnsureSuccessStatusCode();
        using JsonDocument doc = JsonDocument.Parse(await response.Content.ReadAsStreamAsync(cancel).ConfigureAwait(false));
        if (doc.RootElement.TryGetProperty("error", out JsonElement error))
            throw new InvalidOperationException($"{method} failed: {error.GetRawText()}");
        return doc.RootElement.GetProperty("result").Clone();
    }

    private async Task<long> WaitReadyAsync(CancellationToken cancel)
    {
        // "Listening" is printed once the socket is bound; the first answered call proves the RPC is up.
        while (true)
        {
            try
            {
                return ParseQuantity((await CallAsync("eth_chainId", [], cancel).ConfigureAwait(false)).GetString()!);
            }
            catch (HttpRequestException)
            {
                await Task.Delay(20, cancel).ConfigureAwait(false);
            }
        }
    }

    private static long ParseQuantity(string hex) => long.Parse(hex.AsSpan(2), NumberStyles.HexNumber, CultureInfo.InvariantCulture);

    private static void Kill(Process process)
    {
        try
        {
            if (!process.HasExited) process.Kill(entireProcessTree: true);
            process.WaitForExit(5000);
        }
        catch (InvalidOperationException)
        {
            // Already gone.
        }
    }

    /// <summary>Kills Anvil by its pid and waits for it to exit.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        Kill(_process);
        _process.Dispose();
        _http.Dispose();
    }

    /// <inheritdoc cref="Dispose"/>
    public ValueTask DisposeAsync()
    {
        Dispose();
        return ValueTask.CompletedTask;
    }

    [GeneratedRegex(@"Listening on (127\.0\.0\.1:\d+)")]
    private static partial Regex ListeningLine();
}
