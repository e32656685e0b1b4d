using ComputeGrid.Core;

namespace ComputeGrid.Core.Tests;

public sealed class ThreadNiceTests
{
    [Fact]
    public void A_thread_lowers_its_own_priority_and_no_other_thread_changes()
    {
        if (!OperatingSystem.IsLinux()) return; // nice values are a Linux feature here
        int? before = ThreadNice.CurrentThread();
        int? seen = null, other = null;
        bool set = false;
        var lowered = new Thread(() => { set = ThreadNice.TrySetCurrentThread(10); seen = ThreadNice.CurrentThread(); });
        lowered.Start();
        lowered.Join();
        var bystander = new Thread(() => other = ThreadNice.CurrentThread());
        bystander.Start();
        bystander.Join();

        Assert.True(set);
        Assert.Equal(10, seen);
        Assert.Equal(before, ThreadNice.CurrentThread()); // per thread, not per process
        Assert.Equal(before, other);
        Assert.Throws<ArgumentOutOfRangeException>(() => ThreadNice.TrySetCurrentThread(20));
    }
}
