using System.Runtime.InteropServices;

namespace ComputeGrid.Core;

/// <summary>
/// The calling OS thread's requested time slice under Linux's EEVDF scheduler (kernel 6.12 and later:
/// <c>sched_attr.sched_runtime</c> of a <c>SCHED_OTHER</c> thread, 0.1 to 100 ms). The slice does not change the
/// thread's share of the CPU (its nice value does); it sets how soon it is preempted. A waking thread whose slice is
/// shorter than the running thread's preempts it at once, instead of queueing behind it until its slice or the next
/// scheduler tick runs out.
/// </summary>
/// <remarks>
/// For a thread that computes for milliseconds at a time next to a latency-critical path: an inference node's model
/// workers ask for a long slice (<c>EmbeddingBatcherOptions.WorkerSlice</c>), so a request thread, the ledger or the
/// socket threads woken onto a worker's core run within microseconds, while the model keeps its full share.
/// No privileges are needed for a thread's own slice.
/// </remarks>
public static partial class ThreadSlice
{
    /// <summary>The range the kernel accepts.</summary>
    public static readonly TimeSpan Min = TimeSpan.FromMilliseconds(0.1), Max = TimeSpan.FromMilliseconds(100);

    private const long SysSchedSetattr = 314, SysSchedGetattr = 315; // x86-64
    private const long SysSchedSetattrArm64 = 274, SysSchedGetattrArm64 = 275;
    private const uint SchedOther = 0;
    private const ulong SchedFlagResetOnFork = 0x01;

    [StructLayout(LayoutKind.Sequential)]
    private struct SchedAttr
    {
        public uint Size;
        public uint Policy;
        public ulong Flags;
        public int Nice;
        public uint Priority;
        public ulong Runtime;
        public ulong Deadline;
        public ulong Period;
        public uint UtilMin;
        public uint UtilMax;
    }

    /// <summary>
    /// Asks for <paramref name="slice"/> for the calling thread, keeping its policy and nice value. False where it is not
    /// supported (not Linux, another architecture, a kernel before EEVDF, a policy other than SCHED_OTHER) or refused.
    /// </summary>
    public static bool TrySetCurrentThread(TimeSpan slice) => TrySetThread(0, slice);

    /// <summary>
    /// Asks for <paramref name="slice"/> for thread <paramref name="threadId"/> of this process (a Linux thread id, as in
    /// <c>/proc/self/task</c>; 0 for the calling thread), keeping its policy and nice value. False as for
    /// <see cref="TrySetCurrentThread"/>, or when the thread has gone.
    /// </summary>
    public static bool TrySetThread(int threadId, TimeSpan slice)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(slice, Min);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(slice, Max);
        ArgumentOutOfRangeException.ThrowIfNegative(threadId);
        if (!TryGet(threadId, out SchedAttr attr) || attr.Policy != SchedOther) return false;
        attr.Size = (uint)Marshal.SizeOf<SchedAttr>();
        attr.Flags &= SchedFlagResetOnFork;
        attr.Runtime = checked((ulong)(slice.Ticks * 100)); // ticks of 100 ns → ns
        return Call(SetNumber, threadId, ref attr, 0) == 0 && Of(threadId) is { } now && now == slice;
    }

    /// <summary>The calling thread's slice (the kernel's default where none was asked for), or null where unsupported.</summary>
    public static TimeSpan? CurrentThread() => Of(0);

    /// <summary>Thread <paramref name="threadId"/>'s slice (0: the calling thread), or null where unsupported or gone.</summary>
    public static TimeSpan? Of(int threadId) =>
        TryGet(threadId, out SchedAttr attr) && attr.Policy == SchedOther && attr.Runtime != 0 ? TimeSpan.FromTicks((long)(attr.Runtime / 100)) : null;

    private static bool TryGet(int threadId, out SchedAttr attr)
    {
        attr = default;
        if (!OperatingSystem.IsLinux() || GetNumber == 0) return false;
        return Call(GetNumber, threadId, ref attr, (uint)Marshal.SizeOf<SchedAttr>(), 0) == 0;
    }

    private static long SetNumber => RuntimeInformation.ProcessArchitecture switch
    {
        Architecture.X64 => SysSchedSetattr,
        Architecture.Arm64 => SysSchedSetattrArm64,
        _ => 0,
    };

    private static long GetNumber => RuntimeInformation.ProcessArchitecture switch
    {
        Architecture.X64 => SysSchedGetattr,
        Architecture.Arm64 => SysSchedGetattrArm64,
        _ => 0,
    };

    // glibc has no wrappers for these two; syscall(2) takes its arguments as longs in registers, as a plain call does,
    // so every argument is passed full width.
    [LibraryImport("libc", EntryPoint = "syscall", SetLastError = true)]
    private static partial long Call(long number, long pid, ref SchedAttr attr, long flags);

    [LibraryImport("libc", EntryPoint = "syscall", SetLastError = true)]
    private static partial long Call(long number, long pid, ref SchedAttr attr, long size, long flags);
}

/// <summary>
/// The .NET runtime's own background CPU work — the tiered JIT's compile thread and the background GC — given the
/// longest scheduler slice, as the model workers are: they keep their share of the CPU, but a request's thread woken
/// onto their core runs at once instead of queueing behind a compile or a mark phase. The runtime starts these
/// threads lazily and may end and restart them, so callers repeat <see cref="Apply"/> (the server does, every second).
/// </summary>
public static class RuntimeBackgroundThreads
{
    // Linux thread names are cut at 15 characters: ".NET Tiered Compilation Worker" reads ".NET Tiered Com".
    private static readonly string[] Names = [".NET Tiered Com", ".NET BGC"];

    /// <summary>Repeats <see cref="Apply"/> every <paramref name="every"/> until <paramref name="cancellationToken"/> fires.</summary>
    public static async Task RunAsync(TimeSpan every, TimeProvider time, CancellationToken cancellationToken)
    {
        if (!OperatingSystem.IsLinux()) return;
        using var timer = new PeriodicTimer(every, time);
        try
        {
            do Apply();
            while (await timer.WaitForNextTickAsync(cancellationToken).ConfigureAwait(false));
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested) { }
    }

    /// <summary>Gives every such thread now alive the longest slice; returns how many were changed.</summary>
    public static int Apply()
    {
        if (!OperatingSystem.IsLinux()) return 0;
        int changed = 0;
        string[] tasks;
        try { tasks = Directory.GetDirectories("/proc/self/task"); }
        catch (IOException) { return 0; }
        foreach (string task in tasks)
        {
            if (!int.TryParse(Path.GetFileName(task), out int tid)) continue;
            string name;
            try { name = File.ReadAllText(Path.Combine(task, "comm")).TrimEnd('\n'); }
            catch (IOException) { continue; } // the thread ended meanwhile
            catch (UnauthorizedAccessException) { continue; }
            if (Array.IndexOf(Names, name) < 0 || ThreadSlice.Of(tid) == ThreadSlice.Max) continue;
            if (ThreadSlice.TrySetThread(tid, ThreadSlice.Max)) changed++;
        }
        return changed;
    }
}
