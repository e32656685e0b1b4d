using ComputeGrid.Core;

namespace ComputeGrid.Core.Tests;

public sealed class ThreadSliceTests
{
    [Fact]
    public void A_thread_sets_its_own_slice_and_keeps_its_nice_value()
    {
        if (!OperatingSystem.IsLinux()) return; // a Linux scheduler feature
        TimeSpan? seen = null, other = null;
        int? niceBefore = null, niceAfter = null;
        bool set = false;
        var worker = new Thread(() =>
        {
            ThreadNice.TrySetCurrentThread(5);
            niceBefore = ThreadNice.CurrentThread();
            set = ThreadSlice.TrySetCurrentThread(TimeSpan.FromMilliseconds(50));
            seen = ThreadSlice.CurrentThread();
            niceAfter = ThreadNice.CurrentThread();
        });
        worker.Start();
        worker.Join();
        var bystander = new Thread(() => other = ThreadSlice.CurrentThread());
        bystander.Start();
        bystander.Join();

        Assert.True(set, "sched_setattr refused a 50 ms slice (a kernel before 6.12?)");
        Assert.Equal(TimeSpan.FromMilliseconds(50), seen);
        Assert.Equal(5, niceBefore);
        Assert.Equal(5, niceAfter); // setting the slice does not reset the nice value
        Assert.NotNull(other); // the kernel's default slice (1.4 ms on this project's VM) …
        Assert.NotEqual(seen, other); // … per thread
        Assert.Throws<ArgumentOutOfRangeException>(() => ThreadSlice.TrySetCurrentThread(TimeSpan.FromMilliseconds(0.05)));
        Assert.Throws<ArgumentOutOfRangeException>(() => ThreadSlice.TrySetCurrentThread(TimeSpan.FromMilliseconds(101)));
    }
}

public sealed class RuntimeBackgroundThreadsTests
{
    [Fact]
    public void The_runtimes_compile_thread_gets_the_longest_slice_and_other_threads_keep_theirs()
    {
        if (!OperatingSystem.IsLinux()) return;
        // A thread named as the runtime names its tiered-compilation worker (Linux keeps the first 15 characters).
        using var ready = new ManualResetEventSlim();
        using var go = new ManualResetEventSlim();
        TimeSpan? compileThread = null, bystander = null;
        Thread Park(string name, Action<TimeSpan?> seen) => new(() => { ready.Set(); go.Wait(); seen(ThreadSlice.CurrentThread()); }) { Name = name };
        var named = Park(".NET Tiered Compilation Worker", s => compileThread = s);
        named.Start();
        ready.Wait();
        ready.Reset();
        var other = Park("cg-bystander", s => bystander = s);
        other.Start();
        ready.Wait();

        Assert.True(RuntimeBackgroundThreads.Apply() >= 1);
        go.Set();
        named.Join();
        other.Join();

        Assert.Equal(ThreadSlice.Max, compileThread);
        Assert.NotNull(bystander);
        Assert.NotEqual(ThreadSlice.Max, bystander);
    }
}
