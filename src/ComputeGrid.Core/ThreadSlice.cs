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
    public static bool TrySetCurrentThread(TimeSpan slice)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(slice, Min);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(slice, Max);
        if (!TryGet(out SchedAttr attr) || attr.Policy != SchedOther) return false;
        attr.Size = (uint)Marshal.SizeOf<SchedAttr>();
        attr.Flags &= SchedFlagResetOnFork;
        attr.Runtime = checked((ulong)(slice.Ticks * 100)); // ticks of 100 ns → ns
        return Call(SetNumber, 0, ref attr, 0) == 0 && CurrentThread() is { } now && now == slice;
    }

    /// <summary>The calling thread's slice (the kernel's default where none was asked for), or null where unsupported.</summary>
    public static TimeSpan? CurrentThread() =>
        TryGet(out SchedAttr attr) && attr.Policy == SchedOther && attr.Runtime != 0 ? TimeSpan.FromTicks((long)(attr.Runtime / 100)) : null;

    private static bool TryGet(out SchedAttr attr)
    {
        attr = default;
        if (!OperatingSystem.IsLinux() || GetNumber == 0) return false;
        return Call(GetNumber, 0, ref attr, (uint)Marshal.SizeOf<SchedAttr>(), 0) == 0;
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

    // glibc has no wrappers for these two; syscall(2) passes integer arguments in registers, as a plain call does.
    [LibraryImport("libc", EntryPoint = "syscall", SetLastError = true)]
    private static partial long Call(long number, int pid, ref SchedAttr attr, uint flags);

    [LibraryImport("libc", EntryPoint = "syscall", SetLastError = true)]
    private static partial long Call(long number, int pid, ref SchedAttr attr, uint size, uint flags);
}
