using ComputeGrid.Inference.Reports;
using ComputeGrid.Server.Reports;

namespace ComputeGrid.Server.Tests;

/// <summary>
/// A published chain is verified with one epoch length, so a data folder keeps the length it began with: a later start
/// that asks for another (the demo's minute after a plain serve's hour) gets the recorded one.
/// </summary>
public class NodeReportEpochTests
{
    [Fact]
    public void A_data_folder_keeps_the_epoch_length_of_its_first_start()
    {
        string dir = Path.Combine(Path.GetTempPath(), "cg-epoch-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            using (NodeReportStore first = NodeReportStore.Open(dir))
                Assert.Equal(TimeSpan.FromMinutes(1), first.EpochFor(TimeSpan.FromMinutes(1)));
            using (NodeReportStore again = NodeReportStore.Open(dir))
            {
                Assert.Equal(TimeSpan.FromMinutes(1), again.EpochFor(EpochReportLimits.EpochDefault));
                Assert.Equal(TimeSpan.FromMinutes(1), again.EpochFor(TimeSpan.FromSeconds(5)));
            }
        }
        finally { Directory.Delete(dir, recursive: true); }
    }
}
