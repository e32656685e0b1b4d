using System.Runtime.InteropServices;

namespace ComputeGrid.Core;

/// <summary>
/// The scheduling weight of the calling OS thread. .NET's <see cref="Thread.Priority"/> does nothing on Linux; the
/// kernel's per-thread nice value does. A thread may always lower its own priority (raise its nice value) without
/// privileges; raising it again needs <c>CAP_SYS_NICE</c>.
/// </summary>
/// <remarks>
/// For throughput work that shares cores with a latency-critical path: an inference node's model workers can run
/// at a higher nice value (<c>EmbeddingBatcherOptions.WorkerNice</c>), so the threads that parse requests, write the
/// ledger and send answers take a core the moment they wake.
/// </remarks>
public static partial class ThreadNice
{
    private const int PrioProcess = 0;

    /// <summary>Sets the calling thread's nice value (0 normal, 19 lowest). False where it is not supported or refused.</summary>
    /// <param name="nice">The nice value, −20 to 19; lowering it below the current value needs privileges.</param>
    public static bool TrySetCurrentThread(int nice)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(nice, -20);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(nice, 19);
        if (!OperatingSystem.IsLinux()) return false;
        // On Linux, PRIO_PROCESS with a thread id applies to that one thread.
        return setpriority(PrioProcess, gettid(), nice) == 0;
    }

    /// <summary>The calling thread's nice value, or null where it cannot be read.</summary>
    public static int? CurrentThread()
    {
        if (!OperatingSystem.IsLinux()) return null;
        Marshal.SetLastPInvokeError(0);
        int value = getpriority(PrioProcess, gettid());
        return value == -1 && Marshal.GetLastPInvokeError() != 0 ? null : value;
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int setpriority(int which, int who, int prio);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int getpriority(int which, int who);

    [LibraryImport("libc")]
    private static partial int gettid();
}
