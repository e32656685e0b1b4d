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
